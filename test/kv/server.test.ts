/**
 * The replicated KV service end to end: three KvServers in this process (FileStorage in temporary
 * directories, TcpTransport and HTTP on 127.0.0.1), driven through KvClient and raw HTTP: redirects
 * from followers, exactly-once sessions, linearizable and stale reads, input validation, metrics,
 * snapshot catch-up of a restarted follower, and 503 when no leader can exist. Every wait is bounded.
 */
import { FailingStorage } from '../../src/storage/failpoint.js';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { KvClient, KvClientError } from '../../src/kv/client.js';
import { KEY_BYTES_MAX, KvServer, VALUE_BYTES_MAX } from '../../src/kv/server.js';
import { KvCluster, raw, sleep, waitFor, type Raw } from './kv-cluster-fixture.js';

/**
 * Waits for `done`, writing a key between checks (each write bounded by the client's timeout).
 *
 * Writes keep the leader compacting its log, which works around a liveness bug in RaftCore
 * (src/core/raft.ts): a success AppendEntriesReply that arrives while the leader is sending that
 * follower a snapshot raises `match` above the snapshot's index without leaving the 'snapshot'
 * state (handleAppendReply only promotes 'probe'), and the follower's installed-replies for that
 * snapshot (index <= match) are then ignored (handleInstallSnapshotReply returns early): the leader
 * sends nothing but that snapshot until it compacts past `match`, which takes new writes. It shows
 * whenever a lagging follower (one that was restarted, or slow) meets a log compaction.
 */
async function writeUntil(what: string, timeoutMs: number, client: KvClient, done: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let n = 0; !done(); n++) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await client.put(`nudge-${n}`, 'x');
    await sleep(5);
  }
}

function errorCode(r: Raw): unknown {
  return (r.json['error'] as { code?: unknown } | undefined)?.code;
}

/** Sends a raw request on a fresh socket and collects the response, without finishing the body. */
function rawExchange(port: number, head: string, bodyParts: readonly Buffer[], until: RegExp): Promise<{ response: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no response matching ${until} within 5 s; got ${JSON.stringify(response.slice(0, 200))}`));
    }, 5_000);
    socket.on('error', () => undefined); // a reset after the answer is fine
    socket.on('data', (data: Buffer) => {
      response += data.toString('latin1');
      if (until.test(response)) {
        clearTimeout(timer);
        resolve({ response, socket });
      }
    });
    socket.on('connect', () => {
      socket.write(head);
      for (const part of bodyParts) socket.write(part);
    });
  });
}

describe('KvServer: a 3-node cluster', { timeout: 90_000 }, () => {
  let cluster: KvCluster;
  let leader: number;
  let follower: number;

  before(async () => {
    cluster = await KvCluster.start({ size: 3, server: { maxRaftStateBytes: 4096 } });
  });

  beforeEach(async () => {
    // Leadership may move between tests on a loaded machine.
    leader = await cluster.leader();
    follower = (leader + 1) % 3;
  });

  after(async () => {
    await cluster?.stop();
  });

  it('serves put/get/append/delete/cas through a follower (following redirects)', async () => {
    const client = new KvClient({ endpoints: [cluster.url(follower)], timeoutMs: 10_000 });
    // The first read of the term makes the leader commit an empty no-op entry (ReadIndex): every
    // member applies it as a no-op.
    assert.equal(await client.get('a'), null);
    const put = await client.put('a', '1');
    assert.equal(put.previous, null);
    assert.ok(put.index >= 2, `put at ${put.index}, after the leader's no-op`);
    assert.equal(await client.get('a'), '1');
    assert.equal((await client.append('a', '23')).previous, '1');
    assert.equal(await client.get('a'), '123');
    const refused = await client.cas('a', 'nope', 'x');
    assert.equal(refused.swapped, false);
    assert.equal(refused.value, '123');
    const swapped = await client.cas('a', '123', '456');
    assert.equal(swapped.swapped, true);
    assert.equal(swapped.value, '123');
    assert.equal(await client.get('a'), '456');
    assert.equal((await client.cas('fresh', null, 'v')).swapped, true);
    assert.equal((await client.cas('fresh', null, 'w')).swapped, false);
    assert.equal((await client.delete('a')).previous, '456');
    assert.equal(await client.get('a'), null);
    // Keys with reserved characters and binary values round-trip.
    await client.put('dir/sub key?&=%', new Uint8Array([0, 255, 1]));
    assert.deepEqual(await client.getBytes('dir/sub key?&=%'), new Uint8Array([0, 255, 1]));
    // Concurrent writes on one client use separate sessions.
    await Promise.all(Array.from({ length: 20 }, (_, i) => client.append('multi', `${i},`)));
    const multi = (await client.get('multi'))!.split(',').filter((s) => s !== '');
    assert.equal(multi.length, 20);
    assert.equal(new Set(multi).size, 20);

    // The follower's own answer is a 307 to the leader, with the same path and query.
    const r = await raw(`${cluster.url(follower)}/v1/kv/a?op=append`, { method: 'POST', body: 'z' });
    assert.equal(r.status, 307);
    assert.equal(r.headers.get('location'), `${cluster.url(leader)}/v1/kv/a?op=append`);
    assert.equal(errorCode(r), 'not-leader');
    assert.equal((r.json['error'] as { leaderId: number }).leaderId, leader);
  });

  it('applies a retried write once (same X-Client-Id and X-Request-Seq)', async () => {
    const url = `${cluster.url(leader)}/v1/kv/once?op=append`;
    const headers = { 'X-Client-Id': 'test-exactly-once', 'X-Request-Seq': '1' };
    const first = await raw(url, { method: 'POST', headers, body: 'x' });
    const second = await raw(url, { method: 'POST', headers, body: 'x' });
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    assert.equal(second.json['previous'], null, 'the duplicate answers with the first answer');
    assert.equal(first.json['previous'], null);
    const seq2 = { 'X-Client-Id': 'test-exactly-once', 'X-Request-Seq': '2' };
    assert.equal((await raw(url, { method: 'POST', headers: seq2, body: 'y' })).status, 200);
    assert.equal((await raw(url, { method: 'POST', headers: seq2, body: 'y' })).json['previous'], 'x');
    const got = await raw(`${cluster.url(leader)}/v1/kv/once`);
    assert.equal(got.json['value'], 'xy');
    // A PUT resent likewise; then an older seq is refused as stale.
    const put = `${cluster.url(leader)}/v1/kv/once-put`;
    const seq3 = { 'X-Client-Id': 'test-exactly-once', 'X-Request-Seq': '3' };
    assert.equal((await raw(put, { method: 'PUT', headers: seq3, body: 'v' })).json['previous'], null);
    assert.equal((await raw(put, { method: 'PUT', headers: seq3, body: 'v2' })).json['previous'], null, 'not applied again');
    const stale = await raw(put, { method: 'PUT', headers: seq2, body: 'old' });
    assert.equal(stale.status, 409);
    assert.equal(errorCode(stale), 'stale-request');
    assert.equal((await raw(put)).json['value'], 'v');
  });

  it('reads linearizably on the leader and stale on a follower', async () => {
    const client = new KvClient({ endpoints: [cluster.url(leader)] });
    for (let i = 0; i < 10; i++) {
      const { index } = await client.put('lin', `v${i}`);
      const r = await raw(`${cluster.url(leader)}/v1/kv/lin`);
      assert.equal(r.status, 200);
      const revisions = { revision: r.json['revision'], createRevision: r.json['createRevision'], modRevision: r.json['modRevision'], version: r.json['version'] };
      assert.deepEqual(r.json, { key: 'lin', value: `v${i}`, encoding: 'utf8', index: r.json['index'], ...revisions });
      assert.equal(r.json['version'], i + 1);
      assert.ok((r.json['index'] as number) >= index);
    }
    // A follower redirects a linearizable read, and serves a stale one itself once it caught up.
    const redirected = await raw(`${cluster.url(follower)}/v1/kv/lin`);
    assert.equal(redirected.status, 307);
    const { index } = await client.put('stale-key', 'here');
    await waitFor('the follower to apply the write', 5_000, () => cluster.servers[follower]!.status().appliedIndex >= index);
    const stale = await raw(`${cluster.url(follower)}/v1/kv/stale-key?stale=true`);
    assert.equal(stale.status, 200);
    assert.equal(stale.json['value'], 'here');
    const followerClient = new KvClient({ endpoints: [cluster.url(follower)] });
    assert.equal(await followerClient.get('stale-key', { stale: true }), 'here');
    // Missing key, binary values and forced base64.
    const missing = await raw(`${cluster.url(leader)}/v1/kv/absent`);
    assert.equal(missing.status, 404);
    assert.equal(errorCode(missing), 'not-found');
    assert.equal((missing.json['error'] as { message: string }).message, 'key "absent" does not exist');
    assert.equal((await raw(`${cluster.url(leader)}/v1/kv/bin`, { method: 'PUT', body: new Uint8Array([0xff, 0xfe]) })).status, 200);
    const bin = await raw(`${cluster.url(leader)}/v1/kv/bin`);
    assert.equal(bin.json['encoding'], 'base64');
    assert.equal(bin.json['value'], '//4=');
    const forced = await raw(`${cluster.url(leader)}/v1/kv/stale-key?encoding=base64`);
    assert.equal(forced.json['encoding'], 'base64');
    assert.equal(Buffer.from(forced.json['value'] as string, 'base64').toString(), 'here');
  });

  it('answers bad input with a 4xx JSON error and keeps serving', async () => {
    const base = cluster.url(leader);
    const cases: [string, RequestInit, number, string][] = [
      ['/v1/kv/', {}, 400, 'invalid-key'],
      ['/v1/kv', { method: 'PUT', body: 'x' }, 405, 'method-not-allowed'],
      ['/v1/kv/', { method: 'PUT', body: 'x' }, 400, 'invalid-key'],
      [`/v1/kv/${'k'.repeat(KEY_BYTES_MAX + 1)}`, { method: 'PUT', body: 'x' }, 400, 'invalid-key'],
      ['/v1/kv/%zz', {}, 400, 'malformed-percent-encoding'],
      ['/v1/kv/a%2', { method: 'PUT', body: 'x' }, 400, 'malformed-percent-encoding'],
      ['/v1/kv/a?cas=%G0', { method: 'POST', body: 'x' }, 400, 'malformed-percent-encoding'],
      ['/v1/kv/a?op=frobnicate', { method: 'POST', body: 'x' }, 400, 'unknown-op'],
      ['/v1/kv/a', { method: 'POST', body: 'x' }, 400, 'unknown-op'],
      ['/v1/kv/a?colour=red', {}, 400, 'unknown-parameter'],
      ['/v1/kv/a?stale=maybe', {}, 400, 'bad-parameter'],
      ['/v1/kv/a', { method: 'PUT', body: 'x', headers: { 'X-Client-Id': 'c', 'X-Request-Seq': 'abc' } }, 400, 'bad-header'],
      ['/v1/kv/a', { method: 'PUT', body: 'x', headers: { 'X-Client-Id': 'c', 'X-Request-Seq': '0' } }, 400, 'bad-header'],
      ['/v1/kv/a', { method: 'PUT', body: 'x', headers: { 'X-Client-Id': 'c', 'X-Request-Seq': '-1' } }, 400, 'bad-header'],
      ['/v1/kv/a', { method: 'PUT', body: 'x', headers: { 'X-Client-Id': 'c', 'X-Request-Seq': '99999999999999999999' } }, 400, 'bad-header'],
      ['/v1/kv/a', { method: 'PUT', body: 'x', headers: { 'X-Request-Seq': '1' } }, 400, 'bad-header'],
      ['/v1/kv/a', { method: 'PUT', body: 'x', headers: { 'X-Client-Id': 'x'.repeat(200), 'X-Request-Seq': '1' } }, 400, 'bad-header'],
      ['/v1/status', { method: 'DELETE' }, 405, 'method-not-allowed'],
      ['/v1/kv/a', { method: 'PATCH', body: 'x' }, 405, 'method-not-allowed'],
      ['/nowhere', {}, 404, 'no-route'],
    ];
    for (const [path, init, status, code] of cases) {
      const r = await raw(base + path, init);
      assert.equal(r.status, status, `${init.method ?? 'GET'} ${path}: ${JSON.stringify(r.json)}`);
      assert.equal(errorCode(r), code, `${init.method ?? 'GET'} ${path}`);
      assert.equal(typeof (r.json['error'] as { message: unknown }).message, 'string');
    }
    // The longest key is fine.
    assert.equal((await raw(`${base}/v1/kv/${'k'.repeat(KEY_BYTES_MAX)}`, { method: 'PUT', body: 'x' })).status, 200);

    // Oversized values: 413 as soon as the limit is passed, before the client sent the whole body.
    const port = Number(new URL(base).port);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const parts: Buffer[] = [];
    for (let sent = 0; sent <= VALUE_BYTES_MAX; sent += chunk.length) parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'));
    const chunked = await rawExchange(port, 'PUT /v1/kv/big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n', parts, /\r\n\r\n\{.*\}$/s);
    chunked.socket.destroy();
    assert.match(chunked.response, /^HTTP\/1\.1 413 /);
    assert.match(chunked.response, /"code":"value-too-large"/);
    // A declared 2 MiB body is refused after its first 64 KiB (the rest is never sent).
    const declared = await rawExchange(
      port,
      `PUT /v1/kv/big HTTP/1.1\r\nHost: t\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`,
      [chunk],
      /\r\n\r\n\{.*\}$/s,
    );
    declared.socket.destroy();
    assert.match(declared.response, /^HTTP\/1\.1 413 /);
    // And through fetch, which sends it all.
    const big = await raw(`${base}/v1/kv/big`, { method: 'PUT', body: new Uint8Array(2 * 1024 * 1024) });
    assert.equal(big.status, 413);
    assert.equal(errorCode(big), 'value-too-large');
    const client = new KvClient({ endpoints: [base] });
    await assert.rejects(client.put('big', new Uint8Array(VALUE_BYTES_MAX + 1)), (e: unknown) => e instanceof KvClientError && e.code === 'bad-request' && e.status === 413);
    // A value of exactly the limit is accepted.
    assert.equal((await client.put('big', new Uint8Array(VALUE_BYTES_MAX))).previous, null);
    assert.equal((await client.getBytes('big'))?.length, VALUE_BYTES_MAX);
    await client.delete('big');

    // Requests node:http itself cannot parse get a JSON answer too.
    const garbage = await rawExchange(port, 'NOT HTTP AT ALL\r\n\r\n', [], /\r\n\r\n\{.*\}$/s);
    garbage.socket.destroy();
    assert.match(garbage.response, /^HTTP\/1\.1 400 [^]*Content-Type: application\/json[^]*"code":"bad-request"/);
    const longKey = await rawExchange(port, `GET /v1/kv/${'k'.repeat(70_000)} HTTP/1.1\r\nHost: t\r\n\r\n`, [], /\r\n\r\n\{.*\}$/s);
    longKey.socket.destroy();
    assert.match(longKey.response, /^HTTP\/1\.1 431 [^]*"code":"headers-too-large"/);

    // Still serving.
    assert.deepEqual((await raw(`${base}/healthz`)).json, { ok: true });
    await client.put('after-bad-input', 'ok');
    assert.equal(await client.get('after-bad-input'), 'ok');
  });

  it('exposes Prometheus metrics', async () => {
    const response = await fetch(`${cluster.url(leader)}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await response.text();
    for (const name of [
      'tsraft_term ',
      'tsraft_role{role="leader"} 1',
      'tsraft_role{role="follower"} 0',
      'tsraft_commit_index ',
      'tsraft_applied_index ',
      'tsraft_proposal_duration_seconds_bucket{le="+Inf"} ',
      'tsraft_proposal_duration_seconds_sum ',
      'tsraft_proposal_duration_seconds_count ',
      'tsraft_transport_bytes_sent_total ',
      'tsraft_transport_bytes_received_total ',
      'tsraft_wal_fsync_duration_seconds_bucket{le="+Inf"} ',
      'tsraft_wal_fsync_duration_seconds_count ',
      'tsraft_kv_keys ',
      'tsraft_kv_leases ',
      'tsraft_lease_expiries_proposed_total ',
      'tsraft_process_resident_memory_bytes ',
      'tsraft_heap_used_bytes ',
      'tsraft_external_memory_bytes ',
    ]) {
      assert.ok(text.includes(`\n${name}`), `metrics lack ${name}`);
    }
    const count = Number(/\ntsraft_proposal_duration_seconds_count (\d+)/.exec(text)?.[1]);
    assert.ok(count > 0);
    assert.ok(Number(/\ntsraft_transport_bytes_sent_total (\d+)/.exec(text)?.[1]) > 0);
    assert.ok(Number(/\ntsraft_process_resident_memory_bytes (\d+)/.exec(text)?.[1]) > Number(/\ntsraft_heap_used_bytes (\d+)/.exec(text)?.[1]));
    const status = await new KvClient({ endpoints: [cluster.url(follower)] }).status();
    assert.equal(status.id, follower);
    assert.equal(status.role, 'follower');
    assert.equal(status.leaderId, leader);
    assert.equal(status.leaderUrl, cluster.url(leader));
  });

  it('catches a restarted follower up through a snapshot', async () => {
    const client = new KvClient({ endpoints: cluster.peers.map((p) => p.httpUrl) });
    const write = async (from: number, to: number): Promise<void> => {
      let next = from;
      try {
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            while (next < to) {
              const i = next++;
              await client.put(`snap-${i}`, `value-${i}`);
            }
          }),
        );
      } catch (error) {
        throw new Error(`writing snap-${from}..${to - 1} failed: ${String(error)}\n${cluster.describe()}`, { cause: error });
      }
    };
    await write(0, 500);
    await waitFor('the follower to snapshot', 5_000, () => cluster.servers[follower]!.status().snapshotIndex > 0);
    // Stop the follower only once the other one is in step, so that it alone can make a majority.
    await writeUntil('every member to catch up', 10_000, client, () =>
      cluster.servers.some((server) => {
        const s = server!.status();
        return s.role === 'leader' && s.peers.every((p) => p.state === 'replicate' && p.match === s.lastIndex);
      }),
    );
    const stoppedAt = cluster.servers[follower]!.status().lastIndex;
    await cluster.stopServer(follower);

    // Both remaining members compact past the stopped follower's log, so whichever leads must send
    // it a snapshot. Writes go on until they have: the snapshot threshold grows with the state
    // (a quarter of the last snapshot, see KvReplica), and earlier tests here leave a larger one.
    const others = [0, 1, 2].filter((id) => id !== follower).map((id) => cluster.servers[id]!);
    const compactedIndex = (): number | undefined => {
      const index = Math.min(...others.map((s) => s.status().snapshotIndex));
      return index > stoppedAt ? index : undefined;
    };
    for (let from = 500; compactedIndex() === undefined && from < 500 + 300 * 20; from += 300) await write(from, from + 300);
    const { index: lastWrite } = await client.delete('snap-0');
    const compacted = await waitFor('the remaining members to compact past the stopped follower', 5_000, compactedIndex, () => `stopped at ${stoppedAt}\n${cluster.describe()}`);

    const restarted = await cluster.startServer(follower);
    // Writes go on while the follower catches up.
    await writeUntil('the restarted follower to catch up', 15_000, client, () => restarted.status().appliedIndex >= lastWrite);
    assert.ok(restarted.status().snapshotIndex >= compacted, 'caught up through a snapshot');
    const stale = new KvClient({ endpoints: [cluster.url(follower)] });
    assert.equal(await stale.get('snap-0', { stale: true }), null);
    for (let i = 1; i < 800; i += 7) assert.equal(await stale.get(`snap-${i}`, { stale: true }), `value-${i}`);
    assert.equal(await stale.get('snap-799', { stale: true }), 'value-799');
  });

  it('answers 503 no-leader when no majority is up', async () => {
    const lone = (leader + 2) % 3;
    await cluster.stopServer(leader);
    await cluster.stopServer(follower);
    await waitFor('the survivor to forget the leader', 5_000, () => cluster.servers[lone]!.status().leaderId === null);
    for (const init of [{}, { method: 'PUT', body: 'x' }]) {
      const r = await raw(`${cluster.url(lone)}/v1/kv/a`, init);
      assert.equal(r.status, 503);
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal(errorCode(r), 'no-leader');
    }
    // Stale reads still work; the client gives up cleanly.
    assert.equal((await raw(`${cluster.url(lone)}/v1/kv/snap-1?stale=true`)).status, 200);
    const client = new KvClient({ endpoints: [cluster.url(lone)], timeoutMs: 1_500 });
    await assert.rejects(client.put('a', 'b'), (e: unknown) => e instanceof KvClientError && e.code === 'timeout' && /no-leader/.test(e.message));
    // The stopped members' endpoints refuse connections: also a clean timeout.
    const dead = new KvClient({ endpoints: [cluster.url(leader)], timeoutMs: 300 });
    await assert.rejects(dead.get('a'), (e: unknown) => e instanceof KvClientError && e.code === 'timeout');
  });
});

describe('KvServer: reads through the log (readMode "log")', { timeout: 30_000 }, () => {
  let cluster: KvCluster;
  before(async () => {
    cluster = await KvCluster.start({ size: 1, server: { readMode: 'log', maxRaftStateBytes: -1 } });
    await cluster.leader();
  });
  after(async () => {
    await cluster?.stop();
  });

  it('refuses bad options with a ConfigError', async () => {
    await assert.rejects(
      KvServer.start({ id: 5, peers: cluster.peers, dataDir: join(cluster.root, 'x'), httpListen: { host: '127.0.0.1', port: 0 }, maxRaftStateBytes: -2 }),
      (e: unknown) => e instanceof Error && e.name === 'ConfigError' && /this member/.test(e.message) && /maxRaftStateBytes/.test(e.message),
    );
  });

  it('serves gets as log entries', async () => {
    const client = new KvClient({ endpoints: [cluster.url(0)] });
    assert.equal(await client.get('k'), null);
    const { index } = await client.put('k', 'v');
    const r = await raw(`${cluster.url(0)}/v1/kv/k`);
    assert.equal(r.json['value'], 'v');
    assert.ok((r.json['index'] as number) > index, 'the read has its own log entry');
    assert.equal(cluster.servers[0]!.status().snapshotIndex, 0);
    await cluster.servers[0]!.stop();
    await cluster.servers[0]!.stop(); // idempotent
  });
});

describe('KvServer: a failed fsync stops Raft, and the node answers 503 until its owner stops it', { timeout: 30_000 }, () => {
  let cluster: KvCluster;
  const fatal: Error[] = [];
  before(async () => {
    cluster = await KvCluster.start({
      size: 1,
      server: {
        maxRaftStateBytes: -1,
        // The disk fails after a handful of saves (a single node saves once per write).
        wrapStorage: (storage) => new FailingStorage(storage, 8),
        onFatal: (error) => fatal.push(error),
      },
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it('reports the fatal error once, then answers 503 node-stopped to writes and stale reads, and /healthz 503', async () => {
    await cluster.leader();
    const url = cluster.url(0);
    for (let i = 0; i < 20 && fatal.length === 0; i++) await raw(`${url}/v1/kv/k${i}`, { method: 'PUT', body: `v${i}` });
    await waitFor('the fatal error', 5_000, () => (fatal.length > 0 ? true : undefined));
    assert.equal(fatal.length, 1);
    assert.match(fatal[0]!.message, /injected fsync failure/);
    const write = await raw(`${url}/v1/kv/after`, { method: 'PUT', body: 'x' });
    assert.equal(write.status, 503);
    assert.equal(errorCode(write), 'node-stopped');
    assert.equal(write.headers.get('retry-after'), '1');
    const stale = await raw(`${url}/v1/kv/k0?stale=true`);
    assert.equal(stale.status, 503, 'no stale reads from a node whose state no longer advances');
    assert.equal((await raw(`${url}/healthz`)).status, 503);
  });
});
