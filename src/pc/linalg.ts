/**
 * General matrix products on the GPU (kernels/gemm.wgsl): C = α·op(A)·op(B) + β·D (+ A), with operands
 * anywhere in any buffers. The grouped layer kernels do everything inside inference; this serves the
 * linear-network theory (weight chains, Gram blocks, batched residuals) and `matmul`.
 */
import { GemmFlag, gemmKernel } from '../kernels/gemm.js';
import { WpcArgumentError, argError, checkFinite } from '../runtime/errors.js';
import { BufferUsage } from '../runtime/flags.js';
import { checkFits, storageLimit } from '../runtime/limits.js';
import { createBindGroup, type CompiledKernel } from '../runtime/kernel.js';
import { Recorder } from '../runtime/recorder.js';
import type { Runtime } from '../runtime/runtime.js';
import { Tensor, checkTensor, formatShape } from '../runtime/tensor.js';
import { packJobs } from './layer-jobs.js';
import { tilesFor } from './workspace.js';

/** A row-major matrix in a GPU buffer: element offset and leading dimension (elements per stored row). */
export interface GpuMatrix {
  readonly buffer: GPUBuffer;
  readonly offset: number;
  readonly ld: number;
}

interface GemmCall {
  /** C is m × n; the inner dimension is k. */
  m: number;
  n: number;
  k: number;
  /** m × k, or k × m stored when `transA`. */
  a: GpuMatrix;
  /** k × n, or n × k stored when `transB`. */
  b: GpuMatrix;
  /** m × n output; must not share a buffer with a, b or d. D uses C's leading dimension. */
  c: GpuMatrix;
  d?: GpuMatrix;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  /** Adds A itself (k = n, A not transposed): C = α·A·op(B) + A, i.e. A·(I + α·op(B)). */
  addA?: boolean;
}

/** Records gemm dispatches; its small job buffers go back to the pool on `release()` (after the submit). */
export class GemmRecorder {
  private readonly temps: GPUBuffer[] = [];

  private constructor(
    readonly runtime: Runtime,
    private readonly kernel: CompiledKernel,
  ) {}

  static async create(runtime: Runtime): Promise<GemmRecorder> {
    return new GemmRecorder(runtime, await runtime.kernel(gemmKernel(tilesFor(runtime, 'gemm'))));
  }

  record(rec: Recorder, call: GemmCall): void {
    const { m, n, k, a, b, c, d } = call;
    if (c.buffer === a.buffer || c.buffer === b.buffer || (d && c.buffer === d.buffer)) {
      throw new Error('GemmRecorder: C must not share a buffer with A, B or D');
    }
    if (call.addA && (k !== n || call.transA)) throw new Error('GemmRecorder: addA needs k = n and A not transposed');
    const flags =
      (call.transA ? GemmFlag.TRANS_A : 0) |
      (call.transB ? GemmFlag.TRANS_B : 0) |
      (d ? GemmFlag.HAS_D : 0) |
      (call.addA ? GemmFlag.ADD_A : 0);
    const table = packJobs(
      [
        {
          m,
          n,
          k,
          aOff: a.offset,
          bOff: b.offset,
          cOff: c.offset,
          dOff: d?.offset ?? 0,
          eOff: a.ld,
          fOff: b.ld,
          biasOff: c.ld,
          flags,
          coef0: call.alpha ?? 1,
          coef1: call.beta ?? 0,
        },
      ],
      tilesFor(this.runtime, 'gemm'),
    );
    if (d && d.ld !== c.ld) throw new Error('GemmRecorder: D must have the leading dimension of C');
    const jobs = this.runtime.pool.acquire(
      table.data.byteLength,
      BufferUsage.STORAGE | BufferUsage.COPY_DST,
      'wpc.gemm.jobs',
    );
    // Pooled buffers are rounded up, and the kernel scans every entry (arrayLength): pad with jobs that start
    // past any workgroup, so they are never picked.
    const padded = new Uint32Array(jobs.size / 4).fill(0xffffffff);
    padded.set(new Uint32Array(table.data));
    this.runtime.device.queue.writeBuffer(jobs, 0, padded);
    this.temps.push(jobs);
    const group = createBindGroup(this.runtime.device, this.kernel, {
      jobs,
      a: a.buffer,
      b: b.buffer,
      d: (d ?? a).buffer,
      c: c.buffer,
    });
    rec.dispatch(this.kernel, group, table.workgroups);
  }

  release(): void {
    for (const t of this.temps.splice(0)) this.runtime.pool.release(t);
  }
}

/** A tensor as a GpuMatrix (its last dimension is the row length). */
export function asMatrix(t: Tensor): GpuMatrix {
  return { buffer: t.buffer, offset: t.byteOffset / 4, ld: t.shape[t.shape.length - 1]! };
}

export interface MatmulOptions {
  /** Use Aᵀ (A given as k × m). Default false. */
  transA?: boolean;
  /** Use Bᵀ (B given as n × k). Default false. */
  transB?: boolean;
  /** Scale of the product. Default 1. */
  alpha?: number;
}

/**
 * C = α·op(A)·op(B) for 2-D tensors, on the GPU (register-tiled, no workgroup memory). Returns a new [m, n]
 * tensor; nothing is read back.
 */
export async function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Promise<Tensor> {
  const fn = 'matmul';
  if (!(a instanceof Tensor)) argError(fn, 'a', 'a Tensor', a);
  const rt = a.runtime;
  checkTensor(fn, 'a', a, rt);
  checkTensor(fn, 'b', b, rt);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  for (const key of Object.keys(options)) {
    if (!['transA', 'transB', 'alpha'].includes(key))
      throw new WpcArgumentError(`${fn}: unknown option '${key}' (known: transA, transB, alpha)`);
  }
  for (const key of ['transA', 'transB'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean')
      argError(fn, `options.${key}`, 'a boolean', options[key]);
  }
  const alpha = options.alpha === undefined ? 1 : checkFinite(fn, 'options.alpha', options.alpha);
  if (a.shape.length !== 2) throw new WpcArgumentError(`${fn}: a must be 2-D, got shape ${formatShape(a.shape)}`);
  if (b.shape.length !== 2) throw new WpcArgumentError(`${fn}: b must be 2-D, got shape ${formatShape(b.shape)}`);
  const [m, ka] = options.transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
  const [kb, n] = options.transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
  if (ka !== kb) {
    throw new WpcArgumentError(
      `${fn}: inner dimensions differ: op(a) is ${m}×${ka} (a ${formatShape(a.shape)}${options.transA ? ', transposed' : ''}) and op(b) is ${kb}×${n} (b ${formatShape(b.shape)}${options.transB ? ', transposed' : ''})`,
    );
  }
  rt.checkHealthy(fn);
  checkFits(`${fn}: op(a)·op(b) (${m} × ${n})`, 'the product', m * n * 4, storageLimit(rt.limits));
  const gemm = await GemmRecorder.create(rt);
  const c = rt.empty([m, n]);
  const rec = new Recorder(rt, `wpc.${fn}`);
  gemm.record(rec, {
    m,
    n,
    k: ka,
    a: asMatrix(a),
    b: asMatrix(b),
    c: asMatrix(c),
    transA: options.transA ?? false,
    transB: options.transB ?? false,
    alpha,
  });
  rec.submit();
  gemm.release();
  return c;
}
