// A bit-exact copy of one buffer into another of the same size (16-byte words, so the bits of every value, NaN
// payloads and subnormals included, are kept). The divergence guard dispatches it indirectly to roll a training
// step's update back: health.wgsl writes zero workgroups unless the step diverged.

@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= arrayLength(&dst)) { return; }
  dst[i] = src[i];
}
