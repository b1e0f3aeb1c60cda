/**
 * Probes of `tsraft node` processes for the benches (bench/large-state.ts): memory from /proc and
 * /metrics, the newest snapshot file of a data directory, and a node that joins a running cluster.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KvNodeProcess } from '../src/testing/process-cluster.js';
import { freeLoopbackPorts } from '../src/testing/ports.js';
import { metricValue, parseVmRss } from './sustained.js';

const HOST = '127.0.0.1';

/** A node's memory; undefined where it could not be read (the process gone, /metrics not answering). */
export interface Memory {
  rss?: number | undefined;
  hwm?: number | undefined;
  heapUsed?: number | undefined;
  heapTotal?: number | undefined;
  external?: number | undefined;
  metricsRss?: number | undefined;
  snapshotsTaken?: number | undefined;
}

/** VmRSS and VmHWM (the peak RSS over the process's life) from /proc/<pid>/status. */
export function procMemory(pid: number | undefined): { rss?: number | undefined; hwm?: number | undefined } {
  if (pid === undefined) return {};
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'latin1');
    const hwm = /^VmHWM:\s*(\d+)\s*kB/m.exec(text);
    return { rss: parseVmRss(text), hwm: hwm === null ? undefined : Number(hwm[1]) * 1024 };
  } catch {
    return {};
  }
}

/** procMemory, with the V8 heap and the snapshots taken as the node reports them on /metrics. */
export async function memoryOf(node: KvNodeProcess): Promise<Memory> {
  const proc = procMemory(node.pid);
  let text: string | undefined;
  try {
    const response = await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(5_000) });
    text = response.ok ? await response.text() : undefined;
  } catch {
    text = undefined;
  }
  const m = (name: string): number | undefined => (text === undefined ? undefined : metricValue(text, name));
  return {
    ...proc,
    heapUsed: m('tsraft_heap_used_bytes'),
    heapTotal: m('tsraft_heap_total_bytes'),
    external: m('tsraft_external_memory_bytes'),
    metricsRss: m('tsraft_process_resident_memory_bytes'),
    snapshotsTaken: m('tsraft_snapshots_taken_total'),
  };
}

/** The newest snapshot file (`snap-<index>.snap`, wal-format.ts) under `dir`: its index and size. */
export function latestSnapshot(dir: string): { index: number; bytes: number } | undefined {
  let best: { index: number; bytes: number } | undefined;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return undefined;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    const found = e.isDirectory() ? latestSnapshot(path) : /^snap-(\d{16})\.snap$/.test(e.name) ? { index: Number(e.name.slice(5, 21)), bytes: statSafe(path) } : undefined;
    if (found !== undefined && (best === undefined || found.index > best.index)) best = found;
  }
  return best;
}

function statSafe(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/**
 * A `tsraft node --join via` process on free loopback ports with an empty data directory `dir`,
 * not yet started (as MembershipCluster.join starts one): it adds itself as a learner, then
 * promotes itself once caught up. Its output is kept (KvNodeProcess.output), not printed.
 */
export async function joiningNode(id: number, via: string, dir: string, extraArgs: readonly string[] = []): Promise<KvNodeProcess> {
  const [raftPort, httpPort] = await freeLoopbackPorts(2);
  const args = ['node', '--id', String(id), '--join', via, '--join-timeout', '20000', '--listen', `${HOST}:${raftPort}`, '--http', `${HOST}:${httpPort}`, '--data-dir', dir, ...extraArgs];
  return new KvNodeProcess({ id, raftHost: HOST, raftPort: raftPort!, httpUrl: `http://${HOST}:${httpPort!}` }, dir, args, undefined);
}
