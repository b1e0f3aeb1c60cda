/**
 * The leader's half of leases: their clocks. The leases themselves (ids, TTLs, attached keys) are
 * replicated state (lease-table.ts); when one expires is not, because replicas' clocks disagree.
 * Only the leader times leases, and it ends an expired one by proposing a revoke through the log
 * (flagged `expired`), so every replica deletes its keys at the same revision.
 *
 * A lease never expires early across a leader change: a node that becomes leader starts every
 * lease's clock afresh at its full TTL (a lease granted while it leads starts when the grant is
 * applied), so however much time the old leader had counted down, the new one counts at least the
 * whole TTL again. A keep-alive, answered by the leader only once it confirmed its leadership
 * (ReadIndex, in replica.ts), restarts the lease's clock at its full TTL. Followers time nothing.
 *
 * A lease whose revoke is in flight is expiring: keep-alives answer that it does not exist. A revoke
 * whose outcome is unknown (a timeout: the entry is in this leader's log and may still commit)
 * keeps the lease expiring, never renewable again: renewing it would promise a client time that
 * the pending entry may take away. Leadership lost: the next leader times the lease afresh (and a
 * revoke from this term commits only if it reached the new leader's log, which then applies it
 * before it answers any keep-alive: keep-alives wait for ReadIndex). A revoke that was never
 * appended (busy, a leadership transfer) is proposed again after REVOKE_RETRY_MS.
 *
 * Cost: one timer, armed for the earliest deadline, only while this node leads and holds leases;
 * deadlines sit in a binary heap with lazy deletion (a keep-alive pushes a new deadline; the old
 * one is skipped when it surfaces), rebuilt when stale entries outnumber live ones.
 */
import type { Clock, ClockTimer } from '../runtime/clock.js';
import { OutcomeUnknownError, ProposalTimeoutError } from '../runtime/errors.js';
import { encodeKvCommand } from './commands.js';
import { describeError } from './describe-error.js';
import type { KvLeaseEvent, KvStateMachine } from './state-machine.js';

/** How long after a failed revoke the leader proposes it again. */
export const REVOKE_RETRY_MS = 500;
/** Revokes of expired leases in flight at once (more expire in the next rounds). */
export const REVOKES_IN_FLIGHT_MAX = 64;
/**
 * The longest the timer is set for: a lease may live for years, but timers overflow past 2^31 ms
 * (Node then fires at once), so a far deadline is reached in hops of at most an hour.
 */
export const TIMER_HOP_MS = 3_600_000;

export interface LeaseKeeperOptions {
  readonly clock: Clock;
  /** Proposes an encoded command (a revoke); settles once it is applied or has failed. */
  readonly propose: (command: Uint8Array) => Promise<unknown>;
  readonly log?: (line: string) => void;
  /**
   * Observes every revoke of an expired lease as it is proposed: the lease, the term this node
   * leads in, and the clock's time (the fault explorer checks that no lease expires early). It
   * must not call back into the keeper.
   */
  readonly onRevokeProposed?: (id: number, term: number, at: number) => void;
}

/** What a keep-alive found: the lease's TTL, no such lease, or no leadership to answer with. */
export type KeepAliveOutcome = { readonly kind: 'renewed'; readonly ttlSeconds: number } | { readonly kind: 'not-found' } | { readonly kind: 'not-leader' };

/** A deadline in the heap: when lease `id` expires, on the clock's scale. */
interface Deadline {
  readonly at: number;
  readonly id: number;
}

export class LeaseKeeper {
  /** The term this node leads in, -1 when it does not lead. */
  private term = -1;
  /** Lease id → its deadline, for every lease while leading. */
  private readonly deadlines = new Map<number, number>();
  /** Leases whose revoke this leader proposed and has not seen fail: expiring. */
  private readonly revoking = new Set<number>();
  private heap: Deadline[] = [];
  private timer: ClockTimer | null = null;
  private timerAt = Infinity;
  private revokesProposed = 0;

  constructor(
    private readonly sm: KvStateMachine,
    private readonly options: LeaseKeeperOptions,
  ) {
    sm.onLease = (event) => this.applied(event);
  }

  /** Revokes this node proposed for expired leases (for metrics). */
  get expiredRevokes(): number {
    return this.revokesProposed;
  }

  /** Whether this node times leases now (it leads). */
  get leading(): boolean {
    return this.term >= 0;
  }

  /** This node became leader in `term` (>= 0), or stopped leading (-1). */
  leadershipChanged(term: number): void {
    if (term === this.term) return;
    this.term = term;
    this.restartClocks();
  }

  /** The state machine was replaced by a snapshot: the leases may differ; a leader restarts every clock. */
  restored(): void {
    this.restartClocks();
  }

  /** Stops the timer for good (the node stops). */
  stop(): void {
    this.term = -1;
    this.restartClocks();
  }

  /**
   * Restarts a lease's clock at its full TTL. Call only once this node confirmed its leadership
   * after the request arrived (ReadIndex); answers 'not-leader' if it no longer leads.
   */
  keepAlive(id: number): KeepAliveOutcome {
    if (this.term < 0) return { kind: 'not-leader' };
    const lease = this.sm.lease(id);
    if (lease === null || this.revoking.has(id)) return { kind: 'not-found' };
    this.setDeadline(id, this.options.clock.now() + lease.ttlSeconds * 1000);
    return { kind: 'renewed', ttlSeconds: lease.ttlSeconds };
  }

  /** Milliseconds until a lease expires, as this leader times it; null when it does not lead or the lease is unknown or expiring. */
  remainingMs(id: number): number | null {
    const at = this.deadlines.get(id);
    if (this.term < 0 || at === undefined || this.revoking.has(id)) return null;
    return Math.max(0, at - this.options.clock.now());
  }

  private applied(event: KvLeaseEvent): void {
    if (this.term < 0) return;
    if (event.type === 'grant') {
      this.setDeadline(event.id, this.options.clock.now() + event.ttlSeconds * 1000);
    } else {
      this.deadlines.delete(event.id);
      this.revoking.delete(event.id);
    }
  }

  private restartClocks(): void {
    this.deadlines.clear();
    this.revoking.clear();
    this.heap = [];
    this.timer?.cancel();
    this.timer = null;
    this.timerAt = Infinity;
    if (this.term < 0) return;
    const now = this.options.clock.now();
    for (const lease of this.sm.leaseList()) this.setDeadline(lease.id, now + lease.ttlSeconds * 1000);
  }

  private setDeadline(id: number, at: number): void {
    this.deadlines.set(id, at);
    this.push({ at, id });
    if (this.heap.length > 2 * this.deadlines.size + 1024) this.rebuildHeap();
    this.arm(at);
  }

  /** Makes sure the timer fires by `at`. */
  private arm(deadline: number): void {
    const now = this.options.clock.now();
    const at = Math.min(deadline, now + TIMER_HOP_MS);
    if (this.term < 0 || at >= this.timerAt) return;
    this.timer?.cancel();
    this.timerAt = at;
    const term = this.term;
    this.timer = this.options.clock.schedule(Math.max(0, at - now), () => {
      this.timer = null;
      this.timerAt = Infinity;
      if (this.term === term) this.expire();
    });
  }

  /** Proposes a revoke for every lease past its deadline (up to REVOKES_IN_FLIGHT_MAX), then re-arms. */
  private expire(): void {
    const now = this.options.clock.now();
    while (this.heap.length > 0 && this.heap[0]!.at <= now && this.revoking.size < REVOKES_IN_FLIGHT_MAX) {
      const { at, id } = this.pop()!;
      if (this.deadlines.get(id) !== at || this.revoking.has(id)) continue; // renewed since, or already expiring
      this.revoke(id, at);
    }
    // The earliest live deadline; one blocked by the in-flight bound is tried again after a retry delay.
    while (this.heap.length > 0 && this.deadlines.get(this.heap[0]!.id) !== this.heap[0]!.at) this.pop();
    const next = this.heap[0];
    if (next !== undefined) this.arm(next.at <= now ? now + REVOKE_RETRY_MS : next.at);
  }

  private revoke(id: number, at: number): void {
    this.revoking.add(id);
    this.revokesProposed++;
    const term = this.term;
    const command = encodeKvCommand({ op: 'lease-revoke', clientId: '', seq: 0, id, expired: true });
    this.options.onRevokeProposed?.(id, term, this.options.clock.now());
    this.options.propose(command).then(
      () => undefined,
      (error: unknown) => {
        if (this.term !== term || !this.revoking.has(id)) return;
        if (error instanceof ProposalTimeoutError || error instanceof OutcomeUnknownError) return; // may still commit: stays expiring
        // Never appended, still leading, the lease still here (an expiring lease refuses keep-alives): try again shortly.
        this.options.log?.(`lease ${id}: proposing its expiry failed (${describeError(error)}); retrying in ${REVOKE_RETRY_MS} ms`);
        this.revoking.delete(id);
        const retryAt = Math.max(at, this.options.clock.now() + REVOKE_RETRY_MS);
        this.setDeadline(id, retryAt);
      },
    );
  }

  // ---- the heap (min by deadline, then id, so that equal deadlines expire in id order on every run) ----

  private static before(a: Deadline, b: Deadline): boolean {
    return a.at < b.at || (a.at === b.at && a.id < b.id);
  }

  private push(d: Deadline): void {
    const heap = this.heap;
    heap.push(d);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!LeaseKeeper.before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): Deadline | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length === 0 || last === undefined) return top;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && LeaseKeeper.before(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && LeaseKeeper.before(heap[r]!, heap[m]!)) m = r;
      if (m === i) return top;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  }

  private rebuildHeap(): void {
    const live = [...this.deadlines].map(([id, at]) => ({ at, id }));
    this.heap = [];
    for (const d of live) this.push(d);
  }
}
