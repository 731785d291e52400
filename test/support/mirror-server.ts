/**
 * A local stand-in for the datasets' public mirrors (node:http on 127.0.0.1, a free port): serves the genuine
 * files from ../shared/datasets (or files a test generates) under /<mirror>/<file>, each mirror misbehaving as a
 * test asks, and counts the requests. Every misbehaviour is unconditional (a stall never ends), so no test depends on timing.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DATA_DIR = process.env.WPC_DATA_DIR ?? fileURLToPath(new URL('../../../shared/datasets', import.meta.url));

/** How a mirror answers a request for a file. */
export type Behaviour =
  | 'good'
  | 'missing' // 404
  | 'error' // 500, every time
  | 'corrupt' // the right size, one byte flipped
  | 'truncate' // Content-Length of the whole file, half of it sent, then the connection closed
  | 'stall-headers' // no answer at all, the connection kept open
  | 'stall-body' // headers and the first bytes, then nothing, the connection kept open
  | 'longer' // no Content-Length, the file and one more byte
  | 'longer-announced' // Content-Length one more than the file
  | { redirect: string }; // 302 to /<mirror>/<same file>

const cache = new Map<string, Buffer>();
/** The genuine bytes of `dataset/file`. */
export function genuine(dataset: string, file: string): Buffer {
  const key = `${dataset}/${file}`;
  let bytes = cache.get(key);
  if (!bytes) {
    bytes = readFileSync(join(DATA_DIR, dataset, file));
    cache.set(key, bytes);
  }
  return bytes;
}

export interface Mirrors {
  /** Base URL of mirror `name` (ending in '/'). */
  url(name: string): string;
  /** What mirror `name` does for each file (default: every file good). */
  set(name: string, behaviour: (file: string) => Behaviour): void;
  /** Requests so far, as "mirror/file". */
  readonly requests: string[];
  count(mirror: string, file?: string): number;
  close(): Promise<void>;
}

/**
 * Starts the server; `dataset` is the folder of ../shared/datasets whose files it serves, unless `files` gives
 * each file's bytes (undefined: 404).
 */
export async function startMirrors(
  dataset = 'mnist',
  files?: (file: string) => Uint8Array | undefined,
): Promise<Mirrors> {
  const behaviours = new Map<string, (file: string) => Behaviour>();
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const m = /^\/([a-z0-9-]+)\/([a-z0-9.-]+)$/.exec(req.url ?? '');
    if (!m) {
      res.writeHead(400).end();
      return;
    }
    const [, mirror, file] = m as unknown as [string, string, string];
    requests.push(`${mirror}/${file}`);
    let body: Buffer;
    try {
      const given = files?.(file);
      if (files !== undefined && given === undefined) throw new Error('no such file');
      body = given === undefined ? genuine(dataset, file) : Buffer.from(given);
    } catch {
      res.writeHead(404, 'Not Found').end();
      return;
    }
    const behaviour = (behaviours.get(mirror) ?? (() => 'good'))(file);
    if (typeof behaviour === 'object') {
      res.writeHead(302, { location: `/${behaviour.redirect}/${file}`, 'content-length': 0 }).end();
      return;
    }
    switch (behaviour) {
      case 'good':
        res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' }).end(body);
        return;
      case 'missing':
        res.writeHead(404, 'Not Found', { 'content-length': 0 }).end();
        return;
      case 'error':
        res.writeHead(500, 'Internal Server Error', { 'content-length': 0 }).end();
        return;
      case 'corrupt': {
        const bad = Buffer.from(body);
        bad[bad.length >> 1]! ^= 0x01;
        res.writeHead(200, { 'content-length': bad.length }).end(bad);
        return;
      }
      case 'truncate':
        res.writeHead(200, { 'content-length': body.length });
        res.write(body.subarray(0, body.length >> 1), () => res.socket?.destroy());
        return;
      case 'stall-headers':
        return; // never answered; the client gives up
      case 'stall-body':
        res.writeHead(200, { 'content-length': body.length });
        res.write(body.subarray(0, 1000));
        return;
      case 'longer':
        res.writeHead(200); // chunked: no length announced
        res.write(body);
        res.end(Buffer.from([0]));
        return;
      case 'longer-announced':
        res.writeHead(200, { 'content-length': body.length + 1 });
        res.end(Buffer.concat([body, Buffer.from([0])]));
        return;
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: (name) => `http://127.0.0.1:${port}/${name}/`,
    set: (name, behaviour) => void behaviours.set(name, behaviour),
    requests,
    count: (mirror, file) =>
      requests.filter((r) => r === `${mirror}/${file}` || (file === undefined && r.startsWith(`${mirror}/`))).length,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A raw TCP server that answers every connection with `response` (bytes an HTTP server would never send). */
export async function startRawServer(response: string): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', () => socket.end(Buffer.from(response, 'latin1')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/raw/`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
