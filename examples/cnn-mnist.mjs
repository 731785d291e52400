// A PC CNN classifier on MNIST: makeModel with a list of layers (convolutions, average pooling as PC layers of
// their own, a dense readout; relu, biases), trained by PC with make_pc_step's defaults (inference: Heun + PID to
// t = 20), Adam 1e-3, batches of 64. The default is small enough for a software adapter (lavapipe) in a few
// minutes; --full trains the wider network of the issue's example for 3 epochs, a job for a GPU.
//   node examples/cnn-mnist.mjs --data-dir ../shared/datasets
//   node examples/cnn-mnist.mjs --data-dir ../shared/datasets --full
import { adam, avgPool, conv, dense, flatten, makeModel, makePcStep } from 'webgpu-pc';
import { discriminativeAccuracy, mnist, report, setup, trainingBatches } from './_common.mjs';

const ctx = setup('cnn-mnist', { iters: undefined, testEvery: 50 }, { full: { type: 'boolean' } });
const full = ctx.values.full ?? false;
// --full: 3 epochs of 937 batches (JPC's loaders drop the last partial batch).
ctx.iters ??= full ? 3 * 937 : 100;
const [c1, c2] = full ? [32, 64] : [8, 16];
const layers = [
  conv(c1, 3, { padding: 1 }),
  avgPool(2),
  conv(c2, 3, { padding: 1 }),
  avgPool(2),
  flatten(),
  ...(full ? [dense(128)] : []),
  dense(10),
];

const { train, test, runtime } = await mnist(ctx.dataDir);
const model = makeModel(runtime, { seed: ctx.seed, inputShape: [1, 28, 28], layers, actFn: 'relu', useBias: true });
ctx.log(`activities ${model.shapes.map((s) => `[${s.join(', ')}]`).join(' → ')}, ${model.paramCount} parameters`);
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
report(ctx, 'cnn-mnist', { testAccuracy: Number(accuracy.toFixed(2)), full, params: model.paramCount });
runtime.dispose();
