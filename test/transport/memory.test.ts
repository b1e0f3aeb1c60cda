import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../../src/core/messages.js';
import { MemoryTransportHub } from '../../src/transport/memory.js';

const rv = (from: number, to: number, term: number): Message => ({ type: 'RequestVote', from, to, term, lastLogIndex: 0, lastLogTerm: 0 });
const flushed = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('MemoryTransport delivers asynchronously, copies messages, and honours partitions', async () => {
  const hub = new MemoryTransportHub();
  const got: Message[][] = [[], [], []];
  const ts = [0, 1, 2].map((id) => hub.create(id));
  await Promise.all(ts.map((t, id) => t.start((m) => got[id]!.push(m))));

  const data = Uint8Array.of(1, 2, 3);
  const snap: Message = { type: 'InstallSnapshot', from: 0, to: 1, term: 2, lastIncludedIndex: 5, lastIncludedTerm: 2, snapshotBytes: 3, checksum: 0x1234, offset: 0, data, done: true, membership: { voters: [0, 1, 2], outgoing: [], learners: [], addresses: [] } };
  ts[0]!.send(snap);
  ts[0]!.send(rv(0, 2, 1));
  assert.equal(got.flat().length, 0, 'nothing is delivered synchronously');
  await flushed();
  assert.deepEqual(got[1], [snap]);
  const first = got[1]![0];
  assert.ok(first?.type === 'InstallSnapshot');
  assert.notEqual(first.data, data, 'the receiver gets a copy');
  assert.deepEqual(got[2], [rv(0, 2, 1)]);

  hub.setLinkUp(0, 1, false);
  ts[0]!.send(rv(0, 1, 2));
  ts[1]!.send(rv(1, 0, 2)); // the other direction still works
  await flushed();
  assert.equal(got[1]!.length, 1);
  assert.deepEqual(got[0], [rv(1, 0, 2)]);
  assert.equal(hub.stats.dropped, 1);

  hub.setLinkUp(0, 1, true);
  ts[0]!.send(rv(0, 1, 3));
  await flushed();
  assert.deepEqual(got[1]!.at(-1), rv(0, 1, 3));

  // A closed node receives nothing; a restarted one (new transport, same id) does.
  await ts[2]!.close();
  assert.throws(() => hub.create(1), /already has an open transport/);
  ts[0]!.send(rv(0, 2, 4));
  await flushed();
  assert.equal(got[2]!.length, 1);
  const restarted = hub.create(2);
  const got2: Message[] = [];
  await restarted.start((m) => got2.push(m));
  ts[0]!.send(rv(0, 2, 5));
  ts[2]!.send(rv(2, 0, 5)); // sends from the closed transport are ignored
  await flushed();
  assert.deepEqual(got2, [rv(0, 2, 5)]);
  assert.throws(() => ts[0]!.send(rv(1, 2, 6)), /from node 1/);
  assert.deepEqual(hub.stats, { sent: 7, delivered: 5, dropped: 2 });
});
