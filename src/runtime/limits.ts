/**
 * Size checks against the device's limits, made before anything is allocated.
 *
 * Every GPU array WPC binds is one storage binding, so it can hold at most min(maxStorageBufferBindingSize,
 * maxBufferSize) bytes; other buffers (stage records, staging) at most maxBufferSize. A request past a limit
 * is refused with a WpcArgumentError that names what asked for it, the bytes and the limit — never left to
 * `createBuffer` (which reports it asynchronously as a GPU validation error) or to a host `new Float32Array`
 * (a RangeError, or gigabytes allocated first).
 */
import { WpcArgumentError } from './errors.js';

/** The largest float32: a time, step size or threshold the GPU computes with must not exceed it. */
export const F32_MAX = 3.4028234663852886e38;

/** A limit on the bytes of one buffer, and the name of the device limit it comes from. */
interface SizeLimit {
  /** Usable bytes: the limit rounded down to 16 (WPC rounds buffer sizes up to 16). */
  readonly bytes: number;
  readonly name: 'maxStorageBufferBindingSize' | 'maxBufferSize';
  /** Whether this is the limit of a storage binding (else of any buffer). */
  readonly storage: boolean;
}

type Limits = Pick<GPUSupportedLimits, 'maxStorageBufferBindingSize' | 'maxBufferSize'>;

/** The most bytes one storage buffer WPC binds whole may hold. */
export function storageLimit(limits: Limits): SizeLimit {
  const binding = limits.maxStorageBufferBindingSize < limits.maxBufferSize;
  const bytes = binding ? limits.maxStorageBufferBindingSize : limits.maxBufferSize;
  return {
    bytes: Math.floor(bytes / 16) * 16,
    name: binding ? 'maxStorageBufferBindingSize' : 'maxBufferSize',
    storage: true,
  };
}

/** The most bytes any one buffer may hold. */
export function bufferLimit(limits: Limits): SizeLimit {
  return { bytes: Math.floor(limits.maxBufferSize / 16) * 16, name: 'maxBufferSize', storage: false };
}

/** Bytes for messages: "512 B", "12.0 KiB", "128.0 MiB", "3.2 GiB", "1.5e+12 B" beyond TiB. */
function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return `${bytes} B`;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${bytes} B`;
  if (v >= 1024) return `${bytes.toExponential(2)} B`;
  return `${v.toFixed(1)} ${units[u]}`;
}

/**
 * Throws unless `bytes` fit `limit`: "`subject` needs 3.0 GiB for `what`, but this device allows at most
 * 128.0 MiB in one storage binding (maxStorageBufferBindingSize = 134217728 bytes)`hint`". `subject` starts
 * with the function's name and names the argument and its value, e.g. "makeMlp: options.width 1000000".
 * Non-finite or non-integer byte counts (overflowing products) are refused too.
 */
export function checkFits(subject: string, what: string, bytes: number, limit: SizeLimit, hint = ''): void {
  if (Number.isFinite(bytes) && bytes <= limit.bytes) return;
  throw new WpcArgumentError(
    `${subject} is too large: it needs ${formatBytes(bytes)} for ${what}, but this device allows at most ${formatBytes(limit.bytes)} ` +
      `in one ${limit.storage ? 'storage binding' : 'buffer'} (${limit.name} = ${limit.bytes} bytes)${hint ? `; ${hint}` : ''}`,
  );
}

/**
 * Throws unless `value` ≤ `cap` (a documented cap on host work): "`fn`: `arg` must be at most `cap` (`why`), got
 * `value`".
 */
export function checkCap(fn: string, arg: string, value: number, cap: number, why: string): void {
  if (value <= cap) return;
  throw new WpcArgumentError(`${fn}: ${arg} must be at most ${groupDigits(cap)} (${why}), got ${value}`);
}

/** 1234567 → "1,234,567". */
export function groupDigits(n: number): string {
  return Number.isSafeInteger(n) ? String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',') : String(n);
}
