/**
 * A cluster of `tsraft node` OS processes on 127.0.0.1 in a temporary directory, for the chaos run
 * (test/chaos/chaos-run.ts) and the KV benchmark (bench/kv.ts): start, kill -9, restart, pause
 * (SIGSTOP) and resume (SIGCONT) single nodes, read every node's /v1/status, stop everything.
 *
 * Each node is `main.js node ...` forked with an IPC channel, so a node stops by itself if this
 * process goes away. The last lines of each node's output are kept for diagnostics.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { formatPeers, sleep, type PeerSpec } from './common.js';
import type { NodeStatusJson } from './status.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const HOST = '127.0.0.1';
const OUTPUT_LINES_KEPT = 200;

/** `count` ports that were free a moment ago on 127.0.0.1 (all distinct). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen({ host: HOST, port: 0 }, () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as { port: number }).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** Every node process started here and not yet exited, for killAllNodeProcesses. */
const liveChildren = new Set<ChildProcess>();

/**
 * SIGKILLs every node process this process started (a paused one too: SIGKILL ends a stopped
 * process). Synchronous, for signal handlers and 'exit'. Runs by itself when this process exits.
 */
export function killAllNodeProcesses(): void {
  for (const child of liveChildren) child.kill('SIGKILL');
  liveChildren.clear();
}

/** Data directories of clusters not yet stopped, for abortAllClusters. */
const liveRoots = new Set<string>();

/** For a signal handler: SIGKILLs every node process and removes the clusters' data directories. */
export function abortAllClusters(): void {
  killAllNodeProcesses();
  for (const root of liveRoots) rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  liveRoots.clear();
}
process.once('exit', killAllNodeProcesses);

export interface ProcessClusterOptions {
  readonly size: number;
  /** fsync the write-ahead log (default true). */
  readonly fsync?: boolean;
  /** Extra arguments for every `tsraft node` (e.g. timing options). */
  readonly nodeArgs?: readonly string[];
  /** Called with every output line of every node (default: kept, not printed). */
  readonly onOutput?: (id: number, line: string) => void;
  /** Directory prefix for the temporary data directory. */
  readonly tmpPrefix?: string;
}

export class ClusterNode {
  child: ChildProcess | null = null;
  paused = false;
  readonly output: string[] = [];
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly spec: PeerSpec,
    readonly dir: string,
    private readonly args: readonly string[],
    private readonly onOutput: ((id: number, line: string) => void) | undefined,
  ) {}

  get id(): number {
    return this.spec.id;
  }
  get url(): string {
    return this.spec.httpUrl;
  }
  get alive(): boolean {
    return this.child !== null;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    if (this.child !== null) throw new Error(`node ${this.id} is already running`);
    const child = fork(MAIN, [...this.args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    this.child = child;
    liveChildren.add(child);
    this.paused = false;
    for (const stream of [child.stdout, child.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        this.output.push(line);
        if (this.output.length > OUTPUT_LINES_KEPT) this.output.shift();
        this.onOutput?.(this.id, line);
      });
    }
    child.on('error', () => undefined);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        liveChildren.delete(child);
        if (this.child === child) this.child = null;
        this.output.push(`<exited: ${signal ?? `code ${code ?? '?'}`}>`);
        resolve();
      }),
    );
  }

  /** kill -9; resolves once the process is gone. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    child.kill('SIGKILL');
    await this.exited;
    this.paused = false;
  }

  pause(): void {
    if (this.child !== null && !this.paused) {
      this.child.kill('SIGSTOP');
      this.paused = true;
    }
  }

  resume(): void {
    if (this.child !== null && this.paused) {
      this.child.kill('SIGCONT');
      this.paused = false;
    }
  }

  /** SIGTERM (after SIGCONT if paused), SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    const child = this.child;
    if (child === null) return;
    this.resume();
    child.kill('SIGTERM');
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([this.exited.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)))]);
    clearTimeout(timer);
    if (timedOut) {
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  /** This node's /v1/status, or undefined if it does not answer within `timeoutMs`. */
  async status(timeoutMs = 500): Promise<NodeStatusJson | undefined> {
    if (this.child === null || this.paused) return undefined;
    try {
      const response = await fetch(`${this.url}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!response.ok) {
        await response.body?.cancel();
        return undefined;
      }
      return (await response.json()) as NodeStatusJson;
    } catch {
      return undefined;
    }
  }
}

export class ProcessCluster {
  readonly nodes: ClusterNode[];
  readonly root: string;
  readonly peers: readonly PeerSpec[];

  private constructor(options: ProcessClusterOptions, ports: number[]) {
    this.root = mkdtempSync(join(tmpdir(), options.tmpPrefix ?? 'tsraft-nodes-'));
    liveRoots.add(this.root);
    const size = options.size;
    this.peers = Array.from({ length: size }, (_, i) => ({
      id: i,
      raftHost: HOST,
      raftPort: ports[i]!,
      httpUrl: `http://${HOST}:${ports[size + i]!}`,
    }));
    const peerList = formatPeers(this.peers);
    this.nodes = this.peers.map((spec) => {
      const dir = join(this.root, `node-${spec.id}`);
      const args = ['node', '--id', String(spec.id), '--peers', peerList, '--data-dir', dir, ...(options.fsync === false ? ['--no-fsync'] : []), ...(options.nodeArgs ?? [])];
      return new ClusterNode(spec, dir, args, options.onOutput);
    });
  }

  /** Starts `size` nodes on free ports and waits (up to `leaderTimeoutMs`) for a leader. */
  static async start(options: ProcessClusterOptions, leaderTimeoutMs = 20_000): Promise<ProcessCluster> {
    const cluster = new ProcessCluster(options, await freePorts(options.size * 2));
    try {
      for (const node of cluster.nodes) node.start();
      await cluster.waitForLeader(leaderTimeoutMs);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  get endpoints(): string[] {
    return this.nodes.map((n) => n.url);
  }

  async statuses(timeoutMs = 500): Promise<(NodeStatusJson | undefined)[]> {
    return Promise.all(this.nodes.map((n) => n.status(timeoutMs)));
  }

  /** The leader with the highest term among the nodes that answer, if any. */
  async leader(timeoutMs = 500): Promise<ClusterNode | undefined> {
    const statuses = await this.statuses(timeoutMs);
    let best: { node: ClusterNode; term: number } | undefined;
    statuses.forEach((s, i) => {
      if (s?.role === 'leader' && typeof s.term === 'number' && (best === undefined || s.term > best.term)) best = { node: this.nodes[i]!, term: s.term };
    });
    return best?.node;
  }

  async waitForLeader(timeoutMs: number): Promise<ClusterNode> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const leader = await this.leader();
      if (leader !== undefined) return leader;
      await sleep(50);
    }
    throw new Error(`no leader within ${timeoutMs} ms\n${this.describeOutput()}`);
  }

  /**
   * Waits until every node answers, one of them is leader, and every node has applied the leader's
   * commit index (read after the others). Resolves to the common applied index, or throws.
   */
  async waitForConvergence(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const statuses = await this.statuses(1000);
      const leader = statuses.find((s) => s?.role === 'leader');
      if (statuses.every((s) => s !== undefined) && leader?.commitIndex !== undefined) {
        const target = leader.commitIndex;
        if (statuses.every((s) => s!.appliedIndex === target && s!.commitIndex === target)) return target;
      }
      last = statuses.map((s, i) => (s === undefined ? `${i}:down` : `${i}:${s.role} t${s.term} c${s.commitIndex} a${s.appliedIndex}`)).join(' ');
      await sleep(100);
    }
    throw new Error(`the nodes did not converge within ${timeoutMs} ms (last: ${last})`);
  }

  describeOutput(lines = 20): string {
    return this.nodes.map((n) => `--- node ${n.id} (last ${lines} lines)\n${n.output.slice(-lines).join('\n')}`).join('\n');
  }

  /** Stops every node (SIGCONT first if paused) and removes the data directory. */
  async stop(keepData = false): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
    liveRoots.delete(this.root);
    if (!keepData) rmSync(this.root, { recursive: true, force: true });
  }
}
