// Layer predictions f_l(z_{l-1}) = s_l · (W_l φ(z_{l-1}) + b_l), fused with what follows them.
//
// FORWARD (feedforward initialisation, one layer per dispatch):
//   c ← pred (the activity z_l);  d ← φ(pred) if WRITE_PHI;  e ← pred if WRITE_PRED (the first layer's
//   prediction, constant during inference because the input is clamped). With ADD_ERR the activity is
//   pred + ε_l, ε_l read at part_off (error-reparameterised PC's forward pass; e still gets pred alone).
// ERRORS (all layers in one dispatch), the prediction errors the energy and every gradient are made of:
//   hidden:  c ← e_l = z_l − pred                      (z_l read at d)
//   first:   c ← e_1 = z_1 − pred_1, pred_1 read at e (no matmul: k = 0)
//   output:  c ← e_L = y − pred (mse, y read at d), or c ← pred (the logits, ce; see output.wgsl)
//   partial sums of e² per tile → the first of the 4 slots at part_off + 4·tile (the layer energy is ½Σe²/B).
// A = φ(z_{l-1}) [B × in] (or the input x, or a free z_0 without activation), B = W_l stored [out × in]
// (JPC's layout), so this is A·Wᵀ. coef0 = s_l (the layer's parameter scaling). With SKIP (an identity residual,
// hidden layers of equal width) the prediction also adds z_{l-1}, read at f. Bindings and ld / st: layer-work.wgsl.
// With CONV, jobs with a geometry are one example's convolution or pooling (conv-gather.wgsl): A is the kernel,
// B the gathered input (x or φ(z_{l−1}) at a), the bias per row (output channel); a pooling's value replaces acc.

const FLAG_BIAS: u32 = 1u;
const FLAG_FIRST: u32 = 2u;
const FLAG_OUTPUT: u32 = 4u;
const FLAG_WRITE_PHI: u32 = 8u;
const FLAG_WRITE_PRED: u32 = 16u;
const FLAG_LOGITS: u32 = 32u;
const FLAG_SKIP: u32 = 64u;
const FLAG_ADD_ERR: u32 = 128u;

fn load_b(job: Job, kk: u32, col: u32) -> f32 {
#if CONV
  if (gather_of(job) != GATHER_NONE) { return conv_gather(geometry(job), job.a_off, kk, col, false); }
#endif
  return params[job.b_off + col * job.k + kk];
}

#if CONV
// A convolution job of one example: rows are output channels, so A is the kernel [C_out, C_in·kh·kw] at b.
fn conv_weight(job: Job, row: u32, kk: u32) -> f32 {
  let g = geometry(job);
  let taps = g.kh * g.kw;
  let c = div_u(kk, taps);
  return params[job.b_off + row * job.k + c * taps + tap(g, kk - c * taps, g.flip)];
}
#endif

fn prediction(job: Job, row: u32, col: u32, acc: f32) -> f32 {
  if ((job.flags & FLAG_FIRST) != 0u) { return ld(job.e_off + row * job.n + col); }
#if CONV
  var v = gathered(job, row, col, acc);
  // A convolution's bias is per output channel, its job's row.
  let bias_at = select(col, row, gather_of(job) != GATHER_NONE);
#else
  var v = acc;
  let bias_at = col;
#endif
  if ((job.flags & FLAG_BIAS) != 0u) { v += params[job.bias_off + bias_at]; }
  var pred = job.coef0 * v;
  if ((job.flags & FLAG_SKIP) != 0u) { pred += ld(job.f_off + row * job.n + col); }
  return pred;
}

fn epilogue(job: Job, row: u32, col: u32, acc: f32) -> vec4<f32> {
  let at = row * job.n + col;
  let pred = prediction(job, row, col, acc);
#if ERRORS
#if CONV
  // Where a max pooling's maximum was, for its adjoint in the activity gradients (at bias_off).
  if (gather_of(job) == GATHER_MAX_POOL) { st(job.bias_off + at, max_pool(geometry(job), job.a_off, row, col).y); }
#endif
  if ((job.flags & FLAG_LOGITS) != 0u) {
    st(job.c_off + at, pred);
    return vec4<f32>(0.0);
  }
  let e = ld(job.d_off + at) - pred;
  st(job.c_off + at, e);
  return vec4<f32>(e * e, 0.0, 0.0, 0.0);
#else
  var z = pred;
  if ((job.flags & FLAG_ADD_ERR) != 0u) { z += ld(job.part_off + at); }
  st(job.c_off + at, z);
  if ((job.flags & FLAG_WRITE_PHI) != 0u) { st(job.d_off + at, act(z)); }
  if ((job.flags & FLAG_WRITE_PRED) != 0u) { st(job.e_off + at, pred); }
  return vec4<f32>(0.0);
#endif
}

// The same for columns col..col+3 (layer-matmul.wgsl, VEC_EPILOGUE), when every offset used is 4-aligned.
fn vec_ok(job: Job) -> bool {
#if CONV
  if (gather_of(job) != GATHER_NONE) { return false; }
#endif
  var offsets = job.n | job.c_off | job.d_off | job.e_off | job.f_off;
#if !ERRORS
  if ((job.flags & FLAG_ADD_ERR) != 0u) { offsets |= job.part_off; }
#endif
  return (offsets & 3u) == 0u;
}

fn prediction4(job: Job, at: u32, col: u32, acc: vec4<f32>) -> vec4<f32> {
  if ((job.flags & FLAG_FIRST) != 0u) { return work[(job.e_off + at) >> 2u]; }
  var v = acc;
  if ((job.flags & FLAG_BIAS) != 0u) {
    let b = job.bias_off + col;
    v += vec4<f32>(params[b], params[b + 1u], params[b + 2u], params[b + 3u]);
  }
  var pred = job.coef0 * v;
  if ((job.flags & FLAG_SKIP) != 0u) { pred += work[(job.f_off + at) >> 2u]; }
  return pred;
}

fn epilogue4(job: Job, row: u32, col: u32, acc: vec4<f32>) -> vec4<f32> {
  let at = row * job.n + col;
  let pred = prediction4(job, at, col, acc);
#if ERRORS
  if ((job.flags & FLAG_LOGITS) != 0u) {
    work[(job.c_off + at) >> 2u] = pred;
    return vec4<f32>(0.0);
  }
  let e = work[(job.d_off + at) >> 2u] - pred;
  work[(job.c_off + at) >> 2u] = e;
  return vec4<f32>(dot(e, e), 0.0, 0.0, 0.0);
#else
  var z = pred;
  if ((job.flags & FLAG_ADD_ERR) != 0u) { z += work[(job.part_off + at) >> 2u]; }
  work[(job.c_off + at) >> 2u] = z;
  if ((job.flags & FLAG_WRITE_PHI) != 0u) { work[(job.d_off + at) >> 2u] = vec4<f32>(act(z.x), act(z.y), act(z.z), act(z.w)); }
  if ((job.flags & FLAG_WRITE_PRED) != 0u) { work[(job.e_off + at) >> 2u] = pred; }
  return vec4<f32>(0.0);
#endif
}

fn finish_tile(job: Job, tile: u32, partial: vec4<f32>) {
#if ERRORS
  if ((job.flags & FLAG_LOGITS) == 0u) { st(job.part_off + 4u * tile, partial.x); }
#endif
}
