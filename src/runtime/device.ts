/**
 * Getting a device for a runtime: requesting an adapter and a device with the features and limits WPC uses
 * (`init()`), or wrapping a device the caller made (`initFromDevice()`).
 */
import { SUBGROUP_MATRIX_FEATURE, summariseAdapter } from './adapter.js';
import { WpcArgumentError, WpcGpuError, argError, checkKnownKeys, describe } from './errors.js';
import { INIT_FROM_DEVICE_KEYS, type InitFromDeviceOptions, type InitOptions, type TuningCheck } from './options.js';
import { Runtime } from './runtime.js';

/** Optional features WPC uses when the adapter has them. */
const OPTIONAL_FEATURES = ['timestamp-query', 'subgroups', 'shader-f16', SUBGROUP_MATRIX_FEATURE] as GPUFeatureName[];

/** The limits WPC raises to the adapter's maximum (the defaults, e.g. 128 MiB bindings, are too small). */
const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

/**
 * Creates an owning runtime from a `GPU` object (`navigator.gpu`, or Dawn's in Node): requests the adapter and a
 * device with WPC's features and limits, then checks `options.kernels` with `checkTuning` against it.
 */
export async function createRuntime(
  gpu: GPU,
  options: InitOptions,
  noAdapterHint: string,
  checkTuning: TuningCheck,
): Promise<Runtime> {
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  } catch (e) {
    // Dawn rejects instead of returning null when, e.g., dawnOptions name an adapter that does not exist.
    throw new WpcGpuError(
      `WPC: no WebGPU adapter is available (${(e as Error).message.trim().replace(/\s*\n\s*/g, '; ')}). ${noAdapterHint}`,
      'no-adapter',
    );
  }
  if (!adapter) {
    throw new WpcGpuError(`WPC: no WebGPU adapter is available. ${noAdapterHint}`, 'no-adapter');
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) {
    const value = adapter.limits[name];
    if (typeof value === 'number') requiredLimits[name] = value;
  }
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ label: 'wpc', requiredLimits, requiredFeatures });
  const info = adapter.info as GPUAdapterInfo | undefined;
  const isFallback = (info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter === true;
  try {
    const kernels = checkTuning(
      'init',
      options.kernels,
      device.limits,
      summariseAdapter(info, isFallback, device.features),
    );
    return new Runtime(device, true, info, isFallback, kernels, 'init', options.polling ?? 'auto');
  } catch (e) {
    device.destroy();
    throw e;
  }
}

/**
 * Wraps a device the caller created (e.g. an app that renders with WebGPU). WPC allocates its own buffers on
 * it and frees them on `dispose()`, but never destroys the device. Kernel variants are chosen from
 * `adapterInfo` when given; `checkTuning` checks `options.kernels` against the device.
 */
export function wrapDevice(options: InitFromDeviceOptions, checkTuning: TuningCheck): Runtime {
  const fn = 'initFromDevice';
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    argError(fn, 'options', 'an object such as { device }', options);
  checkKnownKeys(fn, 'options', options, INIT_FROM_DEVICE_KEYS);
  const device = options.device as unknown;
  if (
    !device ||
    typeof (device as GPUDevice).createBuffer !== 'function' ||
    typeof (device as GPUDevice).queue !== 'object'
  ) {
    throw new WpcArgumentError(`initFromDevice: options.device must be a GPUDevice, got ${describe(device)}`);
  }
  const info = options.adapterInfo ?? (device as { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  const { limits, features } = device as GPUDevice;
  const kernels = checkTuning(fn, options.kernels, limits, summariseAdapter(info, false, features));
  return new Runtime(device as GPUDevice, false, info, false, kernels, fn, options.polling ?? 'auto');
}
