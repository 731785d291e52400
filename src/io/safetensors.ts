/**
 * The safetensors container (https://huggingface.co/docs/safetensors), browser-safe: an 8-byte little-endian
 * header length N, N bytes of JSON — `{"__metadata__": {string: string}, name: {dtype, shape, data_offsets}}` —
 * then the tensors' bytes, little-endian, `data_offsets` relative to the end of the header. Python reads it
 * with `safetensors.numpy.load_file` (or torch, jax, …).
 *
 * `decodeSafetensors` checks everything a corrupt, truncated or hand-made file can get wrong before returning a
 * view of any tensor: the header length against the file, the JSON, each entry's dtype, shape and offsets
 * (inside the data, sized by the shape, no overlaps, no gaps, no trailing bytes), the metadata's types.
 */
import { WpcArgumentError, argError } from '../runtime/errors.js';

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

/** Largest header WPC accepts (a model with thousands of layers stays far below). */
const MAX_HEADER_BYTES = 16 * 2 ** 20;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function ctor(dtype: SafeDtype) {
  return dtype === 'F32' ? Float32Array : dtype === 'U32' ? Uint32Array : Int32Array;
}

/** Serialises tensors (in the given order) and string metadata into one safetensors file. */
export function encodeSafetensors(tensors: Readonly<Record<string, SafeTensorIn>>, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const fn = 'encodeSafetensors';
  if (typeof tensors !== 'object' || tensors === null || Array.isArray(tensors)) argError(fn, 'tensors', 'an object of { dtype, shape, data } by name', tensors);
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) argError(fn, 'metadata', 'an object of strings', metadata);
  for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') argError(fn, `metadata.${k}`, 'a string', v);
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__' || name.length === 0) argError(fn, 'tensors', 'names other than "" and "__metadata__"', name);
    if (typeof t !== 'object' || t === null) argError(fn, `tensors.${name}`, 'an object { dtype, shape, data }', t);
    if (t.dtype !== 'F32' && t.dtype !== 'U32' && t.dtype !== 'I32') argError(fn, `tensors.${name}.dtype`, '"F32", "U32" or "I32"', t.dtype);
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) argError(fn, `tensors.${name}.shape`, 'an array of non-negative integers', t.shape);
    if (!(t.data instanceof ctor(t.dtype))) argError(fn, `tensors.${name}.data`, `a ${ctor(t.dtype).name} (dtype ${t.dtype})`, t.data);
  }
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = { ...metadata };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== count) throw new WpcArgumentError(`${fn}: tensors.${name}.data has ${t.data.length} values, shape [${t.shape.join(', ')}] needs ${count}`);
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + 4 * count] };
    offset += 4 * count;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so that the data starts 8-byte aligned (as the reference writer does).
  const jsonBytes0 = new TextEncoder().encode(json);
  json += ' '.repeat((8 - ((8 + jsonBytes0.length) % 8)) % 8);
  const jsonBytes = new TextEncoder().encode(json);
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
  return out;
}

/**
 * Parses a safetensors file. `what` names the file in errors (e.g. the path). Only the dtypes WPC uses are
 * accepted; anything inconsistent throws a WpcArgumentError saying what and where.
 */
export function decodeSafetensors(bytes: Uint8Array, what = 'decodeSafetensors'): { tensors: Record<string, SafeTensorOut>; metadata: Record<string, string> } {
  if (typeof what !== 'string') throw new WpcArgumentError(`decodeSafetensors: what must be a string (a name for messages), got ${typeof what}`);
  if (!(bytes instanceof Uint8Array)) throw new WpcArgumentError(`${what}: expected the file's bytes (a Uint8Array), got ${typeof bytes}`);
  if (bytes.length < 8) throw new WpcArgumentError(`${what}: truncated: ${bytes.length} bytes, a safetensors file starts with an 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, bytes.length - 8))) {
    throw new WpcArgumentError(`${what}: header length ${headerLength} does not fit the file (${bytes.length} bytes; at most ${MAX_HEADER_BYTES} accepted): truncated or not a safetensors file`);
  }
  const n = Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new WpcArgumentError(`${what}: the header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new WpcArgumentError(`${what}: the header must be a JSON object`);
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: SafeDtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new WpcArgumentError(`${what}: __metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new WpcArgumentError(`${what}: __metadata__.${k} must be a string, got ${typeof v}`);
        metadata[k] = v;
      }
      continue;
    }
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw new WpcArgumentError(`${what}: tensor ${name}: entry must be an object`);
    if (e.dtype !== 'F32' && e.dtype !== 'U32' && e.dtype !== 'I32') {
      throw new WpcArgumentError(`${what}: tensor ${name}: dtype must be F32, U32 or I32, got ${JSON.stringify(e.dtype)}`);
    }
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) {
      throw new WpcArgumentError(`${what}: tensor ${name}: shape must be an array of non-negative integers, got ${JSON.stringify(e.shape)}`);
    }
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || offs.some((o) => !Number.isSafeInteger(o) || (o as number) < 0) || (offs[0] as number) > (offs[1] as number)) {
      throw new WpcArgumentError(`${what}: tensor ${name}: data_offsets must be [begin, end] with 0 ≤ begin ≤ end, got ${JSON.stringify(offs)}`);
    }
    const shape = e.shape as number[];
    const count = shape.reduce((a, b) => a * b, 1);
    const [begin, end] = offs as [number, number];
    if (end - begin !== 4 * count) {
      throw new WpcArgumentError(`${what}: tensor ${name}: shape [${shape.join(', ')}] needs ${4 * count} bytes of ${e.dtype}, data_offsets span ${end - begin}`);
    }
    if (end > dataLength) throw new WpcArgumentError(`${what}: tensor ${name}: data_offsets end at ${end}, past the ${dataLength} data bytes (truncated file?)`);
    entries.push({ name, dtype: e.dtype, shape, begin, end });
  }
  // The data must be covered exactly once, in order of offsets (no overlaps, holes or trailing bytes).
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const e of sorted) {
    if (e.begin !== expected) {
      throw new WpcArgumentError(`${what}: tensor ${e.name} starts at data byte ${e.begin}, expected ${expected} (${e.begin < expected ? 'overlapping tensors' : 'a gap in the data'})`);
    }
    expected = e.end;
  }
  if (expected !== dataLength) throw new WpcArgumentError(`${what}: ${dataLength - expected} bytes after the last tensor (the header does not describe the file)`);
  const tensors: Record<string, SafeTensorOut> = {};
  for (const e of entries) {
    const copy = bytes.slice(dataStart + e.begin, dataStart + e.end);
    if (!LITTLE_ENDIAN) for (let i = 0; i < copy.length; i += 4) copy.subarray(i, i + 4).reverse();
    const C = ctor(e.dtype);
    tensors[e.name] = { dtype: e.dtype, shape: e.shape, data: new C(copy.buffer, 0, copy.length / 4) };
  }
  return { tensors, metadata };
}
