/**
 * Fixed-step solves as one fused single-workgroup dispatch vs two dispatches per stage, over network sizes
 * (3 hidden layers of width W, 20 inputs, 10 outputs, batch B; T = 20, dt = 0.5), for Euler and Tsit5. The
 * crossovers set FUSED_MAX_WORK and FUSED_MAX_WORK_ONE_ROW in src/pc/solve/fused.ts (`fusedSolvePays`: what 'auto'
 * picks). Prints JSON.
 */
import { initActivitiesWithFfwd, makeMlp, solveInference } from '../src/node.js';
import { SleepEstimator } from '../src/runtime/polling.js';
import { FUSED_MAX_WORK, FUSED_MAX_WORK_ONE_ROW, fusedSolvePays } from '../src/pc/solve/fused.js';
import { adapterLabel, benchInit, median } from './common.js';

const REPEATS = Number(process.env.WPC_BENCH_REPEATS ?? 5);
const fused = await benchInit({ kernels: { fused: 'always' } });
const perStage = await benchInit({ kernels: { fused: 'never' } });
// Warm both devices up (first submissions, lavapipe's compilation of the first pipelines) before timing.
for (const rt of [fused, perStage]) {
  const model = makeMlp(rt, { seed: 0, inputDim: 20, width: 8, depth: 4, outputDim: 10, actFn: 'tanh' });
  const x = rt.tensor(new Float32Array(20), [1, 20]);
  const y = rt.tensor(new Float32Array(10), [1, 10]);
  for (const solver of ['euler', 'tsit5'] as const) {
    for (let i = 0; i < 3; i++) {
      const r = await solveInference(model, await initActivitiesWithFfwd(model, x), y, {
        input: x,
        solver,
        stepsizeController: 'constant',
        dt: 0.5,
        maxT1: 20,
      });
      await rt.finish();
      for (const t of r.activities) t.dispose();
    }
  }
  model.dispose();
}
const rows: Record<string, unknown>[] = [];
for (const solver of ['euler', 'tsit5'] as const) {
  for (const [B, W] of [
    [1, 8],
    [1, 32],
    [1, 64],
    [1, 96],
    [1, 128],
    [1, 256],
    [2, 128],
    [4, 64],
    [8, 8],
    [8, 32],
    [8, 64],
    [16, 32],
    [32, 16],
    [64, 8],
    [64, 32],
  ] as const) {
    const time: Record<string, number> = {};
    for (const [name, rt] of [
      ['fused', fused],
      ['perStage', perStage],
    ] as const) {
      const model = makeMlp(rt, { seed: 1, inputDim: 20, width: W, depth: 4, outputDim: 10, actFn: 'tanh' });
      const x = rt.tensor(
        new Float32Array(B * 20).map((_, i) => Math.sin(i)),
        [B, 20],
      );
      const y = rt.tensor(
        new Float32Array(B * 10).map((_, i) => Math.cos(i)),
        [B, 10],
      );
      const acts = await initActivitiesWithFfwd(model, x);
      const clock = new SleepEstimator();
      const ms: number[] = [];
      for (let i = 0; i < REPEATS + 1; i++) {
        await rt.finish();
        const t0 = performance.now();
        const r = await solveInference(model, acts, y, {
          input: x,
          solver,
          stepsizeController: 'constant',
          dt: 0.5,
          maxT1: 20,
        });
        const { waitedMs } = await rt.finish({ expectedMs: clock.sleepFor(1, performance.now() - t0) });
        clock.update(1, performance.now() - t0, waitedMs);
        if (i > 0) ms.push(performance.now() - t0);
        for (const t of r.activities) t.dispose();
      }
      time[name] = median(ms);
      model.dispose();
    }
    const work = 2 * B * (2 * W * W + 10 * W);
    rows.push({
      solver,
      batch: B,
      width: W,
      stageWork: work,
      fusedMs: +time.fused!.toFixed(2),
      perStageMs: +time.perStage!.toFixed(2),
      speedup: +(time.perStage! / time.fused!).toFixed(2),
      autoPicks: fusedSolvePays(work, B, fused.adapter.isSoftware) ? 'fused' : 'per-stage',
    });
  }
}
process.stdout.write(
  `${JSON.stringify({ adapter: adapterLabel(fused), threshold: FUSED_MAX_WORK, thresholdOneRow: FUSED_MAX_WORK_ONE_ROW, rows })}\n`,
);
fused.dispose();
perStage.dispose();
