/**
 * Row-wise kernels of the output layer and the metrics (output.wgsl): cross-entropy errors, per-row losses and
 * accuracies, row norms.
 */
import type { KernelSpec } from '../runtime/kernel.js';
import outputWgsl from './output.wgsl';
import { ACTIVATIONS_PART } from './activations.js';
import { SMALL_WG, STATE_PART, part, ro, rw, uniform } from './parts.js';
import { packRows } from './structs.js';

/**
 * Row-wise kernels (output.wgsl). Bindings: rows (a uniform Rows record; for row_norms a storage table of them,
 * one per region, see `rowTable`), work[, state].
 */
export function outputKernel(entry: 'ce_errors' | 'loss_rows' | 'row_norms', gated: boolean): KernelSpec {
  const table = entry === 'row_norms';
  return {
    name: `output.${entry}${gated ? '.gated' : ''}`,
    parts: [ACTIVATIONS_PART, STATE_PART, part('output.wgsl', outputWgsl)],
    defines: { GATED: gated, ROW_TABLE: table },
    constants: { ACT: 0 },
    entryPoint: entry,
    bindings: [table ? ro('rows') : uniform('rows'), rw('work'), ...(gated ? [ro('state')] : [])],
    workgroupSize: SMALL_WG,
  };
}

/** One region of a row_norms dispatch: `rows` rows of `cols` values at `predOff`, 4 partials per row at `partOff`. */
export interface RowRegion {
  readonly rows: number;
  readonly cols: number;
  readonly predOff: number;
  readonly partOff: number;
}

/**
 * The storage table of a row_norms dispatch (struct Rows, kernels/structs.ts) and its workgroup count: every region
 * gets the workgroups its longest sibling needs, so the kernel finds a workgroup's region by division.
 */
export function rowTable(regions: readonly RowRegion[]): { data: Uint32Array<ArrayBuffer>; workgroups: number } {
  if (regions.length === 0) throw new Error('rowTable: no regions');
  const groups = Math.max(1, ...regions.map((r) => Math.ceil(r.rows / SMALL_WG)));
  const data = packRows(regions.map((r) => ({ ...r, groups, regions: regions.length })));
  return { data: new Uint32Array(data), workgroups: groups * regions.length };
}
