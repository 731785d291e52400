/**
 * The pooling layer kinds: Equinox's AvgPool2d and MaxPool2d (window kh×kw, a stride, no padding) as PC layers of
 * their own, as in JPC's ResNet: μ = the mean (or maximum) over each window of its input, no parameters. Their
 * predictions and carries are gathers in the layer kernels' epilogues (kernels/conv-gather.wgsl), one job per
 * example: each input position takes the errors of the windows holding it, over kh·kw for the mean; for the
 * maximum, of the windows whose first maximal element it is (jax.grad's rule), which the errors pass stores in
 * the layer's scratch (`scratchPerExample`).
 */
import { Gather, packGeometry } from '../../kernels/conv.js';
import { JobFlag } from '../../kernels/layer-matmul.js';
import type { Job } from '../../kernels/structs.js';
import type { CarryTerm, Planes } from '../layer-jobs.js';
import type { ImageShape } from './conv.js';
import type { CarryIo, ErrorIo, ForwardIo, LayerBase, LayerKind, ParamTensor } from './kind.js';
import { perExample } from './planes.js';

interface PoolSpec<Tag extends 'avgPool' | 'maxPool'> extends LayerBase<Tag> {
  readonly inShape: ImageShape;
  readonly outShape: ImageShape;
  /** [kh, kw]. */
  readonly kernel: readonly [number, number];
  readonly stride: number;
}

export type AvgPoolLayerSpec = PoolSpec<'avgPool'>;
export type MaxPoolLayerSpec = PoolSpec<'maxPool'>;
type AnyPool = AvgPoolLayerSpec | MaxPoolLayerSpec;

const positions = (l: AnyPool): number => l.outShape[1] * l.outShape[2];

function geometry(l: AnyPool, adjoint: boolean) {
  const max = l.kind === 'maxPool';
  const gather = adjoint ? (max ? Gather.MAX_POOL_T : Gather.AVG_POOL_T) : max ? Gather.MAX_POOL : Gather.AVG_POOL;
  const [src, dst] = adjoint ? [l.outShape, l.inShape] : [l.inShape, l.outShape];
  return packGeometry({
    gather,
    kh: l.kernel[0],
    kw: l.kernel[1],
    stride: l.stride,
    pad: 0,
    srcH: src[1],
    srcW: src[2],
    dstH: dst[1],
    dstW: dst[2],
  });
}

function poolKind<S extends AnyPool>(name: S['kind']): LayerKind<S> {
  return {
    name,

    forward(layer: S, io: ForwardIo): Job[] {
      const first: Job = {
        m: layer.outShape[0],
        n: positions(layer),
        k: 0,
        aOff: io.input,
        bOff: 0,
        cOff: io.output,
        ...(io.phi !== undefined ? { dOff: io.phi } : {}),
        ...(io.prediction !== undefined ? { eOff: io.prediction } : {}),
        ...(io.addError !== undefined ? { partOff: io.addError } : {}),
        flags:
          (io.phi !== undefined ? JobFlag.WRITE_PHI : 0) |
          (io.prediction !== undefined ? JobFlag.WRITE_PRED : 0) |
          (io.addError !== undefined ? JobFlag.ADD_ERR : 0),
        coef0: layer.scale,
        ...geometry(layer, false),
      };
      return perExample(io.rows, first, layer.inDim, layer.outDim, ['aOff'], ['cOff', 'dOff', 'eOff', 'partOff']);
    },

    error(layer: S, io: ErrorIo): Job[] {
      const fixed = io.fixedPrediction !== undefined;
      const first: Job = {
        m: layer.outShape[0],
        n: positions(layer),
        k: 0,
        aOff: fixed ? 0 : io.input,
        bOff: 0,
        cOff: io.error,
        dOff: io.target,
        ...(fixed ? { eOff: io.fixedPrediction } : {}),
        // A max pooling's errors pass stores where each maximum was.
        biasOff: io.scratch ?? 0,
        partOff: io.part,
        flags: (fixed ? JobFlag.FIRST : 0) | (io.output ? JobFlag.OUTPUT : 0),
        coef0: layer.scale,
        ...(fixed ? {} : geometry(layer, false)),
      };
      const inputs = fixed ? [] : (['aOff'] as const);
      return perExample(io.rows, first, layer.inDim, layer.outDim, inputs, ['cOff', 'dOff', 'eOff', 'biasOff']);
    },

    /** w·poolᵀ(e): no product (k = 0); the adjoint's gather of the error replaces it. */
    carry(layer: S, io: CarryIo): CarryTerm {
      return {
        k: 0,
        aOff: io.error,
        bOff: io.scratch ?? 0,
        coef: layer.scale * io.weight,
        skip: false,
        errorStride: layer.outDim,
        shiftB: layer.kind === 'maxPool',
        geometry: geometry(layer, true),
      };
    },

    paramGrad(): Job[] {
      return [];
    },

    outputPlanes(layer: S): Planes {
      return { channels: layer.outShape[0], plane: positions(layer) };
    },

    inputPlanes(layer: S): Planes {
      return { channels: layer.inShape[0], plane: layer.inShape[1] * layer.inShape[2] };
    },

    scratchPerExample(layer: S): number {
      return layer.kind === 'maxPool' ? layer.outDim : 0;
    },

    paramCount(): number {
      return 0;
    },

    tensors(): readonly ParamTensor[] {
      return [];
    },

    init(): void {},
  };
}

export const avgPoolKind = poolKind<AvgPoolLayerSpec>('avgPool');
export const maxPoolKind = poolKind<MaxPoolLayerSpec>('maxPool');
