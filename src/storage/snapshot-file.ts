/**
 * Snapshot bodies on disk: what lets a node hold a large state's snapshot without holding it in
 * memory (see core/snapshot-body.ts).
 *
 * - `FileSnapshotBody` reads a range of a snapshot file when asked (a follower's next chunk, a
 *   window of a restore). It keeps its file descriptor open, so the bytes stay readable after
 *   FileStorage replaces the file with a newer snapshot and unlinks it: a transfer that started
 *   with the old snapshot finishes with it. The descriptor is closed when the body is garbage
 *   collected (nobody can read through a body nobody holds), never earlier, so a descriptor
 *   number is never reused under a live body.
 * - `FileSnapshotAssembly` writes an incoming transfer's chunks to a file in the data directory,
 *   after a gap for a snapshot file's header (with a running CRC unless the transfer named its
 *   checksum); FileStorage then adopts the file as the snapshot file (writes the header, syncs,
 *   renames) instead of copying the state once more. The KV store writes its own snapshots the
 *   same way, a piece at a time as it encodes them. An abandoned transfer's file is removed at
 *   once, one a crash interrupted by recovery. A write that fails (a full disk) throws; the
 *   core's receiver then drops the transfer (`snapshot-not-kept`) and the node goes on.
 *
 * Descriptors are released by the garbage collector, so a node holds one per snapshot body still
 * referenced (the latest, and any a transfer or a restore is still reading) plus a few awaiting
 * collection.
 *
 * Reads and writes are synchronous: the core asks for a chunk (1 MiB in the runtime) or hands one
 * over inside `step()`, and a restore reads a window (1 MiB) at a time; both come from or go to
 * the page cache in about a millisecond. Nothing here syncs: an assembled body becomes durable when
 * FileStorage adopts it (header, fdatasync, rename).
 */
import { closeSync, fstatSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { SnapshotBody } from '../core/messages.js';
import { SNAPSHOT_PIECE_BYTES, type SnapshotAssembly } from '../core/snapshot-body.js';
import { crc32c } from './crc32c.js';
import { writeAll } from './fs-util.js';

const closeWhenCollected = new FinalizationRegistry<number>((fd) => {
  try {
    closeSync(fd);
  } catch {
    // Already closed (the process is shutting down): nothing to release.
  }
});

/** `byteLength` bytes of an open file, from `start` on. */
export class FileSnapshotBody implements SnapshotBody {
  constructor(
    private readonly fd: number,
    private readonly start: number,
    readonly byteLength: number,
    /** Close the descriptor when the body is collected (a subclass that releases more says false). */
    closeWhenDone = true,
  ) {
    if (closeWhenDone) closeWhenCollected.register(this, fd);
  }

  /** The body of the snapshot file at `path` (data after a header of `headerBytes`), `byteLength` long. */
  static open(path: string, headerBytes: number, byteLength: number): FileSnapshotBody {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < headerBytes + byteLength) throw new Error(`${path} holds ${size} bytes, ${headerBytes + byteLength} expected`);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    return new FileSnapshotBody(fd, headerBytes, byteLength);
  }

  subarray(start: number, end: number): Uint8Array {
    const from = Math.max(0, Math.min(start, this.byteLength));
    const to = Math.max(from, Math.min(end, this.byteLength));
    const out = new Uint8Array(to - from);
    let done = 0;
    while (done < out.length) {
      const n = readSync(this.fd, out, done, out.length - done, this.start + from + done);
      if (n <= 0) throw new Error(`snapshot file ended ${out.length - done} bytes early (reading ${from}..${to} of ${this.byteLength})`);
      done += n;
    }
    return out;
  }
}

/** An incoming transfer's file, until FileStorage adopts it as a snapshot file (or recovery removes it). */
export function isIncomingSnapshotName(name: string): boolean {
  return /^incoming-\d+-\d+-\d+\.partial$/.test(name);
}

let incomingSeq = 0;

/** What the garbage collector releases for an incoming body: its descriptor, and its file unless adopted. */
interface IncomingHeld {
  readonly fd: number;
  readonly path: string;
  adopted: boolean;
}

const releaseIncoming = new FinalizationRegistry<IncomingHeld>((held) => {
  try {
    closeSync(held.fd);
    if (!held.adopted) unlinkSync(held.path);
  } catch {
    // Gone already (a restart's recovery removed it): nothing to release.
  }
});

/**
 * A completed transfer in its file, after a gap of `headerBytes` left for a snapshot file's header:
 * FileStorage adopts it as the snapshot file (header written, synced, renamed into place) instead
 * of copying a large state once more. One FileStorage never adopts another's.
 */
export class IncomingSnapshotBody extends FileSnapshotBody {
  constructor(
    fd: number,
    headerBytes: number,
    byteLength: number,
    /** CRC32C of the body, computed as it was written. */
    readonly checksum: number,
    private readonly held: IncomingHeld,
  ) {
    super(fd, headerBytes, byteLength, false);
    releaseIncoming.register(this, held);
  }

  get dir(): string {
    return dirname(this.held.path);
  }

  /** Takes the file for a snapshot file: its descriptor and path, or null if it was taken before. */
  adopt(): { readonly fd: number; readonly path: string } | null {
    if (this.held.adopted) return null;
    this.held.adopted = true;
    return { fd: this.held.fd, path: this.held.path };
  }
}

/**
 * Receives one transfer into a file in `dir`, written from `headerBytes` on (see
 * IncomingSnapshotBody). A transfer abandoned or refused removes its file at once; a completed
 * one that fails validation, when its body is collected; a crash leaves it for recovery.
 */
export class FileSnapshotAssembly implements SnapshotAssembly {
  private readonly held: IncomingHeld;
  private open = true;
  private bytes = 0;
  private crc = 0;

  constructor(
    dir: string,
    index: number,
    private readonly headerBytes: number,
    /** The CRC32C the bytes will have, when the caller knows it and checks it (not computed again then). */
    private readonly knownChecksum?: number,
  ) {
    const path = join(dir, `incoming-${index}-${process.pid}-${++incomingSeq}.partial`);
    this.held = { fd: openSync(path, 'wx+'), path, adopted: false };
  }

  append(bytes: Uint8Array): void {
    this.requireOpen();
    let done = 0;
    while (done < bytes.length) {
      const n = writeSync(this.held.fd, bytes, done, bytes.length - done, this.headerBytes + this.bytes + done);
      if (n <= 0) throw new Error('snapshot transfer: a write made no progress');
      done += n;
    }
    if (this.knownChecksum === undefined) this.crc = crc32c(bytes, 0, bytes.length, this.crc);
    this.bytes += bytes.length;
  }

  finish(): SnapshotBody {
    this.requireOpen();
    this.open = false;
    return new IncomingSnapshotBody(this.held.fd, this.headerBytes, this.bytes, this.knownChecksum ?? this.crc, this.held);
  }

  discard(): void {
    if (!this.open) return;
    this.open = false;
    closeSync(this.held.fd);
    unlinkSync(this.held.path);
  }

  private requireOpen(): void {
    if (!this.open) throw new Error('snapshot transfer: the assembly was already finished or discarded');
  }
}

/**
 * Writes `body` to `fh` at `position`, a piece at a time, and returns the data's CRC32C: a snapshot
 * of any size is written with one piece in memory beyond what the body itself holds.
 */
export async function writeSnapshotBody(fh: FileHandle, body: SnapshotBody, position: number): Promise<number> {
  let crc = 0;
  for (let offset = 0; offset < body.byteLength; offset += SNAPSHOT_PIECE_BYTES) {
    const piece = body.subarray(offset, Math.min(body.byteLength, offset + SNAPSHOT_PIECE_BYTES));
    crc = crc32c(piece, 0, piece.length, crc);
    await writeAll(fh, piece, position + offset);
  }
  return crc;
}

/** CRC32C of `length` bytes of `fh` from `position`, read a piece at a time. */
export async function checksumFileRange(fh: FileHandle, position: number, length: number): Promise<number> {
  let crc = 0;
  const piece = new Uint8Array(Math.min(SNAPSHOT_PIECE_BYTES, Math.max(1, length)));
  for (let offset = 0; offset < length; ) {
    const want = Math.min(piece.length, length - offset);
    const { bytesRead } = await fh.read(piece, 0, want, position + offset);
    if (bytesRead <= 0) throw new Error(`file ended ${length - offset} bytes early`);
    crc = crc32c(piece, 0, bytesRead, crc);
    offset += bytesRead;
  }
  return crc;
}
