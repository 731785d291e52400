/**
 * Typed handles for what a workspace dispatches: a bind group built once together with the kernel it was made
 * for and its dispatch size. Whoever builds a handle keeps it (the workspace its own, a variant its own, in a
 * WeakMap per workspace), so nothing is looked up by name at dispatch time.
 */
import { type CompiledKernel, createBindGroup } from '../../runtime/kernel.js';
import type { Recorder } from '../../runtime/recorder.js';

/** A bind group and its kernel, with the workgroups a dispatch of it takes (x, or [x, y]). */
export interface Dispatch {
  readonly kernel: CompiledKernel;
  readonly group: GPUBindGroup;
  readonly workgroups: number | readonly [number, number];
}

/**
 * Both forms of a dispatch: plain, and gated by the solver state (the kernel returns at once when the solve has
 * stopped, so a chunk encoded ahead costs nothing after the end).
 */
export interface Gated<T> {
  readonly plain: T;
  readonly gated: T;
}

/** Records `d` (dynamic `offsets` for kernels with dynamic uniforms; `workgroups` overrides the stored size). */
export function record(rec: Recorder, d: Dispatch, offsets?: readonly number[], workgroups?: number): void {
  rec.dispatch(d.kernel, d.group, workgroups ?? d.workgroups, offsets);
}

/** Builds the bind group of `kernel` over `resources` (by binding name) and its handle. */
export function bind(
  device: GPUDevice,
  kernel: CompiledKernel,
  resources: Readonly<Record<string, GPUBuffer | GPUBufferBinding>>,
  workgroups: number | readonly [number, number],
): Dispatch {
  return { kernel, group: createBindGroup(device, kernel, resources), workgroups };
}

/**
 * `make` memoised per key object (a workspace, a model), held weakly: what a variant builds once per workspace
 * lives as long as that workspace.
 */
export function cachedPer<K extends object, T>(make: (key: K) => T): (key: K) => T {
  const cache = new WeakMap<K, T>();
  return (key) => {
    let value = cache.get(key);
    if (value === undefined) {
      value = make(key);
      cache.set(key, value);
    }
    return value;
  };
}
