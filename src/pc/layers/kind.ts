/**
 * The contract between a layer kind and the engine.
 *
 * A PC network is a stack of layers; layer l predicts the activity z_l from its input (φ(z_{l−1}), or the raw
 * input of a first layer): μ_l = s_l·f_l(input) [+ z_{l−1} for an identity residual]. The engine (workspaces,
 * solvers, optimisers, the divergence guard, recording, the variants) never looks inside f_l: it decides *where*
 * operands live (element offsets in a workspace or parameter buffer) and asks the layer's kind *what work*
 * computes them. A kind supplies, for one layer:
 *
 *   forward     μ_l written to its activity (the feedforward pass; ePC adds ε_l)
 *   error       e_l = target − μ_l and the partial sums of Σe² (the energy's layer term)
 *   carry       the term it adds to ∂F/∂z_{l−1}: s_l·w_l·J_fᵀ e_l (the transposed product), fused by the
 *               activity-gradient kernel with φ'(z_{l−1}) and the activity update
 *   paramGrad   ∂F/∂θ_l = −s_l·w_l/B · ∂⟨e_l, f_l⟩/∂θ_l, into the gradient buffer at the parameters' offsets
 *   tensors     where its parameters live, and which of them are weights (for norms and regularisers)
 *   init        its initial parameters, from its own random stream
 *
 * The work items are jobs of the grouped layer kernels (kernels/layer-matmul.wgsl: one record per job, so a whole
 * network's errors, activity gradients or parameter gradients are one dispatch whatever its depth). Convolution-
 * shaped kinds (conv.ts, pool.ts) give jobs with a geometry, one per example (kernels/conv-gather.wgsl), which the
 * same kernels run when compiled with CONV; nothing in the solvers or the variants changes.
 *
 * Adding a kind: a module in this folder implementing `LayerKind` for its spec type (with a `kind` tag), the spec
 * added to `LayerSpec` and the kind to `KINDS` in index.ts. DEVELOPERS.md, "Adding a layer kind", has the steps.
 */
import type { FusedLayer as FusedLayerEntry, Job } from '../../kernels/structs.js';
import type { Random } from '../../util/random.js';
import type { CarryTerm, Planes } from '../layer-jobs.js';

/** Where a layer's feedforward pass reads and writes (element offsets). */
export interface ForwardIo {
  /** Rows (the batch). */
  rows: number;
  /** The input operand: φ(z_{l−1}), or the raw input of a first layer (x, a free z_0). */
  input: number;
  /** Where μ_l goes. */
  output: number;
  /** Where φ(μ_l) goes (hidden layers). */
  phi?: number;
  /** Where the prediction alone goes (the first layer's, fixed while the input is clamped). */
  prediction?: number;
  /** The raw z_{l−1} of an identity residual, added to the prediction. */
  residualFrom?: number;
  /** ε added to the prediction (error-reparameterised PC). */
  addError?: number;
}

/** Where a layer's prediction error reads and writes. */
export interface ErrorIo {
  rows: number;
  input: number;
  /** A first layer whose prediction is fixed (clamped input) and precomputed here: no product. */
  fixedPrediction?: number;
  /** What the prediction is compared with: z_l, or the target y of an output layer. */
  target: number;
  error: number;
  /** First of the tiles' partial-sum quads (Σe² of each tile). */
  part: number;
  /** The network's output layer. */
  output?: boolean;
  /** Leave the logits (a cross-entropy output kind turns them into the error). */
  logits?: boolean;
  residualFrom?: number;
  /** The layer's scratch at this evaluation point (kinds with `scratchPerExample`). */
  scratch?: number;
}

/** The error a layer carries down to its input, and the layer's energy weight w (λ for an output layer, else 1). */
export interface CarryIo {
  error: number;
  weight: number;
  /** The layer's scratch, as its errors pass left it. */
  scratch?: number;
}

/** Where a layer's parameter gradient reads: its error and its input; `coef` = −s·w·factor/B. */
export interface ParamGradIo {
  rows: number;
  error: number;
  input: number;
  coef: number;
}

/** One parameter tensor of a layer: its offset (floats) in the parameter buffer and its shape. */
export interface ParamTensor {
  /** Weights take weight decay and the spectral penalty (on their [rows, cols] matrix); biases do not. */
  role: 'weight' | 'bias';
  offset: number;
  shape: readonly number[];
}

/**
 * A layer as the fused whole-solve kernel (fused-solve.wgsl, small dense networks) reads it: struct LayerEntry
 * without its place in the activities. Kinds that cannot run there leave `fused` out, which turns the fused path
 * off for their models.
 */
export type FusedLayer = Omit<FusedLayerEntry, 'layOff'>;

/** How a kind's initial parameters are drawn: Equinox's default, or μPC's N(0, 1) weights. */
export type InitScheme = 'default' | 'mupc';

/** What every layer spec has, whatever its kind. */
export interface LayerBase<Tag extends string> {
  /** The layer's kind. */
  readonly kind: Tag;
  /** Activity elements per example it reads (its input) and writes (its output). */
  readonly inDim: number;
  readonly outDim: number;
  /** The layer's parameter scaling s_l (1 for JPC's standard parameterisation; see `paramScalings`). */
  readonly scale: number;
  /** An identity residual: the layer predicts s_l·f_l(z_{l−1}) + z_{l−1} (JPC's `make_skip_model`). */
  readonly skip: boolean;
  /**
   * The layer reads z_{l−1} itself, without the model's activation (a per-layer `act: 'linear'`). The first layer
   * always reads the raw input, whatever this says.
   */
  readonly linearInput?: boolean;
}

/** A layer kind: see the file comment. `S` is its spec type. */
export interface LayerKind<S extends LayerBase<string>> {
  readonly name: S['kind'];
  forward(layer: S, io: ForwardIo): Job[];
  error(layer: S, io: ErrorIo): Job[];
  carry(layer: S, io: CarryIo): CarryTerm;
  paramGrad(layer: S, io: ParamGradIo): Job[];
  /** How its forward and error jobs split per example (convolution-shaped kinds); undefined: one batch job. */
  outputPlanes?(layer: S): Planes;
  /** How the activity-gradient jobs of its input split per example, when its carry is convolution-shaped. */
  inputPlanes?(layer: S): Planes;
  /** Floats per example of workspace scratch its errors pass writes and its carry reads (a max pooling's argmax). */
  scratchPerExample?(layer: S): number;
  /** Floats of parameters. */
  paramCount(layer: S): number;
  tensors(layer: S): readonly ParamTensor[];
  /** Writes the layer's initial parameters into `data` at its offsets. */
  init(layer: S, data: Float32Array, stream: Random, scheme: InitScheme): void;
  /** The layer as the fused whole-solve kernel reads it, for kinds that kernel runs. */
  fused?(layer: S): FusedLayer;
}
