/**
 * Snapshot bodies that need not sit in memory as one buffer.
 *
 * A snapshot of a large state is as large as the state. Holding it as one Uint8Array costs a full
 * copy of the state for as long as the snapshot is the latest (a leader keeps it to send to
 * followers), and assembling one from chunks costs another. So the core sees a snapshot's bytes only
 * through `SnapshotBody` (a length and a range read), and a runtime backs it with a file: it reads
 * a chunk when a follower needs one and writes an incoming transfer to disk chunk by chunk through
 * a `SnapshotAssembly`. The simulator and tests keep bodies in memory (a Uint8Array is a body).
 */
import { crc32c } from './crc32c.js';
import type { SnapshotBody } from './messages.js';

/** How many bytes a whole-body pass (a checksum, a copy) reads at a time. */
export const SNAPSHOT_PIECE_BYTES = 1 << 20;

/**
 * A snapshot body held as a list of pieces (what an encoder produces without ever growing one
 * buffer). A range inside one piece is a view; a range across pieces is copied.
 */
export class ChunkedSnapshotBody implements SnapshotBody {
  readonly byteLength: number;
  /** starts[i]: the offset of pieces[i] within the body. */
  private readonly starts: number[] = [];

  constructor(private readonly pieces: readonly Uint8Array[]) {
    let offset = 0;
    for (const piece of pieces) {
      this.starts.push(offset);
      offset += piece.byteLength;
    }
    this.byteLength = offset;
  }

  subarray(start: number, end: number): Uint8Array {
    const from = Math.max(0, Math.min(start, this.byteLength));
    const to = Math.max(from, Math.min(end, this.byteLength));
    if (from === to) return new Uint8Array(0);
    let i = this.pieceAt(from);
    const first = this.pieces[i]!;
    const firstStart = this.starts[i]!;
    if (to <= firstStart + first.byteLength) return first.subarray(from - firstStart, to - firstStart);
    const out = new Uint8Array(to - from);
    let written = 0;
    let offset = from;
    while (offset < to) {
      const piece = this.pieces[i]!;
      const pieceStart = this.starts[i]!;
      const take = piece.subarray(offset - pieceStart, Math.min(piece.byteLength, to - pieceStart));
      out.set(take, written);
      written += take.byteLength;
      offset += take.byteLength;
      i++;
    }
    return out;
  }

  /** The index of the piece holding byte `offset` (binary search; empty pieces are skipped). */
  private pieceAt(offset: number): number {
    let lo = 0;
    let hi = this.pieces.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    while (this.pieces[lo]!.byteLength === 0) lo++;
    return lo;
  }
}

/** The whole body as one buffer: a Uint8Array as it is, anything else read into memory. */
export function snapshotBodyBytes(body: SnapshotBody): Uint8Array {
  if (body instanceof Uint8Array) return body;
  return body.subarray(0, body.byteLength);
}

/** Visits the body in pieces of at most `pieceBytes`, in order. */
export function forEachSnapshotPiece(body: SnapshotBody, visit: (piece: Uint8Array) => void, pieceBytes = SNAPSHOT_PIECE_BYTES): void {
  for (let offset = 0; offset < body.byteLength; offset += pieceBytes) {
    visit(body.subarray(offset, Math.min(body.byteLength, offset + pieceBytes)));
  }
}

/** CRC32C of the whole body, read a piece at a time. */
export function snapshotBodyChecksum(body: SnapshotBody): number {
  if (body instanceof Uint8Array) return crc32c(body);
  let crc = 0;
  forEachSnapshotPiece(body, (piece) => {
    crc = crc32c(piece, 0, piece.length, crc);
  });
  return crc;
}

/** Whether two bodies hold the same bytes. */
export function snapshotBodiesEqual(a: SnapshotBody, b: SnapshotBody): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let offset = 0; offset < a.byteLength; offset += SNAPSHOT_PIECE_BYTES) {
    const end = Math.min(a.byteLength, offset + SNAPSHOT_PIECE_BYTES);
    const x = a.subarray(offset, end);
    const y = b.subarray(offset, end);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}

/**
 * Where a follower puts an incoming snapshot transfer as its chunks arrive, in order. The core
 * checks identity, order and checksum; the assembly only keeps bytes. A runtime writes them to a
 * file (not synced: an unfinished transfer is worth nothing after a crash), so a transfer never
 * holds the snapshot in memory.
 */
export interface SnapshotAssembly {
  /** Appends the next chunk (the assembly may keep `bytes` only by copying it). */
  append(bytes: Uint8Array): void;
  /** All chunks arrived: the assembled body. Called at most once, after which nothing is appended. */
  finish(): SnapshotBody;
  /** The transfer was abandoned or refused: release what it holds. */
  discard(): void;
}

/**
 * Makes the assembly for one transfer: the snapshot's index and term, its announced length, and
 * the CRC32C its bytes have (when known in advance: a leader's transfer names it, and the receiver
 * checks the bytes against it before finish(), so the assembly need not compute it again).
 */
export type SnapshotAssemblyFactory = (transfer: {
  readonly index: number;
  readonly term: number;
  readonly byteLength: number;
  readonly checksum?: number;
}) => SnapshotAssembly;

/** The default assembly (simulator, tests, embedding without files): chunks joined in memory. */
export class MemorySnapshotAssembly implements SnapshotAssembly {
  private readonly chunks: Uint8Array[] = [];
  private bytes = 0;

  append(bytes: Uint8Array): void {
    this.chunks.push(bytes.slice());
    this.bytes += bytes.byteLength;
  }

  finish(): SnapshotBody {
    const result = new Uint8Array(this.bytes);
    let offset = 0;
    for (const chunk of this.chunks) {
      result.set(chunk, offset);
      offset += chunk.byteLength;
    }
    this.chunks.length = 0;
    return result;
  }

  discard(): void {
    this.chunks.length = 0;
  }
}
