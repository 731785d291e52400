/**
 * Model checkpoints as plain JSON objects (browser-safe): the architecture, the parameterisation, every
 * parameter as little-endian float32 in base64, free-form `meta`, and `crc32c`, a CRC-32C of the content (every
 * other field, as canonical JSON: keys sorted, no whitespace). `modelToCheckpoint` reads the parameters back
 * from the GPU; `modelFromCheckpoint` verifies the checksum and validates every field before allocating anything.
 *
 * An MLP is stored by its architecture fields (dims, actFn, useBias, paramType, skipModel, gamma); a model made
 * from a list of layers (`makeModel`) by `definition` instead (stored-model.ts), its parameters in the model's
 * buffer order. Both are version 2: a definition is a field that only newer readers know, and an older WPC
 * refuses it by name ("checkpoint.definition is not a field of checkpoint").
 */
import { mlpLayers } from '../pc/layers/index.js';
import { isStoredDefinition, modelFromStoredDefinition, readParams, storedDefinition } from './stored-model.js';
import { WpcArgumentError, argError, describe, firstNonFinite } from '../runtime/errors.js';
import type { Runtime } from '../runtime/runtime.js';
import { ACTIVATIONS } from '../kernels/activations.js';
import {
  type Activation,
  MAX_DEPTH,
  type Model,
  PARAM_TYPES,
  type ParamType,
  checkRuntime,
  mlpFromWeights,
} from '../pc/model.js';
import { checkModel } from '../pc/batch.js';
import { crc32c, crc32cHex } from './crc32c.js';
import { asStoredJson, canonicalJson, checkJsonObject, checkJsonValue, jsonSyntaxProblem } from './json-values.js';

export const CHECKPOINT_FORMAT = 'wpc-model';
/** Version 2 carries `crc32c`; version 1 (without) loads only with `allowUnverified`. */
export const CHECKPOINT_VERSION = 2;

/** Most parameters a stored model may have: 4 GiB of float32, more than any WebGPU adapter binds at once. */
const MAX_STORED_PARAMS = 2 ** 30;

export interface ModelCheckpoint extends Partial<Architecture> {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  /** CRC-32C (eight lowercase hex digits) of every other field as canonical JSON. */
  crc32c: string;
  /** Every weight then bias, layer by layer (the model's buffer layout), float32 little-endian, base64. */
  params: string;
  /** Free-form information (what it was trained on, metrics): plain JSON data. */
  meta?: Record<string, unknown>;
  /** A layer list's `model.definition` (then the architecture fields are absent). */
  definition?: Record<string, unknown>;
}

export interface CheckpointLoadOptions {
  /**
   * Also load a version-1 checkpoint, written before checkpoints carried a checksum: its bytes cannot be
   * verified, every other check still applies (save it again to add one). Default false: refused.
   */
  allowUnverified?: boolean;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const BIG_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1;

function toBase64(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!;
    const b = bytes[i + 1] ?? 0;
    const c = bytes[i + 2] ?? 0;
    out += B64[a >> 2]! + B64[((a & 3) << 4) | (b >> 4)]!;
    out += i + 1 < bytes.length ? B64[((b & 15) << 2) | (c >> 6)]! : '=';
    out += i + 2 < bytes.length ? B64[c & 63]! : '=';
  }
  return out;
}

function fromBase64(what: string, text: string): Uint8Array {
  if (typeof text !== 'string' || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new WpcArgumentError(
      `${what}: checkpoint.params must be base64 text (a multiple of 4 characters), got ${describe(text)}`,
    );
  }
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    const v = [0, 1, 2, 3].map((k) => (text[i + k] === '=' ? 0 : B64.indexOf(text[i + k]!)));
    const n = (v[0]! << 18) | (v[1]! << 12) | (v[2]! << 6) | v[3]!;
    if (o < out.length) out[o++] = (n >> 16) & 255;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return out;
}

/** A model's architecture and parameterisation, as both checkpoint formats store it. */
interface Architecture {
  /** Activity widths [d_0, …, d_L]. */
  dims: number[];
  actFn: Activation;
  useBias: boolean;
  paramType: ParamType;
  skipModel: boolean[] | null;
  gamma: number | null;
}

export const ARCHITECTURE_FIELDS = ['dims', 'actFn', 'useBias', 'paramType', 'skipModel', 'gamma'] as const;

export function architectureOf(model: Model): Architecture {
  return {
    dims: [...model.dims],
    actFn: model.actFn,
    useBias: mlpLayers('architectureOf', model.layers)[0]!.useBias,
    paramType: model.paramType,
    skipModel: model.hasSkips ? model.skips : null,
    gamma: model.gamma,
  };
}

/** Parameters of a model with these widths: Σ d_l·d_{l+1} (+ Σ d_{l+1} with biases). */
export function storedParamCount(dims: readonly number[], useBias: boolean): number {
  let total = 0;
  for (let l = 0; l + 1 < dims.length; l++) total += dims[l]! * dims[l + 1]! + (useBias ? dims[l + 1]! : 0);
  return total;
}

/**
 * Checks every field of a stored architecture (`where` names the object in messages, e.g. "checkpoint"): dims
 * 2..MAX_DEPTH + 1 positive integers with at most MAX_STORED_PARAMS parameters, a known activation and
 * parameterisation, useBias a boolean, skipModel null or one boolean per layer (identity residuals on
 * hidden-to-hidden layers of equal widths only), gamma null or finite and > 0. Absent skipModel and gamma read as
 * null. Throws a WpcArgumentError naming the field, what it must be and what it is.
 */
export function checkArchitecture(what: string, where: string, a: unknown): Architecture {
  if (typeof a !== 'object' || a === null || Array.isArray(a)) argError(what, where, 'an object', a);
  const { dims, actFn, useBias, paramType } = a as Partial<Architecture>;
  if (
    !Array.isArray(dims) ||
    dims.length < 2 ||
    dims.length > MAX_DEPTH + 1 ||
    dims.some((d) => !Number.isSafeInteger(d) || d < 1 || d > MAX_STORED_PARAMS)
  ) {
    argError(what, `${where}.dims`, `2 to ${MAX_DEPTH + 1} integers in [1, ${MAX_STORED_PARAMS}]`, dims);
  }
  if (!(ACTIVATIONS as readonly unknown[]).includes(actFn))
    argError(what, `${where}.actFn`, ACTIVATIONS.join(' | '), actFn);
  if (typeof useBias !== 'boolean') argError(what, `${where}.useBias`, 'a boolean', useBias);
  if (!(PARAM_TYPES as readonly unknown[]).includes(paramType))
    argError(what, `${where}.paramType`, PARAM_TYPES.join(' | '), paramType);
  const params = storedParamCount(dims, useBias);
  if (params > MAX_STORED_PARAMS)
    throw new WpcArgumentError(
      `${what}: ${where}.dims ${dims.join('→')} give ${params} parameters, more than the ${MAX_STORED_PARAMS} a checkpoint may hold`,
    );
  const L = dims.length - 1;
  const skipModel = (a as { skipModel?: unknown }).skipModel ?? null;
  if (skipModel !== null) {
    if (!Array.isArray(skipModel) || skipModel.length !== L || skipModel.some((s) => typeof s !== 'boolean')) {
      argError(what, `${where}.skipModel`, `null or an array of ${L} booleans (one per layer)`, skipModel);
    }
    skipModel.forEach((s, l) => {
      if (s && (l === 0 || l === L - 1))
        throw new WpcArgumentError(
          `${what}: ${where}.skipModel[${l}] must be false (skips are on hidden-to-hidden layers 1..${L - 2} only), got true`,
        );
      if (s && dims[l] !== dims[l + 1])
        throw new WpcArgumentError(
          `${what}: ${where}.skipModel[${l}] must be false: layer ${l} maps ${dims[l]} → ${dims[l + 1]}, a skip needs equal widths`,
        );
    });
  }
  const gamma = (a as { gamma?: unknown }).gamma ?? null;
  if (gamma !== null && (typeof gamma !== 'number' || !Number.isFinite(gamma) || gamma <= 0))
    argError(what, `${where}.gamma`, 'null or a finite number > 0', gamma);
  return {
    dims: [...dims],
    actFn: actFn!,
    useBias,
    paramType: paramType!,
    skipModel: skipModel as boolean[] | null,
    gamma: gamma as number | null,
  };
}

/** Throws unless every key of `o` is in `known`. */
export function checkStoredKeys(what: string, where: string, o: object, known: readonly string[]): void {
  const unknown = Object.keys(o).find((k) => !known.includes(k));
  if (unknown !== undefined)
    throw new WpcArgumentError(`${what}: ${where}.${unknown} is not a field of ${where} (known: ${known.join(', ')})`);
}

/** The model built from validated weights; nothing is left allocated when it fails. */
export function buildModel(
  what: string,
  runtime: Runtime,
  arch: Architecture,
  weights: Float32Array[],
  biases: Float32Array[] | null,
): Model {
  try {
    return mlpFromWeights(runtime, {
      dims: arch.dims,
      weights,
      biases,
      actFn: arch.actFn,
      paramType: arch.paramType,
      skipModel: arch.skipModel,
      gamma: arch.gamma,
    });
  } catch (e) {
    if (e instanceof WpcArgumentError) throw new WpcArgumentError(`${what}: ${e.message}`);
    throw e;
  }
}

const CHECKPOINT_KEYS = ['format', 'version', 'crc32c', 'params', 'meta', ...ARCHITECTURE_FIELDS];
const DEFINITION_CHECKPOINT_KEYS = ['format', 'version', 'crc32c', 'params', 'meta', 'definition'];

/** The checksum of a checkpoint's content: every field but `crc32c`, as canonical JSON. */
function contentChecksum(c: Record<string, unknown>): string {
  const { crc32c: _, ...content } = c;
  return crc32cHex(crc32c(new TextEncoder().encode(canonicalJson(content))));
}

/** A checkpoint of `model` (one readback of its parameters). `meta` is stored as JSON reads it back. */
export async function modelToCheckpoint(model: Model, meta?: Record<string, unknown>): Promise<ModelCheckpoint> {
  const fn = 'modelToCheckpoint';
  checkModel(fn, model);
  const storedMeta = meta === undefined ? undefined : checkJsonObject(fn, 'meta', asStoredJson(fn, 'meta', meta));
  const described = model.definition ? { definition: storedDefinition(fn, model) } : architectureOf(model);
  const all = await readParams(model);
  // A checkpoint that would not load is not written (e.g. a diverged model over the last good one).
  const bad = all.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0)
    throw new WpcArgumentError(
      `${fn}: the model's parameters must be finite to be saved, got ${all[bad]} at index ${bad}`,
    );
  const bytes = new Uint8Array(all.buffer);
  if (BIG_ENDIAN) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  const content = {
    format: CHECKPOINT_FORMAT as typeof CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    ...described,
    params: toBase64(bytes),
    ...(storedMeta === undefined ? {} : { meta: storedMeta }),
  };
  const { format, version, ...rest } = content;
  return { format, version, crc32c: contentChecksum(content), ...rest };
}

type CheckedCheckpoint = (
  | { arch: Architecture; weights: Float32Array[]; biases: Float32Array[] | null }
  | { definition: unknown; params: Float32Array }
) & { version: number };

/** The model a checked checkpoint describes; nothing is left allocated when it fails. */
function buildChecked(what: string, runtime: Runtime, c: CheckedCheckpoint): Model {
  if ('definition' in c)
    return modelFromStoredDefinition(what, runtime, 'checkpoint.definition', c.definition, c.params);
  return buildModel(what, runtime, c.arch, c.weights, c.biases);
}

/** The parameters of a layer list's checkpoint: base64 of whole float32 values (their count is the layers'). */
function definitionParams(what: string, params: unknown): Float32Array {
  if (typeof params !== 'string')
    throw new WpcArgumentError(`${what}: checkpoint.params must be base64 text, got ${describe(params)}`);
  const bytes = fromBase64(what, params);
  if (bytes.length % 4 !== 0)
    throw new WpcArgumentError(
      `${what}: checkpoint.params must be the base64 of float32 values (a multiple of 4 bytes), got ${bytes.length} bytes`,
    );
  if (BIG_ENDIAN) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
}

/** Verifies and validates a checkpoint object; allocates nothing on the GPU. */
function checkCheckpoint(what: string, checkpoint: unknown, options: CheckpointLoadOptions): CheckedCheckpoint {
  if (typeof checkpoint !== 'object' || checkpoint === null || Array.isArray(checkpoint))
    argError(what, 'checkpoint', 'a checkpoint object', checkpoint);
  const c = checkpoint as Record<string, unknown>;
  if (c.format !== CHECKPOINT_FORMAT)
    throw new WpcArgumentError(`${what}: checkpoint.format must be '${CHECKPOINT_FORMAT}', got ${describe(c.format)}`);
  if (c.version === 1) {
    if (options.allowUnverified !== true) {
      throw new WpcArgumentError(
        `${what}: a version-1 checkpoint, written before checkpoints carried a checksum: it cannot be verified, so it is refused; load it with the option allowUnverified: true (every other check still applies) and save it again to add one`,
      );
    }
  } else if (c.version !== CHECKPOINT_VERSION) {
    throw new WpcArgumentError(
      `${what}: checkpoint.version ${describe(c.version)} is not supported (this WPC reads version ${CHECKPOINT_VERSION}, and 1 with allowUnverified)`,
    );
  }
  const layerList = c.version === CHECKPOINT_VERSION && isStoredDefinition(c);
  checkStoredKeys(
    what,
    'checkpoint',
    c,
    c.version === 1
      ? CHECKPOINT_KEYS.filter((k) => k !== 'crc32c')
      : layerList
        ? DEFINITION_CHECKPOINT_KEYS
        : CHECKPOINT_KEYS,
  );
  checkJsonValue(what, 'checkpoint', c);
  if (c.version === CHECKPOINT_VERSION) {
    if (typeof c.crc32c !== 'string' || !/^[0-9a-f]{8}$/.test(c.crc32c))
      argError(what, 'checkpoint.crc32c', 'eight lowercase hex digits', c.crc32c);
    const computed = contentChecksum(c);
    if (computed !== c.crc32c) {
      throw new WpcArgumentError(
        `${what}: corrupt: checkpoint.crc32c is ${c.crc32c} but its content gives ${computed}: a field was damaged or changed after it was written`,
      );
    }
  }
  if (layerList) {
    checkJsonObject(what, 'checkpoint.definition', c.definition);
    if (c.meta !== undefined) checkJsonObject(what, 'checkpoint.meta', c.meta);
    return { definition: c.definition, params: definitionParams(what, c.params), version: c.version as number };
  }
  const arch = checkArchitecture(what, 'checkpoint', c);
  if (c.meta !== undefined) checkJsonObject(what, 'checkpoint.meta', c.meta);
  const { dims, useBias } = arch;
  const total = storedParamCount(dims, useBias);
  if (typeof c.params !== 'string' || c.params.length !== 4 * Math.ceil((4 * total) / 3)) {
    throw new WpcArgumentError(
      `${what}: checkpoint.params must be the base64 of ${total} float32 values (${4 * Math.ceil((4 * total) / 3)} characters) for dims ${dims.join('→')}${useBias ? ' with biases' : ''}, got ${typeof c.params === 'string' ? `${c.params.length} characters` : describe(c.params)}`,
    );
  }
  const bytes = fromBase64(what, c.params);
  if (BIG_ENDIAN) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  const all = new Float32Array(bytes.buffer, bytes.byteOffset, total);
  const weights: Float32Array[] = [];
  const biases: Float32Array[] = [];
  let at = 0;
  const take = (n: number, name: string) => {
    const v = all.subarray(at, at + n);
    const bad = firstNonFinite(v);
    if (bad >= 0)
      throw new WpcArgumentError(`${what}: checkpoint.params must be finite, got ${v[bad]} in ${name} at index ${bad}`);
    at += n;
    return v;
  };
  for (let l = 0; l + 1 < dims.length; l++) {
    weights.push(take(dims[l]! * dims[l + 1]!, `layer ${l}'s weights`));
    if (useBias) biases.push(take(dims[l + 1]!, `layer ${l}'s biases`));
  }
  return { arch, weights, biases: useBias ? biases : null, version: c.version as number };
}

/** Validates `{ allowUnverified }` options. */
export function checkLoadOptions(fn: string, options: unknown): CheckpointLoadOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    argError(fn, 'options', 'an object like { allowUnverified: false }', options);
  checkStoredKeys(fn, 'options', options, ['allowUnverified']);
  const { allowUnverified } = options as CheckpointLoadOptions;
  if (allowUnverified !== undefined && typeof allowUnverified !== 'boolean')
    argError(fn, 'options.allowUnverified', 'a boolean', allowUnverified);
  return options as CheckpointLoadOptions;
}

/**
 * A model on `runtime` from a checkpoint (as `modelToCheckpoint` makes, e.g. parsed from a file): the checksum
 * is verified and every field validated before anything is allocated.
 */
export function modelFromCheckpoint(runtime: Runtime, checkpoint: unknown, options: CheckpointLoadOptions = {}): Model {
  const fn = 'modelFromCheckpoint';
  checkRuntime(fn, runtime);
  checkLoadOptions(fn, options);
  return buildChecked(fn, runtime, checkCheckpoint(fn, checkpoint, options));
}

/** The text `saveModel` writes for a checkpoint. */
export function checkpointText(checkpoint: ModelCheckpoint): string {
  return `${JSON.stringify(checkpoint)}\n`;
}

/**
 * A model from a checkpoint file's contents (what `loadModel` reads; `what` names the file in messages): UTF-8
 * JSON. Besides `modelFromCheckpoint`'s checks, a version-2 file must be exactly the text `saveModel` writes for
 * its content, so that no changed byte goes unnoticed, not even one that leaves the content equal (white space,
 * an exponent's case).
 */
export function modelFromCheckpointFile(
  runtime: Runtime,
  contents: Uint8Array | string,
  what: string,
  options: CheckpointLoadOptions = {},
): Model {
  checkRuntime(what, runtime);
  checkLoadOptions(what, options);
  let text: string;
  if (typeof contents === 'string') text = contents;
  else if (contents instanceof Uint8Array) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(contents);
    } catch {
      throw new WpcArgumentError(`${what}: not a WPC checkpoint (not UTF-8 text)`);
    }
  } else return argError(what, 'contents', "the file's bytes or text", contents);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new WpcArgumentError(`${what}: not a WPC checkpoint (not JSON: ${jsonSyntaxProblem(e)})`);
  }
  const c = checkCheckpoint(what, parsed, options);
  if (c.version === CHECKPOINT_VERSION && text !== checkpointText(parsed as ModelCheckpoint)) {
    throw new WpcArgumentError(
      `${what}: corrupt: the file is not the text saveModel writes for its content (changed after it was written)`,
    );
  }
  return buildChecked(what, runtime, c);
}
