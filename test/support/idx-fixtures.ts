// IDX files for the data tests: well-formed files of any shape, headers alone, and gzip bombs (a valid gzip
// stream that inflates to far more than it declares) built without ever holding the inflated bytes.
import { constants, crc32, deflateRawSync } from 'node:zlib';

/** An unsigned-byte IDX file with the given dims; `data` defaults to 0, 1, 2, ... (mod 256). */
export function idxBytes(
  dims: number[],
  data?: ArrayLike<number>,
  magic = 0x0800 + dims.length,
): Uint8Array<ArrayBuffer> {
  const n = dims.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(4 + 4 * dims.length + n);
  const view = new DataView(out.buffer);
  view.setUint32(0, magic);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  for (let i = 0; i < n; i++) out[4 + 4 * dims.length + i] = data ? data[i]! : i % 256;
  return out;
}

/** Just the header of an unsigned-byte IDX file declaring `dims` (each taken modulo 2^32). */
export function idxHeader(dims: number[], magic = 0x0800 + dims.length): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(4 + 4 * dims.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, magic);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d >>> 0));
  return out;
}

const MiB = 2 ** 20;

/**
 * One gzip member whose data is `prefix` followed by `zeroBytes` zero bytes (a multiple of 1 MiB), with a
 * correct CRC-32 and length: about 1 KiB per inflated MiB. Each MiB of zeros is deflated once with a full
 * flush (byte-aligned, no references back), so the same compressed block can be repeated.
 */
export function gzipBomb(prefix: Uint8Array, zeroBytes: number): Uint8Array<ArrayBuffer> {
  if (zeroBytes % MiB !== 0) throw new Error('gzipBomb: zeroBytes must be a multiple of 1 MiB');
  const zeros = Buffer.alloc(MiB);
  const head = deflateRawSync(prefix, { finishFlush: constants.Z_FULL_FLUSH });
  const block = deflateRawSync(zeros, { finishFlush: constants.Z_FULL_FLUSH, level: 9 });
  const end = deflateRawSync(Buffer.alloc(0)); // the final (empty) block
  let crc = crc32(prefix);
  for (let i = 0; i < zeroBytes / MiB; i++) crc = crc32(zeros, crc);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE((prefix.length + zeroBytes) % 2 ** 32, 4);
  const gzipHeader = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
  return new Uint8Array(
    Buffer.concat([gzipHeader, head, ...new Array<Buffer>(zeroBytes / MiB).fill(block), end, trailer]),
  );
}

/**
 * Runs `work` while sampling the process's memory every few milliseconds; returns its outcome and the largest
 * growth over the level before it started, in bytes, of the resident set or of the live ArrayBuffers (which,
 * unlike the resident set, drop again when garbage is collected, so a big allocation shows even when earlier
 * tests left the resident set high). A refused gzip bomb must keep this far below the bomb's inflated size.
 */
export async function peakMemoryGrowth<T>(
  work: () => Promise<T>,
): Promise<{ outcome: PromiseSettledResult<T>; growth: number }> {
  const before = process.memoryUsage();
  let growth = 0;
  const sample = () => {
    const now = process.memoryUsage();
    growth = Math.max(growth, now.rss - before.rss, now.arrayBuffers - before.arrayBuffers);
  };
  const timer = setInterval(sample, 2);
  let outcome: PromiseSettledResult<T>;
  try {
    outcome = { status: 'fulfilled', value: await work() };
  } catch (reason) {
    outcome = { status: 'rejected', reason };
  } finally {
    clearInterval(timer);
  }
  sample();
  return { outcome, growth };
}

/** Characters that must never appear in an error message: control characters, and U+FFFD from undecodable bytes. */
export const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\ufffd]/;
