/**
 * The node:http (or, with `tls`, node:https) server under the KV API (see http-api.ts, which decides what each request gets):
 * its resource bounds ("Resource bounds" in http-api.ts; the limits and their defaults are in
 * http-limits.ts), counted in an HttpStats. The connection cap (lowered to keep file-descriptor
 * headroom), the timeouts for slow headers and slow requests, and the JSON answer to what the HTTP
 * parser refuses are set up here, before any request reaches the API.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { describeError } from './describe-error.js';
import { answerMalformedRequest, ASSUMED_OPEN_FILE_LIMIT, connectionCap, HttpStats, openFileLimit, sendError } from './http-io.js';
import {
  DEFAULT_HTTP_BODY_BUDGET_BYTES,
  DEFAULT_HTTP_HEADERS_TIMEOUT_MS,
  DEFAULT_HTTP_KEEP_ALIVE_TIMEOUT_MS,
  DEFAULT_HTTP_MAX_CONNECTIONS,
  DEFAULT_HTTP_RECEIVE_TIMEOUT_MS,
  DEFAULT_HTTP_TIMEOUT_CHECK_MS,
  type HttpLimits,
} from './http-limits.js';

/** Request line plus headers, in bytes (node:http's maxHeaderSize). */
export const HTTP_HEADER_BYTES_MAX = 64 * 1024;

/**
 * HTTPS for the API (KvServerOptions.httpTls): this node's certificate and key, and optionally the
 * CA whose client certificates it asks for. A client certificate is requested but never required
 * or refused here: whether an unverified or missing one may do anything is for the request
 * handler to decide (it reads `(req.socket as TLSSocket).authorized`), so that a client without
 * one still gets a JSON answer saying why, not a bare handshake failure.
 */
export interface HttpTlsOptions {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  readonly clientCa?: string | Buffer;
}

/**
 * TLS 1.2 at least (not 1.3 only): Node's own clients and curl speak 1.3, but older tooling in
 * front of or beside a node (load balancers' health checks, monitoring that scrapes /metrics) may
 * not, and 1.2 with OpenSSL's default suites is still sound.
 */
export const HTTP_TLS_MIN_VERSION = 'TLSv1.2';

/** The API's HTTP server, with the figures of its bounded resources. */
export type KvHttpServer = Server & {
  readonly httpStats: HttpStats;
  /**
   * Closes the server gracefully: stops accepting connections, closes the idle ones, lets the
   * requests already in (a body still arriving, a read being confirmed) be answered for up to
   * `graceMs`, then closes every connection. Resolves once the listener is closed.
   */
  drain(graceMs: number): Promise<void>;
};

/** How often drain() looks whether the requests in flight have been answered. */
const DRAIN_POLL_MS = 5;

/**
 * Creates an HTTP server within `limits` and listens; port 0 picks a free port (read it from
 * `address()`). `makeHandler` gets the server's HttpStats (for the body budget and /metrics) and
 * returns what answers each request. `limits` is assumed valid (validateHttpLimits).
 */
export async function startBoundedHttpServer(
  listen: { readonly host: string; readonly port: number },
  limits: HttpLimits,
  log: (line: string) => void,
  makeHandler: (stats: HttpStats) => (req: IncomingMessage, res: ServerResponse) => void,
  tls?: HttpTlsOptions,
): Promise<KvHttpServer> {
  const requested = limits.maxConnections ?? DEFAULT_HTTP_MAX_CONNECTIONS;
  const fdLimit = limits.openFileLimit ?? openFileLimit();
  const maxConnections = connectionCap(requested, fdLimit ?? ASSUMED_OPEN_FILE_LIMIT);
  if (maxConnections < requested) {
    log(
      `HTTP connection cap lowered from ${requested} to ${maxConnections}: the open-file limit is ${fdLimit ?? `unknown (assumed ${ASSUMED_OPEN_FILE_LIMIT})`}, ` +
        'and half of it (at least 256 descriptors) is kept for the WAL, snapshots and peer connections',
    );
  }
  const stats = new HttpStats(maxConnections, limits.bodyBudgetBytes ?? DEFAULT_HTTP_BODY_BUDGET_BYTES, fdLimit);
  const answer = makeHandler(stats);
  // The requests not yet answered, so that drain() can wait for them rather than cut them off.
  const unanswered = new Set<ServerResponse>();
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    unanswered.add(res);
    const settle = (): void => void unanswered.delete(res);
    res.once('finish', settle);
    res.once('close', settle);
    answer(req, res);
  };
  const serverOptions = {
    keepAlive: true,
    maxHeaderSize: HTTP_HEADER_BYTES_MAX,
    headersTimeout: limits.headersTimeoutMs ?? DEFAULT_HTTP_HEADERS_TIMEOUT_MS,
    requestTimeout: limits.receiveTimeoutMs ?? DEFAULT_HTTP_RECEIVE_TIMEOUT_MS,
    connectionsCheckingInterval: limits.timeoutCheckIntervalMs ?? DEFAULT_HTTP_TIMEOUT_CHECK_MS,
  };
  // node:https's Server is a node:http Server underneath (same events, limits and close methods);
  // its type says tls.Server, hence the cast.
  const http: Server =
    tls === undefined
      ? createServer(serverOptions, handle)
      : (createHttpsServer(
          {
            ...serverOptions,
            cert: tls.cert,
            key: tls.key,
            minVersion: HTTP_TLS_MIN_VERSION,
            // A handshake that stalls holds a connection slot: give it no longer than headers get (TLS's default is 120 s).
            handshakeTimeout: serverOptions.headersTimeout,
            ...(tls.clientCa === undefined ? {} : { ca: tls.clientCa, requestCert: true, rejectUnauthorized: false }),
          },
          handle,
        ) as unknown as Server);
  http.keepAliveTimeout = limits.keepAliveTimeoutMs ?? DEFAULT_HTTP_KEEP_ALIVE_TIMEOUT_MS;
  // node:http closes connections past the cap as soon as they are accepted ('drop').
  http.maxConnections = maxConnections;
  http.on('drop', () => stats.reject('connection-limit'));
  // A failed handshake (a client that does not trust our certificate, plaintext on the TLS port, a
  // stalled handshake, a scanner) never becomes a request: count it, and log nothing per connection.
  if (tls !== undefined) {
    http.on('tlsClientError', (_error: Error, socket: TLSSocket) => {
      stats.tlsRefused++;
      socket.destroy();
    });
  }
  // Counted from the TCP accept (a handshake in progress holds a descriptor too).
  http.on('connection', (socket: Socket) => {
    stats.connections++;
    socket.once('close', () => stats.connections--);
  });
  // `Expect: 100-continue`: the client waits for our go-ahead before sending the body, which only
  // readBody gives, so an answer that needs no body (a redirect, an error) costs no body at all.
  http.on('checkContinue', handle);
  // Any other expectation node:http would refuse with a bare 417; answer it in the API's JSON
  // (found by test/fuzz/http-front.test.ts). The body the client may still send is not read.
  http.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    sendError(res, 417, 'expectation-failed', 'only "Expect: 100-continue" is supported', {}, { Connection: 'close' });
  });
  http.on('clientError', (error: Error & { code?: string }, socket: Socket) => {
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') stats.reject('timeout');
    else if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') stats.reject('malformed');
    answerMalformedRequest(error, socket);
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen({ host: listen.host, port: listen.port }, () => {
      http.off('error', reject);
      resolve();
    });
  });
  http.on('error', (error) => log(`http server error: ${describeError(error)}`));
  const drain = async (graceMs: number): Promise<void> => {
    const closed = new Promise<void>((resolve) => http.close(() => resolve()));
    http.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    while (unanswered.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    http.closeAllConnections();
    await closed;
  };
  return Object.assign(http, { httpStats: stats, drain });
}
