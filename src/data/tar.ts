/**
 * A small streaming reader of tar archives (POSIX ustar and GNU tar headers), for CIFAR-10's archive
 * (./cifar-archive.ts). Browser-safe: it reads decompressed bytes in chunks of any size, holding one header and
 * the current chunk. Every header is checked (checksum, magic, octal fields); entries must be regular files or
 * folders (links, devices, FIFOs, sparse files and pax / GNU extension headers are refused), and names must
 * stay inside the archive (no absolute path, no `..`); an archive that ends before its end-of-archive block,
 * inside a header or inside an entry is refused as truncated. Errors name the archive and the entry.
 */
import { printable } from '../runtime/errors.js';
import { IdxError } from './idx.js';

const BLOCK = 512;

/** One entry of an archive. */
export interface TarEntry {
  /** Its path inside the archive, e.g. `cifar-10-batches-bin/test_batch.bin` (a folder's may end in `/`). */
  readonly name: string;
  readonly type: 'file' | 'directory';
  /** Bytes of its body. */
  readonly size: number;
}

/** What the other type flags are, in words, for refusing them. */
const REFUSED_TYPES: Readonly<Record<string, string>> = {
  '1': 'a hard link',
  '2': 'a symbolic link',
  '3': 'a character device',
  '4': 'a block device',
  '6': 'a named pipe (FIFO)',
  '7': 'a contiguous file',
  g: 'a pax global header',
  x: 'a pax extended header',
  L: 'a GNU long-name header',
  K: 'a GNU long-link header',
  S: 'a GNU sparse file',
};

/** Pulls bytes from an async source of chunks of any size. */
class ByteSource {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private chunk: Uint8Array = new Uint8Array(0);
  private at = 0;
  private ended = false;
  /** Bytes handed out so far. */
  offset = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** At most `n` bytes (a view into the current chunk); empty only at the end of the source. */
  async next(n: number): Promise<Uint8Array> {
    while (this.at >= this.chunk.length) {
      if (this.ended) return this.chunk.subarray(0, 0);
      const r = await this.iterator.next();
      if (r.done) {
        this.ended = true;
        return new Uint8Array(0);
      }
      this.chunk = r.value;
      this.at = 0;
    }
    const out = this.chunk.subarray(this.at, this.at + Math.min(n, this.chunk.length - this.at));
    this.at += out.length;
    this.offset += out.length;
    return out;
  }

  /** Exactly `n` bytes, copied when they span chunks; fewer only at the end of the source. */
  async exactly(n: number): Promise<Uint8Array> {
    const first = await this.next(n);
    if (first.length === n || first.length === 0) return first;
    const out = new Uint8Array(n);
    out.set(first);
    let filled = first.length;
    while (filled < n) {
      const more = await this.next(n - filled);
      if (more.length === 0) break;
      out.set(more, filled);
      filled += more.length;
    }
    return out.subarray(0, filled);
  }
}

/** A NUL-terminated text field. */
function textField(block: Uint8Array, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
}

/** An octal number field (digits, then NUL or space padding; leading spaces allowed), or null when it is not one. */
function octalField(block: Uint8Array, start: number, length: number): number | null {
  const text = String.fromCharCode(...block.subarray(start, start + length));
  const m = /^ *([0-7]+)[ \0]*$/.exec(text);
  return m ? Number.parseInt(m[1]!, 8) : null;
}

/** The header at byte `offset` of `archive`, checked; 'end' for an all-zero block (the end-of-archive marker). */
function parseHeader(block: Uint8Array, archive: string, offset: number): TarEntry | 'end' {
  if (block.every((b) => b === 0)) return 'end';
  const where = `${printable(archive)}: the tar header at byte ${offset}`;
  const stored = octalField(block, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  if (stored !== sum) {
    throw new IdxError(
      `${where} has a checksum of ${stored ?? 'garbage'} but its bytes sum to ${sum}: not a tar archive, or a corrupt one`,
      archive,
    );
  }
  const magic = String.fromCharCode(...block.subarray(257, 263));
  if (magic !== 'ustar\0' && magic !== 'ustar ') {
    throw new IdxError(`${where} is not a ustar or GNU tar header (magic ${JSON.stringify(magic)})`, archive);
  }
  let name = textField(block, 0, 100);
  const prefix = magic === 'ustar\0' ? textField(block, 345, 155) : '';
  if (prefix !== '') name = `${prefix}/${name}`;
  const entry = `${where}, of entry ${JSON.stringify(printable(name))},`;
  if (name === '') throw new IdxError(`${where} names no entry`, archive);
  const parts = name.split(/[\\/]/);
  if (name.startsWith('/') || name.startsWith('\\') || /^[A-Za-z]:/.test(name) || parts.includes('..')) {
    throw new IdxError(`${entry} has a path that leaves the archive's folder; refused`, archive);
  }
  const flag = String.fromCharCode(block[156]!);
  let type: TarEntry['type'];
  if (flag === '0' || flag === '\0') type = 'file';
  else if (flag === '5') type = 'directory';
  else {
    const what = REFUSED_TYPES[flag] ?? `of type ${JSON.stringify(printable(flag))}`;
    throw new IdxError(`${entry} is ${what}; only regular files and folders are accepted`, archive);
  }
  if ((block[124]! & 0x80) !== 0) throw new IdxError(`${entry} gives its size in base 256 (over 8 GiB)`, archive);
  const size = octalField(block, 124, 12);
  if (size === null) throw new IdxError(`${entry} has a size field that is not an octal number`, archive);
  return { name, type, size };
}

/**
 * Reads the tar archive `source` (its decompressed bytes, in chunks of any size) up to its end-of-archive block,
 * calling `visit` with each entry in order and its body's bytes; what `visit` leaves unread is skipped. The
 * chunks it gets are views, valid until it asks for the next.
 * @param archive the archive's name, for messages.
 * @throws IdxError naming the archive (and the entry): a bad header, an entry that is not a regular file or
 *   folder or whose path leaves the archive, or an archive that ends early; whatever `visit` throws.
 */
export async function readTar(
  source: AsyncIterable<Uint8Array>,
  archive: string,
  visit: (entry: TarEntry, body: AsyncIterable<Uint8Array>) => Promise<void>,
): Promise<void> {
  const bytes = new ByteSource(source);
  const truncated = (what: string) =>
    new IdxError(`${printable(archive)}: ends after ${bytes.offset} bytes, ${what}: the archive is truncated`, archive);
  for (;;) {
    const offset = bytes.offset;
    const block = await bytes.exactly(BLOCK);
    if (block.length < BLOCK)
      throw truncated(block.length === 0 ? 'without its end-of-archive block' : 'inside a header');
    const entry = parseHeader(block, archive, offset);
    if (entry === 'end') return;
    let remaining = entry.size;
    const inside = `inside ${JSON.stringify(printable(entry.name))} (${entry.size} bytes from byte ${offset + BLOCK})`;
    const body: AsyncIterable<Uint8Array> = {
      async *[Symbol.asyncIterator]() {
        while (remaining > 0) {
          const chunk = await bytes.next(remaining);
          if (chunk.length === 0) throw truncated(inside);
          remaining -= chunk.length;
          yield chunk;
        }
      },
    };
    await visit(entry, body);
    // The rest of the body and the padding to a whole block.
    let skip = remaining + ((BLOCK - (entry.size % BLOCK)) % BLOCK);
    while (skip > 0) {
      const chunk = await bytes.next(skip);
      if (chunk.length === 0) throw truncated(remaining > 0 ? inside : 'inside the padding after an entry');
      if (remaining > 0) remaining -= Math.min(remaining, chunk.length);
      skip -= chunk.length;
    }
  }
}
