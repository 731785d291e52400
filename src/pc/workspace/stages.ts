/**
 * The stage records of a workspace: one uniform record per Runge–Kutta stage (or discrete-optimiser step) that
 * the activity-gradient kernel reads through a dynamic offset (struct Stage in activity-grad.wgsl). Record 0 is
 * always the plain activity gradient; a solve writes its records at 1..n once, and a later solve with the same
 * records skips the upload.
 */
import { StageMode } from '../../kernels/index.js';
import { BufferUsage } from '../../runtime/flags.js';
import { bufferLimit } from '../../runtime/limits.js';
import type { Runtime } from '../../runtime/runtime.js';

/** Bytes between records of the stage and recording uniforms (≥ every adapter's minUniformBufferOffsetAlignment). */
export const UNIFORM_STRIDE = 256;
/** Bytes of a stage record (struct Stage in activity-grad.wgsl). */
export const STAGE_BYTES = 208;

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

/** The element offsets a stage record names: the activity families and the size of the state. */
interface StageFamilies {
  y: number;
  py: number;
  t: number;
  pt: number;
  k: number;
  nAll: number;
}

export class StageRecords {
  /** The uniform buffer (replaced when it grows: bind groups over it follow `buffer`). */
  buffer: GPUBuffer;
  private capacity = 0;
  /** The records last uploaded (index 0 = the gradient record) and the activity decay written into them. */
  private records: readonly StageRecord[] = [GRAD_RECORD];
  private decay = 0;
  /** Names the records last written (a solve with the same ones skips the upload). */
  private key = '';

  constructor(
    private readonly runtime: Runtime,
    private readonly fam: StageFamilies,
  ) {
    this.buffer = this.makeBuffer(1);
    this.upload([GRAD_RECORD], 0);
  }

  private makeBuffer(records: number): GPUBuffer {
    const buffer = this.runtime.device.createBuffer({
      size: records * UNIFORM_STRIDE,
      usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST,
      label: 'wpc.stage-records',
    });
    this.capacity = records;
    return buffer;
  }

  /** Record `index` as last uploaded, if there is one. */
  at(index: number): StageRecord | undefined {
    return this.records[index];
  }

  /**
   * Writes a solver's records at indices 1..n, growing the buffer if needed; skipped when `key` names the records
   * already there with the same `decay` (`build` is then not called: a free-running solve's records are one object
   * per stage of every step, too many to build per solve).
   */
  write(key: string, build: () => readonly StageRecord[], decay: number): void {
    if (key === this.key && this.decay === decay) return;
    const all = [GRAD_RECORD, ...build()];
    if (all.length > this.capacity) {
      const old = this.buffer;
      // Room to grow (doubling), within what the device allows in one buffer (checkSolveFits checked all.length).
      const most = Math.floor(bufferLimit(this.runtime.limits).bytes / UNIFORM_STRIDE);
      this.buffer = this.makeBuffer(Math.max(all.length, Math.min(2 * this.capacity, most)));
      old.destroy();
    }
    this.upload(all, decay);
    this.key = key;
  }

  /** Rewrites the records already there with another activity decay. */
  setDecay(decay: number): void {
    if (decay !== this.decay) this.upload(this.records, decay);
  }

  private upload(records: readonly StageRecord[], decay: number): void {
    const words = UNIFORM_STRIDE / 4;
    const data = new ArrayBuffer(records.length * UNIFORM_STRIDE);
    const u32 = new Uint32Array(data);
    const f32 = new Float32Array(data);
    const { fam } = this;
    records.forEach((r, i) => {
      const o = i * words;
      const inPlace = r.candidate === 'in-place';
      u32.set([fam.y, fam.py, fam.t, fam.pt, fam.k, fam.nAll, inPlace ? fam.y : fam.t, inPlace ? fam.py : fam.pt], o);
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
      f32[o + 48] = decay;
    });
    this.runtime.device.queue.writeBuffer(this.buffer, 0, data);
    this.records = records;
    this.decay = decay;
  }

  dispose(): void {
    this.buffer.destroy();
  }
}
