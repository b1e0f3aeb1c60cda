/**
 * KvClient: a client of the replicated KV service's HTTP API (see src/kv/server.ts), for the CLI,
 * tests and benchmarks. It uses the global fetch (keep-alive connections by default), or, given
 * `tls` (a CA to verify https:// servers, a client certificate), a connection pool of its own
 * (client-http.ts): close() releases it. A `token` goes on every request, retries and redirects
 * included, as `Authorization: Bearer`, and never into an error message.
 * - TLS: a server certificate that does not verify (or a server that does not speak TLS) is not
 *   worth retrying; once every endpoint has failed so (or the one endpoint asked), the operation
 *   rejects at once with code 'tls', naming the reason and the OpenSSL code.
 *
 * - Leader finding: requests go to the last endpoint that answered well; a 307 from a follower is
 *   followed by hand (`redirect: 'manual'`) and its target remembered (client-endpoints.ts).
 * - Attempts: each has its own deadline (`attemptTimeoutMs`, default 1 s, at most what is left of
 *   `timeoutMs`), so a hung member (SIGSTOPped: accepts connections, never answers) costs one
 *   attempt, then is avoided for a while (client-endpoints.ts). A write whose attempt timed out
 *   may have applied: it is resent with the same session pair (below), so it applies once.
 *   Transfers and membership changes wait on the server: their attempts get at least 12 s.
 * - Retries: connection errors, 502/503/504 and redirect loops are retried with jittered exponential
 *   backoff (from `retryDelayMs`, at most `maxRetryDelayMs`) until the operation's overall
 *   `timeoutMs`, moving on to the next endpoint when the one tried is unreachable or knows no leader.
 *   Then the operation rejects with KvClientError code 'timeout', carrying the last error as `cause`.
 * - Exactly-once: every write carries X-Client-Id / X-Request-Seq, and every retry of one write
 *   sends the same pair, so it applies once however often it is resent, and the answer (to
 *   whichever attempt) reports the index where it took effect. A session sends one write
 *   at a time; concurrent writes on one KvClient use further sessions (`<clientId>.<n>`), so a
 *   KvClient may be shared by concurrent callers. A client id must not be reused by another client
 *   instance (its seqs restart at 1 and would be refused as stale): keep the random default.
 * - Client mistakes (invalid key, value too large, ...) reject at once with code 'bad-request'.
 * - Revisions and ranges: write results carry the store `revision` and the key's `modRevision`;
 *   put(key, value, { ifModRevision }) resolves with `written: false` when the condition fails (412
 *   revision-mismatch is an answer, not an error); getWithRevisions() reads a key with its revisions.
 *   range() reads one page of GET /v1/kv (keys and values as bytes, base64 on the wire), and
 *   rangePages() / rangeAll() follow the `next` tokens page by page; count() counts a range.
 * - Transactions: txn({ compare, then, else }) is POST /v1/txn, sent like a write (a session, the
 *   same retries); keys and values go base64, results come back typed, values as bytes.
 * - Leases (client-lease.ts): leaseGrant/leaseRevoke/leaseKeepAlive/leaseTimeToLive/leaseList go to
 *   the leader like writes (only it times leases); a grant and a revoke carry a session, so a
 *   resent one applies once. put(key, value, { lease }) and a txn put's `lease` attach a key.
 *   keepLeaseAlive() keeps a lease alive in the background. A lease the store does not hold is
 *   KvClientError 'lease-not-found' (404), whatever named it.
 * - transferLeadership() asks the leader (found the same way) to hand leadership over. It is
 *   resent only when nothing can have happened (a refused connection, a redirect, 503 no-leader);
 *   without a target, a request that may have reached the leader but got no answer rejects with
 *   code 'outcome-unknown' (resending it could move leadership twice).
 * - Membership: members() reads the configuration (GET /v1/members, from the leader when it can be
 *   reached, so that every member's `match` is known); addMember(), promoteMember() and
 *   removeMember() go to the leader like writes and answer once the change is complete. 409
 *   membership-change-pending (another change is under way) and learner-behind (the learner to
 *   promote is still catching up) are retried with backoff, like 503, until `timeoutMs`; the
 *   rejection then carries the last answer's status, server code and message. A change resent after
 *   an attempt whose outcome is unknown (no answer, 503/504 outcome-unknown, 504 timeout) may find
 *   it already made: a 400 invalid-membership-change is then checked against the configuration,
 *   and the change resolves if it is in effect.
 */
import { randomUUID } from 'node:crypto';
import { CLIENT_ID_BYTES_MAX } from './commands.js';
import { BackupError, parseBackupFile, type BackupHeader } from './backup-format.js';
import { watchChanges, type KvWatchBatch, type KvWatchFilter, type KvWatchOptions } from './client-watch.js';
import { keepLeaseAlive, leaseIdSegment, parseLeaseGrant, parseLeaseKeepAlive, parseLeaseList, parseLeaseRevoke, parseLeaseTimeToLive } from './client-lease.js';
import { leaseTtlProblem } from './lease-commands.js';
import { ClientEndpoints, DEFAULT_ATTEMPT_TIMEOUT_MS, SilentEndpoints, SLOW_OPERATION_ATTEMPT_MS, attemptBudgetMs, checkAttemptTimeout } from './client-endpoints.js';
import { certificateFailure, clusterHttp, describeCertificateFailure, type ClusterHttp } from './client-http.js';

import type { KvServerStatus, LeaderTransferResult } from './api-types.js';
import {
  KvClientError,
  type KvCasResult,
  type KvClientOptions,
  type KvKey,
  type KvLeaseGrant,
  type KvLeaseKeepAlive,
  type KvLeaseKeeper,
  type KvLeaseKeeperOptions,
  type KvLeaseList,
  type KvLeaseRevoke,
  type KvLeaseTimeToLive,
  type KvMembers,
  type KvMembershipChange,
  type KvNewMember,
  type KvRangeKv,
  type KvRangeOptions,
  type KvRangePage,
  type KvRangeSelector,
  type KvReadResult,
  type KvTxnRequest,
  type KvTxnResponse,
  type KvValue,
  type KvWriteResult,
} from './client-types.js';
import { encoder, errorOf, parseMembers, parseTxnAnswer, percentEncodeBytes, toBytes, txnBody, valueBytes, valueText } from './client-wire.js';

export type { KvClientTls } from './client-http.js';
export * from './client-types.js';
export { parseMembers, percentEncodeBytes } from './client-wire.js';

/** How long members() waits for each further member it asks for a better view. */
const MEMBERS_PROBE_MS = 1_000;

/** The server codes of 409s that a membership change waits out (retried until the timeout). */
const MEMBERSHIP_RETRY_CODES = new Set(['membership-change-pending', 'learner-behind']);

interface Session {
  readonly id: string;
  seq: number;
}

interface Answer {
  readonly status: number;
  readonly json: Record<string, unknown>;
  /** A 2xx answer's body as bytes, for a request made with `raw` (json is then empty). */
  readonly bytes?: Uint8Array;
}

/** A put's if-mod-revision that did not hold: an answer, not an error. */
const REVISION_MISMATCH = (status: number, code: string | undefined): boolean => status === 412 && code === 'revision-mismatch';

/** The most sessions a client id may spread over: the suffix ".<n>" must fit CLIENT_ID_BYTES_MAX. */
const SESSION_SUFFIX_BYTES = 8;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}

/** Connect errors: the request cannot have been delivered. */
const NOT_DELIVERED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/** A fetch that failed before a connection was made: the request cannot have been delivered. */
function connectionRefused(error: unknown): boolean {
  const code = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return typeof code === 'string' && NOT_DELIVERED.has(code);
}

function hasMatch(m: KvMembers): boolean {
  return [...m.voters, ...m.outgoing, ...m.learners].some((x) => x.match !== undefined);
}

function sameUrl(a: string, b: string): boolean {
  return a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
}

function checkMemberId(id: number): void {
  if (!(Number.isSafeInteger(id) && id >= 0)) throw new KvClientError('bad-request', `a member id is a non-negative integer, got ${id}`);
}

export class KvClient {
  readonly clientId: string;
  /** The endpoints, and the one to try first. */
  private readonly endpoints: ClientEndpoints;
  private readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly retryDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly freeSessions: Session[] = [];
  private sessionsMade = 0;
  private readonly http: ClusterHttp;

  constructor(options: KvClientOptions) {
    this.endpoints = new ClientEndpoints(options.endpoints, options.preferredEndpoint);
    this.clientId = options.clientId ?? randomUUID();
    if (!/^[\x21-\x7e]+$/.test(this.clientId) || this.clientId.length > CLIENT_ID_BYTES_MAX - SESSION_SUFFIX_BYTES) {
      throw new RangeError(`clientId must be 1..${CLIENT_ID_BYTES_MAX - SESSION_SUFFIX_BYTES} printable ASCII characters`);
    }
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.attemptTimeoutMs = checkAttemptTimeout(options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS);
    this.retryDelayMs = options.retryDelayMs ?? 25;
    this.maxRetryDelayMs = Math.max(this.retryDelayMs, options.maxRetryDelayMs ?? 500);
    this.http = clusterHttp({ tls: options.tls, token: options.token });
  }

  /**
   * The endpoint the next operation tries first: the last one that answered well (normally the
   * leader), or where a redirect pointed. A later client given it as `preferredEndpoint` starts there.
   */
  get preferredEndpoint(): string {
    return this.endpoints.current;
  }

  /** Releases the client's own connections (a client with `tls`); calls after it fail. Idempotent. */
  close(): Promise<void> {
    return this.http.close();
  }

  /** The value as text (invalid UTF-8 decoded with U+FFFD), or null if the key is absent. */
  async get(key: KvKey, options: { stale?: boolean } = {}): Promise<string | null> {
    const answer = await this.request('GET', this.path(key, options.stale === true ? { stale: 'true' } : {}), { write: false });
    if (answer.status === 404) return null;
    return valueText(answer.json['value'], answer.json['encoding']);
  }

  /** The value's bytes, or null if the key is absent. */
  async getBytes(key: KvKey, options: { stale?: boolean } = {}): Promise<Uint8Array | null> {
    const query: Record<string, string> = { encoding: 'base64' };
    if (options.stale === true) query['stale'] = 'true';
    const answer = await this.request('GET', this.path(key, query), { write: false });
    if (answer.status === 404) return null;
    return valueBytes(answer.json['value'], answer.json['encoding']);
  }

  /**
   * Sets `key` to `value`. With `ifModRevision`, only if the key's mod revision is that (0: only if
   * the key is absent); a mismatch resolves with `written: false` and the key's current mod revision.
   * With `lease`, the key is attached to that lease (deleted when it expires or is revoked; an
   * unknown lease rejects with 'lease-not-found' and writes nothing); without, a put detaches the
   * key from any lease it had.
   */
  put(key: KvKey, value: KvValue, options: { ifModRevision?: number; lease?: number } = {}): Promise<KvWriteResult> {
    const condition = options.ifModRevision;
    if (condition !== undefined && !(Number.isSafeInteger(condition) && condition >= 0)) {
      return Promise.reject(new KvClientError('bad-request', `ifModRevision must be a non-negative integer, got ${condition}`));
    }
    const query: Record<string, string> = {};
    if (condition !== undefined) query['if-mod-revision'] = String(condition);
    try {
      if (options.lease !== undefined) query['lease'] = leaseIdSegment(options.lease);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.write('PUT', this.path(key, query), toBytes(value), condition !== undefined);
  }

  /** The value's bytes with the key's revisions and the store revision the read reflects, or null if absent. */
  async getWithRevisions(key: KvKey, options: { stale?: boolean } = {}): Promise<KvReadResult | null> {
    const query: Record<string, string> = { encoding: 'base64' };
    if (options.stale === true) query['stale'] = 'true';
    const answer = await this.request('GET', this.path(key, query), { write: false });
    if (answer.status === 404) return null;
    const j = answer.json;
    return {
      value: valueBytes(j['value'], j['encoding']) ?? new Uint8Array(0),
      revision: Number(j['revision']),
      createRevision: Number(j['createRevision']),
      modRevision: Number(j['modRevision']),
      version: Number(j['version']),
      ...(typeof j['lease'] === 'number' ? { lease: j['lease'] } : {}),
    };
  }

  /**
   * One page of a range, in key-byte order: linearizable (through the leader) unless `stale`.
   * Keys and values come back as bytes.
   */
  async range(selector: KvRangeSelector, options: KvRangeOptions = {}): Promise<KvRangePage> {
    const query: string[] = ['encoding=base64'];
    const b64 = (k: KvKey): string => encodeURIComponent(Buffer.from(toBytes(k)).toString('base64'));
    if ('prefix' in selector) query.push(`prefix=${b64(selector.prefix)}`);
    else {
      query.push(`start=${b64(selector.start)}`);
      if (selector.end !== undefined) query.push(`end=${b64(selector.end)}`);
    }
    if (options.limit !== undefined) query.push(`limit=${options.limit}`);
    if (options.keysOnly === true) query.push('keys-only=true');
    if (options.after !== undefined) query.push(`next=${encodeURIComponent(options.after)}`);
    if (options.stale === true) query.push('stale=true');
    const answer = await this.request('GET', `/v1/kv?${query.join('&')}`, { write: false });
    const j = answer.json;
    if (!Array.isArray(j['kvs'])) throw new KvClientError('server-error', 'malformed range answer: no kvs');
    const kvs = (j['kvs'] as Record<string, unknown>[]).map((kv): KvRangeKv => {
      const key = valueBytes(kv['key'], 'base64');
      if (key === null) throw new KvClientError('server-error', 'malformed range answer: a key is missing');
      const value = kv['value'] === undefined ? null : valueBytes(kv['value'], 'base64');
      return {
        key,
        ...(value === null ? {} : { value }),
        createRevision: Number(kv['createRevision']),
        modRevision: Number(kv['modRevision']),
        version: Number(kv['version']),
        ...(typeof kv['lease'] === 'number' ? { lease: kv['lease'] } : {}),
      };
    });
    const next = typeof j['next'] === 'string' ? j['next'] : null;
    return { kvs, more: j['more'] === true && next !== null, next, count: kvs.length, revision: Number(j['revision']) };
  }

  /** Every page of a range, one after another (each page's memory is bounded; the whole range is never held). */
  async *rangePages(selector: KvRangeSelector, options: Omit<KvRangeOptions, 'after'> = {}): AsyncGenerator<KvRangePage, void, undefined> {
    let after: string | undefined;
    for (;;) {
      const page = await this.range(selector, { ...options, ...(after === undefined ? {} : { after }) });
      yield page;
      if (!page.more || page.next === null) return;
      after = page.next;
    }
  }

  /** Every key of a range (and its value unless keysOnly), page by page. */
  async *rangeAll(selector: KvRangeSelector, options: Omit<KvRangeOptions, 'after'> = {}): AsyncGenerator<KvRangeKv, void, undefined> {
    for await (const page of this.rangePages(selector, options)) yield* page.kvs;
  }

  /** The number of keys in a range (counted on the server, linearizable unless `stale`). */
  async count(selector: KvRangeSelector, options: { stale?: boolean } = {}): Promise<{ count: number; revision: number }> {
    const b64 = (k: KvKey): string => encodeURIComponent(Buffer.from(toBytes(k)).toString('base64'));
    const query = ['encoding=base64', 'count-only=true'];
    if ('prefix' in selector) query.push(`prefix=${b64(selector.prefix)}`);
    else {
      query.push(`start=${b64(selector.start)}`);
      if (selector.end !== undefined) query.push(`end=${b64(selector.end)}`);
    }
    if (options.stale === true) query.push('stale=true');
    const answer = await this.request('GET', `/v1/kv?${query.join('&')}`, { write: false });
    return { count: Number(answer.json['count']), revision: Number(answer.json['revision']) };
  }

  append(key: KvKey, value: KvValue): Promise<KvWriteResult> {
    return this.write('POST', this.path(key, { op: 'append' }), toBytes(value));
  }

  delete(key: KvKey): Promise<KvWriteResult> {
    return this.write('DELETE', this.path(key, {}), undefined);
  }

  /** Sets `value` if the key holds `expected` (null: if the key is absent). */
  async cas(key: KvKey, expected: KvValue | null, value: KvValue): Promise<KvCasResult> {
    const query = expected === null ? 'cas-absent=true' : `cas=${percentEncodeBytes(toBytes(expected))}`;
    const answer = await this.withSession((session) =>
      this.request('POST', `${this.path(key, {})}?${query}`, { write: true, body: toBytes(value), session }),
    );
    const swapped = answer.json['swapped'] === true;
    const v = swapped ? answer.json['previous'] : answer.json['value'];
    return { swapped, value: valueText(v, answer.json['encoding']), index: Number(answer.json['index']) };
  }

  /**
   * A transaction (POST /v1/txn), sent like a write: to the leader, with a session so that a
   * retry applies it once. Keys and values go as base64, so any bytes are fine. A request the
   * server refuses (a bad field, a key written twice in a branch, too many ops) rejects with
   * 'bad-request', the field at fault in the message.
   */
  async txn(request: KvTxnRequest): Promise<KvTxnResponse> {
    const body = encoder.encode(JSON.stringify(txnBody(request)));
    const answer = await this.withSession((session) => this.request('POST', '/v1/txn', { write: true, body, session, contentType: 'application/json' }));
    return parseTxnAnswer(answer.json);
  }

  /**
   * A backup of the whole store, from the leader (GET /v1/snapshot): the bytes of a backup file,
   * its header, length and SHA-256 checked before they are returned (a damaged download rejects
   * with 'server-error'; `tsraft snapshot save` also checks that the data restores). An attempt
   * may take `attemptTimeoutMs` (default the larger of the client's and 12 s): a large store takes
   * a while to send. Needs the admin role when the cluster checks tokens.
   */
  async backup(options: { attemptTimeoutMs?: number } = {}): Promise<{ bytes: Uint8Array; header: BackupHeader }> {
    const answer = await this.request('GET', '/v1/snapshot', {
      write: false,
      raw: true,
      attemptTimeoutMs: options.attemptTimeoutMs ?? Math.max(this.attemptTimeoutMs, SLOW_OPERATION_ATTEMPT_MS),
    });
    const bytes = answer.bytes ?? new Uint8Array(0);
    try {
      return { bytes, header: parseBackupFile(bytes).header };
    } catch (error) {
      if (error instanceof BackupError) throw new KvClientError('server-error', `the backup received is not usable: ${error.message}`);
      throw error;
    }
  }

  /**
   * The changes to one key, a prefix or a range, revision by revision (GET /v1/watch; see
   * client-watch.ts): `for await (const { revision, events } of client.watch({ prefix: 'app/' }))`.
   * Resumes on another member when its node goes away, without losing or repeating a revision.
   * Rejects with code 'compacted' (and `compactRevision`) when `fromRevision` is older than the
   * node's history, 'timeout' when no member accepts the watch within the client's timeout.
   */
  watch(filter: KvWatchFilter, options: KvWatchOptions = {}): AsyncGenerator<KvWatchBatch> {
    return watchChanges(
      {
        fetch: (url, init) => this.http.fetch(url, init),
        endpoints: this.endpoints,
        timeoutMs: this.timeoutMs,
        retryDelayMs: this.retryDelayMs,
        maxRetryDelayMs: this.maxRetryDelayMs,
        fail: (code, message, status, serverCode, compactRevision) =>
          new KvClientError(code, message, status, serverCode, compactRevision === undefined ? {} : { compactRevision }),
      },
      filter,
      options,
    );
  }

  /** Grants a lease of `ttlSeconds` (1..9e9), sent like a write (a retry answers the same lease). */
  async leaseGrant(ttlSeconds: number): Promise<KvLeaseGrant> {
    const problem = leaseTtlProblem(ttlSeconds);
    if (problem !== null) throw new KvClientError('bad-request', problem);
    const body = encoder.encode(JSON.stringify({ ttl: ttlSeconds }));
    const answer = await this.withSession((session) => this.request('POST', '/v1/leases', { write: true, body, session, contentType: 'application/json' }));
    return parseLeaseGrant(answer.json);
  }

  /**
   * Revokes lease `id`: it is gone and its keys are deleted, all at one revision. Sent like a write
   * (a resent revoke that had applied answers as the first did, not 'lease-not-found').
   */
  async leaseRevoke(id: number): Promise<KvLeaseRevoke> {
    const path = `/v1/leases/${leaseIdSegment(id)}`;
    const answer = await this.withSession((session) => this.request('DELETE', path, { write: true, session }));
    return parseLeaseRevoke(answer.json);
  }

  /** Restarts lease `id`'s clock on the leader at its full TTL (see keepLeaseAlive() for a loop). */
  leaseKeepAlive(id: number): Promise<KvLeaseKeepAlive> {
    return this.sendLeaseKeepAlive(id, this.timeoutMs);
  }

  /** What the leader knows of lease `id`: its TTL, the seconds left, its keys (`keys: true` lists them). */
  async leaseTimeToLive(id: number, options: { keys?: boolean } = {}): Promise<KvLeaseTimeToLive> {
    const path = `/v1/leases/${leaseIdSegment(id)}${options.keys === true ? '?keys=true&encoding=base64' : ''}`;
    return parseLeaseTimeToLive((await this.request('GET', path, { write: false })).json);
  }

  /** Every lease the store holds, from the leader. */
  async leaseList(): Promise<KvLeaseList> {
    return parseLeaseList((await this.request('GET', '/v1/leases', { write: false })).json);
  }

  /**
   * Keeps lease `id` alive in the background: a keep-alive every TTL/3 (or `intervalMs`), until
   * stop(). `done` rejects when the lease is lost ('lease-not-found': it expired or was revoked;
   * 'timeout': no keep-alive was confirmed for a whole TTL). See client-lease.ts.
   */
  keepLeaseAlive(id: number, options: KvLeaseKeeperOptions = {}): KvLeaseKeeper {
    leaseIdSegment(id);
    return keepLeaseAlive(id, (timeoutMs) => this.sendLeaseKeepAlive(id, timeoutMs), this.timeoutMs, options);
  }

  /** A member's status (default: the current endpoint's). */
  async status(endpoint?: string): Promise<KvServerStatus> {
    const answer = await this.request('GET', '/v1/status', { write: false, ...(endpoint === undefined ? {} : { endpoint: endpoint.replace(/\/+$/, '') }) });
    return answer.json as unknown as KvServerStatus;
  }

  /**
   * Asks the leader to hand leadership to member `to` (default: its most up-to-date follower) and
   * resolves once the new leader is known. Rejects with KvClientError: 'bad-request' (400: `to` is
   * not another member, the message names the members; 409 no-transfer-target or
   * transfer-target-unavailable: the target has not answered lately), 'server-error'
   * with serverCode 'transfer-timeout' (504: no new leader in time, proposals resumed on the old
   * one), 'outcome-unknown' (see the module comment) or 'timeout' (no leader reached in time).
   */
  async transferLeadership(to?: number): Promise<LeaderTransferResult> {
    if (to !== undefined && !(Number.isSafeInteger(to) && to >= 0)) throw new KvClientError('bad-request', `a member id is a non-negative integer, got ${to}`);
    const answer = await this.request('POST', `/v1/leader/transfer${to === undefined ? '' : `?to=${to}`}`, {
      write: false,
      // Final answers: a transfer that timed out is not retried (the old leader leads again).
      final: (_status, code) => code === 'transfer-timeout',
      // With a target, a resend is harmless (a target that already leads answers at once).
      resendUnanswered: (error) => to !== undefined || connectionRefused(error),
      attemptTimeoutMs: Math.max(this.attemptTimeoutMs, SLOW_OPERATION_ATTEMPT_MS),
    });
    const j = answer.json;
    if (typeof j['leaderId'] !== 'number' || typeof j['previousLeaderId'] !== 'number') {
      throw new KvClientError('server-error', `malformed answer to a leadership transfer: ${JSON.stringify(j).slice(0, 200)}`);
    }
    return {
      leaderId: j['leaderId'],
      leaderUrl: typeof j['leaderUrl'] === 'string' ? j['leaderUrl'] : null,
      previousLeaderId: j['previousLeaderId'],
      term: typeof j['term'] === 'number' ? j['term'] : -1,
    };
  }

  /**
   * The cluster's configuration: voters, outgoing voters (during a change), learners, the leader.
   * Any member answers with its own view; unless the leader answered (its view has every member's
   * `match`), the leader that view names is asked, then the other endpoints (a removed member may
   * be left with an old configuration and no leader), each briefly. Returns the leader's view if
   * one was reached, else the first view that knows a leader, else the first.
   */
  async members(): Promise<KvMembers> {
    const answer = await this.request('GET', '/v1/members', { write: false });
    const first = parseMembers(answer.json);
    if (hasMatch(first)) return first;
    const answered = this.endpoints.current;
    let best = first;
    const leaderUrl = [...first.voters, ...first.outgoing, ...first.learners].find((m) => m.id === first.leader)?.http?.replace(/\/+$/, '');
    const others = [...new Set([...(leaderUrl === undefined ? [] : [leaderUrl]), ...this.endpoints.all()])].filter((e) => e !== answered);
    for (const endpoint of others) {
      let view: KvMembers;
      try {
        view = parseMembers((await this.request('GET', '/v1/members', { write: false, endpoint, attempts: 1, attemptTimeoutMs: MEMBERS_PROBE_MS })).json);
      } catch {
        continue; // the leader's view is a nicety: a member's is still right
      }
      if (hasMatch(view)) return view;
      if (best.leader === null && view.leader !== null) best = view;
    }
    return best;
  }

  /**
   * Adds a member (default as a learner) and resolves once the change is complete. Rejects with
   * KvClientError 'bad-request' (400 invalid-membership-change: e.g. the id or an address is
   * taken), 'timeout' (no leader in time, or another change kept the way blocked: `serverCode` says
   * which) or 'server-error'.
   */
  addMember(member: KvNewMember): Promise<KvMembershipChange> {
    checkMemberId(member.id);
    const role = member.role ?? 'learner';
    const body = JSON.stringify({ id: member.id, raft: member.raft, http: member.http, role });
    return this.changeMembers('POST', '/v1/members', body, (m) => {
      const found = (role === 'learner' ? [...m.learners, ...m.voters] : m.voters).find((x) => x.id === member.id);
      return found !== undefined && found.raft === member.raft && found.http !== null && sameUrl(found.http, member.http);
    });
  }

  /** Makes learner `id` a voter; waits (retrying 409 learner-behind) while it catches up. */
  promoteMember(id: number): Promise<KvMembershipChange> {
    checkMemberId(id);
    return this.changeMembers('POST', `/v1/members/${id}/promote`, undefined, (m) => !m.joint && m.voters.some((x) => x.id === id));
  }

  /** Removes member `id` (a voter, the leader included, or a learner). */
  removeMember(id: number): Promise<KvMembershipChange> {
    checkMemberId(id);
    return this.changeMembers('DELETE', `/v1/members/${id}`, undefined, (m) => !m.joint && ![...m.voters, ...m.outgoing, ...m.learners].some((x) => x.id === id));
  }

  // ------------------------------------------------------------------ internals

  /** One keep-alive of lease `id`, resent within `timeoutMs` (it changes nothing in the log, so resending is harmless). */
  private async sendLeaseKeepAlive(id: number, timeoutMs: number): Promise<KvLeaseKeepAlive> {
    const answer = await this.request('POST', `/v1/leases/${leaseIdSegment(id)}/keepalive`, { write: false, timeoutMs });
    return parseLeaseKeepAlive(answer.json);
  }

  /**
   * One membership change: sent to the leader, 409 pending / learner-behind retried; a 400 after
   * an attempt with an unknown outcome resolves if `done` holds for the configuration now.
   */
  private async changeMembers(method: string, path: string, body: string | undefined, done: (members: KvMembers) => boolean): Promise<KvMembershipChange> {
    let uncertain = false;
    let answer: Answer;
    try {
      answer = await this.request(method, path, {
        write: false,
        ...(body === undefined ? {} : { body: encoder.encode(body), contentType: 'application/json' }),
        retry: (status, code) => status === 409 && code !== undefined && MEMBERSHIP_RETRY_CODES.has(code),
        onUncertain: () => (uncertain = true),
        attemptTimeoutMs: Math.max(this.attemptTimeoutMs, SLOW_OPERATION_ATTEMPT_MS),
      });
    } catch (error) {
      if (uncertain && error instanceof KvClientError && error.code === 'bad-request' && error.serverCode === 'invalid-membership-change') {
        const now = await this.members().catch(() => undefined);
        if (now !== undefined && done(now)) return { ...now, index: now.membershipIndex };
      }
      throw error;
    }
    const members = parseMembers(answer.json);
    const index = answer.json['index'];
    return { ...members, index: typeof index === 'number' ? index : members.membershipIndex };
  }

  private path(key: KvKey, query: Record<string, string>): string {
    const bytes = toBytes(key);
    const segment = percentEncodeBytes(bytes);
    // URL parsers treat "." and ".." (even percent-encoded) as dot segments and remove them.
    if (segment === '.' || segment === '..') throw new KvClientError('bad-request', `the key "${segment}" cannot be addressed in a URL path`);
    const q = Object.entries(query)
      .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
      .join('&');
    return `/v1/kv/${segment}${q === '' ? '' : `?${q}`}`;
  }

  private async write(method: string, pathAndQuery: string, body: Uint8Array | undefined, conditional = false): Promise<KvWriteResult> {
    const answer = await this.withSession((session) =>
      this.request(method, pathAndQuery, { write: true, session, ...(body === undefined ? {} : { body }), ...(conditional ? { accept: REVISION_MISMATCH } : {}) }),
    );
    const j = answer.json;
    const revision = typeof j['revision'] === 'number' ? { revision: j['revision'] } : {};
    if (answer.status === 412) {
      const e = j['error'] as Record<string, unknown>;
      return { index: Number(e['index']), previous: null, ...(typeof e['revision'] === 'number' ? { revision: e['revision'] } : {}), modRevision: Number(e['modRevision']), written: false };
    }
    return {
      index: Number(j['index']),
      previous: valueText(j['previous'], j['encoding']),
      ...revision,
      ...(typeof j['revision'] === 'number' ? { modRevision: typeof j['modRevision'] === 'number' ? j['modRevision'] : 0 } : {}),
      ...(conditional ? { written: true } : {}),
    };
  }

  /** Runs one write with a session of its own and the session's next seq. */
  private async withSession<T>(run: (session: { id: string; seq: number }) => Promise<T>): Promise<T> {
    let session = this.freeSessions.pop();
    if (session === undefined) {
      const n = this.sessionsMade++;
      session = { id: n === 0 ? this.clientId : `${this.clientId}.${n}`, seq: 0 };
    }
    session.seq++;
    try {
      return await run({ id: session.id, seq: session.seq });
    } finally {
      this.freeSessions.push(session);
    }
  }

  /** One operation: tries, follows redirects and retries until it gets a final answer or times out. */
  private async request(
    method: string,
    pathAndQuery: string,
    options: {
      write: boolean;
      body?: Uint8Array;
      session?: { id: string; seq: number };
      endpoint?: string;
      /** An error answer (status, error code) that is final, never retried. */
      final?: (status: number, code: string | undefined) => boolean;
      /** Whether an attempt that got no answer may be sent again (default: yes); if not, 'outcome-unknown'. */
      resendUnanswered?: (error: unknown) => boolean;
      /** An error answer (status, error code) to retry with backoff, at the same endpoint, until the timeout. */
      retry?: (status: number, code: string | undefined) => boolean;
      /** Called when an attempt may have reached the server without a definite answer (it may have taken effect). */
      onUncertain?: () => void;
      /** Content-Type of `body` (default application/octet-stream). */
      contentType?: string;
      /** An error answer (status, error code) that is a final answer, returned like a success. */
      accept?: (status: number, code: string | undefined) => boolean;
      /** At most this many attempts (default: until the timeout). */
      attempts?: number;
      /** The operation's overall time limit (default: the client's timeoutMs). */
      timeoutMs?: number;
      /** One attempt's own time limit (default: the client's attemptTimeoutMs; never more than what is left). */
      attemptTimeoutMs?: number;
      /** A 2xx answer's body is bytes (Answer.bytes), not JSON. */
      raw?: boolean;
    },
  ): Promise<Answer> {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const deadline = Date.now() + timeoutMs;
    const fixed = options.endpoint;
    let base = fixed ?? this.endpoints.current;
    let failures = 0;
    let hops = 0;
    const silent = new SilentEndpoints(2 * (options.attemptTimeoutMs ?? this.attemptTimeoutMs));
    let lastError: unknown;
    /** The last error that was not the deadline cutting an attempt short. */
    let lastAnswer: unknown;
    /** The status and server code of the last error answer, for the 'timeout' rejection. */
    let lastStatus: number | undefined;
    let lastCode: string | undefined;
    let attempts = 0;
    /** Endpoints whose TLS handshake failed in this operation (see certificateFailure). */
    const tlsFailed = new Set<string>();
    const headers: Record<string, string> = {};
    if (options.session !== undefined) {
      headers['X-Client-Id'] = options.session.id;
      headers['X-Request-Seq'] = String(options.session.seq);
    }
    if (options.body !== undefined) headers['Content-Type'] = options.contentType ?? 'application/octet-stream';
    const backoff = async (): Promise<void> => {
      const delay = Math.min(this.maxRetryDelayMs, this.retryDelayMs * 2 ** Math.min(failures, 20));
      failures++;
      await sleep(Math.max(0, Math.min(delay * (0.5 + Math.random() / 2), deadline - Date.now())));
    };
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0 || (options.attempts !== undefined && attempts >= options.attempts)) {
        const before = lastAnswer !== undefined && lastAnswer !== lastError ? `; before that: ${describe(lastAnswer)}` : '';
        throw new KvClientError(
          'timeout',
          `${method} ${pathAndQuery} did not complete within ${timeoutMs} ms; last error: ${describe(lastError)}${before}`,
          lastStatus,
          lastCode,
          { cause: lastError },
        );
      }
      attempts++;
      const attempt = attemptBudgetMs(remaining, options.attemptTimeoutMs ?? this.attemptTimeoutMs);
      let status: number;
      let location: string | null;
      let text: string;
      let bytes: Uint8Array | undefined;
      try {
        const response = await this.http.fetch(base + pathAndQuery, {
          method,
          headers,
          redirect: 'manual',
          signal: AbortSignal.timeout(attempt.budgetMs),
          ...(options.body === undefined ? {} : { body: options.body }),
        });
        status = response.status;
        location = response.headers.get('location');
        if (options.raw === true && status >= 200 && status < 300) {
          bytes = new Uint8Array(await response.arrayBuffer());
          text = '';
        } else {
          text = await response.text();
        }
      } catch (error) {
        lastError = error;
        const tlsFailure = certificateFailure(error);
        if (tlsFailure !== undefined) {
          // The handshake failed, so nothing was sent; the same certificate fails the same way again.
          tlsFailed.add(base);
          if (fixed !== undefined || this.endpoints.all().every((e) => tlsFailed.has(e))) {
            throw new KvClientError('tls', describeCertificateFailure(base, tlsFailure, this.http.hasCa), undefined, undefined, { cause: error });
          }
          lastAnswer = error;
          lastStatus = lastCode = undefined;
          base = this.endpoints.next(base);
          continue;
        }
        const timedOut = error instanceof Error && error.name === 'TimeoutError';
        // The operation's deadline ends the loop below; only an attempt's own deadline is worth describing.
        const deadlineHit = timedOut && !attempt.cutShort;
        if (timedOut && attempt.cutShort) {
          lastError = new Error(`${base} did not answer within the attempt deadline of ${attempt.budgetMs} ms`, { cause: error });
          silent.silent(base);
        }
        if (!deadlineHit && options.resendUnanswered?.(error) === false) {
          throw new KvClientError(
            'outcome-unknown',
            `${method} ${base}${pathAndQuery} got no answer (${describe(lastError)}); it may have taken effect, so it was not sent again`,
            undefined,
            undefined,
            { cause: error },
          );
        }
        if (!deadlineHit) {
          lastAnswer = lastError;
          lastStatus = lastCode = undefined;
        }
        if (!connectionRefused(error)) options.onUncertain?.();
        if (fixed === undefined) base = this.endpoints.next(base, silent);
        await backoff();
        continue;
      }
      let json: Record<string, unknown> = {};
      try {
        const parsed: unknown = JSON.parse(text);
        if (typeof parsed === 'object' && parsed !== null) json = parsed as Record<string, unknown>;
      } catch {
        // not JSON: handled by status below
      }
      const { code, message } = errorOf(json);
      const detail = `${status}${code === undefined ? '' : ` ${code}`}: ${message ?? text.slice(0, 200)}`;

      if (status >= 300 && status < 400 && location !== null && fixed === undefined) {
        const target = new URL(location, base + pathAndQuery).href;
        const targetBase = target.endsWith(pathAndQuery) ? target.slice(0, target.length - pathAndQuery.length) : new URL(target).origin;
        lastError = lastAnswer = new Error(`redirected: ${detail}`);
        if (silent.avoided(targetBase)) {
          // A stale view of a leader that just did not answer: ask another member, after a pause.
          base = this.endpoints.next(base, silent);
          await backoff();
          continue;
        }
        base = targetBase;
        if (++hops > 2 * this.endpoints.all().length) {
          hops = 0;
          await backoff();
        }
        continue;
      }
      if ((status >= 200 && status < 300) || (status === 404 && code === 'not-found') || (status === 409 && json['swapped'] === false) || options.accept?.(status, code) === true) {
        if (fixed === undefined) this.endpoints.answered(base);
        return { status, json, ...(bytes === undefined ? {} : { bytes }) };
      }
      lastStatus = status;
      lastCode = code;
      if (options.final?.(status, code) === true) {
        throw new KvClientError(status >= 400 && status < 500 ? 'bad-request' : 'server-error', detail, status, code);
      }
      if (options.retry?.(status, code) === true) {
        lastError = lastAnswer = new Error(detail);
        await backoff();
        continue;
      }
      if (status === 502 || status === 503 || status === 504) {
        lastError = lastAnswer = new Error(detail);
        if (code === 'outcome-unknown' || code === 'timeout' || (status === 504 && code === undefined)) options.onUncertain?.();
        // Another member may know the leader (or be in the majority); a busy one is worth waiting for.
        if (fixed === undefined && code !== 'busy') base = this.endpoints.next(base, silent);
        await backoff();
        continue;
      }
      if (status === 409 && code === 'stale-request') throw new KvClientError('stale-request', detail, status, code);
      if (status === 404 && code === 'lease-not-found') throw new KvClientError('lease-not-found', detail, status, code);
      if (status >= 400 && status < 500) throw new KvClientError('bad-request', detail, status, code);
      throw new KvClientError('server-error', detail, status, code);
    }
  }
}
