/**
 * A whole PC training step (JPC's `make_pc_step`): feedforward initialisation, the loss of that prediction,
 * inference to equilibrium, the parameter gradient at equilibrium and one optimiser update, in that order and
 * all on the GPU. The only readbacks are the PID solver's polls (none with a constant step size).
 */
import type { Tensor } from '../runtime/tensor.js';
import { type BatchData, beginCall, copyOutScalars, loadBatch, onWorkspace } from './batch.js';
import type { Model } from './model.js';
import { type OptState, type Optimizer, checkOptState } from './optim.js';
import { SOLVER_OPTION_KEYS, integrate, resolveSolverOptions, writeSolverConfig, type ResolvedSolver, type SolverOptions } from './solver.js';
import type { Loss } from './workspace.js';

export interface PcStepOptions extends SolverOptions {
  /** The input x, shape [B, inputDim]. */
  input: BatchData;
  /** `'mse'` (default) or `'ce'`: the output energy and the reported loss. */
  loss?: Loss;
}

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
  /** Time the inference reached (maxT1). */
  t: number;
  /** GPU dispatches encoded for the inference steps. */
  inferenceDispatches: number;
}

/**
 * One training step on a batch. `loss` and `energies` are small new tensors: read them when needed
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
  const { loss, B, cap } = beginCall(fn, model, undefined, output, options, ['input', 'loss', ...SOLVER_OPTION_KEYS], (opts) => {
    solver = resolveSolverOptions(fn, opts);
    checkOptState(fn, optState, optim, 'params', model.paramCount, model.runtime);
  });
  const cfg = solver!;
  return onWorkspace(model, B, cap, async (ws, rec) => {
    const kernel = await optState.kernel(false);
    writeSolverConfig(ws, cfg);
    loadBatch(ws, rec, cap.input, cap.output);
    ws.recordForward(rec);
    ws.recordLoss(rec, loss);
    const lossTensor = copyOutScalars(ws, rec, ws.scalar.loss, [1]);
    const stats = await integrate(ws, rec, cfg, loss);
    ws.recordErrors(rec, 'y', loss, false);
    ws.recordEnergies(rec, loss);
    const energies = copyOutScalars(ws, rec, ws.scalar.energies, [model.depth]);
    ws.recordParamGrads(rec);
    optState.recordStep(rec, kernel, { buffer: model.params, offset: 0 }, { buffer: model.grads(), offset: 0 }, model.paramCount);
    rec.submit();
    return {
      model,
      optState,
      loss: lossTensor,
      energies,
      steps: { accepted: stats.accepted, rejected: stats.rejected },
      t: stats.t,
      inferenceDispatches: stats.dispatches,
    };
  });
}
