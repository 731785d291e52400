/**
 * Descriptors for WPC's WGSL kernel families: which `.wgsl` files make each kernel, its bindings (group 0, in
 * order), its workgroup size and its specialisations. The cache key of a compiled pipeline is derived from
 * these (see runtime/kernel.ts), so each distinct variant compiles once per device.
 */
import type { AdapterSummary } from '../runtime/runtime.js';
import type { BindingSpec, KernelSpec } from '../runtime/kernel.js';
import activationsWgsl from './activations.wgsl';
import activityGradWgsl from './activity-grad.wgsl';
import forwardWgsl from './forward.wgsl';
import layerMatmulWgsl from './layer-matmul.wgsl';
import optimizerWgsl from './optimizer.wgsl';
import outputWgsl from './output.wgsl';
import paramGradWgsl from './param-grad.wgsl';
import reduceWgsl from './reduce.wgsl';
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
 * Register tile of the grouped matmul: `wg` invocations per workgroup, each owning `tm × tn` outputs.
 * CPU adapters want a SIMD-width workgroup and big register blocks (lavapipe: 8 lanes, 16×8, measured);
 * GPUs want more invocations per workgroup and smaller blocks.
 */
export interface TileConfig {
  readonly wg: number;
  readonly tm: number;
  readonly tn: number;
}

export function defaultTiles(adapter: AdapterSummary): TileConfig {
  return adapter.isSoftware ? { wg: 8, tm: 16, tn: 8 } : { wg: 64, tm: 4, tn: 4 };
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
} as const;

const ro = (name: string, index?: number): BindingSpec => ({ name, kind: 'read-only-storage', ...(index === undefined ? {} : { index }) });
const rw = (name: string, index?: number): BindingSpec => ({ name, kind: 'storage', ...(index === undefined ? {} : { index }) });
const uniform = (name: string, dynamicOffset = false, index?: number): BindingSpec => ({
  name,
  kind: 'uniform',
  dynamicOffset,
  ...(index === undefined ? {} : { index }),
});

function tileConstants(act: Activation, tiles: TileConfig) {
  return { ACT: activationId(act), WG: tiles.wg, TM: tiles.tm, TN: tiles.tn };
}

/**
 * Layer predictions (forward.wgsl): `mode: 'forward'` writes activities for the feedforward initialisation;
 * `'errors'` writes the prediction errors of every layer and their energy partials. `gated` kernels read the
 * solver state and do nothing once a solve has finished.
 * Bindings: jobs, params, work[, state].
 */
export function forwardKernel(act: Activation, tiles: TileConfig, mode: 'forward' | 'errors', gated: boolean): KernelSpec {
  return {
    name: `layers.${mode}${gated ? '.gated' : ''}`,
    parts: [ACTIVATIONS_PART, STATE_PART, MATMUL_PART, part('forward.wgsl', forwardWgsl)],
    defines: { ERRORS: mode === 'errors', GATED: gated },
    constants: tileConstants(act, tiles),
    entryPoint: 'main',
    bindings: [ro('jobs'), ro('params'), rw('work'), ...(gated ? [ro('state')] : [])],
    workgroupSize: tiles.wg,
  };
}

export const STAGES = ['grad', 'euler', 'heun1', 'heun2', 'hairer1', 'hairer2'] as const;
export type Stage = (typeof STAGES)[number];

/**
 * Activity gradients fused with a solver stage (activity-grad.wgsl). `gated` kernels take their step size from
 * the solver state (adaptive solves) and do nothing once the solve is done; ungated ones read dt from the stage
 * uniform (constant step sizes).
 * Bindings: jobs, params, work, [state,] stage uniform (dynamic offset).
 */
export function activityGradKernel(act: Activation, tiles: TileConfig, stage: Stage, gated: boolean): KernelSpec {
  return {
    name: `layers.activity-grad.${stage}${gated ? '.gated' : ''}`,
    parts: [ACTIVATIONS_PART, STATE_PART, MATMUL_PART, part('activity-grad.wgsl', activityGradWgsl)],
    defines: {
      GATED: gated,
      STAGE_GRAD: stage === 'grad',
      STAGE_EULER: stage === 'euler',
      STAGE_HEUN1: stage === 'heun1',
      STAGE_HEUN2: stage === 'heun2',
      STAGE_HAIRER1: stage === 'hairer1',
      STAGE_HAIRER2: stage === 'hairer2',
      WRITES_PARTIALS: stage === 'heun2' || stage === 'hairer1' || stage === 'hairer2',
    },
    constants: tileConstants(act, tiles),
    entryPoint: 'main',
    bindings: [ro('jobs'), ro('params'), rw('work'), ...(gated ? [ro('state')] : []), uniform('stage', true, 4)],
    workgroupSize: tiles.wg,
  };
}

/** Parameter gradients (param-grad.wgsl). Bindings: jobs, work, grads. */
export function paramGradKernel(tiles: TileConfig): KernelSpec {
  return {
    name: 'layers.param-grad',
    parts: [MATMUL_PART, part('param-grad.wgsl', paramGradWgsl)],
    constants: { WG: tiles.wg, TM: tiles.tm, TN: tiles.tn },
    entryPoint: 'main',
    bindings: [ro('jobs'), ro('work'), rw('grads')],
    workgroupSize: tiles.wg,
  };
}

export const SOLVER_ENTRIES = ['pid_control', 'accept', 'scaled_square', 'hairer_h0', 'hairer_probe', 'hairer_dt0', 'activate'] as const;
export type SolverEntry = (typeof SOLVER_ENTRIES)[number];
/** Elements each `scaled_square` invocation adds up. */
export const SCALED_SQUARE_CHUNK = 64;
/** Invocations per workgroup of the solver, output, reduce and optimiser kernels. */
export const SMALL_WG = 64;

/** Step-size control and elementwise solver helpers (solver.wgsl). Bindings: config, work, state. */
export function solverKernel(entry: SolverEntry, act: Activation): KernelSpec {
  return {
    name: `solver.${entry}`,
    parts: [ACTIVATIONS_PART, STATE_PART, part('solver.wgsl', solverWgsl)],
    constants: { ACT: activationId(act), CHUNK: SCALED_SQUARE_CHUNK },
    entryPoint: entry,
    bindings: [uniform('config'), rw('work'), rw('state')],
    workgroupSize: SMALL_WG,
  };
}

/** Row-wise output-layer kernels (output.wgsl). Bindings: rows, work[, state]. */
export function outputKernel(entry: 'ce_errors' | 'loss_rows', gated: boolean): KernelSpec {
  return {
    name: `output.${entry}${gated ? '.gated' : ''}`,
    parts: [ACTIVATIONS_PART, STATE_PART, part('output.wgsl', outputWgsl)],
    defines: { GATED: gated },
    constants: { ACT: 0 },
    entryPoint: entry,
    bindings: [uniform('rows'), rw('work'), ...(gated ? [ro('state')] : [])],
    workgroupSize: SMALL_WG,
  };
}

/** Deterministic segment sums (reduce.wgsl). Bindings: segments, work. */
export function reduceKernel(): KernelSpec {
  return {
    name: 'reduce.segments',
    parts: [part('reduce.wgsl', reduceWgsl)],
    entryPoint: 'main',
    bindings: [ro('segments'), rw('work')],
    workgroupSize: SMALL_WG,
  };
}

export type OptimizerKernelKind = 'sgd' | 'momentum' | 'adam';

/** Elementwise optimiser update (optimizer.wgsl). Bindings: opt, values[, grads][, moments]. */
export function optimizerKernel(kind: OptimizerKernelKind, gradsInTarget: boolean): KernelSpec {
  const hasState = kind !== 'sgd';
  const bindings: BindingSpec[] = [uniform('opt'), rw('values')];
  if (!gradsInTarget) bindings.push(ro('grads', 2));
  if (hasState) bindings.push(rw('moments', 3));
  return {
    name: `optimizer.${kind}${gradsInTarget ? '.in-place' : ''}`,
    parts: [part('optimizer.wgsl', optimizerWgsl)],
    defines: { GRADS_IN_TARGET: gradsInTarget, HAS_STATE: hasState, MOMENTUM: kind === 'momentum', ADAM: kind === 'adam' },
    entryPoint: 'main',
    bindings,
    workgroupSize: SMALL_WG,
  };
}
