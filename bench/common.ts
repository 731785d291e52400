/** Helpers every benchmark shares. */
import { init, type InitOptions, type Runtime } from '../src/node.js';
import { Recorder } from '../src/runtime/recorder.js';
import type { SleepEstimator } from '../src/runtime/runtime.js';

/** The middle value (upper middle for an even count). */
export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The adapter as BENCHMARKS.md names it, with its subgroup size where fixed (lavapipe: 8 or 16 lanes) and the
 * register tiles where they are not the adapter's default (WPC_BENCH_TILES).
 */
export const adapterLabel = (rt: Runtime): string => {
  const lanes = rt.adapter.subgroupSize === null ? '' : `, ${rt.adapter.subgroupSize}-lane subgroups`;
  const tiles = rt.kernels.tiles ? `; tiles ${JSON.stringify(rt.kernels.tiles)}` : '';
  return `${rt.adapter.description || rt.adapter.device || rt.adapter.vendor} (${rt.adapter.architecture}${lanes})${tiles}`;
};

/**
 * `init` for the benchmarks. `WPC_BENCH_TILES` (JSON of `InitOptions.kernels.tiles`, e.g. `{"wg":64,"tm":8,"tn":8}`)
 * runs them with other register tiles than the adapter's default, such as the best of bench/tiles.ts on a GPU
 * whose default was not measured yet.
 */
export async function benchInit(options: InitOptions = {}): Promise<Runtime> {
  const text = process.env.WPC_BENCH_TILES;
  if (!text) return init(options);
  let tiles: unknown;
  try {
    tiles = JSON.parse(text);
  } catch {
    throw new Error(`WPC_BENCH_TILES must be JSON such as {"wg":64,"tm":4,"tn":4}, got ${text}`);
  }
  return init({ ...options, kernels: { ...options.kernels, tiles: tiles as NonNullable<NonNullable<InitOptions['kernels']>['tiles']> } });
}

/**
 * Milliseconds per dispatch of `count` dispatches that `record` adds, in one submit, timed from the submit to
 * the end of the work; the wait sleeps through most of it as `clock` (this kind of submit's estimator) expects.
 */
export async function perDispatchMs(rt: Runtime, count: number, record: (rec: Recorder) => void, clock: SleepEstimator): Promise<number> {
  const rec = new Recorder(rt, 'bench');
  for (let i = 0; i < count; i++) record(rec);
  await rt.finish();
  const t0 = performance.now();
  rec.submit();
  const { waitedMs } = await rt.finish({ expectedMs: clock.sleepFor(1, performance.now() - t0) });
  clock.update(1, performance.now() - t0, waitedMs);
  return (performance.now() - t0) / count;
}
