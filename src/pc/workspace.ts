/**
 * A workspace holds everything one model needs on the GPU for batches of one size: a single storage buffer
 * with every activity-shaped array (activities z, φ(z), solver stages, prediction errors, partial sums), a small
 * buffer of scalar results, the job tables of the grouped layer kernels, the solver state, and bind groups built
 * once and reused by every step of every batch. Batches are written into it; nothing is allocated per step.
 *
 * Layout. The activities of the ODE state are stored back to back: z_1..z_L in supervised PC (the input x is
 * clamped; z_L, the output layer's, is a dummy the energy never reads), z_0..z_L in unsupervised PC (z_0 free).
 * z_l takes B·d_l elements at `layer(l)`, and every *family* below repeats that layout from its own base, so
 * layer l of family F is at F + layer(l) and elementwise work over the whole state is one flat range:
 *
 *   y    activities                          py   φ(y)
 *   t    a Runge–Kutta stage's evaluation point (the probe) or the candidate y1 (*)   pt   φ(t)
 *   k_j  stage j of a Runge–Kutta step (one family per stage); k_1 also holds ∂F/∂z for discrete updates and
 *        the optimiser state of discrete inference (k_1, k_2)
 *   e    prediction errors e_l (e_L: y − pred, or ce's y − softmax·Σy)
 *   aux  extra families some variants ask for (bidirectional PC's second errors, ePC's back-propagated signal)
 *
 * (*) The last stage reads its evaluation point t and writes the candidate over it: each element is read and
 * written by the same invocation. Besides: x (input), pred1 (the first layer's prediction, fixed during inference
 * because x is clamped), target, the constant-step grid, and partial-sum regions.
 *
 * Every activity of the state has an activity-gradient job (z_0's and the dummy's have no error of their own),
 * so activity decay moves them all, as in JPC, and solver partial sums cover the whole state.
 */
import {
  type Activation,
  type TileConfig,
  JobFlag,
  RECORD_ENTRIES,
  ReduceFlag,
  SMALL_WG,
  SCALED_SQUARE_CHUNK,
  SOLVER_ENTRIES,
  StageMode,
  accumulateKernel,
  activityGradKernel,
  combineKernel,
  defaultTiles,
  epilogueColumns,
  fusedSolveKernel,
  forwardKernel,
  outputKernel,
  paramGradKernel,
  recordKernel,
  reduceKernel,
  regularizeKernel,
  rowTable,
  solverKernel,
  type RecordEntry,
  type RegularizeEntry,
} from '../kernels/index.js';
import {
  type CombineOp,
  type Job,
  type SegmentSpec,
  type StageRecord,
  CONFIG_WORDS,
  FUSED_WORDS,
  REG_WORDS,
  type RegRecord,
  STAGE_BYTES,
  STATE_WORDS,
  UNIFORM_STRIDE,
  packCombineOps,
  packFused,
  packFusedLayers,
  packRecordings,
  packRegs,
  packRows,
  packSegments,
  packStages,
} from '../kernels/structs.js';
import { BufferUsage, UNIFORM_USAGE } from '../runtime/flags.js';
import { bufferLimit, checkFits, storageLimit } from '../runtime/limits.js';
import { type CompiledKernel, createBindGroup } from '../runtime/kernel.js';
import type { Recorder } from '../runtime/recorder.js';
import { type Runtime, SleepEstimator } from '../runtime/runtime.js';
import {
  type JobTable,
  epilogue4Ready,
  errorJob,
  forwardJob,
  gradJob,
  packJobs,
  paramJob,
  tilesOf,
  vec4Shaped,
} from './layer-jobs.js';
import { type Model, formatDims } from './model.js';

export type Loss = 'mse' | 'ce';
export type EvalPoint = 'y' | 't';
/** `eval` workspaces only hold what a feedforward pass and its loss need (test batches can be large). */
export type Purpose = 'train' | 'eval';
/** Supervised PC clamps the input x; unsupervised PC has a free activity z_0 in its place. */
export type Mode = 'supervised' | 'unsupervised';

/** What a solve or a variant needs beyond the defaults. */
export interface WorkspaceNeeds {
  /** Runge–Kutta stage families. */
  stages: number;
  /** Constant-step grid points. */
  gridSteps: number;
  /** Extra activity-shaped families (aux). Default 0. */
  aux?: number;
  /** Extra floats of scratch, for a second network's partial sums. Default 0. */
  extra?: number;
}

/**
 * The terms of JPC's `pc_energy_fn` beyond the layer energies, set per call: the output energy's weight λ
 * (`output_energy_scaling`), and the regularisers (activity decay acts on the activities; weight decay and the
 * spectral penalty act on the weights only).
 */
export interface EnergyTerms {
  lambda: number;
  activityDecay: number;
  weightDecay: number;
  spectralPenalty: number;
}

export const PLAIN_ENERGY: Readonly<EnergyTerms> = Object.freeze({
  lambda: 1,
  activityDecay: 0,
  weightDecay: 0,
  spectralPenalty: 0,
});

const ALIGN = 64; // elements: region starts on 256-byte boundaries

interface Families {
  y: number;
  py: number;
  t: number;
  pt: number;
  k: number;
  e: number;
}

/** A partial-sum region: `count` tiles of 4 floats from `off`. */
export interface Partials {
  off: number;
  count: number;
}

/** Record 0 of every stage buffer: the plain activity gradient (computePcActivityGrad, discrete updates). */
const GRAD_RECORD: StageRecord = {
  mode: StageMode.GRAD,
  index: 1,
  coef: [],
  ecoef: [],
  dt: 0,
  rtol: 0,
  atol: 0,
  candidate: 'probe',
};

/** The register tile a runtime's layer kernels use. */
export function tilesFor(rt: Runtime, use: 'layers' | 'gemm' = 'layers'): TileConfig {
  return rt.kernels.tiles ?? defaultTiles(rt.adapter, use);
}

/** Where everything of a workspace lives: element offsets in its one buffer (see the file comment). */
export interface WorkspaceLayout {
  first: 0 | 1;
  layer: number[];
  nAll: number;
  nHidden: number;
  stages: number;
  gridSteps: number;
  errorTiles: number[];
  gradPart: number[];
  fam: Families;
  aux: number[];
  x: number;
  pred1: number;
  target: number;
  grid: number;
  partE: number;
  partCe: number;
  partA: Partials;
  partB: Partials;
  partD0: Partials;
  partRows: number;
  extra: { off: number; size: number };
  /** Floats of the whole buffer. */
  floats: number;
}

/**
 * The layout of a workspace for activity widths `dims` and batches of `batch` rows, computed from the sizes
 * alone (nothing allocated): the constructor uses it, and size checks call it before anything is allocated.
 */
export function workspaceLayout(
  dims: readonly number[],
  batch: number,
  purpose: Purpose,
  mode: Mode,
  needs: WorkspaceNeeds,
  tiles: TileConfig,
): WorkspaceLayout {
  const first = mode === 'unsupervised' ? 0 : 1;
  const L = dims.length - 1;
  const B = batch;
  const layer = Array<number>(L + 1).fill(0);
  let n = 0;
  for (let l = first; l <= L; l++) {
    layer[l] = n;
    n += B * dims[l]!;
  }
  const nAll = n;
  const train = purpose === 'train';
  const stages = train ? Math.max(2, needs.stages) : 0;
  const gridSteps = train ? Math.max(1, needs.gridSteps) : 0;
  const errorTiles: number[] = [];
  for (let l = 1; l <= L; l++) errorTiles.push(tilesOf(B, dims[l]!, tiles));
  const gradPart = Array<number>(L + 1).fill(0);
  let gradTiles = 0;
  for (let l = first; l <= L; l++) {
    gradPart[l] = 4 * gradTiles;
    gradTiles += tilesOf(B, dims[l]!, tiles);
  }

  let at = 0;
  const take = (size: number, needed = true): number => {
    if (!needed) return 0;
    const start = at;
    at += Math.ceil(Math.max(size, 1) / ALIGN) * ALIGN;
    return start;
  };
  const fam = {
    y: take(n),
    py: take(n),
    t: take(n, train),
    pt: take(n, train),
    e: take(n, train),
    k: take(n * stages, train),
  };
  const aux = Array.from({ length: train ? (needs.aux ?? 0) : 0 }, () => take(n));
  const x = take(B * dims[0]!);
  const pred1 = take(B * dims[1]!, mode === 'supervised');
  const target = take(B * dims[L]!);
  const grid = take(gridSteps, train);
  const partE = take(4 * errorTiles.reduce((a, b) => a + b, 0), train);
  const partCe = take(4 * B, train);
  const partA = { off: take(4 * gradTiles, train), count: gradTiles };
  const partB = { off: take(4 * gradTiles, train), count: gradTiles };
  const partD0 = {
    off: take(4 * Math.ceil(n / SCALED_SQUARE_CHUNK), train),
    count: Math.ceil(n / SCALED_SQUARE_CHUNK),
  };
  const partRows = take(4 * B * (L + 1));
  const extraSize = train ? (needs.extra ?? 0) : 0;
  const extra = { off: take(extraSize, extraSize > 0), size: extraSize };
  return {
    first,
    layer,
    nAll,
    nHidden: layer[L]!,
    stages,
    gridSteps,
    errorTiles,
    gradPart,
    fam,
    aux,
    x,
    pred1,
    target,
    grid,
    partE,
    partCe,
    partA,
    partB,
    partD0,
    partRows,
    extra,
    floats: at,
  };
}

/**
 * Refuses, before anything is allocated, a workspace the device cannot hold in its one storage buffer: `subject`
 * names the argument that sets the batch and its value (e.g. "makePcStep: output (100000 rows)"); the message
 * says how many rows would fit.
 */
export function checkWorkspaceFits(
  subject: string,
  rt: Runtime,
  dims: readonly number[],
  batch: number,
  purpose: Purpose,
  mode: Mode,
  needs: WorkspaceNeeds,
): void {
  const tiles = tilesFor(rt);
  const limit = storageLimit(rt.limits);
  const floats = workspaceLayout(dims, batch, purpose, mode, needs, tiles).floats;
  if (floats * 4 <= limit.bytes) return;
  const most = maxWorkspaceRows(rt, dims, purpose, mode, needs);
  const what = `the ${purpose === 'eval' ? 'evaluation' : 'working'} memory of a model ${formatDims(dims)} at ${batch} rows`;
  checkFits(
    subject,
    what,
    floats * 4,
    limit,
    most > 0 ? `at most ${most} rows fit` : 'no batch fits: use a smaller network',
  );
}

/** The largest batch whose workspace fits one storage binding of `rt`'s device (0 if none does). */
export function maxWorkspaceRows(
  rt: Runtime,
  dims: readonly number[],
  purpose: Purpose,
  mode: Mode,
  needs: WorkspaceNeeds = { stages: 2, gridSteps: 1 },
): number {
  const tiles = tilesFor(rt);
  const limitFloats = storageLimit(rt.limits).bytes / 4;
  const fits = (B: number) => workspaceLayout(dims, B, purpose, mode, needs, tiles).floats <= limitFloats;
  if (!fits(1)) return 0;
  let lo = 1;
  let hi = 2;
  while (fits(hi)) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
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
  /** The stage records' offsets (the families y, φ(y), t, φ(t), k_j and their stride) are ≡ 0 mod 4: vec_ok's record part. */
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
  readonly scalar: {
    /** Layer energies (room for bidirectional PC's 2L pairs). */
    energies: number;
    total: number;
    loss: number;
    accuracy: number;
    /** One per activity (L + 1 in unsupervised mode). */
    activityNorms: number;
    paramNorms: number;
    gradNorms: number;
    /** Regulariser energies: weight decay per layer, then the spectral penalty, then activity decay. */
    regs: number;
    /** Free slots for variants (e.g. hybrid PC's losses). */
    misc: number;
    size: number;
  };
  readonly buffer: GPUBuffer;
  /** Small results (energies, losses, norms) written by reductions; copied out to tensors. */
  readonly scalars: GPUBuffer;
  readonly state: GPUBuffer;
  private readonly config: GPUBuffer;
  private stageBuffer: GPUBuffer;
  private stageCapacity = 0;
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
  private readonly kernels = new Map<string, CompiledKernel>();
  private readonly groups = new Map<string, GPUBindGroup>();
  private readonly workgroups = new Map<string, number>();
  private readonly ownBuffers: GPUBuffer[] = [];
  /** Job tables that depend on the energy terms (λ), rebuilt in place when they change. */
  private readonly energyTables = new Map<
    string,
    { buffer: GPUBuffer; build: () => Job[] | SegmentSpec[]; kind: 'jobs' | 'segments' }
  >();
  /**
   * Activity-gradient tables by key: bind groups rebuilt when the stage buffer grows, and whether every job takes
   * the vec4 epilogue (then dispatches with a 4-aligned Runge–Kutta stage record use the 'act.vec4' kernel).
   */
  private readonly actGroups = new Map<string, { jobs: GPUBuffer; params: GPUBuffer; vec4: boolean; kernel: string }>();
  private readonly segmentTables = new Map<string, GPUBuffer>();
  private stageGroupsFor: GPUBuffer | undefined;
  private recordBuffers: { records: GPUBuffer; traj: GPUBuffer; capacity: number; trajN: number } | undefined;
  private readonly recordingUniform: GPUBuffer;
  /** The stage records last uploaded (index 0 = the gradient record) and the activity decay written into them. */
  private records: readonly StageRecord[] = [GRAD_RECORD];
  private recordsDecay = 0;
  /** What the last adaptive solve on this workspace took, to size the first chunk and the host's sleep. */
  readonly pidHistory = { lastSteps: 0, sleep: new SleepEstimator() };
  /** How long timed solves take (makePcStep's timeInference), to sleep instead of busy-waiting. */
  readonly solveClock = new SleepEstimator();
  /** The stage records last written (a solve with the same ones skips the upload). */
  stageRecordsKey = '';
  /** The energy terms the tables are built for. */
  private energy: EnergyTerms = { ...PLAIN_ENERGY };
  private regState: { key: string; uniform: GPUBuffer; scratch: GPUBuffer; scratchSize: number } | undefined;

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
    const L = model.depth;
    const B = batch;
    const plan = workspaceLayout(model.dims, B, purpose, mode, needs, this.tiles);
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
    const at = plan.floats;
    const s = { energies: 0, total: 2 * L + 2 };
    const loss = s.total + 1;
    const activityNorms = loss + 2;
    const paramNorms = activityNorms + L + 1;
    const gradNorms = paramNorms + 2 * L;
    const regs = gradNorms + 2 * L;
    const misc = regs + L + 2;
    this.scalar = { ...s, loss, accuracy: loss + 1, activityNorms, paramNorms, gradNorms, regs, misc, size: misc + 8 };

    this.buffer = rt.createStorageBuffer(at * 4, `wpc.workspace[B=${B}]`);
    this.scalars = rt.createStorageBuffer(this.scalar.size * 4, 'wpc.scalars');
    this.state = rt.createStorageBuffer(STATE_WORDS * 4, 'wpc.solver-state');
    this.config = rt.device.createBuffer({ size: CONFIG_WORDS * 4, usage: UNIFORM_USAGE, label: 'wpc.solver-config' });
    this.recordingUniform = rt.device.createBuffer({
      size: 4 * UNIFORM_STRIDE,
      usage: UNIFORM_USAGE,
      label: 'wpc.recording',
    });
    this.stageBuffer = this.makeStageBuffer(1);
    this.uploadRecords([GRAD_RECORD]);
    this.ownBuffers.push(this.buffer, this.scalars, this.state, this.config, this.recordingUniform);
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
    const trainKey = `${batch}:train:${mode}`;
    const key = purpose === 'eval' && model.workspaces.has(trainKey) ? trainKey : `${batch}:${purpose}:${mode}`;
    const cached = model.workspaces.get(key);
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
      model.workspaces.set(key, ws);
      ws.catch(() => {
        if (model.workspaces.get(key) === ws) model.workspaces.delete(key);
      });
      return ws;
    };
    if (!cached) {
      // Keep at most a few workspaces per model (e.g. the training batch, a test batch, a last partial batch).
      if (model.workspaces.size >= 4) {
        const oldest = model.workspaces.keys().next().value!;
        const old = model.workspaces.get(oldest)!;
        model.workspaces.delete(oldest);
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

  private makeStageBuffer(records: number): GPUBuffer {
    const buffer = this.runtime.device.createBuffer({
      size: records * UNIFORM_STRIDE,
      usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST,
      label: 'wpc.stage-records',
    });
    this.stageCapacity = records;
    return buffer;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Where things are

  private zFam(point: EvalPoint): number {
    return point === 'y' ? this.fam.y : this.fam.t;
  }

  private pzFam(point: EvalPoint): number {
    return point === 'y' ? this.fam.py : this.fam.pt;
  }

  /** The A operand of layer l's prediction at `point`: φ(z_{l−1}), or the raw x / z_0 for the first layer. */
  layerInput(l: number, point: EvalPoint): number {
    if (l > 1) return this.pzFam(point) + this.layer[l - 1]!;
    return this.mode === 'supervised' ? this.x : this.zFam(point) + this.layer[0]!;
  }

  /** Where a layer's identity residual reads z_{l−1} at `point`, if it has one. */
  private residual(l: number, point: EvalPoint): number | undefined {
    return this.model.layers[l - 1]!.skip ? this.zFam(point) + this.layer[l - 1]! : undefined;
  }

  /** λ for the output layer, 1 for the others. */
  layerWeight(l: number): number {
    return l === this.model.depth ? this.energy.lambda : 1;
  }

  /** Whether the energy is JPC's plain one (no λ, decay or skips, input clamped): the fused solve's case. */
  get plain(): boolean {
    return (
      this.mode === 'supervised' && !this.model.hasSkips && this.energy.lambda === 1 && this.energy.activityDecay === 0
    );
  }

  // ---------------------------------------------------------------------------------------------------------
  // Job tables

  private forwardJobOf(l: number): Job {
    const { model, batch: B, fam } = this;
    const L = model.depth;
    return forwardJob({
      layer: model.layers[l - 1]!,
      rows: B,
      input: this.layerInput(l, 'y'),
      output: fam.y + this.layer[l]!,
      ...(l < L ? { phi: fam.py + this.layer[l]! } : {}),
      ...(l === 1 && this.mode === 'supervised' ? { prediction: this.pred1 } : {}),
      ...(this.residual(l, 'y') !== undefined ? { residualFrom: this.residual(l, 'y')! } : {}),
    });
  }

  private errorJobs(point: EvalPoint, loss: Loss): Job[] {
    const { model, batch: B, fam } = this;
    const L = model.depth;
    const z = this.zFam(point);
    const jobs: Job[] = [];
    let part = this.partE;
    for (let l = 1; l <= L; l++) {
      const output = l === L;
      const residual = this.residual(l, point);
      jobs.push(
        errorJob({
          layer: model.layers[l - 1]!,
          rows: B,
          input: this.layerInput(l, point),
          ...(l === 1 && this.mode === 'supervised' ? { fixedPrediction: this.pred1 } : {}),
          target: output ? this.target : z + this.layer[l]!,
          error: fam.e + this.layer[l]!,
          part,
          output,
          logits: output && loss === 'ce',
          ...(residual !== undefined ? { residualFrom: residual } : {}),
        }),
      );
      part += 4 * this.errorTiles[l - 1]!;
    }
    return jobs;
  }

  /** One job per activity of the state: ∂F/∂z_l from e_l and e_{l+1} (see activity-grad.wgsl). */
  private activityGradJobs(point: EvalPoint): Job[] {
    const { model, batch: B, fam } = this;
    const L = model.depth;
    const z = this.zFam(point);
    const part = (point === 'y' ? this.partA : this.partB).off;
    const jobs: Job[] = [];
    for (let l = this.first; l <= L; l++) {
      const job = gradJob({
        rows: B,
        width: model.dims[l]!,
        z: z + this.layer[l]!,
        family: this.layer[l]!,
        grad: fam.k + this.layer[l]!,
        part: part + this.gradPart[l]!,
        ...(l >= 1 && l < L ? { own: fam.e + this.layer[l]! } : {}),
        ...(l < L
          ? { next: { layer: model.layers[l]!, error: fam.e + this.layer[l + 1]!, weight: this.layerWeight(l + 1) } }
          : {}),
        identity: l === 0,
        scale: 1 / B,
      });
      // The output's job (no product) in a shape the vec4 epilogue takes.
      jobs.push(vec4Shaped(job, this.tiles));
    }
    return jobs;
  }

  private paramGradJobs(): Job[] {
    const { model, batch: B, fam } = this;
    return model.layers.map((spec, i) =>
      paramJob({
        layer: spec,
        rows: B,
        error: fam.e + this.layer[i + 1]!,
        input: this.layerInput(i + 1, 'y'),
        coef: (-spec.scale * this.layerWeight(i + 1)) / B,
      }),
    );
  }

  // ---------------------------------------------------------------------------------------------------------
  // Segment tables for reductions and recordings

  /** Start of layer l's error partials (l = 1..L). */
  errorPart(l: number): number {
    let start = this.partE;
    for (let j = 1; j < l; j++) start += 4 * this.errorTiles[j - 1]!;
    return start;
  }

  private layerEnergySegments(loss: Loss): SegmentSpec[] {
    const L = this.model.depth;
    const B = this.batch;
    const lambda = this.energy.lambda;
    // JPC's record_layers order: [E_L, E_2, …, E_{L−1}, E_1].
    const order = L === 1 ? [1] : [L, ...Array.from({ length: L - 2 }, (_, i) => i + 2), 1];
    return order.map((l, position) =>
      l === L && loss === 'ce'
        ? { off: this.partCe, count: B, stride: 4, out: position, scale: lambda / B }
        : {
            off: this.errorPart(l),
            count: this.errorTiles[l - 1]!,
            stride: 4,
            out: position,
            scale: (0.5 * this.layerWeight(l)) / B,
          },
    );
  }

  private totalEnergySegment(loss: Loss): SegmentSpec {
    const B = this.batch;
    const L = this.model.depth;
    const lambda = this.energy.lambda;
    const hiddenTiles = this.errorTiles.slice(0, L - 1).reduce((a, b) => a + b, 0);
    return loss === 'ce'
      ? {
          off: this.partE,
          count: hiddenTiles,
          stride: 4,
          out: this.scalar.total,
          scale: 0.5 / B,
          off2: this.partCe,
          count2: B,
          scale2: lambda / B,
        }
      : {
          off: this.partE,
          count: hiddenTiles,
          stride: 4,
          out: this.scalar.total,
          scale: 0.5 / B,
          off2: this.errorPart(L),
          count2: this.errorTiles[L - 1]!,
          scale2: (0.5 * lambda) / B,
        };
  }

  private segmentData(segs: readonly SegmentSpec[]): ArrayBuffer {
    return packSegments(segs);
  }

  /** Uploads a segment table under `key` (its dispatch has one workgroup per segment). */
  segmentTable(key: string, segs: readonly SegmentSpec[]): GPUBuffer {
    const buffer = this.storageFrom(this.segmentData(segs), `wpc.segments.${key}`);
    this.segmentTables.set(key, buffer);
    this.workgroups.set(`segments.${key}`, segs.length);
    return buffer;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Kernels and bind groups (built once)

  private storageFrom(data: ArrayBuffer, label: string): GPUBuffer {
    const buffer = this.runtime.device.createBuffer({
      size: Math.max(16, Math.ceil(data.byteLength / 16) * 16),
      usage: BufferUsage.STORAGE | BufferUsage.COPY_DST,
      label,
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

  /** Uploads a variant's storage table (e.g. elementwise ops); freed with the workspace. */
  storageTable(label: string, data: ArrayBuffer): GPUBuffer {
    return this.storageFrom(data, `wpc.${label}`);
  }

  /** Uploads a job table under `key` (its dispatch size is remembered). */
  addTable(key: string, table: JobTable): GPUBuffer {
    this.workgroups.set(key, table.workgroups);
    return this.storageFrom(table.data, `wpc.jobs.${key}`);
  }

  /** A job table whose contents depend on the energy terms: rebuilt in place by `applyEnergy`. */
  private energyTable(key: string, build: () => Job[]): { buffer: GPUBuffer; jobs: Job[] } {
    const jobs = build();
    const buffer = this.addTable(key, packJobs(jobs, this.tiles));
    this.energyTables.set(key, { buffer, build, kind: 'jobs' });
    return { buffer, jobs };
  }

  private energySegments(key: string, build: () => SegmentSpec[]): GPUBuffer {
    const buffer = this.segmentTable(key, build());
    this.energyTables.set(key, { buffer, build, kind: 'segments' });
    return buffer;
  }

  private rowsUniform(rows: number, cols: number, predOff: number, partOff: number, ce: number): GPUBuffer {
    const data = packRows([{ rows, cols, predOff, targetOff: this.target, partOff, lossCe: ce !== 0 }]);
    return this.uniformFrom(new Uint32Array(data), 'wpc.rows');
  }

  reduceGroup(key: string, segs: readonly SegmentSpec[], src: GPUBuffer, dst: GPUBuffer): void {
    const segments = this.segmentTable(key, segs);
    this.groups.set(`reduce.${key}`, createBindGroup(this.runtime.device, this.k('reduce'), { segments, src, dst }));
  }

  private async prepare(): Promise<void> {
    const rt = this.runtime;
    const { act, tiles, model } = this;
    const L = model.depth;
    const train = this.purpose === 'train';
    const supervised = this.mode === 'supervised';
    const specs: Record<string, Parameters<Runtime['kernel']>[0]> = {
      forward: forwardKernel(act, tiles, 'forward', false),
      lossRows: outputKernel('loss_rows', false),
      reduce: reduceKernel(rt.adapter.subgroupSize),
    };
    if (train) {
      specs.errors = forwardKernel(act, tiles, 'errors', false);
      specs['errors.gated'] = forwardKernel(act, tiles, 'errors', true);
      specs.ce = outputKernel('ce_errors', false);
      specs['ce.gated'] = outputKernel('ce_errors', true);
      specs.rowNorms = outputKernel('row_norms', false);
      specs.paramGrad = paramGradKernel(tiles);
      specs.act = activityGradKernel(act, tiles, false);
      specs['act.gated'] = activityGradKernel(act, tiles, true);
      // The variant with only the vec4 epilogue, where this workspace's own tables can use it (the general one
      // stays: Hairer's initial step, discrete inference and other networks' tables may need it). Adapters that
      // compile at pipeline creation would otherwise compile a kernel no dispatch uses.
      if (this.actTablesTakeVec4()) {
        specs['act.vec4'] = activityGradKernel(act, tiles, false, 'vec4');
        specs['act.vec4.gated'] = activityGradKernel(act, tiles, true, 'vec4');
      }
      specs.accumulate = accumulateKernel(rt.adapter.subgroupSize);
      specs.combine = combineKernel();
      for (const entry of SOLVER_ENTRIES) specs[`solver.${entry}`] = solverKernel(entry, act, rt.adapter.subgroupSize);
      for (const entry of RECORD_ENTRIES) specs[`record.${entry}`] = recordKernel(entry, rt.adapter.subgroupSize);
    }
    const compiled = await Promise.all(
      Object.entries(specs).map(async ([k, spec]) => [k, await rt.kernel(spec)] as const),
    );
    for (const [k, kernel] of compiled) this.kernels.set(k, kernel);

    await rt.scoped('workspace bind groups', () => {
      const device = rt.device;
      const work = this.buffer;
      const params = model.params;
      const B = this.batch;
      for (let l = 1; l <= L; l++) {
        const jobs = this.addTable(`forward.${l}`, packJobs([this.forwardJobOf(l)], tiles));
        this.groups.set(`forward.${l}`, createBindGroup(device, this.k('forward'), { jobs, params, work }));
      }
      if (supervised) {
        // The first layer's prediction alone, for activities handed in by the caller (y must stay theirs).
        const first = this.forwardJobOf(1);
        const predJobs = this.addTable(
          'pred1',
          packJobs([{ ...first, cOff: this.pred1, flags: (first.flags ?? 0) & JobFlag.BIAS }], tiles),
        );
        this.groups.set('pred1', createBindGroup(device, this.k('forward'), { jobs: predJobs, params, work }));
        const outputY = this.fam.y + this.layer[L]!;
        for (const loss of ['mse', 'ce'] as const) {
          const rows = this.rowsUniform(B, model.outputDim, outputY, this.partRows, loss === 'ce' ? 1 : 0);
          this.groups.set(`lossRows.${loss}`, createBindGroup(device, this.k('lossRows'), { rows, work }));
        }
        this.reduceGroup(
          'loss',
          [
            { off: this.partRows, count: B, stride: 4, out: this.scalar.loss, scale: 1 / B },
            { off: this.partRows + 1, count: B, stride: 4, out: this.scalar.accuracy, scale: 100 / B },
          ],
          work,
          this.scalars,
        );
      }
      if (!train) return;

      const state = this.state;
      for (const loss of ['mse', 'ce'] as const) {
        for (const point of ['y', 't'] as const) {
          const jobs = this.addTable(`errors.${point}.${loss}`, packJobs(this.errorJobs(point, loss), tiles));
          this.groups.set(`errors.${point}.${loss}`, createBindGroup(device, this.k('errors'), { jobs, params, work }));
          this.groups.set(
            `errors.${point}.${loss}.gated`,
            createBindGroup(device, this.k('errors.gated'), { jobs, params, work, state }),
          );
        }
        // The layer energies and their total in one dispatch (one workgroup per segment).
        const energies = this.energySegments(`energies.${loss}`, () => [
          ...this.layerEnergySegments(loss),
          this.totalEnergySegment(loss),
        ]);
        this.groups.set(
          `reduce.energies.${loss}`,
          createBindGroup(device, this.k('reduce'), { segments: energies, src: work, dst: this.scalars }),
        );
        // The recording tables: layer energies into a row of the records buffer.
        this.energySegments(`record.${loss}`, () => this.layerEnergySegments(loss));
      }
      const ceRows = this.rowsUniform(B, model.outputDim, this.fam.e + this.layer[L]!, this.partCe, 1);
      this.groups.set('ce', createBindGroup(device, this.k('ce'), { rows: ceRows, work }));
      this.groups.set('ce.gated', createBindGroup(device, this.k('ce.gated'), { rows: ceRows, work, state }));
      for (const point of ['y', 't'] as const) {
        const { buffer: jobs, jobs: list } = this.energyTable(`act.${point}`, () => this.activityGradJobs(point));
        this.actGroups.set(`act.${point}`, { jobs, params, vec4: epilogue4Ready(list), kernel: 'act' });
      }
      const pjobs = this.energyTable('paramGrad', () => this.paramGradJobs()).buffer;
      this.groups.set(
        'paramGrad',
        createBindGroup(device, this.k('paramGrad'), { jobs: pjobs, work, grads: model.grads() }),
      );
      for (const entry of SOLVER_ENTRIES) {
        this.groups.set(
          `solver.${entry}`,
          createBindGroup(device, this.k(`solver.${entry}`), { config: this.config, work, state }),
        );
      }
      // Norms: mean_b ‖z_b‖ per activity (JPC's compute_activity_norms), ‖W_l‖ and ‖b_l‖ of parameters and gradients.
      const regions = Array.from({ length: L + 1 - this.first }, (_, i) => {
        const l = i + this.first;
        return {
          rows: B,
          cols: model.dims[l]!,
          predOff: this.fam.y + this.layer[l]!,
          partOff: this.partRows + 4 * B * l,
        };
      });
      const rowNorms = rowTable(regions);
      this.workgroups.set('rowNorms', rowNorms.workgroups);
      this.groups.set(
        'rowNorms',
        createBindGroup(device, this.k('rowNorms'), {
          rows: this.storageFrom(rowNorms.data.buffer, 'wpc.rows.activityNorms'),
          work,
        }),
      );
      const activities = L + 1 - this.first;
      this.reduceGroup(
        'activityNorms',
        Array.from({ length: activities }, (_, i) => ({
          off: this.partRows + 4 * B * (i + this.first),
          count: B,
          stride: 4,
          out: this.scalar.activityNorms + i,
          scale: 1 / B,
        })),
        work,
        this.scalars,
      );
      const norms = (out: number): SegmentSpec[] =>
        model.layers.flatMap((spec, i) => [
          {
            off: spec.weightOffset,
            count: spec.inDim * spec.outDim,
            stride: 1,
            out: out + 2 * i,
            scale: 1,
            flags: ReduceFlag.SQUARE | ReduceFlag.SQRT,
          },
          {
            off: Math.max(0, spec.biasOffset),
            count: spec.useBias ? spec.outDim : 0,
            stride: 1,
            out: out + 2 * i + 1,
            scale: 1,
            flags: ReduceFlag.SQUARE | ReduceFlag.SQRT,
          },
        ]);
      this.reduceGroup('paramNorms', norms(this.scalar.paramNorms), params, this.scalars);
      this.reduceGroup('gradNorms', norms(this.scalar.gradNorms), model.grads(), this.scalars);
      // Regulariser energies: every slot added into the total (unused ones are cleared to 0).
      const acc = this.segmentTable('regs.accumulate', [
        { off: this.scalar.regs, count: L + 2, stride: 1, out: this.scalar.total, scale: 1 },
      ]);
      this.groups.set(
        'regs.accumulate',
        createBindGroup(device, this.k('accumulate'), { segments: acc, dst: this.scalars }),
      );
      this.buildStageGroups();
    });
  }

  /**
   * Registers an activity-gradient job table (with the parameters it reads) under `key`; its bind groups (plain,
   * and gated where `${kernel}.gated` is compiled) follow the stage buffer when it grows. Variants use it for their
   * own networks; `kernel` names the activity-gradient kernel it runs with (default this workspace's own, 'act';
   * another network's activation needs its own, compiled with `kernel(name, spec)`).
   */
  registerActTable(key: string, jobs: GPUBuffer, params: GPUBuffer, list: readonly Job[], kernel = 'act'): void {
    this.k(kernel);
    this.actGroups.set(key, { jobs, params, vec4: epilogue4Ready(list), kernel });
    this.buildActGroups(key);
  }

  /** Notes the jobs now in a registered activity-gradient table (after its buffer was rewritten). */
  updateActTable(key: string, list: readonly Job[]): void {
    const entry = this.actGroups.get(key);
    if (!entry) throw new Error(`workspace: no activity-gradient table ${key}`);
    entry.vec4 = epilogue4Ready(list);
  }

  private buildActGroups(key: string): void {
    const device = this.runtime.device;
    const { jobs, params, kernel } = this.actGroups.get(key)!;
    const stage: GPUBufferBinding = { buffer: this.stageBuffer, offset: 0, size: STAGE_BYTES };
    this.groups.set(key, createBindGroup(device, this.k(kernel), { jobs, params, work: this.buffer, stage }));
    if (this.kernels.has(`${kernel}.gated`)) {
      this.groups.set(
        `${key}.gated`,
        createBindGroup(device, this.k(`${kernel}.gated`), {
          jobs,
          params,
          work: this.buffer,
          state: this.state,
          stage,
        }),
      );
    }
  }

  private buildStageGroups(): void {
    for (const key of this.actGroups.keys()) this.buildActGroups(key);
    this.stageGroupsFor = this.stageBuffer;
  }

  /** @internal a kernel compiled for this workspace (or for a variant, with `kernel`). */
  k(name: string): CompiledKernel {
    const kernel = this.kernels.get(name);
    if (!kernel) throw new Error(`workspace: kernel ${name} is not prepared (purpose ${this.purpose})`);
    return kernel;
  }

  /** Compiles (once) an extra kernel a variant needs, under `name`. */
  async kernel(name: string, spec: Parameters<Runtime['kernel']>[0]): Promise<CompiledKernel> {
    let kernel = this.kernels.get(name);
    if (!kernel) {
      kernel = await this.runtime.kernel(spec);
      this.kernels.set(name, kernel);
    }
    return kernel;
  }

  private g(name: string): GPUBindGroup {
    const group = this.groups.get(name);
    if (!group) throw new Error(`workspace: bind group ${name} is not prepared (purpose ${this.purpose})`);
    return group;
  }

  /** Whether a bind group was built under `name` (variants build theirs once). */
  has(name: string): boolean {
    return this.groups.has(name);
  }

  /** Stores a bind group a variant built (with the dispatch size of its table). */
  setGroup(name: string, group: GPUBindGroup, workgroups?: number): void {
    this.groups.set(name, group);
    if (workgroups !== undefined) this.workgroups.set(name, workgroups);
  }

  /** Dispatches a variant's bind group `name` with kernel `kernel` (workgroups as stored, or given). */
  dispatchGroup(rec: Recorder, kernel: string, name: string, workgroups?: number, offsets?: number[]): void {
    rec.dispatch(this.k(kernel), this.g(name), workgroups ?? this.workgroups.get(name)!, offsets);
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
      for (const [key, table] of this.energyTables) {
        const built = table.build();
        const data =
          table.kind === 'jobs' ? packJobs(built as Job[], this.tiles).data : this.segmentData(built as SegmentSpec[]);
        this.runtime.device.queue.writeBuffer(table.buffer, 0, data);
        if (this.actGroups.has(key)) this.updateActTable(key, built as Job[]);
      }
    }
    if (terms.activityDecay !== this.recordsDecay) this.uploadRecords(this.records);
  }

  get energyTerms(): Readonly<EnergyTerms> {
    return this.energy;
  }

  private regularizer(): { uniform: GPUBuffer; scratch: GPUBuffer } {
    const L = this.model.depth;
    const { weightDecay: wd, spectralPenalty: sp } = this.energy;
    const scratchSize = sp !== 0 ? this.model.layers.reduce((s, l) => s + l.inDim * l.inDim, 0) : 1;
    let reg = this.regState;
    if (!reg || reg.scratchSize < scratchSize) {
      reg?.scratch.destroy();
      const uniform =
        reg?.uniform ??
        this.runtime.device.createBuffer({
          size: 2 * L * UNIFORM_STRIDE,
          usage: UNIFORM_USAGE,
          label: 'wpc.regularize',
        });
      const scratch = this.runtime.createStorageBuffer(scratchSize * 4, 'wpc.regularize.scratch');
      if (!reg) this.ownBuffers.push(uniform);
      reg = this.regState = { key: '', uniform, scratch, scratchSize };
      const device = this.runtime.device;
      const reduceOver = (key: string, src: GPUBuffer) => {
        const segments = this.segmentTables.get(key) ?? this.segmentTable(key, this.regSegments(key));
        this.groups.set(
          `reduce.${key}`,
          createBindGroup(device, this.k('reduce'), { segments, src, dst: this.scalars }),
        );
      };
      reduceOver('regs.weight', this.model.params);
      reduceOver('regs.spectral', scratch);
      reduceOver('regs.activity', this.buffer);
      for (const entry of ['weight_decay', 'gram', 'spectral'] as const) {
        this.groups.set(
          `regularize.${entry}`,
          createBindGroup(device, this.k(`regularize.${entry}`), {
            reg: { buffer: uniform, offset: 0, size: REG_WORDS * 4 },
            params: this.model.params,
            grads: this.model.grads(),
            scratch,
          }),
        );
      }
    }
    const key = `${wd}:${sp}:${this.energy.activityDecay}`;
    if (reg.key !== key) {
      const records: RegRecord[] = [];
      let d = 0;
      this.model.layers.forEach((spec, l) => {
        const at = { wOff: spec.weightOffset, outDim: spec.outDim, inDim: spec.inDim, dOff: d };
        records[l] = { ...at, coef: wd };
        records[L + l] = { ...at, coef: 2 * sp };
        d += spec.inDim * spec.inDim;
      });
      this.runtime.device.queue.writeBuffer(reg.uniform, 0, packRegs(records));
      for (const k of ['regs.weight', 'regs.spectral', 'regs.activity']) {
        this.runtime.device.queue.writeBuffer(this.segmentTables.get(k)!, 0, this.segmentData(this.regSegments(k)));
      }
      reg.key = key;
    }
    return reg;
  }

  private regSegments(key: string): SegmentSpec[] {
    const { weightDecay: wd, spectralPenalty: sp, activityDecay: ad } = this.energy;
    const regs = this.scalar.regs;
    const L = this.model.depth;
    if (key === 'regs.weight') {
      return this.model.layers.map((spec, l) => ({
        off: spec.weightOffset,
        count: spec.inDim * spec.outDim,
        stride: 1,
        out: regs + l,
        scale: wd / 2,
        flags: ReduceFlag.SQUARE,
      }));
    }
    if (key === 'regs.spectral') {
      const count = sp !== 0 ? this.model.layers.reduce((s, l) => s + l.inDim * l.inDim, 0) : 0;
      return [{ off: 0, count, stride: 1, out: regs + L, scale: sp / 2, flags: ReduceFlag.SQUARE }];
    }
    return [
      {
        off: this.fam.y,
        count: this.nAll,
        stride: 1,
        out: regs + L + 1,
        scale: ad / (2 * this.batch),
        flags: ReduceFlag.SQUARE,
      },
    ];
  }

  private async prepareRegularizer(): Promise<void> {
    await Promise.all(
      (['weight_decay', 'gram', 'spectral'] as RegularizeEntry[]).map((e) =>
        this.kernel(`regularize.${e}`, regularizeKernel(e)),
      ),
    );
  }

  /** Whether the current terms have regularisers whose kernels must be compiled first (`ensureRegularizer`). */
  get hasRegularizers(): boolean {
    const { weightDecay, spectralPenalty, activityDecay } = this.energy;
    return weightDecay !== 0 || spectralPenalty !== 0 || activityDecay !== 0;
  }

  /** Compiles the regulariser kernels if the current terms need them. */
  async ensureRegularizer(): Promise<void> {
    if (this.hasRegularizers) await this.prepareRegularizer();
  }

  private recordGram(rec: Recorder, reg: { uniform: GPUBuffer }): void {
    const L = this.model.depth;
    this.model.layers.forEach((spec, l) => {
      rec.dispatch(
        this.k('regularize.gram'),
        this.g('regularize.gram'),
        this.elementwiseGroups(spec.inDim * spec.inDim),
        [(L + l) * UNIFORM_STRIDE],
      );
    });
    void reg;
  }

  /** Adds the weight regularisers' gradients (wd·W, 2·sp·W(WᵀW − I)) to the parameter gradients. */
  recordRegularizerGrads(rec: Recorder): void {
    const { weightDecay: wd, spectralPenalty: sp } = this.energy;
    if (wd === 0 && sp === 0) return;
    const reg = this.regularizer();
    const L = this.model.depth;
    if (sp !== 0) {
      this.recordGram(rec, reg);
      this.model.layers.forEach((spec, l) => {
        rec.dispatch(
          this.k('regularize.spectral'),
          this.g('regularize.spectral'),
          this.elementwiseGroups(spec.inDim * spec.outDim),
          [(L + l) * UNIFORM_STRIDE],
        );
      });
    }
    if (wd !== 0) {
      this.model.layers.forEach((spec, l) => {
        rec.dispatch(
          this.k('regularize.weight_decay'),
          this.g('regularize.weight_decay'),
          this.elementwiseGroups(spec.inDim * spec.outDim),
          [l * UNIFORM_STRIDE],
        );
      });
    }
  }

  /** Adds the regularisers' energies (at the activities in y) to the total in the scalars. */
  recordRegularizerEnergies(rec: Recorder): void {
    if (!this.hasRegularizers) return;
    const { weightDecay: wd, spectralPenalty: sp, activityDecay: ad } = this.energy;
    const reg = this.regularizer();
    const L = this.model.depth;
    rec.clear(this.scalars, this.scalar.regs * 4, (L + 2) * 4);
    if (wd !== 0) this.recordReduce(rec, 'regs.weight');
    if (sp !== 0) {
      this.recordGram(rec, reg);
      this.recordReduce(rec, 'regs.spectral');
    }
    if (ad !== 0) this.recordReduce(rec, 'regs.activity');
    rec.dispatch(this.k('accumulate'), this.g('regs.accumulate'), 1);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Recording

  elementwiseGroups(n: number): number {
    return Math.ceil(n / SMALL_WG);
  }

  /**
   * Feedforward pass from x (or, unsupervised, from z_0): writes y (= z_1..z_L), φ(y) and pred1. L dispatches
   * (layers depend on each other).
   */
  recordForward(rec: Recorder): void {
    for (let l = 1; l <= this.model.depth; l++) this.recordForwardLayer(rec, l);
  }

  /** Layer l of the feedforward pass alone. */
  recordForwardLayer(rec: Recorder, l: number): void {
    rec.dispatch(this.k('forward'), this.g(`forward.${l}`), this.workgroups.get(`forward.${l}`)!);
  }

  /** The first layer's prediction pred1 = s_1·f_1(x) alone (the input is clamped during inference). */
  recordFirstPrediction(rec: Recorder): void {
    if (this.mode === 'supervised') rec.dispatch(this.k('forward'), this.g('pred1'), this.workgroups.get('pred1')!);
  }

  /** Prediction errors of every layer at `point` (and their energy partials). */
  recordErrors(rec: Recorder, point: EvalPoint, loss: Loss, gated: boolean): void {
    const suffix = gated ? '.gated' : '';
    rec.dispatch(
      this.k(`errors${suffix}`),
      this.g(`errors.${point}.${loss}${suffix}`),
      this.workgroups.get(`errors.${point}.${loss}`)!,
    );
    if (loss === 'ce') rec.dispatch(this.k(`ce${suffix}`), this.g(`ce${suffix}`), this.elementwiseGroups(this.batch));
  }

  /** Activity gradients at `point`, fused with what stage record `record` says. */
  recordActivityGrad(rec: Recorder, point: EvalPoint, gated: boolean, record: number): void {
    this.recordActTable(rec, `act.${point}`, gated, record);
  }

  /** Dispatches a registered activity-gradient table with stage record `record`. */
  recordActTable(rec: Recorder, key: string, gated: boolean, record: number): void {
    if (this.stageGroupsFor !== this.stageBuffer) this.buildStageGroups();
    const name = `${key}${gated ? '.gated' : ''}`;
    const base = this.actGroups.get(key)?.kernel ?? 'act';
    const kernel = `${base}${this.actKernelTakesVec4(key, record) ? '.vec4' : ''}${gated ? '.gated' : ''}`;
    rec.dispatch(this.k(kernel), this.g(name), this.workgroups.get(key)!, [record * UNIFORM_STRIDE]);
  }

  /**
   * Whether a dispatch of activity-gradient table `key` with stage record `record` may use the kernel compiled
   * with only the vec4 epilogue: every job and the record pass vec_ok (activity-grad.wgsl), i.e. the tables'
   * widths and offsets and the stage families' offsets are ≡ 0 mod 4 and the mode is a Runge–Kutta one.
   */
  actKernelTakesVec4(key: string, record: number): boolean {
    const table = this.actGroups.get(key);
    const r = this.records[record];
    return (
      table !== undefined &&
      this.kernels.has(`${table.kernel}.vec4`) &&
      table.vec4 &&
      r !== undefined &&
      r.mode <= StageMode.FINAL_FSAL &&
      this.stageFamiliesAligned
    );
  }

  /** Whether this workspace's own activity-gradient tables can use the vec4-only kernel (see prepare). */
  private actTablesTakeVec4(): boolean {
    return (
      epilogueColumns(this.tiles) % 4 === 0 &&
      this.stageFamiliesAligned &&
      (['y', 't'] as const).every((p) => epilogue4Ready(this.activityGradJobs(p)))
    );
  }

  recordParamGrads(rec: Recorder): void {
    rec.dispatch(this.k('paramGrad'), this.g('paramGrad'), this.workgroups.get('paramGrad')!);
  }

  recordReduce(rec: Recorder, key: string): void {
    rec.dispatch(this.k('reduce'), this.g(`reduce.${key}`), this.workgroups.get(`segments.${key}`)!);
  }

  /**
   * Layer energies (JPC order) and their total into the scalars, the regularisers included in the total; needs
   * `recordErrors(…, 'y', loss, false)` first.
   */
  recordEnergies(rec: Recorder, loss: Loss): void {
    this.recordReduce(rec, `energies.${loss}`);
    this.recordRegularizerEnergies(rec);
  }

  /** JPC's mse_loss / cross_entropy_loss and compute_accuracy of the prediction z_L against the target. */
  recordLoss(rec: Recorder, loss: Loss): void {
    rec.dispatch(this.k('lossRows'), this.g(`lossRows.${loss}`), this.elementwiseGroups(this.batch));
    this.recordReduce(rec, 'loss');
  }

  /**
   * A row metric of any [B, cols] region against another: JPC's mse_loss (or cross_entropy_loss with `ce`) times
   * `lossScale`·B (1 gives JPC's mean over rows) into scalars[out], and compute_accuracy into scalars[out + 1].
   * The uniform and segments are built once per key.
   */
  recordRowMetric(
    rec: Recorder,
    key: string,
    m: { pred: number; target: number; cols: number; ce?: boolean; lossScale?: number; out: number },
  ): void {
    const name = `metric.${key}`;
    if (!this.groups.has(name)) {
      const B = this.batch;
      const rows = this.uniformFrom(
        new Uint32Array(
          packRows([
            {
              rows: B,
              cols: m.cols,
              predOff: m.pred,
              targetOff: m.target,
              partOff: this.partRows,
              lossCe: m.ce === true,
            },
          ]),
        ),
        `wpc.rows.${key}`,
      );
      this.groups.set(name, createBindGroup(this.runtime.device, this.k('lossRows'), { rows, work: this.buffer }));
      this.reduceGroup(
        name,
        [
          { off: this.partRows, count: B, stride: 4, out: m.out, scale: (m.lossScale ?? 1) / B },
          { off: this.partRows + 1, count: B, stride: 4, out: m.out + 1, scale: 100 / B },
        ],
        this.buffer,
        this.scalars,
      );
    }
    rec.dispatch(this.k('lossRows'), this.g(name), this.elementwiseGroups(this.batch));
    this.recordReduce(rec, name);
  }

  /** mean_b ‖z_{l,b}‖ of every activity (JPC's compute_activity_norms) into the scalars. */
  recordActivityNorms(rec: Recorder): void {
    rec.dispatch(this.k('rowNorms'), this.g('rowNorms'), this.workgroups.get('rowNorms')!);
    this.recordReduce(rec, 'activityNorms');
  }

  /** ‖W_l‖ and ‖b_l‖ (JPC's compute_param_norms) of the parameters, or of their last gradients. */
  recordParamNorms(rec: Recorder, of: 'params' | 'grads'): void {
    this.recordReduce(rec, of === 'params' ? 'paramNorms' : 'gradNorms');
  }

  recordSolver(rec: Recorder, entry: 'step_control' | 'hairer_h0' | 'hairer_dt0'): void {
    rec.dispatch(this.k(`solver.${entry}`), this.g(`solver.${entry}`), 1);
  }

  /** Elementwise solver kernels over the whole state (accept, hairer_probe, activate) or in chunks (scaled_square). */
  recordElementwise(rec: Recorder, entry: 'accept' | 'hairer_probe' | 'activate' | 'scaled_square'): void {
    const n = entry === 'scaled_square' ? this.partD0.count : this.nAll;
    if (n === 0) return;
    rec.dispatch(this.k(`solver.${entry}`), this.g(`solver.${entry}`), this.elementwiseGroups(n));
  }

  /** out = a·u + b·v for each op (one dispatch; the ops must not depend on each other). Tables are cached by key. */
  recordCombine(rec: Recorder, key: string, ops: readonly CombineOp[]): void {
    const name = `combine.${key}`;
    if (!this.groups.has(name)) {
      const table = this.storageFrom(packCombineOps(ops), `wpc.combine.${key}`);
      this.groups.set(name, createBindGroup(this.runtime.device, this.k('combine'), { ops: table, work: this.buffer }));
    }
    const most = Math.max(...ops.map((o) => o.n));
    rec.dispatch(this.k('combine'), this.g(name), [Math.min(1024, this.elementwiseGroups(most)), ops.length]);
  }

  /**
   * Makes sure the recording buffers hold `capacity` states (energies, and the activities when `trajectory`),
   * resets their counter, and writes the three recording uniforms (see record.wgsl). Returns the buffers.
   */
  prepareRecording(rec: Recorder, capacity: number, trajectory: boolean): { records: GPUBuffer; traj: GPUBuffer } {
    const L = this.model.depth;
    const trajN = trajectory ? this.nAll : 0;
    const current = this.recordBuffers;
    if (!current || current.capacity < capacity || current.trajN < trajN) {
      current?.records.destroy();
      current?.traj.destroy();
      const records = this.runtime.createStorageBuffer((4 + capacity * L) * 4, 'wpc.records');
      const traj = this.runtime.createStorageBuffer(Math.max(1, capacity * trajN) * 4, 'wpc.trajectory');
      this.recordBuffers = { records, traj, capacity, trajN };
      for (const key of [...this.groups.keys()]) if (key.startsWith('rec.')) this.groups.delete(key);
    }
    const buffers = this.recordBuffers!;
    rec.clear(buffers.records, 0, 16);
    const words = packRecordings([0, 1, 2, 3].map((when) => ({ when, layers: L, capacity, trajN, y: this.fam.y })));
    this.runtime.device.queue.writeBuffer(this.recordingUniform, 0, words);
    return buffers;
  }

  /** Records the state whose ERRORS partials are in place (at `point`, for `loss`) if `when` says so. */
  recordState(rec: Recorder, loss: Loss, when: number, trajectory: boolean): void {
    const buffers = this.recordBuffers;
    if (!buffers) throw new Error('workspace: prepareRecording first');
    const group = (entry: RecordEntry) => {
      const key = `rec.${entry}.${loss}`;
      let g = this.groups.get(key);
      if (!g) {
        g = createBindGroup(this.runtime.device, this.k(`record.${entry}`), {
          segments: this.segmentTables.get(`record.${loss}`)!,
          work: this.buffer,
          state: this.state,
          records: buffers.records,
          traj: buffers.traj,
          recording: { buffer: this.recordingUniform, offset: 0, size: 32 },
        });
        this.groups.set(key, g);
      }
      return g;
    };
    const offset = [when * UNIFORM_STRIDE];
    if (trajectory)
      rec.dispatch(
        this.k('record.record_activities'),
        group('record_activities'),
        this.elementwiseGroups(this.nAll),
        offset,
      );
    rec.dispatch(this.k('record.record_energies'), group('record_energies'), this.model.depth, offset);
    rec.dispatch(this.k('record.record_advance'), group('record_advance'), 1, offset);
  }

  private fused:
    | {
        kernel: CompiledKernel;
        layers: GPUBuffer;
        cfg: GPUBuffer;
        coefs?: GPUBuffer;
        key?: string;
        group?: GPUBindGroup;
      }
    | undefined;

  /**
   * Records a whole fixed-step Runge–Kutta solve as one single-workgroup dispatch (fused-solve.wgsl): `a` and
   * `b` of the stages evaluated, the step sizes. The coefficients upload only when `key` changes. Only for the
   * plain energy (see `plain`).
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
    const rt = this.runtime;
    const { model, fam } = this;
    const L = model.depth;
    const wg = rt.adapter.isSoftware ? 64 : 256;
    if (!this.fused) {
      const kernel = await rt.kernel(fusedSolveKernel(this.act, wg));
      const table = packFusedLayers(
        model.layers.map((spec, i) => ({
          inDim: spec.inDim,
          outDim: spec.outDim,
          wOff: spec.weightOffset,
          bOff: Math.max(0, spec.biasOffset),
          hasBias: spec.useBias,
          scale: spec.scale,
          layOff: this.layer[i + 1]!,
        })),
      );
      const cfg = rt.device.createBuffer({ size: FUSED_WORDS * 4, usage: UNIFORM_USAGE, label: 'wpc.fused.cfg' });
      this.ownBuffers.push(cfg);
      this.fused = { kernel, layers: this.storageFrom(table, 'wpc.fused.layers'), cfg };
    }
    const fused = this.fused;
    const s = b.length;
    if (fused.key !== key) {
      const coefs = new Float32Array(s * s + s + sizes.length);
      a.forEach((row, i) => coefs.set(row.slice(0, i + 1), (i + 1) * s)); // row i + 1 holds a_{i+2, 1..i+1}
      coefs.set(b, s * s);
      coefs.set(sizes, s * s + s);
      fused.coefs?.destroy();
      fused.coefs = this.runtime.createStorageBuffer(coefs.byteLength, 'wpc.fused.coefs');
      rt.device.queue.writeBuffer(fused.coefs, 0, coefs);
      fused.group = createBindGroup(rt.device, fused.kernel, {
        cfg: fused.cfg,
        params: model.params,
        work: this.buffer,
        layers: fused.layers,
        coefs: fused.coefs,
      });
      fused.key = key;
    }
    const words = packFused({
      layers: L,
      batch: this.batch,
      stages: s,
      steps: sizes.length,
      ce: loss === 'ce',
      nAll: this.nAll,
      nHidden: this.nHidden,
      y: fam.y,
      py: fam.py,
      t: fam.t,
      pt: fam.pt,
      k: fam.k,
      e: fam.e,
      pred1: this.pred1,
      goal: this.target,
      aOff: 0,
      bOff: s * s,
      dtOff: s * s + s,
      invBatch: 1 / this.batch,
    });
    rt.device.queue.writeBuffer(fused.cfg, 0, words);
    rec.dispatch(fused.kernel, fused.group!, 1);
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
   * Writes a solver's stage records at indices 1..n (index 0 always holds the plain-gradient record), growing
   * the uniform buffer if needed; skipped when `key` names the records already there (`build` is then not called:
   * a free-running solve's records are one object per stage of every step, too many to build per solve).
   */
  writeStageRecords(key: string, build: () => readonly StageRecord[]): void {
    if (key === this.stageRecordsKey && this.recordsDecay === this.energy.activityDecay) return;
    const all = [GRAD_RECORD, ...build()];
    if (all.length > this.stageCapacity) {
      const old = this.stageBuffer;
      // Room to grow (doubling), within what the device allows in one buffer (checkSolveFits checked all.length).
      const most = Math.floor(bufferLimit(this.runtime.limits).bytes / UNIFORM_STRIDE);
      this.stageBuffer = this.makeStageBuffer(Math.max(all.length, Math.min(2 * this.stageCapacity, most)));
      old.destroy();
    }
    this.uploadRecords(all);
    this.stageRecordsKey = key;
  }

  private uploadRecords(records: readonly StageRecord[]): void {
    const { fam } = this;
    const decay = this.energy.activityDecay;
    const data = packStages(records, {
      y: fam.y,
      py: fam.py,
      t: fam.t,
      pt: fam.pt,
      k: fam.k,
      kStride: this.nAll,
      decay,
    });
    this.runtime.device.queue.writeBuffer(this.stageBuffer, 0, data);
    this.records = records;
    this.recordsDecay = decay;
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

  get recordings(): { records: GPUBuffer; traj: GPUBuffer; capacity: number; trajN: number } | undefined {
    return this.recordBuffers;
  }

  dispose(): void {
    for (const b of this.ownBuffers) b.destroy();
    this.stageBuffer.destroy();
    this.recordBuffers?.records.destroy();
    this.recordBuffers?.traj.destroy();
    this.fused?.coefs?.destroy();
    this.regState?.scratch.destroy();
  }
}
