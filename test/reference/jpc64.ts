/**
 * jpc64 — an independent float64 CPU reference of JPC's maths, used by the test suite as the oracle for
 * every GPU kernel. Written from /work/shared/spec/jpc-semantics.md and from the sources of JPC (HEAD 7d6cc05),
 * diffrax (HEAD 5ea5fcb, 0.7.1+), equinox, optimistix and optax. Nothing here imports from src/ except the
 * seeded generator.
 *
 * Conventions
 * - Matrices are row-major float64 (`Mat`). A batch of vectors is a `Mat` with one row per sample.
 * - A model has L ≥ 2 layers, indexed 0..L-1 in code (JPC's f_1..f_L). Layer l has W_l of shape
 *   [out_l, in_l] (`W.data[o * in + i]`) and an optional bias b_l. Its map is
 *       f_l(z) = s_l · (W_l · act_l(z) + b_l),   act_0 = identity,  act_l = φ (the model's activation) for l ≥ 1,
 *   i.e. the activation comes *before* the linear map and the scaling s_l multiplies the bias too.
 * - Supervised activities are `acts[0..L-1]`; `acts[l]` has width out_l. The last one is the dummy
 *   (the ffwd prediction): the energy never reads it and its gradient is 0, but it is part of the ODE state.
 * - Every energy and gradient carries JPC's 1/B factor (B = rows of y).
 */
import type { Random } from '../../src/util/random.js';

// ───────────────────────────────────────── matrices ─────────────────────────────────────────

/** A dense row-major float64 matrix. */
export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

/** A matrix of the given shape; `data` (copied) or zeros. */
export function mat(rows: number, cols: number, data?: ArrayLike<number>): Mat {
  const out = new Float64Array(rows * cols);
  if (data !== undefined) {
    if (data.length !== rows * cols) {
      throw new RangeError(`mat: expected ${rows * cols} values for ${rows}x${cols}, got ${data.length}`);
    }
    out.set(data);
  }
  return { rows, cols, data: out };
}

/** A matrix from nested rows, e.g. `matFromRows([[1, 2], [3, 4]])`. */
export function matFromRows(rows: readonly (readonly number[])[]): Mat {
  const r = rows.length;
  const c = rows[0]?.length ?? 0;
  const m = mat(r, c);
  rows.forEach((row, i) => {
    if (row.length !== c) throw new RangeError('matFromRows: ragged rows');
    row.forEach((v, j) => {
      m.data[i * c + j] = v;
    });
  });
  return m;
}

export function cloneMat(m: Mat): Mat {
  return { rows: m.rows, cols: m.cols, data: Float64Array.from(m.data) };
}

export function cloneMats(ms: readonly Mat[]): Mat[] {
  return ms.map(cloneMat);
}

/** Entries drawn from U(lo, hi). */
export function randomUniformMat(rng: Random, rows: number, cols: number, lo: number, hi: number): Mat {
  const m = mat(rows, cols);
  for (let i = 0; i < m.data.length; i++) m.data[i] = rng.uniform(lo, hi);
  return m;
}

/** Entries drawn from N(0, std²). */
export function randomNormalMat(rng: Random, rows: number, cols: number, std = 1): Mat {
  const m = mat(rows, cols);
  for (let i = 0; i < m.data.length; i++) m.data[i] = std * rng.normal();
  return m;
}

/** Float32 copy of a matrix's data (for uploading to, or comparing with, the GPU). */
export function toFloat32(m: Mat): Float32Array {
  return Float32Array.from(m.data);
}

/** A float64 `Mat` from float32 (or any numeric) data, e.g. a buffer read back from the GPU. */
export function fromFloat32(data: ArrayLike<number>, rows: number, cols: number): Mat {
  return mat(rows, cols, data);
}

/** Concatenates the data of several matrices (in order) into one vector. */
export function flattenMats(ms: readonly Mat[]): Float64Array {
  const n = ms.reduce((s, m) => s + m.data.length, 0);
  const out = new Float64Array(n);
  let off = 0;
  for (const m of ms) {
    out.set(m.data, off);
    off += m.data.length;
  }
  return out;
}

/** Splits a flat vector back into matrices shaped like `like`. */
export function unflattenMats(vec: Float64Array, like: readonly Mat[]): Mat[] {
  let off = 0;
  const out = like.map((m) => {
    const r = mat(m.rows, m.cols, vec.subarray(off, off + m.data.length));
    off += m.data.length;
    return r;
  });
  if (off !== vec.length) throw new RangeError(`unflattenMats: vector has ${vec.length} values, shapes need ${off}`);
  return out;
}

/** Largest |a − b| over two equally shaped lists of matrices. */
export function maxAbsDiff(a: readonly Mat[], b: readonly Mat[]): number {
  if (a.length !== b.length) throw new RangeError('maxAbsDiff: different lengths');
  let m = 0;
  a.forEach((x, k) => {
    const y = b[k]!;
    if (x.rows !== y.rows || x.cols !== y.cols) throw new RangeError('maxAbsDiff: different shapes');
    for (let i = 0; i < x.data.length; i++) m = Math.max(m, Math.abs(x.data[i]! - y.data[i]!));
  });
  return m;
}

/**
 * optimistix `rms_norm` over a list of leaves: sqrt(Σ x²) / sqrt(n), n = total element count (every leaf counts,
 * the dummy activity included). A single element gives |x| (optimistix's `two_norm` special case).
 */
export function rmsNorm(leaves: readonly Mat[]): number {
  let n = 0;
  let ss = 0;
  let last = 0;
  for (const m of leaves) {
    n += m.data.length;
    for (let i = 0; i < m.data.length; i++) {
      const v = m.data[i]!;
      ss += v * v;
      last = v;
    }
  }
  if (n === 0) return 0;
  if (n === 1) return Math.abs(last);
  return Math.sqrt(ss) / Math.sqrt(n);
}

// ──────────────────────────────────────── activations ────────────────────────────────────────

/** JPC's eight activation names (`jpc._utils._ACT_FNS`). */
export type Act = 'linear' | 'tanh' | 'hard_tanh' | 'relu' | 'leaky_relu' | 'gelu' | 'selu' | 'silu';
export const ACTIVATIONS: readonly Act[] = [
  'linear',
  'tanh',
  'hard_tanh',
  'relu',
  'leaky_relu',
  'gelu',
  'selu',
  'silu',
];

/** Kinks of each activation (points where the derivative jumps); finite differences must avoid them. */
export const ACT_KINKS: Readonly<Record<Act, readonly number[]>> = {
  linear: [],
  tanh: [],
  hard_tanh: [-1, 1],
  relu: [0],
  leaky_relu: [0],
  gelu: [],
  selu: [0],
  silu: [],
};

export const SELU_SCALE = 1.0507009873554805;
export const SELU_ALPHA = 1.6732632423543772;
export const LEAKY_RELU_SLOPE = 0.01;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/**
 * φ(x) as JAX computes it:
 * - hard_tanh: `jnp.where(x > 1, 1, jnp.where(x < -1, -1, x))`
 * - relu: `jnp.maximum(x, 0)`; leaky_relu: `jnp.where(x >= 0, x, 0.01 x)`
 * - gelu: `approximate=True`, x·½(1 + tanh(√(2/π)(x + 0.044715 x³)))
 * - selu: λ·`jnp.where(x > 0, x, α expm1(x))`; silu: x·sigmoid(x)
 */
export function act(name: Act, x: number): number {
  switch (name) {
    case 'linear':
      return x;
    case 'tanh':
      return Math.tanh(x);
    case 'hard_tanh':
      return x > 1 ? 1 : Math.max(x, -1);
    case 'relu':
      return Math.max(x, 0);
    case 'leaky_relu':
      return x >= 0 ? x : LEAKY_RELU_SLOPE * x;
    case 'gelu':
      return x * 0.5 * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x)));
    case 'selu':
      return SELU_SCALE * (x > 0 ? x : SELU_ALPHA * Math.expm1(x));
    case 'silu':
      return x * sigmoid(x);
  }
}

/**
 * φ'(x), equal to what `jax.grad` returns, kinks included:
 * - relu'(0) = 0 (JAX's custom_jvp selects g only where x > 0)
 * - leaky_relu'(0) = 1 (`where(x >= 0, …)` takes the x branch at 0)
 * - hard_tanh'(x) = 1 on the CLOSED interval [-1, 1], 0 outside (the `where`s take the x branch at ±1)
 * - selu'(0) = λα (`where(x > 0, …)` takes the expm1 branch at 0, and expm1'(0) = 1)
 */
export function actDeriv(name: Act, x: number): number {
  switch (name) {
    case 'linear':
      return 1;
    case 'tanh': {
      const t = Math.tanh(x);
      return 1 - t * t;
    }
    case 'hard_tanh':
      return x > 1 || x < -1 ? 0 : 1;
    case 'relu':
      return x > 0 ? 1 : 0;
    case 'leaky_relu':
      return x >= 0 ? 1 : LEAKY_RELU_SLOPE;
    case 'gelu': {
      const u = SQRT_2_OVER_PI * (x + GELU_C * x * x * x);
      const t = Math.tanh(u);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_C * x * x);
    }
    case 'selu':
      return x > 0 ? SELU_SCALE : SELU_SCALE * SELU_ALPHA * Math.exp(x);
    case 'silu': {
      const s = sigmoid(x);
      return s * (1 + x * (1 - s));
    }
  }
}

// ─────────────────────────────────────────── model ───────────────────────────────────────────

export type Loss = 'mse' | 'ce';

/** A JPC `make_mlp` network (plus optional per-layer scalings s_l, default 1). */
export interface RefModel {
  /** W_l, shape [out_l, in_l]. */
  weights: Mat[];
  /** b_l (length out_l) or null for no bias. */
  biases: (Float64Array | null)[];
  act: Act;
  /** s_l per layer (`_get_param_scalings`); all 1 when absent. */
  scales?: readonly number[];
}

export function numLayers(model: RefModel): number {
  return model.weights.length;
}

export function layerScale(model: RefModel, l: number): number {
  return model.scales?.[l] ?? 1;
}

/** act_l: identity for the first layer, φ otherwise. */
function layerAct(model: RefModel, l: number): Act {
  return l === 0 ? 'linear' : model.act;
}

function W(model: RefModel, l: number): Mat {
  const w = model.weights[l];
  if (w === undefined) throw new RangeError(`no layer ${l}`);
  return w;
}

/** Throws unless the model, activities, x and y have consistent shapes. */
export function checkShapes(model: RefModel, acts: readonly Mat[] | null, y: Mat | null, x: Mat): void {
  const L = numLayers(model);
  if (L < 2) throw new RangeError('jpc64 needs at least 2 layers (JPC mis-indexes a 1-layer supervised energy)');
  if (model.biases.length !== L) throw new RangeError('biases must have one entry per layer');
  if (model.scales !== undefined && model.scales.length !== L)
    throw new RangeError('scales must have one entry per layer');
  const B = x.rows;
  for (let l = 0; l < L; l++) {
    const w = W(model, l);
    const inWidth = l === 0 ? x.cols : W(model, l - 1).rows;
    if (w.cols !== inWidth) throw new RangeError(`layer ${l}: W has ${w.cols} columns, input has width ${inWidth}`);
    const b = model.biases[l];
    if (b && b.length !== w.rows) throw new RangeError(`layer ${l}: bias length ${b.length} != ${w.rows}`);
    const a = acts?.[l];
    if (acts && (!a || a.rows !== B || a.cols !== w.rows)) {
      throw new RangeError(`activity ${l} must be ${B}x${w.rows}`);
    }
  }
  if (acts && acts.length !== L) throw new RangeError(`expected ${L} activities, got ${acts.length}`);
  if (y && (y.rows !== B || y.cols !== W(model, L - 1).rows)) {
    throw new RangeError(`y must be ${B}x${W(model, L - 1).rows}`);
  }
}

/** f_l(input) = s_l (W_l act_l(input) + b_l), batched: [B, in_l] → [B, out_l]. */
export function layerForward(model: RefModel, l: number, input: Mat): Mat {
  const w = W(model, l);
  const b = model.biases[l] ?? null;
  const s = layerScale(model, l);
  const a = layerAct(model, l);
  const B = input.rows;
  const nIn = w.cols;
  const nOut = w.rows;
  if (input.cols !== nIn) throw new RangeError(`layerForward ${l}: input width ${input.cols} != ${nIn}`);
  const out = mat(B, nOut);
  const h = new Float64Array(nIn);
  for (let r = 0; r < B; r++) {
    for (let i = 0; i < nIn; i++) h[i] = act(a, input.data[r * nIn + i]!);
    for (let o = 0; o < nOut; o++) {
      let acc = 0;
      for (let i = 0; i < nIn; i++) acc += w.data[o * nIn + i]! * h[i]!;
      if (b) acc += b[o]!;
      out.data[r * nOut + o] = s * acc;
    }
  }
  return out;
}

/** `init_activities_with_ffwd`: z_1 = f_1(x), z_l = f_l(z_{l-1}); returns all L activities (last = prediction). */
export function ffwd(model: RefModel, x: Mat): Mat[] {
  checkShapes(model, null, null, x);
  const out: Mat[] = [];
  let cur = x;
  for (let l = 0; l < numLayers(model); l++) {
    cur = layerForward(model, l, cur);
    out.push(cur);
  }
  return out;
}

/** Input of code layer l: x for l = 0, acts[l-1] otherwise. */
function layerInput(acts: readonly Mat[], x: Mat, l: number): Mat {
  return l === 0 ? x : acts[l - 1]!;
}

/** Row-wise log_softmax (max-shifted, as jax.nn.log_softmax). */
function logSoftmaxRow(u: Float64Array, off: number, n: number, out: Float64Array): void {
  let m = -Infinity;
  for (let j = 0; j < n; j++) m = Math.max(m, u[off + j]!);
  let se = 0;
  for (let j = 0; j < n; j++) se += Math.exp(u[off + j]! - m);
  const lse = Math.log(se);
  for (let j = 0; j < n; j++) out[off + j] = u[off + j]! - m - lse;
}

/**
 * The "errors" g_l (one [B, out_l] matrix per layer, before the 1/B factor), defined so that
 * ∂(ΣE)/∂f_l = −g_l:
 * - hidden layers (l < L-1): g_l = e_l = z_l − f_l(z_{l-1})
 * - output, mse: g = y − f_{L-1}(z_{L-2});  ce: g = y − softmax(f_{L-1}(z_{L-2}))·Σ_j y_j (per row)
 * Also returns the un-normalised per-layer energies (natural order).
 */
export function layerErrors(
  model: RefModel,
  acts: readonly Mat[],
  y: Mat,
  x: Mat,
  loss: Loss,
): { errors: Mat[]; energies: number[] } {
  checkShapes(model, acts, y, x);
  const L = numLayers(model);
  const errors: Mat[] = [];
  const energies: number[] = [];
  for (let l = 0; l < L; l++) {
    const pred = layerForward(model, l, layerInput(acts, x, l));
    const g = mat(pred.rows, pred.cols);
    let E = 0;
    if (l < L - 1) {
      const z = acts[l]!;
      for (let i = 0; i < g.data.length; i++) {
        const e = z.data[i]! - pred.data[i]!;
        g.data[i] = e;
        E += 0.5 * e * e;
      }
    } else if (loss === 'mse') {
      for (let i = 0; i < g.data.length; i++) {
        const e = y.data[i]! - pred.data[i]!;
        g.data[i] = e;
        E += 0.5 * e * e;
      }
    } else {
      const n = pred.cols;
      const ls = new Float64Array(pred.data.length);
      for (let r = 0; r < pred.rows; r++) {
        const off = r * n;
        logSoftmaxRow(pred.data, off, n, ls);
        let ysum = 0;
        for (let j = 0; j < n; j++) {
          ysum += y.data[off + j]!;
          E -= y.data[off + j]! * ls[off + j]!;
        }
        for (let j = 0; j < n; j++) g.data[off + j] = y.data[off + j]! - Math.exp(ls[off + j]!) * ysum;
      }
    }
    errors.push(g);
    energies.push(E);
  }
  return { errors, energies };
}

/**
 * Per-layer energies in natural order [E_1, …, E_L] (code layers 0..L-1), each divided by B.
 * Hidden: ½Σ_b‖z_l − f_l(z_{l-1})‖²; output mse: ½Σ_b‖y − f_L(z_{L-1})‖²; ce: −Σ_b y·log_softmax(f_L(z_{L-1})).
 */
export function layerEnergies(model: RefModel, acts: readonly Mat[], y: Mat, x: Mat, loss: Loss): number[] {
  const B = y.rows;
  return layerErrors(model, acts, y, x, loss).energies.map((e) => e / B);
}

/** `pc_energy_fn` (no regularisers): F = Σ_l E_l / B. */
export function energy(model: RefModel, acts: readonly Mat[], y: Mat, x: Mat, loss: Loss): number {
  return layerEnergies(model, acts, y, x, loss).reduce((a, b) => a + b, 0);
}

/** Reorders natural-order energies [E_1..E_L] into `pc_energy_fn(record_layers=True)`'s [E_L, E_2, …, E_{L-1}, E_1]. */
export function jpcRecordLayersOrder(energies: readonly number[]): number[] {
  const L = energies.length;
  if (L < 2) return [...energies];
  return [energies[L - 1]!, ...energies.slice(1, L - 1), energies[0]!];
}

/**
 * ∂F/∂z for every activity (`compute_pc_activity_grad`), length L, the last (dummy) all zero:
 *   ∂F/∂z_l = (e_l − s_{l+1} φ'(z_l) ⊙ (g_{l+1} W_{l+1})) / B.
 */
export function activityGrads(model: RefModel, acts: readonly Mat[], y: Mat, x: Mat, loss: Loss): Mat[] {
  const { errors } = layerErrors(model, acts, y, x, loss);
  const L = numLayers(model);
  const B = y.rows;
  const grads: Mat[] = [];
  for (let l = 0; l < L - 1; l++) {
    const z = acts[l]!;
    const e = errors[l]!;
    const gNext = errors[l + 1]!;
    const wNext = W(model, l + 1);
    const sNext = layerScale(model, l + 1);
    const aNext = layerAct(model, l + 1);
    const n = z.cols;
    const m = wNext.rows;
    const g = mat(z.rows, n);
    for (let r = 0; r < z.rows; r++) {
      for (let i = 0; i < n; i++) {
        let back = 0;
        for (let o = 0; o < m; o++) back += gNext.data[r * m + o]! * wNext.data[o * n + i]!;
        const zi = z.data[r * n + i]!;
        g.data[r * n + i] = (e.data[r * n + i]! - sNext * actDeriv(aNext, zi) * back) / B;
      }
    }
    grads.push(g);
  }
  const last = acts[L - 1]!;
  grads.push(mat(last.rows, last.cols));
  return grads;
}

/** The parameter gradients of F, shaped like the model's weights and biases (null where there is no bias). */
export interface ParamGrads {
  weights: Mat[];
  biases: (Float64Array | null)[];
}

/**
 * `compute_pc_param_grads`: ∂F/∂W_l = −(s_l/B) Σ_b g_{l,b} ⊗ act_l(z_{l-1,b}),  ∂F/∂b_l = −(s_l/B) Σ_b g_{l,b}.
 */
export function paramGrads(model: RefModel, acts: readonly Mat[], y: Mat, x: Mat, loss: Loss): ParamGrads {
  const { errors } = layerErrors(model, acts, y, x, loss);
  const L = numLayers(model);
  const B = y.rows;
  const weights: Mat[] = [];
  const biases: (Float64Array | null)[] = [];
  for (let l = 0; l < L; l++) {
    const w = W(model, l);
    const input = layerInput(acts, x, l);
    const a = layerAct(model, l);
    const g = errors[l]!;
    const c = -layerScale(model, l) / B;
    const nIn = w.cols;
    const nOut = w.rows;
    const gw = mat(nOut, nIn);
    const gb = model.biases[l] ? new Float64Array(nOut) : null;
    const h = new Float64Array(nIn);
    for (let r = 0; r < B; r++) {
      for (let i = 0; i < nIn; i++) h[i] = act(a, input.data[r * nIn + i]!);
      for (let o = 0; o < nOut; o++) {
        const go = g.data[r * nOut + o]!;
        for (let i = 0; i < nIn; i++) gw.data[o * nIn + i] = gw.data[o * nIn + i]! + go * h[i]!;
        if (gb) gb[o] = gb[o]! + go;
      }
    }
    for (let i = 0; i < gw.data.length; i++) gw.data[i] = c * gw.data[i]!;
    if (gb) for (let o = 0; o < nOut; o++) gb[o] = c * gb[o]!;
    weights.push(gw);
    biases.push(gb);
  }
  return { weights, biases };
}

/** `neg_pc_activity_grad`: the ODE right-hand side dz/dt = −∂F/∂z (dummy component 0). */
export function vectorField(model: RefModel, acts: readonly Mat[], y: Mat, x: Mat, loss: Loss): Mat[] {
  return activityGrads(model, acts, y, x, loss).map((g) => {
    const out = mat(g.rows, g.cols);
    for (let i = 0; i < g.data.length; i++) out.data[i] = -g.data[i]!;
    return out;
  });
}

/**
 * A random `make_mlp`-like model. `dims` = [input, hidden…, output] (L = dims.length − 1 layers).
 * init 'uniform' (default) is Equinox's Linear default U(±1/√in) for W and b; 'normal' is N(0,1) weights (μPC).
 * These are not JAX's streams; only the distribution matches.
 */
export function randomModel(
  rng: Random,
  dims: readonly number[],
  actName: Act,
  opts: { bias?: boolean; scales?: readonly number[]; init?: 'uniform' | 'normal' } = {},
): RefModel {
  const weights: Mat[] = [];
  const biases: (Float64Array | null)[] = [];
  for (let l = 0; l + 1 < dims.length; l++) {
    const nIn = dims[l]!;
    const nOut = dims[l + 1]!;
    const lim = 1 / Math.sqrt(nIn);
    weights.push(
      opts.init === 'normal' ? randomNormalMat(rng, nOut, nIn) : randomUniformMat(rng, nOut, nIn, -lim, lim),
    );
    biases.push(opts.bias ? randomUniformMat(rng, 1, nOut, -lim, lim).data : null);
  }
  const model: RefModel = { weights, biases, act: actName };
  if (opts.scales) model.scales = [...opts.scales];
  return model;
}

export function cloneModel(model: RefModel): RefModel {
  const out: RefModel = {
    weights: cloneMats(model.weights),
    biases: model.biases.map((b) => (b ? Float64Array.from(b) : null)),
    act: model.act,
  };
  if (model.scales) out.scales = [...model.scales];
  return out;
}

/** All parameters as one vector: W_0, b_0 (if any), W_1, b_1, … (the order optimisers see them in). */
export function flattenParams(p: { weights: readonly Mat[]; biases: readonly (Float64Array | null)[] }): Float64Array {
  const parts: Float64Array[] = [];
  p.weights.forEach((w, l) => {
    parts.push(w.data);
    const b = p.biases[l];
    if (b) parts.push(b);
  });
  const out = new Float64Array(parts.reduce((s, a) => s + a.length, 0));
  let off = 0;
  for (const a of parts) {
    out.set(a, off);
    off += a.length;
  }
  return out;
}

/** A copy of `model` with its parameters taken from a vector laid out as by `flattenParams`. */
export function unflattenParams(vec: Float64Array, model: RefModel): RefModel {
  const out = cloneModel(model);
  let off = 0;
  out.weights.forEach((w, l) => {
    w.data.set(vec.subarray(off, off + w.data.length));
    off += w.data.length;
    const b = out.biases[l];
    if (b) {
      b.set(vec.subarray(off, off + b.length));
      off += b.length;
    }
  });
  if (off !== vec.length) throw new RangeError('unflattenParams: wrong vector length');
  return out;
}

// ──────────────────────────────────────── losses / metrics ────────────────────────────────────────

/** `jpc.mse_loss`: 0.5 · mean_b Σ_d (labels − preds)². */
export function mseLoss(preds: Mat, labels: Mat): number {
  let s = 0;
  for (let i = 0; i < preds.data.length; i++) {
    const d = labels.data[i]! - preds.data[i]!;
    s += d * d;
  }
  return (0.5 * s) / preds.rows;
}

/**
 * `jpc.cross_entropy_loss`: −mean_b Σ labels·log(softmax(logits)). Like JPC it takes the log OF the softmax
 * (softmax = exp(u − max)/Σ), not a log_softmax, so an underflowed probability gives −inf (and 0·−inf = NaN).
 */
export function crossEntropyLoss(logits: Mat, labels: Mat): number {
  const n = logits.cols;
  let s = 0;
  for (let r = 0; r < logits.rows; r++) {
    const off = r * n;
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, logits.data[off + j]!);
    let se = 0;
    for (let j = 0; j < n; j++) se += Math.exp(logits.data[off + j]! - m);
    for (let j = 0; j < n; j++) s += labels.data[off + j]! * Math.log(Math.exp(logits.data[off + j]! - m) / se);
  }
  return -s / logits.rows;
}

/** jnp.argmax of a row: the first index of the maximum. */
export function argmaxRow(m: Mat, r: number): number {
  let best = 0;
  let bv = m.data[r * m.cols]!;
  for (let j = 1; j < m.cols; j++) {
    const v = m.data[r * m.cols + j]!;
    if (v > bv) {
      bv = v;
      best = j;
    }
  }
  return best;
}

/** `jpc.compute_accuracy`: 100 · mean_b(argmax(truths_b) == argmax(preds_b)). */
export function computeAccuracy(truths: Mat, preds: Mat): number {
  let hits = 0;
  for (let r = 0; r < truths.rows; r++) if (argmaxRow(truths, r) === argmaxRow(preds, r)) hits++;
  return (hits / truths.rows) * 100;
}

// ─────────────────────────────────────── floating-point time ───────────────────────────────────────

/** The dtype of the solver's time variables (JPC on JAX without x64: float32). The state y is always float64 here. */
export type TimeDtype = 'float64' | 'float32';

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);
const f64buf = new Float64Array(1);
const u64buf = new BigUint64Array(f64buf.buffer);

function stepF32(x: number, up: boolean): number {
  const v = Math.fround(x);
  if (Number.isNaN(v) || v === (up ? Infinity : -Infinity)) return v;
  if (v === 0) return up ? 2 ** -126 : -(2 ** -126); // equinox flushes to ±finfo.tiny at 0
  f32buf[0] = v;
  u32buf[0] = v > 0 === up ? u32buf[0]! + 1 : u32buf[0]! - 1;
  return f32buf[0]!;
}

function stepF64(x: number, up: boolean): number {
  if (Number.isNaN(x) || x === (up ? Infinity : -Infinity)) return x;
  if (x === 0) return up ? 2 ** -1022 : -(2 ** -1022);
  f64buf[0] = x;
  u64buf[0] = x > 0 === up ? u64buf[0]! + 1n : u64buf[0]! - 1n;
  return f64buf[0]!;
}

/** `eqxi.nextafter` in float32: the next float32 toward +∞ (0 → smallest normal). */
export const nextafterF32 = (x: number): number => stepF32(x, true);
/** `eqxi.prevbefore` in float32: the previous float32 toward −∞ (0 → −smallest normal). */
export const prevbeforeF32 = (x: number): number => stepF32(x, false);
/** `eqxi.nextafter` in float64. */
export const nextafterF64 = (x: number): number => stepF64(x, true);
/** `eqxi.prevbefore` in float64. */
export const prevbeforeF64 = (x: number): number => stepF64(x, false);

/** Arithmetic in the time dtype: every result is rounded to it. */
interface TimeOps {
  r(x: number): number;
  add(a: number, b: number): number;
  sub(a: number, b: number): number;
  mul(a: number, b: number): number;
  div(a: number, b: number): number;
  next(x: number): number;
  prev(x: number): number;
}

const F64_OPS: TimeOps = {
  r: (x) => x,
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  next: nextafterF64,
  prev: prevbeforeF64,
};

// A float32 op on float32 operands computed in float64 and rounded once is correctly rounded (53 ≥ 2·24 + 2).
const F32_OPS: TimeOps = {
  r: Math.fround,
  add: (a, b) => Math.fround(a + b),
  sub: (a, b) => Math.fround(a - b),
  mul: (a, b) => Math.fround(a * b),
  div: (a, b) => Math.fround(a / b),
  next: nextafterF32,
  prev: prevbeforeF32,
};

function timeOps(d: TimeDtype | undefined): TimeOps {
  return d === 'float32' ? F32_OPS : F64_OPS;
}

/** diffrax's `t1_clip_floor`: t1 moved 100 ULPs (of the time dtype) toward −∞. */
export function t1ClipFloor(t1: number, timeDtype: TimeDtype = 'float64'): number {
  const ops = timeOps(timeDtype);
  let t = ops.r(t1);
  for (let i = 0; i < 100; i++) t = ops.prev(t);
  return t;
}

/** diffrax `_clip_to_end`. */
function clipToEnd(ops: TimeOps, tprev: number, tnext: number, t1: number, floor: number, keep: boolean): number {
  if (!(tnext > floor)) return tnext;
  return keep ? t1 : ops.add(tprev, ops.mul(0.5, ops.sub(t1, tprev)));
}

/**
 * `ConstantStepSize`'s step count (diffrax ≥ 0.7.1): N = ceil((t1 − t0) / nextafter(dt0)), every operation in the
 * time dtype (float32: the quotient is rounded to float32 before the ceil).
 */
export function numConstantSteps(t0: number, t1: number, dt0: number, timeDtype: TimeDtype = 'float64'): number {
  const ops = timeOps(timeDtype);
  return Math.ceil(ops.div(ops.sub(ops.r(t1), ops.r(t0)), ops.next(ops.r(dt0))));
}

/**
 * How `ConstantStepSize` places step ends.
 * - 'fraction' (diffrax ≥ 0.7.1, HEAD): first end t0 + dt0 (clipped to t1), then t_n = t0 + (t1 − t0)·(n/N) for
 *   n = 2..N, with t_N = t1 exactly.
 * - 'cumulative' (diffrax ≤ 0.7.0, which JPC's `jax<=0.5.2` pin allows): t_{n+1} = t_n + dt0, each end clipped to
 *   t1 once it passes t1 minus 100 ULPs.
 */
export type ConstantGrid = 'fraction' | 'cumulative';

// ───────────────────────────────────────── generic ODE solvers ─────────────────────────────────────────

/** An autonomous vector field on a list of matrices (JPC's vector field ignores t). */
export type VectorField = (y: readonly Mat[]) => Mat[];

function axpy(y: readonly Mat[], h: number, k: readonly Mat[]): Mat[] {
  return y.map((m, j) => {
    const kj = k[j]!;
    const out = mat(m.rows, m.cols);
    for (let i = 0; i < m.data.length; i++) out.data[i] = m.data[i]! + h * kj.data[i]!;
    return out;
  });
}

/** One explicit Euler step y + h f(y). */
export function eulerStep(f: VectorField, y: readonly Mat[], h: number): Mat[] {
  return axpy(y, h, f(y));
}

/** One diffrax Heun step: k1 = f(y), k2 = f(y + h k1), y1 = y + h(k1 + k2)/2, yErr = h(k1 − k2)/2. */
export function heunStep(f: VectorField, y: readonly Mat[], h: number): { y1: Mat[]; yErr: Mat[] } {
  const k1 = f(y);
  const k2 = f(axpy(y, h, k1));
  const y1: Mat[] = [];
  const yErr: Mat[] = [];
  y.forEach((m, j) => {
    const a = k1[j]!;
    const b = k2[j]!;
    const o = mat(m.rows, m.cols);
    const e = mat(m.rows, m.cols);
    for (let i = 0; i < m.data.length; i++) {
      o.data[i] = m.data[i]! + (h * (a.data[i]! + b.data[i]!)) / 2;
      e.data[i] = (h * (a.data[i]! - b.data[i]!)) / 2;
    }
    y1.push(o);
    yErr.push(e);
  });
  return { y1, yErr };
}

/** One explicit Runge–Kutta step: the candidate and its embedded error estimate. */
export type StepFn = (f: VectorField, y: readonly Mat[], h: number) => { y1: Mat[]; yErr: Mat[] };

/** A Butcher tableau in the shape WPC's src/pc/tableaux.ts uses (a: strictly lower rows, e: null = no estimate). */
export interface RefTableau {
  a: readonly (readonly number[])[];
  b: readonly number[];
  e: readonly number[] | null;
}

/**
 * The generic explicit Runge–Kutta step, in float64: k_i = f(y + h Σ_j a_ij k_j), y1 = y + h Σ b_i k_i,
 * yErr = h Σ e_i k_i. FSAL tableaux need no special case here: the last stage is recomputed, with the same value.
 */
export function rkStep(tab: RefTableau): StepFn {
  return (f, y, h) => {
    const k: Mat[][] = [];
    for (let i = 0; i < tab.b.length; i++) {
      const row = i === 0 ? [] : tab.a[i - 1]!;
      const yi = y.map((m, leaf) => {
        const o = mat(m.rows, m.cols);
        for (let q = 0; q < m.data.length; q++) {
          let acc = 0;
          row.forEach((aij, j) => (acc += aij * k[j]![leaf]!.data[q]!));
          o.data[q] = m.data[q]! + h * acc;
        }
        return o;
      });
      k.push(f(yi));
    }
    const combine = (w: readonly number[], base: boolean) =>
      y.map((m, leaf) => {
        const o = mat(m.rows, m.cols);
        for (let q = 0; q < m.data.length; q++) {
          let acc = 0;
          w.forEach((wi, i) => (acc += wi * k[i]![leaf]!.data[q]!));
          o.data[q] = (base ? m.data[q]! : 0) + h * acc;
        }
        return o;
      });
    return { y1: combine(tab.b, true), yErr: tab.e ? combine(tab.e, false) : y.map((m) => mat(m.rows, m.cols)) };
  };
}

export interface ConstantSolveOptions {
  t0?: number;
  t1: number;
  dt0: number;
  /** 'euler' (JPC's Euler) or 'heun' (diffrax Heun with ConstantStepSize; the error estimate is ignored). */
  method: 'euler' | 'heun';
  /** Any other explicit Runge–Kutta step (overrides `method`). */
  step?: StepFn;
  timeDtype?: TimeDtype;
  /** diffrax `max_steps` (default 4096): more steps than this throws. */
  maxSteps?: number;
  grid?: ConstantGrid;
  /** Keep the state after every step (like `record_iters`). */
  recordStates?: boolean;
}

export interface ConstantSolveResult {
  y: Mat[];
  /** Final time (== t1 in the time dtype). */
  t: number;
  steps: number;
  /** Step boundaries [t0, t_1, …, t_N] actually used. */
  ts: number[];
  /** y after each step, when `recordStates`. */
  states?: Mat[][];
}

/** diffrax `diffeqsolve` with a constant step size, reproducing its time bookkeeping exactly. */
export function integrateConstant(f: VectorField, y0: readonly Mat[], opts: ConstantSolveOptions): ConstantSolveResult {
  const ops = timeOps(opts.timeDtype);
  const t0 = ops.r(opts.t0 ?? 0);
  const t1 = ops.r(opts.t1);
  const dt0 = ops.r(opts.dt0);
  const maxSteps = opts.maxSteps ?? 4096;
  const grid = opts.grid ?? 'fraction';
  if (!(dt0 > 0) || !(t1 >= t0)) throw new RangeError('integrateConstant: need dt0 > 0 and t1 >= t0');
  const floor = t1ClipFloor(t1, opts.timeDtype);
  const N = numConstantSteps(t0, t1, dt0, opts.timeDtype);
  let tprev = t0;
  let tnext = Math.min(ops.add(t0, dt0), t1);
  let y = cloneMats(y0);
  let steps = 0;
  const ts = [t0];
  const states: Mat[][] = [];
  let completed = 1; // ConstantStepSize's steps_completed
  while (tprev < t1) {
    if (steps >= maxSteps) {
      throw new Error(`integrateConstant: maxSteps (${maxSteps}) reached at t=${tprev} before t1=${t1}`);
    }
    const h = ops.sub(tnext, tprev);
    y = opts.step ? opts.step(f, y, h).y1 : opts.method === 'euler' ? eulerStep(f, y, h) : heunStep(f, y, h).y1;
    // adapt_step_size
    let proposed: number;
    if (grid === 'fraction') {
      completed += 1;
      proposed = completed === N ? t1 : ops.add(t0, ops.mul(ops.sub(t1, t0), ops.div(ops.r(completed), ops.r(N))));
    } else {
      proposed = ops.add(tnext, dt0);
    }
    tprev = Math.min(tnext, t1);
    tnext = clipToEnd(ops, tprev, proposed, t1, floor, true);
    steps++;
    ts.push(tprev);
    if (opts.recordStates) states.push(cloneMats(y));
  }
  const res: ConstantSolveResult = { y, t: tprev, steps, ts };
  if (opts.recordStates) res.states = states;
  return res;
}

/** The knobs of diffrax's `PIDController` (defaults as diffrax). */
export interface PidOptions {
  rtol: number;
  atol: number;
  pcoeff?: number;
  icoeff?: number;
  dcoeff?: number;
  factormin?: number;
  factormax?: number;
  safety?: number;
  dtmin?: number;
  dtmax?: number;
  forceDtmin?: boolean;
  /** Exponent denominator; Heun's is 2. */
  errorOrder?: number;
}

export interface PidSolveOptions extends PidOptions {
  t0?: number;
  t1: number;
  /** Initial step; Hairer's algorithm (`hairerInitialStep`) when undefined. */
  dt0?: number;
  timeDtype?: TimeDtype;
  /** diffrax `max_steps` (default 4096), counting accepted and rejected steps. */
  maxSteps?: number;
  /** Keep the state after every accepted step. */
  recordStates?: boolean;
  /** The Runge–Kutta step (default Heun); `errorOrder` should be its order. */
  step?: StepFn;
}

/** One attempted step of the PID-controlled solve. */
export interface PidStepRecord {
  /** Start and end of the attempted step, and its length h = tnext − tprev (time dtype). */
  tprev: number;
  tnext: number;
  h: number;
  /** rms of yErr / (atol + rtol·max(|y0|, |y1|)). */
  scaledError: number;
  accepted: boolean;
  /** The clipped multiplicative factor, and the controller's next step size (before the clip to t1). */
  factor: number;
  dtNext: number;
}

export interface PidSolveResult {
  y: Mat[];
  /** Final time (== t1 in the time dtype). */
  t: number;
  accepted: number;
  rejected: number;
  /** The initial step size actually used (after Hairer / dtmin / dtmax). */
  dt0: number;
  history: PidStepRecord[];
  /** y after each accepted step, when `recordStates`. */
  states?: Mat[][];
}

/**
 * diffrax `_select_initial_step` (Hairer & Wanner's algorithm) for an autonomous ODE; one extra f-evaluation.
 * Computed in float64 (round the result to float32 yourself when emulating float32 time; the solvers do).
 */
export function hairerInitialStep(
  f: VectorField,
  y0: readonly Mat[],
  opts: { rtol: number; atol: number; errorOrder?: number },
): number {
  const errorOrder = opts.errorOrder ?? 2;
  const scale = y0.map((m) => {
    const s = mat(m.rows, m.cols);
    for (let i = 0; i < m.data.length; i++) s.data[i] = opts.atol + Math.abs(m.data[i]!) * opts.rtol;
    return s;
  });
  const divScale = (v: readonly Mat[]): Mat[] =>
    v.map((m, j) => {
      const s = scale[j]!;
      const o = mat(m.rows, m.cols);
      for (let i = 0; i < m.data.length; i++) o.data[i] = m.data[i]! / s.data[i]!;
      return o;
    });
  const d0 = rmsNorm(divScale(y0));
  const f0 = f(y0);
  const d1 = rmsNorm(divScale(f0));
  const small = d0 < 1e-5 || d1 < 1e-5;
  const d1Safe = small ? 1 : d1;
  const h0 = small ? 1e-6 : 0.01 * (d0 / d1Safe);
  const f1 = f(axpy(y0, h0, f0));
  const diff = f1.map((m, j) => {
    const a = f0[j]!;
    const o = mat(m.rows, m.cols);
    for (let i = 0; i < m.data.length; i++) o.data[i] = m.data[i]! - a.data[i]!;
    return o;
  });
  const d2 = rmsNorm(divScale(diff)) / h0;
  const maxD = Math.max(d1, d2);
  const h1 = maxD <= 1e-15 ? Math.max(1e-6, h0 * 1e-3) : (0.01 / maxD) ** (1 / errorOrder);
  return Math.min(100 * h0, h1);
}

/**
 * diffrax `diffeqsolve(Heun(), PIDController(...))` for an autonomous ODE, reproducing the controller and the
 * loop's bookkeeping (clip to t1 within 100 ULPs, halfway-to-t1 on a clipped rejection, max_steps).
 * Time arithmetic is done in `timeDtype` (float32: Math.fround after every operation); y stays float64.
 */
export function integrateHeunPid(f: VectorField, y0: readonly Mat[], opts: PidSolveOptions): PidSolveResult {
  const ops = timeOps(opts.timeDtype);
  const pcoeff = opts.pcoeff ?? 0;
  const icoeff = opts.icoeff ?? 1;
  const dcoeff = opts.dcoeff ?? 0;
  const factormin = opts.factormin ?? 0.2;
  const factormax = opts.factormax ?? 10;
  const safety = opts.safety ?? 0.9;
  const forceDtmin = opts.forceDtmin ?? true;
  const errorOrder = opts.errorOrder ?? 2;
  const maxSteps = opts.maxSteps ?? 4096;
  const { rtol, atol } = opts;
  const dtmin = opts.dtmin === undefined ? undefined : ops.r(opts.dtmin);
  const dtmax = opts.dtmax === undefined ? undefined : ops.r(opts.dtmax);
  const t0 = ops.r(opts.t0 ?? 0);
  const t1 = ops.r(opts.t1);
  if (!(t1 >= t0)) throw new RangeError('integrateHeunPid: need t1 >= t0');

  // PIDController.init
  let dt0 = ops.r(opts.dt0 ?? hairerInitialStep(f, y0, { rtol, atol, errorOrder }));
  if (dtmax !== undefined) dt0 = Math.min(dt0, dtmax);
  if (dtmin !== undefined) dt0 = Math.max(dt0, dtmin);
  let tprev = t0;
  let tnext = Math.min(ops.add(t0, dt0), t1);
  let prevInv = 1;
  let prevPrevInv = 1;
  let atDtmin = false;

  const floor = t1ClipFloor(t1, opts.timeDtype);
  const coeff1 = (icoeff + pcoeff + dcoeff) / errorOrder;
  const coeff2 = -(pcoeff + 2 * dcoeff) / errorOrder;
  const coeff3 = dcoeff / errorOrder;

  let y = cloneMats(y0);
  let accepted = 0;
  let rejected = 0;
  const history: PidStepRecord[] = [];
  const states: Mat[][] = [];

  while (tprev < t1) {
    if (accepted + rejected >= maxSteps) {
      throw new Error(`integrateHeunPid: maxSteps (${maxSteps}) reached at t=${tprev} before t1=${t1}`);
    }
    const h = ops.sub(tnext, tprev);
    const { y1, yErr } = (opts.step ?? heunStep)(f, y, h);
    // loop: NaN errors become +inf
    for (const e of yErr) for (let i = 0; i < e.data.length; i++) if (Number.isNaN(e.data[i]!)) e.data[i] = Infinity;

    // PIDController.adapt_step_size
    const prevDt = h;
    const scaled = rmsNorm(
      y.map((m0, j) => {
        const m1 = y1[j]!;
        const e = yErr[j]!;
        const nan = m1.data.some((v) => Number.isNaN(v)); // per leaf: fall back to y0
        const s = mat(m0.rows, m0.cols);
        for (let i = 0; i < m0.data.length; i++) {
          const a0 = Math.abs(m0.data[i]!);
          const a1 = nan ? a0 : Math.abs(m1.data[i]!);
          s.data[i] = e.data[i]! / (atol + Math.max(a0, a1) * rtol);
        }
        return s;
      }),
    );
    let keep = scaled < 1;
    if (dtmin !== undefined) keep = keep || atDtmin;
    let inv = 1 / scaled;
    const factor1 = coeff1 === 0 ? 1 : inv ** coeff1;
    const factor2 = coeff2 === 0 ? 1 : prevInv ** coeff2;
    const factor3 = coeff3 === 0 ? 1 : prevPrevInv ** coeff3;
    const fmin = keep ? 1 : factormin;
    const fmax = keep ? factormax : safety;
    // jnp.clip = minimum(maximum(x, lo), hi); the factor is cast to the time dtype before the multiply.
    const factor = ops.r(Math.min(Math.max(safety * factor1 * factor2 * factor3, fmin), fmax));
    let dt = ops.mul(prevDt, factor);
    if (inv === 0 || inv === Infinity || inv === -Infinity) inv = 1;
    if (dtmax !== undefined) dt = Math.min(dt, dtmax);
    if (dtmin !== undefined) {
      if (!forceDtmin && dt < dtmin) {
        throw new Error(`integrateHeunPid: dtmin reached (dt=${dt} < dtmin=${dtmin}) at t=${tprev}`);
      }
      if (atDtmin && factor === 1) dt = dtmin;
      atDtmin = dt <= dtmin;
      dt = Math.max(dt, dtmin);
    }
    const nextT0 = keep ? tnext : tprev;
    const nextT1 = ops.add(nextT0, dt);
    const newInv = keep ? inv : prevInv;
    const newPrevInv = keep ? prevInv : prevPrevInv;
    prevInv = newInv;
    prevPrevInv = newPrevInv;

    history.push({ tprev, tnext, h, scaledError: scaled, accepted: keep, factor, dtNext: dt });

    // loop bookkeeping
    const newTprev = Math.min(nextT0, t1);
    tnext = clipToEnd(ops, newTprev, nextT1, t1, floor, keep);
    tprev = newTprev;
    if (keep) {
      y = y1;
      accepted++;
      if (opts.recordStates) states.push(cloneMats(y));
    } else {
      rejected++;
    }
  }
  const res: PidSolveResult = { y, t: tprev, accepted, rejected, dt0, history };
  if (opts.recordStates) res.states = states;
  return res;
}

// ─────────────────────────────────────────── PCN inference ───────────────────────────────────────────

/** The PCN inference ODE's right-hand side as a generic `VectorField`. */
export function pcVectorField(model: RefModel, y: Mat, x: Mat, loss: Loss): VectorField {
  return (acts) => vectorField(model, acts, y, x, loss);
}

export interface SolveEulerOptions {
  /** JPC `max_t1` (t0 = 0). */
  maxT1: number;
  /** The constant step ("activity lr"). */
  dt: number;
  loss: Loss;
  timeDtype?: TimeDtype;
  maxSteps?: number;
  grid?: ConstantGrid;
  recordStates?: boolean;
}

/** `integrateConstant`'s result with the state named `activities`. */
export type PcConstantResult = Omit<ConstantSolveResult, 'y'> & { activities: Mat[] };
/** `integrateHeunPid`'s result with the state named `activities`. */
export type PcPidResult = Omit<PidSolveResult, 'y'> & { activities: Mat[] };

function renameY<T extends { y: Mat[] }>(r: T): Omit<T, 'y'> & { activities: Mat[] } {
  const { y, ...rest } = r;
  return { ...rest, activities: y };
}

/** `solve_inference(solver=Euler(), stepsize_controller=ConstantStepSize(), dt=dt)` from `acts0`. */
export function solveEuler(
  model: RefModel,
  acts0: readonly Mat[],
  y: Mat,
  x: Mat,
  opts: SolveEulerOptions,
): PcConstantResult {
  return renameY(integrateConstant(pcVectorField(model, y, x, opts.loss), acts0, constantOpts(opts, 'euler')));
}

/** Heun with a constant step (not used by JPC's defaults; for convergence checks and GPU parity). */
export function solveHeunConstant(
  model: RefModel,
  acts0: readonly Mat[],
  y: Mat,
  x: Mat,
  opts: SolveEulerOptions,
): PcConstantResult {
  return renameY(integrateConstant(pcVectorField(model, y, x, opts.loss), acts0, constantOpts(opts, 'heun')));
}

function constantOpts(opts: SolveEulerOptions, method: 'euler' | 'heun'): ConstantSolveOptions {
  const o: ConstantSolveOptions = { t1: opts.maxT1, dt0: opts.dt, method };
  if (opts.timeDtype !== undefined) o.timeDtype = opts.timeDtype;
  if (opts.maxSteps !== undefined) o.maxSteps = opts.maxSteps;
  if (opts.grid !== undefined) o.grid = opts.grid;
  if (opts.recordStates !== undefined) o.recordStates = opts.recordStates;
  return o;
}

export interface SolveHeunPidOptions extends PidOptions {
  maxT1: number;
  /** Any explicit Runge–Kutta step (`rkStep(tableau)`, with `errorOrder` its order); default Heun. */
  step?: StepFn;
  /** Initial step (JPC's `dt`); Hairer's algorithm when undefined. */
  dt0?: number;
  loss: Loss;
  timeDtype?: TimeDtype;
  maxSteps?: number;
  recordStates?: boolean;
}

/** `solve_inference` with JPC's default solver: Heun + PIDController (JPC: rtol = atol = 1e-3). */
export function solveHeunPid(
  model: RefModel,
  acts0: readonly Mat[],
  y: Mat,
  x: Mat,
  opts: SolveHeunPidOptions,
): PcPidResult {
  const { maxT1, loss, ...rest } = opts;
  return renameY(integrateHeunPid(pcVectorField(model, y, x, loss), acts0, { ...rest, t1: maxT1 }));
}

// ─────────────────────────────────────────── optimisers ───────────────────────────────────────────

/** optax.sgd(learning_rate, momentum, nesterov). */
export interface SgdOptions {
  lr: number;
  momentum?: number;
  nesterov?: boolean;
}
export interface SgdState {
  /** optax `trace`; null when momentum is not used. */
  trace: Float64Array | null;
}

export function sgdInit(n: number, opts: SgdOptions): SgdState {
  return { trace: opts.momentum === undefined ? null : new Float64Array(n) };
}

/** One optax sgd step (pure): t ← g + μt; u = nesterov ? g + μt : t (or g without momentum); p ← p − lr·u. */
export function sgdUpdate(
  params: Float64Array,
  grads: Float64Array,
  state: SgdState,
  opts: SgdOptions,
): { params: Float64Array; state: SgdState } {
  const p = new Float64Array(params.length);
  const mu = opts.momentum;
  const prev = state.trace;
  const trace = prev && mu !== undefined ? new Float64Array(params.length) : null;
  for (let i = 0; i < params.length; i++) {
    const g = grads[i]!;
    let u = g;
    if (trace && prev && mu !== undefined) {
      const t = g + mu * prev[i]!;
      trace[i] = t;
      u = opts.nesterov ? g + mu * t : t;
    }
    p[i] = params[i]! + -opts.lr * u;
  }
  return { params: p, state: { trace } };
}

/** optax.adam(learning_rate, b1, b2, eps, eps_root). */
export interface AdamOptions {
  lr: number;
  b1?: number;
  b2?: number;
  eps?: number;
  epsRoot?: number;
}
export interface AdamState {
  count: number;
  mu: Float64Array;
  nu: Float64Array;
}

export function adamInit(n: number): AdamState {
  return { count: 0, mu: new Float64Array(n), nu: new Float64Array(n) };
}

/**
 * One optax adam step (pure): count ← count + 1; m ← b1·m + (1−b1)·g; v ← b2·v + (1−b2)·g²;
 * m̂ = m/(1 − b1^count); v̂ = v/(1 − b2^count); p ← p − lr·m̂/(sqrt(v̂ + epsRoot) + eps).
 */
export function adamUpdate(
  params: Float64Array,
  grads: Float64Array,
  state: AdamState,
  opts: AdamOptions,
): { params: Float64Array; state: AdamState } {
  const b1 = opts.b1 ?? 0.9;
  const b2 = opts.b2 ?? 0.999;
  const eps = opts.eps ?? 1e-8;
  const epsRoot = opts.epsRoot ?? 0;
  const count = state.count + 1;
  const c1 = 1 - b1 ** count;
  const c2 = 1 - b2 ** count;
  const mu = new Float64Array(params.length);
  const nu = new Float64Array(params.length);
  const p = new Float64Array(params.length);
  for (let i = 0; i < params.length; i++) {
    const g = grads[i]!;
    mu[i] = (1 - b1) * g + b1 * state.mu[i]!;
    nu[i] = (1 - b2) * g * g + b2 * state.nu[i]!;
    const mhat = mu[i]! / c1;
    const vhat = nu[i]! / c2;
    p[i] = params[i]! + -opts.lr * (mhat / (Math.sqrt(vhat + epsRoot) + eps));
  }
  return { params: p, state: { count, mu, nu } };
}

/** Either optimiser, tagged. */
export type Optimiser = ({ kind: 'sgd' } & SgdOptions) | ({ kind: 'adam' } & AdamOptions);
export type OptState = SgdState | AdamState;

export function optimInit(opt: Optimiser, n: number): OptState {
  return opt.kind === 'sgd' ? sgdInit(n, opt) : adamInit(n);
}

export function optimUpdate(
  opt: Optimiser,
  params: Float64Array,
  grads: Float64Array,
  state: OptState,
): { params: Float64Array; state: OptState } {
  if (opt.kind === 'sgd') return sgdUpdate(params, grads, state as SgdState, opt);
  return adamUpdate(params, grads, state as AdamState, opt);
}

/**
 * `update_pc_activities`: energy and grads at `acts` (dummy gradient 0 included), then one optimiser step on all
 * activities (flattened in layer order). `energy` is the one before the update. Initialise with
 * `optimInit(opt, flattenMats(acts).length)`.
 */
export function updatePcActivities(
  model: RefModel,
  acts: readonly Mat[],
  y: Mat,
  x: Mat,
  loss: Loss,
  opt: Optimiser,
  state: OptState,
): { energy: number; activities: Mat[]; grads: Mat[]; state: OptState } {
  const e = energy(model, acts, y, x, loss);
  const grads = activityGrads(model, acts, y, x, loss);
  const r = optimUpdate(opt, flattenMats(acts), flattenMats(grads), state);
  return { energy: e, activities: unflattenMats(r.params, acts), grads, state: r.state };
}

/**
 * `update_pc_params`: param grads at `acts`, then one optimiser step on all parameters (laid out as by
 * `flattenParams`). Initialise with `optimInit(opt, flattenParams(model).length)`.
 */
export function updatePcParams(
  model: RefModel,
  acts: readonly Mat[],
  y: Mat,
  x: Mat,
  loss: Loss,
  opt: Optimiser,
  state: OptState,
): { model: RefModel; grads: ParamGrads; state: OptState } {
  const grads = paramGrads(model, acts, y, x, loss);
  const r = optimUpdate(opt, flattenParams(model), flattenParams(grads), state);
  return { model: unflattenParams(r.params, model), grads, state: r.state };
}
