/**
 * The option audit (issue 21): combinations of model-level settings (activation, parameterisation, skips, γ,
 * biases) and call options (loss, λ, weight decay, spectral penalty, activity decay, input present or absent,
 * solver kind, recording) that no other test crosses, each against the float64 references (test/reference). The
 * rows of each table are chosen so that every pair of values of any two settings occurs in some row, on tiny
 * networks and few steps.
 */
import { describe, expect, it } from 'vitest';
import {
  adam,
  bpcEnergy,
  computeBpcActivityGrad,
  computeBpcParamGrads,
  computeEpcErrorGrad,
  computeEpcParamGrads,
  computeHpcParamGrads,
  computePcActivityGrad,
  epcActivities,
  epcEnergy,
  hpcEnergy,
  initActivitiesWithAmort,
  initBpcActivities,
  initEpcErrors,
  makeHpcStep,
  testDiscriminativePc,
  testGenerativePc,
  testHpc,
  updateEpcErrors,
  updateEpcParams,
  computePcParamGrads,
  initActivitiesFromNormal,
  initActivitiesWithFfwd,
  makePcStep,
  makeSkipModel,
  mlpFromWeights,
  pcEnergy,
  sgd,
  solveInference,
  updatePcActivities,
  updatePcParams,
  type Model,
  type Optimizer,
  type ParamType,
  type Runtime,
  type SolverName,
} from '../../src/node.js';
import { TABLEAUX } from '../../src/pc/tableaux.js';
import { Random } from '../../src/util/random.js';
import {
  type Act,
  type Loss,
  type Mat,
  type Optimiser,
  computeAccuracy as refAccuracy,
  crossEntropyLoss as refCrossEntropy,
  flattenMats,
  flattenParams,
  integrateConstant,
  jpcRecordLayersOrder,
  mat,
  mseLoss as refMse,
  optimInit,
  optimUpdate,
  rkStep,
  unflattenMats,
} from '../reference/jpc64.js';
import {
  type GenModel,
  type PcOpts,
  bpcActivityGrads,
  bpcLayerEnergies,
  bpcParamGrads,
  epcEnergy as refEpcEnergy,
  epcErrorGrads,
  epcForward,
  epcParamGrads,
  genFfwd,
  hpcLayerEnergies,
  hpcParamGrads,
  initActivitiesWithAmort as refAmort,
  makeSkips,
  paramScalings as refScalings,
  pcActivityGrads,
  pcEnergyTotal,
  pcLayerEnergies,
  pcParamGrads,
} from '../reference/variants64.js';
import { expectClose, flat, randomMat, randomRefModel, readAll, tensorOf, useRuntime } from '../support/helpers.js';

const rt = useRuntime();

/** A model-level setting and the call options of one row. */
interface Row {
  act: Act;
  paramType: ParamType;
  skips: boolean;
  gamma?: number;
  bias: boolean;
  loss: Loss;
  lambda?: number;
  weightDecay?: number;
  spectralPenalty?: number;
  activityDecay?: number;
  supervised: boolean;
  /** A Runge–Kutta method at a constant step, or discrete inference with an optimiser. */
  solver: SolverName | 'sgd' | 'adam';
  recordIters: boolean;
}

const rowName = (r: Row) =>
  [
    r.act,
    r.paramType,
    r.skips ? 'skips' : '',
    r.gamma ? `γ ${r.gamma}` : '',
    r.bias ? 'bias' : 'no bias',
    r.loss,
    r.lambda ? `λ ${r.lambda}` : '',
    r.weightDecay ? `wd ${r.weightDecay}` : '',
    r.spectralPenalty ? `sp ${r.spectralPenalty}` : '',
    r.activityDecay ? `ad ${r.activityDecay}` : '',
    r.supervised ? 'supervised' : 'unsupervised',
    r.solver,
    r.recordIters ? 'recordIters' : '',
  ]
    .filter(Boolean)
    .join(', ');

// Pairwise cover of act × paramType × skips × γ × bias × loss × λ × wd × sp × ad × input × solver × recording.
// Rows without skips, λ, decay and with an input at a constant step are the fused single-dispatch solve's case.
const ROWS: Row[] = [
  {
    act: 'relu',
    paramType: 'sp',
    skips: false,
    gamma: 0.5,
    bias: true,
    loss: 'ce',
    supervised: true,
    solver: 'tsit5',
    recordIters: false,
  },
  {
    act: 'leaky_relu',
    paramType: 'mupc',
    skips: false,
    bias: false,
    loss: 'mse',
    weightDecay: 0.1,
    supervised: true,
    solver: 'midpoint',
    recordIters: false,
  },
  {
    act: 'selu',
    paramType: 'ntp',
    skips: true,
    gamma: 0.5,
    bias: true,
    loss: 'mse',
    lambda: 0.6,
    spectralPenalty: 0.05,
    supervised: false,
    solver: 'heun',
    recordIters: true,
  },
  {
    act: 'hard_tanh',
    paramType: 'ntp',
    skips: false,
    bias: true,
    loss: 'ce',
    lambda: 0.6,
    weightDecay: 0.1,
    spectralPenalty: 0.05,
    activityDecay: 0.2,
    supervised: true,
    solver: 'euler',
    recordIters: true,
  },
  {
    act: 'linear',
    paramType: 'mupc',
    skips: true,
    gamma: 2,
    bias: false,
    loss: 'ce',
    activityDecay: 0.2,
    supervised: false,
    solver: 'sgd',
    recordIters: true,
  },
  {
    act: 'gelu',
    paramType: 'sp',
    skips: true,
    bias: true,
    loss: 'ce',
    lambda: 0.6,
    supervised: true,
    solver: 'adam',
    recordIters: false,
  },
  {
    act: 'silu',
    paramType: 'ntp',
    skips: false,
    gamma: 2,
    bias: false,
    loss: 'mse',
    activityDecay: 0.2,
    supervised: true,
    solver: 'dopri5',
    recordIters: true,
  },
  {
    act: 'tanh',
    paramType: 'mupc',
    skips: false,
    gamma: 0.5,
    bias: true,
    loss: 'ce',
    lambda: 0.6,
    weightDecay: 0.1,
    supervised: false,
    solver: 'ralston',
    recordIters: false,
  },
  {
    act: 'relu',
    paramType: 'ntp',
    skips: true,
    bias: false,
    loss: 'ce',
    weightDecay: 0.1,
    spectralPenalty: 0.05,
    supervised: false,
    solver: 'bosh3',
    recordIters: true,
  },
  {
    act: 'selu',
    paramType: 'sp',
    skips: false,
    bias: false,
    loss: 'mse',
    lambda: 0.6,
    activityDecay: 0.2,
    supervised: false,
    solver: 'dopri8',
    recordIters: false,
  },
  {
    act: 'gelu',
    paramType: 'mupc',
    skips: true,
    gamma: 0.5,
    bias: true,
    loss: 'mse',
    spectralPenalty: 0.05,
    activityDecay: 0.2,
    supervised: true,
    solver: 'euler',
    recordIters: false,
  },
  {
    act: 'leaky_relu',
    paramType: 'sp',
    skips: true,
    gamma: 2,
    bias: true,
    loss: 'mse',
    supervised: true,
    solver: 'heun',
    recordIters: true,
  },
  {
    act: 'silu',
    paramType: 'mupc',
    skips: false,
    bias: true,
    loss: 'mse',
    lambda: 0.6,
    weightDecay: 0.1,
    supervised: false,
    solver: 'sgd',
    recordIters: false,
  },
  {
    act: 'hard_tanh',
    paramType: 'sp',
    skips: true,
    gamma: 2,
    bias: false,
    loss: 'ce',
    weightDecay: 0.1,
    activityDecay: 0.2,
    supervised: true,
    solver: 'adam',
    recordIters: true,
  },
];

const DIMS = [3, 5, 5, 2];
const B = 3;

function refModelOf(r: Row, seed: number): GenModel {
  const base = randomRefModel(seed, DIMS, r.act, r.bias);
  // μPC and NTP shrink the layers by their scalings: give them O(1) weights.
  const k = r.paramType === 'sp' ? 1 : 2.5;
  const weights = base.weights.map((w) =>
    mat(
      w.rows,
      w.cols,
      Float64Array.from(w.data, (v) => Math.fround(k * v)),
    ),
  );
  const scales = refScalings(DIMS, r.paramType, {
    skips: r.skips,
    ...(r.gamma === undefined ? {} : { gamma: r.gamma }),
  }).map(Math.fround);
  return { ...base, weights, scales, ...(r.skips ? { skips: makeSkips(DIMS.length - 1) } : {}) };
}

function gpuModelOf(runtime: Runtime, r: Row, ref: GenModel): Model {
  return mlpFromWeights(runtime, {
    dims: DIMS,
    weights: ref.weights.map((w) => Float32Array.from(w.data)),
    biases: r.bias ? ref.biases.map((b) => Float32Array.from(b!)) : null,
    actFn: r.act,
    paramType: r.paramType,
    skipModel: r.skips ? makeSkipModel(DIMS.length - 1) : null,
    ...(r.gamma === undefined ? {} : { gamma: r.gamma }),
  });
}

const refOpts = (r: Row): PcOpts => ({
  loss: r.loss,
  ...(r.lambda === undefined ? {} : { lambda: r.lambda }),
  ...(r.weightDecay === undefined ? {} : { weightDecay: r.weightDecay }),
  ...(r.spectralPenalty === undefined ? {} : { spectralPenalty: r.spectralPenalty }),
  ...(r.activityDecay === undefined ? {} : { activityDecay: r.activityDecay }),
});

const termOpts = (r: Row) => ({
  loss: r.loss,
  ...(r.lambda === undefined ? {} : { outputEnergyScaling: r.lambda }),
  ...(r.weightDecay === undefined ? {} : { weightDecay: r.weightDecay }),
  ...(r.spectralPenalty === undefined ? {} : { spectralPenalty: r.spectralPenalty }),
  ...(r.activityDecay === undefined ? {} : { activityDecay: r.activityDecay }),
});

/** Positive label rows that do not sum to 1 (ce's softmax·Σy term), or normal targets (mse). */
function targets(rng: Random, loss: Loss): Mat {
  const y = randomMat(rng, B, DIMS.at(-1)!);
  return loss === 'ce'
    ? mat(
        y.rows,
        y.cols,
        Float64Array.from(y.data, (v) => Math.fround(0.2 + Math.abs(v))),
      )
    : y;
}

const DT = 0.25;
const T1 = 1;
const STEPS = 4;
const LR = 0.2;

/** The row's inference options and its float64 twin: a constant-step Runge–Kutta solve or `STEPS` optimiser steps. */
function inference(r: Row): {
  options: Record<string, unknown>;
  refOptim: Optimiser | null;
  make: () => Optimizer | null;
} {
  if (r.solver === 'sgd' || r.solver === 'adam') {
    const refOptim: Optimiser = r.solver === 'sgd' ? { kind: 'sgd', lr: LR } : { kind: 'adam', lr: 0.05 };
    const make = () => (r.solver === 'sgd' ? sgd({ lr: LR }) : adam({ lr: 0.05 }));
    return {
      options: { solver: make(), steps: STEPS, recordIters: r.recordIters, recordActivities: r.recordIters },
      refOptim,
      make,
    };
  }
  return {
    options: {
      solver: r.solver,
      stepsizeController: 'constant',
      dt: DT,
      maxT1: T1,
      recordIters: r.recordIters,
      recordActivities: r.recordIters,
    },
    refOptim: null,
    make: () => null,
  };
}

/** The float64 solve of the row from `acts0`: every state it accepts (the initial one first). */
function refSolve(r: Row, ref: GenModel, acts0: Mat[], y: Mat, x: Mat | null): Mat[][] {
  const opts = refOpts(r);
  const grads = (z: readonly Mat[]) => pcActivityGrads(ref, z, y, x, opts);
  const { refOptim } = inference(r);
  if (refOptim) {
    const states = [acts0];
    let z = acts0;
    let state = optimInit(refOptim, flattenMats(z).length);
    for (let n = 0; n < STEPS; n++) {
      const u = optimUpdate(refOptim, flattenMats(z), flattenMats(grads(z)), state);
      z = unflattenMats(u.params, z);
      state = u.state;
      states.push(z);
    }
    return states;
  }
  const f = (z: readonly Mat[]) =>
    grads(z).map((m) =>
      mat(
        m.rows,
        m.cols,
        Float64Array.from(m.data, (v) => -v),
      ),
    );
  const res = integrateConstant(f, acts0, {
    t1: T1,
    dt0: DT,
    method: 'euler',
    step: rkStep(TABLEAUX[r.solver as SolverName]),
    timeDtype: 'float32',
    recordStates: true,
  });
  return [acts0, ...res.states!];
}

describe('PC core: every public function of one network across settings × call options', () => {
  it.each(ROWS.map((r, i) => [rowName(r), r, i] as const))('%s', async (_n, r, i) => {
    const ref = refModelOf(r, 40 + i);
    const model = gpuModelOf(rt(), r, ref);
    const rng = new Random(60 + i);
    const x = randomMat(rng, B, DIMS[0]!);
    const y = targets(rng, r.loss);
    const xr = r.supervised ? x : null;
    const opts = refOpts(r);
    // Activities near the feedforward pass (perturbed), z_0 first without an input.
    const ff = genFfwd(ref, x).map((m) =>
      mat(
        m.rows,
        m.cols,
        Float64Array.from(m.data, (v) => Math.fround(v + 0.3 * rng.normal())),
      ),
    );
    const acts = r.supervised ? ff : [randomMat(rng, B, DIMS[0]!), ...ff];
    const activities = acts.map((a) => tensorOf(rt(), a));
    const output = tensorOf(rt(), y);
    const base = { ...termOpts(r), ...(r.supervised ? { input: tensorOf(rt(), x) } : {}) };
    const what = rowName(r);
    try {
      // Energies, gradients.
      expectClose(
        await (await pcEnergy(model, activities, output, { ...base, recordLayers: true })).toArray(),
        jpcRecordLayersOrder(pcLayerEnergies(ref, acts, y, xr, opts)),
        1e-4,
        `${what}: layer energies`,
      );
      const total = pcEnergyTotal(ref, acts, y, xr, opts);
      expectClose(
        [await (await pcEnergy(model, activities, output, base)).item()],
        [total],
        1e-4,
        `${what}: total energy`,
      );
      const ag = await computePcActivityGrad(model, activities, output, base);
      expectClose([await ag.energy.item()], [total], 1e-4, `${what}: energy with the gradient`);
      const refGrads = pcActivityGrads(ref, acts, y, xr, opts);
      expectClose(await readAll(ag.grads), flat(refGrads), 2e-4, `${what}: activity gradients`);
      const pg = await computePcParamGrads(model, activities, output, base);
      const refParam = pcParamGrads(ref, acts, y, xr, opts);
      expectClose(await readAll(pg.weights), flat(refParam.weights), 2e-4, `${what}: weight gradients`);
      expect(pg.biases.every((b) => (b === null) === !r.bias)).toBe(true);
      if (r.bias)
        expectClose(
          await readAll(pg.biases.map((b) => b!)),
          Float64Array.from(refParam.biases.flatMap((b) => [...b!])),
          2e-4,
          `${what}: bias gradients`,
        );

      // One update of each kind (returnGrads), a different optimiser per row.
      const actOptim = i % 2 === 0 ? sgd({ lr: 0.3, momentum: 0.5 }) : adam({ lr: 0.05 });
      const refActOptim: Optimiser = i % 2 === 0 ? { kind: 'sgd', lr: 0.3, momentum: 0.5 } : { kind: 'adam', lr: 0.05 };
      const ua = await updatePcActivities(model, activities, actOptim, actOptim.init(activities), output, {
        ...base,
        returnGrads: true,
      });
      expectClose(await readAll(ua.grads!), flat(refGrads), 2e-4, `${what}: returned activity gradients`);
      expectClose([await ua.energy.item()], [total], 1e-4, `${what}: energy before the activity update`);
      const stepped = optimUpdate(
        refActOptim,
        flattenMats(acts),
        flattenMats(refGrads),
        optimInit(refActOptim, flattenMats(acts).length),
      ).params;
      expectClose(await readAll(ua.activities), stepped, 2e-4, `${what}: updated activities`);

      // Inference, and its recording.
      const inf = inference(r);
      const solved = await solveInference(model, activities, output, { ...base, ...inf.options });
      const states = refSolve(r, ref, acts, y, xr);
      expectClose(
        await readAll(solved.activities),
        flat(states.at(-1)!),
        1e-3,
        `${what}: activities after inference`,
        3e-2,
      );
      // JPC's plain supervised energy at a constant step, unrecorded: the whole solve is one fused dispatch.
      const fusable =
        r.supervised &&
        !r.skips &&
        r.lambda === undefined &&
        r.activityDecay === undefined &&
        !r.recordIters &&
        inf.refOptim === null;
      expect(solved.dispatches === 1, `${what}: fused single-dispatch solve`).toBe(fusable);
      if (r.recordIters) {
        const rec = solved.recording!;
        expect(rec.energies.shape).toEqual([states.length, DIMS.length - 1]);
        const want = states.flatMap((s) => jpcRecordLayersOrder(pcLayerEnergies(ref, s, y, xr, opts)));
        expectClose(await rec.energies.toArray(), want, 1e-3, `${what}: recorded layer energies`, 3e-2);
        // The trajectory: [R, B, d_l] per activity.
        const traj = await Promise.all(rec.activities!.map((t) => t.toArray()));
        states.forEach((st, k) =>
          st.forEach((m, l) =>
            expectClose(
              traj[l]!.subarray(k * m.data.length, (k + 1) * m.data.length),
              m.data,
              1e-3,
              `${what}: recorded state ${k}, activity ${l}`,
              3e-2,
            ),
          ),
        );
      } else {
        expect(solved.recording).toBeNull();
      }

      // The parameter update at the solution (copies of the weights to compare with).
      const paramOptim = sgd({ lr: 0.1 });
      const before = flattenParams(ref);
      const equilibrium = states.at(-1)!;
      const refStep = pcParamGrads(ref, equilibrium, y, xr, opts);
      const up = await updatePcParams(model, solved.activities, paramOptim, paramOptim.init(model), output, {
        ...base,
        returnGrads: true,
      });
      expectClose(
        await readAll(up.grads!.weights),
        flat(refStep.weights),
        2e-3,
        `${what}: returned parameter gradients at the solution`,
        3e-2,
      );
      const arrays = await model.toArrays();
      const after = Float64Array.from(arrays.weights.flatMap((w, l) => [...w, ...(arrays.biases[l] ?? [])]));
      expectClose(
        after,
        Float64Array.from(before, (v, k) => v - 0.1 * flattenParams(refStep)[k]!),
        1e-4,
        `${what}: parameters after updatePcParams`,
        3e-2,
      );
    } finally {
      model.dispose();
    }
  });
});

describe('makePcStep across settings × call options, against the reference composition', () => {
  it.each(ROWS.map((r, i) => [rowName(r), r, i] as const))('%s', async (_n, r, i) => {
    const ref = refModelOf(r, 80 + i);
    const model = gpuModelOf(rt(), r, ref);
    const rng = new Random(90 + i);
    const x = randomMat(rng, B, DIMS[0]!);
    const y = targets(rng, r.loss);
    const xr = r.supervised ? x : null;
    const opts = refOpts(r);
    const what = rowName(r);
    try {
      // The start: the feedforward pass, or seeded normal draws (the same as initActivitiesFromNormal's).
      let acts0: Mat[];
      if (r.supervised) {
        acts0 = genFfwd(ref, x);
      } else {
        const drawn = initActivitiesFromNormal(model, { seed: 7 + i, batchSize: B, mode: 'unsupervised', sigma: 0.4 });
        acts0 = await Promise.all(drawn.map(async (t) => mat(t.shape[0]!, t.shape[1]!, await t.toArray())));
        for (const t of drawn) t.dispose();
      }
      if (r.supervised)
        expectClose(
          await readAll(await initActivitiesWithFfwd(model, tensorOf(rt(), x))),
          flat(acts0),
          1e-4,
          `${what}: initActivitiesWithFfwd`,
        );
      const states = refSolve(r, ref, acts0, y, xr);
      const equilibrium = states.at(-1)!;
      const refGrads = pcParamGrads(ref, equilibrium, y, xr, opts);
      const optim = sgd({ lr: 0.1 });
      const inf = inference(r);
      const step = await makePcStep(model, optim, optim.init(model), tensorOf(rt(), y), {
        ...termOpts(r),
        ...(r.supervised ? { input: tensorOf(rt(), x) } : { seed: 7 + i, sigma: 0.4 }),
        ...inf.options,
        gradNorms: true,
      });
      if (r.supervised) {
        const pred = acts0.at(-1)!;
        expectClose(
          [await step.loss!.item()],
          [r.loss === 'ce' ? refCrossEntropy(pred, y) : refMse(pred, y)],
          1e-4,
          `${what}: loss of the feedforward prediction`,
        );
      } else {
        expect(step.loss).toBeNull();
      }
      expectClose(
        await step.energies.toArray(),
        jpcRecordLayersOrder(pcLayerEnergies(ref, equilibrium, y, xr, opts)),
        1e-3,
        `${what}: energies at equilibrium`,
        3e-2,
      );
      const norms = ref.weights.flatMap((_, l) => [
        Math.hypot(...refGrads.weights[l]!.data),
        refGrads.biases[l] ? Math.hypot(...refGrads.biases[l]!) : 0,
      ]);
      expectClose(await step.gradNorms!.toArray(), norms, 2e-3, `${what}: gradient norms`, 3e-2);
      const arrays = await model.toArrays();
      const after = Float64Array.from(arrays.weights.flatMap((w, l) => [...w, ...(arrays.biases[l] ?? [])]));
      const g = flattenParams(refGrads);
      expectClose(
        after,
        Float64Array.from(flattenParams(ref), (v, k) => v - 0.1 * g[k]!),
        1e-4,
        `${what}: parameters after the step`,
        3e-2,
      );
      if (r.recordIters) expect(step.recording!.energies.shape).toEqual([states.length, DIMS.length - 1]);
    } finally {
      model.dispose();
    }
  });
});

describe('calls with different options on one model do not leak into each other (the workspace is shared)', () => {
  it('energy terms, losses, solvers and modes alternate; every result is the reference for its own options', async () => {
    const r: Row = {
      act: 'tanh',
      paramType: 'mupc',
      skips: false,
      gamma: 0.5,
      bias: true,
      loss: 'mse',
      supervised: true,
      solver: 'euler',
      recordIters: false,
    };
    const ref = refModelOf(r, 120);
    const model = gpuModelOf(rt(), r, ref);
    const rng = new Random(121);
    const x = randomMat(rng, B, DIMS[0]!);
    const y = targets(rng, 'ce');
    const z0 = randomMat(rng, B, DIMS[0]!);
    const ff = genFfwd(ref, x).map((m) =>
      mat(
        m.rows,
        m.cols,
        Float64Array.from(m.data, (v) => Math.fround(v + 0.3 * rng.normal())),
      ),
    );
    const output = tensorOf(rt(), y);
    const input = tensorOf(rt(), x);
    const sequence: { opts: PcOpts; supervised: boolean; solver: SolverName | null }[] = [
      { opts: { loss: 'mse', lambda: 0.6, weightDecay: 0.1, activityDecay: 0.2 }, supervised: true, solver: 'euler' },
      { opts: { loss: 'mse' }, supervised: true, solver: 'tsit5' },
      { opts: { loss: 'ce', spectralPenalty: 0.05 }, supervised: true, solver: 'heun' },
      { opts: { loss: 'mse', activityDecay: 0.3 }, supervised: true, solver: 'euler' },
      { opts: { loss: 'mse' }, supervised: true, solver: 'euler' },
      { opts: { loss: 'ce', lambda: 2, activityDecay: 0.1 }, supervised: false, solver: 'midpoint' },
      { opts: { loss: 'mse' }, supervised: false, solver: 'midpoint' },
      { opts: { loss: 'ce' }, supervised: true, solver: 'tsit5' },
      { opts: { loss: 'mse', lambda: 0.6, weightDecay: 0.1, activityDecay: 0.2 }, supervised: true, solver: null },
    ];
    try {
      for (const [k, s] of sequence.entries()) {
        const acts = s.supervised ? ff : [z0, ...ff];
        const xr = s.supervised ? x : null;
        const row: Row = {
          ...r,
          loss: s.opts.loss,
          supervised: s.supervised,
          solver: s.solver ?? 'euler',
          ...(s.opts.lambda ? { lambda: s.opts.lambda } : {}),
          ...(s.opts.activityDecay ? { activityDecay: s.opts.activityDecay } : {}),
        };
        const base = {
          loss: s.opts.loss,
          ...(s.opts.lambda === undefined ? {} : { outputEnergyScaling: s.opts.lambda }),
          ...(s.opts.weightDecay === undefined ? {} : { weightDecay: s.opts.weightDecay }),
          ...(s.opts.spectralPenalty === undefined ? {} : { spectralPenalty: s.opts.spectralPenalty }),
          ...(s.opts.activityDecay === undefined ? {} : { activityDecay: s.opts.activityDecay }),
          ...(s.supervised ? { input } : {}),
        };
        const what = `call ${k} (${JSON.stringify(s)})`;
        const activities = acts.map((a) => tensorOf(rt(), a));
        expectClose(
          [await (await pcEnergy(model, activities, output, base)).item()],
          [pcEnergyTotal(ref, acts, y, xr, s.opts)],
          1e-4,
          `${what}: energy`,
        );
        const ag = await computePcActivityGrad(model, activities, output, base);
        expectClose(
          await readAll(ag.grads),
          flat(pcActivityGrads(ref, acts, y, xr, s.opts)),
          2e-4,
          `${what}: activity gradients`,
        );
        const pg = await computePcParamGrads(model, activities, output, base);
        expectClose(
          await readAll(pg.weights),
          flat(pcParamGrads(ref, acts, y, xr, s.opts).weights),
          2e-4,
          `${what}: weight gradients`,
        );
        if (s.solver) {
          const solved = await solveInference(model, activities, output, {
            ...base,
            solver: s.solver,
            stepsizeController: 'constant',
            dt: DT,
            maxT1: T1,
          });
          expectClose(
            await readAll(solved.activities),
            flat(refSolve(row, ref, acts, y, xr).at(-1)!),
            1e-3,
            `${what}: inference`,
            3e-2,
          );
        }
      }
    } finally {
      model.dispose();
    }
  });
});

/** A network's model-level settings for the two-network families. */
interface Net {
  act: Act;
  paramType: ParamType;
  skips: boolean;
  gamma?: number;
  bias: boolean;
}

const netName = (n: Net) =>
  [n.act, n.paramType, n.skips ? 'skips' : '', n.gamma ? `γ ${n.gamma}` : '', n.bias ? 'bias' : 'no bias']
    .filter(Boolean)
    .join(' ');

/** A reference network of `dims` with the settings of `n` (O(1) weights for μPC/NTP) and its GPU twin. */
function netPair(n: Net, dims: number[], seed: number): { ref: GenModel; model: Model } {
  const base = randomRefModel(seed, dims, n.act, n.bias);
  const k = n.paramType === 'sp' ? 1 : 2.5;
  const weights = base.weights.map((w) =>
    mat(
      w.rows,
      w.cols,
      Float64Array.from(w.data, (v) => Math.fround(k * v)),
    ),
  );
  const L = dims.length - 1;
  const scales = refScalings(dims, n.paramType, {
    skips: n.skips,
    ...(n.gamma === undefined ? {} : { gamma: n.gamma }),
  }).map(Math.fround);
  const ref: GenModel = { ...base, weights, scales, ...(n.skips ? { skips: makeSkips(L) } : {}) };
  const model = mlpFromWeights(rt(), {
    dims,
    weights: weights.map((w) => Float32Array.from(w.data)),
    biases: n.bias ? base.biases.map((b) => Float32Array.from(b!)) : null,
    actFn: n.act,
    paramType: n.paramType,
    skipModel: n.skips ? makeSkipModel(L) : null,
    ...(n.gamma === undefined ? {} : { gamma: n.gamma }),
  });
  return { ref, model };
}

async function matsOf(ts: readonly { shape: readonly number[]; toArray(): Promise<Float32Array> }[]): Promise<Mat[]> {
  return Promise.all(ts.map(async (t) => mat(t.shape[0]!, t.shape[1]!, await t.toArray())));
}

async function paramsOf(model: Model): Promise<Float64Array> {
  const a = await model.toArrays();
  return Float64Array.from(a.weights.flatMap((w, l) => [...w, ...(a.biases[l] ?? [])]));
}

// Square hidden layers so that either network may have skips.
const PAIR_DIMS = [3, 5, 5, 4];

describe('hybrid PC: generator × amortiser settings (activations, parameterisations, skips, γ, biases), with and without a label', () => {
  const rows: { gen: Net; amort: Net; supervised: boolean }[] = [
    {
      gen: { act: 'tanh', paramType: 'mupc', skips: true, gamma: 0.5, bias: true },
      amort: { act: 'relu', paramType: 'sp', skips: false, bias: false },
      supervised: true,
    },
    {
      gen: { act: 'selu', paramType: 'ntp', skips: false, bias: false },
      amort: { act: 'gelu', paramType: 'mupc', skips: true, gamma: 2, bias: true },
      supervised: false,
    },
    {
      gen: { act: 'leaky_relu', paramType: 'sp', skips: true, gamma: 2, bias: false },
      amort: { act: 'silu', paramType: 'ntp', skips: true, bias: true },
      supervised: true,
    },
    {
      gen: { act: 'hard_tanh', paramType: 'sp', skips: false, bias: true },
      amort: { act: 'linear', paramType: 'ntp', skips: false, gamma: 0.5, bias: false },
      supervised: false,
    },
  ];
  it.each(
    rows.map(
      (r, i) =>
        [
          `generator ${netName(r.gen)}; amortiser ${netName(r.amort)}; ${r.supervised ? 'label' : 'no label'}`,
          r,
          i,
        ] as const,
    ),
  )('%s', async (what, r, i) => {
    const g = netPair(r.gen, PAIR_DIMS, 140 + i);
    const a = netPair(r.amort, [...PAIR_DIMS].reverse(), 150 + i);
    const rng = new Random(160 + i);
    const image = randomMat(rng, B, PAIR_DIMS.at(-1)!);
    const label = randomMat(rng, B, PAIR_DIMS[0]!);
    const labelOrNull = r.supervised ? label : null;
    try {
      const amort = await initActivitiesWithAmort(a.model, g.model, tensorOf(rt(), image));
      const amortRef = refAmort(a.ref, g.ref, image);
      expectClose(await readAll(amort), flat(amortRef), 1e-4, `${what}: initActivitiesWithAmort`);
      // An equilibrium of the generator's shapes (any will do for the amortiser's energy).
      const equilib = (r.supervised ? PAIR_DIMS.slice(1) : PAIR_DIMS).map((d) => randomMat(rng, B, d));
      const equilibT = equilib.map((m) => tensorOf(rt(), m));
      const hOpts = { input: tensorOf(rt(), image), ...(r.supervised ? { output: tensorOf(rt(), label) } : {}) };
      const amortMats = await matsOf(amort);
      const layers = hpcLayerEnergies(a.ref, equilib, amortMats, image, labelOrNull);
      expectClose(
        await (await hpcEnergy(a.model, equilibT, amort, { ...hOpts, recordLayers: true })).toArray(),
        layers,
        1e-4,
        `${what}: hpcEnergy layers`,
      );
      const hg = await computeHpcParamGrads(a.model, equilibT, amort, hOpts);
      const hRef = hpcParamGrads(a.ref, equilib, amortMats, image, labelOrNull);
      expectClose(await readAll(hg.weights), flat(hRef.weights), 2e-4, `${what}: hPC weight gradients`);

      // makeHpcStep against the reference composition: amortised start → generator inference (an Euler solve,
      // or on odd rows discrete SGD steps, recorded) → updates.
      const start = r.supervised ? amortRef.slice(1) : amortRef;
      const xr = r.supervised ? label : null;
      const discrete = i % 2 === 1;
      const grad = (z: readonly Mat[]) => pcActivityGrads(g.ref, z, image, xr, { loss: 'mse' });
      const f = (z: readonly Mat[]) =>
        grad(z).map((m) =>
          mat(
            m.rows,
            m.cols,
            Float64Array.from(m.data, (v) => -v),
          ),
        );
      let equilibrium = start;
      if (discrete) {
        for (let n = 0; n < STEPS; n++) {
          const gz = grad(equilibrium);
          equilibrium = equilibrium.map((m, k) =>
            mat(
              m.rows,
              m.cols,
              Float64Array.from(m.data, (v, q) => v - LR * gz[k]!.data[q]!),
            ),
          );
        }
      } else {
        equilibrium = integrateConstant(f, start, { t1: T1, dt0: DT, method: 'euler', timeDtype: 'float32' }).y;
      }
      const gGrads = flattenParams(pcParamGrads(g.ref, equilibrium, image, xr, { loss: 'mse' }));
      const aGrads = flattenParams(hpcParamGrads(a.ref, equilibrium, amortRef, image, labelOrNull));
      const [gBefore, aBefore] = [flattenParams(g.ref), flattenParams(a.ref)];
      const optims = [sgd({ lr: 0.1 }), sgd({ lr: 0.1 })] as const;
      const step = await makeHpcStep(
        g.model,
        a.model,
        optims,
        [optims[0].init(g.model), optims[1].init(a.model)],
        tensorOf(rt(), image),
        {
          ...(discrete
            ? { solver: sgd({ lr: LR }), steps: STEPS, recordIters: true }
            : { solver: 'euler', stepsizeController: 'constant', dt: DT, maxT1: T1 }),
          ...(r.supervised ? { input: tensorOf(rt(), label) } : {}),
        },
      );
      expect(step.recording?.energies.shape ?? null).toEqual(discrete ? [STEPS + 1, PAIR_DIMS.length - 1] : null);
      expectClose(
        await step.energies.generator.toArray(),
        jpcRecordLayersOrder(pcLayerEnergies(g.ref, equilibrium, image, xr, { loss: 'mse' })),
        1e-3,
        `${what}: generator energies`,
        3e-2,
      );
      expectClose(
        await step.energies.amortiser.toArray(),
        hpcLayerEnergies(a.ref, equilibrium, amortRef, image, labelOrNull),
        1e-3,
        `${what}: amortiser energies`,
        3e-2,
      );
      expectClose(
        await paramsOf(g.model),
        Float64Array.from(gBefore, (v, k) => v - 0.1 * gGrads[k]!),
        1e-4,
        `${what}: generator after the step`,
        3e-2,
      );
      expectClose(
        await paramsOf(a.model),
        Float64Array.from(aBefore, (v, k) => v - 0.1 * aGrads[k]!),
        1e-4,
        `${what}: amortiser after the step`,
        3e-2,
      );
    } finally {
      g.model.dispose();
      a.model.dispose();
    }
  });
});

describe('ePC across settings', () => {
  const rows: (Net & { loss: Loss; supervised: boolean })[] = [
    { act: 'relu', paramType: 'ntp', skips: true, gamma: 0.5, bias: false, loss: 'ce', supervised: true },
    { act: 'selu', paramType: 'sp', skips: false, gamma: 2, bias: true, loss: 'mse', supervised: false },
    { act: 'leaky_relu', paramType: 'mupc', skips: false, bias: false, loss: 'mse', supervised: true },
    { act: 'silu', paramType: 'ntp', skips: false, bias: true, loss: 'ce', supervised: false },
    { act: 'hard_tanh', paramType: 'sp', skips: true, bias: true, loss: 'ce', supervised: true },
    { act: 'linear', paramType: 'mupc', skips: true, gamma: 0.5, bias: true, loss: 'mse', supervised: false },
  ];
  it.each(
    rows.map((r, i) => [`${netName(r)}, ${r.loss}, ${r.supervised ? 'supervised' : 'unsupervised'}`, r, i] as const),
  )('%s', async (what, r, i) => {
    const { ref, model } = netPair(r, PAIR_DIMS, 170 + i);
    const rng = new Random(180 + i);
    const L = PAIR_DIMS.length - 1;
    const x = randomMat(rng, B, PAIR_DIMS[0]!);
    const y =
      targets(rng, r.loss).data.length === B * PAIR_DIMS[L]!
        ? randomMat(rng, B, PAIR_DIMS[L]!)
        : randomMat(rng, B, PAIR_DIMS[L]!);
    const yy =
      r.loss === 'ce'
        ? mat(
            y.rows,
            y.cols,
            Float64Array.from(y.data, (v) => Math.fround(0.2 + Math.abs(v))),
          )
        : y;
    const xr = r.supervised ? x : null;
    const widths = r.supervised ? PAIR_DIMS.slice(1, L) : PAIR_DIMS.slice(0, L);
    const errors = widths.map((d) => randomMat(rng, B, d, 0.4));
    const opts = { loss: r.loss, ...(r.supervised ? { input: tensorOf(rt(), x) } : {}) };
    const errs = errors.map((e) => tensorOf(rt(), e));
    const output = tensorOf(rt(), yy);
    try {
      expect(
        (
          await readAll(initEpcErrors(model, { batchSize: B, mode: r.supervised ? 'supervised' : 'unsupervised' }))
        ).every((v) => v === 0),
      ).toBe(true);
      const F = refEpcEnergy(ref, errors, yy, xr, r.loss);
      expectClose([await (await epcEnergy(model, errs, output, opts)).item()], [F], 1e-4, `${what}: energy`);
      expectClose(
        await readAll(await epcActivities(model, errs, output, opts)),
        flat(epcForward(ref, errors, xr)),
        1e-4,
        `${what}: z(ε)`,
      );
      const { grads } = await computeEpcErrorGrad(model, errs, output, opts);
      const g = epcErrorGrads(ref, errors, yy, xr, r.loss);
      expectClose(await readAll(grads), flat(g), 2e-4, `${what}: error gradients`);
      const pg = await computeEpcParamGrads(model, errs, output, opts);
      const pref = epcParamGrads(ref, errors, yy, xr, r.loss);
      expectClose(await readAll(pg.weights), flat(pref.weights), 2e-4, `${what}: weight gradients`);
      if (r.bias)
        expectClose(
          await readAll(pg.biases.map((b) => b!)),
          Float64Array.from(pref.biases.flatMap((b) => [...b!])),
          2e-4,
          `${what}: bias gradients`,
        );
      const optim = adam({ lr: 0.05 });
      const up = await updateEpcErrors(model, errs, optim, optim.init(errs), output, { ...opts, returnGrads: true });
      const refOpt: Optimiser = { kind: 'adam', lr: 0.05 };
      expectClose(
        await readAll(up.errors),
        optimUpdate(refOpt, flattenMats(errors), flattenMats(g), optimInit(refOpt, flattenMats(errors).length)).params,
        2e-4,
        `${what}: updated errors`,
      );
      const before = flattenParams(ref);
      const popt = sgd({ lr: 0.1, momentum: 0.9 });
      await updateEpcParams(model, errs, popt, popt.init(model), output, opts);
      const gp = flattenParams(pref);
      expectClose(
        await paramsOf(model),
        Float64Array.from(before, (v, k) => v - 0.1 * gp[k]!),
        1e-4,
        `${what}: parameters after the update`,
        3e-2,
      );
    } finally {
      model.dispose();
    }
  });
});

describe('bPC with parameterisations, γ and skips on either network', () => {
  const rows: { td: Net; bu: Net; supervised: boolean }[] = [
    {
      td: { act: 'tanh', paramType: 'mupc', skips: true, gamma: 0.5, bias: true },
      bu: { act: 'relu', paramType: 'ntp', skips: false, bias: true },
      supervised: true,
    },
    {
      td: { act: 'gelu', paramType: 'ntp', skips: false, gamma: 2, bias: false },
      bu: { act: 'gelu', paramType: 'mupc', skips: true, gamma: 0.5, bias: false },
      supervised: false,
    },
    {
      td: { act: 'silu', paramType: 'sp', skips: true, bias: true },
      bu: { act: 'selu', paramType: 'sp', skips: true, gamma: 2, bias: true },
      supervised: false,
    },
    {
      td: { act: 'leaky_relu', paramType: 'ntp', skips: true, bias: false },
      bu: { act: 'hard_tanh', paramType: 'mupc', skips: false, bias: true },
      supervised: true,
    },
  ];
  it.each(
    rows.map(
      (r, i) =>
        [
          `top-down ${netName(r.td)}; bottom-up ${netName(r.bu)}; ${r.supervised ? 'supervised' : 'unsupervised'}`,
          r,
          i,
        ] as const,
    ),
  )('%s', async (what, r, i) => {
    const td = netPair(r.td, PAIR_DIMS, 190 + i);
    const bu = netPair(r.bu, [...PAIR_DIMS].reverse(), 200 + i);
    const rng = new Random(210 + i);
    const H = PAIR_DIMS.length - 2;
    const x = randomMat(rng, B, PAIR_DIMS[0]!);
    const y = randomMat(rng, B, PAIR_DIMS.at(-1)!);
    const acts = (r.supervised ? PAIR_DIMS.slice(1, H + 1) : PAIR_DIMS.slice(0, H + 1)).map((d) =>
      randomMat(rng, B, d),
    );
    const xr = r.supervised ? x : null;
    const o = { alphaF: 0.5, alphaB: 2 };
    const base = {
      forwardEnergyWeight: 0.5,
      backwardEnergyWeight: 2,
      ...(r.supervised ? { input: tensorOf(rt(), x) } : {}),
    };
    const activities = acts.map((a) => tensorOf(rt(), a));
    const output = tensorOf(rt(), y);
    try {
      expectClose(
        await (await bpcEnergy(td.model, bu.model, activities, output, { ...base, recordLayers: true })).toArray(),
        bpcLayerEnergies(td.ref, bu.ref, acts, y, xr, o),
        1e-4,
        `${what}: layer energies`,
      );
      const ag = await computeBpcActivityGrad(td.model, bu.model, activities, output, base);
      expectClose(
        await readAll(ag.grads),
        flat(bpcActivityGrads(td.ref, bu.ref, acts, y, xr, o)),
        2e-4,
        `${what}: activity gradients`,
      );
      const pg = await computeBpcParamGrads(td.model, bu.model, activities, output, base);
      const ref = bpcParamGrads(td.ref, bu.ref, acts, y, xr, o);
      expectClose(await readAll(pg.topDown.weights), flat(ref.td.weights), 2e-4, `${what}: top-down weight gradients`);
      expectClose(
        await readAll(pg.bottomUp.weights),
        flat(ref.bu.weights),
        2e-4,
        `${what}: bottom-up weight gradients`,
      );
      // The start: the bottom-up network's own forward pass (its scalings and skips), in top-down order.
      const start = refAmort(bu.ref, td.ref, y).slice(r.supervised ? 1 : 0, H + 1);
      expectClose(
        await readAll(
          await initBpcActivities(td.model, bu.model, output, { mode: r.supervised ? 'supervised' : 'unsupervised' }),
        ),
        flat(start),
        1e-4,
        `${what}: initBpcActivities`,
      );
    } finally {
      td.model.dispose();
      bu.model.dispose();
    }
  });
});

describe('evaluation across settings: testDiscriminativePc, testGenerativePc, testHpc', () => {
  const rows: (Net & { loss: Loss; lambda?: number; activityDecay?: number })[] = [
    { act: 'relu', paramType: 'mupc', skips: true, gamma: 0.5, bias: true, loss: 'ce', lambda: 0.6 },
    { act: 'tanh', paramType: 'ntp', skips: false, gamma: 2, bias: false, loss: 'mse', activityDecay: 0.2 },
    { act: 'selu', paramType: 'sp', skips: true, bias: false, loss: 'ce', activityDecay: 0.1 },
  ];
  it.each(
    rows.map(
      (r, i) =>
        [
          `${netName(r)}, ${r.loss}${r.lambda ? `, λ ${r.lambda}` : ''}${r.activityDecay ? `, ad ${r.activityDecay}` : ''}`,
          r,
          i,
        ] as const,
    ),
  )('%s', async (what, r, i) => {
    const { ref, model } = netPair(r, PAIR_DIMS, 220 + i);
    const rng = new Random(230 + i);
    const x = randomMat(rng, B, PAIR_DIMS[0]!);
    const y = randomMat(rng, B, PAIR_DIMS.at(-1)!);
    const yy =
      r.loss === 'ce'
        ? mat(
            y.rows,
            y.cols,
            Float64Array.from(y.data, (v) => Math.fround(0.2 + Math.abs(v))),
          )
        : y;
    const opts: PcOpts = {
      loss: r.loss,
      ...(r.lambda ? { lambda: r.lambda } : {}),
      ...(r.activityDecay ? { activityDecay: r.activityDecay } : {}),
    };
    try {
      // The feedforward prediction's loss and accuracy.
      const pred = genFfwd(ref, x).at(-1)!;
      const d = await testDiscriminativePc(model, tensorOf(rt(), yy), tensorOf(rt(), x), { loss: r.loss });
      expectClose(
        [d.loss],
        [r.loss === 'ce' ? refCrossEntropy(pred, yy) : refMse(pred, yy)],
        1e-4,
        `${what}: testDiscriminativePc loss`,
      );
      expect(d.acc, `${what}: testDiscriminativePc accuracy`).toBeCloseTo(refAccuracy(yy, pred), 3);
      // Generative test: z_0..z_L from seeded draws, inference with only the output clamped, z_0 scored against x.
      const drawn = initActivitiesFromNormal(model, { seed: 3 + i, batchSize: B, mode: 'unsupervised', sigma: 0.5 });
      const acts0 = await matsOf(drawn);
      // Heun at a constant step, or (second row) discrete Adam steps.
      const discrete = i === 1;
      const grad = (z: readonly Mat[]) => pcActivityGrads(ref, z, yy, null, opts);
      const f = (z: readonly Mat[]) =>
        grad(z).map((m) =>
          mat(
            m.rows,
            m.cols,
            Float64Array.from(m.data, (v) => -v),
          ),
        );
      let solved = acts0;
      if (discrete) {
        const adamRef: Optimiser = { kind: 'adam', lr: 0.05 };
        let state = optimInit(adamRef, flattenMats(solved).length);
        for (let n = 0; n < STEPS; n++) {
          const u = optimUpdate(adamRef, flattenMats(solved), flattenMats(grad(solved)), state);
          solved = unflattenMats(u.params, solved);
          state = u.state;
        }
      } else {
        solved = integrateConstant(f, acts0, { t1: T1, dt0: DT, method: 'heun', timeDtype: 'float32' }).y;
      }
      const g = await testGenerativePc(model, tensorOf(rt(), yy), tensorOf(rt(), x), {
        seed: 3 + i,
        sigma: 0.5,
        loss: r.loss,
        ...(r.lambda ? { outputEnergyScaling: r.lambda } : {}),
        ...(r.activityDecay ? { activityDecay: r.activityDecay } : {}),
        ...(discrete
          ? { solver: adam({ lr: 0.05 }), steps: STEPS }
          : { solver: 'heun' as const, stepsizeController: 'constant' as const, dt: DT, maxT1: T1 }),
      });
      expect(g.acc, `${what}: testGenerativePc accuracy`).toBeCloseTo(refAccuracy(x, solved[0]!), 3);
      expectClose(await g.preds.toArray(), pred.data, 1e-4, `${what}: testGenerativePc predictions`);
    } finally {
      model.dispose();
    }
  });

  it('testHpc with a μPC generator with skips and an NTP amortiser of another activation', async () => {
    const g = netPair({ act: 'gelu', paramType: 'mupc', skips: true, gamma: 0.5, bias: true }, PAIR_DIMS, 240);
    const a = netPair({ act: 'relu', paramType: 'ntp', skips: false, bias: false }, [...PAIR_DIMS].reverse(), 241);
    const rng = new Random(242);
    const Bh = 8;
    const image = randomMat(rng, Bh, PAIR_DIMS.at(-1)!);
    const label = randomMat(rng, Bh, PAIR_DIMS[0]!);
    try {
      const amort = refAmort(a.ref, g.ref, image);
      const f = (z: readonly Mat[]) =>
        pcActivityGrads(g.ref, z, image, null, { loss: 'mse' }).map((m) =>
          mat(
            m.rows,
            m.cols,
            Float64Array.from(m.data, (v) => -v),
          ),
        );
      const solve = (start: Mat[]) =>
        integrateConstant(f, start, { t1: T1, dt0: DT, method: 'euler', timeDtype: 'float32' }).y;
      const hybrid = solve(amort);
      const drawn = initActivitiesFromNormal(g.model, { seed: 9, batchSize: Bh, mode: 'unsupervised', sigma: 0.5 });
      const alone = solve(await matsOf(drawn));
      const r = await testHpc(g.model, a.model, tensorOf(rt(), image), tensorOf(rt(), label), {
        seed: 9,
        sigma: 0.5,
        solver: 'euler',
        stepsizeController: 'constant',
        dt: DT,
        maxT1: T1,
      });
      expect(r.amortAcc).toBeCloseTo(refAccuracy(label, amort[0]!), 3);
      expect(r.hpcAcc).toBeCloseTo(refAccuracy(label, hybrid[0]!), 3);
      expect(r.genAcc).toBeCloseTo(refAccuracy(label, alone[0]!), 3);
      expectClose(
        await r.outputPreds.toArray(),
        genFfwd(g.ref, label).at(-1)!.data,
        1e-4,
        'testHpc output predictions',
      );
      // Discrete inference (SGD steps) for both inferences.
      const sgdSolve = (start: Mat[]) => {
        let z = start;
        for (let n = 0; n < STEPS; n++) {
          const gz = pcActivityGrads(g.ref, z, image, null, { loss: 'mse' });
          z = z.map((m, k) =>
            mat(
              m.rows,
              m.cols,
              Float64Array.from(m.data, (v, q) => v - LR * gz[k]!.data[q]!),
            ),
          );
        }
        return z;
      };
      const rd = await testHpc(g.model, a.model, tensorOf(rt(), image), tensorOf(rt(), label), {
        seed: 9,
        sigma: 0.5,
        solver: sgd({ lr: LR }),
        steps: STEPS,
      });
      expect(rd.hpcAcc).toBeCloseTo(refAccuracy(label, sgdSolve(amort)[0]!), 3);
      expect(rd.genAcc).toBeCloseTo(
        refAccuracy(
          label,
          sgdSolve(
            await matsOf(
              initActivitiesFromNormal(g.model, { seed: 9, batchSize: Bh, mode: 'unsupervised', sigma: 0.5 }),
            ),
          )[0]!,
        ),
        3,
      );
    } finally {
      g.model.dispose();
      a.model.dispose();
    }
  });
});

describe('options a function would accept and drop are refused', () => {
  it('testGenerativePc and testHpc return no recording: every recording option is a WpcArgumentError naming it, nothing runs', async () => {
    const g = netPair({ act: 'tanh', paramType: 'sp', skips: false, bias: true }, PAIR_DIMS, 250);
    const a = netPair({ act: 'tanh', paramType: 'sp', skips: false, bias: true }, [...PAIR_DIMS].reverse(), 251);
    const rng = new Random(252);
    const image = tensorOf(rt(), randomMat(rng, B, PAIR_DIMS.at(-1)!));
    const label = tensorOf(rt(), randomMat(rng, B, PAIR_DIMS[0]!));
    const solver = { solver: 'euler' as const, stepsizeController: 'constant' as const, dt: DT, maxT1: T1 };
    const before = [await paramsOf(g.model), await paramsOf(a.model)];
    try {
      for (const [key, value] of [
        ['recordIters', true],
        ['recordEvery', DT],
        ['recordActivities', true],
        ['maxRecords', 10],
      ] as const) {
        const extra = { [key]: value } as never;
        await expect(
          testGenerativePc(g.model, image, label, { seed: 1, ...solver, ...(extra as object) }),
        ).rejects.toThrow(new RegExp(`^testGenerativePc: options\\.${key} is not available here`));
        await expect(
          testHpc(g.model, a.model, image, label, { seed: 1, ...solver, ...(extra as object) }),
        ).rejects.toThrow(new RegExp(`^testHpc: options\\.${key} is not available here`));
      }
      // recordIters: false records nothing either way, and is accepted.
      await testGenerativePc(g.model, image, label, { seed: 1, ...solver, recordIters: false } as never);
      expect([await paramsOf(g.model), await paramsOf(a.model)]).toEqual(before);
    } finally {
      g.model.dispose();
      a.model.dispose();
    }
  });
});

describe('the steady-state event with the generalised energy', () => {
  it('stops at the first state (t0 or after a step) where rms(∂F/∂z) < atol + rtol·rms(z), ∂F/∂z with λ, ce and activity decay, z_0 free', async () => {
    const r: Row = {
      act: 'gelu',
      paramType: 'mupc',
      skips: true,
      gamma: 0.5,
      bias: true,
      loss: 'ce',
      lambda: 0.6,
      activityDecay: 0.2,
      supervised: false,
      solver: 'euler',
      recordIters: false,
    };
    const ref = refModelOf(r, 260);
    const model = gpuModelOf(rt(), r, ref);
    const rng = new Random(261);
    const y = targets(rng, 'ce');
    const acts = [randomMat(rng, B, DIMS[0]!), ...genFfwd(ref, randomMat(rng, B, DIMS[0]!))];
    const opts = refOpts(r);
    const grads = (z: readonly Mat[]) => pcActivityGrads(ref, z, y, null, opts);
    const f = (z: readonly Mat[]) =>
      grads(z).map((m) =>
        mat(
          m.rows,
          m.cols,
          Float64Array.from(m.data, (v) => -v),
        ),
      );
    const dt = 0.5;
    const t1 = 60;
    const states = [
      acts,
      ...integrateConstant(f, acts, { t1, dt0: dt, method: 'euler', timeDtype: 'float32', recordStates: true }).states!,
    ];
    const rms = (ms: readonly Mat[]) =>
      Math.sqrt(
        ms.reduce((s, m) => s + m.data.reduce((t, v) => t + v * v, 0), 0) / ms.reduce((s, m) => s + m.data.length, 0),
      );
    const [rtol, atol] = [1e-2, 1e-3];
    const steady = states.findIndex((z) => rms(grads(z)) < atol + rtol * rms(z));
    try {
      expect(steady, 'the reference reaches the steady state after a few steps').toBeGreaterThan(2);
      // Not too close to the bound at the stopping state and the one before it (float32 must decide the same).
      const margin = (k: number) => rms(grads(states[k]!)) / (atol + rtol * rms(states[k]!));
      expect(margin(steady)).toBeLessThan(0.995);
      expect(margin(steady - 1)).toBeGreaterThan(1.005);
      const solved = await solveInference(
        model,
        acts.map((a) => tensorOf(rt(), a)),
        tensorOf(rt(), y),
        {
          ...termOpts(r),
          solver: 'euler',
          stepsizeController: 'constant',
          dt,
          maxT1: t1,
          steadyState: { rtol, atol },
        },
      );
      expect(solved.steadyState).toBe(true);
      expect(solved.steps.accepted).toBe(steady);
      expect(solved.t).toBeCloseTo(steady * dt, 5);
      expectClose(
        await readAll(solved.activities),
        flat(states[steady]!),
        1e-3,
        'the state the event stopped at',
        3e-2,
      );
    } finally {
      model.dispose();
    }
  });
});
