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
 * lexicographic byte order, so sorting the map's keys sorts the keys by bytes.
 *
 * Ownership: values stored and results cached are never mutated in place (puts store the freshly
 * decoded bytes, appends build a new array), so results may share them internally; everything
 * handed out through the public API (get, applyCommand) is a copy.
 *
 * Snapshot format (varints and length-prefixed byte strings as in src/codec/codec.ts), version 2:
 *
 *     version (1 byte, SNAPSHOT_VERSION = 2)  appliedIndex
 *     key count, then per key in ascending byte order: key, value
 *     session count, then per session in ascending clientId order (JS string comparison):
 *         clientId (UTF-8), lastSeq, lastIndex, resultIndex, cached result (see writeKvResult)
 *
 * with 1 <= resultIndex <= lastIndex <= appliedIndex for every session. Version 1 (written before
 * sessions recorded resultIndex) is the same without the resultIndex field; restore() still accepts
 * it and takes resultIndex = lastIndex, the latest index at which the result may have taken effect
 * (the true one is not known: it is at most lastIndex, and equal to it unless a duplicate or a stale
 * request touched the session later). snapshot() always writes version 2.
 *
 * The encoding is canonical: restore() rejects unsorted or duplicate keys and sessions, so a
 * machine restored from a version 2 snapshot re-snapshots to the very same bytes.
 */
import { ByteReader, ByteWriter, CodecError } from '../codec/codec.js';
import type { Entry, LogIndex, Snapshot } from '../core/messages.js';
import type { StateMachine } from '../runtime/node.js';
import {
  decodeKvCommand,
  KEY_BYTES_MAX,
  readKvResult,
  utf8Decode,
  utf8Encode,
  validateKvCommand,
  VALUE_BYTES_MAX,
  writeKvResult,
  type KvCommand,
  type KvResult,
} from './commands.js';

/** The version byte snapshot() writes: 2, sessions with resultIndex. */
export const SNAPSHOT_VERSION = 2;
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

export interface KvStats {
  /** Number of keys. */
  readonly keys: number;
  /** Sum of key and value lengths, in bytes. */
  readonly bytes: number;
  /** Number of client sessions. */
  readonly sessions: number;
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

const EMPTY = new Uint8Array(0);

/** The latin1 form of bytes: one char per byte. Lossless, and `<` on it is byte order. */
export function bytesToKeyString(bytes: Uint8Array): string {
  let s = '';
  if (bytes.length <= 64) {
    // Most keys are short; a plain loop beats spreading into fromCharCode for them.
    for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
    return s;
  }
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return s;
}

/** The inverse of bytesToKeyString. */
export function keyStringToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
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
  if (!result.ok || result.value === undefined || result.value === null) return result;
  return { ...result, value: result.value.slice() };
}

function invalid(message: string): KvResult {
  return { ok: false, error: 'invalid-command', message };
}

function checkPositiveInteger(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${what} must be a positive integer, got ${String(n)}`);
  return n;
}

export class KvStateMachine implements StateMachine<KvResult> {
  private readonly maxSessions: number;
  /** latin1 key → value. */
  private data = new Map<string, Uint8Array>();
  /**
   * clientId → session, in ascending (lastIndex, clientId) order: a touched session is moved to
   * the end, and its new lastIndex is the largest of all, so the first entry is the one to evict.
   */
  private sessions = new Map<string, Session>();
  private applied: LogIndex = 0;
  private totalBytes = 0;

  constructor(options: KvStateMachineOptions = {}) {
    this.maxSessions = checkPositiveInteger(options.maxSessions ?? DEFAULT_MAX_SESSIONS, 'maxSessions');
  }

  /** The index of the last applied log entry (or restored snapshot); 0 initially. */
  get appliedIndex(): LogIndex {
    return this.applied;
  }

  get stats(): KvStats {
    return { keys: this.data.size, bytes: this.totalBytes, sessions: this.sessions.size };
  }

  /** The current value of a key (a copy), or null if absent. */
  get(key: Uint8Array): Uint8Array | null {
    if (key.length > KEY_BYTES_MAX) return null;
    return this.data.get(bytesToKeyString(key))?.slice() ?? null;
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
    let cmd: KvCommand;
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
  private execute(cmd: KvCommand): KvResult {
    const k = bytesToKeyString(cmd.key);
    const prev = this.data.get(k) ?? null;
    switch (cmd.op) {
      case 'get':
        return { ok: true, value: prev };
      case 'put':
        this.set(k, prev, cmd.value ?? EMPTY);
        return { ok: true, value: prev };
      case 'append': {
        const add = cmd.value ?? EMPTY;
        if (prev === null) {
          this.set(k, prev, add);
          return { ok: true, value: prev };
        }
        const length = prev.length + add.length;
        if (length > VALUE_BYTES_MAX) {
          // State-dependent, so (unlike a malformed command) this consumes the session's seq.
          return invalid(`append would make the value ${length} bytes, over the limit of ${VALUE_BYTES_MAX}`);
        }
        const next = new Uint8Array(length);
        next.set(prev);
        next.set(add, prev.length);
        this.set(k, prev, next);
        return { ok: true, value: prev };
      }
      case 'delete':
        if (prev !== null) {
          this.data.delete(k);
          this.totalBytes -= k.length + prev.length;
        }
        return { ok: true, value: prev };
      case 'cas': {
        const expected = cmd.expected ?? null;
        const swapped = prev === null || expected === null ? prev === expected : bytesEqual(prev, expected);
        if (swapped) this.set(k, prev, cmd.value ?? EMPTY);
        return { ok: true, value: prev, swapped };
      }
    }
  }

  private set(k: string, prev: Uint8Array | null, value: Uint8Array): void {
    this.data.set(k, value);
    this.totalBytes += prev === null ? k.length + value.length : value.length - prev.length;
  }

  // ---- snapshots ----

  /** The whole state, canonically encoded; restore() of it reproduces this machine exactly. */
  snapshot(): Uint8Array {
    const keys = [...this.data.keys()].sort(compareStrings);
    const clientIds = [...this.sessions.keys()].sort(compareStrings);
    const w = new ByteWriter(32 + this.totalBytes + 8 * keys.length + 256 * clientIds.length);
    w.writeByte(SNAPSHOT_VERSION);
    w.writeVarint(this.applied, 'appliedIndex');
    w.writeVarint(keys.length, 'key count');
    for (const k of keys) {
      w.writeBytes(keyStringToBytes(k), 'key');
      w.writeBytes(this.data.get(k)!, 'value');
    }
    w.writeVarint(clientIds.length, 'session count');
    for (const clientId of clientIds) {
      const s = this.sessions.get(clientId)!;
      w.writeBytes(utf8Encode(clientId), 'clientId');
      w.writeVarint(s.lastSeq, 'lastSeq');
      w.writeVarint(s.lastIndex, 'lastIndex');
      w.writeVarint(s.resultIndex, 'resultIndex');
      writeKvResult(w, s.result);
    }
    return w.finish();
  }

  /**
   * Replaces the whole state with a snapshot's (version 2, or version 1: see the format above).
   * Throws CodecError if the data is malformed or not canonical, or if its applied index is not
   * `snapshot.index`; the state is unchanged then.
   */
  /**
   * Why `snapshot` could not be restored, or null if it can: it is decoded into a scratch state
   * machine, so this one is untouched either way. A follower calls it before persisting a
   * snapshot from its leader, so one it cannot use never reaches its disk.
   */
  checkSnapshot(snapshot: Snapshot): string | null {
    try {
      new KvStateMachine({ maxSessions: this.maxSessions }).restore(snapshot);
      return null;
    } catch (error) {
      if (error instanceof CodecError) return error.message;
      throw error;
    }
  }

  restore(snapshot: Snapshot): void {
    const r = new ByteReader(snapshot.data);
    const version = r.readByte('snapshot version');
    if (version < SNAPSHOT_VERSION_MIN || version > SNAPSHOT_VERSION) throw new CodecError(`unknown KV snapshot version ${version}`);
    const applied = r.readVarint();
    if (applied !== snapshot.index) {
      throw new CodecError(`KV snapshot covers index ${applied} but is labelled index ${snapshot.index}`);
    }

    const data = new Map<string, Uint8Array>();
    let totalBytes = 0;
    const keyCount = r.readVarint();
    // Every key takes at least 3 bytes (two lengths and a key byte): reject absurd counts early.
    if (keyCount * 3 > r.remaining) throw new CodecError(`KV snapshot: ${keyCount} keys cannot fit in ${r.remaining} bytes`);
    let previousKey: string | null = null;
    for (let i = 0; i < keyCount; i++) {
      const at = r.offset;
      const key = r.readBytes();
      if (key.length === 0) throw new CodecError(`KV snapshot: empty key at offset ${at}`);
      const k = bytesToKeyString(key);
      if (previousKey !== null && !(previousKey < k)) {
        throw new CodecError(`KV snapshot: key at offset ${at} is not after the previous key`);
      }
      previousKey = k;
      const value = r.readBytes();
      data.set(k, value);
      totalBytes += key.length + value.length;
    }

    const sessionCount = r.readVarint();
    // Every session takes at least 7 bytes (clientId 2, lastSeq 1, lastIndex 1, result 3), 8 in v2.
    const sessionBytesMin = version === 1 ? 7 : 8;
    if (sessionCount * sessionBytesMin > r.remaining) {
      throw new CodecError(`KV snapshot: ${sessionCount} sessions cannot fit in ${r.remaining} bytes`);
    }
    const list: [string, Session][] = [];
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
      list.push([clientId, { lastSeq, lastIndex, resultIndex, result: readKvResult(r) }]);
    }
    r.expectEnd('KV snapshot');

    list.sort(([aId, a], [bId, b]) => a.lastIndex - b.lastIndex || compareStrings(aId, bId));
    this.data = data;
    this.totalBytes = totalBytes;
    this.sessions = new Map(list);
    this.evictSessions();
    this.applied = applied;
  }
}
