/**
 * PNG image grids and model checkpoints: pixels as decoded back, round trips, a checksum that catches every
 * changed byte, every field validated, and refusals that allocate nothing and leave existing files untouched.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { describe, expect, it } from 'vitest';
import {
  MNIST_MEAN,
  MNIST_STD,
  imageGridPng,
  loadCheckpoint,
  loadModel,
  makeMlp,
  makeSkipModel,
  modelFromCheckpoint,
  modelToCheckpoint,
  saveModel,
  writeImageGrid,
} from '../../src/node.js';
import { modelFromCheckpointFile } from '../../src/io/checkpoint.js';
import { crc32c, crc32cHex } from '../../src/io/crc32c.js';
import { canonicalJson } from '../../src/io/json-values.js';
import { allocated as allocatedOn, refusal, useRuntime } from '../support/helpers.js';

const rt = useRuntime();
const dir = mkdtempSync(join(tmpdir(), 'wpc-io-'));

describe('imageGridPng', () => {
  it('lays images out in a grid with padding and scale, mapping values to grey levels', () => {
    // Three 2×3 images: a ramp 0..5, a constant, and one with a NaN.
    const images = Float32Array.from([0, 1, 2, 3, 4, 5, 7, 7, 7, 7, 7, 7, 0, NaN, 10, 0, 0, 0]);
    const png = decode(
      imageGridPng(images, 3, { height: 2, width: 3, columns: 2, padding: 1, scale: 2, range: 'per-image' }),
    );
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
    expect(() => imageGridPng(new Float32Array(10), 1)).toThrow(
      /options.height and options.width are needed: 10 values per image is not a square/,
    );
    expect(() => imageGridPng(new Float32Array(12), 2, { height: 4, width: 2 })).toThrow(
      /height × options.width must be 6/,
    );
    expect(() => imageGridPng(new Float32Array(4), 1, { range: { min: 1, max: 1 } })).toThrow(
      /range.max must be above/,
    );
    expect(() => imageGridPng(new Float32Array(4), 1, { colour: true } as never)).toThrow(
      /unknown option.*colour|colour/,
    );
  });
});

/** The checksum `modelToCheckpoint` stores for this content (a test may change a field and re-seal it). */
function seal(c: Record<string, unknown>): Record<string, unknown> {
  const { crc32c: _, ...content } = c;
  return { ...c, crc32c: crc32cHex(crc32c(new TextEncoder().encode(canonicalJson(content)))) };
}

const allocated = () => allocatedOn(rt());

describe('checkpoints', () => {
  it('a model survives a round trip through a checkpoint and a file, parameterisation included', async () => {
    const model = makeMlp(rt(), {
      seed: 3,
      inputDim: 5,
      width: 4,
      depth: 4,
      outputDim: 3,
      actFn: 'gelu',
      useBias: true,
      paramType: 'mupc',
      skipModel: makeSkipModel(4),
      gamma: 2,
    });
    const checkpoint = await modelToCheckpoint(model, { note: 'test', nan: NaN, when: new Date(0) });
    expect(checkpoint).toMatchObject({
      format: 'wpc-model',
      version: 2,
      dims: [5, 4, 4, 4, 3],
      actFn: 'gelu',
      useBias: true,
      paramType: 'mupc',
      gamma: 2,
    });
    // meta is stored as JSON reads it back.
    expect(checkpoint.meta).toEqual({ note: 'test', nan: null, when: '1970-01-01T00:00:00.000Z' });
    expect(checkpoint.crc32c).toMatch(/^[0-9a-f]{8}$/);
    const copy = modelFromCheckpoint(rt(), JSON.parse(JSON.stringify(checkpoint)));
    expect(copy.layers.map((l) => [l.scale, l.skip])).toEqual(model.layers.map((l) => [l.scale, l.skip]));
    expect(await copy.toArrays()).toEqual(await model.toArrays());
    const file = join(dir, 'model.json');
    await saveModel(model, file);
    const loaded = await loadModel(rt(), file);
    expect(await loaded.toArrays()).toEqual(await model.toArrays());
    // The checksum is over the content, not its spelling: keys in another order (e.g. Python's sort_keys) load.
    const sorted = JSON.parse(JSON.stringify(checkpoint, Object.keys(checkpoint).sort().concat('note', 'nan', 'when')));
    expect(Object.keys(sorted)).toEqual(Object.keys(checkpoint).sort());
    const again = modelFromCheckpoint(rt(), sorted);
    for (const m of [model, copy, loaded, again]) m.dispose();
  });

  it('every single-bit flip and every changed byte of a model file is refused, allocating nothing', async () => {
    const model = makeMlp(rt(), {
      seed: 4,
      inputDim: 2,
      width: 3,
      depth: 2,
      outputDim: 2,
      actFn: 'tanh',
      useBias: true,
    });
    const file = join(dir, 'small.json');
    await saveModel(model, file, { task: 'test', accuracy: 12.5, tiny: 1e-7, big: 1e21 });
    const good = new Uint8Array(readFileSync(file));
    expect(new TextDecoder().decode(good)).toMatch(/"tiny":1e-7,"big":1e\+21/); // exponents whose case could change
    const ok = modelFromCheckpointFile(rt(), good, 'm');
    ok.dispose();
    const before = allocated();
    const replacements = [...' \t\n\r0159AEaez+-.,:"{}[]\\'].map((ch) => ch.charCodeAt(0)).concat(0, 0x7f, 0xc3, 0xff);
    let cases = 0;
    for (let at = 0; at < good.length; at++) {
      const variants = [
        ...Array.from({ length: 8 }, (_, b) => good[at]! ^ (1 << b)),
        ...replacements.filter((v) => v !== good[at]),
      ];
      for (const v of variants) {
        const bytes = good.slice();
        bytes[at] = v;
        const message = refusal(() => modelFromCheckpointFile(rt(), bytes, 'm'));
        expect(message, `byte ${at} set to ${v}`).toMatch(/^m: /);
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(good.length * 30);
    // Truncated anywhere, or anything appended.
    for (let n = 0; n < good.length; n++) refusal(() => modelFromCheckpointFile(rt(), good.subarray(0, n), 'm'));
    for (const tail of [' ', '\n', '{}'])
      refusal(() => modelFromCheckpointFile(rt(), Buffer.concat([good, Buffer.from(tail)]), 'm'));
    expect(allocated()).toEqual(before);
    // Through loadModel, the message names the file and says what failed.
    for (const [at, v] of [
      [good.length - 1, 0x20],
      [good.length - 20, good[good.length - 20]! ^ 4],
      [10, 0x41],
    ] as const) {
      const bytes = good.slice();
      bytes[at] = v;
      writeFileSync(join(dir, 'flipped.json'), bytes);
      await expect(loadModel(rt(), join(dir, 'flipped.json'))).rejects.toThrow(
        new RegExp(
          `^loadModel: ${join(dir, 'flipped.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: (corrupt|not a WPC checkpoint|checkpoint\\.)`,
        ),
      );
    }
    const trailing = good.slice();
    trailing[good.length - 1] = 0x20;
    expect(refusal(() => modelFromCheckpointFile(rt(), trailing, 'm'))).toBe(
      'm: corrupt: the file is not the text saveModel writes for its content (changed after it was written)',
    );
    const inParams = good.slice();
    inParams[new TextDecoder().decode(good).indexOf('"params":"') + 12]! ^= 1;
    expect(refusal(() => modelFromCheckpointFile(rt(), inParams, 'm'))).toMatch(
      /^m: corrupt: checkpoint\.crc32c is [0-9a-f]{8} but its content gives [0-9a-f]{8}: a field was damaged/,
    );
    expect(allocated()).toEqual(before);
    model.dispose();
  });

  it('refuses damaged checkpoints with the field at fault, each field to each wrong type or range', async () => {
    const model = makeMlp(rt(), { seed: 1, inputDim: 3, width: 2, depth: 3, outputDim: 2, actFn: 'relu' });
    const good = (await modelToCheckpoint(model, { note: 'x' })) as unknown as Record<string, unknown>;
    const before = allocated();
    // Any change without a matching checksum is corruption.
    expect(refusal(() => modelFromCheckpoint(rt(), { ...good, gamma: 2 }))).toMatch(
      /^modelFromCheckpoint: corrupt: checkpoint\.crc32c is/,
    );
    expect(refusal(() => modelFromCheckpoint(rt(), { ...good, meta: { note: 'y' } }))).toMatch(
      /^modelFromCheckpoint: corrupt: /,
    );
    const nanParams = Buffer.from(good.params as string, 'base64');
    nanParams.writeFloatLE(NaN, 8);
    const deep = JSON.parse(`${'['.repeat(150)}${']'.repeat(150)}`);
    // With the checksum re-sealed, each field's own check speaks.
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ format: 'other' }, /checkpoint\.format must be 'wpc-model', got "other"/],
      [{ version: 9 }, /checkpoint\.version 9 is not supported/],
      [{ version: '2' }, /checkpoint\.version "2" is not supported/],
      [{ extraField: 1 }, /checkpoint\.extraField is not a field of checkpoint/],
      [
        { dims: [3, 2] },
        /checkpoint\.params must be the base64 of 6 float32 values \(32 characters\) for dims 3→2, got 76 characters/,
      ],
      [{ dims: '3,2,2,2' }, /checkpoint\.dims must be 2 to 10001 integers in \[1, 1073741824\], got "3,2,2,2"/],
      [{ dims: [3, 0, 2, 2] }, /checkpoint\.dims must be/],
      [{ dims: [3, 2.5, 2, 2] }, /checkpoint\.dims must be/],
      [{ dims: [3, 1e300, 2, 2] }, /checkpoint\.dims must be/],
      [
        { dims: [3, 2 ** 16, 2 ** 16, 2] },
        /checkpoint\.dims 3→65536→65536→2 give \d+ parameters, more than the 1073741824/,
      ],
      [{ actFn: 'swish' }, /checkpoint\.actFn must be linear \| tanh/],
      [{ actFn: null }, /checkpoint\.actFn must be/],
      [{ useBias: 1 }, /checkpoint\.useBias must be a boolean, got 1/],
      [{ paramType: 'SP' }, /checkpoint\.paramType must be sp \| mupc \| ntp, got "SP"/],
      [{ skipModel: [false, true] }, /checkpoint\.skipModel must be null or an array of 3 booleans/],
      [{ skipModel: [false, 'true', false] }, /checkpoint\.skipModel must be null or an array of 3 booleans/],
      [
        { skipModel: [false, false, true] },
        /checkpoint\.skipModel\[2\] must be false \(skips are on hidden-to-hidden layers 1\.\.1 only\)/,
      ],
      [{ gamma: 0 }, /checkpoint\.gamma must be null or a finite number > 0, got 0/],
      [{ gamma: 'big' }, /checkpoint\.gamma must be null or a finite number > 0, got "big"/],
      [
        { params: 'not base64!' },
        /checkpoint\.params must be the base64 of 14 float32 values \(76 characters\) for dims 3→2→2→2, got 11 characters/,
      ],
      [{ params: '!'.repeat((good.params as string).length) }, /checkpoint\.params must be base64 text/],
      [{ params: 42 }, /checkpoint\.params must be the base64 of 14 float32 values .*got 42/],
      [
        { params: nanParams.toString('base64') },
        /checkpoint\.params must be finite, got NaN in layer 0's weights at index 2/,
      ],
      [{ meta: [1] }, /checkpoint\.meta must be a plain JSON object, got an array/],
      [{ meta: 'x' }, /checkpoint\.meta must be a plain JSON object, got "x"/],
      [{ meta: { deep } }, /checkpoint is nested more than 100 levels deep/],
    ];
    for (const [patch, message] of cases) {
      const m = refusal(
        () => modelFromCheckpoint(rt(), seal({ ...good, ...patch })),
        JSON.stringify(patch).slice(0, 80),
      );
      expect(m, JSON.stringify(patch).slice(0, 80)).toMatch(message);
      expect(m).toMatch(/^modelFromCheckpoint: /);
    }
    expect(refusal(() => modelFromCheckpoint(rt(), { ...good, crc32c: 'XYZ' }))).toMatch(
      /^modelFromCheckpoint: checkpoint\.crc32c must be eight lowercase hex digits, got "XYZ"/,
    );
    expect(refusal(() => modelFromCheckpoint(rt(), { ...good, crc32c: 12345678 }))).toMatch(
      /^modelFromCheckpoint: checkpoint\.crc32c must be eight lowercase hex digits, got 12345678/,
    );
    expect(
      refusal(() => modelFromCheckpoint(rt(), { ...good, crc32c: (good.crc32c as string).toUpperCase() })),
    ).toMatch(/^modelFromCheckpoint: checkpoint\.crc32c must be eight lowercase hex digits/);
    // Not JSON data at all (values JSON cannot hold), before any checksum is computed.
    expect(refusal(() => modelFromCheckpoint(rt(), { ...good, meta: { n: 10n } }))).toMatch(
      /^modelFromCheckpoint: checkpoint\.meta\.n must be JSON data .*got 10/,
    );
    expect(refusal(() => modelFromCheckpoint(rt(), { ...good, gamma: NaN }))).toMatch(
      /^modelFromCheckpoint: checkpoint\.gamma must be a finite number \(JSON has no NaN or Infinity\), got NaN/,
    );
    expect(refusal(() => modelFromCheckpoint(rt(), [good]))).toMatch(
      /^modelFromCheckpoint: checkpoint must be a checkpoint object, got an array/,
    );
    expect(refusal(() => modelFromCheckpoint(rt(), good, { allowUnverified: 'yes' } as never))).toMatch(
      /^modelFromCheckpoint: options\.allowUnverified must be a boolean/,
    );
    expect(refusal(() => modelFromCheckpoint(rt(), good, { strict: true } as never))).toMatch(
      /^modelFromCheckpoint: options\.strict is not a field of options/,
    );
    expect(refusal(() => modelFromCheckpoint({} as never, good))).toMatch(/^modelFromCheckpoint: runtime/);
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{ nope');
    await expect(loadModel(rt(), file)).rejects.toThrow(/^loadModel: .*broken\.json: not a WPC checkpoint \(not JSON/);
    // A file that is not JSON is never quoted back (the engine's own message would show its first characters).
    for (const text of [
      'secret-password-123: yes',
      '{"a": secret-password-123}',
      '{"secret-password-123": 1',
      '[1, 2] secret-password-123',
    ]) {
      writeFileSync(file, text);
      const message = await loadModel(rt(), file).then(
        () => '',
        (e: Error) => e.message,
      );
      expect(message).toMatch(
        /not a WPC checkpoint \(not JSON: (a syntax error( at character \d+)?|it ends too early)\)$/,
      );
      expect(message).not.toContain('secret');
    }
    writeFileSync(file, Buffer.from([0x7b, 0xff, 0x7d]));
    await expect(loadModel(rt(), file)).rejects.toThrow(
      /^loadModel: .*broken\.json: not a WPC checkpoint \(not UTF-8 text\)/,
    );
    await expect(loadModel(rt(), join(dir, 'missing.json'))).rejects.toThrow(
      /^loadModel: cannot read .*missing\.json: ENOENT/,
    );
    expect(allocated()).toEqual(before);
    model.dispose();
  });

  it('a FIFO, a device or a folder given as a checkpoint is refused at once, not read', async () => {
    const fifo = join(dir, 'pipe.json');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const before = allocated();
    await expect(loadModel(rt(), fifo)).rejects.toThrow(/^loadModel: cannot read .*pipe\.json: not a regular file$/);
    await expect(loadCheckpoint(rt(), fifo)).rejects.toThrow(
      /^loadCheckpoint: cannot read .*pipe\.json: not a regular file$/,
    );
    await expect(loadCheckpoint(rt(), '/dev/zero')).rejects.toThrow(
      /^loadCheckpoint: cannot read \/dev\/zero: not a regular file$/,
    );
    await expect(loadModel(rt(), dir)).rejects.toThrow(/^loadModel: cannot read .*: not a regular file$/);
    expect(allocated()).toEqual(before);
  });

  it('a file larger than any checkpoint the device could hold is refused before it is read', async () => {
    // Sparse files: their size is what counts, and reading one whole would take gigabytes.
    const storage = Math.min(rt().limits.maxStorageBufferBindingSize, rt().limits.maxBufferSize);
    const json = join(dir, 'huge.json');
    const tensors = join(dir, 'huge.safetensors');
    writeFileSync(json, '');
    truncateSync(json, Math.ceil((4 * storage) / 3) + 200_000_000);
    writeFileSync(tensors, '');
    truncateSync(tensors, 3 * storage + 200_000_000);
    const before = allocated();
    const heap = process.memoryUsage().arrayBuffers;
    await expect(loadModel(rt(), json)).rejects.toThrow(
      /^loadModel: .*huge\.json is \d+ bytes, more than any checkpoint this device can hold \(at most \d+ bytes\)/,
    );
    await expect(loadCheckpoint(rt(), tensors)).rejects.toThrow(
      /^loadCheckpoint: .*huge\.safetensors is \d+ bytes, more than any checkpoint this device can hold/,
    );
    expect(process.memoryUsage().arrayBuffers - heap).toBeLessThan(64 << 20);
    expect(allocated()).toEqual(before);
  });

  it('a file pretty-printed or otherwise re-spelled is refused by loadModel; its parsed content still loads', async () => {
    const model = makeMlp(rt(), { seed: 2, inputDim: 2, width: 2, depth: 2, outputDim: 2, actFn: 'tanh' });
    const checkpoint = await modelToCheckpoint(model);
    const pretty = `${JSON.stringify(checkpoint, null, 2)}\n`;
    expect(refusal(() => modelFromCheckpointFile(rt(), pretty, 'm'))).toMatch(
      /^m: corrupt: the file is not the text saveModel writes/,
    );
    const copy = modelFromCheckpoint(rt(), JSON.parse(pretty));
    for (const m of [model, copy]) m.dispose();
  });

  it('a version-1 checkpoint (no checksum) is refused unless allowUnverified, which keeps every other check', async () => {
    const model = makeMlp(rt(), { seed: 6, inputDim: 3, width: 2, depth: 2, outputDim: 2, actFn: 'relu' });
    const { crc32c: _, ...v2 } = (await modelToCheckpoint(model, { note: 'old' })) as unknown as Record<
      string,
      unknown
    >;
    const v1 = { ...v2, version: 1 };
    const file = join(dir, 'v1.json');
    writeFileSync(file, JSON.stringify(v1, null, 1));
    const before = allocated();
    expect(refusal(() => modelFromCheckpoint(rt(), v1))).toMatch(
      /^modelFromCheckpoint: a version-1 checkpoint, written before checkpoints carried a checksum: .*allowUnverified: true/,
    );
    await expect(loadModel(rt(), file)).rejects.toThrow(/^loadModel: .*v1\.json: a version-1 checkpoint/);
    expect(refusal(() => modelFromCheckpoint(rt(), { ...v1, actFn: 'swish' }, { allowUnverified: true }))).toMatch(
      /checkpoint\.actFn must be/,
    );
    expect(refusal(() => modelFromCheckpoint(rt(), { ...v1, crc32c: '00000000' }, { allowUnverified: true }))).toMatch(
      /checkpoint\.crc32c is not a field of checkpoint/,
    );
    expect(refusal(() => modelFromCheckpoint(rt(), v2, { allowUnverified: true }))).toMatch(
      /checkpoint\.crc32c must be eight lowercase hex digits, got undefined/,
    );
    expect(allocated()).toEqual(before);
    const loaded = await loadModel(rt(), file, { allowUnverified: true });
    expect(await loaded.toArrays()).toEqual(await model.toArrays());
    for (const m of [model, loaded]) m.dispose();
  });

  it('saving refuses what loading would refuse, and leaves the existing file and no temporary', async () => {
    const model = makeMlp(rt(), { seed: 7, inputDim: 2, width: 2, depth: 2, outputDim: 2, actFn: 'tanh' });
    const file = join(dir, 'keep.json');
    await saveModel(model, file);
    const first = readFileSync(file);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    await expect(saveModel(model, file, { n: 10n })).rejects.toThrow(
      /^modelToCheckpoint: meta must be JSON-serialisable/,
    );
    await expect(saveModel(model, file, cycle)).rejects.toThrow(/^modelToCheckpoint: meta must be JSON-serialisable/);
    await expect(
      saveModel(model, file, {
        get x() {
          throw new Error('boom');
        },
      }),
    ).rejects.toThrow(/^modelToCheckpoint: meta must be JSON-serialisable: boom/);
    await expect(saveModel(model, file, [1] as never)).rejects.toThrow(
      /^modelToCheckpoint: meta must be a plain JSON object, got an array/,
    );
    await expect(saveModel(model, file, { toJSON: () => 3 } as never)).rejects.toThrow(
      /^modelToCheckpoint: meta must be a plain JSON object, got 3/,
    );
    rt().device.queue.writeBuffer(model.params, 0, Float32Array.from([Infinity]));
    await expect(saveModel(model, file)).rejects.toThrow(
      /^modelToCheckpoint: the model's parameters must be finite to be saved, got Infinity at index 0/,
    );
    expect(Buffer.compare(readFileSync(file), first)).toBe(0);
    expect(readdirSync(dir).filter((f) => f.startsWith('keep.json.'))).toEqual([]);
    model.dispose();
  });

  it('a failed write leaves the existing file as it was', async () => {
    const file = join(dir, 'keep.png');
    writeFileSync(file, 'precious');
    await expect(writeImageGrid(file, new Float32Array(10), { count: 3 })).rejects.toThrow(/multiple/);
    expect(readFileSync(file, 'utf8')).toBe('precious');
    await writeImageGrid(file, rt().tensor(new Float32Array(2 * 16), [2, 16]), {
      scale: 1,
      padding: 0,
      range: 'per-image',
    });
    expect(decode(readFileSync(file)).width).toBe(8);
  });
});
