/**
 * The certificate helpers: a CA, node and client certificates that node:crypto verifies against the
 * CA, the node identity SAN URI read back, and client certificates without a node identity.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import {
  clientIdentity,
  createCa,
  createClientCertificate,
  createNodeCertificate,
  nodeIdentityUri,
  parseNodeIdentityUri,
  peerIdentity,
} from '../../src/security/certs.js';

const DAY_MS = 86_400_000;

describe('certs', () => {
  test('a CA and a node certificate: issued and signed by the CA, valid now for the given days, with its identity URI and hosts', { timeout: 10000 }, async () => {
    const ca = await createCa({ commonName: 'tsraft test CA', days: 30 });
    const node = await createNodeCertificate(ca, { clusterId: 'prod', nodeId: 3, hosts: ['localhost', '127.0.0.1', '::1'], days: 10 });
    const caX = new X509Certificate(ca.cert);
    const x = new X509Certificate(node.cert);
    assert.equal(caX.ca, true);
    assert.equal(caX.checkIssued(caX), true, 'the CA is self-signed');
    assert.equal(caX.verify(caX.publicKey), true);
    assert.equal(x.ca, false);
    assert.equal(x.checkIssued(caX), true);
    assert.equal(x.verify(caX.publicKey), true);
    const now = Date.now();
    assert.ok(Date.parse(x.validFrom) <= now && now < Date.parse(x.validTo));
    const days = (Date.parse(x.validTo) - now) / DAY_MS;
    assert.ok(days > 9.9 && days <= 10, `valid for ${days} days`);
    assert.ok((Date.parse(caX.validTo) - now) / DAY_MS > 29.9);
    assert.ok(x.checkHost('localhost') !== undefined);
    assert.ok(x.checkIP('127.0.0.1') !== undefined);
    assert.ok(x.checkIP('::1') !== undefined);
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'serverAuth and clientAuth');
    assert.match(x.subjectAltName ?? '', /URI:tsraft:\/\/prod\/node\/3/);
    // The key is the certificate's, and ECDSA P-256.
    const key = createPrivateKey(node.key);
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(createPublicKey(key).export({ type: 'spki', format: 'pem' }), x.publicKey.export({ type: 'spki', format: 'pem' }));
    // The identity reads back from every form of certificate.
    assert.deepEqual(peerIdentity(x), { clusterId: 'prod', nodeId: 3 });
    assert.deepEqual(peerIdentity(node.cert), { clusterId: 'prod', nodeId: 3 });
    assert.deepEqual(peerIdentity({ raw: x.raw }), { clusterId: 'prod', nodeId: 3 });
    assert.equal(clientIdentity(x), null, 'a node is not a client');
  });

  test('another CA does not verify a node certificate', { timeout: 10000 }, async () => {
    const ca = await createCa({ commonName: 'one' });
    const other = await createCa({ commonName: 'two' });
    const x = new X509Certificate((await createNodeCertificate(ca, { clusterId: 'c', nodeId: 1, hosts: [] })).cert);
    const otherX = new X509Certificate(other.cert);
    assert.equal(x.checkIssued(otherX), false);
    assert.equal(x.verify(otherX.publicKey), false);
    assert.equal(x.subjectAltName, 'URI:tsraft://c/node/1', 'no hosts: only the identity');
  });

  test('a client certificate: signed by the CA, clientAuth only, name and roles, and no node identity', { timeout: 10000 }, async () => {
    const ca = await createCa({ commonName: 'ca', days: 5 });
    const client = await createClientCertificate(ca, { name: 'alice', roles: ['admin', 'kv:read'], days: 2 });
    const x = new X509Certificate(client.cert);
    const caX = new X509Certificate(ca.cert);
    assert.equal(x.checkIssued(caX), true);
    assert.equal(x.verify(caX.publicKey), true);
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(peerIdentity(x), null);
    assert.equal(peerIdentity(client.cert), null);
    assert.deepEqual(clientIdentity(x), { name: 'alice', roles: ['admin', 'kv:read'] });
    const plain = await createClientCertificate(ca, { name: 'ops tool' });
    assert.deepEqual(clientIdentity(plain.cert), { name: 'ops tool', roles: [] });
    assert.equal(peerIdentity(ca.cert), null, 'the CA names no node');
    await assert.rejects(createClientCertificate(ca, { name: 'x', roles: ['bad role'] }));
  });

  test('identity URIs: cluster ids are percent-encoded and round-trip; bad forms and garbage are null', async () => {
    assert.equal(nodeIdentityUri('prod', 0), 'tsraft://prod/node/0');
    assert.equal(nodeIdentityUri('a/b c', 12), 'tsraft://a%2Fb%20c/node/12');
    for (const [cluster, id] of [['prod', 0], ['a/b c?#', 12], ['', 5], ['é☃', Number.MAX_SAFE_INTEGER]] as const) {
      assert.deepEqual(parseNodeIdentityUri(nodeIdentityUri(cluster, id)), { clusterId: cluster, nodeId: id });
    }
    for (const bad of ['tsraft://prod/node/01', 'tsraft://prod/node/-1', 'tsraft://prod/node/', 'tsraft://prod/client/1', 'http://prod/node/1', 'tsraft://prod/node/1/x', 'tsraft://%zz/node/1', 'tsraft://p/node/99999999999999999']) {
      assert.equal(parseNodeIdentityUri(bad), null, bad);
    }
    assert.throws(() => nodeIdentityUri('c', -1));
    assert.equal(peerIdentity('not a certificate'), null);
    assert.equal(peerIdentity(new Uint8Array([1, 2, 3])), null);
    const ca = await createCa({ commonName: 'ca' });
    const weird = await createNodeCertificate(ca, { clusterId: 'a, URI:tsraft://x/node/9', nodeId: 4, hosts: [] });
    assert.deepEqual(peerIdentity(weird.cert), { clusterId: 'a, URI:tsraft://x/node/9', nodeId: 4 });
    await assert.rejects(createNodeCertificate(ca, { clusterId: 'c', nodeId: 1, hosts: ['not a host!'] }));
  });
});
