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
} from './reference/jpc64.js';
import { computePcActivityGrad, computePcParamGrads, initActivitiesWithFfwd, pcEnergy } from '../src/pc/energy.js';
import { Random } from '../src/util/random.js';
import { expectClose, flat, gpuModel, oneHotMat, randomMat, randomRefModel, readAll, tensorOf, useRuntime } from './helpers.js';

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

        const energies = await (await pcEnergy(model, activities, output, { input, loss, recordLayers: true })).toArray();
        const expectedE = jpcRecordLayersOrder(layerEnergies(ref, acts, y, x, loss));
        expectClose(energies, expectedE, 1e-4, `${act}/${loss}/case ${ci}: layer energies`);
        const total = await (await pcEnergy(model, activities, output, { input, loss })).item();
        expectClose([total], [expectedE.reduce((a, b) => a + b, 0)], 1e-4, 'total energy');

        const { energy, grads } = await computePcActivityGrad(model, activities, output, { input, loss });
        expectClose([await energy.item()], [expectedE.reduce((a, b) => a + b, 0)], 1e-4, 'energy from computePcActivityGrad');
        expectClose(await readAll(grads), flat(activityGrads(ref, acts, y, x, loss)), 1e-4, `${act}/${loss}/case ${ci}: activity gradients`);

        const pg = await computePcParamGrads(model, activities, output, { input, loss });
        const expectedP = paramGrads(ref, acts, y, x, loss);
        expectClose(await readAll(pg.weights), flat(expectedP.weights), 1e-4, `${act}/${loss}/case ${ci}: weight gradients`);
        const biasGrads = pg.biases.filter((b) => b !== null);
        if (ci !== 1) {
          expect(biasGrads.length).toBe(dims.length - 1);
          expectClose(await readAll(biasGrads), Float64Array.from(expectedP.biases.flatMap((b) => [...b!])), 1e-4, 'bias gradients');
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
