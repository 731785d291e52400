// Shared plumbing of the examples: flags, MNIST, test loops and a final JSON line. The PC itself is in each
// example, written with WPC's public API exactly as a user would (import ... from 'webgpu-pc').
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { batches, init, loadDataset, testDiscriminativePc } from 'webgpu-pc';

/**
 * Parses the flags every example takes, with the notebook's defaults for `iters` and `testEvery`:
 *   --data-dir DIR    folder with mnist/ (default: the lookup order of loadDataset; see 'wpc data path --help')
 *   --iters N         training iterations (batches of 64)
 *   --test-every N    test every N iterations (0: only at the end)
 *   --test-batches N  test on the first N test batches (default: the whole test set)
 *   --out DIR         where images go (default examples/out)
 *   --seed S          seed of the weights and of the shuffling
 *   --quiet           no progress lines
 * plus the example's own `extra` options (parseArgs format).
 */
export function setup(name, defaults, extra = {}) {
  const { values } = parseArgs({
    options: {
      'data-dir': { type: 'string' },
      iters: { type: 'string' },
      'test-every': { type: 'string' },
      'test-batches': { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string' },
      quiet: { type: 'boolean' },
      ...extra,
    },
  });
  const int = (flag, fallback) => {
    const raw = values[flag];
    if (raw === undefined) return fallback;
    const v = Number(raw);
    if (!Number.isInteger(v) || v < 0) throw new Error(`${name}: --${flag} must be a non-negative integer, got ${raw}`);
    return v;
  };
  // Without --data-dir, loadDataset looks in WPC_DATA_DIR, the per-user cache, then ../shared/datasets.
  const dataDir = values['data-dir'];
  const out = values.out ?? join('examples', 'out');
  mkdirSync(out, { recursive: true });
  return {
    values,
    dataDir,
    iters: int('iters', defaults.iters),
    testEvery: int('test-every', defaults.testEvery),
    testBatches: values['test-batches'] === undefined ? undefined : int('test-batches', 0),
    seed: int('seed', defaults.seed ?? 0),
    out,
    quiet: values.quiet ?? false,
    started: performance.now(),
    log: (message) => {
      if (!values.quiet) process.stderr.write(`${message}\n`);
    },
  };
}

export async function mnist(dataDir) {
  const options = dataDir === undefined ? {} : { dataDir };
  const [train, test] = await Promise.all([
    loadDataset('mnist', 'train', options),
    loadDataset('mnist', 'test', options),
  ]);
  return { train, test, runtime: await init() };
}

/** `iters` training batches of 64 (one shuffled pass, as JPC's loaders with drop_last). */
export function* trainingBatches(dataset, iters, seed, batchSize = 64) {
  let i = 0;
  for (let epoch = 0; ; epoch++) {
    for (const batch of batches(dataset, { batchSize, shuffle: true, seed: seed * 1000 + epoch })) {
      if (i++ >= iters) return;
      yield batch;
    }
  }
}

/** The test batches of 64 (drop_last), at most `limit`. */
export function* testBatches(dataset, limit, batchSize = 64) {
  let i = 0;
  for (const batch of batches(dataset, { batchSize, shuffle: false })) {
    if (limit !== undefined && i++ >= limit) return;
    yield batch;
  }
}

/** JPC's notebooks' test accuracy: test_discriminative_pc averaged over test batches. */
export async function discriminativeAccuracy(model, test, limit) {
  let sum = 0;
  let n = 0;
  for (const b of testBatches(test, limit)) {
    sum += (await testDiscriminativePc(model, b.y, b.x)).acc;
    n++;
  }
  return sum / n;
}

/** Prints the example's result as the last stdout line (JSON). */
export function report(ctx, name, result) {
  const seconds = (performance.now() - ctx.started) / 1000;
  process.stdout.write(
    `${JSON.stringify({ example: name, iters: ctx.iters, ...result, seconds: Number(seconds.toFixed(1)) })}\n`,
  );
}
