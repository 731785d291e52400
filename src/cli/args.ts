/**
 * Parsing of command-line values, with the usage errors that name the flag.
 */
import { WpcArgumentError } from '../runtime/errors.js';
import { groupDigits } from '../runtime/limits.js';
import { UsageError } from './checks.js';

export function parseNumber(
  flag: string,
  raw: string | undefined,
  fallback: number,
  check: (v: number) => boolean,
  expected: string,
): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || !check(v))
    throw new UsageError(`--${flag} must be ${expected}, got ${JSON.stringify(raw)}`);
  return v;
}

export const positiveInt = (v: number) => Number.isSafeInteger(v) && v > 0;
export const nonNegativeInt = (v: number) => Number.isSafeInteger(v) && v >= 0;
export const positive = (v: number) => v > 0;
/** A positive integer at most `max`, with the expected text for messages. */
export const upTo = (max: number): [(v: number) => boolean, string] => [
  (v) => positiveInt(v) && v <= max,
  `an integer in 1..${groupDigits(max)}`,
];

/** Solver options' names and the flags that set them, for messages about them. */
const SOLVER_FLAGS: [RegExp, string][] = [
  [/options\.stepsizeController\.pid needs rtol > 0 or atol > 0, got both 0/g, '--rtol and --atol cannot both be 0'],
  [/options\.stepsizeController\.pid\.rtol/g, '--rtol'],
  [/options\.stepsizeController\.pid\.atol/g, '--atol'],
  [/options\.steadyState\.(rtol|atol)/g, '--steady-state'],
  [/options\.maxT1/g, '--max-t1'],
  [/options\.dt/g, '--dt'],
  [/options\.maxSteps/g, '--max-steps'],
  [/options\.pollEvery/g, '--poll-every'],
  [/options\.steps/g, '--steps'],
];

/**
 * Runs the library's check of solver options at parse time, reporting a refusal as a usage error that names the
 * flags (`flags` maps option names to them; `prefix` is the library function's name in its messages).
 */
export function checkSolverFlags<T>(
  check: () => T,
  prefix: string,
  flags: readonly [RegExp, string][] = SOLVER_FLAGS,
): T {
  try {
    return check();
  } catch (e) {
    if (!(e instanceof WpcArgumentError)) throw e;
    let message = e.message.startsWith(`${prefix}: `) ? e.message.slice(prefix.length + 2) : e.message;
    for (const [pattern, flag] of flags) message = message.replace(pattern, flag);
    throw new UsageError(message);
  }
}

export function oneOf<T extends string>(flag: string, raw: string | undefined, fallback: T, options: readonly T[]): T {
  if (raw === undefined) return fallback;
  if (!(options as readonly string[]).includes(raw)) {
    throw new UsageError(`--${flag} must be one of ${options.join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return raw as T;
}

export function parseList<T>(
  flag: string,
  raw: string | undefined,
  fallback: readonly T[],
  parse: (item: string) => T | undefined,
  expected: string,
): T[] {
  if (raw === undefined) return [...fallback];
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0)
    throw new UsageError(`--${flag} must be a comma-separated list of ${expected}, got ${JSON.stringify(raw)}`);
  return items.map((item) => {
    const v = parse(item);
    if (v === undefined)
      throw new UsageError(
        `--${flag} must be a comma-separated list of ${expected}, got ${JSON.stringify(item)} in ${JSON.stringify(raw)}`,
      );
    return v;
  });
}

export const positiveNumber = (s: string) => {
  const v = Number(s);
  return Number.isFinite(v) && v > 0 ? v : undefined;
};
