/**
 * Descriptors for WPC's WGSL kernel families: which `.wgsl` files make each kernel, its bindings (group 0, in
 * order), its workgroup size and its specialisations. The cache key of a compiled pipeline is derived from
 * these (see runtime/kernel.ts), so each distinct variant compiles once per device.
 */
import type { AdapterSummary } from '../runtime/runtime.js';
import type { BindingSpec, KernelSpec } from '../runtime/kernel.js';
import activationsWgsl from './activations.wgsl';
import activityGradWgsl from './activity-grad.wgsl';
import elementwiseWgsl from './elementwise.wgsl';
import forwardWgsl from './forward.wgsl';
import gemmWgsl from './gemm.wgsl';
import healthWgsl from './health.wgsl';
import copyWgsl from './copy.wgsl';
import fusedSolveWgsl from './fused-solve.wgsl';
import layerMatmulWgsl from './layer-matmul.wgsl';
import optimizerWgsl from './optimizer.wgsl';
import outputWgsl from './output.wgsl';
import paramGradWgsl from './param-grad.wgsl';
import recordWgsl from './record.wgsl';
import reduceWgsl from './reduce.wgsl';
import workgroupSumWgsl from './workgroup-sum.wgsl';
import regularizeWgsl from './regularize.wgsl';
import solverStateWgsl from './solver-state.wgsl';
import solverWgsl from './solver.wgsl';

/** JPC's activations, in the order of their ids in activations.wgsl. */
export const ACTIVATIONS = ['linear', 'tanh', 'hard_tanh', 'relu', 'leaky_relu', 'gelu', 'selu', 'silu'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

export function activationId(act: Activation): number {
  return ACTIVATIONS.indexOf(act);
}

const part = (file: string, source: string) => ({ file, source });
const ACTIVATIONS_PART = part('activations.wgsl', activationsWgsl);
const MATMUL_PART = part('layer-matmul.wgsl', layerMatmulWgsl);
const STATE_PART = part('solver-state.wgsl', solverStateWgsl);

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

function matrixShapeOf(tiles: TileConfig): MatrixShape {
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

/**
 * Row groups (of WG rows) the subgroup layout's inner product is compiled for: powers of two below TM, and TM.
 * A tile at the job's last rows (a batch smaller than TM·WG, or a ragged last tile) runs the smallest variant
 * that covers its rows, so a batch of 1 costs a lane one row's loads and multiply-adds instead of TM.
 */
export function rowGroupVariants(tm: number): number[] {
  const variants: number[] = [];
  for (let g = 1; g < tm; g *= 2) variants.push(g);
  return [...variants, tm];
}

/**
 * The k loop of the subgroup layout for the first `rowGroups` of each lane's TM rows, its inner product unrolled
 * (subgroupBroadcast takes a constant lane): per k, each lane loads its rows' A values and its TN/WG values of B;
 * then for each B value and each lane l, lane l's value is broadcast and the accumulators of that column updated.
 */
function subgroupKLoop(tiles: TileConfig, rowGroups: number): string {
  const lines = [
    'for (var kk = 0u; kk < job.k; kk++) {',
    `  for (var i = 0u; i < ${rowGroups}u; i++) { a[i] = load_a(job, min(m0 + i * WG, m_last), kk); }`,
    '  for (var j = 0u; j < TB; j++) { if (j * WG < cols) { b[j] = load_b(job, kk, min(n0 + j * WG + lane, n_last)); } }',
  ];
  for (let j = 0; j < tiles.tn / tiles.wg; j++) {
    // Column groups past the job's last column are skipped (a uniform branch): a ragged last tile, or a layer
    // narrower than the tile (the 10-wide output layer), costs only the groups it uses.
    lines.push(`  if (${j * tiles.wg}u < cols) {`);
    for (let l = 0; l < tiles.wg; l++) {
      const col = j * tiles.wg + l;
      const fmas = Array.from(
        { length: rowGroups },
        (_, i) => `acc[${i}][${col}] = fma(a[${i}], v, acc[${i}][${col}]);`,
      );
      lines.push(`    { let v = subgroupBroadcast(b[${j}], ${l}u); ${fmas.join(' ')} }`);
    }
    lines.push('  }');
  }
  lines.push('}');
  return lines.join('\n  ');
}

/**
 * One k loop per row-group variant, chosen once per tile by its (uniform) row-group count: a tile at the job's
 * last rows (a batch smaller than TM·WG, a ragged last tile) loads and multiplies only the rows it has.
 */
function subgroupKLoops(tiles: TileConfig): string {
  const variants = rowGroupVariants(tiles.tm);
  const partial = variants.slice(0, -1).map((g) => `if (row_groups <= ${g}u) {\n  ${subgroupKLoop(tiles, g)}\n  }`);
  const full = subgroupKLoop(tiles, tiles.tm);
  return partial.length === 0 ? full : `${partial.join(' else ')} else {\n  ${full}\n  }`;
}

const SUBGROUPS_PART = part('enable-subgroups.wgsl', 'enable subgroups;');
const MATRIX_PARTS = {
  f32: part('enable-subgroup-matrix.wgsl', 'enable chromium_experimental_subgroup_matrix;'),
  f16: part('enable-subgroup-matrix-f16.wgsl', 'enable f16;\nenable chromium_experimental_subgroup_matrix;'),
} as const;
const WORKGROUP_SUM_PART = part('workgroup-sum.wgsl', workgroupSumWgsl);

/** The parts, switches and constants every grouped-matmul kernel shares. */
function matmulSpec(
  tiles: TileConfig,
  parts: { file: string; source: string }[],
  {
    constants = {},
    defines = {},
    vecEpilogue = false,
  }: {
    constants?: Record<string, number>;
    defines?: Record<string, boolean>;
    /**
     * The kernel file provides vec_ok / epilogue4 (see layer-matmul.wgsl); used when TN is a multiple of 4.
     * `'only'`: epilogue4 alone, for dispatches whose every job the host has checked (VEC4_ONLY).
     */
    vecEpilogue?: boolean | 'only';
  } = {},
) {
  const columns = epilogueColumns(tiles);
  if (vecEpilogue === 'only' && columns % 4 !== 0)
    throw new Error(`vec4-only epilogue needs tn ≡ 0 mod 4, got tn ${tiles.tn}`);
  const enable = tiles.matrix ? [MATRIX_PARTS[tiles.matrix]] : tiles.subgroup || tiles.splitK ? [SUBGROUPS_PART] : [];
  return {
    parts: [...enable, ...parts],
    defines: {
      ...defines,
      SUBGROUP_TILES: tiles.subgroup === true,
      SPLIT_K: tiles.splitK === true,
      SHARED_TILES: tiles.shared === true,
      MATRIX_TILES: tiles.matrix !== undefined,
      VEC_EPILOGUE: vecEpilogue !== false && columns % 4 === 0,
      VEC4_ONLY: vecEpilogue === 'only',
    },
    constants: {
      ...constants,
      WG: tiles.wg,
      TM: tiles.tm,
      TN: tiles.tn,
      ...(tiles.subgroup ? { SUBGROUP_K_LOOPS: subgroupKLoops(tiles) } : {}),
      ...(tiles.shared ? { SIDE: sharedSide(tiles) } : {}),
      ...(tiles.matrix
        ? {
            OPERAND: tiles.matrix,
            SM: matrixShapeOf(tiles).m,
            SN: matrixShapeOf(tiles).n,
            SK: matrixShapeOf(tiles).k,
            BK: matrixPanelK(tiles),
          }
        : {}),
    },
    workgroupSize: tiles.wg,
  };
}

/** Words per job in the grouped matmul's job table (struct Job in layer-matmul.wgsl). */
export const JOB_WORDS = 20;

/** Flags in job tables (forward.wgsl / param-grad.wgsl). */
export const JobFlag = {
  BIAS: 1,
  FIRST: 2,
  OUTPUT: 4,
  WRITE_PHI: 8,
  WRITE_PRED: 16,
  LOGITS: 32,
  SKIP: 64,
  ADD_ERR: 128,
} as const;

/** Flags of activity-gradient jobs (activity-grad.wgsl). */
export const GradFlag = { NO_OWN: 1, IDENTITY: 2, SKIP: 4, ACCUMULATE: 8 } as const;

const ro = (name: string, index?: number): BindingSpec => ({
  name,
  kind: 'read-only-storage',
  ...(index === undefined ? {} : { index }),
});
const rw = (name: string, index?: number): BindingSpec => ({
  name,
  kind: 'storage',
  ...(index === undefined ? {} : { index }),
});
const uniform = (name: string, dynamicOffset = false, index?: number): BindingSpec => ({
  name,
  kind: 'uniform',
  dynamicOffset,
  ...(index === undefined ? {} : { index }),
});

/**
 * Layer predictions (forward.wgsl): `mode: 'forward'` writes activities for the feedforward initialisation;
 * `'errors'` writes the prediction errors of every layer and their energy partials. `gated` kernels read the
 * solver state and do nothing once a solve has finished.
 * Bindings: jobs, params, work[, state].
 */
export function forwardKernel(
  act: Activation,
  tiles: TileConfig,
  mode: 'forward' | 'errors',
  gated: boolean,
): KernelSpec {
  return {
    name: `layers.${mode}${gated ? '.gated' : ''}`,
    ...matmulSpec(tiles, [ACTIVATIONS_PART, STATE_PART, MATMUL_PART, part('forward.wgsl', forwardWgsl)], {
      constants: { ACT: activationId(act) },
      defines: { ERRORS: mode === 'errors', GATED: gated },
      vecEpilogue: true,
    }),
    entryPoint: 'main',
    bindings: [ro('jobs'), ro('params'), rw('work'), ...(gated ? [ro('state')] : [])],
  };
}

/** Stage modes of the activity-gradient kernel (MODE_* in activity-grad.wgsl). */
export const StageMode = {
  GRAD: 0,
  STAGE: 1,
  FINAL: 2,
  FINAL_FSAL: 3,
  HAIRER1: 4,
  HAIRER2: 5,
  OPTIM: 6,
} as const;

/** Optimisers of MODE_OPTIM (OPT_* in activity-grad.wgsl). */
export const StageOptimizer = { SGD: 0, MOMENTUM: 1, ADAM: 2 } as const;

/** Most Runge–Kutta stages a stage record can describe (Dopri8 has 14). */
export const MAX_STAGES = 16;

/**
 * Activity gradients fused with a solver stage (activity-grad.wgsl); what the epilogue does comes from the
 * stage record. `gated` kernels take their step size from the solver state and do nothing once a solve is
 * done; ungated ones read dt from the record (fixed step sizes). `epilogue: 'vec4'` compiles only the vec4
 * epilogue of the Runge–Kutta modes, for dispatches whose every job and stage record are 4-aligned (the host
 * checks: epilogue4Ready and Workspace.actKernelTakesVec4): about half the first-use compile time of the general
 * kernel (`'any'`) on lavapipe.
 * Bindings: jobs, params, work, [state,] stage uniform (dynamic offset); the same layout for both epilogues.
 */
export function activityGradKernel(
  act: Activation,
  tiles: TileConfig,
  gated: boolean,
  epilogue: 'any' | 'vec4' = 'any',
): KernelSpec {
  return {
    name: `layers.activity-grad${epilogue === 'vec4' ? '.vec4' : ''}${gated ? '.gated' : ''}`,
    ...matmulSpec(tiles, [ACTIVATIONS_PART, STATE_PART, MATMUL_PART, part('activity-grad.wgsl', activityGradWgsl)], {
      constants: { ACT: activationId(act) },
      defines: { GATED: gated },
      vecEpilogue: epilogue === 'vec4' ? 'only' : true,
    }),
    entryPoint: 'main',
    bindings: [ro('jobs'), ro('params'), rw('work'), ...(gated ? [ro('state')] : []), uniform('stage', true, 4)],
  };
}

/** Parameter gradients (param-grad.wgsl). Bindings: jobs, work, grads. */
export function paramGradKernel(tiles: TileConfig): KernelSpec {
  return {
    name: 'layers.param-grad',
    ...matmulSpec(tiles, [MATMUL_PART, part('param-grad.wgsl', paramGradWgsl)]),
    entryPoint: 'main',
    bindings: [ro('jobs'), ro('work'), rw('grads')],
  };
}

export const SOLVER_ENTRIES = [
  'step_control',
  'accept',
  'scaled_square',
  'hairer_h0',
  'hairer_probe',
  'hairer_dt0',
  'activate',
] as const;
export type SolverEntry = (typeof SOLVER_ENTRIES)[number];
/** Elements each `scaled_square` invocation adds up. */
export const SCALED_SQUARE_CHUNK = 64;
/** Invocations per workgroup of the solver, output, reduce and optimiser kernels. */
export const SMALL_WG = 64;

/**
 * The shared workgroup sum (workgroup-sum.wgsl) of the reduction kernels: subgroup butterflies where the
 * adapter reports one fixed subgroup size that is a power of two with SMALL_WG / size ≤ size, else a tree in
 * workgroup memory. `subgroupSize` is the runtime's `adapter.subgroupSize`.
 */
function workgroupSum(subgroupSize: number | null): {
  enable: { file: string; source: string }[];
  part: { file: string; source: string };
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

/** Step-size control and elementwise solver helpers (solver.wgsl). Bindings: config, work, state. */
export function solverKernel(entry: SolverEntry, act: Activation, subgroupSize: number | null = null): KernelSpec {
  const sum = workgroupSum(subgroupSize);
  return {
    name: `solver.${entry}`,
    parts: [...sum.enable, ACTIVATIONS_PART, STATE_PART, part('solver.wgsl', solverWgsl), sum.part],
    defines: sum.defines,
    constants: { ACT: activationId(act), CHUNK: SCALED_SQUARE_CHUNK, ...sum.constants },
    entryPoint: entry,
    bindings: [uniform('config'), rw('work'), rw('state')],
    workgroupSize: SMALL_WG,
  };
}

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
 * The storage table of a row_norms dispatch (Rows records, output.wgsl) and its workgroup count: every region
 * gets the workgroups its longest sibling needs, so the kernel finds a workgroup's region by division.
 */
export function rowTable(regions: readonly RowRegion[]): { data: Uint32Array<ArrayBuffer>; workgroups: number } {
  if (regions.length === 0) throw new Error('rowTable: no regions');
  const groups = Math.max(1, ...regions.map((r) => Math.ceil(r.rows / SMALL_WG)));
  const data = new Uint32Array(8 * regions.length);
  regions.forEach((r, i) => data.set([r.rows, r.cols, r.predOff, 0, r.partOff, 0, groups, regions.length], 8 * i));
  return { data, workgroups: groups * regions.length };
}

/** Deterministic segment sums, optionally squared and square-rooted (reduce.wgsl). Bindings: segments, src, dst. */
export function reduceKernel(subgroupSize: number | null = null): KernelSpec {
  const sum = workgroupSum(subgroupSize);
  return {
    name: 'reduce.segments',
    parts: [...sum.enable, part('reduce.wgsl', reduceWgsl), sum.part],
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
    parts: [...sum.enable, part('reduce.wgsl', reduceWgsl), sum.part],
    defines: sum.defines,
    constants: sum.constants,
    entryPoint: 'accumulate',
    bindings: [ro('segments'), rw('dst')],
    workgroupSize: SMALL_WG,
  };
}

/** Words of an elementwise op (struct Op in elementwise.wgsl). */
export const COMBINE_WORDS = 8;

/** out = a·u + b·v over workspace regions, one op per workgroup row (elementwise.wgsl). Bindings: ops, work. */
export function combineKernel(): KernelSpec {
  return {
    name: 'elementwise.combine',
    parts: [part('elementwise.wgsl', elementwiseWgsl)],
    entryPoint: 'combine',
    bindings: [ro('ops'), rw('work')],
    workgroupSize: SMALL_WG,
  };
}

/** out = φ(u) over workspace regions with the activation `act` compiled in (elementwise.wgsl). Bindings: ops, work. */
export function activateKernel(act: Activation): KernelSpec {
  return {
    name: 'elementwise.activate',
    parts: [ACTIVATIONS_PART, part('elementwise.wgsl', elementwiseWgsl)],
    defines: { ACTIVATE: true },
    constants: { ACT: activationId(act) },
    entryPoint: 'activate',
    bindings: [ro('ops'), rw('work')],
    workgroupSize: SMALL_WG,
  };
}

export type RegularizeEntry = 'weight_decay' | 'gram' | 'spectral';

/** Weight decay and the spectral penalty, one layer per dispatch (regularize.wgsl). Bindings: reg, params, grads, scratch. */
export function regularizeKernel(entry: RegularizeEntry): KernelSpec {
  return {
    name: `regularize.${entry}`,
    parts: [part('regularize.wgsl', regularizeWgsl)],
    entryPoint: entry,
    bindings: [uniform('reg', true), ro('params'), rw('grads'), rw('scratch')],
    workgroupSize: SMALL_WG,
  };
}

/** Flags of a reduce segment (reduce.wgsl). */
export const ReduceFlag = { SQUARE: 1, SQRT: 2, SQUARE2: 4 } as const;

export const RECORD_ENTRIES = ['record_activities', 'record_energies', 'record_advance'] as const;
export type RecordEntry = (typeof RECORD_ENTRIES)[number];
/** When a record kernel records (WHEN_* in record.wgsl). */
export const RecordWhen = { NEXT_START: 0, ACCEPTED: 1, ALWAYS: 2, FINAL: 3 } as const;

/** Recording during inference (record.wgsl). Bindings: segments, work, state, records, traj, recording (dynamic). */
export function recordKernel(entry: RecordEntry, subgroupSize: number | null = null): KernelSpec {
  const sum = workgroupSum(subgroupSize);
  return {
    name: `record.${entry}`,
    parts: [...sum.enable, STATE_PART, part('record.wgsl', recordWgsl), sum.part],
    defines: sum.defines,
    constants: sum.constants,
    entryPoint: entry,
    bindings: [ro('segments'), ro('work'), ro('state'), rw('records'), rw('traj'), uniform('recording', true)],
    workgroupSize: entry === 'record_advance' ? 1 : SMALL_WG,
  };
}

export type OptimizerKernelKind = 'sgd' | 'momentum' | 'adam';

/** Elementwise optimiser update (optimizer.wgsl). Bindings: opt, values[, grads][, moments]. */
export function optimizerKernel(
  kind: OptimizerKernelKind,
  gradsInTarget: boolean,
  guarded = false,
  vec4 = false,
): KernelSpec {
  const hasState = kind !== 'sgd';
  const bindings: BindingSpec[] = [uniform('opt'), rw('values')];
  if (!gradsInTarget) bindings.push(ro('grads', 2));
  if (hasState) bindings.push(rw('moments', 3));
  if (guarded) bindings.push(ro('control', 4));
  return {
    name: `optimizer.${kind}${gradsInTarget ? '.in-place' : ''}${guarded ? '.guarded' : ''}${vec4 ? '.vec4' : ''}`,
    parts: [part('optimizer.wgsl', optimizerWgsl)],
    defines: {
      GRADS_IN_TARGET: gradsInTarget,
      HAS_STATE: hasState,
      MOMENTUM: kind === 'momentum',
      ADAM: kind === 'adam',
      GUARDED: guarded,
      VEC4: vec4,
    },
    entryPoint: 'main',
    bindings,
    workgroupSize: SMALL_WG,
  };
}

/**
 * A whole fixed-step Runge–Kutta solve in one single-workgroup dispatch (fused-solve.wgsl), for networks small
 * enough that dispatch overhead, not arithmetic, dominates. Bindings: cfg, params, work, layers, coefs.
 */
export function fusedSolveKernel(act: Activation, wg: number): KernelSpec {
  return {
    name: 'solver.fused-rk',
    parts: [ACTIVATIONS_PART, part('fused-solve.wgsl', fusedSolveWgsl)],
    constants: { ACT: activationId(act), WG: wg },
    entryPoint: 'main',
    bindings: [uniform('cfg'), ro('params'), rw('work'), ro('layers'), ro('coefs')],
    workgroupSize: wg,
  };
}

/** Words of the fused solver's uniform (struct Fused) and of a layer entry (struct LayerEntry). */
export const FUSED_WORDS = 20;
export const FUSED_LAYER_WORDS = 8;

/** Flags of a gemm job (gemm.wgsl). */
export const GemmFlag = { TRANS_A: 1, TRANS_B: 2, HAS_D: 4, ADD_A: 8 } as const;

/** C = α·op(A)·op(B) + β·D on separate buffers with strides (gemm.wgsl). Bindings: jobs, a, b, d, c. */
export function gemmKernel(tiles: TileConfig): KernelSpec {
  return {
    name: 'linalg.gemm',
    ...matmulSpec(tiles, [MATMUL_PART, part('gemm.wgsl', gemmWgsl)]),
    entryPoint: 'main',
    bindings: [ro('jobs'), ro('a'), ro('b'), ro('d'), rw('c')],
  };
}

/**
 * The divergence guard of a training step (health.wgsl): `'before'` the update (NaN/Inf, runaway, reference) or
 * `'after'` it (the updated parameters' energy; writes the rollback's dispatch arguments). Bindings: health
 * uniform, scalars, control.
 */
export function healthKernel(phase: 'before' | 'after' = 'before'): KernelSpec {
  return {
    name: phase === 'before' ? 'train.health' : 'train.health-after',
    parts: [part('health.wgsl', healthWgsl)],
    entryPoint: phase === 'before' ? 'main' : 'after_update',
    bindings: [uniform('health'), ro('scalars'), rw('control')],
    workgroupSize: 1,
  };
}

/** Bytes of the health uniform (struct Health) and of the control words (health.wgsl). */
export const HEALTH_UNIFORM_BYTES = 80;
export const CONTROL_BYTES = 96;
/** Byte offsets of the rollback's indirect dispatch arguments in the control words (parameters, state). */
export const ROLLBACK_ARGS = { params: 64, state: 80 } as const;

/** A bit-exact copy between two buffers of the same size, 16 bytes per invocation (copy.wgsl). Bindings: src, dst. */
export function copyKernel(): KernelSpec {
  return {
    name: 'copy.words',
    parts: [part('copy.wgsl', copyWgsl)],
    entryPoint: 'main',
    bindings: [ro('src'), rw('dst')],
    workgroupSize: SMALL_WG,
  };
}
