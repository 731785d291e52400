/// <reference types="@webgpu/types" preserve="true" />
/// <reference lib="esnext.disposable" preserve="true" />
/**
 * WPC for Node: WebGPU through Dawn (the `webgpu` package), loaded on the first `init()`.
 */
import { checkSoftwareVectorBits, dawnGpu, NO_ADAPTER_HINT_NODE } from './runtime/dawn.js';
import { initFromGpu } from './init.js';
import { checkInitOptions, type InitOptions } from './runtime/options.js';
import type { Runtime } from './runtime/runtime.js';

export * from './api.js';
export { applySoftwareVectorBits, type SoftwareVectorBits } from './runtime/dawn.js';

/**
 * Creates a runtime that owns a new device: `navigator.gpu` when the host provides one, else Dawn.
 * Fails with an explanation (and, on Linux, the lavapipe install command) when there is no adapter.
 */
export async function init(options: InitOptions = {}): Promise<Runtime> {
  checkInitOptions('init', options);
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  const bits = checkSoftwareVectorBits('init', options.softwareVectorBits ?? 'auto');
  const gpu = nav?.gpu ?? (await dawnGpu(options.dawnOptions ?? [], bits));
  return initFromGpu(gpu, options, NO_ADAPTER_HINT_NODE);
}

export { DATASET_NAMES, SPLITS, loadDataset } from './data/node.js';
export type { DatasetName, LoadOptions, Split } from './data/node.js';
export { dataCacheDirectory, locateDataset } from './data/locate.js';
export type { DataSource, DatasetLocation, LocateOptions, SearchedPlace } from './data/locate.js';
export { DEFAULT_MIRRORS, WpcDownloadError, downloadDataset } from './data/download.js';
export type {
  DownloadOptions,
  DownloadProgress,
  DownloadResult,
  DownloadedFile,
  FailedAttempt,
} from './data/download.js';
export { loadCheckpoint, loadModel, saveCheckpoint, saveModel, writeImageGrid } from './io/node-files.js';
