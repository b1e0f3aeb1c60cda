import type { LogIndex } from './messages.js';

/**
 * What a leader knows about one follower's log.
 *
 * - `probe`: the leader does not know where the logs diverge. It keeps at most one AppendEntries in
 *   flight and retries it on each heartbeat, so an unreachable follower costs one RPC per
 *   heartbeat interval rather than one per proposal.
 * - `replicate`: the follower acknowledged `match`; new entries are streamed optimistically and
 *   `next` runs ahead of `match` by what is in flight.
 *
 * Invariant: 0 <= match < next.
 */
export type ProgressState = 'probe' | 'replicate';

export interface Progress {
  match: LogIndex;
  next: LogIndex;
  state: ProgressState;
  /** probe only: an AppendEntries is outstanding; wait for its answer or the next heartbeat. */
  probeInFlight: boolean;
  /** The highest leaderCommit this follower has been sent with a message that it can act on. */
  commitSent: LogIndex;
  /** The tick count at which anything was last sent; a heartbeat is due an interval later. */
  lastSentTick: number;
  /** The tick count at which entries were last sent, to tell lost sends from ones still in flight. */
  entriesSentAtTick: number;
}

export function newProgress(lastIndex: LogIndex): Progress {
  return {
    match: 0,
    next: lastIndex + 1,
    state: 'probe',
    probeInFlight: false,
    commitSent: 0,
    lastSentTick: Number.NEGATIVE_INFINITY,
    entriesSentAtTick: Number.NEGATIVE_INFINITY,
  };
}
