/**
 * `tsraft leader transfer` end to end against a `tsraft start` cluster of child processes: to a
 * named node, to the leader's choice, a --to that is not a member (exit 2, the members named), a
 * --to that already leads, and no cluster at all (exit 3); plus how `tsraft status` shows a leader
 * that is handing over. Every process and directory is cleaned up even when an assertion fails.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { transferFailure } from '../../src/cli/leader.js';
import { statusTable } from '../../src/cli/status.js';
import { KvClientError } from '../../src/kv/client.js';
import { freeLoopbackPortRange } from '../../src/testing/ports.js';
import { assertNoStackTrace, sleep, startPorts, tsraft, TsraftStart } from './cli-fixture.js';

describe('tsraft leader transfer against tsraft start', { timeout: 120_000 }, () => {
  let dir: string | undefined;
  let start: TsraftStart;
  let endpoints = '';

  /** Who leads, from every node's /v1/status (the highest term's leader). */
  const currentLeader = async (): Promise<number | undefined> => {
    let best: { id: number; term: number } | undefined;
    for (const url of endpoints.split(',')) {
      const s = await fetch(`${url}/v1/status`, { signal: AbortSignal.timeout(2_000) })
        .then((r) => r.json() as Promise<{ id: number; role: string; term: number }>)
        .catch(() => undefined);
      if (s?.role === 'leader' && (best === undefined || s.term > best.term)) best = { id: s.id, term: s.term };
    }
    return best?.id;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsraft-leader-'));
    const ports = await startPorts();
    endpoints = ports.endpoints.join(',');
    start = TsraftStart.spawn(['--nodes', '3', '--data-dir', join(dir, 'data'), ...ports.args, '--no-fsync']);
    await start.waitFor('the leader line', /\[start\] leader: node \d+ \(/);
  });

  after(async () => {
    await start?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('--to ID moves leadership to that node and says so; tsraft status and tsraft start see it', async () => {
    const leader = await currentLeader();
    assert.ok(leader !== undefined, start.output);
    const target = (leader + 1) % 3;
    const run = await tsraft(['leader', 'transfer', '--to', String(target), '--endpoints', endpoints]);
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
    assert.match(run.stdout, new RegExp(`^leadership moved from node ${leader} to node ${target} at http://127\\.0\\.0\\.1:\\d+ \\(term \\d+\\)\\n$`));
    const status = await tsraft(['status', '--endpoints', endpoints]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^${target}\\s+leader\\s`, 'm'), status.stdout);
    assert.match(status.stdout, new RegExp(`leader: node ${target}\\n$`));
    // tsraft start prints the change of leader.
    const deadline = Date.now() + 10_000;
    while (!new RegExp(`\\[start\\] leader: node ${target} \\(http://127\\.0\\.0\\.1:\\d+\\), term \\d+`).test(start.output)) {
      assert.ok(Date.now() < deadline, `tsraft start did not report the new leader:\n${start.output}`);
      await sleep(50);
    }
    // The cluster still serves.
    const put = await tsraft(['put', 'after-transfer', 'yes', '--endpoints', endpoints]);
    assert.equal(put.code, 0, put.stderr);
  });

  it('without --to, the leader hands over to a follower of its choice', async () => {
    const leader = await currentLeader();
    assert.ok(leader !== undefined);
    // Through the endpoint of a follower: the command finds the leader.
    const follower = (leader + 2) % 3;
    const urls = endpoints.split(',');
    const run = await tsraft(['leader', 'transfer', '--endpoints', [urls[follower], ...urls.filter((_, i) => i !== follower)].join(',')]);
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
    const m = /^leadership moved from node (\d+) to node (\d+) at \S+ \(term \d+\)\n$/.exec(run.stdout);
    assert.ok(m !== null, run.stdout);
    assert.equal(Number(m[1]), leader);
    assert.notEqual(Number(m[2]), leader);
    assert.equal(await currentLeader(), Number(m[2]));
  });

  it('a --to that is not a member: exit 2, the members named; one that already leads: exit 0, nothing moved', async () => {
    const bad = await tsraft(['leader', 'transfer', '--to', '9', '--endpoints', endpoints]);
    assert.equal(bad.code, 2, `${bad.stdout}${bad.stderr}`);
    assert.match(bad.stderr, /node 9 is not a member of this cluster \(the members are 0, 1, 2; this is node \d\); pick --to from the members/);
    assertNoStackTrace(bad.stderr);
    const usage = await tsraft(['leader', 'transfer', '--to', 'two', '--endpoints', endpoints]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--to: node id must be a non-negative integer/);

    const leader = await currentLeader();
    assert.ok(leader !== undefined);
    const same = await tsraft(['leader', 'transfer', '--to', String(leader), '--endpoints', endpoints]);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, new RegExp(`^node ${leader} already leads at \\S+ \\(term \\d+\\); nothing to do\\n$`));
    assert.equal(await currentLeader(), leader);
  });

  it('no cluster at the endpoints: exit 3 with what to do', async () => {
    const port = await freeLoopbackPortRange(1);
    const run = await tsraft(['leader', 'transfer', '--endpoints', `http://127.0.0.1:${port}`, '--timeout', '300']);
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stderr, /no leader could be reached within 300 ms .*Is the cluster running \(`tsraft start`\)/);
    assertNoStackTrace(run.stderr);
  });

  it('tsraft --help lists it, and it has its own help', async () => {
    const help = await tsraft(['--help']);
    assert.match(help.stdout, /tsraft leader transfer --to 2/);
    const own = await tsraft(['leader', 'transfer', '--help']);
    assert.equal(own.code, 0);
    assert.match(own.stdout, /^Usage: tsraft leader transfer/);
  });
});

describe('tsraft leader transfer and status: messages and exit codes', () => {
  it('maps every failure to an exit code and a message that says what to do', () => {
    const timeout = transferFailure(new KvClientError('server-error', '504 transfer-timeout: no new leader was heard of; the transfer was abandoned: node 0 still leads', 504, 'transfer-timeout'), 10_000);
    assert.equal(timeout.code, 1);
    assert.match(timeout.message, /leadership did not move: no new leader was heard of; the transfer was abandoned: node 0 still leads\. .*Retry, or pick another --to/);
    const single = transferFailure(new KvClientError('bad-request', '409 no-transfer-target: this cluster has a single member', 409, 'no-transfer-target'), 10_000);
    assert.equal(single.code, 1);
    const unknown = transferFailure(new KvClientError('outcome-unknown', 'POST x got no answer'), 10_000);
    assert.equal(unknown.code, 1);
    assert.match(unknown.message, /tsraft status/);
    assert.equal(transferFailure(new KvClientError('timeout', 'x'), 10_000).code, 3);
    assert.equal(transferFailure(new KvClientError('bad-request', '400 bad-parameter: node 9 is not a member', 400, 'bad-parameter'), 10_000).code, 2);
  });

  it('tsraft status shows a leader that is handing over', () => {
    const rows = statusTable([
      { endpoint: 'http://a', status: { id: 0, role: 'leader', term: 3, leaderId: 0, commitIndex: 5, appliedIndex: 5, transferTarget: 2 } },
      { endpoint: 'http://b', status: { id: 1, role: 'follower', term: 3, leaderId: 0, commitIndex: 5, appliedIndex: 5, transferTarget: null } },
    ]);
    assert.equal(rows[1]![1], 'leader (handing over to 2)');
    assert.equal(rows[2]![1], 'follower');
  });
});
