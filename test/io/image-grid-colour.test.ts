// Colour image grids: three channel planes per image (a CIFAR-10 dataset's order) become RGB pixels, each channel
// mapped through its own normalisation; greyscale grids are as before. Pixels checked as decoded back.
import { decode } from 'fast-png';
import { describe, expect, it } from 'vitest';
import { makeCifarDataset } from '../../src/data/cifar.js';
import { imageGridPng } from '../../src/io/image-grid.js';
import { RECORD } from '../support/cifar-fixtures.js';

describe('imageGridPng with channels: 3', () => {
  it('shows a CIFAR-10 image as it was: each plane undone through its channel normalisation', () => {
    // Two 32×32 records: pixel (y, x) of channel c is (c·80 + y·4 + x) % 256.
    const bytes = new Uint8Array(2 * RECORD);
    for (let r = 0; r < 2; r++)
      for (let c = 0; c < 3; c++)
        for (let y = 0; y < 32; y++)
          for (let x = 0; x < 32; x++) bytes[r * RECORD + 1 + c * 1024 + y * 32 + x] = (c * 80 + y * 4 + x + r) % 256;
    const mean = [0.4914, 0.4822, 0.4465];
    const std = [0.247, 0.2435, 0.2616];
    for (const norm of [undefined, { mean, std }]) {
      const d = makeCifarDataset('two', [{ file: 'two.bin', bytes }], norm === undefined ? {} : norm);
      const png = decode(
        imageGridPng(d.images, 2, { channels: 3, range: d.channelNormalization, padding: 1, scale: 1, columns: 2 }),
      );
      expect([png.width, png.height, png.channels]).toEqual([1 + 2 * 33, 1 + 33, 3]);
      for (let r = 0; r < 2; r++) {
        for (const [y, x] of [
          [0, 0],
          [5, 7],
          [31, 31],
        ] as const) {
          const at = ((1 + y) * png.width + 1 + r * 33 + x) * 3;
          const rgb = [...png.data.subarray(at, at + 3)];
          expect(rgb, `image ${r} at ${y},${x}`).toEqual([0, 1, 2].map((c) => (c * 80 + y * 4 + x + r) % 256));
        }
      }
      expect([...png.data.subarray(0, 3)]).toEqual([0, 0, 0]); // the padding
    }
  });

  it('per-image stretches one range over all three channels; greyscale is unchanged by the option', () => {
    const images = new Float32Array(3 * 4);
    images.set([0, 1, 2, 3], 0); // red
    images.set([4, 5, 6, 7], 4); // green
    images.set([8, 8, 8, 8], 8); // blue
    const png = decode(imageGridPng(images, 1, { channels: 3, range: 'per-image', padding: 0, scale: 1 }));
    expect([png.width, png.height, png.channels]).toEqual([2, 2, 3]);
    expect([...png.data.subarray(0, 3)]).toEqual([0, Math.round((255 * 4) / 8), 255]);
    expect([...png.data.subarray(9, 12)]).toEqual([Math.round((255 * 3) / 8), Math.round((255 * 7) / 8), 255]);
    const grey = new Float32Array([0, 0.5, 1, 1]);
    expect(imageGridPng(grey, 1, { channels: 1, range: { min: 0, max: 1 } })).toEqual(
      imageGridPng(grey, 1, { range: { min: 0, max: 1 } }),
    );
    // A one-channel { mean, std } is the 'mnist' range when it holds MNIST's normalisation.
    expect(imageGridPng(grey, 1, { range: { mean: [0.1307], std: [0.3081] } })).toEqual(imageGridPng(grey, 1));
  });

  it('refuses a channel count, a normalisation or a length that does not fit', () => {
    const six = new Float32Array(3 * 4);
    expect(() => imageGridPng(six, 1, { channels: 2 as never })).toThrow(
      /imageGridPng: options\.channels must be 1 or 3, got 2/,
    );
    expect(() => imageGridPng(new Float32Array(10), 1, { channels: 3 })).toThrow(
      /10 values per image are not a multiple of 3 channels/,
    );
    expect(() => imageGridPng(six, 1, { channels: 3, range: { mean: [0.5], std: [0.5, 0.5, 0.5] } })).toThrow(
      /options\.range\.mean must be an array of 3 number\(s\), one per channel, got an array of length 1/,
    );
    expect(() => imageGridPng(six, 1, { channels: 3, range: { mean: [0, 0, 0], std: [1, 0, 1] } })).toThrow(
      /options\.range\.std\[1\] must be a finite number > 0, got 0/,
    );
    expect(() => imageGridPng(new Float32Array(3 * 6), 1, { channels: 3 })).toThrow(
      /options\.height and options\.width are needed: 6 pixels per image is not a square/,
    );
  });
});
