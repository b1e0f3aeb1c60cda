import { assert, unreachable } from './assert.js';
import { INJECTED_BUGS, type InjectedBug } from './bugs.js';
import { validateConfig, type RaftConfig } from './config.js';
import { snapshotBodyChecksum } from './snapshot-body.js';
import { Follower } from './follower.js';
import { RaftLog } from './log.js';
import { Configurations, type MembershipRefusal } from './configurations.js';
import { initialMembership, type Membership, type MembershipStep } from './membership.js';
import {
  NO_LEADER,
  NO_VOTE,
  type Entry,
  type HardState,
  type LogIndex,
  type Message,
  type NodeId,
  type PersistentState,
  type PreVote,
  type PreVoteReply,
  type RequestVote,
  type RequestVoteReply,
  type Snapshot,
  type SnapshotBody,
  type Term,
  type TimeoutNow,
} from './messages.js';
import type { Progress, SnapshotToSend } from './progress.js';
import { Replicator } from './replication.js';
import { ReadIndexQueue } from './read-index.js';
import { checkPeerMessage, DROP_REASONS, TERM_MAX, type DropReason } from './validate.js';
import type { ReadState, Ready } from './ready.js';

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

const NO_PROGRESS: ReadonlyMap<NodeId, Readonly<Progress>> = new Map();

export interface ProposeResult {
  readonly index: LogIndex;
  readonly term: Term;
}

export type { MembershipRefusal } from './configurations.js';

/** A read-only view of a node for tests, status pages and traces. */
export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: Term;
  readonly votedFor: NodeId;
  readonly leaderId: NodeId;
  readonly snapshotIndex: LogIndex;
  readonly firstIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly lastTerm: Term;
  readonly commitIndex: LogIndex;
  readonly appliedIndex: LogIndex;
  /** Leader only: per-follower replication state. */
  readonly progress: ReadonlyMap<NodeId, Readonly<Progress>>;
  /** The latest ReadIndex round this node stamped on AppendEntries (it restarts at 0 with the process). */
  readonly readRound: number;
  /** Leader only: the member leadership is being handed to, or -1. */
  readonly transferTarget: NodeId;
  /** How often this node stepped down as leader because it had not heard from a majority (check-quorum). */
  readonly quorumLost: number;
  /** The latest configuration in the log (committed or not): the one in effect. */
  readonly membership: Membership;
  /** The index of the entry that set it (the snapshot's index, or 0 for the starting configuration). */
  readonly membershipIndex: LogIndex;
}

/**
 * The Raft state machine of one node: pure, synchronous and deterministic. Inputs are `tick()`,
 * `step(message)` and `propose(command)`; outputs are collected in a `Ready` (see ready.ts) that the
 * driver persists, sends and applies before calling `advance()`.
 *
 * Term handling lives in one place, the top of `step()`: a message from a newer term turns this node
 * into a follower of that term first; a reply from an older term is dropped there, and a reply that
 * does not fit the current role is dropped by the role check right after it. Messages are only ever
 * built by `send()`, which stamps the current term, so nothing can speak for a role this node left.
 */
export class RaftCore {
  readonly id: NodeId;
  private readonly config: RaftConfig;
  private readonly log: RaftLog;
  /** The cluster configurations this node knows, and the rules that read them. */
  private readonly configurations: Configurations;
  /** Peer messages dropped because they cannot be true, by reason (see validate.ts). */
  private readonly dropped = new Map<DropReason, number>(DROP_REASONS.map((reason) => [reason, 0]));

  private currentTerm: Term = 0;
  private votedFor: NodeId = NO_VOTE;
  private role: Role = 'follower';
  private leaderId: NodeId = NO_LEADER;
  private hardStateDirty = false;
  /** Injected bug `forget-vote`: the vote granted since the last Ready is not written. */
  private voteForgotten = false;

  private ticks = 0;
  private electionElapsedTicks = 0;
  /** Leader with check-quorum: ticks into the current window. */
  private quorumWindowTicks = 0;
  /** Times this node stepped down because it had not heard from a majority. */
  private quorumLost = 0;
  private electionTimeoutTicks = 0;

  private readonly votesGranted = new Set<NodeId>();
  /** The leader's replication state; null unless this node leads. */
  private replicator: Replicator | null = null;
  /** Leader: new entries were proposed and not yet sent; sending waits for the next Ready so they batch. */
  private replicationPending = false;
  /** Leader: a configuration without this node has committed; it steps down after the current input. */
  private removedWhileLeading = false;

  /** Messages to send once this Ready's writes are durable. */
  private outbox: Message[] = [];
  /** Messages that vouch for nothing durable and may leave at once (see Ready.messagesBeforePersist). */
  private outboxBeforePersist: Message[] = [];
  private handedOut: Ready | null = null;

  /** ReadIndex (thesis §6.4): reads waiting for a majority to echo their round. */
  private readonly reads = new ReadIndexQueue();
  private readStates: ReadState[] = [];

  /** The latest snapshot's bytes, kept to send to followers that need it (in a file, in a runtime). */
  private snapshotData: SnapshotBody = new Uint8Array(0);
  /** CRC32C of snapshotData, computed when a follower first needs it (null: not yet). */
  private snapshotChecksum: number | null = null;
  private snapshotToPersist: Snapshot | null = null;
  private snapshotToApply: Snapshot | null = null;
  /** The follower's side of replication: answers to leaders, incoming snapshot chunks. */
  private readonly follower: Follower;

  constructor(config: RaftConfig, restored?: PersistentState) {
    const problems = validateConfig(config);
    if (problems.length > 0) throw new RangeError(`invalid Raft config: ${problems.join('; ')}`);
    this.config = config;
    this.id = config.id;
    const starting = initialMembership(config.peers, config.learners ?? [], config.addresses ?? []);
    const snapshot = restored?.snapshot ?? null;
    this.log = new RaftLog(restored?.entries ?? [], snapshot === null ? undefined : snapshot, snapshot?.membership ?? starting);
    this.configurations = new Configurations(this.id, starting, this.log, (bug) => this.hasBug(bug));
    this.follower = new Follower({
      id: this.id,
      config: this.config,
      log: this.log,
      term: () => this.currentTerm,
      ticks: () => this.ticks,
      acceptLeader: (leaderId) => this.acceptLeader(leaderId),
      installed: (installed, checksum) => {
        this.snapshotData = installed.data;
        this.snapshotChecksum = checksum;
        this.snapshotToPersist = installed;
        this.snapshotToApply = installed;
      },
      hasBug: (bug) => this.hasBug(bug),
      drop: (reason) => this.drop(reason),
      send: (message) => this.send(message),
    });
    if (snapshot !== null) this.snapshotData = snapshot.data;
    if (restored !== undefined) {
      this.currentTerm = restored.hardState.term;
      this.votedFor = restored.hardState.votedFor;
      assert(
        this.log.lastTerm() <= this.currentTerm,
        () => `restored log ends in term ${this.log.lastTerm()}, after current term ${this.currentTerm}`,
      );
    }
    this.resetElectionTimer();
  }

  // ---------------------------------------------------------------- inputs

  /** Advances the logical clock by one tick. */
  tick(): void {
    this.assertNoReadyOutstanding();
    this.ticks++;
    if (this.role === 'leader') {
      if (this.config.checkQuorum === true && ++this.quorumWindowTicks >= this.config.electionTimeoutTicksMin) {
        this.quorumWindowTicks = 0;
        if (!this.replicator!.quorumHeard()) {
          // Cut off (or deaf): stop claiming to lead, so reads and proposals fail fast here and the
          // others, no longer hearing us, can elect a leader that can reach a majority.
          this.becomeFollower(this.currentTerm, NO_LEADER);
          this.quorumLost++;
          return;
        }
      }
      if (this.replicator!.expireTransfer() && this.configurations.removedFromCommitted()) {
        // The handover after our removal did not happen: stop leading anyway.
        this.becomeFollower(this.currentTerm, NO_LEADER);
        return;
      }
      this.replicator!.heartbeatDue();
      return;
    }
    this.follower.abandonIdleSnapshot();
    this.electionElapsedTicks++;
    if (this.electionElapsedTicks < this.electionTimeoutTicks) return;
    // A learner, or a node removed from the cluster, never campaigns: it could not count its own vote.
    if (!this.configurations.mayCampaign()) return;
    // At term 0 there is no leader to protect: an election for term 1 cannot depose anyone, so
    // the pre-vote round would only cost a round trip.
    if ((this.config.preVote ?? true) && this.currentTerm > 0) this.preCampaign();
    else this.campaign();
  }

  private stepMessage(message: Message): void {
    this.assertNoReadyOutstanding();
    assert(message.to === this.id, () => `message for ${message.to} delivered to ${this.id}`);
    // Peer messages are input: what cannot be true is dropped and counted, never thrown on.
    const invalid = checkPeerMessage(message, this.id, this.configurations.knownMembers());
    if (invalid !== null) {
      this.drop(invalid);
      return;
    }
    // A pre-vote speaks of a term nobody has entered yet, so it must not move ours: neither the
    // request nor a granted reply (which echoes the requested term) is a sign of a newer term.
    const hypothetical = message.type === 'PreVote' || (message.type === 'PreVoteReply' && message.voteGranted);
    if (message.term > this.currentTerm && !hypothetical) {
      // §5.1: any newer term makes us a follower of it. Only the leader's own messages name it.
      const fromLeader = message.type === 'AppendEntries' || message.type === 'InstallSnapshot';
      this.becomeFollower(message.term, fromLeader ? message.from : NO_LEADER);
    }
    if (message.term < this.currentTerm) {
      // A request from a stale leader or candidate gets our term back so that it steps down;
      // a reply from an older term answers a question we no longer ask.
      if (message.type === 'RequestVote') this.replyVote(message, false);
      else if (message.type === 'PreVote') this.replyPreVote(message, false);
      else if (message.type === 'AppendEntries') this.follower.rejectStaleAppend(message);
      else if (message.type === 'InstallSnapshot') this.follower.rejectStaleSnapshot(message);
      return;
    }
    switch (message.type) {
      case 'PreVote':
        this.handlePreVote(message);
        return;
      case 'PreVoteReply':
        if (this.role === 'precandidate' && message.voteGranted && message.term === this.currentTerm + 1) {
          this.handlePreVoteReply(message);
        }
        return;
      case 'RequestVote':
        this.handleRequestVote(message);
        return;
      case 'AppendEntries':
        this.follower.handleAppendEntries(message);
        return;
      case 'RequestVoteReply':
        if (this.role === 'candidate') this.handleVoteReply(message);
        return;
      case 'AppendEntriesReply':
        if (this.replicator !== null) {
          // Checked before its echo counts: a forged answer must not confirm a read either. A
          // round this leader has not reached cannot be an echo of it.
          if (message.readContext > this.reads.round || !this.replicator.isPossibleReply(message)) {
            this.drop('impossible-ack');
            return;
          }
          // Any answer in our term, success or not, shows the follower still accepted us as leader.
          this.replicator.heardFrom(message.from);
          if (this.reads.echo(message.from, message.readContext)) this.confirmReads();
          this.replicator.handleAppendReply(message);
        }
        return;
      case 'InstallSnapshot':
        this.follower.handleInstallSnapshot(message);
        return;
      case 'InstallSnapshotReply':
        this.replicator?.handleInstallSnapshotReply(message);
        return;
      case 'TimeoutNow':
        this.handleTimeoutNow(message);
        return;
      default:
        unreachable(message, 'message type');
    }
  }

  /** Feeds one message from a peer (see stepMessage), then lets a removed leader step down. */
  step(message: Message): void {
    this.stepMessage(message);
    this.stepDownIfRemoved();
  }

  /**
   * Appends a command to the log if this node is the leader and returns where it will commit if it
   * commits at all; returns null on a follower or candidate. Sending waits for the next Ready, so
   * commands proposed together travel together. Allowed between ready() and advance().
   */
  propose(command: Uint8Array): ProposeResult | null {
    // Unlike every other input, a proposal may arrive while a Ready is being persisted: it only
    // appends to the unstable tail, which that Ready does not cover, so the driver can hand out
    // the index at once. During a leadership transfer the log must stand still for the target to
    // catch up, so proposals are refused too (status().transferTarget says why).
    if (this.role !== 'leader' || this.replicator!.transferTarget !== null) return null;
    return this.appendAsLeader({ index: this.log.lastIndex() + 1, term: this.currentTerm, command });
  }

  /**
   * Proposes a membership change (thesis ch. 4): `steps` are applied together to the latest
   * configuration. A change of voters goes through joint consensus: the joint configuration
   * (new voters, with the current ones as outgoing) is appended now, and the leader appends the
   * final one by itself once the joint one commits. Adding or removing learners takes one entry.
   * Every configuration takes effect as soon as it is in the log. One change at a time: refused
   * while the latest configuration is uncommitted or joint, and during a leadership transfer.
   * Allowed between ready() and advance(), like propose().
   */
  proposeMembership(steps: readonly MembershipStep[]): ProposeResult | MembershipRefusal {
    if (this.role !== 'leader') return { refused: 'not-leader' };
    if (this.replicator!.transferTarget !== null) return { refused: 'transfer-pending' };
    const next = this.configurations.next(steps);
    if ('refused' in next) return next;
    return this.appendAsLeader({ index: this.log.lastIndex() + 1, term: this.currentTerm, command: new Uint8Array(0), membership: next });
  }

  /** The latest configuration in the log, committed or not: the one in effect. */
  membership(): Membership {
    return this.log.membership();
  }

  /**
   * The address of every node a configuration this node knows names (see knownMembers()), the
   * latest configuration's word winning: whom a transport must be able to reach and accept.
   */
  knownAddresses(): Map<NodeId, string> {
    return this.configurations.knownAddresses();
  }

  private appendAsLeader(entry: Entry): ProposeResult {
    this.log.append(entry);
    this.replicationPending = true;
    if (entry.membership !== undefined) this.replicator!.syncPeers(entry.membership);
    if (this.replicator!.progress.size === 0) this.replicator!.maybeCommit();
    return { index: entry.index, term: entry.term };
  }

  /**
   * Asks for a linearizable read (ReadIndex, thesis §6.4). On the leader the read is registered and
   * a round of heartbeats confirms that no newer leader exists; once a majority has answered and
   * the leader has committed an entry of its own term, a ReadState { id, index } appears in a Ready:
   * the read may be served from the state machine as soon as it has applied `index`. Returns false
   * (nothing registered) on a follower or candidate. A leader that has not yet committed an entry
   * of its term appends an empty entry so that its commit index becomes current; the application
   * must ignore entries with empty commands. Reads still waiting when leadership is lost are
   * dropped silently: the driver must time them out or fail them on a role change.
   */
  requestRead(id: number): boolean {
    this.assertNoReadyOutstanding();
    if (this.role !== 'leader') return false;
    this.reads.add(id);
    const ownTermCommitted = this.log.term(this.log.commitIndex) === this.currentTerm;
    if (!ownTermCommitted && this.log.lastTerm() !== this.currentTerm) this.propose(new Uint8Array(0));
    this.confirmReads();
    return true;
  }

  /**
   * The application has captured everything up to and including `index` (which it has applied) in
   * `data`: discard that prefix of the log and keep the snapshot to persist and to send to
   * followers that fall behind it (6.824 `Snapshot(index, data)`). An index at or below the
   * current snapshot is ignored.
   */
  snapshot(index: LogIndex, data: SnapshotBody): void {
    this.assertNoReadyOutstanding();
    if (index <= this.log.snapshotIndex) return;
    assert(index <= this.log.appliedIndex, () => `snapshot at ${index} covers entries not yet applied (${this.log.appliedIndex})`);
    this.log.compactTo(index);
    this.snapshotData = data;
    this.snapshotChecksum = null;
    this.snapshotToPersist = { index, term: this.log.snapshotTerm, data, membership: this.log.membershipAt(index) };
  }

  /**
   * Storage made the snapshot at `index` durable and can read it back: `body` holds the same bytes
   * (checked by length), kept from now on instead of the copy that was handed in. A runtime passes
   * a body that reads the snapshot file, so the latest snapshot stops costing memory once it is
   * written, and the checksum storage computed on the way (saving a pass over the bytes when a
   * follower first needs them). Transfers already under way keep the body they started with.
   * Ignored unless `index` is still the latest snapshot.
   */
  snapshotStored(index: LogIndex, body: SnapshotBody, checksum?: number): void {
    if (index !== this.log.snapshotIndex || body === this.snapshotData) return;
    assert(
      body.byteLength === this.snapshotData.byteLength,
      () => `stored snapshot at ${index} has ${body.byteLength} bytes, ${this.snapshotData.byteLength} were written`,
    );
    this.snapshotData = body;
    if (checksum !== undefined) this.snapshotChecksum = checksum;
  }

  // ---------------------------------------------------------------- outputs

  hasReady(): boolean {
    return (
      this.outbox.length > 0 ||
      this.outboxBeforePersist.length > 0 ||
      this.hardStateDirty ||
      this.replicationPending ||
      this.snapshotToPersist !== null ||
      this.snapshotToApply !== null ||
      this.readStates.length > 0 ||
      this.reads.broadcastPending ||
      this.log.hasUnstable() ||
      this.log.commitIndex > this.log.appliedIndex
    );
  }

  /** Collects everything the driver must now persist, send and apply. Call `advance()` after. */
  ready(): Ready {
    assert(this.handedOut === null, 'ready() called again before advance()');
    if (this.replicationPending) {
      this.replicationPending = false;
      this.replicator?.broadcastAppend();
    }
    if (this.reads.broadcastPending) {
      // One heartbeat round confirms every read registered since the last one.
      this.reads.broadcastPending = false;
      this.replicator?.broadcastReadRound();
    }
    const hardState: HardState | null = this.hardStateDirty
      ? { term: this.currentTerm, votedFor: this.voteForgotten ? NO_VOTE : this.votedFor }
      : null;
    this.voteForgotten = false;
    const ready: Ready = {
      hardState,
      snapshotWrite: this.snapshotToPersist,
      logWrite: this.log.unstable(),
      messagesBeforePersist: this.outboxBeforePersist,
      messages: this.outbox,
      snapshotToApply: this.snapshotToApply,
      committed: this.log.unapplied(),
      readStates: this.readStates,
    };
    this.outbox = [];
    this.outboxBeforePersist = [];
    this.readStates = [];
    this.snapshotToPersist = null;
    this.snapshotToApply = null;
    this.handedOut = ready;
    return ready;
  }

  /** Confirms that the last Ready was persisted, sent and applied. */
  advance(ready: Ready): void {
    assert(this.handedOut === ready, 'advance() must be given the Ready returned by the last ready()');
    this.handedOut = null;
    if (ready.hardState !== null) this.hardStateDirty = false;
    if (ready.logWrite !== null) {
      this.log.stableTo(ready.logWrite.fromIndex + ready.logWrite.entries.length - 1);
    }
    const lastApplied = ready.committed[ready.committed.length - 1];
    if (lastApplied !== undefined) this.log.appliedTo(lastApplied.index);
    // The leader's own copy counts towards a majority only once it is durable.
    if (ready.logWrite !== null) this.replicator?.maybeCommit();
    this.stepDownIfRemoved();
  }

  // ---------------------------------------------------------------- queries

  get term(): Term {
    return this.currentTerm;
  }

  get isLeader(): boolean {
    return this.role === 'leader';
  }

  /** This node's state; `withProgress` false skips copying the leader's per-follower progress (cheaper, for checkers). */
  status(withProgress = true): RaftStatus {
    let progress: ReadonlyMap<NodeId, Readonly<Progress>> = NO_PROGRESS;
    if (withProgress && this.replicator !== null) {
      const copy = new Map<NodeId, Readonly<Progress>>();
      for (const [peer, pr] of this.replicator.progress) copy.set(peer, { ...pr });
      progress = copy;
    }
    return {
      id: this.id,
      role: this.role,
      term: this.currentTerm,
      votedFor: this.votedFor,
      leaderId: this.leaderId,
      snapshotIndex: this.log.snapshotIndex,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      commitIndex: this.log.commitIndex,
      appliedIndex: this.log.appliedIndex,
      progress,
      readRound: this.reads.round,
      transferTarget: this.replicator?.transferTarget ?? NO_LEADER,
      quorumLost: this.quorumLost,
      membership: this.log.membership(),
      membershipIndex: this.log.membershipIndex(),
    };
  }

  /**
   * Hands leadership to `target`, a member whose log this leader brings up to date first (thesis
   * §3.10; see Replicator.startTransfer). Returns false, doing nothing, on a non-leader, for a
   * target that is not another member, or for one that has not answered within a minimum election
   * timeout. Proposals are refused until the transfer happens or is abandoned after a maximum
   * election timeout.
   */
  transferLeadership(target: NodeId): boolean {
    this.assertNoReadyOutstanding();
    if (this.role !== 'leader' || target === this.id || !this.log.membership().voters.includes(target)) return false;
    if (this.replicator!.transferTarget === target) return true;
    return this.replicator!.startTransfer(target);
  }

  /** Leader only: the member transferLeadership picks by default (heard from lately, furthest along), if any. */
  transferCandidate(): NodeId | undefined {
    return this.replicator?.transferCandidate();
  }

  /** The entry at `index`, if the log still holds it (for checkers and tests). */
  entryAt(index: LogIndex): Entry | undefined {
    return index >= this.log.firstIndex() && index <= this.log.lastIndex() ? this.log.entry(index) : undefined;
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: Term, leaderId: NodeId): void {
    assert(term >= this.currentTerm, () => `term would go back from ${this.currentTerm} to ${term}`);
    if (term > this.currentTerm) {
      this.currentTerm = term;
      this.votedFor = NO_VOTE;
      this.hardStateDirty = true;
    }
    // A leader's election clock was stopped, so it starts afresh. Anyone else keeps counting: only
    // hearing from a leader or granting a vote restarts it (Figure 2). Restarting it on every newer
    // term would let candidates with stale logs, which can never win, keep the one node that can
    // win from ever timing out.
    if (this.role === 'leader') this.resetElectionTimer();
    this.role = 'follower';
    this.leaderId = leaderId;
    this.replicator = null;
    this.votesGranted.clear();
    this.replicationPending = false;
    this.reads.clear();
  }

  private preCampaign(): void {
    if (this.currentTerm >= TERM_MAX) return;
    this.role = 'precandidate';
    this.leaderId = NO_LEADER;
    this.votesGranted.clear();
    this.votesGranted.add(this.id);
    this.resetElectionTimer();
    if (this.hasQuorum(this.votesGranted)) {
      this.campaign();
      return;
    }
    for (const peer of this.configurations.electorate()) {
      this.send({
        type: 'PreVote',
        from: this.id,
        to: peer,
        term: this.currentTerm + 1,
        lastLogIndex: this.log.lastIndex(),
        lastLogTerm: this.log.lastTerm(),
      });
    }
  }

  private campaign(): void {
    // Unreachable in practice (terms above TERM_MAX are never accepted), but a term must never
    // overflow into values the codec or a peer cannot represent.
    if (this.currentTerm >= TERM_MAX) return;
    this.currentTerm++;
    this.votedFor = this.id;
    this.hardStateDirty = true;
    this.role = 'candidate';
    this.leaderId = NO_LEADER;
    this.votesGranted.clear();
    this.votesGranted.add(this.id);
    this.resetElectionTimer();
    if (this.hasQuorum(this.votesGranted)) {
      this.becomeLeader();
      return;
    }
    for (const peer of this.configurations.electorate()) {
      this.send({
        type: 'RequestVote',
        from: this.id,
        to: peer,
        term: this.currentTerm,
        lastLogIndex: this.log.lastIndex(),
        lastLogTerm: this.log.lastTerm(),
      });
    }
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', () => `only a candidate can become leader, not a ${this.role}`);
    this.role = 'leader';
    this.leaderId = this.id;
    this.quorumWindowTicks = 0;
    this.replicator = new Replicator({
      id: this.id,
      config: this.config,
      log: this.log,
      term: () => this.currentTerm,
      ticks: () => this.ticks,
      quorumMembership: () => this.configurations.forQuorum(),
      learnersCount: this.configurations.learnersCount,
      currentSnapshot: () => this.currentSnapshot(),
      readRound: () => this.reads.round,
      hasBug: (bug) => this.hasBug(bug),
      drop: (reason) => this.drop(reason),
      send: (message) => this.send(message),
      committed: () => this.leaderCommitted(),
    });
    // Announce leadership at once; each of these is also the first probe of the follower's log.
    this.replicator.broadcastHeartbeat();
    // A configuration change left uncommitted by the previous leader blocks the next change (and a
    // joint configuration must be left): commit it now rather than whenever a client next writes.
    if (this.configurations.changeUnderWay()) {
      this.appendAsLeader({ index: this.log.lastIndex() + 1, term: this.currentTerm, command: new Uint8Array(0) });
    } else if (this.config.commitOnElection === true && this.log.lastIndex() > this.log.commitIndex) {
      this.appendAsLeader({ index: this.log.lastIndex() + 1, term: this.currentTerm, command: new Uint8Array(0) });
    }
  }

  /**
   * The leader's commit index moved: release confirmed reads, and finish configuration changes.
   * A committed joint configuration is left by appending the new voters' configuration; a
   * committed configuration that no longer counts this leader as a voter makes it hand leadership
   * over and step down (stepDownIfRemoved).
   */
  private leaderCommitted(): void {
    this.confirmReads();
    if (this.role !== 'leader') return;
    const leave = this.configurations.leaveIfJointCommitted();
    if (leave !== null) {
      this.appendAsLeader({ index: this.log.lastIndex() + 1, term: this.currentTerm, command: new Uint8Array(0), membership: leave });
      return;
    }
    // Removed: hand over once the input that committed this is handled (the replication code that
    // called us is still running); see stepDownIfRemoved.
    if (this.configurations.removedFromCommitted()) this.removedWhileLeading = true;
  }

  /**
   * A leader whose removal committed hands leadership over as a graceful stop does (thesis §3.10:
   * no new proposals, the successor brought up to date, then TimeoutNow), so that the cluster is
   * leaderless for a round trip even under load: sending TimeoutNow only to a voter that already
   * had every entry found none whenever clients were writing. Until the successor takes over, this
   * node keeps replicating without counting itself; with no voter heard from lately, or once the
   * transfer expires, it simply steps down.
   */
  private stepDownIfRemoved(): void {
    if (this.role !== 'leader') {
      this.removedWhileLeading = false;
      return;
    }
    if (this.replicator!.transferTarget !== null) {
      // Once TimeoutNow is out, the successor has every entry and will win; it will not tell us,
      // since no configuration it sends to names us any more, so stop leading now.
      if (this.replicator!.timeoutNowSent && this.configurations.removedFromCommitted()) this.becomeFollower(this.currentTerm, NO_LEADER);
      return;
    }
    if (!this.removedWhileLeading) return;
    this.removedWhileLeading = false;
    const successor = this.replicator!.transferCandidate();
    if (successor !== undefined && this.replicator!.startTransfer(successor)) {
      this.stepDownIfRemoved();
      return;
    }
    this.becomeFollower(this.currentTerm, NO_LEADER);
  }

  private resetElectionTimer(): void {
    const { electionTimeoutTicksMin: min, electionTimeoutTicksMax: max } = this.config;
    this.electionElapsedTicks = 0;
    this.electionTimeoutTicks = min + this.config.random.nextInt(max - min);
  }

  private hasQuorum(ids: ReadonlySet<NodeId>): boolean {
    return this.configurations.hasQuorum(ids);
  }

  // ---------------------------------------------------------------- votes

  /** The leader we follow asks us to campaign now: skip the pre-vote, which its followers would refuse. */
  private handleTimeoutNow(request: TimeoutNow): void {
    if (this.role === 'leader' || !this.configurations.mayCampaign()) return;
    if (this.leaderId !== request.from) {
      // From a node that is not the leader we follow in this term. Unknowable right after a restart
      // (no leader heard yet): then it is ignored, not counted.
      if (this.leaderId !== NO_LEADER) this.drop('second-leader');
      return;
    }
    this.campaign();
  }

  private handleRequestVote(request: RequestVote): void {
    const canVote = this.votedFor === NO_VOTE || this.votedFor === request.from;
    const upToDate = this.log.isUpToDate(request.lastLogIndex, request.lastLogTerm) || this.hasBug('vote-without-log-check');
    const granted = canVote && upToDate;
    if (granted) {
      if (this.votedFor !== request.from) {
        this.votedFor = request.from;
        this.hardStateDirty = true;
        if (this.hasBug('forget-vote')) this.voteForgotten = true;
      }
      // Only a granted vote restarts the timer, or a node with a stale log could stall elections.
      this.resetElectionTimer();
    }
    this.replyVote(request, granted);
  }

  /**
   * Grants a pre-vote only if a real vote in that term could be granted and no leader has been
   * heard from within the minimum election timeout: a follower that still hears a leader refuses
   * to help depose it.
   */
  private handlePreVote(request: PreVote): void {
    const leaderRecentlyHeard =
      this.role === 'leader' ||
      (this.leaderId !== NO_LEADER && this.electionElapsedTicks < this.config.electionTimeoutTicksMin);
    const granted =
      request.term > this.currentTerm &&
      !leaderRecentlyHeard &&
      this.log.isUpToDate(request.lastLogIndex, request.lastLogTerm);
    this.replyPreVote(request, granted);
  }

  private replyPreVote(request: PreVote, voteGranted: boolean): void {
    const term = voteGranted ? request.term : this.currentTerm;
    this.send({ type: 'PreVoteReply', from: this.id, to: request.from, term, voteGranted });
  }

  private handlePreVoteReply(reply: PreVoteReply): void {
    this.votesGranted.add(reply.from);
    if (this.hasQuorum(this.votesGranted)) this.campaign();
  }

  private replyVote(request: RequestVote, voteGranted: boolean): void {
    this.send({ type: 'RequestVoteReply', from: this.id, to: request.from, term: this.currentTerm, voteGranted });
  }

  private handleVoteReply(reply: RequestVoteReply): void {
    if (!reply.voteGranted) return;
    this.votesGranted.add(reply.from);
    if (this.hasQuorum(this.votesGranted)) this.becomeLeader();
  }

  // ---------------------------------------------------------------- leaders, snapshots, drops

  /**
   * A message from the leader of our term: follow it and restart the election clock. Returns false
   * (the message is dropped) if it cannot be true: we lead this term ourselves, or another node
   * already does.
   */
  private acceptLeader(leaderId: NodeId): boolean {
    if (this.role === 'leader' || (this.leaderId !== NO_LEADER && this.leaderId !== leaderId)) {
      this.drop('second-leader');
      return false;
    }
    if (this.role === 'candidate' || this.role === 'precandidate') this.becomeFollower(this.currentTerm, leaderId);
    this.leaderId = leaderId;
    this.resetElectionTimer();
    return true;
  }

  /** The latest snapshot as a leader sends it: its bytes and their checksum. */
  private currentSnapshot(): SnapshotToSend {
    this.snapshotChecksum ??= snapshotBodyChecksum(this.snapshotData);
    return {
      index: this.log.snapshotIndex,
      term: this.log.snapshotTerm,
      data: this.snapshotData,
      checksum: this.snapshotChecksum,
      membership: this.log.membershipAt(this.log.snapshotIndex),
    };
  }

  private drop(reason: DropReason): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
  }

  /** How many peer messages were dropped as impossible, by reason. */
  droppedMessages(): ReadonlyMap<DropReason, number> {
    return this.dropped;
  }

  /**
   * Releases the reads whose round a majority has echoed, once the leader's commit index is
   * current (it has committed an entry of its own term). They read at the present commit index.
   */
  private confirmReads(): void {
    if (this.reads.size === 0 || this.log.term(this.log.commitIndex) !== this.currentTerm) return;
    this.readStates.push(...this.reads.release(this.configurations.forQuorum(), this.id, this.log.commitIndex, this.configurations.learnersCount));
  }
  private hasBug(bug: InjectedBug): boolean {
    return this.config[INJECTED_BUGS]?.has(bug) ?? false;
  }
  /** Inputs between ready() and advance() would change what the driver is busy persisting. */
  private assertNoReadyOutstanding(): void {
    assert(this.handedOut === null, 'the core takes no input between ready() and advance()');
  }

  private send(message: Message): void {
    if (message.type === 'PreVote') {
      assert(message.term === this.currentTerm + 1, 'a pre-vote asks about the next term');
    } else if (message.type === 'PreVoteReply') {
      assert(message.term >= this.currentTerm, 'a pre-vote reply carries our term or the one asked about');
    } else {
      assert(message.term === this.currentTerm, 'messages carry the current term');
    }
    if (this.mayLeaveBeforePersist(message)) this.outboxBeforePersist.push(message);
    else this.outbox.push(message);
  }

  /**
   * The persistence rule, decided here and carried in the Ready: a leader's AppendEntries and
   * snapshot chunks vouch for nothing durable (the leader counts its own copy only once it is
   * durable, thesis §10.2.1), so they may leave while the disk writes. Votes, acknowledgements and
   * everything else wait for the writes of their Ready.
   */
  private mayLeaveBeforePersist(message: Message): boolean {
    // Only once our term is durable: a leader elected within this very Ready (a single voter wins
    // at once) would otherwise speak for a term a crash could make it forget, and lead it again.
    if (message.type === 'AppendEntries' || message.type === 'InstallSnapshot') return !this.hardStateDirty;
    return message.type === 'AppendEntriesReply' && this.hasBug('ack-before-sync');
  }
}

