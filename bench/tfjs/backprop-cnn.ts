/**
 * The backprop baseline of issue 24: a CNN trained by backpropagation with TensorFlow.js on MNIST or
 * Fashion-MNIST, for comparison with the same architecture trained by WPC's predictive coding (same data, same
 * normalisation, same epochs). Data through WPC's own loader (`loadDataset`: x = (p/255 − 0.1307)/0.3081) and
 * shuffle (`batches`, seeded by seed·1000 + epoch as `wpc train` seeds it; the last partial batch dropped);
 * weights as bench/tfjs/arch.ts makes them; Adam (β 0.9, 0.999, ε 1e-8, as optax); the loss on the last layer's
 * linear output: mse (½‖y − ŷ‖² averaged over the batch, JPC's) or ce (softmax cross-entropy, batch mean).
 * Prints the training loss, test accuracy and times of each epoch on stderr and one JSON object on stdout.
 *
 * Settings (environment; `npm run bench -- tfjs/backprop-cnn`, or `node .bench-build/tfjs/backprop-cnn.mjs`
 * once bundled):
 *   WPC_TFJS_DATASET  mnist | fashion-mnist (default mnist)
 *   WPC_TFJS_ARCH     a JSON list of layers or a file holding one (bench/tfjs/arch.ts; default SMALL_CNN)
 *   WPC_TFJS_ACT      the model's activation (default relu)    WPC_TFJS_LOSS   mse | ce (default ce)
 *   WPC_TFJS_BATCH    batch size (default 64)                  WPC_TFJS_LR     Adam's learning rate (default 1e-3)
 *   WPC_TFJS_EPOCHS   epochs (default 1)                       WPC_TFJS_SEED   seed (default 0)
 *   WPC_TFJS_TRAIN    training examples used, the first N of the file (default all 60000)
 *   WPC_TFJS_BACKEND  wasm | cpu | webgpu (default wasm, the fastest here; its missing weight-gradient kernel is
 *                     filled in by bench/tfjs/backend.ts; webgpu runs on Dawn's adapter)
 *   WPC_TFJS_OUT      also write the JSON result to this file
 */
import { writeFileSync } from 'node:fs';
import type { Scalar, Tensor, Variable } from '@tensorflow/tfjs-core';
import { batches, loadDataset, subset, type Dataset } from '../../src/node.js';
import {
  ACTIVATIONS,
  activate,
  archFromEnv,
  describeNetwork,
  initParams,
  layerOp,
  networkFlops,
  resolveNetwork,
  SMALL_CNN,
} from './arch.js';
import { BACKENDS, checkWasmMaxPool, useBackend } from './backend.js';
import { choiceEnv, positiveEnv, seedEnv } from './env.js';

const dataset = choiceEnv('WPC_TFJS_DATASET', ['mnist', 'fashion-mnist'] as const, 'mnist');
const actFn = choiceEnv('WPC_TFJS_ACT', ACTIVATIONS, 'relu');
const loss = choiceEnv('WPC_TFJS_LOSS', ['mse', 'ce'] as const, 'ce');
const batchSize = positiveEnv('WPC_TFJS_BATCH', 64, true);
const lr = positiveEnv('WPC_TFJS_LR', 1e-3, false);
const epochs = positiveEnv('WPC_TFJS_EPOCHS', 1, true);
const seed = seedEnv('WPC_TFJS_SEED', 0);
const trainLimit = process.env.WPC_TFJS_TRAIN ? positiveEnv('WPC_TFJS_TRAIN', 1, true) : undefined;
const backend = choiceEnv('WPC_TFJS_BACKEND', BACKENDS, 'wasm');
const net = resolveNetwork(archFromEnv('WPC_TFJS_ARCH', SMALL_CNN), [28, 28, 1], actFn);
if (net.layers.at(-1)!.outShape.join() !== '10') throw new Error('the last layer must have 10 outputs');
checkWasmMaxPool(backend, net);

const tf = await useBackend(backend);
const [fullTrain, test] = await Promise.all([loadDataset(dataset, 'train'), loadDataset(dataset, 'test')]);
const train = trainLimit === undefined ? fullTrain : subset(fullTrain, trainLimit);

const weights: (Variable | null)[] = [];
const biases: (Variable | null)[] = [];
initParams(net, seed).forEach((p, i) => {
  const l = net.layers[i]!;
  weights.push(p.w && tf.variable(tf.tensor(p.w, [...l.weightShape!]), true, `w${i}`));
  biases.push(p.b && tf.variable(tf.tensor(p.b, [l.weightShape!.at(-1)!]), true, `b${i}`));
});
const variables = [...weights, ...biases].filter((v): v is Variable => v !== null);

/** The network's output for a batch of inputs [B, 28, 28, 1]. */
function forward(x: Tensor): Tensor {
  let h = x;
  net.layers.forEach((l, i) => {
    h = layerOp(tf, l, activate(tf, l.act, h), weights[i]!, biases[i]!);
  });
  return h;
}

function lossOf(out: Tensor, y: Tensor): Tensor {
  const b = out.shape[0]!;
  if (loss === 'mse') return tf.div(tf.mul(0.5, tf.sum(tf.square(tf.sub(y, out)))), b);
  return tf.div(tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(out)))), b);
}

/** Test accuracy, in batches of 1000 examples. */
async function accuracy(data: Dataset): Promise<number> {
  let correct = 0;
  for (const batch of batches(data, { batchSize: 1000, shuffle: false, dropLast: false })) {
    const predicted = tf.tidy(() => tf.argMax(forward(tf.tensor4d(batch.x, [batch.size, 28, 28, 1])), 1));
    const labels = await predicted.data();
    predicted.dispose();
    for (let i = 0; i < batch.size; i++) if (labels[i] === batch.labels[i]) correct++;
  }
  return correct / data.count;
}

const optimizer = tf.train.adam(lr, 0.9, 0.999, 1e-8);
const rows: Record<string, unknown>[] = [];
const start = performance.now();
console.error(
  `backprop-cnn: ${dataset}, ${describeNetwork(net)} (act ${actFn}, ${(networkFlops(net) / 1e6).toFixed(2)} MFLOP ` +
    `forward per example), loss ${loss}, batch ${batchSize}, Adam lr ${lr}, ${epochs} epoch(s) of ${train.count} ` +
    `examples, seed ${seed}, TF.js ${tf.version_core} ${backend} backend`,
);
for (let epoch = 0; epoch < epochs; epoch++) {
  const t0 = performance.now();
  let lossSum: Tensor = tf.scalar(0);
  let steps = 0;
  for (const batch of batches(train, { batchSize, shuffle: true, seed: seed * 1000 + epoch })) {
    const cost = optimizer.minimize(
      () => {
        const x = tf.tensor4d(batch.x, [batch.size, 28, 28, 1]);
        return lossOf(forward(x), tf.tensor2d(batch.y, [batch.size, 10])) as Scalar;
      },
      true,
      variables,
    )!;
    const next = tf.add(lossSum, cost);
    lossSum.dispose();
    cost.dispose();
    lossSum = next;
    steps++;
  }
  const trainLoss = (await lossSum.data())[0]! / steps;
  lossSum.dispose();
  const trainS = (performance.now() - t0) / 1000;
  const acc = await accuracy(test);
  const row = {
    epoch: epoch + 1,
    trainLoss: +trainLoss.toFixed(4),
    testAccuracy: +(100 * acc).toFixed(2),
    trainS: +trainS.toFixed(1),
    totalS: +((performance.now() - start) / 1000).toFixed(1),
  };
  rows.push(row);
  console.error(JSON.stringify(row));
}

const adapter = `TF.js ${tf.version_core}, ${backend} backend`;
const note =
  `${dataset}, ${describeNetwork(net)}, act ${actFn}, loss ${loss}, batch ${batchSize}, Adam lr ${lr}, ` +
  `${train.count} training examples, seed ${seed}`;
const result = { adapter, note, rows };
if (process.env.WPC_TFJS_OUT) writeFileSync(process.env.WPC_TFJS_OUT, `${JSON.stringify(result, null, 1)}\n`);
process.stdout.write(`${JSON.stringify(result)}\n`);
