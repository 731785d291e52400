// Weight regularisers of the PC energy, on one layer per dispatch (the record is bound with a dynamic offset):
//
//   weight_decay   (wd/2)·‖W‖²              →  grads[W] += wd·W
//   gram           D = WᵀW − I  (in × in), the spectral penalty's residual, into `scratch`
//   spectral       (sp/2)·‖WᵀW − I‖²        →  grads[W] += 2·sp·W·D
//
// JPC defines both penalties but they never act on its own MLPs (they look for a `weight` attribute its
// Sequential layers do not have); here they act on every layer's weight. Biases are not regularised.

struct Reg {
  w_off: u32,     // W in params / grads, [out × in]
  out_dim: u32,
  in_dim: u32,
  d_off: u32,     // D in scratch, [in × in]
  coef: f32,      // wd, or 2·sp
  pad0: u32,
  pad1: u32,
  pad2: u32,
}

const REG_WG: u32 = 64u;

@group(0) @binding(0) var<uniform> reg: Reg;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> scratch: array<f32>;

fn index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * REG_WG;
}

@compute @workgroup_size(REG_WG)
fn weight_decay(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= reg.out_dim * reg.in_dim) { return; }
  grads[reg.w_off + i] += reg.coef * params[reg.w_off + i];
}

@compute @workgroup_size(REG_WG)
fn gram(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = index(gid, nwg);
  let n = reg.in_dim;
  if (idx >= n * n) { return; }
  let j = idx / n;
  let i = idx % n;
  var s = 0.0;
  for (var p = 0u; p < reg.out_dim; p++) { s = fma(params[reg.w_off + p * n + j], params[reg.w_off + p * n + i], s); }
  scratch[reg.d_off + idx] = s - select(0.0, 1.0, i == j);
}

@compute @workgroup_size(REG_WG)
fn spectral(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = index(gid, nwg);
  let n = reg.in_dim;
  if (idx >= reg.out_dim * n) { return; }
  let o = idx / n;
  let i = idx % n;
  var s = 0.0;
  for (var j = 0u; j < n; j++) { s = fma(params[reg.w_off + o * n + j], scratch[reg.d_off + j * n + i], s); }
  grads[reg.w_off + idx] += reg.coef * s;
}
