/**
 * What every solve loop does on a workspace besides its steps: the statistics it returns, where a stage is
 * evaluated, and the recording of states along the solve.
 */
import type { Recorder } from '../../runtime/recorder.js';
import type { EvalPoint, Loss, Workspace } from '../workspace.js';
import type { SolvePlan } from './plan.js';

export interface SolveStats {
  /** Time reached (maxT1 unless the steady-state event stopped the solve first; the step count for discrete). */
  t: number;
  accepted: number;
  rejected: number;
  /** The steady-state event ended the solve. */
  steadyState: boolean;
  /** Dispatches encoded for the steps (no-op steps after a controlled solve finished included). */
  dispatches: number;
  /** Steps encoded (controlled solves: including no-op steps after the end). */
  stepsEncoded: number;
  /** States recorded (0 without recording), and whether more were dropped for lack of room. */
  recorded: number;
  recordOverflow: boolean;
}

/** How far a solve went, as its loop saw it. */
type SolveProgress = Omit<SolveStats, 'dispatches' | 'recorded' | 'recordOverflow'>;

/**
 * The stats of a finished solve: `before` is the dispatch count when it started, `recorded` the states it
 * reached for the recording (more than the recording's room is an overflow).
 */
export function finishStats(
  ws: Workspace,
  plan: SolvePlan,
  before: number,
  progress: SolveProgress,
  recorded: number,
): SolveStats {
  const capacity = plan.recording?.capacity ?? 0;
  return {
    ...progress,
    dispatches: ws.runtime.stats.dispatches - before,
    recorded: Math.min(recorded, capacity),
    recordOverflow: recorded > capacity,
  };
}

/** Where stage i of a step is evaluated: the first at y, the others at the probe t. */
export const pointOf = (i: number): EvalPoint => (i === 1 ? 'y' : 't');

/** Records the current state into the recording (`when`: RecordWhen.*, which states the kernel keeps). */
export function recordState(ws: Workspace, rec: Recorder, plan: SolvePlan, loss: Loss, when: number): void {
  ws.recordState(rec, loss, when, plan.recording!.activities);
}

/** The final state's energies (and activities) into the recording, after the loop. */
export function recordFinal(ws: Workspace, rec: Recorder, plan: SolvePlan, loss: Loss, when: number): void {
  ws.recordErrors(rec, 'y', loss, false);
  recordState(ws, rec, plan, loss, when);
}
