/**
 * Models: JPC's MLP, `[φ → Linear]` per layer, with its parameters resident on the GPU.
 *
 * Layer l (0-based) computes f_l(z) = W_l φ_l(z) + b_l with φ_0 = identity and φ_l = the model's activation for
 * l ≥ 1: the activation comes *before* the linear map, so activities are pre-activations, the input is never
 * activated and the output is linear. W_l is stored `[out, in]` row-major, as in JPC/Equinox.
 *
 * All parameters live in one GPU buffer (weights then bias of each layer), so an optimiser step over the whole
 * model is one dispatch and the grouped layer kernels read every layer through one binding.
 */
import { ACTIVATIONS, type Activation } from '../kernels/index.js';
import { WpcArgumentError, argError, checkKnownKeys, checkOneOf, checkPositiveInt, describe, firstNonFinite } from '../runtime/errors.js';
import { Runtime } from '../runtime/runtime.js';
import type { Tensor } from '../runtime/tensor.js';
import { Random } from '../util/random.js';
import type { Workspace } from './workspace.js';

export type { Activation };
export { ACTIVATIONS };

export interface LayerSpec {
  readonly inDim: number;
  readonly outDim: number;
  readonly useBias: boolean;
  /** Offsets (in f32 elements) of W_l and b_l in the parameter buffer; `biasOffset` is -1 without bias. */
  readonly weightOffset: number;
  readonly biasOffset: number;
  /** The layer's parameter scaling s_l (1 for JPC's standard parameterisation). */
  readonly scale: number;
}

export class Model {
  /** Activity widths [d_0 (input), d_1, …, d_L (output)]. */
  readonly dims: readonly number[];
  readonly layers: readonly LayerSpec[];
  /** Number of f32 parameters (weights and biases). */
  readonly paramCount: number;
  /** Views of W_l (`[out, in]`) and b_l in the parameter buffer. They share the model's memory. */
  readonly weights: readonly Tensor[];
  readonly biases: readonly (Tensor | null)[];
  private disposedFlag = false;
  private gradBuffer: GPUBuffer | undefined;
  /** @internal workspaces by batch size and purpose, built once and reused (see workspace.ts). */
  readonly workspaces = new Map<string, Promise<Workspace>>();

  /** @internal use `makeMlp` or `mlpFromWeights`. */
  constructor(
    readonly runtime: Runtime,
    readonly actFn: Activation,
    layers: LayerSpec[],
    readonly params: GPUBuffer,
  ) {
    this.layers = Object.freeze(layers);
    this.dims = Object.freeze([layers[0]!.inDim, ...layers.map((l) => l.outDim)]);
    const last = layers[layers.length - 1]!;
    this.paramCount = last.useBias ? last.biasOffset + last.outDim : last.weightOffset + last.outDim * last.inDim;
    this.weights = Object.freeze(layers.map((l) => runtime.view(params, l.weightOffset * 4, [l.outDim, l.inDim])));
    this.biases = Object.freeze(layers.map((l) => (l.useBias ? runtime.view(params, l.biasOffset * 4, [l.outDim]) : null)));
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
      weights: this.layers.map((l) => all!.slice(l.weightOffset, l.weightOffset + l.outDim * l.inDim)),
      biases: this.layers.map((l) => (l.useBias ? all!.slice(l.biasOffset, l.biasOffset + l.outDim) : null)),
    };
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
    for (const ws of this.workspaces.values()) void ws.then((w) => w.dispose(), () => undefined);
    this.workspaces.clear();
    this.params.destroy();
    this.gradBuffer?.destroy();
    this.runtime.untrack(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function layout(dims: readonly number[], useBias: boolean, scales: readonly number[]): LayerSpec[] {
  const layers: LayerSpec[] = [];
  let at = 0;
  for (let l = 0; l + 1 < dims.length; l++) {
    const inDim = dims[l]!;
    const outDim = dims[l + 1]!;
    const weightOffset = at;
    at += inDim * outDim;
    const biasOffset = useBias ? at : -1;
    if (useBias) at += outDim;
    layers.push({ inDim, outDim, useBias, weightOffset, biasOffset, scale: scales[l]! });
  }
  return layers;
}

function checkRuntime(fn: string, runtime: unknown): Runtime {
  if (!(runtime instanceof Runtime)) argError(fn, 'runtime', 'a Runtime (from init() or initFromDevice())', runtime);
  runtime.checkHealthy(fn);
  return runtime;
}

function upload(runtime: Runtime, fn: string, actFn: Activation, layers: LayerSpec[], data: Float32Array): Model {
  const buffer = runtime.createStorageBuffer(data.length * 4, 'wpc.model.params');
  runtime.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  runtime.checkHealthy(fn);
  const model = new Model(runtime, actFn, layers, buffer);
  runtime.track(model);
  return model;
}

export interface MakeMlpOptions {
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

const MAKE_MLP_KEYS = ['seed', 'inputDim', 'width', 'depth', 'outputDim', 'actFn', 'useBias'] as const;

/**
 * JPC's `make_mlp`: `depth` layers `inputDim → width → … → width → outputDim`, weights and biases drawn from
 * Equinox's default U(−1/√fan_in, 1/√fan_in). Each layer draws from its own stream forked from `seed` (weights
 * then bias), so a layer's values do not depend on the shapes of the others. The streams are WPC's own, not
 * JAX's threefry: to reproduce a JPC model exactly, load its weights with `mlpFromWeights`.
 */
export function makeMlp(runtime: Runtime, options: MakeMlpOptions): Model {
  const fn = 'makeMlp';
  checkRuntime(fn, runtime);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, MAKE_MLP_KEYS);
  if (!Number.isSafeInteger(options.seed)) argError(fn, 'options.seed', 'a safe integer', options.seed);
  const inputDim = checkPositiveInt(fn, 'options.inputDim', options.inputDim);
  const width = checkPositiveInt(fn, 'options.width', options.width);
  const depth = checkPositiveInt(fn, 'options.depth', options.depth);
  const outputDim = checkPositiveInt(fn, 'options.outputDim', options.outputDim);
  const actFn = checkOneOf(fn, 'options.actFn', options.actFn, ACTIVATIONS);
  const useBias = options.useBias ?? false;
  if (typeof useBias !== 'boolean') argError(fn, 'options.useBias', 'a boolean', useBias);
  const dims = [inputDim, ...Array<number>(depth - 1).fill(width), outputDim];
  const layers = layout(dims, useBias, Array<number>(depth).fill(1));
  const total = layers.reduce((s, l) => s + l.inDim * l.outDim + (l.useBias ? l.outDim : 0), 0);
  const data = new Float32Array(total);
  const root = new Random(options.seed);
  layers.forEach((l, i) => {
    const stream = root.fork(i);
    const lim = 1 / Math.sqrt(l.inDim);
    for (let j = 0; j < l.inDim * l.outDim; j++) data[l.weightOffset + j] = stream.uniform(-lim, lim);
    if (l.useBias) for (let j = 0; j < l.outDim; j++) data[l.biasOffset + j] = stream.uniform(-lim, lim);
  });
  return upload(runtime, fn, actFn, layers, data);
}

export interface MlpFromWeightsOptions {
  /** Activity widths [d_0, …, d_L]. */
  dims: readonly number[];
  /** W_l as `[d_{l+1}, d_l]` row-major arrays (JPC's `model[l][1].weight`). */
  weights: readonly ArrayLike<number>[];
  /** b_l (length d_{l+1}) for every layer, or omitted / null for a model without biases. */
  biases?: readonly ArrayLike<number>[] | null;
  actFn: Activation;
}

/** Builds a model from given parameters, e.g. exported from JPC or from a checkpoint. */
export function mlpFromWeights(runtime: Runtime, options: MlpFromWeightsOptions): Model {
  const fn = 'mlpFromWeights';
  checkRuntime(fn, runtime);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['dims', 'weights', 'biases', 'actFn']);
  const { dims, weights } = options;
  if (!Array.isArray(dims) || dims.length < 2 || dims.some((d) => !Number.isInteger(d) || d < 1)) {
    argError(fn, 'options.dims', 'an array of at least two positive integers', dims);
  }
  const actFn = checkOneOf(fn, 'options.actFn', options.actFn, ACTIVATIONS);
  const depth = dims.length - 1;
  if (!Array.isArray(weights) || weights.length !== depth) {
    argError(fn, 'options.weights', `an array of ${depth} weight matrices (one per layer)`, weights);
  }
  const biases = options.biases ?? null;
  if (biases !== null && (!Array.isArray(biases) || biases.length !== depth)) {
    argError(fn, 'options.biases', `null or an array of ${depth} bias vectors`, biases);
  }
  const layers = layout(dims, biases !== null, Array<number>(depth).fill(1));
  const total = layers.reduce((s, l) => s + l.inDim * l.outDim + (l.useBias ? l.outDim : 0), 0);
  const data = new Float32Array(total);
  layers.forEach((l, i) => {
    const w = weights[i] as ArrayLike<number> | undefined;
    if (!w || typeof w.length !== 'number') argError(fn, `options.weights[${i}]`, 'an array of numbers', w);
    if (w.length !== l.outDim * l.inDim) {
      throw new WpcArgumentError(`${fn}: options.weights[${i}] must have ${l.outDim}×${l.inDim} = ${l.outDim * l.inDim} elements ([out, in] row-major), got ${w.length}`);
    }
    const bad = firstNonFinite(w);
    if (bad >= 0) throw new WpcArgumentError(`${fn}: options.weights[${i}] must be finite, got ${String(w[bad])} at index ${bad}`);
    data.set(w, l.weightOffset);
    if (biases) {
      const b = biases[i] as ArrayLike<number> | undefined;
      if (!b || b.length !== l.outDim) argError(fn, `options.biases[${i}]`, `an array of ${l.outDim} numbers`, b);
      const badB = firstNonFinite(b);
      if (badB >= 0) throw new WpcArgumentError(`${fn}: options.biases[${i}] must be finite, got ${String(b[badB])} at index ${badB}`);
      data.set(b, l.biasOffset);
    }
  });
  if (total === 0) argError(fn, 'options.dims', 'dimensions giving at least one parameter', describe(dims));
  return upload(runtime, fn, actFn, layers, data);
}
