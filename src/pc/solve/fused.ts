/**
 * When a fixed-step solve runs fused: one single-workgroup dispatch that loops over every step and stage itself
 * (fused-solve.wgsl) instead of two dispatches per stage. One workgroup saves the dispatches but computes on one
 * core, so it pays only for tiny networks; the limits below were measured (BENCHMARKS.md, the fused table).
 */
import type { Workspace } from '../workspace.js';
import type { FreeRunningPlan } from './plan.js';

/** Largest stage work (multiply-adds) for which the fused solve is used; measured on lavapipe (BENCHMARKS.md). */
export const FUSED_MAX_WORK = 20_000;

/**
 * The same for a batch of one on a CPU adapter, where the per-stage kernels' subgroup tiles compute one row
 * group for a single row while the fused solve's cost grows with the batch. A GPU runs the per-stage kernels on
 * many cores and the fused one on one, so it keeps FUSED_MAX_WORK.
 */
export const FUSED_MAX_WORK_ONE_ROW = 80_000;

/** Whether `kernels.fused: 'auto'` runs a fixed-step solve fused, for a stage of `work` multiply-adds. */
export function fusedSolvePays(work: number, batch: number, softwareAdapter: boolean): boolean {
  return work <= FUSED_MAX_WORK || (batch === 1 && softwareAdapter && work <= FUSED_MAX_WORK_ONE_ROW);
}

/**
 * Whether `plan` runs fused on `ws`: where the network is so small that dispatch overhead dominates, unless the
 * runtime's `kernels.fused` forces the choice. Recording, and energies beyond JPC's plain supervised one (λ,
 * activity decay, skips, a free z_0), need the per-stage kernels.
 */
export function useFusedSolve(ws: Workspace, plan: FreeRunningPlan): boolean {
  const choice = ws.runtime.kernels.fused ?? 'auto';
  if (choice === 'never' || plan.recording !== null || !ws.plain) return false;
  if (choice === 'always') return true;
  return fusedSolvePays(fusedWork(ws), ws.batch, ws.runtime.adapter.isSoftware);
}

/** Multiply-adds of one stage's errors and gradients: B × (weights of layers 2..L, twice). */
function fusedWork(ws: Workspace): number {
  return 2 * ws.batch * ws.model.layers.slice(1).reduce((s, l) => s + l.inDim * l.outDim, 0);
}
