// Step control for inference, decided on the GPU so the host never reads back per step.
//
// step_control  (one workgroup) after each step's stages: the steady-state event, then either diffrax's
//               PIDController.adapt_step_size on the scaled RMS error of the embedded estimate, or (fixed step
//               sizes) the next point of diffrax's constant-step grid; then diffrax's loop bookkeeping (end
//               clipping at t1 − 100 ulp, max_steps). Updates `state`.
// accept        (elementwise) y ← y1, φ(y) ← φ(y1) where the step was accepted; for FSAL tableaux also
//               k_1 ← k_s, and the next step's second-stage point t ← y + h·a21·k_1 (its first stage is free).
// hairer_h0 / hairer_probe / hairer_dt0   Hairer's initial step (diffrax _select_initial_step): d0, d1 → h0;
//               t ← y + h0·f0; d2 → dt0 = min(100·h0, h1).
// scaled_square (elementwise, chunked) partials of (y / (atol + rtol|y|))² for d0.
// activate      (elementwise) φ(y) for activities handed in by the caller.
//
// Partial sums come as 4 floats per tile, (Σ (err/scale)², #non-finite, Σ k², Σ z²), and are added in a
// fixed order (strided per thread, then a fixed tree), so the same inputs give the same bits.
//
// Steady state (diffrax's steady_state_event): rms(f(y)) < atol + rtol·rms(y) over the whole state, the
// output layer's dummy activity (and a free z_0) included: every activity has a gradient job, so the stage
// partials cover them all. diffrax tests it at t0 and after every step. Here the test at y_n uses f(y_n) from the
// first stage of the next step (non-FSAL tableaux), or from the last stage at the candidate (FSAL): the same
// decisions at no extra cost.

const CHUNK: u32 = {{CHUNK}}u;

const FLAG_DTMIN: u32 = 1u;
const FLAG_DTMAX: u32 = 2u;
const FLAG_FORCE_DTMIN: u32 = 4u;
const FLAG_EVENT: u32 = 8u;
const FLAG_FSAL: u32 = 16u;

const CONTROLLER_PID: u32 = 0u;
const CONTROLLER_CONSTANT: u32 = 1u;

struct Config {
  t0: f32,
  t1: f32,
  t1_floor: f32,     // t1 minus 100 f32 ulps: a step ending past it ends at t1
  rtol: f32,
  atol: f32,
  pcoeff: f32,
  icoeff: f32,
  dcoeff: f32,
  factormin: f32,
  factormax: f32,
  safety: f32,
  dtmin: f32,
  dtmax: f32,
  error_order: f32,
  count: f32,        // elements in the whole ODE state (the dummy output activity included), for RMS norms
  max_steps: u32,
  flags: u32,
  err_off: u32,      // partials of the stage that carries the error estimate
  err_count: u32,
  ev_off: u32,       // partials with f(y) for the event test after each step
  ev_count: u32,
  ev0_off: u32,      // FSAL: partials of the initial first stage (the event test at t0)
  ev0_count: u32,
  controller: u32,   // CONTROLLER_*
  event_rtol: f32,
  event_atol: f32,
  a21: f32,          // FSAL: the second stage's coefficient, for the next step's first probe
  grid_off: u32,     // constant steps: grid[m] = end of step m + 1
  grid_n: u32,
  y: u32,            // families for the elementwise entries (same layout, hidden layers first)
  py: u32,
  y1: u32,
  py1: u32,
  k1: u32,
  ks: u32,           // FSAL: the last stage's slot
  t: u32,
  pt: u32,
  n: u32,            // elements in the whole state (every activity)
  sq_off: u32,       // scaled_square: first element and count (the whole state)
  sq_n: u32,
  pad5: u32,
  pad6: u32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
  pad3: u32,
  pad4: u32,
}

@group(0) @binding(0) var<uniform> cfg: Config;
@group(0) @binding(1) var<storage, read_write> work: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: SolverState;

// Sums `count` partial quads starting at `off`; every thread returns the totals.
fn reduce_quads(off: u32, count: u32, lid: u32) -> vec4<f32> {
  var s = vec4<f32>(0.0);
  for (var i = lid; i < count; i += RED_WG) {
    let at = off + 4u * i;
    s += vec4<f32>(work[at], work[at + 1u], work[at + 2u], work[at + 3u]);
  }
  let total = workgroup_sum(s, lid);
  workgroupBarrier(); // everyone has read the scratch array before it is reused
  return total;
}

// x^p for the PID factors, with 0 and +inf handled as IEEE pow would (WGSL's pow is undefined there).
fn pow_factor(x_is_inf: bool, x: f32, p: f32) -> f32 {
  if (p == 0.0) { return 1.0; }
  if (x_is_inf) { return select(0.0, 1e30, p > 0.0); }
  if (x <= 0.0) { return select(1e30, 0.0, p > 0.0); }
  return pow(x, p);
}

// diffrax's steady-state condition from the partials of a stage evaluated at y (z = Σ f², w = Σ y² over
// the whole state).
fn steady(p: vec4<f32>) -> bool {
  let rms_f = sqrt(p.z / cfg.count);
  let rms_y = sqrt(p.w / cfg.count);
  return is_finite(rms_f) && rms_f < cfg.event_atol + cfg.event_rtol * rms_y;
}

fn finish_by_event() {
  state.done = 1u;
  state.event = 1u;
}

@compute @workgroup_size(RED_WG)
fn step_control(@builtin(local_invocation_index) lid: u32) {
  let err = reduce_quads(cfg.err_off, cfg.err_count, lid);
  let ev = reduce_quads(cfg.ev_off, cfg.ev_count, lid);
  let ev0 = reduce_quads(cfg.ev0_off, cfg.ev0_count, lid);
  if (lid != 0u) { return; }
  if (state.done != 0u) {
    state.last_accepted = 0u;
    return;
  }
  let event_on = (cfg.flags & FLAG_EVENT) != 0u;
  let fsal = (cfg.flags & FLAG_FSAL) != 0u;
  // The event at the state this step started from (non-FSAL: every step; FSAL: the initial state).
  if (event_on && (!fsal || state.steps == 0u) && steady(select(ev, ev0, fsal))) {
    finish_by_event();
    state.last_accepted = 0u;
    return;
  }

  let tprev = state.tprev;
  let tnext = state.tnext;
  var keep = true;
  var next_t1 = tnext;
  var error_is_inf = false;
  var scaled = 0.0;
  if (cfg.controller == CONTROLLER_PID) {
    let prev_dt = tnext - tprev;
    let has_dtmin = (cfg.flags & FLAG_DTMIN) != 0u;
    // A non-finite error (NaN stages become +inf in diffrax) makes scaled = +inf, inv = 0.
    error_is_inf = err.y > 0.0 || !is_finite(err.x);
    scaled = select(sqrt(err.x / cfg.count), 0.0, error_is_inf);
    keep = !error_is_inf && scaled < 1.0;
    if (has_dtmin) { keep = keep || state.at_dtmin != 0u; }
    // inv = 1/scaled: +inf when scaled == 0, 0 when scaled == +inf.
    let inv_is_inf = !error_is_inf && scaled == 0.0;
    let inv = select(select(1.0 / max(scaled, 1e-38), 0.0, error_is_inf), 0.0, inv_is_inf);
    let coeff1 = (cfg.icoeff + cfg.pcoeff + cfg.dcoeff) / cfg.error_order;
    let coeff2 = -(cfg.pcoeff + 2.0 * cfg.dcoeff) / cfg.error_order;
    let coeff3 = cfg.dcoeff / cfg.error_order;
    let factor1 = pow_factor(inv_is_inf, inv, coeff1);
    let factor2 = pow_factor(false, state.prev_inv, coeff2);
    let factor3 = pow_factor(false, state.prev_prev_inv, coeff3);
    let fmin = select(cfg.factormin, 1.0, keep);
    let fmax = select(cfg.safety, cfg.factormax, keep);
    let factor = clamp(cfg.safety * factor1 * factor2 * factor3, fmin, fmax);
    var dt = prev_dt * factor;
    let inv_kept = select(inv, 1.0, inv == 0.0 || inv_is_inf);
    var at_dtmin = state.at_dtmin;
    if ((cfg.flags & FLAG_DTMAX) != 0u) { dt = min(dt, cfg.dtmax); }
    if (has_dtmin) {
      if ((cfg.flags & FLAG_FORCE_DTMIN) == 0u && dt < cfg.dtmin) {
        state.failed = 2u;
        state.done = 1u;
        state.last_accepted = 0u;
        return;
      }
      if (at_dtmin != 0u && factor == 1.0) { dt = cfg.dtmin; }
      at_dtmin = select(0u, 1u, dt <= cfg.dtmin);
      dt = max(dt, cfg.dtmin);
    }
    let next_t0 = select(tprev, tnext, keep);
    next_t1 = next_t0 + dt;
    let new_prev_prev_inv = select(state.prev_prev_inv, state.prev_inv, keep);
    state.prev_inv = select(state.prev_inv, inv_kept, keep);
    state.prev_prev_inv = new_prev_prev_inv;
    state.at_dtmin = at_dtmin;
  } else {
    // diffrax's ConstantStepSize: always accepted; the next step ends at the next grid point.
    let m = state.steps + 1u;
    next_t1 = select(cfg.t1, work[cfg.grid_off + m], m < cfg.grid_n);
  }

  // diffrax's loop: tprev = min(tprev, t1); a step ending past t1 − 100 ulp ends at t1 (or, after a
  // rejection, halfway to t1).
  let t_new = min(select(tprev, tnext, keep), cfg.t1);
  var tnext_new = next_t1;
  if (next_t1 > cfg.t1_floor) { tnext_new = select(t_new + 0.5 * (cfg.t1 - t_new), cfg.t1, keep); }

  state.tprev = t_new;
  state.tnext = tnext_new;
  state.steps += 1u;
  if (keep) { state.accepted += 1u; } else { state.rejected += 1u; }
  state.last_accepted = select(0u, 1u, keep);
  state.scaled_error = select(scaled, -1.0, error_is_inf);
  // FSAL: the last stage evaluated f at the candidate, so the event is tested on the new state at once.
  if (event_on && fsal && keep && steady(ev)) {
    finish_by_event();
  } else if (!(t_new < cfg.t1)) {
    state.done = 1u;
  } else if (state.steps >= cfg.max_steps) {
    state.failed = 1u;
    state.done = 1u;
  }
}

fn element_index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * RED_WG;
}

@compute @workgroup_size(RED_WG)
fn accept(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = element_index(gid, nwg);
  if (i >= cfg.n) { return; }
  let fsal = (cfg.flags & FLAG_FSAL) != 0u;
  if (state.last_accepted != 0u) {
    work[cfg.y + i] = work[cfg.y1 + i];
    work[cfg.py + i] = work[cfg.py1 + i];
    if (fsal) { work[cfg.k1 + i] = work[cfg.ks + i]; }
  }
  if (fsal && state.done == 0u) {
    let probe = work[cfg.y + i] + (state.tnext - state.tprev) * cfg.a21 * work[cfg.k1 + i];
    work[cfg.t + i] = probe;
    work[cfg.pt + i] = act(probe);
  }
}

@compute @workgroup_size(RED_WG)
fn scaled_square(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let chunk = element_index(gid, nwg);
  let start = chunk * CHUNK;
  if (start >= cfg.sq_n) { return; }
  var s = 0.0;
  var bad = 0.0;
  for (var i = start; i < min(start + CHUNK, cfg.sq_n); i++) {
    let v = work[cfg.sq_off + i];
    let r = v / (cfg.atol + cfg.rtol * abs(v));
    s += r * r;
    bad += select(1.0, 0.0, is_finite(v));
  }
  let at = cfg.err_off + 4u * chunk;
  work[at] = s;
  work[at + 1u] = bad;
  work[at + 2u] = 0.0;
  work[at + 3u] = 0.0;
}

@compute @workgroup_size(RED_WG)
fn hairer_h0(@builtin(local_invocation_index) lid: u32) {
  let d0_sums = reduce_quads(cfg.err_off, cfg.err_count, lid);
  let d1_sums = reduce_quads(cfg.ev_off, cfg.ev_count, lid);
  if (lid != 0u) { return; }
  let d0 = sqrt(d0_sums.x / cfg.count);
  let d1 = sqrt(d1_sums.x / cfg.count);
  let small = d0 < 1e-5 || d1 < 1e-5;
  state.h0 = select(0.01 * (d0 / max(d1, 1e-38)), 1e-6, small);
  state.d1 = d1;
  if (d0_sums.y > 0.0 || d1_sums.y > 0.0) { state.failed = 3u; state.done = 1u; }
}

@compute @workgroup_size(RED_WG)
fn hairer_probe(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = element_index(gid, nwg);
  if (i >= cfg.n) { return; }
  let probe = work[cfg.y + i] + state.h0 * work[cfg.k1 + i];
  work[cfg.t + i] = probe;
  work[cfg.pt + i] = act(probe);
}

@compute @workgroup_size(RED_WG)
fn hairer_dt0(@builtin(local_invocation_index) lid: u32) {
  let sums = reduce_quads(cfg.err_off, cfg.err_count, lid);
  if (lid != 0u) { return; }
  let h0 = state.h0;
  let d2 = sqrt(sums.x / cfg.count) / h0;
  let max_d = max(state.d1, d2);
  var dt0 = 0.0;
  if (max_d <= 1e-15) {
    dt0 = min(100.0 * h0, max(1e-6, h0 * 1e-3));
  } else {
    dt0 = min(100.0 * h0, pow(0.01 / max_d, 1.0 / cfg.error_order));
  }
  if ((cfg.flags & FLAG_DTMAX) != 0u) { dt0 = min(dt0, cfg.dtmax); }
  if ((cfg.flags & FLAG_DTMIN) != 0u) { dt0 = max(dt0, cfg.dtmin); }
  state.tprev = cfg.t0;
  state.tnext = min(cfg.t0 + dt0, cfg.t1);
  if (sums.y > 0.0) { state.failed = 3u; state.done = 1u; }
}

@compute @workgroup_size(RED_WG)
fn activate(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = element_index(gid, nwg);
  if (i >= cfg.n) { return; }
  work[cfg.py + i] = act(work[cfg.y + i]);
}
