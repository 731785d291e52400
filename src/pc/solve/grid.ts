/**
 * diffrax's constant-step grid, computed on the host with JAX's float32 time arithmetic: the first step is
 * [0, dt0], then t_n = t1·n/N with N = ⌈t1/nextafter(dt0)⌉ (diffrax ≥ 0.7.1), and a step ending within 100
 * float32 ulps of t1 ends at t1. A fixed-step solve knows its whole grid before it starts, so the GPU never
 * decides a step size for it.
 */
import { WpcArgumentError } from '../../runtime/errors.js';
import { groupDigits } from '../../runtime/limits.js';

/**
 * Most steps one solve may take or encode: `maxSteps`, discrete `steps` and `pollEvery` are refused above it
 * (diffrax's default max_steps is 4096; this is 64 times that). Encoding a step costs the host a few dispatches.
 */
export const MAX_SOLVE_STEPS = 262_144;

/** A grid's step ends and step sizes, both float32. */
interface StepGrid {
  readonly ends: readonly number[];
  readonly sizes: readonly number[];
}

const f32 = Math.fround;
const scratch = new DataView(new ArrayBuffer(4));

/** The next float32 after `x` upwards or downwards. */
function stepF32(x: number, up: boolean): number {
  const v = f32(x);
  if (v === 0) return up ? 1.4e-45 : -1.4e-45;
  scratch.setFloat32(0, v);
  const bits = scratch.getUint32(0);
  scratch.setUint32(0, v > 0 === up ? bits + 1 : bits - 1);
  return scratch.getFloat32(0);
}

/** t1 minus 100 float32 ulps: diffrax rounds a step ending past it to t1. */
export function t1ClipFloor(t1: number): number {
  let t = f32(t1);
  for (let i = 0; i < 100; i++) t = stepF32(t, false);
  return t;
}

/** The last grids built (every solve of a training run asks for the same one). */
const gridCache = new Map<string, StepGrid>();

/** The grid of (t1, dt0), frozen, from the cache when it was built lately. */
export function constantStepGrid(t1: number, dt0: number): StepGrid {
  const key = `${t1}:${dt0}`;
  let grid = gridCache.get(key);
  if (!grid) {
    const ends = Object.freeze(buildConstantStepEnds(t1, dt0));
    grid = { ends, sizes: Object.freeze(ends.map((t, i) => f32(t - (i === 0 ? 0 : ends[i - 1]!)))) };
    if (ends.length <= 1 << 16) {
      if (gridCache.size >= 8) gridCache.delete(gridCache.keys().next().value!);
      gridCache.set(key, grid);
    }
  }
  return grid;
}

/**
 * N = ⌈t1/nextafter(dt0)⌉ in float32: the grid's step count (up to the rounding of the last steps); Infinity
 * when dt0 rounds to 0.
 */
export function gridSteps(t1: number, dt0: number): number {
  const n = Math.ceil(f32(f32(t1) / stepF32(f32(dt0), true)));
  return Number.isFinite(n) ? Math.max(1, n) : Infinity;
}

/**
 * Steps of diffrax's ConstantStepSize on [0, t1] with dt0: exact up to MAX_SOLVE_STEPS, and beyond it a number
 * above MAX_SOLVE_STEPS (or Infinity), found without building the grid.
 */
export function constantStepCount(t1: number, dt0: number): number {
  const n = gridSteps(t1, dt0);
  return n > MAX_SOLVE_STEPS + 1 ? n : constantStepGrid(t1, dt0).ends.length;
}

/**
 * Whether the grid of (t1, dt0) has more than `limit` steps. It has at most N steps, and fewer only by the steps
 * the float32 clip at t1 drops (those within 100 ulps of t1: below N/2¹⁶ in a random sample of grids), so it is
 * built only when `limit` falls in a band of N/2¹² below N.
 */
export function gridLongerThan(t1: number, dt0: number, limit: number): boolean {
  const n = gridSteps(t1, dt0);
  if (n <= limit) return false;
  if (n - Math.ceil(n / 2 ** 12) - 2 > limit) return true;
  return constantStepCount(t1, dt0) > limit;
}

function buildConstantStepEnds(t1: number, dt0: number): number[] {
  const T1 = f32(t1);
  const dt = f32(dt0);
  const n = gridSteps(t1, dt0);
  if (n > MAX_SOLVE_STEPS + 1) {
    throw new WpcArgumentError(
      `constantStepEnds: a constant step of ${dt0} needs ${n} steps to reach ${t1}, more than ${groupDigits(MAX_SOLVE_STEPS)} (MAX_SOLVE_STEPS)`,
    );
  }
  const floor = t1ClipFloor(T1);
  const ends: number[] = [];
  let tprev = 0;
  let tnext = Math.min(dt, T1);
  let completed = 1;
  while (tprev < T1) {
    ends.push(tnext);
    completed++;
    const t1Next = completed === n ? T1 : f32(f32(T1) * f32(completed / n));
    tprev = Math.min(tnext, T1);
    tnext = t1Next > floor ? T1 : t1Next;
    if (ends.length > n + 1) throw new Error('constantStepEnds: the grid has more steps than t1/dt allows');
  }
  return ends;
}

/** Ends of the steps of diffrax's ConstantStepSize on [0, t1] with dt0, in float32. */
export function constantStepEnds(t1: number, dt0: number): readonly number[] {
  return constantStepGrid(t1, dt0).ends;
}

/** Step sizes of diffrax's ConstantStepSize on [0, t1] with dt0, in float32, as the GPU takes them. */
export function constantStepSizes(t1: number, dt0: number): readonly number[] {
  return constantStepGrid(t1, dt0).sizes;
}
