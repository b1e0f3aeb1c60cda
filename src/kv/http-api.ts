/**
 * The KV service's HTTP/JSON API, served by every KvServer (see server.ts) on node:http, HTTP/1.1
 * keep-alive. Every response is JSON with `Content-Type: application/json`, except /metrics:
 *
 *     GET    /v1/kv/{key}                     read; 200 {"key","value","encoding","index","revision",
 *                                               "createRevision","modRevision","version"} or 404 not-found
 *              ?stale=true                      served from this node's state machine, on any node, unconfirmed
 *              ?encoding=base64                 always base64 (default: UTF-8 text when the value is valid UTF-8)
 *     GET    /v1/kv?prefix=P | ?start=A[&end=B]  a range page in key-byte order (http-kv-routes.ts):
 *                                               200 {"kvs":[{"key","value","encoding","createRevision",
 *                                               "modRevision","version"}],"count","more","next","revision","index"};
 *              &limit=N (1..10000, default 1000) &next=<token> &keys-only=true &count-only=true
 *              &encoding=base64 (keys in and out) &stale=true; pages also stop at 4 MiB of keys and
 *              values and at 8 MiB of JSON (at least one key each)
 *     PUT    /v1/kv/{key}        body = value  put;    200 {"index","previous","encoding","revision",...}
 *              ?if-mod-revision=N               only if the key's mod revision is N (0: absent); else 412
 *                                               revision-mismatch {"modRevision": the current one}
 *              ?lease=ID                        attach the key to lease ID (a put without it detaches the
 *                                               key from its lease); 404 lease-not-found, nothing written,
 *                                               when the store does not hold it. Also on POST ?op=put
 *     A key attached to a lease has "lease": ID in GET /v1/kv/{key} answers and range items.
 *     Every /v1/kv answer that read or wrote the store carries `revision` and X-Tsraft-Revision.
 *     POST   /v1/kv/{key}?op=append  body      append; 200 {"index","previous","encoding"}
 *     POST   /v1/kv/{key}?op=put     body      put (same as PUT)
 *     POST   /v1/kv/{key}?cas=<expected> body  compare-and-swap: 200 {"swapped":true,"index","previous"}
 *     POST   /v1/kv/{key}?cas-absent=true body   or 409 {"swapped":false,"value","encoding","index"}
 *     DELETE /v1/kv/{key}                     delete; 200 {"index","previous","encoding"}
 *     POST   /v1/txn   body = JSON           a transaction: compares, then `then` or `else` (puts, deletes,
 *                                               gets), atomically in one log entry (http-txn.ts): 200
 *                                               {"succeeded","revision","index","results":[...]}; a write (307
 *                                               on a follower, sessions, the write role), read-only ones too;
 *                                               a put may name a "lease"
 *     POST   /v1/leases   body {"ttl": N}      grant a lease of N seconds (http-lease-routes.ts): 200
 *                                               {"id","ttl","revision","index"}; the store picks the id
 *     DELETE /v1/leases/{id}                   revoke it: its keys are deleted, all at one new revision:
 *                                               200 {"id","ttl","deleted": the number of keys,"revision","index"}
 *     POST   /v1/leases/{id}/keepalive         restart its clock at its full TTL: 200 {"id","ttl","revision"}
 *     GET    /v1/leases/{id}                   200 {"id","ttl","remaining": seconds left (3 decimals),
 *              ?keys=true                       "keyCount","revision","index"}; with keys=true also
 *              &encoding=base64                 "keys":[...] (ascending) and their "encoding", one for the list:
 *                                               utf8 when every key is UTF-8 text, else (or forced) base64
 *     GET    /v1/leases                        200 {"leases":[{"id","ttl","keyCount"}],"revision","index"}
 *                                               Every lease route is the leader's (a follower 307s before
 *                                               reading a body): only its clock times leases (lease-keeper.ts),
 *                                               and a new leader restarts every lease at its full TTL, so a
 *                                               lease never expires early; an expired lease is revoked through
 *                                               the log like a DELETE. Grants and revokes are writes: sessions
 *                                               make them exactly-once (a retried grant answers the same id)
 *     POST   /v1/leader/transfer             on the leader: hand leadership over (to the most up-to-date
 *              ?to=<id>                         follower, or to member <id>) and answer once the new leader is
 *                                               known: 200 {"leaderId","leaderUrl","previousLeaderId","term"}
 *                                               (leaderId == previousLeaderId when <id> already leads); on a
 *                                               follower 307 to the leader like a write; writes meanwhile 503
 *                                               leader-transfer (not proposed: retry)
 *     GET    /v1/status                        this node's Raft and KV status (with `membership`: the voters,
 *                                               outgoing voters, learners and index of its configuration)
 *     GET    /v1/members                       the configuration in effect on this node (any node, its own view):
 *                                               200 {"leader","membershipIndex","committed","joint",
 *                                               "voters":[{"id","raft","http"}],"outgoing":[...],"learners":[...]}
 *                                               (raft/http null when no address is known; on the leader each
 *                                               member also has "match")
 *     POST   /v1/members                       body {"id","raft":"HOST:PORT","http":"http://HOST:PORT","role"}
 *                                               ("learner", the default, or "voter"): add a member
 *     POST   /v1/members/{id}/promote          make learner {id} a voter (once it has caught up)
 *     DELETE /v1/members/{id}                  remove member {id} (a voter, the leader included, or a learner)
 *                                               The three changes are the leader's: a follower redirects (307)
 *                                               like a write, before reading the body. 200 once the change is
 *                                               complete: the GET body plus "index" (the entry that completed it)
 *     GET    /healthz                          liveness: 200 {"ok":true} while the process answers and Raft
 *                                               runs, even without a leader (503 once the node stopped)
 *     GET    /readyz                           readiness: 200 {"ok":true,"leaderId","isLeader"} when this node
 *                                               knows a leader (itself or another); else 503 no-leader (an
 *                                               election, or cut off from a majority: a leader that lost its
 *                                               quorum steps down within an election timeout) or node-stopped
 *     GET    /metrics                          Prometheus text format
 *     GET    /ui, /ui/{file}                   the live dashboard's page and bundle (http-ui-routes.ts)
 *     GET    /v1/dev/faults, POST ?cut=<ids>   the dev fault switch, with --dev-faults only (else 404):
 *                                               drop messages to and from those peers (http-dev-routes.ts)
 *     GET    /v1/events                        the dashboard's feed: Server-Sent Events, a `snapshot`
 *                                               every 500 ms and `leader` on a change (dashboard-feed.ts)
 *     GET    /v1/watch?prefix=P|key=K|start=A&end=B&from-revision=N
 *                                               the changes to those keys as Server-Sent Events, from revision N
 *                                               (default: from now on), served by any node (http-watch-routes.ts)
 *     GET    /v1/snapshot                      a backup of the whole store from the leader (a follower 307s):
 *                                               application/octet-stream, a checksummed header line then the
 *                                               state machine's snapshot (backup.ts, http-backup-routes.ts)
 *
 * Keys are the rest of the path after `/v1/kv/`, percent-decoded to bytes (so a key may hold any
 * byte, `/` included, when encoded). `previous`/`value` are null when the key was absent; their
 * `encoding` says whether the string is UTF-8 text or base64. `?encoding=base64` works on writes too
 * (for `previous`). The cas expected value is the percent-decoded query value, taken as raw bytes.
 *
 * Reads are linearizable by default: the leader confirms its leadership (ReadIndex) and answers from
 * its state machine; with `readMode: 'log'` a read is a `get` command through the log instead.
 *
 * Authentication (http-auth.ts): with an auth file or a client CA, every request but /healthz and
 * /readyz needs a principal (a bearer token or a verified client certificate) with the role its
 * endpoint needs, checked before anything else: 401 unauthenticated (with WWW-Authenticate), 403
 * forbidden. Sessions are then the principal's: the state machine sees `<name>/<X-Client-Id>`.
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
 *     400 invalid-membership-change  /v1/members: a bad body, id or address, an id already a member, an
 *                         address another member has, an unknown member to promote or remove, a change
 *                         that would leave no voters (nothing was proposed)
 *     409 membership-change-pending  another membership change is under way (Retry-After: 1)
 *     409 learner-behind  the learner to promote has not caught up yet (Retry-After: 1)
 *     503 outcome-unknown, 504 outcome-unknown  for a membership change too: it may still complete
 *                         (GET /v1/members says whether it did)
 *     409 no-transfer-target  POST /v1/leader/transfer on a single-member cluster
 *     409 transfer-target-unavailable  the target has not answered within an election timeout
 *                         (down, paused, cut off): leadership stays, proposals were never refused
 *     401 unauthenticated  no credentials, an unknown token, a certificate not verified (WWW-Authenticate: Bearer)
 *     403 forbidden       the principal lacks the role the endpoint needs (the message names both)
 *     412 revision-mismatch  a put's if-mod-revision did not hold (nothing written; the current modRevision)
 *     400 bad-range, bad-token  a range without prefix or start, with both, an end not after start; a
 *         next that is not a continuation token
 *     400 bad-ttl         a lease grant's ttl is missing or not an integer in 1..9000000000 seconds
 *     400 bad-lease-id    a lease id in the path is not a positive integer (a bad ?lease= is bad-parameter)
 *     404 lease-not-found  the store does not hold the lease (never granted, revoked, expired, or expiring
 *                         now): on a revoke, keep-alive or lookup, and on a put or transaction naming it
 *                         (nothing was written)
 *     400 bad-json, bad-txn, too-many-operations, duplicate-key  a transaction's body (the error's `field`
 *         names the part at fault, e.g. then[2].put.key); 413 value-too-large, txn-too-large there too
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
 * This module turns requests into calls on a KvApiBackend and their outcomes into responses: it
 * routes here (handle, route) to the /v1/kv/{key} routes in http-kv-routes.ts, the cluster
 * routes (/healthz, /readyz, /v1/status, /metrics, /v1/leader/transfer) in http-cluster-routes.ts,
 * the membership routes (/v1/members) in http-member-routes.ts and the lease routes (/v1/leases)
 * in http-lease-routes.ts, which answer a RaftNode's refusals alike through http-raft-errors.ts. The server and its
 * resource bounds are set up in http-server.ts; the byte-level decoding and encoding is in http-io.ts.
 */
import type { BackupSource } from './backup-format.js';
import { serveBackup, SNAPSHOT_PATH } from './http-backup-routes.js';
import { serveWatch, WATCH_PATH } from './http-watch-routes.js';
import type { WatchHub } from './watch-hub.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MembershipStep } from '../core/membership.js';
import type { Principal } from '../security/auth-file.js';
import type { KvServerStatus, MembersView } from './api-types.js';
import type { KvKeyMeta, KvResult } from './commands.js';
import type { KvRangeBounds, KvRangePage, KvRangeQuery } from './state-machine.js';
import type { KvLeaseView } from './replica.js';
import type { LeaseInfo } from './lease-table.js';
import { describeError } from './describe-error.js';
import { ClusterRoutes, TRANSFER_PATH } from './http-cluster-routes.js';
import { discardUnreadBody, expectsContinue, HttpError, type HttpStats, sendError } from './http-io.js';
import { KV_PREFIX, KvRoutes } from './http-kv-routes.js';
import { TXN_PATH } from './http-txn.js';
import { MEMBERS_PATH, MemberRoutes } from './http-member-routes.js';
import { LEASES_PATH, LeaseRoutes } from './http-lease-routes.js';
import { EVENTS_PATH, isUiPath, UiRoutes } from './http-ui-routes.js';
import { DEV_FAULTS_PATH, type DevFaults, serveDevFaults } from './http-dev-routes.js';
import type { HttpLimits } from './http-limits.js';
import { type HttpTlsOptions, type KvHttpServer, startBoundedHttpServer } from './http-server.js';

export * from './http-limits.js';
export { REQUEST_SEQ_MAX } from './http-kv-routes.js';
export { HTTP_HEADER_BYTES_MAX, type HttpTlsOptions, type KvHttpServer } from './http-server.js';

/**
 * What the HTTP API needs from the member it serves. A narrow interface rather than the KvServer
 * itself, so the API cannot reach into Raft beyond the operations it answers requests with.
 */
export interface KvApiBackend {
  /** How linearizable reads are served: confirm leadership then read locally, or a `get` through the log. */
  readonly readMode: 'read-index' | 'log';
  /**
   * Reads the key from this node's state machine, with the index it has applied, the store
   * revision and the key's revisions and lease (when present; optional for backends without them).
   */
  readLocal(key: Uint8Array): { value: Uint8Array | null; index: number; revision?: number; key?: KvKeyMeta & { lease?: number } };
  /** One page of a range from this node's state machine (GET /v1/kv?prefix=...); without it, ranges answer 501. */
  rangeLocal?(query: KvRangeQuery): KvRangePage & { index: number };
  /** The number of keys in a range in this node's state machine (count-only=true). */
  countLocal?(bounds: KvRangeBounds): { count: number; revision: number; index: number };
  /** Confirms leadership for a linearizable read (ReadIndex); rejects with the RaftNode's errors. */
  confirmRead(): Promise<unknown>;
  /**
   * Proposes an encoded KvCommand and waits for it to be applied; rejects with the RaftNode's
   * errors. `result` is undefined if the state machine no longer held it by then.
   */
  commit(command: Uint8Array): Promise<{ index: number; result: KvResult }>;
  /**
   * Leases (POST /v1/leases/{id}/keepalive, GET /v1/leases/{id}, GET /v1/leases; grants and revokes
   * go through `commit`), each after confirming leadership (ReadIndex), rejecting with the
   * RaftNode's errors like confirmRead; null: the store does not hold the lease (or it is
   * expiring). Without them, those routes answer 501. See KvReplica.leaseKeepAlive and friends.
   */
  leaseKeepAlive?(id: number): Promise<{ ttlSeconds: number; revision: number } | null>;
  leaseInfo?(id: number, withKeys: boolean): Promise<KvLeaseView | null>;
  leaseList?(): Promise<{ leases: LeaseInfo[]; revision: number; index: number }>;
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
  /** The voters' ids now, this one included if it votes: a transfer's `to` must be another one of them. */
  voterIds?(): readonly number[];
  /**
   * Hands leadership to `to` (default: the most up-to-date follower) and resolves once the new
   * leader is known; resolves at once with this node when `to` is this node and it leads. Rejects
   * with NotLeaderError, ConfigError (a bad target), RaftError TSRAFT_TRANSFER_TIMEOUT or
   * NodeStoppedError. Without it, POST /v1/leader/transfer answers 501.
   */
  transferLeadership?(to: number | undefined): Promise<{ leaderId: number; previousLeaderId: number; term: number }>;
  /** The configuration in effect on this node (GET /v1/members). Without it, /v1/members answers 501. */
  members?(): MembersView;
  /**
   * Makes one membership change on this leader; resolves once it is complete with the index of the
   * entry that completed it. Rejects with RaftNode.changeMembership's errors (NotLeaderError,
   * MembershipChangeError, LeadershipTransferError, OutcomeUnknownError, ProposalTimeoutError,
   * NodeStoppedError). Without it, the changes answer 501.
   */
  changeMembership?(step: MembershipStep): Promise<{ index: number }>;
  /**
   * Who sends the request, once it is allowed `method` on `rawPath` (http-auth.ts): the principal,
   * or null when authorization is off or the endpoint is open; throws HttpError 401 / 403. Asked
   * before anything else is done. Without it, every request is anonymous and allowed.
   */
  authorize?(req: IncomingMessage, method: string, rawPath: string): Principal | null;
  /** True once KvServer.stop() closes the listener: every request then answers 503 stopped. */
  isStopping(): boolean;
  /** True once the RaftNode stopped (e.g. on a fatal error), for /healthz. */
  isNodeStopped(): boolean;
  status(): KvServerStatus;
  /** The /metrics page. */
  metricsText(): string;
  /**
   * Opens a dashboard event stream on `res` (GET /v1/events), answering 503 itself when full;
   * `authorization` is the viewer's header, for the peers it polls. Without it, /v1/events is 501.
   */
  openEvents?(res: ServerResponse, authorization: string | undefined): void;
  /**
   * A backup of the whole store (GET /v1/snapshot, backup.ts): on the leader, after a ReadIndex
   * round and once applied that far, the state machine's snapshot. Rejects with the RaftNode's
   * errors (NotLeaderError on a follower). Without it, /v1/snapshot is 501.
   */
  backup?(): Promise<BackupSource>;
  /** The changes this node applies, for GET /v1/watch (watch-hub.ts). Without it, /v1/watch is 501. */
  readonly watchHub?: WatchHub;
  /** The transport's dev fault switch (--dev-faults only); without it, /v1/dev/faults is 404. */
  readonly devFaults?: DevFaults;
  /** Called with the status of every response sent, for the metrics. */
  countResponse(status: number): void;
  log(line: string): void;
}

/**
 * Creates the API's HTTP server and listens; port 0 picks a free port (read it from `address()`).
 * `limits` is assumed valid (validateHttpLimits).
 */
export async function startHttpApi(
  backend: KvApiBackend,
  listen: { readonly host: string; readonly port: number },
  limits: HttpLimits = {},
  tls?: HttpTlsOptions,
): Promise<KvHttpServer> {
  return startBoundedHttpServer(
    listen,
    limits,
    (line) => backend.log(line),
    (stats) => {
      const api = new KvHttpApi(backend, stats);
      return (req, res) => api.handle(req, res);
    },
    tls,
  );
}

class KvHttpApi {
  private readonly cluster: ClusterRoutes;
  private readonly kv: KvRoutes;
  private readonly members: MemberRoutes;
  private readonly leases: LeaseRoutes;
  private readonly ui = new UiRoutes();

  constructor(
    private readonly backend: KvApiBackend,
    stats: HttpStats,
  ) {
    this.cluster = new ClusterRoutes(backend, stats);
    this.kv = new KvRoutes(backend, stats);
    this.members = new MemberRoutes(backend, stats);
    this.leases = new LeaseRoutes(backend, stats);
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    res.on('finish', () => this.backend.countResponse(res.statusCode));
    // An answer that goes out before the body arrived (redirect, error): discard the rest, bounded.
    res.once('prefinish', () => discardUnreadBody(req));
    // No `100 Continue` yet: unless readBody sends one, the body never comes, so do not wait for it.
    if (expectsContinue(req)) res.setHeader('Connection', 'close');
    this.route(req, res).catch((error: unknown) => {
      if (error instanceof HttpError) {
        sendError(res, error.status, error.code, error.message, error.extra, error.headers);
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
    // Before anything else (a redirect, a body, a 503): who asks, and may they?
    const principal = this.backend.authorize?.(req, method, rawPath) ?? null;
    if (this.backend.isStopping()) throw new HttpError(503, 'stopped', 'the server is stopping', { 'Retry-After': '1' });

    if (rawPath === '/healthz' || rawPath === '/readyz' || rawPath === '/v1/status' || rawPath === '/metrics') {
      if (method !== 'GET') throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${rawPath}; use GET`, { Allow: 'GET' });
      if (rawPath === '/healthz') this.cluster.serveHealth(res);
      else if (rawPath === '/readyz') this.cluster.serveReady(res);
      else if (rawPath === '/v1/status') this.cluster.serveStatus(res);
      else this.cluster.serveMetrics(res);
      return;
    }
    if (rawPath === TRANSFER_PATH) {
      if (method !== 'POST') throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${rawPath}; use POST`, { Allow: 'POST' });
      await this.cluster.serveTransfer(res, rawPath, rawQuery);
      return;
    }
    if (rawPath === MEMBERS_PATH || rawPath.startsWith(`${MEMBERS_PATH}/`)) {
      await this.members.serve(req, res, method, rawPath, rawQuery);
      return;
    }
    if (isUiPath(rawPath)) {
      await this.ui.serveStatic(res, method, rawPath);
      return;
    }
    if (rawPath === DEV_FAULTS_PATH) {
      serveDevFaults(this.backend.devFaults, res, method, rawQuery);
      return;
    }
    if (rawPath === WATCH_PATH) {
      if (this.backend.isNodeStopped()) {
        throw new HttpError(503, 'node-stopped', 'this node stopped on a fatal error and is exiting; watch on another member', { 'Retry-After': '1' });
      }
      serveWatch(this.backend.watchHub, req, res, method, rawQuery);
      return;
    }
    if (rawPath === SNAPSHOT_PATH) {
      await serveBackup(this.backend, res, method, rawPath, rawQuery);
      return;
    }
    if (rawPath === EVENTS_PATH) {
      if (method !== 'GET') throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${rawPath}; use GET`, { Allow: 'GET' });
      if (this.backend.openEvents === undefined) throw new HttpError(501, 'not-supported', 'this server has no event feed');
      this.backend.openEvents(res, req.headers.authorization);
      return;
    }
    const leases = rawPath === LEASES_PATH || rawPath.startsWith(`${LEASES_PATH}/`);
    if (rawPath === '/v1/kv' || rawPath.startsWith(KV_PREFIX) || rawPath === TXN_PATH || leases) {
      // A node whose Raft stopped must not answer from a state that no longer advances, not even
      // a stale read: it is about to exit and be restarted.
      if (this.backend.isNodeStopped()) {
        throw new HttpError(503, 'node-stopped', 'this node stopped on a fatal error and is exiting; ask another member', { 'Retry-After': '1' });
      }
      if (leases) await this.leases.serve(req, res, method, rawPath, rawQuery, principal);
      else if (rawPath === TXN_PATH) await this.kv.serveTxn(req, res, method, rawPath, rawQuery, principal);
      else await this.kv.serve(req, res, method, rawPath, rawQuery, principal);
      return;
    }
    throw new HttpError(404, 'no-route', `no such endpoint: ${rawPath}`);
  }
}
