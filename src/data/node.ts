/**
 * Loading MNIST and Fashion-MNIST from the original IDX `.gz` files (Node only).
 *
 * Nothing is downloaded: the user names a directory (`dataDir`, the CLI's `--data-dir`, or the environment
 * variable `WPC_DATA_DIR`) that holds `mnist/` and `fashion-mnist/` folders, or a folder that directly holds one
 * dataset's four files.
 */

import { readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gunzip as gunzipCallback } from 'node:zlib';
import { argError, checkKnownKeys, checkOneOf } from '../runtime/errors.js';
import { makeDataset, NUM_CLASSES, resolveNormalization, type Dataset, type NormalizeOptions } from './dataset.js';
import { IdxError, parseIdx, type IdxArray } from './idx.js';

const gunzip = promisify(gunzipCallback);

export type DatasetName = 'mnist' | 'fashion-mnist';
export type Split = 'train' | 'test';

export const DATASET_NAMES: readonly DatasetName[] = ['mnist', 'fashion-mnist'];
export const SPLITS: readonly Split[] = ['train', 'test'];

/** Where this project's workspace keeps a verified copy of the files (for error messages only). */
const SHARED_COPY_HINT = 'shared/datasets, next to the repository checkout';

/** File names (without `.gz`) of each split, as distributed by LeCun et al. and Zalando. */
const FILES: Readonly<Record<Split, { images: string; labels: string }>> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};

const EXPECTED_COUNT: Readonly<Record<Split, number>> = { train: 60000, test: 10000 };
const ROWS = 28;
const COLS = 28;

const DISPLAY: Readonly<Record<DatasetName, string>> = { mnist: 'MNIST', 'fashion-mnist': 'Fashion-MNIST' };

/** Options of `loadDataset`. */
export interface LoadOptions extends NormalizeOptions {
  /** Directory holding `mnist/` and `fashion-mnist/` (or one dataset's files); default `$WPC_DATA_DIR`. */
  dataDir?: string | undefined;
}

/** The four file names a dataset directory must hold (compressed). */
export function expectedFileNames(): string[] {
  return [FILES.train.images, FILES.train.labels, FILES.test.images, FILES.test.labels].map((f) => `${f}.gz`);
}

/**
 * Reads, checks and normalises one split of MNIST or Fashion-MNIST from its IDX files.
 *
 * Looks in `DIR/<name>/`, else in `DIR` itself. Each file may be gzip-compressed (`*.gz`, the distributed form)
 * or already decompressed (same name without `.gz`).
 * @param name `'mnist'` or `'fashion-mnist'`.
 * @param split `'train'` (60000 examples) or `'test'` (10000).
 * @param options `dataDir` (default: the `WPC_DATA_DIR` environment variable); `mean`/`std` of the
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

  const dir = await datasetDirectory(name, resolveDataDir(dataDir));
  const files = FILES[split];
  const [images, labels] = await Promise.all([
    readIdx(dir, files.images, name),
    readIdx(dir, files.labels, name),
  ]);
  const dataset = makeDataset(`${name}-${split}`, images, labels, normalize);

  const expected = EXPECTED_COUNT[split];
  const [rows, cols] = dataset.imageShape;
  if (dataset.count !== expected || rows !== ROWS || cols !== COLS) {
    throw new IdxError(
      `${images.name}: expected the ${DISPLAY[name]} ${split} split to hold ${expected} images of ${ROWS}×${COLS}, ` +
        `found ${dataset.count} images of ${rows}×${cols} (and ${dataset.count} labels in ${labels.name})`,
      images.name,
    );
  }
  checkIdentity(name, split, dataset, labels.name);
  return dataset;
}

/** The data directory from the option, else `WPC_DATA_DIR`, else an error saying how to set it. */
function resolveDataDir(dataDir: unknown): { dir: string; from: string } {
  if (dataDir !== undefined) {
    if (typeof dataDir !== 'string' || dataDir === '') argError('loadDataset', 'options.dataDir', 'a non-empty string', dataDir);
    return { dir: resolve(dataDir), from: 'the dataDir option (--data-dir)' };
  }
  const env = process.env.WPC_DATA_DIR;
  if (env !== undefined && env !== '') return { dir: resolve(env), from: 'the WPC_DATA_DIR environment variable' };
  throw new Error(
    'loadDataset: no data directory given. Pass --data-dir DIR on the command line (dataDir: DIR in the API), ' +
      'or set the environment variable WPC_DATA_DIR=DIR. DIR must hold mnist/ and fashion-mnist/ folders with the ' +
      `original IDX files (${expectedFileNames().join(', ')}); the shared copy usually lives in ${SHARED_COPY_HINT}.`,
  );
}

/** `DIR/<name>` when it exists, else `DIR` itself (a folder holding one dataset's files). */
async function datasetDirectory(name: DatasetName, { dir, from }: { dir: string; from: string }): Promise<string> {
  const root = await stat(dir).catch(() => undefined);
  if (!root?.isDirectory()) {
    throw new Error(
      `loadDataset: data directory ${dir} (from ${from}) ${root ? 'is not a directory' : 'does not exist'}; ` +
        `it must hold mnist/ and fashion-mnist/ folders (the shared copy usually lives in ${SHARED_COPY_HINT})`,
    );
  }
  const nested = join(dir, name);
  if ((await stat(nested).catch(() => undefined))?.isDirectory()) return nested;
  // DIR may be one dataset's own folder. Refuse the other dataset's folder: both have identical file names.
  const other = DATASET_NAMES.find((n) => n !== name)!;
  const base = basename(dir).toLowerCase().replace(/[-_ ]/g, '');
  if (base === other.replace('-', '')) {
    throw new Error(
      `loadDataset: asked for ${DISPLAY[name]} but the data directory ${dir} (from ${from}) looks like the ` +
        `${DISPLAY[other]} folder and has no ${name}/ subfolder; point it at the parent folder instead`,
    );
  }
  return dir;
}

/** Reads `DIR/<file>.gz` (or an uncompressed `DIR/<file>`) and parses it. */
async function readIdx(dir: string, file: string, name: DatasetName): Promise<IdxArray> {
  const gzPath = join(dir, `${file}.gz`);
  const plainPath = join(dir, file);
  let path = gzPath;
  let bytes = await readOptional(gzPath);
  if (bytes === undefined) {
    path = plainPath;
    bytes = await readOptional(plainPath);
  }
  if (bytes === undefined) {
    throw new IdxError(
      `loadDataset: missing ${DISPLAY[name]} file ${gzPath} (nor is there an uncompressed ${file}). ` +
        `The folder ${dir} must hold ${expectedFileNames().join(', ')}; ` +
        `the shared copy usually lives in ${SHARED_COPY_HINT}`,
      gzPath,
    );
  }
  const isGzip = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  if (isGzip) {
    try {
      bytes = await gunzip(bytes); // a Buffer, which is a Uint8Array: no copy
    } catch (err) {
      throw new IdxError(
        `${path}: corrupt or truncated gzip data (${(err as Error).message}); replace the file with a fresh copy`,
        path,
      );
    }
  }
  try {
    return parseIdx(bytes, path);
  } catch (err) {
    // A `.gz` file that is not gzip: browsers sometimes decompress on download and keep the name, which is fine,
    // but anything else (an HTML error page, say) should say that it is not gzip either.
    if (err instanceof IdxError && !isGzip && path.endsWith('.gz')) {
      throw new IdxError(`${err.message} (the file is not gzip-compressed either)`, path);
    }
    throw err;
  }
}

async function readOptional(path: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IdxError(`loadDataset: cannot read ${path}: ${(err as Error).message}`, path);
  }
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
      ? `${labelsFile}: does not look like Fashion-MNIST, which has exactly ${dataset.count / NUM_CLASSES} ` +
          `${split} examples of every class; found per-class counts ${found} (is this MNIST?)`
      : `${labelsFile}: does not look like MNIST: every class has exactly ${dataset.count / NUM_CLASSES} ` +
          `${split} examples (${found}), as in Fashion-MNIST`,
    labelsFile,
  );
}
