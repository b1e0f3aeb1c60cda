/**
 * The explorer's checks of leases (src/kv/lease-keeper.ts), fed by the lease clients of
 * workload.ts (what they were promised) and by the nodes (explorer-node.ts: the revokes their
 * lease keepers propose, and the revokes every replica applies).
 *
 * - No early expiry: every revoke of an expired lease that takes effect (the first replica to apply
 *   its entry still held the lease) was proposed at a time p with p >= t + TTL for every grant and
 *   keep-alive of that lease that a client invoked at t and saw acknowledged. Checked both ways:
 *   when the revoke is applied (against the acknowledgements so far) and when an acknowledgement
 *   arrives (against the revoke applied so far). Which proposal an applied entry is: the revoke a
 *   keeper proposes carries no session, so equal revokes of one lease are equal bytes; but a
 *   keeper proposes only in the term it leads, and the entry carries the term it was appended in,
 *   so (lease, entry term) names the leader that proposed it. Within one term a keeper proposes a
 *   lease's revoke again only after the earlier one failed unappended; the check takes the latest
 *   proposal of that term (the conservative choice: no false alarm).
 * - The expiry deletes, for the linearizability check: every revoke that takes effect (expired or
 *   a client's) is recorded as a delete of each key it removed (the keys attached to the lease
 *   just before the first replica applied it), called at its proposal (the earliest proposal of
 *   that term, or the revoking client's call) and returning when it is first applied anywhere
 *   (that is at or after its commit, so the interval contains its point in the log order).
 */
import type { Entry, NodeId } from '../../core/messages.js';
import { decodeKvCommand } from '../../kv/commands.js';
import { KV_LEASE_REVOKE_TAG } from '../../kv/lease-commands.js';
import type { KvStateMachine } from '../../kv/state-machine.js';
import type { Operation } from '../../linearizability/history.js';
import { SafetyViolation } from './invariants.js';

/** An acknowledged grant or keep-alive: invoked at `at`, answered by `node` at `answeredAt`. */
interface Renewal {
  readonly kind: 'grant' | 'keep-alive';
  readonly at: number;
  readonly answeredAt: number;
  readonly node: NodeId;
}

/** A revoke that took effect: applied first by `node` at `appliedAt`, at (index, term). */
interface AppliedRevoke {
  readonly expired: boolean;
  /** The latest proposal of the entry's term (expired), or the client's call. */
  readonly proposedAt: number;
  readonly appliedAt: number;
  readonly node: NodeId;
  readonly index: number;
  readonly term: number;
}

interface LeaseRecord {
  readonly id: number;
  readonly ttlSeconds: number;
  /** The acknowledged grant or keep-alive invoked last. */
  latest: Renewal;
  /** When a client last tried to renew it (acknowledged or not), or when the grant was answered. */
  lastTouchedAt: number;
  revoked: AppliedRevoke | null;
}

/** Lease ids come from the store: one per granted lease, never reused. */
export class LeaseChecker {
  private readonly leases = new Map<number, LeaseRecord>();
  /** `${lease}/${term}` → the times the keeper leading in that term proposed the lease's expiry. */
  private readonly proposals = new Map<string, number[]>();
  /** `${clientId}/${seq}` → when that client called its revoke. */
  private readonly clientRevokes = new Map<string, number>();
  /** Lease id → the revoke that took effect (recorded even before its grant's answer arrives). */
  private readonly revokes = new Map<number, AppliedRevoke>();
  /** Indexes of revokes applied somewhere already (only the first apply counts). */
  private readonly appliedIndexes = new Set<number>();
  private readonly deletes: { key: string; call: number; return: number; lease: number }[] = [];
  /** Counters for the world's stats. */
  readonly counts = { granted: 0, keepAlives: 0, expired: 0, revoked: 0, proposals: 0 };

  constructor(
    private readonly now: () => number,
    private readonly trace: (line: string) => void,
  ) {}

  /** The lease keeper of `node`, leading in `term`, proposed the revoke of expired lease `id` at `at`. */
  revokeProposed(node: NodeId, id: number, term: number, at: number): void {
    const key = `${id}/${term}`;
    let times = this.proposals.get(key);
    if (times === undefined) this.proposals.set(key, (times = []));
    times.push(at);
    this.counts.proposals++;
    this.trace(`n${node} proposes the expiry of lease ${id} (term ${term})`);
  }

  /** A client is about to call a revoke of its own with session (clientId, seq). */
  clientRevokeCalled(clientId: string, seq: number, at: number): void {
    this.clientRevokes.set(`${clientId}/${seq}`, at);
  }

  /** A grant invoked at `at` was answered by `node`: lease `id` of `ttlSeconds`. */
  granted(id: number, ttlSeconds: number, at: number, node: NodeId): void {
    const renewal: Renewal = { kind: 'grant', at, answeredAt: this.now(), node };
    if (this.leases.has(id)) throw new SafetyViolation('lease ids', `lease ${id} was granted twice (the second grant invoked at ${at} ms, answered by n${node})`);
    const record: LeaseRecord = { id, ttlSeconds, latest: renewal, lastTouchedAt: renewal.answeredAt, revoked: this.revokes.get(id) ?? null };
    this.leases.set(id, record);
    this.counts.granted++;
    this.checkRenewal(record, renewal);
  }

  /** A client will try to renew lease `id` now (whether or not it is answered). */
  touched(id: number): void {
    const record = this.leases.get(id);
    if (record !== undefined) record.lastTouchedAt = this.now();
  }

  /** A keep-alive of lease `id` invoked at `at` was answered by `node`: renewed at `ttlSeconds`. */
  renewed(id: number, ttlSeconds: number, at: number, node: NodeId): void {
    const record = this.leases.get(id);
    if (record === undefined) throw new Error(`lease checker: a keep-alive of lease ${id}, which no client was granted`);
    if (ttlSeconds !== record.ttlSeconds) {
      throw new SafetyViolation('lease expiry', `a keep-alive of lease ${id} answered by n${node} names a TTL of ${ttlSeconds} s; it was granted with ${record.ttlSeconds} s`);
    }
    const renewal: Renewal = { kind: 'keep-alive', at, answeredAt: this.now(), node };
    if (at >= record.latest.at) record.latest = renewal;
    this.counts.keepAlives++;
    this.checkRenewal(record, renewal);
  }

  /** Node `node` is about to apply `entry` to `sm` (called for every entry; cheap unless it is a revoke). */
  applying(node: NodeId, entry: Entry, sm: KvStateMachine): void {
    const command = entry.command;
    if (command.length === 0 || command[0] !== KV_LEASE_REVOKE_TAG || entry.membership !== undefined) return;
    if (this.appliedIndexes.has(entry.index)) return;
    this.appliedIndexes.add(entry.index);
    const cmd = decodeKvCommand(command);
    if (cmd.op !== 'lease-revoke') return;
    const at = this.now();
    let proposedAt: number;
    let callAt: number;
    if (cmd.expired === true) {
      const times = this.proposals.get(`${cmd.id}/${entry.term}`);
      if (times === undefined) {
        throw new SafetyViolation(
          'lease expiry',
          `n${node} applies a revoke of expired lease ${cmd.id} at (index ${entry.index}, term ${entry.term}) that no lease keeper leading in term ${entry.term} proposed`,
        );
      }
      proposedAt = Math.max(...times);
      callAt = Math.min(...times);
    } else {
      proposedAt = callAt = this.clientRevokes.get(`${cmd.clientId}/${cmd.seq}`) ?? 0;
    }
    // A revoke of a lease the store no longer holds (a duplicate, or one that lost a race) changes nothing.
    if (sm.lease(cmd.id) === null) return;
    const decoder = new TextDecoder();
    for (const key of sm.leaseKeys(cmd.id)) this.deletes.push({ key: decoder.decode(key), call: callAt, return: at, lease: cmd.id });
    const revoke: AppliedRevoke = { expired: cmd.expired === true, proposedAt, appliedAt: at, node, index: entry.index, term: entry.term };
    if (revoke.expired) this.counts.expired++;
    else this.counts.revoked++;
    this.revokes.set(cmd.id, revoke);
    const record = this.leases.get(cmd.id);
    if (record === undefined) return; // a lease whose grant's answer no client saw
    record.revoked = revoke;
    this.checkRenewal(record, record.latest);
  }

  /**
   * The deletes that revokes made, as operations for the linearizability checker (hand-built: no
   * recording order, so events at equal times overlap), numbered from `firstId`.
   */
  deleteOperations(firstId: number): Operation[] {
    return this.deletes.map((d, i) => ({
      id: firstId + i,
      clientId: `lease${d.lease}`,
      input: { kind: 'delete', key: d.key },
      call: d.call,
      outcome: 'ok',
      output: {},
      return: d.return,
    }));
  }

  /**
   * Leases a client granted and stopped renewing that are not revoked although they should have
   * expired: their leader `leader` has led since `leaderSince`, renewals may have been served up
   * to `renewalGraceMs` after a client last tried, and a revoke may take `slackMs` to apply.
   */
  overdue(holds: (id: number) => boolean, leaderSince: number, renewalGraceMs: number, slackMs: number): string[] {
    const now = this.now();
    const late: string[] = [];
    for (const record of this.leases.values()) {
      if (record.revoked !== null || !holds(record.id)) continue;
      const since = Math.max(leaderSince, record.lastTouchedAt + renewalGraceMs);
      if (now - since > record.ttlSeconds * 1000 + slackMs) {
        late.push(`lease ${record.id} (TTL ${record.ttlSeconds} s, last renewal tried at ${record.lastTouchedAt.toFixed(0)} ms, leader since ${leaderSince.toFixed(0)} ms) is still held at ${now.toFixed(0)} ms`);
      }
    }
    return late;
  }

  private checkRenewal(record: LeaseRecord, renewal: Renewal): void {
    const revoke = record.revoked;
    if (revoke === null || !revoke.expired) return;
    const until = renewal.at + record.ttlSeconds * 1000;
    if (revoke.proposedAt < until) {
      throw new SafetyViolation(
        'lease expiry',
        `lease ${record.id} (TTL ${record.ttlSeconds} s) expired early: its expiry revoke was proposed at ${revoke.proposedAt.toFixed(0)} ms ` +
          `(term ${revoke.term}; applied at index ${revoke.index}, first by n${revoke.node} at ${revoke.appliedAt.toFixed(0)} ms), but a ${renewal.kind} ` +
          `invoked at ${renewal.at.toFixed(0)} ms and answered by n${renewal.node} at ${renewal.answeredAt.toFixed(0)} ms promised it until ${until.toFixed(0)} ms`,
      );
    }
  }
}
