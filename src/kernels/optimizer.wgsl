// First-order optimisers with optax's semantics, elementwise over a flat range of parameters (or activities).
//   SGD       p ← p − lr·g
//   MOMENTUM  t ← g + μ·t;  p ← p − lr·(nesterov ? g + μ·t : t)                       (optax.trace)
//   ADAM      m ← (1−b1)g + b1·m;  v ← (1−b2)g² + b2·v;  p ← p − lr·(m/bc1) / (sqrt(v/bc2 + eps_root) + eps)
// with bc = 1 − β^count computed by the host (the step count lives on the host, so no readback).
// GUARDED (training steps) skips the update while the divergence flag (health.wgsl) is raised and scales the
// gradient by the clipping factor it computed.
// GRADS_IN_TARGET reads the gradient from the values buffer itself (activities and their gradients share the
// workspace, and a buffer cannot be bound writable and read-only at once).

struct Opt {
  n: u32,
  p_off: u32,
  g_off: u32,
  s_off: u32,   // optimiser state: trace, or m then v (n each)
  lr: f32,
  b1: f32,      // adam b1, or the momentum μ
  b2: f32,
  eps: f32,
  eps_root: f32,
  bc1: f32,
  bc2: f32,
  nesterov: u32,
}

const OPT_WG: u32 = 64u;

// VEC4: each invocation updates 4 consecutive values (the host picks it when n and every offset are multiples
// of 4 and every bound buffer's size a multiple of 16 bytes): a quarter of the loads and stores, which on
// lavapipe are per-lane loops. The maths is the same per component.
#if VEC4
alias V = vec4<f32>;
const W: u32 = 4u;
#else
alias V = f32;
const W: u32 = 1u;
#endif

@group(0) @binding(0) var<uniform> opt: Opt;
@group(0) @binding(1) var<storage, read_write> values: array<V>;
#if !GRADS_IN_TARGET
@group(0) @binding(2) var<storage, read> grads: array<V>;
#endif
#if HAS_STATE
@group(0) @binding(3) var<storage, read_write> moments: array<V>;
#endif
#if GUARDED
@group(0) @binding(4) var<storage, read> control: array<u32>;
#endif

fn grad(i: u32) -> V {
#if GRADS_IN_TARGET
  return values[opt.g_off / W + i];
#else
  return grads[opt.g_off / W + i];
#endif
}

@compute @workgroup_size(OPT_WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * OPT_WG;
  if (i >= opt.n / W) { return; }
#if GUARDED
  if (control[0] != 0u) { return; }
  let g = grad(i) * bitcast<f32>(control[5]);
#else
  let g = grad(i);
#endif
  var update = g;
  let s = opt.s_off / W + i;
#if MOMENTUM
  let trace = g + opt.b1 * moments[s];
  moments[s] = trace;
  update = select(trace, g + opt.b1 * trace, opt.nesterov != 0u);
#elif ADAM
  let m = (1.0 - opt.b1) * g + opt.b1 * moments[s];
  let v = (1.0 - opt.b2) * g * g + opt.b2 * moments[s + opt.n / W];
  moments[s] = m;
  moments[s + opt.n / W] = v;
  update = (m / opt.bc1) / (sqrt(v / opt.bc2 + opt.eps_root) + opt.eps);
#endif
  let p = opt.p_off / W + i;
  values[p] = values[p] - opt.lr * update;
}
