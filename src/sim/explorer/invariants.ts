import type { Entry, LogIndex, Message, NodeId, Snapshot, Term } from '../../core/messages.js';
import { NO_VOTE } from '../../core/messages.js';
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

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  // A native comparison: commands can be large (snapshot-sized state, values near the frame limit).
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

interface LedgerEntry {
  readonly command: Uint8Array;
  readonly previousTerm: Term;
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
 *   restart with a term older than one it already used in a message.
 */
export class SafetyChecker {
  private readonly leaders = new Map<Term, NodeId>();
  /** When the first leader of each term was seen (for the ReadIndex check). */
  private readonly electedAt = new Map<Term, number>();
  private readonly ledger = new Map<string, LedgerEntry>();
  /** The command committed at each index, as far as any node has said. */
  private readonly committed = new Map<LogIndex, { term: Term; command: Uint8Array }>();
  private committedMax: LogIndex = 0;
  private readonly applied = new Map<LogIndex, Uint8Array>();
  private readonly lastApplied = new Map<NodeId, LogIndex>();
  private readonly commitSeen = new Map<NodeId, LogIndex>();
  private readonly votesSent = new Map<string, NodeId>();
  private readonly termUsed = new Map<NodeId, Term>();
  private readonly wasLeader = new Map<NodeId, Term>();

  /** A node (re)started: nothing it held in memory counts any more, but its durable promises do. */
  restarted(id: NodeId, status: RaftStatus, snapshotIndex: LogIndex): void {
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

  get highestCommitted(): LogIndex {
    return this.committedMax;
  }

  private noteCommitted(id: NodeId, entry: Entry): void {
    const known = this.committed.get(entry.index);
    if (known === undefined) {
      this.committed.set(entry.index, { term: entry.term, command: entry.command });
      if (entry.index > this.committedMax) this.committedMax = entry.index;
      return;
    }
    if (known.term !== entry.term || !sameBytes(known.command, entry.command)) {
      throw new SafetyViolation(
        'state machine safety',
        `node ${id} committed (index ${entry.index}, term ${entry.term}) where (term ${known.term}) was committed before`,
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

  /** Entries from `fromIndex` on were (re)written in node `id`'s log: check them against the ledger. */
  logWritten(id: NodeId, core: NodeView, status: RaftStatus, fromIndex: LogIndex): void {
    for (let index = Math.max(fromIndex, status.firstIndex); index <= status.lastIndex; index++) {
      const entry = core.entryAt(index)!;
      const previousTerm = index - 1 === status.snapshotIndex ? -1 : (core.entryAt(index - 1)?.term ?? -1);
      const key = `${index}/${entry.term}`;
      const known = this.ledger.get(key);
      if (known === undefined) {
        this.ledger.set(key, { command: entry.command, previousTerm });
        continue;
      }
      if (!sameBytes(known.command, entry.command)) {
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
}
