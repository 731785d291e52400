// Training checkpoints (safetensors): bit-exact round trips, a CRC-32C that catches every changed bit, validation
// of every stored field with the model left untouched, atomic saves. Saves and runs killed with SIGKILL:
// test/full/checkpoint-kill.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Tensor,
  adam,
  init,
  loadCheckpoint,
  makeMlp,
  makePcStep,
  saveCheckpoint,
  sgd,
  type Runtime,
} from '../../src/node.js';
import { crc32c, crc32cHex } from '../../src/io/crc32c.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import { restoreTrainingCheckpoint, trainingCheckpoint } from '../../src/io/training-checkpoint.js';
import { WpcError } from '../../src/runtime/errors.js';
import { allocated as allocatedOn, bits, randomBatch, refusal } from '../support/helpers.js';

let rt: Runtime;
let dir: string;
beforeAll(async () => {
  rt = await init();
  dir = await mkdtemp(join(tmpdir(), 'wpc-ckpt-'));
});
afterAll(async () => {
  rt.dispose();
  await rm(dir, { recursive: true, force: true });
});

const batch = (seed: number, B: number, inDim: number, outDim: number) => randomBatch(rt, seed, B, inDim, outDim);

/** A safetensors file made by hand, as another tool (or an earlier WPC) writes it: no WPC checksum. */
function rawSafetensors(header: unknown, data: Uint8Array | number = 12): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const bytes = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + bytes.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(bytes, 8 + json.length);
  return out;
}

/** A file with these tensors and metadata in the layout of WPC's version-1 writer (no checksum). */
function uncheckedFile(
  tensors: Record<string, { dtype: string; shape: number[]; data: Float32Array | Uint32Array | Int32Array }>,
  metadata: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    offset += t.data.byteLength;
  }
  const data = new Uint8Array(offset);
  let at = 0;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
  }
  return rawSafetensors(header, data);
}

const allocated = () => allocatedOn(rt);

/** CRC-32C bit by bit, straight from the definition (reflected polynomial 0x82F63B78). */
function crc32cBitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

describe('CRC-32C', () => {
  it('matches the published check values and a bit-by-bit reference, whole or in pieces', () => {
    const ascii = (t: string) => new TextEncoder().encode(t);
    // RFC 3720 (iSCSI), appendix B.4, and the catalogue's check value.
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    expect(crc32cHex(0x1a)).toBe('0000001a');
    let seed = 12345;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
    for (const n of [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099]) {
      const bytes = Uint8Array.from({ length: n }, next);
      expect(crc32c(bytes), `${n} bytes`).toBe(crc32cBitwise(bytes));
      for (const cut of [0, 1, Math.floor(n / 2), n - 1, n]) {
        expect(crc32c(bytes.subarray(cut), crc32c(bytes.subarray(0, cut))), `${n} bytes cut at ${cut}`).toBe(
          crc32cBitwise(bytes),
        );
      }
    }
  });
});

describe('safetensors container', () => {
  it('round-trips tensors and metadata, 8-byte aligned, in the format Python reads', () => {
    const a = Float32Array.from([1.5, -0, NaN, 3e-39]);
    const b = Uint32Array.from([7, 0xffffffff]);
    const bytes = encodeSafetensors(
      { a: { dtype: 'F32', shape: [2, 2], data: a }, b: { dtype: 'U32', shape: [2], data: b } },
      { note: 'x', '7': 'integer-like keys stay after the checksum' },
    );
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    expect(text.startsWith('{"__metadata__":{"wpc.crc32c":"')).toBe(true);
    const header = JSON.parse(text);
    const checksum = header.__metadata__['wpc.crc32c'] as string;
    expect(header).toEqual({
      __metadata__: { 'wpc.crc32c': checksum, note: 'x', '7': 'integer-like keys stay after the checksum' },
      a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
      b: { dtype: 'U32', shape: [2], data_offsets: [16, 24] },
    });
    // The checksum is the CRC-32C of the whole file with its own eight digits read as zeros.
    const zeroed = bytes.slice();
    zeroed.set(new TextEncoder().encode('00000000'), 8 + '{"__metadata__":{"wpc.crc32c":"'.length);
    expect(checksum).toBe(crc32cHex(crc32cBitwise(zeroed)));
    const back = decodeSafetensors(bytes);
    expect(back.verified).toBe(true);
    expect(back.metadata).toEqual({ note: 'x', '7': 'integer-like keys stay after the checksum' });
    expect(bits(back.tensors.a!.data as Float32Array)).toEqual(bits(a));
    expect(Array.from(back.tensors.b!.data)).toEqual([7, 0xffffffff]);
  });

  it('reads files written by other tools (no checksum: the structural checks only), as Python writes them', () => {
    // The layout of Python's safetensors writer: tensors sorted by name, __metadata__ anywhere, padding spaces.
    const data = new Uint8Array(new Float32Array([1, 2, 3, 4, 5]).buffer);
    const file = rawSafetensors(
      {
        a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
        __metadata__: { format: 'np' },
        b: { dtype: 'F32', shape: [1], data_offsets: [16, 20] },
      },
      data,
    );
    const r = decodeSafetensors(file, 'other.safetensors');
    expect(r.verified).toBe(false);
    expect(r.metadata).toEqual({ format: 'np' });
    expect(Array.from(r.tensors.a!.data)).toEqual([1, 2, 3, 4]);
    expect(Array.from(r.tensors.b!.data)).toEqual([5]);
    // A checksum key anywhere but where WPC writes it is a damaged header, not a file without one.
    const moved = rawSafetensors(
      {
        __metadata__: { format: 'np', 'wpc.crc32c': '00000000' },
        b: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      },
      4,
    );
    expect(refusal(() => decodeSafetensors(moved, 'f'))).toMatch(
      /^f: __metadata__\.wpc\.crc32c is not at the start of the header/,
    );
    expect(refusal(() => encodeSafetensors({}, { 'wpc.crc32c': 'x' }))).toMatch(
      /^encodeSafetensors: metadata\.wpc\.crc32c is reserved/,
    );
  });

  it('refuses truncated, overlapping, gapped and mistyped files with a message saying what is wrong', () => {
    const good = encodeSafetensors({ w: { dtype: 'F32', shape: [3], data: Float32Array.from([1, 2, 3]) } });
    const make = (header: unknown, data = 12) => rawSafetensors(header, data);
    const cases: [Uint8Array, RegExp][] = [
      [good.subarray(0, 5), /truncated: 5 bytes/],
      [
        good.subarray(0, good.length - 4),
        /corrupt: the CRC-32C checksum in its header \([0-9a-f]{8}\) does not match its bytes \([0-9a-f]{8}\).*; and tensor w: data_offsets end at 12, past the 8 data bytes \(truncated file\?\)/,
      ],
      [make({ w: { dtype: 'F64', shape: [3], data_offsets: [0, 12] } }), /dtype must be F32, U32 or I32, got "F64"/],
      [
        make({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 12] } }),
        /shape \[4\] needs 16 bytes of F32, data_offsets span 12/,
      ],
      [
        make({
          w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          v: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        }),
        /overlapping tensors/,
      ],
      [make({ w: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }), /expected 0 \(a gap in the data\)/],
      [make({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }), /4 bytes after the last tensor/],
      [
        make({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 12] } }),
        /shape must be an array of non-negative integers/,
      ],
      [
        make({ __metadata__: { n: 1 }, w: { dtype: 'F32', shape: [3], data_offsets: [0, 12] } }),
        /__metadata__\.n must be a string/,
      ],
      [make([1, 2]), /header must be a JSON object/],
    ];
    for (const [bytes, message] of cases) expect(() => decodeSafetensors(bytes, 'f')).toThrow(message);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 60n, true);
    expect(() => decodeSafetensors(huge)).toThrow(/header length 1152921504606846976 does not fit the file/);
  });
});

describe('training checkpoints', () => {
  it('save → load is bit-exact (weights, biases, Adam moments, count, step), and training goes on identically', async () => {
    const model = makeMlp(rt, { seed: 3, inputDim: 6, width: 9, depth: 3, outputDim: 4, actFn: 'tanh', useBias: true });
    const optim = adam({ lr: 1e-2 });
    const optState = optim.init(model);
    const { x, y } = batch(1, 5, 6, 4);
    const step = () =>
      makePcStep(model, optim, optState, y, {
        input: x,
        solver: 'euler',
        stepsizeController: 'constant',
        maxT1: 1,
        dt: 0.25,
      });
    for (let i = 0; i < 3; i++) await step();
    const path = join(dir, 'a.safetensors');
    await saveCheckpoint(path, model, { optim, optState, extra: { note: 'hi' } });
    const r = await loadCheckpoint(rt, path);
    expect(r.step).toBe(3);
    expect(r.extra).toEqual({ note: 'hi' });
    expect(r.optState!.count).toBe(3);
    expect(r.optim!.config).toEqual(optim.config);
    const [a, b] = [await model.toArrays(), await r.model.toArrays()];
    for (let l = 0; l < 3; l++) {
      expect(bits(b.weights[l]!)).toEqual(bits(a.weights[l]!));
      expect(bits(b.biases[l]!)).toEqual(bits(a.biases[l]!));
    }
    expect(bits((await r.optState!.stateToArray())!)).toEqual(bits((await optState.stateToArray())!));
    // Two more steps on each: identical bits.
    for (let i = 0; i < 2; i++) {
      await step();
      await makePcStep(r.model, r.optim!, r.optState!, y, {
        input: x,
        solver: 'euler',
        stepsizeController: 'constant',
        maxT1: 1,
        dt: 0.25,
      });
    }
    const [c, d] = [await model.toArrays(), await r.model.toArrays()];
    for (let l = 0; l < 3; l++) expect(bits(d.weights[l]!)).toEqual(bits(c.weights[l]!));
    // Python's layout: layers.<l>.weight is [out, in].
    const file = decodeSafetensors(new Uint8Array(await readFile(path)));
    expect(file.tensors['layers.0.weight']!.shape).toEqual([9, 6]);
    expect(file.tensors['optimizer.state']!.shape).toEqual([2, model.paramCount]);
    for (const t of [model, optState, r.model, r.optState!, x, y]) t.dispose();
  });

  it('stateless SGD and model-only checkpoints load too', async () => {
    const model = makeMlp(rt, { seed: 4, inputDim: 3, width: 5, depth: 2, outputDim: 2, actFn: 'relu' });
    const optim = sgd({ lr: 0.1 });
    const optState = optim.init(model);
    const withSgd = restoreTrainingCheckpoint(rt, await trainingCheckpoint(model, { optim, optState, step: 7 }));
    expect(withSgd.step).toBe(7);
    expect(withSgd.optim!.config).toEqual(optim.config);
    const bare = restoreTrainingCheckpoint(rt, await trainingCheckpoint(model));
    expect(bare.optim).toBeNull();
    expect(bare.optState).toBeNull();
    for (const t of [model, optState, withSgd.model, withSgd.optState!, bare.model]) t.dispose();
  });

  it('a mismatched file is refused with a clear error, and nothing is allocated', async () => {
    const model = makeMlp(rt, { seed: 5, inputDim: 4, width: 6, depth: 2, outputDim: 3, actFn: 'tanh' });
    const optim = adam({ lr: 1e-3 });
    const optState = optim.init(model);
    const good = await trainingCheckpoint(model, { optim, optState, step: 2 });
    const before = allocated();
    const { tensors, metadata } = decodeSafetensors(good);
    // Files remade with a valid checksum: what is checked here is the content.
    const remake = (meta: Record<string, string>, drop?: string, extraTensor?: string) => {
      const ts = Object.fromEntries(Object.entries(tensors).filter(([k]) => k !== drop));
      if (extraTensor) ts[extraTensor] = { dtype: 'F32', shape: [1], data: Float32Array.from([0]) };
      return encodeSafetensors(ts, meta);
    };
    const cases: [Uint8Array, RegExp][] = [
      [good.subarray(0, good.length - 1), /^ck: corrupt: the CRC-32C checksum .*truncated file/],
      [remake({ ...metadata, format: 'other' }), /metadata\.format must be "wpc-training-checkpoint"/],
      [remake({ ...metadata, version: '9' }), /version "9" is not supported/],
      [
        remake({ ...metadata, model: metadata.model!.replace('[4,6,3]', '[4,7,3]') }),
        /tensor layers\.0\.weight must be F32 \[7, 4\], got F32 \[6, 4\]/,
      ],
      [remake(metadata, 'layers.1.weight'), /tensor layers\.1\.weight is missing/],
      [remake(metadata, undefined, 'layers.9.weight'), /unexpected tensor layers\.9\.weight/],
      [remake(metadata, 'optimizer.state'), /tensor optimizer\.state is missing/],
    ];
    for (const [bytes, message] of cases)
      expect(refusal(() => restoreTrainingCheckpoint(rt, bytes, 'ck'))).toMatch(message);
    expect(allocated()).toEqual(before);
    // The model the checkpoint came from is untouched.
    const again = restoreTrainingCheckpoint(rt, good);
    expect(bits((await again.model.toArrays()).weights[0]!)).toEqual(bits((await model.toArrays()).weights[0]!));
    await expect(loadCheckpoint(rt, join(dir, 'missing.safetensors'))).rejects.toThrow(
      /loadCheckpoint: cannot read .*missing\.safetensors: ENOENT/,
    );
    for (const t of [model, optState, again.model, again.optState!]) t.dispose();
  });

  it('every single-bit flip anywhere in a checkpoint file, every truncation and any appended byte is refused, allocating nothing', async () => {
    const model = makeMlp(rt, { seed: 8, inputDim: 2, width: 3, depth: 2, outputDim: 2, actFn: 'relu', useBias: true });
    const optim = adam({ lr: 1e-2 });
    const optState = optim.init(model);
    const { x, y } = batch(2, 3, 2, 2);
    const stepped = await makePcStep(model, optim, optState, y, {
      input: x,
      solver: 'euler',
      stepsizeController: 'constant',
      maxT1: 1,
      dt: 0.5,
    });
    for (const v of Object.values(stepped)) if (v instanceof Tensor) v.dispose();
    const extra = {
      settings: { width: 3 },
      curve: [{ step: 1, loss: 0.25, inferenceSteps: 2, rejected: 0 }],
      tests: [{ step: 1, loss: null, accuracy: 50 }],
    };
    const good = await trainingCheckpoint(model, { optim, optState, extra });
    expect(restoreTrainingCheckpoint(rt, good).extra).toEqual(extra);
    const before = allocated();
    const headerEnd = 8 + Number(new DataView(good.buffer, good.byteOffset).getBigUint64(0, true));
    const seen = { header: 0, data: 0 };
    const kinds = new Map<string, number>();
    for (let bit = 0; bit < good.length * 8; bit++) {
      const bytes = good.slice();
      bytes[bit >> 3]! ^= 1 << (bit & 7);
      let message = '';
      try {
        const r = restoreTrainingCheckpoint(rt, bytes, 'ck.safetensors');
        r.model.dispose();
        r.optState?.dispose();
      } catch (e) {
        expect(e, `bit ${bit}`).toBeInstanceOf(WpcError);
        message = (e as Error).message;
      }
      expect(message, `flipping bit ${bit & 7} of byte ${bit >> 3} went unnoticed`).toMatch(
        /^ck\.safetensors: corrupt: /,
      );
      seen[bit >> 3 < headerEnd ? 'header' : 'data']++;
      const kind = message.replace(/[0-9a-f]{8}/g, 'X').replace(/; and .*/, '; and …');
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    expect(seen.header).toBeGreaterThan(4000); // the length, the header's JSON and its metadata
    expect(seen.data).toBe(8 * 4 * (model.paramCount * 3)); // weights, biases, Adam's m and v
    // The checksum disagrees, or its own field is damaged.
    expect([...kinds.keys()].sort()).toEqual([
      'ck.safetensors: corrupt: the CRC-32C checksum in its header (X) does not match its bytes (X): the file was damaged or changed after it was written',
      'ck.safetensors: corrupt: the CRC-32C checksum in its header (X) does not match its bytes (X): the file was damaged or changed after it was written; and …',
      'ck.safetensors: corrupt: the checksum field wpc.crc32c at the start of the header is damaged (1 of its bytes differ from what WPC writes)',
      'ck.safetensors: corrupt: the checksum field wpc.crc32c at the start of the header is damaged (not eight hex digits and a closing quote)',
    ]);
    for (let n = 0; n < good.length; n++)
      expect(
        refusal(() => restoreTrainingCheckpoint(rt, good.subarray(0, n), 'ck')),
        `cut at ${n}`,
      ).toMatch(/^ck: /);
    for (const b of [0, 0x20, 0xff]) {
      const longer = new Uint8Array(good.length + 1);
      longer.set(good);
      longer[good.length] = b;
      expect(refusal(() => restoreTrainingCheckpoint(rt, longer, 'ck'))).toMatch(
        /^ck: corrupt: .*1 bytes after the last tensor/,
      );
    }
    expect(allocated()).toEqual(before);
    // Through loadCheckpoint, the message names the file.
    const file = join(dir, 'flipped.safetensors');
    const flipped = good.slice();
    flipped[good.length - 3]! ^= 0x10;
    await writeFile(file, flipped);
    await expect(loadCheckpoint(rt, file)).rejects.toThrow(
      new RegExp(`^loadCheckpoint: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: corrupt: the CRC-32C checksum`),
    );
    expect(allocated()).toEqual(before);
    for (const t of [model, optState, x, y]) t.dispose();
  });

  it('every stored field is validated: each corrupted to each wrong type or range is refused, naming the field', async () => {
    const model = makeMlp(rt, { seed: 9, inputDim: 3, width: 4, depth: 3, outputDim: 2, actFn: 'tanh', useBias: true });
    const optim = adam({ lr: 1e-3 });
    const optState = optim.init(model);
    const good = await trainingCheckpoint(model, {
      optim,
      optState,
      step: 4,
      extra: {
        curve: [{ step: 4, loss: 1, inferenceSteps: 3, rejected: 1 }],
        tests: [{ step: 4, loss: 0.5, accuracy: 10 }],
      },
    });
    const { tensors, metadata } = decodeSafetensors(good);
    const before = allocated();
    const withMeta = (patch: Record<string, string | undefined>) => {
      const meta = Object.fromEntries(
        Object.entries({ ...metadata, ...patch }).filter(([, v]) => v !== undefined),
      ) as Record<string, string>;
      return encodeSafetensors(tensors, meta);
    };
    const model_ = JSON.parse(metadata.model!) as Record<string, unknown>;
    const withModel = (patch: Record<string, unknown>) => withMeta({ model: JSON.stringify({ ...model_, ...patch }) });
    const optim_ = JSON.parse(metadata.optimizer!) as Record<string, unknown>;
    const withOptim = (patch: Record<string, unknown>) =>
      withMeta({ optimizer: JSON.stringify({ ...optim_, ...patch }) });
    const withExtra = (extra: unknown) =>
      withMeta({ extra: typeof extra === 'string' ? extra : JSON.stringify(extra) });
    const curve = (patch: Record<string, unknown>) =>
      withExtra({ curve: [{ step: 4, loss: 1, inferenceSteps: 3, rejected: 1, ...patch }] });
    const tests = (patch: Record<string, unknown>) =>
      withExtra({ tests: [{ step: 4, loss: 0.5, accuracy: 10, ...patch }] });
    const withTensor = (name: string, change: (d: Float32Array) => void) => {
      const data = Float32Array.from(tensors[name]!.data as Float32Array);
      change(data);
      return encodeSafetensors({ ...tensors, [name]: { ...tensors[name]!, data } }, metadata);
    };
    const deep = `${'{"a":'.repeat(200)}1${'}'.repeat(200)}`;
    const cases: [string, Uint8Array, RegExp][] = [
      // format, version, unknown keys
      [
        'format',
        withMeta({ format: 'wpc-model' }),
        /metadata\.format must be "wpc-training-checkpoint", got "wpc-model"/,
      ],
      ['version 3', withMeta({ version: '3' }), /version "3" is not supported/],
      ['version 2.0', withMeta({ version: '2.0' }), /version "2\.0" is not supported/],
      ['unknown key', withMeta({ note: 'x' }), /metadata\.note is not a field of metadata/],
      // model
      ['model missing', withMeta({ model: undefined }), /metadata\.model is missing/],
      ['model not JSON', withMeta({ model: '{"dims":[3,4' }), /metadata\.model is not valid JSON/],
      ['model array', withMeta({ model: '[1]' }), /metadata\.model must be an object, got an array/],
      ['model null', withMeta({ model: 'null' }), /metadata\.model must be an object, got null/],
      ['model unknown key', withModel({ width: 4 }), /metadata\.model\.width is not a field of metadata\.model/],
      [
        'dims string',
        withModel({ dims: '3,4,4,2' }),
        /metadata\.model\.dims must be 2 to 10001 integers in \[1, 1073741824\], got "3,4,4,2"/,
      ],
      ['dims short', withModel({ dims: [3] }), /metadata\.model\.dims must be 2 to/],
      ['dims zero', withModel({ dims: [3, 0, 4, 2] }), /metadata\.model\.dims must be/],
      ['dims negative', withModel({ dims: [3, -4, 4, 2] }), /metadata\.model\.dims must be/],
      ['dims fraction', withModel({ dims: [3, 4.5, 4, 2] }), /metadata\.model\.dims must be/],
      ['dims string entry', withModel({ dims: [3, '4', 4, 2] }), /metadata\.model\.dims must be/],
      ['dims huge', withModel({ dims: [3, 2 ** 31, 4, 2] }), /metadata\.model\.dims must be/],
      [
        'dims too many params',
        withModel({ dims: [3, 2 ** 20, 2 ** 20, 2] }),
        /metadata\.model\.dims 3→1048576→1048576→2 give \d+ parameters, more than the 1073741824/,
      ],
      ['dims too deep', withModel({ dims: Array(10_003).fill(1) }), /metadata\.model\.dims must be 2 to 10001/],
      ['actFn', withModel({ actFn: 'swish' }), /metadata\.model\.actFn must be linear \| tanh/],
      ['actFn type', withModel({ actFn: 3 }), /metadata\.model\.actFn must be/],
      ['useBias', withModel({ useBias: 'yes' }), /metadata\.model\.useBias must be a boolean, got "yes"/],
      ['useBias null', withModel({ useBias: null }), /metadata\.model\.useBias must be a boolean, got null/],
      ['paramType', withModel({ paramType: 'xp' }), /metadata\.model\.paramType must be sp \| mupc \| ntp/],
      [
        'skipModel type',
        withModel({ skipModel: 'yes' }),
        /metadata\.model\.skipModel must be null or an array of 3 booleans/,
      ],
      [
        'skipModel length',
        withModel({ skipModel: [false, false] }),
        /metadata\.model\.skipModel must be null or an array of 3 booleans/,
      ],
      [
        'skipModel entry',
        withModel({ skipModel: [false, 1, false] }),
        /metadata\.model\.skipModel must be null or an array of 3 booleans/,
      ],
      [
        'skipModel first',
        withModel({ skipModel: [true, false, false] }),
        /metadata\.model\.skipModel\[0\] must be false/,
      ],
      [
        'skipModel widths',
        withModel({ dims: [3, 4, 5, 2], skipModel: [false, true, false] }),
        /metadata\.model\.skipModel\[1\] must be false: layer 1 maps 4 → 5/,
      ],
      ['gamma zero', withModel({ gamma: 0 }), /metadata\.model\.gamma must be null or a finite number > 0, got 0/],
      ['gamma negative', withModel({ gamma: -2 }), /metadata\.model\.gamma must be null or a finite number > 0/],
      ['gamma string', withModel({ gamma: '2' }), /metadata\.model\.gamma must be null or a finite number > 0/],
      // step and optimizerCount
      ...['-1', '1.5', '', '01', '1e3', ' 4', '9007199254740993', '0x10', 'Infinity'].map(
        (v): [string, Uint8Array, RegExp] => [
          `step ${v}`,
          withMeta({ step: v }),
          /metadata\.step must be a non-negative integer/,
        ],
      ),
      ['step missing', withMeta({ step: undefined }), /metadata\.step must be a non-negative integer .*got undefined/],
      ...['-1', 'x', '2.5'].map((v): [string, Uint8Array, RegExp] => [
        `optimizerCount ${v}`,
        withMeta({ optimizerCount: v }),
        /metadata\.optimizerCount must be a non-negative integer/,
      ]),
      [
        'optimizerCount alone',
        withMeta({ optimizer: undefined }),
        /metadata\.optimizer and metadata\.optimizerCount go together, got only optimizerCount/,
      ],
      [
        'optimizer alone',
        withMeta({ optimizerCount: undefined }),
        /metadata\.optimizer and metadata\.optimizerCount go together, got only optimizer/,
      ],
      // optimizer
      ['optimizer not JSON', withMeta({ optimizer: '{' }), /metadata\.optimizer is not valid JSON/],
      ['optimizer array', withMeta({ optimizer: '[]' }), /metadata\.optimizer must be an object, got an array/],
      ['kind', withOptim({ kind: 'rmsprop' }), /metadata\.optimizer\.kind must be "adam" or "sgd", got "rmsprop"/],
      ['lr negative', withOptim({ lr: -1e-3 }), /metadata\.optimizer\.lr must be a finite number ≥ 0, got -0\.001/],
      ['lr string', withOptim({ lr: 'fast' }), /metadata\.optimizer\.lr must be a finite number ≥ 0, got "fast"/],
      [
        'lr null (NaN)',
        withOptim({ lr: null }),
        /metadata\.optimizer\.lr must be a finite number ≥ 0, got null \(NaN and ±Infinity become null in JSON\)/,
      ],
      [
        'lr missing',
        withOptim({ lr: undefined }),
        /metadata\.optimizer\.lr must be a finite number ≥ 0, got undefined/,
      ],
      ['b1 one', withOptim({ b1: 1 }), /metadata\.optimizer\.b1 must be a finite number in \[0, 1\), got 1/],
      ['b1 negative', withOptim({ b1: -0.1 }), /metadata\.optimizer\.b1 must be a finite number in \[0, 1\)/],
      ['b2 above', withOptim({ b2: 1.5 }), /metadata\.optimizer\.b2 must be a finite number in \[0, 1\)/],
      [
        'eps and epsRoot zero',
        withOptim({ eps: 0, epsRoot: 0 }),
        /metadata\.optimizer\.eps and metadata\.optimizer\.epsRoot cannot both be 0/,
      ],
      ['eps negative', withOptim({ eps: -1e-8 }), /metadata\.optimizer\.eps must be a finite number ≥ 0, got -1e-8/],
      ['eps string', withOptim({ eps: '1e-8' }), /metadata\.optimizer\.eps must be a finite number ≥ 0/],
      [
        'epsRoot negative',
        withOptim({ epsRoot: -1 }),
        /metadata\.optimizer\.epsRoot must be a finite number ≥ 0, got -1/,
      ],
      [
        'optimizer unknown key',
        withOptim({ weightDecay: 0.1 }),
        /metadata\.optimizer\.weightDecay is not a field of metadata\.optimizer/,
      ],
      [
        'sgd momentum one',
        withMeta({ optimizer: '{"kind":"sgd","lr":0.1,"momentum":1,"nesterov":false}' }),
        /metadata\.optimizer\.momentum must be a finite number in \[0, 1\), got 1/,
      ],
      [
        'sgd nesterov type',
        withMeta({ optimizer: '{"kind":"sgd","lr":0.1,"nesterov":"no"}' }),
        /metadata\.optimizer\.nesterov must be a boolean, got "no"/,
      ],
      [
        'sgd nesterov alone',
        withMeta({ optimizer: '{"kind":"sgd","lr":0.1,"nesterov":true}' }),
        /metadata\.optimizer\.nesterov is true without metadata\.optimizer\.momentum/,
      ],
      // extra and wpc train's log
      ['extra missing', withMeta({ extra: undefined }), /metadata\.extra is missing/],
      ['extra not JSON', withExtra('{'), /metadata\.extra is not valid JSON/],
      ['extra array', withExtra('[]'), /metadata\.extra must be a plain JSON object, got an array/],
      ['extra string', withExtra('"x"'), /metadata\.extra must be a plain JSON object, got "x"/],
      ['extra null', withExtra('null'), /metadata\.extra must be a plain JSON object, got null/],
      ['extra deep', withExtra(`{"x":${deep}}`), /metadata\.extra is nested more than 100 levels deep/],
      [
        'settings',
        withExtra({ settings: [1] }),
        /metadata\.extra\.settings must be an object \(the run's settings\), got an array/,
      ],
      [
        'curve object',
        withExtra({ curve: { step: 1 } }),
        /metadata\.extra\.curve must be an array of records, got an object/,
      ],
      ['curve entry', withExtra({ curve: [3] }), /metadata\.extra\.curve\[0\] must be an object, got 3/],
      [
        'curve loss null',
        curve({ loss: null }),
        /metadata\.extra\.curve\[0\]\.loss must be a finite number, got null \(NaN and ±Infinity become null in JSON\)/,
      ],
      ['curve loss string', curve({ loss: '1' }), /metadata\.extra\.curve\[0\]\.loss must be a finite number, got "1"/],
      [
        'curve step negative',
        curve({ step: -1 }),
        /metadata\.extra\.curve\[0\]\.step must be an integer in \[0, 4\], got -1/,
      ],
      [
        'curve step past',
        curve({ step: 5 }),
        /metadata\.extra\.curve\[0\]\.step must be an integer in \[0, 4\], got 5/,
      ],
      [
        'curve order',
        withExtra({
          curve: [
            { step: 3, loss: 1, inferenceSteps: 1, rejected: 0 },
            { step: 3, loss: 1, inferenceSteps: 1, rejected: 0 },
          ],
        }),
        /metadata\.extra\.curve\[1\]\.step must be above the previous entry's \(3\), got 3/,
      ],
      [
        'curve inferenceSteps',
        curve({ inferenceSteps: 1.5 }),
        /metadata\.extra\.curve\[0\]\.inferenceSteps must be an integer/,
      ],
      [
        'curve rejected',
        curve({ rejected: 4 }),
        /metadata\.extra\.curve\[0\]\.rejected must be an integer in \[0, 3\], got 4/,
      ],
      ['tests object', withExtra({ tests: 'none' }), /metadata\.extra\.tests must be an array of records, got "none"/],
      [
        'tests accuracy',
        tests({ accuracy: 101 }),
        /metadata\.extra\.tests\[0\]\.accuracy must be a finite number in \[0, 100\], got 101/,
      ],
      [
        'tests accuracy null',
        tests({ accuracy: null }),
        /metadata\.extra\.tests\[0\]\.accuracy must be a finite number in \[0, 100\], got null/,
      ],
      [
        'tests loss',
        tests({ loss: 'x' }),
        /metadata\.extra\.tests\[0\]\.loss must be a finite number or null, got "x"/,
      ],
      ['tests step', tests({ step: 'x' }), /metadata\.extra\.tests\[0\]\.step must be an integer in \[0, 4\], got "x"/],
      // tensors: values
      [
        'weights NaN',
        withTensor('layers.1.weight', (d) => (d[4] = NaN)),
        /tensor layers\.1\.weight must be finite, got NaN at index 4/,
      ],
      [
        'bias Inf',
        withTensor('layers.2.bias', (d) => (d[1] = -Infinity)),
        /tensor layers\.2\.bias must be finite, got -Infinity at index 1/,
      ],
      [
        'state NaN',
        withTensor('optimizer.state', (d) => (d[0] = NaN)),
        /tensor optimizer\.state must be finite, got NaN at index 0/,
      ],
      [
        'Adam v negative',
        withTensor('optimizer.state', (d) => (d[model.paramCount + 2] = -0.5)),
        new RegExp(
          `tensor optimizer\\.state must be finite and ≥ 0 \\(Adam second moments\\), got -0\\.5 at index ${model.paramCount + 2}`,
        ),
      ],
    ];
    for (const [name, bytes, message] of cases) {
      const m = refusal(() => restoreTrainingCheckpoint(rt, bytes, 'ck'), name);
      expect(m, name).toMatch(message);
      expect(m, name).toMatch(/^ck: /);
    }
    // Adam's m may be negative; only v is a second moment.
    const negativeM = restoreTrainingCheckpoint(
      rt,
      withTensor('optimizer.state', (d) => (d[0] = -1)),
    );
    negativeM.model.dispose();
    negativeM.optState!.dispose();
    expect(allocated()).toEqual(before);
    for (const t of [model, optState]) t.dispose();
  });

  it('saving refuses what loading would refuse, and writes nothing', async () => {
    const model = makeMlp(rt, { seed: 10, inputDim: 3, width: 4, depth: 2, outputDim: 2, actFn: 'tanh' });
    const path = join(dir, 'refuse.safetensors');
    await saveCheckpoint(path, model, { step: 1 });
    const first = await readFile(path);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    // (An optimiser a checkpoint would refuse cannot be made: adam and sgd check the same ranges.)
    const cases: [object, RegExp][] = [
      [
        { extra: { curve: [{ step: 1, loss: NaN, inferenceSteps: 1, rejected: 0 }] } },
        /^trainingCheckpoint: options\.extra\.curve\[0\]\.loss must be a finite number, got null \(NaN/,
      ],
      [
        { extra: { curve: [{ step: 2, loss: 1, inferenceSteps: 1, rejected: 0 }] } },
        /^trainingCheckpoint: options\.extra\.curve\[0\]\.step must be an integer in \[0, 1\], got 2/,
      ],
      [{ extra: { big: 10n } }, /^trainingCheckpoint: options\.extra must be JSON-serialisable/],
      [{ extra: cycle }, /^trainingCheckpoint: options\.extra must be JSON-serialisable/],
      [
        {
          extra: {
            get x() {
              throw new Error('boom');
            },
          },
        },
        /^trainingCheckpoint: options\.extra must be JSON-serialisable: boom/,
      ],
      [{ extra: new Date(0) }, /^trainingCheckpoint: options\.extra must be a plain JSON object, got "1970/],
      [{ stepp: 1 }, /^trainingCheckpoint: unknown option "stepp"/],
    ];
    for (const [options, message] of cases) {
      await expect(saveCheckpoint(path, model, { step: 1, ...options } as never)).rejects.toThrow(message);
      const o = options as { optState?: { dispose(): void } };
      o.optState?.dispose();
    }
    // A diverged model is never written over the last good checkpoint.
    rt.device.queue.writeBuffer(model.params, 4, Float32Array.from([NaN]));
    await expect(saveCheckpoint(path, model, { step: 2 })).rejects.toThrow(
      /^trainingCheckpoint: the model's layers\.0\.weight must be finite, got NaN at index 1/,
    );
    expect(Buffer.compare(await readFile(path), first)).toBe(0);
    expect((await readdir(dir)).filter((f) => f.startsWith('refuse.safetensors.'))).toEqual([]);
    model.dispose();
  });

  it('a version-1 file (no checksum) is refused unless allowUnverified, which keeps every other check', async () => {
    const model = makeMlp(rt, { seed: 11, inputDim: 3, width: 4, depth: 2, outputDim: 2, actFn: 'tanh' });
    const optim = sgd({ lr: 0.1, momentum: 0.5 });
    const optState = optim.init(model);
    const { tensors, metadata } = decodeSafetensors(await trainingCheckpoint(model, { optim, optState, step: 3 }));
    const before = allocated();
    const v1 = uncheckedFile(tensors, { ...metadata, version: '1' });
    expect(decodeSafetensors(v1).verified).toBe(false);
    expect(refusal(() => restoreTrainingCheckpoint(rt, v1, 'old'))).toMatch(
      /^old: a version-1 checkpoint, written before checkpoints carried a checksum: .*allowUnverified: true/,
    );
    const file = join(dir, 'v1.safetensors');
    await writeFile(file, v1);
    await expect(loadCheckpoint(rt, file)).rejects.toThrow(
      /^loadCheckpoint: .*v1\.safetensors: a version-1 checkpoint/,
    );
    expect(allocated()).toEqual(before);
    const r = await loadCheckpoint(rt, file, { allowUnverified: true });
    expect(r.step).toBe(3);
    expect(bits((await r.model.toArrays()).weights[1]!)).toEqual(bits((await model.toArrays()).weights[1]!));
    r.model.dispose();
    r.optState!.dispose();
    // The other checks still apply to it; a version-2 file without its checksum is corrupt whatever the option.
    const badV1 = uncheckedFile(tensors, { ...metadata, version: '1', step: '-2' });
    expect(refusal(() => restoreTrainingCheckpoint(rt, badV1, 'old', { allowUnverified: true }))).toMatch(
      /^old: metadata\.step must be a non-negative integer/,
    );
    const v2 = uncheckedFile(tensors, metadata);
    expect(refusal(() => restoreTrainingCheckpoint(rt, v2, 'new', { allowUnverified: true }))).toMatch(
      /^new: corrupt: no checksum/,
    );
    expect(refusal(() => restoreTrainingCheckpoint(rt, v1, 'old', { allowUnverified: 1 } as never))).toMatch(
      /^restoreTrainingCheckpoint: options\.allowUnverified must be a boolean, got 1/,
    );
    expect(allocated()).toEqual(before);
    for (const t of [model, optState]) t.dispose();
  });

  it('saving writes atomically: a failed save leaves the previous checkpoint and no temporary file', async () => {
    const model = makeMlp(rt, { seed: 6, inputDim: 2, width: 3, depth: 2, outputDim: 2, actFn: 'tanh' });
    const path = join(dir, 'atomic.safetensors');
    await saveCheckpoint(path, model, { step: 1 });
    const first = await readFile(path);
    await expect(saveCheckpoint(path, model, { step: -3 })).rejects.toThrow(
      /options\.step must be a non-negative integer/,
    );
    await expect(saveCheckpoint(join(dir, 'no-such-dir', 'x.safetensors'), model)).rejects.toThrow(/ENOENT/);
    expect(Buffer.compare(await readFile(path), first)).toBe(0);
    expect((await readdir(dir)).filter((f) => f.includes('.wpc-tmp-'))).toEqual([]);
    model.dispose();
  });
});
