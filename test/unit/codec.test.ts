import { Prng } from '../../src/sim/prng.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Membership } from '../../src/core/membership.js';
import type { Entry, HardState, Message, PersistentState } from '../../src/core/messages.js';
import {
  ByteReader,
  ByteWriter,
  CodecError,
  decodeEntry,
  decodeHardState,
  decodeMessage,
  decodePersistentState,
  encodeEntry,
  encodeHardState,
  encodeMessage,
  encodePersistentState,
  entrySize,
  hardStateSize,
  membershipSize,
  MESSAGE_TAGS,
  messageSize,
  persistentStateSize,
  readMembership,
  varintSize,
  writeMembership,
} from '../../src/codec/index.js';

const MAX = Number.MAX_SAFE_INTEGER;
const EDGES = [0, 1, 127, 128, 16383, 16384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 49, MAX - 1, MAX];

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const cmd = (n: number, seed = 1): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
const entry = (index: number, term: number, command = cmd(3)): Entry => ({ index, term, command });
const NO_MEMBERS: Membership = { voters: [], outgoing: [], learners: [], addresses: [] };
/** A configuration with every part filled: joint, learners, addresses (one of them not ASCII). */
const JOINT: Membership = {
  voters: [1, 2, 4],
  outgoing: [1, 2, 3],
  learners: [5, 2 ** 40],
  addresses: [{ id: 1, address: 'n1:7000' }, { id: 4, address: 'nœud-4 🚀:7000' }, { id: 2 ** 40, address: '' }],
};
const configEntry = (index: number, term: number, membership: Membership = JOINT): Entry => ({ index, term, command: new Uint8Array(0), membership });

function rv(v: number, type: 'RequestVote' | 'PreVote' = 'RequestVote'): Message {
  return { type, from: v, to: v, term: v, lastLogIndex: v, lastLogTerm: v };
}
function rvr(v: number, voteGranted: boolean, type: 'RequestVoteReply' | 'PreVoteReply' = 'RequestVoteReply'): Message {
  return { type, from: v, to: v, term: v, voteGranted };
}
function is(v: number, data: Uint8Array, done: boolean, membership: Membership = JOINT): Message {
  return { type: 'InstallSnapshot', from: v, to: v, term: v, lastIncludedIndex: v, lastIncludedTerm: v, snapshotBytes: v, checksum: v % 2 ** 32, offset: v, data, done, membership };
}
function isr(v: number, installed: boolean): Message {
  return { type: 'InstallSnapshotReply', from: v, to: v, term: v, lastIncludedIndex: v, nextOffset: v, installed };
}
function ae(v: number, entries: Entry[]): Message {
  return { type: 'AppendEntries', from: v, to: v, term: v, prevLogIndex: v, prevLogTerm: v, entries, leaderCommit: v, readContext: v };
}
function aer(v: number, success: boolean): Message {
  return {
    type: 'AppendEntriesReply', from: v, to: v, term: v, success,
    prevLogIndex: v, matchIndex: v, conflictTerm: v, conflictIndex: v, lastLogIndex: v, readContext: v,
  };
}

/** Round-trips through encode/decode, checks size === length, and returns the encoding. */
function roundTrip<T>(value: T, encode: (v: T) => Uint8Array, decode: (b: Uint8Array) => T, size: (v: T) => number): Uint8Array {
  const encoded = encode(value);
  assert.equal(size(value), encoded.length, 'size must equal encoded length');
  assert.deepEqual(decode(encoded), value);
  assert.deepEqual(encode(decode(encoded)), encoded, 're-encoding must be identical');
  return encoded;
}
const rtMessage = (m: Message): Uint8Array => roundTrip(m, encodeMessage, decodeMessage, messageSize);

function assertCodecError(fn: () => unknown, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CodecError, `expected CodecError, got ${String(e)}`);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

function assertPlainError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error && !(e instanceof CodecError), `expected plain Error, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('codec: varint golden bytes and sizes', () => {
  const cases: [number, number[]][] = [
    [0, [0]], [1, [1]], [127, [0x7f]], [128, [0x80, 0x01]], [300, [0xac, 0x02]],
    [16383, [0xff, 0x7f]], [16384, [0x80, 0x80, 0x01]], [2 ** 31, [0x80, 0x80, 0x80, 0x80, 0x08]],
    [2 ** 32, [0x80, 0x80, 0x80, 0x80, 0x10]], [MAX, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]],
  ];
  for (const [n, expected] of cases) {
    const w = new ByteWriter(1); // forces growth
    w.writeVarint(n);
    assert.deepEqual([...w.finish()], expected, `varint ${n}`);
    assert.equal(varintSize(n), expected.length);
  }
  for (let k = 1; k <= 7; k++) {
    assert.equal(varintSize(2 ** (7 * k) - 1), k);
    assert.equal(varintSize(2 ** (7 * k)), k + 1);
  }
});

test('codec: varints round-trip exactly across the whole safe range', () => {
  const values = [...EDGES];
  for (let k = 1; k <= 7; k++) values.push(2 ** (7 * k) - 1, 2 ** (7 * k), 2 ** (7 * k) + 1);
  for (let k = 31; k <= 52; k++) values.push(2 ** k + 12345, 2 ** k * 1.5);
  const w = new ByteWriter(0);
  for (const v of values) w.writeVarint(v);
  w.writeBool(true);
  w.writeBytes(cmd(200));
  const r = new ByteReader(w.finish());
  for (const v of values) assert.equal(r.readVarint(), v);
  assert.equal(r.readBool(), true);
  assert.deepEqual(r.readBytes(), cmd(200));
  assert.equal(r.remaining, 0);
  r.expectEnd();
});

test('codec: wire format and tags are pinned', () => {
  assert.deepEqual([...encodeMessage({ type: 'RequestVote', from: 1, to: 2, term: 3, lastLogIndex: 4, lastLogTerm: 5 })], [1, 1, 2, 3, 4, 5]);
  assert.deepEqual([...encodeMessage({ type: 'RequestVoteReply', from: 2, to: 1, term: 3, voteGranted: true })], [2, 2, 1, 3, 1]);
  assert.deepEqual(
    [...encodeMessage({ type: 'AppendEntries', from: 0, to: 1, term: 2, prevLogIndex: 3, prevLogTerm: 1, entries: [entry(4, 2, bytes(9, 8))], leaderCommit: 3, readContext: 6 })],
    [3, 0, 1, 2, 3, 1, 1, 2, 4, 0, 2, 9, 8, 3, 6],
  );
  assert.deepEqual(
    [...encodeMessage({ type: 'AppendEntriesReply', from: 1, to: 0, term: 2, success: false, prevLogIndex: 3, matchIndex: 0, conflictTerm: 1, conflictIndex: 2, lastLogIndex: 200, readContext: 6 })],
    [4, 1, 0, 2, 0, 3, 0, 1, 2, 0xc8, 0x01, 6],
  );
  assert.deepEqual([...encodeMessage({ type: 'PreVote', from: 1, to: 2, term: 3, lastLogIndex: 4, lastLogTerm: 5 })], [5, 1, 2, 3, 4, 5]);
  assert.deepEqual([...encodeMessage({ type: 'PreVoteReply', from: 2, to: 1, term: 3, voteGranted: false })], [6, 2, 1, 3, 0]);
  assert.deepEqual(
    [...encodeMessage({
      type: 'InstallSnapshot', from: 0, to: 1, term: 2, lastIncludedIndex: 9, lastIncludedTerm: 2, snapshotBytes: 129, checksum: 0xffffffff, offset: 128, data: bytes(7), done: true,
      membership: { voters: [0, 1], outgoing: [], learners: [2], addresses: [{ id: 2, address: 'h:1' }] },
    })],
    // ..., then the configuration: voters [0, 1], outgoing [], learners [2], addresses [2 -> "h:1"].
    [7, 0, 1, 2, 9, 2, 0x81, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x80, 0x01, 1, 7, 1, 2, 0, 1, 0, 1, 2, 1, 2, 3, 0x68, 0x3a, 0x31],
  );
  // Entries: term, index, kind (0: command bytes; 1: configuration).
  assert.deepEqual([...encodeEntry(entry(4, 2, bytes(9, 8)))], [2, 4, 0, 2, 9, 8]);
  assert.deepEqual([...encodeEntry(configEntry(5, 3, { voters: [1], outgoing: [0], learners: [], addresses: [] }))], [3, 5, 1, 1, 1, 1, 0, 0, 0]);
  assert.deepEqual(
    [...encodeMessage({ type: 'InstallSnapshotReply', from: 1, to: 0, term: 2, lastIncludedIndex: 9, nextOffset: 1, installed: false })],
    [8, 1, 0, 2, 9, 1, 0],
  );
  assert.deepEqual([...encodeMessage({ type: 'TimeoutNow', from: 0, to: 2, term: 5 })], [9, 0, 2, 5]);
  assert.deepEqual(MESSAGE_TAGS, {
    RequestVote: 1, RequestVoteReply: 2, AppendEntries: 3, AppendEntriesReply: 4,
    PreVote: 5, PreVoteReply: 6, InstallSnapshot: 7, InstallSnapshotReply: 8, TimeoutNow: 9,
  });
  assert.deepEqual([...encodeHardState({ term: 7, votedFor: -1 })], [7, 0]);
  assert.deepEqual([...encodeHardState({ term: 7, votedFor: 2 })], [7, 3]);
});

test('codec: every message type round-trips with edge values', () => {
  for (const v of EDGES) {
    rtMessage(rv(v));
    rtMessage(rvr(v, true));
    rtMessage(rvr(v, false));
    rtMessage(aer(v, true));
    rtMessage(aer(v, false));
    rtMessage(rv(v, 'PreVote'));
    rtMessage(rvr(v, true, 'PreVoteReply'));
    rtMessage(rvr(v, false, 'PreVoteReply'));
    rtMessage(is(v, new Uint8Array(0), true));
    rtMessage(is(v, cmd(v % 1000), false));
    rtMessage(is(v, cmd(3), true, NO_MEMBERS));
    rtMessage(is(v, cmd(3), true, { voters: [v], outgoing: [], learners: [], addresses: [{ id: v, address: `host-${v}` }] }));
    rtMessage(isr(v, true));
    rtMessage(isr(v, false));
    rtMessage(ae(v, []));
    rtMessage(ae(v, [entry(v, v, new Uint8Array(0)), entry(v, v, cmd(v % 300))]));
    rtMessage(ae(v, [entry(v, v, cmd(1)), configEntry(v, v), configEntry(v, v, NO_MEMBERS), entry(v, v, new Uint8Array(0))]));
  }
});

test('codec: large commands and many entries', () => {
  rtMessage(ae(5, [entry(1, 1, cmd(1 << 20))]));
  const many = Array.from({ length: 5000 }, (_, i) => entry(i + 1, 1 + (i >> 8), cmd(i % 40, i)));
  const encoded = rtMessage(ae(9, many));
  assert.ok(encoded.length > 5000 * 3);
});

test('codec: entry, HardState and PersistentState round-trip', () => {
  for (const v of EDGES) {
    roundTrip(entry(v, v, cmd(v % 200)), encodeEntry, decodeEntry, entrySize);
    roundTrip<HardState>({ term: v, votedFor: v === MAX ? -1 : v }, encodeHardState, decodeHardState, hardStateSize);
  }
  roundTrip<HardState>({ term: 0, votedFor: -1 }, encodeHardState, decodeHardState, hardStateSize);
  roundTrip<HardState>({ term: 1, votedFor: MAX - 1 }, encodeHardState, decodeHardState, hardStateSize);
  const states: PersistentState[] = [
    { hardState: { term: 0, votedFor: -1 }, snapshot: null, entries: [] },
    { hardState: { term: 2 ** 40, votedFor: 4 }, snapshot: null, entries: Array.from({ length: 300 }, (_, i) => entry(i + 1, i, cmd(i))) },
    { hardState: { term: 3, votedFor: 0 }, snapshot: { index: 1, term: 1, data: new Uint8Array(0) }, entries: [] },
    { hardState: { term: 9, votedFor: 2 }, snapshot: { index: MAX, term: 2 ** 33, data: cmd(70000) }, entries: [entry(7, 9, cmd(5))] },
    { hardState: { term: 4, votedFor: 1 }, snapshot: { index: 6, term: 3, data: cmd(20), membership: JOINT }, entries: [configEntry(7, 4), entry(8, 4, cmd(2))] },
    { hardState: { term: 4, votedFor: -1 }, snapshot: { index: 1, term: 1, data: new Uint8Array(0), membership: NO_MEMBERS }, entries: [] },
    { hardState: { term: 4, votedFor: -1 }, snapshot: null, entries: [configEntry(1, 1, NO_MEMBERS), configEntry(2, 4)] },
  ];
  for (const s of states) roundTrip(s, encodePersistentState, decodePersistentState, persistentStateSize);
  // "no snapshot" is (index 0, term 0, empty data); anything else with index 0 is malformed
  // (the last byte: no snapshot configuration follows)
  assert.deepEqual([...encodePersistentState(states[0]!)], [0, 0, 0, 0, 0, 0, 0]);
  assertCodecError(() => decodePersistentState(bytes(0, 0, 0, 1, 0, 0, 0)), /snapshot index 0 with term 1/);
  assertCodecError(() => decodePersistentState(bytes(0, 0, 0, 0, 0, 1, 5, 0)), /snapshot index 0 with 1 data bytes/);
  // A snapshot without a configuration stays without one (no key at all), and "no snapshot" carries none.
  const without = decodePersistentState(encodePersistentState(states[3]!));
  assert.equal('membership' in without.snapshot!, false);
  assertCodecError(() => decodePersistentState(bytes(0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0)), /snapshot index 0 with a configuration at offset 6/);
  assertCodecError(() => decodePersistentState(bytes(0, 0, 0, 0, 0, 0, 2)), /invalid boolean 2 at offset 6/);
  assertPlainError(() => encodePersistentState({ ...states[0]!, snapshot: { index: 0, term: 0, data: bytes(1) } }), /snapshot\.index/);
});

test('codec: decoded commands do not alias the input buffer', () => {
  const encoded = encodeMessage(ae(1, [entry(1, 1, bytes(10, 20, 30))]));
  const decoded = decodeMessage(encoded);
  assert.equal(decoded.type, 'AppendEntries');
  if (decoded.type !== 'AppendEntries') return;
  const command = decoded.entries[0]!.command;
  assert.notEqual(command.buffer, encoded.buffer);
  encoded.fill(0xee);
  assert.deepEqual(command, bytes(10, 20, 30));
  const e = encodeEntry(entry(1, 1, bytes(1, 2)));
  const de = decodeEntry(e);
  e.fill(0);
  assert.deepEqual(de.command, bytes(1, 2));
});


test('codec: 2000 random messages round-trip (seeded property test)', () => {
  const prng = new Prng(0x9e3779b9);
  const next = (): number => prng.nextUint32();
  const below = (n: number): number => prng.nextInt(n);
  const uint = (): number => {
    switch (below(4)) {
      case 0: return EDGES[below(EDGES.length)]!;
      case 1: return below(200);
      default: {
        const bits = below(54); // 0..53 bits
        const v = (next() >>> 11) * 2 ** 32 + next(); // 53 random bits
        return bits === 0 ? 0 : Math.floor(v / 2 ** (53 - bits));
      }
    }
  };
  // The codec does not care whether a configuration makes sense (the core does): any ids, any text.
  const ids = (): number[] => Array.from({ length: below(4) }, uint);
  const text = (): string => String.fromCodePoint(...Array.from({ length: below(12) }, () => [0x41 + below(26), 0xe9, 0x4e2d, 0x1f680][below(4)]!));
  const randomMembership = (): Membership => ({
    voters: ids(),
    outgoing: ids(),
    learners: ids(),
    addresses: Array.from({ length: below(3) }, () => ({ id: uint(), address: text() })),
  });
  for (let i = 0; i < 2000; i++) {
    let m: Message;
    switch (below(7)) {
      case 4: m = rvr(uint(), below(2) === 1, 'PreVoteReply'); break;
      case 5: {
        const data = cmd(below(500), next());
        const membership = randomMembership();
        m = { type: 'InstallSnapshot', from: uint(), to: uint(), term: uint(), lastIncludedIndex: uint(), lastIncludedTerm: uint(), snapshotBytes: uint(), checksum: uint() % 2 ** 32, offset: uint(), data, done: below(2) === 1, membership };
        break;
      }
      case 6: m = { type: 'InstallSnapshotReply', from: uint(), to: uint(), term: uint(), lastIncludedIndex: uint(), nextOffset: uint(), installed: below(2) === 1 }; break;
      case 0: m = { type: below(2) === 0 ? 'RequestVote' : 'PreVote', from: uint(), to: uint(), term: uint(), lastLogIndex: uint(), lastLogTerm: uint() }; break;
      case 1: m = { type: 'RequestVoteReply', from: uint(), to: uint(), term: uint(), voteGranted: below(2) === 1 }; break;
      case 2: {
        const entries = Array.from({ length: below(6) }, () => (below(4) === 0 ? configEntry(uint(), uint(), randomMembership()) : entry(uint(), uint(), cmd(below(300), next()))));
        m = { type: 'AppendEntries', from: uint(), to: uint(), term: uint(), prevLogIndex: uint(), prevLogTerm: uint(), entries, leaderCommit: uint(), readContext: uint() };
        break;
      }
      default:
        m = {
          type: 'AppendEntriesReply', from: uint(), to: uint(), term: uint(), success: below(2) === 1,
          prevLogIndex: uint(), matchIndex: uint(), conflictTerm: uint(), conflictIndex: uint(), lastLogIndex: uint(), readContext: uint(),
        };
    }
    rtMessage(m);
  }
});

test('codec: every truncated prefix throws CodecError', () => {
  const inputs: [Uint8Array, (b: Uint8Array) => unknown][] = [
    ...[rv(2 ** 40), rvr(300, true), aer(2 ** 33, false), rv(5, 'PreVote'), rvr(2 ** 20, false, 'PreVoteReply'), is(2 ** 35, cmd(150), true), isr(200, true), ae(16384, [entry(1, 2, cmd(5)), entry(2 ** 50, 3, new Uint8Array(0)), configEntry(4, 3), entry(3, 3, cmd(200))])]
      .map((m): [Uint8Array, (b: Uint8Array) => unknown] => [encodeMessage(m), decodeMessage]),
    [encodeEntry(entry(2 ** 45, 7, cmd(130))), decodeEntry],
    [encodeEntry(configEntry(2 ** 45, 7)), decodeEntry],
    [encodeHardState({ term: MAX, votedFor: 1000 }), decodeHardState],
    [encodePersistentState({ hardState: { term: 3, votedFor: -1 }, snapshot: null, entries: [entry(1, 1, cmd(2)), entry(2, 3, cmd(128))] }), decodePersistentState],
    [encodePersistentState({ hardState: { term: 3, votedFor: 1 }, snapshot: { index: 300, term: 2, data: cmd(130) }, entries: [entry(301, 3, cmd(1))] }), decodePersistentState],
    [encodePersistentState({ hardState: { term: 3, votedFor: 1 }, snapshot: { index: 300, term: 2, data: cmd(3), membership: JOINT }, entries: [configEntry(301, 3)] }), decodePersistentState],
  ];
  for (const [encoded, decode] of inputs) {
    decode(encoded);
    for (let len = 0; len < encoded.length; len++) {
      assertCodecError(() => decode(encoded.subarray(0, len))); // a view into a longer buffer
      assertCodecError(() => decode(encoded.slice(0, len)));
    }
  }
  assertCodecError(() => decodeMessage(new Uint8Array(0)), /offset 0/);
});

test('codec: unknown tags, trailing bytes, bad booleans, bad lengths', () => {
  for (const tag of [0, 10, 128, 255]) {
    assertCodecError(() => decodeMessage(bytes(tag, 1, 2, 3, 4, 5)), new RegExp(`unknown message tag ${tag} at offset 0`));
  }
  const good = encodeMessage(rv(3));
  assertCodecError(() => decodeMessage(Uint8Array.from([...good, 0, 0])), /trailing 2 bytes after message/);
  assertCodecError(() => decodeHardState(bytes(1, 0, 7)), /trailing 1 bytes/);
  assertCodecError(() => decodeMessage(bytes(2, 1, 2, 3, 2)), /invalid boolean 2 at offset 4/);
  assertCodecError(() => decodeEntry(bytes(1, 1, 0, 5, 1, 2)), /truncated byte string at offset 3/);
  // an absurd entry count fails fast instead of looping
  assertCodecError(() => decodeMessage(bytes(3, 0, 1, 2, 3, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 3)), /entry list/);
  assertCodecError(() => new ByteReader(bytes(1)).expectEnd(), /trailing 1 bytes after value/);
});

test('codec: varints over 2^53 - 1 and non-canonical varints are rejected', () => {
  const over = [
    [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10], // exactly 2^53
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
  ];
  for (const v of over) {
    assertCodecError(() => new ByteReader(Uint8Array.from(v)).readVarint(), /varint exceeds 2\^53 - 1 at offset 0/);
    assertCodecError(() => decodeMessage(Uint8Array.from([1, 0, 0, ...v, 0, 0])), /varint exceeds 2\^53 - 1 at offset 3/);
  }
  assertCodecError(() => new ByteReader(bytes(0x80, 0x00)).readVarint(), /non-canonical varint at offset 0/);
  assertCodecError(() => decodeHardState(bytes(0x81, 0x80, 0x00, 0)), /non-canonical/);
  assertCodecError(() => new ByteReader(bytes(0x80, 0x80)).readVarint(), /truncated varint at offset 0/);
});

test('codec: encoders reject invalid fields with a plain Error naming the field', () => {
  for (const bad of [-1, 0.5, NaN, Infinity, 2 ** 53, -0.5]) {
    assertPlainError(() => encodeMessage({ ...(rv(1) as Extract<Message, { type: 'RequestVote' }>), term: bad }), /term/);
    assertPlainError(() => messageSize({ ...(rv(1) as Extract<Message, { type: 'RequestVote' }>), lastLogIndex: bad }), /lastLogIndex/);
    assertPlainError(() => encodeEntry(entry(bad, 1)), /entry\.index/);
    assertPlainError(() => encodeMessage(ae(1, [entry(1, bad)])), /entry\.term/);
    assertPlainError(() => varintSize(bad), /varint/);
    assertPlainError(() => new ByteWriter().writeVarint(bad, 'myField'), /myField/);
  }
  for (const bad of [-2, 0.5, NaN, MAX]) {
    assertPlainError(() => encodeHardState({ term: 1, votedFor: bad }), /votedFor/);
  }
  assertPlainError(() => encodeMessage({ ...(rvr(1, true) as Extract<Message, { type: 'RequestVoteReply' }>), voteGranted: 1 as unknown as boolean }), /voteGranted/);
  assertPlainError(() => encodeEntry({ index: 1, term: 1, command: [1, 2] as unknown as Uint8Array }), /command/);
  assertPlainError(() => encodeMessage({ type: 'Nope' } as unknown as Message), /unknown message type Nope/);
});

test('codec: configuration entries and configurations round-trip', () => {
  for (const v of EDGES) roundTrip(configEntry(v, v), encodeEntry, decodeEntry, entrySize);
  const m: Membership = { voters: [0, MAX], outgoing: [7], learners: [], addresses: [{ id: 0, address: 'x'.repeat(1024) }, { id: MAX, address: '::1' }] };
  const decoded = decodeEntry(encodeEntry(configEntry(3, 2, m)));
  assert.deepEqual(decoded, configEntry(3, 2, m));
  assert.equal(decoded.command.length, 0);
  assert.equal('membership' in decodeEntry(encodeEntry(entry(3, 2))), false, 'a command entry decodes without a membership key');
  // The configuration alone, through the exported reader and writer.
  for (const c of [NO_MEMBERS, JOINT, m]) {
    const w = new ByteWriter(0);
    writeMembership(w, c);
    const encoded = w.finish();
    assert.equal(encoded.length, membershipSize(c));
    const r = new ByteReader(encoded);
    assert.deepEqual(readMembership(r), c);
    r.expectEnd();
  }
});

test('codec: an unknown entry kind, invalid UTF-8 in an address and truncated configurations are rejected', () => {
  for (const kind of [2, 3, 0x80, 0xff]) assertCodecError(() => decodeEntry(bytes(1, 1, kind, 0)), new RegExp(`unknown entry kind ${kind} at offset 2`));
  // Through a message too: the AppendEntries' first entry starts at offset 7.
  assertCodecError(() => decodeMessage(bytes(3, 0, 1, 2, 3, 1, 1, 2, 4, 9, 2, 9, 8, 3, 6)), /unknown entry kind 9 at offset 9/);
  // Term 1, index 1, kind 1, voters [0], outgoing [], learners [], one address: member 0, 2 bytes.
  const config = (address: number[]): Uint8Array => bytes(1, 1, 1, 1, 0, 0, 0, 1, 0, address.length, ...address);
  assert.deepEqual(decodeEntry(config([0xc3, 0xa9])).membership!.addresses, [{ id: 0, address: 'é' }]);
  for (const bad of [[0xff, 0x41], [0xc3], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0x41, 0x80]]) {
    assertCodecError(() => decodeEntry(config(bad)), /address of member 0 at offset 9 is not valid UTF-8/);
  }
  const snapshotMessage = encodeMessage(is(1, cmd(2), true, { voters: [1], outgoing: [], learners: [], addresses: [{ id: 1, address: 'ab' }] }));
  const broken = Uint8Array.from(snapshotMessage);
  broken[broken.length - 1] = 0xfe;
  assertCodecError(() => decodeMessage(broken), /address of member 1 at offset \d+ is not valid UTF-8/);
  // Absurd counts fail fast instead of allocating.
  assertCodecError(() => decodeEntry(bytes(1, 1, 1, 0xff, 0xff, 0xff, 0x7f, 0)), /truncated id list at offset 3/);
  assertCodecError(() => decodeEntry(bytes(1, 1, 1, 0, 0, 0, 0xff, 0xff, 0x03, 0)), /truncated address list at offset 6/);
  assertCodecError(() => decodeEntry(bytes(1, 1, 1, 0, 0, 0, 0, 7)), /trailing 1 bytes after entry/);
});

test('codec: encoders reject malformed configurations with a plain Error', () => {
  assertPlainError(() => encodeEntry({ ...configEntry(1, 1), command: bytes(1) }), /a configuration entry carries no command/);
  assertPlainError(() => encodeEntry(configEntry(1, 1, { ...JOINT, voters: [1, -1] })), /membership\.voters/);
  assertPlainError(() => encodeEntry(configEntry(1, 1, { ...JOINT, learners: [0.5] })), /membership\.learners/);
  assertPlainError(() => encodeMessage(is(1, cmd(1), true, { ...JOINT, outgoing: [NaN] })), /membership\.outgoing/);
  assertPlainError(() => encodeMessage(is(1, cmd(1), true, { ...JOINT, addresses: [{ id: 1, address: 7 as unknown as string }] })), /address must be a string/);
  assertPlainError(() => encodePersistentState({ hardState: { term: 1, votedFor: -1 }, snapshot: { index: 1, term: 1, data: cmd(1), membership: { ...JOINT, addresses: [{ id: -3, address: 'a' }] } }, entries: [] }), /membership\.addresses\.id/);
});

test('codec: a 5000-byte command costs at most 5000 + 16 bytes in a one-entry AppendEntries', () => {
  const m: Message = { type: 'AppendEntries', from: 0, to: 4, term: 7, prevLogIndex: 41, prevLogTerm: 7, entries: [entry(42, 7, cmd(5000))], leaderCommit: 40, readContext: 0 };
  const size = messageSize(m);
  assert.equal(encodeMessage(m).length, size);
  assert.ok(size <= 5000 + 16, `size ${size}`);
});

test('decoding from a Node Buffer returns plain, unaliased Uint8Arrays', async () => {
  const { encodeMessage: encode, decodeMessage: decode } = await import('../../src/codec/index.js');
  const message = {
    type: 'AppendEntries' as const,
    from: 1,
    to: 2,
    term: 3,
    prevLogIndex: 4,
    prevLogTerm: 3,
    entries: [{ index: 5, term: 3, command: new Uint8Array([9, 8, 7]) }],
    leaderCommit: 4,
    readContext: 0,
  };
  const buffer = Buffer.from(encode(message));
  const decoded = decode(buffer);
  assert.equal(decoded.type, 'AppendEntries');
  if (decoded.type !== 'AppendEntries') return;
  const command = decoded.entries[0]!.command;
  assert.equal(Buffer.isBuffer(command), false);
  buffer.fill(0);
  assert.deepEqual([...command], [9, 8, 7]);
});
