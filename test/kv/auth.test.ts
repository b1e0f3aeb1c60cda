/**
 * Authentication and authorization of the HTTP API (http-auth.ts, security/auth-file.ts) on a
 * 3-node cluster of in-process KvServers with an auth file: roles per endpoint, 401 / 403 before
 * anything else (before a follower's redirect, before a body is read), sessions bound to their
 * principal (no takeover through another client's X-Client-Id), /metrics counting refusals,
 * setAuth() replacing the file, and a bad auth file refused before the data directory is touched.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../src/runtime/errors.js';
import { hashToken, type AuthFile, type Role } from '../../src/security/auth-file.js';
import { KvServer } from '../../src/kv/server.js';
import { KvCluster, raw, rawExchange, type Raw } from './kv-cluster-fixture.js';

const TOKENS = {
  alice: 'tsr_alice-secret-token-0000000000000000000000',
  bob: 'tsr_bob-secret-token-000000000000000000000000',
  reader: 'tsr_reader-secret-token-0000000000000000000000',
  admin: 'tsr_admin-secret-token-000000000000000000000',
  nobody: 'tsr_nobody-secret-token-0000000000000000000000',
} as const;
type Who = keyof typeof TOKENS;

const ROLES_OF: Record<Who, Role[]> = { alice: ['read', 'write'], bob: ['read', 'write'], reader: ['read'], admin: ['admin'], nobody: [] };

function authFile(extra: Partial<AuthFile> = {}, who: readonly Who[] = Object.keys(TOKENS) as Who[]): AuthFile {
  return { version: 1, tokens: who.map((name) => ({ name, roles: ROLES_OF[name], sha256: hashToken(TOKENS[name]) })), public: [], ...extra };
}

function bearer(who: Who): Record<string, string> {
  return { Authorization: `Bearer ${TOKENS[who]}` };
}

function errorOf(r: Raw): { code?: unknown; message?: unknown } {
  return (r.json['error'] as { code?: unknown; message?: unknown } | undefined) ?? {};
}

/** Sends `head` on a new connection and resolves with what comes back once it matches `until`. */
async function exchange(port: number, head: string, until: RegExp): Promise<string> {
  const { socket, response } = rawExchange(port, head);
  try {
    return await response(until);
  } finally {
    socket.destroy();
  }
}

describe('HTTP API authentication and roles on a 3-node cluster', { timeout: 60_000 }, () => {
  let cluster: KvCluster;
  let leaderUrl: string;
  let followerUrl: string;

  before(async () => {
    cluster = await KvCluster.start({
      prefix: 'tsraft-auth-',
      ignoreStopErrors: true,
      server: {
        auth: authFile(),
        log: (line) => {
          if (!line.startsWith('transport: ') && !line.startsWith('auth: ')) process.stderr.write(`kv: ${line}\n`);
        },
      },
    });
    const leader = await cluster.leader();
    leaderUrl = cluster.url(leader);
    followerUrl = cluster.url((leader + 1) % 3);
  });
  after(async () => {
    await cluster?.stop();
  });

  const put = (url: string, key: string, value: string, headers: Record<string, string> = {}): Promise<Raw> =>
    raw(`${url}/v1/kv/${key}`, { method: 'PUT', body: value, headers });
  const get = (url: string, key: string, headers: Record<string, string> = {}): Promise<Raw> => raw(`${url}/v1/kv/${key}`, { headers });

  it('no token: 401 unauthenticated with WWW-Authenticate; an unknown or malformed token: 401 too', async () => {
    const none = await get(leaderUrl, 'k');
    assert.equal(none.status, 401);
    assert.equal(errorOf(none).code, 'unauthenticated');
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="tsraft"');
    const unknown = await get(leaderUrl, 'k', { Authorization: 'Bearer tsr_not-a-token' });
    assert.equal(unknown.status, 401);
    assert.match(String(errorOf(unknown).message), /unknown bearer token/);
    assert.match(unknown.headers.get('www-authenticate') ?? '', /^Bearer realm="tsraft", error="invalid_token"$/);
    const basic = await get(leaderUrl, 'k', { Authorization: 'Basic YWxpY2U6cHc=' });
    assert.equal(basic.status, 401);
    assert.match(String(errorOf(basic).message), /Bearer <token>/);
  });

  it('a read token reads but cannot write: 403 naming the principal and the role, and nothing is written', async () => {
    assert.equal((await get(leaderUrl, 'r-only', bearer('reader'))).status, 404);
    const refused = await put(leaderUrl, 'r-only', 'x', bearer('reader'));
    assert.equal(refused.status, 403);
    assert.equal(errorOf(refused).code, 'forbidden');
    assert.match(String(errorOf(refused).message), /principal "reader" .* lacks the write role needed for PUT \/v1\/kv\/r-only/);
    const del = await raw(`${leaderUrl}/v1/kv/r-only`, { method: 'DELETE', headers: bearer('reader') });
    assert.equal(del.status, 403);
    assert.equal((await get(leaderUrl, 'r-only', bearer('alice'))).status, 404);
    // A principal with no roles is authenticated, but may not even read.
    assert.equal((await get(leaderUrl, 'r-only', bearer('nobody'))).status, 403);
  });

  it('a write token cannot change membership or move leadership (403, membership unchanged); admin can', async () => {
    const before = await raw(`${leaderUrl}/v1/members`, { headers: bearer('alice') });
    assert.equal(before.status, 200);
    const remove = await raw(`${leaderUrl}/v1/members/2`, { method: 'DELETE', headers: bearer('alice') });
    assert.equal(remove.status, 403);
    assert.match(String(errorOf(remove).message), /"alice" .* lacks the admin role/);
    const add = await raw(`${leaderUrl}/v1/members`, { method: 'POST', headers: bearer('alice'), body: '{"id":9,"raft":"127.0.0.1:1","http":"http://127.0.0.1:2"}' });
    assert.equal(add.status, 403);
    assert.equal((await raw(`${leaderUrl}/v1/leader/transfer`, { method: 'POST', headers: bearer('alice') })).status, 403);
    const after = await raw(`${leaderUrl}/v1/members`, { headers: bearer('reader') });
    assert.deepEqual(after.json['voters'], before.json['voters']);
    assert.deepEqual(after.json['learners'], []);
    // admin implies read and write, and may move leadership.
    assert.equal((await put(leaderUrl, 'by-admin', 'v', bearer('admin'))).status, 200);
    const moved = await raw(`${leaderUrl}/v1/leader/transfer`, { method: 'POST', headers: bearer('admin') });
    assert.equal(moved.status, 200, JSON.stringify(moved.json));
    leaderUrl = String(moved.json['leaderUrl']);
    followerUrl = cluster.url((Number(moved.json['leaderId']) + 1) % 3);
  });

  it('a follower refuses before it redirects: 401 / 403 rather than 307; with the role, the 307', async () => {
    assert.equal((await put(followerUrl, 'f', 'v')).status, 401);
    assert.equal((await put(followerUrl, 'f', 'v', bearer('reader'))).status, 403);
    assert.equal((await raw(`${followerUrl}/v1/leader/transfer`, { method: 'POST', headers: bearer('bob') })).status, 403);
    const redirected = await put(followerUrl, 'f', 'v', bearer('bob'));
    assert.equal(redirected.status, 307);
  });

  it('a refused request is answered without its body: no 100 Continue, and no waiting for the bytes', async () => {
    const port = Number(new URL(leaderUrl).port);
    const withContinue = await exchange(
      port,
      'PUT /v1/kv/big HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\nExpect: 100-continue\r\n\r\n',
      /\r\n\r\n\{.*\}$/s,
    );
    assert.match(withContinue, /^HTTP\/1\.1 401 /);
    assert.doesNotMatch(withContinue, /100 Continue/);
    // Without Expect: the headers alone get the answer; the body is never waited for.
    const forbidden = await exchange(
      port,
      `PUT /v1/kv/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKENS.reader}\r\nContent-Length: 1000000\r\n\r\n`,
      /\r\n\r\n\{.*\}$/s,
    );
    assert.match(forbidden, /^HTTP\/1\.1 403 /);
    assert.equal((await get(leaderUrl, 'big', bearer('alice'))).status, 404);
  });

  it("sessions are bound to their principal: bob sending alice's client id cannot make her next write a no-op", async () => {
    const session = (seq: number): Record<string, string> => ({ 'X-Client-Id': 'shared-client', 'X-Request-Seq': String(seq) });
    assert.equal((await put(leaderUrl, 'takeover', 'alice-1', { ...bearer('alice'), ...session(1) })).status, 200);
    // Bob, knowing alice's client id, races ahead with a later seq: it lands in his own session.
    const bobs = await put(leaderUrl, 'takeover-bob', 'bob-2', { ...bearer('bob'), ...session(2) });
    assert.equal(bobs.status, 200);
    // Alice's next write (seq 2) is applied for real, not answered from a session entry bob wrote.
    const alices = await put(leaderUrl, 'takeover', 'alice-2', { ...bearer('alice'), ...session(2) });
    assert.equal(alices.status, 200);
    assert.equal(alices.json['previous'], 'alice-1');
    const read = await get(leaderUrl, 'takeover', bearer('bob'));
    assert.equal(read.json['value'], 'alice-2');
    // A retry of alice's own (id, seq) is still answered from her session, exactly once.
    const retry = await put(leaderUrl, 'takeover', 'alice-2', { ...bearer('alice'), ...session(2) });
    assert.deepEqual(retry.json, alices.json);
  });

  it('a client id too long once bound to the principal is 400, naming the limit left', async () => {
    const limit = 128 - 'alice/'.length;
    const ok = await put(leaderUrl, 'long-id', 'v', { ...bearer('alice'), 'X-Client-Id': 'c'.repeat(limit), 'X-Request-Seq': '1' });
    assert.equal(ok.status, 200);
    const tooLong = await put(leaderUrl, 'long-id', 'v', { ...bearer('alice'), 'X-Client-Id': 'c'.repeat(limit + 1), 'X-Request-Seq': '1' });
    assert.equal(tooLong.status, 400);
    assert.match(String(errorOf(tooLong).message), new RegExp(`1\\.\\.${limit} printable ASCII .*principal "alice"`));
  });

  it('/healthz and /readyz are open; /metrics and /v1/status need a principal (any, even one without roles)', async () => {
    assert.equal((await raw(`${leaderUrl}/healthz`)).status, 200);
    assert.equal((await raw(`${leaderUrl}/readyz`)).status, 200);
    assert.equal((await raw(`${leaderUrl}/v1/status`)).status, 401);
    assert.equal((await raw(`${leaderUrl}/v1/status`, { headers: bearer('nobody') })).status, 200);
    const closed = await fetch(`${leaderUrl}/metrics`);
    await closed.text();
    assert.equal(closed.status, 401);
    // One refusal of each kind on this node (the earlier ones may have gone to another leader).
    assert.equal((await get(leaderUrl, 'k', { Authorization: 'Bearer tsr_unknown' })).status, 401);
    assert.equal((await put(leaderUrl, 'k', 'v', bearer('reader'))).status, 403);
    const metrics = await fetch(`${leaderUrl}/metrics`, { headers: bearer('nobody') });
    const text = await metrics.text();
    assert.equal(metrics.status, 200);
    for (const reason of ['missing', 'invalid', 'forbidden']) {
      const count = Number(new RegExp(`^tsraft_http_auth_refused_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text)?.[1]);
      assert.ok(count > 0, `${reason}: ${count}\n${text}`);
    }
    assert.match(text, /^tsraft_http_auth_refused_total\{reason="certificate"\} 0$/m);
  });

  it('setAuth puts another file in force (public endpoints, a removed token); a bad one throws and the old one stays', async () => {
    const servers = cluster.members.map((id) => cluster.server(id));
    for (const server of servers) server.setAuth(authFile({ public: ['/metrics', '/v1/status'] }, ['alice', 'reader']));
    assert.equal((await raw(`${leaderUrl}/v1/status`)).status, 200);
    const metrics = await fetch(`${leaderUrl}/metrics`);
    await metrics.text();
    assert.equal(metrics.status, 200);
    assert.equal((await get(leaderUrl, 'k', bearer('bob'))).status, 401);
    assert.throws(
      () => servers[0]!.setAuth({ version: 1, tokens: [{ name: 'x/y', roles: ['root' as Role], sha256: 'zz' }] }, 'auth file test.json'),
      (error: unknown) => error instanceof ConfigError && /auth file test\.json: tokens\[0\]\.name/.test(error.message) && /tokens\[0\]\.roles\[0\]/.test(error.message),
    );
    assert.equal((await get(cluster.url(0), 'k', bearer('alice'))).status !== 401, true);
    for (const server of servers) server.setAuth(authFile());
  });

  it('a reload ends the open event and watch streams, so a removed token keeps none; a valid one reconnects', async () => {
    const url = cluster.url(0);
    const ended = async (path: string): Promise<{ status: number; end: Promise<string> }> => {
      const response = await fetch(`${url}${path}`, { headers: bearer('reader'), signal: AbortSignal.timeout(10_000) });
      const reader = response.body!.getReader();
      const end = (async () => {
        let text = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return text;
          text += new TextDecoder().decode(value);
        }
      })();
      return { status: response.status, end };
    };
    const events = await ended('/v1/events');
    const watch = await ended('/v1/watch?prefix=auth/');
    assert.equal(events.status, 200);
    assert.equal(watch.status, 200);
    cluster.server(0).setAuth(authFile({}, ['alice']));
    assert.match(await watch.end, /event: error\ndata: \{"code":"closed","message":"the authorization changed/);
    await events.end;
    assert.equal((await fetch(`${url}/v1/watch?prefix=auth/`, { headers: bearer('reader') })).status, 401);
    cluster.server(0).setAuth(authFile());
  });
});

describe('KvServer.start with a bad auth file', () => {
  it('rejects with ConfigError naming the field, before the data directory is created', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tsraft-auth-bad-'));
    try {
      const dataDir = join(root, 'node-0');
      await assert.rejects(
        KvServer.start({
          id: 0,
          peers: [{ id: 0, raftHost: '127.0.0.1', raftPort: 1, httpUrl: 'http://127.0.0.1:2' }],
          dataDir,
          auth: { version: 2, tokens: [], extra: true } as unknown as AuthFile,
          log: () => undefined,
        }),
        (error: unknown) => error instanceof ConfigError && /auth: version/.test(error.message) && /auth: "extra": unknown field/.test(error.message),
      );
      assert.equal(existsSync(dataDir), false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
