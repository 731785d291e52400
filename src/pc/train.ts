/**
 * A whole PC training step (JPC's `make_pc_step`): feedforward initialisation, the loss of that prediction,
 * inference to equilibrium, the parameter gradient at equilibrium and one optimiser update, in that order and
 * all on the GPU. The only readbacks are an adaptive solver's polls (none with a constant step size or with
 * discrete inference); metrics come back as small tensors, read when the caller wants them.
 */
import { WpcArgumentError, argError, checkFinite, checkKnownKeys } from '../runtime/errors.js';
import { F32_MAX } from '../runtime/limits.js';
import type { Tensor } from '../runtime/tensor.js';
import {
  type BatchData,
  type EnergyTermOptions,
  beginCall,
  copyOutScalars,
  loadBatch,
  onWorkspace,
  writeNormalActivities,
} from './batch.js';
import { ENERGY_KEYS } from './energy.js';
import { copyOutRecording, type Recording } from './infer.js';
import type { Model } from './model.js';
import { type OptState, type Optimizer, type RunawayThreshold, checkOptState } from './optim.js';
import {
  SOLVER_OPTION_KEYS,
  checkSolveFits,
  integrate,
  resolveSolverOptions,
  workspaceNeeds,
  writeSolverConfig,
  type SolverOptions,
} from './solve/index.js';
import type { Loss } from './workspace.js';

export interface PcStepOptions extends SolverOptions, EnergyTermOptions {
  /**
   * The input x, shape [B, inputDim]. Omit it for unsupervised (generative) PC: the activities, z_0 included,
   * then start from N(0, σ²) draws (JPC's `init_activities_from_normal`) instead of a feedforward pass.
   */
  input?: BatchData;
  /** Unsupervised only (required there): the seed of the random initialisation; use a new one every step. */
  seed?: number;
  /** Unsupervised only: σ of the random initialisation. Default 0.05. */
  sigma?: number;
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
  /**
   * Divergence guard. Default true: after inference the GPU checks the step's per-layer energies, activity norms
   * and gradient norms for NaN/Inf; if any is non-finite, the parameter update is not applied (nor any later one)
   * and the next `optState.checkDivergence()` — or the next makePcStep once that has been read — throws a
   * WpcDivergenceError naming the step and layer. Costs a few reductions per training step, no readback.
   */
  checkFinite?: boolean;
  /**
   * Runaway check of the divergence guard (needs checkFinite): a finite blow-up of the energy or the loss is
   * divergence too. The reference of each is the largest value of the first `warmup` guarded steps of this
   * optimiser state (each compared before it is folded in, so a blow-up at step 2 is measured against step 1);
   * the threshold is max(factor × reference, floor). A step diverges when its total energy at equilibrium or its
   * loss exceeds it before the update — then the update is not applied — or when, after the update, the loss of
   * the updated model's feedforward prediction on the same batch does (without an input: the energy of the
   * feedforward pass from the inferred z_0, against the energy's threshold) — then the update is rolled back: the
   * parameters and optimiser state saved just before it are restored bit for bit. Either way the model keeps the
   * weights of the last step that passed, which no later step has built on, and `optState.checkDivergence()`
   * throws a WpcDivergenceError with `what` 'energy-runaway' or 'loss-runaway' and the numbers. The references
   * belong to the optimiser state: a new one (or one restored from a checkpoint) takes them afresh;
   * clearDivergence keeps them. `true` takes DEFAULT_DIVERGENCE_THRESHOLD. Costs a copy of the parameters and
   * optimiser state and one feedforward pass per step, no readback. Default: off.
   */
  divergenceThreshold?: boolean | Partial<RunawayThreshold>;
  /**
   * Clips the gradient to a global norm (optax.clip_by_global_norm): g ← g · min(1, c / ‖g‖) over all
   * parameters. Needs checkFinite (the guard computes the norm). Default: no clipping.
   */
  clipGradNorm?: number;
}

const METRIC_KEYS = ['activityNorms', 'paramNorms', 'gradNorms', 'calculateAccuracy', 'timeInference'] as const;
const STEP_KEYS = [
  ...ENERGY_KEYS,
  'seed',
  'sigma',
  ...SOLVER_OPTION_KEYS,
  ...METRIC_KEYS,
  'checkFinite',
  'clipGradNorm',
  'divergenceThreshold',
] as const;

/**
 * The runaway check's defaults (`divergenceThreshold: true`, and `wpc train`): a step diverges when its energy
 * or loss exceeds 100 × the largest of the first 10 steps' (and at least 1).
 */
export const DEFAULT_DIVERGENCE_THRESHOLD: Readonly<RunawayThreshold> = Object.freeze({
  factor: 100,
  warmup: 10,
  floor: 1,
});

/** Validates makePcStep's `divergenceThreshold` option; null when off. */
function resolveDivergenceThreshold(fn: string, arg: string, value: unknown): RunawayThreshold | null {
  if (value === undefined || value === false) return null;
  if (value === true) return { ...DEFAULT_DIVERGENCE_THRESHOLD };
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    argError(fn, arg, 'a boolean or an object like { factor: 100, warmup: 10, floor: 1 }', value);
  checkKnownKeys(fn, arg, value, ['factor', 'warmup', 'floor']);
  const o = value as Partial<RunawayThreshold>;
  const d = DEFAULT_DIVERGENCE_THRESHOLD;
  // The GPU compares in f32: every number must be one (factor ≥ 1, or a healthy step could trip its own reference).
  const factor = checkFinite(fn, `${arg}.factor`, o.factor ?? d.factor, { min: 1, max: F32_MAX });
  const floor = checkFinite(fn, `${arg}.floor`, o.floor ?? d.floor, { min: 0, max: F32_MAX });
  const warmup = o.warmup ?? d.warmup;
  if (!Number.isInteger(warmup) || warmup < 1 || warmup > 0xfffffffe)
    argError(fn, `${arg}.warmup`, 'an integer in [1, 4294967294]', warmup);
  return { factor, warmup, floor };
}

/** `Loss` is `Tensor` when the options have an input (supervised), else `Tensor | null`. */
export interface PcStepResult<Loss extends Tensor | null = Tensor | null> {
  /** The model, updated in place. */
  model: Model;
  optState: OptState;
  /**
   * JPC's `mse_loss` / `cross_entropy_loss` of the feedforward prediction before inference (one element); null
   * in unsupervised PC (no input, no prediction).
   */
  loss: Loss;
  /** Layer energies at equilibrium (already /B, no regularisers), JPC's order [E_L, E_2, …, E_{L−1}, E_1]. */
  energies: Tensor;
  /** Inference steps attempted. */
  steps: { accepted: number; rejected: number };
  /** Time the inference reached (maxT1 unless the steady-state event stopped it). */
  t: number;
  /** The steady-state event ended the inference. */
  steadyState: boolean;
  /** With `recordIters` / `recordEvery`: energies (and activities) along the inference. */
  recording: Recording | null;
  /** One per activity ([L], or [L + 1] in unsupervised PC), with `activityNorms`. */
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
 * (`await r.loss.item()`) and dispose them. Without `options.input` the step is unsupervised (JPC's generative
 * PC without a prior): z_0..z_L start from seeded normal draws and z_0 is inferred with the rest.
 */
export async function makePcStep<I extends BatchData | undefined = undefined>(
  model: Model,
  optim: Optimizer,
  optState: OptState,
  output: BatchData,
  // Generic in the input only, not in the whole options object: an object literal is then checked against
  // PcStepOptions, so an unknown key (a typo) is a compile error, while `loss` is still typed by `input`.
  options: PcStepOptions & { input?: I },
): Promise<PcStepResult<I extends BatchData ? Tensor : Tensor | null>> {
  const fn = 'makePcStep';
  const { opts, loss, B, cap, mode, terms, resolved } = beginCall(
    fn,
    model,
    undefined,
    output,
    options,
    STEP_KEYS,
    (o, m, rows) => {
      const solver = resolveSolverOptions(fn, o);
      checkSolveFits(fn, model, rows, m, solver);
      for (const key of METRIC_KEYS) {
        if (o[key] !== undefined && typeof o[key] !== 'boolean') argError(fn, `options.${key}`, 'a boolean', o[key]);
      }
      let sigma = 0.05;
      if (m === 'unsupervised') {
        if (o.seed === undefined) {
          throw new WpcArgumentError(
            `${fn}: options.seed is required without options.input (unsupervised PC draws its initial activities from it)`,
          );
        }
        if (!Number.isSafeInteger(o.seed)) argError(fn, 'options.seed', 'a safe integer', o.seed);
        sigma = checkFinite(fn, 'options.sigma', o.sigma ?? 0.05, { min: 0 });
        if (o.calculateAccuracy)
          throw new WpcArgumentError(
            `${fn}: options.calculateAccuracy needs options.input (there is no prediction to score without one)`,
          );
      } else {
        for (const key of ['seed', 'sigma'] as const) {
          if (o[key] !== undefined)
            throw new WpcArgumentError(
              `${fn}: options.${key} only applies without options.input (unsupervised PC); a supervised step starts from a feedforward pass`,
            );
        }
      }
      if (o.checkFinite !== undefined && typeof o.checkFinite !== 'boolean')
        argError(fn, 'options.checkFinite', 'a boolean', o.checkFinite);
      const runaway = resolveDivergenceThreshold(fn, 'options.divergenceThreshold', o.divergenceThreshold);
      if (runaway && o.checkFinite === false)
        throw new WpcArgumentError(
          `${fn}: options.divergenceThreshold needs options.checkFinite (the runaway check is part of the guard)`,
        );
      if (o.clipGradNorm !== undefined) {
        checkFinite(fn, 'options.clipGradNorm', o.clipGradNorm, { min: Number.MIN_VALUE });
        if (o.checkFinite === false)
          throw new WpcArgumentError(
            `${fn}: options.clipGradNorm needs options.checkFinite (the guard computes the gradient norm)`,
          );
      }
      checkOptState(fn, optState, optim, 'params', model.paramCount, model.runtime);
      optState.throwIfDiverged(fn);
      return { solver, sigma, runaway };
    },
  );
  const { solver, sigma, runaway } = resolved;
  const guard = options.checkFinite !== false;
  return onWorkspace(
    model,
    B,
    cap,
    async (ws, rec) => {
      const kernel = await optState.kernel(false, guard);
      const health = guard ? await optState.healthKernels() : null;
      writeSolverConfig(ws, solver);
      loadBatch(ws, rec, cap.input, cap.output);
      let lossTensor: Tensor | null = null;
      if (mode === 'supervised') {
        ws.recordForward(rec);
        ws.recordLoss(rec, loss);
        lossTensor = copyOutScalars(ws, rec, ws.scalar.loss, [1]);
      } else {
        writeNormalActivities(ws, opts.seed!, sigma);
        ws.recordElementwise(rec, 'activate');
      }
      if (opts.paramNorms) ws.recordParamNorms(rec, 'params');
      const paramNorms = opts.paramNorms ? copyOutScalars(ws, rec, ws.scalar.paramNorms, [model.depth, 2]) : null;
      let inferenceMs: number | null = null;
      let solveStart = 0;
      if (opts.timeInference) {
        rec.submit();
        await ws.runtime.finish();
        solveStart = performance.now();
      }
      const stats = await integrate(ws, rec, solver, loss);
      if (opts.timeInference) {
        rec.submit();
        // Sleep through most of the solve first: awaiting at once makes Dawn busy-poll a CPU core.
        const { waitedMs } = await ws.runtime.finish({
          expectedMs: ws.solveClock.sleepFor(1, performance.now() - solveStart),
        });
        ws.solveClock.update(1, performance.now() - solveStart, waitedMs);
        inferenceMs = performance.now() - solveStart;
      }
      const recording = copyOutRecording(ws, rec, stats);
      ws.recordErrors(rec, 'y', loss, false);
      ws.recordEnergies(rec, loss);
      const energies = copyOutScalars(ws, rec, ws.scalar.energies, [model.depth]);
      if (opts.activityNorms || guard) ws.recordActivityNorms(rec);
      const activityNorms = opts.activityNorms
        ? copyOutScalars(ws, rec, ws.scalar.activityNorms, [model.depth + 1 - ws.first])
        : null;
      ws.recordParamGrads(rec);
      ws.recordRegularizerGrads(rec);
      if (opts.gradNorms || guard) ws.recordParamNorms(rec, 'grads');
      const gradNorms = opts.gradNorms ? copyOutScalars(ws, rec, ws.scalar.gradNorms, [model.depth, 2]) : null;
      if (health) {
        optState.recordHealthCheck(
          rec,
          health.before,
          ws.scalars,
          {
            energyOff: ws.scalar.energies,
            nEnergy: model.depth,
            actOff: ws.scalar.activityNorms,
            nAct: model.depth + 1 - ws.first,
            actFirstLayer: ws.first,
            gradOff: ws.scalar.gradNorms,
            nGrad: 2 * model.depth,
            totalOff: ws.scalar.total,
            lossOff: mode === 'supervised' ? ws.scalar.loss : -1,
          },
          opts.clipGradNorm ?? 0,
          runaway,
          model.params,
        );
      }
      if (health && runaway) optState.recordSave(rec, model.params);
      optState.recordStep(
        rec,
        kernel,
        { buffer: model.params, offset: 0 },
        { buffer: model.grads(), offset: 0 },
        model.paramCount,
      );
      let acc: Tensor | null = null;
      if (health && runaway) {
        // The updated parameters' feedforward pass on this batch (from the inferred z_0 without an input): a
        // ruinous update shows in its loss (energy) at once. (The energy at the old equilibrium activities is no
        // test: Adam's sign-like first step raises it many-fold in healthy runs, as the activities lag.)
        ws.recordForward(rec);
        if (mode === 'supervised') {
          ws.recordLoss(rec, loss);
          if (opts.calculateAccuracy) acc = copyOutScalars(ws, rec, ws.scalar.accuracy, [1]);
        } else {
          ws.recordErrors(rec, 'y', loss, false);
          ws.recordEnergies(rec, loss);
        }
        optState.recordRollbackCheck(rec, health, ws.scalars, model.params);
      } else if (opts.calculateAccuracy) {
        ws.recordForward(rec);
        ws.recordLoss(rec, loss);
        acc = copyOutScalars(ws, rec, ws.scalar.accuracy, [1]);
      }
      rec.submit();
      return {
        model,
        optState,
        loss: lossTensor as I extends BatchData ? Tensor : Tensor | null,
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
    workspaceNeeds(solver),
    mode,
    terms,
  );
}
