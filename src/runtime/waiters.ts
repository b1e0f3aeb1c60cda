import { isJoint, type Membership } from '../core/membership.js';
import type { Entry, LogIndex, NodeId, Term } from '../core/messages.js';
import type { ReadState } from '../core/ready.js';
import type { Clock, ClockTimer } from './clock.js';
import { OutcomeUnknownError, ProposalDroppedError, ProposalTimeoutError, RaftError } from './errors.js';
import type { MembershipChanged, Proposed } from './node.js';

/** Not generic, so that a RaftNode<void> is also a RaftNode<unknown>. */
interface PendingProposal {
  readonly index: LogIndex;
  readonly term: Term;
  readonly resolve: (value: Proposed<unknown>) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ClockTimer;
}

interface PendingRead {
  readonly resolve: (index: LogIndex) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ClockTimer;
  /** Set once the leader confirmed the read: it may be served when this index is applied. */
  index: LogIndex | undefined;
}

interface PendingMembershipChange {
  readonly index: LogIndex;
  readonly term: Term;
  readonly resolve: (value: MembershipChanged) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ClockTimer;
}

interface PendingTransfer {
  readonly resolve: (id: NodeId) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ClockTimer;
}

/**
 * The callers waiting on a RaftNode: proposals until their entry is applied, reads until the leader
 * confirmed them and the state machine reached their index, leadership transfers until another
 * node is heard to lead. Each waits with a timeout on the node's clock; settling one cancels its
 * timer. The node decides when each is settled; this keeps the books.
 */
export class Waiters {
  private readonly clock: Clock;
  private readonly proposals = new Map<LogIndex, PendingProposal>();
  private readonly reads = new Map<number, PendingRead>();
  private nextReadId = 1;
  /** Callers of transferLeadership() waiting to hear of the new leader. */
  private readonly transfers = new Set<PendingTransfer>();
  /** Callers of changeMembership() waiting for their change to complete. */
  private readonly membershipChanges = new Set<PendingMembershipChange>();

  constructor(clock: Clock) {
    this.clock = clock;
  }

  get proposalCount(): number {
    return this.proposals.size;
  }

  get membershipChangeCount(): number {
    return this.membershipChanges.size;
  }

  get readCount(): number {
    return this.reads.size;
  }

  // ------------------------------------------------------------------ proposals

  /** Waits for the entry appended at `index` in `term`; rejects with ProposalTimeoutError after `timeoutMs`. */
  addProposal(index: LogIndex, term: Term, timeoutMs: number, resolve: (value: Proposed<unknown>) => void, reject: (error: Error) => void): void {
    const timer = this.clock.schedule(timeoutMs, () => {
      if (this.proposals.get(index)?.timer === timer) {
        this.proposals.delete(index);
        reject(new ProposalTimeoutError(timeoutMs));
      }
    });
    this.proposals.set(index, { index, term, resolve, reject, timer });
  }

  /** The state machine applied `entry`, returning `result`: the proposal waiting at its index, if any, is done. */
  applied(entry: Entry, result: unknown): void {
    const proposal = this.proposals.get(entry.index);
    // Another leader's entry at this index means the proposal was overwritten: it never commits.
    if (proposal !== undefined) {
      this.settle(proposal, entry.term === proposal.term ? { index: proposal.index, term: proposal.term, result } : new ProposalDroppedError(proposal.index));
    }
  }

  /** A snapshot from the leader replaced the log up to `snapshotIndex`. */
  snapshotRestored(snapshotIndex: LogIndex): void {
    // Entries the snapshot covers were never applied here: whether they took effect is unknown.
    const reason = 'a snapshot from the leader replaced the log before the proposal was seen to commit';
    for (const [index, proposal] of [...this.proposals]) {
      if (index > snapshotIndex) continue;
      this.settle(proposal, new OutcomeUnknownError(index, undefined, reason));
    }
    for (const waiter of [...this.membershipChanges]) {
      if (waiter.index <= snapshotIndex) this.settleMembership(waiter, new OutcomeUnknownError(waiter.index, undefined, reason));
    }
  }

  /** A leader that lost its term cannot vouch for its proposals: every one's outcome is unknown. */
  leadershipLost(leader: NodeId | undefined): void {
    for (const proposal of [...this.proposals.values()]) this.settle(proposal, new OutcomeUnknownError(proposal.index, leader));
  }

  /** Ends a waiting proposal: resolved with its outcome, or rejected with an error. */
  private settle(proposal: PendingProposal, outcome: Proposed<unknown> | Error): void {
    proposal.timer.cancel();
    this.proposals.delete(proposal.index);
    if (outcome instanceof Error) proposal.reject(outcome);
    else proposal.resolve(outcome);
  }

  // ------------------------------------------------------------------ reads

  /** Waits for a read; rejects with ProposalTimeoutError after `timeoutMs`. Returns the read's id for the core. */
  addRead(timeoutMs: number, resolve: (index: LogIndex) => void, reject: (error: Error) => void): number {
    const id = this.nextReadId++;
    const timer = this.clock.schedule(timeoutMs, () => {
      if (this.reads.delete(id)) reject(new ProposalTimeoutError(timeoutMs));
    });
    this.reads.set(id, { resolve, reject, timer, index: undefined });
    return id;
  }

  /** The leader confirmed these reads: each may be served once its index is applied. */
  confirmReads(states: readonly ReadState[]): void {
    for (const state of states) {
      const read = this.reads.get(state.id);
      if (read !== undefined) read.index = state.index;
    }
  }

  /** Serves every confirmed read whose index the state machine has reached. */
  releaseReads(applied: LogIndex): void {
    if (this.reads.size === 0) return;
    for (const [id, read] of this.reads) {
      if (read.index !== undefined && read.index <= applied) this.settleRead(id, read.index);
    }
  }

  rejectRead(id: number, error: Error): void {
    this.settleRead(id, error);
  }

  /** Rejects every waiting read, each with an error of its own. */
  rejectReads(error: () => Error): void {
    for (const id of [...this.reads.keys()]) this.settleRead(id, error());
  }

  private settleRead(id: number, outcome: LogIndex | Error): void {
    const read = this.reads.get(id);
    if (read === undefined) return;
    this.reads.delete(id);
    read.timer.cancel();
    if (typeof outcome === 'number') read.resolve(outcome);
    else read.reject(outcome);
  }

  // ------------------------------------------------------------------ membership changes

  /** Waits for the configuration appended at `index` in `term`; rejects with ProposalTimeoutError after `timeoutMs`. */
  addMembershipChange(index: LogIndex, term: Term, timeoutMs: number, resolve: (value: MembershipChanged) => void, reject: (error: Error) => void): void {
    const waiter: PendingMembershipChange = {
      index,
      term,
      resolve,
      reject,
      timer: this.clock.schedule(timeoutMs, () => {
        if (this.membershipChanges.delete(waiter)) reject(new ProposalTimeoutError(timeoutMs));
      }),
    };
    this.membershipChanges.add(waiter);
  }

  /**
   * A configuration entry was applied. A change is complete once a configuration at or after its
   * own is applied that is not joint (the leader leaves a joint configuration by itself), on this
   * node whether it still leads or not. A joint configuration is never reported as done: until its
   * successor commits, electing a leader needs a majority of the OLD members too, so a caller told
   * "done" who then shut a removed member down could leave the cluster unable to elect anyone. A
   * node that stopped leading and is not in the new configuration may never see that successor:
   * its caller then gets the timeout (outcome unknown) and looks at the configuration. Another
   * term's entry at the change's index means it was overwritten.
   */
  membershipApplied(entry: Entry): void {
    const membership = entry.membership;
    if (membership === undefined) return;
    for (const waiter of [...this.membershipChanges]) {
      if (entry.index === waiter.index && entry.term !== waiter.term) {
        this.settleMembership(waiter, new ProposalDroppedError(waiter.index));
      } else if (entry.index >= waiter.index && !isJoint(membership)) {
        this.settleMembership(waiter, { index: waiter.index, term: waiter.term, membership, completedAt: entry.index });
      }
    }
  }

  /**
   * This node stopped leading. A change not yet committed may or may not take effect. One applied
   * here is reported done only if the configuration in effect is applied and not joint; otherwise
   * (joint, or a later configuration still on its way) it keeps waiting like one committed but not
   * yet applied: membershipApplied settles it when a final configuration applies here, or its
   * timeout does.
   */
  membershipLeadershipLost(commitIndex: LogIndex, appliedIndex: LogIndex, membership: Membership, membershipIndex: LogIndex, leader: NodeId | undefined): void {
    const settled = membershipIndex <= appliedIndex && !isJoint(membership);
    for (const waiter of [...this.membershipChanges]) {
      if (waiter.index > commitIndex) this.settleMembership(waiter, new OutcomeUnknownError(waiter.index, leader));
      else if (settled && waiter.index <= appliedIndex) this.settleMembership(waiter, { index: waiter.index, term: waiter.term, membership, completedAt: membershipIndex });
    }
  }

  private settleMembership(waiter: PendingMembershipChange, outcome: MembershipChanged | Error): void {
    waiter.timer.cancel();
    this.membershipChanges.delete(waiter);
    if (outcome instanceof Error) waiter.reject(outcome);
    else waiter.resolve(outcome);
  }

  // ------------------------------------------------------------------ leadership transfers

  get transferring(): boolean {
    return this.transfers.size > 0;
  }

  /** Waits for a new leader after handing leadership to `target`; rejects after `timeoutMs`. */
  addTransfer(target: NodeId, timeoutMs: number, resolve: (id: NodeId) => void, reject: (error: Error) => void): void {
    const waiter = { resolve, reject, timer: this.clock.schedule(timeoutMs, () => {
      this.transfers.delete(waiter);
      reject(new RaftError(`no new leader was heard of within ${timeoutMs} ms of handing leadership to node ${target}`, 'TSRAFT_TRANSFER_TIMEOUT'));
    }) };
    this.transfers.add(waiter);
  }

  /** Another node, `leaderId`, is known to lead: every transfer is done. */
  resolveTransfers(leaderId: NodeId): void {
    for (const waiter of this.transfers) {
      waiter.timer.cancel();
      waiter.resolve(leaderId);
    }
    this.transfers.clear();
  }

  /** The transfer could not start: every caller waiting for one gets `error`. */
  rejectTransfers(error: Error): void {
    for (const waiter of this.transfers) {
      waiter.timer.cancel();
      waiter.reject(error);
    }
    this.transfers.clear();
  }

  // ------------------------------------------------------------------ stopping

  /**
   * The node stopped with `error`. A proposal waiting here is already in the log, and may have
   * reached followers that will commit it without us: its caller is told the outcome is unknown,
   * never that it failed.
   */
  rejectAll(error: Error): void {
    const reason = `this node stopped (${error.message}) before the proposal was seen to commit`;
    for (const proposal of [...this.proposals.values()]) this.settle(proposal, new OutcomeUnknownError(proposal.index, undefined, reason));
    for (const id of [...this.reads.keys()]) this.settleRead(id, error);
    this.rejectTransfers(error);
    for (const waiter of [...this.membershipChanges]) this.settleMembership(waiter, new OutcomeUnknownError(waiter.index, undefined, reason));
  }
}
