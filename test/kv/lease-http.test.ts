/**
 * Leases over HTTP end to end on one in-process 3-node cluster: grant, attach keys (PUT, POST
 * ?op=put, a transaction), the lease in reads, lookups, keep-alives, the list, a revoke deleting
 * every key at one revision on every member, the errors, exactly-once grants and a follower's
 * redirects; expiry without keep-alives and none with them; and, what the lease keeper exists
 * for, no early expiry across a leader change (a new leader restarts every lease at its full TTL)
 * and no expiry at all while keep-alives follow the leadership.
 *
 * Timing assertions are correctness bounds only: a key may not vanish before the earliest moment a
 * leader could have seen its lease expire (lower bounds, exact), and must vanish within generous
 * upper bounds.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeId } from '../../src/core/messages.js';
import { KvCluster, raw, readSse, sleep, waitFor, type Raw } from './kv-cluster-fixture.js';

type Json = Record<string, unknown>;

const JSON_HEADERS = { 'Content-Type': 'application/json' };

function grant(url: string, ttl: unknown, headers: Record<string, string> = {}): Promise<Raw> {
  return raw(`${url}/v1/leases`, { method: 'POST', headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify({ ttl }) });
}

function errorCode(r: Raw): unknown {
  return (r.json['error'] as Json | undefined)?.['code'];
}

/** Polls every member's own state (stale reads) until `key` is absent on all of them. */
async function goneEverywhere(cluster: KvCluster, key: string, timeoutMs: number): Promise<void> {
  await waitFor(
    `${key} deleted on every running member`,
    timeoutMs,
    async () => {
      for (const id of running(cluster)) {
        if ((await raw(`${cluster.url(id)}/v1/kv/${key}?stale=true`)).status !== 404) return false;
      }
      return true;
    },
    () => cluster.describe(),
  );
}

/** Waits until every running member has applied a write of `key` (a follower may lag the leader's answer). */
async function presentEverywhere(cluster: KvCluster, key: string): Promise<void> {
  for (const id of running(cluster)) {
    await waitFor(`${key} on node ${id}`, 5_000, async () => (await raw(`${cluster.url(id)}/v1/kv/${key}?stale=true`)).status === 200, () => cluster.describe());
  }
}

function running(cluster: KvCluster): NodeId[] {
  return cluster.members.filter((id) => cluster.servers[id] !== null);
}

/**
 * Polls `key` on `members` (stale reads) every ~100 ms until `until` (ms since the epoch) and
 * fails if it is absent at any poll: a poll's time is when its answer arrived, so an absent key
 * there means it was deleted before then.
 */
async function presentUntil(cluster: KvCluster, members: readonly NodeId[], key: string, until: number, why: string): Promise<number> {
  let polls = 0;
  while (Date.now() < until) {
    for (const id of members) {
      const r = await raw(`${cluster.url(id)}/v1/kv/${key}?stale=true`);
      const answeredAt = Date.now();
      if (r.status !== 200 && answeredAt < until) {
        assert.fail(`${key} is gone on node ${id} ${until - answeredAt} ms too early (${why}): ${JSON.stringify(r.json)}\n${cluster.describe()}`);
      }
    }
    polls++;
    await sleep(100);
  }
  return polls;
}

/**
 * Sends a keep-alive to whichever member answers (redirects followed, like a client with every
 * endpoint): the status of the first answer that is not about leadership (200, 404), or undefined
 * when no member could answer (an election, the leader just stopped).
 */
async function keepAliveAnywhere(cluster: KvCluster, id: number): Promise<number | undefined> {
  for (const member of running(cluster)) {
    try {
      const response = await fetch(`${cluster.url(member)}/v1/leases/${id}/keepalive`, { method: 'POST', signal: AbortSignal.timeout(3_000) });
      await response.text();
      if (response.status === 200 || response.status === 404) return response.status;
    } catch {
      // the redirect named a leader that just stopped, or this member is stopping: the next one
    }
  }
  return undefined;
}

describe('leases over HTTP on a real cluster', { timeout: 90_000 }, () => {
  let cluster: KvCluster;
  let leaderUrl: string;
  let followerUrl: string;

  before(async () => {
    cluster = await KvCluster.start({ prefix: 'tsraft-lease-' });
    const leader = await cluster.leader();
    leaderUrl = cluster.url(leader);
    followerUrl = cluster.url(cluster.members.find((id) => id !== leader)!);
  });
  after(async () => {
    await cluster.stop();
  });

  test('grant, attach, read, look up, keep alive, list, revoke at one revision; errors; exactly-once; redirects', async () => {
    const granted = await grant(leaderUrl, 30, { 'X-Client-Id': 'lease-test', 'X-Request-Seq': '1' });
    assert.equal(granted.status, 200, JSON.stringify(granted.json));
    const id = granted.json['id'] as number;
    assert.ok(Number.isSafeInteger(id) && id >= 1);
    assert.equal(granted.json['ttl'], 30);
    assert.equal(typeof granted.json['index'], 'number');
    assert.equal(granted.headers.get('x-tsraft-revision'), String(granted.json['revision']));
    // Exactly-once: the retry answers the first grant, and grants nothing more.
    const retried = await grant(leaderUrl, 30, { 'X-Client-Id': 'lease-test', 'X-Request-Seq': '1' });
    assert.equal(retried.status, 200);
    assert.deepEqual([retried.json['id'], retried.json['index']], [id, granted.json['index']]);
    const other = await grant(leaderUrl, 60, { 'X-Client-Id': 'lease-test', 'X-Request-Seq': '2' });
    assert.equal(other.status, 200);
    assert.equal(other.json['id'], id + 1);

    // Attach keys: PUT ?lease=, POST ?op=put&lease=, a transaction's put; l/d attached then detached by a plain put.
    assert.equal((await raw(`${leaderUrl}/v1/kv/l/a?lease=${id}`, { method: 'PUT', body: 'A' })).status, 200);
    assert.equal((await raw(`${leaderUrl}/v1/kv/l/b?op=put&lease=${id}`, { method: 'POST', body: 'B' })).status, 200);
    const txn = await raw(`${leaderUrl}/v1/txn`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ then: [{ put: { key: 'l/c', value: 'C', lease: id } }] }) });
    assert.equal(txn.status, 200, JSON.stringify(txn.json));
    assert.equal((await raw(`${leaderUrl}/v1/kv/l/d?lease=${id}`, { method: 'PUT', body: 'D' })).status, 200);
    assert.equal((await raw(`${leaderUrl}/v1/kv/l/d`, { method: 'PUT', body: 'D2' })).status, 200);

    const a = await raw(`${leaderUrl}/v1/kv/l/a`);
    assert.equal(a.status, 200);
    assert.equal(a.json['lease'], id);
    assert.equal('lease' in (await raw(`${leaderUrl}/v1/kv/l/d`)).json, false, 'a put without lease detaches the key');
    const range = await raw(`${leaderUrl}/v1/kv?prefix=l/`);
    assert.deepEqual(
      (range.json['kvs'] as Json[]).map((kv) => [kv['key'], kv['lease']]),
      [['l/a', id], ['l/b', id], ['l/c', id], ['l/d', undefined]],
    );
    const before = range.json['revision'] as number;

    const info = await raw(`${leaderUrl}/v1/leases/${id}?keys=true`);
    assert.equal(info.status, 200, JSON.stringify(info.json));
    assert.equal(info.json['id'], id);
    assert.equal(info.json['ttl'], 30);
    assert.equal(info.json['keyCount'], 3);
    assert.deepEqual(info.json['keys'], ['l/a', 'l/b', 'l/c']);
    assert.equal(info.json['encoding'], 'utf8');
    const remaining = info.json['remaining'] as number;
    assert.ok(remaining > 0 && remaining <= 30, `remaining ${remaining}`);
    assert.equal('keys' in (await raw(`${leaderUrl}/v1/leases/${id}`)).json, false);
    assert.deepEqual((await raw(`${leaderUrl}/v1/leases/${id}?keys=true&encoding=base64`)).json['keys'], ['l/a', 'l/b', 'l/c'].map((k) => Buffer.from(k).toString('base64')));

    const kept = await raw(`${leaderUrl}/v1/leases/${id}/keepalive`, { method: 'POST' });
    assert.equal(kept.status, 200, JSON.stringify(kept.json));
    assert.deepEqual([kept.json['id'], kept.json['ttl'], kept.json['revision']], [id, 30, before]);

    const list = await raw(`${leaderUrl}/v1/leases`);
    assert.equal(list.status, 200);
    assert.deepEqual(list.json['leases'], [
      { id, ttl: 30, keyCount: 3 },
      { id: id + 1, ttl: 60, keyCount: 0 },
    ]);

    // A follower redirects every lease route to the leader (a grant before reading its body).
    for (const [method, path] of [
      ['POST', '/v1/leases'],
      ['GET', '/v1/leases'],
      ['GET', `/v1/leases/${id}`],
      ['POST', `/v1/leases/${id}/keepalive`],
      ['DELETE', `/v1/leases/${id}`],
    ] as const) {
      const r = await raw(`${followerUrl}${path}`, method === 'POST' && path === '/v1/leases' ? { method, headers: JSON_HEADERS, body: '{"ttl":5}' } : { method });
      assert.equal(r.status, 307, `${method} ${path}: ${JSON.stringify(r.json)}`);
      assert.equal(r.headers.get('location'), `${leaderUrl}${path}`);
    }

    // The revoke deletes the three keys at one new revision, which a watch sees as one change.
    const watched = readSse(`${leaderUrl}/v1/watch?prefix=l/&from-revision=${before + 1}`, (m) => m.some((x) => x.event === 'events'));
    const revoked = await raw(`${leaderUrl}/v1/leases/${id}`, { method: 'DELETE' });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.json));
    assert.deepEqual([revoked.json['id'], revoked.json['ttl'], revoked.json['deleted'], revoked.json['revision']], [id, 30, 3, before + 1]);
    const events = (await watched).messages.filter((m) => m.event === 'events');
    assert.equal(events.length, 1);
    assert.equal(events[0]!.data['revision'], before + 1);
    assert.deepEqual((events[0]!.data['events'] as Json[]).map((e) => [e['type'], e['key']]), [
      ['delete', 'l/a'],
      ['delete', 'l/b'],
      ['delete', 'l/c'],
    ]);
    assert.equal((await raw(`${leaderUrl}/v1/kv/l/a`)).status, 404);
    await goneEverywhere(cluster, 'l/a', 5_000);
    for (const member of cluster.members) {
      await waitFor(`node ${member} at revision ${before + 1}`, 5_000, async () => (await raw(`${cluster.url(member)}/v1/kv/l/d?stale=true`)).json['revision'] === before + 1);
      for (const key of ['l/b', 'l/c']) assert.equal((await raw(`${cluster.url(member)}/v1/kv/${key}?stale=true`)).status, 404);
      assert.equal((await raw(`${cluster.url(member)}/v1/kv/l/d?stale=true`)).json['value'], 'D2', 'a detached key outlives the lease');
    }

    // The lease is gone for every route; a put or transaction naming it writes nothing.
    for (const [method, path] of [
      ['GET', `/v1/leases/${id}`],
      ['POST', `/v1/leases/${id}/keepalive`],
      ['DELETE', `/v1/leases/${id}`],
    ] as const) {
      const r = await raw(`${leaderUrl}${path}`, { method });
      assert.deepEqual([r.status, errorCode(r)], [404, 'lease-not-found'], `${method} ${path}: ${JSON.stringify(r.json)}`);
    }
    const put = await raw(`${leaderUrl}/v1/kv/l/x?lease=${id}`, { method: 'PUT', body: 'X' });
    assert.deepEqual([put.status, errorCode(put)], [404, 'lease-not-found']);
    assert.match((put.json['error'] as Json)['message'] as string, new RegExp(`lease ${id}`));
    const post = await raw(`${leaderUrl}/v1/kv/l/x?op=put&lease=999999`, { method: 'POST', body: 'X' });
    assert.deepEqual([post.status, errorCode(post)], [404, 'lease-not-found']);
    const badTxn = await raw(`${leaderUrl}/v1/txn`, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ then: [{ put: { key: 'l/y', value: 'Y' } }, { put: { key: 'l/x', value: 'X', lease: id } }] }),
    });
    assert.deepEqual([badTxn.status, errorCode(badTxn)], [404, 'lease-not-found']);
    for (const key of ['l/x', 'l/y']) assert.equal((await raw(`${leaderUrl}/v1/kv/${key}`)).status, 404, `${key} was written`);
    assert.equal((await raw(`${leaderUrl}/v1/kv/l/d`)).json['revision'], before + 1, 'a refused write took no revision');

    // Bad requests.
    for (const ttl of [0, -1, 1.5, '10', null, 9_000_000_001]) {
      const r = await grant(leaderUrl, ttl);
      assert.deepEqual([r.status, errorCode(r)], [400, 'bad-ttl'], `ttl ${String(ttl)}: ${JSON.stringify(r.json)}`);
    }
    const noTtl = await raw(`${leaderUrl}/v1/leases`, { method: 'POST', headers: JSON_HEADERS, body: '{}' });
    assert.deepEqual([noTtl.status, errorCode(noTtl)], [400, 'bad-ttl']);
    assert.equal((await raw(`${leaderUrl}/v1/leases`, { method: 'POST', body: 'ttl=5' })).status, 400);
    for (const bad of ['abc', '0', '-1', '1.5', '99999999999999999']) {
      const r = await raw(`${leaderUrl}/v1/leases/${bad}`);
      assert.deepEqual([r.status, errorCode(r)], [400, 'bad-lease-id'], `id ${bad}`);
    }
    const badParam = await raw(`${leaderUrl}/v1/kv/l/z?lease=abc`, { method: 'PUT', body: 'Z' });
    assert.deepEqual([badParam.status, errorCode(badParam)], [400, 'bad-parameter']);
    const append = await raw(`${leaderUrl}/v1/kv/l/z?op=append&lease=${id + 1}`, { method: 'POST', body: 'Z' });
    assert.deepEqual([append.status, errorCode(append)], [400, 'bad-parameter']);
    const txnBadLease = await raw(`${leaderUrl}/v1/txn`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ then: [{ put: { key: 'l/z', value: 'Z', lease: 0 } }] }) });
    assert.deepEqual([txnBadLease.status, errorCode(txnBadLease), (txnBadLease.json['error'] as Json)['field']], [400, 'bad-txn', 'then[0].put.lease']);
    const wrongMethod = await raw(`${leaderUrl}/v1/leases/${id}/keepalive`);
    assert.deepEqual([wrongMethod.status, wrongMethod.headers.get('allow')], [405, 'POST']);
    assert.equal((await raw(`${leaderUrl}/v1/leases/${id}/nothing`)).status, 404);

    // A retried revoke answers like the first, where a new one would find no lease.
    const session = { 'X-Client-Id': 'lease-test', 'X-Request-Seq': '3' };
    const first = await raw(`${leaderUrl}/v1/leases/${id + 1}`, { method: 'DELETE', headers: session });
    const again = await raw(`${leaderUrl}/v1/leases/${id + 1}`, { method: 'DELETE', headers: session });
    assert.deepEqual([first.status, first.json['deleted']], [200, 0]);
    assert.deepEqual(again.json, first.json);
  });

  test('a lease expires without keep-alives, on every member, and not while they come', async () => {
    const ttlMs = 2_000;
    const grantedAt = Date.now();
    const granted = await grant(leaderUrl, ttlMs / 1000);
    const id = granted.json['id'] as number;
    assert.equal((await raw(`${leaderUrl}/v1/kv/e/a?lease=${id}`, { method: 'PUT', body: 'A' })).status, 200);
    assert.equal((await raw(`${leaderUrl}/v1/kv/e/b?lease=${id}`, { method: 'PUT', body: 'B' })).status, 200);
    await presentEverywhere(cluster, 'e/a');
    await presentUntil(cluster, cluster.members, 'e/a', grantedAt + ttlMs, 'not before grant + TTL');
    await goneEverywhere(cluster, 'e/a', 6_000);
    await goneEverywhere(cluster, 'e/b', 1_000);
    const gone = await raw(`${leaderUrl}/v1/leases/${id}`);
    assert.deepEqual([gone.status, errorCode(gone)], [404, 'lease-not-found']);

    const kept = (await grant(leaderUrl, ttlMs / 1000)).json['id'] as number;
    assert.equal((await raw(`${leaderUrl}/v1/kv/e/k?lease=${kept}`, { method: 'PUT', body: 'K' })).status, 200);
    await presentEverywhere(cluster, 'e/k');
    const end = Date.now() + 5_000;
    while (Date.now() < end) {
      const r = await raw(`${leaderUrl}/v1/leases/${kept}/keepalive`, { method: 'POST' });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      for (const member of cluster.members) assert.equal((await raw(`${cluster.url(member)}/v1/kv/e/k?stale=true`)).status, 200);
      await sleep(600);
    }
    const info = await raw(`${leaderUrl}/v1/leases/${kept}`);
    assert.equal(info.status, 200);
    assert.ok((info.json['remaining'] as number) > 0);
    assert.equal((await raw(`${leaderUrl}/v1/leases/${kept}`, { method: 'DELETE' })).json['deleted'], 1);
  });

  test('lease expiry across a leader change (no early expiry)', async () => {
    const ttlMs = 3_000;
    const grantedAt = Date.now();
    const granted = await grant(leaderUrl, ttlMs / 1000);
    assert.equal(granted.status, 200, JSON.stringify(granted.json));
    const id = granted.json['id'] as number;
    assert.equal((await raw(`${leaderUrl}/v1/kv/x/a?lease=${id}`, { method: 'PUT', body: 'A' })).status, 200);
    await presentEverywhere(cluster, 'x/a');
    await sleep(1_500);

    const leader = await cluster.leader();
    const survivors = cluster.members.filter((m) => m !== leader);
    // While both survivors still follow `leader` in its term, no other leader exists yet: whichever
    // comes next starts the lease's clock after this moment, at the full TTL.
    const term = cluster.server(leader).status().term;
    const checkedAt = Date.now();
    const noNewLeaderYet = survivors.every((m) => {
      const s = cluster.server(m).status();
      return s.term === term && s.leaderId === leader;
    });
    await cluster.stopServer(leader);
    const stoppedAt = Date.now();
    // The old leader could only expire the lease at grant + TTL; once stopped before that, the key
    // stays until a new leader has counted a whole TTL.
    const notBefore = noNewLeaderYet && stoppedAt < grantedAt + ttlMs ? checkedAt + ttlMs : grantedAt + ttlMs;
    const why = notBefore === grantedAt + ttlMs ? 'grant + TTL' : 'the last moment with no other leader + TTL';
    const polls = await presentUntil(cluster, survivors, 'x/a', notBefore, why);
    assert.ok(polls >= 5, `only ${polls} polls`);
    await goneEverywhere(cluster, 'x/a', Math.max(0, grantedAt + 15_000 - Date.now()));
    const newLeader = await cluster.leader();
    assert.notEqual(newLeader, leader);
    const gone = await raw(`${cluster.url(newLeader)}/v1/leases/${id}`);
    assert.deepEqual([gone.status, errorCode(gone)], [404, 'lease-not-found']);
    await cluster.startServer(leader);
    leaderUrl = cluster.url(await cluster.leader());
  });

  test('keep-alives that follow the leadership keep a lease across a leader change', async () => {
    const ttlMs = 2_000;
    const granted = await grant(leaderUrl, ttlMs / 1000);
    assert.equal(granted.status, 200, JSON.stringify(granted.json));
    const id = granted.json['id'] as number;
    assert.equal((await raw(`${leaderUrl}/v1/kv/k/a?lease=${id}`, { method: 'PUT', body: 'A' })).status, 200);
    // Every member must hold the key before one goes: the survivors are checked for it throughout.
    await presentEverywhere(cluster, 'k/a');

    let keeping = true;
    const statuses: (number | undefined)[] = [];
    const keeper = (async () => {
      while (keeping) {
        statuses.push(await keepAliveAnywhere(cluster, id));
        await sleep(500);
      }
    })();
    try {
      await sleep(1_000);
      const leader = await cluster.leader();
      await cluster.stopServer(leader);
      const survivors = cluster.members.filter((m) => m !== leader);
      const newLeader = await cluster.leader();
      await presentUntil(cluster, survivors, 'k/a', Date.now() + 2.5 * ttlMs, 'keep-alives were sent throughout');
      const info = await raw(`${cluster.url(newLeader)}/v1/leases/${id}`);
      assert.equal(info.status, 200, JSON.stringify(info.json));
      assert.ok((info.json['remaining'] as number) > 0);
      keeping = false;
      await keeper;
      assert.equal(statuses.includes(404), false, `a keep-alive found the lease gone: ${statuses.join(', ')}`);
      assert.ok(statuses.filter((s) => s === 200).length >= 5, `keep-alives: ${statuses.join(', ')}`);
      const revoked = await raw(`${cluster.url(newLeader)}/v1/leases/${id}`, { method: 'DELETE' });
      assert.equal(revoked.json['deleted'], 1);
      await cluster.startServer(leader);
    } finally {
      keeping = false;
      await keeper;
    }
  });
});
