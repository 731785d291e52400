// Checks shared by the tile tests (test/kernels/tiles.test.ts, test/full/tile-layouts.test.ts): a product and the
// layer kernels of a reference problem against float64.
import {
  type Mat,
  type RefModel,
  activityGrads,
  jpcRecordLayersOrder,
  layerEnergies,
  paramGrads,
} from '../reference/jpc64.js';
import type { Runtime } from '../../src/node.js';
import { computePcActivityGrad, computePcParamGrads, pcEnergy } from '../../src/pc/energy.js';
import type { Random } from '../../src/util/random.js';
import { matmul } from '../../src/pc/linalg.js';
import { expectClose, flat, gpuModel, readAll, tensorOf } from './helpers.js';

/** matmul of random normal operands (op(A) m×k, op(B) k×n) against the float64 product. */
export async function expectMatmul(
  rt: Runtime,
  rng: Random,
  [m, k, n]: readonly [number, number, number],
  ta: boolean,
  tb: boolean,
  tol: number,
): Promise<void> {
  const a = Float32Array.from({ length: m * k }, () => rng.normal());
  const b = Float32Array.from({ length: k * n }, () => rng.normal());
  const at = (i: number, p: number) => (ta ? a[p * m + i]! : a[i * k + p]!);
  const bt = (p: number, j: number) => (tb ? b[j * k + p]! : b[p * n + j]!);
  const want = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) want[i * n + j]! += at(i, p) * bt(p, j);
  const ga = rt.tensor(a, ta ? [k, m] : [m, k]);
  const gb = rt.tensor(b, tb ? [n, k] : [k, n]);
  const c = await matmul(ga, gb, { transA: ta, transB: tb });
  expectClose(await c.toArray(), want, tol, `${m}×${k}×${n}, transposes ${ta}/${tb}`);
  for (const t of [ga, gb, c]) t.dispose();
}

/**
 * Uploads a reference problem and checks WPC's energies, activity gradients and weight gradients against the
 * float64 ones; returns the GPU model (the caller disposes it) and tensors for further checks.
 */
export async function expectLayerKernels(
  rt: Runtime,
  p: { ref: RefModel; x: Mat; y: Mat; acts: Mat[]; loss: 'mse' | 'ce'; what: string },
) {
  const { ref, x, y, acts, loss, what } = p;
  const model = gpuModel(rt, ref);
  const [input, output] = [tensorOf(rt, x), tensorOf(rt, y)];
  const activities = acts.map((a) => tensorOf(rt, a));
  expectClose(
    await (await pcEnergy(model, activities, output, { input, loss, recordLayers: true })).toArray(),
    jpcRecordLayersOrder(layerEnergies(ref, acts, y, x, loss)),
    1e-4,
    `${what}: energies`,
  );
  expectClose(
    await readAll((await computePcActivityGrad(model, activities, output, { input, loss })).grads),
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
  return { model, input, output, activities };
}
