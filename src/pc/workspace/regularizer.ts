/**
 * The regularisers of JPC's energy on a workspace: weight decay wd/2·‖W‖², the spectral penalty
 * sp/2·‖WᵀW − I‖² (on each layer's weight matrix) and activity decay ad/(2B)·‖z‖². Their gradients are added to
 * the parameter gradients (the activity decay's is folded into the stage records), their energies into the
 * total. Kernels compile on first use (`ensureKernels`); buffers follow the terms (the spectral scratch holds
 * every layer's Gram matrix).
 */
import { elementwiseGroups } from '../../kernels/parts.js';
import { ReduceFlag } from '../../kernels/reduce.js';
import { type RegularizeEntry, regularizeKernel } from '../../kernels/regularize.js';
import { UNIFORM_USAGE } from '../../runtime/flags.js';
import type { CompiledKernel } from '../../runtime/kernel.js';
import type { Recorder } from '../../runtime/recorder.js';
import type { Runtime } from '../../runtime/runtime.js';
import { weightMatrix } from '../layers/index.js';
import type { Model } from '../model.js';
import { type Dispatch, bind, record } from './handles.js';
import { REG_WORDS, type SegmentSpec, UNIFORM_STRIDE, packRegs } from '../../kernels/structs.js';
import type { SegmentTable } from './tables.js';
import type { EnergyTerms } from './terms.js';

const ENTRIES: readonly RegularizeEntry[] = ['weight_decay', 'gram', 'spectral'];

/** What the regulariser reads of its workspace. */
interface RegularizerHost {
  readonly runtime: Runtime;
  readonly model: Model;
  readonly batch: number;
  /** The workspace buffer, the activities y in it and their count. */
  readonly work: GPUBuffer;
  readonly y: number;
  readonly nAll: number;
  readonly scalars: GPUBuffer;
  /** First of the L + 2 regulariser slots of the scalars, and the total they are added into. */
  readonly regsSlot: number;
  readonly totalSlot: number;
  readonly reduceKernel: CompiledKernel;
  readonly accumulateKernel: CompiledKernel;
  /** Uploads a segment table (freed with the workspace). */
  segmentTable(label: string, segs: readonly SegmentSpec[]): SegmentTable;
  /** Rewrites a segment table in place. */
  rewriteSegments(table: SegmentTable, segs: readonly SegmentSpec[]): void;
  /** Buffers freed with the workspace. */
  own(buffer: GPUBuffer): void;
}

interface State {
  key: string;
  uniform: GPUBuffer;
  scratch: GPUBuffer;
  scratchSize: number;
  reduce: { weight: Dispatch; spectral: Dispatch; activity: Dispatch };
  apply: Record<RegularizeEntry, Dispatch>;
}

export class Regularizer {
  private kernels: Record<RegularizeEntry, CompiledKernel> | undefined;
  private state: State | undefined;
  private tables: { weight: SegmentTable; spectral: SegmentTable; activity: SegmentTable } | undefined;
  private readonly accumulate: Dispatch;
  /** Each layer's weight matrix, and the floats of all their Gram matrices WᵀW (the spectral scratch). */
  private readonly weights: readonly { offset: number; rows: number; cols: number }[];
  private readonly gramFloats: number;

  constructor(private readonly host: RegularizerHost) {
    const { runtime, scalars, regsSlot, totalSlot, model } = host;
    this.weights = model.layers.map(weightMatrix);
    this.gramFloats = this.weights.reduce((s, w) => s + w.cols ** 2, 0);
    // Every slot is added into the total (unused ones are cleared to 0).
    const acc = host.segmentTable('regs.accumulate', [
      { off: regsSlot, count: model.depth + 2, stride: 1, out: totalSlot, scale: 1 },
    ]);
    this.accumulate = bind(runtime.device, host.accumulateKernel, { segments: acc.buffer, dst: scalars }, 1);
  }

  /** Whether `terms` have regularisers (whose kernels must be compiled first: `ensureKernels`). */
  static needed(terms: EnergyTerms): boolean {
    return terms.weightDecay !== 0 || terms.spectralPenalty !== 0 || terms.activityDecay !== 0;
  }

  /** Compiles the regulariser kernels (once). */
  async ensureKernels(): Promise<void> {
    if (this.kernels) return;
    const compiled = await Promise.all(ENTRIES.map((e) => this.host.runtime.kernel(regularizeKernel(e))));
    this.kernels = { weight_decay: compiled[0]!, gram: compiled[1]!, spectral: compiled[2]! };
  }

  private segments(which: 'weight' | 'spectral' | 'activity', terms: EnergyTerms): SegmentSpec[] {
    const { weightDecay: wd, spectralPenalty: sp, activityDecay: ad } = terms;
    const { model, regsSlot: regs } = this.host;
    const L = model.depth;
    if (which === 'weight') {
      return this.weights.map((w, l) => ({
        off: w.offset,
        count: w.rows * w.cols,
        stride: 1,
        out: regs + l,
        scale: wd / 2,
        flags: ReduceFlag.SQUARE,
      }));
    }
    if (which === 'spectral') {
      const count = sp !== 0 ? this.gramFloats : 0;
      return [{ off: 0, count, stride: 1, out: regs + L, scale: sp / 2, flags: ReduceFlag.SQUARE }];
    }
    return [
      {
        off: this.host.y,
        count: this.host.nAll,
        stride: 1,
        out: regs + L + 1,
        scale: ad / (2 * this.host.batch),
        flags: ReduceFlag.SQUARE,
      },
    ];
  }

  /** The buffers and records for `terms` (rebuilt when the spectral scratch must grow, rewritten when they change). */
  private stateFor(terms: EnergyTerms): State {
    const host = this.host;
    const { runtime, model } = host;
    const device = runtime.device;
    const kernels = this.kernels;
    if (!kernels) throw new Error('workspace: the regulariser kernels are not compiled (ensureKernels)');
    const L = model.depth;
    const { weightDecay: wd, spectralPenalty: sp } = terms;
    const scratchSize = sp !== 0 ? this.gramFloats : 1;
    let state = this.state;
    if (!state || state.scratchSize < scratchSize) {
      state?.scratch.destroy();
      const uniform =
        state?.uniform ??
        device.createBuffer({ size: 2 * L * UNIFORM_STRIDE, usage: UNIFORM_USAGE, label: 'wpc.regularize' });
      if (!state) host.own(uniform);
      const scratch = runtime.createStorageBuffer(scratchSize * 4, 'wpc.regularize.scratch');
      this.tables ??= {
        weight: host.segmentTable('regs.weight', this.segments('weight', terms)),
        spectral: host.segmentTable('regs.spectral', this.segments('spectral', terms)),
        activity: host.segmentTable('regs.activity', this.segments('activity', terms)),
      };
      const tables = this.tables;
      const reduceOver = (table: SegmentTable, src: GPUBuffer): Dispatch =>
        bind(device, host.reduceKernel, { segments: table.buffer, src, dst: host.scalars }, table.workgroups);
      const over = (entry: RegularizeEntry): Dispatch =>
        bind(
          device,
          kernels[entry],
          {
            reg: { buffer: uniform, offset: 0, size: REG_WORDS * 4 },
            params: model.params,
            grads: model.grads(),
            scratch,
          },
          0,
        );
      state = this.state = {
        key: '',
        uniform,
        scratch,
        scratchSize,
        reduce: {
          weight: reduceOver(tables.weight, model.params),
          spectral: reduceOver(tables.spectral, scratch),
          activity: reduceOver(tables.activity, host.work),
        },
        apply: { weight_decay: over('weight_decay'), gram: over('gram'), spectral: over('spectral') },
      };
    }
    const key = `${wd}:${sp}:${terms.activityDecay}`;
    if (state.key !== key) {
      // Records 0..L−1: weight decay of each layer; L..2L−1: its spectral penalty, with D_l = W_lᵀW_l − I at dOff.
      const layers: { wOff: number; outDim: number; inDim: number; dOff: number }[] = [];
      let d = 0;
      for (const w of this.weights) {
        layers.push({ wOff: w.offset, outDim: w.rows, inDim: w.cols, dOff: d });
        d += w.cols * w.cols;
      }
      const records = [...layers.map((r) => ({ ...r, coef: wd })), ...layers.map((r) => ({ ...r, coef: 2 * sp }))];
      device.queue.writeBuffer(state.uniform, 0, packRegs(records));
      const tables = this.tables!;
      host.rewriteSegments(tables.weight, this.segments('weight', terms));
      host.rewriteSegments(tables.spectral, this.segments('spectral', terms));
      host.rewriteSegments(tables.activity, this.segments('activity', terms));
      state.key = key;
    }
    return state;
  }

  private recordGram(rec: Recorder, state: State): void {
    const L = this.host.model.depth;
    this.weights.forEach((w, l) => {
      record(rec, state.apply.gram, [(L + l) * UNIFORM_STRIDE], elementwiseGroups(w.cols ** 2));
    });
  }

  /** Adds the weight regularisers' gradients (wd·W, 2·sp·W(WᵀW − I)) to the parameter gradients. */
  recordGrads(rec: Recorder, terms: EnergyTerms): void {
    const { weightDecay: wd, spectralPenalty: sp } = terms;
    if (wd === 0 && sp === 0) return;
    const state = this.stateFor(terms);
    const L = this.host.model.depth;
    const size = (w: { rows: number; cols: number }) => elementwiseGroups(w.rows * w.cols);
    if (sp !== 0) {
      this.recordGram(rec, state);
      this.weights.forEach((w, l) => {
        record(rec, state.apply.spectral, [(L + l) * UNIFORM_STRIDE], size(w));
      });
    }
    if (wd !== 0) {
      this.weights.forEach((w, l) => {
        record(rec, state.apply.weight_decay, [l * UNIFORM_STRIDE], size(w));
      });
    }
  }

  /** Adds the regularisers' energies (at the activities in y) to the total in the scalars. */
  recordEnergies(rec: Recorder, terms: EnergyTerms): void {
    if (!Regularizer.needed(terms)) return;
    const { weightDecay: wd, spectralPenalty: sp, activityDecay: ad } = terms;
    const state = this.stateFor(terms);
    const L = this.host.model.depth;
    rec.clear(this.host.scalars, this.host.regsSlot * 4, (L + 2) * 4);
    if (wd !== 0) record(rec, state.reduce.weight);
    if (sp !== 0) {
      this.recordGram(rec, state);
      record(rec, state.reduce.spectral);
    }
    if (ad !== 0) record(rec, state.reduce.activity);
    record(rec, this.accumulate);
  }

  dispose(): void {
    this.state?.scratch.destroy();
  }
}
