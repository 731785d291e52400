/**
 * Where a dataset is found (Node only): the one lookup order that `loadDataset`, `locateDataset`, `wpc data path`
 * and every `--data-dir` of the CLI follow.
 *
 * 1. the `dataDir` option (the CLI's `--data-dir`), else
 * 2. the `WPC_DATA_DIR` environment variable;
 *    either is the user's explicit choice: a folder there that lacks the data is an error, never skipped;
 * 3. the per-user cache directory (where `wpc data download` puts the files by default), then
 * 4. `../shared/datasets` relative to the current directory (the project's shared copy next to a checkout);
 *    these two are searched in order, and each counts only when `<place>/<name>/` holds all the dataset's files
 *    (MNIST's and Fashion-MNIST's four IDX files, CIFAR-10's six binary files).
 *
 * Only the files' presence is checked here (IDX files gzip-compressed or not); `loadDataset` checks their structure and
 * `downloadDataset` their checksums.
 */
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join, posix, resolve, win32 } from 'node:path';
import { argError, checkKnownKeys, checkOneOf } from '../runtime/errors.js';
import { IdxError, printable } from './idx.js';
import { DATASET_NAMES, DISPLAY_NAMES, expectedFileNames, type DatasetName } from './files.js';

/** Which place a dataset was found in: the option, the environment variable, the cache, the shared copy. */
export type DataSource = 'dataDir' | 'WPC_DATA_DIR' | 'cache' | 'shared';

/** Options of `locateDataset`. */
export interface LocateOptions {
  /** The data directory (as `loadDataset`'s); default: the lookup order. */
  dataDir?: string | undefined;
}

/** One place looked at, and what was found there: `'found'`, or why it does not count. */
export interface SearchedPlace {
  source: DataSource;
  dir: string;
  status: string;
}

/** Where a dataset was found. */
export interface DatasetLocation {
  /** The folder holding the dataset's files. */
  dir: string;
  /** The data directory it was found through (`dir` is `root/<name>`, or `root` itself when given explicitly). */
  root: string;
  source: DataSource;
  /** The places looked at, in order, the last one being where it was found. */
  searched: SearchedPlace[];
}

/** A data directory and where it came from, in words for messages. */
interface DataPlace {
  root: string;
  source: DataSource;
  from: string;
}

/**
 * The per-user cache directory of datasets on `platform`: Linux and other Unixes `$XDG_CACHE_HOME/wpc/datasets`
 * (when that is an absolute path, as the XDG specification asks) or `~/.cache/wpc/datasets`; macOS
 * `~/Library/Caches/wpc/datasets`; Windows `%LOCALAPPDATA%\wpc\datasets` (or `~\AppData\Local\wpc\datasets`).
 * `null` when there is no usable home directory.
 */
export function cacheDirectoryFor(
  platform: string,
  env: Readonly<Record<string, string | undefined>>,
  home: string,
): string | null {
  if (platform === 'win32') {
    const local = env.LOCALAPPDATA;
    if (local && win32.isAbsolute(local)) return win32.join(local, 'wpc', 'datasets');
    return home && win32.isAbsolute(home) ? win32.join(home, 'AppData', 'Local', 'wpc', 'datasets') : null;
  }
  if (platform === 'darwin')
    return home && posix.isAbsolute(home) ? posix.join(home, 'Library', 'Caches', 'wpc', 'datasets') : null;
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && posix.isAbsolute(xdg)) return posix.join(xdg, 'wpc', 'datasets');
  return home && posix.isAbsolute(home) ? posix.join(home, '.cache', 'wpc', 'datasets') : null;
}

/** This user's cache directory of datasets (see `cacheDirectoryFor`), or null. Read anew on every call. */
function userCacheDirectory(): string | null {
  let home = '';
  try {
    home = homedir();
  } catch {
    // No home directory (no HOME and no password entry): no cache either.
  }
  return cacheDirectoryFor(process.platform, process.env, home);
}

/**
 * The per-user cache directory of datasets, where `downloadDataset` and `wpc data download` put the files by
 * default (each dataset in its own folder below it): `$XDG_CACHE_HOME/wpc/datasets` or `~/.cache/wpc/datasets`
 * on Linux, `~/Library/Caches/wpc/datasets` on macOS, `%LOCALAPPDATA%\wpc\datasets` on Windows.
 * @throws IdxError when this user has no home directory.
 */
export function dataCacheDirectory(): string {
  const dir = userCacheDirectory();
  if (dir === null)
    throw new IdxError(
      'dataCacheDirectory: this user has no home directory, so there is no per-user cache directory; give a data directory instead',
      '',
    );
  return dir;
}

/** The explicitly chosen data directory: the option, else `WPC_DATA_DIR` (when set and not empty), else null. */
export function explicitDataDir(fn: string, dataDir: unknown): DataPlace | null {
  if (dataDir !== undefined) {
    if (typeof dataDir !== 'string' || dataDir === '' || dataDir.includes('\0'))
      argError(fn, 'options.dataDir', 'a non-empty path', dataDir);
    return { root: resolve(dataDir), source: 'dataDir', from: 'the dataDir option (--data-dir)' };
  }
  const env = process.env.WPC_DATA_DIR;
  if (env !== undefined && env !== '')
    return { root: resolve(env), source: 'WPC_DATA_DIR', from: 'the WPC_DATA_DIR environment variable' };
  return null;
}

/** The implicit places, in order: the per-user cache (null when there is none), then ../shared/datasets from here. */
function implicitPlaces(): (DataPlace | null)[] {
  const cache = userCacheDirectory();
  return [
    cache === null ? null : { root: cache, source: 'cache', from: 'the per-user cache directory' },
    {
      root: resolve('..', 'shared', 'datasets'),
      source: 'shared',
      from: '../shared/datasets from the current directory',
    },
  ];
}

/** How a fix is spelled in messages: the CLI command, with the API call beside it. */
function downloadHint(name: DatasetName, root?: string): string {
  const dir = root === undefined ? '' : ` --dir ${printable(root)}`;
  return `run 'wpc data download ${name}${dir}' (or downloadDataset in the API) to fetch it`;
}

/** The files of dataset `name` in words, for messages. */
function filesInWords(name: DatasetName): string {
  return name === 'cifar10' ? 'the six CIFAR-10 binary files' : 'the four IDX files';
}

/**
 * The dataset's folder in an explicitly chosen data directory: `DIR/<name>` when it exists, else `DIR` itself
 * (a folder holding one dataset's files). DIR must be a folder, and not another dataset's.
 */
export async function datasetDirectory(fn: string, name: DatasetName, { root, from }: DataPlace): Promise<string> {
  const info = await stat(root).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new IdxError(
      `${fn}: data directory ${printable(root)} (from ${from}) ${info ? 'is not a directory' : 'does not exist'}; ` +
        `it must hold a ${name}/ folder with ${filesInWords(name)}; ${downloadHint(name, root)} there`,
      root,
    );
  }
  const nested = join(root, name);
  if ((await stat(nested).catch(() => undefined))?.isDirectory()) return nested;
  // DIR may be one dataset's own folder. Refuse another dataset's folder (MNIST's and Fashion-MNIST's files even
  // have identical names).
  const base = basename(root).toLowerCase().replace(/[-_ ]/g, '');
  const other = DATASET_NAMES.find((n) => n !== name && base === n.replace('-', ''));
  if (other !== undefined) {
    throw new IdxError(
      `${fn}: asked for ${DISPLAY_NAMES[name]} but the data directory ${printable(root)} (from ${from}) looks like the ` +
        `${DISPLAY_NAMES[other]} folder and has no ${name}/ subfolder; point it at the parent folder instead`,
      root,
    );
  }
  return root;
}

async function isRegularFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() === true;
}

/** The expected files that `dir` lacks as regular files (an IDX file neither compressed nor uncompressed). */
async function missingFiles(dir: string, name: DatasetName): Promise<string[]> {
  const missing: string[] = [];
  for (const file of expectedFileNames(name)) {
    const plain = file.endsWith('.gz') ? file.slice(0, -3) : file;
    if (!(await isRegularFile(join(dir, file))) && !(await isRegularFile(join(dir, plain)))) missing.push(file);
  }
  return missing;
}

/** 'found' when `dir` holds the dataset's files, else why not. */
async function folderStatus(dir: string, name: DatasetName): Promise<string> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be examined (${code ?? 'error'})`;
  }
  if (!info.isDirectory()) return 'is not a folder';
  const missing = await missingFiles(dir, name);
  return missing.length === 0 ? 'found' : `lacks ${missing.join(', ')}`;
}

/**
 * The first implicit place whose `<name>/` folder holds the dataset's files.
 * @throws IdxError listing every place searched, and how to fetch the data, when none does.
 */
export async function findImplicit(fn: string, name: DatasetName): Promise<DatasetLocation> {
  const searched: SearchedPlace[] = [];
  const words: string[] = ['--data-dir or the dataDir option (not given)', 'WPC_DATA_DIR (not set)'];
  for (const place of implicitPlaces()) {
    if (place === null) {
      words.push('the per-user cache directory (none: this user has no home directory)');
      continue;
    }
    const dir = join(place.root, name);
    const status = await folderStatus(dir, name);
    searched.push({ source: place.source, dir, status });
    if (status === 'found') return { dir, root: place.root, source: place.source, searched };
    words.push(`${place.from}, ${printable(dir)} (${status})`);
  }
  throw new IdxError(
    `${fn}: ${DISPLAY_NAMES[name]} not found. Looked in, in order: ${words.join('; ')}. ` +
      `To fix: ${downloadHint(name)} into the per-user cache, or give the folder holding ${name}/ with --data-dir DIR ` +
      `(dataDir in the API) or WPC_DATA_DIR=DIR`,
    '',
  );
}

/**
 * Where `loadDataset` would read dataset `name` from, following the lookup order (see the module comment).
 * @param name `'mnist'`, `'fashion-mnist'` or `'cifar10'`.
 * @param options `dataDir` (default: the lookup order).
 * @returns the folder holding the dataset's files, the data directory and which place it came from, and the
 *   places searched.
 * @throws IdxError when an explicitly given folder (option or `WPC_DATA_DIR`) lacks any of the files, or when no
 *   implicit place holds them all (the message lists every place searched and says how to download).
 */
export async function locateDataset(name: DatasetName, options: LocateOptions = {}): Promise<DatasetLocation> {
  const fn = 'locateDataset';
  checkOneOf(fn, 'name', name, DATASET_NAMES);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['dataDir']);
  const explicit = explicitDataDir(fn, options.dataDir);
  if (explicit === null) return findImplicit(fn, name);
  const dir = await datasetDirectory(fn, name, explicit);
  const missing = await missingFiles(dir, name);
  if (missing.length > 0) {
    throw new IdxError(
      `${fn}: the data directory ${printable(explicit.root)} (from ${explicit.from}) has no complete ${DISPLAY_NAMES[name]}: ` +
        `${printable(dir)} lacks ${missing.join(', ')}; ${downloadHint(name, explicit.root)} there`,
      dir,
    );
  }
  return {
    dir,
    root: explicit.root,
    source: explicit.source,
    searched: [{ source: explicit.source, dir, status: 'found' }],
  };
}
