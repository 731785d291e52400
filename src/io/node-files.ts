/**
 * Files from Node: model checkpoints (JSON), training checkpoints (safetensors) and image grids (PNG). Every
 * write goes through `writeAtomically` (util/atomic-write.ts), so an interrupted or failed write never leaves a
 * truncated file where a good one was.
 */
import { WpcArgumentError, argError } from '../runtime/errors.js';
import { storageLimit } from '../runtime/limits.js';
import { FileAccessError, openRegularFile } from '../util/regular-file.js';
import { writeAtomically } from '../util/atomic-write.js';
import { MAX_HEADER_BYTES } from './safetensors.js';
import type { Runtime } from '../runtime/runtime.js';
import { Tensor } from '../runtime/tensor.js';
import { type Model, checkRuntime } from '../pc/model.js';
import {
  type CheckpointLoadOptions,
  checkLoadOptions,
  checkpointText,
  modelFromCheckpointFile,
  modelToCheckpoint,
} from './checkpoint.js';
import { type ImageGridOptions, imageGridPng } from './image-grid.js';
import {
  type RestoredTraining,
  type TrainingCheckpointOptions,
  restoreTrainingCheckpoint,
  trainingCheckpoint,
} from './training-checkpoint.js';

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
 * The largest checkpoint file a runtime could have written: the parameters fill at most one storage binding,
 * and a training checkpoint adds two optimiser moments of the same size; a JSON model holds them in base64
 * (4 characters per 3 bytes). Either has at most a safetensors reader's header bound of metadata besides.
 * Anything larger is refused before it is read.
 */
function maxCheckpointBytes(runtime: Runtime, kind: 'json' | 'safetensors'): number {
  const params = storageLimit(runtime.limits).bytes;
  return (kind === 'json' ? Math.ceil((4 * params) / 3) : 3 * params) + MAX_HEADER_BYTES + 8;
}

/**
 * The checks `loadModel` and `loadCheckpoint` share, then the file's bytes: it must be a regular file (a FIFO or
 * device is refused instead of waiting forever or reading without end; see `openRegularFile`) no larger than
 * any checkpoint of `kind` this device could hold, which is refused before any of it is read. `what` names the
 * call and the file for the decoder's messages.
 */
async function readCheckpointFile(
  fn: string,
  runtime: Runtime,
  path: string,
  options: CheckpointLoadOptions,
  kind: 'json' | 'safetensors',
): Promise<{ bytes: Uint8Array; what: string }> {
  checkRuntime(fn, runtime);
  const file = checkPath(fn, path);
  checkLoadOptions(fn, options);
  const maxBytes = maxCheckpointBytes(runtime, kind);
  let opened: Awaited<ReturnType<typeof openRegularFile>>;
  try {
    opened = await openRegularFile(file);
  } catch (e) {
    if (!(e instanceof FileAccessError)) throw e;
    throw new WpcArgumentError(
      `${fn}: cannot read ${file}: ${e.reason === 'not-regular' ? 'not a regular file' : (e.code ?? e.detail)}`,
    );
  }
  const { handle, size } = opened;
  try {
    if (size > maxBytes) {
      throw new WpcArgumentError(
        `${fn}: ${file} is ${size} bytes, more than any checkpoint this device can hold (at most ${maxBytes} bytes): not a WPC checkpoint`,
      );
    }
    return { bytes: new Uint8Array(await handle.readFile()), what: `${fn}: ${file}` };
  } catch (e) {
    if (e instanceof WpcArgumentError) throw e;
    throw new WpcArgumentError(
      `${fn}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * Reads a checkpoint written by `saveModel` (or `wpc train --save`) into a new model on `runtime`. The file must
 * be exactly as written (checksum, and the text saveModel writes); a refused file allocates nothing.
 */
export async function loadModel(runtime: Runtime, path: string, options: CheckpointLoadOptions = {}): Promise<Model> {
  const { bytes, what } = await readCheckpointFile('loadModel', runtime, path, options, 'json');
  return modelFromCheckpointFile(runtime, bytes, what, options);
}

/**
 * Writes a training checkpoint (safetensors: the model, its optimiser state and the step; see
 * io/training-checkpoint.ts) to `path`, atomically.
 */
export async function saveCheckpoint(
  path: string,
  model: Model,
  options: TrainingCheckpointOptions = {},
): Promise<void> {
  const file = checkPath('saveCheckpoint', path);
  await writeAtomically(file, await trainingCheckpoint(model, options));
}

/** Reads a training checkpoint written by `saveCheckpoint` (or `wpc train --checkpoint`) onto `runtime`. */
export async function loadCheckpoint(
  runtime: Runtime,
  path: string,
  options: CheckpointLoadOptions = {},
): Promise<RestoredTraining> {
  const { bytes, what } = await readCheckpointFile('loadCheckpoint', runtime, path, options, 'safetensors');
  return restoreTrainingCheckpoint(runtime, bytes, what, options);
}

/**
 * Writes a PNG grid of images: the rows of a [N, pixels] tensor (read back here) or `count` images in a
 * Float32Array. See `imageGridPng` for the layout and the grey-level mapping.
 */
export async function writeImageGrid(
  path: string,
  images: Tensor | Float32Array,
  options: ImageGridOptions & { count?: number } = {},
): Promise<void> {
  const fn = 'writeImageGrid';
  const file = checkPath(fn, path);
  const { count, ...grid } = options;
  let data: Float32Array;
  let n: number;
  if (images instanceof Tensor) {
    if (images.shape.length !== 2)
      throw new WpcArgumentError(`${fn}: images must be a [N, pixels] tensor, got shape [${images.shape.join(', ')}]`);
    if (count !== undefined && (!Number.isInteger(count) || count < 1 || count > images.shape[0]!)) {
      argError(fn, 'options.count', `an integer in 1..${images.shape[0]} (the tensor's rows)`, count);
    }
    data = await images.toArray();
    n = count ?? images.shape[0]!;
    data = data.subarray(0, n * images.shape[1]!);
  } else if (images instanceof Float32Array) {
    if (count === undefined)
      throw new WpcArgumentError(`${fn}: options.count (how many images the Float32Array holds) is required`);
    data = images;
    n = count;
  } else {
    return argError(fn, 'images', 'a [N, pixels] Tensor or a Float32Array', images);
  }
  const png = imageGridPng(data, n, grid);
  await writeAtomically(file, png);
}
