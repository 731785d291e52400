/**
 * The dense layer kind: JPC's `[φ → Linear]`, f(x) = W·x + b with W stored `[out, in]` row-major as in
 * Equinox, the bias optional. Its work runs in the grouped layer-matmul kernels (kernels/layer-matmul.wgsl
 * with the forward, activity-gradient and parameter-gradient epilogues).
 */
import type { Job } from '../../kernels/structs.js';
import { JobFlag } from '../../kernels/layer-matmul.js';
import type { Random } from '../../util/random.js';
import type { CarryTerm } from '../layer-jobs.js';
import type {
  CarryIo,
  ErrorIo,
  ForwardIo,
  FusedLayer,
  InitScheme,
  LayerBase,
  LayerKind,
  ParamGradIo,
  ParamTensor,
} from './kind.js';

export interface DenseLayerSpec extends LayerBase<'dense'> {
  readonly useBias: boolean;
  /** Offsets (in f32 elements) of W_l and b_l in the parameter buffer; `biasOffset` is -1 without bias. */
  readonly weightOffset: number;
  readonly biasOffset: number;
}

/** Dense layers for activity widths `dims`, their parameters back to back from `at` (W_l, then b_l). */
export function denseLayers(
  dims: readonly number[],
  useBias: boolean,
  scales: readonly number[],
  skips: readonly boolean[],
  at = 0,
): DenseLayerSpec[] {
  const layers: DenseLayerSpec[] = [];
  for (let l = 0; l + 1 < dims.length; l++) {
    const inDim = dims[l]!;
    const outDim = dims[l + 1]!;
    const weightOffset = at;
    at += inDim * outDim;
    const biasOffset = useBias ? at : -1;
    if (useBias) at += outDim;
    layers.push({
      kind: 'dense',
      inDim,
      outDim,
      useBias,
      weightOffset,
      biasOffset,
      scale: scales[l]!,
      skip: skips[l] ?? false,
    });
  }
  return layers;
}

const biasFlag = (layer: DenseLayerSpec): number => (layer.useBias ? JobFlag.BIAS : 0);

export const denseKind: LayerKind<DenseLayerSpec> = {
  name: 'dense',

  /** forward.wgsl, FORWARD: z = s·(W·input + b) [+ residual] [+ ε]. */
  forward(layer: DenseLayerSpec, io: ForwardIo): Job[] {
    return [
      {
        m: io.rows,
        n: layer.outDim,
        k: layer.inDim,
        aOff: io.input,
        bOff: layer.weightOffset,
        cOff: io.output,
        dOff: io.phi ?? 0,
        eOff: io.prediction ?? 0,
        fOff: io.residualFrom ?? 0,
        biasOff: Math.max(0, layer.biasOffset),
        partOff: io.addError ?? 0,
        flags:
          biasFlag(layer) |
          (io.phi !== undefined ? JobFlag.WRITE_PHI : 0) |
          (io.prediction !== undefined ? JobFlag.WRITE_PRED : 0) |
          (io.residualFrom !== undefined ? JobFlag.SKIP : 0) |
          (io.addError !== undefined ? JobFlag.ADD_ERR : 0),
        coef0: layer.scale,
      },
    ];
  },

  /** forward.wgsl, ERRORS: e = target − s·(W·input + b) [− residual]. */
  error(layer: DenseLayerSpec, io: ErrorIo): Job[] {
    const fixed = io.fixedPrediction !== undefined;
    return [
      {
        m: io.rows,
        n: layer.outDim,
        k: fixed ? 0 : layer.inDim,
        aOff: fixed ? 0 : io.input,
        bOff: layer.weightOffset,
        cOff: io.error,
        dOff: io.target,
        eOff: io.fixedPrediction ?? 0,
        fOff: io.residualFrom ?? 0,
        biasOff: Math.max(0, layer.biasOffset),
        partOff: io.part,
        flags:
          biasFlag(layer) |
          (fixed ? JobFlag.FIRST : 0) |
          (io.output ? JobFlag.OUTPUT : 0) |
          (io.logits ? JobFlag.LOGITS : 0) |
          (io.residualFrom !== undefined ? JobFlag.SKIP : 0),
        coef0: layer.scale,
      },
    ];
  },

  /** s·w·(e W): the error's product with W (activity-grad.wgsl), and w·e itself through a residual. */
  carry(layer: DenseLayerSpec, io: CarryIo): CarryTerm {
    return {
      k: layer.outDim,
      aOff: io.error,
      bOff: layer.weightOffset,
      coef: layer.scale * io.weight,
      skip: layer.skip,
    };
  },

  /** param-grad.wgsl: ∂F/∂W = coef·eᵀ·input, ∂F/∂b = coef·Σ_b e. */
  paramGrad(layer: DenseLayerSpec, io: ParamGradIo): Job[] {
    return [
      {
        m: layer.outDim,
        n: layer.inDim,
        k: io.rows,
        aOff: io.error,
        bOff: io.input,
        cOff: layer.weightOffset,
        dOff: Math.max(0, layer.biasOffset),
        flags: biasFlag(layer),
        coef0: io.coef,
      },
    ];
  },

  paramCount(layer: DenseLayerSpec): number {
    return layer.inDim * layer.outDim + (layer.useBias ? layer.outDim : 0);
  },

  tensors(layer: DenseLayerSpec): readonly ParamTensor[] {
    const weight: ParamTensor = { role: 'weight', offset: layer.weightOffset, shape: [layer.outDim, layer.inDim] };
    return layer.useBias ? [weight, { role: 'bias', offset: layer.biasOffset, shape: [layer.outDim] }] : [weight];
  },

  /** Equinox's Linear: W, b ~ U(±1/√in); μPC draws W ~ N(0, 1) (its scaling s_l does the rest). */
  init(layer: DenseLayerSpec, data: Float32Array, stream: Random, scheme: InitScheme): void {
    const lim = 1 / Math.sqrt(layer.inDim);
    const n = layer.inDim * layer.outDim;
    const w = layer.weightOffset;
    if (scheme === 'mupc') for (let j = 0; j < n; j++) data[w + j] = stream.normal();
    else for (let j = 0; j < n; j++) data[w + j] = stream.uniform(-lim, lim);
    if (layer.useBias) for (let j = 0; j < layer.outDim; j++) data[layer.biasOffset + j] = stream.uniform(-lim, lim);
  },

  fused(layer: DenseLayerSpec): FusedLayer {
    const { inDim, outDim, scale } = layer;
    return {
      inDim,
      outDim,
      wOff: layer.weightOffset,
      bOff: Math.max(0, layer.biasOffset),
      hasBias: layer.useBias,
      scale,
    };
  },
};
