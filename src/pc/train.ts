/**
 * A whole PC training step (JPC's `make_pc_step`): feedforward initialisation, the loss of that prediction,
 * inference to equilibrium, the parameter gradient at equilibrium and one optimiser update, in that order and
 * all on the GPU. The only readbacks are an adaptive solver's polls (none with a constant step size or with
 * discrete inference); metrics come back as small tensors, read when the caller wants them.
 */
import { argError } from '../runtime/errors.js';
import type { Tensor } from '../runtime/tensor.js';
import { type BatchData, beginCall, copyOutScalars, loadBatch, onWorkspace } from './batch.js';
import { copyOutRecording, type Recording } from './infer.js';
import type { Model } from './model.js';
import { type OptState, type Optimizer, checkOptState } from './optim.js';
import { SOLVER_OPTION_KEYS, integrate, resolveSolverOptions, workspaceNeeds, writeSolverConfig, type ResolvedSolver, type SolverOptions } from './solver.js';
import type { Loss } from './workspace.js';

export interface PcStepOptions extends SolverOptions {
  /** The input x, shape [B, inputDim]. */
  input: BatchData;
  /** `'mse'` (default) or `'ce'`: the output energy and the reported loss. */
  loss?: Loss;
  /** mean_b ‖z_{l,b}‖ of the activities at equilibrium (JPC's `activity_norms`). Default false. */
  activityNorms?: boolean;
  /** ‖W_l‖, ‖b_l‖ of the parameters before the update (JPC's `param_norms`). Default false. */
  paramNorms?: boolean;
  /** ‖∂F/∂W_l‖, ‖∂F/∂b_l‖ of the gradients applied (JPC's `grad_norms`). Default false. */
  gradNorms?: boolean;
  /** Accuracy (%) of the updated model's feedforward prediction on this batch (JPC's `calculate_accuracy`). */
  calculateAccuracy?: boolean;
  /**
   * Time the inference solve: wait for the GPU before and after it (like JAX's `block_until_ready`) and report
   * the wall-clock milliseconds. This stalls the pipeline twice, so use it for measurements only. Default false.
   */
  timeInference?: boolean;
}

const METRIC_KEYS = ['activityNorms', 'paramNorms', 'gradNorms', 'calculateAccuracy', 'timeInference'] as const;

export interface PcStepResult {
  /** The model, updated in place. */
  model: Model;
  optState: OptState;
  /** JPC's `mse_loss` / `cross_entropy_loss` of the feedforward prediction before inference (one element). */
  loss: Tensor;
  /** Layer energies at equilibrium (already /B), JPC's order [E_L, E_2, …, E_{L−1}, E_1]. */
  energies: Tensor;
  /** Inference steps attempted. */
  steps: { accepted: number; rejected: number };
  /** Time the inference reached (maxT1 unless the steady-state event stopped it). */
  t: number;
  /** The steady-state event ended the inference. */
  steadyState: boolean;
  /** With `recordIters` / `recordEvery`: energies (and activities) along the inference. */
  recording: Recording | null;
  /** [L], with `activityNorms`. */
  activityNorms: Tensor | null;
  /** [L, 2] (weight, bias; 0 without bias), with `paramNorms`. */
  paramNorms: Tensor | null;
  /** [L, 2], with `gradNorms`. */
  gradNorms: Tensor | null;
  /** Training-batch accuracy after the update (one element, %), with `calculateAccuracy`. */
  acc: Tensor | null;
  /** GPU dispatches encoded for the inference steps. */
  inferenceDispatches: number;
  /** With `timeInference`: wall-clock milliseconds of the solve, GPU work included. */
  inferenceMs: number | null;
}

/**
 * One training step on a batch. `loss`, `energies` and the metrics are small new tensors: read them when needed
 * (`await r.loss.item()`) and dispose them.
 */
export async function makePcStep(
  model: Model,
  optim: Optimizer,
  optState: OptState,
  output: BatchData,
  options: PcStepOptions,
): Promise<PcStepResult> {
  const fn = 'makePcStep';
  let solver: ResolvedSolver | undefined;
  const { opts, loss, B, cap } = beginCall(fn, model, undefined, output, options, ['input', 'loss', ...SOLVER_OPTION_KEYS, ...METRIC_KEYS], (o) => {
    solver = resolveSolverOptions(fn, o);
    for (const key of METRIC_KEYS) {
      if (o[key] !== undefined && typeof o[key] !== 'boolean') argError(fn, `options.${key}`, 'a boolean', o[key]);
    }
    checkOptState(fn, optState, optim, 'params', model.paramCount, model.runtime);
  });
  const cfg = solver!;
  return onWorkspace(
    model,
    B,
    cap,
    async (ws, rec) => {
      const kernel = await optState.kernel(false);
      writeSolverConfig(ws, cfg);
      loadBatch(ws, rec, cap.input, cap.output);
      ws.recordForward(rec);
      ws.recordLoss(rec, loss);
      const lossTensor = copyOutScalars(ws, rec, ws.scalar.loss, [1]);
      if (opts.paramNorms) ws.recordParamNorms(rec, 'params');
      const paramNorms = opts.paramNorms ? copyOutScalars(ws, rec, ws.scalar.paramNorms, [model.depth, 2]) : null;
      let inferenceMs: number | null = null;
      let solveStart = 0;
      if (opts.timeInference) {
        rec.submit();
        await ws.runtime.finish();
        solveStart = performance.now();
      }
      const stats = await integrate(ws, rec, cfg, loss);
      if (opts.timeInference) {
        rec.submit();
        // Sleep through most of the solve first: awaiting at once makes Dawn busy-poll a CPU core.
        const { waitedMs } = await ws.runtime.finish({ expectedMs: ws.solveClock.sleepFor(1, performance.now() - solveStart) });
        ws.solveClock.update(1, performance.now() - solveStart, waitedMs);
        inferenceMs = performance.now() - solveStart;
      }
      const recording = copyOutRecording(ws, rec, stats);
      ws.recordErrors(rec, 'y', loss, false);
      ws.recordEnergies(rec, loss);
      const energies = copyOutScalars(ws, rec, ws.scalar.energies, [model.depth]);
      if (opts.activityNorms) ws.recordActivityNorms(rec);
      const activityNorms = opts.activityNorms ? copyOutScalars(ws, rec, ws.scalar.activityNorms, [model.depth]) : null;
      ws.recordParamGrads(rec);
      if (opts.gradNorms) ws.recordParamNorms(rec, 'grads');
      const gradNorms = opts.gradNorms ? copyOutScalars(ws, rec, ws.scalar.gradNorms, [model.depth, 2]) : null;
      optState.recordStep(rec, kernel, { buffer: model.params, offset: 0 }, { buffer: model.grads(), offset: 0 }, model.paramCount);
      let acc: Tensor | null = null;
      if (opts.calculateAccuracy) {
        ws.recordForward(rec);
        ws.recordLoss(rec, loss);
        acc = copyOutScalars(ws, rec, ws.scalar.accuracy, [1]);
      }
      rec.submit();
      return {
        model,
        optState,
        loss: lossTensor,
        energies,
        steps: { accepted: stats.accepted, rejected: stats.rejected },
        t: stats.t,
        steadyState: stats.steadyState,
        recording,
        activityNorms,
        paramNorms,
        gradNorms,
        acc,
        inferenceDispatches: stats.dispatches,
        inferenceMs,
      };
    },
    workspaceNeeds(cfg),
  );
}
