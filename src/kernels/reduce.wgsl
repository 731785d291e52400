// Deterministic strided sums: one workgroup per segment, each thread adding a strided subset in index order,
// then a fixed-order sum over the workgroup (workgroup-sum.wgsl). The segments: struct Segment (segment.wgsl).
//
//   dst[seg.out] = seg.scale · Σ_{i < count} x_i  +  seg.scale2 · Σ_{i < count2} x2_i
//   x_i = src[seg.off + seg.stride·i] (squared if SQUARE), x2_i = src[seg.off2 + seg.stride·i] (squared if
//   SQUARE2); the total is square-rooted at the end if SQRT (L2 norms). The second range lets one segment add
//   two differently scaled groups, e.g. the total energy: hidden layers (½/B) and cross-entropy rows (1/B).
//
// Layer energies (½Σe²/B from the partials, stride 4), their total, losses, accuracies and parameter norms.
// The source is read-only and the destination another buffer, so parameters can be reduced without copies.

const FLAG_SQUARE: u32 = 1u;
const FLAG_SQRT: u32 = 2u;
const FLAG_SQUARE2: u32 = 4u;

@group(0) @binding(0) var<storage, read> segments: array<Segment>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;


@compute @workgroup_size(RED_WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let seg = segments[wid.x];
  let square = (seg.flags & FLAG_SQUARE) != 0u;
  var s = 0.0;
  for (var i = lid; i < seg.count; i += RED_WG) {
    let v = src[seg.off + seg.stride * i];
    s += select(v, v * v, square);
  }
  let square2 = (seg.flags & FLAG_SQUARE2) != 0u;
  var s2 = 0.0;
  for (var i = lid; i < seg.count2; i += RED_WG) {
    let v = src[seg.off2 + seg.stride * i];
    s2 += select(v, v * v, square2);
  }
  let total = workgroup_sum(vec4<f32>(seg.scale * s + seg.scale2 * s2, 0.0, 0.0, 0.0), lid).x;
  if (lid == 0u) {
    dst[seg.out] = select(total, sqrt(total), (seg.flags & FLAG_SQRT) != 0u);
  }
}

// dst[seg.out] += seg.scale · Σ_{i < count} dst[seg.off + seg.stride·i]: adds values already in the destination
// (e.g. regulariser energies kept in their own slots) into another slot of it. The ranges must not overlap out.
@group(0) @binding(0) var<storage, read> acc_segments: array<Segment>;
@group(0) @binding(1) var<storage, read_write> acc_dst: array<f32>;

@compute @workgroup_size(RED_WG)
fn accumulate(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let seg = acc_segments[wid.x];
  var s = 0.0;
  for (var i = lid; i < seg.count; i += RED_WG) { s += acc_dst[seg.off + seg.stride * i]; }
  let total = workgroup_sum(vec4<f32>(seg.scale * s, 0.0, 0.0, 0.0), lid).x;
  if (lid == 0u) { acc_dst[seg.out] += total; }
}
