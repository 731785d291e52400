/**
 * Downloading MNIST, Fashion-MNIST and CIFAR-10 from their public mirrors (Node only; the browser entry never
 * imports it).
 *
 * Each of the four `.gz` files (CIFAR-10: its one archive) is fetched over HTTP(S) from the mirrors in order, with
 * retries and backoff on transient failures, streamed into a temporary file next to its final name while its
 * checksums are computed, and renamed into place only when its size and SHA-256 (and MD5, where the publisher
 * lists one) are those of the genuine file (`./files.ts`). A body longer than the genuine file is cut off at the
 * first byte too many, so a hostile or broken server costs at most the file's size in disk and one chunk in
 * memory. Files already in place with the right checksum are not fetched. CIFAR-10's six binary files are then
 * extracted from the verified archive (`./cifar-archive.ts`), which is removed once they are in place.
 * This file chooses what to fetch, from where and how often; one attempt at one URL is ./transfer.ts.
 */
import { createHash } from 'node:crypto';
import { mkdir, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WpcError, argError, checkKnownKeys, checkOneOf, printable } from '../runtime/errors.js';
import { writeAtomicallyWith } from '../util/atomic-write.js';
import { FileAccessError, openRegularFile } from '../util/regular-file.js';
import { DATASET_NAMES, KNOWN_FILES, expectedFileNames, type DatasetName, type KnownFile } from './files.js';
import { cifar10InPlace, extractCifar10, type ExtractedFile } from './cifar-archive.js';
import { IdxError } from './idx.js';
import { dataCacheDirectory } from './locate.js';
import { AttemptFailure, LocalFailure, systemReason, transfer, type TransferSettings } from './transfer.js';

/**
 * The public mirrors, tried in this order: for MNIST torchvision's, TensorFlow's, then Yann LeCun's original
 * page; for Fashion-MNIST torchvision's, then Zalando's repository; for CIFAR-10 its authors' page.
 */
export const DEFAULT_MIRRORS: Readonly<Record<DatasetName, readonly string[]>> = {
  mnist: [
    'https://ossci-datasets.s3.amazonaws.com/mnist/',
    'https://storage.googleapis.com/cvdf-datasets/mnist/',
    'http://yann.lecun.com/exdb/mnist/',
  ],
  'fashion-mnist': [
    'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
    'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/',
  ],
  cifar10: ['https://www.cs.toronto.edu/~kriz/'],
};

/** The files extracted from CIFAR-10's archive. */
const CIFAR10_MEMBERS = expectedFileNames('cifar10').length;
/** Most retries per mirror (`options.retries`). */
export const MAX_RETRIES = 100;
/** Longest wait before a retry, however many came before. */
const MAX_BACKOFF_MS = 30_000;
/** Bytes read per chunk when checking a file already in place. */
const CHUNK_BYTES = 1 << 20;
/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * What `onProgress` is told: a file was found in place, a transfer started or moved on, failed, or completed; a
 * file was extracted from CIFAR-10's archive.
 */
export interface DownloadProgress {
  /** The file's name, e.g. `train-images-idx3-ubyte.gz`. */
  file: string;
  /** 0-based position of the file among the `count` files fetched (or extracted) for the dataset. */
  index: number;
  count: number;
  /**
   * `present`: already in place and verified; `downloading`: bytes arrived (`received`); `failed`: this attempt
   * failed (`reason`), another may follow; `done`: verified and in place; `extracted`: taken out of the verified
   * archive and in place (`url` is the archive's).
   */
  state: 'present' | 'downloading' | 'failed' | 'done' | 'extracted';
  /** The URL of this attempt; null for `present`. */
  url: string | null;
  received: number;
  /** The genuine file's size in bytes. */
  size: number;
  /** Why the attempt failed (`failed` only). */
  reason?: string;
}

/** Options of `downloadDataset`. */
export interface DownloadOptions {
  /**
   * Data directory; the files go to `DIR/<name>/`. Default: `$WPC_DATA_DIR` when set (so that `loadDataset`,
   * which then looks only there, finds them), else the per-user cache directory (`dataCacheDirectory()`).
   */
  dir?: string | undefined;
  /** Base URLs (http or https) tried in order, each holding the four files; default `DEFAULT_MIRRORS[name]`. */
  mirrors?: readonly string[] | undefined;
  /**
   * Retries per mirror after a transient failure (a dropped or refused connection, a truncated or stalled
   * transfer, HTTP 408, 429 or 5xx), an integer in [0, 100]; default 2. A definite answer (any other HTTP status,
   * a wrong size or checksum) moves on to the next mirror at once.
   */
  retries?: number | undefined;
  /** Wait before the first retry in ms, doubled for each next one (at most 30 s); default 1000. */
  retryDelayMs?: number | undefined;
  /**
   * A transfer that receives no byte for this many ms (connecting and waiting for the answer included) is abandoned
   * as stalled; default 30000.
   */
  stallTimeoutMs?: number | undefined;
  /** Stops the download; the promise rejects with the signal's reason and no partial file is left. */
  signal?: AbortSignal | undefined;
  /** Called as files are found, fetched (on every chunk) and verified; an exception from it stops the download. */
  onProgress?: ((progress: DownloadProgress) => void) | undefined;
}

/** One failed attempt: the URL and why. */
export interface FailedAttempt {
  url: string;
  reason: string;
}

/** What happened to one file. */
export interface DownloadedFile {
  file: string;
  /** Where it is now. */
  path: string;
  bytes: number;
  sha256: string;
  /** True when it was already in place with the right checksum (nothing fetched). */
  alreadyPresent: boolean;
  /** The URL it came from; null when already present. */
  url: string | null;
  /** The attempts that failed before it was obtained (other mirrors, retries). */
  failedAttempts: FailedAttempt[];
}

/** What `downloadDataset` did. */
export interface DownloadResult {
  dataset: DatasetName;
  /** The folder holding the dataset's files (`DIR/<name>`), which `loadDataset` reads with `dataDir: DIR`. */
  dir: string;
  /** The data directory DIR. */
  root: string;
  /**
   * The dataset's files: the four IDX files, or CIFAR-10's six binary files (their `url` and `failedAttempts` are
   * the archive's; `alreadyPresent` when they were in place with the SHA-256s recorded when they were extracted).
   */
  files: DownloadedFile[];
}

/**
 * A dataset file could not be obtained: every mirror failed (`attempts` says how, each mirror's attempts in
 * order), or it could not be written locally (`attempts` empty). `file` is the path it would have had.
 */
export class WpcDownloadError extends Error {
  override name = 'WpcDownloadError';
  constructor(
    message: string,
    readonly file: string,
    readonly attempts: readonly FailedAttempt[] = [],
  ) {
    super(message);
  }
}
WpcError.members.push(WpcDownloadError);

/** The checked options (the stall timeout and the signal go on to each transfer). */
interface Settings extends TransferSettings {
  mirrors: string[];
  retries: number;
  retryDelayMs: number;
  onProgress: ((progress: DownloadProgress) => void) | undefined;
}

function checkMirror(fn: string, arg: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') argError(fn, arg, 'an http:// or https:// URL', value);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return argError(fn, arg, 'an http:// or https:// URL', value);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') argError(fn, arg, 'an http:// or https:// URL', value);
  if (url.username !== '' || url.password !== '')
    argError(fn, arg, 'a URL without a user name or password (they would show in messages)', value);
  if (url.search !== '' || url.hash !== '')
    argError(fn, arg, 'a base URL without ?query or #fragment (the file names are appended to it)', value);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url.href;
}

function checkOptions(
  fn: string,
  name: unknown,
  options: unknown,
): { name: DatasetName; root: string; settings: Settings } {
  const dataset = checkOneOf(fn, 'name', name, DATASET_NAMES);
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, [
    'dir',
    'mirrors',
    'retries',
    'retryDelayMs',
    'stallTimeoutMs',
    'signal',
    'onProgress',
  ]);
  const o = options as DownloadOptions;
  if (o.dir !== undefined && (typeof o.dir !== 'string' || o.dir === '' || o.dir.includes('\0')))
    argError(fn, 'options.dir', 'a non-empty path', o.dir);
  let mirrors = DEFAULT_MIRRORS[dataset] as readonly unknown[];
  if (o.mirrors !== undefined) {
    if (!Array.isArray(o.mirrors) || o.mirrors.length === 0)
      argError(fn, 'options.mirrors', 'a non-empty array of URLs', o.mirrors);
    mirrors = o.mirrors;
  }
  const checkedMirrors = mirrors.map((m, i) => checkMirror(fn, `options.mirrors[${i}]`, m));
  const retries = o.retries ?? 2;
  if (typeof retries !== 'number' || !Number.isInteger(retries) || retries < 0 || retries > MAX_RETRIES) {
    argError(fn, 'options.retries', `an integer in [0, ${MAX_RETRIES}]`, retries);
  }
  const retryDelayMs = o.retryDelayMs ?? 1000;
  if (
    typeof retryDelayMs !== 'number' ||
    !Number.isFinite(retryDelayMs) ||
    retryDelayMs < 0 ||
    retryDelayMs > MAX_BACKOFF_MS
  ) {
    argError(fn, 'options.retryDelayMs', `a number of milliseconds in [0, ${MAX_BACKOFF_MS}]`, retryDelayMs);
  }
  const stallTimeoutMs = o.stallTimeoutMs ?? 30_000;
  if (
    typeof stallTimeoutMs !== 'number' ||
    !Number.isInteger(stallTimeoutMs) ||
    stallTimeoutMs < 1 ||
    stallTimeoutMs > MAX_TIMER_MS
  ) {
    argError(fn, 'options.stallTimeoutMs', `an integer number of milliseconds in [1, ${MAX_TIMER_MS}]`, stallTimeoutMs);
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal))
    argError(fn, 'options.signal', 'an AbortSignal', o.signal);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function')
    argError(fn, 'options.onProgress', 'a function', o.onProgress);
  const env = process.env.WPC_DATA_DIR;
  const root = resolve(o.dir ?? (env !== undefined && env !== '' ? env : dataCacheDirectory()));
  return {
    name: dataset,
    root,
    settings: {
      mirrors: checkedMirrors,
      retries,
      retryDelayMs,
      stallTimeoutMs,
      signal: o.signal,
      onProgress: o.onProgress,
    },
  };
}

/**
 * Downloads MNIST or Fashion-MNIST (the four IDX `.gz` files), or CIFAR-10 (its archive, from which the six
 * binary files are extracted), into `DIR/<name>/`, verifying each fetched file's size and SHA-256 (and MD5,
 * where its publisher lists one) against the genuine file's, and skipping files already there with the right
 * checksum.
 *
 * Each file is tried at each mirror in order, with up to `retries` retries per mirror on a transient failure;
 * it is written to a temporary file next to its final name (flushed to disk) and renamed into place only once
 * verified, so the final name never holds a partial or unverified file, and a failure leaves no temporary.
 * A body longer than the genuine file is refused as it streams. Files are fetched one after another; the first
 * that cannot be obtained stops the download (the files verified before it stay). CIFAR-10's binary files are
 * extracted the same way (each checked, then renamed into place), their SHA-256s recorded in `SHA256SUMS` beside
 * them, and the archive removed; a failed extraction removes the files it placed. When all six are in place with
 * the recorded SHA-256s, nothing is fetched.
 * @param name `'mnist'`, `'fashion-mnist'` or `'cifar10'`.
 * @param options `dir` (default `$WPC_DATA_DIR`, else the per-user cache directory), `mirrors` (default
 *   `DEFAULT_MIRRORS[name]`), `retries` (2), `retryDelayMs` (1000), `stallTimeoutMs` (30000), `signal`, `onProgress`.
 * @returns per file where it is, where it came from (or that it was already present) and what failed first.
 * @throws WpcDownloadError naming the file and each attempt's URL and failure (HTTP status, size, checksum
 *   expected and got, truncated at N of M bytes, stalled), an archive whose contents are refused, or a local
 *   write failure; the signal's reason when aborted; WpcArgumentError for bad options.
 */
export function downloadDataset(name: DatasetName, options: DownloadOptions = {}): Promise<DownloadResult> {
  return downloadVerifiedBy('downloadDataset', name, options, KNOWN_FILES);
}

/**
 * `downloadDataset` checking the files against `known` instead of the genuine files' sizes and checksums: for
 * tests, which serve files they generate. Not part of the API.
 */
export async function downloadVerifiedBy(
  fn: string,
  name: DatasetName,
  options: DownloadOptions,
  known: Readonly<Record<DatasetName, readonly KnownFile[]>>,
): Promise<DownloadResult> {
  const { name: dataset, root, settings } = checkOptions(fn, name, options);
  settings.signal?.throwIfAborted();
  const dir = join(root, dataset);
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new WpcDownloadError(`${fn}: cannot create the folder ${printable(dir)}: ${systemReason(e)}`, dir);
  }
  const files: DownloadedFile[] = [];
  if (dataset === 'cifar10') {
    files.push(...(await obtainCifar10(fn, dir, known.cifar10[0]!, settings)));
  } else {
    for (const [index, file] of known[dataset].entries()) {
      files.push(await obtainFile(fn, dataset, dir, file, index, known[dataset].length, settings));
    }
  }
  return { dataset, dir, root, files };
}

/**
 * CIFAR-10's six binary files in place: found there with the SHA-256s recorded when they were extracted, or
 * extracted from its archive (found in place verified, or fetched), which is removed afterwards.
 */
async function obtainCifar10(fn: string, dir: string, archive: KnownFile, s: Settings): Promise<DownloadedFile[]> {
  const report = (f: ExtractedFile, index: number, state: 'present' | 'extracted', url: string | null) =>
    s.onProgress?.({ file: f.file, index, count: CIFAR10_MEMBERS, state, url, received: f.bytes, size: f.bytes });
  const entry = (f: ExtractedFile, fetched: DownloadedFile | null): DownloadedFile => ({
    ...f,
    alreadyPresent: fetched === null,
    url: fetched?.url ?? null,
    failedAttempts: fetched?.failedAttempts ?? [],
  });
  const inPlace = await cifar10InPlace(dir, s.signal);
  if (inPlace !== null) {
    inPlace.forEach((f, index) => report(f, index, 'present', null));
    return inPlace.map((f) => entry(f, null));
  }
  const fetched = await obtainFile(fn, 'cifar10', dir, archive, 0, 1, s);
  let index = 0;
  let extracted: ExtractedFile[];
  try {
    extracted = await extractCifar10(fetched.path, dir, s.signal, (f) => report(f, index++, 'extracted', fetched.url));
  } catch (e) {
    if (s.signal?.aborted) throw s.signal.reason;
    if (e instanceof IdxError) {
      await unlink(fetched.path).catch(() => undefined); // verified, yet unusable: fetch it again next time
      throw new WpcDownloadError(`${fn}: the archive is refused: ${e.message}`, fetched.path);
    }
    if (e instanceof Error && 'code' in e) {
      throw new WpcDownloadError(`${fn}: cannot extract into ${printable(dir)}: ${systemReason(e)}`, dir);
    }
    throw e; // from onProgress, or a bug: as it is
  }
  await unlink(fetched.path).catch(() => undefined);
  return extracted.map((f) => entry(f, fetched));
}

/** Whether the genuine file is in place already (false when it is missing or differs: it will be replaced). */
async function verifiedInPlace(
  fn: string,
  path: string,
  known: KnownFile,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  let opened: Awaited<ReturnType<typeof openRegularFile>>;
  try {
    opened = await openRegularFile(path);
  } catch (e) {
    if (e instanceof FileAccessError && e.reason === 'missing') return false;
    const what =
      e instanceof FileAccessError && e.reason === 'not-regular'
        ? `is ${e.detail}, not a regular file; remove it`
        : `cannot be read (${systemReason(e)})`;
    throw new WpcDownloadError(`${fn}: ${printable(path)} ${what}`, path);
  }
  const { handle, size } = opened;
  try {
    if (size !== known.bytes) return false;
    const hash = createHash('sha256');
    const md5 = known.md5 === undefined ? null : createHash('md5');
    const buffer = new Uint8Array(CHUNK_BYTES);
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      md5?.update(buffer.subarray(0, bytesRead));
    }
    return hash.digest('hex') === known.sha256 && md5?.digest('hex') === known.md5;
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new WpcDownloadError(`${fn}: ${printable(path)} cannot be read (${systemReason(e)})`, path);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** The file in place: found there, or fetched from the first mirror that serves the genuine bytes. */
async function obtainFile(
  fn: string,
  dataset: DatasetName,
  dir: string,
  known: KnownFile,
  index: number,
  count: number,
  s: Settings,
): Promise<DownloadedFile> {
  const path = join(dir, known.name);
  const report = (p: Omit<DownloadProgress, 'file' | 'index' | 'count' | 'size'>) =>
    s.onProgress?.({ file: known.name, index, count, size: known.bytes, ...p });
  if (await verifiedInPlace(fn, path, known, s.signal)) {
    report({ state: 'present', url: null, received: known.bytes });
    return {
      file: known.name,
      path,
      bytes: known.bytes,
      sha256: known.sha256,
      alreadyPresent: true,
      url: null,
      failedAttempts: [],
    };
  }
  const failures: FailedAttempt[] = [];
  for (const mirror of s.mirrors) {
    const url = new URL(known.name, mirror).href;
    for (let attempt = 0; attempt <= s.retries; attempt++) {
      if (attempt > 0) await backoff(Math.min(MAX_BACKOFF_MS, s.retryDelayMs * 2 ** (attempt - 1)), s.signal);
      let fromWriter: unknown;
      try {
        await writeAtomicallyWith(path, async (handle) => {
          try {
            report({ state: 'downloading', url, received: 0 });
            await transfer(url, handle, known, s, (received) => report({ state: 'downloading', url, received }));
          } catch (e) {
            fromWriter = e;
            throw e;
          }
        });
        report({ state: 'done', url, received: known.bytes });
        return {
          file: known.name,
          path,
          bytes: known.bytes,
          sha256: known.sha256,
          alreadyPresent: false,
          url,
          failedAttempts: failures,
        };
      } catch (e) {
        if (s.signal?.aborted) throw s.signal.reason;
        if (e instanceof AttemptFailure) {
          failures.push({ url, reason: e.reason });
          report({ state: 'failed', url, received: 0, reason: e.reason });
          if (!e.retry) break;
          continue;
        }
        // The temporary could not be made, written, flushed or renamed: the disk, not the mirror.
        if (e instanceof LocalFailure || e !== fromWriter) {
          const cause = e instanceof LocalFailure ? e.cause : e;
          throw new WpcDownloadError(`${fn}: cannot write ${printable(path)}: ${systemReason(cause)}`, path, failures);
        }
        throw e; // from onProgress, or a bug: as it is
      }
    }
  }
  throw new WpcDownloadError(failureMessage(fn, dataset, known, failures), path, failures);
}

/** "could not download F from any mirror: URL: reason, then reason; URL: reason". */
function failureMessage(fn: string, dataset: DatasetName, known: KnownFile, failures: FailedAttempt[]): string {
  const byUrl = new Map<string, string[]>();
  for (const f of failures) byUrl.set(f.url, [...(byUrl.get(f.url) ?? []), f.reason]);
  const tried = [...byUrl].map(([url, reasons]) => `${printable(url)}: ${reasons.join(', then ')}`);
  const mirrors = byUrl.size === 1 ? 'the one mirror' : `any of the ${byUrl.size} mirrors`;
  return `${fn}: could not download ${dataset}/${known.name} from ${mirrors} tried: ${tried.join('; ')}`;
}

async function backoff(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, signal === undefined ? {} : { signal });
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    throw e;
  }
}
