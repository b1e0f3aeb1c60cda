/**
 * Peers over mutual TLS in the KV server and the CLI: a 3-node KvServer cluster with peerTls
 * elects, replicates and reports zero refusals in /metrics; a stranger with another CA's
 * certificate, or node 2's valid certificate claiming node 1, is refused (counted) and changes no
 * term; a certificate for another node is a ConfigError before the data directory is touched;
 * `tsraft node` refuses a non-loopback raft address without TLS or --insecure-peers; `tsraft start
 * --tls --auth` runs a cluster over mTLS with an HTTPS API that wants a token, which the real CLI
 * reaches with --ca and the admin token start printed (and refuses, naming the certificate problem,
 * without the CA or with another CA's; naming the token, without it). Everything on 127.0.0.1;
 * every wait is a bounded poll.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { encodeMessage } from '../../src/codec/codec.js';
import type { Message, NodeId } from '../../src/core/messages.js';
import { ConfigError } from '../../src/runtime/errors.js';
import { clusterHttp, type ClusterHttp } from '../../src/kv/client-http.js';
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

describe('tsraft start --tls --auth', () => {
  test('runs a cluster whose peers use mTLS and whose HTTP API is HTTPS with tokens; the CLI reaches it with --ca and the admin token it printed', { timeout: 60_000 }, async () => {
    const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
    const dataDir = mkdtempSync(join(tmpdir(), 'tsraft-start-tls-'));
    const raftBase = await freeLoopbackPortRange(3);
    const httpBase = await freeLoopbackPortRange(3, new Set([raftBase, raftBase + 1, raftBase + 2]));
    const child = spawn(
      process.execPath,
      [main, 'start', '--tls', '--auth', '--nodes', '3', '--data-dir', dataDir, '--base-port', String(raftBase), '--http-base-port', String(httpBase), '--no-fsync', '--no-watchdog'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const tlsDir = join(dataDir, 'tls');
    const caFile = join(tlsDir, 'ca.crt');
    const tokenFile = join(dataDir, 'admin.token');
    let https: ClusterHttp | undefined;
    try {
      const leaderUrl = await waitFor('a leader', 30_000, async () => {
        if (!existsSync(caFile) || !existsSync(tokenFile)) return undefined;
        https ??= clusterHttp({ tls: { ca: readFileSync(caFile) }, token: readFileSync(tokenFile, 'utf8').trim() });
        for (let i = 0; i < 3; i++) {
          try {
            const r = await https.fetch(`https://${HOST}:${httpBase + i}/v1/status`, { signal: AbortSignal.timeout(1_000) });
            const s = (await r.json()) as { role?: string };
            if (s.role === 'leader') return `https://${HOST}:${httpBase + i}`;
          } catch {
            // not up yet
          }
        }
        return undefined;
      }).catch((error: unknown) => assert.fail(`${String(error)}\n${output}`));
      const put = await https!.fetch(`${leaderUrl}/v1/kv/k`, { method: 'PUT', body: 'v-tls', signal: AbortSignal.timeout(5_000) });
      assert.equal(put.status, 200, await put.text());
      assert.match(output, /peers use mutual TLS and the HTTP API serves HTTPS: dev CA and node certificates in .*tls/);
      for (const f of ['ca.crt', 'ca.key', 'node-0.crt', 'node-0.key', 'node-2.key']) assert.ok(existsSync(join(tlsDir, f)), f);
      for (const f of ['ca.key', 'node-0.key', 'node-1.key', 'node-2.key']) assert.equal(statSync(join(tlsDir, f)).mode & 0o777, 0o600, f);
      const metrics = await (await https!.fetch(`${leaderUrl}/metrics`, {})).text();
      assert.deepEqual(tlsRefusals(metrics), { handshake: 0, identity: 0, dial: 0 });

      // What it printed for the CLI, and the real CLI with it: every node's https:// URL and the CA.
      const endpoints = [0, 1, 2].map((i) => `https://${HOST}:${httpBase + i}`).join(',');
      await waitFor('the CLI how-to', 5_000, () => output.includes('point the CLI at it'));
      assert.ok(output.includes(`export TSRAFT_ENDPOINTS=${endpoints} TSRAFT_CA=${caFile} TSRAFT_TOKEN=$(cat ${tokenFile})`), output);
      assert.match(output, /the HTTP API requires a token .*auth file .*auth\.json \(new\), admin token in .*admin\.token \(mode 0600\)/);
      assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
      const token = readFileSync(tokenFile, 'utf8').trim();
      const cli = (args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> =>
        runCli(main, args, { TSRAFT_ENDPOINTS: endpoints, TSRAFT_TOKEN: token, ...env });
      // Without the token: refused by the node, exit 2, saying what to set.
      const noToken = await cli(['put', 'greeting', 'x', '--ca', caFile], { TSRAFT_TOKEN: '' });
      assert.equal(noToken.code, 2, noToken.stderr);
      assert.match(noToken.stderr, /not authenticated: 401 unauthenticated: .*set TSRAFT_TOKEN or give --token/);
      const badToken = await cli(['status', '--ca', caFile], { TSRAFT_TOKEN: 'tsr_not-a-token' });
      assert.equal(badToken.code, 2, badToken.stdout);
      assert.match(badToken.stdout, /3 of 3 nodes up \(3 refused the credentials\)/);
      const put2 = await cli(['put', 'greeting', 'hello over https'], { TSRAFT_CA: caFile });
      assert.equal(put2.code, 0, put2.stderr);
      const got = await cli(['get', 'greeting', '--ca', caFile]);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(got.stdout, 'hello over https\n');
      const status = await cli(['status', '--ca', caFile]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /3 of 3 nodes up; leader: node \d/);

      const noCa = await cli(['get', 'greeting']);
      assert.equal(noCa.code, 3, noCa.stderr);
      assert.match(noCa.stderr, /not signed by a trusted CA \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\).*no CA was given.*--ca/);
      const otherCaFile = join(dataDir, 'other-ca.crt');
      writeFileSync(otherCaFile, otherCa.cert);
      const wrongCa = await cli(['get', 'greeting', '--ca', otherCaFile]);
      assert.equal(wrongCa.code, 3, wrongCa.stderr);
      assert.match(wrongCa.stderr, /not signed by a trusted CA.*not signed by the CA given/);
      const missing = await cli(['get', 'greeting', '--ca', join(dataDir, 'nope.crt')]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /--ca .*nope\.crt: cannot read it \(no such file\)/);
      const notPem = await cli(['get', 'greeting', '--ca', join(dataDir, 'tsraft-start.pid')]);
      assert.equal(notPem.code, 2);
      assert.match(notPem.stderr, /--ca .*: not a PEM file/);
      // A fourth node joins the HTTPS cluster through a member, with --ca, and promotes itself.
      const [joinRaft, joinHttp] = await freeLoopbackPorts(2);
      const made = await cli(['certs', 'node', '--dir', tlsDir, '--id', '3']);
      assert.equal(made.code, 0, made.stderr);
      const files = { ca: caFile, cert: join(tlsDir, 'node-3.crt'), key: join(tlsDir, 'node-3.key') };
      const joiner = spawn(
        process.execPath,
        [main, 'node', '--id', '3', '--join', `https://${HOST}:${httpBase}`, '--listen', `${HOST}:${joinRaft!}`, '--http', `${HOST}:${joinHttp!}`, '--data-dir', join(dataDir, 'node-3-joined'), '--no-fsync',
          '--peer-ca', files.ca, '--peer-cert', files.cert, '--peer-key', files.key, '--http-cert', files.cert, '--http-key', files.key, '--ca', files.ca,
          '--auth-file', join(dataDir, 'auth.json')],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TSRAFT_TOKEN: token } },
      );
      let joinOutput = '';
      joiner.stdout.on('data', (d: Buffer) => (joinOutput += d.toString()));
      joiner.stderr.on('data', (d: Buffer) => (joinOutput += d.toString()));
      try {
        await waitFor('node 3 promoted', 20_000, () => joinOutput.includes('caught up, promoted')).catch((error: unknown) => assert.fail(`${String(error)}\n${joinOutput}`));
        const members = await cli(['member', 'list', '--ca', caFile]);
        assert.equal(members.code, 0, members.stderr);
        assert.match(members.stdout, new RegExp(`3  voter +${HOST}:${joinRaft!}  https://${HOST}:${joinHttp!}`));
      } finally {
        joiner.kill('SIGKILL');
      }
      // The client's handshakes that failed are counted by the nodes they were refused by.
      const refused = await Promise.all([0, 1, 2].map(async (i) => httpTlsRefused(await (await https!.fetch(`https://${HOST}:${httpBase + i}/metrics`, {})).text())));
      assert.ok(refused.reduce((a, b) => a + b, 0) >= 2, `tsraft_http_tls_refused_total: ${refused.join(', ')}`);
    } finally {
      await https?.close();
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([exited, new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), 15_000)))]);
      clearTimeout(timer);
      if (code === 'timeout') child.kill('SIGKILL');
      else assert.equal(code, 0, `tsraft start exited with ${String(code)}\n${output}`);
      try {
        // The same data without --tls is refused: its configuration keeps the https:// URLs.
        const plain = await runCli(main, ['start', '--nodes', '3', '--data-dir', dataDir, '--base-port', String(raftBase), '--http-base-port', String(httpBase), '--no-fsync', '--no-watchdog'], {});
        assert.equal(plain.code, 2, plain.stdout + plain.stderr);
        assert.match(plain.stderr, /cannot start without --tls: the data in .* was first started with it \(node 0 is recorded as .*\/https:\/\//);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
  });
});

function httpTlsRefused(metrics: string): number {
  const m = /^tsraft_http_tls_refused_total (\d+)$/m.exec(metrics);
  assert.ok(m !== null, 'tsraft_http_tls_refused_total missing from /metrics');
  return Number(m[1]);
}

/** Runs the CLI binary with `env` added; bounded at 20 s. */
function runCli(main: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [main, ...args], { env: { ...process.env, TSRAFT_CA: '', TSRAFT_CERT: '', TSRAFT_KEY: '', TSRAFT_TOKEN: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
