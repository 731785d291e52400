/**
 * The commands' argument layer. A command declares each of its flags once, in a table of `Flag`s: how the help
 * names it, its help text, and how its value is read and checked. The table gives Node's parseArgs its options,
 * the help its flag lines (`flagLines`), and the command its values (`parseFlags`). A bad value is a UsageError
 * that names the flag and what it must be ("--batch must be a positive integer, got "0"").
 *
 * Values are read when the command asks for them (`Args.value`), not all at once: a command checks its flags,
 * and the combinations between them, in the order it chooses, so that the first mistake reported is the same
 * whatever the table's order.
 */
import { parseArgs } from 'node:util';
import { WpcArgumentError } from '../runtime/errors.js';
import { groupDigits } from '../runtime/limits.js';
import { UsageError } from './checks.js';

/** What parseArgs hands over for one flag: a string, a switch's `true`, a repeated flag's strings, or nothing. */
type RawValue = string | boolean | (string | boolean)[] | undefined;

/** One flag of a command; `T` is its value (from `read`), whether given or not. */
interface Flag<T> {
  /** How the help names it, e.g. "--hidden H" or "-h, --help". */
  readonly label: string;
  /** Its help text, one entry per line, each starting at the help's text column; none: described with another. */
  readonly help: readonly string[];
  /** 'boolean' for a switch (no value), 'string' for a flag with a value. */
  readonly type: 'string' | 'boolean';
  /** The flag may be repeated (its value is every string given). */
  readonly multiple?: boolean;
  /** A one-letter alias (-h). */
  readonly short?: string;
  /** The value, from parseArgs' raw one; throws a UsageError naming `--name` for a bad one. */
  readonly read: (raw: RawValue, name: string) => T;
}

/** A command's flags by name (without the leading --), in the order of its help. */
type FlagTable = Readonly<Record<string, Flag<unknown>>>;

type FlagValue<F> = F extends Flag<infer T> ? T : never;

/** The parsed command line of a command with the flags `F`. */
interface Args<F extends FlagTable> {
  /** The arguments that are not flags (only commands that take them let `parseFlags` accept any). */
  readonly positionals: readonly string[];
  /** Whether --name was given. */
  given(name: keyof F & string): boolean;
  /** The text given for --name, unchecked (undefined when absent). */
  raw(name: keyof F & string): string | undefined;
  /** The value of --name, read and checked at this call. */
  value<K extends keyof F & string>(name: K): FlagValue<F[K]>;
}

/** Flags every command takes; they close every command's help. */
export const STANDARD_FLAGS = {
  debug: toggle('--debug', 'print the stack trace of an error'),
  help: { ...toggle('-h, --help', 'this help'), short: 'h' },
} as const;

/**
 * Parses `argv` against `flags` (and STANDARD_FLAGS): 'help' when -h/--help is given; otherwise the values,
 * read later. Unknown flags and missing values are Node's usage errors (ERR_PARSE_ARGS_*); a positional argument
 * is a usage error unless `positionals` allows them.
 */
export function parseFlags<F extends FlagTable>(
  argv: readonly string[],
  flags: F,
  positionals: 'none' | 'allowed' = 'none',
): Args<F> | 'help' {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const [name, flag] of Object.entries({ ...flags, ...STANDARD_FLAGS })) {
    options[name] = {
      type: flag.type,
      ...(flag.multiple ? { multiple: true } : {}),
      ...(flag.short === undefined ? {} : { short: flag.short }),
    };
  }
  const parsed = parseArgs({ args: [...argv], strict: true, allowPositionals: true, options });
  const values = parsed.values as Record<string, RawValue>;
  if (values.help) return 'help';
  if (positionals === 'none' && parsed.positionals.length > 0)
    throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  return {
    positionals: parsed.positionals,
    given: (name) => values[name] !== undefined,
    raw: (name) => (typeof values[name] === 'string' ? values[name] : undefined),
    value: (name) => flags[name]!.read(values[name], name) as FlagValue<F[typeof name]>,
  };
}

/**
 * The help's lines for `flags`: each label indented by two spaces and padded to `column` characters (its text
 * on the next line when the label is longer), each further line of its text indented to the column. A flag with
 * no help text is described with another (--atol with --rtol) and has no line of its own.
 */
export function flagLines(flags: FlagTable, column: number): string {
  const indent = ' '.repeat(column);
  return Object.values(flags)
    .filter((flag) => flag.help.length > 0)
    .map(({ label, help }) => {
      const head = `  ${label}`;
      const [first = '', ...rest] = help;
      const start = head.length < column ? head.padEnd(column) + first : `${head}\n${indent}${first}`;
      return [start, ...rest.map((line) => indent + line)].join('\n');
    })
    .join('\n');
}

function lines(help: string | readonly string[]): readonly string[] {
  return typeof help === 'string' ? [help] : help;
}

/** A flag that takes no value; its value is whether it was given. */
export function toggle(label: string, help: string | readonly string[]): Flag<boolean> {
  return { label, help: lines(help), type: 'boolean', read: (raw) => raw === true };
}

/** A flag whose value is kept as given (a file or folder name); undefined when absent. */
export function text(label: string, help: string | readonly string[]): Flag<string | undefined> {
  return { label, help: lines(help), type: 'string', read: (raw) => raw as string | undefined };
}

/** A flag that may be repeated; its values in order, undefined when absent. */
export function texts(label: string, help: string | readonly string[]): Flag<string[] | undefined> {
  return { label, help: lines(help), type: 'string', multiple: true, read: (raw) => raw as string[] | undefined };
}

/** A flag with a value that `parse` reads and checks (given the flag's name for messages); `fallback` when absent. */
export function valued<T, D = T>(
  label: string,
  help: string | readonly string[],
  fallback: D,
  parse: (raw: string, name: string) => T,
): Flag<T | D> {
  return {
    label,
    help: lines(help),
    type: 'string',
    read: (raw, name) => (raw === undefined ? fallback : parse(raw as string, name)),
  };
}

/** What a number must be: the check, and the words for it in messages ("a positive integer"). */
type NumberRule = readonly [check: (v: number) => boolean, expected: string];

const positiveInt = (v: number) => Number.isSafeInteger(v) && v > 0;
export const POSITIVE_INTEGER: NumberRule = [positiveInt, 'a positive integer'];
export const NON_NEGATIVE_INTEGER: NumberRule = [(v) => Number.isSafeInteger(v) && v >= 0, 'a non-negative integer'];
export const INTEGER: NumberRule = [Number.isSafeInteger, 'an integer'];
export const POSITIVE: NumberRule = [(v) => v > 0, 'a positive number'];
export const NON_NEGATIVE: NumberRule = [(v) => v >= 0, 'a non-negative number'];
/** A positive integer at most `max`. */
export const upTo = (max: number): NumberRule => [
  (v) => positiveInt(v) && v <= max,
  `an integer in 1..${groupDigits(max)}`,
];

/** `raw` as a finite number that satisfies `rule`, or a UsageError naming --`name`. */
export function numberValue(name: string, raw: string, [check, expected]: NumberRule): number {
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || !check(v))
    throw new UsageError(`--${name} must be ${expected}, got ${JSON.stringify(raw)}`);
  return v;
}

/** A number flag: `rule` when given, `fallback` (a number, or undefined for an optional flag) when not. */
export function number<D extends number | undefined>(
  label: string,
  help: string | readonly string[],
  fallback: D,
  rule: NumberRule,
): Flag<number | D> {
  return valued(label, help, fallback, (raw, name) => numberValue(name, raw, rule));
}

/** A flag whose value is one of `options`. */
export function choice<T extends string, D extends T | undefined>(
  label: string,
  help: string | readonly string[],
  options: readonly T[],
  fallback: D,
): Flag<T | D> {
  return valued(label, help, fallback, (raw, name) => {
    if (!(options as readonly string[]).includes(raw))
      throw new UsageError(`--${name} must be one of ${options.join(', ')}, got ${JSON.stringify(raw)}`);
    return raw as T;
  });
}

/**
 * `raw` as a comma-separated list of items that `item` reads (undefined for a bad one), or a UsageError naming
 * --`name` and saying what the items must be (`expected`).
 */
export function listValue<T>(name: string, raw: string, item: (s: string) => T | undefined, expected: string): T[] {
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0)
    throw new UsageError(`--${name} must be a comma-separated list of ${expected}, got ${JSON.stringify(raw)}`);
  return items.map((s) => {
    const v = item(s);
    if (v === undefined)
      throw new UsageError(
        `--${name} must be a comma-separated list of ${expected}, got ${JSON.stringify(s)} in ${JSON.stringify(raw)}`,
      );
    return v;
  });
}

/** A comma-separated list flag; `fallback` (copied) when absent. */
export function list<T>(
  label: string,
  help: string | readonly string[],
  fallback: readonly T[],
  item: (s: string) => T | undefined,
  expected: string,
): Flag<T[]> {
  return {
    label,
    help: lines(help),
    type: 'string',
    read: (raw, name) => (raw === undefined ? [...fallback] : listValue(name, raw as string, item, expected)),
  };
}

/** A list item that is a positive number. */
export const positiveNumberItem = (s: string): number | undefined => {
  const v = Number(s);
  return Number.isFinite(v) && v > 0 ? v : undefined;
};

/** A list item that is a positive integer written in digits. */
export const positiveIntegerItem = (s: string): number | undefined =>
  /^\d+$/.test(s) && positiveInt(Number(s)) ? Number(s) : undefined;

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
