/**
 * Fuzz: the wire and WAL codec (src/codec/codec.ts). Seeded and bounded (see fuzz-config.ts).
 *
 * - every message type, entries (configuration entries included), hard states, persistent states
 *   and configurations round-trip: decode(encode(x)) deep-equals x;
 * - random bytes and mutated valid encodings (bit flips, overwritten bytes, truncations,
 *   insertions, deletions) either decode or throw CodecError, never anything else; and whatever
 *   decodes re-encodes to exactly the bytes it came from (the encoding is canonical, so no two byte
 *   strings mean the same value).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fc from 'fast-check';
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
  readMembership,
  writeMembership,
} from '../../src/codec/index.js';
import type { Membership } from '../../src/core/membership.js';
import type { Entry, HardState, Message, PersistentState, Snapshot } from '../../src/core/messages.js';
import { isWellFormedString } from '../../src/kv/commands.js';
import { check, decodesOrRefuses, hex, mutate, mutationsArb } from './fuzz-config.js';

// ---------------------------------------------------------------- generators

/** fc.record with plain objects (the decoders build plain objects, and deepStrictEqual compares prototypes). */
const rec = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> => fc.record(model as never, { noNullPrototype: true }) as fc.Arbitrary<T>;

/** Non-negative safe integers, biased to the varint length boundaries. */
const uint = fc.oneof(
  { weight: 3, arbitrary: fc.nat({ max: 300 }) },
  { weight: 2, arbitrary: fc.constantFrom(0, 127, 128, 16383, 16384, 2 ** 21 - 1, 2 ** 21, 2 ** 28, 2 ** 35, 2 ** 49 - 1, 2 ** 49, Number.MAX_SAFE_INTEGER) },
  { weight: 1, arbitrary: fc.maxSafeNat() },
);
const nodeId = fc.oneof(fc.nat({ max: 10 }), uint);
const bytes = fc.oneof({ weight: 4, arbitrary: fc.uint8Array({ maxLength: 40 }) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 128, maxLength: 300 }) });

/** Strings that survive UTF-8, with the prefixes a decoder can get wrong (BOM, NUL, multi-byte). */
const address = fc
  .tuple(fc.constantFrom('', '', '', '\uFEFF', '\u0000', 'é', '\u{1F600}'), fc.string({ unit: 'binary', maxLength: 24 }))
  .map(([prefix, rest]) => prefix + rest)
  .filter(isWellFormedString);

const membershipArb: fc.Arbitrary<Membership> = rec({
  voters: fc.array(nodeId, { maxLength: 6 }),
  outgoing: fc.array(nodeId, { maxLength: 4 }),
  learners: fc.array(nodeId, { maxLength: 4 }),
  addresses: fc.array(rec({ id: nodeId, address }), { maxLength: 5 }),
});

const commandEntry: fc.Arbitrary<Entry> = rec({ index: uint, term: uint, command: bytes });
const configEntry: fc.Arbitrary<Entry> = rec({ index: uint, term: uint, command: fc.constant(new Uint8Array(0)), membership: membershipArb });
const entryArb = fc.oneof({ weight: 3, arbitrary: commandEntry }, { weight: 1, arbitrary: configEntry });
const entries = fc.array(entryArb, { maxLength: 5 });

const head = { from: nodeId, to: nodeId, term: uint };
const messageArb: fc.Arbitrary<Message> = fc.oneof(
  rec({ type: fc.constant('RequestVote' as const), ...head, lastLogIndex: uint, lastLogTerm: uint }),
  rec({ type: fc.constant('PreVote' as const), ...head, lastLogIndex: uint, lastLogTerm: uint }),
  rec({ type: fc.constant('RequestVoteReply' as const), ...head, voteGranted: fc.boolean() }),
  rec({ type: fc.constant('PreVoteReply' as const), ...head, voteGranted: fc.boolean() }),
  rec({ type: fc.constant('AppendEntries' as const), ...head, prevLogIndex: uint, prevLogTerm: uint, entries, leaderCommit: uint, readContext: uint }),
  rec({
    type: fc.constant('AppendEntriesReply' as const),
    ...head,
    success: fc.boolean(),
    prevLogIndex: uint,
    matchIndex: uint,
    conflictTerm: uint,
    conflictIndex: uint,
    lastLogIndex: uint,
    readContext: uint,
  }),
  rec({
    type: fc.constant('InstallSnapshot' as const),
    ...head,
    lastIncludedIndex: uint,
    lastIncludedTerm: uint,
    snapshotBytes: uint,
    checksum: fc.oneof(fc.constantFrom(0, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff })),
    offset: uint,
    data: bytes,
    done: fc.boolean(),
    membership: membershipArb,
  }),
  rec({ type: fc.constant('InstallSnapshotReply' as const), ...head, lastIncludedIndex: uint, nextOffset: uint, installed: fc.boolean() }),
  rec({ type: fc.constant('TimeoutNow' as const), ...head }),
);

const hardStateArb: fc.Arbitrary<HardState> = rec({ term: uint, votedFor: fc.oneof(fc.constant(-1), fc.nat({ max: 10 }), fc.constant(Number.MAX_SAFE_INTEGER - 1)) });
const snapshotArb: fc.Arbitrary<Snapshot> = fc.oneof(
  rec({ index: uint.filter((i) => i > 0), term: uint, data: bytes }),
  rec({ index: uint.filter((i) => i > 0), term: uint, data: bytes, membership: membershipArb }),
);
const persistentArb: fc.Arbitrary<PersistentState> = rec({ hardState: hardStateArb, snapshot: fc.option(snapshotArb), entries });

const encodeMembership = (m: Membership): Uint8Array => {
  const w = new ByteWriter();
  writeMembership(w, m);
  return w.finish();
};
const decodeMembership = (b: Uint8Array): Membership => {
  const r = new ByteReader(b);
  const m = readMembership(r);
  r.expectEnd('membership');
  return m;
};

interface Codec<T> {
  readonly name: string;
  readonly arb: fc.Arbitrary<T>;
  readonly encode: (v: T) => Uint8Array;
  readonly decode: (b: Uint8Array) => T;
}
const codecs: Codec<unknown>[] = [
  { name: 'message', arb: messageArb, encode: encodeMessage, decode: decodeMessage } as Codec<Message>,
  { name: 'entry', arb: entryArb, encode: encodeEntry, decode: decodeEntry } as Codec<Entry>,
  { name: 'hard state', arb: hardStateArb, encode: encodeHardState, decode: decodeHardState } as Codec<HardState>,
  { name: 'persistent state', arb: persistentArb, encode: encodePersistentState, decode: decodePersistentState } as Codec<PersistentState>,
  { name: 'membership', arb: membershipArb, encode: encodeMembership, decode: decodeMembership } as Codec<Membership>,
] as Codec<unknown>[];

/** Decodes `input` with `codec`: CodecError or a value that re-encodes to `input` byte for byte. */
function decodeCanonically(codec: Codec<unknown>, input: Uint8Array): void {
  const value = decodesOrRefuses(() => codec.decode(input), CodecError, `decode ${codec.name} of ${hex(input)}`);
  if (value === undefined) return;
  assert.equal(hex(codec.encode(value)), hex(input), `${codec.name}: ${hex(input)} decodes but does not re-encode to the same bytes`);
}

// ---------------------------------------------------------------- round trips

for (const codec of codecs) {
  test(`fuzz codec: every ${codec.name} round-trips`, () => {
    check(
      `codec round trip: ${codec.name}`,
      fc.property(codec.arb, (value) => {
        const encoded = codec.encode(value);
        assert.deepStrictEqual(codec.decode(encoded), value);
        // Decoding copies: the result does not change when the input buffer does.
        const copy = encoded.slice();
        const again = codec.decode(copy);
        copy.fill(0xa5);
        assert.deepStrictEqual(again, value);
      }),
      codec.name === 'message' ? 600 : 300,
    );
  });
}

test('fuzz codec: every message type is generated', () => {
  const seen = new Set(fc.sample(messageArb, { seed: 1, numRuns: 400 }).map((m) => m.type));
  assert.equal(seen.size, 9, [...seen].join(', '));
});

// ---------------------------------------------------------------- hostile bytes

for (const codec of codecs) {
  test(`fuzz codec: random bytes never make the ${codec.name} decoder throw anything but CodecError`, () => {
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      // A valid message tag first, so the fuzz gets past the first byte more often.
      fc.tuple(fc.integer({ min: 0, max: 10 }), fc.uint8Array({ maxLength: 64 })).map(([tag, rest]) => Uint8Array.from([tag, ...rest])),
    );
    check(`codec random bytes: ${codec.name}`, fc.property(input, (b) => decodeCanonically(codec, b)), 1500);
  });

  test(`fuzz codec: mutated ${codec.name} encodings decode canonically or throw CodecError`, () => {
    check(
      `codec mutations: ${codec.name}`,
      fc.property(codec.arb, mutationsArb, (value, mutations) => decodeCanonically(codec, mutate(codec.encode(value), mutations))),
      codec.name === 'message' ? 1500 : 700,
    );
  });
}

// ---------------------------------------------------------------- regressions found by the fuzz

test('fuzz codec regression: an address that begins with U+FEFF (a byte-order mark) round-trips', () => {
  const m: Membership = { voters: [1], outgoing: [], learners: [], addresses: [{ id: 1, address: '\uFEFF10.0.0.1:7000' }] };
  assert.deepStrictEqual(decodeMembership(encodeMembership(m)), m);
  const e: Entry = { index: 3, term: 2, command: new Uint8Array(0), membership: m };
  assert.deepStrictEqual(decodeEntry(encodeEntry(e)), e);
});
