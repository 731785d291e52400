/** An uploaded segment table (struct Segment, kernels/structs.ts): its buffer and its dispatch's workgroups. */
export interface SegmentTable {
  readonly buffer: GPUBuffer;
  /** One per segment. */
  readonly workgroups: number;
}
