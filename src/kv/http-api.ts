/**
 * The KV service's HTTP/JSON API, served by every KvServer (see server.ts) on node:http, HTTP/1.1
 * keep-alive. Every response is JSON with `Content-Type: application/json`, except /metrics:
 *
 *     GET    /v1/kv/{key}                     read; 200 {"key","value","encoding","index"} or 404 not-found
 *              ?stale=true                      served from this node's state machine, on any node, unconfirmed
 *              ?encoding=base64                 always base64 (default: UTF-8 text when the value is valid UTF-8)
 *     PUT    /v1/kv/{key}        body = value  put;    200 {"index","previous","encoding"}
 *     POST   /v1/kv/{key}?op=append  body      append; 200 {"index","previous","encoding"}
 *     POST   /v1/kv/{key}?op=put     body      put (same as PUT)
 *     POST   /v1/kv/{key}?cas=<expected> body  compare-and-swap: 200 {"swapped":true,"index","previous"}
 *     POST   /v1/kv/{key}?cas-absent=true body   or 409 {"swapped":false,"value","encoding","index"}
 *     DELETE /v1/kv/{key}                     delete; 200 {"index","previous","encoding"}
 *     POST   /v1/leader/transfer             on the leader: hand leadership over (to the most up-to-date
 *              ?to=<id>                         follower, or to member <id>) and answer once the new leader is
 *                                               known: 200 {"leaderId","leaderUrl","previousLeaderId","term"}
 *                                               (leaderId == previousLeaderId when <id> already leads); on a
 *                                               follower 307 to the leader like a write; writes meanwhile 503
 *                                               leader-transfer (not proposed: retry)
 *     GET    /v1/status                        this node's Raft and KV status
 *     GET    /healthz                          liveness: 200 {"ok":true} while the process answers and Raft
 *                                               runs, even without a leader (503 once the node stopped)
 *     GET    /readyz                           readiness: 200 {"ok":true,"leaderId","isLeader"} when this node
 *                                               knows a leader (itself or another); else 503 no-leader (an
 *                                               election, or cut off from a majority: a leader that lost its
 *                                               quorum steps down within an election timeout) or node-stopped
 *     GET    /metrics                          Prometheus text format
 *
 * Keys are the rest of the path after `/v1/kv/`, percent-decoded to bytes (so a key may hold any
 * byte, `/` included, when encoded). `previous`/`value` are null when the key was absent; their
 * `encoding` says whether the string is UTF-8 text or base64. `?encoding=base64` works on writes too
 * (for `previous`). The cas expected value is the percent-decoded query value, taken as raw bytes.
 *
 * Reads are linearizable by default: the leader confirms its leadership (ReadIndex) and answers from
 * its state machine; with `readMode: 'log'` a read is a `get` command through the log instead.
 *
 * Exactly-once: `X-Client-Id` (1..CLIENT_ID_BYTES_MAX bytes of printable ASCII) and `X-Request-Seq`
 * (a positive integer) make a write part of that client's session: resending the same (id, seq)
 * returns the first answer and applies nothing again. A client must send its requests one at a time
 * per id, with increasing seqs; an older seq than the last applied one answers 409 stale-request.
 * Without the headers a write is session-less (never deduplicated).
 *
 * Errors are `{"error":{"code","message",...}}`:
 *
 *     307 not-leader      writes and linearizable reads on a follower; `Location` is the leader's URL
 *                         with the same path and query; the body names the leader (leaderId, leaderUrl)
 *     503 no-leader       no leader known (Retry-After: 1); also busy, dropped, stopped, and
 *                         leader-transfer (this leader is handing over: the write was not proposed)
 *     504 timeout         the proposal or read did not complete in requestTimeoutMs (a write may still apply)
 *     504 transfer-timeout  POST /v1/leader/transfer: no new leader was heard of in time; the transfer was
 *                         abandoned and proposals resumed on the old leader (the body says who leads now)
 *     409 no-transfer-target  POST /v1/leader/transfer on a single-member cluster
 *     400 invalid-key, malformed-percent-encoding, unknown-op, unknown-parameter, bad-parameter (also
 *         a transfer `to` that is not another member: the message names the members),
 *         bad-header, invalid-command, bad-request
 *     404 not-found (absent key), no-route
 *     405 method-not-allowed (with Allow)
 *     409 stale-request, or a cas that did not swap (not an error object: {"swapped":false,...})
 *     413 value-too-large  as soon as the body passes VALUE_BYTES_MAX (or Content-Length says it will)
 *     503 body-budget-exceeded  the body does not fit the server's budget for unfinished bodies
 *                         (Retry-After: 1); the connection is closed
 *     408 request-timeout  headers not complete within headersTimeoutMs, or the whole request not
 *                         received within receiveTimeoutMs; the connection is closed
 *     431 / 400 from the HTTP parser (request line or headers too large or malformed), as JSON
 *     500 internal        a bug; logged
 *
 * Limits: KEY_BYTES_MAX (1024) bytes per key, VALUE_BYTES_MAX (1 MiB) per value (and per append
 * result), CLIENT_ID_BYTES_MAX (128) per client id (all three from commands.ts),
 * HTTP_HEADER_BYTES_MAX (64 KiB) for the request line plus headers (which bounds keys and cas
 * expected values once encoded), REQUEST_SEQ_MAX (2^53 - 1), and the server's
 * PROPOSALS_IN_FLIGHT_MAX proposals waiting for commit at once (then 503 busy).
 *
 * Resource bounds (HttpLimits, defaults below), so that no client can stop the node: at most
 * `maxConnections` connections at once (more are closed as soon as they are accepted), lowered if
 * needed to keep file-descriptor headroom for the WAL, snapshots and peers (connectionCap in
 * http-io.ts: at most half of the open-file limit, never its last 256 descriptors); at most
 * `bodyBudgetBytes` buffered for unfinished request bodies across all requests; timeouts for slow
 * headers and slow requests. A body is read only when it is needed: a follower answers a write
 * with its redirect (or 503 no-leader) before reading the body, and `Expect: 100-continue` gets
 * its `100 Continue` only then. Whenever an answer goes out before the body has arrived, the rest
 * is discarded unread, up to DRAIN_BYTES_MAX / DRAIN_MS, after which the connection is closed.
 * The figures are in /metrics (tsraft_http_connections, tsraft_http_body_bytes_buffered,
 * tsraft_http_rejected_total{reason}, ...).
 *
 * This module turns requests into calls on a KvApiBackend and their outcomes into responses; the
 * byte-level decoding and encoding is in http-io.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import {
  BusyError,
  ConfigError,
  LeadershipTransferError,
  NodeStoppedError,
  NotLeaderError,
  OutcomeUnknownError,
  ProposalDroppedError,
  ProposalTimeoutError,
  RaftError,
} from '../runtime/errors.js';
import { CLIENT_ID_BYTES_MAX, encodeKvCommand, KEY_BYTES_MAX, VALUE_BYTES_MAX, type KvCommand, type KvResult } from './commands.js';
import { describeError } from './describe-error.js';
import {
  answerMalformedRequest,
  ASSUMED_OPEN_FILE_LIMIT,
  connectionCap,
  discardUnreadBody,
  expectsContinue,
  HttpError,
  HttpStats,
  jsonValue,
  openFileLimit,
  parseQuery,
  percentDecode,
  readBody,
  sendError,
  sendJson,
  textParam,
} from './http-io.js';
import type { KvServerStatus, LeaderTransferResult } from './api-types.js';
import {
  DEFAULT_HTTP_BODY_BUDGET_BYTES,
  DEFAULT_HTTP_HEADERS_TIMEOUT_MS,
  DEFAULT_HTTP_KEEP_ALIVE_TIMEOUT_MS,
  DEFAULT_HTTP_MAX_CONNECTIONS,
  DEFAULT_HTTP_RECEIVE_TIMEOUT_MS,
  DEFAULT_HTTP_TIMEOUT_CHECK_MS,
  type HttpLimits,
} from './http-limits.js';

export * from './http-limits.js';

/** What a client should do with a write whose outcome is unknown. */
const RETRY_ADVICE = 'retry with the same X-Client-Id and X-Request-Seq to apply it exactly once (a retry without them may apply it twice)';

/** The largest X-Request-Seq. */
export const REQUEST_SEQ_MAX = Number.MAX_SAFE_INTEGER;
/** Request line plus headers, in bytes (node:http's maxHeaderSize). */
export const HTTP_HEADER_BYTES_MAX = 64 * 1024;

/**
 * What the HTTP API needs from the member it serves. A narrow interface rather than the KvServer
 * itself, so the API cannot reach into Raft beyond the operations it answers requests with.
 */
export interface KvApiBackend {
  /** How linearizable reads are served: confirm leadership then read locally, or a `get` through the log. */
  readonly readMode: 'read-index' | 'log';
  /** Reads the key from this node's state machine, with the index it has applied. */
  readLocal(key: Uint8Array): { value: Uint8Array | null; index: number };
  /** Confirms leadership for a linearizable read (ReadIndex); rejects with the RaftNode's errors. */
  confirmRead(): Promise<unknown>;
  /**
   * Proposes an encoded KvCommand and waits for it to be applied; rejects with the RaftNode's
   * errors. `result` is undefined if the state machine no longer held it by then.
   */
  commit(command: Uint8Array): Promise<{ index: number; result: KvResult }>;
  /** The HTTP base URL of a member, for redirects to the leader. */
  leaderUrl(id: number): string | undefined;
  /**
   * Whether this node leads now, and the leader it knows of otherwise: a write to a follower is
   * answered with its redirect before its body is read. Without it, the body is read and the
   * proposal's NotLeaderError answers.
   */
  leadership?(): { isLeader: boolean; leaderId: number | undefined };
  /** This member's id (for /readyz and leadership transfers). */
  readonly nodeId?: number;
  /** Every member's id, this one included: a transfer's `to` must be another one of them. */
  readonly memberIds?: readonly number[];
  /**
   * Hands leadership to `to` (default: the most up-to-date follower) and resolves once the new
   * leader is known; resolves at once with this node when `to` is this node and it leads. Rejects
   * with NotLeaderError, ConfigError (a bad target), RaftError TSRAFT_TRANSFER_TIMEOUT or
   * NodeStoppedError. Without it, POST /v1/leader/transfer answers 501.
   */
  transferLeadership?(to: number | undefined): Promise<{ leaderId: number; previousLeaderId: number; term: number }>;
  /** True once KvServer.stop() closes the listener: every request then answers 503 stopped. */
  isStopping(): boolean;
  /** True once the RaftNode stopped (e.g. on a fatal error), for /healthz. */
  isNodeStopped(): boolean;
  status(): KvServerStatus;
  /** The /metrics page. */
  metricsText(): string;
  /** Called with the status of every response sent, for the metrics. */
  countResponse(status: number): void;
  log(line: string): void;
}

/** The API's HTTP server, with the figures of its bounded resources. */
export type KvHttpServer = Server & { readonly httpStats: HttpStats };

/**
 * Creates the API's HTTP server and listens; port 0 picks a free port (read it from `address()`).
 * `limits` is assumed valid (validateHttpLimits).
 */
export async function startHttpApi(
  backend: KvApiBackend,
  listen: { readonly host: string; readonly port: number },
  limits: HttpLimits = {},
): Promise<KvHttpServer> {
  const requested = limits.maxConnections ?? DEFAULT_HTTP_MAX_CONNECTIONS;
  const fdLimit = limits.openFileLimit ?? openFileLimit();
  const maxConnections = connectionCap(requested, fdLimit ?? ASSUMED_OPEN_FILE_LIMIT);
  if (maxConnections < requested) {
    backend.log(
      `HTTP connection cap lowered from ${requested} to ${maxConnections}: the open-file limit is ${fdLimit ?? `unknown (assumed ${ASSUMED_OPEN_FILE_LIMIT})`}, ` +
        'and half of it (at least 256 descriptors) is kept for the WAL, snapshots and peer connections',
    );
  }
  const stats = new HttpStats(maxConnections, limits.bodyBudgetBytes ?? DEFAULT_HTTP_BODY_BUDGET_BYTES, fdLimit);
  const api = new KvHttpApi(backend, stats);
  const http = createServer(
    {
      keepAlive: true,
      maxHeaderSize: HTTP_HEADER_BYTES_MAX,
      headersTimeout: limits.headersTimeoutMs ?? DEFAULT_HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: limits.receiveTimeoutMs ?? DEFAULT_HTTP_RECEIVE_TIMEOUT_MS,
      connectionsCheckingInterval: limits.timeoutCheckIntervalMs ?? DEFAULT_HTTP_TIMEOUT_CHECK_MS,
    },
    (req, res) => api.handle(req, res),
  );
  http.keepAliveTimeout = limits.keepAliveTimeoutMs ?? DEFAULT_HTTP_KEEP_ALIVE_TIMEOUT_MS;
  // node:http closes connections past the cap as soon as they are accepted ('drop').
  http.maxConnections = maxConnections;
  http.on('drop', () => stats.reject('connection-limit'));
  http.on('connection', (socket: Socket) => {
    stats.connections++;
    socket.once('close', () => stats.connections--);
  });
  // `Expect: 100-continue`: the client waits for our go-ahead before sending the body, which only
  // readBody gives, so an answer that needs no body (a redirect, an error) costs no body at all.
  http.on('checkContinue', (req, res) => api.handle(req, res));
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
  http.on('error', (error) => backend.log(`http server error: ${describeError(error)}`));
  return Object.assign(http, { httpStats: stats });
}

const KV_PREFIX = '/v1/kv/';
const TRANSFER_PATH = '/v1/leader/transfer';

/** The query parameters each method accepts on /v1/kv/{key}; a method missing here is 405. */
const ALLOWED_PARAMS: Record<string, ReadonlySet<string>> = {
  GET: new Set(['stale', 'encoding']),
  PUT: new Set(['encoding']),
  POST: new Set(['op', 'cas', 'cas-absent', 'encoding']),
  DELETE: new Set(['encoding']),
};

/** A /v1/kv/{key} request once its key, query and session headers are decoded and checked. */
interface KvRequest {
  readonly method: string;
  readonly rawPath: string;
  readonly rawQuery: string;
  readonly key: Uint8Array;
  readonly params: Map<string, Uint8Array>;
  readonly session: { clientId: string; seq: number } | null;
  readonly base64: boolean;
}

class KvHttpApi {
  constructor(
    private readonly backend: KvApiBackend,
    private readonly stats: HttpStats,
  ) {}

  handle(req: IncomingMessage, res: ServerResponse): void {
    res.on('finish', () => this.backend.countResponse(res.statusCode));
    // An answer that goes out before the body arrived (redirect, error): discard the rest, bounded.
    res.once('prefinish', () => discardUnreadBody(req));
    // No `100 Continue` yet: unless readBody sends one, the body never comes, so do not wait for it.
    if (expectsContinue(req)) res.setHeader('Connection', 'close');
    this.route(req, res).catch((error: unknown) => {
      if (error instanceof HttpError) {
        sendError(res, error.status, error.code, error.message, {}, error.headers);
        return;
      }
      this.backend.log(`internal error serving ${req.method} ${req.url}: ${describeError(error)}`);
      sendError(res, 500, 'internal', 'internal server error');
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    const rawQuery = q < 0 ? '' : url.slice(q + 1);
    const method = req.method ?? 'GET';
    if (this.backend.isStopping()) throw new HttpError(503, 'stopped', 'the server is stopping', { 'Retry-After': '1' });

    if (rawPath === '/healthz' || rawPath === '/readyz' || rawPath === '/v1/status' || rawPath === '/metrics') {
      if (method !== 'GET') throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${rawPath}; use GET`, { Allow: 'GET' });
      if (rawPath === '/healthz') {
        // Liveness only: a node without a leader (an election, a partition) is alive and must not
        // be restarted for it (tsraft start's watchdog polls this). Readiness is /readyz.
        const stopped = this.backend.isNodeStopped();
        sendJson(res, stopped ? 503 : 200, stopped ? { ok: false } : { ok: true });
      } else if (rawPath === '/readyz') {
        this.serveReady(res);
      } else if (rawPath === '/v1/status') {
        sendJson(res, 200, this.backend.status());
      } else {
        const body = this.backend.metricsText() + this.stats.render();
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
        res.end(body);
      }
      return;
    }
    if (rawPath === TRANSFER_PATH) {
      if (method !== 'POST') throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${rawPath}; use POST`, { Allow: 'POST' });
      await this.serveTransfer(res, rawPath, rawQuery);
      return;
    }
    if (rawPath === '/v1/kv' || rawPath.startsWith(KV_PREFIX)) {
      // A node whose Raft stopped must not answer from a state that no longer advances, not even
      // a stale read: it is about to exit and be restarted.
      if (this.backend.isNodeStopped()) {
        throw new HttpError(503, 'node-stopped', 'this node stopped on a fatal error and is exiting; ask another member', { 'Retry-After': '1' });
      }
      await this.serveKv(req, res, method, rawPath, rawQuery);
      return;
    }
    throw new HttpError(404, 'no-route', `no such endpoint: ${rawPath}`);
  }

  private async serveKv(req: IncomingMessage, res: ServerResponse, method: string, rawPath: string, rawQuery: string): Promise<void> {
    const allowed = ALLOWED_PARAMS[method];
    if (allowed === undefined) {
      throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on /v1/kv/{key}; use GET, PUT, POST or DELETE`, {
        Allow: 'GET, PUT, POST, DELETE',
      });
    }
    const key = percentDecode(rawPath.slice(KV_PREFIX.length), 'key', false);
    if (key.length === 0) throw new HttpError(400, 'invalid-key', 'the key is empty: use /v1/kv/{key}');
    if (key.length > KEY_BYTES_MAX) throw new HttpError(400, 'invalid-key', `the key is ${key.length} bytes; keys are 1..${KEY_BYTES_MAX} bytes`);
    const params = parseQuery(rawQuery);
    for (const name of params.keys()) {
      if (!allowed.has(name)) throw new HttpError(400, 'unknown-parameter', `unknown query parameter "${name}" for ${method}`);
    }
    const encoding = textParam(params, 'encoding');
    if (encoding !== undefined && encoding !== 'base64' && encoding !== 'utf8' && encoding !== 'auto') {
      throw new HttpError(400, 'bad-parameter', `encoding must be base64, utf8 or auto, got "${encoding}"`);
    }
    const request: KvRequest = { method, rawPath, rawQuery, key, params, session: this.session(req), base64: encoding === 'base64' };

    switch (method) {
      case 'GET':
        await this.serveGet(res, request);
        return;
      case 'DELETE':
        await this.write(res, request, { op: 'delete', key });
        return;
      case 'PUT': {
        if (this.answeredNotLeader(res, request)) return;
        const value = await readBody(req, res, this.stats);
        if (value !== null) await this.write(res, request, { op: 'put', key, value });
        return;
      }
      default: {
        // POST
        const op = textParam(params, 'op');
        const cas = params.get('cas');
        const casAbsent = textParam(params, 'cas-absent');
        if (casAbsent !== undefined && casAbsent !== 'true') throw new HttpError(400, 'bad-parameter', `cas-absent must be "true", got "${casAbsent}"`);
        if (cas !== undefined && casAbsent !== undefined) throw new HttpError(400, 'bad-parameter', 'give either cas or cas-absent, not both');
        let expected: Uint8Array | null | undefined;
        if (cas !== undefined || casAbsent !== undefined) {
          if (op !== undefined && op !== 'cas') throw new HttpError(400, 'unknown-op', `op "${op}" cannot be combined with cas`);
          if (cas !== undefined && cas.length > VALUE_BYTES_MAX) {
            throw new HttpError(413, 'value-too-large', `the expected value is ${cas.length} bytes; values are 0..${VALUE_BYTES_MAX} bytes`);
          }
          expected = cas ?? null;
        } else if (op === undefined) {
          throw new HttpError(400, 'unknown-op', 'POST needs ?op=append, ?op=put, ?cas=<expected> or ?cas-absent=true');
        } else if (op === 'cas') {
          throw new HttpError(400, 'bad-parameter', 'op=cas needs ?cas=<expected> or ?cas-absent=true');
        } else if (op !== 'append' && op !== 'put') {
          throw new HttpError(400, 'unknown-op', `unknown op "${op}": POST supports op=append, op=put and cas`);
        }
        if (this.answeredNotLeader(res, request)) return;
        const value = await readBody(req, res, this.stats);
        if (value === null) return;
        if (expected !== undefined) await this.write(res, request, { op: 'cas', key, value, expected });
        else await this.write(res, request, { op: op === 'put' ? 'put' : 'append', key, value });
        return;
      }
    }
  }

  /** The leader this node knows of: itself, another member, or none. */
  private knownLeader(): { isLeader: boolean; leaderId: number | undefined } {
    const leadership = this.backend.leadership?.();
    if (leadership !== undefined) return leadership.isLeader ? { isLeader: true, leaderId: this.backend.nodeId } : leadership;
    const s = this.backend.status();
    return { isLeader: s.role === 'leader', leaderId: s.leaderId ?? undefined };
  }

  /** GET /readyz: 200 when this node knows a leader (itself or another), else 503. */
  private serveReady(res: ServerResponse): void {
    if (this.backend.isNodeStopped()) {
      sendError(res, 503, 'node-stopped', 'this node stopped on a fatal error and is exiting', {}, { 'Retry-After': '1' });
      return;
    }
    const { isLeader, leaderId } = this.knownLeader();
    if (!isLeader && leaderId === undefined) {
      sendError(res, 503, 'no-leader', 'this node knows of no leader: an election is under way, or it cannot reach a majority', {}, { 'Retry-After': '1' });
      return;
    }
    sendJson(res, 200, { ok: true, leaderId: leaderId ?? null, isLeader });
  }

  /**
   * POST /v1/leader/transfer[?to=<id>]. The target is checked first (on any node: membership is
   * fixed), then a follower redirects like a write, before any body is read; the leader hands over
   * and answers once it hears of the new leader.
   */
  private async serveTransfer(res: ServerResponse, rawPath: string, rawQuery: string): Promise<void> {
    if (this.backend.isNodeStopped()) {
      throw new HttpError(503, 'node-stopped', 'this node stopped on a fatal error and is exiting; ask another member', { 'Retry-After': '1' });
    }
    const params = parseQuery(rawQuery);
    for (const name of params.keys()) {
      if (name !== 'to') throw new HttpError(400, 'unknown-parameter', `unknown query parameter "${name}" for POST ${TRANSFER_PATH}; it takes ?to=<member id>`);
    }
    const members = this.backend.memberIds;
    const self = this.backend.nodeId;
    const others = members?.filter((id) => id !== self);
    const naming = members === undefined ? '' : ` (the members are ${members.join(', ')}${self === undefined ? '' : `; this is node ${self}`})`;
    const toText = textParam(params, 'to');
    let to: number | undefined;
    if (toText !== undefined) {
      to = /^\d{1,15}$/.test(toText) ? Number(toText) : NaN;
      if (!Number.isSafeInteger(to)) throw new HttpError(400, 'bad-parameter', `to must be a member id, got "${toText.slice(0, 40)}"${naming}`);
      if (members !== undefined && !members.includes(to)) throw new HttpError(400, 'bad-parameter', `node ${to} is not a member of this cluster${naming}`);
    }
    if (others !== undefined && others.length === 0) {
      throw new HttpError(409, 'no-transfer-target', `this cluster has a single member${naming}: there is no other member to hand leadership to`);
    }
    const transfer = this.backend.transferLeadership;
    if (transfer === undefined) throw new HttpError(501, 'not-supported', 'this server cannot transfer leadership');
    const request = { rawPath, rawQuery };
    const leadership = this.backend.leadership?.();
    if (leadership !== undefined && !leadership.isLeader) {
      const { leaderId } = leadership;
      this.raftError(res, request, new NotLeaderError(leaderId, leaderId === undefined ? undefined : this.backend.leaderUrl(leaderId)));
      return;
    }
    let moved: { leaderId: number; previousLeaderId: number; term: number };
    try {
      moved = await transfer.call(this.backend, to);
    } catch (error) {
      if (error instanceof ConfigError) throw new HttpError(400, 'bad-parameter', `${error.problems.join('; ')}${naming}`);
      if (error instanceof RaftError && error.code === 'TSRAFT_TRANSFER_TIMEOUT') {
        const now = this.knownLeader();
        const after = now.isLeader
          ? `the transfer was abandoned: node ${self ?? now.leaderId ?? '?'} still leads and takes writes again`
          : now.leaderId !== undefined
            ? `node ${now.leaderId} leads now`
            : 'this node no longer leads and no leader is known yet (an election is under way): check GET /v1/status on the members';
        sendError(res, 504, 'transfer-timeout', `${error.message}; ${after}`, { leaderId: now.isLeader ? (self ?? null) : (now.leaderId ?? null) });
        return;
      }
      this.raftError(res, request, error);
      return;
    }
    const answer: LeaderTransferResult = {
      leaderId: moved.leaderId,
      leaderUrl: this.backend.leaderUrl(moved.leaderId) ?? null,
      previousLeaderId: moved.previousLeaderId,
      term: moved.term,
    };
    sendJson(res, 200, answer);
  }

  /**
   * On a follower, answers a write with its redirect (or 503 no-leader) before its body is read,
   * and returns true. The proposal would be refused anyway; reading the body first would let
   * clients make a follower buffer bodies it has no use for.
   */
  private answeredNotLeader(res: ServerResponse, request: KvRequest): boolean {
    const leadership = this.backend.leadership?.();
    if (leadership === undefined || leadership.isLeader) return false;
    const { leaderId } = leadership;
    this.raftError(res, request, new NotLeaderError(leaderId, leaderId === undefined ? undefined : this.backend.leaderUrl(leaderId)));
    return true;
  }

  /** The X-Client-Id / X-Request-Seq session, or null for a session-less request. */
  private session(req: IncomingMessage): { clientId: string; seq: number } | null {
    const rawId = req.headers['x-client-id'];
    const rawSeq = req.headers['x-request-seq'];
    if (rawId === undefined && rawSeq === undefined) return null;
    if (typeof rawId !== 'string' || typeof rawSeq !== 'string') {
      throw new HttpError(400, 'bad-header', 'X-Client-Id and X-Request-Seq must be sent together, once each');
    }
    if (rawId.length === 0 || rawId.length > CLIENT_ID_BYTES_MAX || !/^[\x21-\x7e]+$/.test(rawId)) {
      throw new HttpError(400, 'bad-header', `X-Client-Id must be 1..${CLIENT_ID_BYTES_MAX} printable ASCII characters`);
    }
    const seq = /^[1-9][0-9]{0,15}$/.test(rawSeq) ? Number(rawSeq) : NaN;
    if (!Number.isSafeInteger(seq) || seq > REQUEST_SEQ_MAX) {
      throw new HttpError(400, 'bad-header', `X-Request-Seq must be a positive integer up to ${REQUEST_SEQ_MAX}, got "${rawSeq.slice(0, 40)}"`);
    }
    return { clientId: rawId, seq };
  }

  private async serveGet(res: ServerResponse, request: KvRequest): Promise<void> {
    const stale = textParam(request.params, 'stale');
    if (stale !== undefined && stale !== 'true' && stale !== 'false') throw new HttpError(400, 'bad-parameter', `stale must be true or false, got "${stale}"`);
    let value: Uint8Array | null;
    let index: number;
    if (stale === 'true') {
      ({ value, index } = this.backend.readLocal(request.key));
    } else if (this.backend.readMode === 'read-index') {
      try {
        await this.backend.confirmRead();
      } catch (error) {
        this.raftError(res, request, error);
        return;
      }
      ({ value, index } = this.backend.readLocal(request.key));
    } else {
      const outcome = await this.propose(res, request, { op: 'get', clientId: '', seq: 0, key: request.key });
      if (outcome === null) return;
      if (!outcome.result.ok) {
        this.resultError(res, outcome.result);
        return;
      }
      value = outcome.result.value ?? null;
      index = outcome.index;
    }
    if (value === null) {
      sendError(res, 404, 'not-found', `key ${JSON.stringify(keyText(request.key))} does not exist`, { index });
      return;
    }
    const v = jsonValue(value, request.base64);
    const key = jsonValue(request.key, false);
    sendJson(res, 200, { key: key.value, ...(key.encoding === 'base64' ? { keyEncoding: 'base64' } : {}), value: v.value, encoding: v.encoding, index });
  }

  private async write(
    res: ServerResponse,
    request: KvRequest,
    command: { op: 'put' | 'append' | 'cas' | 'delete'; key: Uint8Array; value?: Uint8Array; expected?: Uint8Array | null },
  ): Promise<void> {
    const session = request.session ?? { clientId: '', seq: 0 };
    const cmd: KvCommand = { ...command, clientId: session.clientId, seq: session.seq };
    const outcome = await this.propose(res, request, cmd);
    if (outcome === null) return;
    const result = outcome.result;
    if (!result.ok) {
      this.resultError(res, result);
      return;
    }
    const previous = jsonValue(result.value ?? null, request.base64);
    if (command.op === 'cas') {
      if (result.swapped === true) {
        sendJson(res, 200, { swapped: true, index: outcome.index, previous: previous.value, encoding: previous.encoding });
      } else {
        sendJson(res, 409, { swapped: false, index: outcome.index, value: previous.value, encoding: previous.encoding });
      }
      return;
    }
    sendJson(res, 200, { index: outcome.index, previous: previous.value, encoding: previous.encoding });
  }

  /** Proposes a command and returns its result; answers the error itself and returns null on failure. */
  private async propose(res: ServerResponse, request: KvRequest, cmd: KvCommand): Promise<{ index: number; result: KvResult } | null> {
    let bytes: Uint8Array;
    try {
      bytes = encodeKvCommand(cmd);
    } catch (error) {
      throw new HttpError(400, 'invalid-command', error instanceof Error ? error.message : String(error));
    }
    try {
      return await this.backend.commit(bytes);
    } catch (error) {
      this.raftError(res, request, error);
      return null;
    }
  }

  private resultError(res: ServerResponse, result: KvResult & { ok: false }): void {
    if (result.error === 'stale-request') sendError(res, 409, 'stale-request', result.message);
    else sendError(res, 400, 'invalid-command', result.message);
  }

  /** Answers a RaftNode rejection; anything else is rethrown (and answered 500 internal). */
  private raftError(res: ServerResponse, request: Pick<KvRequest, 'rawPath' | 'rawQuery'>, error: unknown): void {
    if (error instanceof NotLeaderError) {
      const leaderUrl = error.leaderId === undefined ? undefined : (error.leaderAddress ?? this.backend.leaderUrl(error.leaderId));
      if (error.leaderId === undefined || leaderUrl === undefined) {
        sendError(res, 503, 'no-leader', error.message, {}, { 'Retry-After': '1' });
        return;
      }
      const location = `${leaderUrl}${request.rawPath}${request.rawQuery === '' ? '' : `?${request.rawQuery}`}`;
      sendError(res, 307, 'not-leader', error.message, { leaderId: error.leaderId, leaderUrl }, { Location: location });
    } else if (error instanceof OutcomeUnknownError) {
      // Never a redirect: the write was proposed here and may still take effect, so re-sending it
      // elsewhere could apply it twice. Say so, and how to retry safely.
      sendError(res, 503, 'outcome-unknown', `${error.message}; ${RETRY_ADVICE}`, error.leaderId === undefined ? {} : { leaderId: error.leaderId }, { 'Retry-After': '1' });
    } else if (error instanceof ProposalTimeoutError) {
      sendError(res, 504, 'outcome-unknown', `${error.message}; ${RETRY_ADVICE}`);
    } else if (error instanceof BusyError) {
      sendError(res, 503, 'busy', error.message, {}, { 'Retry-After': '1' });
    } else if (error instanceof LeadershipTransferError) {
      // Not proposed: safe to retry, and in a moment the new leader answers (or redirects).
      sendError(res, 503, 'leader-transfer', error.message, { transferTarget: error.target }, { 'Retry-After': '1' });
    } else if (error instanceof ProposalDroppedError) {
      sendError(res, 503, 'dropped', error.message, {}, { 'Retry-After': '1' });
    } else if (error instanceof NodeStoppedError) {
      sendError(res, 503, 'stopped', error.message, {}, { 'Retry-After': '1' });
    } else {
      throw error;
    }
  }
}

/** A key for an error message: its text when it is UTF-8, else `base64:...`. */
function keyText(key: Uint8Array): string {
  const k = jsonValue(key, false);
  return k.encoding === 'utf8' ? k.value! : `base64:${k.value!}`;
}
