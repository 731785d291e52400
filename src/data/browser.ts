/**
 * MNIST / Fashion-MNIST in a browser: from files the user picks (`<input type=file>`) or from URLs the page can
 * fetch. The IDX parser and normalisation are the same as in Node; gzip is undone with the platform's
 * DecompressionStream. No Node built-ins.
 */
import { argError, checkKnownKeys } from '../runtime/errors.js';
import { makeDataset, resolveNormalization, type Dataset, type NormalizeOptions } from './dataset.js';
import { IdxError, parseIdx } from './idx.js';

/** What a source can be: a File/Blob (file picker, drag and drop), raw bytes, or a URL to fetch. */
export type IdxSource = Blob | ArrayBuffer | Uint8Array | string | URL;

export interface IdxPair {
  images: IdxSource;
  labels: IdxSource;
}

const isGzip = (b: Uint8Array) => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;

function sourceName(source: IdxSource, fallback: string): string {
  if (typeof source === 'string') return source;
  if (source instanceof URL) return source.href;
  if (typeof File !== 'undefined' && source instanceof File) return source.name;
  return fallback;
}

async function bytesOf(source: IdxSource, name: string): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (typeof Blob !== 'undefined' && source instanceof Blob) return new Uint8Array(await source.arrayBuffer());
  if (typeof source === 'string' || source instanceof URL) {
    const response = await fetch(source);
    if (!response.ok) throw new IdxError(`${name}: fetching it failed with HTTP ${response.status} ${response.statusText}`, name);
    return new Uint8Array(await response.arrayBuffer());
  }
  return argError('datasetFromIdx', name, 'a File/Blob, ArrayBuffer, Uint8Array or URL', source);
}

async function gunzipIfNeeded(bytes: Uint8Array, name: string): Promise<Uint8Array> {
  if (!isGzip(bytes)) return bytes;
  if (typeof DecompressionStream === 'undefined') throw new IdxError(`${name}: is gzip-compressed and this platform has no DecompressionStream; unzip it first`, name);
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (err) {
    throw new IdxError(`${name}: corrupt or truncated gzip data (${(err as Error).message})`, name);
  }
}

/**
 * Builds a dataset from an images and a labels IDX file (gzip-compressed or not), e.g. the four files of MNIST
 * picked by the user, or URLs of them. Normalised as JPC's notebooks (mean 0.1307, std 0.3081) unless given.
 */
export async function datasetFromIdx(name: string, files: IdxPair, options: NormalizeOptions = {}): Promise<Dataset> {
  const fn = 'datasetFromIdx';
  if (typeof name !== 'string' || name === '') argError(fn, 'name', 'a non-empty string', name);
  if (typeof files !== 'object' || files === null) argError(fn, 'files', '{ images, labels }', files);
  checkKnownKeys(fn, 'files', files, ['images', 'labels']);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  const normalize = resolveNormalization(fn, options);
  const imagesName = sourceName(files.images, `${name} images`);
  const labelsName = sourceName(files.labels, `${name} labels`);
  const [images, labels] = await Promise.all([
    bytesOf(files.images, imagesName).then((b) => gunzipIfNeeded(b, imagesName)),
    bytesOf(files.labels, labelsName).then((b) => gunzipIfNeeded(b, labelsName)),
  ]);
  return makeDataset(name, parseIdx(images, imagesName), parseIdx(labels, labelsName), normalize);
}

/** The IDX file names of a split, as distributed (with `.gz`). */
export const IDX_FILES = {
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
} as const;

/** Fetches one split from a base URL holding the distributed `.gz` files, e.g. `'/data/mnist/'`. */
export function fetchDataset(baseUrl: string, split: 'train' | 'test', options: NormalizeOptions = {}): Promise<Dataset> {
  const fn = 'fetchDataset';
  if (typeof baseUrl !== 'string' || baseUrl === '') argError(fn, 'baseUrl', 'a non-empty URL string', baseUrl);
  if (split !== 'train' && split !== 'test') argError(fn, 'split', "'train' or 'test'", split);
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const f = IDX_FILES[split];
  return datasetFromIdx(`${base}${split}`, { images: `${base}${f.images}`, labels: `${base}${f.labels}` }, options);
}
