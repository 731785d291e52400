/**
 * The elementwise optimiser update (optimizer.wgsl): SGD, momentum and Adam with optax's semantics, optionally
 * guarded by the divergence flag (health.wgsl).
 */
import type { BindingSpec, KernelSpec } from '../runtime/kernel.js';
import optimizerWgsl from './optimizer.wgsl';
import { SMALL_WG, part, ro, rw, uniform } from './parts.js';

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
