/**
 * Inference as an ODE (JPC's `solve_inference`): the activities follow the negative energy gradient
 *
 *   dz/dt = −∂F/∂z,   z(0) = the given activities,
 *
 * integrated to t1 = `maxT1` by Euler or Heun with a constant step, or by Heun with diffrax's PID step-size
 * controller (JPC's default). Everything runs on the GPU; see solver.ts for how the host is kept out of the loop.
 *
 * Like JPC, the solve integrates all the way to `maxT1`: JPC's steady-state event tests the activities rather
 * than their derivative and so never fires in practice (see the README's notes on JPC).
 */
import type { Tensor } from '../runtime/tensor.js';
import { type BatchData, beginCall, copyOutLayers, loadActivities, loadBatch, onWorkspace } from './batch.js';
import type { Model } from './model.js';
import { SOLVER_OPTION_KEYS, integrate, resolveSolverOptions, writeSolverConfig, type ResolvedSolver, type SolverOptions } from './solver.js';
import type { Loss } from './workspace.js';

export interface SolveInferenceOptions extends SolverOptions {
  /** The clamped input x, shape [B, inputDim]. */
  input: BatchData;
  /** Output energy: `'mse'` (default) or `'ce'`. */
  loss?: Loss;
}

export interface SolveInferenceResult {
  /** The activities at t = maxT1 (new tensors; shapes as given). Unlike JPC there is no leading time axis. */
  activities: Tensor[];
  /** Time reached: maxT1. */
  t: number;
  /** Attempted steps: accepted and rejected (always 0 with constant steps). */
  steps: { accepted: number; rejected: number };
  /** GPU dispatches encoded for the steps (for benchmarks; no-op steps after a PID solve ended included). */
  dispatches: number;
  /** Steps encoded: the attempted ones, plus (adaptive solves) no-op steps queued past the end. */
  encodedSteps: number;
}

/**
 * Integrates the inference dynamics from `activities` (e.g. `initActivitiesWithFfwd`) with the input clamped to
 * `options.input` and the output layer's target `output`.
 */
export async function solveInference(
  model: Model,
  activities: readonly Tensor[],
  output: BatchData,
  options: SolveInferenceOptions,
): Promise<SolveInferenceResult> {
  const fn = 'solveInference';
  let cfg: ResolvedSolver | undefined;
  const { loss, B, cap } = beginCall(fn, model, activities, output, options, ['input', 'loss', ...SOLVER_OPTION_KEYS], (opts) => {
    cfg = resolveSolverOptions(fn, opts);
  });
  const solver = cfg!;
  return onWorkspace(model, B, cap, async (ws, rec) => {
    writeSolverConfig(ws, solver);
    loadBatch(ws, rec, cap.input, cap.output);
    loadActivities(ws, rec, cap.activities);
    const stats = await integrate(ws, rec, solver, loss);
    const out = copyOutLayers(ws, rec, (l) => ws.activityOffset(l));
    rec.submit();
    return {
      activities: out,
      t: stats.t,
      steps: { accepted: stats.accepted, rejected: stats.rejected },
      dispatches: stats.dispatches,
      encodedSteps: stats.stepsEncoded,
    };
  });
}
