import type { HardState, LogIndex, PersistentState, Snapshot } from '../core/messages.js';
import type { LogWrite } from '../core/ready.js';
import { StorageError, type Storage } from './storage.js';

/**
 * A storage whose fsync fails after a number of saves, as a dying disk's would: the save rejects
 * with `TSRAFT_STORAGE_IO` and so does every later one. For proving, on real processes, that a
 * node stops on a failed fsync and that its supervisor restarts it (`TSRAFT_FAILPOINT`, see
 * docs/TESTING.md); the simulator has its own (SimDisk.failNextSync).
 */
export class FailingStorage implements Storage {
  private saves = 0;

  constructor(
    private readonly inner: Storage,
    private readonly failAfterSaves: number,
  ) {}

  open(): Promise<PersistentState> {
    return this.inner.open();
  }

  async save(hardState: HardState | null, snapshot: Snapshot | null, logWrite: LogWrite | null): Promise<void> {
    this.saves++;
    if (this.saves > this.failAfterSaves) {
      throw new StorageError(`injected fsync failure after ${this.failAfterSaves} saves (TSRAFT_FAILPOINT)`, 'TSRAFT_STORAGE_IO');
    }
    await this.inner.save(hardState, snapshot, logWrite);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  storedSnapshot(index: LogIndex): ReturnType<NonNullable<Storage['storedSnapshot']>> {
    return this.inner.storedSnapshot?.(index) ?? null;
  }

  get snapshotAssembly(): Storage['snapshotAssembly'] {
    return this.inner.snapshotAssembly;
  }
}

/**
 * Parses a failpoint spec for node `id`: `fsync-error:node=<id>:after=<saves>`. Returns the number
 * of saves after which fsync fails for this node, null if the spec names another node or is
 * empty; throws on a spec that does not parse (a typo must not silently disable a test).
 */
export function fsyncFailpointFor(spec: string | undefined, id: number): number | null {
  if (spec === undefined || spec.trim() === '') return null;
  const m = /^fsync-error:node=(\d+):after=(\d+)$/.exec(spec.trim());
  if (m === null) throw new Error(`TSRAFT_FAILPOINT: expected fsync-error:node=<id>:after=<saves>, got ${JSON.stringify(spec)}`);
  return Number(m[1]) === id ? Number(m[2]) : null;
}
