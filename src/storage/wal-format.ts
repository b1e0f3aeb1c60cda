/**
 * The on-disk formats of FileStorage: write-ahead log records and snapshot files.
 *
 * A segment file `wal-<16-digit sequence of its first record>.log` is a sequence of records:
 *
 *     u32 length | u32 CRC32C(payload) | payload          (little-endian; length = payload bytes)
 *
 * payload = u8 kinds | u64 sequence | parts. `kinds` is a bit set naming the parts present, in this
 * order: HARD_STATE (term, votedFor + 1: the codec's HardState), SNAPSHOT marker (index, term, data
 * length, data CRC32C: a reference to `snap-<index>.snap`), ENTRIES (fromIndex, count, then each
 * entry in the codec's format: the LogWrite). All numbers in parts are the codec's varints. One save
 * is one record, so a torn write loses a save whole or not at all. CHECKPOINT marks a record that
 * holds the complete state: replay resets before applying it. The sequence number counts records
 * from 0 across all segments; it lets recovery notice a missing segment, a record that does not
 * belong where it is, and tell a torn tail from damage followed by valid records.
 *
 * A snapshot file `snap-<16-digit index>.snap` is a 36-byte header, then the data:
 *
 *     u32 magic "TSNP" | u64 index | u64 term | u64 data length | u32 CRC32C(data) | u32 CRC32C(header[0..32))
 */
import type { Entry, HardState } from '../core/messages.js';
import { ByteWriter, entrySize, hardStateSize, varintSize, writeEntry, writeHardState } from '../codec/index.js';
import { crc32c } from './crc32c.js';
import type { LogState, SnapshotRef } from './log-state.js';

export const KIND_HARD_STATE = 1;
export const KIND_SNAPSHOT = 2;
export const KIND_ENTRIES = 4;
export const KIND_CHECKPOINT = 8;
const KNOWN_KINDS = KIND_HARD_STATE | KIND_SNAPSHOT | KIND_ENTRIES | KIND_CHECKPOINT;

export const RECORD_HEADER = 8;
/** kinds byte + sequence number. */
const PAYLOAD_MIN = 9;
const MAX_PAYLOAD = 0xffffffff;
const TWO_32 = 2 ** 32;

/** What the log needs to know of the snapshot it references. */
export interface SnapshotMeta extends SnapshotRef {
  readonly length: number;
  readonly crc: number;
}

export interface RecordParts {
  readonly checkpoint: boolean;
  readonly hardState: HardState | null;
  readonly snapshot: SnapshotMeta | null;
  /** The log write, if any: drop from fromIndex, append entries. */
  readonly fromIndex: number;
  readonly entries: readonly Entry[] | null;
}

const pad16 = (n: number): string => n.toString().padStart(16, '0');
export const segmentName = (firstSeq: number): string => `wal-${pad16(firstSeq)}.log`;
export const snapshotName = (index: number): string => `snap-${pad16(index)}.snap`;
export const TEMP_SUFFIX = '.tmp';
const SEGMENT_RE = /^wal-(\d{16})\.log$/;
const SNAPSHOT_RE = /^snap-(\d{16})\.snap$/;

export function parseSegmentName(name: string): number | null {
  const m = SEGMENT_RE.exec(name);
  return m === null ? null : Number(m[1]);
}

export function parseSnapshotName(name: string): number | null {
  const m = SNAPSHOT_RE.exec(name);
  return m === null ? null : Number(m[1]);
}

// ---------------------------------------------------------------- encoding

function writeU32(buf: Uint8Array, at: number, v: number): void {
  buf[at] = v & 0xff;
  buf[at + 1] = (v >>> 8) & 0xff;
  buf[at + 2] = (v >>> 16) & 0xff;
  buf[at + 3] = (v >>> 24) & 0xff;
}

function writeU64(buf: Uint8Array, at: number, v: number): void {
  writeU32(buf, at, v >>> 0);
  writeU32(buf, at + 4, Math.floor(v / TWO_32));
}

function readU32(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

function readU64(buf: Uint8Array, at: number): number {
  return readU32(buf, at) + readU32(buf, at + 4) * TWO_32;
}

/** One record, header included, as one exact-size buffer. */
export function encodeRecord(seq: number, parts: RecordParts): Uint8Array {
  let kinds = parts.checkpoint ? KIND_CHECKPOINT : 0;
  let size = RECORD_HEADER + PAYLOAD_MIN;
  const { hardState, snapshot, entries } = parts;
  if (hardState !== null) {
    kinds |= KIND_HARD_STATE;
    size += hardStateSize(hardState);
  }
  if (snapshot !== null) {
    kinds |= KIND_SNAPSHOT;
    size += varintSize(snapshot.index) + varintSize(snapshot.term) + varintSize(snapshot.length) + varintSize(snapshot.crc);
  }
  if (entries !== null) {
    kinds |= KIND_ENTRIES;
    size += varintSize(parts.fromIndex) + varintSize(entries.length);
    for (let i = 0; i < entries.length; i++) size += entrySize(entries[i]!);
  }
  if (size - RECORD_HEADER > MAX_PAYLOAD) throw new Error(`a log record of ${size} bytes exceeds the 4 GiB record limit`);
  const w = new ByteWriter(size);
  for (let i = 0; i < RECORD_HEADER; i++) w.writeByte(0);
  w.writeByte(kinds);
  for (let i = 0; i < 8; i++) w.writeByte(0); // sequence, patched below
  if (hardState !== null) writeHardState(w, hardState);
  if (snapshot !== null) {
    w.writeVarint(snapshot.index);
    w.writeVarint(snapshot.term);
    w.writeVarint(snapshot.length);
    w.writeVarint(snapshot.crc);
  }
  if (entries !== null) {
    w.writeVarint(parts.fromIndex);
    w.writeVarint(entries.length);
    for (let i = 0; i < entries.length; i++) writeEntry(w, entries[i]!);
  }
  const buf = w.finish();
  if (buf.length !== size) throw new Error(`record size mismatch: computed ${size}, wrote ${buf.length}`);
  writeU64(buf, RECORD_HEADER + 1, seq);
  writeU32(buf, 0, size - RECORD_HEADER);
  writeU32(buf, 4, crc32c(buf, RECORD_HEADER, size));
  return buf;
}

// ---------------------------------------------------------------- scanning and decoding

/** Why the bytes at some offset are not a valid record. */
export interface RecordProblem {
  readonly offset: number;
  readonly reason: string;
  /** The record is incomplete or fails its CRC: a torn write if nothing valid follows it. */
  readonly mayBeTorn: boolean;
}

/** Checks the record at `at`; returns its payload length, or a reason it is not valid. */
function checkRecord(buf: Uint8Array, at: number): number | string {
  const remaining = buf.length - at;
  if (remaining < RECORD_HEADER) return `incomplete record header (${remaining} bytes)`;
  const length = readU32(buf, at);
  if (length > remaining - RECORD_HEADER) return `incomplete record: length ${length}, ${remaining - RECORD_HEADER} bytes follow`;
  if (crc32c(buf, at + RECORD_HEADER, at + RECORD_HEADER + length) !== readU32(buf, at + 4)) return 'record CRC mismatch';
  if (length < PAYLOAD_MIN) return `record payload of ${length} bytes is too short`;
  return length;
}

/** The sequence number of the valid record at `at` (call after checkRecord). */
const recordSeq = (buf: Uint8Array, at: number): number => readU64(buf, at + RECORD_HEADER + 1);
const recordKinds = (buf: Uint8Array, at: number): number => buf[at + RECORD_HEADER]!;

/** Whether the segment begins with a valid checkpoint record carrying `firstSeq`. */
export function startsWithCheckpoint(buf: Uint8Array, firstSeq: number): boolean {
  return (
    typeof checkRecord(buf, 0) === 'number' &&
    (recordKinds(buf, 0) & KIND_CHECKPOINT) !== 0 &&
    recordSeq(buf, 0) === firstSeq
  );
}

/**
 * Whether any valid record with a sequence number >= `seq` starts after `from`. Used to tell a torn
 * tail (nothing valid after the bad record) from damage in the middle of the log. Cheap filters
 * (length fits, known kinds, plausible sequence) run at every offset before the CRC.
 */
export function validRecordAfter(buf: Uint8Array, from: number, seq: number): boolean {
  const maxSeq = seq + Math.ceil((buf.length - from) / (RECORD_HEADER + PAYLOAD_MIN));
  for (let p = from + 1; p + RECORD_HEADER + PAYLOAD_MIN <= buf.length; p++) {
    const length = readU32(buf, p);
    if (length < PAYLOAD_MIN || length > buf.length - p - RECORD_HEADER) continue;
    const kinds = buf[p + RECORD_HEADER]!;
    if (kinds === 0 || (kinds & ~KNOWN_KINDS) !== 0) continue;
    const s = readU64(buf, p + RECORD_HEADER + 1);
    if (s < seq || s > maxSeq) continue;
    if (crc32c(buf, p + RECORD_HEADER, p + RECORD_HEADER + length) === readU32(buf, p + 4)) return true;
  }
  return false;
}

/** Thrown while decoding a record whose CRC is valid but whose content is not. */
class RecordFormatError extends Error {}

/** A cursor over a record's payload that reads the codec's varints without allocating. */
class PayloadReader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos < this.end) {
      const b = buf[pos]!;
      if (b < 0x80) {
        this.pos = pos + 1;
        return b;
      }
    }
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (pos >= this.end) throw new RecordFormatError('truncated varint');
      const b = buf[pos++]!;
      result += (b & 0x7f) * scale;
      if (b < 0x80) {
        this.pos = pos;
        if (!Number.isSafeInteger(result)) throw new RecordFormatError('varint exceeds 2^53 - 1');
        return result;
      }
      scale *= 128;
    }
    throw new RecordFormatError('varint longer than 8 bytes');
  }
}

/**
 * Applies the valid record at `at` to `state`; `buf` must stay unmodified for as long as the state
 * holds its entries, whose commands are views into it (no copy: recovery speed, and the log lives
 * in memory anyway). Throws on content that breaks the format or the write rules.
 */
function applyRecord(state: LogState<SnapshotMeta>, buf: Uint8Array, at: number, length: number): void {
  const kinds = recordKinds(buf, at);
  if (kinds === 0 || (kinds & ~KNOWN_KINDS) !== 0) throw new RecordFormatError(`unknown record kinds 0x${kinds.toString(16)}`);
  const r = new PayloadReader(buf, at + RECORD_HEADER + PAYLOAD_MIN, at + RECORD_HEADER + length);
  if (kinds & KIND_CHECKPOINT) state.reset();
  if (kinds & KIND_HARD_STATE) {
    const term = r.varint();
    state.setHardState({ term, votedFor: r.varint() - 1 });
  }
  if (kinds & KIND_SNAPSHOT) {
    const index = r.varint();
    const term = r.varint();
    const dataLength = r.varint();
    const crc = r.varint();
    if (index < 1 || crc >= TWO_32) throw new RecordFormatError(`invalid snapshot marker (index ${index})`);
    state.applySnapshot({ index, term, length: dataLength, crc });
  }
  if (kinds & KIND_ENTRIES) {
    const fromIndex = r.varint();
    const count = r.varint();
    if (count * 3 > r.end - r.pos) throw new RecordFormatError(`${count} entries cannot fit in the record`);
    state.truncate(fromIndex);
    const entries = state.entries;
    const arrayBuffer = buf.buffer;
    const base = buf.byteOffset;
    for (let i = 0; i < count; i++) {
      const term = r.varint();
      const index = r.varint();
      if (index !== fromIndex + i) throw new RecordFormatError(`entry ${i} has index ${index}, expected ${fromIndex + i}`);
      const len = r.varint();
      const start = r.pos;
      if (len > r.end - start) throw new RecordFormatError(`entry ${index}: command of ${len} bytes overruns the record`);
      r.pos = start + len;
      entries.push({ index, term, command: new Uint8Array(arrayBuffer, base + start, len) });
    }
  }
  if (r.pos !== r.end) throw new RecordFormatError(`${r.end - r.pos} trailing bytes in the record`);
}

export interface SegmentScan {
  /** Valid records applied. */
  readonly records: number;
  /** Offset just after the last valid record. */
  readonly end: number;
  /** Why scanning stopped before the end of the buffer, if it did. */
  readonly problem: RecordProblem | null;
}

/**
 * Replays a segment into `state`: every record must be valid, carry the next sequence number (the
 * first one `firstSeq`) and follow the write rules. Stops at the first problem.
 */
export function replaySegment(state: LogState<SnapshotMeta>, buf: Uint8Array, firstSeq: number): SegmentScan {
  let at = 0;
  let seq = firstSeq;
  while (at < buf.length) {
    const checked = checkRecord(buf, at);
    if (typeof checked === 'string') return { records: seq - firstSeq, end: at, problem: { offset: at, reason: checked, mayBeTorn: true } };
    const found = recordSeq(buf, at);
    if (found !== seq) {
      const problem = { offset: at, reason: `record has sequence number ${found}, expected ${seq}`, mayBeTorn: false };
      return { records: seq - firstSeq, end: at, problem };
    }
    try {
      applyRecord(state, buf, at, checked);
    } catch (error) {
      const problem = { offset: at, reason: `invalid record content: ${(error as Error).message}`, mayBeTorn: false };
      return { records: seq - firstSeq, end: at, problem };
    }
    at += RECORD_HEADER + checked;
    seq++;
  }
  return { records: seq - firstSeq, end: at, problem: null };
}

// ---------------------------------------------------------------- snapshot files

const SNAPSHOT_MAGIC = 0x504e5354; // "TSNP" little-endian
export const SNAPSHOT_HEADER = 36;

export function encodeSnapshotHeader(meta: SnapshotMeta): Uint8Array {
  const h = new Uint8Array(SNAPSHOT_HEADER);
  writeU32(h, 0, SNAPSHOT_MAGIC);
  writeU64(h, 4, meta.index);
  writeU64(h, 12, meta.term);
  writeU64(h, 20, meta.length);
  writeU32(h, 28, meta.crc);
  writeU32(h, 32, crc32c(h, 0, 32));
  return h;
}

/** Verifies a snapshot file's bytes against the marker that references it; returns the data or a reason. */
export function decodeSnapshotFile(file: Uint8Array, expected: SnapshotMeta): Uint8Array | string {
  if (file.length < SNAPSHOT_HEADER) return `file of ${file.length} bytes is shorter than the snapshot header`;
  if (readU32(file, 0) !== SNAPSHOT_MAGIC) return 'bad magic number';
  if (crc32c(file, 0, 32) !== readU32(file, 32)) return 'header CRC mismatch';
  const index = readU64(file, 4);
  const term = readU64(file, 12);
  const length = readU64(file, 20);
  const crc = readU32(file, 28);
  if (length !== file.length - SNAPSHOT_HEADER) return `header says ${length} data bytes, the file holds ${file.length - SNAPSHOT_HEADER}`;
  if (crc32c(file, SNAPSHOT_HEADER, file.length) !== crc) return 'data CRC mismatch';
  if (index !== expected.index || term !== expected.term || length !== expected.length || crc !== expected.crc) {
    return `snapshot (index ${index}, term ${term}, ${length} bytes) does not match the log's marker (index ${expected.index}, term ${expected.term}, ${expected.length} bytes)`;
  }
  return new Uint8Array(file.buffer, file.byteOffset + SNAPSHOT_HEADER, length);
}
