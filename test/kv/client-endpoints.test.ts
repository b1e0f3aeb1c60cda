/**
 * KvClient keeps finding the cluster after every member it was given is gone: a member it was
 * redirected to, and that answered, becomes one of its endpoints.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { test } from 'node:test';
import { KvClient } from '../../src/kv/client.js';

function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` })));
}

const close = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

test('a member learned from a redirect stays reachable after the given endpoint is gone', async () => {
  let leaderGets = 0;
  const leader = await listen((_request, response) => {
    // The second request finds the leader busy electing: the client moves on to another endpoint.
    if (++leaderGets === 2) response.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': '0' }).end('{"error":{"code":"no-leader","message":"election"}}');
    else response.writeHead(200, { 'Content-Type': 'application/json' }).end('{"value":"v"}');
  });
  const given = await listen((request, response) => {
    response.writeHead(307, { Location: `${leader.url}${request.url}`, 'Content-Type': 'application/json' }).end('{"error":{"code":"not-leader","message":"ask the leader"}}');
  });
  const client = new KvClient({ endpoints: [given.url], timeoutMs: 3000, retryDelayMs: 5 });
  try {
    assert.equal(await client.get('k'), 'v');
    await close(given.server);
    // Without a learned endpoint the client would only retry the closed one until its timeout.
    assert.equal(await client.get('k'), 'v');
    assert.equal(leaderGets, 3);
  } finally {
    given.server.close();
    await close(leader.server);
  }
});
