// Activity gradients of the PC energy for every hidden layer in one dispatch, fused with what uses them:
//
//   ∂F/∂z_l = (e_l − s_{l+1} · φ'(z_l) ⊙ (e_{l+1} W_{l+1})) / B,        k = −∂F/∂z_l  (the vector field)
//
// A = e_{l+1} [B × d_{l+1}] at a, B = W_{l+1} [d_{l+1} × d_l] at b (so this is e·W), e_l at d, the evaluation
// point z_l at e, the layer's offset inside the stage families at f. coef0 = s_{l+1}·w_{l+1} (scaling times the
// next layer's energy weight: λ for the output), coef1 = 1/B. Flags generalise it:
//   NO_OWN    the activity has no error of its own (a free input z_0 in unsupervised PC; the dummy output)
//   IDENTITY  φ' = 1 (z_0 enters layer 1 without activation)
//   SKIP      layer l+1 is an identity residual, so its error also pulls on z_l directly: − e_{l+1}
//   ACCUMULATE  add the value already at c (a gradient from another network sharing these activities, as in
//             bidirectional PC, where a first pass with the other network's weights leaves its part there)
// and the stage record's `decay` adds activity decay: + decay·z (its energy is decay/2 · Σ mean_b ‖z_b‖²).
//
// What the epilogue does with k is set by the stage record (a uniform bound with a dynamic offset: one record
// per stage of a Runge–Kutta step, or per step and stage when the step size is fixed). The families (y, φ(y),
// the probe point t and φ(t), the stages k_1.., the candidate y1 and φ(y1)) share one layout, so f_off locates
// the layer in each. With h the step (state.tnext − state.tprev when GATED, else the record's dt):
//
//   MODE_GRAD        c ← ∂F/∂z                                       (gradients; discrete updates)
//   MODE_STAGE       k_i ← k;  t ← y + h Σ_{j≤i} a_{i+1,j} k_j, φ(t)   (the next stage's evaluation point)
//   MODE_FINAL       y1 ← y + h Σ_{j≤i} b_j k_j, φ(y1);  with error weights: err = h Σ e_j k_j   (last stage)
//   MODE_FINAL_FSAL  k_s ← k at y1 (= the point t);  err = h Σ e_j k_j                (FSAL tableaux' last stage)
//   MODE_HAIRER1     k_1 ← f0 = k;  partial Σ (f0 / (atol + rtol|y|))²  (Hairer's initial step, d1)
//   MODE_HAIRER2     partial Σ ((k − f0) / (atol + rtol|y|))²            (Hairer's initial step, d2)
//   MODE_OPTIM       y ← optimiser(y, ∂F/∂z), φ(y); state in k_1 (and k_2)  (discrete inference; optax)
//
// Each tile writes 4 partial sums: (Σ (err/scale)², #non-finite errors, Σ k², Σ z²), z the evaluation point;
// the last two give diffrax's steady-state test rms(f) < atol + rtol·rms(y). diffrax scales the error by
// max(|y0|, |y1|), using y0 where the candidate is not finite. Bindings 1–3 and ld / st: layer-work.wgsl.

const MODE_GRAD: u32 = 0u;
const MODE_STAGE: u32 = 1u;
const MODE_FINAL: u32 = 2u;
const MODE_FINAL_FSAL: u32 = 3u;
const MODE_HAIRER1: u32 = 4u;
const MODE_HAIRER2: u32 = 5u;
const MODE_OPTIM: u32 = 6u;

const FLAG_NO_OWN: u32 = 1u;
const FLAG_IDENTITY: u32 = 2u;
const FLAG_SKIP: u32 = 4u;
const FLAG_ACCUMULATE: u32 = 8u;

const OPT_SGD: u32 = 0u;
const OPT_MOMENTUM: u32 = 1u;
const OPT_ADAM: u32 = 2u;

struct Stage {
  y: u32,
  py: u32,
  t: u32,
  pt: u32,
  k: u32,          // k_j lives at k + (j − 1)·k_stride
  k_stride: u32,
  y1: u32,         // where the candidate goes: the probe's slot (adaptive) or y itself (fixed steps)
  py1: u32,
  dt: f32,
  rtol: f32,
  atol: f32,
  index: u32,      // i: this dispatch computes k_i (1-based)
  mode: u32,
  ncoef: u32,      // coefficients used: i for the a / b row; 0 error weights means "no error estimate"
  nerr: u32,
  opt: u32,        // MODE_OPTIM: OPT_* (coef holds lr, b1/μ, b2, eps, eps_root, bc1, bc2, nesterov)
  coef: array<vec4<f32>, 4>,
  ecoef: array<vec4<f32>, 4>,
  decay: f32,      // activity decay coefficient (0: none)
  pad0: f32,
  pad1: f32,
  pad2: f32,
}
@group(0) @binding(4) var<uniform> stage: Stage;

fn load_b(job: Job, kk: u32, col: u32) -> f32 {
#if CONV
  if (gather_of(job) != GATHER_NONE) { return conv_gather(geometry(job), job.a_off, kk, col, false); }
#endif
  return params[job.b_off + kk * job.n + col];
}

#if CONV
// The carry of a convolution into its input, one example: rows are the input's channels c, kk = (c_out, ky, kx),
// so A[c, kk] = W[c_out, c, ky, kx] (W stored [C_out, C_in, kh, kw] at b) and B the output error's CONV_T gather.
fn conv_weight(job: Job, row: u32, kk: u32) -> f32 {
  let g = geometry(job);
  let taps = g.kh * g.kw;
  let co = div_u(kk, taps);
  return params[job.b_off + (co * job.m + row) * taps + tap(g, kk - co * taps, g.flip)];
}
#endif

fn step_size() -> f32 {
#if GATED
  return state.tnext - state.tprev;
#else
  return stage.dt;
#endif
}

fn coef(j: u32) -> f32 {
  return stage.coef[j / 4u][j % 4u];
}

fn ecoef(j: u32) -> f32 {
  return stage.ecoef[j / 4u][j % 4u];
}

#if !VEC4_ONLY
fn k_at(j: u32, o: u32) -> f32 {
  return ld(stage.k + (j - 1u) * stage.k_stride + o);
}

// Σ_{j≤i} w_j k_j with k_i = k_now (this dispatch's stage, in a register) and the earlier stages from memory.
// (A branch, not select: select would load k_i from memory too, and on lavapipe every lane-varying load is a
// per-lane loop.)
fn combine(o: u32, k_now: f32, error_weights: bool) -> f32 {
  var sum = 0.0;
  let count = select(stage.ncoef, stage.nerr, error_weights);
  for (var j = 1u; j <= count; j++) {
    let w = select(coef(j - 1u), ecoef(j - 1u), error_weights);
    if (j == stage.index) {
      sum += w * k_now;
    } else {
      sum += w * k_at(j, o);
    }
  }
  return sum;
}

// y at o, the step's start. At a step's first stage the evaluation point is y itself (z, already loaded): every
// Euler step, and the first stage of the others.
fn start_value(job: Job, o: u32, z: f32) -> f32 {
  if (stage.y + job.f_off == job.e_off) { return z; }
  return ld(stage.y + o);
}

#endif

// (err/scale)² and the non-finite count of an embedded error estimate.
fn error_partial(err: f32, y0: f32, y1: f32) -> vec2<f32> {
  if (!is_finite(err)) { return vec2<f32>(0.0, 1.0); }
  let y1_scale = select(y0, y1, is_finite(y1));
  let r = err / (stage.atol + stage.rtol * max(abs(y0), abs(y1_scale)));
  return vec2<f32>(r * r, 0.0);
}

#if !VEC4_ONLY
fn optimiser_step(o: u32, z: f32, g: f32) -> f32 {
  let lr = stage.coef[0].x;
  var update = g;
  if (stage.opt == OPT_MOMENTUM) {
    let mu = stage.coef[0].y;
    let trace = g + mu * k_at(1u, o);
    st(stage.k + o, trace);
    update = select(trace, g + mu * trace, stage.coef[1].w != 0.0);
  } else if (stage.opt == OPT_ADAM) {
    let b1 = stage.coef[0].y;
    let b2 = stage.coef[0].z;
    let m = (1.0 - b1) * g + b1 * k_at(1u, o);
    let v = (1.0 - b2) * g * g + b2 * k_at(2u, o);
    st(stage.k + o, m);
    st(stage.k + stage.k_stride + o, v);
    update = (m / stage.coef[1].y) / (sqrt(v / stage.coef[1].z + stage.coef[1].x) + stage.coef[0].w);
  }
  return z - lr * update;
}

fn epilogue(job: Job, row: u32, col: u32, acc: f32) -> vec4<f32> {
  let at = row * job.n + col;
  let z = ld(job.e_off + at);
  let own = select(ld(job.d_off + at), 0.0, (job.flags & FLAG_NO_OWN) != 0u);
  let slope = select(act_grad(z), 1.0, (job.flags & FLAG_IDENTITY) != 0u);
#if CONV
  var g = own - job.coef0 * slope * gathered(job, row, col, acc) + stage.decay * z;
  // A residual's error has z's shape: one example's planes (convolution jobs) or the batch's rows.
  let skip_at = select(row * job.k + col, at, gather_of(job) != GATHER_NONE);
#else
  var g = own - job.coef0 * slope * acc + stage.decay * z;
  let skip_at = row * job.k + col;
#endif
  if ((job.flags & FLAG_SKIP) != 0u) { g -= ld(job.a_off + skip_at); }
  var grad = g * job.coef1;
  if ((job.flags & FLAG_ACCUMULATE) != 0u) { grad += ld(job.c_off + at); }
  let k = -grad;
  let o = job.f_off + at;
  let flow = vec2<f32>(k * k, z * z); // for the steady-state test at the evaluation point
  switch stage.mode {
    case MODE_GRAD: {
      st(job.c_off + at, grad);
      return vec4<f32>(0.0, 0.0, flow);
    }
    case MODE_STAGE: {
      let h = step_size();
      st(stage.k + (stage.index - 1u) * stage.k_stride + o, k);
      let probe = start_value(job, o, z) + h * combine(o, k, false);
      st(stage.t + o, probe);
      st(stage.pt + o, act(probe));
      return vec4<f32>(0.0, 0.0, flow);
    }
    case MODE_FINAL: {
      let h = step_size();
      let y0 = start_value(job, o, z);
      let y1 = y0 + h * combine(o, k, false);
      st(stage.y1 + o, y1);
      st(stage.py1 + o, act(y1));
      if (stage.nerr == 0u) { return vec4<f32>(0.0, 0.0, flow); }
      return vec4<f32>(error_partial(h * combine(o, k, true), y0, y1), flow);
    }
    case MODE_FINAL_FSAL: {
      let h = step_size();
      st(stage.k + (stage.index - 1u) * stage.k_stride + o, k);
      let y0 = start_value(job, o, z);
      return vec4<f32>(error_partial(h * combine(o, k, true), y0, z), flow);
    }
    case MODE_HAIRER1: {
      st(stage.k + o, k);
      let r = k / (stage.atol + stage.rtol * abs(z));
      return vec4<f32>(r * r, select(1.0, 0.0, is_finite(k)), flow);
    }
    case MODE_HAIRER2: {
      let y0 = start_value(job, o, z);
      let r = (k - k_at(1u, o)) / (stage.atol + stage.rtol * abs(y0));
      return vec4<f32>(r * r, select(1.0, 0.0, is_finite(k)), flow);
    }
    case MODE_OPTIM: {
      let z_new = optimiser_step(o, z, grad);
      st(stage.y + o, z_new);
      st(stage.py + o, act(z_new));
      return vec4<f32>(0.0, 0.0, flow);
    }
    default: {
      return vec4<f32>(0.0);
    }
  }
}

// Whether the job takes epilogue4: its and the stage record's offsets are 4-aligned. The discrete-inference and
// Hairer modes (once per solve or cheap) take the scalar path. (Host twins: epilogue4Ready, actKernelTakesVec4.)
fn vec_ok(job: Job) -> bool {
#if CONV
  if (gather_of(job) != GATHER_NONE) { return false; }
#endif
  var offsets = job.n | job.c_off | job.d_off | job.e_off | job.f_off;
  if ((job.flags & FLAG_SKIP) != 0u) { offsets |= job.a_off | job.k; }
  offsets |= stage.y | stage.py | stage.t | stage.pt | stage.k | stage.k_stride | stage.y1 | stage.py1;
  return (offsets & 3u) == 0u && stage.mode <= MODE_FINAL_FSAL;
}

#endif

// The epilogue for columns col..col+3 (layer-matmul.wgsl, VEC_EPILOGUE). In the VEC4_ONLY variant, which the
// host picks when every job and the stage record pass vec_ok, it is the only path compiled: the scalar one, with
// every stage mode, is a large share of this kernel's first-use compile time on lavapipe (DEVELOPERS.md).

fn ld4(i: u32) -> vec4<f32> {
  return work[i >> 2u];
}

fn st4(i: u32, v: vec4<f32>) {
  work[i >> 2u] = v;
}

fn act4(x: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(act(x.x), act(x.y), act(x.z), act(x.w));
}

fn combine4(o: u32, k_now: vec4<f32>, error_weights: bool) -> vec4<f32> {
  var sum = vec4<f32>(0.0);
  let count = select(stage.ncoef, stage.nerr, error_weights);
  for (var j = 1u; j <= count; j++) {
    let w = select(coef(j - 1u), ecoef(j - 1u), error_weights);
    if (j == stage.index) {
      sum += w * k_now;
    } else {
      sum += w * ld4(stage.k + (j - 1u) * stage.k_stride + o);
    }
  }
  return sum;
}

fn start_value4(job: Job, o: u32, z: vec4<f32>) -> vec4<f32> {
  if (stage.y + job.f_off == job.e_off) { return z; }
  return ld4(stage.y + o);
}

fn error_partial4(err: vec4<f32>, y0: vec4<f32>, y1: vec4<f32>) -> vec2<f32> {
  return error_partial(err.x, y0.x, y1.x) + error_partial(err.y, y0.y, y1.y) + error_partial(err.z, y0.z, y1.z) +
    error_partial(err.w, y0.w, y1.w);
}

fn epilogue4(job: Job, row: u32, col: u32, acc: vec4<f32>) -> vec4<f32> {
  let at = row * job.n + col;
  let z = ld4(job.e_off + at);
  var own = vec4<f32>(0.0);
  if ((job.flags & FLAG_NO_OWN) == 0u) { own = ld4(job.d_off + at); }
  var slope = vec4<f32>(1.0);
  if ((job.flags & FLAG_IDENTITY) == 0u) { slope = vec4<f32>(act_grad(z.x), act_grad(z.y), act_grad(z.z), act_grad(z.w)); }
  var g = own - job.coef0 * slope * acc + stage.decay * z;
  if ((job.flags & FLAG_SKIP) != 0u) { g -= ld4(job.a_off + row * job.k + col); }
  var grad = g * job.coef1;
  if ((job.flags & FLAG_ACCUMULATE) != 0u) { grad += ld4(job.c_off + at); }
  let k = -grad;
  let o = job.f_off + at;
  let flow = vec2<f32>(dot(k, k), dot(z, z));
  switch stage.mode {
    case MODE_GRAD: {
      st4(job.c_off + at, grad);
      return vec4<f32>(0.0, 0.0, flow);
    }
    case MODE_STAGE: {
      let h = step_size();
      st4(stage.k + (stage.index - 1u) * stage.k_stride + o, k);
      let probe = start_value4(job, o, z) + h * combine4(o, k, false);
      st4(stage.t + o, probe);
      st4(stage.pt + o, act4(probe));
      return vec4<f32>(0.0, 0.0, flow);
    }
    case MODE_FINAL: {
      let h = step_size();
      let y0 = start_value4(job, o, z);
      let y1 = y0 + h * combine4(o, k, false);
      st4(stage.y1 + o, y1);
      st4(stage.py1 + o, act4(y1));
      if (stage.nerr == 0u) { return vec4<f32>(0.0, 0.0, flow); }
      return vec4<f32>(error_partial4(h * combine4(o, k, true), y0, y1), flow);
    }
    default: {  // MODE_FINAL_FSAL (vec_ok admits no other mode)
      let h = step_size();
      st4(stage.k + (stage.index - 1u) * stage.k_stride + o, k);
      let y0 = start_value4(job, o, z);
      return vec4<f32>(error_partial4(h * combine4(o, k, true), y0, z), flow);
    }
  }
}

fn finish_tile(job: Job, tile: u32, partial: vec4<f32>) {
  let at = job.part_off + 4u * tile;
  if ((at & 3u) == 0u) {
    st4(at, partial);
  } else {
    st(at, partial.x);
    st(at + 1u, partial.y);
    st(at + 2u, partial.z);
    st(at + 3u, partial.w);
  }
}
