/**
 * A ByteSource over a SnapshotBody, for decoding a snapshot that is not one buffer in memory (a
 * runtime keeps a large one in a file). It reads the body a window at a time, so decoding holds
 * one window plus the byte string being read, never the whole body. Results, errors and offsets
 * are ByteReader's for the same bytes: a decoder cannot tell which one it reads from.
 */
import type { SnapshotBody } from '../core/messages.js';
import { SNAPSHOT_PIECE_BYTES } from '../core/snapshot-body.js';
import { allocBytes, charString, CodecError, type ByteSource } from './codec.js';

const MAX_VARINT_BYTES = 8;
const EMPTY = new Uint8Array(0);

export class SnapshotBodyReader implements ByteSource {
  private pos = 0;
  /** The body's bytes [windowStart, windowStart + window.length). */
  private window: Uint8Array = EMPTY;
  private windowStart = 0;
  private readonly length: number;

  constructor(
    private readonly body: SnapshotBody,
    private readonly windowBytes = SNAPSHOT_PIECE_BYTES,
  ) {
    if (!Number.isSafeInteger(windowBytes) || windowBytes < 1) throw new RangeError(`windowBytes must be a positive integer, got ${String(windowBytes)}`);
    this.length = body.byteLength;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.length - this.pos;
  }

  /** The body's byte at `at` (< length), moving the window there if it is outside it. */
  private byteAt(at: number): number {
    let i = at - this.windowStart;
    if (i < 0 || i >= this.window.length) {
      this.load(at, Math.min(this.length, at + this.windowBytes));
      i = 0;
    }
    return this.window[i]!;
  }

  private load(start: number, end: number): void {
    // Let the old window go before the next one is read, so that only one is held at a time.
    this.window = EMPTY;
    this.window = this.read(start, end);
    this.windowStart = start;
  }

  /** body.subarray, checked: a body that returns the wrong length is broken, not malformed, so this is no CodecError. */
  private read(start: number, end: number): Uint8Array {
    const bytes = this.body.subarray(start, end);
    if (bytes.length !== end - start) throw new Error(`snapshot body returned ${bytes.length} bytes for [${start}, ${end}) of ${this.length}`);
    return bytes;
  }

  readByte(what = 'byte'): number {
    if (this.pos >= this.length) throw new CodecError(`truncated input: expected ${what} at offset ${this.pos}`);
    return this.byteAt(this.pos++);
  }

  readVarint(): number {
    const start = this.pos;
    const w = start - this.windowStart;
    if (w >= 0 && w < this.window.length && this.window[w]! < 0x80) {
      this.pos = start + 1;
      return this.window[w]!;
    }
    let pos = start;
    let result = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (pos >= this.length) throw new CodecError(`truncated varint at offset ${start}`);
      const b = this.byteAt(pos++);
      // The 8th byte carries bits 49..55; only 4 of them fit below 2^53.
      if (i === MAX_VARINT_BYTES - 1 && b > 0x0f) throw new CodecError(`varint exceeds 2^53 - 1 at offset ${start}`);
      result += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (b === 0 && i > 0) throw new CodecError(`non-canonical varint at offset ${start}`);
        this.pos = pos;
        return result;
      }
      scale *= 128;
    }
  }

  readBool(): boolean {
    const at = this.pos;
    const b = this.readByte('boolean');
    if (b > 1) throw new CodecError(`invalid boolean ${b} at offset ${at}`);
    return b === 1;
  }

  /**
   * A length-prefixed byte string, copied: the window (or, for a ChunkedSnapshotBody or a
   * Uint8Array, the body itself) must not be aliased by what a decoder keeps. What of it the window
   * holds is copied from there, so no byte of the body is read twice; the rest comes from a new
   * window, or, when larger than one, from a single read of exactly it.
   */
  readBytes(): Uint8Array {
    const len = this.stringLength();
    const from = this.pos;
    const out = allocBytes(len);
    const i = from - this.windowStart;
    const held = i < 0 ? 0 : Math.max(0, Math.min(len, this.window.length - i));
    if (held > 0) out.set(this.window.subarray(i, i + held));
    const missing = len - held;
    if (missing > 0) {
      const rest = from + held;
      if (missing <= this.windowBytes) {
        this.load(rest, Math.min(this.length, rest + this.windowBytes));
        out.set(this.window.subarray(0, missing), held);
      } else {
        // The window is all behind the string now: let it go before the read.
        this.window = EMPTY;
        out.set(this.read(rest, from + len), held);
      }
    }
    this.pos = from + len;
    return out;
  }

  skipBytes(): number {
    const len = this.stringLength();
    this.pos += len;
    return len;
  }

  readCharBytes(): string {
    const at = this.pos;
    const len = this.stringLength();
    const i = this.pos - this.windowStart;
    if (i >= 0 && i + len <= this.window.length) {
      this.pos += len;
      return charString(this.window, i, i + len);
    }
    this.pos = at;
    const bytes = this.readBytes();
    return charString(bytes, 0, bytes.length);
  }

  /** A byte string's length prefix, checked against what remains. */
  private stringLength(): number {
    const start = this.pos;
    const len = this.readVarint();
    if (len > this.remaining) {
      throw new CodecError(`truncated byte string at offset ${start}: length ${len}, ${this.remaining} bytes remain`);
    }
    return len;
  }

  /** Reads an optional node id (value + 1 on the wire). */
  readOptionalId(): number {
    return this.readVarint() - 1;
  }

  expectEnd(what = 'value'): void {
    if (this.remaining !== 0) throw new CodecError(`trailing ${this.remaining} bytes after ${what}`);
  }
}
