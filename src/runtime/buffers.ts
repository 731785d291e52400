/**
 * Checks of what callers hand the runtime: tensor shapes (positive integers, within one storage binding) and
 * GPUBuffers of their own (usage, mapping state, size).
 */
import { WpcArgumentError, describe } from './errors.js';
import { BufferUsage } from './flags.js';
import { checkFits, storageLimit } from './limits.js';
import { type Shape, formatShape, shapeSize } from './shape.js';

export function checkShape(fn: string, shape: unknown): asserts shape is Shape {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 1)) {
    throw new WpcArgumentError(
      `${fn}: shape must be an array of positive integers, got ${Array.isArray(shape) ? JSON.stringify(shape) : describe(shape)}`,
    );
  }
}

/** A tensor of `shape` is one storage binding: its 4·Π shape bytes must fit the device's limit. */
export function checkShapeFits(fn: string, shape: Shape, limits: GPUSupportedLimits): void {
  checkFits(`${fn}: shape ${formatShape(shape)}`, 'one f32 tensor', shapeSize(shape) * 4, storageLimit(limits));
}

const USAGE_NAMES: [number, string][] = [
  [BufferUsage.STORAGE, 'STORAGE'],
  [BufferUsage.COPY_SRC, 'COPY_SRC'],
  [BufferUsage.COPY_DST, 'COPY_DST'],
];

/**
 * Validates a buffer handed in by the caller: a GPUBuffer, unmapped, with the `usage` bits WPC needs, and
 * holding `byteLength` bytes from `byteOffset`. (Whether it belongs to the right device only the GPU can tell:
 * a foreign buffer fails at its first use, with a validation error.)
 */
export function checkCallerBuffer(
  fn: string,
  arg: string,
  buffer: unknown,
  byteOffset: number,
  byteLength: number,
  usage: number,
): GPUBuffer {
  const b = buffer as GPUBuffer | null;
  if (
    typeof b !== 'object' ||
    b === null ||
    typeof b.size !== 'number' ||
    typeof b.usage !== 'number' ||
    typeof b.destroy !== 'function'
  ) {
    throw new WpcArgumentError(`${fn}: ${arg} must be a GPUBuffer, got ${describe(buffer)}`);
  }
  const missing = USAGE_NAMES.filter(([bit]) => (usage & bit) !== 0 && (b.usage & bit) === 0).map(([, name]) => name);
  if (missing.length > 0) {
    throw new WpcArgumentError(
      `${fn}: ${arg} needs GPUBufferUsage ${missing.join(' | ')} (create it with those usage flags), got usage 0x${b.usage.toString(16)}`,
    );
  }
  if (b.mapState !== undefined && b.mapState !== 'unmapped')
    throw new WpcArgumentError(`${fn}: ${arg} is ${b.mapState}; unmap it first`);
  if (byteOffset + byteLength > b.size) {
    throw new WpcArgumentError(
      `${fn}: ${arg} holds ${b.size} bytes, but ${byteLength} bytes from offset ${byteOffset} are needed`,
    );
  }
  return b;
}
