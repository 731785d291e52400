/**
 * GPU-resident f32 arrays with a shape.
 *
 * A tensor is either *pooled* (it owns a buffer from the runtime's pool and gives it back on `dispose()`), or a
 * *view* of memory owned by something else (a model's parameters, a solver's workspace): disposing a view does
 * nothing to that memory. Reading a tensor is always explicit and asynchronous (`toArray()`, `item()`).
 */
import { WpcArgumentError } from './errors.js';
import type { Runtime } from './runtime.js';

export type Shape = readonly number[];

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

// A tensor the program forgot to dispose gives its buffer back when it is garbage-collected.
const leaked = new FinalizationRegistry<{ runtime: Runtime; buffer: GPUBuffer }>(({ runtime, buffer }) => {
  if (!runtime.disposed) runtime.pool.release(buffer);
});

export class Tensor {
  readonly shape: Shape;
  readonly size: number;
  private disposedFlag = false;

  /** @internal use `runtime.tensor(...)`, `runtime.zeros(...)` or a function that returns tensors. */
  constructor(
    readonly runtime: Runtime,
    private readonly gpuBuffer: GPUBuffer,
    /** Where the data starts in `buffer`, in bytes (a multiple of 4). */
    readonly byteOffset: number,
    shape: Shape,
    readonly owned: boolean,
  ) {
    this.shape = Object.freeze([...shape]);
    this.size = shapeSize(shape);
    if (owned) leaked.register(this, { runtime, buffer: gpuBuffer }, this);
  }

  /** The underlying buffer (shared by views); the data occupies `[byteOffset, byteOffset + byteLength)`. */
  get buffer(): GPUBuffer {
    this.assertAlive('buffer');
    return this.gpuBuffer;
  }

  get byteLength(): number {
    return this.size * 4;
  }

  get disposed(): boolean {
    return this.disposedFlag;
  }

  /** Copies the data to the CPU (one readback). */
  async toArray(): Promise<Float32Array> {
    this.assertAlive('toArray');
    const [data] = await this.runtime.read([
      { buffer: this.gpuBuffer, byteOffset: this.byteOffset, byteLength: this.byteLength },
    ]);
    return data!;
  }

  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new WpcArgumentError(
        `Tensor.item: the tensor must have exactly one element, got shape ${formatShape(this.shape)}`,
      );
    }
    return (await this.toArray())[0]!;
  }

  /** Gives a pooled tensor's memory back to the runtime; a no-op for views. Idempotent. */
  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    if (this.owned) {
      leaked.unregister(this);
      if (!this.runtime.disposed) this.runtime.pool.release(this.gpuBuffer);
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private assertAlive(what: string): void {
    if (this.disposedFlag) throw new WpcArgumentError(`Tensor.${what}: the tensor has been disposed`);
  }

  toString(): string {
    return `Tensor(${formatShape(this.shape)}${this.owned ? '' : ', view'})`;
  }
}

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
