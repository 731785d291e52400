/**
 * The free-running loop: a constant step without the steady-state event. The whole grid is known, so every
 * stage of every step is encoded up front with its own stage record (or the whole solve as one fused dispatch),
 * submitted in growing chunks, and nothing is read back.
 */
import { WpcSolverError } from '../../runtime/errors.js';
import { RecordWhen } from '../../kernels/record.js';
import type { Recorder } from '../../runtime/recorder.js';
import type { Loss, Workspace } from '../workspace.js';
import { encodeConfig } from './config.js';
import { type SolveStats, finishStats, pointOf, recordFinal, recordState } from './encode.js';
import { useFusedSolve } from './fused.js';
import { type FreeRunningPlan, submitAfterStep } from './plan.js';
import { stageRecords } from './records.js';

/** Encodes `plan` on `ws` (the initial state written); `before` is the dispatch count at the solve's start. */
export async function runFreeRunning(
  ws: Workspace,
  rec: Recorder,
  plan: FreeRunningPlan,
  loss: Loss,
  before: number,
): Promise<SolveStats> {
  const { sizes, stagesPerStep } = plan;
  if (sizes.length > plan.maxSteps) {
    throw new WpcSolverError(
      `solveInference: a constant step of ${plan.dt} needs ${sizes.length} steps to reach maxT1 = ${plan.maxT1}, more than maxSteps = ${plan.maxSteps} (diffrax fails here too); raise maxSteps or dt`,
    );
  }
  const progress = {
    t: Math.fround(plan.maxT1),
    accepted: sizes.length,
    rejected: 0,
    steadyState: false,
    stepsEncoded: sizes.length,
  };
  if (useFusedSolve(ws, plan)) {
    await ws.recordFusedSolve(rec, plan.fused.a, plan.fused.b, sizes, loss, plan.fused.key);
    rec.submit();
    return finishStats(ws, plan, before, progress, 0);
  }
  ws.writeStageRecords(plan.recordsKey, () => stageRecords(plan));
  encodeConfig(ws, plan.config);
  const every = plan.recording?.everySteps ?? 0;
  sizes.forEach((_, n) => {
    for (let i = 1; i <= stagesPerStep; i++) {
      ws.recordErrors(rec, pointOf(i), loss, false);
      if (i === 1 && every > 0 && n % every === 0) recordState(ws, rec, plan, loss, RecordWhen.ALWAYS);
      ws.recordActivityGrad(rec, pointOf(i), false, 1 + n * stagesPerStep + (i - 1));
    }
    if (submitAfterStep(n)) rec.submit();
  });
  if (every > 0) recordFinal(ws, rec, plan, loss, RecordWhen.ALWAYS);
  rec.submit();
  const recorded = every > 0 ? Math.floor((sizes.length - 1) / every) + 2 : 0;
  return finishStats(ws, plan, before, progress, recorded);
}
