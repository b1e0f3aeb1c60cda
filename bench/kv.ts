/**
 * KV service benchmark: a 3-node cluster of `tsraft node` processes (fsync on) on 127.0.0.1 and an
 * HTTP load generator (node:http, keep-alive, one connection per concurrent worker) in this
 * process. Writes (PUT, each worker an exactly-once session) and linearizable reads (GET, ReadIndex
 * on the leader) are measured separately at each concurrency, with 100-byte values; each cell is
 * the median of `--runs` runs of `--seconds` seconds.
 *
 *   npm run bench:kv -- [--seconds 5] [--runs 3] [--concurrency 1,64,256] [--value-bytes 100] [--no-fsync]
 *                       [--client raw|node-http] [--tls]
 *                       [--range-only | --watch-only | --table-only] [--keys 1000000] [--watchers 1000] [--rate 1000]
 *
 * Three parts, all by default, in this order (each alone with its --*-only option):
 * - the write/read table described here;
 * - range reads over HTTP (kv-range-http.ts): 3 nodes restored from a backup of --keys keys,
 *   `GET /v1/kv?prefix=P&limit=100` (exactly 100 keys per prefix, checked), linearizable and
 *   stale=true, at concurrency 1 and 16 (--seconds per run, default 5; --runs, --warmup);
 * - watch fan-out (kv-watch-fanout.ts): --watchers SSE streams on one prefix spread over the 3
 *   nodes while --rate writes/s are committed for --seconds (default 10): delivery latency, and
 *   every watcher must see every acknowledged write exactly once, in order (else exit 1).
 * A failed check in any part makes the bench exit 1.
 *
 * --tls: a second cluster beside the first, its peers over mutual TLS and its HTTP API over HTTPS
 * (certificates as `tsraft start --tls` makes them), measured in interleaved rounds (a plaintext
 * run, then a TLS run, for each of `--runs`), so that both see the same machine; the table gives
 * both medians and their ratio. Connections are kept alive, so the handshake is paid once per
 * worker; what is measured is the cost of encrypting requests and answers (and peer traffic).
 *
 * The default load generator is a minimal HTTP/1.1 keep-alive client on raw sockets (one
 * connection per worker, one request at a time, responses parsed by Content-Length), so that on a
 * small machine the generator takes as little CPU from the nodes as possible; `--client node-http`
 * uses node:http with a keep-alive Agent instead.
 *
 * Requests go straight to the leader (as a client does once it has found it), so redirects are not
 * measured. Latency is from just before the request is written until its full response is read.
 */
import { readFileSync } from 'node:fs';
import { Agent, request, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { formatTable } from '../src/cli/common.js';
import { abortAllClusters, KvProcessCluster } from '../src/testing/process-cluster.js';
import { removeRangeBenchDirs, runRangeBench } from './kv-range-http.js';
import { runWatchFanout } from './kv-watch-fanout.js';
import { median, percentile, RawConnection } from './raw-http.js';

const USAGE = `usage: npm run bench:kv -- [options]
  the write/read table (3 tsraft node processes, fsync on):
    --seconds N          seconds per run (default 5)           --runs N            runs per cell, median reported (default 3)
    --concurrency LIST   default 1,64,256                      --value-bytes N     default 100
    --warmup N           seconds before each run (default 1)   --no-fsync          nodes without fsync (every part)
    --client raw|node-http                                     --tls               a TLS cluster beside the plaintext one
  range reads over HTTP (bench/kv-range-http.ts): 3 nodes restored from a backup of --keys keys,
  GET /v1/kv?prefix=P&limit=100 (100 keys per prefix), linearizable and stale=true, concurrency 1 and 16:
    --keys N             keys in the store (default 1000000; a multiple of 100)
    (--seconds: per run, default 5; --runs, --warmup as above)
  watch fan-out (bench/kv-watch-fanout.ts): --watchers SSE streams on prefix fan/ over the 3 nodes while
  --rate writes/s are committed; delivery latency and lost/duplicated/out-of-order events (any: exit 1):
    --watchers N         default 1000                          --rate N            writes/s, default 1000
    (--seconds: seconds of writes, default 10)
  which parts (default: all three, in this order):
    --range-only         only the range reads                  --watch-only        only the watch fan-out
    --table-only         only the write/read table`;

function usage(message: string): never {
  console.error(`bench:kv: ${message}\n${USAGE}`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      seconds: { type: 'string' },
      runs: { type: 'string', default: '3' },
      concurrency: { type: 'string', default: '1,64,256' },
      'value-bytes': { type: 'string', default: '100' },
      warmup: { type: 'string', default: '1' },
      'no-fsync': { type: 'boolean', default: false },
      client: { type: 'string', default: 'raw' },
      tls: { type: 'boolean', default: false },
      'range-only': { type: 'boolean', default: false },
      'watch-only': { type: 'boolean', default: false },
      'table-only': { type: 'boolean', default: false },
      keys: { type: 'string', default: '1000000' },
      watchers: { type: 'string', default: '1000' },
      rate: { type: 'string', default: '1000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (error) {
  usage((error as Error).message);
}
const values = parsed.values;
if (values.help) usage('help');
const int = (name: string, text: string, min: number, max: number): number => {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) usage(`--${name} must be an integer in ${min}..${max}, got ${text}`);
  return n;
};
const secondsGiven = values.seconds === undefined ? undefined : int('seconds', values.seconds, 1, 600);
const seconds = secondsGiven ?? 5;
const runs = int('runs', values.runs, 1, 20);
const warmupSeconds = int('warmup', values.warmup, 0, 60);
const valueBytes = int('value-bytes', values['value-bytes'], 0, 1024 * 1024);
const concurrencies = values.concurrency.split(',').map((c) => int('concurrency', c.trim(), 1, 4096));
const fsync = !values['no-fsync'];
if (values.client !== 'raw' && values.client !== 'node-http') usage(`--client must be raw or node-http, got ${values.client}`);
const clientKind = values.client;
const withTls = values.tls;
const only = (['range-only', 'watch-only', 'table-only'] as const).filter((o) => values[o]);
if (only.length > 1) usage(`give at most one of --${only.join(', --')}`);
const runTable = only.length === 0 || only[0] === 'table-only';
const runRange = only.length === 0 || only[0] === 'range-only';
const runWatch = only.length === 0 || only[0] === 'watch-only';
const rangeKeys = int('keys', values.keys, 100, 100_000_000);
const watchers = int('watchers', values.watchers, 1, 100_000);
const watchRate = int('rate', values.rate, 1, 100_000);
const watchSeconds = secondsGiven ?? 10;

interface RunResult {
  readonly ops: number;
  readonly errors: number;
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

const KEYS = 1000;
const value = Buffer.alloc(valueBytes, 'x');

/** One HTTP(S) request (HTTPS when `agent` is an https.Agent); resolves to the status code once the whole response is read. */
function send(agent: Agent, base: URL, method: string, path: string, headers: Record<string, string>, body: Buffer | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const options: RequestOptions = { agent, host: base.hostname, port: base.port, method, path, headers };
    const req = (base.protocol === 'https:' ? httpsRequest : request)(options, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

let runCounter = 0;

/** A keep-alive agent for `base`: an https.Agent trusting `ca` for https:// URLs. */
function agentFor(base: URL, maxSockets: number, ca: Buffer | undefined): Agent {
  const options = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets };
  return base.protocol === 'https:' ? new HttpsAgent({ ...options, ...(ca === undefined ? {} : { ca }) }) : new Agent(options);
}

/** `concurrency` workers, each one request at a time, for `ms` (after a warmup that is not counted); `ca` for an https:// leader. */
async function load(leaderUrl: string, kind: 'put' | 'get', concurrency: number, ms: number, warmupMs: number, ca?: Buffer): Promise<RunResult> {
  const base = new URL(leaderUrl);
  const agent = agentFor(base, concurrency, ca);
  const runId = `${process.pid}-${runCounter++}`;
  const latencies: number[] = [];
  let errors = 0;
  let counted = 0;
  const t0 = performance.now();
  const measureFrom = t0 + warmupMs;
  const end = measureFrom + ms;
  let firstError: string | undefined;
  const worker = async (w: number): Promise<void> => {
    let seq = 0;
    const clientId = `bench-${runId}-${w}`;
    let conn: RawConnection | null = null;
    const rawSend = async (method: string, path: string, headers: string, body: Buffer | undefined): Promise<number> => {
      const c = (conn ??= new RawConnection(base.hostname, Number(base.port), base.protocol === 'https:' ? ca : undefined));
      const head = Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: ${base.host}\r\n${headers}Content-Length: ${body?.length ?? 0}\r\n\r\n`, 'latin1');
      try {
        return await c.send(body === undefined ? head : Buffer.concat([head, body]));
      } catch (error) {
        c.close();
        conn = null;
        throw error;
      }
    };
    const once = (key: string): Promise<number> => {
      if (kind === 'put') {
        seq++;
        return clientKind === 'raw'
          ? rawSend('PUT', `/v1/kv/${key}`, `X-Client-Id: ${clientId}\r\nX-Request-Seq: ${seq}\r\n`, value)
          : send(agent, base, 'PUT', `/v1/kv/${key}`, { 'X-Client-Id': clientId, 'X-Request-Seq': String(seq), 'Content-Length': String(value.length) }, value);
      }
      return clientKind === 'raw' ? rawSend('GET', `/v1/kv/${key}`, '', undefined) : send(agent, base, 'GET', `/v1/kv/${key}`, {}, undefined);
    };
    for (let i = 0; i < 100_000_000 && performance.now() < end; i++) {
      const key = `k${(w * 7919 + i) % KEYS}`;
      const started = performance.now();
      try {
        const status = await once(key);
        const finished = performance.now();
        if (status !== 200 && status !== 404) {
          errors++;
          firstError ??= `HTTP ${status}`;
          await new Promise((r) => setTimeout(r, 10));
        } else if (started >= measureFrom && finished <= end) {
          latencies.push(finished - started);
          counted++;
        }
      } catch (error) {
        errors++;
        firstError ??= (error as Error).message;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    (conn as RawConnection | null)?.close();
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  agent.destroy();
  if (firstError !== undefined) console.log(`    (${errors} errors, first: ${firstError})`);
  const sorted = Float64Array.from(latencies).sort();
  return { ops: counted, errors, opsPerSecond: counted / (ms / 1000), p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) };
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`bench:kv: ${signal}: killing the nodes`);
    abortAllClusters();
    removeRangeBenchDirs();
    process.exit(130);
  });
}
const loadBefore = loadavg()[0]!;
console.log(`machine: ${cpus().length} cores, 1-min load average ${loadBefore.toFixed(2)} before the run (other work on the machine skews the numbers)`);
/** One cluster under load: the plaintext one, and with --tls the one over TLS. */
interface Target {
  readonly label: 'plaintext' | 'TLS';
  readonly cluster: KvProcessCluster;
  readonly ca: Buffer | undefined;
}

type Cell = { opsPerSecond: number; p50Ms: number; p99Ms: number };

/** The write/read table (the original bench:kv). */
async function runTableBench(): Promise<void> {
  console.log(
    `bench:kv — 3 tsraft node processes on 127.0.0.1, fsync ${fsync ? 'on' : 'off'}, ${valueBytes}-byte values, ${KEYS} keys, ` +
      `concurrency ${concurrencies.join('/')}, ${runs} runs × ${seconds} s (+${warmupSeconds} s warmup) per cell, median reported`,
  );
  const targets: Target[] = [];
  const rows: string[][] = [['op', 'concurrency', 'ops/s', 'p50 ms', 'p99 ms', 'errors', 'runs (ops/s)']];
  const tlsRows: string[][] = [['op', 'concurrency', 'plain ops/s', 'TLS ops/s', 'TLS/plain', 'plain p50', 'TLS p50', 'plain p99', 'TLS p99']];
  const results = new Map<string, Cell>();
  const opName = (kind: 'put' | 'get'): string => (kind === 'put' ? 'write (PUT)' : 'read (GET, linearizable)');
  const median3 = (perRun: readonly RunResult[]): Cell => ({
    opsPerSecond: median(perRun.map((r) => r.opsPerSecond)),
    p50Ms: median(perRun.map((r) => r.p50Ms)),
    p99Ms: median(perRun.map((r) => r.p99Ms)),
  });
  try {
    targets.push({ label: 'plaintext', cluster: await KvProcessCluster.start({ size: 3, fsync, tmpPrefix: 'tsraft-bench-kv-', nodeArgs: ['--quiet'] }), ca: undefined });
    if (withTls) {
      const cluster = await KvProcessCluster.start({ size: 3, fsync, tls: true, tmpPrefix: 'tsraft-bench-kv-tls-', nodeArgs: ['--quiet'] });
      targets.push({ label: 'TLS', cluster, ca: readFileSync(cluster.caFile!) });
    }
    const leaders = new Map<Target, string>();
    for (const target of targets) {
      const leader = await target.cluster.waitForLeader(20_000);
      leaders.set(target, leader.url);
      console.log(`${withTls ? `${target.label}: ` : ''}leader: node ${leader.id} (${leader.url})`);
      // Every key exists before the reads.
      const base = new URL(leader.url);
      const agent = agentFor(base, 64, target.ca);
      for (let k = 0; k < KEYS; k += 64) {
        await Promise.all(
          Array.from({ length: Math.min(64, KEYS - k) }, (_, j) => send(agent, base, 'PUT', `/v1/kv/k${k + j}`, { 'Content-Length': String(value.length) }, value)),
        );
      }
      agent.destroy();
    }
    for (const kind of ['put', 'get'] as const) {
      for (const concurrency of concurrencies) {
        const perRun = new Map<Target, RunResult[]>(targets.map((t) => [t, []]));
        // Interleaved: run r of every target before run r + 1 of any, so drift on the machine hits both alike.
        for (let r = 0; r < runs; r++) {
          for (const target of targets) {
            const current = (await target.cluster.leader())?.url ?? leaders.get(target)!;
            const result = await load(current, kind, concurrency, seconds * 1000, warmupSeconds * 1000, target.ca);
            perRun.get(target)!.push(result);
            console.log(
              `  ${withTls ? `${target.label.padEnd(9)} ` : ''}${kind} c=${concurrency} run ${r + 1}: ${Math.round(result.opsPerSecond)} ops/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms` +
                (result.errors > 0 ? `, ${result.errors} errors` : ''),
            );
          }
        }
        const plainRuns = perRun.get(targets[0]!)!;
        const cell = median3(plainRuns);
        results.set(`${kind}/${concurrency}`, cell);
        rows.push([
          opName(kind),
          String(concurrency),
          String(Math.round(cell.opsPerSecond)),
          cell.p50Ms.toFixed(2),
          cell.p99Ms.toFixed(2),
          String(plainRuns.reduce((n, r) => n + r.errors, 0)),
          plainRuns.map((r) => Math.round(r.opsPerSecond)).join(' / '),
        ]);
        if (withTls) {
          const tlsCell = median3(perRun.get(targets[1]!)!);
          tlsRows.push([
            opName(kind),
            String(concurrency),
            String(Math.round(cell.opsPerSecond)),
            String(Math.round(tlsCell.opsPerSecond)),
            (tlsCell.opsPerSecond / cell.opsPerSecond).toFixed(2),
            cell.p50Ms.toFixed(2),
            tlsCell.p50Ms.toFixed(2),
            cell.p99Ms.toFixed(2),
            tlsCell.p99Ms.toFixed(2),
          ]);
        }
      }
    }
  } finally {
    await Promise.all(targets.map((t) => t.cluster.stop()));
  }

  console.log('');
  console.log(`1-min load average after the run: ${loadavg()[0]!.toFixed(2)}`);
  console.log(formatTable(rows, new Set([1, 2, 3, 4, 5])));
  if (withTls) {
    console.log('');
    console.log('plaintext beside TLS (peers mTLS + HTTPS), interleaved rounds, medians (ms for latency):');
    console.log(formatTable(tlsRows, new Set([1, 2, 3, 4, 5, 6, 7, 8])));
  }
  const w64 = results.get('put/64');
  const w1 = results.get('put/1');
  console.log('');
  if (w64 !== undefined) {
    console.log(
      `bar: writes at concurrency 64 >= 8000 ops/s: ${Math.round(w64.opsPerSecond)} ${w64.opsPerSecond >= 8000 ? 'PASS' : 'MISS'}; ` +
        `p99 < 40 ms: ${w64.p99Ms.toFixed(2)} ms ${w64.p99Ms < 40 ? 'PASS' : 'MISS'}`,
    );
  }
  if (w1 !== undefined) console.log(`bar: write p50 at concurrency 1 < 1 ms: ${w1.p50Ms.toFixed(2)} ms ${w1.p50Ms < 1 ? 'PASS' : 'MISS'}`);
}

const partStarted = (): number => performance.now();
let ok = true;
if (runTable) {
  const t = partStarted();
  await runTableBench();
  console.log(`table part: ${((performance.now() - t) / 1000).toFixed(0)} s in all`);
}
if (runRange) ok = (await runRangeBench({ keys: rangeKeys, seconds, warmupSeconds, runs, fsync })) && ok;
if (runWatch) ok = (await runWatchFanout({ watchers, rate: watchRate, seconds: watchSeconds, fsync })) && ok;
console.log('');
console.log(`1-min load average at the end: ${loadavg()[0]!.toFixed(2)}`);
if (!ok) {
  console.error('bench:kv: a check failed (see the lines marked !!! above)');
  process.exitCode = 1;
}
