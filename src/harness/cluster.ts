import { DEFAULT_TIMING } from '../core/config.js';
import type { Entry, Message, Snapshot } from '../core/messages.js';
import { messageSize } from '../codec/index.js';
import { Network, type NetworkObserver, type RpcServer } from '../sim/network.js';
import { Persister } from '../sim/persister.js';
import { Prng } from '../sim/prng.js';
import type { Scheduler } from '../sim/scheduler.js';
import { SimNode, type SimTiming } from '../sim/sim-node.js';
import { RuntimeServer, type HarnessServer } from './runtime-server.js';
import { decodeCommand, describeCommand, encodeCommand, type Command } from './command.js';
import { snapshotBodyBytes } from '../core/snapshot-body.js';

/** The tester's election timeout constant (6.824 `RaftElectionTimeout`), used by the tests' sleeps. */
export const ELECTION_TIMEOUT_MS = 1000;
const TEST_TIME_LIMIT_MS = 120_000;
/** The snapshot applier snapshots after every index i with (i + 1) % SNAPSHOT_INTERVAL === 0. */
const SNAPSHOT_INTERVAL = 10;

export const DEFAULT_SIM_TIMING: SimTiming = { tickMs: 10, ...DEFAULT_TIMING };

/** A test failed: the equivalent of Go's t.Fatalf. */
export class TestFailure extends Error {
  override readonly name = 'TestFailure';
}

/** What `end()` prints for a passing test, kept for the suite table. */
export interface TestFigures {
  readonly title: string;
  readonly seconds: number;
  readonly peers: number;
  readonly rpcs: number;
  readonly bytes: number;
  readonly commands: number;
}

/**
 * A replicated service run on every server in place of the apply checker (the kvraft harness,
 * src/harness/kv-cluster.ts); see `attachService`.
 */
export interface ClusterService {
  /** start1(i) calls this before it makes server i's node, with the persister the node starts from. */
  startReplica(i: number, persister: Persister): ServiceReplica;
  /** Encoded size of one of the service's own RPC requests or replies; undefined for a Raft message. */
  rpcSize(message: unknown): number | undefined;
}

/** One server's instance of a ClusterService. */
export interface ServiceReplica {
  apply(entry: Entry): void;
  applySnapshot(snapshot: Snapshot): void;
  /** Given the server's new node: what to register as the server on the network (serving both). */
  serve(node: HarnessServer): RpcServer<Message, Message>;
}

export interface ClusterOptions {
  readonly n: number;
  readonly unreliable: boolean;
  /**
   * Use the snapshot applier (6.824 2D): every server snapshots after each index i with
   * (i + 1) % 10 === 0, and apply order is checked strictly (no gaps, no repeats).
   */
  readonly snapshot?: boolean;
  readonly scheduler: Scheduler;
  readonly seed: number;
  /**
   * Which driver runs each server: `sim` (SimNode, ticked by the scheduler) or `runtime` (the real
   * RaftNode with its own timers; only meaningful on a real-time scheduler). Default `sim`.
   */
  readonly driver?: 'sim' | 'runtime';
  readonly timing?: SimTiming;
  /** Where begin/end lines and warnings go; console.log by default. */
  readonly log?: (line: string) => void;
  /** Receives the figures of every passing begin/end pair. */
  readonly onFigures?: (figures: TestFigures) => void;
  /** Receives a line per message and per change of a node's role, term or commit (debugging). */
  readonly trace?: ((line: string) => void) | undefined;
  /** Sees the run as it happens (src/sim/replay/record-suite.ts); it must not change the run. */
  readonly recorder?: ClusterRecorder | undefined;
}

/** An observer of a Cluster's run (recordings for the replay page). Every call is a read. */
export interface ClusterRecorder {
  /** Given to the cluster's network. */
  readonly network?: NetworkObserver<Message, Message>;
  /** Called in the Cluster's constructor, before any server starts. */
  attach(cluster: Cluster): void;
  /** Server i's new instance runs (start1). */
  started(i: number, server: HarnessServer): void;
  /** Server i was shut down (crash1), or was connected or disconnected. */
  crashed(i: number): void;
  connectionChanged(i: number): void;
  /** After every Ready a SimNode handled. */
  observed(node: SimNode): void;
}

/**
 * The equivalent of 6.824's `config.go`: n simulated servers on a labrpc-style network, the apply
 * checkers that compare what every server applied, and the helpers tests are written with
 * (checkOneLeader, one, nCommitted, ...). Every method that waits is async and sleeps on the
 * cluster's scheduler, so the same test runs in virtual or real time.
 */
export class Cluster {
  readonly n: number;
  readonly scheduler: Scheduler;
  readonly net: Network<Message, Message>;
  /** rafts[i] is server i's live instance, or null while it is crashed. */
  readonly rafts: (HarnessServer | null)[];
  readonly connected: boolean[];
  /** logs[i] maps index to the command server i applied there; it survives crashes. */
  logs: Map<number, Command>[];
  /** Snapshot mode: the last index each server applied (2022+ harness `lastApplied`). */
  readonly lastApplied: number[];
  readonly snapshotMode: boolean;
  private readonly saved: (Persister | null)[];
  private readonly endNames: string[][];
  private readonly prng: Prng;
  private readonly nodeRandom: Prng;
  private readonly timing: SimTiming;
  private readonly driver: 'sim' | 'runtime';
  private readonly log: (line: string) => void;
  private readonly onFigures: ((figures: TestFigures) => void) | undefined;
  private readonly trace: ((line: string) => void) | undefined;
  private readonly createdAt: number;
  private endNameCounter = 0;
  private maxIndex = 0;
  private maxIndexAtBegin = 0;
  private title = '';
  private beganAt = 0;
  private rpcsAtBegin = 0;
  private bytesAtBegin = 0;
  private finished = false;
  private backgroundFailure: unknown = undefined;
  private service: ClusterService | null = null;
  private readonly recorder: ClusterRecorder | undefined;

  constructor(options: ClusterOptions) {
    this.n = options.n;
    this.scheduler = options.scheduler;
    this.timing = options.timing ?? DEFAULT_SIM_TIMING;
    this.driver = options.driver ?? 'sim';
    if (this.driver === 'runtime' && this.scheduler.kind !== 'real') {
      throw new RangeError('the runtime driver uses real timers: give it a RealScheduler');
    }
    this.log = options.log ?? ((line) => console.log(line));
    this.onFigures = options.onFigures;
    this.trace = options.trace;
    this.recorder = options.recorder;
    const root = new Prng(options.seed);
    this.prng = root.fork();
    this.nodeRandom = root.fork();
    this.net = new Network<Message, Message>({
      scheduler: this.scheduler,
      prng: root.fork(),
      requestSize: (m) => this.service?.rpcSize(m) ?? messageSize(m),
      replySize: (m) => this.service?.rpcSize(m) ?? messageSize(m),
      observer: options.recorder?.network,
    });
    this.net.setReliable(!options.unreliable);
    this.net.setLongDelays(true);
    this.rafts = new Array<HarnessServer | null>(this.n).fill(null);
    this.connected = new Array<boolean>(this.n).fill(false);
    this.logs = Array.from({ length: this.n }, () => new Map<number, Command>());
    this.snapshotMode = options.snapshot ?? false;
    this.lastApplied = new Array<number>(this.n).fill(0);
    this.saved = new Array<Persister | null>(this.n).fill(null);
    this.endNames = Array.from({ length: this.n }, () => new Array<string>(this.n).fill(''));
    this.createdAt = this.scheduler.now();
    this.recorder?.attach(this);
    for (let i = 0; i < this.n; i++) this.start1(i);
    for (let i = 0; i < this.n; i++) this.connect(i);
  }

  // ------------------------------------------------------------------ time and randomness

  sleep(ms: number): Promise<void> {
    return this.scheduler.sleep(ms);
  }

  /** A uniform integer in [0, maxExclusive) from the test's own seeded stream. */
  rand(maxExclusive: number): number {
    return this.prng.nextInt(maxExclusive);
  }

  /** A random 31-bit integer command, like Go's rand.Int() in the tests but exact in JavaScript. */
  randCommand(): number {
    return this.prng.nextInt(2 ** 31);
  }

  randString(length: number): string {
    return this.prng.randomString(length);
  }

  // ------------------------------------------------------------------ servers

  /** Crashes server i if it is running, then starts a fresh instance from its saved state. */
  start1(i: number): void {
    this.crash1(i);
    const ends = [];
    for (let j = 0; j < this.n; j++) {
      const name = `end-${i}-${j}-${this.endNameCounter++}`;
      this.endNames[i]![j] = name;
      const end = this.net.makeEnd(name);
      this.net.connect(name, String(j));
      ends.push(end);
    }
    // On-sync disks: SimNode must sync before it sends, or a crash would lose what it vouched for.
    const persister = this.saved[i]?.copy() ?? new Persister('on-sync');
    this.saved[i] = persister;
    const replica = this.service?.startReplica(i, persister) ?? null;
    if (this.snapshotMode && replica === null) {
      // As a service would on restart: load the snapshot before Raft replays what follows it.
      this.lastApplied[i] = 0;
      const snapshot = persister.readSnapshot();
      if (snapshot !== null) this.ingestSnapshot(i, snapshotBodyBytes(snapshot.data), snapshot.index);
    }
    const peers = Array.from({ length: this.n }, (_, j) => j);
    const apply = (entry: Entry): void =>
      replica !== null ? replica.apply(entry) : this.snapshotMode ? this.applySnapshotMode(i, entry) : this.applyChecked(i, entry);
    const applySnapshot = (snapshot: Snapshot): void =>
      replica !== null ? replica.applySnapshot(snapshot) : this.applyIncomingSnapshot(i, snapshot);
    const random = this.nodeRandom.fork();
    const node: HarnessServer =
      this.driver === 'sim'
        ? new SimNode({ id: i, peers, scheduler: this.scheduler, persister, ends, random, timing: this.timing, apply, applySnapshot, trace: this.trace, observe: this.recorder === undefined ? undefined : (n) => this.recorder!.observed(n) })
        : new RuntimeServer({ id: i, peers, persister, ends, timing: this.timing, seed: random.nextUint32(), apply, applySnapshot });
    this.rafts[i] = node;
    this.net.addServer(String(i), replica?.serve(node) ?? node);
    this.recorder?.started(i, node);
  }

  /**
   * Runs `service` on every server instead of the apply checker (call it right after construction):
   * restarts each server so that start1 takes its apply callbacks and RPC server from the service,
   * and reconnects the servers that were connected.
   */
  attachService(service: ClusterService): void {
    this.service = service;
    for (let i = 0; i < this.n; i++) {
      const wasConnected = this.connected[i]!;
      this.start1(i);
      if (wasConnected) this.connect(i);
    }
  }

  /** Shuts server i down, keeping what it persisted; a late write by the dead instance goes nowhere. */
  crash1(i: number): void {
    this.disconnect(i);
    this.net.deleteServer(String(i));
    const saved = this.saved[i];
    if (saved !== null && saved !== undefined) this.saved[i] = saved.copy();
    const raft = this.rafts[i];
    if (raft !== null && raft !== undefined) {
      raft.kill();
      this.rafts[i] = null;
      this.recorder?.crashed(i);
    }
  }

  connect(i: number): void {
    this.trace?.(`${this.scheduler.now().toFixed(0).padStart(7)} ms  connect ${i}`);
    this.connected[i] = true;
    for (let j = 0; j < this.n; j++) {
      if (this.connected[j]) this.net.enable(this.endNames[i]![j]!, true);
    }
    for (let j = 0; j < this.n; j++) {
      if (this.connected[j]) this.net.enable(this.endNames[j]![i]!, true);
    }
    this.recorder?.connectionChanged(i);
  }

  disconnect(i: number): void {
    this.trace?.(`${this.scheduler.now().toFixed(0).padStart(7)} ms  disconnect ${i}`);
    this.connected[i] = false;
    for (let j = 0; j < this.n; j++) {
      const outgoing = this.endNames[i]![j];
      if (outgoing) this.net.enable(outgoing, false);
      const incoming = this.endNames[j]![i];
      if (incoming) this.net.enable(incoming, false);
    }
    this.recorder?.connectionChanged(i);
  }

  setUnreliable(unreliable: boolean): void {
    this.net.setReliable(!unreliable);
  }

  setLongReordering(on: boolean): void {
    this.net.setLongReordering(on);
  }

  rpcCount(i: number): number {
    return this.net.serverRpcCount(String(i));
  }

  rpcTotal(): number {
    return this.net.totalRpcCount();
  }

  bytesTotal(): number {
    return this.net.totalBytes();
  }

  /** The largest raft-state size over all servers (6.824 LogSize). */
  logSize(): number {
    let largest = 0;
    for (const persister of this.saved) largest = Math.max(largest, persister?.raftStateSize() ?? 0);
    return largest;
  }

  /** Calls Start(command) on server i, as tests do directly. */
  start(i: number, command: Command): { index: number; term: number; isLeader: boolean } {
    const raft = this.rafts[i];
    if (raft === null || raft === undefined) return { index: -1, term: 0, isLeader: false };
    return raft.start(encodeCommand(command));
  }

  getState(i: number): { term: number; isLeader: boolean } {
    const raft = this.rafts[i];
    if (raft === null || raft === undefined) return { term: 0, isLeader: false };
    return raft.getState();
  }

  // ------------------------------------------------------------------ apply checker

  private applyChecked(i: number, entry: Entry): void {
    const command = decodeCommand(entry.command);
    for (let j = 0; j < this.n; j++) {
      const old = this.logs[j]!.get(entry.index);
      if (old !== undefined && old !== command) {
        throw new TestFailure(
          `apply error: commit index=${entry.index} server=${i} ${describeCommand(command)} != server=${j} ${describeCommand(old)}`,
        );
      }
    }
    const hadPrevious = this.logs[i]!.has(entry.index - 1);
    this.logs[i]!.set(entry.index, command);
    if (entry.index > this.maxIndex) this.maxIndex = entry.index;
    if (entry.index > 1 && !hadPrevious) {
      throw new TestFailure(`apply error: server ${i} apply out of order ${entry.index}`);
    }
  }

  /** The 2022+ snapshot applier: strict order, then the usual checks, then a snapshot every 10. */
  private applySnapshotMode(i: number, entry: Entry): void {
    if (entry.index !== this.lastApplied[i]! + 1) {
      throw new TestFailure(
        `apply error: server ${i} apply out of order, expected index ${this.lastApplied[i]! + 1}, got ${entry.index}`,
      );
    }
    this.applyChecked(i, entry);
    this.lastApplied[i] = entry.index;
    if ((entry.index + 1) % SNAPSHOT_INTERVAL === 0) {
      this.rafts[i]?.snapshot(entry.index, encodeSnapshot(entry.index, this.logs[i]!));
    }
  }

  private applyIncomingSnapshot(i: number, snapshot: Snapshot): void {
    if (!this.snapshotMode) throw new TestFailure(`apply error: server ${i} got a snapshot without snapshot mode`);
    this.ingestSnapshot(i, snapshotBodyBytes(snapshot.data), snapshot.index);
  }

  /** Replaces server i's applied log with the snapshot's contents (6.824 ingestSnap). */
  private ingestSnapshot(i: number, data: Uint8Array, index: number): void {
    const decoded = decodeSnapshot(data);
    if (decoded === null) throw new TestFailure('apply error: snapshot decode error');
    if (index !== -1 && index !== decoded.index) {
      throw new TestFailure(`apply error: server ${i} snapshot doesn't match m.SnapshotIndex`);
    }
    this.logs[i] = decoded.log;
    this.lastApplied[i] = decoded.index;
    if (decoded.index > this.maxIndex) this.maxIndex = decoded.index;
  }

  /** Bytes of the largest durable snapshot (6.824 SnapshotSize). */
  snapshotSize(): number {
    let largest = 0;
    for (const persister of this.saved) largest = Math.max(largest, persister?.snapshotSize() ?? 0);
    return largest;
  }

  // ------------------------------------------------------------------ checks

  /** Prints a line the way the Go tests print warnings: not a failure. */
  warn(message: string): void {
    this.log(message);
  }

  fail(message: string): never {
    throw new TestFailure(message);
  }

  /** Waits (up to ten polls of 450–549 ms) for a leader and returns the one of the highest term. */
  async checkOneLeader(): Promise<number> {
    for (let iteration = 0; iteration < 10; iteration++) {
      await this.sleep(450 + this.rand(100));
      const leaders = new Map<number, number[]>();
      for (let i = 0; i < this.n; i++) {
        if (!this.connected[i]) continue;
        const { term, isLeader } = this.getState(i);
        if (isLeader) leaders.set(term, [...(leaders.get(term) ?? []), i]);
      }
      let lastTermWithLeader = -1;
      for (const [term, ids] of leaders) {
        if (ids.length > 1) this.fail(`term ${term} has ${ids.length} (>1) leaders`);
        if (term > lastTermWithLeader) lastTermWithLeader = term;
      }
      if (leaders.size !== 0) return leaders.get(lastTermWithLeader)![0]!;
    }
    this.fail('expected one leader, got none');
  }

  /** Every connected server must report the same term; returns it, or -1 if none is connected. */
  checkTerms(): number {
    let term = -1;
    for (let i = 0; i < this.n; i++) {
      if (!this.connected[i]) continue;
      const serverTerm = this.getState(i).term;
      if (term === -1) term = serverTerm;
      else if (term !== serverTerm) this.fail('servers disagree on term');
    }
    return term;
  }

  checkNoLeader(): void {
    for (let i = 0; i < this.n; i++) {
      if (this.connected[i] && this.getState(i).isLeader) {
        this.fail(`expected no leader among connected servers, but ${i} claims to be leader`);
      }
    }
  }

  /** How many servers applied `index`, and what; fails if two servers applied different commands. */
  nCommitted(index: number): { count: number; command: Command | undefined } {
    let count = 0;
    let command: Command | undefined;
    for (let i = 0; i < this.n; i++) {
      const applied = this.logs[i]!.get(index);
      if (applied === undefined) continue;
      if (count > 0 && applied !== command) {
        this.fail(`committed values do not match: index ${index}, ${describeCommand(command)}, ${describeCommand(applied)}`);
      }
      count++;
      command = applied;
    }
    return { count, command };
  }

  /**
   * Waits for at least n servers to commit `index`. Returns the command, or -1 if some server
   * moved past `startTerm` (the caller should retry); fails if too few commit in time.
   */
  async wait(index: number, n: number, startTerm: number): Promise<Command | -1> {
    let sleepMs = 10;
    for (let poll = 0; poll < 30; poll++) {
      if (this.nCommitted(index).count >= n) break;
      await this.sleep(sleepMs);
      if (sleepMs < 1000) sleepMs *= 2;
      if (startTerm > -1) {
        for (const raft of this.rafts) {
          if (raft !== null && raft.getState().term > startTerm) return -1;
        }
      }
    }
    const { count, command } = this.nCommitted(index);
    if (count < n) this.fail(`only ${count} decided for index ${index}; wanted ${n}`);
    return command!;
  }

  /**
   * Submits `command` to whichever server is leader and waits until `expectedServers` have applied
   * it, retrying for up to 10 s (and only resubmitting when `retry`). Returns the command's index.
   */
  async one(command: Command, expectedServers: number, retry: boolean): Promise<number> {
    const t0 = this.scheduler.now();
    let starts = 0;
    while (this.scheduler.now() - t0 < 10_000 && !this.finished) {
      let index = -1;
      for (let si = 0; si < this.n; si++) {
        starts = (starts + 1) % this.n;
        if (!this.connected[starts]) continue;
        const result = this.start(starts, command);
        if (result.isLeader) {
          index = result.index;
          break;
        }
      }
      if (index !== -1) {
        const t1 = this.scheduler.now();
        while (this.scheduler.now() - t1 < 2_000) {
          const { count, command: committed } = this.nCommitted(index);
          if (count > 0 && count >= expectedServers && committed === command) return index;
          await this.sleep(20);
        }
        if (!retry) this.fail(`one(${describeCommand(command)}) failed to reach agreement`);
      } else {
        await this.sleep(50);
      }
    }
    if (!this.finished) this.fail(`one(${describeCommand(command)}) failed to reach agreement`);
    return -1;
  }

  // ------------------------------------------------------------------ concurrency

  /**
   * Runs `task` concurrently, like a goroutine in the Go tests. A failure inside it fails the test
   * at the next begin/end or checkBackground() instead of vanishing.
   */
  go(task: () => Promise<void>): Promise<void> {
    return task().catch((error: unknown) => {
      if (this.backgroundFailure === undefined) this.backgroundFailure = error;
    });
  }

  /** Rethrows the first failure of a background task, if any. */
  checkBackground(): void {
    if (this.backgroundFailure !== undefined) throw this.backgroundFailure;
  }

  // ------------------------------------------------------------------ begin / end

  begin(description: string): void {
    this.title = description;
    this.log(`${description} ...`);
    this.beganAt = this.scheduler.now();
    this.rpcsAtBegin = this.rpcTotal();
    this.bytesAtBegin = this.bytesTotal();
    this.maxIndexAtBegin = this.maxIndex;
  }

  /**
   * Prints the Passed line and reports the figures. `ops` (kvraft: clerk operations made through the
   * test wrappers) replaces the committed-command count and selects kvraft's four-field line.
   */
  end(ops?: number): TestFigures {
    this.checkTimeout();
    this.checkBackground();
    const figures: TestFigures = {
      title: this.title,
      seconds: (this.scheduler.now() - this.beganAt) / 1000,
      peers: this.n,
      rpcs: this.rpcTotal() - this.rpcsAtBegin,
      bytes: this.bytesTotal() - this.bytesAtBegin,
      commands: ops ?? this.maxIndex - this.maxIndexAtBegin,
    };
    this.log(
      ops === undefined
        ? `  ... Passed --  ${figures.seconds.toFixed(1).padStart(4)}  ${figures.peers} ${String(figures.rpcs).padStart(4)} ${String(figures.bytes).padStart(7)} ${String(figures.commands).padStart(4)}`
        : `  ... Passed --  ${figures.seconds.toFixed(1).padStart(4)}  ${figures.peers} ${String(figures.rpcs).padStart(5)} ${String(ops).padStart(4)}`,
    );
    this.onFigures?.(figures);
    return figures;
  }

  /** Kills every server and shuts the network down. Safe to call more than once. */
  cleanup(): void {
    this.finished = true;
    for (let i = 0; i < this.n; i++) {
      this.rafts[i]?.kill();
      this.rafts[i] = null;
    }
    this.net.cleanup();
    this.checkTimeout();
  }

  get isFinished(): boolean {
    return this.finished;
  }

  private checkTimeout(): void {
    if (this.scheduler.now() - this.createdAt > TEST_TIME_LIMIT_MS) this.fail('test took longer than 120 seconds');
  }
}

/** The applier's snapshot: the last included index and every value applied up to it, as JSON. */
function encodeSnapshot(index: number, log: Map<number, Command>): Uint8Array {
  const values: (Command | null)[] = [null];
  for (let j = 1; j <= index; j++) values.push(log.get(j) ?? null);
  return new TextEncoder().encode(JSON.stringify({ index, values }));
}

function decodeSnapshot(data: Uint8Array): { index: number; log: Map<number, Command> } | null {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(data)) as { index: unknown; values: unknown };
    if (!Number.isSafeInteger(parsed.index) || !Array.isArray(parsed.values)) return null;
    const log = new Map<number, Command>();
    parsed.values.forEach((value: unknown, j: number) => {
      if (typeof value === 'number' || typeof value === 'string') log.set(j, value);
    });
    return { index: parsed.index as number, log };
  } catch {
    return null;
  }
}
