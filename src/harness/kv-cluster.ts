/**
 * The equivalent of 6.824's kvraft `config.go` (spec §6.1): a replicated key/value service on top of
 * the Raft harness, its clerks, and the helpers the kvraft tests are written with.
 *
 * - Every server i is the harness's server i (a SimNode on the cluster's labrpc-style network, with
 *   its persister, crash1/start1) plus a `KvServer` that applies committed entries to a
 *   KvStateMachine. The KvServer is attached through `Cluster.attachService`, and answers the
 *   clerks' "KVServer.Get" / "KVServer.PutAppend" RPCs, which travel over the same network as
 *   Raft's: partitions, unreliability and crashes affect clerks as they do in 6.824.
 * - A request is started on the server's Raft and answered once the entry at the returned index is
 *   applied; ErrWrongLeader if the server is not the leader, if a different entry (another term)
 *   appears at that index, if a snapshot covers the index, if the server's term or role changes,
 *   or after WAIT_TIMEOUT_MS. Gets go through the log, as in 6.824. Exactly-once is the state
 *   machine's: every clerk has a session (client id) and numbers its requests.
 * - Snapshots: when maxraftstate > 0 and the persisted raft state reaches maxraftstate bytes, the
 *   server snapshots the state machine at its applied index; a restarted server restores the state
 *   machine from its persisted snapshot before Raft replays the rest of the log.
 * - Service time: every request the leader accepts costs `serviceMs` (default KV_SERVICE_MS) of
 *   virtual time. It is started on Raft at once (so concurrent requests batch in the log) and
 *   answered `serviceMs` after it arrived or when its entry is applied, whichever is later. On the
 *   reliable simulated network everything else takes zero virtual time (Raft replicates on a 0 ms
 *   Ready), so without a service time an operation would complete in zero virtual time and the
 *   tests' "run clients for 5 seconds" loops would never let the clock advance. It stands for the
 *   time a real server spends on one request. Requests are served in parallel, as Go's RPC server
 *   runs each handler in its own goroutine: concurrent requests from different clerks do not
 *   queue behind each other, so n clients make about n times one client's operations.
 * - Clerks record every operation they start in one HistoryRecorder (virtual-clock call and return
 *   times, and the order of those events, which settles equal times), checked by `end()` with the
 *   linearizability checker.
 */
import { ELECTION_TIMEOUT_MS, TestFailure, type Cluster, type ClusterService, type ServiceReplica, type TestFigures } from './cluster.js';
import type { Entry, Message, Snapshot } from '../core/messages.js';
import { encodeKvCommand, type KvResult } from '../kv/commands.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { checkLinearizable } from '../linearizability/checker.js';
import { HistoryRecorder, type KvInput } from '../linearizability/history.js';
import type { ClientEnd, RpcServer } from '../sim/network.js';
import type { Persister } from '../sim/persister.js';
import type { Timer } from '../sim/scheduler.js';
import type { HarnessServer } from './runtime-server.js';
import type { SuiteContext } from './suite.js';

/**
 * Default virtual milliseconds a server spends on each request (see the header). 16 ms puts one
 * client at about the staff solution's figures (2024 "one client": ~900 operations; "ops complete
 * fast enough": ~16 ms per operation, under the 33.3 ms bound). Requests are served in parallel,
 * so on a reliable network n clients make about n times one client's operations (5 clients ~4,400
 * in 15 s, 20 clients ~17,700).
 */
export const KV_SERVICE_MS = 16;
/** A handler gives up (ErrWrongLeader) after this long, so a deposed leader answers within ~1 s. */
export const WAIT_TIMEOUT_MS = 1000;
/** How often a waiting handler checks that its server is still leader in the same term. */
const LEADERSHIP_POLL_MS = 100;
/** A clerk sleeps this long after a full round of servers failed. */
const CLERK_ROUND_SLEEP_MS = 100;
/** The linearizability checker's wall-clock budget, as in the 6.824 tests. */
const LINEARIZABILITY_BUDGET_MS = 1000;

// ------------------------------------------------------------------------------------ RPC types

export type KvErr = 'OK' | 'ErrNoKey' | 'ErrWrongLeader';

export interface KvRpcRequest {
  readonly rpc: 'KVServer.Get' | 'KVServer.PutAppend';
  readonly op: 'get' | 'put' | 'append';
  readonly key: string;
  /** put/append: the value; get: ''. */
  readonly value: string;
  readonly clientId: string;
  readonly seq: number;
}

export interface KvRpcReply {
  readonly rpc: 'KVServer.Reply';
  readonly err: KvErr;
  /** get: the value, or null if the key is absent (6.824's ErrNoKey, read as ""). */
  readonly value: string | null;
}

function isKvRequest(m: unknown): m is KvRpcRequest {
  const rpc = (m as { rpc?: unknown }).rpc;
  return rpc === 'KVServer.Get' || rpc === 'KVServer.PutAppend';
}

function isKvReply(m: unknown): m is KvRpcReply {
  return (m as { rpc?: unknown }).rpc === 'KVServer.Reply';
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}

/**
 * UTF-8 length of a string, without encoding it (values grow to many kilobytes); as
 * Buffer.byteLength counts it (a lone surrogate as the 3-byte replacement character), but with no
 * Buffer, so the suite also runs in a browser (the replay page).
 */
function utf8Length(s: string): number {
  let bytes = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a pair: 2 UTF-16 units, 4 bytes
      i++;
    } else bytes += 2;
  }
  return bytes;
}

/** Encoded size of a KV RPC: a tag, length-prefixed strings and varints, as the codec would write it. */
function kvRpcSize(m: unknown): number | undefined {
  if (isKvRequest(m)) {
    const key = utf8Length(m.key);
    const value = utf8Length(m.value);
    const client = utf8Length(m.clientId);
    return 2 + varintBytes(key) + key + varintBytes(value) + value + varintBytes(client) + client + varintBytes(m.seq);
  }
  if (isKvReply(m)) {
    const value = m.value === null ? 0 : utf8Length(m.value);
    return 3 + varintBytes(value) + value;
  }
  return undefined;
}

const WRONG_LEADER: KvRpcReply = { rpc: 'KVServer.Reply', err: 'ErrWrongLeader', value: null };

// ------------------------------------------------------------------------------------ server

interface Waiter {
  readonly term: number;
  readonly arrived: number;
  /** When the reply may leave at the earliest: arrival + serviceMs. */
  readonly replyAt: number;
  readonly op: KvRpcRequest['op'];
  readonly resolve: (reply: KvRpcReply) => void;
  timer: Timer | null;
}

/** One server's KV service (6.824 KVServer): a state machine fed by Raft, and the RPC handlers. */
export class KvServer implements ServiceReplica {
  readonly sm = new KvStateMachine();
  private node: HarnessServer | null = null;
  private readonly waiters = new Map<number, Waiter>();
  private killed = false;
  private snapshotScheduled = false;

  constructor(
    readonly id: number,
    private readonly persister: Persister,
    private readonly kv: KvCluster,
  ) {
    const snapshot = persister.readSnapshot();
    if (snapshot !== null) this.sm.restore(snapshot);
  }

  serve(node: HarnessServer): RpcServer<Message, Message> {
    this.node = node;
    return {
      dispatch: (request: Message) => (isKvRequest(request) ? (this.handle(request) as unknown as Message | Promise<Message>) : node.dispatch(request)),
    };
  }

  apply(entry: Entry): void {
    if (this.killed) return;
    // A restarted server replays entries its snapshot already covers only if the core re-sends them.
    if (entry.index <= this.sm.appliedIndex) return;
    const result = this.sm.apply(entry);
    const waiter = this.waiters.get(entry.index);
    if (waiter !== undefined) {
      this.waiters.delete(entry.index);
      if (waiter.term === entry.term) this.answer(waiter, result);
      else this.settle(waiter, WRONG_LEADER);
    }
    this.checkLeadership();
    this.maybeSnapshot();
  }

  applySnapshot(snapshot: Snapshot): void {
    if (this.killed) return;
    if (snapshot.index > this.sm.appliedIndex) this.sm.restore(snapshot);
    // Entries the snapshot covers were never applied here: their results are unknown.
    for (const [index, waiter] of this.waiters) {
      if (index <= snapshot.index) {
        this.waiters.delete(index);
        this.settle(waiter, WRONG_LEADER);
      }
    }
  }

  /** The server was shut down: pending handlers are answered with nothing (the network fails them). */
  kill(): void {
    this.killed = true;
    for (const waiter of this.waiters.values()) waiter.timer?.cancel();
    this.waiters.clear();
  }

  private handle(request: KvRpcRequest): KvRpcReply | Promise<KvRpcReply> | null {
    const node = this.node;
    if (this.killed || node === null) return null;
    const command = encodeKvCommand({
      op: request.op,
      clientId: request.clientId,
      seq: request.seq,
      key: utf8.encode(request.key),
      ...(request.op === 'get' ? {} : { value: utf8.encode(request.value) }),
    });
    const { index, term, isLeader } = node.start(command);
    if (!isLeader) return WRONG_LEADER;
    const scheduler = this.kv.scheduler;
    return new Promise<KvRpcReply>((resolve) => {
      const previous = this.waiters.get(index);
      if (previous !== undefined) this.settle(previous, WRONG_LEADER);
      // Each request costs its own service time, in parallel with the others (see KV_SERVICE_MS).
      const now = scheduler.now();
      const replyAt = now + this.kv.serviceMs;
      const waiter: Waiter = { term, arrived: now, replyAt, op: request.op, resolve, timer: null };
      this.waiters.set(index, waiter);
      const poll = (): void => {
        if (this.waiters.get(index) !== waiter) return;
        const state = node.getState();
        if (scheduler.now() - waiter.arrived >= WAIT_TIMEOUT_MS || !state.isLeader || state.term !== term) {
          this.waiters.delete(index);
          this.settle(waiter, WRONG_LEADER);
          return;
        }
        waiter.timer = scheduler.schedule(LEADERSHIP_POLL_MS, poll);
      };
      waiter.timer = scheduler.schedule(LEADERSHIP_POLL_MS, poll);
    });
  }

  /** Answers a waiter whose entry was applied, once its service time is over. */
  private answer(waiter: Waiter, result: KvResult): void {
    let reply: KvRpcReply;
    if (!result.ok) {
      // A command the clerk built cannot be invalid: retrying it would loop forever, so fail.
      if (result.error === 'invalid-command') throw new TestFailure(`KV server ${this.id}: ${result.message}`);
      // stale-request: an old copy of a request whose clerk has moved on (after the network failed
      // this call); nobody listens to this answer any more.
      reply = WRONG_LEADER;
    } else if (waiter.op === 'get') {
      const value = result.value ?? null;
      reply = { rpc: 'KVServer.Reply', err: value === null ? 'ErrNoKey' : 'OK', value: value === null ? null : utf8Decoder.decode(value) };
    } else {
      reply = { rpc: 'KVServer.Reply', err: 'OK', value: null };
    }
    const delay = waiter.replyAt - this.kv.scheduler.now();
    waiter.timer?.cancel();
    if (delay > 0) {
      waiter.timer = this.kv.scheduler.schedule(delay, () => waiter.resolve(reply));
    } else {
      waiter.resolve(reply);
    }
  }

  private settle(waiter: Waiter, reply: KvRpcReply): void {
    waiter.timer?.cancel();
    waiter.timer = null;
    waiter.resolve(reply);
  }

  /** Fails every waiter of a term this server no longer leads. */
  private checkLeadership(): void {
    if (this.waiters.size === 0 || this.node === null) return;
    const { term, isLeader } = this.node.getState();
    for (const [index, waiter] of this.waiters) {
      if (!isLeader || waiter.term !== term) {
        this.waiters.delete(index);
        this.settle(waiter, WRONG_LEADER);
      }
    }
  }

  /**
   * Snapshots once the persisted raft state reaches maxraftstate. Taken in a 0 ms event rather than
   * inside the apply callback, so that a Ready with many committed entries snapshots once, at the
   * last of them, instead of encoding the state machine once per entry.
   */
  private maybeSnapshot(): void {
    const max = this.kv.maxraftstate;
    if (max <= 0 || this.snapshotScheduled || this.persister.raftStateSize() < max) return;
    this.snapshotScheduled = true;
    this.kv.scheduler.schedule(0, () => {
      this.snapshotScheduled = false;
      if (this.killed || this.node === null || this.persister.raftStateSize() < max) return;
      this.node.snapshot(this.sm.appliedIndex, this.sm.snapshot());
    });
  }
}

// ------------------------------------------------------------------------------------ clerk

/**
 * 6.824's Clerk: tries servers in turn (remembering the leader) until one answers, sleeping after a
 * full round of failures. Records each operation in the cluster's history under its `number` (Go
 * records the test's client index instead; the checker does not use the id).
 */
export class Clerk {
  /** The session id the state machine deduplicates by. */
  readonly clientId: string;
  /** Endpoints to every server, in random order (as in 6.824). */
  private readonly ends: ClientEnd<Message, Message>[];
  /** Index into `ends` of the server that answered last. */
  private leader = 0;
  private seq = 0;

  constructor(
    private readonly kv: KvCluster,
    readonly number: number,
    ends: ClientEnd<Message, Message>[],
  ) {
    this.clientId = `c${number}`;
    this.ends = ends;
  }

  /** The value of `key`, or "" if it has none. */
  async get(key: string): Promise<string> {
    return (await this.operation({ kind: 'get', key })) ?? '';
  }

  async put(key: string, value: string): Promise<void> {
    await this.operation({ kind: 'put', key, value });
  }

  async append(key: string, value: string): Promise<void> {
    await this.operation({ kind: 'append', key, value });
  }

  private async operation(input: KvInput & { kind: 'get' | 'put' | 'append' }): Promise<string | null> {
    const seq = this.seq++;
    const request: KvRpcRequest = {
      rpc: input.kind === 'get' ? 'KVServer.Get' : 'KVServer.PutAppend',
      op: input.kind,
      key: input.key,
      value: input.kind === 'get' ? '' : input.value,
      clientId: this.clientId,
      seq,
    };
    const pending = this.kv.history.invoke<KvInput>(this.number, input);
    for (;;) {
      for (let tried = 0; tried < this.ends.length; tried++) {
        const k = (this.leader + tried) % this.ends.length;
        const reply = await this.call(this.ends[k]!, request);
        if (reply !== null && reply.err !== 'ErrWrongLeader') {
          this.leader = k;
          pending.ok(input.kind === 'get' ? { value: reply.value } : {});
          return reply.value;
        }
      }
      await this.kv.scheduler.sleep(CLERK_ROUND_SLEEP_MS);
    }
  }

  private call(end: ClientEnd<Message, Message>, request: KvRpcRequest): Promise<KvRpcReply | null> {
    return new Promise((resolve) => {
      end.call(request as unknown as Message, (reply) => resolve(reply !== null && isKvReply(reply) ? reply : null));
    });
  }
}

// ------------------------------------------------------------------------------------ cluster

export interface KvClusterOptions {
  readonly n: number;
  readonly unreliable: boolean;
  /** Snapshot when the persisted raft state reaches this many bytes; -1 never. */
  readonly maxraftstate: number;
  /** Virtual ms each server spends on each request (default KV_SERVICE_MS). */
  readonly serviceMs?: number;
}

/** 6.824 kvraft's `config`: n KV servers on the Raft harness, clerks, and begin/end with ops. */
export class KvCluster implements ClusterService {
  readonly cluster: Cluster;
  readonly n: number;
  readonly maxraftstate: number;
  readonly serviceMs: number;
  readonly history: HistoryRecorder;
  /** kvservers[i]: server i's live KV service, or null while it is shut down. */
  readonly kvservers: (KvServer | null)[];
  private nextClerk = 0;
  private ops = 0;

  constructor(context: SuiteContext, options: KvClusterOptions) {
    this.n = options.n;
    this.maxraftstate = options.maxraftstate;
    this.serviceMs = options.serviceMs ?? KV_SERVICE_MS;
    this.kvservers = new Array<KvServer | null>(this.n).fill(null);
    this.cluster = context.makeCluster(options.n, options.unreliable);
    const scheduler = this.cluster.scheduler;
    this.history = new HistoryRecorder(() => scheduler.now());
    // kvraft's config does not enable long delays: a call to an unreachable server fails in 0–99 ms.
    this.cluster.net.setLongDelays(false);
    this.cluster.attachService(this);
  }

  get scheduler(): Cluster['scheduler'] {
    return this.cluster.scheduler;
  }

  // ---------------------------------------------------------------- ClusterService

  startReplica(i: number, persister: Persister): ServiceReplica {
    this.kvservers[i]?.kill();
    const server = new KvServer(i, persister, this);
    this.kvservers[i] = server;
    return server;
  }

  rpcSize(message: unknown): number | undefined {
    return kvRpcSize(message);
  }

  // ---------------------------------------------------------------- servers and network

  /** Every server index, 0..n-1 (6.824 `All()`). */
  all(): number[] {
    return Array.from({ length: this.n }, (_, i) => i);
  }

  /** Disconnects server i, deletes it from the network and kills it; its persister is kept. */
  shutdownServer(i: number): void {
    this.cluster.crash1(i);
    this.kvservers[i]?.kill();
    this.kvservers[i] = null;
  }

  /** Starts server i from its saved persister (restoring its snapshot); it stays disconnected. */
  startServer(i: number): void {
    this.cluster.start1(i);
  }

  /** Full connectivity between all servers (clerks are not touched). */
  connectAll(): void {
    for (let i = 0; i < this.n; i++) this.cluster.connect(i);
  }

  /**
   * Full connectivity inside p1 and inside p2, none between them (clerks are not touched). Built
   * from Cluster.connect(), which links a server to every server flagged connected: each side is
   * connected in turn while the other side's flags are cleared, then the flags are restored
   * (clearing a flag does not disable links; only disconnect() does).
   */
  partition(p1: readonly number[], p2: readonly number[]): void {
    const cluster = this.cluster;
    for (let i = 0; i < this.n; i++) cluster.disconnect(i);
    for (const group of [p1, p2]) {
      for (const i of group) cluster.connect(i);
      for (const i of group) cluster.connected[i] = false;
    }
    for (const i of [...p1, ...p2]) cluster.connected[i] = true;
  }

  /** The first server whose Raft says it is leader, or 0 (6.824 `Leader()`). */
  leader(): { ok: boolean; leader: number } {
    for (let i = 0; i < this.n; i++) {
      if (this.cluster.getState(i).isLeader) return { ok: true, leader: i };
    }
    return { ok: false, leader: 0 };
  }

  /** A majority and a minority, the current leader last in the minority (6.824 make_partition). */
  makePartition(): [number[], number[]] {
    const { leader } = this.leader();
    const p1: number[] = [];
    const p2: number[] = [];
    const majority = Math.floor(this.n / 2) + 1;
    for (let i = 0; i < this.n; i++) {
      if (i === leader) continue;
      if (p1.length < majority) p1.push(i);
      else p2.push(i);
    }
    p2.push(leader);
    return [p1, p2];
  }

  /** The largest raft-state size over all servers (6.824 LogSize). */
  logSize(): number {
    return this.cluster.logSize();
  }

  /** The largest snapshot size over all servers (6.824 SnapshotSize). */
  snapshotSize(): number {
    return this.cluster.snapshotSize();
  }

  // ---------------------------------------------------------------- clerks

  /** A clerk with endpoints to every server, in random order; only those in `to` are enabled. */
  makeClient(to: readonly number[]): Clerk {
    const number = this.nextClerk++;
    const servers = this.all();
    for (let i = servers.length - 1; i > 0; i--) {
      const j = this.cluster.rand(i + 1);
      [servers[i], servers[j]] = [servers[j]!, servers[i]!];
    }
    const ends = servers.map((server) => {
      const end = this.cluster.net.makeEnd(`clerk-${number}-${server}`);
      this.cluster.net.connect(end.name, String(server));
      return end;
    });
    const clerk = new Clerk(this, number, ends);
    this.connectClient(clerk, to);
    return clerk;
  }

  /** Disables all the clerk's endpoints (6.824 deleteClient; the network never forgets an end). */
  deleteClient(clerk: Clerk): void {
    this.disconnectClient(clerk, this.all());
  }

  connectClient(clerk: Clerk, to: readonly number[]): void {
    for (const server of to) this.cluster.net.enable(`clerk-${clerk.number}-${server}`, true);
  }

  disconnectClient(clerk: Clerk, from: readonly number[]): void {
    for (const server of from) this.cluster.net.enable(`clerk-${clerk.number}-${server}`, false);
  }

  // ---------------------------------------------------------------- counted operations

  /** The tests' Get wrapper: counts the operation once it completes. */
  async get(clerk: Clerk, key: string): Promise<string> {
    const value = await clerk.get(key);
    this.ops++;
    return value;
  }

  async put(clerk: Clerk, key: string, value: string): Promise<void> {
    await clerk.put(key, value);
    this.ops++;
  }

  async append(clerk: Clerk, key: string, value: string): Promise<void> {
    await clerk.append(key, value);
    this.ops++;
  }

  /** 6.824 `check`: Get(key) must return `value`. */
  async check(clerk: Clerk, key: string, value: string): Promise<void> {
    const v = await this.get(clerk, key);
    if (v !== value) this.fail(`Get(${key}): expected:\n${value}\nreceived:\n${v}`);
  }

  // ---------------------------------------------------------------- test plumbing

  sleep(ms: number): Promise<void> {
    return this.cluster.sleep(ms);
  }

  rand(maxExclusive: number): number {
    return this.cluster.rand(maxExclusive);
  }

  go(task: () => Promise<void>): Promise<void> {
    return this.cluster.go(task);
  }

  checkBackground(): void {
    this.cluster.checkBackground();
  }

  fail(message: string): never {
    throw new TestFailure(message);
  }

  begin(title: string): void {
    this.cluster.begin(title);
    this.ops = 0;
  }

  /**
   * Checks the whole history so far (operations still in flight count as unknown: they may or may
   * not take effect) and prints the kvraft Passed line: seconds, peers, RPCs, ops. With
   * `linearizability: false` the history is not checked.
   */
  end(options: { readonly linearizability?: boolean } = {}): TestFigures {
    this.cluster.checkBackground();
    if (options.linearizability ?? true) this.checkLinearizability();
    return this.cluster.end(this.ops);
  }

  /** 6.824's porcupine check: illegal fails the test; a timeout passes with an info line. */
  checkLinearizability(): void {
    const operations = this.history.operations({ pendingAsUnknown: true });
    const verdict = checkLinearizable(operations, { timeBudgetMs: LINEARIZABILITY_BUDGET_MS });
    if (verdict.result === 'illegal') {
      this.fail(`history is not linearizable${verdict.explanation === undefined ? '' : `\n${verdict.explanation}`}`);
    } else if (verdict.result === 'unknown') {
      this.cluster.warn('info: linearizability check timed out, assuming history is ok');
    }
  }
}

export { ELECTION_TIMEOUT_MS };
