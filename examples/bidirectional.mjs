// JPC's bidirectional_pc notebook (Oliviers et al. 2025): a top-down generator label → image (10 → 256 → 784)
// and a bottom-up network image → label (784 → 256 → 10), relu, no biases, share one hidden activity. Each step
// starts it from the bottom-up pass, takes one SGD step (lr 0.5) on the bPC energy, then updates both networks
// (Adam 1e-3), for 300 iterations. The test metric is the bottom-up network's label accuracy; the notebook gets
// 85.4% with forward energy weight α_f = 1 and 94.0% with α_f = 1e-3.
//   node examples/bidirectional.mjs --data-dir ../shared/datasets [--forward-weight 1e-3]
import { join } from 'node:path';
import {
  adam,
  initActivitiesWithFfwd,
  initBpcActivities,
  makeMlp,
  sgd,
  updateBpcActivities,
  updateBpcParams,
  writeImageGrid,
} from 'webgpu-pc';
import { discriminativeAccuracy, mnist, report, setup, trainingBatches } from './_common.mjs';

const ctx = setup('bidirectional', { iters: 300, testEvery: 50 }, { 'forward-weight': { type: 'string' } });
const forwardEnergyWeight = Number(ctx.values['forward-weight'] ?? 1e-3);
if (!(forwardEnergyWeight >= 0))
  throw new Error(`--forward-weight must be a number ≥ 0, got ${ctx.values['forward-weight']}`);
const { train, test, runtime } = await mnist(ctx.dataDir);
const topDown = makeMlp(runtime, {
  seed: 2 * ctx.seed,
  inputDim: 10,
  width: 256,
  depth: 2,
  outputDim: 784,
  actFn: 'relu',
});
const bottomUp = makeMlp(runtime, {
  seed: 2 * ctx.seed + 1,
  inputDim: 784,
  width: 256,
  depth: 2,
  outputDim: 10,
  actFn: 'relu',
});
const activityOptim = sgd({ lr: 0.5 });
const optims = [adam({ lr: 1e-3 }), adam({ lr: 1e-3 })];
const optStates = [optims[0].init(topDown), optims[1].init(bottomUp)];
const options = { forwardEnergyWeight };

let iter = 0;
let accuracy = NaN;
for (const { x: image, y: label } of trainingBatches(train, ctx.iters, ctx.seed)) {
  let activities = await initBpcActivities(topDown, bottomUp, image);
  const activityState = activityOptim.init(activities);
  // Inference: depth − 1 = 1 step, as the notebook.
  const inferred = await updateBpcActivities(topDown, bottomUp, activities, activityOptim, activityState, image, {
    input: label,
    ...options,
  });
  for (const a of activities) a.dispose();
  activities = inferred.activities;
  inferred.energy.dispose();
  await updateBpcParams(topDown, bottomUp, activities, optims, optStates, image, { input: label, ...options });
  for (const a of activities) a.dispose();
  activityState.dispose();
  iter++;
  if ((ctx.testEvery > 0 && iter % ctx.testEvery === 0) || iter === ctx.iters) {
    accuracy = await discriminativeAccuracy(bottomUp, test, ctx.testBatches);
    ctx.log(`iter ${iter}: bottom-up test accuracy ${accuracy.toFixed(2)}% (α_f = ${forwardEnergyWeight})`);
  }
}

const labels = new Float32Array(10 * 10);
for (let i = 0; i < 10; i++) labels[i * 10 + i] = 1;
const png = join(ctx.out, `bidirectional-digits-af${forwardEnergyWeight}.png`);
await writeImageGrid(png, (await initActivitiesWithFfwd(topDown, labels)).at(-1), { columns: 10, scale: 3 });
report(ctx, 'bidirectional', { forwardEnergyWeight, amortiserTestAccuracy: Number(accuracy.toFixed(2)), png });
runtime.dispose();
