import { Prng } from '../../src/sim/prng.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteWriter, CodecError } from '../../src/codec/codec.js';
import {
  CLIENT_ID_BYTES_MAX,
  decodeKvCommand,
  decodeKvResult,
  encodeKvCommand,
  encodeKvResult,
  KEY_BYTES_MAX,
  KV_OP_TAGS,
  KvStateMachine,
  validateKvCommand,
  VALUE_BYTES_MAX,
  type KvCommand,
  type KvResult,
} from '../../src/kv/index.js';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);
const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');

/** A result without `revision` and `key` (what the tests written before revisions compare). */
function stripRevisions(result: KvResult): KvResult {
  if (!result.ok) return result;
  const { revision: _r, key: _k, ...rest } = result;
  return rest;
}

/** A state machine plus its next log index. */
class Replica {
  next = 1;
  constructor(readonly sm = new KvStateMachine()) {
    this.next = sm.appliedIndex + 1;
  }
  /** Applies a command; the result without its revisions (the revision tests use full()). */
  run(cmd: KvCommand): KvResult {
    return stripRevisions(this.full(cmd));
  }
  full(cmd: KvCommand): KvResult {
    return this.sm.applyCommand(this.next++, encodeKvCommand(cmd));
  }
  raw(bytes: Uint8Array): KvResult {
    return stripRevisions(this.sm.applyCommand(this.next++, bytes));
  }
}

const put = (key: string, value: string, clientId = '', seq = 0): KvCommand => ({ op: 'put', clientId, seq, key: b(key), value: b(value) });
const append = (key: string, value: string, clientId = '', seq = 0): KvCommand => ({ op: 'append', clientId, seq, key: b(key), value: b(value) });
const del = (key: string, clientId = '', seq = 0): KvCommand => ({ op: 'delete', clientId, seq, key: b(key) });
const get = (key: string, clientId = '', seq = 0): KvCommand => ({ op: 'get', clientId, seq, key: b(key) });
const cas = (key: string, expected: string | null, value: string, clientId = '', seq = 0): KvCommand => ({
  op: 'cas',
  clientId,
  seq,
  key: b(key),
  value: b(value),
  expected: expected === null ? null : b(expected),
});

const okValue = (v: string | null): KvResult => ({ ok: true, value: v === null ? null : b(v) });
/** The answer to a duplicate: the first result, and the index where it took effect. */
const dup = (result: KvResult, from: number): KvResult => ({ ...result, deduplicatedFrom: from });
const text = (u: Uint8Array | null): string | null => (u === null ? null : new TextDecoder().decode(u));

/** Hand-encodes a command without validation, to log well-formed but invalid commands. */
function rawCommand(tag: number, clientId: Uint8Array, seq: number, key: Uint8Array, ...rest: (Uint8Array | number)[]): Uint8Array {
  const w = new ByteWriter();
  w.writeByte(tag);
  w.writeBytes(clientId);
  w.writeVarint(seq);
  w.writeBytes(key);
  for (const r of rest) {
    if (typeof r === 'number') w.writeByte(r);
    else w.writeBytes(r);
  }
  return w.finish();
}

// ---- op semantics ----

test('put, get, append and delete return the previous (get: current) value', () => {
  const r = new Replica();
  assert.deepEqual(r.run(get('k')), okValue(null));
  assert.deepEqual(r.run(put('k', 'v1')), okValue(null));
  assert.deepEqual(r.run(get('k')), okValue('v1'));
  assert.deepEqual(r.run(put('k', 'v2')), okValue('v1'));
  assert.deepEqual(r.run(append('k', '+x')), okValue('v2'));
  assert.equal(text(r.sm.get(b('k'))), 'v2+x');
  assert.deepEqual(r.run(append('new', 'abc')), okValue(null));
  assert.equal(text(r.sm.get(b('new'))), 'abc');
  assert.deepEqual(r.run(del('k')), okValue('v2+x'));
  assert.equal(r.sm.get(b('k')), null);
  assert.deepEqual(r.run(del('k')), okValue(null));
  assert.deepEqual(r.run(put('empty', '')), okValue(null));
  assert.deepEqual(r.sm.get(b('empty')), new Uint8Array(0));
  assert.equal(r.sm.appliedIndex, 9);
  assert.deepEqual(r.sm.stats, { keys: 2, bytes: 'new'.length + 3 + 'empty'.length, sessions: 0, leases: 0 });
});

test('stats track keys and key+value bytes through every op', () => {
  const r = new Replica();
  r.run(put('aa', '123'));
  assert.deepEqual(r.sm.stats, { keys: 1, bytes: 5, sessions: 0, leases: 0 });
  r.run(put('aa', '1'));
  assert.deepEqual(r.sm.stats, { keys: 1, bytes: 3, sessions: 0, leases: 0 });
  r.run(append('aa', '2345'));
  r.run(append('b', 'xy'));
  assert.deepEqual(r.sm.stats, { keys: 2, bytes: 7 + 3, sessions: 0, leases: 0 });
  r.run(cas('b', 'xy', 'z'));
  assert.deepEqual(r.sm.stats, { keys: 2, bytes: 7 + 2, sessions: 0, leases: 0 });
  r.run(del('aa'));
  assert.deepEqual(r.sm.stats, { keys: 1, bytes: 2, sessions: 0, leases: 0 });
  r.run(del('b'));
  assert.deepEqual(r.sm.stats, { keys: 0, bytes: 0, sessions: 0, leases: 0 });
});

test('cas swaps iff the current value equals expected, with null meaning absent', () => {
  const r = new Replica();
  // expected null on an absent key: swaps (create-if-absent).
  assert.deepEqual(r.run(cas('k', null, 'a')), { ok: true, value: null, swapped: true });
  assert.equal(text(r.sm.get(b('k'))), 'a');
  // expected null on a present key: no swap.
  assert.deepEqual(r.run(cas('k', null, 'b')), { ok: true, value: b('a'), swapped: false });
  assert.equal(text(r.sm.get(b('k'))), 'a');
  // matching bytes: swaps.
  assert.deepEqual(r.run(cas('k', 'a', 'c')), { ok: true, value: b('a'), swapped: true });
  assert.equal(text(r.sm.get(b('k'))), 'c');
  // mismatching bytes, including a prefix and the empty value: no swap.
  assert.deepEqual(r.run(cas('k', 'a', 'd')), { ok: true, value: b('c'), swapped: false });
  assert.deepEqual(r.run(cas('k', 'cc', 'd')), { ok: true, value: b('c'), swapped: false });
  assert.deepEqual(r.run(cas('k', '', 'd')), { ok: true, value: b('c'), swapped: false });
  assert.equal(text(r.sm.get(b('k'))), 'c');
  // expected bytes on an absent key: no swap (an empty expected value is not "absent").
  assert.deepEqual(r.run(cas('gone', 'x', 'y')), { ok: true, value: null, swapped: false });
  assert.deepEqual(r.run(cas('gone', '', 'y')), { ok: true, value: null, swapped: false });
  assert.equal(r.sm.get(b('gone')), null);
  // the empty value is a value: expected '' matches it.
  r.run(put('e', ''));
  assert.deepEqual(r.run(cas('e', '', 'full')), { ok: true, value: new Uint8Array(0), swapped: true });
  assert.deepEqual(r.run(cas('e', null, 'x')), { ok: true, value: b('full'), swapped: false });
});

test('keys are arbitrary bytes, compared by bytes', () => {
  const r = new Replica();
  const k1 = Uint8Array.from([0, 255, 128]);
  const k2 = Uint8Array.from([0, 255, 128, 0]);
  const k3 = Uint8Array.from([0xc3, 0xa9]); // "é" in UTF-8: distinct from latin1 "é" (0xe9)
  const k4 = Uint8Array.from([0xe9]);
  r.run({ op: 'put', clientId: '', seq: 0, key: k1, value: b('1') });
  r.run({ op: 'put', clientId: '', seq: 0, key: k2, value: b('2') });
  r.run({ op: 'put', clientId: '', seq: 0, key: k3, value: b('3') });
  r.run({ op: 'put', clientId: '', seq: 0, key: k4, value: b('4') });
  assert.equal(text(r.sm.get(k1)), '1');
  assert.equal(text(r.sm.get(k2)), '2');
  assert.equal(text(r.sm.get(k3)), '3');
  assert.equal(text(r.sm.get(k4)), '4');
  assert.equal(r.sm.stats.keys, 4);
  assert.equal(r.sm.get(new Uint8Array(KEY_BYTES_MAX + 1)), null);
});

test('values handed out are copies: mutating them does not change the state', () => {
  const r = new Replica();
  r.sm.apply({ index: r.next++, term: 1, command: encodeKvCommand(put('k', 'abc', 'c', 1)) });
  const got = r.sm.get(b('k'))!;
  got[0] = 0x7a;
  assert.equal(text(r.sm.get(b('k'))), 'abc');
  const prev = r.run(put('k', 'def', 'c', 2));
  assert.ok(prev.ok && prev.value instanceof Uint8Array);
  prev.value[0] = 0x7a;
  assert.deepEqual(r.run(put('k', 'def', 'c', 2)), dup(okValue('abc'), 2)); // the cached result is intact
});

test('append beyond VALUE_BYTES_MAX is refused and consumes the seq', () => {
  const r = new Replica();
  r.run({ op: 'put', clientId: '', seq: 0, key: b('big'), value: new Uint8Array(VALUE_BYTES_MAX) });
  const res = r.run(append('big', 'x', 'c', 1));
  assert.equal(res.ok, false);
  assert.ok(!res.ok && res.error === 'invalid-command' && /over the limit/.test(res.message));
  assert.equal(r.sm.get(b('big'))!.length, VALUE_BYTES_MAX);
  assert.deepEqual(r.run(append('big', 'x', 'c', 1)), dup(res, 2)); // cached
  assert.equal(r.sm.session('c')?.lastSeq, 1);
  assert.deepEqual(r.run(append('big', '', 'c', 2)), { ok: true, value: new Uint8Array(VALUE_BYTES_MAX) });
});

// ---- exactly-once ----

test('exactly-once: a repeated seq returns the cached result without re-applying', () => {
  const r = new Replica();
  assert.deepEqual(r.run(append('k', 'a', 'c1', 1)), okValue(null)); // index 1
  assert.deepEqual(r.run(append('k', 'a', 'c1', 1)), dup(okValue(null), 1)); // 2: duplicate: cached, not applied
  assert.equal(text(r.sm.get(b('k'))), 'a');
  assert.deepEqual(r.run(append('k', 'b', 'c1', 2)), okValue('a')); // 3
  assert.equal(text(r.sm.get(b('k'))), 'ab');
  // the duplicate's cached result is returned even if the command differs and the state moved on
  r.run(put('k', 'zzz')); // 4
  assert.deepEqual(r.run(append('k', 'b', 'c1', 2)), dup(okValue('a'), 3)); // 5
  assert.equal(text(r.sm.get(b('k'))), 'zzz');
  // cas and get results are cached too
  assert.deepEqual(r.run(cas('k', 'zzz', 'y', 'c1', 3)), { ok: true, value: b('zzz'), swapped: true }); // 6
  assert.deepEqual(r.run(cas('k', 'zzz', 'y', 'c1', 3)), { ok: true, value: b('zzz'), swapped: true, deduplicatedFrom: 6 });
  assert.equal(text(r.sm.get(b('k'))), 'y');
  assert.deepEqual(r.run(get('k', 'c1', 4)), okValue('y')); // 8
  r.run(put('k', 'changed'));
  assert.deepEqual(r.run(get('k', 'c1', 4)), dup(okValue('y'), 8));
  // seqs may skip ahead
  assert.deepEqual(r.run(get('k', 'c1', 100)), okValue('changed'));
  assert.equal(r.sm.session('c1')?.lastSeq, 100);
});

test('exactly-once: an older seq is a stale-request and is not applied', () => {
  const r = new Replica();
  r.run(put('k', 'a', 'c1', 5));
  const res = r.run(put('k', 'b', 'c1', 4));
  assert.equal(res.ok, false);
  assert.ok(!res.ok && res.error === 'stale-request');
  assert.ok(!res.ok && res.message.includes('4') && res.message.includes('5'));
  assert.equal(text(r.sm.get(b('k'))), 'a');
  assert.equal(r.sm.session('c1')?.lastSeq, 5);
  // the session still answers its current seq from the cache, with the index it took effect at
  assert.deepEqual(r.run(put('k', 'b', 'c1', 5)), dup(okValue(null), 1));
});

test('exactly-once: interleaved clients are tracked independently', () => {
  const r = new Replica();
  assert.deepEqual(r.run(append('k', 'A1', 'a', 1)), okValue(null));
  assert.deepEqual(r.run(append('k', 'B1', 'b', 1)), okValue('A1'));
  assert.deepEqual(r.run(append('k', 'A1', 'a', 1)), dup(okValue(null), 1)); // dup of a/1
  assert.deepEqual(r.run(append('k', 'A2', 'a', 2)), okValue('A1B1'));
  assert.deepEqual(r.run(append('k', 'B1', 'b', 1)), dup(okValue('A1'), 2)); // dup of b/1
  assert.equal(r.run(append('k', 'A1', 'a', 1)).ok, false); // a/1 now stale
  assert.deepEqual(r.run(append('k', 'B2', 'b', 2)), okValue('A1B1A2'));
  assert.equal(text(r.sm.get(b('k'))), 'A1B1A2B2');
  assert.equal(r.sm.stats.sessions, 2);
});

test('session-less commands (clientId "") are never deduplicated', () => {
  const r = new Replica();
  r.run(append('k', 'x', '', 1));
  r.run(append('k', 'x', '', 1));
  r.run(append('k', 'x', '', 0));
  assert.equal(text(r.sm.get(b('k'))), 'xxx');
  assert.equal(r.sm.stats.sessions, 0);
});

test('invalid commands do not touch sessions', () => {
  const r = new Replica();
  r.run(put('k', 'a', 'c', 3));
  const bad = r.raw(rawCommand(KV_OP_TAGS.put, b('c'), 7, new Uint8Array(0), b('v')));
  assert.ok(!bad.ok && bad.error === 'invalid-command');
  assert.deepEqual(r.sm.session('c'), { lastSeq: 3, lastIndex: 1, resultIndex: 1 });
});

test('session eviction removes the least recently active session, deterministically', () => {
  const make = (): Replica => new Replica(new KvStateMachine({ maxSessions: 3 }));
  const replicas = [make(), make()];
  for (const r of replicas) {
    r.run(append('k', 'a', 'a', 1)); // index 1
    r.run(append('k', 'b', 'b', 1)); // 2
    r.run(append('k', 'c', 'c', 1)); // 3
    r.run(get('k', 'a', 1)); // 4: duplicate, but it is activity: a is now the most recent
    r.run(append('k', 'd', 'd', 1)); // 5: over the limit: evicts b (last active at 2)
    assert.equal(r.sm.stats.sessions, 3);
    assert.equal(r.sm.session('b'), undefined);
    assert.deepEqual(r.sm.session('a'), { lastSeq: 1, lastIndex: 4, resultIndex: 1 });
    assert.deepEqual(r.sm.session('c'), { lastSeq: 1, lastIndex: 3, resultIndex: 3 });
    assert.deepEqual(r.sm.session('d'), { lastSeq: 1, lastIndex: 5, resultIndex: 5 });
    // b lost its session: its retry applies again (the documented cost of eviction), evicting c
    r.run(append('k', 'b', 'b', 1));
    assert.equal(text(r.sm.get(b('k'))), 'abcdb');
    assert.equal(r.sm.session('c'), undefined);
  }
  assert.equal(hex(replicas[0]!.sm.snapshot()), hex(replicas[1]!.sm.snapshot()));
});

/**
 * Hand-builds a snapshot: applied index, [key, value] pairs, [clientId, lastSeq, lastIndex,
 * resultIndex] sessions; version 1 (the default here) has no resultIndex, version 2 writes it
 * (default: lastIndex).
 */
function rawSnapshot(
  applied: number,
  kvs: [string, string][],
  sessions: [string, number, number, number?][],
  version: 1 | 2 | 3 | 4 = 1,
  /** Version 3 and 4: the revision (default: 1 with keys, else 0) and each key's revisions (default 1, 1, 1); version 4 adds no leases. */
  revisions: { revision?: number; keys?: [number, number, number][] } = {},
): Uint8Array {
  const w = new ByteWriter();
  w.writeByte(version);
  w.writeVarint(applied);
  if (version >= 3) w.writeVarint(revisions.revision ?? (kvs.length > 0 ? 1 : 0));
  w.writeVarint(kvs.length);
  kvs.forEach(([k, v], i) => {
    w.writeBytes(b(k));
    w.writeBytes(b(v));
    if (version >= 3) for (const n of revisions.keys?.[i] ?? [1, 1, 1]) w.writeVarint(n);
    if (version === 4) w.writeVarint(0); // no lease
  });
  w.writeVarint(sessions.length);
  for (const [id, seq, index, resultIndex] of sessions) {
    w.writeBytes(b(id));
    w.writeVarint(seq);
    w.writeVarint(index);
    if (version >= 2) w.writeVarint(resultIndex ?? index);
    w.writeByte(1); // ok
    w.writeByte(1); // value: null
    w.writeByte(0); // no swapped
  }
  if (version === 4) {
    w.writeVarint(0); // last lease id
    w.writeVarint(0); // no leases
  }
  return w.finish();
}

test('session eviction breaks ties in last activity by clientId', () => {
  const data = rawSnapshot(10, [], [
    ['w', 1, 7],
    ['x', 1, 5],
    ['y', 1, 5],
  ]);
  const sm = new KvStateMachine({ maxSessions: 2 });
  sm.restore({ index: 10, term: 1, data });
  assert.equal(sm.session('x'), undefined); // oldest (5), and 'x' < 'y'
  assert.deepEqual(sm.session('y'), { lastSeq: 1, lastIndex: 5, resultIndex: 5 });
  const r = new Replica(sm);
  r.run(get('k', 'z', 1)); // evicts y, the oldest left
  assert.equal(sm.session('y'), undefined);
  assert.deepEqual(sm.session('w'), { lastSeq: 1, lastIndex: 7, resultIndex: 7 });
  assert.deepEqual(sm.session('z'), { lastSeq: 1, lastIndex: 11, resultIndex: 11 });
});

// ---- results for the server ----

test('apply returns each command\'s result; a malformed command is an invalid-command no-op', () => {
  const sm = new KvStateMachine();
  for (let i = 1; i <= 3; i++) {
    const previous = i === 1 ? null : '123'.slice(0, i - 1);
    assert.deepEqual(stripRevisions(sm.apply({ index: i, term: 1, command: encodeKvCommand(append('k', String(i))) })), okValue(previous));
  }
  const bad = sm.apply({ index: 4, term: 1, command: new Uint8Array([0]) });
  assert.ok(!bad.ok && bad.error === 'invalid-command');
  assert.equal(sm.appliedIndex, 4);
});

test('applyCommand rejects an index that does not follow appliedIndex', () => {
  const sm = new KvStateMachine();
  sm.applyCommand(3, encodeKvCommand(put('k', 'v')));
  assert.throws(() => sm.applyCommand(3, encodeKvCommand(put('k', 'w'))), RangeError);
  assert.throws(() => sm.applyCommand(2, encodeKvCommand(put('k', 'w'))), RangeError);
  assert.throws(() => sm.applyCommand(4.5, encodeKvCommand(put('k', 'w'))), RangeError);
  assert.equal(text(sm.get(b('k'))), 'v');
  assert.equal(sm.appliedIndex, 3);
  assert.throws(() => new KvStateMachine({ maxSessions: 0 }), RangeError);
});

// ---- snapshots ----

function buildState(r: Replica): void {
  r.run(put('b', 'B', 'c2', 1));
  r.run(put('a', 'A', 'c1', 1));
  r.run({ op: 'put', clientId: '', seq: 0, key: Uint8Array.from([255, 0]), value: Uint8Array.from([1, 2, 3]) });
  r.run(append('a', 'A', 'c1', 2));
  r.run(cas('c', null, 'C', 'c3', 9));
  r.run(get('zz', 'ü-client', 1));
  r.run(del('b', 'c2', 2));
  r.raw(new Uint8Array([99]));
}

test('snapshot/restore round trip: identical state, re-snapshot and subsequent behaviour', () => {
  const a = new Replica();
  buildState(a);
  const snap = a.sm.snapshot();
  const restored = new KvStateMachine();
  restored.restore({ index: a.sm.appliedIndex, term: 3, data: snap });
  const b2 = new Replica(restored);
  assert.equal(restored.appliedIndex, a.sm.appliedIndex);
  assert.deepEqual(restored.stats, a.sm.stats);
  assert.equal(hex(restored.snapshot()), hex(snap));
  assert.equal(text(restored.get(b('a'))), 'AA');
  assert.deepEqual(restored.get(Uint8Array.from([255, 0])), Uint8Array.from([1, 2, 3]));
  // the same continuation gives the same results, including cached and stale session answers
  const continuation: KvCommand[] = [
    append('a', 'A', 'c1', 2), // duplicate: cached
    put('a', 'x', 'c1', 1), // stale
    cas('c', null, 'C', 'c3', 9), // duplicate: cached swapped=true
    get('zz', 'ü-client', 1),
    append('a', '!', 'c1', 3),
    del('a', 'new', 1),
    put('d', 'D'),
  ];
  for (const cmd of continuation) assert.deepEqual(b2.run(cmd), a.run(cmd));
  assert.equal(hex(b2.sm.snapshot()), hex(a.sm.snapshot()));
});

test('snapshot is sorted by key bytes whatever the insertion order (revisions record the order)', () => {
  const x = new Replica();
  const y = new Replica();
  x.run(put('b', '2'));
  x.run(put('a', '1'));
  y.run(put('a', '1'));
  y.run(put('b', '2'));
  // The same keys and values in the same order; only the revisions tell the write order apart.
  assert.equal(hex(x.sm.snapshot()), '04' + '02' + '02' + '02' + '0161013102020' + '1' + '00' + '0162013201010' + '1' + '00' + '00' + '0000');
  assert.equal(hex(y.sm.snapshot()), '04' + '02' + '02' + '02' + '0161013101010' + '1' + '00' + '0162013202020' + '1' + '00' + '00' + '0000');
  // keys sorted by bytes: [0x01] < [0x01,0x00] < [0x7f] < [0x80] < [0xff]
  const z = new Replica();
  for (const key of [[0xff], [0x80], [0x01, 0x00], [0x7f], [0x01]]) {
    z.run({ op: 'put', clientId: '', seq: 0, key: Uint8Array.from(key), value: new Uint8Array(0) });
  }
  const s = z.sm.snapshot();
  // version 4, applied index 5, revision 5, 5 keys, then (1-byte key length, key, 0-length value,
  // createRevision, modRevision, version, no lease) each, no sessions, no leases
  assert.equal(hex(s), '04' + '05' + '05' + '05' + '01010005050100' + '0201000003030100' + '017f0004040100' + '01800002020100' + '01ff0001010100' + '00' + '0000');
});

test('restore rejects malformed or non-canonical snapshots and leaves the state unchanged', () => {
  const r = new Replica();
  buildState(r);
  const before = hex(r.sm.snapshot());
  const good = rawSnapshot(4, [['a', '1'], ['b', '2']], [['p', 1, 2, 1], ['q', 1, 3]], 2);
  const goodV1 = rawSnapshot(4, [['a', '1'], ['b', '2']], [['p', 1, 2], ['q', 1, 3]], 1);
  const bad: [string, Uint8Array, number][] = [];
  for (const version of [1, 2] as const) {
    bad.push(
      [`v${version} unsorted keys`, rawSnapshot(4, [['b', '1'], ['a', '2']], [], version), 4],
      [`v${version} duplicate keys`, rawSnapshot(4, [['a', '1'], ['a', '2']], [], version), 4],
      [`v${version} empty key`, rawSnapshot(4, [['', '1']], [], version), 4],
      [`v${version} unsorted sessions`, rawSnapshot(4, [], [['q', 1, 2], ['p', 1, 3]], version), 4],
      [`v${version} duplicate sessions`, rawSnapshot(4, [], [['p', 1, 2], ['p', 1, 3]], version), 4],
      [`v${version} empty clientId`, rawSnapshot(4, [], [['', 1, 2]], version), 4],
      [`v${version} session from the future`, rawSnapshot(4, [], [['p', 1, 9, 1]], version), 4],
      [`v${version} session never active`, rawSnapshot(4, [], [['p', 1, 0, 0]], version), 4],
    );
  }
  bad.push(
    ['v2 result after the last activity', rawSnapshot(4, [], [['p', 1, 2, 3]], 2), 4],
    ['v2 result at index 0', rawSnapshot(4, [], [['p', 1, 2, 0]], 2), 4],
    ['v1 data labelled v2 (no resultIndex)', Uint8Array.from([2, ...goodV1.subarray(1)]), 4],
    ['v2 data labelled v1 (a resultIndex too many)', Uint8Array.from([1, ...good.subarray(1)]), 4],
  );
  for (const [label, data] of [['v2', good], ['v1', goodV1]] as const) {
    bad.push(
      [`${label} wrong label`, data, 5],
      [`${label} version 0`, Uint8Array.from([0, ...data.subarray(1)]), 4],
      [`${label} version 5`, Uint8Array.from([5, ...data.subarray(1)]), 4],
      [`${label} labelled version 4`, Uint8Array.from([4, ...data.subarray(1)]), 4],
      [`${label} labelled version 3`, Uint8Array.from([3, ...data.subarray(1)]), 4],
      [`${label} trailing byte`, Uint8Array.from([...data, 0]), 4],
    );
    for (let cut = 0; cut < data.length; cut++) bad.push([`${label} truncated at ${cut}`, data.subarray(0, cut), 4]);
  }
  bad.push(['empty', new Uint8Array(0), 0]);
  for (const [what, data, index] of bad) {
    assert.throws(() => r.sm.restore({ index, term: 1, data }), CodecError, what);
    assert.equal(hex(r.sm.snapshot()), before, what);
  }
  // A v2 snapshot restores at revision 1, every key at revisions (1, 1, 1), and re-snapshots as v4.
  r.sm.restore({ index: 4, term: 1, data: good });
  assert.equal(hex(r.sm.snapshot()), hex(rawSnapshot(4, [['a', '1'], ['b', '2']], [['p', 1, 2, 1], ['q', 1, 3]], 4)));
  assert.deepEqual(r.sm.stats, { keys: 2, bytes: 4, sessions: 2, leases: 0 });
  assert.equal(r.sm.revision, 1);
  assert.deepEqual(r.sm.getWithMeta(b('b')), { value: b('2'), createRevision: 1, modRevision: 1, version: 1 });
  assert.deepEqual(r.sm.session('p'), { lastSeq: 1, lastIndex: 2, resultIndex: 1 });
  // A v1 snapshot restores with resultIndex = lastIndex, and re-snapshots as v4.
  const fresh = new KvStateMachine();
  fresh.restore({ index: 4, term: 1, data: goodV1 });
  assert.deepEqual(fresh.session('p'), { lastSeq: 1, lastIndex: 2, resultIndex: 2 });
  assert.equal(hex(fresh.snapshot()), hex(rawSnapshot(4, [['a', '1'], ['b', '2']], [['p', 1, 2, 2], ['q', 1, 3, 3]], 4)));
  // A v3 snapshot (revisions, no leases) restores to the same state and re-snapshots as v4.
  const v3 = new KvStateMachine();
  v3.restore({ index: 4, term: 1, data: rawSnapshot(4, [['a', '1']], [['p', 1, 2, 1]], 3) });
  assert.equal(hex(v3.snapshot()), hex(rawSnapshot(4, [['a', '1']], [['p', 1, 2, 1]], 4)));
  // The next write takes revision 2.
  const next = new Replica(fresh);
  assert.equal((next.full(put('a', 'x')) as { revision?: number }).revision, 2);
  assert.deepEqual(fresh.getWithMeta(b('a')), { value: b('x'), createRevision: 1, modRevision: 2, version: 2 });
});

// ---- malformed and invalid log entries ----

test('malformed and invalid commands are deterministic no-ops on every replica', () => {
  const entries: Uint8Array[] = [
    new Uint8Array(0),
    new Uint8Array([0]),
    new Uint8Array([200, 0, 0, 1, 0x61]),
    encodeKvCommand(put('k', 'v')).subarray(0, 4),
    Uint8Array.from([...encodeKvCommand(get('k')), 0]),
    rawCommand(KV_OP_TAGS.put, Uint8Array.from([0xff, 0xfe]), 1, b('k'), b('v')), // clientId not UTF-8
    rawCommand(KV_OP_TAGS.put, b(''), 0, new Uint8Array(0), b('v')), // empty key
    rawCommand(KV_OP_TAGS.put, b(''), 0, new Uint8Array(KEY_BYTES_MAX + 1), b('v')),
    rawCommand(KV_OP_TAGS.put, b(''), 0, b('k'), new Uint8Array(VALUE_BYTES_MAX + 1)),
    rawCommand(KV_OP_TAGS.put, b('x'.repeat(CLIENT_ID_BYTES_MAX + 1)), 1, b('k'), b('v')),
    rawCommand(KV_OP_TAGS.cas, b(''), 0, b('k'), b('v'), 2), // bad expected-presence byte
    rawCommand(KV_OP_TAGS.cas, b(''), 0, b('k'), b('v'), 1, new Uint8Array(VALUE_BYTES_MAX + 1)),
    new Uint8Array([KV_OP_TAGS.get, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1, 1, 0x61]), // varint overflow
  ];
  const replicas = [new Replica(), new Replica()];
  for (const r of replicas) r.run(put('k', 'v0'));
  const results = replicas.map((r) => entries.map((e) => r.raw(e)));
  assert.deepEqual(results[0], results[1]);
  for (const [i, res] of results[0]!.entries()) {
    assert.equal(res.ok, false, `entry ${i}`);
    assert.ok(!res.ok && res.error === 'invalid-command' && res.message.length > 0, `entry ${i}`);
  }
  for (const r of replicas) {
    assert.equal(text(r.sm.get(b('k'))), 'v0');
    assert.deepEqual(r.sm.stats, { keys: 1, bytes: 3, sessions: 0, leases: 0 });
    assert.equal(r.sm.appliedIndex, 1 + entries.length);
  }
  assert.equal(hex(replicas[0]!.sm.snapshot()), hex(replicas[1]!.sm.snapshot()));
});

// ---- randomized determinism ----


function randomLog(seed: number, length: number): Uint8Array[] {
  const rand = new Prng(seed);
  const int = (n: number): number => rand.nextInt(n);
  const clients = ['', '', 'a', 'b', 'c', 'd', 'e', 'f', 'g'];
  const seqs = new Map<string, number>();
  const randBytes = (max: number): Uint8Array => Uint8Array.from({ length: int(max + 1) }, () => int(256));
  // mostly a few one-byte keys, so ops collide; sometimes 1..3 random bytes
  const keyOf = (): Uint8Array => (int(10) === 0 ? Uint8Array.from({ length: 1 + int(3) }, () => int(256)) : Uint8Array.from([int(8)]));
  const log: Uint8Array[] = [];
  for (let i = 0; i < length; i++) {
    const roll = int(100);
    if (roll < 3) {
      log.push(randBytes(12)); // garbage
      continue;
    }
    const clientId = clients[int(clients.length)]!;
    // mostly the next seq; sometimes a duplicate, an older one or a jump
    let seq = seqs.get(clientId) ?? 0;
    const s = int(10);
    if (s < 6) seq += 1;
    else if (s < 8) {
      // repeat the last seq
    } else if (s < 9) seq = Math.max(0, seq - 1 - int(3));
    else seq += 2 + int(5);
    seqs.set(clientId, Math.max(seq, seqs.get(clientId) ?? 0));
    const key = keyOf();
    const op = (['put', 'append', 'delete', 'cas', 'get'] as const)[int(5)]!;
    let cmd: KvCommand;
    if (op === 'delete' || op === 'get') cmd = { op, clientId, seq, key };
    else if (op === 'cas') cmd = { op, clientId, seq, key, value: randBytes(2), expected: int(3) === 0 ? null : randBytes(2) };
    else cmd = { op, clientId, seq, key, value: randBytes(3) };
    if (roll < 5) {
      // well-formed but invalid: an empty key
      log.push(rawCommand(KV_OP_TAGS.get, b(clientId), seq, new Uint8Array(0)));
      continue;
    }
    log.push(encodeKvCommand(cmd));
  }
  return log;
}

test('randomized: two replicas fed the same log stay byte-identical, across a snapshot/restore', () => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    const log = randomLog(seed, 3000);
    const opts = { maxSessions: 4 };
    const a = new KvStateMachine(opts);
    let c = new KvStateMachine(opts);
    const restoreAt = 1000 + (seed % 700);
    let staleSeen = 0;
    let okSeen = 0;
    for (let i = 0; i < log.length; i++) {
      const index = i + 1;
      if (index === restoreAt) {
        const snap = c.snapshot();
        c = new KvStateMachine(opts);
        c.restore({ index: index - 1, term: 1, data: snap });
        assert.equal(hex(c.snapshot()), hex(snap));
      }
      const entry = { index, term: 1, command: log[i]! };
      const ra = a.apply(entry);
      const rc = c.apply(entry);
      assert.deepEqual(rc, ra, `seed ${seed} index ${index}`);
      if (ra !== undefined && !ra.ok && ra.error === 'stale-request') staleSeen++;
      if (ra !== undefined && ra.ok) okSeen++;
      if (index % 250 === 0) assert.equal(hex(c.snapshot()), hex(a.snapshot()), `seed ${seed} index ${index}`);
    }
    assert.equal(hex(c.snapshot()), hex(a.snapshot()), `seed ${seed}`);
    assert.deepEqual(c.stats, a.stats);
    assert.ok(staleSeen > 0 && okSeen > 0);
  }
});

// ---- encodings ----

test('command encoding round-trips every op and field shape', () => {
  const cmds: KvCommand[] = [
    put('k', 'v', 'client-1', 7),
    put('k', '', '', 0),
    append('key', 'more', 'c', Number.MAX_SAFE_INTEGER),
    del('k', 'c', 1),
    get('k', 'c', 2),
    cas('k', null, 'v', 'c', 3),
    cas('k', '', 'v', 'c', 3),
    cas('k', 'old', 'new', 'c', 3),
    { op: 'put', clientId: '\ufeffbom', seq: 1, key: Uint8Array.from([0, 255]), value: Uint8Array.from([0]) },
    { op: 'get', clientId: 'emoji-😀-é', seq: 1, key: new Uint8Array(KEY_BYTES_MAX) },
    { op: 'put', clientId: 'x'.repeat(CLIENT_ID_BYTES_MAX), seq: 1, key: b('k'), value: new Uint8Array(VALUE_BYTES_MAX) },
  ];
  for (const cmd of cmds) {
    const bytes = encodeKvCommand(cmd);
    assert.deepEqual(decodeKvCommand(bytes), cmd);
    if (bytes.length < 1000) {
      for (let cut = 0; cut < bytes.length; cut++) {
        assert.throws(() => decodeKvCommand(bytes.subarray(0, cut)), CodecError, `${cmd.op} cut at ${cut}`);
      }
    }
    const trailing = new Uint8Array(bytes.length + 1);
    trailing.set(bytes);
    assert.throws(() => decodeKvCommand(trailing), CodecError);
  }
  // a decoded command does not alias its input
  const bytes = encodeKvCommand(put('k', 'v'));
  const decoded = decodeKvCommand(bytes);
  bytes.fill(0);
  assert.deepEqual(decoded, put('k', 'v'));
});

test('result encoding round-trips every shape; truncated input throws CodecError', () => {
  const results: KvResult[] = [
    { ok: true },
    { ok: true, value: null },
    { ok: true, value: new Uint8Array(0) },
    { ok: true, value: b('hello') },
    { ok: true, value: null, swapped: true },
    { ok: true, value: b('x'), swapped: false },
    { ok: true, swapped: true },
    { ok: false, error: 'stale-request', message: 'seq 3 < 4' },
    { ok: false, error: 'invalid-command', message: 'ünïcode message 😀' },
    { ok: false, error: 'invalid-command', message: '' },
  ];
  const seen = new Set<string>();
  for (const result of results) {
    const bytes = encodeKvResult(result);
    seen.add(hex(bytes));
    assert.deepEqual(decodeKvResult(bytes), result);
    for (let cut = 0; cut < bytes.length; cut++) {
      assert.throws(() => decodeKvResult(bytes.subarray(0, cut)), CodecError, `cut at ${cut}`);
    }
    assert.throws(() => decodeKvResult(Uint8Array.from([...bytes, 0])), CodecError);
  }
  assert.equal(seen.size, results.length);
  for (const junk of [[0], [3], [1, 3, 0], [1, 0, 3], [2, 0, 0], [2, 9, 0], [2, 1, 1, 0xff]]) {
    assert.throws(() => decodeKvResult(Uint8Array.from(junk)), CodecError, JSON.stringify(junk));
  }
  assert.throws(() => encodeKvResult({ ok: false, error: 'nope' as 'stale-request', message: '' }), RangeError);
});

// ---- limits ----

test('validateKvCommand enforces shapes and limits with clear messages', () => {
  const base = put('k', 'v', 'c', 1);
  assert.equal(validateKvCommand(base), null);
  const ok: KvCommand[] = [
    { ...base, key: new Uint8Array(KEY_BYTES_MAX) },
    { ...base, value: new Uint8Array(VALUE_BYTES_MAX) },
    { ...base, value: new Uint8Array(0) },
    { ...base, clientId: 'é'.repeat(CLIENT_ID_BYTES_MAX / 2) },
    { ...base, clientId: '' },
    cas('k', null, 'v'),
  ];
  for (const cmd of ok) assert.equal(validateKvCommand(cmd), null);
  const bad: [KvCommand, RegExp][] = [
    [{ ...base, key: new Uint8Array(0) }, /^key must be 1\.\.1024 bytes, got 0$/],
    [{ ...base, key: new Uint8Array(KEY_BYTES_MAX + 1) }, /^key must be 1\.\.1024 bytes, got 1025$/],
    [{ ...base, value: new Uint8Array(VALUE_BYTES_MAX + 1) }, /^value must be 0\.\.1048576 bytes, got 1048577$/],
    [{ ...base, clientId: 'é'.repeat(CLIENT_ID_BYTES_MAX / 2) + 'x' }, /clientId must be 0\.\.128 bytes of UTF-8, got 129/],
    [{ ...base, clientId: 'a\ud800b' }, /well-formed/],
    [{ ...base, seq: -1 }, /seq must be a non-negative safe integer/],
    [{ ...base, seq: 1.5 }, /seq/],
    [{ ...base, seq: Number.MAX_SAFE_INTEGER + 1 }, /seq/],
    [{ ...base, op: 'increment' as 'put' }, /op must be one of put, append, delete, cas, get/],
    [{ op: 'put', clientId: '', seq: 0, key: b('k') }, /put needs a value/],
    [{ op: 'append', clientId: '', seq: 0, key: b('k') }, /append needs a value/],
    [{ ...del('k'), value: b('v') }, /delete takes no value/],
    [{ ...get('k'), expected: null }, /get takes no expected value/],
    [{ ...base, expected: b('v') }, /put takes no expected value/],
    [{ op: 'cas', clientId: '', seq: 0, key: b('k'), value: b('v') }, /cas needs expected/],
    [{ ...cas('k', null, 'v'), expected: new Uint8Array(VALUE_BYTES_MAX + 1) }, /expected must be 0\.\.1048576 bytes/],
    [{ ...base, key: 'k' as unknown as Uint8Array }, /key must be a Uint8Array/],
  ];
  for (const [cmd, re] of bad) {
    const problem = validateKvCommand(cmd);
    assert.ok(problem !== null && re.test(problem), `${String(problem)} should match ${String(re)}`);
    assert.throws(() => encodeKvCommand(cmd), RangeError);
  }
});

test('checkSnapshot says why a snapshot cannot be restored, without touching the state', () => {
  const source = new Replica();
  source.run(put('a', '1', 'c1', 1));
  source.run(put('b', '2'));
  const good = { index: source.sm.appliedIndex, term: 1, data: source.sm.snapshot() };
  const target = new Replica();
  target.run(put('mine', 'x'));
  const before = hex(target.sm.snapshot());
  assert.equal(target.sm.checkSnapshot(good), null);
  const prng = new Prng(7);
  const garbage = Uint8Array.from({ length: 200 }, () => prng.nextInt(256));
  const problems = [
    target.sm.checkSnapshot({ index: 5, term: 1, data: garbage }),
    target.sm.checkSnapshot({ index: good.index + 1, term: 1, data: good.data }),
    target.sm.checkSnapshot({ index: good.index, term: 1, data: good.data.subarray(0, good.data.length - 1) }),
  ];
  for (const problem of problems) assert.ok(typeof problem === 'string' && problem.length > 0, `expected a reason, got ${String(problem)}`);
  assert.equal(hex(target.sm.snapshot()), before, 'checking changed the state');
  assert.equal(text(target.sm.get(b('mine'))), 'x');
});
