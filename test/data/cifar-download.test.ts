/**
 * CIFAR-10's download end to end against a local HTTP server (test/support/mirror-server.ts) serving archives
 * generated in the genuine layout: the archive verified by size, MD5 and SHA-256 (the expected values are those
 * of the generated archive, given through downloadVerifiedBy as the genuine ones are through downloadDataset),
 * the six files extracted, recorded and loadable, the archive removed; a second run fetches nothing. Wrong
 * checksums and bad archives (links, escaping paths, truncation, a bad label, missing files, not gzip) are refused
 * and leave nothing behind. The command line is run against the genuine checksums, which the generated archive
 * cannot pass.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_MIRRORS,
  WpcDownloadError,
  downloadVerifiedBy,
  type DownloadOptions,
  type DownloadProgress,
} from '../../src/data/download.js';
import { KNOWN_FILES, type KnownFile } from '../../src/data/files.js';
import { loadDataset } from '../../src/data/node.js';
import { wpc } from '../support/cli-run.js';
import {
  CIFAR_FILES,
  RECORDS,
  cifarArchive,
  cifarBytes,
  cifarFileBytes,
  knownArchive,
  tarBytes,
  type TarItem,
} from '../support/cifar-fixtures.js';
import { startMirrors, type Mirrors } from '../support/mirror-server.js';

const ARCHIVE = 'cifar-10-binary.tar.gz';
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** What the server serves under ARCHIVE, per mirror: set by each test. */
const served = new Map<string, Uint8Array>();
let server: Mirrors;
let tmp: string;
let root: string;
let caseNo = 0;

beforeAll(async () => {
  server = await startMirrors('cifar10', (file) => (file === ARCHIVE ? served.get('archive') : undefined));
  tmp = await mkdtemp(join(tmpdir(), 'wpc-cifar-download-'));
});
afterAll(async () => {
  await server.close();
  await rm(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  root = join(tmp, `case${caseNo++}`);
  server.requests.length = 0;
});

/** Serves `archive` and downloads it expecting `known` (default: the archive's own size and checksums). */
function download(archive: Uint8Array, known: KnownFile = knownArchive(archive), more: DownloadOptions = {}) {
  served.set('archive', archive);
  return downloadVerifiedBy(
    'downloadDataset',
    'cifar10',
    { dir: root, mirrors: [server.url('a')], retryDelayMs: 0, ...more },
    { ...KNOWN_FILES, cifar10: [known] },
  );
}

async function failure(promise: Promise<unknown>): Promise<WpcDownloadError> {
  const e = await promise.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(WpcDownloadError);
  return e as WpcDownloadError;
}

const folder = async () => (await readdir(join(root, 'cifar10'))).sort();

describe('downloadDataset("cifar10")', () => {
  it('fetches the verified archive, extracts the six files exactly, records them, removes the archive; a second run fetches nothing', async () => {
    const archive = cifarArchive();
    const events: DownloadProgress[] = [];
    const result = await download(archive, undefined, { onProgress: (p) => events.push(p) });
    const dir = join(root, 'cifar10');
    expect(result.dataset).toBe('cifar10');
    expect(result.dir).toBe(dir);
    expect(result.files).toEqual(
      CIFAR_FILES.map((file, i) => ({
        file,
        path: join(dir, file),
        bytes: cifarFileBytes(i).length,
        sha256: sha256(cifarFileBytes(i)),
        alreadyPresent: false,
        url: `${server.url('a')}${ARCHIVE}`,
        failedAttempts: [],
      })),
    );
    expect(await folder()).toEqual([...CIFAR_FILES, 'SHA256SUMS'].sort());
    for (const [i, file] of CIFAR_FILES.entries())
      expect(new Uint8Array(await readFile(join(dir, file))), file).toEqual(cifarFileBytes(i));
    expect(await readFile(join(dir, 'SHA256SUMS'), 'utf8')).toBe(
      CIFAR_FILES.map((f, i) => `${sha256(cifarFileBytes(i))}  ${f}\n`).join(''),
    );
    // Progress: the archive's transfer, then each file as it comes out of the archive (the archive's order).
    expect(events.at(0)).toMatchObject({ file: ARCHIVE, index: 0, count: 1, state: 'downloading', received: 0 });
    const done = events.findIndex((e) => e.state === 'done');
    expect(events[done]).toMatchObject({ file: ARCHIVE, received: archive.length, size: archive.length });
    expect(events.slice(done + 1).map((e) => [e.file, e.index, e.count, e.state])).toEqual(
      [
        'data_batch_4.bin',
        'test_batch.bin',
        'data_batch_3.bin',
        'data_batch_2.bin',
        'data_batch_1.bin',
        'data_batch_5.bin',
      ].map((f, i) => [f, i, 6, 'extracted']),
    );
    const test = await loadDataset('cifar10', 'test', { dataDir: root });
    expect([test.count, test.shape]).toEqual([RECORDS[5], [3, 32, 32]]);

    server.requests.length = 0;
    const again = await download(archive);
    expect(again.files.map((f) => [f.file, f.alreadyPresent, f.url])).toEqual(CIFAR_FILES.map((f) => [f, true, null]));
    expect(server.requests).toEqual([]);

    // A file changed since: everything is fetched and extracted again.
    const changed = Buffer.from(cifarFileBytes(1));
    changed[5]! ^= 1;
    await writeFile(join(dir, CIFAR_FILES[1]!), changed);
    const third = await download(archive);
    expect(third.files.every((f) => !f.alreadyPresent)).toBe(true);
    expect(server.requests).toEqual([`a/${ARCHIVE}`]);
    expect(new Uint8Array(await readFile(join(dir, CIFAR_FILES[1]!)))).toEqual(cifarFileBytes(1));
  });

  it('checks the MD5 and the SHA-256: an archive that differs from the expected one is refused, nothing left', async () => {
    const archive = cifarArchive();
    const known = knownArchive(archive);
    const wrongMd5 = { ...known, md5: '0'.repeat(32) };
    const e = await failure(download(archive, wrongMd5));
    expect(e.message).toBe(
      `downloadDataset: could not download cifar10/${ARCHIVE} from the one mirror tried: ${server.url('a')}${ARCHIVE}: ` +
        `checksum mismatch: expected md5 ${'0'.repeat(32)}, got ${known.md5}`,
    );
    expect(e.file).toBe(join(root, 'cifar10', ARCHIVE));
    expect(await folder()).toEqual([]);
    const wrongSha = { ...known, sha256: 'f'.repeat(64) };
    expect((await failure(download(archive, wrongSha))).message).toMatch(
      new RegExp(`checksum mismatch: expected sha256 f{64}, got ${known.sha256}$`),
    );
    expect(await folder()).toEqual([]);
    // One byte flipped in transit, same size: the MD5 tells.
    const flipped = Buffer.from(archive);
    flipped[flipped.length >> 1]! ^= 1;
    expect((await failure(download(flipped, known))).message).toMatch(/checksum mismatch: expected md5 /);
    expect(await folder()).toEqual([]);
  });

  it("the genuine archive: its published MD5, size and SHA-256, fetched from the authors' page", () => {
    expect(KNOWN_FILES.cifar10).toEqual([
      {
        name: ARCHIVE,
        bytes: 170052171,
        md5: 'c32a1d4ab5d03f1284b67883e8d87530',
        sha256: 'c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd',
      },
    ]);
    expect(DEFAULT_MIRRORS.cifar10).toEqual(['https://www.cs.toronto.edu/~kriz/']);
  });

  it('refuses bad archives, naming the archive and the entry, and leaves nothing behind', async () => {
    const dir = 'cifar-10-batches-bin/';
    const good = CIFAR_FILES.map((f, i): TarItem => ({ name: dir + f, body: cifarFileBytes(i) }));
    const badLabel = cifarBytes(4, [1, 2]);
    badLabel[3073] = 10;
    const tarGz = (items: TarItem[], end = true) => gzipSync(tarBytes(items, end));
    const cases: [string, Uint8Array, RegExp][] = [
      [
        'a symbolic link',
        tarGz([...good.slice(0, 5), { name: dir + CIFAR_FILES[5], type: '2' }]),
        /is a symbolic link; only regular files and folders are accepted/,
      ],
      [
        'an escaping path',
        tarGz([{ name: `${dir}../../evil`, body: new Uint8Array(3) }, ...good]),
        /of entry "cifar-10-batches-bin\/\.\.\/\.\.\/evil", has a path that leaves the archive's folder/,
      ],
      ['a truncated archive', gzipSync(tarBytes(good).subarray(0, 512 * 30)), /the archive is truncated/],
      ['no end block', tarGz(good, false), /without its end-of-archive block: the archive is truncated/],
      [
        'a bad label in the last file',
        tarGz([...good.slice(0, 4), { name: dir + CIFAR_FILES[4], body: badLabel }, good[5]!]),
        /data_batch_5\.bin: record 1 \(at byte 3073\) has label 10/,
      ],
      [
        'a file of partial records',
        tarGz([...good.slice(0, 5), { name: dir + CIFAR_FILES[5], body: new Uint8Array(5000) }]),
        /test_batch\.bin: is 5000 bytes, not a positive multiple of 3073/,
      ],
      [
        'a missing file',
        tarGz(good.slice(1)),
        /holds no cifar-10-batches-bin\/data_batch_1\.bin: not CIFAR-10's binary archive/,
      ],
      ['a file twice', tarGz([...good, good[2]!]), /cifar-10-batches-bin\/data_batch_3\.bin: is in the archive twice/],
      ['not gzip', tarBytes(good), /is not a valid gzip file/],
    ];
    for (const [what, archive, message] of cases) {
      const e = await failure(download(archive));
      const path = join(root, 'cifar10', ARCHIVE);
      expect(e.message, what).toMatch(/^downloadDataset: the archive is refused: /);
      expect(e.message, what).toContain(path);
      expect(e.message, what).toMatch(message);
      expect(e.file).toBe(path);
      expect(await folder(), what).toEqual([]); // no file, no temporary, no archive
    }
  });

  it('an archive already in place (verified) is extracted without fetching; one that differs is fetched again', async () => {
    const archive = cifarArchive();
    await mkdir(join(root, 'cifar10'), { recursive: true });
    await writeFile(join(root, 'cifar10', ARCHIVE), archive);
    const result = await download(archive);
    expect(server.requests).toEqual([]);
    expect(result.files.map((f) => [f.alreadyPresent, f.url])).toEqual(CIFAR_FILES.map(() => [false, null]));
    expect(await folder()).toEqual([...CIFAR_FILES, 'SHA256SUMS'].sort());

    await rm(join(root, 'cifar10'), { recursive: true });
    await mkdir(join(root, 'cifar10'));
    await writeFile(join(root, 'cifar10', ARCHIVE), archive.subarray(0, 100));
    await download(archive);
    expect(server.requests).toEqual([`a/${ARCHIVE}`]);
    expect(await folder()).toEqual([...CIFAR_FILES, 'SHA256SUMS'].sort());
  });
});

describe('wpc data download cifar10 / wpc data path cifar10', () => {
  it('fetches from --mirror, checked against the genuine archive: a generated one is refused (exit 1, one line)', async () => {
    served.set('archive', cifarArchive());
    const dir = join(root, 'data');
    const r = await wpc(['data', 'download', 'cifar10', '--dir', dir, '--mirror', server.url('m'), '--quiet']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr.trim()).toMatch(
      /^wpc: downloadDataset: could not download cifar10\/cifar-10-binary\.tar\.gz from the one mirror tried: .*the server announces \d+ bytes, fewer than the genuine file's 170052171$/,
    );
    expect(await readdir(join(dir, 'cifar10'))).toEqual([]);
    expect(server.requests).toEqual([`m/${ARCHIVE}`]);
  });

  it('path finds generated files; help and usage errors name cifar10', async () => {
    const dir = join(root, 'data');
    await mkdir(join(dir, 'cifar10'), { recursive: true });
    for (const [i, f] of CIFAR_FILES.entries()) await writeFile(join(dir, 'cifar10', f), cifarFileBytes(i));
    const found = await wpc(['data', 'path', 'cifar10', '--data-dir', dir]);
    expect([found.code, found.stdout]).toEqual([0, `${join(dir, 'cifar10')}\n`]);
    const help = await wpc(['data', 'download', '--help']);
    expect(help.stdout).toMatch(/^Usage: wpc data download mnist\|fashion-mnist\|cifar10 /);
    expect(help.stdout).toContain('https://www.cs.toronto.edu/~kriz/');
    const bad = await wpc(['data', 'download', 'cifar100']);
    expect([bad.code, bad.stderr]).toEqual([
      2,
      expect.stringMatching(/the dataset must be one of mnist, fashion-mnist, cifar10, got "cifar100"/),
    ]);
  });
});
