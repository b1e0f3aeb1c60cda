import { InvariantError } from '../../core/assert.js';
import type { InjectedBug } from '../../core/bugs.js';
import { allMembers, describeMembership, initialMembership, isQuorum, isVoter, type Membership } from '../../core/membership.js';
import type { Entry, Message, NodeId } from '../../core/messages.js';
import type { KvStateMachine } from '../../kv/state-machine.js';
import type { DriverBug } from '../../driver/ready-driver.js';
import { checkLinearizable } from '../../linearizability/checker.js';
import { StorageError } from '../../storage/storage.js';
import { MESSAGE_ENVELOPE_BYTES } from '../../runtime/node.js';
import { ENTRY_ENVELOPE_BYTES } from '../../core/log.js';
import { Prng } from '../prng.js';
import { VirtualScheduler } from '../scheduler.js';
import { SimNetwork, type SimNetworkObserver } from '../sim-network.js';
import type { RaftStatus } from '../../core/raft.js';
import { ExplorerNode, type NodeHost } from './explorer-node.js';
import { Forger } from './forger.js';
import { Operator } from './operator.js';
import { SafetyChecker, SafetyViolation } from './invariants.js';
import { Nemesis } from './nemesis.js';
import { Workload } from './workload.js';
import { LeaseChecker } from './lease-checker.js';
import { drawShape, leasePrngFor, type WorldShape } from './world-shape.js';

export type { WorldShape } from './world-shape.js';

/** Liveness under faults: a connected majority must complete some client operation within this. */
const PROGRESS_WINDOW_MS = 12_000;
/**
 * Lease liveness at the end of a run: a lease nobody renews must be revoked within its TTL plus
 * this, counted from the later of the current leader's election and the last keep-alive a client
 * tried (plus LEASE_RENEWAL_GRACE_MS: a keep-alive may be served after its client gave up on it).
 */
const LEASE_EXPIRY_SLACK_MS = 3_000;
const LEASE_RENEWAL_GRACE_MS = 2_000;

/** Liveness failed: the cluster made no progress although it could have. */
export class LivenessViolation extends Error {
  override readonly name = 'LivenessViolation';
}

export interface WorldOptions {
  readonly seed: number;
  /** Cluster sizes to choose from. */
  readonly nodeCounts: readonly number[];
  /** Simulated seconds of load and faults before everything heals. */
  readonly faultSeconds: number;
  /** Simulated seconds after healing within which a new write must be applied on every node. */
  readonly healSeconds: number;
  readonly bugs: ReadonlySet<InjectedBug>;
  readonly driverBugs: ReadonlySet<DriverBug>;
  /** How many trace lines to keep for a failure report. */
  readonly traceLines: number;
  /** A membership change accepted while another was under way fails the run at its end. */
  readonly changeRefusals: boolean;
  /** Sees the run as it happens (recordings for the replay page); it must not change the run. */
  readonly recorder?: WorldRecorder | undefined;
}

/**
 * An observer of a World's run (src/sim/replay/record-explore.ts). Every call is a read: the
 * digest of a run with a recorder equals the digest without one.
 */
export interface WorldRecorder {
  /** Given to the world's SimNetwork. */
  readonly network?: SimNetworkObserver;
  /** Called at the end of the World's constructor. */
  attach(world: World): void;
  /** A trace line of the world other than the network's per-message ones (no time prefix). */
  trace(line: string): void;
  /** After every event of a live node, with its status then (World.observe). */
  observed(node: ExplorerNode, status: RaftStatus): void;
  /** A node's incarnation has started and runs. */
  started(node: ExplorerNode): void;
  /** A node crashed, or stopped for good. */
  stopped(node: ExplorerNode): void;
}

/** What the world last saw of a node's state (after its latest change, or at its start). */
export interface NodeSeen {
  readonly role: string;
  readonly term: number;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
}

/**
 * A random world for one seed: 3–7 members of the shipped KV service (RaftNode + KvReplica), in
 * some worlds with spare nodes that the operator adds, promotes and removes (operator.ts), on
 * simulated disks that lose unsynced writes and tear or fail them, a network that drops,
 * duplicates, delays, reorders and partitions; crashes at any point, restarts, uneven clocks; and
 * clients issuing writes and linearizable reads. Raft's safety properties are checked after every
 * event, progress is demanded whenever a connected majority exists, after `faultSeconds` every
 * fault heals and a new write must reach every node within `healSeconds`, and finally the whole
 * client history must be linearizable.
 */
export class World implements NodeHost {
  readonly scheduler = new VirtualScheduler({ maxVirtualMs: Number.MAX_SAFE_INTEGER, wallBudgetMs: 60_000 });
  readonly checker: SafetyChecker;
  readonly shape: WorldShape;
  /** Every node id of the world: the starting voters, then the spares. */
  readonly peerIds: readonly NodeId[];
  readonly initialVoters: readonly NodeId[];
  /** Nodes stopped for good after their removal from the cluster (ids are never reused). */
  private readonly retired = new Set<NodeId>();
  /** The first membership change accepted while another was under way (reported after the run). */
  private secondChangeAccepted: string | null = null;
  readonly network: SimNetwork;
  readonly nodes: ExplorerNode[] = [];
  readonly bugs: ReadonlySet<InjectedBug>;
  readonly driverBugs: ReadonlySet<DriverBug>;
  readonly options: WorldOptions;
  readonly workload: Workload;
  /** What lease clients were promised, and the revokes proposed and applied (lease-checker.ts). */
  readonly leases: LeaseChecker;
  private readonly nemesis: Nemesis;
  private readonly forger: Forger;
  private readonly operator: Operator;
  private readonly traceRing: string[] = [];
  private traceNext = 0;
  private traceHash = 0x811c9dc5;
  private healed = false;
  private recoveredAt = -1;
  private healedAt = -1;
  private failure: Error | null = null;
  /** Since when a connected majority of live members has existed without a break (-1: none now). */
  private healthySince = -1;
  private readonly recorder: WorldRecorder | undefined;
  /**
   * Per node id: its status and applied index at its last change or start (for the final state of
   * a node that is down); the status object is kept as it is, so noting one allocates nothing.
   */
  private readonly lastSeen: (RaftStatus | undefined)[] = [];
  private readonly lastApplied: number[] = [];
  /** Counters for the summary. */
  readonly stats = { messages: 0, crashes: 0, restarts: 0, failedSyncs: 0, opsChecked: 0, checkVerdict: '', leases: { granted: 0, keepAlives: 0, expired: 0, revoked: 0, proposals: 0 } };

  constructor(options: WorldOptions) {
    this.options = options;
    this.bugs = options.bugs;
    this.driverBugs = options.driverBugs;
    const root = new Prng(options.seed);
    // Leases come from a stream of their own: a world without them draws exactly as before them.
    const leasePrng = leasePrngFor(options.seed);
    this.shape = drawShape(root.fork(), options.nodeCounts, leasePrng);
    this.leases = new LeaseChecker(() => this.scheduler.now(), (line) => this.trace(line));
    this.stats.leases = this.leases.counts;
    const shape = this.shape;
    this.peerIds = Array.from({ length: shape.nodes + shape.spares }, (_, i) => i);
    this.initialVoters = this.peerIds.slice(0, shape.nodes);
    // A leader whose removal committed hands over within its transfer's expiry (a maximum
    // election timeout, 160 ticks); twice the slowest node's is the bound.
    this.checker = new SafetyChecker(initialMembership(this.initialVoters), 2 * 160 * Math.max(...shape.tickMs));
    this.network = new SimNetwork({
      scheduler: this.scheduler,
      prng: root.fork(),
      delayMsMax: shape.delayMaxMs,
      lossPerMille: shape.lossPerMille,
      duplicatePerMille: shape.duplicatePerMille,
      longDelayPerMille: shape.longDelayPerMille,
      bytesPerMs: shape.bytesPerMs,
      maxFrameBytes: shape.maxFrameBytes,
      trace: (line) => this.traceHashed(line),
      ...(options.recorder?.network === undefined ? {} : { observer: options.recorder.network }),
    });
    const nodePrng = root.fork();
    for (const id of this.peerIds) {
      const tick = shape.tickMs[id]!;
      this.nodes.push(
        new ExplorerNode(
          id,
          this,
          {
            timing: { tickMs: tick, heartbeatMs: 20 * tick, electionTimeoutMinMs: 80 * tick, electionTimeoutMaxMs: 160 * tick },
            preVote: shape.preVote,
            maxRaftStateBytes: shape.maxRaftStateBytes,
            syncLatencyMsMax: shape.syncLatencyMsMax,
            tearPerMille: shape.tearPerMille,
            requestTimeoutMs: 2000,
          },
          nodePrng.fork(),
        ),
      );
    }
    const largeValueBytes = shape.largeValues ? shape.maxFrameBytes - MESSAGE_ENVELOPE_BYTES - ENTRY_ENVELOPE_BYTES - 64 : 0;
    this.workload = new Workload(
      {
        nodes: this.nodes,
        now: () => this.scheduler.now(),
        schedule: (delayMs, callback) => this.scheduler.schedule(delayMs, callback),
        sleep: (ms) => this.scheduler.sleep(ms),
        trace: (line) => this.trace(line),
        fail: (error) => this.fail(error),
        readServed: (node, term, at) => {
          try {
            this.checker.readServed(node, term, at);
          } catch (error) {
            this.fail(error as Error);
          }
        },
      },
      { clients: shape.clients, keys: shape.keys, opGapMaxMs: shape.opGapMaxMs, readMode: shape.readMode, attemptTimeoutMs: 1500, largeValueBytes },
      root.fork(),
    );
    this.workload.enableLeases(shape.leaseClients, leasePrng.fork(), this.leases);
    this.nemesis = new Nemesis(this, root.fork());
    this.forger = new Forger(this, root.fork());
    this.operator = new Operator(this, root.fork());
    this.recorder = options.recorder;
    this.recorder?.attach(this);
  }

  /** Runs the world to the end. Throws SafetyViolation, LivenessViolation or InvariantError. */
  async run(): Promise<void> {
    await this.scheduler.run(async () => {
      for (const node of this.nodes) {
        await node.start();
        this.noteStarted(node);
      }
      this.noteTopologyChanged();
      if (this.shape.preloadBytes > 0) await this.workload.preload(this.shape.preloadBytes / (64 * 1024), 64 * 1024);
      this.workload.start();
      this.nemesis.start();
      if (this.shape.forger) this.forger.start();
      if (this.shape.operator || this.shape.spares > 0) this.operator.start();
      this.scheduleProgressCheck();
      await this.sleepChecked(this.options.faultSeconds * 1000);
      this.heal();
      await this.awaitRecovery();
      await this.awaitConvergence();
      this.checkDroppedMessages();
      await this.finalReads();
      this.checkLeaseExpiries();
      this.workload.active = false;
      this.workload.giveUpAt = this.scheduler.now();
    });
    this.throwIfFailed();
    this.checkHistory();
    if (this.secondChangeAccepted !== null && this.options.changeRefusals) throw new SafetyViolation('one change at a time', this.secondChangeAccepted);
  }

  get now(): number {
    return this.scheduler.now();
  }

  /** A digest of the whole trace: equal for two runs of one seed if the simulation is deterministic. */
  get runDigest(): number {
    return this.traceHash;
  }

  get recoveryMs(): number {
    return this.recoveredAt - this.healedAt;
  }

  trace(line: string): void {
    this.traceHashed(line);
    if (this.recorder !== undefined) this.recorder.trace(line);
  }

  /** A trace line into the digest and the ring (the network's per-message lines come here directly). */
  private traceHashed(line: string): void {
    const text = `${this.now.toFixed(0).padStart(8)} ms  ${line}`;
    let h = this.traceHash;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    this.traceHash = h >>> 0;
    if (this.options.traceLines === 0) return;
    if (this.traceRing.length < this.options.traceLines) this.traceRing.push(text);
    else this.traceRing[this.traceNext] = text;
    this.traceNext = (this.traceNext + 1) % this.options.traceLines;
  }

  /** A node's incarnation started (and did not crash while starting): what it starts from is its state. */
  private noteStarted(node: ExplorerNode): void {
    const status = node.status();
    if (!node.alive || status === null) return;
    this.lastSeen[node.id] = status;
    this.lastApplied[node.id] = node.appliedIndex;
    this.recorder?.started(node);
  }

  /**
   * Every node's state now: a running node's from its status, with the terms of its last `tailEntries`
   * entries; a node that is down (crashed, retired, never started) with the values it had when last
   * seen and no tail. Read-only: calling it does not change the run.
   */
  finalNodes(tailEntries: number): NodeFinal[] {
    return this.nodes.map((node) => {
      const raft = node.node;
      if (node.alive && raft !== null) return liveNodeState(node, raft.raftStatus(false), tailEntries);
      const seen = this.lastSeen[node.id];
      return seen === undefined
        ? { node: node.id, alive: false, role: 'follower', term: 0, commit: 0, applied: 0, lastIndex: 0, snapshotIndex: 0, tail: [] }
        : { node: node.id, alive: false, role: seen.role, term: seen.term, commit: seen.commitIndex, applied: this.lastApplied[node.id] ?? 0, lastIndex: seen.lastIndex, snapshotIndex: seen.snapshotIndex, tail: [] };
    });
  }

  /** The last trace lines, oldest first. */
  recentTrace(): string[] {
    if (this.traceRing.length < this.options.traceLines) return [...this.traceRing];
    return [...this.traceRing.slice(this.traceNext), ...this.traceRing.slice(0, this.traceNext)];
  }

  // ------------------------------------------------------------------ NodeHost

  startingLearners(id: NodeId): readonly NodeId[] {
    return id >= this.shape.nodes ? [id] : [];
  }

  observe(node: ExplorerNode): void {
    const shipped = node.node;
    if (shipped === null) return;
    const status = shipped.raftStatus(false);
    this.checker.observe(node.id, shipped, status, this.now);
    const change = node.describeChange(status);
    if (change !== null) {
      this.lastSeen[node.id] = status;
      this.lastApplied[node.id] = node.appliedIndex;
      this.trace(`n${node.id} ${change}`);
    }
    if (this.recorder !== undefined) this.recorder.observed(node, status);
    if (node.noteMembership(status.membership)) {
      this.trace(`n${node.id} configuration ${describeMembership(status.membership)} (index ${status.membershipIndex})`);
      this.noteTopologyChanged();
    }
  }

  messageReceived(node: ExplorerNode, message: Message): void {
    if (message.from >= this.shape.nodes) node.forged.fromJoiners++;
    if (message.type !== 'AppendEntriesReply' || node.node === null) return;
    try {
      this.checker.echoReceived(node.id, node.node.raftStatus(false), message);
    } catch (error) {
      this.fail(error as Error);
    }
  }

  leaseRevokeProposed(node: NodeId, id: number, term: number, at: number): void {
    this.leases.revokeProposed(node, id, term, at);
  }

  applying(node: NodeId, entry: Entry, sm: KvStateMachine): void {
    try {
      this.leases.applying(node, entry, sm);
    } catch (error) {
      this.fail(error as Error);
    }
  }

  messageSent(message: Message): void {
    this.checker.sent(message);
    this.stats.messages++;
  }

  nodeFailed(node: ExplorerNode, error: Error): void {
    if (error instanceof StorageError && error.code === 'TSRAFT_STORAGE_IO') {
      // The node stopped itself after a failed fsync, as it must; it comes back like a crashed one.
      this.trace(`n${node.id} stops after a failed fsync: ${error.message}`);
      this.crash(node.id);
      // A fault injected before the heal may strike after it; the heal restarts every member.
      if (this.healed) this.scheduler.schedule(100, () => this.restart(node.id));
      return;
    }
    this.fail(error);
  }

  // ------------------------------------------------------------------ faults (called by Nemesis)

  get isHealed(): boolean {
    return this.healed;
  }

  leaderId(): NodeId {
    for (const node of this.nodes) if (node.node?.raftStatus(false).role === 'leader') return node.id;
    return -1;
  }

  crash(id: NodeId): void {
    const node = this.nodes[id]!;
    if (!node.alive) return;
    node.crash();
    this.recorder?.stopped(node);
    this.stats.crashes++;
    this.trace(`n${id} crashes`);
    this.noteTopologyChanged(true);
  }

  restart(id: NodeId): void {
    const node = this.nodes[id]!;
    if (node.alive || this.retired.has(id)) return;
    this.stats.restarts++;
    void node.start().then(() => {
      this.noteStarted(node);
      this.noteTopologyChanged(true);
    }, (error: unknown) => this.fail(error instanceof Error ? error : new Error(String(error))));
  }

  isRetired(id: NodeId): boolean {
    return this.retired.has(id);
  }

  /** A node removed from the cluster is stopped for good, as an operator decommissions it. */
  retire(id: NodeId): void {
    if (this.retired.has(id)) return;
    this.retired.add(id);
    const node = this.nodes[id]!;
    this.trace(`n${id} retired: removed from the cluster, stopped for good`);
    if (!node.alive) return;
    void node.stopGracefully().then(() => {
      if (!node.alive) this.recorder?.stopped(node);
      this.noteTopologyChanged(true);
    });
  }

  /**
   * Retires every node that a committed configuration named once and the latest committed one
   * no longer does: it was removed, and ids are never reused.
   */
  retireRemoved(): void {
    const members = new Set(allMembers(this.checker.committedMembership));
    for (const id of this.peerIds) if (!members.has(id) && this.checker.wasCommittedMember(id)) this.retire(id);
  }

  /** The operator saw a membership change accepted while another was still under way. */
  noteSecondChangeAccepted(detail: string): void {
    this.trace(`UNEXPECTED ${detail}`);
    this.secondChangeAccepted ??= detail;
  }

  /**
   * The nodes that must hold every write after the heal: the members (voters and learners) of
   * the leader's configuration, or of the latest committed one when there is no leader.
   */
  currentMembers(): NodeId[] {
    const leader = this.leaderId();
    const membership = leader >= 0 ? this.nodes[leader]!.node!.membership() : this.checker.committedMembership;
    return allMembers(membership).filter((id) => !this.retired.has(id) && id < this.nodes.length);
  }

  /**
   * Records whether a connected majority of live members exists now. A crash or restart starts the
   * clock again: the cluster is owed a quiet stretch to elect a leader and serve, not progress
   * through a storm of leader deaths.
   */
  noteTopologyChanged(disruptive = false): void {
    if (disruptive) this.healthySince = -1;
    const healthy = this.hasConnectedMajority();
    if (!healthy) this.healthySince = -1;
    else if (this.healthySince < 0) this.healthySince = this.now;
  }

  /**
   * Whether some set of live, mutually connected nodes is a quorum of every configuration that
   * may decide now: the latest committed one, and the latest in the log of every live node that
   * votes in it (more than one while a change is under way, or while a node lags behind).
   */
  private hasConnectedMajority(): boolean {
    const n = this.peerIds.length;
    const net = this.network;
    const configs = new Map<string, Membership>();
    const committed = this.checker.committedMembership;
    configs.set(describeMembership(committed), committed);
    for (const node of this.nodes) {
      const m = node.alive ? node.node?.membership() : undefined;
      if (m !== undefined && isVoter(m, node.id)) configs.set(describeMembership(m), m);
    }
    for (let mask = 0; mask < 1 << n; mask++) {
      let ok = true;
      for (let a = 0; a < n && ok; a++) {
        if ((mask & (1 << a)) === 0) continue;
        if (!this.nodes[a]!.alive) ok = false;
        for (let b = 0; b < n && ok; b++) {
          if (a !== b && (mask & (1 << b)) !== 0 && !(net.isLinkUp(a, b) && net.isLinkUp(b, a))) ok = false;
        }
      }
      if (!ok) continue;
      const ids = new Set<NodeId>();
      for (let a = 0; a < n; a++) if ((mask & (1 << a)) !== 0) ids.add(a);
      let quorum = true;
      for (const m of configs.values()) if (!isQuorum(m, ids)) quorum = false;
      if (quorum) return true;
    }
    return false;
  }

  // ------------------------------------------------------------------ the run's phases

  private heal(): void {
    this.healed = true;
    this.healedAt = this.now;
    this.nemesis.stop();
    this.network.healLinks();
    this.network.setChaos(false);
    for (const node of this.nodes) node.crashAfterNextSync = false;
    this.retireRemoved();
    for (const id of this.peerIds) this.restart(id);
    if (this.shape.healLoad === 'quiet') this.workload.active = false;
    this.trace(`faults healed; clients ${this.shape.healLoad === 'quiet' ? 'stop' : 'keep writing'}`);
  }

  /**
   * A write issued after healing must be applied on every node within healSeconds. Its client
   * retries it (same session, same seq) until it is answered; in a quiet world nothing else is
   * written, so a follower stuck without new writes to carry it along is caught.
   */
  private async awaitRecovery(): Promise<void> {
    const deadline = this.now + this.options.healSeconds * 1000;
    let markerIndex = -1;
    this.workload.run(this.shape.clients, { kind: 'put', key: 'marker', value: 'healed' }).then(
      (index) => {
        if (index !== undefined) markerIndex = index;
      },
      (error: unknown) => this.fail(error instanceof Error ? error : new Error(String(error))),
    );
    while (this.now < deadline) {
      // A change under way at the heal may complete now: its removed nodes are stopped too.
      this.retireRemoved();
      if (markerIndex >= 0 && this.currentMembers().every((id) => this.nodes[id]!.appliedIndex >= markerIndex)) {
        this.recoveredAt = this.now;
        this.trace(`recovered: the write at index ${markerIndex}, issued after healing, is applied on every node`);
        return;
      }
      await this.sleepChecked(50);
    }
    const roles = this.nodes.map((n) => `n${n.id}:${this.retired.has(n.id) ? 'retired' : (n.node?.raftStatus(false).role ?? 'down')}@applied ${n.appliedIndex}`).join(' ');
    const members = this.currentMembers();
    throw new LivenessViolation(
      `no write issued after healing at ${this.healedAt} ms was applied on all ${members.length} members [${members.join(', ')}] within ${this.options.healSeconds} s (${markerIndex < 0 ? 'none was answered' : `answered at ${markerIndex}`}; ${roles})`,
    );
  }

  /** Once every node has applied the same index, their states must be byte-identical. */
  private async awaitConvergence(): Promise<void> {
    this.workload.active = false;
    this.workload.leaseClientsDone = true;
    for (let waited = 0; waited < 10_000; waited += 50) {
      const members = this.currentMembers().map((id) => this.nodes[id]!);
      const applied = members.map((n) => n.appliedIndex);
      if (applied.every((index) => index === applied[0]) && members.every((n) => n.replica !== null) && this.workload.history.pendingCount() === 0) {
        const digests = members.map((n) => hashBytes(n.replica!.sm.snapshot()));
        if (digests.some((d) => d !== digests[0])) {
          throw new SafetyViolation('state machine safety', `nodes applied index ${applied[0]} but hold different states (${digests.join(', ')})`);
        }
        return;
      }
      await this.sleepChecked(50);
    }
    this.trace('nodes did not reach the same applied index within 10 s after recovery; state comparison skipped');
  }

  /**
   * Honest members never send what cannot be true, so a drop that no forgery explains is a bug (in
   * the validation, or in Raft); and every forgery must have been dropped and counted.
   */
  private checkDroppedMessages(): void {
    for (const node of this.nodes) {
      const dropped = node.node?.status().droppedMessages;
      if (dropped === undefined) continue;
      const total = Object.values(dropped).reduce((sum, count) => sum + count, 0);
      const { delivered, mayGoUncounted, fromJoiners } = node.forged;
      // A node drops honest messages from a node that joined later until it holds the entry that
      // added it (or, compacted, no longer names a node that left): only as unknown senders.
      const unknownSenders = dropped['unknown-sender'] ?? 0;
      const honest = Math.min(fromJoiners, unknownSenders);
      if (total - honest > delivered || total < delivered - mayGoUncounted) {
        throw new InvariantError(
          `n${node.id} dropped ${total} peer messages (${JSON.stringify(dropped)}) but was handed ${delivered} forged ones (${mayGoUncounted} of which may go uncounted) and ${fromJoiners} honest ones from nodes that joined later`,
        );
      }
    }
  }

  /** Every key is read once more, so a write that was acknowledged and then lost shows up in the history. */
  private async finalReads(): Promise<void> {
    this.workload.active = true;
    const keys = [...Array.from({ length: this.shape.keys }, (_, i) => `k${i}`), 'marker', ...this.workload.leaseKeys()];
    for (const key of keys) await this.workload.run(this.shape.clients + 1, { kind: 'get', key });
  }

  private checkHistory(): void {
    const recorded = this.workload.history.operations({ pendingAsUnknown: true });
    // The deletes that lease revokes made (expiries included), numbered after the recorded operations.
    const operations = [...recorded, ...this.leases.deleteOperations(recorded.length)];
    this.stats.opsChecked = operations.length;
    const verdict = checkLinearizable(operations, { timeBudgetMs: 20_000 });
    this.stats.checkVerdict = verdict.result;
    if (verdict.result === 'illegal') throw new SafetyViolation('linearizability', verdict.explanation ?? 'the client history is not linearizable');
  }

  /**
   * Lease liveness, loosely: at the end of the run, a lease no client renews any more must have
   * been revoked if the current leader has led long enough to time it out (LEASE_EXPIRY_SLACK_MS).
   */
  private checkLeaseExpiries(): void {
    if (this.shape.leaseClients === 0) return;
    const leader = this.leaderId();
    const node = leader < 0 ? null : this.nodes[leader]!;
    const replica = node?.replica ?? null;
    const term = node?.node?.raftStatus(false).term;
    const since = term === undefined ? undefined : this.checker.electedAtOf(term);
    if (replica === null || since === undefined || !replica.leases.leading) return;
    const late = this.leases.overdue((id) => replica.sm.lease(id) !== null, since, LEASE_RENEWAL_GRACE_MS, LEASE_EXPIRY_SLACK_MS);
    if (late.length > 0) throw new LivenessViolation(`lease expiry: leader n${leader} (term ${term}) did not revoke expired leases: ${late.join('; ')}`);
  }

  private scheduleProgressCheck(): void {
    this.scheduler.schedule(1000, () => {
      if (this.healed || this.failure !== null) return;
      // With heavy loss a bare majority needing every one of its votes may fail for a long while
      // by chance alone; such worlds are held to liveness after the heal only.
      const since = Math.max(this.healthySince, this.workload.lastCompletedAt);
      if (this.shape.lossPerMille <= 50 && this.healthySince >= 0 && this.now - since >= PROGRESS_WINDOW_MS) {
        this.fail(
          new LivenessViolation(
            `a connected majority of live members existed for ${this.now - this.healthySince} ms, but no client operation completed in the last ${this.now - this.workload.lastCompletedAt} ms`,
          ),
        );
        return;
      }
      this.scheduleProgressCheck();
    });
  }

  /** Sleeps on the virtual clock; stops the run as soon as anything failed. */
  private async sleepChecked(ms: number): Promise<void> {
    this.throwIfFailed();
    await this.scheduler.sleep(ms);
    this.throwIfFailed();
  }

  fail(error: Error): void {
    if (this.failure !== null) return;
    this.failure = error;
    this.trace(`FAILURE ${error.message}`);
    // Stop the event loop at once: the error surfaces from the event that saw it.
    this.scheduler.schedule(0, () => this.throwIfFailed());
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }
}

export function isViolation(error: unknown): error is SafetyViolation | LivenessViolation | InvariantError {
  return error instanceof SafetyViolation || error instanceof LivenessViolation || error instanceof InvariantError;
}

function hashBytes(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}

/** A node's state at the end of a run (the shape of the replay page's NodeFrame, without a time). */
export interface NodeFinal extends NodeSeen {
  readonly node: NodeId;
  readonly alive: boolean;
  /** The terms of the log's last entries after the snapshot (at most the count asked for), the last at lastIndex. */
  readonly tail: readonly number[];
}

/** A running node's state from its status, with the terms of its last `tailEntries` entries. */
export function liveNodeState(node: ExplorerNode, status: RaftStatus, tailEntries: number): NodeFinal {
  const raft = node.node;
  return {
    node: node.id,
    alive: true,
    role: status.role,
    term: status.term,
    commit: status.commitIndex,
    applied: node.appliedIndex,
    lastIndex: status.lastIndex,
    snapshotIndex: status.snapshotIndex,
    tail: raft === null ? [] : tailTerms(raft, status.snapshotIndex, status.lastIndex, tailEntries),
  };
}

/** The terms of entries max(snapshotIndex + 1, lastIndex - count + 1)..lastIndex that the log holds. */
export function tailTerms(raft: { entryAt(index: number): { term: number } | undefined }, snapshotIndex: number, lastIndex: number, count: number): number[] {
  const terms: number[] = [];
  for (let i = Math.max(snapshotIndex + 1, lastIndex - count + 1); i <= lastIndex; i++) {
    const entry = raft.entryAt(i);
    if (entry !== undefined) terms.push(entry.term);
  }
  return terms;
}
