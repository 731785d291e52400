// Convolution-shaped jobs of the grouped layer kernels (compiled in with CONV): the operand of a convolution,
// of its transpose or of a pooling, read straight from an activity by index arithmetic (an implicit GEMM: no
// im2col is ever written). A job of one example computes an output plane set [rows = channels, cols = positions
// y·dst_w + x], NCHW as the activities are stored. The including file provides ld(i) (a work element).
//
// Geometry (struct Job's geo words, packed by packGeometry in kernels/conv.ts):
//   geo0 = gather | kh << 8 | kw << 16 | stride << 24      geo1 = padding (each side) | flip << 16
//   geo2 = src_h | src_w << 16 (the gathered tensor's planes)      geo3 = dst_h | dst_w << 16 (the output's)
// Gathers (kk runs over (channel, ky, kx) of the source, row-major as Equinox stores a kernel's [in, kh, kw]):
//   CONV       src[c, y·s + ky − p, x·s + kx − p]                  (a convolution's input; zero outside)
//   CONV_T     src[c, (y + p − ky)/s, (x + p − kx)/s] where exact   (the adjoint: a convolution's output error)
//   AVG_POOL   mean over the window at (y·s, x·s) of plane `row`     (k = 0: the value replaces the product)
//   AVG_POOL_T Σ over the windows holding (y, x) of src/(kh·kw)     (the average pooling's adjoint)
//   MAX_POOL   the window's maximum (its first, row-major, on ties: jax's select-and-scatter); the errors pass
//              also stores where it was (the position in the plane, as f32) for the adjoint
//   MAX_POOL_T Σ over the windows holding (y, x) whose stored maximum is (y, x) of src   (the adjoint)
// flip: the kernel's taps are read reversed against the gather's (Equinox's ConvTranspose2d stamps the flipped
// kernel): kernel files apply it to the weight index, the weight gradient to the gather's tap.

const GATHER_NONE: u32 = 0u;
const GATHER_CONV: u32 = 1u;
const GATHER_CONV_T: u32 = 2u;
const GATHER_AVG_POOL: u32 = 3u;
const GATHER_AVG_POOL_T: u32 = 4u;
const GATHER_MAX_POOL: u32 = 5u;
const GATHER_MAX_POOL_T: u32 = 6u;

struct Geometry {
  gather: u32,
  kh: u32,
  kw: u32,
  stride: u32,
  pad: u32,
  flip: bool,
  src_h: u32,
  src_w: u32,
  dst_h: u32,
  dst_w: u32,
}

fn geometry(job: Job) -> Geometry {
  return Geometry(job.geo0 & 255u, (job.geo0 >> 8u) & 255u, (job.geo0 >> 16u) & 255u, job.geo0 >> 24u,
                  job.geo1 & 65535u, (job.geo1 >> 16u) != 0u,
                  job.geo2 & 65535u, job.geo2 >> 16u, job.geo3 & 65535u, job.geo3 >> 16u);
}

// Tap r = ky·kw + kx of the kernel, or its mirror (kh−1−ky, kw−1−kx) when `flip`.
fn tap(g: Geometry, r: u32, flip: bool) -> u32 {
  return select(r, g.kh * g.kw - 1u - r, flip);
}

// a / d without an integer division: lavapipe turns a lane-varying u32 division into one scalar division per lane,
// which made the gathers' index arithmetic cost more than their loads and multiplies. The f32 quotient is within
// a / 2^23 + 1 of the true one (a weight gradient's k = B·positions may pass 2^24); the remainder's own f32
// quotient brings it within one, and a compare corrects that.
fn div_u(a: u32, d: u32) -> u32 {
  var q = u32(f32(a) / f32(d));
  var r = bitcast<i32>(a - q * d);
  q = bitcast<u32>(bitcast<i32>(q) + i32(floor(f32(r) / f32(d))));
  r = bitcast<i32>(a - q * d);
  if (r < 0) { q -= 1u; } else if (u32(r) >= d) { q += 1u; }
  return q;
}

fn gather_of(job: Job) -> u32 {
  return job.geo0 & 255u;
}

// The source element of a convolution's input (CONV) or of its output's error (CONV_T) for column `col` of the
// output plane and step kk = (c, ky, kx) of the product (its tap mirrored with `flip_taps`); 0 where the window
// leaves the source.
fn conv_gather(g: Geometry, base: u32, kk: u32, col: u32, flip_taps: bool) -> f32 {
  let taps = g.kh * g.kw;
  let c = div_u(kk, taps);
  let r = tap(g, kk - c * taps, flip_taps);
  let ky = div_u(r, g.kw);
  let kx = r - ky * g.kw;
  let y = div_u(col, g.dst_w);
  let x = col - y * g.dst_w;
  var sy: i32;
  var sx: i32;
  if (g.gather == GATHER_CONV) {
    sy = i32(y * g.stride + ky) - i32(g.pad);
    sx = i32(x * g.stride + kx) - i32(g.pad);
  } else {
    let ny = i32(y + g.pad) - i32(ky);
    let nx = i32(x + g.pad) - i32(kx);
    if (ny < 0 || nx < 0) { return 0.0; }
    let qy = div_u(u32(ny), g.stride);
    let qx = div_u(u32(nx), g.stride);
    if (qy * g.stride != u32(ny) || qx * g.stride != u32(nx)) { return 0.0; }
    sy = i32(qy);
    sx = i32(qx);
  }
  if (sy < 0 || sx < 0 || u32(sy) >= g.src_h || u32(sx) >= g.src_w) { return 0.0; }
  return ld(base + (c * g.src_h + u32(sy)) * g.src_w + u32(sx));
}

// A pooling's value at (row = channel, col = output position): the window mean (AVG_POOL), or the adjoints' sum
// over the windows holding the position (AVG_POOL_T; MAX_POOL_T with the stored maxima at `maxima`).
fn pool_gather(g: Geometry, base: u32, maxima: u32, row: u32, col: u32) -> f32 {
  let y = div_u(col, g.dst_w);
  let x = col - y * g.dst_w;
  let plane = base + row * g.src_h * g.src_w;
  var sum = 0.0;
  for (var ky = 0u; ky < g.kh; ky++) {
    for (var kx = 0u; kx < g.kw; kx++) {
      if (g.gather == GATHER_AVG_POOL) {
        sum += ld(plane + (y * g.stride + ky) * g.src_w + x * g.stride + kx);
      } else if (y >= ky && x >= kx) {
        let sy = div_u(y - ky, g.stride);
        let sx = div_u(x - kx, g.stride);
        if (sy * g.stride == y - ky && sx * g.stride == x - kx && sy < g.src_h && sx < g.src_w) {
          let at = row * g.src_h * g.src_w + sy * g.src_w + sx;
          if (g.gather == GATHER_AVG_POOL_T) {
            sum += ld(base + at);
          } else if (ld(maxima + at) == f32(col)) {
            sum += ld(base + at);
          }
        }
      }
    }
  }
  return select(sum, sum / f32(g.kh * g.kw), g.gather != GATHER_MAX_POOL_T);
}

// The maximum of the window at output position `col` of plane `row`, and where it is in the input plane (the
// first maximal element in row-major order).
fn max_pool(g: Geometry, base: u32, row: u32, col: u32) -> vec2<f32> {
  let y = div_u(col, g.dst_w);
  let x = col - y * g.dst_w;
  let plane = base + row * g.src_h * g.src_w;
  var best = ld(plane + y * g.stride * g.src_w + x * g.stride);
  var at = y * g.stride * g.src_w + x * g.stride;
  for (var ky = 0u; ky < g.kh; ky++) {
    for (var kx = 0u; kx < g.kw; kx++) {
      let i = (y * g.stride + ky) * g.src_w + x * g.stride + kx;
      let v = ld(plane + i);
      if (v > best) {
        best = v;
        at = i;
      }
    }
  }
  return vec2<f32>(best, f32(at));
}

// The value a pooling job's epilogue takes in place of the product (acc for every other job); a MAX_POOL_T job
// reads the stored maxima at b.
fn gathered(job: Job, row: u32, col: u32, acc: f32) -> f32 {
  let g = geometry(job);
  switch g.gather {
    case GATHER_AVG_POOL, GATHER_AVG_POOL_T, GATHER_MAX_POOL_T: { return pool_gather(g, job.a_off, job.b_off, row, col); }
    case GATHER_MAX_POOL: { return max_pool(g, job.a_off, row, col).x; }
    default: { return acc; }
  }
}
