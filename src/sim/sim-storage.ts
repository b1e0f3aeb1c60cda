/**
 * The simulated disk of one server: the Storage contract with FileStorage's durability semantics,
 * in virtual time, driven by a seeded Prng.
 *
 * Why: Raft is safe only if a node never vouches (votes, acknowledges entries, sends) for state a
 * crash could take back, and stops after a failed fsync instead of carrying on as if the write had
 * happened. An always-durable disk cannot catch a driver that breaks either rule; this one makes a
 * crash cost what a real one may cost, and can fail an fsync on demand.
 *
 * A save is written at once but durable only when a sync covering it completes, after a latency
 * drawn from the prng. One sync is in flight at a time; saves arriving meanwhile share the next one
 * (group commit, as in FileStorage), and `done` runs in call order when the save's sync completes.
 * No promises on that path: virtual time must not depend on microtasks.
 *
 * crash() keeps a random prefix of the unsynced saves (written back by the disk on its own, in
 * order) and loses the rest. With `tearPerMille` the last kept save may be torn; in the real WAL a
 * save is one CRC-checked record and recovery cuts a torn tail record off whole, so a torn save is
 * recovered as absent, never as half a save (say entries without their hard state), which
 * FileStorage could not produce. A tear therefore shows only in `stats.tornWrites`.
 *
 * A failed sync fails every save it covers or that is queued behind it, makes none of them
 * durable, and the instance refuses every later save: a node must stop, never continue.
 *
 * The disk keeps the entries and snapshots it is given (configurations included) by reference, as
 * FileStorage keeps its log: nothing is copied, so nothing of them can be dropped on the way.
 */
import { assert } from '../core/assert.js';
import type { HardState, PersistentState, Snapshot } from '../core/messages.js';
import type { LogWrite } from '../core/ready.js';
import { entrySize, hardStateSize, membershipSize } from '../codec/index.js';
import { LogState, WriteCursor } from '../storage/log-state.js';
import { StorageError, type CallbackStorage } from '../storage/storage.js';
import type { Prng } from './prng.js';

/** What the disk needs of a scheduler (a VirtualScheduler or RealScheduler satisfies it). */
export interface SimDiskClock {
  now(): number;
  schedule(delayMs: number, cb: () => void): { cancel(): void };
}

export interface SimDiskOptions {
  readonly scheduler: SimDiskClock;
  readonly prng: Prng;
  /** Sync latency bounds in whole milliseconds, drawn uniformly per sync. Default 1..5. */
  readonly syncLatencyMsMin?: number;
  readonly syncLatencyMsMax?: number;
  /** Chance in 1000 that a crash tears the last save it would otherwise keep. Default 0. */
  readonly tearPerMille?: number;
}

export interface SimDiskStats {
  readonly saves: number;
  readonly syncs: number;
  /** The codec's encoded size of the hard states, entries and snapshot configurations saved, plus the snapshot data. */
  readonly bytesWritten: number;
  readonly crashes: number;
  /** Unsynced saves lost to crashes (torn ones included). */
  readonly lostWrites: number;
  readonly tornWrites: number;
  readonly failedSyncs: number;
}

interface Write {
  readonly hardState: HardState | null;
  readonly snapshot: Snapshot | null;
  readonly logWrite: LogWrite | null;
  readonly done: (error: Error | null) => void;
}

export class SimDisk {
  private readonly scheduler: SimDiskClock;
  private readonly prng: Prng;
  private readonly latencyMin: number;
  private readonly latencySpan: number;
  private readonly tearPerMille: number;
  private readonly counters = { saves: 0, syncs: 0, bytesWritten: 0, crashes: 0, lostWrites: 0, tornWrites: 0, failedSyncs: 0 };
  private readonly durable = new LogState<Snapshot>();
  /** Saves covered by the sync in flight, then saves waiting for the next sync; both in call order. */
  private inFlight: Write[] = [];
  private queued: Write[] = [];
  private syncTimer: { cancel(): void } | null = null;
  private failNext = false;
  /** The batch whose callbacks are running: an empty save made by one must not overtake the rest. */
  private delivering: Write[] | null = null;
  /** @internal the instance holding the lock. */
  owner: SimStorage | null = null;
  /** @internal bumped by each crash: instances of an older incarnation are dead. */
  incarnation = 0;
  private readonly onSync = (): void => this.completeSync();

  constructor(options: SimDiskOptions) {
    const min = options.syncLatencyMsMin ?? 1;
    const max = options.syncLatencyMsMax ?? Math.max(5, min);
    const tear = options.tearPerMille ?? 0;
    if (!(Number.isSafeInteger(min) && Number.isSafeInteger(max) && min >= 0 && max >= min)) {
      throw new RangeError(`sync latency must be whole milliseconds with 0 <= min <= max, got ${min}..${max}`);
    }
    if (!(Number.isInteger(tear) && tear >= 0 && tear <= 1000)) throw new RangeError(`tearPerMille must be an integer in 0..1000, got ${tear}`);
    this.scheduler = options.scheduler;
    this.prng = options.prng;
    this.latencyMin = min;
    this.latencySpan = max - min + 1;
    this.tearPerMille = tear;
  }

  /** A new Storage over this disk, for one process incarnation. */
  storage(): SimStorage {
    return new SimStorage(this);
  }

  /** The process using the disk dies; a random prefix of its unsynced saves survives. */
  crash(): void {
    this.counters.crashes++;
    this.incarnation++;
    this.syncTimer?.cancel();
    this.syncTimer = null;
    this.delivering = null; // a callback crashed the process: the rest of its batch is never told
    const unsynced = this.inFlight.concat(this.queued);
    this.inFlight = [];
    this.queued = [];
    let keep = unsynced.length === 0 ? 0 : this.prng.nextInt(unsynced.length + 1);
    if (keep > 0 && !isEmpty(unsynced[keep - 1]!) && this.tearPerMille > 0 && this.prng.chance(this.tearPerMille, 1000)) {
      keep--;
      this.counters.tornWrites++;
    }
    for (let i = 0; i < keep; i++) this.apply(unsynced[i]!);
    this.counters.lostWrites += unsynced.length - keep;
    const owner = this.owner;
    this.owner = null;
    owner?.released();
  }

  /** Makes the next sync fail, with everything it covers and everything queued behind it. */
  failNextSync(): void {
    this.failNext = true;
  }

  /** What a restarted process would open. */
  durableState(): PersistentState {
    const d = this.durable;
    return { hardState: d.hardState, snapshot: d.snapshot, entries: d.entries.slice() };
  }

  /** Saves recorded but not yet synced (a crash may lose them). */
  get unsyncedWrites(): number {
    return this.inFlight.length + this.queued.length;
  }

  get stats(): SimDiskStats {
    return { ...this.counters };
  }

  /** @internal a cursor that validates saves following the durable state. */
  cursor(): WriteCursor {
    return WriteCursor.of(this.durable);
  }

  /** @internal */
  get idle(): boolean {
    return this.syncTimer === null && this.queued.length === 0 && this.delivering === null;
  }

  /** @internal records a validated save of the owner's; `done` runs when it is durable. */
  record(write: Write, bytes: number): void {
    this.counters.saves++;
    this.counters.bytesWritten += bytes;
    if (isEmpty(write)) {
      // Nothing to write: it needs no sync of its own, only to complete after the saves ahead of it.
      const tail = this.queued.length > 0 ? this.queued : this.syncTimer !== null ? this.inFlight : this.delivering;
      if (tail === null) write.done(null);
      else tail.push(write);
      return;
    }
    this.queued.push(write);
    if (this.syncTimer === null) this.startSync();
  }

  /** @internal fails a save of an instance whose sync failed, after the failed saves still being told. */
  refuse(done: (error: Error | null) => void, error: StorageError): void {
    // Only the failed batch's callbacks can be running (they all get `error`); join their end.
    if (this.delivering !== null) this.delivering.push({ hardState: null, snapshot: null, logWrite: null, done });
    else done(error);
  }

  private startSync(): void {
    this.inFlight = this.queued;
    this.queued = [];
    const latency = this.latencyMin + (this.latencySpan > 1 ? this.prng.nextInt(this.latencySpan) : 0);
    this.syncTimer = this.scheduler.schedule(latency, this.onSync);
  }

  private completeSync(): void {
    this.syncTimer = null;
    this.counters.syncs++;
    const owner = this.owner;
    assert(owner !== null, () => `a simulated sync completed at t=${this.scheduler.now()}ms with no storage instance open`);
    const incarnation = this.incarnation;
    let batch = this.inFlight;
    this.inFlight = [];
    let error: StorageError | null = null;
    if (this.failNext) {
      this.failNext = false;
      this.counters.failedSyncs++;
      const message = 'injected fsync failure on the simulated disk: these saves may not be durable; the node must stop';
      error = new StorageError(message, 'TSRAFT_STORAGE_IO');
      owner.failure = error;
      // Saves queued behind a failed sync can never be made durable either (as in FileStorage).
      batch = batch.concat(this.queued);
      this.queued = [];
    } else {
      for (let i = 0; i < batch.length; i++) this.apply(batch[i]!);
      // Start the next sync before the callbacks run, so saves they make wait for the one after.
      if (this.queued.length > 0) this.startSync();
    }
    this.delivering = batch;
    try {
      for (let i = 0; i < batch.length; i++) {
        if (this.incarnation !== incarnation) return; // a callback crashed the process
        batch[i]!.done(error);
      }
    } finally {
      this.delivering = null;
    }
    if (this.incarnation === incarnation) owner.drained();
  }

  private apply(write: Write): void {
    const d = this.durable;
    if (write.hardState !== null) d.setHardState(write.hardState);
    if (write.snapshot !== null) d.applySnapshot(write.snapshot);
    if (write.logWrite !== null) d.applyLogWrite(write.logWrite.fromIndex, write.logWrite.entries);
  }
}

export class SimStorage implements CallbackStorage {
  private readonly disk: SimDisk;
  private readonly incarnation: number;
  private phase: 'new' | 'open' | 'closed' = 'new';
  private cursor: WriteCursor | null = null;
  private closing: Promise<void> | null = null;
  private finishClose: (() => void) | null = null;
  /** @internal set by the disk when a sync fails; every later save fails with it. */
  failure: StorageError | null = null;

  /** Use SimDisk.storage(). */
  constructor(disk: SimDisk) {
    this.disk = disk;
    this.incarnation = disk.incarnation;
  }

  private get dead(): boolean {
    return this.incarnation !== this.disk.incarnation;
  }

  open(): Promise<PersistentState> {
    if (this.dead) return new Promise<never>(() => {}); // a dead process observes nothing
    if (this.phase === 'closed' || this.closing !== null) return Promise.reject(closedError());
    if (this.phase !== 'new') return Promise.reject(new Error('SimStorage.open() may be called only once'));
    if (this.disk.owner !== null) {
      this.phase = 'closed';
      return Promise.reject(new StorageError('the simulated disk is locked by another open storage instance', 'TSRAFT_STORAGE_LOCKED'));
    }
    this.disk.owner = this;
    this.phase = 'open';
    this.cursor = this.disk.cursor();
    return Promise.resolve(this.disk.durableState());
  }

  saveWithCallback(
    hardState: HardState | null,
    snapshot: Snapshot | null,
    logWrite: LogWrite | null,
    done: (error: Error | null) => void,
  ): void {
    if (this.dead) return;
    if (this.phase === 'closed' || this.closing !== null) return done(closedError());
    if (this.failure !== null) return this.disk.refuse(done, this.failure);
    if (this.phase !== 'open') return done(new Error('SimStorage.save() called before open()'));
    // A caller breaking the write rules is a bug: throw at once, before anything is recorded.
    this.cursor!.accept(hardState, snapshot, logWrite);
    let bytes = 0;
    if (hardState !== null) bytes += hardStateSize(hardState);
    if (snapshot !== null) bytes += snapshot.data.byteLength + (snapshot.membership === undefined ? 0 : membershipSize(snapshot.membership));
    if (logWrite !== null) for (let i = 0; i < logWrite.entries.length; i++) bytes += entrySize(logWrite.entries[i]!);
    this.disk.record({ hardState, snapshot, logWrite, done }, bytes);
  }

  save(hardState: HardState | null, snapshot: Snapshot | null, logWrite: LogWrite | null): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.saveWithCallback(hardState, snapshot, logWrite, (error) => (error === null ? resolve() : reject(error)));
    });
  }

  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    if (this.dead || this.disk.owner !== this) {
      this.phase = 'closed';
      return (this.closing = Promise.resolve());
    }
    this.closing = new Promise<void>((resolve) => (this.finishClose = resolve));
    this.drained();
    return this.closing;
  }

  /** @internal the disk finished a sync of ours: complete a close that waits for it. */
  drained(): void {
    if (this.finishClose === null || !this.disk.idle) return;
    this.disk.owner = null;
    this.released();
  }

  /** @internal the disk lock is gone (closed, or the process crashed). */
  released(): void {
    this.phase = 'closed';
    this.cursor = null;
    const finish = this.finishClose;
    this.finishClose = null;
    finish?.();
  }
}

const isEmpty = (w: Write): boolean => w.hardState === null && w.snapshot === null && w.logWrite === null;

function closedError(): StorageError {
  return new StorageError('storage is closed', 'TSRAFT_STORAGE_CLOSED');
}
