/**
 * The behaviour every Storage implementation owes the runtime (see storage.ts), as node:test tests.
 * Not a test file itself: memory-storage.test.ts and file-storage.test.ts run it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Entry, PersistentState, Snapshot } from '../../src/core/messages.js';
import { StorageError, type Storage } from '../../src/storage/storage.js';

export interface StorageFixture {
  readonly storage: Storage;
  /** Closes nothing: opens a new instance over whatever `storage` made durable. */
  readonly reopen: () => Promise<Storage>;
}

const encoder = new TextEncoder();
export const entry = (index: number, term: number, text = `cmd-${index}-${term}`): Entry => ({
  index,
  term,
  command: encoder.encode(text),
});
export const entries = (from: number, to: number, term: number): Entry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term));
export const snapshot = (index: number, term: number, text = `state@${index}`): Snapshot => ({
  index,
  term,
  data: encoder.encode(text),
});

/** The state in a comparable form: commands and snapshot data as text, entries as index/term/text. */
export function describe(state: PersistentState): unknown {
  const decoder = new TextDecoder();
  return {
    hardState: state.hardState,
    snapshot: state.snapshot === null ? null : { index: state.snapshot.index, term: state.snapshot.term, data: decoder.decode(state.snapshot.data) },
    entries: state.entries.map((e) => `${e.index}/${e.term}/${decoder.decode(e.command)}`),
  };
}

async function reopened(fixture: StorageFixture): Promise<PersistentState> {
  await fixture.storage.close();
  const again = await fixture.reopen();
  try {
    return await again.open();
  } finally {
    await again.close();
  }
}

export function runStorageContract(name: string, create: () => Promise<StorageFixture>): void {
  test(`${name}: a fresh storage opens empty`, async () => {
    const fixture = await create();
    const state = await fixture.storage.open();
    assert.deepEqual(state.hardState, { term: 0, votedFor: -1 });
    assert.equal(state.snapshot, null);
    assert.deepEqual(state.entries, []);
    assert.deepEqual(describe(await reopened(fixture)), describe(state));
  });

  test(`${name}: hard state and entries survive close and reopen`, async () => {
    const fixture = await create();
    const s = fixture.storage;
    await s.open();
    await s.save({ term: 1, votedFor: 2 }, null, { fromIndex: 1, entries: entries(1, 3, 1) });
    await s.save({ term: 2, votedFor: -1 }, null, null);
    await s.save(null, null, { fromIndex: 4, entries: entries(4, 5, 2) });
    const state = await reopened(fixture);
    assert.deepEqual(state.hardState, { term: 2, votedFor: -1 });
    assert.deepEqual(
      describe(state),
      describe({ hardState: { term: 2, votedFor: -1 }, snapshot: null, entries: [...entries(1, 3, 1), ...entries(4, 5, 2)] }),
    );
    assert.ok(state.entries[0]!.command instanceof Uint8Array);
  });

  test(`${name}: a log write below the end truncates the log first`, async () => {
    const fixture = await create();
    const s = fixture.storage;
    await s.open();
    await s.save({ term: 1, votedFor: 0 }, null, { fromIndex: 1, entries: entries(1, 6, 1) });
    await s.save({ term: 3, votedFor: 1 }, null, { fromIndex: 4, entries: [entry(4, 3, 'new4'), entry(5, 3, 'new5')] });
    await s.save(null, null, { fromIndex: 3, entries: [] });
    const state = await reopened(fixture);
    assert.deepEqual(describe(state), {
      hardState: { term: 3, votedFor: 1 },
      snapshot: null,
      entries: ['1/1/cmd-1-1', '2/1/cmd-2-1'],
    });
  });

  test(`${name}: a snapshot drops the prefix it covers and keeps the suffix`, async () => {
    const fixture = await create();
    const s = fixture.storage;
    await s.open();
    await s.save({ term: 2, votedFor: 1 }, null, { fromIndex: 1, entries: entries(1, 10, 2) });
    await s.save(null, snapshot(6, 2), null);
    await s.save(null, null, { fromIndex: 11, entries: entries(11, 12, 2) });
    const state = await reopened(fixture);
    assert.deepEqual(describe(state), {
      hardState: { term: 2, votedFor: 1 },
      snapshot: { index: 6, term: 2, data: 'state@6' },
      entries: entries(7, 12, 2).map((e) => `${e.index}/2/cmd-${e.index}-2`),
    });
  });

  test(`${name}: a snapshot beyond the log drops it all, and the log continues after it`, async () => {
    const fixture = await create();
    const s = fixture.storage;
    await s.open();
    await s.save({ term: 1, votedFor: 0 }, null, { fromIndex: 1, entries: entries(1, 4, 1) });
    await s.save(null, snapshot(3, 1), null);
    await s.save({ term: 4, votedFor: 2 }, snapshot(20, 4, 'leader state'), { fromIndex: 21, entries: entries(21, 22, 4) });
    const state = await reopened(fixture);
    assert.deepEqual(describe(state), {
      hardState: { term: 4, votedFor: 2 },
      snapshot: { index: 20, term: 4, data: 'leader state' },
      entries: ['21/4/cmd-21-4', '22/4/cmd-22-4'],
    });
    // And once more: the reopened storage keeps working from there.
    const again = await fixture.reopen();
    await again.open();
    await again.save(null, null, { fromIndex: 23, entries: [entry(23, 4)] });
    await again.close();
    const third = await fixture.reopen();
    assert.deepEqual((await third.open()).entries.map((e) => e.index), [21, 22, 23]);
    await third.close();
  });

  test(`${name}: many concurrent saves resolve in call order and all persist`, async () => {
    const fixture = await create();
    const s = fixture.storage;
    await s.open();
    const order: number[] = [];
    const saves: Promise<void>[] = [];
    for (let i = 1; i <= 200; i++) {
      const hardState = i % 50 === 0 ? { term: i, votedFor: i % 3 } : null;
      saves.push(s.save(hardState, null, { fromIndex: i, entries: [entry(i, 1)] }).then(() => void order.push(i)));
    }
    await Promise.all(saves);
    assert.deepEqual(order, Array.from({ length: 200 }, (_, i) => i + 1));
    const state = await reopened(fixture);
    assert.deepEqual(state.hardState, { term: 200, votedFor: 200 % 3 });
    assert.deepEqual(state.entries.map((e) => e.index), Array.from({ length: 200 }, (_, i) => i + 1));
  });

  test(`${name}: close waits for pending saves`, async () => {
    const fixture = await create();
    const s = fixture.storage;
    await s.open();
    const saves = [1, 2, 3].map((i) => s.save({ term: i, votedFor: 0 }, null, { fromIndex: i, entries: [entry(i, i)] }));
    const state = await reopened(fixture); // closes without awaiting the saves first
    await Promise.all(saves);
    assert.deepEqual(state.hardState, { term: 3, votedFor: 0 });
    assert.equal(state.entries.length, 3);
  });

  test(`${name}: an invalid save rejects and leaves the storage usable`, async () => {
    const fixture = await create();
    const s = fixture.storage;
    await s.open();
    await s.save({ term: 5, votedFor: 1 }, null, { fromIndex: 1, entries: entries(1, 3, 5) });
    await assert.rejects(s.save({ term: 4, votedFor: 1 }, null, null), /go back/);
    await assert.rejects(s.save(null, null, { fromIndex: 6, entries: [entry(6, 5)] }), /gap/);
    await s.save(null, null, { fromIndex: 4, entries: [entry(4, 5)] });
    const state = await reopened(fixture);
    assert.deepEqual(state.hardState, { term: 5, votedFor: 1 });
    assert.equal(state.entries.length, 4);
  });

  test(`${name}: save after close rejects with TSRAFT_STORAGE_CLOSED; close is idempotent`, async () => {
    const fixture = await create();
    const s = fixture.storage;
    await s.open();
    await s.close();
    await s.close();
    await assert.rejects(
      s.save({ term: 1, votedFor: 0 }, null, null),
      (error: unknown) => error instanceof StorageError && error.code === 'TSRAFT_STORAGE_CLOSED',
    );
  });
}
