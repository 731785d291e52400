/**
 * Register tiles of the grouped matmul (layer-matmul.wgsl): the five layouts, their defaults per adapter, the
 * sizes derived from a tile (outputs per workgroup, workgroup memory), and the check of the tuning a caller
 * gives `init()` (`options.kernels`) against the device.
 */
import { type AdapterSummary, DAWN_EXPERIMENTAL_OPTION, SUBGROUP_MATRIX_FEATURE } from '../runtime/adapter.js';
import { WpcArgumentError, checkKnownKeys, checkPositiveInt, describe } from '../runtime/errors.js';
import type { KernelTuning, MatrixOperand } from '../runtime/options.js';

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
 * and smaller blocks. The defaults below come from measurements (DEVELOPERS.md, "Measurements behind the kernel
 * defaults"; BENCHMARKS.md, "Register tiles").
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

export interface MatrixShape {
  readonly m: number;
  readonly n: number;
  readonly k: number;
}

export function defaultTiles(adapter: AdapterSummary, use: 'layers' | 'gemm' = 'layers'): TileConfig {
  if (adapter.isSoftware && adapter.subgroupSize === 8) {
    // lavapipe with 8 lanes: layer kernels (many jobs per dispatch) take 64-column tiles; a lone product (gemm)
    // has few workgroups, which 64-column tiles would spread unevenly over the cores, so it takes 32.
    return { wg: 8, tm: 8, tn: use === 'layers' ? 64 : 32, subgroup: true };
  }
  if (adapter.isSoftware && adapter.subgroupSize === 16) {
    // lavapipe compiling for 512-bit vectors (AVX-512; InitOptions.softwareVectorBits): 4 rows per lane × 64
    // columns for layer kernels and lone products alike.
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
function matrixWorkgroupBytes(tiles: TileConfig): number {
  const { rows, cols } = workgroupTile(tiles);
  const operandBytes = tiles.matrix === 'f16' ? 2 : 4;
  return (rows + cols) * matrixPanelK(tiles) * operandBytes + rows * cols * 4;
}

/** Invocations per side of the workgroup-memory layout's square grid (wg = side²). */
export function sharedSide(tiles: TileConfig): number {
  return Math.round(Math.sqrt(tiles.wg));
}

/** Steps of k the workgroup-memory layout stages per panel (BK in layer-matmul.wgsl). */
const SHARED_PANEL_K = 16;

/** Bytes of workgroup memory the workgroup-memory layout's A and B panels take: (BM + BN)·BK floats. */
function sharedPanelBytes(tiles: TileConfig): number {
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
 * Validates `options.kernels` of `fn` (`init` or `initFromDevice`) against the device's limits and adapter, and
 * returns the tuning the runtime keeps: the tiles frozen, with the subgroup-matrix shape they will use.
 */
export function checkKernelTuning(
  fn: string,
  kernels: KernelTuning | undefined,
  limits: GPUSupportedLimits,
  adapter: AdapterSummary,
): KernelTuning {
  if (kernels === undefined) return {};
  if (typeof kernels !== 'object' || kernels === null)
    throw new WpcArgumentError(`${fn}: options.kernels must be an object, got ${describe(kernels)}`);
  checkKnownKeys(fn, 'options.kernels', kernels, ['tiles', 'fused']);
  const fused = kernels.fused;
  if (fused !== undefined && fused !== 'auto' && fused !== 'always' && fused !== 'never') {
    throw new WpcArgumentError(
      `${fn}: options.kernels.fused must be one of "auto", "always", "never", got ${describe(fused)}`,
    );
  }
  const withFused = fused === undefined ? {} : { fused };
  const t = kernels.tiles;
  if (t === undefined) return withFused;
  if (typeof t !== 'object' || t === null)
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles must be { wg, tm, tn, subgroup?, splitK?, shared?, matrix? }, got ${describe(t)}`,
    );
  checkKnownKeys(fn, 'options.kernels.tiles', t, ['wg', 'tm', 'tn', 'subgroup', 'splitK', 'shared', 'matrix']);
  const maxWg = Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);
  const wg = checkPositiveInt(fn, 'options.kernels.tiles.wg', t.wg, maxWg);
  const tm = checkPositiveInt(fn, 'options.kernels.tiles.tm', t.tm, 32);
  const layouts = { subgroup: t.subgroup ?? false, splitK: t.splitK ?? false, shared: t.shared ?? false };
  for (const [name, on] of Object.entries(layouts)) {
    if (typeof on !== 'boolean')
      throw new WpcArgumentError(`${fn}: options.kernels.tiles.${name} must be a boolean, got ${describe(on)}`);
  }
  const matrix = t.matrix;
  if (matrix !== undefined && matrix !== 'f16' && matrix !== 'f32') {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.matrix must be "f16" or "f32" (the operand type), got ${describe(matrix)}`,
    );
  }
  const chosen = [
    ...Object.keys(layouts).filter((name) => layouts[name as keyof typeof layouts]),
    ...(matrix ? ['matrix'] : []),
  ];
  if (chosen.length > 1)
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles can have one of subgroup, splitK, shared and matrix, got ${chosen.join(' and ')}`,
    );
  const { subgroup, splitK, shared } = layouts;
  const tn = checkPositiveInt(fn, 'options.kernels.tiles.tn', t.tn, subgroup ? 128 : 32);
  if (subgroup || splitK) {
    const name = subgroup ? 'subgroup' : 'splitK';
    if (adapter.subgroupSize === null) {
      throw new WpcArgumentError(
        `${fn}: options.kernels.tiles.${name} needs the "subgroups" feature and a fixed subgroup size, which this adapter does not report`,
      );
    }
    if (wg !== adapter.subgroupSize) {
      throw new WpcArgumentError(
        `${fn}: options.kernels.tiles.wg must equal the subgroup size ${adapter.subgroupSize} when ${name} is true, got ${wg}`,
      );
    }
  }
  if (subgroup) {
    if (tn % wg !== 0)
      throw new WpcArgumentError(
        `${fn}: options.kernels.tiles.tn must be a multiple of wg (${wg}) when subgroup is true, got ${tn}`,
      );
    if (tm * tn > 512)
      throw new WpcArgumentError(
        `${fn}: options.kernels.tiles.tm × tn must be at most 512 accumulators per lane, got ${tm} × ${tn} = ${tm * tn}`,
      );
  }
  if ((splitK || shared) && tm * tn > 64) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.tm × tn must be at most 64 accumulators when ${splitK ? 'splitK' : 'shared'} is true, got ${tm} × ${tn} = ${tm * tn}`,
    );
  }
  if (shared) {
    if (![4, 16, 64, 256].includes(wg))
      throw new WpcArgumentError(
        `${fn}: options.kernels.tiles.wg must be 4, 16, 64 or 256 (a square grid) when shared is true, got ${wg}`,
      );
    const side = sharedSide({ wg, tm, tn });
    const bytes = sharedPanelBytes({ wg, tm, tn });
    if (bytes > limits.maxComputeWorkgroupStorageSize) {
      throw new WpcArgumentError(
        `${fn}: options.kernels.tiles with shared: true need (tm + tn)·${side}·${SHARED_PANEL_K}·4 = ${bytes} bytes of workgroup memory, more than this device's ${limits.maxComputeWorkgroupStorageSize}`,
      );
    }
  }
  if (matrix) {
    const matrixShape = checkMatrixTiles(fn, { wg, tm, tn, matrix }, limits, adapter);
    return { ...withFused, tiles: Object.freeze({ wg, tm, tn, matrix, matrixShape }) };
  }
  const layout = subgroup ? { subgroup } : splitK ? { splitK } : shared ? { shared } : {};
  return { ...withFused, tiles: Object.freeze({ wg, tm, tn, ...layout }) };
}

/** Validates subgroup-matrix tiles against the device and returns the configuration's shape they will use. */
function checkMatrixTiles(
  fn: string,
  tiles: { wg: number; tm: number; tn: number; matrix: MatrixOperand },
  limits: GPUSupportedLimits,
  adapter: AdapterSummary,
): MatrixShape {
  const { wg, tm, tn, matrix } = tiles;
  const configs = adapter.subgroupMatrixConfigs;
  if (configs.length === 0) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.matrix needs the "${SUBGROUP_MATRIX_FEATURE}" feature with at least one configuration, which this device does not have (Dawn in Node exposes it with dawnOptions ['${DAWN_EXPERIMENTAL_OPTION}'] where the driver has VK_KHR_cooperative_matrix or Metal simdgroup matrices; Chrome with --enable-unsafe-webgpu; initFromDevice needs adapterInfo: adapter.info)`,
    );
  }
  const config = configs.find((c) => c.componentType === matrix && c.resultComponentType === 'f32');
  if (!config) {
    const have = configs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`).join(', ');
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.matrix "${matrix}" needs a subgroup-matrix configuration with ${matrix} operands and f32 results; this adapter has ${have}`,
    );
  }
  if (matrix === 'f16' && !adapter.shaderF16) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.matrix "f16" needs the "shader-f16" feature, which this device does not have`,
    );
  }
  if (adapter.subgroupSize === null) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.matrix needs a fixed subgroup size, which this adapter does not report`,
    );
  }
  if (wg !== adapter.subgroupSize) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.wg must equal the subgroup size ${adapter.subgroupSize} when matrix is set, got ${wg}`,
    );
  }
  if (adapter.isSoftware && /llvmpipe/.test(adapter.description) && adapter.subgroupSize !== 8) {
    // Mesa 26.1's lavapipe segfaults compiling cooperative-matrix shaders for 16-lane subgroups.
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.matrix on lavapipe needs 8-lane subgroups (init's softwareVectorBits: 256), this device has ${adapter.subgroupSize}`,
    );
  }
  if (tm * tn > 16) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.tm × tn must be at most 16 subgroup matrices when matrix is set, got ${tm} × ${tn} = ${tm * tn}`,
    );
  }
  const shape = { m: config.M, n: config.N, k: config.K };
  const bytes = matrixWorkgroupBytes({ ...tiles, matrixShape: shape });
  if (bytes > limits.maxComputeWorkgroupStorageSize) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles with matrix need ${bytes} bytes of workgroup memory (${tm}×${tn} matrices of ${config.M}×${config.N}), more than this device's ${limits.maxComputeWorkgroupStorageSize}`,
    );
  }
  return Object.freeze(shape);
}
