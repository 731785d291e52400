/**
 * TensorFlow.js for the benchmarks in bench/tfjs/: tfjs-core with its registered gradients and one backend,
 * `cpu` (plain JS), `wasm` (XNNPACK, SIMD) or `webgpu` on Dawn.
 *
 * TF.js's wasm backend has no Conv2DBackpropFilter kernel, so a convolution's weight gradient cannot run there.
 * `filterGradient` computes it on wasm as the one convolution it is (batch and channels swapped, the stride as
 * the dilation), and the Conv2D gradient registered here is TF.js's own (Conv2D_grad) with that weight gradient
 * on wasm; elsewhere it calls TF.js's conv2DBackpropFilter, so nothing changes on the other backends.
 *
 * The WebGPU backend gets WPC's own Dawn `GPU` object as `navigator.gpu` (src/runtime/dawn.ts, with lavapipe's
 * vector width set as WPC sets it), so TF.js and a WPC `init()` in the same process run on one Dawn instance
 * and one adapter. These scripts are bundled with TF.js's ES modules (scripts/bench-sections.mjs): tfjs-core's
 * CommonJS entry registers no gradients, and its gradient module exists only as an ES module.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-cpu';
import { conv2DBackpropFilter } from '@tensorflow/tfjs-core/dist/ops/conv2d_backprop_filter';
import { conv2DBackpropInput } from '@tensorflow/tfjs-core/dist/ops/conv2d_backprop_input';
import { dawnGpu } from '../../src/runtime/dawn.js';
import { waitWithPolling } from '../../src/runtime/polling.js';
import type { Network } from './arch.js';

export type Tf = typeof tf;

export const BACKENDS = ['cpu', 'wasm', 'webgpu'] as const;
export type TfBackend = (typeof BACKENDS)[number];

type Pair = [number, number];
const pair = (v: number | readonly number[]): Pair => (typeof v === 'number' ? [v, v] : [v[0]!, v[1]!]);

/**
 * ∂/∂W of a convolution (NHWC, filter [kh, kw, C_in, C_out], symmetric zero padding `pad`): dW[a, b, i, o] =
 * Σ_{n, y, x} x_pad[n, y·s + a, x·s + b, i] · dy[n, y, x, o]. TF.js's conv2DBackpropFilter, except on wasm: there
 * the same sum as conv2d(xᵀ [C_in, H, W, B], dyᵀ [Ho, Wo, B, C_out], dilation s), cropped to kh × kw.
 */
export function filterGradient(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: readonly [number, number, number, number],
  strides: number | readonly number[],
  pad: number,
): tf.Tensor4D {
  if (tf.getBackend() !== 'wasm') return conv2DBackpropFilter(x, dy, [...filterShape], pair(strides), pad);
  return tf.tidy(() => {
    const xt = tf.transpose(x, [3, 1, 2, 0]);
    const dyt = tf.transpose(dy, [1, 2, 0, 3]);
    const full = tf.conv2d(xt, dyt, 1, pad, 'NHWC', pair(strides));
    const cropped = tf.slice(full, [0, 0, 0, 0], [-1, filterShape[0], filterShape[1], -1]);
    return tf.transpose(cropped, [1, 2, 0, 3]);
  });
}

/** TF.js's Conv2D gradient (gradients/Conv2D_grad.js) with `filterGradient` for the weights. */
function registerConvGradient(): void {
  tf.registerGradient({
    kernelName: tf.Conv2D,
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const { dilations, strides, pad, dataFormat } = attrs as unknown as tf.Conv2DAttrs;
      if (pair(dilations).some((d) => d !== 1) || dataFormat !== 'NHWC' || typeof pad !== 'number') {
        throw new Error('bench/tfjs: the Conv2D gradient here takes NHWC, no dilation and numeric padding');
      }
      const dy4 = dy as tf.Tensor4D;
      const shape = filter.shape as [number, number, number, number];
      return {
        x: () => conv2DBackpropInput(x.shape, dy4, filter, strides, pad, dataFormat),
        filter: () => filterGradient(x, dy4, shape, strides, pad),
      };
    },
  });
}

/**
 * Refuses a network with a max pool on wasm unless the pool's input is a relu: TF.js's wasm MaxPoolGrad sends
 * the gradient of a window whose inputs are all negative to its first input instead of its largest (pc-check.ts
 * shows it), which a relu's output never is.
 */
export function checkWasmMaxPool(backend: TfBackend, net: Network): void {
  if (backend === 'wasm' && net.layers.some((l) => l.kind === 'maxPool' && l.act !== 'relu')) {
    throw new Error(
      "TF.js's wasm backend gets max pooling's gradient wrong where a window's inputs are all negative: on wasm, " +
        "give max pools act 'relu' (or use WPC_TFJS_BACKEND / WPC_TFJS_BACKENDS webgpu or cpu)",
    );
  }
}

let webgpuLoaded = false;

/** Makes `backend` TF.js's current backend (loading it on first use) and returns TF.js. */
export async function useBackend(backend: TfBackend): Promise<Tf> {
  if (backend === 'webgpu' && !webgpuLoaded) {
    const gpu = await dawnGpu([]);
    const { globals } = await import('webgpu');
    // GPUBufferUsage and friends, which the backend reads as globals, and navigator.gpu, which it looks for.
    Object.assign(globalThis, globals);
    const nav = (globalThis as { navigator?: object }).navigator ?? {};
    Object.defineProperty(globalThis, 'navigator', { value: { ...nav, gpu }, configurable: true, writable: true });
    await import('@tensorflow/tfjs-backend-webgpu');
    webgpuLoaded = true;
  }
  if (backend === 'wasm' && tf.findBackendFactory('wasm') === null) {
    registerConvGradient();
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    // The bundle does not sit beside the package: point the backend at the package's .wasm files.
    const pkg = createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json');
    wasm.setWasmPaths(`${join(dirname(pkg), 'dist')}/`);
  }
  if (!(await tf.setBackend(backend))) throw new Error(`TF.js could not initialise its ${backend} backend`);
  await tf.ready();
  return tf;
}

/**
 * Awaits `t`'s work and everything queued before it (one in-order queue): a 1-element read. On a software
 * adapter `polling` 'timer' keeps Dawn's wait from spinning a core that lavapipe needs, as WPC's own waits do
 * (src/runtime/polling.ts), so that TF.js is timed as favourably as WPC.
 */
export async function settle(t: tf.Tensor, polling: 'spin' | 'timer' = 'spin'): Promise<void> {
  const one = tf.slice(tf.reshape(t, [-1]), 0, 1);
  await waitWithPolling(polling, () => one.data());
  one.dispose();
}
