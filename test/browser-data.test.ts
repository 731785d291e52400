// The browser's dataset loader (src/data/browser.ts), run here on Node's web APIs (Blob, DecompressionStream,
// fetch is not needed for bytes): same images and labels as loadDataset, gzip or not, and clear errors.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { datasetFromIdx, fetchDataset } from '../src/data/browser.js';
import { loadDataset } from '../src/node.js';

const DATA_DIR = process.env.WPC_DATA_DIR ?? fileURLToPath(new URL('../../shared/datasets', import.meta.url));
const file = (name: string) => new Uint8Array(readFileSync(join(DATA_DIR, 'mnist', name)));

describe('datasetFromIdx', () => {
  it('gives loadDataset’s test split from gzip bytes, from plain bytes and from Blobs', async () => {
    const reference = await loadDataset('mnist', 'test', { dataDir: DATA_DIR });
    const images = file('t10k-images-idx3-ubyte.gz');
    const labels = file('t10k-labels-idx1-ubyte.gz');
    for (const [what, pair] of [
      ['gzip bytes', { images, labels }],
      ['plain bytes', { images: new Uint8Array(gunzipSync(images)), labels: Uint8Array.from(gunzipSync(labels)).buffer }],
      ['Blobs', { images: new Blob([images]), labels: new Blob([labels]) }],
    ] as const) {
      const d = await datasetFromIdx('mnist-test', pair);
      expect(d.count, what).toBe(10000);
      // Byte comparisons: a deep equal over 7.8 million floats is needlessly slow.
      expect(Buffer.compare(Buffer.from(d.labels), Buffer.from(reference.labels)), what).toBe(0);
      expect(Buffer.compare(Buffer.from(d.images.buffer, d.images.byteOffset, d.images.byteLength), Buffer.from(reference.images.buffer, reference.images.byteOffset, reference.images.byteLength)), what).toBe(0);
    }
  });

  it('names the file and the problem', async () => {
    const labels = file('t10k-labels-idx1-ubyte.gz');
    const truncated = file('t10k-images-idx3-ubyte.gz').subarray(0, 5000);
    await expect(datasetFromIdx('x', { images: truncated, labels })).rejects.toThrow(/x images: corrupt or truncated gzip data/);
    await expect(datasetFromIdx('x', { images: labels, labels })).rejects.toThrow(/expected an images file with 3 dimensions/);
    await expect(datasetFromIdx('x', { images: labels } as never)).rejects.toThrow();
    await expect(datasetFromIdx('', { images: labels, labels })).rejects.toThrow(/datasetFromIdx: name must be a non-empty string/);
    await expect(datasetFromIdx('x', { images: 42 as never, labels })).rejects.toThrow(/a File\/Blob, ArrayBuffer, Uint8Array or URL/);
    expect(() => fetchDataset('/data/mnist/', 'validation' as never)).toThrow(/split must be 'train' or 'test'/);
  });
});
