/**
 * The GPU side of one theory call: a recorder and the gemm kernel, the model's weights as matrices, the weight
 * chains J_i = M_{L−1}⋯M_i, forward passes (plain, or with an injection at every hidden layer), and every
 * temporary, freed when the call ends.
 */
import { mlpLayers } from '../layers/index.js';
import { WpcArgumentError } from '../../runtime/errors.js';
import { Recorder } from '../../runtime/recorder.js';
import type { Runtime } from '../../runtime/runtime.js';
import { Tensor, checkTensor } from '../../runtime/tensor.js';
import { batchSizeOf, type BatchData } from '../batch.js';
import { GemmRecorder, asMatrix, type GpuMatrix } from '../linalg.js';
import type { Model } from '../model.js';

/** x and y as tensors (uploaded when given as arrays); `owned` are the ones to dispose. */
function batchTensors(
  fn: string,
  model: Model,
  x: BatchData,
  y: BatchData | undefined,
): { B: number; X: Tensor; Y: Tensor | null; owned: Tensor[] } {
  const B = batchSizeOf(fn, 'x', x, model.inputDim, model);
  if (y !== undefined) {
    const By = batchSizeOf(fn, 'y', y, model.outputDim, model);
    if (By !== B) throw new WpcArgumentError(`${fn}: x and y must have the same batch size, got ${B} and ${By}`);
  }
  const owned: Tensor[] = [];
  const take = (d: BatchData, width: number): Tensor => {
    if (d instanceof Tensor) return d;
    const t = model.runtime.tensor(d, [B, width]);
    owned.push(t);
    return t;
  };
  return { B, X: take(x, model.inputDim), Y: y === undefined ? null : take(y, model.outputDim), owned };
}

/** Everything one theory call records: the gemm kernel, W_l as matrices, temporaries to free. */
export class Chains {
  readonly temps: Tensor[] = [];
  readonly rec: Recorder;
  private constructor(
    readonly model: Model,
    readonly gemm: GemmRecorder,
    fn: string,
  ) {
    this.rec = new Recorder(model.runtime, `wpc.${fn}`);
  }

  static async create(fn: string, model: Model): Promise<Chains> {
    return new Chains(model, await GemmRecorder.create(model.runtime), fn);
  }

  get rt(): Runtime {
    return this.model.runtime;
  }

  /** Hidden layers H = L − 1. */
  get H(): number {
    return this.model.depth - 1;
  }

  weight(l: number): GpuMatrix {
    const layer = mlpLayers('linear theory', this.model.layers)[l]!;
    return { buffer: this.model.params, offset: layer.weightOffset, ld: layer.inDim };
  }

  temp(shape: number[]): Tensor {
    const t = this.rt.empty(shape);
    this.temps.push(t);
    return t;
  }

  /** J_i = M_{L−1}⋯M_i for i = 1..H (index i of the result; d_y × d_i), from J_L = I backwards. */
  weightChain(): Tensor[] {
    const { model, H } = this;
    const dy = model.outputDim;
    const eye = new Float32Array(dy * dy);
    for (let i = 0; i < dy; i++) eye[i * dy + i] = 1;
    const J: Tensor[] = [];
    J[H + 1] = this.rt.tensor(eye, [dy, dy]);
    this.temps.push(J[H + 1]!);
    for (let i = H; i >= 1; i--) {
      const layer = model.layers[i]!;
      J[i] = this.temp([dy, layer.inDim]);
      // J_i = J_{i+1}·(a_i W_i + σ_i I): W_i is [d_{i+1}, d_i].
      this.gemm.record(this.rec, {
        m: dy,
        k: layer.outDim,
        n: layer.inDim,
        a: asMatrix(J[i + 1]!),
        b: this.weight(i),
        c: asMatrix(J[i]!),
        alpha: layer.scale,
        addA: layer.skip,
      });
    }
    return J;
  }

  /**
   * Activities of the forward pass z_{l+1} = M_l z_l (+ g_{l+1} for hidden l + 1 ≤ H), rows = samples: z_1..z_L
   * (index l). With `inject` (B × d_i for i = 1..H; an entry H + 1 is ignored) this is the equilibrium pass, whose
   * last activity is the prediction M_{L−1} z*_{L−1} (not y − e_L); without, the feedforward prediction.
   */
  forward(X: Tensor, B: number, inject?: readonly Tensor[], keep = false): Tensor[] {
    const { model, H } = this;
    const Z: Tensor[] = [X];
    model.layers.forEach((layer, l) => {
      const out = keep ? this.rt.empty([B, layer.outDim]) : this.temp([B, layer.outDim]);
      const g = l + 1 <= H ? inject?.[l + 1] : undefined;
      this.gemm.record(this.rec, {
        m: B,
        k: layer.inDim,
        n: layer.outDim,
        a: asMatrix(Z[l]!),
        b: this.weight(l),
        transB: true,
        c: asMatrix(out),
        alpha: layer.scale,
        addA: layer.skip,
        ...(g ? { d: asMatrix(g), beta: 1 } : {}),
      });
      Z.push(out);
    });
    return Z;
  }

  submit(): void {
    this.rec.submit();
  }

  dispose(): void {
    this.gemm.release();
    for (const t of this.temps.splice(0)) t.dispose();
  }
}

/** A tensor as a readback range. */
export const rangeOf = (t: Tensor) => ({ buffer: t.buffer, byteOffset: t.byteOffset, byteLength: t.byteLength });

/**
 * Runs `body` on the batch (x, y uploaded when given as arrays, both checked again once the kernel is ready, in
 * case the caller disposed a tensor meanwhile) and frees every temporary afterwards.
 */
export async function withBatch<T>(
  fn: string,
  model: Model,
  x: BatchData,
  y: BatchData,
  body: (ch: Chains, X: Tensor, Y: Tensor, B: number) => Promise<T>,
): Promise<T> {
  const { B, X, Y, owned } = batchTensors(fn, model, x, y);
  return withChains(
    fn,
    model,
    async (ch) => {
      checkTensor(fn, 'x', X, model.runtime);
      checkTensor(fn, 'y', Y, model.runtime);
      return body(ch, X, Y!, B);
    },
    owned,
  );
}

export async function withChains<T>(
  fn: string,
  model: Model,
  body: (ch: Chains) => Promise<T>,
  owned: Tensor[] = [],
): Promise<T> {
  let ch: Chains | undefined;
  try {
    ch = await Chains.create(fn, model);
    model.checkAlive(fn);
    return await body(ch);
  } finally {
    ch?.dispose();
    for (const t of owned) t.dispose();
  }
}
