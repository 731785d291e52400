/**
 * variants64 — an independent float64 CPU reference of the JPC variants WPC adds on top of plain PC:
 * parameterisations (sp / μPC / NTP), identity skip connections, the generalised PC energy (output-energy scaling
 * λ, weight decay, spectral penalty, activity decay, unsupervised mode), hybrid PC (hPC), bidirectional PC (bPC)
 * and error-reparameterised PC (ePC). Every gradient is derived by hand and written out loop by loop, like
 * jpc64.ts; test/reference/variants64.test.ts checks each against central finite differences of its energy.
 *
 * Conventions (those of jpc64.ts, plus the ones below)
 * - Code layer l (0-based; JPC's f_{l+1}) maps f_l(z) = s_l·(W_l act_l(z) + b_l), act_0 = identity, act_l = φ for
 *   l ≥ 1 (jpc64's `layerForward`, scalings taken from `model.scales`, default 1).
 * - A `GenModel` may carry identity skips: with `skips[l]` true, layer l's prediction is f_l(z_l) + z_l
 *   ("pred_l" below). Only 1 ≤ l ≤ L−2 with equal in/out widths is allowed (JPC's `make_skip_model` pattern).
 * - Activities are numbered as in the spec: z_0 is the input (x, or a free activity in unsupervised mode), z_l
 *   the output of code layer l−1, z_L the output layer (a dummy: the energy never reads it).
 * - Every energy and gradient carries JPC's 1/B factor.
 * - The "error" of a layer is g = −∂E/∂pred (for a hidden layer e = z − pred; for the mse output y − pred; for the
 *   ce output y − softmax(pred)·Σ_j y_j), before any weight (λ, α) and before 1/B.
 * - For every layer l the vector–Jacobian product of its prediction with respect to its input is
 *       vjp_l(z, g) = s_l·act_l'(z) ⊙ (g W_l) + [skip_l] g            (per row: (g W_l)_i = Σ_o g_o W_l[o, i]),
 *   and the parameter gradient of −⟨g, pred_l⟩ is (−s_l Σ_b g_b ⊗ act_l(z_b), −s_l Σ_b g_b).
 *
 * Where WPC deliberately departs from JPC (bugs in JPC), the doc comment of the function says so.
 */
import {
  act,
  actDeriv,
  layerForward,
  layerScale,
  mat,
  numLayers,
  type Act,
  type Loss,
  type Mat,
  type ParamGrads,
  type RefModel,
} from './jpc64.js';

// ─────────────────────────────────────────── small helpers ───────────────────────────────────────────

function Wm(model: RefModel, l: number): Mat {
  const w = model.weights[l];
  if (w === undefined) throw new RangeError(`no layer ${l}`);
  return w;
}

/** act_l: identity for the first layer, φ otherwise (as in jpc64). */
function layerActOf(model: RefModel, l: number): Act {
  return l === 0 ? 'linear' : model.act;
}

function hasSkip(model: GenModel, l: number): boolean {
  return model.skips?.[l] === true;
}

function zerosLike(m: Mat): Mat {
  return mat(m.rows, m.cols);
}

function sumSq(m: Mat): number {
  let s = 0;
  for (let i = 0; i < m.data.length; i++) s += m.data[i]! * m.data[i]!;
  return s;
}

/** a − b, elementwise. */
function sub(a: Mat, b: Mat): Mat {
  if (a.rows !== b.rows || a.cols !== b.cols) {
    throw new RangeError(`shape mismatch: ${a.rows}x${a.cols} vs ${b.rows}x${b.cols}`);
  }
  const o = mat(a.rows, a.cols);
  for (let i = 0; i < a.data.length; i++) o.data[i] = a.data[i]! - b.data[i]!;
  return o;
}

/** out += c·m, in place. */
function addScaled(out: Mat, c: number, m: Mat): void {
  for (let i = 0; i < out.data.length; i++) out.data[i] = out.data[i]! + c * m.data[i]!;
}

function scaleInPlace(m: Mat, c: number): Mat {
  for (let i = 0; i < m.data.length; i++) m.data[i] = c * m.data[i]!;
  return m;
}

function expectShape(m: Mat | undefined, rows: number, cols: number, what: string): Mat {
  if (m === undefined || m.rows !== rows || m.cols !== cols) {
    const got = m === undefined ? 'nothing' : `${m.rows}x${m.cols}`;
    throw new RangeError(`${what} must be ${rows}x${cols}, got ${got}`);
  }
  return m;
}

/** Row-wise log_softmax (max-shifted). */
function logSoftmax(u: Mat): Mat {
  const out = mat(u.rows, u.cols);
  const n = u.cols;
  for (let r = 0; r < u.rows; r++) {
    const off = r * n;
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, u.data[off + j]!);
    let se = 0;
    for (let j = 0; j < n; j++) se += Math.exp(u.data[off + j]! - m);
    const lse = Math.log(se);
    for (let j = 0; j < n; j++) out.data[off + j] = u.data[off + j]! - m - lse;
  }
  return out;
}

/**
 * The output term and its error for a prediction `pred` of target `y` (no weight, no 1/B):
 * mse: E = ½Σ‖y − pred‖², g = y − pred; ce: E = −Σ y·log_softmax(pred), g = y − softmax(pred)·Σ_j y_j (per row).
 */
function outputTerm(pred: Mat, y: Mat, loss: Loss): { E: number; g: Mat } {
  expectShape(y, pred.rows, pred.cols, 'y');
  const g = mat(pred.rows, pred.cols);
  let E = 0;
  if (loss === 'mse') {
    for (let i = 0; i < g.data.length; i++) {
      const e = y.data[i]! - pred.data[i]!;
      g.data[i] = e;
      E += 0.5 * e * e;
    }
  } else {
    const ls = logSoftmax(pred);
    const n = pred.cols;
    for (let r = 0; r < pred.rows; r++) {
      const off = r * n;
      let ysum = 0;
      for (let j = 0; j < n; j++) {
        ysum += y.data[off + j]!;
        E -= y.data[off + j]! * ls.data[off + j]!;
      }
      for (let j = 0; j < n; j++) g.data[off + j] = y.data[off + j]! - Math.exp(ls.data[off + j]!) * ysum;
    }
  }
  return { E, g };
}

/** pred_l(input) = s_l f_l(input) + [skip_l] input. */
function predict(model: GenModel, l: number, input: Mat): Mat {
  const out = layerForward(model, l, input);
  if (hasSkip(model, l)) addScaled(out, 1, input);
  return out;
}

/**
 * vjp_l(z, g) = s_l·act_l'(z) ⊙ (g W_l) + [skip_l] g: the gradient of ⟨g, pred_l(z)⟩ with respect to z.
 */
function vjp(model: GenModel, l: number, z: Mat, g: Mat): Mat {
  const w = Wm(model, l);
  const s = layerScale(model, l);
  const a = layerActOf(model, l);
  const nIn = w.cols;
  const nOut = w.rows;
  expectShape(z, z.rows, nIn, `vjp ${l}: input`);
  expectShape(g, z.rows, nOut, `vjp ${l}: error`);
  const skip = hasSkip(model, l);
  const out = mat(z.rows, nIn);
  for (let r = 0; r < z.rows; r++) {
    for (let i = 0; i < nIn; i++) {
      let back = 0;
      for (let o = 0; o < nOut; o++) back += g.data[r * nOut + o]! * w.data[o * nIn + i]!;
      let v = s * actDeriv(a, z.data[r * nIn + i]!) * back;
      if (skip) v += g.data[r * nOut + i]!;
      out.data[r * nIn + i] = v;
    }
  }
  return out;
}

/** Empty (zero) parameter gradients shaped like `model`. */
function zeroParamGrads(model: RefModel): ParamGrads {
  return {
    weights: model.weights.map((w) => mat(w.rows, w.cols)),
    biases: model.biases.map((b) => (b ? new Float64Array(b.length) : null)),
  };
}

/**
 * grads(layer l) += c·s_l·(Σ_b g_b ⊗ act_l(input_b), Σ_b g_b), i.e. the parameter gradient of c·⟨g, pred_l(input)⟩
 * (skips have no parameters).
 */
function accumulateParamGrad(grads: ParamGrads, model: RefModel, l: number, input: Mat, g: Mat, c: number): void {
  const w = Wm(model, l);
  const a = layerActOf(model, l);
  const nIn = w.cols;
  const nOut = w.rows;
  const gw = grads.weights[l]!;
  const gb = grads.biases[l] ?? null;
  const k = c * layerScale(model, l);
  const h = new Float64Array(nIn);
  for (let r = 0; r < input.rows; r++) {
    for (let i = 0; i < nIn; i++) h[i] = act(a, input.data[r * nIn + i]!);
    for (let o = 0; o < nOut; o++) {
      const go = k * g.data[r * nOut + o]!;
      for (let i = 0; i < nIn; i++) gw.data[o * nIn + i] = gw.data[o * nIn + i]! + go * h[i]!;
      if (gb) gb[o] = gb[o]! + go;
    }
  }
}

// ─────────────────────────────────────── parameterisations ───────────────────────────────────────

/** JPC's `param_type`. */
export type ParamType = 'sp' | 'mupc' | 'ntp';

/**
 * JPC's `_get_param_scalings` for an MLP with `dims` = [D, N, …, out] (L = dims.length − 1 layers, N = dims[1] the
 * first hidden width):
 * - sp:   s = [1, …, 1]
 * - ntp:  s = [1/√D, 1/√N (or 1/√(N·L) with skips) for layers 1..L−2, 1/√N]
 * - mupc: s = [1/√D, 1/√N (or 1/√(N·L) with skips) for layers 1..L−2, 1/N]
 * and `gamma` divides the last entry. Always returns L entries (JPC returns 2 for sp with L = 1; for L = 1 we return
 * the output scaling alone, the one JPC's energy reads).
 */
export function paramScalings(
  dims: readonly number[],
  paramType: ParamType,
  opts: { skips?: boolean; gamma?: number } = {},
): number[] {
  const L = dims.length - 1;
  if (L < 1) throw new RangeError('paramScalings: need at least one layer');
  let s: number[];
  if (paramType === 'sp') {
    s = new Array<number>(L).fill(1);
  } else {
    const D = dims[0]!;
    const N = dims[1]!;
    const a1 = 1 / Math.sqrt(D);
    const al = opts.skips ? 1 / Math.sqrt(N * L) : 1 / Math.sqrt(N);
    const aL = paramType === 'mupc' ? 1 / N : 1 / Math.sqrt(N);
    s = L === 1 ? [aL] : [a1, ...new Array<number>(L - 2).fill(al), aL];
  }
  if (opts.gamma !== undefined) s[L - 1] = s[L - 1]! / opts.gamma;
  return s;
}

// ───────────────────────────────────────────── skips ─────────────────────────────────────────────

/** A jpc64 `RefModel` with optional identity residuals: `skips[l]` true ⇒ pred_l(z) = s_l f_l(z) + z. */
export interface GenModel extends RefModel {
  skips?: readonly boolean[];
}

/** JPC's `make_skip_model(L)` pattern: true at layers 1..L−2 (never input→h_1, never h_{L−1}→output). */
export function makeSkips(L: number): boolean[] {
  return Array.from({ length: L }, (_, l) => l >= 1 && l <= L - 2);
}

/** Throws unless the model's skips are allowed: length L, only at 1 ≤ l ≤ L−2, and only on square layers. */
function checkSkips(model: GenModel): void {
  const sk = model.skips;
  if (sk === undefined) return;
  const L = numLayers(model);
  if (sk.length !== L) throw new RangeError(`skips must have one entry per layer (${L}), got ${sk.length}`);
  sk.forEach((on, l) => {
    if (!on) return;
    if (l < 1 || l > L - 2) throw new RangeError(`a skip is only allowed at layers 1..L-2, not at ${l} (L=${L})`);
    const w = Wm(model, l);
    if (w.rows !== w.cols) throw new RangeError(`layer ${l} has a skip but maps ${w.cols} to ${w.rows}`);
  });
}

/** Throws unless consecutive layers chain (W_l has as many columns as W_{l−1} has rows) and biases fit. */
function checkChain(model: RefModel): void {
  const L = numLayers(model);
  if (model.biases.length !== L) throw new RangeError('biases must have one entry per layer');
  if (model.scales !== undefined && model.scales.length !== L)
    throw new RangeError('scales must have one entry per layer');
  for (let l = 0; l < L; l++) {
    const w = Wm(model, l);
    if (l > 0 && w.cols !== Wm(model, l - 1).rows) {
      throw new RangeError(`layer ${l}: W has ${w.cols} columns, previous layer has ${Wm(model, l - 1).rows} outputs`);
    }
    const b = model.biases[l];
    if (b && b.length !== w.rows) throw new RangeError(`layer ${l}: bias length ${b.length} != ${w.rows}`);
  }
}

/**
 * `init_activities_with_ffwd` with skips: z_1 = s_0 f_0(x), z_{l+1} = s_l f_l(z_l) + [skip_l] z_l; returns the L
 * activities z_1..z_L (the last is the prediction).
 */
export function genFfwd(model: GenModel, x: Mat): Mat[] {
  checkChain(model);
  checkSkips(model);
  const out: Mat[] = [];
  let cur = x;
  for (let l = 0; l < numLayers(model); l++) {
    cur = predict(model, l, cur);
    out.push(cur);
  }
  return out;
}

// ─────────────────────────────────────── generalised PC ───────────────────────────────────────

/**
 * Options of the generalised `pc_energy_fn`: `loss`, `lambda` (JPC's `output_energy_scaling`, default 1),
 * `weightDecay`, `spectralPenalty`, `activityDecay` (default 0). Param scalings come from `model.scales`
 * (`paramScalings`).
 */
export interface PcOpts {
  loss: Loss;
  lambda?: number;
  weightDecay?: number;
  spectralPenalty?: number;
  activityDecay?: number;
}

interface PcState {
  L: number;
  B: number;
  /** z(l) for l = 0..L: z_0 = x (supervised) or acts[0]; z_L is the dummy. */
  z: Mat[];
  /** acts index of z_l: l − 1 (supervised) or l (unsupervised). */
  off: number;
  /** g_l of code layer l (−∂E_{l+1}/∂pred_l, unweighted). */
  g: Mat[];
  /** w_l: 1 for hidden layers, λ for the output. */
  w: number[];
  /** E_{l+1} (λ included, not /B), natural order. */
  E: number[];
}

function pcState(model: GenModel, acts: readonly Mat[], y: Mat, x: Mat | null, opts: PcOpts): PcState {
  checkChain(model);
  checkSkips(model);
  const L = numLayers(model);
  if (L < 2) throw new RangeError('the PC energy needs at least 2 layers');
  const B = y.rows;
  const want = x === null ? L + 1 : L;
  if (acts.length !== want) {
    throw new RangeError(
      `expected ${want} activities (${x === null ? 'unsupervised' : 'supervised'}), got ${acts.length}`,
    );
  }
  const z: Mat[] = [];
  z.push(expectShape(x ?? acts[0], B, Wm(model, 0).cols, x === null ? 'z_0' : 'x'));
  const off = x === null ? 0 : -1;
  for (let l = 1; l <= L; l++) z.push(expectShape(acts[l + off], B, Wm(model, l - 1).rows, `activity z_${l}`));
  expectShape(y, B, Wm(model, L - 1).rows, 'y');
  const lambda = opts.lambda ?? 1;
  const g: Mat[] = [];
  const w: number[] = [];
  const E: number[] = [];
  for (let l = 0; l < L; l++) {
    const pred = predict(model, l, z[l]!);
    if (l < L - 1) {
      const e = sub(z[l + 1]!, pred);
      g.push(e);
      w.push(1);
      E.push(0.5 * sumSq(e));
    } else {
      const o = outputTerm(pred, y, opts.loss);
      g.push(o.g);
      w.push(lambda);
      E.push(lambda * o.E);
    }
  }
  return { L, B, z, off, g, w, E };
}

/**
 * Per-layer PC energies in natural order [E_1, …, E_L], each /B, λ included, no regularisers.
 * - supervised (x a Mat): `acts` = [z_1..z_L] (z_L a dummy); unsupervised (x null): `acts` = [z_0..z_L], z_0 free.
 * - E_l = ½Σ_b‖z_l − s_{l−1} f_{l−1}(z_{l−1}) − [skip_{l−1}] z_{l−1}‖² for l = 1..L−1 (z_0 = x or the free z_0),
 * - E_L = λ·½Σ_b‖y − s_{L−1} f_{L−1}(z_{L−1})‖² (mse) or −λΣ_b y·log_softmax(s_{L−1} f_{L−1}(z_{L−1})) (ce).
 * Differs from JPC in unsupervised mode: E_1 keeps the scaling s_0 (JPC drops it there, which is harmless only
 * for sp, the one parameterisation JPC's unsupervised mode can run).
 */
export function pcLayerEnergies(model: GenModel, acts: readonly Mat[], y: Mat, x: Mat | null, opts: PcOpts): number[] {
  const st = pcState(model, acts, y, x, opts);
  return st.E.map((e) => e / st.B);
}

/**
 * The three regularisers (not divided by B, except for the activity term's batch mean):
 * - weight   = (wd/2)·Σ_l ‖W_l‖²_F (weights only, every layer; JPC's own term is a silent no-op on make_mlp models),
 * - spectral = (sp/2)·Σ_l ‖W_lᵀW_l − I‖²_F (same remark),
 * - activity = (ad/2)·Σ_{every entry of acts, z_0 and the dummy included} mean_b ‖z_b‖².
 */
export function pcRegularisers(
  model: GenModel,
  acts: readonly Mat[],
  opts: PcOpts,
): { weight: number; spectral: number; activity: number } {
  const wd = opts.weightDecay ?? 0;
  const sp = opts.spectralPenalty ?? 0;
  const ad = opts.activityDecay ?? 0;
  let weight = 0;
  let spectral = 0;
  for (const w of model.weights) {
    weight += sumSq(w);
    const nIn = w.cols;
    const nOut = w.rows;
    for (let i = 0; i < nIn; i++) {
      for (let j = 0; j < nIn; j++) {
        let m = i === j ? -1 : 0;
        for (let o = 0; o < nOut; o++) m += w.data[o * nIn + i]! * w.data[o * nIn + j]!;
        spectral += m * m;
      }
    }
  }
  let activity = 0;
  for (const a of acts) activity += sumSq(a) / a.rows;
  return { weight: (wd / 2) * weight, spectral: (sp / 2) * spectral, activity: (ad / 2) * activity };
}

/** The total generalised PC energy: Σ_l E_l (each /B, λ included) + weight + spectral + activity regularisers. */
export function pcEnergyTotal(model: GenModel, acts: readonly Mat[], y: Mat, x: Mat | null, opts: PcOpts): number {
  const r = pcRegularisers(model, acts, opts);
  return pcLayerEnergies(model, acts, y, x, opts).reduce((a, b) => a + b, 0) + r.weight + r.spectral + r.activity;
}

/**
 * ∂(pcEnergyTotal)/∂acts, one Mat per entry of `acts`. With z_l the activity fed to code layer l (error g_l,
 * weight w_l = λ for the output layer, 1 otherwise):
 * - hidden z_l (1 ≤ l ≤ L−1): (e_l − w_l·vjp_l(z_l, g_l) + ad·z_l)/B, where e_l = g_{l−1} is z_l's own error and
 *   vjp_l(z, g) = s_l φ'(z) ⊙ (g W_l) + [skip_l] g;
 * - z_0 (unsupervised only): (−s_0·(g_0 W_0) + ad·z_0)/B (identity activation, no error of its own);
 * - dummy z_L: ad·z_L/B.
 */
export function pcActivityGrads(model: GenModel, acts: readonly Mat[], y: Mat, x: Mat | null, opts: PcOpts): Mat[] {
  const st = pcState(model, acts, y, x, opts);
  const ad = opts.activityDecay ?? 0;
  const out: Mat[] = [];
  for (let k = 0; k < acts.length; k++) {
    const l = k - st.off; // activity index → layer index of z
    const z = st.z[l]!;
    const grad = zerosLike(z);
    if (l >= 1 && l <= st.L - 1) addScaled(grad, 1, st.g[l - 1]!); // own error e_l (a hidden layer's, weight 1)
    if (l <= st.L - 1) addScaled(grad, -st.w[l]!, vjp(model, l, z, st.g[l]!));
    addScaled(grad, ad, z);
    out.push(scaleInPlace(grad, 1 / st.B));
  }
  return out;
}

/**
 * ∂(pcEnergyTotal)/∂θ: ∂/∂W_l = −(w_l s_l/B) Σ_b g_{l,b} ⊗ act_l(z_{l,b}) + wd·W_l + 2·sp·W_l(W_lᵀW_l − I),
 * ∂/∂b_l = −(w_l s_l/B) Σ_b g_{l,b}. The weight and spectral terms act on every layer (in JPC they are no-ops on
 * `make_mlp` models).
 */
export function pcParamGrads(model: GenModel, acts: readonly Mat[], y: Mat, x: Mat | null, opts: PcOpts): ParamGrads {
  const st = pcState(model, acts, y, x, opts);
  const grads = zeroParamGrads(model);
  for (let l = 0; l < st.L; l++) accumulateParamGrad(grads, model, l, st.z[l]!, st.g[l]!, -st.w[l]! / st.B);
  const wd = opts.weightDecay ?? 0;
  const sp = opts.spectralPenalty ?? 0;
  model.weights.forEach((w, l) => {
    const gw = grads.weights[l]!;
    const nIn = w.cols;
    const nOut = w.rows;
    // M = WᵀW − I (nIn × nIn)
    const M = new Float64Array(nIn * nIn);
    if (sp !== 0) {
      for (let i = 0; i < nIn; i++) {
        for (let j = 0; j < nIn; j++) {
          let m = i === j ? -1 : 0;
          for (let o = 0; o < nOut; o++) m += w.data[o * nIn + i]! * w.data[o * nIn + j]!;
          M[i * nIn + j] = m;
        }
      }
    }
    for (let o = 0; o < nOut; o++) {
      for (let j = 0; j < nIn; j++) {
        let wm = 0;
        if (sp !== 0) for (let i = 0; i < nIn; i++) wm += w.data[o * nIn + i]! * M[i * nIn + j]!;
        gw.data[o * nIn + j] = gw.data[o * nIn + j]! + wd * w.data[o * nIn + j]! + 2 * sp * wm;
      }
    }
  });
  return grads;
}

// ─────────────────────────────────────────── hybrid PC ───────────────────────────────────────────

/**
 * JPC's `init_activities_with_amort`: the amortiser's forward pass a_1 = f_0(image), a_j = f_{j−1}(a_{j−1}),
 * reversed to [a_L, …, a_1], then the dummy generator_last_layer(a_1) appended (L+1 entries). Entry k is the
 * amortised guess of the generator's z_k (a_L ≈ z_0, the label; a_1 ≈ z_{L−1}; the dummy ≈ z_L, the image).
 * An amortiser with skips (`skips[j]`) adds a_{j−1} to its layer j's output, in this pass and in its energy
 * (JPC's amortisers have neither skips nor scalings; WPC's models carry both into every function).
 */
export function initActivitiesWithAmort(amortiser: GenModel, generator: RefModel, image: Mat): Mat[] {
  checkChain(amortiser);
  checkSkips(amortiser);
  const a: Mat[] = [];
  let cur = image;
  for (let l = 0; l < numLayers(amortiser); l++) {
    cur = predict(amortiser, l, cur);
    a.push(cur);
  }
  const out = a.slice().reverse();
  out.push(layerForward(generator, numLayers(generator) - 1, a[0]!));
  return out;
}

interface HpcState {
  L: number;
  B: number;
  /** in_l (0-based code layer l): the image for l = 0, the amortised a_l = amortActs[L − l] otherwise. */
  inputs: Mat[];
  /** r_l = T_{l+1} − f_l(in_l). */
  r: Mat[];
}

function hpcState(
  amortiser: GenModel,
  genActs: readonly Mat[],
  amortActs: readonly Mat[],
  image: Mat,
  label: Mat | null,
): HpcState {
  checkChain(amortiser);
  checkSkips(amortiser);
  const L = numLayers(amortiser);
  if (L < 2) throw new RangeError('hpc: the amortiser needs at least 2 layers');
  const B = image.rows;
  if (amortActs.length !== L + 1)
    throw new RangeError(`hpc: expected ${L + 1} amortised activities, got ${amortActs.length}`);
  // z_k of the generator: genActs[k] (L+1 entries, unsupervised) or genActs[k − 1] (L entries, supervised).
  let zOff: number;
  if (genActs.length === L + 1) zOff = 0;
  else if (genActs.length === L) zOff = -1;
  else throw new RangeError(`hpc: expected ${L} or ${L + 1} generator activities, got ${genActs.length}`);
  const genZ = (k: number): Mat | undefined => genActs[k + zOff];
  if (label === null && zOff !== 0)
    throw new RangeError('hpc: without a label the generator activities must include z_0');
  const inputs: Mat[] = [];
  const r: Mat[] = [];
  for (let l = 0; l < L; l++) {
    const w = Wm(amortiser, l);
    const input = l === 0 ? image : amortActs[L - l];
    inputs.push(expectShape(input, B, w.cols, l === 0 ? 'image' : `amortised activity a_${l}`));
    // target of 1-based layer l+1: z_{L−l−1} for l < L−1; the label (or z_0) for the last layer
    const target = l < L - 1 ? genZ(L - 1 - l) : (label ?? genZ(0));
    expectShape(target, B, w.rows, `target of amortiser layer ${l}`);
    r.push(sub(target!, predict(amortiser, l, inputs[l]!)));
  }
  return { L, B, inputs, r };
}

/**
 * `hpc_energy_fn` (no ½ factor), with the generator's equilibrium activities `genActs` in the generator's own order
 * (supervised: [z_1..z_L]; unsupervised: [z_0..z_L]) and `amortActs` = `initActivitiesWithAmort(...)`.
 * With the amortiser's layers numbered 1..L (1-based) and a_0 = image, a_j = amortActs[L − j]:
 *   E_l = Σ_b‖T_l − f_l(a_{l−1})‖²/B,  T_l = z_{L−l} (l < L),  T_L = label, or z_0 when label is null.
 * The inputs are the amortised activities, not the targets. Returned in JPC's record_layers order
 * [E_L, E_2, …, E_{L−1}, E_1]. The amortiser's `scales` and `skips` (f_l(a) + a_{l−1}), if any, are applied (JPC
 * has neither).
 */
export function hpcLayerEnergies(
  amortiser: GenModel,
  genActs: readonly Mat[],
  amortActs: readonly Mat[],
  image: Mat,
  label: Mat | null,
): number[] {
  const st = hpcState(amortiser, genActs, amortActs, image, label);
  const E = st.r.map((r) => sumSq(r) / st.B);
  return [E[st.L - 1]!, ...E.slice(1, st.L - 1), E[0]!];
}

/** The total hPC energy: the sum of `hpcLayerEnergies`. */
export function hpcEnergy(
  amortiser: GenModel,
  genActs: readonly Mat[],
  amortActs: readonly Mat[],
  image: Mat,
  label: Mat | null,
): number {
  return hpcLayerEnergies(amortiser, genActs, amortActs, image, label).reduce((a, b) => a + b, 0);
}

/**
 * `compute_hpc_param_grads`: with r_l = T_l − f_l(a_{l−1}) (code layer l−1),
 * ∂E/∂W = −(2 s/B) Σ_b r_b ⊗ act(a_{l−1,b}), ∂E/∂b = −(2 s/B) Σ_b r_b (amortised inputs and targets held fixed).
 */
export function hpcParamGrads(
  amortiser: GenModel,
  genActs: readonly Mat[],
  amortActs: readonly Mat[],
  image: Mat,
  label: Mat | null,
): ParamGrads {
  const st = hpcState(amortiser, genActs, amortActs, image, label);
  const grads = zeroParamGrads(amortiser);
  for (let l = 0; l < st.L; l++) accumulateParamGrad(grads, amortiser, l, st.inputs[l]!, st.r[l]!, -2 / st.B);
  return grads;
}

// ───────────────────────────────────────── bidirectional PC ─────────────────────────────────────────

/** bPC weights: α_f (JPC `forward_energy_weight`) and α_b (`backward_energy_weight`), both default 1. */
export interface BpcOpts {
  alphaF?: number;
  alphaB?: number;
}

interface BpcState {
  H: number;
  B: number;
  aF: number;
  aB: number;
  /** z_0..z_{H+1} (z_0 = x or the free z_0, z_{H+1} = y). */
  z: Mat[];
  /** acts index of z_l: l − 1 (supervised) or l (unsupervised). */
  off: number;
  /** F_l = z_l − pred^td_{l−1}(z_{l−1}), l = 1..H+1 (index 0 unused). */
  F: Mat[];
  /** D_l = z_l − pred^bu_{H−l}(z_{l+1}), l = 0..H. */
  D: Mat[];
}

function bpcState(td: GenModel, bu: GenModel, acts: readonly Mat[], y: Mat, x: Mat | null, opts: BpcOpts): BpcState {
  checkChain(td);
  checkChain(bu);
  checkSkips(td);
  checkSkips(bu);
  const H = numLayers(td) - 1;
  if (H < 1) throw new RangeError('bpc: the top-down model needs at least 2 layers');
  if (numLayers(bu) !== H + 1) throw new RangeError(`bpc: the bottom-up model must have ${H + 1} layers`);
  const want = x === null ? H + 1 : H;
  if (acts.length !== want) throw new RangeError(`bpc: expected ${want} activities, got ${acts.length}`);
  const B = acts[0]!.rows;
  const off = x === null ? 0 : -1;
  const z: Mat[] = [];
  for (let l = 0; l <= H + 1; l++) {
    const m = l === 0 ? (x ?? acts[0]) : l === H + 1 ? y : acts[l + off];
    const width = l === 0 ? Wm(td, 0).cols : Wm(td, l - 1).rows;
    z.push(expectShape(m, B, width, l === 0 ? 'z_0' : l === H + 1 ? 'y' : `activity z_${l}`));
  }
  // bu layer j maps z_{H+1−j} → z_{H−j}
  for (let j = 0; j <= H; j++) {
    const w = Wm(bu, j);
    if (w.cols !== z[H + 1 - j]!.cols || w.rows !== z[H - j]!.cols) {
      throw new RangeError(`bpc: bottom-up layer ${j} must map width ${z[H + 1 - j]!.cols} to ${z[H - j]!.cols}`);
    }
  }
  const F: Mat[] = [mat(0, 0)];
  for (let l = 1; l <= H + 1; l++) F.push(sub(z[l]!, predict(td, l - 1, z[l - 1]!)));
  const D: Mat[] = [];
  for (let l = 0; l <= H; l++) D.push(sub(z[l]!, predict(bu, H - l, z[l + 1]!)));
  return { H, B, aF: opts.alphaF ?? 1, aB: opts.alphaB ?? 1, z, off, F, D };
}

/**
 * `bpc_energy_fn` with the H vs H+1 confusion fixed. `td` is x → h_1 … h_H → y (H+1 layers); `bu` is an ordinary
 * MLP y → h_H … h_1 → x (bu layer j maps z_{H+1−j} → z_{H−j}; JPC's `bottom_up_model[k]` is bu layer H − k).
 * Supervised: `acts` = [z_1..z_H]; unsupervised (x null): `acts` = [z_0, z_1..z_H], z_0 used in place of x.
 * With z_0 = x, z_{H+1} = y:
 *   forward residuals  F_l = z_l − td_{l−1}(z_{l−1}) − [td.skips[l−1]] z_{l−1},  l = 1..H+1 (F_{H+1}: output term)
 *   backward residuals D_l = z_l − bu_{H−l}(z_{l+1}) − [bu.skips[H−l]] z_{l+1},  l = 0..H   (D_0: input term)
 * and energies α_f·½Σ_b‖F_l‖²/B, α_b·½Σ_b‖D_l‖²/B, returned in JPC's record_layers order
 * [F_{H+1}, D_0, F_1, D_1, …, F_H, D_H] (2(H+1) values). Scalings in `td.scales`/`bu.scales` are applied if present
 * (JPC applies none). Each network applies its own activation (`td.act` in td's layers, `bu.act` in bu's, the
 * identity in the first layer of either), as JPC's two `make_mlp` networks do: the shared activities z_l enter
 * td as φ_td(z_l) and bu as φ_bu(z_l).
 */
export function bpcLayerEnergies(
  td: GenModel,
  bu: GenModel,
  acts: readonly Mat[],
  y: Mat,
  x: Mat | null,
  opts: BpcOpts,
): number[] {
  const st = bpcState(td, bu, acts, y, x, opts);
  const f = (l: number): number => (st.aF * 0.5 * sumSq(st.F[l]!)) / st.B;
  const b = (l: number): number => (st.aB * 0.5 * sumSq(st.D[l]!)) / st.B;
  const out = [f(st.H + 1), b(0)];
  for (let l = 1; l <= st.H; l++) out.push(f(l), b(l));
  return out;
}

/** The total bPC energy: the sum of `bpcLayerEnergies`. */
export function bpcEnergy(
  td: GenModel,
  bu: GenModel,
  acts: readonly Mat[],
  y: Mat,
  x: Mat | null,
  opts: BpcOpts,
): number {
  return bpcLayerEnergies(td, bu, acts, y, x, opts).reduce((a, b) => a + b, 0);
}

/**
 * ∂(bpcEnergy)/∂acts (same length as acts):
 * - z_l, 1 ≤ l ≤ H: (α_f F_l − α_f·vjp^td_l(z_l, F_{l+1}) + α_b D_l − α_b·vjp^bu_{H+1−l}(z_l, D_{l−1}))/B
 * - z_0 (unsupervised): (−α_f·s^td_0 (F_1 W^td_0) + α_b D_0)/B
 * where vjp_k(z, g) = s_k φ'_k(z) ⊙ (g W_k) + [skip_k] g (identity activation for layer 0 of either model; φ' of
 * the model the layer belongs to).
 */
export function bpcActivityGrads(
  td: GenModel,
  bu: GenModel,
  acts: readonly Mat[],
  y: Mat,
  x: Mat | null,
  opts: BpcOpts,
): Mat[] {
  const st = bpcState(td, bu, acts, y, x, opts);
  const out: Mat[] = [];
  for (let k = 0; k < acts.length; k++) {
    const l = k - st.off;
    const z = st.z[l]!;
    const g = zerosLike(z);
    addScaled(g, -st.aF, vjp(td, l, z, st.F[l + 1]!));
    addScaled(g, st.aB, st.D[l]!);
    if (l >= 1) {
      addScaled(g, st.aF, st.F[l]!);
      addScaled(g, -st.aB, vjp(bu, st.H + 1 - l, z, st.D[l - 1]!));
    }
    out.push(scaleInPlace(g, 1 / st.B));
  }
  return out;
}

/**
 * ∂(bpcEnergy)/∂θ for both models:
 * td layer k: ∂/∂W = −(α_f s_k/B) Σ_b F_{k+1} ⊗ act_k(z_k), ∂/∂b = −(α_f s_k/B) Σ_b F_{k+1};
 * bu layer j: ∂/∂V = −(α_b s_j/B) Σ_b D_{H−j} ⊗ act_j(z_{H+1−j}), ∂/∂c = −(α_b s_j/B) Σ_b D_{H−j}.
 */
export function bpcParamGrads(
  td: GenModel,
  bu: GenModel,
  acts: readonly Mat[],
  y: Mat,
  x: Mat | null,
  opts: BpcOpts,
): { td: ParamGrads; bu: ParamGrads } {
  const st = bpcState(td, bu, acts, y, x, opts);
  const gt = zeroParamGrads(td);
  const gb = zeroParamGrads(bu);
  for (let k = 0; k <= st.H; k++) accumulateParamGrad(gt, td, k, st.z[k]!, st.F[k + 1]!, -st.aF / st.B);
  for (let j = 0; j <= st.H; j++) accumulateParamGrad(gb, bu, j, st.z[st.H + 1 - j]!, st.D[st.H - j]!, -st.aB / st.B);
  return { td: gt, bu: gb };
}

// ──────────────────────────────────── error-reparameterised PC ────────────────────────────────────

interface EpcState {
  L: number;
  B: number;
  /** z_0..z_L. */
  z: Mat[];
  /** ε_l for l = 1..L−1 (index 0: ε_0 = z_0 in unsupervised mode, unused otherwise). */
  eps: (Mat | null)[];
  unsup: boolean;
}

function epcState(model: GenModel, errors: readonly Mat[], x: Mat | null): EpcState {
  checkChain(model);
  checkSkips(model);
  const L = numLayers(model);
  if (L < 2) throw new RangeError('epc: need at least 2 layers');
  const unsup = x === null;
  const want = unsup ? L : L - 1;
  if (errors.length !== want) throw new RangeError(`epc: expected ${want} errors, got ${errors.length}`);
  const off = unsup ? 0 : -1;
  const B = (x ?? errors[0]!).rows;
  const z0 = expectShape(x ?? errors[0], B, Wm(model, 0).cols, unsup ? 'ε_0' : 'x');
  const z: Mat[] = [z0];
  const eps: (Mat | null)[] = [unsup ? z0 : null];
  for (let l = 1; l <= L - 1; l++) {
    const e = expectShape(errors[l + off], B, Wm(model, l - 1).rows, `error ε_${l}`);
    eps.push(e);
    const zl = predict(model, l - 1, z[l - 1]!);
    addScaled(zl, 1, e);
    z.push(zl);
  }
  z.push(predict(model, L - 1, z[L - 1]!));
  return { L, B, z, eps, unsup };
}

/**
 * The ePC forward pass: z_0 = x (or ε_0), z_l = s_{l−1} f_{l−1}(z_{l−1}) + [skip_{l−1}] z_{l−1} + ε_l for
 * l = 1..L−1, z_L = s_{L−1} f_{L−1}(z_{L−1}) (no output error). Returns the PC activity list of the mode:
 * supervised [z_1..z_L], unsupervised [z_0..z_L] (the last being the prediction), so that
 * epcEnergy(ε) = pcEnergyTotal(epcForward(ε)).
 */
export function epcForward(model: GenModel, errors: readonly Mat[], x: Mat | null): Mat[] {
  const st = epcState(model, errors, x);
  return st.unsup ? st.z : st.z.slice(1);
}

/**
 * `epc_energy_fn` with JPC's bugs fixed: errors = [ε_1..ε_{L−1}] (supervised) or [ε_0, ε_1..ε_{L−1}] with
 * ε_0 = z_0 free and unpenalised (unsupervised);
 *   F = [Σ_{l=1}^{L−1} ½‖ε_l‖² + ½‖y − z_L‖²]/B   (ce: −Σ y·log_softmax(z_L) for the last term).
 * JPC subtracts a free, unpenalised ε_L from z_L (inference can then zero the output loss) and, unsupervised,
 * penalises ε_0 but not ε_{L−1}; see `jpcEpcEnergy`.
 */
export function epcEnergy(model: GenModel, errors: readonly Mat[], y: Mat, x: Mat | null, loss: Loss): number {
  const st = epcState(model, errors, x);
  let F = 0;
  for (let l = 1; l <= st.L - 1; l++) F += 0.5 * sumSq(st.eps[l]!);
  F += outputTerm(st.z[st.L]!, y, loss).E;
  return F / st.B;
}

/**
 * Backpropagated sensitivities δ_l = ∂(B·F_out)/∂z_l for l = 0..L−1 (through the forward pass, ε fixed) and
 * the output error g_out:
 *   δ_{L−1} = −vjp_{L−1}(z_{L−1}, g_out),  δ_{l−1} = vjp_{l−1}(z_{l−1}, δ_l).
 */
function epcBackprop(model: GenModel, st: EpcState, y: Mat, loss: Loss): { delta: Mat[]; gOut: Mat } {
  const L = st.L;
  const gOut = outputTerm(st.z[L]!, y, loss).g;
  const delta: Mat[] = new Array<Mat>(L);
  const neg = scaleInPlace(mat(gOut.rows, gOut.cols, gOut.data), -1);
  delta[L - 1] = vjp(model, L - 1, st.z[L - 1]!, neg);
  for (let l = L - 1; l >= 1; l--) delta[l - 1] = vjp(model, l - 1, st.z[l - 1]!, delta[l]!);
  return { delta, gOut };
}

/**
 * ∂(epcEnergy)/∂errors (same layout as errors): ∂F/∂ε_l = (ε_l + δ_l)/B for l = 1..L−1 and, unsupervised,
 * ∂F/∂ε_0 = δ_0/B = s_0 (δ_1 W_0)/B, with δ from the backward pass
 *   δ_{L−1} = −s_{L−1} φ'(z_{L−1}) ⊙ (g_out W_{L−1}),  δ_{l−1} = s_{l−1} act'_{l−1}(z_{l−1}) ⊙ (δ_l W_{l−1}) + [skip_{l−1}] δ_l,
 * g_out = y − z_L (mse) or y − softmax(z_L)·Σ_j y_j (ce).
 */
export function epcErrorGrads(model: GenModel, errors: readonly Mat[], y: Mat, x: Mat | null, loss: Loss): Mat[] {
  const st = epcState(model, errors, x);
  const { delta } = epcBackprop(model, st, y, loss);
  const out: Mat[] = [];
  if (st.unsup) out.push(scaleInPlace(mat(delta[0]!.rows, delta[0]!.cols, delta[0]!.data), 1 / st.B));
  for (let l = 1; l <= st.L - 1; l++) {
    const g = mat(delta[l]!.rows, delta[l]!.cols, delta[l]!.data);
    addScaled(g, 1, st.eps[l]!);
    out.push(scaleInPlace(g, 1 / st.B));
  }
  return out;
}

/**
 * ∂(epcEnergy)/∂θ at fixed errors (through the whole forward pass): with D_{k+1} = δ_{k+1} for k < L−1 and
 * D_L = −g_out, ∂F/∂W_k = (s_k/B) Σ_b D_{k+1} ⊗ act_k(z_k), ∂F/∂b_k = (s_k/B) Σ_b D_{k+1}.
 */
export function epcParamGrads(model: GenModel, errors: readonly Mat[], y: Mat, x: Mat | null, loss: Loss): ParamGrads {
  const st = epcState(model, errors, x);
  const { delta, gOut } = epcBackprop(model, st, y, loss);
  const grads = zeroParamGrads(model);
  for (let k = 0; k < st.L; k++) {
    if (k < st.L - 1) accumulateParamGrad(grads, model, k, st.z[k]!, delta[k + 1]!, 1 / st.B);
    else accumulateParamGrad(grads, model, k, st.z[k]!, gOut, -1 / st.B);
  }
  return grads;
}

/**
 * JPC's `epc_energy_fn` exactly as coded (for documenting its differences; scalings from `model.scales`, skips
 * wherever `model.skips` has them):
 * - supervised: errors = [ε_1..ε_L] (L entries, the last of output width); z_l = pred_{l−1}(z_{l−1}) + ε_l for
 *   l < L, z_L = s f_{L−1}(z_{L−1}) − ε_L; F = [Σ_{k=0}^{L−2} ½‖errors[k]‖² + out(y, z_L)]/B (ε_L free, unpenalised).
 * - unsupervised: errors = [ε_0..ε_L] (L+1 entries), z_0 = ε_0, the same forward pass with errors[1..L−1] and
 *   z_L − errors[L]; the penalty sums errors[0..L−2], i.e. ε_0 is penalised and ε_{L−1} is not.
 */
export function jpcEpcEnergy(
  model: GenModel,
  errorsJpcLayout: readonly Mat[],
  y: Mat,
  x: Mat | null,
  loss: Loss,
): number {
  checkChain(model);
  const L = numLayers(model);
  const want = x === null ? L + 1 : L;
  if (errorsJpcLayout.length !== want) throw new RangeError(`jpcEpcEnergy: expected ${want} errors`);
  let cur = x ?? errorsJpcLayout[0]!;
  let idx = x === null ? 1 : 0;
  for (let l = 0; l < L - 1; l++) {
    const z = predict(model, l, cur);
    addScaled(z, 1, errorsJpcLayout[idx]!);
    cur = z;
    idx++;
  }
  const zL = layerForward(model, L - 1, cur);
  addScaled(zL, -1, errorsJpcLayout[idx]!);
  let F = 0;
  for (let k = 0; k < L - 1; k++) F += 0.5 * sumSq(errorsJpcLayout[k]!);
  F += outputTerm(zL, y, loss).E;
  return F / y.rows;
}
