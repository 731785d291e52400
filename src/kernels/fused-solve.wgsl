// A whole fixed-step Runge–Kutta solve in ONE dispatch of ONE workgroup, for small networks.
//
// WebGPU has no barrier across workgroups, so a dispatch per stage is normally needed to order "prediction
// errors of every layer" before "activity gradients". Inside a single workgroup a barrier does it, so for a
// network small enough that one workgroup keeps up, this kernel loops over every step and stage itself and the
// per-dispatch cost (per stage) disappears. The maths is the one of forward.wgsl, output.wgsl and
// activity-grad.wgsl (MODE_STAGE / MODE_FINAL with the candidate written in place); the host picks this kernel
// where it is faster (see solver.ts; BENCHMARKS.md, "Fused single-workgroup solve").
//
// Invocations share the work of each phase by striding over flat element indices; a storage barrier separates
// the phases (errors → [ce softmax] → gradients + stage update).

const WG: u32 = {{WG}}u;

struct Fused {
  layers: u32,      // L
  batch: u32,       // B
  stages: u32,      // stages evaluated per step (s, or s − 1 for FSAL tableaux)
  steps: u32,
  ce: u32,
  n_all: u32,       // elements of z_1..z_L
  n_hidden: u32,
  y: u32,           // families (workspace.ts)
  py: u32,
  t: u32,
  pt: u32,
  k: u32,
  e: u32,
  pred1: u32,
  goal: u32,        // the output layer's target
  a_off: u32,       // in coefs: a as a full s×s matrix (row i holds a_{i+1, 1..i}), b, then dt of every step
  b_off: u32,
  dt_off: u32,
  inv_batch: f32,
}

// Per layer l = 1..L (index l − 1): in, out, W and bias offsets, scale, offset of z_l in the families.
struct LayerEntry {
  in_dim: u32,
  out_dim: u32,
  w_off: u32,
  b_off: u32,
  has_bias: u32,
  scale: f32,
  lay_off: u32,
  pad: u32,
}

@group(0) @binding(0) var<uniform> cfg: Fused;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> work: array<f32>;
@group(0) @binding(3) var<storage, read> layers: array<LayerEntry>;
@group(0) @binding(4) var<storage, read> coefs: array<f32>;

// Layer (1-based) holding flat activity index idx.
fn layer_of(idx: u32) -> u32 {
  var l = 1u;
  for (var j = 2u; j <= cfg.layers; j++) {
    if (layers[j - 1u].lay_off <= idx) { l = j; }
  }
  return l;
}

// Prediction errors of every layer at the point (z at zf, φ(z) at pzf); the first layer's prediction is pred1.
fn errors(lid: u32, zf: u32, pzf: u32) {
  for (var idx = lid; idx < cfg.n_all; idx += WG) {
    let l = layer_of(idx);
    let L = layers[l - 1u];
    let local = idx - L.lay_off;
    let row = local / L.out_dim;
    let col = local % L.out_dim;
    var pred = 0.0;
    if (l == 1u) {
      pred = work[cfg.pred1 + local];
    } else {
      let prev = layers[l - 2u];
      var acc = 0.0;
      for (var i = 0u; i < L.in_dim; i++) {
        acc = fma(work[pzf + prev.lay_off + row * L.in_dim + i], params[L.w_off + col * L.in_dim + i], acc);
      }
      if (L.has_bias != 0u) { acc += params[L.b_off + col]; }
      pred = L.scale * acc;
    }
    if (l == cfg.layers) {
      work[cfg.e + idx] = select(work[cfg.goal + local] - pred, pred, cfg.ce != 0u);
    } else {
      work[cfg.e + idx] = work[zf + idx] - pred;
    }
  }
  storageBarrier();
  if (cfg.ce != 0u) {
    let out = layers[cfg.layers - 1u];
    for (var r = lid; r < cfg.batch; r += WG) {
      let p = cfg.e + out.lay_off + r * out.out_dim;
      let y = cfg.goal + r * out.out_dim;
      var m = work[p];
      for (var j = 1u; j < out.out_dim; j++) { m = max(m, work[p + j]); }
      var s = 0.0;
      for (var j = 0u; j < out.out_dim; j++) { s += exp(work[p + j] - m); }
      let lse = m + log(s);
      var sum_y = 0.0;
      for (var j = 0u; j < out.out_dim; j++) { sum_y += work[y + j]; }
      for (var j = 0u; j < out.out_dim; j++) { work[p + j] = work[y + j] - exp(work[p + j] - lse) * sum_y; }
    }
    storageBarrier();
  }
}

// Activity gradients at the point zf fused with stage `stage` of the step: write k_stage and the next stage's
// point (or, for the last stage, y ← y + h Σ b_j k_j in place).
fn gradients(lid: u32, zf: u32, stage: u32, h: f32) {
  let s = cfg.stages;
  for (var idx = lid; idx < cfg.n_hidden; idx += WG) {
    let l = layer_of(idx);
    let L = layers[l - 1u];
    let next = layers[l];
    let local = idx - L.lay_off;
    let row = local / L.out_dim;
    let col = local % L.out_dim;
    var acc = 0.0;
    let e_next = cfg.e + next.lay_off + row * next.out_dim;
    for (var o = 0u; o < next.out_dim; o++) {
      acc = fma(work[e_next + o], params[next.w_off + o * L.out_dim + col], acc);
    }
    let z = work[zf + idx];
    let k = -(work[cfg.e + idx] - next.scale * act_grad(z) * acc) * cfg.inv_batch;
    let y0 = work[cfg.y + idx];
    if (stage < s) {
      work[cfg.k + (stage - 1u) * cfg.n_all + idx] = k;
      // t ← y + h Σ_{j≤stage} a_{stage+1, j} k_j   (a stored as a full s×s matrix, row = stage index).
      var sum = 0.0;
      for (var j = 1u; j <= stage; j++) {
        let kj = select(work[cfg.k + (j - 1u) * cfg.n_all + idx], k, j == stage);
        sum += coefs[cfg.a_off + stage * s + (j - 1u)] * kj;
      }
      let probe = y0 + h * sum;
      work[cfg.t + idx] = probe;
      work[cfg.pt + idx] = act(probe);
    } else {
      var sum = 0.0;
      for (var j = 1u; j <= stage; j++) {
        let kj = select(work[cfg.k + (j - 1u) * cfg.n_all + idx], k, j == stage);
        sum += coefs[cfg.b_off + (j - 1u)] * kj;
      }
      let y1 = y0 + h * sum;
      work[cfg.y + idx] = y1;
      work[cfg.py + idx] = act(y1);
    }
  }
  storageBarrier();
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  for (var n = 0u; n < cfg.steps; n++) {
    let h = coefs[cfg.dt_off + n];
    for (var i = 1u; i <= cfg.stages; i++) {
      let zf = select(cfg.t, cfg.y, i == 1u);
      let pzf = select(cfg.pt, cfg.py, i == 1u);
      errors(lid, zf, pzf);
      gradients(lid, zf, i, h);
    }
  }
}
