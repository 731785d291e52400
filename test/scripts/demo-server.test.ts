/**
 * The demo server (scripts/demo-server.mjs) under hostile requests. Real HTTP over raw sockets, so malformed
 * request lines and raw paths reach it unnormalised; the server runs in a child process (a crash shows as an
 * exit) with a temporary data directory, and after every bad request a good one must still be answered. The
 * races between checking a file and opening it are replayed in this process, where `open` can be hooked.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  constants,
  mkdirSync,
  mkdtempSync,
  openSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createNetServer, connect, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
// @ts-expect-error plain JS module
import { startDemoServer } from '../../scripts/demo-server.mjs';

// `open` is hooked so a test can change the file system at the last moment before the server opens a file —
// the window between any check and the open (fs/promises `open`, and fs's `open`/`createReadStream`).
const race = vi.hoisted(() => ({ beforeOpen: null as ((path: string) => void) | null }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fsp = await importOriginal<typeof import('node:fs/promises')>();
  const open = ((path: Parameters<typeof fsp.open>[0], ...rest: unknown[]) => {
    race.beforeOpen?.(String(path));
    return (fsp.open as (...a: unknown[]) => unknown)(path, ...rest);
  }) as typeof fsp.open;
  return { ...fsp, open, default: { ...fsp, open } };
});
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const hooked = <F extends (...a: never[]) => unknown>(f: F): F =>
    ((path: unknown, ...rest: unknown[]) => {
      if (typeof path === 'string' || path instanceof URL)
        race.beforeOpen?.(String(path instanceof URL ? fileURLToPath(path) : path));
      return (f as unknown as (...a: unknown[]) => unknown)(path, ...rest);
    }) as unknown as F;
  const createReadStream = hooked(fs.createReadStream);
  const open = hooked(fs.open);
  return { ...fs, createReadStream, open, default: { ...fs, createReadStream, open } };
});

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = join(ROOT, 'scripts', 'demo-server.mjs');
const GOOD = '/examples/browser/index.html';
const GOOD_DATA = 'GOOD-DATA-0123456789';
const SECRET = 'TOP-SECRET-4f1c9a';
// What must never appear in an answer: the outside secret, /etc/passwd, and files of the checkout outside the
// three served folders (package.json, the git metadata).
const LEAKS = [SECRET, 'root:x:0:0', '"devDependencies"', 'gitdir:', '[core]'];

interface Reply {
  status: number; // 0: closed without an answer; -1: no answer before the client gave up
  head: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** Parses one HTTP/1.1 response (content-length or chunked, or to the end of the connection). */
function parseReply(raw: Buffer, timedOut: boolean): Reply {
  const split = raw.indexOf('\r\n\r\n');
  if (split < 0) return { status: timedOut ? -1 : 0, head: raw.toString('latin1'), headers: {}, body: Buffer.alloc(0) };
  const head = raw.subarray(0, split).toString('latin1');
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.subarray(split + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = body.indexOf('\r\n', at);
      const n = eol < 0 ? 0 : parseInt(body.subarray(at, eol).toString('latin1'), 16);
      if (!n) break;
      parts.push(body.subarray(eol + 2, eol + 2 + n));
      at = eol + 2 + n + 2;
    }
    body = Buffer.concat(parts);
  }
  return { status: Number(statusLine!.split(' ')[1]), head, headers, body };
}

/** Sends raw bytes on a fresh connection and reads until the server closes it (or `timeoutMs` passes). */
function exchange(port: number, data: string | Buffer, timeoutMs = 15_000): Promise<Reply> {
  return new Promise((done) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1', () => socket.write(data));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => {});
    const timer = setTimeout(() => {
      socket.destroy();
      done(parseReply(Buffer.concat(chunks), true));
    }, timeoutMs);
    socket.on('close', () => {
      clearTimeout(timer);
      done(parseReply(Buffer.concat(chunks), false));
    });
  });
}

interface RequestOptions {
  method?: string;
  host?: string | null; // null: no Host header
  headers?: string[];
  body?: string;
  version?: string;
}

/** One request with `Connection: close`, the target sent exactly as given. */
function request(
  port: number,
  target: string,
  { method = 'GET', host, headers = [], body = '', version = 'HTTP/1.1' }: RequestOptions = {},
): Promise<Reply> {
  const lines = [`${method} ${target} ${version}`];
  if (host !== null) lines.push(`Host: ${host ?? `localhost:${port}`}`);
  lines.push(...headers, 'Connection: close', '', body);
  return exchange(port, lines.join('\r\n'));
}

/** Polls `cond` until it holds; fails after `ms` (a generous bound: nothing here measures speed). */
async function waitFor(cond: () => boolean, ms: number, what: string | (() => string)): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Served {
  port: number;
  child?: ChildProcess;
  stderr: () => string;
  stop(): Promise<void>;
}

/** The server in a child process (as `uid` where given), started through startDemoServer(options). */
async function spawnServer(options: Record<string, unknown>, uid?: number): Promise<Served> {
  const code = `import { startDemoServer } from ${JSON.stringify(pathToFileURL(SCRIPT).href)};
const s = await startDemoServer(JSON.parse(process.env.WPC_DEMO_TEST_OPTIONS));
console.log('PORT ' + new URL(s.url).port);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    cwd: tmpdir(),
    env: { ...process.env, WPC_DEMO_TEST_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  await waitFor(
    () => /PORT \d+/.test(out) || child.exitCode !== null || child.signalCode !== null,
    60_000,
    'the server to start',
  );
  if (!/PORT \d+/.test(out)) throw new Error(`the server did not start: ${err}`);
  const port = Number(/PORT (\d+)/.exec(out)![1]);
  return {
    port,
    child,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill();
        await new Promise((r) => child.once('exit', r));
      }
    },
  };
}

/** The server is still up and a good request gets the page. */
async function expectServing(server: Served, after: string): Promise<void> {
  if (server.child)
    expect(
      server.child.exitCode ?? server.child.signalCode,
      `the server process is alive after ${after}: ${server.stderr()}`,
    ).toBeNull();
  const r = await request(server.port, GOOD);
  expect(r.status, `a good request after ${after}`).toBe(200);
  expect(r.body.toString()).toContain('<!doctype html>');
}

function expectNoLeak(r: Reply, what: string): void {
  const text = r.head + r.body.toString('latin1');
  for (const leak of LEAKS) expect(text, `${what} leaks ${leak}`).not.toContain(leak);
}

// The fixture: a data directory with good files, symlinks in and out, special files; a secret outside it.
let tmp: string;
let data: string;
let outside: string;
let unixSocket: NetServer;

beforeAll(async () => {
  tmp = realpathSync(mkdtempSync(join(tmpdir(), 'wpc-demo-')));
  chmodSync(tmp, 0o755);
  data = join(tmp, 'data');
  outside = join(tmp, 'outside');
  const mnist = join(data, 'mnist');
  mkdirSync(mnist, { recursive: true });
  mkdirSync(join(outside, 'sub'), { recursive: true });
  writeFileSync(join(outside, 'secret.txt'), SECRET);
  writeFileSync(join(outside, 'sub', 'secret.gz'), SECRET);
  writeFileSync(join(mnist, 'train-images-idx3-ubyte.gz'), GOOD_DATA);
  writeFileSync(join(data, '.hidden'), SECRET);
  mkdirSync(join(data, '.git'));
  writeFileSync(join(data, '.git', 'config'), SECRET);
  writeFileSync(join(mnist, 'noread.gz'), SECRET);
  chmodSync(join(mnist, 'noread.gz'), 0o000);
  mkdirSync(join(mnist, 'dir.gz'));
  execFileSync('mkfifo', [join(mnist, 'fifo.gz')]);
  unixSocket = createNetServer();
  await new Promise<void>((r) => unixSocket.listen(join(mnist, 'socket.gz'), r));
  // Symlinks that stay inside the data directory are served.
  symlinkSync('train-images-idx3-ubyte.gz', join(mnist, 'alias.gz'));
  symlinkSync('mnist', join(data, 'inner'));
  // Symlinks out: files, directories, relative and absolute, to the checkout and to another served folder.
  symlinkSync('/etc/passwd', join(mnist, 'passwd'));
  symlinkSync('../../outside/secret.txt', join(mnist, 'secret.txt'));
  symlinkSync(join(outside, 'secret.txt'), join(mnist, 'abs-secret.gz'));
  symlinkSync(join(ROOT, 'package.json'), join(mnist, 'package.json'));
  symlinkSync(join(ROOT, '.git'), join(data, 'git'));
  symlinkSync(ROOT, join(data, 'checkout'));
  symlinkSync(outside, join(data, 'outdir'));
  symlinkSync('/', join(data, 'slash'));
  symlinkSync(join(ROOT, 'examples', 'browser', 'index.html'), join(data, 'page.html'));
  symlinkSync('loop', join(data, 'loop'));
  mkdirSync(join(data, 'race'));
  for (const dir of [data, mnist, outside, join(outside, 'sub'), join(data, 'race')]) chmodSync(dir, 0o755);
});

afterAll(async () => {
  await new Promise((r) => unixSocket?.close(r));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the demo server answers every request and keeps serving', () => {
  let server: Served;
  beforeAll(async () => {
    server = await spawnServer({ port: 0, dataDir: data });
  });
  afterAll(async () => server?.stop());

  it('serves the pages and the data directory, symlinks inside included, with nosniff and a CSP on pages', async () => {
    const page = await request(server.port, GOOD);
    expect(page.status).toBe(200);
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['content-security-policy']).toMatch(/script-src 'self'/);
    expect(page.headers['content-security-policy']).toMatch(/frame-ancestors 'none'/);
    expect(Number(page.headers['content-length'])).toBe(page.body.length);
    for (const path of [
      '/data/mnist/train-images-idx3-ubyte.gz',
      '/data/mnist/alias.gz',
      '/data/inner/train-images-idx3-ubyte.gz',
      '/data/inner/alias.gz',
    ]) {
      const r = await request(server.port, path);
      expect(r.status, path).toBe(200);
      expect(r.body.toString(), path).toBe(GOOD_DATA);
      expect(r.headers['content-type'], path).toBe('application/gzip');
      expect(r.headers['x-content-type-options'], path).toBe('nosniff');
    }
    const index = await request(server.port, '/examples/browser/');
    expect(index.status).toBe(200);
    expect(index.body.equals(page.body)).toBe(true);
    for (const path of ['/', '/examples/browser', '/?x=1']) {
      const r = await request(server.port, path);
      expect(r.status, path).toBe(302);
      expect(r.headers.location, path).toBe('/examples/browser/');
    }
    // The query is never decoded, so a bad escape there is harmless.
    expect((await request(server.port, `${GOOD}?q=%zz&r=%E0%A4%A`)).status).toBe(200);
  });

  it('answers malformed percent-escapes with 400', async () => {
    const targets = [
      '/dist/%E0%A4%A',
      '/dist/%',
      '/dist/%zz',
      '/dist/%E0%A4',
      '/%',
      '/data/%ff',
      '/data/mnist/%c0%ae%c0%ae',
      '/examples/browser/%ED%A0%80',
      '/dist/a%2',
      '/data/%%32%65',
    ];
    for (const target of targets) {
      const r = await request(server.port, target);
      expect(r.status, target).toBe(400);
      expect(r.headers['x-content-type-options'], target).toBe('nosniff');
      await expectServing(server, target);
    }
  });

  it('refuses traversal in every spelling: 4xx, nothing outside the served folders, still serving', async () => {
    const targets = [
      '/dist/../package.json',
      '/examples/browser/../../package.json',
      '/data/../../../../../etc/passwd',
      '/data/mnist/../../outside/secret.txt',
      '/dist/%2e%2e/package.json',
      '/dist/%2E%2E/package.json',
      '/dist/%2e%2e%2fpackage.json',
      '/data/%2e%2e%2f%2e%2e%2foutside%2fsecret.txt',
      '/dist/..%2fpackage.json',
      '/dist/.%2e/package.json',
      '/data/mnist/./../../outside/secret.txt',
      '/dist/%252e%252e%252fpackage.json',
      '/dist/%252e%252e/package.json',
      '/data/%25%32%65%25%32%65/outside/secret.txt',
      '/dist/..\\package.json',
      '/dist/%5c..%5cpackage.json',
      '/dist/..%5cpackage.json',
      '/data\\..\\..\\outside\\secret.txt',
      '/dist/%00',
      '/dist/browser.js%00.html',
      '/data/mnist/train-images-idx3-ubyte.gz%00',
      '/data/%00/../../etc/passwd',
      '//etc/passwd',
      '/dist//etc/passwd',
      '/data//etc/passwd',
      '/dist/%2fetc%2fpasswd',
      '/data/%2F..%2F..%2Foutside/secret.txt',
      '/etc/passwd',
      '/package.json',
      '/.git/config',
      '/dist/..',
      '/examples/%2e%2e/package.json',
      '/data/.hidden',
      '/data/.git/config',
      '/data/%2ehidden',
      '/data/.%2e/outside/secret.txt',
      '/data/mnist/%2e/../../outside/secret.txt',
      'http://localhost/../package.json',
      `http://evil.example/etc/passwd`,
      '*',
      'dist/../package.json',
      '../package.json',
    ];
    for (const target of targets) {
      const r = await request(server.port, target);
      expect([400, 403, 404], `${target} -> ${r.status}`).toContain(r.status);
      expectNoLeak(r, target);
      expect(r.body.toString(), `${target}: the answer repeats the request`).not.toMatch(
        /package|passwd|secret|etc|\.\./,
      );
      await expectServing(server, target);
    }
  });

  it('refuses symlinks that leave their folder (files and directories), and hidden files', async () => {
    const targets = [
      '/data/mnist/passwd',
      '/data/mnist/secret.txt',
      '/data/mnist/abs-secret.gz',
      '/data/mnist/package.json',
      '/data/git/config',
      '/data/git',
      '/data/checkout/package.json',
      '/data/checkout/.git/config',
      '/data/checkout/scripts/demo-server.mjs',
      '/data/outdir/secret.txt',
      '/data/outdir/sub/secret.gz',
      '/data/slash/etc/passwd',
      '/data/page.html',
      '/data/loop',
      '/data/.hidden',
      '/data/inner/../.hidden',
    ];
    for (const target of targets) {
      for (const method of ['GET', 'HEAD']) {
        const r = await request(server.port, target, { method });
        expect([400, 403, 404], `${method} ${target} -> ${r.status}`).toContain(r.status);
        expectNoLeak(r, target);
        await expectServing(server, `${method} ${target}`);
      }
    }
    // A symlink out of the data directory into the checkout is refused even where the checkout is served.
    expect((await request(server.port, '/data/page.html')).status).toBe(403);
  });

  it('answers only GET and HEAD: 405 with Allow otherwise, and HEAD sends no body', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'MKCOL']) {
      const r = await request(server.port, GOOD, { method, headers: ['Content-Length: 3'], body: 'a=1' });
      expect(r.status, method).toBe(405);
      expect(r.headers.allow, method).toBe('GET, HEAD');
      expect(r.headers['x-content-type-options'], method).toBe('nosniff');
      await expectServing(server, method);
    }
    // A body that is announced but never sent is not waited for.
    const post = await request(server.port, '/data/mnist/train-images-idx3-ubyte.gz', {
      method: 'POST',
      headers: ['Content-Length: 1000000000'],
    });
    expect(post.status).toBe(405);
    for (const target of ['*', 'localhost:1', '127.0.0.1:22']) {
      const r = await request(server.port, target, { method: target === '*' ? 'OPTIONS' : 'CONNECT' });
      expect(r.status, target).toBe(405);
      await expectServing(server, `CONNECT ${target}`);
    }
    // A method Node's parser does not know is a 400.
    expect((await request(server.port, GOOD, { method: 'FROB' })).status).toBe(400);
    await expectServing(server, 'FROB');

    const get = await request(server.port, GOOD);
    const head = await request(server.port, GOOD, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(get.body.length));
    expect(head.body.length).toBe(0);
    const head404 = await request(server.port, '/dist/nowhere.js', { method: 'HEAD' });
    expect(head404.status).toBe(404);
    expect(head404.body.length).toBe(0);
  });

  it('answers only to localhost names (DNS rebinding): 421 for other hosts, 400 for none or several', async () => {
    const { port } = server;
    for (const host of [
      'localhost',
      `localhost:${port}`,
      `127.0.0.1:${port}`,
      '127.0.0.1',
      `[::1]:${port}`,
      `LOCALHOST:${port}`,
    ]) {
      expect((await request(port, GOOD, { host })).status, host).toBe(200);
    }
    const bad = [
      'evil.example',
      `evil.example:${port}`,
      `localhost.evil.example:${port}`,
      `127.0.0.1.nip.io:${port}`,
      `localhost:${port + 1}`,
      'localhost:80',
      `localhost:${port}@evil.example`,
      `evil.example#localhost:${port}`,
      'localhost.',
      `0.0.0.0:${port}`,
      `127.0.0.2:${port}`,
      '[::ffff:127.0.0.1]',
      `localhost:0${port}`,
    ];
    for (const host of bad) {
      const r = await request(port, GOOD, { host });
      expect(r.status, host).toBe(421);
      expect(r.body.toString(), host).not.toContain('evil');
      await expectServing(server, `Host: ${host}`);
    }
    const missing = [
      await request(port, GOOD, { host: null, version: 'HTTP/1.0' }),
      await request(port, GOOD, { host: null }),
      await request(port, GOOD, { headers: [`Host: evil.example`] }),
      await request(port, GOOD, { host: '' }),
    ];
    for (const r of missing) expect([400, 421]).toContain(r.status);
    await expectServing(server, 'missing and duplicate Host');
  });

  it('never echoes the request into an answer (no reflected XSS)', async () => {
    const payloads = [
      '/dist/%3Cscript%3Ealert(1)%3C%2Fscript%3E',
      '/dist/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E',
      '/nowhere/%3Cscript%3Ealert(1)%3C/script%3E',
      '/data/mnist/%3Csvg%20onload%3Dalert(1)%3E',
      '/examples/browser/%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E.html',
      '/<script>alert(1)</script>',
    ];
    for (const target of payloads) {
      const r = await request(server.port, target);
      expect([400, 404], target).toContain(r.status);
      const text = r.body.toString();
      for (const bit of ['<', 'script', 'alert', 'onerror', 'svg']) expect(text, target).not.toContain(bit);
      expect(r.headers['content-type'], target).toBe('text/plain; charset=utf-8');
      expect(r.headers['x-content-type-options'], target).toBe('nosniff');
      expect(r.headers['content-security-policy'], target).toMatch(/default-src 'none'/);
    }
    await expectServing(server, 'XSS probes');
  });

  it('bounds the request target: 414 for long URLs, 431 or 400 for ones past the header limit', async () => {
    const long = await request(server.port, `/dist/${'a'.repeat(3000)}`);
    expect(long.status).toBe(414);
    expect(long.body.toString()).not.toContain('aaaa');
    await expectServing(server, 'a 3000-character URL');
    for (const n of [20_000, 200_000]) {
      const r = await request(server.port, `/dist/${'a'.repeat(n)}`);
      expect([400, 414, 431], `${n} characters`).toContain(r.status);
      await expectServing(server, `a ${n}-character URL`);
    }
    const headers = await request(server.port, GOOD, { headers: [`X-Big: ${'b'.repeat(40_000)}`] });
    expect([400, 431]).toContain(headers.status);
    const many = await request(server.port, GOOD, { headers: Array.from({ length: 500 }, (_, i) => `X-H${i}: v`) });
    expect([200, 400, 431]).toContain(many.status);
    // Deep but short: many segments resolve to a plain 404.
    expect((await request(server.port, `/data/${'a/'.repeat(900)}x`)).status).toBe(404);
    await expectServing(server, 'oversized headers');
  });

  it('answers many concurrent clients, good and bad, and keeps serving', async () => {
    const bad = ['/dist/%E0%A4%A', '/data/mnist/passwd', '/dist/../package.json', '/data/mnist/fifo.gz'];
    const replies = await Promise.all(
      Array.from({ length: 48 }, (_, i) =>
        i % 2 === 0
          ? request(server.port, i % 4 === 0 ? GOOD : '/data/mnist/train-images-idx3-ubyte.gz').then((r) => ({
              r,
              good: true,
            }))
          : request(server.port, bad[(i >> 1) % bad.length]!, { method: i % 3 === 0 ? 'POST' : 'GET' }).then((r) => ({
              r,
              good: false,
            })),
      ),
    );
    for (const { r, good } of replies) {
      if (good) expect(r.status).toBe(200);
      else expect([400, 403, 404, 405]).toContain(r.status);
      expectNoLeak(r, 'a concurrent request');
    }
    await expectServing(server, 'concurrent clients');
  });
});

describe('the demo server bounds connections in number and time', () => {
  const servers: Served[] = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const s of servers.splice(0)) await s.stop();
  });

  /** A client that sends the start of a request and then one header line every 50 ms, never finishing. */
  function trickle(port: number): { socket: Socket; closed: () => boolean; received: () => string } {
    let closed = false;
    let received = '';
    const socket = connect(port, '127.0.0.1', () => socket.write(`GET ${GOOD} HTTP/1.1\r\nHost: localhost\r\n`));
    const timer = setInterval(() => socket.writable && socket.write(`X-Slow-${Date.now()}: 1\r\n`), 50);
    socket.on('data', (d) => (received += d));
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      clearInterval(timer);
    });
    sockets.push(socket);
    return { socket, closed: () => closed, received: () => received };
  }

  it('closes clients that trickle their headers or send nothing, and serves others meanwhile', async () => {
    const server = await spawnServer({
      port: 0,
      dataDir: data,
      limits: { headersMs: 2000, requestMs: 4000, idleMs: 4000 },
    });
    servers.push(server);
    const slow = Array.from({ length: 5 }, () => trickle(server.port));
    let silentClosed = false;
    const silent = connect(server.port, '127.0.0.1');
    silent.on('error', () => {});
    silent.on('close', () => (silentClosed = true));
    silent.resume(); // read, or the server's close would go unseen
    sockets.push(silent);
    await expectServing(server, 'slow clients connected');
    const state = () =>
      `slow: ${slow.map((s) => (s.closed() ? 'closed' : 'open')).join(', ')}; silent: ${silentClosed ? 'closed' : 'open'}`;
    await waitFor(
      () => slow.every((s) => s.closed()) && silentClosed,
      20_000,
      () => `the server to close slow and silent clients (${state()})`,
    );
    for (const s of slow) expect(['', '408']).toContain(s.received().slice(9, 12));
    await expectServing(server, 'slow clients closed');
  });

  it('holds at most `connections` sockets: a new client replaces the longest-waiting idle one', async () => {
    const server = await spawnServer({ port: 0, dataDir: data, limits: { connections: 8 } });
    servers.push(server);
    const slow: ReturnType<typeof trickle>[] = [];
    for (let i = 0; i < 30; i++) {
      const s = trickle(server.port);
      await new Promise((r) => s.socket.once('connect', r));
      slow.push(s);
    }
    await waitFor(
      () => slow.filter((s) => !s.closed()).length <= 8,
      20_000,
      'the server to keep at most 8 connections',
    );
    // The oldest were dropped first.
    expect(slow.slice(0, 22).every((s) => s.closed())).toBe(true);
    await expectServing(server, '30 slow clients against a limit of 8');
    await waitFor(() => slow.filter((s) => !s.closed()).length <= 7, 20_000, 'the good client to replace a slow one');
    // Sequential keep-alive clients keep working at the limit.
    for (let i = 0; i < 10; i++) await expectServing(server, `request ${i} at the limit`);
  });
});

describe('startDemoServer and its command line refuse bad options', () => {
  it('rejects bad options with a TypeError naming the option', async () => {
    const cases: [unknown, RegExp][] = [
      [{ port: -1 }, /^startDemoServer: options\.port must be an integer in \[0, 65535\], got -1$/],
      [{ port: 65536 }, /options\.port/],
      [{ port: 1.5 }, /options\.port/],
      [{ port: '8080' }, /options\.port .*got "8080"/],
      [
        { port: 0, dataDir: join(tmp, 'does-not-exist') },
        /^startDemoServer: options\.dataDir must be an existing directory/,
      ],
      [{ port: 0, dataDir: '' }, /options\.dataDir/],
      [
        { port: 0, dataDir: join(data, 'mnist', 'train-images-idx3-ubyte.gz') },
        /options\.dataDir must be an existing directory/,
      ],
      [{ port: 0, limits: { connections: 0 } }, /options\.limits\.connections must be an integer/],
      [{ port: 0, limits: { headersMs: Infinity } }, /options\.limits\.headersMs/],
      [{ port: 0, limits: { bogus: 1 } }, /options\.limits\.bogus/],
      [{ port: 0, limits: [] }, /options\.limits must be an object/],
      [null, /^startDemoServer: options must be an object/],
    ];
    for (const [options, message] of cases) {
      const error = await startDemoServer(options).then(
        (s: { close(): Promise<void> }) => s.close().then(() => null),
        (e: unknown) => e,
      );
      expect(error, JSON.stringify(options)).toBeInstanceOf(TypeError);
      expect((error as Error).message, JSON.stringify(options)).toMatch(message);
    }
  });

  it('without dataDir: $WPC_DATA_DIR, else the per-user cache when it holds mnist/ (wpc data download), else ../shared/datasets', async () => {
    const code = `import { startDemoServer } from ${JSON.stringify(pathToFileURL(SCRIPT).href)};
const s = await startDemoServer({ port: 0 });
console.log(JSON.stringify(s.dataDir));
await s.close();`;
    const servedFrom = (env: Record<string, string>) =>
      new Promise<string | null>((done, fail) => {
        const { WPC_DATA_DIR: _unset, ...rest } = process.env;
        const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
          cwd: tmpdir(),
          env: { ...rest, ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        child.stdout!.on('data', (d) => (out += d));
        child.stderr!.on('data', (d) => (err += d));
        child.on('exit', (c) =>
          c === 0 ? done(JSON.parse(out.trim().split('\n').pop()!)) : fail(new Error(`exit ${c}: ${err}`)),
        );
      });
    const xdg = join(tmp, 'xdg-cache');
    const cache = join(xdg, 'wpc', 'datasets');
    mkdirSync(cache, { recursive: true });
    const shared = resolve(ROOT, '..', 'shared', 'datasets');
    // The cache without mnist/ does not count.
    expect(await servedFrom({ XDG_CACHE_HOME: xdg })).toBe(shared);
    mkdirSync(join(cache, 'mnist'));
    expect(await servedFrom({ XDG_CACHE_HOME: xdg })).toBe(cache);
    expect(await servedFrom({ XDG_CACHE_HOME: xdg, WPC_DATA_DIR: data })).toBe(data);
  });

  function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((done) => {
      const child = spawn(process.execPath, [SCRIPT, ...args], { cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => child.kill(), 30_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        done({ code, stdout, stderr });
      });
    });
  }

  it('exits 2 on a bad command line and 1 when it cannot listen, with one line and no stack', async () => {
    for (const args of [
      ['--port', 'abc'],
      ['--port', '70000'],
      ['--port', '-1'],
      ['--port', '8e3'],
      ['--bogus'],
      ['extra'],
      ['--data-dir', join(tmp, 'nowhere')],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr, args.join(' ')).toMatch(/^demo-server: /);
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /);
    }
    const busy = createNetServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    try {
      const r = await cli(['--port', String(port), '--data-dir', data]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(`demo-server: port ${port} is in use; pick another with --port`);
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });
});

describe('files it cannot serve', () => {
  // Root reads a mode-000 file anyway, so as root the server runs as nobody for this test.
  const uid = process.getuid?.() === 0 ? 65534 : undefined;

  it('an unreadable file gets 403; a FIFO, a socket, a directory named like a file get 404 without blocking', async () => {
    const server = await spawnServer({ port: 0, dataDir: data }, uid);
    try {
      const cases: [string, number][] = [
        ['/data/mnist/noread.gz', 403],
        ['/data/mnist/fifo.gz', 404],
        ['/data/mnist/socket.gz', 404],
        ['/data/mnist/dir.gz', 404],
        ['/data/mnist/dir.gz/', 404],
        ['/data/mnist/train-images-idx3-ubyte.gz/', 404],
        ['/data/mnist/noread.gz', 403],
      ];
      for (const [target, status] of cases) {
        for (const method of ['GET', 'HEAD']) {
          const r = await request(server.port, target, { method });
          expect(r.status, `${method} ${target}`).toBe(status);
          expectNoLeak(r, target);
          await expectServing(server, `${method} ${target}`);
        }
      }
    } finally {
      await server.stop();
    }
  });
});

describe('the file system changing between the checks and the open', () => {
  let server: { url: string; close(): Promise<void> };
  let port: number;
  beforeAll(async () => {
    server = await startDemoServer({ port: 0, dataDir: data });
    port = Number(new URL(server.url).port);
  });
  afterAll(async () => {
    race.beforeOpen = null;
    await server?.close();
  });

  /** Requests `name` (a fresh regular file in data/race/) after `swap` ran just before the server's open. */
  async function raced(name: string, swap: (path: string) => void): Promise<Reply> {
    const dir = join(data, 'race', name);
    mkdirSync(join(dir, 'sub'), { recursive: true });
    const file = join(dir, 'sub', 'file.gz');
    writeFileSync(file, GOOD_DATA);
    let fired = false;
    race.beforeOpen = (path) => {
      if (!fired && resolve(path) === file) {
        fired = true;
        swap(file);
      }
    };
    try {
      const r = await request(port, `/data/race/${name}/sub/file.gz`);
      expect(fired, `${name}: the server opened the file`).toBe(true);
      return r;
    } finally {
      race.beforeOpen = null;
      // A server that opened the FIFO for reading blocks until a writer comes: be that writer.
      try {
        closeSync(openSync(file, constants.O_RDWR | constants.O_NONBLOCK));
      } catch {
        /* not a FIFO, or gone */
      }
    }
  }

  it('a file replaced by a FIFO is refused without blocking', async () => {
    // The hook itself changes nothing: an untouched file is served.
    const unchanged = await raced('unchanged', () => {});
    expect(unchanged.status).toBe(200);
    expect(unchanged.body.toString()).toBe(GOOD_DATA);
    const r = await raced('fifo', (file) => {
      unlinkSync(file);
      execFileSync('mkfifo', [file]);
    });
    expect(r.status).toBe(404);
    const again = await request(port, GOOD);
    expect(again.status).toBe(200);
  });

  it('a file removed before the open gets 404', async () => {
    const r = await raced('removed', (file) => unlinkSync(file));
    expect(r.status).toBe(404);
    expect((await request(port, GOOD)).status).toBe(200);
  });

  it('a file replaced by a symlink out of the folder is refused', async () => {
    const r = await raced('symlink', (file) => {
      unlinkSync(file);
      symlinkSync(join(outside, 'secret.txt'), file);
    });
    expect([403, 404]).toContain(r.status);
    expectNoLeak(r, 'a file swapped for a symlink');
    expect((await request(port, GOOD)).status).toBe(200);
  });

  it('a parent directory replaced by a symlink out of the folder is refused', async () => {
    const r = await raced('parent', (file) => {
      const sub = resolve(file, '..');
      renameSync(sub, `${sub}-old`);
      writeFileSync(join(outside, 'sub', 'file.gz'), SECRET);
      symlinkSync(join(outside, 'sub'), sub);
    });
    expect([403, 404]).toContain(r.status);
    expectNoLeak(r, 'a directory swapped for a symlink');
    expect((await request(port, GOOD)).status).toBe(200);
  });
});

describe('a client that stops reading', () => {
  it('is dropped after `idleMs` without progress, and others are served meanwhile', async () => {
    const server = await startDemoServer({ port: 0, dataDir: data, limits: { idleMs: 2000 } });
    const port = Number(new URL(server.url).port);
    const size = 32 << 20; // more than the socket buffers of both ends hold
    const big = join(data, 'mnist', 'big.gz');
    writeFileSync(big, Buffer.alloc(size, 7));
    let socket: Socket | undefined;
    try {
      let received = 0;
      let closed = false;
      let stalling = true;
      const client = connect(port, '127.0.0.1', () =>
        client.write(`GET /data/mnist/big.gz HTTP/1.1\r\nHost: localhost:${port}\r\n\r\n`),
      );
      socket = client;
      client.on('error', () => {});
      client.on('close', () => (closed = true));
      client.on('data', (d) => {
        received += d.length;
        if (stalling && received > 65536) client.pause();
      });
      await waitFor(() => received > 65536 || closed, 20_000, 'the response to start');
      expect((await request(port, GOOD)).status).toBe(200);
      await waitFor(
        () => server.connections().open === 0,
        20_000,
        () => `the server to drop the stalled client (${JSON.stringify(server.connections())})`,
      );
      stalling = false;
      client.resume();
      await waitFor(() => closed, 20_000, 'the client to see the end');
      expect(received).toBeLessThan(size);
      expect((await request(port, GOOD)).status).toBe(200);
    } finally {
      socket?.destroy();
      unlinkSync(big);
      await server.close();
    }
  });
});
