import type { Membership } from './membership.js';
import type { LogIndex, Snapshot } from './messages.js';

/** A snapshot as a leader sends it: every chunk carries its length, checksum and configuration. */
export interface SnapshotToSend extends Snapshot {
  /** CRC32C of `data`. */
  readonly checksum: number;
  readonly membership: Membership;
}

/**
 * What a leader knows about one follower's log.
 *
 * - `probe`: the leader does not know where the logs diverge. It keeps at most one AppendEntries in
 *   flight and retries it on each heartbeat, so an unreachable follower costs one RPC per
 *   heartbeat interval rather than one per proposal.
 * - `replicate`: the follower acknowledged `match`; new entries are streamed optimistically and
 *   `next` runs ahead of `match` by what is in flight.
 *
 * - `snapshot`: the follower needs entries we have compacted; the snapshot at `snapshotIndex` is
 *   streamed to it one chunk at a time, from `snapshotOffset` (the bytes it has confirmed).
 *
 * Invariant: 0 <= match < next.
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export interface Progress {
  match: LogIndex;
  next: LogIndex;
  state: ProgressState;
  /** probe and snapshot: a message is outstanding; wait for its answer or the next heartbeat. */
  probeInFlight: boolean;
  /** snapshot only: the snapshot being sent (kept even if the leader compacts again meanwhile). */
  snapshot: SnapshotToSend | null;
  /** snapshot only: which snapshot is being sent, and how much of it the follower holds. */
  snapshotIndex: LogIndex;
  snapshotOffset: number;
  /** snapshot only: the end of what has been sent (at most a window ahead of `snapshotOffset`). */
  snapshotSentOffset: number;
  /** snapshot only: the offset named by the follower's latest answer, where a retry starts. */
  snapshotResumeHint: number;
  /** The highest leaderCommit this follower has been sent with a message that it can act on. */
  commitSent: LogIndex;
  /** When to tell the follower a commit index it has not heard yet (+Infinity: nothing to tell). */
  commitNoticeAtTick: number;
  /** The tick count at which anything was last sent; a heartbeat is due an interval later. */
  lastSentTick: number;
  /** The tick count of the follower's latest possible answer (for leadership transfer). */
  lastHeardTick: number;
  /** The tick count at which entries were last sent, to tell lost sends from ones still in flight. */
  entriesSentAtTick: number;
}

export function newProgress(lastIndex: LogIndex): Progress {
  return {
    match: 0,
    next: lastIndex + 1,
    state: 'probe',
    probeInFlight: false,
    snapshot: null,
    snapshotIndex: 0,
    snapshotOffset: 0,
    snapshotSentOffset: 0,
    snapshotResumeHint: 0,
    commitSent: 0,
    commitNoticeAtTick: Number.POSITIVE_INFINITY,
    lastSentTick: Number.NEGATIVE_INFINITY,
    lastHeardTick: Number.NEGATIVE_INFINITY,
    entriesSentAtTick: Number.NEGATIVE_INFINITY,
  };
}
