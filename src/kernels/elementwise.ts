/**
 * Elementwise kernels over workspace regions (elementwise.wgsl): linear combinations and activations, one op
 * (struct Op, kernels/structs.ts) per workgroup row.
 */
import type { KernelSpec } from '../runtime/kernel.js';
import elementwiseWgsl from './elementwise.wgsl';
import { ACTIVATIONS_PART, type Activation, activationId } from './activations.js';
import { SMALL_WG, part, ro, rw } from './parts.js';

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
