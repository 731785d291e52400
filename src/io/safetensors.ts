/**
 * The safetensors container (https://huggingface.co/docs/safetensors), browser-safe: an 8-byte little-endian
 * header length N, N bytes of JSON — `{"__metadata__": {string: string}, name: {dtype, shape, data_offsets}}` —
 * then the tensors' bytes, little-endian, `data_offsets` relative to the end of the header. Python reads it
 * with `safetensors.numpy.load_file` (or torch, jax, …).
 *
 * WPC's files carry a CRC-32C of the whole file in the metadata key `wpc.crc32c`, written first in the header so
 * that it sits at a fixed place: the header starts `{"__metadata__":{"wpc.crc32c":"xxxxxxxx"` and the checksum is
 * that of every byte of the file, with those eight hex digits read as "00000000". Any changed bit — length,
 * header, metadata, data — makes it disagree. Other tools ignore the key (it is an ordinary metadata string).
 *
 * `decodeSafetensors` verifies the checksum when the file has one and checks everything a corrupt, truncated or
 * hand-made file can get wrong before returning a copy of any tensor: the header length against the file, the
 * JSON, each entry's dtype, shape and offsets (inside the data, sized by the shape, no overlaps, no gaps, no
 * trailing bytes), the metadata's types. A file without the key (written by another tool) gets those checks only.
 */
import { WpcArgumentError, argError } from '../runtime/errors.js';
import { crc32c, crc32cHex } from './crc32c.js';
import { jsonSyntaxProblem } from './json-values.js';

/** The dtypes WPC writes and reads (safetensors names). */
export type SafeDtype = 'F32' | 'U32' | 'I32';

export interface SafeTensorIn {
  dtype: SafeDtype;
  shape: readonly number[];
  data: Float32Array | Uint32Array | Int32Array;
}

export interface SafeTensorOut {
  dtype: SafeDtype;
  shape: number[];
  /** A copy of the tensor's values (aligned, host byte order). */
  data: Float32Array | Uint32Array | Int32Array;
}

export interface DecodedSafetensors {
  tensors: Record<string, SafeTensorOut>;
  /** The header's metadata strings, without WPC's checksum key. */
  metadata: Record<string, string>;
  /** True when the file carried WPC's checksum and it matched; false for a file without one. */
  verified: boolean;
}

/** The metadata key of WPC's checksum (eight lowercase hex digits). */
const SAFETENSORS_CHECKSUM_KEY = 'wpc.crc32c';

/** Largest header accepted, and written: the reference implementation's own limit. */
export const MAX_HEADER_BYTES = 100_000_000;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const HEADER_START = new TextEncoder().encode(`{"__metadata__":{"${SAFETENSORS_CHECKSUM_KEY}":"`);
/** Where the checksum's eight hex digits start in the file. */
const CHECKSUM_AT = 8 + HEADER_START.length;
const ZEROS = new TextEncoder().encode('00000000');

function ctor(dtype: SafeDtype) {
  return dtype === 'F32' ? Float32Array : dtype === 'U32' ? Uint32Array : Int32Array;
}

/** The CRC-32C of the file with the checksum's digits read as zeros. */
function fileChecksum(bytes: Uint8Array): number {
  const head = crc32c(bytes.subarray(0, CHECKSUM_AT));
  return crc32c(bytes.subarray(CHECKSUM_AT + 8), crc32c(ZEROS, head));
}

/**
 * Serialises tensors (in the given order) and string metadata into one safetensors file with WPC's checksum.
 * The key `wpc.crc32c` is reserved.
 */
export function encodeSafetensors(
  tensors: Readonly<Record<string, SafeTensorIn>>,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  const fn = 'encodeSafetensors';
  if (typeof tensors !== 'object' || tensors === null || Array.isArray(tensors))
    argError(fn, 'tensors', 'an object of { dtype, shape, data } by name', tensors);
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
    argError(fn, 'metadata', 'an object of strings', metadata);
  for (const [k, v] of Object.entries(metadata)) {
    if (k === SAFETENSORS_CHECKSUM_KEY)
      throw new WpcArgumentError(`${fn}: metadata.${k} is reserved (WPC writes the file's checksum there)`);
    if (typeof v !== 'string') argError(fn, `metadata.${k}`, 'a string', v);
  }
  let offset = 0;
  const entries: string[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__' || name.length === 0)
      argError(fn, 'tensors', 'names other than "" and "__metadata__"', name);
    if (typeof t !== 'object' || t === null) argError(fn, `tensors.${name}`, 'an object { dtype, shape, data }', t);
    if (t.dtype !== 'F32' && t.dtype !== 'U32' && t.dtype !== 'I32')
      argError(fn, `tensors.${name}.dtype`, '"F32", "U32" or "I32"', t.dtype);
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0))
      argError(fn, `tensors.${name}.shape`, 'an array of non-negative integers', t.shape);
    if (!(t.data instanceof ctor(t.dtype)))
      argError(fn, `tensors.${name}.data`, `a ${ctor(t.dtype).name} (dtype ${t.dtype})`, t.data);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== count)
      throw new WpcArgumentError(
        `${fn}: tensors.${name}.data has ${t.data.length} values, shape [${t.shape.join(', ')}] needs ${count}`,
      );
    entries.push(
      `,${JSON.stringify(name)}:${JSON.stringify({ dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + 4 * count] })}`,
    );
    offset += 4 * count;
  }
  // Written by hand so that the checksum comes first whatever the other keys are (JavaScript objects would put
  // integer-like keys first).
  let json = `{"__metadata__":{"${SAFETENSORS_CHECKSUM_KEY}":"00000000"`;
  for (const [k, v] of Object.entries(metadata)) json += `,${JSON.stringify(k)}:${JSON.stringify(v)}`;
  json += `}${entries.join('')}}`;
  const jsonBytes0 = new TextEncoder().encode(json);
  // Pad the header with spaces so that the data starts 8-byte aligned (as the reference writer does).
  const jsonBytes = new TextEncoder().encode(json + ' '.repeat((8 - ((8 + jsonBytes0.length) % 8)) % 8));
  if (jsonBytes.length > MAX_HEADER_BYTES) {
    throw new WpcArgumentError(
      `${fn}: the header would be ${jsonBytes.length} bytes, more than the ${MAX_HEADER_BYTES} a safetensors reader accepts (metadata too large)`,
    );
  }
  const out = new Uint8Array(8 + jsonBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(jsonBytes.length), true);
  out.set(jsonBytes, 8);
  let at = 8 + jsonBytes.length;
  for (const t of Object.values(tensors)) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(bytes, at);
    if (!LITTLE_ENDIAN) for (let i = at; i < at + bytes.length; i += 4) out.subarray(i, i + 4).reverse();
    at += bytes.length;
  }
  out.set(new TextEncoder().encode(crc32cHex(fileChecksum(out))), CHECKSUM_AT);
  return out;
}

/** A structural problem; the caller prefixes the file's name. */
class Problem extends Error {}

/**
 * The checksum the file claims at its fixed place: null when the header does not start as WPC writes it. A start
 * one or two bytes away from WPC's is a damaged checksum field, not another tool's file.
 */
function claimedChecksum(bytes: Uint8Array): string | null {
  if (bytes.length < CHECKSUM_AT + 9) return null;
  let differ = 0;
  for (let i = 0; i < HEADER_START.length; i++) if (bytes[8 + i] !== HEADER_START[i]) differ++;
  if (differ > 2) return null;
  if (differ > 0)
    throw new Problem(
      `the checksum field ${SAFETENSORS_CHECKSUM_KEY} at the start of the header is damaged (${differ} of its bytes differ from what WPC writes)`,
    );
  const digits = String.fromCharCode(...bytes.subarray(CHECKSUM_AT, CHECKSUM_AT + 8));
  if (!/^[0-9a-f]{8}$/.test(digits) || bytes[CHECKSUM_AT + 8] !== 0x22) {
    throw new Problem(
      `the checksum field ${SAFETENSORS_CHECKSUM_KEY} at the start of the header is damaged (not eight hex digits and a closing quote)`,
    );
  }
  return digits;
}

interface Layout {
  metadata: Record<string, string>;
  dataStart: number;
  entries: { name: string; dtype: SafeDtype; shape: number[]; begin: number; end: number }[];
}

/** Checks the header against the file; copies nothing. */
function parse(bytes: Uint8Array, claimed: string | null): Layout {
  if (bytes.length < 8)
    throw new Problem(`truncated: ${bytes.length} bytes, a safetensors file starts with an 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, bytes.length - 8))) {
    throw new Problem(
      `header length ${headerLength} does not fit the file (${bytes.length} bytes; at most ${MAX_HEADER_BYTES} accepted): truncated or not a safetensors file`,
    );
  }
  const n = Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new Problem(
      `the header is not valid UTF-8 JSON (${e instanceof SyntaxError ? jsonSyntaxProblem(e) : 'not UTF-8'})`,
    );
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw new Problem('the header must be a JSON object');
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: Layout['entries'] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        throw new Problem('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new Problem(`__metadata__.${k} must be a string, got ${typeof v}`);
        if (k === SAFETENSORS_CHECKSUM_KEY) {
          // JSON.parse keeps the last of repeated keys: the one read must be the one at the fixed place.
          if (claimed === null)
            throw new Problem(
              `__metadata__.${k} is not at the start of the header, where WPC writes it (a damaged or edited header)`,
            );
          if (v !== claimed)
            throw new Problem(`__metadata__.${k} appears twice (${JSON.stringify(claimed)} and ${JSON.stringify(v)})`);
          continue;
        }
        metadata[k] = v;
      }
      continue;
    }
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw new Problem(`tensor ${name}: entry must be an object`);
    if (e.dtype !== 'F32' && e.dtype !== 'U32' && e.dtype !== 'I32') {
      throw new Problem(`tensor ${name}: dtype must be F32, U32 or I32, got ${JSON.stringify(e.dtype)}`);
    }
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) {
      throw new Problem(
        `tensor ${name}: shape must be an array of non-negative integers, got ${JSON.stringify(e.shape)}`,
      );
    }
    const offs = e.data_offsets;
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      offs.some((o) => !Number.isSafeInteger(o) || (o as number) < 0) ||
      (offs[0] as number) > (offs[1] as number)
    ) {
      throw new Problem(
        `tensor ${name}: data_offsets must be [begin, end] with 0 ≤ begin ≤ end, got ${JSON.stringify(offs)}`,
      );
    }
    const shape = e.shape as number[];
    const count = shape.reduce((a, b) => a * b, 1);
    const [begin, end] = offs as [number, number];
    if (end - begin !== 4 * count) {
      throw new Problem(
        `tensor ${name}: shape [${shape.join(', ')}] needs ${4 * count} bytes of ${e.dtype}, data_offsets span ${end - begin}`,
      );
    }
    if (end > dataLength)
      throw new Problem(
        `tensor ${name}: data_offsets end at ${end}, past the ${dataLength} data bytes (truncated file?)`,
      );
    entries.push({ name, dtype: e.dtype, shape, begin, end });
  }
  const meta = (header as Record<string, unknown>).__metadata__;
  if (claimed !== null && (typeof meta !== 'object' || meta === null || !(SAFETENSORS_CHECKSUM_KEY in meta))) {
    throw new Problem(
      `the header starts with a checksum field that JSON does not read as __metadata__.${SAFETENSORS_CHECKSUM_KEY}`,
    );
  }
  // The data must be covered exactly once, in order of offsets (no overlaps, holes or trailing bytes).
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const e of sorted) {
    if (e.begin !== expected) {
      throw new Problem(
        `tensor ${e.name} starts at data byte ${e.begin}, expected ${expected} (${e.begin < expected ? 'overlapping tensors' : 'a gap in the data'})`,
      );
    }
    expected = e.end;
  }
  if (expected !== dataLength)
    throw new Problem(`${dataLength - expected} bytes after the last tensor (the header does not describe the file)`);
  return { metadata, dataStart, entries };
}

/**
 * Parses a safetensors file. `what` names the file in errors (e.g. the path). A file with WPC's checksum must
 * match it (`verified: true`); a file without one (another tool's) gets the structural checks only
 * (`verified: false`). Only the dtypes WPC uses are accepted; anything inconsistent throws a WpcArgumentError
 * saying what and where.
 */
export function decodeSafetensors(bytes: Uint8Array, what = 'decodeSafetensors'): DecodedSafetensors {
  if (typeof what !== 'string')
    throw new WpcArgumentError(`decodeSafetensors: what must be a string (a name for messages), got ${typeof what}`);
  if (!(bytes instanceof Uint8Array))
    throw new WpcArgumentError(`${what}: expected the file's bytes (a Uint8Array), got ${typeof bytes}`);
  let claimed: string | null;
  try {
    claimed = claimedChecksum(bytes);
  } catch (e) {
    throw new WpcArgumentError(`${what}: corrupt: ${(e as Problem).message}`);
  }
  const computed = claimed === null ? null : crc32cHex(fileChecksum(bytes));
  const mismatch = computed !== claimed;
  const corrupt = () =>
    `${what}: corrupt: the CRC-32C checksum in its header (${claimed}) does not match its bytes (${computed}): the file was damaged or changed after it was written`;
  let layout: Layout;
  try {
    layout = parse(bytes, claimed);
  } catch (e) {
    if (!(e instanceof Problem)) throw e;
    throw new WpcArgumentError(mismatch ? `${corrupt()}; and ${e.message}` : `${what}: ${e.message}`);
  }
  if (mismatch) throw new WpcArgumentError(corrupt());
  const tensors: Record<string, SafeTensorOut> = {};
  for (const e of layout.entries) {
    const copy = bytes.slice(layout.dataStart + e.begin, layout.dataStart + e.end);
    if (!LITTLE_ENDIAN) for (let i = 0; i < copy.length; i += 4) copy.subarray(i, i + 4).reverse();
    const C = ctor(e.dtype);
    tensors[e.name] = { dtype: e.dtype, shape: e.shape, data: new C(copy.buffer, 0, copy.length / 4) };
  }
  return { tensors, metadata: layout.metadata, verified: claimed !== null };
}
