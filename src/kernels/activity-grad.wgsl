// Activity gradients of the PC energy for every hidden layer in one dispatch, fused with what uses them:
//
//   ∂F/∂z_l = (e_l − s_{l+1} · φ'(z_l) ⊙ (e_{l+1} W_{l+1})) / B,        k = −∂F/∂z_l  (the vector field)
//
// A = e_{l+1} [B × d_{l+1}] at a, B = W_{l+1} [d_{l+1} × d_l] at b (so this is e·W), e_l at d, the evaluation
// point z_l at e, the layer's offset inside the stage families at f. coef0 = s_{l+1}, coef1 = 1/B.
//
// The stage (one #if) decides what the epilogue does with k; the stage families (y, φ(y), Heun's probe t and
// φ(t), k1, the candidate y1 and φ(y1)) share one layout, so f_off locates the layer in each of them:
//   STAGE_GRAD     c ← ∂F/∂z_l                                     (compute/update activities, discrete optimisers)
//   STAGE_EULER    y ← y + dt·k, φ(y)                                (explicit Euler, dt per step)
//   STAGE_HEUN1    k1 ← k;  t ← y + h·k, φ(t)                        (h = tnext − tprev from the solver state)
//   STAGE_HEUN2    y1 ← y + h(k1/2 + k/2), φ(y1);  err = h(k1/2 − k/2);
//                  partials: Σ (err / (atol + rtol·max(|y|, |y1|)))², and the count of non-finite errors
//   STAGE_HAIRER1  k1 ← f0 = k;  partial Σ (f0 / (atol + rtol|y|))²  (Hairer's initial step, d1)
//   STAGE_HAIRER2  partial Σ ((k − f0) / (atol + rtol|y|))²          (Hairer's initial step, d2)

@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> work: array<f32>;
#if GATED
@group(0) @binding(3) var<storage, read> state: SolverState;
#endif

// Family offsets and per-step scalars; bound with a dynamic offset so Euler can give each step its own dt.
struct Stage {
  y: u32,
  py: u32,
  t: u32,
  pt: u32,
  k1: u32,
  y1: u32,
  py1: u32,
  pad0: u32,
  dt: f32,
  rtol: f32,
  atol: f32,
  pad1: f32,
}
@group(0) @binding(4) var<uniform> stage: Stage;

fn skip_dispatch() -> bool {
#if GATED
  return state.done != 0u;
#else
  return false;
#endif
}

fn load_a(job: Job, row: u32, kk: u32) -> f32 {
  return work[job.a_off + row * job.k + kk];
}

fn load_b(job: Job, kk: u32, col: u32) -> f32 {
  return params[job.b_off + kk * job.n + col];
}

fn step_size() -> f32 {
#if GATED
  return state.tnext - state.tprev;
#else
  return stage.dt;
#endif
}

fn epilogue(job: Job, row: u32, col: u32, acc: f32) -> vec2<f32> {
  let at = row * job.n + col;
  let z = work[job.e_off + at];
  let grad = (work[job.d_off + at] - job.coef0 * act_grad(z) * acc) * job.coef1;
  let k = -grad;
  let o = job.f_off + at;
#if STAGE_GRAD
  work[job.c_off + at] = grad;
  return vec2<f32>(0.0, 0.0);
#elif STAGE_EULER
  let z_new = z + stage.dt * k;
  work[stage.y + o] = z_new;
  work[stage.py + o] = act(z_new);
  return vec2<f32>(0.0, 0.0);
#elif STAGE_HEUN1
  let h = step_size();
  work[stage.k1 + o] = k;
  let probe = work[stage.y + o] + h * k;
  work[stage.t + o] = probe;
  work[stage.pt + o] = act(probe);
  return vec2<f32>(0.0, 0.0);
#elif STAGE_HEUN2
  let h = step_size();
  let y0 = work[stage.y + o];
  let k1 = work[stage.k1 + o];
  let y1 = y0 + h * (0.5 * k1 + 0.5 * k);
  let err = h * (0.5 * k1 - 0.5 * k);
  work[stage.y1 + o] = y1;
  work[stage.py1 + o] = act(y1);
  if (!is_finite(err)) { return vec2<f32>(0.0, 1.0); }
  // diffrax scales by max(|y0|, |y1|), falling back to y0 where the candidate is not finite.
  let y1_scale = select(y0, y1, is_finite(y1));
  let r = err / (stage.atol + stage.rtol * max(abs(y0), abs(y1_scale)));
  return vec2<f32>(r * r, 0.0);
#elif STAGE_HAIRER1
  work[stage.k1 + o] = k;
  let r = k / (stage.atol + stage.rtol * abs(z));
  return vec2<f32>(r * r, select(1.0, 0.0, is_finite(k)));
#elif STAGE_HAIRER2
  let y0 = work[stage.y + o];
  let r = (k - work[stage.k1 + o]) / (stage.atol + stage.rtol * abs(y0));
  return vec2<f32>(r * r, select(1.0, 0.0, is_finite(k)));
#endif
}

fn finish_tile(job: Job, tile: u32, partial: vec2<f32>) {
#if WRITES_PARTIALS
  work[job.part_off + 2u * tile] = partial.x;
  work[job.part_off + 2u * tile + 1u] = partial.y;
#endif
}
