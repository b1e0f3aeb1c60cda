/**
 * Client certificates as principals (http-auth.ts): a single-member KvServer serving HTTPS with a
 * client CA, and an auth file with one token. A verified `tsraft certs client` certificate is a
 * principal named by its CN with the roles of its O attributes; a node certificate, a certificate
 * of another CA, or none at all is refused with 401; a bearer token wins over the certificate.
 */
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KvServer } from '../../src/kv/server.js';
import { hashToken } from '../../src/security/auth-file.js';
import { createCa, createClientCertificate, createNodeCertificate, type CertificateAndKey } from '../../src/security/certs.js';
import { freeLoopbackPorts } from '../../src/testing/ports.js';
import { TIMING, waitFor } from './kv-cluster-fixture.js';

const READER_TOKEN = 'tsr_reader-token-for-the-certificate-test-0000';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: { error?: { code?: string; message?: string } } & Record<string, unknown>;
}

describe('HTTP API: client certificates as principals', { timeout: 60_000 }, () => {
  let root: string;
  let server: KvServer;
  let port: number;
  let ca: CertificateAndKey;
  let ops: CertificateAndKey;
  let viewer: CertificateAndKey;
  let nodeCert: CertificateAndKey;
  let foreign: CertificateAndKey;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'tsraft-auth-certs-'));
    ca = await createCa({ commonName: 'test CA' });
    const otherCa = await createCa({ commonName: 'other CA' });
    nodeCert = await createNodeCertificate(ca, { clusterId: 'tsraft', nodeId: 0, hosts: ['127.0.0.1'] });
    ops = await createClientCertificate(ca, { name: 'ops', roles: ['read', 'write'] });
    viewer = await createClientCertificate(ca, { name: 'viewer', roles: ['read', 'unknown-role'] });
    foreign = await createClientCertificate(otherCa, { name: 'ops', roles: ['admin'] });
    const [raftPort, httpPort] = await freeLoopbackPorts(2);
    port = httpPort!;
    server = await KvServer.start({
      id: 0,
      peers: [{ id: 0, raftHost: '127.0.0.1', raftPort: raftPort!, httpUrl: `https://127.0.0.1:${port}` }],
      dataDir: join(root, 'node-0'),
      timing: TIMING,
      fsync: false,
      httpTls: { cert: nodeCert.cert, key: nodeCert.key, clientCa: ca.cert },
      auth: { version: 1, tokens: [{ name: 'reader', roles: ['read'], sha256: hashToken(READER_TOKEN) }] },
      log: () => undefined,
    });
    await waitFor('a leader', 10_000, () => server.status().role === 'leader');
  });
  after(async () => {
    await server?.stop({ handOver: false }).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });

  /** One HTTPS request to the server, presenting `client`'s certificate if given. */
  function call(method: string, path: string, client: CertificateAndKey | null, options: { body?: string; token?: string } = {}): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method,
          path,
          ca: ca.cert,
          agent: false,
          ...(client === null ? {} : { cert: client.cert, key: client.key }),
          headers: options.token === undefined ? {} : { Authorization: `Bearer ${options.token}` },
          timeout: 10_000,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(text) as Answer['json'] }));
        },
      );
      req.on('error', reject);
      req.end(options.body);
    });
  }

  it('a verified client certificate is its CN, with the roles of its O attributes', async () => {
    assert.equal((await call('PUT', '/v1/kv/c', ops, { body: 'by-ops' })).status, 200);
    assert.equal((await call('GET', '/v1/kv/c', viewer)).json['value'], 'by-ops');
    const refused = await call('PUT', '/v1/kv/c', viewer, { body: 'x' });
    assert.equal(refused.status, 403);
    assert.match(refused.json.error?.message ?? '', /principal "viewer" \(roles read\) lacks the write role/);
    assert.equal((await call('DELETE', '/v1/members/0', ops)).status, 403);
  });

  it('no credentials, a node certificate, or a certificate of another CA: 401', async () => {
    const none = await call('GET', '/v1/kv/c', null);
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer realm="tsraft"');
    const asNode = await call('GET', '/v1/kv/c', nodeCert);
    assert.equal(asNode.status, 401);
    assert.match(asNode.json.error?.message ?? '', /a node certificate is not a client certificate/);
    const other = await call('PUT', '/v1/kv/c', foreign, { body: 'x' });
    assert.equal(other.status, 401);
    assert.match(other.json.error?.message ?? '', /not verified against the client CA/);
    assert.equal((await call('GET', '/v1/kv/c', ops)).json['value'], 'by-ops');
  });

  it("a bearer token wins over the connection's certificate", async () => {
    assert.equal((await call('PUT', '/v1/kv/c', ops, { token: READER_TOKEN, body: 'x' })).status, 403);
    assert.equal((await call('GET', '/v1/kv/c', foreign, { token: READER_TOKEN })).status, 200);
  });
});
