/**
 * Three RaftNodes in one process with FileStorage (fsync on) and TcpTransport on loopback: elect,
 * commit 10,000 entries, stop the leader, see a new leader within the election-timeout bound,
 * restart the old leader on its data directory and watch it catch up.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeId } from '../../src/core/messages.js';
import { NotLeaderError } from '../../src/runtime/errors.js';
import { LocalCluster } from '../../src/testing/local-cluster.js';

const TIMING = { heartbeatMs: 50, electionTimeoutMinMs: 300, electionTimeoutMaxMs: 600 };

test('elect, commit 10,000 entries, fail over, restart and catch up', { timeout: 120_000 }, async () => {
  const applied = new Map<NodeId, number>();
  const cluster = await LocalCluster.start({
    size: 3,
    timing: TIMING,
    onApply: (id, entry) => applied.set(id, entry.index),
  });
  try {
    const leader = await cluster.waitForLeader();
    const leaderNode = cluster.nodes[leader]!;
    // 10,000 entries of 100 bytes from 64 concurrent proposers.
    const payload = new Uint8Array(100).fill(7);
    let next = 0;
    let committed = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < 10_000) {
          next++;
          await leaderNode.propose(payload);
          committed++;
        }
      }),
    );
    assert.equal(committed, 10_000);
    const lastIndex = leaderNode.status().commitIndex;
    assert.ok(lastIndex >= 10_000);

    // Fail over: stop the leader; a new one must appear within the election timeout bound.
    const stoppedAt = performance.now();
    await cluster.stopNode(leader);
    const newLeader = await cluster.waitForLeader(5_000);
    const failoverMs = performance.now() - stoppedAt;
    assert.notEqual(newLeader, leader);
    assert.ok(
      failoverMs < TIMING.electionTimeoutMaxMs * 2,
      `new leader after ${failoverMs.toFixed(0)} ms, bound ${TIMING.electionTimeoutMaxMs * 2} ms`,
    );
    const follower = [0, 1, 2].find((id) => id !== newLeader && id !== leader)!;
    await assert.rejects(cluster.nodes[follower]!.propose(payload), (error: Error) => {
      assert.ok(error instanceof NotLeaderError);
      assert.equal(error.leaderId, newLeader);
      return true;
    });
    for (let i = 0; i < 100; i++) await cluster.nodes[newLeader]!.propose(payload);

    // Restart the old leader on its own directory: it recovers its log and catches up.
    const restarted = await cluster.startNode(leader);
    const target = cluster.nodes[newLeader]!.status().commitIndex;
    const deadline = Date.now() + 10_000;
    while (restarted.status().appliedIndex < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(restarted.status().appliedIndex >= target, `restarted node applied ${restarted.status().appliedIndex} of ${target}`);
    assert.ok(restarted.status().lastIndex >= lastIndex, 'the restarted node kept its log');
  } finally {
    await cluster.stop();
  }
});

test('RaftNode rejects bad configuration with every problem named', async () => {
  const { RaftNode } = await import('../../src/runtime/node.js');
  const { MemoryStorage } = await import('../../src/storage/memory.js');
  const { MemoryTransportHub } = await import('../../src/transport/memory.js');
  const hub = new MemoryTransportHub();
  await assert.rejects(
    RaftNode.start({
      id: 5,
      peers: [0, 1, 1],
      storage: new MemoryStorage(),
      transport: hub.create(5),
      timing: { heartbeatMs: 500, electionTimeoutMinMs: 600, electionTimeoutMaxMs: 400 },
    }),
    (error: Error) => {
      assert.equal(error.name, 'ConfigError');
      assert.match(error.message, /duplicates/);
      assert.match(error.message, /id 5 is not among peers/);
      assert.match(error.message, /electionTimeout/);
      return true;
    },
  );
});
