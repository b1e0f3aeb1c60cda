import type { InjectedBug } from './bugs.js';
import { DEFAULT_SNAPSHOT_BYTES_MAX, type RaftConfig } from './config.js';
import type { RaftLog } from './log.js';
import type { AppendEntries, InstallSnapshot, LogIndex, Message, NodeId, Snapshot, Term } from './messages.js';
import { SnapshotReceiver } from './snapshot-receiver.js';
import type { DropReason } from './validate.js';

/** What the follower's side of replication needs from the node it runs in. */
export interface FollowerContext {
  readonly id: NodeId;
  readonly config: RaftConfig;
  readonly log: RaftLog;
  term(): Term;
  ticks(): number;
  /**
   * A message from the leader of our term arrived: follow it and restart the election clock.
   * Returns false (the message is dropped) if it cannot be from the leader. Roles stay the node's.
   */
  acceptLeader(leaderId: NodeId): boolean;
  /** A snapshot from the leader replaced the log's prefix: keep it to persist, apply and send on. */
  installed(snapshot: Snapshot, checksum: number): void;
  hasBug(bug: InjectedBug): boolean;
  /** A message that cannot be true was dropped. */
  drop(reason: DropReason): void;
  send(message: Message): void;
}

/**
 * A node's side of log replication as it answers leaders: AppendEntries (consistency check,
 * conflict hints for fast backtracking, the commit index), chunked InstallSnapshot, and the
 * rejections that make a leader of an older term step down. Unlike the Replicator it lives as
 * long as the node: any node, a leader included, answers a stale leader, and a snapshot transfer
 * outlives role changes until it completes, is overtaken by the commit index or goes idle. The
 * node's step() has already settled terms; leadership is accepted through the context.
 */
export class Follower {
  /** The chunks of an incoming snapshot received so far. */
  private readonly snapshotReceiver: SnapshotReceiver;

  constructor(private readonly ctx: FollowerContext) {
    this.snapshotReceiver = new SnapshotReceiver(ctx.config.snapshotBytesMax ?? DEFAULT_SNAPSHOT_BYTES_MAX, ctx.config.snapshotAssembly);
  }

  /** Releases an unfinished snapshot transfer that got no chunk for two maximum election timeouts. */
  abandonIdleSnapshot(): void {
    this.snapshotReceiver.abandonIfIdle(this.ctx.ticks(), 2 * this.ctx.config.electionTimeoutTicksMax);
  }

  handleAppendEntries(request: AppendEntries): void {
    const { log } = this.ctx;
    if (!this.ctx.acceptLeader(request.from)) return;

    const prevIndex = request.prevLogIndex;
    if (prevIndex > log.lastIndex()) {
      this.replyAppend(request, { success: false, conflictTerm: 0, conflictIndex: 0 });
      return;
    }
    // Below the compaction boundary everything is committed and therefore matches the leader.
    const ourTerm = log.term(prevIndex);
    if (ourTerm !== undefined && ourTerm !== request.prevLogTerm) {
      this.replyAppend(request, {
        success: false,
        conflictTerm: ourTerm,
        conflictIndex: log.firstIndexOfTerm(prevIndex),
      });
      return;
    }
    if (this.conflictsWithCommitted(request)) {
      this.ctx.drop('conflicts-with-committed');
      return;
    }
    if (this.ctx.hasBug('truncate-on-stale-append')) log.truncateAfterUnchecked(prevIndex);
    log.merge(request.entries);
    const lastNew = prevIndex + request.entries.length;
    // Only entries known to match the leader (up to lastNew) may be committed from leaderCommit.
    const commitTo = this.ctx.hasBug('apply-before-commit') ? lastNew : Math.min(request.leaderCommit, lastNew);
    log.commitTo(commitTo);
    this.replyAppend(request, { success: true, conflictTerm: 0, conflictIndex: 0 });
  }

  /**
   * Collects snapshot chunks in order and installs the snapshot when the last one arrives. A
   * snapshot at or below our commit index tells us nothing new: we already have those entries.
   */
  handleInstallSnapshot(request: InstallSnapshot): void {
    const { log } = this.ctx;
    if (!this.ctx.acceptLeader(request.from)) return;
    const index = request.lastIncludedIndex;
    if (index <= log.commitIndex) {
      // A stale or duplicated snapshot: acknowledge it, but keep any newer transfer in progress.
      this.snapshotReceiver.dropIfCovered(log.commitIndex);
      this.replySnapshot(request, request.offset + request.data.length, true);
      return;
    }
    const outcome = this.snapshotReceiver.accept(request, this.ctx.ticks());
    if (outcome.kind === 'resume') {
      this.replySnapshot(request, outcome.resumeAt, false);
      return;
    }
    if (outcome.kind === 'refused') {
      this.ctx.drop(outcome.reason);
      this.replySnapshot(request, 0, false);
      return;
    }
    const snapshot: Snapshot = { index, term: request.lastIncludedTerm, data: outcome.data, membership: request.membership };
    if ((this.ctx.config.validateSnapshot?.(snapshot) ?? null) !== null) {
      this.ctx.drop('invalid-snapshot');
      this.replySnapshot(request, 0, false);
      return;
    }
    log.installSnapshot(index, request.lastIncludedTerm, request.membership);
    this.ctx.installed(snapshot, request.checksum);
    this.replySnapshot(request, outcome.data.byteLength, true);
  }

  /**
   * Answers a leader of an older term so that it steps down. The reply must not echo the request's
   * read round: rounds restart at 0 when a node restarts, so a round from a previous incarnation's
   * message could confirm a read the restarted leader registered later (thesis §6.4 needs the echo
   * to prove the follower answered after the read was registered).
   */
  rejectStaleAppend(request: AppendEntries): void {
    const echo = this.ctx.hasBug('stale-read-echo') ? request.readContext : 0;
    this.replyAppend({ ...request, readContext: echo }, { success: false, conflictTerm: 0, conflictIndex: 0 });
  }

  /** Answers a snapshot chunk of a leader of an older term (with our term) so that it steps down. */
  rejectStaleSnapshot(request: InstallSnapshot): void {
    this.replySnapshot(request, 0, false);
  }

  /** An entry the request would put in place of one we know is committed: a leader cannot send that. */
  private conflictsWithCommitted(request: AppendEntries): boolean {
    const { log } = this.ctx;
    const commitIndex = log.commitIndex;
    for (const entry of request.entries) {
      if (entry.index > commitIndex) return false;
      const ours = log.term(entry.index);
      if (ours !== undefined && ours !== entry.term) return true;
    }
    return false;
  }

  private replySnapshot(request: InstallSnapshot, nextOffset: number, installed: boolean): void {
    this.ctx.send({
      type: 'InstallSnapshotReply',
      from: this.ctx.id,
      to: request.from,
      term: this.ctx.term(),
      lastIncludedIndex: request.lastIncludedIndex,
      nextOffset,
      installed,
    });
  }

  private replyAppend(
    request: AppendEntries,
    outcome: { success: boolean; conflictTerm: Term; conflictIndex: LogIndex },
  ): void {
    this.ctx.send({
      type: 'AppendEntriesReply',
      from: this.ctx.id,
      to: request.from,
      term: this.ctx.term(),
      success: outcome.success,
      prevLogIndex: request.prevLogIndex,
      matchIndex: outcome.success ? request.prevLogIndex + request.entries.length : 0,
      conflictTerm: outcome.conflictTerm,
      conflictIndex: outcome.conflictIndex,
      lastLogIndex: this.ctx.log.lastIndex(),
      readContext: request.readContext,
    });
  }
}
