/**
 * `tsraft start`'s watchdog: a child that stops answering /healthz (here: SIGSTOPped, so its
 * process never exits) is killed with SIGKILL and restarted, and the cluster serves again. Short
 * watchdog settings keep it fast; every process is cleaned up even when an assertion fails.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KvClient } from '../../src/kv/client.js';
import { freeLoopbackPortRange } from '../../src/testing/ports.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const UNHEALTHY_AFTER_MS = 2_500;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('tsraft start: the watchdog kills and restarts a child that stops answering /healthz', { timeout: 120_000 }, () => {
  let dir: string | undefined;
  let start: ChildProcess | undefined;
  let output = '';
  let stopped: number | undefined;

  /** Every node pid start has printed: the table, then "node N restarted (pid P)". */
  const nodePids = (): number[] => [
    ...[...output.matchAll(/^\d+\s+127\.0\.0\.1:\d+\s+http:\/\/127\.0\.0\.1:\d+\s+(\d+)\s/gm)].map((m) => Number(m[1])),
    ...[...output.matchAll(/node \d+ restarted \(pid (\d+)\)/g)].map((m) => Number(m[1])),
  ];

  after(async () => {
    if (stopped !== undefined) signal(stopped, 'SIGCONT');
    if (start !== undefined && start.exitCode === null && start.signalCode === null) {
      const exited = new Promise((resolve) => start!.once('exit', resolve));
      start.kill('SIGINT');
      await Promise.race([exited, sleep(15_000)]);
      if (start.exitCode === null && start.signalCode === null) start.kill('SIGKILL');
    }
    // Whatever start left behind (it should be nothing): its children, by the pids it printed.
    for (const pid of nodePids()) if (alive(pid)) signal(pid, 'SIGKILL');
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('SIGSTOP the leader: start kills it with SIGKILL after --unhealthy-after-ms, restarts it, and the cluster serves', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsraft-watchdog-'));
    const base = await freeLoopbackPortRange(3);
    const httpBase = await freeLoopbackPortRange(3, new Set([base, base + 1, base + 2]));
    const endpoints = [0, 1, 2].map((i) => `http://127.0.0.1:${httpBase + i}`);
    // prettier-ignore
    start = spawn(process.execPath, [
      MAIN, 'start', '--nodes', '3', '--data-dir', join(dir, 'data'), '--base-port', String(base), '--http-base-port', String(httpBase), '--no-fsync',
      '--health-interval-ms', '200', '--unhealthy-after-ms', String(UNHEALTHY_AFTER_MS), '--health-grace-ms', '5000',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    start.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    start.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const waitFor = async (re: RegExp, ms: number, what: string): Promise<RegExpExecArray> => {
      const deadline = Date.now() + ms;
      for (;;) {
        const m = re.exec(output);
        if (m !== null) return m;
        assert.ok(Date.now() < deadline && start!.exitCode === null, `${what}; output so far:\n${output}`);
        await sleep(50);
      }
    };

    const leaderLine = await waitFor(/\[start\] leader: node (\d+) \(/, 30_000, 'no leader line');
    assert.match(output, /watchdog: \/healthz every 200 ms/);
    const target = Number(leaderLine[1]);
    const row = new RegExp(`^${target}\\s+127\\.0\\.0\\.1:\\d+\\s+http:\\/\\/127\\.0\\.0\\.1:\\d+\\s+(\\d+)\\s`, 'm').exec(output);
    assert.ok(row !== null, output);
    const pid = Number(row[1]);
    const client = new KvClient({ endpoints, timeoutMs: 20_000 });
    await client.put('before', '1');

    stopped = pid;
    process.kill(pid, 'SIGSTOP');
    const stoppedAt = Date.now();
    const kill = await waitFor(
      new RegExp(`\\[start\\] node ${target} \\(pid ${pid}\\) has not answered /healthz for [\\d.]+ s \\(last probe: [^)]*\\); killing it with SIGKILL`),
      UNHEALTHY_AFTER_MS + 15_000,
      `node ${target} (pid ${pid}) was not killed by the watchdog`,
    );
    const killedAfter = Date.now() - stoppedAt;
    assert.ok(killedAfter >= UNHEALTHY_AFTER_MS - 300, `killed ${killedAfter} ms after SIGSTOP, before --unhealthy-after-ms: ${kill[0]}`);
    assert.match(output, new RegExp(`node ${target} \\(pid ${pid}\\): /healthz failed \\([^)]*\\); it is killed if it does not answer within`));
    const restarted = await waitFor(new RegExp(`\\[start\\] node ${target} restarted \\(pid (\\d+)\\)`), 10_000, `node ${target} was not restarted`);
    assert.match(output, new RegExp(`node ${target} \\(pid ${pid}\\) was killed by the watchdog \\(no answer from /healthz for [\\d.]+ s; [^)]*\\); restarting it in \\d+ ms`));
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
      assert.ok(Date.now() < deadline, `node ${target} (pid ${newPid}) did not catch up; output:\n${output}`);
      const response = await fetch(`${endpoints[target]}/v1/kv/after?stale=true`).catch(() => null);
      value = response?.ok === true ? ((await response.json()) as { value: string }).value : undefined;
      await response?.body?.cancel().catch(() => undefined);
      if (value !== '2') await sleep(100);
    }
    assert.equal(alive(newPid), true, `the restarted node (pid ${newPid}) is gone; output:\n${output}`);
    assert.equal([...output.matchAll(/killing it with SIGKILL/g)].length, 1, output);
  });

  it('rejects watchdog settings that cannot work', async () => {
    const run = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
      execFile(process.execPath, [MAIN, 'start', '--health-interval-ms', '1000', '--unhealthy-after-ms', '1500'], { timeout: 20_000 }, (error, _stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stderr }),
      ),
    );
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--unhealthy-after-ms \(1500\) must be at least twice --health-interval-ms \(1000\)/);
  });
});
