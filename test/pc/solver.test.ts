import { describe, expect, it } from 'vitest';
import {
  ACTIVATIONS,
  ffwd,
  hairerInitialStep,
  pcVectorField,
  solveEuler,
  solveHeunConstant,
  solveHeunPid,
  type Act,
  type Loss,
  type Mat,
} from '../reference/jpc64.js';
import { solveInference } from '../../src/pc/infer.js';
import { initActivitiesWithFfwd } from '../../src/pc/energy.js';
import { Workspace } from '../../src/pc/workspace.js';
import { Recorder } from '../../src/runtime/recorder.js';
import { writeSolverConfig } from '../../src/pc/solve/config.js';
import type { SolverStateView } from '../../src/pc/solve/controlled.js';
import { constantStepEnds, constantStepSizes } from '../../src/pc/solve/grid.js';
import { integrate } from '../../src/pc/solve/integrate.js';
import { resolveSolverOptions } from '../../src/pc/solve/options.js';
import { submitAfterStep } from '../../src/pc/solve/plan.js';
import { loadActivities, loadBatch } from '../../src/pc/batch.js';
import { WpcArgumentError } from '../../src/runtime/errors.js';
import { init } from '../../src/node.js';
import { Random } from '../../src/util/random.js';
import {
  expectClose,
  flat,
  gpuModel,
  oneHotMat,
  randomMat,
  randomRefModel,
  readAll,
  tensorOf,
  useRuntime,
} from '../support/helpers.js';
import { numConstantSteps } from '../reference/jpc64.js';

const rt = useRuntime();

function problem(seed: number, act: Act, loss: Loss, dims = [6, 9, 7, 4], B = 5) {
  const rng = new Random(seed);
  const ref = randomRefModel(seed, dims, act, true);
  const x = randomMat(rng, B, dims[0]!);
  const y = loss === 'ce' ? oneHotMat(rng, B, dims.at(-1)!) : randomMat(rng, B, dims.at(-1)!);
  // Start away from equilibrium so the dynamics have something to do.
  const acts0 = ffwd(ref, x).map((m) => ({
    ...m,
    data: Float64Array.from(m.data, (v) => Math.fround(v + 0.5 * rng.normal())),
  }));
  return { ref, x, y, acts0, B, dims };
}

describe('constant step sizes', () => {
  it("the float32 step grid is diffrax's (first step dt0, then t0 + (t1 − t0)·n/N)", () => {
    for (const [t1, dt] of [
      [20, 0.05],
      [10, 0.041841],
      [100, 0.1],
      [5, 0.5],
      [1, 0.3],
    ] as const) {
      const sizes = constantStepSizes(t1, dt);
      expect(sizes.length, `T=${t1}, dt=${dt}`).toBe(numConstantSteps(0, t1, dt, 'float32'));
      expect(sizes[0]).toBe(Math.fround(Math.min(dt, t1)));
      expect(sizes.reduce((a, b) => a + b, 0)).toBeCloseTo(t1, 3);
    }
    expect(constantStepSizes(1, 0.3).map((v) => +v.toFixed(6))).toEqual([0.3, 0.2, 0.25, 0.25]);
  });

  it('the grids are kept (frozen) between solves and stay the same whatever was asked in between', () => {
    const first = constantStepSizes(10, 0.041841).slice();
    for (let dt = 0.01; dt < 0.2; dt += 0.01) constantStepEnds(3, dt); // more grids than the cache keeps
    const again = constantStepSizes(10, 0.041841);
    expect(again).toEqual(first);
    expect(Object.isFrozen(again)).toBe(true);
    expect(Object.isFrozen(constantStepEnds(10, 0.041841))).toBe(true);
  });

  it('submits the first steps early, then in chunks that double up to 64 steps', () => {
    const submitsAfter = Array.from({ length: 400 }, (_, n) => n)
      .filter(submitAfterStep)
      .map((n) => n + 1);
    expect(submitsAfter).toEqual([4, 12, 28, 60, 124, 188, 252, 316, 380]);
  });

  it('long per-stage solves across the submit chunks, with the step size changed in between, match the reference', async () => {
    // This network is small enough for the fused single-workgroup solve, which has neither chunks nor records.
    const perStage = await init({ kernels: { fused: 'never' } });
    try {
      const p = problem(5, 'tanh', 'mse');
      const model = gpuModel(perStage, p.ref);
      const input = tensorOf(perStage, p.x);
      const output = tensorOf(perStage, p.y);
      const acts = p.acts0.map((a) => tensorOf(perStage, a));
      // 130 steps (submits after 4, 12, 28, 60 and 124), then 65, then 130 again, far from equilibrium: each
      // solve's stage records are rebuilt only when its grid changes, so the second and third must not run on the
      // one before's.
      for (const dt of [0.01, 0.02, 0.01]) {
        const submits = perStage.stats.submits;
        const res = await solveInference(model, acts, output, {
          input,
          solver: 'euler',
          stepsizeController: 'constant',
          maxT1: 1.3,
          dt,
        });
        const ref = solveEuler(p.ref, p.acts0, p.y, p.x, { maxT1: 1.3, dt, loss: 'mse', timeDtype: 'float32' });
        expect(res.steps.accepted).toBe(ref.steps);
        expect(res.encodedSteps).toBe(ref.steps);
        expect(perStage.stats.submits - submits, 'the ramp submits, and a few around the solve').toBeGreaterThanOrEqual(
          dt === 0.01 ? 5 : 4,
        );
        expectClose(await readAll(res.activities), flat(ref.activities), 1e-4, `Euler dt ${dt}`);
      }
      model.dispose();
    } finally {
      perStage.dispose();
    }
  });

  const CONSTANT_CASES: [Act, Loss][] = ACTIVATIONS.map((a, i) => [a, i % 2 === 0 ? 'mse' : 'ce']);
  for (const [act, loss] of CONSTANT_CASES) {
    it(`Euler and Heun trajectories match the reference (${act}, ${loss})`, async () => {
      const p = problem(11, act, loss);
      const model = gpuModel(rt(), p.ref);
      const input = tensorOf(rt(), p.x);
      const output = tensorOf(rt(), p.y);
      const acts = p.acts0.map((a) => tensorOf(rt(), a));
      for (const solver of ['euler', 'heun'] as const) {
        const readsBefore = rt().stats.readbacks;
        const res = await solveInference(model, acts, output, {
          input,
          loss,
          solver,
          stepsizeController: 'constant',
          maxT1: 3,
          dt: 0.1,
        });
        expect(rt().stats.readbacks, 'a constant-step solve reads nothing back').toBe(readsBefore);
        const ref = (solver === 'euler' ? solveEuler : solveHeunConstant)(p.ref, p.acts0, p.y, p.x, {
          maxT1: 3,
          dt: 0.1,
          loss,
          timeDtype: 'float32',
        });
        expect(res.steps.accepted).toBe(ref.steps);
        expect(res.t).toBe(Math.fround(3));
        expectClose(await readAll(res.activities), flat(ref.activities), 1e-4, `${solver} activities`);
      }
      model.dispose();
    });
  }

  it('refuses a grid longer than maxSteps up front, as diffrax does', async () => {
    const p = problem(3, 'tanh', 'mse');
    const model = gpuModel(rt(), p.ref);
    const acts = p.acts0.map((a) => tensorOf(rt(), a));
    await expect(
      solveInference(model, acts, tensorOf(rt(), p.y), {
        input: tensorOf(rt(), p.x),
        solver: 'euler',
        stepsizeController: 'constant',
        maxT1: 500,
        dt: 0.05,
      }),
    ).rejects.toThrow(WpcArgumentError);
    await expect(
      solveInference(model, acts, tensorOf(rt(), p.y), {
        input: tensorOf(rt(), p.x),
        solver: 'euler',
        stepsizeController: 'constant',
        maxT1: 500,
        dt: 0.05,
      }),
    ).rejects.toThrow(/options\.dt 0\.05 needs 10000 constant steps.*maxSteps = 4096/);
    model.dispose();
  });
});

/** Runs a PID solve with a poll after every step, recording the GPU's solver state each time. */
async function tracedPidSolve(
  model: ReturnType<typeof gpuModel>,
  acts: Mat[],
  x: Mat,
  y: Mat,
  loss: Loss,
  options: Parameters<typeof resolveSolverOptions>[1],
) {
  const B = x.rows;
  const ws = await Workspace.get(model, B, 'train');
  const cfg = resolveSolverOptions('test', { ...options, pollEvery: 1 });
  ws.pidHistory.lastSteps = 0;
  const trace: SolverStateView[] = [];
  const rec = new Recorder(rt());
  writeSolverConfig(ws, cfg);
  loadBatch(ws, rec, tensorOf(rt(), x), tensorOf(rt(), y));
  loadActivities(
    ws,
    rec,
    acts.map((a) => tensorOf(rt(), a)),
  );
  const stats = await integrate(ws, rec, cfg, loss, (s) => trace.push(s));
  const [final] = await rt().read([
    { buffer: ws.buffer, byteOffset: ws.activityOffset(1) * 4, byteLength: ws.nAll * 4 },
  ]);
  return { stats, trace, final: final! };
}

describe('Heun with the PID controller', () => {
  // Every activation, with initial steps large enough to force rejections (dt0 > 1) and small (0.05).
  const PID_CASES: [Act, Loss, number][] = ACTIVATIONS.map((a, i) => [
    a,
    i % 2 === 1 ? 'mse' : 'ce',
    [2, 1, 0.05, 3][i % 4]!,
  ]);
  for (const [act, loss, dt0] of PID_CASES) {
    it(`accepts and rejects the same steps as the reference and ends in the same state (${act}, ${loss}, dt0 ${dt0})`, async () => {
      const p = problem(21, act, loss);
      const model = gpuModel(rt(), p.ref);
      const opts = { rtol: 1e-3, atol: 1e-3 };
      const ref = solveHeunPid(p.ref, p.acts0, p.y, p.x, { maxT1: 20, dt0, loss, ...opts, timeDtype: 'float32' });
      const { stats, trace, final } = await tracedPidSolve(model, p.acts0, p.x, p.y, loss, {
        solver: 'heun',
        stepsizeController: { pid: opts },
        maxT1: 20,
        dt: dt0,
      });
      expect(ref.rejected, 'the case exercises rejections').toBeGreaterThan(dt0 > 1 ? 0 : -1);
      expect(trace.map((s) => s.lastAccepted)).toEqual(ref.history.map((h) => h.accepted));
      trace.forEach((s, k) => {
        const h = ref.history[k]!;
        // The error estimate h(k1 − k2)/2 subtracts nearly equal stages, so float32 gives it only ~2 digits late
        // in a solve; the accept/reject decisions it drives are compared exactly above.
        expect(Math.abs(s.scaledError / h.scaledError - 1), `scaled error of step ${k}`).toBeLessThan(1e-2);
        expect(s.tprev, `t after step ${k}`).toBeCloseTo(h.accepted ? h.tnext : h.tprev, 4);
        if (k + 1 < ref.history.length)
          expect(s.tnext, `end of step ${k + 1}`).toBeCloseTo(ref.history[k + 1]!.tnext, 4);
      });
      expect(stats.accepted).toBe(ref.accepted);
      expect(stats.rejected).toBe(ref.rejected);
      expect(stats.t).toBe(Math.fround(20));
      expectClose(final, flat(ref.activities), 1e-4, 'final activities');
      model.dispose();
    });
  }

  it("chooses the first step with Hairer's algorithm when dt is not given", async () => {
    const p = problem(5, 'tanh', 'mse');
    const model = gpuModel(rt(), p.ref);
    const opts = { rtol: 1e-3, atol: 1e-3 };
    const h = hairerInitialStep(pcVectorField(p.ref, p.y, p.x, 'mse'), p.acts0, opts);
    const ref = solveHeunPid(p.ref, p.acts0, p.y, p.x, { maxT1: 5, loss: 'mse', ...opts, timeDtype: 'float32' });
    expect(ref.dt0).toBeCloseTo(Math.fround(h), 6);
    const { stats, trace, final } = await tracedPidSolve(model, p.acts0, p.x, p.y, 'mse', {
      solver: 'heun',
      stepsizeController: { pid: opts },
      maxT1: 5,
    });
    // The first attempted step is [0, dt0].
    const first = trace[0]!;
    expect(first.lastAccepted).toBe(ref.history[0]!.accepted);
    expect((first.lastAccepted ? first.tprev : ref.history[0]!.tnext) / ref.dt0).toBeCloseTo(1, 4);
    expect(stats.accepted).toBe(ref.accepted);
    expect(stats.rejected).toBe(ref.rejected);
    expectClose(final, flat(ref.activities), 1e-4, 'final activities');
    model.dispose();
  });

  it('fails with a clear error when maxSteps is too small, counting rejected steps', async () => {
    const p = problem(8, 'tanh', 'mse');
    const model = gpuModel(rt(), p.ref);
    const acts = p.acts0.map((a) => tensorOf(rt(), a));
    const ref = solveHeunPid(p.ref, p.acts0, p.y, p.x, {
      maxT1: 20,
      dt0: 0.01,
      loss: 'mse',
      rtol: 1e-3,
      atol: 1e-3,
      timeDtype: 'float32',
    });
    const needed = ref.accepted + ref.rejected;
    const run = (maxSteps: number) =>
      solveInference(model, acts, tensorOf(rt(), p.y), {
        input: tensorOf(rt(), p.x),
        dt: 0.01,
        maxSteps,
        pollEvery: 3,
      });
    await expect(run(needed - 1)).rejects.toThrow(/maxSteps \(\d+\) steps were taken without reaching maxT1 = 20/);
    const ok = await run(needed);
    expect(ok.steps.accepted + ok.steps.rejected).toBe(needed);
    model.dispose();
  });

  it('polls at most every pollEvery steps and gives the same answer for any pollEvery', async () => {
    const p = problem(9, 'tanh', 'mse');
    const model = gpuModel(rt(), p.ref);
    const input = tensorOf(rt(), p.x);
    const output = tensorOf(rt(), p.y);
    const acts = await initActivitiesWithFfwd(model, input);
    const results: Float32Array[] = [];
    for (const pollEvery of [1, 4, 64]) {
      const before = rt().stats.readbacks;
      const res = await solveInference(model, acts, output, { input, dt: 0.05, pollEvery });
      const polls = rt().stats.readbacks - before;
      const steps = res.steps.accepted + res.steps.rejected;
      expect(polls, `pollEvery ${pollEvery}`).toBeLessThanOrEqual(Math.ceil(steps / pollEvery) + 1);
      results.push(await readAll(res.activities));
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
    model.dispose();
  });

  it("submits the first chunk's first steps early (after steps 4 and 12 of 16) and later chunks whole", async () => {
    const p = problem(9, 'tanh', 'mse');
    const model = gpuModel(rt(), p.ref); // a fresh workspace: the first chunk is pollEvery steps
    const input = tensorOf(rt(), p.x);
    const acts = await initActivitiesWithFfwd(model, input);
    const events: string[] = [];
    const submit = Recorder.prototype.submit;
    const readLater = rt().readLater;
    Recorder.prototype.submit = function (this: Recorder) {
      events.push('submit');
      submit.call(this);
    };
    rt().readLater = function (this: ReturnType<typeof rt>, ...args: Parameters<typeof readLater>) {
      events.push('poll');
      return readLater.apply(this, args);
    };
    try {
      const res = await solveInference(model, acts, tensorOf(rt(), p.y), { input, dt: 0.01, pollEvery: 16 });
      expect(res.encodedSteps).toBeGreaterThan(16);
    } finally {
      Recorder.prototype.submit = submit;
      rt().readLater = readLater;
    }
    const chunks = events
      .join(' ')
      .split('poll')
      .map((c) => c.trim().split(' ').filter(Boolean).length);
    expect(chunks[0], 'submits up to the first poll').toBe(3);
    expect(
      chunks.slice(1, -1).every((n) => n === 1),
      `later chunks: ${events.join(' ')}`,
    ).toBe(true);
    model.dispose();
  });
});

describe('non-finite states', () => {
  it('a solve whose state overflows fails with a message saying so', async () => {
    const { mlpFromWeights } = await import('../../src/pc/model.js');
    const model = mlpFromWeights(rt(), {
      dims: [2, 3, 2],
      weights: [new Float32Array(6).fill(1e30), new Float32Array(6).fill(1e30)],
      actFn: 'linear',
    });
    const x = rt().tensor([1e10, 1e10], [1, 2]);
    const y = rt().tensor([0, 0], [1, 2]);
    const acts = [rt().tensor([0, 0, 0], [1, 3]), rt().tensor([0, 0], [1, 2])];
    await expect(solveInference(model, acts, y, { input: x, dt: 0.1, maxSteps: 20 })).rejects.toThrow(
      /became non-finite \(NaN or infinity\) during inference/,
    );
    await expect(solveInference(model, acts, y, { input: x, maxSteps: 20 })).rejects.toThrow(
      /not finite at the start of inference/,
    );
    model.dispose();
  });
});
