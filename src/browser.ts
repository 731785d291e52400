/// <reference types="@webgpu/types" preserve="true" />
/// <reference lib="esnext.disposable" preserve="true" />
/**
 * WPC for browsers (and any host with `navigator.gpu`). Never loads Dawn.
 */
import { WpcGpuError } from './runtime/errors.js';
import { initFromGpu } from './init.js';
import { checkInitOptions, type InitOptions } from './runtime/options.js';
import type { Runtime } from './runtime/runtime.js';

export * from './api.js';

const NO_ADAPTER_HINT_BROWSER =
  'This browser exposes no WebGPU adapter: use a browser with WebGPU enabled (Chrome/Edge 113+, Safari 26+, ' +
  'Firefox 141+ on Windows), serve the page from https:// or http://localhost (WebGPU needs a secure context), ' +
  'and check that hardware acceleration is on.';

/** Creates a runtime that owns a new device from `navigator.gpu`. */
export async function init(options: InitOptions = {}): Promise<Runtime> {
  checkInitOptions('init', options);
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) throw new WpcGpuError(`WPC: navigator.gpu is missing. ${NO_ADAPTER_HINT_BROWSER}`, 'no-adapter');
  return initFromGpu(gpu, options, NO_ADAPTER_HINT_BROWSER);
}

export { IDX_FILES, datasetFromIdx, fetchDataset } from './data/browser.js';
export type { DatasetFromIdxOptions, IdxPair, IdxSource } from './data/browser.js';
