/**
 * The simulated disk: writes follow the core's Ready (hard state, snapshot, log suffix), a crash
 * copy keeps only what was durable, and the raft-state size is exactly what the codec would write.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { persistentStateSize } from '../../src/codec/index.js';
import type { Entry } from '../../src/core/messages.js';
import { Persister } from '../../src/sim/persister.js';

const entry = (index: number, term: number, text = `cmd${index}`): Entry => ({
  index,
  term,
  command: new TextEncoder().encode(text),
});
const entries = (from: number, to: number, term: number): Entry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term));

test('immediate mode: every save is durable and read back in order', () => {
  const disk = new Persister();
  assert.equal(disk.read(), undefined, 'a fresh disk has no state');
  disk.save({ term: 2, votedFor: 1 }, null, { fromIndex: 1, entries: entries(1, 5, 1) });
  disk.save(null, null, { fromIndex: 4, entries: [entry(4, 2), entry(5, 2), entry(6, 2)] });
  const state = disk.read()!;
  assert.deepEqual(state.hardState, { term: 2, votedFor: 1 });
  assert.deepEqual(state.entries.map((e) => `${e.index}/${e.term}`), ['1/1', '2/1', '3/1', '4/2', '5/2', '6/2']);
  assert.equal(state.snapshot, null);
});

test('on-sync mode: a crash copy loses what was not synced', () => {
  const disk = new Persister('on-sync');
  disk.save({ term: 1, votedFor: 0 }, null, { fromIndex: 1, entries: entries(1, 3, 1) });
  disk.sync();
  disk.save({ term: 3, votedFor: 2 }, null, { fromIndex: 4, entries: entries(4, 6, 3) });
  assert.equal(disk.unsyncedWrites, 1);
  const afterCrash = disk.copy().read()!;
  assert.deepEqual(afterCrash.hardState, { term: 1, votedFor: 0 });
  assert.equal(afterCrash.entries.length, 3);
  disk.sync();
  assert.equal(disk.read()!.entries.length, 6);
  assert.equal(disk.copy().read()!.hardState.term, 3);
});

test('a snapshot drops the covered prefix and keeps the rest; one past the log drops everything', () => {
  const disk = new Persister();
  disk.save({ term: 1, votedFor: 0 }, null, { fromIndex: 1, entries: entries(1, 10, 1) });
  const data = new Uint8Array([1, 2, 3]);
  disk.save(null, { index: 4, term: 1, data }, null);
  let state = disk.read()!;
  assert.equal(state.snapshot!.index, 4);
  assert.deepEqual(state.entries.map((e) => e.index), [5, 6, 7, 8, 9, 10]);
  assert.equal(disk.snapshotSize(), 3);
  disk.save(null, { index: 20, term: 3, data }, { fromIndex: 21, entries: [] });
  state = disk.read()!;
  assert.equal(state.snapshot!.index, 20);
  assert.deepEqual(state.entries, []);
  disk.save(null, null, { fromIndex: 21, entries: [entry(21, 3)] });
  assert.deepEqual(disk.read()!.entries.map((e) => e.index), [21]);
});

test('raftStateSize is the encoded size of the durable state without the snapshot bytes', () => {
  const disk = new Persister();
  disk.save({ term: 7, votedFor: 2 }, null, { fromIndex: 1, entries: entries(1, 30, 7) });
  disk.save(null, { index: 12, term: 7, data: new Uint8Array(100) }, null);
  const state = disk.read()!;
  const snapshotBytes = persistentStateSize({ ...state, snapshot: { ...state.snapshot!, data: new Uint8Array(0) } });
  assert.equal(disk.raftStateSize(), snapshotBytes - 1, 'the empty snapshot data still costs its 1-byte length');
});

test('writes that would break the log are refused loudly', () => {
  const disk = new Persister();
  disk.save({ term: 5, votedFor: 1 }, null, { fromIndex: 1, entries: entries(1, 3, 5) });
  assert.throws(() => disk.save(null, null, { fromIndex: 6, entries: [entry(6, 5)] }), /gap/);
  assert.throws(() => disk.save({ term: 4, votedFor: 0 }, null, null), /term would go back/);
  disk.save(null, { index: 3, term: 5, data: new Uint8Array(0) }, null);
  assert.throws(() => disk.save(null, null, { fromIndex: 2, entries: [] }), /into the snapshot/);
});
