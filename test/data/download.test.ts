/**
 * downloadDataset against a local HTTP server (test/support/mirror-server.ts) serving the genuine files: verified
 * downloads, files already present, and every way a mirror can fail (corrupt, truncated, 404, 5xx, stalled,
 * too long, hostile status lines), with retries counted on the server. Whatever fails, the final name never
 * holds a partial or unverified file and no temporary is left. No test depends on timing: a stall never ends.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_MIRRORS,
  WpcDownloadError,
  downloadDataset,
  type DownloadOptions,
  type DownloadProgress,
} from '../../src/data/download.js';
import { KNOWN_FILES } from '../../src/data/files.js';
import { loadDataset } from '../../src/data/node.js';
import { WpcArgumentError, WpcError } from '../../src/runtime/errors.js';
import { genuine, startMirrors, startRawServer, type Mirrors } from '../support/mirror-server.js';

const LAST = 't10k-labels-idx1-ubyte.gz'; // the last file fetched (4542 bytes): where most failures are put
const NAMES = KNOWN_FILES.mnist.map((f) => f.name);
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f]/;

let server: Mirrors;
let tmp: string;
let root: string;
let caseNo = 0;

beforeAll(async () => {
  server = await startMirrors();
  tmp = await mkdtemp(join(tmpdir(), 'wpc-download-'));
});
afterAll(async () => {
  await server.close();
  await rm(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  root = join(tmp, `case${caseNo++}`);
  server.requests.length = 0;
});

/** Fast retries for the tests (the waits are not what is tested). */
const quick = (mirrors: string[], more: DownloadOptions = {}): DownloadOptions => ({
  dir: root,
  mirrors,
  retryDelayMs: 0,
  ...more,
});
const only =
  (file: string, bad: Parameters<Mirrors['set']>[1] extends (f: string) => infer B ? B : never) => (f: string) =>
    f === file ? bad : 'good';

async function failure(promise: Promise<unknown>): Promise<WpcDownloadError> {
  const e = await promise.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(WpcDownloadError);
  expect(e).toBeInstanceOf(WpcError);
  expect((e as Error).message).not.toMatch(UNPRINTABLE);
  return e as WpcDownloadError;
}

/** The folder holds exactly `names` (no temporaries, no partial file), each byte-equal to the genuine one. */
async function expectExactly(names: string[]): Promise<void> {
  const dir = join(root, 'mnist');
  expect((await readdir(dir)).sort()).toEqual([...names].sort());
  for (const name of names) expect(sha256(await readFile(join(dir, name)))).toBe(sha256(genuine('mnist', name)));
}

describe('downloadDataset', () => {
  it('fetches the four files, verified and byte-equal, in place for loadDataset; a second run fetches nothing', async () => {
    server.set('a', () => 'good');
    const events: DownloadProgress[] = [];
    const result = await downloadDataset('mnist', quick([server.url('a')], { onProgress: (p) => events.push(p) }));
    expect(result.dataset).toBe('mnist');
    expect(result.root).toBe(root);
    expect(result.dir).toBe(join(root, 'mnist'));
    expect(result.files.map((f) => f.file)).toEqual(NAMES);
    for (const [i, f] of result.files.entries()) {
      expect(f).toEqual({
        file: NAMES[i],
        path: join(root, 'mnist', NAMES[i]!),
        bytes: KNOWN_FILES.mnist[i]!.bytes,
        sha256: KNOWN_FILES.mnist[i]!.sha256,
        alreadyPresent: false,
        url: `${server.url('a')}${NAMES[i]}`,
        failedAttempts: [],
      });
    }
    await expectExactly(NAMES);
    // Progress: per file, bytes only ever grow up to its size, then 'done'.
    for (const name of NAMES) {
      const mine = events.filter((e) => e.file === name);
      const received = mine.filter((e) => e.state === 'downloading').map((e) => e.received);
      expect(received).toEqual([...received].sort((x, y) => x - y));
      expect(received.at(-1)).toBe(genuine('mnist', name).length);
      expect(mine.at(-1)?.state).toBe('done');
    }
    const test = await loadDataset('mnist', 'test', { dataDir: root });
    expect(test.count).toBe(10000);

    server.requests.length = 0;
    const again = await downloadDataset('mnist', quick([server.url('a')]));
    expect(again.files.map((f) => [f.alreadyPresent, f.url])).toEqual(NAMES.map(() => [true, null]));
    expect(server.requests).toEqual([]);
  });

  it('a file in place that is not the genuine one (one byte flipped, or cut short) is fetched again and replaced', async () => {
    await downloadDataset('mnist', quick([server.url('a')]));
    const dir = join(root, 'mnist');
    const flipped = Buffer.from(genuine('mnist', LAST));
    flipped[100]! ^= 0x80;
    await writeFile(join(dir, LAST), flipped);
    await writeFile(join(dir, NAMES[1]!), genuine('mnist', NAMES[1]!).subarray(0, 1000));
    server.requests.length = 0;
    const result = await downloadDataset('mnist', quick([server.url('a')]));
    expect(result.files.map((f) => f.alreadyPresent)).toEqual([true, false, true, false]);
    expect(server.requests).toEqual([`a/${NAMES[1]}`, `a/${LAST}`]);
    await expectExactly(NAMES);
  });

  it('a corrupt file on the first mirror, good on the second: taken from the second, no retry of the first', async () => {
    server.set('a', only(LAST, 'corrupt'));
    server.set('b', () => 'good');
    const result = await downloadDataset('mnist', quick([server.url('a'), server.url('b')], { retries: 3 }));
    const last = result.files[3]!;
    expect(last.url).toBe(`${server.url('b')}${LAST}`);
    expect(last.failedAttempts).toHaveLength(1);
    expect(last.failedAttempts[0]!.url).toBe(`${server.url('a')}${LAST}`);
    expect(last.failedAttempts[0]!.reason).toMatch(
      /^checksum mismatch: expected sha256 f7ae60f9\w{56}, got [0-9a-f]{64}$/,
    );
    expect(server.count('a', LAST)).toBe(1);
    expect(result.files.slice(0, 3).map((f) => f.url)).toEqual(NAMES.slice(0, 3).map((n) => `${server.url('a')}${n}`));
    await expectExactly(NAMES);
  });

  it('corrupt everywhere: an error naming the file, each mirror and the expected and actual sha256; nothing left under the final name, no temporary', async () => {
    server.set('a', only(LAST, 'corrupt'));
    server.set('b', only(LAST, 'corrupt'));
    const e = await failure(downloadDataset('mnist', quick([server.url('a'), server.url('b')])));
    const bad = Buffer.from(genuine('mnist', LAST));
    bad[bad.length >> 1]! ^= 0x01;
    expect(e.message).toMatch(
      /^downloadDataset: could not download mnist\/t10k-labels-idx1-ubyte\.gz from any of the 2 mirrors tried: /,
    );
    for (const m of ['a', 'b']) {
      expect(e.message).toContain(
        `${server.url(m)}${LAST}: checksum mismatch: expected sha256 ${KNOWN_FILES.mnist[3]!.sha256}, got ${sha256(bad)}`,
      );
    }
    expect(e.file).toBe(join(root, 'mnist', LAST));
    expect(e.attempts.map((a) => a.url)).toEqual([`${server.url('a')}${LAST}`, `${server.url('b')}${LAST}`]);
    await expectExactly(NAMES.slice(0, 3)); // the three verified files stay
  });

  it('a truncated transfer is retried (retries + 1 requests), then the next mirror', async () => {
    server.set('a', only(LAST, 'truncate'));
    server.set('b', () => 'good');
    const result = await downloadDataset('mnist', quick([server.url('a'), server.url('b')], { retries: 2 }));
    expect(server.count('a', LAST)).toBe(3);
    expect(server.count('b')).toBe(1);
    const last = result.files[3]!;
    expect(last.url).toBe(`${server.url('b')}${LAST}`);
    expect(last.failedAttempts).toHaveLength(3);
    for (const f of last.failedAttempts) expect(f.reason).toMatch(/^truncated at \d+ of 4542 bytes/);
    await expectExactly(NAMES);
  });

  it('a 404 moves to the next mirror at once', async () => {
    server.set('a', () => 'missing');
    server.set('b', () => 'good');
    const result = await downloadDataset('mnist', quick([server.url('a'), server.url('b')], { retries: 5 }));
    for (const f of result.files) {
      expect(f.failedAttempts).toEqual([{ url: `${server.url('a')}${f.file}`, reason: 'HTTP 404 Not Found' }]);
      expect(f.url).toBe(`${server.url('b')}${f.file}`);
    }
    expect(server.count('a')).toBe(4);
    await expectExactly(NAMES);
  });

  it('retries are counted per mirror: HTTP 500 on two mirrors with retries 3 is 4 + 4 requests, listed in order', async () => {
    server.set('a', only(LAST, 'error'));
    server.set('b', only(LAST, 'error'));
    const e = await failure(
      downloadDataset('mnist', quick([server.url('a'), server.url('b')], { retries: 3, retryDelayMs: 1 })),
    );
    expect(server.count('a', LAST)).toBe(4);
    expect(server.count('b', LAST)).toBe(4);
    expect(e.attempts).toHaveLength(8);
    expect(e.message).toContain(
      `${server.url('a')}${LAST}: ${Array(4).fill('HTTP 500 Internal Server Error').join(', then ')}; ${server.url('b')}`,
    );
    await expectExactly(NAMES.slice(0, 3));
    server.requests.length = 0;
    await failure(downloadDataset('mnist', quick([server.url('a')], { retries: 0 })));
    expect(server.count('a', LAST)).toBe(1);
  });

  it('a server that stalls (before its answer, or in the body) is abandoned after the stall timeout, and retried', async () => {
    for (const how of ['stall-headers', 'stall-body'] as const) {
      server.requests.length = 0;
      server.set('a', only(LAST, how));
      const e = await failure(downloadDataset('mnist', quick([server.url('a')], { retries: 1, stallTimeoutMs: 200 })));
      expect(server.count('a', LAST)).toBe(2);
      expect(e.attempts.map((a) => a.reason)).toEqual([
        expect.stringMatching(/^stalled: no data for 200 ms/),
        expect.stringMatching(/^stalled: no data for 200 ms/),
      ]);
      await expectExactly(NAMES.slice(0, 3));
    }
  });

  it('a body longer than the genuine file is refused as it streams, or at once when announced; not retried', async () => {
    server.set('a', only(LAST, 'longer'));
    let e = await failure(downloadDataset('mnist', quick([server.url('a')], { retries: 3 })));
    expect(e.message).toContain(
      `${LAST}: the body is longer than the genuine file's 4542 bytes (refused at byte 4543)`,
    );
    expect(server.count('a', LAST)).toBe(1);
    await expectExactly(NAMES.slice(0, 3));
    server.set('a', only(LAST, 'longer-announced'));
    e = await failure(downloadDataset('mnist', quick([server.url('a')], { retries: 3 })));
    expect(e.message).toContain(`${LAST}: the server announces 4543 bytes, more than the genuine file's 4542`);
    expect(server.count('a', LAST)).toBe(2);
    await expectExactly(NAMES.slice(0, 3));
  });

  it('follows a redirect to another mirror, and reports the URL it asked', async () => {
    server.set('a', () => ({ redirect: 'b' }));
    server.set('b', () => 'good');
    const result = await downloadDataset('mnist', quick([server.url('a')]));
    expect(result.files.map((f) => f.url)).toEqual(NAMES.map((n) => `${server.url('a')}${n}`));
    expect(server.count('b')).toBe(4);
    await expectExactly(NAMES);
  });

  it('abort: before the start nothing is requested; during a transfer it stops at once with the reason, leaving no partial file', async () => {
    const early = new AbortController();
    early.abort(new Error('not now'));
    await expect(downloadDataset('mnist', quick([server.url('a')], { signal: early.signal }))).rejects.toThrow(
      'not now',
    );
    expect(server.requests).toEqual([]);

    server.set('a', only(LAST, 'stall-body'));
    const stop = new AbortController();
    const reason = new Error('user cancelled');
    const promise = downloadDataset('mnist', {
      dir: root,
      mirrors: [server.url('a')],
      signal: stop.signal, // the default stall timeout (30 s) is not what ends it
      onProgress: (p) => {
        if (p.file === LAST && p.state === 'downloading' && p.received > 0) stop.abort(reason);
      },
    });
    await expect(promise).rejects.toBe(reason);
    expect(server.count('a', LAST)).toBe(1);
    await expectExactly(NAMES.slice(0, 3));
  });

  it('an exception from onProgress stops the download as it is, leaving no partial file', async () => {
    server.set('a', () => 'good');
    const boom = new Error('progress bar broke');
    const promise = downloadDataset(
      'mnist',
      quick([server.url('a')], {
        onProgress: (p) => {
          if (p.file === NAMES[1] && p.received > 0) throw boom;
        },
      }),
    );
    await expect(promise).rejects.toBe(boom);
    await expectExactly(NAMES.slice(0, 1));
  });

  it('hostile answers (control characters in the status line or a redirect, a refused connection) make printable one-line errors', async () => {
    // [answer, reason, attempts with retries 2]: a 503 is transient, the others are definite answers.
    const answers: [string, RegExp, number][] = [
      [
        'HTTP/1.1 503 \x1b[31mbusy\x07\r\ncontent-length: 0\r\nconnection: close\r\n\r\n',
        /^HTTP 503 \\x1b\[31mbusy\\x07$/,
        3,
      ],
      [
        'HTTP/1.1 302 Found\r\nlocation: ftp://evil/\x1b]0;x\x07\r\ncontent-length: 0\r\n\r\n',
        /^not a valid HTTP answer \(HPE_/,
        1,
      ],
      [
        'HTTP/1.1 302 Found\r\nlocation: ftp://evil/x\r\ncontent-length: 0\r\n\r\n',
        /^HTTP 302 Found redirects to a ftp: URL, not http or https$/,
        1,
      ],
      [
        'HTTP/1.1 302 Found\r\nlocation: http://[::1\r\ncontent-length: 0\r\n\r\n',
        /^HTTP 302 Found redirects to an invalid URL "http:\/\/\[::1"$/,
        1,
      ],
      ['not http at all \x1b[2J\x00\r\n\r\n', /^not a valid HTTP answer \(HPE_/, 1],
    ];
    const raw = await Promise.all(answers.map(([answer]) => startRawServer(answer)));
    try {
      for (const [i, r] of raw.entries()) {
        const [, reason, attempts] = answers[i]!;
        const e = await failure(downloadDataset('mnist', quick([r.url], { retries: 2 })));
        expect(e.attempts).toHaveLength(attempts);
        for (const a of e.attempts) expect(a.reason).toMatch(reason);
        expect(e.message).toMatch(
          /^downloadDataset: could not download mnist\/train-images-idx3-ubyte\.gz from the one mirror tried: /,
        );
      }
    } finally {
      for (const r of raw) await r.close();
    }
    // A port nobody listens on: refused, retried (a transient failure), then reported.
    const closed = await startRawServer('');
    const url = closed.url;
    await closed.close();
    const e = await failure(downloadDataset('mnist', quick([url], { retries: 1 })));
    expect(e.attempts.map((a) => a.reason)).toEqual([
      expect.stringMatching(/^connection failed \(.*ECONNREFUSED/),
      expect.stringMatching(/^connection failed \(.*ECONNREFUSED/),
    ]);
  });

  it('local problems are errors naming the path, not mirror failures: a file where the folder goes, a folder at a file name', async () => {
    await mkdir(root, { recursive: true });
    await writeFile(join(root, 'mnist'), 'a file');
    let e = await failure(downloadDataset('mnist', quick([server.url('a')])));
    expect(e.message).toMatch(/^downloadDataset: cannot create the folder .*mnist: EEXIST/);
    await rm(join(root, 'mnist'));
    await mkdir(join(root, 'mnist', NAMES[0]!), { recursive: true });
    e = await failure(downloadDataset('mnist', quick([server.url('a')])));
    expect(e.message).toContain(`${join(root, 'mnist', NAMES[0]!)} is a directory, not a regular file; remove it`);
    expect(server.requests).toEqual([]);
  });

  it('bad arguments are WpcArgumentErrors, before anything is requested or created', async () => {
    const cases: [unknown, unknown, RegExp][] = [
      ['cifar100', {}, /^downloadDataset: name must be one of "mnist", "fashion-mnist", "cifar10", got "cifar100"/],
      ['mnist', null, /^downloadDataset: options must be an object, got null/],
      ['mnist', [], /^downloadDataset: options must be an object, got an array/],
      ['mnist', { mirror: [] }, /^downloadDataset: unknown option "mirror" in options/],
      ['mnist', { dir: '' }, /^downloadDataset: options\.dir must be a non-empty path, got ""/],
      ['mnist', { dir: 42 }, /^downloadDataset: options\.dir must be a non-empty path, got 42/],
      [
        'mnist',
        { mirrors: [] },
        /^downloadDataset: options\.mirrors must be a non-empty array of URLs, got an array of length 0/,
      ],
      [
        'mnist',
        { mirrors: 'http://x/' },
        /^downloadDataset: options\.mirrors must be a non-empty array of URLs, got "http:\/\/x\/"/,
      ],
      [
        'mnist',
        { mirrors: ['ftp://x/'] },
        /^downloadDataset: options\.mirrors\[0\] must be an http:\/\/ or https:\/\/ URL, got "ftp:\/\/x\/"/,
      ],
      [
        'mnist',
        { mirrors: ['http://x/', 'not a url'] },
        /^downloadDataset: options\.mirrors\[1\] must be an http:\/\/ or https:\/\/ URL, got "not a url"/,
      ],
      [
        'mnist',
        { mirrors: ['http://u:secret@x/'] },
        /^downloadDataset: options\.mirrors\[0\] must be a URL without a user name or password/,
      ],
      [
        'mnist',
        { mirrors: ['http://x/?a=1'] },
        /^downloadDataset: options\.mirrors\[0\] must be a base URL without \?query or #fragment/,
      ],
      ['mnist', { retries: -1 }, /^downloadDataset: options\.retries must be an integer in \[0, 100\], got -1/],
      ['mnist', { retries: 1.5 }, /options\.retries must be an integer in \[0, 100\], got 1\.5/],
      ['mnist', { retries: 101 }, /options\.retries must be an integer in \[0, 100\], got 101/],
      ['mnist', { retries: '2' }, /options\.retries must be an integer in \[0, 100\], got "2"/],
      [
        'mnist',
        { retryDelayMs: Number.NaN },
        /options\.retryDelayMs must be a number of milliseconds in \[0, 30000\], got NaN/,
      ],
      ['mnist', { retryDelayMs: -1 }, /options\.retryDelayMs must be a number of milliseconds in \[0, 30000\], got -1/],
      [
        'mnist',
        { stallTimeoutMs: 0 },
        /options\.stallTimeoutMs must be an integer number of milliseconds in \[1, 2147483647\], got 0/,
      ],
      [
        'mnist',
        { stallTimeoutMs: 2 ** 31 },
        /options\.stallTimeoutMs must be an integer number of milliseconds in \[1, 2147483647\], got 2147483648/,
      ],
      ['mnist', { signal: {} }, /^downloadDataset: options\.signal must be an AbortSignal, got an object/],
      ['mnist', { onProgress: 'log' }, /^downloadDataset: options\.onProgress must be a function, got "log"/],
    ];
    for (const [name, options, re] of cases) {
      const opts =
        options !== null && typeof options === 'object' && !Array.isArray(options) && !('dir' in options)
          ? { dir: root, ...options }
          : options;
      const e = await downloadDataset(name as 'mnist', opts as DownloadOptions).catch((x: unknown) => x);
      expect(e, String(re)).toBeInstanceOf(WpcArgumentError);
      expect((e as Error).message).toMatch(re);
    }
    expect(server.requests).toEqual([]);
    await expect(readdir(root)).rejects.toThrow(/ENOENT/);
  });

  it('the default mirrors are the public ones, in order, each a base URL', () => {
    expect(DEFAULT_MIRRORS.mnist).toEqual([
      'https://ossci-datasets.s3.amazonaws.com/mnist/',
      'https://storage.googleapis.com/cvdf-datasets/mnist/',
      'http://yann.lecun.com/exdb/mnist/',
    ]);
    expect(DEFAULT_MIRRORS['fashion-mnist']).toEqual([
      'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
      'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/',
    ]);
  });

  it('is exported by the Node entry only: the browser bundle holds neither the downloader nor node:http', async () => {
    const dist = (file: string) => fileURLToPath(new URL(`../../dist/${file}`, import.meta.url));
    const node = await import(dist('node.js'));
    for (const name of ['downloadDataset', 'locateDataset', 'dataCacheDirectory', 'WpcDownloadError'])
      expect(typeof node[name], name).toBe('function');
    expect(node.DEFAULT_MIRRORS).toEqual(DEFAULT_MIRRORS);
    const browser = await readFile(dist('browser.js'), 'utf8');
    const browserTypes = await readFile(dist('types/browser.d.ts'), 'utf8');
    for (const text of [browser, browserTypes]) {
      expect(text).not.toMatch(/downloadDataset|locateDataset|WpcDownloadError|node:http/);
    }
  });

  it('the known sizes and checksums are those of the shared copy of both datasets', () => {
    for (const dataset of ['mnist', 'fashion-mnist'] as const) {
      for (const f of KNOWN_FILES[dataset]) {
        const bytes = genuine(dataset, f.name);
        expect([bytes.length, sha256(bytes)], `${dataset}/${f.name}`).toEqual([f.bytes, f.sha256]);
      }
    }
  });
});
