/**
 * How long `tsraft put` takes while the leader of a `tsraft start` cluster is paused (kill -STOP):
 * the operator's view of a hung node. Each run finds the leader, pauses it, runs the real CLI with
 * the paused leader as the first of --endpoints (the worst order), resumes it and waits for the
 * cluster to serve again. Prints every run and the median.
 *
 *     npm run build && node dist/scripts/paused-put.js [--runs 7] [--attempt-timeout MS]
 *
 * (`--attempt-timeout 5000`, the put's whole --timeout, shows the behaviour before attempts had
 * deadlines of their own.)
 *
 * The test in test/cli/paused-node.test.ts runs measurePausedLeaderPut with a few runs.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KvClient } from '../src/kv/client.js';
import { freeLoopbackPortRange } from '../src/testing/ports.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface PausedPutRun {
  /** The paused leader's node id. */
  readonly paused: number;
  /** Wall time of the whole `tsraft put` process (start-up included), in ms. */
  readonly ms: number;
  /**
   * The same put from a KvClient in this process, started at the same moment: the client's own
   * share without Node's start-up (which a loaded machine stretches), in ms; -1 if it failed.
   */
  readonly clientMs: number;
  readonly exitCode: number | null;
  readonly stderr: string;
}

export interface PausedPutReport {
  readonly runs: readonly PausedPutRun[];
  readonly medianMs: number;
  readonly clientMedianMs: number;
  /** Wall time of `tsraft put` against the healthy cluster (process start-up and one write), median. */
  readonly healthyMedianMs: number;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function runCli(args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env['TSRAFT_ENDPOINTS'];
    execFile(process.execPath, [MAIN, ...args], { timeout: timeoutMs, env }, (error, _stdout, stderr) => {
      const code = error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : null;
      resolve({ code, stderr, ms: performance.now() - started });
    });
  });
}

interface NodeStatus {
  id?: number;
  role?: string;
  term?: number;
}

async function statusOf(url: string): Promise<NodeStatus | undefined> {
  try {
    const response = await fetch(`${url}/v1/status`, { signal: AbortSignal.timeout(500) });
    return response.ok ? ((await response.json()) as NodeStatus) : undefined;
  } catch {
    return undefined;
  }
}

/** The leader every answering node agrees on (all three answer), within `timeoutMs`. */
async function steadyLeader(endpoints: readonly string[], timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const statuses = await Promise.all(endpoints.map(statusOf));
    const leaders = statuses.filter((s) => s?.role === 'leader');
    if (statuses.every((s) => s !== undefined) && leaders.length === 1 && typeof leaders[0]!.id === 'number') return leaders[0]!.id;
    if (Date.now() > deadline) throw new Error(`no steady leader within ${timeoutMs} ms: ${JSON.stringify(statuses)}`);
    await sleep(100);
  }
}

/**
 * Starts a 3-node `tsraft start` cluster (in a temporary directory, on free loopback ports, the
 * watchdog off so that it does not restart the paused node), measures `runs` paused-leader puts,
 * and stops everything, also on failure.
 */
export async function measurePausedLeaderPut(options: { runs: number; attemptTimeoutMs?: number; log?: (line: string) => void }): Promise<PausedPutReport> {
  const log = options.log ?? (() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'tsraft-paused-put-'));
  const base = await freeLoopbackPortRange(3);
  const httpBase = await freeLoopbackPortRange(3, new Set([base, base + 1, base + 2]));
  const endpoints = [0, 1, 2].map((i) => `http://127.0.0.1:${httpBase + i}`);
  let output = '';
  const start: ChildProcess = spawn(
    process.execPath,
    [MAIN, 'start', '--nodes', '3', '--data-dir', join(dir, 'data'), '--base-port', String(base), '--http-base-port', String(httpBase), '--no-watchdog'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  start.stdout!.setEncoding('utf8').on('data', (c: string) => (output += c));
  start.stderr!.setEncoding('utf8').on('data', (c: string) => (output += c));
  const exited = new Promise<void>((resolve) => start.once('exit', () => resolve()));
  let pausedPid: number | undefined;
  try {
    const pids = new Map<number, number>();
    const deadline = Date.now() + 30_000;
    while (pids.size < 3) {
      for (const m of output.matchAll(/^(\d+)\s+127\.0\.0\.1:\d+\s+http:\/\/127\.0\.0\.1:\d+\s+(\d+)\s/gm)) pids.set(Number(m[1]), Number(m[2]));
      if (Date.now() > deadline || start.exitCode !== null) throw new Error(`tsraft start did not list its nodes; output:\n${output}`);
      await sleep(50);
    }
    const healthy: number[] = [];
    for (let i = 0; i < 3; i++) {
      await steadyLeader(endpoints, 30_000);
      healthy.push((await runCli(['put', 'warm', String(i), '--endpoints', endpoints.join(',')], 30_000)).ms);
    }
    const runs: PausedPutRun[] = [];
    for (let i = 0; i < options.runs; i++) {
      const leader = await steadyLeader(endpoints, 30_000);
      const pid = pids.get(leader)!;
      const order = [endpoints[leader]!, ...endpoints.filter((_, id) => id !== leader)];
      process.kill(pid, 'SIGSTOP');
      pausedPid = pid;
      const attempt = options.attemptTimeoutMs === undefined ? [] : ['--attempt-timeout', String(options.attemptTimeoutMs)];
      const client = new KvClient({ endpoints: order, timeoutMs: 5_000, ...(options.attemptTimeoutMs === undefined ? {} : { attemptTimeoutMs: options.attemptTimeoutMs }) });
      const clientStarted = performance.now();
      const [result, clientMs] = await Promise.all([
        runCli(['put', `paused-${i}`, 'v', '--endpoints', order.join(','), ...attempt], 30_000),
        client.put(`paused-client-${i}`, 'v').then(
          () => Math.round(performance.now() - clientStarted),
          () => -1,
        ),
      ]);
      process.kill(pid, 'SIGCONT');
      pausedPid = undefined;
      const run = { paused: leader, ms: Math.round(result.ms), clientMs, exitCode: result.code, stderr: result.stderr.trim() };
      runs.push(run);
      log(`run ${i + 1}: leader node ${leader} paused; tsraft put exit ${result.code} in ${run.ms} ms (KvClient in this process: ${clientMs < 0 ? 'failed' : `${clientMs} ms`})${run.stderr === '' ? '' : ` (${run.stderr})`}`);
      // Let the resumed node rejoin, so that every run starts from a steady cluster.
      await sleep(500);
    }
    return { runs, medianMs: median(runs.map((r) => r.ms)), clientMedianMs: median(runs.map((r) => r.clientMs)), healthyMedianMs: Math.round(median(healthy)) };
  } finally {
    if (pausedPid !== undefined) process.kill(pausedPid, 'SIGCONT');
    if (start.exitCode === null) start.kill('SIGINT');
    const killer = setTimeout(() => start.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(killer);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' }, 'attempt-timeout': { type: 'string' } } });
  const attemptTimeoutMs = values['attempt-timeout'] === undefined ? undefined : Number(values['attempt-timeout']);
  if (attemptTimeoutMs !== undefined && !(Number.isSafeInteger(attemptTimeoutMs) && attemptTimeoutMs >= 1)) {
    console.error('--attempt-timeout must be a positive integer (ms)');
    process.exit(2);
  }
  const runs = Number(values.runs);
  if (!Number.isSafeInteger(runs) || runs < 1 || runs > 100) {
    console.error('--runs must be an integer from 1 to 100');
    process.exit(2);
  }
  console.log(`paused-put: a 3-node tsraft start cluster (election timeout 1000-2000 ms), the leader paused with SIGSTOP, ${runs} runs`);
  const report = await measurePausedLeaderPut({ runs, ...(attemptTimeoutMs === undefined ? {} : { attemptTimeoutMs }), log: (line) => console.log(line) });
  const times = report.runs.map((r) => r.ms);
  const clientTimes = report.runs.map((r) => r.clientMs);
  console.log(
    `tsraft put with the leader paused: median ${report.medianMs} ms (min ${Math.min(...times)}, max ${Math.max(...times)}); ` +
      `KvClient: median ${report.clientMedianMs} ms (min ${Math.min(...clientTimes)}, max ${Math.max(...clientTimes)}); healthy cluster: tsraft put median ${report.healthyMedianMs} ms`,
  );
  process.exitCode = report.runs.every((r) => r.exitCode === 0) ? 0 : 1;
}
