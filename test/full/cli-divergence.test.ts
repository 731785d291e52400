// `wpc train` on divergence: exit code 1, one line saying what diverged, where, the threshold and the reference,
// which checkpoint is kept (accurate with and without --checkpoint, before and after the first save, and after
// --resume), what was not written, and what to do; never a checkpoint or output of a diverged state.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init, loadCheckpoint, type Runtime } from '../../src/node.js';
import { decodeSafetensors } from '../../src/io/safetensors.js';
import { DATA_DIR, wpc } from '../support/cli-run.js';

let rt: Runtime;
let dir: string;
beforeAll(async () => {
  rt = await init();
  dir = await mkdtemp(join(tmpdir(), 'wpc-diverge-'));
});
afterAll(async () => {
  rt.dispose();
  await rm(dir, { recursive: true, force: true });
});

const wpcTrain = (args: string[]) => wpc(['train', ...args]);

// A tiny network and a short run (6 steps of 32 images).
const BASE = [
  '--data-dir',
  DATA_DIR,
  '--hidden',
  '1',
  '--width',
  '32',
  '--batch',
  '32',
  '--max-batches',
  '6',
  '--test-every',
  '0',
  '--quiet',
];
const RUN = [...BASE, '--solver', 'euler', '--max-t1', '1', '--dt', '0.25'];
// relu with Adam lr 3: the first update makes the loss run away (the issue's case, on a smaller network).
const RELU_LR3 = [...RUN, '--act', 'relu', '--lr', '3'];
// Adam lr 1e30 with the runaway check off: step 1's update is finite (so it passes the NaN guard and is
// checkpointed), step 2's energy overflows.
const NAN_AT_2 = [...RUN, '--lr', '1e30', '--divergence-factor', 'off'];

/** The single line of a diverged run, checked for the parts every such line has. */
function divergenceLine(r: { code: number; stdout: string; stderr: string }): string {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stdout).toBe('');
  // (Dawn itself may print "Warning: …" lines about adapter limits; they are not WPC's.)
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('Warning: '));
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^wpc: training diverged at step \d+: /);
  expect(lines[0]).not.toMatch(/\n|at .*\.js:\d+/); // no stack
  return lines[0]!;
}

describe('wpc train: a finite runaway stops the run', () => {
  it('without --checkpoint: exit 1, the numbers, nothing written, what to do', async () => {
    const save = join(dir, 'model.json');
    const out = join(dir, 'run.json');
    const line = divergenceLine(await wpcTrain([...RELU_LR3, '--save', save, '--out', out]));
    expect(line).toMatch(
      /^wpc: training diverged at step 1: its parameter update raised the loss \(of the updated model's feedforward prediction on the step's batch\) to [\d.e+]+, above the divergence threshold [\d.e+]+ \(100 × the reference [\d.]+, the largest loss of the run's first 1 step\)\. The update of step 1 was rolled back \(parameters and optimiser state restored bit for bit\), so the model keeps its weights from step 0\./,
    );
    expect(line).toContain('No checkpoint was kept (--checkpoint DIR keeps one).');
    expect(line).toContain(`Not written: --save ${save}, --out ${out}.`);
    expect(line).toMatch(
      /Lower --lr \(now 3\) or --dt and train again; if the run was healthy, raise --divergence-factor \(now 100\) or turn the check off with --divergence-factor off\.$/,
    );
    expect(existsSync(save)).toBe(false);
    expect(existsSync(out)).toBe(false);
  }, 300_000);

  it('discrete inference: the advice names --activity-lr, not --dt', async () => {
    const line = divergenceLine(
      await wpcTrain([...BASE, '--act', 'relu', '--lr', '3', '--solver', 'sgd', '--steps', '3']),
    );
    expect(line).toMatch(/Lower --lr \(now 3\) or --activity-lr and train again/);
  }, 300_000);

  it('--checkpoint, diverging before the first save: says none was written (not "use --checkpoint")', async () => {
    const d = join(dir, 'early');
    const line = divergenceLine(await wpcTrain([...RELU_LR3, '--checkpoint', d]));
    const file = join(d, 'checkpoint.safetensors');
    expect(line).toContain(
      `This run had written no checkpoint yet (the first was due at step 6); ${file} does not exist.`,
    );
    expect(line).not.toMatch(/use --checkpoint/);
    expect(existsSync(file)).toBe(false);
  }, 300_000);

  it("--checkpoint over an earlier run's checkpoint: left as it was, and said so", async () => {
    const d = join(dir, 'stale');
    const file = join(d, 'checkpoint.safetensors');
    expect((await wpcTrain([...RUN, '--max-batches', '2', '--checkpoint', d])).code).toBe(0);
    const before = await readFile(file);
    const line = divergenceLine(await wpcTrain([...RELU_LR3, '--checkpoint', d, '--checkpoint-every', '3']));
    expect(line).toContain(
      `This run had written no checkpoint yet (the first was due at step 3); ${file} is left as it was, from an earlier run.`,
    );
    expect((await readFile(file)).equals(before)).toBe(true);
  }, 300_000);

  it('--checkpoint-every 1 never writes a diverged state: the runaway update is rolled back before any save', async () => {
    const d = join(dir, 'every1');
    divergenceLine(await wpcTrain([...RELU_LR3, '--checkpoint', d, '--checkpoint-every', '1']));
    expect(existsSync(join(d, 'checkpoint.safetensors'))).toBe(false);
  }, 300_000);
});

describe('wpc train: the checkpoint named on divergence is the one on disk', () => {
  it('after a save: names the last checkpoint and its step; --resume from it names it as the one resumed from', async () => {
    const d = join(dir, 'saved');
    const file = join(d, 'checkpoint.safetensors');
    const line = divergenceLine(await wpcTrain([...NAN_AT_2, '--checkpoint', d, '--checkpoint-every', '1']));
    expect(line).toMatch(
      /^wpc: training diverged at step 2: NaN or Inf in .*\. The parameter update of step 2 was not applied, so the model keeps its weights from step 1\./,
    );
    expect(line).toContain(`The last checkpoint, ${file} (step 1), holds the model from before it and is kept.`);
    expect(line).toMatch(/Lower --lr \(now 1e\+30\) or --dt and train again\.$/); // NaN: the runaway factor is not the point
    const saved = await loadCheckpoint(rt, file);
    expect(saved.step).toBe(1);
    saved.model.dispose();
    saved.optState!.dispose();
    const bytes = await readFile(file);
    // Resumed (with the runaway check back on: --divergence-factor may differ on resume), step 2 diverges
    // again before this run saves anything: the message names the checkpoint it resumed from, untouched.
    const again = divergenceLine(
      await wpcTrain([...RUN, '--lr', '1e30', '--checkpoint', d, '--checkpoint-every', '1', '--resume']),
    );
    expect(again).toMatch(/^wpc: training diverged at step 2: /);
    expect(again).toContain(`The checkpoint this run resumed from, ${file} (step 1), is kept as it was.`);
    expect((await readFile(file)).equals(bytes)).toBe(true);
    expect(
      JSON.parse(decodeSafetensors(new Uint8Array(bytes)).metadata.extra!).curve.map((c: { step: number }) => c.step),
    ).toEqual([1]);
  }, 300_000);
});

describe('wpc train --divergence-factor', () => {
  it('is documented in --help with its default', async () => {
    const r = (await wpc(['train', '--help'])).stdout;
    expect(r).toMatch(
      /--divergence-factor F\|off\s+stop when a step's energy or loss exceeds F x the largest of the first 10[\s\S]*\(default 100\)/,
    );
  });

  it('refuses values that are not a number >= 1 or off (exit 2)', async () => {
    for (const bad of ['0.5', '-1', 'abc', '', '1e39', 'Infinity', 'OFF']) {
      const r = await wpcTrain([...RUN, `--divergence-factor=${bad}`]);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toContain(
        `wpc: --divergence-factor must be a number >= 1 (at most 3.4e38) or off, got ${JSON.stringify(bad)}`,
      );
    }
  }, 300_000);

  it('a healthy run finishes with the same weights whatever the factor (the check changes nothing it lets through)', async () => {
    const a = join(dir, 'h-default');
    const b = join(dir, 'h-off');
    expect((await wpcTrain([...RUN, '--max-batches', '3', '--checkpoint', a])).code).toBe(0);
    expect((await wpcTrain([...RUN, '--max-batches', '3', '--checkpoint', b, '--divergence-factor', 'off'])).code).toBe(
      0,
    );
    const ta = decodeSafetensors(new Uint8Array(await readFile(join(a, 'checkpoint.safetensors')))).tensors;
    const tb = decodeSafetensors(new Uint8Array(await readFile(join(b, 'checkpoint.safetensors')))).tensors;
    const bytes = (d: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }) =>
      Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    expect(Object.keys(ta).length).toBeGreaterThan(0);
    for (const name of Object.keys(ta)) expect(bytes(tb[name]!.data).equals(bytes(ta[name]!.data)), name).toBe(true);
  }, 300_000);
});
