/**
 * Training checkpoints in the safetensors format (browser-safe; Node's file helpers are in node-files.ts): a
 * model, optionally its optimiser and optimiser state, and the training step, so that a run can stop and go on
 * exactly where it was. Python reads one with `safetensors.numpy.load_file(path)` and `safe_open(...).metadata()`.
 *
 * Tensors (float32, little-endian):
 *   layers.<l>.weight   [d_{l+1}, d_l]   W_l, JPC's layout (out × in); a convolution's [C_out, C_in, kh, kw]
 *   layers.<l>.bias     [d_{l+1}]        b_l, when the layer has a bias ([C_out] for a convolution)
 *   optimizer.state     [w, P]           w = 1 (momentum trace) or 2 (Adam's m, then v) planes over the P
 *                                        parameters in the model's flat order (per layer: weight, then bias)
 * A layer without parameters (a pooling) has no tensors; <l> counts every layer of the model.
 * Metadata (strings): wpc.crc32c (the file's checksum, see safetensors.ts), format "wpc-training-checkpoint",
 * version "2", model (JSON: an MLP's dims, actFn, useBias, paramType, skipModel, gamma, or { definition } for a
 * model made from a list of layers, see stored-model.ts), optimizer (JSON of its config, absent without one),
 * optimizerCount (optax's count), step, and extra (JSON, the caller's own, e.g. a training loop's position and
 * settings; `settings`, `curve` and `tests` hold `wpc train`'s log, see training-fields.ts).
 *
 * Saving refuses what loading would refuse (non-finite values, an optimiser configuration out of range, a
 * malformed log), so every file written loads. Loading verifies the checksum, then validates the whole file and
 * every field before it allocates anything, so a bad file never leaves a half-made model behind. For a layer
 * list, makeModel's checks of the definition and of the parameter count run before the parameters are uploaded;
 * the shape of each layer's tensor is compared with the rebuilt model's (whose layout only makeModel knows), and
 * a mismatch disposes it again. Save → load is bit-exact (the raw float32 words round-trip).
 */
import { WpcArgumentError, argError, checkKnownKeys, describe } from '../runtime/errors.js';
import type { Runtime } from '../runtime/runtime.js';
import { type Model, checkRuntime } from '../pc/model.js';
import {
  ARCHITECTURE_FIELDS,
  type CheckpointLoadOptions,
  architectureOf,
  buildModel,
  checkArchitecture,
  checkLoadOptions,
  checkStoredKeys,
  storedParamCount,
} from './checkpoint.js';
import { checkModel } from '../pc/batch.js';
import { type OptState, type Optimizer, checkOptState } from '../pc/optim.js';
import { type SafeTensorIn, decodeSafetensors, encodeSafetensors } from './safetensors.js';
import { asStoredJson, checkJsonObject, jsonSyntaxProblem } from './json-values.js';
import { checkTrainingLog, optimizerFromConfig, parseCount } from './training-fields.js';
import {
  isStoredDefinition,
  modelFromStoredDefinition,
  readParams,
  storedDefinition,
  storedTensors,
} from './stored-model.js';

export const TRAINING_CHECKPOINT_FORMAT = 'wpc-training-checkpoint';
/** Version 2 carries the checksum; version 1 (without) loads only with `allowUnverified`. */
export const TRAINING_CHECKPOINT_VERSION = 2;

const METADATA_KEYS = ['format', 'version', 'model', 'step', 'extra', 'optimizer', 'optimizerCount'];

export interface TrainingCheckpointOptions {
  /** The optimiser and its state for the model's parameters; both or neither. */
  optim?: Optimizer;
  optState?: OptState;
  /** Training steps done so far (a non-negative integer). Default: optState's count, else 0. */
  step?: number;
  /**
   * The caller's own information, stored as JSON reads it back (plain data; see training-fields.ts for `wpc train`'s
   * keys).
   */
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

/** Throws unless every value is finite (and, for Adam's second moments `v`, ≥ 0). */
function checkValues(what: string, name: string, data: Float32Array, nonNegativeFrom = data.length): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!Number.isFinite(v) || (i >= nonNegativeFrom && v < 0)) {
      const want = i >= nonNegativeFrom ? 'finite and ≥ 0 (Adam second moments)' : 'finite';
      throw new WpcArgumentError(`${what}: ${name} must be ${want}, got ${v} at index ${i}`);
    }
  }
}

/** Serialises a model (and optimiser state) into a safetensors training checkpoint. */
export async function trainingCheckpoint(model: Model, options: TrainingCheckpointOptions = {}): Promise<Uint8Array> {
  const fn = 'trainingCheckpoint';
  checkModel(fn, model);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['optim', 'optState', 'step', 'extra']);
  const { optim, optState } = options;
  if ((optim === undefined) !== (optState === undefined))
    throw new WpcArgumentError(`${fn}: options.optim and options.optState go together (give both or neither)`);
  if (optState !== undefined) {
    // Validates type, kind, runtime and size against the model.
    checkOptState(fn, optState, optim, 'params', model.paramCount, model.runtime, {
      optim: 'options.optim',
      optState: 'options.optState',
    });
    optimizerFromConfig(fn, 'options.optim.config', optim!.config);
  }
  const step = options.step ?? optState?.count ?? 0;
  if (!Number.isSafeInteger(step) || step < 0) argError(fn, 'options.step', 'a non-negative integer', step);
  let extra: Record<string, unknown> = {};
  if (options.extra !== undefined) {
    extra = checkJsonObject(fn, 'options.extra', asStoredJson(fn, 'options.extra', options.extra));
    checkTrainingLog(fn, 'options.extra', extra, step);
  }
  const described = model.definition ? { definition: storedDefinition(fn, model) } : architectureOf(model);
  const params = await readParams(model);
  const tensors: Record<string, SafeTensorIn> = {};
  for (const t of storedTensors(model)) {
    const data = params.subarray(t.offset, t.offset + t.length);
    checkValues(fn, `the model's ${t.name}`, data);
    tensors[t.name] = { dtype: 'F32', shape: [...t.shape], data };
  }
  const metadata: Record<string, string> = {
    format: TRAINING_CHECKPOINT_FORMAT,
    version: String(TRAINING_CHECKPOINT_VERSION),
    model: JSON.stringify(described),
    step: String(step),
    extra: JSON.stringify(extra),
  };
  if (optim && optState) {
    metadata.optimizer = JSON.stringify(optim.config);
    metadata.optimizerCount = String(optState.count);
    const state = await optState.stateToArray();
    if (state) {
      checkValues(fn, 'options.optState', state, optim.config.kind === 'adam' ? model.paramCount : state.length);
      tensors['optimizer.state'] = { dtype: 'F32', shape: [optim.stateWidth, model.paramCount], data: state };
    }
  }
  return encodeSafetensors(tensors, metadata);
}

/** A stored tensor's data, checked: F32 of `shape`, finite (and ≥ 0 from `nonNegativeFrom` on). */
type Take = (name: string, shape: readonly number[], nonNegativeFrom?: number) => Float32Array;

/** What a file's model tensors give: the parameter count, and the model they make (nothing left on failure). */
interface ModelPart {
  paramCount: number;
  build(what: string, runtime: Runtime): Model;
}

/** An MLP's tensors: layers.<l>.weight [d_{l+1}, d_l] and, with biases, layers.<l>.bias, for every layer. */
function mlpTensors(arch: ReturnType<typeof checkArchitecture>, take: Take): ModelPart {
  const { dims } = arch;
  const L = dims.length - 1;
  const weights = Array.from({ length: L }, (_, l) => take(`layers.${l}.weight`, [dims[l + 1]!, dims[l]!]));
  const biases = arch.useBias ? Array.from({ length: L }, (_, l) => take(`layers.${l}.bias`, [dims[l + 1]!])) : null;
  return {
    paramCount: storedParamCount(dims, arch.useBias),
    build: (what, runtime) => buildModel(what, runtime, arch, weights, biases),
  };
}

/** A layer tensor's name: layers.<l>.weight or layers.<l>.bias, <l> in canonical decimal. */
const LAYER_TENSOR = /^layers\.(0|[1-9]\d{0,5})\.(weight|bias)$/;

/**
 * A layer list's tensors: every layers.<l>.<role> of the file, in the model's buffer order (by layer, weight
 * first). Their total must be the definition's parameter count (makeModel checks it before allocating); each
 * tensor's name and shape are then compared with the rebuilt model's.
 */
function layerListTensors(
  what: string,
  definition: unknown,
  tensors: Readonly<Record<string, { shape: number[] }>>,
  take: Take,
): ModelPart {
  const parts = Object.keys(tensors)
    .flatMap((name) => {
      const m = LAYER_TENSOR.exec(name);
      return m ? [{ name, layer: Number(m[1]), bias: m[2] === 'bias' }] : [];
    })
    .sort((a, b) => a.layer - b.layer || Number(a.bias) - Number(b.bias))
    .map((p) => ({ name: p.name, shape: tensors[p.name]!.shape, data: take(p.name, tensors[p.name]!.shape) }));
  const params = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
  let at = 0;
  for (const p of parts) {
    params.set(p.data, at);
    at += p.data.length;
  }
  return {
    paramCount: params.length,
    build: (whatFile, runtime) => {
      const model = modelFromStoredDefinition(whatFile, runtime, 'metadata.model.definition', definition, params);
      const problem = tensorMismatch(model, parts);
      if (problem !== null) {
        model.dispose();
        throw new WpcArgumentError(`${what}: ${problem}`);
      }
      return model;
    },
  };
}

/** How a file's layer tensors differ from `model`'s (names and shapes), or null when they are its tensors. */
function tensorMismatch(model: Model, stored: readonly { name: string; shape: readonly number[] }[]): string | null {
  const byName = new Map(stored.map((t) => [t.name, t.shape]));
  const shape = (s: readonly number[]) => `[${s.join(', ')}]`;
  for (const t of storedTensors(model)) {
    const got = byName.get(t.name);
    if (got === undefined) return `tensor ${t.name} is missing (the model's definition needs it)`;
    if (shape(got) !== shape(t.shape))
      return `tensor ${t.name} must be F32 ${shape(t.shape)} for the model's definition, got F32 ${shape(got)}`;
    byName.delete(t.name);
  }
  const extra = byName.keys().next();
  return extra.done ? null : `unexpected tensor ${extra.value} (not part of this model: its layer has no such tensor)`;
}

function parseJson(what: string, key: string, text: string | undefined): unknown {
  if (text === undefined) throw new WpcArgumentError(`${what}: metadata.${key} is missing`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new WpcArgumentError(`${what}: metadata.${key} is not valid JSON (${jsonSyntaxProblem(e)})`);
  }
}

/**
 * A model (and optimiser state) on `runtime` from a training checkpoint's bytes. `what` names the source in
 * errors (e.g. the path). The checksum is verified and everything validated before anything is allocated; a
 * refused file changes nothing.
 */
export function restoreTrainingCheckpoint(
  runtime: Runtime,
  bytes: Uint8Array,
  what = 'restoreTrainingCheckpoint',
  options: CheckpointLoadOptions = {},
): RestoredTraining {
  if (typeof what !== 'string')
    throw new WpcArgumentError(
      `restoreTrainingCheckpoint: what must be a string (a name for messages), got ${describe(what)}`,
    );
  checkRuntime('restoreTrainingCheckpoint', runtime);
  checkLoadOptions('restoreTrainingCheckpoint', options);
  const { tensors, metadata, verified } = decodeSafetensors(bytes, what);
  if (metadata.format !== TRAINING_CHECKPOINT_FORMAT) {
    throw new WpcArgumentError(
      `${what}: metadata.format must be "${TRAINING_CHECKPOINT_FORMAT}", got ${describe(metadata.format)} (not a WPC training checkpoint)`,
    );
  }
  if (metadata.version === '1') {
    if (!verified && options.allowUnverified !== true) {
      throw new WpcArgumentError(
        `${what}: a version-1 checkpoint, written before checkpoints carried a checksum: it cannot be verified, so it is refused; load it with the option allowUnverified: true (every other check still applies) and save it again to add one`,
      );
    }
  } else if (metadata.version !== String(TRAINING_CHECKPOINT_VERSION)) {
    throw new WpcArgumentError(
      `${what}: version ${describe(metadata.version)} is not supported (this WPC reads version ${TRAINING_CHECKPOINT_VERSION}, and 1 with allowUnverified)`,
    );
  } else if (!verified) {
    throw new WpcArgumentError(
      `${what}: corrupt: no checksum (metadata wpc.crc32c at the start of the header), which every version-${TRAINING_CHECKPOINT_VERSION} checkpoint carries`,
    );
  }
  checkStoredKeys(what, 'metadata', metadata, METADATA_KEYS);
  const stored = parseJson(what, 'model', metadata.model);
  const layerList = isStoredDefinition(stored);
  if (layerList) {
    checkStoredKeys(what, 'metadata.model', stored, ['definition']);
    checkJsonObject(what, 'metadata.model.definition', stored.definition);
  } else if (typeof stored === 'object' && stored !== null && !Array.isArray(stored))
    checkStoredKeys(what, 'metadata.model', stored, ARCHITECTURE_FIELDS);
  const arch = layerList ? null : checkArchitecture(what, 'metadata.model', stored);
  const step = parseCount(what, 'metadata.step', metadata.step);
  if (metadata.version !== '1' && metadata.extra === undefined)
    throw new WpcArgumentError(`${what}: metadata.extra is missing`);
  const extra = checkJsonObject(what, 'metadata.extra', parseJson(what, 'extra', metadata.extra ?? '{}'));
  checkTrainingLog(what, 'metadata.extra', extra, step);
  let optim: Optimizer | null = null;
  let count = 0;
  if ((metadata.optimizer === undefined) !== (metadata.optimizerCount === undefined)) {
    throw new WpcArgumentError(
      `${what}: metadata.optimizer and metadata.optimizerCount go together, got only ${metadata.optimizer === undefined ? 'optimizerCount' : 'optimizer'}`,
    );
  }
  if (metadata.optimizer !== undefined) {
    optim = optimizerFromConfig(what, 'metadata.optimizer', parseJson(what, 'optimizer', metadata.optimizer));
    count = parseCount(what, 'metadata.optimizerCount', metadata.optimizerCount);
  }
  const expected = new Set<string>();
  const take: Take = (name, shape, nonNegativeFrom) => {
    const t = tensors[name];
    if (!t) throw new WpcArgumentError(`${what}: tensor ${name} is missing (the model's metadata needs it)`);
    if (t.dtype !== 'F32' || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new WpcArgumentError(
        `${what}: tensor ${name} must be F32 [${shape.join(', ')}], got ${t.dtype} [${t.shape.join(', ')}]`,
      );
    }
    expected.add(name);
    checkValues(what, `tensor ${name}`, t.data as Float32Array, nonNegativeFrom);
    return t.data as Float32Array;
  };
  const part = arch
    ? mlpTensors(arch, take)
    : layerListTensors(what, (stored as { definition: unknown }).definition, tensors, take);
  const paramCount = part.paramCount;
  const state =
    optim && optim.stateWidth > 0
      ? take('optimizer.state', [optim.stateWidth, paramCount], optim.config.kind === 'adam' ? paramCount : undefined)
      : null;
  const unknown = Object.keys(tensors).filter((name) => !expected.has(name));
  if (unknown.length > 0)
    throw new WpcArgumentError(
      `${what}: unexpected tensor ${unknown[0]} (not part of this model${optim ? ' or its optimiser' : ''})`,
    );
  const model = part.build(what, runtime);
  let optState: OptState | null = null;
  try {
    if (optim) {
      optState = optim.init(model);
      optState.loadState(state, count);
    }
  } catch (e) {
    optState?.dispose();
    model.dispose();
    throw e;
  }
  return { model, optim, optState, step, extra };
}
