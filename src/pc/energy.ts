/**
 * The PC energy and its gradients (JPC's `pc_energy_fn`, `compute_pc_activity_grad`,
 * `compute_pc_param_grads`) and the feedforward initialisation of the activities.
 *
 * For activities z_1..z_L (z_L, the output layer's, is a dummy the energy never reads), input x and target y:
 *
 *   F = (1/B) Σ_l E_l,   E_l = ½ Σ_b ‖z_l − f_l(z_{l−1})‖²  (l < L, z_0 = x),
 *   E_L = ½ Σ_b ‖y − f_L(z_{L−1})‖²  (mse)   or   −Σ_b y·log_softmax(f_L(z_{L−1}))  (ce),
 *
 * with f_l(z) = W_l φ(z) + b_l. Every gradient carries the 1/B factor, exactly as autodiff of F gives in JPC.
 */
import type { Recorder } from '../runtime/recorder.js';
import type { Tensor } from '../runtime/tensor.js';
import {
  type BatchData,
  type Captured,
  type ParamGradResult,
  batchSizeOf,
  beginCall,
  captureBatch,
  checkModel,
  copyOutLayers,
  copyOutScalars,
  copyParamGrads,
  loadActivities,
  loadBatch,
  onWorkspace,
} from './batch.js';
import type { Model } from './model.js';
import { writeSolverConfig } from './solver.js';
import type { Loss, Workspace } from './workspace.js';

export interface EnergyOptions {
  /** The input x (clamped), shape [B, inputDim]. Required: supervised PC. */
  input: BatchData;
  /** Output term: `'mse'` (default) or `'ce'` (cross-entropy with a log-softmax). */
  loss?: Loss;
}

export interface PcEnergyOptions extends EnergyOptions {
  /**
   * Return each layer's energy (already /B), in JPC's `record_layers` order [E_L, E_2, …, E_{L−1}, E_1], instead
   * of the total. Default false.
   */
  recordLayers?: boolean;
}

function prepareState(ws: Workspace, rec: Recorder, cap: Captured, loss: Loss): void {
  writeSolverConfig(ws, undefined);
  loadBatch(ws, rec, cap.input, cap.output);
  loadActivities(ws, rec, cap.activities);
  ws.recordErrors(rec, 'y', loss, false);
}


/**
 * The PC energy F of `activities` (a one-element tensor), or with `recordLayers` the L layer energies.
 * $$F = \frac{1}{B}\sum_l E_l$$
 */
export async function pcEnergy(model: Model, activities: readonly Tensor[], output: BatchData, options: PcEnergyOptions): Promise<Tensor> {
  const { loss, B, cap, opts } = beginCall('pcEnergy', model, activities, output, options, ['input', 'loss', 'recordLayers']);
  return onWorkspace(model, B, cap, (ws, rec) => {
    prepareState(ws, rec, cap, loss);
    ws.recordEnergies(rec, loss);
    const result = opts.recordLayers
      ? copyOutScalars(ws, rec, ws.scalar.energies, [model.depth])
      : copyOutScalars(ws, rec, ws.scalar.total, [1]);
    rec.submit();
    return result;
  });
}

export type { ParamGradResult };

export interface ActivityGradResult {
  /** F before any update (one element). */
  energy: Tensor;
  /** ∂F/∂z_l for l = 1..L, shaped like the activities; the dummy output activity's is zero. */
  grads: Tensor[];
}

/**
 * JPC's `compute_pc_activity_grad`: the energy and its gradient with respect to every activity,
 * $$\frac{\partial F}{\partial z_l} = \frac{1}{B}\Big(e_l - \varphi'(z_l) \odot e_{l+1} W_{l+1}\Big).$$
 */
export async function computePcActivityGrad(
  model: Model,
  activities: readonly Tensor[],
  output: BatchData,
  options: EnergyOptions,
): Promise<ActivityGradResult> {
  const { loss, B, cap } = beginCall('computePcActivityGrad', model, activities, output, options, ['input', 'loss']);
  return onWorkspace(model, B, cap, (ws, rec) => {
    prepareState(ws, rec, cap, loss);
    ws.recordEnergies(rec, loss);
    ws.recordActivityGrad(rec, 'y', false, 0);
    const L = model.depth;
    const grads = copyOutLayers(ws, rec, (l) => ws.gradOffset(l)).map((t, i) => {
      if (i === L - 1) rec.clear(t.buffer, 0, t.byteLength); // the dummy's gradient is zero
      return t;
    });
    const energy = copyOutScalars(ws, rec, ws.scalar.total, [1]);
    rec.submit();
    return { energy, grads };
  });
}


/**
 * JPC's `compute_pc_param_grads`: the gradient of the energy with respect to every weight and bias,
 * $$\frac{\partial F}{\partial W_l} = -\frac{1}{B} e_l^\top \varphi(z_{l-1}), \qquad
 *   \frac{\partial F}{\partial b_l} = -\frac{1}{B}\sum_b e_{l,b}.$$
 */
export async function computePcParamGrads(
  model: Model,
  activities: readonly Tensor[],
  output: BatchData,
  options: EnergyOptions,
): Promise<ParamGradResult> {
  const { loss, B, cap } = beginCall('computePcParamGrads', model, activities, output, options, ['input', 'loss']);
  return onWorkspace(model, B, cap, (ws, rec) => {
    prepareState(ws, rec, cap, loss);
    ws.recordParamGrads(rec);
    const result = copyParamGrads(model, rec);
    rec.submit();
    return result;
  });
}

/**
 * JPC's `init_activities_with_ffwd`: z_1 = f_1(x), z_l = f_l(z_{l−1}); the last activity is the network's
 * prediction. Returns L new tensors.
 */
export async function initActivitiesWithFfwd(model: Model, input: BatchData): Promise<Tensor[]> {
  const fn = 'initActivitiesWithFfwd';
  checkModel(fn, model);
  const B = batchSizeOf(fn, 'input', input, model.inputDim, model);
  const cap = captureBatch(model, B, input, undefined);
  return onWorkspace(model, B, cap, (ws, rec) => {
    loadBatch(ws, rec, cap.input, undefined);
    ws.recordForward(rec);
    const out = copyOutLayers(ws, rec, (l) => ws.activityOffset(l));
    rec.submit();
    return out;
  });
}
