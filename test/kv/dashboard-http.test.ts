/**
 * The dashboard's server side on a real 3-node cluster in this process: /ui (the bundle, its
 * content types, refusals; the replay page at /ui/replay/), /v1/events (snapshots of the whole
 * cluster from any member, the stream bound, streams ended at stop so the drain is not held), the
 * dev fault switch (/v1/dev/faults: a leader cut off from both followers is replaced; 404 without
 * the switch) and the access each new route needs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ServerResponse } from 'node:http';
import type { DashboardSnapshot } from '../../src/kv/dashboard-feed.js';
import { STREAMS_MAX } from '../../src/kv/dashboard-feed.js';
import { requiredAccess } from '../../src/kv/http-auth.js';
import { serveDevFaults } from '../../src/kv/http-dev-routes.js';
import { HttpError } from '../../src/kv/http-io.js';
import { UiRoutes } from '../../src/kv/http-ui-routes.js';
import { KvCluster, raw, waitFor, type KvClusterOptions } from './kv-cluster-fixture.js';

const CLUSTER: KvClusterOptions = { prefix: 'tsraft-dashboard-', ignoreStopErrors: true, server: { devFaults: true } };

/** Opens /v1/events and reads until the first `snapshot` event (within 5 s); the stream is left open. */
async function firstSnapshot(url: string, abort: AbortController): Promise<{ snapshot: DashboardSnapshot; reader: ReadableStreamDefaultReader<Uint8Array> }> {
  const response = await fetch(`${url}/v1/events`, { signal: abort.signal });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    const match = /event: snapshot\ndata: (.*)\n\n/.exec(text);
    if (match !== null) return { snapshot: JSON.parse(match[1]!) as DashboardSnapshot, reader };
  }
  throw new Error(`no snapshot event; got: ${text.slice(0, 500)}`);
}

function leaderOf(cluster: KvCluster, among: readonly number[]): number | undefined {
  return among.find((id) => cluster.servers[id]?.status().role === 'leader');
}

describe('dashboard routes on a 3-node cluster', { timeout: 120_000 }, () => {
  let cluster: KvCluster;

  before(async () => {
    cluster = await KvCluster.start({ ...CLUSTER, size: 3 });
    await waitFor('a leader', 10_000, () => leaderOf(cluster, cluster.members) !== undefined, () => cluster.describe());
  });
  after(async () => {
    await cluster?.stop();
  });

  it('serves the dashboard bundle at /ui with its content types and caching, and refuses other names', async () => {
    const page = await fetch(`${cluster.url(0)}/ui`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(page.headers.get('cache-control'), 'no-cache');
    assert.match(await page.text(), /<script type="module" src="\/ui\/app.js">/);
    const script = await fetch(`${cluster.url(0)}/ui/app.js`);
    assert.equal(script.status, 200);
    assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.match(script.headers.get('cache-control') ?? '', /max-age/);
    await script.body?.cancel();
    const style = await fetch(`${cluster.url(0)}/ui/app.css`, { method: 'HEAD' });
    assert.equal(style.headers.get('content-type'), 'text/css; charset=utf-8');
    for (const path of ['/ui/nothing.js', '/ui/%2e%2e%2fpackage.json', '/ui/.hidden.js', '/ui/sub/app.js']) {
      const r = await raw(`${cluster.url(0)}${path}`);
      assert.equal(r.status, 404, path);
      assert.equal((r.json as unknown as { error: { code: string } }).error.code, 'no-route');
    }
    const post = await raw(`${cluster.url(0)}/ui`, { method: 'POST' });
    assert.equal(post.status, 405);
  });

  it('serves the replay page at /ui/replay/ (its files relative to it), redirecting /ui/replay there', async () => {
    const page = await fetch(`${cluster.url(0)}/ui/replay/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(await page.text(), /<script defer src="app.js">/);
    const script = await fetch(`${cluster.url(0)}/ui/replay/app.js`);
    assert.equal(script.status, 200);
    assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
    await script.body?.cancel();
    const bare = await fetch(`${cluster.url(0)}/ui/replay`, { redirect: 'manual' });
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.get('location'), '/ui/replay/');
    const missing = await raw(`${cluster.url(0)}/ui/replay/nothing.js`);
    assert.equal(missing.status, 404);
  });

  it('answers 503 ui-not-built when the bundle is missing', async () => {
    const routes = new UiRoutes('/nonexistent-tsraft-ui/');
    await assert.rejects(routes.serveStatic({} as ServerResponse, 'GET', '/ui'), (error: unknown) => error instanceof HttpError && error.status === 503 && error.code === 'ui-not-built');
  });

  it('streams snapshots of the whole cluster from a follower, at most STREAMS_MAX at once', async () => {
    const leader = leaderOf(cluster, cluster.members)!;
    const follower = cluster.members.find((id) => id !== leader)!;
    const aborts: AbortController[] = [];
    try {
      const abort = new AbortController();
      aborts.push(abort);
      const { snapshot } = await firstSnapshot(cluster.url(follower), abort);
      assert.equal(snapshot.node, follower);
      assert.deepEqual(snapshot.members.map((m) => m.id), [0, 1, 2]);
      assert.ok(snapshot.members.every((m) => m.status !== null), 'every member answered');
      assert.equal(snapshot.members.filter((m) => m.status!.role === 'leader').length, 1);
      assert.equal(snapshot.devControlsUrl, null);
      for (let i = 1; i < STREAMS_MAX; i++) {
        const more = new AbortController();
        aborts.push(more);
        await firstSnapshot(cluster.url(follower), more);
      }
      const refused = await raw(`${cluster.url(follower)}/v1/events`);
      assert.equal(refused.status, 503);
      assert.equal((refused.json as unknown as { error: { code: string } }).error.code, 'too-many-streams');
    } finally {
      for (const abort of aborts) abort.abort();
    }
  });

  it('ends its event streams at stop, so the HTTP drain is not held', async () => {
    const leader = leaderOf(cluster, cluster.members)!;
    const follower = cluster.members.find((id) => id !== leader)!;
    const abort = new AbortController();
    const { reader } = await firstSnapshot(cluster.url(follower), abort);
    const started = Date.now();
    await cluster.stopServer(follower);
    const tookMs = Date.now() - started;
    // The stream ends (done, or an error for a connection closed under it) rather than hanging.
    const ended = await Promise.race([
      reader.read().then(async function drain(r): Promise<boolean> {
        return r.done ? true : reader.read().then(drain);
      }, () => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 3000)),
    ]);
    abort.abort();
    assert.ok(ended, 'the event stream ended');
    assert.ok(tookMs < 900, `stop() took ${tookMs} ms with an event stream open (the drain grace is 1000 ms)`);
    await cluster.restart(follower);
  });

  it('the dev fault switch: a leader cut off from both followers is replaced; healing brings it back as a follower', async () => {
    await waitFor('a leader', 10_000, () => leaderOf(cluster, cluster.members) !== undefined, () => cluster.describe());
    const leader = leaderOf(cluster, cluster.members)!;
    const others = cluster.members.filter((id) => id !== leader);
    const cut = await raw(`${cluster.url(leader)}/v1/dev/faults?cut=${others.join(',')}`, { method: 'POST' });
    assert.equal(cut.status, 200);
    assert.deepEqual((cut.json as unknown as { cut: number[] }).cut, others);
    try {
      await waitFor('a new leader among the others', 10_000, () => leaderOf(cluster, others) !== undefined, () => cluster.describe());
    } finally {
      const healed = await raw(`${cluster.url(leader)}/v1/dev/faults?cut=`, { method: 'POST' });
      assert.equal(healed.status, 200);
      assert.deepEqual((healed.json as unknown as { cut: number[] }).cut, []);
    }
    const newLeader = leaderOf(cluster, others)!;
    await waitFor('the old leader to follow the new one', 10_000, () => cluster.servers[leader]!.status().leaderId === newLeader, () => cluster.describe());
    const state = await raw(`${cluster.url(leader)}/v1/dev/faults`);
    assert.ok((state.json as unknown as { dropped: number }).dropped > 0, 'messages were dropped while cut');
    const bad = await raw(`${cluster.url(leader)}/v1/dev/faults?cut=x`, { method: 'POST' });
    assert.equal(bad.status, 400);
  });

  it('without the switch /v1/dev/faults is 404; the new routes need the right access', () => {
    assert.throws(() => serveDevFaults(undefined, {} as ServerResponse, 'GET', ''), (error: unknown) => error instanceof HttpError && error.status === 404);
    const none = new Set<string>();
    assert.equal(requiredAccess('GET', '/ui', none), 'open');
    assert.equal(requiredAccess('GET', '/ui/app.js', none), 'open');
    assert.equal(requiredAccess('GET', '/v1/events', none), 'read');
    assert.equal(requiredAccess('POST', '/v1/dev/faults', none), 'admin');
    assert.equal(requiredAccess('GET', '/v1/dev/faults', none), 'admin');
  });
});
