/**
 * When a membership change is reported done (Waiters, src/runtime/waiters.ts): only once a final
 * (not joint) configuration at or after its entry is applied, whether the node still leads or not.
 * Found by the explorer (seed 100831 of the workload with ranges and transactions): a leader that
 * replaced itself lost its leadership with only the joint entry committed, reported the change as
 * done, the operator then shut it down, and the two remaining members, still joint with it, could
 * never elect a leader again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initialMembership, type Membership } from '../../src/core/membership.js';
import type { Entry } from '../../src/core/messages.js';
import type { Clock } from '../../src/runtime/clock.js';
import { ProposalTimeoutError } from '../../src/runtime/errors.js';
import type { MembershipChanged } from '../../src/runtime/node.js';
import { Waiters } from '../../src/runtime/waiters.js';

/** A clock whose timers fire only when told to. */
function manualClock(): Clock & { fire(): void } {
  const timers: (() => void)[] = [];
  return {
    now: () => 0,
    schedule: (_ms: number, callback: () => void) => {
      timers.push(callback);
      return { cancel: () => timers.splice(timers.indexOf(callback), 1) };
    },
    defer: (callback: () => void) => callback(),
    repeat: () => ({ cancel: () => undefined }),
    fire: () => {
      for (const callback of [...timers]) callback();
    },
  } as unknown as Clock & { fire(): void };
}

const joint: Membership = { voters: [1, 3], outgoing: [0, 1], learners: [], addresses: [] };
const final: Membership = initialMembership([1, 3]);

function configEntry(index: number, membership: Membership): Entry {
  return { index, term: 1, command: new Uint8Array(0), membership };
}

/** The change's outcome so far (read through functions, so each check sees the latest). */
function watch(waiters: Waiters, index: number): { done(): MembershipChanged | undefined; error(): Error | undefined } {
  let done: MembershipChanged | undefined;
  let error: Error | undefined;
  waiters.addMembershipChange(index, 1, 10_000, (value) => (done = value), (e) => (error = e));
  return { done: () => done, error: () => error };
}

describe('membership change waiters', () => {
  it('a joint configuration applied is not done; the final one is', () => {
    const waiters = new Waiters(manualClock());
    const seen = watch(waiters, 11);
    waiters.membershipApplied(configEntry(11, joint));
    assert.equal(seen.done(), undefined);
    waiters.membershipApplied(configEntry(12, final));
    assert.deepEqual(seen.done()?.membership, final);
    assert.equal(seen.done()?.completedAt, 12);
  });

  it('leadership lost with only the joint entry applied (the final one in the log, uncommitted): not done, and a timeout says unknown', () => {
    const clock = manualClock();
    const waiters = new Waiters(clock);
    const seen = watch(waiters, 11);
    waiters.membershipApplied(configEntry(11, joint));
    // Commit 11, applied 11; the final configuration sits at 12, in this log only.
    waiters.membershipLeadershipLost(11, 11, final, 12, undefined);
    assert.equal(seen.done(), undefined, 'reported done while still joint');
    assert.equal(seen.error(), undefined);
    clock.fire();
    assert.ok(seen.error() instanceof ProposalTimeoutError);
  });

  it('leadership lost in a joint configuration that is applied: still not done; done once a new leader\'s final entry applies here', () => {
    const waiters = new Waiters(manualClock());
    const seen = watch(waiters, 11);
    waiters.membershipApplied(configEntry(11, joint));
    waiters.membershipLeadershipLost(11, 11, joint, 11, 3);
    assert.equal(seen.done(), undefined);
    waiters.membershipApplied({ ...configEntry(13, final), term: 2 });
    assert.equal(seen.done()?.completedAt, 13);
  });

  it('leadership lost once the final configuration is applied: done at once', () => {
    const waiters = new Waiters(manualClock());
    const seen = watch(waiters, 11);
    waiters.membershipLeadershipLost(12, 12, final, 12, undefined);
    assert.equal(seen.done()?.completedAt, 12);
  });
});
