/**
 * Leadership over HTTP, with KvServers in this process (FileStorage in temporary directories,
 * TcpTransport and HTTP on 127.0.0.1): POST /v1/leader/transfer (to a named member, to the default
 * choice, a follower's redirect before any body is read, bad targets, a target that cannot take
 * over), GET /readyz next to /healthz, the status and metrics that report transfers, and
 * KvServer.stop() on a leader handing over while its HTTP API still answers. Every wait is bounded;
 * every server and directory is cleaned up even when an assertion fails.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KvClient } from '../../src/kv/client.js';
import { KvCluster, raw, rawExchange, sleep, TIMING, waitFor, type KvClusterOptions, type Raw } from './kv-cluster-fixture.js';

/** The clusters here: a stop() that fails on one member still stops the others, and is not a failure. */
const CLUSTER: KvClusterOptions = { prefix: 'tsraft-leadership-', ignoreStopErrors: true };

function error(r: Raw): { code?: unknown; message?: unknown; leaderId?: unknown } {
  return (r.json['error'] as { code?: unknown; message?: unknown; leaderId?: unknown } | undefined) ?? {};
}

const transfer = (url: string, query = ''): Promise<Raw> => raw(`${url}/v1/leader/transfer${query}`, { method: 'POST' });

describe('HTTP leadership transfer, /readyz and KvServer.stop() on a 3-node cluster', { timeout: 120_000 }, () => {
  let cluster: KvCluster;

  before(async () => {
    cluster = await KvCluster.start({ ...CLUSTER, size: 3 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it('POST /v1/leader/transfer?to=<id> on the leader moves leadership there and answers with the new leader', async () => {
    const leader = await cluster.leader();
    const target = (leader + 1) % 3;
    const termBefore = cluster.servers[leader]!.status().term;
    const r = await transfer(cluster.url(leader), `?to=${target}`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json, { leaderId: target, leaderUrl: cluster.url(target), previousLeaderId: leader, term: r.json['term'] });
    assert.ok((r.json['term'] as number) > termBefore, `term ${String(r.json['term'])} after ${termBefore}`);
    // The answer comes once the new leader is known: it leads already, and the old one follows it.
    assert.equal(cluster.servers[target]!.status().role, 'leader', cluster.describe());
    assert.equal(cluster.servers[leader]!.status().leaderId, target);
    assert.equal(cluster.servers[leader]!.status().transferTarget, null);
    // Writes go on (through the old leader's URL: a redirect now).
    const client = new KvClient({ endpoints: [cluster.url(leader)], timeoutMs: 10_000 });
    await client.put('after-transfer', '1');
    assert.equal(await client.get('after-transfer'), '1');
    // Counted on the node that handed over.
    const metrics = await (await fetch(`${cluster.url(leader)}/metrics`)).text();
    assert.ok(Number(/\ntsraft_leader_transfers_total\{outcome="moved"\} (\d+)/.exec(metrics)?.[1]) >= 1, metrics);
    assert.match(metrics, /\ntsraft_quorum_lost_total \d+\n/);
    assert.match(metrics, /\ntsraft_leader_transferring 0\n/);
  });

  it('without ?to, the leader hands over to a follower of its choice', async () => {
    const leader = await cluster.leader();
    const r = await transfer(cluster.url(leader));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const to = r.json['leaderId'] as number;
    assert.notEqual(to, leader);
    assert.ok([0, 1, 2].includes(to));
    assert.equal(r.json['previousLeaderId'], leader);
    assert.equal(r.json['leaderUrl'], cluster.url(to));
    assert.equal(cluster.servers[to]!.status().role, 'leader', cluster.describe());
    // Status reports the fields (nothing in progress now).
    const status = await new KvClient({ endpoints: [cluster.url(leader)] }).status(cluster.url(leader));
    assert.equal(status.transferTarget, null);
    assert.equal(typeof status.quorumLost, 'number');
  });

  it('a follower redirects (307) to the leader before reading any body, and changes nothing', async () => {
    const leader = await cluster.leader();
    const follower = (leader + 1) % 3;
    const other = (leader + 2) % 3;
    const r = await transfer(cluster.url(follower), `?to=${other}`);
    assert.equal(r.status, 307);
    assert.equal(r.headers.get('location'), `${cluster.url(leader)}/v1/leader/transfer?to=${other}`);
    assert.equal(error(r).code, 'not-leader');
    assert.equal(error(r).leaderId, leader);
    // A body that never comes is not waited for.
    const port = Number(new URL(cluster.url(follower)).port);
    const exchange = rawExchange(port, 'POST /v1/leader/transfer HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n');
    try {
      assert.match(await exchange.response(/\r\n\r\n\{.*\}$/s), /^HTTP\/1\.1 307 [^]*"code":"not-leader"/);
    } finally {
      exchange.socket.destroy();
    }
    assert.equal(cluster.servers[leader]!.status().role, 'leader', 'a redirect moves nothing');
    // Only POST.
    const get = await raw(`${cluster.url(leader)}/v1/leader/transfer`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
  });

  it('a bad ?to is 400 naming the members; ?to=<the leader> answers at once, moving nothing', async () => {
    const leader = await cluster.leader();
    for (const [query, pattern] of [
      ['?to=7', /node 7 is not a member of this cluster \(the members are 0, 1, 2; this is node \d\)/],
      ['?to=abc', /to must be a member id, got "abc" \(the members are 0, 1, 2/],
      ['?to=-1', /to must be a member id/],
    ] as const) {
      for (const node of [leader, (leader + 1) % 3]) {
        const r = await transfer(cluster.url(node), query);
        assert.equal(r.status, 400, `${query} on node ${node}: ${JSON.stringify(r.json)}`);
        assert.equal(error(r).code, 'bad-parameter');
        assert.match(String(error(r).message), pattern);
      }
    }
    const unknown = await transfer(cluster.url(leader), '?target=1');
    assert.equal(unknown.status, 400);
    assert.equal(error(unknown).code, 'unknown-parameter');
    const self = await transfer(cluster.url(leader), `?to=${leader}`);
    assert.equal(self.status, 200, JSON.stringify(self.json));
    assert.equal(self.json['leaderId'], leader);
    assert.equal(self.json['previousLeaderId'], leader);
    assert.equal(cluster.servers[leader]!.status().role, 'leader');
  });

  it('/readyz answers 200 on every member of a cluster with a leader; /healthz too', async () => {
    const leader = await cluster.leader();
    await waitFor('every member to know the leader', 5_000, () => cluster.servers.every((s) => s!.status().leaderId === leader));
    for (let id = 0; id < 3; id++) {
      const r = await raw(`${cluster.url(id)}/readyz`);
      assert.equal(r.status, 200, `node ${id}: ${JSON.stringify(r.json)}`);
      assert.deepEqual(r.json, { ok: true, leaderId: leader, isLeader: id === leader });
      assert.equal((await raw(`${cluster.url(id)}/healthz`)).status, 200);
    }
    assert.equal((await raw(`${cluster.url(leader)}/readyz`, { method: 'POST' })).status, 405);
  });

  it('a target that cannot take over: 504 transfer-timeout, and the old leader takes writes again', async () => {
    const leader = await cluster.leader();
    const gone = (leader + 1) % 3;
    await cluster.stopServer(gone);
    try {
      const started = Date.now();
      const r = await transfer(cluster.url(leader), `?to=${gone}`);
      assert.equal(r.status, 504, JSON.stringify(r.json));
      assert.equal(error(r).code, 'transfer-timeout');
      assert.match(String(error(r).message), new RegExp(`node ${leader} still leads and takes writes again`));
      assert.equal(error(r).leaderId, leader);
      assert.ok(Date.now() - started < 5_000);
      const client = new KvClient({ endpoints: [cluster.url(leader)], timeoutMs: 5_000 });
      await client.put('after-failed-transfer', 'ok');
      const metrics = await (await fetch(`${cluster.url(leader)}/metrics`)).text();
      assert.ok(Number(/\ntsraft_leader_transfers_total\{outcome="timeout"\} (\d+)/.exec(metrics)?.[1]) >= 1, metrics);
    } finally {
      await cluster.startServer(gone);
    }
  });

  it('KvServer.stop() on the leader hands over while its HTTP API still answers; the others know the new leader when it resolves', async () => {
    const leader = await cluster.leader();
    const others = [0, 1, 2].filter((id) => id !== leader);
    // A client writing all along, through every member.
    const client = new KvClient({ endpoints: cluster.peers.map((p) => p.httpUrl), timeoutMs: 10_000 });
    let writing = true;
    let written = 0;
    const failures: unknown[] = [];
    const writer = (async () => {
      for (let i = 0; writing && i < 100_000; i++) {
        try {
          await client.put(`during-stop-${i % 50}`, String(i));
          written++;
        } catch (e) {
          failures.push(e);
        }
      }
    })();
    try {
      await waitFor('some writes', 5_000, () => written >= 20);
      // A write whose headers reached the leader before stop(), and whose body arrives right after.
      const port = Number(new URL(cluster.url(leader)).port);
      const exchange = rawExchange(port, 'PUT /v1/kv/straddling-stop HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n');
      try {
        await sleep(100); // the headers are in: the handler waits for the body
        const stopping = cluster.servers[leader]!.stop();
        // The body arrives only once leadership has moved on: stop() is closing HTTP by then, and
        // must still answer a request that was already in rather than cut it off.
        await waitFor('the leader to hand over', 5_000, () => cluster.servers[leader]!.status().role !== 'leader');
        exchange.socket.write('x');
        // Answered (not cut off): refused while the leader hands over, never proposed, safe to retry.
        const response = await exchange.response(/\r\n\r\n\{.*\}$/s);
        assert.match(response, /^HTTP\/1\.1 (503 [^]*"code":"leader-transfer"|307 [^]*"code":"not-leader")/, response);
        await stopping;
      } finally {
        exchange.socket.destroy();
      }
      cluster.servers[leader] = null;
      // Handed over: a leader among the others already, and the other one hears of it well within an election timeout.
      const newLeader = others.find((id) => cluster.servers[id]!.status().role === 'leader');
      assert.ok(newLeader !== undefined, `no leader right after stop() resolved:\n${cluster.describe()}`);
      await waitFor('both others to know the new leader', 200, () => others.every((id) => cluster.servers[id]!.status().leaderId === newLeader), () => cluster.describe());
      await waitFor('more writes after the stop', 10_000, () => written >= 40 || failures.length > 0);
    } finally {
      writing = false;
      await writer;
    }
    assert.deepEqual(failures, [], 'no write failed');
    await cluster.startServer(leader);
  });
});

describe('/readyz without a leader: one member of a 3-node cluster, started alone', { timeout: 30_000 }, () => {
  let cluster: KvCluster;
  before(async () => {
    cluster = await KvCluster.start({ ...CLUSTER, size: 3, running: 1 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it('answers /readyz 503 no-leader while /healthz (liveness) stays 200; a transfer request 503 no-leader', async () => {
    await sleep(2 * TIMING.electionTimeoutMaxMs); // it has campaigned, and cannot win
    const url = cluster.url(0);
    const ready = await raw(`${url}/readyz`);
    assert.equal(ready.status, 503, JSON.stringify(ready.json));
    assert.equal(error(ready).code, 'no-leader');
    assert.equal(ready.headers.get('retry-after'), '1');
    assert.deepEqual((await raw(`${url}/healthz`)).json, { ok: true });
    const t = await transfer(url, '?to=1');
    assert.equal(t.status, 503);
    assert.equal(error(t).code, 'no-leader');
  });
});
