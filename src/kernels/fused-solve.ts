/**
 * A whole fixed-step Runge–Kutta solve in one single-workgroup dispatch (fused-solve.wgsl), for networks small
 * enough that dispatch overhead, not arithmetic, dominates.
 */
import type { KernelSpec } from '../runtime/kernel.js';
import fusedSolveWgsl from './fused-solve.wgsl';
import { ACTIVATIONS_PART, type Activation, activationId } from './activations.js';
import { part, ro, rw, uniform } from './parts.js';

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
