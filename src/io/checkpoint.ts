/**
 * Model checkpoints as plain JSON objects (browser-safe): the architecture, the parameterisation and every
 * parameter as little-endian float32 in base64. `modelToCheckpoint` reads the parameters back from the GPU;
 * `modelFromCheckpoint` validates everything before allocating anything.
 */
import { WpcArgumentError, argError } from '../runtime/errors.js';
import type { Runtime } from '../runtime/runtime.js';
import { ACTIVATIONS } from '../kernels/index.js';
import { type Activation, type Model, PARAM_TYPES, type ParamType, mlpFromWeights } from '../pc/model.js';
import { checkModel } from '../pc/batch.js';

export const CHECKPOINT_FORMAT = 'wpc-model';
export const CHECKPOINT_VERSION = 1;

export interface ModelCheckpoint extends Architecture {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  /** Every weight then bias, layer by layer (the model's buffer layout), float32 little-endian, base64. */
  params: string;
  /** Free-form information (what it was trained on, metrics). */
  meta?: Record<string, unknown>;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

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

function fromBase64(fn: string, text: string): Uint8Array {
  if (typeof text !== 'string' || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new WpcArgumentError(`${fn}: checkpoint.params must be base64 text (a multiple of 4 characters)`);
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
export interface Architecture {
  /** Activity widths [d_0, …, d_L]. */
  dims: number[];
  actFn: Activation;
  useBias: boolean;
  paramType: ParamType;
  skipModel: boolean[] | null;
  gamma: number | null;
}

export function architectureOf(model: Model): Architecture {
  return {
    dims: [...model.dims],
    actFn: model.actFn,
    useBias: model.layers[0]!.useBias,
    paramType: model.paramType,
    skipModel: model.hasSkips ? model.skips : null,
    gamma: model.gamma,
  };
}

/**
 * Checks a stored architecture's fields (`where` names the object in messages, e.g. "checkpoint"); skipModel
 * and gamma are checked when the model is built (mlpFromWeights).
 */
export function checkArchitecture(fn: string, where: string, a: Partial<Architecture>): Architecture {
  if (!Array.isArray(a.dims) || a.dims.length < 2 || a.dims.some((d) => !Number.isSafeInteger(d) || d < 1)) argError(fn, `${where}.dims`, 'at least two positive integers', a.dims);
  if (!(ACTIVATIONS as readonly unknown[]).includes(a.actFn)) argError(fn, `${where}.actFn`, ACTIVATIONS.join(' | '), a.actFn);
  if (typeof a.useBias !== 'boolean') argError(fn, `${where}.useBias`, 'a boolean', a.useBias);
  if (!(PARAM_TYPES as readonly unknown[]).includes(a.paramType)) argError(fn, `${where}.paramType`, PARAM_TYPES.join(' | '), a.paramType);
  return { dims: a.dims, actFn: a.actFn!, useBias: a.useBias, paramType: a.paramType!, skipModel: a.skipModel ?? null, gamma: a.gamma ?? null };
}

/** A checkpoint of `model` (one readback of its parameters). */
export async function modelToCheckpoint(model: Model, meta?: Record<string, unknown>): Promise<ModelCheckpoint> {
  checkModel('modelToCheckpoint', model);
  const { weights, biases } = await model.toArrays();
  const all = new Float32Array(model.paramCount);
  model.layers.forEach((l, i) => {
    all.set(weights[i]!, l.weightOffset);
    if (l.useBias) all.set(biases[i]!, l.biasOffset);
  });
  const bytes = new Uint8Array(all.buffer);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    // Big-endian host: store little-endian.
    for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  }
  return {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    ...architectureOf(model),
    params: toBase64(bytes),
    ...(meta === undefined ? {} : { meta }),
  };
}

/** A model on `runtime` from a checkpoint (as `modelToCheckpoint` makes, e.g. parsed from a file). */
export function modelFromCheckpoint(runtime: Runtime, checkpoint: unknown): Model {
  const fn = 'modelFromCheckpoint';
  if (typeof checkpoint !== 'object' || checkpoint === null) argError(fn, 'checkpoint', 'a checkpoint object', checkpoint);
  const c = checkpoint as Partial<ModelCheckpoint>;
  if (c.format !== CHECKPOINT_FORMAT) throw new WpcArgumentError(`${fn}: checkpoint.format must be '${CHECKPOINT_FORMAT}', got ${JSON.stringify(c.format)}`);
  if (c.version !== CHECKPOINT_VERSION) throw new WpcArgumentError(`${fn}: checkpoint.version ${String(c.version)} is not supported (this WPC reads version ${CHECKPOINT_VERSION})`);
  const { dims } = checkArchitecture(fn, 'checkpoint', c);
  const L = dims.length - 1;
  const sizes = Array.from({ length: L }, (_, l) => dims[l]! * dims[l + 1]!);
  const total = sizes.reduce((a, b) => a + b, 0) + (c.useBias ? dims.slice(1).reduce((a, b) => a + b, 0) : 0);
  const bytes = fromBase64(fn, c.params as string);
  if (bytes.length !== total * 4) {
    throw new WpcArgumentError(`${fn}: checkpoint.params holds ${bytes.length / 4} values but dims ${dims.join('→')}${c.useBias ? ' with biases' : ''} need ${total}`);
  }
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  const all = new Float32Array(bytes.buffer, bytes.byteOffset, total);
  const weights: Float32Array[] = [];
  const biases: Float32Array[] = [];
  let at = 0;
  for (let l = 0; l < L; l++) {
    weights.push(all.subarray(at, at + sizes[l]!));
    at += sizes[l]!;
    if (c.useBias) {
      biases.push(all.subarray(at, at + dims[l + 1]!));
      at += dims[l + 1]!;
    }
  }
  return mlpFromWeights(runtime, {
    dims,
    weights,
    biases: c.useBias ? biases : null,
    actFn: c.actFn as Activation,
    paramType: c.paramType as ParamType,
    skipModel: c.skipModel ?? null,
    gamma: c.gamma ?? null,
  });
}
