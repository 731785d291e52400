/**
 * Weight decay and the spectral penalty (regularize.wgsl), one layer per dispatch (struct Reg,
 * kernels/structs.ts).
 */
import type { KernelSpec } from '../runtime/kernel.js';
import regularizeWgsl from './regularize.wgsl';
import { SMALL_WG, part, ro, rw, uniform } from './parts.js';

export type RegularizeEntry = 'weight_decay' | 'gram' | 'spectral';

/**
 * Weight decay and the spectral penalty, one layer per dispatch (regularize.wgsl). Bindings: reg, params, grads,
 * scratch.
 */
export function regularizeKernel(entry: RegularizeEntry): KernelSpec {
  return {
    name: `regularize.${entry}`,
    parts: [part('regularize.wgsl', regularizeWgsl)],
    entryPoint: entry,
    bindings: [uniform('reg', true), ro('params'), rw('grads'), rw('scratch')],
    workgroupSize: SMALL_WG,
  };
}
