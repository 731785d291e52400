// Divergence guard of a training step (makePcStep): one invocation looks at the step's per-layer energies,
// activity norms and gradient norms (already reduced into the scalars buffer) and, if any is NaN or ±Inf,
// raises the optimiser state's control flag, which makes the parameter update (optimizer.wgsl, GUARDED) a
// no-op. The flag is sticky: later steps are not applied either until the host has read and cleared it.
// Also computes the gradient-clipping scale min(1, clip / ‖g‖) over all parameters (clip = 0: no clipping).
//
// control words: 0 flag (0 healthy, 1 diverged) · 1 the step that diverged · 2, 3, 4 the first layer with a
// non-finite energy, activity norm, gradient norm (0xffffffff: none) · 5 the gradient scale (f32 bits).
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
    control[0] = 1u;
    control[1] = health.step;
    control[2] = energy;
    control[3] = act;
    control[4] = grad;
  }
}
