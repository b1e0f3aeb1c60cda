/**
 * The wire codec: one compact binary format for RPC messages (simulator byte counts, TCP transport)
 * and durable state (write-ahead log).
 *
 * Format:
 * - non-negative integers: unsigned LEB128 varints, canonical (no redundant trailing zero byte),
 *   at most 8 bytes, covering exactly 0..2^53-1;
 * - optional node ids (votedFor, may be NO_VOTE = -1): the varint of value + 1;
 * - booleans: one byte, 0 or 1;
 * - byte strings: varint length, then the bytes;
 * - entry: term, index, kind (0: a command, 1: a configuration), then the command's bytes or the
 *   configuration;
 * - configuration (Membership): voters, outgoing and learners as id lists (varint count, then
 *   the ids), then the addresses (varint count, then id and UTF-8 bytes for each);
 * - message: a one-byte tag (MESSAGE_TAGS), then the fields in declaration order; entry lists are a
 *   varint count followed by the entries.
 * - HardState: term, votedFor + 1. PersistentState: HardState, snapshot index and term (0, 0 for
 *   none), an entry list, the snapshot's bytes, then a boolean and (if true) the snapshot's
 *   configuration.
 *
 * Tag 0 is never valid (a zeroed buffer does not decode). New message types take the next free tag;
 * existing tags never change.
 *
 * Encoding is a size pass (which also validates every field) followed by a write pass into one
 * exact-size buffer. Decoders throw CodecError on any malformed input and copy byte strings out, so
 * the result never aliases the input.
 */
import type { MemberAddress, Membership } from '../core/membership.js';
import type { Entry, HardState, Message, MessageType, PersistentState, Snapshot } from '../core/messages.js';
import { snapshotBodyBytes } from '../core/snapshot-body.js';

/** Malformed input to a decoder; the message says what was wrong and at which byte offset. */
export class CodecError extends Error {
  override readonly name = 'CodecError';
}

/** The wire tag of each message type. Append-only: never renumber. */
export const MESSAGE_TAGS = {
  RequestVote: 1,
  RequestVoteReply: 2,
  AppendEntries: 3,
  AppendEntriesReply: 4,
  PreVote: 5,
  PreVoteReply: 6,
  InstallSnapshot: 7,
  InstallSnapshotReply: 8,
  TimeoutNow: 9,
} as const satisfies Record<MessageType, number>;

const TAG_TYPES: (MessageType | undefined)[] = [];
for (const [type, tag] of Object.entries(MESSAGE_TAGS)) TAG_TYPES[tag] = type as MessageType;

const MAX_VARINT_BYTES = 8;

function uvarintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  if (n < 0x800000000) return 5;
  if (n < 0x40000000000) return 6;
  if (n < 0x2000000000000) return 7;
  return 8;
}

function checkUint(n: number, field: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new Error(`${field} must be a non-negative safe integer, got ${String(n)}`);
  }
}

/** Checked size of a non-negative integer's varint. */
function uintSize(n: number, field: string): number {
  checkUint(n, field);
  return uvarintSize(n);
}

/** Checked size of an optional node id (-1 allowed), encoded as value + 1. */
function optIdSize(id: number, field: string): number {
  if (!Number.isSafeInteger(id + 1) || !Number.isSafeInteger(id) || id < -1) {
    throw new Error(`${field} must be a safe integer >= -1, got ${String(id)}`);
  }
  return uvarintSize(id + 1);
}

function checksumSize(crc: number): number {
  if (!Number.isInteger(crc) || crc < 0 || crc > 0xffffffff) throw new Error(`InstallSnapshot.checksum must be a 32-bit unsigned integer, got ${String(crc)}`);
  return uvarintSize(crc);
}

function boolSize(b: boolean, field: string): number {
  if (typeof b !== 'boolean') throw new Error(`${field} must be a boolean, got ${String(b)}`);
  return 1;
}

function bytesSize(b: Uint8Array, field: string): number {
  if (!(b instanceof Uint8Array)) throw new Error(`${field} must be a Uint8Array`);
  return uvarintSize(b.length) + b.length;
}

/** The encoded size of a non-negative safe integer; throws for anything else. */
export function varintSize(n: number): number {
  return uintSize(n, 'varint');
}

/** A growable output buffer. Give the exact size up front to get it back without a copy. */
export class ByteWriter {
  private buf: Uint8Array;
  private pos = 0;

  constructor(capacity = 64) {
    this.buf = new Uint8Array(capacity);
  }

  get length(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
      grown.set(this.buf.subarray(0, this.pos));
      this.buf = grown;
    }
  }

  writeByte(b: number): void {
    if (!Number.isInteger(b) || b < 0 || b > 255) throw new Error(`byte out of range: ${String(b)}`);
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  writeVarint(n: number, field = 'varint'): void {
    checkUint(n, field);
    this.ensure(uvarintSize(n));
    const buf = this.buf;
    let pos = this.pos;
    while (n >= 0x80000000) {
      buf[pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    while (n >= 0x80) {
      buf[pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[pos++] = n;
    this.pos = pos;
  }

  writeBool(b: boolean, field = 'bool'): void {
    boolSize(b, field);
    this.ensure(1);
    this.buf[this.pos++] = b ? 1 : 0;
  }

  /**
   * A byte string held as a string of char codes 0..255 (one char per byte, as the KV store keys
   * its maps): the same bytes as writeBytes of them, without making the array first.
   */
  writeCharBytes(s: string, field = 'bytes'): void {
    this.writeVarint(s.length, field);
    this.ensure(s.length);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < s.length; i++) buf[pos++] = s.charCodeAt(i);
    this.pos = pos;
  }

  writeBytes(bytes: Uint8Array, field = 'bytes'): void {
    bytesSize(bytes, field);
    this.writeVarint(bytes.length, field);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** The bytes written so far; the writer must not be used afterwards. */
  finish(): Uint8Array {
    if (this.pos === this.buf.length) return this.buf;
    // A view when little capacity is left over (no copy of a large snapshot), a copy otherwise, so
    // that a small result never pins a large buffer.
    const spare = this.buf.length - this.pos;
    return spare <= 4096 || spare * 8 <= this.buf.length ? this.buf.subarray(0, this.pos) : this.buf.slice(0, this.pos);
  }
}

/**
 * What a decoder reads from: ByteReader over one buffer, or SnapshotBodyReader (body-reader.ts)
 * over a snapshot body too large to hold at once. Both give the same results, errors and offsets
 * for the same bytes.
 */
export interface ByteSource {
  /** Bytes consumed so far. */
  readonly offset: number;
  /** Bytes left to read. */
  readonly remaining: number;
  readByte(what?: string): number;
  readVarint(): number;
  readBool(): boolean;
  /** A length-prefixed byte string, always a fresh copy (never aliases the input). */
  readBytes(): Uint8Array;
  /** A length-prefixed byte string as a string of char codes 0..255 (one char per byte). */
  readCharBytes(): string;
  /** Steps over a length-prefixed byte string without copying it; returns its length. */
  skipBytes(): number;
  readOptionalId(): number;
  expectEnd(what?: string): void;
}

/** bytes[start, end) as a string of char codes 0..255, one char per byte. */
export function charString(bytes: Uint8Array, start: number, end: number): string {
  let s = '';
  if (end - start <= 64) {
    // Most keys are short; a plain loop beats spreading into fromCharCode for them.
    for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]!);
    return s;
  }
  for (let i = start; i < end; i += 4096) s += String.fromCharCode(...bytes.subarray(i, Math.min(end, i + 4096)));
  return s;
}

/** Byte strings shorter than this are carved out of a shared slab (see allocBytes). */
const SLAB_STRING_MAX = 4096;
const SLAB_BYTES = 8192;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

/**
 * A new, zeroed array of `length` bytes for a decoded byte string. Short ones are views into a
 * shared 8 KiB slab rather than arrays with a backing store each: V8 allocates and tracks a backing
 * store per array several times slower, which a restore of a million 1 KiB values made the largest
 * cost (7.8 s against 1.7 s for a million, measured). The price is Node's Buffer pool's: a live
 * string keeps its slab (at most 8 KiB) alive. Decoded strings are never written to after they
 * are filled, and whoever reads their `.buffer` takes byteOffset and byteLength with it.
 */
export function allocBytes(length: number): Uint8Array {
  if (length === 0 || length >= SLAB_STRING_MAX) return new Uint8Array(length);
  if (slabUsed + length > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + length);
  slabUsed += length;
  return out;
}

/** A cursor over input bytes; every read throws CodecError on malformed or missing data. */
export class ByteReader implements ByteSource {
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  readByte(what = 'byte'): number {
    if (this.pos >= this.buf.length) throw new CodecError(`truncated input: expected ${what} at offset ${this.pos}`);
    return this.buf[this.pos++]!;
  }

  readVarint(): number {
    const buf = this.buf;
    const start = this.pos;
    if (start < buf.length && buf[start]! < 0x80) {
      this.pos = start + 1;
      return buf[start]!;
    }
    let pos = start;
    let result = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (pos >= buf.length) throw new CodecError(`truncated varint at offset ${start}`);
      const b = buf[pos++]!;
      // The 8th byte carries bits 49..55; only 4 of them fit below 2^53.
      if (i === MAX_VARINT_BYTES - 1 && b > 0x0f) throw new CodecError(`varint exceeds 2^53 - 1 at offset ${start}`);
      result += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (b === 0 && i > 0) throw new CodecError(`non-canonical varint at offset ${start}`);
        this.pos = pos;
        return result;
      }
      scale *= 128;
    }
  }

  readBool(): boolean {
    const at = this.pos;
    const b = this.readByte('boolean');
    if (b > 1) throw new CodecError(`invalid boolean ${b} at offset ${at}`);
    return b === 1;
  }

  /** A length-prefixed byte string, copied out of the input. */
  readBytes(): Uint8Array {
    const len = this.stringLength();
    // A plain Uint8Array copy even when the input is a Node Buffer, whose slice() would be a view.
    const out = allocBytes(len);
    out.set(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len;
    return out;
  }

  skipBytes(): number {
    const len = this.stringLength();
    this.pos += len;
    return len;
  }

  readCharBytes(): string {
    const len = this.stringLength();
    const s = charString(this.buf, this.pos, this.pos + len);
    this.pos += len;
    return s;
  }

  /** A byte string's length prefix, checked against what remains. */
  private stringLength(): number {
    const start = this.pos;
    const len = this.readVarint();
    if (len > this.remaining) {
      throw new CodecError(`truncated byte string at offset ${start}: length ${len}, ${this.remaining} bytes remain`);
    }
    return len;
  }


  /** Reads an optional node id (value + 1 on the wire). */
  readOptionalId(): number {
    return this.readVarint() - 1;
  }

  expectEnd(what = 'value'): void {
    if (this.remaining !== 0) throw new CodecError(`trailing ${this.remaining} bytes after ${what}`);
  }
}

// ---- sizes (also validate every field) ----

const NO_DATA = new Uint8Array(0);
const ENTRY_COMMAND = 0;
const ENTRY_MEMBERSHIP = 1;
const utf8 = new TextEncoder();
// fatal: malformed UTF-8 throws; ignoreBOM: a leading U+FEFF is kept (by default TextDecoder strips it,
// so an address that begins with one would not round-trip).
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function entrySize(e: Entry): number {
  const head = uintSize(e.term, 'entry.term') + uintSize(e.index, 'entry.index') + 1;
  if (e.membership === undefined) return head + bytesSize(e.command, 'entry.command');
  if (e.command.length !== 0) throw new Error('a configuration entry carries no command');
  return head + membershipSize(e.membership);
}

function idListSize(ids: readonly number[], field: string): number {
  let size = uvarintSize(ids.length);
  for (const id of ids) size += uintSize(id, field);
  return size;
}

export function membershipSize(m: Membership): number {
  let size = idListSize(m.voters, 'membership.voters') + idListSize(m.outgoing, 'membership.outgoing') + idListSize(m.learners, 'membership.learners');
  size += uvarintSize(m.addresses.length);
  for (const a of m.addresses) {
    if (typeof a.address !== 'string') throw new Error('membership.addresses: an address must be a string');
    size += uintSize(a.id, 'membership.addresses.id') + bytesSize(utf8.encode(a.address), 'membership.addresses.address');
  }
  return size;
}

function entriesSize(entries: readonly Entry[]): number {
  let size = uvarintSize(entries.length);
  for (let i = 0; i < entries.length; i++) size += entrySize(entries[i]!);
  return size;
}

export function hardStateSize(h: HardState): number {
  return uintSize(h.term, 'HardState.term') + optIdSize(h.votedFor, 'HardState.votedFor');
}

/** A present snapshot covers index >= 1, so (0, 0, empty) can stand for "no snapshot". */
function snapshotSize(s: Snapshot | null): number {
  if (s === null) return 3;
  if (typeof s !== 'object') throw new Error('PersistentState.snapshot must be a Snapshot or null');
  if (s.index === 0) throw new Error('snapshot.index must be >= 1');
  return uintSize(s.index, 'snapshot.index') + uintSize(s.term, 'snapshot.term') + bytesSize(snapshotBodyBytes(s.data), 'snapshot.data');
}

export function persistentStateSize(s: PersistentState): number {
  const membership = s.snapshot?.membership;
  return hardStateSize(s.hardState) + snapshotSize(s.snapshot) + entriesSize(s.entries) + 1 + (membership === undefined ? 0 : membershipSize(membership));
}

export function messageSize(m: Message): number {
  let body: number;
  switch (m.type) {
    case 'RequestVote':
    case 'PreVote':
      body = uintSize(m.lastLogIndex, 'message.lastLogIndex') + uintSize(m.lastLogTerm, 'message.lastLogTerm');
      break;
    case 'RequestVoteReply':
    case 'PreVoteReply':
      body = boolSize(m.voteGranted, 'message.voteGranted');
      break;
    case 'AppendEntries':
      body =
        uintSize(m.prevLogIndex, 'AppendEntries.prevLogIndex') +
        uintSize(m.prevLogTerm, 'AppendEntries.prevLogTerm') +
        entriesSize(m.entries) +
        uintSize(m.leaderCommit, 'AppendEntries.leaderCommit') +
        uintSize(m.readContext, 'AppendEntries.readContext');
      break;
    case 'AppendEntriesReply':
      body =
        boolSize(m.success, 'AppendEntriesReply.success') +
        uintSize(m.prevLogIndex, 'AppendEntriesReply.prevLogIndex') +
        uintSize(m.matchIndex, 'AppendEntriesReply.matchIndex') +
        uintSize(m.conflictTerm, 'AppendEntriesReply.conflictTerm') +
        uintSize(m.conflictIndex, 'AppendEntriesReply.conflictIndex') +
        uintSize(m.lastLogIndex, 'AppendEntriesReply.lastLogIndex') +
        uintSize(m.readContext, 'AppendEntriesReply.readContext');
      break;
    case 'InstallSnapshot':
      body =
        uintSize(m.lastIncludedIndex, 'InstallSnapshot.lastIncludedIndex') +
        uintSize(m.lastIncludedTerm, 'InstallSnapshot.lastIncludedTerm') +
        uintSize(m.snapshotBytes, 'InstallSnapshot.snapshotBytes') +
        checksumSize(m.checksum) +
        uintSize(m.offset, 'InstallSnapshot.offset') +
        bytesSize(m.data, 'InstallSnapshot.data') +
        boolSize(m.done, 'InstallSnapshot.done') +
        membershipSize(m.membership);
      break;
    case 'TimeoutNow':
      body = 0;
      break;
    case 'InstallSnapshotReply':
      body =
        uintSize(m.lastIncludedIndex, 'InstallSnapshotReply.lastIncludedIndex') +
        uintSize(m.nextOffset, 'InstallSnapshotReply.nextOffset') +
        boolSize(m.installed, 'InstallSnapshotReply.installed');
      break;
    default:
      throw unknownType(m);
  }
  return 1 + uintSize(m.from, 'message.from') + uintSize(m.to, 'message.to') + uintSize(m.term, 'message.term') + body;
}

function unknownType(m: never): Error {
  return new Error(`unknown message type ${String((m as { type: unknown }).type)}`);
}

// ---- writers (callers validate via the size pass first; the writer re-checks cheaply) ----

export function writeEntry(w: ByteWriter, e: Entry): void {
  w.writeVarint(e.term, 'entry.term');
  w.writeVarint(e.index, 'entry.index');
  if (e.membership === undefined) {
    w.writeByte(ENTRY_COMMAND);
    w.writeBytes(e.command, 'entry.command');
  } else {
    w.writeByte(ENTRY_MEMBERSHIP);
    writeMembership(w, e.membership);
  }
}

function writeIdList(w: ByteWriter, ids: readonly number[]): void {
  w.writeVarint(ids.length);
  for (const id of ids) w.writeVarint(id);
}

export function writeMembership(w: ByteWriter, m: Membership): void {
  writeIdList(w, m.voters);
  writeIdList(w, m.outgoing);
  writeIdList(w, m.learners);
  w.writeVarint(m.addresses.length);
  for (const a of m.addresses) {
    w.writeVarint(a.id);
    w.writeBytes(utf8.encode(a.address));
  }
}

function writeEntries(w: ByteWriter, entries: readonly Entry[]): void {
  w.writeVarint(entries.length);
  for (let i = 0; i < entries.length; i++) writeEntry(w, entries[i]!);
}

export function writeHardState(w: ByteWriter, h: HardState): void {
  w.writeVarint(h.term, 'HardState.term');
  w.writeVarint(h.votedFor + 1, 'HardState.votedFor');
}

export function writeMessage(w: ByteWriter, m: Message): void {
  const tag = MESSAGE_TAGS[m.type] as number | undefined;
  if (tag === undefined) throw unknownType(m as never);
  w.writeByte(tag);
  w.writeVarint(m.from, 'message.from');
  w.writeVarint(m.to, 'message.to');
  w.writeVarint(m.term, 'message.term');
  switch (m.type) {
    case 'RequestVote':
    case 'PreVote':
      w.writeVarint(m.lastLogIndex);
      w.writeVarint(m.lastLogTerm);
      return;
    case 'RequestVoteReply':
    case 'PreVoteReply':
      w.writeBool(m.voteGranted);
      return;
    case 'AppendEntries':
      w.writeVarint(m.prevLogIndex);
      w.writeVarint(m.prevLogTerm);
      writeEntries(w, m.entries);
      w.writeVarint(m.leaderCommit);
      w.writeVarint(m.readContext);
      return;
    case 'AppendEntriesReply':
      w.writeBool(m.success);
      w.writeVarint(m.prevLogIndex);
      w.writeVarint(m.matchIndex);
      w.writeVarint(m.conflictTerm);
      w.writeVarint(m.conflictIndex);
      w.writeVarint(m.lastLogIndex);
      w.writeVarint(m.readContext);
      return;
    case 'InstallSnapshot':
      w.writeVarint(m.lastIncludedIndex);
      w.writeVarint(m.lastIncludedTerm);
      w.writeVarint(m.snapshotBytes);
      w.writeVarint(m.checksum);
      w.writeVarint(m.offset);
      w.writeBytes(m.data);
      w.writeBool(m.done);
      writeMembership(w, m.membership);
      return;
    case 'TimeoutNow':
      return;
    case 'InstallSnapshotReply':
      w.writeVarint(m.lastIncludedIndex);
      w.writeVarint(m.nextOffset);
      w.writeBool(m.installed);
      return;
  }
}

// ---- readers ----

export function readEntry(r: ByteReader): Entry {
  const term = r.readVarint();
  const index = r.readVarint();
  const at = r.offset;
  const kind = r.readByte('entry kind');
  if (kind === ENTRY_COMMAND) return { index, term, command: r.readBytes() };
  if (kind === ENTRY_MEMBERSHIP) return { index, term, command: NO_DATA, membership: readMembership(r) };
  throw new CodecError(`unknown entry kind ${kind} at offset ${at}`);
}

function readIdList(r: ByteReader): number[] {
  const at = r.offset;
  const count = r.readVarint();
  if (count > r.remaining) throw new CodecError(`truncated id list at offset ${at}: ${count} ids cannot fit in ${r.remaining} bytes`);
  const ids: number[] = [];
  for (let i = 0; i < count; i++) ids.push(r.readVarint());
  return ids;
}

/** Reads a configuration; its consistency (sorted, disjoint, ...) is the core's to check. */
export function readMembership(r: ByteReader): Membership {
  const voters = readIdList(r);
  const outgoing = readIdList(r);
  const learners = readIdList(r);
  const at = r.offset;
  const count = r.readVarint();
  if (count * 2 > r.remaining) throw new CodecError(`truncated address list at offset ${at}: ${count} addresses cannot fit in ${r.remaining} bytes`);
  const addresses: MemberAddress[] = [];
  for (let i = 0; i < count; i++) {
    const id = r.readVarint();
    const bytesAt = r.offset;
    const bytes = r.readBytes();
    let address: string;
    try {
      address = utf8Strict.decode(bytes);
    } catch {
      throw new CodecError(`address of member ${id} at offset ${bytesAt} is not valid UTF-8`);
    }
    addresses.push({ id, address });
  }
  return { voters, outgoing, learners, addresses };
}

function readEntries(r: ByteReader): Entry[] {
  const at = r.offset;
  const count = r.readVarint();
  // Every entry takes at least 3 bytes: reject absurd counts before looping.
  if (count * 3 > r.remaining) {
    throw new CodecError(`truncated entry list at offset ${at}: ${count} entries cannot fit in ${r.remaining} bytes`);
  }
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) entries.push(readEntry(r));
  return entries;
}

export function readHardState(r: ByteReader): HardState {
  const term = r.readVarint();
  return { term, votedFor: r.readOptionalId() };
}

export function readMessage(r: ByteReader): Message {
  const at = r.offset;
  const tag = r.readByte('message tag');
  const type = TAG_TYPES[tag];
  if (type === undefined) throw new CodecError(`unknown message tag ${tag} at offset ${at}`);
  const from = r.readVarint();
  const to = r.readVarint();
  const term = r.readVarint();
  switch (type) {
    case 'RequestVote':
    case 'PreVote': {
      const lastLogIndex = r.readVarint();
      return { type, from, to, term, lastLogIndex, lastLogTerm: r.readVarint() };
    }
    case 'RequestVoteReply':
    case 'PreVoteReply':
      return { type, from, to, term, voteGranted: r.readBool() };
    case 'AppendEntries': {
      const prevLogIndex = r.readVarint();
      const prevLogTerm = r.readVarint();
      const entries = readEntries(r);
      const leaderCommit = r.readVarint();
      return { type, from, to, term, prevLogIndex, prevLogTerm, entries, leaderCommit, readContext: r.readVarint() };
    }
    case 'AppendEntriesReply': {
      const success = r.readBool();
      const prevLogIndex = r.readVarint();
      const matchIndex = r.readVarint();
      const conflictTerm = r.readVarint();
      const conflictIndex = r.readVarint();
      const lastLogIndex = r.readVarint();
      const readContext = r.readVarint();
      return { type, from, to, term, success, prevLogIndex, matchIndex, conflictTerm, conflictIndex, lastLogIndex, readContext };
    }
    case 'InstallSnapshot': {
      const lastIncludedIndex = r.readVarint();
      const lastIncludedTerm = r.readVarint();
      const snapshotBytes = r.readVarint();
      const checksum = r.readVarint();
      if (checksum > 0xffffffff) throw new CodecError(`InstallSnapshot.checksum ${checksum} is not a 32-bit value`);
      const offset = r.readVarint();
      const data = r.readBytes();
      const done = r.readBool();
      return { type, from, to, term, lastIncludedIndex, lastIncludedTerm, snapshotBytes, checksum, offset, data, done, membership: readMembership(r) };
    }
    case 'TimeoutNow':
      return { type, from, to, term };
    case 'InstallSnapshotReply': {
      const lastIncludedIndex = r.readVarint();
      const nextOffset = r.readVarint();
      return { type, from, to, term, lastIncludedIndex, nextOffset, installed: r.readBool() };
    }
  }
}

// ---- whole-buffer API ----

function encodeWith<T>(value: T, size: (v: T) => number, write: (w: ByteWriter, v: T) => void): Uint8Array {
  const w = new ByteWriter(size(value));
  write(w, value);
  return w.finish();
}

function decodeWith<T>(bytes: Uint8Array, read: (r: ByteReader) => T, what: string): T {
  const r = new ByteReader(bytes);
  const value = read(r);
  r.expectEnd(what);
  return value;
}


function writePersistentState(w: ByteWriter, s: PersistentState): void {
  writeHardState(w, s.hardState);
  w.writeVarint(s.snapshot?.index ?? 0, 'snapshot.index');
  w.writeVarint(s.snapshot?.term ?? 0, 'snapshot.term');
  writeEntries(w, s.entries);
  w.writeBytes(s.snapshot === null ? NO_DATA : snapshotBodyBytes(s.snapshot.data), 'snapshot.data');
  const membership = s.snapshot?.membership;
  w.writeBool(membership !== undefined);
  if (membership !== undefined) writeMembership(w, membership);
}

function readPersistentState(r: ByteReader): PersistentState {
  const hardState = readHardState(r);
  const at = r.offset;
  const index = r.readVarint();
  const term = r.readVarint();
  const entries = readEntries(r);
  const dataAt = r.offset;
  const data = r.readBytes();
  const membershipAt = r.offset;
  const membership = r.readBool() ? readMembership(r) : undefined;
  if (index !== 0) return { hardState, snapshot: membership === undefined ? { index, term, data } : { index, term, data, membership }, entries };
  if (membership !== undefined) throw new CodecError(`snapshot index 0 with a configuration at offset ${membershipAt}`);
  if (term !== 0) throw new CodecError(`snapshot index 0 with term ${term} at offset ${at}`);
  if (data.length !== 0) throw new CodecError(`snapshot index 0 with ${data.length} data bytes at offset ${dataAt}`);
  return { hardState, snapshot: null, entries };
}

export const encodeMessage = (m: Message): Uint8Array => encodeWith(m, messageSize, writeMessage);
export const decodeMessage = (bytes: Uint8Array): Message => decodeWith(bytes, readMessage, 'message');
export const encodeEntry = (e: Entry): Uint8Array => encodeWith(e, entrySize, writeEntry);
export const decodeEntry = (bytes: Uint8Array): Entry => decodeWith(bytes, readEntry, 'entry');
export const encodeHardState = (h: HardState): Uint8Array => encodeWith(h, hardStateSize, writeHardState);
export const decodeHardState = (bytes: Uint8Array): HardState => decodeWith(bytes, readHardState, 'hard state');
export const encodePersistentState = (s: PersistentState): Uint8Array =>
  encodeWith(s, persistentStateSize, writePersistentState);
export const decodePersistentState = (bytes: Uint8Array): PersistentState =>
  decodeWith(bytes, readPersistentState, 'persistent state');
