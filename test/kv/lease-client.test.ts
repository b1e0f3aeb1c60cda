/**
 * KvClient's leases on one in-process 3-node cluster: grant, attach keys (put and txn), read them
 * back with their lease, time-to-live with keys, keep-alive, list, revoke (keys gone, at one
 * revision), 'lease-not-found' for whatever names a lease that is gone, every lease request routed
 * from a follower to the leader, the README's lock recipe with a lease, and keepLeaseAlive(): it
 * keeps a 2 s lease alive well past its TTL, across a leader change, and its `done` rejects once
 * the lease is revoked (resolves on stop()).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KvClient, KvClientError } from '../../src/kv/client.js';
import { KvCluster, sleep, waitFor } from './kv-cluster-fixture.js';

const text = (bytes: Uint8Array | undefined): string => Buffer.from(bytes ?? new Uint8Array(0)).toString('utf8');

/** Whether `promise` has settled within `ms` (without consuming its rejection). */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await sleep(ms);
  return settled;
}

function leaseNotFound(error: unknown): boolean {
  return error instanceof KvClientError && error.code === 'lease-not-found' && error.status === 404 && error.serverCode === 'lease-not-found';
}

describe('KvClient leases on a real cluster', { timeout: 60_000 }, () => {
  let cluster: KvCluster;
  let client: KvClient;

  before(async () => {
    cluster = await KvCluster.start({ prefix: 'tsraft-lease-client-' });
    await cluster.leader();
    client = new KvClient({ endpoints: cluster.members.map((id) => cluster.url(id)), timeoutMs: 10_000 });
  });

  after(async () => {
    await client?.close();
    await cluster?.stop();
  });

  test('grant, attach, read, time-to-live, keep-alive, list, revoke', async () => {
    const lease = await client.leaseGrant(60);
    assert.equal(lease.ttl, 60);
    assert.ok(lease.id >= 1 && lease.index >= 1, JSON.stringify(lease));

    const put = await client.put('l/a', 'A', { lease: lease.id });
    assert.ok(put.revision !== undefined && put.revision >= lease.revision);
    const txn = await client.txn({ then: [{ put: { key: 'l/b', value: 'B', lease: lease.id } }] });
    assert.equal(txn.succeeded, true);
    await client.put('l/c', 'C');

    const read = await client.getWithRevisions('l/a');
    assert.equal(read?.lease, lease.id);
    assert.equal((await client.getWithRevisions('l/c'))?.lease, undefined, 'a key without a lease has none');
    const page = await client.range({ prefix: 'l/' });
    assert.deepEqual(page.kvs.map((kv) => [text(kv.key), kv.lease]), [['l/a', lease.id], ['l/b', lease.id], ['l/c', undefined]]);

    const ttl = await client.leaseTimeToLive(lease.id, { keys: true });
    assert.equal(ttl.id, lease.id);
    assert.equal(ttl.ttl, 60);
    assert.equal(ttl.keyCount, 2);
    assert.ok(ttl.remaining > 30 && ttl.remaining <= 60, `remaining ${ttl.remaining}`);
    assert.deepEqual(ttl.keys?.map(text), ['l/a', 'l/b']);
    assert.equal((await client.leaseTimeToLive(lease.id)).keys, undefined, 'keys only when asked for');

    const renewed = await client.leaseKeepAlive(lease.id);
    assert.deepEqual([renewed.id, renewed.ttl], [lease.id, 60]);

    const listed = await client.leaseList();
    assert.deepEqual(listed.leases.find((l) => l.id === lease.id), { id: lease.id, ttl: 60, keyCount: 2 });

    // A put without a lease detaches the key: the revoke leaves it alone.
    await client.put('l/b', 'B2');
    assert.equal((await client.getWithRevisions('l/b'))?.lease, undefined);

    const before = (await client.getWithRevisions('l/c'))!.revision;
    const revoked = await client.leaseRevoke(lease.id);
    assert.deepEqual([revoked.id, revoked.ttl, revoked.deleted], [lease.id, 60, 1]);
    assert.equal(revoked.revision, before + 1, 'the keys are deleted at one new revision');
    assert.equal(await client.get('l/a'), null);
    assert.equal(await client.get('l/b'), 'B2');

    // Whatever names the lease now is told it is gone, and nothing is written.
    await assert.rejects(client.leaseRevoke(lease.id), leaseNotFound);
    await assert.rejects(client.leaseKeepAlive(lease.id), leaseNotFound);
    await assert.rejects(client.leaseTimeToLive(lease.id), leaseNotFound);
    await assert.rejects(client.put('l/d', 'D', { lease: lease.id }), leaseNotFound);
    await assert.rejects(client.txn({ then: [{ put: { key: 'l/e', value: 'E', lease: lease.id } }] }), leaseNotFound);
    assert.equal(await client.get('l/d'), null);
    assert.equal(await client.get('l/e'), null);
    assert.equal((await client.leaseList()).leases.some((l) => l.id === lease.id), false);
  });

  test('bad ids and TTLs are refused before anything is sent', async () => {
    const badRequest = (error: unknown): boolean => error instanceof KvClientError && error.code === 'bad-request' && error.status === undefined;
    for (const ttl of [0, -1, 1.5, Number.NaN, 9_000_000_001]) await assert.rejects(client.leaseGrant(ttl), badRequest, String(ttl));
    for (const id of [0, -3, 2.5]) {
      await assert.rejects(client.leaseRevoke(id), badRequest, String(id));
      await assert.rejects(client.leaseKeepAlive(id), badRequest, String(id));
      await assert.rejects(client.leaseTimeToLive(id), badRequest, String(id));
      await assert.rejects(client.put('k', 'v', { lease: id }), badRequest, String(id));
      assert.throws(() => client.keepLeaseAlive(id), badRequest, String(id));
    }
  });

  test('every lease request finds the leader from a follower', async () => {
    const leader = await cluster.leader();
    const follower = cluster.members.find((id) => id !== leader)!;
    const viaFollower = new KvClient({ endpoints: [cluster.url(follower), cluster.url(leader)], timeoutMs: 10_000 });
    try {
      assert.equal(viaFollower.preferredEndpoint, cluster.url(follower));
      const lease = await viaFollower.leaseGrant(30);
      assert.equal(viaFollower.preferredEndpoint, cluster.url(leader), 'the redirect was followed and remembered');
      const fresh = (): KvClient => new KvClient({ endpoints: [cluster.url(follower), cluster.url(leader)], timeoutMs: 10_000 });
      const each = [fresh(), fresh(), fresh(), fresh()];
      try {
        assert.equal((await each[0]!.leaseKeepAlive(lease.id)).id, lease.id);
        assert.equal((await each[1]!.leaseTimeToLive(lease.id)).ttl, 30);
        assert.ok((await each[2]!.leaseList()).leases.some((l) => l.id === lease.id));
        assert.equal((await each[3]!.leaseRevoke(lease.id)).id, lease.id);
      } finally {
        await Promise.all(each.map((c) => c.close()));
      }
    } finally {
      await viaFollower.close();
    }
  });

  test('keepLeaseAlive keeps a 2 s lease alive for 5 s; done rejects once it is revoked', async () => {
    const lease = await client.leaseGrant(2);
    await client.put('kept/a', 'A', { lease: lease.id });
    let renewals = 0;
    const keeper = client.keepLeaseAlive(lease.id, { onRenewal: (r) => (assert.equal(r.id, lease.id), renewals++) });
    assert.equal(await settledWithin(keeper.done, 5_000), false, 'the keeper is still running');
    // A renewal every TTL/3 (667 ms): about 8 in 5 s.
    assert.ok(renewals >= 5, `${renewals} renewals`);
    assert.equal(await client.get('kept/a'), 'A', 'the key outlived its lease\'s TTL');
    assert.ok((await client.leaseTimeToLive(lease.id)).remaining > 1, 'renewed within the last TTL/3');

    await client.leaseRevoke(lease.id);
    await assert.rejects(keeper.done, (error: unknown) => leaseNotFound(error) && /lease \d+ is gone: it expired or was revoked/.test((error as Error).message));
    keeper.stop(); // harmless after the end
  });

  test("the README's lock recipe: held with a lease, freed when its holder stops keeping it alive", async () => {
    const acquire = (id: string, lease: number) =>
      client.txn({
        compare: [{ key: 'locks/report', target: 'create', op: '=', value: 0 }],
        then: [{ put: { key: 'locks/report', value: id, lease } }],
        else: [{ get: { key: 'locks/report' } }],
      });
    const holder = await client.leaseGrant(1);
    const waiter = await client.leaseGrant(30);
    const keeper = client.keepLeaseAlive(holder.id);
    assert.equal((await acquire('worker-7', holder.id)).succeeded, true);
    await sleep(1_500);
    const contended = await acquire('worker-8', waiter.id);
    assert.equal(contended.succeeded, false, 'held past its 1 s TTL while kept alive');
    assert.deepEqual(contended.results.map((r) => (r.type === 'get' ? text(r.value ?? undefined) : r.type)), ['worker-7']);

    keeper.stop(); // the holder "dies"
    await keeper.done;
    const won = await waitFor('the lock to be freed and taken', 5_000, async () => ((await acquire('worker-8', waiter.id)).succeeded ? true : undefined));
    assert.equal(won, true);
    assert.equal((await client.getWithRevisions('locks/report'))?.lease, waiter.id);
    await client.leaseRevoke(waiter.id); // releases the lock: the key goes with the lease
    assert.equal(await client.get('locks/report'), null);
  });

  test('keepLeaseAlive survives a leader change; once stopped, the lease expires and its keys go', async () => {
    const lease = await client.leaseGrant(2);
    await client.put('moved/a', 'A', { lease: lease.id });
    const keeper = client.keepLeaseAlive(lease.id);
    await sleep(700);
    const leader = await cluster.leader();
    await cluster.stopServer(leader);
    try {
      assert.equal(await settledWithin(keeper.done, 3_000), false, 'the keeper is still running after the leader change');
      assert.equal(await client.get('moved/a'), 'A');
    } finally {
      await cluster.startServer(leader);
    }
    keeper.stop();
    await keeper.done;
    // Nobody keeps it alive now: the leader revokes it within its TTL (and a little), keys included.
    const stoppedAt = Date.now();
    await waitFor('the lease to expire', 6_000, async () => (await client.get('moved/a')) === null);
    assert.ok(Date.now() - stoppedAt >= 1_000, 'not before most of its TTL passed');
    await assert.rejects(client.leaseTimeToLive(lease.id), leaseNotFound);
  });
});
