/** Helpers every benchmark shares. */
import { init, makeMlp, type InitOptions, type Model, type Runtime, type Tensor } from '../src/node.js';
import { Recorder } from '../src/runtime/recorder.js';
import { initOptionsWithTiles } from '../src/runtime/options.js';
import type { SleepEstimator } from '../src/runtime/polling.js';

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
  return init(initOptionsWithTiles(options, tiles as NonNullable<NonNullable<InitOptions['kernels']>['tiles']>));
}

/**
 * Milliseconds per dispatch of `count` dispatches that `record` adds, in one submit, timed from the submit to
 * the end of the work; the wait sleeps through most of it as `clock` (this kind of submit's estimator) expects.
 */
export async function perDispatchMs(
  rt: Runtime,
  count: number,
  record: (rec: Recorder) => void,
  clock: SleepEstimator,
): Promise<number> {
  const rec = new Recorder(rt, 'bench');
  for (let i = 0; i < count; i++) record(rec);
  await rt.finish();
  const t0 = performance.now();
  rec.submit();
  const { waitedMs } = await rt.finish({ expectedMs: clock.sleepFor(1, performance.now() - t0) });
  clock.update(1, performance.now() - t0, waitedMs);
  return (performance.now() - t0) / count;
}

/**
 * A JPC library-paper network (784 → H × 300 → 10, tanh, no bias, seed 0) with a batch of `batch` inputs
 * (sin(0.37·i)) and one-hot targets (class b mod 10), as the inference and tiles benchmarks time it.
 */
export function paperNetwork(rt: Runtime, H: number, batch: number): { model: Model; input: Tensor; output: Tensor } {
  const model = makeMlp(rt, { seed: 0, inputDim: 784, width: 300, depth: H + 1, outputDim: 10, actFn: 'tanh' });
  const x = new Float32Array(batch * 784).map((_, i) => Math.sin(i * 0.37));
  const y = new Float32Array(batch * 10);
  for (let b = 0; b < batch; b++) y[b * 10 + (b % 10)] = 1;
  return { model, input: rt.tensor(x, [batch, 784]), output: rt.tensor(y, [batch, 10]) };
}
