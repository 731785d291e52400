// The `wpc` command line, run as a user would: `node dist/cli.js ...` (npm test builds dist/ first).
import { describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATA_DIR, ROOT, wpc } from '../support/cli-run.js';

const FLAGS = [
  'arch',
  'dataset',
  'data-dir',
  'hidden',
  'width',
  'act',
  'bias',
  'loss',
  'solver',
  'controller',
  'max-t1',
  'dt',
  'rtol',
  'atol',
  'steady-state',
  'max-steps',
  'poll-every',
  'steps',
  'activity-lr',
  'batch',
  'lr',
  'epochs',
  'max-batches',
  'test-every',
  'seed',
  'tiles',
  'out',
  'quiet',
  'help',
  'task',
  'test-max-t1',
  'test-batches',
  'save',
  'samples',
  'checkpoint',
  'checkpoint-every',
  'resume',
];
const STUDY_FLAGS = [
  'datasets',
  'data-dir',
  'hidden',
  'solvers',
  'max-t1',
  'dt',
  'batches',
  'width',
  'batch',
  'max-steps',
  'timing',
  'seed',
  'out',
  'quiet',
  'help',
];

describe('wpc train', () => {
  it('--help documents every flag and exits 0', async () => {
    const r = await wpc(['train', '--help']);
    expect(r.code).toBe(0);
    for (const flag of FLAGS) expect(r.stdout, `--${flag} in the help`).toContain(`--${flag}`);
    expect(r.stdout).toContain('wpc train --dataset mnist --data-dir');
  });

  it('refuses bad flags with a clear message and exit code 2', async () => {
    const cases: [string[], RegExp][] = [
      [['--bogus'], /Unknown option '--bogus'[\s\S]*wpc train --help/],
      [['--act', 'sigmoid'], /--act must be one of linear, tanh, .*got "sigmoid"/],
      [['--batch', '0'], /--batch must be a positive integer, got "0"/],
      [['--lr', 'fast'], /--lr must be a positive number, got "fast"/],
      [['--solver', 'euler', '--controller', 'pid'], /--solver euler has no error estimate/],
      [
        ['--solver', 'rk4'],
        /--solver must be one of euler, heun, midpoint, ralston, bosh3, tsit5, dopri5, dopri8, sgd, adam/,
      ],
      [['--steps', '5'], /--steps and --activity-lr are for discrete inference/],
      [['--steady-state', '0'], /--steady-state must be a positive tolerance/],
      [['--dataset', 'cifar100'], /--dataset must be one of mnist, fashion-mnist, cifar10, got "cifar100"/],
      [['extra'], /unexpected argument "extra"/],
      [['--task', 'generative', '--loss', 'ce'], /--loss ce needs --task discriminative/],
      [['--samples', 'x.png'], /--samples needs --task generative/],
      [['--task', 'reconstruct'], /--task must be one of discriminative, generative/],
      [['--tiles', '{wg:8}'], /--tiles must be a JSON object such as \{"wg":64,"tm":4,"tn":4\}, got "\{wg:8\}"/],
      [['--tiles', '[8, 4, 4]'], /--tiles must be a JSON object/],
    ];
    for (const [args, message] of cases) {
      const r = await wpc(['train', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stdout, 'no summary after a usage error').toBe('');
    }
    expect((await wpc(['frobnicate'])).code).toBe(2);
  });

  it('trains, tests and writes a JSON summary line and the run file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wpc-cli-'));
    try {
      const out = join(dir, 'run.json');
      const r = await wpc([
        'train',
        '--dataset',
        'mnist',
        '--data-dir',
        DATA_DIR,
        '--hidden',
        '1',
        '--width',
        '64',
        '--batch',
        '32',
        '--max-batches',
        '20',
        '--test-every',
        '10',
        '--seed',
        '3',
        '--out',
        out,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines).toHaveLength(1);
      const summary = JSON.parse(lines[0]!);
      expect(summary.steps).toBe(20);
      expect(summary.testAccuracy).toBeGreaterThan(30); // 20 steps already beat chance (10%) by far
      expect(summary.testAccuracy).toBeLessThanOrEqual(100);
      expect(summary.seconds).toBeGreaterThan(0);
      expect(r.stderr).toMatch(/step 10: test accuracy \d+\.\d\d%/);
      expect(r.stderr).toMatch(/final test accuracy .* over 10000 test images/);
      const run = JSON.parse(await readFile(out, 'utf8'));
      expect(run.curve.loss).toHaveLength(20);
      expect(run.curve.loss.every((v: number) => Number.isFinite(v) && v > 0)).toBe(true);
      expect(run.tests.map((t: { step: number }) => t.step)).toEqual([10, 20]);
      expect(run.tests.at(-1).accuracy).toBeCloseTo(summary.testAccuracy, 3);
      expect(run.settings).toMatchObject({
        hidden: 1,
        width: 64,
        batch: 32,
        solver: 'heun',
        controller: 'pid',
        maxT1: 20,
        dt: 0.05,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('--tiles picks the matmul layout, and one the device refuses is a usage error naming the flag', async () => {
    const bad = await wpc([
      'train',
      '--data-dir',
      DATA_DIR,
      '--tiles',
      '{"wg":8,"tm":64,"tn":4}',
      '--max-batches',
      '1',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--tiles: options\.kernels\.tiles\.tm must be an integer in \[1, 32\], got 64/);
    const matrix = await wpc([
      'train',
      '--data-dir',
      DATA_DIR,
      '--tiles',
      '{"wg":8,"tm":1,"tn":1,"matrix":"f16"}',
      '--max-batches',
      '1',
    ]);
    expect(matrix.code).toBe(2);
    expect(matrix.stderr).toMatch(
      /--tiles: options\.kernels\.tiles\.matrix needs the "chromium-experimental-subgroup-matrix" feature/,
    );
    // The blocked CPU layout trains as well as the default (8 invocations of 16×8 blocks).
    const r = await wpc([
      'train',
      '--data-dir',
      DATA_DIR,
      '--hidden',
      '1',
      '--width',
      '64',
      '--batch',
      '32',
      '--max-batches',
      '20',
      '--test-every',
      '0',
      '--seed',
      '3',
      '--tiles',
      '{"wg":8,"tm":16,"tn":8}',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim()).testAccuracy).toBeGreaterThan(30);
  });

  it('names the missing data directory and exits 1', async () => {
    const r = await wpc(['train', '--data-dir', '/nonexistent/wpc-data', '--max-batches', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('/nonexistent/wpc-data');
  });
});

describe('wpc train --arch', () => {
  it('trains a PC CNN, checkpoints and saves it; resumes from the checkpoint; sample refuses the classifier', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wpc-arch-'));
    try {
      const [out, save, ck] = [join(dir, 'run.json'), join(dir, 'cnn.json'), join(dir, 'ck')];
      const spec = 'conv(4,3,stride=2) dense(10)';
      const args = ['train', '--data-dir', DATA_DIR, '--act', 'relu', '--batch', '32', '--max-batches', '20'];
      const more = ['--test-every', '10', '--seed', '3', '--checkpoint', ck, '--checkpoint-every', '10'];
      const r = await wpc([...args, '--arch', spec, ...more, '--save', save, '--out', out]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain('wpc train: mnist, --arch "conv(4,3,stride=2) dense(10)" relu, heun/pid');
      const summary = JSON.parse(r.stdout.trim());
      expect(summary.steps).toBe(20);
      expect(summary.testAccuracy).toBeGreaterThan(25); // chance is 10%
      const run = JSON.parse(await readFile(out, 'utf8'));
      expect(run.settings.arch).toEqual([
        { type: 'conv', channels: 4, kernel: 3, stride: 2 },
        { type: 'dense', units: 10 },
      ]);
      expect(run.settings).not.toHaveProperty('hidden');
      expect(run.curve.loss).toHaveLength(20);
      expect(JSON.parse(await readFile(save, 'utf8'))).toMatchObject({
        format: 'wpc-model',
        definition: { inputShape: [1, 28, 28], actFn: 'relu', useBias: false, layers: run.settings.arch },
      });
      // The same layers from a JSON file: the settings agree, so the finished run resumes (no step left) and
      // tests the restored model exactly as it was.
      const file = join(dir, 'arch.json');
      await writeFile(file, JSON.stringify({ layers: run.settings.arch, actFn: 'relu' }));
      const resumed = await wpc([...args, '--arch', file, ...more, '--resume']);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.stderr).toContain('resumed at step 20');
      expect(JSON.parse(resumed.stdout.trim()).testAccuracy).toBe(summary.testAccuracy);
      const other = await wpc([...args, '--arch', 'conv(4,3,stride=2,bias=true) dense(10)', ...more, '--resume']);
      expect(other.code).toBe(2);
      expect(other.stderr).toMatch(/--resume: .* was written with arch = .*, this run has .*"useBias":true/);
      const sample = await wpc(['sample', '--model', save, '--out', join(dir, 'x.png')]);
      expect(sample.code).toBe(2);
      expect(sample.stderr).toMatch(/predicts 10 values, not a square image/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bad architecture before training, naming the layer (exit 2)', async () => {
    const cases: [string[], RegExp][] = [
      [['--arch', 'conv(8,3) dense(10)', '--hidden', '2'], /--arch and --hidden do not go together/],
      [['--arch', 'conv(8,3) dens(10)'], /--arch: layer 2 "dens\(10\)" \(character 11\): unknown layer "dens"/],
      [
        ['--arch', 'conv(8,3) dense(12)'],
        /--arch: the last layer \(layer 2 "dense\(12\)" \(character 11\)\) gives \[12\], 12 values; a classifier of mnist must end with 10/,
      ],
      [
        ['--arch', 'conv(8,30) dense(10)'],
        /--arch: layer 1 "conv\(8,30\)" \(character 1\): a 30×30 kernel with padding 0 does not fit a 28×28 input/,
      ],
      [
        ['--task', 'generative', '--arch', 'dense(32) dense(10)'],
        /a generator of mnist images must end with the image, \[1, 28, 28\] or 784 values/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await wpc(['train', '--data-dir', DATA_DIR, '--max-batches', '1', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stdout).toBe('');
    }
  });
});

describe('wpc reproduce runtime', () => {
  it('--help documents every flag; bad flags exit 2', async () => {
    const r = await wpc(['reproduce', 'runtime', '--help']);
    expect(r.code).toBe(0);
    for (const flag of STUDY_FLAGS) expect(r.stdout, `--${flag}`).toContain(`--${flag}`);
    for (const [args, message] of [
      [['--solvers', 'rk4'], /--solvers must be a comma-separated list of euler \/ heun/],
      [['--hidden', '3,x'], /--hidden must be a comma-separated list of positive integers, got "x"/],
      [['--timing', 'later'], /--timing must be one of step, separate/],
      [['--datasets', 'cifar10'], /--datasets must be a comma-separated list/],
    ] as [string[], RegExp][]) {
      const bad = await wpc(['reproduce', 'runtime', ...args]);
      expect(bad.code, args.join(' ')).toBe(2);
      expect(bad.stderr).toMatch(message);
    }
    expect((await wpc(['reproduce', 'nothing'])).code).toBe(2);
  });
});

describe('wpc reproduce theory', () => {
  it('--help documents every flag; bad flags exit 2', async () => {
    const r = await wpc(['reproduce', 'theory', '--help']);
    expect(r.code).toBe(0);
    for (const flag of [
      'dataset',
      'data-dir',
      'max-t1',
      'iters',
      'test-every',
      'test-images',
      'hidden',
      'width',
      'batch',
      'lr',
      'seed',
      'out',
      'quiet',
    ]) {
      expect(r.stdout, `--${flag}`).toContain(`--${flag}`);
    }
    for (const [args, message] of [
      [['--dataset', 'cifar10'], /--dataset must be one of mnist, fashion-mnist/],
      [['--max-t1', '10,-1'], /--max-t1 must be a comma-separated list of positive numbers, got "-1"/],
      [['--iters', '0'], /--iters must be a positive integer/],
    ] as [string[], RegExp][]) {
      const bad = await wpc(['reproduce', 'theory', ...args]);
      expect(bad.code, args.join(' ')).toBe(2);
      expect(bad.stderr).toMatch(message);
      expect(bad.stderr).toContain('wpc reproduce theory --help');
    }
  });

  it('trains a linear network per T and writes the CSV and Figure 2; the numerical energy nears the theory as T grows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wpc-theory-'));
    try {
      const r = await wpc([
        'reproduce',
        'theory',
        '--data-dir',
        DATA_DIR,
        '--hidden',
        '3',
        '--width',
        '32',
        '--iters',
        '4',
        '--test-every',
        '2',
        '--test-images',
        '500',
        '--max-t1',
        '2,100',
        '--out',
        dir,
        '--quiet',
      ]);
      expect(r.code, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(summary.gaps.map((g: { maxT1: number }) => g.maxT1)).toEqual([2, 100]);
      const [short, long] = summary.gaps as { meanRelativeGap: number; finalTestAccuracy: number }[];
      expect(long!.meanRelativeGap).toBeLessThan(short!.meanRelativeGap);
      expect(long!.meanRelativeGap).toBeLessThan(0.05);
      for (const g of summary.gaps) expect(g.finalTestAccuracy).toBeGreaterThan(10);
      const csv = (await readFile(join(dir, 'theory-mnist.csv'), 'utf8')).trim().split('\n');
      expect(csv[0]).toBe('dataset,maxT1,iter,theoryEnergy,numericalEnergy,testAccuracy');
      expect(csv).toHaveLength(1 + 2 * 4);
      for (const line of csv.slice(1)) {
        const [, , , theory, numerical] = line.split(',').map(Number);
        // The theory is the minimum over the activities: inference can only come down to it.
        expect(numerical! + 1e-4 * theory!).toBeGreaterThanOrEqual(theory!);
      }
      const svg = await readFile(join(dir, 'theory-mnist.svg'), 'utf8');
      expect(svg).toContain('stroke-dasharray');
      expect(svg).toContain('T = 100');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('wpc --version', () => {
  it('prints the package version (-v too), which --help also shows; extra arguments are a usage error', async () => {
    const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
    for (const flag of ['--version', '-v'])
      expect(await wpc([flag]), flag).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
    const help = await wpc(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain(`-v, --version      print the version (${version})`);
    expect(help.stdout).toContain(`WPC ${version} (npm package webgpu-pc)`);
    const extra = await wpc(['--version', 'train']);
    expect(extra).toMatchObject({ code: 2, stdout: '' });
    expect(extra.stderr).toBe(`wpc: --version takes no arguments, got "train" (see 'wpc --help')\n`);
  });
});

describe('wpc info', () => {
  it('prints the adapter as JSON', async () => {
    const r = await wpc(['info']);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(typeof info.adapter.description).toBe('string');
    expect(info.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
  });

  it('without a Vulkan driver, explains how to install lavapipe and exits 1', async () => {
    const none = '/nonexistent/icd.json';
    const r = await wpc(['info'], { VK_ICD_FILENAMES: none, VK_DRIVER_FILES: none });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no WebGPU adapter is available');
    expect(r.stderr).toContain('scripts/install-lavapipe.sh');
  });
});

describe('wpc train --task generative and wpc sample', () => {
  it('trains a label → image generator, tests it by inference, saves it, and samples digits from the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wpc-gen-'));
    try {
      const model = join(dir, 'gen.json');
      const samples = join(dir, 'digits.png');
      const r = await wpc([
        'train',
        '--task',
        'generative',
        '--data-dir',
        DATA_DIR,
        '--hidden',
        '1',
        '--width',
        '32',
        '--act',
        'relu',
        '--bias',
        '--batch',
        '32',
        '--max-batches',
        '6',
        '--max-t1',
        '10',
        '--test-every',
        '0',
        '--test-batches',
        '2',
        '--test-max-t1',
        '10',
        '--save',
        model,
        '--samples',
        samples,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
      expect(summary).toMatchObject({ task: 'generative', steps: 6 });
      expect(summary.testAccuracy).toBeGreaterThanOrEqual(0);
      expect(r.stderr).toContain('(inferred labels) over 64 test images');
      const checkpoint = JSON.parse(await readFile(model, 'utf8'));
      expect(checkpoint).toMatchObject({
        format: 'wpc-model',
        dims: [10, 32, 784],
        actFn: 'relu',
        useBias: true,
        meta: { task: 'generative', steps: 6 },
      });
      const { decode } = await import('fast-png');
      expect(decode(await readFile(samples)).width).toBeGreaterThan(280);

      const out = join(dir, 'more.png');
      const s = await wpc([
        'sample',
        '--model',
        model,
        '--out',
        out,
        '--labels',
        '3,1,4',
        '--rows',
        '2',
        '--scale',
        '1',
      ]);
      expect(s.code, s.stderr).toBe(0);
      expect(JSON.parse(s.stdout)).toEqual({ out, images: 6, labels: [3, 1, 4] });
      const png = decode(await readFile(out));
      expect([png.width, png.height]).toEqual([2 + 3 * 30, 2 + 2 * 30]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('wpc sample refuses missing files, a classifier and bad labels', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wpc-sample-'));
    try {
      expect((await wpc(['sample', '--out', join(dir, 'x.png')])).stderr).toMatch(/--model FILE .* is required/);
      const missing = await wpc(['sample', '--model', join(dir, 'nope.json'), '--out', join(dir, 'x.png')]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/cannot read/);
      const classifier = join(dir, 'clf.json');
      const t = await wpc([
        'train',
        '--data-dir',
        DATA_DIR,
        '--hidden',
        '1',
        '--width',
        '16',
        '--batch',
        '32',
        '--max-batches',
        '2',
        '--test-every',
        '0',
        '--save',
        classifier,
      ]);
      expect(t.code, t.stderr).toBe(0);
      const r = await wpc(['sample', '--model', classifier, '--out', join(dir, 'x.png')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/predicts 10 values, not a square image/);
      const gen = join(dir, 'g.json');
      await wpc([
        'train',
        '--task',
        'generative',
        '--data-dir',
        DATA_DIR,
        '--hidden',
        '1',
        '--width',
        '8',
        '--batch',
        '32',
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
        gen,
      ]);
      const labels = await wpc(['sample', '--model', gen, '--out', join(dir, 'x.png'), '--labels', '3,12']);
      expect(labels.code).toBe(2);
      expect(labels.stderr).toMatch(/--labels must be a comma-separated list of labels in 0..9, got "12"/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
