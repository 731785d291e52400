/**
 * The generalised PC energy on the GPU against the float64 reference (test/reference/variants64.ts):
 * parameterisations (sp / μPC / NTP, γ), identity skips, the output energy scaling λ, weight decay, the
 * spectral penalty, activity decay, and unsupervised PC (a free z_0) — energies, activity and parameter
 * gradients, discrete updates, ODE solves and the unsupervised training step.
 */
import { describe, expect, it } from 'vitest';
import {
  computePcActivityGrad,
  computePcParamGrads,
  initActivitiesFromNormal,
  initActivitiesWithFfwd,
  makeMlp,
  makePcStep,
  makeSkipModel,
  mlpFromWeights,
  paramScalings,
  pcEnergy,
  sgd,
  solveInference,
  updatePcActivities,
  updatePcParams,
  type Model,
  type ParamType,
  type Runtime,
} from '../../src/node.js';
import { Random } from '../../src/util/random.js';
import {
  type Act,
  type Loss,
  type Mat,
  integrateConstant,
  integrateHeunPid,
  jpcRecordLayersOrder,
  mat,
} from '../reference/jpc64.js';
import {
  type GenModel,
  type PcOpts,
  genFfwd,
  makeSkips,
  paramScalings as refScalings,
  pcActivityGrads,
  pcEnergyTotal,
  pcLayerEnergies,
  pcParamGrads,
} from '../reference/variants64.js';
import {
  expectClose,
  flat,
  oneHotMat,
  randomMat,
  randomRefModel,
  readAll,
  tensorOf,
  useRuntime,
} from '../support/helpers.js';

const rt = useRuntime();

interface Config {
  name: string;
  dims: number[];
  act: Act;
  bias: boolean;
  paramType: ParamType;
  skips: boolean;
  gamma?: number;
  opts: Omit<PcOpts, 'loss'>;
}

const EVERY_TERM: Config = {
  name: 'μPC, skips, γ, λ and every regulariser',
  dims: [5, 6, 6, 6, 3],
  act: 'tanh',
  bias: true,
  paramType: 'mupc',
  skips: true,
  gamma: 2,
  opts: { lambda: 0.7, weightDecay: 0.1, spectralPenalty: 0.05, activityDecay: 0.2 },
};

const CONFIGS: Config[] = [
  EVERY_TERM,
  {
    name: 'NTP without skips, activity decay',
    dims: [4, 7, 5, 3],
    act: 'silu',
    bias: false,
    paramType: 'ntp',
    skips: false,
    opts: { activityDecay: 0.3 },
  },
  { name: 'sp, plain', dims: [6, 9, 4], act: 'gelu', bias: true, paramType: 'sp', skips: false, opts: {} },
  // Every width ≡ 0 mod 4: the layer kernels take their vec4 epilogues (layer-matmul.wgsl, VEC_EPILOGUE).
  { ...EVERY_TERM, name: 'μPC, skips, γ, λ and every regulariser, widths ≡ 0 mod 4', dims: [8, 8, 8, 8, 4] },
];

function refModel(c: Config, seed: number): GenModel {
  const base = randomRefModel(seed, c.dims, c.act, c.bias);
  const skips = c.skips ? makeSkips(c.dims.length - 1) : undefined;
  const scales = refScalings(c.dims, c.paramType, {
    skips: c.skips,
    ...(c.gamma === undefined ? {} : { gamma: c.gamma }),
  }).map(Math.fround);
  return { ...base, scales, ...(skips ? { skips } : {}) };
}

function gpuModelOf(r: Runtime, c: Config, ref: GenModel): Model {
  return mlpFromWeights(r, {
    dims: c.dims,
    weights: ref.weights.map((w) => Float32Array.from(w.data)),
    biases: c.bias ? ref.biases.map((b) => Float32Array.from(b!)) : null,
    actFn: c.act,
    paramType: c.paramType,
    skipModel: c.skips ? makeSkipModel(c.dims.length - 1) : null,
    ...(c.gamma === undefined ? {} : { gamma: c.gamma }),
  });
}

const termOptions = (o: Omit<PcOpts, 'loss'>) => ({
  ...(o.lambda === undefined ? {} : { outputEnergyScaling: o.lambda }),
  ...(o.weightDecay === undefined ? {} : { weightDecay: o.weightDecay }),
  ...(o.spectralPenalty === undefined ? {} : { spectralPenalty: o.spectralPenalty }),
  ...(o.activityDecay === undefined ? {} : { activityDecay: o.activityDecay }),
});

/** Activities near the feedforward values (perturbed so every error is non-zero); unsupervised adds a random z_0 first. */
function activitiesFor(rng: Random, ref: GenModel, x: Mat, unsupervised: boolean): Mat[] {
  const acts = genFfwd(ref, x).map((m) => {
    const p = randomMat(rng, m.rows, m.cols, 0.3);
    return mat(
      m.rows,
      m.cols,
      Float64Array.from(m.data, (v, i) => Math.fround(v + p.data[i]!)),
    );
  });
  return unsupervised ? [x, ...acts] : acts;
}

function fixture(c: Config, loss: Loss, unsupervised: boolean, seed: number) {
  const rng = new Random(seed);
  const ref = refModel(c, seed);
  const B = 5;
  const x = randomMat(rng, B, c.dims[0]!);
  const y = loss === 'ce' ? oneHotMat(rng, B, c.dims.at(-1)!) : randomMat(rng, B, c.dims.at(-1)!);
  const acts = activitiesFor(rng, ref, x, unsupervised);
  return { ref, x, y, acts, B };
}

describe('parameterisations', () => {
  it('model scalings follow JPC’s table, and μPC draws N(0, 1) weights', () => {
    const dims = [20, 64, 64, 64, 10];
    for (const paramType of ['sp', 'mupc', 'ntp'] as const) {
      for (const skips of [false, true]) {
        const model = makeMlp(rt(), {
          seed: 1,
          inputDim: 20,
          width: 64,
          depth: 4,
          outputDim: 10,
          actFn: 'relu',
          paramType,
          skipModel: skips ? makeSkipModel(4) : null,
          gamma: 0.5,
        });
        const expected = refScalings(dims, paramType, { skips, gamma: 0.5 });
        expectClose(
          model.layers.map((l) => l.scale),
          expected,
          1e-12,
          `${paramType}${skips ? '+skips' : ''} scalings`,
        );
        expect(paramScalings(dims, paramType, { skips, gamma: 0.5 })).toEqual(expected);
        expect(model.skips).toEqual(skips ? [false, true, true, false] : [false, false, false, false]);
        expect(model.paramType).toBe(paramType);
        model.dispose();
      }
    }
  });

  it('μPC weights are standard normal; sp and NTP keep Equinox’s uniform init', async () => {
    for (const paramType of ['mupc', 'ntp'] as const) {
      const model = makeMlp(rt(), {
        seed: 3,
        inputDim: 100,
        width: 100,
        depth: 3,
        outputDim: 100,
        actFn: 'relu',
        paramType,
      });
      const { weights } = await model.toArrays();
      const w = weights[1]!;
      const mean = w.reduce((s, v) => s + v, 0) / w.length;
      const variance = w.reduce((s, v) => s + (v - mean) ** 2, 0) / w.length;
      const max = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      if (paramType === 'mupc') {
        expect(Math.abs(mean)).toBeLessThan(0.03);
        expect(Math.abs(variance - 1)).toBeLessThan(0.05);
      } else {
        expect(max).toBeLessThanOrEqual(0.1); // U(±1/√100)
        expect(Math.abs(variance - 0.01 / 3)).toBeLessThan(0.0005);
      }
      model.dispose();
    }
  });

  it('makeSkipModel is JPC’s make_skip_model', () => {
    expect(makeSkipModel(1)).toEqual([false]);
    expect(makeSkipModel(2)).toEqual([false, false]);
    expect(makeSkipModel(5)).toEqual([false, true, true, true, false]);
    expect(makeSkipModel(5)).toEqual(makeSkips(5));
  });
});

describe.each(CONFIGS.map((c) => [c.name, c] as const))('%s', (_name, c) => {
  for (const unsupervised of [false, true]) {
    for (const loss of ['mse', 'ce'] as Loss[]) {
      const mode = unsupervised ? 'unsupervised' : 'supervised';
      it(`${mode} energies and gradients match the reference (${loss})`, async () => {
        const { ref, x, y, acts } = fixture(c, loss, unsupervised, 11 + c.dims.length);
        const opts: PcOpts = { loss, ...c.opts };
        const model = gpuModelOf(rt(), c, ref);
        const activities = acts.map((a) => tensorOf(rt(), a));
        const output = tensorOf(rt(), y);
        const base = { loss, ...termOptions(c.opts), ...(unsupervised ? {} : { input: tensorOf(rt(), x) }) };
        const xr = unsupervised ? null : x;

        const layers = await (await pcEnergy(model, activities, output, { ...base, recordLayers: true })).toArray();
        expectClose(layers, jpcRecordLayersOrder(pcLayerEnergies(ref, acts, y, xr, opts)), 1e-4, 'layer energies');
        const total = await (await pcEnergy(model, activities, output, base)).item();
        const expectedTotal = pcEnergyTotal(ref, acts, y, xr, opts);
        expectClose([total], [expectedTotal], 1e-4, 'total energy (regularisers included)');

        const { energy, grads } = await computePcActivityGrad(model, activities, output, base);
        expectClose([await energy.item()], [expectedTotal], 1e-4, 'energy of computePcActivityGrad');
        expect(grads.map((g) => g.shape)).toEqual(acts.map((a) => [a.rows, a.cols]));
        expectClose(await readAll(grads), flat(pcActivityGrads(ref, acts, y, xr, opts)), 2e-4, 'activity gradients');

        const pg = await computePcParamGrads(model, activities, output, base);
        const expected = pcParamGrads(ref, acts, y, xr, opts);
        expectClose(await readAll(pg.weights), flat(expected.weights), 2e-4, 'weight gradients');
        if (c.bias)
          expectClose(
            await readAll(pg.biases.map((b) => b!)),
            Float64Array.from(expected.biases.flatMap((b) => [...b!])),
            2e-4,
            'bias gradients',
          );
        model.dispose();
      });
    }

    it(`${unsupervised ? 'unsupervised' : 'supervised'} SGD updates and an Euler solve match the reference`, async () => {
      const loss: Loss = 'mse';
      const { ref, x, y, acts } = fixture(c, loss, unsupervised, 29);
      const opts: PcOpts = { loss, ...c.opts };
      const xr = unsupervised ? null : x;
      const model = gpuModelOf(rt(), c, ref);
      const activities = acts.map((a) => tensorOf(rt(), a));
      const output = tensorOf(rt(), y);
      const base = { loss, ...termOptions(c.opts), ...(unsupervised ? {} : { input: tensorOf(rt(), x) }) };

      const optim = sgd({ lr: 0.5 });
      const upd = await updatePcActivities(model, activities, optim, optim.init(activities), output, {
        ...base,
        returnGrads: true,
      });
      const g = pcActivityGrads(ref, acts, y, xr, opts);
      const stepped = acts.map((a, i) =>
        mat(
          a.rows,
          a.cols,
          Float64Array.from(a.data, (v, j) => v - 0.5 * g[i]!.data[j]!),
        ),
      );
      expectClose(await readAll(upd.activities), flat(stepped), 1e-4, 'one SGD step on the activities');

      const f = (z: readonly Mat[]) =>
        pcActivityGrads(ref, z, y, xr, opts).map((m) =>
          mat(
            m.rows,
            m.cols,
            Float64Array.from(m.data, (v) => -v),
          ),
        );
      const solved = await solveInference(model, activities, output, {
        ...base,
        solver: 'euler',
        stepsizeController: 'constant',
        dt: 0.25,
        maxT1: 2,
      });
      const expected = integrateConstant(f, acts, { t1: 2, dt0: 0.25, method: 'euler', timeDtype: 'float32' });
      expect(solved.steps.accepted).toBe(expected.steps);
      expectClose(await readAll(solved.activities), flat(expected.y), 2e-4, 'Euler solve');
      model.dispose();
    });
  }
});

describe('adaptive solves of the generalised energy', () => {
  it('Heun + PID follows the reference step for step (μPC, skips, λ, activity decay; unsupervised)', async () => {
    for (const [c, unsupervised] of [CONFIGS[0]!, CONFIGS[3]!].flatMap(
      (c) =>
        [
          [c, false],
          [c, true],
        ] as const,
    )) {
      const { ref, x, y, acts } = fixture(c, 'mse', unsupervised, 41);
      const opts: PcOpts = { loss: 'mse', lambda: 0.7, activityDecay: 0.2 };
      const xr = unsupervised ? null : x;
      const model = gpuModelOf(rt(), c, ref);
      const f = (z: readonly Mat[]) =>
        pcActivityGrads(ref, z, y, xr, opts).map((m) =>
          mat(
            m.rows,
            m.cols,
            Float64Array.from(m.data, (v) => -v),
          ),
        );
      const expected = integrateHeunPid(f, acts, { t1: 5, rtol: 1e-3, atol: 1e-3, timeDtype: 'float32' });
      const solved = await solveInference(
        model,
        acts.map((a) => tensorOf(rt(), a)),
        tensorOf(rt(), y),
        {
          outputEnergyScaling: 0.7,
          activityDecay: 0.2,
          maxT1: 5,
          ...(unsupervised ? {} : { input: tensorOf(rt(), x) }),
        },
      );
      expect(solved.steps).toEqual({ accepted: expected.accepted, rejected: expected.rejected });
      expectClose(
        await readAll(solved.activities),
        flat(expected.y),
        1e-3,
        `${unsupervised ? 'unsupervised' : 'supervised'} Heun/PID solution`,
      );
      model.dispose();
    }
  });

  it('the steady-state event sees the whole state, a free z_0 included', async () => {
    const c = CONFIGS[2]!;
    const { ref, y, acts } = fixture(c, 'mse', true, 5);
    const model = gpuModelOf(rt(), c, ref);
    const r = await solveInference(
      model,
      acts.map((a) => tensorOf(rt(), a)),
      tensorOf(rt(), y),
      { maxT1: 2000, steadyState: { rtol: 1e-3, atol: 1e-4 } },
    );
    expect(r.steadyState).toBe(true);
    expect(r.t).toBeLessThan(2000);
    // At the steady state every gradient, z_0's too, is below the event's bound.
    const out = await readAll(r.activities);
    const state: Mat[] = [];
    let at = 0;
    for (const a of acts) {
      state.push(mat(a.rows, a.cols, out.subarray(at, at + a.data.length)));
      at += a.data.length;
    }
    const g = pcActivityGrads(ref, state, y, null, { loss: 'mse' });
    const n = g.reduce((s, m) => s + m.data.length, 0);
    const rmsF = Math.sqrt(g.reduce((s, m) => s + m.data.reduce((t, v) => t + v * v, 0), 0) / n);
    const rmsY = Math.sqrt(state.reduce((s, m) => s + m.data.reduce((t, v) => t + v * v, 0), 0) / n);
    expect(rmsF).toBeLessThan(1.01 * (1e-4 + 1e-3 * rmsY));
    model.dispose();
  });
});

describe('unsupervised training', () => {
  it('initActivitiesFromNormal draws σ·N(0, 1) per layer, seeded', async () => {
    const model = makeMlp(rt(), { seed: 2, inputDim: 30, width: 40, depth: 3, outputDim: 50, actFn: 'tanh' });
    const a = initActivitiesFromNormal(model, { seed: 9, batchSize: 64, mode: 'unsupervised', sigma: 0.5 });
    expect(a.map((t) => t.shape)).toEqual([
      [64, 30],
      [64, 40],
      [64, 40],
      [64, 50],
    ]);
    const s = initActivitiesFromNormal(model, { seed: 9, batchSize: 64, sigma: 0.5 });
    expect(s.map((t) => t.shape)).toEqual([
      [64, 40],
      [64, 40],
      [64, 50],
    ]);
    const values = await readAll(a);
    const mean = values.reduce((p, v) => p + v, 0) / values.length;
    const sd = Math.sqrt(values.reduce((p, v) => p + (v - mean) ** 2, 0) / values.length);
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(sd - 0.5)).toBeLessThan(0.01);
    // The same seed gives the same draws, layer by layer, in either mode.
    expect(await readAll(s)).toEqual(values.subarray(64 * 30));
    const again = initActivitiesFromNormal(model, { seed: 9, batchSize: 64, mode: 'unsupervised', sigma: 0.5 });
    expect(await readAll(again)).toEqual(values);
    model.dispose();
  });

  it('makePcStep without an input is normal init → inference → parameter update, all seeded', async () => {
    const make = () =>
      makeMlp(rt(), { seed: 4, inputDim: 6, width: 12, depth: 3, outputDim: 9, actFn: 'relu', useBias: true });
    const y = randomMat(new Random(1), 8, 9);
    const solver = { solver: 'heun' as const, stepsizeController: 'constant' as const, dt: 0.5, maxT1: 3 };
    const a = make();
    const optimA = sgd({ lr: 0.1 });
    const stateA = optimA.init(a);
    const r = await makePcStep(a, optimA, stateA, tensorOf(rt(), y), {
      seed: 77,
      sigma: 0.1,
      activityNorms: true,
      ...solver,
    });
    expect(r.loss).toBeNull();
    expect(r.energies.shape).toEqual([3]);
    expect(r.activityNorms!.shape).toEqual([4]);

    // The same by hand: normal init (same seed), solve, update at the solution.
    const b = make();
    const optimB = sgd({ lr: 0.1 });
    const stateB = optimB.init(b);
    const init = initActivitiesFromNormal(b, { seed: 77, batchSize: 8, mode: 'unsupervised', sigma: 0.1 });
    const solved = await solveInference(b, init, tensorOf(rt(), y), solver);
    const energies = await (await pcEnergy(b, solved.activities, tensorOf(rt(), y), { recordLayers: true })).toArray();
    expectClose(await r.energies.toArray(), energies, 1e-6, 'equilibrium energies');
    await updatePcParams(b, solved.activities, optimB, stateB, tensorOf(rt(), y), {});
    const [pa, pb] = await Promise.all([a.toArrays(), b.toArrays()]);
    expect(flat(pa.weights.map((w) => mat(1, w.length, w)))).toEqual(flat(pb.weights.map((w) => mat(1, w.length, w))));
    a.dispose();
    b.dispose();
  });

  it('supervised steps with skips, μPC and discrete inference agree with updates by hand', async () => {
    const opts = {
      seed: 5,
      inputDim: 7,
      width: 8,
      depth: 5,
      outputDim: 4,
      actFn: 'relu' as const,
      paramType: 'mupc' as const,
      skipModel: makeSkipModel(5),
    };
    const a = makeMlp(rt(), opts);
    const b = makeMlp(rt(), opts);
    const rng = new Random(3);
    const x = tensorOf(rt(), randomMat(rng, 6, 7));
    const y = tensorOf(rt(), oneHotMat(rng, 6, 4));
    const inference = sgd({ lr: 0.5 });
    const [optA, optB] = [sgd({ lr: 0.05 }), sgd({ lr: 0.05 })];
    const [sa, sb] = [optA.init(a), optB.init(b)];
    await makePcStep(a, optA, sa, y, { input: x, solver: inference, steps: 5, weightDecay: 0.01, activityDecay: 0.1 });
    let acts = await initActivitiesWithFfwd(b, x);
    const actState = inference.init(acts);
    for (let i = 0; i < 5; i++)
      acts = (await updatePcActivities(b, acts, inference, actState, y, { input: x, activityDecay: 0.1 })).activities;
    await updatePcParams(b, acts, optB, sb, y, { input: x, weightDecay: 0.01, activityDecay: 0.1 });
    const [pa, pb] = await Promise.all([a.toArrays(), b.toArrays()]);
    pa.weights.forEach((w, i) => expectClose(w, pb.weights[i]!, 1e-5, `layer ${i} weights`));
    a.dispose();
    b.dispose();
  });
});
