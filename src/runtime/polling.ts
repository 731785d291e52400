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
 */
export type Polling = 'auto' | 'spin' | 'timer';

export const POLLING_MODES: readonly Polling[] = ['auto', 'spin', 'timer'];

const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

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
