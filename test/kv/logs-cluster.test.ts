/**
 * The log lines of a live 3-node KV cluster in this process (JSON loggers, one per node): an
 * election with its term and winner, a leader change once the leader stops, snapshots taken and
 * installed, and an applied membership change.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { NodeId } from '../../src/core/messages.js';
import { createLogger } from '../../src/runtime/logger.js';
import { KvServer, type KvPeer } from '../../src/kv/server.js';
import { freeLoopbackPorts } from '../../src/testing/ports.js';
import { TIMING, waitFor } from './kv-cluster-fixture.js';

interface Record {
  readonly time: string;
  readonly level: string;
  readonly node: number | null;
  readonly msg: string;
  readonly [field: string]: unknown;
}

test('a cluster logs its elections, leader changes, snapshots and membership changes', { timeout: 20_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'tsraft-logs-'));
  const ports = await freeLoopbackPorts(8);
  // Nodes 0-2 found the cluster; node 3 joins it later as a learner.
  const peers: KvPeer[] = [0, 1, 2, 3].map((id) => ({ id, raftHost: '127.0.0.1', raftPort: ports[id]!, httpUrl: `http://127.0.0.1:${ports[4 + id]!}` }));
  const founders = peers.slice(0, 3);
  const records: Record[] = [];
  const servers: (KvServer | null)[] = [null, null, null, null];
  const start = async (id: NodeId): Promise<void> => {
    servers[id] = await KvServer.start({
      id,
      peers: founders,
      ...(id === 3 ? { learners: [peers[3]!] } : {}),
      dataDir: join(root, `node-${id}`),
      httpListen: { host: '127.0.0.1', port: ports[4 + id]! },
      timing: TIMING,
      fsync: false,
      requestTimeoutMs: 2_000,
      // Small, so that a few writes make snapshots.
      maxRaftStateBytes: 4096,
      logger: createLogger({
        node: id,
        format: 'json',
        level: 'debug',
        write: (line) => {
          assert.ok(!line.includes('\n'), line);
          records.push(JSON.parse(line) as Record);
        },
      }),
    });
  };
  const find = (predicate: (r: Record) => boolean): Record | undefined => records.find(predicate);
  const dump = (): string =>
    [
      ...records.map((r) => `${r.node} ${r.level} ${String(r.component ?? '')} ${JSON.stringify(r)}`),
      ...servers.map((s, id) => (s === null ? `node ${id}: down` : `node ${id}: ${JSON.stringify({ ...s.status(), peers: undefined })}`)),
    ].join('\n');
  const leaderOf = (): NodeId | undefined => servers.find((s) => s !== null && s.status().role === 'leader' && !s.status().stopped)?.id;
  const put = async (leader: NodeId, key: string, value: string): Promise<void> => {
    const response = await fetch(`${peers[leader]!.httpUrl}/v1/kv/${key}`, { method: 'PUT', body: value, redirect: 'follow', signal: AbortSignal.timeout(5_000) });
    assert.equal(response.status, 200, await response.text());
  };
  try {
    for (const id of [0, 1, 2]) await start(id);

    // An election: the winner says its term and votes; the others name it as their leader.
    const first = await waitFor('a leader', 10_000, leaderOf, dump);
    const won = await waitFor('the winner\'s line', 5_000, () => find((r) => r.node === first && r.msg === 'election won: this node leads'), dump);
    assert.equal(won.level, 'info');
    assert.equal(won.component, 'raft');
    assert.equal(typeof won.term, 'number');
    assert.ok(Array.isArray(won.votes) && won.votes.length >= 2 && won.votes.includes(first), JSON.stringify(won));
    assert.ok(find((r) => r.node === first && r.msg === 'campaign started' && r.term === won.term), dump());
    for (const other of [0, 1, 2].filter((id) => id !== first)) {
      await waitFor(`node ${other} naming the leader`, 5_000, () => find((r) => r.node === other && r.leader === first && r.term === won.term && r.msg === `leader is node ${first}`), dump);
    }

    // Snapshots: enough writes pass maxRaftStateBytes on every node.
    for (let i = 0; i < 40; i++) await put(first, `k${i}`, 'v'.repeat(200));
    const taken = await waitFor('a snapshot taken', 5_000, () => find((r) => r.msg === 'snapshot taken'), dump);
    assert.ok(typeof taken.index === 'number' && taken.index > 0 && typeof taken.bytes === 'number' && taken.bytes > 0, JSON.stringify(taken));

    // The leader stops (handing over): a new leader is logged by the others, in a newer term.
    await servers[first]!.stop();
    servers[first] = null;
    const second = await waitFor('a new leader', 10_000, leaderOf, dump);
    assert.notEqual(second, first);
    const wonAgain = await waitFor('the new winner\'s line', 5_000, () => find((r) => r.node === second && r.msg === 'election won: this node leads' && (r.term as number) > (won.term as number)), dump);
    const survivor = [0, 1, 2].find((id) => id !== first && id !== second)!;
    await waitFor('the survivor naming the new leader', 5_000, () => find((r) => r.node === survivor && r.leader === second && r.term === wonAgain.term), dump);

    // A membership change: node 3 joins as a learner. The leader's log was compacted long ago, so
    // the newcomer gets a snapshot; every member logs the configuration it applies.
    await start(3);
    const added = await fetch(`${peers[second]!.httpUrl}/v1/members`, {
      method: 'POST',
      body: JSON.stringify({ id: 3, raft: `127.0.0.1:${peers[3]!.raftPort}`, http: peers[3]!.httpUrl }),
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal(added.status, 200, await added.text());
    const applied = await waitFor('the configuration applied', 5_000, () => find((r) => r.node === second && r.msg === 'configuration applied' && Array.isArray(r.learners) && r.learners.includes(3)), dump);
    assert.deepEqual(applied.voters, [0, 1, 2]);
    assert.equal(applied.level, 'info');
    const installed = await waitFor('a snapshot installed', 10_000, () => find((r) => r.node === 3 && r.msg === 'snapshot installed from the leader'), dump);
    assert.ok(typeof installed.index === 'number' && installed.index > 0 && typeof installed.bytes === 'number' && installed.bytes > 0, JSON.stringify(installed));

    // Every record has the four keys, an ISO time and a known level.
    for (const r of records) {
      assert.match(r.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(['debug', 'info', 'warn', 'error'].includes(r.level));
      assert.ok(typeof r.node === 'number' && typeof r.msg === 'string');
    }
  } finally {
    for (const server of servers) await server?.stop().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  }
});
