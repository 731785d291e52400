/**
 * Inference and training-step costs for JPC's library-paper networks (width 300, tanh, no bias, batch 64):
 * dispatches, submits and readbacks per inference step, µs per inference step, the host's time to encode a
 * constant-step solve and ms per training step, for
 * Euler (constant dt 0.5) and Heun + PID (dt0 0.05, rtol = atol = 1e-3), T = 20. Each timing is the median of
 * repeated runs after a warm-up. Prints one JSON object on stdout.
 */
import { adam, initActivitiesWithFfwd, makePcStep, solveInference, type SolverOptions } from '../src/node.js';
import { SleepEstimator } from '../src/runtime/polling.js';
import { adapterLabel, benchInit, median, paperNetwork } from './common.js';

const HIDDEN = (process.env.WPC_BENCH_HIDDEN ?? '3,5,10').split(',').map(Number);
const REPEATS = Number(process.env.WPC_BENCH_REPEATS ?? 7);
const B = 64;

/**
 * Waits for the GPU after sleeping for most of the expected time: awaiting at once would let Dawn busy-poll
 * the JS thread and take a core from a software adapter, slowing the very work being timed.
 */
async function settle(estimator: SleepEstimator, since: number): Promise<void> {
  const { waitedMs } = await rt.finish({ expectedMs: estimator.sleepFor(1, performance.now() - since) });
  estimator.update(1, performance.now() - since, waitedMs);
}

const rt = await benchInit();
const rows: Record<string, unknown>[] = [];
for (const H of HIDDEN) {
  for (const solver of ['euler', 'heun'] as const) {
    const opts: SolverOptions =
      solver === 'euler'
        ? { solver: 'euler', stepsizeController: 'constant', maxT1: 20, dt: 0.5 }
        : { solver: 'heun', stepsizeController: { pid: { rtol: 1e-3, atol: 1e-3 } }, maxT1: 20, dt: 0.05 };
    const { model, input, output } = paperNetwork(rt, H, B);
    const acts = await initActivitiesWithFfwd(model, input);

    // Inference alone: one solve from the feedforward activities, as the paper times it.
    const solveMs: number[] = [];
    const encodeMs: number[] = [];
    let stats = { dispatches: 0, submits: 0, readbacks: 0, steps: 0, attempted: 0, encoded: 0 };
    const solveClock = new SleepEstimator();
    for (let i = 0; i < REPEATS + 2; i++) {
      await rt.finish();
      const before = { ...rt.stats };
      const t0 = performance.now();
      const r = await solveInference(model, acts, output, { input, ...opts });
      const resolvedMs = performance.now() - t0;
      await settle(solveClock, t0);
      const ms = performance.now() - t0;
      const attempted = r.steps.accepted + r.steps.rejected;
      stats = {
        dispatches: r.dispatches,
        submits: rt.stats.submits - before.submits,
        readbacks: rt.stats.readbacks - before.readbacks,
        steps: r.steps.accepted,
        attempted,
        encoded: r.encodedSteps,
      };
      for (const t of r.activities) t.dispose();
      if (i >= 2) {
        solveMs.push(ms);
        encodeMs.push(resolvedMs);
      }
    }

    // A whole training step (ffwd, loss, inference, gradients, Adam).
    const optim = adam({ lr: 1e-3 });
    const optState = optim.init(model);
    const stepMs: number[] = [];
    const stepClock = new SleepEstimator();
    for (let i = 0; i < REPEATS + 2; i++) {
      await rt.finish();
      const t0 = performance.now();
      const r = await makePcStep(model, optim, optState, output, { input, ...opts });
      await settle(stepClock, t0);
      if (i >= 2) stepMs.push(performance.now() - t0);
      r.loss.dispose();
      r.energies.dispose();
    }
    const solve = median(solveMs);
    rows.push({
      hidden: H,
      solver: solver === 'euler' ? 'Euler, dt 0.5' : 'Heun + PID, dt0 0.05',
      inferenceSteps: stats.attempted,
      // Adaptive solves submit steps in chunks of at least pollEvery (8) and poll between them; steps queued
      // after the end are no-ops (each still dispatches, and returns at once).
      encodedSteps: stats.encoded,
      dispatchesPerStep: +(stats.dispatches / stats.encoded).toFixed(2),
      submitsPerSolve: stats.submits,
      readbacksPerSolve: stats.readbacks,
      solveMs: +solve.toFixed(2),
      usPerStep: +((1000 * solve) / stats.attempted).toFixed(0),
      // A constant-step solve resolves once its last steps are submitted, without waiting for the GPU: the host's
      // time to encode it, which bounds µs per step from below on a GPU faster than that.
      encodeMs: solver === 'euler' ? +median(encodeMs).toFixed(2) : '',
      trainStepMs: +median(stepMs).toFixed(2),
    });
    for (const t of [...acts, input, output]) t.dispose();
    model.dispose();
    optState.dispose();
  }
}
process.stdout.write(
  `${JSON.stringify({ adapter: adapterLabel(rt), batch: B, width: 300, repeats: REPEATS, rows })}\n`,
);
rt.dispose();
