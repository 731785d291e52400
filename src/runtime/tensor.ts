/**
 * Tensor checks for public functions, and the tensor names in one place: the `Tensor` class itself is defined
 * with the runtime that makes it (runtime.ts), shapes in shape.ts.
 */
import { WpcArgumentError } from './errors.js';
import { type Runtime, Tensor } from './runtime.js';
import { type Shape, formatShape } from './shape.js';

export { Tensor } from './runtime.js';
export { type Shape, formatShape } from './shape.js';

/** Validates that `t` is a live tensor of this runtime with the given shape (`-1` matches any size). */
export function checkTensor(fn: string, arg: string, t: unknown, runtime: Runtime, shape?: Shape): Tensor {
  if (!(t instanceof Tensor)) {
    throw new WpcArgumentError(
      `${fn}: ${arg} must be a Tensor, got ${t === null ? 'null' : typeof t === 'object' ? (t.constructor?.name ?? 'an object') : typeof t}`,
    );
  }
  if (t.disposed) throw new WpcArgumentError(`${fn}: ${arg} has been disposed`);
  if (t.runtime !== runtime)
    throw new WpcArgumentError(`${fn}: ${arg} belongs to a different runtime (GPU device) than the other arguments`);
  if (shape) {
    const ok = shape.length === t.shape.length && shape.every((d, i) => d < 0 || d === t.shape[i]);
    if (!ok) {
      const expected = formatShape(shape).replace(/-1/g, '*');
      throw new WpcArgumentError(`${fn}: ${arg} must have shape ${expected}, got ${formatShape(t.shape)}`);
    }
  }
  return t;
}
