// workgroup_sum: the sum of one vec4 per invocation over a workgroup of RED_WG invocations, returned to every
// invocation, in a fixed order (so every reduction is deterministic on a given adapter). The including file
// runs RED_WG invocations per workgroup and calls it from uniform control flow; calling it twice in one dispatch
// needs a workgroupBarrier() in between (the scratch array is reused).
//
// SUBGROUP_REDUCE (the adapter's subgroup size SG is fixed, a power of two, RED_WG / SG ≤ SG): each subgroup
// sums its lanes by a butterfly of subgroupShuffleXor, the subgroups' sums meet in workgroup memory, and a
// second butterfly adds them: one barrier instead of log2(RED_WG) + 1 (barriers are costly on CPU adapters,
// where a workgroup's subgroups run one after another). Otherwise a tree in workgroup memory.

const RED_WG: u32 = 64u;  // SMALL_WG in kernels/parts.ts

#if SUBGROUP_REDUCE
const SG: u32 = {{SG}}u;
var<workgroup> sum_scratch: array<vec4<f32>, RED_WG / SG>;

fn subgroup_butterfly(v: vec4<f32>) -> vec4<f32> {
  var s = v;
  for (var width = SG / 2u; width > 0u; width /= 2u) { s += subgroupShuffleXor(s, width); }
  return s;
}

fn workgroup_sum(v: vec4<f32>, lid: u32) -> vec4<f32> {
  let s = subgroup_butterfly(v);
  if (lid % SG == 0u) { sum_scratch[lid / SG] = s; }
  workgroupBarrier();
  let j = lid % SG;
  return subgroup_butterfly(select(vec4<f32>(0.0), sum_scratch[min(j, RED_WG / SG - 1u)], j < RED_WG / SG));
}
#else
var<workgroup> sum_scratch: array<vec4<f32>, RED_WG>;

fn workgroup_sum(v: vec4<f32>, lid: u32) -> vec4<f32> {
  sum_scratch[lid] = v;
  workgroupBarrier();
  for (var width = RED_WG / 2u; width > 0u; width /= 2u) {
    if (lid < width) { sum_scratch[lid] += sum_scratch[lid + width]; }
    workgroupBarrier();
  }
  return sum_scratch[0];
}
#endif
