/**
 * An operator at work. In one world in three it hands leadership from the current leader to a
 * random member (RaftNode.transferLeadership) or stops the leader gracefully (RaftNode.stop(),
 * which hands over first, as on SIGTERM) and starts it again shortly after. Transfers race with
 * every other fault, so an election started by TimeoutNow must keep every safety property, and
 * the clients' history stays linearizable.
 *
 * In worlds with spare nodes (would-be joiners, running from the start with the starting voters
 * as `peers` and themselves as `learners`) it also changes the membership through
 * RaftNode.changeMembership on whichever node leads: it adds a spare as a learner, promotes a
 * learner, removes a voter (sometimes the leader itself) or a learner, replaces voters (promotes
 * learners and removes as many voters in one change, which goes through joint consensus), and now
 * and then proposes two changes back to back, the second of which must be refused while the first
 * is under way. Ids are never reused: a node once removed is never added again, and is stopped for
 * good once its removal is known to have committed. Refusals (a change under way, a learner not
 * caught up, not the leader, a transfer under way) and unknown outcomes are normal and traced.
 */
import { allMembers, applySteps, describeMembership, isJoint, leaveJoint, type Membership, type MembershipStep } from '../../core/membership.js';
import type { NodeId } from '../../core/messages.js';
import type { RaftError } from '../../runtime/errors.js';
import type { Prng } from '../prng.js';
import type { Timer } from '../scheduler.js';
import type { ExplorerNode } from './explorer-node.js';

/** What the operator needs of its world (the World satisfies it). */
export interface OperatorHost {
  readonly nodes: readonly ExplorerNode[];
  readonly isHealed: boolean;
  readonly scheduler: { schedule(delayMs: number, callback: () => void): Timer };
  readonly shape: { readonly nodes: number; readonly spares: number; readonly operator: boolean };
  leaderId(): NodeId;
  restart(id: NodeId): void;
  noteTopologyChanged(disruptive: boolean): void;
  trace(line: string): void;
  /** Stops a removed node for good. */
  retire(id: NodeId): void;
  isRetired(id: NodeId): boolean;
  /** Retires every node whose removal is known to have committed. */
  retireRemoved(): void;
  /** A membership change was accepted while another was under way: a broken promise of the API. */
  noteSecondChangeAccepted(detail: string): void;
}

/** How long the operator waits for one change. */
const CHANGE_TIMEOUT_MS = 4000;

type Change = { readonly name: string; readonly steps: readonly MembershipStep[] };

export class Operator {
  /** Nodes the operator proposed to remove (whatever came of it): never added again. */
  private readonly removed = new Set<NodeId>();

  constructor(
    private readonly host: OperatorHost,
    private readonly prng: Prng,
  ) {}

  private get membershipWorld(): boolean {
    return this.host.shape.spares > 0;
  }

  start(): void {
    // Membership worlds change often: a change takes a few round trips, and the interesting
    // moments (a change under way when leaders change, a partition) need many of them.
    const gap = this.membershipWorld ? 100 + this.prng.nextInt(1500) : 200 + this.prng.nextInt(3000);
    this.host.scheduler.schedule(gap, () => {
      if (this.host.isHealed) return;
      this.act();
      this.start();
    });
  }

  private act(): void {
    if (this.membershipWorld) {
      this.host.retireRemoved();
      if (!this.host.shape.operator || this.prng.chance(3, 4)) {
        this.changeMembership();
        return;
      }
    }
    const leader = this.host.leaderId();
    if (leader === -1) return;
    const node = this.host.nodes[leader]!;
    if (this.prng.chance(2, 3)) {
      const target = this.transferTarget(leader);
      this.host.trace(`operator: n${leader} hands leadership to n${target}`);
      node.node?.transferLeadership(target).then(
        (id) => this.host.trace(`operator: n${leader} sees n${id} lead`),
        (error: Error) => this.host.trace(`operator: transfer from n${leader} failed: ${error.message}`),
      );
      return;
    }
    const downMs = 10 + this.prng.nextInt(500);
    this.host.trace(`operator: stops leader n${leader} gracefully, back in ${downMs} ms`);
    void node.stopGracefully().then(() => {
      this.host.trace(`operator: n${leader} stopped`);
      this.host.noteTopologyChanged(true);
      this.host.scheduler.schedule(downMs, () => this.host.restart(leader));
    });
  }

  private transferTarget(leader: NodeId): NodeId {
    const n = this.host.nodes.length;
    if (!this.membershipWorld) return (leader + 1 + this.prng.nextInt(n - 1)) % n;
    const voters = this.host.nodes[leader]!.node?.membership().voters.filter((id) => id !== leader) ?? [];
    return voters.length === 0 ? leader : this.prng.pick(voters);
  }

  // ------------------------------------------------------------------ membership changes

  private changeMembership(): void {
    const leader = this.host.leaderId();
    const node = leader === -1 ? null : this.host.nodes[leader]!.node;
    if (node === null) return;
    const current = node.membership();
    const first = this.drawChange(leader, current);
    if (first === null) return;
    if (!this.prng.chance(1, 5)) {
      this.propose(leader, first);
      return;
    }
    // Two changes back to back: the second, drawn as if the first were done, must be refused
    // (TSRAFT_MEMBERSHIP_PENDING) while the first is under way.
    const after = applySteps(current, first.steps);
    const second = typeof after === 'string' ? null : this.drawChange(leader, isJoint(after) ? leaveJoint(after) : after, this.prng.chance(2, 3));
    this.host.trace(`operator: two changes back to back on n${leader}`);
    this.propose(leader, first);
    if (second !== null) this.propose(leader, second);
  }

  /**
   * One change that fits `m`, or null. `preferRemoval`: a removal of a voter if there is one to
   * remove (after a replacement, the combination that would break quorum overlap if both were
   * in force at once).
   */
  private drawChange(leader: NodeId, m: Membership, preferRemoval = false): Change | null {
    const members = new Set(allMembers(m));
    const spares = this.host.nodes
      .map((n) => n.id)
      .filter((id) => id >= this.host.shape.nodes && !members.has(id) && !this.removed.has(id) && !this.host.isRetired(id));
    const learners = m.learners.filter((id) => !this.host.isRetired(id));
    const voters = m.voters;
    const pickVoter = (exclude: readonly NodeId[] = []): NodeId => {
      // Now and then the leader itself: it must hand over once the change commits.
      if (!exclude.includes(leader) && voters.includes(leader) && this.prng.chance(1, 4)) return leader;
      const others = voters.filter((id) => !exclude.includes(id));
      return this.prng.pick(others);
    };
    const options: [number, () => Change][] = [];
    if (spares.length > 0) options.push([25, () => ({ name: 'add learner', steps: [{ type: 'add-learner', id: this.prng.pick(spares) }] })]);
    if (learners.length > 0) {
      options.push([15, () => ({ name: 'promote', steps: [{ type: 'promote', id: this.prng.pick(learners) }] })]);
      options.push([6, () => ({ name: 'remove learner', steps: [{ type: 'remove', id: this.prng.pick(learners) }] })]);
      options.push([
        20,
        () => {
          const learner = this.prng.pick(learners);
          return { name: 'replace', steps: [{ type: 'promote', id: learner }, { type: 'remove', id: pickVoter() }] };
        },
      ]);
    }
    if (learners.length >= 2 && voters.length >= 2) {
      options.push([
        8,
        () => {
          const [a, b] = this.twoOf(learners);
          const v = pickVoter();
          const w = pickVoter([v]);
          return { name: 'replace two', steps: [{ type: 'promote', id: a }, { type: 'promote', id: b }, { type: 'remove', id: v }, { type: 'remove', id: w }] };
        },
      ]);
    }
    if (voters.length >= 2) {
      const weight = preferRemoval ? 1000 : voters.length >= 3 ? 12 : 4;
      options.push([weight, () => ({ name: 'remove voter', steps: [{ type: 'remove', id: pickVoter() }] })]);
    }
    if (options.length === 0) return null;
    let roll = this.prng.nextInt(options.reduce((sum, [weight]) => sum + weight, 0));
    for (const [weight, make] of options) {
      if (roll < weight) return make();
      roll -= weight;
    }
    return null;
  }

  private twoOf(ids: readonly NodeId[]): [NodeId, NodeId] {
    const a = this.prng.pick(ids);
    const rest = ids.filter((id) => id !== a);
    return [a, this.prng.pick(rest)];
  }

  private propose(leader: NodeId, change: Change): void {
    const node = this.host.nodes[leader]!.node;
    if (node === null) return;
    const before = node.raftStatus(false);
    const pending = before.membershipIndex > before.commitIndex || isJoint(before.membership);
    const text = `${change.name} [${change.steps.map((s) => `${s.type} n${s.id}`).join(', ')}]`;
    const promise = node.changeMembership(change.steps, { timeoutMs: CHANGE_TIMEOUT_MS });
    const after = node.raftStatus(false);
    const accepted = after.membershipIndex > before.membershipIndex;
    this.host.trace(`operator: n${leader} proposes ${text}${accepted ? ` at index ${after.membershipIndex}` : ''}`);
    if (accepted) {
      for (const step of change.steps) if (step.type === 'remove') this.removed.add(step.id);
      if (pending) {
        this.host.noteSecondChangeAccepted(
          `n${leader} accepted ${text} at index ${after.membershipIndex} while the change at index ${before.membershipIndex} (${describeMembership(before.membership)}) was under way (committed up to ${before.commitIndex})`,
        );
      }
    }
    promise.then(
      (done) => {
        this.host.trace(`operator: ${text} done (index ${done.index}, completed at ${done.completedAt}): ${describeMembership(done.membership)}`);
        this.host.noteTopologyChanged(false);
        // Decommission what was removed, a little later, as an operator does.
        for (const step of change.steps) {
          if (step.type !== 'remove') continue;
          this.host.scheduler.schedule(10 + this.prng.nextInt(1000), () => {
            if (!this.host.isHealed) this.host.retire(step.id);
          });
        }
      },
      (error: RaftError) => this.host.trace(`operator: ${text} on n${leader} not done: ${error.code ?? error.name}: ${error.message}`),
    );
  }
}
