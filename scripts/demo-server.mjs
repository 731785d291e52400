// `npm run demo`: a local demo server, bound to 127.0.0.1, for the browser demo on http://localhost (WebGPU needs
// a secure context, and localhost is one). It serves three folders read-only and nothing else: examples/browser/
// (the pages), dist/ (the built library) and a data directory under /data/.
//   node scripts/demo-server.mjs [--port 8080] [--data-dir DIR]
//
// It answers every request with an HTTP status and keeps serving: only GET and HEAD, only for a localhost Host
// (a page on another site that rebinds its DNS name to 127.0.0.1 gets 421), only regular, non-hidden files whose
// real path (symlinks resolved, checked again on the opened file) lies inside the folder they are served from.
// Error pages are fixed texts that never repeat the request. Connections are bounded in number and in time.
import { constants } from 'node:fs';
import { open, readlink, realpath, stat } from 'node:fs/promises';
import { STATUS_CODES, createServer } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.gz': 'application/gzip',
};

/**
 * Resource limits, each a positive integer: `connections` open at once (64; when full, a new connection replaces
 * the one that has waited longest without a request in progress — an idle keep-alive or a client still trickling
 * its headers — so slow clients cannot lock others out; if every connection is busy the new one gets 503),
 * `headersMs` to receive a request's headers (10 s), `requestMs` to receive a whole request (30 s), `idleMs` a
 * socket may sit with nothing read or written, e.g. a client that stops reading a response (30 s), `keepAliveMs`
 * an idle keep-alive connection is kept (5 s), `urlLength` of the request target in characters (2048; longer: 414).
 */
const DEFAULT_LIMITS = Object.freeze({
  connections: 64,
  headersMs: 10_000,
  requestMs: 30_000,
  idleMs: 30_000,
  keepAliveMs: 5_000,
  urlLength: 2048,
});

// Every answer: no MIME sniffing (a data file is never run as a script or page), no framing, not readable by
// other sites' pages. HTML pages get a CSP that allows only this origin's scripts (the pages use inline styles
// and a data: icon); everything else, error pages included, may load nothing.
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
};
const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const NO_CONTENT_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox";

// Fixed texts: no answer ever contains the request's path, headers or any other input.
const MESSAGES = {
  400: 'bad request\n',
  403: 'forbidden: outside the served folders\n',
  404: 'not found\n',
  405: 'method not allowed: this server answers GET and HEAD only\n',
  408: 'request timeout\n',
  414: 'request target too long\n',
  421: 'misdirected request: this demo server answers to localhost, 127.0.0.1 and [::1] only\n',
  431: 'request headers too large\n',
  500: 'internal server error\n',
  503: 'too many connections, try again\n',
};
const NO_DATA = 'no data directory: start the server with --data-dir DIR (or set WPC_DATA_DIR)\n';

/** Fails like the library's argument checks: the function, the argument, what was expected and what was given. */
function argumentError(what, expected, actual) {
  return new TypeError(
    `startDemoServer: ${what} must be ${expected}, got ${typeof actual === 'string' ? JSON.stringify(actual) : String(actual)}`,
  );
}

/** Checks startDemoServer's options before anything is opened; returns the port and the merged limits. */
function checkOptions(options) {
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw argumentError('options', 'an object', options);
  const { port = 8080, dataDir, limits = {} } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw argumentError('options.port', 'an integer in [0, 65535]', port);
  if (dataDir !== undefined && (typeof dataDir !== 'string' || dataDir === '' || dataDir.includes('\0')))
    throw argumentError('options.dataDir', 'a non-empty path', dataDir);
  if (limits === null || typeof limits !== 'object' || Array.isArray(limits))
    throw argumentError('options.limits', 'an object', limits);
  for (const key of Object.keys(limits)) {
    if (!(key in DEFAULT_LIMITS))
      throw argumentError(
        `options.limits.${key}`,
        `one of ${Object.keys(DEFAULT_LIMITS).join(', ')} (unknown key)`,
        key,
      );
    const v = limits[key];
    if (!Number.isSafeInteger(v) || v < 1 || v > 2 ** 31 - 1)
      throw argumentError(`options.limits.${key}`, 'an integer in [1, 2^31 - 1]', v);
  }
  return { port, dataDir, limits: { ...DEFAULT_LIMITS, ...limits } };
}

/**
 * The data directory: the given one (which must be a directory), else $WPC_DATA_DIR, else the per-user cache
 * that `wpc data download` fills (when it holds mnist/), else ../shared/datasets beside the checkout.
 */
async function resolveDataDir(given) {
  if (given !== undefined) {
    if (!(await stat(given).catch(() => null))?.isDirectory())
      throw argumentError('options.dataDir', 'an existing directory', given);
    return resolve(given);
  }
  const cache = await userDataCache();
  const cacheHasMnist = cache !== null && (await stat(join(cache, 'mnist')).catch(() => null))?.isDirectory();
  for (const dir of [
    process.env.WPC_DATA_DIR,
    cacheHasMnist ? cache : undefined,
    join(ROOT, '..', 'shared', 'datasets'),
  ]) {
    if (dir && (await stat(dir).catch(() => null))?.isDirectory()) return resolve(dir);
  }
  return null;
}

/** The per-user dataset cache as the built package computes it, or null (no build, or no home directory). */
async function userDataCache() {
  try {
    const { dataCacheDirectory } = await import('../dist/node.js');
    return dataCacheDirectory();
  } catch {
    return null;
  }
}

/** True when `path` is `root` or below it (both absolute, symlink-free). */
function isInside(root, path) {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/**
 * Splits an origin-form request target ("/a/b?query") into decoded path segments. Each segment is decoded once
 * (so %252e stays the literal "%2e"), and the target is refused (400) when it is not origin-form, has an
 * invalid escape, an empty segment (//), a "." or ".." segment, or a slash, backslash or control character in a
 * segment, raw or encoded. Returns { segments, directory } or { status }.
 */
function parseTarget(target, maxLength) {
  if (target.length > maxLength) return { status: 414 };
  if (!target.startsWith('/')) return { status: 400 }; // absolute-form, authority-form or "*"
  const end = target.search(/[?#]/);
  const raw = (end < 0 ? target : target.slice(0, end)).slice(1);
  if (raw === '') return { segments: [], directory: true };
  const parts = raw.split('/');
  const directory = parts.at(-1) === '';
  if (directory) parts.pop();
  const segments = [];
  for (const part of parts) {
    let segment;
    try {
      segment = decodeURIComponent(part);
    } catch {
      return { status: 400 };
    }
    if (segment === '' || segment === '.' || segment === '..' || /[/\\\x00-\x1f\x7f]/.test(segment))
      return { status: 400 };
    segments.push(segment);
  }
  return { segments, directory };
}

/** The absolute path of an open file descriptor where the OS says it (Linux: /proc/self/fd), else null. */
async function openedPath(fd) {
  try {
    return (await readlink(`/proc/self/fd/${fd}`)).replace(/ \(deleted\)$/, '');
  } catch {
    return null;
  }
}

/**
 * Opens the file a request names below `root`, or says why not: { file, size, type } or { status }. The real path
 * (all symlinks resolved) must lie inside the root's real path and have no hidden (dot) component below it; the
 * file is then opened without following a final symlink and without blocking (a FIFO would), and what was
 * opened is checked — a regular file, and (where the OS can say) still inside the root — so a file swapped
 * between the check and the open is refused, never served. The caller owns (closes) `file`.
 */
async function openInside(root, segments, directory) {
  let rootReal;
  try {
    rootReal = await realpath(root);
  } catch {
    return { status: 404 };
  }
  let path = join(rootReal, ...segments);
  for (let hop = 0; hop < 2; hop++) {
    let real;
    try {
      real = await realpath(path);
    } catch (e) {
      return { status: e?.code === 'EACCES' || e?.code === 'EPERM' ? 403 : 404 };
    }
    if (!isInside(rootReal, real)) return { status: 403 };
    if (
      real
        .slice(rootReal.length)
        .split(sep)
        .some((part) => part.startsWith('.'))
    )
      return { status: 404 };
    let file;
    try {
      file = await open(
        real,
        constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | (constants.O_NOCTTY ?? 0),
      );
    } catch (e) {
      return { status: e?.code === 'EACCES' || e?.code === 'EPERM' ? 403 : 404 };
    }
    let verdict;
    try {
      const info = await file.stat();
      const where = await openedPath(file.fd);
      if (where !== null && !isInside(rootReal, where)) verdict = { status: 403 };
      else if (where === null && !(await sameFileInside(rootReal, real, info))) verdict = { status: 403 };
      else if (info.isDirectory() && hop === 0) verdict = { next: join(real, 'index.html') };
      else if (!info.isFile() || directory) verdict = { status: 404 };
      else return { file, size: info.size, type: TYPES[extname(real).toLowerCase()] ?? 'application/octet-stream' };
    } catch {
      verdict = { status: 500 };
    }
    await file.close().catch(() => {});
    if (!verdict.next) return verdict;
    path = verdict.next;
    directory = false;
  }
  return { status: 404 };
}

/** Where the OS cannot name an open file: its path, resolved again, is still inside and is the same file. */
async function sameFileInside(rootReal, real, info) {
  const again = await realpath(real).catch(() => null);
  if (again === null || !isInside(rootReal, again)) return false;
  const now = await stat(again).catch(() => null);
  return now !== null && now.dev === info.dev && now.ino === info.ino;
}

/**
 * Starts the server on 127.0.0.1; resolves to { url, dataDir, connections(), close() }. Options: `port` (8080;
 * 0 picks a free one), `dataDir` (served under /data/; default $WPC_DATA_DIR, else the per-user cache when it
 * holds mnist/, else ../shared/datasets when it exists, else none), `limits` (see DEFAULT_LIMITS). Bad options
 * reject with a TypeError naming the option.
 */
export async function startDemoServer(options = {}) {
  const { port, dataDir, limits } = checkOptions(options);
  const data = await resolveDataDir(dataDir);
  const mounts = [
    { segments: ['examples', 'browser'], root: join(ROOT, 'examples', 'browser') },
    { segments: ['dist'], root: join(ROOT, 'dist') },
    { segments: ['data'], root: data },
  ];
  let hosts = new Set();

  const server = createServer({
    headersTimeout: limits.headersMs,
    requestTimeout: Math.max(limits.requestMs, limits.headersMs),
    keepAliveTimeout: limits.keepAliveMs,
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(limits.headersMs / 4))),
    maxHeaderSize: 16 * 1024,
  });
  server.maxHeadersCount = 100;
  server.timeout = limits.idleMs; // an inactive socket is destroyed (there is no 'timeout' listener)

  // Connections: those without a request in progress, longest-waiting first, and the number of responses in
  // progress on each busy one.
  const waiting = new Set();
  const busy = new Map();
  const refused = new WeakSet();
  server.on('connection', (socket) => {
    if (waiting.size + busy.size >= limits.connections) {
      const oldest = waiting.values().next().value;
      if (oldest === undefined) {
        refused.add(socket);
        socket.end(
          'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n',
          () => socket.destroy(),
        );
        return;
      }
      waiting.delete(oldest);
      oldest.destroy();
    }
    waiting.add(socket);
    socket.once('close', () => {
      waiting.delete(socket);
      busy.delete(socket);
    });
  });

  function begin(socket) {
    waiting.delete(socket);
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
  }
  function finish(socket) {
    const n = (busy.get(socket) ?? 1) - 1;
    if (n > 0) return void busy.set(socket, n);
    busy.delete(socket);
    if (!socket.destroyed) waiting.add(socket); // re-inserted: now the most recent waiter
  }

  /** A fixed-text answer; `close` ends the connection (used when the request may have a body we won't read). */
  function answer(req, res, status, { text = MESSAGES[status], headers = {}, close = false } = {}) {
    if (res.headersSent) return void res.destroy();
    const body = Buffer.from(text, 'utf8');
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'content-security-policy': NO_CONTENT_CSP,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': body.length,
      'cache-control': 'no-store',
      ...(close ? { connection: 'close' } : {}),
      ...headers,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  async function handle(req, res) {
    // DNS rebinding: a browser sends the name it resolved; only the loopback names reach the files.
    const hostHeaders = req.rawHeaders.filter((_, i) => i % 2 === 0 && req.rawHeaders[i].toLowerCase() === 'host');
    if (hostHeaders.length !== 1) return answer(req, res, 400, { close: true });
    if (!hosts.has((req.headers.host ?? '').toLowerCase())) return answer(req, res, 421, { close: true });
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return answer(req, res, 405, { headers: { allow: 'GET, HEAD' }, close: true });

    const target = parseTarget(req.url ?? '', limits.urlLength);
    if (target.status) return answer(req, res, target.status, { close: true });
    const { segments, directory } = target;
    if (
      segments.length === 0 ||
      (segments.length === 2 && segments[0] === 'examples' && segments[1] === 'browser' && !directory)
    ) {
      res.writeHead(302, {
        ...SECURITY_HEADERS,
        location: '/examples/browser/',
        'content-length': 0,
        'cache-control': 'no-store',
      });
      return void res.end();
    }
    const mount = mounts.find(
      (m) => m.segments.every((s, i) => segments[i] === s) && (segments.length > m.segments.length || directory),
    );
    if (!mount) return answer(req, res, 404);
    if (mount.root === null) return answer(req, res, 404, { text: NO_DATA });
    if (segments.some((s) => s.startsWith('.'))) return answer(req, res, 404);

    const found = await openInside(mount.root, segments.slice(mount.segments.length), directory);
    if (found.status) return answer(req, res, found.status);
    const { file, size, type } = found;
    try {
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        ...(type.startsWith('text/html') ? { 'content-security-policy': PAGE_CSP } : {}),
        'content-type': type,
        'content-length': size,
        'cache-control': 'no-cache',
      });
      if (req.method === 'HEAD' || size === 0) {
        await file.close();
        return void res.end();
      }
    } catch (e) {
      await file.close().catch(() => {});
      throw e;
    }
    // Exactly the bytes fstat counted; a read error or a file that shrank ends the connection (the client sees a
    // short body, never a wrong one), and the stream closes the descriptor in every case.
    const stream = file.createReadStream({ start: 0, end: size - 1 });
    pipeline(stream, res, (err) => {
      if (err || stream.bytesRead !== size) res.destroy();
    });
  }

  server.on('request', (req, res) => {
    const socket = req.socket;
    if (refused.has(socket)) return void res.destroy();
    begin(socket);
    res.once('close', () => finish(socket));
    handle(req, res).catch(() => answer(req, res, 500));
  });
  // Requests Node's parser refuses (bad request line, headers too large, too slow): the same fixed answers.
  server.on('clientError', (err, socket) => {
    const status = err?.code === 'HPE_HEADER_OVERFLOW' ? 431 : err?.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    if (!socket.writable || err?.code === 'ECONNRESET' || socket._httpMessage?.headersSent)
      return void socket.destroy();
    const body = MESSAGES[status] ?? `${STATUS_CODES[status]}\n`;
    const head = [
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}`,
      'connection: close',
      'content-type: text/plain; charset=utf-8',
      `content-length: ${Buffer.byteLength(body)}`,
    ];
    for (const [k, v] of Object.entries({ ...SECURITY_HEADERS, 'content-security-policy': NO_CONTENT_CSP }))
      head.push(`${k}: ${v}`);
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
  });
  // CONNECT never reaches 'request'; without this listener Node would drop the connection without an answer.
  server.on('connect', (_req, socket) => {
    socket.on('error', () => {});
    socket.end('HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', fail);
      ok();
    });
  });
  server.on('error', () => {}); // after listening, errors belong to single connections
  const actual = server.address().port;
  hosts = new Set(['localhost', '127.0.0.1', '[::1]'].flatMap((h) => [h, `${h}:${actual}`]));
  return {
    url: `http://localhost:${actual}/examples/browser/`,
    dataDir: data,
    /** Open connections now, and how many of them have a response in progress. */
    connections: () => ({ open: waiting.size + busy.size, busy: busy.size }),
    close: () =>
      new Promise((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
        for (const socket of [...waiting, ...busy.keys()]) socket.destroy();
      }),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // Mistakes in the command line exit 2, a server that cannot start exits 1; both with one line, no stack.
  let port;
  let dataDir;
  try {
    const { values } = parseArgs({
      options: { port: { type: 'string' }, 'data-dir': { type: 'string' } },
      strict: true,
      allowPositionals: false,
    });
    port = values.port === undefined ? 8080 : /^\d{1,5}$/.test(values.port) ? Number(values.port) : NaN;
    if (!Number.isInteger(port) || port > 65535)
      throw new Error(`--port must be a port number in [0, 65535], got ${JSON.stringify(values.port)}`);
    dataDir = values['data-dir'];
    if (dataDir !== undefined && !(await stat(dataDir).catch(() => null))?.isDirectory())
      throw new Error(`--data-dir must be an existing directory, got ${JSON.stringify(dataDir)}`);
  } catch (e) {
    console.error(
      `demo-server: ${String(e?.message ?? e).replace(/\s*\n\s*/g, ' ')} (usage: node scripts/demo-server.mjs [--port 8080] [--data-dir DIR])`,
    );
    process.exit(2);
  }
  try {
    const { url, dataDir: served } = await startDemoServer({ port, dataDir });
    console.log(`WPC demo: ${url}`);
    console.log(
      served
        ? `MNIST served from ${served}/mnist/ (or pick your own files in the page)`
        : 'no data directory found: pick the MNIST files in the page, or restart with --data-dir DIR',
    );
    console.log(`Embedding example: ${url}embedding.html`);
  } catch (e) {
    const why =
      e?.code === 'EADDRINUSE'
        ? `port ${port} is in use; pick another with --port`
        : e?.code === 'EACCES'
          ? `not allowed to listen on port ${port}; pick another with --port`
          : (e?.message ?? String(e));
    console.error(`demo-server: ${String(why).replace(/\s*\n\s*/g, ' ')}`);
    process.exit(1);
  }
}
