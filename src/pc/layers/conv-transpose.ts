/**
 * The transposed-convolution layer kind: Equinox's ConvTranspose2d (weight [C_out, C_in, kh, kw], bias [C_out];
 * stride s, padding p, output padding a: out = (in − 1)·s − 2p + k + a), for generative decoders. Each input
 * position stamps the mirrored kernel, so μ[c, y, x] = s_l·(Σ W[c, c', k−1−ky, k−1−kx]·z[c', (y + p − ky)/s, …]
 * + b[c]) over the exact quotients: the CONV_T gather with the taps flipped. Its carry into its input is the
 * forward convolution's gather (CONV), its weight gradient a reduction over the batch and the output positions;
 * the jobs are conv.ts's `convolutionKind` with these gathers.
 */
import { Gather } from '../../kernels/conv.js';
import { type ImageShape, convolutionKind } from './conv.js';
import type { LayerBase } from './kind.js';

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

export const convTransposeKind = convolutionKind<ConvTransposeLayerSpec>(
  'convTranspose',
  Gather.CONV_T,
  Gather.CONV,
  true,
);
