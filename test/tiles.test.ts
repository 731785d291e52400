// Kernel variants the default adapter here does not pick: the GPU tile configuration, the blocked CPU layout,
// odd blocked and subgroup tiles, checked against the float64 reference (the adapter's default configuration
// — on lavapipe the subgroup layout, wg 8, 8×64 for the layer kernels and 8×32 for lone products — is what
// every other test file runs).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTIVATIONS, activityGrads, ffwd, jpcRecordLayersOrder, layerEnergies, paramGrads, solveHeunPid, type Loss } from './reference/jpc64.js';
import { init, type Runtime } from '../src/node.js';
import { computePcActivityGrad, computePcParamGrads, pcEnergy } from '../src/pc/energy.js';
import { solveInference } from '../src/pc/infer.js';
import { WpcArgumentError } from '../src/runtime/errors.js';
import { Random } from '../src/util/random.js';
import { matmul } from '../src/pc/linalg.js';
import { defaultTiles } from '../src/kernels/index.js';
import { expectClose, flat, gpuModel, oneHotMat, randomMat, randomRefModel, readAll, tensorOf } from './helpers.js';

const probe = await init();
const subgroupSize = probe.adapter.subgroupSize;
probe.dispose();

const TILES: { wg: number; tm: number; tn: number; subgroup?: boolean }[] = [
  { wg: 64, tm: 4, tn: 4 },
  { wg: 3, tm: 5, tn: 3 },
  { wg: 8, tm: 16, tn: 8 },
];
// Subgroup tiles: one lane's rows per workgroup (tm 1) and an odd row count with two B loads per lane.
if (subgroupSize !== null) TILES.push({ wg: subgroupSize, tm: 1, tn: subgroupSize, subgroup: true }, { wg: subgroupSize, tm: 3, tn: 2 * subgroupSize, subgroup: true });

for (const tiles of TILES) {
  describe(`tiles wg ${tiles.wg}, ${tiles.tm}×${tiles.tn}${tiles.subgroup ? ', subgroup' : ''}`, () => {
    let rt: Runtime;
    beforeAll(async () => {
      rt = await init({ kernels: { tiles } });
    });
    afterAll(() => rt.dispose());

    it('matmul (all transposes, ragged edges) matches a float64 product', async () => {
      const rng = new Random(5 + tiles.tm);
      for (const [m, k, n] of [[1, 1, 1], [7, 13, 5], [33, 20, 70], [64, 31, 9]] as const) {
        for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
          const a = Float32Array.from({ length: m * k }, () => rng.normal());
          const b = Float32Array.from({ length: k * n }, () => rng.normal());
          const at = (i: number, p: number) => (ta ? a[p * m + i]! : a[i * k + p]!);
          const bt = (p: number, j: number) => (tb ? b[j * k + p]! : b[p * n + j]!);
          const want = new Float64Array(m * n);
          for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) want[i * n + j]! += at(i, p) * bt(p, j);
          const ga = rt.tensor(a, ta ? [k, m] : [m, k]);
          const gb = rt.tensor(b, tb ? [n, k] : [k, n]);
          const c = await matmul(ga, gb, { transA: ta, transB: tb });
          expectClose(await c.toArray(), want, 1e-5, `${m}×${k}×${n}, transposes ${ta}/${tb}`);
          for (const t of [ga, gb, c]) t.dispose();
        }
      }
    });

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

describe('default tiles', () => {
  it('follow the adapter: subgroup tiles on an 8-wide CPU subgroup (narrower for lone products), blocked otherwise', () => {
    const cpu = { vendor: '', architecture: 'software', device: '', description: 'llvmpipe', isSoftware: true };
    expect(defaultTiles({ ...cpu, subgroupSize: 8 })).toEqual({ wg: 8, tm: 8, tn: 64, subgroup: true });
    expect(defaultTiles({ ...cpu, subgroupSize: 8 }, 'gemm')).toEqual({ wg: 8, tm: 8, tn: 32, subgroup: true });
    expect(defaultTiles({ ...cpu, subgroupSize: 4 })).toEqual({ wg: 8, tm: 16, tn: 8 });
    expect(defaultTiles({ ...cpu, subgroupSize: null })).toEqual({ wg: 8, tm: 16, tn: 8 });
    expect(defaultTiles({ ...cpu, isSoftware: false, subgroupSize: 32 })).toEqual({ wg: 64, tm: 4, tn: 4 });
  });
});

describe('tile option validation', () => {
  it('refuses tiles outside the limits, naming the field', async () => {
    await expect(init({ kernels: { tiles: { wg: 0, tm: 4, tn: 4 } } })).rejects.toThrow(WpcArgumentError);
    await expect(init({ kernels: { tiles: { wg: 8, tm: 64, tn: 4 } } })).rejects.toThrow(/options\.kernels\.tiles\.tm must be an integer in \[1, 32\], got 64/);
    await expect(init({ kernels: { tiles: { wg: 8, tm: 4, tn: 4, extra: 1 } as never } })).rejects.toThrow(/unknown option "extra"/);
    await expect(init({ kernels: { tiles: { wg: 8, tm: 4, tn: 4, subgroup: 1 } as never } })).rejects.toThrow(/options\.kernels\.tiles\.subgroup must be a boolean, got 1/);
    if (subgroupSize !== null) {
      await expect(init({ kernels: { tiles: { wg: subgroupSize * 2, tm: 4, tn: 32, subgroup: true } } })).rejects.toThrow(
        new RegExp(`options\\.kernels\\.tiles\\.wg must equal the subgroup size ${subgroupSize} when subgroup is true, got ${subgroupSize * 2}`),
      );
      await expect(init({ kernels: { tiles: { wg: subgroupSize, tm: 4, tn: subgroupSize + 1, subgroup: true } } })).rejects.toThrow(/options\.kernels\.tiles\.tn must be a multiple of wg/);
      await expect(init({ kernels: { tiles: { wg: subgroupSize, tm: 32, tn: 128, subgroup: true } } })).rejects.toThrow(/at most 512 accumulators per lane, got 32 × 128 = 4096/);
    }
  });
});
