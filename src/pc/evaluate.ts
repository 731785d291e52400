/**
 * Evaluation (JPC's `test_discriminative_pc`) and JPC's loss and accuracy utilities.
 */
import { outputKernel } from '../kernels/output.js';
import { SMALL_WG } from '../kernels/parts.js';
import { reduceKernel } from '../kernels/reduce.js';
import { ROWS, SEGMENT, packRows, packSegments } from '../kernels/structs.js';
import { WpcArgumentError, argError, checkFinite } from '../runtime/errors.js';
import { BufferUsage, STORAGE_USAGE } from '../runtime/flags.js';
import { createBindGroup } from '../runtime/kernel.js';
import { Recorder } from '../runtime/recorder.js';
import { Tensor, checkTensor, formatShape } from '../runtime/tensor.js';
import {
  type BatchData,
  ENERGY_TERM_KEYS,
  type EnergyTermOptions,
  captureBatch,
  checkBatch,
  checkLoss,
  checkModel,
  checkOptions,
  checkWorkspaces,
  loadBatch,
  onWorkspaces,
  resolveEnergyTerms,
  writeNormalActivities,
  type WorkspaceRequest,
} from './batch.js';
import type { Model } from './model.js';
import {
  SOLVER_OPTION_KEYS,
  checkSolveFits,
  integrate,
  refuseRecording,
  resolveSolverOptions,
  workspaceNeeds,
  writeSolverConfig,
  type SolverOptions,
} from './solve/index.js';
import { type Loss, Workspace, checkWorkspaceFits } from './workspace.js';
import { cachedPer } from './workspace/handles.js';

export interface TestOptions {
  /** `'mse'` (default) or `'ce'`. */
  loss?: Loss;
}

/**
 * JPC's `test_discriminative_pc`: the loss and accuracy (in %) of the feedforward prediction on one batch,
 * without inference. Reads back two numbers.
 */
export async function testDiscriminativePc(
  model: Model,
  output: BatchData,
  input: BatchData,
  options: TestOptions = {},
): Promise<{ loss: number; acc: number }> {
  const fn = 'testDiscriminativePc';
  checkModel(fn, model);
  const opts = checkOptions(fn, options, ['loss']);
  const loss = checkLoss(fn, opts.loss, model);
  const { B } = checkBatch(fn, model, output, input, undefined, 'input');
  checkWorkspaceFits(`${fn}: output (${B} rows)`, model.runtime, model, B, 'eval', 'supervised', {
    stages: 0,
    gridSteps: 0,
  });
  const cap = captureBatch(model, B, input, output);
  const ws = await Workspace.get(model, B, 'eval').catch((e: unknown) => {
    cap.release();
    throw e;
  });
  return ws.exclusive(async () => {
    const rec = new Recorder(model.runtime, 'wpc.test');
    loadBatch(ws, rec, cap.input, cap.output);
    ws.recordForward(rec);
    ws.recordLoss(rec, loss);
    rec.submit();
    cap.release();
    const [values] = await model.runtime.read([{ buffer: ws.scalars, byteOffset: ws.scalar.loss * 4, byteLength: 8 }]);
    return { loss: values![0]!, acc: values![1]! };
  });
}

/** The solver options without the recording ones (a test returns scores, not a recording). */
export interface TestGenerativeOptions
  extends Omit<SolverOptions, 'recordIters' | 'recordEvery' | 'recordActivities' | 'maxRecords'>,
    EnergyTermOptions {
  /** Seed of the random initialisation of the activities (required, as JPC's `key`). */
  seed: number;
  /** σ of that initialisation. Default 0.05. */
  sigma?: number;
  /** The generator's output energy, `'mse'` (default) or `'ce'`. */
  loss?: Loss;
}

export interface TestGenerativeResult {
  /** Accuracy (%) of the inferred input z_0 against `input` (argmax against argmax). */
  acc: number;
  /** The generator's feedforward prediction from `input` (e.g. an image per label), [B, outputDim]. */
  preds: Tensor;
}

/** The accuracy of the image layer z_0 against the label in x (the generative test's metric), per workspace. */
const generativeMetric = cachedPer((ws: Workspace) =>
  ws.rowMetric('generative', {
    pred: ws.activityOffset(0),
    target: ws.x,
    cols: ws.model.inputDim,
    out: ws.scalar.misc,
  }),
);

/**
 * JPC's `test_generative_pc`: for a generator trained as `makePcStep(model, …, image, { input: label })`,
 * infers the input from the output — every activity, z_0 included, starts from seeded N(0, σ²) draws and
 * inference runs with only the output clamped to `output` (JPC's defaults: Heun + PID to maxT1 = 500; discrete
 * inference with an optimiser and `steps` too) — and
 * scores the inferred z_0 against `input`. Also returns the feedforward predictions from `input`.
 */
export async function testGenerativePc(
  model: Model,
  output: BatchData,
  input: BatchData,
  options: TestGenerativeOptions,
): Promise<TestGenerativeResult> {
  const fn = 'testGenerativePc';
  checkModel(fn, model);
  const opts = checkOptions(fn, options, ['seed', 'sigma', 'loss', ...ENERGY_TERM_KEYS, ...SOLVER_OPTION_KEYS]);
  refuseRecording(fn, opts);
  if (!Number.isSafeInteger(opts.seed)) argError(fn, 'options.seed', 'a safe integer', opts.seed);
  const sigma = checkFinite(fn, 'options.sigma', opts.sigma ?? 0.05, { min: 0 });
  const loss = checkLoss(fn, opts.loss, model);
  const { B } = checkBatch(fn, model, output, input, undefined, 'input');
  const terms = resolveEnergyTerms(fn, opts);
  const cfg = resolveSolverOptions(fn, opts, 500);
  const workspaces: WorkspaceRequest[] = [
    { model, B, mode: 'unsupervised', needs: workspaceNeeds(cfg), terms },
    { model, B, mode: 'supervised' },
  ];
  checkSolveFits(fn, model, B, 'unsupervised', cfg);
  checkWorkspaces(fn, workspaces);
  const cap = captureBatch(model, B, input, output);
  return onWorkspaces(workspaces, cap, async ([free, clamped], rec) => {
    const ws = free!;
    writeSolverConfig(ws, cfg);
    loadBatch(ws, rec, cap.input, cap.output); // the label goes to x, unused by the energy: the accuracy's truth
    writeNormalActivities(ws, opts.seed, sigma);
    ws.recordElementwise(rec, 'activate');
    await integrate(ws, rec, cfg, loss);
    ws.recordRowMetric(rec, generativeMetric(ws));
    const sup = clamped!;
    loadBatch(sup, rec, cap.input, undefined);
    sup.recordForward(rec);
    const preds = model.runtime.empty([B, model.outputDim]);
    rec.copy(sup.buffer, sup.activityOffset(model.depth) * 4, preds.buffer, 0, preds.byteLength);
    rec.submit();
    const [values] = await model.runtime.read([
      { buffer: ws.scalars, byteOffset: (ws.scalar.misc + 1) * 4, byteLength: 4 },
    ]);
    return { acc: values![0]!, preds };
  });
}

type Metric = 'mse' | 'ce' | 'accuracy';

/** Runs the row kernel and the reduction on copies of `preds` and `labels` in a scratch buffer. */
async function rowMetric(fn: string, metric: Metric, preds: Tensor, labels: Tensor): Promise<Tensor> {
  // Arguments in the caller's order: (preds, labels) for the losses, (truths, preds) for the accuracy.
  const [a, b] = metric === 'accuracy' ? ['truths', 'preds'] : ['preds', 'labels'];
  const first = metric === 'accuracy' ? labels : preds;
  const second = metric === 'accuracy' ? preds : labels;
  if (!(first instanceof Tensor)) argError(fn, a!, 'a Tensor of shape [B, d]', first);
  const rt = first.runtime;
  checkTensor(fn, a!, first, rt);
  checkTensor(fn, b!, second, rt);
  if (
    preds.shape.length !== 2 ||
    labels.shape.length !== 2 ||
    preds.shape[0] !== labels.shape[0] ||
    preds.shape[1] !== labels.shape[1]
  ) {
    throw new WpcArgumentError(
      `${fn}: ${a} and ${b} must both have shape [B, d], got ${formatShape(metric === 'accuracy' ? labels.shape : preds.shape)} and ${formatShape(metric === 'accuracy' ? preds.shape : labels.shape)}`,
    );
  }
  const [rows, cols] = preds.shape as [number, number];
  const [rowsKernel, reduce] = await Promise.all([
    rt.kernel(outputKernel('loss_rows', false)),
    rt.kernel(reduceKernel(rt.adapter.subgroupSize)),
  ]);
  // Scratch: preds, labels, then 4 partials per row; the result goes straight into the output tensor.
  const n = rows * cols;
  const part = 2 * n;
  const scratch = rt.pool.acquire((part + 4 * rows) * 4, STORAGE_USAGE, 'wpc.metric');
  const uniform = rt.pool.acquire(ROWS.bytes, BufferUsage.UNIFORM | BufferUsage.COPY_DST, 'wpc.metric.rows');
  const segments = rt.pool.acquire(SEGMENT.bytes, BufferUsage.STORAGE | BufferUsage.COPY_DST, 'wpc.metric.segment');
  const rowsRecord = { rows, cols, predOff: 0, targetOff: n, partOff: part, lossCe: metric === 'ce' };
  rt.device.queue.writeBuffer(uniform, 0, packRows([rowsRecord]));
  const accuracy = metric === 'accuracy';
  const seg = { off: part + (accuracy ? 1 : 0), count: rows, stride: 4, out: 0, scale: (accuracy ? 100 : 1) / rows };
  rt.device.queue.writeBuffer(segments, 0, packSegments([seg]));
  const out = rt.empty([1]);
  const rec = new Recorder(rt, `wpc.${fn}`);
  rec.copy(preds.buffer, preds.byteOffset, scratch, 0, n * 4);
  rec.copy(labels.buffer, labels.byteOffset, scratch, n * 4, n * 4);
  rec.dispatch(
    rowsKernel,
    createBindGroup(rt.device, rowsKernel, { rows: uniform, work: scratch }),
    Math.ceil(rows / SMALL_WG),
  );
  rec.dispatch(reduce, createBindGroup(rt.device, reduce, { segments, src: scratch, dst: out.buffer }), 1);
  rec.submit();
  for (const buffer of [scratch, uniform, segments]) rt.pool.release(buffer);
  return out;
}

/** JPC's `mse_loss`: ½·mean_b Σ_d (labels − preds)², as a one-element tensor. */
export function mseLoss(preds: Tensor, labels: Tensor): Promise<Tensor> {
  return rowMetric('mseLoss', 'mse', preds, labels);
}

/**
 * JPC's `cross_entropy_loss`: −mean_b Σ labels·log softmax(logits). Computed with a stable log-softmax (JPC takes
 * log of softmax, which gives −inf for very confident wrong predictions; the values agree otherwise).
 */
export function crossEntropyLoss(logits: Tensor, labels: Tensor): Promise<Tensor> {
  return rowMetric('crossEntropyLoss', 'ce', logits, labels);
}

/** JPC's `compute_accuracy`: % of rows whose argmax (first maximum) matches the one-hot truth's. */
export function computeAccuracy(truths: Tensor, preds: Tensor): Promise<Tensor> {
  return rowMetric('computeAccuracy', 'accuracy', preds, truths);
}
