// Deterministic strided sums: one workgroup per segment, each thread adding a strided subset in index order,
// then a fixed tree. out[seg.out] = seg.scale · Σ_{i < count} work[seg.off + seg.stride·i].
// Used for layer energies (½Σe²/B from partial pairs: stride 2), their total, losses and accuracies.

const RED_WG: u32 = 64u;

struct Segment {
  off: u32,
  count: u32,
  stride: u32,
  out: u32,
  scale: f32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<storage, read> segments: array<Segment>;
@group(0) @binding(1) var<storage, read_write> work: array<f32>;

var<workgroup> partial: array<f32, RED_WG>;

@compute @workgroup_size(RED_WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let seg = segments[wid.x];
  var s = 0.0;
  for (var i = lid; i < seg.count; i += RED_WG) { s += work[seg.off + seg.stride * i]; }
  partial[lid] = s;
  workgroupBarrier();
  for (var width = RED_WG / 2u; width > 0u; width /= 2u) {
    if (lid < width) { partial[lid] += partial[lid + width]; }
    workgroupBarrier();
  }
  if (lid == 0u) { work[seg.out] = seg.scale * partial[0]; }
}
