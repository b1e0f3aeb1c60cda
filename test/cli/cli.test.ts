/**
 * The `tsraft` CLI end to end: `tsraft start` runs a real 3-node cluster of child processes; the
 * client commands talk to it; SIGINT stops everything and leaves no process behind. Plus usage
 * errors: exit code 2, a clear message, never a stack trace.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KvClient } from '../../src/kv/client.js';
import { freeLoopbackPortRange } from '../../src/testing/ports.js';
import { alive, assertNoStackTrace, startPorts, tsraft as runTsraft, TsraftStart, type Run } from './cli-fixture.js';

/** `tsraft ARGS`, given 20 s. */
const tsraft = (args: readonly string[]): Promise<Run> => runTsraft(args, { timeoutMs: 20_000 });

describe('tsraft start + client commands', { timeout: 120_000 }, () => {
  let dir: string;
  let start: TsraftStart;
  let endpoints: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsraft-cli-'));
    const ports = await startPorts();
    endpoints = ports.endpoints.join(',');
    start = TsraftStart.spawn(['--nodes', '3', '--data-dir', join(dir, 'data'), ...ports.args]);
    await start.waitFor('the leader line', /\[start\] leader: node \d+ \(http:\/\/127\.0\.0\.1:\d+\), elected [\d.]+ s after start/);
  });

  after(async () => {
    await start?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the address table with one pid per node', () => {
    const rows = start.output.split('\n').filter((line) => /^\d+\s+127\.0\.0\.1:\d+\s+http:\/\/127\.0\.0\.1:\d+\s+\d+\s/.test(line));
    assert.equal(rows.length, 3, start.output);
    assert.match(start.output, /\[node 0\] .*node 0 up/);
  });

  it('put, get, status', async () => {
    const put = await tsraft(['put', 'a', '1', '--endpoints', endpoints]);
    assert.equal(put.code, 0, put.stderr);
    assert.equal(put.stdout, 'OK\n');

    const get = await tsraft(['get', 'a', '--endpoints', endpoints]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, '1\n');

    const stale = await tsraft(['get', 'a', '--stale', '--endpoints', endpoints]);
    assert.equal(stale.code, 0, stale.stderr);

    const missing = await tsraft(['get', 'no-such-key', '--endpoints', endpoints]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found/);

    const casFail = await tsraft(['cas', 'a', 'x', 'y', '--endpoints', endpoints]);
    assert.equal(casFail.code, 1);
    assert.match(casFail.stderr, /not swapped: "a" holds "1"/);
    const casOk = await tsraft(['cas', 'a', '1', '2', '--endpoints', endpoints]);
    assert.equal(casOk.code, 0, casOk.stderr);
    assert.equal((await tsraft(['append', 'a', '3', '--endpoints', endpoints])).code, 0);
    assert.equal((await tsraft(['get', 'a', '--endpoints', endpoints])).stdout, '23\n');
    assert.equal((await tsraft(['del', 'a', '--endpoints', endpoints])).code, 0);
    assert.equal((await tsraft(['get', 'a', '--endpoints', endpoints])).code, 1);

    const status = await tsraft(['status', '--endpoints', endpoints]);
    assert.equal(status.code, 0, status.stderr);
    const lines = status.stdout.split('\n');
    assert.match(lines[0]!, /^node\s+role\s+term\s+commit\s+applied\s+lag\s+leader/);
    const rows = lines.filter((line) => /^\d+\s+(leader|follower|candidate|pre-candidate|precandidate)\s/.test(line));
    assert.equal(rows.length, 3, status.stdout);
    assert.equal(rows.filter((r) => /^\d+\s+leader\s/.test(r)).length, 1, status.stdout);
  });

  it('restarts a node that dies unexpectedly', async () => {
    const m = /^1\s+127\.0\.0\.1:\d+\s+http:\/\/127\.0\.0\.1:\d+\s+(\d+)\s/m.exec(start.output);
    assert.ok(m !== null, start.output);
    process.kill(Number(m[1]), 'SIGKILL');
    const deadline = Date.now() + 15_000;
    while (!/\[start\] node 1 restarted \(pid \d+\)/.test(start.output)) {
      assert.ok(Date.now() < deadline, `node 1 was not restarted:\n${start.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(start.output, /node 1 \(pid \d+\) killed by SIGKILL unexpectedly; restarting it/);
    // The restarted node serves again (the cluster answers through it).
    const node1 = endpoints.split(',')[1]!;
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      ok = (await fetch(`${node1}/healthz`).then((r) => r.ok, () => false));
      if (!ok) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ok, 'the restarted node does not answer /healthz');
  });

  it('refuses a second cluster on the same data directory', async () => {
    const second = await tsraft(['start', '--data-dir', join(dir, 'data'), '--base-port', '1', '--http-base-port', '100']);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /locked by another running cluster/);
  });

  it('SIGINT stops every node and exits 0, leaving no process behind', async () => {
    // The latest pid of each node: from the table, then from "node N restarted (pid P)" lines.
    const latest = new Map<number, number>();
    const pids: number[] = [];
    for (const m of start.output.matchAll(/^(\d+)\s+127\.0\.0\.1:\d+\s+http:\/\/127\.0\.0\.1:\d+\s+(\d+)\s/gm)) {
      latest.set(Number(m[1]), Number(m[2]));
      pids.push(Number(m[2]));
    }
    for (const m of start.output.matchAll(/node (\d+) restarted \(pid (\d+)\)/g)) {
      latest.set(Number(m[1]), Number(m[2]));
      pids.push(Number(m[2]));
    }
    assert.equal(latest.size, 3, start.output);
    for (const pid of latest.values()) assert.equal(alive(pid), true, `node pid ${pid} should be running`);
    start.proc.kill('SIGINT');
    const timer = setTimeout(() => start.proc.kill('SIGKILL'), 15_000);
    const code = await start.exit;
    clearTimeout(timer);
    assert.equal(code, 0, start.output);
    assert.match(start.output, /all nodes stopped/);
    for (const pid of pids) assert.equal(alive(pid), false, `node pid ${pid} is still running`);
  });
});

describe('a node whose fsync fails exits, and tsraft start restarts it (fail fast, never a zombie)', { timeout: 120_000 }, () => {
  let dir: string;
  let start: TsraftStart | undefined;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsraft-fatal-'));
  });
  after(async () => {
    // SIGINT lets tsraft start stop its children; SIGKILL only if it does not exit in time.
    await start?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('node 2 stops on an injected fsync failure, exits with code 1, and is restarted; the cluster keeps serving', async () => {
    const { args: ports, endpoints } = await startPorts();
    const cluster = TsraftStart.spawn(['--nodes', '3', '--data-dir', join(dir, 'data'), ...ports], { TSRAFT_FAILPOINT: 'fsync-error:node=2:after=25' });
    start = cluster;
    const deadline = Date.now() + 60_000;
    const client = new KvClient({ endpoints });
    for (let i = 0; !/\[start\] node 2 restarted \(pid \d+\)/.test(cluster.output); i++) {
      assert.ok(Date.now() < deadline, `node 2 did not fail and come back:\n${cluster.output}`);
      await client.put(`k${i}`, `v${i}`).catch(() => undefined);
    }
    assert.match(cluster.output, /node 2: raft stopped on a fatal error \(.*injected fsync failure.*\); exiting so that it is restarted/);
    assert.match(cluster.output, /node 2 \(pid \d+\) exited with code 1 unexpectedly; restarting it/);
    // The other two kept serving all along, and still do.
    await client.put('after', 'restart');
    assert.equal(await client.get('after'), 'restart');
  });
});

describe('tsraft usage errors', { timeout: 60_000 }, () => {
  const bad: [string, string[], RegExp][] = [
    ['peer entry without "="', ['node', '--id', '0', '--data-dir', '/tmp/x', '--peers', '127.0.0.1:7000'], /has no "="/],
    ['duplicate ids', ['node', '--id', '0', '--data-dir', '/tmp/x', '--peers', '0=127.0.0.1:7000/http://127.0.0.1:8000,0=127.0.0.1:7001/http://127.0.0.1:8001'], /duplicate node id 0/],
    ['own id missing', ['node', '--id', '5', '--data-dir', '/tmp/x', '--peers', '0=127.0.0.1:7000/http://127.0.0.1:8000'], /id 5 is not in the peer list/],
    ['malformed address', ['node', '--id', '0', '--data-dir', '/tmp/x', '--peers', '0=127.0.0.1/http://127.0.0.1:8000'], /expected HOST:PORT/],
    ['port out of range', ['node', '--id', '0', '--data-dir', '/tmp/x', '--peers', '0=127.0.0.1:70000/http://127.0.0.1:8000'], /port 70000 is out of range/],
    ['HTTP port out of range', ['node', '--id', '0', '--data-dir', '/tmp/x', '--peers', '0=127.0.0.1:7000/http://127.0.0.1:0'], /port 0 is out of range/],
    ['no HTTP URL', ['node', '--id', '0', '--data-dir', '/tmp/x', '--peers', '0=127.0.0.1:7000'], /no HTTP URL/],
    ['not an http URL', ['node', '--id', '0', '--data-dir', '/tmp/x', '--peers', '0=127.0.0.1:7000/ftp://x:1'], /only http/],
    ['missing --peers', ['node', '--id', '0', '--data-dir', '/tmp/x'], /missing --peers/],
    ['neither --peers nor --join', ['node', '--id', '0', '--data-dir', '/tmp/tsraft-no-such-dir'], /missing --peers <list> or --join <url>: .* holds no cluster identity to restart from/],
    ['--peers with --join', ['node', '--id', '0', '--data-dir', '/tmp/x', '--peers', '0=127.0.0.1:7000/http://127.0.0.1:8000', '--join', 'http://127.0.0.1:8001'], /--peers and --join exclude each other/],
    ['--join without own addresses', ['node', '--id', '3', '--data-dir', '/tmp/tsraft-no-such-dir', '--join', 'http://127.0.0.1:8000'], /--join needs this node's own addresses/],
    ['--join with a bad URL', ['node', '--id', '3', '--data-dir', '/tmp/tsraft-no-such-dir', '--join', '127.0.0.1:8000', '--listen', '127.0.0.1:7003', '--http', '127.0.0.1:8003'], /--join: /],
    ['member add without --raft', ['member', 'add', '3', '--http', 'http://127.0.0.1:8003'], /missing --raft <host:port>/],
    ['member promote without an id', ['member', 'promote'], /missing required argument 'id'/],
    ['member remove with a bad id', ['member', 'remove', 'two'], /member id: node id must be a non-negative integer/],
    ['unknown member command', ['member', 'frobnicate'], /unknown command 'frobnicate'/],
    ['bad --id', ['node', '--id', 'one', '--data-dir', '/tmp/x', '--peers', '0=127.0.0.1:7000/http://127.0.0.1:8000'], /node id must be a non-negative integer/],
    ['unknown option', ['get', 'a', '--bogus'], /unknown option '--bogus'/],
    ['unknown command', ['frobnicate'], /unknown command/],
    ['missing argument', ['put', 'a'], /missing required argument 'value'/],
    ['bad endpoints', ['get', 'a', '--endpoints', 'not a url'], /invalid URL/],
    ['bad --nodes', ['start', '--nodes', '0'], /--nodes: 0 is out of range/],
    ['overlapping ports', ['start', '--base-port', '8000', '--http-base-port', '8001'], /overlap/],
    ['cas without NEW', ['cas', 'k', 'v'], /missing NEW/],
  ];
  for (const [name, args, message] of bad) {
    it(`${name} → exit 2`, async () => {
      const run = await tsraft(args);
      assert.equal(run.code, 2, `exit code for ${args.join(' ')}: ${run.code}\n${run.stderr}`);
      assert.match(run.stderr, message);
      assertNoStackTrace(run.stderr);
    });
  }

  it('--help works for every command', async () => {
    for (const command of ['start', 'node', 'get', 'put', 'del', 'append', 'cas', 'status', 'member', 'member list', 'member add', 'member promote', 'member remove']) {
      const run = await tsraft([...command.split(' '), '--help']);
      assert.equal(run.code, 0, `${command} --help: ${run.stderr}`);
      assert.match(run.stdout, new RegExp(`^Usage: tsraft ${command}`));
    }
    const node = await tsraft(['node', '--help']);
    assert.match(node.stdout, /Peer list format/);
    assert.match(node.stdout, /--join <url>/);
    const top = await tsraft(['--help']);
    assert.match(top.stdout, /tsraft member list/);
  });

  it('an unreachable cluster → exit 3', async () => {
    const port = await freeLoopbackPortRange(1);
    const run = await tsraft(['get', 'a', '--endpoints', `http://127.0.0.1:${port}`, '--timeout', '300']);
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stderr, /unavailable/);
    assertNoStackTrace(run.stderr);
    const status = await tsraft(['status', '--endpoints', `http://127.0.0.1:${port}`]);
    assert.equal(status.code, 3);
    assert.match(status.stdout, /down/);
  });

  it('start refuses a port in use, and a data directory held by a running node', async () => {
    const base = await freeLoopbackPortRange(6);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen({ host: '127.0.0.1', port: base + 1, exclusive: true }, resolve));
    const dir = mkdtempSync(join(tmpdir(), 'tsraft-cli-refuse-'));
    try {
      const run = await tsraft(['start', '--data-dir', join(dir, 'a'), '--base-port', String(base), '--http-base-port', String(base + 3)]);
      assert.equal(run.code, 1);
      assert.match(run.stderr, new RegExp(`127\\.0\\.0\\.1:${base + 1} \\(raft port of node 1\\): already in use`));
      assertNoStackTrace(run.stderr);

      // A node directory whose LOCK names a live process (this test's own pid).
      mkdirSync(join(dir, 'b', 'node-2'), { recursive: true });
      writeFileSync(join(dir, 'b', 'node-2', 'LOCK'), `${process.pid}\n`);
      const locked = await tsraft(['start', '--data-dir', join(dir, 'b'), '--base-port', String(base + 3), '--http-base-port', String(base + 6)]);
      assert.equal(locked.code, 1);
      assert.match(locked.stderr, /node-2 is in use by process/);
    } finally {
      await new Promise((r) => blocker.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
