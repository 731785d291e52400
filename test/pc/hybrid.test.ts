/**
 * Generative and hybrid PC on the GPU: testGenerativePc, initActivitiesWithAmort, hpcEnergy,
 * computeHpcParamGrads against the float64 reference; makeHpcStep and testHpc against the same computation
 * done step by step with the lower-level functions.
 */
import { describe, expect, it } from 'vitest';
import {
  computeAccuracy,
  computeHpcParamGrads,
  computePcParamGrads,
  hpcEnergy,
  initActivitiesFromNormal,
  initActivitiesWithAmort,
  initActivitiesWithFfwd,
  makeHpcStep,
  makeMlp,
  pcEnergy,
  sgd,
  solveInference,
  testGenerativePc,
  testHpc,
  type Model,
  type Tensor,
} from '../../src/node.js';
import { Random } from '../../src/util/random.js';
import { type Mat, type RefModel, mat } from '../reference/jpc64.js';
import { hpcLayerEnergies, hpcParamGrads, initActivitiesWithAmort as refAmort } from '../reference/variants64.js';
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

const rt = useRuntime();

const GEN_DIMS = [4, 9, 7, 12];
const AMORT_DIMS = [...GEN_DIMS].reverse();
const B = 6;

function pair(seed: number): { gRef: RefModel; aRef: RefModel; g: Model; a: Model } {
  const gRef = randomRefModel(seed, GEN_DIMS, 'tanh', true);
  const aRef = randomRefModel(seed + 1, AMORT_DIMS, 'tanh', true);
  return { gRef, aRef, g: gpuModel(rt(), gRef), a: gpuModel(rt(), aRef) };
}

async function mats(ts: readonly Tensor[]): Promise<Mat[]> {
  return Promise.all(ts.map(async (t) => mat(t.shape[0]!, t.shape[1]!, await t.toArray())));
}

describe('hybrid PC', () => {
  it('initActivitiesWithAmort, hpcEnergy and computeHpcParamGrads match the reference (supervised and unsupervised)', async () => {
    const { gRef, aRef, g, a } = pair(3);
    const rng = new Random(5);
    const image = randomMat(rng, B, 12);
    const label = oneHotMat(rng, B, 4);
    const amort = await initActivitiesWithAmort(a, g, tensorOf(rt(), image));
    const expectedAmort = refAmort(aRef, gRef, image);
    expect(amort.map((t) => t.shape)).toEqual(expectedAmort.map((m) => [m.rows, m.cols]));
    expectClose(await readAll(amort), flat(expectedAmort), 1e-4, 'amortised activities');
    const amortMats = await mats(amort);

    for (const unsupervised of [false, true]) {
      // An "equilibrium": any activities of the generator's shapes will do for the energy.
      const equilib = (unsupervised ? GEN_DIMS : GEN_DIMS.slice(1)).map((d) => randomMat(rng, B, d));
      const equilibT = equilib.map((m) => tensorOf(rt(), m));
      const opts = { input: tensorOf(rt(), image), ...(unsupervised ? {} : { output: tensorOf(rt(), label) }) };
      const layers = await (await hpcEnergy(a, equilibT, amort, { ...opts, recordLayers: true })).toArray();
      const expected = hpcLayerEnergies(aRef, equilib, amortMats, image, unsupervised ? null : label);
      expectClose(layers, expected, 1e-4, `${unsupervised ? 'unsupervised' : 'supervised'} hPC layer energies`);
      const total = await (await hpcEnergy(a, equilibT, amort, opts)).item();
      expectClose([total], [expected.reduce((p, q) => p + q, 0)], 1e-4, 'hPC total');
      const grads = await computeHpcParamGrads(a, equilibT, amort, opts);
      const ref = hpcParamGrads(aRef, equilib, amortMats, image, unsupervised ? null : label);
      expectClose(await readAll(grads.weights), flat(ref.weights), 2e-4, 'hPC weight gradients');
      expectClose(
        await readAll(grads.biases.map((b) => b!)),
        Float64Array.from(ref.biases.flatMap((b) => [...b!])),
        2e-4,
        'hPC bias gradients',
      );
    }
    g.dispose();
    a.dispose();
  });

  it('makeHpcStep is amortised init → generator inference → both updates, as by hand', async () => {
    const rng = new Random(8);
    const image = tensorOf(rt(), randomMat(rng, B, 12));
    const label = tensorOf(rt(), oneHotMat(rng, B, 4));
    const solver = { solver: 'heun' as const, stepsizeController: 'constant' as const, dt: 0.5, maxT1: 4 };
    const lr = 0.1;
    for (const supervised of [true, false]) {
      const A = pair(11);
      const Bm = pair(11);
      const optims = [sgd({ lr }), sgd({ lr })] as const;
      const states = [optims[0].init(A.g), optims[1].init(A.a)] as const;
      const r = await makeHpcStep(A.g, A.a, optims, states, image, {
        ...solver,
        ...(supervised ? { input: label } : {}),
        returnActivities: true,
      });

      // By hand on the twin models.
      const amort = await initActivitiesWithAmort(Bm.a, Bm.g, image);
      const start = supervised ? amort.slice(1) : amort;
      const solved = await solveInference(Bm.g, start, image, { ...solver, ...(supervised ? { input: label } : {}) });
      expectClose(await readAll(r.activities!.amortised), await readAll(amort), 1e-6, 'amortised activities');
      expectClose(await readAll(r.activities!.equilibrium), await readAll(solved.activities), 1e-6, 'equilibrium');
      const genEnergies = await pcEnergy(Bm.g, solved.activities, image, {
        ...(supervised ? { input: label } : {}),
        recordLayers: true,
      });
      expectClose(await r.energies.generator.toArray(), await genEnergies.toArray(), 1e-5, 'generator energies');
      const hpcOpts = { input: image, ...(supervised ? { output: label } : {}) };
      const amortEnergies = await hpcEnergy(Bm.a, solved.activities, amort, { ...hpcOpts, recordLayers: true });
      expectClose(await r.energies.amortiser.toArray(), await amortEnergies.toArray(), 1e-5, 'amortiser energies');
      const gGrads = await computePcParamGrads(Bm.g, solved.activities, image, supervised ? { input: label } : {});
      const aGrads = await computeHpcParamGrads(Bm.a, solved.activities, amort, hpcOpts);

      // Losses: the generator's feedforward error and the amortiser's guess, both plain element means.
      const labelData = await label.toArray();
      const guess = await amort[0]!.toArray();
      const z0 = supervised ? labelData : await solved.activities[0]!.toArray();
      const amortLoss = guess.reduce((s, v, i) => s + (z0[i]! - v) ** 2, 0) / guess.length;
      expectClose([await r.losses.amortiser.item()], [amortLoss], 1e-5, 'amortiser loss');
      if (supervised) {
        const pred = await (await initActivitiesWithFfwd(Bm.g, label)).at(-1)!.toArray();
        const img = await image.toArray();
        expectClose(
          [await r.losses.generator!.item()],
          [pred.reduce((s, v, i) => s + (img[i]! - v) ** 2, 0) / pred.length],
          1e-5,
          'generator loss',
        );
      } else {
        expect(r.losses.generator).toBeNull();
      }

      // The updates: θ − lr·∇ for both models.
      for (const [updated, before, grads] of [
        [A.g, Bm.g, gGrads],
        [A.a, Bm.a, aGrads],
      ] as const) {
        const [u, b] = await Promise.all([updated.toArrays(), before.toArrays()]);
        const gw = await Promise.all(grads.weights.map((t) => t!.toArray()));
        u.weights.forEach((w, i) =>
          expectClose(
            w,
            Float64Array.from(b.weights[i]!, (v, j) => v - lr * gw[i]![j]!),
            1e-5,
            `updated weights ${i}`,
          ),
        );
      }
      for (const m of [A.g, A.a, Bm.g, Bm.a]) m.dispose();
    }
  });

  it('testHpc reports the amortised, hybrid and generator-only accuracies of those inferences', async () => {
    const { g, a } = pair(21);
    const rng = new Random(2);
    const image = tensorOf(rt(), randomMat(rng, B, 12));
    const label = tensorOf(rt(), oneHotMat(rng, B, 4));
    const solver = { stepsizeController: { pid: { rtol: 1e-3, atol: 1e-3 } }, maxT1: 20 };
    const r = await testHpc(g, a, image, label, { seed: 4, sigma: 0.1, ...solver });
    const amort = await initActivitiesWithAmort(a, g, image);
    expect(r.amortAcc).toBeCloseTo(await (await computeAccuracy(label, amort[0]!)).item(), 4);
    const hybrid = await solveInference(g, amort, image, solver);
    expect(r.hpcAcc).toBeCloseTo(await (await computeAccuracy(label, hybrid.activities[0]!)).item(), 4);
    const random = initActivitiesFromNormal(g, { seed: 4, batchSize: B, mode: 'unsupervised', sigma: 0.1 });
    const alone = await solveInference(g, random, image, solver);
    expect(r.genAcc).toBeCloseTo(await (await computeAccuracy(label, alone.activities[0]!)).item(), 4);
    const preds = (await initActivitiesWithFfwd(g, label)).at(-1)!;
    expect(await r.outputPreds.toArray()).toEqual(await preds.toArray());
    g.dispose();
    a.dispose();
  });

  it('refuses mismatched models and inputs', async () => {
    const g = makeMlp(rt(), { seed: 1, inputDim: 4, width: 9, depth: 3, outputDim: 12, actFn: 'relu' });
    const wrong = makeMlp(rt(), { seed: 1, inputDim: 12, width: 8, depth: 3, outputDim: 4, actFn: 'relu' });
    const image = tensorOf(rt(), randomMat(new Random(1), B, 12));
    await expect(initActivitiesWithAmort(wrong, g, image)).rejects.toThrow(
      /amortiser's widths must be the generator's reversed \(12→9→9→4\), got 12→8→8→4/,
    );
    const a = makeMlp(rt(), { seed: 2, inputDim: 12, width: 9, depth: 3, outputDim: 4, actFn: 'relu' });
    const amort = await initActivitiesWithAmort(a, g, image);
    await expect(hpcEnergy(a, amort.slice(1), amort, { input: image })).rejects.toThrow(
      /options.output .* is required with a supervised equilibrium/,
    );
    await expect(hpcEnergy(a, amort.slice(2), amort, { input: image })).rejects.toThrow(/equilibActivities/);
    const optim = sgd({ lr: 0.1 });
    const st = optim.init(g);
    await expect(makeHpcStep(g, a, [optim, optim], [st, st], image, {})).rejects.toThrow(
      /optState was made for|two different states/,
    );
    for (const m of [g, wrong, a]) m.dispose();
  });
});

describe('generative PC', () => {
  it('testGenerativePc infers z_0 from random draws with the output clamped and scores it', async () => {
    const ref = randomRefModel(30, GEN_DIMS, 'relu', true);
    const model = gpuModel(rt(), ref);
    const rng = new Random(6);
    const image = tensorOf(rt(), randomMat(rng, B, 12));
    const label = tensorOf(rt(), oneHotMat(rng, B, 4));
    const solver = { maxT1: 30, stepsizeController: 'constant' as const, dt: 0.5, solver: 'euler' as const };
    const r = await testGenerativePc(model, image, label, { seed: 12, ...solver });
    const init = initActivitiesFromNormal(model, { seed: 12, batchSize: B, mode: 'unsupervised' });
    const solved = await solveInference(model, init, image, solver);
    expect(r.acc).toBeCloseTo(await (await computeAccuracy(label, solved.activities[0]!)).item(), 4);
    const ffwd = await initActivitiesWithFfwd(model, label);
    expect(await r.preds.toArray()).toEqual(await ffwd.at(-1)!.toArray());
    // The inferred z_0 explains the image better than the draws it started from.
    const before = await (await pcEnergy(model, init, image, {})).item();
    const after = await (await pcEnergy(model, solved.activities, image, {})).item();
    expect(after).toBeLessThan(before);
    model.dispose();
  });
});
