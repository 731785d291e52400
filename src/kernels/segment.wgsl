// One segment of a strided sum (reduce.wgsl, record.wgsl; packSegments in kernels/structs.ts):
//   scale · Σ_{i < count} x[off + stride·i]  +  scale2 · Σ_{i < count2} x[off2 + stride·i]   → out
// with the squares and the square root that `flags` ask for (reduce.wgsl). record.wgsl uses the first range only.

struct Segment {
  off: u32,
  count: u32,
  stride: u32,
  out: u32,      // where the sum goes (record.wgsl: the position in the row)
  scale: f32,
  flags: u32,
  off2: u32,
  count2: u32,
  scale2: f32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
}
