// Inference beyond integrating to maxT1: diffrax's steady-state event, discrete inference with optimisers,
// recording along the solve, and JPC's norms and training-batch accuracy — each against the float64 reference.
import { describe, expect, it } from 'vitest';
import { rowTable } from '../../src/kernels/output.js';
import type { Tensor } from '../../src/runtime/tensor.js';
import {
  computeAccuracy,
  ffwd,
  flattenParams,
  jpcRecordLayersOrder,
  layerEnergies,
  optimInit,
  paramGrads,
  pcVectorField,
  rkStep,
  rmsNorm,
  sgdInit,
  sgdUpdate,
  solveEuler,
  solveHeunPid,
  unflattenParams,
  updatePcActivities as refUpdateActivities,
  type Loss,
  type Mat,
  type Optimiser,
} from '../reference/jpc64.js';
import { adam, sgd } from '../../src/pc/optim.js';
import { solveInference } from '../../src/pc/infer.js';
import { makePcStep } from '../../src/pc/train.js';
import { computeActivityNorms, computeParamNorms } from '../../src/pc/metrics.js';
import { computePcParamGrads } from '../../src/pc/energy.js';
import { TABLEAUX } from '../../src/pc/tableaux.js';
import { Random } from '../../src/util/random.js';
import {
  expectClose,
  f32,
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

function problem(seed: number, B = 1, loss: Loss = 'mse', act: 'tanh' | 'relu' = 'tanh') {
  const rng = new Random(seed);
  const dims = [5, 8, 6, 3];
  const ref = randomRefModel(seed, dims, act, true);
  const x = randomMat(rng, B, dims[0]!);
  const y = loss === 'ce' ? oneHotMat(rng, B, dims.at(-1)!) : randomMat(rng, B, dims.at(-1)!);
  const acts0 = ffwd(ref, x).map((m) => ({
    ...m,
    data: Float64Array.from(m.data, (v) => Math.fround(v + 0.5 * rng.normal())),
  }));
  return { ref, x, y, acts0, rng };
}

/** diffrax's steady-state test at a state: rms(f(y)) < atol + rtol·rms(y) over every activity. */
function steady(p: ReturnType<typeof problem>, y: Mat[], rtol: number, atol: number): boolean {
  return rmsNorm(pcVectorField(p.ref, p.y, p.x, 'mse')(y)) < atol + rtol * rmsNorm(y);
}

describe('the steady-state event', () => {
  for (const solver of ['heun', 'tsit5'] as const) {
    it(`${solver} + PID stops at the first accepted state where rms(dz/dt) < atol + rtol·rms(z), as diffrax`, async () => {
      const p = problem(3);
      const tol = { rtol: 1e-3, atol: 1e-3 };
      const tab = TABLEAUX[solver];
      const ref = solveHeunPid(p.ref, p.acts0, p.y, p.x, {
        maxT1: 500,
        dt0: 0.1,
        loss: 'mse',
        ...tol,
        step: rkStep(tab),
        errorOrder: tab.order,
        timeDtype: 'float32',
        recordStates: true,
      });
      // diffrax checks the initial state and every accepted one.
      const states = [p.acts0, ...ref.states!];
      const first = states.findIndex((s) => steady(p, s, tol.rtol, tol.atol));
      expect(first, 'the network reaches a steady state well before t = 500').toBeGreaterThan(0);
      const acceptedEnds = ref.history.filter((h) => h.accepted).map((h) => h.tnext);
      const model = gpuModel(rt(), p.ref);
      const acts = p.acts0.map((a) => tensorOf(rt(), a));
      const r = await solveInference(model, acts, tensorOf(rt(), p.y), {
        input: tensorOf(rt(), p.x),
        solver,
        dt: 0.1,
        maxT1: 500,
        steadyState: true,
      });
      expect(r.steadyState).toBe(true);
      expect(r.steps.accepted).toBe(first);
      expect(Math.abs(r.t - acceptedEnds[first - 1]!)).toBeLessThan(2e-3 * acceptedEnds[first - 1]!);
      // Heun's float32 step sizes track float64's closely; a fifth-order method's embedded estimate is mostly
      // cancellation in float32, so its step ends drift ~1e-3 relative and the state moves accordingly.
      expectClose(
        await readAll(r.activities),
        flat(states[first]!),
        solver === 'heun' ? 1e-4 : 1e-3,
        'activities at the steady state',
      );
      // Without the event the same solve runs to maxT1 (JPC's behaviour).
      const full = await solveInference(model, acts, tensorOf(rt(), p.y), {
        input: tensorOf(rt(), p.x),
        solver,
        dt: 0.1,
        maxT1: 500,
      });
      expect(full.steadyState).toBe(false);
      expect(full.t).toBe(500);
      model.dispose();
    });
  }

  it('works with a constant step size (tolerances given), and stops at t = 0 on a state already steady', async () => {
    const p = problem(4);
    const model = gpuModel(rt(), p.ref);
    const [input, output] = [tensorOf(rt(), p.x), tensorOf(rt(), p.y)];
    const ref = solveEuler(p.ref, p.acts0, p.y, p.x, {
      maxT1: 200,
      dt: 0.5,
      loss: 'mse',
      timeDtype: 'float32',
      recordStates: true,
    });
    const states = [p.acts0, ...ref.states!];
    const first = states.findIndex((s) => steady(p, s, 1e-3, 1e-3));
    expect(first).toBeGreaterThan(0);
    const r = await solveInference(
      model,
      p.acts0.map((a) => tensorOf(rt(), a)),
      output,
      {
        input,
        solver: 'euler',
        stepsizeController: 'constant',
        dt: 0.5,
        maxT1: 200,
        steadyState: { rtol: 1e-3, atol: 1e-3 },
      },
    );
    expect(r.steadyState).toBe(true);
    expect(r.steps.accepted).toBe(first);
    expect(r.t).toBeCloseTo(0.5 * first, 3);
    expectClose(await readAll(r.activities), flat(states[first]!), 1e-4, 'Euler activities at the steady state');
    // Starting from that steady state, the solve ends at once.
    const again = await solveInference(model, r.activities, output, {
      input,
      solver: 'euler',
      stepsizeController: 'constant',
      dt: 0.5,
      maxT1: 200,
      steadyState: { rtol: 1e-3, atol: 1e-3 },
    });
    expect(again.steadyState).toBe(true);
    expect(again.t).toBe(0);
    expect(again.steps.accepted).toBe(0);
    await expect(
      solveInference(model, r.activities, output, {
        input,
        solver: 'euler',
        stepsizeController: 'constant',
        dt: 0.5,
        steadyState: true,
      }),
    ).rejects.toThrow(/steadyState.rtol must be given with a constant step size/);
    model.dispose();
  });
});

describe('discrete inference (optimiser steps on the activities)', () => {
  const cases: [string, () => ReturnType<typeof sgd>, Optimiser][] = [
    ['sgd', () => sgd({ lr: 0.5 }), { kind: 'sgd', lr: 0.5 }],
    [
      'momentum',
      () => sgd({ lr: 0.2, momentum: 0.5, nesterov: true }),
      { kind: 'sgd', lr: 0.2, momentum: 0.5, nesterov: true },
    ],
    ['adam', () => adam({ lr: 0.05 }), { kind: 'adam', lr: 0.05 }],
  ];
  for (const [name, gpu, refOpt] of cases) {
    it(`${name}: T fused steps match T reference updates, with no readback`, async () => {
      const p = problem(12, 4, 'ce');
      const model = gpuModel(rt(), p.ref);
      let acts: Mat[] = p.acts0;
      let state = optimInit(refOpt, flat(acts).length);
      for (let n = 0; n < 5; n++) {
        const r = refUpdateActivities(p.ref, acts, p.y, p.x, 'ce', refOpt, state);
        acts = r.activities;
        state = r.state;
      }
      const before = rt().stats.readbacks;
      const r = await solveInference(
        model,
        p.acts0.map((a) => tensorOf(rt(), a)),
        tensorOf(rt(), p.y),
        { input: tensorOf(rt(), p.x), loss: 'ce', solver: gpu(), steps: 5 },
      );
      expect(rt().stats.readbacks).toBe(before);
      expect(r.steps.accepted).toBe(5);
      expect(r.dispatches, 'errors (+ce softmax) and the fused update per step').toBe(5 * 3);
      expectClose(await readAll(r.activities), flat(acts), 1e-4, `${name} activities after 5 steps`);
      model.dispose();
    });
  }

  it("drives makePcStep like JPC's notebooks (T = L steps of SGD)", async () => {
    const p = problem(15, 6);
    const model = gpuModel(rt(), p.ref);
    const optim = sgd({ lr: 0.1 });
    const L = p.ref.weights.length;
    let acts = ffwd(p.ref, p.x);
    let state = optimInit({ kind: 'sgd', lr: 0.5 * 6 }, flat(acts).length);
    for (let n = 0; n < L; n++) {
      const r = refUpdateActivities(p.ref, acts, p.y, p.x, 'mse', { kind: 'sgd', lr: 0.5 * 6 }, state);
      acts = r.activities;
      state = r.state;
    }
    const expected = sgdUpdate(
      flattenParams(p.ref),
      flattenParams(paramGrads(p.ref, acts, p.y, p.x, 'mse')),
      sgdInit(1, { lr: 0.1 }),
      { lr: 0.1 },
    ).params;
    await makePcStep(model, optim, optim.init(model), f32(p.y), {
      input: f32(p.x),
      solver: sgd({ lr: 0.5 * 6 }),
      steps: L,
    });
    const { weights, biases } = await model.toArrays();
    expectClose(Float64Array.from(weights.flatMap((w, l) => [...w, ...biases[l]!])), expected, 1e-4, 'parameters');
    model.dispose();
  });
});

describe('recording along the solve', () => {
  it('recordIters with Heun + PID: the energies (and activities) of the initial and every accepted state', async () => {
    const p = problem(21, 3);
    const model = gpuModel(rt(), p.ref);
    const opts = { rtol: 1e-3, atol: 1e-3 };
    const ref = solveHeunPid(p.ref, p.acts0, p.y, p.x, {
      maxT1: 20,
      dt0: 0.5,
      loss: 'mse',
      ...opts,
      timeDtype: 'float32',
      recordStates: true,
    });
    const states = [p.acts0, ...ref.states!];
    const r = await solveInference(
      model,
      p.acts0.map((a) => tensorOf(rt(), a)),
      tensorOf(rt(), p.y),
      { input: tensorOf(rt(), p.x), dt: 0.5, recordIters: true, recordActivities: true },
    );
    const rec = r.recording!;
    expect(rec.tMax).toBe(ref.accepted);
    expect(rec.overflow).toBe(false);
    expect(rec.energies.shape).toEqual([ref.accepted + 1, 3]);
    expectClose(
      await rec.energies.toArray(),
      states.flatMap((s) => jpcRecordLayersOrder(layerEnergies(p.ref, s, p.y, p.x, 'mse'))),
      1e-4,
      'recorded energies',
    );
    // Activities: [R, B, d_l] per layer.
    const perLayer = await Promise.all(rec.activities!.map((t) => t.toArray()));
    states.forEach((s, k) => {
      s.forEach((m, l) =>
        expectClose(
          perLayer[l]!.subarray(k * m.data.length, (k + 1) * m.data.length),
          m.data,
          1e-4,
          `state ${k}, layer ${l}`,
        ),
      );
    });
    model.dispose();
  });

  it('recordIters with an FSAL tableau (dopri5) and with discrete inference', async () => {
    const p = problem(22, 2);
    const model = gpuModel(rt(), p.ref);
    const tab = TABLEAUX.dopri5;
    const ref = solveHeunPid(p.ref, p.acts0, p.y, p.x, {
      maxT1: 20,
      dt0: 0.5,
      loss: 'mse',
      rtol: 1e-3,
      atol: 1e-3,
      step: rkStep(tab),
      errorOrder: tab.order,
      timeDtype: 'float32',
      recordStates: true,
    });
    const r = await solveInference(
      model,
      p.acts0.map((a) => tensorOf(rt(), a)),
      tensorOf(rt(), p.y),
      { input: tensorOf(rt(), p.x), solver: 'dopri5', dt: 0.5, recordIters: true },
    );
    expect(r.recording!.tMax).toBe(ref.accepted);
    expectClose(
      await r.recording!.energies.toArray(),
      [p.acts0, ...ref.states!].flatMap((s) => jpcRecordLayersOrder(layerEnergies(p.ref, s, p.y, p.x, 'mse'))),
      1e-4,
      'dopri5 recorded energies',
    );

    let acts: Mat[] = p.acts0;
    const rows = [jpcRecordLayersOrder(layerEnergies(p.ref, acts, p.y, p.x, 'mse'))];
    let state = optimInit({ kind: 'sgd', lr: 1 }, flat(acts).length);
    for (let n = 0; n < 4; n++) {
      const u = refUpdateActivities(p.ref, acts, p.y, p.x, 'mse', { kind: 'sgd', lr: 1 }, state);
      acts = u.activities;
      state = u.state;
      rows.push(jpcRecordLayersOrder(layerEnergies(p.ref, acts, p.y, p.x, 'mse')));
    }
    const d = await solveInference(
      model,
      p.acts0.map((a) => tensorOf(rt(), a)),
      tensorOf(rt(), p.y),
      { input: tensorOf(rt(), p.x), solver: sgd({ lr: 1 }), steps: 4, recordIters: true },
    );
    expectClose(await d.recording!.energies.toArray(), rows.flat(), 1e-4, 'discrete recorded energies');
    model.dispose();
  });

  it('recordEvery with a constant step records t = 0, Δ, 2Δ, … and the final state; maxRecords bounds it', async () => {
    const p = problem(23, 2);
    const model = gpuModel(rt(), p.ref);
    const ref = solveEuler(p.ref, p.acts0, p.y, p.x, {
      maxT1: 3,
      dt: 0.1,
      loss: 'mse',
      timeDtype: 'float32',
      recordStates: true,
    });
    const states = [p.acts0, ...ref.states!];
    const picked = [0, 5, 10, 15, 20, 25, 30].map((k) => states[k]!);
    const opts = {
      input: tensorOf(rt(), p.x),
      solver: 'euler' as const,
      stepsizeController: 'constant' as const,
      dt: 0.1,
      maxT1: 3,
      recordEvery: 0.5,
    };
    const acts = p.acts0.map((a) => tensorOf(rt(), a));
    const before = rt().stats.readbacks;
    const r = await solveInference(model, acts, tensorOf(rt(), p.y), opts);
    expect(rt().stats.readbacks, 'recording adds no readback').toBe(before);
    expectClose(
      await r.recording!.energies.toArray(),
      picked.flatMap((s) => jpcRecordLayersOrder(layerEnergies(p.ref, s, p.y, p.x, 'mse'))),
      1e-4,
      'energies every 0.5',
    );
    const capped = await solveInference(model, acts, tensorOf(rt(), p.y), { ...opts, maxRecords: 3 });
    expect(capped.recording!.overflow).toBe(true);
    expect(capped.recording!.energies.shape).toEqual([3, 3]);
    await expect(solveInference(model, acts, tensorOf(rt(), p.y), { ...opts, recordEvery: 0.25 })).rejects.toThrow(
      /recordEvery must be a multiple of options.dt/,
    );
    await expect(
      solveInference(model, acts, tensorOf(rt(), p.y), { input: opts.input, recordEvery: 0.5 }),
    ).rejects.toThrow(/recordEvery needs a constant step size/);
    model.dispose();
  });
});

describe("JPC's metrics", () => {
  it('makePcStep: activity, parameter and gradient norms and the post-update accuracy match the reference', async () => {
    const p = problem(31, 8, 'ce', 'relu');
    const model = gpuModel(rt(), p.ref);
    const optim = sgd({ lr: 0.5 });
    const r = await makePcStep(model, optim, optim.init(model), f32(p.y), {
      input: f32(p.x),
      loss: 'ce',
      solver: 'euler',
      stepsizeController: 'constant',
      dt: 0.5,
      maxT1: 2,
      activityNorms: true,
      paramNorms: true,
      gradNorms: true,
      calculateAccuracy: true,
    });
    const eq = solveEuler(p.ref, ffwd(p.ref, p.x), p.y, p.x, {
      maxT1: 2,
      dt: 0.5,
      loss: 'ce',
      timeDtype: 'float32',
    }).activities;
    const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));
    const pairs = (w: Mat[], b: (Float64Array | null)[]) => w.flatMap((m, l) => [norm(m.data), b[l] ? norm(b[l]!) : 0]);
    const meanRowNorm = (m: Mat) =>
      Array.from({ length: m.rows }, (_, i) => norm(m.data.subarray(i * m.cols, (i + 1) * m.cols))).reduce(
        (a, b) => a + b,
        0,
      ) / m.rows;
    expectClose(await r.activityNorms!.toArray(), eq.map(meanRowNorm), 1e-4, 'activity norms at equilibrium');
    expectClose(
      await r.paramNorms!.toArray(),
      pairs(p.ref.weights, p.ref.biases),
      1e-4,
      'parameter norms before the update',
    );
    const g = paramGrads(p.ref, eq, p.y, p.x, 'ce');
    expectClose(await r.gradNorms!.toArray(), pairs(g.weights, g.biases), 1e-4, 'gradient norms');
    const updated = unflattenParams(
      sgdUpdate(flattenParams(p.ref), flattenParams(g), sgdInit(1, { lr: 0.5 }), { lr: 0.5 }).params,
      p.ref,
    );
    expect(await r.acc!.item()).toBeCloseTo(computeAccuracy(p.y, ffwd(updated, p.x).at(-1)!), 3);
    model.dispose();
  });

  it('computeActivityNorms and computeParamNorms (of a model and of gradients)', async () => {
    const p = problem(32, 5);
    const model = gpuModel(rt(), p.ref);
    const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));
    const acts = p.acts0.map((a) => tensorOf(rt(), a));
    const rowMean = (m: Mat) =>
      Array.from({ length: m.rows }, (_, i) => norm(m.data.subarray(i * m.cols, (i + 1) * m.cols))).reduce(
        (a, b) => a + b,
        0,
      ) / m.rows;
    expectClose(await (await computeActivityNorms(acts)).toArray(), p.acts0.map(rowMean), 1e-4, 'activity norms');
    expectClose(
      await (await computeParamNorms(model)).toArray(),
      p.ref.weights.flatMap((w, l) => [norm(w.data), norm(p.ref.biases[l]!)]),
      1e-4,
      'parameter norms',
    );
    const grads = await computePcParamGrads(model, acts, tensorOf(rt(), p.y), { input: tensorOf(rt(), p.x) });
    const g = paramGrads(p.ref, p.acts0, p.y, p.x, 'mse');
    expectClose(
      await (await computeParamNorms(grads)).toArray(),
      g.weights.flatMap((w, l) => [norm(w.data), norm(g.biases[l]!)]),
      1e-4,
      'gradient norms',
    );
    model.dispose();
  });

  it('computeActivityNorms: one row-norms dispatch over activities of different row counts (several workgroups each)', async () => {
    // 130 rows take 3 workgroups of 64; every region gets as many, and the shorter ones skip the rows past their end.
    const rng = new Random(41);
    const mats = [randomMat(rng, 130, 3), randomMat(rng, 5, 7), randomMat(rng, 64, 1), randomMat(rng, 65, 300)];
    const rowMean = (m: Mat) => {
      let s = 0;
      for (let i = 0; i < m.rows; i++) {
        let q = 0;
        for (let j = 0; j < m.cols; j++) q += m.data[i * m.cols + j]! ** 2;
        s += Math.sqrt(q);
      }
      return s / m.rows;
    };
    const acts = mats.map((m) => tensorOf(rt(), m));
    let norms: Tensor | undefined;
    const dispatches = await recordedDispatches(async () => {
      norms = await computeActivityNorms(acts);
    });
    expectClose(await norms!.toArray(), mats.map(rowMean), 1e-5, 'activity norms');
    expect(dispatches.filter((d) => d.kernel === 'output.row_norms')).toEqual([
      { kernel: 'output.row_norms', workgroups: 3 * mats.length },
    ]);
  });

  it('rowTable: every region gets the workgroups of the longest, and every record says how many and how many regions', () => {
    const t = rowTable([
      { rows: 130, cols: 3, predOff: 0, partOff: 900 },
      { rows: 1, cols: 2, predOff: 390, partOff: 1420 },
    ]);
    expect(t.workgroups).toBe(6);
    expect(Array.from(t.data)).toEqual([130, 3, 0, 0, 900, 0, 3, 2, 1, 2, 390, 0, 1420, 0, 3, 2]);
    expect(() => rowTable([])).toThrow(/no regions/);
  });
});
