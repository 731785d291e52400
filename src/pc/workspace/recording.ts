/**
 * Recording a solve on the GPU (record.wgsl): each recorded state appends the layer energies (JPC's
 * record_layers order) and, with a trajectory, the activities, to buffers that grow with the capacity asked for.
 * Which states are recorded is decided on the GPU (the `when` record of the recording uniform), so nothing is read
 * back during the solve.
 */
import { elementwiseGroups } from '../../kernels/parts.js';
import { RECORD_ENTRIES, type RecordEntry } from '../../kernels/record.js';
import { UNIFORM_USAGE } from '../../runtime/flags.js';
import { type CompiledKernel, createBindGroup } from '../../runtime/kernel.js';
import type { Recorder } from '../../runtime/recorder.js';
import type { Runtime } from '../../runtime/runtime.js';
import type { Loss } from '../layers/output.js';
import { UNIFORM_STRIDE, packRecordings } from '../../kernels/structs.js';
import type { SegmentTable } from './tables.js';

export interface RecordingBuffers {
  records: GPUBuffer;
  traj: GPUBuffer;
  capacity: number;
  trajN: number;
}

/** What recording reads of its workspace. */
interface RecordingHost {
  readonly runtime: Runtime;
  readonly depth: number;
  readonly work: GPUBuffer;
  readonly state: GPUBuffer;
  /** The activities y and their count. */
  readonly y: number;
  readonly nAll: number;
  readonly kernels: Readonly<Record<RecordEntry, CompiledKernel>>;
  /** The layer-energy segments of each output kind, in JPC's record_layers order. */
  readonly segments: Readonly<Record<Loss, SegmentTable>>;
}

export class Recording {
  private buffers: RecordingBuffers | undefined;
  private readonly uniform: GPUBuffer;
  /** Bind groups over the current buffers, by loss (rebuilt when the buffers grow). */
  private groups = new Map<Loss, Record<RecordEntry, GPUBindGroup>>();

  constructor(private readonly host: RecordingHost) {
    this.uniform = host.runtime.device.createBuffer({
      size: 4 * UNIFORM_STRIDE,
      usage: UNIFORM_USAGE,
      label: 'wpc.recording',
    });
  }

  /** The recording buffers, once `prepare` made them. */
  get current(): RecordingBuffers | undefined {
    return this.buffers;
  }

  /**
   * Makes sure the buffers hold `capacity` states (energies, and the activities when `trajectory`), resets their
   * counter, and writes the four recording uniforms (see record.wgsl). Returns the buffers.
   */
  prepare(rec: Recorder, capacity: number, trajectory: boolean): RecordingBuffers {
    const { runtime, depth: L } = this.host;
    const trajN = trajectory ? this.host.nAll : 0;
    const current = this.buffers;
    if (!current || current.capacity < capacity || current.trajN < trajN) {
      current?.records.destroy();
      current?.traj.destroy();
      const records = runtime.createStorageBuffer((4 + capacity * L) * 4, 'wpc.records');
      const traj = runtime.createStorageBuffer(Math.max(1, capacity * trajN) * 4, 'wpc.trajectory');
      this.buffers = { records, traj, capacity, trajN };
      this.groups.clear();
    }
    const buffers = this.buffers!;
    rec.clear(buffers.records, 0, 16);
    const words = packRecordings([0, 1, 2, 3].map((when) => ({ when, layers: L, capacity, trajN, y: this.host.y })));
    runtime.device.queue.writeBuffer(this.uniform, 0, words);
    return buffers;
  }

  /** Records the state whose ERRORS partials are in place (for `loss`) if `when` says so. */
  record(rec: Recorder, loss: Loss, when: number, trajectory: boolean): void {
    const buffers = this.buffers;
    if (!buffers) throw new Error('workspace: prepareRecording first');
    const { kernels } = this.host;
    let groups = this.groups.get(loss);
    if (!groups) {
      const resources = {
        segments: this.host.segments[loss].buffer,
        work: this.host.work,
        state: this.host.state,
        records: buffers.records,
        traj: buffers.traj,
        recording: { buffer: this.uniform, offset: 0, size: 32 },
      };
      const device = this.host.runtime.device;
      groups = Object.fromEntries(
        RECORD_ENTRIES.map((entry) => [entry, createBindGroup(device, kernels[entry], resources)]),
      ) as Record<RecordEntry, GPUBindGroup>;
      this.groups.set(loss, groups);
    }
    const offset = [when * UNIFORM_STRIDE];
    if (trajectory)
      rec.dispatch(kernels.record_activities, groups.record_activities, elementwiseGroups(this.host.nAll), offset);
    rec.dispatch(kernels.record_energies, groups.record_energies, this.host.depth, offset);
    rec.dispatch(kernels.record_advance, groups.record_advance, 1, offset);
  }

  dispose(): void {
    this.uniform.destroy();
    this.buffers?.records.destroy();
    this.buffers?.traj.destroy();
  }
}
