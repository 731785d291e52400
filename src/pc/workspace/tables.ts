/**
 * Segment tables: the records of the reduction kernels (struct Segment in reduce.wgsl and record.wgsl), each
 * summing `count` values `stride` apart from `off` (squared, square-rooted as `flags` say) times `scale` into
 * `out`, with an optional second range added. And the records of the elementwise combine kernel.
 */

/** Words of a reduce segment (struct Segment in reduce.wgsl / record.wgsl). */
const SEGMENT_WORDS = 12;

export interface SegmentSpec {
  off: number;
  count: number;
  stride: number;
  out: number;
  scale: number;
  flags?: number;
  off2?: number;
  count2?: number;
  scale2?: number;
}

/** out = a·u + b·v over n elements of the workspace (elementwise.wgsl). */
export interface CombineOp {
  n: number;
  u: number;
  v: number;
  out: number;
  a: number;
  b: number;
}

/** A segment table's bytes (struct Segment in reduce.wgsl). */
export function segmentData(segs: readonly SegmentSpec[]): ArrayBuffer {
  const data = new ArrayBuffer(Math.max(1, segs.length) * SEGMENT_WORDS * 4);
  const u32 = new Uint32Array(data);
  const f32 = new Float32Array(data);
  segs.forEach((s, i) => {
    const o = i * SEGMENT_WORDS;
    u32[o] = s.off;
    u32[o + 1] = s.count;
    u32[o + 2] = s.stride;
    u32[o + 3] = s.out;
    f32[o + 4] = s.scale;
    u32[o + 5] = s.flags ?? 0;
    u32[o + 6] = s.off2 ?? 0;
    u32[o + 7] = s.count2 ?? 0;
    f32[o + 8] = s.scale2 ?? 0;
  });
  return data;
}

/** An uploaded segment table: its buffer and the workgroups its dispatch takes (one per segment). */
export interface SegmentTable {
  readonly buffer: GPUBuffer;
  readonly workgroups: number;
}
