/**
 * The WGSL parts several kernel families share (the solver state, the reduce segment, the subgroup `enable`
 * line, the workgroup sum), the binding helpers every descriptor uses, and the workgroup size of the small
 * kernels. A kernel's WGSL is its parts joined in order (runtime/kernel.ts assembles and caches them).
 */
import type { BindingSpec, SourcePart } from '../runtime/kernel.js';
import segmentWgsl from './segment.wgsl';
import solverStateWgsl from './solver-state.wgsl';
import workgroupSumWgsl from './workgroup-sum.wgsl';

/** One `.wgsl` file of a kernel, named for error messages. */
export const part = (file: string, source: string): SourcePart => ({ file, source });

/** struct SolverState, read by the gated kernels and written by the controller (solver.wgsl). */
export const STATE_PART = part('solver-state.wgsl', solverStateWgsl);
/** struct Segment, the records of the segment sums (reduce.wgsl) and of recording (record.wgsl). */
export const SEGMENT_PART = part('segment.wgsl', segmentWgsl);
export const SUBGROUPS_PART = part('enable-subgroups.wgsl', 'enable subgroups;');
const WORKGROUP_SUM_PART = part('workgroup-sum.wgsl', workgroupSumWgsl);

/** Invocations per workgroup of the solver, output, reduce and optimiser kernels (RED_WG in workgroup-sum.wgsl). */
export const SMALL_WG = 64;

/** Workgroups of SMALL_WG invocations an elementwise dispatch over `n` elements takes. */
export function elementwiseGroups(n: number): number {
  return Math.ceil(n / SMALL_WG);
}

/**
 * The shared workgroup sum (workgroup-sum.wgsl) of the reduction kernels: subgroup butterflies where the
 * adapter reports one fixed subgroup size that is a power of two with SMALL_WG / size ≤ size, else a tree in
 * workgroup memory. `subgroupSize` is the runtime's `adapter.subgroupSize`.
 */
export function workgroupSum(subgroupSize: number | null): {
  enable: SourcePart[];
  part: SourcePart;
  defines: Record<string, boolean>;
  constants: Record<string, number>;
} {
  const sg =
    subgroupSize !== null &&
    Number.isInteger(Math.log2(subgroupSize)) &&
    SMALL_WG % subgroupSize === 0 &&
    SMALL_WG / subgroupSize <= subgroupSize
      ? subgroupSize
      : null;
  return {
    enable: sg === null ? [] : [SUBGROUPS_PART],
    part: WORKGROUP_SUM_PART,
    defines: { SUBGROUP_REDUCE: sg !== null },
    constants: sg === null ? {} : { SG: sg },
  };
}

export const ro = (name: string, index?: number): BindingSpec => ({
  name,
  kind: 'read-only-storage',
  ...(index === undefined ? {} : { index }),
});
export const rw = (name: string, index?: number): BindingSpec => ({
  name,
  kind: 'storage',
  ...(index === undefined ? {} : { index }),
});
export const uniform = (name: string, dynamicOffset = false, index?: number): BindingSpec => ({
  name,
  kind: 'uniform',
  dynamicOffset,
  ...(index === undefined ? {} : { index }),
});
