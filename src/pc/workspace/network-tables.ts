/**
 * The job and segment tables of a network on a workspace, built from the layout and the model alone: which
 * layer's work reads and writes where (each layer's jobs come from its kind), and which partial sums make each
 * energy. The workspace uploads them once; the tables that depend on λ are rebuilt when it changes.
 */
import type { Job } from '../../kernels/structs.js';
import type { TileConfig } from '../../kernels/tiles.js';
import { assignParts, gradJobs, vec4Shaped } from '../layer-jobs.js';
import { carryTerm, errorJobs, forwardJobs, inputPlanes, paramGradJobs } from '../layers/index.js';
import { type Loss, type OutputSite, outputKind } from '../layers/output.js';
import type { Model } from '../model.js';
import type { EvalPoint, Families, Mode, Partials, ScalarSlots, WorkspaceLayout } from './layout.js';
import type { SegmentSpec } from '../../kernels/structs.js';

export class NetworkTables {
  readonly first: 0 | 1;
  readonly layer: readonly number[];
  readonly fam: Families;
  readonly x: number;
  readonly pred1: number;
  readonly target: number;
  readonly partE: number;
  readonly partCe: number;
  readonly partA: Partials;
  readonly partB: Partials;
  readonly errorTiles: readonly number[];
  readonly gradPart: readonly number[];
  readonly scratch: readonly number[];

  constructor(
    readonly model: Model,
    readonly batch: number,
    readonly mode: Mode,
    layout: WorkspaceLayout,
    readonly tiles: TileConfig,
    readonly scalar: ScalarSlots,
  ) {
    this.first = layout.first;
    this.layer = layout.layer;
    this.fam = layout.fam;
    this.x = layout.x;
    this.pred1 = layout.pred1;
    this.target = layout.target;
    this.partE = layout.partE;
    this.partCe = layout.partCe;
    this.partA = layout.partA;
    this.partB = layout.partB;
    this.errorTiles = layout.errorTiles;
    this.gradPart = layout.gradPart;
    this.scratch = layout.scratch;
  }

  /** Layer l's scratch, if its kind has one. */
  private scratchOf(l: number): { scratch?: number } {
    const at = this.scratch[l - 1]!;
    return at >= 0 ? { scratch: at } : {};
  }

  private zFam(point: EvalPoint): number {
    return point === 'y' ? this.fam.y : this.fam.t;
  }

  private pzFam(point: EvalPoint): number {
    return point === 'y' ? this.fam.py : this.fam.pt;
  }

  /**
   * The A operand of layer l's prediction at `point`: φ(z_{l−1}), z_{l−1} itself for a layer with a linear input,
   * or the raw x / z_0 for the first layer.
   */
  layerInput(l: number, point: EvalPoint): number {
    if (l > 1) return (this.linearInput(l) ? this.zFam(point) : this.pzFam(point)) + this.layer[l - 1]!;
    return this.mode === 'supervised' ? this.x : this.zFam(point) + this.layer[0]!;
  }

  /** Whether layer l reads its input without the activation (the first layer always does). */
  linearInput(l: number): boolean {
    return l === 1 || this.model.layers[l - 1]!.linearInput === true;
  }

  /** Where a layer's identity residual reads z_{l−1} at `point`, if it has one. */
  private residual(l: number, point: EvalPoint): number | undefined {
    return this.model.layers[l - 1]!.skip ? this.zFam(point) + this.layer[l - 1]! : undefined;
  }

  /** λ for the output layer, 1 for the others. */
  layerWeight(l: number, lambda: number): number {
    return l === this.model.depth ? lambda : 1;
  }

  forwardJobs(l: number): Job[] {
    const { model, batch: B, fam } = this;
    const L = model.depth;
    return forwardJobs(model.layers[l - 1]!, {
      rows: B,
      input: this.layerInput(l, 'y'),
      output: fam.y + this.layer[l]!,
      ...(l < L ? { phi: fam.py + this.layer[l]! } : {}),
      ...(l === 1 && this.mode === 'supervised' ? { prediction: this.pred1 } : {}),
      ...(this.residual(l, 'y') !== undefined ? { residualFrom: this.residual(l, 'y')! } : {}),
    });
  }

  /** The first layer's prediction alone, written to pred1 (for activities handed in by the caller). */
  predictionJobs(): Job[] {
    return forwardJobs(this.model.layers[0]!, { rows: this.batch, input: this.layerInput(1, 'y'), output: this.pred1 });
  }

  errorJobs(point: EvalPoint, loss: Loss): Job[] {
    const { model, batch: B, fam } = this;
    const L = model.depth;
    const z = this.zFam(point);
    const jobs: Job[] = [];
    const logits = outputKind(loss).logits;
    let part = this.partE;
    for (let l = 1; l <= L; l++) {
      const output = l === L;
      const residual = this.residual(l, point);
      const layerJobs = errorJobs(model.layers[l - 1]!, {
        rows: B,
        input: this.layerInput(l, point),
        ...(l === 1 && this.mode === 'supervised' ? { fixedPrediction: this.pred1 } : {}),
        target: output ? this.target : z + this.layer[l]!,
        error: fam.e + this.layer[l]!,
        part,
        output,
        logits: output && logits,
        ...(residual !== undefined ? { residualFrom: residual } : {}),
        ...this.scratchOf(l),
      });
      jobs.push(...assignParts(layerJobs, part, this.tiles));
      part += 4 * this.errorTiles[l - 1]!;
    }
    return jobs;
  }

  /** One job per activity of the state: ∂F/∂z_l from e_l and e_{l+1} (see activity-grad.wgsl). */
  activityGradJobs(point: EvalPoint, lambda: number): Job[] {
    const { model, batch: B, fam } = this;
    const L = model.depth;
    const z = this.zFam(point);
    const part = (point === 'y' ? this.partA : this.partB).off;
    const jobs: Job[] = [];
    for (let l = this.first; l <= L; l++) {
      const consumer = l < L ? model.layers[l]! : undefined;
      const planes = consumer && inputPlanes(consumer);
      const layerJobs = gradJobs({
        rows: B,
        width: model.dims[l]!,
        z: z + this.layer[l]!,
        family: this.layer[l]!,
        grad: fam.k + this.layer[l]!,
        part: part + this.gradPart[l]!,
        ...(l >= 1 && l < L ? { own: fam.e + this.layer[l]! } : {}),
        ...(l < L
          ? {
              carry: carryTerm(model.layers[l]!, {
                error: fam.e + this.layer[l + 1]!,
                weight: this.layerWeight(l + 1, lambda),
                ...this.scratchOf(l + 1),
              }),
            }
          : {}),
        identity: l === 0 || (l < L && this.linearInput(l + 1)),
        scale: 1 / B,
        ...(planes ? { planes } : {}),
      });
      // The output's job (no product) in a shape the vec4 epilogue takes.
      jobs.push(...assignParts(layerJobs, part + this.gradPart[l]!, this.tiles).map((j) => vec4Shaped(j, this.tiles)));
    }
    return jobs;
  }

  paramGradJobs(lambda: number): Job[] {
    const { model, batch: B, fam } = this;
    return model.layers.flatMap((spec, i) =>
      paramGradJobs(spec, {
        rows: B,
        error: fam.e + this.layer[i + 1]!,
        input: this.layerInput(i + 1, 'y'),
        coef: (-spec.scale * this.layerWeight(i + 1, lambda)) / B,
      }),
    );
  }

  /** Start of layer l's error partials (l = 1..L). */
  errorPart(l: number): number {
    let start = this.partE;
    for (let j = 1; j < l; j++) start += 4 * this.errorTiles[j - 1]!;
    return start;
  }

  layerEnergySegments(loss: Loss, lambda: number): SegmentSpec[] {
    const L = this.model.depth;
    const B = this.batch;
    // JPC's record_layers order: [E_L, E_2, …, E_{L−1}, E_1].
    const order = L === 1 ? [1] : [L, ...Array.from({ length: L - 2 }, (_, i) => i + 2), 1];
    return order.map((l, position) =>
      l === L
        ? { ...outputKind(loss).energyTerm(this.outputSite, lambda), out: position }
        : {
            off: this.errorPart(l),
            count: this.errorTiles[l - 1]!,
            stride: 4,
            out: position,
            scale: (0.5 * this.layerWeight(l, lambda)) / B,
          },
    );
  }

  totalEnergySegment(loss: Loss, lambda: number): SegmentSpec {
    const B = this.batch;
    const L = this.model.depth;
    const hiddenTiles = this.errorTiles.slice(0, L - 1).reduce((a, b) => a + b, 0);
    const output = outputKind(loss).energyTerm(this.outputSite, lambda);
    return {
      off: this.partE,
      count: hiddenTiles,
      stride: 4,
      out: this.scalar.total,
      scale: 0.5 / B,
      off2: output.off,
      count2: output.count,
      scale2: output.scale,
    };
  }

  /** Where the output layer's partial sums are, for its output kind. */
  get outputSite(): OutputSite {
    const L = this.model.depth;
    return {
      errorPart: this.errorPart(L),
      errorTiles: this.errorTiles[L - 1]!,
      rowPart: this.partCe,
      rows: this.batch,
    };
  }
}
