/**
 * Convolutional PC networks against a dense one of similar work (batch 64, relu, biases): dispatches per inference
 * step, µs per inference step (Euler, constant dt 0.1, T = 2: 20 steps), ms per training step (the same inference,
 * then the parameter gradients and Adam), and the GFLOP/s of the layer kernels (2 flops per multiply-add the
 * kernels execute, over their GPU time from timestamp queries) for the prediction errors, the activity gradients
 * and the parameter gradients. Prints one JSON object on stdout.
 */
import {
  adam,
  avgPool,
  conv,
  dense,
  flatten,
  initActivitiesWithFfwd,
  type LayerDef,
  makeModel,
  makePcStep,
  maxPool,
  type Model,
  solveInference,
} from '../src/node.js';
import { adapterLabel, benchInit, median } from './common.js';

const REPEATS = Number(process.env.WPC_BENCH_REPEATS ?? 5);
const B = 64;
const SOLVE = { solver: 'euler', stepsizeController: 'constant', dt: 0.1, maxT1: 2 } as const;

const NETWORKS: { name: string; inputShape: number[]; layers: LayerDef[] }[] = [
  {
    name: 'MLP 784-300-300-10',
    inputShape: [784],
    layers: [dense(300), dense(300), dense(10)],
  },
  {
    name: 'CNN s: conv 8 5×5/2, conv 16 5×5/2, dense 10',
    inputShape: [1, 28, 28],
    layers: [conv(8, 5, { padding: 2, stride: 2 }), conv(16, 5, { padding: 2, stride: 2 }), flatten(), dense(10)],
  },
  {
    name: 'CNN p: conv 16 5×5, maxpool 2, conv 32 5×5/2, dense 10',
    inputShape: [1, 28, 28],
    layers: [conv(16, 5, { padding: 2 }), maxPool(2), conv(32, 5, { padding: 2, stride: 2 }), flatten(), dense(10)],
  },
  {
    name: 'CNN c (CIFAR-shaped): conv 16 3×3, avgpool 2, conv 32 3×3, avgpool 2, dense 10',
    inputShape: [3, 32, 32],
    layers: [conv(16, 3, { padding: 1 }), avgPool(2), conv(32, 3, { padding: 1 }), avgPool(2), flatten(), dense(10)],
  },
];

/** Multiply-adds the layer kernels execute per example: [errors, activity gradients, parameter gradients]. */
function macs(model: Model): [number, number, number] {
  let errors = 0;
  let carries = 0;
  model.layers.forEach((l, i) => {
    let forward = 0;
    let carry = 0;
    if (l.kind === 'dense') forward = carry = l.inDim * l.outDim;
    else if (l.kind === 'conv' || l.kind === 'convTranspose') {
      const taps = l.kernel[0] * l.kernel[1];
      forward = l.outDim * l.inShape[0] * taps;
      // The carry's k loop runs over every (C_out, ky, kx) for each input element, zeros of a stride included.
      carry = l.inDim * l.outShape[0] * taps;
    }
    // The first layer's prediction is fixed during inference (clamped input), and nothing carries into x.
    if (i > 0) {
      errors += forward;
      carries += carry;
    }
  });
  const params = model.layers.reduce((s, l) => {
    if (l.kind === 'dense') return s + l.inDim * l.outDim;
    if (l.kind === 'conv' || l.kind === 'convTranspose') return s + l.outDim * l.inShape[0] * l.kernel[0] * l.kernel[1];
    return s;
  }, 0);
  return [errors, carries, params];
}

const rt = await benchInit();
const rows: Record<string, unknown>[] = [];
for (const net of NETWORKS) {
  const model = makeModel(rt, {
    seed: 0,
    inputShape: net.inputShape,
    layers: net.layers,
    actFn: 'relu',
    useBias: true,
  });
  const D = model.dims[0]!;
  const input = rt.tensor(
    new Float32Array(B * D).map((_, i) => Math.sin(i * 0.37)),
    [B, D],
  );
  const y = new Float32Array(B * 10);
  for (let b = 0; b < B; b++) y[b * 10 + (b % 10)] = 1;
  const output = rt.tensor(y, [B, 10]);
  const optim = adam({ lr: 1e-3 });
  const optState = optim.init(model);
  const stepMs: number[] = [];
  let dispatches = 0;
  for (let i = 0; i < REPEATS + 2; i++) {
    await rt.finish();
    const t0 = performance.now();
    const before = rt.stats.dispatches;
    const r = await makePcStep(model, optim, optState, output, { input, ...SOLVE });
    await r.loss.item();
    if (i >= 2) stepMs.push(performance.now() - t0);
    dispatches = rt.stats.dispatches - before;
    r.loss.dispose();
    r.energies.dispose();
  }
  // Dispatches per inference step, from a solve alone (from the feedforward activities).
  const acts = await initActivitiesWithFfwd(model, input);
  const solve = await solveInference(model, acts, output, { input, ...SOLVE });
  const perStep = solve.dispatches / solve.encodedSteps;
  for (const t of [...acts, ...solve.activities]) t.dispose();
  // One profiled step: GPU time per kernel.
  rt.startProfile();
  const r = await makePcStep(model, optim, optState, output, { input, ...SOLVE });
  await r.loss.item();
  const profile = await rt.stopProfile();
  r.loss.dispose();
  r.energies.dispose();
  const ms = (prefix: string) =>
    profile.kernels.filter((k) => k.kernel.startsWith(prefix)).reduce((s, k) => s + k.ms, 0);
  const count = (prefix: string) =>
    profile.kernels.filter((k) => k.kernel.startsWith(prefix)).reduce((s, k) => s + k.dispatches, 0);
  const [errMacs, carryMacs, paramMacs] = macs(model);
  const gflops = (perExample: number, dispatched: number, time: number) =>
    +((2 * perExample * B * dispatched) / (time * 1e6)).toFixed(2);
  const steps = SOLVE.maxT1 / SOLVE.dt;
  const step = median(stepMs);
  rows.push({
    network: net.name,
    params: model.paramCount,
    mflopPerInferenceStep: +((2 * (errMacs + carryMacs) * B) / 1e6).toFixed(1),
    dispatchesPerInferenceStep: +perStep.toFixed(2),
    dispatchesPerTrainStep: dispatches,
    trainStepMs: +step.toFixed(1),
    usPerInferenceStep: +(((ms('layers.errors') + ms('layers.activity-grad')) * 1000) / steps).toFixed(0),
    errorsGflops: gflops(errMacs, count('layers.errors'), ms('layers.errors')),
    activityGradGflops: gflops(carryMacs, count('layers.activity-grad'), ms('layers.activity-grad')),
    paramGradGflops: gflops(paramMacs, count('layers.param-grad'), ms('layers.param-grad')),
  });
  for (const t of [input, output]) t.dispose();
  optState.dispose();
  model.dispose();
}
process.stdout.write(
  `${JSON.stringify({ adapter: adapterLabel(rt), batch: B, solve: 'Euler, dt 0.1, 20 steps', repeats: REPEATS, rows })}\n`,
);
rt.dispose();
