import { describeMembership, type Membership, type MembershipStep } from '../core/membership.js';
import type { Entry, LogIndex, Message, NodeId, Snapshot, SnapshotBody, Term } from '../core/messages.js';
import { silentLogger } from './logger.js';
import { RaftEventLog } from './raft-events.js';
import { RaftCore, type RaftStatus, type Role } from '../core/raft.js';
import { ReadyDriver, type DurableWrite } from '../driver/ready-driver.js';
import { hasCallbackSave, type Storage } from '../storage/storage.js';
import { realClock, type Clock, type ClockTimer } from './clock.js';
import {
  BusyError,
  ConfigError,
  LeadershipTransferError,
  MembershipChangeError,
  NodeStoppedError,
  NotLeaderError,
  ProposalTooLargeError,
  RaftError,
} from './errors.js';
import { coreConfig, INJECTED_DRIVER_BUGS, type RaftNodeOptions } from './node-config.js';
import { Waiters } from './waiters.js';

export { INJECTED_DRIVER_BUGS, MESSAGE_ENVELOPE_BYTES } from './node-config.js';
export type { RaftNodeOptions, RaftNodeTiming, StateMachine } from './node-config.js';

/** What the application receives, in log order. */
export type Applied = { readonly kind: 'entry'; readonly entry: Entry } | { readonly kind: 'snapshot'; readonly snapshot: Snapshot };

/** What propose() resolves with: where the command committed, and what the state machine returned. */
export interface Proposed<Result = unknown> {
  readonly index: LogIndex;
  readonly term: Term;
  readonly result: Result;
}

/** What changeMembership() resolves with. */
export interface MembershipChanged {
  /** Where the change's own configuration entry committed. */
  readonly index: LogIndex;
  readonly term: Term;
  /** The configuration in effect once the change completed (joint consensus left). */
  readonly membership: Membership;
  /** The index of the entry that completed it (the final configuration's, after a joint one). */
  readonly completedAt: LogIndex;
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
  /** The configuration in effect (the latest in this node's log, committed or not). */
  readonly membership: Membership;
  /** The index of the entry that set it (0: the starting configuration). */
  readonly membershipIndex: LogIndex;
}

/** An input waiting for the core, with the number of ticks that were pending when it arrived. */
type Input = (
  | { readonly kind: 'message'; readonly message: Message }
  | { readonly kind: 'read'; readonly id: number }
  | { readonly kind: 'snapshot'; readonly index: LogIndex; readonly data: SnapshotBody }
  | { readonly kind: 'transfer'; readonly target: NodeId }
) & { readonly afterTicks: number };

const APPLIED_QUEUE_HIGH_WATER = 10_000;

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
  /** stop() is handing leadership over: messages are still received. */
  private handingOver = false;
  /** A transfer asked for but not yet fed to the core: proposals are refused already. */
  private transferQueued: NodeId | null = null;
  private pendingTicks = 0;
  /** Callers waiting on this node: proposals, reads and leadership transfers. */
  private readonly waiters: Waiters;
  private runScheduled = false;
  private stopped = false;
  private stopping: Promise<void> | null = null;
  private writeFinished: (() => void) | null = null;
  private fatal: Error | null = null;
  private readonly tickTimer: ClockTimer;
  private lastLeaderTerm: Term = -1;
  private leadershipListener: ((term: Term) => void) | null = null;
  private readonly appliedQueue: Applied[] = [];
  private appliedWaiter: (() => void) | null = null;
  private subscribed = false;
  /** The configuration last reported to onMembershipChange. */
  private reportedMembership: Membership | null = null;
  /** Elections, role, term and leader changes, snapshots and configurations, as log lines. */
  private readonly events: RaftEventLog;

  private constructor(options: RaftNodeOptions<Result>, core: RaftCore, commandBytesMax: number) {
    this.options = options;
    this.id = options.id;
    this.core = core;
    this.commandBytesMax = commandBytesMax;
    this.clock = options.clock ?? realClock;
    this.waiters = new Waiters(this.clock);
    this.events = new RaftEventLog(options.logger ?? silentLogger, options.id);
    this.driver = new ReadyDriver(core, this.durableWrite(options.storage), {
      feed: () => this.feedInputs(),
      send: (message) => this.options.transport.send(message),
      restore: (snapshot) => this.restore(snapshot),
      apply: (entry) => this.apply(entry),
      confirmReads: (states) => this.waiters.confirmReads(states),
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
    const { config, commandBytesMax } = coreConfig(options);
    const restored = await options.storage.open();
    const core = new RaftCore(config, restored);
    if (restored.snapshot !== null) options.stateMachine?.restore(restored.snapshot);
    const node = new RaftNode(options, core, commandBytesMax);
    if (restored.snapshot !== null) node.publish({ kind: 'snapshot', snapshot: restored.snapshot });
    node.reportMembership();
    node.events.observe(core.status(false));
    await options.transport.start((message) => node.receive(message));
    return node;
  }

  /** The Storage's callback form when it has one (the simulator's disk), else its promise. */
  private durableWrite(storage: Storage): DurableWrite {
    if (hasCallbackSave(storage)) return (hardState, snapshot, logWrite, done) => storage.saveWithCallback(hardState, snapshot, logWrite, done);
    return (hardState, snapshot, logWrite, done) => {
      storage.save(hardState, snapshot, logWrite).then(
        () => {
          try {
            // From now on the snapshot is read from disk when a follower needs it, not kept in memory.
            const stored = snapshot === null ? null : (storage.storedSnapshot?.(snapshot.index) ?? null);
            if (stored !== null) this.core.snapshotStored(snapshot!.index, stored.body, stored.checksum);
          } catch (error) {
            done(error instanceof Error ? error : new Error(String(error)));
            return;
          }
          done(null);
        },
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
    if (this.waiters.proposalCount >= limit) return Promise.reject(new BusyError(limit));
    const result = this.core.propose(command);
    if (result === null) {
      const target = this.core.status(false).transferTarget;
      return Promise.reject(this.core.isLeader && target >= 0 ? new LeadershipTransferError(target) : this.notLeader());
    }
    const timeoutMs = options.timeoutMs ?? this.options.proposeTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      this.waiters.addProposal(result.index, result.term, timeoutMs, resolve as (value: Proposed<unknown>) => void, reject);
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
    if (this.waiters.readCount >= limit) return Promise.reject(new BusyError(limit));
    const timeoutMs = options.timeoutMs ?? this.options.proposeTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const id = this.waiters.addRead(timeoutMs, resolve, reject);
      this.inbox.push({ kind: 'read', id, afterTicks: this.pendingTicks });
      this.kick();
    });
  }

  /**
   * Hands leadership to `to` (default: of the followers heard from lately, the one furthest along): this leader
   * stops taking proposals, brings the target's log up to date and tells it to campaign at once
   * (thesis §3.10), so the cluster is without a leader for about one round trip instead of an
   * election timeout. Resolves with the new leader's id once this node hears of it; rejects with
   * NotLeaderError on a follower, ConfigError for a target that is not another member, a RaftError
   * TSRAFT_TRANSFER_REFUSED at once for a target that has not answered within an election timeout
   * (proposals were never refused), and TSRAFT_TRANSFER_TIMEOUT if no new leader was heard of within `timeoutMs` (default: two
   * maximum election timeouts; the core abandons the transfer after one, and proposals resume).
   */
  transferLeadership(to?: NodeId, options: { timeoutMs?: number } = {}): Promise<NodeId> {
    if (this.stopped || (this.stopping !== null && !this.handingOver)) return Promise.reject(this.fatal ?? new NodeStoppedError());
    if (!this.core.isLeader) return Promise.reject(this.notLeader());
    const target = to ?? this.core.transferCandidate();
    const voters = this.core.membership().voters;
    if (target === undefined && voters.some((id) => id !== this.id)) {
      return Promise.reject(new RaftError(`no follower has answered within an election timeout: leadership stays with node ${this.id}`, 'TSRAFT_TRANSFER_REFUSED'));
    }
    if (target === undefined || target === this.id || !voters.includes(target)) {
      return Promise.reject(new ConfigError([`cannot hand leadership to ${String(target)}: not another voter of [${voters.join(', ')}]`]));
    }
    const timeoutMs = options.timeoutMs ?? 2 * (this.options.timing?.electionTimeoutMaxMs ?? 2000);
    return new Promise((resolve, reject) => {
      this.waiters.addTransfer(target, timeoutMs, resolve, reject);
      this.transferQueued = target;
      this.inbox.push({ kind: 'transfer', target, afterTicks: this.pendingTicks });
      this.kick();
    });
  }


  /**
   * Changes the cluster's membership (thesis ch. 4): `steps` (add a learner or a voter, promote a
   * learner, remove a member, this leader included) are applied together. A change of voters goes
   * through joint consensus, which the leader leaves by itself once the joint configuration
   * commits. Resolves once the change is complete; a leader that removed itself steps down then.
   * Rejects with NotLeaderError on a follower; MembershipChangeError when another change is under
   * way (TSRAFT_MEMBERSHIP_PENDING), the change does not fit the configuration
   * (TSRAFT_MEMBERSHIP_INVALID) or a learner to promote is more than `learnerCatchUpEntries` behind
   * (TSRAFT_LEARNER_BEHIND), in all of which nothing was appended; LeadershipTransferError during
   * a transfer; OutcomeUnknownError if leadership is lost before the change commits;
   * ProposalTimeoutError after `timeoutMs` (default: proposeTimeoutMs).
   */
  changeMembership(steps: readonly MembershipStep[], options: { timeoutMs?: number } = {}): Promise<MembershipChanged> {
    if (this.stopped || this.stopping !== null) return Promise.reject(this.fatal ?? new NodeStoppedError());
    if (!this.core.isLeader) return Promise.reject(this.notLeader());
    if (this.transferQueued !== null) return Promise.reject(new LeadershipTransferError(this.transferQueued));
    const behind = this.learnersBehind(steps);
    if (behind !== null) return Promise.reject(new MembershipChangeError(behind, 'TSRAFT_LEARNER_BEHIND'));
    const outcome = this.core.proposeMembership(steps);
    if ('refused' in outcome) {
      switch (outcome.refused) {
        case 'not-leader':
          return Promise.reject(this.notLeader());
        case 'transfer-pending':
          return Promise.reject(new LeadershipTransferError(this.core.status(false).transferTarget));
        case 'change-pending':
          return Promise.reject(new MembershipChangeError(`${outcome.message}: one membership change at a time, retry once it completes`, 'TSRAFT_MEMBERSHIP_PENDING'));
        case 'invalid':
          return Promise.reject(new MembershipChangeError(`${outcome.message} (configuration now: ${describeMembership(this.core.membership())})`, 'TSRAFT_MEMBERSHIP_INVALID'));
      }
    }
    this.reportMembership();
    const timeoutMs = options.timeoutMs ?? this.options.proposeTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      this.waiters.addMembershipChange(outcome.index, outcome.term, timeoutMs, resolve, reject);
      this.kick();
    });
  }

  /** Adds `id` as a learner: it receives the log but does not vote until promoted. */
  addLearner(id: NodeId, address?: string, options?: { timeoutMs?: number }): Promise<MembershipChanged> {
    return this.changeMembership([{ type: 'add-learner', id, ...(address === undefined ? {} : { address }) }], options);
  }

  /** Makes learner `id` a voter, once it has caught up. */
  promote(id: NodeId, options?: { timeoutMs?: number }): Promise<MembershipChanged> {
    return this.changeMembership([{ type: 'promote', id }], options);
  }

  /** Removes member `id` (a voter, this leader included, or a learner). */
  removeMember(id: NodeId, options?: { timeoutMs?: number }): Promise<MembershipChanged> {
    return this.changeMembership([{ type: 'remove', id }], options);
  }

  /** The configuration in effect: the latest in this node's log, committed or not. */
  membership(): Membership {
    return this.core.membership();
  }

  /** Why a learner among `steps` to promote cannot be yet, or null. */
  private learnersBehind(steps: readonly MembershipStep[]): string | null {
    const status = this.core.status();
    const lagMax = this.options.learnerCatchUpEntries ?? 1000;
    for (const step of steps) {
      if (step.type !== 'promote') continue;
      const pr = status.progress.get(step.id);
      if (pr === undefined) continue; // not a learner: the core says so
      // Only a learner that has answered (replicate: it acknowledged entries) and is close to the
      // commit index: one never started, or still probing, would be a voter that cannot vote yet.
      if (status.commitIndex - pr.match > lagMax || pr.state !== 'replicate') {
        const why = pr.state === 'replicate' ? `${pr.match} of ${status.commitIndex} committed entries` : `not replicating yet (${pr.state}, ${pr.match} of ${status.commitIndex} committed entries)`;
        return `learner ${step.id} has ${why}; it can be promoted once it answers and is within ${lagMax} entries: retry when it has caught up`;
      }
    }
    return null;
  }

  /** Tells onMembershipChange about a configuration it has not seen. */
  private reportMembership(): void {
    const membership = this.core.membership();
    if (membership === this.reportedMembership) return;
    this.reportedMembership = membership;
    this.options.onMembershipChange?.(membership, this.core.knownAddresses());
  }

  /** Resolves transfers once another node is known to lead. */
  private settleTransfers(): void {
    if (!this.waiters.transferring) return;
    const leaderId = this.core.status(false).leaderId;
    if (leaderId < 0 || leaderId === this.id) return;
    this.waiters.resolveTransfers(leaderId);
  }

  /** Asks the core to compact its log up to `index`, which the state machine captured in `data`. */
  snapshot(index: LogIndex, data: SnapshotBody): void {
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
      membership: status.membership,
      membershipIndex: status.membershipIndex,
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

  /** Whether this node stopped (stop(), or a fatal error): status().stopped, without building a status. */
  get isStopped(): boolean {
    return this.stopped;
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
      if (!this.stopped && this.core.isLeader && this.core.membership().voters.some((id) => id !== this.id) && (this.options.transferLeadershipOnStop ?? true)) {
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
          if (input.message.to === this.id) {
            this.events.received(input.message);
            this.core.step(input.message);
          }
          break;
        case 'snapshot': {
          const before = this.events.active ? this.core.status(false).snapshotIndex : 0;
          this.core.snapshot(input.index, input.data);
          if (this.events.active && this.core.status(false).snapshotIndex > before) this.events.snapshotTaken(input.index, input.data.byteLength);
          break;
        }
        case 'read':
          if (!this.core.requestRead(input.id)) this.waiters.rejectRead(input.id, this.notLeader());
          break;
        case 'transfer':
          if (!this.core.transferLeadership(input.target)) {
            this.waiters.rejectTransfers(
              this.core.isLeader
                ? new RaftError(`node ${input.target} has not answered within an election timeout: leadership stays with node ${this.id}`, 'TSRAFT_TRANSFER_REFUSED')
                : this.notLeader(),
            );
          }
          this.transferQueued = null; // from here on the core refuses proposals if it transfers
          break;
      }
    }
    for (; ticked < ticks; ticked++) this.core.tick();
    if (this.events.active) this.events.observe(this.core.status(false));
    this.noticeLeadershipLoss();
  }

  /**
   * Told, from inside the node's loop, whenever this node becomes leader (with its term) and when
   * it stops being leader (-1), a stop included. One listener; null removes it. Leader-only clocks
   * (the KV store's lease keeper) start and stop on it.
   */
  onLeadershipChange(listener: ((term: Term) => void) | null): void {
    this.leadershipListener = listener;
  }

  /** A leader that lost its term cannot vouch for its proposals: tell their callers now. */
  private noticeLeadershipLoss(): void {
    if (this.core.isLeader) {
      const term = this.core.term;
      if (this.lastLeaderTerm !== term) {
        this.lastLeaderTerm = term;
        this.leadershipListener?.(term);
      }
      return;
    }
    if (this.lastLeaderTerm >= 0 && (this.waiters.proposalCount > 0 || this.waiters.membershipChangeCount > 0)) {
      const status = this.core.status(false);
      const leader = status.leaderId >= 0 && status.leaderId !== this.id ? status.leaderId : undefined;
      this.waiters.leadershipLost(leader);
      this.waiters.membershipLeadershipLost(status.commitIndex, this.driver.appliedIndex, status.membership, status.membershipIndex, leader);
    }
    if (this.lastLeaderTerm >= 0) {
      this.waiters.rejectReads(() => this.notLeader('leadership was lost before the read was confirmed'));
      this.lastLeaderTerm = -1;
      this.leadershipListener?.(-1);
    }
  }

  private restore(snapshot: Snapshot): void {
    this.options.stateMachine?.restore(snapshot);
    this.events.snapshotInstalled(snapshot);
    this.publish({ kind: 'snapshot', snapshot });
    this.waiters.snapshotRestored(snapshot.index);
  }

  private apply(entry: Entry): void {
    const result: unknown = this.options.stateMachine?.apply(entry);
    this.publish({ kind: 'entry', entry });
    this.waiters.applied(entry, result);
    if (entry.membership !== undefined) {
      this.events.configurationApplied(entry.index, entry.membership);
      this.waiters.membershipApplied(entry);
    }
  }

  private afterReady(): void {
    this.reportMembership();
    this.waiters.releaseReads(this.driver.appliedIndex);
    this.settleTransfers();
    const finished = this.writeFinished;
    if (finished !== null) {
      this.writeFinished = null;
      finished();
    }
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
    if (this.lastLeaderTerm >= 0) {
      this.lastLeaderTerm = -1;
      this.leadershipListener?.(-1);
    }
    this.tickTimer.cancel();
    this.driver.stop();
    this.waiters.rejectAll(error);
    this.appliedWaiter?.();
    const finished = this.writeFinished;
    this.writeFinished = null;
    finished?.();
  }

  private notLeader(reason?: string, leader?: NodeId): NotLeaderError {
    const leaderId = leader ?? this.core.status().leaderId;
    const known = leaderId >= 0 && leaderId !== this.id ? leaderId : undefined;
    return new NotLeaderError(known, known === undefined ? undefined : this.options.addresses?.get(known), reason);
  }
}
