/**
 * HTTPS for the HTTP API (KvServerOptions.httpTls) and the client side of it (KvClient `tls` and
 * `token`): a 3-node KvServer cluster whose peers speak mutual TLS and whose HTTP APIs are HTTPS
 * serves KvClient writes and reads (redirects from a follower followed over HTTPS); a client that
 * does not trust the nodes' CA fails at once with code 'tls', naming the OpenSSL reason; a failed
 * handshake is counted in /metrics; a client certificate reaches a server with a client CA as an
 * authorized socket; the token goes on every request, redirects included, and never into an error
 * message; the server refuses an own URL whose scheme contradicts httpTls, and certificates TLS
 * cannot load, before the data directory is touched; `tsraft node` checks its HTTPS flags alike.
 * Everything on 127.0.0.1; every wait is bounded.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { KvClient, KvClientError } from '../../src/kv/client.js';
import { clusterHttp } from '../../src/kv/client-http.js';
import { startBoundedHttpServer, type KvHttpServer } from '../../src/kv/http-server.js';
import { KvServer, type KvPeer } from '../../src/kv/server.js';
import { ConfigError } from '../../src/runtime/errors.js';
import { clientIdentity, createCa, createClientCertificate, createNodeCertificate, type CertificateAndKey } from '../../src/security/certs.js';
import { freeLoopbackPorts } from '../../src/testing/ports.js';
import { parseNodeOptions, type NodeOptions } from '../../src/cli/node.js';
import { UsageError } from '../../src/cli/common.js';
import { TIMING, waitFor } from './kv-cluster-fixture.js';

const HOST = '127.0.0.1';
const CLUSTER = 'https-kv';

let ca: CertificateAndKey;
let otherCa: CertificateAndKey;
const nodeCerts = new Map<number, CertificateAndKey>();
let opsCert: CertificateAndKey;

before(async () => {
  ca = await createCa({ commonName: 'tsraft https test CA', days: 2 });
  otherCa = await createCa({ commonName: 'another CA', days: 2 });
  for (const id of [0, 1, 2]) nodeCerts.set(id, await createNodeCertificate(ca, { clusterId: CLUSTER, nodeId: id, hosts: [HOST, 'localhost'], days: 2 }));
  opsCert = await createClientCertificate(ca, { name: 'ops', roles: ['read', 'write'], days: 2 });
});

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  assert.ok(m !== null, `${name} missing from /metrics`);
  return Number(m[1]);
}

describe('a KV cluster with HTTPS and peer mTLS', () => {
  let root: string;
  let peers: KvPeer[];
  const servers: KvServer[] = [];
  const clients: KvClient[] = [];
  const client = (options: Partial<ConstructorParameters<typeof KvClient>[0]> = {}): KvClient => {
    const c = new KvClient({ endpoints: peers.map((p) => p.httpUrl), timeoutMs: 5_000, ...options });
    clients.push(c);
    return c;
  };

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'tsraft-https-kv-'));
    const ports = await freeLoopbackPorts(6);
    peers = [0, 1, 2].map((id) => ({ id, raftHost: HOST, raftPort: ports[id]!, httpUrl: `https://${HOST}:${ports[3 + id]!}` }));
    for (const id of [0, 1, 2]) {
      const own = nodeCerts.get(id)!;
      servers.push(
        await KvServer.start({
          id,
          peers,
          dataDir: join(root, `node-${id}`),
          clusterId: CLUSTER,
          fsync: false,
          timing: TIMING,
          peerTls: { ca: ca.cert, cert: own.cert, key: own.key },
          httpTls: { cert: own.cert, key: own.key, clientCa: ca.cert },
          log: () => undefined,
        }),
      );
    }
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(servers.map((s) => s.stop({ handOver: false }).catch(() => undefined)));
    rmSync(root, { recursive: true, force: true });
  });

  test('KvClient with the CA writes and reads, following a follower\'s redirect over HTTPS', { timeout: 20_000 }, async () => {
    const leader = await waitFor('a leader', 10_000, () => servers.find((s) => s.status().role === 'leader'));
    const follower = peers.find((p) => p.id !== leader.id)!;
    // Starting at a follower: its 307 names the leader's https:// URL. The nodes ask for client
    // certificates (and then require a principal): the ops certificate is one.
    const c = client({ endpoints: [follower.httpUrl], tls: { ca: ca.cert, cert: opsCert.cert, key: opsCert.key } });
    const put = await c.put('greeting', 'hello over https');
    assert.ok(put.index > 0);
    assert.equal(await c.get('greeting'), 'hello over https');
    assert.equal((await c.status()).clusterId, CLUSTER);
    const buffers = client({ tls: { ca: Buffer.from(ca.cert), cert: Buffer.from(opsCert.cert), key: Buffer.from(opsCert.key) } });
    assert.equal(await buffers.get('greeting'), 'hello over https');
  });

  test('without the CA, or with another CA, KvClient fails at once with code tls, naming the reason', { timeout: 20_000 }, async () => {
    const started = Date.now();
    const noCa = client();
    const error = await noCa.get('greeting').then(
      () => assert.fail('a get without the CA succeeded'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof KvClientError && error.code === 'tls', String(error));
    // The nodes send the CA with their certificate (it is their client CA too), so OpenSSL calls it an untrusted chain.
    assert.match(error.message, /(not signed by a trusted CA \(UNABLE_TO_VERIFY_LEAF_SIGNATURE|chain ends in a CA that is not trusted \(SELF_SIGNED_CERT_IN_CHAIN)\): an https endpoint, but no CA was given/);
    const wrong = await client({ tls: { ca: otherCa.cert } }).put('k', 'v').then(
      () => assert.fail('a put with another CA succeeded'),
      (e: unknown) => e,
    );
    assert.ok(wrong instanceof KvClientError && wrong.code === 'tls', String(wrong));
    assert.match(wrong.message, /\((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)\): it is not signed by the CA given/);
    assert.ok(Date.now() - started < 4_000, 'certificate failures are not retried until the timeout');
  });

  test('a failed TLS handshake is counted in /metrics', { timeout: 20_000 }, async () => {
    const before = metric(await metricsOf(peers[0]!.httpUrl), 'tsraft_http_tls_refused_total');
    // Plain HTTP to the HTTPS port: no handshake at all.
    await new Promise<void>((resolve) => {
      const socket = connectTcp({ host: HOST, port: Number(new URL(peers[0]!.httpUrl).port) }, () => socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'));
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
      socket.resume();
      socket.setTimeout(5_000, () => socket.destroy());
    });
    const counted = await waitFor('the refusal counted', 5_000, async () => {
      const now = metric(await metricsOf(peers[0]!.httpUrl), 'tsraft_http_tls_refused_total');
      return now > before ? now : undefined;
    });
    assert.ok(counted >= before + 1);
  });

  test('an http:// endpoint of a client with TLS options is reached in the clear, token included', { timeout: 20_000 }, async () => {
    // The tls options apply to https:// endpoints only: a plain server is reached in the clear.
    const plain = await echoServer();
    try {
      const c = client({ endpoints: [plain.url], tls: { ca: ca.cert }, token: 'tok-plain' });
      const status = (await c.status()) as unknown as { authorization: string | null; encrypted: boolean };
      assert.equal(status.encrypted, false);
      assert.equal(status.authorization, 'Bearer tok-plain');
    } finally {
      await plain.server.drain(0);
    }
  });
});

/** GET /metrics (text, so not through KvClient) with the CA and the ops certificate. */
async function metricsOf(url: string): Promise<string> {
  const http = clusterHttp({ tls: { ca: ca.cert, cert: opsCert.cert, key: opsCert.key } });
  try {
    const response = await http.fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) });
    return await response.text();
  } finally {
    await http.close();
  }
}

/**
 * A bare bounded server (HTTPS when `tls` is given) answering every request with JSON describing
 * what it saw: its Authorization header, whether the connection is encrypted, and the client
 * certificate's verdict and name.
 */
async function echoServer(tls?: { cert: string; key: string; clientCa?: string }): Promise<{ server: KvHttpServer; url: string; seen: string[] }> {
  const seen: string[] = [];
  let port = 0;
  const server = await startBoundedHttpServer(
    { host: HOST, port: 0 },
    {},
    () => undefined,
    () => (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket as TLSSocket;
      const encrypted = socket.encrypted === true;
      const peer = encrypted ? socket.getPeerCertificate() : undefined;
      const identity = peer !== undefined && peer.raw !== undefined ? clientIdentity(peer) : null;
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? '-'}`);
      // The first request to /redirect is sent on to /v1/status, to see the token follow it.
      if (req.url === '/redirect/v1/status') {
        res.writeHead(307, { Location: `${encrypted ? 'https' : 'http'}://${HOST}:${port}/v1/status`, 'Content-Type': 'application/json' });
        res.end('{"error":{"code":"not-leader","message":"elsewhere"}}');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(
        JSON.stringify({
          authorization: req.headers.authorization ?? null,
          encrypted,
          authorized: encrypted ? socket.authorized : null,
          authorizationError: encrypted ? (socket.authorizationError?.toString() ?? null) : null,
          clientName: identity?.name ?? null,
        }),
      );
    },
    tls,
  );
  port = (server.address() as { port: number }).port;
  return { server, url: `${tls === undefined ? 'http' : 'https'}://${HOST}:${port}`, seen };
}

describe('KvClient: client certificates and tokens', () => {
  test('a client certificate of the client CA makes an authorized socket; none, or another CA\'s, an unauthorized one', { timeout: 20_000 }, async () => {
    const node = nodeCerts.get(0)!;
    const echo = await echoServer({ cert: node.cert, key: node.key, clientCa: ca.cert });
    const clients: KvClient[] = [];
    try {
      const ask = async (tls: { ca: string; cert?: string; key?: string }): Promise<Record<string, unknown>> => {
        const c = new KvClient({ endpoints: [echo.url], timeoutMs: 5_000, tls });
        clients.push(c);
        return (await c.status()) as unknown as Record<string, unknown>;
      };
      const withCert = await ask({ ca: ca.cert, cert: opsCert.cert, key: opsCert.key });
      assert.equal(withCert['encrypted'], true);
      assert.equal(withCert['authorized'], true);
      assert.equal(withCert['clientName'], 'ops');
      const without = await ask({ ca: ca.cert });
      assert.equal(without['authorized'], false);
      const stranger = await createClientCertificate(otherCa, { name: 'stranger', days: 2 });
      const foreign = await ask({ ca: ca.cert, cert: stranger.cert, key: stranger.key });
      assert.equal(foreign['authorized'], false, 'a certificate of another CA is never authorized');
      assert.notEqual(foreign['authorizationError'], null);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await echo.server.drain(0);
    }
  });

  test('the token goes on every request, redirects included, and never into an error message', { timeout: 20_000 }, async () => {
    const node = nodeCerts.get(1)!;
    const echo = await echoServer({ cert: node.cert, key: node.key });
    const token = 'secret-token-123';
    const c = new KvClient({ endpoints: [`${echo.url}/redirect`], timeoutMs: 5_000, tls: { ca: ca.cert }, token });
    try {
      const status = (await c.status()) as unknown as Record<string, unknown>;
      assert.equal(status['authorization'], `Bearer ${token}`);
      assert.deepEqual(echo.seen, [`GET /redirect/v1/status Bearer ${token}`, `GET /v1/status Bearer ${token}`]);
    } finally {
      await c.close();
      await echo.server.drain(0);
    }
    // A dead endpoint: the error names the address and the failure, not the token.
    const [deadPort] = await freeLoopbackPorts(1);
    const dead = new KvClient({ endpoints: [`https://${HOST}:${deadPort!}`], timeoutMs: 300, tls: { ca: ca.cert }, token });
    const error = await dead.put('k', 'v').then(
      () => assert.fail('a put to a dead port succeeded'),
      (e: unknown) => e as Error,
    );
    await dead.close();
    assert.ok(!`${error.message} ${String((error as { cause?: unknown }).cause)}`.includes(token), error.message);
    assert.throws(() => new KvClient({ endpoints: [echo.url], token: 'has space' }), (e: unknown) => e instanceof RangeError && !e.message.includes('has space'));
    assert.throws(() => new KvClient({ endpoints: [echo.url], tls: { ca: ca.cert, cert: opsCert.cert } }), /tls.cert and tls.key go together/);
  });
});

describe('HTTPS configuration is checked before the data directory is touched', () => {
  let root: string;
  let peers: KvPeer[];
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'tsraft-https-config-'));
    const ports = await freeLoopbackPorts(2);
    peers = [{ id: 0, raftHost: HOST, raftPort: ports[0]!, httpUrl: `http://${HOST}:${ports[1]!}` }];
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('an own URL whose scheme contradicts httpTls, or certificates TLS cannot load, are ConfigErrors', async () => {
    const node = nodeCerts.get(0)!;
    const dataDir = join(root, 'node-0');
    const start = (overrides: object): Promise<KvServer> => KvServer.start({ id: 0, peers, dataDir, fsync: false, log: () => undefined, ...overrides });
    await assert.rejects(start({ httpTls: { cert: node.cert, key: node.key } }), (e: unknown) => e instanceof ConfigError && /serves HTTPS \(httpTls\) but its HTTP URL is http:\/\//.test(e.message));
    const httpsPeers = [{ ...peers[0]!, httpUrl: peers[0]!.httpUrl.replace('http:', 'https:') }];
    await assert.rejects(start({ peers: httpsPeers }), (e: unknown) => e instanceof ConfigError && /serves plain HTTP: give httpTls/.test(e.message));
    await assert.rejects(start({ peers: httpsPeers, httpTls: { cert: node.cert, key: nodeCerts.get(1)!.key } }), (e: unknown) => e instanceof ConfigError && /httpTls: .*private key of cert/.test(e.message));
    await assert.rejects(start({ peers: httpsPeers, httpTls: { cert: 'not pem', key: node.key } }), (e: unknown) => e instanceof ConfigError && /httpTls.cert must be PEM/.test(e.message));
    assert.equal(existsSync(dataDir), false, 'the data directory was not created');
  });

  test('tsraft node: --http-cert/--http-key go together, --http-client-ca needs them, the own URL must match', () => {
    const base: NodeOptions = { id: '0', dataDir: '/tmp/x', clusterId: 'tsraft', fsync: true, peers: '0=127.0.0.1:7000/https://127.0.0.1:8000,1=127.0.0.1:7001/https://127.0.0.1:8001' };
    const tls = { httpCert: 'node.crt', httpKey: 'node.key' };
    const config = parseNodeOptions({ ...base, ...tls, httpClientCa: 'ca.crt', ca: 'ca.crt' });
    assert.deepEqual(config.httpTls, { cert: 'node.crt', key: 'node.key', clientCa: 'ca.crt' });
    assert.deepEqual(config.client, { ca: 'ca.crt' });
    const refused = (options: NodeOptions, message: RegExp): void => {
      assert.throws(() => parseNodeOptions(options), (e: unknown) => e instanceof UsageError && message.test(e.message));
    };
    refused({ ...base, httpCert: 'node.crt' }, /--http-cert given without --http-key/);
    refused({ ...base, httpClientCa: 'ca.crt' }, /--http-client-ca needs --http-cert/);
    refused(base, /own HTTP URL in --peers is https:\/\/127\.0\.0\.1:8000, but it serves plain HTTP/);
    refused({ ...base, ...tls, peers: base.peers!.replaceAll('https:', 'http:') }, /--http-cert makes this node serve HTTPS, but its own HTTP URL in --peers is http:/);
    const joining = parseNodeOptions({ id: '3', dataDir: '/tmp/x', clusterId: 'tsraft', fsync: true, join: 'https://127.0.0.1:8000', listen: '127.0.0.1:7003', http: '127.0.0.1:8003', ...tls });
    assert.equal(joining.join?.self.httpUrl, 'https://127.0.0.1:8003');
  });
});
