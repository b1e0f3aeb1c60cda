import type { HardState, PersistentState, Snapshot } from '../core/messages.js';
import type { LogWrite } from '../core/ready.js';
import { loadState, LogState, WriteCursor } from './log-state.js';
import { StorageError, type Storage } from './storage.js';

/**
 * Storage held in memory, with FileStorage's semantics and checks but no durability: for tests and
 * for embedding tsraft where persistence is someone else's job. Saves apply at once and resolve in
 * call order. It keeps references to the entries and snapshots it is given (as FileStorage keeps
 * the entries of its log); callers must not mutate them.
 *
 * To model a restart, build a new instance from the old one's `state()`.
 */
export class MemoryStorage implements Storage {
  private readonly model: LogState<Snapshot>;
  private readonly cursor: WriteCursor;
  private opened = false;
  private closed = false;

  /** Starts empty (term 0, no vote, no snapshot, no entries) or from `initial`, which is validated. */
  constructor(initial?: PersistentState) {
    if (initial === undefined) {
      this.model = new LogState<Snapshot>();
      this.cursor = new WriteCursor();
    } else {
      ({ model: this.model, cursor: this.cursor } = loadState(initial));
    }
  }

  open(): Promise<PersistentState> {
    if (this.closed) return Promise.reject(closedError());
    if (this.opened) return Promise.reject(new Error('MemoryStorage.open() may be called only once'));
    this.opened = true;
    return Promise.resolve(this.state());
  }

  save(hardState: HardState | null, snapshot: Snapshot | null, logWrite: LogWrite | null): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    if (!this.opened) return Promise.reject(new Error('MemoryStorage.save() called before open()'));
    try {
      this.cursor.accept(hardState, snapshot, logWrite);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (hardState !== null) this.model.setHardState(hardState);
    if (snapshot !== null) this.model.applySnapshot(snapshot);
    if (logWrite !== null) this.model.applyLogWrite(logWrite.fromIndex, logWrite.entries);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  /** Everything saved so far (also after close): what a restarted node would open. */
  state(): PersistentState {
    return { hardState: this.model.hardState, snapshot: this.model.snapshot, entries: this.model.entries.slice() };
  }
}

function closedError(): StorageError {
  return new StorageError('storage is closed', 'TSRAFT_STORAGE_CLOSED');
}
