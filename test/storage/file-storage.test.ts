/**
 * FileStorage: the storage contract, group commit, segments, snapshots and compaction, the lock,
 * I/O failure, and fault injection (torn tails at every byte, bit flips across the whole log).
 */
import assert from 'node:assert/strict';
import type { FileHandle } from 'node:fs/promises';
import { readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { HardState, Snapshot } from '../../src/core/messages.js';
import type { LogWrite } from '../../src/core/ready.js';
import { FileStorage } from '../../src/storage/file-storage.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { StorageError } from '../../src/storage/storage.js';
import { recordSpans, tempDirs, walFiles, type RecordSpan } from './file-storage-fixture.js';
import { configEntry, describe, entries, entry, membership, runStorageContract, snapshot } from './storage-contract.js';
import { patternBytes as snapshotPattern } from '../unit/pattern-bytes.js';

const { tempDir, copyDir } = tempDirs('tsraft-file-storage-');

const isStorageError = (code: StorageError['code'], message?: RegExp) => (error: unknown): boolean => {
  assert.ok(error instanceof StorageError, `expected a StorageError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  if (message !== undefined) assert.match(error.message, message);
  return true;
};

const snapFiles = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((n) => n.startsWith('snap-')).sort();

runStorageContract('FileStorage', async () => {
  const dir = await tempDir();
  return { storage: new FileStorage({ dir }), reopen: () => Promise.resolve(new FileStorage({ dir })) };
});

test('FileStorage: group commit shares one write and one sync among concurrent saves', async (t) => {
  const dir = await tempDir();
  const s = new FileStorage({ dir });
  await s.open();
  const before = s.stats;
  const order: number[] = [];
  const saves: Promise<void>[] = [];
  for (let i = 1; i <= 100; i++) saves.push(s.save({ term: 1, votedFor: 0 }, null, { fromIndex: i, entries: [entry(i, 1)] }).then(() => void order.push(i)));
  await Promise.all(saves);
  const burst = s.stats;
  t.diagnostic(`100 concurrent saves: ${burst.writes - before.writes} writes, ${burst.syncs - before.syncs} syncs, ${burst.bytes - before.bytes} bytes`);
  assert.ok(burst.syncs - before.syncs < 20, `${burst.syncs - before.syncs} syncs`);
  assert.ok(burst.writes - before.writes < 20);

  // Saves arriving while a sync runs go into the next batch.
  for (let wave = 0; wave < 10; wave++) {
    for (let j = 0; j < 10; j++) {
      const i = 101 + wave * 10 + j;
      saves.push(s.save(null, null, { fromIndex: i, entries: [entry(i, 1)] }).then(() => void order.push(i)));
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(saves);
  const waves = s.stats;
  t.diagnostic(`100 saves in 10 waves: ${waves.writes - burst.writes} writes, ${waves.syncs - burst.syncs} syncs`);
  assert.ok(waves.syncs - burst.syncs < 20, `${waves.syncs - burst.syncs} syncs`);
  assert.deepEqual(order, Array.from({ length: 200 }, (_, i) => i + 1));
  await s.close();
  const again = new FileStorage({ dir });
  assert.equal((await again.open()).entries.length, 200);
  await again.close();
});

test('FileStorage: segments roll over, and the log reads back across them', async () => {
  const dir = await tempDir();
  const model = new MemoryStorage();
  await model.open();
  let s = new FileStorage({ dir, segmentBytes: 1024, fsync: false });
  await s.open();
  const both = async (h: HardState | null, l: LogWrite | null): Promise<void> => {
    await s.save(h, null, l);
    await model.save(h, null, l);
  };
  for (let i = 0; i < 60; i++) await both(i % 7 === 0 ? { term: i + 1, votedFor: i % 3 } : null, { fromIndex: 3 * i + 1, entries: entries(3 * i + 1, 3 * i + 3, 1) });
  await s.close();
  assert.ok((await walFiles(dir)).length >= 4, `${(await walFiles(dir)).length} segments`);
  s = new FileStorage({ dir, segmentBytes: 1024, fsync: false });
  assert.deepEqual(describe(await s.open()), describe(model.state()));
  await both(null, { fromIndex: 100, entries: entries(100, 130, 9) });
  await s.close();
  s = new FileStorage({ dir, segmentBytes: 1024, fsync: false });
  assert.deepEqual(describe(await s.open()), describe(model.state()));
  await s.close();
});

test('FileStorage: a snapshot starts a checkpoint segment and deletes older segments and snapshots', async () => {
  const dir = await tempDir();
  const options = { dir, segmentBytes: 512 };
  let s = new FileStorage(options);
  await s.open();
  await s.save({ term: 1, votedFor: 0 }, null, null);
  for (let i = 0; i < 50; i++) await s.save(null, null, { fromIndex: 3 * i + 1, entries: entries(3 * i + 1, 3 * i + 3, 1) });
  assert.ok((await walFiles(dir)).length >= 3);
  await s.save(null, snapshot(100, 1), null);
  assert.equal((await walFiles(dir)).length, 1);
  assert.deepEqual(await snapFiles(dir), ['snap-0000000000000100.snap']);

  // A snapshot in the middle of concurrent saves: earlier ones fold into the checkpoint.
  await Promise.all([
    s.save({ term: 2, votedFor: 1 }, null, { fromIndex: 151, entries: entries(151, 160, 2) }),
    s.save(null, snapshot(140, 2), null),
    s.save(null, null, { fromIndex: 161, entries: entries(161, 165, 2) }),
  ]);
  assert.equal((await walFiles(dir)).length, 1);
  assert.deepEqual(await snapFiles(dir), ['snap-0000000000000140.snap']);
  await s.close();
  s = new FileStorage(options);
  const state = await s.open();
  assert.deepEqual(describe(state), {
    hardState: { term: 2, votedFor: 1 },
    snapshot: { index: 140, term: 2, data: 'state@140' },
    entries: [...entries(141, 150, 1), ...entries(151, 165, 2)].map((e) => `${e.index}/${e.term}/cmd-${e.index}-${e.term}`),
  });
  await s.close();
});

test('FileStorage: recovery deletes leftovers; a damaged or missing snapshot file is corruption', async () => {
  const dir = await tempDir();
  let s = new FileStorage({ dir });
  await s.open();
  await s.save({ term: 1, votedFor: 0 }, snapshot(10, 1, 'x'.repeat(1000)), { fromIndex: 11, entries: entries(11, 12, 1) });
  await s.close();
  await writeFile(join(dir, 'snap-0000000000000020.snap.tmp'), 'half-written');
  await writeFile(join(dir, 'snap-0000000000000005.snap'), 'an old one');
  s = new FileStorage({ dir });
  assert.equal((await s.open()).snapshot?.data.byteLength, 1000);
  await s.close();
  assert.deepEqual(await snapFiles(dir), ['snap-0000000000000010.snap']);

  const damaged = await copyDir(dir);
  const bytes = await readFile(join(damaged, 'snap-0000000000000010.snap'));
  bytes[500] = bytes[500]! ^ 0x10;
  await writeFile(join(damaged, 'snap-0000000000000010.snap'), bytes);
  await assert.rejects(new FileStorage({ dir: damaged }).open(), isStorageError('TSRAFT_STORAGE_CORRUPT', /snap-0000000000000010\.snap: data CRC mismatch/));
  await rm(join(damaged, 'snap-0000000000000010.snap'));
  await assert.rejects(new FileStorage({ dir: damaged }).open(), isStorageError('TSRAFT_STORAGE_CORRUPT', /snap-0000000000000010\.snap.*missing/));
});

test('FileStorage: the lock refuses a second user and takes over a stale lock', async () => {
  const dir = await tempDir();
  const first = new FileStorage({ dir });
  await first.open();
  assert.equal((await readFile(join(dir, 'LOCK'), 'utf8')).trim(), String(process.pid));
  await assert.rejects(new FileStorage({ dir }).open(), isStorageError('TSRAFT_STORAGE_LOCKED', new RegExp(`in use by process ${process.pid}`)));
  await first.save({ term: 3, votedFor: 1 }, null, null);
  await first.close();
  await assert.rejects(stat(join(dir, 'LOCK')), /ENOENT/);

  let dead = 2 ** 22 + 12345;
  while (alive(dead)) dead++;
  await writeFile(join(dir, 'LOCK'), `${dead}\n`);
  const second = new FileStorage({ dir });
  assert.deepEqual((await second.open()).hardState, { term: 3, votedFor: 1 });
  assert.equal((await readFile(join(dir, 'LOCK'), 'utf8')).trim(), String(process.pid));
  await second.close();
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

test('FileStorage: a failed write rejects that save and every later one with TSRAFT_STORAGE_IO', async () => {
  const dir = await tempDir();
  const s = new FileStorage({ dir });
  await s.open();
  await s.save({ term: 1, votedFor: 0 }, null, { fromIndex: 1, entries: [entry(1, 1)] });
  // Pull the file out from under it: the next write fails.
  await (s as unknown as { active: FileHandle }).active.close();
  const failed = [s.save(null, null, { fromIndex: 2, entries: [entry(2, 1)] }), s.save(null, null, { fromIndex: 3, entries: [entry(3, 1)] })];
  for (const save of failed) await assert.rejects(save, isStorageError('TSRAFT_STORAGE_IO', /node must stop/));
  await assert.rejects(s.save(null, null, null), isStorageError('TSRAFT_STORAGE_IO'));
  await s.close();
  const again = new FileStorage({ dir });
  assert.equal((await again.open()).entries.length, 1);
  await again.close();
});

// ---------------------------------------------------------------- fault injection

interface Scenario {
  readonly dir: string;
  /** describe()d state after each record on disk: states[k] holds records 0..k. */
  readonly states: unknown[];
  readonly spans: RecordSpan[];
}

/**
 * Writes a log of single-record saves (with rollovers, truncations that replace entries with
 * configuration entries, optionally a snapshot with a configuration first).
 */
async function buildScenario(withSnapshot: boolean): Promise<Scenario> {
  const dir = await tempDir();
  const s = new FileStorage({ dir, segmentBytes: 700, fsync: false });
  const model = new MemoryStorage();
  await s.open();
  await model.open();
  const states: unknown[] = [];
  const save = async (h: HardState | null, snap: Snapshot | null, l: LogWrite | null): Promise<void> => {
    await s.save(h, snap, l);
    await model.save(h, snap, l);
    states.push(describe(model.state()));
  };
  let term = 1;
  let last = 0;
  if (withSnapshot) {
    for (let i = 1; i <= 12; i++) await save({ term, votedFor: 0 }, null, { fromIndex: i, entries: [entry(i, term)] });
    await save(null, snapshot(8, term, 'state@8', membership([0, 1, 2])), null);
    states.splice(0, states.length - 1); // the checkpoint record replaces everything before it
    last = 12;
  }
  // Enough saves for at least three segments, the last one holding at least four records.
  const enough = async (): Promise<boolean> => {
    const spans = await recordSpans(dir);
    const lastFile = spans[spans.length - 1]?.file;
    return new Set(spans.map((r) => r.file)).size >= 3 && spans.filter((r) => r.file === lastFile).length >= 4;
  };
  for (let i = 0; i < 36 || !(await enough()); i++) {
    if (i % 6 === 5 && last >= 3) {
      term++;
      const from = last - 1;
      // A new term starts with a configuration entry that replaces the last two entries.
      const config = configEntry(from, term, membership([0, 1, 2], { learners: [3 + i], addresses: [[0, 'n0'], [3 + i, `learner-${i}`]] }));
      await save({ term, votedFor: i % 3 }, null, { fromIndex: from, entries: [config, entry(from + 1, term)] });
      last = from + 1;
    } else {
      const n = 1 + (i % 3);
      await save(i % 4 === 0 ? { term, votedFor: 1 } : null, null, { fromIndex: last + 1, entries: entries(last + 1, last + n, term) });
      last += n;
    }
  }
  await s.close();
  const spans = await recordSpans(dir);
  assert.equal(spans.length, states.length, 'one record per save');
  return { dir, states, spans };
}

async function openCopy(dir: string, log: (line: string) => void = () => undefined): Promise<unknown> {
  const s = new FileStorage({ dir, fsync: false, log });
  try {
    return describe(await s.open());
  } finally {
    await s.close();
  }
}

for (const withSnapshot of [false, true]) {
  const label = withSnapshot ? ' (log starting with a checkpoint)' : '';

  test(`FileStorage: a torn tail at every byte of the last three records is cut off cleanly${label}`, async (t) => {
    const { dir, states, spans } = await buildScenario(withSnapshot);
    const lastFile = spans[spans.length - 1]!.file;
    assert.ok(spans.filter((r) => r.file === lastFile).length >= 3 && new Set(spans.map((r) => r.file)).size >= 3);
    let cases = 0;
    for (let k = spans.length - 3; k < spans.length; k++) {
      const span = spans[k]!;
      for (let cut = span.start; cut < span.end; cut++) {
        const copy = await copyDir(dir);
        await truncate(join(copy, span.file), cut);
        const lines: string[] = [];
        assert.deepEqual(await openCopy(copy, (line) => lines.push(line)), states[k - 1], `cut at ${span.file}:${cut}`);
        // A cut at a record boundary leaves nothing to truncate.
        assert.equal(lines.length, cut > span.start ? 1 : 0, `cut at ${span.file}:${cut}: one truncation logged`);
        if (cut > span.start) assert.ok(lines[0]!.startsWith(`truncated ${join(copy, span.file)} at byte offset ${span.start}, cutting ${cut - span.start} bytes: incomplete record`), lines[0]);
        assert.equal((await stat(join(copy, span.file))).size, span.start, 'the partial record is gone');
        await rm(copy, { recursive: true });
        cases++;
      }
    }
    // The recovered log takes new records after the cut.
    const copy = await copyDir(dir);
    await truncate(join(copy, lastFile), spans[spans.length - 1]!.end - 3);
    const s = new FileStorage({ dir: copy, fsync: false, log: () => undefined });
    const state = await s.open();
    const next = state.entries[state.entries.length - 1]!.index + 1;
    await s.save(null, null, { fromIndex: next, entries: [entry(next, 99)] });
    await s.close();
    const reopened = (await openCopy(copy)) as { entries: string[] };
    assert.equal(reopened.entries[reopened.entries.length - 1], `${next}/99/cmd-${next}-99`);
    t.diagnostic(`${cases} torn tails recovered`);
    assert.ok(cases > 100, `${cases} cuts`);
  });

  test(`FileStorage: a flipped bit anywhere in the log is detected, never misread${label}`, async (t) => {
    const { dir, states, spans } = await buildScenario(withSnapshot);
    const final = spans[spans.length - 1]!;
    let recovered = 0;
    let refused = 0;
    for (const file of await walFiles(dir)) {
      const size = (await stat(join(dir, file))).size;
      for (let offset = 0; offset < size; offset += 7) {
        const copy = await copyDir(dir);
        const bytes = await readFile(join(copy, file));
        bytes[offset] = bytes[offset]! ^ (1 << offset % 8);
        await writeFile(join(copy, file), bytes);
        const where = `bit ${offset % 8} of ${file}:${offset}`;
        // A torn write is only what the rule (src/storage/recovery.ts) allows: a final record whose
        // length now runs past the end of the file, or one with a zero-filled sector.
        const torn = file === final.file && offset >= final.start && looksTorn(bytes, final.start);
        let outcome: unknown;
        try {
          outcome = await openCopy(copy);
        } catch (error) {
          assert.ok(error instanceof StorageError, `${where}: ${String(error)}`);
          assert.equal(error.code, 'TSRAFT_STORAGE_CORRUPT', `${where}: ${error.message}`);
          assert.ok(error.message.includes(join(copy, file)), `${where}: the error names the file: ${error.message}`);
          assert.match(error.message, /byte offset \d+/);
          assert.ok(!torn, `${where}: a torn final record was refused: ${error.message}`);
          refused++;
          await rm(copy, { recursive: true });
          continue;
        }
        assert.ok(torn, `${where}: recovered from damage that is not a torn write`);
        assert.deepEqual(outcome, states[states.length - 2], where);
        recovered++;
        await rm(copy, { recursive: true });
      }
    }
    t.diagnostic(`${refused} flips refused as corrupt, ${recovered} recovered as a torn final record`);
    assert.ok(refused > 100, `${refused} refused, ${recovered} recovered`);
  });
}

/** Whether the record at `at`, the last in `bytes`, is incomplete or has a zero-filled 512-byte sector. */
function looksTorn(bytes: Uint8Array, at: number): boolean {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (bytes.length - at < 8 || at + 8 + view.readUInt32LE(at) > bytes.length) return true;
  const end = at + 8 + view.readUInt32LE(at);
  for (let s = at - (at % 512); s < end; s += 512) {
    const slice = bytes.subarray(Math.max(s, at), Math.min(s + 512, bytes.length));
    if (slice.length > 0 && slice.every((b) => b === 0)) return true;
  }
  return false;
}


// ===================================================================================== snapshot bodies on disk


/** `whole` cut into irregular pieces (none a multiple of 1 MiB, one empty). */
async function chunkedBody(whole: Uint8Array) {
  const { ChunkedSnapshotBody } = await import('../../src/core/snapshot-body.js');
  const pieces: Uint8Array[] = [new Uint8Array(0)];
  for (let offset = 0, i = 0; offset < whole.length; i++) {
    const size = [700_001, 3, 1_048_577, 99_999][i % 4]!;
    pieces.push(whole.slice(offset, offset + size));
    offset += size;
  }
  return new ChunkedSnapshotBody(pieces);
}

const SNAPSHOT_DATA_BYTES = 3 * 1024 * 1024 + 12_345;

test('FileStorage: a chunked snapshot is written whole; storedSnapshot(index) reads it back with its crc32c, null for another index', async () => {
  const { crc32c } = await import('../../src/core/crc32c.js');
  const { snapshotBodiesEqual, snapshotBodyBytes } = await import('../../src/core/snapshot-body.js');
  const { FileSnapshotBody } = await import('../../src/storage/snapshot-file.js');
  const dir = await tempDir();
  const whole = snapshotPattern(SNAPSHOT_DATA_BYTES, 21);
  const s = new FileStorage({ dir, fsync: false });
  await s.open();
  assert.equal(s.storedSnapshot(100), null, 'nothing written yet');
  await s.save({ term: 2, votedFor: 0 }, { index: 100, term: 2, data: await chunkedBody(whole), membership: membership([0, 1, 2]) }, { fromIndex: 101, entries: entries(101, 103, 2) });
  const stored = s.storedSnapshot(100);
  assert.ok(stored !== null);
  assert.ok(!(stored.body instanceof Uint8Array), 'read from the file, not kept in memory');
  assert.ok(stored.body instanceof FileSnapshotBody);
  assert.equal(stored.body.byteLength, whole.length);
  assert.ok(snapshotBodiesEqual(stored.body, whole), 'the stored body holds the snapshot bytes');
  assert.ok(Buffer.from(snapshotBodyBytes(stored.body)).equals(whole));
  assert.equal(stored.checksum, crc32c(whole));
  for (const other of [0, 99, 101, 103]) assert.equal(s.storedSnapshot(other), null, `index ${other}`);
  // The file on disk: header, then exactly the data.
  const file = await readFile(join(dir, 'snap-0000000000000100.snap'));
  assert.ok(file.subarray(file.length - whole.length).equals(whole));

  // A newer snapshot replaces it (and unlinks its file); a body handed out before stays readable.
  const newer = snapshotPattern(1_000_001, 22);
  await s.save(null, { index: 102, term: 2, data: await chunkedBody(newer) }, null);
  assert.deepEqual(await snapFiles(dir), ['snap-0000000000000102.snap']);
  assert.equal(s.storedSnapshot(100), null);
  assert.equal(s.storedSnapshot(102)?.checksum, crc32c(newer));
  assert.ok(snapshotBodiesEqual(s.storedSnapshot(102)!.body, newer));
  assert.ok(snapshotBodiesEqual(stored.body, whole), 'the replaced snapshot is still readable through its body');
  await s.close();
});

test('FileStorage: reopening returns the snapshot as a file-backed body (not a Uint8Array) with the same bytes', async () => {
  const { snapshotBodiesEqual } = await import('../../src/core/snapshot-body.js');
  const { FileSnapshotBody } = await import('../../src/storage/snapshot-file.js');
  const dir = await tempDir();
  const whole = snapshotPattern(SNAPSHOT_DATA_BYTES, 23);
  let s = new FileStorage({ dir, fsync: false });
  await s.open();
  await s.save({ term: 3, votedFor: 1 }, { index: 50, term: 3, data: await chunkedBody(whole), membership: membership([0, 1, 2]) }, { fromIndex: 51, entries: entries(51, 52, 3) });
  await s.close();
  s = new FileStorage({ dir, fsync: false });
  const state = await s.open();
  const snap = state.snapshot;
  assert.ok(snap !== null);
  assert.deepEqual([snap.index, snap.term, snap.membership], [50, 3, membership([0, 1, 2])]);
  assert.ok(!(snap.data instanceof Uint8Array), 'recovery must not read the snapshot whole');
  assert.ok(snap.data instanceof FileSnapshotBody);
  assert.equal(snap.data.byteLength, whole.length);
  assert.ok(snapshotBodiesEqual(snap.data, whole));
  assert.deepEqual(state.entries.map((e) => e.index), [51, 52]);
  // Written again from that body (what a node does when it persists the snapshot it holds): same bytes.
  await s.save(null, { index: 52, term: 3, data: snap.data }, null);
  assert.ok(snapshotBodiesEqual(s.storedSnapshot(52)!.body, whole));
  await s.close();
  s = new FileStorage({ dir, fsync: false });
  const again = await s.open();
  assert.ok(again.snapshot !== null && snapshotBodiesEqual(again.snapshot.data, whole));
  await s.close();
});

test('FileStorage: a snapshot assembled through snapshotAssembly is adopted as the snapshot file (no copy), and a discarded one leaves nothing', async () => {
  const { snapshotBodiesEqual } = await import('../../src/core/snapshot-body.js');
  const dir = await tempDir();
  const whole = snapshotPattern(300_000, 24);
  let s = new FileStorage({ dir, fsync: false });
  await s.open();
  const before = (await readdir(dir)).sort();
  const assembly = s.snapshotAssembly({ index: 30, term: 4, byteLength: whole.length });
  for (let offset = 0; offset < whole.length; offset += 65_536) assembly.append(whole.subarray(offset, Math.min(whole.length, offset + 65_536)));
  const body = assembly.finish();
  const incoming = (await readdir(dir)).filter((n) => !before.includes(n));
  assert.equal(incoming.length, 1, 'the transfer is in one file of its own');
  const { ino } = await stat(join(dir, incoming[0]!));
  const discarded = s.snapshotAssembly({ index: 31, term: 4, byteLength: 10 });
  discarded.append(new Uint8Array(5));
  discarded.discard();
  assert.deepEqual((await readdir(dir)).filter((n) => !before.includes(n)), incoming, 'a discarded transfer leaves nothing');
  await s.save({ term: 4, votedFor: 0 }, { index: 30, term: 4, data: body }, null);
  assert.equal((await stat(join(dir, 'snap-0000000000000030.snap'))).ino, ino, 'the transfer file became the snapshot file');
  const stored = s.storedSnapshot(30);
  assert.ok(stored !== null && stored.body === body, 'the stored body is the assembled one');
  await s.close();
  s = new FileStorage({ dir, fsync: false });
  const state = await s.open();
  assert.ok(state.snapshot !== null && snapshotBodiesEqual(state.snapshot.data, whole));
  await s.close();
  assert.deepEqual((await readdir(dir)).filter((n) => !n.startsWith('wal-') && !n.startsWith('snap-')), [], 'nothing but segments and the snapshot');
});

test('FileStorage: a flipped byte in the middle of a large snapshot, or a truncated snapshot file, is corruption', async () => {
  const { SNAPSHOT_HEADER } = await import('../../src/storage/wal-format.js');
  const dir = await tempDir();
  const whole = snapshotPattern(SNAPSHOT_DATA_BYTES, 25);
  const s = new FileStorage({ dir, fsync: false });
  await s.open();
  await s.save({ term: 1, votedFor: 0 }, { index: 10, term: 1, data: await chunkedBody(whole) }, null);
  await s.close();
  const name = 'snap-0000000000000010.snap';
  assert.equal((await stat(join(dir, name))).size, SNAPSHOT_HEADER + whole.length);

  const flipped = await copyDir(dir);
  const bytes = await readFile(join(flipped, name));
  const middle = SNAPSHOT_HEADER + Math.floor(whole.length / 2);
  bytes[middle] = bytes[middle]! ^ 0x01;
  await writeFile(join(flipped, name), bytes);
  await assert.rejects(new FileStorage({ dir: flipped, fsync: false }).open(), isStorageError('TSRAFT_STORAGE_CORRUPT', /snap-0000000000000010\.snap: data CRC mismatch/));

  // The last byte of the data: the streaming check must reach the final partial piece.
  const last = await copyDir(dir);
  const lastBytes = await readFile(join(last, name));
  lastBytes[lastBytes.length - 1] = lastBytes[lastBytes.length - 1]! ^ 0x80;
  await writeFile(join(last, name), lastBytes);
  await assert.rejects(new FileStorage({ dir: last, fsync: false }).open(), isStorageError('TSRAFT_STORAGE_CORRUPT', /data CRC mismatch/));

  const truncated = await copyDir(dir);
  await truncate(join(truncated, name), SNAPSHOT_HEADER + whole.length - 1000);
  await assert.rejects(new FileStorage({ dir: truncated, fsync: false }).open(), isStorageError('TSRAFT_STORAGE_CORRUPT', /snap-0000000000000010\.snap: header says \d+ data bytes, the file holds \d+/));

  const headerOnly = await copyDir(dir);
  await truncate(join(headerOnly, name), SNAPSHOT_HEADER - 1);
  await assert.rejects(new FileStorage({ dir: headerOnly, fsync: false }).open(), isStorageError('TSRAFT_STORAGE_CORRUPT', /snap-0000000000000010\.snap: .*shorter than the snapshot header/));

  // The intact original still opens.
  const ok = new FileStorage({ dir, fsync: false });
  assert.equal((await ok.open()).snapshot?.data.byteLength, whole.length);
  await ok.close();
});

test('FileStorage: an incoming-*.partial file left by a crash (a transfer or a snapshot being written) is removed at open', async () => {
  const dir = await tempDir();
  let s = new FileStorage({ dir, fsync: false });
  await s.open();
  await s.save({ term: 1, votedFor: 0 }, null, null);
  await s.close();
  await writeFile(join(dir, 'incoming-42-1234-7.partial'), new Uint8Array(100));
  await writeFile(join(dir, 'incoming-not-ours.txt'), 'kept');
  const lines: string[] = [];
  s = new FileStorage({ dir, fsync: false, log: (line) => lines.push(line) });
  await s.open();
  await s.close();
  const names = await readdir(dir);
  assert.ok(!names.includes('incoming-42-1234-7.partial'), 'the leftover is gone');
  assert.ok(names.includes('incoming-not-ours.txt'), 'a file of another name is not touched');
  assert.ok(lines.some((line) => line.includes('incoming-42-1234-7.partial')), `recovery says what it removed: ${lines.join(' | ')}`);
});
