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
 * What a divergence guard found: NaN/±Inf in a layer's energy, the activities, the parameter gradients or the
 * loss, or a finite runaway of the total energy or the loss past the divergence threshold.
 */
export type DivergenceKind = 'energy' | 'activity' | 'gradient' | 'loss' | 'energy-runaway' | 'loss-runaway';

/** The numbers of a runaway: value > threshold = max(factor × reference, floor). */
export interface RunawayDetails {
  value: number;
  threshold: number;
  /** The largest value of the run's first guarded steps (at most `warmup`, before this one). */
  reference: number;
  /** How many steps the reference was taken over. */
  referenceSteps: number;
  factor: number;
  floor: number;
}

/** Where the guard caught it: before the step's update (withheld), or after it (rolled back). */
export interface DivergenceDetails {
  /** True when the step's update was applied, found ruinous and rolled back; false when it was withheld. */
  afterUpdate?: boolean;
  runaway?: RunawayDetails | null;
}

const fmt = (x: number) =>
  Math.abs(x) >= 1e-3 && Math.abs(x) < 1e5 ? String(Number(x.toPrecision(4))) : x.toExponential(3);

/**
 * A training step diverged: NaN or ±Inf (activities, energies, gradients, the loss) or, with the runaway check, a
 * finite energy or loss past the divergence threshold. The step's update was not applied, or was rolled back, so
 * the model keeps its last good weights; `step` is the training step (optimiser count) that diverged, `what` and
 * `layer` where it was first seen.
 */
export class WpcDivergenceError extends Error {
  override name = 'WpcDivergenceError';
  /** True when the step's update was applied, then rolled back by the after-update check. */
  readonly afterUpdate: boolean;
  /** The value, threshold and reference of a runaway (`what` ends in '-runaway'); null otherwise. */
  readonly runaway: RunawayDetails | null;
  constructor(
    message: string,
    readonly step: number,
    readonly what: DivergenceKind,
    readonly layer: number,
    details: DivergenceDetails = {},
  ) {
    super(message);
    this.afterUpdate = details.afterUpdate ?? false;
    this.runaway = details.runaway ?? null;
  }

  /**
   * What happened, in words: "training diverged at step N: <what>. The parameter update of step N was not
   * applied (or: was rolled back), so the model keeps its weights from step N−1" (callers add what to do about
   * it). `layer` is the 0-based layer (for activities: the index l of z_l); -1 where none applies (a
   * gradient-norm overflow, the total energy, the loss, a runaway).
   */
  static describe(step: number, what: DivergenceKind, layer: number, details: DivergenceDetails = {}): string {
    const after = details.afterUpdate ?? false;
    const r = details.runaway ?? null;
    // After the update, the guard looks at the updated model's feedforward pass on the step's batch.
    const loss = after
      ? "the loss (of the updated model's feedforward prediction on the step's batch)"
      : 'the loss (of the feedforward prediction)';
    const energyAfter = 'the energy of the feedforward pass from the inferred z_0';
    let found: string;
    if (what === 'energy-runaway' || what === 'loss-runaway') {
      const quantity = what === 'loss-runaway' ? loss : after ? energyAfter : 'the energy at equilibrium';
      const value = r ? fmt(r.value) : 'a runaway value';
      const limit = r
        ? `the divergence threshold ${fmt(r.threshold)} (` +
          (r.floor >= r.factor * r.reference
            ? `the floor; ${fmt(r.factor)} × the reference ${fmt(r.reference)} is lower`
            : `${fmt(r.factor)} × the reference ${fmt(r.reference)}`) +
          `, the largest ${what === 'loss-runaway' ? 'loss' : 'energy'} of the run's first ${r.referenceSteps} step${r.referenceSteps === 1 ? '' : 's'})`
        : 'the divergence threshold';
      found = after
        ? `its parameter update raised ${quantity} to ${value}, above ${limit}`
        : `${quantity} was ${value}, above ${limit}`;
    } else {
      const where =
        what === 'energy'
          ? after
            ? layer < 0
              ? `${energyAfter} (its total)`
              : `${energyAfter} (layer ${layer + 1})`
            : layer < 0
              ? 'the total energy'
              : `the energy of layer ${layer + 1} (its prediction error)`
          : what === 'activity'
            ? `the activities z_${layer}`
            : what === 'loss'
              ? loss
              : layer < 0
                ? 'the gradient norm (overflow)'
                : `the parameter gradients of layer ${layer + 1}`;
      found = after ? `its parameter update made ${where} NaN or Inf` : `NaN or Inf in ${where}`;
    }
    const kept = after
      ? `The update of step ${step} was rolled back (parameters and optimiser state restored bit for bit), so the model keeps its weights from step ${step - 1}`
      : `The parameter update of step ${step} was not applied, so the model keeps its weights from step ${step - 1}`;
    return `training diverged at step ${step}: ${found}. ${kept}`;
  }
}

/**
 * `e instanceof WpcError` is true for every error WPC throws on purpose: WpcArgumentError, WpcGpuError,
 * WpcShaderError, WpcSolverError, WpcDivergenceError, and IdxError from the IDX reader (registered there).
 * (The classes keep their own bases — WpcArgumentError is a TypeError — so this is a check, not a base class.)
 */
export class WpcError extends Error {
  static readonly members: (abstract new (...args: never[]) => Error)[] = [
    WpcArgumentError,
    WpcGpuError,
    WpcShaderError,
    WpcSolverError,
    WpcDivergenceError,
  ];
  static override [Symbol.hasInstance](value: unknown): boolean {
    return WpcError.members.some((C) => value instanceof C);
  }
}

/**
 * `text` safe to print in a message: control characters (C0, DEL, C1), line and paragraph separators, bidi
 * overrides, replacement characters (the marks of decoded binary data) and lone surrogates become `\xNN` /
 * `\uNNNN` escapes, so a name or a third-party message can never smuggle raw bytes or terminal escapes into an
 * error. Ordinary text, including non-ASCII letters, is unchanged.
 */
export function printable(text: string): string {
  return String(text).replace(
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufffd]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    (c) => {
      const code = c.charCodeAt(0);
      return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
    },
  );
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
