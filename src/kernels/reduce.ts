/**
 * Deterministic segment sums (reduce.wgsl): layer energies, their total, losses, norms, each a fixed-order sum
 * over a strided range (struct Segment, kernels/structs.ts).
 */
import type { KernelSpec } from '../runtime/kernel.js';
import reduceWgsl from './reduce.wgsl';
import { SEGMENT_PART, SMALL_WG, part, ro, rw, workgroupSum } from './parts.js';

/** Deterministic segment sums, optionally squared and square-rooted (reduce.wgsl). Bindings: segments, src, dst. */
export function reduceKernel(subgroupSize: number | null = null): KernelSpec {
  const sum = workgroupSum(subgroupSize);
  return {
    name: 'reduce.segments',
    parts: [...sum.enable, SEGMENT_PART, part('reduce.wgsl', reduceWgsl), sum.part],
    defines: sum.defines,
    constants: sum.constants,
    entryPoint: 'main',
    bindings: [ro('segments'), ro('src'), rw('dst')],
    workgroupSize: SMALL_WG,
  };
}

/** Adds values in a buffer into another slot of it (reduce.wgsl `accumulate`). Bindings: segments, dst. */
export function accumulateKernel(subgroupSize: number | null = null): KernelSpec {
  const sum = workgroupSum(subgroupSize);
  return {
    name: 'reduce.accumulate',
    parts: [...sum.enable, SEGMENT_PART, part('reduce.wgsl', reduceWgsl), sum.part],
    defines: sum.defines,
    constants: sum.constants,
    entryPoint: 'accumulate',
    bindings: [ro('segments'), rw('dst')],
    workgroupSize: SMALL_WG,
  };
}

/** Flags of a reduce segment (reduce.wgsl). */
export const ReduceFlag = { SQUARE: 1, SQRT: 2, SQUARE2: 4 } as const;
