/**
 * The random fault explorer inside `npm test`: a fixed slice of seeds must pass every safety and
 * liveness check, a seed must replay identically, and every injected Raft bug must be caught
 * within a fixed number of seeds (so the checkers are proven able to fail). `npm run explore`
 * runs as many seeds as you like.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { INJECTABLE_BUGS, type InjectedBug } from '../../src/core/config.js';
import { exploreReplayCommand, exploreSeed, type ExploreOptions } from '../../src/sim/explorer/explorer.js';
import type { DriverBug } from '../../src/sim/explorer/world.js';

const FIXED_SEEDS = Array.from({ length: 300 }, (_, i) => 1 + i);

/** The first seed (counting from 1) at which each bug was caught when the bound was set, with headroom. */
const CATCH_WITHIN: Record<InjectedBug | DriverBug, number> = {
  'commit-old-term': 600,
  'vote-without-log-check': 800,
  'forget-vote': 50,
  'truncate-on-stale-append': 50,
  'apply-before-commit': 50,
  'stuck-snapshot-transfer': 300,
  'send-before-sync': 10,
};

describe('explorer', () => {
  test(`the correct core passes seeds ${FIXED_SEEDS[0]}..${FIXED_SEEDS[FIXED_SEEDS.length - 1]}`, () => {
    const failures: string[] = [];
    for (const seed of FIXED_SEEDS) {
      const result = exploreSeed(seed, { traceLines: 0 });
      if (result.invariant !== undefined) failures.push(`${result.message}\n  replay: ${exploreReplayCommand(seed, {})}`);
    }
    assert.deepEqual(failures, []);
  });

  test('a seed replays to the same event trace', () => {
    for (const seed of [3, 42]) {
      const first = exploreSeed(seed, { traceLines: 0 });
      const second = exploreSeed(seed, { traceLines: 0 });
      assert.equal(second.digest, first.digest, `seed ${seed} is not deterministic`);
      assert.deepEqual(second.stats, first.stats);
    }
    assert.notEqual(exploreSeed(3, { traceLines: 0 }).digest, exploreSeed(4, { traceLines: 0 }).digest);
  });

  for (const bug of [...INJECTABLE_BUGS, 'send-before-sync'] as const) {
    test(`injected bug ${bug} is caught within ${CATCH_WITHIN[bug]} seeds`, () => {
      const options: ExploreOptions =
        bug === 'send-before-sync' ? { driverBug: bug, traceLines: 0 } : { bugs: new Set([bug]), traceLines: 0 };
      for (let seed = 1; seed <= CATCH_WITHIN[bug]; seed++) {
        const result = exploreSeed(seed, options);
        if (result.invariant !== undefined) {
          assert.ok(result.message !== undefined && result.message.length > 0);
          return;
        }
      }
      assert.fail(`${bug} went unnoticed for ${CATCH_WITHIN[bug]} seeds`);
    });
  }
});
