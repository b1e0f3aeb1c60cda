/**
 * npm run bench:large-state — how tsraft behaves with a large state, met the way an operator meets
 * it: real `tsraft node` processes (fsync on) on 127.0.0.1, the HTTP API, the default snapshot
 * threshold unless --max-raft-state says otherwise. Figures only, never assertions.
 *
 *   npm run bench:large-state -- [--keys 1000000] [--value-bytes 1024] [--concurrency 64] [--batch 64]
 *                                [--max-raft-state B] [--dir DIR] [--keep] [--json]
 *
 * 1. Load: 3 nodes; `--keys` distinct keys with random values, closed loop, `--concurrency`
 *    keep-alive connections to the leader, each request one POST /v1/txn of --batch puts (or with
 *    --batch 1 a PUT /v1/kv/{key}: about half the rate, the load generator's own HTTP work per key
 *    competing with the nodes for the cores). Then per node: RSS and peak RSS (/proc VmRSS, VmHWM), the V8 heap (/metrics), RSS
 *    per key against the node's RSS before the load, the data directory's size.
 * 2. Snapshot + restart: writes to one pad key (overwritten, so the state hardly grows) until every
 *    node's latest snapshot covers the whole load (a node snapshots only once --max-raft-state bytes
 *    of log were applied since its last one); then a follower is stopped (SIGTERM) and started on
 *    its data: time until it answers /v1/status, /readyz, and has applied the leader's commit index.
 *    (A follower redirects linearizable reads to the leader, so catching up is what is timed.)
 * 3. A 4th node joins with an empty data directory (`tsraft node --join`: added as a learner, it
 *    promotes itself once caught up) and catches up by snapshot: time, MB/s, its peak RSS, the
 *    leader's RSS every 100 ms meanwhile; then it is removed (DELETE /v1/members/{id}) and stopped.
 * 4. A summary table (and with --json one JSON line), the machine's load, the total time.
 *
 * SIGINT/SIGTERM or an error: every node process is killed and the data removed (--keep or not).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseBytes, sleep } from '../src/cli/common.js';
import { KvClient } from '../src/kv/client.js';
import { DEFAULT_SNAPSHOT_LOG_FRACTION } from '../src/kv/replica.js';
import { DEFAULT_MAX_RAFT_STATE_BYTES } from '../src/kv/server.js';
import { abortAllClusters, type KvNodeProcess, KvProcessCluster } from '../src/testing/process-cluster.js';
import { joiningNode, latestSnapshot, memoryOf, procMemory } from './node-probes.js';
import { isMainModule, RawConnection, rawRequest } from './raw-http.js';
import { directoryUsage, formatErrorKinds } from './sustained.js';

const HOST = '127.0.0.1';
const MB = 1e6;
const MIB = 1024 * 1024;
const PROGRESS_MS = 5_000;
/** Per request: generous, since a node serialising a snapshot of a large state stalls its event loop meanwhile. */
const REQUEST_TIMEOUT_MS = 30_000;
const ATTEMPTS = 5;
/** Pad values: large enough that a few dozen writes pass the default 8 MiB threshold, small beside the state. */
const PAD_VALUE_BYTES = 64 * 1024;
const PAD_KEY = '__large-state-pad';
const JOINER_ID = 3;
const DEFAULT_BATCH = 64;

// ---- options

const USAGE = `usage: npm run bench:large-state -- [options]
    --keys N             distinct keys loaded (default 1000000)
    --value-bytes N      random bytes per value (default 1024)
    --concurrency N      closed-loop keep-alive connections to the leader (default 64)
    --batch N            keys per request: 1 = PUT /v1/kv/{key}, 2..128 = one POST /v1/txn of N puts
                         (default ${DEFAULT_BATCH}, fewer if the values are too large for a 1 MiB body: on 2 cores,
                         20000 × 1 KiB loaded about 2× faster than with single PUTs)
    --max-raft-state B   the nodes' snapshot threshold (default: the nodes' own, ${DEFAULT_MAX_RAFT_STATE_BYTES / MIB} MiB)
    --dir DIR            where the nodes' data directories go (default: a fresh temporary directory)
    --keep               keep the data directories at the end
    --json               also print the summary as one JSON line
    -h, --help`;

export interface LargeStateOptions {
  readonly keys: number;
  readonly valueBytes: number;
  readonly concurrency: number;
  readonly batch: number;
  readonly maxRaftState: string | undefined;
  readonly dir: string | undefined;
  readonly keep: boolean;
  readonly json: boolean;
}

function usage(message: string, code = 2): never {
  (code === 0 ? console.log : console.error)(`${code === 0 ? '' : `bench:large-state: ${message}\n`}${USAGE}`);
  process.exit(code);
}

export function parseOptions(argv: string[]): LargeStateOptions {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        keys: { type: 'string', default: '1000000' },
        'value-bytes': { type: 'string', default: '1024' },
        concurrency: { type: 'string', default: '64' },
        batch: { type: 'string' },
        'max-raft-state': { type: 'string' },
        dir: { type: 'string' },
        keep: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (error) {
    usage((error as Error).message);
  }
  if (values.help) usage('', 0);
  const int = (name: string, text: string, min: number, max: number): number => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isSafeInteger(n) || n < min || n > max) usage(`--${name} must be an integer in ${min}..${max}, got ${JSON.stringify(text)}`);
    return n;
  };
  const maxRaftState = values['max-raft-state'];
  if (maxRaftState !== undefined) {
    try {
      parseBytes(maxRaftState, '--max-raft-state');
    } catch (error) {
      usage((error as Error).message);
    }
  }
  const valueBytes = int('value-bytes', values['value-bytes'], 1, 1024 * 1024);
  // A txn body is read up to 1 MiB like any body; its values travel base64 (4/3 larger) with the key and JSON around them.
  const putBytes = Math.ceil(valueBytes / 3) * 4 + 64;
  const fitting = Math.max(1, Math.min(DEFAULT_BATCH, Math.floor((1024 * 1024) / putBytes)));
  const batch = values.batch === undefined ? (fitting === 1 ? 1 : fitting) : int('batch', values.batch, 1, 128);
  if (batch > 1 && batch * putBytes > 1024 * 1024) usage(`--batch ${batch} × --value-bytes ${valueBytes} makes a txn body over 1 MiB; lower one of them`);
  if (values.dir !== undefined && values.dir.trim() === '') usage('--dir must name a directory');
  return {
    keys: int('keys', values.keys, 1, 100_000_000),
    valueBytes,
    concurrency: int('concurrency', values.concurrency, 1, 4096),
    batch,
    maxRaftState,
    dir: values.dir,
    keep: values.keep,
    json: values.json,
  };
}

// ---- output and bounded waits

const began = performance.now();
const since = (t: number): number => (performance.now() - t) / 1000;
const say = (line: string): void => console.log(`[${since(began).toFixed(1).padStart(7)} s] ${line}`);
const mib = (bytes: number | undefined, digits = 1): string => (bytes === undefined ? '?' : (bytes / MIB).toFixed(digits));
const secs = (s: number | undefined): string => (s === undefined ? '?' : s.toFixed(2));

/** Nodes that must keep running while a wait lasts: a crash ends the wait at once, not at its timeout. */
let watched: readonly KvNodeProcess[] = [];

/** Polls `probe` until it returns a value, printing its note every PROGRESS_MS; throws after `timeoutMs`. */
async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<{ value?: T; note: string }>, pollMs = 100): Promise<T> {
  const start = performance.now();
  let lastNote = start;
  let note = 'no answer yet';
  while (performance.now() - start < timeoutMs) {
    const dead = watched.find((n) => !n.alive);
    if (dead !== undefined) throw new Error(`${what}: node ${dead.id} exited: ${dead.output.slice(-3).join(' | ')}`);
    const r = await probe();
    if (r.value !== undefined) return r.value;
    note = r.note;
    if (performance.now() - lastNote >= PROGRESS_MS) {
      lastNote = performance.now();
      say(`  ... ${what}: ${note} (${since(start).toFixed(0)} s)`);
    }
    await sleep(pollMs);
  }
  throw new Error(`${what}: not within ${(timeoutMs / 1000).toFixed(0)} s (last: ${note})`);
}

/** Rows as a markdown table, cells padded so that it reads as well unrendered; the first row is the header. */
function markdownTable(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(3, ...rows.map((r) => r[c]!.length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`;
  return [line(rows[0]!), line(widths.map((w) => '-'.repeat(w))), ...rows.slice(1).map(line)].join('\n');
}

// ---- phase 1: the load

interface LoadResult {
  seconds: number;
  keysWritten: number;
  keysFailed: number;
  failedAttempts: number;
  errorKinds: Map<string, number>;
}

/**
 * Closed loop: `concurrency` workers, one keep-alive connection each to the leader, each taking the
 * next batch of keys when its request was answered. A failed attempt (an error status, a lost
 * connection, a timeout) finds the leader again and is resent, up to ATTEMPTS times.
 */
async function load(cluster: KvProcessCluster, o: LargeStateOptions): Promise<LoadResult> {
  // Random values without a random draw per value: slices at random offsets of a random pool.
  const pool = randomBytes(Math.max(4 * MIB, o.valueBytes * 256));
  const value = (): Buffer => {
    const at = Math.floor(Math.random() * (pool.length - o.valueBytes + 1));
    return pool.subarray(at, at + o.valueBytes);
  };
  const keyOf = (i: number): string => `k${String(i).padStart(8, '0')}`;
  const request = (first: number, count: number): Buffer => {
    if (o.batch === 1) return rawRequest(HOST, 'PUT', `/v1/kv/${keyOf(first)}`, '', value());
    const then = Array.from({ length: count }, (_, j) => `{"put":{"key":"${Buffer.from(keyOf(first + j)).toString('base64')}","value":"${value().toString('base64')}"}}`);
    return rawRequest(HOST, 'POST', '/v1/txn', 'Content-Type: application/json\r\n', Buffer.from(`{"encoding":"base64","then":[${then.join(',')}]}`));
  };
  let leaderPort = Number(new URL((await cluster.waitForLeader(20_000)).url).port);
  let refreshing: Promise<void> | undefined;
  const refreshLeader = (): Promise<void> =>
    (refreshing ??= (async () => {
      const leader = await cluster.leader(2_000).catch(() => undefined);
      if (leader !== undefined) leaderPort = Number(new URL(leader.url).port);
      else await sleep(200);
      refreshing = undefined;
    })());
  const r: LoadResult = { seconds: 0, keysWritten: 0, keysFailed: 0, failedAttempts: 0, errorKinds: new Map() };
  const fail = (kind: string): void => {
    r.failedAttempts++;
    r.errorKinds.set(kind, (r.errorKinds.get(kind) ?? 0) + 1);
  };
  let next = 0;
  const worker = async (): Promise<void> => {
    let conn: { raw: RawConnection; port: number } | undefined;
    while (next < o.keys) {
      const first = next;
      const count = Math.min(o.batch, o.keys - first);
      next += count;
      const bytes = request(first, count);
      let done = false;
      for (let attempt = 1; attempt <= ATTEMPTS && !done; attempt++) {
        if (conn !== undefined && conn.port !== leaderPort) {
          conn.raw.close();
          conn = undefined;
        }
        const c = (conn ??= { raw: new RawConnection(HOST, leaderPort), port: leaderPort });
        const timer = setTimeout(() => c.raw.abort(new Error('timeout')), REQUEST_TIMEOUT_MS);
        try {
          const status = await c.raw.send(bytes);
          if (status === 200) done = true;
          else fail(`HTTP ${status}`);
        } catch (error) {
          fail((error as Error).message);
          c.raw.close();
          conn = undefined;
        } finally {
          clearTimeout(timer);
        }
        if (!done) await refreshLeader().then(() => sleep(50));
      }
      if (done) r.keysWritten += count;
      else r.keysFailed += count;
    }
    conn?.raw.close();
  };
  const start = performance.now();
  let last = { at: start, keys: 0 };
  const progress = setInterval(() => {
    const now = performance.now();
    say(`  ... ${r.keysWritten}/${o.keys} keys, ${Math.round(((r.keysWritten - last.keys) * 1000) / (now - last.at))} keys/s now, ${r.failedAttempts} failed attempts`);
    last = { at: now, keys: r.keysWritten };
  }, PROGRESS_MS);
  try {
    await Promise.all(Array.from({ length: o.concurrency }, () => worker()));
  } finally {
    clearInterval(progress);
  }
  r.seconds = since(start);
  return r;
}

/**
 * Eight session-less PUTs of `pad` to PAD_KEY at once, to the leader; resolves to how many
 * succeeded. Session-less, because a session keeps its last answer, and 64 KiB answers kept per
 * session would swell the very snapshot being measured.
 */
async function padBurst(cluster: KvProcessCluster, pad: Buffer): Promise<number> {
  const leader = await cluster.leader(5_000);
  if (leader === undefined) return 0;
  const port = Number(new URL(leader.url).port);
  const one = async (): Promise<number> => {
    const c = new RawConnection(HOST, port);
    const timer = setTimeout(() => c.abort(new Error('timeout')), REQUEST_TIMEOUT_MS);
    try {
      return (await c.send(rawRequest(HOST, 'PUT', `/v1/kv/${PAD_KEY}`, '', pad))) === 200 ? 1 : 0;
    } catch {
      return 0;
    } finally {
      clearTimeout(timer);
      c.close();
    }
  };
  const done = await Promise.all(Array.from({ length: 8 }, one));
  return done.reduce((a, b) => a + b, 0);
}

// ---- the run

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`bench:large-state: ${signal}: killing the nodes and removing their data`);
      abortAllClusters();
      process.exit(130);
    });
  }
  if (o.dir !== undefined) {
    mkdirSync(o.dir, { recursive: true });
    // KvProcessCluster makes its directory under os.tmpdir(), which follows TMPDIR.
    process.env['TMPDIR'] = resolve(o.dir);
  }
  const stateBytes = o.keys * o.valueBytes;
  // Every wait scales with the state: a second per MiB on top of a minute is far beyond what loopback needs.
  const scaledMs = 60_000 + (stateBytes / MIB) * 1_000;
  const maxRaftStateArgs = o.maxRaftState === undefined ? [] : ['--max-raft-state', o.maxRaftState];
  const threshold = o.maxRaftState === undefined ? DEFAULT_MAX_RAFT_STATE_BYTES : parseBytes(o.maxRaftState, '--max-raft-state');
  say(`machine: ${cpus().length} CPUs, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  say(
    `bench:large-state: ${o.keys} keys × ${o.valueBytes} random bytes (${mib(stateBytes)} MiB of values), concurrency ${o.concurrency}, ` +
      `${o.batch === 1 ? 'PUT /v1/kv/{key}' : `POST /v1/txn of ${o.batch} puts`}; 3 nodes, fsync on, snapshot threshold ${mib(threshold)} MiB`,
  );
  const cluster = await KvProcessCluster.start({ size: 3, fsync: true, tmpPrefix: 'tsraft-bench-large-state-', nodeArgs: maxRaftStateArgs });
  let joiner: KvNodeProcess | undefined;
  const client = new KvClient({ endpoints: cluster.endpoints, timeoutMs: 30_000 });
  const summary: Record<string, unknown> = { options: o };
  const rows: string[][] = [['phase', 'figure', 'node 0', 'node 1', 'node 2', 'node 3 / all']];
  const row = (phase: string, figure: string, perNode: readonly string[], all = ''): void => void rows.push([phase, figure, ...[0, 1, 2].map((i) => perNode[i] ?? ''), all]);
  let exitCode = 0;
  try {
    watched = cluster.nodes;
    say(`nodes: ${cluster.nodes.map((n) => `${n.id} ${n.url} pid ${n.pid}`).join(', ')}; data under ${cluster.root}`);
    // Before the first write: what an empty node costs, to subtract.
    await sleep(1_000);
    const empty = await Promise.all(cluster.nodes.map((n) => memoryOf(n)));

    say('phase 1: load');
    const loaded = await load(cluster, o);
    const converging = setInterval(() => {
      void cluster.statuses(2_000).then((ss) => say(`  ... waiting for every node to apply the load: applied ${ss.map((x) => x?.appliedIndex ?? '?').join('/')}, commit ${ss.map((x) => x?.commitIndex ?? '?').join('/')}`));
    }, PROGRESS_MS);
    const loadEnd = await cluster.waitForConvergence(scaledMs).finally(() => clearInterval(converging));
    const mem = await Promise.all(cluster.nodes.map((n) => memoryOf(n)));
    const disk = cluster.nodes.map((n) => directoryUsage(n.dir));
    const keysPerSecond = loaded.keysWritten / loaded.seconds;
    const rssPerKey = mem.map((m, i) => (m.rss === undefined || empty[i]!.rss === undefined ? undefined : (m.rss - empty[i]!.rss!) / Math.max(1, loaded.keysWritten)));
    say(
      `load: ${loaded.keysWritten} keys in ${loaded.seconds.toFixed(1)} s: ${Math.round(keysPerSecond)} keys/s, ${((keysPerSecond * o.valueBytes) / MB).toFixed(2)} MB/s of values; ` +
        `${loaded.keysFailed} keys failed, ${loaded.failedAttempts} failed attempts${loaded.failedAttempts > 0 ? ` (${formatErrorKinds(loaded.errorKinds)})` : ''}; all nodes applied index ${loadEnd}`,
    );
    cluster.nodes.forEach((n, i) => {
      const m = mem[i]!;
      say(
        `  node ${n.id}: RSS ${mib(m.rss)} MiB (empty ${mib(empty[i]!.rss)}, peak ${mib(m.hwm)}), heap used ${mib(m.heapUsed)} of ${mib(m.heapTotal)} MiB, external ${mib(m.external)} MiB, ` +
          `/metrics RSS ${mib(m.metricsRss)} MiB; RSS per key ${rssPerKey[i]?.toFixed(0) ?? '?'} B; data dir ${mib(disk[i]!.bytes)} MiB; snapshots taken ${m.snapshotsTaken ?? '?'}`,
      );
    });
    row('load', 'keys/s (MB/s of values)', [], `${Math.round(keysPerSecond)} (${((keysPerSecond * o.valueBytes) / MB).toFixed(2)})`);
    row('load', 'elapsed s / failed keys / failed attempts', [], `${loaded.seconds.toFixed(1)} / ${loaded.keysFailed} / ${loaded.failedAttempts}`);
    row('load', 'RSS empty → loaded MiB', cluster.nodes.map((_, i) => `${mib(empty[i]!.rss)} → ${mib(mem[i]!.rss)}`));
    row('load', 'peak RSS (VmHWM) MiB', mem.map((m) => mib(m.hwm)));
    row('load', 'heap used / total, external MiB', mem.map((m) => `${mib(m.heapUsed)} / ${mib(m.heapTotal)}, ${mib(m.external)}`));
    row('load', 'RSS per key B', rssPerKey.map((x) => x?.toFixed(0) ?? '?'));
    row('load', 'data dir MiB', disk.map((d) => mib(d.bytes)));
    row('load', 'snapshots taken', mem.map((m) => String(m.snapshotsTaken ?? '?')));
    summary['load'] = { ...loaded, errorKinds: Object.fromEntries(loaded.errorKinds), keysPerSecond, valueMBps: (keysPerSecond * o.valueBytes) / MB, appliedIndex: loadEnd, empty, loaded: mem, rssPerKey, dataDirBytes: disk.map((d) => d.bytes) };

    say(`phase 2: snapshot covering index ${loadEnd}, then a follower restarted`);
    const padStart = performance.now();
    let padWrites = 0;
    const pad = Buffer.alloc(PAD_VALUE_BYTES, 'p');
    await waitFor('snapshots covering the load', scaledMs, async () => {
      const statuses = await cluster.statuses(5_000);
      // The status moves first; the file is written after it, and the one measured below must be it.
      const covered = statuses.map((s, i) => Math.min(s?.snapshotIndex ?? 0, latestSnapshot(cluster.nodes[i]!.dir)?.index ?? 0));
      if (covered.every((x) => x >= loadEnd)) return { value: covered, note: '' };
      // Enough pad bytes to pass the threshold from anywhere, in bursts of 8 between looks. A
      // snapshot is due after the larger of the threshold and a quarter of the last snapshot.
      const lastSnapshotBytes = Math.max(0, ...cluster.nodes.map((n) => latestSnapshot(n.dir)?.bytes ?? 0));
      const due = Math.max(threshold, lastSnapshotBytes * DEFAULT_SNAPSHOT_LOG_FRACTION);
      if (padWrites * PAD_VALUE_BYTES < due * 2 + PAD_VALUE_BYTES * 8) padWrites += await padBurst(cluster, pad);
      return { note: `snapshot indexes ${covered.join('/')}, ${padWrites} pad writes of ${PAD_VALUE_BYTES / 1024} KiB` };
    }, 50);
    const snaps = cluster.nodes.map((n) => latestSnapshot(n.dir));
    say(`  every node's snapshot covers the load after ${padWrites} pad writes (${since(padStart).toFixed(1)} s): snapshot files ${snaps.map((s) => `${mib(s?.bytes)} MiB @${s?.index ?? '?'}`).join(', ')}`);
    row('snapshot', 'latest snapshot file MiB (index)', snaps.map((s) => `${mib(s?.bytes)} (@${s?.index ?? '?'})`), `${padWrites} pad writes`);

    const leader = await cluster.waitForLeader(20_000);
    const follower = cluster.nodes.find((n) => n !== leader)!;
    const stopStart = performance.now();
    await follower.stop(30_000);
    const stopSeconds = since(stopStart);
    const restartTarget = (await leader.status(5_000))?.commitIndex ?? loadEnd;
    const spawned = performance.now();
    follower.start();
    let statusAt: number | undefined;
    let readyAt: number | undefined;
    await waitFor(`node ${follower.id} catching up after its restart`, scaledMs, async () => {
      const s = await follower.status(1_000);
      if (s !== undefined) statusAt ??= since(spawned);
      if (s !== undefined && readyAt === undefined) {
        const ready = await fetch(`${follower.url}/readyz`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
        if (ready?.ok === true) readyAt = since(spawned);
        await ready?.body?.cancel();
      }
      const applied = s?.appliedIndex ?? 0;
      return applied >= restartTarget && readyAt !== undefined ? { value: applied, note: '' } : { note: s === undefined ? 'not answering yet' : `applied ${applied} of ${restartTarget}` };
    }, 50);
    const caughtUp = since(spawned);
    const restartMem = procMemory(follower.pid);
    say(
      `  node ${follower.id}: stopped in ${secs(stopSeconds)} s; after its spawn: /v1/status answers at ${secs(statusAt)} s, /readyz at ${secs(readyAt)} s, ` +
        `applied the leader's commit index ${restartTarget} at ${secs(caughtUp)} s; peak RSS ${mib(restartMem.hwm)} MiB, RSS now ${mib(restartMem.rss)} MiB`,
    );
    row('restart', `node ${follower.id}: stop s / status s / ready s / caught up s`, [], `${secs(stopSeconds)} / ${secs(statusAt)} / ${secs(readyAt)} / ${secs(caughtUp)}`);
    row('restart', `node ${follower.id}: peak RSS MiB`, [], mib(restartMem.hwm));
    summary['snapshot'] = { padWrites, snapshots: snaps };
    summary['restart'] = { node: follower.id, stopSeconds, statusSeconds: statusAt, readySeconds: readyAt, caughtUpSeconds: caughtUp, target: restartTarget, ...restartMem };

    say(`phase 3: node ${JOINER_ID} joins with an empty data directory and catches up by snapshot`);
    const leader3 = await cluster.waitForLeader(20_000);
    const leaderStatus = await leader3.status(5_000);
    const [snapIndex, commitAtJoin] = [leaderStatus?.snapshotIndex ?? 0, leaderStatus?.commitIndex ?? 0];
    joiner = await joiningNode(JOINER_ID, leader3.url, join(cluster.root, `node-${JOINER_ID}`), maxRaftStateArgs);
    const dir = joiner.dir;
    const leaderRssBefore = procMemory(leader3.pid).rss;
    let leaderRssMax = leaderRssBefore ?? 0;
    const sampler = setInterval(() => (leaderRssMax = Math.max(leaderRssMax, procMemory(leader3.pid).rss ?? 0)), 100);
    const joinStart = performance.now();
    const j = joiner;
    j.start();
    watched = [...cluster.nodes, j];
    let snapAt: number | undefined;
    try {
      await waitFor(`node ${JOINER_ID} catching up`, scaledMs, async () => {
        if (!j.alive) throw new Error(`node ${JOINER_ID} exited while joining:\n${j.output.slice(-20).join('\n')}`);
        const applied = (await j.status(1_000))?.appliedIndex ?? 0;
        if (applied >= snapIndex) snapAt ??= since(joinStart);
        return applied >= commitAtJoin ? { value: applied, note: '' } : { note: `applied ${applied}; leader snapshot ${snapIndex}, commit ${commitAtJoin}` };
      });
    } finally {
      clearInterval(sampler);
    }
    const joinCaughtUp = since(joinStart);
    const joinMem = procMemory(j.pid);
    const joinSnap = latestSnapshot(dir);
    const leaderSnap = latestSnapshot(leader3.dir);
    const snapBytes = (leaderSnap?.index === snapIndex ? leaderSnap.bytes : undefined) ?? joinSnap?.bytes ?? 0;
    const mbps = snapAt === undefined ? undefined : snapBytes / MB / snapAt;
    say(
      `  node ${JOINER_ID}: applied the leader's snapshot index ${snapIndex} at ${secs(snapAt)} s (${mbps?.toFixed(1) ?? '?'} MB/s of ${mib(snapBytes)} MiB), its commit index ${commitAtJoin} at ${secs(joinCaughtUp)} s; ` +
        `peak RSS ${mib(joinMem.hwm)} MiB; its snapshot file ${mib(joinSnap?.bytes)} MiB; leader RSS max ${mib(leaderRssMax)} MiB (+${mib(leaderRssMax - (leaderRssBefore ?? 0))} MiB)`,
    );
    // From the joiner's own log: when it was up (listening, joined) and when it installed the snapshot,
    // so the rate below counts the transfer, its checks and the install, not the process's start.
    const logTime = (pattern: RegExp): number | undefined => {
      const line = j.output.find((l) => pattern.test(l));
      const at = line === undefined ? Number.NaN : Date.parse(line.split(' ')[0]!);
      return Number.isNaN(at) ? undefined : at;
    };
    const upAt = logTime(new RegExp(`node ${JOINER_ID} up:`));
    const installedAt = logTime(/snapshot installed from the leader/);
    const installSeconds = upAt === undefined || installedAt === undefined ? undefined : (installedAt - upAt) / 1000;
    const installMBps = installSeconds === undefined || installSeconds <= 0 ? undefined : snapBytes / MB / installSeconds;
    say(`  node ${JOINER_ID}: from its start-up line to 'snapshot installed': ${secs(installSeconds)} s (${installMBps?.toFixed(1) ?? '?'} MB/s: transfer, check, install)`);
    // The joiner's own account of the steps (received and checked, restored), for where the time went.
    for (const line of j.output.filter((l) => /snapshot at \d+ (from the leader|restored)|snapshot installed|up:/.test(l))) say(`    ${line}`);
    row('join', `node ${JOINER_ID}: snapshot applied s / caught up s`, [], `${secs(snapAt)} / ${secs(joinCaughtUp)}`);
    row('join', `node ${JOINER_ID}: up → installed s (MB/s)`, [], `${secs(installSeconds)} (${installMBps?.toFixed(1) ?? '?'})`);
    row('join', `node ${JOINER_ID}: snapshot MB/s / peak RSS MiB`, [], `${mbps?.toFixed(1) ?? '?'} / ${mib(joinMem.hwm)}`);
    row('join', 'leader RSS max MiB (+ over before)', [], `${mib(leaderRssMax)} (+${mib(leaderRssMax - (leaderRssBefore ?? 0))}) node ${leader3.id}`);
    // It promotes itself once caught up; removing it mid-promotion would only wait for that change.
    const promoted = await waitFor(`node ${JOINER_ID} promoted`, 30_000, async () => {
      const view = await client.members().catch(() => undefined);
      return view?.voters.some((m) => m.id === JOINER_ID) === true && !view.joint ? { value: since(joinStart), note: '' } : { note: view === undefined ? 'no answer' : 'still a learner' };
    }, 200).catch(() => undefined);
    const removeStart = performance.now();
    await client.removeMember(JOINER_ID);
    const removeSeconds = since(removeStart);
    watched = cluster.nodes;
    await j.stop(30_000);
    say(`  node ${JOINER_ID}: ${promoted === undefined ? 'not promoted within 30 s' : `voter at ${secs(promoted)} s`}; removed in ${secs(removeSeconds)} s and stopped`);
    summary['join'] = { installSeconds, installMBps, snapshotIndex: snapIndex, commitIndex: commitAtJoin, snapshotAppliedSeconds: snapAt, caughtUpSeconds: joinCaughtUp, snapshotBytes: snapBytes, MBps: mbps, ...joinMem, leaderRssBefore, leaderRssMax, promotedSeconds: promoted, removeSeconds };
  } catch (error) {
    say(`FAILED: ${(error as Error).stack ?? String(error)}`);
    console.log(cluster.describeOutput(15));
    if (joiner !== undefined) console.log(`--- node ${JOINER_ID}\n${joiner.output.slice(-15).join('\n')}`);
    exitCode = 1;
  } finally {
    await joiner?.stop();
    await client.close();
    await cluster.stop(o.keep);
  }

  const total = since(began);
  rows.push(['machine', `${cpus().length} CPUs, load average (1/5/15 min)`, '', '', '', loadavg().map((x) => x.toFixed(2)).join(' ')]);
  rows.push(['total', 'run time s', '', '', '', total.toFixed(1)]);
  console.log('');
  console.log(markdownTable(rows));
  summary['machine'] = { cpus: cpus().length, loadavg: loadavg(), totalSeconds: total };
  if (o.json) console.log(`JSON ${JSON.stringify(summary)}`);
  say(o.keep ? `data kept in ${cluster.root}` : 'data removed');
  process.exit(exitCode);
}

if (isMainModule(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(`bench:large-state: ${(error as Error).stack ?? String(error)}`);
    abortAllClusters();
    process.exit(1);
  });
}
