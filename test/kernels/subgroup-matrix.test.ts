// The subgroup-matrix tile layout (`kernels.tiles.matrix`, the tensor-core path) against the float64 reference.
// It needs an adapter with `chromium-experimental-subgroup-matrix`, which lavapipe has from Mesa 26: this file
// runs in its own vitest project, `npm run test:matrix` (part of `npm test`), started by
// scripts/matrix-lavapipe.mjs under Debian 13's Mesa 26 lavapipe (8 lanes, f16 → f32 8×8×8 matrices).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACTIVATIONS,
  activityGrads,
  jpcRecordLayersOrder,
  layerEnergies,
  paramGrads,
  solveEuler,
} from '../reference/jpc64.js';
import { init, type Runtime } from '../../src/node.js';
import { computePcActivityGrad, computePcParamGrads, pcEnergy } from '../../src/pc/energy.js';
import { solveInference } from '../../src/pc/infer.js';
import { matmul } from '../../src/pc/linalg.js';
import { WpcArgumentError } from '../../src/runtime/errors.js';
import { DAWN_EXPERIMENTAL_OPTION } from '../../src/runtime/adapter.js';
import { Random } from '../../src/util/random.js';
import {
  expectClose,
  expectCloseScaled,
  flat,
  gpuModel,
  randomLayerProblem,
  readAll,
  tensorOf,
} from '../support/helpers.js';

// Dawn hides experimental features unless asked; this file runs in a fresh process, so it creates Dawn first.
const dawnOptions = [DAWN_EXPERIMENTAL_OPTION];
const probe = await init({ dawnOptions, kernels: { fused: 'never' } });
const { subgroupSize, subgroupMatrixConfigs, description } = probe.adapter;
probe.dispose();
const f16Config = subgroupMatrixConfigs.find((c) => c.componentType === 'f16' && c.resultComponentType === 'f32');

/** The nearest f16 value (ties to even), as a double: what the layout's f16 operands hold. */
function roundToF16(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const e = Math.max(Math.floor(Math.log2(Math.abs(x))), -14);
  const quantum = 2 ** (e - 10);
  const q = x / quantum;
  const r = Math.round(q);
  return (Math.abs(q - Math.trunc(q)) === 0.5 ? 2 * Math.round(q / 2) : r) * quantum;
}

describe('the adapter', () => {
  it('offers subgroup matrices with f16 operands and f32 results, and a fixed subgroup size', () => {
    expect(
      f16Config,
      `${description}: subgroup-matrix configurations ${JSON.stringify(subgroupMatrixConfigs)} (run through scripts/matrix-lavapipe.mjs)`,
    ).toBeDefined();
    expect(subgroupSize).not.toBeNull();
  });

  it('rounds to f16 as IEEE does (the test helper)', () => {
    expect(roundToF16(1 + 2 ** -11)).toBe(1); // a tie: to even
    expect(roundToF16(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9);
    expect(roundToF16(65504)).toBe(65504);
    expect(roundToF16(2 ** -24)).toBe(2 ** -24); // the smallest subnormal
    expect(roundToF16(-0.1)).toBe(-0.0999755859375);
  });
});

/** op(A) (m×k) · op(B) (k×n) on the GPU, operands from `value`, and the float64 product of `exact(operands)`. */
async function product(rt: Runtime, [m, k, n]: readonly number[], ta: boolean, tb: boolean, value: () => number) {
  const a = Float32Array.from({ length: m! * k! }, value);
  const b = Float32Array.from({ length: k! * n! }, value);
  const at = (i: number, p: number) => (ta ? a[p * m! + i]! : a[i * k! + p]!);
  const bt = (p: number, j: number) => (tb ? b[j * k! + p]! : b[p * n! + j]!);
  const want = new Float64Array(m! * n!);
  const rounded = new Float64Array(m! * n!);
  const magnitude = new Float64Array(m! * n!); // Σ |a·b|: what f16 rounding errors scale with
  for (let i = 0; i < m!; i++) {
    for (let j = 0; j < n!; j++) {
      for (let p = 0; p < k!; p++) {
        want[i * n! + j]! += at(i, p) * bt(p, j);
        rounded[i * n! + j]! += roundToF16(at(i, p)) * roundToF16(bt(p, j));
        magnitude[i * n! + j]! += Math.abs(at(i, p) * bt(p, j));
      }
    }
  }
  const ga = rt.tensor(a, ta ? [k!, m!] : [m!, k!]);
  const gb = rt.tensor(b, tb ? [n!, k!] : [k!, n!]);
  const c = await matmul(ga, gb, { transA: ta, transB: tb });
  const got = await c.toArray();
  for (const t of [ga, gb, c]) t.dispose();
  return { got, want, rounded, magnitude };
}

const SHAPES = [
  [1, 1, 1],
  [7, 13, 5],
  [33, 20, 70],
  [64, 31, 9],
  [17, 40, 24],
] as const;
const TRANSPOSES = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

// One matrix per subgroup, and 2×3 matrices (a 16×24 tile with 8×8 matrices: ragged edges in both directions).
const TILES =
  subgroupSize === null
    ? []
    : [
        { wg: subgroupSize, tm: 1, tn: 1, matrix: 'f16' as const },
        { wg: subgroupSize, tm: 2, tn: 3, matrix: 'f16' as const },
      ];

for (const tiles of TILES) {
  describe(`matrix tiles wg ${tiles.wg}, ${tiles.tm}×${tiles.tn} f16 matrices`, () => {
    let rt: Runtime;
    beforeAll(async () => {
      rt = await init({ dawnOptions, kernels: { tiles, fused: 'never' } });
    });
    afterAll(() => rt.dispose());

    it('keep the adapter’s configuration in the validated tiles', () => {
      expect(rt.kernels.tiles).toEqual({
        ...tiles,
        matrixShape: { m: f16Config!.M, n: f16Config!.N, k: f16Config!.K },
      });
    });

    it('matmul of f16-representable operands (all transposes, ragged edges) matches the float64 product', async () => {
      const rng = new Random(3 + tiles.tn);
      for (const shape of SHAPES) {
        for (const [ta, tb] of TRANSPOSES) {
          // Products of two f16 values are exact in f32: only the f32 sums round.
          const { got, want } = await product(rt, shape, ta, tb, () => roundToF16(rng.normal()));
          expectClose(got, want, 1e-5, `${shape.join('×')}, transposes ${ta}/${tb}`);
        }
      }
    });

    it('matmul rounds its operands to f16 (round to nearest) and sums in f32', async () => {
      const rng = new Random(11 + tiles.tn);
      for (const shape of SHAPES) {
        const { got, want, rounded, magnitude } = await product(rt, shape, false, false, () => rng.normal());
        expectClose(got, rounded, 1e-5, `${shape.join('×')} against the product of f16-rounded operands`);
        // …and so within f16's rounding of the exact product: at most 2⁻¹¹ per operand, 2⁻¹⁰ per product.
        expectCloseScaled(got, want, magnitude, 2 ** -10 + 1e-6, `${shape.join('×')} against the exact product`);
      }
    });

    it('energies, gradients and an Euler solve match the reference within f16 rounding on random networks', async () => {
      const rng = new Random(41 + tiles.tn);
      for (let trial = 0; trial < 6; trial++) {
        // The last two trials have every width and the batch ≡ 0 mod 4: the layer kernels' vec4 epilogue path.
        const aligned = trial >= 4;
        const { loss, ref, x, y, acts, what } = randomLayerProblem(
          rng,
          trial,
          700 + trial,
          ACTIVATIONS[(trial * 3 + 1) % ACTIVATIONS.length]!,
          aligned,
        );
        const model = gpuModel(rt, ref);
        const [input, output] = [tensorOf(rt, x), tensorOf(rt, y)];
        const activities = acts.map((a) => tensorOf(rt, a));
        // f16 operands: ~1e-3 of the summands per product, and outputs that cancel keep that absolute error, so
        // errors are measured against each output's largest value (4e-3 of it; the worst here is 0.42 of that).
        // A wrong index or a lost tile would be off by O(1).
        const near = (actual: ArrayLike<number>, expected: ArrayLike<number>, label: string) =>
          expectClose(actual, expected, 4e-3, `${what}: ${label}`, 1);
        near(
          await (await pcEnergy(model, activities, output, { input, loss, recordLayers: true })).toArray(),
          jpcRecordLayersOrder(layerEnergies(ref, acts, y, x, loss)),
          'energies',
        );
        near(
          await readAll((await computePcActivityGrad(model, activities, output, { input, loss })).grads),
          flat(activityGrads(ref, acts, y, x, loss)),
          'activity gradients',
        );
        const pg = await computePcParamGrads(model, activities, output, { input, loss });
        near(await readAll(pg.weights), flat(paramGrads(ref, acts, y, x, loss).weights), 'weight gradients');
        const sol = solveEuler(ref, acts, y, x, { maxT1: 2, dt: 0.25, loss, timeDtype: 'float32' });
        const r = await solveInference(model, activities, output, {
          input,
          loss,
          solver: 'euler',
          stepsizeController: 'constant',
          maxT1: 2,
          dt: 0.25,
        });
        near(await readAll(r.activities), flat(sol.activities), 'Euler solution');
        model.dispose();
      }
    }, 360_000);
  });
}

describe('matrix tile validation', () => {
  it('refuses operand types, subgroup sizes and tile counts the device cannot run, naming the field', async () => {
    const wg = subgroupSize!;
    await expect(
      init({ dawnOptions, kernels: { tiles: { wg, tm: 1, tn: 1, matrix: 'f64' as never } } }),
    ).rejects.toThrow(/options\.kernels\.tiles\.matrix must be "f16" or "f32" \(the operand type\), got "f64"/);
    if (!subgroupMatrixConfigs.some((c) => c.componentType === 'f32' && c.resultComponentType === 'f32')) {
      await expect(init({ dawnOptions, kernels: { tiles: { wg, tm: 1, tn: 1, matrix: 'f32' } } })).rejects.toThrow(
        /options\.kernels\.tiles\.matrix "f32" needs a subgroup-matrix configuration with f32 operands and f32 results; this adapter has f16→f16 8×8×8, f16→f32 8×8×8/,
      );
    }
    await expect(
      init({ dawnOptions, kernels: { tiles: { wg: 2 * wg, tm: 1, tn: 1, matrix: 'f16' } } }),
    ).rejects.toThrow(
      new RegExp(`options\\.kernels\\.tiles\\.wg must equal the subgroup size ${wg} when matrix is set, got ${2 * wg}`),
    );
    await expect(init({ dawnOptions, kernels: { tiles: { wg, tm: 4, tn: 5, matrix: 'f16' } } })).rejects.toThrow(
      /at most 16 subgroup matrices when matrix is set, got 4 × 5 = 20/,
    );
    await expect(
      init({ dawnOptions, kernels: { tiles: { wg, tm: 1, tn: 1, matrix: 'f16', shared: true } } }),
    ).rejects.toThrow(/one of subgroup, splitK, shared and matrix, got shared and matrix/);
    await expect(
      init({
        dawnOptions,
        kernels: { tiles: { wg, tm: 1, tn: 1, matrix: 'f16', matrixShape: { m: 8, n: 8, k: 8 } } as never },
      }),
    ).rejects.toThrow(WpcArgumentError);
  });
});
