/**
 * JPC's parameterisations of a network: the scalings s_l of standard, NTK and μPC parameterisation, and its skip
 * model (identity residuals on the hidden-to-hidden layers).
 */
import { argError, checkFinite, checkKnownKeys, checkOneOf, checkPositiveInt } from '../runtime/errors.js';

/**
 * JPC's parameterisations: `'sp'` (standard, every s_l = 1), `'ntp'` (neural tangent) and `'mupc'` (μPC,
 * Innocenti et al. 2025), which scale each layer's output (bias included) by s_l.
 */
export const PARAM_TYPES = ['sp', 'mupc', 'ntp'] as const;
export type ParamType = (typeof PARAM_TYPES)[number];

/**
 * JPC's `_get_param_scalings` for a network with activity widths `dims` = [D, N, …, output] (L = dims.length − 1
 * layers), N being the first hidden width:
 *
 * | paramType | s_1  | s_l, 1 < l < L                  | s_L        |
 * |-----------|------|---------------------------------|------------|
 * | sp        | 1    | 1                               | 1          |
 * | ntp       | 1/√D | 1/√N, or 1/√(N·L) with skips    | 1/√N       |
 * | mupc      | 1/√D | 1/√N, or 1/√(N·L) with skips    | 1/N        |
 *
 * and s_L is divided by `gamma` when given. A one-layer model takes the output's scaling (JPC returns two entries
 * there, [s_1, s_L], and its energy reads the last).
 */
export function paramScalings(
  dims: readonly number[],
  paramType: ParamType,
  options: { skips?: boolean; gamma?: number | null } = {},
): number[] {
  const fn = 'paramScalings';
  if (!Array.isArray(dims) || dims.length < 2 || dims.some((d) => !Number.isSafeInteger(d) || d < 1))
    argError(fn, 'dims', 'an array of at least two positive integers', dims);
  checkOneOf(fn, 'paramType', paramType, PARAM_TYPES);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['skips', 'gamma']);
  if (options.skips !== undefined && typeof options.skips !== 'boolean')
    argError(fn, 'options.skips', 'a boolean', options.skips);
  if (options.gamma !== undefined && options.gamma !== null)
    checkFinite(fn, 'options.gamma', options.gamma, { min: Number.MIN_VALUE });
  const L = dims.length - 1;
  const D = dims[0]!;
  const N = dims[1]!;
  const hidden = options.skips ? 1 / Math.sqrt(N * L) : 1 / Math.sqrt(N);
  const scales = Array.from({ length: L }, (_, l) => {
    if (paramType === 'sp') return 1;
    if (l === 0 && L > 1) return 1 / Math.sqrt(D);
    if (l < L - 1) return hidden;
    return paramType === 'mupc' ? 1 / N : 1 / Math.sqrt(N);
  });
  if (options.gamma !== undefined && options.gamma !== null) scales[L - 1]! /= options.gamma;
  return scales;
}

/** Most layers a model may have (far beyond any PC network; guards against runaway sizes). */
export const MAX_DEPTH = 10_000;

/**
 * JPC's `make_skip_model(depth)`: identity residuals on the hidden-to-hidden layers 2..L−1 (indices 1..depth−2),
 * never on the input or output layer. Pass it as `skipModel` to `makeMlp` or `mlpFromWeights`.
 */
export function makeSkipModel(depth: number): boolean[] {
  const L = checkPositiveInt('makeSkipModel', 'depth', depth, MAX_DEPTH);
  return Array.from({ length: L }, (_, l) => l >= 1 && l <= L - 2);
}
