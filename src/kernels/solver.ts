/**
 * Step-size control and the elementwise helpers of the inference solver (solver.wgsl): one kernel per entry
 * point, all on the solver config uniform (struct Config, kernels/structs.ts) and the solver state.
 */
import type { KernelSpec } from '../runtime/kernel.js';
import solverWgsl from './solver.wgsl';
import { ACTIVATIONS_PART, type Activation, activationId } from './activations.js';
import { SMALL_WG, STATE_PART, part, rw, uniform, workgroupSum } from './parts.js';

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
/** Flags of the solver config (FLAG_* in solver.wgsl). */
export const ConfigFlag = { DTMIN: 1, DTMAX: 2, FORCE_DTMIN: 4, EVENT: 8, FSAL: 16 } as const;
/** Step-size controllers of the solver config (CONTROLLER_* in solver.wgsl). */
export const Controller = { PID: 0, CONSTANT: 1 } as const;

/** Elements each `scaled_square` invocation adds up. */
export const SCALED_SQUARE_CHUNK = 64;

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
