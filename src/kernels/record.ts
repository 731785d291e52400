/**
 * Recording during inference (record.wgsl): energies and activities of the states a solve passes through,
 * written on the GPU and read once at the end.
 */
import type { KernelSpec } from '../runtime/kernel.js';
import recordWgsl from './record.wgsl';
import { SEGMENT_PART, SMALL_WG, STATE_PART, part, ro, rw, uniform, workgroupSum } from './parts.js';

export const RECORD_ENTRIES = ['record_activities', 'record_energies', 'record_advance'] as const;
export type RecordEntry = (typeof RECORD_ENTRIES)[number];
/** When a record kernel records (WHEN_* in record.wgsl). */
export const RecordWhen = { NEXT_START: 0, ACCEPTED: 1, ALWAYS: 2, FINAL: 3 } as const;

/** Recording during inference (record.wgsl). Bindings: segments, work, state, records, traj, recording (dynamic). */
export function recordKernel(entry: RecordEntry, subgroupSize: number | null = null): KernelSpec {
  const sum = workgroupSum(subgroupSize);
  return {
    name: `record.${entry}`,
    parts: [...sum.enable, STATE_PART, SEGMENT_PART, part('record.wgsl', recordWgsl), sum.part],
    defines: sum.defines,
    constants: sum.constants,
    entryPoint: entry,
    bindings: [ro('segments'), ro('work'), ro('state'), rw('records'), rw('traj'), uniform('recording', true)],
    workgroupSize: entry === 'record_advance' ? 1 : SMALL_WG,
  };
}
