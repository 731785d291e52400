// CIFAR-10 binary files and tar archives for the data tests, in the exact formats: records of 1 label byte and
// 3072 pixel bytes (red, green, blue planes of 32×32, row-major), and ustar / GNU tar headers with checksums.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { KnownFile } from '../../src/data/files.js';

export const RECORD = 3073;
export const PIXELS = 3072;

/** The pixel byte of record `r` of file `f` at value index k (channel k >> 10, row (k >> 5) & 31, column k & 31). */
export function pixelAt(f: number, r: number, k: number): number {
  return (f * 101 + r * 37 + k * 7 + (k >> 10) * 53) % 256;
}

/** A CIFAR-10 binary file of `labels.length` records: label i, then pixelAt(file, i, k) for k = 0..3071. */
export function cifarBytes(file: number, labels: readonly number[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(labels.length * RECORD);
  labels.forEach((label, r) => {
    out[r * RECORD] = label;
    for (let k = 0; k < PIXELS; k++) out[r * RECORD + 1 + k] = pixelAt(file, r, k);
  });
  return out;
}

/** Labels for `n` records of file `f`, all in 0..9. */
export function labelsFor(f: number, n: number): number[] {
  return Array.from({ length: n }, (_, r) => (f * 3 + r) % 10);
}

/** The official file names, and a small genuine-format file for each (file index = position). */
export const CIFAR_FILES = [
  'data_batch_1.bin',
  'data_batch_2.bin',
  'data_batch_3.bin',
  'data_batch_4.bin',
  'data_batch_5.bin',
  'test_batch.bin',
];
/** Records per generated file: few, and different, so that every file's place shows. */
export const RECORDS = [2, 3, 1, 2, 2, 4];
export function cifarFileBytes(index: number): Uint8Array<ArrayBuffer> {
  return cifarBytes(index, labelsFor(index, RECORDS[index]!));
}

/** One tar entry: a regular file (`body`), a folder, or any type flag with an empty body. */
export interface TarItem {
  name: string;
  body?: Uint8Array;
  /** The type flag; default '0' (regular file), '5' for a folder. */
  type?: string;
  /** Overrides the size field (e.g. more than the body, to truncate). */
  size?: number;
  /** 'gnu' headers (magic "ustar  \0"), as GNU tar writes by default; default POSIX ustar. */
  format?: 'gnu' | 'ustar';
}

function put(block: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) block[at + i] = text.charCodeAt(i);
}

/** One 512-byte header with a correct checksum. */
export function tarHeader(item: TarItem): Uint8Array<ArrayBuffer> {
  const block = new Uint8Array(512);
  put(block, 0, item.name);
  put(block, 100, '0000644\0');
  put(block, 108, '0001750\0');
  put(block, 116, '0001750\0');
  const size = item.size ?? item.body?.length ?? 0;
  put(block, 124, `${size.toString(8).padStart(11, '0')}\0`);
  put(block, 136, '12470162440\0');
  put(block, 156, item.type ?? '0');
  if (item.format === 'gnu') put(block, 257, 'ustar  \0');
  else put(block, 257, 'ustar\u000000');
  put(block, 148, '        ');
  const sum = block.reduce((a, b) => a + b, 0);
  put(block, 148, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

/** A tar archive of `items`, each body padded to 512 bytes, ending with two zero blocks (unless `end` is false). */
export function tarBytes(items: readonly TarItem[], end = true): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  for (const item of items) {
    parts.push(tarHeader(item));
    const body = item.body ?? new Uint8Array(0);
    parts.push(body, new Uint8Array((512 - (body.length % 512)) % 512));
  }
  if (end) parts.push(new Uint8Array(1024));
  return new Uint8Array(Buffer.concat(parts));
}

/**
 * An archive laid out as CIFAR-10's (GNU headers, a folder entry, the two text files, zeros up to a whole
 * 10240-byte record as GNU tar writes them), holding `bodies`.
 */
export function cifarArchive(bodies: readonly Uint8Array[] = CIFAR_FILES.map((_, i) => cifarFileBytes(i))): Buffer {
  const dir = 'cifar-10-batches-bin/';
  const text = (s: string) => new TextEncoder().encode(s);
  const items: TarItem[] = [
    { name: dir, type: '5', format: 'gnu' },
    { name: `${dir}data_batch_4.bin`, body: bodies[3]!, format: 'gnu' },
    { name: `${dir}readme.html`, body: text('<meta>'), format: 'gnu' },
    { name: `${dir}test_batch.bin`, body: bodies[5]!, format: 'gnu' },
    { name: `${dir}data_batch_3.bin`, body: bodies[2]!, format: 'gnu' },
    { name: `${dir}data_batch_2.bin`, body: bodies[1]!, format: 'gnu' },
    { name: `${dir}data_batch_1.bin`, body: bodies[0]!, format: 'gnu' },
    { name: `${dir}batches.meta.txt`, body: text('airplane\nautomobile\n'), format: 'gnu' },
    { name: `${dir}data_batch_5.bin`, body: bodies[4]!, format: 'gnu' },
  ];
  const tar = tarBytes(items);
  const record = new Uint8Array(Math.ceil(tar.length / 10240) * 10240 + 10240);
  record.set(tar);
  return gzipSync(record);
}

/** The KnownFile of a generated archive (for downloadVerifiedBy), named as the genuine one. */
export function knownArchive(bytes: Uint8Array): KnownFile {
  return {
    name: 'cifar-10-binary.tar.gz',
    bytes: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    md5: createHash('md5').update(bytes).digest('hex'),
  };
}
