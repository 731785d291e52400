/**
 * Reading one split of CIFAR-10 from its binary files (Node only), for `loadDataset` (./node.ts). Every file of
 * the split is opened and its size checked before any is read, so a missing, odd-sized or oversized file is
 * refused at once, naming it; each is read whole (at most one official file, 30,730,000 bytes) and then checked
 * and normalised by `makeCifarDataset` (./cifar.ts).
 */
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { printable } from '../runtime/errors.js';
import { FileAccessError, openRegularFile } from '../util/regular-file.js';
import {
  CIFAR10_FILE_RECORDS,
  CIFAR10_RECORD_BYTES,
  checkCifarSize,
  makeCifarDataset,
  type CifarFile,
} from './cifar.js';
import type { ChannelNormalization, Dataset } from './dataset.js';
import { CIFAR10_SPLIT_FILES, expectedFileNames, type Split } from './files.js';
import { IdxError, idxError } from './idx.js';

/** The largest file read: an official one. */
const MAX_FILE_BYTES = CIFAR10_FILE_RECORDS * CIFAR10_RECORD_BYTES;

/**
 * The split's files in `dir`, in order, as one dataset named `cifar10-<split>`.
 * @param fn the public function to name in messages.
 * @throws IdxError naming the file: missing (and how to fetch the data), not a regular file, unreadable, larger
 *   than an official file, not a positive multiple of 3073 bytes, or holding a label outside 0..9.
 */
export async function loadCifar10(
  fn: string,
  dir: string,
  split: Split,
  normalization: ChannelNormalization,
): Promise<Dataset> {
  const opened: { path: string; handle: FileHandle; size: number }[] = [];
  try {
    for (const file of CIFAR10_SPLIT_FILES[split]) {
      const path = join(dir, file);
      const { handle, size } = await openCifarFile(fn, dir, path);
      opened.push({ path, handle, size });
      if (size > MAX_FILE_BYTES) {
        throw new IdxError(
          `${printable(path)}: is ${size} bytes, more than an official CIFAR-10 file's ${MAX_FILE_BYTES} ` +
            `(${CIFAR10_FILE_RECORDS} records of ${CIFAR10_RECORD_BYTES} bytes)`,
          path,
        );
      }
      checkCifarSize(path, size);
    }
    const files: CifarFile[] = [];
    for (const { path, handle, size } of opened) files.push({ file: path, bytes: await readWhole(path, handle, size) });
    return makeCifarDataset(`cifar10-${split}`, files, normalization);
  } finally {
    for (const { handle } of opened) await handle.close().catch(() => undefined);
  }
}

/** Opens `path` as a regular file; anything else is an IdxError naming it (a missing one says how to fetch it). */
async function openCifarFile(fn: string, dir: string, path: string): Promise<{ handle: FileHandle; size: number }> {
  try {
    return await openRegularFile(path);
  } catch (err) {
    if (!(err instanceof FileAccessError)) throw err;
    if (err.reason === 'missing') {
      throw new IdxError(
        `${fn}: missing CIFAR-10 file ${printable(path)}. The folder ${printable(dir)} must hold ` +
          `${expectedFileNames('cifar10').join(', ')} (the binary version's files); run 'wpc data download cifar10 ` +
          `--dir DIR' (or downloadDataset in the API) to fetch them into DIR/cifar10/`,
        path,
      );
    }
    if (err.reason === 'not-regular') {
      throw idxError(
        path,
        `is ${err.detail}, not a regular file; data files must be regular files (a pipe or device may block or never end)`,
      );
    }
    throw idxError(path, `cannot read it (${printable(err.detail)})`);
  }
}

/** Exactly the `size` bytes the file had when opened. */
async function readWhole(path: string, handle: FileHandle, size: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(size);
  let at = 0;
  try {
    while (at < size) {
      const { bytesRead } = await handle.read(bytes, at, size - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
  } catch (err) {
    throw idxError(path, `cannot read it (${printable((err as Error)?.message ?? String(err))})`);
  }
  if (at < size) throw idxError(path, `ended after ${at} of its ${size} bytes while it was read (did it change?)`);
  return bytes;
}
