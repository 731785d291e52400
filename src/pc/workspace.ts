/**
 * A workspace holds everything one model needs on the GPU for batches of one size: a single storage buffer
 * with every activity-shaped array (see workspace/layout.ts), a small buffer of scalar results, the job tables of
 * the grouped layer kernels, the solver state, and bind groups built once and reused by every step of every
 * batch. Batches are written into it; nothing is allocated per step.
 *
 * The pieces live beside it in workspace/: the layout, the network's tables (built through the layer kinds),
 * the stage records, activity-gradient tables, the regulariser, recording and the fused solve. This file owns
 * the buffers, compiles the kernels, builds the bind groups and records the dispatches the solvers and the
 * PC functions ask for. Variants build their own tables with the same calls and keep the handles they get.
 *
 * Longer than 500 lines: this class is the one surface through which solvers, the PC functions and the variants
 * record work on a workspace (about forty short methods, each a dispatch or two); the parts with state of their
 * own are already in workspace/, and splitting the surface would only add a layer of forwarding.
 */
import {
  CONFIG_WORDS,
  type CombineOp,
  type Job,
  STATE_WORDS,
  type SegmentSpec,
  type StageRecord,
  packCombineOps,
  packRows,
  packSegments,
} from '../kernels/structs.js';
import type { Activation } from '../kernels/activations.js';
import { elementwiseGroups } from '../kernels/parts.js';
import { type TileConfig, epilogueColumns } from '../kernels/tiles.js';
import { BufferUsage, UNIFORM_USAGE } from '../runtime/flags.js';
import type { CompiledKernel } from '../runtime/kernel.js';
import type { Recorder } from '../runtime/recorder.js';
import { SleepEstimator } from '../runtime/polling.js';
import type { Runtime } from '../runtime/runtime.js';
import { type JobTable, epilogue4Ready, packJobs, tilesOf } from './layer-jobs.js';
import { convolutional, fusedLayer } from './layers/index.js';
import { type Loss, outputKind } from './layers/output.js';
import type { Model } from './model.js';
import { type ActBindings, type ActKernels, ActTable } from './workspace/act-table.js';
import { type TrainKernels, type WorkspaceKernels, compileKernels } from './workspace/kernels.js';
import { type EnergyTable, type TrainDispatches, buildTraining } from './workspace/train-tables.js';
import { FusedSolve } from './workspace/fused.js';
import { type Dispatch, bind, record } from './workspace/handles.js';
import {
  type EvalPoint,
  type Families,
  type Mode,
  type Partials,
  type Purpose,
  type ScalarSlots,
  type WorkspaceNeeds,
  scalarSlots,
  tilesFor,
  workspaceLayout,
} from './workspace/layout.js';
import { NetworkTables } from './workspace/network-tables.js';
import type { Recording, RecordingBuffers } from './workspace/recording.js';
import { Regularizer } from './workspace/regularizer.js';
import { StageRecords } from './workspace/stages.js';
import type { SegmentTable } from './workspace/tables.js';
import { type EnergyTerms, PLAIN_ENERGY } from './workspace/terms.js';

export type { Loss };
export type { ActTable } from './workspace/act-table.js';
export {
  type EvalPoint,
  type Mode,
  type WorkspaceNeeds,
  checkWorkspaceFits,
  maxWorkspaceRows,
  tilesFor,
} from './workspace/layout.js';
export { type EnergyTerms, PLAIN_ENERGY } from './workspace/terms.js';

/** A row metric (loss and accuracy of one region against another) with its tables, built once. */
export interface RowMetric {
  readonly rows: Dispatch;
  readonly reduce: Dispatch;
}

/** The workspaces built for each model, by batch size, purpose and mode (freed with the model). */
const workspaces = new WeakMap<Model, Map<string, Promise<Workspace>>>();

function workspacesOf(model: Model): Map<string, Promise<Workspace>> {
  let cache = workspaces.get(model);
  if (!cache) {
    const built = new Map<string, Promise<Workspace>>();
    model.onDispose(() => {
      for (const ws of built.values())
        void ws.then(
          (w) => w.dispose(),
          () => undefined,
        );
      built.clear();
    });
    workspaces.set(model, built);
    cache = built;
  }
  return cache;
}

export class Workspace {
  readonly runtime: Runtime;
  readonly tiles: TileConfig;
  readonly act: Activation;
  readonly mode: Mode;
  /** The first activity of the state: 1 (supervised) or 0 (unsupervised, z_0 free). */
  readonly first: 0 | 1;
  /** Offset of z_l inside every family, for l = first..L. */
  readonly layer: number[];
  /** Elements of the whole state (z_first..z_L), and of z_first..z_{L−1}. */
  readonly nAll: number;
  readonly nHidden: number;
  readonly fam: Families;
  /** The stage records' families (y, φ(y), t, φ(t), k_j and their stride) are ≡ 0 mod 4: vec_ok's record part. */
  private readonly stageFamiliesAligned: boolean;
  /** Bases of the extra families. */
  readonly aux: number[];
  /** Extra scratch: offset and size in floats. */
  readonly extra: { off: number; size: number };
  /** Stage families allocated (k_1..k_stages). */
  readonly stages: number;
  readonly gridSteps: number;
  readonly x: number;
  readonly pred1: number;
  readonly target: number;
  readonly grid: number;
  /** Offsets in the scalars buffer. */
  readonly scalar: ScalarSlots;
  readonly buffer: GPUBuffer;
  /** Small results (energies, losses, norms) written by reductions; copied out to tensors. */
  readonly scalars: GPUBuffer;
  readonly state: GPUBuffer;
  private readonly config: GPUBuffer;
  readonly partE: number;
  readonly partCe: number;
  readonly partA: Partials;
  readonly partB: Partials;
  readonly partD0: Partials;
  private readonly partRows: number;
  /** Tiles of each layer's errors, for l = 1..L at index l − 1. */
  readonly errorTiles: number[];
  /** First partial quad of the activity-gradient job of z_l (l = first..L) inside partA / partB. */
  readonly gradPart: number[];
  /** The network's job and segment tables. */
  readonly tables: NetworkTables;
  private readonly ownBuffers: GPUBuffer[] = [];
  private readonly energyTables: EnergyTable[] = [];
  private readonly stageRecords: StageRecords;
  /** What the activity-gradient tables are bound over. */
  private readonly actBindings: ActBindings;
  /** Every layer is of a kind the fused whole-solve kernel runs. */
  private readonly fusableLayers: boolean;
  private compiled: WorkspaceKernels | undefined;
  private forwardLayers: Dispatch[] = [];
  private pred1Dispatch: Dispatch | undefined;
  /** JPC's loss and accuracy of z_L against the target, by output kind (supervised workspaces). */
  private loss: Record<Loss, RowMetric> | undefined;
  private trainDispatches: TrainDispatches | undefined;
  private regularizerState: Regularizer | undefined;
  private recordingState: Recording | undefined;
  private fused: Promise<FusedSolve> | undefined;
  /** What the last adaptive solve on this workspace took, to size the first chunk and the host's sleep. */
  readonly pidHistory = { lastSteps: 0, sleep: new SleepEstimator() };
  /** How long timed solves take (makePcStep's timeInference), to sleep instead of busy-waiting. */
  readonly solveClock = new SleepEstimator();
  /** The energy terms the tables are built for. */
  private energy: EnergyTerms = { ...PLAIN_ENERGY };

  private constructor(
    readonly model: Model,
    readonly batch: number,
    readonly purpose: Purpose,
    mode: Mode,
    needs: WorkspaceNeeds,
  ) {
    const rt = (this.runtime = model.runtime);
    this.tiles = tilesFor(rt);
    this.act = model.actFn;
    this.mode = mode;
    const B = batch;
    const plan = workspaceLayout(model, B, purpose, mode, needs, this.tiles);
    this.first = plan.first;
    this.layer = plan.layer;
    this.nAll = plan.nAll;
    this.nHidden = plan.nHidden;
    this.stages = plan.stages;
    this.gridSteps = plan.gridSteps;
    this.errorTiles = plan.errorTiles;
    this.gradPart = plan.gradPart;
    this.fam = plan.fam;
    const { fam } = this;
    this.stageFamiliesAligned = [fam.y, fam.py, fam.t, fam.pt, fam.k, this.nAll].every((v) => v % 4 === 0);
    this.aux = plan.aux;
    this.x = plan.x;
    this.pred1 = plan.pred1;
    this.target = plan.target;
    this.grid = plan.grid;
    this.partE = plan.partE;
    this.partCe = plan.partCe;
    this.partA = plan.partA;
    this.partB = plan.partB;
    this.partD0 = plan.partD0;
    this.partRows = plan.partRows;
    this.extra = plan.extra;
    this.scalar = scalarSlots(model.depth);
    this.tables = new NetworkTables(model, B, mode, plan, this.tiles, this.scalar);

    this.buffer = rt.createStorageBuffer(plan.floats * 4, `wpc.workspace[B=${B}]`);
    this.scalars = rt.createStorageBuffer(this.scalar.size * 4, 'wpc.scalars');
    this.state = rt.createStorageBuffer(STATE_WORDS * 4, 'wpc.solver-state');
    this.config = rt.device.createBuffer({ size: CONFIG_WORDS * 4, usage: UNIFORM_USAGE, label: 'wpc.solver-config' });
    this.stageRecords = new StageRecords(rt, { ...fam, nAll: this.nAll });
    this.actBindings = {
      device: rt.device,
      work: this.buffer,
      state: this.state,
      stages: this.stageRecords,
      stagesAligned: this.stageFamiliesAligned,
    };
    this.fusableLayers = model.layers.every((l) => fusedLayer(l) !== undefined);
    this.ownBuffers.push(this.buffer, this.scalars, this.state, this.config);
  }

  /**
   * Builds (or returns the cached) workspace of `model` for batches of `batch` examples in `mode`, with at least
   * what `needs` asks for (a smaller cached workspace is replaced once its work is done).
   */
  static get(
    model: Model,
    batch: number,
    purpose: Purpose,
    needs: WorkspaceNeeds = { stages: 2, gridSteps: 1 },
    mode: Mode = 'supervised',
  ): Promise<Workspace> {
    const cache = workspacesOf(model);
    const trainKey = `${batch}:train:${mode}`;
    const key = purpose === 'eval' && cache.has(trainKey) ? trainKey : `${batch}:${purpose}:${mode}`;
    const cached = cache.get(key);
    const build = (grown: WorkspaceNeeds, previous?: Promise<Workspace>) => {
      const ws = (async () => {
        if (previous) {
          // Let every task already queued on the old workspace finish before its buffers go.
          const old = await previous.catch(() => undefined);
          if (old) await old.exclusive(async () => old.dispose());
        }
        const w = await model.runtime.scoped(
          `workspace for batch ${batch}`,
          () => new Workspace(model, batch, purpose, mode, grown),
        );
        await w.prepare();
        return w;
      })();
      cache.set(key, ws);
      ws.catch(() => {
        if (cache.get(key) === ws) cache.delete(key);
      });
      return ws;
    };
    if (!cached) {
      // Keep at most a few workspaces per model (e.g. the training batch, a test batch, a last partial batch).
      if (cache.size >= 4) {
        const oldest = cache.keys().next().value!;
        const old = cache.get(oldest)!;
        cache.delete(oldest);
        void old.then(
          (w) => w.exclusive(async () => w.dispose()),
          () => undefined,
        );
      }
      return build(needs);
    }
    return cached.then((w) => {
      if (w.purpose !== 'train') return w;
      const enough =
        w.stages >= needs.stages &&
        w.gridSteps >= needs.gridSteps &&
        w.aux.length >= (needs.aux ?? 0) &&
        w.extra.size >= (needs.extra ?? 0);
      if (enough) return w;
      return build(
        {
          stages: Math.max(w.stages, needs.stages),
          gridSteps: Math.max(w.gridSteps, needs.gridSteps),
          aux: Math.max(w.aux.length, needs.aux ?? 0),
          extra: Math.max(w.extra.size, needs.extra ?? 0),
        },
        cached,
      );
    });
  }

  private queue: Promise<unknown> = Promise.resolve();

  /**
   * Runs `task` when every earlier task on this workspace has finished. A workspace is one set of buffers, so
   * two calls on the same model and batch size (say, two un-awaited `makePcStep`s) must not interleave.
   */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  tileCount(m: number, n: number): number {
    return tilesOf(m, n, this.tiles);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Where things are

  /** The A operand of layer l's prediction at `point`: φ(z_{l−1}), or the raw x / z_0 for the first layer. */
  layerInput(l: number, point: EvalPoint): number {
    return this.tables.layerInput(l, point);
  }

  /** Start of layer l's error partials (l = 1..L). */
  errorPart(l: number): number {
    return this.tables.errorPart(l);
  }

  /**
   * Whether the fused whole-solve kernel can run this workspace: JPC's plain energy (no λ, decay or skips, input
   * clamped), and every layer of a kind that kernel knows.
   */
  get plain(): boolean {
    return (
      this.mode === 'supervised' &&
      !this.model.hasSkips &&
      this.energy.lambda === 1 &&
      this.energy.activityDecay === 0 &&
      this.fusableLayers
    );
  }

  /** Element offset of z_l in the activity family y (l = first..L). */
  activityOffset(l: number): number {
    return this.fam.y + this.layer[l]!;
  }

  /** Element offset of stage family k_j (1-based). */
  stageOffset(j: number): number {
    return this.fam.k + (j - 1) * this.nAll;
  }

  /** Element offset of ∂F/∂z_l after a MODE_GRAD stage (it uses k_1's slot). */
  gradOffset(l: number): number {
    return this.fam.k + this.layer[l]!;
  }

  elementwiseGroups(n: number): number {
    return elementwiseGroups(n);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Tables and handles (variants build theirs with these and keep what they get)

  /** The kernels this workspace compiled. */
  get kernels(): WorkspaceKernels {
    if (!this.compiled) throw new Error('workspace: not prepared');
    return this.compiled;
  }

  /** The training kernels (a training workspace's). */
  get trainKernels(): TrainKernels {
    const train = this.kernels.train;
    if (!train) throw new Error(`workspace: no training kernels in a workspace for ${this.purpose}`);
    return train;
  }

  private get train(): TrainDispatches {
    if (!this.trainDispatches) throw new Error(`workspace: no training tables in a workspace for ${this.purpose}`);
    return this.trainDispatches;
  }

  /** Uploads a storage table (freed with the workspace); `label` names it in GPU tools. */
  storageTable(label: string, data: ArrayBuffer): GPUBuffer {
    const buffer = this.runtime.device.createBuffer({
      size: Math.max(16, Math.ceil(data.byteLength / 16) * 16),
      usage: BufferUsage.STORAGE | BufferUsage.COPY_DST,
      label: `wpc.${label}`,
    });
    this.runtime.device.queue.writeBuffer(buffer, 0, data);
    this.ownBuffers.push(buffer);
    return buffer;
  }

  private uniformFrom(words: Uint32Array<ArrayBuffer>, label: string): GPUBuffer {
    const buffer = this.runtime.device.createBuffer({
      size: Math.max(16, words.byteLength),
      usage: UNIFORM_USAGE,
      label,
    });
    this.runtime.device.queue.writeBuffer(buffer, 0, words);
    this.ownBuffers.push(buffer);
    return buffer;
  }

  /** Uploads a job table (its dispatch size is `table.workgroups`). */
  jobTable(label: string, table: JobTable): GPUBuffer {
    return this.storageTable(`jobs.${label}`, table.data);
  }

  /** Uploads a segment table (its dispatch has one workgroup per segment). */
  segmentTable(label: string, segs: readonly SegmentSpec[]): SegmentTable {
    return { buffer: this.storageTable(`segments.${label}`, packSegments(segs)), workgroups: segs.length };
  }

  /** Rewrites a segment table in place (the same number of segments). */
  rewriteSegments(table: SegmentTable, segs: readonly SegmentSpec[]): void {
    this.runtime.device.queue.writeBuffer(table.buffer, 0, packSegments(segs));
  }

  /** A bind group of `kernel` over `resources`, with its dispatch size. */
  bind(
    kernel: CompiledKernel,
    resources: Readonly<Record<string, GPUBuffer | GPUBufferBinding>>,
    workgroups: number | readonly [number, number],
  ): Dispatch {
    return bind(this.runtime.device, kernel, resources, workgroups);
  }

  /** A reduction of `segs` from `src` into `dst`. */
  reduce(label: string, segs: readonly SegmentSpec[], src: GPUBuffer, dst: GPUBuffer): Dispatch {
    const table = this.segmentTable(label, segs);
    return this.bind(this.kernels.reduce, { segments: table.buffer, src, dst }, table.workgroups);
  }

  /**
   * An activity-gradient table over `jobs` (with the parameters it reads); `kernels` are the ones it runs with
   * (default this workspace's own; another network's activation needs its own).
   */
  actTable(
    label: string,
    jobs: readonly Job[],
    params: GPUBuffer,
    kernels: ActKernels = this.trainKernels.act,
  ): ActTable {
    const table = packJobs(jobs, this.tiles);
    return new ActTable(this.jobTable(label, table), params, kernels, table.workgroups, jobs);
  }

  /** Dispatches an activity-gradient table with stage record `index`. */
  recordActTable(rec: Recorder, table: ActTable, gated: boolean, index: number): void {
    table.record(rec, this.actBindings, gated, index);
  }

  /** A job table whose contents depend on the energy terms: rebuilt in place by `applyEnergy`. */
  private energyJobs(
    label: string,
    build: () => Job[],
  ): { entry: Extract<EnergyTable, { kind: 'jobs' }>; jobs: Job[]; workgroups: number } {
    const jobs = build();
    const table = packJobs(jobs, this.tiles);
    const entry = { kind: 'jobs' as const, buffer: this.jobTable(label, table), build };
    this.energyTables.push(entry);
    return { entry, jobs, workgroups: table.workgroups };
  }

  private energySegments(label: string, build: () => SegmentSpec[]): SegmentTable {
    const table = this.segmentTable(label, build());
    this.energyTables.push({ kind: 'segments', buffer: table.buffer, build });
    return table;
  }

  /** A Rows uniform (output.wgsl) over the batch's rows of a `cols`-wide region and a target of the same shape. */
  private rowsUniform(label: string, r: { cols: number; pred: number; target: number; part: number; ce: boolean }) {
    const data = packRows([
      { rows: this.batch, cols: r.cols, predOff: r.pred, targetOff: r.target, partOff: r.part, lossCe: r.ce },
    ]);
    return this.uniformFrom(new Uint32Array(data), `wpc.rows.${label}`);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Building (once)

  /** Whether this workspace's own activity-gradient tables can use the vec4-only kernel. */
  private actTablesTakeVec4(): boolean {
    return (
      epilogueColumns(this.tiles) % 4 === 0 &&
      this.stageFamiliesAligned &&
      (['y', 't'] as const).every((p) => epilogue4Ready(this.tables.activityGradJobs(p, this.energy.lambda)))
    );
  }

  private async prepare(): Promise<void> {
    const kernels = (this.compiled = await compileKernels(
      this.runtime,
      this.act,
      this.tiles,
      this.purpose,
      this.actTablesTakeVec4(),
      this.model.layers.some(convolutional),
    ));
    await this.runtime.scoped('workspace bind groups', () => {
      this.buildEvaluation(kernels);
      if (kernels.train) this.buildTraining(kernels, kernels.train);
    });
  }

  private buildEvaluation(kernels: WorkspaceKernels): void {
    const { model, tiles, tables } = this;
    const L = model.depth;
    const work = this.buffer;
    const params = model.params;
    for (let l = 1; l <= L; l++) {
      const table = packJobs(tables.forwardJobs(l), tiles);
      this.forwardLayers.push(
        this.bind(kernels.forward, { jobs: this.jobTable(`forward.${l}`, table), params, work }, table.workgroups),
      );
    }
    if (this.mode !== 'supervised') return;
    // The first layer's prediction alone, for activities handed in by the caller (y must stay theirs).
    const pred = packJobs(tables.predictionJobs(), tiles);
    this.pred1Dispatch = this.bind(
      kernels.forward,
      { jobs: this.jobTable('pred1', pred), params, work },
      pred.workgroups,
    );
    const lossOf = (loss: Loss): RowMetric =>
      this.rowMetric(`loss.${loss}`, {
        pred: this.fam.y + this.layer[L]!,
        target: this.target,
        cols: model.outputDim,
        ce: outputKind(loss).kernelFlag,
        out: this.scalar.loss,
      });
    this.loss = { mse: lossOf('mse'), ce: lossOf('ce') };
  }

  private buildTraining(kernels: WorkspaceKernels, k: TrainKernels): void {
    const built = buildTraining(
      {
        runtime: this.runtime,
        model: this.model,
        tables: this.tables,
        batch: this.batch,
        tiles: this.tiles,
        work: this.buffer,
        scalars: this.scalars,
        state: this.state,
        config: this.config,
        fam: this.fam,
        layer: this.layer,
        first: this.first,
        nAll: this.nAll,
        target: this.target,
        partCe: this.partCe,
        partRows: this.partRows,
        scalar: this.scalar,
        lambda: () => this.energy.lambda,
        jobTable: (label, table) => this.jobTable(label, table),
        storageTable: (label, data) => this.storageTable(label, data),
        segmentTable: (label, segs) => this.segmentTable(label, segs),
        rewriteSegments: (table, segs) => this.rewriteSegments(table, segs),
        bind: (kernel, resources, workgroups) => this.bind(kernel, resources, workgroups),
        reduce: (label, segs, src, dst) => this.reduce(label, segs, src, dst),
        rowsUniform: (label, r) => this.rowsUniform(label, r),
        energyJobs: (label, build) => this.energyJobs(label, build),
        energySegments: (label, build) => this.energySegments(label, build),
        own: (buffer) => this.ownBuffers.push(buffer),
      },
      kernels,
      k,
    );
    this.trainDispatches = built.dispatches;
    this.regularizerState = built.regularizer;
    this.recordingState = built.recording;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Energy terms

  /**
   * Makes the tables match `terms`: rewrites the λ-dependent job and segment tables, the activity decay of the
   * stage records and the regulariser records when they changed. Call at the start of a task, before recording
   * anything (the writes are queue-ordered before the task's submits, after every earlier task's).
   */
  applyEnergy(terms: EnergyTerms): void {
    const old = this.energy;
    this.energy = { ...terms };
    if (this.purpose !== 'train') return;
    if (old.lambda !== terms.lambda) {
      for (const table of this.energyTables) {
        if (table.kind === 'jobs') {
          const built = table.build();
          this.runtime.device.queue.writeBuffer(table.buffer, 0, packJobs(built, this.tiles).data);
          table.act?.update(built);
        } else {
          this.runtime.device.queue.writeBuffer(table.buffer, 0, packSegments(table.build()));
        }
      }
    }
    this.stageRecords.setDecay(terms.activityDecay);
  }

  get energyTerms(): Readonly<EnergyTerms> {
    return this.energy;
  }

  private get regularizer(): Regularizer {
    if (!this.regularizerState) throw new Error(`workspace: no regulariser in a workspace for ${this.purpose}`);
    return this.regularizerState;
  }

  /** Whether the current terms have regularisers whose kernels must be compiled first (`ensureRegularizer`). */
  get hasRegularizers(): boolean {
    return Regularizer.needed(this.energy);
  }

  /** Compiles the regulariser kernels if the current terms need them. */
  async ensureRegularizer(): Promise<void> {
    if (this.hasRegularizers) await this.regularizer.ensureKernels();
  }

  /** Adds the weight regularisers' gradients (wd·W, 2·sp·W(WᵀW − I)) to the parameter gradients. */
  recordRegularizerGrads(rec: Recorder): void {
    if (this.energy.weightDecay === 0 && this.energy.spectralPenalty === 0) return;
    this.regularizer.recordGrads(rec, this.energy);
  }

  /** Adds the regularisers' energies (at the activities in y) to the total in the scalars. */
  recordRegularizerEnergies(rec: Recorder): void {
    if (!this.hasRegularizers) return;
    this.regularizer.recordEnergies(rec, this.energy);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Recording

  /**
   * Feedforward pass from x (or, unsupervised, from z_0): writes y (= z_1..z_L), φ(y) and pred1. L dispatches
   * (layers depend on each other).
   */
  recordForward(rec: Recorder): void {
    for (let l = 1; l <= this.model.depth; l++) this.recordForwardLayer(rec, l);
  }

  /** Layer l of the feedforward pass alone. */
  recordForwardLayer(rec: Recorder, l: number): void {
    record(rec, this.forwardLayers[l - 1]!);
  }

  /** The first layer's prediction pred1 = s_1·f_1(x) alone (the input is clamped during inference). */
  recordFirstPrediction(rec: Recorder): void {
    if (this.pred1Dispatch) record(rec, this.pred1Dispatch);
  }

  /** Prediction errors of every layer at `point` (and their energy partials). */
  recordErrors(rec: Recorder, point: EvalPoint, loss: Loss, gated: boolean): void {
    const form = gated ? 'gated' : 'plain';
    record(rec, this.train.errors[point][loss][form]);
    const finish = outputKind(loss).finish;
    if (finish) record(rec, this.train.finish[finish][form]);
  }

  /** Activity gradients at `point`, fused with what stage record `index` says. */
  recordActivityGrad(rec: Recorder, point: EvalPoint, gated: boolean, index: number): void {
    this.recordActTable(rec, this.train.act[point], gated, index);
  }

  recordParamGrads(rec: Recorder): void {
    record(rec, this.train.paramGrad);
  }

  /**
   * Layer energies (JPC order) and their total into the scalars, the regularisers included in the total; needs
   * `recordErrors(…, 'y', loss, false)` first.
   */
  recordEnergies(rec: Recorder, loss: Loss): void {
    record(rec, this.train.energies[loss]);
    this.recordRegularizerEnergies(rec);
  }

  /** JPC's mse_loss / cross_entropy_loss and compute_accuracy of the prediction z_L against the target. */
  recordLoss(rec: Recorder, loss: Loss): void {
    if (!this.loss) throw new Error('workspace: no loss in an unsupervised workspace');
    this.recordRowMetric(rec, this.loss[loss]);
  }

  /**
   * A row metric of any [B, cols] region against another: JPC's mse_loss (or cross_entropy_loss with `ce`) times
   * `lossScale`·B (1 gives JPC's mean over rows) into scalars[out], and compute_accuracy into scalars[out + 1].
   */
  rowMetric(
    label: string,
    m: { pred: number; target: number; cols: number; ce?: boolean; lossScale?: number; out: number },
  ): RowMetric {
    const B = this.batch;
    const rows = this.rowsUniform(label, { ...m, part: this.partRows, ce: m.ce === true });
    return {
      rows: this.bind(this.kernels.lossRows, { rows, work: this.buffer }, this.elementwiseGroups(B)),
      reduce: this.reduce(
        `metric.${label}`,
        [
          { off: this.partRows, count: B, stride: 4, out: m.out, scale: (m.lossScale ?? 1) / B },
          { off: this.partRows + 1, count: B, stride: 4, out: m.out + 1, scale: 100 / B },
        ],
        this.buffer,
        this.scalars,
      ),
    };
  }

  recordRowMetric(rec: Recorder, metric: RowMetric): void {
    record(rec, metric.rows);
    record(rec, metric.reduce);
  }

  /** mean_b ‖z_{l,b}‖ of every activity (JPC's compute_activity_norms) into the scalars. */
  recordActivityNorms(rec: Recorder): void {
    record(rec, this.train.rowNorms);
    record(rec, this.train.activityNorms);
  }

  /** ‖W_l‖ and ‖b_l‖ (JPC's compute_param_norms) of the parameters, or of their last gradients. */
  recordParamNorms(rec: Recorder, of: 'params' | 'grads'): void {
    record(rec, of === 'params' ? this.train.paramNorms : this.train.gradNorms);
  }

  recordSolver(rec: Recorder, entry: 'step_control' | 'hairer_h0' | 'hairer_dt0'): void {
    record(rec, this.train.solver[entry]);
  }

  /** Elementwise solver kernels over the whole state (accept, hairer_probe, activate) or in chunks (scaled_square). */
  recordElementwise(rec: Recorder, entry: 'accept' | 'hairer_probe' | 'activate' | 'scaled_square'): void {
    const n = entry === 'scaled_square' ? this.partD0.count : this.nAll;
    if (n === 0) return;
    record(rec, this.train.solver[entry], undefined, this.elementwiseGroups(n));
  }

  /** out = a·u + b·v for each op, in one dispatch (the ops must not depend on each other). Built once; keep it. */
  combine(label: string, ops: readonly CombineOp[]): Dispatch {
    const table = this.storageTable(`combine.${label}`, packCombineOps(ops));
    const most = Math.max(...ops.map((o) => o.n));
    return this.bind(this.trainKernels.combine, { ops: table, work: this.buffer }, [
      Math.min(1024, this.elementwiseGroups(most)),
      ops.length,
    ]);
  }

  private get recording(): Recording {
    if (!this.recordingState) throw new Error(`workspace: no recording in a workspace for ${this.purpose}`);
    return this.recordingState;
  }

  /**
   * Makes sure the recording buffers hold `capacity` states (energies, and the activities when `trajectory`),
   * resets their counter, and writes the recording uniforms (see record.wgsl). Returns the buffers.
   */
  prepareRecording(rec: Recorder, capacity: number, trajectory: boolean): RecordingBuffers {
    return this.recording.prepare(rec, capacity, trajectory);
  }

  /** Records the state whose ERRORS partials are in place (for `loss`) if `when` says so. */
  recordState(rec: Recorder, loss: Loss, when: number, trajectory: boolean): void {
    this.recording.record(rec, loss, when, trajectory);
  }

  get recordings(): RecordingBuffers | undefined {
    return this.recordingState?.current;
  }

  /**
   * Records a whole fixed-step Runge–Kutta solve as one single-workgroup dispatch (fused-solve.wgsl): `a` and
   * `b` of the stages evaluated, the step sizes. The coefficients upload only when `key` changes. Only where
   * `plain` holds.
   */
  async recordFusedSolve(
    rec: Recorder,
    a: readonly (readonly number[])[],
    b: readonly number[],
    sizes: readonly number[],
    loss: Loss,
    key: string,
  ): Promise<void> {
    if (!this.plain) throw new Error('workspace: the fused solve only handles the plain supervised energy');
    this.fused ??= FusedSolve.create({
      runtime: this.runtime,
      model: this.model,
      act: this.act,
      batch: this.batch,
      work: this.buffer,
      fam: this.fam,
      layer: this.layer,
      nAll: this.nAll,
      nHidden: this.nHidden,
      pred1: this.pred1,
      target: this.target,
      storageTable: (label, data) => this.storageTable(label, data),
    });
    (await this.fused).record(rec, a, b, sizes, loss, key);
  }

  /** Writes the solver config uniform (queue-ordered: do it before recording the commands that use it). */
  writeConfig(words: ArrayBuffer): void {
    this.runtime.device.queue.writeBuffer(this.config, 0, words);
  }

  /** Writes the constant-step grid (ends of steps 1..N) into the workspace. */
  writeGrid(ends: readonly number[]): void {
    if (ends.length > this.gridSteps) throw new Error('workspace: grid larger than allocated');
    this.runtime.device.queue.writeBuffer(this.buffer, this.grid * 4, Float32Array.from(ends));
  }

  /**
   * Writes a solver's stage records at indices 1..n (index 0 always holds the plain-gradient record); skipped
   * when `key` names the records already there (`build` is then not called).
   */
  writeStageRecords(key: string, build: () => readonly StageRecord[]): void {
    this.stageRecords.write(key, build, this.energy.activityDecay);
  }

  dispose(): void {
    for (const b of this.ownBuffers) b.destroy();
    this.stageRecords.dispose();
    this.recordingState?.dispose();
    this.regularizerState?.dispose();
    void this.fused?.then(
      (f) => f.dispose(),
      () => undefined,
    );
  }
}
