/**
 * What the deep-linear-network theory functions (../linear-theory.ts) accept, checked before any GPU work: a
 * linear model without biases, the output energy's weight λ and the other options, and sizes the closed forms can
 * hold (the GPU arrays each one storage binding, the float64 matrices formed on the host at most 512 MiB each).
 */
import { mlpLayers } from '../layers/index.js';
import { WpcArgumentError, argError, checkFinite } from '../../runtime/errors.js';
import { checkFits, groupDigits, storageLimit } from '../../runtime/limits.js';
import { checkModel } from '../batch.js';
import { type Model, formatDims } from '../model.js';

export interface LinearTheoryOptions {
  /** λ, the weight of the output energy (JPC's `output_energy_scaling`). Default 1. */
  outputEnergyScaling?: number | null;
}

export const LAMBDA_KEYS = ['outputEnergyScaling'] as const;

/**
 * Most entries of one dense float64 matrix a theory function forms on the host (512 MiB): S, a Hessian or one of
 * its blocks.
 */
const MAX_HOST_MATRIX_ENTRIES = 2 ** 26;

/** What a theory call computes, for `checkTheoryFits`. */
interface TheoryWork {
  /** Rows of x and y, when the call takes a batch. */
  B?: number;
  /** J_i and S (the output-space route). */
  chain?: boolean;
  /** The Hessian's blocks (block Cholesky, the dense Hessian). */
  blocks?: boolean;
  /** The dense (Σ d_i)² Hessian. */
  dense?: boolean;
}

/**
 * Refuses, before anything is allocated, a theory call whose GPU arrays (each one storage binding) or host
 * matrices (at most MAX_HOST_MATRIX_ENTRIES entries each) would be too large: batch tensors B × d_l, the
 * chains J_i (d_y × d_i) and S (d_y²), the Gram blocks (d_i²) and the dense Hessian ((Σ d_i)²).
 */
export function checkTheoryFits(fn: string, model: Model, work: TheoryWork): void {
  const limit = storageLimit(model.runtime.limits);
  const dims = model.dims;
  const dy = model.outputDim;
  const hidden = dims.slice(1, -1);
  const subject = `${fn}: model ${formatDims(dims)}`;
  const host = (what: string, entries: number, hint: string) => {
    if (entries > MAX_HOST_MATRIX_ENTRIES) {
      throw new WpcArgumentError(
        `${subject} is too large for ${what}: ${groupDigits(entries)} float64 entries, more than ${groupDigits(MAX_HOST_MATRIX_ENTRIES)} (512 MiB, WPC's cap for one host matrix); ${hint}`,
      );
    }
  };
  if (work.B !== undefined) {
    const widest = Math.max(...dims);
    checkFits(
      `${fn}: x (${work.B} rows)`,
      `a [${work.B}, ${widest}] activity tensor`,
      work.B * widest * 4,
      limit,
      'use a smaller batch',
    );
  }
  if (work.chain) {
    host('the rescaling S (d_y × d_y)', dy * dy, 'the output layer is too wide');
    checkFits(
      subject,
      `the chains J_i (d_y × d_i, up to ${dy} × ${Math.max(dy, ...hidden)} floats)`,
      dy * Math.max(dy, ...hidden) * 4,
      limit,
    );
  }
  if (work.blocks) {
    const widest = Math.max(0, ...hidden);
    host('a Hessian block (d_i × d_i)', widest * widest, 'a hidden layer is too wide');
    checkFits(subject, `a Gram block W_iᵀW_i (${widest} × ${widest} floats)`, widest * widest * 4, limit);
  }
  if (work.dense) {
    const n = hidden.reduce((a, b) => a + b, 0);
    host(`the dense Hessian (${n} × ${n})`, n * n, 'use computeLinearActivitySolution, which never forms it');
  }
}

export function checkLinearModel(fn: string, model: unknown): Model {
  const m = checkModel(fn, model);
  mlpLayers(fn, m.layers);
  if (m.actFn !== 'linear')
    throw new WpcArgumentError(
      `${fn}: the theory holds for deep linear networks: model.actFn must be 'linear', got '${m.actFn}'`,
    );
  const biased = mlpLayers(fn, m.layers).findIndex((l) => l.useBias);
  if (biased >= 0)
    throw new WpcArgumentError(
      `${fn}: the theory holds for networks without biases: layer ${biased} has a bias (make the model with useBias: false)`,
    );
  return m;
}

export function lambdaOf(fn: string, opts: LinearTheoryOptions): number {
  const v = opts.outputEnergyScaling;
  return v === undefined || v === null ? 1 : checkFinite(fn, 'options.outputEnergyScaling', v, { min: 0, open: true });
}

export function nonNegative(fn: string, arg: string, v: unknown): number {
  return v === undefined ? 0 : checkFinite(fn, arg, v, { min: 0 });
}

export function flag(fn: string, arg: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') argError(fn, arg, 'a boolean', v);
  return v;
}
