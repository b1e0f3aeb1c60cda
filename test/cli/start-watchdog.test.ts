/**
 * `tsraft start`'s watchdog: a child that stops answering /healthz (here: SIGSTOPped, so its
 * process never exits) is killed with SIGKILL and restarted, and the cluster serves again. Short
 * watchdog settings keep it fast; every process is cleaned up even when an assertion fails.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KvClient } from '../../src/kv/client.js';
import { alive, signal, sleep, startPorts, tsraft, TsraftStart } from './cli-fixture.js';

const UNHEALTHY_AFTER_MS = 2_500;

describe('tsraft start: the watchdog kills and restarts a child that stops answering /healthz', { timeout: 120_000 }, () => {
  let dir: string | undefined;
  let start: TsraftStart | undefined;
  let stopped: number | undefined;

  after(async () => {
    if (stopped !== undefined) signal(stopped, 'SIGCONT');
    await start?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('SIGSTOP the leader: start kills it with SIGKILL after --unhealthy-after-ms, restarts it, and the cluster serves', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsraft-watchdog-'));
    const { args: ports, endpoints } = await startPorts();
    // prettier-ignore
    const cluster = TsraftStart.spawn([
      '--nodes', '3', '--data-dir', join(dir, 'data'), ...ports, '--no-fsync',
      '--health-interval-ms', '200', '--unhealthy-after-ms', String(UNHEALTHY_AFTER_MS), '--health-grace-ms', '5000',
    ]);
    start = cluster;

    const leaderLine = await cluster.waitFor('the leader line', /\[start\] leader: node (\d+) \(/, 30_000);
    assert.match(cluster.output, /watchdog: \/healthz every 200 ms/);
    const target = Number(leaderLine[1]);
    const row = new RegExp(`^${target}\\s+127\\.0\\.0\\.1:\\d+\\s+http:\\/\\/127\\.0\\.0\\.1:\\d+\\s+(\\d+)\\s`, 'm').exec(cluster.output);
    assert.ok(row !== null, cluster.output);
    const pid = Number(row[1]);
    const client = new KvClient({ endpoints, timeoutMs: 20_000 });
    await client.put('before', '1');

    stopped = pid;
    process.kill(pid, 'SIGSTOP');
    const stoppedAt = Date.now();
    const kill = await cluster.waitFor(
      `the watchdog killing node ${target} (pid ${pid})`,
      new RegExp(`\\[start\\] node ${target} \\(pid ${pid}\\) has not answered /healthz for [\\d.]+ s \\(last probe: [^)]*\\); killing it with SIGKILL`),
      UNHEALTHY_AFTER_MS + 15_000,
    );
    const killedAfter = Date.now() - stoppedAt;
    assert.ok(killedAfter >= UNHEALTHY_AFTER_MS - 300, `killed ${killedAfter} ms after SIGSTOP, before --unhealthy-after-ms: ${kill[0]}`);
    assert.match(cluster.output, new RegExp(`node ${target} \\(pid ${pid}\\): /healthz failed \\([^)]*\\); it is killed if it does not answer within`));
    const restarted = await cluster.waitFor(`node ${target} restarted`, new RegExp(`\\[start\\] node ${target} restarted \\(pid (\\d+)\\)`), 10_000);
    assert.match(cluster.output, new RegExp(`node ${target} \\(pid ${pid}\\) was killed by the watchdog \\(no answer from /healthz for [\\d.]+ s; [^)]*\\); restarting it in \\d+ ms`));
    const newPid = Number(restarted[1]);
    assert.notEqual(newPid, pid);
    for (let i = 0; alive(pid) && i < 100; i++) await sleep(50);
    assert.equal(alive(pid), false, `the stopped node (pid ${pid}) is still there`);
    stopped = undefined;

    // The cluster serves, the restarted node answers and catches up, and no other node was killed.
    await client.put('after', '2');
    assert.equal(await client.get('after'), '2');
    assert.equal(await client.get('before'), '1');
    const deadline = Date.now() + 20_000;
    let value: string | undefined;
    while (value !== '2') {
      assert.ok(Date.now() < deadline, `node ${target} (pid ${newPid}) did not catch up; output:\n${cluster.output}`);
      const response = await fetch(`${endpoints[target]}/v1/kv/after?stale=true`).catch(() => null);
      value = response?.ok === true ? ((await response.json()) as { value: string }).value : undefined;
      await response?.body?.cancel().catch(() => undefined);
      if (value !== '2') await sleep(100);
    }
    assert.equal(alive(newPid), true, `the restarted node (pid ${newPid}) is gone; output:\n${cluster.output}`);
    assert.equal([...cluster.output.matchAll(/killing it with SIGKILL/g)].length, 1, cluster.output);
  });

  it('rejects watchdog settings that cannot work', async () => {
    const run = await tsraft(['start', '--health-interval-ms', '1000', '--unhealthy-after-ms', '1500'], { timeoutMs: 20_000 });
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--unhealthy-after-ms \(1500\) must be at least twice --health-interval-ms \(1000\)/);
  });
});
