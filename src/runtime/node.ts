import { randomInt } from 'node:crypto';
import { INJECTED_BUGS, type InjectedBug } from '../core/bugs.js';
import { DEFAULT_SNAPSHOT_CHUNK_BYTES, validateConfig, type RaftConfig } from '../core/config.js';
import { ENTRY_ENVELOPE_BYTES } from '../core/log.js';
import type { Entry, LogIndex, Message, NodeId, Snapshot, Term } from '../core/messages.js';
import { RaftCore, type RaftStatus, type Role } from '../core/raft.js';
import type { ReadState } from '../core/ready.js';
import type { RandomSource } from '../core/rng.js';
import { ReadyDriver, type DriverBug, type DurableWrite } from '../driver/ready-driver.js';
import { hasCallbackSave, type Storage } from '../storage/storage.js';
import type { Transport } from '../transport/transport.js';
import { realClock, type Clock, type ClockTimer } from './clock.js';
import {
  BusyError,
  ConfigError,
  LeadershipTransferError,
  NodeStoppedError,
  NotLeaderError,
  OutcomeUnknownError,
  ProposalDroppedError,
  ProposalTimeoutError,
  ProposalTooLargeError,
  RaftError,
} from './errors.js';

/** The RaftNodeOptions key under which driver bugs are switched on (exported by tsraft/testing). */
export const INJECTED_DRIVER_BUGS: unique symbol = Symbol('tsraft.injectedDriverBugs');

/**
 * What an AppendEntries adds around its entries (type, ids, term, indices, commit, read round), at
 * most; each entry adds ENTRY_ENVELOPE_BYTES more. A snapshot chunk's envelope is smaller.
 */
export const MESSAGE_ENVELOPE_BYTES = 128;

/** What the application receives, in log order. */
export type Applied = { readonly kind: 'entry'; readonly entry: Entry } | { readonly kind: 'snapshot'; readonly snapshot: Snapshot };

/**
 * The application's state machine, called synchronously in log order. `apply` returns the
 * command's result, which `propose()` resolves with on the node that proposed it (the leader).
 * Entries with an empty command are the leader's no-ops; apply them like any other.
 */
export interface StateMachine<Result = unknown> {
  apply(entry: Entry): Result;
  /** Replace the whole state with a snapshot received from the leader. */
  restore(snapshot: Snapshot): void;
  /**
   * Says why a snapshot received from a leader could not be restored (e.g. by decoding it into a
   * scratch state), or null if it can. Called before the snapshot is persisted: one that fails
   * here is dropped, so it cannot leave a node that fails to restore it on every restart.
   */
  validateSnapshot?(snapshot: Snapshot): string | null;
}

export interface RaftNodeTiming {
  /** Length of one core tick (default 10 ms). */
  readonly tickMs?: number;
  /** Heartbeat interval (default 100 ms). */
  readonly heartbeatMs?: number;
  /** Election timeouts are drawn from [min, max) (default 1000–2000 ms). */
  readonly electionTimeoutMinMs?: number;
  readonly electionTimeoutMaxMs?: number;
}

export interface RaftNodeOptions<Result = unknown> {
  readonly id: NodeId;
  /** Every member's id, this node included. */
  readonly peers: readonly NodeId[];
  readonly storage: Storage;
  readonly transport: Transport;
  readonly stateMachine?: StateMachine<Result>;
  readonly timing?: RaftNodeTiming;
  /** How long propose() and read() wait before rejecting (default 10 s). */
  readonly proposeTimeoutMs?: number;
  /** Proposals (and, separately, reads) waiting at once before new ones reject with BusyError (default 65536). */
  readonly proposalsInFlightMax?: number;
  /** Peer messages queued for the core before new ones are dropped (default 65536). */
  readonly inboxMax?: number;
  /** Addresses reported in NotLeaderError, e.g. an HTTP URL per node. */
  readonly addresses?: ReadonlyMap<NodeId, string>;
  /** Election jitter; a cryptographically seeded generator by default. */
  readonly random?: RandomSource;
  /** Bytes of commands per AppendEntries (default 1 MiB, and never more than one transport message holds). */
  readonly appendBytesMax?: number;
  /** Bytes per snapshot chunk (default 64 KiB, and never more than one transport message holds). */
  readonly snapshotChunkBytes?: number;
  /** The largest snapshot accepted from a leader (default 1 GiB); set it alike on every node. */
  readonly snapshotBytesMax?: number;
  /**
   * Run a pre-vote round before each election (thesis §9.6), so a node that cannot win does not
   * raise terms and depose a working leader when it rejoins (default true).
   */
  readonly preVote?: boolean;
  /**
   * Check-quorum (default true): a leader that has not heard from a majority within an election
   * timeout steps down, so waiting reads and proposals fail at once and it stops claiming to lead.
   */
  readonly checkQuorum?: boolean;
  /** stop() on a leader hands leadership to the most up-to-date follower first (default true). */
  readonly transferLeadershipOnStop?: boolean;
  /** Timers and time (default: real time). The simulator passes its virtual clock. */
  readonly clock?: Clock;
  /** Called once if the node stops because of a fatal error (storage failure, broken invariant). */
  readonly onFatal?: (error: Error) => void;
  /** Test only: Raft bugs to inject (see tsraft/testing). */
  readonly [INJECTED_BUGS]?: ReadonlySet<InjectedBug>;
  /** Test only: driver bugs to inject (see tsraft/testing). */
  readonly [INJECTED_DRIVER_BUGS]?: ReadonlySet<DriverBug>;
}

/** What propose() resolves with: where the command committed, and what the state machine returned. */
export interface Proposed<Result = unknown> {
  readonly index: LogIndex;
  readonly term: Term;
  readonly result: Result;
}

export interface PeerStatus {
  readonly id: NodeId;
  readonly match: LogIndex;
  readonly next: LogIndex;
  readonly state: string;
}

export interface NodeStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: Term;
  readonly leaderId: NodeId | undefined;
  readonly commitIndex: LogIndex;
  readonly appliedIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly snapshotIndex: LogIndex;
  readonly peers: readonly PeerStatus[];
  readonly stopped: boolean;
  /** Peer messages dropped because they cannot be true, by reason (see core/validate.ts). */
  readonly droppedMessages: Readonly<Record<string, number>>;
  /** Leader handing leadership over: to whom (proposals are refused meanwhile). */
  readonly transferTarget: NodeId | undefined;
  /** Times this node stepped down as leader for not hearing from a majority (check-quorum). */
  readonly quorumLost: number;
}

/** Not generic, so that a RaftNode<void> is also a RaftNode<unknown>. */
interface PendingProposal {
  readonly index: LogIndex;
  readonly term: Term;
  readonly resolve: (value: Proposed<unknown>) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ClockTimer;
}

/** An input waiting for the core, with the number of ticks that were pending when it arrived. */
type Input = (
  | { readonly kind: 'message'; readonly message: Message }
  | { readonly kind: 'read'; readonly id: number }
  | { readonly kind: 'snapshot'; readonly index: LogIndex; readonly data: Uint8Array }
  | { readonly kind: 'transfer'; readonly target: NodeId }
) & { readonly afterTicks: number };

interface PendingRead {
  readonly resolve: (index: LogIndex) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ClockTimer;
  /** Set once the leader confirmed the read: it may be served when this index is applied. */
  index: LogIndex | undefined;
}

const APPLIED_QUEUE_HIGH_WATER = 10_000;
const DEFAULT_APPEND_BYTES_MAX = 1024 * 1024;

/**
 * A Raft node: the core driven by a clock, a durable Storage and a Transport, behind an async API.
 * Its Readys go through the one ReadyDriver (src/driver/ready-driver.ts). Inputs (ticks, peer
 * messages, reads, compactions) queue while a Ready is being made durable and are all fed to the
 * core before the next one, so one fsync covers everything that arrived meanwhile (group commit).
 * The same class runs in production (real timers, FileStorage, TcpTransport) and in the explorer
 * (virtual clock, simulated disk and network).
 */
export class RaftNode<Result = unknown> {
  readonly id: NodeId;
  private readonly options: RaftNodeOptions<Result>;
  private readonly core: RaftCore;
  private readonly driver: ReadyDriver;
  private readonly clock: Clock;
  private readonly commandBytesMax: number;
  private readonly inbox: Input[] = [];
  /** Callers of transferLeadership() waiting to hear of the new leader. */
  private readonly transferWaiters = new Set<{ resolve: (id: NodeId) => void; reject: (error: Error) => void; timer: ClockTimer }>();
  /** stop() is handing leadership over: messages are still received. */
  private handingOver = false;
  /** A transfer asked for but not yet fed to the core: proposals are refused already. */
  private transferQueued: NodeId | null = null;
  private pendingTicks = 0;
  private readonly pending = new Map<LogIndex, PendingProposal>();
  private runScheduled = false;
  private stopped = false;
  private stopping: Promise<void> | null = null;
  private writeFinished: (() => void) | null = null;
  private fatal: Error | null = null;
  private readonly tickTimer: ClockTimer;
  private lastLeaderTerm: Term = -1;
  private readonly appliedQueue: Applied[] = [];
  private appliedWaiter: (() => void) | null = null;
  private subscribed = false;
  private readonly reads = new Map<number, PendingRead>();
  private nextReadId = 1;

  private constructor(options: RaftNodeOptions<Result>, core: RaftCore, commandBytesMax: number) {
    this.options = options;
    this.id = options.id;
    this.core = core;
    this.commandBytesMax = commandBytesMax;
    this.clock = options.clock ?? realClock;
    this.driver = new ReadyDriver(core, this.durableWrite(options.storage), {
      feed: () => this.feedInputs(),
      send: (message) => this.options.transport.send(message),
      restore: (snapshot) => this.restore(snapshot),
      apply: (entry) => this.apply(entry),
      confirmReads: (states) => this.confirmReads(states),
      fail: (error) => this.fail(error),
      advanced: () => this.afterReady(),
      held: () => (this.stopping !== null && !this.handingOver) || this.appliedQueue.length >= APPLIED_QUEUE_HIGH_WATER,
    }, options[INJECTED_DRIVER_BUGS]);
    this.tickTimer = this.clock.repeat(options.timing?.tickMs ?? 10, () => {
      this.pendingTicks++;
      this.kick();
    });
  }

  /** Opens storage, starts the transport and the timers. Rejects with ConfigError on bad options. */
  static async start<Result = unknown>(options: RaftNodeOptions<Result>): Promise<RaftNode<Result>> {
    const { config, commandBytesMax } = RaftNode.coreConfig(options);
    const restored = await options.storage.open();
    const core = new RaftCore(config, restored);
    if (restored.snapshot !== null) options.stateMachine?.restore(restored.snapshot);
    const node = new RaftNode(options, core, commandBytesMax);
    if (restored.snapshot !== null) node.publish({ kind: 'snapshot', snapshot: restored.snapshot });
    await options.transport.start((message) => node.receive(message));
    return node;
  }

  private static coreConfig(options: RaftNodeOptions<unknown>): { config: RaftConfig; commandBytesMax: number } {
    const timing = options.timing ?? {};
    const stateMachine = options.stateMachine;
    const tickMs = timing.tickMs ?? 10;
    const problems: string[] = [];
    const positive = (name: string, value: number | undefined): void => {
      if (value !== undefined && !(Number.isFinite(value) && value > 0)) problems.push(`${name} must be a positive number, got ${value}`);
    };
    positive('timing.tickMs', timing.tickMs);
    positive('timing.heartbeatMs', timing.heartbeatMs);
    positive('timing.electionTimeoutMinMs', timing.electionTimeoutMinMs);
    positive('timing.electionTimeoutMaxMs', timing.electionTimeoutMaxMs);
    positive('proposeTimeoutMs', options.proposeTimeoutMs);
    // Whatever the limits say, one message must be able to carry one entry and one snapshot chunk.
    const messageMax = options.transport.maxMessageBytes ?? Number.POSITIVE_INFINITY;
    const commandBytesMax = messageMax - MESSAGE_ENVELOPE_BYTES - ENTRY_ENVELOPE_BYTES;
    if (commandBytesMax < 1024) {
      problems.push(`the transport carries messages of at most ${messageMax} bytes; at least ${1024 + MESSAGE_ENVELOPE_BYTES + ENTRY_ENVELOPE_BYTES} are needed`);
    }
    const withinMessage = (bytes: number): number => Math.min(bytes, messageMax - MESSAGE_ENVELOPE_BYTES);
    const ticks = (ms: number): number => Math.max(1, Math.round(ms / tickMs));
    const config: RaftConfig = {
      id: options.id,
      peers: options.peers,
      heartbeatIntervalTicks: ticks(timing.heartbeatMs ?? 100),
      electionTimeoutTicksMin: ticks(timing.electionTimeoutMinMs ?? 1000),
      electionTimeoutTicksMax: ticks(timing.electionTimeoutMaxMs ?? 2000),
      appendBytesMax: withinMessage(options.appendBytesMax ?? DEFAULT_APPEND_BYTES_MAX),
      snapshotChunkBytes: withinMessage(options.snapshotChunkBytes ?? DEFAULT_SNAPSHOT_CHUNK_BYTES),
      random: options.random ?? { nextInt: (max) => randomInt(max) },
      ...(options.preVote === undefined ? {} : { preVote: options.preVote }),
      checkQuorum: options.checkQuorum ?? true,
      ...(options.snapshotBytesMax === undefined ? {} : { snapshotBytesMax: options.snapshotBytesMax }),
      ...(stateMachine?.validateSnapshot === undefined ? {} : { validateSnapshot: (snapshot: Snapshot) => stateMachine.validateSnapshot!(snapshot) }),
      ...(options[INJECTED_BUGS] === undefined ? {} : { [INJECTED_BUGS]: options[INJECTED_BUGS] }),
    };
    const names: Record<string, string> = {
      heartbeatIntervalTicks: 'timing.heartbeatMs (in ticks)',
      electionTimeoutTicksMin: 'timing.electionTimeoutMinMs (in ticks)',
      electionTimeoutTicksMax: 'timing.electionTimeoutMaxMs (in ticks)',
    };
    problems.push(...validateConfig(config).map((p) => p.replace(/\b(heartbeatIntervalTicks|electionTimeoutTicksMin|electionTimeoutTicksMax)\b/g, (n) => names[n] ?? n)));
    if (problems.length > 0) throw new ConfigError(problems);
    return { config, commandBytesMax };
  }

  /** The Storage's callback form when it has one (the simulator's disk), else its promise. */
  private durableWrite(storage: Storage): DurableWrite {
    if (hasCallbackSave(storage)) return (hardState, snapshot, logWrite, done) => storage.saveWithCallback(hardState, snapshot, logWrite, done);
    return (hardState, snapshot, logWrite, done) => {
      storage.save(hardState, snapshot, logWrite).then(
        () => done(null),
        (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
      );
    };
  }

  // ------------------------------------------------------------------ public API

  /**
   * Appends a command to the leader's log at once and returns its index and term without waiting
   * for commit (6.824's Start()); returns null if this node is not the leader, is stopped, or the
   * command is too large for one message.
   */
  start(command: Uint8Array): { index: LogIndex; term: Term } | null {
    if (this.stopped || this.stopping !== null || command.length > this.commandBytesMax) return null;
    const result = this.core.propose(command);
    if (result !== null) this.kick();
    return result;
  }

  /**
   * Proposes a command. Resolves once it is committed and applied here, with its index, term and
   * the state machine's result; rejects with NotLeaderError (with the leader's id and address when
   * known) if this node is not the leader, OutcomeUnknownError if it stops being the leader after
   * appending the command (it may still commit), LeadershipTransferError while it hands leadership
   * over, ProposalTooLargeError, ProposalTimeoutError, ProposalDroppedError, BusyError or
   * NodeStoppedError.
   */
  propose(command: Uint8Array, options: { timeoutMs?: number } = {}): Promise<Proposed<Result>> {
    if (this.stopped || this.stopping !== null) return Promise.reject(this.fatal ?? new NodeStoppedError());
    if (command.length > this.commandBytesMax) return Promise.reject(new ProposalTooLargeError(command.length, this.commandBytesMax));
    if (!this.core.isLeader) return Promise.reject(this.notLeader());
    if (this.transferQueued !== null) return Promise.reject(new LeadershipTransferError(this.transferQueued));
    const limit = this.options.proposalsInFlightMax ?? 65_536;
    if (this.pending.size >= limit) return Promise.reject(new BusyError(limit));
    const result = this.core.propose(command);
    if (result === null) {
      const target = this.core.status(false).transferTarget;
      return Promise.reject(this.core.isLeader && target >= 0 ? new LeadershipTransferError(target) : this.notLeader());
    }
    const timeoutMs = options.timeoutMs ?? this.options.proposeTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const timer = this.clock.schedule(timeoutMs, () => {
        if (this.pending.get(result.index)?.timer === timer) {
          this.pending.delete(result.index);
          reject(new ProposalTimeoutError(timeoutMs));
        }
      });
      const settle = resolve as (value: Proposed<unknown>) => void;
      this.pending.set(result.index, { index: result.index, term: result.term, resolve: settle, reject, timer });
      this.kick();
    });
  }

  /**
   * A linearizable read barrier (ReadIndex): resolves with an index once this node, as leader, has
   * confirmed with a majority that it still leads and its state machine has applied that index.
   * Reading the state machine right after it resolves observes every write that completed before
   * read() was called. Rejects with NotLeaderError on a follower or if leadership is lost, with
   * ProposalTimeoutError after `timeoutMs` (default: proposeTimeoutMs), and with BusyError when
   * proposalsInFlightMax reads are already waiting.
   */
  read(options: { timeoutMs?: number } = {}): Promise<LogIndex> {
    if (this.stopped || this.stopping !== null) return Promise.reject(this.fatal ?? new NodeStoppedError());
    if (!this.core.isLeader) return Promise.reject(this.notLeader());
    const limit = this.options.proposalsInFlightMax ?? 65_536;
    if (this.reads.size >= limit) return Promise.reject(new BusyError(limit));
    const id = this.nextReadId++;
    const timeoutMs = options.timeoutMs ?? this.options.proposeTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const timer = this.clock.schedule(timeoutMs, () => {
        if (this.reads.delete(id)) reject(new ProposalTimeoutError(timeoutMs));
      });
      this.reads.set(id, { resolve, reject, timer, index: undefined });
      this.inbox.push({ kind: 'read', id, afterTicks: this.pendingTicks });
      this.kick();
    });
  }

  /**
   * Hands leadership to `to` (default: the follower whose log is most up to date): this leader
   * stops taking proposals, brings the target's log up to date and tells it to campaign at once
   * (thesis §3.10), so the cluster is without a leader for about one round trip instead of an
   * election timeout. Resolves with the new leader's id once this node hears of it; rejects with
   * NotLeaderError on a follower, ConfigError for a target that is not another member, and a
   * RaftError TSRAFT_TRANSFER_TIMEOUT if no new leader was heard of within `timeoutMs` (default: two
   * maximum election timeouts; the core abandons the transfer after one, and proposals resume).
   */
  transferLeadership(to?: NodeId, options: { timeoutMs?: number } = {}): Promise<NodeId> {
    if (this.stopped || (this.stopping !== null && !this.handingOver)) return Promise.reject(this.fatal ?? new NodeStoppedError());
    if (!this.core.isLeader) return Promise.reject(this.notLeader());
    const target = to ?? this.mostUpToDateFollower();
    if (target === undefined || target === this.id || !this.options.peers.includes(target)) {
      return Promise.reject(new ConfigError([`cannot hand leadership to ${String(target)}: not another member of [${this.options.peers.join(', ')}]`]));
    }
    const timeoutMs = options.timeoutMs ?? 2 * (this.options.timing?.electionTimeoutMaxMs ?? 2000);
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, timer: this.clock.schedule(timeoutMs, () => {
        this.transferWaiters.delete(waiter);
        reject(new RaftError(`no new leader was heard of within ${timeoutMs} ms of handing leadership to node ${target}`, 'TSRAFT_TRANSFER_TIMEOUT'));
      }) };
      this.transferWaiters.add(waiter);
      this.transferQueued = target;
      this.inbox.push({ kind: 'transfer', target, afterTicks: this.pendingTicks });
      this.kick();
    });
  }

  private mostUpToDateFollower(): NodeId | undefined {
    let best: { id: NodeId; match: LogIndex } | undefined;
    for (const [id, pr] of this.core.status(true).progress) if (best === undefined || pr.match > best.match) best = { id, match: pr.match };
    return best?.id;
  }

  /** Resolves transfers once another node is known to lead. */
  private settleTransfers(): void {
    if (this.transferWaiters.size === 0) return;
    const leaderId = this.core.status(false).leaderId;
    if (leaderId < 0 || leaderId === this.id) return;
    for (const waiter of this.transferWaiters) {
      waiter.timer.cancel();
      waiter.resolve(leaderId);
    }
    this.transferWaiters.clear();
  }

  /** Asks the core to compact its log up to `index`, which the state machine captured in `data`. */
  snapshot(index: LogIndex, data: Uint8Array): void {
    if (this.stopped) return;
    const applied = this.driver.appliedIndex;
    if (!Number.isSafeInteger(index) || index < 0 || index > applied) {
      throw new RangeError(`snapshot index ${index} must be an applied index (0..${applied})`);
    }
    this.inbox.push({ kind: 'snapshot', index, data, afterTicks: this.pendingTicks });
    this.kick();
  }

  /** Applied entries and snapshots, in log order, from the moment of the first call. */
  async *applied(): AsyncGenerator<Applied> {
    this.subscribed = true;
    for (;;) {
      const item = this.appliedQueue.shift();
      if (item !== undefined) {
        // The loop holds while the queue is full; a drained queue lets it go on.
        if (this.appliedQueue.length === APPLIED_QUEUE_HIGH_WATER / 2) this.kick();
        yield item;
        continue;
      }
      if (this.stopped) return;
      await new Promise<void>((resolve) => {
        this.appliedWaiter = resolve;
      });
    }
  }

  status(): NodeStatus {
    const status: RaftStatus = this.core.status();
    return {
      id: this.id,
      role: status.role,
      term: status.term,
      leaderId: status.leaderId < 0 ? undefined : status.leaderId,
      commitIndex: status.commitIndex,
      appliedIndex: status.appliedIndex,
      lastIndex: status.lastIndex,
      snapshotIndex: status.snapshotIndex,
      peers: [...status.progress].map(([id, pr]) => ({ id, match: pr.match, next: pr.next, state: pr.state })),
      stopped: this.stopped,
      droppedMessages: Object.fromEntries(this.core.droppedMessages()),
      transferTarget: status.transferTarget < 0 ? undefined : status.transferTarget,
      quorumLost: status.quorumLost,
    };
  }

  /** The core's full status (for checkers and the simulator); `withProgress` false is cheaper. */
  raftStatus(withProgress = true): RaftStatus {
    return this.core.status(withProgress);
  }

  /** The entry at `index`, if this node's log holds it (for checkers). */
  entryAt(index: LogIndex): Entry | undefined {
    return this.core.entryAt(index);
  }

  /** The error that stopped this node, if one did. */
  get fatalError(): Error | null {
    return this.fatal;
  }

  /**
   * Stops the timers, lets the write in progress finish (its messages are sent and its entries
   * applied), rejects waiting proposals and reads, then closes transport and storage. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      // A leader hands over first, so that its stop costs the cluster a round trip, not an
      // election timeout. New proposals and reads are refused meanwhile; messages still flow.
      if (!this.stopped && this.core.isLeader && this.options.peers.length > 1 && (this.options.transferLeadershipOnStop ?? true)) {
        this.handingOver = true;
        await this.transferLeadership(undefined, { timeoutMs: this.options.timing?.electionTimeoutMaxMs ?? 2000 }).catch(() => undefined);
        this.handingOver = false;
      }
      this.tickTimer.cancel();
      if (!this.stopped && this.driver.writePending) {
        await new Promise<void>((resolve) => {
          this.writeFinished = resolve;
        });
      }
      this.halt(new NodeStoppedError());
      await this.options.transport.close();
      await this.options.storage.close();
    })();
    return this.stopping;
  }

  // ------------------------------------------------------------------ the loop

  private receive(message: Message): void {
    if (this.stopped || (this.stopping !== null && !this.handingOver)) return;
    if (this.inbox.length >= (this.options.inboxMax ?? 65_536)) return; // Raft tolerates a dropped message
    this.inbox.push({ kind: 'message', message, afterTicks: this.pendingTicks });
    this.kick();
  }

  /** Runs the driver soon: inputs that arrive together are fed to the core together. */
  private kick(): void {
    if (this.runScheduled || this.stopped) return;
    this.runScheduled = true;
    this.clock.defer(() => {
      this.runScheduled = false;
      this.driver.run();
    });
  }

  /**
   * Feeds the core what queued up while the driver waited (a slow fsync, a busy event loop), in the
   * order it happened: ticks first and messages after would make a follower whose leader's
   * heartbeats were waiting in the inbox time out and start an election it has no reason for.
   */
  private feedInputs(): void {
    const ticks = this.pendingTicks;
    this.pendingTicks = 0;
    let ticked = 0;
    const inputs = this.inbox.splice(0);
    for (const input of inputs) {
      for (; ticked < input.afterTicks; ticked++) this.core.tick();
      switch (input.kind) {
        case 'message':
          if (input.message.to === this.id) this.core.step(input.message);
          break;
        case 'snapshot':
          this.core.snapshot(input.index, input.data);
          break;
        case 'read':
          if (!this.core.requestRead(input.id)) this.settleRead(input.id, this.notLeader());
          break;
        case 'transfer':
          this.core.transferLeadership(input.target);
          this.transferQueued = null; // the core refuses proposals from here on
          break;
      }
    }
    for (; ticked < ticks; ticked++) this.core.tick();
    this.noticeLeadershipLoss();
  }

  /** A leader that lost its term cannot vouch for its proposals: tell their callers now. */
  private noticeLeadershipLoss(): void {
    if (this.core.isLeader) {
      this.lastLeaderTerm = this.core.term;
      return;
    }
    if (this.lastLeaderTerm >= 0 && this.pending.size > 0) {
      const leaderId = this.core.status(false).leaderId;
      const known = leaderId >= 0 && leaderId !== this.id ? leaderId : undefined;
      for (const proposal of [...this.pending.values()]) this.settle(proposal, new OutcomeUnknownError(proposal.index, known));
    }
    if (this.lastLeaderTerm >= 0) {
      for (const id of [...this.reads.keys()]) this.settleRead(id, this.notLeader('leadership was lost before the read was confirmed'));
    }
    this.lastLeaderTerm = -1;
  }

  private restore(snapshot: Snapshot): void {
    this.options.stateMachine?.restore(snapshot);
    this.publish({ kind: 'snapshot', snapshot });
    // Entries the snapshot covers were never applied here: whether they took effect is unknown.
    for (const [index, proposal] of [...this.pending]) {
      if (index > snapshot.index) continue;
      this.settle(proposal, new OutcomeUnknownError(index, undefined, 'a snapshot from the leader replaced the log before the proposal was seen to commit'));
    }
  }

  private apply(entry: Entry): void {
    const result: unknown = this.options.stateMachine?.apply(entry);
    this.publish({ kind: 'entry', entry });
    const proposal = this.pending.get(entry.index);
    // Another leader's entry at this index means the proposal was overwritten: it never commits.
    if (proposal !== undefined) {
      this.settle(proposal, entry.term === proposal.term ? { index: proposal.index, term: proposal.term, result } : new ProposalDroppedError(proposal.index));
    }
  }

  private confirmReads(states: readonly ReadState[]): void {
    for (const state of states) {
      const read = this.reads.get(state.id);
      if (read !== undefined) read.index = state.index;
    }
  }

  private afterReady(): void {
    this.releaseReads();
    this.settleTransfers();
    const finished = this.writeFinished;
    if (finished !== null) {
      this.writeFinished = null;
      finished();
    }
  }

  /** Serves every confirmed read whose index the state machine has reached. */
  private releaseReads(): void {
    if (this.reads.size === 0) return;
    const applied = this.driver.appliedIndex;
    for (const [id, read] of this.reads) {
      if (read.index !== undefined && read.index <= applied) this.settleRead(id, read.index);
    }
  }

  private settleRead(id: number, outcome: LogIndex | Error): void {
    const read = this.reads.get(id);
    if (read === undefined) return;
    this.reads.delete(id);
    read.timer.cancel();
    if (typeof outcome === 'number') read.resolve(outcome);
    else read.reject(outcome);
  }

  /** Ends a waiting proposal: resolved with its outcome, or rejected with an error. */
  private settle(proposal: PendingProposal, outcome: Proposed<unknown> | Error): void {
    proposal.timer.cancel();
    this.pending.delete(proposal.index);
    if (outcome instanceof Error) proposal.reject(outcome);
    else proposal.resolve(outcome);
  }

  private publish(item: Applied): void {
    if (!this.subscribed) return;
    this.appliedQueue.push(item);
    const waiter = this.appliedWaiter;
    if (waiter !== null) {
      this.appliedWaiter = null;
      waiter();
    }
  }

  /** A write failed, or the core or the state machine threw: this node stops for good. */
  private fail(error: Error): void {
    this.fatal = error;
    this.halt(error);
    this.options.onFatal?.(error);
  }

  private halt(error: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.tickTimer.cancel();
    this.driver.stop();
    this.rejectAll(error);
    this.appliedWaiter?.();
    const finished = this.writeFinished;
    this.writeFinished = null;
    finished?.();
  }

  /**
   * A proposal waiting here is already in the log, and may have reached followers that will commit
   * it without us: its caller is told the outcome is unknown, never that it failed.
   */
  private rejectAll(error: Error): void {
    const reason = `this node stopped (${error.message}) before the proposal was seen to commit`;
    for (const proposal of [...this.pending.values()]) this.settle(proposal, new OutcomeUnknownError(proposal.index, undefined, reason));
    for (const id of [...this.reads.keys()]) this.settleRead(id, error);
    for (const waiter of this.transferWaiters) {
      waiter.timer.cancel();
      waiter.reject(error);
    }
    this.transferWaiters.clear();
  }

  private notLeader(reason?: string, leader?: NodeId): NotLeaderError {
    const leaderId = leader ?? this.core.status().leaderId;
    const known = leaderId >= 0 && leaderId !== this.id ? leaderId : undefined;
    return new NotLeaderError(known, known === undefined ? undefined : this.options.addresses?.get(known), reason);
  }
}
