// Elementwise linear combinations of workspace regions, several independent ones per dispatch (one per
// workgroup row y):
//
//   out[i] = a·u[i] + b·v[i],   i < n
//
// e.g. error-reparameterised PC's error gradient (ε − r)/B from the errors ε and the back-propagated residual r.
// With ACTIVATE the entry point `activate` maps instead (a and b, v unused):
//
//   out[i] = φ(u[i]),   i < n
//
// with φ the activation compiled in (activations.wgsl): a second network's φ(z) of shared activities, as in
// bidirectional PC with different activations in its two networks.
// A grid-stride loop covers any n with a bounded number of workgroups.

struct Op {
  n: u32,
  u: u32,
  v: u32,
  out: u32,
  a: f32,
  b: f32,
  pad0: u32,
  pad1: u32,
}

const EW_WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> ops: array<Op>;
@group(0) @binding(1) var<storage, read_write> work: array<f32>;

@compute @workgroup_size(EW_WG)
fn combine(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u,
           @builtin(num_workgroups) nwg: vec3u) {
  let op = ops[wid.y];
  for (var i = gid.x; i < op.n; i += nwg.x * EW_WG) {
    work[op.out + i] = op.a * work[op.u + i] + op.b * work[op.v + i];
  }
}

#if ACTIVATE
@compute @workgroup_size(EW_WG)
fn activate(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u,
            @builtin(num_workgroups) nwg: vec3u) {
  let op = ops[wid.y];
  for (var i = gid.x; i < op.n; i += nwg.x * EW_WG) {
    work[op.out + i] = act(work[op.u + i]);
  }
}
#endif
