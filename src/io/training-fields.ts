/**
 * Checks of a training checkpoint's stored fields other than the model: counters, the optimiser's configuration
 * and the training log that `wpc train` keeps in `extra`. Saving and loading run the same checks, so a file
 * that saves also loads, and a field that a loader would trip on is refused with its name.
 */
import { WpcArgumentError, describe } from '../runtime/errors.js';
import { type Optimizer, adam, sgd } from '../pc/optim.js';
import { checkStoredKeys } from './checkpoint.js';

/** A counter stored as text: canonical decimal digits of a non-negative safe integer. */
export function parseCount(what: string, field: string, text: string | undefined): number {
  const v = text === undefined || !/^(0|[1-9]\d{0,15})$/.test(text) ? NaN : Number(text);
  if (!Number.isSafeInteger(v))
    throw new WpcArgumentError(
      `${what}: ${field} must be a non-negative integer (decimal digits, at most 2^53 − 1), got ${describe(text)}`,
    );
  return v;
}

function finite(
  what: string,
  field: string,
  v: unknown,
  range: { min: number; max?: number; minOpen?: boolean; maxOpen?: boolean },
  wanted: string,
): number {
  const { min, max, minOpen = false, maxOpen = false } = range;
  if (
    typeof v !== 'number' ||
    !Number.isFinite(v) ||
    (minOpen ? v <= min : v < min) ||
    (max !== undefined && (maxOpen ? v >= max : v > max))
  ) {
    throw new WpcArgumentError(
      `${what}: ${field} must be ${wanted}, got ${describe(v)}${v === null ? ' (NaN and ±Infinity become null in JSON)' : ''}`,
    );
  }
  return v;
}

function count(what: string, field: string, v: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max)
    throw new WpcArgumentError(`${what}: ${field} must be an integer in [0, ${max}], got ${describe(v)}`);
  return v;
}

/**
 * The optimiser a stored configuration describes (`Optimizer.config` as JSON): adam { lr, b1, b2, eps, epsRoot }
 * or sgd { lr, momentum?, nesterov }, with lr finite and ≥ 0, betas and momentum in [0, 1), eps and epsRoot finite,
 * ≥ 0 and not both 0 (what `adam` and `sgd` accept), nothing else. `where` names the object in messages.
 */
export function optimizerFromConfig(what: string, where: string, config: unknown): Optimizer {
  if (typeof config !== 'object' || config === null || Array.isArray(config))
    throw new WpcArgumentError(`${what}: ${where} must be an object, got ${describe(config)}`);
  const c = config as Record<string, unknown>;
  const lr = () => finite(what, `${where}.lr`, c.lr, { min: 0 }, 'a finite number ≥ 0');
  const unit = (k: string) =>
    finite(what, `${where}.${k}`, c[k], { min: 0, max: 1, maxOpen: true }, 'a finite number in [0, 1)');
  if (c.kind === 'adam') {
    checkStoredKeys(what, where, c, ['kind', 'lr', 'b1', 'b2', 'eps', 'epsRoot']);
    const settings = {
      lr: lr(),
      b1: unit('b1'),
      b2: unit('b2'),
      eps: finite(what, `${where}.eps`, c.eps, { min: 0 }, 'a finite number ≥ 0'),
      epsRoot: finite(what, `${where}.epsRoot`, c.epsRoot, { min: 0 }, 'a finite number ≥ 0'),
    };
    if (settings.eps === 0 && settings.epsRoot === 0)
      throw new WpcArgumentError(`${what}: ${where}.eps and ${where}.epsRoot cannot both be 0, got both 0`);
    return adam(settings);
  }
  if (c.kind === 'sgd') {
    checkStoredKeys(what, where, c, ['kind', 'lr', 'momentum', 'nesterov']);
    const rate = lr();
    const momentum = c.momentum === undefined || c.momentum === null ? undefined : unit('momentum');
    if (typeof c.nesterov !== 'boolean')
      throw new WpcArgumentError(`${what}: ${where}.nesterov must be a boolean, got ${describe(c.nesterov)}`);
    if (c.nesterov && momentum === undefined)
      throw new WpcArgumentError(`${what}: ${where}.nesterov is true without ${where}.momentum`);
    return sgd(
      momentum === undefined ? { lr: rate, nesterov: c.nesterov } : { lr: rate, momentum, nesterov: c.nesterov },
    );
  }
  throw new WpcArgumentError(`${what}: ${where}.kind must be "adam" or "sgd", got ${describe(c.kind)}`);
}

/**
 * The training log `wpc train` keeps in `extra` (reserved keys; others are the caller's own): `settings` a plain
 * object; `curve` an array of { step, loss, inferenceSteps, rejected } with steps increasing and at most `step`,
 * losses finite, counts non-negative integers, rejected ≤ inferenceSteps; `tests` an array of { step, loss,
 * accuracy } with steps non-decreasing and at most `step`, loss finite or null (none: the generative task),
 * accuracy in [0, 100]. `extra` has already passed checkJsonObject.
 */
export function checkTrainingLog(what: string, where: string, extra: Record<string, unknown>, step: number): void {
  const { settings, curve, tests } = extra;
  if (settings !== undefined && (typeof settings !== 'object' || settings === null || Array.isArray(settings))) {
    throw new WpcArgumentError(
      `${what}: ${where}.settings must be an object (the run's settings), got ${describe(settings)}`,
    );
  }
  const entries = (key: string, v: unknown): Record<string, unknown>[] => {
    if (!Array.isArray(v))
      throw new WpcArgumentError(`${what}: ${where}.${key} must be an array of records, got ${describe(v)}`);
    v.forEach((e, i) => {
      if (typeof e !== 'object' || e === null || Array.isArray(e))
        throw new WpcArgumentError(`${what}: ${where}.${key}[${i}] must be an object, got ${describe(e)}`);
    });
    return v as Record<string, unknown>[];
  };
  if (curve !== undefined) {
    let last = -1;
    entries('curve', curve).forEach((e, i) => {
      const at = `${where}.curve[${i}]`;
      const s = count(what, `${at}.step`, e.step, step);
      if (s <= last)
        throw new WpcArgumentError(`${what}: ${at}.step must be above the previous entry's (${last}), got ${s}`);
      last = s;
      finite(what, `${at}.loss`, e.loss, { min: -Infinity }, 'a finite number');
      const total = count(what, `${at}.inferenceSteps`, e.inferenceSteps);
      count(what, `${at}.rejected`, e.rejected, total);
    });
  }
  if (tests !== undefined) {
    let last = 0;
    entries('tests', tests).forEach((e, i) => {
      const at = `${where}.tests[${i}]`;
      const s = count(what, `${at}.step`, e.step, step);
      if (s < last)
        throw new WpcArgumentError(`${what}: ${at}.step must not be below the previous entry's (${last}), got ${s}`);
      last = s;
      if (e.loss !== null) finite(what, `${at}.loss`, e.loss, { min: -Infinity }, 'a finite number or null');
      finite(what, `${at}.accuracy`, e.accuracy, { min: 0, max: 100 }, 'a finite number in [0, 100]');
    });
  }
}
