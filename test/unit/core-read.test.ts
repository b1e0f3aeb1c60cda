/**
 * ReadIndex (Raft thesis §6.4): a leader serves a read at its commit index only after a majority
 * has answered a heartbeat round sent after the read arrived, and only once it has committed an
 * entry of its own term. These tests drive three cores by hand.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_TIMING } from '../../src/core/config.js';
import type { Message, NodeId } from '../../src/core/messages.js';
import { RaftCore } from '../../src/core/raft.js';
import type { ReadState } from '../../src/core/ready.js';

/** Deterministic but different per node, or two nodes would time out in lockstep forever. */
const counterRandom = (seed: number): { nextInt(max: number): number } => {
  let n = seed * 17;
  return { nextInt: (max: number) => n++ % max };
};

interface Net {
  cores: RaftCore[];
  inflight: Message[];
  reads: Map<NodeId, ReadState[]>;
}

function makeNet(size: number): Net {
  const peers = Array.from({ length: size }, (_, i) => i);
  return {
    cores: peers.map((id) => new RaftCore({ id, peers, ...DEFAULT_TIMING, random: counterRandom(id) })),
    inflight: [],
    reads: new Map(),
  };
}

/** Runs every Ready of every core once, collecting messages and read states. */
function flush(net: Net): void {
  for (const core of net.cores) {
    while (core.hasReady()) {
      const ready = core.ready();
      net.inflight.push(...ready.messages);
      if (ready.readStates.length > 0) net.reads.set(core.id, [...(net.reads.get(core.id) ?? []), ...ready.readStates]);
      core.advance(ready);
    }
  }
}

/** Delivers messages (optionally filtered) until none are left. */
function deliver(net: Net, allow: (m: Message) => boolean = () => true): void {
  flush(net);
  for (let round = 0; round < 100 && net.inflight.length > 0; round++) {
    const batch = net.inflight.splice(0);
    for (const message of batch) if (allow(message)) net.cores[message.to]!.step(message);
    flush(net);
  }
}

function elect(net: Net, id: NodeId): void {
  const core = net.cores[id]!;
  for (let i = 0; i < DEFAULT_TIMING.electionTimeoutTicksMax && !core.isLeader; i++) {
    core.tick();
    deliver(net);
  }
  assert.ok(core.isLeader, `node ${id} should have won the election`);
}

test('a leader with a committed entry of its term releases a read after a majority echoes the round', () => {
  const net = makeNet(3);
  elect(net, 0);
  const leader = net.cores[0]!;
  leader.propose(new TextEncoder().encode('x'));
  deliver(net);
  const commit = leader.status().commitIndex;
  assert.equal(commit, 1);
  assert.equal(leader.requestRead(7), true);
  flush(net);
  assert.deepEqual(net.reads.get(0), undefined, 'nothing is released before the round is answered');
  const round = net.inflight.filter((m) => m.type === 'AppendEntries');
  assert.equal(round.length, 2, 'one heartbeat per follower');
  assert.ok(round.every((m) => m.type === 'AppendEntries' && m.readContext === 1));
  // Only one follower answers: with the leader that is a majority of three.
  deliver(net, (m) => m.from !== 2 && m.to !== 2);
  assert.deepEqual(net.reads.get(0), [{ id: 7, index: commit }]);
});

test('a new leader without an entry of its term appends an empty one and releases the read once it commits', () => {
  const net = makeNet(3);
  elect(net, 0);
  net.cores[0]!.propose(new TextEncoder().encode('x'));
  deliver(net);
  // Node 0 is cut off; node 1 or 2 takes over, holding entry 1 of the old term but nothing of its own.
  const isolated = (m: Message): boolean => m.from !== 0 && m.to !== 0;
  for (let i = 0; i < DEFAULT_TIMING.electionTimeoutTicksMax * 3 && !net.cores[1]!.isLeader && !net.cores[2]!.isLeader; i++) {
    net.cores[1]!.tick();
    net.cores[2]!.tick();
    deliver(net, isolated);
  }
  const leader = net.cores[1]!.isLeader ? net.cores[1]! : net.cores[2]!;
  assert.ok(leader.isLeader);
  const lastBefore = leader.status().lastIndex;
  assert.equal(leader.requestRead(1), true);
  assert.equal(leader.status().lastIndex, lastBefore + 1, 'an empty entry was appended');
  assert.equal(leader.entryAt(lastBefore + 1)?.command.length, 0);
  deliver(net, isolated);
  const released = net.reads.get(leader.id);
  assert.equal(released?.length, 1);
  assert.equal(released[0]!.index, lastBefore + 1, 'the read sees the commit index that includes the empty entry');
});

test('followers refuse; a leader deposed before confirmation releases nothing', () => {
  const net = makeNet(3);
  elect(net, 0);
  net.cores[0]!.propose(new TextEncoder().encode('x'));
  deliver(net);
  assert.equal(net.cores[1]!.requestRead(1), false);
  const leader = net.cores[0]!;
  assert.equal(leader.requestRead(2), true);
  flush(net);
  net.inflight.length = 0; // the round is lost
  // A newer term reaches the leader before any echo: it steps down and the read is gone.
  leader.step({ type: 'RequestVoteReply', from: 1, to: 0, term: leader.term + 1, voteGranted: false });
  assert.equal(leader.isLeader, false);
  deliver(net);
  assert.equal(net.reads.get(0), undefined);
});

test('an echo of an earlier round does not confirm a later read', () => {
  const net = makeNet(3);
  elect(net, 0);
  const leader = net.cores[0]!;
  leader.propose(new TextEncoder().encode('x'));
  deliver(net);
  leader.requestRead(1);
  flush(net);
  const firstRound = net.inflight.splice(0);
  leader.requestRead(2);
  flush(net);
  net.inflight.length = 0; // the second round is lost
  for (const message of firstRound) net.cores[message.to]!.step(message);
  deliver(net);
  assert.deepEqual(
    net.reads.get(0)?.map((r) => r.id),
    [1],
    'only the read whose round was echoed is released',
  );
});
