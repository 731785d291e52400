/**
 * The controlled loop: the PID controller, or a constant step with the steady-state event. Accept/reject, the
 * next step size and the event are decided on the GPU (solver.wgsl); the host submits steps in chunks and reads
 * the 64-byte solver state only between chunks (at most once every `pollEvery` steps). Steps submitted after
 * the solve has finished are no-ops.
 */
import { RecordWhen } from '../../kernels/record.js';
import { WpcSolverError } from '../../runtime/errors.js';
import type { Recorder } from '../../runtime/recorder.js';
import { STATE, STATE_WORDS } from '../../kernels/structs.js';
import type { Loss, Workspace } from '../workspace.js';
import { encodeConfig } from './config.js';
import { type SolveStats, finishStats, pointOf, recordFinal, recordState } from './encode.js';
import { type ControlledPlan, submitAfterStep } from './plan.js';
import { stageRecords } from './records.js';

/** The solver state as the host sees it at a poll. */
export interface SolverStateView {
  tprev: number;
  tnext: number;
  steps: number;
  accepted: number;
  rejected: number;
  lastAccepted: boolean;
  /** Of the last attempted step; -1 when it was not finite. */
  scaledError: number;
  done: boolean;
  steadyState: boolean;
}

function view(words: Float32Array): SolverStateView {
  const u = new Uint32Array(words.buffer, words.byteOffset, STATE_WORDS);
  return {
    tprev: words[STATE.tprev]!,
    tnext: words[STATE.tnext]!,
    steps: u[STATE.steps]!,
    accepted: u[STATE.accepted]!,
    rejected: u[STATE.rejected]!,
    lastAccepted: u[STATE.lastAccepted] !== 0,
    scaledError: words[STATE.scaledError]!,
    done: u[STATE.done] !== 0,
    steadyState: u[STATE.event] !== 0,
  };
}

/**
 * Encodes `plan` on `ws` (the initial state written) and polls it to the end; `before` is the dispatch count at
 * the solve's start. `observe` sees the solver state at every poll.
 */
export async function runControlled(
  ws: Workspace,
  rec: Recorder,
  plan: ControlledPlan,
  loss: Loss,
  before: number,
  observe: ((state: SolverStateView) => void) | undefined,
): Promise<SolveStats> {
  const rt = ws.runtime;
  const { tableau } = plan;
  const { stages } = tableau;
  const recording = plan.recording !== null;
  if (plan.grid) {
    if (plan.grid.length > plan.maxSteps) {
      throw new WpcSolverError(
        `solveInference: a constant step of ${plan.dt} needs ${plan.grid.length} steps to reach maxT1 = ${plan.maxT1}, more than maxSteps = ${plan.maxSteps} (diffrax fails here too); raise maxSteps or dt`,
      );
    }
    ws.writeGrid(plan.grid);
  }
  // Records 1..stages: the stages; then Hairer's two probes.
  ws.writeStageRecords(plan.recordsKey, () => stageRecords(plan));
  if (plan.hairer) {
    // Hairer's initial step: d0 from y, d1 from f0 = f(y), then d2 from f(y + h0·f0).
    encodeConfig(ws, plan.config, { err: ws.partD0, ev: ws.partA });
    ws.recordErrors(rec, 'y', loss, false);
    ws.recordActivityGrad(rec, 'y', false, stages + 1);
    ws.recordElementwise(rec, 'scaled_square');
    ws.recordSolver(rec, 'hairer_h0');
    ws.recordElementwise(rec, 'hairer_probe');
    ws.recordErrors(rec, 't', loss, false);
    ws.recordActivityGrad(rec, 't', false, stages + 2);
    rec.submit();
    // Queue-ordered after the submit above: hairer_dt0 and the steps see the controller's config.
    encodeConfig(ws, plan.config);
    ws.recordSolver(rec, 'hairer_dt0');
  } else {
    encodeConfig(ws, plan.config);
  }
  if (tableau.fsal) {
    // The first step's first stage; later steps take it from the previous step's last.
    ws.recordErrors(rec, 'y', loss, true);
    if (recording) recordState(ws, rec, plan, loss, RecordWhen.NEXT_START);
    ws.recordActivityGrad(rec, 'y', true, 1);
  }

  const history = ws.pidHistory;
  let encoded = 0; // steps submitted so far
  let confirmed = 0; // steps the last poll saw completed
  const encodeSteps = (count: number) => {
    for (let n = 0; n < count; n++) {
      for (let i = tableau.fsal ? 2 : 1; i <= stages; i++) {
        ws.recordErrors(rec, pointOf(i), loss, true);
        if (i === 1 && recording) recordState(ws, rec, plan, loss, RecordWhen.NEXT_START);
        ws.recordActivityGrad(rec, pointOf(i), true, i);
      }
      ws.recordSolver(rec, 'step_control');
      ws.recordElementwise(rec, 'accept');
      if (tableau.fsal && recording) recordState(ws, rec, plan, loss, RecordWhen.ACCEPTED);
      // The first chunk's first steps go to the GPU while the host encodes the rest (later chunks are queued while
      // the GPU is busy with the one before).
      if (encoded === 0 && n + 1 < count && submitAfterStep(n)) rec.submit();
    }
    rec.submit();
    encoded += count;
    return rt.readLater([{ buffer: ws.state, byteOffset: 0, byteLength: STATE_WORDS * 4 }]);
  };
  const chunk = () => Math.min(plan.pollEvery, plan.maxSteps - encoded);
  let started = performance.now();
  // The first chunk is as long as the last solve on this workspace (usually enough: one poll per solve). Once
  // a poll shows the solve still running, the next chunk is always queued before waiting, so the GPU never
  // idles; steps queued past the end are no-ops.
  let pending = encodeSteps(Math.min(plan.maxSteps, Math.max(plan.pollEvery, history.lastSteps)));
  let speculate = history.lastSteps === 0;
  let words: Float32Array;
  for (;;) {
    // Real (not no-op) steps the awaited read is expected to wait for: those queued before it, capped by how many
    // the last solve needed while this one has not passed that, less those the last poll already saw. They size
    // the sleep; the estimator then learns from the steps the poll shows were really taken (a guess there would
    // inflate it whenever a solve runs longer than the last, and every later sleep with it).
    const expectedDone = history.lastSteps > confirmed ? Math.min(encoded, history.lastSteps) : encoded;
    const units = Math.max(1, expectedDone - confirmed);
    const next = speculate && encoded < plan.maxSteps ? encodeSteps(chunk()) : undefined;
    [words] = (await pending.wait({ expectedMs: history.sleep.sleepFor(units, performance.now() - started) })) as [
      Float32Array,
    ];
    const v = view(words);
    history.sleep.update(v.steps - confirmed, performance.now() - started, pending.mapMs);
    started = performance.now();
    observe?.(v);
    confirmed = v.steps;
    if (v.done || (!next && encoded >= plan.maxSteps)) {
      if (next) void next.wait().catch(() => undefined); // only to give its staging buffer back
      break;
    }
    speculate = true;
    pending = next ?? encodeSteps(chunk());
  }
  const u = new Uint32Array(words.buffer, words.byteOffset, STATE_WORDS);
  history.lastSteps = u[STATE.steps]!;
  const t = words[STATE.tprev]!;
  const failed = u[STATE.failed]!;
  if (failed !== 0 || u[STATE.done] === 0) {
    const where = `after ${u[STATE.accepted]} accepted and ${u[STATE.rejected]} rejected steps at t = ${t}`;
    if (failed === 2)
      throw new WpcSolverError(`solveInference: the step size fell below dtmin (forceDtmin is off) ${where}`);
    if (failed === 3)
      throw new WpcSolverError(
        'solveInference: the activities or their gradients are not finite at the start of inference',
      );
    if (words[STATE.scaledError] === -1) {
      throw new WpcSolverError(
        `solveInference: the activities became non-finite (NaN or infinity) during inference, so every step was rejected until maxSteps (${plan.maxSteps}) ${where}; check the data and weights for NaN, or lower the learning rate`,
      );
    }
    throw new WpcSolverError(
      `solveInference: maxSteps (${plan.maxSteps}) steps were taken without reaching maxT1 = ${plan.maxT1} (${where}); diffrax fails here too. Raise maxSteps, loosen rtol/atol, or lower maxT1`,
    );
  }
  const accepted = u[STATE.accepted]!;
  if (recording && !tableau.fsal) {
    recordFinal(ws, rec, plan, loss, RecordWhen.FINAL);
    rec.submit();
  }
  return finishStats(
    ws,
    plan,
    before,
    { t, accepted, rejected: u[STATE.rejected]!, steadyState: u[STATE.event] !== 0, stepsEncoded: encoded },
    recording ? accepted + 1 : 0,
  );
}
