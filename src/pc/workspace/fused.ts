/**
 * The fused whole solve (fused-solve.wgsl): a fixed-step Runge–Kutta solve of a small network as one
 * single-workgroup dispatch, every step and stage inside the kernel. Only for JPC's plain supervised energy and
 * layers whose kind the kernel knows (`Workspace.plain`); the solver decides when it pays.
 */
import type { Activation } from '../../kernels/activations.js';
import { fusedSolveKernel } from '../../kernels/fused-solve.js';
import { FUSED_WORDS, packFused, packFusedLayers } from '../../kernels/structs.js';
import { UNIFORM_USAGE } from '../../runtime/flags.js';
import { type CompiledKernel, createBindGroup } from '../../runtime/kernel.js';
import type { Recorder } from '../../runtime/recorder.js';
import type { Runtime } from '../../runtime/runtime.js';
import { fusedLayer } from '../layers/index.js';
import { type Loss, outputKind } from '../layers/output.js';
import type { Model } from '../model.js';
import type { Families } from './layout.js';

/** What the fused solve reads of its workspace. */
interface FusedHost {
  readonly runtime: Runtime;
  readonly model: Model;
  readonly act: Activation;
  readonly batch: number;
  readonly work: GPUBuffer;
  readonly fam: Families;
  /** Offset of z_l inside every family. */
  readonly layer: readonly number[];
  readonly nAll: number;
  readonly nHidden: number;
  readonly pred1: number;
  readonly target: number;
  /** Uploads a storage table freed with the workspace. */
  storageTable(label: string, data: ArrayBuffer): GPUBuffer;
}

export class FusedSolve {
  private coefs: GPUBuffer | undefined;
  private key: string | undefined;
  private group: GPUBindGroup | undefined;

  private constructor(
    private readonly host: FusedHost,
    private readonly kernel: CompiledKernel,
    private readonly layers: GPUBuffer,
    private readonly cfg: GPUBuffer,
  ) {}

  static async create(host: FusedHost): Promise<FusedSolve> {
    const { runtime: rt, model } = host;
    const wg = rt.adapter.isSoftware ? 64 : 256;
    const kernel = await rt.kernel(fusedSolveKernel(host.act, wg));
    const table = packFusedLayers(
      model.layers.map((spec, i) => ({ ...fusedLayer(spec)!, layOff: host.layer[i + 1]! })),
    );
    const cfg = rt.device.createBuffer({ size: FUSED_WORDS * 4, usage: UNIFORM_USAGE, label: 'wpc.fused.cfg' });
    return new FusedSolve(host, kernel, host.storageTable('fused.layers', table), cfg);
  }

  /**
   * Records the solve: `a` and `b` of the stages evaluated, the step sizes. The coefficients upload only when
   * `key` changes.
   */
  record(
    rec: Recorder,
    a: readonly (readonly number[])[],
    b: readonly number[],
    sizes: readonly number[],
    loss: Loss,
    key: string,
  ): void {
    const { host } = this;
    const rt = host.runtime;
    const { fam } = host;
    const s = b.length;
    if (this.key !== key) {
      const coefs = new Float32Array(s * s + s + sizes.length);
      a.forEach((row, i) => coefs.set(row.slice(0, i + 1), (i + 1) * s)); // row i + 1 holds a_{i+2, 1..i+1}
      coefs.set(b, s * s);
      coefs.set(sizes, s * s + s);
      this.coefs?.destroy();
      this.coefs = rt.createStorageBuffer(coefs.byteLength, 'wpc.fused.coefs');
      rt.device.queue.writeBuffer(this.coefs, 0, coefs);
      this.group = createBindGroup(rt.device, this.kernel, {
        cfg: this.cfg,
        params: host.model.params,
        work: host.work,
        layers: this.layers,
        coefs: this.coefs,
      });
      this.key = key;
    }
    const words = packFused({
      layers: host.model.depth,
      batch: host.batch,
      stages: s,
      steps: sizes.length,
      ce: outputKind(loss).kernelFlag,
      nAll: host.nAll,
      nHidden: host.nHidden,
      y: fam.y,
      py: fam.py,
      t: fam.t,
      pt: fam.pt,
      k: fam.k,
      e: fam.e,
      pred1: host.pred1,
      goal: host.target,
      aOff: 0,
      bOff: s * s,
      dtOff: s * s + s,
      invBatch: 1 / host.batch,
    });
    rt.device.queue.writeBuffer(this.cfg, 0, words);
    rec.dispatch(this.kernel, this.group!, 1);
  }

  dispose(): void {
    this.cfg.destroy();
    this.coefs?.destroy();
  }
}
