/**
 * Where a training step's GPU time goes: GPU milliseconds per kernel (timestamp queries, one pass per
 * dispatch) for one `makePcStep` of the paper's networks (H ∈ {3, 5, 10}, width 300, batch 64, 20 Euler
 * steps, Adam), median over repeated steps after warm-up. Needs the `timestamp-query` feature. Prints one
 * JSON object on stdout.
 */
import { adam, makeMlp, makePcStep } from '../src/node.js';
import { SleepEstimator } from '../src/runtime/polling.js';
import { adapterLabel, benchInit, median } from './common.js';

const B = 64;
const STEPS = 20;
const DT = 0.1;
const REPEATS = 7;
// Warm-up steps: pipeline compilation, and the sleep estimator settling on the step time.
const WARMUP = 5;
const rows: Record<string, unknown>[] = [];
let adapter = '';
for (const H of [3, 5, 10]) {
  const rt = await benchInit();
  adapter = adapterLabel(rt);
  try {
    const model = makeMlp(rt, { seed: 0, inputDim: 784, width: 300, depth: H + 1, outputDim: 10, actFn: 'tanh' });
    const optim = adam({ lr: 1e-3 });
    const state = optim.init(model);
    const x = new Float32Array(B * 784).map((_, i) => Math.sin(i) * 0.5 + 0.5);
    const y = new Float32Array(B * 10);
    for (let b = 0; b < B; b++) y[b * 10 + (b % 10)] = 1;
    const input = rt.tensor(x, [B, 784]);
    const output = rt.tensor(y, [B, 10]);
    const perKernel = new Map<string, { ms: number[]; dispatches: number }>();
    const totals: number[] = [];
    // Sleep through most of the step before reading the timestamps back: a pending readback keeps the JS
    // thread spinning, which on a 2-core machine takes a core from lavapipe and inflates every kernel's time.
    const clock = new SleepEstimator();
    for (let i = 0; i < REPEATS + WARMUP; i++) {
      const t0 = performance.now();
      rt.startProfile();
      const r = await makePcStep(model, optim, state, output, {
        input,
        solver: 'euler',
        stepsizeController: 'constant',
        maxT1: STEPS * DT,
        dt: DT,
      });
      const { waitedMs } = await rt.finish({ expectedMs: clock.sleepFor(1, performance.now() - t0) });
      clock.update(1, performance.now() - t0, waitedMs);
      const { kernels } = await rt.stopProfile();
      r.loss.dispose();
      r.energies.dispose();
      if (i < WARMUP) continue;
      totals.push(kernels.reduce((s, k) => s + k.ms, 0));
      for (const k of kernels) {
        const e = perKernel.get(k.kernel) ?? { ms: [], dispatches: k.dispatches };
        e.ms.push(k.ms);
        perKernel.set(k.kernel, e);
      }
    }
    const total = median(totals);
    for (const [kernel, e] of [...perKernel].sort((a, b) => median(b[1].ms) - median(a[1].ms))) {
      const ms = median(e.ms);
      rows.push({
        hidden: H,
        kernel,
        dispatches: e.dispatches,
        msPerStep: +ms.toFixed(2),
        usPerDispatch: Math.round((1000 * ms) / e.dispatches),
        share: `${((100 * ms) / total).toFixed(1)}%`,
      });
    }
    rows.push({
      hidden: H,
      kernel: 'all (sum of dispatch times)',
      dispatches: [...perKernel.values()].reduce((s, e) => s + e.dispatches, 0),
      msPerStep: +total.toFixed(2),
      usPerDispatch: '',
      share: '100%',
    });
  } finally {
    rt.dispose();
  }
}
console.log(JSON.stringify({ adapter, rows }));
