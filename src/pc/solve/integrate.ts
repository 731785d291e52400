/**
 * Inference as one call: `integrate` plans a resolved solver configuration (plan.ts) and encodes the plan on a
 * workspace with its loop, from the activities already in the workspace to the solution.
 */
import type { Recorder } from '../../runtime/recorder.js';
import type { Loss, Workspace } from '../workspace.js';
import type { SolverStateView } from './controlled.js';
import { runControlled } from './controlled.js';
import { runDiscrete } from './discrete.js';
import type { SolveStats } from './encode.js';
import { runFreeRunning } from './free-running.js';
import type { ResolvedSolver } from './options.js';
import { planSolve } from './plan.js';
import { packSolverState } from '../../kernels/structs.js';

/**
 * Integrates from the activities in the workspace's y (with φ(y), pred1, x and the target in place; work to
 * produce them may still be recorded in `rec`). Leaves the solution in y and φ(y). `observe` sees the solver
 * state at every poll (tests use it to follow accept/reject decisions).
 */
export async function integrate(
  ws: Workspace,
  rec: Recorder,
  solver: ResolvedSolver,
  loss: Loss,
  observe?: (state: SolverStateView) => void,
): Promise<SolveStats> {
  const plan = planSolve(solver);
  const before = rec.dispatches + ws.runtime.stats.dispatches;
  const recording = plan.recording;
  if (recording) ws.prepareRecording(rec, recording.capacity, recording.activities);
  // The solver state at the start (queue-ordered before the solve's commands): no PID memory yet (1/error = 1),
  // the initial state counting as accepted (recording), and the end of the first step (0 where the GPU picks it).
  const start = { tnext: plan.firstStepEnd, prevInv: 1, prevPrevInv: 1, lastAccepted: 1 };
  ws.runtime.device.queue.writeBuffer(ws.state, 0, packSolverState(start));
  switch (plan.loop) {
    case 'discrete':
      return runDiscrete(ws, rec, plan, loss, before);
    case 'free-running':
      return await runFreeRunning(ws, rec, plan, loss, before);
    case 'controlled':
      return runControlled(ws, rec, plan, loss, before, observe);
  }
}
