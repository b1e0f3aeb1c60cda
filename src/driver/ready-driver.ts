/**
 * The one Ready loop. Every node that runs a RaftCore (RaftNode in production and in the
 * explorer, the 6.824 SimNode, the core's own tests) hands its Readys to this driver, so the
 * persistence contract is honoured, and checked, in exactly one place:
 *
 *   feed inputs → ready() → send messagesBeforePersist → write (durable) → send messages →
 *   restore snapshot, apply committed entries, serve reads → advance() → next Ready
 *
 * Completion is reported by callback, never by promise: the simulator's disk completes writes on
 * its virtual clock (or at once), the runtime's FileStorage through a promise. Either way only one
 * Ready is in flight, and inputs that arrive meanwhile wait in the owner's queue; `feed` hands them
 * all to the core before the next Ready, so one durable write covers everything that arrived during
 * the previous one (group commit).
 *
 * Asserted here, always on: no message of `ready.messages` (votes, acknowledgements) leaves while
 * the write of its Ready is outstanding; the applied index only grows, one entry at a time, and a
 * snapshot only moves it forward.
 */
import { assert } from '../core/assert.js';
import type { Entry, HardState, LogIndex, Message, Snapshot } from '../core/messages.js';
import type { RaftCore } from '../core/raft.js';
import { hasWrites, type LogWrite, type Ready, type ReadState } from '../core/ready.js';

/**
 * Mistakes the driver can be told to make, to prove the checks catch them:
 * - `send-before-sync`: send the messages that must wait for the write while it is outstanding
 *   (the driver's own assertion fires);
 * - `leader-counts-unsynced`: on a leader, treat the write as done as soon as it is issued, so the
 *   core counts the leader's own copy of new entries towards commit before it is durable (a crash
 *   then loses an entry that a majority was said to hold). The core cannot make this mistake by
 *   itself: it takes no input while a write is outstanding.
 */
export const DRIVER_BUGS = ['send-before-sync', 'leader-counts-unsynced'] as const;
export type DriverBug = (typeof DRIVER_BUGS)[number];

/** Makes one Ready's writes durable and calls `done` once, possibly synchronously. */
export type DurableWrite = (
  hardState: HardState | null,
  snapshot: Snapshot | null,
  logWrite: LogWrite | null,
  done: (error: Error | null) => void,
) => void;

/** What the driver needs from the node that owns it. */
export interface ReadyHandlers {
  /** Hands queued inputs (ticks, messages, proposals, reads) to the core; called before every Ready. */
  feed(): void;
  send(message: Message): void;
  /** Replaces the application's state with a snapshot from the leader. */
  restore(snapshot: Snapshot): void;
  /** Applies one committed entry. */
  apply(entry: Entry): void;
  /** Reads the leader confirmed: each may be served once `appliedIndex` reaches its index. */
  confirmReads(states: readonly ReadState[]): void;
  /** The node must stop: a write failed, or the core or the application threw. Called once. */
  fail(error: Error): void;
  /** Called after each Ready is finished (observers, compaction, back-pressure). */
  advanced?(ready: Ready): void;
  /** While it returns true, no new Ready is started (the application is behind). */
  held?(): boolean;
}

export class ReadyDriver {
  private readonly core: RaftCore;
  private readonly write: DurableWrite;
  private readonly handlers: ReadyHandlers;
  private readonly bugs: ReadonlySet<DriverBug>;
  /** The Ready whose write is outstanding; its `messages` wait for it. */
  private writing: Ready | null = null;
  private running = false;
  private stopped = false;
  /** The last index handed to the application (a snapshot's or an entry's). Only grows. */
  private applied: LogIndex;

  constructor(core: RaftCore, write: DurableWrite, handlers: ReadyHandlers, bugs: ReadonlySet<DriverBug> = new Set()) {
    this.core = core;
    this.write = write;
    this.handlers = handlers;
    this.bugs = bugs;
    this.applied = core.status().appliedIndex;
  }

  /** The last index the application has been given. */
  get appliedIndex(): LogIndex {
    return this.applied;
  }

  /** A durable write is outstanding. */
  get writePending(): boolean {
    return this.writing !== null;
  }

  /**
   * Runs Readys until the core has none, a write is outstanding, or the owner holds the loop. Safe
   * to call at any time, also from inside a handler (it then returns at once; the running loop
   * picks the work up).
   */
  run(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      while (!this.stopped && this.writing === null && !(this.handlers.held?.() ?? false)) {
        this.handlers.feed();
        if (this.stopped || !this.core.hasReady()) break;
        this.handle(this.core.ready());
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.running = false;
    }
  }

  /** Stops for good: no new Ready, and the completion of an outstanding write is ignored. */
  stop(): void {
    this.stopped = true;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  private handle(ready: Ready): void {
    for (const message of ready.messagesBeforePersist) this.handlers.send(message);
    if (!hasWrites(ready)) {
      this.finish(ready);
      return;
    }
    if (this.bugs.has('leader-counts-unsynced') && this.core.isLeader) {
      this.write(ready.hardState, ready.snapshotWrite, ready.logWrite, (error) => {
        if (error !== null) this.fail(error);
      });
      this.finish(ready);
      return;
    }
    this.writing = ready;
    if (this.bugs.has('send-before-sync')) for (const message of ready.messages) this.sendAfterWrite(message);
    this.write(ready.hardState, ready.snapshotWrite, ready.logWrite, (error) => this.written(ready, error));
  }

  private written(ready: Ready, error: Error | null): void {
    if (this.stopped) return;
    assert(this.writing === ready, 'a write completed that is not the outstanding one');
    this.writing = null;
    if (error !== null) {
      this.fail(error);
      return;
    }
    try {
      this.finish(ready);
    } catch (failure) {
      this.fail(failure);
      return;
    }
    // A write that completed synchronously returns into the running loop, which goes on by itself.
    this.run();
  }

  private finish(ready: Ready): void {
    if (!this.bugs.has('send-before-sync')) for (const message of ready.messages) this.sendAfterWrite(message);
    const snapshot = ready.snapshotToApply;
    if (snapshot !== null) {
      assert(snapshot.index > this.applied, () => `snapshot at ${snapshot.index} would move the applied index back from ${this.applied}`);
      this.applied = snapshot.index;
      this.handlers.restore(snapshot);
    }
    for (const entry of ready.committed) {
      assert(entry.index === this.applied + 1, () => `entry ${entry.index} applied after ${this.applied}`);
      this.applied = entry.index;
      this.handlers.apply(entry);
    }
    if (ready.readStates.length > 0) this.handlers.confirmReads(ready.readStates);
    this.core.advance(ready);
    this.handlers.advanced?.(ready);
  }

  private sendAfterWrite(message: Message): void {
    assert(
      this.writing === null,
      () => `node ${this.core.id} would send ${message.type} to ${message.to} before the write it depends on is durable`,
    );
    this.handlers.send(message);
  }

  private fail(error: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.handlers.fail(error instanceof Error ? error : new Error(String(error)));
  }
}
