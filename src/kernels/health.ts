/**
 * The divergence guard of a training step (health.wgsl): NaN/Inf and runaway checks before and after the
 * parameter update, and the rollback's dispatch arguments.
 */
import type { KernelSpec } from '../runtime/kernel.js';
import healthWgsl from './health.wgsl';
import { part, ro, rw, uniform } from './parts.js';

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
