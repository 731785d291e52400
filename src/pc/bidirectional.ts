/**
 * Bidirectional predictive coding (Oliviers, Tang & Bogacz 2025; JPC's `bpc_energy_fn`,
 * `compute_bpc_activity_grad`, `compute_bpc_param_grads`, `update_bpc_activities`, `update_bpc_params`).
 *
 * A top-down network f (x → z_1 → … → z_H → y, e.g. label → image) and a bottom-up network g (y → z_H → … →
 * z_1 → x) share the hidden activities z_1..z_H. With z_0 = x and z_{H+1} = y,
 *
 *   F = (1/B) [ α_f Σ_{l=1}^{H+1} ½‖z_l − f_l(z_{l−1})‖²  +  α_b Σ_{l=0}^{H} ½‖z_l − g(z_{l+1})‖² ]
 *
 * (forward errors include the output term y − f(z_H); backward ones the input term x − g(z_1)). Without an
 * input, z_0 is a free activity used in x's place (unsupervised bPC).
 *
 * Conventions and fixes. `bottomUp` is an ordinary MLP from y to x (e.g. `makeMlp` 784 → 256 → 10), not JPC's
 * reversed list (`make_mlp(...)[::-1]`); its first layer, applied to y, has no activation. The activities are
 * exactly the H hidden ones z_1..z_H in top-down order (with z_0 first when unsupervised). JPC indexes them as if
 * they were H + 1 with a dummy last (it reads the output term from `activities[-2]`), which is right only for
 * H + 1 entries, while its own tests pass H; here there is no dummy and the output term reads z_H.
 * JPC applies no parameter scalings in bPC; models made with a `paramType` keep theirs here.
 *
 * On the GPU both networks are PC networks over one set of activities: the top-down one in the usual layout,
 * the bottom-up one through job tables that walk the same activities in reverse. Each gradient is two grouped
 * dispatches (the bottom-up part, then the top-down part added to it), whatever the depth. Each network applies
 * its own activation, as in JPC: when the two differ, the bottom-up network reads φ_b(z) from a family of its
 * own (one more elementwise dispatch per call) and its gradient pass runs a kernel compiled with φ_b; when they
 * are the same, both read the workspace's φ(z) and nothing is added.
 */
import { mlpLayers } from './layers/index.js';
import { WpcArgumentError, argError, checkFinite } from '../runtime/errors.js';
import type { Recorder } from '../runtime/recorder.js';
import { type Tensor, checkTensor } from '../runtime/tensor.js';
import {
  type BatchData,
  type ParamGradResult,
  batchSizeOf,
  captureBatch,
  checkModel,
  checkOptions,
  checkSameRuntime,
  checkWorkspaces,
  copyOutScalars,
  copyParamGrads,
} from './batch.js';
import { initActivitiesWithAmort } from './hybrid.js';
import type { Model } from './model.js';
import { type OptState, type Optimizer, checkOptState } from './optim.js';
import type { Workspace } from './workspace.js';
import { record } from './workspace/handles.js';
import {
  bpcWorkspace,
  loadBpc,
  onBpc,
  recordBpcActivityGrad,
  recordBpcErrors,
  type BpcCall,
} from './bidirectional/tables.js';

export interface BpcOptions {
  /** The top-down network's input x (e.g. labels), [B, topDown.inputDim]. Omit for unsupervised bPC (z_0 free). */
  input?: BatchData;
  /** α_f, the weight of the forward (top-down) energies. Default 1. */
  forwardEnergyWeight?: number;
  /** α_b, the weight of the backward (bottom-up) energies. Default 1. */
  backwardEnergyWeight?: number;
}

const BPC_KEYS = ['input', 'forwardEnergyWeight', 'backwardEnergyWeight'] as const;

function checkBpcModels(fn: string, topDown: unknown, bottomUp: unknown): { td: Model; bu: Model } {
  const td = checkModel(fn, topDown);
  const bu = checkModel(fn, bottomUp);
  mlpLayers(`${fn}: topDown`, td.layers);
  mlpLayers(`${fn}: bottomUp`, bu.layers);
  checkSameRuntime(fn, [
    { name: 'topDown', model: td },
    { name: 'bottomUp', model: bu },
  ]);
  if (td.depth < 2)
    throw new WpcArgumentError(`${fn}: topDown needs at least 2 layers (one hidden activity), got ${td.depth}`);
  const reversed = [...td.dims].reverse();
  if (bu.dims.length !== reversed.length || bu.dims.some((d, i) => d !== reversed[i])) {
    throw new WpcArgumentError(
      `${fn}: bottomUp must run the other way through topDown's widths (${reversed.join('→')}), got ${bu.dims.join('→')} — give it as an ordinary model from y to x, not reversed`,
    );
  }
  return { td, bu };
}

/** Validates a bPC call and captures its inputs (activities first, then any extra tensors). */
function beginBpc<O extends BpcOptions>(
  fn: string,
  topDown: unknown,
  bottomUp: unknown,
  activities: unknown,
  output: BatchData,
  options: O,
  keys: readonly string[],
  extra?: (call: Omit<BpcCall, 'cap'>, opts: O) => void,
): BpcCall & { opts: O } {
  const { td, bu } = checkBpcModels(fn, topDown, bottomUp);
  const opts = checkOptions(fn, options, keys);
  const H = td.depth - 1;
  const B = batchSizeOf(fn, 'output', output, td.outputDim, td);
  const unsupervised = opts.input === undefined;
  if (!unsupervised) {
    const Bx = batchSizeOf(fn, 'options.input', opts.input, td.inputDim, td);
    if (Bx !== B) throw new WpcArgumentError(`${fn}: options.input has ${Bx} rows but output has ${B}`);
  }
  const count = unsupervised ? H + 1 : H;
  if (!Array.isArray(activities) || activities.length !== count) {
    const hint =
      Array.isArray(activities) && activities.length === H + 1 && !unsupervised
        ? ' (JPC passes H + 1 with an unused last one; WPC takes exactly the hidden activities)'
        : '';
    argError(
      fn,
      'activities',
      unsupervised
        ? `${count} tensors: z_0 (free, there is no input) then the ${H} hidden activities in top-down order`
        : `the ${H} hidden activities z_1..z_${H} in top-down order${hint}`,
      activities,
    );
  }
  const first = unsupervised ? 0 : 1;
  activities.forEach((t, i) => checkTensor(fn, `activities[${i}]`, t, td.runtime, [B, td.dims[i + first]!]));
  const alphaF = checkFinite(fn, 'options.forwardEnergyWeight', opts.forwardEnergyWeight ?? 1, { min: 0 });
  const alphaB = checkFinite(fn, 'options.backwardEnergyWeight', opts.backwardEnergyWeight ?? 1, { min: 0 });
  const partial = { td, bu, B, H, unsupervised, alphaF, alphaB };
  extra?.(partial, opts);
  checkWorkspaces(fn, [bpcWorkspace(td, bu, B)]);
  return { ...partial, opts, cap: captureBatch(td, B, opts.input, output, activities as Tensor[]) };
}

function copyOutSlots(ws: Workspace, rec: Recorder, family: number, first: number, last: number): Tensor[] {
  const out: Tensor[] = [];
  for (let l = first; l <= last; l++) {
    const t = ws.runtime.empty([ws.batch, ws.model.dims[l]!]);
    rec.copy(ws.buffer, (family + ws.layer[l]!) * 4, t.buffer, 0, t.byteLength);
    out.push(t);
  }
  return out;
}

export interface BpcEnergyOptions extends BpcOptions {
  /** Return the 2(H + 1) energies in JPC's record_layers order instead of the total. Default false. */
  recordLayers?: boolean;
}

/**
 * JPC's `bpc_energy_fn` (with the activities fixed to the H hidden ones): the total, or with `recordLayers`
 * [α_f E_out, α_b E_in, α_f E^f_1, α_b E^b_1, …, α_f E^f_H, α_b E^b_H], each /B.
 */
export async function bpcEnergy(
  topDown: Model,
  bottomUp: Model,
  activities: readonly Tensor[],
  output: BatchData,
  options: BpcEnergyOptions = {},
): Promise<Tensor> {
  const fn = 'bpcEnergy';
  const call = beginBpc(fn, topDown, bottomUp, activities, output, options, [...BPC_KEYS, 'recordLayers'], (_c, o) => {
    if (o.recordLayers !== undefined && typeof o.recordLayers !== 'boolean')
      argError(fn, 'options.recordLayers', 'a boolean', o.recordLayers);
  });
  return onBpc(call, (ws, rec, tables) => {
    loadBpc(ws, rec, call, tables);
    recordBpcErrors(ws, rec, tables, true);
    const out = call.opts.recordLayers
      ? copyOutScalars(ws, rec, ws.scalar.energies, [2 * (call.H + 1)])
      : copyOutScalars(ws, rec, ws.scalar.total, [1]);
    rec.submit();
    return out;
  });
}

/** JPC's `compute_bpc_activity_grad`: the energy and ∂F/∂z for every activity given. */
export async function computeBpcActivityGrad(
  topDown: Model,
  bottomUp: Model,
  activities: readonly Tensor[],
  output: BatchData,
  options: BpcOptions = {},
): Promise<{ energy: Tensor; grads: Tensor[] }> {
  const fn = 'computeBpcActivityGrad';
  const call = beginBpc(fn, topDown, bottomUp, activities, output, options, BPC_KEYS);
  return onBpc(call, (ws, rec, tables) => {
    loadBpc(ws, rec, call, tables);
    recordBpcErrors(ws, rec, tables, true);
    recordBpcActivityGrad(ws, rec, tables);
    const energy = copyOutScalars(ws, rec, ws.scalar.total, [1]);
    const grads = copyOutSlots(ws, rec, ws.aux[1]!, call.unsupervised ? 0 : 1, call.H);
    rec.submit();
    return { energy, grads };
  });
}

/** JPC's `compute_bpc_param_grads`: ∂F/∂θ of both networks. */
export async function computeBpcParamGrads(
  topDown: Model,
  bottomUp: Model,
  activities: readonly Tensor[],
  output: BatchData,
  options: BpcOptions = {},
): Promise<{ topDown: ParamGradResult; bottomUp: ParamGradResult }> {
  const fn = 'computeBpcParamGrads';
  const call = beginBpc(fn, topDown, bottomUp, activities, output, options, BPC_KEYS);
  return onBpc(call, (ws, rec, tables) => {
    loadBpc(ws, rec, call, tables);
    recordBpcErrors(ws, rec, tables, false);
    record(rec, tables.tdParams);
    record(rec, tables.buParams);
    const out = { topDown: copyParamGrads(call.td, rec), bottomUp: copyParamGrads(call.bu, rec) };
    rec.submit();
    return out;
  });
}

export interface BpcUpdateOptions extends BpcOptions {
  /** Also return the gradients applied (new tensors). Default false. */
  returnGrads?: boolean;
}

/**
 * JPC's `update_bpc_activities`: z ← optimiser(z, ∂F/∂z) for the given activities (the state from
 * `optim.init(activities)`). Returns the energy before the update and the updated activities.
 */
export async function updateBpcActivities(
  topDown: Model,
  bottomUp: Model,
  activities: readonly Tensor[],
  optim: Optimizer,
  optState: OptState,
  output: BatchData,
  options: BpcUpdateOptions = {},
): Promise<{ energy: Tensor; activities: Tensor[]; grads: Tensor[] | null; optState: OptState }> {
  const fn = 'updateBpcActivities';
  const call = beginBpc(fn, topDown, bottomUp, activities, output, options, [...BPC_KEYS, 'returnGrads'], (c) => {
    const n = activities.reduce((s, t) => s + t.size, 0);
    checkOptState(fn, optState, optim, 'activities', n, c.td.runtime);
  });
  return onBpc(call, async (ws, rec, tables) => {
    const kernel = await optState.kernel(true);
    loadBpc(ws, rec, call, tables);
    recordBpcErrors(ws, rec, tables, true);
    recordBpcActivityGrad(ws, rec, tables);
    const first = call.unsupervised ? 0 : 1;
    const energy = copyOutScalars(ws, rec, ws.scalar.total, [1]);
    const grads = call.opts.returnGrads ? copyOutSlots(ws, rec, ws.aux[1]!, first, call.H) : null;
    const n = ws.layer[call.H + 1]! - ws.layer[first]!;
    optState.recordStep(
      rec,
      kernel,
      { buffer: ws.buffer, offset: ws.activityOffset(first) },
      { inTarget: ws.aux[1]! + ws.layer[first]! },
      n,
    );
    const updated = copyOutSlots(ws, rec, ws.fam.y, first, call.H);
    rec.submit();
    return { energy, activities: updated, grads, optState };
  });
}

/**
 * JPC's `update_bpc_params`: one optimiser step for each network at the given activities. Updates both models
 * in place.
 */
export async function updateBpcParams(
  topDown: Model,
  bottomUp: Model,
  activities: readonly Tensor[],
  optims: readonly [Optimizer, Optimizer],
  optStates: readonly [OptState, OptState],
  output: BatchData,
  options: BpcUpdateOptions = {},
): Promise<{
  models: [Model, Model];
  grads: { topDown: ParamGradResult; bottomUp: ParamGradResult } | null;
  optStates: [OptState, OptState];
}> {
  const fn = 'updateBpcParams';
  const call = beginBpc(fn, topDown, bottomUp, activities, output, options, [...BPC_KEYS, 'returnGrads'], (c) => {
    if (!Array.isArray(optims) || optims.length !== 2)
      argError(fn, 'optims', '[topDownOptimiser, bottomUpOptimiser]', optims);
    if (!Array.isArray(optStates) || optStates.length !== 2)
      argError(fn, 'optStates', '[topDownState, bottomUpState]', optStates);
    checkOptState(fn, optStates[0], optims[0], 'params', c.td.paramCount, c.td.runtime, {
      optim: 'optims[0]',
      optState: 'optStates[0]',
    });
    checkOptState(fn, optStates[1], optims[1], 'params', c.bu.paramCount, c.bu.runtime, {
      optim: 'optims[1]',
      optState: 'optStates[1]',
    });
    if (optStates[0] === optStates[1])
      throw new WpcArgumentError(`${fn}: optStates must be two different states (one per model)`);
  });
  return onBpc(call, async (ws, rec, tables) => {
    const [tk, bk] = await Promise.all([optStates[0].kernel(false), optStates[1].kernel(false)]);
    loadBpc(ws, rec, call, tables);
    recordBpcErrors(ws, rec, tables, false);
    record(rec, tables.tdParams);
    record(rec, tables.buParams);
    const grads = call.opts.returnGrads
      ? { topDown: copyParamGrads(call.td, rec), bottomUp: copyParamGrads(call.bu, rec) }
      : null;
    const { td, bu } = call;
    optStates[0].recordStep(
      rec,
      tk,
      { buffer: td.params, offset: 0 },
      { buffer: td.grads(), offset: 0 },
      td.paramCount,
    );
    optStates[1].recordStep(
      rec,
      bk,
      { buffer: bu.params, offset: 0 },
      { buffer: bu.grads(), offset: 0 },
      bu.paramCount,
    );
    rec.submit();
    return { models: [td, bu], grads, optStates: [optStates[0], optStates[1]] };
  });
}

/**
 * Starting activities for bPC from the bottom-up network's feedforward pass from `output` (y), as JPC's bPC
 * notebook does, in top-down order: the H hidden activities z_1..z_H, with its guess of x first as z_0 for
 * `mode: 'unsupervised'`. (For one hidden layer this is what the notebook's `init_activities_with_ffwd` on the
 * bottom-up model gives; for more, that list would be in bottom-up order.)
 */
export async function initBpcActivities(
  topDown: Model,
  bottomUp: Model,
  output: BatchData,
  options: { mode?: 'supervised' | 'unsupervised' } = {},
): Promise<Tensor[]> {
  const fn = 'initBpcActivities';
  const { td, bu } = checkBpcModels(fn, topDown, bottomUp);
  const opts = checkOptions(fn, options, ['mode']);
  const mode = opts.mode ?? 'supervised';
  if (mode !== 'supervised' && mode !== 'unsupervised')
    argError(fn, 'options.mode', "'supervised' or 'unsupervised'", mode);
  const B = batchSizeOf(fn, 'output', output, bu.inputDim, bu);
  checkWorkspaces(fn, [
    { model: td, B },
    { model: bu, B },
  ]);
  const amort = await initActivitiesWithAmort(bu, td, output);
  amort.pop()!.dispose(); // the image guess
  if (mode === 'supervised') amort.shift()!.dispose(); // the label guess
  return amort;
}
