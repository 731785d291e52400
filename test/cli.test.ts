// The `wpc` command line, run as a user would: `node dist/cli.js ...` (npm test builds dist/ first).
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DATA_DIR = process.env.WPC_DATA_DIR ?? fileURLToPath(new URL('../../shared/datasets', import.meta.url));

function wpc(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'dist/cli.js'), ...args], { cwd: ROOT, env: { ...process.env, ...env }, timeout: 300_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

const FLAGS = [
  'dataset', 'data-dir', 'hidden', 'width', 'act', 'bias', 'loss', 'solver', 'controller', 'max-t1', 'dt', 'rtol', 'atol',
  'steady-state', 'max-steps', 'poll-every', 'steps', 'activity-lr', 'batch', 'lr', 'epochs', 'max-batches', 'test-every',
  'seed', 'out', 'quiet', 'help',
];
const STUDY_FLAGS = ['datasets', 'data-dir', 'hidden', 'solvers', 'max-t1', 'dt', 'batches', 'width', 'batch', 'max-steps', 'timing', 'seed', 'out', 'quiet', 'help'];

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
      [['--solver', 'rk4'], /--solver must be one of euler, heun, midpoint, ralston, bosh3, tsit5, dopri5, dopri8, sgd, adam/],
      [['--steps', '5'], /--steps and --activity-lr are for discrete inference/],
      [['--steady-state', '0'], /--steady-state must be a positive tolerance/],
      [['--dataset', 'cifar10'], /--dataset must be one of mnist, fashion-mnist/],
      [['extra'], /unexpected argument "extra"/],
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
      const r = await wpc(['train', '--dataset', 'mnist', '--data-dir', DATA_DIR, '--hidden', '1', '--width', '64', '--batch', '32', '--max-batches', '20', '--test-every', '10', '--seed', '3', '--out', out]);
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
      expect(run.settings).toMatchObject({ hidden: 1, width: 64, batch: 32, solver: 'heun', controller: 'pid', maxT1: 20, dt: 0.05 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('names the missing data directory and exits 1', async () => {
    const r = await wpc(['train', '--data-dir', '/nonexistent/wpc-data', '--max-batches', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('/nonexistent/wpc-data');
  });
});

describe('wpc train with other solvers', () => {
  it('trains with Tsit5 + PID and the steady-state event, and with discrete SGD inference', async () => {
    for (const args of [
      ['--solver', 'tsit5', '--steady-state', '3e-5', '--max-t1', '200'],
      ['--solver', 'sgd', '--activity-lr', '0.5', '--steps', '4'],
    ]) {
      const r = await wpc(['train', '--data-dir', DATA_DIR, '--hidden', '1', '--width', '32', '--batch', '32', '--max-batches', '8', '--test-every', '0', ...args]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout.trim()).steps).toBe(8);
      expect(r.stderr).toContain(args[1]!);
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

  it('runs the study, writes the CSV, the best-settings table and the figure, and reports the Euler/Heun ratio', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wpc-study-'));
    try {
      const r = await wpc(['reproduce', 'runtime', '--datasets', 'mnist,cifar10-synthetic', '--data-dir', DATA_DIR, '--hidden', '3', '--width', '24', '--batches', '4', '--max-t1', '5', '--dt', '0.5,0.05', '--out', dir]);
      expect(r.code, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(summary.runs).toBe(2 * 2 * 2);
      expect(summary.ratios.map((x: { dataset: string }) => x.dataset)).toEqual(['mnist', 'cifar10-synthetic']);
      for (const x of summary.ratios) expect(x.eulerOverHeun).toBeGreaterThan(0);
      const csv = (await readFile(join(dir, 'runtime.csv'), 'utf8')).trim().split('\n');
      expect(csv[0]).toBe('dataset,hidden,solver,maxT1,dt,batches,status,solveMsMean,solveMsMedian,solveMsStd,trainStepMsMean,inferenceStepsMean,rejectedMean,testAccuracy');
      expect(csv).toHaveLength(1 + 8);
      // Euler at T = 5, dt = 0.05 takes 100 steps; T = 5, dt = 0.5 takes 10.
      const euler = csv.slice(1).filter((l) => l.startsWith('mnist,3,euler'));
      expect(euler.map((l) => Number(l.split(',')[11]))).toEqual([10, 100]);
      expect(await readFile(join(dir, 'best.md'), 'utf8')).toContain('| mnist | 3 | Heun + PID |');
      const svg = await readFile(join(dir, 'runtime.svg'), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain('cifar10-synthetic');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
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
