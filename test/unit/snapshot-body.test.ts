/**
 * Snapshot bodies that need not sit in memory as one buffer (src/core/snapshot-body.ts) and the
 * follower's reassembly of a chunked transfer into a SnapshotAssembly (src/core/snapshot-receiver.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32c } from '../../src/core/crc32c.js';
import type { InstallSnapshot, SnapshotBody } from '../../src/core/messages.js';
import {
  ChunkedSnapshotBody,
  forEachSnapshotPiece,
  MemorySnapshotAssembly,
  SNAPSHOT_PIECE_BYTES,
  snapshotBodiesEqual,
  snapshotBodyBytes,
  snapshotBodyChecksum,
  type SnapshotAssembly,
  type SnapshotAssemblyFactory,
} from '../../src/core/snapshot-body.js';
import { SnapshotReceiver } from '../../src/core/snapshot-receiver.js';
import { patternBytes } from './pattern-bytes.js';

// ===================================================================================== helpers


function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Pieces of the given sizes cut from one pattern (so that every byte differs from its neighbours). */
function piecesOf(sizes: readonly number[], seed = 1): Uint8Array[] {
  const whole = patternBytes(sizes.reduce((a, b) => a + b, 0), seed);
  const pieces: Uint8Array[] = [];
  let offset = 0;
  for (const size of sizes) {
    // A copy, so that a piece is its own buffer (as an encoder's pieces are).
    pieces.push(whole.slice(offset, offset + size));
    offset += size;
  }
  return pieces;
}

const plain = (bytes: Uint8Array): number[] => Array.from(bytes);

// ===================================================================================== ChunkedSnapshotBody

describe('ChunkedSnapshotBody', () => {
  const SIZES = [0, 1, 5, 0, 3, 7];

  test('byteLength is the sum of the pieces, empty pieces included', () => {
    assert.equal(new ChunkedSnapshotBody(piecesOf(SIZES)).byteLength, 16);
    assert.equal(new ChunkedSnapshotBody([]).byteLength, 0);
    assert.equal(new ChunkedSnapshotBody([new Uint8Array(0), new Uint8Array(0)]).byteLength, 0);
    assert.equal(new ChunkedSnapshotBody(piecesOf([0, 0, 4, 0, 0])).byteLength, 4);
  });

  for (const sizes of [SIZES, [16], [1, 1, 1, 1], [0, 0, 2, 0, 0, 3, 0], [7, 0], [0, 7], [4, 4, 4, 4]]) {
    test(`subarray(start, end) equals the concatenation's for every pair: pieces ${JSON.stringify(sizes)}`, () => {
      const pieces = piecesOf(sizes, sizes.length);
      const whole = concat(pieces);
      const body = new ChunkedSnapshotBody(pieces);
      assert.equal(body.byteLength, whole.length);
      for (let start = 0; start <= whole.length; start++) {
        for (let end = start; end <= whole.length; end++) {
          const got = body.subarray(start, end);
          assert.ok(got instanceof Uint8Array);
          assert.equal(got.byteLength, end - start, `[${start}, ${end}) length`);
          assert.deepEqual(plain(got), plain(whole.subarray(start, end)), `[${start}, ${end})`);
        }
      }
    });
  }

  test('out-of-range arguments are clamped to [0, byteLength]; start >= end gives an empty range', () => {
    const pieces = piecesOf(SIZES);
    const whole = concat(pieces);
    const body = new ChunkedSnapshotBody(pieces);
    const n = whole.length;
    assert.deepEqual(plain(body.subarray(-5, 4)), plain(whole.subarray(0, 4)), 'negative start clamps to 0');
    assert.deepEqual(plain(body.subarray(3, n + 100)), plain(whole.subarray(3, n)), 'end past the body clamps to byteLength');
    assert.deepEqual(plain(body.subarray(-1, n + 1)), plain(whole), 'both clamped: the whole body');
    assert.equal(body.subarray(n, n + 10).byteLength, 0, 'start at the end');
    assert.equal(body.subarray(n + 3, n + 10).byteLength, 0, 'start past the end');
    assert.equal(body.subarray(9, 4).byteLength, 0, 'start after end');
    assert.equal(body.subarray(-10, -1).byteLength, 0, 'both negative');
    assert.equal(body.subarray(6, 6).byteLength, 0, 'empty range at a piece boundary');
    assert.equal(new ChunkedSnapshotBody([]).subarray(0, 10).byteLength, 0, 'no pieces at all');
    assert.equal(new ChunkedSnapshotBody([new Uint8Array(0)]).subarray(-1, 1).byteLength, 0, 'only an empty piece');
  });

  test('a range inside one piece reads that piece; a range across pieces is a copy that later reads do not disturb', () => {
    const pieces = piecesOf([4, 4]);
    const body = new ChunkedSnapshotBody(pieces);
    const across = body.subarray(2, 6);
    const expected = plain(across);
    pieces[0]![3] = pieces[0]![3]! ^ 0xff;
    assert.deepEqual(plain(across), expected, 'a copy, not a view of the pieces');
    body.subarray(0, 8).fill(0);
    assert.deepEqual(plain(body.subarray(0, 8)), plain(concat(pieces)), 'a later read sees the pieces as they are');
  });

  test('works as a body anywhere a Uint8Array does: snapshotBodyBytes gives the whole concatenation', () => {
    const pieces = piecesOf(SIZES);
    assert.deepEqual(plain(snapshotBodyBytes(new ChunkedSnapshotBody(pieces))), plain(concat(pieces)));
    const array = patternBytes(10, 9);
    assert.equal(snapshotBodyBytes(array), array, 'a Uint8Array is its own bytes');
  });
});

// ===================================================================================== helpers over bodies

describe('snapshotBodyChecksum / snapshotBodiesEqual / forEachSnapshotPiece', () => {
  test('snapshotBodyChecksum is crc32c of the concatenation, for small and multi-piece (> 1 MiB) bodies', () => {
    for (const sizes of [[0, 1, 5, 0, 3, 7], [], [0], [100_000, 0, 1_500_000, 3, 700_001], [SNAPSHOT_PIECE_BYTES, 1], [SNAPSHOT_PIECE_BYTES - 1, 2, SNAPSHOT_PIECE_BYTES]]) {
      const pieces = piecesOf(sizes, 7);
      const whole = concat(pieces);
      assert.equal(snapshotBodyChecksum(new ChunkedSnapshotBody(pieces)), crc32c(whole), `pieces ${JSON.stringify(sizes)}`);
      assert.equal(snapshotBodyChecksum(whole), crc32c(whole));
    }
    assert.equal(snapshotBodyChecksum(new Uint8Array(0)), crc32c(new Uint8Array(0)));
  });

  test('snapshotBodiesEqual compares bytes, not how they are cut', () => {
    const whole = patternBytes(2 * SNAPSHOT_PIECE_BYTES + 17, 3);
    const cut = new ChunkedSnapshotBody([whole.subarray(0, 5), whole.subarray(5, SNAPSHOT_PIECE_BYTES + 9), new Uint8Array(0), whole.subarray(SNAPSHOT_PIECE_BYTES + 9)]);
    assert.equal(snapshotBodiesEqual(whole, cut), true);
    assert.equal(snapshotBodiesEqual(cut, whole), true);
    assert.equal(snapshotBodiesEqual(new ChunkedSnapshotBody([]), new Uint8Array(0)), true);

    // One byte differs, in the last piece-sized window (after the first whole-window comparison).
    const other = whole.slice();
    other[other.length - 1] = other[other.length - 1]! ^ 1;
    assert.equal(snapshotBodiesEqual(cut, other), false);
    const first = whole.slice();
    first[0] = first[0]! ^ 0x80;
    assert.equal(snapshotBodiesEqual(first, cut), false);
    // Same prefix, another length.
    assert.equal(snapshotBodiesEqual(cut, whole.subarray(0, whole.length - 1)), false);
    assert.equal(snapshotBodiesEqual(new Uint8Array(0), new Uint8Array(1)), false);
  });

  test('forEachSnapshotPiece visits the body in order, in pieces of at most pieceBytes', () => {
    const pieces = piecesOf([0, 1, 5, 0, 3, 7]);
    const whole = concat(pieces);
    const body = new ChunkedSnapshotBody(pieces);
    for (const pieceBytes of [1, 2, 3, 4, 5, 15, 16, 17, 100]) {
      const seen: Uint8Array[] = [];
      forEachSnapshotPiece(body, (piece) => seen.push(piece.slice()), pieceBytes);
      assert.equal(seen.length, Math.ceil(whole.length / pieceBytes), `pieceBytes ${pieceBytes}: number of pieces`);
      for (const [i, piece] of seen.entries()) {
        const expected = i < seen.length - 1 ? pieceBytes : whole.length - pieceBytes * (seen.length - 1);
        assert.equal(piece.length, expected, `pieceBytes ${pieceBytes}: piece ${i}`);
      }
      assert.deepEqual(plain(concat(seen)), plain(whole), `pieceBytes ${pieceBytes}`);
    }
    let visits = 0;
    forEachSnapshotPiece(new Uint8Array(0), () => visits++, 4);
    forEachSnapshotPiece(new ChunkedSnapshotBody([new Uint8Array(0)]), () => visits++, 4);
    assert.equal(visits, 0, 'an empty body has no pieces');
  });

  test('forEachSnapshotPiece defaults to SNAPSHOT_PIECE_BYTES', () => {
    const body = patternBytes(2 * SNAPSHOT_PIECE_BYTES + 1, 5);
    const lengths: number[] = [];
    forEachSnapshotPiece(body, (piece) => lengths.push(piece.length));
    assert.deepEqual(lengths, [SNAPSHOT_PIECE_BYTES, SNAPSHOT_PIECE_BYTES, 1]);
  });
});

// ===================================================================================== MemorySnapshotAssembly

describe('MemorySnapshotAssembly', () => {
  test('finish() joins the appended chunks in order', () => {
    const a = new MemorySnapshotAssembly();
    const parts = piecesOf([3, 0, 10, 1]);
    for (const part of parts) a.append(part);
    assert.deepEqual(plain(snapshotBodyBytes(a.finish())), plain(concat(parts)));
    assert.equal(new MemorySnapshotAssembly().finish().byteLength, 0);
  });

  test('appended bytes are copied: changing the caller’s buffer after append changes nothing', () => {
    const a = new MemorySnapshotAssembly();
    const buffer = patternBytes(32, 11);
    const expected = plain(buffer);
    a.append(buffer.subarray(0, 16));
    a.append(buffer.subarray(16));
    buffer.fill(0xee); // a transport reusing its receive buffer
    const body = a.finish();
    assert.deepEqual(plain(snapshotBodyBytes(body)), expected);
  });
});

// ===================================================================================== SnapshotReceiver

type Event =
  | { readonly op: 'create'; readonly n: number; readonly index: number; readonly term: number; readonly byteLength: number }
  | { readonly op: 'append'; readonly n: number; readonly bytes: number[] }
  | { readonly op: 'finish'; readonly n: number }
  | { readonly op: 'discard'; readonly n: number };

/** An assembly factory that records every call (assemblies numbered from 1), keeping the bytes in memory. */
function recordingFactory(): { factory: SnapshotAssemblyFactory; events: Event[]; ops: () => string[] } {
  const events: Event[] = [];
  let count = 0;
  const factory: SnapshotAssemblyFactory = (transfer) => {
    const n = ++count;
    events.push({ op: 'create', n, index: transfer.index, term: transfer.term, byteLength: transfer.byteLength });
    const inner = new MemorySnapshotAssembly();
    let closed = false;
    const assembly: SnapshotAssembly = {
      append(bytes) {
        assert.ok(!closed, `assembly ${n}: append after finish/discard`);
        events.push({ op: 'append', n, bytes: Array.from(bytes) });
        inner.append(bytes);
      },
      finish() {
        assert.ok(!closed, `assembly ${n}: finish after finish/discard`);
        closed = true;
        events.push({ op: 'finish', n });
        return inner.finish();
      },
      discard() {
        events.push({ op: 'discard', n });
        closed = true;
        inner.discard();
      },
    };
    return assembly;
  };
  const ops = (): string[] => events.map((e) => `${e.op}#${e.n}${e.op === 'append' ? `:${e.bytes.length}` : ''}`);
  return { factory, events, ops };
}

/** The chunks of `whole` (snapshot at `index`/`term`), `chunkBytes` each. */
function chunksOf(whole: Uint8Array, chunkBytes: number, index = 10, term = 2, checksum = crc32c(whole)): InstallSnapshot[] {
  const chunks: InstallSnapshot[] = [];
  for (let offset = 0; offset < whole.length || (offset === 0 && whole.length === 0); offset += chunkBytes) {
    const end = Math.min(whole.length, offset + chunkBytes);
    chunks.push({
      type: 'InstallSnapshot',
      from: 0,
      to: 1,
      term,
      lastIncludedIndex: index,
      lastIncludedTerm: term,
      snapshotBytes: whole.length,
      checksum,
      offset,
      data: whole.subarray(offset, end),
      done: end === whole.length,
      membership: { voters: [0, 1, 2], outgoing: [], learners: [], addresses: [] },
    });
    if (whole.length === 0) break;
  }
  return chunks;
}

describe('SnapshotReceiver with an injected SnapshotAssembly', () => {
  test('a transfer in order: one assembly sized by the announced length, chunks appended in order, finish once', () => {
    const { factory, events, ops } = recordingFactory();
    const r = new SnapshotReceiver(1 << 20, factory);
    const whole = patternBytes(25, 1);
    const chunks = chunksOf(whole, 10);
    assert.deepEqual(r.accept(chunks[0]!, 1), { kind: 'resume', resumeAt: 10 });
    assert.equal(r.bufferedBytes, 10);
    assert.deepEqual(r.accept(chunks[1]!, 2), { kind: 'resume', resumeAt: 20 });
    const outcome = r.accept(chunks[2]!, 3);
    assert.equal(outcome.kind, 'complete');
    assert.deepEqual(plain(snapshotBodyBytes((outcome as { data: SnapshotBody }).data)), plain(whole));
    assert.deepEqual(ops(), ['create#1', 'append#1:10', 'append#1:10', 'append#1:5', 'finish#1']);
    assert.deepEqual(events[0], { op: 'create', n: 1, index: 10, term: 2, byteLength: 25 });
    assert.deepEqual(concat(events.filter((e) => e.op === 'append').map((e) => Uint8Array.from(e.bytes))), whole);
    assert.equal(r.bufferedBytes, 0);
    // Nothing further happens to a finished assembly.
    r.abandonIfIdle(1_000, 1);
    r.dropIfCovered(1_000);
    assert.deepEqual(ops(), ['create#1', 'append#1:10', 'append#1:10', 'append#1:5', 'finish#1']);
  });

  test('the complete outcome carries what finish() returned', () => {
    const marker = new Uint8Array([9, 9, 9]);
    const r = new SnapshotReceiver(100, () => ({ append: () => {}, finish: () => marker, discard: () => assert.fail('discarded') }));
    const outcome = r.accept(chunksOf(new Uint8Array([1, 2, 3]), 10)[0]!);
    assert.deepEqual(outcome, { kind: 'complete', data: marker });
    assert.equal((outcome as { data: SnapshotBody }).data, marker);
  });

  test('a duplicate or out-of-order chunk is not appended, and the transfer continues where it was', () => {
    const { factory, ops } = recordingFactory();
    const r = new SnapshotReceiver(1 << 20, factory);
    const whole = patternBytes(40, 2);
    const [c0, c1, c2, c3] = chunksOf(whole, 10);
    assert.deepEqual(r.accept(c0!), { kind: 'resume', resumeAt: 10 });
    assert.deepEqual(r.accept(c2!), { kind: 'resume', resumeAt: 10 }, 'a gap: resume at 10');
    assert.deepEqual(r.accept(c0!), { kind: 'resume', resumeAt: 10 }, 'the first chunk again');
    assert.deepEqual(r.accept(c1!), { kind: 'resume', resumeAt: 20 });
    assert.deepEqual(r.accept(c1!), { kind: 'resume', resumeAt: 20 }, 'a duplicate');
    assert.deepEqual(r.accept(c0!), { kind: 'resume', resumeAt: 20 }, 'a stale first chunk');
    assert.deepEqual(r.accept(c3!), { kind: 'resume', resumeAt: 20 }, 'the last chunk early');
    assert.deepEqual(r.accept(c2!), { kind: 'resume', resumeAt: 30 });
    const outcome = r.accept(c3!);
    assert.equal(outcome.kind, 'complete');
    assert.deepEqual(plain(snapshotBodyBytes((outcome as { data: SnapshotBody }).data)), plain(whole));
    assert.deepEqual(ops(), ['create#1', 'append#1:10', 'append#1:10', 'append#1:10', 'append#1:10', 'finish#1']);
    // The last chunk again after completion starts nothing and appends nothing.
    assert.deepEqual(r.accept(c3!), { kind: 'resume', resumeAt: 0 });
    assert.deepEqual(ops(), ['create#1', 'append#1:10', 'append#1:10', 'append#1:10', 'append#1:10', 'finish#1']);
  });

  test('a chunk of another transfer (not at offset 0) neither joins the current one nor creates an assembly', () => {
    const { factory, ops } = recordingFactory();
    const r = new SnapshotReceiver(1 << 20, factory);
    const mine = chunksOf(patternBytes(30, 3), 10, 10, 2);
    const other = chunksOf(patternBytes(30, 4), 10, 10, 2); // same index, term and length; another checksum
    r.accept(mine[0]!);
    assert.deepEqual(r.accept(other[1]!), { kind: 'resume', resumeAt: 0 });
    assert.deepEqual(ops(), ['create#1', 'append#1:10']);
    assert.equal(r.bufferedBytes, 10);
  });

  test('discard on abandonIfIdle (only once idle long enough), and a new assembly for the next transfer', () => {
    const { factory, ops } = recordingFactory();
    const r = new SnapshotReceiver(1 << 20, factory);
    const chunks = chunksOf(patternBytes(30, 5), 10);
    r.accept(chunks[0]!, 10);
    r.accept(chunks[1]!, 20);
    r.abandonIfIdle(29, 10);
    assert.deepEqual(ops(), ['create#1', 'append#1:10', 'append#1:10'], 'not idle yet (9 ticks since the last chunk)');
    r.abandonIfIdle(30, 10);
    assert.deepEqual(ops(), ['create#1', 'append#1:10', 'append#1:10', 'discard#1']);
    assert.equal(r.bufferedBytes, 0);
    r.abandonIfIdle(1_000, 10);
    assert.deepEqual(ops().filter((op) => op.startsWith('discard')), ['discard#1'], 'discarded once');
    // The sender comes back mid-transfer: told to start at 0, nothing appended to the discarded assembly.
    assert.deepEqual(r.accept(chunks[2]!, 31), { kind: 'resume', resumeAt: 0 });
    assert.deepEqual(r.accept(chunks[0]!, 32), { kind: 'resume', resumeAt: 10 });
    assert.deepEqual(ops().slice(4), ['create#2', 'append#2:10']);
  });

  test('discard on dropIfCovered (only once the commit index reaches the transfer)', () => {
    const { factory, ops } = recordingFactory();
    const r = new SnapshotReceiver(1 << 20, factory);
    r.accept(chunksOf(patternBytes(30, 6), 10, 50)[0]!);
    r.dropIfCovered(49);
    assert.deepEqual(ops(), ['create#1', 'append#1:10']);
    r.dropIfCovered(50);
    assert.deepEqual(ops(), ['create#1', 'append#1:10', 'discard#1']);
    assert.equal(r.bufferedBytes, 0);
    r.dropIfCovered(60);
    assert.deepEqual(ops(), ['create#1', 'append#1:10', 'discard#1']);
  });

  test('a new transfer replacing an unfinished one discards the old assembly before creating the new', () => {
    const { factory, events, ops } = recordingFactory();
    const r = new SnapshotReceiver(1 << 20, factory);
    const older = chunksOf(patternBytes(30, 7), 10, 10, 2);
    const newer = chunksOf(patternBytes(20, 8), 10, 12, 3);
    r.accept(older[0]!);
    r.accept(older[1]!);
    assert.deepEqual(r.accept(newer[0]!), { kind: 'resume', resumeAt: 10 });
    assert.deepEqual(ops(), ['create#1', 'append#1:10', 'append#1:10', 'discard#1', 'create#2', 'append#2:10']);
    assert.deepEqual(events[4], { op: 'create', n: 2, index: 12, term: 3, byteLength: 20 });
    assert.equal(r.bufferedBytes, 10);
    // The older transfer's chunks no longer join anything.
    assert.deepEqual(r.accept(older[2]!), { kind: 'resume', resumeAt: 0 });
    assert.equal(r.accept(newer[1]!).kind, 'complete');
    assert.deepEqual(ops().slice(6), ['append#2:10', 'finish#2']);
  });

  test('a checksum mismatch discards the assembly (never finishes it) and is refused', () => {
    const { factory, ops } = recordingFactory();
    const r = new SnapshotReceiver(1 << 20, factory);
    const whole = patternBytes(30, 9);
    const chunks = chunksOf(whole, 10, 10, 2, crc32c(whole) ^ 1);
    r.accept(chunks[0]!);
    r.accept(chunks[1]!);
    assert.deepEqual(r.accept(chunks[2]!), { kind: 'refused', reason: 'snapshot-checksum-mismatch' });
    assert.deepEqual(ops(), ['create#1', 'append#1:10', 'append#1:10', 'append#1:10', 'discard#1']);
    assert.equal(r.bufferedBytes, 0);
    r.abandonIfIdle(1_000, 1);
    r.dropIfCovered(1_000);
    assert.equal(ops().filter((op) => op.startsWith('discard')).length, 1, 'discarded once');
    // The right bytes again make a new assembly and complete.
    const good = chunksOf(whole, 30);
    assert.equal(r.accept(good[0]!).kind, 'complete');
    assert.deepEqual(ops().slice(5), ['create#2', 'append#2:30', 'finish#2']);
  });

  test('an assembly that cannot keep a chunk (a full disk) or cannot be made refuses the transfer (snapshot-not-kept), and the next one works', () => {
    const whole = patternBytes(30, 10);
    let failAppend = true;
    let failCreate = false;
    const discarded: number[] = [];
    let made = 0;
    const r = new SnapshotReceiver(1 << 20, () => {
      if (failCreate) throw new Error('EMFILE: too many open files');
      const id = ++made;
      const kept: Uint8Array[] = [];
      return {
        append: (bytes) => {
          if (failAppend && kept.length === 1) throw new Error('ENOSPC: no space left on device');
          kept.push(bytes.slice());
        },
        finish: () => Uint8Array.from(kept.flatMap((b) => [...b])),
        discard: () => discarded.push(id),
      };
    });
    const chunks = chunksOf(whole, 10);
    assert.equal(r.accept(chunks[0]!).kind, 'resume');
    assert.deepEqual(r.accept(chunks[1]!), { kind: 'refused', reason: 'snapshot-not-kept' });
    assert.deepEqual(discarded, [1], 'what was kept is released');
    assert.equal(r.bufferedBytes, 0);
    assert.deepEqual(r.accept(chunks[2]!), { kind: 'resume', resumeAt: 0 }, 'the transfer is gone: start again');
    failCreate = true;
    assert.deepEqual(r.accept(chunks[0]!), { kind: 'refused', reason: 'snapshot-not-kept' });
    failCreate = false;
    failAppend = false;
    for (const chunk of chunks.slice(0, 2)) assert.equal(r.accept(chunk).kind, 'resume');
    const done = r.accept(chunks[2]!);
    assert.equal(done.kind, 'complete');
    assert.deepEqual(done.kind === 'complete' ? [...snapshotBodyBytes(done.data)] : [], [...whole]);
  });

  test('a too-large transfer is refused without ever creating an assembly, and does not disturb one under way', () => {
    const { factory, ops } = recordingFactory();
    const r = new SnapshotReceiver(25, factory);
    const big = chunksOf(patternBytes(26, 10), 10, 20, 3);
    assert.deepEqual(r.accept(big[0]!), { kind: 'refused', reason: 'snapshot-too-large' });
    assert.deepEqual(r.accept(big[2]!), { kind: 'refused', reason: 'snapshot-too-large' });
    assert.deepEqual(ops(), []);
    const fits = chunksOf(patternBytes(25, 11), 10);
    r.accept(fits[0]!);
    assert.deepEqual(r.accept(big[0]!), { kind: 'refused', reason: 'snapshot-too-large' });
    assert.deepEqual(ops(), ['create#1', 'append#1:10']);
    assert.equal(r.bufferedBytes, 10);
    r.accept(fits[1]!);
    assert.equal(r.accept(fits[2]!).kind, 'complete');
    assert.deepEqual(ops(), ['create#1', 'append#1:10', 'append#1:10', 'append#1:5', 'finish#1']);
  });

  test('without a factory the receiver assembles in memory (MemorySnapshotAssembly) and copies the chunks', () => {
    const r = new SnapshotReceiver(1 << 20);
    const whole = patternBytes(20, 12);
    const buffer = whole.slice();
    const chunks = chunksOf(buffer, 10);
    r.accept(chunks[0]!);
    buffer.subarray(0, 10).fill(0); // the transport reuses its buffer
    const outcome = r.accept(chunks[1]!);
    assert.equal(outcome.kind, 'complete');
    assert.deepEqual(plain(snapshotBodyBytes((outcome as { data: SnapshotBody }).data)), plain(whole));
  });
});
