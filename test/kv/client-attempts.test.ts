/**
 * KvClient's attempt deadlines against a 3-node cluster in this process: a member that accepts
 * connections and never answers (what a SIGSTOPped node looks like from outside) costs one attempt,
 * the client then remembers the member that answered, and a write whose attempt timed out after it
 * reached the leader applies once (the retry carries the same session pair). Every wait is bounded.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { attemptBudgetMs, DEFAULT_ATTEMPT_TIMEOUT_MS } from '../../src/kv/client-endpoints.js';
import { KvClient, KvClientError } from '../../src/kv/client.js';
import { KvCluster, sleep } from './kv-cluster-fixture.js';

/** A TCP listener that accepts connections and never answers: a paused node, as a client sees one. */
async function silentListener(): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  // Requests, not connections: undici may open a spare connection that never carries one.
  let requests = 0;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('data', (chunk: Buffer) => (requests += (chunk.toString('latin1').match(/ HTTP\/1\.1\r\n/g) ?? []).length));
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * An HTTP proxy in front of `target` that forwards each request at once (so it takes effect) but
 * holds the answer back for `holdMs`: an attempt whose outcome the client cannot know in time.
 */
async function slowProxy(target: () => string, holdMs: number): Promise<{ url: string; answers: string[]; close: () => Promise<void> }> {
  const answers: string[] = [];
  const server: HttpServer = createHttpServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      const headers: Record<string, string> = {};
      for (const name of ['x-client-id', 'x-request-seq', 'content-type']) {
        const v = request.headers[name];
        if (typeof v === 'string') headers[name] = v;
      }
      void fetch(`${target()}${request.url ?? '/'}`, { method: request.method ?? 'GET', headers, redirect: 'manual', ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}) })
        .then(async (upstream) => {
          const text = await upstream.text();
          answers.push(text);
          await sleep(holdMs);
          if (!response.destroyed) response.writeHead(upstream.status, { 'Content-Type': 'application/json' }).end(text);
        })
        .catch(() => response.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    answers,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('attemptBudgetMs', () => {
  it('gives an attempt its own deadline, never more than what is left of the operation', () => {
    assert.deepEqual(attemptBudgetMs(5_000, 1_000), { budgetMs: 1_000, cutShort: true });
    assert.deepEqual(attemptBudgetMs(400, 1_000), { budgetMs: 400, cutShort: false });
    assert.equal(DEFAULT_ATTEMPT_TIMEOUT_MS, 1_000);
  });
});

describe('a redirect to a member that just let an attempt run out', () => {
  it('is not followed while the member is avoided: the follower is asked again until it knows another leader', async () => {
    const hung = await silentListener();
    const started = Date.now();
    // A follower that still believes the hung member leads for 1 s (until "an election"), then answers.
    const follower = createHttpServer((request, response) => {
      request.resume();
      if (Date.now() - started < 1_000) response.writeHead(307, { Location: `${hung.url}${request.url ?? '/'}` }).end('{"error":{"code":"not-leader","message":"ask the leader"}}');
      else response.writeHead(200, { 'Content-Type': 'application/json' }).end('{"index":7}');
    });
    await new Promise<void>((resolve) => follower.listen(0, '127.0.0.1', resolve));
    const followerUrl = `http://127.0.0.1:${(follower.address() as { port: number }).port}`;
    const client = new KvClient({ endpoints: [hung.url, followerUrl], timeoutMs: 5_000, attemptTimeoutMs: 400 });
    try {
      assert.equal((await client.put('k', 'v')).index, 7);
      // One attempt at the hung member; its avoidance (2 x 400 ms) outlasts the follower's stale view.
      assert.equal(hung.requests(), 1);
      assert.ok(Date.now() - started < 2_500, `took ${Date.now() - started} ms`);
    } finally {
      await client.close();
      follower.closeAllConnections();
      await new Promise<void>((resolve) => follower.close(() => resolve()));
      await hung.close();
    }
  });
});

describe('KvClient attempt deadlines on a 3-node cluster', { timeout: 90_000 }, () => {
  let cluster: KvCluster;
  let leaderUrl: string;

  before(async () => {
    cluster = await KvCluster.start({ prefix: 'tsraft-attempts-', ignoreStopErrors: true });
    leaderUrl = cluster.url(await cluster.leader());
  });
  after(async () => {
    await cluster?.stop();
  });

  it('a member that never answers, given first, costs one attempt; the leader is remembered', async () => {
    const hung = await silentListener();
    const client = new KvClient({ endpoints: [hung.url, ...cluster.members.map((id) => cluster.url(id))], timeoutMs: 5_500 });
    try {
      const started = Date.now();
      await client.put('attempts-a', 'one');
      const took = Date.now() - started;
      // One attempt deadline, then a redirect or two on a healthy cluster: well under the old 5.5 s.
      assert.ok(took >= DEFAULT_ATTEMPT_TIMEOUT_MS - 50 && took < DEFAULT_ATTEMPT_TIMEOUT_MS + 1_000, `put took ${took} ms`);
      assert.equal(hung.requests(), 1);

      // The next operations start at the member that answered: the hung one is not asked again.
      const again = Date.now();
      await client.put('attempts-a', 'two');
      assert.equal(await client.get('attempts-a'), 'two');
      assert.ok(Date.now() - again < 500, `later operations took ${Date.now() - again} ms`);
      assert.equal(hung.requests(), 1);
    } finally {
      await client.close();
      await hung.close();
    }
  });

  it('an attempt never outlives the operation: a lone hung endpoint fails at the operation timeout', async () => {
    const hung = await silentListener();
    const client = new KvClient({ endpoints: [hung.url], timeoutMs: 300, attemptTimeoutMs: 5_000 });
    try {
      const started = Date.now();
      await assert.rejects(client.get('k'), (e: unknown) => e instanceof KvClientError && e.code === 'timeout');
      assert.ok(Date.now() - started < 1_500, `rejected after ${Date.now() - started} ms`);
    } finally {
      await client.close();
      await hung.close();
    }
  });

  it('a write whose attempt timed out after reaching the leader applies once (same session pair on the retry)', async () => {
    const proxy = await slowProxy(() => leaderUrl, 1_500);
    const client = new KvClient({ endpoints: [proxy.url, ...cluster.members.map((id) => cluster.url(id))], timeoutMs: 5_000, attemptTimeoutMs: 300 });
    try {
      const result = await client.append('attempts-once', 'x');
      assert.equal(await client.get('attempts-once'), 'x');
      // The proxied attempt applied; the retry was answered from the session table with its index.
      assert.ok(proxy.answers.length >= 1);
      const first = JSON.parse(proxy.answers[0]!) as { index?: unknown };
      assert.equal(result.index, first.index);
    } finally {
      await client.close();
      await proxy.close();
    }
  });

  it('a validation error for attemptTimeoutMs is a RangeError', () => {
    assert.throws(() => new KvClient({ endpoints: [leaderUrl], attemptTimeoutMs: 0 }), RangeError);
  });
});
