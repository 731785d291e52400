/**
 * The deep-linear-network theory (src/pc/linear-theory.ts) and the gemm kernel behind it, against float64
 * references: the energy at the exact equilibrium, S, the activity Hessian (differences of the float64 and of the
 * GPU activity gradient), the exact activities (a float64 dense solve and long inference), the gradients of F*
 * (finite differences) and one optimiser step — for sp, μPC and NTP, with and without skips.
 */
import { describe, expect, it } from 'vitest';
import {
  computeLinearActivityHessian,
  computeLinearActivitySolution,
  computeLinearEquilibEnergyGrads,
  computeLinearEquilibRescaling,
  computePcActivityGrad,
  initActivitiesWithFfwd,
  linearEquilibEnergy,
  makeMlp,
  makeSkipModel,
  matmul,
  mlpFromWeights,
  mseLoss,
  pcEnergy,
  sgd,
  solveInference,
  updateLinearEquilibEnergyParams,
  type Model,
  type ParamType,
  type Runtime,
} from '../../src/node.js';
import { GemmRecorder, asMatrix } from '../../src/pc/linalg.js';
import { Recorder } from '../../src/runtime/recorder.js';
import { Random } from '../../src/util/random.js';
import { type Mat, layerForward, mat } from '../reference/jpc64.js';
import {
  type GenModel,
  genFfwd,
  makeSkips,
  paramScalings as refScalings,
  pcActivityGrads,
  pcEnergyTotal,
} from '../reference/variants64.js';
import { expectClose, flat, randomMat, randomRefModel, readAll, tensorOf, useRuntime } from '../support/helpers.js';

const rt = useRuntime();

interface Config {
  paramType: ParamType;
  skips: boolean;
  gamma?: number;
  lambda?: number;
}

const CONFIGS: Config[] = [
  { paramType: 'sp', skips: false },
  { paramType: 'sp', skips: true, lambda: 0.5 },
  { paramType: 'mupc', skips: false, gamma: 0.5 },
  { paramType: 'mupc', skips: true, gamma: 2, lambda: 3 },
  { paramType: 'ntp', skips: false, lambda: 2 },
  { paramType: 'ntp', skips: true },
];
const DIMS = [5, 6, 6, 6, 3];
const name = (c: Config) =>
  `${c.paramType}${c.skips ? ', skips' : ''}${c.gamma ? `, γ ${c.gamma}` : ''}${c.lambda ? `, λ ${c.lambda}` : ''}`;

function refModelOf(c: Config, dims: number[], seed: number): GenModel {
  const base = randomRefModel(seed, dims, 'linear', false);
  // μPC and NTP want O(1) weights (their scalings shrink them); sp wants them small enough to stay stable.
  const std = c.paramType === 'sp' ? 0.4 : 1;
  const rng = new Random(seed + 1);
  const weights = base.weights.map((w) =>
    mat(w.rows, w.cols, Float64Array.from(randomMat(rng, w.rows, w.cols, std).data, Math.fround)),
  );
  const scales = refScalings(dims, c.paramType, {
    skips: c.skips,
    ...(c.gamma === undefined ? {} : { gamma: c.gamma }),
  }).map(Math.fround);
  return { ...base, weights, scales, ...(c.skips ? { skips: makeSkips(dims.length - 1) } : {}) };
}

function gpuModelOf(r: Runtime, c: Config, dims: number[], ref: GenModel): Model {
  return mlpFromWeights(r, {
    dims,
    weights: ref.weights.map((w) => Float32Array.from(w.data)),
    biases: null,
    actFn: 'linear',
    paramType: c.paramType,
    skipModel: c.skips ? makeSkipModel(dims.length - 1) : null,
    ...(c.gamma === undefined ? {} : { gamma: c.gamma }),
  });
}

/** Gaussian elimination with partial pivoting (float64), independent of the library's Cholesky. */
function denseSolve(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const x = Float64Array.from(b);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]!) > Math.abs(m[p * n + c]!)) p = r;
    for (let k = 0; k < n; k++) [m[c * n + k], m[p * n + k]] = [m[p * n + k]!, m[c * n + k]!];
    [x[c], x[p]] = [x[p]!, x[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = m[r * n + c]! / m[c * n + c]!;
      for (let k = c; k < n; k++) m[r * n + k] = m[r * n + k]! - f * m[c * n + k]!;
      x[r] = x[r]! - f * x[c]!;
    }
  }
  for (let r = n - 1; r >= 0; r--) {
    let s = x[r]!;
    for (let k = r + 1; k < n; k++) s -= m[r * n + k]! * x[k]!;
    x[r] = s / m[r * n + r]!;
  }
  return x;
}

/** Reference for one sample: acts from a flat hidden vector (the dummy output being the prediction). */
function actsFromHidden(ref: GenModel, dims: number[], h: Float64Array, x: Mat): Mat[] {
  const acts: Mat[] = [];
  let at = 0;
  for (let l = 1; l < dims.length - 1; l++) {
    acts.push(mat(1, dims[l]!, h.subarray(at, at + dims[l]!)));
    at += dims[l]!;
  }
  const ff = genFfwd(ref, x);
  acts.push(ff[ff.length - 1]!);
  return acts;
}

interface Reference {
  /** Per-sample Hessian (n × n) by differences of the float64 activity gradient (exact for a quadratic). */
  hessian: Float64Array;
  n: number;
  /** Exact equilibrium hidden activities per sample, and the equilibrium energy (mean over samples). */
  solution: Float64Array[];
  energy: number;
}

function reference(ref: GenModel, dims: number[], x: Mat, y: Mat, lambda: number, decay = 0, epsilon = 0): Reference {
  const n = dims.slice(1, -1).reduce((s, d) => s + d, 0);
  const opts = { loss: 'mse' as const, lambda, activityDecay: decay };
  const row = (m: Mat, b: number) => mat(1, m.cols, m.data.subarray(b * m.cols, (b + 1) * m.cols));
  const grad = (h: Float64Array, xb: Mat, yb: Mat) =>
    flat(pcActivityGrads(ref, actsFromHidden(ref, dims, h, xb), yb, xb, opts).slice(0, -1));
  const zero = new Float64Array(n);
  const x0 = row(x, 0);
  const y0 = row(y, 0);
  const g0 = grad(zero, x0, y0);
  const hessian = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const e = new Float64Array(n);
    e[j] = 1;
    const gj = grad(e, x0, y0);
    for (let i = 0; i < n; i++) hessian[i * n + j] = gj[i]! - g0[i]!;
  }
  const shifted = Float64Array.from(hessian);
  for (let i = 0; i < n; i++) shifted[i * n + i] = shifted[i * n + i]! + epsilon;
  const solution: Float64Array[] = [];
  let energy = 0;
  for (let b = 0; b < x.rows; b++) {
    const xb = row(x, b);
    const yb = row(y, b);
    const rhs = grad(zero, xb, yb).map((v) => -v);
    const z = denseSolve(shifted, rhs, n);
    solution.push(z);
    energy += pcEnergyTotal(ref, actsFromHidden(ref, dims, z, xb), yb, xb, { loss: 'mse', lambda });
  }
  return { hessian, n, solution, energy: energy / x.rows };
}

/** Second central differences of the per-sample energy (B = 1) in the hidden activities: exact for a quadratic. */
function energyHessian(ref: GenModel, dims: number[], x: Mat, y: Mat, lambda: number, decay: number): Float64Array {
  const n = dims.slice(1, -1).reduce((a, b) => a + b, 0);
  const F = (h: Float64Array) =>
    pcEnergyTotal(ref, actsFromHidden(ref, dims, h, x), y, x, { loss: 'mse', lambda, activityDecay: decay });
  const h = 0.5;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const at = (si: number, sj: number) => {
        const z = new Float64Array(n);
        z[i] = z[i]! + si * h;
        z[j] = z[j]! + sj * h;
        return F(z);
      };
      out[i * n + j] = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * h * h);
    }
  }
  return out;
}

function fixture(c: Config, seed: number, B = 4, dims = DIMS) {
  const rng = new Random(seed + 7);
  const ref = refModelOf(c, dims, seed);
  const x = randomMat(rng, B, dims[0]!);
  const y = randomMat(rng, B, dims.at(-1)!);
  const model = gpuModelOf(rt(), c, dims, ref);
  return {
    ref,
    x,
    y,
    model,
    B,
    lambda: c.lambda ?? 1,
    lambdaOpt: c.lambda === undefined ? {} : { outputEnergyScaling: c.lambda },
  };
}

describe.each(CONFIGS)('linear theory, %#: $paramType', (c) => {
  it(`${name(c)}: F* and the Hessian match the float64 reference; the Hessian matches differences of the GPU gradient`, async () => {
    const { ref, x, y, model, lambda, lambdaOpt } = fixture(c, 11);
    const r = reference(ref, DIMS, x, y, lambda);
    const { energy } = await linearEquilibEnergy(model, tensorOf(rt(), x), tensorOf(rt(), y), lambdaOpt);
    expectClose([energy], [r.energy], 1e-4, 'F*');

    const decay = 0.3;
    const rd = reference(ref, DIMS, x, y, lambda, decay);
    const H = await computeLinearActivityHessian(model, { ...lambdaOpt, activityDecay: decay });
    expect([H.rows, H.cols]).toEqual([rd.n, rd.n]);
    expectClose(H.data, rd.hessian, 1e-4, 'Hessian vs float64', 1e-2);

    // Columns from the GPU activity gradient: row j of a batch at z = e_j (x = y = 0) is (A e_j)/B.
    const n = rd.n;
    const acts = DIMS.slice(1).map((d, l) => {
      const data = new Float32Array(n * d);
      const base = DIMS.slice(1, l + 1).reduce((s, v) => s + v, 0);
      if (l < DIMS.length - 2) for (let k = 0; k < d; k++) data[(base + k) * d + k] = 1;
      return rt().tensor(data, [n, d]);
    });
    const g = await computePcActivityGrad(model, acts, new Float32Array(n * 3), {
      input: new Float32Array(n * 5),
      activityDecay: decay,
      ...lambdaOpt,
    });
    const rows = await readAll(g.grads.slice(0, -1));
    // rows is layer-major: layer l holds n × d_l; column j of A = B·[row j of every layer].
    const fromGpu = new Float64Array(n * n);
    let at = 0;
    DIMS.slice(1, -1).forEach((d, l) => {
      const base = DIMS.slice(1, l + 1).reduce((s, v) => s + v, 0);
      for (let j = 0; j < n; j++) for (let k = 0; k < d; k++) fromGpu[(base + k) * n + j] = n * rows[at + j * d + k]!;
      at += n * d;
    });
    expectClose(H.data, fromGpu, 1e-4, 'Hessian vs GPU gradient differences', 1e-2);

    const onlyDiag = await computeLinearActivityHessian(model, { ...lambdaOpt, activityDecay: decay, offDiag: false });
    const onlyOff = await computeLinearActivityHessian(model, { ...lambdaOpt, activityDecay: decay, diag: false });
    expectClose(
      onlyDiag.data.map((v, i) => v + onlyOff.data[i]!),
      H.data,
      1e-6,
      'diag + offDiag',
    );
    expect(onlyOff.data[0]).toBe(0);
    model.dispose();
  });

  it(`${name(c)}: the exact activities match a float64 solve (both methods) and long inference, whose energy is F*`, async () => {
    const { ref, x, y, model, B, lambda, lambdaOpt } = fixture(c, 12);
    const r = reference(ref, DIMS, x, y, lambda);
    // The reference per sample, laid out layer-major like the tensors.
    const layerMajor = (solution: Float64Array[]) => {
      const out = new Float64Array(B * r.n);
      let at = 0;
      DIMS.slice(1, -1).forEach((d, l) => {
        const base = DIMS.slice(1, l + 1).reduce((s, v) => s + v, 0);
        for (let b = 0; b < B; b++) for (let k = 0; k < d; k++) out[at + b * d + k] = solution[b]![base + k]!;
        at += B * d;
      });
      return out;
    };
    const want = layerMajor(r.solution);
    for (const method of ['output-space', 'block-cholesky'] as const) {
      const z = await computeLinearActivitySolution(model, tensorOf(rt(), x), tensorOf(rt(), y), {
        ...lambdaOpt,
        method,
      });
      expect(z.map((t) => t.shape)).toEqual(DIMS.slice(1).map((d) => [B, d]));
      expectClose((await readAll(z.slice(0, -1))).subarray(0, want.length), want, 2e-4, `z* (${method})`, 1e-2);
      // The energy at the solution is F*.
      const e = await (await pcEnergy(model, z, tensorOf(rt(), y), { input: tensorOf(rt(), x), ...lambdaOpt })).item();
      expectClose([e], [r.energy], 1e-4, `F at z* (${method})`);
    }
    // With activity decay and a Tikhonov shift only the block solver applies.
    const rs = reference(ref, DIMS, x, y, lambda, 0.2, 0.1);
    const zs = await computeLinearActivitySolution(model, tensorOf(rt(), x), tensorOf(rt(), y), {
      ...lambdaOpt,
      activityDecay: 0.2,
      epsilon: 0.1,
    });
    const hidden = await readAll(zs.slice(0, -1));
    expectClose(hidden.subarray(0, want.length), layerMajor(rs.solution), 2e-4, 'z* with decay and ε', 1e-2);

    // Long inference reaches the same activities and energy (JPC's own check, at 1e-3 here).
    const init = await initActivitiesWithFfwd(model, tensorOf(rt(), x));
    const solved = await solveInference(model, init, tensorOf(rt(), y), {
      input: tensorOf(rt(), x),
      maxT1: 400 * B,
      stepsizeController: { pid: { rtol: 1e-6, atol: 1e-6 } },
      ...lambdaOpt,
    });
    const numerical = await (
      await pcEnergy(model, solved.activities, tensorOf(rt(), y), { input: tensorOf(rt(), x), ...lambdaOpt })
    ).item();
    const { energy } = await linearEquilibEnergy(model, tensorOf(rt(), x), tensorOf(rt(), y), lambdaOpt);
    expect(Math.abs(numerical - energy) / energy, `numerical ${numerical} vs theory ${energy}`).toBeLessThanOrEqual(
      1e-3,
    );
    expectClose(
      (await readAll(solved.activities.slice(0, -1))).subarray(0, want.length),
      want,
      1e-2,
      'inference vs z*',
      1e-1,
    );
    model.dispose();
  });

  it(`${name(c)}: ∂F*/∂W matches finite differences of the float64 F*, and one SGD step applies it`, async () => {
    const { ref, x, y, model, B, lambda, lambdaOpt } = fixture(c, 13, 3);
    const grads = await computeLinearEquilibEnergyGrads(model, tensorOf(rt(), x), tensorOf(rt(), y), lambdaOpt);
    expect(grads.biases.every((b) => b === null)).toBe(true);
    const gpu = await readAll(grads.weights);
    const fd: number[] = [];
    const h = 1e-5;
    const energyAt = (weights: Mat[]) => reference({ ...ref, weights }, DIMS, x, y, lambda).energy;
    ref.weights.forEach((w, l) => {
      for (let i = 0; i < w.data.length; i++) {
        const plus = ref.weights.map((m) => mat(m.rows, m.cols, m.data));
        const minus = ref.weights.map((m) => mat(m.rows, m.cols, m.data));
        plus[l]!.data[i] = w.data[i]! + h;
        minus[l]!.data[i] = w.data[i]! - h;
        fd.push((energyAt(plus) - energyAt(minus)) / (2 * h));
      }
    });
    expectClose(gpu, fd, 2e-3, '∂F*/∂W vs finite differences', 5e-2);
    expectClose([grads.energy], [reference(ref, DIMS, x, y, lambda).energy], 1e-4, 'energy with the grads');

    const before = (await model.toArrays()).weights;
    const optim = sgd({ lr: 0.1 });
    const state = optim.init(model);
    const step = await updateLinearEquilibEnergyParams(model, optim, state, tensorOf(rt(), x), tensorOf(rt(), y), {
      ...lambdaOpt,
      returnGrads: true,
    });
    expectClose(await readAll(step.grads!.weights), gpu, 1e-5, 'returned grads');
    const after = (await model.toArrays()).weights;
    const expected = before.flatMap((w) => [...w]).map((v, i) => v - 0.1 * gpu[i]!);
    expectClose(
      after.flatMap((w) => [...w]),
      expected,
      1e-5,
      'W − lr·∇F*',
      1e-3,
    );
    expect(B).toBe(3);
    model.dispose();
  });
});

/** Every parameterisation × skips × γ × λ. */
const EVERY_SETTING: Config[] = [];
for (const paramType of ['sp', 'mupc', 'ntp'] as const) {
  for (const skips of [false, true]) {
    for (const gamma of [undefined, 0.5]) {
      for (const lambda of [undefined, 2.5])
        EVERY_SETTING.push({ paramType, skips, ...(gamma ? { gamma } : {}), ...(lambda ? { lambda } : {}) });
    }
  }
}

describe('computeLinearActivitySolution: the last activity is the prediction, every method and setting', () => {
  it('dims [1, 1, 1], weights 1, x = 1, y = 3: z* = [2, 2] (JPC) with every method', async () => {
    const model = mlpFromWeights(rt(), {
      dims: [1, 1, 1],
      weights: [Float32Array.of(1), Float32Array.of(1)],
      biases: null,
      actFn: 'linear',
    });
    for (const method of ['auto', 'output-space', 'block-cholesky'] as const) {
      const z = await computeLinearActivitySolution(model, Float32Array.of(1), Float32Array.of(3), { method });
      expect(await readAll(z), method).toEqual(Float32Array.of(2, 2));
    }
    model.dispose();
  });

  // Every parameterisation × skips × γ × λ, and activity decay / ε where a method accepts them: z*_1..z*_H from a
  // float64 dense solve of the energy's stationarity, z*_L = s_L·W_L·z*_H in float64 (JPC's dummy prediction).
  const table = EVERY_SETTING;
  it.each(table.map((c) => [name(c), c] as const))('%s', async (_n, c) => {
    const dims = [3, 4, 4, 4, 2];
    const { ref, x, y, model, B, lambda, lambdaOpt } = fixture(c, 21 + table.indexOf(c), 3, dims);
    const H = dims.length - 2;
    const n = dims.slice(1, -1).reduce((a, b) => a + b, 0);
    // Layer-major hidden activities and the float64 prediction from the last of them.
    const expected = (solution: Float64Array[]) => {
      const hidden = new Float64Array(B * n);
      const last = mat(B, dims[H]!);
      let at = 0;
      dims.slice(1, -1).forEach((d, l) => {
        const base = dims.slice(1, l + 1).reduce((a, b) => a + b, 0);
        for (let b = 0; b < B; b++) for (let k = 0; k < d; k++) hidden[at + b * d + k] = solution[b]![base + k]!;
        at += B * d;
      });
      for (let b = 0; b < B; b++)
        for (let k = 0; k < dims[H]!; k++) last.data[b * dims[H]! + k] = solution[b]![n - dims[H]! + k]!;
      return { hidden, prediction: layerForward(ref, H, last).data };
    };
    const settings: {
      opts: { activityDecay?: number; epsilon?: number };
      methods: readonly ('auto' | 'output-space' | 'block-cholesky')[];
    }[] = [
      { opts: {}, methods: ['auto', 'output-space', 'block-cholesky'] },
      { opts: { activityDecay: 0.3 }, methods: ['auto', 'block-cholesky'] },
      { opts: { epsilon: 0.2 }, methods: ['auto', 'block-cholesky'] },
    ];
    for (const { opts, methods } of settings) {
      const want = expected(reference(ref, dims, x, y, lambda, opts.activityDecay ?? 0, opts.epsilon ?? 0).solution);
      const got: Float32Array[] = [];
      for (const method of methods) {
        const what = `${JSON.stringify(opts)} ${method}`;
        const z = await computeLinearActivitySolution(model, tensorOf(rt(), x), tensorOf(rt(), y), {
          ...lambdaOpt,
          ...opts,
          method,
        });
        expect(z.map((t) => t.shape)).toEqual(dims.slice(1).map((d) => [B, d]));
        const all = await readAll(z);
        expectClose(all.subarray(0, B * n), want.hidden, 2e-4, `${what}: z*_1..z*_H`, 1e-2);
        expectClose(all.subarray(B * n), want.prediction, 2e-4, `${what}: z*_L = s_L W_L z*_H`, 1e-2);
        got.push(all);
      }
      got
        .slice(1)
        .forEach((g, i) =>
          expectClose(g, got[0]!, 2e-4, `${JSON.stringify(opts)}: ${methods[i + 1]} vs ${methods[0]}`, 1e-2),
        );
    }
    model.dispose();
  });
});

describe('F*, S, the Hessian and ∂F*/∂W for every parameterisation × skips × γ × λ', () => {
  const table = EVERY_SETTING;
  it.each(table.map((c) => [name(c), c] as const))('%s', async (_n, c) => {
    const dims = [3, 4, 4, 4, 2];
    const { ref, x, y, model, lambda, lambdaOpt } = fixture(c, 51 + table.indexOf(c), 2, dims);
    const L = dims.length - 1;
    // F*: the energy at the float64 dense solve's minimum.
    const r = reference(ref, dims, x, y, lambda);
    const { energy, rescaling } = await linearEquilibEnergy(model, tensorOf(rt(), x), tensorOf(rt(), y), lambdaOpt);
    expectClose([energy], [r.energy], 1e-4, 'F*');
    // S = I/λ + Σ_i J_i J_iᵀ from the reference's maps M_l = s_l W_l (+ I with a skip), in float64.
    const dy = dims[L]!;
    const M = (l: number) => {
      const w = ref.weights[l]!;
      const m = Float64Array.from(w.data, (v) => ref.scales![l]! * v);
      if (ref.skips?.[l]) for (let k = 0; k < w.rows; k++) m[k * w.cols + k] = m[k * w.cols + k]! + 1;
      return { rows: w.rows, cols: w.cols, data: m };
    };
    const S = new Float64Array(dy * dy);
    for (let k = 0; k < dy; k++) S[k * dy + k] = 1 / lambda;
    let J = {
      rows: dy,
      cols: dy,
      data: Float64Array.from({ length: dy * dy }, (_, k) => (k % (dy + 1) === 0 ? 1 : 0)),
    };
    for (let i = L - 1; i >= 1; i--) {
      const m = M(i);
      const next = new Float64Array(dy * m.cols);
      for (let a = 0; a < dy; a++)
        for (let b = 0; b < m.cols; b++)
          for (let k = 0; k < m.rows; k++)
            next[a * m.cols + b] = next[a * m.cols + b]! + J.data[a * J.cols + k]! * m.data[k * m.cols + b]!;
      J = { rows: dy, cols: m.cols, data: next };
      for (let a = 0; a < dy; a++)
        for (let b = 0; b < dy; b++)
          for (let k = 0; k < J.cols; k++)
            S[a * dy + b] = S[a * dy + b]! + J.data[a * J.cols + k]! * J.data[b * J.cols + k]!;
    }
    expectClose(rescaling.data, S, 1e-4, 'S from linearEquilibEnergy');
    expectClose((await computeLinearEquilibRescaling(model, lambdaOpt)).data, S, 1e-4, 'S');
    // The Hessian: second differences of the energy (one sample), with and without decay.
    for (const decay of [0, 0.4]) {
      const got = await computeLinearActivityHessian(model, { ...lambdaOpt, activityDecay: decay });
      expectClose(
        got.data,
        energyHessian(ref, dims, mat(1, 3, x.data.subarray(0, 3)), mat(1, 2, y.data.subarray(0, 2)), lambda, decay),
        1e-4,
        `Hessian (decay ${decay})`,
        1e-2,
      );
    }
    // ∂F*/∂W against central differences of the float64 F*, and one SGD step.
    const grads = await computeLinearEquilibEnergyGrads(model, tensorOf(rt(), x), tensorOf(rt(), y), lambdaOpt);
    expectClose([grads.energy], [r.energy], 1e-4, 'F* with the gradients');
    const h = 1e-5;
    const fd: number[] = [];
    ref.weights.forEach((w, l) => {
      for (let k = 0; k < w.data.length; k++) {
        const at = (d: number) =>
          reference(
            {
              ...ref,
              weights: ref.weights.map((m, j) =>
                j === l
                  ? mat(
                      m.rows,
                      m.cols,
                      Float64Array.from(m.data, (v, q) => (q === k ? v + d : v)),
                    )
                  : m,
              ),
            },
            dims,
            x,
            y,
            lambda,
          ).energy;
        fd.push((at(h) - at(-h)) / (2 * h));
      }
    });
    const gpu = await readAll(grads.weights);
    expectClose(gpu, fd, 2e-3, '∂F*/∂W vs finite differences', 5e-2);
    const before = (await model.toArrays()).weights.flatMap((w) => [...w]);
    const optim = sgd({ lr: 0.05 });
    await updateLinearEquilibEnergyParams(
      model,
      optim,
      optim.init(model),
      tensorOf(rt(), x),
      tensorOf(rt(), y),
      lambdaOpt,
    );
    expectClose(
      (await model.toArrays()).weights.flatMap((w) => [...w]),
      before.map((v, k) => v - 0.05 * gpu[k]!),
      1e-5,
      'W − lr·∇F*',
      1e-3,
    );
    model.dispose();
  });
});

describe('computeLinearActivityHessian is the Hessian of the energy where JPC’s formula is not', () => {
  // JPC's compute_linear_activity_hessian scales the output layer's block by its own a_L: 1/√(N·L) for ntp with
  // skips (its energy, _get_param_scalings, uses 1/√N there), and without γ for sp and ntp (its energy divides s_L by
  // γ for every parameterisation). WPC builds every block from the model's scalings, i.e. from the energy.
  const cases: (Config & { jpcOutputScale: (N: number, L: number) => number })[] = [
    { paramType: 'ntp', skips: true, jpcOutputScale: (N, L) => 1 / Math.sqrt(N * L) },
    { paramType: 'ntp', skips: true, lambda: 2, gamma: 0.5, jpcOutputScale: (N, L) => 1 / Math.sqrt(N * L) },
    { paramType: 'ntp', skips: false, gamma: 0.5, jpcOutputScale: (N) => 1 / Math.sqrt(N) },
    { paramType: 'sp', skips: false, gamma: 0.5, jpcOutputScale: () => 1 },
  ];
  it.each(cases.map((c) => [name(c), c] as const))(
    '%s: WPC equals the energy’s finite-difference Hessian; JPC’s output block does not',
    async (_n, c) => {
      const dims = [3, 4, 4, 4, 2];
      const { ref, model, lambda, lambdaOpt } = fixture(c, 31 + cases.indexOf(c), 1, dims);
      const N = dims[1]!;
      const L = dims.length - 1;
      const x = randomMat(new Random(5), 1, dims[0]!);
      const y = randomMat(new Random(6), 1, dims.at(-1)!);
      for (const decay of [0, 0.25]) {
        const want = energyHessian(ref, dims, x, y, lambda, decay);
        const got = await computeLinearActivityHessian(model, { ...lambdaOpt, activityDecay: decay });
        expectClose(got.data, want, 1e-4, `Hessian vs second differences of the energy (decay ${decay})`, 1e-2);
      }
      // JPC's last diagonal block, (1 + ad)·I + λ·a²·WᵀW with its a, against the energy's.
      const n = dims.slice(1, -1).reduce((a, b) => a + b, 0);
      const dH = dims[L - 1]!;
      const W = ref.weights[L - 1]!;
      const a = c.jpcOutputScale(N, L);
      const want = energyHessian(ref, dims, x, y, lambda, 0);
      let worst = 0;
      for (let r = 0; r < dH; r++) {
        for (let q = 0; q < dH; q++) {
          let gram = 0;
          for (let o = 0; o < W.rows; o++) gram += W.data[o * W.cols + r]! * W.data[o * W.cols + q]!;
          const jpc = (r === q ? 1 : 0) + lambda * a * a * gram;
          worst = Math.max(worst, Math.abs(jpc - want[(n - dH + r) * n + (n - dH + q)]!));
        }
      }
      expect(worst, 'JPC’s output block differs from the energy’s').toBeGreaterThan(1e-2);
      model.dispose();
    },
  );
});

describe('linear theory: scalar output and S', () => {
  it.each([
    ['sp', false],
    ['mupc', false],
    ['ntp', false],
    ['sp', true],
    ['mupc', true],
    ['ntp', true],
  ] as const)('%s (skips: %s): F* = mseLoss/S with one output (JPC’s check, 1e-5)', async (paramType, skips) => {
    const dims = [4, 64, 64, 1];
    const gamma = 0.01;
    const N = 64;
    const L = 3;
    const lambda = gamma * gamma * N * L;
    const model = makeMlp(rt(), {
      seed: 3,
      inputDim: 4,
      width: N,
      depth: L,
      outputDim: 1,
      actFn: 'linear',
      useBias: false,
      paramType,
      skipModel: skips ? makeSkipModel(L) : null,
      ...(paramType === 'mupc' ? { gamma } : {}),
    });
    const rng = new Random(5);
    const x = tensorOf(rt(), randomMat(rng, 2, dims[0]!));
    const y = tensorOf(rt(), randomMat(rng, 2, 1));
    const { energy, rescaling } = await linearEquilibEnergy(model, x, y, { outputEnergyScaling: lambda });
    const S = await computeLinearEquilibRescaling(model, { outputEnergyScaling: lambda });
    expect([S.rows, S.cols]).toEqual([1, 1]);
    expect(S.data[0]).toBe(rescaling.data[0]);
    const pred = (await initActivitiesWithFfwd(model, x)).at(-1)!;
    const mse = await (await mseLoss(pred, y)).item();
    expectClose([energy], [mse / S.data[0]!], 1e-5, 'F* vs mse/S');
    model.dispose();
  });
});

describe('gemm', () => {
  it('matmul matches float64 products for every transpose and odd shapes', async () => {
    const rng = new Random(9);
    for (const [m, k, n] of [
      [1, 1, 1],
      [7, 13, 5],
      [33, 17, 29],
      [64, 300, 10],
    ] as const) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const A = randomMat(rng, transA ? k : m, transA ? m : k);
          const Bm = randomMat(rng, transB ? n : k, transB ? k : n);
          const got = await (
            await matmul(tensorOf(rt(), A), tensorOf(rt(), Bm), { transA, transB, alpha: -0.5 })
          ).toArray();
          const want = new Float64Array(m * n);
          const a = (i: number, p: number) => (transA ? A.data[p * m + i]! : A.data[i * k + p]!);
          const b = (p: number, j: number) => (transB ? Bm.data[j * k + p]! : Bm.data[p * n + j]!);
          for (let i = 0; i < m; i++)
            for (let j = 0; j < n; j++) {
              let s = 0;
              for (let p = 0; p < k; p++) s += Math.fround(a(i, p)) * Math.fround(b(p, j));
              want[i * n + j] = -0.5 * s;
            }
          expectClose(got, want, 1e-4, `${m}×${k}×${n} transA ${transA} transB ${transB}`, 1e-2);
        }
      }
    }
  });

  it('C = α·A·op(B) + A + β·D (the residual and accumulate epilogues)', async () => {
    const rng = new Random(10);
    const [m, n] = [9, 6];
    const A = randomMat(rng, m, n);
    const Bm = randomMat(rng, n, n);
    const D = randomMat(rng, m, n);
    const gemm = await GemmRecorder.create(rt());
    const c = rt().empty([m, n]);
    const rec = new Recorder(rt(), 'test.gemm');
    const [ta, tb, td] = [A, Bm, D].map((t) => tensorOf(rt(), t));
    gemm.record(rec, {
      m,
      n,
      k: n,
      a: asMatrix(ta!),
      b: asMatrix(tb!),
      transB: true,
      c: asMatrix(c),
      d: asMatrix(td!),
      alpha: 2,
      beta: -1,
      addA: true,
    });
    rec.submit();
    gemm.release();
    const got = await c.toArray();
    const want = new Float64Array(m * n);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < n; p++) s += Math.fround(A.data[i * n + p]!) * Math.fround(Bm.data[j * n + p]!);
        want[i * n + j] = 2 * s + Math.fround(A.data[i * n + j]!) - Math.fround(D.data[i * n + j]!);
      }
    expectClose(got, want, 1e-5, 'gemm epilogue');
  });
});

describe('linear theory: validation', () => {
  it('names the argument and leaves the model alone', async () => {
    const relu = makeMlp(rt(), { seed: 1, inputDim: 3, width: 4, depth: 3, outputDim: 2, actFn: 'relu' });
    const biased = makeMlp(rt(), {
      seed: 1,
      inputDim: 3,
      width: 4,
      depth: 3,
      outputDim: 2,
      actFn: 'linear',
      useBias: true,
    });
    const linear = makeMlp(rt(), { seed: 1, inputDim: 3, width: 4, depth: 3, outputDim: 2, actFn: 'linear' });
    const x = new Float32Array(6);
    const y = new Float32Array(4);
    await expect(linearEquilibEnergy(relu, x, y)).rejects.toThrow(/model.actFn must be 'linear', got 'relu'/);
    await expect(linearEquilibEnergy(biased, x, y)).rejects.toThrow(/layer 0 has a bias/);
    await expect(linearEquilibEnergy(linear, new Float32Array(5), y)).rejects.toThrow(
      /linearEquilibEnergy: x must hold B×3 values/,
    );
    await expect(linearEquilibEnergy(linear, x, new Float32Array(6))).rejects.toThrow(
      /x and y must have the same batch size, got 2 and 3/,
    );
    await expect(linearEquilibEnergy(linear, x, y, { outputEnergyScaling: 0 })).rejects.toThrow(
      /options.outputEnergyScaling must be a finite number > 0/,
    );
    await expect(linearEquilibEnergy(linear, x, y, { lambda: 1 } as never)).rejects.toThrow(/unknown option/);
    await expect(
      computeLinearActivitySolution(linear, x, y, { method: 'output-space', activityDecay: 1 }),
    ).rejects.toThrow(/method 'output-space' needs activityDecay = 0/);
    await expect(computeLinearActivitySolution(linear, x, y, { method: 'lu' as never })).rejects.toThrow(
      /options.method/,
    );
    await expect(computeLinearActivityHessian(linear, { diag: 1 as never })).rejects.toThrow(
      /options.diag must be a boolean/,
    );
    await expect(
      computeLinearActivityHessian(
        makeMlp(rt(), { seed: 1, inputDim: 3, width: 4, depth: 1, outputDim: 2, actFn: 'linear' }),
      ),
    ).rejects.toThrow(/no hidden layer/);
    const optim = sgd({ lr: 1 });
    const state = optim.init(linear);
    const before = await linear.toArrays();
    await expect(updateLinearEquilibEnergyParams(linear, optim, state, x, new Float32Array(3))).rejects.toThrow(
      /y must hold B×2 values/,
    );
    expect((await linear.toArrays()).weights).toEqual(before.weights);
    await expect(matmul(rt().zeros([2, 3]), rt().zeros([2, 3]))).rejects.toThrow(
      /matmul: inner dimensions differ: op\(a\) is 2×3/,
    );
    await expect(matmul(rt().zeros([2, 3]), rt().zeros([3, 3]), { transC: true } as never)).rejects.toThrow(
      /unknown option 'transC'/,
    );
    for (const m of [relu, biased, linear]) m.dispose();
  });
});
