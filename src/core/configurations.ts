import type { InjectedBug } from './bugs.js';
import type { RaftLog } from './log.js';
import {
  allMembers,
  allVoters,
  applySteps,
  describeMembership,
  isJoint,
  isQuorum,
  isVoter,
  leaveJoint,
  type Membership,
  type MembershipStep,
} from './membership.js';
import type { NodeId } from './messages.js';

/** Why a membership change was not proposed. */
export type MembershipRefusal =
  | { readonly refused: 'not-leader' }
  /** Another change is not yet committed, or a joint configuration not yet left: one at a time. */
  | { readonly refused: 'change-pending'; readonly message: string }
  /** A leadership transfer is under way: the log stands still until it ends. */
  | { readonly refused: 'transfer-pending' }
  /** The change does not apply to the current configuration (unknown member, no voters left, ...). */
  | { readonly refused: 'invalid'; readonly message: string };

/**
 * What one node knows of its cluster's configurations, and the rules that read them (see
 * docs/ARCHITECTURE.md, "Membership changes"): which configuration counts for quorums, who is
 * asked for votes, who may speak to this node, and whether a change may be proposed now. The
 * configurations themselves live in the log (RaftLog tracks its configuration entries); roles
 * stay in raft.ts.
 */
export class Configurations {
  /** Every node named by a configuration this node knows, cached per log configuration version. */
  private known: ReadonlySet<NodeId> = new Set();
  private knownVersion = -1;

  constructor(
    private readonly id: NodeId,
    /** The configuration the node started with, before any in its log or snapshot. */
    private readonly starting: Membership,
    private readonly log: RaftLog,
    private readonly hasBug: (bug: InjectedBug) => boolean,
  ) {}

  /** The latest configuration in the log, committed or not: the one in effect (thesis §4.1). */
  latest(): Membership {
    return this.log.membership();
  }

  /**
   * The configuration whose quorums count: the latest in the log. The injected bug
   * `committed-config` uses the latest committed one instead.
   */
  forQuorum(): Membership {
    return this.hasBug('committed-config') ? this.log.membershipAt(this.log.commitIndex) : this.log.membership();
  }

  /** The injected bug `learner-in-quorum` is on. */
  get learnersCount(): boolean {
    return this.hasBug('learner-in-quorum');
  }

  /** Whether `ids` hold a quorum of the configuration in effect. */
  hasQuorum(ids: ReadonlySet<NodeId>): boolean {
    return isQuorum(this.forQuorum(), ids, this.learnersCount);
  }

  /**
   * This node may start an election: it votes in the configuration in effect, or in any that may
   * still decide, from the latest committed one on. A voter whose removal is appended but not
   * committed must keep campaigning (thesis §4.2.2): the configuration that removes it may yet be
   * overwritten, and the others may need it to elect anyone (a joint configuration whose outgoing
   * half is this node and one other, which cannot win without our vote and cannot get it, since our
   * log is longer). A learner, or a node whose removal is committed, never campaigns.
   */
  mayCampaign(): boolean {
    if (isVoter(this.forQuorum(), this.id)) return true;
    const committedAt = this.log.membershipIndex() <= this.log.commitIndex ? this.log.membershipIndex() : this.committedConfigIndex();
    return this.log.memberships().some((at) => at.index >= committedAt && isVoter(at.membership, this.id));
  }

  /** The index of the configuration in effect at the commit index. */
  private committedConfigIndex(): number {
    let index = 0;
    for (const at of this.log.memberships()) if (at.index <= this.log.commitIndex) index = at.index;
    return index;
  }

  /** Every other voter of the configuration in effect: who a candidate asks for votes. */
  electorate(): NodeId[] {
    return allVoters(this.forQuorum()).filter((id) => id !== this.id);
  }

  /** The latest configuration is committed and this node is not one of its voters. */
  removedFromCommitted(): boolean {
    return this.log.membershipIndex() <= this.log.commitIndex && !this.log.membership().voters.includes(this.id);
  }

  /** A configuration change is still under way: the latest is uncommitted, or joint. */
  changeUnderWay(): boolean {
    return this.log.membershipIndex() > this.log.commitIndex || isJoint(this.log.membership());
  }

  /** The configuration that ends a committed joint configuration, or null if there is none to leave. */
  leaveIfJointCommitted(): Membership | null {
    const latest = this.log.membership();
    return isJoint(latest) && this.log.membershipIndex() <= this.log.commitIndex ? leaveJoint(latest) : null;
  }

  /**
   * The configuration `steps` would append, or why they may not be proposed now: one change at a
   * time (the injected bug `two-changes-in-flight` skips this, starting from the incoming voters of
   * a joint configuration), and the steps must fit the latest configuration.
   */
  next(steps: readonly MembershipStep[]): Membership | MembershipRefusal {
    const current = this.log.membership();
    const bug = this.hasBug('two-changes-in-flight');
    if (!bug) {
      if (this.log.membershipIndex() > this.log.commitIndex) {
        return { refused: 'change-pending', message: `the configuration at index ${this.log.membershipIndex()} (${describeMembership(current)}) is not committed yet` };
      }
      if (isJoint(current)) return { refused: 'change-pending', message: `the cluster is still leaving the joint configuration ${describeMembership(current)}` };
    }
    const next = applySteps(bug && isJoint(current) ? leaveJoint(current) : current, steps);
    return typeof next === 'string' ? { refused: 'invalid', message: next } : next;
  }

  /**
   * Every node named by a configuration this node knows: the starting one, the snapshot's, and
   * every configuration entry in the log. Messages from anyone else are dropped; a node added
   * later is known once the entry that adds it is in the log, and a new leader's first message to
   * a node catching up from an old log comes from a node its starting configuration names.
   */
  knownMembers(): ReadonlySet<NodeId> {
    if (this.knownVersion !== this.log.membershipVersion) {
      const known = new Set(allMembers(this.starting));
      for (const { membership } of this.log.memberships()) for (const id of allMembers(membership)) known.add(id);
      this.known = known;
      this.knownVersion = this.log.membershipVersion;
    }
    return this.known;
  }

  /**
   * The address of every known member (see knownMembers()), the latest configuration's word
   * winning: whom a transport must be able to reach and accept.
   */
  knownAddresses(): Map<NodeId, string> {
    const addresses = new Map<NodeId, string>();
    for (const m of [this.starting, ...this.log.memberships().map((at) => at.membership)]) {
      for (const a of m.addresses) addresses.set(a.id, a.address);
    }
    const known = this.knownMembers();
    for (const id of addresses.keys()) if (!known.has(id)) addresses.delete(id);
    return addresses;
  }
}
