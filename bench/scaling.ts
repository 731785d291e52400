/**
 * Scaling curves of the paper's network (tanh, no bias, Euler at a constant dt 0.5): µs per inference step and
 * ms per training step (feedforward, inference, gradients, Adam) as the width (128 → 4096; H = 3, batch 64),
 * the depth (H = 3 → 100; width 300, batch 64) and the batch (16 → 1024; H = 3, width 300) grow, with the GPU
 * memory WPC holds during the step (runtime.memoryStats: parameters, gradients, Adam moments, workspace).
 * Inference runs STEPS Euler steps; medians over REPEATS runs after a warm-up. Prints one JSON object.
 */
import {
  WpcArgumentError,
  adam,
  initActivitiesWithFfwd,
  makeMlp,
  makePcStep,
  solveInference,
  type Runtime,
} from '../src/node.js';
import { SleepEstimator } from '../src/runtime/polling.js';
import { adapterLabel, benchInit, median } from './common.js';

const STEPS = Number(process.env.WPC_BENCH_STEPS ?? 10);
const REPEATS = Number(process.env.WPC_BENCH_REPEATS ?? 3);
const opts = { solver: 'euler' as const, stepsizeController: 'constant' as const, maxT1: STEPS * 0.5, dt: 0.5 };

async function measure(
  rt: Runtime,
  curve: string,
  H: number,
  width: number,
  B: number,
): Promise<Record<string, unknown>> {
  const model = makeMlp(rt, { seed: 0, inputDim: 784, width, depth: H + 1, outputDim: 10, actFn: 'tanh' });
  const optim = adam({ lr: 1e-3 });
  const state = optim.init(model);
  const x = rt.tensor(
    new Float32Array(B * 784).map((_, i) => Math.sin(i * 0.37)),
    [B, 784],
  );
  const yData = new Float32Array(B * 10);
  for (let b = 0; b < B; b++) yData[b * 10 + (b % 10)] = 1;
  const y = rt.tensor(yData, [B, 10]);
  const clock = new SleepEstimator();
  const time = async (f: () => Promise<{ dispose(): void }[]>) => {
    const ts: number[] = [];
    for (let i = 0; i < REPEATS + 1; i++) {
      await rt.finish();
      const t0 = performance.now();
      const out = await f();
      const { waitedMs } = await rt.finish({ expectedMs: clock.sleepFor(1, performance.now() - t0) });
      clock.update(1, performance.now() - t0, waitedMs);
      if (i > 0) ts.push(performance.now() - t0);
      for (const t of out) t.dispose();
    }
    return median(ts);
  };
  const acts = await initActivitiesWithFfwd(model, x);
  const solveMs = await time(async () => (await solveInference(model, acts, y, { input: x, ...opts })).activities);
  let memory = 0;
  const stepMs = await time(async () => {
    const r = await makePcStep(model, optim, state, y, { input: x, ...opts });
    memory = Math.max(memory, rt.memoryStats().persistentBytes + rt.memoryStats().inUseBytes);
    return [r.loss, r.energies];
  });
  for (const t of [...acts, x, y]) t.dispose();
  state.dispose();
  model.dispose();
  // Per inference step: the errors and the activity gradients of layers 2..L (the first layer's prediction is fixed).
  const flops = 4 * B * ((H - 1) * width * width + width * 10);
  return {
    curve,
    H,
    width,
    batch: B,
    usPerInferenceStep: Math.round((1000 * solveMs) / STEPS),
    inferenceGflops: +((flops * STEPS) / (solveMs * 1e6)).toFixed(2),
    trainStepMs: +stepMs.toFixed(1),
    gpuMemoryMiB: +(memory / 2 ** 20).toFixed(1),
  };
}

const rt = await benchInit();
const rows: Record<string, unknown>[] = [];
const add = async (curve: string, H: number, width: number, B: number) => {
  try {
    rows.push(await measure(rt, curve, H, width, B));
  } catch (e) {
    // e.g. parameters over the adapter's maxStorageBufferBindingSize (lavapipe: 128 MiB): say so in the table.
    if (!(e instanceof WpcArgumentError)) throw e;
    rows.push({
      curve,
      H,
      width,
      batch: B,
      usPerInferenceStep: 'n/a',
      inferenceGflops: 'n/a',
      trainStepMs: 'n/a',
      gpuMemoryMiB: `does not fit: ${e.message.replace(/^[^:]*: /, '').replace(/;.*/, '')}`,
    });
  }
  console.error(JSON.stringify(rows.at(-1)));
};
for (const width of (process.env.WPC_BENCH_WIDTHS ?? '128,256,512,1024,2048,4096').split(',').map(Number))
  await add('width', 3, width, 64);
for (const H of (process.env.WPC_BENCH_DEPTHS ?? '3,5,10,20,50,100').split(',').map(Number))
  await add('depth', H, 300, 64);
for (const B of (process.env.WPC_BENCH_BATCHES ?? '16,64,256,1024').split(',').map(Number))
  await add('batch', 3, 300, B);
process.stdout.write(`${JSON.stringify({ adapter: adapterLabel(rt), rows })}\n`);
rt.dispose();
