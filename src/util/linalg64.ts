/**
 * Small dense float64 linear algebra on the host, for the linear-network theory: the systems there are either
 * d_y × d_y (the output-space rescaling S) or block-tridiagonal with width-sized blocks, where float64 on the
 * CPU is exact enough to serve as the reference and cheaper than a round trip of GPU dispatches.
 * Matrices are row-major Float64Arrays.
 */

/** Lower-triangular Cholesky factor L of a symmetric positive-definite n×n matrix (A = L·Lᵀ). */
export function cholesky(a: Float64Array, n: number, what = 'matrix'): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j]!;
    const lj = j * n;
    for (let k = 0; k < j; k++) d -= l[lj + k]! * l[lj + k]!;
    if (!(d > 0)) throw new RangeError(`cholesky: the ${what} is not positive definite (pivot ${j} is ${d})`);
    const djj = Math.sqrt(d);
    l[lj + j] = djj;
    for (let i = j + 1; i < n; i++) {
      const li = i * n;
      let s = a[li + j]!;
      for (let k = 0; k < j; k++) s -= l[li + k]! * l[lj + k]!;
      l[li + j] = s / djj;
    }
  }
  return l;
}

/** Solves L·x = b in place (L lower triangular n×n; b a vector of n at `off` in `x`). */
function forwardSubstitute(l: Float64Array, n: number, x: Float64Array, off = 0): void {
  for (let i = 0; i < n; i++) {
    let s = x[off + i]!;
    const li = i * n;
    for (let k = 0; k < i; k++) s -= l[li + k]! * x[off + k]!;
    x[off + i] = s / l[li + i]!;
  }
}

/** Solves Lᵀ·x = b in place. */
function backSubstitute(l: Float64Array, n: number, x: Float64Array, off = 0): void {
  for (let i = n - 1; i >= 0; i--) {
    let s = x[off + i]!;
    for (let k = i + 1; k < n; k++) s -= l[k * n + i]! * x[off + k]!;
    x[off + i] = s / l[i * n + i]!;
  }
}

/** Solves A·x = b for SPD A given its Cholesky factor, in place. */
export function choleskySolve(l: Float64Array, n: number, x: Float64Array, off = 0): void {
  forwardSubstitute(l, n, x, off);
  backSubstitute(l, n, x, off);
}

/**
 * A symmetric positive-definite block-tridiagonal matrix: diagonal blocks D_i (n_i × n_i) and blocks
 * U_i = A[i, i+1] (n_i × n_{i+1}), the lower ones being their transposes.
 */
export interface BlockTridiagonal {
  readonly sizes: readonly number[];
  readonly diag: readonly Float64Array[];
  readonly upper: readonly Float64Array[];
}

/** Block Cholesky factor: L_ii (lower triangular) and the sub-diagonal blocks C_i = L[i+1, i] (n_{i+1} × n_i). */
interface BlockCholesky {
  readonly sizes: readonly number[];
  readonly diag: Float64Array[];
  readonly lower: Float64Array[];
}

/**
 * Block Cholesky of a block-tridiagonal SPD matrix, O(Σ n_i³): no dense inverse and no fill-in outside the
 * bands. L_11 = chol(D_1); C_i = U_iᵀ·L_ii^{−T}; L_{i+1,i+1} = chol(D_{i+1} − C_i·C_iᵀ).
 */
export function blockTridiagonalCholesky(m: BlockTridiagonal): BlockCholesky {
  const { sizes } = m;
  const diag: Float64Array[] = [];
  const lower: Float64Array[] = [];
  for (let i = 0; i < sizes.length; i++) {
    const n = sizes[i]!;
    const d = Float64Array.from(m.diag[i]!);
    if (i > 0) {
      // D_i − C_{i−1}·C_{i−1}ᵀ, where C_{i−1} is n × n_{i−1}.
      const c = lower[i - 1]!;
      const p = sizes[i - 1]!;
      for (let r = 0; r < n; r++) {
        for (let s = 0; s <= r; s++) {
          let acc = 0;
          for (let k = 0; k < p; k++) acc += c[r * p + k]! * c[s * p + k]!;
          d[r * n + s] = d[r * n + s]! - acc;
          if (s !== r) d[s * n + r] = d[r * n + s]!;
        }
      }
    }
    const l = cholesky(d, n, `block ${i} of the Hessian`);
    diag.push(l);
    if (i + 1 < sizes.length) {
      // C_i = U_iᵀ L_ii^{−T}: row r of C_i solves L_ii · c_r = (U_iᵀ)_r = column r of U_i.
      const q = sizes[i + 1]!;
      const u = m.upper[i]!;
      const c = new Float64Array(q * n);
      for (let r = 0; r < q; r++) {
        for (let k = 0; k < n; k++) c[r * n + k] = u[k * q + r]!;
        forwardSubstitute(l, n, c, r * n);
      }
      lower.push(c);
    }
  }
  return { sizes, diag, lower };
}

/** Solves A·x = b with a block Cholesky factor; `x` holds b (blocks concatenated) and is overwritten. */
export function blockTridiagonalSolve(f: BlockCholesky, x: Float64Array): void {
  const { sizes } = f;
  const offsets: number[] = [];
  let at = 0;
  for (const n of sizes) {
    offsets.push(at);
    at += n;
  }
  // Forward: L y = b.
  for (let i = 0; i < sizes.length; i++) {
    const n = sizes[i]!;
    const o = offsets[i]!;
    if (i > 0) {
      const c = f.lower[i - 1]!;
      const p = sizes[i - 1]!;
      const po = offsets[i - 1]!;
      for (let r = 0; r < n; r++) {
        let s = 0;
        for (let k = 0; k < p; k++) s += c[r * p + k]! * x[po + k]!;
        x[o + r] = x[o + r]! - s;
      }
    }
    forwardSubstitute(f.diag[i]!, n, x, o);
  }
  // Backward: Lᵀ x = y.
  for (let i = sizes.length - 1; i >= 0; i--) {
    const n = sizes[i]!;
    const o = offsets[i]!;
    if (i + 1 < sizes.length) {
      const c = f.lower[i]!;
      const q = sizes[i + 1]!;
      const qo = offsets[i + 1]!;
      for (let k = 0; k < n; k++) {
        let s = 0;
        for (let r = 0; r < q; r++) s += c[r * n + k]! * x[qo + r]!;
        x[o + k] = x[o + k]! - s;
      }
    }
    backSubstitute(f.diag[i]!, n, x, o);
  }
}
