/** MemoryStorage: the storage contract, plus construction from an initial state. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStorage } from '../../src/storage/memory.js';
import { configEntry, describe, entries, membership, runStorageContract, snapshot } from './storage-contract.js';

runStorageContract('MemoryStorage', () => {
  let current = new MemoryStorage();
  const storage = current;
  return Promise.resolve({
    storage,
    reopen: () => {
      current = new MemoryStorage(current.state());
      return Promise.resolve(current);
    },
  });
});

test('MemoryStorage: starts from a given state, and rejects an inconsistent one', async () => {
  const initial = { hardState: { term: 3, votedFor: 1 }, snapshot: snapshot(5, 2), entries: entries(6, 8, 3) };
  const storage = new MemoryStorage(initial);
  assert.deepEqual(describe(await storage.open()), describe(initial));
  // Configurations (the snapshot's, and entries) come through as given.
  const m = membership([1, 2, 3], { learners: [4] });
  const configured = { ...initial, snapshot: snapshot(5, 2, 'state@5', m), entries: [configEntry(6, 3, m), ...entries(7, 8, 3)] };
  const opened = await new MemoryStorage(configured).open();
  assert.deepEqual(describe(opened), describe(configured));
  assert.deepEqual(opened.snapshot!.membership, m);
  assert.throws(() => new MemoryStorage({ ...configured, snapshot: snapshot(5, 2, 'x', { ...m, voters: [-1] }) }), /membership\.voters/);
  assert.throws(() => new MemoryStorage({ ...initial, entries: entries(7, 8, 3) }), /entry 0 has index 7/);
  await assert.rejects(storage.open(), /only once/);
});
