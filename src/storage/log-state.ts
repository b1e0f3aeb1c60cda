/**
 * The durable-state model shared by the Storage implementations: what a sequence of saves leaves
 * behind, with exactly the core's write semantics (see LogWrite and Ready):
 *
 * - a hard state replaces the previous one (its term never goes back);
 * - a snapshot (index strictly above the previous snapshot's) drops every stored entry it covers,
 *   i.e. the log's first min(index - previous index, length) entries; one beyond the log drops all;
 * - a log write drops every entry at or after `fromIndex` and appends its entries, which must
 *   start at `fromIndex`; it may neither reach into the snapshot nor leave a gap.
 * Within one save the parts apply in that order: hard state, snapshot, log write.
 */
import { assert } from '../core/assert.js';
import type { Membership } from '../core/membership.js';
import type { Entry, HardState, LogIndex, PersistentState, Snapshot, Term } from '../core/messages.js';
import { NO_VOTE } from '../core/messages.js';
import type { LogWrite } from '../core/ready.js';
import { entrySize, hardStateSize, membershipSize } from '../codec/index.js';

/**
 * What the model needs of a snapshot: where it ends, and the configuration in effect there, which
 * every implementation must hand back with it (the entries that said it are gone). Implementations
 * add their own fields.
 */
export interface SnapshotRef {
  readonly index: LogIndex;
  readonly term: Term;
  /** Snapshot.membership: absent only for snapshots saved without one (older data). */
  readonly membership?: Membership;
}

export const INITIAL_HARD_STATE: HardState = { term: 0, votedFor: NO_VOTE };

/** The hard state, the latest snapshot and the log after it. */
export class LogState<S extends SnapshotRef> {
  hardState: HardState = INITIAL_HARD_STATE;
  snapshot: S | null = null;
  /** The log after the snapshot: entries[i].index === snapshotIndex + 1 + i. */
  entries: Entry[] = [];

  get snapshotIndex(): LogIndex {
    return this.snapshot?.index ?? 0;
  }

  get lastIndex(): LogIndex {
    return this.snapshotIndex + this.entries.length;
  }

  reset(): void {
    this.hardState = INITIAL_HARD_STATE;
    this.snapshot = null;
    this.entries = [];
  }

  setHardState(hardState: HardState): void {
    const from = this.hardState.term;
    assert(hardState.term >= from, () => `hard state term would go back from ${from} to ${hardState.term}`);
    this.hardState = hardState;
  }

  applySnapshot(snapshot: S): void {
    const previous = this.snapshotIndex;
    assert(snapshot.index > previous, () => `snapshot at ${snapshot.index} does not follow the snapshot at ${previous}`);
    const drop = Math.min(snapshot.index - previous, this.entries.length);
    if (drop === this.entries.length) this.entries = [];
    else if (drop > 0) this.entries = this.entries.slice(drop);
    this.snapshot = snapshot;
  }

  /** The first half of a log write: drops every entry at or after fromIndex. */
  truncate(fromIndex: LogIndex): void {
    const keep = fromIndex - 1 - this.snapshotIndex;
    assert(keep >= 0, () => `log write from ${fromIndex} reaches into the snapshot at ${this.snapshotIndex}`);
    assert(keep <= this.entries.length, () => `log write from ${fromIndex} leaves a gap after ${this.lastIndex}`);
    if (keep < this.entries.length) this.entries.length = keep;
  }

  applyLogWrite(fromIndex: LogIndex, entries: readonly Entry[]): void {
    this.truncate(fromIndex);
    for (let i = 0; i < entries.length; i++) this.entries.push(entries[i]!);
  }
}

/**
 * Checks saves against the ones before them, before anything is queued or written, so a caller's
 * bug (a term going back, a gap in the log, an unencodable field) rejects that save and nothing
 * else. It tracks only the numbers the checks need, so it can run ahead of the writes.
 */
export class WriteCursor {
  private term: Term = 0;
  private snapshotIndex: LogIndex = 0;
  private lastIndex: LogIndex = 0;

  static of(state: LogState<SnapshotRef>): WriteCursor {
    const cursor = new WriteCursor();
    cursor.term = state.hardState.term;
    cursor.snapshotIndex = state.snapshotIndex;
    cursor.lastIndex = state.lastIndex;
    return cursor;
  }

  /** Throws (InvariantError for broken write rules, Error for malformed fields) or advances. */
  accept(hardState: HardState | null, snapshot: Snapshot | null, logWrite: LogWrite | null): void {
    let snapshotIndex = this.snapshotIndex;
    let lastIndex = this.lastIndex;
    if (hardState !== null) {
      hardStateSize(hardState);
      assert(hardState.term >= this.term, () => `hard state term would go back from ${this.term} to ${hardState.term}`);
    }
    if (snapshot !== null) {
      if (!Number.isSafeInteger(snapshot.index) || snapshot.index < 1) throw new Error(`snapshot.index must be >= 1, got ${snapshot.index}`);
      if (!Number.isSafeInteger(snapshot.term) || snapshot.term < 0) throw new Error(`snapshot.term must be >= 0, got ${snapshot.term}`);
      if (!isSnapshotBody(snapshot.data)) throw new Error('snapshot.data must be a Uint8Array or a SnapshotBody (byteLength and subarray)');
      // Encodable now, or FileStorage would fail its whole batch (and stop the node) when writing it.
      if (snapshot.membership !== undefined) membershipSize(snapshot.membership);
      assert(snapshot.index > snapshotIndex, () => `snapshot at ${snapshot.index} does not follow the snapshot at ${snapshotIndex}`);
      lastIndex = Math.max(lastIndex, snapshot.index);
      snapshotIndex = snapshot.index;
    }
    if (logWrite !== null) {
      const from = logWrite.fromIndex;
      if (!Number.isSafeInteger(from)) throw new Error(`logWrite.fromIndex must be an integer, got ${from}`);
      assert(from > snapshotIndex, () => `log write from ${from} reaches into the snapshot at ${snapshotIndex}`);
      assert(from <= lastIndex + 1, () => `log write from ${from} leaves a gap after ${lastIndex}`);
      const entries = logWrite.entries;
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i]!;
        entrySize(entry);
        assert(entry.index === from + i, () => `log write from ${from}: entry ${i} has index ${entry.index}`);
      }
      lastIndex = from - 1 + entries.length;
    }
    if (hardState !== null) this.term = hardState.term;
    this.snapshotIndex = snapshotIndex;
    this.lastIndex = lastIndex;
  }
}

/** Loads a PersistentState into a model (validating it as a sequence of saves would be). */
export function loadState(state: PersistentState): { model: LogState<Snapshot>; cursor: WriteCursor } {
  const cursor = new WriteCursor();
  const model = new LogState<Snapshot>();
  const fromIndex = (state.snapshot?.index ?? 0) + 1;
  cursor.accept(state.hardState, state.snapshot, { fromIndex, entries: state.entries });
  model.setHardState(state.hardState);
  if (state.snapshot !== null) model.applySnapshot(state.snapshot);
  model.applyLogWrite(fromIndex, state.entries);
  return { model, cursor };
}

function isSnapshotBody(data: unknown): boolean {
  if (data instanceof Uint8Array) return true;
  const body = data as { byteLength?: unknown; subarray?: unknown } | null;
  return typeof body === 'object' && body !== null && Number.isSafeInteger(body.byteLength) && (body.byteLength as number) >= 0 && typeof body.subarray === 'function';
}
