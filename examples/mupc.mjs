// JPC's mupc notebook (Innocenti et al. 2025): a 30-layer residual MNIST classifier 784 → 128 ×29 → 10 (relu, no
// biases) in the μPC parameterisation (N(0, 1) weights, 1/√D, 1/√(N·L) and 1/N scalings, identity skips on the
// hidden layers). Each step runs 30 SGD steps (lr 0.5) on the activities from a feedforward start, then one
// Adam step of lr 0.1 on the weights, for 900 iterations; the notebook reaches 93.3%.
//   node examples/mupc.mjs --data-dir ../shared/datasets
import { adam, makeMlp, makePcStep, makeSkipModel, sgd } from 'webgpu-pc';
import { discriminativeAccuracy, mnist, report, setup, trainingBatches } from './_common.mjs';

const DEPTH = 30;
const ctx = setup('mupc', { iters: 900, testEvery: 100, seed: 4329 });
const { train, test, runtime } = await mnist(ctx.dataDir);
const model = makeMlp(runtime, {
  seed: ctx.seed,
  inputDim: 784,
  width: 128,
  depth: DEPTH,
  outputDim: 10,
  actFn: 'relu',
  paramType: 'mupc',
  skipModel: makeSkipModel(DEPTH),
});
const optim = adam({ lr: 1e-1 });
const optState = optim.init(model);
// Inference: L = 30 SGD steps of lr 0.5 on the activities (makePcStep's discrete inference).
const inference = { solver: sgd({ lr: 0.5 }), steps: DEPTH };

let iter = 0;
let accuracy = NaN;
let diverged = false;
for (const { x, y } of trainingBatches(train, ctx.iters, ctx.seed)) {
  const step = await makePcStep(model, optim, optState, y, { input: x, ...inference });
  iter++;
  const testNow = (ctx.testEvery > 0 && iter % ctx.testEvery === 0) || iter === ctx.iters;
  if (testNow) {
    const loss = await step.loss.item();
    if (!Number.isFinite(loss)) {
      ctx.log(`iter ${iter}: training diverged (loss ${loss})`);
      diverged = true;
    }
    accuracy = await discriminativeAccuracy(model, test, ctx.testBatches);
    ctx.log(`iter ${iter}: train loss ${loss.toFixed(4)}, test accuracy ${accuracy.toFixed(2)}%`);
  }
  step.loss.dispose();
  step.energies.dispose();
  if (diverged) break;
}
report(ctx, 'mupc', { testAccuracy: Number(accuracy.toFixed(2)), diverged });
runtime.dispose();
