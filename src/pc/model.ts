/**
 * Models: a stack of layers with its parameters resident on the GPU. Every layer kind is reached through
 * pc/layers (see its kind.ts); the builders here make JPC's MLP, `[φ → Linear]` per layer.
 *
 * Layer l (0-based) computes f_l(z) = W_l φ_l(z) + b_l with φ_0 = identity and φ_l = the model's activation for
 * l ≥ 1: the activation comes *before* the linear map, so activities are pre-activations, the input is never
 * activated and the output is linear. W_l is stored `[out, in]` row-major, as in JPC/Equinox.
 *
 * All parameters live in one GPU buffer (each layer's tensors back to back), so an optimiser step over the whole
 * model is one dispatch and the grouped layer kernels read every layer through one binding.
 */
import { ACTIVATIONS, type Activation } from '../kernels/activations.js';
import {
  WpcArgumentError,
  argError,
  checkFinite,
  checkKnownKeys,
  checkOneOf,
  checkPositiveInt,
  describe,
  firstNonFinite,
} from '../runtime/errors.js';
import { BufferUsage } from '../runtime/flags.js';
import { checkCap, checkFits, storageLimit } from '../runtime/limits.js';
import { checkCallerBuffer } from '../runtime/buffers.js';
import { Runtime } from '../runtime/runtime.js';
import type { Tensor } from '../runtime/tensor.js';
import { Random } from '../util/random.js';
import {
  type LayerSpec,
  activityShape,
  biasTensor,
  denseLayers,
  initLayer,
  layerParamCount,
  paramTensors,
  weightMatrix,
} from './layers/index.js';
import type { ModelDefinition } from './layer-defs.js';
import { MAX_DEPTH, PARAM_TYPES, type ParamType, paramScalings } from './parameterisation.js';

export type { Activation };
export { ACTIVATIONS };
export type { LayerSpec };
export { MAX_DEPTH, PARAM_TYPES, type ParamType, makeSkipModel, paramScalings } from './parameterisation.js';

export class Model {
  /** Activity widths [d_0 (input), d_1, …, d_L (output)]. */
  readonly dims: readonly number[];
  /** Each activity's shape per example, [C, H, W] (NCHW, flattened in memory) or [N]; `dims` are their sizes. */
  readonly shapes: readonly (readonly number[])[];
  readonly layers: readonly LayerSpec[];
  /** Number of f32 parameters (weights and biases). */
  readonly paramCount: number;
  /**
   * Views of W_l (`[out, in]`; a convolution's `[C_out, C_in, kh, kw]`; 0×0 for a pooling) and b_l in the
   * parameter buffer. They share the model's memory.
   */
  readonly weights: readonly Tensor[];
  readonly biases: readonly (Tensor | null)[];
  private disposedFlag = false;
  private gradBuffer: GPUBuffer | undefined;
  /** Work to do when the model is disposed (e.g. freeing the workspaces built for it). */
  private readonly disposers: (() => void)[] = [];
  /** @internal a number unique to this model, to take several models' locks in one order. */
  readonly serial = nextSerial++;

  /** @internal use `makeMlp` or `mlpFromWeights`. */
  constructor(
    readonly runtime: Runtime,
    readonly actFn: Activation,
    layers: LayerSpec[],
    readonly params: GPUBuffer,
    /** The parameterisation the scalings s_l come from. */
    readonly paramType: ParamType = 'sp',
    /** μPC's output scaling divisor γ (s_L ← s_L/γ), or null. */
    readonly gamma: number | null = null,
    /** The list of layers it was made from (`makeModel`), or null for an MLP of `makeMlp` and its siblings. */
    readonly definition: ModelDefinition | null = null,
  ) {
    this.layers = Object.freeze(layers);
    this.dims = Object.freeze([layers[0]!.inDim, ...layers.map((l) => l.outDim)]);
    this.shapes = Object.freeze([
      Object.freeze([...activityShape(layers[0]!, 'in')]),
      ...layers.map((l) => Object.freeze([...activityShape(l, 'out')])),
    ]);
    this.paramCount = layers.reduce((n, l) => n + layerParamCount(l), 0);
    this.weights = Object.freeze(
      layers.map((l) => {
        const w = weightMatrix(l);
        return runtime.view(params, w.offset * 4, weightShape(l) ?? [w.rows, w.cols]);
      }),
    );
    this.biases = Object.freeze(
      layers.map((l) => {
        const b = biasTensor(l);
        return b ? runtime.view(params, b.offset * 4, b.shape) : null;
      }),
    );
  }

  /** Which layers have identity residuals (JPC's skip model), one flag per layer. */
  get skips(): boolean[] {
    return this.layers.map((l) => l.skip);
  }

  /** Whether any layer has an identity residual. */
  get hasSkips(): boolean {
    return this.layers.some((l) => l.skip);
  }

  /** Number of layers L (weight matrices). */
  get depth(): number {
    return this.layers.length;
  }

  get inputDim(): number {
    return this.dims[0]!;
  }

  get outputDim(): number {
    return this.dims[this.dims.length - 1]!;
  }

  get disposed(): boolean {
    return this.disposedFlag;
  }

  /** @internal the buffer parameter gradients are written to (same layout as `params`). */
  grads(): GPUBuffer {
    this.checkAlive('grads');
    this.gradBuffer ??= this.runtime.createStorageBuffer(this.paramCount * 4, 'wpc.model.grads');
    return this.gradBuffer;
  }

  /** Reads every weight and bias back (one readback), as JPC-layout arrays. */
  async toArrays(): Promise<{ weights: Float32Array[]; biases: (Float32Array | null)[] }> {
    this.checkAlive('toArrays');
    const [all] = await this.runtime.read([{ buffer: this.params, byteOffset: 0, byteLength: this.paramCount * 4 }]);
    return {
      weights: this.layers.map((l) => {
        const w = weightMatrix(l);
        return all!.slice(w.offset, w.offset + w.rows * w.cols);
      }),
      biases: this.layers.map((l) => {
        const b = biasTensor(l);
        return b ? all!.slice(b.offset, b.offset + b.shape[0]!) : null;
      }),
    };
  }

  /** @internal runs `dispose` when the model is disposed. */
  onDispose(dispose: () => void): void {
    this.disposers.push(dispose);
  }

  /** @internal throws if the model was disposed or its device lost. */
  checkAlive(fn: string): void {
    if (this.disposedFlag) throw new WpcArgumentError(`${fn}: the model has been disposed`);
    this.runtime.checkHealthy(fn);
  }

  /** Frees the parameters and every workspace built for this model. Idempotent. */
  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    for (const dispose of this.disposers.splice(0)) dispose();
    this.params.destroy();
    this.gradBuffer?.destroy();
    this.runtime.untrack(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

let nextSerial = 1;

/** The weight tensor's own shape (a convolution's 4-D kernel), if the layer has weights. */
function weightShape(layer: LayerSpec): number[] | undefined {
  const w = paramTensors(layer).find((t) => t.role === 'weight');
  return w ? [...w.shape] : undefined;
}

/** Parameters (weights and biases) of a model with activity widths `dims`: Σ_l d_l·d_{l+1} (+ d_{l+1}). */
export function mlpParamCount(dims: readonly number[], useBias: boolean): number {
  let total = 0;
  for (let l = 0; l + 1 < dims.length; l++) total += dims[l]! * dims[l + 1]! + (useBias ? dims[l + 1]! : 0);
  return total;
}

/** `dims` for messages: [784, 300 ×3, 10]. */
export function formatDims(dims: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < dims.length; ) {
    let j = i;
    while (j + 1 < dims.length && dims[j + 1] === dims[i]) j++;
    parts.push(j > i ? `${dims[i]} ×${j - i + 1}` : `${dims[i]}`);
    i = j + 1;
  }
  return `[${parts.join(', ')}]`;
}

/**
 * Refuses a model whose parameters (one storage buffer, and its gradients another of the same size) the device
 * cannot hold, before anything is allocated. `subject` names the argument and its value
 * ("makeMlp: options.width 10000").
 */
export function checkParamsFit(
  subject: string,
  dims: readonly number[],
  useBias: boolean,
  limits: GPUSupportedLimits,
): number {
  const total = mlpParamCount(dims, useBias);
  checkFits(
    subject,
    `the parameters of a model ${formatDims(dims)} (${total} floats)`,
    total * 4,
    storageLimit(limits),
    'use a smaller network',
  );
  return total;
}

export function checkRuntime(fn: string, runtime: unknown): Runtime {
  if (!(runtime instanceof Runtime)) argError(fn, 'runtime', 'a Runtime (from init() or initFromDevice())', runtime);
  runtime.checkHealthy(fn);
  return runtime;
}

export function uploadModel(
  runtime: Runtime,
  fn: string,
  actFn: Activation,
  layers: LayerSpec[],
  data: Float32Array,
  param: Parameterisation,
  definition: ModelDefinition | null = null,
): Model {
  const buffer = runtime.createStorageBuffer(data.length * 4, 'wpc.model.params');
  runtime.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  runtime.checkHealthy(fn);
  const model = new Model(runtime, actFn, layers, buffer, param.paramType, param.gamma, definition);
  runtime.track(model);
  return model;
}

/** How a model's layers are scaled and connected: shared by `makeMlp` and `mlpFromWeights`. */
export interface ParameterisationOptions {
  /** `'sp'` (default), `'mupc'` or `'ntp'`: the scalings s_l (see `paramScalings`); `'mupc'` also draws W ~ N(0, 1). */
  paramType?: ParamType;
  /** One flag per layer (e.g. `makeSkipModel(depth)`): identity residuals, on hidden-to-hidden layers only. */
  skipModel?: readonly boolean[] | null;
  /** μPC's γ: the output scaling s_L is divided by it. Default none. */
  gamma?: number | null;
}

export interface Parameterisation {
  paramType: ParamType;
  skips: boolean[];
  gamma: number | null;
}

const PARAM_KEYS = ['paramType', 'skipModel', 'gamma'] as const;

/** Validates the parameterisation options against the activity widths `dims`. */
function checkParameterisation(
  fn: string,
  options: ParameterisationOptions,
  dims: readonly number[],
): Parameterisation {
  const paramType = checkOneOf(fn, 'options.paramType', options.paramType ?? 'sp', PARAM_TYPES);
  const L = dims.length - 1;
  const given = options.skipModel ?? null;
  let skips = Array<boolean>(L).fill(false);
  if (given !== null) {
    if (!Array.isArray(given) || given.length !== L || given.some((v) => typeof v !== 'boolean')) {
      argError(
        fn,
        'options.skipModel',
        `null or an array of ${L} booleans (one per layer, e.g. makeSkipModel(${L}))`,
        given,
      );
    }
    given.forEach((skip, l) => {
      if (!skip) return;
      if (l === 0 || l === L - 1) {
        throw new WpcArgumentError(
          `${fn}: options.skipModel[${l}] must be false: identity residuals are only defined on hidden-to-hidden layers (1..${L - 2}); JPC's energy ignores a skip on the input or output layer`,
        );
      }
      if (dims[l] !== dims[l + 1]) {
        throw new WpcArgumentError(
          `${fn}: options.skipModel[${l}] needs layer ${l} to map a width to itself, got ${dims[l]} → ${dims[l + 1]}`,
        );
      }
    });
    skips = [...given];
  }
  const gamma = options.gamma ?? null;
  if (gamma !== null) checkFinite(fn, 'options.gamma', gamma, { min: 0, open: true });
  return { paramType, skips, gamma };
}

export interface MakeMlpOptions extends ParameterisationOptions {
  /** Seed of the weight initialisation; equal seeds give equal weights. */
  seed: number;
  inputDim: number;
  /** Width of every hidden layer. */
  width: number;
  /** Number of weight layers L (= hidden layers + 1), at least 1. */
  depth: number;
  outputDim: number;
  /** Activation applied to the input of every layer but the first; one of JPC's eight. */
  actFn: Activation;
  /** Default `false`, as in JPC. */
  useBias?: boolean;
}

const MAKE_MLP_KEYS = ['seed', 'inputDim', 'width', 'depth', 'outputDim', 'actFn', 'useBias', ...PARAM_KEYS] as const;

/**
 * JPC's `make_mlp`: `depth` layers `inputDim → width → … → width → outputDim`, weights and biases drawn from
 * Equinox's default U(−1/√fan_in, 1/√fan_in), or for `paramType: 'mupc'` weights from N(0, 1) (biases stay
 * uniform). Each layer draws from its own stream forked from `seed` (weights then bias), so a layer's values do
 * not depend on the shapes of the others. The streams are WPC's own, not JAX's threefry: to reproduce a JPC
 * model exactly, load its weights with `mlpFromWeights`.
 *
 * Unlike JPC, where `param_type` and `skip_model` are passed to every call, the parameterisation belongs to the
 * model here: its scalings s_l (`paramScalings`) and skips are fixed when it is made and used by every function.
 */
export function makeMlp(runtime: Runtime, options: MakeMlpOptions): Model {
  const fn = 'makeMlp';
  checkRuntime(fn, runtime);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, MAKE_MLP_KEYS);
  if (!Number.isSafeInteger(options.seed)) argError(fn, 'options.seed', 'a safe integer', options.seed);
  const inputDim = checkPositiveInt(fn, 'options.inputDim', options.inputDim);
  const width = checkPositiveInt(fn, 'options.width', options.width);
  const depth = checkPositiveInt(fn, 'options.depth', options.depth, MAX_DEPTH);
  const outputDim = checkPositiveInt(fn, 'options.outputDim', options.outputDim);
  const actFn = checkOneOf(fn, 'options.actFn', options.actFn, ACTIVATIONS);
  const useBias = options.useBias ?? false;
  if (typeof useBias !== 'boolean') argError(fn, 'options.useBias', 'a boolean', useBias);
  const dims = [inputDim, ...Array<number>(depth - 1).fill(width), outputDim];
  const param = checkParameterisation(fn, options, dims);
  const sizes = { inputDim, width, outputDim };
  const largest = (Object.keys(sizes) as (keyof typeof sizes)[]).reduce((a, b) => (sizes[b] > sizes[a] ? b : a));
  const total = checkParamsFit(`${fn}: options.${largest} ${sizes[largest]}`, dims, useBias, runtime.limits);
  const layers = denseLayers(
    dims,
    useBias,
    paramScalings(dims, param.paramType, { skips: param.skips.some(Boolean), gamma: param.gamma }),
    param.skips,
  );
  const data = new Float32Array(total);
  const root = new Random(options.seed);
  layers.forEach((l, i) => initLayer(l, data, root.fork(i), param.paramType === 'mupc' ? 'mupc' : 'default'));
  return uploadModel(runtime, fn, actFn, layers, data, param);
}

export interface MlpFromWeightsOptions extends ParameterisationOptions {
  /** Activity widths [d_0, …, d_L]. */
  dims: readonly number[];
  /** W_l as `[d_{l+1}, d_l]` row-major arrays (JPC's `model[l][1].weight`). */
  weights: readonly ArrayLike<number>[];
  /** b_l (length d_{l+1}) for every layer, or omitted / null for a model without biases. */
  biases?: readonly ArrayLike<number>[] | null;
  actFn: Activation;
}

/** `options.dims` of a model given layer by layer: at least two positive safe integers, at most MAX_DEPTH layers. */
function checkDims(fn: string, dims: unknown): asserts dims is number[] {
  if (!Array.isArray(dims) || dims.length < 2 || dims.some((d) => !Number.isSafeInteger(d) || d < 1)) {
    argError(fn, 'options.dims', 'an array of at least two positive integers', dims);
  }
  checkCap(fn, 'options.dims.length', dims.length, MAX_DEPTH + 1, `at most ${MAX_DEPTH} layers`);
}

/** Builds a model from given parameters, e.g. exported from JPC or from a checkpoint. */
export function mlpFromWeights(runtime: Runtime, options: MlpFromWeightsOptions): Model {
  const fn = 'mlpFromWeights';
  checkRuntime(fn, runtime);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['dims', 'weights', 'biases', 'actFn', ...PARAM_KEYS]);
  const { dims, weights } = options;
  checkDims(fn, dims);
  const actFn = checkOneOf(fn, 'options.actFn', options.actFn, ACTIVATIONS);
  const depth = dims.length - 1;
  if (!Array.isArray(weights) || weights.length !== depth) {
    argError(fn, 'options.weights', `an array of ${depth} weight matrices (one per layer)`, weights);
  }
  const biases = options.biases ?? null;
  if (biases !== null && (!Array.isArray(biases) || biases.length !== depth)) {
    argError(fn, 'options.biases', `null or an array of ${depth} bias vectors`, biases);
  }
  const param = checkParameterisation(fn, options, dims);
  const total = checkParamsFit(`${fn}: options.dims ${formatDims(dims)}`, dims, biases !== null, runtime.limits);
  const layers = denseLayers(
    dims,
    biases !== null,
    paramScalings(dims, param.paramType, { skips: param.skips.some(Boolean), gamma: param.gamma }),
    param.skips,
  );
  const data = new Float32Array(total);
  layers.forEach((l, i) => {
    const w = weights[i] as ArrayLike<number> | undefined;
    if (!w || typeof w.length !== 'number') argError(fn, `options.weights[${i}]`, 'an array of numbers', w);
    if (w.length !== l.outDim * l.inDim) {
      throw new WpcArgumentError(
        `${fn}: options.weights[${i}] must have ${l.outDim}×${l.inDim} = ${l.outDim * l.inDim} elements ([out, in] row-major), got ${w.length}`,
      );
    }
    const bad = firstNonFinite(w);
    if (bad >= 0)
      throw new WpcArgumentError(`${fn}: options.weights[${i}] must be finite, got ${String(w[bad])} at index ${bad}`);
    data.set(w, l.weightOffset);
    if (biases) {
      const b = biases[i] as ArrayLike<number> | undefined;
      if (!b || b.length !== l.outDim) argError(fn, `options.biases[${i}]`, `an array of ${l.outDim} numbers`, b);
      const badB = firstNonFinite(b);
      if (badB >= 0)
        throw new WpcArgumentError(
          `${fn}: options.biases[${i}] must be finite, got ${String(b[badB])} at index ${badB}`,
        );
      data.set(b, l.biasOffset);
    }
  });
  if (total === 0) argError(fn, 'options.dims', 'dimensions giving at least one parameter', describe(dims));
  return uploadModel(runtime, fn, actFn, layers, data, param);
}

export interface MlpFromBufferOptions extends ParameterisationOptions {
  /** Activity widths [d_0, …, d_L]. */
  dims: readonly number[];
  /** A buffer on the runtime's device holding the parameters in `Model.params`' layout (see `mlpFromBuffer`). */
  buffer: GPUBuffer;
  /** Where the parameters start in `buffer`, in bytes (a multiple of 4). Default 0. */
  byteOffset?: number;
  /** Whether the layout has a bias after every weight matrix. Default false. */
  useBias?: boolean;
  actFn: Activation;
}

/**
 * Builds a model from parameters already on the GPU, e.g. written by another WebGPU program: a copy on the GPU
 * (nothing goes through the CPU), so the caller's buffer stays the caller's. The layout is `Model.params`':
 * W_0 ([d_1, d_0] row-major), then b_0 when `useBias`, then W_1, b_1, … The buffer needs COPY_SRC usage.
 */
export function mlpFromBuffer(runtime: Runtime, options: MlpFromBufferOptions): Model {
  const fn = 'mlpFromBuffer';
  checkRuntime(fn, runtime);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['dims', 'buffer', 'byteOffset', 'useBias', 'actFn', ...PARAM_KEYS]);
  const { dims, buffer } = options;
  checkDims(fn, dims);
  const actFn = checkOneOf(fn, 'options.actFn', options.actFn, ACTIVATIONS);
  const useBias = options.useBias ?? false;
  if (typeof useBias !== 'boolean') argError(fn, 'options.useBias', 'a boolean', useBias);
  const byteOffset = options.byteOffset ?? 0;
  if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % 4 !== 0)
    argError(fn, 'options.byteOffset', 'a non-negative multiple of 4', byteOffset);
  const param = checkParameterisation(fn, options, dims);
  const total = checkParamsFit(`${fn}: options.dims ${formatDims(dims)}`, dims, useBias, runtime.limits);
  const layers = denseLayers(
    dims,
    useBias,
    paramScalings(dims, param.paramType, { skips: param.skips.some(Boolean), gamma: param.gamma }),
    param.skips,
  );
  checkCallerBuffer(fn, 'options.buffer', buffer, byteOffset, total * 4, BufferUsage.COPY_SRC);
  const own = runtime.createStorageBuffer(total * 4, 'wpc.model.params');
  const encoder = runtime.device.createCommandEncoder({ label: `wpc.${fn}` });
  encoder.copyBufferToBuffer(buffer, byteOffset, own, 0, total * 4);
  runtime.submit([encoder.finish()]);
  runtime.checkHealthy(fn);
  const model = new Model(runtime, actFn, layers, own, param.paramType, param.gamma);
  runtime.track(model);
  return model;
}
