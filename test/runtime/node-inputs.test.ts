/**
 * RaftNode feeds its core what queued up while the driver waited, in the order it happened. A
 * follower whose fsync takes longer than an election timeout keeps hearing its leader meanwhile;
 * had the queued ticks been fed before the queued heartbeats, it would time out and campaign
 * against a leader that never went away.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Message } from '../../src/core/messages.js';
import { clockFromScheduler } from '../../src/runtime/clock.js';
import { RaftNode } from '../../src/runtime/node.js';
import { Prng } from '../../src/sim/prng.js';
import { VirtualScheduler } from '../../src/sim/scheduler.js';
import { SimDisk } from '../../src/sim/sim-storage.js';
import type { Transport } from '../../src/transport/transport.js';

const TICK_MS = 10;
const ELECTION_MAX_MS = 600;
const SYNC_MS = 3 * ELECTION_MAX_MS;

test('heartbeats that queued behind a slow fsync are fed before the ticks that came after them', async () => {
  const scheduler = new VirtualScheduler();
  const sent: Message[] = [];
  let deliver: (message: Message) => void = () => {};
  const transport: Transport = {
    start: (onMessage) => {
      deliver = onMessage;
      return Promise.resolve();
    },
    send: (message) => void sent.push(message),
    close: () => Promise.resolve(),
  };
  const disk = new SimDisk({ scheduler, prng: new Prng(1), syncLatencyMsMin: SYNC_MS, syncLatencyMsMax: SYNC_MS + 1 });
  await scheduler.run(async () => {
    const node = await RaftNode.start({
      id: 1,
      peers: [0, 1, 2],
      storage: disk.storage(),
      transport,
      clock: clockFromScheduler(scheduler),
      random: { nextInt: () => 0 },
      timing: { tickMs: TICK_MS, heartbeatMs: 100, electionTimeoutMinMs: 300, electionTimeoutMaxMs: ELECTION_MAX_MS },
    });
    const heartbeat = (leaderCommit: number): Message => ({
      type: 'AppendEntries', from: 0, to: 1, term: 1, prevLogIndex: 1, prevLogTerm: 1, entries: [], leaderCommit, readContext: 0,
    });
    // Leader 0 of term 1 sends an entry: the follower must persist it (one slow fsync) ...
    deliver({
      type: 'AppendEntries', from: 0, to: 1, term: 1, prevLogIndex: 0, prevLogTerm: 0,
      entries: [{ index: 1, term: 1, command: Uint8Array.of(1) }], leaderCommit: 0, readContext: 0,
    });
    // ... and keeps sending heartbeats every 100 ms while that fsync runs, and after it.
    const until = 2 * SYNC_MS;
    for (let at = 100; at <= until; at += 100) scheduler.schedule(at, () => deliver(heartbeat(1)));
    await new Promise<void>((resolve) => scheduler.schedule(until + 50, resolve));
    const status = node.status();
    const campaigns = sent.filter((m) => m.type === 'RequestVote' || m.type === 'PreVote');
    assert.deepEqual(
      { role: status.role, term: status.term, campaigns: campaigns.length },
      { role: 'follower', term: 1, campaigns: 0 },
      'the follower campaigned although its leader was heard throughout',
    );
    assert.ok(sent.some((m) => m.type === 'AppendEntriesReply' && m.success && m.matchIndex === 1), 'the entry was acknowledged');
    await node.stop();
  });
});

test('a proposal in flight when the node stops is answered "outcome unknown", not failed', async () => {
  const scheduler = new VirtualScheduler();
  const transport: Transport = { start: () => Promise.resolve(), send: () => {}, close: () => Promise.resolve() };
  const disk = new SimDisk({ scheduler, prng: new Prng(2), syncLatencyMsMin: 5, syncLatencyMsMax: 6 });
  await scheduler.run(async () => {
    let fatal: Error | null = null;
    const node = await RaftNode.start({
      id: 0,
      peers: [0],
      storage: disk.storage(),
      transport,
      clock: clockFromScheduler(scheduler),
      random: { nextInt: () => 0 },
      timing: { tickMs: TICK_MS, heartbeatMs: 100, electionTimeoutMinMs: 300, electionTimeoutMaxMs: ELECTION_MAX_MS },
      onFatal: (error) => (fatal = error),
    });
    while (node.status().role !== 'leader') await new Promise<void>((resolve) => scheduler.schedule(50, resolve));
    // The entry reaches the leader's log; the fsync that would make it durable fails: the node
    // stops. It could have reached followers first, so nobody may say it did not happen.
    disk.failNextSync();
    const outcome = await node.propose(Uint8Array.of(7)).then(
      () => 'committed',
      (error: Error) => error.name,
    );
    assert.equal(outcome, 'OutcomeUnknownError');
    assert.ok(fatal !== null, 'the failed fsync stopped the node');
    await node.stop();
  });
});
