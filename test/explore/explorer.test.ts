/**
 * The random fault explorer inside `npm test`, on the node that ships: RaftNode + KvReplica on
 * simulated disks and network (src/sim/explorer). A fixed slice of seeds must pass every safety,
 * liveness and linearizability check; a seed must replay to the same trace, also in a fresh
 * process; and every injected bug, in the core or in the driver, must be caught within a fixed
 * number of seeds (so the checkers are proven able to fail). `npm run explore` runs as many seeds
 * as you like.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { INJECTABLE_BUGS, type InjectedBug } from '../../src/core/bugs.js';
import { DRIVER_BUGS, type DriverBug } from '../../src/driver/ready-driver.js';
import { exploreReplayCommand, exploreSeed, type ExploreOptions } from '../../src/sim/explorer/explorer.js';

const FAULT_SECONDS = 20;
const FIXED_SEEDS = Array.from({ length: 60 }, (_, i) => 1 + i);

/**
 * The seed (counting from 1) by which each bug must be caught: the first catching seed measured
 * when the bound was set (docs/TESTING.md lists them), with headroom.
 */
const CATCH_WITHIN: Record<InjectedBug | DriverBug, number> = {
  'commit-old-term': 20, // first caught at seed 2 (commit rule)
  'vote-without-log-check': 20, // 2 (leader completeness)
  'forget-vote': 20, // 2 (durable vote)
  'truncate-on-stale-append': 20, // 1 (liveness)
  'apply-before-commit': 20, // 2 (leader completeness)
  'stuck-snapshot-transfer': 600, // 65 (liveness)
  'stale-read-echo': 150, // 41 (read index)
  'ack-before-sync': 200, // 10 (durable term)
  'snapshot-restart-on-compaction': 900, // 332 (liveness)
  'two-changes-in-flight': 20, // 1 (one change at a time); by the safety checks alone, see below
  'learner-in-quorum': 60, // 5 (liveness), then 7 (commit quorum)
  'committed-config': 100, // 7 (commit quorum)
  'send-before-sync': 10, // 1 (driver assertion)
  'leader-counts-unsynced': 450, // 12 (commit quorum)
};

/**
 * Two membership changes in flight, with the operator's refusal check off: the safety checks
 * alone must notice, by configuration safety (two configurations with disjoint quorums that may
 * both decide). First caught at seed 7.
 */
const TWO_CHANGES_UNSAFE_WITHIN = 80;

describe('explorer (RaftNode + KvReplica, virtual time)', () => {
  test(`the shipped node passes seeds ${FIXED_SEEDS[0]}..${FIXED_SEEDS[FIXED_SEEDS.length - 1]}`, async () => {
    const failures: string[] = [];
    let operations = 0;
    for (const seed of FIXED_SEEDS) {
      const result = await exploreSeed(seed, { faultSeconds: FAULT_SECONDS, traceLines: 0 });
      operations += result.stats.opsChecked;
      if (result.invariant !== undefined) {
        failures.push(`${result.message}\n  replay: ${exploreReplayCommand(seed, { faultSeconds: FAULT_SECONDS })}`);
      }
    }
    assert.deepEqual(failures, []);
    assert.ok(operations > 1000, `the clients did work (${operations} operations checked)`);
  });

  test('a seed replays to the same event trace, in this process and in a fresh one', async () => {
    const first = await exploreSeed(42, { faultSeconds: FAULT_SECONDS, traceLines: 0 });
    const second = await exploreSeed(42, { faultSeconds: FAULT_SECONDS, traceLines: 0 });
    assert.equal(second.digest, first.digest, 'seed 42 is not deterministic');
    assert.deepEqual(second.stats, first.stats);
    const script = `import { exploreSeed } from ${JSON.stringify(fileURLToPath(new URL('../../src/sim/explorer/explorer.js', import.meta.url)))};
      const r = await exploreSeed(42, { faultSeconds: ${FAULT_SECONDS}, traceLines: 0 }); console.log(r.digest);`;
    const fresh = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim();
    assert.equal(Number(fresh), first.digest, 'a fresh process replays seed 42 differently');
    const other = await exploreSeed(43, { faultSeconds: FAULT_SECONDS, traceLines: 0 });
    assert.notEqual(other.digest, first.digest);
  });

  for (const bug of [...INJECTABLE_BUGS, ...DRIVER_BUGS]) {
    test(`injected bug ${bug} is caught within ${CATCH_WITHIN[bug]} seeds`, async () => {
      const isDriverBug = (DRIVER_BUGS as readonly string[]).includes(bug);
      const options: ExploreOptions = {
        faultSeconds: FAULT_SECONDS,
        traceLines: 0,
        ...(isDriverBug ? { driverBugs: new Set([bug as DriverBug]) } : { bugs: new Set([bug as InjectedBug]) }),
      };
      for (let seed = 1; seed <= CATCH_WITHIN[bug]; seed++) {
        const result = await exploreSeed(seed, options);
        if (result.invariant !== undefined) {
          assert.ok(result.message !== undefined && result.message.length > 0);
          return;
        }
      }
      assert.fail(`${bug} went unnoticed for ${CATCH_WITHIN[bug]} seeds`);
    });
  }

  test(`two-changes-in-flight breaks configuration safety within ${TWO_CHANGES_UNSAFE_WITHIN} seeds (refusal check off)`, async () => {
    const options: ExploreOptions = { faultSeconds: FAULT_SECONDS, traceLines: 0, bugs: new Set(['two-changes-in-flight']), changeRefusals: false };
    for (let seed = 1; seed <= TWO_CHANGES_UNSAFE_WITHIN; seed++) {
      const result = await exploreSeed(seed, options);
      if (result.invariant !== undefined) {
        assert.notEqual(result.invariant, 'one change at a time');
        return;
      }
    }
    assert.fail(`two changes in flight broke nothing the safety checks see for ${TWO_CHANGES_UNSAFE_WITHIN} seeds`);
  });
});
