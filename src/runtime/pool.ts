/**
 * A pool of GPU buffers keyed by (rounded size, usage).
 *
 * Transient tensors (results handed to the caller, readback staging) come from here, so that a training loop
 * reaches a steady state with no `createBuffer` per step. Reusing a released buffer right away is safe
 * because every use goes through the same queue in order: later writes cannot overtake earlier reads.
 */

import { WpcArgumentError } from './errors.js';
import { BufferUsage } from './flags.js';

/**
 * Refuses a buffer the device cannot allocate, naming the bytes asked for and the limit (createBuffer would only
 * report it later, asynchronously, as a validation error). Returns the limit that applies: storage buffers are
 * bound whole, so for them it is the smaller of maxStorageBufferBindingSize and maxBufferSize.
 */
export function checkAllocation(label: string, byteSize: number, usage: number, limits: GPUSupportedLimits): number {
  const storage = (usage & BufferUsage.STORAGE) !== 0;
  const [limit, limitName] =
    storage && limits.maxStorageBufferBindingSize < limits.maxBufferSize
      ? [limits.maxStorageBufferBindingSize, 'maxStorageBufferBindingSize']
      : [limits.maxBufferSize, 'maxBufferSize'];
  if (byteSize > limit) {
    throw new WpcArgumentError(
      `${label}: needs ${(byteSize / 2 ** 20).toFixed(1)} MiB in one ${storage ? 'storage binding' : 'buffer'}, but this adapter allows at most ` +
        `${(limit / 2 ** 20).toFixed(1)} MiB (${limitName}: ${limit} bytes; asked for ${byteSize}); use a smaller batch or network`,
    );
  }
  return limit;
}

/** Sizes are rounded up to a power of two (at least 256 B) below 16 MiB and to whole MiB above. */
function bucketSize(byteSize: number): number {
  const min = 256;
  if (byteSize <= min) return min;
  if (byteSize <= 16 * 2 ** 20) return 2 ** Math.ceil(Math.log2(byteSize));
  return Math.ceil(byteSize / 2 ** 20) * 2 ** 20;
}

interface PoolStats {
  /** Buffers created since the pool was made. */
  created: number;
  /** Acquisitions served from the free lists. */
  reused: number;
  /** Buffers currently handed out. */
  inUse: number;
  /** Bytes of the buffers currently handed out. */
  inUseBytes: number;
  /** Bytes sitting in the free lists. */
  pooledBytes: number;
}

export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly sizes = new WeakMap<GPUBuffer, { key: string; size: number }>();
  /** Buffers handed out and not yet released (destroyed by `destroyAll`, e.g. tensors never disposed). */
  private readonly live = new Set<GPUBuffer>();
  readonly stats: PoolStats = { created: 0, reused: 0, inUse: 0, inUseBytes: 0, pooledBytes: 0 };

  /** @param maxPooledBytes free buffers beyond this many bytes are destroyed instead of kept. */
  constructor(
    private readonly device: GPUDevice,
    private readonly maxPooledBytes = 256 * 2 ** 20,
  ) {}

  acquire(byteSize: number, usage: number, label = 'wpc.pooled'): GPUBuffer {
    const limit = checkAllocation(label, byteSize, usage, this.device.limits);
    const size = Math.min(bucketSize(byteSize), Math.max(byteSize, Math.floor(limit / 4) * 4));
    const key = `${size}:${usage}`;
    const list = this.free.get(key);
    const reused = list?.pop();
    this.stats.inUse++;
    this.stats.inUseBytes += size;
    if (reused) {
      this.stats.reused++;
      this.stats.pooledBytes -= size;
      this.live.add(reused);
      return reused;
    }
    const buffer = this.device.createBuffer({ size, usage, label });
    this.live.add(buffer);
    this.stats.created++;
    this.sizes.set(buffer, { key, size });
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const info = this.sizes.get(buffer);
    if (!info) throw new Error('BufferPool.release: this buffer did not come from this pool');
    if (!this.live.delete(buffer)) return; // already released, or destroyed by destroyAll
    this.stats.inUse--;
    this.stats.inUseBytes -= info.size;
    if (this.stats.pooledBytes + info.size > this.maxPooledBytes) {
      buffer.destroy();
      return;
    }
    let list = this.free.get(info.key);
    if (!list) this.free.set(info.key, (list = []));
    list.push(buffer);
    this.stats.pooledBytes += info.size;
  }

  /** Destroys every buffer, free or handed out (the runtime's dispose: nothing may use them afterwards). */
  destroyAll(): void {
    this.trim();
    for (const b of this.live) b.destroy();
    this.live.clear();
    this.stats.inUse = 0;
    this.stats.inUseBytes = 0;
  }

  /** Destroys every pooled (free) buffer. Buffers still handed out stay valid. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.stats.pooledBytes = 0;
  }
}
