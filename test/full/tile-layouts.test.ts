// Kernel variants the default adapter here does not pick: the GPU tile configuration, the blocked CPU layout,
// odd blocked and subgroup tiles, split-k and workgroup-memory tiles, checked against the float64 reference (the
// adapter's default configuration — on lavapipe the subgroup layout: with 8 lanes 8×64 for the layer kernels and
// 8×32 for lone products, with 16 lanes 4×64 — is what every other test file runs). Full tier: each layout
// compiles its own kernel sets, which takes lavapipe minutes with a cold shader cache.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTIVATIONS, solveHeunPid } from '../reference/jpc64.js';
import { init, type Runtime } from '../../src/node.js';
import { solveInference } from '../../src/pc/infer.js';
import { Random } from '../../src/util/random.js';
import { expectClose, flat, randomLayerProblem, readAll } from '../support/helpers.js';
import { expectLayerKernels, expectMatmul } from '../support/tile-checks.js';

const probe = await init();
const subgroupSize = probe.adapter.subgroupSize;
const lavapipe = probe.adapter.description.includes('llvmpipe');
probe.dispose();

// The blocked and workgroup-memory layouts do not depend on lavapipe's lane count, but at 16 lanes lavapipe
// compiles them very slowly (up to ~6 minutes for 8 kernel sets with a cold shader cache, as CI has): they run
// where lavapipe has 8 lanes (the `other lanes` project on AVX-512 machines, the default one elsewhere) and on
// other adapters.
const TILES: { wg: number; tm: number; tn: number; subgroup?: boolean; splitK?: boolean; shared?: boolean }[] =
  lavapipe && subgroupSize === 16
    ? []
    : [
        { wg: 64, tm: 4, tn: 4 },
        { wg: 3, tm: 5, tn: 3 },
        { wg: 8, tm: 16, tn: 8 },
        // Workgroup-memory panels: ragged 8×12 tiles, and 32×32 tiles with the vec4 epilogue.
        { wg: 16, tm: 2, tn: 3, shared: true },
        { wg: 64, tm: 4, tn: 4, shared: true },
      ];
// Subgroup tiles: one lane's rows per workgroup (tm 1) and an odd row count with two B loads per lane.
// Split-k tiles: an odd 3×5 block (the scalar epilogue) and, except with 16 lanes on lavapipe (a cold compile of
// its kernel set takes ~2 minutes there), 4×4 blocks (the vec4 epilogue where the widths allow).
if (subgroupSize !== null) {
  TILES.push(
    { wg: subgroupSize, tm: 1, tn: subgroupSize, subgroup: true },
    { wg: subgroupSize, tm: 3, tn: 2 * subgroupSize, subgroup: true },
    { wg: subgroupSize, tm: 3, tn: 5, splitK: true },
    ...(lavapipe && subgroupSize === 16 ? [] : [{ wg: subgroupSize, tm: 4, tn: 4, splitK: true }]),
  );
}

for (const tiles of TILES) {
  describe(`tiles wg ${tiles.wg}, ${tiles.tm}×${tiles.tn}${tiles.subgroup ? ', subgroup' : ''}${tiles.splitK ? ', split k' : ''}${tiles.shared ? ', shared' : ''}`, () => {
    let rt: Runtime;
    beforeAll(async () => {
      rt = await init({ kernels: { tiles } });
    });
    afterAll(() => rt.dispose());

    it('matmul (all transposes, ragged edges) matches a float64 product', async () => {
      const rng = new Random(5 + tiles.tm);
      for (const [m, k, n] of [
        [1, 1, 1],
        [7, 13, 5],
        [33, 20, 70],
        [64, 31, 9],
      ] as const) {
        for (const [ta, tb] of [
          [false, false],
          [true, false],
          [false, true],
          [true, true],
        ] as const) {
          await expectMatmul(rt, rng, [m, k, n], ta, tb, 1e-5);
        }
      }
    });

    it('energies, gradients and a Heun + PID solve match the reference on random networks', async () => {
      const rng = new Random(77 + tiles.wg);
      for (let trial = 0; trial < 8; trial++) {
        // The last two trials have every width and the batch ≡ 0 mod 4: the layer kernels' vec4 epilogue path.
        const aligned = trial >= 6;
        const problem = randomLayerProblem(
          rng,
          trial,
          900 + trial,
          ACTIVATIONS[(trial * 3 + tiles.wg) % ACTIVATIONS.length]!,
          aligned,
        );
        const { loss, ref, x, y, acts, what } = problem;
        const { model, input, output, activities } = await expectLayerKernels(rt, problem);
        const sol = solveHeunPid(ref, acts, y, x, {
          maxT1: 5,
          dt0: 0.5,
          rtol: 1e-3,
          atol: 1e-3,
          loss,
          timeDtype: 'float32',
        });
        const r = await solveInference(model, activities, output, { input, loss, maxT1: 5, dt: 0.5 });
        expect(r.steps, `${what}: PID steps`).toEqual({ accepted: sol.accepted, rejected: sol.rejected });
        expectClose(await readAll(r.activities), flat(sol.activities), 1e-4, `${what}: solution`);
        model.dispose();
      }
      // Each trial's activation compiles a new kernel set; with a cold shader cache lavapipe takes up to ~15 s per
      // set when compiling for 16 lanes, several times that on a busy machine. The limit only catches a hang.
    });
  });
}
