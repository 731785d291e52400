/**
 * What a training workspace dispatches of its own network, built once from the network's tables: the errors at
 * each evaluation point for each output kind (plain and gated), the output kinds' finishing kernels, the energy
 * reductions, the activity-gradient tables, the parameter gradients, the solver's entry points, the norms, and
 * the regulariser and recording that hang off them.
 */
import type { Job } from '../../kernels/structs.js';
import { rowTable } from '../../kernels/output.js';
import { elementwiseGroups } from '../../kernels/parts.js';
import { ReduceFlag } from '../../kernels/reduce.js';
import { SOLVER_ENTRIES, type SolverEntry } from '../../kernels/solver.js';
import type { TileConfig } from '../../kernels/tiles.js';
import type { CompiledKernel } from '../../runtime/kernel.js';
import type { Runtime } from '../../runtime/runtime.js';
import { type JobTable, packJobs } from '../layer-jobs.js';
import { biasTensor, weightMatrix } from '../layers/index.js';
import { FINISH_ENTRIES, LOSSES, type Loss } from '../layers/output.js';
import type { Model } from '../model.js';
import { ActTable } from './act-table.js';
import type { Dispatch, Gated } from './handles.js';
import type { TrainKernels, WorkspaceKernels } from './kernels.js';
import type { EvalPoint, Families, ScalarSlots } from './layout.js';
import type { NetworkTables } from './network-tables.js';
import { Recording } from './recording.js';
import { Regularizer } from './regularizer.js';
import type { SegmentSpec } from '../../kernels/structs.js';
import type { SegmentTable } from './tables.js';

/** What a training workspace dispatches of its own network. */
export interface TrainDispatches {
  errors: Record<EvalPoint, Record<Loss, Gated<Dispatch>>>;
  finish: Record<(typeof FINISH_ENTRIES)[number], Gated<Dispatch>>;
  energies: Record<Loss, Dispatch>;
  act: Record<EvalPoint, ActTable>;
  paramGrad: Dispatch;
  solver: Record<SolverEntry, Dispatch>;
  rowNorms: Dispatch;
  activityNorms: Dispatch;
  paramNorms: Dispatch;
  gradNorms: Dispatch;
}

/** A table whose contents depend on the energy terms (λ): rebuilt in place by `applyEnergy`. */
export type EnergyTable =
  | { kind: 'jobs'; buffer: GPUBuffer; build: () => Job[]; act?: ActTable }
  | { kind: 'segments'; buffer: GPUBuffer; build: () => SegmentSpec[] };

/** What building reads of its workspace. */
interface TrainHost {
  readonly runtime: Runtime;
  readonly model: Model;
  readonly tables: NetworkTables;
  readonly batch: number;
  readonly tiles: TileConfig;
  readonly work: GPUBuffer;
  readonly scalars: GPUBuffer;
  readonly state: GPUBuffer;
  readonly config: GPUBuffer;
  readonly fam: Families;
  readonly layer: readonly number[];
  readonly first: 0 | 1;
  readonly nAll: number;
  readonly target: number;
  readonly partCe: number;
  readonly partRows: number;
  readonly scalar: ScalarSlots;
  /** The output energy's weight λ the tables are built for now. */
  lambda(): number;
  jobTable(label: string, table: JobTable): GPUBuffer;
  storageTable(label: string, data: ArrayBuffer): GPUBuffer;
  segmentTable(label: string, segs: readonly SegmentSpec[]): SegmentTable;
  rewriteSegments(table: SegmentTable, segs: readonly SegmentSpec[]): void;
  bind(
    kernel: CompiledKernel,
    resources: Readonly<Record<string, GPUBuffer | GPUBufferBinding>>,
    workgroups: number | readonly [number, number],
  ): Dispatch;
  reduce(label: string, segs: readonly SegmentSpec[], src: GPUBuffer, dst: GPUBuffer): Dispatch;
  rowsUniform(label: string, r: { cols: number; pred: number; target: number; part: number; ce: boolean }): GPUBuffer;
  /** Job and segment tables that depend on λ (rebuilt in place when it changes). */
  energyJobs(
    label: string,
    build: () => Job[],
  ): { entry: Extract<EnergyTable, { kind: 'jobs' }>; jobs: Job[]; workgroups: number };
  energySegments(label: string, build: () => SegmentSpec[]): SegmentTable;
  /** Buffers freed with the workspace. */
  own(buffer: GPUBuffer): void;
}

/** Builds a training workspace's dispatches, regulariser and recording. */
export function buildTraining(
  h: TrainHost,
  kernels: WorkspaceKernels,
  k: TrainKernels,
): { dispatches: TrainDispatches; regularizer: Regularizer; recording: Recording } {
  const { model, tables } = h;
  const L = model.depth;
  const B = h.batch;
  const work = h.work;
  const params = model.params;
  const state = h.state;
  const lambda = h.lambda;

  const errorsAt = (point: EvalPoint, loss: Loss): Gated<Dispatch> => {
    const table = packJobs(tables.errorJobs(point, loss), h.tiles);
    const jobs = h.jobTable(`errors.${point}.${loss}`, table);
    return {
      plain: h.bind(k.errors.plain, { jobs, params, work }, table.workgroups),
      gated: h.bind(k.errors.gated, { jobs, params, work, state }, table.workgroups),
    };
  };
  const errors = {
    y: { mse: errorsAt('y', 'mse'), ce: errorsAt('y', 'ce') },
    t: { mse: errorsAt('t', 'mse'), ce: errorsAt('t', 'ce') },
  };
  // The layer energies and their total in one dispatch (one workgroup per segment); and the recording tables:
  // the layer energies into a row of the records buffer.
  const energies = {} as Record<Loss, Dispatch>;
  const recordSegments = {} as Record<Loss, SegmentTable>;
  for (const loss of LOSSES) {
    const table = h.energySegments(`energies.${loss}`, () => [
      ...tables.layerEnergySegments(loss, lambda()),
      tables.totalEnergySegment(loss, lambda()),
    ]);
    energies[loss] = h.bind(kernels.reduce, { segments: table.buffer, src: work, dst: h.scalars }, table.workgroups);
    recordSegments[loss] = h.energySegments(`record.${loss}`, () => tables.layerEnergySegments(loss, lambda()));
  }
  // The output kinds' finishing kernels read the logits left in e_L and write one partial quad per row.
  const finishRows = h.rowsUniform('finish', {
    cols: model.outputDim,
    pred: h.fam.e + h.layer[L]!,
    target: h.target,
    part: h.partCe,
    ce: true,
  });
  const finish = Object.fromEntries(
    FINISH_ENTRIES.map((f) => [
      f,
      {
        plain: h.bind(k.finish[f].plain, { rows: finishRows, work }, elementwiseGroups(B)),
        gated: h.bind(k.finish[f].gated, { rows: finishRows, work, state }, elementwiseGroups(B)),
      },
    ]),
  ) as TrainDispatches['finish'];
  const actAt = (point: EvalPoint): ActTable => {
    const { entry, jobs, workgroups } = h.energyJobs(`act.${point}`, () => tables.activityGradJobs(point, lambda()));
    entry.act = new ActTable(entry.buffer, params, k.act, workgroups, jobs);
    return entry.act;
  };
  const act = { y: actAt('y'), t: actAt('t') };
  const pgrad = h.energyJobs('paramGrad', () => tables.paramGradJobs(lambda()));
  const paramGrad = h.bind(k.paramGrad, { jobs: pgrad.entry.buffer, work, grads: model.grads() }, pgrad.workgroups);
  const solver = Object.fromEntries(
    SOLVER_ENTRIES.map((e) => [e, h.bind(k.solver[e], { config: h.config, work, state }, 1)]),
  ) as Record<SolverEntry, Dispatch>;
  // Norms: mean_b ‖z_b‖ per activity (JPC's compute_activity_norms), ‖W_l‖ and ‖b_l‖ of parameters and gradients.
  const regions = Array.from({ length: L + 1 - h.first }, (_, i) => {
    const l = i + h.first;
    return {
      rows: B,
      cols: model.dims[l]!,
      predOff: h.fam.y + h.layer[l]!,
      partOff: h.partRows + 4 * B * l,
    };
  });
  const rowNormTable = rowTable(regions);
  const rowNorms = h.bind(
    k.rowNorms,
    { rows: h.storageTable('rows.activityNorms', rowNormTable.data.buffer), work },
    rowNormTable.workgroups,
  );
  const activityNorms = h.reduce(
    'activityNorms',
    Array.from({ length: L + 1 - h.first }, (_, i) => ({
      off: h.partRows + 4 * B * (i + h.first),
      count: B,
      stride: 4,
      out: h.scalar.activityNorms + i,
      scale: 1 / B,
    })),
    work,
    h.scalars,
  );
  // ‖W_l‖ and ‖b_l‖ per layer (an empty segment gives 0 for a layer without bias).
  const norms = (out: number): SegmentSpec[] =>
    model.layers.flatMap((spec, i) => {
      const w = weightMatrix(spec);
      const b = biasTensor(spec);
      const flags = ReduceFlag.SQUARE | ReduceFlag.SQRT;
      return [
        { off: w.offset, count: w.rows * w.cols, stride: 1, out: out + 2 * i, scale: 1, flags },
        { off: b ? b.offset : 0, count: b ? b.shape[0]! : 0, stride: 1, out: out + 2 * i + 1, scale: 1, flags },
      ];
    });
  const paramNorms = h.reduce('paramNorms', norms(h.scalar.paramNorms), params, h.scalars);
  const gradNorms = h.reduce('gradNorms', norms(h.scalar.gradNorms), model.grads(), h.scalars);
  const regularizer = new Regularizer({
    runtime: h.runtime,
    model,
    batch: B,
    work,
    y: h.fam.y,
    nAll: h.nAll,
    scalars: h.scalars,
    regsSlot: h.scalar.regs,
    totalSlot: h.scalar.total,
    reduceKernel: kernels.reduce,
    accumulateKernel: k.accumulate,
    segmentTable: h.segmentTable,
    rewriteSegments: h.rewriteSegments,
    own: h.own,
  });
  const recording = new Recording({
    runtime: h.runtime,
    depth: L,
    work,
    state,
    y: h.fam.y,
    nAll: h.nAll,
    kernels: k.record,
    segments: recordSegments,
  });
  const dispatches: TrainDispatches = {
    errors,
    finish,
    energies,
    act,
    paramGrad,
    solver,
    rowNorms,
    activityNorms,
    paramNorms,
    gradNorms,
  };
  return { dispatches, regularizer, recording };
}
