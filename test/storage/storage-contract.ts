/**
 * The behaviour every Storage implementation owes the runtime (see storage.ts), as node:test tests.
 * Not a test file itself: memory-storage.test.ts and file-storage.test.ts run it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Membership } from '../../src/core/membership.js';
import type { Entry, PersistentState, Snapshot } from '../../src/core/messages.js';
import { StorageError, type Storage } from '../../src/storage/storage.js';
import { snapshotBodyBytes } from '../../src/core/snapshot-body.js';

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
export const snapshot = (index: number, term: number, text = `state@${index}`, membership?: Membership): Snapshot =>
  membership === undefined ? { index, term, data: encoder.encode(text) } : { index, term, data: encoder.encode(text), membership };

/** A configuration (ids sorted, as the core keeps them); addresses default to one per voter. */
export const membership = (
  voters: number[],
  more: { outgoing?: number[]; learners?: number[]; addresses?: [number, string][] } = {},
): Membership => ({
  voters,
  outgoing: more.outgoing ?? [],
  learners: more.learners ?? [],
  addresses: (more.addresses ?? voters.map((id): [number, string] => [id, `10.0.0.${id}:7000`])).map(([id, address]) => ({ id, address })),
});

/** A configuration entry: no command, a membership. */
export const configEntry = (index: number, term: number, m: Membership): Entry => ({ index, term, command: new Uint8Array(0), membership: m });

/**
 * The state in a comparable form: commands and snapshot data as text, entries as index/term/text
 * (index/term/config:JSON for a configuration entry), a snapshot's configuration as JSON, and only
 * if it has one, so a configuration that appears or disappears shows.
 */
export function describe(state: PersistentState): unknown {
  const decoder = new TextDecoder();
  const snap = state.snapshot;
  return {
    hardState: state.hardState,
    snapshot:
      snap === null
        ? null
        : {
            index: snap.index,
            term: snap.term,
            data: decoder.decode(snapshotBodyBytes(snap.data)),
            ...(snap.membership === undefined ? {} : { membership: JSON.stringify(snap.membership) }),
          },
    entries: state.entries.map((e) =>
      e.membership === undefined ? `${e.index}/${e.term}/${decoder.decode(e.command)}` : `${e.index}/${e.term}/config:${JSON.stringify(e.membership)}${e.command.length === 0 ? '' : ' WITH A COMMAND'}`,
    ),
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

  test(`${name}: configuration entries round-trip, also after a later log write truncates them`, async () => {
    const fixture = await create();
    const s = fixture.storage;
    await s.open();
    const joint = membership([1, 2, 4], { outgoing: [1, 2, 3], learners: [5], addresses: [[1, 'a:1'], [3, 'c:3'], [4, 'hôte-ü:4'], [5, '']] });
    const next = membership([1, 2, 4], { learners: [5], addresses: [] });
    const other = membership([1, 2, 3, 6]);
    await s.save({ term: 1, votedFor: 1 }, null, { fromIndex: 1, entries: [entry(1, 1), configEntry(2, 1, joint), entry(3, 1)] });
    await s.save(null, null, { fromIndex: 4, entries: [configEntry(4, 1, next), entry(5, 1)] });
    let state = await reopened(fixture);
    assert.deepEqual(state.entries[1], configEntry(2, 1, joint));
    assert.deepEqual(state.entries[3]!.membership, next);
    assert.equal(state.entries[3]!.command.length, 0);
    assert.equal(state.entries[0]!.membership, undefined, 'a command entry has no configuration');

    // A new leader's log replaces the uncommitted configuration at 4 with another one, then a command.
    const again = await fixture.reopen();
    await again.open();
    await again.save({ term: 2, votedFor: 2 }, null, { fromIndex: 4, entries: [configEntry(4, 2, other), entry(5, 2)] });
    await again.save(null, null, { fromIndex: 6, entries: [configEntry(6, 2, membership([1, 2, 3, 6], { learners: [7] }))] });
    // ... and a later write cuts the last configuration entry off again.
    await again.save(null, null, { fromIndex: 6, entries: [entry(6, 2)] });
    state = await reopened({ storage: again, reopen: fixture.reopen });
    assert.deepEqual(describe(state), describe({
      hardState: { term: 2, votedFor: 2 },
      snapshot: null,
      entries: [entry(1, 1), configEntry(2, 1, joint), entry(3, 1), configEntry(4, 2, other), entry(5, 2), entry(6, 2)],
    }));
    assert.deepEqual(state.entries[3], configEntry(4, 2, other));
    assert.equal(state.entries[5]!.membership, undefined);
  });

  test(`${name}: a snapshot's configuration round-trips, and so do the configuration entries after it`, async () => {
    const fixture = await create();
    const s = fixture.storage;
    await s.open();
    const atSnapshot = membership([0, 1, 2], { learners: [3] });
    const later = membership([0, 1, 2, 3]);
    await s.save({ term: 3, votedFor: 0 }, null, { fromIndex: 1, entries: [...entries(1, 4, 3), configEntry(5, 3, atSnapshot), ...entries(6, 8, 3)] });
    await s.save(null, snapshot(6, 3, 'state@6', atSnapshot), { fromIndex: 9, entries: [configEntry(9, 3, later)] });
    let state = await reopened(fixture);
    assert.deepEqual(state.snapshot!.membership, atSnapshot);
    assert.deepEqual(describe(state), describe({
      hardState: { term: 3, votedFor: 0 },
      snapshot: snapshot(6, 3, 'state@6', atSnapshot),
      entries: [entry(7, 3), entry(8, 3), configEntry(9, 3, later)],
    }));

    // Reopened, it keeps both through more saves and another reopen.
    const second = await fixture.reopen();
    await second.open();
    await second.save(null, null, { fromIndex: 10, entries: [entry(10, 3)] });
    state = await reopened({ storage: second, reopen: fixture.reopen });
    assert.deepEqual(state.snapshot!.membership, atSnapshot);
    assert.deepEqual(state.entries.map((e) => e.membership), [undefined, undefined, later, undefined]);

    // Snapshots saved together: the latest one's configuration is the one that stays.
    const third = await fixture.reopen();
    await third.open();
    await Promise.all([
      third.save(null, snapshot(8, 3, 'state@8', atSnapshot), null),
      third.save(null, snapshot(9, 3, 'state@9', later), null),
      third.save(null, null, { fromIndex: 11, entries: [entry(11, 3)] }),
    ]);
    state = await reopened({ storage: third, reopen: fixture.reopen });
    assert.deepEqual(describe(state), describe({
      hardState: { term: 3, votedFor: 0 },
      snapshot: snapshot(9, 3, 'state@9', later),
      entries: [entry(10, 3), entry(11, 3)],
    }));
  });

  test(`${name}: a snapshot saved without a configuration reads back without one`, async () => {
    const fixture = await create();
    const s = fixture.storage;
    await s.open();
    await s.save({ term: 1, votedFor: 0 }, null, { fromIndex: 1, entries: entries(1, 5, 1) });
    await s.save(null, snapshot(2, 1), null);
    let state = await reopened(fixture);
    assert.equal(state.snapshot!.index, 2);
    assert.equal(state.snapshot!.membership, undefined);
    assert.deepEqual(describe(state), describe({ hardState: { term: 1, votedFor: 0 }, snapshot: snapshot(2, 1), entries: entries(3, 5, 1) }));

    // Nor does a snapshot without one inherit the configuration of the snapshot before it.
    const again = await fixture.reopen();
    await again.open();
    await again.save(null, snapshot(3, 1, 'state@3', membership([0, 1, 2])), null);
    await again.save(null, snapshot(4, 1), null);
    state = await reopened({ storage: again, reopen: fixture.reopen });
    assert.equal(state.snapshot!.index, 4);
    assert.equal(state.snapshot!.membership, undefined);
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
