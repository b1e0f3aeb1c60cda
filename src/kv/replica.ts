/**
 * KvReplica: the glue between one RaftNode and the KV state machine, shared by the HTTP server
 * (server.ts) and the random fault explorer, so the explorer checks the code that ships. It
 * applies committed entries, takes snapshots when enough log has been applied since the last one,
 * and serves the two kinds of operation a client can ask for: a write through the log (answered
 * with the state machine's result), and a linearizable read (ReadIndex, or a `get` through the log).
 *
 * Snapshots: the replica counts the command bytes (+ ENTRY_OVERHEAD_BYTES per entry) applied since
 * the last snapshot; once that passes `maxRaftStateBytes`, or a quarter of the last snapshot's size
 * if that is more, it hands the state machine's snapshot to the RaftNode, which compacts its log.
 * The quarter keeps a large state from being rewritten whole every few MiB of writes: snapshots
 * then cost at most four bytes written per byte of log, and the log kept in memory and on disk
 * stays within a quarter of the state. The snapshot is captured after the Ready being applied
 * (through `defer`), so one snapshot covers every entry that Ready commits, and then encoded a
 * slice at a time between turns of the event loop (takeSnapshot), while applying goes on.
 *
 * Leases: the replicated lease table is in the state machine; their clocks run in a LeaseKeeper
 * (lease-keeper.ts) on whichever node leads, told of leadership by the RaftNode. Keep-alives and
 * lease lookups confirm leadership first (ReadIndex), since only the leader's clock counts.
 */
import type { Entry, LogIndex, Snapshot, SnapshotBody } from '../core/messages.js';
import type { SnapshotAssembly } from '../core/snapshot-body.js';
import type { RaftNode, StateMachine } from '../runtime/node.js';
import { realClock, type Clock } from '../runtime/clock.js';
import { NotLeaderError } from '../runtime/errors.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { LeaseInfo } from './lease-table.js';
import { encodeKvCommand, type KvKeyMeta, type KvResult } from './commands.js';
import { describeError } from './describe-error.js';
import type { WatchHub } from './watch-hub.js';
import { KvStateMachine, type KvChange, type KvSnapshotWriter, type KvRangeBounds, type KvRangePage, type KvRangeQuery } from './state-machine.js';

/** Key and value bytes a snapshot encodes between two turns of the event loop (a few milliseconds). */
export const SNAPSHOT_SLICE_BYTES = 4 * 1024 * 1024;

/** KvReplicaOptions.snapshotLogFraction's default. */
export const DEFAULT_SNAPSHOT_LOG_FRACTION = 0.25;

/** Bytes counted per applied entry on top of its command, for `maxRaftStateBytes`. */
export const ENTRY_OVERHEAD_BYTES = 16;

export interface KvReplicaOptions {
  /** Snapshot once the log applied since the last snapshot passes this many bytes (-1: never). */
  readonly maxRaftStateBytes: number;
  /**
   * ...or this fraction of the last snapshot's size, if that is more (default 0.25; see the module
   * comment). The explorer sets 0, to snapshot as often as its small thresholds say.
   */
  readonly snapshotLogFraction?: number;
  /**
   * Runs the next slice of a snapshot's encoding (default setImmediate: after pending I/O and
   * timers, so a large state's encoding never holds up heartbeats). The explorer passes its
   * virtual clock's defer.
   */
  readonly nextSlice?: (callback: () => void) => void;
  /**
   * Where a snapshot at `index` is written as it is encoded (the server's: a file that FileStorage
   * then adopts), so that taking one never holds the encoded state in memory. Default: in memory.
   */
  readonly snapshotFile?: (index: LogIndex) => SnapshotAssembly | null;
  /** Runs a callback after the current call stack (the node's clock's `defer`). */
  readonly defer: (callback: () => void) => void;
  readonly log?: (line: string) => void;
  /** Where the changes applied go, for watches (the server's; the explorer has none). */
  readonly watchHub?: WatchHub;
  /** The clock leases are timed on while this node leads (default: real time). */
  readonly clock?: Clock;
  /** How long the lease keeper's revokes of expired leases may wait for commit (default 5 s). */
  readonly revokeTimeoutMs?: number;
  /** Observes the lease keeper's revokes of expired leases as they are proposed (LeaseKeeperOptions.onRevokeProposed). */
  readonly onLeaseRevokeProposed?: (id: number, term: number, at: number) => void;
}

/** A lease as the leader sees it (KvReplica.leaseInfo). */
export interface KvLeaseView extends LeaseInfo {
  /** Milliseconds left before it expires, on the leader's clock. */
  readonly remainingMs: number;
  /** The attached keys, in ascending byte order, when asked for. */
  readonly keys?: Uint8Array[];
  readonly revision: number;
  readonly index: LogIndex;
}

export class KvReplica {
  readonly sm = new KvStateMachine();
  private readonly options: KvReplicaOptions;
  private node: RaftNode<KvResult> | null = null;
  private bytesSinceSnapshot = 0;
  /** The size of the latest snapshot taken or restored here (scales the next one's threshold). */
  private lastSnapshotBytes = 0;
  private snapshotScheduled = false;
  /** The snapshot being encoded, a slice at a time. */
  private writer: KvSnapshotWriter | null = null;
  private taken = 0;
  /** The leases' clocks, running while this node leads. */
  readonly leases: LeaseKeeper;

  constructor(options: KvReplicaOptions) {
    this.options = options;
    this.leases = new LeaseKeeper(this.sm, {
      clock: options.clock ?? realClock,
      propose: (command) => this.commit(command, options.revokeTimeoutMs ?? 5_000),
      ...(options.log === undefined ? {} : { log: options.log }),
      ...(options.onLeaseRevokeProposed === undefined ? {} : { onRevokeProposed: options.onLeaseRevokeProposed }),
    });
    const hub = options.watchHub;
    if (hub !== undefined) {
      // Changes of one applied entry share a revision at most with each other: published per revision, in order.
      this.sm.onChange = (revision, change) => {
        if (this.pendingRevision !== revision) this.flushChanges();
        this.pendingRevision = revision;
        this.pendingChanges.push(change);
      };
    }
  }

  /** Changes of the revision being applied, not yet published. */
  private pendingChanges: KvChange[] = [];
  private pendingRevision = 0;

  private flushChanges(): void {
    if (this.pendingChanges.length === 0) return;
    const changes = this.pendingChanges;
    this.pendingChanges = [];
    this.options.watchHub!.publish(this.pendingRevision, changes);
  }

  /** The state machine to give RaftNode.start. */
  readonly stateMachine: StateMachine<KvResult> = {
    apply: (entry) => this.apply(entry),
    restore: (snapshot) => this.restore(snapshot),
    validateSnapshot: (snapshot) => {
      const started = performance.now();
      const problem = this.sm.checkSnapshot(snapshot);
      this.options.log?.(`snapshot at ${snapshot.index} from the leader (${snapshot.data.byteLength} bytes) received and checked in ${(performance.now() - started).toFixed(0)} ms${problem === null ? '' : `: refused, ${problem}`}`);
      return problem;
    },
  };

  /** The node this replica feeds and compacts; set once RaftNode.start resolved. */
  attach(node: RaftNode<KvResult>): void {
    this.node = node;
    node.onLeadershipChange((term) => this.leases.leadershipChanged(term));
    const status = node.raftStatus(false);
    if (status.role === 'leader') this.leases.leadershipChanged(status.term);
  }

  get snapshotsTaken(): number {
    return this.taken;
  }

  get appliedIndex(): LogIndex {
    return this.sm.appliedIndex;
  }

  /**
   * Proposes an encoded command; resolves once it is applied here, with its result and the log
   * index where it took effect. That is the proposed entry's index, except for a duplicate (a retry
   * of a (clientId, seq) the session already applied), which changed nothing at its own index: it
   * is answered from the session table with the original command's index (the result's
   * `deduplicatedFrom`), so every answer to one write names the same index.
   */
  async commit(command: Uint8Array, timeoutMs: number): Promise<{ index: LogIndex; result: KvResult }> {
    const { index, result } = await this.requireNode().propose(command, { timeoutMs });
    return { index: result?.deduplicatedFrom ?? index, result };
  }

  /** Confirms leadership for a linearizable read (ReadIndex); rejects with the RaftNode's errors. */
  confirmRead(timeoutMs: number): Promise<LogIndex> {
    return this.requireNode().read({ timeoutMs });
  }

  /**
   * This replica's current value of `key`, the index and store revision it reflects, and the key's
   * revisions (and lease, when it has one) when it is present (no coordination).
   */
  readLocal(key: Uint8Array): { value: Uint8Array | null; index: LogIndex; revision: number; key?: KvKeyMeta & { lease?: number } } {
    const found = this.sm.getWithMeta(key);
    const base = { index: this.sm.appliedIndex, revision: this.sm.revision };
    if (found === null) return { value: null, ...base };
    const { value, ...meta } = found;
    return { value, ...base, key: meta };
  }

  /** One page of a range from this replica's state (no coordination), with the index it reflects. */
  rangeLocal(query: KvRangeQuery): KvRangePage & { index: LogIndex } {
    return { ...this.sm.range(query), index: this.sm.appliedIndex };
  }

  /** The number of keys in a range in this replica's state (no coordination). */
  countLocal(bounds: KvRangeBounds): { count: number; revision: number; index: LogIndex } {
    return { count: this.sm.count(bounds), revision: this.sm.revision, index: this.sm.appliedIndex };
  }

  /** A linearizable read, served as configured: ReadIndex then a local read, or a `get` through the log. */
  async read(key: Uint8Array, mode: 'read-index' | 'log', timeoutMs: number): Promise<{ value: Uint8Array | null; index: LogIndex }> {
    if (mode === 'read-index') {
      await this.confirmRead(timeoutMs);
      return this.readLocal(key);
    }
    const { index, result } = await this.commit(encodeKvCommand({ op: 'get', clientId: '', seq: 0, key }), timeoutMs);
    if (!result.ok) throw new Error(`a get through the log failed: ${result.message}`);
    return { value: result.value ?? null, index };
  }

  /**
   * Restarts a lease's clock at its full TTL, once this node confirmed its leadership (ReadIndex):
   * the lease's TTL, or null when the store does not hold it (or it is expiring). Rejects with
   * the RaftNode's errors (NotLeaderError on a follower).
   */
  async leaseKeepAlive(id: number, timeoutMs: number): Promise<{ ttlSeconds: number; revision: number } | null> {
    await this.confirmRead(timeoutMs);
    const outcome = this.leases.keepAlive(id);
    if (outcome.kind === 'not-leader') throw this.lostLeadership();
    return outcome.kind === 'not-found' ? null : { ttlSeconds: outcome.ttlSeconds, revision: this.sm.revision };
  }

  /** A lease with its time left, once this node confirmed its leadership; null when the store does not hold it (or it is expiring). */
  async leaseInfo(id: number, withKeys: boolean, timeoutMs: number): Promise<KvLeaseView | null> {
    await this.confirmRead(timeoutMs);
    if (!this.leases.leading) throw this.lostLeadership();
    const info = this.sm.lease(id);
    const remainingMs = this.leases.remainingMs(id);
    if (info === null || remainingMs === null) return null;
    return { ...info, remainingMs, ...(withKeys ? { keys: this.sm.leaseKeys(id) } : {}), revision: this.sm.revision, index: this.sm.appliedIndex };
  }

  /** Every lease the store holds (linearizable: ReadIndex first), in ascending id order. */
  async leaseList(timeoutMs: number): Promise<{ leases: LeaseInfo[]; revision: number; index: LogIndex }> {
    await this.confirmRead(timeoutMs);
    return { leases: this.sm.leaseList(), revision: this.sm.revision, index: this.sm.appliedIndex };
  }

  private lostLeadership(): NotLeaderError {
    const leader = this.node?.raftStatus(false).leaderId ?? -1;
    return new NotLeaderError(leader >= 0 ? leader : undefined, undefined, 'leadership was lost before the lease could be timed');
  }

  private requireNode(): RaftNode<KvResult> {
    if (this.node === null) throw new Error('KvReplica used before its RaftNode was attached');
    return this.node;
  }

  private apply(entry: Entry): KvResult {
    const result = this.sm.apply(entry);
    if (this.options.watchHub !== undefined) this.flushChanges();
    if (this.options.maxRaftStateBytes < 0) return result;
    this.bytesSinceSnapshot += entry.command.length + ENTRY_OVERHEAD_BYTES;
    if (this.bytesSinceSnapshot > this.snapshotThreshold() && !this.snapshotScheduled) {
      this.snapshotScheduled = true;
      this.options.defer(() => this.takeSnapshot());
    }
    return result;
  }

  /** Log bytes applied since the last snapshot that make the next one due (see the module comment). */
  private snapshotThreshold(): number {
    return Math.max(this.options.maxRaftStateBytes, Math.floor(this.lastSnapshotBytes * (this.options.snapshotLogFraction ?? DEFAULT_SNAPSHOT_LOG_FRACTION)));
  }

  private restore(snapshot: Snapshot): void {
    this.writer?.abandon();
    this.writer = null;
    // A snapshot from the leader has passed checkSnapshot, and at startup the machine is empty:
    // the old state can go before the new one is built, so a large state is never held twice.
    const started = performance.now();
    this.sm.restore(snapshot, { discardCurrent: true });
    this.options.log?.(`snapshot at ${snapshot.index} restored: ${this.sm.stats.keys} keys in ${(performance.now() - started).toFixed(0)} ms`);
    this.lastSnapshotBytes = snapshot.data.byteLength;
    this.leases.restored();
    this.pendingChanges = [];
    // What happened before the snapshot is not known here: watches that needed it end (compacted).
    this.options.watchHub?.reset(this.sm.revision);
    this.bytesSinceSnapshot = 0;
  }

  /**
   * Captures the state for a snapshot (O(1) for the keys: see KvStateMachine.snapshotWriter) and
   * encodes it SNAPSHOT_SLICE_BYTES at a time, letting the node run between slices, then hands
   * it to the node. Applying goes on meanwhile; the snapshot covers the index it was captured at.
   */
  private takeSnapshot(): void {
    this.snapshotScheduled = false;
    if (this.node === null || this.writer !== null || this.bytesSinceSnapshot <= this.snapshotThreshold()) return;
    let sink: SnapshotAssembly | null = null;
    try {
      sink = this.options.snapshotFile?.(this.sm.appliedIndex) ?? null;
    } catch (error) {
      this.options.log?.(`snapshot at ${this.sm.appliedIndex}: cannot open a file for it (${describeError(error)}); encoding it in memory`);
    }
    this.writer = sink === null ? this.sm.snapshotWriter() : this.sm.snapshotWriter(sink);
    this.bytesSinceSnapshot = 0;
    this.continueSnapshot(this.writer);
  }

  private continueSnapshot(writer: KvSnapshotWriter): void {
    const node = this.node;
    // A snapshot installed from the leader meanwhile replaced the state (and dropped this writer).
    if (this.writer !== writer) return;
    if (node === null || node.isStopped) {
      // The node stopped: nobody will take the snapshot, so its file goes now.
      this.writer = null;
      writer.abandon();
      return;
    }
    let body: SnapshotBody | null;
    try {
      body = writer.step(SNAPSHOT_SLICE_BYTES);
      if (body === null) {
        (this.options.nextSlice ?? setImmediate)(() => this.continueSnapshot(writer));
        return;
      }
      this.writer = null;
      node.snapshot(writer.index, body);
    } catch (error) {
      this.writer = null;
      writer.abandon();
      this.options.log?.(`snapshot at ${writer.index} failed: ${describeError(error)}`);
      return;
    }
    this.lastSnapshotBytes = body.byteLength;
    this.taken++;
  }
}
