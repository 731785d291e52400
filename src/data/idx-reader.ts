/**
 * Bounded reading of one IDX file, gzip-compressed or not, from a stream of byte chunks.
 *
 * Browser-safe (web streams and DecompressionStream, which Node has too): `./node.ts` streams a file handle into
 * it, `./browser.ts` a Blob, bytes or a fetch body. Memory and work stay bounded whatever the input: the header
 * (the first 4 + 4·d bytes) says exactly how long the file is, so the output buffer is allocated once at that
 * size, a header that declares more than `maxBytes` is refused before anything else is read, and reading (and
 * inflating) stops at the first byte past what the header declares. A gzip bomb therefore costs at most the
 * declared size plus one decompressed chunk, never its inflated size.
 */

import { argError } from '../runtime/errors.js';
import {
  IdxError,
  describeIdxHeader,
  idxError,
  idxLengthMismatch,
  parseIdx,
  printable,
  readIdxHeader,
  type IdxArray,
  type IdxHeader,
} from './idx.js';

/**
 * Default bound on one decompressed IDX file, header included: 256 MiB, about 5.7 times the largest file of the
 * datasets WPC ships loaders for (MNIST's and Fashion-MNIST's training images, 16 + 60000·784 = 47,040,016
 * bytes). Its pixels as a float32 dataset take 1 GiB, about what a browser tab can hold.
 */
export const MAX_IDX_BYTES = 2 ** 28;

/** The largest `maxBytes` accepted: 2^31 − 1, so every size and offset stays a small integer on every platform. */
export const MAX_IDX_BYTES_CEILING = 2 ** 31 - 1;

/**
 * Largest raw (compressed) input read for a file of at most `maxBytes` decompressed bytes: gzip never grows
 * data by more than 5 bytes per 16 KiB stored block plus its header and trailer, so 0.1% + 64 KiB of slack
 * admits every genuine file, while junk appended after the compressed data cannot make the reader run on.
 */
export function gzipSizeLimit(maxBytes: number): number {
  return maxBytes + Math.ceil(maxBytes / 1024) + 65536;
}

/** Options of `readIdxStream`. */
interface IdxStreamOptions {
  /** Largest decompressed file accepted, header included, in bytes: an integer in [1, 2^31 − 1]. */
  maxBytes: number;
  /** Where the limit comes from, for messages, e.g. "the size of the MNIST test images file". */
  limitReason: string;
  /** The raw source's length when known before reading (a file's or Blob's size); unknown (a download) if omitted. */
  sourceBytes?: number | undefined;
  /** Stops reading (with the signal's reason) at the next chunk, e.g. when the other file of a dataset failed. */
  signal?: AbortSignal | undefined;
}

/** The number of bytes that were decompressed (or read) before the reader stopped; for tests and messages. */
export interface IdxReadStats {
  /** Decompressed (or, for an uncompressed file, read) bytes handed to the IDX assembler. */
  produced: number;
  /** Raw bytes read from the source. */
  raw: number;
}

/**
 * Reads one IDX file from `source`, undoing gzip when the data starts with gzip's magic bytes (1f 8b).
 *
 * Checked after the first chunk, before the rest is read: the raw size (when known) against `maxBytes` for an
 * uncompressed file (then against the header's exact length), or against `gzipSizeLimit(maxBytes)` for a gzip
 * file; the header's declared length against `maxBytes`. While reading, raw bytes past `gzipSizeLimit(maxBytes)`
 * and decompressed bytes past the header's length stop the reader at once. The source is cancelled on every
 * failure.
 * @param source the file's bytes, in chunks of any size.
 * @param name the file's name or path: every error message starts with it.
 * @param options `maxBytes`, `limitReason` (both required), `sourceBytes`, `signal`.
 * @param stats optional counters, filled in as the reader goes (also when it fails).
 * @throws IdxError for anything wrong with the data; the signal's reason when aborted.
 */
export async function readIdxStream(
  source: ReadableStream<Uint8Array>,
  name: string,
  options: IdxStreamOptions,
  stats: IdxReadStats = { produced: 0, raw: 0 },
): Promise<IdxArray> {
  const fn = 'readIdxStream';
  if (typeof ReadableStream === 'undefined' || !(source instanceof ReadableStream))
    argError(fn, 'source', 'a ReadableStream', source);
  if (typeof name !== 'string' || name === '') argError(fn, 'name', 'a non-empty string', name);
  const { maxBytes, limitReason, sourceBytes, signal } = options;
  if (!Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > MAX_IDX_BYTES_CEILING) {
    argError(fn, 'options.maxBytes', `an integer in [1, ${MAX_IDX_BYTES_CEILING}]`, maxBytes);
  }
  if (sourceBytes !== undefined && !(Number.isSafeInteger(sourceBytes) && sourceBytes >= 0)) {
    argError(fn, 'options.sourceBytes', 'a non-negative integer', sourceBytes);
  }
  const limit = `the limit of ${maxBytes} bytes (${limitReason})`;
  const rawLimit = gzipSizeLimit(maxBytes);

  const raw = source.getReader();
  /** Set when reading the source itself failed or was stopped, so a decompression error is not blamed for it. */
  let readFailure: unknown;
  const readRaw = async (): Promise<ReadableStreamReadResult<Uint8Array>> => {
    try {
      if (signal?.aborted) throw signal.reason;
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await raw.read();
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        throw idxError(name, `cannot read it (${printable((err as Error)?.message ?? String(err))})`);
      }
      if (!result.done) {
        if (!(result.value instanceof Uint8Array))
          throw idxError(name, `the source gave ${typeof result.value} chunks, not bytes`);
        stats.raw += result.value.byteLength;
        if (stats.raw > rawLimit) {
          throw idxError(
            name,
            `the file is larger than ${rawLimit} bytes, more than an IDX file within ${limit} can be, even gzip-compressed; reading stopped there`,
          );
        }
      }
      return result;
    } catch (err) {
      readFailure ??= err;
      throw err;
    }
  };

  try {
    // The first two bytes say whether it is gzip (one chunk is read for them, whatever the file's size).
    const first: Uint8Array[] = [];
    let have = 0;
    let ended = false;
    while (have < 2) {
      const r = await readRaw();
      if (r.done) {
        ended = true;
        break;
      }
      if (r.value.byteLength > 0) {
        first.push(r.value);
        have += r.value.byteLength;
      }
    }
    const byteAt = (i: number) => (i === 0 ? first[0]?.[0] : first[0]!.byteLength > 1 ? first[0]![1] : first[1]?.[0]);
    const gzip = have >= 2 && byteAt(0) === 0x1f && byteAt(1) === 0x8b;

    if (!gzip) {
      if (sourceBytes !== undefined && sourceBytes > maxBytes)
        throw idxError(name, `the file is ${sourceBytes} bytes, more than ${limit}`);
      const assembler = new IdxAssembler(name, maxBytes, limit, sourceBytes, stats);
      try {
        for (const chunk of first) assembler.push(chunk);
        while (!ended) {
          const r = await readRaw();
          if (r.done) break;
          assembler.push(r.value);
        }
        return assembler.finish();
      } catch (err) {
        // A `.gz` name on plain data is fine (browsers sometimes decompress on download and keep the name), but
        // when the data is not IDX either (an HTML error page, say), say that it is not gzip as well.
        if (err instanceof IdxError && err !== readFailure && /\.gz$/i.test(name)) {
          throw new IdxError(`${err.message} (the file is not gzip-compressed either)`, err.file);
        }
        throw err;
      }
    }

    if (sourceBytes !== undefined && sourceBytes > rawLimit) {
      throw idxError(
        name,
        `the file is ${sourceBytes} bytes, more than an IDX file within ${limit} can be, even gzip-compressed`,
      );
    }
    if (typeof DecompressionStream === 'undefined') {
      throw idxError(name, 'is gzip-compressed and this platform has no DecompressionStream; decompress it first');
    }
    let next = 0;
    const compressed = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          if (next < first.length) {
            controller.enqueue(first[next++]!);
            return;
          }
          const r = ended ? { done: true as const, value: undefined } : await readRaw();
          if (r.done) controller.close();
          else controller.enqueue(r.value);
        },
        cancel: (reason) => raw.cancel(reason),
      },
      { highWaterMark: 0 },
    );
    const inflated = compressed
      .pipeThrough(new DecompressionStream('gzip') as unknown as ReadableWritablePair<Uint8Array, Uint8Array>)
      .getReader();
    const assembler = new IdxAssembler(name, maxBytes, limit, undefined, stats);
    try {
      for (;;) {
        if (signal?.aborted) throw signal.reason;
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await inflated.read();
        } catch (err) {
          if (readFailure !== undefined) throw readFailure;
          throw idxError(
            name,
            `corrupt or truncated gzip data (${printable((err as Error)?.message ?? String(err))}); replace the file with a fresh copy`,
          );
        }
        if (r.done) break;
        assembler.push(r.value);
      }
      return assembler.finish();
    } catch (err) {
      await inflated.cancel(err).catch(() => undefined);
      throw err;
    }
  } catch (err) {
    await raw.cancel(err).catch(() => undefined);
    throw err;
  }
}

/**
 * Collects the chunks of one decompressed IDX file into a buffer of exactly the size its header declares,
 * refusing a header over the limit, a file that does not match a known length, and any byte past the end.
 */
class IdxAssembler {
  /** The first bytes, until the header is complete (4 + 4·255 bytes at most). */
  private readonly head = new Uint8Array(4 + 4 * 255);
  private headLength = 0;
  private header: IdxHeader | undefined;
  private out: Uint8Array | undefined;
  private written = 0;

  constructor(
    private readonly name: string,
    private readonly maxBytes: number,
    private readonly limit: string,
    /** The file's exact length when known (an uncompressed file's size). */
    private readonly fileBytes: number | undefined,
    private readonly stats: IdxReadStats,
  ) {}

  push(chunk: Uint8Array): void {
    this.stats.produced += chunk.byteLength;
    if (this.out !== undefined) {
      this.append(chunk);
      return;
    }
    const take = Math.min(chunk.byteLength, this.head.length - this.headLength);
    this.head.set(chunk.subarray(0, take), this.headLength);
    this.headLength += take;
    const header = readIdxHeader(this.head.subarray(0, this.headLength), this.name);
    if (header === undefined) return; // the head buffer holds the longest header, so all of `chunk` was taken
    if (header.totalBytes > BigInt(this.maxBytes)) {
      throw idxError(this.name, `IDX ${describeIdxHeader(header)}: more than ${this.limit}; nothing more was read`);
    }
    if (this.fileBytes !== undefined && BigInt(this.fileBytes) !== header.totalBytes) {
      throw idxError(this.name, idxLengthMismatch(header, this.fileBytes));
    }
    const total = Number(header.totalBytes);
    try {
      this.out = new Uint8Array(total);
    } catch {
      throw idxError(
        this.name,
        `cannot allocate the ${total} bytes its IDX header declares (${header.shape}); the platform is out of memory`,
      );
    }
    this.header = header;
    this.append(this.head.subarray(0, this.headLength));
    this.append(chunk.subarray(take));
  }

  private append(bytes: Uint8Array): void {
    const out = this.out!;
    if (this.written + bytes.byteLength > out.length) {
      throw idxError(
        this.name,
        `trailing garbage after IDX data: ${describeIdxHeader(this.header!)}, but the data goes on; ` +
          `reading stopped at ${this.stats.produced} bytes, the rest was not read`,
      );
    }
    out.set(bytes, this.written);
    this.written += bytes.byteLength;
  }

  /** The parsed file, once the source has ended. */
  finish(): IdxArray {
    if (this.out === undefined) return parseIdx(this.head.subarray(0, this.headLength), this.name); // throws: too short
    if (this.written < this.out.length) throw idxError(this.name, idxLengthMismatch(this.header!, this.written));
    return parseIdx(this.out, this.name);
  }
}
