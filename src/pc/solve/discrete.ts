/**
 * The discrete loop: `steps` optimiser updates of the activities (optax semantics), each one prediction-error
 * dispatch and one activity-gradient dispatch fused with the update, all encoded up front.
 */
import { RecordWhen } from '../../kernels/record.js';
import type { Recorder } from '../../runtime/recorder.js';
import type { Loss, Workspace } from '../workspace.js';
import { encodeConfig } from './config.js';
import { type SolveStats, finishStats, recordFinal, recordState } from './encode.js';
import { type DiscretePlan, submitAfterStep } from './plan.js';
import { stageRecords } from './records.js';

/** Encodes `plan` on `ws` (the initial state written); `before` is the dispatch count at the solve's start. */
export function runDiscrete(ws: Workspace, rec: Recorder, plan: DiscretePlan, loss: Loss, before: number): SolveStats {
  ws.writeStageRecords(plan.recordsKey, () => stageRecords(plan));
  encodeConfig(ws, plan.config);
  // Fresh optimiser state for every solve (JPC initialises it per batch).
  rec.clear(ws.buffer, ws.stageOffset(1) * 4, 2 * ws.nAll * 4);
  const recording = plan.recording !== null;
  for (let n = 0; n < plan.steps; n++) {
    ws.recordErrors(rec, 'y', loss, false);
    if (recording) recordState(ws, rec, plan, loss, RecordWhen.ALWAYS);
    ws.recordActivityGrad(rec, 'y', false, 1 + n);
    if (submitAfterStep(n)) rec.submit();
  }
  if (recording) recordFinal(ws, rec, plan, loss, RecordWhen.ALWAYS);
  rec.submit();
  return finishStats(
    ws,
    plan,
    before,
    { t: plan.steps, accepted: plan.steps, rejected: 0, steadyState: false, stepsEncoded: plan.steps },
    recording ? plan.steps + 1 : 0,
  );
}
