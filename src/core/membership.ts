import type { LogIndex, NodeId } from './messages.js';

/**
 * A cluster configuration (thesis ch. 4): who votes, who only listens, and, while a change of
 * voters is under way, the voters it is moving away from.
 *
 * - `voters`: the members whose majority decides elections and commits.
 * - `outgoing`: non-empty only in a joint configuration (C_old,new): the previous voters. Every
 *   decision then needs a majority of `voters` and, separately, a majority of `outgoing`, so no
 *   two configurations the log passes through can each form a quorum the other does not overlap.
 * - `learners`: members that receive the log and snapshots but never vote or count in a quorum,
 *   so a new node can catch up without weakening the cluster. Never in `voters` or `outgoing`.
 * - `addresses`: an opaque string per member, carried for the application (the runtime keeps its
 *   peer and HTTP addresses there); the core never reads it.
 *
 * Ids are kept sorted, so two equal configurations are equal field by field.
 */
export interface Membership {
  readonly voters: readonly NodeId[];
  readonly outgoing: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly addresses: readonly MemberAddress[];
}

export interface MemberAddress {
  readonly id: NodeId;
  readonly address: string;
}

/** One step of a membership change; a change is a list of steps applied together. */
export type MembershipStep =
  | { readonly type: 'add-learner'; readonly id: NodeId; readonly address?: string }
  | { readonly type: 'add-voter'; readonly id: NodeId; readonly address?: string }
  | { readonly type: 'promote'; readonly id: NodeId }
  | { readonly type: 'remove'; readonly id: NodeId };

/** The longest address the core carries for a member (bytes of UTF-16 code units; plenty for host:port/url). */
export const MEMBER_ADDRESS_MAX = 1024;
/** The most members a configuration may hold (voters, outgoing and learners together). */
export const MEMBERS_MAX = 256;

const sorted = (ids: Iterable<NodeId>): NodeId[] => [...new Set(ids)].sort((a, b) => a - b);

/** The configuration a cluster starts with: these voters, no learners. */
export function initialMembership(voters: readonly NodeId[], learners: readonly NodeId[] = [], addresses: readonly MemberAddress[] = []): Membership {
  return normalizeMembership({ voters, outgoing: [], learners, addresses });
}

export function normalizeMembership(m: Membership): Membership {
  const members = new Set([...m.voters, ...m.outgoing, ...m.learners]);
  const addresses = m.addresses
    .filter((a) => members.has(a.id) && a.address !== '')
    .sort((a, b) => a.id - b.id)
    .filter((a, i, all) => i === 0 || all[i - 1]!.id !== a.id);
  return { voters: sorted(m.voters), outgoing: sorted(m.outgoing), learners: sorted(m.learners), addresses };
}

export function isJoint(m: Membership): boolean {
  return m.outgoing.length > 0;
}

/** Whether `id` votes in `m` (in either half of a joint configuration). */
export function isVoter(m: Membership, id: NodeId): boolean {
  return m.voters.includes(id) || m.outgoing.includes(id);
}

/** Every member: voters, outgoing voters and learners, sorted. */
export function allMembers(m: Membership): NodeId[] {
  return sorted([...m.voters, ...m.outgoing, ...m.learners]);
}

/** Everyone who votes, in either half. */
export function allVoters(m: Membership): NodeId[] {
  return sorted([...m.voters, ...m.outgoing]);
}

export function addressOf(m: Membership, id: NodeId): string | undefined {
  return m.addresses.find((a) => a.id === id)?.address;
}

export function sameMembership(a: Membership, b: Membership): boolean {
  const same = (x: readonly NodeId[], y: readonly NodeId[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return (
    same(a.voters, b.voters) &&
    same(a.outgoing, b.outgoing) &&
    same(a.learners, b.learners) &&
    a.addresses.length === b.addresses.length &&
    a.addresses.every((x, i) => x.id === b.addresses[i]!.id && x.address === b.addresses[i]!.address)
  );
}

/** "voters 0,1,2 (joint with 0,1,3), learners 4" */
export function describeMembership(m: Membership): string {
  const joint = isJoint(m) ? ` (joint with ${m.outgoing.join(',')})` : '';
  const learners = m.learners.length > 0 ? `, learners ${m.learners.join(',')}` : '';
  return `voters ${m.voters.join(',')}${joint}${learners}`;
}

/**
 * Why `m` cannot be a configuration (received from a peer or read from disk), or null: ids must be
 * sorted, unique, non-negative safe integers; voters non-empty; learners disjoint from voters;
 * addresses only for members, bounded.
 */
export function checkMembership(m: Membership): string | null {
  const groups: [string, readonly NodeId[]][] = [['voters', m.voters], ['outgoing', m.outgoing], ['learners', m.learners]];
  for (const [name, ids] of groups) {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isSafeInteger(id) || id < 0) return `${name}: invalid id ${String(id)}`;
      if (i > 0 && ids[i - 1]! >= id) return `${name} are not sorted and unique`;
    }
  }
  if (m.voters.length === 0) return 'no voters';
  const members = allMembers(m);
  if (members.length > MEMBERS_MAX) return `${members.length} members, at most ${MEMBERS_MAX}`;
  for (const id of m.learners) {
    if (m.voters.includes(id) || m.outgoing.includes(id)) return `learner ${id} is also a voter`;
  }
  for (let i = 0; i < m.addresses.length; i++) {
    const a = m.addresses[i]!;
    if (!members.includes(a.id)) return `address for non-member ${a.id}`;
    if (i > 0 && m.addresses[i - 1]!.id >= a.id) return 'addresses are not sorted and unique';
    if (typeof a.address !== 'string' || a.address.length === 0 || a.address.length > MEMBER_ADDRESS_MAX) return `bad address for ${a.id}`;
  }
  return null;
}

/**
 * The configuration after `steps`, or why they cannot be applied to `m`. Steps that change the
 * voters give a joint configuration (new voters, with the current ones as `outgoing`); steps that
 * only add or remove learners give the new configuration directly, since no quorum changes. A
 * joint configuration takes no new change: it must first be left.
 */
export function applySteps(m: Membership, steps: readonly MembershipStep[]): Membership | string {
  if (isJoint(m)) return 'the cluster is still leaving a joint configuration';
  if (steps.length === 0) return 'no change given';
  const voters = new Set(m.voters);
  const learners = new Set(m.learners);
  const addresses = new Map(m.addresses.map((a) => [a.id, a.address]));
  const touched = new Set<NodeId>();
  for (const step of steps) {
    if (!Number.isSafeInteger(step.id) || step.id < 0) return `invalid node id ${String(step.id)}`;
    if (touched.has(step.id)) return `node ${step.id} appears twice in one change`;
    touched.add(step.id);
    switch (step.type) {
      case 'add-learner':
      case 'add-voter':
        if (voters.has(step.id)) return `node ${step.id} is already a voter`;
        if (learners.has(step.id)) return step.type === 'add-voter' ? `node ${step.id} is already a learner: promote it` : `node ${step.id} is already a learner`;
        if (step.type === 'add-voter') voters.add(step.id);
        else learners.add(step.id);
        if (step.address !== undefined && step.address !== '') addresses.set(step.id, step.address);
        break;
      case 'promote':
        if (voters.has(step.id)) return `node ${step.id} is already a voter`;
        if (!learners.has(step.id)) return `node ${step.id} is not a learner of this cluster`;
        learners.delete(step.id);
        voters.add(step.id);
        break;
      case 'remove':
        if (!voters.delete(step.id) && !learners.delete(step.id)) return `node ${step.id} is not a member of this cluster`;
        break;
      default:
        return `unknown change ${JSON.stringify((step as { type: unknown }).type)}`;
    }
  }
  if (voters.size === 0) return 'the change would leave no voters';
  const votersChange = voters.size !== m.voters.length || m.voters.some((id) => !voters.has(id));
  // Addresses of members who leave are dropped by normalizing: outgoing voters keep theirs until
  // the joint configuration is left.
  const next = normalizeMembership({
    voters: [...voters],
    outgoing: votersChange ? m.voters : [],
    learners: [...learners],
    addresses: [...addresses].map(([id, address]) => ({ id, address })),
  });
  const problem = checkMembership(next);
  return problem ?? next;
}

/** The configuration that ends joint consensus: the incoming voters alone. */
export function leaveJoint(m: Membership): Membership {
  return normalizeMembership({ voters: m.voters, outgoing: [], learners: m.learners, addresses: m.addresses });
}

/**
 * Whether `ids` hold a quorum of `m`: a majority of `voters` and, in a joint configuration, a
 * majority of `outgoing` too. Learners never count (`learnersCount` is the injected bug).
 */
export function isQuorum(m: Membership, ids: ReadonlySet<NodeId>, learnersCount = false): boolean {
  const groups = quorumGroups(m, learnersCount);
  return groups.every((group) => group.filter((id) => ids.has(id)).length * 2 > group.length);
}

/**
 * The highest value a quorum of `m` has reached, where `valueOf(id)` is a member's value (a match
 * index, an echoed read round): the minimum over the groups of each group's majority value.
 */
export function quorumValue(m: Membership, valueOf: (id: NodeId) => number, learnersCount = false): number {
  let result = Number.POSITIVE_INFINITY;
  for (const group of quorumGroups(m, learnersCount)) {
    const values = group.map(valueOf).sort((a, b) => b - a);
    result = Math.min(result, values[Math.floor(group.length / 2)]!);
  }
  return result;
}

function quorumGroups(m: Membership, learnersCount: boolean): (readonly NodeId[])[] {
  const incoming = learnersCount ? sorted([...m.voters, ...m.learners]) : m.voters;
  return isJoint(m) ? [incoming, m.outgoing] : [incoming];
}

/** A configuration entry's place in the log. */
export interface MembershipAt {
  readonly index: LogIndex;
  readonly membership: Membership;
}
