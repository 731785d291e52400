// Training checkpoints (safetensors): bit-exact round trips, validation of corrupt files with the model left
// untouched, and `wpc train --checkpoint DIR --resume` after a SIGKILL ending where an uninterrupted run ends.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adam, init, loadCheckpoint, makeMlp, makePcStep, saveCheckpoint, sgd, type Runtime } from '../src/node.js';
import { decodeSafetensors, encodeSafetensors } from '../src/io/safetensors.js';
import { restoreTrainingCheckpoint, trainingCheckpoint } from '../src/io/training-checkpoint.js';
import { WpcArgumentError } from '../src/runtime/errors.js';
import { bits, randomBatch } from './helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DATA_DIR = process.env.WPC_DATA_DIR ?? fileURLToPath(new URL('../../shared/datasets', import.meta.url));

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

describe('safetensors container', () => {
  it('round-trips tensors and metadata, 8-byte aligned, in the format Python reads', () => {
    const a = Float32Array.from([1.5, -0, NaN, 3e-39]);
    const b = Uint32Array.from([7, 0xffffffff]);
    const bytes = encodeSafetensors({ a: { dtype: 'F32', shape: [2, 2], data: a }, b: { dtype: 'U32', shape: [2], data: b } }, { note: 'x' });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    expect(header).toEqual({ __metadata__: { note: 'x' }, a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] }, b: { dtype: 'U32', shape: [2], data_offsets: [16, 24] } });
    const back = decodeSafetensors(bytes);
    expect(back.metadata).toEqual({ note: 'x' });
    expect(bits(back.tensors.a!.data as Float32Array)).toEqual(bits(a));
    expect(Array.from(back.tensors.b!.data)).toEqual([7, 0xffffffff]);
  });

  it('refuses truncated, overlapping, gapped and mistyped files with a message saying what is wrong', () => {
    const good = encodeSafetensors({ w: { dtype: 'F32', shape: [3], data: Float32Array.from([1, 2, 3]) } });
    const make = (header: unknown, data = 12) => {
      const json = new TextEncoder().encode(JSON.stringify(header));
      const out = new Uint8Array(8 + json.length + data);
      new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
      out.set(json, 8);
      return out;
    };
    const cases: [Uint8Array, RegExp][] = [
      [good.subarray(0, 5), /truncated: 5 bytes/],
      [good.subarray(0, good.length - 4), /past the 8 data bytes \(truncated file\?\)/],
      [make({ w: { dtype: 'F64', shape: [3], data_offsets: [0, 12] } }), /dtype must be F32, U32 or I32, got "F64"/],
      [make({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 12] } }), /shape \[4\] needs 16 bytes of F32, data_offsets span 12/],
      [make({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, v: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }), /overlapping tensors/],
      [make({ w: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }), /expected 0 \(a gap in the data\)/],
      [make({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }), /4 bytes after the last tensor/],
      [make({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 12] } }), /shape must be an array of non-negative integers/],
      [make({ __metadata__: { n: 1 }, w: { dtype: 'F32', shape: [3], data_offsets: [0, 12] } }), /__metadata__\.n must be a string/],
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
    const step = () => makePcStep(model, optim, optState, y, { input: x, solver: 'euler', stepsizeController: 'constant', maxT1: 1, dt: 0.25 });
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
      await makePcStep(r.model, r.optim!, r.optState!, y, { input: x, solver: 'euler', stepsizeController: 'constant', maxT1: 1, dt: 0.25 });
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

  it('a corrupt, truncated or mismatched file is refused with a clear error, and nothing is allocated', async () => {
    const model = makeMlp(rt, { seed: 5, inputDim: 4, width: 6, depth: 2, outputDim: 3, actFn: 'tanh' });
    const optim = adam({ lr: 1e-3 });
    const optState = optim.init(model);
    const good = await trainingCheckpoint(model, { optim, optState, step: 2 });
    const before = rt.memoryStats();
    const { tensors, metadata } = decodeSafetensors(good);
    const remake = (meta: Record<string, string>, drop?: string, extraTensor?: string) => {
      const ts = Object.fromEntries(Object.entries(tensors).filter(([k]) => k !== drop));
      if (extraTensor) ts[extraTensor] = { dtype: 'F32', shape: [1], data: Float32Array.from([0]) };
      return encodeSafetensors(ts, meta);
    };
    const nanWeights = decodeSafetensors(good);
    (nanWeights.tensors['layers.1.weight']!.data as Float32Array)[4] = NaN;
    const cases: [Uint8Array, RegExp][] = [
      [good.subarray(0, good.length - 1), /truncated file/],
      [remake({ ...metadata, format: 'other' }), /metadata\.format must be "wpc-training-checkpoint"/],
      [remake({ ...metadata, version: '9' }), /version "9" is not supported/],
      [remake({ ...metadata, step: '-1' }), /metadata\.step must be a non-negative integer/],
      [remake({ ...metadata, model: '{"dims":[4,6]' }), /metadata\.model is not valid JSON/],
      [remake({ ...metadata, model: metadata.model!.replace('"tanh"', '"sigmoid"') }), /metadata\.model\.actFn must be linear \| tanh/],
      [remake({ ...metadata, model: metadata.model!.replace('[4,6,3]', '[4,7,3]') }), /tensor layers\.0\.weight must be F32 \[7, 4\], got F32 \[6, 4\]/],
      [remake(metadata, 'layers.1.weight'), /tensor layers\.1\.weight is missing/],
      [remake(metadata, undefined, 'layers.9.weight'), /unexpected tensor layers\.9\.weight/],
      [remake(metadata, 'optimizer.state'), /tensor optimizer\.state is missing/],
      [remake({ ...metadata, optimizer: '{"kind":"rmsprop","lr":1}' }), /metadata\.optimizer\.kind must be "adam" or "sgd"/],
      [remake({ ...metadata, optimizer: '{"kind":"adam","lr":"fast"}' }), /metadata\.optimizer: adam: options\.lr/],
      [encodeSafetensors(nanWeights.tensors, nanWeights.metadata), /weights\[1\] must be finite, got NaN at index 4/],
    ];
    for (const [bytes, message] of cases) {
      expect(() => restoreTrainingCheckpoint(rt, bytes, 'ck')).toThrow(message);
      try {
        restoreTrainingCheckpoint(rt, bytes, 'ck');
      } catch (e) {
        expect(e).toBeInstanceOf(WpcArgumentError);
      }
    }
    expect(rt.memoryStats().persistentBytes).toBe(before.persistentBytes);
    // The model the checkpoint came from is untouched.
    const again = restoreTrainingCheckpoint(rt, good);
    expect(bits((await again.model.toArrays()).weights[0]!)).toEqual(bits((await model.toArrays()).weights[0]!));
    await expect(loadCheckpoint(rt, join(dir, 'missing.safetensors'))).rejects.toThrow(/loadCheckpoint: cannot read .*missing\.safetensors/);
    for (const t of [model, optState, again.model, again.optState!]) t.dispose();
  });

  it('saving writes atomically: a failed save leaves the previous checkpoint and no temporary file', async () => {
    const model = makeMlp(rt, { seed: 6, inputDim: 2, width: 3, depth: 2, outputDim: 2, actFn: 'tanh' });
    const path = join(dir, 'atomic.safetensors');
    await saveCheckpoint(path, model, { step: 1 });
    const first = await readFile(path);
    await expect(saveCheckpoint(path, model, { step: -3 })).rejects.toThrow(/options\.step must be a non-negative integer/);
    await expect(saveCheckpoint(join(dir, 'no-such-dir', 'x.safetensors'), model)).rejects.toThrow(/ENOENT/);
    expect(Buffer.compare(await readFile(path), first)).toBe(0);
    const { readdir } = await import('node:fs/promises');
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
    model.dispose();
  });
});

function wpcTrain(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'dist/cli.js'), 'train', ...args], { cwd: ROOT, timeout: 300_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('wpc train --checkpoint / --resume', () => {
  const RUN = ['--data-dir', DATA_DIR, '--hidden', '1', '--width', '32', '--solver', 'euler', '--max-t1', '1', '--dt', '0.25', '--batch', '32', '--epochs', '2', '--max-batches', '30', '--test-every', '0', '--quiet'];

  it('killed with SIGKILL mid-run and resumed, it ends with the weights of an uninterrupted run, bit for bit', async () => {
    const full = join(dir, 'full');
    const r1 = await wpcTrain([...RUN, '--checkpoint', full, '--checkpoint-every', '10']);
    expect(r1.code, r1.stderr).toBe(0);
    const killed = join(dir, 'killed');
    const ckpt = join(killed, 'checkpoint.safetensors');
    const child = spawn(process.execPath, [join(ROOT, 'dist/cli.js'), 'train', ...RUN, '--checkpoint', killed, '--checkpoint-every', '10'], { cwd: ROOT, stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    // Kill as soon as the first checkpoint is on disk (mid-way through the 60 steps).
    const t0 = Date.now();
    while (!existsSync(ckpt) && Date.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await exited;
    expect(existsSync(ckpt)).toBe(true);
    const partial = restoreTrainingCheckpoint(rt, new Uint8Array(await readFile(ckpt)));
    expect(partial.step).toBeGreaterThan(0);
    expect(partial.step).toBeLessThan(60);
    partial.model.dispose();
    partial.optState!.dispose();
    const r2 = await wpcTrain([...RUN, '--checkpoint', killed, '--resume']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(JSON.parse(r2.stdout.trim().split('\n').pop()!).steps).toBe(60);
    const a = decodeSafetensors(new Uint8Array(await readFile(join(full, 'checkpoint.safetensors'))));
    const b = decodeSafetensors(new Uint8Array(await readFile(ckpt)));
    expect(b.metadata.step).toBe('60');
    for (const name of Object.keys(a.tensors)) expect(bits(b.tensors[name]!.data as Float32Array), name).toEqual(bits(a.tensors[name]!.data as Float32Array));
    // The resumed run's loss curve is the whole run's.
    expect(JSON.parse(b.metadata.extra!).curve).toEqual(JSON.parse(a.metadata.extra!).curve);
  }, 300_000);

  it('a run made to diverge stops with a clear error naming the step, and its last checkpoint loads', async () => {
    const d = join(dir, 'diverge');
    // Adam with lr 1e30 makes the weights ~1e30 after one step: the next step's energy overflows to Inf. (With
    // the runaway check on, the default, step 1's update is rolled back at once: test/cli-divergence.test.ts.)
    const r = await wpcTrain([...RUN, '--lr', '1e30', '--divergence-factor', 'off', '--checkpoint', d, '--checkpoint-every', '1']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/wpc: training diverged at step (\d+): NaN or Inf in .*The parameter update of step \1 was not applied/);
    const at = Number(/diverged at step (\d+)/.exec(r.stderr)![1]);
    expect(r.stderr).toContain(`The last checkpoint, ${join(d, 'checkpoint.safetensors')} (step ${at - 1})`);
    const last = await loadCheckpoint(rt, join(d, 'checkpoint.safetensors'));
    expect(last.step).toBe(at - 1);
    const w = (await last.model.toArrays()).weights.flatMap((x) => Array.from(x));
    expect(w.every(Number.isFinite)).toBe(true);
    last.model.dispose();
    last.optState!.dispose();
  }, 300_000);

  it('refuses to resume with different settings or without a checkpoint', async () => {
    const d = join(dir, 'settings');
    expect((await wpcTrain([...RUN, '--max-batches', '2', '--epochs', '1', '--checkpoint', d])).code).toBe(0);
    const r = await wpcTrain([...RUN, '--max-batches', '2', '--epochs', '1', '--width', '33', '--checkpoint', d, '--resume']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--resume: .* was written with width = 32, this run has 33/);
    const none = await wpcTrain([...RUN, '--checkpoint', join(dir, 'empty'), '--resume']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--resume: there is no checkpoint to resume from/);
    expect((await wpcTrain([...RUN, '--resume'])).stderr).toMatch(/--resume needs --checkpoint DIR/);
    // A corrupt checkpoint: a clear error, not a crash or a fresh start.
    const bad = join(dir, 'corrupt');
    await mkdir(bad, { recursive: true });
    await writeFile(join(bad, 'checkpoint.safetensors'), 'garbage!garbage');
    const corrupt = await wpcTrain([...RUN, '--checkpoint', bad, '--resume']);
    expect(corrupt.code).not.toBe(0);
    expect(corrupt.stderr).toMatch(/checkpoint\.safetensors: header length \d+ does not fit the file/);
  }, 300_000);
});
