import { randomInt } from 'node:crypto';
import { validateConfig, type RaftConfig } from '../core/config.js';
import type { Entry, LogIndex, Message, NodeId, Snapshot, Term } from '../core/messages.js';
import { RaftCore, type RaftStatus, type Role } from '../core/raft.js';
import type { RandomSource } from '../core/rng.js';
import { Prng } from '../sim/prng.js';
import type { Storage } from '../storage/storage.js';
import type { Transport } from '../transport/transport.js';
import { BusyError, ConfigError, NodeStoppedError, NotLeaderError, ProposalDroppedError, ProposalTimeoutError } from './errors.js';

/** What the application receives, in log order. */
export type Applied = { readonly kind: 'entry'; readonly entry: Entry } | { readonly kind: 'snapshot'; readonly snapshot: Snapshot };

/** The application's state machine, called synchronously in log order. */
export interface StateMachine {
  apply(entry: Entry): void;
  /** Replace the whole state with a snapshot received from the leader. */
  restore(snapshot: Snapshot): void;
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

export interface RaftNodeOptions {
  readonly id: NodeId;
  /** Every member's id, this node included. */
  readonly peers: readonly NodeId[];
  readonly storage: Storage;
  readonly transport: Transport;
  readonly stateMachine?: StateMachine;
  readonly timing?: RaftNodeTiming;
  /** How long propose() waits for commit before rejecting (default 10 s). */
  readonly proposeTimeoutMs?: number;
  /** Proposals waiting for commit at once before propose() rejects with BusyError (default 65536). */
  readonly proposalsInFlightMax?: number;
  /** Peer messages queued for the core before new ones are dropped (default 65536). */
  readonly inboxMax?: number;
  /** Addresses reported in NotLeaderError, e.g. an HTTP URL per node. */
  readonly addresses?: ReadonlyMap<NodeId, string>;
  /** Election jitter; a cryptographically seeded PRNG by default. */
  readonly random?: RandomSource;
  readonly appendBytesMax?: number;
  readonly snapshotChunkBytes?: number;
  /** Called once if the node stops because of a fatal error (storage failure, broken invariant). */
  readonly onFatal?: (error: Error) => void;
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
}

interface PendingProposal {
  readonly index: LogIndex;
  readonly term: Term;
  readonly resolve: (value: { index: LogIndex; term: Term }) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

type Input =
  | { readonly kind: 'message'; readonly message: Message }
  | { readonly kind: 'read'; readonly id: number }
  | { readonly kind: 'snapshot'; readonly index: LogIndex; readonly data: Uint8Array };

interface PendingRead {
  readonly resolve: (index: LogIndex) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
  /** Set once the leader confirmed the read: it may be served when this index is applied. */
  index: LogIndex | undefined;
}

interface ProposalRequest {
  readonly command: Uint8Array;
  readonly resolve: PendingProposal['resolve'];
  readonly reject: PendingProposal['reject'];
  readonly timeoutMs: number;
}

const APPLIED_QUEUE_HIGH_WATER = 10_000;

/**
 * A Raft node in the real world: the core driven by real timers, a durable Storage and a
 * Transport, behind an async API. One loop owns the core: inputs (ticks, messages, proposals)
 * queue while a Ready is being made durable, and are all fed to the core before the next Ready,
 * so one fsync covers everything that arrived during the previous one (group commit).
 */
export class RaftNode {
  readonly id: NodeId;
  private readonly options: RaftNodeOptions;
  private readonly core: RaftCore;
  private readonly inbox: Input[] = [];
  private pendingTicks = 0;
  private readonly pending = new Map<LogIndex, PendingProposal>();
  private wake: (() => void) | null = null;
  private stopped = false;
  private fatal: Error | null = null;
  private readonly tickTimer: ReturnType<typeof setInterval>;
  private readonly loopDone: Promise<void>;
  private lastLeaderTerm: Term = -1;
  private readonly appliedQueue: Applied[] = [];
  private appliedWaiter: (() => void) | null = null;
  private appliedDrained: (() => void) | null = null;
  private subscribed = false;
  private readonly reads = new Map<number, PendingRead>();
  private nextReadId = 1;
  /** The last index handed to the state machine (it may be mid-Ready, not yet advanced). */
  private appliedThrough: LogIndex = 0;

  private constructor(options: RaftNodeOptions, core: RaftCore) {
    this.options = options;
    this.id = options.id;
    this.core = core;
    const tickMs = options.timing?.tickMs ?? 10;
    this.tickTimer = setInterval(() => {
      this.pendingTicks++;
      this.signal();
    }, tickMs);
    this.loopDone = this.loop();
  }

  /** Opens storage, starts the transport and the timers. Rejects with ConfigError on bad options. */
  static async start(options: RaftNodeOptions): Promise<RaftNode> {
    const config = RaftNode.coreConfig(options);
    const restored = await options.storage.open();
    const core = new RaftCore(config, restored);
    if (restored.snapshot !== null) options.stateMachine?.restore(restored.snapshot);
    const node = new RaftNode(options, core);
    node.appliedThrough = core.status().appliedIndex;
    if (restored.snapshot !== null) node.publish({ kind: 'snapshot', snapshot: restored.snapshot });
    await options.transport.start((message) => node.receive(message));
    return node;
  }

  private static coreConfig(options: RaftNodeOptions): RaftConfig {
    const timing = options.timing ?? {};
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
    const ticks = (ms: number): number => Math.max(1, Math.round(ms / tickMs));
    const config: RaftConfig = {
      id: options.id,
      peers: options.peers,
      heartbeatIntervalTicks: ticks(timing.heartbeatMs ?? 100),
      electionTimeoutTicksMin: ticks(timing.electionTimeoutMinMs ?? 1000),
      electionTimeoutTicksMax: ticks(timing.electionTimeoutMaxMs ?? 2000),
      appendBytesMax: options.appendBytesMax ?? 1024 * 1024,
      random: options.random ?? new Prng(randomInt(2 ** 47)),
      ...(options.snapshotChunkBytes === undefined ? {} : { snapshotChunkBytes: options.snapshotChunkBytes }),
    };
    problems.push(...validateConfig(config).map((p) => p.replace(/Ticks(Min|Max)?\b/g, ' (in ticks)')));
    if (problems.length > 0) throw new ConfigError(problems);
    return config;
  }

  // ------------------------------------------------------------------ public API

  /**
   * Appends a command to the leader's log at once and returns its index and term without waiting
   * for commit (6.824's Start()); returns null if this node is not the leader or is stopped.
   */
  start(command: Uint8Array): { index: LogIndex; term: Term } | null {
    if (this.stopped) return null;
    const result = this.core.propose(command);
    if (result !== null) this.signal();
    return result;
  }

  /**
   * Proposes a command. Resolves with its index and term once it is committed and applied here;
   * rejects with NotLeaderError (with the leader's id and address when known) if this node is not
   * the leader or stops being it, ProposalTimeoutError, ProposalDroppedError or BusyError.
   */
  propose(command: Uint8Array, options: { timeoutMs?: number } = {}): Promise<{ index: LogIndex; term: Term }> {
    if (this.stopped) return Promise.reject(this.fatal ?? new NodeStoppedError());
    if (!this.core.isLeader) return Promise.reject(this.notLeader());
    const limit = this.options.proposalsInFlightMax ?? 65_536;
    if (this.pending.size >= limit) return Promise.reject(new BusyError(limit));
    return new Promise((resolve, reject) => {
      this.startProposal({ command, resolve, reject, timeoutMs: options.timeoutMs ?? this.options.proposeTimeoutMs ?? 10_000 });
      this.signal();
    });
  }

  /**
   * A linearizable read barrier (ReadIndex): resolves with an index once this node, as leader, has
   * confirmed with a majority that it still leads and its state machine has applied that index.
   * Reading the state machine right after it resolves observes every write that completed before
   * read() was called. Rejects with NotLeaderError on a follower or if leadership is lost, and with
   * ProposalTimeoutError after `timeoutMs` (default: proposeTimeoutMs).
   */
  read(options: { timeoutMs?: number } = {}): Promise<LogIndex> {
    if (this.stopped) return Promise.reject(this.fatal ?? new NodeStoppedError());
    if (!this.core.isLeader) return Promise.reject(this.notLeader());
    const id = this.nextReadId++;
    const timeoutMs = options.timeoutMs ?? this.options.proposeTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.reads.delete(id)) reject(new ProposalTimeoutError(timeoutMs));
      }, timeoutMs);
      this.reads.set(id, { resolve, reject, timer, index: undefined });
      this.inbox.push({ kind: 'read', id });
      this.signal();
    });
  }

  /** Asks the core to compact its log up to `index`, which the state machine captured in `data`. */
  snapshot(index: LogIndex, data: Uint8Array): void {
    if (this.stopped) return;
    const applied = this.appliedThrough;
    if (!Number.isSafeInteger(index) || index < 0 || index > applied) {
      throw new RangeError(`snapshot index ${index} must be an applied index (0..${applied})`);
    }
    this.inbox.push({ kind: 'snapshot', index, data });
    this.signal();
  }

  /** Applied entries and snapshots, in log order, from the moment of the first call. */
  async *applied(): AsyncGenerator<Applied> {
    this.subscribed = true;
    for (;;) {
      const item = this.appliedQueue.shift();
      if (item !== undefined) {
        if (this.appliedQueue.length < APPLIED_QUEUE_HIGH_WATER / 2) this.appliedDrained?.();
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
    };
  }

  /** Stops the timers, finishes the Ready in progress, rejects waiting proposals, closes transport and storage. */
  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      clearInterval(this.tickTimer);
      this.signal();
      this.appliedDrained?.();
    }
    await this.loopDone;
    await this.options.transport.close();
    await this.options.storage.close();
  }

  // ------------------------------------------------------------------ the loop

  private receive(message: Message): void {
    if (this.stopped) return;
    if (this.inbox.length >= (this.options.inboxMax ?? 65_536)) return; // Raft tolerates a dropped message
    this.inbox.push({ kind: 'message', message });
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    if (wake !== null) {
      this.wake = null;
      wake();
    }
  }

  private async loop(): Promise<void> {
    try {
      while (!this.stopped) {
        if (this.inbox.length === 0 && this.pendingTicks === 0 && !this.core.hasReady()) {
          await new Promise<void>((resolve) => {
            this.wake = resolve;
          });
          continue;
        }
        this.feedInputs();
        if (this.core.hasReady()) await this.handleReady();
      }
    } catch (error) {
      this.fatal = error instanceof Error ? error : new Error(String(error));
      this.stopped = true;
      clearInterval(this.tickTimer);
      this.options.onFatal?.(this.fatal);
    } finally {
      this.rejectAll(this.fatal ?? new NodeStoppedError());
      this.appliedWaiter?.();
      this.appliedDrained?.();
    }
  }

  private feedInputs(): void {
    const ticks = this.pendingTicks;
    this.pendingTicks = 0;
    for (let i = 0; i < ticks; i++) this.core.tick();
    const inputs = this.inbox.splice(0);
    for (const input of inputs) {
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
      }
    }
    this.noticeLeadershipLoss();
  }

  private startProposal(input: ProposalRequest): void {
    const result = this.core.propose(input.command);
    if (result === null) {
      input.reject(this.notLeader());
      return;
    }
    const timer = setTimeout(() => {
      if (this.pending.get(result.index)?.timer === timer) {
        this.pending.delete(result.index);
        input.reject(new ProposalTimeoutError(input.timeoutMs));
      }
    }, input.timeoutMs);
    this.pending.set(result.index, { index: result.index, term: result.term, resolve: input.resolve, reject: input.reject, timer });
  }

  /** A leader that lost its term cannot vouch for its proposals: tell their callers now. */
  private noticeLeadershipLoss(): void {
    if (this.core.isLeader) {
      this.lastLeaderTerm = this.core.term;
      return;
    }
    if (this.lastLeaderTerm >= 0 && this.pending.size > 0) {
      const status = this.core.status();
      this.rejectAll(this.notLeader('leadership was lost before the proposal committed (it may still commit)', status.leaderId));
    }
    if (this.lastLeaderTerm >= 0) {
      for (const id of [...this.reads.keys()]) this.settleRead(id, this.notLeader('leadership was lost before the read was confirmed'));
    }
    this.lastLeaderTerm = -1;
  }

  private async handleReady(): Promise<void> {
    const ready = this.core.ready();
    const transport = this.options.transport;
    if (ready.hardState !== null || ready.snapshotWrite !== null || ready.logWrite !== null) {
      // A leader's AppendEntries and snapshot chunks vouch for nothing durable (the leader counts
      // its own copy only once it is durable, thesis §10.2.1), so they go out while the disk
      // writes; votes and acknowledgements wait for the fsync.
      const replies: Message[] = [];
      for (const message of ready.messages) {
        if (message.type === 'AppendEntries' || message.type === 'InstallSnapshot') transport.send(message);
        else replies.push(message);
      }
      await this.options.storage.save(ready.hardState, ready.snapshotWrite, ready.logWrite);
      for (const message of replies) transport.send(message);
    } else {
      for (const message of ready.messages) transport.send(message);
    }
    if (ready.snapshotToApply !== null) {
      this.appliedThrough = ready.snapshotToApply.index;
      this.options.stateMachine?.restore(ready.snapshotToApply);
      this.publish({ kind: 'snapshot', snapshot: ready.snapshotToApply });
      for (const [index, proposal] of this.pending) {
        if (index <= ready.snapshotToApply.index) this.settle(proposal, null);
      }
    }
    for (const entry of ready.committed) {
      this.appliedThrough = entry.index;
      this.options.stateMachine?.apply(entry);
      this.publish({ kind: 'entry', entry });
      const proposal = this.pending.get(entry.index);
      if (proposal !== undefined) this.settle(proposal, entry);
    }
    for (const state of ready.readStates) {
      const read = this.reads.get(state.id);
      if (read !== undefined) read.index = state.index;
    }
    this.releaseReads();
    this.core.advance(ready);
    if (this.appliedQueue.length >= APPLIED_QUEUE_HIGH_WATER) {
      // The application reads slower than we apply: stop taking new work until it catches up.
      await new Promise<void>((resolve) => {
        this.appliedDrained = resolve;
      });
      this.appliedDrained = null;
    }
  }

  /** Serves every confirmed read whose index the state machine has reached. */
  private releaseReads(): void {
    for (const [id, read] of this.reads) {
      if (read.index !== undefined && read.index <= this.appliedThrough) this.settleRead(id, read.index);
    }
  }

  private settleRead(id: number, outcome: LogIndex | Error): void {
    const read = this.reads.get(id);
    if (read === undefined) return;
    this.reads.delete(id);
    clearTimeout(read.timer);
    if (typeof outcome === 'number') read.resolve(outcome);
    else read.reject(outcome);
  }

  private settle(proposal: PendingProposal, entry: Entry | null): void {
    clearTimeout(proposal.timer);
    this.pending.delete(proposal.index);
    if (entry !== null && entry.term === proposal.term) proposal.resolve({ index: proposal.index, term: proposal.term });
    else proposal.reject(new ProposalDroppedError(proposal.index));
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

  private rejectAll(error: Error): void {
    for (const proposal of this.pending.values()) {
      clearTimeout(proposal.timer);
      proposal.reject(error);
    }
    this.pending.clear();
    for (const id of [...this.reads.keys()]) this.settleRead(id, error);
  }

  private notLeader(reason?: string, leader?: NodeId): NotLeaderError {
    const leaderId = leader ?? this.core.status().leaderId;
    const known = leaderId >= 0 && leaderId !== this.id ? leaderId : undefined;
    return new NotLeaderError(known, known === undefined ? undefined : this.options.addresses?.get(known), reason);
  }
}
