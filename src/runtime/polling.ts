/**
 * How WPC's waits on the GPU poll in Node.
 *
 * dawn.node settles its promises (mapAsync, onSubmittedWorkDone, popErrorScope, createComputePipelineAsync)
 * from a loop it keeps alive while any of them is pending: each turn processes Dawn's events and schedules the
 * next turn through `globalThis.setImmediate`, looked up anew every time. That loop spins the JS thread at 100%
 * of a core. On a software adapter (lavapipe) the core it takes is one the adapter's own threads needed: on
 * 2 cores a training step waited for at once ran as slowly as with a single lavapipe thread.
 *
 * `'timer'` polling swaps `setImmediate`, for the duration of a WPC wait and for native callbacks only (Dawn's
 * loop; JavaScript callbacks keep the real one), for a 1-ms timer: the loop then costs next to nothing, for at
 * most about a millisecond of extra latency per wait. `'spin'` leaves Dawn alone. `'auto'` (the default) is
 * `'timer'` on software adapters in Node and `'spin'` everywhere else (a GPU is not slowed by the spinning,
 * and short solves there want the lowest latency). Browsers poll their own way; the setting does nothing there.
 *
 * With `'spin'`, a wait can first sleep through the time the work is expected to take (`SleepEstimator` learns
 * it), so that the spinning starts only when the work is nearly done.
 */
export type Polling = 'auto' | 'spin' | 'timer';

export const POLLING_MODES: readonly Polling[] = ['auto', 'spin', 'timer'];

/** Whether this is Node (Dawn), where waits may spin; browsers poll their own way. */
export const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

type Immediate = (callback: (...args: unknown[]) => void, ...args: unknown[]) => unknown;

let depth = 0;
let saved: Immediate | undefined;
let installed: Immediate | undefined;

function isNativeFunction(fn: unknown): boolean {
  return typeof fn === 'function' && /\{\s*\[native code\]\s*\}\s*$/.test(Function.prototype.toString.call(fn));
}

/** Awaits `wait()`; with `'timer'` polling in Node, Dawn's event loop ticks on a 1-ms timer meanwhile. */
export async function waitWithPolling<T>(mode: 'spin' | 'timer', wait: () => Promise<T>): Promise<T> {
  const g = globalThis as unknown as { setImmediate?: Immediate };
  if (mode === 'spin' || !isNode || typeof g.setImmediate !== 'function') return wait();
  if (depth++ === 0) {
    const original = g.setImmediate;
    const gentle: Immediate = (callback, ...args) =>
      isNativeFunction(callback) ? setTimeout(callback, 1, ...args) : original(callback, ...args);
    try {
      // Keep what hangs off the real one (e.g. util.promisify's custom implementation).
      Object.defineProperties(gentle, Object.getOwnPropertyDescriptors(original));
    } catch {
      // A frozen or exotic setImmediate: the plain wrapper still works.
    }
    saved = original;
    installed = gentle;
    g.setImmediate = gentle;
  }
  try {
    return await wait();
  } finally {
    if (--depth === 0) {
      // Restore only our own swap: someone who replaced it meanwhile keeps theirs.
      if (g.setImmediate === installed && saved) g.setImmediate = saved;
      saved = undefined;
      installed = undefined;
    }
  }
}

/**
 * Learns how long GPU work takes per unit (say, per solver step) so the host can sleep instead of letting
 * Dawn busy-poll. It learns only from waits that undershot (the map still had to wait, so sleep + map time is
 * the true duration) and backs off after oversleeping, so its own sleeps cannot inflate it.
 */
export class SleepEstimator {
  private msPerUnit = 0;
  private oversleeps = 0;

  /** How long to sleep before waiting for `units` of work submitted `sinceMs` ago. */
  sleepFor(units: number, sinceMs: number): number {
    return Math.max(0, 0.9 * this.msPerUnit * units - sinceMs);
  }

  /** Feeds back one wait: `totalMs` from submit to data, `mapMs` spent in the map after waking. */
  update(units: number, totalMs: number, mapMs: number): void {
    if (units <= 0) return;
    if (mapMs > 1) {
      this.msPerUnit = totalMs / units; // undershot: the GPU was still busy when we woke
      this.oversleeps = 0;
    } else {
      // Overslept (or the work was trivial): sleep less next time, faster after repeated oversleeps, so that a
      // first estimate inflated by pipeline compilation (seconds) is forgotten within a few waits.
      this.msPerUnit *= this.oversleeps++ > 0 ? 0.5 : 0.8;
    }
  }
}
