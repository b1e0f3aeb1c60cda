/**
 * SimDisk / SimStorage: the storage contract, then the crash model (synced saves survive, a crash
 * keeps only a prefix of the unsynced ones, possibly torn), group commit, injected fsync failures,
 * the lock, dead instances, and determinism.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvariantError } from '../../src/core/assert.js';
import type { HardState, PersistentState, Snapshot } from '../../src/core/messages.js';
import type { LogWrite } from '../../src/core/ready.js';
import { Prng } from '../../src/sim/prng.js';
import { VirtualScheduler } from '../../src/sim/scheduler.js';
import { SimDisk, type SimDiskOptions } from '../../src/sim/sim-storage.js';
import { LogState } from '../../src/storage/log-state.js';
import { StorageError } from '../../src/storage/storage.js';
import { describe, entries, entry, runStorageContract, snapshot } from './storage-contract.js';

/** Real time, for the promise-based contract suite. */
const realClock: SimDiskOptions['scheduler'] = {
  now: () => performance.now(),
  schedule: (delayMs, cb) => {
    const t = setTimeout(cb, delayMs);
    return { cancel: () => clearTimeout(t) };
  },
};

runStorageContract('SimStorage', () => {
  const disk = new SimDisk({ scheduler: realClock, prng: new Prng(1), syncLatencyMsMin: 0, syncLatencyMsMax: 1 });
  return Promise.resolve({ storage: disk.storage(), reopen: () => Promise.resolve(disk.storage()) });
});

function virtualDisk(seed: number, options: Partial<SimDiskOptions> = {}): { disk: SimDisk; clock: VirtualScheduler } {
  const clock = new VirtualScheduler();
  return { clock, disk: new SimDisk({ scheduler: clock, prng: new Prng(seed), ...options }) };
}

/** Records every done callback as `label` or `label!code`. */
function recorder(): { log: string[]; done: (label: string) => (error: Error | null) => void } {
  const log: string[] = [];
  return {
    log,
    done: (label) => (error) => void log.push(error === null ? label : `${label}!${(error as StorageError).code}`),
  };
}

test('SimStorage: a synced save survives a crash; done runs only after its sync, in order', async () => {
  const { disk, clock } = virtualDisk(7);
  const s = disk.storage();
  await s.open();
  const { log, done } = recorder();
  s.saveWithCallback({ term: 1, votedFor: 0 }, null, { fromIndex: 1, entries: entries(1, 2, 1) }, done('a'));
  s.saveWithCallback(null, null, null, done('empty')); // queued behind 'a', so it waits too
  assert.deepEqual(log, [], 'never synchronous while a write is pending');
  assert.equal(disk.unsyncedWrites, 2);
  assert.deepEqual(disk.durableState().entries, []);
  clock.runUntil(5);
  assert.deepEqual(log, ['a', 'empty']);
  assert.equal(disk.unsyncedWrites, 0);
  s.saveWithCallback(null, null, null, done('idle-empty'));
  assert.deepEqual(log, ['a', 'empty', 'idle-empty'], 'an empty save with nothing ahead completes at once');
  disk.crash();
  assert.deepEqual(describe(disk.durableState()), describe({ hardState: { term: 1, votedFor: 0 }, snapshot: null, entries: entries(1, 2, 1) }));
  const again = disk.storage();
  assert.deepEqual(describe(await again.open()), describe(disk.durableState()));
});

test('SimStorage: group commit: saves made while a sync is in flight share the next one', async () => {
  const { disk, clock } = virtualDisk(3, { syncLatencyMsMin: 4, syncLatencyMsMax: 4 });
  const s = disk.storage();
  await s.open();
  const { log, done } = recorder();
  const times: number[] = [];
  const timed = (label: string) => (error: Error | null) => {
    done(label)(error);
    times.push(clock.now());
  };
  s.saveWithCallback(null, null, { fromIndex: 1, entries: [entry(1, 1)] }, timed('1'));
  clock.runUntil(1);
  for (let i = 2; i <= 4; i++) s.saveWithCallback(null, null, { fromIndex: i, entries: [entry(i, 1)] }, timed(String(i)));
  clock.runUntil(100);
  assert.deepEqual(log, ['1', '2', '3', '4']);
  assert.deepEqual(times, [4, 8, 8, 8]);
  // An empty save made from a done callback may not overtake the callbacks after it: neither those
  // of the sync already in flight (6) nor those of its own batch (9).
  s.saveWithCallback(null, null, { fromIndex: 5, entries: [entry(5, 1)] }, () => s.saveWithCallback(null, null, null, done('empty5')));
  clock.runUntil(101);
  s.saveWithCallback(null, null, { fromIndex: 6, entries: [entry(6, 1)] }, done('6'));
  clock.runUntil(200);
  s.saveWithCallback(null, null, { fromIndex: 7, entries: [entry(7, 1)] }, done('7'));
  clock.runUntil(201);
  s.saveWithCallback(null, null, { fromIndex: 8, entries: [entry(8, 1)] }, () => s.saveWithCallback(null, null, null, done('empty8')));
  s.saveWithCallback(null, null, { fromIndex: 9, entries: [entry(9, 1)] }, done('9'));
  clock.runUntil(300);
  assert.deepEqual(log.slice(4), ['6', 'empty5', '7', '9', 'empty8']);
  assert.equal(disk.stats.syncs, 6, '1 | 2 3 4 | 5 | 6 | 7 | 8 9: the empty saves need none');
  assert.equal(disk.stats.saves, 11);
  assert.ok(disk.stats.bytesWritten > 9 * 'cmd-1-1'.length);
  assert.deepEqual(disk.durableState().entries.map((e) => e.index), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('SimStorage: failNextSync fails the saves it covers and every later one; nothing becomes durable', async () => {
  const { disk, clock } = virtualDisk(11);
  const s = disk.storage();
  await s.open();
  const first = s.save({ term: 1, votedFor: 0 }, null, { fromIndex: 1, entries: entries(1, 2, 1) });
  clock.runUntil(10);
  await first;
  const before = describe(disk.durableState());
  const { log, done } = recorder();
  disk.failNextSync();
  s.saveWithCallback({ term: 2, votedFor: 1 }, null, { fromIndex: 3, entries: [entry(3, 2)] }, (error) => {
    done('a')(error);
    s.saveWithCallback(null, null, null, done('c')); // refused too, but told after 'b'
  });
  s.saveWithCallback(null, null, { fromIndex: 4, entries: [entry(4, 2)] }, done('b'));
  clock.runUntil(20);
  assert.deepEqual(log, ['a!TSRAFT_STORAGE_IO', 'b!TSRAFT_STORAGE_IO', 'c!TSRAFT_STORAGE_IO']);
  assert.deepEqual(describe(disk.durableState()), before);
  const later = s.save(null, null, { fromIndex: 5, entries: [entry(5, 2)] });
  clock.runUntil(30);
  await assert.rejects(later, (e: unknown) => e instanceof StorageError && e.code === 'TSRAFT_STORAGE_IO' && /injected fsync failure/.test(e.message));
  assert.equal(disk.stats.failedSyncs, 1);
  assert.equal(disk.unsyncedWrites, 0);
  disk.crash();
  assert.deepEqual(describe(disk.durableState()), before, 'a crash cannot resurrect a failed write');
  await s.close();
  const next = disk.storage();
  await next.open();
  const ok = recorder();
  next.saveWithCallback({ term: 2, votedFor: 1 }, null, { fromIndex: 3, entries: [entry(3, 2)] }, ok.done('c'));
  clock.runUntil(40);
  assert.deepEqual(ok.log, ['c'], 'the failure was injected once, into one incarnation');
});

test('SimStorage: a second open instance is refused like a lock; close and crash release it', async () => {
  const { disk, clock } = virtualDisk(5);
  const first = disk.storage();
  await first.open();
  await assert.rejects(disk.storage().open(), (e: unknown) => e instanceof StorageError && e.code === 'TSRAFT_STORAGE_LOCKED');
  await first.close();
  await first.close(); // idempotent
  const second = disk.storage();
  await second.open();
  second.saveWithCallback({ term: 1, votedFor: 1 }, null, null, () => {});
  let closeDone = false;
  void second.close().then(() => (closeDone = true));
  await Promise.resolve();
  assert.equal(closeDone, false, 'close waits for the pending save');
  disk.crash();
  await new Promise((r) => setImmediate(r));
  assert.equal(closeDone, true, 'a crash ends the wait');
  await disk.storage().open();
  clock.runUntil(10);
});

test('SimStorage: after a crash the dead instance ignores saves and never calls done', async () => {
  const { disk, clock } = virtualDisk(9);
  const s = disk.storage();
  await s.open();
  let calls = 0;
  s.saveWithCallback({ term: 1, votedFor: 0 }, null, { fromIndex: 1, entries: [entry(1, 1)] }, () => calls++);
  disk.crash();
  clock.runUntil(100);
  assert.doesNotThrow(() => s.saveWithCallback({ term: 0, votedFor: 0 }, null, { fromIndex: 9, entries: [] }, () => calls++));
  clock.runUntil(200);
  assert.equal(calls, 0);
  await s.close();
  // A crash from inside a done callback: the rest of that batch is durable but never acknowledged.
  const t = disk.storage();
  const n = (await t.open()).entries.length; // the crash may have kept the first save or not
  t.saveWithCallback(null, null, { fromIndex: n + 1, entries: [entry(n + 1, 1)] }, () => {});
  t.saveWithCallback(null, null, { fromIndex: n + 2, entries: [entry(n + 2, 1)] }, () => disk.crash());
  t.saveWithCallback(null, null, { fromIndex: n + 3, entries: [entry(n + 3, 1)] }, () => calls++);
  clock.runUntil(300);
  assert.equal(calls, 0);
  assert.equal(disk.stats.crashes, 2);
});

test('SimStorage: a save that breaks the write rules throws at once and records nothing', async () => {
  const { disk } = virtualDisk(2);
  const s = disk.storage();
  await s.open();
  assert.throws(
    () => s.saveWithCallback(null, null, { fromIndex: 2, entries: [entry(2, 1)] }, () => assert.fail()),
    (e: unknown) => e instanceof InvariantError && /gap/.test(e.message),
  );
  assert.equal(disk.unsyncedWrites, 0);
});

// ------------------------------------------------------------------ crash model over many seeds

interface Op {
  readonly hardState: HardState | null;
  readonly snapshot: Snapshot | null;
  readonly logWrite: LogWrite | null;
  readonly advanceMs: number;
}

/** A random valid sequence of saves, each followed by some virtual time. */
function workload(rng: Prng, n: number): Op[] {
  let term = 1;
  let snapshotIndex = 0;
  let lastIndex = 0;
  let tag = 0;
  const ops: Op[] = [];
  for (let i = 0; i < n; i++) {
    let hardState: HardState | null = null;
    let snap: Snapshot | null = null;
    let logWrite: LogWrite | null = null;
    if (rng.chance(1, 2)) hardState = { term: (term += rng.nextInt(2)), votedFor: rng.nextInt(3) };
    if (rng.chance(1, 8)) {
      const index = snapshotIndex + 1 + rng.nextInt(lastIndex - snapshotIndex + 2);
      snap = snapshot(index, term, `snap-${tag++}`);
      snapshotIndex = index;
      lastIndex = Math.max(lastIndex, index);
    }
    if (rng.chance(2, 3)) {
      const from = snapshotIndex + 1 + rng.nextInt(lastIndex - snapshotIndex + 1);
      const es = Array.from({ length: rng.nextInt(4) }, (_, k) => entry(from + k, term, `e-${tag++}`));
      logWrite = { fromIndex: from, entries: es };
      lastIndex = from - 1 + es.length;
    }
    ops.push({ hardState, snapshot: snap, logWrite, advanceMs: rng.chance(1, 2) ? 0 : rng.nextInt(4) });
  }
  return ops;
}

interface Outcome {
  /** describe() of the state after each prefix of the saves: states[i] follows i saves. */
  readonly states: string[];
  readonly durable: string;
  /** Saves whose done ran before the crash. */
  readonly synced: number;
  readonly syncTimes: number[];
  readonly torn: number;
}

async function crashRun(seed: number, tearPerMille: number): Promise<Outcome> {
  const { disk, clock } = virtualDisk(seed, { tearPerMille });
  const rng = new Prng(seed * 31 + 7);
  const s = disk.storage();
  await s.open();
  const model = new LogState<Snapshot>();
  const show = (st: PersistentState): string => JSON.stringify(describe(st));
  const states = [show({ hardState: model.hardState, snapshot: null, entries: [] })];
  const syncTimes: number[] = [];
  let synced = 0;
  const ops = workload(rng, 4 + rng.nextInt(20));
  ops.forEach((op, i) => {
    if (op.hardState !== null) model.setHardState(op.hardState);
    if (op.snapshot !== null) model.applySnapshot(op.snapshot);
    if (op.logWrite !== null) model.applyLogWrite(op.logWrite.fromIndex, op.logWrite.entries);
    states.push(show({ hardState: model.hardState, snapshot: model.snapshot, entries: model.entries }));
    // An empty save with nothing ahead of it may complete right here, synchronously.
    s.saveWithCallback(op.hardState, op.snapshot, op.logWrite, (error) => {
      assert.equal(error, null);
      assert.equal(i, synced++, 'done callbacks run in call order');
      assert.ok(states.indexOf(show(disk.durableState()), i + 1) > i, `save ${i} reported done before it was durable`);
      syncTimes.push(clock.now());
    });
    if (op.advanceMs > 0) clock.runUntil(clock.now() + op.advanceMs);
  });
  clock.runUntil(clock.now() + rng.nextInt(6));
  const before = synced;
  disk.crash();
  clock.runUntil(clock.now() + 100);
  assert.equal(synced, before, 'no done after the crash');
  const durable = show(disk.durableState());
  const reopened = disk.storage();
  assert.equal(show(await reopened.open()), durable);
  await reopened.close();
  return { states, durable, synced, syncTimes, torn: disk.stats.tornWrites };
}

const SEEDS = Number(process.env['SIM_STORAGE_SEEDS'] ?? 300);

for (const tearPerMille of [0, 1000]) {
  test(`SimStorage: a crash keeps the synced saves plus a prefix of the rest, tearPerMille=${tearPerMille} (${SEEDS} seeds)`, async () => {
    const seen = { allLost: 0, someKept: 0, allKept: 0 };
    let torn = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const run = await crashRun(seed, tearPerMille);
      // Empty saves make neighbouring states equal: accept any match at or after the synced count.
      const kept = run.states.indexOf(run.durable, run.synced);
      assert.ok(kept >= run.synced, `seed ${seed}: the durable state after the crash is no prefix of the saves at or after the ${run.synced} synced ones`);
      const synced = run.states[run.synced];
      const all = run.states[run.states.length - 1];
      if (synced !== all) seen[run.durable === synced ? 'allLost' : run.durable === all ? 'allKept' : 'someKept']++;
      torn += run.torn;
    }
    // A tear always costs the last kept save, so with tearPerMille=1000 keeping all is (nearly) impossible.
    const keptAll = tearPerMille === 0 ? seen.allKept > 0 : true;
    assert.ok(seen.allLost > 0 && seen.someKept > 0 && keptAll, `crashes that lost all, some, none of the unsynced saves: ${JSON.stringify(seen)}`);
    if (tearPerMille === 1000) assert.ok(torn > 0, 'some crash tore a save');
    else assert.equal(torn, 0);
  });
}

test('SimStorage: the same seed and calls give the same durable state and sync times', async () => {
  for (const seed of [1, 42, 1234]) {
    const a = await crashRun(seed, 500);
    const b = await crashRun(seed, 500);
    assert.deepEqual(b, a);
    assert.ok(a.syncTimes.length > 0);
  }
});
