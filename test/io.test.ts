/**
 * PNG image grids and model checkpoints: pixels as decoded back, round trips, and refusals that leave existing
 * files untouched.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { describe, expect, it } from 'vitest';
import {
  MNIST_MEAN,
  MNIST_STD,
  imageGridPng,
  loadModel,
  makeMlp,
  makeSkipModel,
  modelFromCheckpoint,
  modelToCheckpoint,
  saveModel,
  writeImageGrid,
} from '../src/node.js';
import { useRuntime } from './helpers.js';

const rt = useRuntime();
const dir = mkdtempSync(join(tmpdir(), 'wpc-io-'));

describe('imageGridPng', () => {
  it('lays images out in a grid with padding and scale, mapping values to grey levels', () => {
    // Three 2×3 images: a ramp 0..5, a constant, and one with a NaN.
    const images = Float32Array.from([0, 1, 2, 3, 4, 5, 7, 7, 7, 7, 7, 7, 0, NaN, 10, 0, 0, 0]);
    const png = decode(imageGridPng(images, 3, { height: 2, width: 3, columns: 2, padding: 1, scale: 2, range: 'per-image' }));
    // 2 columns of 3·2 px + padding: 1 + 2·(6 + 1) = 15 wide; 2 rows of 2·2 px: 1 + 2·(4 + 1) = 11 high.
    expect([png.width, png.height, png.channels, png.depth]).toEqual([15, 11, 1, 8]);
    const at = (x: number, y: number) => png.data[y * png.width + x]!;
    // Image 0 (top left) starts at (1, 1); its pixel (r, c) covers 2×2 pixels from (1 + 2c, 1 + 2r).
    expect([at(1, 1), at(2, 2), at(3, 1), at(5, 1), at(1, 3), at(5, 3)]).toEqual([0, 0, 51, 102, 153, 255]);
    // The padding is black; a constant image maps to black (no range); a NaN is black.
    expect(at(0, 0)).toBe(0);
    expect(at(8, 1)).toBe(0);
    expect(at(1 + 2, 6)).toBe(0); // image 2's NaN at (r 0, c 1)
    expect(at(1 + 4, 6)).toBe(255);
  });

  it('undoes the MNIST normalisation by default', () => {
    const black = -MNIST_MEAN / MNIST_STD;
    const white = (1 - MNIST_MEAN) / MNIST_STD;
    const images = new Float32Array(784).fill(black);
    images[0] = white;
    images[1] = (0.25 - MNIST_MEAN) / MNIST_STD;
    const png = decode(imageGridPng(images, 1, { padding: 0, scale: 1 }));
    expect([png.width, png.height]).toEqual([28, 28]);
    expect([png.data[0], png.data[1], png.data[2]]).toEqual([255, 64, 0]);
  });

  it('refuses what it cannot lay out', () => {
    expect(() => imageGridPng(new Float32Array(10), 3)).toThrow(/not a multiple of count = 3/);
    expect(() => imageGridPng(new Float32Array(10), 1)).toThrow(/options.height and options.width are needed: 10 values per image is not a square/);
    expect(() => imageGridPng(new Float32Array(12), 2, { height: 4, width: 2 })).toThrow(/height × options.width must be 6/);
    expect(() => imageGridPng(new Float32Array(4), 1, { range: { min: 1, max: 1 } })).toThrow(/range.max must be above/);
    expect(() => imageGridPng(new Float32Array(4), 1, { colour: true } as never)).toThrow(/unknown option.*colour|colour/);
  });
});

describe('checkpoints', () => {
  it('a model survives a round trip through a checkpoint and a file, parameterisation included', async () => {
    const model = makeMlp(rt(), { seed: 3, inputDim: 5, width: 4, depth: 4, outputDim: 3, actFn: 'gelu', useBias: true, paramType: 'mupc', skipModel: makeSkipModel(4), gamma: 2 });
    const checkpoint = await modelToCheckpoint(model, { note: 'test' });
    expect(checkpoint).toMatchObject({ format: 'wpc-model', version: 1, dims: [5, 4, 4, 4, 3], actFn: 'gelu', useBias: true, paramType: 'mupc', gamma: 2, meta: { note: 'test' } });
    const copy = modelFromCheckpoint(rt(), JSON.parse(JSON.stringify(checkpoint)));
    expect(copy.layers.map((l) => [l.scale, l.skip])).toEqual(model.layers.map((l) => [l.scale, l.skip]));
    expect(await copy.toArrays()).toEqual(await model.toArrays());
    const file = join(dir, 'model.json');
    await saveModel(model, file);
    const loaded = await loadModel(rt(), file);
    expect(await loaded.toArrays()).toEqual(await model.toArrays());
    for (const m of [model, copy, loaded]) m.dispose();
  });

  it('refuses damaged checkpoints with the field at fault', async () => {
    const model = makeMlp(rt(), { seed: 1, inputDim: 3, width: 2, depth: 2, outputDim: 2, actFn: 'relu' });
    const good = await modelToCheckpoint(model);
    const bad = (patch: object) => () => modelFromCheckpoint(rt(), { ...good, ...patch });
    expect(bad({ format: 'other' })).toThrow(/checkpoint.format must be 'wpc-model'/);
    expect(bad({ version: 9 })).toThrow(/version 9 is not supported/);
    expect(bad({ dims: [3, 2] })).toThrow(/holds 10 values but dims 3→2 need 6/);
    expect(bad({ params: 'not base64!' })).toThrow(/base64/);
    expect(bad({ actFn: 'swish' })).toThrow(/checkpoint.actFn/);
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{ nope');
    await expect(loadModel(rt(), file)).rejects.toThrow(/is not a WPC checkpoint/);
    await expect(loadModel(rt(), join(dir, 'missing.json'))).rejects.toThrow(/cannot read/);
    model.dispose();
  });

  it('a failed write leaves the existing file as it was', async () => {
    const file = join(dir, 'keep.png');
    writeFileSync(file, 'precious');
    await expect(writeImageGrid(file, new Float32Array(10), { count: 3 })).rejects.toThrow(/multiple/);
    expect(readFileSync(file, 'utf8')).toBe('precious');
    await writeImageGrid(file, rt().tensor(new Float32Array(2 * 16), [2, 16]), { scale: 1, padding: 0, range: 'per-image' });
    expect(decode(readFileSync(file)).width).toBe(8);
  });
});
