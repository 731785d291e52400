// Checkpoints under SIGKILL (full tier): atomic saves killed at random moments leave the old or the new file,
// and `wpc train --checkpoint DIR --resume` after a SIGKILL ends where an uninterrupted run ends.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  adam,
  init,
  loadCheckpoint,
  loadModel,
  makeMlp,
  saveCheckpoint,
  saveModel,
  type Runtime,
} from '../../src/node.js';
import { decodeSafetensors } from '../../src/io/safetensors.js';
import { restoreTrainingCheckpoint, trainingCheckpoint } from '../../src/io/training-checkpoint.js';
import { checkpointText, modelToCheckpoint } from '../../src/io/checkpoint.js';
import { DATA_DIR, ROOT, wpc } from '../support/cli-run.js';
import { bits } from '../support/helpers.js';

let rt: Runtime;
let dir: string;
beforeAll(async () => {
  rt = await init();
  dir = await mkdtemp(join(tmpdir(), 'wpc-ckpt-'));
});
afterAll(async () => {
  rt.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('saves under SIGKILL', () => {
  // A child process saves in a loop — writeAtomically, as saveCheckpoint and saveModel call it, alternating two
  // prepared versions of a training checkpoint (6 MB) and of a model file (3 MB) — and is killed with SIGKILL at
  // random moments, often inside a write.
  const CHILD = `
    import { readFileSync } from 'node:fs';
    import { join } from 'node:path';
    const [bundle, dir, from] = process.argv.slice(2);
    const { writeAtomically } = await import(bundle);
    const versions = ['a', 'b'].map((v) => [readFileSync(join(from, v + '.safetensors')), readFileSync(join(from, v + '.json'), 'utf8')]);
    for (let i = 0; ; i++) {
      const [checkpoint, model] = versions[i % 2];
      await writeAtomically(join(dir, 'checkpoint.safetensors'), checkpoint);
      await writeAtomically(join(dir, 'model.json'), model);
      if (i === 0) process.stdout.write('saved\\n');
    }`;
  const TEMP = /^(checkpoint\.safetensors|model\.json)\.wpc-tmp-(\d+)-[0-9a-f]{32}$/;

  it('kill -9 at any moment leaves the previous or the new file, whole and loadable, and at most a temporary that the next save removes', async () => {
    const d = join(dir, 'killed-saves');
    const from = join(dir, 'versions');
    await mkdir(d);
    await mkdir(from);
    // writeAtomically bundled for a plain Node child (as scripts/build.mjs bundles the package).
    const bundle = join(dir, 'write-atomically.mjs');
    await build({
      stdin: {
        contents: "export { writeAtomically } from './src/util/atomic-write.ts';",
        resolveDir: ROOT,
        loader: 'ts',
      },
      bundle: true,
      format: 'esm',
      platform: 'node',
      loader: { '.wgsl': 'text' },
      external: ['webgpu'],
      outfile: bundle,
      logLevel: 'error',
    });
    const script = join(dir, 'save-loop.mjs');
    await writeFile(script, CHILD);
    const model = makeMlp(rt, { seed: 12, inputDim: 256, width: 1024, depth: 2, outputDim: 256, actFn: 'tanh' });
    const optim = adam({ lr: 1e-3 });
    const optState = optim.init(model);
    const versions: Record<string, { checkpoint: Buffer; model: Buffer }> = {};
    for (const [v, step] of [
      ['a', 1],
      ['b', 2],
    ] as const) {
      await writeFile(join(from, `${v}.safetensors`), await trainingCheckpoint(model, { optim, optState, step }));
      await writeFile(join(from, `${v}.json`), checkpointText(await modelToCheckpoint(model, { version: v })));
      versions[v] = {
        checkpoint: await readFile(join(from, `${v}.safetensors`)),
        model: await readFile(join(from, `${v}.json`)),
      };
    }
    const isVersion = (bytes: Buffer, kind: 'checkpoint' | 'model') =>
      Object.values(versions).some((v) => Buffer.compare(v[kind], bytes) === 0);
    const dead: number[] = [];
    for (let kill = 0; kill < 8; kill++) {
      const child = spawn(process.execPath, [script, pathToFileURL(bundle).href, d, from], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (b: Buffer) => b.toString().includes('saved') && resolve());
        child.on('exit', (code) => reject(new Error(`the saving child exited (${code}) before its first save`)));
      });
      // Its first saves are done: the temporaries of the children killed before are gone.
      expect((await readdir(d)).filter((n) => dead.includes(Number(TEMP.exec(n)?.[2])))).toEqual([]);
      await new Promise((r) => setTimeout(r, Math.random() * 300));
      child.kill('SIGKILL');
      await exited;
      dead.push(child.pid!);
      const names = await readdir(d);
      const temps = names.filter((n) => TEMP.test(n));
      expect(names.filter((n) => !TEMP.test(n)).sort()).toEqual(['checkpoint.safetensors', 'model.json']);
      expect(temps.length).toBeLessThanOrEqual(1);
      expect(
        temps.every((n) => Number(TEMP.exec(n)![2]) === child.pid),
        temps.join(', '),
      ).toBe(true);
      // Exactly one of the versions, never a mix, and it loads.
      expect(isVersion(await readFile(join(d, 'checkpoint.safetensors')), 'checkpoint')).toBe(true);
      expect(isVersion(await readFile(join(d, 'model.json')), 'model')).toBe(true);
      const r = await loadCheckpoint(rt, join(d, 'checkpoint.safetensors'));
      expect([1, 2]).toContain(r.step);
      r.model.dispose();
      r.optState!.dispose();
      (await loadModel(rt, join(d, 'model.json'))).dispose();
    }
    // The next save removes what the killed ones left.
    await saveCheckpoint(join(d, 'checkpoint.safetensors'), model);
    await saveModel(model, join(d, 'model.json'));
    expect((await readdir(d)).sort()).toEqual(['checkpoint.safetensors', 'model.json']);
    for (const t of [model, optState]) t.dispose();
  }, 300_000);
});

const wpcTrain = (args: string[]) => wpc(['train', ...args]);

describe('wpc train --checkpoint / --resume', () => {
  const RUN = [
    '--data-dir',
    DATA_DIR,
    '--hidden',
    '1',
    '--width',
    '32',
    '--solver',
    'euler',
    '--max-t1',
    '1',
    '--dt',
    '0.25',
    '--batch',
    '32',
    '--epochs',
    '2',
    '--max-batches',
    '30',
    '--test-every',
    '0',
    '--quiet',
  ];

  it('killed with SIGKILL mid-run and resumed, it ends with the weights of an uninterrupted run, bit for bit', async () => {
    const full = join(dir, 'full');
    const r1 = await wpcTrain([...RUN, '--checkpoint', full, '--checkpoint-every', '10']);
    expect(r1.code, r1.stderr).toBe(0);
    const killed = join(dir, 'killed');
    const ckpt = join(killed, 'checkpoint.safetensors');
    const child = spawn(
      process.execPath,
      [join(ROOT, 'dist/cli.js'), 'train', ...RUN, '--checkpoint', killed, '--checkpoint-every', '10'],
      { cwd: ROOT, stdio: 'ignore' },
    );
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    // Kill as soon as the first checkpoint is on disk (mid-way through the 60 steps).
    const t0 = Date.now();
    while (!existsSync(ckpt) && Date.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await exited;
    expect(existsSync(ckpt)).toBe(true);
    const partial = restoreTrainingCheckpoint(rt, new Uint8Array(await readFile(ckpt)));
    expect(partial.step).toBeGreaterThan(0);
    expect(partial.step).toBeLessThan(60);
    partial.model.dispose();
    partial.optState!.dispose();
    const r2 = await wpcTrain([...RUN, '--checkpoint', killed, '--resume']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(JSON.parse(r2.stdout.trim().split('\n').pop()!).steps).toBe(60);
    const a = decodeSafetensors(new Uint8Array(await readFile(join(full, 'checkpoint.safetensors'))));
    const b = decodeSafetensors(new Uint8Array(await readFile(ckpt)));
    expect(b.metadata.step).toBe('60');
    for (const name of Object.keys(a.tensors))
      expect(bits(b.tensors[name]!.data as Float32Array), name).toEqual(bits(a.tensors[name]!.data as Float32Array));
    // The resumed run's loss curve is the whole run's.
    expect(JSON.parse(b.metadata.extra!).curve).toEqual(JSON.parse(a.metadata.extra!).curve);
  }, 300_000);

  it('a run made to diverge stops with a clear error naming the step, and its last checkpoint loads', async () => {
    const d = join(dir, 'diverge');
    // Adam with lr 1e30 makes the weights ~1e30 after one step: the next step's energy overflows to Inf. (With
    // the runaway check on, the default, step 1's update is rolled back at once: test/full/cli-divergence.test.ts.)
    const r = await wpcTrain([
      ...RUN,
      '--lr',
      '1e30',
      '--divergence-factor',
      'off',
      '--checkpoint',
      d,
      '--checkpoint-every',
      '1',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /wpc: training diverged at step (\d+): NaN or Inf in .*The parameter update of step \1 was not applied/,
    );
    const at = Number(/diverged at step (\d+)/.exec(r.stderr)![1]);
    expect(r.stderr).toContain(`The last checkpoint, ${join(d, 'checkpoint.safetensors')} (step ${at - 1})`);
    const last = await loadCheckpoint(rt, join(d, 'checkpoint.safetensors'));
    expect(last.step).toBe(at - 1);
    const w = (await last.model.toArrays()).weights.flatMap((x) => Array.from(x));
    expect(w.every(Number.isFinite)).toBe(true);
    last.model.dispose();
    last.optState!.dispose();
  }, 300_000);

  it('refuses to resume with different settings or without a checkpoint', async () => {
    const d = join(dir, 'settings');
    expect((await wpcTrain([...RUN, '--max-batches', '2', '--epochs', '1', '--checkpoint', d])).code).toBe(0);
    const r = await wpcTrain([
      ...RUN,
      '--max-batches',
      '2',
      '--epochs',
      '1',
      '--width',
      '33',
      '--checkpoint',
      d,
      '--resume',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--resume: .* was written with width = 32, this run has 33/);
    const none = await wpcTrain([...RUN, '--checkpoint', join(dir, 'empty'), '--resume']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--resume: there is no checkpoint to resume from/);
    expect((await wpcTrain([...RUN, '--resume'])).stderr).toMatch(/--resume needs --checkpoint DIR/);
    // A corrupt checkpoint: a clear error, not a crash or a fresh start.
    const bad = join(dir, 'corrupt');
    await mkdir(bad, { recursive: true });
    await writeFile(join(bad, 'checkpoint.safetensors'), 'garbage!garbage');
    const corrupt = await wpcTrain([...RUN, '--checkpoint', bad, '--resume']);
    expect(corrupt.code).not.toBe(0);
    expect(corrupt.stderr).toMatch(/checkpoint\.safetensors: header length \d+ does not fit the file/);
  }, 300_000);
});
