/**
 * An activity-gradient table: a job table of the activity-gradient kernel (activity-grad.wgsl) with the
 * parameters it reads and the kernels it runs with. Its bind groups take the stage-record uniform, so they are
 * rebuilt when that buffer grows; and where every job and the stage record allow it, a dispatch takes the kernel
 * compiled with only the vec4 epilogue.
 */
import type { Job } from '../../kernels/structs.js';
import { StageMode } from '../../kernels/layer-matmul.js';
import { type CompiledKernel, createBindGroup } from '../../runtime/kernel.js';
import type { Recorder } from '../../runtime/recorder.js';
import { epilogue4Ready } from '../layer-jobs.js';
import type { Gated } from './handles.js';
import { STAGE_BYTES, type StageRecord, UNIFORM_STRIDE } from '../../kernels/structs.js';
import type { StageRecords } from './stages.js';

/** The kernels a table runs with: the general one, its gated form, and the vec4-only pair where compiled. */
export interface ActKernels {
  readonly plain: CompiledKernel;
  readonly gated?: CompiledKernel;
  readonly vec4?: Gated<CompiledKernel>;
}

/** What a table's bind groups are built over. */
export interface ActBindings {
  readonly device: GPUDevice;
  readonly work: GPUBuffer;
  readonly state: GPUBuffer;
  /** The stage records (their buffer is replaced when it grows). */
  readonly stages: StageRecords;
  /** Whether the stage records' families are ≡ 0 mod 4 (the record part of vec_ok). */
  readonly stagesAligned: boolean;
}

export class ActTable {
  private vec4Jobs: boolean;
  private groupsFor: GPUBuffer | undefined;
  private groups: { plain: GPUBindGroup; gated?: GPUBindGroup } | undefined;

  constructor(
    readonly jobs: GPUBuffer,
    readonly params: GPUBuffer,
    readonly kernels: ActKernels,
    readonly workgroups: number,
    list: readonly Job[],
  ) {
    this.vec4Jobs = epilogue4Ready(list);
  }

  /** Notes the jobs now in the table (after its buffer was rewritten). */
  update(list: readonly Job[]): void {
    this.vec4Jobs = epilogue4Ready(list);
  }

  /**
   * Whether a dispatch with stage record `record` may use the kernel compiled with only the vec4 epilogue: every
   * job and the record pass vec_ok (activity-grad.wgsl): the tables' widths and offsets and the stage families'
   * offsets are ≡ 0 mod 4 and the mode is a Runge–Kutta one.
   */
  takesVec4(record: StageRecord | undefined, stagesAligned: boolean): boolean {
    return (
      this.kernels.vec4 !== undefined &&
      this.vec4Jobs &&
      record !== undefined &&
      record.mode <= StageMode.FINAL_FSAL &&
      stagesAligned
    );
  }

  /** Records the table with stage record `index`. */
  record(rec: Recorder, at: ActBindings, gated: boolean, index: number): void {
    const stages = at.stages.buffer;
    if (this.groupsFor !== stages || !this.groups) {
      const stage: GPUBufferBinding = { buffer: stages, offset: 0, size: STAGE_BYTES };
      const { jobs, params } = this;
      const { device, work, state } = at;
      this.groups = {
        plain: createBindGroup(device, this.kernels.plain, { jobs, params, work, stage }),
        ...(this.kernels.gated
          ? { gated: createBindGroup(device, this.kernels.gated, { jobs, params, work, state, stage }) }
          : {}),
      };
      this.groupsFor = stages;
    }
    const group = gated ? this.groups.gated : this.groups.plain;
    const vec4 = this.takesVec4(at.stages.at(index), at.stagesAligned) ? this.kernels.vec4 : undefined;
    const kernel = gated ? (vec4?.gated ?? this.kernels.gated) : (vec4?.plain ?? this.kernels.plain);
    if (!group || !kernel) throw new Error('workspace: this activity-gradient table has no gated kernel');
    rec.dispatch(kernel, group, this.workgroups, [index * UNIFORM_STRIDE]);
  }
}
