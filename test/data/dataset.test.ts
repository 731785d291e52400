// Dataset module: IDX parsing, MNIST / Fashion-MNIST loading and normalisation, minibatching. No GPU needed.
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  batches,
  epochBatchCount,
  epochOrder,
  makeDataset,
  oneHot,
  subset,
  type Batch,
  type Dataset,
} from '../../src/data/dataset.js';
import { IdxError, parseIdx } from '../../src/data/idx.js';
import { expectedFileNames, loadDataset, type DatasetName, type Split } from '../../src/data/node.js';
import { Random } from '../../src/util/random.js';
import { idxBytes } from '../support/idx-fixtures.js';

// Computed before any test touches process.env.
const ENV_DIR = process.env.WPC_DATA_DIR;
const DATA_DIR = ENV_DIR ?? fileURLToPath(new URL('../../../shared/datasets', import.meta.url));
// The real datasets are required (CI and the README point at ../shared/datasets): a missing copy fails loudly.

// Every real split is read at most once per file.
const cache = new Map<string, Promise<Dataset>>();
function load(name: DatasetName, split: Split): Promise<Dataset> {
  const key = `${name}/${split}`;
  let p = cache.get(key);
  if (!p) {
    p = loadDataset(name, split, { dataDir: DATA_DIR });
    cache.set(key, p);
  }
  return p;
}

// Values of torchvision's ToTensor + Normalize((0.1307,), (0.3081,)) in float32 (from numpy float32 arithmetic).
const NORM_0 = -0.4242129623889923;
const NORM_128 = 1.2050011157989502;
const NORM_255 = 2.821486711502075;

function labelCounts(labels: Uint8Array): number[] {
  const counts = new Array<number>(10).fill(0);
  for (const l of labels) counts[l]!++;
  return counts;
}

/** A small dataset of `n` 2×2 images whose pixel values encode their index, labels i % 10. */
function toyDataset(n: number): Dataset {
  const pixels = Array.from({ length: n * 4 }, (_, i) => Math.floor(i / 4) % 256);
  const labels = Array.from({ length: n }, (_, i) => i % 10);
  return makeDataset(
    'toy',
    parseIdx(idxBytes([n, 2, 2], pixels), 'toy-images'),
    parseIdx(idxBytes([n], labels), 'toy-labels'),
    {
      mean: 0,
      std: 1,
    },
  );
}

function collect(it: Iterable<Batch>): Batch[] {
  return [...it];
}

describe('real datasets', () => {
  it('MNIST train: 60000 × 28×28 with the published label counts', async () => {
    const d = await load('mnist', 'train');
    expect(d.name).toBe('mnist-train');
    expect(d.count).toBe(60000);
    expect(d.inputDim).toBe(784);
    expect(d.imageShape).toEqual([28, 28]);
    expect(d.numClasses).toBe(10);
    expect(d.images).toBeInstanceOf(Float32Array);
    expect(d.images.length).toBe(60000 * 784);
    expect(d.labels.length).toBe(60000);
    expect(labelCounts(d.labels)).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    expect(d.labels[0]).toBe(5); // the famous first training digit
    // Plain typed arrays, not Node Buffers (whose slice() is a view), so browser and Node code see the same thing.
    expect(Object.getPrototypeOf(d.labels)).toBe(Uint8Array.prototype);
  });

  it('MNIST test: 10000 × 28×28 with the published label counts', async () => {
    const d = await load('mnist', 'test');
    expect(d.name).toBe('mnist-test');
    expect(d.count).toBe(10000);
    expect(d.images.length).toBe(10000 * 784);
    expect(labelCounts(d.labels)).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    expect(d.labels[0]).toBe(7);
  });

  it('Fashion-MNIST: 6000 per class in train, 1000 per class in test', async () => {
    const train = await load('fashion-mnist', 'train');
    const test = await load('fashion-mnist', 'test');
    expect([train.count, train.inputDim, test.count, test.inputDim]).toEqual([60000, 784, 10000, 784]);
    expect(labelCounts(train.labels)).toEqual(new Array(10).fill(6000));
    expect(labelCounts(test.labels)).toEqual(new Array(10).fill(1000));
    expect(train.labels[0]).toBe(9); // ankle boot
  });

  it('normalises x = (p/255 - 0.1307)/0.3081 in float32, as torchvision does', async () => {
    const d = await load('mnist', 'train');
    expect(d.normalization).toEqual({ mean: 0.1307, std: 0.3081 });
    // Pixel 0 (background) is the first value of every image; 255 occurs in MNIST too.
    expect(d.images[0]).toBeCloseTo(-0.1307 / 0.3081, 6);
    expect(d.images[0]).toBe(NORM_0);
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    let sumSq = 0;
    const values = new Set<number>();
    for (const v of d.images) {
      if (v < min) min = v;
      if (v > max) max = v;
      sum += v;
      sumSq += v * v;
      if (values.size < 300) values.add(v);
    }
    expect(min).toBe(NORM_0);
    expect(max).toBe(NORM_255);
    expect(values.has(NORM_128)).toBe(true);
    expect(values.size).toBeLessThanOrEqual(256);
    // 0.1307 / 0.3081 are MNIST's own training statistics, so the normalised training set is ~N(0, 1).
    const mean = sum / d.images.length;
    const std = Math.sqrt(sumSq / d.images.length - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(1e-3);
    expect(Math.abs(std - 1)).toBeLessThan(1e-3);
  });

  it('mean and std are configurable (0 and 1 give p/255 in [0, 1])', async () => {
    const raw = await loadDataset('mnist', 'test', { dataDir: DATA_DIR, mean: 0, std: 1 });
    const norm = await load('mnist', 'test');
    expect(raw.normalization).toEqual({ mean: 0, std: 1 });
    // Same images, two normalisations: recover p from the raw value and redo torchvision's float32 arithmetic.
    let max = 0;
    let mismatches = 0;
    for (let i = 0; i < raw.images.length; i++) {
      const v = raw.images[i]!;
      if (v > max) max = v;
      const p = Math.round(v * 255);
      if (v !== Math.fround(p / 255)) mismatches++;
      if (norm.images[i] !== Math.fround(Math.fround(v - Math.fround(0.1307)) / Math.fround(0.3081))) mismatches++;
    }
    expect(mismatches).toBe(0);
    expect(max).toBe(1);
    expect(raw.images[0]).toBe(0);
  });

  it('takes the data directory from WPC_DATA_DIR, and accepts a folder holding the files directly', async () => {
    const saved = process.env.WPC_DATA_DIR;
    try {
      process.env.WPC_DATA_DIR = DATA_DIR;
      const viaEnv = await loadDataset('mnist', 'test');
      expect(viaEnv.labels).toEqual((await load('mnist', 'test')).labels);
    } finally {
      restoreEnv(saved);
    }
    const direct = await loadDataset('fashion-mnist', 'test', { dataDir: join(DATA_DIR, 'fashion-mnist') });
    expect(direct.labels).toEqual((await load('fashion-mnist', 'test')).labels);
  });

  it("refuses the other dataset's folder", async () => {
    await expect(loadDataset('fashion-mnist', 'test', { dataDir: join(DATA_DIR, 'mnist') })).rejects.toThrow(
      /asked for Fashion-MNIST but the data directory .*mnist .*looks like the MNIST folder/,
    );
  });

  describe('in a temp dir', () => {
    let tmp = '';
    beforeAll(async () => {
      tmp = await mkdtemp(join(tmpdir(), 'wpc-data-real-'));
    });
    afterAll(async () => {
      await rm(tmp, { recursive: true, force: true });
    });

    it('catches MNIST files in the fashion-mnist folder (same names and sizes)', async () => {
      await mkdir(join(tmp, 'swapped', 'fashion-mnist'), { recursive: true });
      for (const f of expectedFileNames()) {
        await symlink(join(DATA_DIR, 'mnist', f), join(tmp, 'swapped', 'fashion-mnist', f));
      }
      await expect(loadDataset('fashion-mnist', 'test', { dataDir: join(tmp, 'swapped') })).rejects.toThrow(
        /t10k-labels-idx1-ubyte\.gz: does not look like Fashion-MNIST.*found per-class counts 980 1135/,
      );
    });

    it('accepts already-decompressed files (no .gz)', async () => {
      const dir = join(tmp, 'plain', 'mnist');
      await mkdir(dir, { recursive: true });
      for (const f of ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) {
        await writeFile(join(dir, f), gunzipSync(await readFile(join(DATA_DIR, 'mnist', `${f}.gz`))));
      }
      const d = await loadDataset('mnist', 'test', { dataDir: join(tmp, 'plain') });
      const ref = await load('mnist', 'test');
      expect(d.labels).toEqual(ref.labels);
      expect(sameFloats(d.images, ref.images)).toBe(true);
    });
  });

  describe('batching MNIST train', () => {
    it('drop_last gives 937 batches of 64 (938 without), each example at most once', async () => {
      const d = await load('mnist', 'train');
      expect(epochBatchCount(60000, 64)).toBe(937);
      expect(epochBatchCount(60000, 64, true)).toBe(937);
      expect(epochBatchCount(60000, 64, false)).toBe(938);
      expect(epochBatchCount(10000, 10000)).toBe(1);

      const seen = new Uint8Array(d.count);
      let n = 0;
      for (const b of batches(d, { batchSize: 64, shuffle: true, seed: 0 })) {
        expect(b.size).toBe(64);
        expect(b.x.length).toBe(64 * 784);
        expect(b.y.length).toBe(64 * 10);
        for (const i of b.indices) seen[i]!++;
        n++;
      }
      expect(n).toBe(937);
      expect(seen.every((s) => s <= 1)).toBe(true);
      expect(seen.reduce((a, s) => a + s, 0)).toBe(937 * 64);

      seen.fill(0);
      const all = collect(batches(d, { batchSize: 64, shuffle: true, seed: 0, dropLast: false }));
      expect(all.length).toBe(938);
      expect(all.at(-1)!.size).toBe(60000 - 937 * 64);
      for (const b of all) for (const i of b.indices) seen[i]!++;
      expect(seen.every((s) => s === 1)).toBe(true);
    });

    it('a batch holds the right images, labels and one-hot targets', async () => {
      const d = await load('mnist', 'train');
      const [b] = batches(d, { batchSize: 32, shuffle: true, seed: 7 });
      expect(b).toBeDefined();
      for (let k = 0; k < b!.size; k++) {
        const i = b!.indices[k]!;
        expect(b!.labels[k]).toBe(d.labels[i]);
        expect(b!.x.subarray(k * 784, (k + 1) * 784)).toEqual(d.images.subarray(i * 784, (i + 1) * 784));
        const row = Array.from(b!.y.subarray(k * 10, (k + 1) * 10));
        expect(row).toEqual(Array.from({ length: 10 }, (_, c) => (c === d.labels[i] ? 1 : 0)));
      }
    });
  });
});

describe('parseIdx', () => {
  it('parses images and labels headers', () => {
    const img = parseIdx(idxBytes([3, 2, 2]), 'img');
    expect(img.name).toBe('img');
    expect(img.dims).toEqual([3, 2, 2]);
    expect(Array.from(img.data)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const lbl = parseIdx(idxBytes([4], [3, 1, 4, 1]), 'lbl');
    expect(lbl.dims).toEqual([4]);
    expect(Array.from(lbl.data)).toEqual([3, 1, 4, 1]);
  });

  it('names the file and the problem', () => {
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array([0, 0]), /^f\.idx: not an IDX file: only 2 bytes/],
      [idxBytes([2], [0, 0], 0x12340801), /^f\.idx: not an IDX file: bad magic number 0x12340801/],
      [gzipSync(idxBytes([2])), /bad magic number 0x1f8b.*looks like gzip data/],
      [idxBytes([2], [0, 0], 0x0d01), /^f\.idx: unsupported IDX element type 0x0d \(float32\).*only 0x08/],
      [idxBytes([2], [0, 0], 0x0701), /unsupported IDX element type 0x07 \(not a valid IDX type\)/],
      [new Uint8Array([0, 0, 8, 0]), /^f\.idx: IDX magic number 0x00000800 declares zero dimensions/],
      [
        idxBytes([5, 28, 28]).subarray(0, 10),
        /^f\.idx: truncated IDX header: 3 dimensions need a 16-byte header.*only 10 bytes/,
      ],
      [
        idxBytes([5, 28, 28]).subarray(0, 100),
        /^f\.idx: truncated IDX data: header says 5×28×28 .*expected 3936 bytes .*got 100/,
      ],
      [
        new Uint8Array([...idxBytes([2]), 9, 9]),
        /^f\.idx: trailing garbage after IDX data: .*expected 10 bytes .*got 12 \(2 extra\)/,
      ],
    ];
    for (const [bytes, re] of cases) {
      let err: unknown;
      try {
        parseIdx(bytes, 'f.idx');
      } catch (e) {
        err = e;
      }
      expect(err, String(re)).toBeInstanceOf(IdxError);
      expect((err as IdxError).message).toMatch(re);
      expect((err as IdxError).file).toBe('f.idx');
    }
  });
});

describe('loadDataset on corrupt files', () => {
  let tmp = '';
  let caseNo = 0;
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wpc-data-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  /** Writes a fresh DIR/mnist/ holding the test split's two files; returns DIR. */
  async function writeSplit(images: Uint8Array | undefined, labels: Uint8Array | undefined): Promise<string> {
    const root = join(tmp, `case${caseNo++}`);
    await mkdir(join(root, 'mnist'), { recursive: true });
    if (images) await writeFile(join(root, 'mnist', 't10k-images-idx3-ubyte.gz'), images);
    if (labels) await writeFile(join(root, 'mnist', 't10k-labels-idx1-ubyte.gz'), labels);
    return root;
  }
  const goodImages = gzipSync(idxBytes([5, 28, 28]));
  const goodLabels = gzipSync(idxBytes([5], [0, 1, 2, 3, 4]));
  const imagesPath = (root: string) => join(root, 'mnist', 't10k-images-idx3-ubyte.gz');
  const labelsPath = (root: string) => join(root, 'mnist', 't10k-labels-idx1-ubyte.gz');
  const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  async function expectError(root: string, file: string, problem: RegExp): Promise<Error> {
    const err = await loadDataset('mnist', 'test', { dataDir: root }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err, `expected an error naming ${file}`).toBeInstanceOf(Error);
    expect(err!.message).toContain(file);
    expect(err!.message).toMatch(problem);
    return err!;
  }

  it('truncated gzip', async () => {
    const root = await writeSplit(goodImages.subarray(0, goodImages.length >> 1), goodLabels);
    const err = await expectError(root, imagesPath(root), /corrupt or truncated gzip data/);
    expect(err).toBeInstanceOf(IdxError);
  });

  it('gzip that is not gzip at all', async () => {
    const root = await writeSplit(new TextEncoder().encode('<html>404</html>'), goodLabels);
    await expectError(root, imagesPath(root), /bad magic number .*not gzip-compressed either/);
  });

  it('valid gzip of a truncated IDX file', async () => {
    const root = await writeSplit(gzipSync(idxBytes([5, 28, 28]).subarray(0, 1000)), goodLabels);
    await expectError(root, imagesPath(root), /truncated IDX data: .*expected 3936 bytes .*got 1000/);
  });

  it('wrong magic number', async () => {
    const root = await writeSplit(goodImages, gzipSync(idxBytes([5], [0, 1, 2, 3, 4], 0xdeadbeef)));
    await expectError(root, labelsPath(root), /bad magic number 0xdeadbeef/);
  });

  it('a labels file where the images file should be', async () => {
    const root = await writeSplit(goodLabels, goodLabels);
    await expectError(root, imagesPath(root), /expected an images file with 3 dimensions.*is this a labels file\?/);
  });

  it('mismatched image and label counts (names both files)', async () => {
    const root = await writeSplit(goodImages, gzipSync(idxBytes([4], [0, 1, 2, 3])));
    const err = await expectError(root, imagesPath(root), /holds 5 images but the labels file holds 4 labels/);
    expect(err.message).toContain(labelsPath(root));
  });

  it('a label of 10 or more', async () => {
    const root = await writeSplit(goodImages, gzipSync(idxBytes([5], [0, 1, 2, 12, 10])));
    await expectError(root, labelsPath(root), /label 12 at index 3 is out of range; labels must be 0\.\.9 \(2 of 5/);
  });

  it('well-formed files of the wrong size', async () => {
    const root = await writeSplit(goodImages, goodLabels);
    await expectError(
      root,
      imagesPath(root),
      /expected the MNIST test split to hold 10000 images of 28×28, found 5 images of 28×28/,
    );
  });

  it('a missing file (names the full path and the expected files)', async () => {
    const root = await writeSplit(goodImages, undefined);
    const err = await expectError(root, labelsPath(root), /missing MNIST file/);
    for (const f of expectedFileNames()) expect(err.message).toContain(f);
  });

  it('a missing data directory, given or from WPC_DATA_DIR (without either, see the lookup order in data-lookup.test.ts)', async () => {
    const nowhere = join(tmp, 'does-not-exist');
    await expect(loadDataset('mnist', 'train', { dataDir: nowhere })).rejects.toThrow(
      new RegExp(
        `data directory ${escapeRegex(nowhere)} \\(from the dataDir option \\(--data-dir\\)\\) does not exist`,
      ),
    );
    const saved = process.env.WPC_DATA_DIR;
    try {
      process.env.WPC_DATA_DIR = nowhere;
      await expect(loadDataset('mnist', 'train')).rejects.toThrow(
        /from the WPC_DATA_DIR environment variable\) does not exist; .*'wpc data download mnist --dir /,
      );
    } finally {
      restoreEnv(saved);
    }
  });

  it('bad arguments', async () => {
    await expect(loadDataset('cifar100' as DatasetName, 'train', { dataDir: tmp })).rejects.toThrow(
      /loadDataset: name must be one of "mnist", "fashion-mnist", "cifar10", got "cifar100"/,
    );
    await expect(loadDataset('mnist', 'validation' as Split, { dataDir: tmp })).rejects.toThrow(/split must be one of/);
    await expect(loadDataset('mnist', 'test', { dataDir: tmp, std: 0 })).rejects.toThrow(
      /options\.std must be a finite number > 0, got 0/,
    );
    await expect(loadDataset('mnist', 'test', { data_dir: tmp } as never)).rejects.toThrow(/unknown option "data_dir"/);
  });
});

describe('makeDataset', () => {
  const images = parseIdx(idxBytes([3, 2, 2], [0, 255, 0, 255, 0, 0, 0, 0, 255, 255, 255, 255]), 'i');
  const labels = parseIdx(idxBytes([3], [9, 0, 3]), 'l');

  it('normalises with the default MNIST statistics', () => {
    const d = makeDataset('toy', images, labels);
    expect(d.count).toBe(3);
    expect(d.inputDim).toBe(4);
    expect(d.imageShape).toEqual([2, 2]);
    expect(Array.from(d.images.subarray(0, 4))).toEqual([NORM_0, NORM_255, NORM_0, NORM_255]);
    expect(Array.from(d.labels)).toEqual([9, 0, 3]);
  });

  it('validates mean and std', () => {
    expect(() => makeDataset('toy', images, labels, { std: 0 })).toThrow(
      /makeDataset: options\.std must be a finite number > 0, got 0/,
    );
    expect(() => makeDataset('toy', images, labels, { std: -1 })).toThrow(/options\.std .*got -1/);
    expect(() => makeDataset('toy', images, labels, { std: Number.NaN })).toThrow(/options\.std .*got NaN/);
    expect(() => makeDataset('toy', images, labels, { mean: Infinity })).toThrow(
      /options\.mean must be a finite number, got Infinity/,
    );
    expect(() => makeDataset('toy', images, labels, { sd: 1 } as never)).toThrow(/unknown option "sd"/);
    expect(() => makeDataset('toy', labels, labels)).toThrow(/^i|^l: expected an images file/);
    expect(() => makeDataset('toy', images, images)).toThrow(
      /^i: expected a labels file with 1 dimension.*is this an images file\?/,
    );
    expect(() => makeDataset('toy', new Uint8Array(4) as never, labels)).toThrow(
      /imagesIdx must be a parsed IDX array/,
    );
  });

  it('rejects an empty dataset', () => {
    expect(() => makeDataset('toy', parseIdx(idxBytes([0, 2, 2]), 'i'), parseIdx(idxBytes([0]), 'l'))).toThrow(
      /^i: holds no images/,
    );
  });
});

describe('oneHot', () => {
  it('encodes each label as a row', () => {
    expect(Array.from(oneHot([2, 0, 1], 3))).toEqual([0, 0, 1, 1, 0, 0, 0, 1, 0]);
    const y = oneHot(new Uint8Array([9, 5]));
    expect(y.length).toBe(20);
    expect(y[9]).toBe(1);
    expect(y[15]).toBe(1);
    expect(y.reduce((a, v) => a + v, 0)).toBe(2);
    expect(oneHot([], 10).length).toBe(0);
  });

  it('validates its arguments', () => {
    expect(() => oneHot([0, 10], 10)).toThrow(/oneHot: labels\[1\] must be an integer in \[0, 9\], got 10/);
    expect(() => oneHot([-1], 10)).toThrow(/labels\[0\] .*got -1/);
    expect(() => oneHot([0.5], 10)).toThrow(/labels\[0\] .*got 0\.5/);
    expect(() => oneHot([0], 0)).toThrow(/oneHot: numClasses must be a positive integer, got 0/);
    expect(() => oneHot(3 as never, 10)).toThrow(/oneHot: labels must be an array/);
  });
});

describe('batches', () => {
  const toy = toyDataset(100);

  it('without shuffling, visits examples in order and keeps the last partial batch only when asked', () => {
    const kept = collect(batches(toy, { batchSize: 30, shuffle: false }));
    expect(kept.map((b) => b.size)).toEqual([30, 30, 30]);
    expect(Array.from(kept.flatMap((b) => Array.from(b.indices)))).toEqual(Array.from({ length: 90 }, (_, i) => i));
    const all = collect(batches(toy, { batchSize: 30, shuffle: false, dropLast: false }));
    expect(all.map((b) => b.size)).toEqual([30, 30, 30, 10]);
    expect(Array.from(all[3]!.indices)).toEqual([90, 91, 92, 93, 94, 95, 96, 97, 98, 99]);
    // Toy pixels encode the example index, labels are index % 10.
    expect(Array.from(all[3]!.x.subarray(0, 8))).toEqual(
      [90, 90, 90, 90, 91, 91, 91, 91].map((p) => Math.fround(p / 255)),
    );
    expect(Array.from(all[3]!.labels)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(collect(batches(toy, { batchSize: 500, shuffle: false, dropLast: false })).map((b) => b.size)).toEqual([
      100,
    ]);
  });

  it('shuffles reproducibly: same seed, same order; different seed, different order', () => {
    const order = (seed: number) =>
      collect(batches(toy, { batchSize: 10, shuffle: true, seed })).flatMap((b) => Array.from(b.indices));
    expect(order(42)).toEqual(order(42));
    expect(order(42)).not.toEqual(order(43));
    expect(order(42)).not.toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect([...order(42)].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    // The documented permutation: Fisher–Yates driven by Random(seed).
    const expected = new Random(42).shuffle(Uint32Array.from({ length: 100 }, (_, i) => i));
    expect(order(42)).toEqual(Array.from(expected));
    expect(epochOrder(100, true, 42)).toEqual(expected);
    expect(Array.from(epochOrder(5, false))).toEqual([0, 1, 2, 3, 4]);
  });

  it('allocates fresh arrays for every batch', () => {
    const it = batches(toy, { batchSize: 10, shuffle: true, seed: 1 });
    const first = it.next().value as Batch;
    const snapshot = {
      x: first.x.slice(),
      y: first.y.slice(),
      labels: first.labels.slice(),
      indices: first.indices.slice(),
    };
    const rest = [...it];
    expect(rest.length).toBe(9);
    for (const b of rest) {
      expect(b.x.buffer).not.toBe(first.x.buffer);
      expect(b.y.buffer).not.toBe(first.y.buffer);
      expect(b.labels.buffer).not.toBe(first.labels.buffer);
      expect(b.indices.buffer).not.toBe(first.indices.buffer);
      expect(b.x.buffer).not.toBe(toy.images.buffer);
    }
    expect(first).toEqual({ ...snapshot, size: 10 });
    first.x.fill(-1); // callers may scribble on their batch
    expect(toy.images.every((v) => v >= 0)).toBe(true);
  });

  it('checks its arguments when called, naming the argument, the expected and the actual value', () => {
    const bad: [unknown, RegExp][] = [
      [{ batchSize: 0, shuffle: false }, /batches: options\.batchSize must be a positive integer, got 0/],
      [{ batchSize: 1.5, shuffle: false }, /options\.batchSize must be a positive integer, got 1\.5/],
      [{ batchSize: '8', shuffle: false }, /options\.batchSize must be a positive integer, got "8"/],
      [
        { batchSize: 101, shuffle: false },
        /options\.batchSize must be an integer in \[1, 100\] .*when dropLast is true, got 101/,
      ],
      [{ batchSize: 8, shuffle: true }, /options\.seed must be a safe integer when shuffle is true, got undefined/],
      [{ batchSize: 8, shuffle: true, seed: 0.5 }, /options\.seed must be a safe integer, got 0\.5/],
      [{ batchSize: 8, shuffle: true, seed: 2 ** 53 }, /options\.seed must be a safe integer, got 9007199254740992/],
      [{ batchSize: 8, shuffle: 'yes', seed: 1 }, /options\.shuffle must be a boolean, got "yes"/],
      [{ batchSize: 8, shuffle: false, dropLast: 1 }, /options\.dropLast must be a boolean, got 1/],
      [{ batch_size: 8, shuffle: false }, /unknown option "batch_size"/],
    ];
    for (const [options, re] of bad) {
      expect(() => batches(toy, options as never), String(re)).toThrow(re); // no iteration needed
    }
    expect(() =>
      batches({ images: new Float32Array(3), labels: new Uint8Array(1), count: 1, inputDim: 4 } as never, {
        batchSize: 1,
        shuffle: false,
      }),
    ).toThrow(/batches: dataset must be a Dataset/);
  });

  it('epochBatchCount and epochOrder validate too', () => {
    expect(epochBatchCount(100, 30, false)).toBe(4);
    expect(epochBatchCount(100, 500, false)).toBe(1);
    expect(() => epochBatchCount(100, 0)).toThrow(/epochBatchCount: batchSize must be a positive integer, got 0/);
    expect(() => epochBatchCount(100, 101)).toThrow(/batchSize must be an integer in \[1, 100\] .*got 101/);
    expect(() => epochBatchCount(0, 1)).toThrow(/epochBatchCount: count must be a positive integer, got 0/);
    expect(() => epochBatchCount(10, 2, 'no' as never)).toThrow(/dropLast must be a boolean, got "no"/);
    expect(() => epochOrder(10, true)).toThrow(/epochOrder: seed must be a safe integer when shuffle is true/);
  });
});

describe('subset', () => {
  it('keeps the first count examples', () => {
    const toy = toyDataset(50);
    const s = subset(toy, 12);
    expect(s.count).toBe(12);
    expect(s.name).toBe('toy[:12]');
    expect(s.images.length).toBe(12 * 4);
    expect(Array.from(s.labels)).toEqual(Array.from(toy.labels.subarray(0, 12)));
    expect(s.images).toEqual(toy.images.subarray(0, 48));
    expect(epochBatchCount(s.count, 5)).toBe(2);
    expect(
      collect(batches(s, { batchSize: 5, shuffle: true, seed: 3 }))
        .flatMap((b) => Array.from(b.indices))
        .every((i) => i < 12),
    ).toBe(true);
  });

  it('validates count', () => {
    const toy = toyDataset(50);
    expect(() => subset(toy, 0)).toThrow(/subset: count must be an integer in \[1, 50\], got 0/);
    expect(() => subset(toy, 51)).toThrow(/subset: count must be an integer in \[1, 50\], got 51/);
    expect(() => subset(toy, 2.5)).toThrow(/got 2\.5/);
  });
});

/** Fast equality for big arrays (expect().toEqual is slow on millions of elements). */
function sameFloats(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function restoreEnv(saved: string | undefined): void {
  if (saved === undefined) delete process.env.WPC_DATA_DIR;
  else process.env.WPC_DATA_DIR = saved;
}
