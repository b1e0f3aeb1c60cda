/**
 * Membership changes in the core (thesis ch. 4): learners, joint consensus, one change at a time,
 * the configuration in effect being the latest in the log, removal of the leader, configurations
 * in snapshots, and the injected bugs that break each rule.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INJECTED_BUGS, type InjectedBug } from '../../src/core/bugs.js';
import { DEFAULT_TIMING, type RaftConfig } from '../../src/core/config.js';
import { isJoint, type Membership, type MembershipStep } from '../../src/core/membership.js';
import type { Message, NodeId } from '../../src/core/messages.js';
import type { ProposeResult } from '../../src/core/raft.js';
import { bytes, counterRandom, deliver, DrivenCore, elect, ET_MAX, flush, type Net } from './core-fixtures.js';

/** `total` nodes; the cluster starts with `voters`; every other node starts as a joiner (a learner in its own view). */
function membershipNet(voters: NodeId[], total: number, bugs?: ReadonlySet<InjectedBug>): Net {
  const net: Net = { nodes: [], inflight: [] };
  for (let id = 0; id < total; id++) {
    let config: RaftConfig = {
      id,
      peers: voters,
      ...(voters.includes(id) ? {} : { learners: [id] }),
      ...DEFAULT_TIMING,
      random: counterRandom(id),
    };
    if (bugs !== undefined) config = { ...config, [INJECTED_BUGS]: bugs };
    net.nodes.push(new DrivenCore({ config, onSend: (message) => net.inflight.push(message) }));
  }
  return net;
}

function change(net: Net, leader: NodeId, steps: MembershipStep[]): ProposeResult {
  const result = net.nodes[leader]!.core.proposeMembership(steps);
  assert.ok(!('refused' in result), `change refused: ${JSON.stringify(result)}`);
  flush(net);
  return result;
}

/** Runs ticks and delivery until `done` holds (bounded). */
function until(net: Net, done: () => boolean, allow: (m: Message) => boolean = () => true, ticks = 20 * ET_MAX): void {
  for (let i = 0; i < ticks && !done(); i++) {
    for (const node of net.nodes) node.tick();
    deliver(net, allow);
  }
  assert.ok(done(), 'condition not reached in time');
}

const membershipOf = (net: Net, id: NodeId): Membership => net.nodes[id]!.core.membership();
const commitOf = (net: Net, id: NodeId): number => net.nodes[id]!.core.status(false).commitIndex;
const cut = (ids: NodeId[]) => (m: Message): boolean => !ids.includes(m.from) && !ids.includes(m.to);

describe('membership changes in the core', () => {
  it('a learner receives the log but never votes, campaigns or counts towards commit', () => {
    const net = membershipNet([0, 1, 2], 4);
    elect(net, 0);
    const added = change(net, 0, [{ type: 'add-learner', id: 3, address: 'n3' }]);
    deliver(net);
    assert.deepEqual(membershipOf(net, 0).learners, [3]);
    assert.ok(commitOf(net, 0) >= added.index);
    net.nodes[0]!.propose(bytes('x'));
    deliver(net);
    assert.equal(net.nodes[3]!.core.status(false).lastIndex, net.nodes[0]!.core.status(false).lastIndex, 'the learner has the log');
    assert.equal(membershipOf(net, 3).learners.includes(3), true);
    // With both voters cut off, leader + learner are no majority: nothing commits.
    const before = commitOf(net, 0);
    const p = net.nodes[0]!.propose(bytes('y'))!;
    deliver(net, cut([1, 2]));
    assert.equal(commitOf(net, 0), before, 'a learner must not count towards commit');
    assert.ok(p.index > before);
    // A learner never campaigns, however long it hears nothing.
    for (let i = 0; i < 5 * ET_MAX; i++) net.nodes[3]!.tick();
    assert.equal(net.nodes[3]!.core.status(false).role, 'follower');
  });

  it('the bug learner-in-quorum lets a leader commit with learners instead of voters', () => {
    const net = membershipNet([0, 1, 2], 5, new Set(['learner-in-quorum']));
    elect(net, 0);
    change(net, 0, [{ type: 'add-learner', id: 3 }, { type: 'add-learner', id: 4 }]);
    deliver(net);
    const before = commitOf(net, 0);
    net.nodes[0]!.propose(bytes('y'));
    deliver(net, cut([1, 2]));
    assert.ok(commitOf(net, 0) > before, 'with the bug, leader + 2 learners commit');
  });

  it('promoting a learner goes through a joint configuration that the leader leaves by itself', () => {
    const net = membershipNet([0, 1, 2], 4);
    elect(net, 0);
    change(net, 0, [{ type: 'add-learner', id: 3 }]);
    deliver(net);
    const joint = change(net, 0, [{ type: 'promote', id: 3 }]);
    assert.ok(isJoint(membershipOf(net, 0)), 'the joint configuration takes effect when appended');
    assert.deepEqual(membershipOf(net, 0).outgoing, [0, 1, 2]);
    deliver(net);
    const final = membershipOf(net, 0);
    assert.equal(isJoint(final), false, 'left the joint configuration');
    assert.deepEqual(final.voters, [0, 1, 2, 3]);
    assert.ok(net.nodes[0]!.core.status(false).membershipIndex > joint.index);
    for (const id of [1, 2, 3]) assert.deepEqual(membershipOf(net, id).voters, [0, 1, 2, 3]);
    // Now 3 of 4 are needed: leader + 3 alone do not commit.
    const before = commitOf(net, 0);
    net.nodes[0]!.propose(bytes('z'));
    deliver(net, cut([1, 2]));
    assert.equal(commitOf(net, 0), before);
  });

  it('a joint configuration needs a majority of both the old and the new voters', () => {
    const net = membershipNet([0, 1, 2], 5);
    elect(net, 0);
    change(net, 0, [{ type: 'add-learner', id: 3 }, { type: 'add-learner', id: 4 }]);
    deliver(net);
    // Replace 1 and 2 by 3 and 4: joint {0,3,4} with {0,1,2}. Only the new voters answer.
    const joint = change(net, 0, [{ type: 'promote', id: 3 }, { type: 'promote', id: 4 }, { type: 'remove', id: 1 }, { type: 'remove', id: 2 }]);
    until(net, () => net.nodes[3]!.core.status(false).lastIndex >= joint.index && net.nodes[4]!.core.status(false).lastIndex >= joint.index, cut([1, 2]));
    for (let i = 0; i < 3 * ET_MAX; i++) {
      net.nodes[0]!.tick();
      deliver(net, cut([1, 2]));
    }
    assert.ok(commitOf(net, 0) < joint.index, 'the new voters alone cannot commit the joint configuration');
    until(net, () => commitOf(net, 0) > joint.index && !isJoint(membershipOf(net, 0)));
    assert.deepEqual(membershipOf(net, 0).voters, [0, 3, 4]);
    assert.equal(isJoint(membershipOf(net, 0)), false);
  });

  it('one change at a time: a change is refused while the latest configuration is uncommitted', () => {
    const net = membershipNet([0, 1, 2], 5);
    elect(net, 0);
    change(net, 0, [{ type: 'add-learner', id: 3 }]);
    const second = net.nodes[0]!.core.proposeMembership([{ type: 'add-learner', id: 4 }]);
    assert.equal('refused' in second && second.refused, 'change-pending');
    deliver(net);
    const invalid = net.nodes[0]!.core.proposeMembership([{ type: 'promote', id: 4 }]);
    assert.equal('refused' in invalid && invalid.refused, 'invalid');
    const follower = net.nodes[1]!.core.proposeMembership([{ type: 'add-learner', id: 4 }]);
    assert.equal('refused' in follower && follower.refused, 'not-leader');
    const empty = net.nodes[0]!.core.proposeMembership([{ type: 'remove', id: 0 }, { type: 'remove', id: 1 }, { type: 'remove', id: 2 }]);
    assert.equal('refused' in empty && empty.refused, 'invalid');
  });

  it('a removed leader steps down once the change commits and hands over at once', () => {
    const net = membershipNet([0, 1, 2], 3);
    elect(net, 0);
    net.nodes[0]!.propose(bytes('a'));
    deliver(net);
    change(net, 0, [{ type: 'remove', id: 0 }]);
    deliver(net);
    assert.equal(net.nodes[0]!.core.isLeader, false, 'the removed leader stepped down');
    assert.deepEqual(membershipOf(net, 0).voters, [1, 2]);
    // TimeoutNow went to an up-to-date voter: a new leader within a few ticks, not an election timeout.
    let ticks = 0;
    while (!net.nodes[1]!.core.isLeader && !net.nodes[2]!.core.isLeader && ticks < ET_MAX) {
      for (const node of net.nodes) node.tick();
      deliver(net);
      ticks++;
    }
    assert.ok(ticks < 5, `new leader after ${ticks} ticks`);
    // The removed node never campaigns again.
    for (let i = 0; i < 5 * ET_MAX; i++) net.nodes[0]!.tick();
    assert.notEqual(net.nodes[0]!.core.status(false).role, 'candidate');
  });

  it('a removed leader hands over within a few round trips while clients keep writing', () => {
    const net = membershipNet([0, 1, 2], 3);
    elect(net, 0);
    change(net, 0, [{ type: 'remove', id: 0 }]);
    // A write is proposed before every hop of every message, so whenever the removal commits the
    // leader holds entries no follower has acknowledged yet (as under real client load).
    let hops = 0;
    let ticks = 0;
    while (!net.nodes[1]!.core.isLeader && !net.nodes[2]!.core.isLeader && ticks < 2 * ET_MAX) {
      if (net.nodes[0]!.core.isLeader) net.nodes[0]!.propose(bytes(`w${hops}`));
      flush(net);
      const batch = net.inflight.splice(0);
      for (const message of batch) net.nodes[message.to]!.step(message);
      if (++hops % 4 === 0) {
        for (const node of net.nodes) node.tick();
        ticks++;
      }
    }
    assert.ok(ticks < 10, `new leader after ${ticks} ticks (an election timeout is ${ET_MAX / 2}..${ET_MAX})`);
    assert.equal(net.nodes[0]!.core.isLeader, false);
  });

  it('a removed leader with no voter to hand over to steps down after the transfer expires', () => {
    const net = membershipNet([0, 1, 2], 3);
    elect(net, 0);
    change(net, 0, [{ type: 'remove', id: 0 }]);
    // Every message delivered until the change commits, then the others fall silent.
    until(net, () => net.nodes[0]!.core.status(false).transferTarget >= 0 || !net.nodes[0]!.core.isLeader);
    for (let i = 0; i < 3 * ET_MAX && net.nodes[0]!.core.isLeader; i++) {
      net.nodes[0]!.tick();
      deliver(net, cut([1, 2]));
    }
    assert.equal(net.nodes[0]!.core.isLeader, false, 'it stopped leading');
  });

  it('the configuration in effect is the latest in the log, and a truncated one is undone', () => {
    const net = membershipNet([0, 1, 2], 4);
    elect(net, 0);
    net.nodes[0]!.propose(bytes('a'));
    deliver(net);
    // The leader appends a change that reaches only node 1, then loses leadership to node 2.
    change(net, 0, [{ type: 'add-learner', id: 3 }]);
    deliver(net, (m) => m.to !== 2 && m.from !== 2 && m.to !== 3 && !(m.type === 'AppendEntriesReply'));
    assert.deepEqual(membershipOf(net, 1).learners, [3], 'uncommitted, yet in effect on node 1');
    assert.ok(commitOf(net, 1) < net.nodes[1]!.core.status(false).lastIndex);
    // Node 0 is cut off: node 1 (which has the entry) is the only one that can win, and keeps the change.
    until(net, () => net.nodes[1]!.core.isLeader || net.nodes[2]!.core.isLeader, cut([0, 3]));
    const leader = net.nodes[1]!.core.isLeader ? 1 : 2;
    deliver(net, cut([0, 3]));
    assert.deepEqual(membershipOf(net, leader).learners, [3], 'the new leader (with the entry) commits the change');
    assert.ok(commitOf(net, leader) >= net.nodes[leader]!.core.status(false).membershipIndex);
  });

  it('a configuration overwritten by a new leader is undone on the follower that had it', () => {
    const net = membershipNet([0, 1, 2], 4);
    elect(net, 0);
    net.nodes[0]!.propose(bytes('a'));
    deliver(net);
    // Node 0 appends a change nobody receives; node 1 leads the next term and writes over it.
    change(net, 0, [{ type: 'add-learner', id: 3 }]);
    net.inflight.length = 0;
    assert.deepEqual(membershipOf(net, 0).learners, [3]);
    until(net, () => net.nodes[1]!.core.isLeader || net.nodes[2]!.core.isLeader, cut([0]));
    const leader = net.nodes[1]!.core.isLeader ? 1 : 2;
    net.nodes[leader]!.propose(bytes('b'));
    deliver(net);
    until(net, () => net.nodes[0]!.core.status(false).commitIndex === net.nodes[leader]!.core.status(false).commitIndex);
    assert.deepEqual(membershipOf(net, 0).learners, [], 'the truncated configuration no longer counts');
  });

  it('a snapshot carries the configuration to a learner that joins after compaction', () => {
    const net = membershipNet([0, 1, 2], 4);
    elect(net, 0);
    change(net, 0, [{ type: 'add-learner', id: 3, address: 'addr-3' }]);
    deliver(net, cut([3]));
    for (let i = 0; i < 5; i++) net.nodes[0]!.propose(bytes(`v${i}`));
    deliver(net, cut([3]));
    const applied = net.nodes[0]!.core.status(false).appliedIndex;
    net.nodes[0]!.input((core) => core.snapshot(applied, bytes('state')));
    assert.deepEqual(net.nodes[0]!.disk.snapshot?.membership?.learners, [3], 'the snapshot records the configuration at its index');
    until(net, () => net.nodes[3]!.core.status(false).snapshotIndex === applied);
    const m = membershipOf(net, 3);
    assert.deepEqual(m.voters, [0, 1, 2]);
    assert.deepEqual(m.learners, [3]);
    assert.deepEqual(m.addresses, [{ id: 3, address: 'addr-3' }]);
    // And after a restart from disk.
    net.nodes[3]!.restart();
    assert.deepEqual(net.nodes[3]!.core.membership().learners, [3]);
  });

  it('a reply from a node no configuration names is dropped; a request from one is answered', () => {
    const net = membershipNet([0, 1, 2], 4);
    elect(net, 0);
    const before = commitOf(net, 0);
    net.nodes[0]!.step({ type: 'AppendEntriesReply', from: 9, to: 0, term: net.nodes[0]!.core.term, success: true, prevLogIndex: 0, matchIndex: 0, conflictTerm: 0, conflictIndex: 0, lastLogIndex: 0, readContext: 0 });
    assert.equal(net.nodes[0]!.core.droppedMessages().get('unknown-sender'), 1, 'we never asked node 9 anything');
    assert.equal(commitOf(net, 0), before);
    // A request may come from a member added after the end of our log: it is answered.
    net.inflight.length = 0;
    net.nodes[1]!.step({ type: 'RequestVote', from: 9, to: 1, term: 1, lastLogIndex: 0, lastLogTerm: 0 });
    assert.equal(net.nodes[1]!.core.droppedMessages().get('unknown-sender'), 0);
    assert.ok(net.inflight.some((m) => m.type === 'RequestVoteReply' && m.to === 9 && !m.voteGranted));
  });

  it('a node whose log lacks the member that now leads catches up from it', () => {
    const net = membershipNet([0, 1, 2], 4);
    elect(net, 0);
    change(net, 0, [{ type: 'add-learner', id: 3 }]);
    const settled = (): boolean => !isJoint(membershipOf(net, 0)) && commitOf(net, 0) >= net.nodes[0]!.core.status(false).membershipIndex;
    until(net, settled, cut([2]));
    change(net, 0, [{ type: 'promote', id: 3 }]);
    until(net, () => settled() && membershipOf(net, 0).voters.includes(3), cut([2]));
    // Node 2 was cut off throughout: its log names neither node 3 nor the changes. Node 3 takes over.
    net.nodes[0]!.input((core) => core.transferLeadership(3));
    until(net, () => net.nodes[3]!.core.isLeader, cut([2]));
    const leader = 3;
    net.nodes[leader]!.propose(bytes('after'));
    until(net, () => net.nodes[2]!.core.status(false).commitIndex === commitOf(net, leader) && commitOf(net, leader) > 0);
    assert.deepEqual(membershipOf(net, 2).voters, membershipOf(net, leader).voters);
  });

  it('a voter whose removal is appended but not committed still campaigns', () => {
    const net = membershipNet([0, 1], 2);
    elect(net, 0);
    // Node 0 removes itself; the joint configuration {1} + {0,1} reaches node 1, the final {1} does not.
    change(net, 0, [{ type: 'remove', id: 0 }]);
    deliver(net, (m) => !(m.type === 'AppendEntries' && m.entries.some((e) => e.membership !== undefined && !isJoint(e.membership))));
    assert.ok(isJoint(membershipOf(net, 1)));
    assert.deepEqual(membershipOf(net, 0).voters, [1]);
    // Node 0 crashes before anyone hears more; on restart its latest (uncommitted) configuration excludes it.
    net.nodes[0]!.restart();
    net.inflight.length = 0;
    // Node 1 cannot win without node 0's vote (joint: a majority of {0,1}), and node 0's log is longer.
    until(net, () => net.nodes[0]!.core.isLeader || net.nodes[1]!.core.isLeader);
    until(net, () => net.nodes[1]!.core.isLeader && !isJoint(membershipOf(net, 1)) && commitOf(net, 1) >= net.nodes[1]!.core.status(false).membershipIndex);
    assert.deepEqual(membershipOf(net, 1).voters, [1]);
  });

  it('a single voter elected within one Ready sends nothing before its term is durable', () => {
    const net = membershipNet([0], 2);
    const node = net.nodes[0]!;
    node.input((core) => core.proposeMembership([]));
    for (let i = 0; i < ET_MAX && !node.core.isLeader; i++) node.tick();
    assert.ok(node.core.isLeader);
    change(net, 0, [{ type: 'add-learner', id: 1 }]);
    deliver(net);
    // Now force a new election of the single voter: step down through a higher term from the learner.
    node.step({ type: 'RequestVote', from: 1, to: 0, term: node.core.term + 1, lastLogIndex: 0, lastLogTerm: 0 });
    const readys = node.tick(2 * ET_MAX);
    const won = readys.find((r) => r.hardState !== null && [...r.messagesBeforePersist, ...r.messages].some((m) => m.type === 'AppendEntries'));
    assert.ok(won !== undefined, 'the election and the first AppendEntries share a Ready');
    assert.equal(won.messagesBeforePersist.filter((m) => m.type === 'AppendEntries').length, 0, 'no AppendEntries leaves before the new term is durable');
  });

});
