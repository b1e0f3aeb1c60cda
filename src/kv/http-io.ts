/**
 * The HTTP plumbing under the KV API (see http-api.ts): strict decoding of what arrives (percent-
 * encoded keys and query parameters, the request body under the value size cap) and encoding of
 * what leaves (values as UTF-8 text or base64, JSON bodies and JSON error objects).
 *
 * Decoding is strict on purpose: a key may hold any byte, so a malformed escape must be an error
 * rather than be guessed at, and decoding failures surface as HttpError, which the API answers as
 * `{"error":{"code","message"}}` with the error's status.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { VALUE_BYTES_MAX } from './commands.js';

/** After a 413, the rest of the body is read and discarded up to this many bytes... */
export const DRAIN_BYTES_MAX = 4 * 1024 * 1024;
/** ...or for this long, then the connection is closed. */
export const DRAIN_MS = 2_000;

/** A request the API refuses: answered as a JSON error object with this status, code and headers. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const textEncoder = new TextEncoder();

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** Strict percent-decoding to bytes; `plusIsSpace` for query components. Throws HttpError 400. */
export function percentDecode(s: string, what: string, plusIsSpace: boolean): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      const hi = i + 2 < s.length ? hexValue(s.charCodeAt(i + 1)) : -1;
      const lo = i + 2 < s.length ? hexValue(s.charCodeAt(i + 2)) : -1;
      if (hi < 0 || lo < 0) {
        throw new HttpError(400, 'malformed-percent-encoding', `${what}: "%" at position ${i} is not followed by two hex digits`);
      }
      out.push(hi * 16 + lo);
      i += 2;
    } else if (c === 0x2b && plusIsSpace) {
      out.push(0x20);
    } else if (c < 0x80) {
      out.push(c);
    } else {
      // node:http refuses raw non-ASCII bytes in the request target; be safe anyway.
      for (const b of textEncoder.encode(s[i]!)) out.push(b);
    }
  }
  return Uint8Array.from(out);
}

function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    throw new HttpError(400, 'bad-parameter', `${what} is not valid UTF-8`);
  }
}

/** Query parameters, decoded strictly; a name may appear once. */
export function parseQuery(raw: string): Map<string, Uint8Array> {
  const params = new Map<string, Uint8Array>();
  if (raw === '') return params;
  for (const part of raw.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawName = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? '' : part.slice(eq + 1);
    const name = decodeUtf8(percentDecode(rawName, 'query parameter name', true), 'query parameter name');
    if (params.has(name)) throw new HttpError(400, 'bad-parameter', `query parameter "${name}" appears more than once`);
    params.set(name, percentDecode(rawValue, `query parameter "${name}"`, true));
  }
  return params;
}

/** A query parameter as text (undefined when absent). Throws HttpError 400 when it is not UTF-8. */
export function textParam(params: Map<string, Uint8Array>, name: string): string | undefined {
  const bytes = params.get(name);
  return bytes === undefined ? undefined : decodeUtf8(bytes, `query parameter "${name}"`);
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A value as JSON: UTF-8 text when it is valid UTF-8 (and base64 is not forced), else base64. */
export function jsonValue(bytes: Uint8Array | null, forceBase64: boolean): { value: string | null; encoding: 'utf8' | 'base64' } {
  if (bytes === null) return { value: null, encoding: forceBase64 ? 'base64' : 'utf8' };
  if (!forceBase64) {
    try {
      return { value: utf8Strict.decode(bytes), encoding: 'utf8' };
    } catch {
      // not UTF-8: fall through to base64
    }
  }
  return { value: toBuffer(bytes).toString('base64'), encoding: 'base64' };
}

/** Answers with a JSON body; does nothing once an answer went out (or the client went away). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed || res.writableEnded) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** Answers `{"error":{"code","message",...extra}}`. */
export function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, { error: { code, message, ...extra } }, headers);
}

/**
 * Reads the body up to VALUE_BYTES_MAX. Past the limit it answers 413 at once and returns null;
 * also null (with no answer possible) if the client went away.
 */
export function readBody(req: IncomingMessage, res: ServerResponse): Promise<Uint8Array | null> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > VALUE_BYTES_MAX) {
    answerTooLarge(req, res, `the body is ${declared} bytes; values are 0..${VALUE_BYTES_MAX} bytes`);
    return Promise.resolve(null);
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let done = false;
    const finish = (value: Uint8Array | null): void => {
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      resolve(value);
    };
    const onData = (chunk: Buffer): void => {
      if (done) return;
      total += chunk.length;
      if (total > VALUE_BYTES_MAX) {
        chunks.length = 0;
        finish(null);
        answerTooLarge(req, res, `the body passed ${VALUE_BYTES_MAX} bytes; values are 0..${VALUE_BYTES_MAX} bytes`);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      if (done) return;
      const body = new Uint8Array(total);
      let at = 0;
      for (const chunk of chunks) {
        body.set(chunk, at);
        at += chunk.length;
      }
      finish(body);
    };
    const onClose = (): void => {
      if (!done && !req.complete) finish(null);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
  });
}

/** Answers 413, then discards the rest of the body (bounded), closing the connection past the bounds. */
function answerTooLarge(req: IncomingMessage, res: ServerResponse, message: string): void {
  if (!req.complete) {
    // Flowing before the answer goes out, so node:http leaves the draining to us (it would
    // otherwise dump the body without a byte bound).
    const socket = req.socket;
    let drained = 0;
    const timer = setTimeout(() => socket.destroy(), DRAIN_MS);
    timer.unref();
    req.on('data', (chunk: Buffer) => {
      drained += chunk.length;
      if (drained > DRAIN_BYTES_MAX) {
        clearTimeout(timer);
        socket.destroy();
      }
    });
    req.on('end', () => clearTimeout(timer));
    req.on('close', () => clearTimeout(timer));
    req.resume();
  }
  sendError(res, 413, 'value-too-large', message);
}

/**
 * node:http's `clientError` handler: a request the HTTP parser rejected (headers too large,
 * malformed, timed out) still gets a JSON error, written straight to the socket since there is no
 * ServerResponse; the connection is then closed. Sockets already gone are just destroyed.
 */
export function answerMalformedRequest(error: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable || (error.code !== undefined && ['ECONNRESET', 'EPIPE'].includes(error.code))) {
    socket.destroy();
    return;
  }
  const [status, text] =
    error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout'] : [400, 'Bad Request'];
  const body = JSON.stringify({
    error: { code: status === 431 ? 'headers-too-large' : status === 408 ? 'request-timeout' : 'bad-request', message: `malformed HTTP request (${error.code ?? error.message})` },
  });
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
