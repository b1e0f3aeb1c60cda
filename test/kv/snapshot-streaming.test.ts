/**
 * Snapshots that are not one buffer: snapshotBody() (the bytes of snapshot() in pieces),
 * SnapshotBodyReader (ByteReader's results, errors and offsets, a window at a time), restore()
 * from pieced and windowed bodies, checkSnapshot()'s validate-only decoding (restore()'s messages,
 * no state kept), and restore({ discardCurrent }).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotBodyReader } from '../../src/codec/body-reader.js';
import { ByteReader, ByteWriter, CodecError, type ByteSource } from '../../src/codec/codec.js';
import type { Snapshot, SnapshotBody } from '../../src/core/messages.js';
import { ChunkedSnapshotBody, SNAPSHOT_PIECE_BYTES, snapshotBodyBytes } from '../../src/core/snapshot-body.js';
import { encodeKvCommand, KvStateMachine, VALUE_BYTES_MAX, type KvAnyCommand, type KvResult } from '../../src/kv/index.js';
import { Prng } from '../../src/sim/prng.js';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);
const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');

/** A state machine plus its next log index. */
class Replica {
  next = 1;
  constructor(readonly sm = new KvStateMachine()) {}
  apply(cmd: KvAnyCommand): KvResult {
    return this.sm.applyCommand(this.next++, encodeKvCommand(cmd));
  }
  grant(ttlSeconds: number, clientId = '', seq = 0): number {
    const result = this.apply({ op: 'lease-grant', clientId, seq, ttlSeconds });
    if (!result.ok || result.lease === undefined) assert.fail(`not a grant: ${JSON.stringify(result)}`);
    return result.lease.id;
  }
  put(key: string, value: Uint8Array | string, options: { lease?: number; clientId?: string; seq?: number } = {}): KvResult {
    const { lease, clientId = '', seq = 0 } = options;
    return this.apply({ op: 'put', clientId, seq, key: b(key), value: typeof value === 'string' ? b(value) : value, ...(lease === undefined ? {} : { lease }) });
  }
}

/** Bytes that are not all alike, so a misplaced range shows. */
function pattern(length: number, seed: number): Uint8Array {
  const prng = new Prng(seed);
  return Uint8Array.from({ length }, () => prng.nextInt(256));
}

/**
 * Keys (some leased, one value longer than any window the tests use), sessions whose cached
 * results hold a value, a transaction's results, a lease outcome and an error, and leases (one
 * without keys).
 */
function richMachine(big = true): Replica {
  const r = new Replica();
  const l1 = r.grant(30, 'lessor', 1);
  const l2 = r.grant(60);
  r.grant(90);
  r.put('a', 'alpha', { lease: l1 });
  r.put('b', pattern(big ? 5000 : 40, 1), { clientId: 'c1', seq: 1 });
  r.put('b', pattern(big ? 300 : 30, 2), { clientId: 'c1', seq: 2 });
  r.put('c', 'gamma', { lease: l2, clientId: 'c2', seq: 1 });
  r.put('d', 'delta', { lease: l1 });
  r.put('\u00ff\u0000k', pattern(big ? 2000 : 20, 3));
  r.apply({ op: 'txn', clientId: 'txn-client', seq: 1, compare: [{ key: b('a'), target: 'exists', op: '=', value: true }], then: [{ type: 'get', key: b('b') }, { type: 'put', key: b('e'), value: b('epsilon'), lease: l2 }], else: [] });
  r.put('f', 'x', { lease: 999, clientId: 'unlucky', seq: 1 });
  r.apply({ op: 'delete', clientId: '', seq: 0, key: b('d') });
  r.apply({ op: 'append', clientId: 'appender', seq: 4, key: b('c'), value: b('+') });
  return r;
}

function snapshotOf(sm: KvStateMachine, data: SnapshotBody = sm.snapshot()): Snapshot {
  return { index: sm.appliedIndex, term: 1, data };
}

/** `bytes` cut into pieces of `size` bytes (the last one shorter). */
function piecesOf(bytes: Uint8Array, size: number): ChunkedSnapshotBody {
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) pieces.push(bytes.slice(i, i + size));
  return new ChunkedSnapshotBody(pieces);
}

/** A body that is not a Uint8Array (so restore() reads it through a window), noting each range read. */
class RecordingBody implements SnapshotBody {
  readonly reads: [number, number][] = [];
  constructor(private readonly bytes: Uint8Array) {}
  get byteLength(): number {
    return this.bytes.length;
  }
  subarray(start: number, end: number): Uint8Array {
    this.reads.push([start, end]);
    return this.bytes.slice(start, end);
  }
}

function restoreError(snapshot: Snapshot): string | null {
  try {
    new KvStateMachine().restore(snapshot);
    return null;
  } catch (error) {
    if (error instanceof CodecError) return error.message;
    throw error;
  }
}

/** A version 4 snapshot from its parts, encoded by hand (no sessions). */
function rawV4(applied: number, revision: number, keys: [string, string, number][], lastLeaseId: number, leases: [number, number][]): Uint8Array {
  const w = new ByteWriter();
  w.writeByte(4);
  w.writeVarint(applied);
  w.writeVarint(revision);
  w.writeVarint(keys.length);
  for (const [key, value, lease] of keys) {
    w.writeBytes(b(key));
    w.writeBytes(b(value));
    w.writeVarint(1);
    w.writeVarint(1);
    w.writeVarint(1);
    w.writeVarint(lease);
  }
  w.writeVarint(0);
  w.writeVarint(lastLeaseId);
  w.writeVarint(leases.length);
  for (const [id, ttl] of leases) {
    w.writeVarint(id);
    w.writeVarint(ttl);
  }
  return w.finish();
}

// ---- snapshotBody ----

test('snapshotBody() holds the bytes of snapshot(), for a rich state and an empty one', () => {
  for (const sm of [richMachine().sm, new KvStateMachine()]) {
    const bytes = sm.snapshot();
    const body = sm.snapshotBody();
    assert.ok(body instanceof ChunkedSnapshotBody);
    assert.equal(body.byteLength, bytes.length);
    assert.equal(hex(body.subarray(0, body.byteLength)), hex(bytes));
  }
});

test('snapshotBody() of a large state is pieces of about SNAPSHOT_PIECE_BYTES, never one buffer', () => {
  const r = new Replica();
  const lease = r.grant(10);
  const value = pattern(1000, 4);
  for (let i = 0; i < 3500; i++) r.put(`key-${String(i).padStart(5, '0')}`, value, i % 3 === 0 ? { lease } : { clientId: `client-${i % 50}`, seq: i + 1 });
  // A largest value makes a piece of its own, about its size.
  r.put('huge', pattern(VALUE_BYTES_MAX, 5));
  const bytes = r.sm.snapshot();
  const body = r.sm.snapshotBody();
  assert.equal(hex(body.subarray(0, body.byteLength)), hex(bytes));
  const pieces = (body as unknown as { pieces: Uint8Array[] }).pieces;
  assert.ok(pieces.length >= 4, `${pieces.length} pieces for ${bytes.length} bytes`);
  for (const piece of pieces) {
    assert.ok(piece.length <= VALUE_BYTES_MAX + 64, `a piece of ${piece.length} bytes`);
    // Its own buffer (or little more): a piece never pins a buffer the size of the state.
    assert.ok(piece.buffer.byteLength <= SNAPSHOT_PIECE_BYTES + VALUE_BYTES_MAX + 64, `a piece's buffer of ${piece.buffer.byteLength} bytes`);
  }
  // Restored through a window, without reading any range larger than one.
  const recording = new RecordingBody(bytes);
  const restored = new KvStateMachine();
  restored.restore(snapshotOf(r.sm, recording));
  assert.equal(hex(restored.snapshot()), hex(bytes));
  // Each byte once, in order.
  let readTo = 0;
  for (const [start, end] of recording.reads) {
    assert.ok(end - start <= SNAPSHOT_PIECE_BYTES, `read [${start}, ${end})`);
    assert.equal(start, readTo, `read [${start}, ${end}) after reading up to ${readTo}`);
    readTo = end;
  }
  assert.equal(readTo, bytes.length);
});

// ---- restore from bodies that are not one buffer ----

test('restore() from tiny pieces and through tiny windows reproduces the snapshot, values longer than the window included', () => {
  const source = richMachine().sm;
  const bytes = source.snapshot();
  for (const pieceBytes of [1, 3, 7, 4096]) {
    const restored = new KvStateMachine();
    restored.restore(snapshotOf(source, piecesOf(bytes, pieceBytes)));
    assert.equal(hex(restored.snapshot()), hex(bytes), `pieces of ${pieceBytes}`);
  }
  for (const windowBytes of [1, 2, 3, 7, 64, 4999, 5000, 5001]) {
    for (const body of [piecesOf(bytes, 3), new RecordingBody(bytes)]) {
      const restored = new KvStateMachine();
      restored.restore(snapshotOf(source, body), { windowBytes });
      assert.equal(hex(restored.snapshot()), hex(bytes), `window of ${windowBytes}`);
      assert.deepEqual(restored.stats, source.stats);
      assert.deepEqual(restored.leaseList(), source.leaseList());
      assert.deepEqual(restored.leaseKeys(1), source.leaseKeys(1));
      assert.deepEqual(restored.get(b('b')), source.get(b('b')));
    }
  }
});

test('restored values and cached results are copies, not views of the body', () => {
  const source = richMachine().sm;
  const bytes = source.snapshot();
  const expected = hex(bytes);
  const bodies: [string, () => { body: SnapshotBody; wipe: () => void }][] = [
    ['a Uint8Array', () => {
      const copy = bytes.slice();
      return { body: copy, wipe: () => copy.fill(0) };
    }],
    ['one piece', () => {
      const copy = bytes.slice();
      return { body: new ChunkedSnapshotBody([copy]), wipe: () => copy.fill(0) };
    }],
    ['pieces of 1000', () => {
      const body = piecesOf(bytes, 1000);
      const pieces = (body as unknown as { pieces: Uint8Array[] }).pieces;
      return { body, wipe: () => pieces.forEach((p) => p.fill(0)) };
    }],
  ];
  for (const [what, make] of bodies) {
    for (const windowBytes of [7, SNAPSHOT_PIECE_BYTES]) {
      const { body, wipe } = make();
      const restored = new KvStateMachine();
      restored.restore(snapshotOf(source, body), { windowBytes });
      wipe();
      assert.equal(hex(restored.snapshot()), expected, `${what}, window ${windowBytes}`);
      assert.equal(hex(restored.get(b('b'))!), hex(pattern(300, 2)), `${what}, window ${windowBytes}`);
    }
  }
});

// ---- checkSnapshot: restore()'s checks and messages, nothing kept ----

test('checkSnapshot() accepts a good snapshot in any form and gives restore()\'s message for every corruption', () => {
  // Small values (yet longer than the windows), so that every cut and flip can be tried.
  const source = richMachine(false).sm;
  const bytes = source.snapshot();
  const checker = richMachine();
  checker.put('x', 'y');
  const target = checker.sm;
  const before = hex(target.snapshot());
  /** Every way of checking `data`: in one buffer, in tiny pieces, through tiny windows. */
  const checks = (snapshot: Snapshot): [string, string | null][] => {
    const data = snapshot.data as Uint8Array;
    const as = (body: SnapshotBody): Snapshot => ({ ...snapshot, data: body });
    return [
      ['buffer', target.checkSnapshot(snapshot)],
      ['pieces of 3', target.checkSnapshot(as(piecesOf(data, 3)))],
      ['window 1', target.checkSnapshot(as(piecesOf(data, 5)), { windowBytes: 1 })],
      ['window 7', target.checkSnapshot(as(new RecordingBody(data)), { windowBytes: 7 })],
    ];
  };
  const agree = (snapshot: Snapshot, what: string): string | null => {
    const expected = restoreError(snapshot);
    for (const [how, message] of checks(snapshot)) assert.equal(message, expected, `${what} (${how})`);
    return expected;
  };

  assert.equal(agree(snapshotOf(source), 'good'), null);
  // Truncated at every offset.
  for (let cut = 0; cut < bytes.length; cut++) {
    assert.notEqual(agree(snapshotOf(source, bytes.slice(0, cut)), `cut at ${cut}`), null, `cut at ${cut} passed`);
  }
  // Every byte flipped (most are refused; those that are not must pass both ways).
  let refused = 0;
  for (let i = 0; i < bytes.length; i++) {
    const flipped = bytes.slice();
    flipped[i]! ^= 0xff;
    if (agree(snapshotOf(source, flipped), `byte ${i} flipped`) !== null) refused++;
  }
  assert.ok(refused > bytes.length / 2, `only ${refused} of ${bytes.length} flips refused`);
  // A trailing byte.
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  assert.match(agree(snapshotOf(source, longer), 'trailing byte') ?? '', /trailing 1 bytes/);
  // The version byte.
  for (const version of [0, 5, 9, 3]) {
    const other = bytes.slice();
    other[0] = version;
    const message = agree(snapshotOf(source, other), `version ${version}`);
    assert.notEqual(message, null);
    if (version !== 3) assert.equal(message, `unknown KV snapshot version ${version}`);
  }
  // The wrong index.
  assert.match(agree({ index: source.appliedIndex + 1, term: 1, data: bytes }, 'wrong index') ?? '', /labelled index/);
  // Unsorted and duplicate keys.
  assert.match(agree({ index: 3, term: 1, data: rawV4(3, 1, [['b', '1', 0], ['a', '2', 0]], 0, []) }, 'unsorted') ?? '', /is not after the previous key/);
  assert.match(agree({ index: 3, term: 1, data: rawV4(3, 1, [['a', '1', 0], ['a', '2', 0]], 0, []) }, 'duplicate') ?? '', /is not after the previous key/);
  // Keys naming leases the table lacks: the first key's is named.
  assert.equal(
    agree({ index: 3, term: 1, data: rawV4(3, 1, [['a', '1', 1], ['b', '2', 5], ['c', '3', 3], ['d', '4', 3]], 5, [[1, 10], [2, 10]]) }, 'missing leases'),
    'KV snapshot: a key is attached to lease 5, which the snapshot does not hold',
  );
  assert.equal(agree({ index: 3, term: 1, data: rawV4(3, 1, [['a', '1', 1], ['b', '2', 2]], 2, [[1, 10], [2, 10]]) }, 'leases held'), null);

  assert.equal(hex(target.snapshot()), before, 'checking changed the state');
});

// ---- restore({ discardCurrent }) ----

test('restore({ discardCurrent }) replaces the state on success and leaves the machine empty on failure', () => {
  const source = richMachine().sm;
  const bytes = source.snapshot();
  const empty = hex(new KvStateMachine().snapshot());

  const replaced = new Replica();
  replaced.put('old', 'value', { clientId: 'old-client', seq: 1 });
  replaced.sm.restore(snapshotOf(source, piecesOf(bytes, 7)), { discardCurrent: true, windowBytes: 5 });
  assert.equal(hex(replaced.sm.snapshot()), hex(bytes));
  assert.equal(replaced.sm.get(b('old')), null);

  const truncated = snapshotOf(source, bytes.slice(0, bytes.length - 3));
  const failed = richMachine();
  failed.put('old', 'value');
  assert.throws(() => failed.sm.restore(truncated, { discardCurrent: true }), CodecError);
  assert.equal(hex(failed.sm.snapshot()), empty);
  assert.equal(failed.sm.appliedIndex, 0);
  assert.equal(failed.sm.revision, 0);
  assert.deepEqual(failed.sm.stats, { keys: 0, bytes: 0, sessions: 0, leases: 0 });
  assert.equal(failed.sm.get(b('old')), null);
  assert.equal(failed.sm.session('c1'), undefined);
  assert.deepEqual(failed.sm.leaseList(), []);

  // Without it, a failure leaves the state as it was.
  const kept = richMachine();
  kept.put('old', 'value');
  const keptBefore = hex(kept.sm.snapshot());
  assert.throws(() => kept.sm.restore(truncated), CodecError);
  assert.throws(() => kept.sm.restore(truncated, { discardCurrent: false }), CodecError);
  assert.equal(hex(kept.sm.snapshot()), keptBefore);
});

// ---- SnapshotBodyReader against ByteReader ----

type Op = 'byte' | 'varint' | 'bool' | 'bytes' | 'chars' | 'skip' | 'id' | 'end';
const OPS: Op[] = ['byte', 'varint', 'bool', 'bytes', 'chars', 'skip', 'id', 'end'];

function runOp(r: ByteSource, op: Op): unknown {
  switch (op) {
    case 'byte':
      return r.readByte('thing');
    case 'varint':
      return r.readVarint();
    case 'bool':
      return r.readBool();
    case 'bytes':
      return hex(r.readBytes());
    case 'chars':
      return r.readCharBytes();
    case 'skip':
      return r.skipBytes();
    case 'id':
      return r.readOptionalId();
    case 'end':
      r.expectEnd('the test');
      return 'end';
  }
}

/** Each op's result or CodecError message, and the offset and remaining bytes after it. */
function trace(r: ByteSource, ops: readonly Op[]): unknown[] {
  const out: unknown[] = [];
  for (const op of ops) {
    try {
      out.push([op, runOp(r, op), r.offset, r.remaining]);
    } catch (error) {
      if (!(error instanceof CodecError)) throw error;
      out.push([op, error.message]);
      break;
    }
  }
  return out;
}

/** Input that reads as a mix of well-formed and malformed fields, byte strings long and short. */
function randomInput(prng: Prng): { bytes: Uint8Array; ops: Op[] } {
  const w = new ByteWriter();
  const ops: Op[] = [];
  const fields = 1 + prng.nextInt(30);
  for (let i = 0; i < fields; i++) {
    const kind = prng.nextInt(8);
    if (kind <= 1) {
      const len = prng.nextInt(4) === 0 ? prng.nextInt(200) : prng.nextInt(8);
      w.writeBytes(pattern(len, prng.nextInt(1000)));
      ops.push(kind === 0 ? 'bytes' : 'skip');
    } else if (kind === 2) {
      w.writeVarint(prng.nextInt(4) === 0 ? Number.MAX_SAFE_INTEGER - prng.nextInt(1000) : prng.nextInt(1 << 20));
      ops.push(prng.nextInt(2) === 0 ? 'varint' : 'id');
    } else if (kind === 3) {
      w.writeByte(prng.nextInt(3));
      ops.push('bool');
    } else {
      // Junk: a misread as any op (overlong or non-canonical varints, bad booleans, lengths past the end).
      const n = 1 + prng.nextInt(10);
      for (let j = 0; j < n; j++) w.writeByte(prng.nextInt(4) === 0 ? 0x80 | prng.nextInt(128) : prng.nextInt(256));
      ops.push(OPS[prng.nextInt(OPS.length)]!);
    }
  }
  ops.push('end');
  return { bytes: w.finish(), ops };
}

test('SnapshotBodyReader gives ByteReader\'s results, errors and offsets for the same bytes, whatever the window and pieces', () => {
  const prng = new Prng(42);
  for (let round = 0; round < 400; round++) {
    const { bytes, ops } = randomInput(prng);
    const cut = prng.nextInt(3) === 0 ? prng.nextInt(bytes.length + 1) : bytes.length;
    const input = bytes.slice(0, cut);
    const expected = trace(new ByteReader(input), ops);
    for (const windowBytes of [1, 2, 3, 7, 16, 150, 1 << 20]) {
      for (const pieceBytes of [1, 5, 64]) {
        const actual = trace(new SnapshotBodyReader(piecesOf(input, pieceBytes), windowBytes), ops);
        assert.deepEqual(actual, expected, `round ${round}, window ${windowBytes}, pieces of ${pieceBytes}`);
      }
    }
  }
});

test('SnapshotBodyReader.readBytes() copies, skipBytes() reads nothing it skips, and reads stay within a window or one string', () => {
  const encode = (): Uint8Array => {
    const w = new ByteWriter();
    w.writeBytes(pattern(10, 1));
    w.writeBytes(pattern(100, 2));
    w.writeBytes(pattern(40, 3));
    w.writeBytes(pattern(5, 4));
    return w.finish();
  };
  // A piece's range is a view of it: what readBytes() returns must not be.
  const bytes = encode();
  const r = new SnapshotBodyReader(new ChunkedSnapshotBody([bytes]), 16);
  const first = r.readBytes();
  r.skipBytes();
  const large = r.readBytes();
  bytes.fill(0);
  assert.equal(hex(first), hex(pattern(10, 1)), 'a view of the input');
  assert.equal(hex(large), hex(pattern(40, 3)), 'a view of the input');

  const recorded = new RecordingBody(encode());
  const s = new SnapshotBodyReader(recorded, 16);
  assert.equal(hex(s.readBytes()), hex(pattern(10, 1)));
  assert.equal(s.skipBytes(), 100);
  assert.equal(s.offset, 112);
  assert.equal(hex(s.readBytes()), hex(pattern(40, 3)));
  assert.equal(hex(s.readBytes()), hex(pattern(5, 4)));
  s.expectEnd();
  assert.ok(recorded.reads.length > 0);
  // The window [112, 128) holds the 40-byte string's first 15 bytes (113..128); the other 25 are
  // more than a window, so they are read in one go.
  assert.deepEqual(recorded.reads, [[0, 16], [112, 128], [128, 153], [153, 159]]);
  assert.throws(() => new SnapshotBodyReader(bytes, 0), RangeError);
});

test('snapshotWriter: captured now, encoded in slices while the machine goes on writing, it holds the state of the capture', () => {
  for (const budget of [1, 50, 4096, Number.POSITIVE_INFINITY]) {
    const r = richMachine();
    for (let i = 0; i < 300; i++) r.put(`k${String(i).padStart(3, '0')}`, pattern(20 + (i % 50), 100 + i));
    const expected = hex(r.sm.snapshot());
    const writer = r.sm.snapshotWriter();
    assert.equal(writer.index, r.sm.appliedIndex);
    let body: SnapshotBody | null = null;
    const lease = r.grant(10);
    for (let i = 0; body === null; i++) {
      assert.ok(i < 100_000, 'the writer finishes');
      // Writes of every kind between slices: overwrite, new keys, deletes, a lease attach and revoke, sessions.
      r.put(`k${String(i % 300).padStart(3, '0')}`, `changed-${i}`, { clientId: `s${i % 7}`, seq: i + 1, ...(i % 5 === 0 ? { lease } : {}) });
      r.put(`new-${i}`, 'n');
      r.apply({ op: 'delete', clientId: '', seq: 0, key: b(`k${String((i * 7) % 300).padStart(3, '0')}`) });
      if (i === 3) r.apply({ op: 'lease-revoke', clientId: '', seq: 0, id: lease });
      body = writer.step(budget);
    }
    assert.equal(hex(snapshotBodyBytes(body)), expected, `budget ${budget}`);
    assert.equal(writer.step(budget), body, 'a finished writer keeps answering its body');
    // And the machine it was taken from restores from it to the captured state.
    const restored = new KvStateMachine();
    restored.restore({ index: writer.index, term: 1, data: body });
    assert.equal(hex(restored.snapshot()), expected);
  }
});
