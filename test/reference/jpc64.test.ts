/**
 * Self-tests of the float64 JPC reference (test/reference/jpc64.ts), which the GPU tests use as their oracle.
 * No GPU needed: finite differences, closed-form ODE solutions, hand-traced controller steps and optimiser
 * steps, and the float32 time grid.
 */
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/util/random.js';
import {
  ACTIVATIONS,
  ACT_KINKS,
  LEAKY_RELU_SLOPE,
  SELU_ALPHA,
  SELU_SCALE,
  act,
  actDeriv,
  activityGrads,
  adamInit,
  adamUpdate,
  checkShapes,
  cloneMats,
  cloneModel,
  computeAccuracy,
  crossEntropyLoss,
  energy,
  ffwd,
  flattenMats,
  flattenParams,
  fromFloat32,
  hairerInitialStep,
  integrateConstant,
  integrateHeunPid,
  jpcRecordLayersOrder,
  layerEnergies,
  mat,
  matFromRows,
  maxAbsDiff,
  mseLoss,
  nextafterF32,
  nextafterF64,
  numConstantSteps,
  optimInit,
  paramGrads,
  prevbeforeF32,
  prevbeforeF64,
  randomModel,
  randomNormalMat,
  randomUniformMat,
  rmsNorm,
  sgdInit,
  sgdUpdate,
  solveEuler,
  solveHeunConstant,
  solveHeunPid,
  t1ClipFloor,
  toFloat32,
  updatePcActivities,
  updatePcParams,
  vectorField,
  type Act,
  type Loss,
  type Mat,
  type PidStepRecord,
  type RefModel,
  type VectorField,
} from './jpc64.js';

// ─────────────────────────────────────────── helpers ───────────────────────────────────────────

/** Uniform in [lo, hi], at least `gap` away from every kink of `a`. */
function awayFromKinks(rng: Random, a: Act, lo: number, hi: number, gap = 0.05): number {
  for (;;) {
    const v = rng.uniform(lo, hi);
    if (ACT_KINKS[a].every((k) => Math.abs(v - k) > gap)) return v;
  }
}

interface Problem {
  model: RefModel;
  acts: Mat[];
  x: Mat;
  y: Mat;
  loss: Loss;
}

/** B=3, dims 4→5→6→3, non-unit scalings, activities away from the activation's kinks. */
function smallProblem(a: Act, loss: Loss, seed: number, bias = true): Problem {
  const rng = new Random(seed);
  const dims = [4, 5, 6, 3];
  const B = 3;
  const model = randomModel(rng, dims, a, { bias, scales: [0.7, 1.3, 0.45] });
  // make the weights O(1) so that every term matters
  for (const w of model.weights) for (let i = 0; i < w.data.length; i++) w.data[i] = 2 * w.data[i]!;
  const x = randomNormalMat(rng, B, dims[0]!);
  const acts = dims.slice(1).map((d) => {
    const m = mat(B, d);
    for (let i = 0; i < m.data.length; i++) m.data[i] = awayFromKinks(rng, a, -2, 2);
    return m;
  });
  // ce: positive labels whose rows do not sum to 1, to exercise the softmax·Σy term
  const y = loss === 'mse' ? randomNormalMat(rng, B, dims[3]!) : randomUniformMat(rng, B, dims[3]!, 0.1, 1);
  return { model, acts, x, y, loss };
}

function centralDiff(fn: (v: number) => number, v: number, h: number): number {
  return (fn(v + h) - fn(v - h)) / (2 * h);
}

function maxAbs(ms: readonly Mat[]): number {
  return ms.reduce((m, a) => a.data.reduce((mm, v) => Math.max(mm, Math.abs(v)), m), 0);
}

function scalar(v: number): Mat[] {
  return [mat(1, 1, [v])];
}

function val(ys: readonly Mat[]): number {
  return ys[0]!.data[0]!;
}

// tiny dense linear algebra for the closed-form ODE solution
type Dense = number[][];

function eye(n: number): Dense {
  return Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
}

function matmul(a: Dense, b: Dense): Dense {
  return a.map((row) => b[0]!.map((_, j) => row.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
}

function matvec(a: Dense, v: readonly number[]): number[] {
  return a.map((row) => row.reduce((s, x, k) => s + x * v[k]!, 0));
}

/** exp(A) by scaling and squaring with a 30-term Taylor series. */
function expm(a: Dense): Dense {
  const n = a.length;
  const norm = Math.max(...a.map((r) => r.reduce((s, v) => s + Math.abs(v), 0)));
  const k = Math.max(0, Math.ceil(Math.log2(norm + 1e-300)) + 1);
  const sa = a.map((r) => r.map((v) => v / 2 ** k));
  let term = eye(n);
  let sum = eye(n);
  for (let i = 1; i <= 30; i++) {
    term = matmul(term, sa).map((r) => r.map((v) => v / i));
    sum = sum.map((r, p) => r.map((v, q) => v + term[p]![q]!));
  }
  for (let i = 0; i < k; i++) sum = matmul(sum, sum);
  return sum;
}

/** Solves A x = b by Gaussian elimination with partial pivoting. */
function solve(a: Dense, b: readonly number[]): number[] {
  const n = a.length;
  const m = a.map((r, i) => [...r, b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    [m[c], m[p]] = [m[p]!, m[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / m[c]![c]!;
      for (let q = c; q <= n; q++) m[r]![q] = m[r]![q]! - f * m[c]![q]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r]![n]!;
    for (let q = r + 1; q < n; q++) s -= m[r]![q]! * x[q]!;
    x[r] = s / m[r]![r]!;
  }
  return x;
}

/** Independent float32 nextafter toward +inf (bit increment through a DataView). */
function nextUpF32(x: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setFloat32(0, x);
  dv.setUint32(0, dv.getUint32(0) + 1);
  return dv.getFloat32(0);
}

// ────────────────────────────────────────── (b) activations ──────────────────────────────────────────

describe('activations', () => {
  it.each(ACTIVATIONS)('%s: derivative matches central finite differences away from kinks', (a) => {
    let checked = 0;
    for (let x = -4; x <= 4; x += 0.0731) {
      if (ACT_KINKS[a].some((k) => Math.abs(x - k) < 1e-3)) continue;
      const fd = centralDiff((v) => act(a, v), x, 1e-6);
      expect(Math.abs(actDeriv(a, x) - fd)).toBeLessThan(1e-8);
      checked++;
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('values match the JAX definitions', () => {
    expect(act('linear', -1.25)).toBe(-1.25);
    expect(act('tanh', 0.5)).toBe(Math.tanh(0.5));
    expect([act('hard_tanh', -3), act('hard_tanh', 0.3), act('hard_tanh', 1), act('hard_tanh', 2)]).toEqual([
      -1, 0.3, 1, 1,
    ]);
    expect([act('relu', -2), act('relu', 0), act('relu', 1.5)]).toEqual([0, 0, 1.5]);
    expect([act('leaky_relu', -2), act('leaky_relu', 3)]).toEqual([-0.02, 3]);
    // gelu(approximate=True)(1) = 0.5 (1 + tanh(sqrt(2/pi) * 1.044715))
    expect(act('gelu', 1)).toBeCloseTo(0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * 1.044715)), 15);
    expect(act('gelu', 1)).toBeCloseTo(0.841192, 6);
    expect(act('selu', 1)).toBe(SELU_SCALE);
    expect(act('selu', -1)).toBeCloseTo(SELU_SCALE * SELU_ALPHA * (Math.exp(-1) - 1), 15);
    expect(act('silu', 1)).toBeCloseTo(1 / (1 + Math.exp(-1)), 15);
    expect(act('silu', -800)).toBe(-0); // no overflow in the sigmoid
  });

  it("derivatives at the kinks follow jax.grad's choices", () => {
    expect(actDeriv('relu', 0)).toBe(0); // custom_jvp: select(x > 0, g, 0)
    expect(actDeriv('leaky_relu', 0)).toBe(1); // where(x >= 0, x, 0.01x)
    expect(actDeriv('leaky_relu', -1)).toBe(LEAKY_RELU_SLOPE);
    expect(actDeriv('hard_tanh', 1)).toBe(1); // where(x > 1, 1, where(x < -1, -1, x)): closed interval
    expect(actDeriv('hard_tanh', -1)).toBe(1);
    expect(actDeriv('hard_tanh', nextafterF64(1))).toBe(0);
    expect(actDeriv('hard_tanh', prevbeforeF64(-1))).toBe(0);
    expect(actDeriv('selu', 0)).toBe(SELU_SCALE * SELU_ALPHA); // where(x > 0, …) takes the expm1 branch
    expect(actDeriv('gelu', 0)).toBe(0.5);
    expect(actDeriv('silu', 0)).toBe(0.5);
  });
});

// ─────────────────────────────────── (a) energy gradients by finite differences ───────────────────────────────────

describe('energy gradients vs central finite differences', () => {
  const cases: [Act, Loss][] = [];
  for (const a of ACTIVATIONS) for (const l of ['mse', 'ce'] as const) cases.push([a, l]);

  it.each(cases)('%s / %s: activity gradients', (a, loss) => {
    const p = smallProblem(a, loss, 11 + ACTIVATIONS.indexOf(a));
    const g = activityGrads(p.model, p.acts, p.y, p.x, loss);
    expect(g.length).toBe(p.acts.length);
    const L = p.acts.length;
    expect(maxAbs(g.slice(0, L - 1))).toBeGreaterThan(1e-2);
    // the dummy's gradient is exactly zero
    expect(maxAbs([g[L - 1]!])).toBe(0);
    const h = 1e-5;
    for (let l = 0; l < L; l++) {
      for (let i = 0; i < p.acts[l]!.data.length; i++) {
        const fd = centralDiff(
          (v) => {
            const acts = cloneMats(p.acts);
            acts[l]!.data[i] = v;
            return energy(p.model, acts, p.y, p.x, loss);
          },
          p.acts[l]!.data[i]!,
          h,
        );
        expect(Math.abs(g[l]!.data[i]! - fd)).toBeLessThan(1e-8 + 1e-7 * Math.abs(fd));
      }
    }
    // the ODE right-hand side is minus the gradient
    const f = vectorField(p.model, p.acts, p.y, p.x, loss);
    f.forEach((m, l) => m.data.forEach((v, i) => expect(v).toBe(-g[l]!.data[i]!)));
  });

  it.each(cases)('%s / %s: weight and bias gradients', (a, loss) => {
    const p = smallProblem(a, loss, 101 + ACTIVATIONS.indexOf(a));
    const g = paramGrads(p.model, p.acts, p.y, p.x, loss);
    expect(maxAbs(g.weights)).toBeGreaterThan(1e-2);
    const h = 1e-5;
    p.model.weights.forEach((w, l) => {
      for (let i = 0; i < w.data.length; i++) {
        const fd = centralDiff(
          (v) => {
            const m = cloneModel(p.model);
            m.weights[l]!.data[i] = v;
            return energy(m, p.acts, p.y, p.x, loss);
          },
          w.data[i]!,
          h,
        );
        expect(Math.abs(g.weights[l]!.data[i]! - fd)).toBeLessThan(1e-8 + 1e-7 * Math.abs(fd));
      }
      const b = p.model.biases[l]!;
      const gb = g.biases[l]!;
      expect(gb.length).toBe(b.length);
      for (let i = 0; i < b.length; i++) {
        const fd = centralDiff(
          (v) => {
            const m = cloneModel(p.model);
            m.biases[l]![i] = v;
            return energy(m, p.acts, p.y, p.x, loss);
          },
          b[i]!,
          h,
        );
        expect(Math.abs(gb[i]! - fd)).toBeLessThan(1e-8 + 1e-7 * Math.abs(fd));
      }
    });
  });

  it('bias-free models give null bias gradients and the same weight gradients formula', () => {
    const p = smallProblem('tanh', 'mse', 5, false);
    const g = paramGrads(p.model, p.acts, p.y, p.x, 'mse');
    expect(g.biases).toEqual([null, null, null]);
    const w = p.model.weights[1]!;
    const fd = centralDiff(
      (v) => {
        const m = cloneModel(p.model);
        m.weights[1]!.data[3] = v;
        return energy(m, p.acts, p.y, p.x, 'mse');
      },
      w.data[3]!,
      1e-5,
    );
    expect(Math.abs(g.weights[1]!.data[3]! - fd)).toBeLessThan(1e-8);
  });
});

// ───────────────────────────────────────── energies, ffwd, losses ─────────────────────────────────────────

describe('energies, ffwd and losses', () => {
  it('layer energies follow the formulas, and the total is their sum', () => {
    const p = smallProblem('relu', 'mse', 3);
    const e = layerEnergies(p.model, p.acts, p.y, p.x, 'mse');
    expect(e.length).toBe(3);
    // E_1 by hand: ½ Σ_b ‖z_1 − 0.7 (W_0 x + b_0)‖² / B
    const W0 = p.model.weights[0]!;
    const b0 = p.model.biases[0]!;
    let s = 0;
    for (let r = 0; r < 3; r++) {
      for (let o = 0; o < 5; o++) {
        let pre = b0[o]!;
        for (let i = 0; i < 4; i++) pre += W0.data[o * 4 + i]! * p.x.data[r * 4 + i]!;
        const d = p.acts[0]!.data[r * 5 + o]! - 0.7 * pre;
        s += 0.5 * d * d;
      }
    }
    expect(e[0]).toBeCloseTo(s / 3, 13);
    expect(energy(p.model, p.acts, p.y, p.x, 'mse')).toBeCloseTo(e[0]! + e[1]! + e[2]!, 14);
    expect(jpcRecordLayersOrder(e)).toEqual([e[2], e[1], e[0]]);
    expect(jpcRecordLayersOrder([1, 2, 3, 4, 5])).toEqual([5, 2, 3, 4, 1]);
    expect(jpcRecordLayersOrder([1, 2])).toEqual([2, 1]);
  });

  it('the dummy activity never enters the energy', () => {
    const p = smallProblem('gelu', 'ce', 4);
    const acts = cloneMats(p.acts);
    acts[2]!.data.fill(1e6);
    expect(energy(p.model, acts, p.y, p.x, 'ce')).toBe(energy(p.model, p.acts, p.y, p.x, 'ce'));
  });

  it('at the ffwd initialisation the hidden energies vanish and F equals the JPC loss of the prediction', () => {
    const rng = new Random(77);
    const model = randomModel(rng, [4, 7, 7, 3], 'silu', { bias: true, scales: [1.1, 0.9, 0.5] });
    const x = randomNormalMat(rng, 5, 4);
    const acts = ffwd(model, x);
    expect(acts.map((a) => [a.rows, a.cols])).toEqual([
      [5, 7],
      [5, 7],
      [5, 3],
    ]);
    const yM = randomNormalMat(rng, 5, 3);
    const eM = layerEnergies(model, acts, yM, x, 'mse');
    expect(eM[0]).toBe(0);
    expect(eM[1]).toBe(0);
    expect(energy(model, acts, yM, x, 'mse')).toBeCloseTo(mseLoss(acts[2]!, yM), 14);
    const yC = matFromRows([
      [0, 1, 0],
      [1, 0, 0],
      [0, 0, 1],
      [0, 1, 0],
      [0, 0, 1],
    ]);
    expect(energy(model, acts, yC, x, 'ce')).toBeCloseTo(crossEntropyLoss(acts[2]!, yC), 14);
  });

  it('losses and accuracy match hand computations', () => {
    const preds = matFromRows([
      [1, 2],
      [0, -1],
    ]);
    const labels = matFromRows([
      [0, 2],
      [1, 1],
    ]);
    expect(mseLoss(preds, labels)).toBe((0.5 * (1 + 0 + 1 + 4)) / 2);
    const logits = matFromRows([
      [0, Math.log(3)],
      [5, 5],
    ]);
    const onehot = matFromRows([
      [0, 1],
      [1, 0],
    ]);
    expect(crossEntropyLoss(logits, onehot)).toBeCloseTo(-(Math.log(0.75) + Math.log(0.5)) / 2, 15);
    // argmax ties: the first index wins ([5, 5] → 0)
    expect(computeAccuracy(onehot, logits)).toBe(100);
    expect(
      computeAccuracy(
        matFromRows([
          [0, 1],
          [0, 1],
          [1, 0],
          [0, 1],
        ]),
        matFromRows([
          [1, 1],
          [0, 2],
          [3, 3],
          [4, 0],
        ]),
      ),
    ).toBe(50);
  });

  it('checks shapes', () => {
    const p = smallProblem('tanh', 'mse', 9);
    expect(() => checkShapes(p.model, p.acts, p.y, p.x)).not.toThrow();
    expect(() => energy(p.model, p.acts.slice(0, 2), p.y, p.x, 'mse')).toThrow(RangeError);
    expect(() => energy(p.model, p.acts, mat(3, 2), p.x, 'mse')).toThrow(RangeError);
    expect(() => ffwd(p.model, mat(3, 5))).toThrow(RangeError);
  });

  it('rmsNorm counts every element of every leaf; float32 converters round-trip', () => {
    expect(rmsNorm([mat(1, 1, [3]), mat(1, 3, [0, 0, 4])])).toBeCloseTo(Math.sqrt(25 / 4), 15);
    expect(rmsNorm([mat(1, 1, [-2])])).toBe(2);
    const m = mat(2, 2, [0.1, 2, -3, 1e-3]);
    const f = toFloat32(m);
    expect(f).toBeInstanceOf(Float32Array);
    expect(fromFloat32(f, 2, 2).data[0]).toBe(Math.fround(0.1));
    expect(flattenMats([m, mat(1, 1, [7])])).toEqual(new Float64Array([0.1, 2, -3, 1e-3, 7]));
  });
});

// ─────────────────────────────────────── (c) ODE solvers on a linear ODE ───────────────────────────────────────

/**
 * A 1-hidden-layer linear net (3 → 4 → 2) with biases and scalings s = (0.8, 1.5). Per sample the inference ODE is
 * dz/dt = A z + c with A = −(I + s₁² W₁ᵀW₁)/B and c = (s₀(W₀x + b₀) + s₁W₁ᵀ(y − s₁b₁))/B.
 */
function linearProblem() {
  const rng = new Random(2024);
  const model = randomModel(rng, [3, 4, 2], 'linear', { bias: true, scales: [0.8, 1.5] });
  const B = 2;
  const x = randomNormalMat(rng, B, 3);
  const y = randomNormalMat(rng, B, 2);
  const acts0 = [randomNormalMat(rng, B, 4), randomNormalMat(rng, B, 2)];
  const [s0, s1] = [0.8, 1.5];
  const W0 = model.weights[0]!;
  const W1 = model.weights[1]!;
  const b0 = model.biases[0]!;
  const b1 = model.biases[1]!;
  const A: Dense = eye(4).map((row, i) =>
    row.map((v, j) => {
      let wtw = 0;
      for (let o = 0; o < 2; o++) wtw += W1.data[o * 4 + i]! * W1.data[o * 4 + j]!;
      return -(v + s1 * s1 * wtw) / B;
    }),
  );
  const c: number[][] = [];
  for (let r = 0; r < B; r++) {
    const cr: number[] = [];
    for (let i = 0; i < 4; i++) {
      let a = b0[i]!;
      for (let k = 0; k < 3; k++) a += W0.data[i * 3 + k]! * x.data[r * 3 + k]!;
      let back = 0;
      for (let o = 0; o < 2; o++) back += W1.data[o * 4 + i]! * (y.data[r * 2 + o]! - s1 * b1[o]!);
      cr.push((s0 * a + s1 * back) / B);
    }
    c.push(cr);
  }
  const row = (m: Mat, r: number): number[] => Array.from(m.data.subarray(r * m.cols, (r + 1) * m.cols));
  /** Exact solution z(t) = z* + exp(At)(z0 − z*), z* = −A⁻¹c. */
  const exact = (t: number): number[][] => {
    const E = expm(A.map((r) => r.map((v) => v * t)));
    return c.map((cr, r) => {
      const zs = solve(
        A,
        cr.map((v) => -v),
      );
      const z0 = row(acts0[0]!, r);
      return matvec(
        E,
        z0.map((v, i) => v - zs[i]!),
      ).map((v, i) => v + zs[i]!);
    });
  };
  const err = (z: Mat, t: number): number => {
    const ex = exact(t);
    let m = 0;
    for (let r = 0; r < B; r++) for (let i = 0; i < 4; i++) m = Math.max(m, Math.abs(z.data[r * 4 + i]! - ex[r]![i]!));
    return m;
  };
  return { model, x, y, acts0, A, c, row, exact, err, B };
}

describe('constant-step solvers on a linear inference ODE', () => {
  const lp = linearProblem();

  it('the PC vector field is the affine map A z + c', () => {
    const f = vectorField(lp.model, lp.acts0, lp.y, lp.x, 'mse');
    for (let r = 0; r < lp.B; r++) {
      const want = matvec(lp.A, lp.row(lp.acts0[0]!, r)).map((v, i) => v + lp.c[r]![i]!);
      want.forEach((v, i) => expect(f[0]!.data[r * 4 + i]).toBeCloseTo(v, 14));
    }
    expect(maxAbs([f[1]!])).toBe(0);
  });

  it('solveEuler reproduces the explicit Euler recursion (dt divides T)', () => {
    const res = solveEuler(lp.model, lp.acts0, lp.y, lp.x, { maxT1: 1, dt: 0.125, loss: 'mse' });
    expect(res.steps).toBe(8);
    expect(res.ts).toEqual([0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1]);
    expect(res.t).toBe(1);
    for (let r = 0; r < lp.B; r++) {
      let z = lp.row(lp.acts0[0]!, r);
      for (let n = 0; n < 8; n++) {
        const dz = matvec(lp.A, z).map((v, i) => v + lp.c[r]![i]!);
        z = z.map((v, i) => v + 0.125 * dz[i]!);
      }
      z.forEach((v, i) => expect(Math.abs(res.activities[0]!.data[r * 4 + i]! - v)).toBeLessThan(1e-13));
    }
    // the dummy has zero derivative: unchanged
    expect(res.activities[1]!.data).toEqual(lp.acts0[1]!.data);
  });

  it("the grid is diffrax ≥ 0.7.1's: first step dt0, then fractions of (t1 − t0)", () => {
    const res = solveEuler(lp.model, lp.acts0, lp.y, lp.x, { maxT1: 1, dt: 0.3, loss: 'mse', recordStates: true });
    // N = ceil(1 / 0.3⁺) = 4; ends 0.3, then 2/4, 3/4, 1
    expect(res.ts).toEqual([0, 0.3, 0.5, 0.75, 1]);
    expect(res.states?.length).toBe(4);
    for (let r = 0; r < lp.B; r++) {
      let z = lp.row(lp.acts0[0]!, r);
      for (let n = 0; n < 4; n++) {
        const h = res.ts[n + 1]! - res.ts[n]!;
        const dz = matvec(lp.A, z).map((v, i) => v + lp.c[r]![i]!);
        z = z.map((v, i) => v + h * dz[i]!);
      }
      z.forEach((v, i) => expect(Math.abs(res.activities[0]!.data[r * 4 + i]! - v)).toBeLessThan(1e-13));
    }
    // the legacy grid (diffrax ≤ 0.7.0) keeps adding dt0 and clips the last step
    const legacy = solveEuler(lp.model, lp.acts0, lp.y, lp.x, { maxT1: 1, dt: 0.3, loss: 'mse', grid: 'cumulative' });
    expect(legacy.ts).toEqual([0, 0.3, 0.6, 0.8999999999999999, 1]);
  });

  it('Euler converges with order 1 and Heun with order 2 to the matrix-exponential solution', () => {
    const T = 2;
    const dts = [1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128];
    const eErr = dts.map((dt) =>
      lp.err(solveEuler(lp.model, lp.acts0, lp.y, lp.x, { maxT1: T, dt, loss: 'mse' }).activities[0]!, T),
    );
    const hErr = dts.map((dt) =>
      lp.err(solveHeunConstant(lp.model, lp.acts0, lp.y, lp.x, { maxT1: T, dt, loss: 'mse' }).activities[0]!, T),
    );
    expect(eErr[0]).toBeGreaterThan(1e-4); // the test is not vacuous
    for (let k = 1; k < dts.length; k++) {
      const re = eErr[k - 1]! / eErr[k]!;
      const rh = hErr[k - 1]! / hErr[k]!;
      expect(re).toBeGreaterThan(1.8);
      expect(re).toBeLessThan(2.2);
      expect(rh).toBeGreaterThan(3.6);
      expect(rh).toBeLessThan(4.4);
    }
    expect(hErr[dts.length - 1]).toBeLessThan(1e-5);
  });

  it('Heun + PID reaches the exact solution within its tolerance', () => {
    const res = solveHeunPid(lp.model, lp.acts0, lp.y, lp.x, {
      maxT1: 2,
      dt0: 0.1,
      rtol: 1e-7,
      atol: 1e-7,
      loss: 'mse',
    });
    expect(res.t).toBe(2);
    expect(lp.err(res.activities[0]!, 2)).toBeLessThan(1e-5);
    expect(res.activities[1]!.data).toEqual(lp.acts0[1]!.data);
  });

  it('Euler throws past maxSteps (T=500, dt=0.05 is 10 000 steps > 4096)', () => {
    expect(() => solveEuler(lp.model, lp.acts0, lp.y, lp.x, { maxT1: 500, dt: 0.05, loss: 'mse' })).toThrow(/maxSteps/);
    expect(() => solveEuler(lp.model, lp.acts0, lp.y, lp.x, { maxT1: 1, dt: 0.125, loss: 'mse', maxSteps: 7 })).toThrow(
      /maxSteps/,
    );
    expect(solveEuler(lp.model, lp.acts0, lp.y, lp.x, { maxT1: 1, dt: 0.125, loss: 'mse', maxSteps: 8 }).steps).toBe(8);
  });
});

// ───────────────────────────────────────── (d) the PID controller ─────────────────────────────────────────

function checkControllerInvariants(history: readonly PidStepRecord[], t1: number): void {
  for (let i = 0; i < history.length; i++) {
    const s = history[i]!;
    const next = history[i + 1];
    expect(s.h).toBe(s.tnext - s.tprev);
    if (s.accepted) {
      // accepted steps never shrink dt
      expect(s.factor).toBeGreaterThanOrEqual(1);
      expect(s.factor).toBeLessThanOrEqual(10);
      if (next) {
        expect(next.tprev).toBe(s.tnext);
        if (next.tnext !== t1) expect(next.h).toBeGreaterThanOrEqual(s.h * (1 - 1e-12));
      }
    } else {
      expect(s.scaledError).toBeGreaterThanOrEqual(1);
      expect(s.factor).toBeGreaterThanOrEqual(0.2);
      expect(s.factor).toBeLessThanOrEqual(0.9);
      expect(next).toBeDefined();
      if (next) {
        expect(next.tprev).toBe(s.tprev);
        expect(next.h).toBeLessThanOrEqual(0.9 * s.h * (1 + 1e-12));
        expect(next.h).toBeGreaterThanOrEqual(0.2 * s.h * (1 - 1e-12));
      }
    }
  }
}

describe('Heun + PID controller', () => {
  const decay: VectorField = (y) =>
    y.map((m) =>
      mat(
        m.rows,
        m.cols,
        Array.from(m.data, (v) => -v),
      ),
    );

  it('reproduces a hand-traced start on dy/dt = −y', () => {
    const res = integrateHeunPid(decay, scalar(1), { t1: 1, dt0: 0.1, rtol: 1e-3, atol: 1e-3, recordStates: true });
    const [s0, s1, s2] = res.history as [PidStepRecord, PidStepRecord, PidStepRecord];
    // step 0: h = 0.1, y1 = 1 − h + h²/2, yErr = −h²/2, scale = atol + rtol·max(1, y1) = 2e-3 → scaled = 2.5
    expect(s0.h).toBe(0.1);
    expect(s0.scaledError).toBeCloseTo(0.005 / 0.002, 12);
    expect(s0.accepted).toBe(false);
    const f0 = 0.9 * 2.5 ** -0.5;
    expect(s0.factor).toBeCloseTo(f0, 14);
    // step 1 retries from t=0 with h = 0.1·factor
    expect(s1.tprev).toBe(0);
    expect(s1.h).toBeCloseTo(0.1 * f0, 15);
    const h1 = s1.h;
    expect(s1.scaledError).toBeCloseTo((h1 * h1) / 2 / 2e-3, 12);
    expect(s1.accepted).toBe(true);
    expect(s1.factor).toBe(Math.min(Math.max(0.9 / Math.sqrt((h1 * h1) / 2 / 2e-3), 1), 10));
    // step 2 starts from the accepted y1 = 1 − h1 + h1²/2
    expect(s2.tprev).toBe(s1.tnext);
    expect(val(res.states![0]!)).toBeCloseTo(1 - h1 + (h1 * h1) / 2, 15);
    const y1 = 1 - h1 + (h1 * h1) / 2;
    const h2 = s2.h;
    const y2 = y1 * (1 - h2 + (h2 * h2) / 2);
    expect(s2.scaledError).toBeCloseTo((y1 * h2 * h2) / 2 / (1e-3 + 1e-3 * y1), 10);
    expect(Math.abs(y2 - Math.exp(-(h1 + h2)))).toBeLessThan(1e-3);
    checkControllerInvariants(res.history, 1);
    expect(res.t).toBe(1);
    expect(Math.abs(val(res.y) - Math.exp(-1))).toBeLessThan(1e-3);
  });

  it('on a PC network: rejects a too-large dt0, shrinks by [0.2, 0.9], never shrinks after acceptance, ends at maxT1', () => {
    const rng = new Random(31);
    const model = randomModel(rng, [4, 8, 8, 3], 'tanh', { bias: true });
    for (const w of model.weights) for (let i = 0; i < w.data.length; i++) w.data[i] = 3 * w.data[i]!;
    const x = randomNormalMat(rng, 4, 4);
    const y = randomNormalMat(rng, 4, 3);
    const acts0 = ffwd(model, x);
    for (const timeDtype of ['float64', 'float32'] as const) {
      const res = solveHeunPid(model, acts0, y, x, {
        maxT1: 20,
        dt0: 5,
        rtol: 1e-3,
        atol: 1e-3,
        loss: 'mse',
        timeDtype,
      });
      expect(res.history[0]!.accepted).toBe(false);
      expect(res.rejected).toBeGreaterThan(0);
      expect(res.accepted).toBeGreaterThan(3);
      expect(res.accepted + res.rejected).toBe(res.history.length);
      expect(res.history.filter((s) => s.accepted).length).toBe(res.accepted);
      checkControllerInvariants(res.history, 20);
      expect(res.t).toBe(20);
      const last = res.history[res.history.length - 1]!;
      expect(last.accepted).toBe(true);
      expect(last.tnext).toBe(20);
      expect(energy(model, res.activities, y, x, 'mse')).toBeLessThan(0.5 * energy(model, acts0, y, x, 'mse'));
      expect(res.activities[2]!.data).toEqual(acts0[2]!.data); // dummy untouched
      if (timeDtype === 'float32') {
        for (const s of res.history) {
          expect(Math.fround(s.tprev)).toBe(s.tprev);
          expect(Math.fround(s.tnext)).toBe(s.tnext);
          expect(Math.fround(s.h)).toBe(s.h);
        }
      }
    }
    const r64 = solveHeunPid(model, acts0, y, x, { maxT1: 20, dt0: 5, rtol: 1e-3, atol: 1e-3, loss: 'mse' });
    const r32 = solveHeunPid(model, acts0, y, x, {
      maxT1: 20,
      dt0: 5,
      rtol: 1e-3,
      atol: 1e-3,
      loss: 'mse',
      timeDtype: 'float32',
    });
    expect(maxAbsDiff(r64.activities, r32.activities)).toBeLessThan(1e-4);
  });

  it("uses Hairer's initial step when dt0 is undefined", () => {
    const rng = new Random(8);
    const model = randomModel(rng, [3, 5, 2], 'relu', { bias: true });
    const x = randomNormalMat(rng, 2, 3);
    const y = randomNormalMat(rng, 2, 2);
    const acts0 = ffwd(model, x);
    const res = solveHeunPid(model, acts0, y, x, { maxT1: 5, rtol: 1e-3, atol: 1e-3, loss: 'mse' });
    const want = hairerInitialStep((a) => vectorField(model, a, y, x, 'mse'), acts0, { rtol: 1e-3, atol: 1e-3 });
    expect(res.dt0).toBe(want);
    expect(res.history[0]!.h).toBe(want);
    expect(res.t).toBe(5);
  });

  it('dtmax caps every step; dtmin forces acceptance, or throws when forceDtmin is false', () => {
    const capped = integrateHeunPid(decay, scalar(1), { t1: 5, dt0: 0.01, rtol: 1e-2, atol: 1e-2, dtmax: 0.25 });
    // the controller's proposal is capped exactly; h = (tprev + dt) − tprev may differ from it by rounding
    expect(Math.max(...capped.history.map((s) => s.dtNext))).toBe(0.25);
    expect(Math.max(...capped.history.map((s) => s.h))).toBeLessThanOrEqual(0.25 * (1 + 1e-12));
    expect(capped.history.filter((s) => Math.abs(s.h - 0.25) < 1e-12).length).toBeGreaterThan(5);
    expect(capped.t).toBe(5);

    const forced = integrateHeunPid(decay, scalar(1), { t1: 3, dt0: 1, rtol: 1e-9, atol: 1e-9, dtmin: 0.5 });
    // every step is at least dtmin (apart from the last, clipped to t1), and some steps are kept despite their error
    forced.history.slice(0, -1).forEach((s) => expect(s.h).toBeGreaterThanOrEqual(0.5));
    expect(forced.history.some((s) => s.accepted && s.scaledError >= 1)).toBe(true);
    expect(forced.t).toBe(3);

    expect(() =>
      integrateHeunPid(decay, scalar(1), { t1: 3, dt0: 1, rtol: 1e-9, atol: 1e-9, dtmin: 0.5, forceDtmin: false }),
    ).toThrow(/dtmin/);
  });

  /** Replays every factor of a PID history from the recorded errors (Heun: error order 2, safety 0.9). */
  function replayFactors(
    history: readonly PidStepRecord[],
    c: { pcoeff: number; icoeff: number; dcoeff: number },
  ): void {
    const e = 2;
    let prevInv = 1;
    let prevPrevInv = 1;
    for (const s of history) {
      const inv = 1 / s.scaledError;
      const raw =
        0.9 *
        inv ** ((c.pcoeff + c.icoeff + c.dcoeff) / e) *
        prevInv ** (-(c.pcoeff + 2 * c.dcoeff) / e) *
        prevPrevInv ** (c.dcoeff / e);
      const want = s.accepted ? Math.min(Math.max(raw, 1), 10) : Math.min(Math.max(raw, 0.2), 0.9);
      expect(s.factor).toBeCloseTo(want, 12);
      if (s.accepted) {
        // a rejected step leaves both remembered errors alone
        prevPrevInv = prevInv;
        prevInv = inv;
      }
    }
  }

  it.each([
    { pcoeff: 0.3, icoeff: 0.4, dcoeff: 0 },
    { pcoeff: -2, icoeff: 3, dcoeff: 0 }, // prevInv^(+1): rejected steps hit the safety cap
    { pcoeff: 0.1, icoeff: 0.3, dcoeff: 0.2 },
  ])('PID coefficients %o use the previous inverse errors (dy/dt = −y)', (c) => {
    const res = integrateHeunPid(decay, scalar(1), { t1: 2, dt0: 0.05, rtol: 1e-4, atol: 1e-4, ...c });
    replayFactors(res.history, c);
    expect(res.rejected).toBeGreaterThan(0);
    expect(res.rejected + res.accepted).toBe(res.history.length);
    expect(res.t).toBe(2);
    if (c.pcoeff < 0) expect(res.history.some((s) => !s.accepted && s.factor === 0.9)).toBe(true);
  });

  it('PID coefficients on a PC network, with rejections in mid-run', () => {
    const rng = new Random(31);
    const model = randomModel(rng, [4, 8, 8, 3], 'tanh', { bias: true });
    for (const w of model.weights) for (let i = 0; i < w.data.length; i++) w.data[i] = 3 * w.data[i]!;
    const x = randomNormalMat(rng, 4, 4);
    const y = randomNormalMat(rng, 4, 3);
    const c = { pcoeff: 0.1, icoeff: 0.3, dcoeff: 0.2 };
    const res = solveHeunPid(model, ffwd(model, x), y, x, {
      maxT1: 20,
      dt0: 0.05,
      rtol: 1e-3,
      atol: 1e-3,
      loss: 'mse',
      ...c,
    });
    const firstAccepted = res.history.findIndex((s) => s.accepted);
    expect(res.history.some((s, i) => !s.accepted && i > firstAccepted + 2)).toBe(true);
    replayFactors(res.history, c);
    expect(res.t).toBe(20);
  });

  /** dy/dt = −y, except that attempted step number `poisoned` (0-based) sees a NaN vector field. */
  function poisonedDecay(poisoned: number): VectorField {
    let calls = 0;
    return (y) => {
      calls++;
      const bad = Math.floor((calls - 1) / 2) === poisoned; // Heun: two evaluations per attempt
      return y.map((m) =>
        mat(
          m.rows,
          m.cols,
          Array.from(m.data, (v) => (bad ? NaN : -v)),
        ),
      );
    };
  }

  it('a rejection leaves the remembered errors untouched (derivative term)', () => {
    const c = { pcoeff: 0, icoeff: 1, dcoeff: 0.5 };
    const res = integrateHeunPid(poisonedDecay(3), scalar(1), { t1: 3, dt0: 0.02, rtol: 1e-2, atol: 1e-2, ...c });
    expect(res.history.slice(0, 3).every((s) => s.accepted)).toBe(true);
    expect(res.history[3]!.accepted).toBe(false);
    const after = res.history[4]!;
    expect(after.accepted).toBe(true);
    expect(after.factor).toBeGreaterThan(1);
    expect(after.factor).toBeLessThan(10);
    replayFactors(res.history, c);
  });

  it('a rejected step whose successor would pass t1 retries halfway to t1', () => {
    // step 0 (h = 0.75) is accepted and its successor is clipped to end at t1 = 1; step 1 (h = 0.25) sees NaN and is
    // rejected; dtmin = 0.5 pushes the proposal to 0.75 + 0.5 > t1, so diffrax retries with tprev + ½(t1 − tprev)
    const res = integrateHeunPid(poisonedDecay(1), scalar(1), { t1: 1, dt0: 0.75, rtol: 1, atol: 1, dtmin: 0.5 });
    const [s0, s1, s2] = res.history as [PidStepRecord, PidStepRecord, PidStepRecord];
    expect(s0.accepted).toBe(true);
    expect(s1.tnext).toBe(1);
    expect(s1.accepted).toBe(false);
    expect(s1.dtNext).toBe(0.5);
    expect(s2.tprev).toBe(0.75);
    expect(s2.tnext).toBe(0.875);
    expect(res.t).toBe(1);
  });

  it('a zero error estimate grows dt by factormax and is not remembered as an infinite inverse error', () => {
    // dy/dt = 1: Heun is exact, yErr = 0, scaled error 0, inverse error +inf (reset to 1 before it is stored)
    const one: VectorField = (y) =>
      y.map((m) =>
        mat(
          m.rows,
          m.cols,
          Array.from(m.data, () => 1),
        ),
      );
    const res = integrateHeunPid(one, scalar(0), {
      t1: 50,
      dt0: 0.01,
      rtol: 1e-3,
      atol: 1e-3,
      pcoeff: 0.3,
      icoeff: 0.4,
    });
    expect(res.history.map((s) => s.h)).toEqual([0.01, 0.1, 1, 10, 50 - 11.11]);
    res.history.forEach((s) => {
      expect(s.scaledError).toBe(0);
      expect(s.factor).toBe(10);
    });
    expect(val(res.y)).toBeCloseTo(50, 12);
  });

  it('a first step longer than the interval is clipped to t1', () => {
    const res = integrateHeunPid(decay, scalar(1), { t1: 0.01, dt0: 5, rtol: 1e-3, atol: 1e-3 });
    expect(res.history[0]!.tnext).toBe(0.01);
    expect(res.history[0]!.accepted).toBe(true);
    expect(res.history.length).toBe(1);
    const c = integrateConstant(decay, scalar(1), { t1: 0.5, dt0: 2, method: 'euler' });
    expect(c.ts).toEqual([0, 0.5]);
    expect(val(c.y)).toBe(0.5);
  });

  it('throws past maxSteps, counting rejected steps', () => {
    expect(() =>
      integrateHeunPid(decay, scalar(1), { t1: 20, dt0: 0.01, rtol: 1e-3, atol: 1e-3, maxSteps: 3 }),
    ).toThrow(/maxSteps/);
  });

  it('a NaN error estimate counts as infinite: factormin shrink', () => {
    let calls = 0;
    const f: VectorField = (y) => {
      calls++;
      return y.map((m) =>
        mat(
          m.rows,
          m.cols,
          Array.from(m.data, (v) => (calls <= 2 ? NaN : -v)),
        ),
      );
    };
    const res = integrateHeunPid(f, scalar(1), { t1: 1, dt0: 0.5, rtol: 1e-3, atol: 1e-3 });
    expect(res.history[0]!.scaledError).toBe(Infinity);
    expect(res.history[0]!.accepted).toBe(false);
    expect(res.history[0]!.factor).toBe(0.2);
    expect(res.history[1]!.h).toBeCloseTo(0.1, 15);
    expect(res.t).toBe(1);
  });
});

// ───────────────────────────────────────── (e) Hairer's initial step ─────────────────────────────────────────

describe('hairerInitialStep', () => {
  const linear =
    (lam: number, c = 0): VectorField =>
    (y) =>
      y.map((m) =>
        mat(
          m.rows,
          m.cols,
          Array.from(m.data, (v) => lam * v + c),
        ),
      );

  it('dy/dt = −2y, y0 = 1, rtol = atol = 1e-3', () => {
    // scale = 2e-3; d0 = 500; d1 = 1000; h0 = 0.01·d0/d1 = 0.005; f1 = −2(1 − 0.01) → d2 = (0.02/2e-3)/0.005 = 2000
    // h1 = (0.01/2000)^(1/2); dt0 = min(100 h0, h1) = h1
    const h = hairerInitialStep(linear(-2), scalar(1), { rtol: 1e-3, atol: 1e-3 });
    expect(h).toBeCloseTo(Math.sqrt(0.01 / 2000), 14);
    expect(hairerInitialStep(linear(-2), scalar(1), { rtol: 1e-3, atol: 1e-3, errorOrder: 4 })).toBeCloseTo(
      (0.01 / 2000) ** 0.25,
      14,
    );
  });

  it('d0 < 1e-5: h0 = 1e-6 and the result is capped at 100·h0', () => {
    // y0 = 0, f = −y + 3: d0 = 0 → h0 = 1e-6; d1 = 3/1e-3 = 3000; d2 = (3e-6/1e-3)/1e-6 = 3000; h1 = (0.01/3000)^½
    const h = hairerInitialStep(linear(-1, 3), scalar(0), { rtol: 1e-3, atol: 1e-3 });
    expect(Math.sqrt(0.01 / 3000)).toBeGreaterThan(1e-4);
    expect(h).toBeCloseTo(1e-4, 17);
  });

  it('d1 < 1e-5 (at a fixed point) also gives h0 = 1e-6', () => {
    // f = −(y − 1) at y0 = 1: d0 = 500 but f0 = 0 → h0 = 1e-6; d2 = 0 → h1 = max(1e-6, 1e-9); dt0 = min(1e-4, 1e-6)
    expect(hairerInitialStep(linear(-1, 1), scalar(1), { rtol: 1e-3, atol: 1e-3 })).toBe(1e-6);
  });

  it('an all-zero problem gives max(1e-6, h0·1e-3) = 1e-6', () => {
    expect(hairerInitialStep(linear(-1), scalar(0), { rtol: 1e-3, atol: 1e-3 })).toBe(1e-6);
  });

  it('norms average over all leaves', () => {
    // leaves [1] and [0,0,0]: scale 2e-3 and 1e-3; d0 = d1 = sqrt(500²/4) = 250; h0 = 0.01
    // f1 − f0 = 0.01 on the first leaf → d2 = (5/2)/0.01 = 250; h1 = (0.01/250)^½
    const y0 = [mat(1, 1, [1]), mat(1, 3, [0, 0, 0])];
    const h = hairerInitialStep(linear(-1), y0, { rtol: 1e-3, atol: 1e-3 });
    expect(h).toBeCloseTo(Math.sqrt(0.01 / 250), 14);
  });
});

// ───────────────────────────────────────────── (f) optimisers ─────────────────────────────────────────────

describe('optimisers (optax semantics)', () => {
  const p0 = new Float64Array([1, -2]);
  const g1 = new Float64Array([0.5, 1]);
  const g2 = new Float64Array([-1, 0.25]);

  it('sgd without momentum', () => {
    const s = sgdInit(2, { lr: 0.1 });
    expect(s.trace).toBeNull();
    const r = sgdUpdate(p0, g1, s, { lr: 0.1 });
    expect(r.params[0]).toBeCloseTo(0.95, 15);
    expect(r.params[1]).toBeCloseTo(-2.1, 15);
  });

  it('sgd with momentum and with nesterov', () => {
    const o = { lr: 0.1, momentum: 0.9 };
    let s = sgdInit(2, o);
    let r = sgdUpdate(p0, g1, s, o); // t = g1
    expect(Array.from(r.params)).toEqual([1 - 0.1 * 0.5, -2 - 0.1 * 1]);
    s = r.state;
    r = sgdUpdate(r.params, g2, s, o); // t = g2 + 0.9 g1 = [-0.55, 1.15]
    expect(r.params[0]).toBeCloseTo(0.95 + 0.055, 15);
    expect(r.params[1]).toBeCloseTo(-2.1 - 0.115, 15);

    const on = { lr: 0.1, momentum: 0.9, nesterov: true };
    let rn = sgdUpdate(p0, g1, sgdInit(2, on), on); // t = g1, u = g1 + 0.9 g1 = 1.9 g1
    expect(rn.params[0]).toBeCloseTo(1 - 0.1 * 0.95, 15);
    rn = sgdUpdate(rn.params, g2, rn.state, on); // t = [-0.55, 1.15], u = g2 + 0.9 t = [-1.495, 1.285]
    expect(rn.params[0]).toBeCloseTo(1 - 0.095 + 0.1495, 15);
    expect(rn.params[1]).toBeCloseTo(-2 - 0.19 - 0.1285, 15);
  });

  it('adam, three steps', () => {
    const o = { lr: 0.01 };
    let s = adamInit(2);
    // step 1: m̂ = g, v̂ = g² → update g/(|g| + eps)
    let r = adamUpdate(p0, g1, s, o);
    expect(r.params[0]).toBeCloseTo(1 - 0.01 * (0.5 / (0.5 + 1e-8)), 15);
    expect(r.params[1]).toBeCloseTo(-2 - 0.01 * (1 / (1 + 1e-8)), 15);
    expect(r.state.count).toBe(1);
    // step 2, element 0: m = 0.9·0.05 + 0.1·(−1) = −0.055; v = 0.999·0.00025 + 0.001·1 = 0.00124975
    s = r.state;
    const pa = r.params[0]!;
    r = adamUpdate(r.params, g2, s, o);
    const m2 = -0.055 / (1 - 0.81);
    const v2 = 0.00124975 / (1 - 0.998001);
    expect(r.params[0]).toBeCloseTo(pa - 0.01 * (m2 / (Math.sqrt(v2) + 1e-8)), 15);
    // step 3 with g = 0 on element 0: m = 0.9·(−0.055), v = 0.999·0.00124975
    const pb = r.params[0]!;
    r = adamUpdate(r.params, new Float64Array([0, 0]), r.state, o);
    const m3 = (0.9 * -0.055) / (1 - 0.729);
    const v3 = (0.999 * 0.00124975) / (1 - 0.999 ** 3);
    expect(r.params[0]).toBeCloseTo(pb - 0.01 * (m3 / (Math.sqrt(v3) + 1e-8)), 15);
    expect(r.state.count).toBe(3);
    // eps_root goes inside the square root
    const re = adamUpdate(p0, g1, adamInit(2), { lr: 0.01, epsRoot: 0.75 });
    expect(re.params[0]).toBeCloseTo(1 - 0.01 * (0.5 / (Math.sqrt(0.25 + 0.75) + 1e-8)), 15);
  });

  it('updatePcActivities: one optimiser step on all activities, energy before the update', () => {
    const p = smallProblem('tanh', 'mse', 21);
    const grads = activityGrads(p.model, p.acts, p.y, p.x, 'mse');
    const opt = { kind: 'sgd', lr: 0.5 } as const;
    const r = updatePcActivities(p.model, p.acts, p.y, p.x, 'mse', opt, optimInit(opt, flattenMats(p.acts).length));
    expect(r.energy).toBe(energy(p.model, p.acts, p.y, p.x, 'mse'));
    r.activities.forEach((a, l) =>
      a.data.forEach((v, i) => expect(v).toBeCloseTo(p.acts[l]!.data[i]! - 0.5 * grads[l]!.data[i]!, 15)),
    );
    expect(r.activities[2]!.data).toEqual(p.acts[2]!.data);
    expect(energy(p.model, r.activities, p.y, p.x, 'mse')).toBeLessThan(r.energy);
    // adam leaves the dummy untouched too (zero gradient → zero update)
    const oa = { kind: 'adam', lr: 0.1 } as const;
    const ra = updatePcActivities(p.model, p.acts, p.y, p.x, 'mse', oa, optimInit(oa, flattenMats(p.acts).length));
    expect(ra.activities[2]!.data).toEqual(p.acts[2]!.data);
  });

  it('updatePcParams: one optimiser step on all parameters', () => {
    const p = smallProblem('relu', 'ce', 22);
    const g = paramGrads(p.model, p.acts, p.y, p.x, 'ce');
    const opt = { kind: 'sgd', lr: 0.01 } as const;
    const r = updatePcParams(p.model, p.acts, p.y, p.x, 'ce', opt, optimInit(opt, flattenParams(p.model).length));
    r.model.weights.forEach((w, l) =>
      w.data.forEach((v, i) => expect(v).toBeCloseTo(p.model.weights[l]!.data[i]! - 0.01 * g.weights[l]!.data[i]!, 15)),
    );
    r.model.biases.forEach((b, l) =>
      b!.forEach((v, i) => expect(v).toBeCloseTo(p.model.biases[l]![i]! - 0.01 * g.biases[l]![i]!, 15)),
    );
    expect(energy(r.model, p.acts, p.y, p.x, 'ce')).toBeLessThan(energy(p.model, p.acts, p.y, p.x, 'ce'));
  });
});

// ─────────────────────────────────────────── (g) the time grid ───────────────────────────────────────────

describe('time dtype and the constant-step grid', () => {
  it('nextafter / prevbefore / clip floor', () => {
    expect(nextafterF32(1)).toBe(1 + 2 ** -23);
    expect(prevbeforeF32(1)).toBe(1 - 2 ** -24);
    expect(nextafterF32(0)).toBe(2 ** -126);
    expect(prevbeforeF32(0)).toBe(-(2 ** -126));
    expect(nextafterF32(-1)).toBe(-1 + 2 ** -24);
    expect(nextafterF64(1)).toBe(1 + 2 ** -52);
    expect(prevbeforeF64(1)).toBe(1 - 2 ** -53);
    expect(t1ClipFloor(20, 'float32')).toBe(20 - 100 * 2 ** -19);
    expect(t1ClipFloor(20)).toBe(20 - 100 * 2 ** -48);
  });

  /** The count computed independently of the implementation: ceil(fround(fround(T) / nextafter_f32(fround(dt)))). */
  const f32Count = (T: number, dt: number): number =>
    Math.ceil(Math.fround(Math.fround(T) / nextUpF32(Math.fround(dt))));

  it('maxT1 = 20, dt = 0.05 in float32 has exactly 400 steps, all on float32 times', () => {
    expect(numConstantSteps(0, 20, 0.05, 'float32')).toBe(400);
    expect(numConstantSteps(0, 20, 0.05)).toBe(400);
    const decay: VectorField = (y) =>
      y.map((m) =>
        mat(
          m.rows,
          m.cols,
          Array.from(m.data, (v) => -v),
        ),
      );
    const res = integrateConstant(decay, scalar(1), { t1: 20, dt0: 0.05, method: 'euler', timeDtype: 'float32' });
    expect(res.steps).toBe(400);
    expect(res.t).toBe(20);
    expect(res.ts[1]).toBe(Math.fround(0.05));
    expect(res.ts[2]).toBe(Math.fround(20 * Math.fround(2 / 400)));
    res.ts.forEach((t, i) => {
      expect(Math.fround(t)).toBe(t);
      if (i > 0) expect(t).toBeGreaterThan(res.ts[i - 1]!);
    });
    // the state is the product of the float32 step sizes applied in float64
    let y = 1;
    for (let i = 1; i < res.ts.length; i++) y *= 1 - Math.fround(res.ts[i]! - res.ts[i - 1]!);
    expect(val(res.y)).toBeCloseTo(y, 14);
  });

  it('float32 step counts equal the independent formula over the library-paper grid', () => {
    for (const dt of [0.5, 0.1, 0.05, 0.3, 0.7]) {
      for (const T of [5, 10, 20, 50, 100, 200, 500]) {
        expect(numConstantSteps(0, T, dt, 'float32')).toBe(f32Count(T, dt));
        expect(numConstantSteps(0, T, dt)).toBe(Math.ceil(T / nextafterF64(dt)));
      }
    }
  });

  it('float32 can give one step fewer than naive division: T = 10, dt = 0.041841', () => {
    // fround(0.041841) < 0.041841, so 10 / dt32 = 239.00002… which rounds to 239 in float32
    expect(Math.ceil(10 / 0.041841)).toBe(240);
    expect(f32Count(10, 0.041841)).toBe(239);
    expect(numConstantSteps(0, 10, 0.041841, 'float32')).toBe(239);
    expect(numConstantSteps(0, 10, 0.041841, 'float64')).toBe(240);
    const lp = linearProblem();
    const opts = { maxT1: 10, dt: 0.041841, loss: 'mse' } as const;
    const r32 = solveEuler(lp.model, lp.acts0, lp.y, lp.x, { ...opts, timeDtype: 'float32' });
    const r64 = solveEuler(lp.model, lp.acts0, lp.y, lp.x, opts);
    expect(r32.steps).toBe(239);
    expect(r64.steps).toBe(240);
    expect(r32.t).toBe(10);
    expect(r64.t).toBe(10);
    // both approximate the same solution
    expect(lp.err(r32.activities[0]!, 10)).toBeLessThan(1e-2);
    expect(lp.err(r64.activities[0]!, 10)).toBeLessThan(1e-2);
  });

  it('the legacy cumulative float32 grid ends exactly at t1', () => {
    const decay: VectorField = (y) =>
      y.map((m) =>
        mat(
          m.rows,
          m.cols,
          Array.from(m.data, (v) => -v),
        ),
      );
    const res = integrateConstant(decay, scalar(1), {
      t1: 20,
      dt0: 0.05,
      method: 'euler',
      timeDtype: 'float32',
      grid: 'cumulative',
    });
    expect(res.t).toBe(20);
    // the first 399 ends are fround(t + dt) sums
    let t = 0;
    for (let i = 1; i < res.ts.length - 1; i++) {
      t = Math.fround(t + Math.fround(0.05));
      expect(res.ts[i]).toBe(t);
    }
    expect(res.steps).toBeGreaterThanOrEqual(400);
    expect(res.steps).toBeLessThanOrEqual(401);
  });
});
