/**
 * Check-quorum and leadership transfer in the core: a leader that hears from no majority steps
 * down (also one that can send but not receive, which pre-vote would otherwise keep in office
 * forever), and a leader hands over to a member it brought up to date with TimeoutNow.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Message } from '../../src/core/messages.js';
import { bytes, core, deliver, elect, ET_MAX, ET_MIN, flush, makeNet, type Net } from './core-fixtures.js';

/** Ticks every node `n` times, delivering what `allow` lets through after each tick. */
function run(net: Net, n: number, allow: (m: Message) => boolean = () => true): void {
  for (let i = 0; i < n; i++) {
    for (const node of net.nodes) node.tick();
    deliver(net, allow);
  }
}

const leaders = (net: Net): number[] => net.nodes.filter((n) => n.core.isLeader).map((n) => n.id);

describe('check-quorum', () => {
  test('a leader cut off from every follower steps down within two windows; without check-quorum it never does', () => {
    for (const checkQuorum of [true, false]) {
      const net = makeNet(3, { config: { checkQuorum } });
      elect(net, 0);
      const isolated = (m: Message): boolean => m.from !== 0 && m.to !== 0;
      run(net, 2 * ET_MIN + 1, isolated);
      if (checkQuorum) {
        assert.equal(core(net, 0).isLeader, false, 'the isolated leader still claims to lead');
        assert.equal(core(net, 0).status().leaderId, -1);
        assert.equal(core(net, 0).status().quorumLost, 1);
      } else {
        assert.equal(core(net, 0).isLeader, true);
      }
    }
  });

  test('a leader that can send but not receive steps down, and the others elect a new leader (pre-vote on)', () => {
    for (const checkQuorum of [true, false]) {
      const net = makeNet(3, { preVote: true, config: { checkQuorum } });
      elect(net, 0);
      core(net, 0).propose(bytes('x'));
      deliver(net);
      // Node 0 hears nothing; its heartbeats still reach the followers, who therefore refuse every
      // pre-vote while it is in office.
      const deaf = (m: Message): boolean => m.to !== 0;
      run(net, 6 * ET_MAX, deaf);
      const others = leaders(net).filter((id) => id !== 0);
      if (checkQuorum) {
        assert.equal(core(net, 0).isLeader, false);
        assert.equal(others.length, 1, `no new leader: ${JSON.stringify(net.nodes.map((n) => n.core.status().role))}`);
      } else {
        assert.deepEqual(others, [], 'without check-quorum the deaf leader blocks every election');
      }
    }
  });

  test('a leader that hears from a majority stays, across many windows', () => {
    const net = makeNet(5, { config: { checkQuorum: true } });
    elect(net, 0);
    // Two of four followers are gone: the leader and two others are a majority of five.
    run(net, 10 * ET_MIN, (m) => m.from !== 3 && m.to !== 3 && m.from !== 4 && m.to !== 4);
    assert.equal(core(net, 0).isLeader, true);
    assert.equal(core(net, 0).status().quorumLost, 0);
  });
});

describe('leadership transfer', () => {
  test('the leader brings the target up to date, then TimeoutNow makes it leader in the next term', () => {
    const net = makeNet(3);
    elect(net, 0);
    const term = core(net, 0).term;
    // Node 2 misses three entries (1..3: a new leader appends no entry of its own).
    for (const c of ['a', 'b', 'c']) core(net, 0).propose(bytes(c));
    deliver(net, (m) => m.to !== 2);
    assert.equal(core(net, 2).status().lastIndex < core(net, 0).status().lastIndex, true);
    net.nodes[0]!.input((c) => assert.equal(c.transferLeadership(2), true));
    assert.equal(core(net, 0).status().transferTarget, 2);
    assert.equal(core(net, 0).propose(bytes('refused')), null, 'proposals wait while the target catches up');
    deliver(net);
    assert.deepEqual(leaders(net), [2]);
    assert.equal(core(net, 2).term, term + 1);
    assert.equal(core(net, 2).status().lastIndex, 3, 'the new leader holds every entry');
  });

  test('a transfer to an unreachable target is abandoned after a maximum election timeout; proposals resume', () => {
    const net = makeNet(3);
    elect(net, 0);
    const cut = (m: Message): boolean => m.from !== 2 && m.to !== 2;
    net.nodes[0]!.input((c) => assert.equal(c.transferLeadership(2), true));
    run(net, ET_MAX - 1, cut);
    assert.equal(core(net, 0).status().transferTarget, 2);
    run(net, 2, cut);
    assert.equal(core(net, 0).status().transferTarget, -1);
    assert.equal(core(net, 0).isLeader, true);
    assert.notEqual(core(net, 0).propose(bytes('again')), null);
  });

  test('transferLeadership refuses a follower caller, itself and strangers', () => {
    const net = makeNet(3);
    elect(net, 0);
    flush(net);
    net.nodes[1]!.input((c) => assert.equal(c.transferLeadership(2), false));
    net.nodes[0]!.input((c) => {
      assert.equal(c.transferLeadership(0), false);
      assert.equal(c.transferLeadership(7), false);
    });
  });

  test('a TimeoutNow from a node that is not our leader is dropped and counted', () => {
    const net = makeNet(3);
    elect(net, 0);
    const term = core(net, 1).term;
    net.nodes[1]!.step({ type: 'TimeoutNow', from: 2, to: 1, term });
    assert.equal(core(net, 1).droppedMessages().get('second-leader'), 1);
    assert.equal(core(net, 1).term, term, 'no election');
  });
});

describe('leadership transfer to an unresponsive member', () => {
  test('is refused at once, and proposals are never held up', () => {
    const net = makeNet(3);
    elect(net, 0);
    const cut = (m: Message): boolean => m.from !== 2 && m.to !== 2;
    run(net, ET_MIN + 2, cut); // node 2 has not answered for longer than a minimum election timeout
    net.nodes[0]!.input((c) => assert.equal(c.transferLeadership(2), false));
    assert.equal(core(net, 0).status().transferTarget, -1);
    assert.notEqual(core(net, 0).propose(bytes('still taken')), null);
    net.nodes[0]!.input((c) => assert.equal(c.transferLeadership(1), true, 'a responsive member is accepted'));
  });
});

test('the default transfer target is a follower heard from lately, even if a silent one is further along', () => {
  const net = makeNet(3);
  elect(net, 0);
  for (const c of ['a', 'b']) core(net, 0).propose(bytes(c));
  deliver(net, (m) => m.from !== 1 && m.to !== 1); // node 2 holds everything, node 1 nothing
  assert.equal(core(net, 0).transferCandidate(), 2);
  run(net, ET_MIN + 2, (m) => m.from !== 2 && m.to !== 2); // now node 2 falls silent, node 1 catches up
  assert.equal(core(net, 0).transferCandidate(), 1);
  run(net, ET_MIN + 2, (m) => m.from === 0 && m.to === 0); // nobody answers
  assert.equal(core(net, 0).transferCandidate(), undefined);
});
