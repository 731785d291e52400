/**
 * Loading MNIST and Fashion-MNIST from the original IDX `.gz` files, and CIFAR-10 from its binary files
 * (`./cifar-node.ts`) (Node only).
 *
 * The folder is found in the lookup order of `./locate.ts`: the `dataDir` option (the CLI's `--data-dir`), else
 * `WPC_DATA_DIR`, else the per-user cache directory, else `../shared/datasets`. A data directory holds `mnist/`,
 * `fashion-mnist/` and `cifar10/` folders; one given explicitly may also directly hold one dataset's files.
 * Loading checks the files' structure, not their checksums (`downloadDataset` verifies those when it fetches them).
 */

import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { argError, checkKnownKeys, checkOneOf } from '../runtime/errors.js';
import { makeDataset, NUM_CLASSES, resolveNormalization, type Dataset, type NormalizeOptions } from './dataset.js';
import { CIFAR10_NORMALIZATION, resolveChannelNormalization } from './cifar.js';
import { loadCifar10 } from './cifar-node.js';
import { IdxError, idxError, printable, type IdxArray } from './idx.js';
import { readIdxStream } from './idx-reader.js';
import { FileAccessError, openRegularFile } from '../util/regular-file.js';
import {
  DATASET_NAMES,
  DISPLAY_NAMES as DISPLAY,
  SPLITS,
  SPLIT_FILES as FILES,
  expectedFileNames,
  type DatasetName,
  type Split,
} from './files.js';
import { datasetDirectory, explicitDataDir, findImplicit } from './locate.js';

export { DATASET_NAMES, SPLITS, expectedFileNames, type DatasetName, type Split };

/** Bytes read from a file per chunk: the most a read holds in memory besides the file's own buffer. */
const CHUNK_BYTES = 64 * 1024;

const EXPECTED_COUNT: Readonly<Record<Split, number>> = { train: 60000, test: 10000 };
const ROWS = 28;
const COLS = 28;

/** Options of `loadDataset`. */
export interface LoadOptions {
  /**
   * Directory holding `mnist/`, `fashion-mnist/` and `cifar10/` (or one dataset's files); default: `$WPC_DATA_DIR`,
   * else the per-user cache directory, else `../shared/datasets` (see `locateDataset`).
   */
  dataDir?: string | undefined;
  /**
   * Subtracted from p/255: MNIST and Fashion-MNIST a number (default 0.1307); CIFAR-10 a number for every channel or
   * one per channel (default 0.5 each, JPC's).
   */
  mean?: number | readonly number[] | undefined;
  /** Divides after subtracting the mean, finite and > 0: as `mean`, defaults 0.3081 and 0.5 each. */
  std?: number | readonly number[] | undefined;
}

/**
 * Reads, checks and normalises one split of MNIST or Fashion-MNIST from its IDX files, or of CIFAR-10 from its
 * binary files.
 *
 * Looks in `DIR/<name>/`, else in `DIR` itself, where DIR is the `dataDir` option, else `WPC_DATA_DIR`; without
 * either, in the first of the per-user cache directory and `../shared/datasets` whose `<name>/` folder holds all
 * the dataset's files (see `locateDataset`). Each IDX file may be gzip-compressed (`*.gz`, the distributed form)
 * or already decompressed (same name without `.gz`). CIFAR-10's are `data_batch_1.bin` … `data_batch_5.bin` and
 * `test_batch.bin`, each at most the official 10000 records (see `makeCifarDataset`); its images are
 * `[3, 32, 32]`, channel planes as in the files.
 * @param name `'mnist'`, `'fashion-mnist'` or `'cifar10'`.
 * @param split `'train'` (60000 examples; CIFAR-10 50000) or `'test'` (10000).
 * @param options `dataDir` (default: the lookup order above); `mean`/`std` of the normalisation (defaults
 *   0.1307/0.3081, see `makeDataset`; CIFAR-10 0.5/0.5 for every channel, see `makeCifarDataset`).
 * @returns a dataset named e.g. `"mnist-train"`.
 */
export async function loadDataset(name: DatasetName, split: Split, options: LoadOptions = {}): Promise<Dataset> {
  const fn = 'loadDataset';
  checkOneOf(fn, 'name', name, DATASET_NAMES);
  checkOneOf(fn, 'split', split, SPLITS);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['dataDir', 'mean', 'std']);
  const { dataDir, ...normalizeOptions } = options;
  // The options are checked before any I/O, so that bad ones fail fast.
  if (name === 'cifar10') {
    const normalization = resolveChannelNormalization(fn, normalizeOptions, CIFAR10_NORMALIZATION);
    return loadCifar10(fn, await datasetFolder(fn, name, dataDir), split, normalization);
  }
  // An array (CIFAR-10's per-channel form) is refused here.
  const normalize = resolveNormalization(fn, normalizeOptions as NormalizeOptions);
  const dir = await datasetFolder(fn, name, dataDir);
  // Both files at once; the first failure stops the other, and nothing is returned (or left open) until both
  // have settled, so a refused dataset leaves no reader running behind it.
  const stop = new AbortController();
  const read = (role: Role) =>
    readIdx(dir, name, split, role, stop.signal).catch((err: unknown) => {
      stop.abort(err);
      throw err;
    });
  const [imagesResult, labelsResult] = await Promise.allSettled([read('images'), read('labels')]);
  if (imagesResult.status === 'rejected') throw imagesResult.reason;
  if (labelsResult.status === 'rejected') throw labelsResult.reason;
  const images = imagesResult.value;
  const labels = labelsResult.value;
  const dataset = makeDataset(`${name}-${split}`, images, labels, normalize);

  const expected = EXPECTED_COUNT[split];
  const [rows, cols] = dataset.imageShape;
  if (dataset.count !== expected || rows !== ROWS || cols !== COLS) {
    throw new IdxError(
      `${printable(images.name)}: expected the ${DISPLAY[name]} ${split} split to hold ${expected} images of ${ROWS}×${COLS}, ` +
        `found ${dataset.count} images of ${rows}×${cols} (and ${dataset.count} labels in ${printable(labels.name)})`,
      images.name,
    );
  }
  checkIdentity(name, split, dataset, labels.name);
  return dataset;
}

type Role = 'images' | 'labels';

/** The folder holding dataset `name`: in the explicit data directory, else the first implicit place holding it. */
async function datasetFolder(fn: string, name: DatasetName, dataDir: unknown): Promise<string> {
  const explicit = explicitDataDir(fn, dataDir);
  return explicit === null ? (await findImplicit(fn, name)).dir : datasetDirectory(fn, name, explicit);
}

/**
 * Reads `DIR/<file>.gz` (or an uncompressed `DIR/<file>`) and parses it, reading no more than the largest
 * genuine file of this split and role can hold (16 + N·28·28 bytes of images, 8 + N of labels, decompressed).
 */
async function readIdx(
  dir: string,
  name: DatasetName,
  split: Split,
  role: Role,
  signal: AbortSignal,
): Promise<IdxArray> {
  const file = FILES[split][role];
  const gzPath = join(dir, `${file}.gz`);
  const plainPath = join(dir, file);
  let path = gzPath;
  let opened = await openDataFile(gzPath);
  if (opened === undefined) {
    path = plainPath;
    opened = await openDataFile(plainPath);
  }
  if (opened === undefined) {
    throw new IdxError(
      `loadDataset: missing ${DISPLAY[name]} file ${printable(gzPath)} (nor is there an uncompressed ${file}). ` +
        `The folder ${printable(dir)} must hold ${expectedFileNames().join(', ')}; ` +
        `run 'wpc data download ${name} --dir DIR' (or downloadDataset in the API) to fetch them into DIR/${name}/`,
      gzPath,
    );
  }
  const { handle, size } = opened;
  try {
    const count = EXPECTED_COUNT[split];
    return await readIdxStream(fileChunks(handle), path, {
      maxBytes: role === 'images' ? 16 + count * ROWS * COLS : 8 + count,
      limitReason: `the size of the ${DISPLAY[name]} ${split} ${role} file`,
      sourceBytes: size,
      signal,
    });
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * Opens `path` when it is a regular file (see `openRegularFile`); `undefined` when there is nothing there. A
 * named pipe, device, socket or directory, or a file that cannot be read, is an IdxError.
 */
async function openDataFile(path: string): Promise<{ handle: FileHandle; size: number } | undefined> {
  try {
    return await openRegularFile(path);
  } catch (err) {
    if (!(err instanceof FileAccessError)) throw err;
    if (err.reason === 'missing') return undefined;
    if (err.reason === 'not-regular') {
      throw idxError(
        path,
        `is ${err.detail}, not a regular file; data files must be regular files (a pipe or device may block or never end)`,
      );
    }
    throw idxError(path, `cannot read it (${printable(err.detail)})`);
  }
}

/** The file's bytes in chunks of `CHUNK_BYTES`, read only as fast as the consumer asks. */
function fileChunks(handle: FileHandle): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const buffer = new Uint8Array(CHUNK_BYTES);
        const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, null);
        if (bytesRead === 0) controller.close();
        else controller.enqueue(buffer.subarray(0, bytesRead));
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * Catches the two datasets being swapped (their files have identical names and sizes): Fashion-MNIST has
 * exactly count/10 examples of every class in both splits, MNIST never does.
 */
function checkIdentity(name: DatasetName, split: Split, dataset: Dataset, labelsFile: string): void {
  const counts = new Array<number>(NUM_CLASSES).fill(0);
  for (const label of dataset.labels) counts[label]!++;
  const balanced = counts.every((c) => c * NUM_CLASSES === dataset.count);
  if (balanced === (name === 'fashion-mnist')) return;
  const found = counts.join(' ');
  throw new IdxError(
    name === 'fashion-mnist'
      ? `${printable(labelsFile)}: does not look like Fashion-MNIST, which has exactly ${dataset.count / NUM_CLASSES} ` +
          `${split} examples of every class; found per-class counts ${found} (is this MNIST?)`
      : `${printable(labelsFile)}: does not look like MNIST: every class has exactly ${dataset.count / NUM_CLASSES} ` +
          `${split} examples (${found}), as in Fashion-MNIST`,
    labelsFile,
  );
}
