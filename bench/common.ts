/** Helpers every benchmark shares. */
import type { Runtime } from '../src/node.js';

/** The middle value (upper middle for an even count). */
export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The adapter as BENCHMARKS.md names it, with its subgroup size where fixed (lavapipe: 8 or 16 lanes). */
export const adapterLabel = (rt: Runtime): string => {
  const lanes = rt.adapter.subgroupSize === null ? '' : `, ${rt.adapter.subgroupSize}-lane subgroups`;
  return `${rt.adapter.description || rt.adapter.device || rt.adapter.vendor} (${rt.adapter.architecture}${lanes})`;
};
