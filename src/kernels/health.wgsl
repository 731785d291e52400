// Divergence guard of a training step (makePcStep). `main` runs before the parameter update: it looks at the
// step's per-layer energies, activity norms, gradient norms and loss (already reduced into the scalars buffer)
// and, if any is NaN or ±Inf, raises the optimiser state's control flag, which makes the parameter update
// (optimizer.wgsl, GUARDED) a no-op. The flag is sticky: later steps are not applied either until the host has
// read and cleared it. Also computes the gradient-clipping scale min(1, clip / ‖g‖) (clip = 0: no clipping).
//
// Runaway check (runaway = 1): a finite blow-up is divergence too. The reference R of a quantity (the total
// energy at equilibrium; the loss) is the largest value of the first `warmup` steps that passed; every step
// after the first compares its value v with the threshold max(factor·R, floor) before folding it into R, so a
// blow-up at step 2 is measured against step 1 alone. `after_update` then checks the updated parameters'
// feedforward pass on the same batch (the loss; without an input the energy of the pass from the inferred z_0):
// a ruinous update shows there at once, before any later step builds on it. If it is non-finite or over the
// threshold, it raises the flag and writes the indirect dispatch arguments of the rollback (copy.wgsl restores
// the parameters and optimiser state saved just before the update); otherwise zero workgroups, so a healthy
// step pays no rollback.
//
// control words: 0 flag (0 healthy, 1 diverged) · 1 the step that diverged · 2, 3, 4 the first layer with a
// non-finite energy, activity norm, gradient norm (0xffffffff: none) · 5 the gradient scale (f32 bits) ·
// 6 kind (0 non-finite energy/activity/gradient, 1 non-finite loss, 2 energy runaway, 3 loss runaway) ·
// 7 1 if the after-update check found it (the update was rolled back) · 8 the value, 9 the threshold, 10 the
// reference (f32) · 11 steps folded into the references · 12, 13 the energy and loss references (f32) ·
// 14 factor, 15 floor (f32) · 16–18, 20–22 the rollback's indirect dispatch arguments (parameters, state).
// NaN and Inf are recognised from their bits: WGSL lets compilers assume floats are finite, so x != x may fold.

struct Health {
  n_energy: u32,
  energy_off: u32,
  n_act: u32,
  act_off: u32,
  act_first_layer: u32,  // the layer of the first activity norm (1 with a clamped input, 0 without)
  n_grad: u32,           // gradient norms: 2 per layer (weight, bias)
  grad_off: u32,
  step: u32,
  clip: f32,
  total_off: u32,        // the total energy (regularisers included)
  loss_off: u32,         // the loss; NONE without one (unsupervised)
  runaway: u32,          // 1: the runaway check is on
  factor: f32,
  floor: f32,
  warmup: u32,
  pad: u32,
  rollback_params: vec2<u32>,  // workgroups (x, y) of the rollback of the parameters
  rollback_state: vec2<u32>,   // and of the optimiser state (0, 0 without one)
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> health: Health;
@group(0) @binding(1) var<storage, read> scalars: array<f32>;
@group(0) @binding(2) var<storage, read_write> control: array<u32>;

fn non_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

fn first_bad(off: u32, n: u32, per_layer: u32) -> u32 {
  for (var i = 0u; i < n; i++) {
    if (non_finite(scalars[off + i])) { return i / per_layer; }
  }
  return NONE;
}

fn threshold(reference: f32) -> f32 {
  return max(health.factor * reference, health.floor);
}

fn raise(kind: u32, after: u32, energy: u32, act: u32, grad: u32) {
  control[0] = 1u;
  control[1] = health.step;
  control[2] = energy;
  control[3] = act;
  control[4] = grad;
  control[6] = kind;
  control[7] = after;
}

fn raise_runaway(kind: u32, after: u32, value: f32, reference: f32) {
  raise(kind, after, NONE, NONE, NONE);
  control[8] = bitcast<u32>(value);
  control[9] = bitcast<u32>(threshold(reference));
  control[10] = bitcast<u32>(reference);
  control[14] = bitcast<u32>(health.factor);
  control[15] = bitcast<u32>(health.floor);
}

@compute @workgroup_size(1)
fn main() {
  var sum_sq = 0.0;
  for (var i = 0u; i < health.n_grad; i++) {
    let g = scalars[health.grad_off + i];
    sum_sq += g * g;
  }
  var scale = 1.0;
  if (health.clip > 0.0 && sqrt(sum_sq) > health.clip) { scale = health.clip / sqrt(sum_sq); }
  control[5] = bitcast<u32>(scale);
  if (control[0] != 0u) { return; }
  let energy = first_bad(health.energy_off, health.n_energy, 1u);
  var act = first_bad(health.act_off, health.n_act, 1u);
  if (act != NONE) { act += health.act_first_layer; }
  let grad = first_bad(health.grad_off, health.n_grad, 2u);
  if (energy != NONE || act != NONE || grad != NONE || non_finite(sum_sq)) {
    raise(0u, 0u, energy, act, grad);
    return;
  }
  let has_loss = health.loss_off != NONE;
  var loss = 0.0;
  if (has_loss) {
    loss = scalars[health.loss_off];
    if (non_finite(loss)) {
      raise(1u, 0u, NONE, NONE, NONE);
      return;
    }
  }
  if (health.runaway == 0u) { return; }
  let total = scalars[health.total_off];
  let folded = control[11];
  var ref_energy = bitcast<f32>(control[12]);
  var ref_loss = bitcast<f32>(control[13]);
  if (folded > 0u) {
    if (total > threshold(ref_energy)) {
      raise_runaway(2u, 0u, total, ref_energy);
      return;
    }
    if (has_loss && loss > threshold(ref_loss)) {
      raise_runaway(3u, 0u, loss, ref_loss);
      return;
    }
  }
  if (folded < health.warmup) {
    control[11] = folded + 1u;
    control[12] = bitcast<u32>(select(max(ref_energy, total), total, folded == 0u));
    if (has_loss) { control[13] = bitcast<u32>(select(max(ref_loss, loss), loss, folded == 0u)); }
  }
}

// After the (guarded) update, with the updated parameters' feedforward pass on the step's batch recomputed: the
// loss (supervised) or, without an input, the energy of the pass from the inferred z_0, against its threshold.
// Runs only with the runaway check on.
@compute @workgroup_size(1)
fn after_update() {
  var params = vec2<u32>(0u, 1u);
  var state = vec2<u32>(0u, 1u);
  if (control[0] == 0u) {
    if (health.loss_off != NONE) {
      let loss = scalars[health.loss_off];
      let reference = bitcast<f32>(control[13]);
      if (non_finite(loss)) {
        raise(1u, 1u, NONE, NONE, NONE);
      } else if (loss > threshold(reference)) {
        raise_runaway(3u, 1u, loss, reference);
      }
    } else {
      let energy = first_bad(health.energy_off, health.n_energy, 1u);
      let total = scalars[health.total_off];
      let reference = bitcast<f32>(control[12]);
      if (energy != NONE || non_finite(total)) {
        raise(0u, 1u, energy, NONE, NONE);  // energy = NONE: only the total (regularisers) overflowed
      } else if (total > threshold(reference)) {
        raise_runaway(2u, 1u, total, reference);
      }
    }
    if (control[0] != 0u) {
      params = health.rollback_params;
      state = health.rollback_state;
    }
  }
  control[16] = params.x;
  control[17] = params.y;
  control[18] = 1u;
  control[20] = state.x;
  control[21] = state.y;
  control[22] = 1u;
}
