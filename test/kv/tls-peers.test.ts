/**
 * Peers over mutual TLS in the KV server and the CLI: a 3-node KvServer cluster with peerTls
 * elects, replicates and reports zero refusals in /metrics; a stranger with another CA's
 * certificate, or node 2's valid certificate claiming node 1, is refused (counted) and changes no
 * term; a certificate for another node is a ConfigError before the data directory is touched;
 * `tsraft node` refuses a non-loopback raft address without TLS or --insecure-peers; `tsraft start
 * --tls` runs a cluster over mTLS. Everything on 127.0.0.1; every wait is a bounded poll.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { encodeMessage } from '../../src/codec/codec.js';
import type { Message, NodeId } from '../../src/core/messages.js';
import { ConfigError } from '../../src/runtime/errors.js';
import { KvServer, type KvPeer } from '../../src/kv/server.js';
import { createCa, createNodeCertificate, type CertificateAndKey } from '../../src/security/certs.js';
import { encodeHello, frame, TcpTransport } from '../../src/transport/tcp.js';
import { freeLoopbackPortRange, freeLoopbackPorts } from '../../src/testing/ports.js';
import { checkPeerSecurity, isLoopbackHost, parseNodeOptions, readPeerTls, type NodeOptions } from '../../src/cli/node.js';
import { CliError, UsageError } from '../../src/cli/common.js';

const HOST = '127.0.0.1';
const CLUSTER = 'tls-kv';
const TIMING = { heartbeatMs: 50, electionTimeoutMinMs: 300, electionTimeoutMaxMs: 600 };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(what: string, ms: number, probe: () => T | undefined | null | false | Promise<T | undefined | null | false>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

function tlsRefusals(metrics: string): { handshake: number; identity: number; dial: number } {
  const read = (re: RegExp): number => {
    const m = re.exec(metrics);
    assert.ok(m !== null, `metric ${re.source} missing from /metrics`);
    return Number(m[1]);
  };
  return {
    handshake: read(/^tsraft_transport_tls_refused_total\{reason="handshake"\} (\d+)$/m),
    identity: read(/^tsraft_transport_tls_refused_total\{reason="identity"\} (\d+)$/m),
    dial: read(/^tsraft_transport_tls_dial_failures_total (\d+)$/m),
  };
}

let ca: CertificateAndKey;
let otherCa: CertificateAndKey;
const certs = new Map<number, CertificateAndKey>();
let foreign: CertificateAndKey; // node 3 of this cluster, from another CA

const tlsFor = (id: number): { ca: string; cert: string; key: string } => ({ ca: ca.cert, cert: certs.get(id)!.cert, key: certs.get(id)!.key });

describe('KvServer peers over mutual TLS', () => {
  let root: string;
  const servers: KvServer[] = [];
  let peers: KvPeer[];
  const logs: string[] = [];

  before(async () => {
    ca = await createCa({ commonName: 'tsraft test CA', days: 2 });
    otherCa = await createCa({ commonName: 'another CA', days: 2 });
    for (const id of [0, 1, 2]) certs.set(id, await createNodeCertificate(ca, { clusterId: CLUSTER, nodeId: id, hosts: [HOST], days: 2 }));
    foreign = await createNodeCertificate(otherCa, { clusterId: CLUSTER, nodeId: 3, hosts: [HOST], days: 2 });
    root = mkdtempSync(join(tmpdir(), 'tsraft-tls-kv-'));
    const ports = await freeLoopbackPorts(6);
    peers = [0, 1, 2].map((id) => ({ id, raftHost: HOST, raftPort: ports[id]!, httpUrl: `http://${HOST}:${ports[3 + id]!}` }));
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop({ handOver: false }).catch(() => undefined)));
    rmSync(root, { recursive: true, force: true });
  });

  test('a certificate that names another node is a ConfigError, and the data directory is not touched', async () => {
    const dataDir = join(root, 'wrong');
    await assert.rejects(
      KvServer.start({ id: 0, peers, dataDir, clusterId: CLUSTER, fsync: false, timing: TIMING, peerTls: tlsFor(1), log: () => undefined }),
      (error: unknown) => error instanceof ConfigError && /peerTls: .*must name node 0 of cluster "tls-kv".*names node 1/.test(error.message),
    );
    assert.equal(existsSync(join(dataDir, 'cluster-identity.json')), false);
    await assert.rejects(
      KvServer.start({ id: 0, peers, dataDir, clusterId: CLUSTER, fsync: false, peerTls: { ca: ca.cert, cert: 'nope', key: certs.get(0)!.key }, log: () => undefined }),
      (error: unknown) => error instanceof ConfigError && /peerTls\.cert must be a PEM string/.test(error.message),
    );
    // The right certificate with another node's key: refused too.
    await assert.rejects(
      KvServer.start({ id: 0, peers, dataDir, clusterId: CLUSTER, fsync: false, peerTls: { ca: ca.cert, cert: certs.get(0)!.cert, key: certs.get(1)!.key }, log: () => undefined }),
      (error: unknown) => error instanceof ConfigError && /^invalid configuration: peerTls: /.test(error.message),
    );
  });

  test('three members elect, replicate a put, and count no refusals; strangers are refused without changing the term', { timeout: 30_000 }, async () => {
    for (const id of [0, 1, 2]) {
      servers.push(
        await KvServer.start({
          id,
          peers,
          dataDir: join(root, `node-${id}`),
          clusterId: CLUSTER,
          fsync: false,
          timing: TIMING,
          requestTimeoutMs: 2_000,
          peerTls: tlsFor(id),
          log: (line) => logs.push(`[${id}] ${line}`),
        }),
      );
    }
    const leader = await waitFor('a leader', 10_000, () => servers.find((s) => s.status().role === 'leader'));
    const put = await fetch(`${peers[leader.id]!.httpUrl}/v1/kv/greeting`, { method: 'PUT', body: 'hello over mTLS', signal: AbortSignal.timeout(5_000) });
    assert.equal(put.status, 200, await put.text());
    await waitFor('the put on every member', 5_000, () => servers.every((s) => s.status().appliedIndex >= leader.status().commitIndex));
    for (const s of servers) {
      const got = await fetch(`${peers[s.id]!.httpUrl}/v1/kv/greeting?consistency=local`, { signal: AbortSignal.timeout(5_000) });
      if (got.status === 200) assert.match(await got.text(), /hello over mTLS/);
      const metrics = await (await fetch(`${peers[s.id]!.httpUrl}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
      assert.deepEqual(tlsRefusals(metrics), { handshake: 0, identity: 0, dial: 0 }, `node ${s.id}`);
      assert.match(metrics, /^# TYPE tsraft_transport_tls_refused_total counter$/m);
    }
    const term = leader.status().term;

    // A stranger: node 3 of this cluster by a certificate of another CA, campaigning at a huge term.
    const stranger = new TcpTransport({
      clusterId: CLUSTER,
      nodeId: 3,
      listen: { host: HOST, port: 0 },
      peers: peers.map((p) => ({ id: p.id, host: p.raftHost, port: p.raftPort })),
      tls: { ca: otherCa.cert, cert: foreign.cert, key: foreign.key },
      log: () => undefined,
    });
    await stranger.start(() => undefined);
    const vote = (to: NodeId): Message => ({ type: 'RequestVote', from: 3, to, term: term + 100, lastLogIndex: 1_000_000, lastLogTerm: term + 99 });
    // node 2's valid certificate claiming to be node 1, asking node 0 for its vote at a huge term.
    const impostor = async (port: number): Promise<void> => {
      const socket = tls.connect({ host: HOST, port, ca: ca.cert, cert: certs.get(2)!.cert, key: certs.get(2)!.key, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
      socket.on('error', () => undefined);
      socket.on('data', () => undefined);
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      await Promise.race([new Promise<void>((resolve) => socket.once('secureConnect', () => resolve())), closed]);
      socket.write(frame(encodeHello({ clusterId: CLUSTER, from: 1, to: 0 })));
      socket.write(frame(encodeMessage({ type: 'RequestVote', from: 1, to: 0, term: term + 200, lastLogIndex: 1_000_000, lastLogTerm: term + 199 })));
      await Promise.race([closed, sleep(1_500)]);
      socket.destroy();
    };
    try {
      const deadline = Date.now() + 1_500;
      while (Date.now() < deadline) {
        for (const p of peers) stranger.send(vote(p.id));
        await sleep(100);
      }
      await impostor(peers[0]!.raftPort);
      const scraped = await Promise.all(servers.map(async (s) => tlsRefusals(await (await fetch(`${peers[s.id]!.httpUrl}/metrics`)).text())));
      for (const [id, r] of scraped.entries()) assert.ok(r.handshake > 0, `node ${id} counted the stranger's handshakes: ${JSON.stringify(r)}`);
      assert.ok(scraped[0]!.identity >= 1, `node 0 counted the impostor: ${JSON.stringify(scraped[0])}`);
      assert.ok(stranger.stats.tls.dialFailures > 0 || stranger.stats.connections === 0, 'the stranger never got through');
      assert.equal(stranger.stats.received, 0);
      for (const s of servers) assert.equal(s.status().term, term, `node ${s.id} kept term ${term}`);
      assert.equal(servers.find((s) => s.status().role === 'leader')?.id, leader.id);
    } finally {
      await stranger.close();
    }
  });
});

describe('tsraft node: peer TLS flags and --insecure-peers', () => {
  const base: NodeOptions = { id: '0', dataDir: '/tmp/x', clusterId: 'tsraft', fsync: true, peers: '0=10.0.0.1:7000/http://10.0.0.1:8000,1=10.0.0.2:7000/http://10.0.0.2:8000' };

  test('loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.3.4.5', '::1', '[::1]', 'localhost', 'LOCALHOST', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'example.com', '::2', '']) assert.equal(isLoopbackHost(h), false, h);
  });

  test('a non-loopback raft address without TLS is refused unless --insecure-peers, which warns', () => {
    const plain = parseNodeOptions(base);
    assert.equal(plain.insecurePeers, false);
    assert.equal(plain.peerTls, undefined);
    assert.throws(
      () => checkPeerSecurity(plain),
      (error: unknown) =>
        error instanceof UsageError && /10\.0\.0\.1:7000/.test(error.message) && /tsraft certs init/.test(error.message) && /tsraft certs node/.test(error.message) && /--insecure-peers/.test(error.message),
    );
    assert.throws(() => checkPeerSecurity(parseNodeOptions({ ...base, listen: '0.0.0.0:7000' })), UsageError);
    const warning = checkPeerSecurity(parseNodeOptions({ ...base, insecurePeers: true }));
    assert.match(warning ?? '', /^warning: --insecure-peers: .*10\.0\.0\.1:7000 without TLS/);
    assert.equal(warning!.includes('\n'), false, 'one line');
    // Loopback: as before, nothing to say.
    assert.equal(checkPeerSecurity(parseNodeOptions({ ...base, listen: '127.0.0.1:7000' })), undefined);
    // With TLS: no refusal, no warning.
    const secured = parseNodeOptions({ ...base, peerCa: 'ca.pem', peerCert: 'n.pem', peerKey: 'n-key.pem' });
    assert.deepEqual(secured.peerTls, { ca: 'ca.pem', cert: 'n.pem', key: 'n-key.pem' });
    assert.equal(checkPeerSecurity(secured), undefined);
  });

  test('the three TLS flags go together; files are read with clear errors', async () => {
    assert.throws(() => parseNodeOptions({ ...base, peerCa: 'ca.pem' }), /--peer-ca given without --peer-cert and --peer-key/);
    assert.throws(() => parseNodeOptions({ ...base, peerCa: 'ca.pem', peerKey: 'k.pem' }), /--peer-ca and --peer-key given without --peer-cert/);
    assert.throws(() => parseNodeOptions({ ...base, peerCa: 'a', peerCert: 'b', peerKey: 'c', insecurePeers: true }), /exclude each other/);
    const dir = mkdtempSync(join(tmpdir(), 'tsraft-tls-files-'));
    try {
      writeFileSync(join(dir, 'ca.pem'), ca.cert);
      writeFileSync(join(dir, 'cert.pem'), certs.get(0)!.cert);
      writeFileSync(join(dir, 'key.pem'), certs.get(0)!.key);
      writeFileSync(join(dir, 'junk.pem'), 'not a certificate');
      const files = { ca: join(dir, 'ca.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
      assert.deepEqual(await readPeerTls(files), tlsFor(0));
      await assert.rejects(readPeerTls({ ...files, key: join(dir, 'missing.pem') }), (e: unknown) => e instanceof CliError && /--peer-key .*missing\.pem: cannot read it \(no such file\)/.test(e.message));
      await assert.rejects(readPeerTls({ ...files, ca: join(dir, 'junk.pem') }), (e: unknown) => e instanceof CliError && /--peer-ca .*junk\.pem: not a PEM file/.test(e.message));
      await assert.rejects(readPeerTls({ ...files, cert: dir }), (e: unknown) => e instanceof CliError && /--peer-cert .*cannot read it/.test(e.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tsraft start --tls', () => {
  test('runs a cluster whose peers use mTLS; put and get over the HTTP API', { timeout: 60_000 }, async () => {
    const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
    const dataDir = mkdtempSync(join(tmpdir(), 'tsraft-start-tls-'));
    const raftBase = await freeLoopbackPortRange(3);
    const httpBase = await freeLoopbackPortRange(3, new Set([raftBase, raftBase + 1, raftBase + 2]));
    const child = spawn(
      process.execPath,
      [main, 'start', '--tls', '--nodes', '3', '--data-dir', dataDir, '--base-port', String(raftBase), '--http-base-port', String(httpBase), '--no-fsync', '--no-watchdog'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const leaderUrl = await waitFor('a leader', 30_000, async () => {
        for (let i = 0; i < 3; i++) {
          try {
            const r = await fetch(`http://${HOST}:${httpBase + i}/v1/status`, { signal: AbortSignal.timeout(1_000) });
            const s = (await r.json()) as { role?: string };
            if (s.role === 'leader') return `http://${HOST}:${httpBase + i}`;
          } catch {
            // not up yet
          }
        }
        return undefined;
      }).catch((error: unknown) => assert.fail(`${String(error)}\n${output}`));
      const put = await fetch(`${leaderUrl}/v1/kv/k`, { method: 'PUT', body: 'v-tls', signal: AbortSignal.timeout(5_000) });
      assert.equal(put.status, 200, await put.text());
      const got = await fetch(`${leaderUrl}/v1/kv/k`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(got.status, 200);
      assert.match(await got.text(), /v-tls/);
      assert.match(output, /peers use mutual TLS: dev CA and node certificates in .*tls/);
      const tlsDir = join(dataDir, 'tls');
      for (const f of ['ca.crt', 'ca.key', 'node-0.crt', 'node-0.key', 'node-2.key']) assert.ok(existsSync(join(tlsDir, f)), f);
      for (const f of ['ca.key', 'node-0.key', 'node-1.key', 'node-2.key']) assert.equal(statSync(join(tlsDir, f)).mode & 0o777, 0o600, f);
      const metrics = await (await fetch(`${leaderUrl}/metrics`)).text();
      assert.deepEqual(tlsRefusals(metrics), { handshake: 0, identity: 0, dial: 0 });
    } finally {
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([exited, new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), 15_000)))]);
      clearTimeout(timer);
      if (code === 'timeout') child.kill('SIGKILL');
      else assert.equal(code, 0, `tsraft start exited with ${String(code)}\n${output}`);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
