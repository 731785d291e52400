/**
 * The layer kinds WPC knows, and the engine's one way in: `LayerSpec` is the union of every kind's spec, and the
 * functions below hand each layer to its own kind. Nothing outside this folder reads a kind-specific field.
 */
import type { Job } from '../../kernels/structs.js';
import { WpcArgumentError } from '../../runtime/errors.js';
import type { Random } from '../../util/random.js';
import type { CarryTerm, Planes } from '../layer-jobs.js';
import { type ConvLayerSpec, convKind } from './conv.js';
import { type DenseLayerSpec, denseKind } from './dense.js';
import type {
  CarryIo,
  ErrorIo,
  ForwardIo,
  FusedLayer,
  InitScheme,
  LayerKind,
  ParamGradIo,
  ParamTensor,
} from './kind.js';
import { type ConvTransposeLayerSpec, convTransposeKind } from './conv-transpose.js';
import { type AvgPoolLayerSpec, type MaxPoolLayerSpec, avgPoolKind, maxPoolKind } from './pool.js';

export { type DenseLayerSpec, denseLayers } from './dense.js';

/** A layer of a model: one of the kinds below, told apart by `kind`. */
export type LayerSpec = DenseLayerSpec | ConvLayerSpec | ConvTransposeLayerSpec | AvgPoolLayerSpec | MaxPoolLayerSpec;

type Kinds = { readonly [K in LayerSpec['kind']]: LayerKind<Extract<LayerSpec, { kind: K }>> };

const KINDS: Kinds = {
  dense: denseKind,
  conv: convKind,
  convTranspose: convTransposeKind,
  avgPool: avgPoolKind,
  maxPool: maxPoolKind,
};

function kindOf<S extends LayerSpec>(layer: S): LayerKind<S> {
  return KINDS[layer.kind] as unknown as LayerKind<S>;
}

/** The jobs of `layer`'s feedforward pass. */
export function forwardJobs(layer: LayerSpec, io: ForwardIo): Job[] {
  return kindOf(layer).forward(layer, io);
}

/** The jobs of `layer`'s prediction error (their partial-sum slots assigned by the caller). */
export function errorJobs(layer: LayerSpec, io: ErrorIo): Job[] {
  return kindOf(layer).error(layer, io);
}

/** `layer`'s term in the activity gradient of its input. */
export function carryTerm(layer: LayerSpec, io: CarryIo): CarryTerm {
  return kindOf(layer).carry(layer, io);
}

/** The jobs of `layer`'s parameter gradient (none for a kind without parameters). */
export function paramGradJobs(layer: LayerSpec, io: ParamGradIo): Job[] {
  return kindOf(layer).paramGrad(layer, io);
}

/** How `layer`'s forward and error jobs split per example, if they are convolution-shaped. */
export function outputPlanes(layer: LayerSpec): Planes | undefined {
  return kindOf(layer).outputPlanes?.(layer);
}

/** How the activity-gradient jobs of `layer`'s input split per example, if its carry is convolution-shaped. */
export function inputPlanes(layer: LayerSpec): Planes | undefined {
  return kindOf(layer).inputPlanes?.(layer);
}

/** Floats per example of workspace scratch `layer` needs (a max pooling's argmax); 0 for most kinds. */
export function scratchPerExample(layer: LayerSpec): number {
  return kindOf(layer).scratchPerExample?.(layer) ?? 0;
}

/** Whether `layer`'s jobs are convolution-shaped (the layer kernels must be compiled with CONV). */
export function convolutional(layer: LayerSpec): boolean {
  return outputPlanes(layer) !== undefined;
}

/** Floats of `layer`'s parameters. */
export function layerParamCount(layer: LayerSpec): number {
  return kindOf(layer).paramCount(layer);
}

/** `layer`'s parameter tensors (weights first), at their offsets in the parameter buffer. */
export function paramTensors(layer: LayerSpec): readonly ParamTensor[] {
  return kindOf(layer).tensors(layer);
}

/**
 * The weight tensor of `layer` as a [rows, cols] matrix (what weight decay and the spectral penalty act on: rows
 * the outputs, cols the rest); 0×0 for a kind without weights (a pooling).
 */
export function weightMatrix(layer: LayerSpec): { offset: number; rows: number; cols: number } {
  const w = paramTensors(layer).find((t) => t.role === 'weight');
  if (!w) return { offset: 0, rows: 0, cols: 0 };
  const rows = w.shape[0]!;
  return { offset: w.offset, rows, cols: w.shape.slice(1).reduce((a, b) => a * b, 1) };
}

/** The bias tensor of `layer`, if it has one. */
export function biasTensor(layer: LayerSpec): ParamTensor | undefined {
  return paramTensors(layer).find((t) => t.role === 'bias');
}

/** Writes `layer`'s initial parameters into `data`. */
export function initLayer(layer: LayerSpec, data: Float32Array, stream: Random, scheme: InitScheme): void {
  kindOf(layer).init(layer, data, stream, scheme);
}

/** `layer` as the fused whole-solve kernel reads it, or undefined if its kind does not run there. */
export function fusedLayer(layer: LayerSpec): FusedLayer | undefined {
  return kindOf(layer).fused?.(layer);
}

/** `layers` as dense layers, or a WpcArgumentError from `fn` naming the first layer of another kind. */
export function mlpLayers(fn: string, layers: readonly LayerSpec[]): readonly DenseLayerSpec[] {
  const other = layers.findIndex((l) => l.kind !== 'dense');
  if (other >= 0)
    throw new WpcArgumentError(
      `${fn}: takes models of dense layers (MLPs); layer ${other} is a '${layers[other]!.kind}' layer`,
    );
  return layers as readonly DenseLayerSpec[];
}

/** The shape of one example's activity that `layer` reads (`'in'`) or writes (`'out'`): [C, H, W] or [N]. */
export function activityShape(layer: LayerSpec, side: 'in' | 'out'): readonly number[] {
  if (layer.kind === 'dense') return [side === 'in' ? layer.inDim : layer.outDim];
  return side === 'in' ? layer.inShape : layer.outShape;
}
