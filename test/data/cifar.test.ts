// CIFAR-10's binary format: files generated in its exact layout are read exactly (every pixel, NCHW, the
// normalisation, the labels, the files' order); corrupt, empty, truncated, oversized and missing files are
// refused naming the file. No GPU needed.
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CIFAR10_NORMALIZATION,
  CifarRecordCheck,
  makeCifarDataset,
  resolveChannelNormalization,
} from '../../src/data/cifar.js';
import { batches, subset } from '../../src/data/dataset.js';
import { IdxError } from '../../src/data/idx.js';
import { locateDataset } from '../../src/data/locate.js';
import { expectedFileNames, loadDataset } from '../../src/data/node.js';
import { WpcArgumentError } from '../../src/runtime/errors.js';
import {
  CIFAR_FILES,
  PIXELS,
  RECORD,
  RECORDS,
  cifarBytes,
  cifarFileBytes,
  labelsFor,
  pixelAt,
} from '../support/cifar-fixtures.js';

let tmp: string;
let caseNo = 0;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wpc-cifar-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A data directory whose cifar10/ folder holds the six generated files, some replaced by `override`. */
async function dataDir(override: Record<string, Uint8Array | null> = {}): Promise<string> {
  const root = join(tmp, `case${caseNo++}`);
  await mkdir(join(root, 'cifar10'), { recursive: true });
  for (const [i, file] of CIFAR_FILES.entries()) {
    const bytes = file in override ? override[file] : cifarFileBytes(i);
    if (bytes !== null && bytes !== undefined) await writeFile(join(root, 'cifar10', file), bytes);
  }
  return root;
}

/** torchvision's ToTensor then Normalize(0.5, 0.5) in float32, as numpy computes it. */
const f32 = Math.fround;
const normalised = (p: number, mean = 0.5, std = 0.5) => f32(f32(f32(p / 255) - f32(mean)) / f32(std));

async function refusal(promise: Promise<unknown>): Promise<IdxError> {
  const e = await promise.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(IdxError);
  return e as IdxError;
}

describe('loadDataset("cifar10")', () => {
  it('reads every pixel of every record exactly, in the files order, as [3, 32, 32] channel planes', async () => {
    const root = await dataDir();
    const train = await loadDataset('cifar10', 'train', { dataDir: root });
    const test = await loadDataset('cifar10', 'test', { dataDir: root });
    expect(train.name).toBe('cifar10-train');
    expect(test.name).toBe('cifar10-test');
    expect(train.count).toBe(RECORDS.slice(0, 5).reduce((a, b) => a + b, 0));
    expect(test.count).toBe(RECORDS[5]);
    for (const d of [train, test]) {
      expect(d.inputDim).toBe(3072);
      expect(d.shape).toEqual([3, 32, 32]);
      expect(d.imageShape).toEqual([32, 32]);
      expect(d.numClasses).toBe(10);
      expect(d.images.length).toBe(d.count * 3072);
      expect(d.normalization).toEqual({ mean: 0.5, std: 0.5 });
      expect(d.channelNormalization).toEqual({ mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    }
    // Example by example: file f's record r, label and every value.
    const check = (d: typeof train, files: number[]) => {
      let e = 0;
      for (const f of files) {
        for (let r = 0; r < RECORDS[f]!; r++, e++) {
          expect(d.labels[e], `example ${e}`).toBe(labelsFor(f, RECORDS[f]!)[r]);
          const image = d.images.subarray(e * PIXELS, (e + 1) * PIXELS);
          for (let k = 0; k < PIXELS; k++) {
            if (image[k] !== normalised(pixelAt(f, r, k)))
              expect.fail(`example ${e} value ${k}: ${image[k]} != ${normalised(pixelAt(f, r, k))}`);
          }
        }
      }
      expect(e).toBe(d.count);
    };
    check(train, [0, 1, 2, 3, 4]);
    check(test, [5]);
  });

  it('channel c, row y, column x of an example is value c·1024 + y·32 + x: red, green, blue planes (NCHW)', async () => {
    // One record whose planes are constant per channel and whose red plane encodes its positions.
    const record = new Uint8Array(RECORD);
    record[0] = 7;
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) record[1 + y * 32 + x] = (y * 8 + x) % 256;
    record.fill(200, 1 + 1024, 1 + 2048);
    record.fill(255, 1 + 2048);
    const d = makeCifarDataset('one', [{ file: 'one.bin', bytes: record }]);
    expect(d.labels).toEqual(new Uint8Array([7]));
    const [C, H, W] = d.shape;
    const at = (c: number, y: number, x: number) => d.images[(c * H + y) * W + x]!;
    expect(at(0, 3, 5)).toBe(normalised(3 * 8 + 5));
    expect(at(0, 31, 31)).toBe(normalised((31 * 8 + 31) % 256));
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) expect(at(1, y, x)).toBe(normalised(200));
    expect(at(2, 17, 4)).toBe(1);
    expect(at(0, 0, 0)).toBe(-1);
    expect(C).toBe(3);
  });

  it('normalises per channel: the defaults map 0..255 onto [-1, 1]; options give one value or one per channel', async () => {
    const bytes = new Uint8Array(RECORD);
    bytes[1] = 0;
    bytes[1 + 1024] = 128;
    bytes[1 + 2048] = 255;
    const file = [{ file: 'x.bin', bytes }];
    const d = makeCifarDataset('x', file);
    // The values numpy computes in float32: (np.float32([0, 128, 255]) / 255 - 0.5) / 0.5.
    expect([d.images[0], d.images[1024], d.images[2048]]).toEqual([-1, 0.003921627998352051, 1]);

    const mean = [0.4914, 0.4822, 0.4465];
    const std = [0.247, 0.2435, 0.2616];
    const custom = makeCifarDataset('x', file, { mean, std });
    // numpy, float32: (np.float32([0, 128, 255]) / 255 - np.float32(mean)) / np.float32(std), channel by channel.
    expect([custom.images[0], custom.images[1024], custom.images[2048]]).toEqual([
      -1.9894737005233765, 0.0811532586812973, 2.115825891494751,
    ]);
    expect(custom.channelNormalization).toEqual({ mean, std });
    expect(custom.normalization.mean).toBeNaN(); // the channels differ: no common scalar
    expect(custom.normalization.std).toBeNaN();
    const raw = makeCifarDataset('x', file, { mean: 0, std: 1 });
    expect(raw.normalization).toEqual({ mean: 0, std: 1 });
    expect(raw.images[1024]).toBe(f32(128 / 255));

    const root = await dataDir();
    const loaded = await loadDataset('cifar10', 'test', { dataDir: root, mean, std });
    expect(loaded.channelNormalization).toEqual({ mean, std });
    expect(loaded.images[0]).toBe(normalised(pixelAt(5, 0, 0), mean[0], std[0]));
    expect(CIFAR10_NORMALIZATION).toEqual({ mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  });

  it('batches and subset keep NCHW examples whole', async () => {
    const d = await loadDataset('cifar10', 'train', { dataDir: await dataDir() });
    const [first] = [...batches(d, { batchSize: 3, shuffle: false })];
    expect(first!.x).toEqual(d.images.subarray(0, 3 * 3072));
    expect(first!.labels).toEqual(d.labels.subarray(0, 3));
    const s = subset(d, 2);
    expect([s.count, s.shape, s.images.length]).toEqual([2, [3, 32, 32], 2 * 3072]);
  });

  it('refuses corrupt files, naming the file: truncated, not whole records, empty, label 10 or 255', async () => {
    const good = cifarFileBytes(2);
    const twoRecords = cifarBytes(9, [1, 2]);
    const cases: [string, Uint8Array, RegExp][] = [
      [
        'data_batch_3.bin',
        good.subarray(0, good.length - 1),
        /data_batch_3\.bin: is 3072 bytes, not a positive multiple of 3073 \(0 whole record\(s\) and 3072 byte\(s\) more: truncated, or not a CIFAR-10 binary file\); a CIFAR-10 binary file is a sequence of 3073-byte records: 1 label byte \(0\.\.9\), then a 32×32 image as 1024 red, 1024 green and 1024 blue bytes/,
      ],
      [
        'data_batch_1.bin',
        new Uint8Array(2 * RECORD + 5),
        /data_batch_1\.bin: is 6151 bytes, not a positive multiple of 3073 \(2 whole record\(s\) and 5 byte\(s\) more/,
      ],
      ['test_batch.bin', new Uint8Array(0), /test_batch\.bin: is empty \(0 bytes\); a CIFAR-10 binary file is/],
      [
        'data_batch_5.bin',
        Object.assign(new Uint8Array(twoRecords), { [RECORD]: 10 }),
        /data_batch_5\.bin: record 1 \(at byte 3073\) has label 10; CIFAR-10's labels are 0\.\.9 \(1 of 2 records are out of range/,
      ],
      [
        'data_batch_2.bin',
        Object.assign(new Uint8Array(twoRecords), { 0: 255, [RECORD]: 200 }),
        /data_batch_2\.bin: record 0 \(at byte 0\) has label 255; CIFAR-10's labels are 0\.\.9 \(2 of 2 records/,
      ],
    ];
    for (const [file, bytes, message] of cases) {
      const root = await dataDir({ [file]: bytes });
      const split = file === 'test_batch.bin' ? 'test' : 'train';
      const e = await refusal(loadDataset('cifar10', split, { dataDir: root }));
      expect(e.message, file).toMatch(message);
      expect(e.file).toBe(join(root, 'cifar10', file));
      expect(e.message.startsWith(join(root, 'cifar10', file))).toBe(true);
      // The other split's files are fine.
      await expect(
        loadDataset('cifar10', split === 'test' ? 'train' : 'test', { dataDir: root }),
      ).resolves.toBeTruthy();
    }
  });

  it('a missing file is named, with the files the folder must hold and how to download them', async () => {
    const root = await dataDir({ 'data_batch_4.bin': null });
    const e = await refusal(loadDataset('cifar10', 'train', { dataDir: root }));
    const path = join(root, 'cifar10', 'data_batch_4.bin');
    expect(e.file).toBe(path);
    expect(e.message).toBe(
      `loadDataset: missing CIFAR-10 file ${path}. The folder ${join(root, 'cifar10')} must hold ` +
        `${CIFAR_FILES.join(', ')} (the binary version's files); run 'wpc data download cifar10 --dir DIR' ` +
        `(or downloadDataset in the API) to fetch them into DIR/cifar10/`,
    );
    await expect(loadDataset('cifar10', 'test', { dataDir: root })).resolves.toBeTruthy();
    const located = await locateDataset('cifar10', { dataDir: root }).catch((x: Error) => x);
    expect(String(located)).toMatch(/cifar10 lacks data_batch_4\.bin; run 'wpc data download cifar10 --dir /);
    expect(expectedFileNames('cifar10')).toEqual(CIFAR_FILES);
  });

  it('refuses a folder in a file name, and a file larger than an official one before reading it', async () => {
    const root = await dataDir({ 'test_batch.bin': null });
    await mkdir(join(root, 'cifar10', 'test_batch.bin'));
    expect((await refusal(loadDataset('cifar10', 'test', { dataDir: root }))).message).toMatch(
      /test_batch\.bin: is a directory, not a regular file/,
    );
    const big = await dataDir({ 'data_batch_2.bin': null });
    const handle = await open(join(big, 'cifar10', 'data_batch_2.bin'), 'w');
    await handle.truncate(10001 * RECORD); // sparse: nothing is written
    await handle.close();
    expect((await refusal(loadDataset('cifar10', 'train', { dataDir: big }))).message).toMatch(
      /data_batch_2\.bin: is 30733073 bytes, more than an official CIFAR-10 file's 30730000 \(10000 records of 3073 bytes\)/,
    );
  });

  it("the folder may be given directly (the archive extracted by hand), but not another dataset's", async () => {
    const root = await dataDir();
    const direct = await loadDataset('cifar10', 'test', { dataDir: join(root, 'cifar10') });
    expect(direct.count).toBe(RECORDS[5]);
    await mkdir(join(root, 'mnist'));
    const e = await refusal(loadDataset('cifar10', 'test', { dataDir: join(root, 'mnist') }));
    expect(e.message).toMatch(/asked for CIFAR-10 but the data directory .*mnist .*looks like the MNIST folder/);
  });

  it('bad options fail before any file is read', async () => {
    const root = join(tmp, 'nowhere');
    for (const [options, message] of [
      [
        { mean: [0.5, 0.5] },
        /loadDataset: options\.mean must be a number or an array of 3 numbers \(one per channel\), got an array of length 2/,
      ],
      [{ std: [0.5, 0, 0.5] }, /loadDataset: options\.std\[1\] must be a finite number > 0, got 0/],
      [{ std: -1 }, /loadDataset: options\.std must be a finite number > 0, got -1/],
      [{ mean: 'x' }, /loadDataset: options\.mean must be a number or an array of 3 numbers/],
    ] as const) {
      await expect(loadDataset('cifar10', 'train', { dataDir: root, ...options } as never)).rejects.toThrow(message);
    }
    // MNIST takes one number, as before.
    await expect(loadDataset('mnist', 'train', { dataDir: root, mean: [0.1] })).rejects.toThrow(
      /loadDataset: options\.mean must be a finite number, got an array of length 1/,
    );
  });
});

describe('makeCifarDataset and CifarRecordCheck', () => {
  it('checks its arguments', () => {
    const bytes = cifarBytes(0, [1]);
    expect(() => makeCifarDataset('', [{ file: 'a', bytes }])).toThrow(WpcArgumentError);
    expect(() => makeCifarDataset('x', [])).toThrow(/files must be a non-empty array/);
    expect(() => makeCifarDataset('x', [{ file: 'a', bytes: [1, 2] as never }])).toThrow(
      /files\[0\] must be \{ file: string, bytes: Uint8Array \}/,
    );
    expect(() => makeCifarDataset('x', [{ file: 'a', bytes }], { gamma: 1 } as never)).toThrow(/gamma/);
    expect(() => resolveChannelNormalization('f', { mean: [1, Number.NaN, 1] }, CIFAR10_NORMALIZATION)).toThrow(
      /f: options\.mean\[1\] must be a finite number, got NaN/,
    );
  });

  it('checks a file streamed in chunks of any size exactly as a whole one', () => {
    const bytes = cifarBytes(1, [0, 9, 3, 4]);
    bytes[2 * RECORD] = 11;
    for (const size of [1, 7, 3072, 3073, 3074, 10_000]) {
      const check = new CifarRecordCheck('f.bin');
      for (let at = 0; at < bytes.length; at += size) check.update(bytes.subarray(at, at + size));
      expect(() => check.finish(), `chunks of ${size}`).toThrow(/^f\.bin: record 2 \(at byte 6146\) has label 11/);
    }
    const fine = new CifarRecordCheck('g.bin');
    fine.update(cifarBytes(1, [0, 9]));
    expect(fine.finish()).toBe(2);
  });
});
