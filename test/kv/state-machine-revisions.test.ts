/**
 * KvStateMachine revisions (store revision, per-key createRevision / modRevision / version, the
 * conditional put), snapshot version 3, and ranges over the ordered index, including a property
 * test against a sorted scan of a model map.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fc from 'fast-check';
import { CodecError } from '../../src/codec/codec.js';
import { decodeKvCommand, decodeKvResult, encodeKvCommand, encodeKvResult, type KvCommand, type KvResult } from '../../src/kv/commands.js';
import { KvStateMachine, prefixEnd, RANGE_LIMIT_MAX, type KvRangeQuery } from '../../src/kv/state-machine.js';
import { FUZZ_SEED } from '../fuzz/fuzz-config.js';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);
const text = (u: Uint8Array | undefined): string => new TextDecoder().decode(u);
const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');

class Replica {
  next = 1;
  constructor(readonly sm = new KvStateMachine()) {
    this.next = sm.appliedIndex + 1;
  }
  run(cmd: Partial<KvCommand> & Pick<KvCommand, 'op' | 'key'>): KvResult {
    return this.sm.applyCommand(this.next++, encodeKvCommand({ clientId: '', seq: 0, ...cmd }));
  }
  put(key: string, value: string, extra: Partial<KvCommand> = {}): KvResult {
    return this.run({ op: 'put', key: b(key), value: b(value), ...extra });
  }
}

const revisionOf = (r: KvResult): number | undefined => (r.ok ? r.revision : undefined);

test('every write that changes the store advances the revision by one; the others do not', () => {
  const r = new Replica();
  assert.equal(r.sm.revision, 0);
  assert.equal(revisionOf(r.put('a', '1')), 1);
  assert.equal(revisionOf(r.run({ op: 'append', key: b('a'), value: b('2') })), 2);
  assert.equal(revisionOf(r.run({ op: 'delete', key: b('missing') })), 2, 'a delete of an absent key');
  assert.equal(revisionOf(r.run({ op: 'cas', key: b('a'), value: b('x'), expected: b('nope') })), 2, 'a failed cas');
  assert.equal(revisionOf(r.run({ op: 'get', key: b('a') })), 2, 'a get');
  assert.equal(revisionOf(r.run({ op: 'cas', key: b('a'), value: b('x'), expected: b('12') })), 3);
  assert.equal(revisionOf(r.run({ op: 'delete', key: b('a') })), 4);
  assert.equal(r.sm.revision, 4);
  // Malformed and invalid commands change nothing.
  r.sm.applyCommand(r.next++, new Uint8Array([0]));
  assert.equal(r.sm.revision, 4);
});

test('createRevision, modRevision and version follow the key; a delete and re-create resets them', () => {
  const r = new Replica();
  r.put('x', '0');
  const first = r.put('k', '1');
  assert.deepEqual(first.ok && first.key, { createRevision: 2, modRevision: 2, version: 1 });
  r.put('k', '2');
  r.run({ op: 'append', key: b('k'), value: b('3') });
  assert.deepEqual(r.sm.getWithMeta(b('k')), { value: b('23'), createRevision: 2, modRevision: 4, version: 3 });
  const got = r.run({ op: 'get', key: b('k') });
  assert.deepEqual(got, { ok: true, value: b('23'), revision: 4, key: { createRevision: 2, modRevision: 4, version: 3 } });
  const deleted = r.run({ op: 'delete', key: b('k') });
  assert.deepEqual(deleted, { ok: true, value: b('23'), revision: 5 }, 'no key revisions: the key is gone');
  r.put('k', 'again');
  assert.deepEqual(r.sm.getWithMeta(b('k')), { value: b('again'), createRevision: 6, modRevision: 6, version: 1 });
  assert.equal(r.sm.getWithMeta(b('nope')), null);
});

test('a put with ifModRevision writes only when the key is at that mod revision (0: absent)', () => {
  const r = new Replica();
  const created = r.put('k', 'v1', { ifModRevision: 0 });
  assert.deepEqual(created, { ok: true, value: null, swapped: true, revision: 1, key: { createRevision: 1, modRevision: 1, version: 1 } });
  const refused = r.put('k', 'v2', { ifModRevision: 0 });
  assert.deepEqual(refused, { ok: true, value: b('v1'), swapped: false, revision: 1, key: { createRevision: 1, modRevision: 1, version: 1 } });
  assert.equal(r.sm.revision, 1, 'a failed condition is not a write');
  const stale = r.put('k', 'v2', { ifModRevision: 7 });
  assert.equal(stale.ok && stale.swapped, false);
  const ok = r.put('k', 'v2', { ifModRevision: 1 });
  assert.deepEqual(ok, { ok: true, value: b('v1'), swapped: true, revision: 2, key: { createRevision: 1, modRevision: 2, version: 2 } });
  // On an absent key only 0 matches.
  assert.equal((r.put('absent', 'x', { ifModRevision: 2 }) as { swapped?: boolean }).swapped, false);
  // The command encodes with tag 6 and decodes back to a put with the condition.
  const bytes = encodeKvCommand({ op: 'put', clientId: 'c', seq: 3, key: b('k'), value: b('v'), ifModRevision: 5 });
  assert.equal(bytes[0], 6);
  assert.deepEqual(decodeKvCommand(bytes), { op: 'put', clientId: 'c', seq: 3, key: b('k'), value: b('v'), ifModRevision: 5 });
  assert.throws(() => encodeKvCommand({ op: 'append', clientId: '', seq: 0, key: b('k'), value: b('v'), ifModRevision: 1 }), RangeError);
  assert.throws(() => encodeKvCommand({ op: 'put', clientId: '', seq: 0, key: b('k'), value: b('v'), ifModRevision: -1 }), RangeError);
});

test('a retried write answers with the revision of the original, not the current one', () => {
  const r = new Replica();
  const original = r.put('k', 'v', { clientId: 'c', seq: 1 });
  r.put('other', 'x');
  r.put('other', 'y');
  const retry = r.put('k', 'v', { clientId: 'c', seq: 1 });
  assert.equal(revisionOf(original), 1);
  assert.deepEqual(retry, { ...original, deduplicatedFrom: 1 });
  // Also across a snapshot: the cached result keeps its revisions.
  const restored = new KvStateMachine();
  restored.restore({ index: r.sm.appliedIndex, term: 1, data: r.sm.snapshot() });
  const again = new Replica(restored).put('k', 'v', { clientId: 'c', seq: 1 });
  assert.deepEqual(again, { ...original, deduplicatedFrom: 1 });
});

test('results with revisions round-trip through their encoding; malformed revisions are refused', () => {
  const results: KvResult[] = [
    { ok: true, value: null, revision: 0 },
    { ok: true, value: b('v'), swapped: false, revision: 9, key: { createRevision: 2, modRevision: 9, version: 3 } },
    { ok: true, revision: 1, key: { createRevision: 1, modRevision: 1, version: 1 } },
  ];
  for (const result of results) assert.deepEqual(decodeKvResult(encodeKvResult(result)), result);
  assert.throws(() => encodeKvResult({ ok: true, revision: 1, key: { createRevision: 2, modRevision: 1, version: 1 } }), RangeError);
  assert.throws(() => encodeKvResult({ ok: true, key: { createRevision: 1, modRevision: 1, version: 1 } }), RangeError);
  // tag 3, value none, swapped none, revision 1, key present, create 1, mod 1, version 2 (> mod - create + 1)
  assert.throws(() => decodeKvResult(Uint8Array.from([3, 0, 0, 1, 1, 1, 1, 2])), CodecError);
  assert.throws(() => decodeKvResult(Uint8Array.from([3, 0, 0, 1, 2])), CodecError, 'key presence 2');
  assert.throws(() => decodeKvResult(Uint8Array.from([3, 0, 0, 1])), CodecError, 'truncated');
});

test('snapshot v4 round-trips revisions canonically; a v3 one restores to the same state; bad revisions are CodecErrors', () => {
  const r = new Replica();
  r.put('a', '1');
  r.put('b', '2', { clientId: 'c', seq: 1 });
  r.run({ op: 'delete', key: b('a') });
  r.put('a', '3');
  r.put('a', '4');
  const data = r.sm.snapshot();
  assert.equal(data[0], 4);
  const copy = new KvStateMachine();
  copy.restore({ index: r.sm.appliedIndex, term: 1, data });
  assert.equal(hex(copy.snapshot()), hex(data));
  assert.equal(copy.revision, 5);
  assert.deepEqual(copy.getWithMeta(b('a')), { value: b('4'), createRevision: 4, modRevision: 5, version: 2 });
  // Hand-made snapshots: version 4, applied 1, revision R, one key "k" = "v" with (c, m, v) and no
  // lease, no sessions, no leases (last lease id 0, count 0); version 3 lacks the lease fields.
  const make = (revision: number, c: number, m: number, v: number): Uint8Array => Uint8Array.from([4, 1, revision, 1, 1, 0x6b, 1, 0x76, c, m, v, 0, 0, 0, 0]);
  const fresh = new KvStateMachine();
  fresh.restore({ index: 1, term: 1, data: make(3, 2, 3, 2) });
  assert.equal(hex(fresh.snapshot()), hex(make(3, 2, 3, 2)));
  const fromV3 = new KvStateMachine();
  fromV3.restore({ index: 1, term: 1, data: Uint8Array.from([3, 1, 3, 1, 1, 0x6b, 1, 0x76, 2, 3, 2, 0]) });
  assert.equal(hex(fromV3.snapshot()), hex(make(3, 2, 3, 2)));
  for (const [what, bad] of [
    ['createRevision 0', make(3, 0, 3, 1)],
    ['mod before create', make(3, 3, 2, 1)],
    ['mod after the revision', make(3, 1, 4, 1)],
    ['version 0', make(3, 1, 3, 0)],
    ['version above mod - create + 1', make(3, 2, 3, 3)],
  ] as const) {
    assert.throws(() => new KvStateMachine().restore({ index: 1, term: 1, data: bad }), CodecError, what);
    assert.match(fresh.checkSnapshot({ index: 1, term: 1, data: bad }) ?? '', /KV snapshot/, what);
  }
  // A cached result from after the snapshot's revision.
  const session = Uint8Array.from([4, 1, 0, 0, 1, 1, 0x70, 1, 1, 1, 3, 1, 0, 5, 0, 0, 0]);
  assert.throws(() => new KvStateMachine().restore({ index: 1, term: 1, data: session }), CodecError);
  const sessionOk = Uint8Array.from([4, 1, 0, 0, 1, 1, 0x70, 1, 1, 1, 3, 1, 0, 0, 0, 0, 0]);
  const withSession = new KvStateMachine();
  withSession.restore({ index: 1, term: 1, data: sessionOk });
  assert.equal(hex(withSession.snapshot()), hex(sessionOk));
});

// ---- ranges ----

function load(keys: (string | number[])[]): KvStateMachine {
  const r = new Replica();
  for (const k of keys) {
    const key = typeof k === 'string' ? b(k) : Uint8Array.from(k);
    r.run({ op: 'put', key, value: typeof k === 'string' ? b(`v-${k}`) : Uint8Array.from([0xff, ...k]) });
  }
  return r.sm;
}

const keysOf = (page: { kvs: { key: Uint8Array }[] }): string[] => page.kvs.map((kv) => text(kv.key));

test('prefixEnd increments the last byte below 0xff', () => {
  assert.deepEqual(prefixEnd(b('ab')), b('ac'));
  assert.deepEqual(prefixEnd(Uint8Array.from([1, 0xff, 0xff])), Uint8Array.from([2]));
  assert.equal(prefixEnd(Uint8Array.from([0xff])), null);
  assert.equal(prefixEnd(new Uint8Array(0)), null);
});

test('ranges: prefix, [start, end), sorted by bytes, with revisions, keys-only and counts', () => {
  const sm = load(['b/2', 'a', 'b/1', 'b', 'b0', 'c', 'b/10']);
  const prefix = (p: string): KvRangeQuery => ({ start: b(p), end: prefixEnd(b(p)) });
  const page = sm.range(prefix('b/'));
  assert.deepEqual(keysOf(page), ['b/1', 'b/10', 'b/2']);
  assert.equal(page.more, false);
  assert.equal(page.revision, 7);
  assert.deepEqual(page.kvs[0], { key: b('b/1'), value: b('v-b/1'), createRevision: 3, modRevision: 3, version: 1 });
  assert.deepEqual(keysOf(sm.range({ start: b('b'), end: b('c') })), ['b', 'b/1', 'b/10', 'b/2', 'b0']);
  assert.deepEqual(keysOf(sm.range({ start: b('b0'), end: null })), ['b0', 'c']);
  assert.deepEqual(keysOf(sm.range({ start: new Uint8Array(0), end: null })), ['a', 'b', 'b/1', 'b/10', 'b/2', 'b0', 'c']);
  assert.deepEqual(keysOf(sm.range(prefix('zz'))), [], 'an empty range');
  assert.deepEqual(keysOf(sm.range({ start: b('c'), end: b('b') })), [], 'end before start');
  assert.equal(sm.range({ ...prefix('b'), keysOnly: true }).kvs[0]!.value, undefined);
  assert.equal(sm.count(prefix('b')), 5);
  assert.equal(sm.count({ ...prefix('b'), after: b('b/10') }), 2);
  assert.equal(sm.count({ ...prefix('b'), after: b('b/05') }), 4, 'after a key that is not there');
  assert.equal(sm.count({ start: new Uint8Array(0), end: null }), 7);
  assert.equal(sm.count({ start: b('d'), end: null }), 0);
  assert.equal(sm.count({ start: b('c'), end: b('b') }), 0);
  assert.equal(new KvStateMachine().count({ start: new Uint8Array(0), end: null }), 0);
  // Values handed out are copies.
  page.kvs[0]!.value![0] = 0;
  assert.deepEqual(sm.get(b('b/1')), b('v-b/1'));
});

test('ranges page by limit and by bytes, resuming strictly after the last key, across equal prefixes', () => {
  const keys = ['p', 'p\x00', 'p\x00\x00', 'pa', 'pa\x00', 'paa', 'pb'];
  const sm = load(keys);
  const seen: string[] = [];
  let after: Uint8Array | undefined;
  for (let pages = 0; ; pages++) {
    assert.ok(pages < 10);
    const page = sm.range({ start: b('p'), end: prefixEnd(b('p')), limit: 2, ...(after === undefined ? {} : { after }) });
    seen.push(...keysOf(page));
    if (!page.more) break;
    assert.equal(page.kvs.length, 2);
    after = page.kvs.at(-1)!.key;
  }
  assert.deepEqual(seen, keys);
  // Bytes: each kv is key + "v-" + key; a bound of 1 byte still returns one key per page.
  const one = sm.range({ start: b('p'), end: null, bytesMax: 1 });
  assert.deepEqual(keysOf(one), ['p']);
  assert.equal(one.more, true);
  const two = sm.range({ start: b('p'), end: null, bytesMax: 4 + 6 });
  assert.deepEqual(keysOf(two), ['p', 'p\x00']);
  // A limit of exactly the number of keys left: no more.
  assert.equal(sm.range({ start: b('p'), end: null, limit: keys.length }).more, false);
  assert.throws(() => sm.range({ start: b('p'), end: null, limit: 0 }), RangeError);
  assert.throws(() => sm.range({ start: b('p'), end: null, limit: RANGE_LIMIT_MAX + 1 }), RangeError);
  assert.throws(() => sm.range({ start: b('p'), end: null, limit: 1.5 }), RangeError);
});

test('ranges over binary keys follow byte order (0x00 and 0xff included)', () => {
  const sm = load([[0xff], [0x00], [0x01, 0xff], [0x01], [0xff, 0xff], [0x80, 0x00]]);
  const all = sm.range({ start: new Uint8Array(0), end: null });
  assert.deepEqual(all.kvs.map((kv) => hex(kv.key)), ['00', '01', '01ff', '8000', 'ff', 'ffff']);
  const ff = sm.range({ start: Uint8Array.from([0xff]), end: prefixEnd(Uint8Array.from([0xff])) });
  assert.deepEqual(ff.kvs.map((kv) => hex(kv.key)), ['ff', 'ffff']);
  assert.deepEqual(ff.kvs[1]!.value, Uint8Array.from([0xff, 0xff, 0xff]));
});

test('property: range pages concatenate to a sorted scan of a model map, under any writes', () => {
  const key = fc.uint8Array({ minLength: 1, maxLength: 4, max: 3 }).map((k) => Uint8Array.from(k, (x) => [0x00, 0x61, 0x62, 0xff][x]!));
  const op = fc.oneof(
    fc.record({ op: fc.constant('put' as const), key, value: fc.uint8Array({ maxLength: 3 }) }),
    fc.record({ op: fc.constant('delete' as const), key }),
  );
  const bound = fc.option(key, { nil: null });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), fc.boolean(), key, bound, fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 30 }), (ops, usePrefix, start, end, limit, bytesMax) => {
      const r = new Replica();
      const model = new Map<string, { value: Uint8Array; mod: number }>();
      for (const o of ops) {
        const result = r.run(o);
        const k = hex(o.key);
        if (o.op === 'put') model.set(k, { value: o.value, mod: revisionOf(result)! });
        else model.delete(k);
      }
      const q = usePrefix ? { start, end: prefixEnd(start) } : { start, end };
      const lo = hex(q.start);
      const hi = q.end === null ? null : hex(q.end);
      // hex preserves byte order (two lowercase hex digits per byte).
      const expected = [...model.keys()].filter((k) => k >= lo && (hi === null || k < hi)).sort();
      const got: string[] = [];
      let after: Uint8Array | undefined;
      for (let pages = 0; pages < 200; pages++) {
        const page = r.sm.range({ ...q, limit, bytesMax, ...(after === undefined ? {} : { after }) });
        assert.equal(page.revision, r.sm.revision);
        assert.ok(page.kvs.length >= 1 || !page.more);
        for (const kv of page.kvs) {
          const m = model.get(hex(kv.key))!;
          assert.deepEqual(kv.value, m.value);
          assert.equal(kv.modRevision, m.mod);
          got.push(hex(kv.key));
        }
        if (!page.more) break;
        after = page.kvs.at(-1)!.key;
      }
      assert.deepEqual(got, expected);
      assert.equal(r.sm.count(q), expected.length);
      // A restored copy answers the same.
      const copy = new KvStateMachine();
      copy.restore({ index: r.sm.appliedIndex, term: 1, data: r.sm.snapshot() });
      assert.deepEqual(copy.range({ ...q, limit: RANGE_LIMIT_MAX }).kvs, r.sm.range({ ...q, limit: RANGE_LIMIT_MAX }).kvs);
    }),
    { seed: FUZZ_SEED, numRuns: 300 },
  );
});
