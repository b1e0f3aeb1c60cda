/**
 * The replicated KV service's commands (what goes into the Raft log) and results (what applying one
 * returns), with their binary encodings.
 *
 * Command format (every integer an unsigned LEB128 varint, every byte string varint-length-prefixed,
 * as in src/codec/codec.ts):
 *
 *     op tag (1 byte: KV_OP_TAGS)  clientId (UTF-8 bytes)  seq  key
 *     put, append:  value
 *     put-if (tag 6, decoded as a put with ifModRevision):  value  ifModRevision
 *     put-lease (tag 10, a put with a lease):  value  ifModRevision-presence (1 byte: 0 or 1)
 *                   [ifModRevision]  lease
 *     cas:          value  expected-presence (1 byte: 0 = null/absent, 1 = present)  [expected]
 *     delete, get:  nothing more
 *
 * Lease grant (tag 8) and revoke (tag 9): see lease-commands.ts.
 *
 * A transaction (tag 7, KV_TXN_TAG; a KvTxnCommand, no key of its own):
 *
 *     7  clientId  seq  compare count, per compare:  key  target (1 byte: KV_COMPARE_TARGET_TAGS)
 *        op (1 byte: KV_COMPARE_OP_TAGS)  operand (value: bytes; version/create/mod: varint;
 *        exists: 1 byte, 0 or 1)
 *        then count, per op:  kind (1 byte: KV_TXN_OP_TAGS, or 4 for a put with a lease)  key
 *                             [value, for a put]  [lease, for a put with a lease]
 *        else count, per op: as then
 *
 * Result format:
 *
 *     ok:     tag 1, value-presence (1 byte: 0 = no field, 1 = null, 2 = bytes) [value],
 *             swapped (1 byte: 0 = no field, 1 = false, 2 = true)
 *     ok with revisions (tag 3): as tag 1, then revision, key-presence (1 byte: 0 = absent,
 *             1 = present) [createRevision modRevision version]; written when `revision` is set
 *             (every result this version's state machine produces), so tag-1 results (cached in
 *             sessions of version 1 and 2 snapshots) still decode and re-encode unchanged
 *     error:  tag 2, error kind (1 byte: KV_ERROR_TAGS), message (UTF-8 bytes)
 *     lease (tag 5): revision, then the lease (lease-commands.ts: id, ttlSeconds, deletedKeys)
 *     txn (tag 4): revision, succeeded (1 byte: 0 = false, 1 = true), result count, then per op of
 *             the branch that ran: kind (1 byte: KV_TXN_OP_TAGS), value-presence (1 byte: 0 =
 *             null, 1 = bytes) [value], key-presence (1 byte: 0 = absent, 1 = present)
 *             [createRevision modRevision version]; a put's key is always present, a delete's
 *             never; every key's revisions satisfy keyMetaProblem against the result's revision
 *
 * Tag 0 is never valid, so a zeroed or empty buffer does not decode. Tags are append-only.
 * `deduplicatedFrom` is not part of the result encoding: it describes one apply (a duplicate
 * answered from the session table), not the result, and the snapshot stores the index where a
 * session's cached result took effect on its own (see state-machine.ts); encoding a result drops it.
 *
 * Decoders check structure only (tags, lengths, UTF-8, no trailing bytes) and throw CodecError on
 * malformed input; limits are checked by validateKvCommand, which the state machine runs on every
 * decoded command, and by encodeKvCommand, so a client never proposes a command that would be
 * rejected. Decoded byte strings are fresh copies that never alias the input.
 */
import { ByteReader, ByteWriter, CodecError, type ByteSource } from '../codec/codec.js';
import type { LogIndex } from '../core/messages.js';
import {
  KV_LEASE_GRANT_TAG,
  KV_LEASE_REVOKE_TAG,
  leaseCommandProblem,
  leaseIdProblem,
  leaseOutcomeProblem,
  readLeaseCommand,
  readLeaseOutcome,
  writeLeaseCommand,
  writeLeaseOutcome,
  type KvLeaseCommand,
  type KvLeaseOutcome,
} from './lease-commands.js';

// ---- limits ----

/** Largest key, in bytes (keys are 1..KEY_BYTES_MAX bytes). */
export const KEY_BYTES_MAX = 1024;
/** Largest value, in bytes, for put/cas values, cas expected values and the result of an append. */
export const VALUE_BYTES_MAX = 1024 * 1024;
/** Largest client id, in bytes of its UTF-8 encoding. */
export const CLIENT_ID_BYTES_MAX = 128;

// ---- types ----

export type KvOp = 'put' | 'append' | 'delete' | 'cas' | 'get';

export interface KvCommand {
  readonly op: KvOp;
  /** The client session for exactly-once; '' for a session-less command (never deduplicated). */
  readonly clientId: string;
  /** The client's request number within its session: a non-negative safe integer, increasing. */
  readonly seq: number;
  readonly key: Uint8Array;
  /** put/append/cas: the value to store (append: the bytes to add). Absent for delete/get. */
  readonly value?: Uint8Array;
  /** cas only: the value the key must currently hold, or null for "the key is absent". */
  readonly expected?: Uint8Array | null;
  /**
   * put only: write only if the key's mod revision is this (0: only if the key is absent). A put
   * whose condition fails writes nothing and answers `swapped: false` with the key's current state.
   */
  readonly ifModRevision?: number;
  /**
   * put only: attach the key to this lease (it must exist, else the put answers `lease-not-found`
   * and writes nothing). A put without it detaches the key from any lease, as etcd's does; an
   * append or a cas keeps the key's lease.
   */
  readonly lease?: number;
}

/** A key's revisions (see state-machine.ts): all three are at least 1 for a present key. */
export interface KvKeyMeta {
  /** The store revision of the write that created the key (its last creation, after a delete). */
  readonly createRevision: number;
  /** The store revision of the key's last write. */
  readonly modRevision: number;
  /** Writes to the key since its creation, that one included. */
  readonly version: number;
}

/**
 * - `stale-request`: the session has already applied a later seq; this request was not applied.
 * - `invalid-command`: the entry did not decode or broke a limit; it was applied as a no-op.
 * - `lease-not-found`: a revoke, or a put attaching a key, named a lease the store does not hold
 *   (never granted, revoked or expired); nothing was written.
 */
export type KvErrorKind = 'stale-request' | 'invalid-command' | 'lease-not-found';

export type KvResult =
  | {
      readonly ok: true;
      /** get: the current value; put/append/delete/cas: the previous value. null if absent. */
      readonly value?: Uint8Array | null;
      /** cas, and put with ifModRevision: whether the value was written. */
      readonly swapped?: boolean;
      /**
       * The store revision once the command applied (a write that changed the store: its own
       * revision). Absent only on results cached before revisions existed (restored from a
       * version 1 or 2 snapshot).
       */
      readonly revision?: number;
      /**
       * The key's revisions once the command applied (for a write that did not write, such as a
       * failed condition: the current ones); absent when the key is absent then, or without `revision`.
       */
      readonly key?: KvKeyMeta;
      /**
       * A transaction (KvTxnCommand): which branch ran and the results of its ops, in order. A txn
       * result has `revision` and no value, swapped or key.
       */
      readonly txn?: KvTxnResult;
      /** A lease grant or revoke: the lease. Such a result has `revision` and no value, swapped, key or txn. */
      readonly lease?: KvLeaseOutcome;
      /** See KvDeduplicated. */
      readonly deduplicatedFrom?: LogIndex;
    }
  | {
      readonly ok: false;
      readonly error: KvErrorKind;
      readonly message: string;
      /** See KvDeduplicated. */
      readonly deduplicatedFrom?: LogIndex;
    };

/**
 * `KvResult.deduplicatedFrom` is present only on the answer to a duplicate (a command whose session
 * already applied its seq, answered from the session table): the log index where the original
 * command took effect, whose result this is. The duplicate's own entry changed nothing, so that
 * index, not the duplicate's, is where the write happened; KvReplica.commit reports it as the
 * write's index (and so does the HTTP API, as `index`).
 */
export type KvDeduplicated = Pick<KvResult, 'deduplicatedFrom'>;

// ---- transactions ----

/** Most compares in one transaction. */
export const TXN_COMPARES_MAX = 128;
/** Most ops in one branch (then or else) of a transaction. */
export const TXN_OPS_MAX = 128;
/**
 * Most key and value bytes in one transaction, compares and both branches together: keeps one
 * entry far below a transport frame (8 MiB). The HTTP API's 1 MiB body bound is tighter still.
 */
export const TXN_DATA_BYTES_MAX = 2 * VALUE_BYTES_MAX;
/**
 * Most value bytes in one transaction's results (gets' values, puts' and deletes' previous
 * values): a transaction whose branch would answer more is refused (`invalid-command`, nothing
 * applied), so that neither its answer nor the session caching it can grow past this (as a range
 * page's 4 MiB).
 */
export const TXN_RESULT_BYTES_MAX = 4 * 1024 * 1024;

/** What a compare looks at: the value, the version, the create or mod revision, or presence. */
export type KvCompareTarget = 'value' | 'version' | 'create' | 'mod' | 'exists';
export type KvCompareOp = '=' | '!=' | '<' | '>';

/**
 * One condition of a transaction. An absent key has version, create and mod 0 and no value (a
 * value compare on it holds only for `!=`); values compare as bytes, lexicographically. `exists`
 * takes `=` and `!=` only.
 */
export type KvCompare =
  | { readonly key: Uint8Array; readonly target: 'value'; readonly op: KvCompareOp; readonly value: Uint8Array }
  | { readonly key: Uint8Array; readonly target: 'version' | 'create' | 'mod'; readonly op: KvCompareOp; readonly value: number }
  | { readonly key: Uint8Array; readonly target: 'exists'; readonly op: KvCompareOp; readonly value: boolean };

export type KvTxnOpKind = 'put' | 'delete' | 'get';

/** One op of a transaction's branch. */
export type KvTxnOp =
  | { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array; readonly lease?: number }
  | { readonly type: 'delete' | 'get'; readonly key: Uint8Array };

/**
 * A transaction (etcd's Txn): if every compare holds, `then` runs, else `else`, atomically, in one
 * log entry. Its ops apply in order, and a get sees the earlier ops of its branch. The writes of
 * the branch share one new revision (none when nothing changes). A key is written (put or delete)
 * at most once per branch.
 */
export interface KvTxnCommand {
  readonly op: 'txn';
  readonly clientId: string;
  readonly seq: number;
  readonly compare: readonly KvCompare[];
  readonly then: readonly KvTxnOp[];
  readonly else: readonly KvTxnOp[];
}

/** Any command the log carries. */
export type KvAnyCommand = KvCommand | KvTxnCommand | KvLeaseCommand;

/**
 * The result of one op of a transaction. put: `value` the previous value, `key` the key's
 * revisions after the put; delete: `value` the previous value (null: nothing was deleted), no
 * `key`; get: the value and revisions at that point of the branch (null and none when absent).
 */
export interface KvTxnOpResult {
  readonly type: KvTxnOpKind;
  readonly value: Uint8Array | null;
  readonly key?: KvKeyMeta;
}

export interface KvTxnResult {
  /** Whether every compare held (then ran) or not (else ran). */
  readonly succeeded: boolean;
  /** One per op of the branch that ran, in order. */
  readonly results: readonly KvTxnOpResult[];
}

/** The wire tag of a transaction command. */
export const KV_TXN_TAG = 7;

/** The wire tags of compare targets, compare ops and txn op kinds. Append-only: never renumber. */
export const KV_COMPARE_TARGET_TAGS = { value: 1, version: 2, create: 3, mod: 4, exists: 5 } as const satisfies Record<KvCompareTarget, number>;
export const KV_COMPARE_OP_TAGS = { '=': 1, '!=': 2, '<': 3, '>': 4 } as const satisfies Record<KvCompareOp, number>;
export const KV_TXN_OP_TAGS = { put: 1, delete: 2, get: 3 } as const satisfies Record<KvTxnOpKind, number>;
/** The wire tag of a txn put with a lease (decoded as a put with `lease`; never a result's kind). */
export const KV_TXN_PUT_LEASE_TAG = 4;

function inverse<T extends string>(tags: Record<T, number>): (T | undefined)[] {
  const out: (T | undefined)[] = [];
  for (const [name, tag] of Object.entries(tags)) out[tag as number] = name as T;
  return out;
}
const TARGET_BY_TAG = inverse<KvCompareTarget>(KV_COMPARE_TARGET_TAGS);
const COMPARE_OP_BY_TAG = inverse<KvCompareOp>(KV_COMPARE_OP_TAGS);
const TXN_OP_BY_TAG = inverse<KvTxnOpKind>(KV_TXN_OP_TAGS);

/** The wire tag of each op. Append-only: never renumber. */
export const KV_OP_TAGS = {
  put: 1,
  append: 2,
  delete: 3,
  cas: 4,
  get: 5,
} as const satisfies Record<KvOp, number>;

/** The wire tag of a put with ifModRevision (decoded as op 'put'). */
export const KV_PUT_IF_TAG = 6;
/** The wire tag of a put with a lease, and maybe ifModRevision (decoded as op 'put'). */
export const KV_PUT_LEASE_TAG = 10;

/** The wire tag of each error kind. Append-only: never renumber. */
export const KV_ERROR_TAGS = {
  'stale-request': 1,
  'invalid-command': 2,
  'lease-not-found': 3,
} as const satisfies Record<KvErrorKind, number>;

const OP_BY_TAG: (KvOp | undefined)[] = [];
for (const [op, tag] of Object.entries(KV_OP_TAGS)) OP_BY_TAG[tag] = op as KvOp;
const ERROR_BY_TAG: (KvErrorKind | undefined)[] = [];
for (const [kind, tag] of Object.entries(KV_ERROR_TAGS)) ERROR_BY_TAG[tag] = kind as KvErrorKind;

const RESULT_OK = 1;
const RESULT_ERROR = 2;
const RESULT_OK_REVISIONS = 3;
const RESULT_TXN = 4;
const RESULT_LEASE = 5;

// ---- strings ----

const utf8Encoder = new TextEncoder();
// fatal: malformed UTF-8 throws instead of becoming U+FFFD; ignoreBOM: a leading U+FEFF is kept.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Whether `s` has no lone surrogates, i.e. survives a UTF-8 round trip unchanged. */
export function isWellFormedString(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (next < 0xdc00 || next > 0xdfff) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return false;
    }
  }
  return true;
}

export function utf8Encode(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

/** Decodes strict UTF-8, throwing CodecError on malformed input. */
export function utf8Decode(bytes: Uint8Array, what: string, at: number): string {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    throw new CodecError(`${what} at offset ${at} is not valid UTF-8`);
  }
}

// ---- validation ----

const OPS_WITH_VALUE: ReadonlySet<KvOp> = new Set<KvOp>(['put', 'append', 'cas']);

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === 'string') return `a string`;
  return typeof v;
}

/**
 * Checks a command against the op's shape and the limits. Returns a description of the first
 * problem, or null if the command is valid.
 */
export function validateKvCommand(cmd: KvAnyCommand): string | null {
  if (typeof cmd !== 'object' || cmd === null) return `command must be an object, got ${describe(cmd)}`;
  const op = cmd.op as unknown;
  if (op === 'txn') {
    const problem = sessionProblem(cmd);
    if (problem !== null) return problem;
    const txn = txnProblem(cmd as KvTxnCommand);
    return txn === null ? null : `${txn.field}: ${txn.message}`;
  }
  if (op === 'lease-grant' || op === 'lease-revoke') return sessionProblem(cmd) ?? leaseCommandProblem(cmd as KvLeaseCommand);
  if (typeof op !== 'string' || !Object.hasOwn(KV_OP_TAGS, op)) {
    return `op must be one of ${Object.keys(KV_OP_TAGS).join(', ')}, txn, lease-grant, lease-revoke, got ${String(op)}`;
  }
  const session = sessionProblem(cmd);
  if (session !== null) return session;
  cmd = cmd as KvCommand;
  const key = cmd.key as unknown;
  if (!(key instanceof Uint8Array)) return `key must be a Uint8Array, got ${describe(key)}`;
  if (key.length < 1 || key.length > KEY_BYTES_MAX) return `key must be 1..${KEY_BYTES_MAX} bytes, got ${key.length}`;
  return singleProblem(cmd, op as KvOp);
}

/** What is wrong with a command's clientId and seq, or null. */
function sessionProblem(cmd: KvAnyCommand): string | null {
  const clientId = cmd.clientId as unknown;
  if (typeof clientId !== 'string') return `clientId must be a string, got ${describe(clientId)}`;
  if (!isWellFormedString(clientId)) return 'clientId must be well-formed Unicode (no lone surrogates)';
  // A UTF-16 code unit never takes more than 3 UTF-8 bytes: short ids need no encoding pass.
  const clientIdBytes = clientId.length * 3 <= CLIENT_ID_BYTES_MAX ? 0 : utf8Encode(clientId).length;
  if (clientIdBytes > CLIENT_ID_BYTES_MAX) {
    return `clientId must be 0..${CLIENT_ID_BYTES_MAX} bytes of UTF-8, got ${clientIdBytes}`;
  }
  const seq = cmd.seq as unknown;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    return `seq must be a non-negative safe integer, got ${String(seq)}`;
  }
  return null;
}

/** What is wrong with a single-key command's value, expected value and condition, or null. */
function singleProblem(cmd: KvCommand, op: KvOp): string | null {
  const value = cmd.value as unknown;
  if (OPS_WITH_VALUE.has(op)) {
    if (!(value instanceof Uint8Array)) return `${op} needs a value (Uint8Array), got ${describe(value)}`;
    if (value.length > VALUE_BYTES_MAX) return `value must be 0..${VALUE_BYTES_MAX} bytes, got ${value.length}`;
  } else if (value !== undefined) {
    return `${op} takes no value, got ${describe(value)}`;
  }

  const expected = cmd.expected as unknown;
  if (op === 'cas') {
    if (expected === undefined) return 'cas needs expected (a Uint8Array, or null for "absent")';
    if (expected !== null) {
      if (!(expected instanceof Uint8Array)) return `expected must be a Uint8Array or null, got ${describe(expected)}`;
      if (expected.length > VALUE_BYTES_MAX) {
        return `expected must be 0..${VALUE_BYTES_MAX} bytes, got ${expected.length}`;
      }
    }
  } else if (expected !== undefined) {
    return `${op} takes no expected value, got ${describe(expected)}`;
  }
  const ifModRevision = cmd.ifModRevision as unknown;
  if (ifModRevision !== undefined) {
    if (op !== 'put') return `${op} takes no ifModRevision`;
    if (typeof ifModRevision !== 'number' || !Number.isSafeInteger(ifModRevision) || ifModRevision < 0) {
      return `ifModRevision must be a non-negative safe integer, got ${String(ifModRevision)}`;
    }
  }
  const lease = cmd.lease as unknown;
  if (lease !== undefined) {
    if (op !== 'put') return `${op} takes no lease`;
    const problem = leaseIdProblem(lease);
    if (problem !== null) return problem;
  }
  return null;
}

/** Why a transaction is refused: a code (the HTTP API's), the field at fault and a description. */
export interface KvTxnProblem {
  readonly code: 'bad-txn' | 'too-many-operations' | 'duplicate-key' | 'invalid-key' | 'value-too-large' | 'txn-too-large';
  /** The field, as a path in the HTTP API's JSON body: `compare[0].value`, `then[2].put.key`. */
  readonly field: string;
  readonly message: string;
}

const isSafeNonNegative = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

/** Checks a transaction's compares and branches against their shape and the limits (not clientId and seq). */
export function txnProblem(cmd: KvTxnCommand): KvTxnProblem | null {
  const bad = (code: KvTxnProblem['code'], field: string, message: string): KvTxnProblem => ({ code, field, message });
  let bytes = 0;
  const keyProblem = (key: unknown, field: string): KvTxnProblem | null => {
    if (!(key instanceof Uint8Array)) return bad('bad-txn', field, `must be bytes, got ${describe(key)}`);
    if (key.length < 1 || key.length > KEY_BYTES_MAX) return bad('invalid-key', field, `keys are 1..${KEY_BYTES_MAX} bytes, got ${key.length}`);
    bytes += key.length;
    return null;
  };
  const valueProblem = (value: unknown, field: string): KvTxnProblem | null => {
    if (!(value instanceof Uint8Array)) return bad('bad-txn', field, `must be bytes, got ${describe(value)}`);
    if (value.length > VALUE_BYTES_MAX) return bad('value-too-large', field, `values are 0..${VALUE_BYTES_MAX} bytes, got ${value.length}`);
    bytes += value.length;
    return null;
  };
  const compare = cmd.compare as unknown;
  if (!Array.isArray(compare)) return bad('bad-txn', 'compare', 'must be a list');
  if (compare.length > TXN_COMPARES_MAX) return bad('too-many-operations', 'compare', `at most ${TXN_COMPARES_MAX} compares, got ${compare.length}`);
  for (let i = 0; i < compare.length; i++) {
    const c = compare[i] as KvCompare;
    const field = `compare[${i}]`;
    if (typeof c !== 'object' || c === null) return bad('bad-txn', field, 'must be an object');
    const problem = keyProblem(c.key, `${field}.key`);
    if (problem !== null) return problem;
    if (!Object.hasOwn(KV_COMPARE_TARGET_TAGS, c.target)) return bad('bad-txn', `${field}.target`, `must be one of ${Object.keys(KV_COMPARE_TARGET_TAGS).join(', ')}`);
    if (!Object.hasOwn(KV_COMPARE_OP_TAGS, c.op)) return bad('bad-txn', `${field}.op`, `must be one of ${Object.keys(KV_COMPARE_OP_TAGS).join(' ')}`);
    const value = c.value as unknown;
    if (c.target === 'value') {
      const vp = valueProblem(value, `${field}.value`);
      if (vp !== null) return vp;
    } else if (c.target === 'exists') {
      if (typeof value !== 'boolean') return bad('bad-txn', `${field}.value`, `an exists compare takes true or false, got ${describe(value)}`);
      if (c.op !== '=' && c.op !== '!=') return bad('bad-txn', `${field}.op`, 'an exists compare takes = or != only');
    } else if (!isSafeNonNegative(value)) {
      return bad('bad-txn', `${field}.value`, `a ${c.target} compare takes a non-negative integer, got ${typeof value === 'number' ? String(value) : describe(value)}`);
    }
  }
  for (const branch of ['then', 'else'] as const) {
    const ops = cmd[branch] as unknown;
    if (!Array.isArray(ops)) return bad('bad-txn', branch, 'must be a list');
    if (ops.length > TXN_OPS_MAX) return bad('too-many-operations', branch, `at most ${TXN_OPS_MAX} ops per branch, got ${ops.length}`);
    const written = new Set<string>();
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i] as KvTxnOp;
      if (typeof op !== 'object' || op === null) return bad('bad-txn', `${branch}[${i}]`, 'must be an object');
      if (!Object.hasOwn(KV_TXN_OP_TAGS, op.type)) return bad('bad-txn', `${branch}[${i}]`, 'must be a put, a delete or a get');
      const field = `${branch}[${i}].${op.type}`;
      const problem = keyProblem(op.key, `${field}.key`);
      if (problem !== null) return problem;
      const value = (op as { value?: unknown }).value;
      const lease = (op as { lease?: unknown }).lease;
      if (op.type === 'put') {
        const vp = valueProblem(value, `${field}.value`);
        if (vp !== null) return vp;
        if (lease !== undefined && leaseIdProblem(lease) !== null) return bad('bad-txn', `${field}.lease`, leaseIdProblem(lease)!);
      } else if (value !== undefined) {
        return bad('bad-txn', `${field}.value`, `a ${op.type} takes no value`);
      } else if (lease !== undefined) {
        return bad('bad-txn', `${field}.lease`, `a ${op.type} takes no lease`);
      }
      if (op.type !== 'get') {
        const k = String.fromCharCode(...op.key);
        if (written.has(k)) return bad('duplicate-key', `${field}.key`, `the key is already written by an earlier op of ${branch}: a key may be written at most once per branch`);
        written.add(k);
      }
    }
  }
  if (bytes > TXN_DATA_BYTES_MAX) return bad('txn-too-large', '', `a transaction holds at most ${TXN_DATA_BYTES_MAX} bytes of keys and values, got ${bytes}`);
  return null;
}

// ---- commands ----

/** Encodes a command; throws RangeError (with validateKvCommand's description) if it is invalid. */
export function encodeKvCommand(cmd: KvAnyCommand): Uint8Array {
  const problem = validateKvCommand(cmd);
  if (problem !== null) throw new RangeError(`invalid KV command: ${problem}`);
  if (cmd.op === 'txn') return encodeTxn(cmd);
  if (cmd.op === 'lease-grant' || cmd.op === 'lease-revoke') {
    const clientId = utf8Encode(cmd.clientId);
    const w = new ByteWriter(32 + clientId.length);
    w.writeByte(cmd.op === 'lease-grant' ? KV_LEASE_GRANT_TAG : KV_LEASE_REVOKE_TAG);
    w.writeBytes(clientId, 'clientId');
    w.writeVarint(cmd.seq, 'seq');
    writeLeaseCommand(w, cmd);
    return w.finish();
  }
  const clientId = utf8Encode(cmd.clientId);
  const value = cmd.value;
  const expected = cmd.expected;
  const w = new ByteWriter(
    16 + clientId.length + cmd.key.length + (value?.length ?? 0) + (expected instanceof Uint8Array ? expected.length : 0),
  );
  const conditional = cmd.op === 'put' && cmd.ifModRevision !== undefined;
  const leased = cmd.op === 'put' && cmd.lease !== undefined;
  w.writeByte(leased ? KV_PUT_LEASE_TAG : conditional ? KV_PUT_IF_TAG : KV_OP_TAGS[cmd.op]);
  w.writeBytes(clientId, 'clientId');
  w.writeVarint(cmd.seq, 'seq');
  w.writeBytes(cmd.key, 'key');
  if (value !== undefined) w.writeBytes(value, 'value');
  if (leased) {
    w.writeByte(conditional ? 1 : 0);
    if (conditional) w.writeVarint(cmd.ifModRevision!, 'ifModRevision');
    w.writeVarint(cmd.lease!, 'lease');
  } else if (conditional) {
    w.writeVarint(cmd.ifModRevision!, 'ifModRevision');
  }
  if (cmd.op === 'cas') {
    if (expected instanceof Uint8Array) {
      w.writeByte(1);
      w.writeBytes(expected, 'expected');
    } else {
      w.writeByte(0);
    }
  }
  return w.finish();
}

function encodeTxn(cmd: KvTxnCommand): Uint8Array {
  const clientId = utf8Encode(cmd.clientId);
  let size = 32 + clientId.length;
  for (const c of cmd.compare) size += 16 + c.key.length + (c.value instanceof Uint8Array ? c.value.length : 0);
  for (const op of [...cmd.then, ...cmd.else]) size += 8 + op.key.length + (op.type === 'put' ? op.value.length : 0);
  const w = new ByteWriter(size);
  w.writeByte(KV_TXN_TAG);
  w.writeBytes(clientId, 'clientId');
  w.writeVarint(cmd.seq, 'seq');
  w.writeVarint(cmd.compare.length, 'compare count');
  for (const c of cmd.compare) {
    w.writeBytes(c.key, 'key');
    w.writeByte(KV_COMPARE_TARGET_TAGS[c.target]);
    w.writeByte(KV_COMPARE_OP_TAGS[c.op]);
    if (c.target === 'value') w.writeBytes(c.value, 'value');
    else if (c.target === 'exists') w.writeByte(c.value ? 1 : 0);
    else w.writeVarint(c.value, 'compare value');
  }
  for (const ops of [cmd.then, cmd.else]) {
    w.writeVarint(ops.length, 'op count');
    for (const op of ops) {
      const leased = op.type === 'put' && op.lease !== undefined;
      w.writeByte(leased ? KV_TXN_PUT_LEASE_TAG : KV_TXN_OP_TAGS[op.type]);
      w.writeBytes(op.key, 'key');
      if (op.type === 'put') w.writeBytes(op.value, 'value');
      if (leased) w.writeVarint(op.lease!, 'lease');
    }
  }
  return w.finish();
}

function decodeTxn(r: ByteReader): KvTxnCommand {
  const clientIdAt = r.offset;
  const clientId = utf8Decode(r.readBytes(), 'clientId', clientIdAt);
  const seq = r.readVarint();
  const count = (what: string, min: number): number => {
    const at = r.offset;
    const n = r.readVarint();
    if (n * min > r.remaining) throw new CodecError(`${what} count ${n} at offset ${at} cannot fit in ${r.remaining} bytes`);
    return n;
  };
  const compare: KvCompare[] = [];
  const compares = count('compare', 4);
  for (let i = 0; i < compares; i++) {
    const key = r.readBytes();
    const targetAt = r.offset;
    const target = TARGET_BY_TAG[r.readByte('compare target')];
    if (target === undefined) throw new CodecError(`unknown compare target at offset ${targetAt}`);
    const opAt = r.offset;
    const op = COMPARE_OP_BY_TAG[r.readByte('compare op')];
    if (op === undefined) throw new CodecError(`unknown compare op at offset ${opAt}`);
    if (target === 'value') {
      compare.push({ key, target, op, value: r.readBytes() });
    } else if (target === 'exists') {
      const at = r.offset;
      const b = r.readByte('exists');
      if (b > 1) throw new CodecError(`invalid exists byte ${b} at offset ${at}`);
      compare.push({ key, target, op, value: b === 1 });
    } else {
      compare.push({ key, target, op, value: r.readVarint() });
    }
  }
  const branches: KvTxnOp[][] = [];
  for (const branch of ['then', 'else']) {
    const ops: KvTxnOp[] = [];
    const n = count(`${branch} op`, 2);
    for (let i = 0; i < n; i++) {
      const at = r.offset;
      const tag = r.readByte('txn op');
      const type = tag === KV_TXN_PUT_LEASE_TAG ? 'put' : TXN_OP_BY_TAG[tag];
      if (type === undefined) throw new CodecError(`unknown txn op at offset ${at}`);
      const key = r.readBytes();
      if (tag === KV_TXN_PUT_LEASE_TAG) ops.push({ type: 'put', key, value: r.readBytes(), lease: r.readVarint() });
      else ops.push(type === 'put' ? { type, key, value: r.readBytes() } : { type, key });
    }
    branches.push(ops);
  }
  return { op: 'txn', clientId, seq, compare, then: branches[0]!, else: branches[1]! };
}

/**
 * Decodes a command; throws CodecError on malformed input. The result is structurally complete for
 * its op but may still break a limit: run validateKvCommand before trusting it.
 */
export function decodeKvCommand(bytes: Uint8Array): KvAnyCommand {
  const r = new ByteReader(bytes);
  const tag = r.readByte('op tag');
  if (tag === KV_TXN_TAG) {
    const txn = decodeTxn(r);
    r.expectEnd('KV command');
    return txn;
  }
  if (tag === KV_LEASE_GRANT_TAG || tag === KV_LEASE_REVOKE_TAG) {
    const clientIdAt = r.offset;
    const clientId = utf8Decode(r.readBytes(), 'clientId', clientIdAt);
    const lease = readLeaseCommand(r, tag, clientId, r.readVarint());
    r.expectEnd('KV command');
    return lease;
  }
  const op = tag === KV_PUT_IF_TAG || tag === KV_PUT_LEASE_TAG ? 'put' : OP_BY_TAG[tag];
  if (op === undefined) throw new CodecError(`unknown KV op tag ${tag} at offset 0`);
  const clientIdAt = r.offset;
  const clientId = utf8Decode(r.readBytes(), 'clientId', clientIdAt);
  const seq = r.readVarint();
  const key = r.readBytes();
  let cmd: KvCommand;
  switch (op) {
    case 'put':
    case 'append':
      cmd = { op, clientId, seq, key, value: r.readBytes() };
      if (tag === KV_PUT_IF_TAG) cmd = { ...cmd, ifModRevision: r.readVarint() };
      if (tag === KV_PUT_LEASE_TAG) {
        const at = r.offset;
        const conditional = r.readByte('ifModRevision presence');
        if (conditional > 1) throw new CodecError(`invalid ifModRevision presence ${conditional} at offset ${at}`);
        if (conditional === 1) cmd = { ...cmd, ifModRevision: r.readVarint() };
        cmd = { ...cmd, lease: r.readVarint() };
      }
      break;
    case 'cas': {
      const value = r.readBytes();
      const at = r.offset;
      const presence = r.readByte('expected presence');
      if (presence > 1) throw new CodecError(`invalid expected presence ${presence} at offset ${at}`);
      cmd = { op, clientId, seq, key, value, expected: presence === 1 ? r.readBytes() : null };
      break;
    }
    case 'delete':
    case 'get':
      cmd = { op, clientId, seq, key };
      break;
  }
  r.expectEnd('KV command');
  return cmd;
}

// ---- results ----

/**
 * What is wrong with a key's revisions in a store at `revision`, or null: a present key has
 * 1 <= createRevision <= modRevision <= revision and 1 <= version <= modRevision - createRevision + 1
 * (each of its writes took a revision of its own in [createRevision, modRevision]).
 */
export function keyMetaProblem(key: KvKeyMeta, revision: number): string | null {
  if (typeof key !== 'object' || key === null) return 'not an object';
  const { createRevision: c, modRevision: m, version: v } = key;
  if (!Number.isSafeInteger(c) || !Number.isSafeInteger(m) || !Number.isSafeInteger(v)) return 'not safe integers';
  if (!(c >= 1 && c <= m && m <= revision)) return `need 1 <= createRevision ${c} <= modRevision ${m} <= revision ${revision}`;
  if (!(v >= 1 && v <= m - c + 1)) return `version ${v} is outside 1..${m - c + 1} (modRevision - createRevision + 1)`;
  return null;
}

function checkResult(result: KvResult): void {
  if (typeof result !== 'object' || result === null) throw new RangeError('KV result must be an object');
  const from = result.deduplicatedFrom as unknown;
  if (from !== undefined && (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 1)) {
    throw new RangeError(`KV result deduplicatedFrom must be a positive integer or absent, got ${String(from)}`);
  }
  if (result.ok === true && result.txn !== undefined) {
    checkTxnResult(result);
  } else if (result.ok === true && result.lease !== undefined) {
    const revision = result.revision as unknown;
    if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
      throw new RangeError(`KV lease result revision must be a non-negative safe integer, got ${String(revision)}`);
    }
    if (result.value !== undefined || result.swapped !== undefined || result.key !== undefined) throw new RangeError('a KV lease result has no value, swapped or key');
    const problem = leaseOutcomeProblem(result.lease);
    if (problem !== null) throw new RangeError(`KV lease result: ${problem}`);
  } else if (result.ok === true) {
    const value = result.value as unknown;
    if (value !== undefined && value !== null && !(value instanceof Uint8Array)) {
      throw new RangeError(`KV result value must be a Uint8Array, null or absent, got ${describe(value)}`);
    }
    const swapped = result.swapped as unknown;
    if (swapped !== undefined && typeof swapped !== 'boolean') {
      throw new RangeError(`KV result swapped must be a boolean or absent, got ${describe(swapped)}`);
    }
    const revision = result.revision as unknown;
    const key = result.key as unknown;
    if (revision === undefined) {
      if (key !== undefined) throw new RangeError('KV result key revisions need a revision');
    } else {
      if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
        throw new RangeError(`KV result revision must be a non-negative safe integer, got ${String(revision)}`);
      }
      if (key !== undefined) {
        const problem = keyMetaProblem(key as KvKeyMeta, revision);
        if (problem !== null) throw new RangeError(`KV result key revisions: ${problem}`);
      }
    }
  } else if (result.ok === false) {
    if (!Object.hasOwn(KV_ERROR_TAGS, result.error)) throw new RangeError(`unknown KV error kind ${String(result.error)}`);
    if (typeof result.message !== 'string' || !isWellFormedString(result.message)) {
      throw new RangeError('KV error message must be a well-formed string');
    }
  } else {
    throw new RangeError('KV result ok must be a boolean');
  }
}

function checkTxnResult(result: KvResult & { ok: true }): void {
  const revision = result.revision as unknown;
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
    throw new RangeError(`KV txn result revision must be a non-negative safe integer, got ${String(revision)}`);
  }
  if (result.value !== undefined || result.swapped !== undefined || result.key !== undefined) {
    throw new RangeError('a KV txn result has no value, swapped or key');
  }
  const txn = result.txn as unknown as KvTxnResult;
  if (typeof txn !== 'object' || txn === null || typeof txn.succeeded !== 'boolean' || !Array.isArray(txn.results)) {
    throw new RangeError('KV txn result must be {succeeded: boolean, results: list}');
  }
  for (const op of txn.results) {
    const problem = txnOpResultProblem(op, revision);
    if (problem !== null) throw new RangeError(`KV txn result: ${problem}`);
  }
}

/** What is wrong with one op result of a txn result at `revision`, or null. */
function txnOpResultProblem(op: KvTxnOpResult, revision: number): string | null {
  if (typeof op !== 'object' || op === null) return 'an op result must be an object';
  if (!Object.hasOwn(KV_TXN_OP_TAGS, op.type)) return `unknown op result type ${String(op.type)}`;
  const value = op.value as unknown;
  if (value !== null && !(value instanceof Uint8Array)) return `an op result value must be a Uint8Array or null, got ${describe(value)}`;
  if (op.key !== undefined) {
    if (op.type === 'delete') return 'a delete result has no key revisions';
    const problem = keyMetaProblem(op.key, revision);
    if (problem !== null) return `key revisions: ${problem}`;
  } else if (op.type === 'put') {
    return 'a put result needs the key revisions';
  }
  return null;
}

/**
 * Appends a result to a writer (used by the snapshot encoding too); `deduplicatedFrom` is not
 * encoded. Throws RangeError if malformed.
 */
export function writeKvResult(w: ByteWriter, result: KvResult): void {
  checkResult(result);
  if (result.ok && result.lease !== undefined) {
    w.writeByte(RESULT_LEASE);
    w.writeVarint(result.revision!, 'revision');
    writeLeaseOutcome(w, result.lease);
  } else if (result.ok && result.txn !== undefined) {
    w.writeByte(RESULT_TXN);
    w.writeVarint(result.revision!, 'revision');
    w.writeByte(result.txn.succeeded ? 1 : 0);
    w.writeVarint(result.txn.results.length, 'result count');
    for (const op of result.txn.results) {
      w.writeByte(KV_TXN_OP_TAGS[op.type]);
      if (op.value === null) {
        w.writeByte(0);
      } else {
        w.writeByte(1);
        w.writeBytes(op.value, 'value');
      }
      if (op.key === undefined) {
        w.writeByte(0);
      } else {
        w.writeByte(1);
        w.writeVarint(op.key.createRevision, 'createRevision');
        w.writeVarint(op.key.modRevision, 'modRevision');
        w.writeVarint(op.key.version, 'version');
      }
    }
  } else if (result.ok) {
    w.writeByte(result.revision === undefined ? RESULT_OK : RESULT_OK_REVISIONS);
    const value = result.value;
    if (value === undefined) {
      w.writeByte(0);
    } else if (value === null) {
      w.writeByte(1);
    } else {
      w.writeByte(2);
      w.writeBytes(value, 'value');
    }
    w.writeByte(result.swapped === undefined ? 0 : result.swapped ? 2 : 1);
    if (result.revision !== undefined) {
      w.writeVarint(result.revision, 'revision');
      const key = result.key;
      if (key === undefined) {
        w.writeByte(0);
      } else {
        w.writeByte(1);
        w.writeVarint(key.createRevision, 'createRevision');
        w.writeVarint(key.modRevision, 'modRevision');
        w.writeVarint(key.version, 'version');
      }
    }
  } else {
    w.writeByte(RESULT_ERROR);
    w.writeByte(KV_ERROR_TAGS[result.error]);
    w.writeBytes(utf8Encode(result.message), 'message');
  }
}

/** Reads one result; throws CodecError on malformed input. */
export function readKvResult(r: ByteSource): KvResult {
  const at = r.offset;
  const tag = r.readByte('result tag');
  if (tag === RESULT_OK || tag === RESULT_OK_REVISIONS) {
    const valueAt = r.offset;
    const presence = r.readByte('value presence');
    let value: Uint8Array | null | undefined;
    if (presence === 1) value = null;
    else if (presence === 2) value = r.readBytes();
    else if (presence !== 0) throw new CodecError(`invalid value presence ${presence} at offset ${valueAt}`);
    const swappedAt = r.offset;
    const swappedByte = r.readByte('swapped');
    if (swappedByte > 2) throw new CodecError(`invalid swapped byte ${swappedByte} at offset ${swappedAt}`);
    // Built field by field: exactOptionalPropertyTypes forbids an explicit `undefined`.
    const result: { ok: true; value?: Uint8Array | null; swapped?: boolean; revision?: number; key?: KvKeyMeta } = { ok: true };
    if (value !== undefined) result.value = value;
    if (swappedByte !== 0) result.swapped = swappedByte === 2;
    if (tag === RESULT_OK_REVISIONS) {
      result.revision = r.readVarint();
      const keyAt = r.offset;
      const presence = r.readByte('key presence');
      if (presence > 1) throw new CodecError(`invalid key presence ${presence} at offset ${keyAt}`);
      if (presence === 1) {
        const key = { createRevision: r.readVarint(), modRevision: r.readVarint(), version: r.readVarint() };
        const problem = keyMetaProblem(key, result.revision);
        if (problem !== null) throw new CodecError(`key revisions at offset ${keyAt}: ${problem}`);
        result.key = key;
      }
    }
    return result;
  }
  if (tag === RESULT_TXN) {
    const revision = r.readVarint();
    const succeededAt = r.offset;
    const succeeded = r.readByte('succeeded');
    if (succeeded > 1) throw new CodecError(`invalid succeeded byte ${succeeded} at offset ${succeededAt}`);
    const countAt = r.offset;
    const count = r.readVarint();
    // Every op result takes at least 3 bytes (kind, value presence, key presence).
    if (count * 3 > r.remaining) throw new CodecError(`txn result count ${count} at offset ${countAt} cannot fit in ${r.remaining} bytes`);
    const results: KvTxnOpResult[] = [];
    for (let i = 0; i < count; i++) {
      const at = r.offset;
      const type = TXN_OP_BY_TAG[r.readByte('op result kind')];
      if (type === undefined) throw new CodecError(`unknown txn op result kind at offset ${at}`);
      const valueAt = r.offset;
      const valuePresence = r.readByte('value presence');
      if (valuePresence > 1) throw new CodecError(`invalid value presence ${valuePresence} at offset ${valueAt}`);
      const value = valuePresence === 1 ? r.readBytes() : null;
      const keyAt = r.offset;
      const keyPresence = r.readByte('key presence');
      if (keyPresence > 1) throw new CodecError(`invalid key presence ${keyPresence} at offset ${keyAt}`);
      const op: KvTxnOpResult =
        keyPresence === 1 ? { type, value, key: { createRevision: r.readVarint(), modRevision: r.readVarint(), version: r.readVarint() } } : { type, value };
      const problem = txnOpResultProblem(op, revision);
      if (problem !== null) throw new CodecError(`txn op result at offset ${at}: ${problem}`);
      results.push(op);
    }
    return { ok: true, revision, txn: { succeeded: succeeded === 1, results } };
  }
  if (tag === RESULT_LEASE) {
    const revision = r.readVarint();
    return { ok: true, revision, lease: readLeaseOutcome(r) };
  }
  if (tag === RESULT_ERROR) {
    const kindAt = r.offset;
    const kindTag = r.readByte('error kind');
    const error = ERROR_BY_TAG[kindTag];
    if (error === undefined) throw new CodecError(`unknown KV error kind tag ${kindTag} at offset ${kindAt}`);
    const messageAt = r.offset;
    const message = utf8Decode(r.readBytes(), 'error message', messageAt);
    return { ok: false, error, message };
  }
  throw new CodecError(`unknown KV result tag ${tag} at offset ${at}`);
}

export function encodeKvResult(result: KvResult): Uint8Array {
  let size = result.ok && result.value instanceof Uint8Array ? result.value.length + 8 : 64;
  if (result.ok && result.txn !== undefined) for (const op of result.txn.results) size += 32 + (op.value?.length ?? 0);
  const w = new ByteWriter(size);
  writeKvResult(w, result);
  return w.finish();
}

export function decodeKvResult(bytes: Uint8Array): KvResult {
  const r = new ByteReader(bytes);
  const result = readKvResult(r);
  r.expectEnd('KV result');
  return result;
}
