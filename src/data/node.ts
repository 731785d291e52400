/**
 * Loading MNIST and Fashion-MNIST from the original IDX `.gz` files (Node only).
 *
 * The folder is found in the lookup order of `./locate.ts`: the `dataDir` option (the CLI's `--data-dir`), else
 * `WPC_DATA_DIR`, else the per-user cache directory, else `../shared/datasets`. A data directory holds `mnist/`
 * and `fashion-mnist/` folders; one given explicitly may also directly hold one dataset's four files. Loading
 * checks the files' structure, not their checksums (`downloadDataset` verifies those when it fetches them).
 */

import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { argError, checkKnownKeys, checkOneOf } from '../runtime/errors.js';
import { makeDataset, NUM_CLASSES, resolveNormalization, type Dataset, type NormalizeOptions } from './dataset.js';
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
export interface LoadOptions extends NormalizeOptions {
  /**
   * Directory holding `mnist/` and `fashion-mnist/` (or one dataset's files); default: `$WPC_DATA_DIR`, else the
   * per-user cache directory, else `../shared/datasets` (see `locateDataset`).
   */
  dataDir?: string | undefined;
}

/**
 * Reads, checks and normalises one split of MNIST or Fashion-MNIST from its IDX files.
 *
 * Looks in `DIR/<name>/`, else in `DIR` itself, where DIR is the `dataDir` option, else `WPC_DATA_DIR`; without
 * either, in the first of the per-user cache directory and `../shared/datasets` whose `<name>/` folder holds all
 * four files (see `locateDataset`). Each file may be gzip-compressed (`*.gz`, the distributed form) or already
 * decompressed (same name without `.gz`).
 * @param name `'mnist'` or `'fashion-mnist'`.
 * @param split `'train'` (60000 examples) or `'test'` (10000).
 * @param options `dataDir` (default: the lookup order above); `mean`/`std` of the
 *   normalisation (defaults 0.1307/0.3081, see `makeDataset`).
 * @returns a dataset named e.g. `"mnist-train"`.
 */
export async function loadDataset(name: DatasetName, split: Split, options: LoadOptions = {}): Promise<Dataset> {
  const fn = 'loadDataset';
  checkOneOf(fn, 'name', name, DATASET_NAMES);
  checkOneOf(fn, 'split', split, SPLITS);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['dataDir', 'mean', 'std']);
  const { dataDir, ...normalizeOptions } = options;
  const normalize = resolveNormalization(fn, normalizeOptions); // before any I/O, so bad options fail fast

  const explicit = explicitDataDir(fn, dataDir);
  const dir = explicit === null ? (await findImplicit(fn, name)).dir : await datasetDirectory(fn, name, explicit);
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
