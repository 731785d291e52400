/**
 * The networks of the TensorFlow.js benchmarks (bench/tfjs/): a list of layers in the shape of WPC's layer list
 * (`conv`, `avgPool`, `maxPool`, `flatten`, `dense`), their shapes, their parameters and their operations in
 * TF.js ops. Activities are NHWC, TF.js's own layout (WPC's are NCHW: the arithmetic is the same, and flatten's
 * order only permutes a dense layer's input columns, whose initial weights are independent draws).
 *
 * Activations as in JPC: each layer applies an activation to its INPUT, μ_l = op_l(act(z_{l−1})); the model's
 * activation unless the layer names its own (`act: 'linear'` reads the input as it is); the first layer always
 * sees the raw input; the last layer's output is linear. Pools are layers with activities of their own. `flatten`
 * is a reshape folded into the next dense layer, not a layer.
 *
 * Parameters start as Equinox's defaults (weights and biases U(±1/√fan_in), fan_in = C_in·k² or the dense
 * input size), drawn from WPC's seeded streams (`Random(seed).fork(l)`, one per layer).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Tensor, Tensor2D, Tensor4D } from '@tensorflow/tfjs-core';
import { Random } from '../../src/util/random.js';
import type { Tf } from './backend.js';

export const ACTIVATIONS = ['linear', 'tanh', 'hard_tanh', 'relu', 'leaky_relu'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

/** JAX's default negative slope of leaky_relu. */
const LEAKY_SLOPE = 0.01;

interface InputAct {
  /** The activation applied to this layer's input (default: the model's). */
  act?: Activation;
}

/** One entry of an architecture list (the builders below make them; JSON files hold the same objects). */
export type LayerDef =
  | ({ kind: 'conv'; channels: number; kernel: number; stride?: number; padding?: number; bias?: boolean } & InputAct)
  | ({ kind: 'avgPool' | 'maxPool'; size: number; stride?: number } & InputAct)
  | { kind: 'flatten' }
  | ({ kind: 'dense'; units: number; bias?: boolean } & InputAct);

export const conv = (
  channels: number,
  kernel: number,
  o: { stride?: number; padding?: number; bias?: boolean } & InputAct = {},
): LayerDef => ({ kind: 'conv', channels, kernel, ...o });
export const avgPool = (size: number, o: { stride?: number } & InputAct = {}): LayerDef => ({
  kind: 'avgPool',
  size,
  ...o,
});
export const maxPool = (size: number, o: { stride?: number } & InputAct = {}): LayerDef => ({
  kind: 'maxPool',
  size,
  ...o,
});
export const flatten = (): LayerDef => ({ kind: 'flatten' });
export const dense = (units: number, o: { bias?: boolean } & InputAct = {}): LayerDef => ({
  kind: 'dense',
  units,
  ...o,
});

/**
 * The benchmarks' default network: a small CNN that this 2-core machine trains by backprop for an epoch of
 * MNIST in minutes (bench/tfjs/README.md has the figures).
 */
export const SMALL_CNN: readonly LayerDef[] = [
  conv(16, 5, { padding: 2 }),
  avgPool(2, { act: 'linear' }),
  conv(32, 5, { padding: 2 }),
  avgPool(2, { act: 'linear' }),
  flatten(),
  dense(10),
];

/** A layer with its shapes resolved (per example: [H, W, C] for images, [D] for vectors). */
export interface Layer {
  readonly kind: 'conv' | 'avgPool' | 'maxPool' | 'dense';
  /** The activation applied to its input ('linear' for the first layer). */
  readonly act: Activation;
  readonly inShape: readonly number[];
  readonly outShape: readonly number[];
  /** conv: [k, k, C_in, C_out] (TF.js's filter layout); dense: [in, out]; pools: none. */
  readonly weightShape: readonly number[] | null;
  readonly bias: boolean;
  /** Kernel (conv) or window (pools) side; stride; zero padding on each side (pools: none). */
  readonly size: number;
  readonly stride: number;
  readonly padding: number;
  /** Floating-point operations of its forward product per example (2 per multiply-add; pools and biases: 0). */
  readonly flops: number;
}

/** A network: its input shape per example and its layers. */
export interface Network {
  readonly inShape: readonly number[];
  readonly layers: readonly Layer[];
}

const fail = (message: string): never => {
  throw new Error(`architecture: ${message}`);
};

function positiveInt(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) fail(`${what} must be a positive integer`);
  return value as number;
}

function checkAct(value: unknown, what: string): Activation {
  if (!ACTIVATIONS.includes(value as Activation)) fail(`${what} must be one of ${ACTIVATIONS.join(', ')}`);
  return value as Activation;
}

/** Checks an architecture list and resolves its shapes from `inShape` ([H, W, C]) and the model's activation. */
export function resolveNetwork(defs: readonly LayerDef[], inShape: readonly number[], actFn: Activation): Network {
  checkAct(actFn, 'the model activation');
  if (inShape.length !== 3 || !inShape.every((n) => Number.isInteger(n) && n > 0)) {
    fail(`the input shape must be three positive integers H, W, C, got ${inShape}`);
  }
  if (!Array.isArray(defs) || defs.length === 0) fail('expected a non-empty list of layers');
  const layers: Layer[] = [];
  let shape = [...inShape];
  let flat = false;
  defs.forEach((d, i) => {
    const at = `layer ${i} (${JSON.stringify(d)})`;
    if (typeof d !== 'object' || d === null) fail(`${at}: expected an object`);
    if (d.kind === 'flatten') {
      if (shape.length !== 3) fail(`${at}: flatten needs an image input`);
      flat = true;
      return;
    }
    const act = layers.length === 0 ? 'linear' : d.act === undefined ? actFn : checkAct(d.act, `${at}: act`);
    if (d.kind === 'dense') {
      const units = positiveInt(d.units, `${at}: units`);
      if (shape.length === 3 && !flat) fail(`${at}: put flatten() before a dense layer that follows images`);
      const inDim = shape.reduce((a, b) => a * b, 1);
      layers.push({
        kind: 'dense',
        act,
        inShape: shape,
        outShape: [units],
        weightShape: [inDim, units],
        bias: d.bias ?? false,
        size: 1,
        stride: 1,
        padding: 0,
        flops: 2 * inDim * units,
      });
      shape = [units];
      flat = false;
      return;
    }
    if (d.kind !== 'conv' && d.kind !== 'avgPool' && d.kind !== 'maxPool') fail(`${at}: unknown kind`);
    if (shape.length !== 3 || flat) fail(`${at}: needs an image input`);
    const [h, w, c] = shape as [number, number, number];
    const size = positiveInt(d.kind === 'conv' ? d.kernel : d.size, `${at}: ${d.kind === 'conv' ? 'kernel' : 'size'}`);
    const stride = positiveInt(d.stride ?? (d.kind === 'conv' ? 1 : size), `${at}: stride`);
    const padding = d.kind === 'conv' ? (d.padding ?? 0) : 0;
    if (!Number.isInteger(padding) || padding < 0) fail(`${at}: padding must be a non-negative integer`);
    const side = (n: number) => Math.floor((n + 2 * padding - size) / stride) + 1;
    if (side(h) < 1 || side(w) < 1) fail(`${at}: the window is larger than its ${h}×${w} input`);
    const channels = d.kind === 'conv' ? positiveInt(d.channels, `${at}: channels`) : c;
    const out = [side(h), side(w), channels];
    layers.push({
      kind: d.kind,
      act,
      inShape: shape,
      outShape: out,
      weightShape: d.kind === 'conv' ? [size, size, c, channels] : null,
      bias: d.kind === 'conv' ? (d.bias ?? false) : false,
      size,
      stride,
      padding,
      flops: d.kind === 'conv' ? 2 * out[0]! * out[1]! * channels * c * size * size : 0,
    });
    shape = out;
  });
  if (flat) fail('flatten() must be followed by a dense layer');
  if (layers.length === 0) fail('no layer besides flatten()');
  return { inShape, layers };
}

/**
 * An architecture from the environment variable's text: a JSON list of layer objects, or the name of a file
 * holding one; `fallback` when the variable is unset.
 */
export function archFromEnv(name: string, fallback: readonly LayerDef[]): readonly LayerDef[] {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const json = text.trim().startsWith('[') ? text : existsSync(text) ? readFileSync(text, 'utf8') : null;
  if (json === null) fail(`${name} must be a JSON list of layers or a file holding one, got ${text}`);
  try {
    return JSON.parse(json!) as LayerDef[];
  } catch (e) {
    return fail(`${name} is not valid JSON: ${(e as Error).message}`);
  }
}

/** One layer's parameters as TF.js variables' initial values. */
export interface LayerParams {
  readonly w: Float32Array | null;
  readonly b: Float32Array | null;
}

/** Equinox's default initialisation, each layer from its own stream of `seed`. */
export function initParams(net: Network, seed: number): LayerParams[] {
  const root = new Random(seed);
  return net.layers.map((l, i) => {
    if (l.weightShape === null) return { w: null, b: null };
    const fanIn = l.weightShape.slice(0, -1).reduce((a, b) => a * b, 1);
    const bound = 1 / Math.sqrt(fanIn);
    const rng = root.fork(i);
    const draw = (n: number) => Float32Array.from({ length: n }, () => rng.uniform(-bound, bound));
    const w = draw(l.weightShape.reduce((a, b) => a * b, 1));
    return { w, b: l.bias ? draw(l.weightShape.at(-1)!) : null };
  });
}

/** act(x). */
export function activate(tf: Tf, act: Activation, x: Tensor): Tensor {
  switch (act) {
    case 'linear':
      return x;
    case 'tanh':
      return tf.tanh(x);
    case 'hard_tanh':
      return tf.clipByValue(x, -1, 1);
    case 'relu':
      return tf.relu(x);
    case 'leaky_relu':
      return tf.leakyRelu(x, LEAKY_SLOPE);
  }
}

/** act'(x), element-wise (JAX's conventions at the kinks: relu' (0) = 0, hard_tanh' (±1) = 1). */
export function activateGrad(tf: Tf, act: Activation, x: Tensor): Tensor {
  switch (act) {
    case 'linear':
      return tf.onesLike(x);
    case 'tanh':
      return tf.sub(1, tf.square(tf.tanh(x)));
    case 'hard_tanh':
      return tf.cast(tf.lessEqual(tf.abs(x), 1), 'float32');
    case 'relu':
      return tf.cast(tf.greater(x, 0), 'float32');
    case 'leaky_relu':
      return tf.where(tf.greater(x, 0), tf.onesLike(x), tf.fill(x.shape, LEAKY_SLOPE));
  }
}

/**
 * op_l(input): the layer's product, without its input's activation. `input` is [B, ...inShape]; a dense layer
 * flattens it. `w` and `b` are the layer's parameters (null where it has none).
 */
export function layerOp(tf: Tf, l: Layer, input: Tensor, w: Tensor | null, b: Tensor | null): Tensor {
  let out: Tensor;
  switch (l.kind) {
    case 'conv':
      out = tf.conv2d(input as Tensor4D, w as Tensor4D, l.stride, l.padding);
      break;
    case 'avgPool':
      return tf.avgPool(input as Tensor4D, l.size, l.stride, 0);
    case 'maxPool':
      return tf.maxPool(input as Tensor4D, l.size, l.stride, 0);
    case 'dense':
      out = tf.matMul(tf.reshape(input, [input.shape[0]!, -1]) as Tensor2D, w as Tensor2D);
      break;
  }
  return b === null ? out : tf.add(out, b);
}

/** Floating-point operations of the network's forward products per example. */
export const networkFlops = (net: Network): number => net.layers.reduce((s, l) => s + l.flops, 0);

/** The list as one line, e.g. `conv16k5p2 > avgPool2:linear > … > dense10`. */
export function describeNetwork(net: Network): string {
  return net.layers
    .map((l, i) => {
      const name =
        l.kind === 'conv'
          ? `conv${l.outShape[2]}k${l.size}${l.stride > 1 ? `s${l.stride}` : ''}${l.padding > 0 ? `p${l.padding}` : ''}`
          : l.kind === 'dense'
            ? `${l.inShape.length === 3 ? 'flatten > ' : ''}dense${l.outShape[0]}`
            : `${l.kind}${l.size}${l.stride !== l.size ? `s${l.stride}` : ''}`;
      return `${name}${l.bias ? '+b' : ''}${i > 0 ? `:${l.act}` : ''}`;
    })
    .join(' > ');
}
