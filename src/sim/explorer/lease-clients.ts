/**
 * The explorer's lease clients (see workload.ts's module comment for what they do and lease-checker.ts
 * for what is checked): rounds of grant, attach keys, keep alive, then revoke or let expire, all
 * drawn from a stream of their own so that a world without them runs exactly as before leases.
 * They use the workload's sessions, retries and history through a LeaseClientKit.
 */
import type { NodeId } from '../../core/messages.js';
import { encodeKvCommand, type KvResult } from '../../kv/commands.js';
import type { KvReplica } from '../../kv/replica.js';
import type { HistoryRecorder, KvInput, PendingOperation } from '../../linearizability/history.js';
import type { Prng } from '../prng.js';
import { describe, TIMED_OUT, withTimeout } from './client-common.js';
import { SafetyViolation } from './invariants.js';
import type { LeaseChecker } from './lease-checker.js';
import type { ClientHost } from './workload.js';

/** What the lease clients use of the workload (workload.ts builds it). */
export interface LeaseClientKit {
  readonly host: ClientHost;
  readonly history: HistoryRecorder;
  readonly attemptTimeoutMs: number;
  /** The workload runs and the run's end has not begun. */
  running(): boolean;
  /** The run ended and the grace for writes still retrying is over. */
  gaveUp(): boolean;
  /** The client's next session seq (taken). */
  nextSeq(client: number): number;
  /** A value naming the client's next write, as the other clients' values do. */
  pendingTag(client: number): string;
  /** Where to send the client's next attempt (-1: anyone). */
  leaderFound(client: number, target: NodeId): void;
  /** A put or get retried until answered, recorded in the history; a put may attach the key to `lease`. */
  execute(client: number, input: KvInput, pending: PendingOperation, prng: Prng, lease?: number): Promise<number | undefined>;
  pickReplica(client: number, prng: Prng): Promise<{ target: NodeId; replica: KvReplica } | null>;
  readStamp(target: NodeId): { term: number; at: number };
  backoff(client: number, error: unknown, failures: number, prng: Prng): Promise<void>;
}

/** Keys per lease client: `lease-k<client>.<n>`, a key space of their own (other keys' histories are untouched). */
const LEASE_KEYS_PER_CLIENT = 3;

function leaseKey(leaseClient: number, n: number): string {
  return `lease-k${leaseClient}.${n}`;
}

export class LeaseClients {
  constructor(
    private readonly kit: LeaseClientKit,
    /** Sessions `first` .. `first + count - 1`, everything drawn from `prng`, checked by `checker`. */
    private readonly setup: { readonly first: number; readonly count: number; readonly prng: Prng; readonly checker: LeaseChecker },
  ) {}

  /** Every key the lease clients may write. */
  keys(): string[] {
    const keys: string[] = [];
    for (let j = 0; j < this.setup.count; j++) for (let i = 0; i < LEASE_KEYS_PER_CLIENT; i++) keys.push(leaseKey(j, i));
    return keys;
  }

  /** Starts every lease client's loop. */
  start(): void {
    for (let j = 0; j < this.setup.count; j++) {
      this.loop(j, this.setup.first + j, this.setup.prng.fork()).catch((error: unknown) => this.kit.host.fail(error instanceof Error ? error : new Error(String(error))));
    }
  }

  /**
   * One lease client (the j-th, session index `client`): rounds of grant, attach keys, keep alive
   * at about TTL/3 for one to three TTLs (reading a key now and then), then revoke or just stop
   * renewing, read the keys once or twice while the lease expires, pause; until the run ends.
   */
  private async loop(j: number, client: number, prng: Prng): Promise<void> {
    const running = (): boolean => this.kit.running();
    while (running()) {
      const ttlSeconds = 1 + prng.nextInt(5);
      const ttlMs = ttlSeconds * 1000;
      const id = await this.grant(client, ttlSeconds, prng);
      if (id === null) break;
      const all = Array.from({ length: LEASE_KEYS_PER_CLIENT }, (_, i) => leaseKey(j, i));
      const keys = prng.shuffle(all).slice(0, 1 + prng.nextInt(LEASE_KEYS_PER_CLIENT));
      for (const key of keys) {
        if (!running()) break;
        await this.op(client, { kind: 'put', key, value: this.kit.pendingTag(client) }, prng, id);
      }
      const keepUntil = this.kit.host.now() + ttlMs * (1 + prng.nextInt(3));
      let alive = true;
      while (running() && alive && this.kit.host.now() < keepUntil) {
        await this.kit.host.sleep(Math.floor((ttlMs * (90 + prng.nextInt(21))) / 300)); // TTL/3, ±10%
        if (!running()) break;
        alive = await this.keepAlive(client, id, prng);
        if (alive && prng.chance(1, 4)) await this.op(client, { kind: 'get', key: prng.pick(keys) }, prng);
      }
      if (!running()) break;
      if (alive && prng.chance(1, 2)) await this.revoke(client, id, prng);
      else if (alive) this.kit.host.trace(`c${client} stops renewing lease ${id}`);
      // Read the keys while the lease expires (or after the revoke), then pause before the next round.
      const reads = 1 + prng.nextInt(2);
      for (let r = 0; r < reads && running(); r++) {
        await this.kit.host.sleep(1 + prng.nextInt(ttlMs));
        if (running()) await this.op(client, { kind: 'get', key: prng.pick(keys) }, prng);
      }
      await this.kit.host.sleep(1 + prng.nextInt(500));
    }
  }

  /** A put (attaching the key to `lease`) or a read of a lease key, recorded in the history, retried like any. */
  private async op(client: number, input: KvInput, prng: Prng, lease?: number): Promise<void> {
    const pending = this.kit.history.invoke(`c${client}`, input);
    this.kit.host.trace(`c${client} calls ${describe(input)}${lease === undefined ? '' : ` with lease ${lease}`}`);
    await this.kit.execute(client, input, pending, prng, lease);
  }

  /** Grants a lease through the log (with the client's session); its id, or null if the run ended first. */
  private async grant(client: number, ttlSeconds: number, prng: Prng): Promise<number | null> {
    const seq = this.kit.nextSeq(client);
    const command = encodeKvCommand({ op: 'lease-grant', clientId: `c${client}`, seq, ttlSeconds });
    const calledAt = this.kit.host.now();
    this.kit.host.trace(`c${client} calls lease grant ${ttlSeconds} s`);
    const answer = await this.write(client, command, prng);
    if (answer === null) return null;
    const { result, index, target } = answer;
    if (!result.ok || result.lease === undefined || result.lease.ttlSeconds !== ttlSeconds) {
      this.kit.host.fail(new SafetyViolation('exactly once', `lease grant ${ttlSeconds} s was answered ${result.ok ? JSON.stringify(result.lease) : `${result.error}: ${result.message}`}`));
      return null;
    }
    this.kit.host.trace(`c${client} returns lease grant: lease ${result.lease.id} (${ttlSeconds} s) at ${index}`);
    this.setup.checker.granted(result.lease.id, ttlSeconds, calledAt, target);
    return result.lease.id;
  }

  /** Revokes a lease through the log (with the client's session); lease-not-found is fine (it expired). */
  private async revoke(client: number, id: number, prng: Prng): Promise<void> {
    const seq = this.kit.nextSeq(client);
    const command = encodeKvCommand({ op: 'lease-revoke', clientId: `c${client}`, seq, id });
    this.setup.checker.clientRevokeCalled(`c${client}`, seq, this.kit.host.now());
    this.kit.host.trace(`c${client} calls lease revoke ${id}`);
    const answer = await this.write(client, command, prng);
    if (answer === null) return;
    const { result, index } = answer;
    if (result.ok && result.lease !== undefined) this.kit.host.trace(`c${client} returns lease revoke ${id}: ${result.lease.deletedKeys} keys deleted at ${index}`);
    else if (!result.ok && result.error === 'lease-not-found') this.kit.host.trace(`c${client} returns lease revoke ${id}: not found (expired) at ${index}`);
    else this.kit.host.fail(new SafetyViolation('exactly once', `lease revoke ${id} was answered ${result.ok ? 'without a lease' : `${result.error}: ${result.message}`}`));
  }

  /** A lease command through the log, retried (same session) until answered; null once the run ended. */
  private async write(client: number, command: Uint8Array, prng: Prng): Promise<{ result: KvResult; index: number; target: NodeId } | null> {
    let failures = 0;
    for (;;) {
      if (this.kit.gaveUp()) return null;
      const picked = await this.kit.pickReplica(client, prng);
      if (picked === null) continue;
      const { target, replica } = picked;
      try {
        const answer = await withTimeout(this.kit.host, replica.commit(command, this.kit.attemptTimeoutMs), this.kit.attemptTimeoutMs + 100);
        if (answer === TIMED_OUT) {
          this.kit.leaderFound(client, -1);
          continue;
        }
        this.kit.leaderFound(client, target);
        return { ...answer, target };
      } catch (error) {
        await this.kit.backoff(client, error, ++failures, prng);
      }
    }
  }

  /**
   * One keep-alive (leaseKeepAlive on the member believed to lead, others on NotLeaderError),
   * retried until answered: true when renewed, false when the lease is gone or the run ends.
   */
  private async keepAlive(client: number, id: number, prng: Prng): Promise<boolean> {
    let failures = 0;
    while (this.kit.running()) {
      const picked = await this.kit.pickReplica(client, prng);
      if (picked === null) continue;
      const { target, replica } = picked;
      this.setup.checker.touched(id);
      const calledAt = this.kit.readStamp(target);
      try {
        const answer = await withTimeout(this.kit.host, replica.leaseKeepAlive(id, this.kit.attemptTimeoutMs), this.kit.attemptTimeoutMs + 100);
        if (answer === TIMED_OUT) {
          this.kit.leaderFound(client, -1);
          continue;
        }
        this.kit.leaderFound(client, target);
        if (calledAt.term >= 0) this.kit.host.readServed(target, calledAt.term, calledAt.at);
        if (answer === null) {
          this.kit.host.trace(`c${client} keep-alive of lease ${id} (called at ${calledAt.at.toFixed(0)} ms): not found on n${target}`);
          return false;
        }
        this.kit.host.trace(`c${client} renewed lease ${id} on n${target} (called at ${calledAt.at.toFixed(0)} ms)`);
        this.setup.checker.renewed(id, answer.ttlSeconds, calledAt.at, target);
        return true;
      } catch (error) {
        await this.kit.backoff(client, error, ++failures, prng);
      }
    }
    return false;
  }
}
