/**
 * A retry answered from the session table reports the original index: the log index where the
 * write took effect, not the retry's own. Checked in the state machine (KvResult.deduplicatedFrom,
 * the session's resultIndex), across snapshot format v3 and from v1 snapshots, in KvReplica.commit,
 * and end to end through a KvServer's HTTP API and KvClient (a retry after a lost answer), also
 * after a restart from a snapshot.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { ByteWriter, CodecError } from '../../src/codec/codec.js';
import { KvClient } from '../../src/kv/client.js';
import { encodeKvCommand, type KvCommand, type KvResult } from '../../src/kv/commands.js';
import { KvReplica } from '../../src/kv/replica.js';
import { KvServer, type KvPeer } from '../../src/kv/server.js';
import { KvStateMachine, SNAPSHOT_VERSION } from '../../src/kv/state-machine.js';
import type { RaftNode } from '../../src/runtime/node.js';
import { Prng } from '../../src/sim/prng.js';
import { freeLoopbackPorts } from '../../src/testing/ports.js';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);
const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');

const put = (key: string, value: string, clientId = '', seq = 0): KvCommand => ({ op: 'put', clientId, seq, key: b(key), value: b(value) });
const append = (key: string, value: string, clientId = '', seq = 0): KvCommand => ({ op: 'append', clientId, seq, key: b(key), value: b(value) });

/** Applies commands to a state machine at consecutive indices. */
class Log {
  next: number;
  constructor(readonly sm = new KvStateMachine()) {
    this.next = sm.appliedIndex + 1;
  }
  /** Applies `cmd` and returns [its index, its result]. */
  run(cmd: KvCommand): [number, KvResult] {
    const index = this.next++;
    return [index, this.sm.applyCommand(index, encodeKvCommand(cmd))];
  }
}

// ---- the state machine ----

test('a retry applied at j > i reports i, the index where the write took effect', () => {
  const log = new Log();
  const [i, first] = log.run(append('k', 'x', 'c', 1));
  assert.deepEqual(first, { ok: true, value: null, revision: 1, key: { createRevision: 1, modRevision: 1, version: 1 } });
  assert.equal(first.deduplicatedFrom, undefined, 'a first application is not a duplicate');
  log.run(put('other', '1'));
  log.run(append('k', 'y', 'd', 1));
  const [j, retry] = log.run(append('k', 'x', 'c', 1));
  assert.ok(j > i);
  assert.deepEqual(retry, { ...first, deduplicatedFrom: i }, 'the original answer, its revision included');
  assert.equal(new TextDecoder().decode(log.sm.get(b('k'))!), 'xy', 'the retry applied nothing');
  // Activity after the write (duplicates, a stale request) moves lastIndex, never resultIndex.
  const [, stale] = log.run(append('k', 'old', 'c', 0));
  assert.ok(!stale.ok && stale.error === 'stale-request' && stale.deduplicatedFrom === undefined);
  const [last, again] = log.run(append('k', 'x', 'c', 1));
  assert.equal(again.deduplicatedFrom, i);
  assert.deepEqual(log.sm.session('c'), { lastSeq: 1, lastIndex: last, resultIndex: i });
  // The next seq takes effect at its own index, and its retries report that one.
  const [k] = log.run(append('k', 'z', 'c', 2));
  log.run(put('other', '2'));
  assert.equal(log.run(append('k', 'z', 'c', 2))[1].deduplicatedFrom, k);
  // A session-less command is never a duplicate.
  assert.equal(log.run(put('k', 'v'))[1].deduplicatedFrom, undefined);
  assert.equal(log.run(put('k', 'v'))[1].deduplicatedFrom, undefined);
});

test('the original index survives snapshot (format v4) and restore', () => {
  const log = new Log();
  const [i] = log.run(put('k', 'v', 'c', 7));
  log.run(put('k', 'v', 'c', 7)); // a duplicate before the snapshot: lastIndex moves past i
  log.run(put('k2', 'w'));
  const snapshot = log.sm.snapshot();
  assert.equal(snapshot[0], 4);
  assert.equal(SNAPSHOT_VERSION, 4);
  const restored = new KvStateMachine();
  restored.restore({ index: log.sm.appliedIndex, term: 1, data: snapshot });
  assert.deepEqual(restored.session('c'), { lastSeq: 7, lastIndex: 2, resultIndex: i });
  assert.equal(hex(restored.snapshot()), hex(snapshot), 'v4 is canonical');
  const after = new Log(restored);
  const [j, retry] = after.run(put('k', 'v', 'c', 7));
  assert.ok(j > i);
  assert.deepEqual(retry, { ok: true, value: null, revision: 1, key: { createRevision: 1, modRevision: 1, version: 1 }, deduplicatedFrom: i });
  // The exact v4 bytes: version 4, applied 3, revision 2, 2 keys (each with createRevision,
  // modRevision, version, no lease), 1 session "c": seq 7, lastIndex 2, resultIndex 1, result with
  // revisions (tag 3) / value null / no swapped / revision 1 / key at (1, 1, 1); no leases.
  assert.equal(hex(snapshot), '04' + '03' + '02' + '02' + '016b017601010100' + '026b32017702020100' + '01' + '0163' + '07' + '02' + '01' + '0301000101010101' + '0000');
});

/** A version-1 snapshot (no resultIndex) with one key and the given [clientId, lastSeq, lastIndex] sessions. */
function v1Snapshot(applied: number, sessions: [string, number, number][]): Uint8Array {
  const w = new ByteWriter();
  w.writeByte(1);
  w.writeVarint(applied);
  w.writeVarint(1);
  w.writeBytes(b('k'));
  w.writeBytes(b('v'));
  w.writeVarint(sessions.length);
  for (const [id, seq, lastIndex] of sessions) {
    w.writeBytes(b(id));
    w.writeVarint(seq);
    w.writeVarint(lastIndex);
    w.writeByte(1); // ok
    w.writeByte(1); // value: null
    w.writeByte(0); // no swapped
  }
  return w.finish();
}

test('a v1 snapshot still restores: a session\'s result index is its last activity', () => {
  const sm = new KvStateMachine();
  sm.restore({ index: 9, term: 1, data: v1Snapshot(9, [['a', 3, 4], ['b', 1, 8]]) });
  assert.equal(sm.appliedIndex, 9);
  assert.deepEqual(sm.session('a'), { lastSeq: 3, lastIndex: 4, resultIndex: 4 });
  assert.deepEqual(sm.session('b'), { lastSeq: 1, lastIndex: 8, resultIndex: 8 });
  assert.equal(new TextDecoder().decode(sm.get(b('k'))!), 'v');
  const log = new Log(sm);
  assert.deepEqual(log.run(put('k', 'x', 'a', 3))[1], { ok: true, value: null, deduplicatedFrom: 4 });
  // Re-snapshotted as v2, with the result index it now knows.
  const again = new KvStateMachine();
  again.restore({ index: sm.appliedIndex, term: 1, data: sm.snapshot() });
  assert.deepEqual(again.session('a'), { lastSeq: 3, lastIndex: 10, resultIndex: 4 });
});

test('restore of corrupted v1/v3 snapshots throws only CodecError, and what it accepts is canonical', () => {
  const log = new Log(new KvStateMachine({ maxSessions: 8 }));
  for (let n = 1; n <= 40; n++) {
    const client = `c${n % 5}`;
    log.run(append(`k${n % 7}`, `${n}`, client, Math.ceil(n / 5)));
    if (n % 3 === 0) log.run(append(`k${n % 7}`, `${n}`, client, Math.ceil(n / 5))); // duplicates
    if (n % 4 === 0) log.run(put('plain', `${n}`));
  }
  const v2 = log.sm.snapshot();
  const v1 = v1Snapshot(9, [['a', 3, 4], ['b', 1, 8], ['c', 2, 9]]);
  const prng = new Prng(7);
  let accepted = 0;
  for (const [good, index] of [[v2, log.sm.appliedIndex], [v1, 9]] as const) {
    for (let round = 0; round < 3000; round++) {
      const data = good.slice();
      for (let flips = 1 + prng.nextInt(3); flips > 0; flips--) data[prng.nextInt(data.length)] = prng.nextInt(256);
      const sm = new KvStateMachine({ maxSessions: 8 });
      try {
        sm.restore({ index, term: 1, data });
      } catch (error) {
        assert.ok(error instanceof CodecError, `round ${round}: ${String(error)}`);
        continue;
      }
      accepted++;
      if (data[0] === SNAPSHOT_VERSION) assert.equal(hex(sm.snapshot()), hex(data), `round ${round}: current-version input re-snapshots to itself`);
      for (const id of ['a', 'b', 'c', 'c0', 'c1', 'c2', 'c3', 'c4']) {
        const s = sm.session(id);
        if (s !== undefined) assert.ok(1 <= s.resultIndex && s.resultIndex <= s.lastIndex && s.lastIndex <= sm.appliedIndex);
      }
    }
  }
  assert.ok(accepted > 0, 'some corruptions (in values) still decode');
});

// ---- KvReplica.commit ----

test('KvReplica.commit reports the original index for a retry answered from the session table', async () => {
  const replica = new KvReplica({ maxRaftStateBytes: -1, defer: queueMicrotask });
  let next = 1;
  // A stand-in for RaftNode.propose: appends at the next index, "commits" and applies at once.
  const node = {
    onLeadershipChange: () => undefined,
    raftStatus: () => ({ role: 'follower', term: 0 }),
    propose: (command: Uint8Array) => {
      const index = next++;
      return Promise.resolve({ index, term: 1, result: replica.stateMachine.apply({ index, term: 1, command }) });
    },
  };
  replica.attach(node as unknown as RaftNode<KvResult>);
  const write = encodeKvCommand(put('k', 'v', 'client', 1));
  const first = await replica.commit(write, 1000);
  await replica.commit(encodeKvCommand(put('x', '1')), 1000);
  const retry = await replica.commit(write, 1000);
  assert.equal(first.index, 1);
  assert.equal(next, 4, 'the retry was proposed and applied at index 3');
  assert.equal(retry.index, 1);
  assert.deepEqual(retry.result, { ...first.result, deduplicatedFrom: 1 });
  // A fresh write reports its own index.
  assert.equal((await replica.commit(encodeKvCommand(put('k', 'w', 'client', 2)), 1000)).index, 4);
});

// ---- end to end: a KvServer's HTTP API and KvClient ----

const TIMING = { heartbeatMs: 50, electionTimeoutMinMs: 300, electionTimeoutMaxMs: 600 };

async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | null | false): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function send(url: string, init: RequestInit = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url, { redirect: 'manual', ...init });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

describe('KvServer: a retried write answers its original index', { timeout: 60_000 }, () => {
  let root: string;
  let peer: KvPeer;
  let server: KvServer | null = null;
  let proxy: Server | null = null;

  const start = async (): Promise<KvServer> => {
    server = await KvServer.start({
      id: 0,
      peers: [peer],
      dataDir: join(root, 'node-0'),
      httpListen: { host: '127.0.0.1', port: Number(new URL(peer.httpUrl).port) },
      timing: TIMING,
      fsync: false,
      requestTimeoutMs: 2_000,
      // Snapshot after every few writes, so the restart below restores sessions from a snapshot.
      maxRaftStateBytes: 200,
      log: (line) => {
        if (!line.startsWith('transport: ')) process.stderr.write(`kv node 0: ${line}\n`);
      },
    });
    const s = server;
    await waitFor('a leader', 10_000, () => s.status().role === 'leader');
    return s;
  };

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'tsraft-dedup-'));
    const [raftPort, httpPort] = await freeLoopbackPorts(2);
    peer = { id: 0, raftHost: '127.0.0.1', raftPort: raftPort!, httpUrl: `http://127.0.0.1:${httpPort!}` };
    await start();
  });

  after(async () => {
    proxy?.closeAllConnections();
    proxy?.close();
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('the same X-Client-Id and X-Request-Seq sent twice answer the same index, also after a restart from a snapshot', async () => {
    const url = `${peer.httpUrl}/v1/kv/once`;
    const session = { 'X-Client-Id': 'dedup-index-test', 'X-Request-Seq': '1' };
    const first = await send(url, { method: 'PUT', headers: session, body: 'v' });
    assert.equal(first.status, 200);
    const i = first.json['index'] as number;
    assert.ok(Number.isSafeInteger(i) && i > 0);
    // Other writes, so the retry's own entry is well after i.
    for (let n = 0; n < 3; n++) assert.equal((await send(`${peer.httpUrl}/v1/kv/other`, { method: 'PUT', body: `${n}` })).status, 200);
    const retry = await send(url, { method: 'PUT', headers: session, body: 'v' });
    assert.equal(retry.status, 200);
    assert.deepEqual(retry.json, first.json, 'the retry answers exactly the first answer, index included');
    const j = server!.status().appliedIndex;
    assert.ok(j > i + 3, 'the retry went through the log');

    // Restart from a snapshot that covers the write and its retry (format v2; the session's last
    // activity is then j, its result index i): still i.
    for (let n = 0; server!.status().snapshotIndex < j; n++) {
      assert.ok(n < 50, 'a snapshot covering the retry');
      await send(`${peer.httpUrl}/v1/kv/nudge`, { method: 'PUT', body: 'x'.repeat(100) });
    }
    const snapshotIndex = server!.status().snapshotIndex;
    await server!.stop();
    server = null;
    await start();
    assert.ok(server!.status().snapshotIndex >= snapshotIndex);
    const afterRestart = await send(url, { method: 'PUT', headers: session, body: 'v' });
    assert.equal(afterRestart.status, 200);
    assert.equal(afterRestart.json['index'], i);
  });

  it('KvClient: a write whose first answer was lost reports the index of the attempt that applied', async () => {
    // A proxy that forwards every request but replaces the answer to the first write with a 504
    // outcome-unknown, as if the server had timed out after the write was proposed: the client
    // retries with the same session, and the server answers the retry from its session table.
    let originalIndex: number | undefined;
    proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const headers: Record<string, string> = {};
        for (const name of ['x-client-id', 'x-request-seq', 'content-type']) {
          const value = req.headers[name];
          if (typeof value === 'string') headers[name] = value;
        }
        const method = req.method ?? 'GET';
        const body = method === 'GET' || method === 'DELETE' ? undefined : Buffer.concat(chunks);
        void fetch(`${peer.httpUrl}${req.url ?? '/'}`, { method, headers, redirect: 'manual', ...(body === undefined ? {} : { body }) })
          .then(async (upstream) => {
            const text = await upstream.text();
            if (method === 'PUT' && originalIndex === undefined && upstream.status === 200) {
              originalIndex = (JSON.parse(text) as { index: number }).index;
              res.writeHead(504, { 'Content-Type': 'application/json' });
              res.end(JSON.stringify({ error: { code: 'outcome-unknown', message: 'the answer was lost (test proxy)' } }));
              return;
            }
            res.writeHead(upstream.status, { 'Content-Type': 'application/json' });
            res.end(text);
          })
          .catch((error: unknown) => {
            res.writeHead(502, { 'Content-Type': 'application/json' });
            res.end(JSON.stringify({ error: { code: 'proxy', message: String(error) } }));
          });
      });
    });
    await new Promise<void>((resolve) => proxy!.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

    const client = new KvClient({ endpoints: [proxyUrl], timeoutMs: 10_000, retryDelayMs: 10 });
    const appliedBefore = server!.status().appliedIndex;
    const answer = await client.put('lost-answer', 'v');
    assert.ok(originalIndex !== undefined && originalIndex > appliedBefore, 'the first attempt applied');
    assert.ok(server!.status().appliedIndex > originalIndex, 'the retry was proposed and applied after it');
    assert.equal(answer.index, originalIndex);
    assert.equal(answer.previous, null);
    assert.equal(await client.get('lost-answer'), 'v');
  });
});
