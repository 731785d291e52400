// The tar reader behind CIFAR-10's download: entries and bodies read exactly from chunks of any size; bad headers,
// links, devices, extension headers, paths that leave the archive and truncated archives refused, naming the
// archive and the entry.
import { describe, expect, it } from 'vitest';
import { IdxError } from '../../src/data/idx.js';
import { readTar, type TarEntry } from '../../src/data/tar.js';
import { tarBytes, tarHeader, type TarItem } from '../support/cifar-fixtures.js';

async function* chunks(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

/** Every entry and its whole body (copied), reading in chunks of `size`. */
async function read(bytes: Uint8Array, size = 4096): Promise<{ entry: TarEntry; body: number[] }[]> {
  const out: { entry: TarEntry; body: number[] }[] = [];
  await readTar(chunks(bytes, size), 'a.tar', async (entry, body) => {
    const got: number[] = [];
    for await (const c of body) got.push(...c);
    out.push({ entry, body: got });
  });
  return out;
}

async function refused(bytes: Uint8Array, message: RegExp): Promise<void> {
  const e = await read(bytes).then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(IdxError);
  expect((e as IdxError).file).toBe('a.tar');
  expect((e as Error).message).toMatch(message);
}

const body = (n: number, seed = 0) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) % 256);

describe('readTar', () => {
  it('reads files and folders, GNU and POSIX headers (with a prefix), from chunks of any size', async () => {
    const prefixed = tarHeader({ name: 'x.bin', body: body(3), format: 'ustar' });
    // POSIX ustar: the name is prefix/name; rewrite the header with a prefix field and its checksum.
    const items: TarItem[] = [
      { name: 'top/', type: '5', format: 'gnu' },
      { name: 'top/a.bin', body: body(1000, 1), format: 'gnu' },
      { name: 'top/empty', body: new Uint8Array(0) },
      { name: 'top/b.bin', body: body(512, 2) },
    ];
    const bytes = tarBytes(items);
    for (const size of [1, 100, 512, 513, 100_000]) {
      const got = await read(bytes, size);
      expect(
        got.map((g) => g.entry),
        `chunks of ${size}`,
      ).toEqual([
        { name: 'top/', type: 'directory', size: 0 },
        { name: 'top/a.bin', type: 'file', size: 1000 },
        { name: 'top/empty', type: 'file', size: 0 },
        { name: 'top/b.bin', type: 'file', size: 512 },
      ]);
      expect(got[1]!.body).toEqual([...body(1000, 1)]);
      expect(got[3]!.body).toEqual([...body(512, 2)]);
    }
    prefixed.set(new TextEncoder().encode('some/folder'), 345);
    prefixed.fill(0x20, 148, 156);
    const sum = prefixed.reduce((a, b) => a + b, 0);
    prefixed.set(new TextEncoder().encode(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
    const withPrefix = new Uint8Array([...prefixed, ...body(3), ...new Uint8Array(509 + 1024)]);
    expect((await read(withPrefix)).map((g) => [g.entry.name, g.body])).toEqual([['some/folder/x.bin', [...body(3)]]]);
  });

  it('skips what the visitor does not read, whole or in part', async () => {
    const bytes = tarBytes([
      { name: 'a', body: body(700, 3) },
      { name: 'b', body: body(10, 4) },
    ]);
    const seen: [string, number][] = [];
    await readTar(chunks(bytes, 64), 'a.tar', async (entry, b) => {
      if (entry.name === 'a') {
        for await (const c of b) {
          seen.push([entry.name, c.length]);
          break; // read one chunk only
        }
      } else for await (const c of b) seen.push([entry.name, c.length]);
    });
    expect(seen).toEqual([
      ['a', 64],
      ['b', 10],
    ]);
  });

  it('refuses links, devices, FIFOs and extension headers, naming the entry', async () => {
    for (const [type, what] of [
      ['1', 'a hard link'],
      ['2', 'a symbolic link'],
      ['3', 'a character device'],
      ['4', 'a block device'],
      ['6', 'a named pipe \\(FIFO\\)'],
      ['x', 'a pax extended header'],
      ['g', 'a pax global header'],
      ['L', 'a GNU long-name header'],
      ['S', 'a GNU sparse file'],
      ['Z', 'of type "Z"'],
    ] as const) {
      await refused(
        tarBytes([
          { name: 'ok', body: body(5) },
          { name: 'cifar-10-batches-bin/test_batch.bin', type },
        ]),
        new RegExp(
          `^a\\.tar: the tar header at byte 1024, of entry "cifar-10-batches-bin/test_batch\\.bin", is ${what}; only regular files and folders are accepted$`,
        ),
      );
    }
  });

  it('refuses paths that leave the archive', async () => {
    for (const name of ['../data_batch_1.bin', 'cifar-10-batches-bin/../../x', '/etc/x', 'a\\..\\..\\x', 'C:x']) {
      await refused(tarBytes([{ name, body: body(5) }]), /has a path that leaves the archive's folder; refused$/);
    }
  });

  it('refuses truncated archives: inside a header, inside a body, in the padding, without the end block', async () => {
    const whole = tarBytes([{ name: 'a', body: body(700) }]);
    await refused(whole.subarray(0, 100), /^a\.tar: ends after 100 bytes, inside a header: the archive is truncated$/);
    await refused(
      whole.subarray(0, 512 + 300),
      /^a\.tar: ends after 812 bytes, inside "a" \(700 bytes from byte 512\): the archive is truncated$/,
    );
    await refused(whole.subarray(0, 512 + 800), /ends after 1312 bytes, inside the padding after an entry/);
    await refused(whole.subarray(0, 1536), /^a\.tar: ends after 1536 bytes, without its end-of-archive block/);
    await refused(new Uint8Array(0), /ends after 0 bytes, without its end-of-archive block/);
    // A header whose size runs past the end of the data.
    await refused(tarBytes([{ name: 'a', body: body(10), size: 5000 }], false), /inside "a" \(5000 bytes/);
  });

  it('refuses bad headers: checksum, magic, size field', async () => {
    const bad = tarBytes([{ name: 'a', body: body(5) }]);
    bad[3] = 0x41;
    await refused(bad, /^a\.tar: the tar header at byte 0 has a checksum of \d+ but its bytes sum to \d+: not a tar/);
    const garbage = Uint8Array.from({ length: 2048 }, (_, i) => (i * 7) % 256);
    await refused(garbage, /has a checksum of garbage but its bytes sum to/);
    const v7 = tarHeader({ name: 'a' });
    v7.fill(0, 257, 265);
    fixChecksum(v7);
    await refused(new Uint8Array([...v7, ...new Uint8Array(1024)]), /is not a ustar or GNU tar header/);
    const base256 = tarHeader({ name: 'a' });
    base256[124] = 0x80;
    fixChecksum(base256);
    await refused(new Uint8Array([...base256, ...new Uint8Array(1024)]), /gives its size in base 256/);
    const notOctal = tarHeader({ name: 'a' });
    notOctal.set(new TextEncoder().encode('00000000009\0'), 124);
    fixChecksum(notOctal);
    await refused(new Uint8Array([...notOctal, ...new Uint8Array(1024)]), /has a size field that is not an octal/);
  });
});

function fixChecksum(block: Uint8Array): void {
  block.fill(0x20, 148, 156);
  const sum = block.reduce((a, b) => a + b, 0);
  block.set(new TextEncoder().encode(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
}
