/**
 * Files from Node: model checkpoints (JSON), training checkpoints (safetensors) and image grids (PNG). Writes go
 * to a temporary file that is renamed into place, so an interrupted or failed write never leaves a truncated file
 * where a good one was.
 */
import { constants } from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { WpcArgumentError, argError } from '../runtime/errors.js';
import type { Runtime } from '../runtime/runtime.js';
import { Tensor } from '../runtime/tensor.js';
import { type Model, checkRuntime } from '../pc/model.js';
import { type CheckpointLoadOptions, checkLoadOptions, checkpointText, modelFromCheckpointFile, modelToCheckpoint } from './checkpoint.js';
import { type ImageGridOptions, imageGridPng } from './image-grid.js';
import { type RestoredTraining, type TrainingCheckpointOptions, restoreTrainingCheckpoint, trainingCheckpoint } from './training-checkpoint.js';

/**
 * Writes `data` to a temporary file in the same folder, flushes it to disk, and renames it over `path`: a crash
 * or kill at any moment leaves either the old file or the new one, never a truncated one.
 */
export async function writeAtomically(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    const handle = await open(tmp, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

function checkPath(fn: string, path: unknown): string {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) argError(fn, 'path', 'a file path', path);
  return path;
}

/** Writes `model` (architecture, parameterisation, parameters, checksum) to `path` as a JSON checkpoint. */
export async function saveModel(model: Model, path: string, meta?: Record<string, unknown>): Promise<void> {
  const file = checkPath('saveModel', path);
  const checkpoint = await modelToCheckpoint(model, meta);
  await writeAtomically(file, checkpointText(checkpoint));
}

/**
 * Reads a regular file whole, with errors that name it. Opened without blocking and checked before reading, so
 * that a FIFO or a device is refused instead of waiting forever or reading without end.
 */
async function readWhole(fn: string, file: string): Promise<Uint8Array> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
    if (!(await handle.stat()).isFile()) throw new WpcArgumentError(`${fn}: cannot read ${file}: not a regular file`);
    return new Uint8Array(await handle.readFile());
  } catch (e) {
    if (e instanceof WpcArgumentError) throw e;
    throw new WpcArgumentError(`${fn}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Reads a checkpoint written by `saveModel` (or `wpc train --save`) into a new model on `runtime`. The file must
 * be exactly as written (checksum, and the text saveModel writes); a refused file allocates nothing.
 */
export async function loadModel(runtime: Runtime, path: string, options: CheckpointLoadOptions = {}): Promise<Model> {
  const fn = 'loadModel';
  checkRuntime(fn, runtime);
  const file = checkPath(fn, path);
  checkLoadOptions(fn, options);
  return modelFromCheckpointFile(runtime, await readWhole(fn, file), `${fn}: ${file}`, options);
}

/**
 * Writes a training checkpoint (safetensors: the model, its optimiser state and the step; see
 * io/training-checkpoint.ts) to `path`, atomically.
 */
export async function saveCheckpoint(path: string, model: Model, options: TrainingCheckpointOptions = {}): Promise<void> {
  const file = checkPath('saveCheckpoint', path);
  await writeAtomically(file, await trainingCheckpoint(model, options));
}

/** Reads a training checkpoint written by `saveCheckpoint` (or `wpc train --checkpoint`) onto `runtime`. */
export async function loadCheckpoint(runtime: Runtime, path: string, options: CheckpointLoadOptions = {}): Promise<RestoredTraining> {
  const fn = 'loadCheckpoint';
  checkRuntime(fn, runtime);
  const file = checkPath(fn, path);
  checkLoadOptions(fn, options);
  return restoreTrainingCheckpoint(runtime, await readWhole(fn, file), `${fn}: ${file}`, options);
}

/**
 * Writes a PNG grid of images: the rows of a [N, pixels] tensor (read back here) or `count` images in a
 * Float32Array. See `imageGridPng` for the layout and the grey-level mapping.
 */
export async function writeImageGrid(path: string, images: Tensor | Float32Array, options: ImageGridOptions & { count?: number } = {}): Promise<void> {
  const fn = 'writeImageGrid';
  const file = checkPath(fn, path);
  const { count, ...grid } = options;
  let data: Float32Array;
  let n: number;
  if (images instanceof Tensor) {
    if (images.shape.length !== 2) throw new WpcArgumentError(`${fn}: images must be a [N, pixels] tensor, got shape [${images.shape.join(', ')}]`);
    if (count !== undefined && (!Number.isInteger(count) || count < 1 || count > images.shape[0]!)) {
      argError(fn, 'options.count', `an integer in 1..${images.shape[0]} (the tensor's rows)`, count);
    }
    data = await images.toArray();
    n = count ?? images.shape[0]!;
    data = data.subarray(0, n * images.shape[1]!);
  } else if (images instanceof Float32Array) {
    if (count === undefined) throw new WpcArgumentError(`${fn}: options.count (how many images the Float32Array holds) is required`);
    data = images;
    n = count;
  } else {
    return argError(fn, 'images', 'a [N, pixels] Tensor or a Float32Array', images);
  }
  const png = imageGridPng(data, n, grid);
  await writeAtomically(file, png);
}
