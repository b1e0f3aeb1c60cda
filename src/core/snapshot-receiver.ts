import { crc32c } from './crc32c.js';
import type { InstallSnapshot, LogIndex, SnapshotBody, Term } from './messages.js';
import { MemorySnapshotAssembly, type SnapshotAssembly, type SnapshotAssemblyFactory } from './snapshot-body.js';

/** Which snapshot a chunk belongs to: every field must match for chunks to be joined. */
interface TransferIdentity {
  readonly index: LogIndex;
  readonly term: Term;
  readonly snapshotBytes: number;
  readonly checksum: number;
}

/** What the follower does with one chunk. */
export type ChunkOutcome =
  /** The whole snapshot arrived and its checksum holds. */
  | { readonly kind: 'complete'; readonly data: SnapshotBody }
  /** Not complete yet (or out of order): the sender should continue from `resumeAt`. */
  | { readonly kind: 'resume'; readonly resumeAt: number }
  /** Refused: the transfer is too large, or its bytes do not match its checksum. */
  | { readonly kind: 'refused'; readonly reason: 'snapshot-too-large' | 'snapshot-checksum-mismatch' | 'snapshot-not-kept' };

/**
 * A follower's reassembly of one snapshot sent in chunks. Chunks must arrive in order; anything
 * else is answered with the offset to resume from, so a lost or reordered chunk costs one round
 * trip and never corrupts the result. A transfer is identified by (index, term, total length,
 * checksum): a chunk of any other transfer never joins it, and the assembled bytes are checked
 * against the checksum (kept up to date chunk by chunk) before anyone sees them. The bytes go to
 * a `SnapshotAssembly` (in memory by default; a runtime's writes them to a file), bounded by
 * `maxBytes` (the announced total, checked before anything is kept) and released when a transfer
 * is refused, is replaced, is overtaken by the commit index, or goes idle.
 */
export class SnapshotReceiver {
  private incoming: { id: TransferIdentity; assembly: SnapshotAssembly; bytes: number; crc: number; lastChunkTick: number } | null = null;

  constructor(
    private readonly maxBytes: number,
    private readonly makeAssembly: SnapshotAssemblyFactory = () => new MemorySnapshotAssembly(),
  ) {}

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
    if (this.incoming !== null && nowTick - this.incoming.lastChunkTick >= idleTicks) this.release();
  }

  /** Forgets a transfer that the commit index has overtaken. */
  dropIfCovered(commitIndex: LogIndex): void {
    if (this.incoming !== null && this.incoming.id.index <= commitIndex) this.release();
  }

  private release(): void {
    this.incoming?.assembly.discard();
    this.incoming = null;
  }

  /**
   * Takes one chunk (already checked to be well formed: see validate.ts). An assembly that cannot
   * keep it (a runtime's file: a full disk, no descriptors left) refuses the transfer and releases
   * it: a sender announcing more than the disk holds costs a dropped transfer, never the node.
   */
  accept(chunk: InstallSnapshot, nowTick = 0): ChunkOutcome {
    try {
      return this.acceptChunk(chunk, nowTick);
    } catch {
      try {
        this.release();
      } catch {
        // Releasing what could not be kept failed too: the transfer is forgotten all the same.
      }
      this.incoming = null;
      return { kind: 'refused', reason: 'snapshot-not-kept' };
    }
  }

  private acceptChunk(chunk: InstallSnapshot, nowTick: number): ChunkOutcome {
    const id: TransferIdentity = {
      index: chunk.lastIncludedIndex,
      term: chunk.lastIncludedTerm,
      snapshotBytes: chunk.snapshotBytes,
      checksum: chunk.checksum,
    };
    if (id.snapshotBytes > this.maxBytes) return { kind: 'refused', reason: 'snapshot-too-large' };
    const current = this.incoming;
    const sameTransfer = current !== null && sameIdentity(current.id, id);
    if (chunk.offset === 0 && !sameTransfer) {
      this.release();
      const assembly = this.makeAssembly({ index: id.index, term: id.term, byteLength: id.snapshotBytes, checksum: id.checksum });
      this.incoming = { id, assembly, bytes: 0, crc: 0, lastChunkTick: nowTick };
    } else if (chunk.offset === 0 && current !== null && current.bytes > 0) {
      // The first chunk again (a duplicate, or a new leader starting over with the same snapshot):
      // tell the sender where to continue instead of throwing away what arrived.
      return { kind: 'resume', resumeAt: current.bytes };
    }
    const incoming = this.incoming;
    if (incoming === null || !sameIdentity(incoming.id, id) || incoming.bytes !== chunk.offset) {
      return { kind: 'resume', resumeAt: incoming !== null && sameIdentity(incoming.id, id) ? incoming.bytes : 0 };
    }
    incoming.assembly.append(chunk.data);
    incoming.crc = crc32c(chunk.data, 0, chunk.data.length, incoming.crc);
    incoming.bytes += chunk.data.length;
    incoming.lastChunkTick = nowTick;
    if (!chunk.done) return { kind: 'resume', resumeAt: incoming.bytes };
    this.incoming = null;
    if (incoming.crc !== id.checksum) {
      incoming.assembly.discard();
      return { kind: 'refused', reason: 'snapshot-checksum-mismatch' };
    }
    return { kind: 'complete', data: incoming.assembly.finish() };
  }
}

function sameIdentity(a: TransferIdentity, b: TransferIdentity): boolean {
  return a.index === b.index && a.term === b.term && a.snapshotBytes === b.snapshotBytes && a.checksum === b.checksum;
}
