/**
 * The kernel families in one import, for callers outside the engine (the CLI); the engine imports each family
 * from its own module (a `.ts` descriptor next to its `.wgsl`).
 */
export * from './activations.js';
export * from './copy.js';
export * from './elementwise.js';
export * from './fused-solve.js';
export * from './gemm.js';
export * from './health.js';
export * from './layer-matmul.js';
export * from './optimizer.js';
export * from './output.js';
export * from './parts.js';
export * from './record.js';
export * from './reduce.js';
export * from './regularize.js';
export * from './solver.js';
export * from './tiles.js';
