import type { Entry, HardState, LogIndex, Message, Snapshot } from './messages.js';

/**
 * The work a driver must do after feeding the core an input, in this order:
 *
 * 1. Send `messagesBeforePersist` at once: they vouch for nothing this Ready writes.
 * 2. Make `hardState`, `snapshotWrite` and `logWrite` (whichever are set) durable.
 * 3. Only then send `messages`: a vote reply or an acknowledgement of entries must never leave
 *    before the vote or the entries it vouches for are on disk, or a crash could make a node break a
 *    promise it already gave.
 * 4. Apply `snapshotToApply` (if set) and then `committed` to the state machine, in order; serve
 *    `readStates` once the state machine has applied their index.
 * 5. Call `advance(ready)`, which tells the core that all of the above is done.
 *
 * The core, not the driver, decides which messages may leave before the writes are durable: a
 * leader's AppendEntries and InstallSnapshot chunks (the leader counts its own copy of an entry
 * towards commit only once `advance()` says it is durable, thesis §10.2.1), never a vote or an
 * acknowledgement. src/driver/ready-driver.ts is the one loop that honours this and asserts it.
 *
 * A driver may batch several inputs before asking for a Ready; the core merges their effects.
 */
export interface Ready {
  /** Term and vote changed since the last Ready: persist before sending any message. */
  readonly hardState: HardState | null;
  /**
   * A new snapshot to persist, together with `logWrite` and atomically with it: afterwards the
   * durable log holds only entries after `snapshot.index`.
   */
  readonly snapshotWrite: Snapshot | null;
  /** Log changes to persist before sending any message. */
  readonly logWrite: LogWrite | null;
  /** Messages that may be sent before the writes above are durable (a leader's replication). */
  readonly messagesBeforePersist: readonly Message[];
  /** Messages to send once the writes above are durable (votes, acknowledgements, everything else). */
  readonly messages: readonly Message[];
  /** A snapshot received from the leader: replace the application's state with it, before `committed`. */
  readonly snapshotToApply: Snapshot | null;
  /** Committed entries to apply, consecutive and in index order, after the writes above. */
  readonly committed: readonly Entry[];
  /** Confirmed linearizable reads: serve each once the state machine has applied its index. */
  readonly readStates: readonly ReadState[];
}

/** A read confirmed by the leader (see RaftCore.requestRead). */
export interface ReadState {
  readonly id: number;
  readonly index: LogIndex;
}

/**
 * A change to the durable log: drop every stored entry at or after `fromIndex`, then append
 * `entries` (whose first index is `fromIndex`). A pure append has `fromIndex` = old last index + 1.
 */
export interface LogWrite {
  readonly fromIndex: LogIndex;
  readonly entries: readonly Entry[];
}

export function isEmptyReady(ready: Ready): boolean {
  return (
    ready.hardState === null &&
    ready.snapshotWrite === null &&
    ready.logWrite === null &&
    ready.snapshotToApply === null &&
    ready.readStates.length === 0 &&
    ready.messages.length === 0 &&
    ready.messagesBeforePersist.length === 0 &&
    ready.committed.length === 0
  );
}

/** Whether a Ready has anything to make durable before its `messages` may be sent. */
export function hasWrites(ready: Ready): boolean {
  return ready.hardState !== null || ready.snapshotWrite !== null || ready.logWrite !== null;
}
