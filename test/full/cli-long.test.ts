// The command line's longer runs (full tier): other solvers, and the runtime study end to end.
import { describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATA_DIR, wpc } from '../support/cli-run.js';

describe('wpc train with other solvers', () => {
  it('trains with Tsit5 + PID and the steady-state event, and with discrete SGD inference', async () => {
    for (const args of [
      ['--solver', 'tsit5', '--steady-state', '3e-5', '--max-t1', '200'],
      ['--solver', 'sgd', '--activity-lr', '0.5', '--steps', '4'],
    ]) {
      const r = await wpc([
        'train',
        '--data-dir',
        DATA_DIR,
        '--hidden',
        '1',
        '--width',
        '32',
        '--batch',
        '32',
        '--max-batches',
        '8',
        '--test-every',
        '0',
        ...args,
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout.trim()).steps).toBe(8);
      expect(r.stderr).toContain(args[1]!);
    }
  });
});

describe('wpc reproduce runtime', () => {
  it('runs the study, writes the CSV, the best-settings table and the figure, and reports the Euler/Heun ratio', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wpc-study-'));
    try {
      const r = await wpc([
        'reproduce',
        'runtime',
        '--datasets',
        'mnist,cifar10-synthetic',
        '--data-dir',
        DATA_DIR,
        '--hidden',
        '3',
        '--width',
        '24',
        '--batches',
        '4',
        '--max-t1',
        '5',
        '--dt',
        '0.5,0.05',
        '--out',
        dir,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(summary.runs).toBe(2 * 2 * 2);
      expect(summary.ratios.map((x: { dataset: string }) => x.dataset)).toEqual(['mnist', 'cifar10-synthetic']);
      for (const x of summary.ratios) expect(x.eulerOverHeun).toBeGreaterThan(0);
      const csv = (await readFile(join(dir, 'runtime.csv'), 'utf8')).trim().split('\n');
      expect(csv[0]).toBe(
        'dataset,hidden,solver,maxT1,dt,batches,status,solveMsMean,solveMsMedian,solveMsStd,trainStepMsMean,inferenceStepsMean,rejectedMean,testAccuracy',
      );
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
