/**
 * The explorer's clients: they use the KV service the way an application does, through a
 * member's KvReplica (the same code the HTTP server calls), and record every operation for the
 * linearizability checker.
 *
 * - Writes (put, append, cas, delete) carry a client session (clientId, seq). A client that times
 *   out or is told "not the leader" retries the same (clientId, seq) on another member until it
 *   gets an answer: exactly once, even when the first attempt did commit.
 * - Reads are linearizable: ReadIndex, or a `get` through the log, as the world's read mode says.
 * - An operation whose outcome the client never learned is recorded as unknown: the checker may
 *   place it anywhere after its call, or leave it out.
 * - Some worlds also write large values: near the transport's frame limit (must succeed) and over
 *   it (must be refused with ProposalTooLargeError, never wedge the cluster).
 * - Range reads and transactions span keys; the checker partitions the history by key, so they are
 *   recorded per key (a range read as a get of every key of the range, all with the range's call
 *   and return; a transaction `if kA = x then put kA, put kB else get kA` as a cas on kA and a put
 *   on kB, the put left unknown when the else branch ran). That checks each key's history, not
 *   the atomicity across keys (that one page or one transaction saw a single state).
 * - Lease clients (lease-clients.ts; in 1 world in 3, one or two; everything they do is drawn from a stream of their
 *   own, world-shape.ts's leasePrngFor, so a world without them runs exactly as before leases).
 *   Each runs rounds: grant a lease of 1–5 s through the log (with its session, retried like a
 *   write), put 1–3 of its keys `lease-k<j>.<n>` attached to it, keep it alive (leaseKeepAlive on
 *   the member it believes leads, others on NotLeaderError) every TTL/3 (±10 %) for one to three
 *   TTLs, reading a key now and then; then revoke it (half the time) or just stop renewing it, and
 *   read its keys once or twice while it expires. A keep-alive answered "not found" ends the round
 *   (the lease expired: its renewals did not get through in time). The puts and reads of lease
 *   keys are in the history like any other key's (a put answered lease-not-found wrote nothing and
 *   is left unknown), and so is every delete a revoke made: lease-checker.ts records each applied
 *   revoke (an expiry or a client's) as a delete of each key it removed, called when it was
 *   proposed and returning when it was first applied anywhere (at or after its commit), so reads
 *   must see a key vanish exactly when its lease's revoke takes effect in the log. What a lease
 *   client was promised (each acknowledged grant and keep-alive, with the time it was invoked) goes
 *   to lease-checker.ts, which checks that no lease expires early. Lease operations do not count
 *   as progress for the world's liveness check.
 */
import type { NodeId } from '../../core/messages.js';
import { encodeKvCommand, type KvCommand, type KvResult } from '../../kv/commands.js';
import { HistoryRecorder, type KvInput, type KvOutput, type PendingOperation } from '../../linearizability/history.js';
import { NotLeaderError, OutcomeUnknownError, ProposalTooLargeError } from '../../runtime/errors.js';
import type { Prng } from '../prng.js';
import type { KvReplica } from '../../kv/replica.js';
import type { ExplorerNode } from './explorer-node.js';
import { SafetyViolation } from './invariants.js';
import { describe, TIMED_OUT, withTimeout } from './client-common.js';
import type { LeaseChecker } from './lease-checker.js';
import { LeaseClients, type LeaseClientKit } from './lease-clients.js';

/** What the clients need from their world. */
export interface ClientHost {
  readonly nodes: readonly ExplorerNode[];
  now(): number;
  schedule(delayMs: number, callback: () => void): { cancel(): void };
  sleep(ms: number): Promise<void>;
  trace(line: string): void;
  /** A client saw something that cannot be true: stop the run with it. */
  fail(error: Error): void;
  /** A linearizable read (ReadIndex) registered by leader `node` in `term` at `at` was served. */
  readServed(node: NodeId, term: number, at: number): void;
}

export interface WorkloadOptions {
  readonly clients: number;
  readonly keys: number;
  readonly opGapMaxMs: number;
  readonly readMode: 'read-index' | 'log';
  /** How long a client waits for one attempt before trying another member. */
  readonly attemptTimeoutMs: number;
  /** The largest command one message carries (RaftNode refuses larger ones), or 0 for no large values. */
  readonly largeValueBytes: number;
}

/** A value of exactly `bytes` bytes that still names its writer. */
function sized(tag: string, bytes: number): string {
  return tag.length >= bytes ? tag.slice(0, bytes) : tag + '.'.repeat(bytes - tag.length);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Workload {
  readonly history: HistoryRecorder;
  /** Operations that completed with a known outcome, and when the last one did. */
  completed = 0;
  lastCompletedAt = 0;
  refusedTooLarge = 0;
  active = true;
  private readonly clientSeq: number[];
  private readonly leaderHint: NodeId[];
  /** The lease clients (lease-clients.ts); null: none. */
  private leaseClients: LeaseClients | null = null;
  /** Set once the run's end begins: lease clients stop for good (the final reads set `active` again). */
  leaseClientsDone = false;

  constructor(
    private readonly host: ClientHost,
    private readonly options: WorkloadOptions,
    private readonly prng: Prng,
  ) {
    this.history = new HistoryRecorder(() => host.now());
    // Two more sessions than looping clients: the world's marker writes and its final reads.
    this.clientSeq = new Array<number>(options.clients + 2).fill(0);
    this.leaderHint = new Array<NodeId>(options.clients + 2).fill(-1);
  }

  /**
   * Adds `count` lease clients (see the module comment), drawing everything they do from `prng`
   * alone, so that the other clients' draws are those of a world without them.
   */
  enableLeases(count: number, prng: Prng, checker: LeaseChecker): void {
    if (count <= 0) return;
    const first = this.clientSeq.length;
    for (let i = 0; i < count; i++) {
      this.clientSeq.push(0);
      this.leaderHint.push(-1);
    }
    this.leaseClients = new LeaseClients(this.leaseClientKit(), { first, count, prng, checker });
  }

  /** Every key the lease clients may write (for the world's final reads). */
  leaseKeys(): string[] {
    return this.leaseClients?.keys() ?? [];
  }

  /** What the lease clients use of this workload: its sessions, retries and history. */
  private leaseClientKit(): LeaseClientKit {
    return {
      host: this.host,
      history: this.history,
      attemptTimeoutMs: this.options.attemptTimeoutMs,
      running: () => this.active && !this.leaseClientsDone,
      gaveUp: () => !this.active && this.host.now() > this.giveUpAt,
      nextSeq: (client) => ++this.clientSeq[client]!,
      pendingTag: (client) => `c${client}.${this.clientSeq[client]! + 1}`,
      leaderFound: (client, target) => (this.leaderHint[client] = target),
      execute: (client, input, pending, prng, lease) => this.execute(client, input, pending, prng, lease),
      pickReplica: (client, prng) => this.pickReplica(client, prng),
      readStamp: (target) => this.readStamp(target),
      backoff: (client, error, failures, prng) => this.backoff(client, error, failures, prng),
    };
  }

  /** Starts every client's loop; they run until `active` is cleared. */
  start(): void {
    for (let client = 0; client < this.options.clients; client++) {
      this.loop(client, this.prng.fork()).catch((error: unknown) => this.host.fail(error instanceof Error ? error : new Error(String(error))));
    }
    this.leaseClients?.start();
  }

  /** Writes `count` values of `bytes` bytes each under bulk keys, so snapshots hold real state. */
  async preload(count: number, bytes: number): Promise<void> {
    for (let i = 0; i < count && this.active; i++) {
      await this.run(0, { kind: 'put', key: `bulk-${i}`, value: sized(`bulk-${i}`, bytes) });
    }
  }

  /** One write or read on behalf of a client, retried until it is answered; returns the commit index for writes. */
  async run(client: number, input: KvInput): Promise<number | undefined> {
    const pending = this.history.invoke(`c${client}`, input);
    this.host.trace(`c${client} calls ${describe(input)}`);
    const outcome = await this.execute(client, input, pending);
    if (outcome === undefined) return undefined;
    this.completed++;
    this.lastCompletedAt = this.host.now();
    return outcome;
  }

  private async loop(client: number, prng: Prng): Promise<void> {
    while (this.active) {
      const input = this.nextInput(client, prng);
      if (input.kind === 'range') await this.runRange(client);
      else if (input.kind === 'txn') await this.runTxn(client, input);
      else await this.run(client, input);
      await this.host.sleep(1 + prng.nextInt(this.options.opGapMaxMs));
    }
  }

  /**
   * A linearizable read of every workload key at once, as the HTTP API serves a range (ReadIndex,
   * then one page from the local state), recorded as one get per key with the range's interval.
   */
  private async runRange(client: number): Promise<void> {
    const keys = Array.from({ length: this.options.keys }, (_, i) => `k${i}`);
    const pending = new Map(keys.map((key, i) => [key, this.history.invoke(`c${client}.r${i}`, { kind: 'get', key })] as const));
    this.host.trace(`c${client} calls range k*`);
    for (;;) {
      if (!this.active) break;
      const picked = await this.pickReplica(client);
      if (picked === null) continue;
      const { target, replica } = picked;
      try {
        const readAt = this.readStamp(target);
        const answer = await withTimeout(this.host, replica.confirmRead(this.options.attemptTimeoutMs), this.options.attemptTimeoutMs + 100);
        if (answer === TIMED_OUT) {
          this.leaderHint[client] = -1;
          continue;
        }
        if (readAt.term >= 0) this.host.readServed(target, readAt.term, readAt.at);
        const page = replica.rangeLocal({ start: encoder.encode('k'), end: encoder.encode('l'), limit: keys.length });
        this.leaderHint[client] = target;
        const seen = new Map(page.kvs.map((kv) => [decoder.decode(kv.key), kv.value === undefined ? '' : decoder.decode(kv.value)]));
        const last = page.kvs.length === 0 ? '' : decoder.decode(page.kvs[page.kvs.length - 1]!.key);
        for (const [key, op] of pending) {
          // A page cut short (large values) says nothing of the keys after its last one.
          if (page.more && key > last) op.unknown();
          else op.ok({ value: seen.get(key) ?? null } as never);
        }
        this.completed++;
        this.lastCompletedAt = this.host.now();
        this.host.trace(`c${client} returns range k* (${page.kvs.length} keys) at ${page.index}`);
        return;
      } catch (error) {
        this.leaderHint[client] = error instanceof NotLeaderError && error.leaderId !== undefined ? error.leaderId : -1;
        await this.host.sleep(1 + this.prng.nextInt(200));
      }
    }
    for (const op of pending.values()) op.unknown();
  }

  /**
   * `if key = expected (absent: null) then put key, put other else get key`, as one transaction
   * through the log with the client's session, retried like any write; recorded as a cas on key
   * and a put on other (unknown when the else branch ran: it did not happen).
   */
  private async runTxn(client: number, input: TxnInput): Promise<void> {
    const cas = this.history.invoke(`c${client}`, { kind: 'cas', key: input.key, expected: input.expected, value: input.value });
    const put = this.history.invoke(`c${client}.t`, { kind: 'put', key: input.other, value: input.value });
    this.host.trace(`c${client} calls txn ${input.key} ${input.expected ?? '∅'}→${input.value}, ${input.other}`);
    const seq = ++this.clientSeq[client]!;
    const key = encoder.encode(input.key);
    const command = encodeKvCommand({
      op: 'txn',
      clientId: `c${client}`,
      seq,
      compare: [input.expected === null ? { key, target: 'exists', op: '=', value: false } : { key, target: 'value', op: '=', value: encoder.encode(input.expected) }],
      then: [
        { type: 'put', key, value: encoder.encode(input.value) },
        { type: 'put', key: encoder.encode(input.other), value: encoder.encode(input.value) },
      ],
      else: [{ type: 'get', key }],
    });
    for (;;) {
      if (!this.active && this.host.now() > this.giveUpAt) break;
      const picked = await this.pickReplica(client);
      if (picked === null) continue;
      const { target, replica } = picked;
      try {
        const answer = await withTimeout(this.host, replica.commit(command, this.options.attemptTimeoutMs), this.options.attemptTimeoutMs + 100);
        if (answer === TIMED_OUT) {
          this.leaderHint[client] = -1;
          continue;
        }
        this.leaderHint[client] = target;
        const result = answer.result;
        if (!result.ok || result.txn === undefined) {
          this.host.fail(new SafetyViolation('exactly once', `txn ${input.key} was answered ${result.ok ? 'without a txn result' : `${result.error}: ${result.message}`}`));
          return;
        }
        if (result.txn.succeeded) {
          cas.ok({ swapped: true } as never);
          put.ok({} as never);
        } else {
          const current = result.txn.results[0]?.value ?? null;
          cas.ok({ swapped: false, value: current === null ? null : decoder.decode(current) } as never);
          put.unknown();
        }
        this.completed++;
        this.lastCompletedAt = this.host.now();
        this.host.trace(`c${client} returns txn ${input.key} ${result.txn.succeeded ? 'then' : 'else'} at ${answer.index}`);
        return;
      } catch (error) {
        const hint = (error instanceof NotLeaderError || error instanceof OutcomeUnknownError) && error.leaderId !== undefined ? error.leaderId : -1;
        this.leaderHint[client] = hint;
        await this.host.sleep(1 + this.prng.nextInt(200));
      }
    }
    cas.unknown();
    put.unknown();
  }

  private nextInput(client: number, prng: Prng): KvInput | { kind: 'range' } | TxnInput {
    const key = `k${prng.nextInt(this.options.keys)}`;
    const tag = `c${client}.${this.clientSeq[client]! + 1}`;
    const roll = prng.nextInt(100);
    const large = this.options.largeValueBytes;
    if (large > 0 && roll < 2) {
      // Half just under what one message carries, half just over it.
      const bytes = prng.chance(1, 2) ? large - 64 - prng.nextInt(512) : large + 1 + prng.nextInt(4096);
      return { kind: 'put', key, value: sized(tag, bytes) };
    }
    if (roll < 30) return { kind: 'get', key };
    if (roll < 35) return { kind: 'range' };
    if (roll < 40 && this.options.keys >= 2) {
      const other = `k${(Number(key.slice(1)) + 1) % this.options.keys}`;
      return { kind: 'txn', key, other, expected: prng.chance(1, 3) ? null : `c${prng.nextInt(this.options.clients)}.${prng.nextInt(20)}`, value: tag };
    }
    if (roll < 55) return { kind: 'put', key, value: tag };
    if (roll < 75) return { kind: 'append', key, value: `${tag};` };
    if (roll < 90) return { kind: 'cas', key, expected: prng.chance(1, 3) ? null : `c${prng.nextInt(this.options.clients)}.${prng.nextInt(20)}`, value: tag };
    return { kind: 'delete', key };
  }

  /** Retries until answered or the run ends; settles `pending` and returns the index, or undefined if unknown. */
  private async execute(client: number, input: KvInput, pending: PendingOperation, prng = this.prng, lease?: number): Promise<number | undefined> {
    const command = input.kind === 'get' ? null : this.encodeWrite(client, input, lease);
    let failures = 0;
    while (this.active || input.kind !== 'get') {
      if (!this.active && this.host.now() > this.giveUpAt) break;
      const picked = await this.pickReplica(client, prng);
      if (picked === null) continue;
      const { target, replica } = picked;
      try {
        const readAt = this.readStamp(target);
        const attempt =
          command === null
            ? replica.read(encoder.encode(input.key), this.options.readMode, this.options.attemptTimeoutMs).then((r) => {
                if (this.options.readMode === 'read-index' && readAt.term >= 0) this.host.readServed(target, readAt.term, readAt.at);
                return { index: r.index, result: { ok: true, value: r.value } as KvResult };
              })
            : replica.commit(command.bytes, this.options.attemptTimeoutMs);
        const answer = await withTimeout(this.host, attempt, this.options.attemptTimeoutMs + 100);
        if (answer === TIMED_OUT) {
          this.leaderHint[client] = -1;
          continue;
        }
        this.leaderHint[client] = target;
        if (lease !== undefined && !answer.result.ok && answer.result.error === 'lease-not-found') {
          // The lease was gone when the put was applied: it wrote nothing (the history may leave it out).
          pending.unknown();
          this.host.trace(`c${client} returns ${describe(input)}: lease ${lease} not found, nothing written`);
          return undefined;
        }
        pending.ok(this.output(input, answer.result) as never);
        this.host.trace(`c${client} returns ${describe(input)} at ${answer.index}`);
        return answer.index;
      } catch (error) {
        if (error instanceof ProposalTooLargeError) {
          this.checkRefusal(input, error);
          pending.unknown();
          return undefined;
        }
        await this.backoff(client, error, ++failures, prng);
      }
    }
    pending.unknown();
    return undefined;
  }

  /**
   * After a failed attempt: straight to a named leader, otherwise back off as a real client would,
   * not spin. Exponential: always some virtual time (two members may name each other as leader for
   * a moment), and no spinning while there is no leader.
   */
  private async backoff(client: number, error: unknown, failures: number, prng: Prng): Promise<void> {
    if (error instanceof SafetyViolation) throw error;
    const hint = (error instanceof NotLeaderError || error instanceof OutcomeUnknownError) && error.leaderId !== undefined ? error.leaderId : -1;
    this.leaderHint[client] = hint;
    const ceiling = hint === -1 ? 200 : Math.min(200, 4 << Math.min(failures, 6));
    await this.host.sleep(1 + prng.nextInt(ceiling));
  }

  /** After the clients stop, writes still retrying get this long to finish. */
  giveUpAt = Number.POSITIVE_INFINITY;

  private checkRefusal(input: KvInput, error: ProposalTooLargeError): void {
    const limit = this.options.largeValueBytes;
    if (input.kind !== 'put' || limit === 0 || error.bytes <= error.limitBytes || input.value.length <= limit) {
      this.host.fail(new SafetyViolation('frame limit', `a command of ${error.bytes} bytes was refused although one message carries ${error.limitBytes}`));
    }
    this.refusedTooLarge++;
  }

  private encodeWrite(client: number, input: Exclude<KvInput, { kind: 'get' }>, lease?: number): { bytes: Uint8Array } {
    const seq = ++this.clientSeq[client]!;
    const key = encoder.encode(input.key);
    const base = { clientId: `c${client}`, seq, key };
    let command: KvCommand;
    switch (input.kind) {
      case 'put':
      case 'append':
        command = { ...base, op: input.kind, value: encoder.encode(input.value), ...(lease === undefined ? {} : { lease }) };
        break;
      case 'cas':
        command = { ...base, op: 'cas', value: encoder.encode(input.value), expected: input.expected === null ? null : encoder.encode(input.expected) };
        break;
      case 'delete':
        command = { ...base, op: 'delete' };
        break;
    }
    return { bytes: encodeKvCommand(command) };
  }

  private output(input: KvInput, result: KvResult): KvOutput {
    if (!result.ok) {
      this.host.fail(new SafetyViolation('exactly once', `${describe(input)} was answered ${result.error}: ${result.message}`));
      return {};
    }
    if (input.kind === 'get') return { value: result.value === null || result.value === undefined ? null : decoder.decode(result.value) };
    if (input.kind === 'cas') {
      const swapped = result.swapped === true;
      return swapped ? { swapped } : { swapped, value: result.value === null || result.value === undefined ? null : decoder.decode(result.value) };
    }
    return {};
  }

  /** A ReadIndex read registered now on `target`: the term it leads in (-1 if it does not) and the time. */
  private readStamp(target: NodeId): { term: number; at: number } {
    const status = this.host.nodes[target]!.node?.raftStatus(false);
    return { term: status?.role === 'leader' ? status.term : -1, at: this.host.now() };
  }

  /** The member to ask next and its replica; null (after a pause, as a client waits) when no member is up. */
  private async pickReplica(client: number, prng = this.prng): Promise<{ target: NodeId; replica: KvReplica } | null> {
    const target = this.pickTarget(client, prng);
    const replica = target === -1 ? null : this.host.nodes[target]!.replica;
    if (replica !== null) return { target, replica };
    await this.host.sleep(20 + prng.nextInt(80));
    return null;
  }

  private pickTarget(client: number, prng: Prng): NodeId {
    const hint = this.leaderHint[client]!;
    if (hint >= 0 && this.host.nodes[hint]!.replica !== null) return hint;
    const alive = this.host.nodes.filter((n) => n.replica !== null);
    if (alive.length === 0) return -1;
    return alive[prng.nextInt(alive.length)]!.id;
  }
}

interface TxnInput {
  readonly kind: 'txn';
  readonly key: string;
  readonly other: string;
  readonly expected: string | null;
  readonly value: string;
}
