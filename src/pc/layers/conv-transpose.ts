/**
 * The transposed-convolution layer kind: Equinox's ConvTranspose2d (weight [C_out, C_in, kh, kw], bias [C_out];
 * stride s, padding p, output padding a: out = (in − 1)·s − 2p + k + a), for generative decoders. Each input
 * position stamps the mirrored kernel, so μ[c, y, x] = s_l·(Σ W[c, c', k−1−ky, k−1−kx]·z[c', (y + p − ky)/s, …]
 * + b[c]) over the exact quotients: the CONV_T gather with the taps flipped. Its carry into its input is the
 * forward convolution's gather (CONV), its weight gradient a reduction over the batch and the output positions.
 */
import { Gather, packGeometry } from '../../kernels/conv.js';
import { JobFlag } from '../../kernels/layer-matmul.js';
import type { Job } from '../../kernels/structs.js';
import type { Random } from '../../util/random.js';
import type { CarryTerm, Planes } from '../layer-jobs.js';
import type { ImageShape } from './conv.js';
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

export interface ConvTransposeLayerSpec extends LayerBase<'convTranspose'> {
  readonly inShape: ImageShape;
  readonly outShape: ImageShape;
  readonly kernel: readonly [number, number];
  readonly stride: number;
  readonly padding: number;
  readonly outputPadding: number;
  readonly useBias: boolean;
  readonly weightOffset: number;
  readonly biasOffset: number;
}

/** Output side of a transposed convolution (Equinox / lax): (side − 1)·s − 2p + k + a. */
export function convTransposeOutSide(side: number, kernel: number, stride: number, padding: number, extra: number) {
  return (side - 1) * stride - 2 * padding + kernel + extra;
}

const taps = (l: ConvTransposeLayerSpec): number => l.inShape[0] * l.kernel[0] * l.kernel[1];
const positions = (l: ConvTransposeLayerSpec): number => l.outShape[1] * l.outShape[2];
const biasFlag = (l: ConvTransposeLayerSpec): number => (l.useBias ? JobFlag.BIAS : 0);

/** The gather from `from` planes into `to` planes, the kernel mirrored. */
function geometry(l: ConvTransposeLayerSpec, gather: typeof Gather.CONV | typeof Gather.CONV_T) {
  const [src, dst] = gather === Gather.CONV_T ? [l.inShape, l.outShape] : [l.outShape, l.inShape];
  return packGeometry({
    gather,
    kh: l.kernel[0],
    kw: l.kernel[1],
    stride: l.stride,
    pad: l.padding,
    flip: true,
    srcH: src[1],
    srcW: src[2],
    dstH: dst[1],
    dstW: dst[2],
  });
}

export const convTransposeKind: LayerKind<ConvTransposeLayerSpec> = {
  name: 'convTranspose',

  forward(layer: ConvTransposeLayerSpec, io: ForwardIo): Job[] {
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
      ...geometry(layer, Gather.CONV_T),
    };
    return perExample(io.rows, first, layer.inDim, layer.outDim, ['aOff', 'fOff'], ['cOff', 'dOff', 'eOff', 'partOff']);
  },

  error(layer: ConvTransposeLayerSpec, io: ErrorIo): Job[] {
    if (io.fixedPrediction !== undefined) {
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
      ...geometry(layer, Gather.CONV_T),
    };
    return perExample(io.rows, first, layer.inDim, layer.outDim, ['aOff', 'fOff'], ['cOff', 'dOff']);
  },

  /** s·w·(the adjoint): rows C_in, k = (C_out, ky, kx), the error's CONV gather, the kernel mirrored. */
  carry(layer: ConvTransposeLayerSpec, io: CarryIo): CarryTerm {
    return {
      k: layer.outShape[0] * layer.kernel[0] * layer.kernel[1],
      aOff: io.error,
      bOff: layer.weightOffset,
      coef: layer.scale * io.weight,
      skip: layer.skip,
      errorStride: layer.outDim,
      geometry: geometry(layer, Gather.CONV),
    };
  },

  /** ∂F/∂W[c, c', ky, kx] = coef·Σ_{b,p} e[c, p]·input at the mirrored tap; ∂F/∂b = coef·Σ_{b,p} e. */
  paramGrad(layer: ConvTransposeLayerSpec, io: ParamGradIo): Job[] {
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
        ...geometry(layer, Gather.CONV_T),
      },
    ];
  },

  outputPlanes(layer: ConvTransposeLayerSpec): Planes {
    return { channels: layer.outShape[0], plane: positions(layer) };
  },

  inputPlanes(layer: ConvTransposeLayerSpec): Planes {
    return { channels: layer.inShape[0], plane: layer.inShape[1] * layer.inShape[2] };
  },

  paramCount(layer: ConvTransposeLayerSpec): number {
    return layer.outShape[0] * taps(layer) + (layer.useBias ? layer.outShape[0] : 0);
  },

  tensors(layer: ConvTransposeLayerSpec): readonly ParamTensor[] {
    const [co, ci] = [layer.outShape[0], layer.inShape[0]];
    const weight: ParamTensor = { role: 'weight', offset: layer.weightOffset, shape: [co, ci, ...layer.kernel] };
    return layer.useBias ? [weight, { role: 'bias', offset: layer.biasOffset, shape: [co] }] : [weight];
  },

  /** Equinox's ConvTranspose2d: W, b ~ U(±1/√(C_in·kh·kw)), C_in its own input channels. */
  init(layer: ConvTransposeLayerSpec, data: Float32Array, stream: Random, scheme: InitScheme): void {
    const lim = 1 / Math.sqrt(taps(layer));
    const n = layer.outShape[0] * taps(layer);
    const w = layer.weightOffset;
    if (scheme === 'mupc') for (let j = 0; j < n; j++) data[w + j] = stream.normal();
    else for (let j = 0; j < n; j++) data[w + j] = stream.uniform(-lim, lim);
    if (layer.useBias)
      for (let j = 0; j < layer.outShape[0]; j++) data[layer.biasOffset + j] = stream.uniform(-lim, lim);
  },
};
