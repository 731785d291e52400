/**
 * The 2-D convolution layer kind: Equinox's Conv2d (a cross-correlation, weight [C_out, C_in, kh, kw], bias
 * [C_out], symmetric zero padding, one stride for both axes) as a PC layer, μ = s·(conv(input) + b)
 * [+ z_{l−1} for JPC's residual block]. Activities are NCHW. Its work runs in the grouped layer kernels as
 * convolution-shaped jobs (kernels/conv-gather.wgsl): one implicit GEMM per example for the prediction
 * (rows C_out, columns the output positions, k = C_in·kh·kw) and for the carry into its input (the transposed
 * gather of its error, rows C_in), one over the whole batch for the weight gradient (k = B·positions).
 * `convolutionKind` builds the jobs for both convolution kinds (this one and conv-transpose.ts): they differ only
 * in the gathers their geometry names and whether the kernel's taps are read mirrored.
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

/** What the two convolution kinds' specs share. */
interface ConvolutionSpec<Tag extends 'conv' | 'convTranspose'> extends LayerBase<Tag> {
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

export type ConvLayerSpec = ConvolutionSpec<'conv'>;

/** Output side of a convolution over `side` inputs (Equinox / lax: floor((side + 2p − k)/s) + 1). */
export function convOutSide(side: number, kernel: number, stride: number, padding: number): number {
  return Math.floor((side + 2 * padding - kernel) / stride) + 1;
}

type AnyConvolution = ConvolutionSpec<'conv' | 'convTranspose'>;
type ConvGather = typeof Gather.CONV | typeof Gather.CONV_T;

const taps = (l: AnyConvolution): number => l.inShape[0] * l.kernel[0] * l.kernel[1];
const positions = (l: AnyConvolution): number => l.outShape[1] * l.outShape[2];
const biasFlag = (l: AnyConvolution): number => (l.useBias ? JobFlag.BIAS : 0);

/**
 * The jobs of a convolution kind whose prediction gathers its input with `forward` (input planes → output planes;
 * the weight gradient too) and whose carry gathers its error with `carry` (output planes → input planes), the
 * kernel's taps read mirrored when `flip`.
 */
export function convolutionKind<S extends AnyConvolution>(
  name: S['kind'],
  forward: ConvGather,
  carry: ConvGather,
  flip: boolean,
): LayerKind<S> {
  const geometry = (l: S, gather: ConvGather, [src, dst]: readonly [ImageShape, ImageShape]) =>
    packGeometry({
      gather,
      kh: l.kernel[0],
      kw: l.kernel[1],
      stride: l.stride,
      pad: l.padding,
      flip,
      srcH: src[1],
      srcW: src[2],
      dstH: dst[1],
      dstW: dst[2],
    });
  const forwardGeometry = (l: S) => geometry(l, forward, [l.inShape, l.outShape]);
  return {
    name,

    forward(layer: S, io: ForwardIo): Job[] {
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
      const outputs = ['cOff', 'dOff', 'eOff', 'partOff'] as const;
      return perExample(io.rows, first, layer.inDim, layer.outDim, ['aOff', 'fOff'], outputs);
    },

    error(layer: S, io: ErrorIo): Job[] {
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

    /** s·w·(the adjoint of the prediction): per example, rows C_in, k = (C_out, ky, kx), the error's gather. */
    carry(layer: S, io: CarryIo): CarryTerm {
      return {
        k: layer.outShape[0] * layer.kernel[0] * layer.kernel[1],
        aOff: io.error,
        bOff: layer.weightOffset,
        coef: layer.scale * io.weight,
        skip: layer.skip,
        errorStride: layer.outDim,
        geometry: geometry(layer, carry, [layer.outShape, layer.inShape]),
      };
    },

    /** ∂F/∂W = coef·Σ_{b,p} e ⊗ the input's gathered window; ∂F/∂b = coef·Σ_{b,p} e: one job over the batch. */
    paramGrad(layer: S, io: ParamGradIo): Job[] {
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

    outputPlanes(layer: S): Planes {
      return { channels: layer.outShape[0], plane: positions(layer) };
    },

    inputPlanes(layer: S): Planes {
      return { channels: layer.inShape[0], plane: layer.inShape[1] * layer.inShape[2] };
    },

    paramCount(layer: S): number {
      return layer.outShape[0] * taps(layer) + (layer.useBias ? layer.outShape[0] : 0);
    },

    tensors(layer: S): readonly ParamTensor[] {
      const [co, ci] = [layer.outShape[0], layer.inShape[0]];
      const weight: ParamTensor = { role: 'weight', offset: layer.weightOffset, shape: [co, ci, ...layer.kernel] };
      return layer.useBias ? [weight, { role: 'bias', offset: layer.biasOffset, shape: [co] }] : [weight];
    },

    /** Equinox's Conv2d and ConvTranspose2d: W, b ~ U(±1/√(C_in·kh·kw)); μPC draws W ~ N(0, 1). */
    init(layer: S, data: Float32Array, stream: Random, scheme: InitScheme): void {
      const lim = 1 / Math.sqrt(taps(layer));
      const n = layer.outShape[0] * taps(layer);
      const w = layer.weightOffset;
      if (scheme === 'mupc') for (let j = 0; j < n; j++) data[w + j] = stream.normal();
      else for (let j = 0; j < n; j++) data[w + j] = stream.uniform(-lim, lim);
      if (layer.useBias)
        for (let j = 0; j < layer.outShape[0]; j++) data[layer.biasOffset + j] = stream.uniform(-lim, lim);
    },
  };
}

/** Conv2d: the prediction gathers its input (CONV), the carry its error's transpose (CONV_T). */
export const convKind = convolutionKind<ConvLayerSpec>('conv', Gather.CONV, Gather.CONV_T, false);
