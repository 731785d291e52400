/** Helpers every benchmark shares. */
import type { Runtime } from '../src/node.js';

/** The middle value (upper middle for an even count). */
export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The adapter as BENCHMARKS.md names it. */
export const adapterLabel = (rt: Runtime): string => `${rt.adapter.description || rt.adapter.device || rt.adapter.vendor} (${rt.adapter.architecture})`;
