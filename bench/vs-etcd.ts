/**
 * tsraft beside etcd: a 3-member etcd cluster (Debian's etcd-server package, etcd 3.4, its JSON
 * gateway over HTTP/1.1) and a 3-node tsraft cluster (`tsraft node` processes), both on 127.0.0.1,
 * both fsyncing their logs, measured by the same load generator in this process, in interleaved
 * rounds (etcd, tsraft, tsraft, etcd, etcd, tsraft, ...) so that drift on the machine hits both alike.
 *
 *   npm run bench:vs-etcd -- [--seconds 5] [--rounds 3] [--concurrency 1,8,64,256] [--warmup 1]
 *                            [--value-bytes 100] [--keys 10000] [--only writes|reads] [--timeout-ms 5000]
 *                            [--etcd /path/to/etcd]
 *
 * The load: closed loop, `concurrency` workers, each with one keep-alive HTTP/1.1 connection
 * (bench/raw-http.ts) and one request at a time, sent to the cluster's leader (found before every
 * run: POST /v3/maintenance/status on each etcd member, GET /v1/status on each tsraft node), as a
 * client does once it has found the leader. Writes put a `--value-bytes` value on one of `--keys`
 * keys (etcd: POST /v3/kv/put {"key","value"} in base64; tsraft: PUT /v1/kv/{key}, session-less
 * like etcd's put); reads are linearizable gets of those keys (etcd: POST /v3/kv/range {"key"},
 * linearizable by default; tsraft: GET /v1/kv/{key}, ReadIndex on the leader). Every key is written
 * once in both systems before the first run. Each run has `--warmup` seconds that are not counted,
 * then `--seconds` measured; a request that takes more than `--timeout-ms` is an error (its
 * connection is closed and a new one opened). Latency is from writing the request to reading the
 * whole response; throughput counts the requests completed inside the measured window.
 *
 * CPU: /proc/<pid>/stat (utime + stime) of every process of both systems and /proc/stat (the whole
 * machine's busy time: user + nice + system + irq + softirq + steal) are read at the start and the
 * end of each measured window, and this process's own process.cpuUsage(). A system's CPU per
 * operation is the sum over its 3 processes divided by the operations completed. "Other load" is
 * the machine's busy time minus both systems and this load generator, as a share of one core; a run
 * during which it averaged more than 25% of one core is "disturbed" and counted in the table.
 *
 * Exits 2 without starting anything when etcd is not installed (looked for on PATH, then
 * /usr/bin/etcd), with how to install it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { formatTable } from '../src/cli/common.js';
import { abortAllClusters, KvProcessCluster } from '../src/testing/process-cluster.js';
import { abortAllEtcdClusters, ETCD_INSTALL_HINT, EtcdCluster, findEtcd } from './etcd-cluster.js';
import { isMainModule, percentile, RawConnection, rawRequest } from './raw-http.js';

export type SystemName = 'etcd' | 'tsraft';
export type Kind = 'writes' | 'reads';

/** A run is disturbed when the other load on the machine averaged more than this many cores. */
export const DISTURBED_CORES = 0.25;
/** A run in which a system failed more than this share of its requests is marked. */
export const ERROR_SHARE_MARK = 0.01;

// ---- CPU accounting from /proc

/** utime + stime (clock ticks) from the text of /proc/<pid>/stat; the name in parentheses may hold spaces and parentheses. */
export function parseProcPidStat(text: string): number {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error('not a /proc/<pid>/stat line');
  // Fields after the name, from field 3 (state): utime is field 14, stime field 15.
  const fields = text.slice(close + 2).trim().split(/\s+/);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('no utime/stime in /proc/<pid>/stat');
  return utime + stime;
}

/** The whole machine's busy clock ticks (user + nice + system + irq + softirq + steal; guest time is inside user) from /proc/stat. */
export function parseProcStatBusy(text: string): number {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) throw new Error('no "cpu " line in /proc/stat');
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const at = (i: number): number => f[i] ?? 0;
  return at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
}

export interface CpuSnapshot {
  /** performance.now() when taken. */
  readonly atMs: number;
  readonly machineTicks: number;
  /** utime + stime ticks per pid; undefined for a process that could not be read (gone). */
  readonly pidTicks: ReadonlyMap<number, number | undefined>;
  /** This process's user + system CPU, µs. */
  readonly selfUs: number;
}

export function takeCpuSnapshot(pids: readonly number[], read: (path: string) => string = (path) => readFileSync(path, 'latin1')): CpuSnapshot {
  const pidTicks = new Map<number, number | undefined>();
  for (const pid of pids) {
    try {
      pidTicks.set(pid, parseProcPidStat(read(`/proc/${pid}/stat`)));
    } catch {
      pidTicks.set(pid, undefined);
    }
  }
  const usage = process.cpuUsage();
  return { atMs: performance.now(), machineTicks: parseProcStatBusy(read('/proc/stat')), pidTicks, selfUs: usage.user + usage.system };
}

/** CPU used between two snapshots, in µs. */
export interface CpuWindow {
  readonly wallUs: number;
  readonly machineUs: number;
  readonly bySystem: Readonly<Record<SystemName, number>>;
  readonly selfUs: number;
  /** machine − both systems − this process (clamped at 0: the counters have a tick's granularity). */
  readonly otherUs: number;
  /** Pids that could not be read at either end (their CPU is missing from their system). */
  readonly missing: readonly number[];
}

export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot, pids: Readonly<Record<SystemName, readonly number[]>>, ticksPerSecond: number): CpuWindow {
  const usPerTick = 1e6 / ticksPerSecond;
  const missing: number[] = [];
  const sum = (list: readonly number[]): number => {
    let ticks = 0;
    for (const pid of list) {
      const a = before.pidTicks.get(pid);
      const b = after.pidTicks.get(pid);
      if (a === undefined || b === undefined) missing.push(pid);
      else ticks += b - a;
    }
    return ticks * usPerTick;
  };
  const bySystem = { etcd: sum(pids.etcd), tsraft: sum(pids.tsraft) };
  const machineUs = (after.machineTicks - before.machineTicks) * usPerTick;
  const selfUs = after.selfUs - before.selfUs;
  return {
    wallUs: (after.atMs - before.atMs) * 1000,
    machineUs,
    bySystem,
    selfUs,
    otherUs: Math.max(0, machineUs - bySystem.etcd - bySystem.tsraft - selfUs),
    missing,
  };
}

/** Clock ticks per second of /proc's counters (getconf CLK_TCK; 100 when it cannot be asked). */
export function clockTicksPerSecond(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

// ---- results and the table

export interface RunResult {
  readonly system: SystemName;
  readonly kind: Kind;
  readonly concurrency: number;
  readonly round: number;
  /** Requests completed successfully inside the measured window. */
  readonly ops: number;
  /** Requests that failed (non-200 answer, connection error, timeout) inside the measured window. */
  readonly errors: number;
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** The system's CPU (its 3 processes) per completed operation, µs. */
  readonly cpuUsPerOp: number;
  /** Other load on the machine during the window, in cores. */
  readonly otherCores: number;
  /** This load generator's CPU during the window, in cores. */
  readonly generatorCores: number;
  readonly firstError: string | undefined;
}

export function isDisturbed(run: RunResult): boolean {
  return run.otherCores > DISTURBED_CORES;
}

export function errorShare(run: RunResult): number {
  const requests = run.ops + run.errors;
  return requests === 0 ? (run.errors > 0 ? 1 : 0) : run.errors / requests;
}

/** The median (mean of the middle two for an even count); NaN when empty. */
export function middle(xs: readonly number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface SystemCell {
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly cpuUsPerOp: number;
  readonly errors: number;
  /** Runs in which more than ERROR_SHARE_MARK of the requests failed. */
  readonly erroredRuns: number;
  readonly runs: number;
}

export interface Cell {
  readonly kind: Kind;
  readonly concurrency: number;
  readonly etcd: SystemCell;
  readonly tsraft: SystemCell;
  /** Median other load over every run of the cell (both systems), in cores. */
  readonly otherCores: number;
  readonly disturbedRuns: number;
  readonly runs: number;
}

function systemCell(runs: readonly RunResult[]): SystemCell {
  return {
    opsPerSecond: middle(runs.map((r) => r.opsPerSecond)),
    p50Ms: middle(runs.map((r) => r.p50Ms)),
    p99Ms: middle(runs.map((r) => r.p99Ms)),
    cpuUsPerOp: middle(runs.map((r) => r.cpuUsPerOp)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    erroredRuns: runs.filter((r) => errorShare(r) > ERROR_SHARE_MARK).length,
    runs: runs.length,
  };
}

/** One cell per (kind, concurrency), in the order first seen: medians of each system's runs. */
export function summarize(runs: readonly RunResult[]): Cell[] {
  const groups = new Map<string, RunResult[]>();
  for (const run of runs) {
    const key = `${run.kind}/${run.concurrency}`;
    const group = groups.get(key) ?? [];
    group.push(run);
    groups.set(key, group);
  }
  return [...groups.values()].map((group) => ({
    kind: group[0]!.kind,
    concurrency: group[0]!.concurrency,
    etcd: systemCell(group.filter((r) => r.system === 'etcd')),
    tsraft: systemCell(group.filter((r) => r.system === 'tsraft')),
    otherCores: middle(group.map((r) => r.otherCores)),
    disturbedRuns: group.filter(isDisturbed).length,
    runs: group.length,
  }));
}

const fixed = (x: number, digits: number): string => (Number.isFinite(x) ? x.toFixed(digits) : '-');
const whole = (x: number): string => (Number.isFinite(x) ? String(Math.round(x)) : '-');

/** The table of medians, then what its marks mean and how many runs were disturbed. */
export function formatVsTable(cells: readonly Cell[]): string {
  const rows: string[][] = [
    ['op', 'conc', 'etcd ops/s', 'p50/p99 ms', 'tsraft ops/s', 'p50/p99 ms', 'tsraft/etcd', 'etcd µs/op', 'tsraft µs/op', 'other load', 'disturbed', 'errors e/t'],
  ];
  for (const c of cells) {
    const errored = c.etcd.erroredRuns + c.tsraft.erroredRuns > 0;
    rows.push([
      c.kind === 'writes' ? 'write' : 'read (lin.)',
      String(c.concurrency),
      whole(c.etcd.opsPerSecond),
      `${fixed(c.etcd.p50Ms, 2)}/${fixed(c.etcd.p99Ms, 1)}`,
      whole(c.tsraft.opsPerSecond),
      `${fixed(c.tsraft.p50Ms, 2)}/${fixed(c.tsraft.p99Ms, 1)}`,
      c.etcd.opsPerSecond > 0 ? fixed(c.tsraft.opsPerSecond / c.etcd.opsPerSecond, 2) : '-',
      whole(c.etcd.cpuUsPerOp),
      whole(c.tsraft.cpuUsPerOp),
      Number.isFinite(c.otherCores) ? `${Math.round(c.otherCores * 100)}%` : '-',
      `${c.disturbedRuns}/${c.runs}${c.disturbedRuns > 0 ? ' *' : ''}`,
      `${c.etcd.errors}/${c.tsraft.errors}${errored ? ' !' : ''}`,
    ]);
  }
  const runs = cells.reduce((n, c) => n + c.runs, 0);
  const disturbed = cells.reduce((n, c) => n + c.disturbedRuns, 0);
  const errored = cells.reduce((n, c) => n + c.etcd.erroredRuns + c.tsraft.erroredRuns, 0);
  const notes = [
    'medians of each system\'s runs; tsraft/etcd = ratio of the ops/s medians (> 1: tsraft faster);',
    'µs/op = CPU of the system\'s 3 processes per completed request; other load = CPU of everything else',
    `on the machine (not the two systems, not the load generator) in % of one core, median of the cell's runs.`,
    `* disturbed runs (other load > ${Math.round(DISTURBED_CORES * 100)}% of one core on average): ${disturbed} of ${runs} runs`,
    `! a run in which a system failed more than ${ERROR_SHARE_MARK * 100}% of its requests: ${errored} run(s)`,
  ];
  return `${formatTable(rows, new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]))}\n\n${notes.join('\n')}`;
}

/** The order of the systems in round `round` (0-based): etcd, tsraft, then tsraft, etcd, ... */
export function roundOrder(round: number): readonly SystemName[] {
  return round % 2 === 0 ? ['etcd', 'tsraft'] : ['tsraft', 'etcd'];
}

// ---- the load generator

/** What one system is sent: one prebuilt request per key, and which answers are successes. */
interface LoadTarget {
  readonly port: number;
  readonly requests: readonly Buffer[];
}

interface LoadOutcome {
  readonly ops: number;
  readonly errors: number;
  readonly latencies: Float64Array;
  readonly cpu: CpuWindow;
  readonly firstError: string | undefined;
}

const HOST = '127.0.0.1';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * `concurrency` closed-loop workers against `target` for `warmupMs` + `measureMs`; the CPU
 * snapshots are taken when the measured window opens and closes, and the requests that complete
 * inside it are counted.
 */
async function runLoad(
  target: LoadTarget,
  concurrency: number,
  warmupMs: number,
  measureMs: number,
  timeoutMs: number,
  snapshot: () => CpuSnapshot,
  window: (before: CpuSnapshot, after: CpuSnapshot) => CpuWindow,
): Promise<LoadOutcome> {
  const latencies: number[] = [];
  let ops = 0;
  let errors = 0;
  let firstError: string | undefined;
  let measuring = false;
  let stopped = false;
  let before: CpuSnapshot | undefined;
  let after: CpuSnapshot | undefined;
  const windowOpens = setTimeout(() => {
    before = snapshot();
    measuring = true;
  }, warmupMs);
  const windowCloses = setTimeout(() => {
    after = snapshot();
    measuring = false;
    stopped = true;
  }, warmupMs + measureMs);
  interface Worker {
    conn: RawConnection | null;
    since: number;
  }
  const workers: Worker[] = Array.from({ length: concurrency }, () => ({ conn: null, since: 0 }));
  const watchdog = setInterval(
    () => {
      const now = performance.now();
      for (const w of workers) {
        if (w.since > 0 && now - w.since > timeoutMs && w.conn !== null) {
          w.conn.abort(new Error(`timed out after ${timeoutMs} ms`));
          w.conn = null;
        }
      }
    },
    Math.max(10, Math.min(250, timeoutMs / 5)),
  );
  const work = async (w: Worker, index: number): Promise<void> => {
    const n = target.requests.length;
    for (let i = 0; !stopped; i++) {
      const request = target.requests[(index * 7919 + i) % n]!;
      const conn = (w.conn ??= new RawConnection(HOST, target.port));
      const started = performance.now();
      w.since = started;
      try {
        const status = await conn.send(request);
        w.since = 0;
        const latency = performance.now() - started;
        if (status !== 200) throw new Error(`HTTP ${status}`);
        if (measuring) {
          // The watchdog looks every timeout/5 (at most 250 ms): an answer later than the timeout is a timeout all the same.
          if (latency > timeoutMs) {
            errors++;
            firstError ??= `answered after ${Math.round(latency)} ms, over the ${timeoutMs} ms timeout`;
          } else {
            ops++;
            latencies.push(latency);
          }
        }
      } catch (error) {
        w.since = 0;
        if (measuring) {
          errors++;
          firstError ??= (error as Error).message;
        }
        conn.close();
        if (w.conn === conn) w.conn = null;
        await sleep(10);
      }
    }
    w.conn?.close();
    w.conn = null;
  };
  try {
    await Promise.all(workers.map((w, i) => work(w, i)));
  } finally {
    clearTimeout(windowOpens);
    clearTimeout(windowCloses);
    clearInterval(watchdog);
  }
  return { ops, errors, latencies: Float64Array.from(latencies).sort(), cpu: window(before!, after!), firstError };
}

/** Sends every request once (writing every key), `concurrency` at a time, each retried up to 3 times; throws when one keeps failing. */
async function sendEach(port: number, requests: readonly Buffer[], concurrency: number, timeoutMs: number): Promise<void> {
  let next = 0;
  const work = async (): Promise<void> => {
    let conn: RawConnection | null = null;
    while (next < requests.length) {
      const request = requests[next++]!;
      for (let attempt = 1; ; attempt++) {
        conn ??= new RawConnection(HOST, port);
        const c: RawConnection = conn;
        const timer = setTimeout(() => c.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
        try {
          const status = await c.send(request);
          if (status === 200) break;
          throw new Error(`HTTP ${status}`);
        } catch (error) {
          c.close();
          conn = null;
          if (attempt >= 3) throw new Error(`writing the keys (port ${port}): ${(error as Error).message}`);
          await sleep(100);
        } finally {
          clearTimeout(timer);
        }
      }
    }
    (conn as RawConnection | null)?.close();
  };
  await Promise.all(Array.from({ length: concurrency }, () => work()));
}

// ---- the command

const USAGE = `usage: npm run bench:vs-etcd -- [options]
  etcd (3 members, JSON gateway) beside tsraft (3 \`tsraft node\` processes), fsync on, 127.0.0.1,
  same load generator, interleaved rounds (etcd, tsraft, tsraft, etcd, ...), medians reported
    --seconds N          measured seconds per run (default 5)  --rounds N          rounds per cell (default 3)
    --concurrency LIST   default 1,8,64,256                    --warmup N          seconds before each run (default 1)
    --value-bytes N      default 100                           --keys N            default 10000
    --only writes|reads  one kind only (default both)          --timeout-ms N      per request (default 5000)
    --etcd PATH          the etcd binary (default: etcd on PATH, else /usr/bin/etcd)`;

function usage(message: string): never {
  console.error(`bench:vs-etcd: ${message}\n${USAGE}`);
  process.exit(2);
}

interface Options {
  readonly seconds: number;
  readonly rounds: number;
  readonly concurrencies: readonly number[];
  readonly warmupSeconds: number;
  readonly valueBytes: number;
  readonly keys: number;
  readonly kinds: readonly Kind[];
  readonly timeoutMs: number;
  readonly etcd: string | undefined;
}

function parseOptions(argv: string[]): Options {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        seconds: { type: 'string', default: '5' },
        rounds: { type: 'string', default: '3' },
        concurrency: { type: 'string', default: '1,8,64,256' },
        warmup: { type: 'string', default: '1' },
        'value-bytes': { type: 'string', default: '100' },
        keys: { type: 'string', default: '10000' },
        only: { type: 'string' },
        'timeout-ms': { type: 'string', default: '5000' },
        etcd: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (error) {
    usage((error as Error).message);
  }
  if (values.help) usage('help');
  const int = (name: string, text: string, min: number, max: number): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) usage(`--${name} must be an integer in ${min}..${max}, got ${text}`);
    return n;
  };
  if (values.only !== undefined && values.only !== 'writes' && values.only !== 'reads') usage(`--only must be writes or reads, got ${values.only}`);
  return {
    seconds: int('seconds', values.seconds, 1, 600),
    rounds: int('rounds', values.rounds, 1, 20),
    concurrencies: values.concurrency.split(',').map((c) => int('concurrency', c.trim(), 1, 4096)),
    warmupSeconds: int('warmup', values.warmup, 0, 60),
    valueBytes: int('value-bytes', values['value-bytes'], 1, 1024 * 1024),
    keys: int('keys', values.keys, 1, 1_000_000),
    kinds: values.only === undefined ? ['writes', 'reads'] : [values.only as Kind],
    timeoutMs: int('timeout-ms', values['timeout-ms'], 10, 600_000),
    etcd: values.etcd,
  };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  // Before anything is started: without etcd there is nothing to compare with.
  const etcdBinary = options.etcd ?? findEtcd();
  if (etcdBinary === undefined || findEtcd('', [etcdBinary]) === undefined) {
    const what = options.etcd !== undefined ? `--etcd ${options.etcd} is not an executable file.` : 'etcd was not found (looked on PATH and at /usr/bin/etcd).';
    console.error(`bench:vs-etcd: ${what}\n${ETCD_INSTALL_HINT}`);
    process.exit(2);
  }
  let etcdVersion = '?';
  try {
    etcdVersion = /etcd Version:\s*(\S+)/.exec(execFileSync(etcdBinary, ['--version'], { encoding: 'utf8', timeout: 10_000 }))?.[1] ?? '?';
  } catch {
    // Reported as "?"; the cluster start below says what is wrong.
  }
  const ticksPerSecond = clockTicksPerSecond();

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`bench:vs-etcd: ${signal}: killing etcd and the tsraft nodes`);
      abortAllEtcdClusters();
      abortAllClusters();
      process.exit(130);
    });
  }

  const { seconds, rounds, concurrencies, warmupSeconds, valueBytes, keys, kinds, timeoutMs } = options;
  const runCount = kinds.length * concurrencies.length * rounds * 2;
  console.log(`machine: ${cpus().length} cores, 1-min load average ${loadavg()[0]!.toFixed(2)} before the run (other work on the machine skews the numbers)`);
  console.log(
    `bench:vs-etcd — etcd ${etcdVersion} (${etcdBinary}, 3 members, JSON gateway) beside tsraft (3 \`tsraft node\` processes), 127.0.0.1, fsync on in both; ` +
      `${valueBytes}-byte values on ${keys} keys; ${kinds.join(' and ')} at concurrency ${concurrencies.join('/')}; ` +
      `${rounds} interleaved round(s) × ${seconds} s (+${warmupSeconds} s warm-up) per system and cell; per-request timeout ${timeoutMs} ms`,
  );
  console.log(`${runCount} runs, about ${Math.ceil((runCount * (seconds + warmupSeconds + 0.3)) / 60)} min of load plus start-up`);
  console.log('load generator: this process, closed loop, one keep-alive HTTP/1.1 connection per worker, every request sent to the current leader of the cluster under test');

  let etcd: EtcdCluster | undefined;
  let tsraft: KvProcessCluster | undefined;
  const results: RunResult[] = [];
  try {
    etcd = await EtcdCluster.start(etcdBinary);
    tsraft = await KvProcessCluster.start({ size: 3, fsync: true, tmpPrefix: 'tsraft-bench-vs-etcd-', nodeArgs: ['--quiet'] });
    const etcdCluster = etcd;
    const tsraftCluster = tsraft;
    const pids: Record<SystemName, number[]> = { etcd: etcdCluster.pids, tsraft: tsraftCluster.nodes.flatMap((n) => (n.pid === undefined ? [] : [n.pid])) };
    console.log(`etcd members: ${etcdCluster.members.map((m) => `${m.name} ${m.clientUrl} (pid ${m.pid ?? '?'})`).join(', ')}`);
    console.log(`tsraft nodes: ${tsraftCluster.nodes.map((n) => `${n.id} ${n.url} (pid ${n.pid ?? '?'})`).join(', ')}`);

    const value = Buffer.alloc(valueBytes, 'x');
    const valueBase64 = value.toString('base64');
    const keyNames = Array.from({ length: keys }, (_, i) => `k${i}`);
    const json = (o: object): Buffer => Buffer.from(JSON.stringify(o));
    const jsonHeader = 'Content-Type: application/json\r\n';
    const requests: Record<SystemName, Record<Kind, Buffer[]>> = {
      etcd: {
        writes: keyNames.map((k) => rawRequest(HOST, 'POST', '/v3/kv/put', jsonHeader, json({ key: Buffer.from(k).toString('base64'), value: valueBase64 }))),
        reads: keyNames.map((k) => rawRequest(HOST, 'POST', '/v3/kv/range', jsonHeader, json({ key: Buffer.from(k).toString('base64') }))),
      },
      tsraft: {
        writes: keyNames.map((k) => rawRequest(HOST, 'PUT', `/v1/kv/${k}`, '', value)),
        reads: keyNames.map((k) => rawRequest(HOST, 'GET', `/v1/kv/${k}`, '', undefined)),
      },
    };
    const leaderOf = async (system: SystemName): Promise<{ port: number; label: string }> => {
      if (system === 'etcd') {
        const leader = await etcdCluster.waitForLeader(20_000);
        return { port: Number(new URL(leader.clientUrl).port), label: `leader ${leader.name}` };
      }
      const leader = await tsraftCluster.waitForLeader(20_000);
      return { port: Number(new URL(leader.url).port), label: `leader node ${leader.id}` };
    };

    // Every key exists in both before the first run (the reads find them; both stores hold the same data).
    for (const system of ['etcd', 'tsraft'] as const) {
      const started = performance.now();
      const { port } = await leaderOf(system);
      await sendEach(port, requests[system].writes, 64, Math.max(timeoutMs, 10_000));
      console.log(`${system}: wrote the ${keys} keys in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }

    let done = 0;
    const width = String(runCount).length;
    for (const kind of kinds) {
      for (const concurrency of concurrencies) {
        for (let round = 0; round < rounds; round++) {
          for (const system of roundOrder(round)) {
            const leader = await leaderOf(system);
            const allPids = [...pids.etcd, ...pids.tsraft];
            const outcome = await runLoad(
              { port: leader.port, requests: requests[system][kind] },
              concurrency,
              warmupSeconds * 1000,
              seconds * 1000,
              timeoutMs,
              () => takeCpuSnapshot(allPids),
              (before, after) => cpuBetween(before, after, pids, ticksPerSecond),
            );
            const windowSeconds = outcome.cpu.wallUs / 1e6;
            const run: RunResult = {
              system,
              kind,
              concurrency,
              round,
              ops: outcome.ops,
              errors: outcome.errors,
              opsPerSecond: outcome.ops / windowSeconds,
              p50Ms: percentile(outcome.latencies, 0.5),
              p99Ms: percentile(outcome.latencies, 0.99),
              cpuUsPerOp: outcome.ops > 0 ? outcome.cpu.bySystem[system] / outcome.ops : NaN,
              otherCores: outcome.cpu.otherUs / outcome.cpu.wallUs,
              generatorCores: outcome.cpu.selfUs / outcome.cpu.wallUs,
              firstError: outcome.firstError,
            };
            results.push(run);
            done++;
            const marks = [isDisturbed(run) ? 'DISTURBED' : '', errorShare(run) > ERROR_SHARE_MARK ? 'ERRORS > 1%' : ''].filter((m) => m !== '').join(', ');
            const idle = system === 'etcd' ? 'tsraft' : 'etcd';
            console.log(
              `[${String(done).padStart(width)}/${runCount}] ${kind} c=${concurrency} round ${round + 1}/${rounds} ${system.padEnd(6)} (${leader.label}): ` +
                `${Math.round(run.opsPerSecond)} ops/s, p50 ${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms, ` +
                `${Math.round(run.cpuUsPerOp)} µs CPU/op (${system}), idle ${idle} ${Math.round((outcome.cpu.bySystem[idle] / outcome.cpu.wallUs) * 100)}%, ` +
                `generator ${Math.round(run.generatorCores * 100)}%, other ${Math.round(run.otherCores * 100)}% of a core` +
                (run.errors > 0 ? `, ${run.errors} errors (first: ${run.firstError})` : '') +
                (outcome.cpu.missing.length > 0 ? `, CPU of pid(s) ${outcome.cpu.missing.join(',')} unreadable` : '') +
                (marks !== '' ? `  [${marks}]` : ''),
            );
          }
        }
      }
    }
  } finally {
    await Promise.all([etcd?.stop(), tsraft?.stop()]);
  }

  console.log('');
  console.log(`1-min load average after the run: ${loadavg()[0]!.toFixed(2)}`);
  console.log(formatVsTable(summarize(results)));
}

if (isMainModule(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(`bench:vs-etcd: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  });
}
