// Bounded data input for the Node loader (loadDataset) and the shared stream reader (readIdxStream): gzip bombs
// and oversized files are refused after at most what the header declares, with memory far below the bomb's
// size; pipes and devices are refused at once instead of blocking; headers of any size give clear errors;
// messages never carry raw bytes or a path of the build machine; a refusal changes nothing and leaves no file
// open. No GPU needed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants as fsConstants, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdxError, parseIdx, printable } from '../../src/data/idx.js';
import { MAX_IDX_BYTES, gzipSizeLimit, readIdxStream, type IdxReadStats } from '../../src/data/idx-reader.js';
import { loadDataset } from '../../src/data/node.js';
import { WpcArgumentError, WpcError } from '../../src/runtime/errors.js';
import { UNPRINTABLE, gzipBomb, idxBytes, idxHeader, peakMemoryGrowth } from '../support/idx-fixtures.js';

const DATA_DIR = process.env.WPC_DATA_DIR ?? fileURLToPath(new URL('../../../shared/datasets', import.meta.url));
/** The folder holding this checkout: a path of the machine WPC is built on, which no message may contain. */
const BUILD_PARENT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const GiB = 2 ** 30;
const MiB = 2 ** 20;
const TEST_IMAGES_BYTES = 16 + 10000 * 784; // 7,840,016: the largest MNIST test images file
const TEST_LABELS_BYTES = 8 + 10000;
/** Memory a refused 1 GiB bomb may cost at most: its declared file plus the reader's buffers, with room for noise. */
const MEMORY_BOUND = 256 * MiB;

let tmp = '';
let caseNo = 0;
const fifos: string[] = [];
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wpc-data-limits-'));
});
afterAll(async () => {
  // Should a reader ever block on one of the FIFOs, opening it for writing releases the reader (it sees EOF);
  // non-blocking, this open fails at once (ENXIO) when no reader is waiting.
  for (const fifo of fifos) {
    const h = await open(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK).catch(() => undefined);
    await h?.close();
  }
  await rm(tmp, { recursive: true, force: true });
});

const goodLabels = gzipSync(
  idxBytes(
    [10000],
    Array.from({ length: 10000 }, (_, i) => (i * 7) % 10),
  ),
);
const goodImages = () => gzipSync(idxBytes([10000, 28, 28], new Uint8Array(10000 * 784)));

/** A file's bytes, a function that makes it, or null for no file. */
type Entry = Uint8Array | ((path: string) => Promise<void>) | null;
/** A fresh DIR/mnist/ holding the given files (default: good test-split labels); returns DIR. */
async function splitDir(files: Record<string, Entry>): Promise<string> {
  const root = join(tmp, `case${caseNo++}`);
  const dir = join(root, 'mnist');
  await mkdir(dir, { recursive: true });
  const all: Record<string, Entry> = { 't10k-labels-idx1-ubyte.gz': goodLabels, ...files };
  for (const [name, entry] of Object.entries(all)) {
    if (entry instanceof Uint8Array) await writeFile(join(dir, name), entry);
    else if (entry !== null) await entry(join(dir, name));
  }
  return root;
}

/** Every file under `dir` (not following symlinks): its kind, size and, for small regular files, a hash. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const path = join(dir, name);
    const s = lstatSync(path);
    const hash = s.isFile() && s.size < 64 * MiB ? createHash('sha256').update(readFileSync(path)).digest('hex') : '';
    out.push(`${name} ${s.mode} ${s.size} ${s.mtimeMs} ${hash}`);
  }
  return out.sort();
}

/** Paths under `dir` that this process holds open. */
function openFilesUnder(dir: string): string[] {
  const open: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir)) open.push(target);
    } catch {
      // closed while we looked
    }
  }
  return open;
}

/** Every absolute path in a message lies under one of `allowed` (the user's own folders). */
function expectOnlyUserPaths(message: string, allowed: string[]): void {
  expect(message).not.toContain(`${BUILD_PARENT}/`);
  for (const [, path] of message.matchAll(/(?:^|[\s(])(\/[^\s,;:)]*)/g)) {
    expect(
      allowed.some((a) => path!.startsWith(a)),
      `${path} in: ${message}`,
    ).toBe(true);
  }
}

/**
 * Loads the split from `root`, expecting a refusal: an IdxError (a WpcError, never a RangeError) whose message
 * starts with a path under `root`, is printable, and names no path of the build machine; the folder is
 * unchanged afterwards and none of its files is left open.
 */
async function refusal(root: string, split: 'train' | 'test' = 'test'): Promise<IdxError> {
  const before = snapshot(root);
  const err = await loadDataset('mnist', split, { dataDir: root }).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(err, 'expected a refusal').toBeInstanceOf(IdxError);
  expect(err).toBeInstanceOf(WpcError);
  expect(err!.message.startsWith(root), err!.message).toBe(true);
  expect(err!.message).not.toMatch(UNPRINTABLE);
  expectOnlyUserPaths(err!.message, [tmp]);
  expect(snapshot(root)).toEqual(before);
  expect(openFilesUnder(tmp)).toEqual([]);
  return err as IdxError;
}

/** The error a promise rejects with (failing the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(outcome, 'expected a rejection').toBeInstanceOf(Error);
  return outcome!;
}

/** `refusal`, while watching memory: the refusal must cost far less than a 1 GiB bomb inflated. */
async function boundedRefusal(root: string, split: 'train' | 'test' = 'test'): Promise<IdxError> {
  const { outcome, growth } = await peakMemoryGrowth(() => refusal(root, split));
  if (outcome.status === 'rejected') throw outcome.reason;
  expect(growth).toBeLessThan(MEMORY_BOUND);
  return outcome.value;
}

/** The byte count in "reading stopped at N bytes". */
function stoppedAt(message: string): number {
  const m = /reading stopped at (\d+) bytes/.exec(message);
  expect(m, message).not.toBeNull();
  return Number(m![1]);
}

describe('gzip bombs and oversized files (loadDataset)', () => {
  it('a 1 GiB bomb under a header of the right shape: reading stops at the 7,840,016 bytes it declares', async () => {
    const bomb = gzipBomb(idxHeader([10000, 28, 28]), GiB);
    expect(bomb.length).toBeLessThan(2 * MiB);
    const root = await splitDir({ 't10k-images-idx3-ubyte.gz': bomb });
    const err = await boundedRefusal(root);
    expect(err.message).toMatch(
      /t10k-images-idx3-ubyte\.gz: trailing garbage after IDX data: header says 10000×28×28 unsigned bytes, so expected 7840016 bytes/,
    );
    expect(err.file).toBe(join(root, 'mnist', 't10k-images-idx3-ubyte.gz'));
    expect(stoppedAt(err.message)).toBeLessThanOrEqual(TEST_IMAGES_BYTES + MiB);
  }, 60_000);

  it('a bomb whose header declares more than the split can hold is refused after the header', async () => {
    for (const [dims, note] of [
      [[0xffffffff, 28, 28], /4294967295 = -1 as signed 32-bit integers/],
      [[10001, 28, 28], /expected 7840800 bytes/],
      [[2 ** 31, 1, 1], /2147483648 = -2147483648/],
    ] as const) {
      const root = await splitDir({ 't10k-images-idx3-ubyte.gz': gzipBomb(idxHeader([...dims]), GiB) });
      const err = await boundedRefusal(root);
      expect(err.message).toMatch(
        /more than the limit of 7840016 bytes \(the size of the MNIST test images file\); nothing more was read/,
      );
      expect(err.message).toMatch(note);
    }
  }, 60_000);

  it('a labels bomb: unread when larger than any labels file compresses to, else stopped at its 10,008 bytes', async () => {
    const big = gzipBomb(idxHeader([10000]), GiB);
    const unread = await boundedRefusal(
      await splitDir({ 't10k-images-idx3-ubyte.gz': goodImages(), 't10k-labels-idx1-ubyte.gz': big }),
    );
    expect(unread.message).toMatch(
      new RegExp(
        `t10k-labels-idx1-ubyte\\.gz: the file is ${big.length} bytes, more than an IDX file within the limit of 10008 bytes \\(the size of the MNIST test labels file\\) can be`,
      ),
    );
    const small = gzipBomb(idxHeader([10000]), 64 * MiB);
    expect(small.length).toBeLessThan(gzipSizeLimit(TEST_LABELS_BYTES));
    const stopped = await boundedRefusal(
      await splitDir({ 't10k-images-idx3-ubyte.gz': goodImages(), 't10k-labels-idx1-ubyte.gz': small }),
    );
    expect(stopped.message).toMatch(
      /t10k-labels-idx1-ubyte\.gz: trailing garbage after IDX data: .*expected 10008 bytes/,
    );
    expect(stoppedAt(stopped.message)).toBeLessThanOrEqual(TEST_LABELS_BYTES + MiB);
  }, 60_000);

  it('a gzip file larger than any genuine one could be is refused unread', async () => {
    const size = 1.5 * GiB; // sparse: costs no disk
    const root = await splitDir({
      't10k-images-idx3-ubyte.gz': async (path) => {
        await writeFile(path, gzipSync(idxBytes([10000, 28, 28], new Uint8Array(10000 * 784))));
        await truncate(path, size);
      },
    });
    const err = await boundedRefusal(root);
    expect(err.message).toMatch(
      new RegExp(
        `the file is ${size} bytes, more than an IDX file within the limit of 7840016 bytes \\(the size of the MNIST test images file\\) can be, even gzip-compressed`,
      ),
    );
  }, 60_000);

  it('an uncompressed file over the limit is refused unread; one whose size disagrees with its header, after the header', async () => {
    const size = 1.5 * GiB;
    const big = await splitDir({
      't10k-images-idx3-ubyte': async (path) => {
        await writeFile(path, idxHeader([10000, 28, 28]));
        await truncate(path, size);
      },
    });
    expect((await boundedRefusal(big)).message).toMatch(
      new RegExp(`t10k-images-idx3-ubyte: the file is ${size} bytes, more than the limit of 7840016 bytes`),
    );

    const longer = await splitDir({
      't10k-images-idx3-ubyte': async (path) => {
        await writeFile(path, idxHeader([5, 28, 28]));
        await truncate(path, TEST_IMAGES_BYTES);
      },
    });
    expect((await refusal(longer)).message).toMatch(
      /trailing garbage after IDX data: header says 5×28×28 .*expected 3936 bytes .*got 7840016 \(7836080 extra\)/,
    );
    const shorter = await splitDir({ 't10k-images-idx3-ubyte': idxBytes([10000, 28, 28]).subarray(0, 5000) });
    expect((await refusal(shorter)).message).toMatch(
      /truncated IDX data: header says 10000×28×28 .*expected 7840016 bytes .*got 5000/,
    );
  }, 60_000);

  it('headers of every size and kind give clear errors, never a RangeError', async () => {
    const max = 2 ** 32 - 1;
    const cases: [Uint8Array, RegExp][] = [
      [idxHeader([max, max, max]), new RegExp(`expected ${(BigInt(max) ** 3n + 16n).toString()} bytes`)],
      [
        idxHeader(new Array(255).fill(max)),
        /header says 4294967295×4294967295×.*×… \(255 dimensions\) unsigned bytes, so expected ≈ \d\.\d\de\+2456 bytes .*sizes 4294967295 = -1 as signed/,
      ],
      [
        idxHeader([2 ** 31, 2 ** 31, 2 ** 31]),
        /2147483648 = -2147483648 as signed 32-bit integers\): more than the limit of 7840016 bytes/,
      ],
      [idxHeader([]), /IDX magic number 0x00000800 declares zero dimensions/],
      [idxBytes([2], [0, 0], 0x0d03), /unsupported IDX element type 0x0d \(float32\)/],
      [idxBytes([2], [0, 0], 0xdead0803), /not an IDX file: bad magic number 0xdead0803 \(first bytes de ad 08 03\)/],
      [idxHeader([0, 28, 28]), /holds no images \(count 0\)/],
      [idxHeader([10000, 0, 28]), /images of 0×28 pixels are empty/],
      [idxBytes([10000]), /expected an images file with 3 dimensions/],
      [
        idxHeader([10000, 28, 28]).subarray(0, 9),
        /truncated IDX header: 3 dimensions need a 16-byte header, but the file has only 9 bytes/,
      ],
    ];
    for (const [bytes, re] of cases) {
      for (const compress of [true, false]) {
        const name = compress ? 't10k-images-idx3-ubyte.gz' : 't10k-images-idx3-ubyte';
        const labels = /no images/.test(re.source) ? { 't10k-labels-idx1-ubyte.gz': gzipSync(idxHeader([0])) } : {};
        const root = await splitDir({ [name]: compress ? gzipSync(bytes) : bytes, ...labels });
        const err = await refusal(root);
        expect(err.message, String(re)).toMatch(re);
        expect(err).not.toBeInstanceOf(RangeError);
      }
      // The in-memory parser agrees, and never throws a RangeError either.
      let parsed: unknown;
      try {
        parseIdx(bytes, 'f.idx');
      } catch (e) {
        parsed = e;
      }
      if (parsed !== undefined) expect(parsed, String(re)).toBeInstanceOf(IdxError);
    }
  }, 60_000);
});

describe('pipes, devices and other non-regular files are refused at once', () => {
  const mkfifo = (path: string) => {
    execFileSync('mkfifo', [path]);
    fifos.push(path);
    return Promise.resolve();
  };

  it('a FIFO with no writer, as the .gz file and as the uncompressed file', async () => {
    for (const name of ['t10k-images-idx3-ubyte.gz', 't10k-images-idx3-ubyte']) {
      const root = await splitDir({ [name]: mkfifo });
      const err = await refusal(root);
      expect(err.message).toMatch(new RegExp(`${name}: is a named pipe \\(FIFO\\), not a regular file`));
      expect(err.file).toBe(join(root, 'mnist', name));
    }
    const labels = await splitDir({ 't10k-images-idx3-ubyte.gz': goodImages(), 't10k-labels-idx1-ubyte.gz': mkfifo });
    expect((await refusal(labels)).message).toMatch(/t10k-labels-idx1-ubyte\.gz: is a named pipe/);
  }, 20_000);

  it('/dev/zero and /dev/urandom behind symlinks with the data files’ names', async () => {
    const root = await splitDir({
      'train-images-idx3-ubyte.gz': (path) => symlink('/dev/zero', path),
      'train-labels-idx1-ubyte.gz': (path) => symlink('/dev/urandom', path),
    });
    const err = await refusal(root, 'train');
    expect(err.message).toMatch(/train-images-idx3-ubyte\.gz: is a character device, not a regular file/);
    const plain = await splitDir({
      't10k-images-idx3-ubyte.gz': goodImages(),
      't10k-labels-idx1-ubyte.gz': null,
      't10k-labels-idx1-ubyte': (path) => symlink('/dev/urandom', path),
    });
    expect((await refusal(plain)).message).toMatch(/t10k-labels-idx1-ubyte: is a character device/);
  }, 20_000);

  it('a directory, a socket, a symlink loop, and a FIFO as the data directory', async () => {
    const dir = await splitDir({ 't10k-images-idx3-ubyte.gz': (path) => mkdir(path) });
    expect((await refusal(dir)).message).toMatch(/t10k-images-idx3-ubyte\.gz: is a directory, not a regular file/);

    const sock = await splitDir({});
    const server = createServer();
    await new Promise<void>((done) => server.listen(join(sock, 'mnist', 't10k-images-idx3-ubyte.gz'), done));
    try {
      expect((await refusal(sock)).message).toMatch(/t10k-images-idx3-ubyte\.gz: is a socket, not a regular file/);
    } finally {
      await new Promise((done) => server.close(done));
    }

    const loop = await splitDir({ 't10k-images-idx3-ubyte.gz': (path) => symlink(path, path) });
    expect((await refusal(loop)).message).toMatch(/t10k-images-idx3-ubyte\.gz: cannot read it \(ELOOP/);

    const fifoDir = join(tmp, `case${caseNo++}`);
    await mkfifo(fifoDir);
    await expect(loadDataset('mnist', 'test', { dataDir: fifoDir })).rejects.toThrow(
      /data directory .* is not a directory/,
    );
  }, 20_000);
});

describe('messages carry no raw bytes and no path of the build machine', () => {
  it('garbage, corrupt gzip and non-IDX files are described in printable text, bytes in hex', async () => {
    let seed = 7;
    const random = (n: number) =>
      Uint8Array.from({ length: n }, () => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed >> 23;
      });
    const escapes = Uint8Array.from([0x1b, 0x5b, 0x33, 0x31, 0x6d, 0x07, 0x0a, 0x0d, 0xff, 0xfe, 0x00, 0x9b]);
    const gz = gzipSync(idxBytes([10000, 28, 28], new Uint8Array(10000 * 784)));
    const corruptCrc = Uint8Array.from(gz);
    corruptCrc[corruptCrc.length - 6]! ^= 0xff;
    const files: [Uint8Array, RegExp][] = [
      [escapes, /bad magic number 0x1b5b3331 \(first bytes 1b 5b 33 31\)/],
      [random(5000), /bad magic number 0x[0-9a-f]{8}/],
      [Uint8Array.from([0x1f, 0x8b, ...escapes]), /corrupt or truncated gzip data/],
      [gz.subarray(0, gz.length >> 1), /corrupt or truncated gzip data/],
      [corruptCrc, /corrupt or truncated gzip data/],
      [gzipSync(escapes), /bad magic number 0x1b5b3331/],
      [
        new TextEncoder().encode('<html>\x1b]0;owned\x07</html>'),
        /bad magic number 0x3c68746d .*not gzip-compressed either/,
      ],
    ];
    for (const [bytes, re] of files) {
      const err = await refusal(await splitDir({ 't10k-images-idx3-ubyte.gz': bytes }));
      expect(err.message).toMatch(re);
    }
  }, 60_000);

  it('control characters in a path are escaped', async () => {
    const odd = join(tmp, `odd\x1b[31m\x07\nname${caseNo++}`);
    await mkdir(join(odd, 'mnist'), { recursive: true });
    await writeFile(join(odd, 'mnist', 't10k-images-idx3-ubyte.gz'), new TextEncoder().encode('not idx'));
    await writeFile(join(odd, 'mnist', 't10k-labels-idx1-ubyte.gz'), goodLabels);
    const err = await rejection(loadDataset('mnist', 'test', { dataDir: odd }));
    expect(err).toBeInstanceOf(IdxError);
    expect((err as Error).message).not.toMatch(UNPRINTABLE);
    expect((err as Error).message).toContain('odd\\x1b[31m\\x07\\x0aname');
    expect((err as IdxError).file).toBe(join(odd, 'mnist', 't10k-images-idx3-ubyte.gz')); // the real name, for programs
  });

  it('printable escapes controls, separators, bidi overrides and lone surrogates, and nothing else', () => {
    expect(printable('a\x00\x1b[31m\x7f\x9b\u2028\u202e\ud800|\udc00 é 数据 🙂')).toBe(
      'a\\x00\\x1b[31m\\x7f\\x9b\\u2028\\u202e\\ud800|\\udc00 é 数据 🙂',
    );
    expect(printable('/tmp/data dir/mnist')).toBe('/tmp/data dir/mnist');
  });

  it('no data directory, a missing one, a missing file: only the user’s own paths', async () => {
    // Nothing given, and nothing in the implicit places (the cache and ../shared/datasets under a fresh folder).
    const saved = { data: process.env.WPC_DATA_DIR, xdg: process.env.XDG_CACHE_HOME, cwd: process.cwd() };
    const empty = join(tmp, `empty${caseNo++}`, 'cwd');
    await mkdir(empty, { recursive: true });
    try {
      delete process.env.WPC_DATA_DIR;
      process.env.XDG_CACHE_HOME = join(empty, 'cache');
      process.chdir(empty);
      const unset = await rejection(loadDataset('mnist', 'test'));
      expect(unset).toBeInstanceOf(IdxError); // a WpcError: the CLI reports it in one line
      expect(unset.message).toMatch(/MNIST not found\. Looked in, in order: .*wpc data download mnist/);
      expectOnlyUserPaths(unset.message, [join(tmp, `empty${caseNo - 1}`)]);
    } finally {
      process.chdir(saved.cwd);
      for (const [key, value] of [
        ['WPC_DATA_DIR', saved.data],
        ['XDG_CACHE_HOME', saved.xdg],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
    const nowhere = join(tmp, 'nowhere');
    const missing = await rejection(loadDataset('mnist', 'test', { dataDir: nowhere }));
    expect(missing).toBeInstanceOf(IdxError);
    expectOnlyUserPaths(missing.message, [nowhere]);
    const root = await splitDir({});
    const noImages = await rejection(loadDataset('mnist', 'test', { dataDir: root }));
    expect(noImages.message).toMatch(/missing MNIST file/);
    expectOnlyUserPaths(noImages.message, [root]);
  });
});

describe('readIdxStream (the reader both loaders share)', () => {
  const bytesStream = (bytes: Uint8Array) => new Blob([bytes as Uint8Array<ArrayBuffer>]).stream();

  it('counts what the inflater produced: a 1 GiB bomb costs its declared size plus one chunk', async () => {
    const declared = 16 + 100 * 784;
    const stats: IdxReadStats = { produced: 0, raw: 0 };
    const bomb = gzipBomb(idxHeader([100, 28, 28]), GiB);
    const err = await rejection(
      readIdxStream(bytesStream(bomb), 'bomb.gz', { maxBytes: MAX_IDX_BYTES, limitReason: 'a test' }, stats),
    );
    expect(err).toBeInstanceOf(IdxError);
    expect(err.message).toMatch(/^bomb\.gz: trailing garbage after IDX data: .*expected 78416 bytes/);
    expect(stats.produced).toBeGreaterThan(declared);
    expect(stats.produced).toBeLessThanOrEqual(declared + MiB);
    expect(stats.raw).toBeLessThanOrEqual(bomb.length);

    const huge: IdxReadStats = { produced: 0, raw: 0 };
    const refused = await rejection(
      readIdxStream(
        bytesStream(gzipBomb(idxHeader([2 ** 32 - 1, 28, 28]), GiB)),
        'huge.gz',
        { maxBytes: MAX_IDX_BYTES, limitReason: 'a test' },
        huge,
      ),
    );
    expect(refused.message).toMatch(/^huge\.gz: IDX header says .* more than the limit of 268435456 bytes \(a test\)/);
    expect(huge.produced).toBeLessThanOrEqual(MiB);
  }, 60_000);

  it('stops reading raw input past the gzip size limit, even when the data never ends', async () => {
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(
          pulled === 1 ? Uint8Array.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]) : new Uint8Array(64 * 1024),
        );
      },
    });
    const stats: IdxReadStats = { produced: 0, raw: 0 };
    const err = await rejection(readIdxStream(endless, 'x.gz', { maxBytes: 1000, limitReason: 'a test' }, stats));
    expect(err).toBeInstanceOf(IdxError); // zlib rejects the zeros, or the size limit stops it first
    expect(stats.raw).toBeLessThanOrEqual(gzipSizeLimit(1000) + 64 * 1024);

    let cancelled = false;
    const plainEndless = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(idxHeader([10]));
      },
      pull(controller) {
        controller.enqueue(new Uint8Array(4096));
      },
      cancel() {
        cancelled = true;
      },
    });
    const plainStats: IdxReadStats = { produced: 0, raw: 0 };
    const plain = await rejection(
      readIdxStream(plainEndless, 'x', { maxBytes: 1000, limitReason: 'a test' }, plainStats),
    );
    expect(plain.message).toMatch(
      /^x: trailing garbage after IDX data: header says 10 unsigned bytes, so expected 18 bytes .*reading stopped at 4104 bytes/,
    );
    expect(cancelled).toBe(true);
  });

  it('an abort stops it at the next chunk and cancels the source', async () => {
    let cancelled: unknown;
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new Uint8Array(10));
      },
      cancel(reason) {
        cancelled = reason;
      },
    });
    const stop = new AbortController();
    const reason = new Error('the other file failed');
    stop.abort(reason);
    await expect(
      readIdxStream(source, 'x', { maxBytes: 100, limitReason: 'a test', signal: stop.signal }),
    ).rejects.toBe(reason);
    expect(cancelled).toBe(reason);
  });

  it('validates its arguments', async () => {
    const ok = () => bytesStream(idxBytes([2]));
    for (const [args, re] of [
      [
        [ok(), 'x', { maxBytes: 0, limitReason: 'r' }],
        /readIdxStream: options\.maxBytes must be an integer in \[1, 2147483647\], got 0/,
      ],
      [[ok(), 'x', { maxBytes: 2 ** 31, limitReason: 'r' }], /options\.maxBytes .*got 2147483648/],
      [[ok(), 'x', { maxBytes: Number.NaN, limitReason: 'r' }], /options\.maxBytes .*got NaN/],
      [
        [ok(), 'x', { maxBytes: 10, limitReason: 'r', sourceBytes: -1 }],
        /options\.sourceBytes must be a non-negative integer, got -1/,
      ],
      [[new Uint8Array(3), 'x', { maxBytes: 10, limitReason: 'r' }], /readIdxStream: source must be a ReadableStream/],
      [[ok(), '', { maxBytes: 10, limitReason: 'r' }], /readIdxStream: name must be a non-empty string/],
    ] as const) {
      await expect((readIdxStream as (...a: unknown[]) => Promise<unknown>)(...args), String(re)).rejects.toThrow(re);
      await expect((readIdxStream as (...a: unknown[]) => Promise<unknown>)(...args)).rejects.toBeInstanceOf(
        WpcArgumentError,
      );
    }
    const read = await readIdxStream(ok(), 'x', { maxBytes: 10, limitReason: 'r' });
    expect(read.dims).toEqual([2]);
    expect(Array.from(read.data)).toEqual([0, 1]);
  });
});

describe('after refusals', () => {
  it('the real data still loads, and nothing was left open', async () => {
    const d = await loadDataset('mnist', 'test', { dataDir: DATA_DIR });
    expect(d.count).toBe(10000);
    expect(openFilesUnder(tmp)).toEqual([]);
    expect(openFilesUnder(realpathSync(DATA_DIR))).toEqual([]);
  });
});
