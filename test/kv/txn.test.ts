/**
 * Transactions in the KV state machine (KvTxnCommand): every compare target and op, absent keys,
 * atomicity, one revision for a branch's writes, duplicate-key refusal, exactly-once through
 * sessions, snapshots with a cached txn result, and onChange reporting a branch with one revision.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodecError } from '../../src/codec/codec.js';
import {
  decodeKvCommand,
  decodeKvResult,
  encodeKvCommand,
  encodeKvResult,
  txnProblem,
  TXN_OPS_MAX,
  TXN_RESULT_BYTES_MAX,
  VALUE_BYTES_MAX,
  type KvCompare,
  type KvResult,
  type KvTxnCommand,
  type KvTxnOp,
  type KvTxnResult,
} from '../../src/kv/commands.js';
import { KvStateMachine, type KvChange } from '../../src/kv/state-machine.js';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);
const text = (u: Uint8Array | null | undefined): string | null => (u === null || u === undefined ? null : new TextDecoder().decode(u));

class Replica {
  next = 1;
  constructor(readonly sm = new KvStateMachine()) {
    this.next = sm.appliedIndex + 1;
  }
  apply(bytes: Uint8Array): KvResult {
    return this.sm.applyCommand(this.next++, bytes);
  }
  put(key: string, value: string): KvResult {
    return this.apply(encodeKvCommand({ op: 'put', clientId: '', seq: 0, key: b(key), value: b(value) }));
  }
  txn(t: { compare?: KvCompare[]; then?: KvTxnOp[]; else?: KvTxnOp[] }, session: { clientId: string; seq: number } = { clientId: '', seq: 0 }): KvResult & { ok: true; txn: KvTxnResult; revision: number } {
    const cmd: KvTxnCommand = { op: 'txn', ...session, compare: t.compare ?? [], then: t.then ?? [], else: t.else ?? [] };
    const result = this.apply(encodeKvCommand(cmd));
    if (!(result.ok && result.txn !== undefined && result.revision !== undefined)) assert.fail(`not a txn result: ${JSON.stringify(result)}`);
    return result as KvResult & { ok: true; txn: KvTxnResult; revision: number };
  }
  holds(c: KvCompare): boolean {
    return this.txn({ compare: [c] }).txn.succeeded;
  }
}

const put = (key: string, value: string): KvTxnOp => ({ type: 'put', key: b(key), value: b(value) });
const del = (key: string): KvTxnOp => ({ type: 'delete', key: b(key) });
const get = (key: string): KvTxnOp => ({ type: 'get', key: b(key) });

test('every compare target and op, on present and absent keys', () => {
  const r = new Replica();
  r.put('k', 'm'); // rev 1
  r.put('k', 'm'); // rev 2: version 2, create 1, mod 2
  const ops = ['=', '!=', '<', '>'] as const;
  const expect = (target: 'value' | 'version' | 'create' | 'mod', key: string, value: Uint8Array | number, want: boolean[]): void => {
    ops.forEach((op, i) => {
      const c = (target === 'value' ? { key: b(key), target, op, value } : { key: b(key), target, op, value }) as KvCompare;
      assert.equal(r.holds(c), want[i], `${key} ${target} ${op} ${String(value)}`);
    });
  };
  expect('value', 'k', b('m'), [true, false, false, false]);
  expect('value', 'k', b('a'), [false, true, false, true]);
  expect('value', 'k', b('z'), [false, true, true, false]);
  expect('value', 'k', b('m\0'), [false, true, true, false]);
  expect('version', 'k', 2, [true, false, false, false]);
  expect('version', 'k', 3, [false, true, true, false]);
  expect('create', 'k', 0, [false, true, false, true]);
  expect('create', 'k', 1, [true, false, false, false]);
  expect('mod', 'k', 2, [true, false, false, false]);
  expect('mod', 'k', 1, [false, true, false, true]);
  // An absent key: version, create, mod 0; a value compare holds only for !=.
  expect('value', 'absent', b(''), [false, true, false, false]);
  expect('value', 'absent', b('x'), [false, true, false, false]);
  expect('version', 'absent', 0, [true, false, false, false]);
  expect('create', 'absent', 0, [true, false, false, false]);
  expect('mod', 'absent', 1, [false, true, true, false]);
  assert.equal(r.holds({ key: b('k'), target: 'exists', op: '=', value: true }), true);
  assert.equal(r.holds({ key: b('k'), target: 'exists', op: '!=', value: true }), false);
  assert.equal(r.holds({ key: b('absent'), target: 'exists', op: '=', value: false }), true);
  assert.equal(r.holds({ key: b('absent'), target: 'exists', op: '=', value: true }), false);
  // No compare at all: then runs.
  assert.equal(r.txn({}).txn.succeeded, true);
  assert.equal(r.sm.revision, 2, 'compares and empty branches write nothing');
});

test('a failed compare runs else and writes nothing of then; all compares must hold', () => {
  const r = new Replica();
  r.put('a', '1');
  const t = r.txn({
    compare: [
      { key: b('a'), target: 'value', op: '=', value: b('1') },
      { key: b('b'), target: 'exists', op: '=', value: true },
    ],
    then: [put('a', '2'), put('c', '3')],
    else: [get('a')],
  });
  assert.equal(t.txn.succeeded, false);
  assert.equal(t.revision, 1);
  assert.equal(text(t.txn.results[0]!.value), '1');
  assert.equal(text(r.sm.get(b('a'))), '1');
  assert.equal(r.sm.get(b('c')), null);
});

test('the writes of a branch share one revision; gets see the earlier ops of their branch', () => {
  const r = new Replica();
  r.put('x', 'old'); // rev 1
  const changes: [number, KvChange][] = [];
  r.sm.onChange = (revision, change) => changes.push([revision, change]);
  const t = r.txn({ then: [get('x'), put('x', 'new'), put('y', 'Y'), del('z'), del('x2'), get('x'), get('y'), get('nope')] });
  assert.equal(t.revision, 2);
  const [g1, p1, p2, d1, d2, g2, g3, g4] = t.txn.results;
  assert.deepEqual(g1, { type: 'get', value: b('old'), key: { createRevision: 1, modRevision: 1, version: 1 } });
  assert.deepEqual(p1, { type: 'put', value: b('old'), key: { createRevision: 1, modRevision: 2, version: 2 } });
  assert.deepEqual(p2, { type: 'put', value: null, key: { createRevision: 2, modRevision: 2, version: 1 } });
  assert.deepEqual(d1, { type: 'delete', value: null });
  assert.deepEqual(d2, { type: 'delete', value: null });
  assert.deepEqual(g2, { type: 'get', value: b('new'), key: { createRevision: 1, modRevision: 2, version: 2 } });
  assert.equal(g3!.key?.modRevision, 2);
  assert.deepEqual(g4, { type: 'get', value: null });
  assert.deepEqual(changes.map(([rev, c]) => [rev, c.type, text(c.key)]), [
    [2, 'put', 'x'],
    [2, 'put', 'y'],
  ]);
  // A delete in a txn: same revision as the txn's puts.
  changes.length = 0;
  const t2 = r.txn({ then: [del('x'), put('w', '1')] });
  assert.equal(t2.revision, 3);
  assert.deepEqual(t2.txn.results[0], { type: 'delete', value: b('new') });
  assert.deepEqual(changes.map(([rev, c]) => [rev, c.type, text(c.key)]), [
    [3, 'delete', 'x'],
    [3, 'put', 'w'],
  ]);
  // Only deletes of missing keys, or only gets: no new revision.
  assert.equal(r.txn({ then: [del('missing'), get('w')] }).revision, 3);
  assert.equal(r.sm.revision, 3);
});

test('version and createRevision after put, delete, put across transactions', () => {
  const r = new Replica();
  r.txn({ then: [put('k', '1')] }); // rev 1
  r.txn({ then: [put('k', '2')] }); // rev 2
  r.txn({ then: [del('k')] }); // rev 3
  const t = r.txn({ then: [put('k', '3'), get('k')] }); // rev 4
  assert.deepEqual(t.txn.results[1]!.key, { createRevision: 4, modRevision: 4, version: 1 });
  assert.equal(r.holds({ key: b('k'), target: 'create', op: '=', value: 4 }), true);
  assert.equal(r.holds({ key: b('k'), target: 'version', op: '=', value: 1 }), true);
  assert.deepEqual(r.sm.getWithMeta(b('k')), { value: b('3'), createRevision: 4, modRevision: 4, version: 1 });
});

test('a key written twice in one branch is refused; then and else are checked apart', () => {
  const base = { op: 'txn', clientId: '', seq: 0, compare: [] } as const;
  const dup = txnProblem({ ...base, then: [put('a', '1'), get('a'), del('a')], else: [] });
  assert.deepEqual(dup && { code: dup.code, field: dup.field }, { code: 'duplicate-key', field: 'then[2].delete.key' });
  assert.equal(txnProblem({ ...base, then: [put('a', '1'), get('a')], else: [put('a', '2')] }), null);
  assert.equal(txnProblem({ ...base, then: [], else: [put('a', '1'), put('a', '2')] })?.field, 'else[1].put.key');
  assert.throws(() => encodeKvCommand({ ...base, then: [put('a', '1'), put('a', '2')], else: [] }), RangeError);
  const many = Array.from({ length: TXN_OPS_MAX + 1 }, (_, i) => get(`k${i}`));
  assert.equal(txnProblem({ ...base, then: many, else: [] })?.code, 'too-many-operations');
  assert.equal(txnProblem({ ...base, then: [get('')], else: [] })?.code, 'invalid-key');
  assert.equal(
    txnProblem({ ...base, compare: [{ key: b('a'), target: 'exists', op: '<', value: true }], then: [], else: [] })?.field,
    'compare[0].op',
  );
  // A hand-made entry with a duplicate is an invalid command, applied as a no-op.
  const r = new Replica();
  const good = encodeKvCommand({ ...base, then: [put('a', '1'), put('b', '2')], else: [] });
  const bad = good.slice();
  bad[bad.lastIndexOf(0x62)] = 0x61; // rename key b to a (the last b in the entry)
  const result = r.apply(bad);
  assert.equal(result.ok, false);
  assert.equal(r.sm.revision, 0);
});

test('a branch whose results would pass TXN_RESULT_BYTES_MAX is refused whole, deterministically', () => {
  assert.equal(TXN_RESULT_BYTES_MAX, 4 * VALUE_BYTES_MAX, 'the cases below count in values of VALUE_BYTES_MAX');
  const r = new Replica();
  const big = 'x'.repeat(VALUE_BYTES_MAX);
  r.put('big', big); // rev 1
  const ok = r.txn({ then: [get('big'), get('big'), get('big'), get('big')] });
  assert.equal(ok.txn.results.length, 4, 'exactly 4 MiB is allowed');
  const tooMuch = r.apply(encodeKvCommand({ op: 'txn', clientId: 's', seq: 1, compare: [], then: [put('other', 'o'), get('big'), get('big'), get('big'), get('big'), get('other')], else: [] }));
  assert.equal(tooMuch.ok === false && tooMuch.error, 'invalid-command');
  assert.equal(r.sm.get(b('other')), null, 'nothing applied');
  assert.equal(r.sm.revision, 1);
  // The refusal is the session's answer to that seq.
  const retry = r.apply(encodeKvCommand({ op: 'txn', clientId: 's', seq: 1, compare: [], then: [], else: [] }));
  assert.equal(retry.ok === false && retry.error, 'invalid-command');
  // A put's previous value counts, and so does a get after the branch's own put.
  assert.equal(r.apply(encodeKvCommand({ op: 'txn', clientId: '', seq: 0, compare: [], then: [get('big'), get('big'), get('big'), put('big', 'y'), get('big')], else: [] })).ok, false);
  assert.equal(r.txn({ then: [get('big'), get('big'), get('big'), del('big'), get('big')] }).txn.results.length, 5);
});

test('a retried txn (same session seq) answers the cached result and applies nothing again', () => {
  const r = new Replica();
  const session = { clientId: 'c1', seq: 1 };
  const first = r.txn({ compare: [{ key: b('n'), target: 'create', op: '=', value: 0 }], then: [put('n', 'v')], else: [get('n')] }, session);
  assert.equal(first.txn.succeeded, true);
  const index = r.next - 1;
  const again = r.txn({ compare: [{ key: b('n'), target: 'create', op: '=', value: 0 }], then: [put('n', 'v')], else: [get('n')] }, session);
  assert.equal(again.txn.succeeded, true, 'answered from the session, not re-evaluated');
  assert.equal(again.deduplicatedFrom, index);
  assert.deepEqual(again.txn, first.txn);
  assert.equal(r.sm.revision, 1);
  // The next seq runs for real: now the key exists.
  assert.equal(r.txn({ compare: [{ key: b('n'), target: 'create', op: '=', value: 0 }], then: [put('n', 'w')], else: [get('n')] }, { clientId: 'c1', seq: 2 }).txn.succeeded, false);
});

test('a snapshot with a cached txn result round-trips canonically', () => {
  const r = new Replica();
  r.put('a', 'A');
  r.txn({ then: [put('a', 'B'), del('zz'), get('a'), get('none')] }, { clientId: 'c', seq: 1 });
  r.txn({ compare: [{ key: b('a'), target: 'value', op: '=', value: b('nope') }], else: [get('a')] }, { clientId: 'd', seq: 5 });
  const snap = r.sm.snapshot();
  const restored = new KvStateMachine();
  restored.restore({ index: r.sm.appliedIndex, term: 1, data: snap });
  assert.deepEqual(restored.snapshot(), snap);
  const again = new Replica(restored);
  const retry = again.txn({ then: [put('a', 'other')] }, { clientId: 'c', seq: 1 });
  assert.deepEqual(retry.txn.results.map((x) => [x.type, text(x.value)]), [
    ['put', 'A'],
    ['delete', null],
    ['get', 'B'],
    ['get', null],
  ]);
  assert.equal(retry.revision, 2);
  assert.equal(text(restored.get(b('a'))), 'B');
});

test('txn commands and results round-trip; malformed ones are CodecErrors', () => {
  const cmd: KvTxnCommand = {
    op: 'txn',
    clientId: 'id',
    seq: 7,
    compare: [
      { key: b('a'), target: 'value', op: '<', value: b('v') },
      { key: b('b'), target: 'version', op: '>', value: 300 },
      { key: b('c'), target: 'exists', op: '!=', value: false },
    ],
    then: [put('a', 'x'), del('b'), get('c')],
    else: [get('a')],
  };
  const bytes = encodeKvCommand(cmd);
  assert.deepEqual(decodeKvCommand(bytes), cmd);
  for (let cut = 0; cut < bytes.length; cut++) assert.throws(() => decodeKvCommand(bytes.subarray(0, cut)), CodecError);
  const result: KvResult = {
    ok: true,
    revision: 9,
    txn: { succeeded: true, results: [{ type: 'put', value: null, key: { createRevision: 9, modRevision: 9, version: 1 } }, { type: 'delete', value: b('p') }, { type: 'get', value: null }] },
  };
  const rb = encodeKvResult(result);
  assert.deepEqual(decodeKvResult(rb), result);
  for (let cut = 0; cut < rb.length; cut++) assert.throws(() => decodeKvResult(rb.subarray(0, cut)), CodecError);
  // A put's revisions after the result's revision: refused both ways.
  const future: KvResult = { ok: true, revision: 3, txn: { succeeded: true, results: [{ type: 'put', value: null, key: { createRevision: 4, modRevision: 4, version: 1 } }] } };
  assert.throws(() => encodeKvResult(future), RangeError);
  const tampered = encodeKvResult({ ...future, revision: 4 });
  tampered[1] = 3; // the revision varint
  assert.throws(() => decodeKvResult(tampered), CodecError);
});
