// The browser's dataset loader (src/data/browser.ts), run here on Node's web APIs (Blob, DecompressionStream,
// fetch against a local server): same images and labels as loadDataset, gzip or not, clear errors, and bounded
// memory and work for gzip bombs, oversized files and downloads that never end.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync, gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { datasetFromIdx, fetchDataset } from '../../src/data/browser.js';
import { IdxError } from '../../src/data/idx.js';
import { loadDataset } from '../../src/node.js';
import { UNPRINTABLE, gzipBomb, idxBytes, idxHeader, peakMemoryGrowth } from '../support/idx-fixtures.js';

const DATA_DIR = process.env.WPC_DATA_DIR ?? fileURLToPath(new URL('../../../shared/datasets', import.meta.url));
const file = (name: string) => new Uint8Array(readFileSync(join(DATA_DIR, 'mnist', name)));

describe('datasetFromIdx', () => {
  it('gives loadDataset’s test split from gzip bytes, from plain bytes and from Blobs', async () => {
    const reference = await loadDataset('mnist', 'test', { dataDir: DATA_DIR });
    const images = file('t10k-images-idx3-ubyte.gz');
    const labels = file('t10k-labels-idx1-ubyte.gz');
    for (const [what, pair] of [
      ['gzip bytes', { images, labels }],
      [
        'plain bytes',
        { images: new Uint8Array(gunzipSync(images)), labels: Uint8Array.from(gunzipSync(labels)).buffer },
      ],
      ['Blobs', { images: new Blob([images]), labels: new Blob([labels]) }],
    ] as const) {
      const d = await datasetFromIdx('mnist-test', pair);
      expect(d.count, what).toBe(10000);
      // Byte comparisons: a deep equal over 7.8 million floats is needlessly slow.
      expect(Buffer.compare(Buffer.from(d.labels), Buffer.from(reference.labels)), what).toBe(0);
      expect(
        Buffer.compare(
          Buffer.from(d.images.buffer, d.images.byteOffset, d.images.byteLength),
          Buffer.from(reference.images.buffer, reference.images.byteOffset, reference.images.byteLength),
        ),
        what,
      ).toBe(0);
    }
  });

  it('names the file and the problem', async () => {
    const labels = file('t10k-labels-idx1-ubyte.gz');
    const truncated = file('t10k-images-idx3-ubyte.gz').subarray(0, 5000);
    await expect(datasetFromIdx('x', { images: truncated, labels })).rejects.toThrow(
      /x images: corrupt or truncated gzip data/,
    );
    await expect(datasetFromIdx('x', { images: labels, labels })).rejects.toThrow(
      /expected an images file with 3 dimensions/,
    );
    await expect(datasetFromIdx('x', { images: labels } as never)).rejects.toThrow();
    await expect(datasetFromIdx('', { images: labels, labels })).rejects.toThrow(
      /datasetFromIdx: name must be a non-empty string/,
    );
    await expect(datasetFromIdx('x', { images: 42 as never, labels })).rejects.toThrow(
      /a File\/Blob, ArrayBuffer, Uint8Array or URL/,
    );
    expect(() => fetchDataset('/data/mnist/', 'validation' as never)).toThrow(/split must be 'train' or 'test'/);
  });
});

describe('bounded input', () => {
  const MiB = 2 ** 20;
  const GiB = 2 ** 30;
  const toyImages = idxBytes([3, 2, 2]); // 28 bytes
  const toyLabels = idxBytes([3], [1, 2, 3]); // 11 bytes

  async function rejection(promise: Promise<unknown>): Promise<Error> {
    const outcome = await promise.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(outcome, 'expected a rejection').toBeInstanceOf(IdxError);
    expect((outcome as Error).message).not.toMatch(UNPRINTABLE);
    return outcome!;
  }

  /** Refused, with memory far below the 1 GiB the bomb inflates to. */
  async function boundedRejection(work: () => Promise<unknown>): Promise<Error> {
    const { outcome, growth } = await peakMemoryGrowth(() => rejection(work()));
    if (outcome.status === 'rejected') throw outcome.reason;
    expect(growth).toBeLessThan(256 * MiB);
    return outcome.value;
  }

  it('a 1 GiB gzip bomb, as bytes or as a Blob, stops at the size its header declares', async () => {
    const bomb = gzipBomb(idxHeader([100, 28, 28]), GiB);
    for (const images of [new Uint8Array(bomb), new Blob([bomb])]) {
      const err = await boundedRejection(() => datasetFromIdx('x', { images, labels: gzipSync(idxBytes([100])) }));
      expect(err.message).toMatch(
        /^x images: trailing garbage after IDX data: header says 100×28×28 unsigned bytes, so expected 78416 bytes/,
      );
      const stopped = Number(/reading stopped at (\d+) bytes/.exec(err.message)?.[1]);
      expect(stopped).toBeLessThanOrEqual(78416 + MiB);
    }
  }, 60_000);

  it('a header declaring more than maxBytes is refused after the header', async () => {
    const err = await boundedRejection(() =>
      datasetFromIdx('x', { images: gzipBomb(idxHeader([2 ** 32 - 1, 28, 28]), GiB), labels: toyLabels }),
    );
    expect(err.message).toMatch(
      /^x images: IDX header says 4294967295×28×28 .*more than the limit of 268435456 bytes \(the default of the maxBytes option\); nothing more was read/,
    );
    const own = await rejection(
      datasetFromIdx('x', { images: gzipSync(toyImages), labels: toyLabels }, { maxBytes: 27 }),
    );
    expect(own.message).toMatch(
      /^x images: IDX header says 3×2×2 unsigned bytes, so expected 28 bytes .*more than the limit of 27 bytes \(the maxBytes option\)/,
    );
    const plain = await rejection(
      datasetFromIdx('x', { images: new Blob([toyImages]), labels: toyLabels }, { maxBytes: 20 }),
    );
    expect(plain.message).toMatch(
      /^x images: the file is 28 bytes, more than the limit of 20 bytes \(the maxBytes option\)/,
    );
    const d = await datasetFromIdx('x', { images: toyImages, labels: toyLabels }, { maxBytes: 28, mean: 0, std: 1 });
    expect(Array.from(d.labels)).toEqual([1, 2, 3]);
    expect(d.images[11]).toBe(Math.fround(11 / 255));
  }, 60_000);

  it('checks maxBytes and both sources before reading anything', async () => {
    for (const maxBytes of [0, -1, 1.5, 2 ** 31, Number.NaN, '1000']) {
      await expect(
        datasetFromIdx('x', { images: toyImages, labels: toyLabels }, { maxBytes } as never),
      ).rejects.toThrow(
        new RegExp(
          `datasetFromIdx: options\\.maxBytes must be an integer in \\[1, 2147483647\\] \\(bytes\\), got ${maxBytes === '1000' ? '"1000"' : maxBytes}`,
        ),
      );
    }
    await expect(
      datasetFromIdx('x', { images: toyImages, labels: toyLabels }, { maxbytes: 1 } as never),
    ).rejects.toThrow(/unknown option "maxbytes"/);
    let requests = 0;
    const server = createServer((_req, res) => {
      requests++;
      res.end();
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/images`;
      await expect(datasetFromIdx('x', { images: url, labels: 7 as never })).rejects.toThrow(
        /datasetFromIdx: files\.labels must be a File\/Blob, ArrayBuffer, Uint8Array or URL, got 7/,
      );
      await expect(datasetFromIdx('x', { images: url, labels: '' })).rejects.toThrow(/files\.labels must be/);
      expect(requests).toBe(0);
    } finally {
      await new Promise((done) => server.close(done));
    }
  });

  it('garbage is described in printable text, bytes in hex', async () => {
    const escapes = new Uint8Array([0x1b, 0x5b, 0x33, 0x31, 0x6d, 0x07, 0x0a, 0xff, 0x9b]);
    expect((await rejection(datasetFromIdx('x', { images: escapes, labels: toyLabels }))).message).toMatch(
      /bad magic number 0x1b5b3331 \(first bytes 1b 5b 33 31\)/,
    );
    expect(
      (await rejection(datasetFromIdx('x', { images: Uint8Array.from([0x1f, 0x8b, ...escapes]), labels: toyLabels })))
        .message,
    ).toMatch(/corrupt or truncated gzip data/);
    const named = new File([escapes], 'evil\x1b[2J\x07.gz');
    const err = await rejection(datasetFromIdx('x', { images: named, labels: toyLabels }));
    expect(err.message).toMatch(
      /^evil\\x1b\[2J\\x07\.gz: not an IDX file: .*\(the file is not gzip-compressed either\)/,
    );
    expect((err as IdxError).file).toBe('evil\x1b[2J\x07.gz');
  });

  describe('from URLs', () => {
    const bomb = gzipBomb(idxHeader([100, 28, 28]), GiB);
    const closed = new Map<string, Promise<void>>();
    let base = '';
    const server = createServer((req, res) => {
      closed.set(req.url!, new Promise((done) => res.on('close', () => done())));
      if (req.url === '/bomb.gz') {
        res.end(bomb);
      } else if (req.url === '/endless') {
        // A valid header, then zeros that never end (64 MiB at most, then silence), sent as fast as read.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(idxHeader([100, 28, 28]));
        let sent = 0;
        const more = () => {
          while (sent < 64 * MiB && !res.destroyed) {
            sent += 64 * 1024;
            if (!res.write(new Uint8Array(64 * 1024))) return void res.once('drain', more);
          }
        };
        more();
      } else if (req.url === '/stall') {
        res.writeHead(200);
        res.write(idxBytes([100]).subarray(0, 20)); // part of a labels file, then nothing, forever
      } else {
        res.writeHead(404, 'Not Found');
        res.end('<html>no</html>');
      }
    });
    beforeAll(async () => {
      await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    });

    it('a bomb served over HTTP is refused with bounded memory', async () => {
      const err = await boundedRejection(() => datasetFromIdx('x', { images: `${base}/bomb.gz`, labels: toyLabels }));
      expect(err.message).toMatch(
        new RegExp(`^${base}/bomb\\.gz: trailing garbage after IDX data: .*expected 78416 bytes`),
      );
      expect(Number(/reading stopped at (\d+) bytes/.exec(err.message)?.[1])).toBeLessThanOrEqual(78416 + MiB);
    }, 60_000);

    it('a body that never ends is cut off at the declared size and the download cancelled', async () => {
      const err = await boundedRejection(() => datasetFromIdx('x', { images: `${base}/endless`, labels: toyLabels }));
      expect(err.message).toMatch(
        /\/endless: trailing garbage after IDX data: .*expected 78416 bytes.*reading stopped at \d+ bytes/,
      );
      await closed.get('/endless'); // the server sees the connection go (the test times out otherwise)
    }, 60_000);

    it('when one file is refused, the other download is stopped too', async () => {
      const err = await rejection(
        datasetFromIdx('x', { images: Uint8Array.from([9, 9, 9, 9]), labels: `${base}/stall` }),
      );
      expect(err.message).toMatch(/^x images: not an IDX file: bad magic number 0x09090909/);
      await closed.get('/stall');
    }, 30_000);

    it('the signal option stops a download that stalls', async () => {
      const user = new AbortController();
      const reason = new Error('the user gave up');
      const arrived = new Promise<void>((done) => server.once('request', () => done()));
      const pending = datasetFromIdx(
        'x',
        { images: idxBytes([3, 2, 2]), labels: `${base}/stall` },
        { signal: user.signal },
      );
      await arrived;
      user.abort(reason);
      await expect(pending).rejects.toBe(reason);
      await closed.get('/stall');
      await expect(datasetFromIdx('x', { images: toyImages, labels: toyLabels }, { signal: user.signal })).rejects.toBe(
        reason,
      );
      await expect(
        datasetFromIdx('x', { images: toyImages, labels: toyLabels }, { signal: 'soon' as never }),
      ).rejects.toThrow(/datasetFromIdx: options\.signal must be an AbortSignal, got "soon"/);
    }, 30_000);

    it('HTTP errors and unreachable servers are IdxErrors naming the URL', async () => {
      expect((await rejection(datasetFromIdx('x', { images: `${base}/nothing`, labels: toyLabels }))).message).toBe(
        `${base}/nothing: fetching it failed with HTTP 404 Not Found`,
      );
      const gone = createServer();
      await new Promise<void>((done) => gone.listen(0, '127.0.0.1', done));
      const port = (gone.address() as AddressInfo).port;
      await new Promise((done) => gone.close(done));
      expect(
        (await rejection(datasetFromIdx('x', { images: `http://127.0.0.1:${port}/a`, labels: toyLabels }))).message,
      ).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${port}/a: fetching it failed \\(`));
    }, 30_000);
  });
});
