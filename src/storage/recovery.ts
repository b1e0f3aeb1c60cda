/**
 * FileStorage's recovery: what open() makes of a data directory after a clean stop, a kill -9 or a
 * power cut. The formats are in wal-format.ts; the write path, whose crash behaviour this relies
 * on, is in file-storage.ts.
 *
 * What a crash can leave. Saves are written in batches, one write() and one fdatasync each, and a
 * batch is acknowledged only after its sync; the next batch is written only after that. So at most
 * one batch, the last, can be unsynced, and only it can be torn. A batch never spans segments, and
 * a new segment is created only after the previous one's last batch was synced. A torn batch may
 * end early (the file's size covers only part of it), or hold sectors that were never written:
 * within a file's size those read back as zeros, and only whole sectors, since a sector is written
 * whole or not at all.
 *
 * The rule. Replay stops at the first record R (at byte offset `at`, expected sequence S) that is
 * not valid.
 *   1. R is in a segment before the last: corruption (those were synced before the next began).
 *   2. R's CRC holds but its sequence number or content is wrong: corruption (its bytes are what
 *      was written).
 *   3. R is incomplete (the file ends inside its header, or before the end its length gives): a torn
 *      tail if no valid record follows it; otherwise corruption (a torn write cannot make a length
 *      larger than the one written, and the one written fits before the records that follow).
 *   4. R is complete but fails its CRC (or its length is impossible): a torn write only if it
 *      "looks torn", as etcd judges it: some 512-byte-aligned sector of the file that overlaps R
 *      is all zeros, from where R begins (or the sector does) to where the sector (or the file)
 *      ends. A complete record without such a sector was damaged after it was written
 *      (TSRAFT_STORAGE_CORRUPT), even at the very end of the log: that may be the last
 *      acknowledged save.
 *   5. If R looks torn and valid records follow it, it is still torn only if every one of them
 *      belongs to R's batch: it carries a batch mark (wal-format.ts) naming a first record at or
 *      before S — S itself, or the batch of the record just before R — and they all name the same.
 *      Then everything from R to the end of the file is the last, unsynced batch. A valid record
 *      of a later batch means R's batch was synced before it: corruption.
 * A torn write is truncated at R (and logged: file, offset, bytes cut, why); the records before R,
 * the first part of that batch included, are kept. Everything else stops startup with
 * TSRAFT_STORAGE_CORRUPT naming the file and byte offset. A zero-filled sector in a batch that had
 * been synced looks exactly like a torn one; like etcd, recovery takes it for torn and loses what
 * it held, which only the last batch can be. On a file system that can expose stale blocks after a
 * crash instead of zeros, a torn write is refused, and the operator decides.
 *
 * Durability of what is recovered. A process killed after a write but before its fdatasync leaves
 * the data in the page cache: open() reads it back, yet a power cut can still lose it. So before
 * open() returns, every live segment and the snapshot file are fdatasynced, and the directory is
 * fsynced (always: a predecessor may have died between creating, renaming or deleting a file and
 * syncing the directory). Only then are obsolete files deleted, so a checkpoint is durable before
 * the segments it replaces disappear. Nothing is modified before the whole directory is verified:
 * a refused directory is left as it was found.
 */
import type { FileHandle } from 'node:fs/promises';
import { open, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Snapshot } from '../core/messages.js';
import { LogState } from './log-state.js';
import { StorageError } from './storage.js';
import { checksumFileRange, FileSnapshotBody, isIncomingSnapshotName } from './snapshot-file.js';
import {
  checkSnapshotHeader,
  SNAPSHOT_HEADER,
  parseSegmentName,
  parseSnapshotName,
  replaySegment,
  snapshotName,
  startsWithCheckpoint,
  TEMP_SUFFIX,
  validRecordsAfter,
  type RecordProblem,
  type SnapshotMeta,
} from './wal-format.js';

export interface Segment {
  readonly name: string;
  readonly firstSeq: number;
}

/** What recovery needs from FileStorage: its directory, its (counted, optional) syncs and its log. */
export interface RecoveryHost {
  readonly dir: string;
  syncFile(fh: FileHandle): Promise<void>;
  syncDir(): Promise<void>;
  log(line: string): void;
  /** How to open the active segment for appending (FileStorage: read-write, O_DSYNC with fsync on). */
  readonly activeFlags: number;
}

export interface Recovered {
  readonly state: LogState<SnapshotMeta>;
  readonly snapshot: Snapshot | null;
  /** Live segments, oldest first; empty for a directory without a log. */
  readonly segments: Segment[];
  /** The last segment, open for appending (null if there are no segments). */
  readonly active: FileHandle | null;
  readonly activeBytes: number;
  readonly activeRecords: number;
  readonly nextSeq: number;
}

/** Sector size for judging torn writes: the smallest unit a disk writes whole. */
const SECTOR = 512;

function corrupt(what: string): StorageError {
  return new StorageError(`corrupt write-ahead log data: ${what}`, 'TSRAFT_STORAGE_CORRUPT');
}

export async function recoverDirectory(host: RecoveryHost): Promise<Recovered> {
  const path = (name: string): string => join(host.dir, name);
  const names = (await readdir(host.dir)).sort();
  const temps = names.filter(
    (name) => (name.endsWith(TEMP_SUFFIX) && parseSnapshotName(name.slice(0, -TEMP_SUFFIX.length)) !== null) || isIncomingSnapshotName(name),
  );
  const all: Segment[] = [];
  const snapshotFiles: string[] = [];
  for (const name of names) {
    const seq = parseSegmentName(name);
    if (seq !== null) all.push({ name, firstSeq: seq });
    else if (parseSnapshotName(name) !== null) snapshotFiles.push(name);
  }
  const removeTemps = async (): Promise<void> => {
    for (const name of temps) await remove(host, name, 'a snapshot that was never completed');
  };
  if (all.length === 0) {
    if (snapshotFiles.length > 0) throw corrupt(`${path(snapshotFiles[0]!)} exists but the write-ahead log is missing`);
    await removeTemps();
    if (temps.length > 0) await host.syncDir();
    return { state: new LogState(), snapshot: null, segments: [], active: null, activeBytes: 0, activeRecords: 0, nextSeq: 0 };
  }

  // Replay from the newest segment that starts with a checkpoint; older ones are obsolete.
  const buffers: Uint8Array[] = [];
  let start = all.length - 1;
  for (; start >= 0; start--) {
    const buf = await readWhole(path(all[start]!.name));
    buffers[start] = buf;
    if (startsWithCheckpoint(buf, all[start]!.firstSeq)) break;
  }
  if (start < 0) {
    start = 0;
    if (all[0]!.firstSeq !== 0) {
      throw corrupt(`${path(all[0]!.name)} at byte offset 0: the log does not begin at sequence 0 nor with a valid checkpoint (segments are missing)`);
    }
  }
  const live = all.slice(start);
  const state = new LogState<SnapshotMeta>();
  let seq = live[0]!.firstSeq;
  let cut: { offset: number; bytes: number; why: string } | null = null;
  let activeBytes = 0;
  let activeRecords = 0;
  for (let i = 0; i < live.length; i++) {
    const segment = live[i]!;
    const file = path(segment.name);
    const buf = buffers[start + i]!;
    if (segment.firstSeq !== seq) {
      throw corrupt(`${file} at byte offset 0: it begins at sequence ${segment.firstSeq}, expected ${seq} (a segment is missing or damaged)`);
    }
    const scan = replaySegment(state, buf, segment.firstSeq);
    seq += scan.records;
    const last = i === live.length - 1;
    if (scan.problem !== null) {
      const { offset, reason } = scan.problem;
      if (!last) throw corrupt(`${file} at byte offset ${offset}: ${reason} (not in the last segment, so it is not a torn write)`);
      const verdict = judge(buf, scan.problem, seq, scan.lastBatch);
      if (!verdict.torn) throw corrupt(`${file} at byte offset ${offset}: ${verdict.why}`);
      cut = { offset, bytes: buf.length - offset, why: verdict.why };
    }
    if (last) {
      activeBytes = scan.end;
      activeRecords = scan.records;
    }
  }

  // The snapshot the log references must be intact; any other snapshot file is a leftover.
  let snapshot: Snapshot | null = null;
  const meta = state.snapshot;
  if (meta !== null) {
    const name = snapshotName(meta.index);
    if (!snapshotFiles.includes(name)) throw corrupt(`${path(name)}: the snapshot file the log references is missing`);
    const problem = await checkSnapshotFile(path(name), meta);
    if (problem !== null) throw corrupt(`${path(name)}: ${problem}`);
    // Read when needed (a restore, a follower's chunk), never whole: a snapshot is as large as the state.
    const data = FileSnapshotBody.open(path(name), SNAPSHOT_HEADER, meta.length);
    // The configuration comes from the marker (the snapshot file holds only the data).
    snapshot = { index: meta.index, term: meta.term, data };
    if (meta.membership !== undefined) snapshot = { ...snapshot, membership: meta.membership };
  }

  // Verified: now make it durable, and only then remove what it replaces.
  await removeTemps();
  const activeName = live[live.length - 1]!.name;
  const active = await open(path(activeName), host.activeFlags);
  try {
    if (cut !== null) {
      await active.truncate(cut.offset);
      host.log(`truncated ${path(activeName)} at byte offset ${cut.offset}, cutting ${cut.bytes} bytes: ${cut.why}`);
    }
    for (const segment of live.slice(0, -1)) await syncPath(host, segment.name);
    await host.syncFile(active);
    if (meta !== null) await syncPath(host, snapshotName(meta.index));
    for (const name of snapshotFiles) {
      if (meta === null || name !== snapshotName(meta.index)) await remove(host, name, 'no longer referenced by the log');
    }
    for (const old of all.slice(0, start)) await remove(host, old.name, `superseded by the checkpoint at the start of ${live[0]!.name}`);
    await host.syncDir();
  } catch (error) {
    await active.close().catch(() => undefined);
    throw error;
  }
  return { state, snapshot, segments: live, active, activeBytes, activeRecords, nextSeq: seq };
}

interface Verdict {
  readonly torn: boolean;
  readonly why: string;
}

/** Applies the rule in the header to the first bad record of the last segment, which should carry `seq`. */
function judge(buf: Uint8Array, problem: RecordProblem, seq: number, previousBatch: number | null): Verdict {
  const { offset, reason, damage, end } = problem;
  if (damage === 'invalid') return { torn: false, why: `${reason} (its CRC is valid, so this is what was written)` };
  const after = validRecordsAfter(buf, offset, seq);
  const first = after[0];
  if (damage === 'incomplete') {
    if (first === undefined) return { torn: true, why: `${reason}, nothing valid follows: a torn write` };
    return { torn: false, why: `${reason}, yet a valid record (sequence ${first.seq}) starts at byte offset ${first.offset}, so it is not a torn write` };
  }
  const zeros = zeroSector(buf, offset, end);
  if (zeros === null) {
    return { torn: false, why: `${reason} in a complete record without a zero-filled sector: damaged after it was written, not a torn write` };
  }
  const hole = `bytes ${zeros.from}-${zeros.to - 1} are zero (sectors never written)`;
  if (first === undefined) return { torn: true, why: `${reason}, ${hole}, nothing valid follows: a torn write` };
  const batch = first.batchFirst;
  const sameBatch = batch !== null && (batch === seq || batch === previousBatch);
  const outsider = after.find((r) => !sameBatch || r.batchFirst !== batch || r.seq <= seq);
  if (outsider === undefined) {
    const lastSeq = after[after.length - 1]!.seq;
    const records = `the valid records after it (sequence ${first.seq}-${lastSeq})`;
    return { torn: true, why: `${reason}, ${hole}; ${records} belong to its own batch, the last write (from sequence ${batch}): a torn write` };
  }
  const whose =
    outsider.batchFirst === null
      ? 'has no batch mark, so nothing shows it belongs to the same write'
      : outsider.seq <= seq
        ? `cannot follow record ${seq}`
        : `belongs to a batch from sequence ${outsider.batchFirst}, not the one record ${seq} is in`;
  const record = `the valid record at byte offset ${outsider.offset} (sequence ${outsider.seq})`;
  return { torn: false, why: `${reason}, ${hole}, but ${record} ${whose}: damage to data that was synced` };
}

/**
 * The zero run starting in the first 512-byte-aligned sector that overlaps [from, to) and is all
 * zeros from max(its start, from) to min(its end, the end of the file); null if there is none.
 * Clipping at `from` is needed because that sector may begin with the previous batch's bytes.
 */
function zeroSector(buf: Uint8Array, from: number, to: number): { from: number; to: number } | null {
  for (let s = from - (from % SECTOR); s < to; s += SECTOR) {
    const a = Math.max(s, from);
    const b = Math.min(s + SECTOR, buf.length);
    if (a >= b || !allZero(buf, a, b)) continue;
    let z = b;
    while (z < buf.length && buf[z] === 0) z++;
    return { from: a, to: z };
  }
  return null;
}

function allZero(buf: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Why the snapshot file at `file` does not hold what `meta` says, or null: header, then data CRC, a piece at a time. */
async function checkSnapshotFile(file: string, meta: SnapshotMeta): Promise<string | null> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const header = new Uint8Array(SNAPSHOT_HEADER);
    const { bytesRead } = await fh.read(header, 0, SNAPSHOT_HEADER, 0);
    const problem = checkSnapshotHeader(header.subarray(0, bytesRead), size, meta);
    if (problem !== null) return problem;
    return (await checksumFileRange(fh, SNAPSHOT_HEADER, meta.length)) === meta.crc ? null : 'data CRC mismatch';
  } finally {
    await fh.close();
  }
}

async function readWhole(file: string): Promise<Uint8Array> {
  const b = await readFile(file);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/** fdatasync by name; 'r+' because some platforms refuse to sync a read-only handle. */
async function syncPath(host: RecoveryHost, name: string): Promise<void> {
  const fh = await open(join(host.dir, name), 'r+');
  try {
    await host.syncFile(fh);
  } finally {
    await fh.close();
  }
}

async function remove(host: RecoveryHost, name: string, why: string): Promise<void> {
  await unlink(join(host.dir, name));
  host.log(`removed ${join(host.dir, name)}: ${why}`);
}
