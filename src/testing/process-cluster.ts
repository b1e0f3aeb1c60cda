/**
 * Clusters of OS processes on 127.0.0.1, each in a temporary directory, for tests, scripts and
 * benchmarks. Two kinds, for two jobs:
 *
 * - KvProcessCluster: `tsraft node` processes, the KV service with its HTTP API, for the chaos run
 *   (test/chaos/chaos-run.ts, scripts/chaos.ts) and the KV benchmark (bench/kv.ts): start, kill -9,
 *   restart, pause (SIGSTOP) and resume (SIGCONT) single nodes, read every node's /v1/status, stop
 *   everything. Each node is `main.js node ...` forked with an IPC channel, so a node stops by itself
 *   if this process goes away. The last lines of each node's output are kept for diagnostics.
 *
 * - RaftProcessCluster: bare RaftNodes (raft-process.ts: FileStorage, TcpTransport, a state machine
 *   that lists the applied commands) driven over IPC, with a load generator that kill -9s nodes and
 *   the check that every acknowledged entry is on every node in the same order. Used by the short
 *   process test in `npm test` (test/process/kill9.test.ts) and by `npm run soak:process`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { formatPeers, sleep, type PeerSpec } from '../cli/common.js';
import { devCertificateFiles, ensureDevCertificates } from '../cli/start.js';
import type { NodeStatusJson } from '../cli/status.js';
import { clusterHttp, type ClusterHttp } from '../kv/client-http.js';
import { freeLoopbackPorts } from './ports.js';

const TSRAFT_MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const RAFT_PROCESS_ENTRY = fileURLToPath(new URL('./raft-process.js', import.meta.url));
const HOST = '127.0.0.1';
const OUTPUT_LINES_KEPT = 200;

// ---- KvProcessCluster: `tsraft node` processes

/** Every `tsraft node` process started here and not yet exited, for killAllNodeProcesses. */
const liveChildren = new Set<ChildProcess>();

/**
 * SIGKILLs every `tsraft node` process this process started (a paused one too: SIGKILL ends a
 * stopped process). Synchronous, for signal handlers and 'exit'. Runs by itself when this process
 * exits.
 */
export function killAllNodeProcesses(): void {
  for (const child of liveChildren) child.kill('SIGKILL');
  liveChildren.clear();
}

/** Data directories of KV clusters not yet stopped, for abortAllClusters. */
const liveRoots = new Set<string>();

/**
 * For a signal handler: SIGKILLs every `tsraft node` process and removes the KV clusters' data
 * directories.
 */
export function abortAllClusters(): void {
  killAllNodeProcesses();
  for (const root of liveRoots) rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  liveRoots.clear();
}
process.once('exit', killAllNodeProcesses);

export interface KvProcessClusterOptions {
  readonly size: number;
  /** fsync the write-ahead log (default true). */
  readonly fsync?: boolean;
  /** Extra arguments for every `tsraft node` (e.g. timing options). */
  readonly nodeArgs?: readonly string[];
  /** Called with every output line of every node (default: kept, not printed). */
  readonly onOutput?: (id: number, line: string) => void;
  /** Directory prefix for the temporary data directory. */
  readonly tmpPrefix?: string;
  /**
   * Peers over mutual TLS and the HTTP API over HTTPS, with a CA and node certificates made in
   * `<root>/tls` as `tsraft start --tls` makes them (`caFile` names the CA for clients).
   */
  readonly tls?: boolean;
  /**
   * Node.js options for every node process (e.g. `--cpu-prof`), after this process's own
   * process.execArgv (which fork passes on by default).
   */
  readonly execArgv?: readonly string[];
}

/** One `tsraft node` process of a KvProcessCluster. */
export class KvNodeProcess {
  child: ChildProcess | null = null;
  paused = false;
  readonly output: string[] = [];
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly spec: PeerSpec,
    readonly dir: string,
    private readonly args: readonly string[],
    private readonly onOutput: ((id: number, line: string) => void) | undefined,
    /** How /v1/status is fetched (with the cluster's CA when it serves HTTPS). */
    private readonly http: ClusterHttp = clusterHttp(),
    /** Node.js options added to process.execArgv for this node's process. */
    private readonly execArgv: readonly string[] = [],
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
    const child = fork(TSRAFT_MAIN, [...this.args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      ...(this.execArgv.length > 0 ? { execArgv: [...process.execArgv, ...this.execArgv] } : {}),
    });
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
    await terminate(child, this.exited, graceMs);
  }

  /** This node's /v1/status, or undefined if it does not answer within `timeoutMs`. */
  async status(timeoutMs = 500): Promise<NodeStatusJson | undefined> {
    if (this.child === null || this.paused) return undefined;
    try {
      const response = await this.http.fetch(`${this.url}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
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

/** A cluster of `tsraft node` processes (the KV service with its HTTP API) in a temporary directory. */
export class KvProcessCluster {
  readonly nodes: KvNodeProcess[];
  readonly root: string;
  readonly peers: readonly PeerSpec[];
  /** With `tls`: the CA certificate (PEM file) the nodes' certificates are signed by. */
  readonly caFile: string | undefined;
  private readonly http: ClusterHttp;

  private constructor(options: KvProcessClusterOptions, ports: number[], root: string) {
    this.root = root;
    const size = options.size;
    const tlsDir = join(root, 'tls');
    this.caFile = options.tls === true ? devCertificateFiles(tlsDir, 0).ca : undefined;
    this.http = clusterHttp(this.caFile === undefined ? {} : { tls: { ca: readFileSync(this.caFile) } });
    this.peers = Array.from({ length: size }, (_, i) => ({
      id: i,
      raftHost: HOST,
      raftPort: ports[i]!,
      httpUrl: `${options.tls === true ? 'https' : 'http'}://${HOST}:${ports[size + i]!}`,
    }));
    const peerList = formatPeers(this.peers);
    this.nodes = this.peers.map((spec) => {
      const dir = join(this.root, `node-${spec.id}`);
      const files = devCertificateFiles(tlsDir, spec.id);
      const tlsArgs = options.tls === true ? ['--peer-ca', files.ca, '--peer-cert', files.cert, '--peer-key', files.key, '--http-cert', files.cert, '--http-key', files.key] : [];
      const args = ['node', '--id', String(spec.id), '--peers', peerList, '--data-dir', dir, ...(options.fsync === false ? ['--no-fsync'] : []), ...tlsArgs, ...(options.nodeArgs ?? [])];
      return new KvNodeProcess(spec, dir, args, options.onOutput, this.http, options.execArgv ?? []);
    });
  }

  /** Starts `size` nodes on free ports and waits (up to `leaderTimeoutMs`) for a leader. */
  static async start(options: KvProcessClusterOptions, leaderTimeoutMs = 20_000): Promise<KvProcessCluster> {
    const root = mkdtempSync(join(tmpdir(), options.tmpPrefix ?? 'tsraft-nodes-'));
    liveRoots.add(root);
    if (options.tls === true) await ensureDevCertificates(join(root, 'tls'), 'tsraft', Array.from({ length: options.size }, (_, i) => i));
    const cluster = new KvProcessCluster(options, await freeLoopbackPorts(options.size * 2), root);
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
  async leader(timeoutMs = 500): Promise<KvNodeProcess | undefined> {
    const statuses = await this.statuses(timeoutMs);
    let best: { node: KvNodeProcess; term: number } | undefined;
    statuses.forEach((s, i) => {
      if (s?.role === 'leader' && typeof s.term === 'number' && (best === undefined || s.term > best.term)) best = { node: this.nodes[i]!, term: s.term };
    });
    return best?.node;
  }

  async waitForLeader(timeoutMs: number): Promise<KvNodeProcess> {
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
    await this.http.close();
    liveRoots.delete(this.root);
    if (!keepData) rmSync(this.root, { recursive: true, force: true });
  }
}

// ---- RaftProcessCluster: raft-process.ts processes

type Reply = { op: string; id?: number; [key: string]: unknown };

/** One raft-process.ts child of a RaftProcessCluster, spoken to over its IPC channel. */
export class RaftNodeProcess {
  child: ChildProcess | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: Reply) => void>();
  private readonly waitingOp = new Map<string, ((reply: Reply) => void)[]>();

  constructor(
    readonly id: number,
    private readonly ports: number[],
    readonly dir: string,
  ) {}

  async start(): Promise<void> {
    const child = fork(RAFT_PROCESS_ENTRY, [String(this.id), this.ports.join(','), this.dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child = child;
    child.on('message', (reply: Reply) => {
      if (reply.op === 'proposed' && reply.id !== undefined) {
        this.waiting.get(reply.id)?.(reply);
        this.waiting.delete(reply.id);
        return;
      }
      this.waitingOp.get(reply.op)?.shift()?.(reply);
    });
    child.on('exit', () => {
      if (this.child === child) this.child = null;
      for (const resolve of this.waiting.values()) resolve({ op: 'proposed', error: 'ProcessDied' });
      this.waiting.clear();
      for (const queue of this.waitingOp.values()) for (const resolve of queue.splice(0)) resolve({ op: 'dead' });
    });
    await this.ask({ op: 'ready-wait' }, 'ready');
  }

  get alive(): boolean {
    return this.child !== null;
  }

  /** Sends a request and waits for the reply of `op` (the IPC channel keeps order per op). */
  ask(request: Record<string, unknown>, op: string): Promise<Reply> {
    return new Promise((resolve) => {
      if (this.child === null) {
        resolve({ op: 'dead' });
        return;
      }
      const queue = this.waitingOp.get(op) ?? [];
      queue.push(resolve);
      this.waitingOp.set(op, queue);
      if (request.op !== 'ready-wait') this.child.send(request);
    });
  }

  propose(command: string): Promise<Reply> {
    return new Promise((resolve) => {
      if (this.child === null) {
        resolve({ op: 'proposed', error: 'ProcessDied' });
        return;
      }
      const id = this.nextId++;
      this.waiting.set(id, resolve);
      this.child.send({ op: 'propose', id, command });
    });
  }

  kill9(): void {
    this.child?.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
}

export interface LoadReport {
  readonly acknowledged: number;
  readonly kills: number;
  readonly maxIndex: number;
  readonly problems: string[];
}

/**
 * A cluster of raft-process.ts children in a temporary directory, with a load generator that kills
 * nodes while proposing and the check of every node's applied log afterwards.
 */
export class RaftProcessCluster {
  readonly nodes: RaftNodeProcess[];
  private readonly root: string;

  private constructor(ports: number[], root: string) {
    this.root = root;
    this.nodes = ports.map((_, i) => new RaftNodeProcess(i, ports, join(root, `node-${i}`)));
  }

  static async start(size: number): Promise<RaftProcessCluster> {
    const cluster = new RaftProcessCluster(await freeLoopbackPorts(size), mkdtempSync(join(tmpdir(), 'tsraft-process-')));
    await Promise.all(cluster.nodes.map((n) => n.start()));
    return cluster;
  }

  async leader(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const node of this.nodes) {
        const reply = await node.ask({ op: 'status' }, 'status');
        const status = reply.status as { role?: string } | undefined;
        if (status?.role === 'leader') return node.id;
      }
      await sleep(50);
    }
    throw new Error(`no leader within ${timeoutMs} ms`);
  }

  /**
   * Proposes from `concurrency` clients for `seconds`, kill -9-ing a node (the leader every other
   * time) every `killEveryMs` and restarting it `downMs` later, then waits for every node to apply
   * everything acknowledged and checks the logs.
   */
  async runLoad(options: { seconds: number; concurrency: number; killEveryMs: number; downMs: number }): Promise<LoadReport> {
    const acknowledged = new Map<number, string>();
    const problems: string[] = [];
    let believedLeader = await this.leader();
    let counter = 0;
    const end = Date.now() + options.seconds * 1000;
    const client = async (): Promise<void> => {
      while (Date.now() < end) {
        const command = `cmd-${counter++}`;
        const target = this.nodes[believedLeader]!;
        const reply = await target.propose(command);
        if (typeof reply.index === 'number') {
          const existing = acknowledged.get(reply.index);
          if (existing !== undefined) problems.push(`index ${reply.index} acknowledged twice: ${existing} and ${command}`);
          acknowledged.set(reply.index, command);
        } else if (typeof reply.leaderId === 'number') {
          believedLeader = reply.leaderId;
        } else {
          await sleep(20);
          believedLeader = (believedLeader + 1) % this.nodes.length;
        }
      }
    };
    let kills = 0;
    const chaos = async (): Promise<void> => {
      while (Date.now() + options.killEveryMs < end) {
        await sleep(options.killEveryMs);
        const victim = kills % 2 === 0 ? believedLeader : (believedLeader + 1 + (kills % (this.nodes.length - 1))) % this.nodes.length;
        this.nodes[victim]!.kill9();
        kills++;
        await sleep(options.downMs);
        await this.nodes[victim]!.start();
      }
    };
    await Promise.all([chaos(), ...Array.from({ length: options.concurrency }, () => client())]);
    const maxIndex = Math.max(0, ...acknowledged.keys());
    problems.push(...(await this.verify(acknowledged, maxIndex)));
    return { acknowledged: acknowledged.size, kills, maxIndex, problems };
  }

  /** Every acknowledged entry is applied on every node at its index; all logs agree. */
  private async verify(acknowledged: Map<number, string>, maxIndex: number): Promise<string[]> {
    const deadline = Date.now() + 20_000;
    let logs: Map<number, string>[] = [];
    for (;;) {
      logs = [];
      for (const node of this.nodes) {
        const reply = await node.ask({ op: 'log', from: 1 }, 'log');
        logs.push(new Map((reply.entries as [number, string][] | undefined) ?? []));
      }
      if (logs.every((log) => log.size >= maxIndex) || Date.now() > deadline) break;
      await sleep(100);
    }
    const problems: string[] = [];
    logs.forEach((log, node) => {
      if (log.size < maxIndex) problems.push(`node ${node} applied only ${log.size} of ${maxIndex} entries`);
      for (let index = 1; index <= log.size; index++) {
        if (!log.has(index)) problems.push(`node ${node} has a gap at index ${index}`);
      }
    });
    for (const [index, command] of acknowledged) {
      logs.forEach((log, node) => {
        if (log.get(index) !== command) problems.push(`node ${node} has ${log.get(index) ?? 'nothing'} at index ${index}, acknowledged ${command}`);
      });
    }
    const first = logs[0]!;
    logs.forEach((log, node) => {
      for (const [index, command] of log) {
        if (first.has(index) && first.get(index) !== command) problems.push(`nodes 0 and ${node} disagree at index ${index}`);
      }
    });
    return problems.slice(0, 20);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** SIGTERM, then SIGKILL if the child has not exited (`exited` settled) within `graceMs`. */
export async function terminate(child: { kill(signal: NodeJS.Signals): boolean }, exited: Promise<unknown>, graceMs: number): Promise<void> {
  child.kill('SIGTERM');
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)))]);
  clearTimeout(timer);
  if (timedOut) {
    child.kill('SIGKILL');
    await exited;
  }
}
