/**
 * The geometry of convolution-shaped jobs (kernels/conv-gather.wgsl): which gather a job's B operand (or, for a
 * pooling, its value) takes, and the shapes it reads. Packed into struct Job's four geo words.
 */

/** Gathers (GATHER_* in conv-gather.wgsl). */
export const Gather = { NONE: 0, CONV: 1, CONV_T: 2, AVG_POOL: 3, AVG_POOL_T: 4, MAX_POOL: 5, MAX_POOL_T: 6 } as const;
type GatherId = (typeof Gather)[keyof typeof Gather];

/** A job's convolution geometry: the gathered tensor's planes (src) and the output's (dst). */
interface Geometry {
  gather: GatherId;
  kh: number;
  kw: number;
  stride: number;
  pad: number;
  /** The kernel's taps read mirrored (a transposed convolution's, as Equinox stamps the flipped kernel). */
  flip?: boolean;
  srcH: number;
  srcW: number;
  dstH: number;
  dstW: number;
}

/** Largest kernel side and stride the geometry words hold. */
export const MAX_KERNEL = 255;
/** Largest plane side they hold. */
export const MAX_SIDE = 65535;

/** The four geo words of a job with geometry `g`. */
export function packGeometry(g: Geometry): { geo0: number; geo1: number; geo2: number; geo3: number } {
  const small = [g.kh, g.kw, g.stride];
  const sides = [g.srcH, g.srcW, g.dstH, g.dstW];
  if (small.some((v) => !Number.isInteger(v) || v < 1 || v > MAX_KERNEL) || g.pad < 0 || g.pad > MAX_KERNEL)
    throw new RangeError(`packGeometry: kernel ${g.kh}×${g.kw}, stride ${g.stride}, padding ${g.pad} out of range`);
  if (sides.some((v) => !Number.isInteger(v) || v < 1 || v > MAX_SIDE))
    throw new RangeError(`packGeometry: planes ${g.srcH}×${g.srcW} → ${g.dstH}×${g.dstW} out of range`);
  return {
    geo0: (g.gather | (g.kh << 8) | (g.kw << 16) | (g.stride << 24)) >>> 0,
    geo1: (g.pad | (g.flip ? 1 << 16 : 0)) >>> 0,
    geo2: (g.srcH | (g.srcW << 16)) >>> 0,
    geo3: (g.dstH | (g.dstW << 16)) >>> 0,
  };
}
