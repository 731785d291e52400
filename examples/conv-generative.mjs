// A convolutional generative decoder (JPC's supervised generative PC with a transposed-convolution generator):
// label → dense 32·7·7 → [32, 7, 7] → convTranspose 16 4×4/2 → [16, 14, 14] → convTranspose 1 4×4/2 → [1, 28, 28]
// (relu, biases), trained by make_pc_step with the label as input and the image as output (inference: Heun + PID
// to t = 20), Adam 1e-3. Writes a grid of the digits it generates per label (the feedforward prediction).
//   node examples/conv-generative.mjs --data-dir ../shared/datasets
import { join } from 'node:path';
import {
  adam,
  convTranspose,
  dense,
  initActivitiesWithFfwd,
  makeModel,
  makePcStep,
  reshape,
  writeImageGrid,
} from 'webgpu-pc';
import { mnist, report, setup, trainingBatches } from './_common.mjs';

const ctx = setup('conv-generative', { iters: 300, testEvery: 50 });
const { train, runtime } = await mnist(ctx.dataDir);
const model = makeModel(runtime, {
  seed: ctx.seed,
  inputShape: [10],
  layers: [
    dense(32 * 7 * 7),
    reshape([32, 7, 7]),
    convTranspose(16, 4, { stride: 2, padding: 1 }),
    convTranspose(1, 4, { stride: 2, padding: 1 }),
  ],
  actFn: 'relu',
  useBias: true,
});
const optim = adam({ lr: 1e-3 });
const optState = optim.init(model);

let iter = 0;
let loss = NaN;
for (const { x, y } of trainingBatches(train, ctx.iters, ctx.seed)) {
  const step = await makePcStep(model, optim, optState, x, { input: y });
  iter++;
  if ((ctx.testEvery > 0 && iter % ctx.testEvery === 0) || iter === ctx.iters) {
    loss = await step.loss.item();
    ctx.log(`iter ${iter}: train loss (image mse) ${loss.toFixed(4)}`);
  }
  step.loss.dispose();
  step.energies.dispose();
}

// Two generated images per digit (the feedforward prediction from its one-hot label).
const labels = new Float32Array(20 * 10);
for (let i = 0; i < 20; i++) labels[i * 10 + (i % 10)] = 1;
const generated = await initActivitiesWithFfwd(model, labels);
const png = join(ctx.out, 'conv-generative-digits.png');
await writeImageGrid(png, generated.at(-1), { columns: 10, scale: 3 });
ctx.log(`wrote ${png}`);
report(ctx, 'conv-generative', { trainLoss: Number(loss.toFixed(4)), png });
runtime.dispose();
