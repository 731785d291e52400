/**
 * The grouped layer matmul (layer-matmul.wgsl) and the three kernel files built on it: layer predictions
 * (forward.wgsl), activity gradients fused with a solver stage (activity-grad.wgsl) and parameter gradients
 * (param-grad.wgsl). One dispatch runs every layer's job of a table (struct Job, kernels/structs.ts); the
 * register tile (tiles.ts) picks the layout and the generated k loops of the subgroup layout.
 */
import type { KernelSpec, SourcePart } from '../runtime/kernel.js';
import activityGradWgsl from './activity-grad.wgsl';
import forwardWgsl from './forward.wgsl';
import layerMatmulWgsl from './layer-matmul.wgsl';
import layerWorkWgsl from './layer-work.wgsl';
import convGatherWgsl from './conv-gather.wgsl';
import paramGradWgsl from './param-grad.wgsl';
import { ACTIVATIONS_PART, type Activation, activationId } from './activations.js';
import { STATE_PART, SUBGROUPS_PART, part, ro, rw, uniform } from './parts.js';
import { type TileConfig, epilogueColumns, matrixPanelK, matrixShapeOf, sharedSide } from './tiles.js';

/** The grouped matmul itself: job lookup, the layouts' k loops, the epilogue calls. */
export const MATMUL_PART = part('layer-matmul.wgsl', layerMatmulWgsl);
/** The workspace bindings and accessors of the forward and activity-gradient kernels. */
const LAYER_WORK_PART = part('layer-work.wgsl', layerWorkWgsl);
/** Convolution-shaped jobs (one example's convolution, its transpose, a pooling): see conv-gather.wgsl. */
const CONV_PART = part('conv-gather.wgsl', convGatherWgsl);

/** The parts and switch of kernels that also run convolution-shaped jobs (`conv`), or of plain-matmul ones. */
function convParts(conv: boolean): { parts: SourcePart[]; suffix: string } {
  return conv ? { parts: [CONV_PART], suffix: '.conv' } : { parts: [], suffix: '' };
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

const MATRIX_PARTS = {
  f32: part('enable-subgroup-matrix.wgsl', 'enable chromium_experimental_subgroup_matrix;'),
  f16: part('enable-subgroup-matrix-f16.wgsl', 'enable f16;\nenable chromium_experimental_subgroup_matrix;'),
} as const;

/** The parts, switches and constants every grouped-matmul kernel shares. */
export function matmulSpec(
  tiles: TileConfig,
  parts: SourcePart[],
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
  conv = false,
): KernelSpec {
  const c = convParts(conv);
  return {
    name: `layers.${mode}${gated ? '.gated' : ''}${c.suffix}`,
    ...matmulSpec(
      tiles,
      [ACTIVATIONS_PART, STATE_PART, MATMUL_PART, ...c.parts, LAYER_WORK_PART, part('forward.wgsl', forwardWgsl)],
      {
        constants: { ACT: activationId(act) },
        defines: { ERRORS: mode === 'errors', GATED: gated, CONV: conv },
        vecEpilogue: true,
      },
    ),
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
  conv = false,
): KernelSpec {
  if (conv && epilogue === 'vec4') throw new Error('activityGradKernel: convolution jobs take the general epilogue');
  const c = convParts(conv);
  return {
    name: `layers.activity-grad${epilogue === 'vec4' ? '.vec4' : ''}${gated ? '.gated' : ''}${c.suffix}`,
    ...matmulSpec(
      tiles,
      [
        ACTIVATIONS_PART,
        STATE_PART,
        MATMUL_PART,
        ...c.parts,
        LAYER_WORK_PART,
        part('activity-grad.wgsl', activityGradWgsl),
      ],
      {
        constants: { ACT: activationId(act) },
        defines: { GATED: gated, CONV: conv },
        vecEpilogue: epilogue === 'vec4' ? 'only' : true,
      },
    ),
    entryPoint: 'main',
    bindings: [ro('jobs'), ro('params'), rw('work'), ...(gated ? [ro('state')] : []), uniform('stage', true, 4)],
  };
}

/** Parameter gradients (param-grad.wgsl). Bindings: jobs, work, grads. */
export function paramGradKernel(tiles: TileConfig, conv = false): KernelSpec {
  const c = convParts(conv);
  return {
    name: `layers.param-grad${c.suffix}`,
    ...matmulSpec(tiles, [MATMUL_PART, ...c.parts, part('param-grad.wgsl', paramGradWgsl)], {
      defines: { CONV: conv },
    }),
    entryPoint: 'main',
    bindings: [ro('jobs'), ro('work'), rw('grads')],
  };
}
