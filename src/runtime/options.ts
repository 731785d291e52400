/**
 * The options of `init()` and `initFromDevice()`, the checks that need no device (known keys, the power
 * preference), and `TuningCheck`, the hook through which the kernels validate `options.kernels` against the
 * device once it exists: the runtime knows no kernel, so the entries hand the kernels' check in (src/init.ts).
 */
import type { AdapterSummary } from './adapter.js';
import type { SoftwareVectorBits } from './dawn.js';
import { DAWN_EXPERIMENTAL_OPTION } from './adapter.js';
import { argError, checkKnownKeys } from './errors.js';
import type { Polling } from './polling.js';

/** Operand type of the subgroup-matrix layout: `'f16'` rounds A and B to half precision (sums stay f32). */
export type MatrixOperand = 'f16' | 'f32';

/** Advanced: kernel variants, normally chosen from the adapter (CPU adapters and GPUs want different ones). */
export interface KernelTuning {
  /**
   * Register tile of the grouped layer matmuls (kernels/layer-matmul.wgsl): `wg` invocations per workgroup,
   * each computing a `tm × tn` block of outputs, or with `subgroup: true` one subgroup of `wg` lanes sharing a
   * `(tm·wg) × tn` tile through subgroupBroadcast (needs the `subgroups` feature, a fixed subgroup size equal
   * to `wg`, and `tn` a multiple of `wg`), or with `splitK: true` one subgroup of `wg` lanes computing one
   * `tm × tn` block, each lane a 1/wg share of the k sum, added with subgroupAdd (needs the same feature and
   * subgroup size, and at most 64 accumulators: for GPUs, where the PC layers' small products otherwise leave
   * most cores idle), or with `shared: true` wg = side² invocations (wg 4, 16, 64 or 256) computing a
   * `(tm·side) × (tn·side)` tile from panels staged in workgroup memory (the classic layout for large
   * products on GPUs; at most 64 accumulators). Default: `{ wg: 16, tm: 4, tn: 64, subgroup: true }` on
   * lavapipe with 16 lanes, `{ wg: 8, tm: 8, tn: 64, subgroup: true }` with 8 (tn 32 for standalone products,
   * `matmul`), `{ wg: 8, tm: 16, tn: 8 }` on other CPU adapters, `{ wg: 64, tm: 4, tn: 4 }` on GPUs (not yet
   * measured on one: `npm run bench -- tiles` compares the candidates). Given here, it applies to every kernel.
   *
   * `matrix: 'f16'` or `'f32'` (opt-in, never a default): the tensor-core path. One subgroup of `wg` lanes (the
   * adapter's fixed subgroup size) multiplies `tm × tn` subgroup matrices of the adapter's M×N×K configuration
   * with that operand type and f32 results, a `(tm·M) × (tn·N)` tile, from panels staged in workgroup memory.
   * Needs the `chromium-experimental-subgroup-matrix` feature (Dawn in Node: `dawnOptions:
   * ['enable-dawn-features=allow_unsafe_apis']`; Chrome: `--enable-unsafe-webgpu`) and a configuration with that
   * operand type and f32 results; `'f16'` also needs `shader-f16`. With `'f16'` every matmul operand
   * (activities, errors, weights) is rounded to half precision (11 significant bits, |x| ≤ 65504) before the
   * product, while sums, the epilogues and all other arithmetic stay f32: results differ from JPC's float32 by
   * about 1e-3 relative, and values beyond f16's range overflow. GPUs' f32 configurations (Apple) keep f32 operands.
   */
  tiles?: {
    wg: number;
    tm: number;
    tn: number;
    subgroup?: boolean;
    splitK?: boolean;
    shared?: boolean;
    matrix?: MatrixOperand;
  };
  /**
   * Fixed-step solves of small networks can run in a single workgroup that loops over every step itself,
   * avoiding a dispatch per stage. `'auto'` (default) uses it where WPC measured it faster; `'always'` and
   * `'never'` force the choice (for measurements).
   */
  fused?: 'auto' | 'always' | 'never';
}

export interface InitOptions {
  /** Passed to `requestAdapter`. Default: `'high-performance'`. */
  powerPreference?: GPUPowerPreference;
  /** Advanced kernel choices; see `KernelTuning`. */
  kernels?: KernelTuning;
  /**
   * Node only: how waits on the GPU poll Dawn (src/runtime/polling.ts). Default `'auto'`: a 1-ms timer on
   * software adapters, where Dawn's spinning poll would take a core from the adapter; Dawn's own spin elsewhere.
   */
  polling?: Polling;
  /**
   * Node only: options for Dawn's `create()`, e.g. `['backend=vulkan']` or `['adapter=llvmpipe']`. Ignored in
   * browsers. `backend=null` is refused: Dawn's null backend computes nothing.
   */
  dawnOptions?: readonly string[];
  /**
   * Node only: the SIMD width, in bits, that Mesa's software Vulkan driver lavapipe compiles shaders for (its
   * `LP_NATIVE_VECTOR_WIDTH`; 16 subgroup lanes at 512, 8 at 256). lavapipe reads it once per process, so it
   * applies when WPC creates Dawn, before anything else in the process did. Default `'auto'`: 512 on x86-64 CPUs
   * with AVX-512 (Linux), unless `LP_NATIVE_VECTOR_WIDTH` is set already; otherwise lavapipe's default. It sets
   * that variable in `process.env` (child processes inherit it). A hardware adapter ignores it; so do browsers.
   */
  softwareVectorBits?: SoftwareVectorBits;
}

const INIT_KEYS: readonly (keyof InitOptions)[] = [
  'powerPreference',
  'kernels',
  'polling',
  'dawnOptions',
  'softwareVectorBits',
];
export const INIT_FROM_DEVICE_KEYS: readonly (keyof InitFromDeviceOptions)[] = [
  'device',
  'kernels',
  'polling',
  'adapterInfo',
];

/**
 * `init`'s options, checked before any adapter is requested: an object with InitOptions' keys only (a typo such as
 * `{ pollling }` would otherwise be ignored; browsers accept the Node-only keys and ignore them, as documented).
 */
export function checkInitOptions(fn: string, options: unknown): InitOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    argError(fn, 'options', 'an object such as { powerPreference }', options);
  checkKnownKeys(fn, 'options', options, INIT_KEYS);
  const { powerPreference } = options as InitOptions;
  if (powerPreference !== undefined && powerPreference !== 'low-power' && powerPreference !== 'high-performance') {
    argError(fn, 'options.powerPreference', '"low-power" or "high-performance"', powerPreference);
  }
  return options as InitOptions;
}

/**
 * `options` with the register tiles `tiles`, and with Dawn's experimental features shown when they ask for subgroup
 * matrices (`matrix`): what `wpc train --tiles` and the benchmarks' `WPC_BENCH_TILES` hand to `init`.
 */
export function initOptionsWithTiles(options: InitOptions, tiles: NonNullable<KernelTuning['tiles']>): InitOptions {
  const dawnOptions =
    tiles.matrix === undefined ? options.dawnOptions : [...(options.dawnOptions ?? []), DAWN_EXPERIMENTAL_OPTION];
  return { ...options, ...(dawnOptions ? { dawnOptions } : {}), kernels: { ...options.kernels, tiles } };
}

export interface InitFromDeviceOptions {
  device: GPUDevice;
  /** Advanced kernel choices; see `KernelTuning`. */
  kernels?: KernelTuning;
  /** As `InitOptions.polling`. */
  polling?: Polling;
  /** The adapter's info if the caller has it (`adapter.info`); used to pick kernel variants. */
  adapterInfo?: GPUAdapterInfo;
}

/**
 * Validates `options.kernels` of `fn` against the device's limits and adapter and returns the tuning the runtime
 * keeps (kernels/tiles.ts, checkKernelTuning).
 */
export type TuningCheck = (
  fn: string,
  kernels: KernelTuning | undefined,
  limits: GPUSupportedLimits,
  adapter: AdapterSummary,
) => KernelTuning;
