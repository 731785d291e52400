/**
 * Training checkpoints in the safetensors format (browser-safe; Node's file helpers are in node-files.ts): a
 * model, optionally its optimiser and optimiser state, and the training step, so that a run can stop and go on
 * exactly where it was. Python reads one with `safetensors.numpy.load_file(path)` and `safe_open(...).metadata()`.
 *
 * Tensors (float32, little-endian):
 *   layers.<l>.weight   [d_{l+1}, d_l]   W_l, JPC's layout (out × in)
 *   layers.<l>.bias     [d_{l+1}]        b_l, when the model has biases
 *   optimizer.state     [w, P]           w = 1 (momentum trace) or 2 (Adam's m, then v) planes over the P
 *                                        parameters in the model's flat order (per layer: weight, then bias)
 * Metadata (strings): format "wpc-training-checkpoint", version "1", model (JSON: dims, actFn, useBias,
 * paramType, skipModel, gamma), optimizer (JSON of its config, absent without one), optimizerCount (optax's
 * count), step, and extra (JSON, the caller's own, e.g. a training loop's position and settings).
 *
 * Saving reads the GPU once per buffer; loading validates the whole file (see decodeSafetensors) and every
 * value before it allocates anything, so a bad file never leaves a half-made model behind. Save → load is
 * bit-exact (the raw float32 words round-trip).
 */
import { WpcArgumentError, argError } from '../runtime/errors.js';
import type { Runtime } from '../runtime/runtime.js';
import { type Model, checkRuntime, mlpFromWeights } from '../pc/model.js';
import { type Architecture, architectureOf, checkArchitecture } from './checkpoint.js';
import { checkModel } from '../pc/batch.js';
import { type OptState, Optimizer, adam, checkOptState, sgd } from '../pc/optim.js';
import { type SafeTensorIn, decodeSafetensors, encodeSafetensors } from './safetensors.js';

export const TRAINING_CHECKPOINT_FORMAT = 'wpc-training-checkpoint';
export const TRAINING_CHECKPOINT_VERSION = 1;

export interface TrainingCheckpointOptions {
  /** The optimiser and its state for the model's parameters; both or neither. */
  optim?: Optimizer;
  optState?: OptState;
  /** Training steps done so far (a non-negative integer). Default: optState's count, else 0. */
  step?: number;
  /** The caller's own information, stored as JSON (e.g. where in the data the run was). */
  extra?: Record<string, unknown>;
}

export interface RestoredTraining {
  model: Model;
  /** The optimiser rebuilt from its stored configuration, and its state; null when the file has none. */
  optim: Optimizer | null;
  optState: OptState | null;
  step: number;
  extra: Record<string, unknown>;
}

/** Serialises a model (and optimiser state) into a safetensors training checkpoint. */
export async function trainingCheckpoint(model: Model, options: TrainingCheckpointOptions = {}): Promise<Uint8Array> {
  const fn = 'trainingCheckpoint';
  checkModel(fn, model);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  const { optim, optState } = options;
  if ((optim === undefined) !== (optState === undefined)) throw new WpcArgumentError(`${fn}: options.optim and options.optState go together (give both or neither)`);
  if (optState !== undefined) {
    // Validates type, kind, runtime and size against the model.
    checkOptState(fn, optState, optim, 'params', model.paramCount, model.runtime, { optim: 'options.optim', optState: 'options.optState' });
  }
  const step = options.step ?? optState?.count ?? 0;
  if (!Number.isSafeInteger(step) || step < 0) argError(fn, 'options.step', 'a non-negative integer', step);
  let extraJson = '{}';
  if (options.extra !== undefined) {
    if (typeof options.extra !== 'object' || options.extra === null || Array.isArray(options.extra)) argError(fn, 'options.extra', 'a plain object', options.extra);
    extraJson = JSON.stringify(options.extra);
  }
  const { weights, biases } = await model.toArrays();
  const tensors: Record<string, SafeTensorIn> = {};
  model.layers.forEach((l, i) => {
    tensors[`layers.${i}.weight`] = { dtype: 'F32', shape: [l.outDim, l.inDim], data: weights[i]! };
    if (l.useBias) tensors[`layers.${i}.bias`] = { dtype: 'F32', shape: [l.outDim], data: biases[i]! };
  });
  const metadata: Record<string, string> = {
    format: TRAINING_CHECKPOINT_FORMAT,
    version: String(TRAINING_CHECKPOINT_VERSION),
    model: JSON.stringify(architectureOf(model)),
    step: String(step),
    extra: extraJson,
  };
  if (optim && optState) {
    metadata.optimizer = JSON.stringify(optim.config);
    metadata.optimizerCount = String(optState.count);
    const state = await optState.stateToArray();
    if (state) tensors['optimizer.state'] = { dtype: 'F32', shape: [optim.stateWidth, model.paramCount], data: state };
  }
  return encodeSafetensors(tensors, metadata);
}

function parseJson(what: string, key: string, text: string | undefined): unknown {
  if (text === undefined) throw new WpcArgumentError(`${what}: metadata.${key} is missing`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new WpcArgumentError(`${what}: metadata.${key} is not valid JSON (${(e as Error).message})`);
  }
}

function parseCount(what: string, key: string, text: string | undefined): number {
  const v = text === undefined || !/^\d{1,15}$/.test(text) ? NaN : Number(text);
  if (!Number.isSafeInteger(v)) throw new WpcArgumentError(`${what}: metadata.${key} must be a non-negative integer, got ${JSON.stringify(text)}`);
  return v;
}

function optimizerFrom(what: string, config: unknown): Optimizer {
  if (typeof config !== 'object' || config === null) throw new WpcArgumentError(`${what}: metadata.optimizer must be an object`);
  const { kind, ...rest } = config as { kind?: unknown } & Record<string, unknown>;
  try {
    if (kind === 'adam') return adam(rest as never);
    if (kind === 'sgd') {
      const { momentum, ...others } = rest;
      return sgd((momentum === undefined || momentum === null ? others : { ...others, momentum }) as never);
    }
  } catch (e) {
    throw new WpcArgumentError(`${what}: metadata.optimizer: ${(e as Error).message}`);
  }
  throw new WpcArgumentError(`${what}: metadata.optimizer.kind must be "adam" or "sgd", got ${JSON.stringify(kind)}`);
}

/**
 * A model (and optimiser state) on `runtime` from a training checkpoint's bytes. `what` names the source in
 * errors (e.g. the path). Everything is validated before anything is allocated.
 */
export function restoreTrainingCheckpoint(runtime: Runtime, bytes: Uint8Array, what = 'restoreTrainingCheckpoint'): RestoredTraining {
  if (typeof what !== 'string') throw new WpcArgumentError(`restoreTrainingCheckpoint: what must be a string (a name for messages), got ${typeof what}`);
  checkRuntime('restoreTrainingCheckpoint', runtime);
  const { tensors, metadata } = decodeSafetensors(bytes, what);
  if (metadata.format !== TRAINING_CHECKPOINT_FORMAT) {
    throw new WpcArgumentError(`${what}: metadata.format must be "${TRAINING_CHECKPOINT_FORMAT}", got ${JSON.stringify(metadata.format)} (not a WPC training checkpoint)`);
  }
  if (metadata.version !== String(TRAINING_CHECKPOINT_VERSION)) {
    throw new WpcArgumentError(`${what}: version ${JSON.stringify(metadata.version)} is not supported (this WPC reads version ${TRAINING_CHECKPOINT_VERSION})`);
  }
  const stored = parseJson(what, 'model', metadata.model);
  if (typeof stored !== 'object' || stored === null) throw new WpcArgumentError(`${what}: metadata.model must be an object`);
  const m = checkArchitecture(what, 'metadata.model', stored as Partial<Architecture>);
  const dims = m.dims;
  const step = parseCount(what, 'step', metadata.step);
  const extra = parseJson(what, 'extra', metadata.extra ?? '{}');
  if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) throw new WpcArgumentError(`${what}: metadata.extra must be a JSON object`);
  const L = dims.length - 1;
  const expected = new Set<string>();
  const take = (name: string, shape: number[]) => {
    const t = tensors[name];
    if (!t) throw new WpcArgumentError(`${what}: tensor ${name} is missing (the model's metadata needs it)`);
    if (t.dtype !== 'F32' || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new WpcArgumentError(`${what}: tensor ${name} must be F32 [${shape.join(', ')}], got ${t.dtype} [${t.shape.join(', ')}]`);
    }
    expected.add(name);
    return t.data as Float32Array;
  };
  const weights = Array.from({ length: L }, (_, l) => take(`layers.${l}.weight`, [dims[l + 1]!, dims[l]!]));
  const biases = m.useBias ? Array.from({ length: L }, (_, l) => take(`layers.${l}.bias`, [dims[l + 1]!])) : null;
  let optim: Optimizer | null = null;
  let state: Float32Array | null = null;
  let count = 0;
  if (metadata.optimizer !== undefined) {
    optim = optimizerFrom(what, parseJson(what, 'optimizer', metadata.optimizer));
    count = parseCount(what, 'optimizerCount', metadata.optimizerCount);
    const paramCount = dims.slice(0, -1).reduce((s, d, l) => s + d * dims[l + 1]!, 0) + (m.useBias ? dims.slice(1).reduce((s, d) => s + d, 0) : 0);
    if (optim.stateWidth > 0) state = take('optimizer.state', [optim.stateWidth, paramCount]);
  }
  const unknown = Object.keys(tensors).filter((name) => !expected.has(name));
  if (unknown.length > 0) throw new WpcArgumentError(`${what}: unexpected tensor ${unknown[0]} (not part of this model${optim ? ' or its optimiser' : ''})`);
  if (state) {
    const bad = state.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new WpcArgumentError(`${what}: tensor optimizer.state must be finite, got ${state[bad]} at index ${bad}`);
  }
  let model: Model;
  try {
    model = mlpFromWeights(runtime, {
      dims,
      weights,
      biases,
      actFn: m.actFn,
      paramType: m.paramType,
      skipModel: m.skipModel,
      gamma: m.gamma,
    });
  } catch (e) {
    if (e instanceof WpcArgumentError) throw new WpcArgumentError(`${what}: ${e.message}`);
    throw e;
  }
  let optState: OptState | null = null;
  if (optim) {
    optState = optim.init(model);
    optState.loadState(state, count);
  }
  return { model, optim, optState, step, extra: extra as Record<string, unknown> };
}
