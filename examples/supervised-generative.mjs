// JPC's supervised_generative_pc notebook: a generator label → image, 10 → 300 → 300 → 784 (relu, biases),
// trained by make_pc_step with the label as input and the image as output (inference: Heun + PID to t = 100),
// Adam 1e-3, 200 iterations. Tested by test_generative_pc: each test image's label is inferred by inference
// with only the image clamped (to t = 100), from random activities. Writes the digits it generates per label.
//   node examples/supervised-generative.mjs --data-dir ../shared/datasets
import { join } from 'node:path';
import { adam, initActivitiesWithFfwd, makeMlp, makePcStep, testGenerativePc, writeImageGrid } from 'webgpu-pc';
import { mnist, report, setup, testBatches, trainingBatches } from './_common.mjs';

const MAX_T1 = 100;
const ctx = setup('supervised-generative', { iters: 200, testEvery: 50 });
const { train, test, runtime } = await mnist(ctx.dataDir);
const model = makeMlp(runtime, {
  seed: ctx.seed,
  inputDim: 10,
  width: 300,
  depth: 3,
  outputDim: 784,
  actFn: 'relu',
  useBias: true,
});
const optim = adam({ lr: 1e-3 });
const optState = optim.init(model);

async function inferredLabelAccuracy() {
  let sum = 0;
  let n = 0;
  for (const b of testBatches(test, ctx.testBatches)) {
    const r = await testGenerativePc(model, b.x, b.y, { seed: n, maxT1: MAX_T1 });
    r.preds.dispose();
    sum += r.acc;
    n++;
  }
  return sum / n;
}

let iter = 0;
let accuracy = NaN;
for (const { x, y } of trainingBatches(train, ctx.iters, ctx.seed)) {
  const step = await makePcStep(model, optim, optState, x, { input: y, maxT1: MAX_T1 });
  iter++;
  if ((ctx.testEvery > 0 && iter % ctx.testEvery === 0) || iter === ctx.iters) {
    const loss = await step.loss.item();
    accuracy = await inferredLabelAccuracy();
    ctx.log(`iter ${iter}: train loss ${loss.toFixed(4)}, inferred-label test accuracy ${accuracy.toFixed(2)}%`);
  }
  step.loss.dispose();
  step.energies.dispose();
}

// One generated image per digit (the feedforward prediction from its one-hot label), two rows.
const labels = new Float32Array(20 * 10);
for (let i = 0; i < 20; i++) labels[i * 10 + (i % 10)] = 1;
const generated = await initActivitiesWithFfwd(model, labels);
const png = join(ctx.out, 'supervised-generative-digits.png');
await writeImageGrid(png, generated.at(-1), { columns: 10, scale: 3 });
ctx.log(`wrote ${png}`);
report(ctx, 'supervised-generative', { inferredLabelAccuracy: Number(accuracy.toFixed(2)), png });
runtime.dispose();
