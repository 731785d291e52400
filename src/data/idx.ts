/**
 * IDX file parsing (the container format of MNIST and Fashion-MNIST).
 *
 * Browser-safe: works on bytes the caller has already read and decompressed, so the same code serves
 * `fetch` in a browser and `node:fs` + `node:zlib` in Node (see `./node.ts`).
 *
 * Layout (all integers 32-bit big-endian): bytes 0–1 are zero, byte 2 is the element type code, byte 3 the
 * number of dimensions d; then d sizes; then the elements, row-major. Only unsigned bytes (type 0x08) are
 * supported, which is all MNIST-style data needs.
 */

import { WpcArgumentError, WpcError } from '../runtime/errors.js';

/** A problem with the contents of a data file; the message starts with the file's name. */
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
  if (typeof name !== 'string') throw new WpcArgumentError(`parseIdx: name must be a string (the file's name, for messages), got ${typeof name}`);
  const fail = (what: string): never => {
    throw new IdxError(`${name}: ${what}`, name);
  };
  if (bytes.length < 4) {
    fail(`not an IDX file: only ${bytes.length} bytes, too short for the 4-byte magic number`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    fail(
      `not an IDX file: bad magic number ${hex32(magic)} (first bytes ${hexBytes(bytes, 4)}); ` +
        `an IDX file starts with two zero bytes, e.g. 0x00000803 for images or 0x00000801 for labels` +
        (bytes[0] === 0x1f && bytes[1] === 0x8b ? ' (this looks like gzip data: decompress it first)' : ''),
    );
  }
  const type = bytes[2]!;
  const ndims = bytes[3]!;
  if (type !== 0x08) {
    const known = TYPE_NAMES[type];
    fail(
      `unsupported IDX element type 0x${type.toString(16).padStart(2, '0')}` +
        `${known ? ` (${known})` : ' (not a valid IDX type)'} in magic number ${hex32(magic)}; ` +
        `only 0x08 (unsigned byte) is supported`,
    );
  }
  if (ndims === 0) {
    fail(`IDX magic number ${hex32(magic)} declares zero dimensions; expected at least 1`);
  }
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    fail(
      `truncated IDX header: ${ndims} dimensions need a ${headerBytes}-byte header, but the file has only ` +
        `${bytes.length} bytes`,
    );
  }
  const dims: number[] = [];
  let elements = 1;
  for (let i = 0; i < ndims; i++) {
    const size = view.getUint32(4 + 4 * i);
    dims.push(size);
    elements *= size; // exact while below 2^53, far beyond any array we could hold
  }
  const expected = headerBytes + elements;
  if (bytes.length !== expected) {
    const shape = dims.join('×');
    fail(
      bytes.length < expected
        ? `truncated IDX data: header says ${shape} unsigned bytes, so expected ${expected} bytes ` +
            `(${headerBytes}-byte header + ${elements}), got ${bytes.length}`
        : `trailing garbage after IDX data: header says ${shape} unsigned bytes, so expected ${expected} bytes ` +
            `(${headerBytes}-byte header + ${elements}), got ${bytes.length} (${bytes.length - expected} extra)`,
    );
  }
  // A plain Uint8Array view even when `bytes` is a Node Buffer, whose methods (e.g. `slice`) behave differently.
  return { name, dims, data: new Uint8Array(bytes.buffer, bytes.byteOffset + headerBytes, elements) };
}
