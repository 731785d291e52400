/**
 * Per-dispatch GPU timing with timestamp queries (adapters with the `timestamp-query` feature). While a
 * profile is running, the Recorder gives every dispatch its own compute pass with begin/end timestamps — so
 * profiled work runs a little slower than usual — and `stop()` resolves them into milliseconds per kernel.
 * For benchmarks and tuning (bench/profile.ts), not for production loops.
 */
import { waitWithPolling } from './polling.js';
import { WpcArgumentError } from './errors.js';
import { BufferUsage, MapMode } from './flags.js';

export interface KernelTiming {
  /** Kernel name (its descriptor's `name`). */
  kernel: string;
  dispatches: number;
  /** Sum of the dispatches' GPU times. */
  ms: number;
}

export class Profiler {
  private readonly querySet: GPUQuerySet;
  private readonly names: string[] = [];
  /** Dispatches that did not fit in the query set (not timed). */
  dropped = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly capacity: number,
    private readonly polling: 'spin' | 'timer' = 'spin',
  ) {
    if (!device.features.has('timestamp-query')) {
      throw new WpcArgumentError(
        'runtime.startProfile: this adapter has no "timestamp-query" feature, so dispatches cannot be timed',
      );
    }
    this.querySet = device.createQuerySet({ type: 'timestamp', count: 2 * capacity, label: 'wpc.profile' });
  }

  /** The timestampWrites of the next dispatch's pass, or undefined once the query set is full. */
  next(kernel: string): GPUComputePassTimestampWrites | undefined {
    if (this.names.length >= this.capacity) {
      this.dropped++;
      return undefined;
    }
    const at = 2 * this.names.length;
    this.names.push(kernel);
    return { querySet: this.querySet, beginningOfPassWriteIndex: at, endOfPassWriteIndex: at + 1 };
  }

  /** Resolves every timestamp (after the work recorded so far) and sums the times per kernel, slowest first. */
  async results(): Promise<KernelTiming[]> {
    const n = 2 * this.names.length;
    if (n === 0) {
      this.querySet.destroy();
      return [];
    }
    const resolve = this.device.createBuffer({ size: n * 8, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC });
    const read = this.device.createBuffer({ size: n * 8, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    const encoder = this.device.createCommandEncoder({ label: 'wpc.profile' });
    encoder.resolveQuerySet(this.querySet, 0, n, resolve, 0);
    encoder.copyBufferToBuffer(resolve, 0, read, 0, n * 8);
    this.device.queue.submit([encoder.finish()]);
    try {
      await waitWithPolling(this.polling, () => read.mapAsync(MapMode.READ));
      const t = new BigUint64Array(read.getMappedRange().slice(0));
      read.unmap();
      const byKernel = new Map<string, KernelTiming>();
      this.names.forEach((kernel, i) => {
        const ns = t[2 * i + 1]! > t[2 * i]! ? Number(t[2 * i + 1]! - t[2 * i]!) : 0;
        const e = byKernel.get(kernel) ?? { kernel, dispatches: 0, ms: 0 };
        e.dispatches++;
        e.ms += ns / 1e6;
        byKernel.set(kernel, e);
      });
      return [...byKernel.values()].sort((a, b) => b.ms - a.ms);
    } finally {
      resolve.destroy();
      read.destroy();
      this.querySet.destroy();
    }
  }
}
