/**
 * Register tiles of the grouped matmul (layer-matmul.wgsl): the five layouts, their defaults per adapter, and
 * the sizes derived from a tile (outputs per workgroup, workgroup memory).
 */
import type { AdapterSummary } from '../runtime/runtime.js';

/**
 * Register tile of the grouped matmul (layer-matmul.wgsl). Blocked layout: `wg` invocations per workgroup,
 * each owning a `tm × tn` block of outputs. Subgroup layout (`subgroup: true`): the workgroup is one subgroup
 * of `wg` lanes owning a `(tm·wg) × tn` tile, lane l the rows l, wg + l, … and all `tn` columns, with B shared
 * through subgroupBroadcast; it needs the `subgroups` feature, a fixed subgroup size equal to `wg`, and `tn` a
 * multiple of `wg`. Split-k layout (`splitK: true`): the workgroup is one subgroup of `wg` lanes owning a
 * `tm × tn` block, lane l summing k = l, l + wg, …, the lanes' sums added by subgroupAdd.
 * Workgroup-memory layout (`shared: true`): wg = side² invocations (side 2, 4, 8 or 16) own a
 * `(tm·side) × (tn·side)` tile and stage panels of A and B of 16 steps of k in workgroup memory.
 * Subgroup-matrix layout (`matrix: 'f16' | 'f32'`, the operands' type; `matrixShape` the adapter's M×N×K): the
 * workgroup is one subgroup of `wg` lanes owning `tm × tn` subgroup matrices (tensor cores where the GPU has
 * them), a `(tm·M) × (tn·N)` tile, with panels of A and B staged in workgroup memory in the operand type.
 * CPU adapters want a SIMD-width workgroup and big register blocks; GPUs want more invocations per workgroup
 * and smaller blocks. The defaults below were measured (BENCHMARKS.md, "Matmul").
 */
export interface TileConfig {
  readonly wg: number;
  readonly tm: number;
  readonly tn: number;
  readonly subgroup?: boolean;
  readonly splitK?: boolean;
  readonly shared?: boolean;
  readonly matrix?: MatrixOperand;
  /** The subgroup-matrix configuration's M, N, K (set with `matrix`, from the adapter's configurations). */
  readonly matrixShape?: MatrixShape;
}

/** Operand type of the subgroup-matrix layout: `'f16'` rounds A and B to half precision (sums stay f32). */
export type MatrixOperand = 'f16' | 'f32';
export interface MatrixShape {
  readonly m: number;
  readonly n: number;
  readonly k: number;
}

export function defaultTiles(adapter: AdapterSummary, use: 'layers' | 'gemm' = 'layers'): TileConfig {
  if (adapter.isSoftware && adapter.subgroupSize === 8) {
    // lavapipe. Layer kernels (many jobs per dispatch): 8 rows per lane × 64 columns beat 8 × 32 in 8 of 9 paired
    // training-step runs (H = 3/5/10, 20 Euler steps; up to 25% for H = 10) and over 200-step solves. A lone
    // product (gemm) has few workgroups, and 64-column tiles leave 2 cores unevenly loaded (64×784×300: 5
    // workgroups, 24 GFLOP/s, against 29 with 8 × 32); see BENCHMARKS.md.
    return { wg: 8, tm: 8, tn: use === 'layers' ? 64 : 32, subgroup: true };
  }
  if (adapter.isSoftware && adapter.subgroupSize === 16) {
    // lavapipe compiling for 512-bit vectors (AVX-512; InitOptions.softwareVectorBits): 4 rows per lane × 64
    // columns for layer kernels and lone products alike (paired runs: 64×300×300 57 GFLOP/s against 28 with
    // 4 × 32 and 36–47 with 2 × 64; training steps 5–37% slower with 4 × 48 or 2 × 128).
    return { wg: 16, tm: 4, tn: 64, subgroup: true };
  }
  return adapter.isSoftware ? { wg: 8, tm: 16, tn: 8 } : { wg: 64, tm: 4, tn: 4 };
}

/** Output rows and columns one workgroup of the grouped matmul covers. */
export function workgroupTile(tiles: TileConfig): { rows: number; cols: number } {
  if (tiles.subgroup) return { rows: tiles.tm * tiles.wg, cols: tiles.tn };
  if (tiles.shared) return { rows: tiles.tm * sharedSide(tiles), cols: tiles.tn * sharedSide(tiles) };
  if (tiles.matrix) return { rows: tiles.tm * matrixShapeOf(tiles).m, cols: tiles.tn * matrixShapeOf(tiles).n };
  return { rows: tiles.tm, cols: tiles.tn };
}

/**
 * Contiguous output columns one invocation's epilogue walks in a row (the vec4 epilogue needs a multiple of 4):
 * a whole workgroup tile's width in the subgroup-matrix layout, `tn` in the others.
 */
export function epilogueColumns(tiles: TileConfig): number {
  return tiles.matrix ? workgroupTile(tiles).cols : tiles.tn;
}

/** The subgroup-matrix configuration's M, N, K a `matrix` tile was validated with. */
export function matrixShapeOf(tiles: TileConfig): MatrixShape {
  if (!tiles.matrixShape)
    throw new Error(`subgroup-matrix tiles need matrixShape (the adapter's M, N, K), got ${JSON.stringify(tiles)}`);
  return tiles.matrixShape;
}

/** Steps of k the subgroup-matrix layout stages per panel (BK): K, or a multiple of it of at least 16. */
export function matrixPanelK(tiles: TileConfig): number {
  const { k } = matrixShapeOf(tiles);
  return k * Math.max(1, Math.floor(16 / k));
}

/** Bytes of workgroup memory the subgroup-matrix layout takes: the A and B panels, and the f32 tile. */
export function matrixWorkgroupBytes(tiles: TileConfig): number {
  const { rows, cols } = workgroupTile(tiles);
  const operandBytes = tiles.matrix === 'f16' ? 2 : 4;
  return (rows + cols) * matrixPanelK(tiles) * operandBytes + rows * cols * 4;
}

/** Invocations per side of the workgroup-memory layout's square grid (wg = side²). */
export function sharedSide(tiles: TileConfig): number {
  return Math.round(Math.sqrt(tiles.wg));
}

/** Steps of k the workgroup-memory layout stages per panel (BK in layer-matmul.wgsl). */
export const SHARED_PANEL_K = 16;

/** Bytes of workgroup memory the workgroup-memory layout's A and B panels take: (BM + BN)·BK floats. */
export function sharedPanelBytes(tiles: TileConfig): number {
  return (tiles.tm + tiles.tn) * sharedSide(tiles) * SHARED_PANEL_K * 4;
}

/**
 * Whether a workgroup's invocations all work on one tile (subgroup, split-k and workgroup-memory layouts), each
 * with a partial-sum slot of its own, rather than one tile each (blocked).
 */
export function workgroupSharesTile(tiles: TileConfig): boolean {
  return tiles.subgroup === true || tiles.splitK === true || tiles.shared === true || tiles.matrix !== undefined;
}
