/**
 * The check behind `WPC_TFJS_CHECK=1 … pc-step`: the hand-written gradients of bench/tfjs/pc.ts on a tiny
 * network with every layer kind (odd sizes, stride 2, padding, 3 and 5 channels, biases), at random activities,
 * on one TF.js backend, three ways:
 *   1. against tf.grads of the energy (every kind, max pooling included): 1e-4 of the largest component;
 *   2. their directional derivative against a central difference of the energy, which needs none of TF.js's
 *      gradient kernels: 1e-3 relative (the same network with average pooling where it has max pooling, since a
 *      difference across a max's switch point is not a derivative);
 *   3. the max pool's transposed product against routing each window's error to its largest input in plain JS.
 */
import type { Tensor, Tensor4D } from '@tensorflow/tfjs-core';
import { maxPoolGrad } from '@tensorflow/tfjs-core/dist/ops/max_pool_grad';
import { avgPool, conv, dense, describeNetwork, flatten, type LayerDef, maxPool, resolveNetwork } from './arch.js';
import { type Tf, type TfBackend, useBackend } from './backend.js';
import { activityGrads, energy, errors, type PcSettings, PcModel, paramGrads } from './pc.js';

const B = 3;

/** The check network, with `pool` in second place. */
const layers = (pool: LayerDef): LayerDef[] => [
  conv(5, 3, { stride: 2, padding: 1 }),
  pool,
  conv(3, 3, { padding: 1, bias: true }),
  avgPool(2, { act: 'leaky_relu' }),
  flatten(),
  dense(7, { bias: true }),
  dense(4),
];

/** Largest |a − b| over the largest |b|, over every pair. */
async function relativeError(tf: Tf, a: readonly Tensor[], b: readonly Tensor[]): Promise<number> {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, (await tf.max(tf.abs(tf.sub(a[i]!, b[i]!))).data())[0]!);
    scale = Math.max(scale, (await tf.max(tf.abs(b[i]!)).data())[0]!);
  }
  return diff / scale;
}

/** Errors against tf.grads (1) and a central difference (2) for the network with `pool`. */
async function gradientErrors(tf: Tf, pool: LayerDef, settings: PcSettings, seed: number) {
  const net = resolveNetwork(layers(pool), [9, 9, 3], 'tanh');
  const model = new PcModel(tf, net, seed, settings);
  const L = net.layers.length;
  const x = tf.randomNormal([B, 9, 9, 3], 0, 1, 'float32', 10);
  const y = tf.cast(tf.oneHot(tf.tensor1d([0, 1, 3], 'int32'), 4), 'float32');
  const hidden = net.layers.slice(0, -1).map((l, i) => tf.randomNormal([B, ...l.outShape], 0, 1, 'float32', i + 1));
  const params = [...model.w, ...model.b].filter((v): v is NonNullable<typeof v> => v !== null);
  const args: Tensor[] = [...hidden, ...params];
  /** F of (hidden activities, parameters), the function tf.grads and the difference see. */
  const f = (...a: Tensor[]) => {
    const param = (v: Tensor | null) => (v === null ? null : a[L - 1 + params.indexOf(v as (typeof params)[0])]!);
    return energy(tf, net, { w: model.w.map(param), b: model.b.map(param) }, [x, ...a.slice(0, L - 1), y]);
  };
  const auto = tf.grads(f)(args);
  const z = [x, ...hidden, y];
  const byHand = tf.tidy(() => {
    const err = errors(tf, net, model, z);
    const p = paramGrads(tf, net, err);
    return [...activityGrads(tf, net, model, z, err), ...[...p.w, ...p.b].filter((t): t is Tensor => t !== null)];
  });
  const vsAuto = await relativeError(tf, byHand, auto);
  const dir = args.map((a, i) => tf.randomNormal(a.shape, 0, 1, 'float32', 100 + i));
  const eps = 3e-3;
  const along = async (sign: number) =>
    (await tf.tidy(() => f(...args.map((a, i) => tf.add(a, tf.mul(sign * eps, dir[i]!))))).data())[0]!;
  const difference = ((await along(1)) - (await along(-1))) / (2 * eps);
  const dot = tf.tidy(() => byHand.map((g, i) => tf.sum(tf.mul(g, dir[i]!))).reduce((a, b) => tf.add(a, b)));
  const derivative = (await dot.data())[0]!;
  tf.dispose([...auto, ...byHand, ...hidden, ...dir, dot, x, y]);
  model.dispose();
  return { net, vsAuto, vsDifference: Math.abs(difference - derivative) / Math.abs(derivative) };
}

/** (3): maxPoolGrad of a 2×2, stride-1 pool against each window's error sent to its largest input. */
async function maxPoolError(tf: Tf): Promise<number> {
  const [h, c, k] = [5, 5, 2];
  const o = h - k + 1;
  const input = tf.randomNormal([B, h, h, c], 0, 1, 'float32', 7) as Tensor4D;
  const dy = tf.randomNormal([B, o, o, c], 0, 1, 'float32', 8) as Tensor4D;
  const output = tf.maxPool(input, k, 1, 0);
  const got = tf.tidy(() => maxPoolGrad(dy, input, output, k, 1, 0));
  const [xs, dys, gs] = await Promise.all([input.data(), dy.data(), got.data()]);
  const want = new Float64Array(xs.length);
  for (let n = 0; n < B; n++) {
    for (let i = 0; i < o * o * c; i++) {
      const [oy, ox, ch] = [Math.floor(i / (o * c)), Math.floor(i / c) % o, i % c];
      let best = -1;
      for (let a = 0; a < k * k; a++) {
        const at = ((n * h + oy + Math.floor(a / k)) * h + ox + (a % k)) * c + ch;
        if (best < 0 || xs[at]! > xs[best]!) best = at;
      }
      want[best] = want[best]! + dys[n * o * o * c + i]!;
    }
  }
  tf.dispose([input, dy, output, got]);
  const scale = Math.max(...want.map(Math.abs));
  return Math.max(...gs.map((g, i) => Math.abs(g - want[i]!))) / scale;
}

/** Runs the three checks on `backend`, prints them, and says whether all passed. */
export async function checkGradients(backend: TfBackend, settings: PcSettings, seed: number): Promise<boolean> {
  const tf = await useBackend(backend);
  const withMax = await gradientErrors(tf, maxPool(2, { stride: 1 }), settings, seed);
  const withAvg = await gradientErrors(tf, avgPool(2, { stride: 1 }), settings, seed);
  const pool = await maxPoolError(tf);
  const results = [
    [`against tf.grads (${describeNetwork(withMax.net)})`, withMax.vsAuto, 1e-4],
    [`against tf.grads (the same with avgPool2s1)`, withAvg.vsAuto, 1e-4],
    ['directional derivative against a central difference (avgPool2s1)', withAvg.vsDifference, 1e-3],
    ["TF.js's maxPoolGrad against each window's error sent to its largest input", pool, 1e-5],
  ] as const;
  let ok = true;
  for (const [what, error, limit] of results) {
    ok &&= error < limit;
    console.error(
      `check on ${backend}: ${what}: ${error.toExponential(2)} ${error < limit ? 'ok' : `FAILED (> ${limit})`}`,
    );
  }
  return ok;
}
