import { assert } from './assert.js';
import type { InjectedBug } from './bugs.js';
import { DEFAULT_SNAPSHOT_CHUNK_BYTES, type RaftConfig } from './config.js';
import type { RaftLog } from './log.js';
import { allMembers, isQuorum, quorumValue, type Membership } from './membership.js';
import type { AppendEntriesReply, InstallSnapshotReply, LogIndex, Message, NodeId, Term } from './messages.js';
import { newProgress, type Progress, type SnapshotToSend } from './progress.js';
import type { DropReason } from './validate.js';

/** Snapshot chunks sent ahead of the follower's answers (a sliding window). */
const SNAPSHOT_CHUNKS_IN_FLIGHT = 4;

/** How long a commit notice may wait for new entries to ride along with (see scheduleCommitNotice). */
const COMMIT_NOTICE_DELAY_TICKS = 2;

/** What the leader's replication needs from the node it runs in. */
export interface LeaderContext {
  readonly id: NodeId;
  readonly config: RaftConfig;
  readonly log: RaftLog;
  term(): Term;
  ticks(): number;
  /** The configuration that counts for quorums (the latest in the log). */
  quorumMembership(): Membership;
  /** The injected bug `learner-in-quorum` is on. */
  readonly learnersCount: boolean;
  /** The latest snapshot, with its checksum, to send to a follower that needs it. */
  currentSnapshot(): SnapshotToSend;
  /** The current ReadIndex round, stamped on every AppendEntries. */
  readRound(): number;
  hasBug(bug: InjectedBug): boolean;
  /** A reply that cannot be true was dropped. */
  drop(reason: DropReason): void;
  send(message: Message): void;
  /** The commit index advanced (confirmed reads may now be released). */
  committed(): void;
}

/**
 * A leader's side of log replication for one term: what it knows of each follower (Progress), what
 * it sends them (entries, heartbeats, snapshot chunks, commit notices), how it reads their answers
 * (fast backtracking on rejections), and when an entry commits (§5.4.2). It exists only while its
 * node leads; the node's step() has already dropped every message of another term or role.
 */
export class Replicator {
  /** Check-quorum: followers heard from (any answer in our term) since the last check. */
  private readonly heard = new Set<NodeId>();
  /** Leadership transfer in progress (thesis §3.10), or null. */
  private transfer: { target: NodeId; startedAt: number; timeoutNowSent: boolean } | null = null;

  readonly progress = new Map<NodeId, Progress>();

  constructor(private readonly ctx: LeaderContext) {
    this.syncPeers(ctx.log.membership());
  }

  /**
   * Follows a new configuration: members added get a Progress (probing from the end of our log),
   * members removed lose theirs. Called with the latest configuration whenever it changes.
   */
  syncPeers(membership: Membership): void {
    const members = new Set(allMembers(membership));
    members.delete(this.ctx.id);
    for (const peer of this.progress.keys()) {
      if (!members.has(peer)) {
        this.progress.delete(peer);
        this.heard.delete(peer);
        if (this.transfer?.target === peer) this.transfer = null;
      }
    }
    for (const peer of members) {
      if (!this.progress.has(peer)) this.progress.set(peer, newProgress(this.ctx.log.lastIndex()));
    }
  }

  // ---------------------------------------------------------------- check-quorum, transfer

  /** A follower answered in our term: it still accepts us as leader. */
  heardFrom(peer: NodeId): void {
    const pr = this.progress.get(peer);
    if (pr === undefined) return;
    this.heard.add(peer);
    pr.lastHeardTick = this.ctx.ticks();
  }

  /** Whether a majority, ourselves included, was heard from since the last call; starts a new window. */
  quorumHeard(): boolean {
    const active = new Set(this.heard);
    active.add(this.ctx.id);
    this.heard.clear();
    return isQuorum(this.ctx.quorumMembership(), active, this.ctx.learnersCount);
  }

  /** The follower leadership is being handed to, or null. */
  get transferTarget(): NodeId | null {
    return this.transfer?.target ?? null;
  }

  /** The transfer in progress has told its target to campaign. */
  get timeoutNowSent(): boolean {
    return this.transfer?.timeoutNowSent ?? false;
  }

  /**
   * Starts handing leadership to `target` (thesis §3.10): bring its log up to date, then tell it to
   * campaign at once (TimeoutNow). The node refuses proposals meanwhile, so the target can catch
   * up; the transfer is abandoned after a maximum election timeout if it has not happened. A
   * target that has not answered within a minimum election timeout is refused (returns false):
   * handing over to it would only refuse proposals until the transfer is abandoned.
   */
  startTransfer(target: NodeId): boolean {
    const pr = this.progress.get(target);
    assert(pr !== undefined, () => `transfer to unknown peer ${target}`);
    if (this.ctx.ticks() - pr.lastHeardTick > this.ctx.config.electionTimeoutTicksMin) return false;
    this.transfer = { target, startedAt: this.ctx.ticks(), timeoutNowSent: false };
    if (!this.maybeSendTimeoutNow(target, pr) && !(pr.state === 'probe' && pr.probeInFlight) && pr.state !== 'snapshot') this.sendAppend(target, pr);
    return true;
  }

  /** The follower to hand leadership to by default: of those heard from lately, the furthest along. */
  transferCandidate(): NodeId | undefined {
    let best: { id: NodeId; match: LogIndex } | undefined;
    const voters = this.ctx.log.membership().voters;
    for (const [id, pr] of this.progress) {
      if (!voters.includes(id)) continue;
      if (this.ctx.ticks() - pr.lastHeardTick > this.ctx.config.electionTimeoutTicksMin) continue;
      if (best === undefined || pr.match > best.match) best = { id, match: pr.match };
    }
    return best?.id;
  }

  /** Abandons a transfer that has not happened within a maximum election timeout; true if it did. */
  expireTransfer(): boolean {
    if (this.transfer === null || this.ctx.ticks() - this.transfer.startedAt < this.ctx.config.electionTimeoutTicksMax) return false;
    this.transfer = null;
    return true;
  }

  private maybeSendTimeoutNow(peer: NodeId, pr: Progress): boolean {
    const transfer = this.transfer;
    if (transfer === null || transfer.target !== peer || transfer.timeoutNowSent || pr.match !== this.ctx.log.lastIndex()) return false;
    transfer.timeoutNowSent = true;
    this.ctx.send({ type: 'TimeoutNow', from: this.ctx.id, to: peer, term: this.ctx.term() });
    return true;
  }

  /**
   * Whether `reply` could answer an AppendEntries of ours. We never send one whose prevLogIndex is
   * beyond our log, nor could a follower acknowledge entries we do not have: counting such an
   * acknowledgement could commit entries no follower holds, and following such a rejection would
   * point the follower's next index past our log. (A forged reply within our log is not
   * detectable; peer authentication is.)
   */
  isPossibleReply(reply: AppendEntriesReply): boolean {
    const last = this.ctx.log.lastIndex();
    if (reply.prevLogIndex > last) return false;
    return !reply.success || (reply.matchIndex <= last && reply.matchIndex >= reply.prevLogIndex);
  }

  /** An answer to our AppendEntries (isPossibleReply already holds). */
  handleAppendReply(reply: AppendEntriesReply): void {
    const pr = this.progress.get(reply.from);
    // A member removed since it was sent the request: nothing left to track.
    if (pr === undefined) return;
    if (reply.success) {
      if (reply.matchIndex > pr.match) pr.match = reply.matchIndex;
      if (pr.next <= pr.match) pr.next = pr.match + 1;
      // A probe answered, or a follower that (through a reply overtaking the snapshot transfer)
      // turns out to hold everything the snapshot covers: stream entries from here on.
      const pastSnapshot = pr.state === 'snapshot' && pr.match >= pr.snapshotIndex && !this.ctx.hasBug('stuck-snapshot-transfer');
      if (pr.state === 'probe' || pastSnapshot) {
        pr.state = 'replicate';
        pr.snapshot = null;
        pr.probeInFlight = false;
        pr.next = pr.match + 1;
      }
      this.maybeCommit();
      if (this.maybeSendTimeoutNow(reply.from, pr)) return;
      if (pr.next <= this.ctx.log.lastIndex()) this.sendAppend(reply.from, pr);
      else this.scheduleCommitNotice(pr);
      return;
    }
    // A rejection of a request we have since moved past is stale (reordered or duplicated).
    const stale = pr.state === 'probe' ? reply.prevLogIndex !== pr.next - 1 : reply.prevLogIndex < pr.match;
    if (stale) return;
    const hinted = this.nextIndexFromRejection(reply);
    pr.next = Math.max(pr.match + 1, Math.min(hinted, reply.prevLogIndex));
    assert(pr.next <= this.ctx.log.lastIndex() + 1, () => `next index ${pr.next} for ${reply.from} is past our log (${this.ctx.log.lastIndex()}) after ${JSON.stringify(reply)}`);
    pr.state = 'probe';
    pr.snapshot = null;
    pr.probeInFlight = false;
    this.sendAppend(reply.from, pr);
  }

  /**
   * Fast log backtracking: skip a whole conflicting term per round trip instead of one entry.
   * - follower's log too short: continue right after its last entry;
   * - we hold entries of the conflicting term: continue after our last one of that term;
   * - we do not: skip the follower's whole run of that term.
   */
  private nextIndexFromRejection(reply: AppendEntriesReply): LogIndex {
    if (reply.conflictTerm === 0) return reply.lastLogIndex + 1;
    const ourLast = this.ctx.log.lastIndexOfTerm(reply.conflictTerm, reply.prevLogIndex);
    return ourLast > 0 ? ourLast + 1 : reply.conflictIndex;
  }

  /** Sends whatever each follower is missing, after proposals; probes already in flight wait. */
  broadcastAppend(): void {
    for (const [peer, pr] of this.progress) {
      // A probe or a snapshot chunk in flight is answered or retried on its own; new entries wait.
      if (pr.state === 'snapshot' || (pr.state === 'probe' && pr.probeInFlight)) continue;
      if (pr.next <= this.ctx.log.lastIndex()) this.sendAppend(peer, pr);
    }
  }

  /**
   * Contacts each follower that has heard nothing from us for a heartbeat interval. Followers that
   * receive entries or commit updates get no extra heartbeats, so a busy leader sends no more than
   * an idle one.
   */
  heartbeatDue(): void {
    for (const [peer, pr] of this.progress) {
      if (this.ctx.ticks() - pr.lastSentTick >= this.ctx.config.heartbeatIntervalTicks) {
        this.heartbeat(peer, pr);
      } else if (pr.state === 'replicate' && this.ctx.ticks() >= pr.commitNoticeAtTick) {
        // Only a follower in step with us gets commit notices; a probe or a snapshot chunk is
        // retried on the heartbeat alone, or every tick would re-send it.
        if (pr.next <= this.ctx.log.lastIndex()) this.sendAppend(peer, pr);
        else this.sendHeartbeat(peer, pr);
      }
    }
  }

  broadcastHeartbeat(): void {
    for (const [peer, pr] of this.progress) this.heartbeat(peer, pr);
  }

  /**
   * One round of AppendEntries whose answers confirm the reads registered so far (ReadIndex). A
   * follower still probing gets an empty one anchored at what it acknowledged (cheap, and its answer
   * echoes the round); a follower receiving a snapshot is left to its transfer: re-sending a chunk
   * for every read round would flood its link with copies.
   */
  broadcastReadRound(): void {
    for (const [peer, pr] of this.progress) {
      if (pr.state === 'replicate') this.heartbeat(peer, pr);
      else if (pr.state === 'probe' && !pr.probeInFlight) this.sendAppend(peer, pr);
      else if (pr.state === 'probe' && this.ctx.log.term(pr.match) !== undefined) this.sendHeartbeat(peer, pr);
    }
  }

  private heartbeat(peer: NodeId, pr: Progress): void {
    if (pr.state === 'probe' || pr.state === 'snapshot') {
      // The heartbeat doubles as the retry of a probe or snapshot chunk that got no answer.
      this.retrySnapshotChunk(peer, pr);
      return;
    }
    const ticksSinceEntries = this.ctx.ticks() - pr.entriesSentAtTick;
    if (pr.match < this.ctx.log.lastIndex() && ticksSinceEntries >= this.ctx.config.heartbeatIntervalTicks) {
      // Entries sent a whole interval ago are still unacknowledged: assume them lost, and the
      // follower possibly gone. Fall back to probing so that an unreachable follower costs one
      // message per heartbeat instead of one per batch of proposals.
      pr.state = 'probe';
      pr.next = pr.match + 1;
      this.sendAppend(peer, pr);
    } else {
      this.sendHeartbeat(peer, pr);
    }
  }

  /** An empty AppendEntries anchored at the acknowledged match, which the follower always accepts. */
  private sendHeartbeat(peer: NodeId, pr: Progress): void {
    const prevLogTerm = this.ctx.log.term(pr.match);
    if (prevLogTerm === undefined) {
      // What the follower acknowledged has been compacted since: it will need the snapshot.
      pr.state = 'probe';
      pr.next = pr.match + 1;
      this.sendAppend(peer, pr);
      return;
    }
    this.ctx.send({
      type: 'AppendEntries',
      from: this.ctx.id,
      to: peer,
      term: this.ctx.term(),
      prevLogIndex: pr.match,
      prevLogTerm,
      entries: [],
      leaderCommit: this.ctx.log.commitIndex,
      readContext: this.ctx.readRound(),
    });
    pr.commitSent = Math.max(pr.commitSent, Math.min(this.ctx.log.commitIndex, pr.match));
    pr.lastSentTick = this.ctx.ticks();
    this.clearCommitNotice(pr);
  }

  private sendAppend(peer: NodeId, pr: Progress): void {
    const prevLogIndex = pr.next - 1;
    const prevLogTerm = this.ctx.log.term(prevLogIndex);
    if (prevLogTerm === undefined || pr.state === 'snapshot') {
      this.sendSnapshotChunk(peer, pr);
      return;
    }
    const last = this.ctx.log.lastIndex();
    const entries = pr.next <= last ? this.ctx.log.slice(pr.next, last, this.ctx.config.appendBytesMax) : [];
    this.ctx.send({
      type: 'AppendEntries',
      from: this.ctx.id,
      to: peer,
      term: this.ctx.term(),
      prevLogIndex,
      prevLogTerm,
      entries,
      leaderCommit: this.ctx.log.commitIndex,
      readContext: this.ctx.readRound(),
    });
    pr.lastSentTick = this.ctx.ticks();
    if (entries.length > 0) pr.entriesSentAtTick = this.ctx.ticks();
    pr.commitSent = Math.max(pr.commitSent, Math.min(this.ctx.log.commitIndex, prevLogIndex + entries.length));
    this.clearCommitNotice(pr);
    if (pr.state === 'probe') {
      pr.probeInFlight = true;
    } else {
      pr.next = prevLogIndex + entries.length + 1;
    }
  }

  /**
   * Sends the follower the next chunk of the snapshot it is being sent. A transfer keeps the
   * snapshot it started with even if we compact again meanwhile: restarting it with every newer
   * snapshot would starve a follower whose transfer takes longer than the compaction interval.
   * Once it is installed, the follower needs the next snapshot only if the log moved past it.
   */
  private sendSnapshotChunk(peer: NodeId, pr: Progress, chunksInFlight = SNAPSHOT_CHUNKS_IN_FLIGHT): void {
    assert(this.ctx.log.snapshotIndex > 0 || pr.snapshot !== null, () => `${peer} needs a snapshot (next ${pr.next}) but we never compacted`);
    const restart = this.ctx.hasBug('snapshot-restart-on-compaction') && pr.snapshotIndex !== this.ctx.log.snapshotIndex;
    if (pr.state !== 'snapshot' || pr.snapshot === null || restart) {
      pr.state = 'snapshot';
      pr.snapshot = this.ctx.currentSnapshot();
      pr.snapshotIndex = pr.snapshot.index;
      pr.snapshotOffset = 0;
      pr.snapshotSentOffset = 0;
      pr.snapshotResumeHint = 0;
    }
    const snapshot = pr.snapshot;
    const size = snapshot.data.byteLength;
    const chunkBytes = this.ctx.config.snapshotChunkBytes ?? DEFAULT_SNAPSHOT_CHUNK_BYTES;
    if (pr.snapshotSentOffset < pr.snapshotOffset) pr.snapshotSentOffset = pr.snapshotOffset;
    // A window of chunks in flight: with one at a time a transfer would take a round trip per chunk.
    const windowEnd = pr.snapshotOffset + chunksInFlight * chunkBytes;
    let offset = pr.snapshotSentOffset;
    do {
      const end = Math.min(offset + chunkBytes, size);
      this.ctx.send({
        type: 'InstallSnapshot',
        from: this.ctx.id,
        to: peer,
        term: this.ctx.term(),
        lastIncludedIndex: snapshot.index,
        lastIncludedTerm: snapshot.term,
        snapshotBytes: size,
        checksum: snapshot.checksum,
        offset,
        data: snapshot.data.subarray(offset, end),
        done: end === size,
        membership: snapshot.membership,
      });
      offset = end;
    } while (offset < size && offset < windowEnd);
    pr.snapshotSentOffset = offset;
    pr.probeInFlight = true;
    pr.lastSentTick = this.ctx.ticks();
    pr.commitNoticeAtTick = Number.POSITIVE_INFINITY;
  }

  /**
   * No answer for a heartbeat interval: send again from what the follower last said it holds, one
   * chunk only (go-back-N). Its answer re-opens the window; re-sending the whole window on every
   * heartbeat would bury a slow link under copies.
   */
  private retrySnapshotChunk(peer: NodeId, pr: Progress): void {
    if (pr.state !== 'snapshot' || pr.snapshot === null) {
      this.sendAppend(peer, pr);
      return;
    }
    if (pr.snapshotResumeHint < pr.snapshotOffset) pr.snapshotOffset = pr.snapshotResumeHint;
    pr.snapshotSentOffset = pr.snapshotOffset;
    this.sendSnapshotChunk(peer, pr, 1);
  }

  handleInstallSnapshotReply(reply: InstallSnapshotReply): void {
    const pr = this.progress.get(reply.from);
    if (pr === undefined) return;
    if (reply.installed && reply.lastIncludedIndex > this.ctx.log.lastIndex()) {
      this.ctx.drop('impossible-ack');
      return;
    }
    // Only a possible answer shows the follower still accepts us (check-quorum).
    this.heardFrom(reply.from);
    if (reply.installed) {
      if (reply.lastIncludedIndex <= pr.match) {
        // Already known to match beyond this snapshot. A transfer still marked in progress is over,
        // unless it is the transfer of a newer snapshot (a late answer about an older one must
        // not restart it from offset 0).
        const transferCovered = pr.snapshotIndex <= pr.match;
        if (pr.state === 'snapshot' && transferCovered && !this.ctx.hasBug('stuck-snapshot-transfer')) {
          pr.state = 'replicate';
          pr.snapshot = null;
          pr.probeInFlight = false;
          pr.next = pr.match + 1;
          if (pr.next <= this.ctx.log.lastIndex()) this.sendAppend(reply.from, pr);
        }
        return;
      }
      pr.match = reply.lastIncludedIndex;
      pr.next = pr.match + 1;
      pr.state = 'replicate';
      pr.snapshot = null;
      pr.probeInFlight = false;
      this.maybeCommit();
      if (this.maybeSendTimeoutNow(reply.from, pr)) return;
      if (pr.next <= this.ctx.log.lastIndex()) this.sendAppend(reply.from, pr);
      else this.sendHeartbeat(reply.from, pr);
      return;
    }
    // A chunk arrived (or was refused): continue from what the follower holds, if this is still
    // the transfer in progress. Only news moves the transfer on: when a round trip is longer than
    // the heartbeat, a retried chunk and the original both get answers, and following both would
    // leave two streams of chunks running for the rest of the transfer.
    if (pr.state !== 'snapshot' || reply.lastIncludedIndex !== pr.snapshotIndex) return;
    pr.snapshotResumeHint = reply.nextOffset;
    if (reply.nextOffset <= pr.snapshotOffset) return;
    pr.snapshotOffset = reply.nextOffset;
    // The window moved: send what it now allows (nothing if everything up to the end is in flight).
    if (pr.snapshotSentOffset < (pr.snapshot?.data.byteLength ?? 0) || pr.snapshotSentOffset < pr.snapshotOffset) this.sendSnapshotChunk(reply.from, pr);
  }

  /**
   * §5.4.2: advance commitIndex to the highest index of the *current* term stored on a majority.
   * Entries of earlier terms commit indirectly, with the first current-term entry above them.
   */
  maybeCommit(): void {
    // Our own copy counts once durable, and only where we vote (a leader being removed does not).
    const matchOf = (id: NodeId): number => (id === this.ctx.id ? this.ctx.log.stableIndex : (this.progress.get(id)?.match ?? 0));
    const quorumIndex = quorumValue(this.ctx.quorumMembership(), matchOf, this.ctx.learnersCount);
    if (quorumIndex <= this.ctx.log.commitIndex) return;
    if (this.ctx.log.term(quorumIndex) !== this.ctx.term() && !this.ctx.hasBug('commit-old-term')) return;
    this.ctx.log.commitTo(quorumIndex);
    this.notifyCommit();
    this.ctx.committed();
  }



  /** Followers that have acknowledged everything sent learn the new commit index soon, not at the next heartbeat. */
  private notifyCommit(): void {
    for (const pr of this.progress.values()) {
      // A follower with entries in flight will learn the commit index from the answer to its reply.
      if (pr.state === 'replicate' && pr.next === pr.match + 1) this.scheduleCommitNotice(pr);
    }
  }

  /**
   * A follower that has not been told the commit index gets it within COMMIT_NOTICE_DELAY_TICKS:
   * if new entries go to it before then, they carry it and the separate notice is saved.
   */
  private scheduleCommitNotice(pr: Progress): void {
    if (pr.commitSent >= Math.min(this.ctx.log.commitIndex, pr.match)) return;
    if (pr.commitNoticeAtTick === Number.POSITIVE_INFINITY) pr.commitNoticeAtTick = this.ctx.ticks() + COMMIT_NOTICE_DELAY_TICKS;
  }



  private clearCommitNotice(pr: Progress): void {
    if (pr.commitSent >= Math.min(this.ctx.log.commitIndex, pr.match)) pr.commitNoticeAtTick = Number.POSITIVE_INFINITY;
  }
}
