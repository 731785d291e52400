/**
 * Grids of images as PNG files (label → image samples of generative models, reconstructions), greyscale or
 * colour (an image's channel planes, as datasets hold them), encoded with fast-png (image-js's encoder: small,
 * maintained, no native code, works in Node and browsers).
 */
import { encode } from 'fast-png';
import { WpcArgumentError, argError, checkFinite, checkKnownKeys, checkPositiveInt } from '../runtime/errors.js';
import { MNIST_MEAN, MNIST_STD } from '../data/dataset.js';

/** Most pixels of one grid image (256 Mi: as many bytes of greyscale before PNG compression). */
export const MAX_GRID_PIXELS = 2 ** 28;

/** How many values of an image make one pixel: greyscale, or red, green, blue. */
type Channels = 1 | 3;

export interface ImageGridOptions {
  /**
   * 1 (default): each image is height × width grey values; 3: each image is three height × width planes, red,
   * green then blue (a CIFAR-10 `Dataset`'s order, `shape` [3, 32, 32]), and the PNG is in colour.
   */
  channels?: Channels;
  /** Pixels per image row and column. Default: √(pixels per image) when that is a whole number (28 for 784). */
  height?: number;
  width?: number;
  /** Images per grid row. Default: 10, or fewer when there are fewer images. */
  columns?: number;
  /**
   * How values map to levels 0..255: `'mnist'` (default) undoes WPC's MNIST normalisation ((v·σ + μ)·255, so a
   * model trained on normalised images shows them as they were), `{ mean, std }` undoes a per-channel
   * normalisation (one value per channel, e.g. a dataset's `channelNormalization`), `'per-image'` stretches each
   * image's own min..max, or a fixed `{ min, max }` → 0..255. Values outside are clipped.
   */
  range?: 'mnist' | 'per-image' | { min: number; max: number } | { mean: readonly number[]; std: readonly number[] };
  /** Background pixels between images and around the grid. Default 2. */
  padding?: number;
  /** Each pixel becomes scale × scale. Default 2. */
  scale?: number;
}

/** The grid's size in pixels for `count` images of h × w pixels (options as `imageGridPng`'s, already checked). */
export function imageGridShape(
  count: number,
  h: number,
  w: number,
  o: { columns: number; scale: number; padding: number },
): { width: number; height: number } {
  const rows = Math.ceil(count / o.columns);
  return {
    width: o.columns * (w * o.scale + o.padding) + o.padding,
    height: rows * (h * o.scale + o.padding) + o.padding,
  };
}

/**
 * A PNG of `count` images given one after another in `images` (count × channels·height·width values, e.g. a
 * [B, 784] tensor's data; each channel a row-major plane), laid out in a grid; greyscale, or colour with
 * `channels: 3`. Returns the PNG file's bytes.
 */
export function imageGridPng(images: Float32Array, count: number, options: ImageGridOptions = {}): Uint8Array {
  const fn = 'imageGridPng';
  if (!(images instanceof Float32Array))
    argError(fn, 'images', 'a Float32Array of count × height·width values', images);
  const n = checkPositiveInt(fn, 'count', count);
  if (images.length % n !== 0 || images.length === 0) {
    throw new WpcArgumentError(
      `${fn}: images must hold count × pixels values; ${images.length} values are not a multiple of count = ${n}`,
    );
  }
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['channels', 'height', 'width', 'columns', 'range', 'padding', 'scale']);
  const channels = options.channels ?? 1;
  if (channels !== 1 && channels !== 3) argError(fn, 'options.channels', '1 or 3', channels);
  if ((images.length / n) % channels !== 0) {
    throw new WpcArgumentError(
      `${fn}: images must hold count × channels × pixels values; ${images.length / n} values per image are not a multiple of ${channels} channels`,
    );
  }
  const pixels = images.length / n / channels;
  let h: number;
  let w: number;
  if (options.height === undefined && options.width === undefined) {
    h = w = Math.round(Math.sqrt(pixels));
    if (h * w !== pixels)
      throw new WpcArgumentError(
        `${fn}: options.height and options.width are needed: ${pixels} ${channels === 1 ? 'values' : 'pixels'} per image is not a square`,
      );
  } else {
    h = checkPositiveInt(fn, 'options.height', options.height ?? pixels / options.width!);
    w = checkPositiveInt(fn, 'options.width', options.width ?? pixels / h);
    if (h * w !== pixels)
      throw new WpcArgumentError(
        `${fn}: options.height × options.width must be ${pixels} (${channels === 1 ? 'values' : 'pixels'} per image), got ${h} × ${w}`,
      );
  }
  const columns = checkPositiveInt(fn, 'options.columns', options.columns ?? Math.min(10, n));
  const padding = options.padding ?? 2;
  if (!Number.isSafeInteger(padding) || padding < 0) argError(fn, 'options.padding', 'a non-negative integer', padding);
  const scale = checkPositiveInt(fn, 'options.scale', options.scale ?? 2, 16);
  const range = options.range ?? 'mnist';
  // Each channel's fixed range, or null for 'per-image'.
  let fixed: { min: number; max: number }[] | null = null;
  const undo = (mean: number, std: number) => ({ min: -mean / std, max: (1 - mean) / std });
  if (range === 'mnist') fixed = new Array(channels).fill(undo(MNIST_MEAN, MNIST_STD));
  else if (typeof range === 'object' && range !== null && ('mean' in range || 'std' in range)) {
    checkKnownKeys(fn, 'options.range', range, ['mean', 'std']);
    fixed = Array.from({ length: channels }, (_, c) => {
      const pick = (key: 'mean' | 'std') => {
        const all = (range as Record<string, unknown>)[key];
        if (!Array.isArray(all) || all.length !== channels)
          argError(fn, `options.range.${key}`, `an array of ${channels} number(s), one per channel`, all);
        return all[c] as unknown;
      };
      const mean = checkFinite(fn, `options.range.mean[${c}]`, pick('mean'));
      return undo(mean, checkFinite(fn, `options.range.std[${c}]`, pick('std'), { min: 0, open: true }));
    });
  } else if (typeof range === 'object' && range !== null) {
    checkKnownKeys(fn, 'options.range', range, ['min', 'max']);
    const min = checkFinite(fn, 'options.range.min', range.min);
    const max = checkFinite(fn, 'options.range.max', range.max);
    if (!(max > min))
      throw new WpcArgumentError(`${fn}: options.range.max must be above options.range.min, got ${min}..${max}`);
    fixed = new Array(channels).fill({ min, max });
  } else if (range !== 'per-image')
    argError(fn, 'options.range', "'mnist', 'per-image', { min, max } or { mean, std }", range);

  const { width: outW, height: outH } = imageGridShape(n, h, w, { columns, scale, padding });
  const cellW = w * scale + padding;
  const cellH = h * scale + padding;
  if (outW * outH * channels > MAX_GRID_PIXELS) {
    throw new WpcArgumentError(
      `${fn}: the grid of ${n} images (${columns} columns, scale ${scale}, padding ${padding}) would be ${outW} × ${outH} pixels` +
        `${channels === 1 ? '' : ` × ${channels} channels`}, more than ${MAX_GRID_PIXELS} (WPC's cap for one image); ` +
        'use fewer images, columns, scale or padding',
    );
  }
  const data = new Uint8Array(outW * outH * channels); // black background
  const values = pixels * channels;
  for (let i = 0; i < n; i++) {
    const base = i * values;
    let ranges = fixed;
    if (!ranges) {
      // One range over every channel of the image, so that its colours keep their balance.
      let lo = Infinity;
      let hi = -Infinity;
      for (let p = 0; p < values; p++) {
        const v = images[base + p]!;
        if (Number.isFinite(v)) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
      if (!(hi > lo)) hi = lo + 1;
      ranges = new Array(channels).fill({ min: lo, max: hi });
    }
    const x0 = padding + (i % columns) * cellW;
    const y0 = padding + Math.floor(i / columns) * cellH;
    for (let ch = 0; ch < channels; ch++) {
      const { min: lo, max: hi } = ranges[ch]!;
      const plane = base + ch * pixels;
      for (let r = 0; r < h; r++) {
        for (let c = 0; c < w; c++) {
          const v = images[plane + r * w + c]!;
          const g = Number.isFinite(v) ? Math.round((255 * (Math.min(hi, Math.max(lo, v)) - lo)) / (hi - lo)) : 0;
          for (let dy = 0; dy < scale; dy++) {
            const row = ((y0 + r * scale + dy) * outW + x0 + c * scale) * channels + ch;
            for (let dx = 0; dx < scale; dx++) data[row + dx * channels] = g;
          }
        }
      }
    }
  }
  return encode({ width: outW, height: outH, data, channels, depth: 8 });
}
