/**
 * IDX file parsing (the container format of MNIST and Fashion-MNIST).
 *
 * Browser-safe: works on bytes the caller has already read and decompressed. `./idx-reader.ts` reads a file
 * chunk by chunk with these header checks, so that it can bound what it reads (and inflates) by what the header
 * declares; `./node.ts` (files) and `./browser.ts` (Blobs, bytes, URLs) feed it.
 *
 * Layout (all integers 32-bit big-endian): bytes 0–1 are zero, byte 2 is the element type code, byte 3 the
 * number of dimensions d; then d sizes; then the elements, row-major. Only unsigned bytes (type 0x08) are
 * supported, which is all MNIST-style data needs.
 */

import { WpcArgumentError, WpcError, argError, printable } from '../runtime/errors.js';

export { printable };

/**
 * A problem with a data file or folder: missing, unreadable, not a regular file, larger than allowed, or bad
 * contents. The message starts with the file's name (or, when no file is involved yet, the function's).
 */
export class IdxError extends Error {
  override name = 'IdxError';
  constructor(
    message: string,
    /** The file (or name) the bad data came from. */
    readonly file: string,
  ) {
    super(message);
  }
}
WpcError.members.push(IdxError);

/** A parsed IDX array of unsigned bytes. */
export interface IdxArray {
  /** The name given to `parseIdx` (usually the file path), kept so later checks can name the file. */
  readonly name: string;
  /** Sizes of each dimension, outermost first (e.g. `[60000, 28, 28]`). */
  readonly dims: number[];
  /** The elements, row-major; a view into the bytes given to `parseIdx`, not a copy. */
  readonly data: Uint8Array;
}

/** IDX element type codes (byte 2 of the magic number), for error messages. */
const TYPE_NAMES: Readonly<Record<number, string>> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

/** The magic number of an unsigned-byte IDX file with `dims` dimensions (0x00000803 for images). */
export function idxMagic(dims: number): number {
  return 0x0800 + dims;
}

function hex32(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

function hexBytes(bytes: Uint8Array, count: number): string {
  return Array.from(bytes.subarray(0, count), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** What an IDX header declares (see `readIdxHeader`). */
export interface IdxHeader {
  /** Sizes of each dimension, outermost first, each in [0, 2^32). */
  readonly dims: number[];
  /** Bytes of the header: 4 + 4 × number of dimensions. */
  readonly headerBytes: number;
  /** Elements (bytes) of data: the product of `dims`, exact as a bigint however large. */
  readonly elements: bigint;
  /** Bytes of the whole file (header + data), exact as a bigint. */
  readonly totalBytes: bigint;
  /** The shape for messages, e.g. `"60000×28×28"`. */
  readonly shape: string;
}

/**
 * Reads the header at the start of an IDX file from its first bytes, so a reader can bound what it reads
 * before it reads (or decompresses) the rest.
 * @param bytes the first bytes of the (decompressed) file; may be just a prefix.
 * @param name the file's name or path; every error message starts with it.
 * @returns the header, or `undefined` when `bytes` is too short to hold it yet (read more and call again).
 * @throws IdxError for a bad magic number, an element type other than unsigned byte, or zero dimensions.
 */
export function readIdxHeader(bytes: Uint8Array, name: string): IdxHeader | undefined {
  if (!(bytes instanceof Uint8Array)) argError('readIdxHeader', 'bytes', 'a Uint8Array', bytes);
  if (typeof name !== 'string') argError('readIdxHeader', 'name', "a string (the file's name, for messages)", name);
  if (bytes.length < 2) return undefined;
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const shown = Math.min(bytes.length, 4);
    const magic = bytes.length >= 4 ? ` ${hex32(new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0))}` : '';
    throw idxError(
      name,
      `not an IDX file: bad magic number${magic} (first bytes ${hexBytes(bytes, shown)}); ` +
        `an IDX file starts with two zero bytes, e.g. 0x00000803 for images or 0x00000801 for labels` +
        (bytes[0] === 0x1f && bytes[1] === 0x8b ? ' (this looks like gzip data: decompress it first)' : ''),
    );
  }
  if (bytes.length < 4) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  const type = bytes[2]!;
  const ndims = bytes[3]!;
  if (type !== 0x08) {
    const known = TYPE_NAMES[type];
    throw idxError(
      name,
      `unsupported IDX element type 0x${type.toString(16).padStart(2, '0')}` +
        `${known ? ` (${known})` : ' (not a valid IDX type)'} in magic number ${hex32(magic)}; ` +
        `only 0x08 (unsigned byte) is supported`,
    );
  }
  if (ndims === 0) {
    throw idxError(name, `IDX magic number ${hex32(magic)} declares zero dimensions; expected at least 1`);
  }
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) return undefined;
  const dims: number[] = [];
  let elements = 1n;
  for (let i = 0; i < ndims; i++) {
    const size = view.getUint32(4 + 4 * i);
    dims.push(size);
    elements *= BigInt(size);
  }
  const shape = ndims <= 8 ? dims.join('×') : `${dims.slice(0, 8).join('×')}×… (${ndims} dimensions)`;
  return { dims, headerBytes, elements, totalBytes: BigInt(headerBytes) + elements, shape };
}

/** A byte count for messages: exact up to 30 digits (any three 32-bit sizes), else rounded, e.g. "≈ 1.16e+77". */
function formatCount(n: bigint | number): string {
  const digits = n.toString();
  return digits.length <= 30 ? digits : `≈ ${digits[0]}.${digits.slice(1, 3)}e+${digits.length - 1}`;
}

/**
 * The sizes of a header in words, for messages: "header says 5×28×28 unsigned bytes, so expected 3936 bytes
 * (16-byte header + 3920)", noting sizes of 2^31 or more, which read as negative in signed 32-bit readers.
 */
export function describeIdxHeader(header: IdxHeader): string {
  const negative = [...new Set(header.dims.filter((d) => d >= 2 ** 31))];
  return (
    `header says ${header.shape} unsigned bytes, so expected ${formatCount(header.totalBytes)} bytes ` +
    `(${header.headerBytes}-byte header + ${formatCount(header.elements)})` +
    (negative.length > 0
      ? ` (${negative.length > 3 ? 'sizes such as ' : 'sizes '}` +
        `${negative
          .slice(0, 3)
          .map((d) => `${d} = ${d - 2 ** 32}`)
          .join(', ')} as signed 32-bit integers)`
      : '')
  );
}

/** The message of a file whose length does not match its header; `length` is the file's length in bytes. */
export function idxLengthMismatch(header: IdxHeader, length: number): string {
  const expected = header.totalBytes;
  return BigInt(length) < expected
    ? `truncated IDX data: ${describeIdxHeader(header)}, got ${length}`
    : `trailing garbage after IDX data: ${describeIdxHeader(header)}, got ${length} (${formatCount(BigInt(length) - expected)} extra)`;
}

/** An IdxError about the file `name` whose message is "<name>: <what>", with the name made printable. */
export function idxError(name: string, what: string): IdxError {
  return new IdxError(`${printable(name)}: ${what}`, name);
}

/**
 * Parses an unsigned-byte IDX file and checks that its length matches its header exactly.
 * @param bytes the whole decompressed file.
 * @param name the file's name or path; every error message starts with it.
 * @throws IdxError for a bad magic number, an unsupported element type, zero dimensions, or a length that does
 *   not match the header (truncated, or trailing bytes).
 */
export function parseIdx(bytes: Uint8Array, name: string): IdxArray {
  if (!(bytes instanceof Uint8Array)) {
    throw new WpcArgumentError(`parseIdx: bytes must be a Uint8Array, got ${typeof bytes}`);
  }
  if (typeof name !== 'string')
    throw new WpcArgumentError(`parseIdx: name must be a string (the file's name, for messages), got ${typeof name}`);
  const header = readIdxHeader(bytes, name);
  if (header === undefined) {
    if (bytes.length < 4)
      throw idxError(name, `not an IDX file: only ${bytes.length} bytes, too short for the 4-byte magic number`);
    const ndims = bytes[3]!;
    throw idxError(
      name,
      `truncated IDX header: ${ndims} dimensions need a ${4 + 4 * ndims}-byte header, but the file has only ${bytes.length} bytes`,
    );
  }
  if (BigInt(bytes.length) !== header.totalBytes) throw idxError(name, idxLengthMismatch(header, bytes.length));
  // A plain Uint8Array view even when `bytes` is a Node Buffer, whose methods (e.g. `slice`) behave differently.
  return {
    name,
    dims: header.dims,
    data: new Uint8Array(bytes.buffer, bytes.byteOffset + header.headerBytes, Number(header.elements)),
  };
}
