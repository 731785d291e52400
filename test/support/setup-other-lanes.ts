// The second test project ("other lanes"): lavapipe compiles for the vector width the default run does not use,
// so that both the 8- and the 16-lane kernels (tiles, subgroup reductions) are checked on every machine. The
// default run gets 512-bit vectors on CPUs with AVX-512 (init's softwareVectorBits 'auto'), 256 elsewhere.
// lavapipe reads LP_NATIVE_VECTOR_WIDTH once per process, before its first shader: every test file runs in a
// fresh fork, and no file creates a WebGPU instance before this runs.
import { cpuHasAvx512 } from '../../src/runtime/dawn.js';

process.env.LP_NATIVE_VECTOR_WIDTH = cpuHasAvx512() ? '256' : '512';
