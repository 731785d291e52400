/**
 * Models from a list of layers, in the shape of JPC's list of Equinox modules: each entry with parameters or a
 * pooling is one PC layer with its own activity (JPC's ResNet has its AvgPool2d as a layer of its own), `flatten()`
 * only reshapes ([C, H, W] → [C·H·W], NCHW as `jnp.ravel`; a dense layer after a convolution ravels its input by
 * itself, as JPC's Readout does).
 *
 *   makeModel(runtime, { seed: 0, inputShape: [1, 28, 28], actFn: 'relu', layers: [
 *     conv(16, 3, { padding: 1 }), avgPool(2), conv(32, 3, { padding: 1 }), flatten(), dense(128), dense(10)] })
 *
 * Each layer's `act` is the activation its input goes through (JPC's rule: before the map): by default the model's
 * `actFn`, the first layer seeing the raw input; `'linear'` for none (JPC's ScaledConv2d and Readout).
 */
import { ACTIVATIONS, type Activation } from '../kernels/activations.js';
import { MAX_KERNEL, MAX_SIDE } from '../kernels/conv.js';
import { WpcArgumentError, argError, checkKnownKeys, checkOneOf, checkPositiveInt } from '../runtime/errors.js';
import { checkFits, storageLimit } from '../runtime/limits.js';
import type { Runtime } from '../runtime/runtime.js';
import { Random } from '../util/random.js';
import { type ConvLayerSpec, convOutSide } from './layers/conv.js';
import { type DenseLayerSpec, type LayerSpec, initLayer, layerParamCount } from './layers/index.js';
import { type ConvTransposeLayerSpec, convTransposeOutSide } from './layers/conv-transpose.js';
import type { AvgPoolLayerSpec, MaxPoolLayerSpec } from './layers/pool.js';
import { MAX_DEPTH, PARAM_TYPES, type ParamType } from './parameterisation.js';
import type { ConvDef, LayerAct, LayerDef, ModelDefinition } from './layer-defs.js';
import { type Model, checkRuntime, uploadModel } from './model.js';

export interface MakeModelOptions {
  /** Seed of the initialisation; equal seeds give equal parameters. */
  seed: number;
  /** One example's input: [C, H, W] for images (NCHW) or [N]. */
  inputShape: readonly number[];
  layers: readonly LayerDef[];
  /** The activation layers apply to their inputs by default; one of JPC's eight. */
  actFn: Activation;
  /** Default bias for layers that do not say; default `false`, as in JPC. */
  useBias?: boolean;
  /**
   * `'sp'` (default), `'mupc'` or `'ntp'`: the scalings s_l of JPC's ScaledConv2d and Readout (μPC also draws the
   * weights from N(0, 1)); see `layerScales`.
   */
  paramType?: ParamType;
}

const KEYS: Record<LayerDef['type'], readonly string[]> = {
  dense: ['type', 'units', 'useBias', 'act'],
  conv: ['type', 'channels', 'kernel', 'stride', 'padding', 'useBias', 'act'],
  residual: ['type', 'kernel', 'useBias', 'act'],
  avgPool: ['type', 'kernel', 'stride', 'act'],
  maxPool: ['type', 'kernel', 'stride', 'act'],
  convTranspose: ['type', 'channels', 'kernel', 'stride', 'padding', 'outputPadding', 'useBias', 'act'],
  flatten: ['type'],
  reshape: ['type', 'shape'],
};

type Shape = readonly number[];

function kernelOf(fn: string, arg: string, kernel: unknown): [number, number] {
  if (Array.isArray(kernel)) {
    if (kernel.length !== 2) argError(fn, arg, 'a side or [kh, kw]', kernel);
    return [
      checkPositiveInt(fn, `${arg}[0]`, kernel[0], MAX_KERNEL),
      checkPositiveInt(fn, `${arg}[1]`, kernel[1], MAX_KERNEL),
    ];
  }
  const k = checkPositiveInt(fn, arg, kernel, MAX_KERNEL);
  return [k, k];
}

function paddingOf(fn: string, arg: string, padding: unknown): number {
  if (!Number.isSafeInteger(padding) || (padding as number) < 0 || (padding as number) > MAX_KERNEL)
    argError(fn, arg, `an integer in [0, ${MAX_KERNEL}]`, padding);
  return padding as number;
}

function image(fn: string, arg: string, shape: Shape, what: string): readonly [number, number, number] {
  if (shape.length !== 3)
    throw new WpcArgumentError(
      `${fn}: ${arg} (${what}) needs an image input [C, H, W], got [${shape.join(', ')}]: start from an inputShape of [C, H, W] and put convolutions before flatten()`,
    );
  return shape as readonly [number, number, number];
}

/**
 * JPC's list of layers as a model: shapes checked layer by layer, parameters drawn from each layer's own stream
 * (Equinox's defaults: U(±1/√fan_in) for weights and biases, fan_in = C_in·kh·kw for a convolution).
 */
export function makeModel(runtime: Runtime, options: MakeModelOptions): Model {
  const fn = 'makeModel';
  checkRuntime(fn, runtime);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['seed', ...DEFINITION_KEYS]);
  if (!Number.isSafeInteger(options.seed)) argError(fn, 'options.seed', 'a safe integer', options.seed);
  const { layers, definition, count } = resolveLayers(fn, options, runtime);
  const data = new Float32Array(count);
  const root = new Random(options.seed);
  const scheme = definition.paramType === 'mupc' ? 'mupc' : 'default';
  layers.forEach((l, i) => initLayer(l, data, root.fork(i), scheme));
  return uploadModel(runtime, fn, definition.actFn, layers, data, parameterisation(definition, layers), definition);
}

const DEFINITION_KEYS = ['inputShape', 'layers', 'actFn', 'useBias', 'paramType'] as const;

/** The model's parameterisation record (residual blocks carry their skips). */
function parameterisation(definition: ModelDefinition, layers: readonly LayerSpec[]) {
  return { paramType: definition.paramType ?? 'sp', skips: layers.map((l) => l.skip), gamma: null };
}

/**
 * torch.nn.init.calculate_gain, as JPC's ScaledConv2d takes it for the activation its input goes through (1 for
 * none); torch has none for JPC's gelu, silu and hard_tanh, and neither has μPC here.
 */
const TORCH_GAIN: Partial<Record<LayerAct, number>> = {
  linear: 1,
  tanh: 5 / 3,
  relu: Math.SQRT2,
  leaky_relu: Math.sqrt(2 / (1 + 0.01 ** 2)),
  selu: 3 / 4,
};

/**
 * JPC's scalings s_l of a layer list (experiments/limits_paper/cnn/model.py): μPC gives a convolution
 * gain(act)/√(C_in·kh·kw), residual blocks besides 1/√(number of residual blocks), the last dense layer (the
 * readout) 1/in and other dense layers 1/√in; NTP (WPC's analogue of JPC's MLP NTP, which ScaledConv2d lacks) the
 * fan-in scalings 1/√fan_in without gain; SP 1 everywhere. Poolings have none.
 */
function layerScales(
  fn: string,
  subject: string,
  paramType: ParamType,
  layers: readonly LayerSpec[],
  actFn: Activation,
) {
  const blocks = layers.filter((l) => l.skip).length;
  return layers.map((l, i) => {
    if (paramType === 'sp' || l.kind === 'avgPool' || l.kind === 'maxPool') return 1;
    if (l.kind === 'dense') {
      if (i === layers.length - 1) return paramType === 'mupc' ? 1 / l.inDim : 1 / Math.sqrt(l.inDim);
      return 1 / Math.sqrt(l.inDim);
    }
    const fanIn = l.inShape[0] * l.kernel[0] * l.kernel[1];
    if (paramType === 'ntp') return 1 / Math.sqrt(fanIn);
    const act: LayerAct = i === 0 || l.linearInput ? 'linear' : actFn;
    const gain = TORCH_GAIN[act];
    if (gain === undefined)
      throw new WpcArgumentError(
        `${fn}: ${subject}.paramType 'mupc' scales a convolution by torch's gain of its activation, which '${act}' (layer ${i}) does not have; use relu, tanh, leaky_relu, selu or 'linear'`,
      );
    return (gain / Math.sqrt(fanIn)) * (l.skip ? 1 / Math.sqrt(blocks) : 1);
  });
}

/**
 * A model of `definition` holding `params` (`Model.params`' layout, e.g. from a checkpoint): `fn` and `subject`
 * name the caller and the argument in errors. Refuses a parameter count that does not match the layers.
 */
export function modelFromDefinition(
  runtime: Runtime,
  fn: string,
  subject: string,
  definition: ModelDefinition,
  params: Float32Array,
): Model {
  checkRuntime(fn, runtime);
  if (typeof definition !== 'object' || definition === null)
    argError(fn, subject, 'a model definition { inputShape, layers, actFn, useBias, paramType }', definition);
  checkKnownKeys(fn, subject, definition, DEFINITION_KEYS);
  const resolved = resolveLayers(fn, definition, runtime, subject);
  if (params.length !== resolved.count)
    throw new WpcArgumentError(
      `${fn}: ${subject} holds ${params.length} parameters, but its layers have ${resolved.count}`,
    );
  return uploadModel(
    runtime,
    fn,
    resolved.definition.actFn,
    resolved.layers,
    params,
    parameterisation(resolved.definition, resolved.layers),
    resolved.definition,
  );
}

/** Checks a definition layer by layer and lays its parameters out back to back. */
function resolveLayers(
  fn: string,
  options: Omit<MakeModelOptions, 'seed'>,
  runtime: Runtime,
  subject = 'options',
): { layers: LayerSpec[]; definition: ModelDefinition; count: number } {
  const actFn = checkOneOf(fn, `${subject}.actFn`, options.actFn, ACTIVATIONS);
  const paramType = checkOneOf(fn, `${subject}.paramType`, options.paramType ?? 'sp', PARAM_TYPES);
  const useBias = options.useBias ?? false;
  if (typeof useBias !== 'boolean') argError(fn, `${subject}.useBias`, 'a boolean', useBias);
  const input = options.inputShape;
  if (!Array.isArray(input) || (input.length !== 1 && input.length !== 3))
    argError(fn, `${subject}.inputShape`, '[C, H, W] or [N]', input);
  input.forEach((d, i) => checkPositiveInt(fn, `${subject}.inputShape[${i}]`, d, MAX_SIDE));
  const defs = options.layers;
  if (!Array.isArray(defs) || defs.length === 0) argError(fn, `${subject}.layers`, 'a non-empty array of layers', defs);

  const layers: LayerSpec[] = [];
  let shape: Shape = [...input];
  let at = 0;
  defs.forEach((def: unknown, i) => {
    const arg = `${subject}.layers[${i}]`;
    if (typeof def !== 'object' || def === null || !('type' in def) || !((def.type as string) in KEYS))
      argError(
        fn,
        arg,
        `a layer (dense, conv, convTranspose, residual, avgPool, maxPool, flatten or reshape: use the builders)`,
        def,
      );
    const d = def as LayerDef;
    checkKnownKeys(fn, arg, d, KEYS[d.type]);
    if (d.type === 'flatten') {
      shape = [image(fn, arg, shape, 'flatten').reduce((a, b) => a * b, 1)];
      return;
    }
    if (d.type === 'reshape') {
      const to = d.shape as unknown;
      if (!Array.isArray(to) || (to.length !== 1 && to.length !== 3))
        argError(fn, `${arg}.shape`, '[C, H, W] or [N]', to);
      to.forEach((v, j) => checkPositiveInt(fn, `${arg}.shape[${j}]`, v, MAX_SIDE));
      const size = shape.reduce((a, b) => a * b, 1);
      const next = (to as number[]).reduce((a, b) => a * b, 1);
      if (next !== size)
        throw new WpcArgumentError(
          `${fn}: ${arg}.shape [${to.join(', ')}] has ${next} elements, but the activity before it has ${size} ([${shape.join(', ')}])`,
        );
      shape = [...(to as number[])];
      return;
    }
    const first = layers.length === 0;
    const act = d.act ?? (first ? 'linear' : actFn);
    if (act !== 'linear' && act !== actFn) argError(fn, `${arg}.act`, `'linear' or the model's actFn '${actFn}'`, act);
    if (first && act !== 'linear')
      throw new WpcArgumentError(`${fn}: ${arg}.act must be 'linear': the first layer sees the raw input (JPC)`);
    const common = { scale: 1, linearInput: !first && act === 'linear' };
    const inDim = shape.reduce((a, b) => a * b, 1);
    const bias = (v: unknown) => {
      if (v !== undefined && typeof v !== 'boolean') argError(fn, `${arg}.useBias`, 'a boolean', v);
      return (v as boolean | undefined) ?? useBias;
    };
    // What a convolution's spec (either kind) takes from its shapes: sizes, and its parameters' place from `at`.
    const convolution = (
      inShape: readonly [number, number, number],
      outShape: readonly [number, number, number],
      kernel: readonly [number, number],
      useBias: boolean,
    ) => {
      const weights = outShape[0] * inShape[0] * kernel[0] * kernel[1];
      return {
        inDim,
        outDim: outShape[0] * outShape[1] * outShape[2],
        inShape,
        outShape,
        kernel,
        useBias,
        weightOffset: at,
        biasOffset: useBias ? at + weights : -1,
        ...common,
      };
    };
    let spec: LayerSpec;
    if (d.type === 'dense') {
      const units = checkPositiveInt(fn, `${arg}.units`, d.units);
      const withBias = bias(d.useBias);
      spec = {
        kind: 'dense',
        inDim,
        outDim: units,
        useBias: withBias,
        weightOffset: at,
        biasOffset: withBias ? at + inDim * units : -1,
        skip: false,
        ...common,
      } satisfies DenseLayerSpec;
      shape = [units];
    } else if (d.type === 'conv' || d.type === 'residual') {
      const [c, h, w] = image(fn, arg, shape, d.type);
      const kernel = kernelOf(fn, `${arg}.kernel`, d.kernel);
      const res = d.type === 'residual';
      if (res && kernel[0] % 2 === 0)
        argError(fn, `${arg}.kernel`, 'an odd side (a residual block keeps its shape)', d.kernel);
      const channels = res ? c : checkPositiveInt(fn, `${arg}.channels`, (d as ConvDef).channels);
      const stride = res ? 1 : checkPositiveInt(fn, `${arg}.stride`, (d as ConvDef).stride ?? 1, MAX_KERNEL);
      const padding = paddingOf(fn, `${arg}.padding`, res ? (kernel[0] - 1) / 2 : ((d as ConvDef).padding ?? 0));
      const oh = convOutSide(h, kernel[0], stride, padding);
      const ow = convOutSide(w, kernel[1], stride, padding);
      if (oh < 1 || ow < 1)
        throw new WpcArgumentError(
          `${fn}: ${arg}: a ${kernel[0]}×${kernel[1]} kernel with padding ${padding} does not fit a ${h}×${w} input`,
        );
      if (res && first) throw new WpcArgumentError(`${fn}: ${arg}: a residual block cannot be the first layer`);
      spec = {
        ...convolution([c, h, w], [channels, oh, ow], kernel, bias(d.useBias)),
        kind: 'conv',
        stride,
        padding,
        skip: res,
      } satisfies ConvLayerSpec;
      shape = [channels, oh, ow];
    } else if (d.type === 'convTranspose') {
      const [c, h, w] = image(fn, arg, shape, d.type);
      const kernel = kernelOf(fn, `${arg}.kernel`, d.kernel);
      const channels = checkPositiveInt(fn, `${arg}.channels`, d.channels);
      const stride = checkPositiveInt(fn, `${arg}.stride`, d.stride ?? 1, MAX_KERNEL);
      const padding = paddingOf(fn, `${arg}.padding`, d.padding ?? 0);
      const extra = d.outputPadding ?? 0;
      if (!Number.isSafeInteger(extra) || extra < 0 || extra >= stride)
        argError(fn, `${arg}.outputPadding`, `an integer in [0, stride ${stride})`, extra);
      const oh = convTransposeOutSide(h, kernel[0], stride, padding, extra);
      const ow = convTransposeOutSide(w, kernel[1], stride, padding, extra);
      if (oh < 1 || ow < 1 || oh > MAX_SIDE || ow > MAX_SIDE)
        throw new WpcArgumentError(
          `${fn}: ${arg}: a ${h}×${w} input gives a ${oh}×${ow} output (kernel ${kernel[0]}×${kernel[1]}, stride ${stride}, padding ${padding})`,
        );
      if (padding >= Math.min(...kernel))
        argError(fn, `${arg}.padding`, `less than the kernel side ${Math.min(...kernel)}`, padding);
      spec = {
        ...convolution([c, h, w], [channels, oh, ow], kernel, bias(d.useBias)),
        kind: 'convTranspose',
        stride,
        padding,
        outputPadding: extra,
        skip: false,
      } satisfies ConvTransposeLayerSpec;
      shape = [channels, oh, ow];
    } else {
      const [c, h, w] = image(fn, arg, shape, d.type);
      const kernel = kernelOf(fn, `${arg}.kernel`, d.kernel);
      const stride = checkPositiveInt(fn, `${arg}.stride`, d.stride ?? kernel[0], MAX_KERNEL);
      const oh = convOutSide(h, kernel[0], stride, 0);
      const ow = convOutSide(w, kernel[1], stride, 0);
      if (kernel[0] > h || kernel[1] > w)
        throw new WpcArgumentError(`${fn}: ${arg}: a ${kernel[0]}×${kernel[1]} window does not fit a ${h}×${w} input`);
      spec = {
        kind: d.type,
        inDim,
        outDim: c * oh * ow,
        inShape: [c, h, w],
        outShape: [c, oh, ow],
        kernel,
        stride,
        skip: false,
        ...common,
      } satisfies AvgPoolLayerSpec | MaxPoolLayerSpec;
      shape = [c, oh, ow];
    }
    layers.push(spec);
    at += layerParamCount(spec);
  });
  if (layers.length === 0) argError(fn, `${subject}.layers`, 'at least one layer besides flatten()', defs);
  if (layers.length > MAX_DEPTH) argError(fn, `${subject}.layers`, `at most ${MAX_DEPTH} layers`, layers.length);
  if (at === 0) argError(fn, `${subject}.layers`, 'layers with at least one parameter', defs);
  checkFits(
    `${fn}: ${subject}.layers`,
    `the parameters (${at} floats)`,
    at * 4,
    storageLimit(runtime.limits),
    'use a smaller network',
  );
  const definition: ModelDefinition = {
    inputShape: Object.freeze([...input]),
    layers: Object.freeze(defs.map((d) => Object.freeze({ ...d }))),
    actFn,
    useBias,
    paramType,
  };
  const scales = layerScales(fn, subject, paramType, layers, actFn);
  return { layers: layers.map((l, i) => ({ ...l, scale: scales[i]! })), definition, count: at };
}
