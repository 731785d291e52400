// The examples (JPC's notebooks), each run as a user runs it — `node examples/NAME.mjs` importing 'webgpu-pc' (npm
// test builds dist/ first) — on a few iterations and test batches: they must finish, print their metric as a
// JSON line and write their images. The full runs and their results are in BENCHMARKS.md.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { DATA_DIR, ROOT } from '../support/cli-run.js';

function example(name: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, 'examples', `${name}.mjs`), '--data-dir', DATA_DIR, '--quiet', ...args],
      { cwd: ROOT, timeout: 600_000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

const SHORT = ['--iters', '6', '--test-every', '0', '--test-batches', '2'];

const CASES: [string, string[], string[]][] = [
  ['discriminative', [], ['testAccuracy']],
  ['supervised-generative', [], ['inferredLabelAccuracy', 'png']],
  ['unsupervised-generative', [], ['finalEnergy', 'reconstructionMse', 'plot', 'png']],
  ['hybrid', [], ['amortAcc', 'hpcAcc', 'genAcc', 'png']],
  ['bidirectional', ['--forward-weight', '1'], ['amortiserTestAccuracy', 'png']],
  ['epc', [], ['testAccuracy']],
  ['mupc', [], ['testAccuracy']],
  ['cnn-mnist', [], ['testAccuracy', 'params']],
];

describe.each(CASES)('examples/%s.mjs', (name, extra, keys) => {
  it('runs a short version and reports its metric', { timeout: 600_000 }, async () => {
    const out = mkdtempSync(join(tmpdir(), `wpc-example-${name}-`));
    const r = await example(name, [...SHORT, '--out', out, ...extra]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    const result = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
    expect(result.example).toBe(name);
    expect(result.iters).toBe(6);
    for (const key of keys) expect(result, `${name} reports ${key}`).toHaveProperty(key);
    for (const [key, value] of Object.entries(result)) {
      if (/Acc|Accuracy/.test(key)) expect(value as number, key).toBeGreaterThanOrEqual(0);
      if (/Acc|Accuracy/.test(key)) expect(value as number, key).toBeLessThanOrEqual(100);
      if (key === 'png') expect(decode(readFileSync(value as string)).width).toBeGreaterThan(28);
      if (key === 'plot') expect(readFileSync(value as string, 'utf8')).toContain('<polyline');
    }
    expect(existsSync(out)).toBe(true);
  });
});

it('an example refuses to run without data, saying where it looked and how to download it', async () => {
  // Nothing in any place of the lookup order: no WPC_DATA_DIR, an empty home, a working directory without ../shared.
  const home = await mkdtemp(join(tmpdir(), 'wpc-example-nodata-'));
  const cwd = join(home, 'work');
  await mkdir(cwd);
  try {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      const env = { ...process.env, WPC_DATA_DIR: '', HOME: home, XDG_CACHE_HOME: join(home, 'cache') };
      execFile(
        process.execPath,
        [join(ROOT, 'examples', 'discriminative.mjs')],
        { cwd, env },
        (error, _stdout, stderr) => resolve({ code: error ? 1 : 0, stderr }),
      );
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('MNIST not found. Looked in, in order');
    expect(r.stderr).toContain("run 'wpc data download mnist'");
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});
