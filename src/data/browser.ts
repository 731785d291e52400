/**
 * MNIST / Fashion-MNIST in a browser: from files the user picks (`<input type=file>`) or from URLs the page can
 * fetch. The IDX parser and normalisation are the same as in Node; gzip is undone with the platform's
 * DecompressionStream. No Node built-ins.
 */
import { argError, checkKnownKeys } from '../runtime/errors.js';
import { makeDataset, resolveNormalization, type Dataset, type NormalizeOptions } from './dataset.js';
import { idxError, printable, type IdxArray } from './idx.js';
import { MAX_IDX_BYTES, MAX_IDX_BYTES_CEILING, readIdxStream } from './idx-reader.js';

/** What a source can be: a File/Blob (file picker, drag and drop), raw bytes, or a URL to fetch. */
export type IdxSource = Blob | ArrayBuffer | Uint8Array | string | URL;

export interface IdxPair {
  images: IdxSource;
  labels: IdxSource;
}

/** Options of `datasetFromIdx` and `fetchDataset`: the normalisation, and a bound on each file. */
export interface DatasetFromIdxOptions extends NormalizeOptions {
  /**
   * Largest decompressed IDX file accepted, header included, in bytes: an integer in [1, 2^31 − 1]; default
   * `MAX_IDX_BYTES` (2^28 = 256 MiB, about 5.7 times MNIST's training images). A file whose header declares more
   * is refused before the rest is read or inflated.
   */
  maxBytes?: number | undefined;
  /**
   * Stops reading (and downloading) when aborted, e.g. `AbortSignal.timeout(60_000)`; the promise rejects with its
   * reason.
   */
  signal?: AbortSignal | undefined;
}

/** Bytes handed to the reader at a time when the source is already in memory (views, not copies). */
const CHUNK_BYTES = 64 * 1024;

function sourceName(source: IdxSource, fallback: string): string {
  if (typeof source === 'string') return source;
  if (source instanceof URL) return source.href;
  if (typeof File !== 'undefined' && source instanceof File && source.name !== '') return source.name;
  return fallback;
}

function isSource(value: unknown): value is IdxSource {
  return (
    value instanceof Uint8Array ||
    value instanceof ArrayBuffer ||
    (typeof Blob !== 'undefined' && value instanceof Blob) ||
    (typeof value === 'string' && value !== '') ||
    value instanceof URL
  );
}

/** Bytes already in memory as a stream of views. */
function chunksOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (offset >= bytes.byteLength) {
          controller.close();
          return;
        }
        controller.enqueue(bytes.subarray(offset, offset + CHUNK_BYTES));
        offset += CHUNK_BYTES;
      },
    },
    { highWaterMark: 0 },
  );
}

/** Reads one source with `readIdxStream`'s bounds; a URL is fetched and its body read as it arrives. */
async function readSource(source: IdxSource, name: string, maxBytes: number, signal: AbortSignal): Promise<IdxArray> {
  const options = {
    maxBytes,
    limitReason: maxBytes === MAX_IDX_BYTES ? 'the default of the maxBytes option' : 'the maxBytes option',
    signal,
  };
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) {
    const bytes = source instanceof Uint8Array ? source : new Uint8Array(source);
    return readIdxStream(chunksOf(bytes), name, { ...options, sourceBytes: bytes.byteLength });
  }
  if (typeof source === 'string' || source instanceof URL) {
    let response: Response;
    try {
      response = await fetch(source, { signal });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw idxError(name, `fetching it failed (${printable((err as Error)?.message ?? String(err))})`);
    }
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined);
      throw idxError(name, `fetching it failed with HTTP ${response.status} ${printable(response.statusText)}`);
    }
    return readIdxStream(response.body ?? chunksOf(new Uint8Array(0)), name, options);
  }
  return readIdxStream(source.stream() as ReadableStream<Uint8Array>, name, { ...options, sourceBytes: source.size });
}

/**
 * Builds a dataset from an images and a labels IDX file (gzip-compressed or not), e.g. the four files of MNIST
 * picked by the user, or URLs of them. Normalised as JPC's notebooks (mean 0.1307, std 0.3081) unless given.
 *
 * Each file is read as a stream and bounded by its own header and `options.maxBytes` (see `readIdxStream`):
 * a decompression bomb or an oversized file is refused after at most its declared size, never inflated whole.
 * When one file fails, reading the other stops, and the promise settles only after both have stopped.
 * @param name label for messages and the dataset, e.g. `"mnist-train"`.
 * @param files `{ images, labels }`: each a File/Blob, ArrayBuffer, Uint8Array or URL (string or `URL`).
 * @param options `mean`, `std` (see `makeDataset`), `maxBytes` (default `MAX_IDX_BYTES`, 256 MiB), `signal`
 *   (none by default: a download that stalls without ending waits for the server).
 */
export async function datasetFromIdx(
  name: string,
  files: IdxPair,
  options: DatasetFromIdxOptions = {},
): Promise<Dataset> {
  const fn = 'datasetFromIdx';
  if (typeof name !== 'string' || name === '') argError(fn, 'name', 'a non-empty string', name);
  if (typeof files !== 'object' || files === null) argError(fn, 'files', '{ images, labels }', files);
  checkKnownKeys(fn, 'files', files, ['images', 'labels']);
  for (const key of ['images', 'labels'] as const) {
    if (!isSource(files[key])) argError(fn, `files.${key}`, 'a File/Blob, ArrayBuffer, Uint8Array or URL', files[key]);
  }
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['mean', 'std', 'maxBytes', 'signal']);
  const { maxBytes = MAX_IDX_BYTES, signal, ...normalizeOptions } = options;
  const normalize = resolveNormalization(fn, normalizeOptions);
  if (typeof maxBytes !== 'number' || !Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > MAX_IDX_BYTES_CEILING) {
    argError(fn, 'options.maxBytes', `an integer in [1, ${MAX_IDX_BYTES_CEILING}] (bytes)`, maxBytes);
  }
  if (signal !== undefined && !(typeof AbortSignal !== 'undefined' && signal instanceof AbortSignal)) {
    argError(fn, 'options.signal', 'an AbortSignal', signal);
  }
  signal?.throwIfAborted();
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal!.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const read = (source: IdxSource, label: string) =>
    readSource(source, label, maxBytes, stop.signal).catch((err: unknown) => {
      stop.abort(err);
      throw err;
    });
  const [images, labels] = await Promise.allSettled([
    read(files.images, sourceName(files.images, `${name} images`)),
    read(files.labels, sourceName(files.labels, `${name} labels`)),
  ]).finally(() => signal?.removeEventListener('abort', onAbort));
  if (images.status === 'rejected') throw images.reason;
  if (labels.status === 'rejected') throw labels.reason;
  return makeDataset(name, images.value, labels.value, normalize);
}

/** The IDX file names of a split, as distributed (with `.gz`). */
export const IDX_FILES = {
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
} as const;

/** Fetches one split from a base URL holding the distributed `.gz` files, e.g. `'/data/mnist/'`. */
export function fetchDataset(
  baseUrl: string,
  split: 'train' | 'test',
  options: DatasetFromIdxOptions = {},
): Promise<Dataset> {
  const fn = 'fetchDataset';
  if (typeof baseUrl !== 'string' || baseUrl === '') argError(fn, 'baseUrl', 'a non-empty URL string', baseUrl);
  if (split !== 'train' && split !== 'test') argError(fn, 'split', "'train' or 'test'", split);
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const f = IDX_FILES[split];
  return datasetFromIdx(`${base}${split}`, { images: `${base}${f.images}`, labels: `${base}${f.labels}` }, options);
}
