// CIFAR-10-shaped data through the existing MLP training path, on files generated in CIFAR-10's binary format: the
// API (loadDataset → batches → makePcStep on a 3072-input MLP) and the command line (wpc train --dataset cifar10,
// a classifier and a label → image generator whose samples are colour PNGs, then wpc sample). Tiny sizes.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batches } from '../../src/data/dataset.js';
import { loadDataset } from '../../src/data/node.js';
import { makeMlp } from '../../src/pc/model.js';
import { adam } from '../../src/pc/optim.js';
import { makePcStep } from '../../src/pc/train.js';
import { CIFAR_FILES, cifarBytes, labelsFor } from '../support/cifar-fixtures.js';
import { wpc } from '../support/cli-run.js';
import { useRuntime } from '../support/helpers.js';

const rt = useRuntime();
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wpc-cifar-train-'));
  await mkdir(join(tmp, 'cifar10'));
  // 16 records per training file (80 in all), 16 test records.
  for (const [i, file] of CIFAR_FILES.entries())
    await writeFile(join(tmp, 'cifar10', file), cifarBytes(i, labelsFor(i, 16)));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('CIFAR-10-shaped data and a dense MLP', () => {
  it('loadDataset → batches → makePcStep: a 3072 → 16 → 10 network trains (the loss on one batch falls)', async () => {
    const train = await loadDataset('cifar10', 'train', { dataDir: tmp });
    const test = await loadDataset('cifar10', 'test', { dataDir: tmp });
    expect([train.count, train.inputDim, test.count]).toEqual([80, 3072, 16]);
    const model = makeMlp(rt(), {
      seed: 1,
      inputDim: train.inputDim,
      width: 16,
      depth: 2,
      outputDim: 10,
      actFn: 'tanh',
    });
    const optim = adam({ lr: 1e-2 });
    const state = optim.init(model);
    const [batch] = [...batches(train, { batchSize: 8, shuffle: true, seed: 3 })];
    const losses: number[] = [];
    for (let step = 0; step < 8; step++) {
      const r = await makePcStep(model, optim, state, batch!.y, { input: batch!.x, maxT1: 5, dt: 0.5 });
      losses.push(await r.loss!.item());
      r.loss!.dispose();
      r.energies.dispose();
    }
    for (const l of losses) expect(Number.isFinite(l)).toBe(true);
    expect(losses.at(-1)!).toBeLessThan(losses[0]!);
    model.dispose();
    state.dispose();
  });

  it('wpc train --dataset cifar10: a classifier, and a generator whose samples are colour; wpc sample draws colour', async () => {
    const common = ['--dataset', 'cifar10', '--data-dir', tmp, '--hidden', '1', '--width', '8', '--batch', '8'];
    const clf = await wpc(['train', ...common, '--max-batches', '2', '--test-every', '0', '--quiet']);
    expect(clf.code, clf.stderr).toBe(0);
    expect(JSON.parse(clf.stdout.trim().split('\n').at(-1)!)).toMatchObject({
      dataset: 'cifar10',
      task: 'discriminative',
      steps: 2,
    });

    const model = join(tmp, 'gen.json');
    const samples = join(tmp, 'samples.png');
    const gen = await wpc([
      'train',
      ...common,
      '--task',
      'generative',
      '--max-batches',
      '1',
      '--max-t1',
      '1',
      '--test-every',
      '0',
      '--test-batches',
      '1',
      '--test-max-t1',
      '1',
      '--save',
      model,
      '--samples',
      samples,
    ]);
    expect(gen.code, gen.stderr).toBe(0);
    expect(gen.stderr).toContain(`wrote generated images to ${samples}`);
    expect(JSON.parse(await readFile(model, 'utf8'))).toMatchObject({
      dims: [10, 8, 3072],
      meta: { dataset: 'cifar10' },
    });
    const png = decode(await readFile(samples));
    // Ten 32×32 images in a row, each pixel 3×3, 2 pixels of padding; RGB.
    expect([png.width, png.height, png.channels]).toEqual([2 + 10 * (32 * 3 + 2), 2 + 32 * 3 + 2, 3]);

    const out = join(tmp, 'more.png');
    const s = await wpc(['sample', '--model', model, '--out', out, '--labels', '1,2', '--scale', '1']);
    expect(s.code, s.stderr).toBe(0);
    const more = decode(await readFile(out));
    expect([more.width, more.height, more.channels]).toEqual([2 + 2 * 34, 2 + 34, 3]);
  });
});
