/**
 * The on-disk formats of FileStorage: write-ahead log records and snapshot files.
 *
 * A segment file `wal-<16-digit sequence of its first record>.log` is a sequence of records:
 *
 *     u32 length | u32 CRC32C(payload) | payload          (little-endian; length = payload bytes)
 *
 * payload = u8 kinds | u64 sequence | parts. `kinds` is a bit set naming the parts present, in this
 * order: BATCH (the distance from this record's sequence number back to the first record of its
 * batch), HARD_STATE (term, votedFor + 1: the codec's HardState), SNAPSHOT marker (index, term, data
 * length, data CRC32C: a reference to `snap-<index>.snap`), SNAPSHOT_MEMBERSHIP (the configuration in
 * effect at the snapshot's index, in the codec's format; only with SNAPSHOT), ENTRIES (fromIndex,
 * count, then each entry in the codec's format: the LogWrite). All numbers in parts are the codec's
 * varints. One save is one record, so a torn write loses a save whole or not at all. CHECKPOINT
 * marks a record that holds the complete state: replay resets before applying it. The sequence
 * number counts records from 0 across all segments; it lets recovery notice a missing segment, a
 * record that does not belong where it is, and tell a torn tail from damage followed by valid
 * records.
 *
 * BATCH exists for recovery: a batch (the records one write() put on disk, synced together) is the
 * only unit a crash can tear, and only the last one can be unsynced. A damaged record followed by
 * valid records of its own batch is therefore a torn write; followed by a record of a later batch,
 * it is damage to data that was synced (recovery.ts has the whole rule). Every record carries the
 * mark because the damaged record's own bytes cannot be trusted: the records after it must prove
 * where their batch began. A batch never spans segments, so a segment's first record begins one.
 * Records written before the mark existed (no BATCH bit) still read; they just prove nothing, so
 * damage followed by them is refused as before. Older versions of tsraft refuse logs with the mark
 * (an unknown kind), which is the right answer for a downgrade.
 *
 * Configurations. ENTRY_KINDS says the record's entries are in the codec's current entry format:
 * term, index, a kind byte (0: a command, as length and bytes; 1: a configuration entry, the
 * configuration), where entries written before configurations existed have no kind byte (term,
 * index, command). Every record with ENTRIES now carries the bit, so a log written before it still
 * reads entry for entry as it was written, and an older version meeting a new record refuses the
 * log (an unknown kind) instead of misreading a kind byte as a command's length. The snapshot's own
 * configuration lives in the marker (SNAPSHOT_MEMBERSHIP), not in the snapshot file, whose format is
 * unchanged: a marker without it (written before configurations, or for a snapshot that has none)
 * reads back as a snapshot without one. Both bits occur only with the part they qualify; any other
 * combination is refused like any other record that breaks the format.
 *
 * A snapshot file `snap-<16-digit index>.snap` is a 36-byte header, then the data:
 *
 *     u32 magic "TSNP" | u64 index | u64 term | u64 data length | u32 CRC32C(data) | u32 CRC32C(header[0..32))
 */
import type { Membership } from '../core/membership.js';
import type { Entry, HardState } from '../core/messages.js';
import {
  ByteReader,
  ByteWriter,
  CodecError,
  entrySize,
  hardStateSize,
  membershipSize,
  readMembership,
  varintSize,
  writeEntry,
  writeHardState,
  writeMembership,
} from '../codec/index.js';
import { crc32c } from './crc32c.js';
import type { LogState, SnapshotRef } from './log-state.js';

export const KIND_HARD_STATE = 1;
export const KIND_SNAPSHOT = 2;
export const KIND_ENTRIES = 4;
export const KIND_CHECKPOINT = 8;
export const KIND_BATCH = 16;
/** The entries carry the codec's kind byte (see "Configurations" above); set with every ENTRIES. */
export const KIND_ENTRY_KINDS = 32;
/** The snapshot marker is followed by the snapshot's configuration. */
export const KIND_SNAPSHOT_MEMBERSHIP = 64;
const KNOWN_KINDS = KIND_HARD_STATE | KIND_SNAPSHOT | KIND_ENTRIES | KIND_CHECKPOINT | KIND_BATCH | KIND_ENTRY_KINDS | KIND_SNAPSHOT_MEMBERSHIP;

/** The codec's entry kinds (pinned by its tests): what follows an entry's index in ENTRY_KINDS records. */
const ENTRY_COMMAND = 0;
const ENTRY_MEMBERSHIP = 1;
/** The command of every configuration entry read back: configuration entries carry none. */
const NO_COMMAND = new Uint8Array(0);

export const RECORD_HEADER = 8;
/** kinds byte + sequence number. */
const PAYLOAD_MIN = 9;
const MAX_PAYLOAD = 0xffffffff;
const TWO_32 = 2 ** 32;

/**
 * What the log needs to know of the snapshot it references (`membership`, from SnapshotRef, is
 * recorded in the marker and handed back with the snapshot by open()).
 */
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

/** One record, header included, as one exact-size buffer; `batchFirst` is its batch's first sequence number. */
export function encodeRecord(seq: number, parts: RecordParts, batchFirst: number): Uint8Array {
  if (!(batchFirst <= seq && batchFirst >= 0)) throw new Error(`batch start ${batchFirst} does not precede record ${seq}`);
  let kinds = KIND_BATCH | (parts.checkpoint ? KIND_CHECKPOINT : 0);
  let size = RECORD_HEADER + PAYLOAD_MIN + varintSize(seq - batchFirst);
  const { hardState, snapshot, entries } = parts;
  if (hardState !== null) {
    kinds |= KIND_HARD_STATE;
    size += hardStateSize(hardState);
  }
  if (snapshot !== null) {
    kinds |= KIND_SNAPSHOT;
    size += varintSize(snapshot.index) + varintSize(snapshot.term) + varintSize(snapshot.length) + varintSize(snapshot.crc);
    if (snapshot.membership !== undefined) {
      kinds |= KIND_SNAPSHOT_MEMBERSHIP;
      size += membershipSize(snapshot.membership);
    }
  }
  if (entries !== null) {
    kinds |= KIND_ENTRIES | KIND_ENTRY_KINDS;
    size += varintSize(parts.fromIndex) + varintSize(entries.length);
    for (let i = 0; i < entries.length; i++) size += entrySize(entries[i]!);
  }
  if (size - RECORD_HEADER > MAX_PAYLOAD) throw new Error(`a log record of ${size} bytes exceeds the 4 GiB record limit`);
  const w = new ByteWriter(size);
  for (let i = 0; i < RECORD_HEADER; i++) w.writeByte(0);
  w.writeByte(kinds);
  for (let i = 0; i < 8; i++) w.writeByte(0); // sequence, patched below
  w.writeVarint(seq - batchFirst);
  if (hardState !== null) writeHardState(w, hardState);
  if (snapshot !== null) {
    w.writeVarint(snapshot.index);
    w.writeVarint(snapshot.term);
    w.writeVarint(snapshot.length);
    w.writeVarint(snapshot.crc);
    if (snapshot.membership !== undefined) writeMembership(w, snapshot.membership);
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

/**
 * Why the bytes at some offset are not a valid record. `damage` sorts the evidence recovery.ts
 * judges: `incomplete` (the header, or the length it gives, runs past the end of the file),
 * `damaged` (complete, but its CRC fails or its length is impossible: its bytes are not what was
 * written) or `invalid` (its CRC holds, so these are the bytes some writer wrote, yet they break the
 * format or the write rules: never a torn write).
 */
export interface RecordProblem {
  readonly offset: number;
  readonly reason: string;
  readonly damage: 'incomplete' | 'damaged' | 'invalid';
  /** Where the record ends by its length header (the end of the file if that runs past it). */
  readonly end: number;
}

type Inspection = { readonly length: number } | { readonly problem: RecordProblem };

/** Checks the framing and CRC of the record at `at`. */
function inspectRecord(buf: Uint8Array, at: number): Inspection {
  const remaining = buf.length - at;
  const problem = (reason: string, damage: RecordProblem['damage'], end: number): Inspection => ({ problem: { offset: at, reason, damage, end } });
  if (remaining < RECORD_HEADER) return problem(`incomplete record header (${remaining} bytes)`, 'incomplete', buf.length);
  const length = readU32(buf, at);
  if (length > remaining - RECORD_HEADER) {
    return problem(`incomplete record: length ${length}, ${remaining - RECORD_HEADER} bytes follow`, 'incomplete', buf.length);
  }
  const end = at + RECORD_HEADER + length;
  if (crc32c(buf, at + RECORD_HEADER, end) !== readU32(buf, at + 4)) return problem('record CRC mismatch', 'damaged', end);
  // Typically an all-zero header: length 0, and the CRC32C of nothing is 0.
  if (length < PAYLOAD_MIN) return problem(`record payload of ${length} bytes is too short`, 'damaged', end);
  return { length };
}

/** The sequence number of the valid record at `at` (call after inspectRecord). */
const recordSeq = (buf: Uint8Array, at: number): number => readU64(buf, at + RECORD_HEADER + 1);
const recordKinds = (buf: Uint8Array, at: number): number => buf[at + RECORD_HEADER]!;

/** Whether the segment begins with a valid checkpoint record carrying `firstSeq`. */
export function startsWithCheckpoint(buf: Uint8Array, firstSeq: number): boolean {
  return (
    'length' in inspectRecord(buf, 0) &&
    (recordKinds(buf, 0) & KIND_CHECKPOINT) !== 0 &&
    recordSeq(buf, 0) === firstSeq
  );
}

/** A record with a valid CRC found by scanning, and its batch's first sequence number if it has the mark. */
export interface FoundRecord {
  readonly offset: number;
  readonly seq: number;
  readonly batchFirst: number | null;
}

/**
 * Every valid record with a sequence number >= `seq` that starts after `from`, found by trying
 * every offset (framing past damage cannot be trusted); once one is found, the search resumes at
 * its end, so bytes inside a record's commands are never mistaken for records. Cheap filters
 * (length fits, known kinds, plausible sequence) run before the CRC.
 */
export function validRecordsAfter(buf: Uint8Array, from: number, seq: number): FoundRecord[] {
  const found: FoundRecord[] = [];
  const maxSeq = seq + Math.ceil((buf.length - from) / (RECORD_HEADER + PAYLOAD_MIN));
  for (let p = from + 1; p + RECORD_HEADER + PAYLOAD_MIN <= buf.length; ) {
    const length = readU32(buf, p);
    const kinds = buf[p + RECORD_HEADER]!;
    const s = readU64(buf, p + RECORD_HEADER + 1);
    if (
      length >= PAYLOAD_MIN &&
      length <= buf.length - p - RECORD_HEADER &&
      kinds !== 0 &&
      (kinds & ~KNOWN_KINDS) === 0 &&
      s >= seq &&
      s <= maxSeq &&
      crc32c(buf, p + RECORD_HEADER, p + RECORD_HEADER + length) === readU32(buf, p + 4)
    ) {
      found.push({ offset: p, seq: s, batchFirst: batchMark(buf, p, length) });
      p += RECORD_HEADER + length;
    } else {
      p++;
    }
  }
  return found;
}

/** The batch's first sequence number from the valid record at `at`, or null if it has no (usable) mark. */
function batchMark(buf: Uint8Array, at: number, length: number): number | null {
  if ((recordKinds(buf, at) & KIND_BATCH) === 0) return null;
  const r = new PayloadReader(buf, at + RECORD_HEADER + PAYLOAD_MIN, at + RECORD_HEADER + length);
  try {
    const back = r.varint();
    const seq = recordSeq(buf, at);
    return back <= seq ? seq - back : null;
  } catch {
    return null;
  }
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

  byte(what: string): number {
    if (this.pos >= this.end) throw new RecordFormatError(`truncated ${what}`);
    return this.buf[this.pos++]!;
  }

  /**
   * A configuration in the codec's format, read by the codec itself (one format, one reader; these
   * are rare, so the copy its reader makes of the addresses costs nothing that matters). Anything
   * malformed, from a truncated id list to an address that is not UTF-8, is the record's fault.
   * Whether the configuration makes sense (sorted ids, voters present) is the core's to judge, as
   * it is for one received from a peer: the storage hands back what was saved.
   */
  membership(what: string): Membership {
    const start = this.pos;
    const r = new ByteReader(this.buf.subarray(start, this.end));
    try {
      const membership = readMembership(r);
      this.pos = start + r.offset;
      return membership;
    } catch (error) {
      if (!(error instanceof CodecError)) throw error;
      throw new RecordFormatError(`${what}: malformed configuration (offsets from its start): ${error.message}`);
    }
  }
}

/**
 * Applies the valid record at `at` (sequence `seq`) to `state` and returns its batch's first
 * sequence number (null for a record without the mark). `previousBatch` is the mark of the record
 * before it in the same segment (null if none or unmarked): a record either continues that batch or
 * begins its own. `buf` must stay unmodified for as long as the state holds its entries, whose
 * commands are views into it (no copy: recovery speed, and the log lives in memory anyway). Throws
 * on content that breaks the format or the write rules.
 */
function applyRecord(
  state: LogState<SnapshotMeta>,
  buf: Uint8Array,
  at: number,
  length: number,
  seq: number,
  previousBatch: number | null,
): number | null {
  const kinds = recordKinds(buf, at);
  if (kinds === 0 || (kinds & ~KNOWN_KINDS) !== 0) throw new RecordFormatError(`unknown record kinds 0x${kinds.toString(16)}`);
  // A qualifier without the part it qualifies is never written: the kinds byte is not what it seems.
  if ((kinds & KIND_SNAPSHOT_MEMBERSHIP) !== 0 && (kinds & KIND_SNAPSHOT) === 0) {
    throw new RecordFormatError(`record kinds 0x${kinds.toString(16)} name a snapshot configuration without a snapshot marker`);
  }
  if ((kinds & KIND_ENTRY_KINDS) !== 0 && (kinds & KIND_ENTRIES) === 0) {
    throw new RecordFormatError(`record kinds 0x${kinds.toString(16)} name an entry format without entries`);
  }
  const r = new PayloadReader(buf, at + RECORD_HEADER + PAYLOAD_MIN, at + RECORD_HEADER + length);
  let batchFirst: number | null = null;
  if (kinds & KIND_BATCH) {
    const back = r.varint();
    batchFirst = seq - back;
    if (back !== 0 && batchFirst !== previousBatch) {
      const before = previousBatch === null ? 'begins no batch' : `is in the batch from ${previousBatch}`;
      throw new RecordFormatError(`record ${seq} claims a batch from ${batchFirst}, but the record before it ${before}`);
    }
  }
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
    const meta: SnapshotMeta = { index, term, length: dataLength, crc };
    // Without the part (an older record), the snapshot has no recorded configuration: undefined, as
    // Snapshot.membership documents, never a guess.
    state.applySnapshot(kinds & KIND_SNAPSHOT_MEMBERSHIP ? { ...meta, membership: r.membership(`snapshot ${index}`) } : meta);
  }
  if (kinds & KIND_ENTRIES) {
    const withKinds = (kinds & KIND_ENTRY_KINDS) !== 0;
    const fromIndex = r.varint();
    const count = r.varint();
    // Every entry takes at least term, index and a length (and a kind byte in the current format).
    if (count * (withKinds ? 4 : 3) > r.end - r.pos) throw new RecordFormatError(`${count} entries cannot fit in the record`);
    state.truncate(fromIndex);
    const entries = state.entries;
    const arrayBuffer = buf.buffer;
    const base = buf.byteOffset;
    for (let i = 0; i < count; i++) {
      const term = r.varint();
      const index = r.varint();
      if (index !== fromIndex + i) throw new RecordFormatError(`entry ${i} has index ${index}, expected ${fromIndex + i}`);
      if (withKinds) {
        const kind = r.byte(`kind of entry ${index}`);
        if (kind === ENTRY_MEMBERSHIP) {
          entries.push({ index, term, command: NO_COMMAND, membership: r.membership(`entry ${index}`) });
          continue;
        }
        if (kind !== ENTRY_COMMAND) throw new RecordFormatError(`entry ${index} has unknown kind ${kind}`);
      }
      const len = r.varint();
      const start = r.pos;
      if (len > r.end - start) throw new RecordFormatError(`entry ${index}: command of ${len} bytes overruns the record`);
      r.pos = start + len;
      entries.push({ index, term, command: new Uint8Array(arrayBuffer, base + start, len) });
    }
  }
  if (r.pos !== r.end) throw new RecordFormatError(`${r.end - r.pos} trailing bytes in the record`);
  return batchFirst;
}

export interface SegmentScan {
  /** Valid records applied. */
  readonly records: number;
  /** Offset just after the last valid record. */
  readonly end: number;
  /** The batch mark of the last valid record (null if there is none, or it has no mark). */
  readonly lastBatch: number | null;
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
  let batch: number | null = null;
  const stop = (problem: RecordProblem): SegmentScan => ({ records: seq - firstSeq, end: at, lastBatch: batch, problem });
  while (at < buf.length) {
    const inspected = inspectRecord(buf, at);
    if ('problem' in inspected) return stop(inspected.problem);
    const { length } = inspected;
    const end = at + RECORD_HEADER + length;
    const found = recordSeq(buf, at);
    if (found !== seq) return stop({ offset: at, reason: `record has sequence number ${found}, expected ${seq}`, damage: 'invalid', end });
    try {
      batch = applyRecord(state, buf, at, length, seq, batch);
    } catch (error) {
      // Anything thrown here (a format error, a broken write rule's assertion) is the record's fault.
      return stop({ offset: at, reason: `invalid record content: ${(error as Error).message}`, damage: 'invalid', end });
    }
    at = end;
    seq++;
  }
  return { records: seq - firstSeq, end: at, lastBatch: batch, problem: null };
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

/**
 * Verifies a snapshot file's header (its first SNAPSHOT_HEADER bytes, of a file of `fileBytes`)
 * against the marker that references it; returns a reason, or null. The caller checks the data
 * against the header's CRC (`expected.crc`), reading it a piece at a time.
 */
export function checkSnapshotHeader(header: Uint8Array, fileBytes: number, expected: SnapshotMeta): string | null {
  if (fileBytes < SNAPSHOT_HEADER || header.length < SNAPSHOT_HEADER) return `file of ${fileBytes} bytes is shorter than the snapshot header`;
  if (readU32(header, 0) !== SNAPSHOT_MAGIC) return 'bad magic number';
  if (crc32c(header, 0, 32) !== readU32(header, 32)) return 'header CRC mismatch';
  const index = readU64(header, 4);
  const term = readU64(header, 12);
  const length = readU64(header, 20);
  const crc = readU32(header, 28);
  if (length !== fileBytes - SNAPSHOT_HEADER) return `header says ${length} data bytes, the file holds ${fileBytes - SNAPSHOT_HEADER}`;
  if (index !== expected.index || term !== expected.term || length !== expected.length || crc !== expected.crc) {
    return `snapshot (index ${index}, term ${term}, ${length} bytes) does not match the log's marker (index ${expected.index}, term ${expected.term}, ${expected.length} bytes)`;
  }
  return null;
}
