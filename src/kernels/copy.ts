/**
 * A bit-exact copy between two buffers (copy.wgsl): the divergence guard's save and rollback.
 */
import type { KernelSpec } from '../runtime/kernel.js';
import copyWgsl from './copy.wgsl';
import { SMALL_WG, part, ro, rw } from './parts.js';

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
