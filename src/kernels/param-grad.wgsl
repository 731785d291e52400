// Parameter gradients of the PC energy for every layer in one dispatch:
//
//   ∂F/∂W_l = −(s_l/B) · e_lᵀ φ(z_{l−1})    (stored [out × in], JPC's layout)     ∂F/∂b_l = −(s_l/B) · Σ_b e_l
//
// A = e_l read transposed from [B × d_l] at a (row = output unit, kk = sample), B = φ(z_{l−1}) (or the input x)
// [B × d_{l−1}] at b; the weight gradient goes to c in `grads`, the bias gradient to d. coef0 = −s_l/B.
// With ce the output error e_L holds y − softmax·Σy (output.wgsl), so the same formula serves both losses.
// With CONV, a job with a geometry is a convolution's: ∂F/∂W[c_out, (c_in, ky, kx)] = coef0·Σ_{b,p} e·input
// (its CONV gather), one job over the whole batch (k = B·positions); the bias sum runs over the same k.

const FLAG_BIAS: u32 = 1u;

@group(0) @binding(1) var<storage, read> work: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;

fn skip_dispatch() -> bool {
  return false;
}

fn ld(i: u32) -> f32 {
  return work[i];
}

#if CONV
// A convolution's weight gradient reduces over the batch and the output positions: kk = (example, position), with
// the output planes' size P = dst_h·dst_w; row = output channel, col = (c_in, ky, kx).
fn positions(job: Job) -> u32 {
  let g = geometry(job);
  return g.dst_h * g.dst_w;
}
#endif

fn load_a(job: Job, row: u32, kk: u32) -> f32 {
#if CONV
  if (gather_of(job) != GATHER_NONE) {
    let p = positions(job);
    let b = div_u(kk, p);
    return work[job.a_off + (b * job.m + row) * p + (kk - b * p)];
  }
#endif
  return work[job.a_off + kk * job.m + row];
}

fn load_b(job: Job, kk: u32, col: u32) -> f32 {
#if CONV
  if (gather_of(job) != GATHER_NONE) {
    let g = geometry(job);
    let p = positions(job);
    let b = div_u(kk, p);
    let per_example = (job.n / (g.kh * g.kw)) * g.src_h * g.src_w;
    return conv_gather(g, job.b_off + b * per_example, col, kk - b * p, g.flip);
  }
#endif
  return work[job.b_off + kk * job.n + col];
}

fn epilogue(job: Job, row: u32, col: u32, acc: f32) -> vec4<f32> {
  grads[job.c_off + row * job.n + col] = job.coef0 * acc;
  // The tile holding column 0 also sums this row's errors over the batch for the bias.
  if (col == 0u && (job.flags & FLAG_BIAS) != 0u) {
    var sum = 0.0;
    for (var kk = 0u; kk < job.k; kk++) { sum += load_a(job, row, kk); }
    grads[job.d_off + row] = job.coef0 * sum;
  }
  return vec4<f32>(0.0);
}

fn finish_tile(job: Job, tile: u32, partial: vec4<f32>) {}
