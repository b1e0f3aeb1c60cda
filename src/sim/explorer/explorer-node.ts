/**
 * One server of an explorer world: the shipped RaftNode and KvReplica (the KV state machine, its
 * snapshots, writes and reads), on a simulated disk and network and the world's virtual clock.
 * Nothing here re-implements the node: this module only builds a node the way a deployment does,
 * kills it the way a power cut does, and reports what it sees to the world's checkers.
 *
 * Each incarnation gets its own view of the clock: once it crashes, none of its timers, deferred
 * runs or disk completions fire again, exactly as if the process had vanished. What it made
 * durable stays on the SimDisk for the next incarnation; what was in flight on the network may
 * still be delivered to it.
 */
import { INJECTED_BUGS, type InjectedBug } from '../../core/bugs.js';
import { describeMembership, initialMembership, type Membership } from '../../core/membership.js';
import type { Entry, LogIndex, Message, NodeId, Snapshot } from '../../core/messages.js';
import type { RaftStatus } from '../../core/raft.js';
import type { DriverBug } from '../../driver/ready-driver.js';
import type { KvResult } from '../../kv/commands.js';
import { KvReplica } from '../../kv/replica.js';
import type { KvStateMachine } from '../../kv/state-machine.js';
import { clockFromScheduler, type Clock } from '../../runtime/clock.js';
import { INJECTED_DRIVER_BUGS, RaftNode, type StateMachine } from '../../runtime/node.js';
import type { CallbackStorage } from '../../storage/storage.js';
import type { Transport } from '../../transport/transport.js';
import type { SafetyChecker } from './invariants.js';
import type { Prng } from '../prng.js';
import type { VirtualScheduler } from '../scheduler.js';
import type { SimNetwork, SimTransport } from '../sim-network.js';
import { SimDisk } from '../sim-storage.js';

/** What a node needs from its world: a narrow view, so the world stays the only owner of faults. */
export interface NodeHost {
  readonly scheduler: VirtualScheduler;
  readonly network: SimNetwork;
  readonly checker: SafetyChecker;
  /** The cluster's starting voters: every node starts with them as `peers`. */
  readonly initialVoters: readonly NodeId[];
  /** The learners a node starts with: itself if it is a spare that may join later, else none. */
  startingLearners(id: NodeId): readonly NodeId[];
  readonly bugs: ReadonlySet<InjectedBug>;
  readonly driverBugs: ReadonlySet<DriverBug>;
  trace(line: string): void;
  /** Called after every event of a live node: the checkers look at what changed. */
  observe(node: ExplorerNode): void;
  /** The node stopped itself (a failed fsync, a broken invariant). */
  nodeFailed(node: ExplorerNode, error: Error): void;
  messageSent(message: Message): void;
  /** The node must die now (an injected fault struck): the world crashes it and takes note. */
  crash(id: NodeId): void;
  /** A message is about to be handed to the live node (for checks of what it may receive). */
  messageReceived(node: ExplorerNode, message: Message): void;
  /** The node's lease keeper, leading in `term`, proposed the revoke of expired lease `id` (lease-checker.ts). */
  leaseRevokeProposed(node: NodeId, id: number, term: number, at: number): void;
  /** The node is about to apply a committed entry to its state machine `sm` (which still holds the state before it). */
  applying(node: NodeId, entry: Entry, sm: KvStateMachine): void;
}

export interface NodeTiming {
  readonly tickMs: number;
  readonly heartbeatMs: number;
  readonly electionTimeoutMinMs: number;
  readonly electionTimeoutMaxMs: number;
}

export interface ExplorerNodeOptions {
  readonly timing: NodeTiming;
  readonly preVote: boolean;
  readonly maxRaftStateBytes: number;
  readonly syncLatencyMsMax: number;
  readonly tearPerMille: number;
  readonly requestTimeoutMs: number;
}

export class ExplorerNode {
  readonly disk: SimDisk;
  node: RaftNode<KvResult> | null = null;
  replica: KvReplica | null = null;
  alive = false;
  /** Injected fault: the next durable write completes, then the process dies before using it. */
  crashAfterNextSync = false;
  private incarnation = 0;
  private endpoint: SimTransport | null = null;
  /** The running incarnation's message handler, past the world's checks (for forged messages). */
  private deliverUnchecked: ((message: Message) => void) | null = null;
  /**
   * Forged messages handed to this incarnation, how many of them may be dropped uncounted, and
   * how many honest messages it was handed from senders it may not know yet (or any more): nodes
   * that joined after the start, which it learns of only from the configuration entry adding them.
   */
  forged = { delivered: 0, mayGoUncounted: 0, fromJoiners: 0 };
  private lastObserved: { role: string; term: number; lastIndex: number; commitIndex: number; applied: number; snapshotIndex: number } | null = null;

  constructor(
    readonly id: NodeId,
    private readonly host: NodeHost,
    private readonly options: ExplorerNodeOptions,
    private readonly prng: Prng,
  ) {
    this.disk = new SimDisk({
      scheduler: this.observedScheduler(() => this.alive),
      prng: prng.fork(),
      syncLatencyMsMin: 1,
      syncLatencyMsMax: options.syncLatencyMsMax,
      tearPerMille: options.tearPerMille,
    });
  }

  /** Starts a new incarnation from what the disk holds (RaftNode.start, as a deployment does). */
  async start(): Promise<void> {
    if (this.alive) return;
    const incarnation = ++this.incarnation;
    this.alive = true;
    this.crashAfterNextSync = false;
    this.forged = { delivered: 0, mayGoUncounted: 0, fromJoiners: 0 };
    this.startSnapshot = null;
    const live = (): boolean => this.alive && this.incarnation === incarnation;
    const clock = this.nodeClock(live);
    const replica = new KvReplica({
      maxRaftStateBytes: this.options.maxRaftStateBytes,
      // Its small thresholds are there to make snapshots (and transfers) frequent: keep them literal.
      snapshotLogFraction: 0,
      defer: clock.defer,
      nextSlice: clock.defer,
      clock,
      revokeTimeoutMs: this.options.requestTimeoutMs,
      onLeaseRevokeProposed: (id, term, at) => this.host.leaseRevokeProposed(this.id, id, term, at),
    });
    const endpoint = this.host.network.endpoint(this.id);
    this.endpoint = endpoint;
    const learners = this.host.startingLearners(this.id);
    const node = await RaftNode.start<KvResult>({
      id: this.id,
      peers: this.host.initialVoters,
      ...(learners.length > 0 ? { learners } : {}),
      storage: this.watchedStorage(live),
      transport: this.watchedTransport(endpoint),
      stateMachine: this.watchedStateMachine(replica),
      clock,
      timing: this.options.timing,
      preVote: this.options.preVote,
      proposeTimeoutMs: this.options.requestTimeoutMs,
      random: this.prng.fork(),
      onFatal: (error) => {
        if (live()) this.host.nodeFailed(this, error);
      },
      [INJECTED_BUGS]: this.host.bugs,
      [INJECTED_DRIVER_BUGS]: this.host.driverBugs,
    });
    if (!live()) return; // crashed while starting
    replica.attach(node);
    this.node = node;
    this.replica = replica;
    const status = node.raftStatus(false);
    const base = (this.startSnapshot as Snapshot | null)?.membership ?? initialMembership(this.host.initialVoters, learners);
    this.host.checker.restarted(this.id, status, status.appliedIndex, node, base);
    this.host.trace(`n${this.id} starts at term ${status.term}, log ${status.lastIndex}, snapshot ${status.snapshotIndex}`);
  }

  /** The process dies: unsynced writes may be lost, nothing of this incarnation runs again. */
  crash(): void {
    if (!this.alive) return;
    this.alive = false;
    this.crashAfterNextSync = false;
    this.disk.crash();
    void this.endpoint?.close();
    this.endpoint = null;
    this.node = null;
    this.replica = null;
    this.lastObserved = null;
    this.deliverUnchecked = null;
  }

  /**
   * A graceful stop, as SIGTERM does it: RaftNode.stop() (a leader hands leadership over first,
   * while messages still flow), then the incarnation ends with its disk intact.
   */
  async stopGracefully(): Promise<void> {
    const node = this.node;
    if (!this.alive || node === null) return;
    const incarnation = this.incarnation;
    await node.stop();
    if (this.incarnation !== incarnation || !this.alive) return; // crashed meanwhile
    this.alive = false;
    this.crashAfterNextSync = false;
    this.endpoint = null;
    this.node = null;
    this.replica = null;
    this.lastObserved = null;
    this.deliverUnchecked = null;
  }

  /** Hands a forged message to the running node as if it came off the wire (see forger.ts). */
  injectForged(message: Message, mayGoUncounted: boolean): void {
    if (this.deliverUnchecked === null || this.node === null) return;
    this.forged.delivered++;
    if (mayGoUncounted) this.forged.mayGoUncounted++;
    this.deliverUnchecked(message);
  }

  status(): RaftStatus | null {
    return this.node === null ? null : this.node.raftStatus(false);
  }

  /** A line describing the node when it changed since the last call, else null (for the trace). */
  describeChange(status: RaftStatus): string | null {
    const applied = this.replica?.appliedIndex ?? 0;
    const seen = this.lastObserved;
    if (
      seen !== null &&
      seen.role === status.role &&
      seen.term === status.term &&
      seen.lastIndex === status.lastIndex &&
      seen.commitIndex === status.commitIndex &&
      seen.applied === applied &&
      seen.snapshotIndex === status.snapshotIndex
    ) {
      return null;
    }
    this.lastObserved = { role: status.role, term: status.term, lastIndex: status.lastIndex, commitIndex: status.commitIndex, applied, snapshotIndex: status.snapshotIndex };
    return `${status.role} t${status.term} last=${status.lastIndex} commit=${status.commitIndex} applied=${applied} snap=${status.snapshotIndex}`;
  }

  /** Whether `membership`, this node's configuration now, differs from the one last noted (for the trace). */
  noteMembership(membership: Membership): boolean {
    if (membership === this.lastMembership) return false;
    const changed = this.lastMembership === null || describeMembership(membership) !== describeMembership(this.lastMembership);
    this.lastMembership = membership;
    return changed && this.membershipNoted++ > 0;
  }

  private lastMembership: Membership | null = null;
  private membershipNoted = 0;

  get appliedIndex(): LogIndex {
    return this.replica?.appliedIndex ?? 0;
  }

  /** The scheduler as seen by this node: callbacks of a dead incarnation never run. */
  private observedScheduler(live: () => boolean): { now(): number; schedule(delayMs: number, cb: () => void): { cancel(): void } } {
    const scheduler = this.host.scheduler;
    return {
      now: () => scheduler.now(),
      schedule: (delayMs, callback) => scheduler.schedule(delayMs, () => this.runEvent(live, callback)),
    };
  }

  /**
   * The node's clock. `defer` behaves as a microtask does in real time: the callback runs right
   * after the event that deferred it, before anything else happens; deferred from outside any of
   * this node's events (a client's continuation), it becomes an event of its own at the same time.
   */
  private nodeClock(live: () => boolean): Clock {
    const base = clockFromScheduler(this.observedScheduler(live));
    return {
      ...base,
      defer: (callback) => {
        if (this.inEvent) this.deferred.push(callback);
        else base.defer(callback);
      },
    };
  }

  /** The snapshot the running incarnation started from, if any (its configuration is the log's base). */
  private startSnapshot: Snapshot | null = null;
  private inEvent = false;
  private readonly deferred: (() => void)[] = [];

  private runEvent(live: () => boolean, callback: () => void): void {
    if (!live()) return;
    this.inEvent = true;
    try {
      callback();
      for (let i = 0; i < this.deferred.length && live(); i++) this.deferred[i]!();
    } finally {
      this.deferred.length = 0;
      this.inEvent = false;
    }
    if (live()) this.host.observe(this);
  }

  private watchedStorage(live: () => boolean): CallbackStorage {
    const storage = this.disk.storage();
    return {
      open: () => storage.open(),
      close: () => storage.close(),
      save: (hardState, snapshot, logWrite) => storage.save(hardState, snapshot, logWrite),
      saveWithCallback: (hardState, snapshot, logWrite, done) => {
        const node = this.node;
        if ((logWrite !== null || snapshot !== null) && node !== null) {
          this.host.checker.logWritten(this.id, node, node.raftStatus(false), logWrite?.fromIndex ?? null, snapshot);
        }
        storage.saveWithCallback(hardState, snapshot, logWrite, (error) => {
          if (error === null) this.host.checker.synced(this.id, snapshot, logWrite);
          if (error === null && this.crashAfterNextSync && live()) {
            this.host.trace(`n${this.id} crashes right after a write became durable, before acting on it`);
            this.host.crash(this.id);
            return;
          }
          done(error);
        });
      },
    };
  }

  private watchedTransport(endpoint: SimTransport): Transport {
    return {
      start: (onMessage) => {
        this.deliverUnchecked = onMessage;
        return endpoint.start((message) => {
          this.host.messageReceived(this, message);
          onMessage(message);
        });
      },
      send: (message) => {
        this.host.messageSent(message);
        endpoint.send(message);
      },
      close: () => endpoint.close(),
      maxMessageBytes: endpoint.maxMessageBytes,
    };
  }

  private watchedStateMachine(replica: KvReplica): StateMachine<KvResult> {
    return {
      apply: (entry) => {
        const commitIndex = this.node?.raftStatus(false).commitIndex ?? entry.index;
        this.host.checker.apply(this.id, commitIndex, entry);
        this.host.applying(this.id, entry, replica.sm);
        return replica.stateMachine.apply(entry);
      },
      restore: (snapshot) => {
        if (this.node !== null) this.host.checker.applySnapshot(this.id, snapshot);
        else this.startSnapshot = snapshot;
        replica.stateMachine.restore(snapshot);
      },
      validateSnapshot: (snapshot) => replica.stateMachine.validateSnapshot!(snapshot),
    };
  }
}
