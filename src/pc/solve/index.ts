/**
 * The solver room's door: what the rest of the library uses to resolve solver options, check that a solve fits
 * the device, write the solver config, and integrate. Inside: options.ts (resolution) → grid.ts (float32 step
 * grid) → plan.ts (what the configuration alone decides, with config.ts and records.ts) → free-running.ts,
 * controlled.ts, discrete.ts (the loops that encode a plan on a workspace) → integrate.ts.
 */
export type { SolverName } from '../tableaux.js';
export { writeSolverConfig } from './config.js';
export type { SolveStats } from './encode.js';
export { checkSolveFits, workspaceNeeds } from './fits.js';
export { MAX_SOLVE_STEPS, constantStepCount } from './grid.js';
export { integrate } from './integrate.js';
export {
  SOLVER_OPTION_KEYS,
  refuseRecording,
  resolveSolverOptions,
  type PidOptions,
  type SolverOptions,
  type SteadyStateOptions,
  type StepsizeController,
} from './options.js';
