// Step-size control for adaptive inference, decided on the GPU so the host never reads back per step.
//
// pid_control   (one workgroup) sums the Heun stage's partials into the scaled RMS error and applies diffrax's
//               PIDController.adapt_step_size plus diffrax's loop bookkeeping (end clipping at t1 − 100 ulp,
//               max_steps), updating `state`.
// accept        (elementwise) y ← y1, φ(y) ← φ(y1) where the step just decided was accepted.
// hairer_h0     (one workgroup) d0, d1 → h0 of Hairer's initial-step algorithm (diffrax _select_initial_step).
// hairer_probe  (elementwise) t ← y + h0·f0, φ(t): the point where f1 is evaluated.
// hairer_dt0    (one workgroup) d2 → dt0 = min(100·h0, h1); starts the solve at tnext = min(t0 + dt0, t1).
// scaled_square (elementwise, chunked) partials of (y / (atol + rtol|y|))² for d0.
// activate      (elementwise) φ(y) for activities handed in by the caller.
//
// All reductions add per-tile partial pairs in a fixed order (strided per thread, then a fixed tree), so the
// same inputs give the same bits.

const RED_WG: u32 = 64u;
const CHUNK: u32 = {{CHUNK}}u;

const FLAG_DTMIN: u32 = 1u;
const FLAG_DTMAX: u32 = 2u;
const FLAG_FORCE_DTMIN: u32 = 4u;

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
  part_off: u32,     // partial pairs of the stage kernel (pid_control, hairer_dt0) or of scaled_square
  part_count: u32,
  part2_off: u32,    // second set (hairer_h0: the d1 partials)
  part2_count: u32,
  y: u32,            // families for the elementwise entries (same layout, hidden layers first)
  py: u32,
  y1: u32,
  py1: u32,
  k1: u32,
  t: u32,
  pt: u32,
  n: u32,            // elements in the hidden layers (accept, hairer_probe) or to square (scaled_square)
  sq_off: u32,       // scaled_square: first element
  sq_n: u32,         //   and how many (the whole state)
  pad0: u32,
}

@group(0) @binding(0) var<uniform> cfg: Config;
@group(0) @binding(1) var<storage, read_write> work: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: SolverState;

var<workgroup> red_x: array<f32, RED_WG>;
var<workgroup> red_y: array<f32, RED_WG>;

// Sums `count` partial pairs starting at `off`; every thread returns the totals.
fn reduce_pairs(off: u32, count: u32, lid: u32) -> vec2<f32> {
  var sx = 0.0;
  var sy = 0.0;
  for (var i = lid; i < count; i += RED_WG) {
    sx += work[off + 2u * i];
    sy += work[off + 2u * i + 1u];
  }
  red_x[lid] = sx;
  red_y[lid] = sy;
  workgroupBarrier();
  for (var width = RED_WG / 2u; width > 0u; width /= 2u) {
    if (lid < width) {
      red_x[lid] += red_x[lid + width];
      red_y[lid] += red_y[lid + width];
    }
    workgroupBarrier();
  }
  return vec2<f32>(red_x[0], red_y[0]);
}

// x^p for the PID factors, with 0 and +inf handled as IEEE pow would (WGSL's pow is undefined there).
fn pow_factor(x_is_inf: bool, x: f32, p: f32) -> f32 {
  if (p == 0.0) { return 1.0; }
  if (x_is_inf) { return select(0.0, 1e30, p > 0.0); }
  if (x <= 0.0) { return select(1e30, 0.0, p > 0.0); }
  return pow(x, p);
}

@compute @workgroup_size(RED_WG)
fn pid_control(@builtin(local_invocation_index) lid: u32) {
  let sums = reduce_pairs(cfg.part_off, cfg.part_count, lid);
  if (lid != 0u) { return; }
  if (state.done != 0u) {
    state.last_accepted = 0u;
    return;
  }
  let tprev = state.tprev;
  let tnext = state.tnext;
  let prev_dt = tnext - tprev;
  let has_dtmin = (cfg.flags & FLAG_DTMIN) != 0u;

  // A non-finite error (NaN stages become +inf in diffrax) makes scaled = +inf, inv = 0.
  let error_is_inf = sums.y > 0.0 || !is_finite(sums.x);
  let scaled = select(sqrt(sums.x / cfg.count), 0.0, error_is_inf);
  var keep = !error_is_inf && scaled < 1.0;
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
  let next_t1 = next_t0 + dt;
  let new_prev_inv = select(state.prev_inv, inv_kept, keep);
  let new_prev_prev_inv = select(state.prev_prev_inv, state.prev_inv, keep);

  // diffrax's loop: tprev = min(tprev, t1); a step ending past t1 − 100 ulp ends at t1 (or, after a
  // rejection, halfway to t1).
  let t_new = min(next_t0, cfg.t1);
  var tnext_new = next_t1;
  if (next_t1 > cfg.t1_floor) { tnext_new = select(t_new + 0.5 * (cfg.t1 - t_new), cfg.t1, keep); }

  state.tprev = t_new;
  state.tnext = tnext_new;
  state.prev_inv = new_prev_inv;
  state.prev_prev_inv = new_prev_prev_inv;
  state.at_dtmin = at_dtmin;
  state.steps += 1u;
  if (keep) { state.accepted += 1u; } else { state.rejected += 1u; }
  state.last_accepted = select(0u, 1u, keep);
  state.scaled_error = select(scaled, -1.0, error_is_inf);
  if (!(t_new < cfg.t1)) {
    state.done = 1u;
  } else if (state.steps >= cfg.max_steps) {
    state.failed = 1u;
    state.done = 1u;
  }
}

@compute @workgroup_size(RED_WG)
fn accept(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * RED_WG;
  if (i >= cfg.n || state.last_accepted == 0u) { return; }
  work[cfg.y + i] = work[cfg.y1 + i];
  work[cfg.py + i] = work[cfg.py1 + i];
}

@compute @workgroup_size(RED_WG)
fn scaled_square(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let chunk = gid.x + gid.y * nwg.x * RED_WG;
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
  work[cfg.part_off + 2u * chunk] = s;
  work[cfg.part_off + 2u * chunk + 1u] = bad;
}

@compute @workgroup_size(RED_WG)
fn hairer_h0(@builtin(local_invocation_index) lid: u32) {
  let d0_sums = reduce_pairs(cfg.part_off, cfg.part_count, lid);
  workgroupBarrier();
  let d1_sums = reduce_pairs(cfg.part2_off, cfg.part2_count, lid);
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
  let i = gid.x + gid.y * nwg.x * RED_WG;
  if (i >= cfg.n) { return; }
  let probe = work[cfg.y + i] + state.h0 * work[cfg.k1 + i];
  work[cfg.t + i] = probe;
  work[cfg.pt + i] = act(probe);
}

@compute @workgroup_size(RED_WG)
fn hairer_dt0(@builtin(local_invocation_index) lid: u32) {
  let sums = reduce_pairs(cfg.part_off, cfg.part_count, lid);
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
  let i = gid.x + gid.y * nwg.x * RED_WG;
  if (i >= cfg.n) { return; }
  work[cfg.py + i] = act(work[cfg.y + i]);
}
