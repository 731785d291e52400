// JPC's discriminative_pc notebook: an MNIST classifier 784 → 300 → 300 → 10 (relu, biases) trained by PC with
// make_pc_step's defaults (inference: Heun + PID to t = 20), Adam 1e-3, 300 iterations of batch 64.
//   node examples/discriminative.mjs --data-dir ../shared/datasets
import { adam, makeMlp, makePcStep } from 'webgpu-pc';
import { discriminativeAccuracy, mnist, report, setup, trainingBatches } from './_common.mjs';

const ctx = setup('discriminative', { iters: 300, testEvery: 100 });
const { train, test, runtime } = await mnist(ctx.dataDir);
const model = makeMlp(runtime, {
  seed: ctx.seed,
  inputDim: 784,
  width: 300,
  depth: 3,
  outputDim: 10,
  actFn: 'relu',
  useBias: true,
});
const optim = adam({ lr: 1e-3 });
const optState = optim.init(model);

let iter = 0;
let accuracy = NaN;
for (const { x, y } of trainingBatches(train, ctx.iters, ctx.seed)) {
  const step = await makePcStep(model, optim, optState, y, { input: x });
  iter++;
  if ((ctx.testEvery > 0 && iter % ctx.testEvery === 0) || iter === ctx.iters) {
    const loss = await step.loss.item();
    accuracy = await discriminativeAccuracy(model, test, ctx.testBatches);
    ctx.log(`iter ${iter}: train loss ${loss.toFixed(4)}, test accuracy ${accuracy.toFixed(2)}%`);
  }
  step.loss.dispose();
  step.energies.dispose();
}
report(ctx, 'discriminative', { testAccuracy: Number(accuracy.toFixed(2)) });
runtime.dispose();
