/**
 * Leases in the explorer (src/sim/explorer/lease-checker.ts, the lease clients of workload.ts):
 * the checker flags an expiry revoke proposed before TTL after an acknowledged keep-alive (in
 * either order of events) and accepts one proposed on time; it records the deletes a revoke made
 * for the linearizability check; and seeds with lease clients pass with leases granted, renewed,
 * expired and revoked.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeKvCommand } from '../../src/kv/commands.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { exploreSeed } from '../../src/sim/explorer/explorer.js';
import { SafetyViolation } from '../../src/sim/explorer/invariants.js';
import { LeaseChecker } from '../../src/sim/explorer/lease-checker.js';
import { drawLeaseClients, leasePrngFor } from '../../src/sim/explorer/world-shape.js';

const encoder = new TextEncoder();

/** A state machine holding lease 1 (TTL `ttl` s) with key `lk` attached, at index 2. */
function leasedStore(ttl: number): KvStateMachine {
  const sm = new KvStateMachine();
  sm.apply({ index: 1, term: 1, command: encodeKvCommand({ op: 'lease-grant', clientId: 'c', seq: 1, ttlSeconds: ttl }) });
  sm.apply({ index: 2, term: 1, command: encodeKvCommand({ op: 'put', clientId: 'c', seq: 2, key: encoder.encode('lk'), value: encoder.encode('v'), lease: 1 }) });
  return sm;
}

const expiry = (index: number, term: number) => ({ index, term, command: encodeKvCommand({ op: 'lease-revoke', clientId: '', seq: 0, id: 1, expired: true }) });

describe('explorer lease checks', () => {
  test('an expiry proposed before TTL after an acknowledged keep-alive is caught when it is applied', () => {
    let now = 0;
    const checker = new LeaseChecker(() => now, () => undefined);
    const sm = leasedStore(2);
    checker.granted(1, 2, 0, 0);
    now = 1000;
    checker.renewed(1, 2, 1000, 0); // promised until 3000
    now = 2500;
    checker.revokeProposed(1, 1, 2, 2500);
    now = 2600;
    assert.throws(() => checker.applying(1, expiry(3, 2), sm), (e: unknown) => e instanceof SafetyViolation && e.invariant === 'lease expiry' && /expired early.*until 3000 ms/.test(e.message));
  });

  test('and when the acknowledgement arrives after the expiry was applied', () => {
    let now = 0;
    const checker = new LeaseChecker(() => now, () => undefined);
    const sm = leasedStore(2);
    checker.granted(1, 2, 0, 0);
    now = 2100;
    checker.revokeProposed(1, 1, 1, 2100);
    checker.applying(0, expiry(3, 1), sm); // 2100 >= 0 + 2000: fine so far
    now = 2200;
    assert.throws(() => checker.renewed(1, 2, 1500, 0), /expired early/);
  });

  test('an expiry proposed on time passes and becomes a delete of each key it removed', () => {
    let now = 0;
    const checker = new LeaseChecker(() => now, () => undefined);
    const sm = leasedStore(2);
    checker.granted(1, 2, 0, 0);
    checker.renewed(1, 2, 1000, 0);
    now = 3000;
    checker.revokeProposed(1, 1, 2, 3000);
    now = 3050;
    checker.applying(1, expiry(3, 2), sm);
    sm.apply(expiry(3, 2));
    checker.applying(2, expiry(3, 2), new KvStateMachine()); // a second replica's apply counts no more
    assert.deepEqual(
      checker.deleteOperations(10).map((op) => ({ id: op.id, key: op.input.key, kind: op.input.kind, call: op.call, return: op.return })),
      [{ id: 10, key: 'lk', kind: 'delete', call: 3000, return: 3050 }],
    );
    assert.equal(checker.counts.expired, 1);
  });

  test('an applied expiry that no keeper of its term proposed is flagged', () => {
    const checker = new LeaseChecker(() => 0, () => undefined);
    checker.revokeProposed(1, 1, 2, 0);
    assert.throws(() => checker.applying(0, expiry(3, 3), leasedStore(1)), /no lease keeper leading in term 3 proposed/);
  });

  test('seeds with lease clients pass, and their leases are granted, renewed, expired and revoked', async () => {
    const seeds = Array.from({ length: 40 }, (_, i) => 1 + i).filter((seed) => drawLeaseClients(leasePrngFor(seed)) > 0);
    assert.ok(seeds.length >= 8, `lease worlds among seeds 1..40: ${seeds.join(', ')}`);
    const total = { granted: 0, keepAlives: 0, expired: 0, revoked: 0 };
    for (const seed of seeds.slice(0, 10)) {
      const result = await exploreSeed(seed, { faultSeconds: 20, traceLines: 0 });
      assert.equal(result.invariant, undefined, `seed ${seed}: ${result.message}`);
      assert.ok(result.shape.leaseClients > 0);
      for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += result.stats.leases[k];
    }
    assert.ok(total.granted > 0 && total.keepAlives > 0 && total.expired > 0 && total.revoked > 0, JSON.stringify(total));
  });
});
