// `npm run demo`: serves the browser demo on http://localhost (WebGPU needs a secure context, and localhost is
// one) with the built library (dist/) and the MNIST files of a data directory (/data/…).
//   node scripts/demo-server.mjs [--port 8080] [--data-dir DIR]
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.map': 'application/json', '.css': 'text/css', '.png': 'image/png', '.svg': 'image/svg+xml', '.gz': 'application/gzip' };

/** The data directory: the given one, else $WPC_DATA_DIR, else ../shared/datasets when it exists. */
async function resolveDataDir(given) {
  for (const dir of [given, process.env.WPC_DATA_DIR, join(ROOT, '..', 'shared', 'datasets')]) {
    if (dir && (await stat(dir).catch(() => null))?.isDirectory()) return resolve(dir);
  }
  return null;
}

/**
 * Starts the server; resolves to { url, close() }. Only three trees are served: examples/browser/ (the page),
 * dist/ (the library) and the data directory under /data/ — nothing else in the checkout.
 */
export async function startDemoServer({ port = 8080, dataDir } = {}) {
  const data = await resolveDataDir(dataDir);
  const mounts = [
    ['/examples/browser/', join(ROOT, 'examples', 'browser')],
    ['/dist/', join(ROOT, 'dist')],
    ...(data ? [['/data/', data]] : []),
  ];
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    if (path === '/' || path === '/examples/browser') {
      res.writeHead(302, { location: '/examples/browser/' });
      res.end();
      return;
    }
    const mount = mounts.find(([prefix]) => path.startsWith(prefix));
    let file = null;
    if (mount) {
      const rel = normalize(path.slice(mount[0].length) || 'index.html');
      const full = join(mount[1], rel);
      if (full === mount[1] || full.startsWith(mount[1] + sep)) file = full; // no escaping the mount with ../
    }
    const info = file ? await stat(file).catch(() => null) : null;
    if (info?.isDirectory()) {
      file = join(file, 'index.html');
    }
    const found = file ? await stat(file).catch(() => null) : null;
    if (!found?.isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(path.startsWith('/data/') && !data ? 'no data directory: start the server with --data-dir DIR (or set WPC_DATA_DIR)\n' : `not found: ${path}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': found.size, 'cache-control': 'no-cache' });
    createReadStream(file).pipe(res);
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', ok);
  });
  const actual = server.address().port;
  return { url: `http://localhost:${actual}/examples/browser/`, dataDir: data, close: () => new Promise((ok) => server.close(() => ok())) };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { port: { type: 'string' }, 'data-dir': { type: 'string' } } });
  const port = values.port === undefined ? 8080 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a port number, got ${values.port}`);
  const { url, dataDir } = await startDemoServer({ port, dataDir: values['data-dir'] });
  console.log(`WPC demo: ${url}`);
  console.log(dataDir ? `MNIST served from ${dataDir}/mnist/ (or pick your own files in the page)` : 'no data directory found: pick the MNIST files in the page, or restart with --data-dir DIR');
  console.log('Embedding example: ' + url + 'embedding.html');
}
