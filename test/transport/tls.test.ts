/**
 * The TCP transport with mutual TLS, over loopback: every message type both ways between three
 * nodes; certificates from another CA, plaintext peers, client certificates and other clusters'
 * certificates refused at the acceptor; a valid certificate of one node cannot speak as another;
 * a dialler refuses a server whose certificate names another node. Every wait is a bounded poll.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Message, NodeId } from '../../src/core/messages.js';
import { encodeMessage } from '../../src/codec/codec.js';
import { encodeHello, frame, TcpTransport } from '../../src/transport/tcp.js';
import { createCa, createClientCertificate, createNodeCertificate, type CertificateAndKey } from '../../src/security/certs.js';

import { closeAll, CLUSTER, everyType, HOST, peer, sleep, startNode, waitFor, type Node } from './tcp-fixture.js';

const heartbeat = (from: NodeId, to: NodeId): Message => ({ type: 'AppendEntries', from, to, term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0, readContext: 0 });

let ca: CertificateAndKey;
let otherCa: CertificateAndKey;
const nodeCerts = new Map<NodeId, CertificateAndKey>();
let foreignNode2: CertificateAndKey; // node 2 of this cluster, but from another CA
let stagingNode2: CertificateAndKey; // node 2 of another cluster, from this CA
let client: CertificateAndKey;

const tlsFor = (id: NodeId): { ca: string; cert: string; key: string } => ({ ca: ca.cert, ...nodeCerts.get(id)! });

/**
 * A raw mutual-TLS client that presents `cert`, sends the frames and reports whether the server
 * closed the connection within `ms`.
 */
async function rawTls(port: number, cert: CertificateAndKey, frames: Uint8Array[], ms = 1500): Promise<'closed' | 'open'> {
  const socket = tls.connect({ host: HOST, port, ca: ca.cert, cert: cert.cert, key: cert.key, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
  socket.on('error', () => {});
  socket.on('data', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await Promise.race([new Promise<void>((resolve) => socket.once('secureConnect', () => resolve())), closed]);
  for (const f of frames) socket.write(f);
  const result = await Promise.race([closed.then(() => 'closed' as const), sleep(ms).then(() => 'open' as const)]);
  socket.destroy();
  return result;
}

describe('TcpTransport with mutual TLS', () => {
  before(async () => {
    ca = await createCa({ commonName: 'tsraft test CA', days: 2 });
    otherCa = await createCa({ commonName: 'another CA', days: 2 });
    for (const id of [1, 2, 3, 5]) nodeCerts.set(id, await createNodeCertificate(ca, { clusterId: CLUSTER, nodeId: id, hosts: [HOST], days: 2 }));
    foreignNode2 = await createNodeCertificate(otherCa, { clusterId: CLUSTER, nodeId: 2, hosts: [HOST], days: 2 });
    stagingNode2 = await createNodeCertificate(ca, { clusterId: 'staging', nodeId: 2, hosts: [HOST], days: 2 });
    client = await createClientCertificate(ca, { name: 'alice', roles: ['admin'], days: 2 });
  });

  test('three TLS nodes exchange every message type, both ways, all-to-all', { timeout: 10000 }, async () => {
    const all: Node[] = [];
    try {
      const nodes: Node[] = [];
      for (const id of [1, 2, 3]) nodes.push(await startNode({ nodeId: id, peers: [], tls: tlsFor(id) }, all));
      const peers = [1, 2, 3].map((id, i) => peer(id, nodes[i]!.t.port));
      for (const n of nodes) n.t.setPeers(peers);
      const sent = new Map<string, Message[]>();
      for (const [i, from] of [1, 2, 3].entries()) {
        for (const to of [1, 2, 3]) {
          if (to === from) continue;
          const ms = everyType(from, to);
          sent.set(`${from}->${to}`, ms);
          for (const m of ms) nodes[i]!.t.send(m);
        }
      }
      const perNode = everyType(0, 0).length * 2;
      await waitFor(() => nodes.every((n) => n.got.length === perNode), 'every message at every node', 5000);
      const bulk = (m: Message): boolean => m.type === 'InstallSnapshot';
      for (const [i, to] of [1, 2, 3].entries()) {
        for (const from of [1, 2, 3]) {
          if (from === to) continue;
          const got = nodes[i]!.got.filter((m) => m.from === from);
          const want = sent.get(`${from}->${to}`)!;
          assert.deepEqual(got.filter((m) => !bulk(m)), want.filter((m) => !bulk(m)));
          assert.deepEqual(got.filter(bulk), want.filter(bulk));
        }
      }
      for (const n of nodes) {
        assert.equal(n.t.stats.tlsRefused, 0);
        assert.deepEqual(n.t.stats.tls, { handshakeFailures: 0, identityMismatches: 0, dialFailures: 0 });
        assert.equal(n.t.stats.connections, 4, 'two outbound and two inbound');
        assert.equal(n.t.stats.malformedFrames, 0);
        assert.deepEqual(n.logs.filter((l) => !l.startsWith('added peer')), []);
      }
    } finally {
      await closeAll(all);
    }
  });

  test('a certificate from another CA is refused at the handshake, by the acceptor and by the dialler', { timeout: 10000 }, async () => {
    const all: Node[] = [];
    try {
      const a = await startNode({ nodeId: 1, peers: [], tls: tlsFor(1) }, all);
      // Trusts our CA (so it accepts a's certificate) but presents one from another CA: a refuses it.
      const impostor = await startNode({ nodeId: 2, peers: [peer(1, a.t.port)], tls: { ca: ca.cert, ...foreignNode2 }, reconnectMinMs: 20, reconnectMaxMs: 40 }, all);
      impostor.t.send(heartbeat(2, 1));
      await waitFor(() => a.t.stats.tls.handshakeFailures >= 1, 'the acceptor to refuse the handshake');
      // Trusts only the other CA: it refuses a's certificate itself.
      const stranger = await startNode({ nodeId: 2, peers: [peer(1, a.t.port)], tls: { ca: otherCa.cert, ...foreignNode2 } }, all);
      stranger.t.send(heartbeat(2, 1));
      await waitFor(() => stranger.t.stats.tls.dialFailures >= 1, 'the dialler to refuse the server');
      await sleep(150);
      assert.deepEqual(a.got, [], 'nothing delivered');
      assert.equal(a.t.stats.received, 0);
      assert.equal(a.t.stats.tlsRefused, a.t.stats.tls.handshakeFailures);
      assert.equal(a.t.stats.tls.identityMismatches, 0);
      assert.ok(a.logs.some((l) => l.includes('refusing TLS connection')), a.logs.join('\n'));
    } finally {
      await closeAll(all);
    }
  });

  test('a plaintext peer, or raw plaintext bytes, are refused; nothing is delivered', { timeout: 10000 }, async () => {
    const all: Node[] = [];
    try {
      const a = await startNode({ nodeId: 1, peers: [], tls: tlsFor(1) }, all);
      const plain = await startNode({ nodeId: 2, peers: [peer(1, a.t.port)] }, all);
      plain.t.send(heartbeat(2, 1));
      await waitFor(() => a.t.stats.tls.handshakeFailures >= 1, 'the plaintext connection to be refused');
      // A raw plaintext hello and message: the server closes the connection.
      const socket = net.connect({ host: HOST, port: a.t.port });
      socket.on('error', () => {});
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.write(frame(encodeHello({ clusterId: CLUSTER, from: 2, to: 1 })));
      socket.write(frame(encodeMessage(heartbeat(2, 1))));
      await Promise.race([closed, sleep(3000).then(() => assert.fail('the plaintext socket stayed open'))]);
      await sleep(100);
      assert.deepEqual(a.got, []);
      assert.ok(a.t.stats.tls.handshakeFailures >= 2);
      assert.equal(a.t.stats.connections, 0);
    } finally {
      await closeAll(all);
    }
  });

  test("node 2's valid certificate cannot say hello as node 1; a client certificate or another cluster's node is refused", { timeout: 10000 }, async () => {
    const all: Node[] = [];
    try {
      const a = await startNode({ nodeId: 3, peers: [peer(1, 1), peer(2, 2)], tls: tlsFor(3) }, all);
      const asNode = (from: NodeId): Uint8Array[] => [frame(encodeHello({ clusterId: CLUSTER, from, to: 3 })), frame(encodeMessage(heartbeat(from, 3)))];
      // Control: node 2's certificate speaking as node 2 is delivered.
      assert.equal(await rawTls(a.t.port, nodeCerts.get(2)!, asNode(2), 300), 'open');
      await waitFor(() => a.got.length === 1, 'the honest message');
      assert.equal(a.got[0]!.from, 2);
      // The same certificate claiming to be node 1: refused after the hello.
      assert.equal(await rawTls(a.t.port, nodeCerts.get(2)!, asNode(1)), 'closed');
      assert.equal(a.t.stats.tls.identityMismatches, 1);
      assert.ok(a.logs.some((l) => /hello comes from node 1 but its certificate names node 2/.test(l)), a.logs.join('\n'));
      // A client certificate (no node identity) and another cluster's node certificate: refused at once.
      assert.equal(await rawTls(a.t.port, client, asNode(1)), 'closed');
      assert.equal(await rawTls(a.t.port, stagingNode2, asNode(2)), 'closed');
      assert.equal(a.t.stats.tls.identityMismatches, 3);
      assert.equal(a.t.stats.tlsRefused, 3 + a.t.stats.tls.handshakeFailures);
      await sleep(50);
      assert.equal(a.got.length, 1, 'only the honest message was delivered');
      assert.equal(a.t.stats.received, 1);
    } finally {
      await closeAll(all);
    }
  });

  test('a dialler refuses a server whose certificate names another node', { timeout: 10000 }, async () => {
    const all: Node[] = [];
    const wrong = nodeCerts.get(5)!;
    let received = 0;
    let secured = 0;
    const server = tls.createServer({ ca: ca.cert, cert: wrong.cert, key: wrong.key, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: true }, (socket) => {
      secured++;
      socket.on('data', (d: Buffer) => (received += d.length));
      socket.on('error', () => {});
    });
    server.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => server.listen({ host: HOST, port: 0 }, () => resolve()));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const a = await startNode({ nodeId: 1, peers: [peer(2, port)], tls: tlsFor(1), reconnectMinMs: 20, reconnectMaxMs: 40 }, all);
      a.t.send(heartbeat(1, 2));
      await waitFor(() => a.t.stats.tls.dialFailures >= 2, 'two refused dials');
      assert.ok(a.logs.some((l) => l.includes('names node 5 of cluster "prod", not node 2')), a.logs.join('\n'));
      assert.equal(received, 0, 'no hello or message was written');
      assert.equal(secured, 0);
      assert.equal(a.t.stats.sent, 0);
      assert.equal(a.t.queued(2), 1, 'the message stays queued');
    } finally {
      await closeAll(all);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('the constructor checks the TLS material: it must name this node of this cluster', () => {
    const opts = { clusterId: CLUSTER, listen: { host: HOST, port: 0 }, peers: [] };
    assert.throws(() => new TcpTransport({ ...opts, nodeId: 1, tls: tlsFor(2) }), /must name node 1 of cluster "prod"/);
    assert.throws(() => new TcpTransport({ ...opts, clusterId: 'staging', nodeId: 1, tls: tlsFor(1) }), /must name node 1 of cluster "staging"/);
    assert.throws(() => new TcpTransport({ ...opts, nodeId: 1, tls: { ca: ca.cert, cert: client.cert, key: client.key } }), /names no node/);
    assert.throws(() => new TcpTransport({ ...opts, nodeId: 1, tls: { ...tlsFor(1), key: nodeCerts.get(2)!.key } }));
    new TcpTransport({ ...opts, nodeId: 1, tls: tlsFor(1) }); // fine, never started
  });
  test('CA rotation: peers trusting a bundle of the old and the new CA talk across certificates of either; a node trusting only the new CA refuses the old', { timeout: 10000 }, async () => {
    const all: Node[] = [];
    try {
      const newCa = await createCa({ commonName: 'tsraft test CA (next)', days: 2 });
      const renewed2 = await createNodeCertificate(newCa, { clusterId: CLUSTER, nodeId: 2, hosts: [HOST], days: 2 });
      const bundle = ca.cert + newCa.cert;
      // Step 1 of a rotation: every node trusts both CAs; node 1 still has its old certificate, node 2 a new one.
      const a = await startNode({ nodeId: 1, peers: [], tls: { ca: bundle, ...nodeCerts.get(1)! } }, all);
      const b = await startNode({ nodeId: 2, peers: [peer(1, a.t.port)], tls: { ca: bundle, ...renewed2 } }, all);
      a.t.setPeers([peer(2, b.t.port)]);
      a.t.send(heartbeat(1, 2));
      b.t.send(heartbeat(2, 1));
      await waitFor(() => a.got.length === 1 && b.got.length === 1, 'a message each way across old and new certificates');
      assert.equal(a.t.stats.tlsRefused + b.t.stats.tlsRefused, 0);
      // The last step: a node that trusts only the new CA refuses a certificate the old CA signed.
      const c = await startNode({ nodeId: 3, peers: [], tls: { ca: newCa.cert, ...(await createNodeCertificate(newCa, { clusterId: CLUSTER, nodeId: 3, hosts: [HOST], days: 2 })) } }, all);
      a.t.setPeers([peer(2, b.t.port), peer(3, c.t.port)]);
      a.t.send(heartbeat(1, 3));
      await waitFor(() => c.t.stats.tls.handshakeFailures >= 1 || a.t.stats.tls.dialFailures >= 1, 'the old certificate to be refused by a node that trusts only the new CA');
      assert.deepEqual(c.got, []);
    } finally {
      await closeAll(all);
    }
  });
});
