/**
 * The stage records of a workspace: one uniform record per Runge–Kutta stage (or discrete-optimiser step) that
 * the activity-gradient kernel reads through a dynamic offset (struct Stage in activity-grad.wgsl). Record 0 is
 * always the plain activity gradient; a solve writes its records at 1..n once, and a later solve with the same
 * records skips the upload.
 */
import { StageMode } from '../../kernels/layer-matmul.js';
import { type StageRecord, UNIFORM_STRIDE, packStages } from '../../kernels/structs.js';
import { BufferUsage } from '../../runtime/flags.js';
import { bufferLimit } from '../../runtime/limits.js';
import type { Runtime } from '../../runtime/runtime.js';

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
interface StageLayout {
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
    private readonly fam: StageLayout,
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
    const { y, py, t, pt, k, nAll } = this.fam;
    const data = packStages(records, { y, py, t, pt, k, kStride: nAll, decay });
    this.runtime.device.queue.writeBuffer(this.buffer, 0, data);
    this.records = records;
    this.decay = decay;
  }

  dispose(): void {
    this.buffer.destroy();
  }
}
