// The `wpc` command line's error path, run as a user would (node dist/cli.js, from a folder outside the
// repository): a user's mistake is one line on stderr — usage errors exit 2, runtime errors (missing or
// unreadable data, device limits, files) exit 1 — with no stack trace unless --debug, no path of the machine the
// CLI was built on and no raw bytes; output folders are checked before any training starts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, makeMlp, saveModel } from '../../src/node.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/cli.js');
/** Floats in one storage buffer of the device the CLI gets (set in beforeAll). */
let storageFloats = 0;
const DATA_DIR = process.env.WPC_DATA_DIR ?? fileURLToPath(new URL('../../../shared/datasets', import.meta.url));

/** Lines Dawn itself prints on stderr when it opens lavapipe (not WPC's). */
const DAWN_NOTICE = /^Warning: max\w+ artificially reduced/;

interface Run {
  code: number;
  stdout: string;
  /** stderr without Dawn's own notices. */
  lines: string[];
}

let dir: string;

function wpc(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: dir, timeout: 120_000, maxBuffer: 1 << 24 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, lines: stderr.split('\n').filter((l) => l !== '' && !DAWN_NOTICE.test(l)) });
      },
    );
  });
}

/** One line, the exit code, no stack, no build path, no raw bytes; `given` paths may appear (the user's own). */
async function expectOneLine(args: string[], code: number, message?: RegExp): Promise<string> {
  const r = await wpc(args);
  const what = args.join(' ');
  expect(r.code, `${what}: exit code (${r.lines.join(' | ')})`).toBe(code);
  expect(r.lines, `${what}: one line on stderr`).toHaveLength(1);
  const line = r.lines[0]!;
  expect(line, what).toMatch(/^wpc: /);
  expect(line, `${what}: a user's mistake reported as a bug`).not.toMatch(/internal error/);
  expect(line, `${what}: a stack line`).not.toMatch(/^\s+at /);
  expect(line, `${what}: the repository's path`).not.toContain(ROOT.replace(/\/$/, ''));
  if (!args.some((a) => a.includes('/work/'))) expect(line, `${what}: a path of this machine`).not.toContain('/work/');
  expect(line, `${what}: raw bytes`).not.toMatch(/[\u0000-\u0008\u000e-\u001f\u007f\ufffd]/);
  expect(r.stdout, `${what}: stdout`).toBe('');
  if (message) expect(line, what).toMatch(message);
  return line;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wpc-cli-errors-'));
  await mkdir(join(dir, 'folder'));
  await writeFile(join(dir, 'file.txt'), 'not a folder');
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  // Data folders that are wrong in one way each.
  await mkdir(join(dir, 'data-isdir/mnist/train-images-idx3-ubyte.gz'), { recursive: true });
  await mkdir(join(dir, 'data-loop/mnist'), { recursive: true });
  await symlink('train-images-idx3-ubyte.gz', join(dir, 'data-loop/mnist/train-images-idx3-ubyte.gz'));
  await mkdir(join(dir, 'data-junk/mnist'), { recursive: true });
  const junk = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  for (const f of [
    'train-images-idx3-ubyte',
    'train-labels-idx1-ubyte',
    't10k-images-idx3-ubyte',
    't10k-labels-idx1-ubyte',
  ]) {
    await writeFile(join(dir, 'data-junk/mnist', f), junk);
  }
  await writeFile(join(dir, 'junk.json'), junk);
  // A generator for `wpc sample` (label → 28×28 image).
  const rt = await init();
  try {
    await saveModel(
      makeMlp(rt, { seed: 1, inputDim: 10, width: 8, depth: 2, outputDim: 784, actFn: 'relu' }),
      join(dir, 'gen.json'),
    );
    storageFloats = Math.min(rt.limits.maxStorageBufferBindingSize, rt.limits.maxBufferSize) / 4;
  } finally {
    rt.dispose();
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('usage errors: exit 2, one line', () => {
  it('every train flag with a bad value', async () => {
    const cases: [string[], RegExp][] = [
      [['--dataset', 'cifar'], /--dataset must be one of/],
      [['--hidden=-1'], /--hidden must be an integer in 0\.\.9999/],
      [['--hidden', '1e300'], /--hidden/],
      [['--width', '2.5'], /--width must be a positive integer/],
      [['--width', '1e20'], /--width must be a positive integer/],
      [['--act', 'sigmoid'], /--act must be one of/],
      [['--loss', 'l1'], /--loss must be one of/],
      [['--solver', 'rk4'], /--solver must be one of/],
      [['--controller', 'p'], /--controller must be one of/],
      [['--max-t1', '0'], /--max-t1 must be a positive number/],
      [['--max-t1', '1e39'], /--max-t1 must be at most .*float32/],
      [['--dt=-1'], /--dt must be a positive number/],
      [
        ['--solver', 'euler', '--dt', '1e-7'],
        /--dt 1e-7 needs more than 262,144 constant steps to reach --max-t1 = 20, more than --max-steps = 4096/,
      ],
      [['--solver', 'euler', '--dt', '0.004'], /--dt 0\.004 needs 5000 constant steps/],
      [
        ['--solver', 'dopri8', '--controller', 'constant', '--dt', '0.0001', '--max-steps', '262144'],
        /--dt 0\.0001 is too small .* stage records/,
      ],
      [['--rtol=-1'], /--rtol must be a non-negative number/],
      [['--atol', 'x'], /--atol must be a non-negative number/],
      [['--rtol', '0', '--atol', '0'], /--rtol and --atol cannot both be 0/],
      [['--steady-state', '0'], /--steady-state must be a positive tolerance/],
      [['--max-steps', '0'], /--max-steps must be an integer in 1\.\.262,144/],
      [['--max-steps', '1e12'], /--max-steps must be an integer in 1\.\.262,144/],
      [['--poll-every', '1e9'], /--poll-every must be an integer in 1\.\.262,144/],
      [['--steps', '5'], /--steps and --activity-lr are for discrete inference/],
      [['--solver', 'sgd', '--steps', '1e12'], /--steps must be an integer in 1\.\.262,144, got "1e12"/],
      [['--solver', 'sgd', '--steps', '1e8'], /--steps must be an integer in 1\.\.262,144/],
      [['--solver', 'adam', '--activity-lr', '0'], /--activity-lr must be a positive number/],
      [['--batch', '0'], /--batch must be a positive integer/],
      [['--batch', '1e20'], /--batch must be a positive integer/],
      [['--lr', 'fast'], /--lr must be a positive number/],
      [['--epochs', '0'], /--epochs must be a positive integer/],
      [['--epochs', '1e7'], /--epochs 10000000 makes .* training steps .* more than 10,000,000/],
      [['--max-batches=-3'], /--max-batches must be a positive integer/],
      [['--test-every=-1'], /--test-every must be a non-negative integer/],
      [['--seed', '1.5'], /--seed must be an integer/],
      [['--tiles', '{x'], /--tiles must be a JSON object/],
      [['--task', 'x'], /--task must be one of/],
      [['--task', 'generative', '--test-max-t1', '0'], /--test-max-t1 must be a positive number/],
      [['--task', 'generative', '--test-max-t1', '1e39'], /--test-max-t1 must be at most/],
      [['--task', 'generative', '--test-batches', '0'], /--test-batches must be a positive integer/],
      [['--checkpoint', 'ck', '--checkpoint-every', '0'], /--checkpoint-every must be a positive integer/],
      [['--resume'], /--resume needs --checkpoint DIR/],
      [['--samples', 'x.png'], /--samples needs --task generative/],
      [['--bogus'], /Unknown option '--bogus'.*wpc train --help/],
      [['--width'], /--width/],
      [['extra'], /unexpected argument "extra"/],
    ];
    for (const [args, message] of cases) await expectOneLine(['train', ...args], 2, message);
  });

  it('the other commands', async () => {
    await expectOneLine(['frobnicate'], 2, /unknown command "frobnicate"/);
    await expectOneLine(['info', 'extra'], 2, /info takes no arguments/);
    await expectOneLine(['sample'], 2, /--model FILE .* is required/);
    await expectOneLine(
      ['sample', '--model', 'gen.json', '--out', 'x.png', '--scale', '17'],
      2,
      /--scale must be an integer in 1\.\.16/,
    );
    await expectOneLine(
      ['sample', '--model', 'gen.json', '--out', 'x.png', '--rows', '1e20'],
      2,
      /--rows must be a positive integer/,
    );
    await expectOneLine(
      ['sample', '--model', 'gen.json', '--out', 'x.png', '--rows', '100000'],
      2,
      /--rows 100000 and --scale 3 make a .* image, more than 268,435,456 pixels/,
    );
    await expectOneLine(
      ['reproduce', 'runtime', '--hidden', '99999999999999999999'],
      2,
      /--hidden must be a comma-separated list/,
    );
    await expectOneLine(
      ['reproduce', 'runtime', '--hidden', '3,10000'],
      2,
      /--hidden 10000 makes a network of more than 10000 layers/,
    );
    await expectOneLine(
      ['reproduce', 'runtime', '--max-steps', '1e9'],
      2,
      /--max-steps must be an integer in 1\.\.262,144/,
    );
    await expectOneLine(['reproduce', 'runtime', '--dt', '1e39', '--solvers', 'heun'], 2, /--dt must be at most/);
    await expectOneLine(['reproduce', 'theory', '--max-t1', '1e39'], 2, /--max-t1 must be at most/);
    await expectOneLine(['reproduce', 'theory', '--hidden', '10000'], 2, /--hidden must be an integer in 1\.\.9,999/);
    await expectOneLine(['reproduce', 'nothing'], 2, /unknown study/);
  });

  it("output files and folders are checked before anything runs: --out, --save, --samples, --checkpoint, sample --out, the studies' --out", async () => {
    const data = ['--data-dir', DATA_DIR];
    const gen = ['--task', 'generative'];
    const cases: [string[], RegExp][] = [
      [[...data, '--out', 'missing/run.json'], /--out missing\/run\.json: the folder missing does not exist/],
      [[...data, '--out', 'folder'], /--out folder is a folder/],
      [[...data, '--out', 'fifo'], /--out fifo is not a regular file/],
      [[...data, '--out', 'file.txt/run.json'], /--out file\.txt\/run\.json: file\.txt is not a folder/],
      [[...data, '--out', ''], /--out needs a file name/],
      [[...data, '--save', 'missing/model.json'], /--save missing\/model\.json: the folder missing does not exist/],
      [[...data, '--save', 'folder'], /--save folder is a folder/],
      [
        [...data, ...gen, '--samples', 'missing/digits.png'],
        /--samples missing\/digits\.png: the folder missing does not exist/,
      ],
      [[...data, ...gen, '--samples', 'fifo'], /--samples fifo is not a regular file/],
      [[...data, '--checkpoint', 'missing/ck'], /--checkpoint missing\/ck: the folder missing does not exist/],
      [[...data, '--checkpoint', 'file.txt'], /--checkpoint file\.txt is not a folder/],
    ];
    for (const [args, message] of cases) await expectOneLine(['train', ...args], 2, message);
    await expectOneLine(
      ['sample', '--model', 'gen.json', '--out', 'missing/x.png'],
      2,
      /--out missing\/x\.png: the folder missing does not exist/,
    );
    await expectOneLine(['sample', '--model', 'gen.json', '--out', 'folder'], 2, /--out folder is a folder/);
    await expectOneLine(
      ['reproduce', 'runtime', '--out', 'file.txt/sub'],
      2,
      /--out file\.txt\/sub: file\.txt is not a folder/,
    );
    await expectOneLine(
      ['reproduce', 'theory', '--out', 'file.txt', '--data-dir', DATA_DIR],
      2,
      /--out file\.txt is not a folder/,
    );
  });
});

describe('runtime errors: exit 1, one line', () => {
  it('sizes past the device: --width 1e6 and 1e9, a --batch whose workspace does not fit, sample --rows', async () => {
    await expectOneLine(
      ['train', '--width', '1e6'],
      1,
      /--width 1000000 with --hidden 3 is too large: .*maxStorageBufferBindingSize/,
    );
    await expectOneLine(['train', '--width', '1e9'], 1, /--width 1000000000 with --hidden 3 is too large/);
    await expectOneLine(
      ['train', '--batch', '100000'],
      1,
      /--batch 100000 is too large: .* working memory .* at most \d+ rows fit/,
    );
    // Parameters that fit one storage buffer while Adam's state (two moments per parameter, one buffer) does not.
    const width = Math.floor((0.75 * storageFloats) / (784 + 10));
    await expectOneLine(
      ['train', '--hidden', '1', '--width', String(width)],
      1,
      new RegExp(`--width ${width} with --hidden 1 is too large: .* for adam's 2 moment\\(s\\) per value`),
    );
    await expectOneLine(
      ['train', '--task', 'generative', '--width', '5000', '--hidden', '1', '--batch', '1000'],
      1,
      /--batch 1000 is too large/,
    );
    await expectOneLine(
      ['sample', '--model', 'gen.json', '--out', 'x.png', '--labels', '0', '--rows', '20000'],
      1,
      /--rows 20000 \(20000 images\) is too large/,
    );
    await expectOneLine(
      ['reproduce', 'runtime', '--width', '1e6', '--hidden', '3'],
      1,
      /--width 1000000 with --hidden 3 is too large/,
    );
    await expectOneLine(['reproduce', 'theory', '--batch', '100000'], 1, /--batch 100000 is too large/);
  });

  it('data that is missing, not a folder, a folder where a file should be, a symlink loop, or not IDX at all', async () => {
    for (const data of ['missing-data', 'file.txt', 'data-isdir', 'data-loop', 'data-junk']) {
      await expectOneLine(['train', '--data-dir', data, '--max-batches', '1'], 1);
    }
    await expectOneLine(['reproduce', 'theory', '--data-dir', 'missing-data', '--iters', '1'], 1);
  });

  it('a model file that is missing, a folder, or binary junk', async () => {
    await expectOneLine(['sample', '--model', 'missing.json', '--out', 'x.png'], 1, /missing\.json/);
    await expectOneLine(['sample', '--model', 'folder', '--out', 'x.png'], 1, /folder/);
    await expectOneLine(['sample', '--model', 'junk.json', '--out', 'x.png'], 1, /junk\.json/);
  });
});

describe('the bundles', () => {
  it('embed no path of the machine they were built on (messages built from import.meta.url or __dirname would show it)', async () => {
    const { readFile } = await import('node:fs/promises');
    for (const file of ['cli.js', 'node.js', 'browser.js', 'cli.js.map', 'node.js.map', 'browser.js.map']) {
      const text = await readFile(join(ROOT, 'dist', file), 'utf8');
      expect(text.includes(ROOT.replace(/\/$/, '')), `${file} holds the repository's path`).toBe(false);
      expect(/["'`(\s]\/work\//.test(text), `${file} holds a /work/ path`).toBe(false);
    }
  });
});

describe('--debug', () => {
  it('every command documents it, and it adds the stack trace to the message', async () => {
    for (const command of [['train'], ['sample'], ['reproduce', 'runtime'], ['reproduce', 'theory'], ['info']]) {
      const help = await wpc([...command, '--help']);
      expect(help.code, command.join(' ')).toBe(0);
      expect(help.stdout, command.join(' ')).toContain('--debug');
    }
    const r = await wpc(['train', '--width', '1e6', '--debug']);
    expect(r.code).toBe(1);
    expect(r.lines[0]).toMatch(/^wpc: --width 1000000 with --hidden 3 is too large/);
    expect(r.lines.some((l) => /^\s+at /.test(l))).toBe(true);
  });
});
