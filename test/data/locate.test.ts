/**
 * Where data is looked for: --data-dir / dataDir, then WPC_DATA_DIR, then the per-user cache directory, then
 * ../shared/datasets from the current directory. Each place wins over the later ones (the later ones hold
 * garbage files, so a good load proves which place was read); an explicit folder that lacks the data is an
 * error, never skipped; the not-found error lists every place searched and says how to download. Then the
 * `wpc data download` and `wpc data path` commands, run as a user would, against a local mirror.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheDirectoryFor, dataCacheDirectory, locateDataset } from '../../src/data/locate.js';
import { expectedFileNames, loadDataset } from '../../src/data/node.js';
import { IdxError } from '../../src/data/idx.js';
import { WpcArgumentError } from '../../src/runtime/errors.js';
import { DATA_DIR, startMirrors, type Mirrors } from '../support/mirror-server.js';
import { dataCommand } from '../../src/cli/data.js';
import { UsageError } from '../../src/cli/checks.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f]/;

let tmp: string;
let caseNo = 0;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wpc-lookup-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** `dir/mnist/` holding the genuine files (links to the shared copy), or `garbage` files of the right names. */
async function mnistIn(dir: string, what: 'genuine' | 'garbage' | 'three of four' = 'genuine'): Promise<string> {
  const folder = join(dir, 'mnist');
  await mkdir(folder, { recursive: true });
  const names = what === 'three of four' ? expectedFileNames().slice(0, 3) : expectedFileNames();
  for (const name of names) {
    if (what === 'garbage') await writeFile(join(folder, name), 'not an IDX file');
    else await symlink(join(DATA_DIR, 'mnist', name), join(folder, name));
  }
  return folder;
}

/** A fresh set of places: home, cache (XDG_CACHE_HOME), a working directory with ../shared/datasets, and two folders to name. */
async function places() {
  const base = join(tmp, `case${caseNo++}`);
  const p = {
    home: join(base, 'home'),
    cache: join(base, 'xdg'),
    cwd: join(base, 'work', 'checkout'),
    shared: join(base, 'work', 'shared', 'datasets'),
    env: join(base, 'env-data'),
    option: join(base, 'option-data'),
  };
  for (const dir of Object.values(p)) await mkdir(dir, { recursive: true });
  return p;
}

const ENV_KEYS = ['WPC_DATA_DIR', 'XDG_CACHE_HOME', 'HOME'] as const;

/** Runs `f` with the environment variables and working directory set (unset where undefined), then restores them. */
async function within<T>(
  vars: Partial<Record<(typeof ENV_KEYS)[number], string>>,
  cwd: string,
  f: () => Promise<T>,
): Promise<T> {
  const saved = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  const savedCwd = process.cwd();
  try {
    for (const k of ENV_KEYS) {
      if (vars[k] === undefined) delete process.env[k];
      else process.env[k] = vars[k];
    }
    process.chdir(cwd);
    return await f();
  } finally {
    process.chdir(savedCwd);
    for (const k of ENV_KEYS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  const e = await promise.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, 'expected a rejection').toBeInstanceOf(Error);
  return e as Error;
}

describe('the per-user cache directory', () => {
  it('follows each platform’s convention', () => {
    expect(cacheDirectoryFor('linux', { XDG_CACHE_HOME: '/x/cache' }, '/home/u')).toBe('/x/cache/wpc/datasets');
    expect(cacheDirectoryFor('linux', {}, '/home/u')).toBe('/home/u/.cache/wpc/datasets');
    expect(cacheDirectoryFor('linux', { XDG_CACHE_HOME: '' }, '/home/u')).toBe('/home/u/.cache/wpc/datasets');
    expect(cacheDirectoryFor('linux', { XDG_CACHE_HOME: 'relative/cache' }, '/home/u')).toBe(
      '/home/u/.cache/wpc/datasets',
    ); // XDG: ignored
    expect(cacheDirectoryFor('freebsd', {}, '/home/u')).toBe('/home/u/.cache/wpc/datasets');
    expect(cacheDirectoryFor('darwin', { XDG_CACHE_HOME: '/x/cache' }, '/Users/u')).toBe(
      '/Users/u/Library/Caches/wpc/datasets',
    );
    expect(cacheDirectoryFor('win32', { LOCALAPPDATA: 'C:\\Users\\u\\AppData\\Local' }, 'C:\\Users\\u')).toBe(
      'C:\\Users\\u\\AppData\\Local\\wpc\\datasets',
    );
    expect(cacheDirectoryFor('win32', {}, 'C:\\Users\\u')).toBe('C:\\Users\\u\\AppData\\Local\\wpc\\datasets');
    expect(cacheDirectoryFor('linux', {}, '')).toBeNull();
    expect(cacheDirectoryFor('darwin', {}, 'relative')).toBeNull();
  });

  it('is read from this process’s environment on every call', async () => {
    const p = await places();
    await within({ HOME: p.home }, p.cwd, async () =>
      expect(dataCacheDirectory()).toBe(join(p.home, '.cache', 'wpc', 'datasets')),
    );
    await within({ HOME: p.home, XDG_CACHE_HOME: p.cache }, p.cwd, async () =>
      expect(dataCacheDirectory()).toBe(join(p.cache, 'wpc', 'datasets')),
    );
  });
});

describe('the lookup order (locateDataset and loadDataset)', () => {
  it('each place wins over the later ones', async () => {
    const p = await places();
    const cacheRoot = join(p.cache, 'wpc', 'datasets');
    // Every place holds MNIST's file names; only the one that should win holds the genuine files.
    const setUp = async (winner: 'option' | 'env' | 'cache' | 'shared') => {
      for (const [place, root] of [
        ['option', p.option],
        ['env', p.env],
        ['cache', cacheRoot],
        ['shared', p.shared],
      ] as const) {
        await rm(join(root, 'mnist'), { recursive: true, force: true });
        await mnistIn(root, place === winner ? 'genuine' : 'garbage');
      }
    };
    const vars = { HOME: p.home, XDG_CACHE_HOME: p.cache, WPC_DATA_DIR: p.env };
    const cases: [
      winner: 'option' | 'env' | 'cache' | 'shared',
      vars: Partial<typeof vars>,
      dataDir: string | undefined,
      source: string,
      root: string,
    ][] = [
      ['option', vars, p.option, 'dataDir', p.option],
      ['env', vars, undefined, 'WPC_DATA_DIR', p.env],
      ['cache', { HOME: p.home, XDG_CACHE_HOME: p.cache }, undefined, 'cache', cacheRoot],
    ];
    for (const [winner, env, dataDir, source, root] of cases) {
      await setUp(winner);
      await within(env, p.cwd, async () => {
        const found = await locateDataset('mnist', dataDir === undefined ? {} : { dataDir });
        expect(found).toMatchObject({ dir: join(root, 'mnist'), root, source });
        const test = await loadDataset('mnist', 'test', dataDir === undefined ? {} : { dataDir });
        expect(test.count).toBe(10000);
      });
    }
    // The shared copy is used when the cache lacks a file (or the whole folder).
    await setUp('shared');
    await rm(join(cacheRoot, 'mnist', expectedFileNames()[2]!));
    await within({ HOME: p.home, XDG_CACHE_HOME: p.cache }, p.cwd, async () => {
      const found = await locateDataset('mnist');
      expect(found).toMatchObject({ dir: join(p.shared, 'mnist'), source: 'shared' });
      expect(found.searched).toEqual([
        { source: 'cache', dir: join(cacheRoot, 'mnist'), status: `lacks ${expectedFileNames()[2]}` },
        { source: 'shared', dir: join(p.shared, 'mnist'), status: 'found' },
      ]);
      expect((await loadDataset('mnist', 'test')).count).toBe(10000);
    });
    // Without XDG_CACHE_HOME the cache is ~/.cache/wpc/datasets.
    await mnistIn(join(p.home, '.cache', 'wpc', 'datasets'));
    await within({ HOME: p.home }, p.cwd, async () => {
      expect(await locateDataset('mnist')).toMatchObject({
        dir: join(p.home, '.cache', 'wpc', 'datasets', 'mnist'),
        source: 'cache',
      });
      expect((await loadDataset('mnist', 'test')).count).toBe(10000);
    });
  });

  it('an implicit place counts only with all four files in its mnist/ folder; uncompressed files count', async () => {
    const p = await places();
    const cacheRoot = join(p.cache, 'wpc', 'datasets');
    await mnistIn(cacheRoot, 'three of four');
    // The cache's root holding the files itself does not count (MNIST and Fashion-MNIST share their file names).
    for (const name of expectedFileNames()) await symlink(join(DATA_DIR, 'mnist', name), join(cacheRoot, name));
    await mnistIn(p.shared);
    const vars = { HOME: p.home, XDG_CACHE_HOME: p.cache };
    await within(vars, p.cwd, async () => expect((await locateDataset('mnist')).source).toBe('shared'));
    const missing = expectedFileNames()[3]!;
    const { gunzipSync } = await import('node:zlib');
    await writeFile(
      join(cacheRoot, 'mnist', missing.slice(0, -3)),
      gunzipSync(await readFile(join(DATA_DIR, 'mnist', missing))),
    );
    await within(vars, p.cwd, async () => {
      expect((await locateDataset('mnist')).source).toBe('cache');
      expect((await loadDataset('mnist', 'test')).count).toBe(10000);
    });
  });

  it('an explicit folder that lacks the data is an error, even when a later place has it', async () => {
    const p = await places();
    await mnistIn(join(p.cache, 'wpc', 'datasets'));
    await mnistIn(p.shared);
    await mnistIn(p.option, 'three of four');
    const nowhere = join(p.option, 'nowhere');
    await within({ HOME: p.home, XDG_CACHE_HOME: p.cache }, p.cwd, async () => {
      let e = await rejection(locateDataset('mnist', { dataDir: p.option }));
      expect(e).toBeInstanceOf(IdxError);
      expect(e.message).toBe(
        `locateDataset: the data directory ${p.option} (from the dataDir option (--data-dir)) has no complete MNIST: ` +
          `${join(p.option, 'mnist')} lacks ${expectedFileNames()[3]}; run 'wpc data download mnist --dir ${p.option}' (or downloadDataset in the API) to fetch it there`,
      );
      e = await rejection(loadDataset('mnist', 'test', { dataDir: p.option }));
      expect(e.message).toMatch(/^loadDataset: missing MNIST file .*t10k-labels-idx1-ubyte\.gz/);
      e = await rejection(locateDataset('mnist', { dataDir: nowhere }));
      expect(e.message).toMatch(
        /^locateDataset: data directory .*nowhere \(from the dataDir option \(--data-dir\)\) does not exist; .*'wpc data download mnist --dir .*nowhere'/,
      );
    });
    await within({ HOME: p.home, XDG_CACHE_HOME: p.cache, WPC_DATA_DIR: nowhere }, p.cwd, async () => {
      for (const e of [await rejection(locateDataset('mnist')), await rejection(loadDataset('mnist', 'test'))]) {
        expect(e.message).toMatch(
          /data directory .*nowhere \(from the WPC_DATA_DIR environment variable\) does not exist/,
        );
      }
    });
    // An empty WPC_DATA_DIR is unset.
    await within({ HOME: p.home, XDG_CACHE_HOME: p.cache, WPC_DATA_DIR: '' }, p.cwd, async () =>
      expect((await locateDataset('mnist')).source).toBe('cache'),
    );
  });

  it('found nowhere: the error lists every place searched, in order, and says to run wpc data download', async () => {
    const p = await places();
    await mnistIn(join(p.cache, 'wpc', 'datasets'), 'three of four');
    await within({ HOME: p.home, XDG_CACHE_HOME: p.cache }, p.cwd, async () => {
      for (const [fn, e] of [
        ['locateDataset', await rejection(locateDataset('mnist'))],
        ['loadDataset', await rejection(loadDataset('mnist', 'train'))],
      ] as const) {
        expect(e).toBeInstanceOf(IdxError);
        expect(e.message).toBe(
          `${fn}: MNIST not found. Looked in, in order: --data-dir or the dataDir option (not given); WPC_DATA_DIR (not set); ` +
            `the per-user cache directory, ${join(p.cache, 'wpc', 'datasets', 'mnist')} (lacks t10k-labels-idx1-ubyte.gz); ` +
            `../shared/datasets from the current directory, ${join(p.shared, 'mnist')} (does not exist). ` +
            `To fix: run 'wpc data download mnist' (or downloadDataset in the API) to fetch it into the per-user cache, ` +
            `or give the folder holding mnist/ with --data-dir DIR (dataDir in the API) or WPC_DATA_DIR=DIR`,
        );
      }
    });
  });

  it('bad arguments', async () => {
    await expect(locateDataset('cifar100' as 'mnist')).rejects.toThrow(
      /^locateDataset: name must be one of "mnist", "fashion-mnist", "cifar10", got "cifar100"/,
    );
    await expect(locateDataset('mnist', null as never)).rejects.toThrow(
      /^locateDataset: options must be an object, got null/,
    );
    await expect(locateDataset('mnist', { data_dir: 'x' } as never)).rejects.toThrow(
      /^locateDataset: unknown option "data_dir"/,
    );
    for (const bad of ['', 42, 'a\0b']) {
      const e = await rejection(locateDataset('mnist', { dataDir: bad as string }));
      expect(e).toBeInstanceOf(WpcArgumentError);
      expect(e.message).toMatch(/^locateDataset: options\.dataDir must be a non-empty path, got /);
    }
  });
});

describe('wpc data', () => {
  let server: Mirrors;
  beforeAll(async () => {
    server = await startMirrors();
  });
  afterAll(async () => {
    await server.close();
  });

  interface Run {
    code: number;
    stdout: string;
    stderr: string;
  }

  /** Runs the CLI with HOME `p.home`, no WPC_DATA_DIR or XDG_CACHE_HOME unless in `extra`, in the working directory `p.cwd`. */
  function wpc(args: string[], p: { home: string; cwd: string }, extra: Record<string, string> = {}): Promise<Run> {
    const env: Record<string, string | undefined> = {
      ...process.env,
      HOME: p.home,
      WPC_DATA_DIR: undefined,
      XDG_CACHE_HOME: undefined,
      ...extra,
    };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [CLI, ...args],
        { cwd: p.cwd, env: env as NodeJS.ProcessEnv, timeout: 60_000 },
        (error, stdout, stderr) => {
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
        },
      );
    });
  }

  /** A failure: exit `code`, nothing on stdout, one printable line on stderr matching `re`. */
  function expectOneLine(r: Run, code: number, re: RegExp): void {
    expect(r.code, r.stderr).toBe(code);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^wpc: /);
    expect(lines[0]).toMatch(re);
    expect(lines[0]).not.toMatch(UNPRINTABLE);
  }

  it('download (into --dir, then into the cache by default) and path find the files; a second download fetches nothing', async () => {
    const p = await places();
    const dir = join(p.option, 'data');
    server.set('good', () => 'good');
    server.set('missing-here', () => 'missing');
    const r = await wpc(
      [
        'data',
        'download',
        'mnist',
        '--dir',
        dir,
        '--mirror',
        server.url('missing-here'),
        '--mirror',
        server.url('good'),
        '--retries',
        '0',
      ],
      p,
    );
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const summary = JSON.parse(lines[0]!);
    expect(summary.dataset).toBe('mnist');
    expect(summary.dir).toBe(join(dir, 'mnist'));
    expect(
      summary.files.map((f: { file: string; alreadyPresent: boolean; url: string }) => [
        f.file,
        f.alreadyPresent,
        f.url,
      ]),
    ).toEqual(expectedFileNames().map((n) => [n, false, `${server.url('good')}${n}`]));
    expect(r.stderr).toMatch(
      /\[4\/4\] t10k-labels-idx1-ubyte\.gz: 4542 bytes from http:\/\/127\.0\.0\.1:\d+\/good\/t10k-labels-idx1-ubyte\.gz, sha256 verified/,
    );
    expect((await readdir(join(dir, 'mnist'))).sort()).toEqual(expectedFileNames().sort());
    const path = await wpc(['data', 'path', 'mnist', '--data-dir', dir], p);
    expect([path.code, path.stdout, path.stderr]).toEqual([0, `${join(dir, 'mnist')}\n`, '']);
    const again = await wpc(['data', 'download', 'mnist', '--dir', dir, '--mirror', server.url('good'), '--quiet'], p);
    expect(again.code).toBe(0);
    expect(again.stderr).toBe('');
    expect(JSON.parse(again.stdout).files.every((f: { alreadyPresent: boolean }) => f.alreadyPresent)).toBe(true);

    // The quick start's line: nothing found, so it downloads into the per-user cache, where path then finds it.
    const quick = ['data', 'path', 'mnist'];
    const none = await wpc(quick, p);
    expectOneLine(none, 1, /^wpc: locateDataset: MNIST not found\. Looked in, in order: .*wpc data download mnist/);
    expect(none.stderr).toContain(join(p.home, '.cache', 'wpc', 'datasets', 'mnist'));
    expect(none.stderr).toContain(join(p.shared, 'mnist'));
    const got = await wpc(['data', 'download', 'mnist', '--mirror', server.url('good')], p);
    expect(got.code, got.stderr).toBe(0);
    expect(JSON.parse(got.stdout).dir).toBe(join(p.home, '.cache', 'wpc', 'datasets', 'mnist'));
    const found = await wpc(quick, p);
    expect([found.code, found.stdout]).toEqual([0, `${join(p.home, '.cache', 'wpc', 'datasets', 'mnist')}\n`]);
    // With XDG_CACHE_HOME, that is the cache; the shared copy next to the working directory is found after it.
    await mnistIn(p.shared);
    const shared = await wpc(quick, p, { XDG_CACHE_HOME: p.cache });
    expect([shared.code, shared.stdout]).toEqual([0, `${join(p.shared, 'mnist')}\n`]);
  });

  it('failures are one line: every mirror corrupt (exit 1), an explicit --data-dir without the data (exit 1), usage errors (exit 2)', async () => {
    const p = await places();
    server.set('bad', (f) => (f === 't10k-labels-idx1-ubyte.gz' ? 'corrupt' : 'good'));
    const dir = join(p.option, 'data');
    const r = await wpc(['data', 'download', 'mnist', '--dir', dir, '--mirror', server.url('bad'), '--quiet'], p);
    expectOneLine(
      r,
      1,
      /^wpc: downloadDataset: could not download mnist\/t10k-labels-idx1-ubyte\.gz from the one mirror tried: .*checksum mismatch: expected sha256 f7ae60f9\w+, got \w+$/,
    );
    expect((await readdir(join(dir, 'mnist'))).sort()).toEqual(expectedFileNames().slice(0, 3).sort());
    await mnistIn(join(p.home, '.cache', 'wpc', 'datasets'));
    expectOneLine(
      await wpc(['data', 'path', 'mnist', '--data-dir', dir], p),
      1,
      /has no complete MNIST: .* lacks t10k-labels-idx1-ubyte\.gz; run 'wpc data download mnist --dir /,
    );
    expectOneLine(
      await wpc(['data', 'path', 'mnist'], p, { WPC_DATA_DIR: join(p.option, 'none') }),
      1,
      /from the WPC_DATA_DIR environment variable\) does not exist/,
    );
    // Usage errors: each checked in this process (the parse), a few run as a user would (exit 2, one line).
    const usage: [string[], RegExp][] = [
      [['download'], /^wpc data download needs a dataset name: mnist, fashion-mnist or cifar10$/],
      [['download', 'cifar100'], /^the dataset must be one of mnist, fashion-mnist, cifar10, got "cifar100"$/],
      [['download', 'mnist', 'extra'], /^unexpected argument "extra"$/],
      [['download', 'mnist', '--retries', 'x'], /^--retries must be an integer in 0\.\.100, got "x"$/],
      [['download', 'mnist', '--retries', '101'], /^--retries must be an integer in 0\.\.100, got "101"$/],
      [
        ['download', 'mnist', '--mirror', 'ftp://example.org/'],
        /^--mirror must be an http:\/\/ or https:\/\/ URL, got "ftp:\/\/example\.org\/"$/,
      ],
      [
        ['download', 'mnist', '--mirror', 'http://u:pw@example.org/'],
        /^--mirror must be a URL without a user name or password/,
      ],
      [['download', 'mnist', '--dir', ''], /^--dir must be a non-empty path, got ""$/],
      [['path'], /^wpc data path needs a dataset name/],
      [['path', 'mnist', '--data-dir', ''], /^--data-dir needs a folder name/],
      [['fetch'], /^unknown data command "fetch"; the commands are 'download' and 'path'$/],
    ];
    for (const [args, re] of usage) {
      const e = await dataCommand(args).catch((x: unknown) => x);
      expect(e, args.join(' ')).toBeInstanceOf(UsageError);
      expect((e as Error).message).toMatch(re);
    }
    const spawned: [string[], RegExp][] = [
      [
        ['data', 'download', 'cifar100'],
        /^wpc: the dataset must be one of mnist, fashion-mnist, cifar10, got "cifar100" \(see 'wpc data download --help'\)$/,
      ],
      [
        ['data', 'download', 'mnist', '--mirror', 'ftp://example.org/'],
        /^wpc: --mirror must be an http:\/\/ or https:\/\/ URL, got "ftp:\/\/example\.org\/" \(see 'wpc data download --help'\)$/,
      ],
      [['data', 'download', 'mnist', '--out', 'x'], /Unknown option '--out'.* \(see 'wpc data download --help'\)$/],
      [
        ['data', 'path'],
        /^wpc: wpc data path needs a dataset name: mnist, fashion-mnist or cifar10 \(see 'wpc data path --help'\)$/,
      ],
      [
        ['data', 'fetch'],
        /^wpc: unknown data command "fetch"; the commands are 'download' and 'path' \(see 'wpc data --help'\)$/,
      ],
    ];
    const runs = await Promise.all(spawned.map(([args]) => wpc(args, p)));
    for (const [i, [, re]] of spawned.entries()) expectOneLine(runs[i]!, 2, re);
    expect(server.count('bad')).toBe(4); // no usage error reached a mirror
  });

  it('Ctrl-C stops a transfer in flight and leaves no partial or temporary file', async () => {
    const p = await places();
    server.set('stall', (f) => (f === 't10k-labels-idx1-ubyte.gz' ? 'stall-body' : 'good'));
    const dir = join(p.option, 'data');
    const child = spawn(
      process.execPath,
      [CLI, 'data', 'download', 'mnist', '--dir', dir, '--mirror', server.url('stall')],
      {
        cwd: p.cwd,
        env: { ...process.env, HOME: p.home, WPC_DATA_DIR: '' },
      },
    );
    let stderr = '';
    const done = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise<void>((resolve) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes('[3/4]')) resolve();
      });
    });
    // The last file's request has been (or is about to be) made and never ends: only the signal stops it.
    while (server.count('stall', 't10k-labels-idx1-ubyte.gz') === 0) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGINT');
    expect(await done).toBe(130);
    expect(stderr.trim().split('\n').at(-1)).toBe(
      'wpc: data download interrupted; no partial file was left under a final name',
    );
    expect((await readdir(join(dir, 'mnist'))).sort()).toEqual(expectedFileNames().slice(0, 3).sort());
  });

  it('help: each subcommand, the top level, and --data-dir pointing at the lookup order', async () => {
    const p = await places();
    const [download, path, data, top, ...commands] = await Promise.all(
      [
        ['data', 'download', '--help'],
        ['data', 'path', '--help'],
        ['data'],
        ['--help'],
        ['train', '--help'],
        ['reproduce', 'theory', '--help'],
      ].map((args) => wpc(args, p)),
    );
    expect(download!.code).toBe(0);
    expect(download!.stdout).toMatch(/^Usage: wpc data download mnist\|fashion-mnist/);
    for (const url of [
      'https://ossci-datasets.s3.amazonaws.com/mnist/',
      'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/',
    ]) {
      expect(download!.stdout).toContain(url);
    }
    expect(path!.code).toBe(0);
    expect(path!.stdout).toMatch(/^Usage: wpc data path mnist\|fashion-mnist\|cifar10 \[--data-dir DIR\]/);
    expect(path!.stdout).toContain('1. --data-dir DIR');
    expect(path!.stdout).toContain('4. ../shared/datasets relative to the current directory');
    expect([data!.code, data!.stdout]).toEqual([2, expect.stringMatching(/^Usage: wpc data download/)]);
    expect(top!.stdout).toMatch(/data download NAME/);
    expect(top!.stdout).toMatch(/data path NAME/);
    for (const r of commands) {
      expect(r.stdout).toMatch(
        /--data-dir DIR .*\n.*\(default: see the lookup order|--data-dir DIR .*\(default: see the lookup order/,
      );
      expect(r.stdout).not.toContain('$WPC_DATA_DIR)');
    }
  });
});
