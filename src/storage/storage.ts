import type { HardState, LogIndex, PersistentState, Snapshot, SnapshotBody } from '../core/messages.js';
import type { LogWrite } from '../core/ready.js';
import type { SnapshotAssemblyFactory } from '../core/snapshot-body.js';

/**
 * Durable storage for one Raft node, as the runtime uses it. Implementations: FileStorage (a
 * write-ahead log on disk) and MemoryStorage (tests and embedding).
 *
 * Contract:
 * - `open()` recovers and returns everything that was durable when the last process stopped or
 *   died: the hard state, the latest snapshot and the log after it. It is called once, first.
 * - `save()` applies one Ready's durable part, in call order, and resolves only once it is durable
 *   (fsynced). Calls that arrive while a sync is running are written together and share the next
 *   sync (group commit). A rejected save means the node must stop: what it promised may be lost.
 * - The log write semantics are the core's (see LogWrite): drop stored entries at or after
 *   `fromIndex`, then append. A snapshot drops every stored entry it covers.
 * - `close()` waits for pending saves, releases the storage (and its lock), and is idempotent.
 */
export interface Storage {
  open(): Promise<PersistentState>;
  save(hardState: HardState | null, snapshot: Snapshot | null, logWrite: LogWrite | null): Promise<void>;
  close(): Promise<void>;
  /**
   * Optional, for storage that can read a snapshot back from where it wrote it: after a save that
   * wrote the snapshot at `index`, a body reading it (and its CRC32C), which RaftNode keeps instead
   * of the in-memory copy. Null when it has none for `index`.
   */
  storedSnapshot?(index: LogIndex): { readonly body: SnapshotBody; readonly checksum: number } | null;
  /** Optional: where incoming snapshot transfers are assembled (FileStorage: a file in its directory). */
  readonly snapshotAssembly?: SnapshotAssemblyFactory | undefined;
}

/**
 * A Storage that can also report a save's completion through a callback instead of a promise.
 * The simulator's disk implements it so that virtual time runs without microtask boundaries;
 * RaftNode uses it whenever a storage offers it. Same contract as `save()`: `done` is called once,
 * in call order, when the write is durable, or with an error if it may not be (the node must stop).
 * `done` may be called synchronously, from inside `saveWithCallback`.
 */
export interface CallbackStorage extends Storage {
  saveWithCallback(
    hardState: HardState | null,
    snapshot: Snapshot | null,
    logWrite: LogWrite | null,
    done: (error: Error | null) => void,
  ): void;
}

export function hasCallbackSave(storage: Storage): storage is CallbackStorage {
  return typeof (storage as Partial<CallbackStorage>).saveWithCallback === 'function';
}

/** A storage problem a caller can act on: the data directory is locked, or corrupt at a named place. */
export class StorageError extends Error {
  override readonly name = 'StorageError';
  constructor(
    message: string,
    readonly code: 'TSRAFT_STORAGE_LOCKED' | 'TSRAFT_STORAGE_CORRUPT' | 'TSRAFT_STORAGE_CLOSED' | 'TSRAFT_STORAGE_IO',
  ) {
    super(message);
  }
}
