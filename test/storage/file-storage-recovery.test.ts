/**
 * FileStorage recovery (src/storage/recovery.ts): torn writes against corruption, batches, the
 * fdatasync of what open() recovers, the log of what it changes, the record format without batch
 * marks, the record format before configurations, and records whose CRC holds but whose content is
 * nonsense (configurations included).
 */
import assert from 'node:assert/strict';
import { existsSync, readlinkSync, realpathSync } from 'node:fs';
import { copyFile, open, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { ByteWriter } from '../../src/codec/index.js';
import type { Entry, HardState } from '../../src/core/messages.js';
import type { LogWrite } from '../../src/core/ready.js';
import { crc32c } from '../../src/storage/crc32c.js';
import { FileStorage, type FileStorageOptions } from '../../src/storage/file-storage.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { StorageError } from '../../src/storage/storage.js';
import { encodeSnapshotHeader } from '../../src/storage/wal-format.js';
import { recordSpans, tempDirs, walFiles, type RecordSpan } from './file-storage-fixture.js';
import { configEntry, describe, entry, membership, snapshot } from './storage-contract.js';

const { tempDir, copyDir } = tempDirs('tsraft-recovery-');

const EMPTY = describe({ hardState: { term: 0, votedFor: -1 }, snapshot: null, entries: [] });

/** Opens `dir`, returns the state it recovered and the lines it logged; closes it again. */
async function recoverIn(dir: string, options: Partial<FileStorageOptions> = {}): Promise<{ state: unknown; lines: string[] }> {
  const lines: string[] = [];
  const s = new FileStorage({ dir, fsync: false, log: (line) => lines.push(line), ...options });
  try {
    return { state: describe(await s.open()), lines };
  } finally {
    await s.close();
  }
}

const refusedAt = (file: string, offset: number, message?: RegExp) => (error: unknown): boolean => {
  assert.ok(error instanceof StorageError, `expected a StorageError, got ${String(error)}`);
  assert.equal(error.code, 'TSRAFT_STORAGE_CORRUPT', error.message);
  assert.ok(error.message.includes(`${file} at byte offset ${offset}:`), error.message);
  if (message !== undefined) assert.match(error.message, message);
  return true;
};

/** Rewrites part of a file in place. */
async function patch(file: string, at: number, bytes: Uint8Array): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.write(bytes, 0, bytes.length, at);
  } finally {
    await fh.close();
  }
}

const zeros = (n: number): Uint8Array => new Uint8Array(n);

interface Log {
  readonly dir: string;
  /** describe()d state after each record: states[k] holds records 0..k. */
  readonly states: unknown[];
  readonly spans: RecordSpan[];
  /** The batch (one write) each record belongs to. */
  readonly batchOf: number[];
}

const before = (log: Log, k: number): unknown => (k === 0 ? EMPTY : log.states[k - 1]);

/**
 * Writes batch after batch: batch b is sizes[b] saves issued together, which FileStorage writes
 * with one write() (checked). Each save is one record: an entry with a command of `commandBytes`
 * (never a zero byte), and a hard state for the first save of a batch.
 */
async function writeBatches(sizes: readonly number[], commandBytes = 100, dir?: string): Promise<Log> {
  dir ??= await tempDir();
  const s = new FileStorage({ dir, fsync: false, log: () => undefined });
  const model = new MemoryStorage();
  await s.open();
  await model.open();
  const states: unknown[] = [];
  const batchOf: number[] = [];
  let last = 0;
  for (let b = 0; b < sizes.length; b++) {
    const saves: [HardState | null, LogWrite][] = [];
    for (let j = 0; j < sizes[b]!; j++) {
      last++;
      const command = `cmd-${last}-`.padEnd(commandBytes, 'abcdefgh'[last % 8]!);
      saves.push([j === 0 ? { term: b + 1, votedFor: b % 3 } : null, { fromIndex: last, entries: [entry(last, b + 1, command)] }]);
    }
    const writes = s.stats.writes;
    await Promise.all(saves.map(([h, l]) => s.save(h, null, l)));
    assert.equal(s.stats.writes - writes, 1, `batch ${b} is one write`);
    for (const [h, l] of saves) {
      await model.save(h, null, l);
      states.push(describe(model.state()));
      batchOf.push(b);
    }
  }
  await s.close();
  const spans = await recordSpans(dir);
  assert.equal(spans.length, states.length, 'one record per save');
  return { dir, states, spans, batchOf };
}

// ---------------------------------------------------------------- 4: torn writes inside the last batch

test('recovery: a zero-filled sector in the last batch is a torn write, in an earlier batch corruption (every sector)', async (t) => {
  const log = await writeBatches([1, 3, 1, 6, 2, 30]);
  const [file] = await walFiles(log.dir);
  const original = await readFile(join(log.dir, file!));
  let tornWithValidAfter = 0;
  let tornTail = 0;
  let refused = 0;
  for (let s = 0; s < original.length; s += 512) {
    const e = Math.min(s + 512, original.length);
    const changed = log.spans.map((r) => r.start < e && r.end > s && original.subarray(Math.max(r.start, s), Math.min(r.end, e)).some((b) => b !== 0));
    const k = changed.indexOf(true);
    if (k < 0) continue;
    const intactAfter = log.spans.map((_, r) => r).filter((r) => r > k && !changed[r]);
    const torn = intactAfter.every((r) => log.batchOf[r] === log.batchOf[k]);
    const copy = await copyDir(log.dir);
    const path = join(copy, file!);
    await patch(path, s, zeros(e - s));
    const where = `sector at ${s} (first damaged record ${k}, batch ${log.batchOf[k]})`;
    if (torn) {
      const { state, lines } = await recoverIn(copy);
      assert.deepEqual(state, before(log, k), where);
      assert.equal((await stat(path)).size, log.spans[k]!.start, `${where}: cut at the damaged record`);
      assert.equal(lines.length, 1, where);
      assert.ok(lines[0]!.startsWith(`truncated ${path} at byte offset ${log.spans[k]!.start}, cutting ${original.length - log.spans[k]!.start} bytes: `), lines[0]);
      assert.match(lines[0]!, /are zero/);
      if (intactAfter.length > 0) {
        assert.match(lines[0]!, /belong to its own batch, the last write/);
        tornWithValidAfter++;
      } else {
        tornTail++;
      }
    } else {
      await assert.rejects(recoverIn(copy), refusedAt(path, log.spans[k]!.start, /damage to data that was synced/), where);
      refused++;
    }
    await rm(copy, { recursive: true });
  }
  t.diagnostic(`${tornWithValidAfter} holes inside the last batch recovered, ${tornTail} torn tails recovered, ${refused} holes in synced batches refused`);
  assert.ok(tornWithValidAfter >= 4 && refused >= 3, `${tornWithValidAfter} / ${tornTail} / ${refused}`);
});

test('recovery: a hole in a batch is refused once a later batch follows it, even one record long', async () => {
  const sizes = [4, 30];
  const log = await writeBatches(sizes);
  const [file] = await walFiles(log.dir);
  const firstOfLast = log.batchOf.indexOf(1);
  const hole = Math.ceil((log.spans[firstOfLast]!.start + 1) / 512) * 512; // a sector inside the last batch
  const k = log.spans.findIndex((r) => r.end > hole);
  assert.ok(log.batchOf[k] === 1 && log.spans[log.spans.length - 1]!.start > hole + 512, 'the hole is in the middle of the last batch');

  const torn = await copyDir(log.dir);
  await patch(join(torn, file!), hole, zeros(512));
  const { state, lines } = await recoverIn(torn);
  assert.deepEqual(state, before(log, k));
  assert.equal(lines.length, 1);

  // The same bytes, then one more batch: the damaged batch was synced before that one was written.
  const longer = await writeBatches([...sizes, 1]);
  assert.deepEqual(longer.spans.slice(0, log.spans.length), log.spans, 'the same records');
  await patch(join(longer.dir, file!), hole, zeros(512));
  await assert.rejects(recoverIn(longer.dir), refusedAt(join(longer.dir, file!), log.spans[k]!.start, /belongs to a batch from sequence 34/));
});

test('recovery: a crash during a checkpoint write falls back to the previous state', async () => {
  // A checkpoint batch (snapshot, then more saves, one write) whose first sector never reached the
  // disk; the segments it would have replaced are still there, as they are deleted only after it.
  const dir = await tempDir();
  const s = new FileStorage({ dir, fsync: false, log: () => undefined });
  await s.open();
  const model = new MemoryStorage();
  await model.open();
  for (let i = 1; i <= 20; i++) {
    const h = i === 1 ? { term: 1, votedFor: 0 } : null;
    const l = { fromIndex: i, entries: [entry(i, 1)] };
    await s.save(h, null, l);
    await model.save(h, null, l);
  }
  const previous = describe(model.state());
  const old = await copyDir(dir);
  await rm(join(old, 'LOCK'));
  const more = (i: number): LogWrite => ({ fromIndex: i, entries: [entry(i, 1, 'y'.repeat(300))] });
  await Promise.all([s.save(null, snapshot(15, 1), null), s.save(null, null, more(21)), s.save(null, null, more(22)), s.save(null, null, more(23))]);
  await s.close();
  const [checkpointSegment] = await walFiles(dir);
  assert.equal((await walFiles(dir)).length, 1);
  await copyFile(join(dir, checkpointSegment!), join(old, checkpointSegment!));
  await copyFile(join(dir, 'snap-0000000000000015.snap'), join(old, 'snap-0000000000000015.snap'));
  assert.ok((await recordSpans(dir))[0]!.end < 512, 'the checkpoint record lies in the first sector');
  await patch(join(old, checkpointSegment!), 0, zeros(512));

  const { state, lines } = await recoverIn(old);
  assert.deepEqual(state, previous);
  assert.equal((await stat(join(old, checkpointSegment!))).size, 0);
  assert.ok(!existsSync(join(old, 'snap-0000000000000015.snap')), 'the unreferenced snapshot is removed');
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.match(lines[0]!, /^truncated .*wal-0000000000000020\.log at byte offset 0, cutting \d+ bytes: .*belong to its own batch/);
  assert.match(lines[1]!, /^removed .*snap-0000000000000015\.snap: no longer referenced by the log$/);

  // It carries on from there, in the emptied segment.
  const again = new FileStorage({ dir: old, fsync: false });
  await again.open();
  await again.save(null, null, { fromIndex: 21, entries: [entry(21, 2)] });
  await again.close();
  const reopened = (await recoverIn(old)).state as { entries: string[] };
  assert.equal(reopened.entries.length, 21);
});

// ---------------------------------------------------------------- 2: torn or corrupt at the end

test('recovery: a complete final record failing its CRC is corruption unless a sector of it is zero-filled', async () => {
  const log = await writeBatches([1, 2, 1], 2000); // the final record spans several sectors
  const [file] = await walFiles(log.dir);
  const final = log.spans[log.spans.length - 1]!;
  const size = final.end;
  assert.ok(final.end - final.start > 1600 && final.start % 512 !== 0);
  const second = final.start + 512 - (final.start % 512); // the first sector boundary inside it
  const lastSector = Math.floor((size - 1) / 512) * 512;
  assert.ok(lastSector > final.start && size - lastSector > 1);
  const cases: { what: string; damage: (path: string) => Promise<void>; torn: boolean }[] = [
    { what: 'a flipped bit in its command', damage: (p) => flip(p, final.start + 700), torn: false },
    { what: 'a flipped bit in its CRC', damage: (p) => flip(p, final.start + 5), torn: false },
    { what: '100 zero bytes inside a sector', damage: (p) => patch(p, second + 200, zeros(100)), torn: false },
    { what: 'zeros from inside a sector to the end of the file', damage: (p) => patch(p, lastSector + 1, zeros(size - lastSector - 1)), torn: false },
    { what: 'zeros from its first byte to the end of the file', damage: (p) => patch(p, final.start, zeros(size - final.start)), torn: true },
    { what: 'zeros from a sector boundary to the end of the file', damage: (p) => patch(p, second + 512, zeros(size - second - 512)), torn: true },
    { what: 'one zero-filled sector, the rest intact', damage: (p) => patch(p, second, zeros(512)), torn: true },
    { what: 'a zeroed header', damage: (p) => patch(p, final.start, zeros(8)), torn: false },
    { what: 'a length that runs past the end of the file', damage: (p) => patch(p, final.start + 2, new Uint8Array([0x10])), torn: true },
    { what: 'a file that ends inside it', damage: (p) => truncate(p, size - 1), torn: true },
  ];
  for (const { what, damage, torn } of cases) {
    const copy = await copyDir(log.dir);
    const path = join(copy, file!);
    await damage(path);
    if (torn) {
      const { state, lines } = await recoverIn(copy);
      assert.deepEqual(state, log.states[log.states.length - 2], what);
      assert.equal((await stat(path)).size, final.start, what);
      assert.equal(lines.length, 1, what);
      assert.match(lines[0]!, new RegExp(`^truncated ${path} at byte offset ${final.start}, cutting \\d+ bytes: .*a torn write$`), what);
    } else {
      await assert.rejects(recoverIn(copy), refusedAt(path, final.start, /not a torn write/), what);
      assert.equal((await stat(path)).size, size, `${what}: left as found`);
    }
    await rm(copy, { recursive: true });
  }
});

async function flip(path: string, at: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[at] = bytes[at]! ^ 0x04;
  await writeFile(path, bytes);
}

test('recovery: a length running past the end of the file is not torn when valid records follow it', async () => {
  const log = await writeBatches([3, 3]);
  const [file] = await walFiles(log.dir);
  const victim = log.spans[log.spans.length - 2]!;
  const path = join(log.dir, file!);
  await patch(path, victim.start + 2, new Uint8Array([0x10]));
  await assert.rejects(recoverIn(log.dir), refusedAt(path, victim.start, /incomplete record.*yet a valid record \(sequence 5\)/));
});

// ---------------------------------------------------------------- 1: recovery fsyncs what it recovered

/** Records the path of every FileHandle that is fdatasynced or fsynced while `body` runs (Linux: /proc). */
interface SyncCall {
  readonly path: string;
  /** fdatasync (a file) rather than fsync (the directory). */
  readonly data: boolean;
  /** What `atSync` said at the time. */
  readonly ok: boolean;
}

async function watchSyncs<T>(dir: string, body: () => Promise<T>, atSync: () => boolean): Promise<{ result: T; synced: SyncCall[] }> {
  const probe = await open(dir, 'r');
  const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void>; sync: () => Promise<void> };
  await probe.close();
  const { datasync, sync } = proto;
  const synced: SyncCall[] = [];
  const where = (fd: number): string => readlinkSync(`/proc/self/fd/${fd}`);
  proto.datasync = function (this: { fd: number }) {
    synced.push({ path: where(this.fd), data: true, ok: atSync() });
    return datasync.call(this);
  };
  proto.sync = function (this: { fd: number }) {
    synced.push({ path: where(this.fd), data: false, ok: atSync() });
    return sync.call(this);
  };
  try {
    return { result: await body(), synced };
  } finally {
    proto.datasync = datasync;
    proto.sync = sync;
  }
}

test('recovery: open() fdatasyncs every recovered segment and the snapshot, then removes leftovers and fsyncs the directory', async () => {
  // A log written without a single sync, as a killed process may leave it in the page cache: a
  // snapshot, three segments after its checkpoint, the segments it replaced (not deleted yet), a torn tail.
  const dir = await tempDir();
  const w = new FileStorage({ dir, fsync: false, segmentBytes: 400 });
  await w.open();
  await w.save({ term: 1, votedFor: 0 }, null, null);
  for (let i = 1; i <= 12; i++) await w.save(null, null, { fromIndex: i, entries: [entry(i, 1, 'z'.repeat(60))] });
  const replaced = await copyDir(dir);
  await w.save(null, snapshot(10, 1), null);
  for (let i = 13; i <= 30; i++) await w.save(null, null, { fromIndex: i, entries: [entry(i, 1, 'z'.repeat(60))] });
  await w.close();
  assert.equal(w.stats.syncs, 0);
  const live = await walFiles(dir);
  assert.ok(live.length >= 3, `${live.length} live segments`);
  const obsolete = (await walFiles(replaced)).filter((name) => !live.includes(name));
  assert.ok(obsolete.length >= 2);
  for (const name of obsolete) await copyFile(join(replaced, name), join(dir, name));
  const lastSegment = join(dir, live[live.length - 1]!);
  await truncate(lastSegment, (await stat(lastSegment)).size - 5);

  const lines: string[] = [];
  const s = new FileStorage({ dir, log: (line) => lines.push(line) });
  const haveProc = existsSync('/proc/self/fd');
  // The replaced segments must outlive the syncs of what replaces them, and be gone at the directory's.
  const obsoleteThere = (): boolean => obsolete.every((name) => existsSync(join(dir, name)));
  const { result: state, synced } = await watchSyncs(dir, () => s.open(), obsoleteThere);
  assert.equal((state.entries[state.entries.length - 1]!.index), 29);
  const expected = [...live.map((name) => join(dir, name)), join(dir, 'snap-0000000000000010.snap')];
  const real = realpathSync(dir);
  assert.equal(s.stats.syncs, expected.length + 1, 'every live segment, the snapshot and the directory');
  if (haveProc) {
    assert.deepEqual(synced.filter((x) => x.data).map((x) => x.path).sort(), expected.map((path) => path.replace(dir, real)).sort(), 'fdatasynced');
    assert.ok(synced.filter((x) => x.data).every((x) => x.ok), 'fdatasynced before the replaced segments were removed');
    const dirSyncs = synced.filter((x) => !x.data);
    assert.deepEqual(dirSyncs.map((x) => x.path), [real]);
    assert.equal(dirSyncs[0]!.ok, false, 'the directory is fsynced after the removals');
  }
  assert.equal(lines.filter((line) => line.startsWith('truncated ')).length, 1);
  assert.equal(lines.filter((line) => line.startsWith('removed ')).length, obsolete.length);
  await s.close();

  // A clean directory: still every segment (and the directory), since that costs little when nothing is dirty.
  const clean = new FileStorage({ dir, log: () => assert.fail('nothing to report') });
  await clean.open();
  assert.equal(clean.stats.syncs, expected.length + 1);
  await clean.close();
  // fsync: false means no syncs at all.
  const unsafe = new FileStorage({ dir, fsync: false });
  await unsafe.open();
  assert.equal(unsafe.stats.syncs, 0);
  await unsafe.close();
});

// ---------------------------------------------------------------- 3: the log

test('recovery: what it changes goes to stderr by default, one line each, prefixed "tsraft storage: "', async () => {
  const log = await writeBatches([2, 2]);
  const [file] = await walFiles(log.dir);
  await truncate(join(log.dir, file!), log.spans[log.spans.length - 1]!.end - 1);
  await writeFile(join(log.dir, 'snap-0000000000000007.snap.tmp'), 'half');
  const written: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  const s = new FileStorage({ dir: log.dir });
  try {
    await s.open();
  } finally {
    process.stderr.write = write;
  }
  await s.close();
  const { start, end } = log.spans[log.spans.length - 1]!;
  const length = end - start - 8;
  assert.deepEqual(written, [
    `tsraft storage: removed ${join(log.dir, 'snap-0000000000000007.snap.tmp')}: a snapshot that was never completed\n`,
    `tsraft storage: truncated ${join(log.dir, file!)} at byte offset ${start}, cutting ${end - 1 - start} bytes: ` +
      `incomplete record: length ${length}, ${length - 1} bytes follow, nothing valid follows: a torn write\n`,
  ]);
});

// ---------------------------------------------------------------- the record format without batch marks

const KIND_BATCH = 16;

/** Rewrites every record of a segment the way versions before the batch mark wrote them. */
function withoutBatchMarks(buf: Uint8Array): Uint8Array {
  const view = Buffer.from(buf);
  const out: Buffer[] = [];
  for (let at = 0; at < view.length; ) {
    const end = at + 8 + view.readUInt32LE(at);
    const payload = Buffer.from(view.subarray(at + 8, end));
    assert.ok((payload[0]! & KIND_BATCH) !== 0 && payload[9]! < 0x80, 'a one-byte mark');
    const legacy = Buffer.concat([payload.subarray(0, 9), payload.subarray(10)]);
    legacy[0] = legacy[0]! & ~KIND_BATCH;
    const header = Buffer.alloc(8);
    header.writeUInt32LE(legacy.length, 0);
    header.writeUInt32LE(crc32c(legacy), 4);
    out.push(header, legacy);
    at = end;
  }
  return Buffer.concat(out);
}

test('recovery: logs written before batch marks still read, and take new records', async () => {
  const log = await writeBatches([1, 3, 2, 5]);
  const [file] = await walFiles(log.dir);
  const path = join(log.dir, file!);
  await writeFile(path, withoutBatchMarks(await readFile(path)));
  assert.deepEqual((await recoverIn(log.dir)).state, log.states[log.states.length - 1]);
  const s = new FileStorage({ dir: log.dir, fsync: false });
  await s.open();
  await Promise.all([s.save(null, null, { fromIndex: 12, entries: [entry(12, 4)] }), s.save(null, null, { fromIndex: 13, entries: [entry(13, 4)] })]);
  await s.close();
  const state = (await recoverIn(log.dir)).state as { entries: string[] };
  assert.deepEqual(state.entries.slice(-3), ['11/4/' + `cmd-11-`.padEnd(100, 'd'), '12/4/cmd-12-4', '13/4/cmd-13-4']);
});

test('recovery: a hole followed by records without batch marks is refused, as nothing shows they are of the same write', async () => {
  const log = await writeBatches([2, 30]);
  const [file] = await walFiles(log.dir);
  const path = join(log.dir, file!);
  const legacy = withoutBatchMarks(await readFile(path));
  await writeFile(path, legacy);
  const spans = await recordSpans(log.dir);
  const hole = 1024;
  const k = spans.findIndex((r) => r.end > hole);
  await patch(path, hole, zeros(512));
  await assert.rejects(recoverIn(log.dir), refusedAt(path, spans[k]!.start, /has no batch mark/));
});

// ---------------------------------------------------------------- valid CRC, nonsense content

/** Recomputes the CRC of the record at `at` after its payload was changed. */
function reseal(buf: Buffer, at: number): void {
  const end = at + 8 + buf.readUInt32LE(at);
  buf.writeUInt32LE(crc32c(buf, at + 8, end), at + 4);
}

/** open() either recovers or refuses with TSRAFT_STORAGE_CORRUPT naming the file and an offset: nothing else. */
async function recoversOrRefuses(dir: string, file: string, what: string): Promise<'recovered' | 'refused'> {
  try {
    await recoverIn(dir);
    return 'recovered';
  } catch (error) {
    assert.ok(error instanceof StorageError, `${what}: ${String(error)}`);
    assert.equal(error.code, 'TSRAFT_STORAGE_CORRUPT', `${what}: ${error.message}`);
    assert.ok(error.message.includes(`${join(dir, file)} at byte offset `) || error.message.includes(join(dir, 'snap-')), `${what}: ${error.message}`);
    return 'refused';
  }
}

test('recovery: records whose CRC holds but whose content is nonsense are refused cleanly, never thrown on', async (t) => {
  // Short commands, so every field of the record gets its turn.
  const log = await writeBatches([1, 2, 1, 3], 4);
  const [file] = await walFiles(log.dir);
  const path = join(log.dir, file!);
  const original = await readFile(path);
  const outcomes = { recovered: 0, refused: 0 };
  for (const k of [0, 1, log.spans.length - 2, log.spans.length - 1]) {
    const span = log.spans[k]!;
    for (let at = span.start + 8; at < span.end; at++) {
      for (const value of [original[at]! ^ 0x01, original[at]! ^ 0x80, 0x00, 0xff, 0x7f]) {
        const bytes = Buffer.from(original);
        bytes[at] = value;
        reseal(bytes, span.start);
        await writeFile(path, bytes);
        outcomes[await recoversOrRefuses(log.dir, file!, `record ${k}, byte ${at} = ${value}`)]++;
      }
    }
  }
  // Whole payloads of random bytes (with a known kind, to get past the first check), at the end and in the middle.
  let seed = 12345;
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) & 0xff;
  for (let i = 0; i < 200; i++) {
    const length = 9 + (random() % 48);
    const record = Buffer.alloc(8 + length);
    record.writeUInt32LE(length, 0);
    for (let j = 8; j < record.length; j++) record[j] = random();
    record[8] = 1 + (random() % 127);
    reseal(record, 0);
    const k = i % 2 === 0 ? log.spans.length : 3;
    const at = k === log.spans.length ? original.length : log.spans[k]!.start;
    await writeFile(path, Buffer.concat([original.subarray(0, at), record, original.subarray(at)]));
    outcomes[await recoversOrRefuses(log.dir, file!, `random record ${i} at ${at}`)]++;
  }
  await writeFile(path, original);
  t.diagnostic(`${outcomes.refused} refused, ${outcomes.recovered} recovered (a changed command or vote is still a valid record)`);
  assert.ok(outcomes.refused > 300 && outcomes.recovered > 0);

  // Nonsense at the very end is not a torn write: its CRC says it was written that way.
  const last = log.spans[log.spans.length - 1]!;
  const bytes = Buffer.from(original);
  bytes[last.start + 8] = 0x80;
  reseal(bytes, last.start);
  await writeFile(path, bytes);
  await assert.rejects(recoverIn(log.dir), refusedAt(path, last.start, /unknown record kinds 0x80 \(its CRC is valid/));
});

/** A log with a snapshot configuration (in the checkpoint), a configuration entry, and a vote. */
async function writeConfigurations(): Promise<{ dir: string; path: string; original: Buffer; spans: RecordSpan[] }> {
  const dir = await tempDir();
  const s = new FileStorage({ dir, fsync: false, log: () => undefined });
  await s.open();
  await s.save({ term: 1, votedFor: 0 }, snapshot(2, 1, 'state@2', membership([0, 1, 2], { addresses: [[0, 'zz:0']] })), { fromIndex: 3, entries: [entry(3, 1)] });
  await s.save(null, null, { fromIndex: 4, entries: [configEntry(4, 1, membership([0, 1, 2, 3], { addresses: [[3, 'yy:3']] })), entry(5, 1)] });
  await s.save({ term: 2, votedFor: 1 }, null, null);
  await s.close();
  const [file] = await walFiles(dir);
  const spans = await recordSpans(dir);
  assert.equal(spans.length, 3);
  const path = join(dir, file!);
  return { dir, path, original: await readFile(path), spans };
}

test('recovery: a malformed configuration, an unknown entry kind, or a qualifier without its part is refused, though its CRC holds', async () => {
  const { dir, path, original, spans } = await writeConfigurations();
  const [checkpoint, config, vote] = spans as [RecordSpan, RecordSpan, RecordSpan];
  // The kinds the writer sets: HARD_STATE 1, SNAPSHOT 2, ENTRIES 4, CHECKPOINT 8, BATCH 16, ENTRY_KINDS 32, SNAPSHOT_MEMBERSHIP 64.
  assert.equal(original[checkpoint.start + 8], 127);
  assert.equal(original[config.start + 8], 4 | 16 | 32);
  assert.equal(original[vote.start + 8], 1 | 16, 'no entry format without entries');
  // The configuration entry's kind byte: after kinds, sequence, batch mark, fromIndex, count, term, index.
  const kindAt = config.start + 8 + 9 + 1 + 2 + 2;
  assert.deepEqual([original[kindAt - 1], original[kindAt], original[kindAt + 1]], [4, 1, 4], 'index 4, kind 1, four voters');

  const refused = async (change: (bytes: Buffer) => void, at: RecordSpan, message: RegExp): Promise<void> => {
    const bytes = Buffer.from(original);
    change(bytes);
    reseal(bytes, at.start);
    await writeFile(path, bytes);
    await assert.rejects(recoverIn(dir), refusedAt(path, at.start, message));
  };
  await refused((b) => void (b[b.indexOf('zz:0')] = 0xff), checkpoint, /snapshot 2: malformed configuration.*not valid UTF-8.*\(its CRC is valid/);
  await refused((b) => void (b[b.indexOf('yy:3')] = 0xc0), config, /entry 4: malformed configuration.*not valid UTF-8/);
  await refused((b) => void (b[kindAt] = 2), config, /entry 4 has unknown kind 2/);
  await refused((b) => void (b[kindAt + 1] = 100), config, /entry 4: malformed configuration.*truncated id list/);
  await refused((b) => void (b[checkpoint.start + 8] = 127 & ~2), checkpoint, /a snapshot configuration without a snapshot marker/);
  await refused((b) => void (b[vote.start + 8] = 1 | 16 | 32), vote, /an entry format without entries/);
  await writeFile(path, original);
  assert.deepEqual((await recoverIn(dir)).state, describe({
    hardState: { term: 2, votedFor: 1 },
    snapshot: snapshot(2, 1, 'state@2', membership([0, 1, 2], { addresses: [[0, 'zz:0']] })),
    entries: [entry(3, 1), configEntry(4, 1, membership([0, 1, 2, 3], { addresses: [[3, 'yy:3']] })), entry(5, 1)],
  }));
});

test('recovery: configuration records with any byte changed (CRC resealed) are recovered or refused cleanly, never thrown on', async (t) => {
  const { dir, path, original, spans } = await writeConfigurations();
  const outcomes = { recovered: 0, refused: 0 };
  for (const span of spans) {
    for (let at = span.start + 8; at < span.end; at++) {
      for (const value of [original[at]! ^ 0x01, original[at]! ^ 0x80, 0x00, 0xff, 0x7f]) {
        const bytes = Buffer.from(original);
        bytes[at] = value;
        reseal(bytes, span.start);
        await writeFile(path, bytes);
        outcomes[await recoversOrRefuses(dir, basename(path), `record at ${span.start}, byte ${at} = ${value}`)]++;
      }
    }
  }
  await writeFile(path, original);
  t.diagnostic(`${outcomes.refused} refused, ${outcomes.recovered} recovered`);
  assert.ok(outcomes.refused > 200 && outcomes.recovered > 0);
});

// ---------------------------------------------------------------- the record format before configurations

interface LegacyParts {
  readonly checkpoint?: boolean;
  /** The batch mark (distance back to the batch's first record); none if undefined. */
  readonly back?: number;
  readonly hardState?: HardState;
  readonly snapshot?: { readonly index: number; readonly term: number; readonly data: Uint8Array };
  readonly fromIndex?: number;
  readonly entries?: readonly Entry[];
}

/**
 * A record exactly as versions before configurations wrote it, by hand, since today's writer no
 * longer can: entries as term, index, command (no kind byte), a snapshot marker with nothing after
 * it. The kind bits are spelled out because that format is frozen.
 */
function legacyRecord(seq: number, parts: LegacyParts): Buffer {
  const w = new ByteWriter();
  const { hardState, snapshot: snap, entries: list } = parts;
  w.writeByte((hardState ? 1 : 0) | (snap ? 2 : 0) | (list ? 4 : 0) | (parts.checkpoint ? 8 : 0) | (parts.back === undefined ? 0 : 16));
  const seqBytes = Buffer.alloc(8);
  seqBytes.writeBigUInt64LE(BigInt(seq));
  for (const b of seqBytes) w.writeByte(b);
  if (parts.back !== undefined) w.writeVarint(parts.back);
  if (hardState) {
    w.writeVarint(hardState.term);
    w.writeVarint(hardState.votedFor + 1);
  }
  if (snap) {
    w.writeVarint(snap.index);
    w.writeVarint(snap.term);
    w.writeVarint(snap.data.length);
    w.writeVarint(crc32c(snap.data));
  }
  if (list) {
    w.writeVarint(parts.fromIndex!);
    w.writeVarint(list.length);
    for (const e of list) {
      w.writeVarint(e.term);
      w.writeVarint(e.index);
      w.writeBytes(e.command);
    }
  }
  const payload = w.finish();
  const header = Buffer.alloc(8);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt32LE(crc32c(payload), 4);
  return Buffer.concat([header, payload]);
}

test('recovery: logs written before configurations still read (no entry kinds, no snapshot configuration), and take new records', async () => {
  const dir = await tempDir();
  const data = new TextEncoder().encode('state@4');
  await writeFile(join(dir, 'snap-0000000000000004.snap'), Buffer.concat([encodeSnapshotHeader({ index: 4, term: 1, length: data.length, crc: crc32c(data) }), data]));
  // Commands of 1 and 0 bytes: misread in today's format, their lengths would pass for entry kinds.
  const one: Entry = { index: 7, term: 2, command: Uint8Array.of(1) };
  const none: Entry = { index: 8, term: 2, command: new Uint8Array(0) };
  const legacy = [
    legacyRecord(0, { checkpoint: true, back: 0, hardState: { term: 1, votedFor: 0 }, snapshot: { index: 4, term: 1, data }, fromIndex: 5, entries: [entry(5, 1), entry(6, 1), entry(7, 1)] }),
    legacyRecord(1, { back: 0, hardState: { term: 2, votedFor: 1 }, fromIndex: 7, entries: [one, none] }),
    legacyRecord(2, { back: 1, fromIndex: 9, entries: [entry(9, 2)] }),
    // Older still: no batch mark either.
    legacyRecord(3, { fromIndex: 10, entries: [entry(10, 2)] }),
  ];
  const path = join(dir, 'wal-0000000000000000.log');
  await writeFile(path, Buffer.concat(legacy));
  let expected = {
    hardState: { term: 2, votedFor: 1 },
    snapshot: snapshot(4, 1),
    entries: [entry(5, 1), entry(6, 1), one, none, entry(9, 2), entry(10, 2)],
  };
  const s = new FileStorage({ dir, fsync: false });
  const state = await s.open();
  assert.deepEqual(describe(state), describe(expected));
  assert.equal(state.snapshot!.membership, undefined, 'no configuration was recorded: none is made up');
  assert.ok(state.entries.every((e) => e.membership === undefined));

  // New records (a configuration entry among them) follow the old ones in the same segment.
  const m = membership([0, 1, 2], { learners: [3] });
  await s.save({ term: 3, votedFor: 2 }, null, { fromIndex: 10, entries: [configEntry(10, 3, m), entry(11, 3)] });
  await s.close();
  const spans = await recordSpans(dir);
  assert.deepEqual(spans.map((r) => r.file), Array(5).fill('wal-0000000000000000.log'));
  expected = { ...expected, hardState: { term: 3, votedFor: 2 }, entries: [...expected.entries.slice(0, -1), configEntry(10, 3, m), entry(11, 3)] };
  assert.deepEqual((await recoverIn(dir)).state, describe(expected));

  // A snapshot rewrites the log in today's format, its configuration in the checkpoint.
  const again = new FileStorage({ dir, fsync: false });
  await again.open();
  await again.save(null, snapshot(9, 2, 'state@9', m), null);
  await again.close();
  expected = { ...expected, snapshot: snapshot(9, 2, 'state@9', m), entries: [configEntry(10, 3, m), entry(11, 3)] };
  assert.deepEqual((await recoverIn(dir)).state, describe(expected));
  const [checkpoint] = await recordSpans(dir);
  assert.equal((await readFile(join(dir, checkpoint!.file)))[checkpoint!.start + 8], 127);
});
