/**
 * Readbacks: ranges of GPU buffers copied into one staging buffer in one submit and mapped once, now
 * (`runtime.read`) or later (`runtime.readLater`, so that more work can be queued before the wait).
 */
import { WpcArgumentError, WpcGpuError, argError } from './errors.js';
import { BufferUsage, MapMode } from './flags.js';
import { bufferLimit, checkFits } from './limits.js';
import { isNode, waitWithPolling } from './polling.js';
import type { BufferPool } from './pool.js';

/** A range of a buffer to read: byte offset and length, multiples of 4. */
export type Range = { buffer: GPUBuffer; byteOffset: number; byteLength: number };

/** A readback whose copy is queued; `wait` maps it. */
export interface PendingRead {
  wait(options?: { expectedMs?: number }): Promise<Float32Array[]>;
  /** How long the map itself took once `wait` stopped sleeping (about 0 if the GPU had already finished). */
  mapMs: number;
}

/** What a readback uses of its runtime. */
interface ReadContext {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly limits: GPUSupportedLimits;
  readonly polling: 'spin' | 'timer';
  readonly stats: { readbacks: number; bytesRead: number };
  submit(commandBuffers: GPUCommandBuffer[]): void;
  checkHealthy(what: string): void;
}

/**
 * Validates `ranges`, queues their copy into a pooled staging buffer (after everything submitted so far) and
 * returns the pending read; `wait()` maps it.
 */
export function queueRead(rt: ReadContext, ranges: readonly Range[]): PendingRead {
  rt.checkHealthy('read');
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
    bufferLimit(rt.limits),
    'read them in several calls',
  );
  const size = Math.max(4, total);
  const staging = rt.pool.acquire(size, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'wpc.staging');
  const encoder = rt.device.createCommandEncoder({ label: 'wpc.read' });
  let at = 0;
  for (const r of ranges) {
    if (r.byteLength > 0) encoder.copyBufferToBuffer(r.buffer, r.byteOffset, staging, at, r.byteLength);
    at += r.byteLength;
  }
  rt.submit([encoder.finish()]);
  rt.stats.readbacks++;
  rt.stats.bytesRead += total;
  let used = false;
  const pending: PendingRead = {
    mapMs: 0,
    wait: async ({ expectedMs = 0 } = {}) => {
      if (used) throw new Error('read: wait() was already called');
      used = true;
      if (isNode && rt.polling === 'spin' && expectedMs > 1)
        await new Promise((resolve) => setTimeout(resolve, expectedMs));
      const mapStart = performance.now();
      try {
        await waitWithPolling(rt.polling, () => staging.mapAsync(MapMode.READ, 0, size));
        pending.mapMs = performance.now() - mapStart;
      } catch (e) {
        rt.checkHealthy('read');
        throw new WpcGpuError(`read: mapping the staging buffer failed: ${(e as Error).message}`, 'internal');
      }
      const bytes = staging.getMappedRange(0, size).slice(0);
      staging.unmap();
      rt.pool.release(staging);
      rt.checkHealthy('read');
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
