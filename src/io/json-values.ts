/**
 * Checks and a canonical form for the free-form JSON that checkpoints carry (a model's `meta`, a training
 * checkpoint's `extra`): plain data only, so that what is saved is what is loaded and a checksum over it means
 * the same thing on both sides.
 */
import { WpcArgumentError, describe } from '../runtime/errors.js';

/** Deepest nesting accepted (deep enough for any record, shallow enough for a recursive reader's stack). */
const MAX_JSON_DEPTH = 100;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Throws a WpcArgumentError (`${what}: ${field}…`) unless `value` is plain JSON data: null, booleans, finite
 * numbers, strings, arrays and plain objects of them, nested at most MAX_JSON_DEPTH deep. Iterative, so a deeply
 * nested value cannot overflow the stack.
 */
export function checkJsonValue(what: string, field: string, value: unknown): void {
  const stack: [unknown, string, number][] = [[value, field, 0]];
  while (stack.length > 0) {
    const [v, at, depth] = stack.pop()!;
    if (v === null || typeof v === 'boolean' || typeof v === 'string') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v))
        throw new WpcArgumentError(`${what}: ${at} must be a finite number (JSON has no NaN or Infinity), got ${v}`);
      continue;
    }
    if (depth >= MAX_JSON_DEPTH)
      throw new WpcArgumentError(
        `${what}: ${field} is nested more than ${MAX_JSON_DEPTH} levels deep (at ${at.slice(0, 80)}…)`,
      );
    if (Array.isArray(v)) {
      v.forEach((u, i) => stack.push([u, `${at}[${i}]`, depth + 1]));
    } else if (isPlainObject(v)) {
      for (const [k, u] of Object.entries(v)) stack.push([u, `${at}.${k}`, depth + 1]);
    } else {
      throw new WpcArgumentError(
        `${what}: ${at} must be JSON data (null, a boolean, a finite number, a string, an array or a plain object), got ${describe(v)}`,
      );
    }
  }
}

/** `checkJsonValue`, and a plain object at the top. */
export function checkJsonObject(what: string, field: string, value: unknown): Record<string, unknown> {
  if (!isPlainObject(value))
    throw new WpcArgumentError(`${what}: ${field} must be a plain JSON object, got ${describe(value)}`);
  checkJsonValue(what, field, value);
  return value;
}

/**
 * A copy of `value` as JSON reads it back: `JSON.parse(JSON.stringify(value))` (toJSON applied, undefined members
 * dropped), refused with a WpcArgumentError when that fails or is not plain JSON data. For values about to be
 * stored, so that the stored and the loaded value are the same.
 */
export function asStoredJson(what: string, field: string, value: unknown): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new WpcArgumentError(`${what}: ${field} must be JSON-serialisable: ${(e as Error).message}`);
  }
  if (text === undefined) throw new WpcArgumentError(`${what}: ${field} must be JSON data, got ${describe(value)}`);
  const copy: unknown = JSON.parse(text);
  checkJsonValue(what, field, copy);
  return copy;
}

/**
 * The canonical text of a value that passed `checkJsonValue`: JSON with every object's keys sorted, no
 * whitespace. Two values with equal content (whatever their key order or number spelling) give equal text.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Where a JSON.parse failed, without the engine's quote of the text around it ("Unexpected token 'r',
 * "root:x:0:0"... is not valid JSON"): error messages never repeat a file's contents.
 */
export function jsonSyntaxProblem(error: unknown): string {
  const message = error instanceof Error ? error.message : '';
  const at = /at position (\d+)/.exec(message);
  if (at) return `a syntax error at character ${at[1]}`;
  if (/end of JSON input/i.test(message)) return 'it ends too early';
  return 'a syntax error';
}
