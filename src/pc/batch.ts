/**
 * Moving a batch in and out of a workspace, with the argument checks every public PC function shares. All
 * checks run before anything is written or recorded, so a bad argument leaves every GPU buffer as it was.
 */
import { WpcArgumentError, argError, checkFiniteData, checkOneOf } from '../runtime/errors.js';
import { Recorder } from '../runtime/recorder.js';
import { Tensor, checkTensor, formatShape } from '../runtime/tensor.js';
import { Model } from './model.js';
import { type Loss, Workspace } from './workspace.js';

/** A batch given as a GPU tensor `[B, d]`, or as a row-major `Float32Array` of B·d values (uploaded). */
export type BatchData = Tensor | Float32Array;

export const LOSSES: readonly Loss[] = ['mse', 'ce'];

export function checkModel(fn: string, model: unknown): Model {
  if (!(model instanceof Model)) argError(fn, 'model', 'a Model (from makeMlp or mlpFromWeights)', model);
  model.checkAlive(fn);
  return model;
}

export function checkLoss(fn: string, loss: unknown): Loss {
  return checkOneOf(fn, 'options.loss', loss ?? 'mse', LOSSES);
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
      throw new WpcArgumentError(`${fn}: ${arg} must hold B×${width} values (row-major [B, ${width}]), got a Float32Array of length ${data.length}`);
    }
    checkFiniteData(fn, arg, data);
    return data.length / width;
  }
  return argError(fn, arg, `a Tensor or Float32Array of shape [B, ${width}]`, data);
}

/** Checks input/output (and optional activities) against the model; returns the batch size. */
export function checkBatch(
  fn: string,
  model: Model,
  output: unknown,
  input: unknown,
  activities?: unknown,
): number {
  const B = batchSizeOf(fn, 'output', output, model.outputDim, model);
  if (input === undefined) {
    throw new WpcArgumentError(`${fn}: options.input is required (supervised PC clamps the input layer to it)`);
  }
  const Bx = batchSizeOf(fn, 'options.input', input, model.inputDim, model);
  if (Bx !== B) throw new WpcArgumentError(`${fn}: options.input has ${Bx} rows but output has ${B}; they must be the same batch`);
  if (activities !== undefined) checkActivities(fn, model, activities, B);
  return B;
}

export function checkActivities(fn: string, model: Model, activities: unknown, B: number): Tensor[] {
  if (!Array.isArray(activities) || activities.length !== model.depth) {
    argError(fn, 'activities', `an array of ${model.depth} tensors (one per layer, the last being the output layer's)`, activities);
  }
  activities.forEach((a, i) => checkTensor(fn, `activities[${i}]`, a, model.runtime, [B, model.dims[i + 1]!]));
  return activities as Tensor[];
}

function put(ws: Workspace, rec: Recorder, data: BatchData, offset: number): void {
  if (data instanceof Tensor) {
    rec.copy(data.buffer, data.byteOffset, ws.buffer, offset * 4, data.byteLength);
  } else {
    ws.runtime.device.queue.writeBuffer(ws.buffer, offset * 4, data.buffer, data.byteOffset, data.byteLength);
  }
}

/** Puts x and the target in place (uploads happen now, in queue order; tensor copies are recorded). */
export function loadBatch(ws: Workspace, rec: Recorder, input: BatchData, output: BatchData | undefined): void {
  put(ws, rec, input, ws.x);
  if (output !== undefined) put(ws, rec, output, ws.target);
}

/**
 * Copies caller activities into y, then computes φ(y) and the first layer's prediction: the state a solve or an
 * energy evaluation starts from. Needs the solver config's layout (writeSolverConfig) for `activate`.
 */
export function loadActivities(ws: Workspace, rec: Recorder, activities: readonly Tensor[]): void {
  activities.forEach((a, i) => rec.copy(a.buffer, a.byteOffset, ws.buffer, ws.activityOffset(i + 1) * 4, a.byteLength));
  ws.recordElementwise(rec, 'activate');
  ws.recordFirstPrediction(rec);
}

/** Copies workspace regions (one per layer) into new tensors of shape [B, d_l]. */
export function copyOutLayers(ws: Workspace, rec: Recorder, offsetOf: (l: number) => number): Tensor[] {
  const out: Tensor[] = [];
  for (let l = 1; l <= ws.model.depth; l++) {
    const t = ws.runtime.empty([ws.batch, ws.model.dims[l]!]);
    rec.copy(ws.buffer, offsetOf(l) * 4, t.buffer, 0, t.byteLength);
    out.push(t);
  }
  return out;
}

/** Copies `count` values at `offset` of the workspace into a new tensor of the given shape. */
export function copyOutScalars(ws: Workspace, rec: Recorder, offset: number, shape: number[]): Tensor {
  const t = ws.runtime.empty(shape);
  rec.copy(ws.buffer, offset * 4, t.buffer, 0, t.byteLength);
  return t;
}

/** Runs `task` on the model's workspace for batch size B, after all earlier work on it. */
export async function onWorkspace<T>(model: Model, B: number, task: (ws: Workspace, rec: Recorder) => T | Promise<T>): Promise<T> {
  const ws = await Workspace.get(model, B, 'train');
  return ws.exclusive(async () => {
    model.checkAlive('WPC');
    const rec = new Recorder(model.runtime, 'wpc');
    return task(ws, rec);
  });
}

export interface ParamGradResult {
  /** ∂F/∂W_l, shaped `[out, in]` like the weights. */
  weights: Tensor[];
  /** ∂F/∂b_l, or null for layers without bias. */
  biases: (Tensor | null)[];
}

/** New tensors holding the model's last parameter gradients. */
export function copyParamGrads(model: Model, rec: Recorder): ParamGradResult {
  const grads = model.grads();
  const copy = (offset: number, shape: number[]) => {
    const t = model.runtime.empty(shape);
    rec.copy(grads, offset * 4, t.buffer, 0, t.byteLength);
    return t;
  };
  return {
    weights: model.layers.map((l) => copy(l.weightOffset, [l.outDim, l.inDim])),
    biases: model.layers.map((l) => (l.useBias ? copy(l.biasOffset, [l.outDim]) : null)),
  };
}
