// The explicit Runge–Kutta family: each tableau's order conditions, its measured order of convergence on a
// linear ODE with a known solution, GPU trajectories against the float64 reference with the same tableau, and
// PID-controlled solves (accept/reject sequence, step sizes, final state) for every adaptive tableau.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ffwd,
  hairerInitialStep,
  integrateConstant,
  mat,
  pcVectorField,
  rkStep,
  solveHeunPid,
  type Mat,
  type VectorField,
} from '../reference/jpc64.js';
import { SOLVER_NAMES, TABLEAUX, type SolverName } from '../../src/pc/tableaux.js';
import { solveInference } from '../../src/pc/infer.js';
import { init, initActivitiesWithFfwd, makeMlp, type Runtime } from '../../src/node.js';
import { Workspace } from '../../src/pc/workspace.js';
import { Recorder } from '../../src/runtime/recorder.js';
import { writeSolverConfig } from '../../src/pc/solve/config.js';
import type { SolverStateView } from '../../src/pc/solve/controlled.js';
import { workspaceNeeds } from '../../src/pc/solve/fits.js';
import { FUSED_MAX_WORK, FUSED_MAX_WORK_ONE_ROW, fusedSolvePays } from '../../src/pc/solve/fused.js';
import { integrate } from '../../src/pc/solve/integrate.js';
import { resolveSolverOptions } from '../../src/pc/solve/options.js';
import { loadActivities, loadBatch } from '../../src/pc/batch.js';
import { Random } from '../../src/util/random.js';
import {
  expectClose,
  flat,
  gpuModel,
  oneHotMat,
  randomMat,
  randomRefModel,
  readAll,
  recordedDispatches,
  tensorOf,
  useRuntime,
} from '../support/helpers.js';

const rt = useRuntime();
const ADAPTIVE = SOLVER_NAMES.filter((s) => TABLEAUX[s].e !== null);

describe('tableaux', () => {
  // Butcher's order conditions up to order 4 (c_i = Σ_j a_ij).
  const conditions = (name: SolverName) => {
    const t = TABLEAUX[name];
    const s = t.stages;
    const a = (i: number, j: number) => (i === 0 ? 0 : (t.a[i - 1]![j] ?? 0));
    const c = Array.from({ length: s }, (_, i) => (i === 0 ? 0 : t.a[i - 1]!.reduce((x, y) => x + y, 0)));
    const sum = (f: (i: number) => number) => Array.from({ length: s }, (_, i) => f(i)).reduce((x, y) => x + y, 0);
    const ac = (i: number) => sum((j) => a(i, j) * c[j]!);
    const list: [string, number, number, number][] = [['Σb', 1, sum((i) => t.b[i]!), 1]];
    if (t.order >= 2) list.push(['Σbc', 2, sum((i) => t.b[i]! * c[i]!), 1 / 2]);
    if (t.order >= 3)
      list.push(['Σbc²', 3, sum((i) => t.b[i]! * c[i]! ** 2), 1 / 3], ['Σbac', 3, sum((i) => t.b[i]! * ac(i)), 1 / 6]);
    if (t.order >= 4) {
      list.push(
        ['Σbc³', 4, sum((i) => t.b[i]! * c[i]! ** 3), 1 / 4],
        ['Σbcac', 4, sum((i) => t.b[i]! * c[i]! * ac(i)), 1 / 8],
        ['Σbac²', 4, sum((i) => t.b[i]! * sum((j) => a(i, j) * c[j]! ** 2)), 1 / 12],
        ['Σbaac', 4, sum((i) => t.b[i]! * sum((j) => a(i, j) * ac(j))), 1 / 24],
      );
    }
    return { t, c, list };
  };

  for (const name of SOLVER_NAMES) {
    it(`${name}: order conditions, consistent c, FSAL structure and a zero-sum error estimate`, () => {
      const { t, c, list } = conditions(name);
      for (const [what, , got, want] of list) expect(got, `${name} ${what}`).toBeCloseTo(want, 12);
      t.c.forEach((ci, i) => expect(c[i + 1], `${name} c_${i + 2}`).toBeCloseTo(ci, 12));
      if (t.e)
        expect(
          t.e.reduce((x, y) => x + y, 0),
          `${name} Σe`,
        ).toBeCloseTo(0, 12);
      if (t.fsal) {
        expect(t.b.at(-1)).toBe(0);
        expect([...t.a.at(-1)!]).toEqual(t.b.slice(0, -1));
      }
    });
  }

  // Two problems with known solutions: the linear y' = A y, A = [[-1, 2], [-2, -1]], y(0) = (1, 0), solved by
  // y(t) = e^{-t} (cos 2t, -sin 2t); and the nonlinear logistic y' = y(1 − y), y(0) = 0.1, solved by
  // 1/(1 + 9e^{-t}). Linear problems only test some order conditions (methods can look better there), so the
  // order is pinned down on the logistic equation and checked as a lower bound on the linear one.
  const spiral: VectorField = (y) => {
    const [u, v] = [y[0]!.data[0]!, y[0]!.data[1]!];
    return [mat(1, 2, [-u + 2 * v, -2 * u - v])];
  };
  const logistic: VectorField = (y) => [mat(1, 1, [y[0]!.data[0]! * (1 - y[0]!.data[0]!)])];
  const problems = {
    linear: {
      f: spiral,
      y0: [1, 0],
      T: 2,
      exact: (t: number) => [Math.exp(-t) * Math.cos(2 * t), -Math.exp(-t) * Math.sin(2 * t)],
    },
    logistic: { f: logistic, y0: [0.1], T: 4, exact: (t: number) => [1 / (1 + 9 * Math.exp(-t))] },
  };
  const errorWith = (name: SolverName, problem: keyof typeof problems, n: number) => {
    const { f, y0, T, exact } = problems[problem];
    const r = integrateConstant(f, [mat(1, y0.length, y0)], {
      t1: T,
      dt0: T / n,
      method: 'euler',
      step: rkStep(TABLEAUX[name]),
    });
    const e = exact(T);
    return Math.hypot(...e.map((v, i) => r.y[0]!.data[i]! - v));
  };
  for (const name of SOLVER_NAMES) {
    it(`${name}: measured order of convergence is ${TABLEAUX[name].order} (logistic equation; at least that on a linear ODE)`, () => {
      const p = TABLEAUX[name].order;
      // Step counts where the error is far above float64 round-off and in the asymptotic regime.
      const n = p >= 8 ? 8 : p >= 5 ? 64 : p >= 3 ? 40 : 200;
      const onLogistic = Math.log2(errorWith(name, 'logistic', n) / errorWith(name, 'logistic', 2 * n));
      expect(onLogistic, `${name}, logistic`).toBeGreaterThan(p - 0.3);
      expect(onLogistic, `${name}, logistic`).toBeLessThan(p + 0.6);
      const onLinear = Math.log2(errorWith(name, 'linear', n) / errorWith(name, 'linear', 2 * n));
      expect(onLinear, `${name}, linear`).toBeGreaterThan(p - 0.3);
    });
  }
});

function problem(seed: number, act: 'tanh' | 'linear' | 'gelu', B = 3, dims = [5, 7, 6, 3]) {
  const rng = new Random(seed);
  const ref = randomRefModel(seed, dims, act, true);
  const x = randomMat(rng, B, dims[0]!);
  const y = randomMat(rng, B, dims.at(-1)!);
  const acts0 = ffwd(ref, x).map((m) => ({
    ...m,
    data: Float64Array.from(m.data, (v) => Math.fround(v + 0.5 * rng.normal())),
  }));
  return { ref, x, y, acts0 };
}

describe('every solver on the GPU against the float64 reference', () => {
  let perStage: Runtime;
  beforeAll(async () => {
    perStage = await init({ kernels: { fused: 'never' } });
  });
  afterAll(() => perStage.dispose());

  for (const name of SOLVER_NAMES) {
    it(`${name} with a constant step: the per-stage kernels and the fused single-workgroup solve`, async () => {
      const p = problem(31, 'tanh');
      const ref = integrateConstant(pcVectorField(p.ref, p.y, p.x, 'mse'), p.acts0, {
        t1: 2,
        dt0: 0.25,
        method: 'euler',
        step: rkStep(TABLEAUX[name]),
        timeDtype: 'float32',
      });
      const s = TABLEAUX[name].stages;
      // This network is small enough that the default runtime fuses the whole solve into one dispatch.
      for (const [path, runtime, dispatchesPerStep] of [
        ['per-stage', perStage, 2 * (TABLEAUX[name].fsal ? s - 1 : s)],
        ['fused', rt(), 1 / 8],
      ] as const) {
        const model = gpuModel(runtime, p.ref);
        const [input, output] = [tensorOf(runtime, p.x), tensorOf(runtime, p.y)];
        const acts = p.acts0.map((a) => tensorOf(runtime, a));
        const readsBefore = runtime.stats.readbacks;
        const r = await solveInference(model, acts, output, {
          input,
          solver: name,
          stepsizeController: 'constant',
          maxT1: 2,
          dt: 0.25,
        });
        expect(runtime.stats.readbacks, `${path}: a constant-step solve reads nothing back`).toBe(readsBefore);
        expect(r.steps.accepted).toBe(ref.steps);
        expect(r.dispatches / r.encodedSteps, `${path}: dispatches per step`).toBe(dispatchesPerStep);
        expectClose(await readAll(r.activities), flat(ref.y), 1e-4, `${name} (${path}): final activities`);
        model.dispose();
      }
    });
  }

  it("'auto' fuses stages up to FUSED_MAX_WORK, and at batch 1 on a CPU adapter up to FUSED_MAX_WORK_ONE_ROW", async () => {
    expect([fusedSolvePays(FUSED_MAX_WORK, 64, false), fusedSolvePays(FUSED_MAX_WORK + 1, 64, true)]).toEqual([
      true,
      false,
    ]);
    expect([fusedSolvePays(FUSED_MAX_WORK + 1, 1, true), fusedSolvePays(FUSED_MAX_WORK_ONE_ROW, 1, true)]).toEqual([
      true,
      true,
    ]);
    expect([
      fusedSolvePays(FUSED_MAX_WORK_ONE_ROW + 1, 1, true),
      fusedSolvePays(FUSED_MAX_WORK + 1, 1, false),
      fusedSolvePays(FUSED_MAX_WORK + 1, 2, true),
    ]).toEqual([false, false, false]);
    // 3 hidden layers of 96: 38,784 multiply-adds per stage at batch 1, 77,568 at batch 2.
    const model = makeMlp(rt(), { seed: 3, inputDim: 20, width: 96, depth: 4, outputDim: 10, actFn: 'tanh' });
    for (const B of [1, 2]) {
      const x = rt().tensor(
        new Float32Array(B * 20).map((_, i) => Math.sin(i)),
        [B, 20],
      );
      const y = rt().tensor(
        new Float32Array(B * 10).map((_, i) => Math.cos(i)),
        [B, 10],
      );
      const r = await solveInference(model, await initActivitiesWithFfwd(model, x), y, {
        input: x,
        solver: 'euler',
        stepsizeController: 'constant',
        maxT1: 2,
        dt: 0.25,
      });
      const fused = fusedSolvePays(2 * B * (2 * 96 * 96 + 96 * 10), B, rt().adapter.isSoftware);
      expect(fused, `batch ${B}`).toBe(B === 1 && rt().adapter.isSoftware);
      expect(r.dispatches / r.encodedSteps, `batch ${B}: dispatches per step`).toBe(fused ? 1 / 8 : 2);
      for (const t of [x, y, ...r.activities]) t.dispose();
    }
    model.dispose();
  });

  it('the fused solve equals the per-stage kernels bit for bit (cross-entropy, no bias, FSAL and not)', async () => {
    const rng = new Random(71);
    const ref = randomRefModel(71, [4, 9, 5, 3], 'silu', false);
    const x = randomMat(rng, 5, 4);
    const y = oneHotMat(rng, 5, 3);
    const out: Float32Array[] = [];
    for (const runtime of [perStage, rt()]) {
      const model = gpuModel(runtime, ref);
      for (const solver of ['ralston', 'dopri5'] as const) {
        const acts = ffwd(ref, x).map((m) => tensorOf(runtime, m));
        const r = await solveInference(model, acts, tensorOf(runtime, y), {
          input: tensorOf(runtime, x),
          loss: 'ce',
          solver,
          stepsizeController: 'constant',
          maxT1: 3,
          dt: 0.3,
        });
        out.push(await readAll(r.activities));
      }
      model.dispose();
    }
    expect(out[2]).toEqual(out[0]);
    expect(out[3]).toEqual(out[1]);
  });

  it('the GPU solvers converge at their order on a network (float32 allows orders 1 to 3)', async () => {
    // B = 1: no 1/B slowdown, so the dynamics change visibly over T = 4.
    const p = problem(44, 'gelu', 1);
    const model = gpuModel(rt(), p.ref);
    const [input, output] = [tensorOf(rt(), p.x), tensorOf(rt(), p.y)];
    const acts = p.acts0.map((a) => tensorOf(rt(), a));
    const f = pcVectorField(p.ref, p.y, p.x, 'mse');
    const truth = flat(
      integrateConstant(f, p.acts0, { t1: 4, dt0: 0.01, method: 'euler', step: rkStep(TABLEAUX.dopri8) }).y,
    );
    for (const name of ['euler', 'heun', 'midpoint', 'ralston', 'bosh3'] as const) {
      const err = async (dt: number) => {
        const r = await solveInference(model, acts, output, {
          input,
          solver: name,
          stepsizeController: 'constant',
          maxT1: 4,
          dt,
        });
        const got = await readAll(r.activities);
        return Math.sqrt(got.reduce((s, v, i) => s + (v - truth[i]!) ** 2, 0));
      };
      const dt = name === 'euler' ? 0.2 : name === 'bosh3' ? 0.8 : 0.4;
      const measured = Math.log2((await err(dt)) / (await err(dt / 2)));
      const order = TABLEAUX[name].order;
      expect(measured, `${name} on the GPU`).toBeGreaterThan(order - 0.35);
      expect(measured, `${name} on the GPU`).toBeLessThan(order + 0.7);
    }
    model.dispose();
  });
});

/** A PID solve polled after every step, recording the GPU's solver state each time. */
async function tracedSolve(
  model: ReturnType<typeof gpuModel>,
  acts: Mat[],
  x: Mat,
  y: Mat,
  options: Parameters<typeof resolveSolverOptions>[1],
) {
  const cfg = resolveSolverOptions('test', { ...options, pollEvery: 1 });
  const ws = await Workspace.get(model, x.rows, 'train', workspaceNeeds(cfg));
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
  const stats = await integrate(ws, rec, cfg, 'mse', (s) => trace.push(s));
  const [final] = await rt().read([
    { buffer: ws.buffer, byteOffset: ws.activityOffset(1) * 4, byteLength: ws.nAll * 4 },
  ]);
  return { stats, trace, final: final! };
}

describe('the PID controller with every adaptive tableau', () => {
  for (const name of ADAPTIVE) {
    it(`${name}: the same accepted/rejected sequence, step sizes and final state as the reference`, async () => {
      const p = problem(57, 'tanh', 1);
      const model = gpuModel(rt(), p.ref);
      const tab = TABLEAUX[name];
      const opts = { rtol: 1e-4, atol: 1e-4 };
      const ref = solveHeunPid(p.ref, p.acts0, p.y, p.x, {
        maxT1: 10,
        dt0: 1.5,
        loss: 'mse',
        ...opts,
        step: rkStep(tab),
        errorOrder: tab.order,
        timeDtype: 'float32',
      });
      const { stats, trace, final } = await tracedSolve(model, p.acts0, p.x, p.y, {
        solver: name,
        stepsizeController: { pid: opts },
        maxT1: 10,
        dt: 1.5,
      });
      expect(ref.rejected, `${name}: the case exercises rejections`).toBeGreaterThan(0);
      expect(trace.map((s) => s.lastAccepted)).toEqual(ref.history.map((h) => h.accepted));
      // Step ends to 2e-3 relative: the embedded estimate h·Σ e_j k_j (Σ e = 0) is mostly cancellation in float32,
      // so step-size factors differ slightly from float64's; the decisions they lead to are compared exactly above.
      const near = (a: number, b: number, what: string) =>
        expect(Math.abs(a - b), what).toBeLessThanOrEqual(2e-3 * Math.max(1, Math.abs(b)));
      trace.forEach((s, k) => {
        const h = ref.history[k]!;
        near(s.tprev, h.accepted ? h.tnext : h.tprev, `${name}: t after step ${k}`);
        if (k + 1 < ref.history.length) near(s.tnext, ref.history[k + 1]!.tnext, `${name}: end of step ${k + 1}`);
      });
      expect({ accepted: stats.accepted, rejected: stats.rejected }).toEqual({
        accepted: ref.accepted,
        rejected: ref.rejected,
      });
      expectClose(final, flat(ref.activities), 1e-4, `${name}: final activities`);
      model.dispose();
    });
  }
});

/** Names of the activity-gradient kernels that `run` dispatches. */
async function dispatchedKernels(run: () => Promise<unknown>): Promise<string[]> {
  const names = new Set((await recordedDispatches(run)).map((d) => d.kernel));
  return [...names].filter((n) => n.startsWith('layers.activity-grad')).sort();
}

describe('the activity-gradient kernel compiled with only its vec4 epilogue (every width and offset ≡ 0 mod 4)', () => {
  // Widths 4-8-12-10 at batch 4: the hidden layers' jobs are 4-aligned and the output's 4×10 job (no product) is
  // re-shaped to 1×40 (vec4Shaped), so every Runge–Kutta stage runs 'layers.activity-grad.vec4'; the Hairer
  // initial step's records (and unaligned networks) take the general kernel.
  let perStage: Runtime;
  beforeAll(async () => {
    perStage = await init({ kernels: { fused: 'never' } });
  });
  afterAll(() => perStage.dispose());
  const aligned = (seed: number) => problem(seed, 'tanh', 4, [4, 8, 12, 10]);

  for (const name of SOLVER_NAMES) {
    const adaptive = TABLEAUX[name].e !== null;
    it(`${name}: constant steps${adaptive ? ' and a PID solve' : ''} match the float64 reference`, async () => {
      const p = aligned(61);
      const model = gpuModel(perStage, p.ref);
      const [input, output] = [tensorOf(perStage, p.x), tensorOf(perStage, p.y)];
      const acts = p.acts0.map((a) => tensorOf(perStage, a));
      const ref = integrateConstant(pcVectorField(p.ref, p.y, p.x, 'mse'), p.acts0, {
        t1: 2,
        dt0: 0.25,
        method: 'euler',
        step: rkStep(TABLEAUX[name]),
        timeDtype: 'float32',
      });
      let constant: Awaited<ReturnType<typeof solveInference>> | undefined;
      const used = await dispatchedKernels(async () => {
        constant = await solveInference(model, acts, output, {
          input,
          solver: name,
          stepsizeController: 'constant',
          maxT1: 2,
          dt: 0.25,
        });
      });
      expect(used, `${name}: constant steps`).toEqual(['layers.activity-grad.vec4']);
      expect(constant!.steps.accepted).toBe(ref.steps);
      expectClose(await readAll(constant!.activities), flat(ref.y), 1e-4, `${name}: constant steps`);
      if (adaptive) {
        const opts = { rtol: 1e-4, atol: 1e-4 };
        const tab = TABLEAUX[name];
        const pid = solveHeunPid(p.ref, p.acts0, p.y, p.x, {
          maxT1: 6,
          dt0: 1.5,
          loss: 'mse',
          ...opts,
          step: rkStep(tab),
          errorOrder: tab.order,
          timeDtype: 'float32',
        });
        let r: Awaited<ReturnType<typeof solveInference>> | undefined;
        const usedPid = await dispatchedKernels(async () => {
          r = await solveInference(model, acts, output, {
            input,
            solver: name,
            stepsizeController: { pid: opts },
            maxT1: 6,
            dt: 1.5,
          });
        });
        expect(usedPid, `${name}: PID`).toEqual(['layers.activity-grad.vec4.gated']);
        expect(r!.steps, `${name}: PID steps`).toEqual({ accepted: pid.accepted, rejected: pid.rejected });
        expectClose(await readAll(r!.activities), flat(pid.activities), 1e-4, `${name}: PID solve`);
      }
      model.dispose();
    });
  }

  it("Hairer's initial step takes the general kernel, the steps after it the vec4 one; unaligned networks only the general one", async () => {
    const p = aligned(62);
    const model = gpuModel(perStage, p.ref);
    const [input, output] = [tensorOf(perStage, p.x), tensorOf(perStage, p.y)];
    const acts = p.acts0.map((a) => tensorOf(perStage, a));
    const opts = { rtol: 1e-3, atol: 1e-3 };
    const ref = solveHeunPid(p.ref, p.acts0, p.y, p.x, { maxT1: 5, loss: 'mse', ...opts, timeDtype: 'float32' });
    expect(ref.dt0).toBeCloseTo(
      Math.fround(hairerInitialStep(pcVectorField(p.ref, p.y, p.x, 'mse'), p.acts0, opts)),
      6,
    );
    let r: Awaited<ReturnType<typeof solveInference>> | undefined;
    const used = await dispatchedKernels(async () => {
      r = await solveInference(model, acts, output, {
        input,
        solver: 'heun',
        stepsizeController: { pid: opts },
        maxT1: 5,
      });
    });
    expect(used).toEqual(['layers.activity-grad', 'layers.activity-grad.vec4.gated']);
    expect(r!.steps).toEqual({ accepted: ref.accepted, rejected: ref.rejected });
    expectClose(await readAll(r!.activities), flat(ref.activities), 1e-4, 'Hairer + PID solve');
    model.dispose();

    const q = problem(63, 'tanh', 4);
    const unaligned = gpuModel(perStage, q.ref);
    const usedUnaligned = await dispatchedKernels(() =>
      solveInference(
        unaligned,
        q.acts0.map((a) => tensorOf(perStage, a)),
        tensorOf(perStage, q.y),
        { input: tensorOf(perStage, q.x), solver: 'heun', stepsizeController: 'constant', maxT1: 1, dt: 0.25 },
      ),
    );
    expect(usedUnaligned).toEqual(['layers.activity-grad']);
    unaligned.dispose();
  });
});
