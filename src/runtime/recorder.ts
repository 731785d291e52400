/**
 * Records dispatches and copies into one command encoder, keeping consecutive dispatches in one compute pass
 * (a pass per dispatch costs more on every backend measured), and submits them together.
 *
 * `queue.writeBuffer` runs at the point in the queue where it is called, i.e. *before* anything still being
 * recorded here. Write inputs first, then record, then submit; write again only after `submit()`.
 */
import type { CompiledKernel } from './kernel.js';
import type { Runtime } from './runtime.js';

/**
 * A 1-D count of `n` workgroups as the [x, y] grid a dispatch takes: [n, 1] when n fits one dimension, else
 * [max, ⌈n / max⌉] (the kernel skips the workgroups past n).
 */
export function foldWorkgroups(
  n: number,
  limits: Pick<GPUSupportedLimits, 'maxComputeWorkgroupsPerDimension'>,
): [number, number] {
  const max = limits.maxComputeWorkgroupsPerDimension;
  return n <= max ? [n, 1] : [max, Math.ceil(n / max)];
}

export class Recorder {
  private encoder: GPUCommandEncoder;
  private pass: GPUComputePassEncoder | undefined;
  private current: GPUComputePipeline | undefined;
  /** Dispatches recorded since the last submit. */
  dispatches = 0;

  constructor(
    readonly runtime: Runtime,
    private readonly label = 'wpc',
  ) {
    this.encoder = runtime.device.createCommandEncoder({ label });
  }

  /**
   * Records a dispatch of `workgroups` 1-D workgroups. Grids above the per-dimension limit are folded into
   * 2-D; kernels recover the linear index as `wid.x + wid.y * nwg.x` and skip indices past their count. A pair
   * [x, y] is dispatched as given (the kernel interprets both dimensions).
   */
  dispatch(
    kernel: CompiledKernel,
    bindGroup: GPUBindGroup,
    workgroups: number | readonly [number, number],
    dynamicOffsets?: readonly number[],
  ): void {
    if (typeof workgroups !== 'number') {
      if (workgroups[0] <= 0 || workgroups[1] <= 0) return;
    } else if (workgroups <= 0) return;
    const { pass, timed } = this.bind(kernel, bindGroup, dynamicOffsets);
    const [x, y] = typeof workgroups === 'number' ? foldWorkgroups(workgroups, this.runtime.limits) : workgroups;
    pass.dispatchWorkgroups(x, y);
    this.finishDispatch(timed);
  }

  /**
   * Records a dispatch whose workgroup counts (x, y, z: three u32) the GPU reads from `args` at `byteOffset`
   * when it runs, so an earlier kernel can decide it (zero workgroups: nothing runs).
   */
  dispatchIndirect(kernel: CompiledKernel, bindGroup: GPUBindGroup, args: GPUBuffer, byteOffset: number): void {
    const { pass, timed } = this.bind(kernel, bindGroup);
    pass.dispatchWorkgroupsIndirect(args, byteOffset);
    this.finishDispatch(timed);
  }

  /** The pass a dispatch goes into, with `kernel`'s pipeline and `bindGroup` set (profiling: a pass of its own). */
  private bind(
    kernel: CompiledKernel,
    bindGroup: GPUBindGroup,
    dynamicOffsets?: readonly number[],
  ): { pass: GPUComputePassEncoder; timed: boolean } {
    const timestampWrites = this.runtime.profiler?.next(kernel.spec.name);
    if (timestampWrites) {
      // Profiling: a pass of its own, timed at both ends.
      this.endPass();
      this.pass = this.encoder.beginComputePass({ label: this.label, timestampWrites });
    }
    const pass = (this.pass ??= this.encoder.beginComputePass({ label: this.label }));
    if (this.current !== kernel.pipeline) {
      pass.setPipeline(kernel.pipeline);
      this.current = kernel.pipeline;
    }
    if (dynamicOffsets) pass.setBindGroup(0, bindGroup, dynamicOffsets);
    else pass.setBindGroup(0, bindGroup);
    return { pass, timed: timestampWrites !== undefined };
  }

  private finishDispatch(timed: boolean): void {
    this.dispatches++;
    if (timed) this.endPass();
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, byteLength: number): void {
    if (byteLength <= 0) return;
    this.endPass();
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, byteLength);
  }

  clear(buffer: GPUBuffer, byteOffset: number, byteLength: number): void {
    if (byteLength <= 0) return;
    this.endPass();
    this.encoder.clearBuffer(buffer, byteOffset, byteLength);
  }

  /** Submits what was recorded and starts a fresh encoder, so the recorder can be reused. */
  submit(): void {
    this.endPass();
    this.runtime.submit([this.encoder.finish()]);
    this.runtime.stats.dispatches += this.dispatches;
    this.dispatches = 0;
    this.encoder = this.runtime.device.createCommandEncoder({ label: this.label });
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
      this.current = undefined;
    }
  }
}
