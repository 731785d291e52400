// Training on MNIST with the steady-state event: long enough (two 120-step runs of the paper network) for the
// full tier only; the quick tier's MNIST run is test/pc/train.test.ts's 150 steps.
import { describe, expect, it } from 'vitest';
import { adam } from '../../src/pc/optim.js';
import { makePcStep } from '../../src/pc/train.js';
import { testDiscriminativePc } from '../../src/pc/evaluate.js';
import { makeMlp } from '../../src/pc/model.js';
import { loadDataset } from '../../src/data/node.js';
import { batches, oneHot, subset } from '../../src/data/dataset.js';
import { DATA_DIR } from '../support/cli-run.js';
import { useRuntime } from '../support/helpers.js';

const rt = useRuntime();

describe('training on MNIST', () => {
  it('with the steady-state event every solve stops early and the accuracy is that of integrating to maxT1', async () => {
    const [train, test] = await Promise.all([
      loadDataset('mnist', 'train', { dataDir: DATA_DIR }),
      loadDataset('mnist', 'test', { dataDir: DATA_DIR }),
    ]);
    const few = subset(test, 2000);
    const run = async (steadyState: false | { rtol: number; atol: number }) => {
      const model = makeMlp(rt(), { seed: 1, inputDim: 784, width: 300, depth: 4, outputDim: 10, actFn: 'tanh' });
      const optim = adam({ lr: 1e-3 });
      const state = optim.init(model);
      const times: number[] = [];
      let readbacks = 0;
      for (const b of batches(subset(train, 120 * 64), { batchSize: 64, shuffle: true, seed: 1 })) {
        const before = rt().stats.readbacks;
        const r = await makePcStep(model, optim, state, b.y, { input: b.x, maxT1: 500, dt: 0.05, steadyState });
        readbacks = Math.max(readbacks, rt().stats.readbacks - before);
        times.push(r.t);
        r.loss!.dispose();
        r.energies.dispose();
      }
      const { acc } = await testDiscriminativePc(model, oneHot(few.labels), few.images);
      model.dispose();
      return { times, acc, readbacks };
    };
    // With JPC's 1/B normalisation dz/dt is small: the event needs tolerances below the controller's 1e-3,
    // which would already hold at t = 0.
    const early = await run({ rtol: 3e-5, atol: 3e-5 });
    const full = await run(false);
    expect(full.times.every((t) => t === 500)).toBe(true);
    expect(
      early.times.every((t) => t > 0 && t < 500),
      'every solve stopped early',
    ).toBe(true);
    expect(early.times.reduce((a, b) => a + b, 0) / early.times.length).toBeLessThan(250);
    expect(Math.abs(early.acc - full.acc), `accuracy ${early.acc} with the event, ${full.acc} to maxT1`).toBeLessThan(
      1.5,
    );
    expect(early.readbacks, 'a few polls per solve, never one per step').toBeLessThanOrEqual(3);
  });
});
