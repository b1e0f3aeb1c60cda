/**
 * Watch end to end on a real 3-node cluster: the SSE stream (ready, events by revision, a past
 * start served from history, 410 compacted), KvClient.watch resuming across a leader kill with
 * every acknowledged write seen exactly once and in revision order, and `tsraft watch`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { KvClient } from '../../src/kv/client.js';
import type { KvWatchBatch } from '../../src/kv/client-watch.js';
import { MAIN } from '../cli/cli-fixture.js';
import { KvCluster, readSse, waitFor } from './kv-cluster-fixture.js';

describe('watch on a real cluster', { timeout: 120_000 }, () => {
  let cluster: KvCluster;
  let client: KvClient;

  before(async () => {
    cluster = await KvCluster.start({ prefix: 'tsraft-watch-', server: { watchHistoryEvents: 500 } });
    client = new KvClient({ endpoints: cluster.members.map((id) => cluster.url(id)), timeoutMs: 15_000 });
  });
  after(async () => {
    await client.close();
    await cluster.stop();
  });

  it('the stream: ready, then each revision of the prefix with its revisions; a past start comes from history; too old is 410 compacted', async () => {
    const first = await client.put('w/a', '1');
    const follower = await waitFor('a follower', 10_000, () => cluster.members.find((id) => cluster.servers[id]?.status().role === 'follower'));
    // From the revision after the first write: a follower may not have applied it yet, and
    // "from now on" would then include it.
    const live = readSse(`${cluster.url(follower)}/v1/watch?prefix=w/&from-revision=${first.revision! + 1}`, (m) => m.filter((x) => x.event === 'events').length >= 2);
    const second = await client.put('w/b', '2');
    await client.put('other', 'x');
    const third = await client.delete('w/a');
    const { messages } = await live;
    assert.equal(messages[0]!.event, 'ready');
    const events = messages.filter((m) => m.event === 'events');
    assert.deepEqual(
      events.map((m) => m.data['revision']),
      [second.revision, third.revision],
    );
    const put = (events[0]!.data['events'] as Record<string, unknown>[])[0]!;
    assert.equal(put['type'], 'put');
    assert.equal(put['key'], 'w/b');
    assert.equal(put['value'], '2');
    assert.equal(put['modRevision'], second.revision);
    assert.equal(put['version'], 1);
    assert.equal((events[1]!.data['events'] as Record<string, unknown>[])[0]!['type'], 'delete');

    // From a past revision, on another node: the same revisions, from history.
    const past = await readSse(`${cluster.url(cluster.members.find((id) => id !== follower)!)}/v1/watch?prefix=w/&from-revision=${first.revision}`, (m) => m.filter((x) => x.event === 'events').length >= 3);
    assert.deepEqual(
      past.messages.filter((m) => m.event === 'events').map((m) => m.data['revision']),
      [first.revision, second.revision, third.revision],
    );

    // History holds 500 events here: push the first revisions out of it.
    for (let i = 0; i < 520; i++) await client.put('filler', String(i));
    const gone = await readSse(`${cluster.url(follower)}/v1/watch?prefix=w/&from-revision=${first.revision}`, () => true);
    assert.equal(gone.status, 410);
    const error = (JSON.parse(gone.body) as { error: { code: string; compactRevision: number } }).error;
    assert.equal(error.code, 'compacted');
    assert.ok(error.compactRevision >= first.revision!);
    const bad = await fetch(`${cluster.url(follower)}/v1/watch?prefix=w/&from-revision=abc`);
    assert.equal(bad.status, 400);
  });

  it('KvClient.watch resumes across a leader kill: every acknowledged write once, in revision order', async () => {
    const leader = await waitFor('a leader', 10_000, () => cluster.members.find((id) => cluster.servers[id]?.status().role === 'leader'));
    // The watcher starts on the leader, the node about to go.
    const watcher = new KvClient({ endpoints: [leader, ...cluster.members.filter((id) => id !== leader)].map((id) => cluster.url(id)), timeoutMs: 15_000 });
    const start = await client.put('r/start', '0');
    const seen: KvWatchBatch[] = [];
    const stop = new AbortController();
    const watching = (async () => {
      for await (const batch of watcher.watch({ prefix: 'r/' }, { fromRevision: start.revision!, signal: stop.signal, idleTimeoutMs: 3_000 })) seen.push(batch);
    })();
    const acknowledged: number[] = [start.revision!];
    for (let i = 0; i < 60; i++) {
      if (i === 20) void cluster.stopServer(leader);
      const result = await client.put(`r/${i % 5}`, String(i));
      acknowledged.push(result.revision!);
    }
    await waitFor('the watcher to see every acknowledged write', 20_000, () => acknowledged.every((r) => seen.some((b) => b.revision === r)), () => `seen ${seen.map((b) => b.revision).join(',')}`);
    stop.abort();
    await watching;
    const revisions = seen.map((b) => b.revision);
    for (let i = 1; i < revisions.length; i++) assert.ok(revisions[i]! > revisions[i - 1]!, `revisions in order, none repeated: ${revisions.join(',')}`);
    assert.deepEqual(revisions.filter((r) => acknowledged.includes(r)), acknowledged);
    await watcher.close();
    await cluster.startServer(leader);
  });

  it('tsraft watch --prefix prints each change and exits after --count', async () => {
    const before = await client.put('cli/start', '');
    const child = spawn(process.execPath, [MAIN, 'watch', '--prefix', 'cli/a', '--from-revision', String(before.revision! + 1), '--count', '2', '-o', 'json', '--endpoints', cluster.members.map((id) => cluster.url(id)).join(',')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TSRAFT_LEADER_CACHE: 'off' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const a = await client.put('cli/a', 'hello');
    await client.delete('cli/a');
    const code = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 15_000))]);
    if (code === 'hung') child.kill();
    assert.equal(code, 0, stderr);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 2);
    assert.deepEqual(lines[0], { revision: a.revision, type: 'put', key: 'cli/a', value: 'hello', encoding: 'utf8', createRevision: a.revision, modRevision: a.revision, version: 1 });
    assert.equal(lines[1]!['type'], 'delete');
  });
});
