/**
 * The layers of `makeModel`'s list, as plain data (what checkpoints store and `wpc train --arch` parses), and their
 * builders. Each entry with parameters, and each pooling, is one PC layer with its own activity; `flatten()` only
 * reshapes. architecture.ts turns a list into a model.
 */
import type { Activation } from '../kernels/activations.js';
import type { ParamType } from './parameterisation.js';

/** A layer's input activation: none, or the model's `actFn` (the default past the first layer). */
export type LayerAct = 'linear' | Activation;

interface LayerCommon {
  /** The activation this layer's input goes through; default the model's actFn (the first layer: none). */
  act?: LayerAct;
}

/** A dense layer `[φ → Linear]` of `units` outputs (its input raveled). */
export interface DenseDef extends LayerCommon {
  type: 'dense';
  units: number;
  useBias?: boolean;
}

/** Equinox's Conv2d: `channels` outputs, a kernel side (or [kh, kw]), stride and zero padding per side. */
export interface ConvDef extends LayerCommon {
  type: 'conv';
  channels: number;
  kernel: number | readonly [number, number];
  stride?: number;
  padding?: number;
  useBias?: boolean;
}

/** JPC's residual block: act → conv (C → C, stride 1, 'same' padding, odd kernel) + the identity skip. */
export interface ResidualDef extends LayerCommon {
  type: 'residual';
  kernel: number;
  useBias?: boolean;
}

/** Equinox's AvgPool2d as a PC layer: windows of `kernel` (side or [kh, kw]), stride default the kernel. */
export interface AvgPoolDef extends LayerCommon {
  type: 'avgPool';
  kernel: number | readonly [number, number];
  stride?: number;
}

/** Equinox's MaxPool2d as a PC layer: windows of `kernel` (side or [kh, kw]), stride default the kernel. */
export interface MaxPoolDef extends LayerCommon {
  type: 'maxPool';
  kernel: number | readonly [number, number];
  stride?: number;
}

/**
 * Equinox's ConvTranspose2d (for decoders): `channels` outputs, output side (in − 1)·stride − 2·padding + kernel +
 * outputPadding (outputPadding < stride).
 */
export interface ConvTransposeDef extends LayerCommon {
  type: 'convTranspose';
  channels: number;
  kernel: number | readonly [number, number];
  stride?: number;
  padding?: number;
  outputPadding?: number;
  useBias?: boolean;
}

/** [C, H, W] → [C·H·W]: a reshape, not a layer. */
export interface FlattenDef {
  type: 'flatten';
}

/** The activity seen as `shape` ([C, H, W] or [N], the same size; NCHW order): a reshape, not a layer. */
export interface ReshapeDef {
  type: 'reshape';
  shape: readonly number[];
}

export type LayerDef =
  | DenseDef
  | ConvDef
  | ConvTransposeDef
  | ResidualDef
  | AvgPoolDef
  | MaxPoolDef
  | FlattenDef
  | ReshapeDef;

type Options<D> = Omit<D, 'type' | 'units' | 'channels' | 'kernel'>;

/** A dense layer of `units` outputs. */
export function dense(units: number, options: Options<DenseDef> = {}): DenseDef {
  return { type: 'dense', units, ...options };
}

/** A 2-D convolution of `channels` outputs and kernel side `kernel` (or [kh, kw]). */
export function conv(channels: number, kernel: number | [number, number], options: Options<ConvDef> = {}): ConvDef {
  return { type: 'conv', channels, kernel, ...options };
}

/** JPC's residual block with an odd kernel side `kernel`. */
export function residual(kernel: number, options: Options<ResidualDef> = {}): ResidualDef {
  return { type: 'residual', kernel, ...options };
}

/** Average pooling over `kernel`×`kernel` windows (stride default `kernel`). */
export function avgPool(kernel: number | [number, number], options: Options<AvgPoolDef> = {}): AvgPoolDef {
  return { type: 'avgPool', kernel, ...options };
}

/** Max pooling over `kernel`×`kernel` windows (stride default `kernel`). */
export function maxPool(kernel: number | [number, number], options: Options<MaxPoolDef> = {}): MaxPoolDef {
  return { type: 'maxPool', kernel, ...options };
}

/** A transposed convolution of `channels` outputs and kernel side `kernel` (or [kh, kw]). */
export function convTranspose(
  channels: number,
  kernel: number | [number, number],
  options: Options<ConvTransposeDef> = {},
): ConvTransposeDef {
  return { type: 'convTranspose', channels, kernel, ...options };
}

/** Sees the activity as `shape` ([C, H, W] or [N]). */
export function reshape(shape: readonly number[]): ReshapeDef {
  return { type: 'reshape', shape };
}

/** Ravels [C, H, W] into [C·H·W]. */
export function flatten(): FlattenDef {
  return { type: 'flatten' };
}

/** A model's definition by layers: what `makeModel` took, without the seed. */
export interface ModelDefinition {
  inputShape: readonly number[];
  layers: readonly LayerDef[];
  actFn: Activation;
  useBias: boolean;
  /** The parameterisation of its scalings (`makeModel`'s `paramType`); 'sp' when absent. */
  paramType?: ParamType;
}
