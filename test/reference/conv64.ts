/**
 * conv64 — an independent float64 CPU reference of predictive-coding networks with convolutional layers (JPC's
 * limits-paper CNN and the layer kinds of issue 24), the test suite's oracle for the conv kernels. Longer than 500
 * lines: one readable loop nest per operator and per adjoint, which the GPU kernels are judged by, kept in one file
 * with the energy that uses them. Nothing here imports from src/ except the seeded generator; matrices,
 * activations, losses and the ODE integrators come from jpc64.ts (pass `pcVectorField` to its `integrateHeunPid`
 * or `integrateConstant`).
 *
 * What was verified, and where
 * - JPC's CNN (thebuckleylab/jpc HEAD 7d6cc05, experiments/limits_paper/cnn/model.py): every element of
 *   `ResNet.layers` is one PC layer, applied per example (`vmap`) to [C, H, W] activities. `ScaledConv2d` =
 *   scaling · Conv2d(x), bias inside, so the scaling multiplies the bias too; `ResNetBlock` = scaled_conv(act(x))
 *   + x; `AvgPool2d(2, 2)` is a PC layer of its own (no parameters); `Readout` = scaling · Linear(jnp.ravel(x)),
 *   i.e. NCHW flattening. μPC: weights N(0,1)·weight_std_scale, bias left uniform, scaling = gain/√(C_in·k²) ·
 *   depth_scaling with gain = torch's calculate_gain(act_fn) (1 for 'linear'); depth_scaling =
 *   1/√(n_res_blocks + additive) for the residual blocks; the readout's scaling is non_res_depth_scaling /
 *   in_features (no square root).
 * - JPC's energy (jpc/_core/_energies.py, pc_energy_fn; /work/shared/spec/jpc-semantics.md): sums every non-batch
 *   element, divides by B; ce is −Σ y·log_softmax(logits) with jax's default axis=-1, so for an image-shaped output
 *   the softmax runs along W (the last axis); for a vector output, along the row.
 * - Equinox (patrick-kidger/equinox HEAD 9336d82, equinox/nn/_conv.py): Conv2d calls lax.conv_general_dilated with
 *   default dimension numbers (jax/_src/lax/convolution.py: None → iota, i.e. NCHW / OIHW / NCHW), window strides
 *   = stride, padding ((p, p), (p, p)). jax lowers it with window_reversal all False (convolution.py), and the
 *   StableHLO spec's convolution is then a dot product of each input window with the kernel: a cross-correlation,
 *   no kernel flip:
 *       y[o, u, v] = Σ_{c,i,j} W[o, c, i, j] · x[c, u·s + i − p, v·s + j − p]  (+ b[o]),  H_out = ⌊(H + 2p − k)/s⌋ + 1.
 *   Weight and bias both ~ U(±1/√(C_in·k²)) (`default_init`, lim = 1/√(in_channels·prod(kernel_size))).
 * - Equinox ConvTranspose2d (same file): weight shape (out_channels, in_channels, kh, kw) — the SAME OIHW layout as
 *   Conv2d, init lim = 1/√(in_channels·k²) with its own in_channels; output_padding a < stride is required. It calls
 *   lax.conv_general_dilated(x, W, window_strides 1, padding (D, D + a) with D = k − 1 − p, lhs_dilation = stride):
 *   the input is dilated by s, padded by D before and D + a after, and cross-correlated with W, unflipped:
 *       y[o, u, v] = Σ_{c,i,j} W[o, c, i, j] · x[c, qy, qx]  where u + i − D = qy·s and v + j − D = qx·s,
 *       H_out = (H − 1)·s − 2p + k + a.
 *   So each input pixel stamps the FLIPPED kernel (PyTorch's ConvTranspose2d stamps it unflipped, with layout
 *   [C_in, C_out, k, k]); Equinox's docstring FAQ says it: the exact transpose of a Conv with weight V is a
 *   ConvTranspose with weight flip(V, spatial).swapaxes(0, 1). conv64.test.ts checks that identity.
 * - Equinox pooling (equinox/nn/_pool.py): AvgPool2d = lax.reduce_window(add) / prod(kernel) (padding counts, but
 *   we take no padding); MaxPool2d = reduce_window(max, init −inf). Equinox's default stride is 1, not the kernel
 *   size: JPC's CNN passes stride=2 explicitly; `avgPoolOp`/`maxPoolOp` below default to the kernel size, as the
 *   issue asks — state the stride when comparing with Equinox.
 * - The max-pool derivative (jax-ml/jax HEAD cec06d1, jax/_src/lax/windowed_reductions.py): reduce_window(max,
 *   −inf) is the monoid reducer `_reduce_window_max`; its JVP is select_and_gather_add with select = ge_p, whose
 *   transpose (what jax.grad runs) is select_and_scatter_add with ge_p. StableHLO's reference interpreter
 *   (openxla/stablehlo HEAD 3c9301c, stablehlo/reference/Ops.cpp, selectAndScatterOp) walks each window in
 *   row-major order and replaces its pick only when select(pick, candidate) is false: with GE a tie keeps the
 *   earlier element. So the gradient goes, whole, to the FIRST maximal element of each window in row-major (i, j)
 *   order (unlike jnp.max's gradient, which splits ties). Overlapping windows (stride < k) add their contributions.
 *
 * The model (types below)
 * - A network is layers l = 1..L (`layers[l − 1]`), each with an activity z_l of shape [C, H, W] or [N], stored as
 *   a Mat with one row per example, NCHW flattened. z_0 = x (supervised, clamped) or a free activity (unsupervised).
 * - Layer l predicts  μ_l = s_l · (op_l(a_l(z_{l−1})) + b_l) [+ z_{l−1} if skip_l]:  a_l is the layer's input
 *   activation (jpc64's `Act`), op_l one of dense / conv / convTranspose / avgPool / maxPool. JPC's rule for MLPs (the
 *   first layer sees the raw input) is the caller's choice of `act` per layer.
 * - Energy, as jpc64 and variants64: F = Σ_l w_l E_l / B with E_l = ½Σ_b‖z_l − μ_l‖² for l < L, w_l = 1, and the
 *   output term E_L = ½Σ_b‖y − μ_L‖² (mse) or −Σ_b y·log_softmax(μ_L) (ce), w_L = λ (`output_energy_scaling`).
 *   Supervised activities are [z_1 … z_L], unsupervised [z_0 … z_L]; z_L is JPC's dummy (never read, gradient 0).
 *   Unlike JPC's MLP energy, the first layer keeps its scaling in unsupervised mode (variants64 does the same; in
 *   JPC's CNN the scaling lives inside the module, so JPC keeps it there too).
 * - The error of layer l is g_l = −∂E_l/∂μ_l: z_l − μ_l (hidden), y − μ_L (mse), y − softmax(μ_L)·Σy per softmax
 *   group (ce). With vjp_l(z, g) = s_l·a_l'(z) ⊙ op_lᵀ(g) [+ g if skip_l]:
 *       ∂F/∂z_k = ([1 ≤ k ≤ L−1] g_k − w_{k+1}·vjp_{k+1}(z_k, g_{k+1})) / B,   ∂F/∂z_L = 0,
 *       ∂F/∂θ_l = −(w_l s_l / B) · ∂⟨g_l, op_l(a_l(z_{l−1})) + b_l⟩/∂θ_l.
 *   op_lᵀ is written by hand for every kind (for max pooling it is the Jacobian's transpose at a_l(z_{l−1})).
 * - Kernels are square, strides and paddings equal in both directions (as JPC's CNN and the API).
 */
import type { Random } from '../../src/util/random.js';
import {
  act,
  actDeriv,
  mat,
  randomNormalMat,
  randomUniformMat,
  type Act,
  type Loss,
  type Mat,
  type VectorField,
} from './jpc64.js';

// ─────────────────────────────────────────── shapes ───────────────────────────────────────────

/** One example's shape: [C, H, W] for images and feature maps, [N] for vectors. */
export type TensorShape = readonly [number] | readonly [number, number, number];
/** The shape of an image or feature map, [C, H, W]. */
export type ImageShape = readonly [number, number, number];

export function shapeSize(s: TensorShape): number {
  return s.reduce((a, b) => a * b, 1);
}

function sameShape(a: TensorShape, b: TensorShape): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function image(s: TensorShape, what: string): ImageShape {
  if (s.length !== 3) throw new RangeError(`${what} needs a [C, H, W] input, got [${s.join(', ')}]`);
  return s;
}

/** Conv2d's output length along one axis: ⌊(n + 2p − k)/s⌋ + 1. */
export function convOutSize(n: number, kernel: number, stride: number, padding: number): number {
  return Math.floor((n + 2 * padding - kernel) / stride) + 1;
}

/** ConvTranspose2d's output length along one axis: (n − 1)·s − 2p + k + a. */
export function convTransposeOutSize(
  n: number,
  kernel: number,
  stride: number,
  padding: number,
  outPad: number,
): number {
  return (n - 1) * stride - 2 * padding + kernel + outPad;
}

/** A pool's output length along one axis (no padding): ⌊(n − k)/s⌋ + 1. */
export function poolOutSize(n: number, kernel: number, stride: number): number {
  return Math.floor((n - kernel) / stride) + 1;
}

// ─────────────────────────────────────────── layer kinds ───────────────────────────────────────────

export interface DenseOp {
  kind: 'dense';
  /** Output shape; a [C, H, W] output is a Linear followed by a reshape (e.g. the first layer of a decoder). */
  out: TensorShape;
}
export interface ConvOp {
  kind: 'conv';
  outChannels: number;
  kernel: number;
  stride: number;
  padding: number;
}
export interface ConvTransposeOp {
  kind: 'convTranspose';
  outChannels: number;
  kernel: number;
  stride: number;
  padding: number;
  /** Extra rows/columns at the bottom/right (Equinox: must be < stride). */
  outputPadding: number;
}
export interface PoolOp {
  kind: 'avgPool' | 'maxPool';
  kernel: number;
  stride: number;
}
export type LayerOp = DenseOp | ConvOp | ConvTransposeOp | PoolOp;

export function denseOp(out: number | TensorShape): DenseOp {
  return { kind: 'dense', out: typeof out === 'number' ? [out] : out };
}

export function convOp(outChannels: number, kernel: number, opts: { stride?: number; padding?: number } = {}): ConvOp {
  return { kind: 'conv', outChannels, kernel, stride: opts.stride ?? 1, padding: opts.padding ?? 0 };
}

export function convTransposeOp(
  outChannels: number,
  kernel: number,
  opts: { stride?: number; padding?: number; outputPadding?: number } = {},
): ConvTransposeOp {
  const o = { stride: 1, padding: 0, outputPadding: 0, ...opts };
  return { kind: 'convTranspose', outChannels, kernel, ...o };
}

/** Average pooling; the stride defaults to the kernel size (Equinox's default is 1). */
export function avgPoolOp(kernel: number, stride = kernel): PoolOp {
  return { kind: 'avgPool', kernel, stride };
}

/** Max pooling; the stride defaults to the kernel size (Equinox's default is 1). */
export function maxPoolOp(kernel: number, stride = kernel): PoolOp {
  return { kind: 'maxPool', kernel, stride };
}

/** The output shape of `op` on inputs of shape `inShape`; throws on a shape or an option the op cannot take. */
export function opOutputShape(op: LayerOp, inShape: TensorShape): TensorShape {
  const need = (ok: boolean, what: string) => {
    if (!ok) throw new RangeError(`${op.kind}: ${what}`);
  };
  const positive = (v: number, name: string) => need(Number.isInteger(v) && v >= 1, `${name} must be >= 1, got ${v}`);
  let out: TensorShape;
  if (op.kind === 'dense') {
    out = op.out;
  } else if (op.kind === 'conv' || op.kind === 'convTranspose') {
    const [, H, W] = image(inShape, op.kind);
    positive(op.outChannels, 'outChannels');
    positive(op.kernel, 'kernel');
    positive(op.stride, 'stride');
    need(Number.isInteger(op.padding) && op.padding >= 0, `padding must be >= 0, got ${op.padding}`);
    if (op.kind === 'conv') {
      const size = (n: number) => convOutSize(n, op.kernel, op.stride, op.padding);
      out = [op.outChannels, size(H), size(W)];
    } else {
      const a = op.outputPadding;
      need(Number.isInteger(a) && a >= 0 && a < op.stride, `outputPadding must be in [0, stride), got ${a}`);
      const size = (n: number) => convTransposeOutSize(n, op.kernel, op.stride, op.padding, a);
      out = [op.outChannels, size(H), size(W)];
    }
  } else {
    const [C, H, W] = image(inShape, op.kind);
    positive(op.kernel, 'kernel');
    positive(op.stride, 'stride');
    out = [C, poolOutSize(H, op.kernel, op.stride), poolOutSize(W, op.kernel, op.stride)];
  }
  need(
    out.every((v) => Number.isInteger(v) && v >= 1),
    `empty or invalid output shape [${out.join(', ')}] from input [${inShape.join(', ')}]`,
  );
  return out;
}

/** The weight's shape as a Mat, [rows, cols], or null for the parameter-free pools. */
export function weightShape(op: LayerOp, inShape: TensorShape): readonly [number, number] | null {
  switch (op.kind) {
    case 'dense':
      return [shapeSize(op.out), shapeSize(inShape)];
    case 'conv':
    case 'convTranspose':
      // [C_out, C_in, k, k] flattened to rows = C_out, cols = C_in·k·k (Equinox's OIHW, for both kinds)
      return [op.outChannels, image(inShape, op.kind)[0] * op.kernel * op.kernel];
    default:
      return null;
  }
}

/** Equinox's init bound 1/√fan_in: fan_in = input size (dense), C_in·k² (conv and convTranspose). */
export function initBound(op: LayerOp, inShape: TensorShape): number {
  const ws = weightShape(op, inShape);
  if (ws === null) throw new RangeError(`${op.kind} has no parameters`);
  return 1 / Math.sqrt(ws[1]);
}

// ─────────────────────────────────────── operators and adjoints ───────────────────────────────────────
// Every operator works on a batch (one row per example, NCHW flattened) and leaves the bias and scaling to the
// layer. The adjoints are written as gathers: each output element of the adjoint sums the terms that reach it.

/** The row-major index of (c, y, x) in a [C, H, W] example. */
function at(s: ImageShape, c: number, y: number, x: number): number {
  return (c * s[1] + y) * s[2] + x;
}

/** The weight index of (o, c, i, j) in an OIHW weight with C_in channels and kernel k. */
function wAt(cin: number, k: number, o: number, c: number, i: number, j: number): number {
  return ((o * cin + c) * k + i) * k + j;
}

function checkBatch(x: Mat, size: number, what: string): void {
  if (x.cols !== size) throw new RangeError(`${what}: expected ${size} values per example, got ${x.cols}`);
}

/** Dense: y_b = W·x_b, W of shape [out, in]. */
export function denseForward(x: Mat, w: Mat): Mat {
  checkBatch(x, w.cols, 'denseForward');
  const y = mat(x.rows, w.rows);
  for (let b = 0; b < x.rows; b++)
    for (let o = 0; o < w.rows; o++) {
      let acc = 0;
      for (let i = 0; i < w.cols; i++) acc += w.data[o * w.cols + i]! * x.data[b * w.cols + i]!;
      y.data[b * w.rows + o] = acc;
    }
  return y;
}

/** Dense adjoint: dx_b = Wᵀ·g_b. */
export function denseInputVjp(g: Mat, w: Mat): Mat {
  checkBatch(g, w.rows, 'denseInputVjp');
  const dx = mat(g.rows, w.cols);
  for (let b = 0; b < g.rows; b++)
    for (let i = 0; i < w.cols; i++) {
      let acc = 0;
      for (let o = 0; o < w.rows; o++) acc += w.data[o * w.cols + i]! * g.data[b * w.rows + o]!;
      dx.data[b * w.cols + i] = acc;
    }
  return dx;
}

/** Dense weight gradient of Σ_b ⟨g_b, W x_b⟩: Σ_b g_b ⊗ x_b, shape [out, in]. */
export function denseWeightGrad(x: Mat, g: Mat): Mat {
  const dw = mat(g.cols, x.cols);
  for (let o = 0; o < g.cols; o++)
    for (let i = 0; i < x.cols; i++) {
      let acc = 0;
      for (let b = 0; b < x.rows; b++) acc += g.data[b * g.cols + o]! * x.data[b * x.cols + i]!;
      dw.data[o * x.cols + i] = acc;
    }
  return dw;
}

/** Equinox Conv2d without bias: y[o,u,v] = Σ_{c,i,j} W[o,c,i,j]·x[c, u·s+i−p, v·s+j−p] (zero outside). */
export function conv2d(x: Mat, inShape: ImageShape, w: Mat, op: ConvOp): Mat {
  const os = opOutputShape(op, inShape) as ImageShape;
  const [C, H, W] = inShape;
  const { kernel: k, stride: s, padding: p } = op;
  checkBatch(x, shapeSize(inShape), 'conv2d');
  const y = mat(x.rows, shapeSize(os));
  for (let b = 0; b < x.rows; b++) {
    const xb = b * x.cols;
    for (let o = 0; o < os[0]; o++)
      for (let u = 0; u < os[1]; u++)
        for (let v = 0; v < os[2]; v++) {
          let acc = 0;
          for (let c = 0; c < C; c++)
            for (let i = 0; i < k; i++) {
              const iy = u * s + i - p;
              if (iy < 0 || iy >= H) continue;
              for (let j = 0; j < k; j++) {
                const ix = v * s + j - p;
                if (ix < 0 || ix >= W) continue;
                acc += w.data[wAt(C, k, o, c, i, j)]! * x.data[xb + at(inShape, c, iy, ix)]!;
              }
            }
          y.data[b * y.cols + at(os, o, u, v)] = acc;
        }
  }
  return y;
}

/**
 * Conv2d's adjoint in its input (the transposed convolution, as a gather): input pixel (c, y, x) collects
 * W[o,c,i,j]·g[o,u,v] over every output (u, v) whose window put tap (i, j) on it, i.e. u·s = y + p − i.
 */
export function conv2dInputVjp(g: Mat, inShape: ImageShape, w: Mat, op: ConvOp): Mat {
  const os = opOutputShape(op, inShape) as ImageShape;
  const [C, H, W] = inShape;
  const { kernel: k, stride: s, padding: p } = op;
  checkBatch(g, shapeSize(os), 'conv2dInputVjp');
  const dx = mat(g.rows, shapeSize(inShape));
  for (let b = 0; b < g.rows; b++) {
    const gb = b * g.cols;
    for (let c = 0; c < C; c++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) {
          let acc = 0;
          for (let i = 0; i < k; i++) {
            const u = strided(y + p - i, s, os[1]);
            if (u < 0) continue;
            for (let j = 0; j < k; j++) {
              const v = strided(x + p - j, s, os[2]);
              if (v < 0) continue;
              for (let o = 0; o < os[0]; o++) acc += w.data[wAt(C, k, o, c, i, j)]! * g.data[gb + at(os, o, u, v)]!;
            }
          }
          dx.data[b * dx.cols + at(inShape, c, y, x)] = acc;
        }
  }
  return dx;
}

/** Conv2d's weight gradient of Σ_b ⟨g_b, conv(x_b)⟩: dW[o,c,i,j] = Σ_{b,u,v} g[b,o,u,v]·x[b, c, u·s+i−p, v·s+j−p]. */
export function conv2dWeightGrad(x: Mat, g: Mat, inShape: ImageShape, op: ConvOp): Mat {
  const os = opOutputShape(op, inShape) as ImageShape;
  const [C, H, W] = inShape;
  const { kernel: k, stride: s, padding: p } = op;
  const dw = mat(op.outChannels, C * k * k);
  for (let o = 0; o < os[0]; o++)
    for (let c = 0; c < C; c++)
      for (let i = 0; i < k; i++)
        for (let j = 0; j < k; j++) {
          let acc = 0;
          for (let b = 0; b < x.rows; b++)
            for (let u = 0; u < os[1]; u++) {
              const iy = u * s + i - p;
              if (iy < 0 || iy >= H) continue;
              for (let v = 0; v < os[2]; v++) {
                const ix = v * s + j - p;
                if (ix < 0 || ix >= W) continue;
                acc += g.data[b * g.cols + at(os, o, u, v)]! * x.data[b * x.cols + at(inShape, c, iy, ix)]!;
              }
            }
          dw.data[wAt(C, k, o, c, i, j)] = acc;
        }
  return dw;
}

/** t/s when t is a non-negative multiple of s and t/s < n, else −1. */
function strided(t: number, s: number, n: number): number {
  if (t < 0 || t % s !== 0) return -1;
  const q = t / s;
  return q < n ? q : -1;
}

/**
 * Equinox ConvTranspose2d without bias (the lax call: input dilated by s, padded by D = k−1−p before, cross-
 * correlated with W unflipped): y[o,u,v] = Σ_{c,i,j} W[o,c,i,j]·x[c,qy,qx] where u+i−D = qy·s, v+j−D = qx·s.
 */
export function convTranspose2d(x: Mat, inShape: ImageShape, w: Mat, op: ConvTransposeOp): Mat {
  const os = opOutputShape(op, inShape) as ImageShape;
  const [C, H, W] = inShape;
  const { kernel: k, stride: s } = op;
  const D = k - 1 - op.padding;
  checkBatch(x, shapeSize(inShape), 'convTranspose2d');
  const y = mat(x.rows, shapeSize(os));
  for (let b = 0; b < x.rows; b++) {
    const xb = b * x.cols;
    for (let o = 0; o < os[0]; o++)
      for (let u = 0; u < os[1]; u++)
        for (let v = 0; v < os[2]; v++) {
          let acc = 0;
          for (let i = 0; i < k; i++) {
            const qy = strided(u + i - D, s, H);
            if (qy < 0) continue;
            for (let j = 0; j < k; j++) {
              const qx = strided(v + j - D, s, W);
              if (qx < 0) continue;
              for (let c = 0; c < C; c++) acc += w.data[wAt(C, k, o, c, i, j)]! * x.data[xb + at(inShape, c, qy, qx)]!;
            }
          }
          y.data[b * y.cols + at(os, o, u, v)] = acc;
        }
  }
  return y;
}

/**
 * ConvTranspose2d's adjoint in its input (a strided convolution, as a gather): input pixel (c, qy, qx) collects
 * W[o,c,i,j]·g[o, qy·s+D−i, qx·s+D−j].
 */
export function convTranspose2dInputVjp(g: Mat, inShape: ImageShape, w: Mat, op: ConvTransposeOp): Mat {
  const os = opOutputShape(op, inShape) as ImageShape;
  const [C, H, W] = inShape;
  const { kernel: k, stride: s } = op;
  const D = k - 1 - op.padding;
  checkBatch(g, shapeSize(os), 'convTranspose2dInputVjp');
  const dx = mat(g.rows, shapeSize(inShape));
  for (let b = 0; b < g.rows; b++) {
    const gb = b * g.cols;
    for (let c = 0; c < C; c++)
      for (let qy = 0; qy < H; qy++)
        for (let qx = 0; qx < W; qx++) {
          let acc = 0;
          for (let i = 0; i < k; i++) {
            const u = qy * s + D - i;
            if (u < 0 || u >= os[1]) continue;
            for (let j = 0; j < k; j++) {
              const v = qx * s + D - j;
              if (v < 0 || v >= os[2]) continue;
              for (let o = 0; o < os[0]; o++) acc += w.data[wAt(C, k, o, c, i, j)]! * g.data[gb + at(os, o, u, v)]!;
            }
          }
          dx.data[b * dx.cols + at(inShape, c, qy, qx)] = acc;
        }
  }
  return dx;
}

/** ConvTranspose2d's weight gradient: dW[o,c,i,j] = Σ_{b,qy,qx} g[b, o, qy·s+D−i, qx·s+D−j]·x[b, c, qy, qx]. */
export function convTranspose2dWeightGrad(x: Mat, g: Mat, inShape: ImageShape, op: ConvTransposeOp): Mat {
  const os = opOutputShape(op, inShape) as ImageShape;
  const [C, H, W] = inShape;
  const { kernel: k, stride: s } = op;
  const D = k - 1 - op.padding;
  const dw = mat(op.outChannels, C * k * k);
  for (let o = 0; o < os[0]; o++)
    for (let c = 0; c < C; c++)
      for (let i = 0; i < k; i++)
        for (let j = 0; j < k; j++) {
          let acc = 0;
          for (let b = 0; b < x.rows; b++)
            for (let qy = 0; qy < H; qy++) {
              const u = qy * s + D - i;
              if (u < 0 || u >= os[1]) continue;
              for (let qx = 0; qx < W; qx++) {
                const v = qx * s + D - j;
                if (v < 0 || v >= os[2]) continue;
                acc += g.data[b * g.cols + at(os, o, u, v)]! * x.data[b * x.cols + at(inShape, c, qy, qx)]!;
              }
            }
          dw.data[wAt(C, k, o, c, i, j)] = acc;
        }
  return dw;
}

/**
 * Average pooling (no padding): y[c,u,v] = (1/k²) Σ_{i,j} x[c, u·s+i, v·s+j]; with `grad`, instead the adjoint:
 * every window hands g[c,u,v]/k² to each of its k² inputs (a scatter; overlapping windows add).
 */
function avgPoolImpl(t: Mat, inShape: ImageShape, op: PoolOp, grad: boolean): Mat {
  const os = opOutputShape(op, inShape) as ImageShape;
  const { kernel: k, stride: s } = op;
  checkBatch(t, shapeSize(grad ? os : inShape), grad ? 'avgPool2dInputVjp' : 'avgPool2d');
  const out = mat(t.rows, shapeSize(grad ? inShape : os));
  for (let b = 0; b < t.rows; b++)
    for (let c = 0; c < os[0]; c++)
      for (let u = 0; u < os[1]; u++)
        for (let v = 0; v < os[2]; v++) {
          const oi = b * shapeSize(os) + at(os, c, u, v);
          let acc = 0;
          for (let i = 0; i < k; i++)
            for (let j = 0; j < k; j++) {
              const ii = b * shapeSize(inShape) + at(inShape, c, u * s + i, v * s + j);
              if (grad) out.data[ii] = out.data[ii]! + t.data[oi]! / (k * k);
              else acc += t.data[ii]!;
            }
          if (!grad) out.data[oi] = acc / (k * k);
        }
  return out;
}

export function avgPool2d(x: Mat, inShape: ImageShape, op: PoolOp): Mat {
  return avgPoolImpl(x, inShape, op, false);
}

export function avgPool2dInputVjp(g: Mat, inShape: ImageShape, op: PoolOp): Mat {
  return avgPoolImpl(g, inShape, op, true);
}

/** The flat input index (within one example) of the first maximal element of window (c, u, v), row-major. */
function argmaxWindow(x: Mat, b: number, inShape: ImageShape, op: PoolOp, c: number, u: number, v: number): number {
  let best = -1;
  let bv = -Infinity;
  for (let i = 0; i < op.kernel; i++)
    for (let j = 0; j < op.kernel; j++) {
      const idx = at(inShape, c, u * op.stride + i, v * op.stride + j);
      const val = x.data[b * x.cols + idx]!;
      if (best < 0 || val > bv) {
        best = idx;
        bv = val;
      }
    }
  return best;
}

/** Max pooling (no padding): y[c,u,v] = max_{i,j} x[c, u·s+i, v·s+j]. */
export function maxPool2d(x: Mat, inShape: ImageShape, op: PoolOp): Mat {
  const os = opOutputShape(op, inShape) as ImageShape;
  checkBatch(x, shapeSize(inShape), 'maxPool2d');
  const y = mat(x.rows, shapeSize(os));
  for (let b = 0; b < x.rows; b++)
    for (let c = 0; c < os[0]; c++)
      for (let u = 0; u < os[1]; u++)
        for (let v = 0; v < os[2]; v++) {
          const idx = argmaxWindow(x, b, inShape, op, c, u, v);
          y.data[b * y.cols + at(os, c, u, v)] = x.data[b * x.cols + idx]!;
        }
  return y;
}

/**
 * Max pooling's adjoint at input x (jax.grad's select_and_scatter_add with ge): each window's g goes whole to its
 * first maximal element in row-major order; overlapping windows add.
 */
export function maxPool2dInputVjp(x: Mat, g: Mat, inShape: ImageShape, op: PoolOp): Mat {
  const os = opOutputShape(op, inShape) as ImageShape;
  checkBatch(g, shapeSize(os), 'maxPool2dInputVjp');
  const dx = mat(x.rows, shapeSize(inShape));
  for (let b = 0; b < x.rows; b++)
    for (let c = 0; c < os[0]; c++)
      for (let u = 0; u < os[1]; u++)
        for (let v = 0; v < os[2]; v++) {
          const di = b * dx.cols + argmaxWindow(x, b, inShape, op, c, u, v);
          dx.data[di] = dx.data[di]! + g.data[b * g.cols + at(os, c, u, v)]!;
        }
  return dx;
}

/** op(h) without bias or scaling, for any kind. */
export function opForward(op: LayerOp, inShape: TensorShape, w: Mat | null, h: Mat): Mat {
  switch (op.kind) {
    case 'dense':
      return denseForward(h, needWeight(w, op));
    case 'conv':
      return conv2d(h, image(inShape, 'conv'), needWeight(w, op), op);
    case 'convTranspose':
      return convTranspose2d(h, image(inShape, 'convTranspose'), needWeight(w, op), op);
    case 'avgPool':
      return avgPool2d(h, image(inShape, 'avgPool'), op);
    case 'maxPool':
      return maxPool2d(h, image(inShape, 'maxPool'), op);
  }
}

/** The gradient of ⟨g, op(h)⟩ with respect to h (the op's Jacobian transposed, at h for max pooling). */
export function opInputVjp(op: LayerOp, inShape: TensorShape, w: Mat | null, h: Mat, g: Mat): Mat {
  switch (op.kind) {
    case 'dense':
      return denseInputVjp(g, needWeight(w, op));
    case 'conv':
      return conv2dInputVjp(g, image(inShape, 'conv'), needWeight(w, op), op);
    case 'convTranspose':
      return convTranspose2dInputVjp(g, image(inShape, 'convTranspose'), needWeight(w, op), op);
    case 'avgPool':
      return avgPool2dInputVjp(g, image(inShape, 'avgPool'), op);
    case 'maxPool':
      return maxPool2dInputVjp(h, g, image(inShape, 'maxPool'), op);
  }
}

/** The gradient of Σ_b ⟨g_b, op_W(h_b)⟩ with respect to W (null for the pools). */
export function opWeightGrad(op: LayerOp, inShape: TensorShape, h: Mat, g: Mat): Mat | null {
  switch (op.kind) {
    case 'dense':
      return denseWeightGrad(h, g);
    case 'conv':
      return conv2dWeightGrad(h, g, image(inShape, 'conv'), op);
    case 'convTranspose':
      return convTranspose2dWeightGrad(h, g, image(inShape, 'convTranspose'), op);
    default:
      return null;
  }
}

function needWeight(w: Mat | null, op: LayerOp): Mat {
  if (w === null) throw new RangeError(`${op.kind} needs a weight`);
  return w;
}

/** How many consecutive output elements share one bias entry: 1 for dense (per unit), H·W for conv kinds. */
function biasSpan(op: LayerOp, outShape: TensorShape): number {
  return op.kind === 'dense' || outShape.length === 1 ? 1 : outShape[1] * outShape[2];
}

// ─────────────────────────────────────────────── model ───────────────────────────────────────────────

/** One PC layer: μ = scale·(op(act(z_in)) + bias) [+ z_in if skip]. */
export interface PcLayer {
  op: LayerOp;
  act: Act;
  scale: number;
  skip: boolean;
  /** As `weightShape` says (OIHW flattened for conv kinds); null for the pools. */
  weight: Mat | null;
  /** Length C_out (conv kinds) or the output size (dense); null for none. */
  bias: Float64Array | null;
}

export interface ConvModel {
  inputShape: TensorShape;
  layers: PcLayer[];
}

/** Validates the model and returns the shapes [z_0, z_1, …, z_L] (per example). */
export function modelShapes(model: ConvModel): TensorShape[] {
  if (model.layers.length < 1) throw new RangeError('a model needs at least one layer');
  const shapes: TensorShape[] = [model.inputShape];
  model.layers.forEach((layer, k) => {
    const inShape = shapes[k]!;
    const where = `layer ${k + 1} (${layer.op.kind})`;
    const out = opOutputShape(layer.op, inShape);
    const ws = weightShape(layer.op, inShape);
    if (ws === null) {
      if (layer.weight !== null || layer.bias !== null) throw new RangeError(`${where} has no parameters`);
    } else {
      if (!layer.weight || layer.weight.rows !== ws[0] || layer.weight.cols !== ws[1]) {
        throw new RangeError(`${where}: weight must be ${ws[0]}x${ws[1]}`);
      }
      const nb = shapeSize(out) / biasSpan(layer.op, out);
      if (layer.bias && layer.bias.length !== nb) throw new RangeError(`${where}: bias must have ${nb} entries`);
    }
    if (layer.skip && !sameShape(inShape, out)) {
      throw new RangeError(`${where}: a skip needs equal shapes, got [${inShape.join(', ')}] → [${out.join(', ')}]`);
    }
    shapes.push(out);
  });
  return shapes;
}

/** Elementwise activation of a batch. */
function mapAct(a: Act, z: Mat): Mat {
  const h = mat(z.rows, z.cols);
  for (let i = 0; i < z.data.length; i++) h.data[i] = act(a, z.data[i]!);
  return h;
}

/** μ of one layer on its input batch (`layers[k]`, input z_k, shape `inShape`). */
function predict(layer: PcLayer, inShape: TensorShape, outShape: TensorShape, input: Mat): Mat {
  const mu = opForward(layer.op, inShape, layer.weight, mapAct(layer.act, input));
  const span = biasSpan(layer.op, outShape);
  for (let b = 0; b < mu.rows; b++)
    for (let e = 0; e < mu.cols; e++) {
      const i = b * mu.cols + e;
      const pre = mu.data[i]! + (layer.bias ? layer.bias[Math.floor(e / span)]! : 0);
      mu.data[i] = layer.scale * pre + (layer.skip ? input.data[i]! : 0);
    }
  return mu;
}

/** `init_activities_with_ffwd`: [z_1, …, z_L] with z_l = μ_l(z_{l−1}), z_0 = x (the last one is the prediction). */
export function ffwd(model: ConvModel, x: Mat): Mat[] {
  const shapes = modelShapes(model);
  checkBatch(x, shapeSize(shapes[0]!), 'ffwd: x');
  const out: Mat[] = [];
  let cur = x;
  model.layers.forEach((layer, k) => {
    cur = predict(layer, shapes[k]!, shapes[k + 1]!, cur);
    out.push(cur);
  });
  return out;
}

/** Options of the energy: the output loss and λ, JPC's `output_energy_scaling` (default 1). */
export interface ConvEnergyOpts {
  loss: Loss;
  lambda?: number;
}

/**
 * The output term for prediction μ and target y (no λ, no 1/B) and its error g = −∂E/∂μ. ce takes the softmax
 * along the last axis (groups of `group` consecutive elements), as jax.nn.log_softmax's default axis=-1.
 */
function outputTerm(mu: Mat, y: Mat, loss: Loss, group: number): { E: number; g: Mat } {
  const g = mat(mu.rows, mu.cols);
  let E = 0;
  if (loss === 'mse') {
    for (let i = 0; i < g.data.length; i++) {
      const e = y.data[i]! - mu.data[i]!;
      g.data[i] = e;
      E += 0.5 * e * e;
    }
    return { E, g };
  }
  for (let off = 0; off < mu.data.length; off += group) {
    let m = -Infinity;
    for (let j = 0; j < group; j++) m = Math.max(m, mu.data[off + j]!);
    let se = 0;
    for (let j = 0; j < group; j++) se += Math.exp(mu.data[off + j]! - m);
    const lse = m + Math.log(se);
    let ysum = 0;
    for (let j = 0; j < group; j++) {
      ysum += y.data[off + j]!;
      E -= y.data[off + j]! * (mu.data[off + j]! - lse);
    }
    for (let j = 0; j < group; j++) g.data[off + j] = y.data[off + j]! - Math.exp(mu.data[off + j]! - lse) * ysum;
  }
  return { E, g };
}

interface PcState {
  L: number;
  B: number;
  shapes: TensorShape[];
  /** z_0 … z_L. */
  z: Mat[];
  /** acts index of z_k is k + off: off = −1 (supervised) or 0 (unsupervised). */
  off: number;
  /** g_l (index l − 1): −∂E_l/∂μ_l, unweighted. */
  g: Mat[];
  /** w_l (index l − 1): 1 for hidden layers, λ for the output. */
  w: number[];
  /** E_l (index l − 1), λ included, not divided by B. */
  E: number[];
}

function pcState(model: ConvModel, acts: readonly Mat[], y: Mat, x: Mat | null, opts: ConvEnergyOpts): PcState {
  const shapes = modelShapes(model);
  const L = model.layers.length;
  const B = y.rows;
  const want = x === null ? L + 1 : L;
  if (acts.length !== want) {
    throw new RangeError(
      `expected ${want} activities (${x === null ? 'unsupervised' : 'supervised'}), got ${acts.length}`,
    );
  }
  const off = x === null ? 0 : -1;
  const z: Mat[] = [];
  for (let k = 0; k <= L; k++) {
    const m = k === 0 && x !== null ? x : acts[k + off]!;
    const size = shapeSize(shapes[k]!);
    if (m.rows !== B || m.cols !== size) {
      throw new RangeError(`z_${k} must be ${B}x${size} (shape [${shapes[k]!.join(', ')}]), got ${m.rows}x${m.cols}`);
    }
    z.push(m);
  }
  const outShape = shapes[L]!;
  if (y.cols !== shapeSize(outShape)) throw new RangeError(`y must have ${shapeSize(outShape)} columns, got ${y.cols}`);
  const lambda = opts.lambda ?? 1;
  const g: Mat[] = [];
  const w: number[] = [];
  const E: number[] = [];
  model.layers.forEach((layer, k) => {
    const mu = predict(layer, shapes[k]!, shapes[k + 1]!, z[k]!);
    if (k < L - 1) {
      const e = mat(mu.rows, mu.cols);
      let s = 0;
      for (let i = 0; i < e.data.length; i++) {
        e.data[i] = z[k + 1]!.data[i]! - mu.data[i]!;
        s += 0.5 * e.data[i]! * e.data[i]!;
      }
      g.push(e);
      w.push(1);
      E.push(s);
    } else {
      const o = outputTerm(mu, y, opts.loss, outShape[outShape.length - 1]!);
      g.push(o.g);
      w.push(lambda);
      E.push(lambda * o.E);
    }
  });
  return { L, B, shapes, z, off, g, w, E };
}

/**
 * Per-layer energies [E_1, …, E_L], each /B, λ included. Supervised: `acts` = [z_1 … z_L], x the input;
 * unsupervised: `acts` = [z_0 … z_L], x = null. z_L is the dummy either way. B = rows of y.
 */
export function layerEnergies(
  model: ConvModel,
  acts: readonly Mat[],
  y: Mat,
  x: Mat | null,
  opts: ConvEnergyOpts,
): number[] {
  const st = pcState(model, acts, y, x, opts);
  return st.E.map((e) => e / st.B);
}

/** `pc_energy_fn` without regularisers: F = Σ_l w_l E_l / B. */
export function energy(model: ConvModel, acts: readonly Mat[], y: Mat, x: Mat | null, opts: ConvEnergyOpts): number {
  return layerEnergies(model, acts, y, x, opts).reduce((a, b) => a + b, 0);
}

/** vjp_l(z, g) = s·act'(z) ⊙ opᵀ(g) [+ g if skip]: the gradient of ⟨g, μ_l(z)⟩ with respect to z. */
function layerVjp(layer: PcLayer, inShape: TensorShape, z: Mat, g: Mat): Mat {
  const back = opInputVjp(layer.op, inShape, layer.weight, mapAct(layer.act, z), g);
  for (let i = 0; i < back.data.length; i++) {
    back.data[i] = layer.scale * actDeriv(layer.act, z.data[i]!) * back.data[i]! + (layer.skip ? g.data[i]! : 0);
  }
  return back;
}

/** ∂F/∂acts, one Mat per activity (the dummy's is zero): ([1 ≤ k ≤ L−1] g_k − w_{k+1}·vjp_{k+1}(z_k, g_{k+1})) / B. */
export function activityGrads(
  model: ConvModel,
  acts: readonly Mat[],
  y: Mat,
  x: Mat | null,
  opts: ConvEnergyOpts,
): Mat[] {
  const st = pcState(model, acts, y, x, opts);
  return acts.map((_, a) => {
    const k = a - st.off;
    const zk = st.z[k]!;
    const grad = mat(zk.rows, zk.cols);
    if (k >= 1 && k <= st.L - 1) grad.data.set(st.g[k - 1]!.data);
    if (k <= st.L - 1) {
      const back = layerVjp(model.layers[k]!, st.shapes[k]!, zk, st.g[k]!);
      for (let i = 0; i < grad.data.length; i++) grad.data[i] = grad.data[i]! - st.w[k]! * back.data[i]!;
    }
    for (let i = 0; i < grad.data.length; i++) grad.data[i] = grad.data[i]! / st.B;
    return grad;
  });
}

/** The parameters of a model, or gradients shaped like them: per layer, null where there is none. */
export interface ConvParams {
  weights: (Mat | null)[];
  biases: (Float64Array | null)[];
}

/**
 * ∂F/∂θ: ∂F/∂W_l = −(w_l s_l / B)·opWeightGrad(act_l(z_{l−1}), g_l), ∂F/∂b_l = −(w_l s_l / B)·Σ_{b, positions} g_l
 * per channel (conv kinds) or unit (dense).
 */
export function paramGrads(
  model: ConvModel,
  acts: readonly Mat[],
  y: Mat,
  x: Mat | null,
  opts: ConvEnergyOpts,
): ConvParams {
  const st = pcState(model, acts, y, x, opts);
  const out: ConvParams = { weights: [], biases: [] };
  model.layers.forEach((layer, k) => {
    const c = (-st.w[k]! * layer.scale) / st.B;
    const g = st.g[k]!;
    const dw = opWeightGrad(layer.op, st.shapes[k]!, mapAct(layer.act, st.z[k]!), g);
    if (dw) for (let i = 0; i < dw.data.length; i++) dw.data[i] = c * dw.data[i]!;
    out.weights.push(dw);
    if (layer.bias) {
      const db = new Float64Array(layer.bias.length);
      const span = biasSpan(layer.op, st.shapes[k + 1]!);
      for (let b = 0; b < g.rows; b++)
        for (let e = 0; e < g.cols; e++) {
          const o = Math.floor(e / span);
          db[o] = db[o]! + c * g.data[b * g.cols + e]!;
        }
      out.biases.push(db);
    } else out.biases.push(null);
  });
  return out;
}

/** `neg_pc_activity_grad`: dz/dt = −∂F/∂z. */
export function vectorField(
  model: ConvModel,
  acts: readonly Mat[],
  y: Mat,
  x: Mat | null,
  opts: ConvEnergyOpts,
): Mat[] {
  return activityGrads(model, acts, y, x, opts).map((g) => {
    for (let i = 0; i < g.data.length; i++) g.data[i] = -g.data[i]!;
    return g;
  });
}

/** The inference ODE as jpc64's generic `VectorField` (for `integrateHeunPid`, `integrateConstant`, `rkStep`). */
export function pcVectorField(model: ConvModel, y: Mat, x: Mat | null, opts: ConvEnergyOpts): VectorField {
  return (acts) => vectorField(model, acts, y, x, opts);
}

// ─────────────────────────────────────── construction and parameters ───────────────────────────────────────

/** One layer of a model to build: the op and its options (defaults: linear input, no skip, bias, scale 1). */
export interface LayerSpec {
  op: LayerOp;
  act?: Act;
  skip?: boolean;
  bias?: boolean;
  scale?: number;
  /** 'uniform': Equinox's U(±1/√fan_in); 'normal': N(0, weightStd²) weights (JPC's μPC), bias still uniform. */
  init?: 'uniform' | 'normal';
  weightStd?: number;
}

/** A random model with Equinox's initialisation (not JAX's random streams; only the distributions match). */
export function randomConvModel(rng: Random, inputShape: TensorShape, specs: readonly LayerSpec[]): ConvModel {
  let inShape = inputShape;
  const layers = specs.map((spec) => {
    const out = opOutputShape(spec.op, inShape);
    const ws = weightShape(spec.op, inShape);
    let weight: Mat | null = null;
    let bias: Float64Array | null = null;
    if (ws) {
      const lim = initBound(spec.op, inShape);
      weight =
        spec.init === 'normal'
          ? randomNormalMat(rng, ws[0], ws[1], spec.weightStd ?? 1)
          : randomUniformMat(rng, ws[0], ws[1], -lim, lim);
      if (spec.bias ?? true) bias = randomUniformMat(rng, 1, shapeSize(out) / biasSpan(spec.op, out), -lim, lim).data;
    }
    inShape = out;
    return { op: spec.op, act: spec.act ?? 'linear', scale: spec.scale ?? 1, skip: spec.skip ?? false, weight, bias };
  });
  const model: ConvModel = { inputShape, layers };
  modelShapes(model);
  return model;
}

/** The model's parameters (the arrays themselves, not copies). */
export function paramsOf(model: ConvModel): ConvParams {
  return { weights: model.layers.map((l) => l.weight), biases: model.layers.map((l) => l.bias) };
}

/** All parameters as one vector: W_1, b_1 (if any), W_2, … (the order an optimiser sees them in). */
export function flattenConvParams(p: ConvParams): Float64Array {
  const parts: Float64Array[] = [];
  p.weights.forEach((w, l) => {
    if (w) parts.push(w.data);
    const b = p.biases[l];
    if (b) parts.push(b);
  });
  const out = new Float64Array(parts.reduce((s, a) => s + a.length, 0));
  let off = 0;
  for (const a of parts) {
    out.set(a, off);
    off += a.length;
  }
  return out;
}

/** A copy of `model` with its parameters taken from a vector laid out as by `flattenConvParams`. */
export function withFlatParams(model: ConvModel, vec: Float64Array): ConvModel {
  let off = 0;
  const take = (n: number) => {
    const part = vec.slice(off, off + n);
    off += n;
    return part;
  };
  const layers = model.layers.map((l) => ({
    ...l,
    weight: l.weight ? mat(l.weight.rows, l.weight.cols, take(l.weight.data.length)) : null,
    bias: l.bias ? take(l.bias.length) : null,
  }));
  if (off !== vec.length) throw new RangeError(`withFlatParams: vector has ${vec.length} values, model needs ${off}`);
  return { inputShape: model.inputShape, layers };
}

// ──────────────────────────────────────── JPC's CNN scalings ────────────────────────────────────────

/** JPC's `param_type` as its CNN uses it. */
export type ConvParamType = 'sp' | 'mupc' | 'ntp';

/**
 * torch.nn.init.calculate_gain(act), as ScaledConv2d calls it (1 for 'linear'): tanh 5/3, relu √2, leaky_relu
 * √(2/(1 + 0.01²)), selu 3/4. torch raises for the other JPC activations, and so does this.
 */
export function torchGain(a: Act): number {
  switch (a) {
    case 'linear':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu':
      return Math.sqrt(2 / (1 + 0.01 ** 2));
    case 'selu':
      return 3 / 4;
    default:
      throw new RangeError(`torchGain: torch's calculate_gain does not support '${a}'`);
  }
}

/**
 * ScaledConv2d's `scaling` = width_scaling · depth_scaling: μPC width_scaling = gain(act)/√(C_in·k²); sp 1.
 * JPC's ScaledConv2d has no NTP branch (it gives 1); 'ntp' here is WPC's analogue of JPC's MLP NTP, the fan-in
 * scaling without gain, 1/√(C_in·k²).
 */
export function scaledConvScale(
  paramType: ConvParamType,
  opts: { inChannels: number; kernel: number; act?: Act; depthScaling?: number },
): number {
  const fanIn = opts.inChannels * opts.kernel * opts.kernel;
  const width =
    paramType === 'mupc'
      ? torchGain(opts.act ?? 'linear') / Math.sqrt(fanIn)
      : paramType === 'ntp'
        ? 1 / Math.sqrt(fanIn)
        : 1;
  return width * (opts.depthScaling ?? 1);
}

/** Readout's `scaling`: μPC non_res_depth_scaling / in_features (no square root), sp 1, 'ntp' (WPC) 1/√in. */
export function readoutScale(paramType: ConvParamType, inFeatures: number, depthScaling = 1): number {
  if (paramType === 'mupc') return depthScaling / inFeatures;
  return paramType === 'ntp' ? 1 / Math.sqrt(inFeatures) : 1;
}

/** ResNet's depth_scaling for the residual blocks: 1/√(n_res_blocks + additive_depth_factor) for μPC, else 1. */
export function resnetDepthScaling(paramType: ConvParamType, nResBlocks: number, additiveDepthFactor = 0): number {
  return paramType === 'mupc' ? 1 / Math.sqrt(nResBlocks + additiveDepthFactor) : 1;
}
