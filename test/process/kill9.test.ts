/**
 * Three tsraft nodes as separate OS processes with FileStorage and TcpTransport on loopback.
 * Clients propose continuously while a node (the leader every other time) is killed with SIGKILL
 * and restarted; afterwards every acknowledged entry must be applied on every node, at the index
 * it was acknowledged with, and all logs must agree. `npm run soak:process` runs it longer.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RaftProcessCluster } from '../../src/testing/process-cluster.js';

test('kill -9 during heavy proposing loses no acknowledged entry', { timeout: 90_000 }, async () => {
  const cluster = await RaftProcessCluster.start(3);
  try {
    const report = await cluster.runLoad({ seconds: 8, concurrency: 16, killEveryMs: 2500, downMs: 500 });
    assert.deepEqual(report.problems, []);
    assert.ok(report.kills >= 2, `expected at least 2 kills, got ${report.kills}`);
    assert.ok(report.acknowledged > 200, `expected real load, got ${report.acknowledged} acknowledged entries`);
  } finally {
    await cluster.stop();
  }
});
