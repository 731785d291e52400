/**
 * Writing a file atomically (Node only): a temporary file created exclusively next to the target, flushed, and
 * renamed over it, so an interrupted or failed write never leaves a truncated file where a good one was. Every
 * file WPC writes goes through here: checkpoints, images, study outputs, downloaded datasets.
 */
import { randomBytes } from 'node:crypto';
import { type FileHandle, open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { argError } from '../runtime/errors.js';

/** Temporary files are named `<target name>.wpc-tmp-<pid>-<32 random hex digits>`. */
const TEMP_MARK = '.wpc-tmp-';

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Whether process `pid` (on this machine) still runs; a process we may not signal counts as running. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporaries that saves of `target` left behind when their process was killed: names of the
 * pattern whose process no longer runs (those of live processes, this one included, may be saves in flight).
 * Best effort: a name that cannot be removed is left.
 */
async function removeStaleTemporaries(dir: string, target: string): Promise<void> {
  const pattern = new RegExp(`^${escapeRegExp(target)}${escapeRegExp(TEMP_MARK)}(\\d{1,10})-[0-9a-f]{32}$`);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = pattern.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || isRunning(pid)) continue;
    await unlink(join(dir, name)).catch(() => undefined);
  }
}

/** fsync on the folder, so that the rename itself survives a power cut; skipped where folders cannot be synced. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Windows cannot open or sync a folder; some file systems do not sync them.
    if (
      code !== 'EISDIR' &&
      code !== 'EPERM' &&
      code !== 'EINVAL' &&
      code !== 'EBADF' &&
      code !== 'ENOTSUP' &&
      code !== 'EACCES'
    )
      throw e;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Writes `data` to `path` atomically: to a new temporary file in the same folder, created exclusively (O_EXCL:
 * it never opens an existing file or follows a symlink) under an unguessable name, flushed to disk (fsync),
 * renamed over `path`, and the folder flushed. A crash or `kill -9` at any moment leaves the old file or the new
 * one at `path`, never a mix, plus at most a temporary that the next successful save of `path` removes. On any
 * failure the temporary is removed and `path` is as it was.
 */
export async function writeAtomically(path: string, data: string | Uint8Array): Promise<void> {
  const fn = 'writeAtomically';
  checkTarget(fn, path);
  if (typeof data !== 'string' && !(data instanceof Uint8Array)) argError(fn, 'data', 'a string or a Uint8Array', data);
  await replaceAtomically(path, (handle) => handle.writeFile(data));
}

/**
 * `writeAtomically` for content that is produced while it is written (a download): `write` fills the temporary
 * through its handle, and may throw to refuse what it wrote (a checksum that does not match); then the temporary
 * is removed and `path` is as it was. Only when `write` resolves is the file flushed and renamed over `path`.
 */
export async function writeAtomicallyWith(path: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  const fn = 'writeAtomicallyWith';
  checkTarget(fn, path);
  if (typeof write !== 'function') argError(fn, 'write', 'a function', write);
  await replaceAtomically(path, write);
}

function checkTarget(fn: string, path: unknown): void {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) argError(fn, 'path', 'a file path', path);
}

async function replaceAtomically(path: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  const dir = dirname(path);
  const name = basename(path);
  let tmp = '';
  let handle: FileHandle | undefined;
  for (let attempt = 0; handle === undefined; attempt++) {
    tmp = join(dir, `${name}${TEMP_MARK}${process.pid}-${randomBytes(16).toString('hex')}`);
    try {
      handle = await open(tmp, 'wx');
    } catch (e) {
      // A name taken (only ever by a file planted there): draw another.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 4) throw e;
    }
  }
  try {
    try {
      await write(handle);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await syncDirectory(dir);
  await removeStaleTemporaries(dir, name);
}
