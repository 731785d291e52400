/**
 * Every inference method on JPC's H = 3 paper network (width 300, tanh, no bias, batch 64, T = 20): dispatches,
 * submits and readbacks per step and per solve, and time per step. Constant steps use dt = 0.5 (Euler's best in
 * the paper); adaptive solves start at dt0 = 0.05 with rtol = atol = 1e-3; discrete inference takes 20 SGD steps.
 * Prints one JSON object on stdout.
 */
import { initActivitiesWithFfwd, makeMlp, sgd, solveInference, type SolverOptions } from '../src/node.js';
import { SleepEstimator } from '../src/runtime/polling.js';
import { SOLVER_NAMES, TABLEAUX } from '../src/pc/tableaux.js';
import { adapterLabel, benchInit, median } from './common.js';

const REPEATS = Number(process.env.WPC_BENCH_REPEATS ?? 5);
const B = 64;

const rt = await benchInit();
const model = makeMlp(rt, { seed: 0, inputDim: 784, width: 300, depth: 4, outputDim: 10, actFn: 'tanh' });
const input = rt.tensor(
  new Float32Array(B * 784).map((_, i) => Math.sin(i * 0.37)),
  [B, 784],
);
const y = new Float32Array(B * 10);
for (let b = 0; b < B; b++) y[b * 10 + (b % 10)] = 1;
const output = rt.tensor(y, [B, 10]);
const acts = await initActivitiesWithFfwd(model, input);

const cases: { method: string; options: SolverOptions }[] = [
  ...SOLVER_NAMES.map((s) => ({
    method: `${s}, constant dt 0.5`,
    options: { solver: s, stepsizeController: 'constant' as const, dt: 0.5, maxT1: 20 },
  })),
  ...SOLVER_NAMES.filter((s) => TABLEAUX[s].e).map((s) => ({
    method: `${s} + PID`,
    options: { solver: s, dt: 0.05, maxT1: 20 },
  })),
  {
    method: 'heun + PID + steady state (3e-5)',
    options: { solver: 'heun', dt: 0.05, maxT1: 500, steadyState: { rtol: 3e-5, atol: 3e-5 } },
  },
  { method: 'sgd (discrete), 20 steps', options: { solver: sgd({ lr: 0.5 }), steps: 20 } },
];

const rows: Record<string, unknown>[] = [];
for (const c of cases) {
  const clock = new SleepEstimator();
  const ms: number[] = [];
  let last = { dispatches: 0, encoded: 0, attempted: 0, submits: 0, readbacks: 0 };
  for (let i = 0; i < REPEATS + 1; i++) {
    await rt.finish();
    const before = { ...rt.stats };
    const t0 = performance.now();
    const r = await solveInference(model, acts, output, { input, ...c.options });
    const { waitedMs } = await rt.finish({ expectedMs: clock.sleepFor(1, performance.now() - t0) });
    clock.update(1, performance.now() - t0, waitedMs);
    if (i > 0) ms.push(performance.now() - t0);
    last = {
      dispatches: r.dispatches,
      encoded: r.encodedSteps,
      attempted: r.steps.accepted + r.steps.rejected,
      submits: rt.stats.submits - before.submits,
      readbacks: rt.stats.readbacks - before.readbacks,
    };
    for (const t of r.activities) t.dispose();
  }
  const solve = median(ms);
  rows.push({
    method: c.method,
    steps: last.attempted,
    encodedSteps: last.encoded,
    dispatchesPerStep: +(last.dispatches / last.encoded).toFixed(2),
    submitsPerSolve: last.submits,
    readbacksPerSolve: last.readbacks,
    solveMs: +solve.toFixed(1),
    usPerStep: +((1000 * solve) / Math.max(1, last.attempted)).toFixed(0),
  });
}
process.stdout.write(`${JSON.stringify({ adapter: adapterLabel(rt), rows })}\n`);
rt.dispose();
