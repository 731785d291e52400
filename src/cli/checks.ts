/**
 * What the `wpc` command line checks before it starts any work, and how it reports a failure.
 *
 * - Output targets (`--out`, `--save`, `--samples`, `--checkpoint`) are checked before training starts, so a
 *   missing or unwritable folder is a usage error at once, not a lost model after the run.
 * - Every failure is one line on stderr: usage errors exit 2; runtime errors (missing data, unreadable files,
 *   device limits, any WpcError, Node's file-system errors) exit 1; anything else is an internal error. A stack
 *   trace only with `--debug`. Messages are made printable (no raw bytes of a file, no line breaks).
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { WpcError, printable } from '../runtime/errors.js';

/** A command-line mistake: reported on one line with a pointer to --help, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A file-system error from Node (fs, net, …): `code` such as ENOENT and the failed `syscall`. */
function isSystemError(e: unknown): e is Error & { code: string; syscall: string } {
  const x = e as { code?: unknown; syscall?: unknown } | null;
  return (
    e instanceof Error && typeof x?.code === 'string' && /^E[A-Z0-9]+$/.test(x.code) && typeof x.syscall === 'string'
  );
}

/** What a file-system error code means, for messages. */
const REASONS: Record<string, string> = {
  ENOENT: 'does not exist',
  ENOTDIR: 'has a part that is not a folder',
  EACCES: 'is not accessible (permission denied)',
  EPERM: 'is not accessible (operation not permitted)',
  EROFS: 'is on a read-only file system',
  ELOOP: 'has too many symbolic links',
  ENAMETOOLONG: 'is too long a name',
};

function reason(e: unknown): string {
  const code = (e as { code?: string }).code ?? '';
  return REASONS[code] ?? `cannot be examined (${code || (e as Error).message})`;
}

/**
 * fs.stat, or null when the path does not exist (ENOENT, or ENOTDIR: a part of it is a file, which the caller
 * finds walking up); other failures (permissions, loops) are usage errors.
 */
async function statOrNull(flag: string, path: string): Promise<Awaited<ReturnType<typeof stat>> | null> {
  try {
    return await stat(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new UsageError(`${flag} ${path} ${reason(e)}`);
  }
}

async function checkWritableFolder(flag: string, path: string, folder: string): Promise<void> {
  try {
    await access(folder, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new UsageError(
      `${flag} ${path}: the folder ${folder} is not writable (${(e as { code?: string }).code ?? 'denied'})`,
    );
  }
}

/**
 * A file the command will write: its folder must exist and be writable, and the file, if it exists already,
 * must be a regular, writable file (not a folder, FIFO or device, which would block or fail at the end).
 */
export async function checkOutputFile(flag: string, path: string): Promise<void> {
  if (path === '') throw new UsageError(`${flag} needs a file name, got ""`);
  const existing = await statOrNull(flag, path);
  if (existing) {
    if (existing.isDirectory())
      throw new UsageError(`${flag} ${path} is a folder; give a file name (e.g. ${join(path, 'out')})`);
    if (!existing.isFile())
      throw new UsageError(`${flag} ${path} is not a regular file (a FIFO, device or socket); give a file name`);
    try {
      await access(path, constants.W_OK);
    } catch (e) {
      throw new UsageError(`${flag} ${path} is not writable (${(e as { code?: string }).code ?? 'denied'})`);
    }
  }
  const folder = dirname(path);
  const parent = await statOrNull(flag, folder);
  if (!parent) throw new UsageError(`${flag} ${path}: the folder ${folder} does not exist; create it first`);
  if (!parent.isDirectory()) throw new UsageError(`${flag} ${path}: ${folder} is not a folder`);
  await checkWritableFolder(flag, path, folder);
}

/**
 * A folder the command will write files into (`files`, names inside it). It may not exist yet: `create` says
 * which of its ancestors must exist, the parent (`'parent'`, e.g. --checkpoint DIR) or any (`'ancestors'`, as
 * `mkdir -p` would, e.g. a study's --out runs/theory); that one must be a writable folder.
 */
export async function checkOutputFolder(
  flag: string,
  path: string,
  create: 'parent' | 'ancestors',
  files: readonly string[] = [],
): Promise<void> {
  if (path === '') throw new UsageError(`${flag} needs a folder name, got ""`);
  const existing = await statOrNull(flag, path);
  if (existing) {
    if (!existing.isDirectory()) throw new UsageError(`${flag} ${path} is not a folder`);
    await checkWritableFolder(flag, path, path);
    for (const file of files) {
      const target = join(path, file);
      const st = await statOrNull(flag, target);
      if (st && !st.isFile()) throw new UsageError(`${flag} ${path}: ${target} exists and is not a regular file`);
    }
    return;
  }
  let folder = dirname(path);
  for (;;) {
    const st = await statOrNull(flag, folder);
    if (st) {
      if (!st.isDirectory()) throw new UsageError(`${flag} ${path}: ${folder} is not a folder`);
      break;
    }
    if (create === 'parent')
      throw new UsageError(`${flag} ${path}: the folder ${folder} does not exist; create it first`);
    const up = dirname(folder);
    if (up === folder) break;
    folder = up;
  }
  await checkWritableFolder(flag, path, folder);
}

/** `message` on one printable line (`printable`, after line breaks become "; "), cut at 1,000 characters. */
function oneLine(message: string): string {
  const line = printable(message.replace(/\s*[\r\n]+\s*/g, '; '));
  return line.length > 1000 ? `${line.slice(0, 997)}...` : line;
}

/**
 * How the CLI reports `e`: exit code 2 for usage errors, 1 for runtime errors (WpcError of any kind, Node's
 * file-system errors), 1 with "internal error" for anything else (a bug); the stack follows with `debug`.
 * `help` is the subcommand whose --help a usage error points to (e.g. "wpc train --help").
 */
export function errorReport(e: unknown, help: string, debug: boolean): { code: number; text: string } {
  const err = e instanceof Error ? e : new Error(String(e));
  const stack = debug && err.stack ? `\n${err.stack}` : '';
  const code = (err as { code?: unknown }).code;
  if (e instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
    return { code: 2, text: `wpc: ${oneLine(err.message)} (see '${help}')${stack}\n` };
  }
  if (e instanceof WpcError || isSystemError(e)) return { code: 1, text: `wpc: ${oneLine(err.message)}${stack}\n` };
  const what = `${err.name}: ${oneLine(err.message)}`;
  return { code: 1, text: `wpc: internal error: ${what}${debug ? stack : ' (run with --debug for the stack)'}\n` };
}
