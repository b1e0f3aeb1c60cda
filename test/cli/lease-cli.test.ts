/**
 * `tsraft lease ...` and `tsraft put --lease` against an in-process 3-node cluster: a lease's whole
 * life (grant, attach keys, read them, time-to-live with keys, keep-alive once, list, revoke: keys
 * gone; revoke again: exit 1 lease-not-found), `-o json`, usage errors (exit 2 with a message, no
 * stack trace, nothing sent), and `tsraft lease keepalive ID` running: a line per renewal, the lease
 * kept past its TTL, exit 0 on SIGINT, exit 1 with a clear message once the lease is revoked.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { KvClient } from '../../src/kv/client.js';
import { KvCluster } from '../kv/kv-cluster-fixture.js';
import { assertNoStackTrace, MAIN, sleep, tsraft as runTsraft, TsraftProcess, type Run } from './cli-fixture.js';

/** The leader hints file stays untouched: these runs are not worth remembering. */
const ENV = { TSRAFT_LEADER_CACHE: 'off' };

describe('tsraft lease', { timeout: 60_000 }, () => {
  let cluster: KvCluster;
  let client: KvClient;
  let endpoints: string;
  const tsraft = (...args: string[]): Promise<Run> => runTsraft([...args, '--endpoints', endpoints], { env: ENV, timeoutMs: 20_000 });
  const json = (run: Run): Record<string, unknown> => {
    assert.equal(run.code, 0, run.stderr);
    return JSON.parse(run.stdout) as Record<string, unknown>;
  };

  before(async () => {
    cluster = await KvCluster.start({ prefix: 'tsraft-lease-cli-' });
    await cluster.leader();
    endpoints = cluster.members.map((id) => cluster.url(id)).join(',');
    client = new KvClient({ endpoints: endpoints.split(','), timeoutMs: 10_000 });
  });

  after(async () => {
    await client?.close();
    await cluster?.stop();
  });

  test('grant, put --lease, get, timetolive --keys, keepalive --once, list, revoke, revoke again', async () => {
    const granted = await tsraft('lease', 'grant', '60');
    assert.equal(granted.code, 0, granted.stderr);
    const m = /^lease (\d+) granted with TTL 60 s\n$/.exec(granted.stdout);
    assert.ok(m !== null, granted.stdout);
    const id = m[1]!;

    // Commands that do not depend on each other run side by side (each CLI start costs ~0.5 s).
    const [put, putJson] = await Promise.all([tsraft('put', 'svc/a', 'A', '--lease', id), tsraft('put', 'svc/b', 'B', '--lease', id, '-o', 'json')]);
    assert.equal(put.stdout, 'OK\n', put.stderr);
    assert.equal(json(putJson)['lease'], Number(id));

    const [ttl, ttlJson, once, list, listJson] = await Promise.all([
      tsraft('lease', 'timetolive', id, '--keys'),
      tsraft('lease', 'timetolive', id, '--keys', '-o', 'json').then(json),
      tsraft('lease', 'keepalive', id, '--once'),
      tsraft('lease', 'list'),
      tsraft('lease', 'list', '-o', 'json').then(json),
    ]);
    assert.equal(await client.get('svc/a'), 'A');
    assert.equal((await client.getWithRevisions('svc/b'))?.lease, Number(id));

    assert.equal(ttl.code, 0, ttl.stderr);
    assert.match(ttl.stdout, new RegExp(`^lease ${id}: TTL 60 s, \\d+\\.\\d{3} s remaining, 2 keys\\nsvc/a\\nsvc/b\\n$`));
    assert.deepEqual([ttlJson['id'], ttlJson['ttl'], ttlJson['keyCount'], ttlJson['keys'], ttlJson['keysEncoding']], [Number(id), 60, 2, ['svc/a', 'svc/b'], 'utf8']);
    assert.ok(typeof ttlJson['remaining'] === 'number' && ttlJson['remaining'] > 0 && ttlJson['remaining'] <= 60, JSON.stringify(ttlJson));

    assert.equal(once.code, 0, once.stderr);
    assert.equal(once.stdout, `lease ${id} kept alive with TTL 60 s\n`);

    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^id\s+ttl\s+keys\n[- ]+\n/);
    assert.match(list.stdout, new RegExp(`^\\s*${id}\\s+60 s\\s+2$`, 'm'));
    assert.deepEqual((listJson['leases'] as unknown[]).find((l) => (l as { id: number }).id === Number(id)), { id: Number(id), ttl: 60, keyCount: 2 });

    const revoked = await tsraft('lease', 'revoke', id);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`^lease ${id} revoked \\(2 keys deleted, revision \\d+\\)\\n$`));
    assert.equal(await client.get('svc/a'), null, 'the keys went with the lease');
    assert.equal(await client.get('svc/b'), null);

    const goneCases = [['lease', 'revoke', id], ['lease', 'keepalive', id, '--once'], ['lease', 'keepalive', id], ['put', 'svc/c', 'C', '--lease', id]];
    const gone = await Promise.all(goneCases.map((args) => tsraft(...args)));
    gone.forEach((run, i) => {
      const args = goneCases[i]!.join(' ');
      assert.equal(run.code, 1, `${args}: ${run.stderr}`);
      assert.match(run.stderr, new RegExp(`lease ${id} not found \\(lease-not-found\\): it expired, was revoked or was never granted`), args);
      assertNoStackTrace(run.stderr);
    });
    assert.equal(await client.get('svc/c'), null, 'a put naming a lease that is gone writes nothing');
  });

  test('a bad TTL or lease id is a usage error (exit 2), before anything is sent', async () => {
    // An endpoint where nothing listens: a usage error must not even try it (it would exit 3).
    const nowhere = 'http://127.0.0.1:9';
    const cases: [string[], RegExp][] = [
      [['lease', 'grant', '0'], /TTL \(seconds\): 0 is out of range \(1\.\.9000000000\)/],
      [['lease', 'grant', 'ten'], /TTL \(seconds\): expected an integer, got "ten"/],
      [['lease', 'revoke', 'abc'], /ID \(a lease id\): expected an integer, got "abc"/],
      [['lease', 'keepalive', '0'], /ID \(a lease id\): 0 is out of range/],
      [['put', 'k', 'v', '--lease', 'seven'], /--lease \(a lease id\): expected an integer, got "seven"/],
      [['lease', 'grant'], /missing required argument 'ttl'/],
    ];
    await Promise.all(
      cases.map(async ([args, message]) => {
        const run = await runTsraft([...args, '--endpoints', nowhere], { env: ENV });
        assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
        assert.match(run.stderr, message, args.join(' '));
        assertNoStackTrace(run.stderr);
      }),
    );
  });

  test('keepalive keeps a 2 s lease alive until SIGINT; exits 1 once the lease is revoked', async () => {
    const keep = (id: number): TsraftProcess =>
      new TsraftProcess(spawn(process.execPath, [MAIN, 'lease', 'keepalive', String(id), '--endpoints', endpoints], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...ENV } }));

    const interrupted = await client.leaseGrant(2);
    const revoked = await client.leaseGrant(2);
    await client.put('kept/a', 'A', { lease: revoked.id });
    // A CLI start can take longer than 2 s on a loaded machine: this process keeps both leases
    // alive until each command has renewed its own.
    const bridges = [client.keepLeaseAlive(interrupted.id), client.keepLeaseAlive(revoked.id)];
    const first = keep(interrupted.id);
    const second = keep(revoked.id);
    try {
      await Promise.all([first.waitFor('a first renewal', /kept alive/), second.waitFor('a first renewal', /kept alive/)]);
      for (const bridge of bridges) bridge.stop();
      // A renewal every TTL/3: well past the TTL, both leases and the key are still there.
      await sleep(3_000);
      for (const [run, lease] of [[first, interrupted], [second, revoked]] as const) {
        const lines = run.output.split('\n').filter((l) => l !== '');
        assert.ok(lines.length >= 3, run.output);
        for (const line of lines) assert.equal(line, `lease ${lease.id} kept alive with TTL 2 s`);
      }
      assert.equal(await client.get('kept/a'), 'A');
      assert.equal(first.proc.exitCode, null);

      assert.equal(await first.stopWith('SIGINT'), 0, first.output);

      await client.leaseRevoke(revoked.id);
      const code = await Promise.race([second.exit, sleep(5_000).then(() => 'still running')]);
      assert.equal(code, 1, second.output);
      assert.match(second.output, new RegExp(`tsraft: lease keepalive ${revoked.id}: lease ${revoked.id} is gone \\(lease-not-found\\): it expired or was revoked; its keys are deleted\\n$`));
      assertNoStackTrace(second.output);
    } finally {
      for (const bridge of bridges) bridge.stop();
      await first.stopWith('SIGKILL');
      await second.stopWith('SIGKILL');
    }
    // Nobody keeps the interrupted one alive: it expires (its own TTL, and a little).
    await assert.rejects(
      (async () => {
        for (const deadline = Date.now() + 6_000; Date.now() < deadline; await sleep(100)) await client.leaseTimeToLive(interrupted.id);
      })(),
      (error: unknown) => (error as { code?: unknown }).code === 'lease-not-found',
    );
  });
});
