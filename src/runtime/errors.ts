/**
 * Error types and argument checks shared by every public function.
 *
 * Every check fails *before* any GPU work is encoded, so bad input never leaves weights, optimiser state or
 * activities half-updated.
 */

/** A public function was called with an argument of the wrong type, shape or value. */
export class WpcArgumentError extends TypeError {
  override name = 'WpcArgumentError';
}

/** The GPU reported a validation error, ran out of memory, or the device was lost. */
export class WpcGpuError extends Error {
  override name = 'WpcGpuError';
  constructor(
    message: string,
    readonly kind: 'validation' | 'out-of-memory' | 'internal' | 'device-lost' | 'no-adapter',
  ) {
    super(message);
  }
}

/** A WGSL kernel failed to compile; the message names the kernel and gives line:column of each error. */
export class WpcShaderError extends Error {
  override name = 'WpcShaderError';
  constructor(
    message: string,
    readonly kernel: string,
  ) {
    super(message);
  }
}

/** Inference could not finish: `maxSteps` exceeded or the state became non-finite. */
export class WpcSolverError extends Error {
  override name = 'WpcSolverError';
}

/**
 * A training step produced NaN or ±Inf (activities, energies or gradients). The step's parameter update was not
 * applied, so the model keeps its last good weights; `step` is the training step (optimiser count) that
 * diverged and `layer`/`what` where it was first seen.
 */
export class WpcDivergenceError extends Error {
  override name = 'WpcDivergenceError';
  constructor(
    message: string,
    readonly step: number,
    readonly what: 'energy' | 'activity' | 'gradient',
    readonly layer: number,
  ) {
    super(message);
  }

  /**
   * What happened, in words: "training diverged at step N: NaN or Inf in …. The parameter update of step N was
   * not applied, so the model keeps its weights from step N−1" (callers add what to do about it). `layer` is
   * the 0-based layer (for activities: the index l of z_l); for a gradient-norm overflow, -1.
   */
  static describe(step: number, what: 'energy' | 'activity' | 'gradient', layer: number): string {
    const where =
      what === 'energy'
        ? `the energy of layer ${layer + 1} (its prediction error)`
        : what === 'activity'
          ? `the activities z_${layer}`
          : layer < 0
            ? 'the gradient norm (overflow)'
            : `the parameter gradients of layer ${layer + 1}`;
    return `training diverged at step ${step}: NaN or Inf in ${where}. The parameter update of step ${step} was not applied, so the model keeps its weights from step ${step - 1}`;
  }
}

/**
 * `e instanceof WpcError` is true for every error WPC throws on purpose: WpcArgumentError, WpcGpuError,
 * WpcShaderError, WpcSolverError, WpcDivergenceError, and IdxError from the IDX reader (registered there).
 * (The classes keep their own bases — WpcArgumentError is a TypeError — so this is a check, not a base class.)
 */
export class WpcError extends Error {
  static readonly members: (abstract new (...args: never[]) => Error)[] = [WpcArgumentError, WpcGpuError, WpcShaderError, WpcSolverError, WpcDivergenceError];
  static override [Symbol.hasInstance](value: unknown): boolean {
    return WpcError.members.some((C) => value instanceof C);
  }
}

/** Shortens a value for an error message. */
export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) {
    const name = value.constructor.name;
    return 'length' in value ? `a ${name} of length ${(value as unknown as { length: number }).length}` : `a ${name}`;
  }
  if (typeof value === 'function') return 'a function';
  const ctor = (value as object).constructor?.name;
  return ctor && ctor !== 'Object' ? `a ${ctor}` : 'an object';
}

/** Throws `WpcArgumentError("fn: arg must be expected, got actual")`. */
export function argError(fn: string, arg: string, expected: string, actual: unknown): never {
  throw new WpcArgumentError(`${fn}: ${arg} must be ${expected}, got ${describe(actual)}`);
}

export function checkPositiveInt(fn: string, arg: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    argError(fn, arg, max === Number.MAX_SAFE_INTEGER ? 'a positive integer' : `an integer in [1, ${max}]`, value);
  }
  return value;
}

export function checkNonNegativeInt(fn: string, arg: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    argError(fn, arg, 'a non-negative integer', value);
  }
  return value;
}

/** A finite number, optionally bounded; `open` makes the lower bound exclusive. */
export function checkFinite(
  fn: string,
  arg: string,
  value: unknown,
  { min, max, open = false }: { min?: number; max?: number; open?: boolean } = {},
): number {
  const bounds =
    min !== undefined && max !== undefined
      ? ` in ${open ? '(' : '['}${min}, ${max}]`
      : min !== undefined
        ? open
          ? ` > ${min}`
          : ` >= ${min}`
        : max !== undefined
          ? ` <= ${max}`
          : '';
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    (min !== undefined && (open ? value <= min : value < min)) ||
    (max !== undefined && value > max)
  ) {
    argError(fn, arg, `a finite number${bounds}`, value);
  }
  return value;
}

export function checkOneOf<T extends string>(fn: string, arg: string, value: unknown, options: readonly T[]): T {
  if (typeof value !== 'string' || !(options as readonly string[]).includes(value)) {
    argError(fn, arg, `one of ${options.map((o) => JSON.stringify(o)).join(', ')}`, value);
  }
  return value as T;
}

/** Rejects option keys the function does not know (a typo would otherwise be silently ignored). */
export function checkKnownKeys(fn: string, arg: string, value: object, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new WpcArgumentError(
        `${fn}: unknown option ${JSON.stringify(key)} in ${arg}; known options are ${known.map((k) => JSON.stringify(k)).join(', ')}`,
      );
    }
  }
}

/** Index of the first non-finite entry, or -1. */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) return i;
  }
  return -1;
}

export function checkFiniteData(fn: string, arg: string, data: ArrayLike<number>): void {
  const i = firstNonFinite(data);
  if (i >= 0) {
    throw new WpcArgumentError(`${fn}: ${arg} must contain only finite numbers, got ${String(data[i])} at index ${i}`);
  }
}
