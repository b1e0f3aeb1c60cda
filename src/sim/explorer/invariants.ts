import { allMembers, allVoters, describeMembership, isQuorum, isVoter, sameMembership, type Membership } from '../../core/membership.js';
import type { Entry, LogIndex, Message, NodeId, Snapshot, Term } from '../../core/messages.js';
import { NO_VOTE } from '../../core/messages.js';
import type { LogWrite } from '../../core/ready.js';
import type { RaftStatus } from '../../core/raft.js';

/** What the checker reads of a node: its status and the entries its log holds (a RaftNode or a RaftCore). */
export interface NodeView {
  entryAt(index: LogIndex): Entry | undefined;
}

/** A safety property was broken. The explorer stops the run and prints the trace. */
export class SafetyViolation extends Error {
  override readonly name = 'SafetyViolation';
  constructor(
    readonly invariant: string,
    detail: string,
  ) {
    super(`${invariant}: ${detail}`);
  }
}

/** Node's Buffer when there is one (not in a browser, where the replay page runs the explorer). */
const NodeBuffer = (globalThis as { Buffer?: typeof Buffer }).Buffer;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  // A native comparison: commands can be large (snapshot-sized state, values near the frame limit).
  if (NodeBuffer !== undefined) return NodeBuffer.from(a.buffer, a.byteOffset, a.byteLength).equals(NodeBuffer.from(b.buffer, b.byteOffset, b.byteLength));
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface LedgerEntry {
  readonly command: Uint8Array;
  readonly membership: Membership | undefined;
  readonly previousTerm: Term;
}

/** A configuration in a node's log: a configuration entry, or the snapshot's (or starting) one at its base. */
interface ConfigAt {
  readonly index: LogIndex;
  readonly term: Term;
  readonly membership: Membership;
}

/** What a node holds durably (synced): the entries' terms by index, and its snapshot's index. */
interface DurableLog {
  snapshotIndex: LogIndex;
  terms: Term[];
}

function sameConfig(a: Membership | undefined, b: Membership | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return sameMembership(a, b);
}

function describeConfig(m: Membership | undefined): string {
  return m === undefined ? 'no configuration' : describeMembership(m);
}

/**
 * Whether every quorum of `a` intersects every quorum of `b` (quorums as isQuorum counts them:
 * a majority of the voters and, when joint, of the outgoing voters too; learners never count).
 * Brute force over the subsets of their voters: a set that is a quorum of `a` whose complement
 * is a quorum of `b` is two disjoint quorums.
 */
export function quorumsOverlap(a: Membership, b: Membership): boolean {
  const ids = [...new Set([...allVoters(a), ...allVoters(b)])];
  if (ids.length > 20) throw new Error(`quorumsOverlap: ${ids.length} voters are too many to enumerate`);
  for (let mask = 0; mask < 1 << ids.length; mask++) {
    const inside = new Set<NodeId>();
    const outside = new Set<NodeId>();
    for (let i = 0; i < ids.length; i++) ((mask & (1 << i)) !== 0 ? inside : outside).add(ids[i]!);
    if (isQuorum(a, inside) && isQuorum(b, outside)) return false;
  }
  return true;
}

/**
 * Raft's safety properties (Figure 3 of the paper, plus what a driver must guarantee), checked
 * incrementally so that they can run after every single event of a simulation:
 *
 * - election safety: at most one leader per term, over the whole run;
 * - log matching: an (index, term) pair always names the same command with the same predecessor
 *   term, on every node and in every incarnation, which by induction makes equal pairs imply equal
 *   prefixes;
 * - leader completeness: a new leader holds every entry committed so far;
 * - state machine safety: no two nodes apply different commands at one index;
 * - commit index never decreases within an incarnation; entries are applied in order without gaps;
 * - a leader moves its commit index only to an entry of its own term (the Figure 8 rule);
 * - durability: a node never grants two different votes in one term, and never comes back from a
 *   restart with a term older than one it already used in a message;
 * - commit quorum: a leader commits only what a quorum of its configuration holds durably;
 * - configuration safety: every configuration overlaps each one that may decide alongside it, and
 *   the committed configurations are the same sequence on every node;
 * - leader membership: no learner or non-member wins an election (a voter whose removal is not
 *   committed yet may: it is needed until then), and a leader that removed itself steps down once
 *   that change commits.
 */
export class SafetyChecker {
  private readonly leaders = new Map<Term, NodeId>();
  /** When the first leader of each term was seen (for the ReadIndex check). */
  private readonly electedAt = new Map<Term, number>();
  private readonly ledger = new Map<string, LedgerEntry>();
  /** The command committed at each index, as far as any node has said. */
  private readonly committed = new Map<LogIndex, { term: Term; command: Uint8Array; membership: Membership | undefined }>();
  private committedMax: LogIndex = 0;
  private readonly applied = new Map<LogIndex, Uint8Array>();
  private readonly lastApplied = new Map<NodeId, LogIndex>();
  private readonly commitSeen = new Map<NodeId, LogIndex>();
  private readonly votesSent = new Map<string, NodeId>();
  private readonly termUsed = new Map<NodeId, Term>();
  private readonly wasLeader = new Map<NodeId, Term>();
  /** Per node: the configurations of its log, oldest first: its base (snapshot or start) then every configuration entry. */
  private readonly configs = new Map<NodeId, ConfigAt[]>();
  /** The latest committed configuration entry anyone has reported (the starting configuration at index 0 before any). */
  private committedConfig: ConfigAt;
  /** Every node a committed configuration ever named. */
  private readonly committedMembers = new Set<NodeId>();
  /** Per node: what it holds durably, for the commit quorum check. */
  private readonly durable = new Map<NodeId, DurableLog>();
  private readonly overlapCache = new Map<string, boolean>();
  /** Per leader that removed itself: since when its removal is known committed (it hands over meanwhile). */
  private readonly removedLeaderSince = new Map<NodeId, { term: Term; since: number }>();

  /**
   * `initial`: the configuration the cluster starts with (the starting voters, no learners).
   * `handoverMs`: how long a leader whose removal committed may go on leading while it hands
   * leadership over (its transfer expires after a maximum election timeout).
   */
  constructor(
    initial: Membership,
    private readonly handoverMs = Number.POSITIVE_INFINITY,
  ) {
    this.committedConfig = { index: 0, term: 0, membership: initial };
    for (const id of allMembers(initial)) this.committedMembers.add(id);
  }

  /** The latest configuration known to be committed. */
  get committedMembership(): Membership {
    return this.committedConfig.membership;
  }

  /** Whether a committed configuration ever named `id` (a voter or learner of the cluster, now or before). */
  wasCommittedMember(id: NodeId): boolean {
    return this.committedMembers.has(id);
  }

  /**
   * A node (re)started: nothing it held in memory counts any more, but its durable promises do.
   * `core` shows the log it recovered and `base` the configuration at its start (its snapshot's,
   * or the starting one): its configurations and durable entries are read again from them.
   */
  restarted(id: NodeId, status: RaftStatus, snapshotIndex: LogIndex, core?: NodeView, base?: Membership): void {
    const used = this.termUsed.get(id) ?? 0;
    if (status.term < used) {
      throw new SafetyViolation('durable term', `node ${id} restarted in term ${status.term} after sending messages in term ${used}`);
    }
    const vote = this.votesSent.get(`${id}/${status.term}`);
    if (vote !== undefined && status.votedFor !== vote) {
      throw new SafetyViolation(
        'durable vote',
        `node ${id} restarted in term ${status.term} with vote ${status.votedFor === NO_VOTE ? 'none' : status.votedFor} after granting its vote to ${vote}`,
      );
    }
    this.lastApplied.set(id, snapshotIndex);
    this.commitSeen.set(id, status.commitIndex);
    this.wasLeader.delete(id);
    if (core === undefined || base === undefined) return;
    // Everything recovered from the disk was durable; read the log's configurations again.
    const chain: ConfigAt[] = [{ index: status.snapshotIndex, term: -1, membership: base }];
    const terms: Term[] = [];
    for (let index = status.snapshotIndex + 1; index <= status.lastIndex; index++) {
      const entry = core.entryAt(index);
      if (entry === undefined) continue;
      terms[index] = entry.term;
      if (entry.membership !== undefined) chain.push({ index, term: entry.term, membership: entry.membership });
    }
    this.configs.set(id, chain);
    this.durable.set(id, { snapshotIndex: status.snapshotIndex, terms });
  }

  /** A message actually left node `message.from` (after its Ready was made durable). */
  sent(message: Message): void {
    const from = message.from;
    const ownTerm = message.type === 'PreVote' ? message.term - 1 : message.term;
    if (message.type !== 'PreVoteReply' && ownTerm > (this.termUsed.get(from) ?? 0)) this.termUsed.set(from, ownTerm);
    if (message.type === 'RequestVoteReply' && message.voteGranted) {
      const key = `${from}/${message.term}`;
      const earlier = this.votesSent.get(key);
      if (earlier !== undefined && earlier !== message.to) {
        throw new SafetyViolation('vote safety', `node ${from} voted for both ${earlier} and ${message.to} in term ${message.term}`);
      }
      this.votesSent.set(key, message.to);
    }
  }

  /** Called after every input to a node: checks whatever changed in its state. */
  observe(id: NodeId, core: NodeView, status: RaftStatus, now = 0): void {
    const ledBefore = status.role === 'leader' && this.wasLeader.get(id) === status.term;
    if (status.role === 'leader') this.checkLeaderIsMember(id, status, ledBefore, now);
    if (status.role === 'leader') {
      const existing = this.leaders.get(status.term);
      if (existing !== undefined && existing !== id) {
        throw new SafetyViolation('election safety', `nodes ${existing} and ${id} are both leaders of term ${status.term}`);
      }
      if (!this.leaders.has(status.term)) this.electedAt.set(status.term, now);
      this.leaders.set(status.term, id);
      if (this.wasLeader.get(id) !== status.term) {
        this.wasLeader.set(id, status.term);
        this.checkLeaderCompleteness(id, core, status.term, status.snapshotIndex);
      }
    }
    const previousCommit = this.commitSeen.get(id) ?? 0;
    if (status.commitIndex < previousCommit) {
      throw new SafetyViolation('commit monotonic', `node ${id} commit index went back from ${previousCommit} to ${status.commitIndex}`);
    }
    this.commitSeen.set(id, status.commitIndex);
    if (ledBefore && status.commitIndex > previousCommit) {
      // Figure 2 / §5.4.2: a leader moves its commit index only to an entry of its own term;
      // earlier entries commit with it, never by counting their replicas (Figure 8).
      const entry = core.entryAt(status.commitIndex);
      if (entry !== undefined && entry.term !== status.term) {
        throw new SafetyViolation(
          'commit rule',
          `leader ${id} of term ${status.term} advanced its commit index to ${status.commitIndex}, an entry of term ${entry.term}`,
        );
      }
    }
    for (let index = Math.max(previousCommit + 1, status.snapshotIndex + 1); index <= status.commitIndex; index++) {
      const entry = core.entryAt(index);
      if (entry !== undefined) this.noteCommitted(id, entry);
    }
    if (ledBefore && status.commitIndex > previousCommit) this.checkCommitQuorum(id, core, status);
  }

  /**
   * Only a voter leads: a learner or a node outside the configuration never wins an election
   * (it does not count in any quorum). A leader may be outside its latest configuration, which it
   * appended itself, while that configuration is not committed (thesis §4.2.2), and once it is,
   * only for as long as it takes to hand leadership over (`handoverMs`).
   */
  private checkLeaderIsMember(id: NodeId, status: RaftStatus, ledBefore: boolean, now: number): void {
    const m = status.membership;
    if (m.learners.includes(id)) {
      throw new SafetyViolation('leader membership', `node ${id} leads term ${status.term} as a learner of ${describeMembership(m)}`);
    }
    if (isVoter(m, id)) return;
    if (!ledBefore) {
      // A voter whose removal is in its log but not committed may still have to lead (thesis
      // §4.2.2): it is a voter of a configuration that may still decide. It then commits the
      // removal and hands over (checked below).
      const configs = this.configs.get(id) ?? [];
      let committedAt = 0;
      for (const c of configs) if (c.index <= status.commitIndex) committedAt = c.index;
      const mayLead = status.membershipIndex > status.commitIndex && configs.some((c) => c.index >= committedAt && isVoter(c.membership, id));
      if (!mayLead) {
        throw new SafetyViolation('leader membership', `node ${id} became leader of term ${status.term} without being a voter of its configuration (${describeMembership(m)})`);
      }
      return;
    }
    if (status.membershipIndex > status.commitIndex) return;
    let removed = this.removedLeaderSince.get(id);
    if (removed === undefined || removed.term !== status.term) this.removedLeaderSince.set(id, (removed = { term: status.term, since: now }));
    if (now - removed.since > this.handoverMs) {
      throw new SafetyViolation(
        'leader membership',
        `node ${id} still leads term ${status.term} ${(now - removed.since).toFixed(0)} ms after the configuration that removed it (${describeMembership(m)}, index ${status.membershipIndex}) committed`,
      );
    }
  }

  /**
   * What "committed" means: a leader moves its commit index only to an entry that a quorum of its
   * configuration (the latest in its log; both halves when joint; never learners) holds durably.
   */
  private checkCommitQuorum(id: NodeId, core: NodeView, status: RaftStatus): void {
    const index = status.commitIndex;
    const term = core.entryAt(index)?.term;
    if (term === undefined) return;
    const holders = new Set<NodeId>();
    for (const [node, log] of this.durable) if (index <= log.snapshotIndex || log.terms[index] === term) holders.add(node);
    if (!isQuorum(status.membership, holders)) {
      throw new SafetyViolation(
        'commit quorum',
        `leader ${id} of term ${status.term} committed index ${index}, which only nodes [${[...holders].sort((a, b) => a - b).join(', ')}] hold durably: not a quorum of ${describeMembership(status.membership)}`,
      );
    }
  }

  /** A save of node `id` completed: what it wrote is durable now. */
  synced(id: NodeId, snapshot: Snapshot | null, logWrite: LogWrite | null): void {
    let log = this.durable.get(id);
    if (log === undefined) this.durable.set(id, (log = { snapshotIndex: 0, terms: [] }));
    if (snapshot !== null && snapshot.index > log.snapshotIndex) log.snapshotIndex = snapshot.index;
    if (logWrite !== null) {
      if (log.terms.length > logWrite.fromIndex) log.terms.length = logWrite.fromIndex;
      for (const entry of logWrite.entries) log.terms[entry.index] = entry.term;
    }
  }

  /** A node whose commit index is `commitIndex` applied a command. */
  apply(id: NodeId, commitIndex: LogIndex, entry: Entry): void {
    if (entry.index > commitIndex) {
      throw new SafetyViolation('apply before commit', `node ${id} applied index ${entry.index} beyond its commit index`);
    }
    this.noteCommitted(id, entry);
    const last = this.lastApplied.get(id) ?? 0;
    if (entry.index !== last + 1) {
      throw new SafetyViolation('apply order', `node ${id} applied index ${entry.index} after ${last}`);
    }
    this.lastApplied.set(id, entry.index);
    const other = this.applied.get(entry.index);
    if (other !== undefined && !sameBytes(other, entry.command)) {
      throw new SafetyViolation('state machine safety', `two different commands were applied at index ${entry.index} (node ${id} applied a different one)`);
    }
    this.applied.set(entry.index, entry.command);
  }

  /** A node installed a snapshot from its leader. */
  applySnapshot(id: NodeId, snapshot: Snapshot): void {
    const last = this.lastApplied.get(id) ?? 0;
    if (snapshot.index <= last) {
      throw new SafetyViolation('apply order', `node ${id} installed a snapshot at ${snapshot.index} after applying ${last}`);
    }
    this.lastApplied.set(id, snapshot.index);
  }

  /**
   * A leader receives an answer in its own term that echoes a ReadIndex round. It can only be the
   * echo of an AppendEntries it sent in this term, so the round cannot be one it never reached: a
   * larger one is an echo of a message from an earlier incarnation of this node, and would confirm
   * reads that no follower confirmed.
   */
  echoReceived(id: NodeId, status: RaftStatus, message: Message): void {
    if (message.type !== 'AppendEntriesReply' || status.role !== 'leader' || message.term !== status.term) return;
    if (message.readContext > status.readRound) {
      throw new SafetyViolation(
        'read index',
        `leader ${id} of term ${status.term} received an answer from node ${message.from} echoing read round ${message.readContext}, but it has only reached round ${status.readRound} (an echo of a message its previous incarnation sent)`,
      );
    }
  }

  /**
   * ReadIndex safety (thesis §6.4): a read that leader `id` of `term` registered at `registeredAt`
   * and served must have been confirmed by a majority that still followed it after that moment,
   * so no leader of a later term can have been elected before it. (A stale read needs exactly
   * that; this check sees the cause even when no write happened to make the read visibly stale.)
   */
  readServed(id: NodeId, term: Term, registeredAt: number): void {
    for (const [laterTerm, at] of this.electedAt) {
      if (laterTerm > term && at < registeredAt) {
        throw new SafetyViolation(
          'read index',
          `node ${id}, leader of term ${term}, served a read registered at ${registeredAt.toFixed(0)} ms although node ${this.leaders.get(laterTerm)} had been elected leader of term ${laterTerm} at ${at.toFixed(0)} ms`,
        );
      }
    }
  }

  /** When the leader of `term` was first seen leading, if one was. */
  electedAtOf(term: Term): number | undefined {
    return this.electedAt.get(term);
  }

  get highestCommitted(): LogIndex {
    return this.committedMax;
  }

  private noteCommitted(id: NodeId, entry: Entry): void {
    const known = this.committed.get(entry.index);
    if (known === undefined) {
      this.committed.set(entry.index, { term: entry.term, command: entry.command, membership: entry.membership });
      if (entry.index > this.committedMax) this.committedMax = entry.index;
      if (entry.membership !== undefined && entry.index > this.committedConfig.index) {
        this.committedConfig = { index: entry.index, term: entry.term, membership: entry.membership };
        for (const member of allMembers(entry.membership)) this.committedMembers.add(member);
      }
      return;
    }
    if (known.term !== entry.term || !sameBytes(known.command, entry.command)) {
      throw new SafetyViolation(
        'state machine safety',
        `node ${id} committed (index ${entry.index}, term ${entry.term}) where (term ${known.term}) was committed before`,
      );
    }
    if (!sameConfig(known.membership, entry.membership)) {
      // The committed configurations are one sequence: every node's committed prefix has the same ones.
      throw new SafetyViolation(
        'configuration safety',
        `node ${id} committed ${describeConfig(entry.membership)} at index ${entry.index}, where ${describeConfig(known.membership)} was committed before`,
      );
    }
  }

  private checkLeaderCompleteness(id: NodeId, core: NodeView, term: Term, snapshotIndex: LogIndex): void {
    for (const [index, entry] of this.committed) {
      if (entry.term >= term || index <= snapshotIndex) continue;
      const held = core.entryAt(index);
      if (held === undefined || held.term !== entry.term) {
        throw new SafetyViolation(
          'leader completeness',
          `node ${id} became leader of term ${term} without the entry committed at index ${index} (term ${entry.term}); it holds ${held === undefined ? 'nothing' : `term ${held.term}`} there`,
        );
      }
    }
  }

  /**
   * Node `id` is about to save `snapshot` (its own compaction, or one installed from the leader)
   * and/or entries from `fromIndex` on, which are in its log now: check them against the ledger,
   * and every new configuration against those it may be in force with.
   */
  logWritten(id: NodeId, core: NodeView, status: RaftStatus, fromIndex: LogIndex | null, snapshot: Snapshot | null = null): void {
    let chain = this.configs.get(id);
    if (chain === undefined) this.configs.set(id, (chain = []));
    if (snapshot !== null && snapshot.membership !== undefined && (chain.length === 0 || snapshot.index >= chain[0]!.index)) {
      // The snapshot replaces the log up to its index: its configuration is the base, and only
      // configuration entries after it that the log still holds remain.
      const kept = chain.filter((c) => c.index > snapshot.index && core.entryAt(c.index)?.term === c.term);
      chain.length = 0;
      chain.push({ index: snapshot.index, term: snapshot.term, membership: snapshot.membership }, ...kept);
    }
    if (fromIndex === null) return;
    while (chain.length > 1 && chain[chain.length - 1]!.index >= fromIndex) chain.pop();
    for (let index = Math.max(fromIndex, status.firstIndex); index <= status.lastIndex; index++) {
      const entry = core.entryAt(index)!;
      const previousTerm = index - 1 === status.snapshotIndex ? -1 : (core.entryAt(index - 1)?.term ?? -1);
      if (entry.membership !== undefined) this.configurationWritten(id, chain, entry, status);
      const key = `${index}/${entry.term}`;
      const known = this.ledger.get(key);
      if (known === undefined) {
        this.ledger.set(key, { command: entry.command, membership: entry.membership, previousTerm });
        continue;
      }
      if (!sameBytes(known.command, entry.command) || !sameConfig(known.membership, entry.membership)) {
        throw new SafetyViolation('log matching', `node ${id} holds a different command at (index ${index}, term ${entry.term})`);
      }
      if (previousTerm !== -1 && known.previousTerm !== -1 && previousTerm !== known.previousTerm) {
        throw new SafetyViolation(
          'log matching',
          `node ${id} holds (index ${index}, term ${entry.term}) after an entry of term ${previousTerm}; elsewhere it follows term ${known.previousTerm}`,
        );
      }
    }
  }

  /**
   * Configuration safety (thesis ch. 4): a configuration entry at index i takes effect as soon as
   * it is in a log, while the configurations before it may still decide until one of them is
   * known committed. So it must overlap (every quorum of one intersects every quorum of the other)
   * its predecessor and every configuration back to the one in effect at the commit index: the
   * latest committed, as far as anyone has said, or this node's own commit index if later.
   */
  private configurationWritten(id: NodeId, chain: ConfigAt[], entry: Entry, status: RaftStatus): void {
    const membership = entry.membership!;
    const committed = Math.min(Math.max(this.committedMax, status.commitIndex), entry.index - 1);
    let from = chain.length - 1;
    while (from > 0 && chain[from]!.index > committed) from--;
    for (let i = Math.max(0, from); i < chain.length; i++) {
      const earlier = chain[i]!;
      if (!this.overlap(earlier.membership, membership)) {
        throw new SafetyViolation(
          'configuration safety',
          `node ${id} holds ${describeMembership(membership)} at (index ${entry.index}, term ${entry.term}) while ${describeMembership(earlier.membership)} ` +
            `(index ${earlier.index}) may still decide (committed up to ${committed}): they have disjoint quorums`,
        );
      }
    }
    chain.push({ index: entry.index, term: entry.term, membership });
  }

  private overlap(a: Membership, b: Membership): boolean {
    if (a === b) return true;
    const key = `${describeMembership(a)}|${describeMembership(b)}`;
    let result = this.overlapCache.get(key);
    if (result === undefined) this.overlapCache.set(key, (result = quorumsOverlap(a, b)));
    return result;
  }
}
