/**
 * One optimiser step on the activities or on the parameters (JPC's `update_pc_activities`,
 * `update_pc_params`): gradient of the energy, then the optimiser's update, all on the GPU.
 */
import type { Tensor } from '../runtime/tensor.js';
import {
  type BatchData,
  beginCall,
  copyOutLayers,
  copyOutScalars,
  copyParamGrads,
  loadActivities,
  loadBatch,
  onWorkspace,
  type ParamGradResult,
} from './batch.js';
import { ENERGY_KEYS, type EnergyOptions } from './energy.js';
import type { Model } from './model.js';
import { type OptState, type Optimizer, checkOptState } from './optim.js';
import { writeSolverConfig } from './solve/index.js';

export interface UpdateOptions extends EnergyOptions {
  /** Also return the gradients as new tensors (JPC always does; here they cost a copy). Default false. */
  returnGrads?: boolean;
}

export interface ActivityUpdateResult {
  /** F before the update (one element). */
  energy: Tensor;
  /** The updated activities (new tensors). */
  activities: Tensor[];
  /** ∂F/∂z before the update, when `returnGrads`. */
  grads: Tensor[] | null;
  optState: OptState;
}

/**
 * JPC's `update_pc_activities`: z ← optimiser(z, ∂F/∂z). The state must come from `optim.init(activities)`.
 * Discrete inference is T such calls (JPC's notebooks: T = L steps of sgd(0.5), or 20 of sgd(0.1)).
 */
export async function updatePcActivities(
  model: Model,
  activities: readonly Tensor[],
  optim: Optimizer,
  optState: OptState,
  output: BatchData,
  options: UpdateOptions,
): Promise<ActivityUpdateResult> {
  const fn = 'updatePcActivities';
  // The activities are validated by the time the extra check runs.
  const n = () => activities.reduce((s, a) => s + a.size, 0);
  const { opts, loss, B, cap, mode, terms } = beginCall(
    fn,
    model,
    activities,
    output,
    options,
    [...ENERGY_KEYS, 'returnGrads'],
    () => checkOptState(fn, optState, optim, 'activities', n(), model.runtime),
  );
  return onWorkspace(
    model,
    B,
    cap,
    async (ws, rec) => {
      const kernel = await optState.kernel(true);
      writeSolverConfig(ws, undefined);
      loadBatch(ws, rec, cap.input, cap.output);
      loadActivities(ws, rec, cap.activities);
      ws.recordErrors(rec, 'y', loss, false);
      ws.recordEnergies(rec, loss);
      ws.recordActivityGrad(rec, 'y', false, 0);
      const grads = opts.returnGrads ? copyOutLayers(ws, rec, (l) => ws.gradOffset(l)) : null;
      const energy = copyOutScalars(ws, rec, ws.scalar.total, [1]);
      optState.recordStep(
        rec,
        kernel,
        { buffer: ws.buffer, offset: ws.activityOffset(ws.first) },
        { inTarget: ws.gradOffset(ws.first) },
        ws.nAll,
      );
      const updated = copyOutLayers(ws, rec, (l) => ws.activityOffset(l));
      rec.submit();
      return { energy, activities: updated, grads, optState };
    },
    undefined,
    mode,
    terms,
  );
}

export interface ParamUpdateResult {
  model: Model;
  optState: OptState;
  /** ∂F/∂θ that was applied, when `returnGrads`. */
  grads: ParamGradResult | null;
}

/**
 * JPC's `update_pc_params`: θ ← optimiser(θ, ∂F/∂θ) at the given (usually equilibrated) activities. Updates the
 * model in place and returns it. The state must come from `optim.init(model)`.
 */
export async function updatePcParams(
  model: Model,
  activities: readonly Tensor[],
  optim: Optimizer,
  optState: OptState,
  output: BatchData,
  options: UpdateOptions,
): Promise<ParamUpdateResult> {
  const fn = 'updatePcParams';
  const { opts, loss, B, cap, mode, terms } = beginCall(
    fn,
    model,
    activities,
    output,
    options,
    [...ENERGY_KEYS, 'returnGrads'],
    () => checkOptState(fn, optState, optim, 'params', model.paramCount, model.runtime),
  );
  return onWorkspace(
    model,
    B,
    cap,
    async (ws, rec) => {
      const kernel = await optState.kernel(false);
      writeSolverConfig(ws, undefined);
      loadBatch(ws, rec, cap.input, cap.output);
      loadActivities(ws, rec, cap.activities);
      ws.recordErrors(rec, 'y', loss, false);
      ws.recordParamGrads(rec);
      ws.recordRegularizerGrads(rec);
      const grads = opts.returnGrads ? copyParamGrads(model, rec) : null;
      optState.recordStep(
        rec,
        kernel,
        { buffer: model.params, offset: 0 },
        { buffer: model.grads(), offset: 0 },
        model.paramCount,
      );
      rec.submit();
      return { model, optState, grads };
    },
    undefined,
    mode,
    terms,
  );
}
