// The benchmark tooling that needs no adapter: BENCHMARKS.md sections (scripts/bench-sections.mjs) and the report
// of results brought back from a lent GPU machine (scripts/device-kit.mjs report), on stand-in result files.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
// @ts-expect-error: a plain .mjs script without types
import { markdownTable, writeSection } from '../../scripts/bench-sections.mjs';

const deviceKit = fileURLToPath(new URL('../../scripts/device-kit.mjs', import.meta.url));
const fresh = () => mkdtempSync(join(tmpdir(), 'wpc-bench-'));

describe('BENCHMARKS.md sections', () => {
  it('replace only their own marked section and leave the rest of the file as it was', () => {
    const file = join(fresh(), 'BENCHMARKS.md');
    writeFileSync(
      file,
      '# B\n\nprose\n\n<!-- bench:a -->\nold\n<!-- /bench:a -->\n\n<!-- bench:a@h100 -->\nkeep\n<!-- /bench:a@h100 -->\n',
    );
    const meta = { title: 'A', machine: 'm', adapter: 'x', date: 'd', command: 'c' };
    const table = writeSection(file, 'a', { ...meta, rows: [{ p: 1, q: 'two' }] });
    expect(table).toBe(markdownTable([{ p: 1, q: 'two' }]));
    const doc = readFileSync(file, 'utf8');
    expect(doc).toContain('prose');
    expect(doc).toContain('<!-- bench:a@h100 -->\nkeep\n<!-- /bench:a@h100 -->');
    expect(doc).not.toContain('old');
    expect(doc).toContain('| p | q |\n| --- | --- |\n| 1 | two |');
    writeSection(file, 'b', { ...meta, rows: [{ r: 3 }] });
    expect(readFileSync(file, 'utf8').trimEnd().endsWith('<!-- /bench:b -->')).toBe(true);
  });
});

describe('device-kit report', () => {
  const report = (cwd: string, ...args: string[]) =>
    spawnSync(process.execPath, [deviceKit, 'report', ...args], { cwd, encoding: 'utf8' });

  it('writes NAME@TAG sections and JPC over WPC ratios from the files run.sh brings back', () => {
    const cwd = fresh();
    const dir = join(cwd, 'results');
    mkdirSync(dir);
    writeFileSync(join(cwd, 'BENCHMARKS.md'), '# B\n\n<!-- bench:inference -->\nlavapipe\n<!-- /bench:inference -->\n');
    writeFileSync(join(dir, 'machine.json'), JSON.stringify({ machine: '16 × CPU', date: '2026-12-01' }));
    writeFileSync(join(dir, 'gpu.csv'), 'name, driver_version\nNVIDIA H100 80GB HBM3, 580\n');
    const inference = {
      adapter: 'NVIDIA (discrete)',
      rows: [
        { hidden: 3, solver: 'Euler, dt 0.5', solveMs: 2, trainStepMs: 4 },
        { hidden: 3, solver: 'Heun + PID, dt0 0.05', solveMs: 1, trainStepMs: 3 },
      ],
    };
    // As a benchmark prints it: chatter first, the JSON line last.
    writeFileSync(join(dir, 'inference.json'), `warning: something\n${JSON.stringify(inference)}\n`);
    writeFileSync(join(dir, 'peers.json'), JSON.stringify({ adapter: 'NVIDIA', rows: [{ H: 3, wpcMs: 5 }] }));
    writeFileSync(
      join(dir, 'jpc.json'),
      JSON.stringify({
        device: 'gpu: H100',
        jax: '0.11',
        rows: [{ H: 3, solveEulerMs: 10, solveHeunPidMs: 3, stepEulerMs: 12, stepHeunPidMs: 6, peersStepMs: 20 }],
      }),
    );
    writeFileSync(join(dir, 'matmul.json'), 'Error: the adapter was lost\n');
    const r = report(cwd, dir, 'h100');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('matmul: no result');
    const doc = readFileSync(join(cwd, 'BENCHMARKS.md'), 'utf8');
    expect(doc).toContain('<!-- bench:inference -->\nlavapipe\n<!-- /bench:inference -->');
    expect(doc).toContain('<!-- bench:inference@h100 -->');
    expect(doc).toContain('GPU: NVIDIA H100 80GB HBM3, 580');
    expect(doc).not.toContain('bench:matmul@h100');
    const jpc = doc.slice(doc.indexOf('<!-- bench:jpc@h100 -->'));
    expect(jpc).toContain('| 3 | Euler, dt 0.5 | 10 | 2 | 5.00× | 12 | 4 | 3.00× |');
    expect(jpc).toContain('| 3 | Heun + PID, dt0 0.05 | 3 | 1 | 3.00× | 6 | 3 | 2.00× |');
    expect(jpc).toContain('| 20 | 5 | 4.00× |');
  });

  it('refuses a missing folder or a tag that cannot be a section key, and writes nothing', () => {
    const cwd = fresh();
    writeFileSync(join(cwd, 'BENCHMARKS.md'), '# B\n');
    const missing = report(cwd, join(cwd, 'nope'), 'h100');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/folder of unpacked results, got .*nope/);
    mkdirSync(join(cwd, 'r'));
    const badTag = report(cwd, join(cwd, 'r'), 'h 100');
    expect(badTag.status).toBe(2);
    expect(badTag.stderr).toMatch(/tag of letters.*got h 100/);
    expect(readFileSync(join(cwd, 'BENCHMARKS.md'), 'utf8')).toBe('# B\n');
  });
});
