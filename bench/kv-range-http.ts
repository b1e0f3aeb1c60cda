/**
 * `npm run bench:kv -- --range-only`: range reads over HTTP on a 3-node cluster of `tsraft node`
 * processes holding `--keys` keys (default 1,000,000).
 *
 * The keys are not written through HTTP (a million puts take long): the state is built directly in
 * a KvStateMachine (put commands through applyCommand, as replicas apply them), its snapshot is
 * wrapped as a backup file (encodeBackup), and the three data directories are seeded from it by
 * the code of `tsraft snapshot restore` (runSnapshotRestore); the nodes then start on them
 * (`tsraft node --data-dir DIR`, fsync on).
 *
 * Keys are `user/<5-digit group>/<2-digit n>` (100 per group, 32-byte values), so the prefix
 * `user/<group>/` matches exactly 100 keys. Measured: `GET /v1/kv?prefix=user/<group>/&limit=100`
 * at random groups, linearizable (ReadIndex on the leader) and `stale=true`, at concurrency 1 and
 * 16, against the leader; and stale at concurrency 16 spread over the three nodes. Every page is
 * checked: status 200, `"count":100,"more":false` in every answer, and every 16th answer parsed
 * whole (100 distinct keys, all under the prefix). A page that fails the check fails the bench.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { formatPeers, formatTable, sleep, type PeerSpec } from '../src/cli/common.js';
import { runSnapshotRestore } from '../src/cli/snapshot.js';
import { encodeBackup } from '../src/kv/backup-format.js';
import { encodeKvCommand } from '../src/kv/commands.js';
import { KvStateMachine } from '../src/kv/state-machine.js';
import { KvNodeProcess } from '../src/testing/process-cluster.js';
import { freeLoopbackPorts } from '../src/testing/ports.js';
import { median, percentile, RawConnection, rawRequest } from './raw-http.js';

export interface RangeBenchOptions {
  readonly keys: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly runs: number;
  readonly fsync: boolean;
}

const GROUP = 100;
const VALUE_BYTES = 32;
const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/** Data directories of range clusters not yet removed (for a signal handler). */
const liveRoots = new Set<string>();
export function removeRangeBenchDirs(): void {
  for (const root of liveRoots) rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  liveRoots.clear();
}

interface Cell {
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
}

/** A page that is not what was asked for: counted, and the first few described. */
class PageChecks {
  failures = 0;
  parsedWhole = 0;
  checked = 0;
  readonly examples: string[] = [];

  fail(what: string): void {
    this.failures++;
    if (this.examples.length < 5) this.examples.push(what);
  }
}

async function statusOf(node: KvNodeProcess): Promise<{ role?: string; term?: number; appliedIndex?: number; commitIndex?: number } | undefined> {
  return (await node.status(2000)) as { role?: string; term?: number; appliedIndex?: number; commitIndex?: number } | undefined;
}

export async function runRangeBench(options: RangeBenchOptions): Promise<boolean> {
  const { keys: total } = options;
  const groups = Math.ceil(total / GROUP);
  const width = Math.max(5, String(groups - 1).length);
  const keyOf = (i: number): string => `user/${pad(Math.floor(i / GROUP), width)}/${pad(i % GROUP, 2)}`;
  const fullGroups = Math.floor(total / GROUP);
  if (fullGroups < 1) throw new Error(`--keys ${total}: at least ${GROUP} keys are needed for a 100-key page`);
  const started = performance.now();
  console.log('');
  console.log(`range reads over HTTP — 3 tsraft node processes on 127.0.0.1 (fsync ${options.fsync ? 'on' : 'off'}) restored from a backup of ${total} keys ` + `(user/<group>/<nn>, ${VALUE_BYTES}-byte values, ${GROUP} keys per prefix)`);

  const root = mkdtempSync(join(tmpdir(), 'tsraft-bench-range-'));
  liveRoots.add(root);
  const nodes: KvNodeProcess[] = [];
  try {
    // 1. The state, built directly.
    let t = performance.now();
    let sm: KvStateMachine | null = new KvStateMachine();
    const enc = new TextEncoder();
    const value = new Uint8Array(VALUE_BYTES).fill(0x61);
    for (let i = 0; i < total; i++) sm.applyCommand(i + 1, encodeKvCommand({ op: 'put', clientId: '', seq: 0, key: enc.encode(keyOf(i)), value }));
    const index = sm.appliedIndex;
    const data = sm.snapshot();
    sm = null;
    const backup = encodeBackup({ clusterId: 'tsraft', takenFrom: 0, index, term: 1, voters: [0, 1, 2], learners: [], data });
    const backupFile = join(root, 'backup.tsraft');
    writeFileSync(backupFile, backup);
    console.log(`state built in ${((performance.now() - t) / 1000).toFixed(1)} s: index ${index}, backup ${(backup.length / 1024 / 1024).toFixed(1)} MiB`);

    // 2. Three data directories seeded as `tsraft snapshot restore` does.
    t = performance.now();
    const ports = await freeLoopbackPorts(6);
    const peers: PeerSpec[] = [0, 1, 2].map((id) => ({ id, raftHost: '127.0.0.1', raftPort: ports[id]!, httpUrl: `http://127.0.0.1:${ports[3 + id]!}` }));
    const peerList = formatPeers(peers);
    const realWrite = process.stdout.write.bind(process.stdout);
    for (const p of peers) {
      const dir = join(root, `node-${p.id}`);
      mkdirSync(dir);
      // runSnapshotRestore prints what it did; the bench prints one line for the three.
      process.stdout.write = (() => true) as typeof process.stdout.write;
      try {
        await runSnapshotRestore(backupFile, { dataDir: dir, id: String(p.id), peers: peerList, fsync: options.fsync });
      } finally {
        process.stdout.write = realWrite;
      }
    }
    rmSync(backupFile);
    console.log(`3 data directories restored (runSnapshotRestore) in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    // 3. The nodes, on those directories.
    t = performance.now();
    for (const p of peers) {
      const dir = join(root, `node-${p.id}`);
      const node = new KvNodeProcess(p, dir, ['node', '--data-dir', dir, '--quiet', ...(options.fsync ? [] : ['--no-fsync'])], undefined);
      nodes.push(node);
      node.start();
    }
    const deadline = Date.now() + 120_000;
    let leader: KvNodeProcess | undefined;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`the restored cluster did not elect a leader and apply index ${index} on every node within 120 s\n${nodes.map((n) => `--- node ${n.id}\n${n.output.slice(-10).join('\n')}`).join('\n')}`);
      const statuses = await Promise.all(nodes.map(statusOf));
      const l = statuses.findIndex((s) => s?.role === 'leader');
      if (l >= 0 && statuses.every((s) => s !== undefined && (s.appliedIndex ?? 0) >= index && s.appliedIndex === statuses[l]!.commitIndex)) {
        leader = nodes[l]!;
        break;
      }
      await sleep(100);
    }
    console.log(`nodes up, leader node ${leader.id}, every node applied index ≥ ${index}, in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    {
      const base = new URL(leader.url);
      const conn = new RawConnection(base.hostname, Number(base.port));
      const answer = await conn.exchange(rawRequest(base.host, 'GET', '/v1/kv?prefix=user%2F&count-only=true', '', undefined));
      conn.close();
      const count = answer.status === 200 ? (JSON.parse(answer.body!.toString()) as { count: number }).count : -1;
      if (count !== total) throw new Error(`the restored cluster counts ${count} keys under user/ (HTTP ${answer.status}), not ${total}`);
      console.log(`GET /v1/kv?prefix=user/&count-only=true on the leader: ${count} keys`);
    }

    // 4. The load.
    const checks = new PageChecks();
    let seed = 0x9e3779b9;
    const random = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const load = async (targets: readonly KvNodeProcess[], stale: boolean, concurrency: number): Promise<Cell> => {
      const latencies: number[] = [];
      let errors = 0;
      let firstError: string | undefined;
      const t0 = performance.now();
      const measureFrom = t0 + options.warmupSeconds * 1000;
      const end = measureFrom + options.seconds * 1000;
      const worker = async (w: number): Promise<void> => {
        const base = new URL(targets[w % targets.length]!.url);
        let conn: RawConnection | null = null;
        let n = 0;
        while (performance.now() < end) {
          const group = pad(random(fullGroups), width);
          const prefix = `user/${group}/`;
          const request = rawRequest(base.host, 'GET', `/v1/kv?prefix=${encodeURIComponent(prefix)}&limit=100${stale ? '&stale=true' : ''}`, '', undefined);
          const begin = performance.now();
          try {
            conn ??= new RawConnection(base.hostname, Number(base.port));
            const answer = await conn.exchange(request);
            const finished = performance.now();
            if (answer.status !== 200) {
              errors++;
              firstError ??= `HTTP ${answer.status}: ${answer.body?.toString().slice(0, 200)}`;
              await sleep(10);
              continue;
            }
            if (begin >= measureFrom && finished <= end) latencies.push(finished - begin);
            // The check, outside the timed span.
            const body = answer.body!;
            checks.checked++;
            const tail = body.toString('latin1', Math.max(0, body.length - 200));
            if (!/"count":100,"more":false,/.test(tail)) checks.fail(`${prefix}: ${tail.slice(-120)}`);
            if (n++ % 16 === 0) {
              checks.parsedWhole++;
              const page = JSON.parse(body.toString()) as { kvs: { key: string; value: string }[]; count: number };
              const distinct = new Set(page.kvs.map((kv) => kv.key));
              if (page.kvs.length !== 100 || distinct.size !== 100 || page.kvs.some((kv) => !kv.key.startsWith(prefix) || kv.value.length !== VALUE_BYTES)) {
                checks.fail(`${prefix}: ${page.kvs.length} kvs, ${distinct.size} distinct, first ${page.kvs[0]?.key}`);
              }
            }
          } catch (error) {
            errors++;
            firstError ??= (error as Error).message;
            (conn as RawConnection | null)?.close();
            conn = null;
            await sleep(10);
          }
        }
        (conn as RawConnection | null)?.close();
      };
      await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
      if (firstError !== undefined) console.log(`    (${errors} errors, first: ${firstError})`);
      const sorted = Float64Array.from(latencies).sort();
      return { opsPerSecond: latencies.length / options.seconds, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), errors };
    };

    const rows: string[][] = [['op', 'served by', 'concurrency', 'ops/s', 'p50 ms', 'p99 ms', 'errors', 'runs (ops/s)']];
    const cases: { name: string; servedBy: string; stale: boolean; concurrency: number; spread: boolean }[] = [
      { name: 'range 100 (linearizable)', servedBy: 'leader', stale: false, concurrency: 1, spread: false },
      { name: 'range 100 (linearizable)', servedBy: 'leader', stale: false, concurrency: 16, spread: false },
      { name: 'range 100 (stale=true)', servedBy: 'leader', stale: true, concurrency: 1, spread: false },
      { name: 'range 100 (stale=true)', servedBy: 'leader', stale: true, concurrency: 16, spread: false },
      { name: 'range 100 (stale=true)', servedBy: 'all 3 nodes', stale: true, concurrency: 16, spread: true },
    ];
    for (const c of cases) {
      const perRun: Cell[] = [];
      for (let r = 0; r < options.runs; r++) {
        const statuses = await Promise.all(nodes.map(statusOf));
        const l = statuses.findIndex((s) => s?.role === 'leader');
        const current = l >= 0 ? nodes[l]! : leader;
        const cell = await load(c.spread ? nodes : [current], c.stale, c.concurrency);
        perRun.push(cell);
        console.log(`  ${c.name} ${c.servedBy} c=${c.concurrency} run ${r + 1}: ${Math.round(cell.opsPerSecond)} ops/s, p50 ${cell.p50Ms.toFixed(2)} ms, p99 ${cell.p99Ms.toFixed(2)} ms` + (cell.errors > 0 ? `, ${cell.errors} errors` : ''));
      }
      rows.push([
        c.name,
        c.servedBy,
        String(c.concurrency),
        String(Math.round(median(perRun.map((x) => x.opsPerSecond)))),
        median(perRun.map((x) => x.p50Ms)).toFixed(2),
        median(perRun.map((x) => x.p99Ms)).toFixed(2),
        String(perRun.reduce((n, x) => n + x.errors, 0)),
        perRun.map((x) => Math.round(x.opsPerSecond)).join(' / '),
      ]);
    }
    console.log('');
    console.log(`range reads, ${total} keys, pages of 100 keys (${options.runs} runs × ${options.seconds} s + ${options.warmupSeconds} s warmup per cell, median reported):`);
    console.log(formatTable(rows, new Set([2, 3, 4, 5, 6])));
    console.log(`pages checked: ${checks.checked} (every one "count":100 with no more; ${checks.parsedWhole} parsed whole: 100 distinct keys under the prefix), failures: ${checks.failures}`);
    console.log(`range part: ${((performance.now() - started) / 1000).toFixed(0)} s in all`);
    if (checks.failures > 0) {
      console.error(`!!! RANGE CHECK FAILED: ${checks.failures} pages were not 100 keys under their prefix; first: ${checks.examples.join(' | ')}`);
      return false;
    }
    return true;
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    liveRoots.delete(root);
  }
}
