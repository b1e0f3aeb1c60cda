/**
 * What KvClient takes and answers with (client.ts re-exports all of it): options, results, the
 * range, transaction, membership and lease shapes, and KvClientError.
 */
import type { KvClientTls } from './client-http.js';
import type { MembershipChangeResult, MembersView, MemberView } from './api-types.js';

/**
 * 'lease-not-found': the lease named (a revoke, a keep-alive, a put or txn attaching a key) does not
 * exist: it expired, was revoked or was never granted; nothing was written.
 */
export type KvClientErrorCode = 'timeout' | 'bad-request' | 'stale-request' | 'server-error' | 'outcome-unknown' | 'tls' | 'compacted' | 'lease-not-found';

export class KvClientError extends Error {
  override readonly name = 'KvClientError';
  constructor(
    readonly code: KvClientErrorCode,
    message: string,
    /** The HTTP status of the answer that caused it, if any. */
    readonly status?: number,
    /** The server's error code (e.g. 'invalid-key'), if any. */
    readonly serverCode?: string,
    options?: { cause?: unknown; compactRevision?: number },
  ) {
    super(message, options);
    if (options?.compactRevision !== undefined) this.compactRevision = options.compactRevision;
  }

  /** 'compacted' (a watch): the newest revision no longer available; start over after it. */
  readonly compactRevision?: number;
}

export interface KvClientOptions {
  /**
   * Base URLs of the members' HTTP APIs, e.g. `http://127.0.0.1:8080`. The client also remembers
   * (up to 16) members it was redirected to and that answered, so it keeps finding the cluster
   * after the members it was given have been replaced.
   */
  readonly endpoints: readonly string[];
  /** The exactly-once session id (default: a random UUID). Printable ASCII. */
  readonly clientId?: string;
  /** Overall time one operation may take, retries included (default 10 s). */
  readonly timeoutMs?: number;
  /**
   * One attempt's own deadline (default 1 s, at most what is left of `timeoutMs`): an attempt that
   * gets no answer in time moves on to the next endpoint (see the module comment).
   */
  readonly attemptTimeoutMs?: number;
  /** The first retry delay (default 25 ms); it doubles per retry up to maxRetryDelayMs. */
  readonly retryDelayMs?: number;
  /** The largest retry delay (default 500 ms). */
  readonly maxRetryDelayMs?: number;
  /** For https:// endpoints: the CA (PEM) to verify servers with, and a client certificate and key to present. */
  readonly tls?: KvClientTls;
  /** A bearer token sent with every request (`Authorization: Bearer <token>`). */
  readonly token?: string;
  /**
   * The endpoint to try first, e.g. the leader an earlier client found (see `preferredEndpoint`);
   * ignored unless it is one of `endpoints`. Default: the first endpoint.
   */
  readonly preferredEndpoint?: string;
}

export interface KvWriteResult {
  /**
   * The log index where the write took effect. When a retry was answered from the session table
   * (an earlier attempt had already applied), the index of that earlier attempt, not the retry's.
   */
  readonly index: number;
  /** The value before the write (null if the key was absent), as text. */
  readonly previous: string | null;
  /**
   * The store revision once the write applied (for a write that changed the store, its own; a
   * retry answered from the session table reports the original's). Undefined only when the server
   * does not know it (a retry answered from a session restored from an old snapshot).
   */
  readonly revision?: number;
  /** The key's mod revision once the write applied (0: the key is absent, as after a delete). */
  readonly modRevision?: number;
  /**
   * Only for a put with `ifModRevision`: whether it was written. When not, nothing changed, and
   * `modRevision` is the key's current one (0: absent).
   */
  readonly written?: boolean;
}

/** A key's revisions (see the README's "Revisions"). */
export interface KvKeyRevisions {
  /** The store revision of the write that created the key (its latest creation). */
  readonly createRevision: number;
  /** The store revision of the key's last write. */
  readonly modRevision: number;
  /** Writes to the key since its creation. */
  readonly version: number;
}

/** A value read with its revisions (getWithRevisions). */
export interface KvReadResult extends KvKeyRevisions {
  readonly value: Uint8Array;
  /** The store revision the read reflects. */
  readonly revision: number;
  /** The lease the key is attached to, if any (it is deleted when that lease expires or is revoked). */
  readonly lease?: number;
}

/** One key of a range page. */
export interface KvRangeKv extends KvKeyRevisions {
  readonly key: Uint8Array;
  /** Absent with keysOnly. */
  readonly value?: Uint8Array;
  /** The lease the key is attached to, if any (it is deleted when that lease expires or is revoked). */
  readonly lease?: number;
}

/** Which keys a range reads: every key that starts with `prefix`, or [start, end) (no end: to the end of the keyspace). */
export type KvRangeSelector = { readonly prefix: KvKey } | { readonly start: KvKey; readonly end?: KvKey };

export interface KvRangeOptions {
  /** At most this many keys per page (1..10000; the server's default 1000). */
  readonly limit?: number;
  /** Leave the values out. */
  readonly keysOnly?: boolean;
  /** Resume after a previous page: its `next`. */
  readonly after?: string;
  /** Read this node's state without confirming it is up to date (any node). */
  readonly stale?: boolean;
}

/** One page of a range. */
export interface KvRangePage {
  readonly kvs: KvRangeKv[];
  /** Keys remain after this page (it was cut by its limit, or by the server's 4 MiB page bound). */
  readonly more: boolean;
  /** The token to pass as `after` for the next page; null when `more` is false. */
  readonly next: string | null;
  /** Keys in this page. */
  readonly count: number;
  /** The store revision the page reflects (pages read one after another may reflect different ones). */
  readonly revision: number;
}

export interface KvCasResult {
  readonly swapped: boolean;
  /** swapped: the value replaced (null if the key was absent); not swapped: the current value. */
  readonly value: string | null;
  /** The log index where the cas took effect (as KvWriteResult.index). */
  readonly index: number;
}

/** A transaction's compare (see the README's "Transactions"): an absent key has version, create and mod 0 and no value. */
export type KvTxnCompare =
  | { readonly key: KvKey; readonly target: 'value'; readonly op: '=' | '!=' | '<' | '>'; readonly value: KvValue }
  | { readonly key: KvKey; readonly target: 'version' | 'create' | 'mod'; readonly op: '=' | '!=' | '<' | '>'; readonly value: number }
  | { readonly key: KvKey; readonly target: 'exists'; readonly op: '=' | '!='; readonly value: boolean };

/** One op of a transaction's branch. */
export type KvTxnRequestOp =
  /** `lease`: attach the key to that lease (it must exist, else the whole txn is refused: 'lease-not-found'). */
  | { readonly put: { readonly key: KvKey; readonly value: KvValue; readonly lease?: number } }
  | { readonly delete: { readonly key: KvKey } }
  | { readonly get: { readonly key: KvKey } };

/** A transaction: if every compare holds, `then` runs, else `else`; atomically, in one log entry. */
export interface KvTxnRequest {
  readonly compare?: readonly KvTxnCompare[];
  readonly then?: readonly KvTxnRequestOp[];
  readonly else?: readonly KvTxnRequestOp[];
}

/** The result of one op of the branch that ran. */
export type KvTxnOpResult =
  | { readonly type: 'put'; readonly previous: Uint8Array | null; readonly revisions: KvKeyRevisions }
  | { readonly type: 'delete'; readonly deleted: boolean; readonly previous: Uint8Array | null }
  /** `value` null (and no revisions) when the key is absent at that point of the branch. */
  | { readonly type: 'get'; readonly value: Uint8Array | null; readonly revisions?: KvKeyRevisions };

export interface KvTxnResponse {
  /** Whether every compare held: `then` ran (else `else` did). */
  readonly succeeded: boolean;
  /** The store revision once the transaction applied (its writes' own, when it wrote). */
  readonly revision: number;
  /** The log index where it took effect (as KvWriteResult.index). */
  readonly index: number;
  /** One per op of the branch that ran, in order. */
  readonly results: readonly KvTxnOpResult[];
}

/** A member as GET /v1/members describes it (`raft`/`http` null when no address is known for it). */
export type KvMember = MemberView;
/** The cluster's configuration (GET /v1/members). */
export type KvMembers = MembersView;
/** What a completed membership change answers: the configuration, and the index that completed it. */
export type KvMembershipChange = MembershipChangeResult;

export type KvMemberRole = 'learner' | 'voter';

export interface KvNewMember {
  readonly id: number;
  /** Its raft address, HOST:PORT. */
  readonly raft: string;
  /** Its HTTP API's base URL, e.g. http://127.0.0.1:8003. */
  readonly http: string;
  /** Default 'learner' (catches up without counting in any majority; promote it afterwards). */
  readonly role?: KvMemberRole;
}

/** A lease just granted (leaseGrant). */
export interface KvLeaseGrant {
  readonly id: number;
  /** Its TTL, in seconds. */
  readonly ttl: number;
  /** The store revision when it was granted (a grant does not change it). */
  readonly revision: number;
  /** The log index where the grant took effect (a retry answered from the session table: the original's). */
  readonly index: number;
}

/** A lease just revoked (leaseRevoke): its keys were deleted at `revision`. */
export interface KvLeaseRevoke {
  readonly id: number;
  readonly ttl: number;
  /** How many keys were deleted with it. */
  readonly deleted: number;
  readonly revision: number;
  readonly index: number;
}

/** A lease just kept alive (leaseKeepAlive): the leader restarted its clock at `ttl` seconds. */
export interface KvLeaseKeepAlive {
  readonly id: number;
  readonly ttl: number;
  readonly revision: number;
}

/** What the leader knows of a lease (leaseTimeToLive). */
export interface KvLeaseTimeToLive {
  readonly id: number;
  /** The TTL it was granted with, in seconds. */
  readonly ttl: number;
  /** Seconds left on the leader's clock (millisecond precision) unless it is kept alive. */
  readonly remaining: number;
  /** Keys attached to it. */
  readonly keyCount: number;
  /** The keys attached to it, in key-byte order (only when asked for with `keys`). */
  readonly keys?: readonly Uint8Array[];
  readonly revision: number;
}

/** One lease of leaseList(). */
export interface KvLeaseSummary {
  readonly id: number;
  readonly ttl: number;
  readonly keyCount: number;
}

/** Every lease the store holds (leaseList), in id order. */
export interface KvLeaseList {
  readonly leases: readonly KvLeaseSummary[];
  readonly revision: number;
}

export interface KvLeaseKeeperOptions {
  /**
   * Time between keep-alives (default a third of the lease's TTL, as the first keep-alive reports
   * it). More than the TTL lets the lease expire between them.
   */
  readonly intervalMs?: number;
  /** Called after each keep-alive the leader confirmed (the first one included). */
  readonly onRenewal?: (renewal: KvLeaseKeepAlive) => void;
}

/** A lease kept alive in the background (keepLeaseAlive). */
export interface KvLeaseKeeper {
  /** Stops sending keep-alives (the lease then expires after its TTL, unless revoked); `done` resolves. Idempotent. */
  stop(): void;
  /**
   * Resolves once stop() is called. Rejects when the lease is lost: KvClientError 'lease-not-found'
   * (it expired or was revoked), 'timeout' (no keep-alive was confirmed within one TTL of the last
   * one, so it may have expired), or the first keep-alive's own error.
   */
  readonly done: Promise<void>;
}

export type KvKey = string | Uint8Array;
export type KvValue = string | Uint8Array;
