/**
 * A workspace holds everything one model needs on the GPU for batches of one size: a single storage buffer
 * with every activity-shaped array (activities z, φ(z), solver stages, prediction errors, partial sums), a small
 * buffer of scalar results, the job tables of the grouped layer kernels, the solver state, and bind groups built
 * once and reused by every step of every batch. Batches are written into it; nothing is allocated per step.
 *
 * Layout. Activities z_1..z_L (z_L is the output layer's dummy activity) are stored back to back, z_l taking
 * B·d_l elements at `layer(l)`. Every *family* below repeats that layout from its own base, so layer l of family
 * F is at F + layer(l) and elementwise work over all hidden layers is one flat range:
 *
 *   y    activities                          py   φ(y) (hidden layers)
 *   t    a Runge–Kutta stage's evaluation point (the probe) or the candidate y1 (*)   pt   φ(t)
 *   k_j  stage j of a Runge–Kutta step (one family per stage); k_1 also holds ∂F/∂z for discrete updates and
 *        the optimiser state of discrete inference (k_1, k_2)
 *   e    prediction errors e_l (e_L: y − pred, or ce's y − softmax·Σy)
 *
 * (*) The last stage reads its evaluation point t and writes the candidate over it: each element is read and
 * written by the same invocation. Besides: x (input), pred1 (the first layer's prediction, fixed during inference
 * because x is clamped), target, the constant-step grid, and partial-sum regions.
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
  activityGradKernel,
  defaultTiles,
  fusedSolveKernel,
  FUSED_LAYER_WORDS,
  FUSED_WORDS,
  forwardKernel,
  outputKernel,
  paramGradKernel,
  recordKernel,
  reduceKernel,
  solverKernel,
  type RecordEntry,
  type SolverEntry,
} from '../kernels/index.js';
import { BufferUsage, STORAGE_USAGE, UNIFORM_USAGE } from '../runtime/flags.js';
import { type CompiledKernel, createBindGroup } from '../runtime/kernel.js';
import type { Recorder } from '../runtime/recorder.js';
import { type Runtime, SleepEstimator } from '../runtime/runtime.js';
import { type Job, type JobTable, packJobs } from './layer-jobs.js';
import type { Model } from './model.js';

export type Loss = 'mse' | 'ce';
export type EvalPoint = 'y' | 't';
/** `eval` workspaces only hold what a feedforward pass and its loss need (test batches can be large). */
export type Purpose = 'train' | 'eval';

/** What a solve needs beyond the defaults: stage families (Runge–Kutta stages) and constant-step grid points. */
export interface WorkspaceNeeds {
  stages: number;
  gridSteps: number;
}

/** Bytes between records of the stage and recording uniforms (≥ every adapter's minUniformBufferOffsetAlignment). */
export const UNIFORM_STRIDE = 256;
/** Words of the solver state (struct SolverState in solver-state.wgsl). */
export const STATE_WORDS = 16;
export const STATE = {
  tprev: 0,
  tnext: 1,
  prevInv: 2,
  prevPrevInv: 3,
  atDtmin: 4,
  done: 5,
  failed: 6,
  lastAccepted: 7,
  steps: 8,
  accepted: 9,
  rejected: 10,
  scaledError: 11,
  h0: 12,
  d1: 13,
  dummySq: 14,
  event: 15,
} as const;
/** Words of the solver config uniform (struct Config in solver.wgsl). */
export const CONFIG_WORDS = 48;
/** Words of a reduce segment (struct Segment in reduce.wgsl / record.wgsl). */
const SEGMENT_WORDS = 12;

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

/** One record of the stage uniform (struct Stage in activity-grad.wgsl). */
export interface StageRecord {
  mode: number;
  /** i: the dispatch computes k_i (1-based). */
  index: number;
  /** a_{i+1,1..i} (MODE_STAGE) or b_1..b_i (MODE_FINAL); for MODE_OPTIM the optimiser's numbers. */
  coef: readonly number[];
  /** Error weights e_1..e_i; empty when there is no error estimate. */
  ecoef: readonly number[];
  dt: number;
  rtol: number;
  atol: number;
  /** Where MODE_FINAL writes the candidate: the probe's slot (decided later) or y itself (fixed steps). */
  candidate: 'probe' | 'in-place';
  /** MODE_OPTIM: StageOptimizer.*. */
  opt?: number;
}

/** Record 0 of every stage buffer: the plain activity gradient (computePcActivityGrad, discrete updates). */
const GRAD_RECORD: StageRecord = { mode: StageMode.GRAD, index: 1, coef: [], ecoef: [], dt: 0, rtol: 0, atol: 0, candidate: 'probe' };

interface SegmentSpec {
  off: number;
  count: number;
  stride: number;
  out: number;
  scale: number;
  flags?: number;
  off2?: number;
  count2?: number;
  scale2?: number;
}

export class Workspace {
  readonly runtime: Runtime;
  readonly tiles: TileConfig;
  readonly act: Activation;
  /** Offset of z_l inside every family, for l = 1..L (index 0 unused). */
  readonly layer: number[];
  /** Elements of z_1..z_L, and of the hidden ones z_1..z_{L−1}. */
  readonly nAll: number;
  readonly nHidden: number;
  readonly fam: Families;
  /** Stage families allocated (k_1..k_stages). */
  readonly stages: number;
  readonly gridSteps: number;
  readonly x: number;
  readonly pred1: number;
  readonly target: number;
  readonly grid: number;
  /** Offsets in the scalars buffer. */
  readonly scalar: {
    energies: number;
    total: number;
    loss: number;
    accuracy: number;
    activityNorms: number;
    paramNorms: number;
    gradNorms: number;
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
  private readonly errorTiles: number[];
  private readonly kernels = new Map<string, CompiledKernel>();
  private readonly groups = new Map<string, GPUBindGroup>();
  private readonly workgroups = new Map<string, number>();
  private readonly ownBuffers: GPUBuffer[] = [];
  private readonly actJobs = new Map<EvalPoint, GPUBuffer>();
  private readonly segmentTables = new Map<string, GPUBuffer>();
  private stageGroupsFor: GPUBuffer | undefined;
  private recordBuffers: { records: GPUBuffer; traj: GPUBuffer; capacity: number; trajN: number } | undefined;
  private readonly recordingUniform: GPUBuffer;
  /** What the last adaptive solve on this workspace took, to size the first chunk and the host's sleep. */
  readonly pidHistory = { lastSteps: 0, sleep: new SleepEstimator() };
  /** How long timed solves take (makePcStep's timeInference), to sleep instead of busy-waiting. */
  readonly solveClock = new SleepEstimator();
  /** The stage records last written (a solve with the same ones skips the upload). */
  stageRecordsKey = '';

  private constructor(
    readonly model: Model,
    readonly batch: number,
    readonly purpose: Purpose,
    needs: WorkspaceNeeds,
  ) {
    const rt = (this.runtime = model.runtime);
    this.tiles = rt.kernels.tiles ?? defaultTiles(rt.adapter);
    this.act = model.actFn;
    const dims = model.dims;
    const L = model.depth;
    const B = batch;
    this.layer = [0];
    let n = 0;
    for (let l = 1; l <= L; l++) {
      this.layer.push(n);
      n += B * dims[l]!;
    }
    this.nAll = n;
    this.nHidden = this.layer[L]!;
    const train = purpose === 'train';
    this.stages = train ? Math.max(2, needs.stages) : 0;
    this.gridSteps = train ? Math.max(1, needs.gridSteps) : 0;
    this.errorTiles = [];
    for (let l = 1; l <= L; l++) this.errorTiles.push(this.tileCount(B, dims[l]!));
    const actTiles = Array.from({ length: L - 1 }, (_, i) => this.tileCount(B, dims[i + 1]!)).reduce((a, b) => a + b, 0);

    let at = 0;
    const take = (size: number, needed = true): number => {
      if (!needed) return 0;
      const start = at;
      at += Math.ceil(Math.max(size, 1) / ALIGN) * ALIGN;
      return start;
    };
    this.fam = {
      y: take(n),
      py: take(n),
      t: take(n, train),
      pt: take(n, train),
      e: take(n, train),
      k: take(n * this.stages, train),
    };
    this.x = take(B * dims[0]!);
    this.pred1 = take(B * dims[1]!);
    this.target = take(B * dims[L]!);
    this.grid = take(this.gridSteps, train);
    this.partE = take(4 * this.errorTiles.reduce((a, b) => a + b, 0), train);
    this.partCe = take(4 * B, train);
    this.partA = { off: take(4 * Math.max(1, actTiles), train), count: actTiles };
    this.partB = { off: take(4 * Math.max(1, actTiles), train), count: actTiles };
    this.partD0 = { off: take(4 * Math.ceil(n / SCALED_SQUARE_CHUNK), train), count: Math.ceil(n / SCALED_SQUARE_CHUNK) };
    this.partRows = take(4 * B * L);
    const s0 = 0;
    this.scalar = {
      energies: s0,
      total: s0 + L,
      loss: s0 + L + 1,
      accuracy: s0 + L + 2,
      activityNorms: s0 + L + 3,
      paramNorms: s0 + 2 * L + 3,
      gradNorms: s0 + 4 * L + 3,
      size: 6 * L + 4,
    };

    this.buffer = rt.createStorageBuffer(at * 4, `wpc.workspace[B=${B}]`);
    this.scalars = rt.createStorageBuffer(this.scalar.size * 4, 'wpc.scalars');
    this.state = rt.createStorageBuffer(STATE_WORDS * 4, 'wpc.solver-state');
    this.config = rt.device.createBuffer({ size: CONFIG_WORDS * 4, usage: UNIFORM_USAGE, label: 'wpc.solver-config' });
    this.recordingUniform = rt.device.createBuffer({ size: 4 * UNIFORM_STRIDE, usage: UNIFORM_USAGE, label: 'wpc.recording' });
    this.stageBuffer = this.makeStageBuffer(1);
    this.uploadRecords([GRAD_RECORD]);
    this.ownBuffers.push(this.buffer, this.scalars, this.state, this.config, this.recordingUniform);
  }

  /**
   * Builds (or returns the cached) workspace of `model` for batches of `batch` examples, with at least the stage
   * families and grid points a solve `needs` (a smaller cached workspace is replaced once its work is done).
   */
  static get(model: Model, batch: number, purpose: Purpose, needs: WorkspaceNeeds = { stages: 2, gridSteps: 1 }): Promise<Workspace> {
    const trainKey = `${batch}:train`;
    const key = purpose === 'eval' && model.workspaces.has(trainKey) ? trainKey : `${batch}:${purpose}`;
    const cached = model.workspaces.get(key);
    const build = (stages: number, gridSteps: number, previous?: Promise<Workspace>) => {
      const ws = (async () => {
        if (previous) {
          // Let every task already queued on the old workspace finish before its buffers go.
          const old = await previous.catch(() => undefined);
          if (old) await old.exclusive(async () => old.dispose());
        }
        const w = await model.runtime.scoped(`workspace for batch ${batch}`, () => new Workspace(model, batch, purpose, { stages, gridSteps }));
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
        void old.then((w) => w.exclusive(async () => w.dispose()), () => undefined);
      }
      return build(needs.stages, needs.gridSteps);
    }
    return cached.then((w) =>
      w.purpose === 'train' && (w.stages < needs.stages || w.gridSteps < needs.gridSteps)
        ? build(Math.max(w.stages, needs.stages), Math.max(w.gridSteps, needs.gridSteps), cached)
        : w,
    );
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

  private tileCount(m: number, n: number): number {
    return Math.ceil(m / this.tiles.tm) * Math.ceil(n / this.tiles.tn);
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
  // Job tables

  private forwardJob(l: number): Job {
    const { model, batch: B, fam } = this;
    const spec = model.layers[l - 1]!;
    const L = model.depth;
    return {
      m: B,
      n: spec.outDim,
      k: spec.inDim,
      aOff: l === 1 ? this.x : fam.py + this.layer[l - 1]!,
      bOff: spec.weightOffset,
      cOff: fam.y + this.layer[l]!,
      dOff: fam.py + this.layer[l]!,
      eOff: this.pred1,
      biasOff: Math.max(0, spec.biasOffset),
      flags: (spec.useBias ? JobFlag.BIAS : 0) | (l < L ? JobFlag.WRITE_PHI : 0) | (l === 1 ? JobFlag.WRITE_PRED : 0),
      coef0: spec.scale,
    };
  }

  private errorJobs(point: EvalPoint, loss: Loss): Job[] {
    const { model, batch: B, fam } = this;
    const L = model.depth;
    const z = point === 'y' ? fam.y : fam.t;
    const pz = point === 'y' ? fam.py : fam.pt;
    const jobs: Job[] = [];
    let part = this.partE;
    for (let l = 1; l <= L; l++) {
      const spec = model.layers[l - 1]!;
      const output = l === L;
      const first = l === 1;
      jobs.push({
        m: B,
        n: spec.outDim,
        k: first ? 0 : spec.inDim,
        aOff: first ? 0 : pz + this.layer[l - 1]!,
        bOff: spec.weightOffset,
        cOff: fam.e + this.layer[l]!,
        dOff: output ? this.target : z + this.layer[l]!,
        eOff: this.pred1,
        biasOff: Math.max(0, spec.biasOffset),
        partOff: part,
        flags:
          (spec.useBias ? JobFlag.BIAS : 0) |
          (first ? JobFlag.FIRST : 0) |
          (output ? JobFlag.OUTPUT : 0) |
          (output && loss === 'ce' ? JobFlag.LOGITS : 0),
        coef0: spec.scale,
      });
      part += 4 * this.errorTiles[l - 1]!;
    }
    return jobs;
  }

  private activityGradJobs(point: EvalPoint): Job[] {
    const { model, batch: B, fam } = this;
    const z = point === 'y' ? fam.y : fam.t;
    const jobs: Job[] = [];
    let part = (point === 'y' ? this.partA : this.partB).off;
    for (let l = 1; l < model.depth; l++) {
      const next = model.layers[l]!;
      jobs.push({
        m: B,
        n: next.inDim,
        k: next.outDim,
        aOff: fam.e + this.layer[l + 1]!,
        bOff: next.weightOffset,
        cOff: fam.k + this.layer[l]!,
        dOff: fam.e + this.layer[l]!,
        eOff: z + this.layer[l]!,
        fOff: this.layer[l]!,
        partOff: part,
        coef0: next.scale,
        coef1: 1 / B,
      });
      part += 4 * this.tileCount(B, next.inDim);
    }
    return jobs;
  }

  private paramGradJobs(): Job[] {
    const { model, batch: B, fam } = this;
    return model.layers.map((spec, i) => {
      const l = i + 1;
      return {
        m: spec.outDim,
        n: spec.inDim,
        k: B,
        aOff: fam.e + this.layer[l]!,
        bOff: l === 1 ? this.x : fam.py + this.layer[l - 1]!,
        cOff: spec.weightOffset,
        dOff: Math.max(0, spec.biasOffset),
        flags: spec.useBias ? JobFlag.BIAS : 0,
        coef0: -spec.scale / B,
      };
    });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Segment tables for reductions and recordings

  private layerEnergySegments(loss: Loss): SegmentSpec[] {
    const L = this.model.depth;
    const B = this.batch;
    // JPC's record_layers order: [E_L, E_2, …, E_{L−1}, E_1].
    const order = L === 1 ? [1] : [L, ...Array.from({ length: L - 2 }, (_, i) => i + 2), 1];
    const starts: number[] = [];
    let start = this.partE;
    for (let l = 1; l <= L; l++) {
      starts.push(start);
      start += 4 * this.errorTiles[l - 1]!;
    }
    return order.map((l, position) =>
      l === L && loss === 'ce'
        ? { off: this.partCe, count: B, stride: 4, out: position, scale: 1 / B }
        : { off: starts[l - 1]!, count: this.errorTiles[l - 1]!, stride: 4, out: position, scale: 0.5 / B },
    );
  }

  private totalEnergySegment(loss: Loss): SegmentSpec {
    const B = this.batch;
    const L = this.model.depth;
    const hiddenTiles = this.errorTiles.slice(0, L - 1).reduce((a, b) => a + b, 0);
    return loss === 'ce'
      ? { off: this.partE, count: hiddenTiles, stride: 4, out: this.scalar.total, scale: 0.5 / B, off2: this.partCe, count2: B, scale2: 1 / B }
      : { off: this.partE, count: hiddenTiles + this.errorTiles[L - 1]!, stride: 4, out: this.scalar.total, scale: 0.5 / B };
  }

  private segmentTable(key: string, segs: readonly SegmentSpec[]): GPUBuffer {
    const data = new ArrayBuffer(segs.length * SEGMENT_WORDS * 4);
    const u32 = new Uint32Array(data);
    const f32 = new Float32Array(data);
    segs.forEach((s, i) => {
      const o = i * SEGMENT_WORDS;
      u32[o] = s.off;
      u32[o + 1] = s.count;
      u32[o + 2] = s.stride;
      u32[o + 3] = s.out;
      f32[o + 4] = s.scale;
      u32[o + 5] = s.flags ?? 0;
      u32[o + 6] = s.off2 ?? 0;
      u32[o + 7] = s.count2 ?? 0;
      f32[o + 8] = s.scale2 ?? 0;
    });
    const buffer = this.storageFrom(data, `wpc.segments.${key}`);
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
    const buffer = this.runtime.device.createBuffer({ size: Math.max(16, words.byteLength), usage: UNIFORM_USAGE, label });
    this.runtime.device.queue.writeBuffer(buffer, 0, words);
    this.ownBuffers.push(buffer);
    return buffer;
  }

  private addTable(key: string, table: JobTable): GPUBuffer {
    this.workgroups.set(key, table.workgroups);
    return this.storageFrom(table.data, `wpc.jobs.${key}`);
  }

  private rowsUniform(rows: number, cols: number, predOff: number, partOff: number, ce: number): GPUBuffer {
    return this.uniformFrom(new Uint32Array([rows, cols, predOff, this.target, partOff, ce, 0, 0]), 'wpc.rows');
  }

  private reduceGroup(key: string, segs: readonly SegmentSpec[], src: GPUBuffer, dst: GPUBuffer): void {
    const segments = this.segmentTable(key, segs);
    this.groups.set(`reduce.${key}`, createBindGroup(this.runtime.device, this.k('reduce'), { segments, src, dst }));
  }

  private async prepare(): Promise<void> {
    const rt = this.runtime;
    const { act, tiles, model } = this;
    const L = model.depth;
    const train = this.purpose === 'train';
    const specs: Record<string, Parameters<Runtime['kernel']>[0]> = {
      forward: forwardKernel(act, tiles, 'forward', false),
      lossRows: outputKernel('loss_rows', false),
      reduce: reduceKernel(),
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
      for (const entry of SOLVER_ENTRIES) specs[`solver.${entry}`] = solverKernel(entry, act);
      for (const entry of RECORD_ENTRIES) specs[`record.${entry}`] = recordKernel(entry);
    }
    const compiled = await Promise.all(Object.entries(specs).map(async ([k, spec]) => [k, await rt.kernel(spec)] as const));
    for (const [k, kernel] of compiled) this.kernels.set(k, kernel);

    await rt.scoped('workspace bind groups', () => {
      const device = rt.device;
      const work = this.buffer;
      const params = model.params;
      const B = this.batch;
      for (let l = 1; l <= L; l++) {
        const jobs = this.addTable(`forward.${l}`, packJobs([this.forwardJob(l)], tiles));
        this.groups.set(`forward.${l}`, createBindGroup(device, this.k('forward'), { jobs, params, work }));
      }
      // The first layer's prediction alone, for activities handed in by the caller (y must stay theirs).
      const first = this.forwardJob(1);
      const predJobs = this.addTable('pred1', packJobs([{ ...first, cOff: this.pred1, flags: (first.flags ?? 0) & JobFlag.BIAS }], tiles));
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
      if (!train) return;

      const state = this.state;
      for (const loss of ['mse', 'ce'] as const) {
        for (const point of ['y', 't'] as const) {
          const jobs = this.addTable(`errors.${point}.${loss}`, packJobs(this.errorJobs(point, loss), tiles));
          this.groups.set(`errors.${point}.${loss}`, createBindGroup(device, this.k('errors'), { jobs, params, work }));
          this.groups.set(`errors.${point}.${loss}.gated`, createBindGroup(device, this.k('errors.gated'), { jobs, params, work, state }));
        }
        this.reduceGroup(`energies.${loss}`, this.layerEnergySegments(loss), work, this.scalars);
        this.reduceGroup(`total.${loss}`, [this.totalEnergySegment(loss)], work, this.scalars);
        // The recording tables: layer energies into a row of the records buffer.
        this.segmentTable(`record.${loss}`, this.layerEnergySegments(loss));
      }
      const ceRows = this.rowsUniform(B, model.outputDim, this.fam.e + this.layer[L]!, this.partCe, 1);
      this.groups.set('ce', createBindGroup(device, this.k('ce'), { rows: ceRows, work }));
      this.groups.set('ce.gated', createBindGroup(device, this.k('ce.gated'), { rows: ceRows, work, state }));
      for (const point of ['y', 't'] as const) {
        this.actJobs.set(point, this.addTable(`act.${point}`, packJobs(this.activityGradJobs(point), tiles)));
      }
      const pjobs = this.addTable('paramGrad', packJobs(this.paramGradJobs(), tiles));
      this.groups.set('paramGrad', createBindGroup(device, this.k('paramGrad'), { jobs: pjobs, work, grads: model.grads() }));
      for (const entry of SOLVER_ENTRIES) {
        this.groups.set(`solver.${entry}`, createBindGroup(device, this.k(`solver.${entry}`), { config: this.config, work, state }));
      }
      // Norms: mean_b ‖z_b‖ per layer (JPC's compute_activity_norms), ‖W_l‖ and ‖b_l‖ of parameters and gradients.
      for (let l = 1; l <= L; l++) {
        const rows = this.rowsUniform(B, model.dims[l]!, this.fam.y + this.layer[l]!, this.partRows + 4 * B * (l - 1), 0);
        this.groups.set(`rowNorms.${l}`, createBindGroup(device, this.k('rowNorms'), { rows, work }));
      }
      this.reduceGroup(
        'activityNorms',
        Array.from({ length: L }, (_, i) => ({ off: this.partRows + 4 * B * i, count: B, stride: 4, out: this.scalar.activityNorms + i, scale: 1 / B })),
        work,
        this.scalars,
      );
      const norms = (out: number): SegmentSpec[] =>
        model.layers.flatMap((spec, i) => [
          { off: spec.weightOffset, count: spec.inDim * spec.outDim, stride: 1, out: out + 2 * i, scale: 1, flags: ReduceFlag.SQUARE | ReduceFlag.SQRT },
          { off: Math.max(0, spec.biasOffset), count: spec.useBias ? spec.outDim : 0, stride: 1, out: out + 2 * i + 1, scale: 1, flags: ReduceFlag.SQUARE | ReduceFlag.SQRT },
        ]);
      this.reduceGroup('paramNorms', norms(this.scalar.paramNorms), params, this.scalars);
      this.reduceGroup('gradNorms', norms(this.scalar.gradNorms), model.grads(), this.scalars);
      this.buildStageGroups();
    });
  }

  private buildStageGroups(): void {
    const device = this.runtime.device;
    const { model } = this;
    const work = this.buffer;
    const state = this.state;
    const stage: GPUBufferBinding = { buffer: this.stageBuffer, offset: 0, size: 192 };
    for (const point of ['y', 't'] as const) {
      const jobs = this.actJobs.get(point)!;
      this.groups.set(`act.${point}`, createBindGroup(device, this.k('act'), { jobs, params: model.params, work, stage }));
      this.groups.set(`act.${point}.gated`, createBindGroup(device, this.k('act.gated'), { jobs, params: model.params, work, state, stage }));
    }
    this.stageGroupsFor = this.stageBuffer;
  }

  private k(name: string): CompiledKernel {
    const kernel = this.kernels.get(name);
    if (!kernel) throw new Error(`workspace: kernel ${name} is not prepared (purpose ${this.purpose})`);
    return kernel;
  }

  private g(name: string): GPUBindGroup {
    const group = this.groups.get(name);
    if (!group) throw new Error(`workspace: bind group ${name} is not prepared (purpose ${this.purpose})`);
    return group;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Recording

  private elementwiseGroups(n: number): number {
    return Math.ceil(n / SMALL_WG);
  }

  /** Feedforward pass from x: writes y (= z_1..z_L), φ(y) and pred1. L dispatches (layers depend on each other). */
  recordForward(rec: Recorder): void {
    for (let l = 1; l <= this.model.depth; l++) {
      rec.dispatch(this.k('forward'), this.g(`forward.${l}`), this.workgroups.get(`forward.${l}`)!);
    }
  }

  /** The first layer's prediction pred1 = s_1·f_1(x) alone (the input is clamped during inference). */
  recordFirstPrediction(rec: Recorder): void {
    rec.dispatch(this.k('forward'), this.g('pred1'), this.workgroups.get('pred1')!);
  }

  /** Prediction errors of every layer at `point` (and their energy partials). */
  recordErrors(rec: Recorder, point: EvalPoint, loss: Loss, gated: boolean): void {
    const suffix = gated ? '.gated' : '';
    rec.dispatch(this.k(`errors${suffix}`), this.g(`errors.${point}.${loss}${suffix}`), this.workgroups.get(`errors.${point}.${loss}`)!);
    if (loss === 'ce') rec.dispatch(this.k(`ce${suffix}`), this.g(`ce${suffix}`), this.elementwiseGroups(this.batch));
  }

  /** Activity gradients at `point`, fused with what stage record `record` says. */
  recordActivityGrad(rec: Recorder, point: EvalPoint, gated: boolean, record: number): void {
    if (this.model.depth < 2) return; // no hidden activities
    if (this.stageGroupsFor !== this.stageBuffer) this.buildStageGroups();
    const name = `act.${point}${gated ? '.gated' : ''}`;
    rec.dispatch(this.k(gated ? 'act.gated' : 'act'), this.g(name), this.workgroups.get(`act.${point}`)!, [record * UNIFORM_STRIDE]);
  }

  recordParamGrads(rec: Recorder): void {
    rec.dispatch(this.k('paramGrad'), this.g('paramGrad'), this.workgroups.get('paramGrad')!);
  }

  private recordReduce(rec: Recorder, key: string): void {
    rec.dispatch(this.k('reduce'), this.g(`reduce.${key}`), this.workgroups.get(`segments.${key}`)!);
  }

  /** Layer energies (JPC order) and their total into the scalars; needs `recordErrors(…, 'y', loss, false)` first. */
  recordEnergies(rec: Recorder, loss: Loss): void {
    this.recordReduce(rec, `energies.${loss}`);
    this.recordReduce(rec, `total.${loss}`);
  }

  /** JPC's mse_loss / cross_entropy_loss and compute_accuracy of the prediction z_L against the target. */
  recordLoss(rec: Recorder, loss: Loss): void {
    rec.dispatch(this.k('lossRows'), this.g(`lossRows.${loss}`), this.elementwiseGroups(this.batch));
    this.recordReduce(rec, 'loss');
  }

  /** mean_b ‖z_{l,b}‖ of every activity (JPC's compute_activity_norms) into the scalars. */
  recordActivityNorms(rec: Recorder): void {
    for (let l = 1; l <= this.model.depth; l++) rec.dispatch(this.k('rowNorms'), this.g(`rowNorms.${l}`), this.elementwiseGroups(this.batch));
    this.recordReduce(rec, 'activityNorms');
  }

  /** ‖W_l‖ and ‖b_l‖ (JPC's compute_param_norms) of the parameters, or of their last gradients. */
  recordParamNorms(rec: Recorder, of: 'params' | 'grads'): void {
    this.recordReduce(rec, of === 'params' ? 'paramNorms' : 'gradNorms');
  }

  recordSolver(rec: Recorder, entry: 'step_control' | 'hairer_h0' | 'hairer_dt0' | 'dummy_norm'): void {
    rec.dispatch(this.k(`solver.${entry}`), this.g(`solver.${entry}`), 1);
  }

  /** Elementwise solver kernels over the hidden layers (accept, hairer_probe, activate) or all (scaled_square). */
  recordElementwise(rec: Recorder, entry: 'accept' | 'hairer_probe' | 'activate' | 'scaled_square'): void {
    const n = entry === 'scaled_square' ? this.partD0.count : this.nHidden;
    if (n === 0) return;
    rec.dispatch(this.k(`solver.${entry}`), this.g(`solver.${entry}`), this.elementwiseGroups(n));
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
    const words = new Uint32Array(4 * (UNIFORM_STRIDE / 4));
    for (let when = 0; when < 4; when++) words.set([when, L, capacity, trajN, this.fam.y, 0, 0, 0], when * (UNIFORM_STRIDE / 4));
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
    if (trajectory) rec.dispatch(this.k('record.record_activities'), group('record_activities'), this.elementwiseGroups(this.nAll), offset);
    rec.dispatch(this.k('record.record_energies'), group('record_energies'), this.model.depth, offset);
    rec.dispatch(this.k('record.record_advance'), group('record_advance'), 1, offset);
  }

  private fused: { kernel: CompiledKernel; layers: GPUBuffer; cfg: GPUBuffer; coefs?: GPUBuffer; key?: string; group?: GPUBindGroup } | undefined;

  /**
   * Records a whole fixed-step Runge–Kutta solve as one single-workgroup dispatch (fused-solve.wgsl): `a` and
   * `b` of the stages evaluated, the step sizes. The coefficients upload only when `key` changes.
   */
  async recordFusedSolve(rec: Recorder, a: readonly (readonly number[])[], b: readonly number[], sizes: readonly number[], loss: Loss, key: string): Promise<void> {
    const rt = this.runtime;
    const { model, fam } = this;
    const L = model.depth;
    const wg = rt.adapter.isSoftware ? 64 : 256;
    if (!this.fused) {
      const kernel = await rt.kernel(fusedSolveKernel(this.act, wg));
      const table = new ArrayBuffer(L * FUSED_LAYER_WORDS * 4);
      const u = new Uint32Array(table);
      const f = new Float32Array(table);
      model.layers.forEach((spec, i) => {
        const o = i * FUSED_LAYER_WORDS;
        u.set([spec.inDim, spec.outDim, spec.weightOffset, Math.max(0, spec.biasOffset), spec.useBias ? 1 : 0], o);
        f[o + 5] = spec.scale;
        u[o + 6] = this.layer[i + 1]!;
      });
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
      fused.group = createBindGroup(rt.device, fused.kernel, { cfg: fused.cfg, params: model.params, work: this.buffer, layers: fused.layers, coefs: fused.coefs });
      fused.key = key;
    }
    const words = new ArrayBuffer(FUSED_WORDS * 4);
    const u = new Uint32Array(words);
    u.set([L, this.batch, s, sizes.length, loss === 'ce' ? 1 : 0, this.nAll, this.nHidden, fam.y, fam.py, fam.t, fam.pt, fam.k, fam.e, this.pred1, this.target, 0, s * s, s * s + s]);
    new Float32Array(words)[18] = 1 / this.batch;
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
   * the uniform buffer if needed; skipped when `key` names the records already there.
   */
  writeStageRecords(records: readonly StageRecord[], key: string): void {
    if (key === this.stageRecordsKey) return;
    const all = [GRAD_RECORD, ...records];
    if (all.length > this.stageCapacity) {
      const old = this.stageBuffer;
      this.stageBuffer = this.makeStageBuffer(Math.max(all.length, 2 * this.stageCapacity));
      old.destroy();
    }
    this.uploadRecords(all);
    this.stageRecordsKey = key;
  }

  private uploadRecords(records: readonly StageRecord[]): void {
    const words = UNIFORM_STRIDE / 4;
    const data = new ArrayBuffer(records.length * UNIFORM_STRIDE);
    const u32 = new Uint32Array(data);
    const f32 = new Float32Array(data);
    const { fam } = this;
    records.forEach((r, i) => {
      const o = i * words;
      const inPlace = r.candidate === 'in-place';
      u32.set([fam.y, fam.py, fam.t, fam.pt, fam.k, this.nAll, inPlace ? fam.y : fam.t, inPlace ? fam.py : fam.pt], o);
      f32[o + 8] = r.dt;
      f32[o + 9] = r.rtol;
      f32[o + 10] = r.atol;
      u32[o + 11] = r.index;
      u32[o + 12] = r.mode;
      u32[o + 13] = r.coef.length;
      u32[o + 14] = r.ecoef.length;
      u32[o + 15] = r.opt ?? 0;
      f32.set(r.coef, o + 16);
      f32.set(r.ecoef, o + 32);
    });
    this.runtime.device.queue.writeBuffer(this.stageBuffer, 0, data);
  }

  /** Element offset of z_l (1-based) in the activity family y. */
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
  }
}
