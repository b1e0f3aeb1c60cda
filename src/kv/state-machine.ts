/**
 * The replicated KV store's deterministic core: applies committed log entries (encoded KvCommands)
 * to an in-memory map of byte keys to byte values, with client sessions for exactly-once semantics.
 *
 * Pure: no I/O, no clocks, no randomness, no dependence on Map iteration order except orders this
 * class establishes itself. Every replica that applies the same log computes the same results and
 * the same snapshot bytes.
 *
 * Keys are stored in a Map under their latin1 string form: one UTF-16 code unit (0..255) per byte.
 * It is lossless for any bytes and, unlike base64, JS string comparison (`<`) on it is exactly
 * lexicographic byte order. Beside the Map, an ordered index (a B+ tree, sorted-btree, over the same
 * latin1 keys and the same records) serves ranges in key-byte order: a range of k keys costs
 * O(log n + k), and snapshot() walks it instead of sorting. The Map answers point reads and writes
 * in O(1); the index is touched only when a key is created or deleted (an overwrite updates the
 * record both share).
 *
 * Revisions (as etcd's): the store has a revision, 0 initially, that every write which changes the
 * store advances by one: a put, an append, a delete of a present key, a cas that swaps, a put whose
 * ifModRevision holds, a transaction whose branch changes the store (all of its writes take that one
 * revision, and onChange reports each of them with it; a key is written at most once per branch, so
 * the invariants below hold). A delete of an absent key, a cas that does not swap, a put whose condition
 * fails, a get, a duplicate and an invalid or stale command leave it alone. Each present key records
 * createRevision (the write that created it: after a delete, the re-creation), modRevision (its last
 * write) and version (its writes since creation: 1 after the creating write, reset by a delete).
 * Results carry the revision once the command applied and the key's revisions (commands.ts), and
 * sessions cache them, so a retried write answers with the revision of the original.
 *
 * Ownership: values stored and results cached are never mutated in place (puts store the freshly
 * decoded bytes, appends build a new array), so results may share them internally; everything
 * handed out through the public API (get, getWithMeta, range, applyCommand) is a copy. Records are
 * updated in place, so every result gets its own KvKeyMeta object.
 *
 * Leases (lease-table.ts, lease-commands.ts): a key may be attached to a lease (a put with
 * `lease`; a put without one detaches it, an append or a cas keeps it). A grant does not change the
 * store, so it takes no revision; a revoke deletes the lease's keys, all at one new revision (none
 * when it has no keys), in ascending key order. A put or a transaction naming a lease the store
 * does not hold answers `lease-not-found` and writes nothing.
 *
 * Snapshot format (varints and length-prefixed byte strings as in src/codec/codec.ts), version 4:
 *
 *     version (1 byte, SNAPSHOT_VERSION = 4)  appliedIndex  revision
 *     key count, then per key in ascending byte order: key, value, createRevision, modRevision,
 *         version, lease (0: none)
 *     session count, then per session in ascending clientId order (JS string comparison):
 *         clientId (UTF-8), lastSeq, lastIndex, resultIndex, cached result (see writeKvResult)
 *     the lease table (lease-table.ts): lastId, lease count, per lease in ascending id: id, ttlSeconds
 *
 * with every key's lease 0 or a lease of the table. Version 3 is the same without the keys'
 * leases and the lease table (no leases).
 *
 * with 1 <= resultIndex <= lastIndex <= appliedIndex for every session, keyMetaProblem() null for
 * every key and for every cached result's key revisions (1 <= createRevision <= modRevision <=
 * revision, 1 <= version <= modRevision - createRevision + 1), and every cached result's revision
 * at most the snapshot's. Version 2 is the same without the revision and the keys' revisions;
 * version 1 also lacks resultIndex: restore() takes resultIndex = lastIndex, the latest index at
 * which the result may have taken effect (the true one is not known: it is at most lastIndex, and
 * equal to it unless a duplicate or a stale request touched the session later).
 *
 * Restoring version 1 or 2 (written before revisions existed), the history that revisions count is
 * gone, so the state is taken as written by one write: revision 1 (0 for an empty store), every key
 * at createRevision = modRevision = version = 1. It keeps the invariants above (so the next write
 * gets revision 2 and every modRevision is at most the revision), it depends on nothing but the
 * snapshot's bytes (every replica restoring it agrees), and it is what an `if-mod-revision=1`
 * can name. Revision numbers are not comparable with those a replica that replayed the old log
 * from its start would compute: a cluster upgraded from data of an older tsraft should take (or
 * install) a fresh version 3 snapshot on every node before clients rely on revisions across
 * leaders. Cached results of version 1 and 2 sessions have no revision, and a retry answered from
 * them reports none.
 *
 * snapshot() always writes version 4; snapshotBody() writes the same bytes as a list of pieces.
 *
 * The encoding is canonical: restore() rejects unsorted or duplicate keys and sessions, so a
 * machine restored from a version 3 snapshot re-snapshots to the very same bytes.
 *
 * Ranges (range(), count()): keys in [start, end) (end null: to the end of the keyspace), in
 * ascending byte order, optionally strictly after a continuation key, at most `limit` keys and
 * about `bytesMax` bytes of keys and values per page (always at least one key), with `more` when
 * keys remain. prefixEnd() turns a prefix into its range's end.
 */
import btree from 'sorted-btree';
import { bulkLoad } from 'sorted-btree/extended/bulkLoad.js';
import { SnapshotBodyReader } from '../codec/body-reader.js';
import { ByteReader, ByteWriter, charString, CodecError, type ByteSource } from '../codec/codec.js';
import type { Entry, LogIndex, Snapshot, SnapshotBody } from '../core/messages.js';
import { ChunkedSnapshotBody, SNAPSHOT_PIECE_BYTES, snapshotBodyBytes, type SnapshotAssembly } from '../core/snapshot-body.js';
import type { StateMachine } from '../runtime/node.js';
import {
  decodeKvCommand,
  KEY_BYTES_MAX,
  keyMetaProblem,
  readKvResult,
  TXN_RESULT_BYTES_MAX,
  utf8Decode,
  utf8Encode,
  validateKvCommand,
  VALUE_BYTES_MAX,
  writeKvResult,
  type KvAnyCommand,
  type KvCompare,
  type KvKeyMeta,
  type KvResult,
  type KvTxnCommand,
  type KvTxnOp,
  type KvTxnOpResult,
} from './commands.js';
import type { KvLeaseCommand } from './lease-commands.js';
import { LeaseTable, type LeaseInfo } from './lease-table.js';

/** The B+ tree class (sorted-btree is CommonJS: its class is the module's `default`). */
const BTree = btree.default;
type BTree<K, V> = InstanceType<typeof btree.default<K, V>>;

/** One change to one key, as applied (for watches). */
export interface KvChange {
  readonly type: 'put' | 'delete';
  readonly key: Uint8Array;
  /** put: the new value. */
  readonly value?: Uint8Array;
  /** The key's create revision after a put (0 after a delete). */
  readonly createRevision: number;
  /** The key's version after a put (0 after a delete). */
  readonly version: number;
}

/** A lease granted or revoked, as applied (the leader's lease keeper starts and stops its clock). */
export type KvLeaseEvent = { readonly type: 'grant'; readonly id: number; readonly ttlSeconds: number } | { readonly type: 'revoke'; readonly id: number };

/** The version byte snapshot() writes: 4, with leases. */
export const SNAPSHOT_VERSION = 4;
/** The oldest version restore() accepts: 1, sessions without resultIndex. */
export const SNAPSHOT_VERSION_MIN = 1;
/** Default bound on client sessions. */
export const DEFAULT_MAX_SESSIONS = 10_000;

export interface KvStateMachineOptions {
  /**
   * Client sessions kept (default 10,000, at least 1). Beyond it the session with the oldest last
   * activity (log index of its last command; ties by clientId) is evicted, and that client loses
   * duplicate detection for requests it sent before. Every replica must use the same value.
   */
  readonly maxSessions?: number;
}

/** Default and largest `limit` of a range page. */
export const RANGE_LIMIT_DEFAULT = 1000;
export const RANGE_LIMIT_MAX = 10_000;
/** Default bound on a range page's keys and values, in bytes (a page always holds at least one key). */
export const RANGE_BYTES_DEFAULT = 4 * 1024 * 1024;

/** A range of keys: [start, end), end null for "to the end of the keyspace". */
export interface KvRangeBounds {
  readonly start: Uint8Array;
  readonly end: Uint8Array | null;
  /** Resume strictly after this key (a continuation token's key). */
  readonly after?: Uint8Array;
}

export interface KvRangeQuery extends KvRangeBounds {
  /** At most this many keys (1..RANGE_LIMIT_MAX, default RANGE_LIMIT_DEFAULT). */
  readonly limit?: number;
  /** Stop before the page's keys and values pass this many bytes (default RANGE_BYTES_DEFAULT), but take at least one key. */
  readonly bytesMax?: number;
  /** Leave the values out (and out of the byte count). */
  readonly keysOnly?: boolean;
}

export interface KvRangeItem extends KvKeyMeta {
  readonly key: Uint8Array;
  /** Absent with keysOnly. */
  readonly value?: Uint8Array;
  /** The lease the key is attached to; absent when none. */
  readonly lease?: number;
}

export interface KvRangePage {
  readonly kvs: KvRangeItem[];
  /** Keys remain in the range after the last one in kvs (the page was cut by limit or bytes). */
  readonly more: boolean;
  /** The store revision the page reflects. */
  readonly revision: number;
}

/** The end of the range of keys that start with `prefix`: the prefix with its last byte below 0xff incremented; null (no end) for an empty prefix or one of only 0xff bytes. */
export function prefixEnd(prefix: Uint8Array): Uint8Array | null {
  let n = prefix.length;
  while (n > 0 && prefix[n - 1] === 0xff) n--;
  if (n === 0) return null;
  const end = prefix.slice(0, n);
  end[n - 1]!++;
  return end;
}

export interface KvStats {
  /** Number of keys. */
  readonly keys: number;
  /** Sum of key and value lengths, in bytes. */
  readonly bytes: number;
  /** Number of client sessions. */
  readonly sessions: number;
  /** Number of leases. */
  readonly leases: number;
}

export interface KvSessionInfo {
  readonly lastSeq: number;
  /** Log index of the session's last command (its last activity, which orders eviction). */
  readonly lastIndex: LogIndex;
  /**
   * Log index at which the command with seq lastSeq took effect: the index a duplicate of it
   * reports (KvResult.deduplicatedFrom). At most lastIndex.
   */
  readonly resultIndex: LogIndex;
}

interface Session {
  lastSeq: number;
  lastIndex: LogIndex;
  /** Where `result` was produced: the log index of the command with seq lastSeq. */
  resultIndex: LogIndex;
  result: KvResult;
}

/** A present key: its value and revisions. Shared by the Map and the ordered index, updated in place. */
/** Never changed once made (a write makes a new one): a snapshot being encoded may still hold it. */
interface KeyRecord {
  readonly value: Uint8Array;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  /** The lease the key is attached to; 0: none. */
  readonly lease: number;
}

const EMPTY = new Uint8Array(0);

/** The ordered index's branching factor (sorted-btree's default). */
const INDEX_NODE_SIZE = 32;

function metaOf(record: KeyRecord): KvKeyMeta {
  return { createRevision: record.createRevision, modRevision: record.modRevision, version: record.version };
}

/** A key's revisions and, when it has one, its lease (for reads). */
function readMetaOf(record: KeyRecord): KvKeyMeta & { lease?: number } {
  return record.lease === 0 ? metaOf(record) : { ...metaOf(record), lease: record.lease };
}

/** The latin1 form of bytes: one char per byte. Lossless, and `<` on it is byte order. */
export function bytesToKeyString(bytes: Uint8Array): string {
  return charString(bytes, 0, bytes.length);
}

/** The inverse of bytesToKeyString. */
export function keyStringToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Lexicographic byte order (no Buffer: the state machine also runs in the browser's replay). */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A copy of a result that shares no bytes with the state machine. */
function cloneResult(result: KvResult): KvResult {
  if (result.ok && result.lease !== undefined) return result;
  if (result.ok && result.txn !== undefined) {
    const results = result.txn.results.map((op) => (op.value === null ? op : { ...op, value: op.value.slice() }));
    return { ...result, txn: { ...result.txn, results } };
  }
  if (!result.ok || result.value === undefined || result.value === null) return result;
  return { ...result, value: result.value.slice() };
}

function invalid(message: string): KvResult {
  return { ok: false, error: 'invalid-command', message };
}

function leaseNotFound(id: number, consequence = 'nothing was written'): KvResult {
  return { ok: false, error: 'lease-not-found', message: `lease ${id} does not exist (never granted, revoked or expired): ${consequence}` };
}

function checkPositiveInteger(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${what} must be a positive integer, got ${String(n)}`);
  return n;
}

export class KvStateMachine implements StateMachine<KvResult> {
  private readonly maxSessions: number;
  /** latin1 key → record. */
  private data = new Map<string, KeyRecord>();
  /** The same records, ordered by key (byte order). */
  private index: BTree<string, KeyRecord> = new BTree<string, KeyRecord>(undefined, compareStrings, INDEX_NODE_SIZE);
  private rev = 0;
  /**
   * clientId → session, in ascending (lastIndex, clientId) order: a touched session is moved to
   * the end, and its new lastIndex is the largest of all, so the first entry is the one to evict.
   */
  private sessions = new Map<string, Session>();
  private applied: LogIndex = 0;
  private totalBytes = 0;
  private leases = new LeaseTable();

  constructor(options: KvStateMachineOptions = {}) {
    this.maxSessions = checkPositiveInteger(options.maxSessions ?? DEFAULT_MAX_SESSIONS, 'maxSessions');
  }

  /**
   * Told of every change as it is applied, with the revision it made (watches: watch-hub.ts). Not
   * part of the state: a listener sees only what is applied while it is set, never a restore.
   * Values are handed out as stored (never mutated in place, see Ownership), so no copy is made.
   */
  onChange: ((revision: number, change: KvChange) => void) | null = null;

  /** Told of every lease granted or revoked as it is applied (not of a restore: read leases() then). */
  onLease: ((event: KvLeaseEvent) => void) | null = null;

  /** The index of the last applied log entry (or restored snapshot); 0 initially. */
  get appliedIndex(): LogIndex {
    return this.applied;
  }

  /** The store revision: the number of writes that changed the store (see the module comment). */
  get revision(): number {
    return this.rev;
  }

  get stats(): KvStats {
    return { keys: this.data.size, bytes: this.totalBytes, sessions: this.sessions.size, leases: this.leases.size };
  }

  /** A lease: its granted TTL and how many keys are attached; null if the store does not hold it. */
  lease(id: number): LeaseInfo | null {
    return this.leases.info(id);
  }

  /** The keys attached to a lease, in ascending byte order (copies). */
  leaseKeys(id: number): Uint8Array[] {
    return this.leases.keysOf(id).map(keyStringToBytes);
  }

  /** Every lease the store holds, in ascending id order. */
  leaseList(): LeaseInfo[] {
    return this.leases.list();
  }

  /** The current value of a key (a copy), or null if absent. */
  get(key: Uint8Array): Uint8Array | null {
    if (key.length > KEY_BYTES_MAX) return null;
    return this.data.get(bytesToKeyString(key))?.value.slice() ?? null;
  }

  /** The current value of a key (a copy) and its revisions, or null if absent. */
  getWithMeta(key: Uint8Array): (KvKeyMeta & { value: Uint8Array; lease?: number }) | null {
    if (key.length > KEY_BYTES_MAX) return null;
    const record = this.data.get(bytesToKeyString(key));
    return record === undefined ? null : { ...readMetaOf(record), value: record.value.slice() };
  }

  /**
   * One page of a range (see the module comment), with copies of the values. Throws RangeError on
   * a limit outside 1..RANGE_LIMIT_MAX or a bytesMax below 1.
   */
  range(query: KvRangeQuery): KvRangePage {
    const limit = query.limit ?? RANGE_LIMIT_DEFAULT;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > RANGE_LIMIT_MAX) throw new RangeError(`limit must be 1..${RANGE_LIMIT_MAX}, got ${String(limit)}`);
    const bytesMax = query.bytesMax ?? RANGE_BYTES_DEFAULT;
    if (!(bytesMax >= 1)) throw new RangeError(`bytesMax must be at least 1, got ${String(bytesMax)}`);
    const keysOnly = query.keysOnly === true;
    const kvs: KvRangeItem[] = [];
    let bytes = 0;
    let more = false;
    this.scan(query, (k, record) => {
      if (kvs.length >= limit) {
        more = true;
        return false;
      }
      const size = k.length + (keysOnly ? 0 : record.value.length);
      if (kvs.length > 0 && bytes + size > bytesMax) {
        more = true;
        return false;
      }
      bytes += size;
      const meta = readMetaOf(record);
      kvs.push(keysOnly ? { key: keyStringToBytes(k), ...meta } : { key: keyStringToBytes(k), value: record.value.slice(), ...meta });
      return true;
    });
    return { kvs, more, revision: this.rev };
  }

  /** The number of keys in a range (strictly after `after`, when given), counted without copying any. */
  count(bounds: KvRangeBounds): number {
    const low = this.lowBound(bounds);
    const end = bounds.end === null ? null : bytesToKeyString(bounds.end);
    if (end !== null && !(low.key < end)) return 0;
    const high = end ?? this.index.maxKey();
    if (high === undefined) return 0;
    const n = this.index.forRange(low.key, high, end === null);
    return low.exclusive && this.data.has(low.key) ? n - 1 : n;
  }

  /** Where a range starts: its start, or its continuation key (exclusive) when that is not before it. */
  private lowBound(bounds: KvRangeBounds): { key: string; exclusive: boolean } {
    const start = bytesToKeyString(bounds.start);
    if (bounds.after === undefined) return { key: start, exclusive: false };
    const after = bytesToKeyString(bounds.after);
    return after < start ? { key: start, exclusive: false } : { key: after, exclusive: true };
  }

  /** Calls `visit` on the range's keys in order until it returns false. */
  private scan(bounds: KvRangeBounds, visit: (k: string, record: KeyRecord) => boolean): void {
    const low = this.lowBound(bounds);
    const end = bounds.end === null ? null : bytesToKeyString(bounds.end);
    for (const [k, record] of this.index.entries(low.key)) {
      if (low.exclusive && k === low.key) continue;
      if (end !== null && !(k < end)) return;
      if (!visit(k, record)) return;
    }
  }

  /** A client's session, or undefined if it has none (never had one, or it was evicted). */
  session(clientId: string): KvSessionInfo | undefined {
    const s = this.sessions.get(clientId);
    return s === undefined ? undefined : { lastSeq: s.lastSeq, lastIndex: s.lastIndex, resultIndex: s.resultIndex };
  }

  // ---- applying ----

  /**
   * The runtime's StateMachine hook: applies the entry and returns its result. Unlike
   * applyCommand's, the result is not copied (every replica applies every entry, and copying an
   * append's previous value on each would cost more than the append): it may share bytes with the
   * state and the session cache, so treat it as read-only.
   */
  apply(entry: Entry): KvResult {
    return this.applyEntry(entry.index, entry.command);
  }

  /**
   * Decodes and applies the command at log index `index`. Never throws for any `bytes`: a
   * malformed or invalid command is a no-op with an `invalid-command` result. Throws RangeError
   * only if `index` does not follow appliedIndex, which is the caller's bug, not the log's.
   *
   * A duplicate (the session's current seq again) is answered from the session table: the cached
   * result plus `deduplicatedFrom`, the log index where the command took effect (not `index`).
   */
  applyCommand(index: LogIndex, bytes: Uint8Array): KvResult {
    return cloneResult(this.applyEntry(index, bytes));
  }

  private applyEntry(index: LogIndex, bytes: Uint8Array): KvResult {
    if (!Number.isSafeInteger(index) || index <= this.applied) {
      throw new RangeError(`log index ${String(index)} must be a safe integer above appliedIndex ${this.applied}`);
    }
    this.applied = index;
    let cmd: KvAnyCommand;
    try {
      cmd = decodeKvCommand(bytes);
    } catch (e) {
      return invalid(`malformed command: ${e instanceof Error ? e.message : String(e)}`);
    }
    const problem = validateKvCommand(cmd);
    if (problem !== null) return invalid(`invalid command: ${problem}`);

    const clientId = cmd.clientId;
    if (clientId === '') return this.execute(cmd);
    const session = this.sessions.get(clientId);
    if (session === undefined) {
      const result = this.execute(cmd);
      this.sessions.set(clientId, { lastSeq: cmd.seq, lastIndex: index, resultIndex: index, result });
      this.evictSessions();
      return result;
    }
    // Any request shows the client is alive: move its session to the most recent end.
    this.sessions.delete(clientId);
    session.lastIndex = index;
    this.sessions.set(clientId, session);
    // A duplicate: the first answer, and where it took effect. A fresh object, so the cached
    // result itself never carries deduplicatedFrom (the snapshot stores resultIndex on its own).
    if (cmd.seq === session.lastSeq) return { ...session.result, deduplicatedFrom: session.resultIndex };
    if (cmd.seq < session.lastSeq) {
      return {
        ok: false,
        error: 'stale-request',
        message: `request seq ${cmd.seq} of client ${JSON.stringify(clientId)} is older than its last applied seq ${session.lastSeq}`,
      };
    }
    const result = this.execute(cmd);
    session.lastSeq = cmd.seq;
    session.resultIndex = index;
    session.result = result;
    return result;
  }

  private evictSessions(): void {
    while (this.sessions.size > this.maxSessions) {
      const oldest = this.sessions.keys().next();
      if (oldest.done === true) return;
      this.sessions.delete(oldest.value);
    }
  }

  /** Applies a valid command to the data. Values in `cmd` are fresh decoded copies we now own. */
  private execute(cmd: KvAnyCommand): KvResult {
    if (cmd.op === 'txn') return this.executeTxn(cmd);
    if (cmd.op === 'lease-grant' || cmd.op === 'lease-revoke') return this.executeLease(cmd);
    const k = bytesToKeyString(cmd.key);
    const record = this.data.get(k);
    const prev = record?.value ?? null;
    switch (cmd.op) {
      case 'get':
        return this.answer(prev, record);
      case 'put': {
        if (cmd.lease !== undefined && !this.leases.has(cmd.lease)) return leaseNotFound(cmd.lease);
        if (cmd.ifModRevision !== undefined && (record?.modRevision ?? 0) !== cmd.ifModRevision) {
          return this.answer(prev, record, false);
        }
        const written = this.set(k, record, cmd.value ?? EMPTY, undefined, cmd.lease ?? 0);
        return this.answer(prev, written, cmd.ifModRevision === undefined ? undefined : true);
      }
      case 'append': {
        const add = cmd.value ?? EMPTY;
        if (prev === null) return this.answer(prev, this.set(k, record, add));
        const length = prev.length + add.length;
        if (length > VALUE_BYTES_MAX) {
          // State-dependent, so (unlike a malformed command) this consumes the session's seq.
          return invalid(`append would make the value ${length} bytes, over the limit of ${VALUE_BYTES_MAX}`);
        }
        const next = new Uint8Array(length);
        next.set(prev);
        next.set(add, prev.length);
        return this.answer(prev, this.set(k, record, next));
      }
      case 'delete':
        if (record !== undefined) this.remove(k, record, ++this.rev);
        return this.answer(prev, undefined);
      case 'cas': {
        const expected = cmd.expected ?? null;
        const swapped = prev === null || expected === null ? prev === expected : bytesEqual(prev, expected);
        return this.answer(prev, swapped ? this.set(k, record, cmd.value ?? EMPTY) : record, swapped);
      }
    }
  }

  /** A result: `value`, the store revision now, and `record`'s revisions when the key is present. */
  private answer(value: Uint8Array | null, record: KeyRecord | undefined, swapped?: boolean): KvResult {
    return {
      ok: true,
      value,
      ...(swapped === undefined ? {} : { swapped }),
      revision: this.rev,
      ...(record === undefined ? {} : { key: metaOf(record) }),
    };
  }

  /**
   * A transaction (see KvTxnCommand): the compares against the state before it, then the branch's
   * ops in order, its writes all at one revision, taken at its first write that changes the store.
   */
  private executeTxn(cmd: KvTxnCommand): KvResult {
    const succeeded = cmd.compare.every((c) => this.compareHolds(c));
    const ops = succeeded ? cmd.then : cmd.else;
    for (const op of ops) {
      // State-dependent, so (like an append over the limit) this consumes the session's seq.
      if (op.type === 'put' && op.lease !== undefined && !this.leases.has(op.lease)) return leaseNotFound(op.lease, 'nothing was applied');
    }
    const resultBytes = this.txnResultBytes(ops);
    if (resultBytes > TXN_RESULT_BYTES_MAX) {
      // State-dependent, so (like an append over the limit) this consumes the session's seq.
      return invalid(`the transaction's results would hold ${resultBytes} bytes of values, over the limit of ${TXN_RESULT_BYTES_MAX}: nothing was applied`);
    }
    let revision: number | null = null;
    const next = (): number => (revision ??= ++this.rev);
    const results: KvTxnOpResult[] = [];
    for (const op of ops) {
      const k = bytesToKeyString(op.key);
      const record = this.data.get(k);
      const prev = record?.value ?? null;
      if (op.type === 'get') {
        results.push(record === undefined ? { type: 'get', value: null } : { type: 'get', value: prev, key: metaOf(record) });
      } else if (op.type === 'put') {
        results.push({ type: 'put', value: prev, key: metaOf(this.set(k, record, op.value, next(), op.lease ?? 0)) });
      } else {
        if (record !== undefined) this.remove(k, record, next());
        results.push({ type: 'delete', value: prev });
      }
    }
    return { ok: true, revision: this.rev, txn: { succeeded, results } };
  }

  /** The value bytes the results of `ops` would hold, applied in order from the current state. */
  private txnResultBytes(ops: readonly KvTxnOp[]): number {
    let bytes = 0;
    const written = new Map<string, number | null>();
    for (const op of ops) {
      const k = bytesToKeyString(op.key);
      const length = written.has(k) ? written.get(k)! : (this.data.get(k)?.value.length ?? null);
      bytes += length ?? 0;
      if (op.type === 'put') written.set(k, op.value.length);
      else if (op.type === 'delete') written.set(k, null);
    }
    return bytes;
  }

  /** Whether a compare holds now (an absent key: version, create and mod 0, no value). */
  private compareHolds(c: KvCompare): boolean {
    const record = this.data.get(bytesToKeyString(c.key));
    let order: number;
    switch (c.target) {
      case 'value':
        if (record === undefined) return c.op === '!=';
        order = compareBytes(record.value, c.value);
        break;
      case 'exists':
        order = (record !== undefined) === c.value ? 0 : 1;
        break;
      default: {
        const actual = record === undefined ? 0 : c.target === 'version' ? record.version : c.target === 'create' ? record.createRevision : record.modRevision;
        order = actual < c.value ? -1 : actual > c.value ? 1 : 0;
      }
    }
    switch (c.op) {
      case '=':
        return order === 0;
      case '!=':
        return order !== 0;
      case '<':
        return order < 0;
      case '>':
        return order > 0;
    }
  }

  /** A lease grant or revoke (see the module comment). */
  private executeLease(cmd: KvLeaseCommand): KvResult {
    if (cmd.op === 'lease-grant') {
      const id = this.leases.grant(cmd.ttlSeconds);
      if (id === null) return invalid(`the store holds ${this.leases.size} leases, the most it may: revoke some first`);
      this.onLease?.({ type: 'grant', id, ttlSeconds: cmd.ttlSeconds });
      return { ok: true, revision: this.rev, lease: { id, ttlSeconds: cmd.ttlSeconds, deletedKeys: 0 } };
    }
    const revoked = this.leases.revoke(cmd.id);
    if (revoked === null) return leaseNotFound(cmd.id);
    if (revoked.keys.length > 0) {
      const revision = ++this.rev;
      for (const k of revoked.keys) {
        const record = this.data.get(k);
        if (record === undefined || record.lease !== cmd.id) throw new Error(`invariant: lease ${cmd.id} lists a key that is not attached to it`);
        this.remove(k, record, revision, false);
      }
    }
    this.onLease?.({ type: 'revoke', id: cmd.id });
    return { ok: true, revision: this.rev, lease: { id: cmd.id, ttlSeconds: revoked.ttlSeconds, deletedKeys: revoked.keys.length } };
  }

  /** Deletes a present key at `revision` (detaching it from its lease unless the lease is being revoked). */
  private remove(k: string, record: KeyRecord, revision: number, detach = true): void {
    if (detach && record.lease !== 0) this.leases.detach(record.lease, k);
    this.data.delete(k);
    this.index.delete(k);
    this.totalBytes -= k.length + record.value.length;
    this.onChange?.(revision, { type: 'delete', key: keyStringToBytes(k), createRevision: 0, version: 0 });
  }

  /**
   * Writes a key at `revision` (by default a new one) and attaches it to `lease` (0: none; 'keep':
   * the lease it has, none for a new key), which exists; returns its record.
   */
  private set(k: string, record: KeyRecord | undefined, value: Uint8Array, revision: number = ++this.rev, lease: number | 'keep' = 'keep'): KeyRecord {
    if (record === undefined) {
      const created: KeyRecord = { value, createRevision: revision, modRevision: revision, version: 1, lease: lease === 'keep' ? 0 : lease };
      if (created.lease !== 0) this.leases.attach(created.lease, k);
      this.data.set(k, created);
      this.index.set(k, created);
      this.totalBytes += k.length + value.length;
      this.onChange?.(revision, { type: 'put', key: keyStringToBytes(k), value, createRevision: revision, version: 1 });
      return created;
    }
    const newLease = lease === 'keep' ? record.lease : lease;
    if (newLease !== record.lease) {
      if (record.lease !== 0) this.leases.detach(record.lease, k);
      if (newLease !== 0) this.leases.attach(newLease, k);
    }
    this.totalBytes += value.length - record.value.length;
    // A new record, never a change to the old one: a snapshot being encoded from a clone of the
    // index (snapshotWriter) still holds the old one.
    const updated: KeyRecord = { value, createRevision: record.createRevision, modRevision: revision, version: record.version + 1, lease: newLease };
    this.data.set(k, updated);
    this.index.set(k, updated);
    this.onChange?.(revision, { type: 'put', key: keyStringToBytes(k), value, createRevision: updated.createRevision, version: updated.version });
    return updated;
  }

  // ---- snapshots ----

  /** The whole state, canonically encoded; restore() of it reproduces this machine exactly. */
  snapshot(): Uint8Array {
    return snapshotBodyBytes(this.snapshotBody());
  }

  /**
   * The bytes of snapshot(), as pieces of about SNAPSHOT_PIECE_BYTES (one larger only to hold a
   * single value or cached result that is): a large state is encoded without one buffer of its
   * whole size ever being grown or allocated.
   */
  snapshotBody(): SnapshotBody {
    return this.snapshotWriter().step(Number.POSITIVE_INFINITY)!;
  }

  /**
   * The state as it is now, to be encoded later a slice at a time (KvSnapshotWriter.step), while
   * this machine goes on applying: the key index is cloned in O(1) (copy-on-write B-tree; records
   * are never changed in place, a write makes a new one), and the sessions and the lease table,
   * which are small and change in place, are encoded at once. So a leader with a large state
   * never stops its event loop for a whole encode (heartbeats would stop, and followers would
   * start an election).
   */
  snapshotWriter(sink?: SnapshotAssembly): KvSnapshotWriter {
    const header = new ByteWriter(32);
    header.writeByte(SNAPSHOT_VERSION);
    header.writeVarint(this.applied, 'appliedIndex');
    header.writeVarint(this.rev, 'revision');
    header.writeVarint(this.data.size, 'key count');
    const tail = new PieceWriter(256 * this.sessions.size + 16 * this.leases.size + 64);
    const clientIds = [...this.sessions.keys()].sort(compareStrings);
    let w = tail.next(8);
    w.writeVarint(clientIds.length, 'session count');
    for (const clientId of clientIds) {
      const s = this.sessions.get(clientId)!;
      // UTF-8 takes at most 3 bytes per UTF-16 code unit; a length prefix and three varints, 32.
      w = tail.next(3 * clientId.length + 32 + resultBytesBound(s.result));
      w.writeBytes(utf8Encode(clientId), 'clientId');
      w.writeVarint(s.lastSeq, 'lastSeq');
      w.writeVarint(s.lastIndex, 'lastIndex');
      w.writeVarint(s.resultIndex, 'resultIndex');
      writeKvResult(w, s.result);
    }
    this.leases.write(tail.next(16 + 16 * this.leases.size));
    return new KvSnapshotWriter(this.applied, header.finish(), this.index.clone(), tail.pieces(), 32 + this.totalBytes + 24 * this.data.size, sink);
  }

  /**
   * Why `snapshot` could not be restored, or null if it can. A follower calls it before persisting
   * a snapshot from its leader, so one it cannot use never reaches its disk. It makes every check
   * restore() makes, with the same messages, but keeps no state: values are skipped, and what
   * remains are the previous key (for the order) and the lease ids keys name. So checking a large
   * snapshot costs no second copy of the state, and this machine is untouched either way.
   */
  checkSnapshot(snapshot: Snapshot, options: KvSnapshotReadOptions = {}): string | null {
    try {
      decodeSnapshot(snapshot, false, options.windowBytes);
      return null;
    } catch (error) {
      if (error instanceof CodecError) return error.message;
      throw error;
    }
  }

  /**
   * Replaces the whole state with a snapshot's (version 4, 3, 2 or 1: see the format above),
   * reading its body a window at a time when it is not one buffer. Throws CodecError if the data
   * is malformed or not canonical, or if its applied index is not `snapshot.index`; the state is
   * unchanged then, unless `discardCurrent` (see KvRestoreOptions) left it empty.
   */
  restore(snapshot: Snapshot, options: KvRestoreOptions = {}): void {
    if (options.discardCurrent === true) this.clear();
    const decoded = decodeSnapshot(snapshot, true, options.windowBytes);
    decoded.sessions.sort(([aId, a], [bId, b]) => a.lastIndex - b.lastIndex || compareStrings(aId, bId));
    this.data = decoded.data;
    // Sorted and unique already (checked by the decoder), so the tree is built bottom-up in O(n).
    this.index = bulkLoad(decoded.orderedKeys, decoded.orderedRecords, INDEX_NODE_SIZE, compareStrings);
    this.rev = decoded.revision;
    this.leases = decoded.leases;
    this.totalBytes = decoded.totalBytes;
    this.sessions = new Map(decoded.sessions);
    this.evictSessions();
    this.applied = decoded.applied;
  }

  /** The state of a new machine, the old one left to the garbage collector. */
  private clear(): void {
    this.data = new Map();
    this.index = new BTree<string, KeyRecord>(undefined, compareStrings, INDEX_NODE_SIZE);
    this.rev = 0;
    this.sessions = new Map();
    this.applied = 0;
    this.totalBytes = 0;
    this.leases = new LeaseTable();
  }
}

/** How restore() and checkSnapshot() read a snapshot. */
export interface KvSnapshotReadOptions {
  /** A body that is not a Uint8Array is read this many bytes at a time (default SNAPSHOT_PIECE_BYTES). */
  readonly windowBytes?: number;
}

/** How restore() reads a snapshot and treats the state it replaces. */
export interface KvRestoreOptions extends KvSnapshotReadOptions {
  /**
   * Let the current state go before decoding the snapshot, so that installing one never holds two
   * full states at once (a large store would need twice its memory). The price: if the snapshot
   * turns out malformed, restore() throws and leaves the machine empty, as if new (appliedIndex 0,
   * no keys, sessions or leases), and the caller must not go on using it: it stops the node, which
   * restores from its disk when restarted. Check the snapshot first (checkSnapshot) so that this
   * happens only if the body changes in between (a failing disk).
   */
  readonly discardCurrent?: boolean;
}

/** A snapshot decoded for restore(): the state to install. */
interface DecodedSnapshot {
  readonly applied: LogIndex;
  readonly revision: number;
  readonly data: Map<string, KeyRecord>;
  /** The keys and their records, in ascending key order (the index is built from them). */
  readonly orderedKeys: string[];
  readonly orderedRecords: KeyRecord[];
  readonly totalBytes: number;
  /** The sessions in snapshot (clientId) order. */
  readonly sessions: [string, Session][];
  /** With the keys attached. */
  readonly leases: LeaseTable;
}

/**
 * Decodes a snapshot, making every check of its format (see the module comment); throws
 * CodecError on the first that fails. `keep` (restore) returns the state; without it (checkSnapshot)
 * the same checks run with the same messages, but values are skipped and nothing is kept beyond the
 * previous key and the set of leases keys name. A body that is not one buffer is read a window at
 * a time.
 */
function decodeSnapshot(snapshot: Snapshot, keep: true, windowBytes?: number): DecodedSnapshot;
function decodeSnapshot(snapshot: Snapshot, keep: false, windowBytes?: number): null;
function decodeSnapshot(snapshot: Snapshot, keep: boolean, windowBytes = SNAPSHOT_PIECE_BYTES): DecodedSnapshot | null {
  const body = snapshot.data;
  const r: ByteSource = body instanceof Uint8Array ? new ByteReader(body) : new SnapshotBodyReader(body, windowBytes);
  const version = r.readByte('snapshot version');
  if (version < SNAPSHOT_VERSION_MIN || version > SNAPSHOT_VERSION) throw new CodecError(`unknown KV snapshot version ${version}`);
  const applied = r.readVarint();
  if (applied !== snapshot.index) {
    throw new CodecError(`KV snapshot covers index ${applied} but is labelled index ${snapshot.index}`);
  }

  const revisions = version >= 3;
  const revision = revisions ? r.readVarint() : undefined;
  const data = new Map<string, KeyRecord>();
  const orderedKeys: string[] = [];
  const orderedRecords: KeyRecord[] = [];
  // In the order keys first name them, so the first one missing from the table is the first
  // key's that is missing (the error names it either way).
  const leasesNamed = new Set<number>();
  let totalBytes = 0;
  const leased = version >= 4;
  const keyCount = r.readVarint();
  // Every key takes at least 3 bytes (two lengths and a key byte), 6 with revisions, 7 with leases: reject absurd counts early.
  if (keyCount * (leased ? 7 : revisions ? 6 : 3) > r.remaining) throw new CodecError(`KV snapshot: ${keyCount} keys cannot fit in ${r.remaining} bytes`);
  let previousKey: string | null = null;
  for (let i = 0; i < keyCount; i++) {
    const at = r.offset;
    const k = r.readCharBytes();
    if (k.length === 0) throw new CodecError(`KV snapshot: empty key at offset ${at}`);
    if (previousKey !== null && !(previousKey < k)) {
      throw new CodecError(`KV snapshot: key at offset ${at} is not after the previous key`);
    }
    previousKey = k;
    let value: Uint8Array = EMPTY;
    let valueBytes: number;
    if (keep) {
      value = r.readBytes();
      valueBytes = value.length;
    } else {
      valueBytes = r.skipBytes();
    }
    let record: KeyRecord;
    if (revision !== undefined) {
      const meta = { value, createRevision: r.readVarint(), modRevision: r.readVarint(), version: r.readVarint(), lease: 0 };
      const problem = keyMetaProblem(meta, revision);
      if (problem !== null) throw new CodecError(`KV snapshot: key at offset ${at}: ${problem}`);
      if (leased) meta.lease = r.readVarint();
      if (meta.lease !== 0) leasesNamed.add(meta.lease);
      record = meta;
    } else {
      record = { value, createRevision: 1, modRevision: 1, version: 1, lease: 0 };
    }
    if (keep) {
      data.set(k, record);
      orderedKeys.push(k);
      orderedRecords.push(record);
    }
    totalBytes += k.length + valueBytes;
  }
  // Before revisions, the whole state counts as one write (see the module comment).
  const storeRevision = revision ?? (keyCount > 0 ? 1 : 0);

  const sessionCount = r.readVarint();
  // Every session takes at least 7 bytes (clientId 2, lastSeq 1, lastIndex 1, result 3), 8 from v2.
  const sessionBytesMin = version === 1 ? 7 : 8;
  if (sessionCount * sessionBytesMin > r.remaining) {
    throw new CodecError(`KV snapshot: ${sessionCount} sessions cannot fit in ${r.remaining} bytes`);
  }
  const sessions: [string, Session][] = [];
  let previousId: string | null = null;
  for (let i = 0; i < sessionCount; i++) {
    const at = r.offset;
    const clientId = utf8Decode(r.readBytes(), 'clientId', at);
    if (clientId === '') throw new CodecError(`KV snapshot: empty clientId at offset ${at}`);
    if (previousId !== null && !(previousId < clientId)) {
      throw new CodecError(`KV snapshot: session at offset ${at} is not after the previous one`);
    }
    previousId = clientId;
    const lastSeq = r.readVarint();
    const lastIndex = r.readVarint();
    // A session is created by a command, so it was active at an index >= 1.
    if (lastIndex < 1) throw new CodecError(`KV snapshot: session at offset ${at} has last activity 0`);
    if (lastIndex > applied) {
      throw new CodecError(`KV snapshot: session at offset ${at} was active at ${lastIndex}, after ${applied}`);
    }
    const resultIndex = version === 1 ? lastIndex : r.readVarint();
    if (resultIndex < 1 || resultIndex > lastIndex) {
      throw new CodecError(`KV snapshot: session at offset ${at} has result index ${resultIndex}, outside 1..${lastIndex} (its last activity)`);
    }
    const resultAt = r.offset;
    // Decoded even when checking: its checks are readKvResult's. One result is bounded (a value, or a transaction's results) and dropped at once.
    const result = readKvResult(r);
    if (result.ok && result.revision !== undefined && result.revision > storeRevision) {
      throw new CodecError(`KV snapshot: cached result at offset ${resultAt} has revision ${result.revision}, after the store's ${storeRevision}`);
    }
    if (keep) sessions.push([clientId, { lastSeq, lastIndex, resultIndex, result }]);
  }
  const leases = leased ? LeaseTable.read(r) : new LeaseTable();
  r.expectEnd('KV snapshot');
  for (const lease of leasesNamed) {
    if (!leases.has(lease)) throw new CodecError(`KV snapshot: a key is attached to lease ${lease}, which the snapshot does not hold`);
  }
  if (!keep) return null;
  for (let i = 0; i < orderedKeys.length; i++) {
    const lease = orderedRecords[i]!.lease;
    if (lease !== 0) leases.attach(lease, orderedKeys[i]!);
  }
  return { applied, revision: storeRevision, data, orderedKeys, orderedRecords, totalBytes, sessions, leases };
}

/**
 * At most the bytes writeKvResult takes for `result` (snapshotBody() places results in pieces by it):
 * tags, presence bytes and up to four varints fit in 64, a transaction's op result without its
 * value in 48, an error message takes at most 3 bytes per UTF-16 code unit.
 */
function resultBytesBound(result: KvResult): number {
  if (!result.ok) return 16 + 3 * result.message.length;
  let bytes = 64;
  if (result.value instanceof Uint8Array) bytes += result.value.length;
  if (result.txn !== undefined) for (const op of result.txn.results) bytes += 48 + (op.value?.length ?? 0);
  return bytes;
}

/**
 * Collects an encoding as a list of pieces: a part that would take the current piece past
 * SNAPSHOT_PIECE_BYTES starts the next one, so a piece is larger only when one part alone is.
 * Each piece's buffer is allocated at its final size (a piece, or what is estimated to remain),
 * so none is grown by copying.
 */
class PieceWriter {
  private readonly done: Uint8Array[] = [];
  private w: ByteWriter | null = null;

  /** `left`: an estimate of the bytes still to come, so that a small state gets a small buffer. */
  constructor(private left: number) {}

  next(bytes: number): ByteWriter {
    if (this.w !== null && this.w.length > 0 && this.w.length + bytes > SNAPSHOT_PIECE_BYTES) this.flush();
    this.w ??= new ByteWriter(Math.max(bytes, Math.min(SNAPSHOT_PIECE_BYTES, this.left)));
    return this.w;
  }

  finish(): ChunkedSnapshotBody {
    return new ChunkedSnapshotBody(this.pieces());
  }

  /** Everything written, as pieces. */
  pieces(): Uint8Array[] {
    if (this.w !== null) this.flush();
    return this.done;
  }

  /** The finished pieces (not the one being written), handed over and forgotten here. */
  takeDone(): Uint8Array[] {
    return this.done.splice(0);
  }

  /** Appends pieces written elsewhere. */
  append(pieces: readonly Uint8Array[]): void {
    if (this.w !== null) this.flush();
    this.done.push(...pieces);
  }

  private flush(): void {
    const piece = this.w!.finish();
    this.done.push(piece);
    this.left = Math.max(64, this.left - piece.length);
    this.w = null;
  }
}

/**
 * A snapshot being encoded (KvStateMachine.snapshotWriter): the header and the tail (sessions,
 * leases) were encoded when it was taken; the keys come from a clone of the index, which the
 * machine's later writes do not touch. With a `sink` (a runtime's snapshot file), each finished
 * piece goes there at once and the body is the sink's, so the encoding never holds more than a
 * piece of the state; without one, the pieces are kept (in memory).
 */
export class KvSnapshotWriter {
  private readonly pieces: PieceWriter;
  private readonly keys: Iterator<[string, KeyRecord]>;
  private body: SnapshotBody | null = null;

  constructor(
    /** The applied index the snapshot covers. */
    readonly index: LogIndex,
    header: Uint8Array,
    frozen: BTree<string, KeyRecord>,
    private readonly tail: readonly Uint8Array[],
    estimate: number,
    private readonly sink?: SnapshotAssembly,
  ) {
    this.pieces = new PieceWriter(estimate);
    this.pieces.append([header]);
    this.keys = frozen.entries();
  }

  /** Encodes keys for about `budgetBytes` more; the snapshot once it is complete, else null. */
  step(budgetBytes: number): SnapshotBody | null {
    if (this.body !== null) return this.body;
    let spent = 0;
    while (spent < budgetBytes) {
      const next = this.keys.next();
      if (next.done === true) {
        this.pieces.append(this.tail);
        if (this.sink === undefined) {
          this.body = this.pieces.finish();
        } else {
          for (const piece of this.pieces.takeDone()) this.sink.append(piece);
          this.body = this.sink.finish();
        }
        return this.body;
      }
      const [k, record] = next.value;
      // Two length prefixes and four varints take at most 48 bytes.
      const bytes = k.length + record.value.length + 64;
      const w = this.pieces.next(bytes);
      w.writeCharBytes(k, 'key');
      w.writeBytes(record.value, 'value');
      w.writeVarint(record.createRevision, 'createRevision');
      w.writeVarint(record.modRevision, 'modRevision');
      w.writeVarint(record.version, 'version');
      w.writeVarint(record.lease, 'lease');
      spent += bytes;
    }
    if (this.sink !== undefined) for (const piece of this.pieces.takeDone()) this.sink.append(piece);
    return null;
  }

  /** Gives up: what the sink holds is released. */
  abandon(): void {
    if (this.body === null) this.sink?.discard();
  }
}
