/**
 * Bidirectional PC on the top-down network's workspace: the job tables of both networks (the bottom-up one walks
 * the same activities in reverse), built once per (bottom-up model, mode) and rewritten when α changes, and the
 * recording steps every bPC call shares.
 */
import { type Job, type SegmentSpec, packCombineOps } from '../../kernels/structs.js';
import { activateKernel } from '../../kernels/elementwise.js';
import { activityGradKernel } from '../../kernels/layer-matmul.js';
import type { Recorder } from '../../runtime/recorder.js';
import { type Captured, loadBatch, onWorkspaces, type WorkspaceRequest } from '../batch.js';
import { gradJob, packJobs, tilesOf } from '../layer-jobs.js';
import { carryTerm, errorJobs, paramGradJobs } from '../layers/index.js';
import type { Model } from '../model.js';
import { writeSolverConfig } from '../solve/index.js';
import { type ActTable, type Workspace, tilesFor } from '../workspace.js';
import { type Dispatch, cachedPer, record } from '../workspace/handles.js';
import type { SegmentTable } from '../workspace/tables.js';

export interface BpcCall {
  td: Model;
  bu: Model;
  B: number;
  H: number;
  unsupervised: boolean;
  alphaF: number;
  alphaB: number;
  cap: Captured;
}

/** Floats of scratch the bottom-up network's partial sums need in the top-down workspace. */
function extraFloats(td: Model, bu: Model, B: number, tiles: (m: number, n: number) => number): number {
  const buErrors = bu.layers.reduce((s, l) => s + tiles(B, l.outDim), 0);
  const buGrads = td.dims.slice(0, td.depth).reduce((s, d) => s + tiles(B, d), 0);
  return 4 * (buErrors + buGrads);
}

/** The tables of one (top-down, bottom-up, α_f, α_b) on the top-down workspace; rewritten when α changes. */
interface BpcTables {
  /** The α_f:α_b the tables hold. */
  key: string;
  jobs: { buErrors: GPUBuffer; buParams: GPUBuffer; tdParams: GPUBuffer };
  buErrors: Dispatch;
  buParams: Dispatch;
  tdParams: Dispatch;
  buGrads: ActTable;
  tdGrads: ActTable;
  /** φ_b over the whole state, when the activations differ. */
  activate: Dispatch | undefined;
  energiesTable: SegmentTable;
  energies: Dispatch;
  total: Dispatch;
}

/** Per top-down workspace, per bottom-up model, the tables of each mode. */
const bpcTables = cachedPer(
  (_ws: Workspace) => new WeakMap<Model, { supervised?: BpcTables; unsupervised?: BpcTables }>(),
);

/** Whether the bottom-up network's activation differs from the top-down one's (then φ_b(z) has its own family). */
const ownActivation = (td: Model, bu: Model): boolean => td.actFn !== bu.actFn;

/** Aux families: 0 the bottom-up errors, 1 the gradients, 2 φ_b(z) when the activations differ. */
const auxFamilies = (td: Model, bu: Model): number => (ownActivation(td, bu) ? 3 : 2);

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
      ...errorJobs(layer, {
        rows: B,
        input,
        target: slot(fam.y, out),
        error: slot(e2, out),
        part: buErrorPart[a - 1]!,
        output: a === H + 1,
        ...(layer.skip ? { residualFrom: slot(fam.y, out + 1) } : {}),
      }),
    );
    buParams.push(...paramGradJobs(layer, { rows: B, error: slot(e2, out), input, coef: (-alphaB * layer.scale) / B }));
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
        ...(nextBu ? { carry: carryTerm(nextBu, { error: slot(e2, l - 1), weight: 1 }) } : {}),
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
        carry: carryTerm(td.layers[l]!, { error: slot(fam.e, l + 1), weight: 1 }),
        identity: l === 0,
        accumulate: true,
        scale: alphaF / B,
      }),
    );
  }
  const tdParams = td.layers.flatMap((layer, i) =>
    paramGradJobs(layer, {
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

/** Builds or refreshes the bPC tables and bind groups on the top-down workspace. */
async function prepareBpc(ws: Workspace, bu: Model, call: Omit<BpcCall, 'cap'>): Promise<BpcTables> {
  const own = ownActivation(ws.model, bu);
  const jobs = bpcJobs(ws, bu, call.alphaF, call.alphaB, call.unsupervised);
  const key = `${call.alphaF}:${call.alphaB}`;
  const mode = call.unsupervised ? 'unsupervised' : 'supervised';
  let perBu = bpcTables(ws).get(bu);
  if (!perBu) bpcTables(ws).set(bu, (perBu = {}));
  const existing = perBu[mode];
  if (existing) {
    if (existing.key !== key) {
      const write = (buffer: GPUBuffer, list: Job[]) =>
        ws.runtime.device.queue.writeBuffer(buffer, 0, packJobs(list, ws.tiles).data);
      write(existing.jobs.buErrors, jobs.buErrors);
      write(existing.jobs.buParams, jobs.buParams);
      write(existing.buGrads.jobs, jobs.buGrads);
      existing.buGrads.update(jobs.buGrads);
      write(existing.tdGrads.jobs, jobs.tdGrads);
      existing.tdGrads.update(jobs.tdGrads);
      write(existing.jobs.tdParams, jobs.tdParams);
      ws.rewriteSegments(existing.energiesTable, jobs.energies);
      existing.key = key;
    }
    return existing;
  }
  const rt = ws.runtime;
  // The bottom-up network's own activation: its activity-gradient kernel and φ_b (rt.kernel compiles each once).
  const [buAct, activateK] = own
    ? await Promise.all([rt.kernel(activityGradKernel(bu.actFn, ws.tiles, false)), rt.kernel(activateKernel(bu.actFn))])
    : [undefined, undefined];
  const label = `bpc.${bu.serial}.${call.unsupervised ? 'u' : 's'}`;
  const upload = (name: string, list: Job[]) => {
    const table = packJobs(list, ws.tiles);
    return { buffer: ws.jobTable(`${label}.${name}`, table), workgroups: table.workgroups };
  };
  const k = ws.trainKernels;
  const buErrors = upload('buErrors', jobs.buErrors);
  const buParams = upload('buParams', jobs.buParams);
  const tdParams = upload('tdParams', jobs.tdParams);
  const work = ws.buffer;
  let activate: Dispatch | undefined;
  if (activateK) {
    // φ_b over the whole state (z_0..z_{H+1}) into aux family 2: one elementwise op.
    const ops = packCombineOps([{ n: ws.nAll, u: ws.fam.y, v: 0, out: ws.aux[2]!, a: 0, b: 0 }]);
    const table = ws.storageTable(`${label}.activate`, ops);
    activate = ws.bind(activateK, { ops: table, work }, Math.min(1024, ws.elementwiseGroups(ws.nAll)));
  }
  const energiesTable = ws.segmentTable(`${label}.energies`, jobs.energies);
  const acc = ws.segmentTable(`${label}.total`, [
    { off: ws.scalar.energies, count: jobs.count, stride: 1, out: ws.scalar.total, scale: 1 },
  ]);
  const tables: BpcTables = {
    key,
    jobs: { buErrors: buErrors.buffer, buParams: buParams.buffer, tdParams: tdParams.buffer },
    buErrors: ws.bind(k.errors.plain, { jobs: buErrors.buffer, params: bu.params, work }, buErrors.workgroups),
    buParams: ws.bind(k.paramGrad, { jobs: buParams.buffer, work, grads: bu.grads() }, buParams.workgroups),
    tdParams: ws.bind(k.paramGrad, { jobs: tdParams.buffer, work, grads: ws.model.grads() }, tdParams.workgroups),
    buGrads: ws.actTable(`${label}.buGrads`, jobs.buGrads, bu.params, buAct ? { plain: buAct } : k.act),
    tdGrads: ws.actTable(`${label}.tdGrads`, jobs.tdGrads, ws.model.params),
    activate,
    energiesTable,
    energies: ws.bind(
      ws.kernels.reduce,
      { segments: energiesTable.buffer, src: work, dst: ws.scalars },
      energiesTable.workgroups,
    ),
    total: ws.bind(k.accumulate, { segments: acc.buffer, dst: ws.scalars }, 1),
  };
  perBu[mode] = tables;
  return tables;
}

/** Loads x (into z_0's slot when supervised), the activities and y; computes φ (and φ_b when it differs). */
export function loadBpc(ws: Workspace, rec: Recorder, call: BpcCall, tables: BpcTables): void {
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
  if (tables.activate) record(rec, tables.activate);
}

/** Both networks' errors, the layer energies and their total. */
export function recordBpcErrors(ws: Workspace, rec: Recorder, tables: BpcTables, energies: boolean): void {
  ws.recordErrors(rec, 'y', 'mse', false);
  record(rec, tables.buErrors);
  if (!energies) return;
  record(rec, tables.energies);
  rec.clear(ws.scalars, ws.scalar.total * 4, 4);
  record(rec, tables.total);
}

/** ∂F/∂z for the free activities into the gradient family (aux 1). */
export function recordBpcActivityGrad(ws: Workspace, rec: Recorder, tables: BpcTables): void {
  ws.recordActTable(rec, tables.buGrads, false, 0);
  ws.recordActTable(rec, tables.tdGrads, false, 0);
}

/** The top-down workspace every bPC call runs on (the bottom-up network's work goes into its aux and extra). */
export function bpcWorkspace(td: Model, bu: Model, B: number): WorkspaceRequest {
  const tile = tilesFor(td.runtime);
  const tiles = (m: number, n: number) => tilesOf(m, n, tile);
  return {
    model: td,
    B,
    mode: 'unsupervised',
    needs: { stages: 2, gridSteps: 1, aux: auxFamilies(td, bu), extra: extraFloats(td, bu, B, tiles) },
  };
}

export function onBpc<T>(
  call: BpcCall,
  task: (ws: Workspace, rec: Recorder, tables: BpcTables) => T | Promise<T>,
): Promise<T> {
  const { td, bu, B } = call;
  return onWorkspaces([bpcWorkspace(td, bu, B)], call.cap, async ([ws], rec) => {
    const tables = await prepareBpc(ws!, bu, call);
    return task(ws!, rec, tables);
  });
}
