/**
 * Sustained load: a 3-node cluster of `tsraft node` processes (fsync on, a small snapshot threshold
 * so that snapshots and log compaction happen every few seconds) under an open-loop write load at a
 * fixed share of its peak for minutes, with throughput, latency, memory and disk use per interval.
 *
 *   npm run bench:sustained -- [--minutes 10] [--interval-seconds 60] [--load 0.7] [--rate N]
 *                              [--calibrate-seconds 10] [--keys 100000] [--value-bytes 100]
 *                              [--max-raft-state 4m] [--timeout-ms 5000] [--attempts 3] [--connections 512]
 *
 * 1. Peak: unless `--rate N` is given, a closed-loop calibration (64 workers, one keep-alive
 *    connection each, PUTs of `--value-bytes` values, 1 s of warm-up not counted, then
 *    `--calibrate-seconds`) measures the writes/s the cluster completes; the target is `--load`
 *    times that (`--rate` is the target itself).
 * 2. Load: an OPEN-loop writer: write i is due at start + i/target, whether or not earlier writes
 *    have been answered (coordinated omission avoided). A due write takes an idle keep-alive
 *    connection to the leader (bench/raw-http.ts's RawConnection), a new one if none is idle (up to
 *    `--connections`; one idle for 3 s is closed, before the nodes' 5 s keep-alive timeout closes it
 *    under a write), else waits in a queue here. Its latency is measured from its SCHEDULED time,
 *    so time spent queued (here or in the cluster) counts. Keys are written in order, k0, k1, ...,
 *    cycling over `--keys` (the calibration starts the cycle), so the store stops growing once the
 *    first cycle is through (the run says when). Writes are session-less PUTs (as etcd's put).
 *    Each attempt has a per-request timeout (`--timeout-ms`, its connection is then closed); a
 *    write whose attempt times out, is answered with anything but 200 (a 307 after a leader change,
 *    a 503) or loses its connection is retried (after finding the leader again, up to `--attempts`
 *    attempts; the latency of a retried write still runs from its first scheduled time).
 * 3. Every `--interval-seconds`, one line: writes completed per second in the interval, p50/p99/max
 *    latency, attempts that timed out or failed, and per node: RSS (VmRSS from /proc/<pid>/status),
 *    its data directory's size (every file under it: WAL and snapshots), snapshots taken
 *    (tsraft_snapshots_taken_total from /metrics) and CPU (% of one core, from /proc/<pid>/stat);
 *    the leader's Raft log length (lastIndex − snapshotIndex from /v1/status) and the machine's
 *    other load (busy time not spent in the nodes or this process).
 * 4. The verdict: throughput kept (≥ 95% of the target in every interval after the first), RSS
 *    growth per node from the 2nd interval to the last, disk use (the largest of any interval
 *    against the last), p99 per interval. Exit 1 only when a write failed for good with an error
 *    (every attempt failed, the last with an answer or a lost connection); writes whose attempts
 *    all timed out are reported, not failed on: timings are printed, never asserted.
 *
 * SIGINT/SIGTERM stops the nodes and removes their temporary directories.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatTable, parseBytes, sleep } from '../src/cli/common.js';
import { abortAllClusters, KvProcessCluster, type KvNodeProcess } from '../src/testing/process-cluster.js';
import { isMainModule, percentile, RawConnection, rawRequest } from './raw-http.js';
import { clockTicksPerSecond, cpuBetween, takeCpuSnapshot, type CpuSnapshot } from './vs-etcd.js';

const HOST = '127.0.0.1';
const MIB = 1024 * 1024;
/** An interval after the first keeps the throughput when it completes at least this share of the target. */
export const THROUGHPUT_KEPT_SHARE = 0.95;
const CALIBRATION_CONCURRENCY = 64;
/**
 * An idle connection is closed here once idle this long: the nodes close keep-alive connections idle
 * for 5 s (DEFAULT_HTTP_KEEP_ALIVE_TIMEOUT_MS), and a write sent on one they are closing would fail
 * with "connection closed" for a reason of the load generator's own.
 */
const IDLE_REUSE_MAX_MS = 3000;

// ---- /proc, /metrics and the data directory

/** VmRSS in bytes from the text of /proc/<pid>/status; undefined when absent (a zombie). */
export function parseVmRss(statusText: string): number | undefined {
  const m = /^VmRSS:\s*(\d+)\s*kB/m.exec(statusText);
  return m === null ? undefined : Number(m[1]) * 1024;
}

/** The value of an unlabelled metric in Prometheus text; undefined when absent. */
export function metricValue(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) {
      const value = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (Number.isFinite(value)) return value;
    }
  }
  return undefined;
}

/** Snapshot files of FileStorage (`snap-<index>.snap`, and `.snap.tmp` while one is written). */
const SNAPSHOT_FILE = /\.snap(\.tmp)?$/;

/**
 * The sum of the sizes of every file under `dir`, and of the snapshot files among them (the rest is
 * the WAL and the small identity files). Files that vanish while walking are skipped.
 */
export function directoryUsage(dir: string): { bytes: number; snapshotBytes: number } {
  const usage = { bytes: 0, snapshotBytes: 0 };
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return usage;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = directoryUsage(path);
      usage.bytes += inner.bytes;
      usage.snapshotBytes += inner.snapshotBytes;
      continue;
    }
    try {
      const size = statSync(path).size;
      usage.bytes += size;
      if (SNAPSHOT_FILE.test(entry.name)) usage.snapshotBytes += size;
    } catch {
      // Removed meanwhile (a compacted WAL segment, a replaced snapshot).
    }
  }
  return usage;
}

function rssBytes(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    return parseVmRss(readFileSync(`/proc/${pid}/status`, 'latin1'));
  } catch {
    return undefined;
  }
}

async function fetchText(url: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) {
      await response.body?.cancel();
      return undefined;
    }
    return await response.text();
  } catch {
    return undefined;
  }
}

// ---- interval statistics and the verdict (pure: tested by test/bench/sustained.test.ts)

/** What one node looked like at the end of an interval (undefined: could not be read). */
export interface NodeSample {
  readonly rssBytes: number | undefined;
  readonly diskBytes: number | undefined;
  /** The part of diskBytes in snapshot files. */
  readonly snapshotBytes?: number | undefined;
  readonly snapshots: number | undefined;
  /** CPU over the interval, in cores. */
  readonly cpuCores: number | undefined;
}

/** One interval of the load. */
export interface IntervalSample {
  /** 1-based. */
  readonly index: number;
  readonly startSeconds: number;
  readonly seconds: number;
  /** Writes that fell due in the interval. */
  readonly scheduled: number;
  /** Writes acknowledged (200) in the interval. */
  readonly completed: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Attempts that timed out / failed otherwise in the interval (each is retried while attempts remain). */
  readonly timeouts: number;
  readonly errors: number;
  /** What the failed attempts were (e.g. "HTTP 503", "connection closed") and how many of each. */
  readonly errorKinds?: ReadonlyMap<string, number>;
  readonly nodes: readonly NodeSample[];
  /** The leader's Raft log length after its snapshot (lastIndex − snapshotIndex), if it answered. */
  readonly leaderLogEntries: number | undefined;
  /** The machine's busy time outside the nodes and this process, in cores. */
  readonly otherCores: number | undefined;
}

/** Completions per second of an interval. */
export function throughputOf(sample: IntervalSample): number {
  return sample.seconds > 0 ? sample.completed / sample.seconds : 0;
}

/** The latency figures of one interval from its (unsorted) latencies. */
export function latencyStats(latencies: readonly number[]): { p50Ms: number; p99Ms: number; maxMs: number } {
  const sorted = Float64Array.from(latencies).sort();
  return { p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted.length === 0 ? NaN : sorted[sorted.length - 1]! };
}

export interface NodeGrowth {
  readonly node: number;
  /** RSS at the end of the 2nd interval and of the last (bytes). */
  readonly from: number | undefined;
  readonly to: number | undefined;
  readonly deltaBytes: number | undefined;
  /** deltaBytes / from × 100. */
  readonly percent: number | undefined;
}

export interface NodeDisk {
  readonly node: number;
  readonly maxBytes: number | undefined;
  /** 1-based interval of the maximum. */
  readonly maxInterval: number | undefined;
  readonly lastBytes: number | undefined;
  /** More than 1% larger at the end of every interval than the one before (at least 3 intervals): a sign it is not bounded. */
  readonly alwaysGrowing: boolean;
}

export interface Verdict {
  readonly targetRate: number;
  /** Intervals after the first below THROUGHPUT_KEPT_SHARE of the target. */
  readonly slowIntervals: readonly { index: number; writesPerSecond: number }[];
  readonly throughputKept: boolean;
  /** Undefined with fewer than 2 intervals. */
  readonly rssGrowth: readonly NodeGrowth[] | undefined;
  readonly disk: readonly NodeDisk[];
  readonly p99Ms: readonly number[];
  readonly timeouts: number;
  readonly errors: number;
}

export function verdict(samples: readonly IntervalSample[], targetRate: number): Verdict {
  const slowIntervals = samples
    .slice(1)
    .map((s) => ({ index: s.index, writesPerSecond: throughputOf(s) }))
    .filter((s) => s.writesPerSecond < THROUGHPUT_KEPT_SHARE * targetRate);
  const nodeCount = Math.max(0, ...samples.map((s) => s.nodes.length));
  const nodes = Array.from({ length: nodeCount }, (_, i) => i);
  let rssGrowth: NodeGrowth[] | undefined;
  if (samples.length >= 2) {
    const second = samples[1]!;
    const last = samples[samples.length - 1]!;
    rssGrowth = nodes.map((node) => {
      const from = second.nodes[node]?.rssBytes;
      const to = last.nodes[node]?.rssBytes;
      const deltaBytes = from === undefined || to === undefined ? undefined : to - from;
      return { node, from, to, deltaBytes, percent: deltaBytes === undefined || from === undefined || from === 0 ? undefined : (deltaBytes / from) * 100 };
    });
  }
  const disk = nodes.map((node): NodeDisk => {
    let maxBytes: number | undefined;
    let maxInterval: number | undefined;
    const series: number[] = [];
    for (const s of samples) {
      const bytes = s.nodes[node]?.diskBytes;
      if (bytes === undefined) continue;
      series.push(bytes);
      if (maxBytes === undefined || bytes > maxBytes) {
        maxBytes = bytes;
        maxInterval = s.index;
      }
    }
    const alwaysGrowing = series.length >= 3 && series.every((b, i) => i === 0 || b > series[i - 1]! * 1.01);
    return { node, maxBytes, maxInterval, lastBytes: samples[samples.length - 1]?.nodes[node]?.diskBytes, alwaysGrowing };
  });
  return {
    targetRate,
    slowIntervals,
    throughputKept: slowIntervals.length === 0,
    rssGrowth,
    disk,
    p99Ms: samples.map((s) => s.p99Ms),
    timeouts: samples.reduce((a, s) => a + s.timeouts, 0),
    errors: samples.reduce((a, s) => a + s.errors, 0),
  };
}

const mib = (bytes: number | undefined, digits = 0): string => (bytes === undefined ? '?' : (bytes / MIB).toFixed(digits));
const ms = (x: number): string => (Number.isNaN(x) ? '-' : x < 10 ? x.toFixed(2) : x.toFixed(1));

/** The verdict as printed lines. */
export function formatVerdict(v: Verdict, intervalSeconds: number): string[] {
  const lines: string[] = [];
  const share = `${Math.round(THROUGHPUT_KEPT_SHARE * 100)}%`;
  if (v.p99Ms.length < 2) lines.push(`throughput: only one interval, nothing after the first to judge (target ${Math.round(v.targetRate)} writes/s)`);
  else if (v.throughputKept) lines.push(`throughput kept: yes, every interval after the first completed ≥ ${share} of the target ${Math.round(v.targetRate)} writes/s`);
  else {
    const list = v.slowIntervals.map((s) => `#${s.index} ${Math.round(s.writesPerSecond)}/s`).join(', ');
    lines.push(`throughput kept: NO, below ${share} of the target ${Math.round(v.targetRate)} writes/s in ${v.slowIntervals.length} interval(s) after the first: ${list}`);
  }
  if (v.rssGrowth === undefined) lines.push('RSS growth after warm-up: needs at least 2 intervals');
  else {
    const parts = v.rssGrowth.map((g) => {
      const sign = g.deltaBytes !== undefined && g.deltaBytes >= 0 ? '+' : '';
      const pct = g.percent === undefined ? '?' : `${g.percent >= 0 ? '+' : ''}${g.percent.toFixed(1)}%`;
      return `node ${g.node} ${mib(g.from)} → ${mib(g.to)} MiB (${sign}${mib(g.deltaBytes, 1)} MiB, ${pct})`;
    });
    lines.push(`RSS growth after warm-up (end of interval 2 → end of the last): ${parts.join('; ')}`);
  }
  const diskParts = v.disk.map((d) => `node ${d.node} max ${mib(d.maxBytes, 1)} MiB (interval ${d.maxInterval ?? '?'}), last ${mib(d.lastBytes, 1)} MiB${d.alwaysGrowing ? ' (grew > 1% in every interval)' : ''}`);
  const growing = v.disk.some((d) => d.alwaysGrowing);
  lines.push(`disk use (data directory: WAL + snapshots) ${growing ? 'NOT shown bounded' : 'bounded'}: ${diskParts.join('; ')}`);
  lines.push(`p99 per interval of ${intervalSeconds} s (ms, from the scheduled send time): ${v.p99Ms.map(ms).join(', ')}`);
  lines.push(`attempts that timed out: ${v.timeouts}; attempts that failed otherwise (answer ≠ 200, connection lost): ${v.errors} (each retried while attempts remain)`);
  return lines;
}

// ---- the load

/** One due write: its key and when it was due (performance.now() ms). */
interface Write {
  readonly key: number;
  readonly scheduledAt: number;
  attempt: number;
  lastFailure: 'timeout' | 'error' | undefined;
  lastFailureText: string | undefined;
}

interface Conn {
  readonly raw: RawConnection;
  readonly port: number;
  sentAt: number;
  idleSince: number;
  timedOut: boolean;
}

/** Counters of the interval under way. */
class Tally {
  scheduled = 0;
  completed = 0;
  timeouts = 0;
  errors = 0;
  readonly errorKinds = new Map<string, number>();
  latencies: number[] = [];

  error(kind: string): void {
    this.errors++;
    this.errorKinds.set(kind, (this.errorKinds.get(kind) ?? 0) + 1);
  }
}

/** "HTTP 503 ×12, connection closed ×3", the most frequent first. */
export function formatErrorKinds(kinds: ReadonlyMap<string, number> | undefined): string {
  if (kinds === undefined || kinds.size === 0) return '';
  return [...kinds].sort((a, b) => b[1] - a[1]).map(([kind, n]) => `${kind} ×${n}`).join(', ');
}

interface LoadOptions {
  readonly rate: number;
  readonly durationMs: number;
  readonly keys: number;
  readonly firstKey: number;
  readonly value: Buffer;
  readonly timeoutMs: number;
  readonly attempts: number;
  readonly maxConnections: number;
}

/** The open-loop writer: schedules, dispatches and retries writes, and counts into the current Tally. */
class OpenLoopWriter {
  tally = new Tally();
  private readonly idle: Conn[] = [];
  private readonly inFlight = new Set<Conn>();
  private pending: Write[] = [];
  private pendingHead = 0;
  private open = 0;
  private waitingRetries = 0;
  private leaderPort: number;
  private refreshing: Promise<void> | undefined;
  private nextKey: number;
  dueCount = 0;
  acknowledged = 0;
  /** Writes every attempt of which failed: the last with an error (failed for good) or a timeout. */
  readonly lostToErrors: Write[] = [];
  readonly lostToTimeouts: Write[] = [];
  firstError: string | undefined;
  /** Every failed attempt of the run (timeouts apart), by kind. */
  readonly allErrors = new Tally();
  maxOpen = 0;
  maxPending = 0;
  /** performance.now() when the first cycle over the keys was complete (undefined: not yet). */
  keysFullAt: number | undefined;
  private readonly watchdog: ReturnType<typeof setInterval>;

  constructor(
    private readonly cluster: KvProcessCluster,
    leaderPort: number,
    private readonly options: LoadOptions,
  ) {
    this.leaderPort = leaderPort;
    this.nextKey = options.firstKey;
    if (this.nextKey >= options.keys) this.keysFullAt = performance.now();
    this.watchdog = setInterval(() => this.checkTimeouts(), Math.max(10, Math.min(100, options.timeoutMs / 5)));
  }

  get pendingCount(): number {
    return this.pending.length - this.pendingHead;
  }
  get inFlightCount(): number {
    return this.inFlight.size;
  }
  get busy(): boolean {
    return this.inFlight.size > 0 || this.pendingCount > 0 || this.waitingRetries > 0;
  }

  /** Runs the schedule from `startAt` for durationMs; resolves when the last write has fallen due. */
  async schedule(startAt: number): Promise<void> {
    const { rate, durationMs } = this.options;
    const total = Math.floor((durationMs * rate) / 1000);
    while (this.dueCount < total) {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - startAt) * rate) / 1000) + 1);
      while (this.dueCount < due) {
        const key = this.nextKey++ % this.options.keys;
        if (this.keysFullAt === undefined && this.nextKey >= this.options.keys) this.keysFullAt = performance.now();
        const write: Write = { key, scheduledAt: startAt + (this.dueCount * 1000) / rate, attempt: 1, lastFailure: undefined, lastFailureText: undefined };
        this.dueCount++;
        this.tally.scheduled++;
        this.dispatch(write);
      }
      await sleep(Math.max(1, Math.min(5, startAt + (this.dueCount * 1000) / rate - performance.now())));
    }
  }

  /** Waits up to `ms` for every write in flight, queued or waiting for a retry. */
  async drain(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    while (this.busy && performance.now() < deadline) await sleep(20);
  }

  close(): void {
    clearInterval(this.watchdog);
    for (const c of [...this.idle, ...this.inFlight]) c.raw.close();
    this.idle.length = 0;
    this.inFlight.clear();
  }

  private request(write: Write): Buffer {
    return rawRequest(HOST, 'PUT', `/v1/kv/k${write.key}`, '', this.options.value);
  }

  private dispatch(write: Write): void {
    let conn: Conn | undefined;
    const now = performance.now();
    while ((conn = this.idle.pop()) !== undefined && (conn.port !== this.leaderPort || now - conn.idleSince > IDLE_REUSE_MAX_MS)) {
      conn.raw.close();
      this.open--;
    }
    if (conn === undefined && this.open < this.options.maxConnections) {
      conn = { raw: new RawConnection(HOST, this.leaderPort), port: this.leaderPort, sentAt: 0, idleSince: 0, timedOut: false };
      this.open++;
      this.maxOpen = Math.max(this.maxOpen, this.open);
    }
    if (conn === undefined) {
      this.pending.push(write);
      this.maxPending = Math.max(this.maxPending, this.pendingCount);
      return;
    }
    this.send(conn, write);
  }

  private send(conn: Conn, write: Write): void {
    conn.sentAt = performance.now();
    conn.timedOut = false;
    this.inFlight.add(conn);
    conn.raw.send(this.request(write)).then(
      (status) => {
        this.inFlight.delete(conn);
        if (status === 200) {
          const now = performance.now();
          this.tally.completed++;
          this.tally.latencies.push(now - write.scheduledAt);
          this.acknowledged++;
          this.release(conn);
        } else {
          this.tally.error(`HTTP ${status}`);
          this.allErrors.error(`HTTP ${status}`);
          this.firstError ??= `HTTP ${status}`;
          // The answer was read whole: the connection can serve the next write (unless the leader moved).
          this.release(conn);
          this.failed(write, 'error', `HTTP ${status}`);
        }
      },
      (error: unknown) => {
        this.inFlight.delete(conn);
        this.open--;
        conn.raw.close();
        if (conn.timedOut) {
          this.tally.timeouts++;
          this.failed(write, 'timeout', `no answer within ${this.options.timeoutMs} ms`);
        } else {
          this.tally.error((error as Error).message);
          this.allErrors.error((error as Error).message);
          this.firstError ??= (error as Error).message;
          this.failed(write, 'error', (error as Error).message);
        }
        this.takePending();
      },
    );
  }

  /** A free connection takes the oldest queued write, else goes idle. */
  private release(conn: Conn): void {
    if (conn.port !== this.leaderPort) {
      conn.raw.close();
      this.open--;
      this.takePending();
      return;
    }
    const next = this.shiftPending();
    if (next !== undefined) this.send(conn, next);
    else {
      conn.idleSince = performance.now();
      this.idle.push(conn);
    }
  }

  /** A connection closed: a queued write may open a new one. */
  private takePending(): void {
    const next = this.shiftPending();
    if (next !== undefined) this.dispatch(next);
  }

  private shiftPending(): Write | undefined {
    if (this.pendingHead >= this.pending.length) return undefined;
    const write = this.pending[this.pendingHead++]!;
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.pendingHead);
      this.pendingHead = 0;
    }
    return write;
  }

  private failed(write: Write, kind: 'timeout' | 'error', text: string): void {
    write.lastFailure = kind;
    write.lastFailureText = text;
    if (write.attempt >= this.options.attempts) {
      (kind === 'error' ? this.lostToErrors : this.lostToTimeouts).push(write);
      return;
    }
    write.attempt++;
    this.waitingRetries++;
    void this.refreshLeader()
      .then(() => sleep(50))
      .then(() => {
        this.waitingRetries--;
        this.dispatch(write);
      });
  }

  /** Asks the nodes who leads (one question at a time however many writes failed). */
  private refreshLeader(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const leader = await this.cluster.leader(1000);
        if (leader !== undefined) this.leaderPort = Number(new URL(leader.url).port);
        else await sleep(200);
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private checkTimeouts(): void {
    const now = performance.now();
    // The idle stack's bottom holds the connections idle longest: close those about to be closed by the node.
    let stale = 0;
    while (stale < this.idle.length && now - this.idle[stale]!.idleSince > IDLE_REUSE_MAX_MS) this.idle[stale++]!.raw.close();
    if (stale > 0) {
      this.idle.splice(0, stale);
      this.open -= stale;
    }
    for (const conn of this.inFlight) {
      if (!conn.timedOut && now - conn.sentAt > this.options.timeoutMs) {
        conn.timedOut = true;
        conn.raw.abort(new Error(`timed out after ${this.options.timeoutMs} ms`));
      }
    }
  }
}

/** The closed-loop calibration: CALIBRATION_CONCURRENCY workers for 1 s of warm-up and then `seconds`. */
async function calibrate(port: number, seconds: number, keys: number, value: Buffer, timeoutMs: number): Promise<{ writesPerSecond: number; p50Ms: number; p99Ms: number; errors: number; keysWritten: number }> {
  let nextKey = 0;
  let completed = 0;
  let errors = 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  const measureFrom = t0 + 1000;
  const end = measureFrom + seconds * 1000;
  const worker = async (): Promise<void> => {
    let conn: RawConnection | null = null;
    while (performance.now() < end) {
      const key = nextKey++ % keys;
      const c: RawConnection = (conn ??= new RawConnection(HOST, port));
      const started = performance.now();
      const timer = setTimeout(() => c.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      try {
        const status = await c.send(rawRequest(HOST, 'PUT', `/v1/kv/k${key}`, '', value));
        const finished = performance.now();
        if (status !== 200) throw new Error(`HTTP ${status}`);
        if (started >= measureFrom && finished <= end) {
          completed++;
          latencies.push(finished - started);
        }
      } catch {
        errors++;
        c.close();
        conn = null;
        await sleep(10);
      } finally {
        clearTimeout(timer);
      }
    }
    (conn as RawConnection | null)?.close();
  };
  await Promise.all(Array.from({ length: CALIBRATION_CONCURRENCY }, () => worker()));
  const stats = latencyStats(latencies);
  return { writesPerSecond: completed / seconds, p50Ms: stats.p50Ms, p99Ms: stats.p99Ms, errors, keysWritten: nextKey };
}

// ---- sampling the nodes

interface NodesSampler {
  sample(): Promise<{ nodes: NodeSample[]; leaderLogEntries: number | undefined; otherCores: number | undefined }>;
}

function nodesSampler(cluster: KvProcessCluster): NodesSampler {
  const ticksPerSecond = clockTicksPerSecond();
  const pidsOf = (): number[] => cluster.nodes.flatMap((n: KvNodeProcess) => (n.pid === undefined ? [] : [n.pid]));
  let before: CpuSnapshot = takeCpuSnapshot(pidsOf());
  return {
    async sample() {
      const pids = pidsOf();
      const after = takeCpuSnapshot(pids);
      const window = cpuBetween(before, after, { etcd: [], tsraft: pids }, ticksPerSecond);
      const usPerTick = 1e6 / ticksPerSecond;
      const cpuOf = (pid: number | undefined): number | undefined => {
        if (pid === undefined || window.wallUs <= 0) return undefined;
        const a = before.pidTicks.get(pid);
        const b = after.pidTicks.get(pid);
        return a === undefined || b === undefined ? undefined : ((b - a) * usPerTick) / window.wallUs;
      };
      const [metrics, statuses] = await Promise.all([Promise.all(cluster.nodes.map((n) => fetchText(`${n.url}/metrics`, 2000))), cluster.statuses(2000)]);
      const nodes = cluster.nodes.map((n, i): NodeSample => {
        const disk = directoryUsage(n.dir);
        return {
          rssBytes: rssBytes(n.pid),
          diskBytes: disk.bytes,
          snapshotBytes: disk.snapshotBytes,
          snapshots: metrics[i] === undefined ? undefined : metricValue(metrics[i]!, 'tsraft_snapshots_taken_total'),
          cpuCores: cpuOf(n.pid),
        };
      });
      const leader = statuses.filter((s) => s?.role === 'leader').sort((a, b) => (b!.term ?? 0) - (a!.term ?? 0))[0];
      const leaderLogEntries = leader?.lastIndex !== undefined && leader.snapshotIndex !== undefined ? leader.lastIndex - leader.snapshotIndex : undefined;
      const otherCores = window.wallUs > 0 ? window.otherUs / window.wallUs : undefined;
      before = after;
      return { nodes, leaderLogEntries, otherCores };
    },
  };
}

// ---- the command

const USAGE = `usage: npm run bench:sustained -- [options]
  3 \`tsraft node\` processes (fsync on), an open-loop writer at --load × the calibrated peak for --minutes
    --minutes N            minutes of load (default 10)             --interval-seconds N  one line per interval (default 60)
    --load F               share of the peak to run at (default 0.7) --rate N             writes/s target (skips the calibration)
    --calibrate-seconds N  closed-loop calibration at concurrency ${CALIBRATION_CONCURRENCY} (default 10)
    --keys N               keys written in turn (default 100000)    --value-bytes N       default 100
    --max-raft-state B     the nodes' snapshot threshold (default 4m)
    --timeout-ms N         per attempt (default 5000)               --attempts N          per write (default 3)
    --connections N        most keep-alive connections to the leader (default 512)`;

function usage(message: string): never {
  console.error(`bench:sustained: ${message}\n${USAGE}`);
  process.exit(2);
}

export interface SustainedOptions {
  readonly minutes: number;
  readonly intervalSeconds: number;
  readonly load: number;
  readonly rate: number | undefined;
  readonly calibrateSeconds: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly maxRaftState: string;
  readonly timeoutMs: number;
  readonly attempts: number;
  readonly connections: number;
}

export function parseOptions(argv: string[]): SustainedOptions {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        minutes: { type: 'string', default: '10' },
        'interval-seconds': { type: 'string', default: '60' },
        load: { type: 'string', default: '0.7' },
        rate: { type: 'string' },
        'calibrate-seconds': { type: 'string', default: '10' },
        keys: { type: 'string', default: '100000' },
        'value-bytes': { type: 'string', default: '100' },
        'max-raft-state': { type: 'string', default: '4m' },
        'timeout-ms': { type: 'string', default: '5000' },
        attempts: { type: 'string', default: '3' },
        connections: { type: 'string', default: '512' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (error) {
    usage((error as Error).message);
  }
  if (values.help) usage('help');
  const num = (name: string, text: string, min: number, max: number, integer: boolean): number => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      usage(`--${name} must be ${integer ? 'an integer' : 'a number'} in ${min}..${max}, got ${text}`);
    }
    return n;
  };
  try {
    parseBytes(values['max-raft-state'], '--max-raft-state');
  } catch (error) {
    usage((error as Error).message);
  }
  return {
    minutes: num('minutes', values.minutes, 0.1, 24 * 60, false),
    intervalSeconds: num('interval-seconds', values['interval-seconds'], 1, 3600, true),
    load: num('load', values.load, 0.01, 2, false),
    rate: values.rate === undefined ? undefined : num('rate', values.rate, 1, 1_000_000, true),
    calibrateSeconds: num('calibrate-seconds', values['calibrate-seconds'], 1, 600, true),
    keys: num('keys', values.keys, 1, 100_000_000, true),
    valueBytes: num('value-bytes', values['value-bytes'], 0, 1024 * 1024, true),
    maxRaftState: values['max-raft-state'],
    timeoutMs: num('timeout-ms', values['timeout-ms'], 10, 600_000, true),
    attempts: num('attempts', values.attempts, 1, 100, true),
    connections: num('connections', values.connections, 1, 4096, true),
  };
}

function clock(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  let writer: OpenLoopWriter | undefined;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`bench:sustained: ${signal}: stopping the nodes and removing their directories`);
      writer?.close();
      abortAllClusters();
      process.exit(130);
    });
  }
  const value = Buffer.alloc(options.valueBytes, 'x');
  const intervalMs = options.intervalSeconds * 1000;
  const durationMs = Math.round(options.minutes * 60_000);
  const intervalCount = Math.ceil(durationMs / intervalMs);
  console.log(`machine: ${cpus().length} cores, 1-min load average ${loadavg()[0]!.toFixed(2)} before the run (other work on the machine skews the numbers)`);
  console.log(
    `bench:sustained — 3 tsraft node processes on 127.0.0.1, fsync on, --max-raft-state ${options.maxRaftState}; ${options.valueBytes}-byte session-less PUTs on ${options.keys} keys in turn; ` +
      `${options.minutes} min of open-loop load in ${intervalCount} interval(s) of ${options.intervalSeconds} s; per-attempt timeout ${options.timeoutMs} ms, ${options.attempts} attempt(s) per write`,
  );
  const cluster = await KvProcessCluster.start({ size: 3, fsync: true, tmpPrefix: 'tsraft-bench-sustained-', nodeArgs: ['--quiet', '--max-raft-state', options.maxRaftState] });
  let exitCode = 0;
  try {
    const leader = await cluster.waitForLeader(20_000);
    console.log(`nodes: ${cluster.nodes.map((n) => `${n.id} ${n.url} (pid ${n.pid ?? '?'})`).join(', ')}; leader: node ${leader.id}; data under ${cluster.root}`);
    const leaderPort = Number(new URL(leader.url).port);
    let target: number;
    let firstKey = 0;
    if (options.rate !== undefined) {
      target = options.rate;
      console.log(`target: ${target} writes/s (--rate; no calibration)`);
    } else {
      console.log(`calibration: closed loop, ${CALIBRATION_CONCURRENCY} connections, 1 s warm-up + ${options.calibrateSeconds} s ...`);
      const peak = await calibrate(leaderPort, options.calibrateSeconds, options.keys, value, options.timeoutMs);
      firstKey = peak.keysWritten;
      target = Math.max(1, Math.round(peak.writesPerSecond * options.load));
      console.log(
        `calibration: peak ${Math.round(peak.writesPerSecond)} writes/s (p50 ${ms(peak.p50Ms)} ms, p99 ${ms(peak.p99Ms)} ms, ${peak.errors} errors); ` +
          `target ${Math.round(options.load * 100)}% of it: ${target} writes/s`,
      );
    }
    const currentLeader = (await cluster.leader(1000)) ?? leader;
    writer = new OpenLoopWriter(cluster, Number(new URL(currentLeader.url).port), {
      rate: target,
      durationMs,
      keys: options.keys,
      firstKey,
      value,
      timeoutMs: options.timeoutMs,
      attempts: options.attempts,
      maxConnections: options.connections,
    });
    const w = writer;
    const sampler = nodesSampler(cluster);
    const samples: IntervalSample[] = [];
    const perNode = (values: readonly (number | undefined)[], f: (x: number) => string): string => values.map((x) => (x === undefined ? '?' : f(x))).join('/');
    console.log(
      `load: open loop at ${target} writes/s for ${clock(durationMs / 1000)}; latency from each write's scheduled send time (queueing counts); ` +
        `per interval: writes/s completed, p50/p99/max ms, attempts timed out/failed, per node (0/1/2) RSS MiB, data dir MiB, snapshots taken, CPU % of a core; the leader's log entries after its snapshot; other load on the machine`,
    );
    const startAt = performance.now();
    const progressMs = Math.max(2000, Math.min(10_000, intervalMs / 3));
    let lastProgress = { at: startAt, acknowledged: 0 };
    const progress = setInterval(() => {
      const now = performance.now();
      const rate = ((w.acknowledged - lastProgress.acknowledged) * 1000) / (now - lastProgress.at);
      lastProgress = { at: now, acknowledged: w.acknowledged };
      console.log(
        `  ... ${clock((now - startAt) / 1000)}: ${Math.round(rate)} writes/s, ${w.inFlightCount} in flight, ${w.pendingCount} queued here, ${w.acknowledged} acknowledged so far` +
          (w.allErrors.errors > 0 ? `, ${w.allErrors.errors} failed attempts (${formatErrorKinds(w.allErrors.errorKinds)})` : ''),
      );
    }, progressMs);
    const intervalDone = async (index: number, start: number, seconds: number, tally: Tally): Promise<void> => {
      const nodeState = await sampler.sample();
      const stats = latencyStats(tally.latencies);
      const s: IntervalSample = {
        index,
        startSeconds: start,
        seconds,
        scheduled: tally.scheduled,
        completed: tally.completed,
        ...stats,
        timeouts: tally.timeouts,
        errors: tally.errors,
        errorKinds: tally.errorKinds,
        ...nodeState,
      };
      samples.push(s);
      console.log(
        `[${String(index).padStart(String(intervalCount).length)}/${intervalCount}] ${clock(start)}-${clock(start + seconds)}  ${Math.round(throughputOf(s))} writes/s (due ${Math.round(s.scheduled / seconds)}/s)  ` +
          `p50 ${ms(s.p50Ms)} p99 ${ms(s.p99Ms)} max ${ms(s.maxMs)} ms  timeouts ${s.timeouts} errors ${s.errors}${s.errors > 0 ? ` (${formatErrorKinds(s.errorKinds)})` : ''}  ` +
          `RSS ${perNode(s.nodes.map((n) => n.rssBytes), (b) => mib(b))} MiB  disk ${perNode(s.nodes.map((n) => n.diskBytes), (b) => mib(b, 1))} MiB ` +
          `(snapshots ${perNode(s.nodes.map((n) => n.snapshotBytes), (b) => mib(b, 1))})  ` +
          `snapshots ${perNode(s.nodes.map((n) => n.snapshots), String)}  CPU ${perNode(s.nodes.map((n) => n.cpuCores), (c) => String(Math.round(c * 100)))}%  ` +
          `leader log ${s.leaderLogEntries ?? '?'} entries  other load ${s.otherCores === undefined ? '?' : `${Math.round(s.otherCores * 100)}%`}`,
      );
    };
    // Interval boundaries on their own timers, so that a slow sample does not shift the next one.
    const boundaries: Promise<void>[] = [];
    for (let i = 1; i <= intervalCount; i++) {
      const endMs = Math.min(durationMs, i * intervalMs);
      const startMs = (i - 1) * intervalMs;
      boundaries.push(
        new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, startAt + endMs - performance.now()))).then(async () => {
          // The counts change hands at the boundary itself; the nodes are sampled in order (an earlier boundary's sample first).
          const tally = w.tally;
          w.tally = new Tally();
          if (i > 1) await boundaries[i - 2];
          await intervalDone(i, startMs / 1000, (endMs - startMs) / 1000, tally);
        }),
      );
    }
    await w.schedule(startAt);
    await Promise.all(boundaries);
    clearInterval(progress);
    // What is still in flight after the last interval: waited for (it counts towards the totals, not an interval).
    const tail = w.tally;
    const drainMs = options.timeoutMs * options.attempts + 2000;
    await w.drain(drainMs);
    const stillOpen = w.busy;
    w.close();

    console.log('');
    const rows: string[][] = [['interval', 'writes/s', 'p50 ms', 'p99 ms', 'max ms', 'timeouts', 'errors', 'RSS MiB', 'disk MiB', 'of it snapshot MiB', 'snapshots', 'leader log']];
    for (const s of samples) {
      rows.push([
        `${clock(s.startSeconds)}-${clock(s.startSeconds + s.seconds)}`,
        String(Math.round(throughputOf(s))),
        ms(s.p50Ms),
        ms(s.p99Ms),
        ms(s.maxMs),
        String(s.timeouts),
        String(s.errors),
        perNode(s.nodes.map((n) => n.rssBytes), (b) => mib(b)),
        perNode(s.nodes.map((n) => n.diskBytes), (b) => mib(b, 1)),
        perNode(s.nodes.map((n) => n.snapshotBytes), (b) => mib(b, 1)),
        perNode(s.nodes.map((n) => n.snapshots), String),
        String(s.leaderLogEntries ?? '?'),
      ]);
    }
    console.log(formatTable(rows, new Set([1, 2, 3, 4, 5, 6, 11])));
    console.log('');
    const v = verdict(samples, target);
    console.log(`verdict (target ${target} writes/s = ${options.rate !== undefined ? '--rate' : `${Math.round(options.load * 100)}% of the calibrated peak`}):`);
    for (const line of formatVerdict(v, options.intervalSeconds)) console.log(`  ${line}`);
    const firstSample = samples[0];
    const lastSample = samples[samples.length - 1];
    if (firstSample !== undefined && lastSample !== undefined) {
      const taken = lastSample.nodes.map((n) => n.snapshots ?? 0);
      console.log(
        `  snapshots taken by the end (calibration included), per node: ${taken.join('/')}` +
          (taken.every((t) => t === 0) ? ' — none: the log never reached --max-raft-state, so neither snapshots nor compaction were exercised' : ''),
      );
    }
    const fullAt = w.keysFullAt === undefined ? undefined : (w.keysFullAt - startAt) / 1000;
    if (fullAt === undefined) console.log(`  note: the first cycle over the ${options.keys} keys did not finish: the store grew during the whole run (part of any RSS and disk growth is data)`);
    else if (fullAt > 0) {
      const interval = Math.floor(fullAt / options.intervalSeconds) + 1;
      console.log(
        `  note: every one of the ${options.keys} keys had been written by ${clock(fullAt)} (interval ${interval}); before that the store itself grew` +
          (interval >= 2 ? ' — the RSS comparison from interval 2 includes that growth' : ''),
      );
    }
    console.log(
      `  writes: ${w.dueCount} due, ${w.acknowledged} acknowledged (the ${tail.completed} acknowledged after the last interval included); ` +
        `at most ${w.maxOpen} connections open, at most ${w.maxPending} writes queued here waiting for one`,
    );
    if (w.allErrors.errors > 0) console.log(`  failed attempts (timeouts apart), all retried or counted above: ${formatErrorKinds(w.allErrors.errorKinds)}`);
    if (w.lostToTimeouts.length > 0) console.log(`  ${w.lostToTimeouts.length} write(s) unacknowledged: every attempt timed out (reported, not failed on: a timing)`);
    if (stillOpen) console.log(`  some writes were still unanswered ${drainMs} ms after the last interval; they are neither acknowledged nor counted as failed`);
    if (w.lostToErrors.length > 0) {
      console.log(`  FAILED: ${w.lostToErrors.length} write(s) failed for good (every attempt failed, the last with: ${w.lostToErrors[0]!.lastFailureText}); first error of the run: ${w.firstError}`);
      exitCode = 1;
    } else console.log('  no write failed for good');
    console.log(`1-min load average after the run: ${loadavg()[0]!.toFixed(2)}`);
  } finally {
    writer?.close();
    await cluster.stop();
  }
  process.exit(exitCode);
}

if (isMainModule(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(`bench:sustained: ${(error as Error).stack ?? String(error)}`);
    abortAllClusters();
    process.exit(1);
  });
}
