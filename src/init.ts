/**
 * Creating a runtime from options: the runtime room requests or wraps the device, and the kernels room checks
 * the kernel tuning (`options.kernels`) against it, so that the runtime itself knows no kernel. The entries
 * (node.ts, browser.ts) and api.ts export these.
 */
import { checkKernelTuning } from './kernels/tiles.js';
import { createRuntime, wrapDevice } from './runtime/device.js';
import type { InitFromDeviceOptions, InitOptions } from './runtime/options.js';
import type { Runtime } from './runtime/runtime.js';

/** Creates an owning runtime from a `GPU` object (`navigator.gpu`, or Dawn's in Node). */
export function initFromGpu(gpu: GPU, options: InitOptions, noAdapterHint: string): Promise<Runtime> {
  return createRuntime(gpu, options, noAdapterHint, checkKernelTuning);
}

/**
 * Wraps a device the caller created (e.g. an app that renders with WebGPU). WPC allocates its own buffers on
 * it and frees them on `dispose()`, but never destroys the device. Kernel variants are chosen from
 * `adapterInfo` when given.
 */
export function initFromDevice(options: InitFromDeviceOptions): Runtime {
  return wrapDevice(options, checkKernelTuning);
}
