/**
 * The runtime: one GPU device and what WPC keeps for it (buffer pool, pipeline cache, counters), and the tensors
 * it hands out. `Tensor` is defined here rather than in tensor.ts because the two name each other in the public
 * API (`runtime.tensor()` returns a Tensor, `tensor.runtime` is its Runtime): one module, no import circle.
 *
 * Ownership follows TypeGPU's rule: a runtime made by `init()` owns its device and destroys it on `dispose()`;
 * one made by `initFromDevice({ device })` wraps a caller's device and never destroys it, never replaces its
 * error handlers and never pushes an error scope that outlives a call.
 *
 * A tensor is either *pooled* (it owns a buffer from the runtime's pool and gives it back on `dispose()`), or a
 * *view* of memory owned by something else (a model's parameters, a solver's workspace): disposing a view does
 * nothing to that memory. Reading a tensor is always explicit and asynchronous (`toArray()`, `item()`).
 */
import { type AdapterSummary, summariseAdapter } from './adapter.js';
import { checkCallerBuffer, checkShape, checkShapeFits } from './buffers.js';
import { WpcArgumentError, WpcGpuError, checkFiniteData, checkPositiveInt, describe } from './errors.js';
import { BufferUsage, STORAGE_USAGE } from './flags.js';
import { type CompiledKernel, type KernelSpec, PipelineCache } from './kernel.js';
import { BufferPool, checkAllocation } from './pool.js';
import type { KernelTuning } from './options.js';
import { POLLING_MODES, type Polling, isNode, waitWithPolling } from './polling.js';
import { type KernelTiming, Profiler } from './profiler.js';
import { type PendingRead, type Range, queueRead } from './readback.js';
import { type Shape, formatShape, shapeSize } from './shape.js';

/** Counters for benchmarks and tests ("no readback per inference step" is checked with these). */
export interface RuntimeStats {
  dispatches: number;
  submits: number;
  readbacks: number;
  bytesRead: number;
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
    this.adapter = summariseAdapter(adapterInfo, isFallbackAdapter, device.features);
    this.limits = device.limits;
    this.kernels = kernels ?? {};
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
   * Starts timing every dispatch on the GPU (needs the `timestamp-query` feature; up to `maxDispatches`, at most
   * 2048). Each dispatch then gets its own compute pass, so profiled work is a little slower than usual.
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
   * so far is expected to take: with spin polling in Node the wait first sleeps that long, because Dawn busy-polls
   * the JS thread while a map is pending and would otherwise take a CPU core from a software adapter.
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
    return queueRead(this, ranges);
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

// A tensor the program forgot to dispose gives its buffer back when it is garbage-collected.
const leaked = new FinalizationRegistry<{ runtime: Runtime; buffer: GPUBuffer }>(({ runtime, buffer }) => {
  if (!runtime.disposed) runtime.pool.release(buffer);
});

export class Tensor {
  readonly shape: Shape;
  readonly size: number;
  private disposedFlag = false;

  /** @internal use `runtime.tensor(...)`, `runtime.zeros(...)` or a function that returns tensors. */
  constructor(
    readonly runtime: Runtime,
    private readonly gpuBuffer: GPUBuffer,
    /** Where the data starts in `buffer`, in bytes (a multiple of 4). */
    readonly byteOffset: number,
    shape: Shape,
    readonly owned: boolean,
  ) {
    this.shape = Object.freeze([...shape]);
    this.size = shapeSize(shape);
    if (owned) leaked.register(this, { runtime, buffer: gpuBuffer }, this);
  }

  /** The underlying buffer (shared by views); the data occupies `[byteOffset, byteOffset + byteLength)`. */
  get buffer(): GPUBuffer {
    this.assertAlive('buffer');
    return this.gpuBuffer;
  }

  get byteLength(): number {
    return this.size * 4;
  }

  get disposed(): boolean {
    return this.disposedFlag;
  }

  /** Copies the data to the CPU (one readback). */
  async toArray(): Promise<Float32Array> {
    this.assertAlive('toArray');
    const [data] = await this.runtime.read([
      { buffer: this.gpuBuffer, byteOffset: this.byteOffset, byteLength: this.byteLength },
    ]);
    return data!;
  }

  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new WpcArgumentError(
        `Tensor.item: the tensor must have exactly one element, got shape ${formatShape(this.shape)}`,
      );
    }
    return (await this.toArray())[0]!;
  }

  /** Gives a pooled tensor's memory back to the runtime; a no-op for views. Idempotent. */
  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    if (this.owned) {
      leaked.unregister(this);
      if (!this.runtime.disposed) this.runtime.pool.release(this.gpuBuffer);
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private assertAlive(what: string): void {
    if (this.disposedFlag) throw new WpcArgumentError(`Tensor.${what}: the tensor has been disposed`);
  }

  toString(): string {
    return `Tensor(${formatShape(this.shape)}${this.owned ? '' : ', view'})`;
  }
}
