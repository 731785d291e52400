/**
 * The runtime: one GPU device and what WPC keeps for it (buffer pool, pipeline cache, counters).
 *
 * Ownership follows TypeGPU's rule: a runtime made by `init()` owns its device and destroys it on `dispose()`;
 * one made by `initFromDevice({ device })` wraps a caller's device and never destroys it, never replaces its
 * error handlers and never pushes an error scope that outlives a call.
 */
import type { SoftwareVectorBits } from './dawn.js';
import { POLLING_MODES, type Polling, waitWithPolling } from './polling.js';
import { type KernelTiming, Profiler } from './profiler.js';
import {
  WpcArgumentError,
  WpcGpuError,
  argError,
  checkFiniteData,
  checkKnownKeys,
  checkPositiveInt,
  describe,
} from './errors.js';
import { BufferUsage, MapMode, STORAGE_USAGE } from './flags.js';
import { PipelineCache, type CompiledKernel, type KernelSpec } from './kernel.js';
import { bufferLimit, checkFits, storageLimit } from './limits.js';
import { BufferPool, checkAllocation } from './pool.js';
import { Tensor, formatShape, shapeSize, type Shape } from './tensor.js';
import {
  type MatrixOperand,
  type MatrixShape,
  SHARED_PANEL_K,
  matrixWorkgroupBytes,
  sharedPanelBytes,
  sharedSide,
} from '../kernels/index.js';

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (lavapipe, SwiftShader, WARP): kernels pick CPU-friendly variants. */
  isSoftware: boolean;
  /**
   * The subgroup size when the device has the `subgroups` feature and the adapter reports one fixed size
   * (subgroupMinSize = subgroupMaxSize), else null. Subgroup kernel variants need it.
   */
  subgroupSize: number | null;
  /**
   * The subgroup-matrix configurations (`adapterInfo.subgroupMatrixConfigs`) when the device has the
   * `chromium-experimental-subgroup-matrix` feature, else empty. The `matrix` tile layout needs one.
   */
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
  /** Whether the device has `shader-f16` (the `matrix: 'f16'` layout needs it). */
  shaderF16: boolean;
}

/** One of the adapter's subgroup-matrix configurations: componentType A and B, resultComponentType C = A·B. */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

/** The device feature behind the `matrix` tile layout (Dawn's experimental subgroup matrices). */
export const SUBGROUP_MATRIX_FEATURE = 'chromium-experimental-subgroup-matrix';

/** The `dawnOptions` entry that makes Dawn (Node) show experimental features such as subgroup matrices. */
export const DAWN_EXPERIMENTAL_OPTION = 'enable-dawn-features=allow_unsafe_apis';

/** Counters for benchmarks and tests ("no readback per inference step" is checked with these). */
export interface RuntimeStats {
  dispatches: number;
  submits: number;
  readbacks: number;
  bytesRead: number;
}

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
   * products on GPUs; at most 64 accumulators). Default: `{ wg: 16, tm: 4, tn: 64, subgroup: true }` on lavapipe with 16 lanes,
   * `{ wg: 8, tm: 8, tn: 64, subgroup: true }` with 8 (tn 32 for standalone products, `matmul`),
   * `{ wg: 8, tm: 16, tn: 8 }` on other CPU adapters, `{ wg: 64, tm: 4, tn: 4 }` on GPUs (not yet measured on
   * one: `npm run bench -- tiles` compares the candidates). Given here, it applies to every kernel.
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
const INIT_FROM_DEVICE_KEYS: readonly (keyof InitFromDeviceOptions)[] = ['device', 'kernels', 'polling', 'adapterInfo'];

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

type Range = { buffer: GPUBuffer; byteOffset: number; byteLength: number };

/** A readback whose copy is queued; `wait` maps it. */
export interface PendingRead {
  wait(options?: { expectedMs?: number }): Promise<Float32Array[]>;
  /** How long the map itself took once `wait` stopped sleeping (about 0 if the GPU had already finished). */
  mapMs: number;
}

/**
 * Learns how long GPU work takes per unit (say, per solver step) so the host can sleep instead of letting
 * Dawn busy-poll. It learns only from waits that undershot (the map still had to wait, so sleep + map time is
 * the true duration) and backs off after oversleeping, so its own sleeps cannot inflate it.
 */
export class SleepEstimator {
  private msPerUnit = 0;
  private oversleeps = 0;

  /** How long to sleep before waiting for `units` of work submitted `sinceMs` ago. */
  sleepFor(units: number, sinceMs: number): number {
    return Math.max(0, 0.9 * this.msPerUnit * units - sinceMs);
  }

  /** Feeds back one wait: `totalMs` from submit to data, `mapMs` spent in the map after waking. */
  update(units: number, totalMs: number, mapMs: number): void {
    if (units <= 0) return;
    if (mapMs > 1) {
      this.msPerUnit = totalMs / units; // undershot: the GPU was still busy when we woke
      this.oversleeps = 0;
    } else {
      // Overslept (or the work was trivial): sleep less next time, faster after repeated oversleeps, so that a
      // first estimate inflated by pipeline compilation (seconds) is forgotten within a few waits.
      this.msPerUnit *= this.oversleeps++ > 0 ? 0.5 : 0.8;
    }
  }
}

const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

function summarise(
  info: GPUAdapterInfo | undefined,
  isFallback: boolean,
  features: GPUSupportedFeatures,
): AdapterSummary {
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const description = info?.description ?? '';
  const software =
    isFallback ||
    /software|swiftshader|cpu/i.test(architecture) ||
    /llvmpipe|lavapipe|swiftshader|warp|software/i.test(`${description} ${info?.device ?? ''}`);
  const sizes = info as { subgroupMinSize?: number; subgroupMaxSize?: number } | undefined;
  const subgroupSize =
    features.has('subgroups') &&
    typeof sizes?.subgroupMinSize === 'number' &&
    sizes.subgroupMinSize > 0 &&
    sizes.subgroupMinSize === sizes.subgroupMaxSize
      ? sizes.subgroupMinSize
      : null;
  const configs = (info as { subgroupMatrixConfigs?: Iterable<SubgroupMatrixConfig> } | undefined)
    ?.subgroupMatrixConfigs;
  const subgroupMatrixConfigs =
    features.has(SUBGROUP_MATRIX_FEATURE) && configs
      ? [...configs].map(({ componentType, resultComponentType, M, N, K }) => ({
          componentType,
          resultComponentType,
          M,
          N,
          K,
        }))
      : [];
  return {
    vendor,
    architecture,
    device: info?.device ?? '',
    description,
    isSoftware: software,
    subgroupSize,
    subgroupMatrixConfigs,
    shaderF16: features.has('shader-f16'),
  };
}

export class Runtime {
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  readonly stats: RuntimeStats = { dispatches: 0, submits: 0, readbacks: 0, bytesRead: 0 };
  readonly adapter: AdapterSummary;
  readonly limits: GPUSupportedLimits;
  private disposedFlag = false;
  private persistentBytes = 0;
  /** Long-lived buffers not yet destroyed (`createStorageBuffer`); `dispose()` destroys whatever is left. */
  private readonly persistent = new Set<GPUBuffer>();
  /** Models and optimiser states made on this runtime, freed by `dispose()` (a wrapped device outlives us). */
  private readonly owned = new Set<{ dispose(): void }>();
  private lostMessage: string | undefined;
  private pendingError: GPUError | undefined;
  private readonly onError = (event: Event): void => {
    const error = (event as GPUUncapturedErrorEvent).error;
    this.pendingError ??= error;
  };

  /** Kernel choices given at init (validated), else empty: the defaults follow the adapter. */
  readonly kernels: Readonly<KernelTuning>;
  /** How waits poll Dawn in Node, `'auto'` resolved (see `InitOptions.polling`). */
  readonly polling: 'spin' | 'timer';

  /** @internal use `init()` or `initFromDevice()`. */
  constructor(
    readonly device: GPUDevice,
    readonly ownsDevice: boolean,
    adapterInfo: GPUAdapterInfo | undefined,
    isFallbackAdapter: boolean,
    kernels: KernelTuning | undefined,
    fn = 'init',
    polling: unknown = 'auto',
  ) {
    this.adapter = summarise(adapterInfo, isFallbackAdapter, device.features);
    this.limits = device.limits;
    this.kernels = checkKernelTuning(fn, kernels, device.limits, this.adapter);
    if (!POLLING_MODES.includes(polling as Polling)) {
      throw new WpcArgumentError(
        `${fn}: options.polling must be one of "auto", "spin", "timer", got ${describe(polling)}`,
      );
    }
    this.polling =
      polling === 'auto' ? (isNode && this.adapter.isSoftware ? 'timer' : 'spin') : (polling as 'spin' | 'timer');
    this.pool = new BufferPool(device);
    this.pipelines = new PipelineCache(device, this.polling);
    device.addEventListener('uncapturederror', this.onError);
    void device.lost.then((info) => {
      if (!this.disposedFlag) this.lostMessage = `${info.reason}: ${info.message}`;
    });
  }

  get disposed(): boolean {
    return this.disposedFlag;
  }

  /** Throws if the device was lost, the runtime disposed, or the GPU reported an error since the last check. */
  checkHealthy(what = 'WPC'): void {
    if (this.disposedFlag) throw new WpcGpuError(`${what}: the runtime has been disposed`, 'device-lost');
    if (this.lostMessage)
      throw new WpcGpuError(
        `${what}: the GPU device was lost (${this.lostMessage}); everything on it is gone — call init() again for a new device and reload your model (e.g. from a checkpoint)`,
        'device-lost',
      );
    const error = this.pendingError;
    if (error) {
      this.pendingError = undefined;
      const kind = error.constructor.name.includes('OutOfMemory')
        ? 'out-of-memory'
        : error.constructor.name.includes('Internal')
          ? 'internal'
          : 'validation';
      throw new WpcGpuError(
        `${what}: the GPU reported ${kind === 'out-of-memory' ? 'running out of memory' : `a ${kind} error`}: ${error.message}`,
        kind,
      );
    }
  }

  kernel(spec: KernelSpec): Promise<CompiledKernel> {
    this.checkHealthy(`kernel ${spec.name}`);
    return this.pipelines.get(spec);
  }

  /**
   * Runs `create` inside validation and out-of-memory error scopes and throws what they caught, so that an
   * allocation that is too large fails at the call that made it, with a message saying so.
   */
  async scoped<T>(what: string, create: () => T): Promise<T> {
    this.checkHealthy(what);
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    // A GPU error the scopes caught replaces an exception `create` threw (it is the cause).
    let outcome: { value: T } | { error: unknown };
    try {
      outcome = { value: create() };
    } catch (error) {
      outcome = { error };
    }
    // Both scopes are popped before any await, so that concurrent calls never pop each other's scopes.
    const scopes = [this.device.popErrorScope(), this.device.popErrorScope()];
    const [validation, oom] = await waitWithPolling(this.polling, () => Promise.all(scopes));
    if (oom) throw new WpcGpuError(`${what}: the GPU ran out of memory: ${oom.message}`, 'out-of-memory');
    if (validation) throw new WpcGpuError(`${what}: ${validation.message}`, 'validation');
    if ('error' in outcome) throw outcome.error;
    return outcome.value;
  }

  /** Allocates a long-lived storage buffer (not pooled). */
  createStorageBuffer(byteSize: number, label: string, extraUsage = 0): GPUBuffer {
    this.checkHealthy(label);
    checkAllocation(label, byteSize, STORAGE_USAGE | extraUsage, this.limits);
    const size = Math.max(16, Math.ceil(byteSize / 16) * 16);
    const buffer = this.device.createBuffer({ size, usage: STORAGE_USAGE | extraUsage, label });
    // Count it until it is destroyed, wherever that happens (model, workspace and optimiser disposal, or this
    // runtime's dispose(), which destroys every one still alive: their owners may free them only later).
    this.persistentBytes += size;
    this.persistent.add(buffer);
    const destroy = buffer.destroy.bind(buffer);
    let live = true;
    buffer.destroy = () => {
      if (live) {
        live = false;
        this.persistentBytes -= size;
        this.persistent.delete(buffer);
      }
      destroy();
    };
    return buffer;
  }

  /**
   * GPU memory WPC holds on this device, in bytes: `persistent` (models, gradients, optimiser moments,
   * workspaces), `inUse` (pooled buffers handed out: tensors, scratch) and `pooled` (free buffers kept for
   * reuse, at most 256 MiB). Job tables and uniforms (a few KiB per workspace) and buffers the caller owns
   * (`runtime.wrap`) are not counted. After `dispose()` every count is 0.
   */
  memoryStats(): { persistentBytes: number; inUseBytes: number; pooledBytes: number; totalBytes: number } {
    const { inUseBytes, pooledBytes } = this.pool.stats;
    return {
      persistentBytes: this.persistentBytes,
      inUseBytes,
      pooledBytes,
      totalBytes: this.persistentBytes + inUseBytes + pooledBytes,
    };
  }

  /** Uploads `data` (row-major) into a new pooled tensor of the given shape. Refuses NaN and infinities. */
  tensor(data: Float32Array | readonly number[], shape: Shape): Tensor {
    const fn = 'runtime.tensor';
    this.checkHealthy(fn);
    checkShape(fn, shape);
    if (!(data instanceof Float32Array) && !Array.isArray(data)) {
      throw new WpcArgumentError(`${fn}: data must be a Float32Array or an array of numbers, got ${describe(data)}`);
    }
    const n = shapeSize(shape);
    if (data.length !== n) {
      throw new WpcArgumentError(`${fn}: data has ${data.length} elements but shape ${formatShape(shape)} needs ${n}`);
    }
    checkFiniteData(fn, 'data', data);
    checkShapeFits(fn, shape, this.limits);
    const t = this.empty(shape);
    const array = data instanceof Float32Array ? data : Float32Array.from(data);
    this.device.queue.writeBuffer(t.buffer, 0, array.buffer, array.byteOffset, array.byteLength);
    return t;
  }

  /** @internal registers something `dispose()` must free. */
  track(resource: { dispose(): void }): void {
    this.owned.add(resource);
  }

  /** @internal */
  untrack(resource: { dispose(): void }): void {
    this.owned.delete(resource);
  }

  /** A new pooled tensor filled with zeros. */
  zeros(shape: Shape): Tensor {
    this.checkHealthy('runtime.zeros');
    checkShape('runtime.zeros', shape);
    checkShapeFits('runtime.zeros', shape, this.limits);
    const t = this.empty(shape);
    const encoder = this.device.createCommandEncoder({ label: 'wpc.zeros' });
    encoder.clearBuffer(t.buffer, 0, Math.ceil(t.byteLength / 4) * 4);
    this.submit([encoder.finish()]);
    return t;
  }

  /** @internal a pooled tensor with unspecified contents. */
  empty(shape: Shape): Tensor {
    this.checkHealthy('runtime.empty');
    checkShape('runtime.empty', shape);
    checkShapeFits('runtime.empty', shape, this.limits);
    const n = shapeSize(shape);
    const buffer = this.pool.acquire(Math.max(4, n * 4), STORAGE_USAGE, 'wpc.tensor');
    return new Tensor(this, buffer, 0, shape, true);
  }

  /**
   * A tensor over a buffer the caller owns (zero-copy), e.g. data another WebGPU program produced on this
   * runtime's device. The buffer needs STORAGE and COPY_SRC usage and must hold the shape's floats from
   * `byteOffset` (a multiple of 4). WPC reads it where a tensor is read and never writes to or destroys it.
   */
  wrap(buffer: GPUBuffer, shape: Shape, byteOffset = 0): Tensor {
    const fn = 'runtime.wrap';
    this.checkHealthy(fn);
    checkShape(fn, shape);
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % 4 !== 0) {
      throw new WpcArgumentError(`${fn}: byteOffset must be a non-negative multiple of 4, got ${describe(byteOffset)}`);
    }
    checkShapeFits(fn, shape, this.limits);
    checkCallerBuffer(
      fn,
      'buffer',
      buffer,
      byteOffset,
      shapeSize(shape) * 4,
      BufferUsage.STORAGE | BufferUsage.COPY_SRC,
    );
    return new Tensor(this, buffer, byteOffset, shape, false);
  }

  /** @internal a view of `[byteOffset, byteOffset + 4·size)` of a buffer owned elsewhere. */
  view(buffer: GPUBuffer, byteOffset: number, shape: Shape): Tensor {
    return new Tensor(this, buffer, byteOffset, shape, false);
  }

  /** @internal the running profile, if any (the Recorder times each dispatch while it is set). */
  profiler: Profiler | undefined;

  /**
   * Starts timing every dispatch on the GPU (needs the `timestamp-query` feature; up to `maxDispatches`, at most 2048). Each
   * dispatch then gets its own compute pass, so profiled work is a little slower than usual.
   */
  startProfile(maxDispatches = 2048): void {
    this.checkHealthy('runtime.startProfile');
    checkPositiveInt('runtime.startProfile', 'maxDispatches', maxDispatches, 2048); // WebGPU's 4096 queries per set
    if (this.profiler)
      throw new WpcArgumentError('runtime.startProfile: a profile is already running; call stopProfile() first');
    this.profiler = new Profiler(this.device, maxDispatches, this.polling);
  }

  /** Ends the profile: GPU milliseconds per kernel over the dispatches recorded since startProfile, slowest first. */
  async stopProfile(): Promise<{ kernels: KernelTiming[]; untimedDispatches: number }> {
    const profiler = this.profiler;
    if (!profiler) throw new WpcArgumentError('runtime.stopProfile: no profile is running (call startProfile() first)');
    this.profiler = undefined;
    return { kernels: await profiler.results(), untimedDispatches: profiler.dropped };
  }

  submit(commandBuffers: GPUCommandBuffer[]): void {
    this.device.queue.submit(commandBuffers);
    this.stats.submits++;
  }

  /**
   * Reads back several ranges in one copy, one submit and one map. `expectedMs` is how long the GPU work queued
   * so far is expected to take: in Node the wait first sleeps that long, because Dawn busy-polls the JS thread
   * while a map is pending and would otherwise take a CPU core from a software adapter (measured: 1.85 s vs 1.19 s).
   */
  async read(ranges: readonly Range[], { expectedMs = 0 }: { expectedMs?: number } = {}): Promise<Float32Array[]> {
    return this.readLater(ranges).wait({ expectedMs });
  }

  /**
   * Queues the copy of `ranges` now (after everything submitted so far) and maps it only when `wait()` is
   * called, so more GPU work can be submitted in between: a solver polls its state this way while the next
   * chunk of steps is already running.
   */
  readLater(ranges: readonly Range[]): PendingRead {
    this.checkHealthy('read');
    if (!Array.isArray(ranges))
      argError('runtime.read', 'ranges', 'an array of { buffer, byteOffset, byteLength }', ranges);
    ranges.forEach((r: Range, i) => {
      const b = (r as Partial<Range> | null)?.buffer as GPUBuffer | undefined;
      if (typeof r !== 'object' || r === null || typeof b !== 'object' || b === null || typeof b.size !== 'number') {
        argError('runtime.read', `ranges[${i}].buffer`, 'a GPUBuffer', b);
      }
      for (const key of ['byteOffset', 'byteLength'] as const) {
        const v = r[key];
        if (!Number.isSafeInteger(v) || v < 0 || v % 4 !== 0)
          argError('runtime.read', `ranges[${i}].${key}`, 'a non-negative multiple of 4', v);
      }
      if (r.byteOffset + r.byteLength > b!.size) {
        throw new WpcArgumentError(
          `runtime.read: ranges[${i}] ends at byte ${r.byteOffset + r.byteLength}, past the buffer's ${b!.size} bytes`,
        );
      }
    });
    const total = ranges.reduce((s, r) => s + r.byteLength, 0);
    checkFits(
      `runtime.read: ranges (${ranges.length})`,
      'the staging buffer they are copied into',
      total,
      bufferLimit(this.limits),
      'read them in several calls',
    );
    const size = Math.max(4, total);
    const staging = this.pool.acquire(size, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'wpc.staging');
    const encoder = this.device.createCommandEncoder({ label: 'wpc.read' });
    let at = 0;
    for (const r of ranges) {
      if (r.byteLength > 0) encoder.copyBufferToBuffer(r.buffer, r.byteOffset, staging, at, r.byteLength);
      at += r.byteLength;
    }
    this.submit([encoder.finish()]);
    this.stats.readbacks++;
    this.stats.bytesRead += total;
    let used = false;
    const pending: PendingRead = {
      mapMs: 0,
      wait: async ({ expectedMs = 0 } = {}) => {
        if (used) throw new Error('read: wait() was already called');
        used = true;
        if (isNode && this.polling === 'spin' && expectedMs > 1)
          await new Promise((resolve) => setTimeout(resolve, expectedMs));
        const mapStart = performance.now();
        try {
          await waitWithPolling(this.polling, () => staging.mapAsync(MapMode.READ, 0, size));
          pending.mapMs = performance.now() - mapStart;
        } catch (e) {
          this.checkHealthy('read');
          throw new WpcGpuError(`read: mapping the staging buffer failed: ${(e as Error).message}`, 'internal');
        }
        const bytes = staging.getMappedRange(0, size).slice(0);
        staging.unmap();
        this.pool.release(staging);
        this.checkHealthy('read');
        const out: Float32Array[] = [];
        let offset = 0;
        for (const r of ranges) {
          out.push(new Float32Array(bytes, offset, r.byteLength / 4));
          offset += r.byteLength;
        }
        return out;
      },
    };
    return pending;
  }

  /**
   * Waits until the GPU has finished all submitted work. With spin polling in Node (see `InitOptions.polling`)
   * it sleeps `expectedMs` first, so that Dawn's spinning poll does not start before the work is nearly done;
   * timer polling needs no such estimate and ignores it. Returns how long the wait took after any sleep.
   */
  async finish({ expectedMs = 0 }: { expectedMs?: number } = {}): Promise<{ waitedMs: number }> {
    this.checkHealthy('finish');
    if (isNode && this.polling === 'spin' && expectedMs > 1)
      await new Promise((resolve) => setTimeout(resolve, expectedMs));
    const start = performance.now();
    await waitWithPolling(this.polling, () => this.device.queue.onSubmittedWorkDone());
    const waitedMs = performance.now() - start;
    this.checkHealthy('finish');
    return { waitedMs };
  }

  /**
   * Releases what WPC allocated on the device: models, optimiser states, workspaces and pooled buffers (tensors
   * made here become unusable). Destroys the device only if this runtime created it (`init()`); a device passed
   * to `initFromDevice()` stays usable by its owner. Idempotent.
   */
  dispose(): void {
    if (this.disposedFlag) return;
    for (const resource of [...this.owned]) resource.dispose();
    this.owned.clear();
    this.disposedFlag = true;
    // Workspaces are freed once their queued work is done (asynchronously): free them now.
    for (const buffer of [...this.persistent]) buffer.destroy();
    this.pool.destroyAll();
    this.device.removeEventListener('uncapturederror', this.onError);
    if (this.ownsDevice) this.device.destroy();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function checkKernelTuning(
  fn: string,
  kernels: KernelTuning | undefined,
  limits: GPUSupportedLimits,
  adapter: AdapterSummary,
): KernelTuning {
  if (kernels === undefined) return {};
  if (typeof kernels !== 'object' || kernels === null)
    throw new WpcArgumentError(`${fn}: options.kernels must be an object, got ${describe(kernels)}`);
  checkKnownKeys(fn, 'options.kernels', kernels, ['tiles', 'fused']);
  const fused = kernels.fused;
  if (fused !== undefined && fused !== 'auto' && fused !== 'always' && fused !== 'never') {
    throw new WpcArgumentError(
      `${fn}: options.kernels.fused must be one of "auto", "always", "never", got ${describe(fused)}`,
    );
  }
  const withFused = fused === undefined ? {} : { fused };
  const t = kernels.tiles;
  if (t === undefined) return withFused;
  if (typeof t !== 'object' || t === null)
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles must be { wg, tm, tn, subgroup?, splitK?, shared?, matrix? }, got ${describe(t)}`,
    );
  checkKnownKeys(fn, 'options.kernels.tiles', t, ['wg', 'tm', 'tn', 'subgroup', 'splitK', 'shared', 'matrix']);
  const maxWg = Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);
  const wg = checkPositiveInt(fn, 'options.kernels.tiles.wg', t.wg, maxWg);
  const tm = checkPositiveInt(fn, 'options.kernels.tiles.tm', t.tm, 32);
  const layouts = { subgroup: t.subgroup ?? false, splitK: t.splitK ?? false, shared: t.shared ?? false };
  for (const [name, on] of Object.entries(layouts)) {
    if (typeof on !== 'boolean')
      throw new WpcArgumentError(`${fn}: options.kernels.tiles.${name} must be a boolean, got ${describe(on)}`);
  }
  const matrix = t.matrix;
  if (matrix !== undefined && matrix !== 'f16' && matrix !== 'f32') {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.matrix must be "f16" or "f32" (the operand type), got ${describe(matrix)}`,
    );
  }
  const chosen = [
    ...Object.keys(layouts).filter((name) => layouts[name as keyof typeof layouts]),
    ...(matrix ? ['matrix'] : []),
  ];
  if (chosen.length > 1)
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles can have one of subgroup, splitK, shared and matrix, got ${chosen.join(' and ')}`,
    );
  const { subgroup, splitK, shared } = layouts;
  const tn = checkPositiveInt(fn, 'options.kernels.tiles.tn', t.tn, subgroup ? 128 : 32);
  if (subgroup || splitK) {
    const name = subgroup ? 'subgroup' : 'splitK';
    if (adapter.subgroupSize === null) {
      throw new WpcArgumentError(
        `${fn}: options.kernels.tiles.${name} needs the "subgroups" feature and a fixed subgroup size, which this adapter does not report`,
      );
    }
    if (wg !== adapter.subgroupSize) {
      throw new WpcArgumentError(
        `${fn}: options.kernels.tiles.wg must equal the subgroup size ${adapter.subgroupSize} when ${name} is true, got ${wg}`,
      );
    }
  }
  if (subgroup) {
    if (tn % wg !== 0)
      throw new WpcArgumentError(
        `${fn}: options.kernels.tiles.tn must be a multiple of wg (${wg}) when subgroup is true, got ${tn}`,
      );
    if (tm * tn > 512)
      throw new WpcArgumentError(
        `${fn}: options.kernels.tiles.tm × tn must be at most 512 accumulators per lane, got ${tm} × ${tn} = ${tm * tn}`,
      );
  }
  if ((splitK || shared) && tm * tn > 64) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.tm × tn must be at most 64 accumulators when ${splitK ? 'splitK' : 'shared'} is true, got ${tm} × ${tn} = ${tm * tn}`,
    );
  }
  if (shared) {
    if (![4, 16, 64, 256].includes(wg))
      throw new WpcArgumentError(
        `${fn}: options.kernels.tiles.wg must be 4, 16, 64 or 256 (a square grid) when shared is true, got ${wg}`,
      );
    const side = sharedSide({ wg, tm, tn });
    const bytes = sharedPanelBytes({ wg, tm, tn });
    if (bytes > limits.maxComputeWorkgroupStorageSize) {
      throw new WpcArgumentError(
        `${fn}: options.kernels.tiles with shared: true need (tm + tn)·${side}·${SHARED_PANEL_K}·4 = ${bytes} bytes of workgroup memory, more than this device's ${limits.maxComputeWorkgroupStorageSize}`,
      );
    }
  }
  if (matrix) {
    const matrixShape = checkMatrixTiles(fn, { wg, tm, tn, matrix }, limits, adapter);
    return { ...withFused, tiles: Object.freeze({ wg, tm, tn, matrix, matrixShape }) };
  }
  const layout = subgroup ? { subgroup } : splitK ? { splitK } : shared ? { shared } : {};
  return { ...withFused, tiles: Object.freeze({ wg, tm, tn, ...layout }) };
}

/** Validates subgroup-matrix tiles against the device and returns the configuration's shape they will use. */
function checkMatrixTiles(
  fn: string,
  tiles: { wg: number; tm: number; tn: number; matrix: MatrixOperand },
  limits: GPUSupportedLimits,
  adapter: AdapterSummary,
): MatrixShape {
  const { wg, tm, tn, matrix } = tiles;
  const configs = adapter.subgroupMatrixConfigs;
  if (configs.length === 0) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.matrix needs the "${SUBGROUP_MATRIX_FEATURE}" feature with at least one configuration, which this device does not have (Dawn in Node exposes it with dawnOptions ['${DAWN_EXPERIMENTAL_OPTION}'] where the driver has VK_KHR_cooperative_matrix or Metal simdgroup matrices; Chrome with --enable-unsafe-webgpu; initFromDevice needs adapterInfo: adapter.info)`,
    );
  }
  const config = configs.find((c) => c.componentType === matrix && c.resultComponentType === 'f32');
  if (!config) {
    const have = configs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`).join(', ');
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.matrix "${matrix}" needs a subgroup-matrix configuration with ${matrix} operands and f32 results; this adapter has ${have}`,
    );
  }
  if (matrix === 'f16' && !adapter.shaderF16) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.matrix "f16" needs the "shader-f16" feature, which this device does not have`,
    );
  }
  if (adapter.subgroupSize === null) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.matrix needs a fixed subgroup size, which this adapter does not report`,
    );
  }
  if (wg !== adapter.subgroupSize) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.wg must equal the subgroup size ${adapter.subgroupSize} when matrix is set, got ${wg}`,
    );
  }
  if (adapter.isSoftware && /llvmpipe/.test(adapter.description) && adapter.subgroupSize !== 8) {
    // Mesa 26.1's lavapipe segfaults compiling cooperative-matrix shaders for 16-lane subgroups.
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.matrix on lavapipe needs 8-lane subgroups (init's softwareVectorBits: 256), this device has ${adapter.subgroupSize}`,
    );
  }
  if (tm * tn > 16) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles.tm × tn must be at most 16 subgroup matrices when matrix is set, got ${tm} × ${tn} = ${tm * tn}`,
    );
  }
  const shape = { m: config.M, n: config.N, k: config.K };
  const bytes = matrixWorkgroupBytes({ ...tiles, matrixShape: shape });
  if (bytes > limits.maxComputeWorkgroupStorageSize) {
    throw new WpcArgumentError(
      `${fn}: options.kernels.tiles with matrix need ${bytes} bytes of workgroup memory (${tm}×${tn} matrices of ${config.M}×${config.N}), more than this device's ${limits.maxComputeWorkgroupStorageSize}`,
    );
  }
  return Object.freeze(shape);
}

function checkShape(fn: string, shape: unknown): asserts shape is Shape {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 1)) {
    throw new WpcArgumentError(
      `${fn}: shape must be an array of positive integers, got ${Array.isArray(shape) ? JSON.stringify(shape) : describe(shape)}`,
    );
  }
}

/** A tensor of `shape` is one storage binding: its 4·Π shape bytes must fit the device's limit. */
function checkShapeFits(fn: string, shape: Shape, limits: GPUSupportedLimits): void {
  checkFits(`${fn}: shape ${formatShape(shape)}`, 'one f32 tensor', shapeSize(shape) * 4, storageLimit(limits));
}

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

/** Creates an owning runtime from a `GPU` object (`navigator.gpu`, or Dawn's in Node). */
export async function initFromGpu(gpu: GPU, options: InitOptions, noAdapterHint: string): Promise<Runtime> {
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
    return new Runtime(device, true, info, isFallback, options.kernels, 'init', options.polling ?? 'auto');
  } catch (e) {
    device.destroy();
    throw e;
  }
}

/**
 * Wraps a device the caller created (e.g. an app that renders with WebGPU). WPC allocates its own buffers on
 * it and frees them on `dispose()`, but never destroys the device. Kernel variants are chosen from
 * `adapterInfo` when given.
 */
export function initFromDevice(options: InitFromDeviceOptions): Runtime {
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
  return new Runtime(
    device as GPUDevice,
    false,
    info,
    false,
    options.kernels,
    'initFromDevice',
    options.polling ?? 'auto',
  );
}

const USAGE_NAMES: [number, string][] = [
  [BufferUsage.STORAGE, 'STORAGE'],
  [BufferUsage.COPY_SRC, 'COPY_SRC'],
  [BufferUsage.COPY_DST, 'COPY_DST'],
];

/**
 * Validates a buffer handed in by the caller: a GPUBuffer, unmapped, with the `usage` bits WPC needs, and
 * holding `byteLength` bytes from `byteOffset`. (Whether it belongs to the right device only the GPU can tell:
 * a foreign buffer fails at its first use, with a validation error.)
 */
export function checkCallerBuffer(
  fn: string,
  arg: string,
  buffer: unknown,
  byteOffset: number,
  byteLength: number,
  usage: number,
): GPUBuffer {
  const b = buffer as GPUBuffer | null;
  if (
    typeof b !== 'object' ||
    b === null ||
    typeof b.size !== 'number' ||
    typeof b.usage !== 'number' ||
    typeof b.destroy !== 'function'
  ) {
    throw new WpcArgumentError(`${fn}: ${arg} must be a GPUBuffer, got ${describe(buffer)}`);
  }
  const missing = USAGE_NAMES.filter(([bit]) => (usage & bit) !== 0 && (b.usage & bit) === 0).map(([, name]) => name);
  if (missing.length > 0) {
    throw new WpcArgumentError(
      `${fn}: ${arg} needs GPUBufferUsage ${missing.join(' | ')} (create it with those usage flags), got usage 0x${b.usage.toString(16)}`,
    );
  }
  if (b.mapState !== undefined && b.mapState !== 'unmapped')
    throw new WpcArgumentError(`${fn}: ${arg} is ${b.mapState}; unmap it first`);
  if (byteOffset + byteLength > b.size) {
    throw new WpcArgumentError(
      `${fn}: ${arg} holds ${b.size} bytes, but ${byteLength} bytes from offset ${byteOffset} are needed`,
    );
  }
  return b;
}
