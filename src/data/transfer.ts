/**
 * One attempt at one dataset file over HTTP(S), for `downloadDataset` (./download.ts): a GET that follows
 * redirects, a stall timer, the body streamed into a file handle while its SHA-256 (and MD5, where the genuine
 * file's is known) is computed, cut off at the
 * first byte past the genuine file's size, and the result checked. What went wrong is sorted for the caller: the
 * mirror's fault (AttemptFailure, with whether a retry may help), the local disk's (LocalFailure), or the
 * caller's progress callback (its exception, passed through as it was).
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { printable } from '../runtime/errors.js';
import type { KnownFile } from './files.js';

/** Most redirects followed for one request. */
const MAX_REDIRECTS = 5;

/** What a transfer needs of the download's settings. */
export interface TransferSettings {
  /** A transfer that receives no byte for this many ms is abandoned as stalled. */
  stallTimeoutMs: number;
  signal: AbortSignal | undefined;
}

/** A failed attempt at one URL; `retry` when asking the same mirror again may succeed. */
export class AttemptFailure extends Error {
  constructor(
    readonly reason: string,
    readonly retry: boolean,
  ) {
    super(reason);
  }
}

/** A failure of this machine's file system while writing: no mirror can help. */
export class LocalFailure extends Error {
  constructor(override readonly cause: unknown) {
    super('local write failure');
  }
}

/** An exception from the caller's progress callback, passed through the transfer untouched. */
class CallbackFailure extends Error {
  constructor(override readonly cause: unknown) {
    super('progress callback failure');
  }
}

/** `e`'s code and message, printable, for a message. */
export function systemReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const message = printable(String(err?.message ?? e)).slice(0, 300);
  return err?.code && !message.includes(err.code) ? `${err.code}: ${message}` : message;
}

/**
 * Whether a network error may go away when asked again (a dropped or refused connection) or not (no such host, a
 * bad certificate).
 */
function transientNetworkError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code ?? '';
  if (
    code === 'ENOTFOUND' ||
    code.startsWith('ERR_TLS_') ||
    code.startsWith('CERT_') ||
    code.includes('CERT') ||
    code === 'ERR_INVALID_URL'
  )
    return false;
  return true;
}

/** An HTTP status line for a message: code and (server-chosen, so escaped and cut) reason phrase. */
function statusText(res: IncomingMessage): string {
  const phrase = printable(res.statusMessage ?? '').slice(0, 100);
  return `HTTP ${res.statusCode}${phrase ? ` ${phrase}` : ''}`;
}

/**
 * One attempt: GET `url` (following redirects), stream the body into `handle` while hashing it, and check the
 * result. Throws AttemptFailure for anything the mirror did wrong, LocalFailure when the write fails, the
 * signal's reason when aborted.
 */
export async function transfer(
  url: string,
  handle: FileHandle,
  known: KnownFile,
  s: TransferSettings,
  onChunk: (received: number) => void,
): Promise<void> {
  let request: ClientRequest | undefined;
  let stalled = false;
  let received = 0;
  let timer: NodeJS.Timeout | undefined;
  const armStallTimer = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      request?.destroy(new Error('stalled'));
    }, s.stallTimeoutMs);
  };
  const onAbort = () => request?.destroy(new Error('aborted'));
  s.signal?.addEventListener('abort', onAbort, { once: true });
  const failed = (e: unknown): AttemptFailure => {
    if (e instanceof AttemptFailure) return e;
    const at = received > 0 || stalled ? ` after ${received} of ${known.bytes} bytes` : '';
    if (stalled) return new AttemptFailure(`stalled: no data for ${s.stallTimeoutMs} ms${at}`, true);
    const code = (e as NodeJS.ErrnoException)?.code ?? '';
    if (code.startsWith('HPE_')) return new AttemptFailure(`not a valid HTTP answer (${systemReason(e)})`, false);
    if (received > 0)
      return new AttemptFailure(`truncated at ${received} of ${known.bytes} bytes (${systemReason(e)})`, true);
    return new AttemptFailure(`connection failed (${systemReason(e)})`, transientNetworkError(e));
  };
  try {
    armStallTimer();
    let current = url;
    let response: IncomingMessage | undefined;
    for (let hop = 0; response === undefined; hop++) {
      s.signal?.throwIfAborted();
      const started = get(current);
      request = started.request;
      const res = await started.response;
      armStallTimer();
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && status !== 304 && res.headers.location !== undefined) {
        res.destroy();
        if (hop >= MAX_REDIRECTS) throw new AttemptFailure(`more than ${MAX_REDIRECTS} redirects`, false);
        let next: URL;
        try {
          next = new URL(res.headers.location, current);
        } catch {
          throw new AttemptFailure(
            `${statusText(res)} redirects to an invalid URL "${printable(res.headers.location).slice(0, 200)}"`,
            false,
          );
        }
        if (next.protocol !== 'http:' && next.protocol !== 'https:') {
          throw new AttemptFailure(
            `${statusText(res)} redirects to a ${printable(next.protocol)} URL, not http or https`,
            false,
          );
        }
        current = next.href;
        continue;
      }
      if (status !== 200) {
        res.destroy();
        throw new AttemptFailure(statusText(res), status === 408 || status === 429 || status >= 500);
      }
      response = res;
    }
    const announced = response.headers['content-length'];
    if (announced !== undefined && /^\d+$/.test(announced) && Number(announced) !== known.bytes) {
      response.destroy();
      const more = Number(announced) > known.bytes;
      throw new AttemptFailure(
        `the server announces ${announced} bytes, ${more ? 'more' : 'fewer'} than the genuine file's ${known.bytes}`,
        false,
      );
    }
    const hash = createHash('sha256');
    const md5 = known.md5 === undefined ? null : createHash('md5');
    for await (const chunk of response as AsyncIterable<Buffer>) {
      if (received + chunk.length > known.bytes) {
        response.destroy();
        throw new AttemptFailure(
          `the body is longer than the genuine file's ${known.bytes} bytes (refused at byte ${known.bytes + 1})`,
          false,
        );
      }
      hash.update(chunk);
      md5?.update(chunk);
      try {
        await handle.write(chunk);
      } catch (e) {
        response.destroy();
        throw new LocalFailure(e);
      }
      received += chunk.length;
      armStallTimer();
      try {
        onChunk(received);
      } catch (e) {
        response.destroy();
        throw new CallbackFailure(e);
      }
    }
    if (received < known.bytes)
      throw new AttemptFailure(`truncated at ${received} of ${known.bytes} bytes (the connection ended early)`, true);
    const gotMd5 = md5?.digest('hex');
    if (gotMd5 !== known.md5)
      throw new AttemptFailure(`checksum mismatch: expected md5 ${known.md5}, got ${gotMd5}`, false);
    const got = hash.digest('hex');
    if (got !== known.sha256)
      throw new AttemptFailure(`checksum mismatch: expected sha256 ${known.sha256}, got ${got}`, false);
  } catch (e) {
    if (s.signal?.aborted) throw s.signal.reason;
    if (e instanceof LocalFailure) throw e;
    if (e instanceof CallbackFailure) throw e.cause;
    throw failed(e);
  } finally {
    clearTimeout(timer);
    s.signal?.removeEventListener('abort', onAbort);
    request?.destroy();
  }
}

/** A GET of `url` that never decodes the body (a `.gz` file is the data itself) and keeps no connection open. */
function get(url: string): { request: ClientRequest; response: Promise<IncomingMessage> } {
  const target = new URL(url);
  const options: RequestOptions = {
    method: 'GET',
    headers: { 'user-agent': 'wpc-dataset-download', 'accept-encoding': 'identity', accept: '*/*' },
    agent: false,
  };
  let request!: ClientRequest;
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    request = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, options, resolve);
    request.on('error', reject);
    request.end();
  });
  return { request, response };
}
