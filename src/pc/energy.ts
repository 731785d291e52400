/**
 * The PC energy and its gradients (JPC's `pc_energy_fn`, `compute_pc_activity_grad`,
 * `compute_pc_param_grads`) and the initialisations of the activities.
 *
 * For activities z_1..z_L (z_L, the output layer's, is a dummy the energy never reads), input x and target y:
 *
 *   F = (1/B) Σ_l E_l + R,   E_l = ½ Σ_b ‖z_l − s_l f_l(z_{l−1}) − [skip] z_{l−1}‖²  (l < L, z_0 = x),
 *   E_L = λ·½ Σ_b ‖y − s_L f_L(z_{L−1})‖²  (mse)   or   −λ Σ_b y·log_softmax(s_L f_L(z_{L−1}))  (ce),
 *   R = (wd/2) Σ_l ‖W_l‖² + (sp/2) Σ_l ‖W_lᵀW_l − I‖² + (ad/2) Σ_l mean_b ‖z_{l,b}‖²
 *
 * with f_l(z) = W_l φ(z) + b_l, the scalings s_l and skips of the model's parameterisation. Without an input
 * (unsupervised PC) z_0 is a free activity in x's place. Every gradient carries the 1/B factor, exactly as
 * autodiff of F gives in JPC.
 *
 * Differences from JPC, all deliberate: the weight decay and spectral penalty act (JPC's look for a `weight`
 * attribute its MLP layers lack, so they never do); in unsupervised mode E_1 uses the scaling s_1 like every
 * other layer (JPC drops it there, but JPC's μPC/NTP scalings need an input and fail without one, so only sp —
 * where s_1 = 1 — runs in JPC).
 */
import { argError, checkFinite, checkKnownKeys, checkOneOf, checkPositiveInt } from '../runtime/errors.js';
import type { Recorder } from '../runtime/recorder.js';
import type { Tensor } from '../runtime/tensor.js';
import { Random } from '../util/random.js';
import {
  type BatchData,
  type Captured,
  ENERGY_TERM_KEYS,
  type EnergyTermOptions,
  type ParamGradResult,
  batchSizeOf,
  beginCall,
  captureBatch,
  checkBatchTensors,
  checkModel,
  checkWorkspaces,
  copyOutLayers,
  copyOutScalars,
  copyParamGrads,
  loadActivities,
  loadBatch,
  onWorkspace,
} from './batch.js';
import type { Model } from './model.js';
import { writeSolverConfig } from './solve/index.js';
import type { Loss, Mode, Workspace } from './workspace.js';

export interface EnergyOptions extends EnergyTermOptions {
  /**
   * The input x (clamped), shape [B, inputDim]. Omit it for unsupervised PC: the activities then start with a
   * free z_0 of shape [B, inputDim] (L + 1 tensors).
   */
  input?: BatchData;
  /** Output term: `'mse'` (default) or `'ce'` (cross-entropy with a log-softmax). */
  loss?: Loss;
}

export const ENERGY_KEYS = ['input', 'loss', ...ENERGY_TERM_KEYS] as const;

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
 * The PC energy F of `activities` (a one-element tensor, regularisers included), or with `recordLayers` the L
 * layer energies (without the regularisers, as JPC).
 * $$F = \frac{1}{B}\sum_l E_l + R$$
 */
export async function pcEnergy(
  model: Model,
  activities: readonly Tensor[],
  output: BatchData,
  options: PcEnergyOptions,
): Promise<Tensor> {
  const { loss, B, cap, opts, mode, terms } = beginCall('pcEnergy', model, activities, output, options, [
    ...ENERGY_KEYS,
    'recordLayers',
  ]);
  return onWorkspace(
    model,
    B,
    cap,
    (ws, rec) => {
      prepareState(ws, rec, cap, loss);
      ws.recordEnergies(rec, loss);
      const result = opts.recordLayers
        ? copyOutScalars(ws, rec, ws.scalar.energies, [model.depth])
        : copyOutScalars(ws, rec, ws.scalar.total, [1]);
      rec.submit();
      return result;
    },
    undefined,
    mode,
    terms,
  );
}

export type { ParamGradResult };

export interface ActivityGradResult {
  /** F before any update (one element). */
  energy: Tensor;
  /** ∂F/∂z for every activity, shaped like them; the dummy output activity's is zero (without activity decay). */
  grads: Tensor[];
}

/**
 * JPC's `compute_pc_activity_grad`: the energy and its gradient with respect to every activity,
 * $$\frac{\partial F}{\partial z_l} = \frac{1}{B}\Big(e_l - s_{l+1} w_{l+1}\, \varphi'(z_l) \odot e_{l+1} W_{l+1}
 *   - [\text{skip}]\, e_{l+1} + \text{ad}\, z_l\Big)$$
 * (w = λ for the output layer; a free z_0 has no e_0 and enters layer 1 without an activation).
 */
export async function computePcActivityGrad(
  model: Model,
  activities: readonly Tensor[],
  output: BatchData,
  options: EnergyOptions,
): Promise<ActivityGradResult> {
  const { loss, B, cap, mode, terms } = beginCall(
    'computePcActivityGrad',
    model,
    activities,
    output,
    options,
    ENERGY_KEYS,
  );
  return onWorkspace(
    model,
    B,
    cap,
    (ws, rec) => {
      prepareState(ws, rec, cap, loss);
      ws.recordEnergies(rec, loss);
      ws.recordActivityGrad(rec, 'y', false, 0);
      const grads = copyOutLayers(ws, rec, (l) => ws.gradOffset(l));
      const energy = copyOutScalars(ws, rec, ws.scalar.total, [1]);
      rec.submit();
      return { energy, grads };
    },
    undefined,
    mode,
    terms,
  );
}

/**
 * JPC's `compute_pc_param_grads`: the gradient of the energy with respect to every weight and bias,
 * $$\frac{\partial F}{\partial W_l} = -\frac{s_l w_l}{B} e_l^\top \varphi(z_{l-1}) + \text{wd}\, W_l
 *   + 2\,\text{sp}\, W_l (W_l^\top W_l - I), \qquad
 *   \frac{\partial F}{\partial b_l} = -\frac{s_l w_l}{B}\sum_b e_{l,b}.$$
 */
export async function computePcParamGrads(
  model: Model,
  activities: readonly Tensor[],
  output: BatchData,
  options: EnergyOptions,
): Promise<ParamGradResult> {
  const { loss, B, cap, mode, terms } = beginCall(
    'computePcParamGrads',
    model,
    activities,
    output,
    options,
    ENERGY_KEYS,
  );
  return onWorkspace(
    model,
    B,
    cap,
    (ws, rec) => {
      prepareState(ws, rec, cap, loss);
      ws.recordParamGrads(rec);
      ws.recordRegularizerGrads(rec);
      const result = copyParamGrads(model, rec);
      rec.submit();
      return result;
    },
    undefined,
    mode,
    terms,
  );
}

/**
 * JPC's `init_activities_with_ffwd`: z_1 = s_1 f_1(x), z_l = s_l f_l(z_{l−1}) [+ z_{l−1} with a skip]; the last
 * activity is the network's prediction. Returns L new tensors.
 */
export async function initActivitiesWithFfwd(model: Model, input: BatchData): Promise<Tensor[]> {
  const fn = 'initActivitiesWithFfwd';
  checkModel(fn, model);
  const B = batchSizeOf(fn, 'input', input, model.inputDim, model);
  checkWorkspaces(fn, [{ model, B }], 'input');
  const cap = captureBatch(model, B, input, undefined);
  return onWorkspace(model, B, cap, (ws, rec) => {
    loadBatch(ws, rec, cap.input, undefined);
    ws.recordForward(rec);
    const out = copyOutLayers(ws, rec, (l) => ws.activityOffset(l));
    rec.submit();
    return out;
  });
}

export interface InitFromNormalOptions {
  /** Seed of the draws; equal seeds give equal activities. */
  seed: number;
  /** Rows B. */
  batchSize: number;
  /**
   * `'supervised'` (default): z_1..z_L (L tensors), for a clamped input; `'unsupervised'`: z_0..z_L (L + 1),
   * z_0 being the free input layer.
   */
  mode?: Mode;
  /** Standard deviation. Default 0.05 (JPC's). */
  sigma?: number;
}

/**
 * JPC's `init_activities_from_normal`: every activity drawn from N(0, σ²), shape [B, d_l], each layer from its
 * own stream forked from `seed` (WPC's generator, not JAX's). Drawn on the host and uploaded.
 */
export function initActivitiesFromNormal(model: Model, options: InitFromNormalOptions): Tensor[] {
  const fn = 'initActivitiesFromNormal';
  checkModel(fn, model);
  if (typeof options !== 'object' || options === null)
    argError(fn, 'options', 'an object like { seed, batchSize }', options);
  checkKnownKeys(fn, 'options', options, ['seed', 'batchSize', 'mode', 'sigma']);
  if (!Number.isSafeInteger(options.seed)) argError(fn, 'options.seed', 'a safe integer', options.seed);
  const B = checkPositiveInt(fn, 'options.batchSize', options.batchSize);
  const mode = checkOneOf<Mode>(fn, 'options.mode', options.mode ?? 'supervised', ['supervised', 'unsupervised']);
  const sigma = checkFinite(fn, 'options.sigma', options.sigma ?? 0.05, { min: 0 });
  checkBatchTensors(fn, model, B, model.dims.slice(mode === 'unsupervised' ? 0 : 1));
  return normalActivities(model, options.seed, B, mode, sigma);
}

/** The draws of initActivitiesFromNormal (arguments already checked). */
function normalActivities(model: Model, seed: number, B: number, mode: Mode, sigma: number): Tensor[] {
  const root = new Random(seed);
  const first = mode === 'unsupervised' ? 0 : 1;
  const out: Tensor[] = [];
  for (let l = first; l <= model.depth; l++) {
    const stream = root.fork(l);
    const data = new Float32Array(B * model.dims[l]!);
    for (let i = 0; i < data.length; i++) data[i] = sigma * stream.normal();
    out.push(model.runtime.tensor(data, [B, model.dims[l]!]));
  }
  return out;
}
