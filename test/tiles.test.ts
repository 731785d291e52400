// Kernel variants the default adapter here never picks: the GPU tile configuration, and an odd one, checked
// against the float64 reference (the software adapter's own configuration is the default everywhere else).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTIVATIONS, activityGrads, ffwd, jpcRecordLayersOrder, layerEnergies, paramGrads, solveHeunPid, type Loss } from './reference/jpc64.js';
import { init, type Runtime } from '../src/node.js';
import { computePcActivityGrad, computePcParamGrads, pcEnergy } from '../src/pc/energy.js';
import { solveInference } from '../src/pc/infer.js';
import { WpcArgumentError } from '../src/runtime/errors.js';
import { Random } from '../src/util/random.js';
import { expectClose, flat, gpuModel, oneHotMat, randomMat, randomRefModel, readAll, tensorOf } from './helpers.js';

for (const tiles of [
  { wg: 64, tm: 4, tn: 4 },
  { wg: 3, tm: 5, tn: 3 },
]) {
  describe(`tiles wg ${tiles.wg}, ${tiles.tm}×${tiles.tn}`, () => {
    let rt: Runtime;
    beforeAll(async () => {
      rt = await init({ kernels: { tiles } });
    });
    afterAll(() => rt.dispose());

    it('energies, gradients and a Heun + PID solve match the reference on random networks', async () => {
      const rng = new Random(77 + tiles.wg);
      for (let trial = 0; trial < 6; trial++) {
        const dims = Array.from({ length: 3 + rng.nextInt(3) }, () => 1 + rng.nextInt(45));
        const B = 1 + rng.nextInt(90);
        const act = ACTIVATIONS[(trial * 3 + tiles.wg) % ACTIVATIONS.length]!;
        const loss: Loss = trial % 2 === 0 && dims.at(-1)! > 1 ? 'ce' : 'mse';
        const what = `dims ${dims.join('-')}, B ${B}, ${act}, ${loss}`;
        const ref = randomRefModel(900 + trial, dims, act, trial % 3 !== 0);
        const x = randomMat(rng, B, dims[0]!);
        const y = loss === 'ce' ? oneHotMat(rng, B, dims.at(-1)!) : randomMat(rng, B, dims.at(-1)!);
        const acts = ffwd(ref, x).map((m) => ({ ...m, data: Float64Array.from(m.data, (v) => Math.fround(v + 0.3 * rng.normal())) }));
        const model = gpuModel(rt, ref);
        const [input, output] = [tensorOf(rt, x), tensorOf(rt, y)];
        const activities = acts.map((a) => tensorOf(rt, a));
        expectClose(
          await (await pcEnergy(model, activities, output, { input, loss, recordLayers: true })).toArray(),
          jpcRecordLayersOrder(layerEnergies(ref, acts, y, x, loss)),
          1e-4,
          `${what}: energies`,
        );
        expectClose(await readAll((await computePcActivityGrad(model, activities, output, { input, loss })).grads), flat(activityGrads(ref, acts, y, x, loss)), 1e-4, `${what}: activity gradients`);
        const pg = await computePcParamGrads(model, activities, output, { input, loss });
        expectClose(await readAll(pg.weights), flat(paramGrads(ref, acts, y, x, loss).weights), 1e-4, `${what}: weight gradients`);
        const sol = solveHeunPid(ref, acts, y, x, { maxT1: 5, dt0: 0.5, rtol: 1e-3, atol: 1e-3, loss, timeDtype: 'float32' });
        const r = await solveInference(model, activities, output, { input, loss, maxT1: 5, dt: 0.5 });
        expect(r.steps, `${what}: PID steps`).toEqual({ accepted: sol.accepted, rejected: sol.rejected });
        expectClose(await readAll(r.activities), flat(sol.activities), 1e-4, `${what}: solution`);
        model.dispose();
      }
    });
  });
}

describe('tile option validation', () => {
  it('refuses tiles outside the limits, naming the field', async () => {
    await expect(init({ kernels: { tiles: { wg: 0, tm: 4, tn: 4 } } })).rejects.toThrow(WpcArgumentError);
    await expect(init({ kernels: { tiles: { wg: 8, tm: 64, tn: 4 } } })).rejects.toThrow(/options\.kernels\.tiles\.tm must be an integer in \[1, 32\], got 64/);
    await expect(init({ kernels: { tiles: { wg: 8, tm: 4, tn: 4, extra: 1 } as never } })).rejects.toThrow(/unknown option "extra"/);
  });
});
