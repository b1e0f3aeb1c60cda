import { assert } from '../core/assert.js';
import type { Entry, HardState, PersistentState, Snapshot } from '../core/messages.js';
import { NO_VOTE } from '../core/messages.js';
import type { LogWrite } from '../core/ready.js';
import { decodeEntry, decodeHardState, encodeEntry, encodeHardState, membershipSize, varintSize } from '../codec/index.js';

/**
 * How writes become durable.
 * - `immediate`: every save is durable at once, like 6.824's Persister.
 * - `on-sync`: saves are held back until `sync()`; a crash loses whatever was not synced. A driver
 *   that sends a message before syncing the state it vouches for is caught by this mode.
 */
export type DurabilityMode = 'immediate' | 'on-sync';

interface DiskWrite {
  readonly hardState: HardState | null;
  readonly snapshot: Snapshot | null;
  readonly logWrite: LogWrite | null;
}

/**
 * The simulated disk of one server, the equivalent of 6.824's Persister: it holds the durable
 * state a restarted server starts from. Writes are applied as the core's Ready describes them
 * (hard state, snapshot, log suffix) and stored encoded with the project's codec, so a restart
 * proves the durable state round-trips and the raft-state size is what a real disk would hold.
 * Configuration entries round-trip through the codec like commands; the snapshot (with its
 * configuration) is kept as given, since the core never mutates what it hands over.
 *
 * `copy()` gives the crash semantics of the 6.824 harness: a crashed instance keeps writing to the
 * old object, which nobody reads again, while its successor starts from a copy of what was durable.
 */
export class Persister {
  readonly mode: DurabilityMode;
  private hardState: Uint8Array = encodeHardState({ term: 0, votedFor: NO_VOTE });
  private snapshot: Snapshot | null = null;
  /** The encoded durable log after the snapshot: entries[0] has index snapshotIndex + 1. */
  private entries: Uint8Array[] = [];
  private entriesBytes = 0;
  private writes = 0;
  private pending: DiskWrite[] = [];

  constructor(mode: DurabilityMode = 'immediate') {
    this.mode = mode;
  }

  /** Records one Ready's durable part; in `on-sync` mode it becomes durable at the next sync(). */
  save(hardState: HardState | null, snapshot: Snapshot | null, logWrite: LogWrite | null): void {
    if (hardState === null && snapshot === null && logWrite === null) return;
    const write: DiskWrite = { hardState, snapshot, logWrite };
    if (this.mode === 'immediate') this.apply(write);
    else this.pending.push(write);
  }

  /** Makes every saved write durable (fsync). */
  sync(): void {
    for (const write of this.pending) this.apply(write);
    this.pending = [];
  }

  get unsyncedWrites(): number {
    return this.pending.length;
  }

  /** The durable state a restarted server begins with, or undefined if nothing was ever made durable. */
  read(): PersistentState | undefined {
    if (this.writes === 0) return undefined;
    const entries: Entry[] = this.entries.map((bytes) => decodeEntry(bytes));
    return { hardState: decodeHardState(this.hardState), snapshot: this.snapshot, entries };
  }

  /**
   * Bytes of the durable raft state (hard state, snapshot boundary and configuration, log), as
   * 6.824's RaftStateSize(): the codec's PersistentState encoding without the snapshot data. The
   * snapshot's configuration counts, like its index and term: it is raft's state, not the service's.
   */
  raftStateSize(): number {
    const membership = this.snapshot?.membership;
    return (
      this.hardState.length +
      varintSize(this.snapshot?.index ?? 0) +
      varintSize(this.snapshot?.term ?? 0) +
      varintSize(this.entries.length) +
      this.entriesBytes +
      1 + // whether a configuration follows
      (membership === undefined ? 0 : membershipSize(membership))
    );
  }

  /** Bytes of the durable snapshot (6.824 SnapshotSize()). */
  snapshotSize(): number {
    return this.snapshot?.data.byteLength ?? 0;
  }

  /** The durable snapshot, if any. */
  readSnapshot(): Snapshot | null {
    return this.snapshot;
  }

  /** An independent copy of what is durable: unsynced writes are lost, as in a crash. */
  copy(): Persister {
    const twin = new Persister(this.mode);
    twin.hardState = this.hardState;
    twin.snapshot = this.snapshot;
    twin.entries = this.entries.slice();
    twin.entriesBytes = this.entriesBytes;
    twin.writes = this.writes;
    return twin;
  }

  private apply(write: DiskWrite): void {
    const { hardState, snapshot, logWrite } = write;
    if (hardState !== null) {
      const durableTerm = decodeHardState(this.hardState).term;
      assert(hardState.term >= durableTerm, () => `durable term would go back from ${durableTerm} to ${hardState.term}`);
      this.hardState = encodeHardState(hardState);
    }
    if (snapshot !== null) this.applySnapshot(snapshot);
    if (logWrite !== null) this.applyLogWrite(logWrite);
    this.writes++;
  }

  private get snapshotIndex(): number {
    return this.snapshot?.index ?? 0;
  }

  private applySnapshot(snapshot: Snapshot): void {
    assert(snapshot.index > this.snapshotIndex, () => `snapshot ${snapshot.index} does not follow ${this.snapshotIndex}`);
    const drop = Math.min(snapshot.index - this.snapshotIndex, this.entries.length);
    for (let i = 0; i < drop; i++) this.entriesBytes -= this.entries[i]!.length;
    this.entries = this.entries.slice(drop);
    this.snapshot = snapshot;
  }

  private applyLogWrite(logWrite: LogWrite): void {
    const keep = logWrite.fromIndex - 1 - this.snapshotIndex;
    assert(keep >= 0, () => `log write from ${logWrite.fromIndex} reaches into the snapshot at ${this.snapshotIndex}`);
    assert(
      keep <= this.entries.length,
      () => `log write from ${logWrite.fromIndex} leaves a gap after ${this.snapshotIndex + this.entries.length}`,
    );
    for (let i = keep; i < this.entries.length; i++) this.entriesBytes -= this.entries[i]!.length;
    this.entries.length = keep;
    for (const entry of logWrite.entries) {
      const bytes = encodeEntry(entry);
      this.entries.push(bytes);
      this.entriesBytes += bytes.length;
    }
  }
}
