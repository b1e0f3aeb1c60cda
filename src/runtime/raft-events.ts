/**
 * The log lines of a node's Raft life: elections, role, term and leader changes, lost quorum,
 * snapshots and applied configurations. The core stays silent (it is pure); RaftNode hands this
 * class the core's status after every batch of inputs, and what changed since the last one is
 * what gets logged. Votes are counted here from the replies that reach the node, since the core
 * keeps its tally to itself.
 */
import type { Membership } from '../core/membership.js';
import type { Message, NodeId, Snapshot, Term } from '../core/messages.js';
import type { RaftStatus, Role } from '../core/raft.js';
import type { Logger } from './logger.js';

/** What of the core's status the event log compares between batches. */
export type ObservedStatus = Pick<RaftStatus, 'role' | 'term' | 'leaderId' | 'quorumLost' | 'membership'>;

const NO_LEADER = -1;

export class RaftEventLog {
  private role: Role | null = null;
  private term: Term = 0;
  private leaderId: NodeId = NO_LEADER;
  private quorumLost = 0;
  /** Who granted this node a vote, and a pre-vote, in the term it campaigns (or pre-campaigns) for. */
  private votes = { term: -1, from: new Set<NodeId>() };
  private preVotes = { term: -1, from: new Set<NodeId>() };

  constructor(
    private readonly logger: Logger,
    private readonly id: NodeId,
  ) {}

  /** Whether anything is logged at all: a node without a logger (the simulator's) skips the bookkeeping. */
  get active(): boolean {
    return this.logger.enabled('warn');
  }

  /** A message about to be fed to the core: a granted vote is counted for the term it is for. */
  received(message: Message): void {
    if (message.type === 'RequestVoteReply' && message.voteGranted) tally(this.votes, message.term, message.from);
    else if (message.type === 'PreVoteReply' && message.voteGranted) tally(this.preVotes, message.term, message.from);
  }

  /** The core's status after a batch of inputs: logs what changed since the previous one. */
  observe(status: ObservedStatus): void {
    if (this.role === null) {
      this.logger.info('started', { role: status.role, term: status.term, voters: status.membership.voters, learners: status.membership.learners });
      this.remember(status);
      return;
    }
    const before = { role: this.role, term: this.term, leaderId: this.leaderId };
    const lostQuorum = status.quorumLost > this.quorumLost;
    this.remember(status);
    const { role, term, leaderId } = status;
    const roleChanged = role !== before.role;

    // An election this node ran ended without it winning: a higher term, another leader, or a new campaign of its own.
    if (before.role === 'candidate' && (role !== 'leader' || term !== before.term) && !(role === 'candidate' && term === before.term)) {
      const why = role === 'candidate' ? 'no majority before the election timeout' : leaderId !== NO_LEADER ? `node ${leaderId} leads` : `term ${term} seen`;
      this.logger.info('election lost', { term: before.term, votes: this.votersFor(this.votes, before.term), reason: why });
    }
    if (before.role === 'leader' && (role !== 'leader' || term !== before.term)) {
      if (lostQuorum) this.logger.warn('stepped down: no majority heard within an election timeout (lost quorum)', { term: before.term, role });
      else this.logger.info('stepped down', { term: before.term, newTerm: term, role, leader: leaderId === NO_LEADER ? undefined : leaderId });
    }

    if (role === 'precandidate' && roleChanged) {
      this.logger.info('pre-vote started', { term, forTerm: term + 1 });
    } else if (before.role === 'precandidate' && role === 'follower' && term === before.term) {
      this.logger.info('pre-vote ended', { term, leader: leaderId === NO_LEADER ? undefined : leaderId });
    }
    // Only this node's own campaign moves it to a new term as candidate (or, alone, straight to leader).
    if ((role === 'candidate' || role === 'leader') && term !== before.term) {
      this.logger.info('campaign started', { term, preVotes: before.role === 'precandidate' ? this.votersFor(this.preVotes, term) : undefined });
    }
    if (role === 'leader' && (roleChanged || term !== before.term)) {
      this.logger.info('election won: this node leads', { term, votes: this.votersFor(this.votes, term) });
    }
    // A leader's step-down line already says the new term.
    if (term !== before.term && role !== 'candidate' && role !== 'leader' && before.role !== 'leader') {
      this.logger.info('term changed', { from: before.term, to: term, role });
    } else if (roleChanged && role === 'follower' && before.role !== 'leader' && before.role !== 'candidate' && before.role !== 'precandidate') {
      this.logger.info('role changed', { from: before.role, to: role, term });
    }
    if (leaderId !== before.leaderId && leaderId !== NO_LEADER && leaderId !== this.id) {
      this.logger.info(`leader is node ${leaderId}`, { leader: leaderId, term, previous: before.leaderId === NO_LEADER ? undefined : before.leaderId });
    }
  }

  snapshotTaken(index: number, bytes: number): void {
    this.logger.info('snapshot taken', { index, bytes });
  }

  snapshotInstalled(snapshot: Snapshot): void {
    this.logger.info('snapshot installed from the leader', { index: snapshot.index, term: snapshot.term, bytes: snapshot.data.byteLength });
  }

  configurationApplied(index: number, membership: Membership): void {
    this.logger.info('configuration applied', {
      index,
      voters: membership.voters,
      outgoing: membership.outgoing.length === 0 ? undefined : membership.outgoing,
      learners: membership.learners,
    });
  }

  private remember(status: ObservedStatus): void {
    this.role = status.role;
    this.term = status.term;
    this.leaderId = status.leaderId;
    this.quorumLost = status.quorumLost;
  }

  /** This node and those that granted it a vote for `term`, in id order. */
  private votersFor(votes: { term: Term; from: Set<NodeId> }, term: Term): NodeId[] {
    const from = votes.term === term ? votes.from : new Set<NodeId>();
    return [...new Set([this.id, ...from])].sort((a, b) => a - b);
  }
}

function tally(votes: { term: Term; from: Set<NodeId> }, term: Term, from: NodeId): void {
  if (votes.term !== term) {
    votes.term = term;
    votes.from = new Set();
  }
  votes.from.add(from);
}
