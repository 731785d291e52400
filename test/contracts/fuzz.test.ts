// Property-based fuzzing (fast-check): every public function gets random bad inputs — wrong types, shapes and
// lengths, NaN/Inf, negative or huge sizes, bad option values, disposed objects — and must either succeed or
// throw a WpcError (for argument errors: a message that starts with the function's name and names what was
// wrong), never crash the process, and never change a model or optimiser state when it throws. The IDX,
// gzip and checkpoint readers get truncated and bit-flipped files. 10,000+ cases in all (FUZZ_SCALE scales).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { gunzipSync, gzipSync } from 'node:zlib';
import { appendFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as wpc from '../../src/node.js';
import { WpcArgumentError, WpcError } from '../../src/runtime/errors.js';
import { parseIdx } from '../../src/data/idx.js';
import { MAX_IDX_BYTES, readIdxStream } from '../../src/data/idx-reader.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import { restoreTrainingCheckpoint, trainingCheckpoint } from '../../src/io/training-checkpoint.js';

const DATA_DIR = process.env.WPC_DATA_DIR ?? fileURLToPath(new URL('../../../shared/datasets', import.meta.url));
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
let total = 0;

let rt: wpc.Runtime;
let model: wpc.Model;
let optim: wpc.Optimizer;
let optState: wpc.OptState;
let tensors: wpc.Tensor[];
let disposed: wpc.Tensor;
let disposedModel: wpc.Model;
let dir: string;

beforeAll(async () => {
  rt = await wpc.init();
  model = wpc.makeMlp(rt, { seed: 1, inputDim: 4, width: 5, depth: 2, outputDim: 3, actFn: 'tanh' });
  optim = wpc.adam({ lr: 1e-3 });
  optState = optim.init(model);
  tensors = [
    rt.tensor(new Float32Array(8).fill(0.5), [2, 4]),
    rt.tensor(new Float32Array(10).fill(0.1), [2, 5]),
    rt.tensor(Float32Array.from([1, 0, 0, 0, 1, 0]), [2, 3]),
    rt.tensor(new Float32Array(3), [3]),
    rt.tensor(new Float32Array(6), [3, 2]),
  ];
  disposed = rt.tensor([1, 2], [1, 2]);
  disposed.dispose();
  disposedModel = wpc.makeMlp(rt, { seed: 2, inputDim: 4, width: 5, depth: 2, outputDim: 3, actFn: 'tanh' });
  disposedModel.dispose();
  dir = await mkdtemp(join(tmpdir(), 'wpc-fuzz-'));
});

afterAll(async () => {
  rt.dispose();
  await rm(dir, { recursive: true, force: true });
  // The issue asks for at least 10,000 cases in CI.
  if (SCALE >= 1) expect(total).toBeGreaterThanOrEqual(10_000);
});

/** Junk of every kind a caller might pass by mistake. */
const junkNumber = fc.constantFrom(NaN, Infinity, -Infinity, -1, 0, 0.5, 1e9, 2 ** 53, -0, 3, 1e-320);
const junkScalar = fc.oneof(
  junkNumber,
  fc.constantFrom(undefined, null, true, false, '', 'tanh', 'euler', 'mse', 'x', Symbol('s'), 10n),
  fc.integer({ min: -5, max: 400 }),
  fc.double(),
  fc.string({ maxLength: 6 }),
);
const OPTION_KEYS = [
  'input',
  'loss',
  'solver',
  'stepsizeController',
  'maxT1',
  'dt',
  'maxSteps',
  'steps',
  'seed',
  'sigma',
  'lr',
  'b1',
  'eps',
  'momentum',
  'nesterov',
  'actFn',
  'dims',
  'depth',
  'width',
  'inputDim',
  'outputDim',
  'useBias',
  'paramType',
  'gamma',
  'skipModel',
  'recordLayers',
  'activityNorms',
  'gradNorms',
  'checkFinite',
  'clipGradNorm',
  'transA',
  'transB',
  'alpha',
  'optim',
  'optState',
  'step',
  'extra',
  'weights',
  'biases',
  'pollEvery',
  'rtol',
  'atol',
  'batchSize',
  'shuffle',
  'bogus',
];

function arbitraries() {
  const gpuThing = fc.constantFrom<unknown>(
    () => model,
    () => optim,
    () => optState,
    () => rt,
    () => disposed,
    () => disposedModel,
    ...tensors.map((t) => () => t),
  );
  const resolved = gpuThing.map((f) => (f as () => unknown)());
  const arrayish = fc.oneof(
    fc.array(junkScalar, { maxLength: 5 }),
    fc.array(fc.double({ noNaN: false }), { maxLength: 12 }).map((a) => Float32Array.from(a)),
    fc.array(resolved, { maxLength: 4 }),
    fc.constantFrom<unknown>(new Uint8Array(5), new Float64Array(3), [], [[]], [2, 4], [-1, 3], [0], [1e9, 1e9]),
  );
  const options = fc.dictionary(fc.constantFrom(...OPTION_KEYS), fc.oneof(junkScalar, resolved, arrayish), {
    maxKeys: 4,
  });
  const arg = fc.oneof(
    { weight: 3, arbitrary: resolved },
    { weight: 3, arbitrary: junkScalar },
    { weight: 2, arbitrary: arrayish },
    { weight: 2, arbitrary: options },
  );
  return fc.array(arg, { maxLength: 5 });
}

/** Every exported function of the Node entry point except constructors, async file helpers (below) and long studies. */
const SKIP = new Set([
  'init',
  'initFromDevice',
  'loadDataset',
  'loadModel',
  'saveModel',
  'saveCheckpoint',
  'loadCheckpoint',
  'writeImageGrid',
]);
const FUNCTIONS = Object.entries(wpc)
  .filter(([name, f]) => typeof f === 'function' && !/^[A-Z]/.test(name) && !SKIP.has(name))
  .map(([name, f]) => [name, f as (...args: unknown[]) => unknown] as const);

async function snapshot(): Promise<string> {
  const { weights } = await model.toArrays();
  const state = await optState.stateToArray();
  const words = [
    ...weights.flatMap((w) => Array.from(new Uint32Array(w.buffer, w.byteOffset, w.length))),
    ...Array.from(new Uint32Array(state!.buffer)),
  ];
  return `${optState.count}:${words.join(',')}`;
}

function describeArg(a: unknown): string {
  try {
    if (a instanceof wpc.Tensor) return `Tensor[${a.shape.join(',')}]`;
    if (a === model) return 'model';
    if (a === optState) return 'optState';
    if (a === rt) return 'rt';
    if (typeof a === 'bigint' || typeof a === 'symbol') return String(a);
    return (
      JSON.stringify(a, (_k, v) =>
        v instanceof wpc.Tensor ? `Tensor[${v.shape}]` : v === model ? 'model' : typeof v === 'bigint' ? String(v) : v,
      )?.slice(0, 300) ?? String(a)
    );
  } catch {
    return '?';
  }
}

/** Functions whose messages start with a caller-given label (a file name) rather than their own name. */
const LABELLED = new Set(['decodeSafetensors', 'restoreTrainingCheckpoint', 'parseIdx', 'readIdxStream']);

function checkError(name: string, e: unknown): void {
  if (!(e instanceof WpcError)) throw new Error(`${name} threw a non-WPC error: ${String((e as Error)?.stack ?? e)}`);
  const message = (e as Error).message;
  if (message.length < 12) throw new Error(`${name}: an error without a useful message: ${JSON.stringify(message)}`);
  // Argument errors say which function complained: "fn: options.dt must be …", "Model.toArrays: …".
  if (e instanceof WpcArgumentError && !LABELLED.has(name) && !/^[A-Za-z][\w.]*(\(\))?: /.test(message)) {
    throw new Error(`${name}: an argument error that does not start with the function's name: ${message}`);
  }
}

describe('every public function under random bad input', () => {
  it(`${FUNCTIONS.length} functions, each called with junk: success or a WpcError, state untouched on errors`, async () => {
    expect(FUNCTIONS.length).toBeGreaterThan(60);
    const before = await snapshot();
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...FUNCTIONS), arbitraries(), async ([name, f], args) => {
        cases++;
        const touchesState = args.some(
          (a) =>
            a === model ||
            a === optState ||
            (typeof a === 'object' && a !== null && Object.values(a).some((v) => v === model || v === optState)),
        );
        const snap = touchesState ? await snapshot() : null;
        if (process.env.FUZZ_LOG)
          appendFileSync(process.env.FUZZ_LOG, `${name}(${args.map((a) => describeArg(a)).join(', ')})\n`);
        try {
          const r = f(...args);
          if (r && typeof (r as Promise<unknown>).then === 'function') await r;
        } catch (e) {
          checkError(name, e);
          if (snap !== null)
            expect(
              await snapshot(),
              `${name} threw (${(e as Error).message}) but changed the model or optimiser state`,
            ).toBe(snap);
          // A WPC error must not poison the runtime (no pending GPU error left behind).
          rt.checkHealthy('fuzz');
        }
      }),
      { numRuns: runs(7000), seed: Number(process.env.FUZZ_SEED ?? 20261123), endOnFailure: true },
    );
    total += cases;
    // The shared model was only ever changed by calls that succeeded; at least the runtime still works.
    expect(typeof before).toBe('string');
    const t = rt.tensor([1, 2, 3], [3]);
    expect(Array.from(await t.toArray())).toEqual([1, 2, 3]);
    t.dispose();
  });

  it('near-valid calls of the PC functions (one argument or option corrupted) succeed or fail cleanly', async () => {
    // The shared network is 4 → 5 → 3 with batch 2: x [2, 4], activities [2, 5] and [2, 3], y [2, 3].
    const [x, z1, y] = [tensors[0]!, tensors[1]!, tensors[2]!];
    const acts = [z1, y];
    const actOptim = wpc.sgd({ lr: 0.1 });
    const actState = actOptim.init(acts);
    const pcOpts = { input: x };
    const TEMPLATES: [string, (...a: unknown[]) => unknown, unknown[]][] = [
      ['pcEnergy', wpc.pcEnergy as never, [model, acts, y, pcOpts]],
      ['computePcActivityGrad', wpc.computePcActivityGrad as never, [model, acts, y, pcOpts]],
      ['computePcParamGrads', wpc.computePcParamGrads as never, [model, acts, y, pcOpts]],
      ['solveInference', wpc.solveInference as never, [model, acts, y, { input: x, maxT1: 1, dt: 0.5 }]],
      ['updatePcActivities', wpc.updatePcActivities as never, [model, acts, actOptim, actState, y, pcOpts]],
      ['updatePcParams', wpc.updatePcParams as never, [model, acts, optim, optState, y, pcOpts]],
      [
        'makePcStep',
        wpc.makePcStep as never,
        [model, optim, optState, y, { input: x, solver: 'euler', stepsizeController: 'constant', maxT1: 1, dt: 0.5 }],
      ],
      ['initActivitiesWithFfwd', wpc.initActivitiesWithFfwd as never, [model, x]],
      ['testDiscriminativePc', wpc.testDiscriminativePc as never, [model, y, x, {}]],
      ['computeActivityNorms', wpc.computeActivityNorms as never, [acts]],
      ['computeParamNorms', wpc.computeParamNorms as never, [model]],
      ['mseLoss', wpc.mseLoss as never, [y, y]],
      ['computeAccuracy', wpc.computeAccuracy as never, [y, y]],
      ['matmul', wpc.matmul as never, [x, tensors[4]!.shape[0] === 3 ? z1 : z1, { transB: true }]],
      ['trainingCheckpoint', trainingCheckpoint as never, [model, { optim, optState, step: 1 }]],
    ];
    const junk = fc.oneof(
      junkScalar,
      fc.constantFrom<unknown>(
        disposed,
        disposedModel,
        tensors[3],
        tensors[4],
        [z1],
        [z1, y, x],
        [y, z1],
        [],
        {},
        optim,
        actOptim,
        actState,
        optState,
      ),
    );
    const corruption = fc.record({
      position: fc.nat(),
      value: junk,
      optionKey: fc.constantFrom(...OPTION_KEYS),
      optionValue: fc.oneof(
        junk,
        fc.constantFrom<unknown>('ce', 'mse', 'heun', 'tsit5', 'constant', 'mupc', true, 1e-3, 2, 64),
      ),
      which: fc.integer({ min: 0, max: 2 }),
    });
    let cases = 0;
    let succeeded = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...TEMPLATES), corruption, async ([name, f, template], c) => {
        cases++;
        const args = [...template];
        if (c.which !== 1) args[c.position % args.length] = c.value;
        if (c.which !== 0) {
          const last = args.length - 1;
          const base =
            typeof args[last] === 'object' &&
            args[last] !== null &&
            !Array.isArray(args[last]) &&
            !(args[last] instanceof wpc.Tensor)
              ? (args[last] as object)
              : {};
          args[last] = { ...base, [c.optionKey]: c.optionValue };
        }
        const touchesState = args.includes(model) || args.includes(optState);
        const snap = touchesState ? await snapshot() : null;
        if (process.env.FUZZ_LOG)
          appendFileSync(process.env.FUZZ_LOG, `near ${name}(${args.map((a) => describeArg(a)).join(', ')})\n`);
        try {
          const r = await f(...args);
          succeeded++;
          // A call that succeeded left no GPU error behind (e.g. no use of a destroyed buffer).
          await rt.finish();
          rt.checkHealthy(`${name} (succeeded)`);
          // Release what a successful call handed back (tensors), so the pool stays small.
          const release = (v: unknown, depth = 0): void => {
            if (v instanceof wpc.Tensor && !tensors.includes(v) && v !== disposed) v.dispose();
            else if (Array.isArray(v) && depth < 2) v.forEach((u) => release(u, depth + 1));
            else if (
              v &&
              typeof v === 'object' &&
              depth < 2 &&
              !(v instanceof wpc.Model) &&
              !(v instanceof wpc.OptState)
            )
              Object.values(v).forEach((u) => release(u, depth + 1));
          };
          release(r);
        } catch (e) {
          checkError(name, e);
          if (snap !== null)
            expect(
              await snapshot(),
              `${name} threw (${(e as Error).message}) but changed the model or optimiser state`,
            ).toBe(snap);
          rt.checkHealthy('fuzz');
        }
        if (optState.count > 0) await optState.checkDivergence().catch(() => optState.clearDivergence());
      }),
      { numRuns: runs(1500), seed: Number(process.env.FUZZ_SEED ?? 99), endOnFailure: true },
    );
    total += cases;
    // Enough calls get through validation to exercise the GPU paths too. Most are refused by design: every
    // template refuses an unknown option key (trainingCheckpoint too: it ignored them, and made up most of the
    // successes that way), and the paths that remain are the PC functions'.
    expect(succeeded, `${succeeded} of ${cases} near-valid calls succeeded`).toBeGreaterThan(cases * 0.02);
    actState.dispose();
  });

  it('runtime methods (tensor, empty, wrap, read) refuse bad shapes, data and ranges', async () => {
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('tensor', 'empty', 'wrap', 'read'),
        fc.oneof(fc.array(fc.oneof(fc.integer({ min: -3, max: 5 }), junkNumber), { maxLength: 4 }), junkScalar),
        fc.oneof(
          fc.array(fc.double(), { maxLength: 10 }).map((a) => Float32Array.from(a)),
          junkScalar,
        ),
        async (method, shape, data) => {
          cases++;
          try {
            const r =
              method === 'tensor'
                ? rt.tensor(data as Float32Array, shape as number[])
                : method === 'empty'
                  ? rt.empty(shape as number[])
                  : method === 'wrap'
                    ? rt.wrap(data as never, shape as never)
                    : await rt.read(data as never);
            if (r && typeof r === 'object' && 'dispose' in r) (r as wpc.Tensor).dispose();
          } catch (e) {
            checkError(`runtime.${method}`, e);
          }
        },
      ),
      { numRuns: runs(1000), seed: 7 },
    );
    total += cases;
    rt.checkHealthy('fuzz');
  });
});

/** Flips one random bit, truncates, or both. */
const mutation = fc.record({
  cut: fc.option(fc.nat(), { nil: undefined }),
  flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { maxLength: 3 }),
});
function mutate(bytes: Uint8Array, m: { cut: number | undefined; flips: [number, number][] }): Uint8Array {
  // A copy (Buffer.slice would share memory and let the mutations pile up across cases).
  const out = new Uint8Array(bytes.subarray(0, m.cut === undefined ? bytes.length : m.cut % (bytes.length + 1)));
  for (const [at, bit] of m.flips) if (out.length > 0) out[at % out.length]! ^= 1 << bit;
  return out;
}

describe('file readers under truncated and bit-flipped files', () => {
  it('parseIdx on mangled MNIST label and image files', async () => {
    const labels = gunzipSync(await readFile(join(DATA_DIR, 'mnist', 't10k-labels-idx1-ubyte.gz'))).subarray(0, 2008);
    const images = gunzipSync(await readFile(join(DATA_DIR, 'mnist', 't10k-images-idx3-ubyte.gz'))).subarray(
      0,
      16 + 784 * 3,
    );
    let cases = 0;
    await fc.assert(
      fc.property(fc.boolean(), mutation, (useImages, m) => {
        cases++;
        const bytes = mutate(useImages ? images : labels, m);
        try {
          const r = parseIdx(bytes, 'f.idx');
          expect(r.dims.reduce((a, b) => a * b, 1)).toBe(r.data.length);
        } catch (e) {
          checkError('parseIdx', e);
          expect((e as Error).message).toMatch(/^f\.idx/);
        }
      }),
      { numRuns: runs(1000), seed: 3 },
    );
    total += cases;
  });

  it('IDX headers of every size through parseIdx and the bounded stream reader: an exact parse or an IdxError', async () => {
    const size = fc.oneof(
      fc.constantFrom(0, 1, 2, 3, 28, 255, 2 ** 16, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1),
      fc.nat({ max: 2 ** 32 - 1 }),
      fc.nat({ max: 40 }),
    );
    const header = fc.record({
      type: fc.oneof(fc.constant(0x08), fc.nat({ max: 255 })),
      dims: fc.oneof(fc.array(size, { maxLength: 5 }), fc.array(size, { minLength: 255, maxLength: 255 })),
      cutOrExtra: fc.oneof(fc.constant(0), fc.integer({ min: -20, max: 20 })),
      gzip: fc.boolean(),
      maxBytes: fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.constant(MAX_IDX_BYTES)),
    });
    let cases = 0;
    let parsed = 0;
    await fc.assert(
      fc.asyncProperty(header, async ({ type, dims, cutOrExtra, gzip, maxBytes }) => {
        cases++;
        const head = new Uint8Array(4 + 4 * dims.length);
        const view = new DataView(head.buffer);
        view.setUint32(0, (type << 8) | (dims.length & 0xff));
        dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
        const declared = dims.reduce((a, d) => a * BigInt(d), 1n);
        // Data of the declared length give or take a few bytes when that is small, else a little junk.
        const length = declared <= 5000n ? Math.max(0, Number(declared) + cutOrExtra) : Math.abs(cutOrExtra);
        const bytes = new Uint8Array(head.length + length);
        bytes.set(head);
        for (let i = head.length; i < bytes.length; i++) bytes[i] = i % 251;
        const expectParse = (r: { dims: number[]; data: Uint8Array }) => {
          expect(r.dims).toEqual(dims);
          expect(BigInt(r.data.length)).toBe(declared);
        };
        try {
          expectParse(parseIdx(bytes, 'f.idx'));
        } catch (e) {
          checkError('parseIdx', e);
          expect(e).toBeInstanceOf(wpc.IdxError);
          expect((e as Error).message).toMatch(/^f\.idx: /);
        }
        const input = gzip ? gzipSync(bytes) : bytes;
        const stats = { produced: 0, raw: 0 };
        try {
          const r = await readIdxStream(
            new Blob([input]).stream(),
            'f.idx',
            { maxBytes, limitReason: 'fuzz', sourceBytes: input.length },
            stats,
          );
          expectParse(r);
          parsed++;
          expect(bytes.length).toBeLessThanOrEqual(maxBytes);
        } catch (e) {
          checkError('readIdxStream', e);
          expect(e).toBeInstanceOf(wpc.IdxError);
          expect((e as Error).message).toMatch(/^f\.idx: /);
          expect((e as Error).message).not.toMatch(/[\u0000-\u001f\ufffd]/);
        }
        // Never more than the limit (plus one read's worth) is decompressed, whatever the header says.
        expect(stats.produced).toBeLessThanOrEqual(
          Math.max(bytes.length <= maxBytes ? bytes.length : 0, maxBytes) + 65536,
        );
      }),
      { numRuns: runs(400), seed: 17 },
    );
    if (SCALE >= 1) expect(parsed).toBeGreaterThan(10); // the success path is exercised too
    total += cases;
  });

  it('loadDataset on mangled .gz files in a data directory', async () => {
    const names = [
      'train-images-idx3-ubyte.gz',
      'train-labels-idx1-ubyte.gz',
      't10k-images-idx3-ubyte.gz',
      't10k-labels-idx1-ubyte.gz',
    ];
    const small = {
      images: (n: number) => {
        const b = new Uint8Array(16 + n * 784);
        new DataView(b.buffer).setUint32(0, 0x803);
        new DataView(b.buffer).setUint32(4, n);
        new DataView(b.buffer).setUint32(8, 28);
        new DataView(b.buffer).setUint32(12, 28);
        return b;
      },
      labels: (n: number) => {
        const b = new Uint8Array(8 + n);
        new DataView(b.buffer).setUint32(0, 0x801);
        new DataView(b.buffer).setUint32(4, n);
        return b;
      },
    };
    const good = [
      gzipSync(small.images(4)),
      gzipSync(small.labels(4)),
      gzipSync(small.images(2)),
      gzipSync(small.labels(2)),
    ];
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 3 }), mutation, fc.boolean(), async (which, m, rawBytes) => {
        cases++;
        const d = join(dir, `ds${cases}`, 'mnist');
        await import('node:fs/promises').then((fs) => fs.mkdir(d, { recursive: true }));
        for (let i = 0; i < 4; i++) {
          const bytes = i === which ? mutate(rawBytes ? gunzipSync(good[i]!) : good[i]!, m) : good[i]!;
          await writeFile(join(d, names[i]!), bytes);
        }
        try {
          const ds = await wpc.loadDataset('mnist', which < 2 ? 'train' : 'test', { dataDir: join(dir, `ds${cases}`) });
          expect(ds.count).toBeGreaterThan(0);
        } catch (e) {
          checkError('loadDataset', e);
        }
        await rm(join(dir, `ds${cases}`), { recursive: true, force: true });
      }),
      { numRuns: runs(300), seed: 5 },
    );
    total += cases;
  });

  it('restoreTrainingCheckpoint on mangled checkpoints: any changed file is refused with a WpcError, allocating nothing', async () => {
    const good = await trainingCheckpoint(model, { optim, optState, step: 3, extra: { a: 1 } });
    const persistent = rt.memoryStats().persistentBytes;
    let cases = 0;
    await fc.assert(
      fc.property(mutation, (m) => {
        cases++;
        const bytes = mutate(good, m);
        const changed = bytes.length !== good.length || bytes.some((b, i) => b !== good[i]);
        try {
          const r = restoreTrainingCheckpoint(rt, bytes, 'ck');
          r.model.dispose();
          r.optState?.dispose();
          expect(changed, 'a changed checkpoint loaded').toBe(false);
        } catch (e) {
          checkError('restoreTrainingCheckpoint', e);
          expect((e as Error).message).toMatch(/^ck: /);
          expect(changed, `the unchanged checkpoint was refused: ${(e as Error).message}`).toBe(true);
        }
        expect(rt.memoryStats().persistentBytes).toBe(persistent);
      }),
      { numRuns: runs(1500), seed: 11 },
    );
    total += cases;
    // And the generic container on random bytes.
    await fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        cases++;
        total++;
        try {
          decodeSafetensors(bytes);
        } catch (e) {
          checkError('decodeSafetensors', e);
        }
      }),
      { numRuns: runs(500), seed: 13 },
    );
    expect(decodeSafetensors(encodeSafetensors({})).tensors).toEqual({});
  });
});
