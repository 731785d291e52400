/**
 * Error-reparameterised PC (ePC; Goemaere et al. 2025, "Error Optimization"; JPC's `init_epc_errors`,
 * `epc_energy_fn`, `compute_epc_error_grad`, `compute_epc_param_grads`, `update_epc_errors`,
 * `update_epc_params`).
 *
 * The free variables are the prediction errors of the hidden layers. They define the activities by a forward
 * pass, z_0 = x, z_l = s_l f_l(z_{l−1}) [+ z_{l−1}] + ε_l (l = 1..L−1), z_L = s_L f_L(z_{L−1}), and
 *
 *   F(ε) = (1/B) [ Σ_{l=1}^{L−1} ½‖ε_l‖² + ½‖y − z_L‖² ]     (ce: −Σ y·log_softmax(z_L) for the last term),
 *
 * which is the PC energy at the activities z(ε): ePC changes the variables, not the model, and its gradients
 * reach every layer at once. ∂F/∂ε_l = (ε_l − r_l)/B, with r the output residual back-propagated through the
 * forward pass (r_L = y − z_L, r_l = s_{l+1} φ'(z_l) ⊙ (r_{l+1} W_{l+1}) [+ r_{l+1}]), and
 * ∂F/∂W_l = −(s_l/B) r_lᵀ φ(z_{l−1}).
 *
 * Unsupervised (no input): ε_0 = z_0 is free too and unpenalised, like z_0 in unsupervised PC.
 *
 * Two fixes to JPC, both keeping F(ε) equal to the PC energy at z(ε) as the paper's reparameterisation
 * intends (and as JPC's own docstring formula states):
 * - JPC's supervised ePC also has an output error ε_L, subtracted from the prediction and not penalised, so
 *   inference can drive the output loss, and with it the learning signal, to zero; WPC has no ε_L (errors are
 *   the L − 1 hidden ones; JPC's `init_epc_errors` returns L).
 * - JPC's unsupervised ePC penalises ε_0 and leaves the last hidden error ε_{L−1} unpenalised (an off-by-one);
 *   WPC penalises exactly ε_1..ε_{L−1}.
 *
 * On the GPU the errors live in the workspace's probe family t, the activities in y; one evaluation is L − 1
 * forward dispatches, the layers' errors (one), the backward pass (L − 1) and one elementwise combination.
 */
import { WpcArgumentError, argError, checkKnownKeys, checkOneOf, checkPositiveInt } from '../runtime/errors.js';
import type { Recorder } from '../runtime/recorder.js';
import { type Tensor, checkTensor } from '../runtime/tensor.js';
import {
  type BatchData,
  type Captured,
  type ParamGradResult,
  batchSizeOf,
  captureBatch,
  checkBatchTensors,
  checkLoss,
  checkModel,
  checkOptions,
  checkWorkspaces,
  copyOutScalars,
  copyParamGrads,
  loadBatch,
  onWorkspaces,
} from './batch.js';
import { gradJob, packJobs } from './layer-jobs.js';
import { carryTerm, forwardJobs, mlpLayers, paramGradJobs } from './layers/index.js';
import { outputKind } from './layers/output.js';
import type { Model } from './model.js';
import { type OptState, type Optimizer, checkOptState } from './optim.js';
import { writeSolverConfig } from './solve/index.js';
import type { ActTable, Loss, Mode, Workspace } from './workspace.js';
import { type Dispatch, record } from './workspace/handles.js';

export interface EpcOptions {
  /** The clamped input x, [B, inputDim]. Omit for unsupervised ePC: the errors then start with a free z_0. */
  input?: BatchData;
  /** `'mse'` (default) or `'ce'`. */
  loss?: Loss;
}

const EPC_KEYS = ['input', 'loss'] as const;

interface EpcCall {
  model: Model;
  B: number;
  mode: Mode;
  loss: Loss;
  cap: Captured;
}

/** The errors' widths: [d_1..d_{L−1}] (supervised) or [d_0, d_1..d_{L−1}] (unsupervised). */
function errorWidths(model: Model, mode: Mode): number[] {
  return model.dims.slice(mode === 'unsupervised' ? 0 : 1, model.depth);
}

function beginEpc<O extends EpcOptions>(
  fn: string,
  model: unknown,
  errors: unknown,
  output: BatchData,
  options: O,
  keys: readonly string[],
  extra?: (m: Model, mode: Mode, o: O) => void,
): EpcCall & { opts: O } {
  const m = checkModel(fn, model);
  mlpLayers(fn, m.layers);
  if (m.depth < 2)
    throw new WpcArgumentError(`${fn}: ePC needs a hidden layer (a model of at least 2 layers), got ${m.depth}`);
  const opts = checkOptions(fn, options, keys);
  const loss = checkLoss(fn, opts.loss);
  const B = batchSizeOf(fn, 'output', output, m.outputDim, m);
  const mode: Mode = opts.input === undefined ? 'unsupervised' : 'supervised';
  if (mode === 'supervised') {
    const Bx = batchSizeOf(fn, 'options.input', opts.input, m.inputDim, m);
    if (Bx !== B) throw new WpcArgumentError(`${fn}: options.input has ${Bx} rows but output has ${B}`);
  }
  const widths = errorWidths(m, mode);
  if (!Array.isArray(errors) || errors.length !== widths.length) {
    const jpc = Array.isArray(errors) && errors.length === widths.length + 1;
    argError(
      fn,
      'errors',
      mode === 'unsupervised'
        ? `${widths.length} tensors: z_0 (free, there is no input) then ε_1..ε_${m.depth - 1}${jpc ? ' (WPC has no output error ε_L; see initEpcErrors)' : ''}`
        : `the ${widths.length} hidden errors ε_1..ε_${m.depth - 1}${jpc ? ' (WPC has no output error ε_L, which in JPC lets inference zero the output loss; see initEpcErrors)' : ''}`,
      errors,
    );
  }
  errors.forEach((t, i) => checkTensor(fn, `errors[${i}]`, t, m.runtime, [B, widths[i]!]));
  extra?.(m, mode, opts);
  checkWorkspaces(fn, [{ model: m, B, mode, needs: EPC_NEEDS }]);
  return { model: m, B, mode, loss, opts, cap: captureBatch(m, B, opts.input, output, errors as Tensor[]) };
}

/** An ePC workspace's families: the plain ones and the back-propagated signal r (aux 0). */
const EPC_NEEDS = { stages: 2, gridSteps: 1, aux: 1 } as const;

/** What ePC dispatches on a workspace, built once. */
interface EpcTables {
  /** z_l = s·f(z_{l−1}) + ε_l for l = 1..L−1 (index l − 1). */
  forward: Dispatch[];
  /** r_l from r_{l+1} (index l). */
  back: ActTable[];
  paramGrad: Dispatch;
  energy: Record<Loss, Dispatch>;
  total: Dispatch;
  /** z_0 = ε_0 (unsupervised), and ∂F/∂ε. */
  z0: Dispatch | undefined;
  grad: Dispatch;
}

const epcTables = new WeakMap<Workspace, EpcTables>();

/** The ePC tables of a workspace (built on first use). */
function tablesOf(ws: Workspace): EpcTables {
  let tables = epcTables.get(ws);
  if (!tables) {
    tables = buildTables(ws);
    epcTables.set(ws, tables);
  }
  return tables;
}

function buildTables(ws: Workspace): EpcTables {
  const { model, batch: B, fam } = ws;
  const L = model.depth;
  const r = ws.aux[0]!;
  const slot = (family: number, l: number) => family + ws.layer[l]!;
  const supervised = ws.mode === 'supervised';
  const forward: Dispatch[] = [];
  for (let l = 1; l < L; l++) {
    const layer = model.layers[l - 1]!;
    const layerJobs = forwardJobs(layer, {
      rows: B,
      input: ws.layerInput(l, 'y'),
      output: slot(fam.y, l),
      phi: slot(fam.py, l),
      ...(l === 1 && supervised ? { prediction: ws.pred1 } : {}),
      ...(layer.skip ? { residualFrom: slot(fam.y, l - 1) } : {}),
      addError: slot(fam.t, l),
    });
    const table = packJobs(layerJobs, ws.tiles);
    const jobs = ws.jobTable(`epc.forward.${l}`, table);
    forward.push(ws.bind(ws.kernels.forward, { jobs, params: model.params, work: ws.buffer }, table.workgroups));
  }
  // The backward pass: r_l from r_{l+1}, one layer per dispatch (MODE_GRAD with no own error and factor −1).
  const back: ActTable[] = [];
  for (let l = L - 1; l >= ws.first; l--) {
    const job = gradJob({
      rows: B,
      width: model.dims[l]!,
      z: slot(fam.y, l),
      family: ws.layer[l]!,
      grad: slot(r, l),
      part: ws.partA.off + ws.gradPart[l]!,
      carry: carryTerm(model.layers[l]!, { error: l + 1 === L ? slot(fam.e, L) : slot(r, l + 1), weight: 1 }),
      identity: l === 0,
      scale: -1,
    });
    back[l] = ws.actTable(`epc.back.${l}`, [job], model.params);
  }
  // r_L is the output layer's error e_L itself.
  const params = model.layers.flatMap((layer, i) =>
    paramGradJobs(layer, {
      rows: B,
      error: i + 1 === L ? slot(fam.e, L) : slot(r, i + 1),
      input: ws.layerInput(i + 1, 'y'),
      coef: -layer.scale / B,
    }),
  );
  const ptable = packJobs(params, ws.tiles);
  const paramGrad = ws.bind(
    ws.trainKernels.paramGrad,
    { jobs: ws.jobTable('epc.paramGrad', ptable), work: ws.buffer, grads: model.grads() },
    ptable.workgroups,
  );
  // F = ½Σε²/B over ε_1..ε_{L−1} (into the total) + the output term (into a spare slot, then added).
  const hidden = ws.layer[L]! - ws.layer[1]!;
  const misc = ws.scalar.misc;
  const energyOf = (loss: Loss): Dispatch =>
    ws.reduce(
      `epc.energy.${loss}`,
      [
        { off: slot(fam.t, 1), count: hidden, stride: 1, out: ws.scalar.total, scale: 0.5 / B, flags: 1 },
        { ...outputKind(loss).energyTerm(ws.tables.outputSite, 1), out: misc },
      ],
      ws.buffer,
      ws.scalars,
    );
  const acc = ws.segmentTable('epc.total', [{ off: misc, count: 1, stride: 1, out: ws.scalar.total, scale: 1 }]);
  const total = ws.bind(ws.trainKernels.accumulate, { segments: acc.buffer, dst: ws.scalars }, 1);
  // z_0 = ε_0 (a copy inside one buffer, which copyBufferToBuffer cannot do).
  const from = fam.t + ws.layer[0]!;
  const z0 =
    ws.mode === 'unsupervised'
      ? ws.combine('epc.z0', [{ n: B * model.inputDim, u: from, v: from, out: ws.activityOffset(0), a: 1, b: 0 }])
      : undefined;
  // ∂F/∂ε = (ε − r)/B for the hidden errors, −r_0/B for a free z_0, into the k_1 family.
  const ops = [
    { n: ws.layer[L]! - ws.layer[1]!, u: slot(fam.t, 1), v: slot(r, 1), out: ws.gradOffset(1), a: 1 / B, b: -1 / B },
  ];
  if (ws.mode === 'unsupervised')
    ops.push({ n: B * model.inputDim, u: slot(r, 0), v: slot(r, 0), out: ws.gradOffset(0), a: 0, b: -1 / B });
  const grad = ws.combine('epc.grad', ops);
  return { forward, back, paramGrad, energy: { mse: energyOf('mse'), ce: energyOf('ce') }, total, z0, grad };
}

/** Loads the batch and the errors (into t), then runs the forward pass z(ε) and the layers' errors at it. */
function recordForward(ws: Workspace, rec: Recorder, call: EpcCall): void {
  const L = ws.model.depth;
  writeSolverConfig(ws, undefined);
  loadBatch(ws, rec, call.cap.input, call.cap.output);
  call.cap.activities.forEach((t, i) =>
    rec.copy(t.buffer, t.byteOffset, ws.buffer, (ws.fam.t + ws.layer[i + ws.first]!) * 4, t.byteLength),
  );
  const tables = tablesOf(ws);
  if (tables.z0) record(rec, tables.z0);
  for (let l = 1; l < L; l++) record(rec, tables.forward[l - 1]!);
  ws.recordErrors(rec, 'y', call.loss, false);
}

/** The energy into scalars.total (needs recordForward). */
function recordEnergy(ws: Workspace, rec: Recorder, loss: Loss): void {
  record(rec, tablesOf(ws).energy[loss]);
  record(rec, tablesOf(ws).total);
}

/** r: the output residual (e_L) back-propagated through the forward pass (needs recordForward). */
function recordBackward(ws: Workspace, rec: Recorder): void {
  const { back } = tablesOf(ws);
  for (let l = ws.model.depth - 1; l >= ws.first; l--) ws.recordActTable(rec, back[l]!, false, 0);
}

/** ∂F/∂ε = (ε − r)/B for the hidden errors, −r_0/B for a free z_0, into the k_1 family (needs recordBackward). */
function recordErrorGrad(ws: Workspace, rec: Recorder): void {
  record(rec, tablesOf(ws).grad);
}

function onEpc<T>(call: EpcCall, task: (ws: Workspace, rec: Recorder) => T | Promise<T>): Promise<T> {
  return onWorkspaces([{ model: call.model, B: call.B, mode: call.mode, needs: EPC_NEEDS }], call.cap, ([ws], rec) => {
    tablesOf(ws!);
    return task(ws!, rec);
  });
}

function copyOutErrors(ws: Workspace, rec: Recorder, family: number): Tensor[] {
  const out: Tensor[] = [];
  for (let l = ws.first; l < ws.model.depth; l++) {
    const t = ws.runtime.empty([ws.batch, ws.model.dims[l]!]);
    rec.copy(ws.buffer, (family + ws.layer[l]!) * 4, t.buffer, 0, t.byteLength);
    out.push(t);
  }
  return out;
}

/**
 * JPC's `init_epc_errors`: zero errors, [B, d_l] for the hidden layers l = 1..L−1 (`'supervised'`, default), or
 * with z_0 first ([B, d_0], `'unsupervised'`). (JPC's also returns an output error; see the module notes.)
 */
export function initEpcErrors(model: Model, options: { batchSize: number; mode?: Mode }): Tensor[] {
  const fn = 'initEpcErrors';
  mlpLayers(fn, checkModel(fn, model).layers);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object like { batchSize }', options);
  checkKnownKeys(fn, 'options', options, ['batchSize', 'mode']);
  const B = checkPositiveInt(fn, 'options.batchSize', options.batchSize);
  const mode = checkOneOf<Mode>(fn, 'options.mode', options.mode ?? 'supervised', ['supervised', 'unsupervised']);
  if (model.depth < 2)
    throw new WpcArgumentError(`${fn}: ePC needs a hidden layer (a model of at least 2 layers), got ${model.depth}`);
  checkBatchTensors(fn, model, B, errorWidths(model, mode));
  return errorWidths(model, mode).map((d) => model.runtime.zeros([B, d]));
}

/** JPC's `epc_energy_fn`: F(ε), the PC energy at the activities the errors define. */
export async function epcEnergy(
  model: Model,
  errors: readonly Tensor[],
  output: BatchData,
  options: EpcOptions = {},
): Promise<Tensor> {
  const call = beginEpc('epcEnergy', model, errors, output, options, EPC_KEYS);
  return onEpc(call, (ws, rec) => {
    recordForward(ws, rec, call);
    recordEnergy(ws, rec, call.loss);
    const out = copyOutScalars(ws, rec, ws.scalar.total, [1]);
    rec.submit();
    return out;
  });
}

/**
 * The activities z(ε) of the ePC forward pass, as PC lays them out: [z_1..z_L] (supervised) or [z_0..z_L], the
 * last being the network's prediction.
 */
export async function epcActivities(
  model: Model,
  errors: readonly Tensor[],
  output: BatchData,
  options: EpcOptions = {},
): Promise<Tensor[]> {
  const call = beginEpc('epcActivities', model, errors, output, options, EPC_KEYS);
  return onEpc(call, (ws, rec) => {
    recordForward(ws, rec, call);
    ws.recordForwardLayer(rec, ws.model.depth);
    const out: Tensor[] = [];
    for (let l = ws.first; l <= ws.model.depth; l++) {
      const t = ws.runtime.empty([ws.batch, ws.model.dims[l]!]);
      rec.copy(ws.buffer, ws.activityOffset(l) * 4, t.buffer, 0, t.byteLength);
      out.push(t);
    }
    rec.submit();
    return out;
  });
}

/** JPC's `compute_epc_error_grad`: the energy and ∂F/∂ε for every error. */
export async function computeEpcErrorGrad(
  model: Model,
  errors: readonly Tensor[],
  output: BatchData,
  options: EpcOptions = {},
): Promise<{ energy: Tensor; grads: Tensor[] }> {
  const call = beginEpc('computeEpcErrorGrad', model, errors, output, options, EPC_KEYS);
  return onEpc(call, (ws, rec) => {
    recordForward(ws, rec, call);
    recordEnergy(ws, rec, call.loss);
    recordBackward(ws, rec);
    recordErrorGrad(ws, rec);
    const energy = copyOutScalars(ws, rec, ws.scalar.total, [1]);
    const grads = copyOutErrors(ws, rec, ws.fam.k);
    rec.submit();
    return { energy, grads };
  });
}

/** JPC's `compute_epc_param_grads`: ∂F/∂θ at fixed errors, −(s_l/B) r_lᵀ φ(z_{l−1}). */
export async function computeEpcParamGrads(
  model: Model,
  errors: readonly Tensor[],
  output: BatchData,
  options: EpcOptions = {},
): Promise<ParamGradResult> {
  const call = beginEpc('computeEpcParamGrads', model, errors, output, options, EPC_KEYS);
  return onEpc(call, (ws, rec) => {
    recordForward(ws, rec, call);
    recordBackward(ws, rec);
    record(rec, tablesOf(ws).paramGrad);
    const out = copyParamGrads(call.model, rec);
    rec.submit();
    return out;
  });
}

export interface EpcUpdateOptions extends EpcOptions {
  /** Also return the gradients applied (new tensors). Default false. */
  returnGrads?: boolean;
}

/**
 * JPC's `update_epc_errors`: ε ← optimiser(ε, ∂F/∂ε) (state from `optim.init(errors)`). Returns the energy
 * before the update and the updated errors. The notebooks' inference is T = L such steps of sgd(0.5).
 */
export async function updateEpcErrors(
  model: Model,
  errors: readonly Tensor[],
  optim: Optimizer,
  optState: OptState,
  output: BatchData,
  options: EpcUpdateOptions = {},
): Promise<{ energy: Tensor; errors: Tensor[]; grads: Tensor[] | null; optState: OptState }> {
  const fn = 'updateEpcErrors';
  const call = beginEpc(fn, model, errors, output, options, [...EPC_KEYS, 'returnGrads'], (m) => {
    checkOptState(
      fn,
      optState,
      optim,
      'activities',
      errors.reduce((s, t) => s + t.size, 0),
      m.runtime,
    );
  });
  return onEpc(call, async (ws, rec) => {
    const kernel = await optState.kernel(true);
    recordForward(ws, rec, call);
    recordEnergy(ws, rec, call.loss);
    recordBackward(ws, rec);
    recordErrorGrad(ws, rec);
    const energy = copyOutScalars(ws, rec, ws.scalar.total, [1]);
    const grads = call.opts.returnGrads ? copyOutErrors(ws, rec, ws.fam.k) : null;
    const n = ws.layer[ws.model.depth]! - ws.layer[ws.first]!;
    optState.recordStep(
      rec,
      kernel,
      { buffer: ws.buffer, offset: ws.fam.t + ws.layer[ws.first]! },
      { inTarget: ws.gradOffset(ws.first) },
      n,
    );
    const updated = copyOutErrors(ws, rec, ws.fam.t);
    rec.submit();
    return { energy, errors: updated, grads, optState };
  });
}

/** JPC's `update_epc_params`: θ ← optimiser(θ, ∂F/∂θ) at the given errors. Updates the model in place. */
export async function updateEpcParams(
  model: Model,
  errors: readonly Tensor[],
  optim: Optimizer,
  optState: OptState,
  output: BatchData,
  options: EpcUpdateOptions = {},
): Promise<{ model: Model; optState: OptState; grads: ParamGradResult | null }> {
  const fn = 'updateEpcParams';
  const call = beginEpc(fn, model, errors, output, options, [...EPC_KEYS, 'returnGrads'], (m) => {
    checkOptState(fn, optState, optim, 'params', m.paramCount, m.runtime);
  });
  return onEpc(call, async (ws, rec) => {
    const kernel = await optState.kernel(false);
    recordForward(ws, rec, call);
    recordBackward(ws, rec);
    record(rec, tablesOf(ws).paramGrad);
    const grads = call.opts.returnGrads ? copyParamGrads(call.model, rec) : null;
    const m = call.model;
    optState.recordStep(rec, kernel, { buffer: m.params, offset: 0 }, { buffer: m.grads(), offset: 0 }, m.paramCount);
    rec.submit();
    return { model: m, optState, grads };
  });
}
