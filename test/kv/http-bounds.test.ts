/**
 * No client can make the HTTP API hold unbounded resources: the connection cap (and the
 * file-descriptor rule behind it), the global budget for unfinished request bodies, timeouts
 * against slow clients, and followers that redirect a write before reading its body. Each test
 * drives the server with raw sockets on 127.0.0.1 (bodies that never end, connections that never
 * speak) and reads the figures from the server's HttpStats and /metrics, not from process memory.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import type { KvServerStatus } from '../../src/kv/api-types.js';
import { VALUE_BYTES_MAX } from '../../src/kv/commands.js';
import { startHttpApi, type HttpLimits, type KvApiBackend, type KvHttpServer } from '../../src/kv/http-api.js';
import { connectionCap, DRAIN_MS, openFileLimit } from '../../src/kv/http-io.js';

const KIB = 1024;

interface Fake {
  leader: { isLeader: boolean; leaderId: number | undefined } | undefined;
  commits: number;
}

function backend(fake: Fake): KvApiBackend {
  return {
    readMode: 'read-index',
    readLocal: () => ({ value: null, index: 0 }),
    confirmRead: () => Promise.resolve(0),
    commit: () => {
      fake.commits++;
      return Promise.resolve({ index: 1, result: { ok: true, value: null } });
    },
    leaderUrl: (id) => `http://127.0.0.1:1${id}`,
    ...(fake.leader === undefined ? {} : { leadership: () => fake.leader! }),
    isStopping: () => false,
    isNodeStopped: () => false,
    status: () => ({}) as KvServerStatus,
    metricsText: () => '',
    countResponse: () => undefined,
    log: () => undefined,
  };
}

/** A client on a raw socket: what it received, and whether the server closed it. */
class Raw {
  readonly socket: Socket;
  received = '';
  closed = false;
  sent = 0;

  constructor(port: number) {
    this.socket = connect({ host: '127.0.0.1', port });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (text: string) => (this.received += text));
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => (this.closed = true));
  }

  connected(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.socket.connecting) resolve();
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
  }

  write(text: string): void {
    if (!this.socket.destroyed && this.socket.writable) {
      this.socket.write(text, 'latin1');
      this.sent += text.length;
    }
  }

  /** The status of the first final response received (1xx skipped), if any. */
  status(): number | undefined {
    for (const m of this.received.matchAll(/HTTP\/1\.1 (\d{3}) /g)) {
      if (!m[1]!.startsWith('1')) return Number(m[1]);
    }
    return undefined;
  }

  /** The JSON error code of the first final response, if any. */
  errorCode(): string | undefined {
    return /"code":"([^"]+)"/.exec(this.received)?.[1];
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function chunk(bytes: number): string {
  return `${bytes.toString(16)}\r\n${'x'.repeat(bytes)}\r\n`;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(condition: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(10);
  }
}

describe('HTTP API resource bounds', { timeout: 60_000 }, () => {
  let server: KvHttpServer | undefined;
  const clients: Raw[] = [];

  async function start(fake: Fake, limits: HttpLimits): Promise<number> {
    server = await startHttpApi(backend(fake), { host: '127.0.0.1', port: 0 }, limits);
    return (server.address() as AddressInfo).port;
  }
  function raw(port: number): Raw {
    const client = new Raw(port);
    clients.push(client);
    return client;
  }

  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise((resolve) => server!.close(resolve));
      server = undefined;
    }
  });

  it('many concurrent never-ending bodies stay within the body budget; the requests past it get 503 and are closed', async () => {
    const budget = VALUE_BYTES_MAX; // 1 MiB
    const port = await start({ leader: undefined, commits: 0 }, { bodyBudgetBytes: budget, openFileLimit: Infinity });
    const stats = server!.httpStats;
    const head = (i: number): string => `PUT /v1/kv/k${i} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`;

    // Two bodies that stop half-way and never end: 800 KiB of the 1 MiB held.
    const holders = [raw(port), raw(port)];
    holders.forEach((h, i) => h.write(head(i) + chunk(400 * KIB)));
    await waitUntil(() => stats.bodyBytesBuffered === 800 * KIB, 5_000, () => `800 KiB buffered (now ${stats.bodyBytesBuffered})`);

    // A body whose Content-Length does not fit what is left: 503 at once, before any of it is sent.
    const declared = raw(port);
    declared.write(`PUT /v1/kv/d HTTP/1.1\r\nHost: x\r\nContent-Length: ${300 * KIB}\r\n\r\n`);
    await waitUntil(() => declared.status() !== undefined && declared.closed, 3_000, () => `a 503 and a close for the declared body (got ${JSON.stringify(declared.received.slice(0, 80))})`);
    assert.equal(declared.status(), 503);
    assert.equal(declared.errorCode(), 'body-budget-exceeded');
    assert.match(declared.received, /Retry-After: 1/i);

    // Twenty more bodies pushed as fast as the server takes them, each up to 1 MiB, never ending:
    // 20 MiB offered, and the server holds at most the budget at any time.
    const pushers = Array.from({ length: 20 }, () => raw(port));
    let peakSeen = 0;
    const sampler = setInterval(() => (peakSeen = Math.max(peakSeen, stats.bodyBytesBuffered)), 1);
    try {
      await Promise.all(
        pushers.map(async (p, i) => {
          await p.connected();
          p.write(head(100 + i));
          for (let sent = 0; sent < VALUE_BYTES_MAX && !p.closed; sent += 32 * KIB) {
            p.write(chunk(32 * KIB));
            await sleep(2);
          }
        }),
      );
      await waitUntil(() => pushers.every((p) => p.closed), 10_000, () => `every pusher closed (${pushers.filter((p) => !p.closed).length} open)`);
    } finally {
      clearInterval(sampler);
    }
    const offered = pushers.reduce((sum, p) => sum + p.sent, 0);
    assert.ok(offered > 3 * budget, `the pushers offered only ${offered} bytes`);
    assert.ok(stats.bodyBytesBufferedPeak <= budget, `peak ${stats.bodyBytesBufferedPeak} bytes buffered, budget ${budget}`);
    assert.ok(peakSeen <= budget, `sampled ${peakSeen} bytes buffered, budget ${budget}`);
    for (const p of pushers) {
      assert.equal(p.status(), 503, p.received.slice(0, 200));
      assert.equal(p.errorCode(), 'body-budget-exceeded');
    }
    assert.ok(stats.rejected('body-budget') >= 21);

    // The holders are still held; once they go away, everything is released and writes work again.
    assert.equal(holders.filter((h) => h.closed).length, 0);
    for (const h of holders) h.destroy();
    await waitUntil(() => stats.bodyBytesBuffered === 0, 3_000, () => `0 bytes buffered (now ${stats.bodyBytesBuffered})`);
    const response = await fetch(`http://127.0.0.1:${port}/v1/kv/after`, { method: 'PUT', body: 'v' });
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /^tsraft_http_body_bytes_buffered 0$/m);
    assert.match(metrics, new RegExp(`^tsraft_http_body_budget_bytes ${budget}$`, 'm'));
    assert.match(metrics, new RegExp(`^tsraft_http_rejected_total\\{reason="body-budget"\\} ${stats.rejected('body-budget')}$`, 'm'));
  });

  it('the connection cap closes the connections past it at once; a freed slot serves again', async () => {
    const cap = 8;
    const port = await start({ leader: undefined, commits: 0 }, { maxConnections: cap, openFileLimit: Infinity });
    const stats = server!.httpStats;
    assert.equal(stats.maxConnections, cap);
    const idle = Array.from({ length: cap }, () => raw(port));
    await Promise.all(idle.map((c) => c.connected()));
    await waitUntil(() => stats.connections === cap, 3_000, () => `${cap} connections (now ${stats.connections})`);

    const extra = Array.from({ length: 5 }, () => raw(port));
    for (const c of extra) c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitUntil(() => extra.every((c) => c.closed), 3_000, () => `the extra connections closed (${extra.filter((c) => !c.closed).length} open)`);
    for (const c of extra) assert.equal(c.received, '', 'a connection past the cap was served');
    assert.equal(stats.rejected('connection-limit'), extra.length);
    assert.equal(stats.connections, cap);
    assert.equal(idle.filter((c) => c.closed).length, 0);

    idle[0]!.destroy();
    await waitUntil(() => stats.connections === cap - 1, 3_000, () => `${cap - 1} connections (now ${stats.connections})`);
    const ok = raw(port);
    ok.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitUntil(() => /tsraft_http_rejected_total\{reason="connection-limit"\} 5\n/.test(ok.received), 3_000, () => `the metrics (got ${JSON.stringify(ok.received.slice(0, 120))})`);
    assert.match(ok.received, new RegExp(`tsraft_http_connections ${cap}\\n`));
    assert.match(ok.received, new RegExp(`tsraft_http_connections_max ${cap}\\n`));
  });

  it('the connection cap keeps file-descriptor headroom: at most half of the open-file limit, never its last 256', async () => {
    assert.equal(connectionCap(1024, 20_000), 1024);
    assert.equal(connectionCap(1024, 1024), 512);
    assert.equal(connectionCap(1024, 400), 144);
    assert.equal(connectionCap(1024, 100), 16);
    assert.equal(connectionCap(50, Infinity), 50);
    if (process.platform === 'linux') {
      const soft = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))![1]!;
      assert.equal(openFileLimit(), soft === 'unlimited' ? Infinity : Number(soft));
    } else {
      const limit = openFileLimit();
      assert.ok(limit === undefined || limit > 0);
    }
    // The server applies the rule to what it is asked for, with the process's real limit...
    const port = await start({ leader: undefined, commits: 0 }, { maxConnections: 1_000_000 });
    const limit = openFileLimit() ?? 1024;
    assert.equal(server!.httpStats.maxConnections, connectionCap(1_000_000, limit));
    assert.equal(server!.maxConnections, server!.httpStats.maxConnections);
    assert.ok(!Number.isFinite(limit) || server!.maxConnections <= limit / 2);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, new RegExp(`^tsraft_http_connections_max ${server!.maxConnections}$`, 'm'));
    server!.closeAllConnections();
    await new Promise((resolve) => server!.close(resolve));
    // ...and with a low one.
    await start({ leader: undefined, commits: 0 }, { maxConnections: 1024, openFileLimit: 600 });
    assert.equal(server!.httpStats.maxConnections, 300);
    assert.equal(server!.maxConnections, 300);
  });

  it('slow clients: headers and requests that do not arrive in time get 408 and are closed, their bytes released', async () => {
    const port = await start({ leader: undefined, commits: 0 }, { headersTimeoutMs: 300, receiveTimeoutMs: 600, timeoutCheckIntervalMs: 50, openFileLimit: Infinity });
    const stats = server!.httpStats;
    const started = Date.now();
    const silent = raw(port); // connects and never says a word
    const slowHeaders = raw(port);
    slowHeaders.write('PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\n');
    const slowBody = raw(port);
    slowBody.write(`PUT /v1/kv/b HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n${'y'.repeat(10)}`);
    await waitUntil(() => stats.bodyBytesBuffered === 10, 2_000, () => 'the slow body to be buffered');
    await waitUntil(() => silent.closed && slowHeaders.closed && slowBody.closed, 4_000, () => 'the slow clients to be closed');
    assert.ok(Date.now() - started < 4_000);
    assert.equal(slowHeaders.status(), 408);
    assert.equal(slowBody.status(), 408);
    assert.equal(slowBody.errorCode(), 'request-timeout');
    // The server releases the bytes when its side of the socket closes, which may come a turn
    // after the client saw its own side close.
    await waitUntil(() => stats.bodyBytesBuffered === 0, 2_000, () => `the slow body's bytes to be released (${stats.bodyBytesBuffered} held)`);
    assert.ok(stats.rejected('timeout') >= 2, `timeouts counted: ${stats.rejected('timeout')}`);
  });

  describe('a follower answers a write before reading its body', () => {
    it('307 to the leader while a 1 MiB body has barely started; nothing buffered; the connection is closed once the drain bound passes', async () => {
      const fake: Fake = { leader: { isLeader: false, leaderId: 2 }, commits: 0 };
      const port = await start(fake, { openFileLimit: Infinity });
      const stats = server!.httpStats;
      const put = raw(port);
      put.write(`PUT /v1/kv/k?encoding=base64 HTTP/1.1\r\nHost: x\r\nContent-Length: ${VALUE_BYTES_MAX}\r\n\r\n${'z'.repeat(KIB)}`);
      const append = raw(port);
      append.write(`POST /v1/kv/k?op=append HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk(KIB)}`);
      await waitUntil(() => put.status() !== undefined && append.status() !== undefined, 1_500, () => `the redirects (got ${JSON.stringify(put.received.slice(0, 60))})`);
      for (const c of [put, append]) {
        assert.equal(c.status(), 307);
        assert.equal(c.errorCode(), 'not-leader');
      }
      assert.match(put.received, /Location: http:\/\/127\.0\.0\.1:12\/v1\/kv\/k\?encoding=base64\r\n/i);
      assert.match(append.received, /Location: http:\/\/127\.0\.0\.1:12\/v1\/kv\/k\?op=append\r\n/i);
      assert.equal(stats.bodyBytesBuffered, 0);
      assert.equal(fake.commits, 0);
      // The bodies keep coming and never end: discarded, not buffered, and cut off at DRAIN_MS.
      const feeding = setInterval(() => {
        put.write('z'.repeat(4 * KIB));
        append.write(chunk(4 * KIB));
        assert.equal(stats.bodyBytesBuffered, 0);
      }, 5);
      try {
        await waitUntil(() => put.closed && append.closed, DRAIN_MS + 2_000, () => 'the redirected connections to be closed');
      } finally {
        clearInterval(feeding);
      }
      assert.equal(stats.bodyBytesBuffered, 0);
    });

    it('Expect: 100-continue gets the redirect and no 100 Continue, so the body is never sent; no leader known: 503 the same way', async () => {
      const fake: Fake = { leader: { isLeader: false, leaderId: 2 }, commits: 0 };
      const port = await start(fake, { openFileLimit: Infinity });
      const expect = raw(port);
      expect.write(`PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n`);
      await waitUntil(() => expect.status() !== undefined && expect.closed, 2_000, () => `a redirect and a close (got ${JSON.stringify(expect.received.slice(0, 80))})`);
      assert.equal(expect.status(), 307);
      assert.doesNotMatch(expect.received, /100 Continue/);
      assert.match(expect.received, /Connection: close/i);

      fake.leader = { isLeader: false, leaderId: undefined };
      const noLeader = raw(port);
      noLeader.write(`PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: ${VALUE_BYTES_MAX}\r\n\r\n`);
      await waitUntil(() => noLeader.status() !== undefined, 1_500, () => 'a 503');
      assert.equal(noLeader.status(), 503);
      assert.equal(noLeader.errorCode(), 'no-leader');
      assert.equal(fake.commits, 0);
    });

    it('a redirected body that does end leaves the connection usable; the leader reads bodies and sends 100 Continue', async () => {
      const fake: Fake = { leader: { isLeader: false, leaderId: 2 }, commits: 0 };
      const port = await start(fake, { openFileLimit: Infinity });
      const c = raw(port);
      c.write(`PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n${'a'.repeat(1000)}`);
      await waitUntil(() => c.status() !== undefined, 1_500, () => 'the redirect');
      assert.equal(c.status(), 307);
      c.write('a'.repeat(2000));
      c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitUntil(() => /\{"ok":true\}/.test(c.received), 2_000, () => `the /healthz answer on the same connection (got ${JSON.stringify(c.received.slice(-120))})`);
      assert.equal(c.closed, false);

      fake.leader = { isLeader: true, leaderId: undefined };
      const leader = raw(port);
      leader.write(`PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`);
      await waitUntil(() => /100 Continue/.test(leader.received), 1_500, () => '100 Continue');
      leader.write('hello');
      await waitUntil(() => leader.status() !== undefined, 1_500, () => 'the answer');
      assert.equal(leader.status(), 200);
      assert.equal(fake.commits, 1);
    });
  });

  it('never a crash: garbage, aborted bodies and early closes leave the server serving with nothing held', async () => {
    const port = await start({ leader: undefined, commits: 0 }, { openFileLimit: Infinity });
    const stats = server!.httpStats;
    const inputs = [
      'GARBAGE\r\n\r\n',
      'PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      `PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc`,
      `POST /v1/kv/a?op=nope HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${'q'.repeat(100)}`,
      `PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n`,
      `GET /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 * VALUE_BYTES_MAX}\r\n\r\nxx`,
    ];
    const sockets = inputs.map((text) => {
      const c = raw(port);
      c.write(text);
      return c;
    });
    await sleep(200);
    for (const c of sockets) c.destroy();
    await waitUntil(() => stats.connections === 0, 3_000, () => `no connections (now ${stats.connections})`);
    assert.equal(stats.bodyBytesBuffered, 0);
    const response = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(response.status, 200);
    await response.arrayBuffer();
  });
});
