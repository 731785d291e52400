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
 *
 * This file holds the public functions; what they accept is ./linear-theory/options.ts, the GPU side of a call
 * ./linear-theory/chains.ts, and the closed forms ./linear-theory/equilibrium.ts.
 */
import { mlpLayers } from './layers/index.js';
import { WpcArgumentError, argError } from '../runtime/errors.js';
import type { Tensor } from '../runtime/tensor.js';
import { batchSizeOf, checkOptions, type BatchData, type ParamGradResult } from './batch.js';
import { asMatrix } from './linalg.js';
import type { Model } from './model.js';
import { Optimizer, checkOptState, type OptState } from './optim.js';
import { rangeOf, withBatch, withChains } from './linear-theory/chains.js';
import {
  blockCholeskySolution,
  hessianBlocks,
  outputSpace,
  outputSpaceSolution,
  recordEquilibGrads,
  rescalingFrom,
  type Matrix64,
} from './linear-theory/equilibrium.js';
import {
  LAMBDA_KEYS,
  checkLinearModel,
  checkTheoryFits,
  flag,
  lambdaOf,
  nonNegative,
  type LinearTheoryOptions,
} from './linear-theory/options.js';

export type { LinearTheoryOptions, Matrix64 };

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
      offset: mlpLayers(fn, model.layers)[l]!.weightOffset,
      ld: model.layers[l]!.inDim,
    }));
    const copies = returnGrads
      ? mlpLayers(fn, model.layers).map((l) => {
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
