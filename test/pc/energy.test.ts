import { describe, expect, it } from 'vitest';
import {
  ACTIVATIONS,
  activityGrads,
  ffwd,
  jpcRecordLayersOrder,
  layerEnergies,
  paramGrads,
  type Act,
  type Loss,
} from '../reference/jpc64.js';
import { computePcActivityGrad, computePcParamGrads, initActivitiesWithFfwd, pcEnergy } from '../../src/pc/energy.js';
import { mlpFromWeights } from '../../src/pc/model.js';
import { sgd } from '../../src/pc/optim.js';
import { makePcStep } from '../../src/pc/train.js';
import { Random } from '../../src/util/random.js';
import {
  expectClose,
  flat,
  gpuModel,
  oneHotMat,
  perturbedActivities,
  randomMat,
  randomRefModel,
  readAll,
  tensorOf,
  useRuntime,
} from '../support/helpers.js';

const rt = useRuntime();

// Shapes that are not multiples of any tile size, a one-hidden-layer net and a deeper one.
const CASES: { dims: number[]; B: number }[] = [
  { dims: [5, 7, 6, 3], B: 4 },
  { dims: [13, 17], B: 3 },
  { dims: [9, 33, 20, 21, 11], B: 37 },
];

describe.each(ACTIVATIONS.map((a) => [a]))('%s', (act: Act) => {
  for (const loss of ['mse', 'ce'] as Loss[]) {
    it(`energies and gradients match the float64 reference (${loss})`, async () => {
      for (const [ci, { dims, B }] of CASES.entries()) {
        if (dims.length < 3) continue; // the reference needs a hidden layer
        const rng = new Random(100 + ci);
        const ref = randomRefModel(7 + ci, dims, act, ci !== 1);
        const x = randomMat(rng, B, dims[0]!);
        const y = loss === 'ce' ? oneHotMat(rng, B, dims.at(-1)!) : randomMat(rng, B, dims.at(-1)!);
        // Activities near the feedforward values, perturbed so every error is non-zero.
        const acts = ffwd(ref, x).map((m) => {
          const p = randomMat(rng, m.rows, m.cols, 0.3);
          return { ...p, data: Float64Array.from(m.data, (v, i) => Math.fround(v + p.data[i]!)) };
        });
        const model = gpuModel(rt(), ref);
        const input = tensorOf(rt(), x);
        const output = tensorOf(rt(), y);
        const activities = acts.map((a) => tensorOf(rt(), a));

        const energies = await (
          await pcEnergy(model, activities, output, { input, loss, recordLayers: true })
        ).toArray();
        const expectedE = jpcRecordLayersOrder(layerEnergies(ref, acts, y, x, loss));
        expectClose(energies, expectedE, 1e-4, `${act}/${loss}/case ${ci}: layer energies`);
        const total = await (await pcEnergy(model, activities, output, { input, loss })).item();
        expectClose([total], [expectedE.reduce((a, b) => a + b, 0)], 1e-4, 'total energy');

        const { energy, grads } = await computePcActivityGrad(model, activities, output, { input, loss });
        expectClose(
          [await energy.item()],
          [expectedE.reduce((a, b) => a + b, 0)],
          1e-4,
          'energy from computePcActivityGrad',
        );
        expectClose(
          await readAll(grads),
          flat(activityGrads(ref, acts, y, x, loss)),
          1e-4,
          `${act}/${loss}/case ${ci}: activity gradients`,
        );

        const pg = await computePcParamGrads(model, activities, output, { input, loss });
        const expectedP = paramGrads(ref, acts, y, x, loss);
        expectClose(
          await readAll(pg.weights),
          flat(expectedP.weights),
          1e-4,
          `${act}/${loss}/case ${ci}: weight gradients`,
        );
        const biasGrads = pg.biases.filter((b) => b !== null);
        if (ci !== 1) {
          expect(biasGrads.length).toBe(dims.length - 1);
          expectClose(
            await readAll(biasGrads),
            Float64Array.from(expectedP.biases.flatMap((b) => [...b!])),
            1e-4,
            'bias gradients',
          );
        }
        model.dispose();
      }
    });
  }

  it('feedforward initialisation matches the reference', async () => {
    const { dims, B } = CASES[2]!;
    const ref = randomRefModel(3, dims, act, true);
    const x = randomMat(new Random(4), B, dims[0]!);
    const model = gpuModel(rt(), ref);
    const acts = await initActivitiesWithFfwd(model, tensorOf(rt(), x));
    expect(acts.map((a) => a.shape)).toEqual(dims.slice(1).map((d) => [B, d]));
    expectClose(await readAll(acts), flat(ffwd(ref, x)), 1e-4, `${act}: ffwd activities`);
    model.dispose();
  });
});

describe('random shapes (seeded), including B = 1 and width-1 layers', () => {
  it('energies and both gradients match the reference for 12 random networks', async () => {
    const rng = new Random(2024);
    for (let trial = 0; trial < 12; trial++) {
      const depth = 2 + rng.nextInt(4);
      const dims = Array.from({ length: depth + 1 }, () => 1 + rng.nextInt(trial < 3 ? 3 : 40));
      const B = trial === 0 ? 1 : 1 + rng.nextInt(70);
      const act = ACTIVATIONS[rng.nextInt(ACTIVATIONS.length)]!;
      const loss: Loss = dims.at(-1)! > 1 && rng.nextInt(2) === 1 ? 'ce' : 'mse';
      const what = `trial ${trial}: dims ${dims.join('-')}, B ${B}, ${act}, ${loss}`;
      const ref = randomRefModel(500 + trial, dims, act, rng.nextInt(2) === 1);
      const x = randomMat(rng, B, dims[0]!);
      const y = loss === 'ce' ? oneHotMat(rng, B, dims.at(-1)!) : randomMat(rng, B, dims.at(-1)!);
      const acts = perturbedActivities(rng, ref, x);
      const model = gpuModel(rt(), ref);
      const activities = acts.map((a) => tensorOf(rt(), a));
      const input = tensorOf(rt(), x);
      const output = tensorOf(rt(), y);
      const energies = await (await pcEnergy(model, activities, output, { input, loss, recordLayers: true })).toArray();
      expectClose(energies, jpcRecordLayersOrder(layerEnergies(ref, acts, y, x, loss)), 1e-4, `${what}: energies`);
      const { grads } = await computePcActivityGrad(model, activities, output, { input, loss });
      expectClose(
        await readAll(grads),
        flat(activityGrads(ref, acts, y, x, loss)),
        1e-4,
        `${what}: activity gradients`,
      );
      const pg = await computePcParamGrads(model, activities, output, { input, loss });
      expectClose(
        await readAll(pg.weights),
        flat(paramGrads(ref, acts, y, x, loss).weights),
        1e-4,
        `${what}: weight gradients`,
      );
      model.dispose();
    }
  });

  it('a one-layer model (no hidden activities) trains as plain gradient descent on its output energy', async () => {
    const rng = new Random(8);
    const [B, d0, d1] = [5, 4, 3];
    const W = Float32Array.from({ length: d1 * d0 }, () => rng.normal());
    const b = Float32Array.from({ length: d1 }, () => rng.normal());
    const x = Float32Array.from({ length: B * d0 }, () => rng.normal());
    const y = Float32Array.from({ length: B * d1 }, () => rng.normal());
    const model = mlpFromWeights(rt(), { dims: [d0, d1], weights: [W], biases: [b], actFn: 'tanh' });
    const optim = sgd({ lr: 0.1 });
    const r = await makePcStep(model, optim, optim.init(model), y, { input: x });
    expect(r.steps.rejected).toBe(0);
    // F = ½Σ‖y − (Wx + b)‖²/B; one SGD step: W ← W + lr·eᵀx/B, b ← b + lr·Σe/B.
    const e = new Float64Array(B * d1);
    let F = 0;
    for (let s = 0; s < B; s++) {
      for (let o = 0; o < d1; o++) {
        let p = b[o]!;
        for (let i = 0; i < d0; i++) p += W[o * d0 + i]! * x[s * d0 + i]!;
        e[s * d1 + o] = y[s * d1 + o]! - p;
        F += 0.5 * e[s * d1 + o]! ** 2;
      }
    }
    expectClose(await r.energies.toArray(), [F / B], 1e-4, 'energy');
    const expectedW = Float64Array.from(W, (w, k) => {
      const [o, i] = [Math.floor(k / d0), k % d0];
      let g = 0;
      for (let s = 0; s < B; s++) g += e[s * d1 + o]! * x[s * d0 + i]!;
      return w + (0.1 * g) / B;
    });
    const expectedB = Float64Array.from(b, (v, o) => {
      let g = 0;
      for (let s = 0; s < B; s++) g += e[s * d1 + o]!;
      return v + (0.1 * g) / B;
    });
    const { weights, biases } = await model.toArrays();
    expectClose(weights[0]!, expectedW, 1e-4, 'weights');
    expectClose(biases[0]!, expectedB, 1e-4, 'bias');
    model.dispose();
  });
});
