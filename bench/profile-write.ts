/**
 * Where a write's CPU goes: a 3-node cluster of `tsraft node` processes (fsync on, 127.0.0.1) with
 * V8's sampling CPU profiler on every node, a closed-loop PUT load to the leader, and the profiles
 * cut to the measured window and broken down into categories, as µs of CPU per completed write for
 * each node (leader, followers) and summed over the three. docs/PERFORMANCE.md has the results.
 *
 *   npm run bench:profile -- [--concurrency 1,64] [--seconds 5] [--warmup 2] [--keys 10000]
 *                            [--value-bytes 100] [--interval-us 1000] [--keep-profiles]
 *
 * Per concurrency, a fresh cluster is started whose nodes (and only they) run with `--cpu-prof
 * --cpu-prof-dir=<tmp> --cpu-prof-interval=<--interval-us>` (KvProcessClusterOptions.execArgv);
 * every key is written once, then `concurrency` closed-loop workers (bench/raw-http.ts's
 * RawConnection: one keep-alive connection each, one request at a time) PUT `--value-bytes` values
 * on the `--keys` keys, session-less, like bench:vs-etcd's tsraft writes, for `--warmup` + `--seconds`
 * seconds. Writes completed while the measured window is open are counted, and each node's
 * tsraft_transport_messages_sent_total (/metrics) is read as it opens and closes. Then the cluster
 * is stopped (SIGTERM: a node exits normally and Node writes its .cpuprofile on exit) and the
 * profiles are read. Before each profiled run, a control run on a fresh cluster without the
 * profiler (skip with --no-control) gives the CPU per write from /proc alone, to show what the
 * profiler adds.
 *
 * The window cut. A .cpuprofile's startTime and its samples' times (startTime + the running sum of
 * timeDeltas) are microseconds of V8's monotonic clock, which on Linux is CLOCK_MONOTONIC, the
 * same system-wide clock as process.hrtime() in this process (checked: a script printing
 * process.hrtime.bigint() / 1000 at its start lands just after its own profile's startTime). So
 * this script records process.hrtime() when the window opens and closes, and only samples inside
 * it count; analyseProfile() refuses a window outside the profile's [startTime, endTime].
 *
 * Samples to µs. V8's profiler thread signals the main thread every interval and the handler
 * records the stack when the thread next runs; a descheduled thread (2 cores, 4 busy processes)
 * takes one late sample for the whole gap. Weighting samples by the time to the next one would so
 * charge run-queue waits to whatever was on the stack (measured: about twice the thread's CPU,
 * most of it on the socket-write natives, where the woken receiver preempts the sender). So every
 * sample counts the same, "(idle)" samples (the event loop in epoll_wait) are left out, and each
 * node's main-thread CPU from /proc over the same window is shared out over its categories in
 * proportion to their sample counts. The table also prints busy samples × interval as a check.
 *
 * Attribution. A sample's time goes to the category of its leaf frame, or, when that frame has
 * none (node:net, stream internals, timers, microtask plumbing, node_modules...), of the nearest
 * ancestor that has one; nothing on the stack → "other (node internals)". Socket-write natives
 * (writeBuffer, writev, write*String: the time the kernel takes to send on loopback) go to
 * "HTTP socket send" or "transport socket send" by the same walk up; under WAL/storage the same
 * natives are file writes. The categories are CATEGORY_DESCRIPTIONS below.
 *
 * /proc: /proc/<pid>/stat (utime + stime, the whole process: all threads) and
 * /proc/<pid>/task/<pid>/stat (the main thread alone, the one V8 samples) are read when the window
 * opens and closes (bench/vs-etcd.ts's parser and snapshot). Process − main thread is the work of
 * the other threads (libuv's pool running the WAL's write + fdatasync, V8's GC helpers and compilers), which
 * the profile cannot see. The profiler itself costs some CPU: compare "/proc process" with an
 * unprofiled bench:vs-etcd run.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatTable } from '../src/cli/common.js';
import { abortAllClusters, KvProcessCluster } from '../src/testing/process-cluster.js';
import { isMainModule, percentile, RawConnection, rawRequest } from './raw-http.js';
import { clockTicksPerSecond, cpuBetween, parseProcPidStat, takeCpuSnapshot, type CpuSnapshot, type CpuWindow } from './vs-etcd.js';

// ---- the .cpuprofile format (what V8's Profiler.stop returns, as Node writes it)

export interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
  readonly scriptId?: string | number;
}
export interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  /** µs, V8's monotonic clock. */
  readonly startTime: number;
  readonly endTime: number;
  /** Leaf node id of each sample. */
  readonly samples: readonly number[];
  /** µs from the previous sample (the first: from startTime). */
  readonly timeDeltas: readonly number[];
}

// ---- categories

export const CATEGORIES = [
  'HTTP',
  'HTTP socket send',
  'KV commands/state machine',
  'Raft core',
  'driver/runtime',
  'codec',
  'transport',
  'transport socket send',
  'WAL/storage',
  'GC',
  'native, no JS on stack',
  'other (node internals)',
  'other (tsraft)',
] as const;
export type Category = (typeof CATEGORIES)[number];

export const CATEGORY_DESCRIPTIONS: Readonly<Record<Category, string>> = {
  HTTP: 'node:_http_* (llhttp parser, server, outgoing) and src/kv/http-*',
  'HTTP socket send': 'writeBuffer/writev/write*String natives under HTTP: the kernel sending the response on loopback',
  'KV commands/state machine': 'src/kv/* other than http-* (commands, state-machine, replica, watch-hub, log-entry-view, dashboard-feed, metrics, server, leases)',
  'Raft core': 'src/core/*',
  'driver/runtime': 'src/driver/*, src/runtime/*',
  codec: 'src/codec/*',
  transport: 'src/transport/*',
  'transport socket send': 'writeBuffer/writev/write*String natives under transport: the kernel sending Raft messages on loopback',
  'WAL/storage': 'src/storage/*, node:fs and node:internal/fs/* (the main thread side; the write and fdatasync run in libuv threads)',
  GC: '(garbage collector): V8 main-thread GC pauses',
  'native, no JS on stack': '(program): libuv (epoll, socket reads), native callbacks before JS is entered',
  'other (node internals)': 'node: frames with no categorised frame above (stream/net read path, microtask and timer plumbing)',
  'other (tsraft)': 'other tsraft code (src/cli, src/security, ...) with no categorised frame above',
};

const SOCKET_SEND_NATIVES = new Set(['writeBuffer', 'writev', 'writeUtf8String', 'writeLatin1String', 'writeAsciiString', 'writeUcs2String']);
const TSRAFT_SOURCE = /\/src\/([\w-]+)\/([\w.-]+?)\.(?:js|ts)$/;

/** The category of one frame by itself, or undefined when it takes its caller's. */
export function frameCategory(frame: CallFrame): Category | undefined {
  const { url, functionName } = frame;
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(program)') return 'native, no JS on stack';
    return undefined;
  }
  if (url.startsWith('node:')) {
    if (url.startsWith('node:_http_')) return 'HTTP';
    if (url === 'node:fs' || url === 'node:fs/promises' || url.startsWith('node:internal/fs/')) return 'WAL/storage';
    return undefined;
  }
  const m = TSRAFT_SOURCE.exec(url);
  if (m === null || url.includes('/node_modules/')) return undefined;
  const [, dir, file] = m as unknown as [string, string, string];
  switch (dir) {
    case 'kv':
      return file.startsWith('http-') ? 'HTTP' : 'KV commands/state machine';
    case 'core':
      return 'Raft core';
    case 'driver':
    case 'runtime':
      return 'driver/runtime';
    case 'codec':
      return 'codec';
    case 'transport':
      return 'transport';
    case 'storage':
      return 'WAL/storage';
    default:
      return undefined;
  }
}

/** What one profile shows inside a window, in samples. */
export interface ProfileBreakdown {
  /** Non-idle samples per category. */
  readonly byCategory: ReadonlyMap<Category, number>;
  /** Samples per leaf function and category ("name url:line [category]", self time). */
  readonly byFunction: ReadonlyMap<string, { samples: number; category: Category }>;
  readonly idleSamples: number;
  /** Sum of byCategory. */
  readonly busySamples: number;
  readonly windowUs: number;
}

function shortUrl(url: string): string {
  const m = TSRAFT_SOURCE.exec(url);
  if (m !== null && !url.includes('/node_modules/')) return `${m[1]}/${m[2]}`;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + 14);
  return url;
}

/**
 * The breakdown of `profile` over the samples taken in [fromUs, toUs) (µs of the profile's clock:
 * a sample's time is startTime plus the running sum of timeDeltas). Throws when the window is not
 * inside the profile.
 */
export function analyseProfile(profile: CpuProfile, fromUs: number, toUs: number): ProfileBreakdown {
  if (!(fromUs < toUs)) throw new Error(`empty window [${fromUs}, ${toUs})`);
  if (fromUs < profile.startTime || toUs > profile.endTime) {
    throw new Error(`window [${fromUs}, ${toUs}) µs is not inside the profile [${profile.startTime}, ${profile.endTime}] µs: not the same clock?`);
  }
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  // The category a node's self time takes: its own, else its nearest categorised ancestor's (null: none).
  const owner = new Map<number, Category | null>();
  const ownerOf = (id: number | undefined): Category | null => {
    const chain: number[] = [];
    let at = id;
    let found: Category | null = null;
    while (at !== undefined) {
      const cached = owner.get(at);
      if (cached !== undefined) {
        found = cached;
        break;
      }
      chain.push(at);
      const node = byId.get(at);
      if (node === undefined) throw new Error(`unknown profile node ${at}`);
      const own = frameCategory(node.callFrame);
      if (own !== undefined) {
        found = own;
        break;
      }
      at = parent.get(at);
    }
    for (const c of chain) owner.set(c, found);
    return found;
  };
  const leafCategory = new Map<number, Category | 'idle'>();
  const categoryOf = (id: number): Category | 'idle' => {
    const known = leafCategory.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id);
    if (node === undefined) throw new Error(`sample of unknown profile node ${id}`);
    const { functionName, url } = node.callFrame;
    let category: Category | 'idle';
    if (url === '' && functionName === '(idle)') category = 'idle';
    else if (url === '' && SOCKET_SEND_NATIVES.has(functionName)) {
      const above = ownerOf(parent.get(id));
      category = above === 'HTTP' ? 'HTTP socket send' : above === 'transport' ? 'transport socket send' : (above ?? 'other (node internals)');
    } else {
      const own = ownerOf(id);
      category = own ?? (/^(?:node:|$)/.test(url) ? 'other (node internals)' : 'other (tsraft)');
    }
    leafCategory.set(id, category);
    return category;
  };

  const byCategory = new Map<Category, number>();
  const byFunction = new Map<string, { samples: number; category: Category }>();
  let idleSamples = 0;
  let busySamples = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    if (t < fromUs) continue;
    if (t >= toUs) break;
    const id = profile.samples[i]!;
    const category = categoryOf(id);
    if (category === 'idle') {
      idleSamples++;
      continue;
    }
    busySamples++;
    byCategory.set(category, (byCategory.get(category) ?? 0) + 1);
    const frame = byId.get(id)!.callFrame;
    // By category too: one native (writeBuffer) is a socket send under HTTP or transport and a file write under storage.
    const key = `${frame.functionName || '(anonymous)'} ${shortUrl(frame.url)}${frame.url === '' ? '' : `:${frame.lineNumber + 1}`} [${category}]`;
    const entry = byFunction.get(key);
    if (entry === undefined) byFunction.set(key, { samples: 1, category });
    else entry.samples++;
  }
  return { byCategory, byFunction, idleSamples, busySamples, windowUs: toUs - fromUs };
}

/** The pid in a Node --cpu-prof file name (CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile). */
export function pidOfProfileFile(name: string): number | undefined {
  const m = /^CPU\.\d+\.\d+\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(name);
  return m === null ? undefined : Number(m[1]);
}

// ---- the run

const HOST = '127.0.0.1';
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface NodeCpu {
  /** utime + stime ticks: the whole process (every thread, dead ones too), its main thread, V8's profiler thread. */
  readonly processTicks: number | undefined;
  readonly mainTicks: number | undefined;
  readonly profilerTicks: number;
}

/** The thread name (comm) in a /proc/<pid>/task/<tid>/stat line. */
export function threadName(stat: string): string {
  return stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
}

function readTicks(pid: number): NodeCpu {
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(path, 'latin1');
    } catch {
      return undefined;
    }
  };
  const ticks = (text: string | undefined): number | undefined => (text === undefined ? undefined : parseProcPidStat(text));
  let profilerTicks = 0;
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    // gone
  }
  for (const tid of tids) {
    const text = read(`/proc/${pid}/task/${tid}/stat`);
    if (text !== undefined && threadName(text).startsWith('v8:ProfEvntProc')) profilerTicks += parseProcPidStat(text);
  }
  return { processTicks: ticks(read(`/proc/${pid}/stat`)), mainTicks: ticks(read(`/proc/${pid}/task/${pid}/stat`)), profilerTicks };
}

interface Window {
  readonly fromUs: number;
  readonly toUs: number;
  readonly ops: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  readonly latencies: Float64Array;
  readonly before: { snapshot: CpuSnapshot; nodes: Map<number, NodeCpu> };
  readonly after: { snapshot: CpuSnapshot; nodes: Map<number, NodeCpu> };
  /** Raft messages sent per node (tsraft_transport_messages_sent_total) when the window opened and closed. */
  readonly messagesBefore: ReadonlyMap<number, number>;
  readonly messagesAfter: ReadonlyMap<number, number>;
}

/** Raft messages each node has sent, from its /metrics (NaN when it does not answer). */
async function messagesSent(urls: ReadonlyMap<number, string>): Promise<Map<number, number>> {
  const entries = await Promise.all(
    [...urls].map(async ([id, url]): Promise<[number, number]> => {
      try {
        const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
        const m = /^tsraft_transport_messages_sent_total(?:\{[^}]*\})? (\d+)/m.exec(text);
        return [id, m === null ? NaN : Number(m[1])];
      } catch {
        return [id, NaN];
      }
    }),
  );
  return new Map(entries);
}

async function closedLoop(
  port: number,
  requests: readonly Buffer[],
  concurrency: number,
  warmupMs: number,
  measureMs: number,
  pids: readonly number[],
  urls: ReadonlyMap<number, string>,
): Promise<Window> {
  let messagesBefore: Promise<Map<number, number>> | undefined;
  let messagesAfter: Promise<Map<number, number>> | undefined;
  const snap = (): { snapshot: CpuSnapshot; nodes: Map<number, NodeCpu> } => ({ snapshot: takeCpuSnapshot(pids), nodes: new Map(pids.map((p) => [p, readTicks(p)])) });
  let measuring = false;
  let stopped = false;
  let ops = 0;
  let errors = 0;
  let firstError: string | undefined;
  const latencies: number[] = [];
  let fromUs = 0;
  let toUs = 0;
  let before: ReturnType<typeof snap> | undefined;
  let after: ReturnType<typeof snap> | undefined;
  const opens = setTimeout(() => {
    before = snap();
    fromUs = nowUs();
    measuring = true;
    messagesBefore = messagesSent(urls);
  }, warmupMs);
  const closes = setTimeout(() => {
    toUs = nowUs();
    after = snap();
    measuring = false;
    stopped = true;
    messagesAfter = messagesSent(urls);
  }, warmupMs + measureMs);
  const work = async (index: number): Promise<void> => {
    let conn: RawConnection | null = null;
    for (let i = 0; !stopped; i++) {
      const request = requests[(index * 7919 + i) % requests.length]!;
      conn ??= new RawConnection(HOST, port);
      const started = performance.now();
      try {
        const status = await conn.send(request);
        if (status !== 200) throw new Error(`HTTP ${status}`);
        if (measuring) {
          ops++;
          latencies.push(performance.now() - started);
        }
      } catch (error) {
        if (measuring) {
          errors++;
          firstError ??= (error as Error).message;
        }
        conn.close();
        conn = null;
        await sleep(10);
      }
    }
    (conn as RawConnection | null)?.close();
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, (_, i) => work(i)));
  } finally {
    clearTimeout(opens);
    clearTimeout(closes);
  }
  return {
    fromUs,
    toUs,
    ops,
    errors,
    firstError,
    latencies: Float64Array.from(latencies).sort(),
    before: before!,
    after: after!,
    messagesBefore: await messagesBefore!,
    messagesAfter: await messagesAfter!,
  };
}

/** Writes every request once, 64 at a time. */
async function writeAll(port: number, requests: readonly Buffer[]): Promise<void> {
  let next = 0;
  const work = async (): Promise<void> => {
    const conn = new RawConnection(HOST, port);
    try {
      while (next < requests.length) {
        const status = await conn.send(requests[next++]!);
        if (status !== 200) throw new Error(`writing the keys: HTTP ${status}`);
      }
    } finally {
      conn.close();
    }
  };
  await Promise.all(Array.from({ length: 64 }, () => work()));
}

interface Options {
  readonly concurrencies: readonly number[];
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly keys: number;
  readonly valueBytes: number;
  readonly intervalUs: number;
  readonly keepProfiles: boolean;
  readonly control: boolean;
}

const USAGE = `usage: npm run bench:profile -- [options]
  3 \`tsraft node\` processes (fsync on) with V8's CPU profiler, closed-loop PUTs to the leader,
  CPU per write by category for each node
    --concurrency LIST   default 1,64 (a fresh cluster and profile set for each)
    --seconds N          measured seconds (default 5)         --warmup N        seconds before (default 2)
    --keys N             default 10000                        --value-bytes N   default 100
    --interval-us N      profiler sampling interval (default 1000)
    --keep-profiles      keep the .cpuprofile files (their directory is printed)
    --no-control         skip the control run without the profiler (by default one before each profiled run)`;

function usage(message: string): never {
  console.error(`bench:profile: ${message}\n${USAGE}`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        concurrency: { type: 'string', default: '1,64' },
        seconds: { type: 'string', default: '5' },
        warmup: { type: 'string', default: '2' },
        keys: { type: 'string', default: '10000' },
        'value-bytes': { type: 'string', default: '100' },
        'interval-us': { type: 'string', default: '1000' },
        'keep-profiles': { type: 'boolean', default: false },
        'no-control': { type: 'boolean', default: false },
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
  return {
    concurrencies: values.concurrency.split(',').map((c) => int('concurrency', c.trim(), 1, 4096)),
    seconds: int('seconds', values.seconds, 1, 600),
    warmupSeconds: int('warmup', values.warmup, 0, 60),
    keys: int('keys', values.keys, 1, 10_000_000),
    valueBytes: int('value-bytes', values['value-bytes'], 0, 1024 * 1024),
    intervalUs: int('interval-us', values['interval-us'], 50, 100_000),
    keepProfiles: values['keep-profiles'],
    control: !values['no-control'],
  };
}

const fmt = (us: number): string => (Number.isFinite(us) ? (us >= 100 ? us.toFixed(0) : us.toFixed(1)) : '?');

interface ClusterRun {
  readonly window: Window;
  readonly leaderId: number;
  readonly pidToNode: ReadonlyMap<number, number>;
}

/** A fresh cluster (nodes with `execArgv`), the keys written, the closed loop, the cluster stopped. */
async function runOnCluster(options: Options, concurrency: number, execArgv: readonly string[]): Promise<ClusterRun> {
  const cluster = await KvProcessCluster.start({ size: 3, fsync: true, tmpPrefix: 'tsraft-bench-profile-', nodeArgs: ['--quiet'], execArgv });
  const pidToNode = new Map<number, number>();
  try {
    const leader = await cluster.waitForLeader(20_000);
    for (const node of cluster.nodes) if (node.pid !== undefined) pidToNode.set(node.pid, node.id);
    const port = Number(new URL(leader.url).port);
    const value = Buffer.alloc(options.valueBytes, 'x');
    const requests = Array.from({ length: options.keys }, (_, k) => rawRequest(HOST, 'PUT', `/v1/kv/k${k}`, '', value));
    await writeAll(port, requests);
    const urls = new Map(cluster.nodes.map((n) => [n.id, n.url]));
    const window = await closedLoop(port, requests, concurrency, options.warmupSeconds * 1000, options.seconds * 1000, [...pidToNode.keys()], urls);
    const after = await cluster.leader();
    if (after?.id !== leader.id) console.log(`  !!! the leader changed during the run (node ${leader.id} → ${after?.id ?? 'none'}): the labels below may be wrong`);
    return { window, leaderId: leader.id, pidToNode };
  } finally {
    await cluster.stop();
  }
}

function describeLoad(label: string, window: Window, cpu: CpuWindow): string {
  const wallS = (window.toUs - window.fromUs) / 1e6;
  return (
    `${label}: ${window.ops} writes in ${wallS.toFixed(2)} s = ${Math.round(window.ops / wallS)} writes/s, p50 ${percentile(window.latencies, 0.5).toFixed(2)} ms, ` +
    `p99 ${percentile(window.latencies, 0.99).toFixed(2)} ms${window.errors > 0 ? `, ${window.errors} errors (first: ${window.firstError})` : ''}; ` +
    `load generator ${Math.round((cpu.selfUs / cpu.wallUs) * 100)}% of a core, other load on the machine ${Math.round((cpu.otherUs / cpu.wallUs) * 100)}% of a core`
  );
}

async function profileOnce(options: Options, concurrency: number, ticksPerSecond: number): Promise<void> {
  const usPerTick = 1e6 / ticksPerSecond;
  if (options.control) {
    // The same run without the profiler: what the profiler adds.
    const { window, leaderId, pidToNode } = await runOnCluster(options, concurrency, []);
    const cpu = cpuBetween(window.before.snapshot, window.after.snapshot, { etcd: [], tsraft: [...pidToNode.keys()] }, ticksPerSecond);
    const perNode = [...pidToNode].map(([pid, id]) => {
      const a = window.before.nodes.get(pid)?.processTicks;
      const b = window.after.nodes.get(pid)?.processTicks;
      return { id, us: a === undefined || b === undefined ? NaN : ((b - a) * usPerTick) / window.ops };
    });
    perNode.sort((x, y) => (x.id === leaderId ? -1 : y.id === leaderId ? 1 : x.id - y.id));
    console.log('');
    console.log(describeLoad(`c=${concurrency}, no profiler (control)`, window, cpu));
    console.log(
      `  CPU per write, whole processes (/proc): ${perNode.map((n, i) => `${i === 0 ? 'leader' : 'follower'} ${fmt(n.us)}`).join(', ')}; ` +
        `sum ${fmt(perNode.reduce((t, n) => t + n.us, 0))} µs`,
    );
  }
  const profDir = mkdtempSync(join(tmpdir(), `tsraft-profile-c${concurrency}-`));
  const { window, leaderId, pidToNode } = await runOnCluster(options, concurrency, ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-interval=${options.intervalUs}`]);

  // The profiles, one per node (written by each node as it exits).
  const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  const profiles = new Map<number, CpuProfile>();
  for (const file of files) {
    const pid = pidOfProfileFile(file);
    const node = pid === undefined ? undefined : pidToNode.get(pid);
    if (node !== undefined) profiles.set(node, JSON.parse(readFileSync(join(profDir, file), 'utf8')) as CpuProfile);
  }
  const missing = [...pidToNode.values()].filter((id) => !profiles.has(id));
  if (missing.length > 0) throw new Error(`no .cpuprofile from node(s) ${missing.join(', ')} in ${profDir} (killed before exiting?)`);
  if (options.keepProfiles) console.log(`  profiles kept in ${profDir}: ${files.join(', ')}; the window: ${window.fromUs}..${window.toUs} µs (profile clock)`);
  else rmSync(profDir, { recursive: true, force: true });

  const ops = window.ops;
  const cpu = cpuBetween(window.before.snapshot, window.after.snapshot, { etcd: [], tsraft: [...pidToNode.keys()] }, ticksPerSecond);
  const order = [leaderId, ...[...pidToNode.values()].filter((id) => id !== leaderId).sort((x, y) => x - y)];
  const pidOf = new Map([...pidToNode].map(([pid, id]) => [id, pid]));
  const breakdowns = order.map((id) => analyseProfile(profiles.get(id)!, window.fromUs, window.toUs));
  const procDelta = (id: number, which: keyof NodeCpu): number => {
    const pid = pidOf.get(id)!;
    const x = window.before.nodes.get(pid)?.[which];
    const y = window.after.nodes.get(pid)?.[which];
    return x === undefined || y === undefined ? NaN : ((y - x) * usPerTick) / ops;
  };
  console.log('');
  console.log(describeLoad(`c=${concurrency}, profiled`, window, cpu));
  // Each node's main-thread CPU (/proc) spread over its non-idle samples; without /proc, the nominal interval per sample.
  const mainUs = order.map((id) => procDelta(id, 'mainTicks') * ops);
  const usPerSample = breakdowns.map((b, i) => (Number.isFinite(mainUs[i]!) && b.busySamples > 0 ? mainUs[i]! / b.busySamples : options.intervalUs));
  const head = ['µs of CPU per write', ...order.map((id, i) => (i === 0 ? `leader (${id})` : `follower (${id})`)), 'sum of 3'];
  const rows: string[][] = [head];
  const row = (label: string, values: number[], f: (x: number) => string = fmt): string[] => [label, ...values.map(f), f(values.reduce((a, b) => a + b, 0))];
  for (const category of CATEGORIES) {
    const values = breakdowns.map((b, i) => ((b.byCategory.get(category) ?? 0) * usPerSample[i]!) / ops);
    if (values.some((v) => v > 0)) rows.push(row(category, values));
  }
  const main = order.map((id) => procDelta(id, 'mainTicks'));
  const profiler = order.map((id) => procDelta(id, 'profilerTicks'));
  const whole = order.map((id) => procDelta(id, 'processTicks'));
  rows.push(row('= main thread (/proc task stat)', main));
  rows.push(row('+ other threads (libuv pool, V8)', whole.map((w, i) => w - main[i]! - profiler[i]!)));
  rows.push(row('= process without profiler thread', whole.map((w, i) => w - profiler[i]!)));
  rows.push(row('(profiler thread, left out)', profiler));
  const messages = order.map((id) => ((window.messagesAfter.get(id) ?? NaN) - (window.messagesBefore.get(id) ?? NaN)) / ops);
  rows.push(row('Raft messages sent per write', messages, (x) => x.toFixed(2)));
  rows.push(row('(check: busy samples × interval)', breakdowns.map((b) => (b.busySamples * options.intervalUs) / ops)));
  console.log(formatTable(rows, new Set(head.map((_, i) => i).slice(1))));
  console.log(
    `  (samples in the window: ${breakdowns.map((b, i) => `node ${order[i]} ${b.busySamples} busy + ${b.idleSamples} idle`).join('; ')}; ` +
      `the category rows share out each node's main-thread /proc CPU by sample counts)`,
  );

  const leader = breakdowns[0]!;
  const leaderFns = [...leader.byFunction].sort((a, b) => b[1].samples - a[1].samples).slice(0, 15);
  const fnRows: string[][] = [['leader, top 15 by self time', 'µs/write', '% of main thread', 'category']];
  for (const [key, { samples, category }] of leaderFns) {
    fnRows.push([key.slice(0, key.lastIndexOf(' [')), fmt((samples * usPerSample[0]!) / ops), `${((samples / leader.busySamples) * 100).toFixed(1)}%`, category]);
  }
  console.log('');
  console.log(formatTable(fnRows, new Set([1, 2])));
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`bench:profile: ${signal}: killing the nodes`);
      abortAllClusters();
      process.exit(130);
    });
  }
  console.log(`machine: ${cpus().length} cores, 1-min load average ${loadavg()[0]!.toFixed(2)} before the run`);
  console.log(
    `bench:profile — 3 tsraft node processes on 127.0.0.1, fsync on, V8 CPU profiler every ${options.intervalUs} µs on each; ` +
      `session-less PUTs of ${options.valueBytes}-byte values on ${options.keys} keys to the leader; concurrency ${options.concurrencies.join('/')}; ` +
      `${options.warmupSeconds} s warm-up + ${options.seconds} s measured each`,
  );
  const ticksPerSecond = clockTicksPerSecond();
  for (const concurrency of options.concurrencies) await profileOnce(options, concurrency, ticksPerSecond);
  console.log('');
  console.log(`1-min load average after the run: ${loadavg()[0]!.toFixed(2)}`);
  console.log('categories:');
  for (const category of CATEGORIES) console.log(`  ${category}: ${CATEGORY_DESCRIPTIONS[category]}`);
}

if (isMainModule(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(`bench:profile: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  });
}
