/** The settings of the TF.js benchmarks, read from environment variables (as WPC_BENCH_* are for the others). */

/** The variable's value, or `fallback` when it is unset or empty. */
export const envText = (name: string, fallback: string): string => process.env[name] || fallback;

/** A positive number (an integer where `integer`). */
export function positiveEnv(name: string, fallback: number, integer: boolean): number {
  const v = Number(envText(name, String(fallback)));
  if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new Error(`${name} must be a positive ${integer ? 'integer' : 'number'}, got ${process.env[name]}`);
  }
  return v;
}

/** One of `options`. */
export function choiceEnv<T extends string>(name: string, options: readonly T[], fallback: T): T {
  const v = envText(name, fallback);
  if (!options.includes(v as T)) throw new Error(`${name} must be one of ${options.join(', ')}, got ${v}`);
  return v as T;
}

/** A comma-separated list of `options`. */
export function choicesEnv<T extends string>(name: string, options: readonly T[], fallback: readonly T[]): T[] {
  const list = envText(name, fallback.join(',')).split(',');
  for (const v of list) {
    if (!options.includes(v as T)) throw new Error(`${name}: each must be one of ${options.join(', ')}, got ${v}`);
  }
  return list as T[];
}

/** A safe integer (a seed). */
export function seedEnv(name: string, fallback: number): number {
  const v = Number(envText(name, String(fallback)));
  if (!Number.isSafeInteger(v)) throw new Error(`${name} must be an integer, got ${process.env[name]}`);
  return v;
}
