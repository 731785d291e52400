// Reliability: the divergence guard (NaN/Inf detected on the GPU, update withheld, error naming step and
// layer), gradient clipping, determinism, device loss, allocation limits, dispose, and a 5,000-step leak test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adam, init, makeMlp, makePcStep, sgd, type Runtime } from '../../src/node.js';
import { WpcArgumentError, WpcDivergenceError, WpcGpuError } from '../../src/runtime/errors.js';
import { Random } from '../../src/util/random.js';
import { bits, randomBatch } from '../support/helpers.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// A real garbage collection before each heap measurement (vitest's workers do not expose gc()).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let rt: Runtime;
beforeAll(async () => {
  rt = await init();
});
afterAll(() => rt.dispose());

const data = randomBatch;
const flatWeights = async (m: { toArrays(): Promise<{ weights: Float32Array[] }> }) =>
  (await m.toArrays()).weights.flatMap((w) => Array.from(w));

describe('divergence guard', () => {
  it('a huge dt makes activities non-finite: the update is withheld and the error names the step and layer', async () => {
    const model = makeMlp(rt, { seed: 1, inputDim: 5, width: 8, depth: 3, outputDim: 3, actFn: 'linear' });
    const optim = adam({ lr: 1e-2 });
    const optState = optim.init(model);
    const { x, y } = data(rt, 2, 4, 5, 3);
    const sane = { input: x, solver: 'euler' as const, stepsizeController: 'constant' as const, maxT1: 1, dt: 0.25 };
    await makePcStep(model, optim, optState, y, sane);
    await optState.checkDivergence(); // healthy: no throw
    const before = await flatWeights(model);
    // dt = 1e30: z explodes to ±Inf (then NaN) within the 3 Euler steps.
    await makePcStep(model, optim, optState, y, { ...sane, maxT1: 3e30, dt: 1e30 });
    // A step recorded after the divergence (before anyone read the flag) is not applied either.
    await makePcStep(model, optim, optState, y, sane);
    const error = await optState.checkDivergence().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WpcDivergenceError);
    const d = error as WpcDivergenceError;
    expect(d.step).toBe(2);
    expect(d.message).toMatch(/training diverged at step 2: NaN or Inf in the (energy of layer \d|activities z_\d)/);
    expect(d.message).toMatch(/update of step 2 was not applied, so the model keeps its weights from step 1/);
    expect(await flatWeights(model)).toEqual(before);
    expect(optState.count).toBe(1);
    await expect(makePcStep(model, optim, optState, y, sane)).rejects.toThrow(
      /makePcStep: training diverged at step 2/,
    );
    // Cleared, training goes on from the last good state.
    optState.clearDivergence();
    await makePcStep(model, optim, optState, y, sane);
    await optState.checkDivergence();
    expect(optState.count).toBe(2);
    expect(await flatWeights(model)).not.toEqual(before);
    for (const t of [model, optState, x, y]) t.dispose();
  });

  it('non-finite parameter gradients name their layer', async () => {
    const model = makeMlp(rt, { seed: 3, inputDim: 4, width: 6, depth: 2, outputDim: 2, actFn: 'tanh' });
    const optim = sgd({ lr: 0.1 });
    const optState = optim.init(model);
    // A huge input overflows the first layer's weight gradient e_1ᵀ·x while the activities stay finite.
    const rng = new Random(4);
    const x = rt.tensor(
      Float32Array.from({ length: 8 }, () => 3e38 * (rng.nextInt(2) ? 1 : -1)),
      [2, 4],
    );
    const y = rt.tensor(Float32Array.from([1, 0, 0, 1]), [2, 2]);
    const before = await flatWeights(model);
    await makePcStep(model, optim, optState, y, {
      input: x,
      solver: 'euler',
      stepsizeController: 'constant',
      maxT1: 0.5,
      dt: 0.5,
    });
    const e = (await optState.checkDivergence().catch((err: unknown) => err)) as WpcDivergenceError;
    expect(e).toBeInstanceOf(WpcDivergenceError);
    expect(e.step).toBe(1);
    expect(e.message).toMatch(/step 1: NaN or Inf in /);
    expect(await flatWeights(model)).toEqual(before);
    for (const t of [model, optState, x, y]) t.dispose();
  });

  it('clipGradNorm scales the update to the given global norm, and is exact when not active', async () => {
    const { x, y } = data(rt, 5, 6, 4, 3);
    const run = async (opts: { clipGradNorm?: number; checkFinite?: boolean }) => {
      const model = makeMlp(rt, {
        seed: 6,
        inputDim: 4,
        width: 7,
        depth: 3,
        outputDim: 3,
        actFn: 'tanh',
        useBias: true,
      });
      const optim = sgd({ lr: 1 });
      const optState = optim.init(model);
      const before = await model.toArrays();
      const r = await makePcStep(model, optim, optState, y, {
        input: x,
        solver: 'euler',
        stepsizeController: 'constant',
        maxT1: 1,
        dt: 0.25,
        gradNorms: true,
        ...opts,
      });
      const after = await model.toArrays();
      const delta: number[] = [];
      after.weights.forEach((w, l) => w.forEach((v, i) => delta.push(v - before.weights[l]![i]!)));
      after.biases.forEach((b, l) => b!.forEach((v, i) => delta.push(v - before.biases[l]![i]!)));
      const gn = await r.gradNorms!.toArray();
      for (const t of [model, optState, r.gradNorms!]) t.dispose();
      return { delta, gradNorm: Math.hypot(...gn), bits: after.weights.flatMap((w) => bits(w)) };
    };
    const plain = await run({ checkFinite: false });
    const guarded = await run({});
    expect(guarded.bits).toEqual(plain.bits); // the guard's scale 1.0 changes nothing
    const big = await run({ clipGradNorm: 1e6 });
    expect(big.bits).toEqual(plain.bits);
    const c = plain.gradNorm / 4;
    const clipped = await run({ clipGradNorm: c });
    expect(Math.hypot(...clipped.delta)).toBeCloseTo(c, 4); // ‖Δp‖ = lr·c
    clipped.delta.forEach((v, i) => expect(v).toBeCloseTo((plain.delta[i]! * c) / plain.gradNorm, 5));
    await expect(
      makePcStep(
        makeMlp(rt, { seed: 1, inputDim: 4, width: 3, depth: 2, outputDim: 3, actFn: 'tanh' }),
        sgd({ lr: 1 }),
        sgd({ lr: 1 }).init(makeMlp(rt, { seed: 1, inputDim: 4, width: 3, depth: 2, outputDim: 3, actFn: 'tanh' })),
        y,
        { input: x, clipGradNorm: -1 },
      ),
    ).rejects.toThrow(WpcArgumentError);
    for (const t of [x, y]) t.dispose();
  });

  it('refuses clipGradNorm without the guard, and a non-boolean checkFinite', async () => {
    const model = makeMlp(rt, { seed: 7, inputDim: 3, width: 3, depth: 2, outputDim: 2, actFn: 'tanh' });
    const optim = sgd({ lr: 0.1 });
    const optState = optim.init(model);
    const { x, y } = data(rt, 8, 2, 3, 2);
    await expect(
      makePcStep(model, optim, optState, y, { input: x, clipGradNorm: 1, checkFinite: false }),
    ).rejects.toThrow(/options\.clipGradNorm needs options\.checkFinite/);
    await expect(makePcStep(model, optim, optState, y, { input: x, checkFinite: 'yes' as never })).rejects.toThrow(
      /options\.checkFinite must be a boolean/,
    );
    await expect(makePcStep(model, optim, optState, y, { input: x, clipGradNorm: Number.NaN })).rejects.toThrow(
      /options\.clipGradNorm/,
    );
    expect(optState.count).toBe(0);
    for (const t of [model, optState, x, y]) t.dispose();
  });
});

describe('determinism', () => {
  it('the same seed on the same adapter gives bit-identical weights after 10 training steps', async () => {
    const train = async () => {
      const r = await init();
      try {
        const model = makeMlp(r, {
          seed: 11,
          inputDim: 12,
          width: 20,
          depth: 3,
          outputDim: 4,
          actFn: 'tanh',
          useBias: true,
        });
        const optim = adam({ lr: 1e-2 });
        const optState = optim.init(model);
        for (let i = 0; i < 10; i++) {
          const { x, y } = data(r, 100 + i, 9, 12, 4);
          await makePcStep(model, optim, optState, y, { input: x, solver: 'heun', maxT1: 2, dt: 0.1 });
          x.dispose();
          y.dispose();
        }
        return (await model.toArrays()).weights.flatMap((w) => bits(w));
      } finally {
        r.dispose();
      }
    };
    const [a, b] = [await train(), await train()];
    expect(b).toEqual(a);
  });
});

describe('device faults and resources', () => {
  it('a lost device becomes a clear error on the next call, and init() works again', async () => {
    const r = await init();
    const model = makeMlp(r, { seed: 1, inputDim: 3, width: 4, depth: 2, outputDim: 2, actFn: 'tanh' });
    r.device.destroy(); // what a driver reset looks like from here: device.lost resolves
    await new Promise((resolve) => setTimeout(resolve, 50));
    const optim = sgd({ lr: 0.1 });
    let error: unknown;
    try {
      const optState = optim.init(model);
      await makePcStep(model, optim, optState, r.tensor([1, 0], [1, 2]), { input: r.tensor([1, 2, 3], [1, 3]) });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(WpcGpuError);
    expect((error as WpcGpuError).kind).toBe('device-lost');
    expect((error as Error).message).toMatch(/the GPU device was lost .*call init\(\) again/);
    r.dispose();
    const fresh = await init();
    const m2 = makeMlp(fresh, { seed: 1, inputDim: 3, width: 4, depth: 2, outputDim: 2, actFn: 'tanh' });
    expect((await m2.toArrays()).weights[0]!.length).toBe(12);
    fresh.dispose();
  });

  it('allocations past the adapter limits report the bytes asked for and the limit', () => {
    const max = rt.limits.maxStorageBufferBindingSize;
    const rows = Math.ceil(max / 4 / 1024) + 1;
    expect(() => rt.empty([rows, 1024])).toThrow(
      new RegExp(`${rows * 1024 * 4}|${((rows * 1024 * 4) / 2 ** 20).toFixed(1)} MiB`),
    );
    expect(() => rt.empty([rows, 1024])).toThrow(/maxStorageBufferBindingSize|maxBufferSize/);
    expect(() =>
      makeMlp(rt, { seed: 0, inputDim: 8192, width: 8192, depth: 2, outputDim: 8192, actFn: 'tanh' }),
    ).toThrow(
      /makeMlp: options\.\w+ 8192 is too large: it needs [\d.]+ MiB for the parameters .* but this device allows at most [\d.]+ MiB in one storage binding/,
    );
  });

  it('dispose() frees every GPU byte WPC counted, and a disposed model or runtime is refused', async () => {
    const r = await init();
    const model = makeMlp(r, { seed: 2, inputDim: 6, width: 10, depth: 3, outputDim: 3, actFn: 'tanh' });
    const optim = adam({ lr: 1e-3 });
    const optState = optim.init(model);
    const { x, y } = data(r, 3, 4, 6, 3);
    await makePcStep(model, optim, optState, y, { input: x });
    expect(r.memoryStats().persistentBytes).toBeGreaterThan(0);
    model.dispose();
    optState.dispose();
    x.dispose();
    y.dispose();
    await expect(model.toArrays()).rejects.toThrow(/disposed/);
    r.dispose();
    expect(r.memoryStats().persistentBytes).toBe(0);
    expect(r.memoryStats().inUseBytes).toBe(0);
    expect(() => r.tensor([1], [1])).toThrow(/the runtime has been disposed/);
  });

  it('5,000 training steps keep GPU memory flat and the JS heap bounded', async () => {
    const r = await init();
    try {
      const model = makeMlp(r, { seed: 9, inputDim: 6, width: 8, depth: 2, outputDim: 3, actFn: 'tanh' });
      const optim = adam({ lr: 1e-3 });
      const optState = optim.init(model);
      const batches = Array.from({ length: 4 }, (_, i) => data(r, 50 + i, 4, 6, 3));
      const step = async (i: number) => {
        const b = batches[i % batches.length]!;
        const res = await makePcStep(model, optim, optState, b.y, {
          input: b.x,
          solver: 'euler',
          stepsizeController: 'constant',
          maxT1: 0.5,
          dt: 0.25,
        });
        res.loss.dispose();
        res.energies.dispose();
      };
      for (let i = 0; i < 200; i++) await step(i);
      await r.finish();
      const gpu0 = r.memoryStats();
      gc();
      const heap0 = process.memoryUsage().heapUsed;
      for (let i = 200; i < 5000; i++) {
        await step(i);
        if (i % 250 === 0) await r.finish(); // keep the queue short, as a training loop's polls do
      }
      await r.finish();
      await optState.checkDivergence();
      const gpu1 = r.memoryStats();
      gc();
      const heap1 = process.memoryUsage().heapUsed;
      if (process.env.WPC_LEAK_LOG) console.log(`heap growth ${heap1 - heap0} bytes`);
      expect(gpu1.persistentBytes).toBe(gpu0.persistentBytes);
      expect(gpu1.inUseBytes).toBe(gpu0.inUseBytes);
      expect(gpu1.pooledBytes).toBeLessThanOrEqual(gpu0.pooledBytes + 64 * 1024);
      expect(
        heap1 - heap0,
        `JS heap grew by ${((heap1 - heap0) / 2 ** 20).toFixed(1)} MiB over 4,800 steps`,
      ).toBeLessThan(4 * 2 ** 20); // measured: ~0.2 MiB (noise); a 1 KiB-per-step leak would be 4.7 MiB
      expect(optState.count).toBe(5000);
    } finally {
      r.dispose();
    }
  });
});
