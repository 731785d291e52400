/**
 * The same PC training step in three engines on this machine: WPC; TensorFlow.js 4.22 on its WebGPU backend (on
 * Dawn, the same adapter); and numpy (float32 BLAS on the CPU, bench/peers/pc_step_numpy.py) when python3 and
 * numpy are present. The step: JPC's paper network (H hidden tanh layers of 300, no bias, batch 64),
 * feedforward initialisation, 20 Euler steps of dt 0.5 on the activities, one Adam step (lr 1e-3) on the weights.
 * All three do the same arithmetic: the first layer's prediction W_1 x, fixed while the input is clamped, is
 * computed once per training step. `numpyRecomputeMs` is the numpy step recomputing it at every Euler step, as
 * JPC's energy function is written (30 of the 54 MFLOP of an H = 3 Euler step; BENCHMARKS.md, "Against the
 * peers", says when the peers changed). Steps run STEPS_PER_WAIT at a time between waits (both GPU engines), WPC's
 * and TF.js's rounds alternating; median ms per step after warm-up.
 * Prints one JSON object on stdout.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Tensor as TfTensor } from '@tensorflow/tfjs-core';
import { create, globals } from 'webgpu';
import { adam, makeMlp, makePcStep } from '../src/node.js';
import { waitWithPolling } from '../src/runtime/polling.js';
import { SleepEstimator } from '../src/runtime/polling.js';
import { adapterLabel, benchInit, median } from './common.js';

const HIDDEN = (process.env.WPC_BENCH_HIDDEN ?? '3,5,10').split(',').map(Number);
const REPEATS = Number(process.env.WPC_BENCH_REPEATS ?? 7);
// Warm-up steps: pipeline compilation, and the sleep estimator settling on the step time.
const WARMUP = 6;
// Training steps submitted before each wait, in WPC and TF.js alike, as a training loop runs them (wpc train reads
// its losses back in batches): the time per step is the throughput, and the JS thread's wait (which spins in
// dawn.node and takes a core from a software adapter) is spread over several steps.
const STEPS_PER_WAIT = 4;
const STEPS = 20;
const DT = 0.5;
const B = 64;

function batch() {
  const x = new Float32Array(B * 784).map((_, i) => Math.sin(i * 0.37));
  const y = new Float32Array(B * 10);
  for (let b = 0; b < B; b++) y[b * 10 + (b % 10)] = 1;
  return { x, y };
}

/** One engine's step for one network: `round()` runs STEPS_PER_WAIT training steps and waits, returning ms per step. */
interface Engine {
  round(): Promise<number>;
  dispose(): void;
}

async function wpcEngine(H: number): Promise<Engine> {
  const rt = await benchInit();
  const model = makeMlp(rt, { seed: 0, inputDim: 784, width: 300, depth: H + 1, outputDim: 10, actFn: 'tanh' });
  const optim = adam({ lr: 1e-3 });
  const state = optim.init(model);
  const { x, y } = batch();
  const input = rt.tensor(x, [B, 784]);
  const output = rt.tensor(y, [B, 10]);
  const clock = new SleepEstimator();
  return {
    async round() {
      await rt.finish();
      const t0 = performance.now();
      for (let s = 0; s < STEPS_PER_WAIT; s++) {
        const r = await makePcStep(model, optim, state, output, {
          input,
          solver: 'euler',
          stepsizeController: 'constant',
          maxT1: STEPS * DT,
          dt: DT,
        });
        r.loss.dispose();
        r.energies.dispose();
      }
      const { waitedMs } = await rt.finish({ expectedMs: clock.sleepFor(STEPS_PER_WAIT, performance.now() - t0) });
      clock.update(STEPS_PER_WAIT, performance.now() - t0, waitedMs);
      return (performance.now() - t0) / STEPS_PER_WAIT;
    },
    dispose: () => rt.dispose(),
  };
}

/** TensorFlow.js on its WebGPU backend (Dawn), the step written with tf ops exactly as the numpy one. */
let tfjs: Promise<typeof import('@tensorflow/tfjs-core')> | undefined;
/** TF.js on one Dawn instance for the whole run (a second backend set-up aborts inside Dawn). */
function loadTfjs(): Promise<typeof import('@tensorflow/tfjs-core')> {
  tfjs ??= (async () => {
    Object.assign(globalThis, globals);
    (globalThis as unknown as { navigator: unknown }).navigator = { gpu: create([]) };
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-webgpu');
    await tf.setBackend('webgpu');
    await tf.ready();
    return tf;
  })();
  return tfjs;
}

async function tfjsEngine(H: number): Promise<Engine> {
  const tf = await loadTfjs();
  const dims = [784, ...Array<number>(H).fill(300), 10];
  const W = dims
    .slice(0, -1)
    .map((d, l) => tf.variable(tf.randomUniform([dims[l + 1]!, d], -1 / Math.sqrt(d), 1 / Math.sqrt(d), 'float32', 0)));
  const M = W.map((w) => tf.variable(tf.zerosLike(w)));
  const V = W.map((w) => tf.variable(tf.zerosLike(w)));
  const { x: xs, y: ys } = batch();
  const x = tf.tensor2d(xs, [B, 784]);
  const y = tf.tensor2d(ys, [B, 10]);
  const L = W.length;
  let t = 0;
  const step = () => {
    t++;
    tf.tidy(() => {
      let z: TfTensor[] = [x];
      for (let l = 0; l < L - 1; l++) z.push(tf.matMul(l === 0 ? z[l]! : tf.tanh(z[l]!), W[l]!, false, true));
      const first = z[1]!; // W_1 x: fixed while x is clamped (computed once, as WPC and the numpy step do)
      const errors = (zs: TfTensor[]) => {
        const phi = zs.map((a, l) => (l === 0 ? a : tf.tanh(a)));
        const pred = (l: number) => (l === 0 ? first : tf.matMul(phi[l]!, W[l]!, false, true));
        const e: (TfTensor | null)[] = [null];
        for (let l = 0; l < L - 1; l++) e.push(tf.sub(zs[l + 1]!, pred(l)));
        e.push(tf.sub(y, pred(L - 1)));
        return { phi, e };
      };
      for (let s = 0; s < STEPS; s++) {
        const { phi, e } = errors(z);
        const next = [z[0]!];
        for (let l = 1; l < L; l++) {
          const back = tf.mul(tf.sub(1, tf.square(phi[l]!)), tf.matMul(e[l + 1]!, W[l]!));
          next.push(tf.sub(z[l]!, tf.mul(DT / B, tf.sub(e[l]!, back))));
        }
        z = next;
      }
      const { phi, e } = errors(z);
      for (let l = 0; l < L; l++) {
        const g = tf.div(tf.matMul(e[l + 1]!, phi[l]!, true, false), -B);
        M[l]!.assign(tf.add(tf.mul(0.9, M[l]!), tf.mul(0.1, g)));
        V[l]!.assign(tf.add(tf.mul(0.999, V[l]!), tf.mul(0.001, tf.square(g))));
        const mh = tf.div(M[l]!, 1 - 0.9 ** t);
        const vh = tf.div(V[l]!, 1 - 0.999 ** t);
        W[l]!.assign(tf.sub(W[l]!, tf.mul(1e-3, tf.div(mh, tf.add(tf.sqrt(vh), 1e-8)))));
      }
    });
  };
  return {
    async round() {
      const t0 = performance.now();
      for (let s = 0; s < STEPS_PER_WAIT; s++) step();
      // Wait for the steps' GPU work, polling Dawn as WPC's own waits do on this adapter (a 1-ms timer on software
      // adapters instead of a spinning JS thread; src/runtime/polling.ts), so that neither engine loses a core to it.
      const last = tf.slice(W[L - 1]!, [0, 0], [1, 1]);
      await waitWithPolling(pollingMode, () => last.data());
      last.dispose();
      return (performance.now() - t0) / STEPS_PER_WAIT;
    },
    dispose: () => {
      for (const v of [...W, ...M, ...V, x, y]) v.dispose();
    },
  };
}

/**
 * WPC's and TF.js's rounds alternate (the first engine swapping every round), so that both see the same phases
 * of this shared machine's speed; medians after warm-up.
 */
async function interleaved(H: number): Promise<{ wpc: number; tfjs: number }> {
  const wpc = await wpcEngine(H);
  const tf = await tfjsEngine(H);
  try {
    for (let i = 0; i < WARMUP; i++) await wpc.round();
    for (let i = 0; i < 2; i++) await tf.round();
    const times = { wpc: [] as number[], tfjs: [] as number[] };
    for (let i = 0; i < REPEATS; i++) {
      const order = i % 2 === 0 ? (['wpc', 'tfjs'] as const) : (['tfjs', 'wpc'] as const);
      for (const name of order) times[name].push(await (name === 'wpc' ? wpc : tf).round());
    }
    return { wpc: median(times.wpc), tfjs: median(times.tfjs) };
  } finally {
    wpc.dispose();
    tf.dispose();
  }
}

function numpyStepMs(recompute: boolean): Record<string, number> | null {
  try {
    const script = fileURLToPath(new URL('../bench/peers/pc_step_numpy.py', import.meta.url));
    const args = [
      script,
      HIDDEN.join(','),
      String(STEPS),
      String(DT),
      String(REPEATS),
      ...(recompute ? ['recompute'] : []),
    ];
    const out = execFileSync('python3', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return JSON.parse(out.trim()) as Record<string, number>;
  } catch {
    return null;
  }
}

const adapterRt = await benchInit();
const adapter = adapterLabel(adapterRt);
const pollingMode = adapterRt.polling;
adapterRt.dispose();
const numpy = numpyStepMs(false);
const numpyRecompute = numpyStepMs(true);
const rows: Record<string, unknown>[] = [];
for (const H of HIDDEN) {
  const { wpc, tfjs } = await interleaved(H);
  const np = numpy?.[String(H)];
  const npRecompute = numpyRecompute?.[String(H)];
  rows.push({
    H,
    wpcMs: +wpc.toFixed(2),
    tfjsWebgpuMs: +tfjs.toFixed(1),
    numpyMs: np === undefined ? 'n/a' : +np.toFixed(2),
    numpyRecomputeMs: npRecompute === undefined ? 'n/a' : +npRecompute.toFixed(2),
    tfjsOverWpc: `${(tfjs / wpc).toFixed(1)}×`,
    wpcOverNumpy: np === undefined ? 'n/a' : `${(wpc / np).toFixed(2)}×`,
  });
  console.error(JSON.stringify(rows.at(-1)));
}
process.stdout.write(`${JSON.stringify({ adapter, rows })}\n`);
