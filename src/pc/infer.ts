/**
 * Inference (JPC's `solve_inference`): the activities follow the negative energy gradient
 *
 *   dz/dt = −∂F/∂z,   z(0) = the given activities,
 *
 * integrated to t1 = `maxT1` by any of diffrax's explicit Runge–Kutta methods, with a constant step or diffrax's
 * PID step-size controller (JPC's default: Heun + PID, rtol = atol = 1e-3), optionally stopping at a steady
 * state; or discrete inference, `steps` optimiser updates. Everything runs on the GPU; see solve/ for how
 * the host is kept out of the loop.
 */
import type { Recorder } from '../runtime/recorder.js';
import type { Tensor } from '../runtime/tensor.js';
import {
  type BatchData,
  type EnergyTermOptions,
  beginCall,
  copyOutLayers,
  loadActivities,
  loadBatch,
  onWorkspace,
} from './batch.js';
import { ENERGY_KEYS } from './energy.js';
import type { Model } from './model.js';
import {
  SOLVER_OPTION_KEYS,
  checkSolveFits,
  integrate,
  resolveSolverOptions,
  workspaceNeeds,
  writeSolverConfig,
  type SolveStats,
  type SolverOptions,
} from './solve/index.js';
import type { Loss, Workspace } from './workspace.js';

export interface SolveInferenceOptions extends SolverOptions, EnergyTermOptions {
  /** The clamped input x, shape [B, inputDim]; omit it for unsupervised PC (the activities start with a free z_0). */
  input?: BatchData;
  /** Output energy: `'mse'` (default) or `'ce'`. */
  loss?: Loss;
}

/** What a solve recorded (`recordIters` / `recordEvery`), read from the GPU only when the caller asks. */
export interface Recording {
  /**
   * Layer energies (each /B) of every recorded state, shape [R, L]; each row in JPC's `record_layers` order
   * [E_L, E_2, …, E_{L−1}, E_1]. Row 0 is the initial state, row R−1 the final one.
   */
  energies: Tensor;
  /** With `recordActivities`: the activities of every recorded state, one tensor [R, B, d_l] per activity. */
  activities: Tensor[] | null;
  /** Index of the last recorded state (R − 1), JPC's `t_max`. */
  tMax: number;
  /** More states than `maxRecords` were reached; the later ones are missing. */
  overflow: boolean;
}

export interface SolveInferenceResult {
  /** The activities at the end (new tensors; shapes as given). Unlike JPC there is no leading time axis. */
  activities: Tensor[];
  /** Time reached: maxT1, or earlier when the steady-state event stopped the solve (discrete: the step count). */
  t: number;
  /** Attempted steps: accepted and rejected (rejections only with the PID controller). */
  steps: { accepted: number; rejected: number };
  /** The steady-state event ended the solve. */
  steadyState: boolean;
  /** With `recordIters` / `recordEvery`. */
  recording: Recording | null;
  /** GPU dispatches encoded for the steps (for benchmarks; no-op steps after a controlled solve ended included). */
  dispatches: number;
  /** Steps encoded: the attempted ones, plus (controlled solves) no-op steps queued past the end. */
  encodedSteps: number;
}

/** Copies what a solve recorded into new tensors. */
export function copyOutRecording(ws: Workspace, rec: Recorder, stats: SolveStats): Recording | null {
  const buffers = ws.recordings;
  if (stats.recorded === 0 || !buffers) return null;
  const L = ws.model.depth;
  const R = stats.recorded;
  const energies = ws.runtime.empty([R, L]);
  rec.copy(buffers.records, 16, energies.buffer, 0, R * L * 4);
  let activities: Tensor[] | null = null;
  if (buffers.trajN > 0) {
    activities = [];
    for (let l = ws.first; l <= L; l++) {
      const width = ws.batch * ws.model.dims[l]!;
      const t = ws.runtime.empty([R, ws.batch, ws.model.dims[l]!]);
      for (let r = 0; r < R; r++)
        rec.copy(buffers.traj, (r * ws.nAll + ws.layer[l]!) * 4, t.buffer, r * width * 4, width * 4);
      activities.push(t);
    }
  }
  return { energies, activities, tMax: R - 1, overflow: stats.recordOverflow };
}

/**
 * Integrates the inference dynamics from `activities` (e.g. `initActivitiesWithFfwd`) with the input clamped to
 * `options.input` (or, without one, a free z_0 as the first activity) and the output layer's target `output`.
 */
export async function solveInference(
  model: Model,
  activities: readonly Tensor[],
  output: BatchData,
  options: SolveInferenceOptions,
): Promise<SolveInferenceResult> {
  const fn = 'solveInference';
  const {
    loss,
    B,
    cap,
    mode,
    terms,
    resolved: solver,
  } = beginCall(fn, model, activities, output, options, [...ENERGY_KEYS, ...SOLVER_OPTION_KEYS], (opts, m, rows) => {
    const solver = resolveSolverOptions(fn, opts);
    checkSolveFits(fn, model, rows, m, solver);
    return solver;
  });
  return onWorkspace(
    model,
    B,
    cap,
    async (ws, rec) => {
      writeSolverConfig(ws, solver);
      loadBatch(ws, rec, cap.input, cap.output);
      loadActivities(ws, rec, cap.activities);
      const stats = await integrate(ws, rec, solver, loss);
      const out = copyOutLayers(ws, rec, (l) => ws.activityOffset(l));
      const recording = copyOutRecording(ws, rec, stats);
      rec.submit();
      return {
        activities: out,
        t: stats.t,
        steps: { accepted: stats.accepted, rejected: stats.rejected },
        steadyState: stats.steadyState,
        recording,
        dispatches: stats.dispatches,
        encodedSteps: stats.stepsEncoded,
      };
    },
    workspaceNeeds(solver),
    mode,
    terms,
  );
}
