/**
 * Fuzz: the KV service's decoders (src/kv/commands.ts, the snapshot decoder in
 * src/kv/state-machine.ts). Seeded and bounded (see fuzz-config.ts).
 *
 * - valid commands and results (transactions and their results included) round-trip; random and mutated bytes make decodeKvCommand and
 *   decodeKvResult throw CodecError or decode, and a command that decodes and validates re-encodes
 *   to the same bytes; applying any bytes to a state machine never throws (a malformed command is a
 *   no-op with an invalid-command result);
 * - snapshots of state machines built from random commands restore to the same state (re-snapshot
 *   gives the same bytes); mutated snapshots make restore() throw CodecError or succeed, and
 *   checkSnapshot() answer a reason or null, never throw; a current-version snapshot that restores
 *   re-snapshots to exactly its bytes (the encoding is canonical, as state-machine.ts promises).
 *   Histories include leases (grants, keys attached, revokes) and conditional puts (if-mod-revision), so snapshots carry leases, revisions and cached
 *   results with them; ranges over the restored machine answer like the original's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fc from 'fast-check';
import { CodecError } from '../../src/codec/index.js';
import {
  CLIENT_ID_BYTES_MAX,
  decodeKvCommand,
  decodeKvResult,
  encodeKvCommand,
  encodeKvResult,
  isWellFormedString,
  txnProblem,
  utf8Encode,
  validateKvCommand,
  type KvAnyCommand,
  type KvCompare,
  type KvResult,
  type KvTxnCommand,
  type KvTxnOp,
  type KvTxnOpResult,
} from '../../src/kv/commands.js';
import { KvStateMachine, SNAPSHOT_VERSION } from '../../src/kv/state-machine.js';
import { check, decodesOrRefuses, hex, mutate, mutationsArb } from './fuzz-config.js';

// ---------------------------------------------------------------- generators

const clientId = fc
  .tuple(fc.constantFrom('', '', 'c', '\uFEFF', 'é'), fc.string({ unit: 'binary', maxLength: 20 }))
  .map(([a, b]) => a + b)
  .filter((s) => isWellFormedString(s) && utf8Encode(s).length <= CLIENT_ID_BYTES_MAX);
const seq = fc.oneof(fc.nat({ max: 20 }), fc.constantFrom(127, 128, Number.MAX_SAFE_INTEGER), fc.maxSafeNat());
const key = fc.oneof({ weight: 5, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 4 }) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 200 }) });
const value = fc.uint8Array({ maxLength: 60 });
const opts = { noNullPrototype: true } as const;

const compareOp = fc.constantFrom('=' as const, '!=' as const, '<' as const, '>' as const);
const compareArb = (k: fc.Arbitrary<Uint8Array>): fc.Arbitrary<KvCompare> =>
  fc.oneof(
    fc.record({ key: k, target: fc.constant('value' as const), op: compareOp, value }, opts),
    fc.record({ key: k, target: fc.constantFrom('version' as const, 'create' as const, 'mod' as const), op: compareOp, value: fc.oneof(fc.nat({ max: 10 }), fc.maxSafeNat()) }, opts),
    fc.record({ key: k, target: fc.constant('exists' as const), op: fc.constantFrom('=' as const, '!=' as const), value: fc.boolean() }, opts),
  );
const leaseId = fc.oneof(fc.integer({ min: 1, max: 4 }), fc.maxSafeNat().filter((n) => n >= 1));
const txnOpArb = (k: fc.Arbitrary<Uint8Array>): fc.Arbitrary<KvTxnOp> =>
  fc.oneof(
    fc.record({ type: fc.constant('put' as const), key: k, value }, opts),
    fc.record({ type: fc.constant('put' as const), key: k, value, lease: leaseId }, opts),
    fc.record({ type: fc.constantFrom('delete' as const, 'get' as const), key: k }, opts),
  );
/** Valid transactions (no key written twice in a branch) over keys drawn from `k`. */
const txnArb = (k: fc.Arbitrary<Uint8Array>, id: fc.Arbitrary<string>, s: fc.Arbitrary<number>): fc.Arbitrary<KvTxnCommand> =>
  fc
    .record(
      { op: fc.constant('txn' as const), clientId: id, seq: s, compare: fc.array(compareArb(k), { maxLength: 3 }), then: fc.array(txnOpArb(k), { maxLength: 4 }), else: fc.array(txnOpArb(k), { maxLength: 4 }) },
      opts,
    )
    .filter((t) => txnProblem(t) === null);

const commandArb: fc.Arbitrary<KvAnyCommand> = fc.oneof(
  txnArb(key, clientId, seq),
  fc.record({ op: fc.constantFrom('put' as const, 'append' as const), clientId, seq, key, value }, opts),
  fc.record({ op: fc.constantFrom('delete' as const, 'get' as const), clientId, seq, key }, opts),
  fc.record({ op: fc.constant('cas' as const), clientId, seq, key, value, expected: fc.option(value) }, opts),
  fc.record({ op: fc.constant('put' as const), clientId, seq, key, value, ifModRevision: fc.oneof(fc.nat({ max: 5 }), fc.maxSafeNat()) }, opts),
  fc.record({ op: fc.constant('put' as const), clientId, seq, key, value, lease: leaseId }, opts),
  fc.record({ op: fc.constant('put' as const), clientId, seq, key, value, ifModRevision: fc.nat({ max: 5 }), lease: leaseId }, opts),
  fc.record({ op: fc.constant('lease-grant' as const), clientId, seq, ttlSeconds: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.constant(9_000_000_000)) }, opts),
  fc.record({ op: fc.constant('lease-revoke' as const), clientId, seq, id: leaseId }, opts),
  fc.record({ op: fc.constant('lease-revoke' as const), clientId, seq, id: leaseId, expired: fc.constant(true as const) }, opts),
);

/** Valid key revisions at store revision `revision` (>= 1). */
const keyMetaArb = fc
  .tuple(fc.nat({ max: 1000 }), fc.nat({ max: 1000 }), fc.nat({ max: 1000 }), fc.nat({ max: 1000 }))
  .map(([a, b, c, d]) => {
    const createRevision = 1 + a;
    const modRevision = createRevision + b;
    const version = 1 + (c % (modRevision - createRevision + 1));
    return { revision: modRevision + d, key: { createRevision, modRevision, version } };
  });

const messageText = fc.string({ maxLength: 30 }).filter(isWellFormedString);
const resultArb: fc.Arbitrary<KvResult> = fc.oneof(
  fc.constant<KvResult>({ ok: true }),
  fc.record({ ok: fc.constant(true as const), value: fc.option(value) }, opts),
  fc.record({ ok: fc.constant(true as const), value: fc.option(value), swapped: fc.boolean() }, opts),
  fc.record({ ok: fc.constant(true as const), swapped: fc.boolean() }, opts),
  fc.record({ ok: fc.constant(true as const), value: fc.option(value), revision: fc.maxSafeNat() }, opts),
  fc.tuple(fc.option(value), fc.option(fc.boolean()), keyMetaArb).map(([v, swapped, meta]): KvResult => ({ ok: true, value: v, ...(swapped === null ? {} : { swapped }), ...meta })),
  fc.record({ ok: fc.constant(false as const), error: fc.constantFrom('stale-request' as const, 'invalid-command' as const, 'lease-not-found' as const), message: messageText }, opts),
  fc.record({ ok: fc.constant(true as const), revision: fc.maxSafeNat(), lease: fc.record({ id: leaseId, ttlSeconds: fc.integer({ min: 1, max: 9_000_000_000 }), deletedKeys: fc.nat() }, opts) }, opts),
  // A txn result: every op's revisions within the result's revision.
  fc.tuple(fc.boolean(), fc.array(fc.tuple(fc.constantFrom('put' as const, 'delete' as const, 'get' as const), fc.option(value), keyMetaArb, fc.boolean()), { maxLength: 4 }), fc.nat({ max: 50 })).map(
    ([succeeded, ops, extra]): KvResult => {
      const revision = Math.max(0, ...ops.map(([, , meta]) => meta.revision)) + extra;
      const results = ops.map(([type, v, meta, withKey]): KvTxnOpResult => (type === 'put' || (type === 'get' && withKey) ? { type, value: v, key: meta.key } : { type, value: v }));
      return { ok: true, revision, txn: { succeeded, results } };
    },
  ),
);

// ---------------------------------------------------------------- commands and results

test('fuzz KV: valid commands round-trip', () => {
  check(
    'KV command round trip',
    fc.property(commandArb, (cmd) => {
      assert.equal(validateKvCommand(cmd), null);
      assert.deepStrictEqual(decodeKvCommand(encodeKvCommand(cmd)), cmd);
    }),
    800,
  );
});

test('fuzz KV: results round-trip', () => {
  check('KV result round trip', fc.property(resultArb, (r) => assert.deepStrictEqual(decodeKvResult(encodeKvResult(r)), r)), 500);
});

/** CodecError, or a command that is invalid, or one that re-encodes to `input`; and applying `input` never throws. */
function commandBytesAreSafe(input: Uint8Array): void {
  const cmd = decodesOrRefuses(() => decodeKvCommand(input), CodecError, `decodeKvCommand(${hex(input)})`);
  if (cmd !== undefined && validateKvCommand(cmd) === null) {
    assert.equal(hex(encodeKvCommand(cmd)), hex(input), `${hex(input)} decodes to a valid command that re-encodes differently`);
  }
  const machine = new KvStateMachine();
  const result = machine.applyCommand(1, input);
  if (cmd === undefined) assert.equal(result.ok === false && result.error, 'invalid-command', `malformed ${hex(input)} applied as ${JSON.stringify(result)}`);
  assert.equal(machine.appliedIndex, 1);
}

function resultBytesAreSafe(input: Uint8Array): void {
  const r = decodesOrRefuses(() => decodeKvResult(input), CodecError, `decodeKvResult(${hex(input)})`);
  if (r !== undefined) assert.equal(hex(encodeKvResult(r)), hex(input), `${hex(input)} decodes to a result that re-encodes differently`);
}

test('fuzz KV: random bytes never make the command and result decoders throw anything but CodecError', () => {
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 48 }),
    fc.tuple(fc.integer({ min: 0, max: 8 }), fc.uint8Array({ maxLength: 48 })).map(([tag, rest]) => Uint8Array.from([tag, ...rest])),
    // A txn command's or result's head, then random bytes (small counts, so that they may decode).
    fc.tuple(fc.constantFrom(4, 7), fc.uint8Array({ maxLength: 40 })).map(([tag, rest]) => Uint8Array.from(tag === 7 ? [7, 0, 1, ...rest] : [4, 5, 1, ...rest])),
  );
  check('KV command random bytes', fc.property(input, commandBytesAreSafe), 1500);
  check('KV result random bytes', fc.property(input, resultBytesAreSafe), 1500);
});

test('fuzz KV: mutated commands and results decode canonically or throw CodecError', () => {
  check('KV command mutations', fc.property(commandArb, mutationsArb, (cmd, m) => commandBytesAreSafe(mutate(encodeKvCommand(cmd), m))), 1500);
  check('KV result mutations', fc.property(resultArb, mutationsArb, (r, m) => resultBytesAreSafe(mutate(encodeKvResult(r), m))), 1000);
});

// ---------------------------------------------------------------- snapshots

/** Commands drawn from few keys and clients, so that sessions, duplicates and overwrites happen. */
const historyCommand: fc.Arbitrary<KvAnyCommand> = fc.oneof(
  txnArb(fc.uint8Array({ minLength: 1, maxLength: 2 }), fc.constantFrom('', 'a', 'e'), fc.nat({ max: 6 })),
  fc.record({ op: fc.constantFrom('put' as const, 'append' as const), clientId: fc.constantFrom('', 'a', 'b', '\uFEFFz', 'é'), seq: fc.nat({ max: 6 }), key: fc.uint8Array({ minLength: 1, maxLength: 2 }), value }, opts),
  fc.record({ op: fc.constantFrom('delete' as const, 'get' as const), clientId: fc.constantFrom('', 'a', 'c'), seq: fc.nat({ max: 6 }), key: fc.uint8Array({ minLength: 1, maxLength: 2 }) }, opts),
  fc.record({ op: fc.constant('cas' as const), clientId: fc.constantFrom('', 'b', 'd'), seq: fc.nat({ max: 6 }), key: fc.uint8Array({ minLength: 1, maxLength: 2 }), value, expected: fc.option(value) }, opts),
  fc.record({ op: fc.constant('put' as const), clientId: fc.constantFrom('', 'a', 'd'), seq: fc.nat({ max: 6 }), key: fc.uint8Array({ minLength: 1, maxLength: 2 }), value, ifModRevision: fc.nat({ max: 8 }) }, opts),
  // Leases: grants, puts attaching keys to the first few ids, revokes (some of unknown ids).
  fc.record({ op: fc.constant('lease-grant' as const), clientId: fc.constantFrom('', 'a', 'g'), seq: fc.nat({ max: 6 }), ttlSeconds: fc.integer({ min: 1, max: 60 }) }, opts),
  fc.record({ op: fc.constant('put' as const), clientId: fc.constantFrom('', 'b'), seq: fc.nat({ max: 6 }), key: fc.uint8Array({ minLength: 1, maxLength: 2 }), value, lease: fc.integer({ min: 1, max: 4 }) }, opts),
  fc.record({ op: fc.constant('lease-revoke' as const), clientId: fc.constantFrom('', 'g'), seq: fc.nat({ max: 6 }), id: fc.integer({ min: 1, max: 5 }) }, opts),
);
/** A history: commands, with now and then raw (possibly malformed) bytes in between. */
const historyArb = fc.array(fc.oneof({ weight: 6, arbitrary: historyCommand.map(encodeKvCommand) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }) }), { maxLength: 25 });

function machineAfter(history: readonly Uint8Array[]): KvStateMachine {
  const m = new KvStateMachine();
  history.forEach((bytes, i) => m.applyCommand(i + 1, bytes));
  return m;
}

test('fuzz KV: snapshots restore to the same state', () => {
  check(
    'KV snapshot round trip',
    fc.property(historyArb, (history) => {
      const m = machineAfter(history);
      const data = m.snapshot();
      const restored = new KvStateMachine();
      assert.equal(restored.checkSnapshot({ index: m.appliedIndex, term: 1, data }), null);
      restored.restore({ index: m.appliedIndex, term: 1, data });
      assert.equal(hex(restored.snapshot()), hex(data));
      assert.deepStrictEqual(restored.stats, m.stats);
      assert.equal(restored.revision, m.revision);
      const all = { start: new Uint8Array(0), end: null, limit: 10_000 };
      assert.deepStrictEqual(restored.range(all), m.range(all));
    }),
    400,
  );
});

test('fuzz KV: mutated snapshots are refused with CodecError or restore canonically; checkSnapshot never throws', () => {
  check(
    'KV snapshot mutations',
    fc.property(historyArb, mutationsArb, fc.boolean(), (history, mutations, sameIndex) => {
      const m = machineAfter(history);
      const data = mutate(m.snapshot(), mutations);
      const index = sameIndex ? m.appliedIndex : m.appliedIndex + 1;
      const reason = new KvStateMachine().checkSnapshot({ index, term: 1, data });
      const restored = new KvStateMachine();
      const ok = decodesOrRefuses(() => (restored.restore({ index, term: 1, data }), true), CodecError, `restore(${hex(data)})`);
      assert.equal(ok === true, reason === null, `checkSnapshot said ${String(reason)} but restore ${ok === true ? 'succeeded' : 'failed'}`);
      if (ok === true) {
        assert.equal(restored.appliedIndex, index);
        if (data[0] === SNAPSHOT_VERSION) assert.equal(hex(restored.snapshot()), hex(data), 'a current-version snapshot that restores re-snapshots to its own bytes');
        // Whatever restored is a consistent store: every key's revisions within the store's.
        for (const kv of restored.range({ start: new Uint8Array(0), end: null, limit: 10_000 }).kvs) {
          assert.ok(1 <= kv.createRevision && kv.createRevision <= kv.modRevision && kv.modRevision <= restored.revision && kv.version >= 1);
        }
      }
    }),
    1500,
  );
});
