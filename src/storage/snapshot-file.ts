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
 * - `FileSnapshotAssembly` writes an incoming transfer's chunks to an unnamed file in the data
 *   directory (created, then unlinked at once), so an unfinished transfer leaves nothing behind,
 *   not even after a crash (one in the instant between creation and unlink leaves a file that
 *   recovery removes). A write that fails (a full disk) throws out of the core's `step()`, and
 *   the node stops, as it does when its log cannot be written.
 *
 * Descriptors are released by the garbage collector, so a node holds one per snapshot body still
 * referenced (the latest, and any a transfer or a restore is still reading) plus a few awaiting
 * collection.
 *
 * Reads and writes are synchronous: the core asks for a chunk (64 KiB) or hands one over inside
 * `step()`, and a restore reads a window (1 MiB) at a time; both come from or go to the page cache
 * in microseconds. Nothing here syncs: the assembled body becomes durable when FileStorage copies it
 * into a snapshot file of its own.
 */
import { closeSync, fstatSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
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
  ) {
    closeWhenCollected.register(this, fd);
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

/**
 * The name an incoming transfer's file has for an instant (between its creation and its unlink):
 * a crash in that instant leaves one behind, which recovery removes.
 */
export function isIncomingSnapshotName(name: string): boolean {
  return /^incoming-\d+-\d+-\d+\.partial$/.test(name);
}

/** Receives one transfer into an unnamed file in `dir`. */
export class FileSnapshotAssembly implements SnapshotAssembly {
  private fd: number | null;
  private bytes = 0;

  constructor(dir: string, index: number) {
    const path = join(dir, `incoming-${index}-${process.pid}-${Date.now()}.partial`);
    const fd = openSync(path, 'wx+');
    try {
      unlinkSync(path);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    this.fd = fd;
  }

  append(bytes: Uint8Array): void {
    const fd = this.requireOpen();
    let done = 0;
    while (done < bytes.length) {
      const n = writeSync(fd, bytes, done, bytes.length - done, this.bytes + done);
      if (n <= 0) throw new Error('snapshot transfer: a write made no progress');
      done += n;
    }
    this.bytes += bytes.length;
  }

  finish(): SnapshotBody {
    const fd = this.requireOpen();
    this.fd = null;
    return new FileSnapshotBody(fd, 0, this.bytes);
  }

  discard(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    closeSync(fd);
  }

  private requireOpen(): number {
    if (this.fd === null) throw new Error('snapshot transfer: the assembly was already finished or discarded');
    return this.fd;
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
