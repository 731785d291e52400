/**
 * A predictive-coding training step of a network of bench/tfjs/arch.ts, written by hand in TensorFlow.js ops
 * as one would write it for TF.js (its forward ops, their transposes and weight gradients; no autodiff), for
 * bench/tfjs/pc-step.ts.
 *
 * JPC's energy with the mse output: F = Σ_l 1/(2B) ‖e_l‖², e_l = z_l − μ_l, μ_l = op_l(act_l(z_{l−1})), with
 * z_0 = x clamped and z_L = y clamped (supervised). The step: feedforward activities z_l = μ_l; T Euler steps
 * z_l ← z_l − dt·∂F/∂z_l on the hidden activities, ∂F/∂z_l = (e_l − act_{l+1}'(z_l) ⊙ op_{l+1}ᵀ(e_{l+1}))/B; the
 * parameter gradients at the final activities, ∂F/∂W_l = −(1/B) e_l ⊗ act_l(z_{l−1}) (∂F/∂b_l = −(1/B) Σ e_l);
 * one Adam (optax's: β 0.9, 0.999, ε 1e-8) or SGD update. μ_1 = op_1(x) does not change while x is clamped: it
 * is computed once per step, as WPC and bench/peers.ts do.
 */
import type { Tensor, Tensor2D, Tensor4D, Variable } from '@tensorflow/tfjs-core';
import { avgPoolGrad } from '@tensorflow/tfjs-core/dist/ops/avg_pool_grad';
import { conv2DBackpropInput } from '@tensorflow/tfjs-core/dist/ops/conv2d_backprop_input';
import { maxPoolGrad } from '@tensorflow/tfjs-core/dist/ops/max_pool_grad';
import { activate, activateGrad, initParams, type Layer, layerOp, type Network } from './arch.js';
import { filterGradient, type Tf } from './backend.js';

export interface PcSettings {
  /** Euler steps of inference and their step size. */
  readonly steps: number;
  readonly dt: number;
  readonly optimizer: 'adam' | 'sgd';
  readonly lr: number;
}

/** The parameters as plain tensors (the step's variables, or a test's inputs to tf.grad). */
export interface Params {
  readonly w: readonly (Tensor | null)[];
  readonly b: readonly (Tensor | null)[];
}

/** Each layer's input after its activation, its prediction μ_l and its error e_l, for activities z. */
interface Errors {
  readonly inputs: Tensor[];
  readonly mu: Tensor[];
  readonly e: Tensor[];
}

/**
 * The errors of every layer for activities `z` (z[0] = x, …, z[L] = y); `mu1`, when given, is layer 1's fixed
 * prediction op_1(x).
 */
export function errors(tf: Tf, net: Network, p: Params, z: readonly Tensor[], mu1?: Tensor): Errors {
  const inputs: Tensor[] = [];
  const mu: Tensor[] = [];
  const e: Tensor[] = [];
  net.layers.forEach((l, i) => {
    const input = activate(tf, l.act, z[i]!);
    const m = i === 0 && mu1 !== undefined ? mu1 : layerOp(tf, l, input, p.w[i]!, p.b[i]!);
    inputs.push(input);
    mu.push(m);
    e.push(tf.sub(z[i + 1]!, m));
  });
  return { inputs, mu, e };
}

/** Σ‖t‖² over the tensors (pairwise adds: TF.js's WebGPU addN binds every input and runs out of bindings). */
const sumOfSquares = (tf: Tf, ts: readonly Tensor[]): Tensor =>
  ts.map((t) => tf.sum(tf.square(t))).reduce((a, b) => tf.add(a, b));

/** F for activities z (z[0] = x, z[L] = y): the sum the step descends, and what the gradient check differentiates. */
export function energy(tf: Tf, net: Network, p: Params, z: readonly Tensor[]): Tensor {
  const { e } = errors(tf, net, p, z);
  const b = z[0]!.shape[0]!;
  return tf.div(sumOfSquares(tf, e), 2 * b);
}

/** op_lᵀ(e): the transposed product of layer `l` applied to its error, in the shape of its input z_{l−1}. */
function transposed(tf: Tf, l: Layer, e: Tensor, input: Tensor, mu: Tensor, w: Tensor | null, zShape: number[]) {
  switch (l.kind) {
    case 'conv':
      return conv2DBackpropInput(
        zShape as [number, number, number, number],
        e as Tensor4D,
        w as Tensor4D,
        l.stride,
        l.padding,
      );
    case 'avgPool':
      return avgPoolGrad(e as Tensor4D, input as Tensor4D, l.size, l.stride, 0);
    case 'maxPool':
      return maxPoolGrad(e as Tensor4D, input as Tensor4D, mu as Tensor4D, l.size, l.stride, 0);
    case 'dense':
      return tf.reshape(tf.matMul(e as Tensor2D, w as Tensor2D, false, true), zShape);
  }
}

/** ∂F/∂z_l for the hidden activities l = 1 … L−1, from the errors at z. */
export function activityGrads(tf: Tf, net: Network, p: Params, z: readonly Tensor[], err: Errors): Tensor[] {
  const b = z[0]!.shape[0]!;
  const grads: Tensor[] = [];
  for (let l = 1; l < net.layers.length; l++) {
    const next = net.layers[l]!;
    const back = transposed(tf, next, err.e[l]!, err.inputs[l]!, err.mu[l]!, p.w[l]!, z[l]!.shape);
    grads.push(tf.div(tf.sub(err.e[l - 1]!, tf.mul(activateGrad(tf, next.act, z[l]!), back)), b));
  }
  return grads;
}

/** ∂F/∂W_l and ∂F/∂b_l (null where a layer has none), from the errors at the final activities. */
export function paramGrads(tf: Tf, net: Network, err: Errors): Params {
  const w: (Tensor | null)[] = [];
  const bias: (Tensor | null)[] = [];
  net.layers.forEach((l, i) => {
    const e = err.e[i]!;
    const b = e.shape[0]!;
    const input = err.inputs[i]!;
    if (l.kind === 'conv') {
      const shape = l.weightShape as [number, number, number, number];
      w.push(tf.div(filterGradient(input as Tensor4D, e as Tensor4D, shape, l.stride, l.padding), -b));
    } else if (l.kind === 'dense') {
      w.push(tf.div(tf.matMul(tf.reshape(input, [b, -1]) as Tensor2D, e as Tensor2D, true, false), -b));
    } else {
      w.push(null);
    }
    bias.push(
      l.bias
        ? tf.div(
            tf.sum(
              e,
              e.shape.slice(0, -1).map((_, k) => k),
            ),
            -b,
          )
        : null,
    );
  });
  return { w, b: bias };
}

/** The feedforward activities z_0 = x, z_l = μ_l (l = 1 … L−1), then z_L = y; and μ_1. */
function feedforward(tf: Tf, net: Network, p: Params, x: Tensor, y: Tensor): { z: Tensor[]; mu1: Tensor } {
  const z = [x];
  net.layers.slice(0, -1).forEach((l, i) => {
    z.push(layerOp(tf, l, activate(tf, l.act, z[i]!), p.w[i]!, p.b[i]!));
  });
  z.push(y);
  return { z, mu1: z[1] ?? layerOp(tf, net.layers[0]!, x, p.w[0]!, p.b[0]!) };
}

/** T Euler steps from the feedforward activities; returns the errors at the final activities. */
export function infer(tf: Tf, net: Network, p: Params, x: Tensor, y: Tensor, s: PcSettings): Errors {
  const { z: z0, mu1 } = feedforward(tf, net, p, x, y);
  let z = z0;
  for (let t = 0; t < s.steps; t++) {
    // One tidy per Euler step: its temporaries go back to TF.js's buffer pool before the next step.
    z = tf.tidy(() => {
      const g = activityGrads(tf, net, p, z, errors(tf, net, p, z, mu1));
      return [z[0]!, ...g.map((gl, k) => tf.sub(z[k + 1]!, tf.mul(s.dt, gl))), z.at(-1)!];
    });
  }
  return errors(tf, net, p, z, mu1);
}

/** The trainable state of a PC network: variables, Adam's moments and its step count. */
export class PcModel {
  readonly w: (Variable | null)[];
  readonly b: (Variable | null)[];
  private readonly moments: { m: Variable; v: Variable }[] = [];
  private t = 0;

  constructor(
    private readonly tf: Tf,
    readonly net: Network,
    seed: number,
    private readonly settings: PcSettings,
  ) {
    const init = initParams(net, seed);
    this.w = init.map((q, i) => q.w && tf.variable(tf.tensor(q.w, [...net.layers[i]!.weightShape!])));
    this.b = init.map((q, i) => q.b && tf.variable(tf.tensor(q.b, [net.layers[i]!.weightShape!.at(-1)!])));
    if (settings.optimizer === 'adam') {
      for (const v of this.variables()) {
        this.moments.push({ m: tf.variable(tf.zerosLike(v)), v: tf.variable(tf.zerosLike(v)) });
      }
    }
  }

  private variables(): Variable[] {
    return [...this.w, ...this.b].filter((v): v is Variable => v !== null);
  }

  /** One training step on (x, y): inference, gradients, update. Returns the energy at the final activities. */
  step(x: Tensor, y: Tensor): Tensor {
    const tf = this.tf;
    const { lr, optimizer } = this.settings;
    this.t++;
    return tf.tidy(() => {
      const err = infer(tf, this.net, this, x, y, this.settings);
      const g = paramGrads(tf, this.net, err);
      const grads = [...g.w, ...g.b].filter((v): v is Tensor => v !== null);
      this.variables().forEach((v, k) => {
        const gk = grads[k]!;
        if (optimizer === 'sgd') {
          v.assign(tf.sub(v, tf.mul(lr, gk)));
          return;
        }
        const { m, v: s } = this.moments[k]!;
        m.assign(tf.add(tf.mul(0.9, m), tf.mul(0.1, gk)));
        s.assign(tf.add(tf.mul(0.999, s), tf.mul(0.001, tf.square(gk))));
        const mHat = tf.div(m, 1 - 0.9 ** this.t);
        const vHat = tf.div(s, 1 - 0.999 ** this.t);
        v.assign(tf.sub(v, tf.mul(lr, tf.div(mHat, tf.add(tf.sqrt(vHat), 1e-8)))));
      });
      const b = x.shape[0]!;
      return tf.div(sumOfSquares(tf, err.e), 2 * b);
    });
  }

  dispose(): void {
    for (const v of this.variables()) v.dispose();
    for (const { m, v } of this.moments) {
      m.dispose();
      v.dispose();
    }
  }
}

/**
 * Floating-point operations of the products of one training step per example: the feedforward pass (layers
 * 1 … L−1), per Euler step the errors of layers 2 … L and their transposed products, the final errors and the
 * weight gradients (element-wise work and pooling not counted).
 */
export function stepFlops(net: Network, steps: number): number {
  const all = net.layers.reduce((s, l) => s + l.flops, 0);
  const rest = all - net.layers[0]!.flops;
  return all - net.layers.at(-1)!.flops + steps * 2 * rest + rest + all;
}
