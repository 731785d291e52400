/**
 * Everything WPC exports that does not depend on the platform; `node.ts` and `browser.ts` add `init()`.
 */
export { Runtime, initFromDevice } from './runtime/runtime.js';
export type { AdapterSummary, InitOptions, InitFromDeviceOptions, RuntimeStats } from './runtime/runtime.js';
export { Tensor } from './runtime/tensor.js';
export type { Shape } from './runtime/tensor.js';
export { WpcArgumentError, WpcGpuError, WpcShaderError, WpcSolverError } from './runtime/errors.js';
export { ACTIVATIONS, Model, makeMlp, mlpFromWeights } from './pc/model.js';
export type { Activation, LayerSpec, MakeMlpOptions, MlpFromWeightsOptions } from './pc/model.js';
