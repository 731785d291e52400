/**
 * In-memory image classification datasets and minibatching.
 *
 * Browser-safe: builds a `Dataset` from parsed IDX arrays (`./idx.ts`); reading files is `./node.ts`'s job.
 * Pixels are normalised once, up front, so every epoch's batches are plain copies.
 */

import { Random } from '../util/random.js';
import {
  WpcArgumentError,
  argError,
  checkFinite,
  checkKnownKeys,
  checkPositiveInt,
  describe,
} from '../runtime/errors.js';
import { IdxError, idxMagic, printable, type IdxArray } from './idx.js';

/** Number of classes in MNIST, Fashion-MNIST and CIFAR-10. */
export const NUM_CLASSES = 10;

/** Most examples `epochOrder` orders (its index array takes 4 bytes each: 256 MiB). */
const MAX_EXAMPLES = 2 ** 26;

/** Most values `oneHot` makes (labels × classes; 4 bytes each: 1 GiB). */
const MAX_ONE_HOT_VALUES = 2 ** 28;

/** MNIST's training-set pixel mean and standard deviation (of p/255), as used by torchvision and JPC's notebooks. */
export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

/** A per-channel normalisation: channel c's pixels p become x = (p/255 − mean[c])/std[c]. */
export interface ChannelNormalization {
  /** One mean per channel. */
  readonly mean: readonly number[];
  /** One standard deviation per channel, each finite and > 0. */
  readonly std: readonly number[];
}

/** A labelled image dataset held in memory; treat every field as read-only. */
export interface Dataset {
  /** A label for messages and logs, e.g. `"mnist-train"`. */
  readonly name: string;
  /**
   * `count × inputDim` normalised pixels, one example after another; each example is `shape` in NCHW order: its
   * channels one after another, each a row-major height × width plane.
   */
  readonly images: Float32Array;
  /** `count` class labels in `[0, numClasses)`. */
  readonly labels: Uint8Array;
  /** Number of examples. */
  readonly count: number;
  /** Values per example, channels × height × width (784 for MNIST, 3072 for CIFAR-10). */
  readonly inputDim: number;
  /** `[rows, cols]` (height, width) of each image, for displaying them. */
  readonly imageShape: readonly [rows: number, cols: number];
  /** `[channels, height, width]` of each example: MNIST and Fashion-MNIST `[1, 28, 28]`, CIFAR-10 `[3, 32, 32]`. */
  readonly shape: readonly [channels: number, height: number, width: number];
  readonly numClasses: typeof NUM_CLASSES;
  /**
   * The normalisation applied to every channel: x = (p/255 − mean)/std. When the channels were normalised
   * differently, both are NaN: see `channelNormalization`.
   */
  readonly normalization: { readonly mean: number; readonly std: number };
  /** The normalisation applied to each channel (one mean and one std per channel of `shape`). */
  readonly channelNormalization: ChannelNormalization;
}

/**
 * What `batches` reads of a dataset. Every `Dataset` is one; so is a dataset built by hand before datasets stated
 * their `shape` and `channelNormalization`.
 */
export type BatchSource = Pick<Dataset, 'images' | 'labels' | 'count' | 'inputDim' | 'numClasses'> & Partial<Dataset>;

/** Options of `makeDataset`. */
export interface NormalizeOptions {
  /** Subtracted from p/255; default 0.1307 (MNIST's mean). Use 0 with std 1 for raw [0, 1] pixels. */
  mean?: number | undefined;
  /** Divides after subtracting the mean; finite and > 0; default 0.3081 (MNIST's standard deviation). */
  std?: number | undefined;
}

/**
 * Builds a dataset from a parsed images file (N×rows×cols) and labels file (N), normalising the pixels.
 *
 * Each pixel becomes x = (p/255 − mean)/std, computed with float32 rounding at each step exactly as torchvision's
 * `ToTensor()` then `Normalize((mean,), (std,))` do, so inputs match JPC's PyTorch data loaders bit for bit.
 * @param name label for messages, e.g. `"mnist-train"`.
 * @param imagesIdx parsed images file (3 dimensions, magic 0x00000803).
 * @param labelsIdx parsed labels file (1 dimension, magic 0x00000801), same count, every label < 10.
 * @param options `mean` (default 0.1307) and `std` (default 0.3081, finite, > 0).
 * @throws IdxError naming the file(s) when the shapes, counts or labels are wrong.
 */
export function makeDataset(
  name: string,
  imagesIdx: IdxArray,
  labelsIdx: IdxArray,
  options: NormalizeOptions = {},
): Dataset {
  const fn = 'makeDataset';
  if (typeof name !== 'string' || name === '') argError(fn, 'name', 'a non-empty string', name);
  checkIdxArray(fn, 'imagesIdx', imagesIdx);
  checkIdxArray(fn, 'labelsIdx', labelsIdx);
  const { mean, std } = resolveNormalization(fn, options);

  const imgName = imagesIdx.name;
  const lblName = labelsIdx.name;
  const imgFile = printable(imgName); // for messages
  const lblFile = printable(lblName);
  if (imagesIdx.dims.length !== 3) {
    throw new IdxError(
      `${imgFile}: expected an images file with 3 dimensions (count × rows × cols, magic ${hex(idxMagic(3))}), ` +
        `got ${imagesIdx.dims.length} dimension(s) [${imagesIdx.dims.join(', ')}] (magic ${hex(idxMagic(imagesIdx.dims.length))})` +
        (imagesIdx.dims.length === 1 ? '; is this a labels file?' : ''),
      imgName,
    );
  }
  if (labelsIdx.dims.length !== 1) {
    throw new IdxError(
      `${lblFile}: expected a labels file with 1 dimension (magic ${hex(idxMagic(1))}), ` +
        `got ${labelsIdx.dims.length} dimensions [${labelsIdx.dims.join(', ')}] (magic ${hex(idxMagic(labelsIdx.dims.length))})` +
        (labelsIdx.dims.length === 3 ? '; is this an images file?' : ''),
      lblName,
    );
  }
  const [count, rows, cols] = imagesIdx.dims as [number, number, number];
  const labelCount = labelsIdx.dims[0]!;
  if (count !== labelCount) {
    throw new IdxError(
      `${imgFile} and ${lblFile} do not match: the images file holds ${count} images but the labels file ` +
        `holds ${labelCount} labels`,
      imgName,
    );
  }
  if (count === 0) throw new IdxError(`${imgFile}: holds no images (count 0)`, imgName);
  if (rows === 0 || cols === 0) {
    throw new IdxError(`${imgFile}: images of ${rows}×${cols} pixels are empty`, imgName);
  }
  const labels = labelsIdx.data;
  let bad = 0;
  let firstBad = -1;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i]! >= NUM_CLASSES) {
      if (firstBad < 0) firstBad = i;
      bad++;
    }
  }
  if (firstBad >= 0) {
    throw new IdxError(
      `${lblFile}: label ${labels[firstBad]!} at index ${firstBad} is out of range; labels must be 0..${NUM_CLASSES - 1} ` +
        `(${bad} of ${labels.length} labels are ≥ ${NUM_CLASSES})`,
      lblName,
    );
  }

  const inputDim = rows * cols;
  const lut = normalizationTable(mean, std);
  const pixels = imagesIdx.data;
  let images: Float32Array;
  try {
    images = new Float32Array(pixels.length);
  } catch {
    throw new IdxError(
      `${imgFile}: its ${pixels.length} pixels need ${4 * pixels.length} bytes as float32, more than this platform could allocate`,
      imgName,
    );
  }
  for (let i = 0; i < pixels.length; i++) images[i] = lut[pixels[i]!]!;
  return {
    name,
    images,
    labels: new Uint8Array(labels), // own copy (not `slice`, which on a Node Buffer would still be a view)
    count,
    inputDim,
    imageShape: [rows, cols],
    shape: [1, rows, cols],
    numClasses: NUM_CLASSES,
    normalization: { mean, std },
    channelNormalization: { mean: [mean], std: [std] },
  };
}

/**
 * Checks `makeDataset`'s options and fills in the defaults; exported so loaders can fail before any I/O.
 * @param fn the public function to name in errors.
 * @param options `mean` (default 0.1307), `std` (default 0.3081); extra keys are rejected.
 */
export function resolveNormalization(fn: string, options: NormalizeOptions): { mean: number; std: number } {
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['mean', 'std']);
  const mean = checkFinite(fn, 'options.mean', options.mean ?? MNIST_MEAN);
  const std = checkFinite(fn, 'options.std', options.std ?? MNIST_STD, { min: 0, open: true });
  return { mean, std };
}

/**
 * The normalised value of each byte value 0..255, rounded to float32 after every operation as PyTorch does
 * (float64 then `Math.fround` gives the correctly rounded float32 result for a single +, −, ×, ÷).
 */
export function normalizationTable(mean: number, std: number): Float32Array {
  const m = Math.fround(mean);
  const s = Math.fround(std);
  const lut = new Float32Array(256);
  for (let p = 0; p < 256; p++) {
    const unit = Math.fround(p / 255);
    lut[p] = Math.fround(Math.fround(unit - m) / s);
  }
  return lut;
}

/**
 * One-hot encodes class labels.
 * @param labels class indices, each an integer in `[0, numClasses)`.
 * @param numClasses number of classes; default 10.
 * @returns `labels.length × numClasses` float32, row-major.
 */
export function oneHot(labels: ArrayLike<number>, numClasses: number = NUM_CLASSES): Float32Array {
  const fn = 'oneHot';
  if (labels === null || typeof labels !== 'object' || typeof labels.length !== 'number') {
    argError(fn, 'labels', 'an array or typed array of class indices', labels);
  }
  checkPositiveInt(fn, 'numClasses', numClasses);
  if (labels.length * numClasses > MAX_ONE_HOT_VALUES) {
    throw new WpcArgumentError(
      `${fn}: labels.length × numClasses must be at most ${MAX_ONE_HOT_VALUES} (WPC's cap on one one-hot array), got ${labels.length} × ${numClasses}`,
    );
  }
  const out = new Float32Array(labels.length * numClasses);
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]!;
    if (!Number.isInteger(c) || c < 0 || c >= numClasses) {
      argError(fn, `labels[${i}]`, `an integer in [0, ${numClasses - 1}]`, c);
    }
    out[i * numClasses + c] = 1;
  }
  return out;
}

/** The first `count` examples of a dataset; shares memory with it (no copy). */
export function subset(dataset: Dataset, count: number): Dataset {
  const fn = 'subset';
  checkDataset(fn, dataset);
  checkPositiveInt(fn, 'count', count, dataset.count);
  return {
    ...dataset,
    name: `${dataset.name}[:${count}]`,
    images: dataset.images.subarray(0, count * dataset.inputDim),
    labels: dataset.labels.subarray(0, count),
    count,
  };
}

/** One minibatch; every array is freshly allocated, so callers may keep or modify it. */
export interface Batch {
  /** `size × inputDim` normalised pixels. */
  readonly x: Float32Array;
  /** `size × numClasses` one-hot targets. */
  readonly y: Float32Array;
  /** The `size` class labels. */
  readonly labels: Uint8Array;
  /** Each example's index in the dataset. */
  readonly indices: Uint32Array;
  /** Number of examples: `batchSize`, or fewer for the last batch when `dropLast` is false. */
  readonly size: number;
}

/** Options of `batches`. */
export interface BatchOptions {
  /** Examples per batch; a positive integer, at most `dataset.count` when `dropLast` is true. */
  batchSize: number;
  /** Visit examples in a seeded random order (true) or in dataset order (false). */
  shuffle: boolean;
  /** Seed of the shuffle (a safe integer); required when `shuffle` is true. Use a different seed each epoch. */
  seed?: number | undefined;
  /** Skip the final partial batch, as JPC's notebooks do (`drop_last=True`); default true. */
  dropLast?: boolean | undefined;
}

/**
 * The order in which one epoch visits the examples: `0..count-1`, or that range shuffled by
 * `new Random(seed).shuffle(...)` (Fisher–Yates), so equal seeds give equal orders.
 * @param count number of examples.
 * @param shuffle whether to shuffle.
 * @param seed safe integer; required when `shuffle` is true, ignored otherwise.
 */
export function epochOrder(count: number, shuffle: boolean, seed?: number): Uint32Array {
  const fn = 'epochOrder';
  checkPositiveInt(fn, 'count', count, MAX_EXAMPLES);
  if (typeof shuffle !== 'boolean') argError(fn, 'shuffle', 'a boolean', shuffle);
  checkSeed(fn, 'seed', seed, shuffle);
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  if (shuffle) new Random(seed!).shuffle(order);
  return order;
}

/**
 * Iterates over one epoch of minibatches.
 *
 * Arguments are checked when this is called, not when iteration starts, so mistakes surface at the call site.
 * Each example appears at most once per epoch (exactly once unless `dropLast` drops the remainder).
 * @param dataset the examples.
 * @param options `batchSize`; `shuffle`; `seed` (required when shuffling); `dropLast` (default true).
 */
export function batches(dataset: BatchSource, options: BatchOptions): Generator<Batch, void, undefined> {
  const fn = 'batches';
  checkDataset(fn, dataset);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['batchSize', 'shuffle', 'seed', 'dropLast']);
  const { batchSize, shuffle, seed, dropLast = true } = options;
  if (typeof dropLast !== 'boolean') argError(fn, 'options.dropLast', 'a boolean', dropLast);
  if (typeof shuffle !== 'boolean') argError(fn, 'options.shuffle', 'a boolean', shuffle);
  checkBatchSize(fn, 'options.batchSize', batchSize, dataset.count, dropLast);
  checkSeed(fn, 'options.seed', seed, shuffle);
  const order = epochOrder(dataset.count, shuffle, seed);
  const numBatches = epochBatchCount(dataset.count, batchSize, dropLast);
  return generateBatches(dataset, order, batchSize, numBatches);
}

function* generateBatches(
  dataset: BatchSource,
  order: Uint32Array,
  batchSize: number,
  numBatches: number,
): Generator<Batch, void, undefined> {
  const { images, labels: allLabels, inputDim: d, numClasses } = dataset;
  for (let b = 0; b < numBatches; b++) {
    const indices = order.slice(b * batchSize, Math.min((b + 1) * batchSize, order.length));
    const size = indices.length;
    const x = new Float32Array(size * d);
    const labels = new Uint8Array(size);
    for (let k = 0; k < size; k++) {
      const i = indices[k]!;
      x.set(images.subarray(i * d, (i + 1) * d), k * d);
      labels[k] = allLabels[i]!;
    }
    yield { x, y: oneHot(labels, numClasses), labels, indices, size };
  }
}

/**
 * Number of batches in one epoch.
 * @param count number of examples.
 * @param batchSize examples per batch; at most `count` when `dropLast` is true.
 * @param dropLast whether the final partial batch is skipped; default true.
 */
export function epochBatchCount(count: number, batchSize: number, dropLast = true): number {
  const fn = 'epochBatchCount';
  checkPositiveInt(fn, 'count', count);
  if (typeof dropLast !== 'boolean') argError(fn, 'dropLast', 'a boolean', dropLast);
  checkBatchSize(fn, 'batchSize', batchSize, count, dropLast);
  return dropLast ? Math.floor(count / batchSize) : Math.ceil(count / batchSize);
}

function checkBatchSize(fn: string, arg: string, batchSize: unknown, count: number, dropLast: boolean): void {
  if (dropLast && typeof batchSize === 'number' && Number.isInteger(batchSize) && batchSize > count) {
    throw new WpcArgumentError(
      `${fn}: ${arg} must be an integer in [1, ${count}] (the number of examples) when dropLast is true, ` +
        `got ${batchSize}: every batch would be dropped`,
    );
  }
  checkPositiveInt(fn, arg, batchSize);
}

function checkSeed(fn: string, arg: string, seed: unknown, required: boolean): void {
  if (seed === undefined) {
    if (required) argError(fn, arg, 'a safe integer when shuffle is true', seed);
    return;
  }
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) argError(fn, arg, 'a safe integer', seed);
}

function checkIdxArray(fn: string, arg: string, value: unknown): asserts value is IdxArray {
  const v = value as Partial<IdxArray> | null;
  if (
    typeof v !== 'object' ||
    v === null ||
    typeof v.name !== 'string' ||
    !Array.isArray(v.dims) ||
    !(v.data instanceof Uint8Array)
  ) {
    argError(fn, arg, 'a parsed IDX array ({ name, dims, data } from parseIdx)', value);
  }
}

/** Cheap structural check, so a wrong argument fails here rather than as an out-of-range read later. */
function checkDataset(fn: string, value: unknown): asserts value is BatchSource {
  const d = value as Partial<Dataset> | null;
  if (
    typeof d !== 'object' ||
    d === null ||
    !(d.images instanceof Float32Array) ||
    !(d.labels instanceof Uint8Array) ||
    typeof d.count !== 'number' ||
    typeof d.inputDim !== 'number' ||
    d.labels.length !== d.count ||
    d.images.length !== d.count * d.inputDim
  ) {
    throw new WpcArgumentError(
      `${fn}: dataset must be a Dataset (from makeDataset or loadDataset) whose images hold count × inputDim ` +
        `values and labels hold count values, got ${describe(value)}`,
    );
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
