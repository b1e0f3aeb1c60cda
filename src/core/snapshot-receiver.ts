import type { LogIndex, Term } from './messages.js';

/**
 * A follower's reassembly of one snapshot sent in chunks. Chunks must arrive in order; anything
 * else is answered with the offset to resume from, so a lost or reordered chunk costs one round
 * trip and never corrupts the result.
 */
export class SnapshotReceiver {
  private incoming: { index: LogIndex; term: Term; chunks: Uint8Array[]; bytes: number; lastChunkTick: number } | null = null;

  /** Bytes held by an unfinished transfer. */
  get bufferedBytes(): number {
    return this.incoming?.bytes ?? 0;
  }

  /**
   * Forgets a transfer that got no chunk for `idleTicks`: its sender is gone (a deposed leader, a
   * stray peer), and what it sent must not stay in memory for good. A sender that comes back is
   * told to start again at offset 0.
   */
  abandonIfIdle(nowTick: number, idleTicks: number): void {
    if (this.incoming !== null && nowTick - this.incoming.lastChunkTick >= idleTicks) this.incoming = null;
  }

  /** Forgets a transfer that the commit index has overtaken. */
  dropIfCovered(commitIndex: LogIndex): void {
    if (this.incoming !== null && this.incoming.index <= commitIndex) this.incoming = null;
  }

  /**
   * Takes one chunk. Returns the whole snapshot when this was its last chunk; otherwise the offset
   * the sender should continue from.
   */
  accept(index: LogIndex, term: Term, offset: number, data: Uint8Array, done: boolean, nowTick = 0): { data: Uint8Array } | { resumeAt: number } {
    const current = this.incoming;
    const sameSnapshot = current !== null && current.index === index && current.term === term;
    if (offset === 0 && !sameSnapshot) {
      this.incoming = { index, term, chunks: [], bytes: 0, lastChunkTick: nowTick };
    } else if (offset === 0 && current !== null && current.bytes > 0) {
      // The first chunk again (a duplicate, or a new leader starting over with the same snapshot):
      // tell the sender where to continue instead of throwing away what arrived.
      return { resumeAt: current.bytes };
    }
    const incoming = this.incoming;
    if (incoming === null || incoming.index !== index || incoming.term !== term || incoming.bytes !== offset) {
      return { resumeAt: incoming !== null && incoming.index === index ? incoming.bytes : 0 };
    }
    incoming.chunks.push(data.slice());
    incoming.bytes += data.length;
    incoming.lastChunkTick = nowTick;
    if (!done) return { resumeAt: incoming.bytes };
    this.incoming = null;
    return { data: concatBytes(incoming.chunks, incoming.bytes) };
  }
}

function concatBytes(chunks: readonly Uint8Array[], totalBytes: number): Uint8Array {
  const result = new Uint8Array(totalBytes);
  let offset = 0;
  for (const chunk of chunks) {
    result.set(chunk, offset);
    offset += chunk.length;
  }
  return result;
}
