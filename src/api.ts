/**
 * Everything WPC exports that does not depend on the platform; `node.ts` and `browser.ts` add `init()`.
 */
export { initFromDevice } from './init.js';
export type { AdapterSummary } from './runtime/adapter.js';
export type { InitFromDeviceOptions, InitOptions, KernelTuning } from './runtime/options.js';
export { Runtime } from './runtime/runtime.js';
export type { RuntimeStats } from './runtime/runtime.js';
export { Tensor } from './runtime/tensor.js';
export type { Shape } from './runtime/tensor.js';
export {
  WpcArgumentError,
  WpcDivergenceError,
  WpcError,
  WpcGpuError,
  WpcShaderError,
  WpcSolverError,
} from './runtime/errors.js';
export type { DivergenceDetails, DivergenceKind, RunawayDetails } from './runtime/errors.js';
export {
  ACTIVATIONS,
  Model,
  PARAM_TYPES,
  makeMlp,
  makeSkipModel,
  mlpFromBuffer,
  mlpFromWeights,
  paramScalings,
} from './pc/model.js';
export type {
  Activation,
  LayerSpec,
  MakeMlpOptions,
  MlpFromBufferOptions,
  MlpFromWeightsOptions,
  ParamType,
  ParameterisationOptions,
} from './pc/model.js';
export { makeModel } from './pc/architecture.js';
export type { MakeModelOptions } from './pc/architecture.js';
export { avgPool, conv, convTranspose, dense, flatten, maxPool, reshape, residual } from './pc/layer-defs.js';
export type {
  AvgPoolDef,
  ConvDef,
  ConvTransposeDef,
  DenseDef,
  FlattenDef,
  MaxPoolDef,
  ReshapeDef,
  LayerAct,
  LayerDef,
  ModelDefinition,
  ResidualDef,
} from './pc/layer-defs.js';
export {
  pcEnergy,
  computePcActivityGrad,
  computePcParamGrads,
  initActivitiesFromNormal,
  initActivitiesWithFfwd,
} from './pc/energy.js';
export type {
  ActivityGradResult,
  EnergyOptions,
  InitFromNormalOptions,
  ParamGradResult,
  PcEnergyOptions,
} from './pc/energy.js';
export type { BatchData, EnergyTermOptions } from './pc/batch.js';
export type { Mode } from './pc/workspace.js';
export { solveInference } from './pc/infer.js';
export type { Recording, SolveInferenceOptions, SolveInferenceResult } from './pc/infer.js';
export { SOLVER_NAMES, TABLEAUX } from './pc/tableaux.js';
export type { Tableau } from './pc/tableaux.js';
export type {
  PidOptions,
  SolverName,
  SolverOptions,
  SteadyStateOptions,
  StepsizeController,
} from './pc/solve/index.js';
export { computeActivityNorms, computeParamNorms } from './pc/metrics.js';
export { updatePcActivities, updatePcParams } from './pc/updates.js';
export type { ActivityUpdateResult, ParamUpdateResult, UpdateOptions } from './pc/updates.js';
export { Optimizer, OptState, adam, sgd } from './pc/optim.js';
export type { AdamOptions, RunawayThreshold, SgdOptions } from './pc/optim.js';
export { DEFAULT_DIVERGENCE_THRESHOLD, makePcStep } from './pc/train.js';
export {
  bpcEnergy,
  computeBpcActivityGrad,
  computeBpcParamGrads,
  initBpcActivities,
  updateBpcActivities,
  updateBpcParams,
} from './pc/bidirectional.js';
export type { BpcEnergyOptions, BpcOptions, BpcUpdateOptions } from './pc/bidirectional.js';
export {
  computeEpcErrorGrad,
  computeEpcParamGrads,
  epcActivities,
  epcEnergy,
  initEpcErrors,
  updateEpcErrors,
  updateEpcParams,
} from './pc/epc.js';
export type { EpcOptions, EpcUpdateOptions } from './pc/epc.js';
export { computeHpcParamGrads, hpcEnergy, initActivitiesWithAmort, makeHpcStep, testHpc } from './pc/hybrid.js';
export type { HpcEnergyOptions, HpcStepOptions, HpcStepResult, TestHpcOptions, TestHpcResult } from './pc/hybrid.js';
export type { PcStepOptions, PcStepResult } from './pc/train.js';
export {
  computeLinearActivityHessian,
  computeLinearActivitySolution,
  computeLinearEquilibEnergyGrads,
  computeLinearEquilibRescaling,
  linearEquilibEnergy,
  updateLinearEquilibEnergyParams,
} from './pc/linear-theory.js';
export type {
  LinearActivitySolutionOptions,
  LinearEquilibEnergyResult,
  LinearEquilibGradsResult,
  LinearEquilibUpdateOptions,
  LinearEquilibUpdateResult,
  LinearHessianOptions,
  LinearTheoryOptions,
  Matrix64,
} from './pc/linear-theory.js';
export { matmul } from './pc/linalg.js';
export type { MatmulOptions } from './pc/linalg.js';
export { testDiscriminativePc, testGenerativePc, mseLoss, crossEntropyLoss, computeAccuracy } from './pc/evaluate.js';
export type { TestGenerativeOptions, TestGenerativeResult, TestOptions } from './pc/evaluate.js';
export type { Loss } from './pc/workspace.js';
export { Random } from './util/random.js';
export { IdxError, parseIdx } from './data/idx.js';
export { MAX_IDX_BYTES } from './data/idx-reader.js';
export {
  MNIST_MEAN,
  MNIST_STD,
  NUM_CLASSES,
  batches,
  epochBatchCount,
  makeDataset,
  oneHot,
  subset,
} from './data/dataset.js';
export type {
  Batch,
  BatchOptions,
  BatchSource,
  ChannelNormalization,
  Dataset,
  NormalizeOptions,
} from './data/dataset.js';
export { CIFAR10_NORMALIZATION, makeCifarDataset } from './data/cifar.js';
export type { ChannelNormalizeOptions, CifarFile } from './data/cifar.js';
export { imageGridPng } from './io/image-grid.js';
export type { ImageGridOptions } from './io/image-grid.js';
export { CHECKPOINT_FORMAT, CHECKPOINT_VERSION, modelFromCheckpoint, modelToCheckpoint } from './io/checkpoint.js';
export type { CheckpointLoadOptions, ModelCheckpoint } from './io/checkpoint.js';
export {
  TRAINING_CHECKPOINT_FORMAT,
  TRAINING_CHECKPOINT_VERSION,
  restoreTrainingCheckpoint,
  trainingCheckpoint,
} from './io/training-checkpoint.js';
export type { RestoredTraining, TrainingCheckpointOptions } from './io/training-checkpoint.js';
export { decodeSafetensors, encodeSafetensors } from './io/safetensors.js';
export type { DecodedSafetensors, SafeDtype, SafeTensorIn, SafeTensorOut } from './io/safetensors.js';
