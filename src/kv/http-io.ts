/**
 * The HTTP plumbing under the KV API (see http-api.ts): strict decoding of what arrives (percent-
 * encoded keys and query parameters, the request body under the value size cap and the global
 * body budget) and encoding of what leaves (values as UTF-8 text or base64, JSON bodies and JSON
 * error objects); plus the figures that bound the server's resources (HttpStats) and the
 * process's open-file limit they are derived from.
 *
 * Decoding is strict on purpose: a key may hold any byte, so a malformed escape must be an error
 * rather than be guessed at, and decoding failures surface as HttpError, which the API answers as
 * `{"error":{"code","message"}}` with the error's status.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { VALUE_BYTES_MAX } from './commands.js';

/**
 * After an answer that went out before the body was read (a 413, a redirect, any error), the rest
 * of the body is read and discarded up to this many bytes...
 */
export const DRAIN_BYTES_MAX = 4 * 1024 * 1024;
/** ...or for this long, then the connection is closed. */
export const DRAIN_MS = 2_000;

/** Why a connection or request was refused, as counted in tsraft_http_rejected_total{reason}. */
export type RejectReason = 'connection-limit' | 'body-budget' | 'body-too-large' | 'timeout' | 'malformed';
const REJECT_REASONS: readonly RejectReason[] = ['connection-limit', 'body-budget', 'body-too-large', 'timeout', 'malformed'];

/**
 * One HTTP server's bounded resources and how much of them is in use: open connections against the
 * connection cap, bytes buffered for unfinished request bodies against the body budget, and what
 * was refused. Read by /metrics and by tests.
 */
export class HttpStats {
  /** Open HTTP connections. */
  connections = 0;
  /** Bytes held for request bodies that have not finished arriving. */
  bodyBytesBuffered = 0;
  /** The highest bodyBytesBuffered seen. */
  bodyBytesBufferedPeak = 0;
  /** TLS handshakes that failed (HTTPS only): a client that does not trust this node's certificate, plaintext on the TLS port, a scanner. */
  tlsRefused = 0;
  private readonly rejectedCounts = new Map<RejectReason, number>(REJECT_REASONS.map((reason) => [reason, 0]));

  constructor(
    /** The connection cap in force (after the file-descriptor rule, see connectionCap). */
    readonly maxConnections: number,
    /** The body budget in bytes. */
    readonly bodyBudgetBytes: number,
    /** The process's open-file limit the cap was derived from (undefined: unknown). */
    readonly openFileLimit: number | undefined,
  ) {}

  /** Takes `bytes` from the body budget; false, taking nothing, when they do not fit. */
  tryBuffer(bytes: number): boolean {
    if (this.bodyBytesBuffered + bytes > this.bodyBudgetBytes) return false;
    this.bodyBytesBuffered += bytes;
    if (this.bodyBytesBuffered > this.bodyBytesBufferedPeak) this.bodyBytesBufferedPeak = this.bodyBytesBuffered;
    return true;
  }

  /** Gives `bytes` back to the body budget. */
  release(bytes: number): void {
    this.bodyBytesBuffered -= bytes;
  }

  reject(reason: RejectReason): void {
    this.rejectedCounts.set(reason, (this.rejectedCounts.get(reason) ?? 0) + 1);
  }

  /** Connections or requests refused for `reason` so far. */
  rejected(reason: RejectReason): number {
    return this.rejectedCounts.get(reason) ?? 0;
  }

  /** The figures in Prometheus text format. */
  render(): string {
    const gauge = (name: string, help: string, value: number): string => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${value}\n`;
    let out = '';
    out += gauge('tsraft_http_connections', 'Open HTTP API connections.', this.connections);
    out += gauge('tsraft_http_connections_max', 'The HTTP connection cap in force; connections past it are closed at once.', this.maxConnections);
    out += gauge('tsraft_http_body_bytes_buffered', 'Bytes held for HTTP request bodies that have not finished arriving.', this.bodyBytesBuffered);
    out += gauge('tsraft_http_body_budget_bytes', 'The budget for bytes of unfinished request bodies across all requests; past it a request is answered 503.', this.bodyBudgetBytes);
    if (this.openFileLimit !== undefined && Number.isFinite(this.openFileLimit)) {
      out += gauge('tsraft_process_open_files_limit', 'The process\'s open-file (descriptor) soft limit the connection cap was derived from.', this.openFileLimit);
    }
    out += '# HELP tsraft_http_rejected_total HTTP connections and requests refused, by reason.\n# TYPE tsraft_http_rejected_total counter\n';
    for (const [reason, count] of this.rejectedCounts) out += `tsraft_http_rejected_total{reason="${reason}"} ${count}\n`;
    out += '# HELP tsraft_http_tls_refused_total HTTPS connections whose TLS handshake failed (always 0 without HTTPS).\n# TYPE tsraft_http_tls_refused_total counter\n';
    out += `tsraft_http_tls_refused_total ${this.tlsRefused}\n`;
    return out;
  }
}

/** Descriptors never given to HTTP connections: the WAL, snapshots, peer connections and the rest. */
export const FD_RESERVED_MIN = 256;
/** The connection cap never goes below this, however low the open-file limit. */
export const HTTP_CONNECTIONS_MIN = 16;
/** The open-file limit assumed when the platform does not tell it. */
export const ASSUMED_OPEN_FILE_LIMIT = 1024;

/**
 * The connection cap for a requested one, given the process's open-file limit: HTTP connections
 * may take at most half of the limit and never the last FD_RESERVED_MIN descriptors (but at least
 * HTTP_CONNECTIONS_MIN connections are allowed), so that a flood of clients cannot leave the WAL,
 * snapshots or peer connections without a descriptor.
 */
export function connectionCap(requested: number, openFileLimit: number): number {
  if (!Number.isFinite(openFileLimit)) return requested;
  const ceiling = Math.max(HTTP_CONNECTIONS_MIN, Math.min(Math.floor(openFileLimit / 2), openFileLimit - FD_RESERVED_MIN));
  return Math.min(requested, ceiling);
}

function parseLimit(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (text === 'unlimited') return Infinity;
  return /^\d+$/.test(text) && Number(text) > 0 ? Number(text) : undefined;
}

/**
 * The process's soft limit on open files (Infinity when unlimited): "Max open files" in
 * /proc/self/limits on Linux, else `ulimit -n` from /bin/sh (a child inherits the limit); undefined
 * when neither tells (e.g. Windows).
 */
export function openFileLimit(): number | undefined {
  try {
    const limit = parseLimit(/^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1]);
    if (limit !== undefined) return limit;
  } catch {
    // not Linux: try the shell
  }
  if (process.platform === 'win32') return undefined;
  try {
    const run = spawnSync('/bin/sh', ['-c', 'ulimit -n'], { encoding: 'utf8', timeout: 2_000 });
    return run.status === 0 ? parseLimit(run.stdout.trim()) : undefined;
  } catch {
    return undefined;
  }
}

/** A request the API refuses: answered as a JSON error object with this status, code and headers. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    /** More fields of the error object (e.g. `field`). */
    readonly extra: Record<string, unknown> = {},
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

/** True for a request that waits for `100 Continue` before it sends its body. */
export function expectsContinue(req: IncomingMessage): boolean {
  return /^100-continue$/i.test(req.headers.expect ?? '');
}

/** True when the request has a body (Content-Length above 0, or chunked). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Reads the body up to VALUE_BYTES_MAX, holding its bytes against the server's body budget while it
 * arrives (and releasing them once it has arrived or failed). Past VALUE_BYTES_MAX it answers 413;
 * past the budget, 503 `body-budget-exceeded` and the connection is closed; either one as soon as
 * Content-Length says so, before any of the body is read. Returns null then, and also (with no
 * answer possible) if the client went away. A client that sent `Expect: 100-continue` gets its
 * `100 Continue` here, once the body is wanted.
 */
export function readBody(req: IncomingMessage, res: ServerResponse, stats: HttpStats): Promise<Uint8Array | null> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > VALUE_BYTES_MAX) {
    stats.reject('body-too-large');
    sendError(res, 413, 'value-too-large', `the body is ${declared} bytes; values are 0..${VALUE_BYTES_MAX} bytes`);
    return Promise.resolve(null);
  }
  if (declared !== undefined && Number(declared) > stats.bodyBudgetBytes - stats.bodyBytesBuffered) {
    answerOverBudget(req, res, stats);
    return Promise.resolve(null);
  }
  if (expectsContinue(req) && !res.headersSent) {
    res.removeHeader('Connection');
    res.writeContinue();
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let done = false;
    const finish = (value: Uint8Array | null): void => {
      done = true;
      stats.release(total);
      chunks.length = 0;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      resolve(value);
    };
    const onData = (chunk: Buffer): void => {
      if (done) return;
      if (total + chunk.length > VALUE_BYTES_MAX) {
        finish(null);
        stats.reject('body-too-large');
        sendError(res, 413, 'value-too-large', `the body passed ${VALUE_BYTES_MAX} bytes; values are 0..${VALUE_BYTES_MAX} bytes`);
        return;
      }
      if (!stats.tryBuffer(chunk.length)) {
        finish(null);
        answerOverBudget(req, res, stats);
        return;
      }
      total += chunk.length;
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

/**
 * 503 for a body that does not fit the budget, then the connection is closed: a lingering close
 * (our side is shut once the answer is out, the rest of the body discarded within the drain bounds,
 * then the socket destroyed), so that a client still sending is not reset before it reads the 503.
 */
function answerOverBudget(req: IncomingMessage, res: ServerResponse, stats: HttpStats): void {
  stats.reject('body-budget');
  closing.add(req.socket);
  discardUnreadBody(req);
  res.once('finish', () => req.socket.end());
  sendError(
    res,
    503,
    'body-budget-exceeded',
    `the server already holds ${stats.bodyBytesBuffered} bytes of unfinished request bodies (budget ${stats.bodyBudgetBytes}); retry later`,
    {},
    { 'Retry-After': '1' },
  );
}

/** Sockets whose current request was answered before its body had arrived. */
const answeredEarly = new WeakSet<Socket>();
/** Sockets to close once the body being discarded ends. */
const closing = new WeakSet<Socket>();
const draining = new WeakSet<IncomingMessage>();

/**
 * Called as an answer goes out: if the request's body has not all arrived (a redirect, a 413, an
 * error answered before the body was read), the rest is read and discarded, never buffered, up to
 * DRAIN_BYTES_MAX bytes or DRAIN_MS, after which the connection is closed. Flowing before the
 * answer is finished, so node:http leaves the draining to us (it would otherwise discard the body
 * with no bound at all). Once the body ends, the connection stays open for the next request
 * (unless it is being closed: answerOverBudget).
 */
export function discardUnreadBody(req: IncomingMessage): void {
  if (req.complete || req.readableEnded || req.destroyed || draining.has(req) || !hasBody(req)) return;
  draining.add(req);
  const socket = req.socket;
  answeredEarly.add(socket);
  let drained = 0;
  const stop = (): void => {
    clearTimeout(timer);
    answeredEarly.delete(socket);
  };
  const timer = setTimeout(() => socket.destroy(), DRAIN_MS);
  timer.unref();
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > DRAIN_BYTES_MAX) {
      stop();
      socket.destroy();
    }
  });
  req.on('end', () => {
    stop();
    if (closing.has(socket)) socket.destroy();
  });
  req.on('close', stop);
  req.resume();
}

/**
 * node:http's `clientError` handler: a request the HTTP parser rejected (headers too large,
 * malformed, timed out) still gets a JSON error, written straight to the socket since there is no
 * ServerResponse; the connection is then closed. Sockets already gone, and sockets whose request
 * was already answered, are just destroyed.
 */
export function answerMalformedRequest(error: Error & { code?: string }, socket: Socket): void {
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (!socket.writable || answeredEarly.has(socket) || inFlight?.headersSent === true || (error.code !== undefined && ['ECONNRESET', 'EPIPE'].includes(error.code))) {
    socket.destroy();
    return;
  }
  const [status, text] =
    error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout'] : [400, 'Bad Request'];
  const body = JSON.stringify({
    error: { code: status === 431 ? 'headers-too-large' : status === 408 ? 'request-timeout' : 'bad-request', message: `malformed HTTP request (${error.code ?? error.message})` },
  });
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  // A client that keeps sending would keep the half-closed socket open: close it for good soon.
  const timer = setTimeout(() => socket.destroy(), DRAIN_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
