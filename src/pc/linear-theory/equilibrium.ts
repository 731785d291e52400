/**
 * The exact inference equilibrium of a deep linear network, two ways. Through the output space: S = I/λ + Σ J_iJ_iᵀ
 * (d_y × d_y, factored by Cholesky in float64), u = S⁻¹r, and one forward pass that injects g_i = J_iᵀu at every
 * hidden layer. Through the activity Hessian: its blocks (Gram blocks on the GPU, the rest in float64), factored
 * block-tridiagonally on the host, which also takes an activity decay or a Tikhonov shift. And the weight
 * gradients at that equilibrium.
 */
import { mlpLayers } from '../layers/index.js';
import { Recorder } from '../../runtime/recorder.js';
import type { Tensor } from '../../runtime/tensor.js';
import {
  blockTridiagonalCholesky,
  blockTridiagonalSolve,
  cholesky,
  choleskySolve,
  type BlockTridiagonal,
} from '../../util/linalg64.js';
import { asMatrix, type GpuMatrix } from '../linalg.js';
import { type Chains, rangeOf } from './chains.js';

/** A dense row-major float64 matrix. */
export interface Matrix64 {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

/** S = I/λ + Σ_i J_i J_iᵀ in float64 from the J_i read back. */
export function rescalingFrom(
  J: readonly Float32Array[],
  widths: readonly number[],
  dy: number,
  lambda: number,
): Matrix64 {
  const S = new Float64Array(dy * dy);
  for (let r = 0; r < dy; r++) S[r * dy + r] = 1 / lambda;
  J.forEach((j, idx) => {
    const n = widths[idx]!;
    for (let r = 0; r < dy; r++) {
      for (let c = 0; c <= r; c++) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += j[r * n + k]! * j[c * n + k]!;
        S[r * dy + c] = S[r * dy + c]! + acc;
      }
    }
  });
  for (let r = 0; r < dy; r++) for (let c = r + 1; c < dy; c++) S[r * dy + c] = S[c * dy + r]!;
  return { rows: dy, cols: dy, data: S };
}

interface OutputSpace {
  /** J_i tensors (index 1..H), still on the GPU. */
  J: Tensor[];
  rescaling: Matrix64;
  /** u_b = S⁻¹ r_b, B × d_y. */
  u: Float64Array;
  energy: number;
}

/** Records and reads what every output-space computation needs: J_i, the residuals, S and u = S⁻¹r. */
export async function outputSpace(ch: Chains, X: Tensor, Y: Tensor, B: number, lambda: number): Promise<OutputSpace> {
  const { model, H } = ch;
  const dy = model.outputDim;
  const J = ch.weightChain();
  const Z = ch.forward(X, B);
  ch.submit();
  const ranges = [Y, Z[model.depth]!, ...J.slice(1, H + 1)].map(rangeOf);
  const [y, yhat, ...Jh] = await ch.rt.read(ranges);
  const widths = model.dims.slice(1, H + 1);
  const rescaling = rescalingFrom(Jh, widths, dy, lambda);
  const L = cholesky(rescaling.data, dy, 'rescaling S');
  const u = new Float64Array(B * dy);
  let sum = 0;
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < dy; k++) u[b * dy + k] = y![b * dy + k]! - yhat![b * dy + k]!;
    const r = u.slice(b * dy, (b + 1) * dy);
    choleskySolve(L, dy, u, b * dy);
    for (let k = 0; k < dy; k++) sum += r[k]! * u[b * dy + k]!;
  }
  return { J, rescaling, u, energy: (0.5 * sum) / B };
}

/** g_i = J_iᵀ u_b for every hidden layer (B × d_i, index 1..H) and g_L = u. */
function injections(ch: Chains, space: OutputSpace, B: number): Tensor[] {
  const { model, H } = ch;
  const dy = model.outputDim;
  const U = ch.rt.tensor(Float32Array.from(space.u), [B, dy]);
  ch.temps.push(U);
  const g: Tensor[] = [];
  for (let i = 1; i <= H; i++) {
    g[i] = ch.temp([B, model.dims[i]!]);
    ch.gemm.record(ch.rec, {
      m: B,
      k: dy,
      n: model.dims[i]!,
      a: asMatrix(U),
      b: asMatrix(space.J[i]!),
      c: asMatrix(g[i]!),
    });
  }
  g[H + 1] = U;
  return g;
}

/**
 * The equilibrium activities z*_1..z*_L through S (activity decay 0, ε 0): z*_H from the injected pass, and
 * z*_L = M_{L−1} z*_H, the prediction (JPC's dummy output activity). `g` also holds g_L = u for the gradients.
 */
export async function outputSpaceSolution(
  ch: Chains,
  X: Tensor,
  Y: Tensor,
  B: number,
  lambda: number,
): Promise<{ Z: Tensor[]; g: Tensor[]; energy: number }> {
  const space = await outputSpace(ch, X, Y, B, lambda);
  const g = injections(ch, space, B);
  return { Z: ch.forward(X, B, g, true), g, energy: space.energy };
}

type HessianBlocks = BlockTridiagonal;

/**
 * The per-sample activity Hessian as blocks: for hidden i = 1..H, with M_i = a_i W_i + σ_i I and c = λ for the
 * output layer (i = H), 1 otherwise:
 *   D_i = (1 + ad + ε)·I + c·M_iᵀM_i,   A[i, i+1] = −M_iᵀ.
 * a_i² W_iᵀW_i is formed on the GPU; the identity and skip terms are added in float64. (JPC's skip formula with
 * activity decay adds 2a(W + Wᵀ): the decay belongs on the diagonal only, so WPC adds I, nothing else.)
 */
export async function hessianBlocks(ch: Chains, lambda: number, shift: number): Promise<HessianBlocks> {
  const { model, H } = ch;
  const grams: Tensor[] = [];
  for (let i = 1; i <= H; i++) {
    const layer = model.layers[i]!;
    const gram = ch.temp([layer.inDim, layer.inDim]);
    const w = ch.weight(i);
    ch.gemm.record(ch.rec, {
      m: layer.inDim,
      k: layer.outDim,
      n: layer.inDim,
      a: w,
      transA: true,
      b: w,
      c: asMatrix(gram),
      alpha: layer.scale * layer.scale,
    });
    grams.push(gram);
  }
  ch.submit();
  const read = await ch.rt.read([
    ...grams.map(rangeOf),
    ...mlpLayers('linear theory', model.layers)
      .slice(1)
      .map((l) => ({ buffer: model.params, byteOffset: l.weightOffset * 4, byteLength: l.inDim * l.outDim * 4 })),
  ]);
  const sizes = model.dims.slice(1, H + 1);
  const diag: Float64Array[] = [];
  const upper: Float64Array[] = [];
  for (let i = 1; i <= H; i++) {
    const layer = model.layers[i]!;
    const n = layer.inDim;
    const q = layer.outDim;
    const gram = read[i - 1]!;
    const W = read[H + i - 1]!;
    const a = layer.scale;
    const sigma = layer.skip ? 1 : 0;
    const c = i === H ? lambda : 1;
    const D = new Float64Array(n * n);
    for (let r = 0; r < n; r++) {
      for (let s = 0; s < n; s++) {
        // M_iᵀM_i = a²WᵀW + σa(W + Wᵀ) + σI (σ only for square W).
        let m = gram[r * n + s]!;
        if (sigma) m += a * (W[r * n + s]! + W[s * n + r]!) + (r === s ? 1 : 0);
        D[r * n + s] = c * m + (r === s ? 1 + shift : 0);
      }
    }
    // Symmetrise what float32 rounding left in the Gram block.
    for (let r = 0; r < n; r++)
      for (let s = r + 1; s < n; s++) D[r * n + s] = D[s * n + r] = 0.5 * (D[r * n + s]! + D[s * n + r]!);
    diag.push(D);
    if (i < H) {
      // A[i, i+1] = −M_iᵀ: n × q, entry (r, s) = −(a W[s, r] + σ δ_rs).
      const U = new Float64Array(n * q);
      for (let r = 0; r < n; r++)
        for (let s = 0; s < q; s++) U[r * q + s] = -(a * W[s * n + r]! + (sigma && r === s ? 1 : 0));
      upper.push(U);
    }
  }
  return { sizes, diag, upper };
}

export async function blockCholeskySolution(
  ch: Chains,
  X: Tensor,
  Y: Tensor,
  B: number,
  lambda: number,
  shift: number,
): Promise<Tensor[]> {
  const { model, H } = ch;
  const rt = ch.rt;
  // Right-hand sides on the GPU: a_0·X·W_0ᵀ (B × d_1) and λ·a_H·Y·W_H (B × d_H).
  const first = model.layers[0]!;
  const last = model.layers[H]!;
  const b1 = ch.temp([B, first.outDim]);
  const bH = ch.temp([B, last.inDim]);
  ch.gemm.record(ch.rec, {
    m: B,
    k: first.inDim,
    n: first.outDim,
    a: asMatrix(X),
    b: ch.weight(0),
    transB: true,
    c: asMatrix(b1),
    alpha: first.scale,
  });
  ch.gemm.record(ch.rec, {
    m: B,
    k: last.outDim,
    n: last.inDim,
    a: asMatrix(Y),
    b: ch.weight(H),
    c: asMatrix(bH),
    alpha: lambda * last.scale,
  });
  const blocks = await hessianBlocks(ch, lambda, shift); // submits the recorder
  const [rhs1, rhsH] = await rt.read([b1, bH].map(rangeOf));
  const factor = blockTridiagonalCholesky(blocks);
  const sizes = blocks.sizes;
  const n = sizes.reduce((s, d) => s + d, 0);
  const dH = sizes[H - 1]!;
  const hidden = sizes.map((d) => new Float32Array(B * d));
  const x = new Float64Array(n);
  for (let b = 0; b < B; b++) {
    x.fill(0);
    for (let k = 0; k < sizes[0]!; k++) x[k] = rhs1![b * sizes[0]! + k]!;
    for (let k = 0; k < dH; k++) x[n - dH + k] = x[n - dH + k]! + rhsH![b * dH + k]!;
    blockTridiagonalSolve(factor, x);
    let at = 0;
    sizes.forEach((d, i) => {
      hidden[i]!.set(x.subarray(at, at + d), b * d);
      at += d;
    });
  }
  const Z = hidden.map((h, i) => rt.tensor(h, [B, sizes[i]!]));
  // The dummy output activity: the prediction a_H·z*_H·W_Hᵀ.
  const out = rt.empty([B, model.outputDim]);
  const rec = new Recorder(rt, 'wpc.computeLinearActivitySolution');
  ch.gemm.record(rec, {
    m: B,
    k: last.inDim,
    n: last.outDim,
    a: asMatrix(Z[H - 1]!),
    b: ch.weight(H),
    transB: true,
    c: asMatrix(out),
    alpha: last.scale,
  });
  rec.submit();
  return [...Z, out];
}

/** Records ∂(F*)/∂W_l = −(a_l/B)·g_{l+1}ᵀ z*_l for every layer into `target(l)`. */
export function recordEquilibGrads(
  ch: Chains,
  Z: readonly Tensor[],
  g: readonly Tensor[],
  B: number,
  target: (l: number) => GpuMatrix,
): void {
  ch.model.layers.forEach((layer, l) => {
    ch.gemm.record(ch.rec, {
      m: layer.outDim,
      k: B,
      n: layer.inDim,
      a: asMatrix(g[l + 1]!),
      transA: true,
      b: asMatrix(Z[l]!),
      c: target(l),
      alpha: -layer.scale / B,
    });
  });
}
