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
import { WpcArgumentError, argError, checkFinite } from '../runtime/errors.js';
import { activateKernel } from '../kernels/elementwise.js';
import { activityGradKernel } from '../kernels/layer-matmul.js';
import { type Job, type SegmentSpec, packCombineOps, packSegments } from '../kernels/structs.js';
import { createBindGroup } from '../runtime/kernel.js';
import type { Recorder } from '../runtime/recorder.js';
import { type Tensor, checkTensor } from '../runtime/tensor.js';
import {
  type BatchData,
  type Captured,
  type ParamGradResult,
  batchSizeOf,
  captureBatch,
  checkModel,
  checkOptions,
  checkSameRuntime,
  checkWorkspaces,
  copyOutScalars,
  copyParamGrads,
  loadBatch,
  onWorkspaces,
  type WorkspaceRequest,
} from './batch.js';
import { initActivitiesWithAmort } from './hybrid.js';
import { errorJob, gradJob, packJobs, paramJob, tilesOf } from './layer-jobs.js';
import type { Model } from './model.js';
import { type OptState, type Optimizer, checkOptState } from './optim.js';
import { writeSolverConfig } from './solver.js';
import { type Workspace, tilesFor } from './workspace.js';

export interface BpcOptions {
  /** The top-down network's input x (e.g. labels), [B, topDown.inputDim]. Omit for unsupervised bPC (z_0 free). */
  input?: BatchData;
  /** α_f, the weight of the forward (top-down) energies. Default 1. */
  forwardEnergyWeight?: number;
  /** α_b, the weight of the backward (bottom-up) energies. Default 1. */
  backwardEnergyWeight?: number;
}

const BPC_KEYS = ['input', 'forwardEnergyWeight', 'backwardEnergyWeight'] as const;

interface BpcCall {
  td: Model;
  bu: Model;
  B: number;
  H: number;
  unsupervised: boolean;
  alphaF: number;
  alphaB: number;
  cap: Captured;
}

function checkBpcModels(fn: string, topDown: unknown, bottomUp: unknown): { td: Model; bu: Model } {
  const td = checkModel(fn, topDown);
  const bu = checkModel(fn, bottomUp);
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

/** Floats of scratch the bottom-up network's partial sums need in the top-down workspace. */
function extraFloats(td: Model, bu: Model, B: number, tiles: (m: number, n: number) => number): number {
  const buErrors = bu.layers.reduce((s, l) => s + tiles(B, l.outDim), 0);
  const buGrads = td.dims.slice(0, td.depth).reduce((s, d) => s + tiles(B, d), 0);
  return 4 * (buErrors + buGrads);
}

/** The tables of one (top-down, bottom-up, α_f, α_b) on the top-down workspace; rewritten when α changes. */
interface BpcTables {
  key: string;
  buffers: Map<string, GPUBuffer>;
}
const bpcTables = new WeakMap<Workspace, Map<number, BpcTables>>();

/** Whether the bottom-up network's activation differs from the top-down one's (then φ_b(z) has its own family). */
const ownActivation = (td: Model, bu: Model): boolean => td.actFn !== bu.actFn;

/** Aux families: 0 the bottom-up errors, 1 the gradients, 2 φ_b(z) when the activations differ. */
const auxFamilies = (td: Model, bu: Model): number => (ownActivation(td, bu) ? 3 : 2);

/** Kernel names of the bottom-up network's own activation (compiled once per workspace). */
const buKernels = (bu: Model) => ({ grad: `bpc.act.${bu.actFn}`, activate: `bpc.activate.${bu.actFn}` });

/**
 * Slot l (0..H+1) of the top-down workspace's layout holds z_l (z_0: x or the free z_0; z_{H+1}: the top-down
 * network's unused output activity; y itself is in the target slot). The bottom-up layer a (1-based) maps
 * u_{a−1} → u_a with u_0 = y, u_a = z_{H+1−a}, reading φ_b(u_{a−1}) (family `phiBu`: the workspace's φ when both
 * networks share the activation); its errors go to aux family 0 at the slot of u_a.
 */
function bpcJobs(ws: Workspace, bu: Model, alphaF: number, alphaB: number, unsupervised: boolean) {
  const td = ws.model;
  const H = td.depth - 1;
  const B = ws.batch;
  const { fam } = ws;
  const e2 = ws.aux[0]!;
  const grad = ws.aux[1]!;
  const slot = (family: number, l: number) => family + ws.layer[l]!;
  const phiBu = ownActivation(td, bu) ? ws.aux[2]! : fam.py;
  const first = unsupervised ? 0 : 1;
  // Partial sums of the bottom-up errors (per bu layer) and of its gradient pass (per slot), in the extra region.
  const buErrorPart: number[] = [];
  let at = ws.extra.off;
  for (let a = 1; a <= H + 1; a++) {
    buErrorPart.push(at);
    at += 4 * ws.tileCount(B, bu.dims[a]!);
  }
  const buGradPart: number[] = [];
  for (let l = 0; l <= H; l++) {
    buGradPart.push(at);
    at += 4 * ws.tileCount(B, td.dims[l]!);
  }
  const buErrors: Job[] = [];
  const buParams: Job[] = [];
  for (let a = 1; a <= H + 1; a++) {
    const layer = bu.layers[a - 1]!;
    const out = H + 1 - a; // slot of u_a
    const input = a === 1 ? ws.target : slot(phiBu, out + 1);
    buErrors.push(
      errorJob({
        layer,
        rows: B,
        input,
        target: slot(fam.y, out),
        error: slot(e2, out),
        part: buErrorPart[a - 1]!,
        output: a === H + 1,
        ...(layer.skip ? { residualFrom: slot(fam.y, out + 1) } : {}),
      }),
    );
    buParams.push(paramJob({ layer, rows: B, error: slot(e2, out), input, coef: (-alphaB * layer.scale) / B }));
  }
  // Pass 1 (bottom-up weights): ∂/∂u_a of α_b's terms into the gradient family.
  const buGrads: Job[] = [];
  // Pass 2 (top-down weights): the α_f terms added to it.
  const tdGrads: Job[] = [];
  for (let l = first; l <= H; l++) {
    const a = H + 1 - l;
    const nextBu = a + 1 <= H + 1 ? bu.layers[a]! : undefined;
    buGrads.push(
      gradJob({
        rows: B,
        width: td.dims[l]!,
        z: slot(fam.y, l),
        family: ws.layer[l]!,
        grad: slot(grad, l),
        part: buGradPart[l]!,
        own: slot(e2, l),
        ...(nextBu ? { next: { layer: nextBu, error: slot(e2, l - 1), weight: 1 } } : {}),
        scale: alphaB / B,
      }),
    );
    tdGrads.push(
      gradJob({
        rows: B,
        width: td.dims[l]!,
        z: slot(fam.y, l),
        family: ws.layer[l]!,
        grad: slot(grad, l),
        part: ws.partA.off + ws.gradPart[l]!,
        ...(l >= 1 ? { own: slot(fam.e, l) } : {}),
        next: { layer: td.layers[l]!, error: slot(fam.e, l + 1), weight: 1 },
        identity: l === 0,
        accumulate: true,
        scale: alphaF / B,
      }),
    );
  }
  const tdParams = td.layers.map((layer, i) =>
    paramJob({
      layer,
      rows: B,
      error: slot(fam.e, i + 1),
      input: i === 0 ? slot(fam.y, 0) : slot(fam.py, i),
      coef: (-alphaF * layer.scale) / B,
    }),
  );
  // JPC's record_layers order: [(output forward, input backward), (forward, backward) of z_1, …, of z_H].
  const fwd = (l: number): SegmentSpec => ({
    off: ws.errorPart(l),
    count: ws.errorTiles[l - 1]!,
    stride: 4,
    out: 0,
    scale: (0.5 * alphaF) / B,
  });
  const bwd = (l: number): SegmentSpec => {
    const a = H + 1 - l;
    return {
      off: buErrorPart[a - 1]!,
      count: ws.tileCount(B, bu.dims[a]!),
      stride: 4,
      out: 0,
      scale: (0.5 * alphaB) / B,
    };
  };
  const order = [fwd(H + 1), bwd(0)];
  for (let l = 1; l <= H; l++) order.push(fwd(l), bwd(l));
  const energies = order.map((s, i) => ({ ...s, out: ws.scalar.energies + i }));
  return { buErrors, buParams, buGrads, tdGrads, tdParams, energies, count: 2 * (H + 1) };
}

/** The bPC tables the activity-gradient kernel runs (registered with the workspace, which picks its variant). */
const isActTable = (name: string): boolean => name === 'buGrads' || name === 'tdGrads';

/** Builds or refreshes the bPC tables and bind groups on the top-down workspace. */
async function prepareBpc(ws: Workspace, bu: Model, call: Omit<BpcCall, 'cap'>): Promise<string> {
  const prefix = `bpc.${bu.serial}.${call.unsupervised ? 'u' : 's'}`;
  const own = ownActivation(ws.model, bu);
  const names = buKernels(bu);
  if (own) {
    await Promise.all([
      ws.kernel(names.grad, activityGradKernel(bu.actFn, ws.tiles, false)),
      ws.kernel(names.activate, activateKernel(bu.actFn)),
    ]);
  }
  let perWs = bpcTables.get(ws);
  if (!perWs) bpcTables.set(ws, (perWs = new Map()));
  const jobs = bpcJobs(ws, bu, call.alphaF, call.alphaB, call.unsupervised);
  const key = `${call.alphaF}:${call.alphaB}`;
  const existing = perWs.get(bu.serial * 2 + (call.unsupervised ? 1 : 0));
  const tables: [string, Job[]][] = [
    ['buErrors', jobs.buErrors],
    ['buParams', jobs.buParams],
    ['buGrads', jobs.buGrads],
    ['tdGrads', jobs.tdGrads],
    ['tdParams', jobs.tdParams],
  ];
  if (existing) {
    if (existing.key !== key) {
      for (const [name, list] of tables) {
        ws.runtime.device.queue.writeBuffer(existing.buffers.get(name)!, 0, packJobs(list, ws.tiles).data);
        if (isActTable(name)) ws.updateActTable(`${prefix}.${name}`, list);
      }
      ws.runtime.device.queue.writeBuffer(existing.buffers.get('energies')!, 0, packSegments(jobs.energies));
      existing.key = key;
    }
    return prefix;
  }
  const device = ws.runtime.device;
  const buffers = new Map<string, GPUBuffer>();
  for (const [name, list] of tables) {
    const table = packJobs(list, ws.tiles);
    const buffer = ws.addTable(`${prefix}.${name}`, table);
    buffers.set(name, buffer);
    const params = name.startsWith('bu') ? bu.params : ws.model.params;
    if (name === 'buErrors')
      ws.setGroup(
        `${prefix}.${name}`,
        createBindGroup(device, ws.k('errors'), { jobs: buffer, params, work: ws.buffer }),
        table.workgroups,
      );
    if (name === 'buParams' || name === 'tdParams') {
      const grads = (name === 'buParams' ? bu : ws.model).grads();
      ws.setGroup(
        `${prefix}.${name}`,
        createBindGroup(device, ws.k('paramGrad'), { jobs: buffer, work: ws.buffer, grads }),
        table.workgroups,
      );
    }
    if (isActTable(name))
      ws.registerActTable(`${prefix}.${name}`, buffer, params, list, name === 'buGrads' && own ? names.grad : 'act');
  }
  if (own) {
    // φ_b over the whole state (z_0..z_{H+1}) into aux family 2: one elementwise op.
    const ops = packCombineOps([{ n: ws.nAll, u: ws.fam.y, v: 0, out: ws.aux[2]!, a: 0, b: 0 }]);
    const table = ws.storageTable(`${prefix}.activate`, ops);
    ws.setGroup(
      `${prefix}.activate`,
      createBindGroup(device, ws.k(names.activate), { ops: table, work: ws.buffer }),
      Math.min(1024, ws.elementwiseGroups(ws.nAll)),
    );
  }
  const energies = ws.segmentTable(`${prefix}.energies`, jobs.energies);
  ws.setGroup(
    `reduce.${prefix}.energies`,
    createBindGroup(device, ws.k('reduce'), { segments: energies, src: ws.buffer, dst: ws.scalars }),
  );
  buffers.set('energies', energies);
  const acc = ws.segmentTable(`${prefix}.total`, [
    { off: ws.scalar.energies, count: jobs.count, stride: 1, out: ws.scalar.total, scale: 1 },
  ]);
  ws.setGroup(`${prefix}.total`, createBindGroup(device, ws.k('accumulate'), { segments: acc, dst: ws.scalars }), 1);
  perWs.set(bu.serial * 2 + (call.unsupervised ? 1 : 0), { key, buffers });
  return prefix;
}

/** Loads x (into z_0's slot when supervised), the activities and y; computes φ (and φ_b when it differs). */
function loadBpc(ws: Workspace, rec: Recorder, call: BpcCall, prefix: string): void {
  const { cap, unsupervised } = call;
  writeSolverConfig(ws, undefined);
  loadBatch(ws, rec, null, cap.output);
  if (!unsupervised)
    rec.copy(cap.input!.buffer, cap.input!.byteOffset, ws.buffer, ws.activityOffset(0) * 4, cap.input!.byteLength);
  const first = unsupervised ? 0 : 1;
  call.cap.activities.forEach((t, i) =>
    rec.copy(t.buffer, t.byteOffset, ws.buffer, ws.activityOffset(i + first) * 4, t.byteLength),
  );
  ws.recordElementwise(rec, 'activate');
  if (ownActivation(call.td, call.bu)) ws.dispatchGroup(rec, buKernels(call.bu).activate, `${prefix}.activate`);
}

/** Both networks' errors, the layer energies and their total. */
function recordBpcErrors(ws: Workspace, rec: Recorder, prefix: string, energies: boolean): void {
  ws.recordErrors(rec, 'y', 'mse', false);
  ws.dispatchGroup(rec, 'errors', `${prefix}.buErrors`);
  if (!energies) return;
  ws.recordReduce(rec, `${prefix}.energies`);
  rec.clear(ws.scalars, ws.scalar.total * 4, 4);
  ws.dispatchGroup(rec, 'accumulate', `${prefix}.total`);
}

/** ∂F/∂z for the free activities into the gradient family (aux 1). */
function recordBpcActivityGrad(ws: Workspace, rec: Recorder, prefix: string): void {
  ws.recordActTable(rec, `${prefix}.buGrads`, false, 0);
  ws.recordActTable(rec, `${prefix}.tdGrads`, false, 0);
}

/** The top-down workspace every bPC call runs on (the bottom-up network's work goes into its aux and extra). */
function bpcWorkspace(td: Model, bu: Model, B: number): WorkspaceRequest {
  const tile = tilesFor(td.runtime);
  const tiles = (m: number, n: number) => tilesOf(m, n, tile);
  return {
    model: td,
    B,
    mode: 'unsupervised',
    needs: { stages: 2, gridSteps: 1, aux: auxFamilies(td, bu), extra: extraFloats(td, bu, B, tiles) },
  };
}

function onBpc<T>(call: BpcCall, task: (ws: Workspace, rec: Recorder, prefix: string) => T | Promise<T>): Promise<T> {
  const { td, bu, B } = call;
  return onWorkspaces([bpcWorkspace(td, bu, B)], call.cap, async ([ws], rec) => {
    const prefix = await prepareBpc(ws!, bu, call);
    return task(ws!, rec, prefix);
  });
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
  return onBpc(call, (ws, rec, prefix) => {
    loadBpc(ws, rec, call, prefix);
    recordBpcErrors(ws, rec, prefix, true);
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
  return onBpc(call, (ws, rec, prefix) => {
    loadBpc(ws, rec, call, prefix);
    recordBpcErrors(ws, rec, prefix, true);
    recordBpcActivityGrad(ws, rec, prefix);
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
  return onBpc(call, (ws, rec, prefix) => {
    loadBpc(ws, rec, call, prefix);
    recordBpcErrors(ws, rec, prefix, false);
    ws.dispatchGroup(rec, 'paramGrad', `${prefix}.tdParams`);
    ws.dispatchGroup(rec, 'paramGrad', `${prefix}.buParams`);
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
  return onBpc(call, async (ws, rec, prefix) => {
    const kernel = await optState.kernel(true);
    loadBpc(ws, rec, call, prefix);
    recordBpcErrors(ws, rec, prefix, true);
    recordBpcActivityGrad(ws, rec, prefix);
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
  return onBpc(call, async (ws, rec, prefix) => {
    const [tk, bk] = await Promise.all([optStates[0].kernel(false), optStates[1].kernel(false)]);
    loadBpc(ws, rec, call, prefix);
    recordBpcErrors(ws, rec, prefix, false);
    ws.dispatchGroup(rec, 'paramGrad', `${prefix}.tdParams`);
    ws.dispatchGroup(rec, 'paramGrad', `${prefix}.buParams`);
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
