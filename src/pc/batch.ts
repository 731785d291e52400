/**
 * Moving a batch in and out of a workspace, with the argument checks every public PC function shares. All
 * checks run before anything is written or recorded, so a bad argument leaves every GPU buffer as it was.
 */
import {
  WpcArgumentError,
  argError,
  checkFinite,
  checkFiniteData,
  checkKnownKeys,
  checkOneOf,
} from '../runtime/errors.js';
import { checkFits, storageLimit } from '../runtime/limits.js';
import { Recorder } from '../runtime/recorder.js';
import { Tensor, checkTensor, formatShape } from '../runtime/tensor.js';
import { Random } from '../util/random.js';
import { biasTensor, weightMatrix } from './layers/index.js';
import { LOSSES } from './layers/output.js';
import { Model } from './model.js';
import {
  type EnergyTerms,
  type Loss,
  type Mode,
  PLAIN_ENERGY,
  Workspace,
  type WorkspaceNeeds,
  checkWorkspaceFits,
} from './workspace.js';

/** A batch given as a GPU tensor `[B, d]`, or as a row-major `Float32Array` of B·d values (uploaded). */
export type BatchData = Tensor | Float32Array;

export function checkModel(fn: string, model: unknown): Model {
  if (!(model instanceof Model)) argError(fn, 'model', 'a Model (from makeMlp or mlpFromWeights)', model);
  model.checkAlive(fn);
  return model;
}

export function checkLoss(fn: string, loss: unknown, model?: Model): Loss {
  const checked = checkOneOf(fn, 'options.loss', loss ?? 'mse', LOSSES);
  const out = model?.shapes.at(-1);
  // JPC's cross-entropy takes the softmax along the last axis; WPC's along the whole output, the same for a vector.
  if (checked === 'ce' && out && out.length !== 1)
    throw new WpcArgumentError(
      `${fn}: options.loss 'ce' needs a vector output (a dense last layer), got an output of shape [${out.join(', ')}]; use 'mse'`,
    );
  return checked;
}

/** Batch size implied by `data` having `width` columns. */
export function batchSizeOf(fn: string, arg: string, data: unknown, width: number, model: Model): number {
  if (data instanceof Tensor) {
    checkTensor(fn, arg, data, model.runtime);
    if (data.shape.length !== 2 || data.shape[1] !== width) {
      throw new WpcArgumentError(`${fn}: ${arg} must have shape [B, ${width}], got ${formatShape(data.shape)}`);
    }
    return data.shape[0]!;
  }
  if (data instanceof Float32Array) {
    if (data.length === 0 || data.length % width !== 0) {
      throw new WpcArgumentError(
        `${fn}: ${arg} must hold B×${width} values (row-major [B, ${width}]), got a Float32Array of length ${data.length}`,
      );
    }
    checkFiniteData(fn, arg, data);
    return data.length / width;
  }
  return argError(fn, arg, `a Tensor or Float32Array of shape [B, ${width}]`, data);
}

/**
 * Checks input/output (and optional activities) against the model; returns the batch size and the mode: with
 * no input (when `unsupervised` allows it) the activities start with a free z_0 (unsupervised PC).
 */
export function checkBatch(
  fn: string,
  model: Model,
  output: unknown,
  input: unknown,
  activities?: unknown,
  inputName = 'options.input',
  unsupervised = false,
): { B: number; mode: Mode } {
  const B = batchSizeOf(fn, 'output', output, model.outputDim, model);
  let mode: Mode = 'supervised';
  if (input === undefined) {
    if (!unsupervised)
      throw new WpcArgumentError(`${fn}: ${inputName} is required (supervised PC clamps the input layer to it)`);
    mode = 'unsupervised';
  } else {
    const Bx = batchSizeOf(fn, inputName, input, model.inputDim, model);
    if (Bx !== B)
      throw new WpcArgumentError(`${fn}: ${inputName} has ${Bx} rows but output has ${B}; they must be the same batch`);
  }
  if (activities !== undefined) checkActivities(fn, model, activities, B, mode);
  return { B, mode };
}

/** The optional terms of the PC energy every energy, gradient, update and solve takes (JPC's keyword arguments). */
export interface EnergyTermOptions {
  /** λ, JPC's `output_energy_scaling`: the output layer's energy is multiplied by it. Default 1. */
  outputEnergyScaling?: number;
  /** (wd/2)·Σ_l ‖W_l‖² added to the energy (acts on every layer; a silent no-op in JPC's MLPs). Default 0. */
  weightDecay?: number;
  /** (sp/2)·Σ_l ‖W_lᵀW_l − I‖² added to the energy (a silent no-op in JPC's MLPs). Default 0. */
  spectralPenalty?: number;
  /** (ad/2)·Σ_l mean_b ‖z_{l,b}‖² over every activity (the output's dummy and a free z_0 too). Default 0. */
  activityDecay?: number;
}

export const ENERGY_TERM_KEYS = ['outputEnergyScaling', 'weightDecay', 'spectralPenalty', 'activityDecay'] as const;

export function resolveEnergyTerms(fn: string, opts: EnergyTermOptions): EnergyTerms {
  return {
    lambda: checkFinite(fn, 'options.outputEnergyScaling', opts.outputEnergyScaling ?? 1, { min: 0 }),
    weightDecay: checkFinite(fn, 'options.weightDecay', opts.weightDecay ?? 0, { min: 0 }),
    spectralPenalty: checkFinite(fn, 'options.spectralPenalty', opts.spectralPenalty ?? 0, { min: 0 }),
    activityDecay: checkFinite(fn, 'options.activityDecay', opts.activityDecay ?? 0, { min: 0 }),
  };
}

/** What the start of a call checked, resolved and captured. */
interface CallStart<O, R> {
  opts: O;
  loss: Loss;
  B: number;
  cap: Captured;
  mode: Mode;
  terms: EnergyTerms;
  /** What the call's own `resolve` returned (undefined without one). */
  resolved: R;
}

/**
 * The start of every `(model, [activities,] output, options)` call: checks the model, the options (no unknown
 * keys), the loss, the batch, the energy terms and then the call's own options with `resolve` (which returns
 * what it resolved, e.g. the solver), and only then captures the inputs, so a call that fails a check has
 * allocated and changed nothing. Without `options.input` the call is unsupervised (when `unsupervised` allows it).
 */
export function beginCall<O extends { input?: BatchData | undefined; loss?: Loss } & EnergyTermOptions, R = undefined>(
  fn: string,
  model: Model,
  activities: readonly Tensor[] | undefined,
  output: BatchData,
  options: O,
  keys: readonly string[],
  resolve?: (opts: O, mode: Mode, B: number) => R,
  unsupervised = true,
): CallStart<O, R> {
  checkModel(fn, model);
  const opts = checkOptions(fn, options, keys);
  const loss = checkLoss(fn, opts.loss, model);
  const { B, mode } = checkBatch(fn, model, output, opts.input, activities, 'options.input', unsupervised);
  const terms = resolveEnergyTerms(fn, opts);
  const resolved = resolve ? resolve(opts, mode, B) : (undefined as R);
  checkWorkspaces(fn, [{ model, B, mode, terms }]);
  return { opts, loss, B, mode, terms, resolved, cap: captureBatch(model, B, opts.input, output, activities ?? []) };
}

/**
 * Refuses, before anything is allocated, a call whose workspaces the device cannot hold: each request's model at
 * its batch size with what the call needs (default: one gradient evaluation), and the spectral penalty's scratch
 * (Σ_l d_l² floats) where the terms have one. `batchArg` names what sets the batch size. The captured copies of
 * the inputs are smaller than the workspace (which holds them), so they fit too.
 */
export function checkWorkspaces(fn: string, requests: readonly WorkspaceRequest[], batchArg = 'output'): void {
  for (const r of requests) {
    const { model, B } = r;
    checkWorkspaceFits(
      `${fn}: ${batchArg} (${B} rows)`,
      model.runtime,
      model,
      B,
      'train',
      r.mode ?? 'supervised',
      r.needs ?? { stages: 2, gridSteps: 1 },
    );
    if (r.terms && r.terms.spectralPenalty !== 0) {
      const floats = model.layers.reduce((s, l) => s + weightMatrix(l).cols ** 2, 0);
      checkFits(
        `${fn}: options.spectralPenalty ${r.terms.spectralPenalty}`,
        `the Gram matrices W_lᵀW_l of every layer (${floats} floats)`,
        floats * 4,
        storageLimit(model.runtime.limits),
      );
    }
  }
}

/**
 * Refuses `options.batchSize` B where one of the [B, d] tensors (d in `widths`) a call returns would not fit a
 * storage binding.
 */
export function checkBatchTensors(fn: string, model: Model, B: number, widths: readonly number[]): void {
  const widest = Math.max(...widths);
  checkFits(
    `${fn}: options.batchSize ${B}`,
    `a [${B}, ${widest}] tensor`,
    B * widest * 4,
    storageLimit(model.runtime.limits),
  );
}

/** The options object every PC function takes: an object (the input lives in it). */
export function checkOptions<T extends object>(fn: string, options: T | undefined | null, known: readonly string[]): T {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    argError(fn, 'options', 'an object such as { input }', options);
  }
  checkKnownKeys(fn, 'options', options, known);
  return options;
}

function checkActivities(
  fn: string,
  model: Model,
  activities: unknown,
  B: number,
  mode: Mode = 'supervised',
): Tensor[] {
  const first = mode === 'unsupervised' ? 0 : 1;
  const count = model.depth + 1 - first;
  if (Array.isArray(activities) && mode === 'unsupervised' && activities.length === model.depth) {
    throw new WpcArgumentError(
      `${fn}: got ${model.depth} activities but no options.input: without options.input the call is unsupervised and activities must be ${count} tensors (a free z_0 of width ${model.dims[0]} first); pass options.input for supervised PC`,
    );
  }
  if (!Array.isArray(activities) || activities.length !== count) {
    const what =
      mode === 'unsupervised'
        ? `an array of ${count} tensors (z_0, free because there is no input, then one per layer, the last being the output layer's)`
        : `an array of ${count} tensors (one per layer, the last being the output layer's)`;
    argError(fn, 'activities', what, activities);
  }
  activities.forEach((a, i) => checkTensor(fn, `activities[${i}]`, a, model.runtime, [B, model.dims[i + first]!]));
  return activities as Tensor[];
}

/**
 * A call's inputs, captured when the call is made: private GPU copies, so the caller may refill a
 * `Float32Array` or dispose a tensor as soon as the call returns its promise. `queue.writeBuffer` copies the data
 * at once; tensors are copied by a command submitted at once (queue-ordered before anything later).
 */
export interface Captured {
  B: number;
  /** Null in unsupervised calls. */
  input: Tensor | null;
  output: Tensor;
  activities: Tensor[];
  /** Gives the copies back to the pool (after the call's work is submitted). */
  release(): void;
}

export function captureBatch(
  model: Model,
  B: number,
  input: BatchData | undefined,
  output: BatchData | undefined,
  activities: readonly Tensor[] = [],
): Captured {
  const rt = model.runtime;
  const encoder = rt.device.createCommandEncoder({ label: 'wpc.capture' });
  let copies = 0;
  const take = (data: BatchData, shape: number[]): Tensor => {
    const t = rt.empty(shape);
    if (data instanceof Float32Array) {
      rt.device.queue.writeBuffer(t.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    } else {
      encoder.copyBufferToBuffer(data.buffer, data.byteOffset, t.buffer, 0, t.byteLength);
      copies++;
    }
    return t;
  };
  const captured: Captured = {
    B,
    input: input === undefined ? null : take(input, [B, model.inputDim]),
    output: output === undefined ? rt.empty([1]) : take(output, [B, model.outputDim]),
    activities: activities.map((a) => take(a, [...a.shape])),
    release() {
      for (const t of [captured.input, captured.output, ...captured.activities]) t?.dispose();
    },
  };
  if (copies > 0) rt.submit([encoder.finish()]);
  return captured;
}

/** Puts x (if any) and the target in place (recorded copies from the captured inputs). */
export function loadBatch(ws: Workspace, rec: Recorder, input: Tensor | null, output: Tensor | undefined): void {
  if (input) rec.copy(input.buffer, input.byteOffset, ws.buffer, ws.x * 4, input.byteLength);
  if (output !== undefined) rec.copy(output.buffer, output.byteOffset, ws.buffer, ws.target * 4, output.byteLength);
}

/**
 * Copies caller activities into y, then computes φ(y) and the first layer's prediction: the state a solve or an
 * energy evaluation starts from. Needs the solver config's layout (writeSolverConfig) for `activate`.
 */
export function loadActivities(ws: Workspace, rec: Recorder, activities: readonly Tensor[]): void {
  activities.forEach((a, i) =>
    rec.copy(a.buffer, a.byteOffset, ws.buffer, ws.activityOffset(i + ws.first) * 4, a.byteLength),
  );
  ws.recordElementwise(rec, 'activate');
  ws.recordFirstPrediction(rec);
}

/** Copies workspace regions (one per activity of the state, l = first..L) into new tensors of shape [B, d_l]. */
export function copyOutLayers(ws: Workspace, rec: Recorder, offsetOf: (l: number) => number): Tensor[] {
  const out: Tensor[] = [];
  for (let l = ws.first; l <= ws.model.depth; l++) {
    const t = ws.runtime.empty([ws.batch, ws.model.dims[l]!]);
    rec.copy(ws.buffer, offsetOf(l) * 4, t.buffer, 0, t.byteLength);
    out.push(t);
  }
  return out;
}

/** Copies values at `offset` of the workspace's scalars into a new tensor of the given shape. */
export function copyOutScalars(ws: Workspace, rec: Recorder, offset: number, shape: number[]): Tensor {
  const t = ws.runtime.empty(shape);
  rec.copy(ws.scalars, offset * 4, t.buffer, 0, t.byteLength);
  return t;
}

/**
 * Runs `task` on the model's workspace for batch size B (in `mode`), after all earlier work on it, with the
 * energy terms applied (default: JPC's plain energy).
 */
export async function onWorkspace<T>(
  model: Model,
  B: number,
  captured: Captured | undefined,
  task: (ws: Workspace, rec: Recorder) => T | Promise<T>,
  needs?: WorkspaceNeeds,
  mode: Mode = 'supervised',
  terms?: EnergyTerms,
): Promise<T> {
  try {
    const ws = await Workspace.get(model, B, 'train', needs, mode);
    return await ws.exclusive(async () => {
      model.checkAlive('WPC');
      ws.applyEnergy(terms ?? PLAIN_ENERGY);
      await ws.ensureRegularizer();
      const rec = new Recorder(model.runtime, 'wpc');
      return task(ws, rec);
    });
  } finally {
    captured?.release();
  }
}

/** One workspace a multi-model task needs. */
export interface WorkspaceRequest {
  model: Model;
  B: number;
  mode?: Mode;
  needs?: WorkspaceNeeds;
  terms?: EnergyTerms;
}

/**
 * Runs `task` with several workspaces (e.g. a generator's and an amortiser's), holding every one of their locks:
 * taken in one global order (model, then mode), so two such tasks can never wait on each other.
 */
export async function onWorkspaces<T>(
  requests: readonly WorkspaceRequest[],
  captured: Captured | undefined,
  task: (ws: Workspace[], rec: Recorder) => T | Promise<T>,
): Promise<T> {
  try {
    const wss = await Promise.all(
      requests.map((r) => Workspace.get(r.model, r.B, 'train', r.needs, r.mode ?? 'supervised')),
    );
    const locks = [...new Set(wss)].sort(
      (a, b) =>
        a.model.serial - b.model.serial || a.batch - b.batch || (a.mode < b.mode ? -1 : a.mode > b.mode ? 1 : 0),
    );
    const run = async (k: number): Promise<T> => {
      if (k < locks.length) return locks[k]!.exclusive(() => run(k + 1));
      for (const r of requests) r.model.checkAlive('WPC');
      for (const [i, ws] of wss.entries()) {
        ws.applyEnergy(requests[i]!.terms ?? PLAIN_ENERGY);
        await ws.ensureRegularizer();
      }
      return task(wss, new Recorder(requests[0]!.model.runtime, 'wpc'));
    };
    return await run(0);
  } finally {
    captured?.release();
  }
}

export interface ParamGradResult {
  /** ∂F/∂W_l, shaped like the weights (`[out, in]`; a convolution's 4-D kernel); null for a pooling layer. */
  weights: (Tensor | null)[];
  /** ∂F/∂b_l, or null for layers without bias. */
  biases: (Tensor | null)[];
}

/** New tensors holding the model's last parameter gradients. */
export function copyParamGrads(model: Model, rec: Recorder): ParamGradResult {
  const grads = model.grads();
  const copy = (offset: number, shape: readonly number[]) => {
    const t = model.runtime.empty([...shape]);
    rec.copy(grads, offset * 4, t.buffer, 0, t.byteLength);
    return t;
  };
  return {
    weights: model.layers.map((l) => {
      const w = weightMatrix(l);
      return w.rows === 0 ? null : copy(w.offset, model.weights[model.layers.indexOf(l)]!.shape);
    }),
    biases: model.layers.map((l) => {
      const b = biasTensor(l);
      return b ? copy(b.offset, b.shape) : null;
    }),
  };
}

/**
 * Writes N(0, σ²) draws into every activity of the state (z_first..z_L), as `initActivitiesFromNormal` makes
 * them (same per-layer streams for the same seed). Queue-ordered: call before recording what reads them.
 */
export function writeNormalActivities(ws: Workspace, seed: number, sigma: number): void {
  const root = new Random(seed);
  const data = new Float32Array(ws.nAll);
  for (let l = ws.first; l <= ws.model.depth; l++) {
    const stream = root.fork(l);
    const start = ws.layer[l]!;
    const n = ws.batch * ws.model.dims[l]!;
    for (let i = 0; i < n; i++) data[start + i] = sigma * stream.normal();
  }
  ws.runtime.device.queue.writeBuffer(ws.buffer, ws.activityOffset(ws.first) * 4, data);
}

/** Checks that every model lives on the same runtime (GPU device) as the first. */
export function checkSameRuntime(fn: string, models: readonly { name: string; model: Model }[]): void {
  const rt = models[0]!.model.runtime;
  for (const { name, model } of models.slice(1)) {
    if (model.runtime !== rt)
      throw new WpcArgumentError(`${fn}: ${name} belongs to a different runtime (GPU device) than ${models[0]!.name}`);
  }
}
