/**
 * The average-pooling layer kind: Equinox's AvgPool2d (window kh×kw, a stride, no padding) as a PC layer of its
 * own, as in JPC's ResNet: μ = mean over each window of its input, no parameters. Its prediction and its carry
 * (each input position takes the errors of the windows holding it, over kh·kw) are gathers in the layer kernels'
 * epilogues (kernels/conv-gather.wgsl, AVG_POOL and AVG_POOL_T), one job per example.
 */
import { Gather, packGeometry } from '../../kernels/conv.js';
import { JobFlag } from '../../kernels/layer-matmul.js';
import type { Job } from '../../kernels/structs.js';
import type { CarryTerm, Planes } from '../layer-jobs.js';
import type { ImageShape } from './conv.js';
import type { CarryIo, ErrorIo, ForwardIo, LayerBase, LayerKind, ParamTensor } from './kind.js';
import { perExample } from './planes.js';

export interface AvgPoolLayerSpec extends LayerBase<'avgPool'> {
  readonly inShape: ImageShape;
  readonly outShape: ImageShape;
  /** [kh, kw]. */
  readonly kernel: readonly [number, number];
  readonly stride: number;
}

const positions = (l: AvgPoolLayerSpec): number => l.outShape[1] * l.outShape[2];

function geometry(l: AvgPoolLayerSpec, gather: typeof Gather.AVG_POOL | typeof Gather.AVG_POOL_T) {
  const [src, dst] = gather === Gather.AVG_POOL ? [l.inShape, l.outShape] : [l.outShape, l.inShape];
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

export const avgPoolKind: LayerKind<AvgPoolLayerSpec> = {
  name: 'avgPool',

  forward(layer: AvgPoolLayerSpec, io: ForwardIo): Job[] {
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
      ...geometry(layer, Gather.AVG_POOL),
    };
    return perExample(io.rows, first, layer.inDim, layer.outDim, ['aOff'], ['cOff', 'dOff', 'eOff', 'partOff']);
  },

  error(layer: AvgPoolLayerSpec, io: ErrorIo): Job[] {
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
      partOff: io.part,
      flags: (fixed ? JobFlag.FIRST : 0) | (io.output ? JobFlag.OUTPUT : 0),
      coef0: layer.scale,
      ...(fixed ? {} : geometry(layer, Gather.AVG_POOL)),
    };
    return perExample(io.rows, first, layer.inDim, layer.outDim, fixed ? [] : ['aOff'], ['cOff', 'dOff', 'eOff']);
  },

  /** w·poolᵀ(e): no product (k = 0); the AVG_POOL_T gather of the error replaces it. */
  carry(layer: AvgPoolLayerSpec, io: CarryIo): CarryTerm {
    return {
      k: 0,
      aOff: io.error,
      bOff: 0,
      coef: layer.scale * io.weight,
      skip: false,
      errorStride: layer.outDim,
      geometry: geometry(layer, Gather.AVG_POOL_T),
    };
  },

  paramGrad(): Job[] {
    return [];
  },

  outputPlanes(layer: AvgPoolLayerSpec): Planes {
    return { channels: layer.outShape[0], plane: positions(layer) };
  },

  inputPlanes(layer: AvgPoolLayerSpec): Planes {
    return { channels: layer.inShape[0], plane: layer.inShape[1] * layer.inShape[2] };
  },

  paramCount(): number {
    return 0;
  },

  tensors(): readonly ParamTensor[] {
    return [];
  },

  init(): void {},
};
