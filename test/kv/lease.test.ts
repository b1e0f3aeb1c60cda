/**
 * Leases in the KV state machine (lease-table.ts) and their clocks on the leader (lease-keeper.ts):
 * grants take ids in order and no revision, puts attach and detach keys, a revoke deletes its keys
 * at one revision in key order, unknown leases write nothing, exactly-once grants, the encodings,
 * snapshots (canonical, and refused when a key names a lease the snapshot lacks), and the keeper's
 * expiry, keep-alives, retries and restart of every clock at its full TTL on a leader change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodecError } from '../../src/codec/codec.js';
import { decodeKvCommand, decodeKvResult, encodeKvCommand, encodeKvResult, validateKvCommand, type KvAnyCommand, type KvResult } from '../../src/kv/commands.js';
import { LEASE_TTL_SECONDS_MAX, type KvLeaseRevokeCommand } from '../../src/kv/lease-commands.js';
import { LeaseKeeper, REVOKE_RETRY_MS, TIMER_HOP_MS } from '../../src/kv/lease-keeper.js';
import { KvStateMachine, type KvChange } from '../../src/kv/state-machine.js';
import type { Clock, ClockTimer } from '../../src/runtime/clock.js';
import { BusyError, ProposalTimeoutError } from '../../src/runtime/errors.js';

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);
const text = (u: Uint8Array | null | undefined): string | null => (u === null || u === undefined ? null : new TextDecoder().decode(u));

class Replica {
  next = 1;
  constructor(readonly sm = new KvStateMachine()) {
    this.next = sm.appliedIndex + 1;
  }
  apply(cmd: KvAnyCommand): KvResult {
    return this.sm.applyCommand(this.next++, encodeKvCommand(cmd));
  }
  grant(ttlSeconds: number, session = { clientId: '', seq: 0 }): number {
    const result = this.apply({ op: 'lease-grant', ...session, ttlSeconds });
    if (!result.ok || result.lease === undefined) assert.fail(`not a grant: ${JSON.stringify(result)}`);
    return result.lease.id;
  }
  put(key: string, value: string, lease?: number): KvResult {
    return this.apply({ op: 'put', clientId: '', seq: 0, key: b(key), value: b(value), ...(lease === undefined ? {} : { lease }) });
  }
  revoke(id: number): KvResult {
    return this.apply({ op: 'lease-revoke', clientId: '', seq: 0, id });
  }
  leaseOf(key: string): number | undefined {
    return this.sm.getWithMeta(b(key))?.lease;
  }
}

test('grants take ids in order and no revision; puts attach, a put without a lease detaches, append and cas keep it', () => {
  const r = new Replica();
  r.put('x', '1');
  const revision = r.sm.revision;
  const a = r.grant(10);
  const c = r.grant(20);
  assert.deepEqual([a, c], [1, 2]);
  assert.equal(r.sm.revision, revision, 'a grant changes no key');
  assert.deepEqual(r.sm.leaseList(), [
    { id: 1, ttlSeconds: 10, keyCount: 0 },
    { id: 2, ttlSeconds: 20, keyCount: 0 },
  ]);

  r.put('k', 'v', a);
  assert.equal(r.leaseOf('k'), a);
  r.apply({ op: 'append', clientId: '', seq: 0, key: b('k'), value: b('+') });
  assert.equal(r.leaseOf('k'), a, 'an append keeps the lease');
  r.apply({ op: 'cas', clientId: '', seq: 0, key: b('k'), expected: b('v+'), value: b('w') });
  assert.equal(r.leaseOf('k'), a, 'a cas keeps the lease');
  r.put('k', 'moved', c);
  assert.equal(r.leaseOf('k'), c);
  assert.equal(r.sm.lease(a)!.keyCount, 0);
  assert.equal(r.sm.lease(c)!.keyCount, 1);
  r.put('k', 'free');
  assert.equal(r.leaseOf('k'), undefined, 'a put without a lease detaches');
  assert.equal(r.sm.lease(c)!.keyCount, 0);
  assert.equal(r.sm.range({ start: b('k'), end: null }).kvs[0]!.lease, undefined);
  r.put('k', 'again', c);
  assert.equal(r.sm.range({ start: b('k'), end: null }).kvs[0]!.lease, c);
  r.apply({ op: 'delete', clientId: '', seq: 0, key: b('k') });
  assert.equal(r.sm.lease(c)!.keyCount, 0, 'a delete detaches');
});

test('a revoke deletes its keys at one revision, in key order; revoking again or naming an unknown lease writes nothing', () => {
  const r = new Replica();
  const id = r.grant(5);
  for (const k of ['c', 'a', 'b']) r.put(k, k, id);
  r.put('other', 'o');
  const changes: [number, KvChange][] = [];
  r.sm.onChange = (revision, change) => changes.push([revision, change]);
  const before = r.sm.revision;
  const revoked = r.revoke(id);
  assert.ok(revoked.ok);
  assert.deepEqual(revoked.lease, { id, ttlSeconds: 5, deletedKeys: 3 });
  assert.equal(revoked.revision, before + 1);
  assert.deepEqual(
    changes.map(([rev, c]) => [rev, c.type, text(c.key)]),
    [
      [before + 1, 'delete', 'a'],
      [before + 1, 'delete', 'b'],
      [before + 1, 'delete', 'c'],
    ],
  );
  assert.equal(r.sm.get(b('a')), null);
  assert.equal(text(r.sm.get(b('other'))), 'o');
  assert.equal(r.sm.lease(id), null);

  const again = r.revoke(id);
  assert.equal(again.ok, false);
  assert.equal(!again.ok && again.error, 'lease-not-found');
  assert.equal(r.sm.revision, before + 1);

  const unknownPut = r.put('z', 'z', 99);
  assert.equal(!unknownPut.ok && unknownPut.error, 'lease-not-found');
  assert.equal(r.sm.get(b('z')), null, 'nothing written');

  const empty = r.grant(5);
  const quiet = r.revoke(empty);
  assert.ok(quiet.ok);
  assert.equal(quiet.revision, before + 1, 'a revoke without keys takes no revision');
  assert.equal(r.grant(5), empty + 1, 'ids are never reused');
});

test('transactions attach keys to leases; one naming an unknown lease applies nothing', () => {
  const r = new Replica();
  const id = r.grant(30);
  const ok = r.apply({ op: 'txn', clientId: '', seq: 0, compare: [], then: [{ type: 'put', key: b('lock'), value: b('me'), lease: id }], else: [] });
  assert.ok(ok.ok && ok.txn?.succeeded);
  assert.equal(r.leaseOf('lock'), id);
  const revision = r.sm.revision;
  const bad = r.apply({
    op: 'txn',
    clientId: '',
    seq: 0,
    compare: [],
    then: [
      { type: 'put', key: b('a'), value: b('1') },
      { type: 'put', key: b('b'), value: b('2'), lease: 77 },
    ],
    else: [],
  });
  assert.equal(!bad.ok && bad.error, 'lease-not-found');
  assert.equal(r.sm.get(b('a')), null);
  assert.equal(r.sm.revision, revision);
  // An unknown lease in the branch that does not run is no obstacle.
  const elseRan = r.apply({ op: 'txn', clientId: '', seq: 0, compare: [{ key: b('lock'), target: 'exists', op: '=', value: false }], then: [{ type: 'put', key: b('x'), value: b('1'), lease: 77 }], else: [{ type: 'get', key: b('lock') }] });
  assert.ok(elseRan.ok && elseRan.txn?.succeeded === false);
});

test('a retried grant is answered with the same lease; a stale one is refused', () => {
  const r = new Replica();
  const first = r.grant(10, { clientId: 'c1', seq: 1 });
  const retry = r.apply({ op: 'lease-grant', clientId: 'c1', seq: 1, ttlSeconds: 10 });
  assert.ok(retry.ok);
  assert.equal(retry.lease?.id, first);
  assert.ok(retry.deduplicatedFrom !== undefined);
  assert.equal(r.sm.leaseList().length, 1);
});

test('lease commands and results encode and decode; bad fields are refused', () => {
  const cmds: KvAnyCommand[] = [
    { op: 'lease-grant', clientId: 'c', seq: 3, ttlSeconds: 60 },
    { op: 'lease-revoke', clientId: '', seq: 0, id: 12 },
    { op: 'lease-revoke', clientId: '', seq: 0, id: 12, expired: true },
    { op: 'put', clientId: 'c', seq: 4, key: b('k'), value: b('v'), lease: 5 },
    { op: 'put', clientId: 'c', seq: 4, key: b('k'), value: b('v'), lease: 5, ifModRevision: 0 },
    { op: 'txn', clientId: '', seq: 0, compare: [], then: [{ type: 'put', key: b('k'), value: b('v'), lease: 9 }, { type: 'get', key: b('k') }], else: [] },
  ];
  for (const cmd of cmds) assert.deepEqual(decodeKvCommand(encodeKvCommand(cmd)), cmd);
  const results: KvResult[] = [
    { ok: true, revision: 4, lease: { id: 2, ttlSeconds: 9, deletedKeys: 0 } },
    { ok: false, error: 'lease-not-found', message: 'lease 3 does not exist' },
  ];
  for (const result of results) assert.deepEqual(decodeKvResult(encodeKvResult(result)), result);

  assert.match(validateKvCommand({ op: 'lease-grant', clientId: '', seq: 0, ttlSeconds: 0 }) ?? '', /TTL/);
  assert.match(validateKvCommand({ op: 'lease-grant', clientId: '', seq: 0, ttlSeconds: LEASE_TTL_SECONDS_MAX + 1 }) ?? '', /TTL/);
  assert.match(validateKvCommand({ op: 'lease-grant', clientId: '', seq: 0, ttlSeconds: 1.5 }) ?? '', /TTL/);
  assert.match(validateKvCommand({ op: 'lease-revoke', clientId: '', seq: 0, id: 0 }) ?? '', /lease id/);
  assert.match(validateKvCommand({ op: 'append', clientId: '', seq: 0, key: b('k'), value: b('v'), lease: 1 }) ?? '', /takes no lease/);
  assert.match(validateKvCommand({ op: 'txn', clientId: '', seq: 0, compare: [], then: [{ type: 'delete', key: b('k'), lease: 1 } as never], else: [] }) ?? '', /takes no lease/);
  // A lease id of 0 in a decoded put (no client encodes one) is an invalid command, applied as a no-op.
  const bytes = encodeKvCommand({ op: 'put', clientId: '', seq: 0, key: b('k'), value: b('v'), lease: 1 });
  bytes[bytes.length - 1] = 0;
  const result = new KvStateMachine().applyCommand(1, bytes);
  assert.equal(!result.ok && result.error, 'invalid-command');
  const revoke = encodeKvCommand({ op: 'lease-revoke', clientId: '', seq: 0, id: 1 });
  revoke[revoke.length - 1] = 2;
  assert.throws(() => decodeKvCommand(revoke), CodecError);
});

test('snapshots hold the leases and the keys attached; restore is canonical and refuses a key naming a missing lease', () => {
  const r = new Replica();
  const a = r.grant(10);
  const c = r.grant(20);
  r.revoke(r.grant(1)); // lastId 3, not held
  r.put('k1', 'v', a);
  r.put('k2', 'v', c);
  r.put('k3', 'v');
  const snap = r.sm.snapshot();
  const restored = new KvStateMachine();
  restored.restore({ index: r.sm.appliedIndex, term: 1, data: snap });
  assert.deepEqual(restored.snapshot(), snap);
  assert.deepEqual(restored.leaseList(), r.sm.leaseList());
  assert.deepEqual(restored.leaseKeys(a).map(text), ['k1']);
  // The restored replica goes on exactly as the original: same ids, same deletions.
  const again = new Replica(restored);
  assert.equal(again.grant(5), 4);
  assert.equal(r.grant(5), 4);
  assert.deepEqual(again.revoke(c), r.revoke(c));
  assert.deepEqual(again.sm.snapshot(), r.sm.snapshot());

  // k1's lease (the varint right after its version) pointed at a lease the table lacks.
  const broken = new Replica();
  const id = broken.grant(10);
  broken.put('k', 'v', id);
  const data = broken.sm.snapshot();
  // The lease section is at the end: lastId 1, count 1, id 1, ttl 10. Say count 0 (and drop the entry).
  const tampered = Uint8Array.from([...data.subarray(0, data.length - 3), 0]);
  assert.throws(() => new KvStateMachine().restore({ index: broken.sm.appliedIndex, term: 1, data: tampered }), /lease 1, which the snapshot does not hold/);
  assert.match(broken.sm.checkSnapshot({ index: broken.sm.appliedIndex, term: 1, data: tampered }) ?? '', /does not hold/);
});

// ---- the keeper ----

/** A clock whose time moves only when told; timers fire in deadline order. */
class ManualClock implements Clock {
  private t = 0;
  private timers: { at: number; callback: () => void; cancelled: boolean }[] = [];
  now(): number {
    return this.t;
  }
  schedule(delayMs: number, callback: () => void): ClockTimer {
    const timer = { at: this.t + delayMs, callback, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }
  repeat(): ClockTimer {
    throw new Error('the keeper uses one-shot timers');
  }
  defer(callback: () => void): void {
    callback();
  }
  get armed(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }
  /** Moves time to `to`, firing every timer due on the way. */
  advanceTo(to: number): void {
    for (;;) {
      const due = this.timers.filter((t) => !t.cancelled && t.at <= to).sort((x, y) => x.at - y.at)[0];
      if (due === undefined) break;
      this.t = Math.max(this.t, due.at);
      due.cancelled = true;
      due.callback();
    }
    this.t = to;
  }
}

/** A keeper over a state machine whose proposals apply at once (or fail while `failing`). */
function keeperWorld(): { r: Replica; clock: ManualClock; keeper: LeaseKeeper; proposed: KvLeaseRevokeCommand[]; failing: { on: boolean; error?: Error } } {
  const r = new Replica();
  const clock = new ManualClock();
  const proposed: KvLeaseRevokeCommand[] = [];
  const failing: { on: boolean; error?: Error } = { on: false };
  const keeper = new LeaseKeeper(r.sm, {
    clock,
    propose: (command) => {
      const cmd = decodeKvCommand(command) as KvLeaseRevokeCommand;
      proposed.push(cmd);
      if (failing.on) return Promise.reject(failing.error ?? new BusyError(64));
      r.sm.applyCommand(r.next++, command);
      return Promise.resolve();
    },
  });
  return { r, clock, keeper, proposed, failing };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('the keeper times leases only while leading, and proposes an expired lease\'s revoke', async () => {
  const { r, clock, keeper, proposed } = keeperWorld();
  const id = r.grant(2);
  r.put('k', 'v', id);
  clock.advanceTo(10_000);
  assert.equal(proposed.length, 0, 'a follower times nothing');
  assert.equal(clock.armed, 0);
  assert.deepEqual(keeper.keepAlive(id), { kind: 'not-leader' });

  keeper.leadershipChanged(3); // at 10 s: every lease gets its full TTL from now
  assert.equal(keeper.remainingMs(id), 2000);
  clock.advanceTo(11_999);
  assert.equal(proposed.length, 0);
  clock.advanceTo(12_000);
  assert.deepEqual(proposed, [{ op: 'lease-revoke', clientId: '', seq: 0, id, expired: true }]);
  assert.equal(r.sm.lease(id), null);
  assert.equal(r.sm.get(b('k')), null);
  assert.equal(keeper.expiredRevokes, 1);
  assert.equal(clock.armed, 0, 'no lease, no timer');
});

test('keep-alives restart a lease at its full TTL; an expiring lease refuses them', () => {
  const { r, clock, keeper, proposed, failing } = keeperWorld();
  keeper.leadershipChanged(1);
  const id = r.grant(3); // granted while leading: its clock starts at the apply
  for (let t = 2000; t <= 20_000; t += 2000) {
    clock.advanceTo(t);
    assert.deepEqual(keeper.keepAlive(id), { kind: 'renewed', ttlSeconds: 3 });
  }
  assert.equal(proposed.length, 0);
  assert.deepEqual(keeper.keepAlive(99), { kind: 'not-found' });
  failing.on = true; // the revoke's proposal fails later: the lease is expiring meanwhile
  clock.advanceTo(23_000);
  assert.equal(proposed.length, 1);
  assert.equal(keeper.remainingMs(id), null);
});

test('a failed revoke is proposed again while still leading; a new leader restarts every clock in full (no early expiry)', async () => {
  const { r, clock, keeper, proposed, failing } = keeperWorld();
  keeper.leadershipChanged(1);
  const id = r.grant(4);
  failing.on = true;
  clock.advanceTo(4000);
  assert.equal(proposed.length, 1);
  assert.deepEqual(keeper.keepAlive(id), { kind: 'not-found' }, 'expiring');
  await settle(); // the rejection arrives
  failing.on = false;
  clock.advanceTo(4000 + REVOKE_RETRY_MS);
  assert.equal(proposed.length, 2);
  assert.equal(r.sm.lease(id), null);

  // A revoke whose outcome is unknown may still commit: the lease stays expiring, never renewed, not proposed again.
  const pending = r.grant(1);
  failing.on = true;
  failing.error = new ProposalTimeoutError(5000);
  clock.advanceTo(clock.now() + 1000);
  assert.equal(proposed.length, 3);
  await settle();
  failing.on = false;
  clock.advanceTo(clock.now() + 10 * REVOKE_RETRY_MS);
  assert.equal(proposed.length, 3);
  assert.deepEqual(keeper.keepAlive(pending), { kind: 'not-found' });
  r.revoke(pending); // the entry commits after all
  proposed.length = 2;

  // A leader change at 2.5 s into a 4 s lease: the new leader counts 4 s from then.
  const next = r.grant(4);
  const grantedAt = clock.now();
  clock.advanceTo(grantedAt + 2500);
  keeper.leadershipChanged(-1);
  clock.advanceTo(grantedAt + 3000);
  keeper.leadershipChanged(2);
  clock.advanceTo(grantedAt + 3000 + 3999);
  assert.equal(proposed.length, 2, 'not before the new leader\'s full TTL');
  assert.ok(r.sm.lease(next) !== null);
  clock.advanceTo(grantedAt + 3000 + 4000);
  assert.equal(proposed.length, 3);
  assert.equal(r.sm.lease(next), null);
});

test('a lease of years is timed in hops (no timer overflow), and still expires on time', () => {
  const { r, clock, keeper, proposed } = keeperWorld();
  keeper.leadershipChanged(1);
  const id = r.grant(LEASE_TTL_SECONDS_MAX);
  const delays: number[] = [];
  const schedule = clock.schedule.bind(clock);
  clock.schedule = (delayMs, callback) => (delays.push(delayMs), schedule(delayMs, callback));
  clock.advanceTo(10 * TIMER_HOP_MS);
  assert.ok(delays.length >= 10 && delays.every((d) => d <= TIMER_HOP_MS), `delays ${delays.slice(0, 3).join(', ')}...`);
  assert.equal(proposed.length, 0);
  const short = r.grant(2);
  clock.advanceTo(clock.now() + 2000);
  assert.deepEqual(proposed.map((c) => c.id), [short]);
  assert.ok(r.sm.lease(id) !== null);
});

test('many leases expire in deadline order, renewed ones skipped, with the in-flight bound respected', () => {
  const { r, clock, keeper, proposed } = keeperWorld();
  keeper.leadershipChanged(1);
  const ids: number[] = [];
  for (let i = 0; i < 300; i++) ids.push(r.grant(1 + (i % 5)));
  // Renew every third lease repeatedly so the heap fills with stale deadlines.
  for (let t = 500; t <= 4500; t += 500) {
    clock.advanceTo(t);
    for (let i = 0; i < ids.length; i += 3) keeper.keepAlive(ids[i]!);
  }
  const renewed = new Set(ids.filter((_, i) => i % 3 === 0));
  assert.ok(proposed.every((c) => !renewed.has(c.id)), 'a renewed lease never expires');
  clock.advanceTo(60_000);
  assert.equal(r.sm.leaseList().length, 0);
  assert.equal(new Set(proposed.map((c) => c.id)).size, 300);
});
