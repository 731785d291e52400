// JPC's hybrid_pc notebook (Tschantz et al. 2023): a generator label → image (10 → 300 → 300 → 784) and an
// amortiser image → label (784 → 300 → 300 → 10), relu, no biases, both Adam 1e-3. Each step starts the
// generator's inference from the amortiser's guesses (Heun + PID to t = 50) and trains the amortiser to predict
// the equilibrium (make_hpc_step), for 300 iterations. Tested by test_hpc (inference to t = 500): the label
// accuracy of the amortiser alone, of hybrid inference and of the generator alone.
//   node examples/hybrid.mjs --data-dir ../shared/datasets
import { join } from 'node:path';
import { adam, initActivitiesWithFfwd, makeHpcStep, makeMlp, testHpc, writeImageGrid } from 'webgpu-pc';
import { mnist, report, setup, testBatches, trainingBatches } from './_common.mjs';

const ctx = setup('hybrid', { iters: 300, testEvery: 100 });
const { train, test, runtime } = await mnist(ctx.dataDir);
const generator = makeMlp(runtime, {
  seed: 2 * ctx.seed,
  inputDim: 10,
  width: 300,
  depth: 3,
  outputDim: 784,
  actFn: 'relu',
});
const amortiser = makeMlp(runtime, {
  seed: 2 * ctx.seed + 1,
  inputDim: 784,
  width: 300,
  depth: 3,
  outputDim: 10,
  actFn: 'relu',
});
const optims = [adam({ lr: 1e-3 }), adam({ lr: 1e-3 })];
const optStates = [optims[0].init(generator), optims[1].init(amortiser)];

async function evaluate() {
  const sum = { amortAcc: 0, hpcAcc: 0, genAcc: 0 };
  let n = 0;
  for (const b of testBatches(test, ctx.testBatches)) {
    const r = await testHpc(generator, amortiser, b.x, b.y, { seed: n });
    r.outputPreds.dispose();
    for (const k of Object.keys(sum)) sum[k] += r[k];
    n++;
  }
  for (const k of Object.keys(sum)) sum[k] = Number((sum[k] / n).toFixed(2));
  return sum;
}

let iter = 0;
let accuracies = null;
for (const { x, y } of trainingBatches(train, ctx.iters, ctx.seed)) {
  const step = await makeHpcStep(generator, amortiser, optims, optStates, x, { input: y, maxT1: 50 });
  iter++;
  if ((ctx.testEvery > 0 && iter % ctx.testEvery === 0) || iter === ctx.iters) {
    const [genLoss, amortLoss] = await Promise.all([step.losses.generator.item(), step.losses.amortiser.item()]);
    accuracies = await evaluate();
    ctx.log(
      `iter ${iter}: gen loss ${genLoss.toFixed(4)}, amort loss ${amortLoss.toFixed(4)}, test accuracy: amortised ${accuracies.amortAcc}%, hybrid ${accuracies.hpcAcc}%, generator ${accuracies.genAcc}%`,
    );
  }
  for (const t of [step.losses.generator, step.losses.amortiser, step.energies.generator, step.energies.amortiser])
    t.dispose();
}

const labels = new Float32Array(10 * 10);
for (let i = 0; i < 10; i++) labels[i * 10 + i] = 1;
const png = join(ctx.out, 'hybrid-digits.png');
await writeImageGrid(png, (await initActivitiesWithFfwd(generator, labels)).at(-1), { columns: 10, scale: 3 });
report(ctx, 'hybrid', { ...accuracies, png });
runtime.dispose();
