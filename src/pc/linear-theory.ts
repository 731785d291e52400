/**
 * JPC's analytical tools for deep linear networks (no biases, `actFn: 'linear'`), after Innocenti et al.
 * 2024, "Only strict saddles in the energy landscape of predictive coding networks?" (paper Eq. 4):
 *
 *   layer l maps z_l to the prediction M_l·z_l of z_{l+1}, with M_l = a_l·W_l (+ I with an identity skip),
 *   z_0 = x, z_L = y, and energy F = (1/B) Σ_b [ Σ_{i≤H} ½‖e_i‖² + ½λ‖e_L‖² ],  e_l = z_l − M_{l−1} z_{l−1}.
 *
 * F is quadratic in the H = L − 1 hidden activities, so inference has an exact minimum:
 *
 *   F* = (1/B) Σ_b ½ r_bᵀ S⁻¹ r_b,  r_b = y_b − W_eff x_b,  W_eff = M_{L−1}⋯M_0,
 *   S = I/λ + Σ_{i=1}^{H} J_i J_iᵀ,  J_i = M_{L−1}⋯M_i  (the map from layer i to the output).
 *
 * At that minimum λe_L = u_b = S⁻¹ r_b and e_i = J_iᵀ u_b, so the equilibrium activities follow from one
 * forward pass that injects J_iᵀu at every hidden layer, and ∂(F*)/∂W_l = −(a_l/B) Σ_b g_{l+1,b} z*_{l,b}ᵀ with
 * g_i = J_iᵀu, g_L = u (the PC weight gradient at equilibrium: the envelope theorem).
 *
 * Where the work runs: the weight chains J_i, the batched forward passes and residuals, and the Gram blocks
 * WᵀW are matrix products of width-sized operands and run on the GPU (gemm.wgsl). What is left is small and
 * ill-suited to a GPU (sequential triangular solves): S is d_y × d_y, and the per-sample Hessian is
 * block-tridiagonal, so both are factored by Cholesky in float64 on the host — O(d_y³) and O(H·N³), never a
 * dense inverse and never an (H·N)² system.
 */
import { WpcArgumentError, argError, checkFinite } from '../runtime/errors.js';
import { checkFits, groupDigits, storageLimit } from '../runtime/limits.js';
import { Recorder } from '../runtime/recorder.js';
import type { Runtime } from '../runtime/runtime.js';
import { Tensor, checkTensor } from '../runtime/tensor.js';
import {
  blockTridiagonalCholesky,
  blockTridiagonalSolve,
  cholesky,
  choleskySolve,
  type BlockTridiagonal,
} from '../util/linalg64.js';
import { batchSizeOf, checkModel, checkOptions, type BatchData, type ParamGradResult } from './batch.js';
import { GemmRecorder, asMatrix, type GpuMatrix } from './linalg.js';
import { type Model, formatDims } from './model.js';
import { Optimizer, checkOptState, type OptState } from './optim.js';

/** A dense row-major float64 matrix. */
export interface Matrix64 {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

export interface LinearTheoryOptions {
  /** λ, the weight of the output energy (JPC's `output_energy_scaling`). Default 1. */
  outputEnergyScaling?: number | null;
}

export interface LinearHessianOptions extends LinearTheoryOptions {
  /** The activity decay of the energy, adding ad·I to every diagonal block. Default 0. */
  activityDecay?: number;
  /** Include the diagonal blocks. Default true. */
  diag?: boolean;
  /** Include the off-diagonal blocks. Default true. */
  offDiag?: boolean;
}

export interface LinearActivitySolutionOptions extends LinearTheoryOptions {
  /** Activity decay (ad/2)·Σ mean_b ‖z‖² in the energy. Default 0. */
  activityDecay?: number;
  /** Tikhonov shift: solves (A + εI) z = b, as JPC's `epsilon`. Default 0. */
  epsilon?: number;
  /**
   * `'output-space'`: through S (GPU passes and a d_y × d_y solve; needs activityDecay = epsilon = 0);
   * `'block-cholesky'`: the block-tridiagonal Hessian factored on the host, O(H·N³); `'auto'` (default): the
   * first when it applies, as it costs a few forward passes instead of H width-cubed factorisations.
   */
  method?: 'auto' | 'output-space' | 'block-cholesky';
}

export interface LinearEquilibEnergyResult {
  /** F*, the energy at the exact inference equilibrium (mean over the batch, as `pcEnergy`). */
  energy: number;
  /** S (d_y × d_y). */
  rescaling: Matrix64;
}

const LAMBDA_KEYS = ['outputEnergyScaling'] as const;

/**
 * Most entries of one dense float64 matrix a theory function forms on the host (512 MiB): S, a Hessian or one of
 * its blocks.
 */
const MAX_HOST_MATRIX_ENTRIES = 2 ** 26;

/** What a theory call computes, for `checkTheoryFits`. */
interface TheoryWork {
  /** Rows of x and y, when the call takes a batch. */
  B?: number;
  /** J_i and S (the output-space route). */
  chain?: boolean;
  /** The Hessian's blocks (block Cholesky, the dense Hessian). */
  blocks?: boolean;
  /** The dense (Σ d_i)² Hessian. */
  dense?: boolean;
}

/**
 * Refuses, before anything is allocated, a theory call whose GPU arrays (each one storage binding) or host
 * matrices (at most MAX_HOST_MATRIX_ENTRIES entries each) would be too large: batch tensors B × d_l, the
 * chains J_i (d_y × d_i) and S (d_y²), the Gram blocks (d_i²) and the dense Hessian ((Σ d_i)²).
 */
function checkTheoryFits(fn: string, model: Model, work: TheoryWork): void {
  const limit = storageLimit(model.runtime.limits);
  const dims = model.dims;
  const dy = model.outputDim;
  const hidden = dims.slice(1, -1);
  const subject = `${fn}: model ${formatDims(dims)}`;
  const host = (what: string, entries: number, hint: string) => {
    if (entries > MAX_HOST_MATRIX_ENTRIES) {
      throw new WpcArgumentError(
        `${subject} is too large for ${what}: ${groupDigits(entries)} float64 entries, more than ${groupDigits(MAX_HOST_MATRIX_ENTRIES)} (512 MiB, WPC's cap for one host matrix); ${hint}`,
      );
    }
  };
  if (work.B !== undefined) {
    const widest = Math.max(...dims);
    checkFits(
      `${fn}: x (${work.B} rows)`,
      `a [${work.B}, ${widest}] activity tensor`,
      work.B * widest * 4,
      limit,
      'use a smaller batch',
    );
  }
  if (work.chain) {
    host('the rescaling S (d_y × d_y)', dy * dy, 'the output layer is too wide');
    checkFits(
      subject,
      `the chains J_i (d_y × d_i, up to ${dy} × ${Math.max(dy, ...hidden)} floats)`,
      dy * Math.max(dy, ...hidden) * 4,
      limit,
    );
  }
  if (work.blocks) {
    const widest = Math.max(0, ...hidden);
    host('a Hessian block (d_i × d_i)', widest * widest, 'a hidden layer is too wide');
    checkFits(subject, `a Gram block W_iᵀW_i (${widest} × ${widest} floats)`, widest * widest * 4, limit);
  }
  if (work.dense) {
    const n = hidden.reduce((a, b) => a + b, 0);
    host(`the dense Hessian (${n} × ${n})`, n * n, 'use computeLinearActivitySolution, which never forms it');
  }
}

function checkLinearModel(fn: string, model: unknown): Model {
  const m = checkModel(fn, model);
  if (m.actFn !== 'linear')
    throw new WpcArgumentError(
      `${fn}: the theory holds for deep linear networks: model.actFn must be 'linear', got '${m.actFn}'`,
    );
  const biased = m.layers.findIndex((l) => l.useBias);
  if (biased >= 0)
    throw new WpcArgumentError(
      `${fn}: the theory holds for networks without biases: layer ${biased} has a bias (make the model with useBias: false)`,
    );
  return m;
}

function lambdaOf(fn: string, opts: LinearTheoryOptions): number {
  const v = opts.outputEnergyScaling;
  return v === undefined || v === null ? 1 : checkFinite(fn, 'options.outputEnergyScaling', v, { min: 0, open: true });
}

function nonNegative(fn: string, arg: string, v: unknown): number {
  return v === undefined ? 0 : checkFinite(fn, arg, v, { min: 0 });
}

function flag(fn: string, arg: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') argError(fn, arg, 'a boolean', v);
  return v;
}

/** x and y as tensors (uploaded when given as arrays); `owned` are the ones to dispose. */
function batchTensors(
  fn: string,
  model: Model,
  x: BatchData,
  y: BatchData | undefined,
): { B: number; X: Tensor; Y: Tensor | null; owned: Tensor[] } {
  const B = batchSizeOf(fn, 'x', x, model.inputDim, model);
  if (y !== undefined) {
    const By = batchSizeOf(fn, 'y', y, model.outputDim, model);
    if (By !== B) throw new WpcArgumentError(`${fn}: x and y must have the same batch size, got ${B} and ${By}`);
  }
  const owned: Tensor[] = [];
  const take = (d: BatchData, width: number): Tensor => {
    if (d instanceof Tensor) return d;
    const t = model.runtime.tensor(d, [B, width]);
    owned.push(t);
    return t;
  };
  return { B, X: take(x, model.inputDim), Y: y === undefined ? null : take(y, model.outputDim), owned };
}

/** Everything one theory call records: the gemm kernel, W_l as matrices, temporaries to free. */
class Chains {
  readonly temps: Tensor[] = [];
  readonly rec: Recorder;
  private constructor(
    readonly model: Model,
    readonly gemm: GemmRecorder,
    fn: string,
  ) {
    this.rec = new Recorder(model.runtime, `wpc.${fn}`);
  }

  static async create(fn: string, model: Model): Promise<Chains> {
    return new Chains(model, await GemmRecorder.create(model.runtime), fn);
  }

  get rt(): Runtime {
    return this.model.runtime;
  }

  /** Hidden layers H = L − 1. */
  get H(): number {
    return this.model.depth - 1;
  }

  weight(l: number): GpuMatrix {
    const layer = this.model.layers[l]!;
    return { buffer: this.model.params, offset: layer.weightOffset, ld: layer.inDim };
  }

  temp(shape: number[]): Tensor {
    const t = this.rt.empty(shape);
    this.temps.push(t);
    return t;
  }

  /** J_i = M_{L−1}⋯M_i for i = 1..H (index i of the result; d_y × d_i), from J_L = I backwards. */
  weightChain(): Tensor[] {
    const { model, H } = this;
    const dy = model.outputDim;
    const eye = new Float32Array(dy * dy);
    for (let i = 0; i < dy; i++) eye[i * dy + i] = 1;
    const J: Tensor[] = [];
    J[H + 1] = this.rt.tensor(eye, [dy, dy]);
    this.temps.push(J[H + 1]!);
    for (let i = H; i >= 1; i--) {
      const layer = model.layers[i]!;
      J[i] = this.temp([dy, layer.inDim]);
      // J_i = J_{i+1}·(a_i W_i + σ_i I): W_i is [d_{i+1}, d_i].
      this.gemm.record(this.rec, {
        m: dy,
        k: layer.outDim,
        n: layer.inDim,
        a: asMatrix(J[i + 1]!),
        b: this.weight(i),
        c: asMatrix(J[i]!),
        alpha: layer.scale,
        addA: layer.skip,
      });
    }
    return J;
  }

  /**
   * Activities of the forward pass z_{l+1} = M_l z_l (+ g_{l+1} for hidden l + 1 ≤ H), rows = samples: z_1..z_L
   * (index l). With `inject` (B × d_i for i = 1..H; an entry H + 1 is ignored) this is the equilibrium pass, whose
   * last activity is the prediction M_{L−1} z*_{L−1} (not y − e_L); without, the feedforward prediction.
   */
  forward(X: Tensor, B: number, inject?: readonly Tensor[], keep = false): Tensor[] {
    const { model, H } = this;
    const Z: Tensor[] = [X];
    model.layers.forEach((layer, l) => {
      const out = keep ? this.rt.empty([B, layer.outDim]) : this.temp([B, layer.outDim]);
      const g = l + 1 <= H ? inject?.[l + 1] : undefined;
      this.gemm.record(this.rec, {
        m: B,
        k: layer.inDim,
        n: layer.outDim,
        a: asMatrix(Z[l]!),
        b: this.weight(l),
        transB: true,
        c: asMatrix(out),
        alpha: layer.scale,
        addA: layer.skip,
        ...(g ? { d: asMatrix(g), beta: 1 } : {}),
      });
      Z.push(out);
    });
    return Z;
  }

  submit(): void {
    this.rec.submit();
  }

  dispose(): void {
    this.gemm.release();
    for (const t of this.temps.splice(0)) t.dispose();
  }
}

/** S = I/λ + Σ_i J_i J_iᵀ in float64 from the J_i read back. */
function rescalingFrom(J: readonly Float32Array[], widths: readonly number[], dy: number, lambda: number): Matrix64 {
  const S = new Float64Array(dy * dy);
  for (let r = 0; r < dy; r++) S[r * dy + r] = 1 / lambda;
  J.forEach((j, idx) => {
    const n = widths[idx]!;
    for (let r = 0; r < dy; r++) {
      for (let c = 0; c <= r; c++) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += j[r * n + k]! * j[c * n + k]!;
        S[r * dy + c] = S[r * dy + c]! + acc;
      }
    }
  });
  for (let r = 0; r < dy; r++) for (let c = r + 1; c < dy; c++) S[r * dy + c] = S[c * dy + r]!;
  return { rows: dy, cols: dy, data: S };
}

interface OutputSpace {
  /** J_i tensors (index 1..H), still on the GPU. */
  J: Tensor[];
  rescaling: Matrix64;
  /** u_b = S⁻¹ r_b, B × d_y. */
  u: Float64Array;
  energy: number;
}

/** Records and reads what every output-space computation needs: J_i, the residuals, S and u = S⁻¹r. */
async function outputSpace(ch: Chains, X: Tensor, Y: Tensor, B: number, lambda: number): Promise<OutputSpace> {
  const { model, H } = ch;
  const dy = model.outputDim;
  const J = ch.weightChain();
  const Z = ch.forward(X, B);
  ch.submit();
  const ranges = [Y, Z[model.depth]!, ...J.slice(1, H + 1)].map(rangeOf);
  const [y, yhat, ...Jh] = await ch.rt.read(ranges);
  const widths = model.dims.slice(1, H + 1);
  const rescaling = rescalingFrom(Jh, widths, dy, lambda);
  const L = cholesky(rescaling.data, dy, 'rescaling S');
  const u = new Float64Array(B * dy);
  let sum = 0;
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < dy; k++) u[b * dy + k] = y![b * dy + k]! - yhat![b * dy + k]!;
    const r = u.slice(b * dy, (b + 1) * dy);
    choleskySolve(L, dy, u, b * dy);
    for (let k = 0; k < dy; k++) sum += r[k]! * u[b * dy + k]!;
  }
  return { J, rescaling, u, energy: (0.5 * sum) / B };
}

/** g_i = J_iᵀ u_b for every hidden layer (B × d_i, index 1..H) and g_L = u. */
function injections(ch: Chains, space: OutputSpace, B: number): Tensor[] {
  const { model, H } = ch;
  const dy = model.outputDim;
  const U = ch.rt.tensor(Float32Array.from(space.u), [B, dy]);
  ch.temps.push(U);
  const g: Tensor[] = [];
  for (let i = 1; i <= H; i++) {
    g[i] = ch.temp([B, model.dims[i]!]);
    ch.gemm.record(ch.rec, {
      m: B,
      k: dy,
      n: model.dims[i]!,
      a: asMatrix(U),
      b: asMatrix(space.J[i]!),
      c: asMatrix(g[i]!),
    });
  }
  g[H + 1] = U;
  return g;
}

/** A tensor as a readback range. */
const rangeOf = (t: Tensor) => ({ buffer: t.buffer, byteOffset: t.byteOffset, byteLength: t.byteLength });

/**
 * Runs `body` on the batch (x, y uploaded when given as arrays, both checked again once the kernel is ready, in
 * case the caller disposed a tensor meanwhile) and frees every temporary afterwards.
 */
async function withBatch<T>(
  fn: string,
  model: Model,
  x: BatchData,
  y: BatchData,
  body: (ch: Chains, X: Tensor, Y: Tensor, B: number) => Promise<T>,
): Promise<T> {
  const { B, X, Y, owned } = batchTensors(fn, model, x, y);
  return withChains(
    fn,
    model,
    async (ch) => {
      checkTensor(fn, 'x', X, model.runtime);
      checkTensor(fn, 'y', Y, model.runtime);
      return body(ch, X, Y!, B);
    },
    owned,
  );
}

async function withChains<T>(
  fn: string,
  model: Model,
  body: (ch: Chains) => Promise<T>,
  owned: Tensor[] = [],
): Promise<T> {
  let ch: Chains | undefined;
  try {
    ch = await Chains.create(fn, model);
    model.checkAlive(fn);
    return await body(ch);
  } finally {
    ch?.dispose();
    for (const t of owned) t.dispose();
  }
}

/**
 * JPC's `compute_linear_equilib_rescaling`: S = I/λ + Σ_{i=1}^{H} J_i J_iᵀ with J_i = M_{L−1}⋯M_i (with
 * identity skips, M_i = a_i W_i + I). The scalings a_i, skips and γ come from the model. Returns S in float64.
 */
export async function computeLinearEquilibRescaling(
  model: Model,
  options: LinearTheoryOptions = {},
): Promise<Matrix64> {
  const fn = 'computeLinearEquilibRescaling';
  checkLinearModel(fn, model);
  const opts = checkOptions(fn, options, LAMBDA_KEYS);
  const lambda = lambdaOf(fn, opts);
  checkTheoryFits(fn, model, { chain: true });
  return withChains(fn, model, async (ch) => {
    const J = ch.weightChain();
    ch.submit();
    const Jh = await ch.rt.read(J.slice(1, ch.H + 1).map(rangeOf));
    return rescalingFrom(Jh, model.dims.slice(1, ch.H + 1), model.outputDim, lambda);
  });
}

/**
 * JPC's `linear_equilib_energy`: the PC energy at the exact inference equilibrium of a deep linear network,
 * F* = (1/B) Σ_b ½ r_bᵀ S⁻¹ r_b with r_b = y_b − W_eff x_b. Returns F* and S.
 */
export async function linearEquilibEnergy(
  model: Model,
  x: BatchData,
  y: BatchData,
  options: LinearTheoryOptions = {},
): Promise<LinearEquilibEnergyResult> {
  const fn = 'linearEquilibEnergy';
  checkLinearModel(fn, model);
  const opts = checkOptions(fn, options, LAMBDA_KEYS);
  const lambda = lambdaOf(fn, opts);
  checkTheoryFits(fn, model, { B: batchSizeOf(fn, 'x', x, model.inputDim, model), chain: true });
  return withBatch(fn, model, x, y, async (ch, X, Y, B) => {
    const space = await outputSpace(ch, X, Y, B, lambda);
    return { energy: space.energy, rescaling: space.rescaling };
  });
}

/**
 * The equilibrium activities z*_1..z*_L through S (activity decay 0, ε 0): z*_H from the injected pass, and
 * z*_L = M_{L−1} z*_H, the prediction (JPC's dummy output activity). `g` also holds g_L = u for the gradients.
 */
async function outputSpaceSolution(
  ch: Chains,
  X: Tensor,
  Y: Tensor,
  B: number,
  lambda: number,
): Promise<{ Z: Tensor[]; g: Tensor[]; energy: number }> {
  const space = await outputSpace(ch, X, Y, B, lambda);
  const g = injections(ch, space, B);
  return { Z: ch.forward(X, B, g, true), g, energy: space.energy };
}

type HessianBlocks = BlockTridiagonal;

/**
 * The per-sample activity Hessian as blocks: for hidden i = 1..H, with M_i = a_i W_i + σ_i I and c = λ for the
 * output layer (i = H), 1 otherwise:
 *   D_i = (1 + ad + ε)·I + c·M_iᵀM_i,   A[i, i+1] = −M_iᵀ.
 * a_i² W_iᵀW_i is formed on the GPU; the identity and skip terms are added in float64. (JPC's skip formula with
 * activity decay adds 2a(W + Wᵀ): the decay belongs on the diagonal only, so WPC adds I, nothing else.)
 */
async function hessianBlocks(ch: Chains, lambda: number, shift: number): Promise<HessianBlocks> {
  const { model, H } = ch;
  const grams: Tensor[] = [];
  for (let i = 1; i <= H; i++) {
    const layer = model.layers[i]!;
    const gram = ch.temp([layer.inDim, layer.inDim]);
    const w = ch.weight(i);
    ch.gemm.record(ch.rec, {
      m: layer.inDim,
      k: layer.outDim,
      n: layer.inDim,
      a: w,
      transA: true,
      b: w,
      c: asMatrix(gram),
      alpha: layer.scale * layer.scale,
    });
    grams.push(gram);
  }
  ch.submit();
  const read = await ch.rt.read([
    ...grams.map(rangeOf),
    ...model.layers
      .slice(1)
      .map((l) => ({ buffer: model.params, byteOffset: l.weightOffset * 4, byteLength: l.inDim * l.outDim * 4 })),
  ]);
  const sizes = model.dims.slice(1, H + 1);
  const diag: Float64Array[] = [];
  const upper: Float64Array[] = [];
  for (let i = 1; i <= H; i++) {
    const layer = model.layers[i]!;
    const n = layer.inDim;
    const q = layer.outDim;
    const gram = read[i - 1]!;
    const W = read[H + i - 1]!;
    const a = layer.scale;
    const sigma = layer.skip ? 1 : 0;
    const c = i === H ? lambda : 1;
    const D = new Float64Array(n * n);
    for (let r = 0; r < n; r++) {
      for (let s = 0; s < n; s++) {
        // M_iᵀM_i = a²WᵀW + σa(W + Wᵀ) + σI (σ only for square W).
        let m = gram[r * n + s]!;
        if (sigma) m += a * (W[r * n + s]! + W[s * n + r]!) + (r === s ? 1 : 0);
        D[r * n + s] = c * m + (r === s ? 1 + shift : 0);
      }
    }
    // Symmetrise what float32 rounding left in the Gram block.
    for (let r = 0; r < n; r++)
      for (let s = r + 1; s < n; s++) D[r * n + s] = D[s * n + r] = 0.5 * (D[r * n + s]! + D[s * n + r]!);
    diag.push(D);
    if (i < H) {
      // A[i, i+1] = −M_iᵀ: n × q, entry (r, s) = −(a W[s, r] + σ δ_rs).
      const U = new Float64Array(n * q);
      for (let r = 0; r < n; r++)
        for (let s = 0; s < q; s++) U[r * q + s] = -(a * W[s * n + r]! + (sigma && r === s ? 1 : 0));
      upper.push(U);
    }
  }
  return { sizes, diag, upper };
}

/**
 * JPC's `compute_linear_activity_hessian`: the Hessian of the per-sample energy (B·F) with respect to the
 * hidden activities z_1..z_H of a deep linear network, a dense (Σ d_i)² float64 matrix. It is block-tridiagonal:
 * D_i = (1 + ad)·I + c_i M_iᵀM_i on the diagonal (c_i = λ for the last hidden layer) and −M_iᵀ above it, where
 * M_i = a_i W_i (+ I with skips). `diag: false` / `offDiag: false` leave those blocks zero.
 *
 * Every a_i is the model's scaling, the one its energy uses, so this is the true Hessian of that energy (tested
 * against second differences of it). JPC's formula takes the output layer's a from its own table instead and
 * disagrees with its energy in two cases, both JPC bugs that WPC does not copy: ntp with skips (JPC scales the
 * output block by 1/√(N·L), its energy by 1/√N) and γ under sp or ntp (JPC's block ignores γ, its energy divides
 * a_L by it). With skips and activity decay WPC adds ad·I only (JPC doubles the skip cross term).
 */
export async function computeLinearActivityHessian(
  model: Model,
  options: LinearHessianOptions = {},
): Promise<Matrix64> {
  const fn = 'computeLinearActivityHessian';
  checkLinearModel(fn, model);
  const opts = checkOptions(fn, options, [...LAMBDA_KEYS, 'activityDecay', 'diag', 'offDiag']);
  const lambda = lambdaOf(fn, opts);
  const decay = nonNegative(fn, 'options.activityDecay', opts.activityDecay);
  const diag = flag(fn, 'options.diag', opts.diag, true);
  const offDiag = flag(fn, 'options.offDiag', opts.offDiag, true);
  if (model.depth < 2)
    throw new WpcArgumentError(
      `${fn}: the model has no hidden layer (depth ${model.depth}); the activity Hessian needs depth >= 2`,
    );
  const n = model.dims.slice(1, -1).reduce((s, d) => s + d, 0);
  checkTheoryFits(fn, model, { blocks: true, dense: true });
  return withChains(fn, model, async (ch) => {
    const blocks = await hessianBlocks(ch, lambda, decay);
    const out = new Float64Array(n * n);
    let at = 0;
    blocks.sizes.forEach((size, i) => {
      if (diag) {
        const D = blocks.diag[i]!;
        for (let r = 0; r < size; r++) out.set(D.subarray(r * size, (r + 1) * size), (at + r) * n + at);
      }
      if (offDiag && i + 1 < blocks.sizes.length) {
        const q = blocks.sizes[i + 1]!;
        const U = blocks.upper[i]!;
        for (let r = 0; r < size; r++) {
          for (let s = 0; s < q; s++) {
            out[(at + r) * n + at + size + s] = U[r * q + s]!;
            out[(at + size + s) * n + at + r] = U[r * q + s]!;
          }
        }
      }
      at += size;
    });
    return { rows: n, cols: n, data: out };
  });
}

/**
 * JPC's `compute_linear_activity_solution`: the exact equilibrium activities z* = (A + εI)⁻¹ b of a deep linear
 * network for each sample, as `solveInference` returns them (z_1..z_L, z_L being the prediction
 * M_{L−1}z*_{L−1} = a_L W_{L−1} z*_{L−1}, γ included in a_L — not the clamped y). b's first block is a_0 W_0 x and
 * its last λ M_Hᵀ y. Every method returns the same activities; see `method` for how the system is solved; no
 * dense inverse is ever formed.
 */
export async function computeLinearActivitySolution(
  model: Model,
  x: BatchData,
  y: BatchData,
  options: LinearActivitySolutionOptions = {},
): Promise<Tensor[]> {
  const fn = 'computeLinearActivitySolution';
  checkLinearModel(fn, model);
  const opts = checkOptions(fn, options, [...LAMBDA_KEYS, 'activityDecay', 'epsilon', 'method']);
  const lambda = lambdaOf(fn, opts);
  const decay = nonNegative(fn, 'options.activityDecay', opts.activityDecay);
  const epsilon = nonNegative(fn, 'options.epsilon', opts.epsilon);
  const method = opts.method ?? 'auto';
  if (!['auto', 'output-space', 'block-cholesky'].includes(method))
    argError(fn, 'options.method', "'auto', 'output-space' or 'block-cholesky'", method);
  if (method === 'output-space' && (decay !== 0 || epsilon !== 0)) {
    throw new WpcArgumentError(
      `${fn}: method 'output-space' needs activityDecay = 0 and epsilon = 0 (got ${decay} and ${epsilon}); use 'block-cholesky' or 'auto'`,
    );
  }
  if (model.depth < 2) throw new WpcArgumentError(`${fn}: the model has no hidden layer (depth ${model.depth})`);
  const outputSpaceRoute = method !== 'block-cholesky' && decay === 0 && epsilon === 0;
  checkTheoryFits(fn, model, {
    B: batchSizeOf(fn, 'x', x, model.inputDim, model),
    chain: outputSpaceRoute,
    blocks: !outputSpaceRoute,
  });
  return withBatch(fn, model, x, y, async (ch, X, Y, B) => {
    if (method !== 'block-cholesky' && decay === 0 && epsilon === 0) {
      const { Z } = await outputSpaceSolution(ch, X, Y, B, lambda);
      ch.submit();
      return Z.slice(1);
    }
    return blockCholeskySolution(ch, X, Y, B, lambda, decay + epsilon);
  });
}

async function blockCholeskySolution(
  ch: Chains,
  X: Tensor,
  Y: Tensor,
  B: number,
  lambda: number,
  shift: number,
): Promise<Tensor[]> {
  const { model, H } = ch;
  const rt = ch.rt;
  // Right-hand sides on the GPU: a_0·X·W_0ᵀ (B × d_1) and λ·a_H·Y·W_H (B × d_H).
  const first = model.layers[0]!;
  const last = model.layers[H]!;
  const b1 = ch.temp([B, first.outDim]);
  const bH = ch.temp([B, last.inDim]);
  ch.gemm.record(ch.rec, {
    m: B,
    k: first.inDim,
    n: first.outDim,
    a: asMatrix(X),
    b: ch.weight(0),
    transB: true,
    c: asMatrix(b1),
    alpha: first.scale,
  });
  ch.gemm.record(ch.rec, {
    m: B,
    k: last.outDim,
    n: last.inDim,
    a: asMatrix(Y),
    b: ch.weight(H),
    c: asMatrix(bH),
    alpha: lambda * last.scale,
  });
  const blocks = await hessianBlocks(ch, lambda, shift); // submits the recorder
  const [rhs1, rhsH] = await rt.read([b1, bH].map(rangeOf));
  const factor = blockTridiagonalCholesky(blocks);
  const sizes = blocks.sizes;
  const n = sizes.reduce((s, d) => s + d, 0);
  const dH = sizes[H - 1]!;
  const hidden = sizes.map((d) => new Float32Array(B * d));
  const x = new Float64Array(n);
  for (let b = 0; b < B; b++) {
    x.fill(0);
    for (let k = 0; k < sizes[0]!; k++) x[k] = rhs1![b * sizes[0]! + k]!;
    for (let k = 0; k < dH; k++) x[n - dH + k] = x[n - dH + k]! + rhsH![b * dH + k]!;
    blockTridiagonalSolve(factor, x);
    let at = 0;
    sizes.forEach((d, i) => {
      hidden[i]!.set(x.subarray(at, at + d), b * d);
      at += d;
    });
  }
  const Z = hidden.map((h, i) => rt.tensor(h, [B, sizes[i]!]));
  // The dummy output activity: the prediction a_H·z*_H·W_Hᵀ.
  const out = rt.empty([B, model.outputDim]);
  const rec = new Recorder(rt, 'wpc.computeLinearActivitySolution');
  ch.gemm.record(rec, {
    m: B,
    k: last.inDim,
    n: last.outDim,
    a: asMatrix(Z[H - 1]!),
    b: ch.weight(H),
    transB: true,
    c: asMatrix(out),
    alpha: last.scale,
  });
  rec.submit();
  return [...Z, out];
}

/** Records ∂(F*)/∂W_l = −(a_l/B)·g_{l+1}ᵀ z*_l for every layer into `target(l)`. */
function recordEquilibGrads(
  ch: Chains,
  Z: readonly Tensor[],
  g: readonly Tensor[],
  B: number,
  target: (l: number) => GpuMatrix,
): void {
  ch.model.layers.forEach((layer, l) => {
    ch.gemm.record(ch.rec, {
      m: layer.outDim,
      k: B,
      n: layer.inDim,
      a: asMatrix(g[l + 1]!),
      transA: true,
      b: asMatrix(Z[l]!),
      c: target(l),
      alpha: -layer.scale / B,
    });
  });
}

export interface LinearEquilibGradsResult extends ParamGradResult {
  /** F* at the current weights. */
  energy: number;
}

/**
 * JPC's `compute_linear_equilib_energy_grads`: ∂(F*)/∂W_l for every layer (biases null). By the envelope
 * theorem this is the PC weight gradient at the exact equilibrium, −(a_l/B) Σ_b g_{l+1,b} z*_{l,b}ᵀ with
 * g_i = J_iᵀ S⁻¹ r (hidden) and g_L = S⁻¹ r: computed in closed form, no inference.
 */
export async function computeLinearEquilibEnergyGrads(
  model: Model,
  x: BatchData,
  y: BatchData,
  options: LinearTheoryOptions = {},
): Promise<LinearEquilibGradsResult> {
  const fn = 'computeLinearEquilibEnergyGrads';
  checkLinearModel(fn, model);
  const opts = checkOptions(fn, options, LAMBDA_KEYS);
  const lambda = lambdaOf(fn, opts);
  checkTheoryFits(fn, model, { B: batchSizeOf(fn, 'x', x, model.inputDim, model), chain: true });
  return withBatch(fn, model, x, y, async (ch, X, Y, B) => {
    const { Z, g, energy } = await outputSpaceSolution(ch, X, Y, B, lambda);
    ch.temps.push(...Z.slice(1));
    const weights = model.layers.map((l) => model.runtime.empty([l.outDim, l.inDim]));
    recordEquilibGrads(ch, Z, g, B, (l) => asMatrix(weights[l]!));
    ch.submit();
    return { weights, biases: model.layers.map(() => null), energy };
  });
}

export interface LinearEquilibUpdateOptions extends LinearTheoryOptions {
  /** Also return the gradients (copies). Default false. */
  returnGrads?: boolean;
}

export interface LinearEquilibUpdateResult {
  model: Model;
  optState: OptState;
  /** F* before the update. */
  energy: number;
  grads: ParamGradResult | null;
}

/**
 * JPC's `update_linear_equilib_energy_params`: one optimiser step on F* (gradients from
 * `computeLinearEquilibEnergyGrads`), in place on the model's weights and `optState`.
 */
export async function updateLinearEquilibEnergyParams(
  model: Model,
  optim: Optimizer,
  optState: OptState,
  x: BatchData,
  y: BatchData,
  options: LinearEquilibUpdateOptions = {},
): Promise<LinearEquilibUpdateResult> {
  const fn = 'updateLinearEquilibEnergyParams';
  checkLinearModel(fn, model);
  if (!(optim instanceof Optimizer)) argError(fn, 'optim', 'an Optimizer (sgd(...) or adam(...))', optim);
  checkOptState(fn, optState, optim, 'params', model.paramCount, model.runtime);
  const opts = checkOptions(fn, options, [...LAMBDA_KEYS, 'returnGrads']);
  const lambda = lambdaOf(fn, opts);
  const returnGrads = flag(fn, 'options.returnGrads', opts.returnGrads, false);
  checkTheoryFits(fn, model, { B: batchSizeOf(fn, 'x', x, model.inputDim, model), chain: true });
  return withBatch(fn, model, x, y, async (ch, X, Y, B) => {
    const kernel = await optState.kernel(false);
    const { Z, g, energy } = await outputSpaceSolution(ch, X, Y, B, lambda);
    ch.temps.push(...Z.slice(1));
    const grads = model.grads();
    recordEquilibGrads(ch, Z, g, B, (l) => ({
      buffer: grads,
      offset: model.layers[l]!.weightOffset,
      ld: model.layers[l]!.inDim,
    }));
    const copies = returnGrads
      ? model.layers.map((l) => {
          const t = model.runtime.empty([l.outDim, l.inDim]);
          ch.rec.copy(grads, l.weightOffset * 4, t.buffer, 0, t.byteLength);
          return t;
        })
      : null;
    optState.recordStep(
      ch.rec,
      kernel,
      { buffer: model.params, offset: 0 },
      { buffer: grads, offset: 0 },
      model.paramCount,
    );
    ch.submit();
    return {
      model,
      optState,
      energy,
      grads: copies ? { weights: copies, biases: model.layers.map(() => null) } : null,
    };
  });
}
