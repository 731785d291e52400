/**
 * One predictive-coding training step of a convolutional network in TensorFlow.js (bench/tfjs/pc.ts: feedforward
 * activities, T Euler steps of inference with the energy's gradient written out in TF.js ops, one Adam or SGD
 * update), timed on TF.js's WebGPU backend on the adapter WPC uses (one Dawn instance), and on its wasm and CPU
 * backends for reference: the TF.js side of issue 24's conv-step comparison. Each engine: warm-up steps, then
 * the median of timed steps, each awaited (a read of its energy) before the next starts, the engines taking
 * turns. Inputs are a fixed batch (sin(0.37·i), one-hot class b mod 10), so no data files are needed. Prints one
 * JSON object on stdout.
 *
 * Settings (environment; `npm run bench -- tfjs/pc-step`, or `node .bench-build/tfjs/pc-step.mjs` once bundled):
 *   WPC_TFJS_ARCH      a JSON list of layers or a file holding one (bench/tfjs/arch.ts; default SMALL_CNN)
 *   WPC_TFJS_INPUT     the input's H,W,C (default 28,28,1)       WPC_TFJS_ACT   activation (default relu)
 *   WPC_TFJS_BATCH     batch size (default 64)                   WPC_TFJS_STEPS Euler steps T (default 20)
 *   WPC_TFJS_DT        Euler step size (default 0.5)             WPC_TFJS_OPTIM adam | sgd (default adam)
 *   WPC_TFJS_LR        learning rate (default 1e-3)              WPC_TFJS_SEED  seed (default 0)
 *   WPC_TFJS_BACKENDS  which, in order (default webgpu,wasm; cpu: TF.js's plain-JS kernels, far slower)
 *   WPC_TFJS_WARMUP    untimed steps first (default 2)           WPC_TFJS_REPEATS timed steps (default 5)
 *   WPC_TFJS_WPC=0     leave WPC's engine out (by default WPC's makePcStep on the same network takes its turn too;
 *                      the parameters differ, drawn from WPC's own streams, so the energies agree only roughly)
 *   WPC_TFJS_CHECK=1   instead of timing: the hand-written gradients checked on each backend (bench/tfjs/pc-check.ts:
 *                      against tf.grads and a central difference, every layer kind); exits 1 when one fails
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import * as wpc from '../../src/node.js';
import type { LayerDef } from '../../src/node.js';
import { adapterLabel, benchInit, median } from '../common.js';
import { ACTIVATIONS, archFromEnv, describeNetwork, type Network, resolveNetwork, SMALL_CNN } from './arch.js';
import { BACKENDS, checkWasmMaxPool, settle, type Tf, type TfBackend, useBackend } from './backend.js';
import { choiceEnv, choicesEnv, envText, positiveEnv, seedEnv } from './env.js';
import { type PcSettings, PcModel, stepFlops } from './pc.js';
import { checkGradients } from './pc-check.js';

const actFn = choiceEnv('WPC_TFJS_ACT', ACTIVATIONS, 'relu');
const inShape = envText('WPC_TFJS_INPUT', '28,28,1').split(',').map(Number);
const settings: PcSettings = {
  steps: positiveEnv('WPC_TFJS_STEPS', 20, true),
  dt: positiveEnv('WPC_TFJS_DT', 0.5, false),
  optimizer: choiceEnv('WPC_TFJS_OPTIM', ['adam', 'sgd'] as const, 'adam'),
  lr: positiveEnv('WPC_TFJS_LR', 1e-3, false),
};
const B = positiveEnv('WPC_TFJS_BATCH', 64, true);
const seed = seedEnv('WPC_TFJS_SEED', 0);
const backends = choicesEnv('WPC_TFJS_BACKENDS', BACKENDS, ['webgpu', 'wasm']);
const WARMUP = positiveEnv('WPC_TFJS_WARMUP', 2, true);
const REPEATS = positiveEnv('WPC_TFJS_REPEATS', 5, true);

/** The fixed batch: x = sin(0.37·i), y one-hot of b mod classes. */
function batch(tf: Tf, net: Network, size: number): { x: Tensor; y: Tensor } {
  const n = net.inShape.reduce((a, b) => a * b, 1);
  const out = net.layers.at(-1)!.outShape;
  const classes = out.reduce((a, b) => a * b, 1);
  const y = new Float32Array(size * classes);
  for (let b = 0; b < size; b++) y[b * classes + (b % classes)] = 1;
  const x = Float32Array.from({ length: size * n }, (_, i) => Math.sin(i * 0.37));
  return { x: tf.tensor(x, [size, ...net.inShape]), y: tf.tensor(y, [size, ...out]) };
}

/**
 * One engine doing the step: `round()` runs one training step and waits for it, returning its ms; `energy()` is
 * the energy after the last step (the engines see the same batch and the same number of steps, so they should
 * nearly agree: Adam's normalised steps carry rounding differences forward). WPC's engine joins the list below.
 */
interface Engine {
  readonly name: string;
  round(): Promise<number>;
  energy(): number;
  dispose(): void;
}

/** TF.js on `backend` (each round makes it the current backend again: engines alternate). */
async function tfjsEngine(backend: TfBackend, net: Network, polling: 'spin' | 'timer'): Promise<Engine> {
  const tf = await useBackend(backend);
  const model = new PcModel(tf, net, seed, settings);
  const { x, y } = batch(tf, net, B);
  let last = Number.NaN;
  return {
    name: `TF.js ${backend}`,
    async round() {
      await useBackend(backend);
      const t0 = performance.now();
      const f = model.step(x, y);
      await settle(f, backend === 'webgpu' ? polling : 'spin');
      const ms = performance.now() - t0;
      last = (await f.data())[0]!;
      f.dispose();
      return ms;
    },
    energy: () => last,
    dispose() {
      tf.dispose([x, y]);
      model.dispose();
    },
  };
}

/**
 * Every engine's warm-up rounds, then REPEATS rounds of each, the engines alternating (the first swapping every
 * round) so that all see the same phases of a shared machine's speed; median and fastest ms per step.
 */
async function interleaved(engines: readonly Engine[]) {
  for (const e of engines) for (let i = 0; i < WARMUP; i++) await e.round();
  const times = engines.map(() => [] as number[]);
  for (let r = 0; r < REPEATS; r++) {
    const order = engines.map((_, i) => i);
    if (r % 2 === 1) order.reverse();
    for (const i of order) times[i]!.push(await engines[i]!.round());
  }
  engines.forEach((e, i) => console.error(`${e.name}: ms per step ${times[i]!.map((t) => t.toFixed(0)).join(' ')}`));
  return times.map((t) => ({ ms: median(t), min: Math.min(...t) }));
}

/** WPC's makePcStep on the same network (NCHW, the batch transposed from TF.js's NHWC), Euler, the same settings. */
async function wpcEngine(net: Network): Promise<Engine> {
  const rt = await benchInit();
  const image = net.inShape.length === 3;
  const chw = (s: readonly number[]) => (s.length === 3 ? [s[2]!, s[0]!, s[1]!] : [...s]);
  const layers: LayerDef[] = [];
  net.layers.forEach((l, i) => {
    const act = i === 0 ? {} : { act: l.act === 'linear' ? ('linear' as const) : actFn };
    if (l.kind === 'conv')
      layers.push(wpc.conv(l.outShape[2]!, l.size, { stride: l.stride, padding: l.padding, useBias: l.bias, ...act }));
    else if (l.kind === 'avgPool') layers.push(wpc.avgPool(l.size, { stride: l.stride, ...act }));
    else if (l.kind === 'maxPool') layers.push(wpc.maxPool(l.size, { stride: l.stride, ...act }));
    else {
      if (l.inShape.length === 3) layers.push(wpc.flatten());
      layers.push(wpc.dense(l.outShape[0]!, { useBias: l.bias, ...act }));
    }
  });
  const model = wpc.makeModel(rt, { seed, inputShape: chw(net.inShape), layers, actFn: actFn as wpc.Activation });
  // The same batch as TF.js's: x = sin(0.37·i) in NHWC order, transposed to NCHW.
  const n = model.dims[0]!;
  const x = new Float32Array(B * n);
  const [h, w, c] = image ? net.inShape : [1, 1, n];
  for (let b = 0; b < B; b++)
    for (let y = 0; y < h!; y++)
      for (let xx = 0; xx < w!; xx++)
        for (let ch = 0; ch < c!; ch++)
          x[b * n + (ch * h! + y) * w! + xx] = Math.sin((b * n + (y * w! + xx) * c! + ch) * 0.37);
  const classes = model.outputDim;
  const y = new Float32Array(B * classes);
  for (let b = 0; b < B; b++) y[b * classes + (b % classes)] = 1;
  const input = rt.tensor(x, [B, n]);
  const output = rt.tensor(y, [B, classes]);
  const optim = settings.optimizer === 'adam' ? wpc.adam({ lr: settings.lr }) : wpc.sgd({ lr: settings.lr });
  const state = optim.init(model);
  const solve = {
    solver: 'euler',
    stepsizeController: 'constant',
    dt: settings.dt,
    maxT1: settings.steps * settings.dt,
  } as const;
  let last = Number.NaN;
  return {
    name: 'WPC',
    async round() {
      const t0 = performance.now();
      const r = await wpc.makePcStep(model, optim, state, output, { input, ...solve });
      const energies = await r.energies.toArray();
      const ms = performance.now() - t0;
      last = energies.reduce((a, b) => a + b, 0);
      r.loss.dispose();
      r.energies.dispose();
      return ms;
    },
    energy: () => last,
    dispose() {
      for (const t of [input, output]) t.dispose();
      state.dispose();
      model.dispose();
      rt.dispose();
    },
  };
}

if (process.env.WPC_TFJS_CHECK === '1') {
  let ok = true;
  for (const backend of backends) ok = (await checkGradients(backend, settings, seed)) && ok;
  process.exit(ok ? 0 : 1);
}

const net = resolveNetwork(archFromEnv('WPC_TFJS_ARCH', SMALL_CNN), inShape, actFn);
for (const backend of backends) checkWasmMaxPool(backend, net);
// WPC's runtime on the same Dawn instance (TF.js's WebGPU backend loaded first hands it navigator.gpu): the
// adapter's name as the other benchmarks give it, and how waits should poll on it.
let adapter = 'no WebGPU backend timed';
let polling: 'spin' | 'timer' = 'spin';
if (backends.includes('webgpu')) {
  await useBackend('webgpu');
  const rt = await benchInit();
  adapter = adapterLabel(rt);
  polling = rt.polling;
  rt.dispose();
}
const flops = stepFlops(net, settings.steps) * B;
const note =
  `${describeNetwork(net)} on [${inShape}], act ${actFn}, batch ${B}, ${settings.steps} Euler steps (dt ` +
  `${settings.dt}), ${settings.optimizer} lr ${settings.lr}; ${(flops / 1e9).toFixed(2)} GFLOP of products per step`;
console.error(`pc-step: ${note}`);
const engines: Engine[] = [];
for (const backend of backends) engines.push(await tfjsEngine(backend, net, polling));
if (process.env.WPC_TFJS_WPC !== '0') engines.push(await wpcEngine(net));
const rows = (await interleaved(engines)).map((r, i) => ({
  engine: engines[i]!.name,
  msPerStep: +r.ms.toFixed(1),
  fastestMs: +r.min.toFixed(1),
  gflops: +(flops / 1e6 / r.ms).toFixed(2),
  energyAfter: +engines[i]!.energy().toPrecision(5),
}));
for (const e of engines) e.dispose();
for (const row of rows) console.error(JSON.stringify(row));
process.stdout.write(`${JSON.stringify({ adapter, note, rows })}\n`);
