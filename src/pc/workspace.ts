/**
 * A workspace holds everything one model needs on the GPU for batches of one size: a single storage buffer
 * with every activity-shaped array (activities z, φ(z), solver stages, prediction errors, gradients, partial
 * sums), the job tables of the grouped layer kernels, the solver state, and bind groups built once and reused
 * by every step of every batch. Batches are written into it; nothing is allocated per step.
 *
 * Layout. Activities z_1..z_L (z_L is the output layer's dummy activity) are stored back to back, z_l taking
 * B·d_l elements at `layer(l)`. Every *family* below repeats that layout from its own base, so layer l of family
 * F is at F + layer(l) and elementwise work over all hidden layers is one flat range:
 *
 *   y   activities                        py   φ(y) (hidden layers)
 *   t   Heun's probe y + h·k1 / y1 (*)     pt   φ(t) / φ(y1) (*)
 *   k1  Heun's first stage / ∂F/∂z (*)     e    prediction errors e_l (e_L: y − pred, or ce's y − softmax·Σy)
 *
 * (*) Aliases that are never live at once: the Heun candidate y1 overwrites the probe t it was computed from
 * (each element is read and written by the same invocation), and the activity gradient of discrete updates
 * uses k1's slot. Besides: x (input), pred1 (the first layer's prediction, fixed during inference because x
 * is clamped), target, partial-sum regions and a few scalars.
 */
import {
  type Activation,
  type Stage,
  type TileConfig,
  JobFlag,
  SMALL_WG,
  SCALED_SQUARE_CHUNK,
  activityGradKernel,
  defaultTiles,
  forwardKernel,
  outputKernel,
  paramGradKernel,
  reduceKernel,
  solverKernel,
} from '../kernels/index.js';
import { BufferUsage, UNIFORM_USAGE } from '../runtime/flags.js';
import { type CompiledKernel, createBindGroup } from '../runtime/kernel.js';
import type { Recorder } from '../runtime/recorder.js';
import { type Runtime, SleepEstimator } from '../runtime/runtime.js';
import { type Job, type JobTable, packJobs } from './layer-jobs.js';
import type { Model } from './model.js';

export type Loss = 'mse' | 'ce';
export type EvalPoint = 'y' | 't';
/** `eval` workspaces only hold what a feedforward pass and its loss need (test batches can be large). */
export type Purpose = 'train' | 'eval';

/** Bytes between records of the stage uniform (≥ every adapter's minUniformBufferOffsetAlignment). */
export const STAGE_STRIDE = 256;
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
} as const;
/** Words of the solver config uniform (struct Config in solver.wgsl). */
export const CONFIG_WORDS = 32;

const ALIGN = 64; // elements: region starts on 256-byte boundaries

interface Families {
  y: number;
  py: number;
  t: number;
  pt: number;
  k1: number;
  e: number;
}

/** One stage-uniform record (struct Stage in activity-grad.wgsl). */
export interface StageRecord {
  dt: number;
  rtol: number;
  atol: number;
  /** Where the Heun candidate goes: the probe's slot (adaptive: decided later) or y itself (constant steps). */
  candidate: 'probe' | 'in-place';
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
  readonly x: number;
  readonly pred1: number;
  readonly target: number;
  /** Scalars: [0, L) layer energies in JPC's `record_layers` order, then total energy, loss, accuracy (%). */
  readonly scalars: number;
  readonly scalar: { energies: number; total: number; loss: number; accuracy: number };
  readonly buffer: GPUBuffer;
  readonly state: GPUBuffer;
  private readonly config: GPUBuffer;
  private stageBuffer: GPUBuffer;
  private stageCapacity = 0;
  private readonly partE: number;
  private readonly partCe: number;
  private readonly partS: number;
  private readonly partD0: number;
  private readonly partLoss: number;
  private readonly errorTiles: number[];
  private readonly actTiles: number;
  private readonly kernels = new Map<string, CompiledKernel>();
  private readonly groups = new Map<string, GPUBindGroup>();
  private readonly workgroups = new Map<string, number>();
  private readonly ownBuffers: GPUBuffer[] = [];
  private stageGroupsFor: GPUBuffer | undefined;
  /** What the last adaptive solve on this workspace took, to size the first chunk and the host's sleep. */
  readonly pidHistory = { lastSteps: 0, sleep: new SleepEstimator() };
  private readonly actJobs = new Map<EvalPoint, GPUBuffer>();

  private constructor(
    readonly model: Model,
    readonly batch: number,
    readonly purpose: Purpose,
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
    this.errorTiles = [];
    for (let l = 1; l <= L; l++) this.errorTiles.push(this.tileCount(B, dims[l]!));
    this.actTiles = Array.from({ length: L - 1 }, (_, i) => this.tileCount(B, dims[i + 1]!)).reduce((a, b) => a + b, 0);

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
      k1: take(n, train),
      e: take(n, train),
    };
    this.x = take(B * dims[0]!);
    this.pred1 = take(B * dims[1]!);
    this.target = take(B * dims[L]!);
    this.partE = take(2 * this.errorTiles.reduce((a, b) => a + b, 0), train);
    this.partCe = take(2 * B, train);
    this.partS = take(2 * Math.max(1, this.actTiles), train);
    this.partD0 = take(2 * Math.ceil(n / SCALED_SQUARE_CHUNK), train);
    this.partLoss = take(2 * B);
    this.scalars = take(L + 3);
    this.scalar = { energies: this.scalars, total: this.scalars + L, loss: this.scalars + L + 1, accuracy: this.scalars + L + 2 };

    this.buffer = rt.createStorageBuffer(at * 4, `wpc.workspace[B=${B}]`);
    this.state = rt.createStorageBuffer(STATE_WORDS * 4, 'wpc.solver-state');
    this.config = rt.device.createBuffer({ size: CONFIG_WORDS * 4, usage: UNIFORM_USAGE, label: 'wpc.solver-config' });
    this.stageBuffer = this.makeStageBuffer(1);
    this.ownBuffers.push(this.buffer, this.state, this.config);
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

  /** Builds (or returns the cached) workspace of `model` for batches of `batch` examples. */
  static get(model: Model, batch: number, purpose: Purpose): Promise<Workspace> {
    // A training workspace also serves evaluation at the same batch size.
    const key = `${batch}:${purpose}`;
    const reuse = model.workspaces.get(`${batch}:train`) ?? model.workspaces.get(key);
    if (reuse) return reuse;
    const ws = (async () => {
      const w = await model.runtime.scoped(`workspace for batch ${batch}`, () => new Workspace(model, batch, purpose));
      await w.prepare();
      return w;
    })();
    model.workspaces.set(key, ws);
    ws.catch(() => model.workspaces.delete(key));
    // Keep at most a few workspaces per model (e.g. the training batch, a test batch, a last partial batch).
    if (model.workspaces.size > 4) {
      const oldest = model.workspaces.keys().next().value!;
      const old = model.workspaces.get(oldest)!;
      model.workspaces.delete(oldest);
      void old.then((w) => w.dispose(), () => undefined);
    }
    return ws;
  }

  private tileCount(m: number, n: number): number {
    return Math.ceil(m / this.tiles.tm) * Math.ceil(n / this.tiles.tn);
  }

  private makeStageBuffer(records: number): GPUBuffer {
    const buffer = this.runtime.device.createBuffer({
      size: records * STAGE_STRIDE,
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
      part += 2 * this.errorTiles[l - 1]!;
    }
    return jobs;
  }

  private activityGradJobs(point: EvalPoint): Job[] {
    const { model, batch: B, fam } = this;
    const z = point === 'y' ? fam.y : fam.t;
    const jobs: Job[] = [];
    let part = this.partS;
    for (let l = 1; l < model.depth; l++) {
      const next = model.layers[l]!;
      jobs.push({
        m: B,
        n: next.inDim,
        k: next.outDim,
        aOff: fam.e + this.layer[l + 1]!,
        bOff: next.weightOffset,
        cOff: fam.k1 + this.layer[l]!,
        dOff: fam.e + this.layer[l]!,
        eOff: z + this.layer[l]!,
        fOff: this.layer[l]!,
        partOff: part,
        coef0: next.scale,
        coef1: 1 / B,
      });
      part += 2 * this.tileCount(B, next.inDim);
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
      specs.paramGrad = paramGradKernel(tiles);
      for (const stage of ['grad', 'euler', 'heun1', 'heun2', 'hairer1', 'hairer2'] as const) {
        specs[`act.${stage}`] = activityGradKernel(act, tiles, stage, false);
      }
      specs['act.heun1.gated'] = activityGradKernel(act, tiles, 'heun1', true);
      specs['act.heun2.gated'] = activityGradKernel(act, tiles, 'heun2', true);
      for (const entry of ['pid_control', 'accept', 'scaled_square', 'hairer_h0', 'hairer_probe', 'hairer_dt0', 'activate'] as const) {
        specs[`solver.${entry}`] = solverKernel(entry, act);
      }
    }
    const compiled = await Promise.all(Object.entries(specs).map(async ([k, spec]) => [k, await rt.kernel(spec)] as const));
    for (const [k, kernel] of compiled) this.kernels.set(k, kernel);

    await rt.scoped('workspace bind groups', () => {
      const device = rt.device;
      const work = this.buffer;
      const params = model.params;
      for (let l = 1; l <= L; l++) {
        const jobs = this.addTable(`forward.${l}`, packJobs([this.forwardJob(l)], tiles));
        this.groups.set(`forward.${l}`, createBindGroup(device, this.k('forward'), { jobs, params, work }));
      }
      // The first layer's prediction alone, for activities handed in by the caller (y must stay theirs).
      const first = this.forwardJob(1);
      const predJobs = this.addTable('pred1', packJobs([{ ...first, cOff: this.pred1, flags: (first.flags ?? 0) & JobFlag.BIAS }], tiles));
      this.groups.set('pred1', createBindGroup(device, this.k('forward'), { jobs: predJobs, params, work }));
      const lossRows = this.rowsUniform(this.fam.y + this.layer[L]!, this.partLoss, 0);
      const lossRowsCe = this.rowsUniform(this.fam.y + this.layer[L]!, this.partLoss, 1);
      this.groups.set('lossRows.mse', createBindGroup(device, this.k('lossRows'), { rows: lossRows, work }));
      this.groups.set('lossRows.ce', createBindGroup(device, this.k('lossRows'), { rows: lossRowsCe, work }));
      this.addSegments('loss', [
        { off: this.partLoss, count: this.batch, stride: 2, out: this.scalar.loss, scale: 1 / this.batch },
        { off: this.partLoss + 1, count: this.batch, stride: 2, out: this.scalar.accuracy, scale: 100 / this.batch },
      ]);
      if (!train) return;

      const state = this.state;
      for (const loss of ['mse', 'ce'] as const) {
        for (const point of ['y', 't'] as const) {
          const jobs = this.addTable(`errors.${point}.${loss}`, packJobs(this.errorJobs(point, loss), tiles));
          this.groups.set(`errors.${point}.${loss}`, createBindGroup(device, this.k('errors'), { jobs, params, work }));
          this.groups.set(`errors.${point}.${loss}.gated`, createBindGroup(device, this.k('errors.gated'), { jobs, params, work, state }));
        }
        this.addSegments(`energies.${loss}`, this.energySegments(loss));
      }
      this.addSegments('total', [{ off: this.scalar.energies, count: L, stride: 1, out: this.scalar.total, scale: 1 }]);
      const ceRows = this.rowsUniform(this.fam.e + this.layer[L]!, this.partCe, 1);
      this.groups.set('ce', createBindGroup(device, this.k('ce'), { rows: ceRows, work }));
      this.groups.set('ce.gated', createBindGroup(device, this.k('ce.gated'), { rows: ceRows, work, state }));
      for (const point of ['y', 't'] as const) {
        this.actJobs.set(point, this.addTable(`act.${point}`, packJobs(this.activityGradJobs(point), tiles)));
      }
      const pjobs = this.addTable('paramGrad', packJobs(this.paramGradJobs(), tiles));
      this.groups.set('paramGrad', createBindGroup(device, this.k('paramGrad'), { jobs: pjobs, work, grads: model.grads() }));
      for (const entry of ['pid_control', 'accept', 'scaled_square', 'hairer_h0', 'hairer_probe', 'hairer_dt0', 'activate'] as const) {
        this.groups.set(`solver.${entry}`, createBindGroup(device, this.k(`solver.${entry}`), { config: this.config, work, state }));
      }
      this.buildStageGroups();
    });
  }

  private buildStageGroups(): void {
    const device = this.runtime.device;
    const { model } = this;
    const work = this.buffer;
    const state = this.state;
    const stage: GPUBufferBinding = { buffer: this.stageBuffer, offset: 0, size: 48 };
    const jobs = (point: EvalPoint) => this.actJobs.get(point)!;
    const point: Record<Stage, EvalPoint> = { grad: 'y', euler: 'y', heun1: 'y', heun2: 't', hairer1: 'y', hairer2: 't' };
    for (const s of ['grad', 'euler', 'heun1', 'heun2', 'hairer1', 'hairer2'] as const) {
      this.groups.set(`act.${s}`, createBindGroup(device, this.k(`act.${s}`), { jobs: jobs(point[s]), params: model.params, work, stage }));
    }
    for (const s of ['heun1', 'heun2'] as const) {
      this.groups.set(`act.${s}.gated`, createBindGroup(device, this.k(`act.${s}.gated`), { jobs: jobs(point[s]), params: model.params, work, state, stage }));
    }
    this.stageGroupsFor = this.stageBuffer;
  }

  private energySegments(loss: Loss): { off: number; count: number; stride: number; out: number; scale: number }[] {
    const L = this.model.depth;
    const B = this.batch;
    const segs: { off: number; count: number; stride: number; out: number; scale: number }[] = [];
    // JPC's record_layers order: [E_L, E_2, …, E_{L−1}, E_1].
    const order = L === 1 ? [1] : [L, ...Array.from({ length: L - 2 }, (_, i) => i + 2), 1];
    let start = this.partE;
    const starts: number[] = [];
    for (let l = 1; l <= L; l++) {
      starts.push(start);
      start += 2 * this.errorTiles[l - 1]!;
    }
    order.forEach((l, position) => {
      const out = this.scalar.energies + position;
      if (l === L && loss === 'ce') segs.push({ off: this.partCe, count: B, stride: 2, out, scale: 1 / B });
      else segs.push({ off: starts[l - 1]!, count: this.errorTiles[l - 1]!, stride: 2, out, scale: 0.5 / B });
    });
    return segs;
  }

  private addSegments(key: string, segs: { off: number; count: number; stride: number; out: number; scale: number }[]): void {
    const data = new ArrayBuffer(segs.length * 32);
    const u32 = new Uint32Array(data);
    const f32 = new Float32Array(data);
    segs.forEach((s, i) => {
      u32[i * 8] = s.off;
      u32[i * 8 + 1] = s.count;
      u32[i * 8 + 2] = s.stride;
      u32[i * 8 + 3] = s.out;
      f32[i * 8 + 4] = s.scale;
    });
    const segments = this.storageFrom(data, `wpc.segments.${key}`);
    this.groups.set(`reduce.${key}`, createBindGroup(this.runtime.device, this.k('reduce'), { segments, work: this.buffer }));
    this.workgroups.set(`reduce.${key}`, segs.length);
  }

  private rowsUniform(predOff: number, partOff: number, ce: number): GPUBuffer {
    const L = this.model.depth;
    return this.uniformFrom(
      new Uint32Array([this.batch, this.model.dims[L]!, predOff, this.target, partOff, ce, 0, 0]),
      'wpc.rows',
    );
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

  /** Activity gradients fused with `stage`, evaluated where the stage says (heun2/hairer2 at the probe t). */
  recordActivityGrad(rec: Recorder, stage: Stage, gated: boolean, record = 0): void {
    if (this.model.depth < 2) return; // no hidden activities
    if (this.stageGroupsFor !== this.stageBuffer) this.buildStageGroups();
    const point: EvalPoint = stage === 'heun2' || stage === 'hairer2' ? 't' : 'y';
    const name = `act.${stage}${gated ? '.gated' : ''}`;
    rec.dispatch(this.k(name), this.g(name), this.workgroups.get(`act.${point}`)!, [record * STAGE_STRIDE]);
  }

  recordParamGrads(rec: Recorder): void {
    rec.dispatch(this.k('paramGrad'), this.g('paramGrad'), this.workgroups.get('paramGrad')!);
  }

  /** Layer energies (JPC order) and their total into the scalars; needs `recordErrors(…, 'y', loss, false)` first. */
  recordEnergies(rec: Recorder, loss: Loss): void {
    rec.dispatch(this.k('reduce'), this.g(`reduce.energies.${loss}`), this.workgroups.get(`reduce.energies.${loss}`)!);
    rec.dispatch(this.k('reduce'), this.g('reduce.total'), 1);
  }

  /** JPC's mse_loss / cross_entropy_loss and compute_accuracy of the prediction z_L against the target. */
  recordLoss(rec: Recorder, loss: Loss): void {
    rec.dispatch(this.k('lossRows'), this.g(`lossRows.${loss}`), this.elementwiseGroups(this.batch));
    rec.dispatch(this.k('reduce'), this.g('reduce.loss'), 2);
  }

  recordSolver(rec: Recorder, entry: 'pid_control' | 'hairer_h0' | 'hairer_dt0'): void {
    rec.dispatch(this.k(`solver.${entry}`), this.g(`solver.${entry}`), 1);
  }

  /** Elementwise solver kernels over the hidden layers (accept, hairer_probe, activate) or all (scaled_square). */
  recordElementwise(rec: Recorder, entry: 'accept' | 'hairer_probe' | 'activate' | 'scaled_square'): void {
    const n = entry === 'scaled_square' ? Math.ceil(this.nAll / SCALED_SQUARE_CHUNK) : this.nHidden;
    if (n === 0) return;
    rec.dispatch(this.k(`solver.${entry}`), this.g(`solver.${entry}`), this.elementwiseGroups(n));
  }

  /** Partial pairs written by the activity-gradient stages, and by scaled_square. */
  get stagePartials(): { off: number; count: number } {
    return { off: this.partS, count: this.actTiles };
  }

  get squarePartials(): { off: number; count: number } {
    return { off: this.partD0, count: Math.ceil(this.nAll / SCALED_SQUARE_CHUNK) };
  }

  /** Writes the solver config uniform (queue-ordered: do it before recording the solve's commands). */
  writeConfig(words: ArrayBuffer): void {
    this.runtime.device.queue.writeBuffer(this.config, 0, words);
  }

  /** Writes stage records 0..n−1 (growing the uniform buffer if needed). */
  writeStageRecords(records: readonly StageRecord[]): void {
    if (records.length > this.stageCapacity) {
      const old = this.stageBuffer;
      this.stageBuffer = this.makeStageBuffer(Math.max(records.length, 2 * this.stageCapacity));
      old.destroy();
    }
    const words = STAGE_STRIDE / 4;
    const data = new ArrayBuffer(records.length * STAGE_STRIDE);
    const u32 = new Uint32Array(data);
    const f32 = new Float32Array(data);
    const { fam } = this;
    records.forEach((r, i) => {
      const o = i * words;
      const inPlace = r.candidate === 'in-place';
      u32.set([fam.y, fam.py, fam.t, fam.pt, fam.k1, inPlace ? fam.y : fam.t, inPlace ? fam.py : fam.pt, 0], o);
      f32[o + 8] = r.dt;
      f32[o + 9] = r.rtol;
      f32[o + 10] = r.atol;
    });
    this.runtime.device.queue.writeBuffer(this.stageBuffer, 0, data);
  }

  /** Element offset of z_l (1-based) in the activity family y. */
  activityOffset(l: number): number {
    return this.fam.y + this.layer[l]!;
  }

  /** Element offset of ∂F/∂z_l after a `grad` stage. */
  gradOffset(l: number): number {
    return this.fam.k1 + this.layer[l]!;
  }

  dispose(): void {
    for (const b of this.ownBuffers) b.destroy();
    this.stageBuffer.destroy();
  }
}
