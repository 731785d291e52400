/**
 * The layer kinds WPC knows, and the engine's one way in: `LayerSpec` is the union of every kind's spec, and the
 * functions below hand each layer to its own kind. Nothing outside this folder reads a kind-specific field.
 */
import type { Job } from '../../kernels/structs.js';
import type { Random } from '../../util/random.js';
import type { CarryTerm } from '../layer-jobs.js';
import { type DenseLayerSpec, dense } from './dense.js';
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

export { denseLayers } from './dense.js';

/** A layer of a model: one of the kinds below, told apart by `kind`. */
export type LayerSpec = DenseLayerSpec;

type Kinds = { readonly [K in LayerSpec['kind']]: LayerKind<Extract<LayerSpec, { kind: K }>> };

const KINDS: Kinds = { dense };

function kindOf<S extends LayerSpec>(layer: S): LayerKind<S> {
  return KINDS[layer.kind] as LayerKind<S>;
}

/** The job of `layer`'s feedforward pass. */
export function forwardJob(layer: LayerSpec, io: ForwardIo): Job {
  return kindOf(layer).forward(layer, io);
}

/** The job of `layer`'s prediction error (and its Σe² partials). */
export function errorJob(layer: LayerSpec, io: ErrorIo): Job {
  return kindOf(layer).error(layer, io);
}

/** `layer`'s term in the activity gradient of its input. */
export function carryTerm(layer: LayerSpec, io: CarryIo): CarryTerm {
  return kindOf(layer).carry(layer, io);
}

/** The job of `layer`'s parameter gradient. */
export function paramGradJob(layer: LayerSpec, io: ParamGradIo): Job {
  return kindOf(layer).paramGrad(layer, io);
}

/** Floats of `layer`'s parameters. */
export function layerParamCount(layer: LayerSpec): number {
  return kindOf(layer).paramCount(layer);
}

/** `layer`'s parameter tensors (weights first), at their offsets in the parameter buffer. */
function paramTensors(layer: LayerSpec): readonly ParamTensor[] {
  return kindOf(layer).tensors(layer);
}

/** The weight tensor of `layer` as a [rows, cols] matrix (what weight decay and the spectral penalty act on). */
export function weightMatrix(layer: LayerSpec): { offset: number; rows: number; cols: number } {
  const w = paramTensors(layer).find((t) => t.role === 'weight')!;
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
