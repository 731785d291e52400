/**
 * General matrix products on separate buffers with strides (gemm.wgsl), on the grouped matmul's layouts: the
 * linear-network theory and standalone `matmul`.
 */
import type { KernelSpec } from '../runtime/kernel.js';
import gemmWgsl from './gemm.wgsl';
import { MATMUL_PART, matmulSpec } from './layer-matmul.js';
import { part, ro, rw } from './parts.js';
import type { TileConfig } from './tiles.js';

/** Flags of a gemm job (gemm.wgsl). */
export const GemmFlag = { TRANS_A: 1, TRANS_B: 2, HAS_D: 4, ADD_A: 8 } as const;

/** C = α·op(A)·op(B) + β·D on separate buffers with strides (gemm.wgsl). Bindings: jobs, a, b, d, c. */
export function gemmKernel(tiles: TileConfig): KernelSpec {
  return {
    name: 'linalg.gemm',
    ...matmulSpec(tiles, [MATMUL_PART, part('gemm.wgsl', gemmWgsl)]),
    entryPoint: 'main',
    bindings: [ro('jobs'), ro('a'), ro('b'), ro('d'), rw('c')],
  };
}
