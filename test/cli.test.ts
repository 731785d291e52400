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
  'max-steps', 'poll-every', 'batch', 'lr', 'epochs', 'max-batches', 'test-every', 'seed', 'out', 'quiet', 'help',
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
