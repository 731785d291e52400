/**
 * The 2-D convolution layer kind: Equinox's Conv2d (a cross-correlation, weight [C_out, C_in, kh, kw], bias
 * [C_out], symmetric zero padding, one stride for both axes) as a PC layer, μ = s·(conv(input) + b)
 * [+ z_{l−1} for JPC's residual block]. Activities are NCHW. Its work runs in the grouped layer kernels as
 * convolution-shaped jobs (kernels/conv-gather.wgsl): one implicit GEMM per example for the prediction
 * (rows C_out, columns the output positions, k = C_in·kh·kw) and for the carry into its input (the transposed
 * gather of its error, rows C_in), one over the whole batch for the weight gradient (k = B·positions).
 */
import { Gather, packGeometry } from '../../kernels/conv.js';
import { JobFlag } from '../../kernels/layer-matmul.js';
import type { Job } from '../../kernels/structs.js';
import type { Random } from '../../util/random.js';
import type { CarryTerm, Planes } from '../layer-jobs.js';
import type {
  CarryIo,
  ErrorIo,
  ForwardIo,
  InitScheme,
  LayerBase,
  LayerKind,
  ParamGradIo,
  ParamTensor,
} from './kind.js';
import { perExample } from './planes.js';

/** [channels, height, width] of one example's activity. */
export type ImageShape = readonly [channels: number, height: number, width: number];

export interface ConvLayerSpec extends LayerBase<'conv'> {
  readonly inShape: ImageShape;
  readonly outShape: ImageShape;
  /** [kh, kw]. */
  readonly kernel: readonly [number, number];
  readonly stride: number;
  /** Zero padding on each side. */
  readonly padding: number;
  readonly useBias: boolean;
  /** Offsets (f32 elements) of W and b in the parameter buffer; `biasOffset` is −1 without bias. */
  readonly weightOffset: number;
  readonly biasOffset: number;
}

/** Output side of a convolution over `side` inputs (Equinox / lax: floor((side + 2p − k)/s) + 1). */
export function convOutSide(side: number, kernel: number, stride: number, padding: number): number {
  return Math.floor((side + 2 * padding - kernel) / stride) + 1;
}

const taps = (l: ConvLayerSpec): number => l.inShape[0] * l.kernel[0] * l.kernel[1];
const positions = (l: ConvLayerSpec): number => l.outShape[1] * l.outShape[2];
const biasFlag = (l: ConvLayerSpec): number => (l.useBias ? JobFlag.BIAS : 0);

/** The input's CONV gather: output planes from the input planes. */
function forwardGeometry(l: ConvLayerSpec) {
  return packGeometry({
    gather: Gather.CONV,
    kh: l.kernel[0],
    kw: l.kernel[1],
    stride: l.stride,
    pad: l.padding,
    srcH: l.inShape[1],
    srcW: l.inShape[2],
    dstH: l.outShape[1],
    dstW: l.outShape[2],
  });
}

export const convKind: LayerKind<ConvLayerSpec> = {
  name: 'conv',

  forward(layer: ConvLayerSpec, io: ForwardIo): Job[] {
    const first: Job = {
      m: layer.outShape[0],
      n: positions(layer),
      k: taps(layer),
      aOff: io.input,
      bOff: layer.weightOffset,
      cOff: io.output,
      ...(io.phi !== undefined ? { dOff: io.phi } : {}),
      ...(io.prediction !== undefined ? { eOff: io.prediction } : {}),
      ...(io.residualFrom !== undefined ? { fOff: io.residualFrom } : {}),
      ...(io.addError !== undefined ? { partOff: io.addError } : {}),
      biasOff: Math.max(0, layer.biasOffset),
      flags:
        biasFlag(layer) |
        (io.phi !== undefined ? JobFlag.WRITE_PHI : 0) |
        (io.prediction !== undefined ? JobFlag.WRITE_PRED : 0) |
        (io.residualFrom !== undefined ? JobFlag.SKIP : 0) |
        (io.addError !== undefined ? JobFlag.ADD_ERR : 0),
      coef0: layer.scale,
      ...forwardGeometry(layer),
    };
    return perExample(io.rows, first, layer.inDim, layer.outDim, ['aOff', 'fOff'], ['cOff', 'dOff', 'eOff', 'partOff']);
  },

  error(layer: ConvLayerSpec, io: ErrorIo): Job[] {
    if (io.fixedPrediction !== undefined) {
      // The first layer's prediction is fixed (clamped input): e = z − pred, element-wise, no geometry.
      const first: Job = {
        m: layer.outShape[0],
        n: positions(layer),
        k: 0,
        aOff: 0,
        bOff: 0,
        cOff: io.error,
        dOff: io.target,
        eOff: io.fixedPrediction,
        flags: JobFlag.FIRST | (io.output ? JobFlag.OUTPUT : 0),
        coef0: layer.scale,
      };
      return perExample(io.rows, first, 0, layer.outDim, [], ['cOff', 'dOff', 'eOff']);
    }
    const first: Job = {
      m: layer.outShape[0],
      n: positions(layer),
      k: taps(layer),
      aOff: io.input,
      bOff: layer.weightOffset,
      cOff: io.error,
      dOff: io.target,
      ...(io.residualFrom !== undefined ? { fOff: io.residualFrom } : {}),
      biasOff: Math.max(0, layer.biasOffset),
      partOff: io.part,
      flags: biasFlag(layer) | (io.output ? JobFlag.OUTPUT : 0) | (io.residualFrom !== undefined ? JobFlag.SKIP : 0),
      coef0: layer.scale,
      ...forwardGeometry(layer),
    };
    return perExample(io.rows, first, layer.inDim, layer.outDim, ['aOff', 'fOff'], ['cOff', 'dOff']);
  },

  /** s·w·convᵀ(e): per example, rows C_in, k = (C_out, ky, kx), the error's CONV_T gather. */
  carry(layer: ConvLayerSpec, io: CarryIo): CarryTerm {
    return {
      k: layer.outShape[0] * layer.kernel[0] * layer.kernel[1],
      aOff: io.error,
      bOff: layer.weightOffset,
      coef: layer.scale * io.weight,
      skip: layer.skip,
      errorStride: layer.outDim,
      geometry: packGeometry({
        gather: Gather.CONV_T,
        kh: layer.kernel[0],
        kw: layer.kernel[1],
        stride: layer.stride,
        pad: layer.padding,
        srcH: layer.outShape[1],
        srcW: layer.outShape[2],
        dstH: layer.inShape[1],
        dstW: layer.inShape[2],
      }),
    };
  },

  /** ∂F/∂W = coef·Σ_{b,p} e ⊗ input window; ∂F/∂b = coef·Σ_{b,p} e: one job over the batch. */
  paramGrad(layer: ConvLayerSpec, io: ParamGradIo): Job[] {
    return [
      {
        m: layer.outShape[0],
        n: taps(layer),
        k: io.rows * positions(layer),
        aOff: io.error,
        bOff: io.input,
        cOff: layer.weightOffset,
        dOff: Math.max(0, layer.biasOffset),
        flags: biasFlag(layer),
        coef0: io.coef,
        ...forwardGeometry(layer),
      },
    ];
  },

  outputPlanes(layer: ConvLayerSpec): Planes {
    return { channels: layer.outShape[0], plane: positions(layer) };
  },

  inputPlanes(layer: ConvLayerSpec): Planes {
    return { channels: layer.inShape[0], plane: layer.inShape[1] * layer.inShape[2] };
  },

  paramCount(layer: ConvLayerSpec): number {
    return layer.outShape[0] * taps(layer) + (layer.useBias ? layer.outShape[0] : 0);
  },

  tensors(layer: ConvLayerSpec): readonly ParamTensor[] {
    const [co, ci] = [layer.outShape[0], layer.inShape[0]];
    const weight: ParamTensor = { role: 'weight', offset: layer.weightOffset, shape: [co, ci, ...layer.kernel] };
    return layer.useBias ? [weight, { role: 'bias', offset: layer.biasOffset, shape: [co] }] : [weight];
  },

  /** Equinox's Conv2d: W, b ~ U(±1/√(C_in·kh·kw)); μPC draws W ~ N(0, 1) (its scaling s does the rest). */
  init(layer: ConvLayerSpec, data: Float32Array, stream: Random, scheme: InitScheme): void {
    const lim = 1 / Math.sqrt(taps(layer));
    const n = layer.outShape[0] * taps(layer);
    const w = layer.weightOffset;
    if (scheme === 'mupc') for (let j = 0; j < n; j++) data[w + j] = stream.normal();
    else for (let j = 0; j < n; j++) data[w + j] = stream.uniform(-lim, lim);
    if (layer.useBias)
      for (let j = 0; j < layer.outShape[0]; j++) data[layer.biasOffset + j] = stream.uniform(-lim, lim);
  },
};
