/**
 * Grids of images as PNG files (label → image samples of generative models, reconstructions), encoded with
 * fast-png (image-js's encoder: small, maintained, no native code, works in Node and browsers).
 */
import { encode } from 'fast-png';
import { WpcArgumentError, argError, checkFinite, checkKnownKeys, checkPositiveInt } from '../runtime/errors.js';
import { MNIST_MEAN, MNIST_STD } from '../data/dataset.js';

/** Most pixels of one grid image (256 Mi: as many bytes of greyscale before PNG compression). */
export const MAX_GRID_PIXELS = 2 ** 28;

export interface ImageGridOptions {
  /** Pixels per image row and column. Default: √(values per image) when that is a whole number (28 for 784). */
  height?: number;
  width?: number;
  /** Images per grid row. Default: 10, or fewer when there are fewer images. */
  columns?: number;
  /**
   * How values map to grey levels: `'mnist'` (default) undoes WPC's MNIST normalisation ((v·σ + μ)·255, so a
   * model trained on normalised images shows them as they were), `'per-image'` stretches each image's own
   * min..max, or a fixed `{ min, max }` → 0..255. Values outside are clipped.
   */
  range?: 'mnist' | 'per-image' | { min: number; max: number };
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
 * A greyscale PNG of `count` images given row-major in `images` (count × height·width values, e.g. a [B, 784]
 * tensor's data), laid out in a grid. Returns the PNG file's bytes.
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
  checkKnownKeys(fn, 'options', options, ['height', 'width', 'columns', 'range', 'padding', 'scale']);
  const pixels = images.length / n;
  let h: number;
  let w: number;
  if (options.height === undefined && options.width === undefined) {
    h = w = Math.round(Math.sqrt(pixels));
    if (h * w !== pixels)
      throw new WpcArgumentError(
        `${fn}: options.height and options.width are needed: ${pixels} values per image is not a square`,
      );
  } else {
    h = checkPositiveInt(fn, 'options.height', options.height ?? pixels / options.width!);
    w = checkPositiveInt(fn, 'options.width', options.width ?? pixels / h);
    if (h * w !== pixels)
      throw new WpcArgumentError(
        `${fn}: options.height × options.width must be ${pixels} (values per image), got ${h} × ${w}`,
      );
  }
  const columns = checkPositiveInt(fn, 'options.columns', options.columns ?? Math.min(10, n));
  const padding = options.padding ?? 2;
  if (!Number.isSafeInteger(padding) || padding < 0) argError(fn, 'options.padding', 'a non-negative integer', padding);
  const scale = checkPositiveInt(fn, 'options.scale', options.scale ?? 2, 16);
  const range = options.range ?? 'mnist';
  let fixed: { min: number; max: number } | null = null;
  if (range === 'mnist') fixed = { min: -MNIST_MEAN / MNIST_STD, max: (1 - MNIST_MEAN) / MNIST_STD };
  else if (typeof range === 'object' && range !== null) {
    checkKnownKeys(fn, 'options.range', range, ['min', 'max']);
    const min = checkFinite(fn, 'options.range.min', range.min);
    const max = checkFinite(fn, 'options.range.max', range.max);
    if (!(max > min))
      throw new WpcArgumentError(`${fn}: options.range.max must be above options.range.min, got ${min}..${max}`);
    fixed = { min, max };
  } else if (range !== 'per-image') argError(fn, 'options.range', "'mnist', 'per-image' or { min, max }", range);

  const { width: outW, height: outH } = imageGridShape(n, h, w, { columns, scale, padding });
  const cellW = w * scale + padding;
  const cellH = h * scale + padding;
  if (outW * outH > MAX_GRID_PIXELS) {
    throw new WpcArgumentError(
      `${fn}: the grid of ${n} images (${columns} columns, scale ${scale}, padding ${padding}) would be ${outW} × ${outH} pixels, ` +
        `more than ${MAX_GRID_PIXELS} (WPC's cap for one image); use fewer images, columns, scale or padding`,
    );
  }
  const data = new Uint8Array(outW * outH); // black background
  for (let i = 0; i < n; i++) {
    const base = i * pixels;
    let lo = fixed?.min ?? Infinity;
    let hi = fixed?.max ?? -Infinity;
    if (!fixed) {
      for (let p = 0; p < pixels; p++) {
        const v = images[base + p]!;
        if (Number.isFinite(v)) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
      if (!(hi > lo)) hi = lo + 1;
    }
    const x0 = padding + (i % columns) * cellW;
    const y0 = padding + Math.floor(i / columns) * cellH;
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        const v = images[base + r * w + c]!;
        const g = Number.isFinite(v) ? Math.round((255 * (Math.min(hi, Math.max(lo, v)) - lo)) / (hi - lo)) : 0;
        for (let dy = 0; dy < scale; dy++) {
          const row = (y0 + r * scale + dy) * outW + x0 + c * scale;
          data.fill(g, row, row + scale);
        }
      }
    }
  }
  return encode({ width: outW, height: outH, data, channels: 1, depth: 8 });
}
