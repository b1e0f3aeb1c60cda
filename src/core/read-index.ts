import { quorumValue, type Membership } from './membership.js';
import type { LogIndex, NodeId } from './messages.js';
import type { ReadState } from './ready.js';

/**
 * The leader's bookkeeping for linearizable reads (ReadIndex, Raft thesis §6.4). Each read joins
 * the current read round; AppendEntries carry the round number and replies echo it, so an echo of
 * round r from a follower proves that follower still accepted this leader after every read of
 * rounds <= r was registered. A read is released once a majority (the leader included) has echoed
 * its round; the caller decides when the commit index is current enough to read at.
 */
export class ReadIndexQueue {
  /** The current round; sent with every AppendEntries. */
  round = 0;
  /** A heartbeat round should go out to confirm reads registered since the last one. */
  broadcastPending = false;
  private readonly waiting: { id: number; round: number }[] = [];
  private readonly echoes = new Map<NodeId, number>();

  /** Registers a read in a new round. */
  add(id: number): void {
    this.round++;
    this.waiting.push({ id, round: this.round });
    this.broadcastPending = true;
  }

  /** A follower echoed `round`; returns whether that is news. */
  echo(peer: NodeId, round: number): boolean {
    if (round <= (this.echoes.get(peer) ?? 0)) return false;
    this.echoes.set(peer, round);
    return true;
  }

  get size(): number {
    return this.waiting.length;
  }

  /**
   * Removes and returns the reads confirmed by a quorum of `membership` (the leader itself, `self`,
   * has echoed every round; it counts only where it votes).
   */
  release(membership: Membership, self: NodeId, index: LogIndex, learnersCount = false): ReadState[] {
    const echoOf = (id: NodeId): number => (id === self ? Number.POSITIVE_INFINITY : (this.echoes.get(id) ?? 0));
    const confirmed = quorumValue(membership, echoOf, learnersCount);
    let count = 0;
    while (count < this.waiting.length && this.waiting[count]!.round <= confirmed) count++;
    return this.waiting.splice(0, count).map((read) => ({ id: read.id, index }));
  }

  /** Leadership ended: waiting reads can no longer be confirmed. */
  clear(): void {
    this.waiting.length = 0;
    this.echoes.clear();
    this.broadcastPending = false;
  }
}
