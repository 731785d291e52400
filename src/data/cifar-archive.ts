/**
 * CIFAR-10's six binary files out of its archive, and the record of them (Node only), for `downloadDataset`
 * (./download.ts).
 *
 * The archive (already verified against its checksums) is inflated with node:zlib and read as a stream by
 * ./tar.ts. Each wanted member, `cifar-10-batches-bin/<file>`, is checked as it passes (at most an official file's
 * size, a positive multiple of 3073 bytes, labels 0..9) while it is written to a temporary file, and renamed into
 * place only then. Everything else (batches.meta.txt, readme.html, the folder) is skipped; any refusal (a bad
 * entry, a wanted file twice or missing) removes what this extraction placed. Once all six are in place, their
 * SHA-256s go to `SHA256SUMS` beside them (the format of `sha256sum -c`), so that a later download can tell that
 * they are still the files that came out of the genuine archive.
 */
import { createHash } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { printable } from '../runtime/errors.js';
import { writeAtomically, writeAtomicallyWith } from '../util/atomic-write.js';
import { FileAccessError, openRegularFile } from '../util/regular-file.js';
import { CIFAR10_FILE_RECORDS, CIFAR10_RECORD_BYTES, CifarRecordCheck, checkCifarSize } from './cifar.js';
import { expectedFileNames } from './files.js';
import { IdxError } from './idx.js';
import { readTar } from './tar.js';

/** The folder the archive holds the files in. */
const MEMBER_FOLDER = 'cifar-10-batches-bin/';
/** The record of the extracted files' SHA-256s. */
const CIFAR10_SUMS_FILE = 'SHA256SUMS';
/** The most bytes of `SHA256SUMS` read (it holds six lines of about 85). */
const MAX_SUMS_BYTES = 4096;
/** Bytes read per chunk when hashing a file in place. */
const CHUNK_BYTES = 1 << 20;

/** One extracted file. */
export interface ExtractedFile {
  /** Its name, e.g. `data_batch_1.bin`. */
  file: string;
  /** Where it is now. */
  path: string;
  bytes: number;
  sha256: string;
}

/** Whether an error means the zlib stream is bad (not our disk or a bug). */
function isZlibError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code ?? '';
  return code.startsWith('Z_') || code === 'ERR_ZLIB_INITIALIZATION_FAILED';
}

/**
 * Extracts the six binary files from the gzip-compressed tar archive at `archivePath` into `dir`, each written
 * atomically, and records their SHA-256s in `dir/SHA256SUMS`.
 * @param onExtracted called as each file is in place (in the archive's order).
 * @returns the six files in the order of `expectedFileNames('cifar10')`.
 * @throws IdxError naming the archive (and the entry) when its contents are refused; the file system's error when
 *   writing fails; the signal's reason when aborted. In every case nothing this call placed is left.
 */
export async function extractCifar10(
  archivePath: string,
  dir: string,
  signal: AbortSignal | undefined,
  onExtracted: (file: ExtractedFile) => void,
): Promise<ExtractedFile[]> {
  const wanted = expectedFileNames('cifar10');
  const done = new Map<string, ExtractedFile>();
  const archive = printable(archivePath);
  let opened: Awaited<ReturnType<typeof openRegularFile>>;
  try {
    opened = await openRegularFile(archivePath);
  } catch (e) {
    if (e instanceof FileAccessError) throw new IdxError(`${archive}: cannot be read (${e.detail})`, archivePath);
    throw e;
  }
  try {
    await pipeline(
      opened.handle.createReadStream(),
      createGunzip(),
      (source: AsyncIterable<Uint8Array>) =>
        readTar(source, archivePath, async (entry, body) => {
          if (entry.type !== 'file' || !entry.name.startsWith(MEMBER_FOLDER)) return;
          const file = entry.name.slice(MEMBER_FOLDER.length);
          if (!wanted.includes(file)) return;
          const member = `${archivePath}: ${entry.name}`;
          if (done.has(file)) throw new IdxError(`${printable(member)}: is in the archive twice`, archivePath);
          if (entry.size > CIFAR10_FILE_RECORDS * CIFAR10_RECORD_BYTES) {
            throw new IdxError(
              `${printable(member)}: is ${entry.size} bytes, more than an official file's ${CIFAR10_FILE_RECORDS} records`,
              archivePath,
            );
          }
          checkCifarSize(member, entry.size);
          const path = join(dir, file);
          const hash = createHash('sha256');
          await writeAtomicallyWith(path, async (handle) => {
            const check = new CifarRecordCheck(member);
            for await (const chunk of body) {
              check.update(chunk);
              hash.update(chunk);
              await handle.write(chunk);
            }
            check.finish();
          });
          const extracted = { file, path, bytes: entry.size, sha256: hash.digest('hex') };
          done.set(file, extracted);
          onExtracted(extracted);
        }),
      signal === undefined ? {} : { signal },
    );
    const missing = wanted.filter((f) => !done.has(f));
    if (missing.length > 0) {
      throw new IdxError(
        `${archive}: holds no ${missing.map((f) => MEMBER_FOLDER + f).join(', ')}: not CIFAR-10's binary archive`,
        archivePath,
      );
    }
    const files = wanted.map((f) => done.get(f)!);
    await writeAtomically(join(dir, CIFAR10_SUMS_FILE), files.map((f) => `${f.sha256}  ${f.file}\n`).join(''));
    return files;
  } catch (e) {
    for (const f of done.values()) await unlink(f.path).catch(() => undefined);
    if (signal?.aborted) throw signal.reason;
    if (isZlibError(e)) {
      throw new IdxError(`${archive}: is not a valid gzip file (${printable((e as Error).message)})`, archivePath);
    }
    throw e;
  } finally {
    await opened.handle.close().catch(() => undefined);
  }
}

/** The SHA-256 of the regular file at `path`, or null when there is none or it cannot be read. */
async function sha256Of(
  path: string,
  signal: AbortSignal | undefined,
): Promise<{ sha256: string; bytes: number } | null> {
  let opened: Awaited<ReturnType<typeof openRegularFile>>;
  try {
    opened = await openRegularFile(path);
  } catch {
    return null;
  }
  const { handle, size } = opened;
  try {
    const hash = createHash('sha256');
    const buffer = new Uint8Array(CHUNK_BYTES);
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
    return { sha256: hash.digest('hex'), bytes: size };
  } catch (e) {
    if (signal?.aborted) throw e;
    return null;
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * The six files in `dir`, when `SHA256SUMS` lists each of them and each still has that SHA-256 (as extracted
 * from the verified archive); null otherwise (then they are fetched again).
 */
export async function cifar10InPlace(dir: string, signal: AbortSignal | undefined): Promise<ExtractedFile[] | null> {
  let text: string;
  try {
    const { handle, size } = await openRegularFile(join(dir, CIFAR10_SUMS_FILE));
    try {
      text = size > MAX_SUMS_BYTES ? '' : await handle.readFile('utf8');
    } finally {
      await handle.close().catch(() => undefined);
    }
  } catch {
    return null;
  }
  const listed = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
    if (m) listed.set(m[2]!, m[1]!);
  }
  const files: ExtractedFile[] = [];
  for (const file of expectedFileNames('cifar10')) {
    const expected = listed.get(file);
    if (expected === undefined) return null;
    const path = join(dir, file);
    const got = await sha256Of(path, signal);
    if (got?.sha256 !== expected) return null;
    files.push({ file, path, bytes: got.bytes, sha256: expected });
  }
  return files;
}
