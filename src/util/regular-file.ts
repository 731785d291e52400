/**
 * Opening a file that must be a regular file (Node only): the data files and the checkpoints a user names. A
 * named pipe, device, socket or directory is refused without reading from it, so nothing can block or read
 * without end. Callers turn the refusal into their own error type.
 */
import { constants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';

/** Why `path` could not be opened as a regular file: missing, something else than a file, or unreadable. */
export class FileAccessError extends Error {
  override name = 'FileAccessError';
  constructor(
    readonly path: string,
    readonly reason: 'missing' | 'not-regular' | 'unreadable',
    /** What the path is (not-regular: "a named pipe (FIFO)", …), or the system's message (unreadable). */
    readonly detail: string,
    /** The system error code (ENOENT, EACCES, …) where there is one. */
    readonly code?: string,
  ) {
    super(`${path}: ${detail}`);
  }
}

/** What a non-regular file is, in words. */
function kindOf(info: Stats): string {
  if (info.isFIFO()) return 'a named pipe (FIFO)';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isSocket()) return 'a socket';
  if (info.isDirectory()) return 'a directory';
  return 'not a regular file';
}

/** `err` from stat (where ENOENT means nothing is there) or from a later call (where it is a failure). */
function unreadable(path: string, err: unknown, atStat = false): FileAccessError {
  const code = (err as NodeJS.ErrnoException)?.code;
  return new FileAccessError(
    path,
    atStat && code === 'ENOENT' ? 'missing' : 'unreadable',
    (err as Error)?.message ?? String(err),
    code,
  );
}

/**
 * Opens `path` (following symlinks) for reading when it is a regular file, with its size. `stat` first, so that
 * a FIFO or device is normally not even opened; then opened non-blocking (opening a FIFO with no writer would
 * otherwise wait forever) and checked again on the handle, in case the path changed in between.
 * @throws FileAccessError
 */
export async function openRegularFile(path: string): Promise<{ handle: FileHandle; size: number }> {
  let info: Stats;
  try {
    info = await stat(path);
  } catch (err) {
    throw unreadable(path, err, true);
  }
  if (!info.isFile()) throw new FileAccessError(path, 'not-regular', kindOf(info));
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (err) {
    throw unreadable(path, err);
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) throw new FileAccessError(path, 'not-regular', kindOf(opened));
    return { handle, size: opened.size };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err instanceof FileAccessError ? err : unreadable(path, err);
  }
}
