/**
 * Per-example jobs of convolution-shaped layer kinds: a batch's work as one job per example, each a copy of the
 * first example's job with its activity offsets moved by that example's place (inputs by the input's size,
 * outputs by the output's). Partial-sum slots are assigned by the tables (they depend on the register tile).
 */
import type { Job } from '../../kernels/structs.js';

type OffsetKey = 'aOff' | 'cOff' | 'dOff' | 'eOff' | 'fOff' | 'partOff' | 'biasOff';

/**
 * `rows` copies of `first` (example 0's job): example b's offsets named in `inputs` move by b·inSize, those in
 * `outputs` by b·outSize.
 */
export function perExample(
  rows: number,
  first: Job,
  inSize: number,
  outSize: number,
  inputs: readonly OffsetKey[],
  outputs: readonly OffsetKey[],
): Job[] {
  return Array.from({ length: rows }, (_, b) => {
    const job: Job = { ...first };
    for (const key of inputs) if (first[key] !== undefined) job[key] = first[key] + b * inSize;
    for (const key of outputs) if (first[key] !== undefined) job[key] = first[key] + b * outSize;
    return job;
  });
}
