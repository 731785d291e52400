/**
 * writeAtomically (every file WPC writes): the temporary is created exclusively under an unguessable name next
 * to the target, never follows a planted symlink or file, is removed on a failure at any stage, and stale ones
 * of killed saves go with the next successful save; file fsync, rename, then folder fsync, in that order.
 * Failures are injected by wrapping node:fs/promises and node:crypto (a root user could write a read-only folder).
 */
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { spawnSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const hooks = vi.hoisted(() => ({
  /** The operation that fails next: the name of an fs call on the temporary (or 'rename'). */
  failAt: null as null | 'open' | 'writeFile' | 'sync' | 'close' | 'rename' | 'dirsync',
  /** Random bytes handed out before real ones (to aim at a planted name). */
  random: [] as Buffer[],
  calls: [] as string[],
  temporaries: [] as string[],
}));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const fail = (what: string) => Object.assign(new Error(`injected failure in ${what}`), { code: 'EIO' });
  const open: typeof real.open = async (path, flags, mode) => {
    const isTemp = String(path).includes('.wpc-tmp-');
    hooks.calls.push(`open ${isTemp ? 'temp' : 'other'} ${String(flags)}`);
    if (isTemp) hooks.temporaries.push(String(path));
    if (isTemp && hooks.failAt === 'open') throw fail('open');
    const handle = await real.open(path, flags, mode);
    return new Proxy(handle, {
      get(target, key) {
        const value = Reflect.get(target, key, target);
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          hooks.calls.push(`${String(key)} ${isTemp ? 'temp' : 'other'}`);
          if (key === 'writeFile' && isTemp && hooks.failAt === 'writeFile') {
            await target.write(Buffer.from('half'));
            throw fail('writeFile');
          }
          if (key === 'sync' && hooks.failAt === (isTemp ? 'sync' : 'dirsync')) throw fail('sync');
          const r = await (value as (...a: unknown[]) => unknown).apply(target, args);
          if (key === 'close' && isTemp && hooks.failAt === 'close') throw fail('close');
          return r;
        };
      },
    });
  };
  const rename: typeof real.rename = async (from, to) => {
    hooks.calls.push('rename');
    if (hooks.failAt === 'rename') throw fail('rename');
    return real.rename(from, to);
  };
  return { ...real, open, rename, default: { ...real, open, rename } };
});

vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  const randomBytes = ((n: number, ...rest: unknown[]) =>
    hooks.random.shift() ??
    (real.randomBytes as (n: number, ...r: unknown[]) => Buffer)(n, ...rest)) as typeof real.randomBytes;
  return { ...real, randomBytes, default: { ...real, randomBytes } };
});

const { writeAtomically } = await import('../../src/util/atomic-write.js');
const { WpcArgumentError } = await import('../../src/runtime/errors.js');

const root = mkdtempSync(join(tmpdir(), 'wpc-atomic-'));
let dir: string;
let n = 0;
beforeEach(() => {
  dir = join(root, `case${n++}`);
  mkdirSync(dir);
  hooks.failAt = null;
  hooks.random.length = 0;
  hooks.calls.length = 0;
  hooks.temporaries.length = 0;
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const TEMP = /\.wpc-tmp-\d+-[0-9a-f]{32}$/;

/** A pid that no process has now: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

describe('writeAtomically', () => {
  it('writes, flushes the file, renames, then flushes the folder; the temporary is exclusive, random and next to the target', async () => {
    const target = join(dir, 'model.json');
    writeFileSync(target, 'old');
    await writeAtomically(target, 'new');
    expect(readFileSync(target, 'utf8')).toBe('new');
    expect(readdirSync(dir)).toEqual(['model.json']);
    expect(hooks.calls).toEqual([
      'open temp wx',
      'writeFile temp',
      'sync temp',
      'close temp',
      'rename',
      'open other r',
      'sync other',
      'close other',
    ]);
    // Next to the target, named after it, this process and 128 random bits: a new name for every save.
    for (let i = 0; i < 3; i++) await writeAtomically(target, `v${i}`);
    expect(hooks.temporaries).toHaveLength(4);
    for (const t of hooks.temporaries)
      expect(t.startsWith(`${target}.wpc-tmp-${process.pid}-`) && TEMP.test(t), t).toBe(true);
    expect(new Set(hooks.temporaries).size).toBe(4);
    expect(readdirSync(dir)).toEqual(['model.json']);
  });

  it('a failure at any stage removes the temporary and leaves the old file as it was', async () => {
    for (const stage of ['writeFile', 'sync', 'close', 'rename'] as const) {
      const target = join(dir, `${stage}.safetensors`);
      writeFileSync(target, 'precious');
      hooks.failAt = stage;
      await expect(writeAtomically(target, new Uint8Array(1 << 16).fill(7)), stage).rejects.toThrow(/injected failure/);
      hooks.failAt = null;
      expect(readFileSync(target, 'utf8'), stage).toBe('precious');
      expect(
        readdirSync(dir).filter((f) => f.startsWith(`${stage}.`)),
        stage,
      ).toEqual([`${stage}.safetensors`]);
    }
    // Opening fails: nothing was created. A missing folder: likewise, with the system's error.
    hooks.failAt = 'open';
    await expect(writeAtomically(join(dir, 'open.bin'), 'x')).rejects.toThrow(/injected failure in open/);
    hooks.failAt = null;
    await expect(writeAtomically(join(dir, 'no', 'such.bin'), 'x')).rejects.toThrow(/ENOENT/);
    // The folder's flush fails after the rename: the new file is in place, and the caller hears of it.
    hooks.failAt = 'dirsync';
    await expect(writeAtomically(join(dir, 'dirsync.bin'), 'new')).rejects.toThrow(/injected failure in sync/);
    hooks.failAt = null;
    expect(readFileSync(join(dir, 'dirsync.bin'), 'utf8')).toBe('new');
    expect(readdirSync(dir).filter((f) => TEMP.test(f))).toEqual([]);
  });

  it('a target that cannot be replaced (a folder) fails after the write, and the temporary goes', async () => {
    const target = join(dir, 'taken');
    mkdirSync(target);
    writeFileSync(join(target, 'inside'), 'kept');
    await expect(writeAtomically(target, 'data')).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST|EPERM/);
    expect(readdirSync(dir)).toEqual(['taken']);
    expect(readFileSync(join(target, 'inside'), 'utf8')).toBe('kept');
  });

  it('refuses bad arguments before creating anything', async () => {
    const target = join(dir, 'x.bin');
    for (const [path, data, message] of [
      ['', 'x', /^writeAtomically: path must be a file path, got ""/],
      [42, 'x', /^writeAtomically: path must be a file path, got 42/],
      [`${target}\0`, 'x', /^writeAtomically: path must be a file path/],
      [target, 42, /^writeAtomically: data must be a string or a Uint8Array, got 42/],
      [target, [1, 2], /^writeAtomically: data must be a string or a Uint8Array, got an array/],
      [
        target,
        {
          toString: () => {
            throw new Error('boom');
          },
        },
        /^writeAtomically: data must be a string or a Uint8Array, got an object/,
      ],
    ] as [unknown, unknown, RegExp][]) {
      const e = await writeAtomically(path as string, data as string).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(WpcArgumentError);
      expect((e as Error).message).toMatch(message);
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it('never follows or overwrites a symlink or file planted at the name it draws: it draws another', async () => {
    const target = join(dir, 'checkpoint.safetensors');
    writeFileSync(target, 'old');
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'untouched');
    const planted = [Buffer.alloc(16, 0xab), Buffer.alloc(16, 0xcd), Buffer.alloc(16, 0xef)];
    const name = (b: Buffer) => join(dir, `checkpoint.safetensors.wpc-tmp-${process.pid}-${b.toString('hex')}`);
    symlinkSync(victim, name(planted[0]!)); // to an existing file
    symlinkSync(join(dir, 'would-be-created'), name(planted[1]!)); // dangling: O_CREAT alone would create its target
    writeFileSync(name(planted[2]!), 'someone else’s');
    hooks.random.push(...planted);
    await writeAtomically(target, 'new');
    expect(readFileSync(target, 'utf8')).toBe('new');
    expect(readFileSync(victim, 'utf8')).toBe('untouched');
    expect(readdirSync(dir)).not.toContain('would-be-created');
    expect(readlinkSync(name(planted[0]!))).toBe(victim);
    expect(readFileSync(name(planted[2]!), 'utf8')).toBe('someone else’s');
    expect(hooks.calls.filter((c) => c.startsWith('open temp'))).toEqual(Array(4).fill('open temp wx'));
    // Every name taken, five times over: it gives up with the system's error and touches nothing.
    const taken = Buffer.alloc(16, 0x11);
    symlinkSync(victim, name(taken));
    hooks.random.push(...Array(5).fill(taken));
    await expect(writeAtomically(target, 'newer')).rejects.toThrow(/EEXIST/);
    expect(readFileSync(target, 'utf8')).toBe('new');
    expect(readFileSync(victim, 'utf8')).toBe('untouched');
    expect(lstatSync(name(taken)).isSymbolicLink()).toBe(true);
  });

  it('a successful save removes the stale temporaries of its target left by killed processes, and nothing else', async () => {
    const target = join(dir, 'checkpoint.safetensors');
    const dead = deadPid();
    const stale = [
      `checkpoint.safetensors.wpc-tmp-${dead}-${'a'.repeat(32)}`,
      `checkpoint.safetensors.wpc-tmp-${dead}-${'0123456789abcdef'.repeat(2)}`,
    ];
    const kept = [
      `checkpoint.safetensors.wpc-tmp-${process.pid}-${'b'.repeat(32)}`, // this process: a save in flight
      `checkpoint.safetensors.wpc-tmp-${process.ppid}-${'c'.repeat(32)}`, // a running process
      `model.json.wpc-tmp-${dead}-${'d'.repeat(32)}`, // another target's
      `checkpoint.safetensors.wpc-tmp-${dead}-${'e'.repeat(31)}`, // not the pattern
      `checkpoint.safetensors.wpc-tmp-${dead}-${'E'.repeat(32)}`,
      `xcheckpoint.safetensors.wpc-tmp-${dead}-${'f'.repeat(32)}`,
      'checkpoint.safetensors.tmp-1-2',
    ];
    for (const f of [...stale, ...kept]) writeFileSync(join(dir, f), 'x');
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'untouched');
    const staleLink = `checkpoint.safetensors.wpc-tmp-${dead}-${'9'.repeat(32)}`;
    symlinkSync(victim, join(dir, staleLink)); // removed as a link; its target stays
    // A failed save removes nothing.
    hooks.failAt = 'rename';
    await expect(writeAtomically(target, 'x')).rejects.toThrow(/injected/);
    hooks.failAt = null;
    expect(readdirSync(dir).sort()).toEqual([...stale, ...kept, staleLink, 'victim.txt'].sort());
    await writeAtomically(target, 'data');
    expect(readdirSync(dir).sort()).toEqual([...kept, 'checkpoint.safetensors', 'victim.txt'].sort());
    expect(readFileSync(victim, 'utf8')).toBe('untouched');
  });
});

describe('writeAtomicallyWith (content produced while it is written: a download)', () => {
  it('renames only when the writer resolves; a writer that throws leaves the target as it was and no temporary', async () => {
    const { writeAtomicallyWith } = await import('../../src/util/atomic-write.js');
    const target = join(dir, 'file.gz');
    writeFileSync(target, 'old');
    const refused = new Error('checksum mismatch');
    await expect(
      writeAtomicallyWith(target, async (handle) => {
        await handle.write(Buffer.from('half of the new content'));
        throw refused;
      }),
    ).rejects.toBe(refused);
    expect(readdirSync(dir)).toEqual(['file.gz']);
    expect(readFileSync(target, 'utf8')).toBe('old');
    await writeAtomicallyWith(target, async (handle) => {
      await handle.write(Buffer.from('new '));
      await handle.write(Buffer.from('content'));
    });
    expect(readdirSync(dir)).toEqual(['file.gz']);
    expect(readFileSync(target, 'utf8')).toBe('new content');
    expect(hooks.calls.filter((c) => !c.startsWith('write ')).slice(-6)).toEqual([
      'sync temp',
      'close temp',
      'rename',
      'open other r',
      'sync other',
      'close other',
    ]);
    const bad = await writeAtomicallyWith(target, 'not a function' as never).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(WpcArgumentError);
    expect((bad as Error).message).toMatch(/^writeAtomicallyWith: write must be a function, got "not a function"/);
  });
});
