/**
 * Membership changes with real `tsraft node` OS processes under continuous client load.
 *
 * Nodes are `dist/src/cli/main.js node ...` processes (FileStorage with fsync on, TCP on 127.0.0.1,
 * free ports, one temporary directory; default timing: heartbeats every 100 ms, elections after
 * 1-2 s of silence; --max-raft-state 256 KiB, so that joining nodes catch up from a snapshot).
 * Eight KvClient writers put unique keys without pause; every acknowledged key is recorded with its
 * value. Phases, in order, each bounded in time:
 *   a. start 3 nodes (ids 0-2, --peers), then 2 s of steady load (the baseline);
 *   b. grow 3 -> 5: two `tsraft node --join` processes (ids 3, 4), started together, each join as a
 *      learner and promote themselves; both become voters;
 *   c. remove the leader (KvClient.removeMember of the current leader's id): a new leader appears
 *      among the other voters, writes continue; the removed process is stopped (SIGTERM);
 *   d. shrink to 3: remove a follower (after c there are 4 voters, so one removal reaches 3; a
 *      second would leave 2, and phase e's kill of a follower would then leave no majority);
 *   e. replace a killed node: SIGKILL a follower, remove it, a new node (new id 5) joins with
 *      --join and becomes a voter.
 * Then the load stops, and: every acknowledged write must be read back, with its value, by a
 * linearizable get from the final cluster; every live member's GET /v1/members must show the same
 * voters (the expected ones), no learners, no joint configuration. Zero lost writes and that
 * agreement are the assertions.
 *
 * Reported per phase (diagnostic lines), never asserted:
 * - write gap: the longest interval between two consecutive acknowledged writes (all writers
 *   together) that overlaps the phase's window, measured in full;
 * - leaderless time: every 20 ms a polling round asks every running node process (a removed one
 *   until its process is stopped; not a killed one) for GET /v1/status, all at once; a round is
 *   leaderless when no process that answered reports role "leader"; a leaderless period runs from
 *   the start of its first leaderless round to the start of the next round that has a leader.
 *   Reported: the sum of the periods within the window and the longest one.
 * A phase's window runs from its first action to 1 s after the cluster made progress again (a
 * leader among the expected voters seen, and 10 writes acknowledged, after the last action
 * completed). The one timing bound asserted is generous: that progress must come within 15 s.
 * Definitions and code: src/testing/membership-cluster.ts. `npm run bench:membership` measures
 * the same operations over several rounds.
 *
 * On a failure the whole log (every node's output and the harness's events, in arrival order) is
 * written next to the data directory (<tmp>/tsraft-membership-XXXX.log) and its path printed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatOp, MembershipScenario, type OpFigures } from '../../src/testing/membership-cluster.js';

test('membership changes under load (grow 3 -> 5, remove the leader, shrink, replace a killed node) lose no acknowledged write', { timeout: 150_000 }, async (t) => {
  const t0 = performance.now();
  const scenario = await MembershipScenario.start({
    size: 3,
    fsync: true,
    writers: 8,
    nodeArgs: ['--max-raft-state', '262144'],
    tmpPrefix: 'tsraft-membership-',
    onEvent: (line) => {
      if (process.env['TSRAFT_TEST_VERBOSE'] === '1') console.log(`  ${line}`);
    },
  });
  const report = (line: string): void => t.diagnostic(line);
  let failed = true;
  try {
    const firstLeader = performance.now() - t0;
    const phases: [string, OpFigures][] = [];
    const run = async (phase: string, op: () => Promise<OpFigures>): Promise<void> => {
      const figures = await op();
      phases.push([phase, figures]);
      report(`phase ${phase}. ${formatOp(figures)}`);
    };
    report(`phase a. 3 nodes started, first leader after ${firstLeader.toFixed(0)} ms (process start and the first election included)`);
    await run('a', () => scenario.baseline(2_000));
    await run('b', () => scenario.add(2));
    assert.deepEqual([...scenario.cluster.voters].sort(), [0, 1, 2, 3, 4]);
    await run('c', () => scenario.removeLeader());
    await run('d', () => scenario.removeFollower());
    assert.equal(scenario.cluster.voters.size, 3);
    await run('e', () => scenario.replaceKilled());
    assert.ok(scenario.cluster.voters.has(5));

    const result = await scenario.finish();
    report(
      `${result.acked} writes acknowledged (${result.failures} client calls timed out: outcome unknown, not checked), ` +
        `${result.verify.checked} read back, ${result.verify.lostCount} lost; final voters ${[...scenario.cluster.voters].sort().join(',')}`,
    );
    report('summary (write gap / leaderless total / longest leaderless period, ms):');
    for (const [phase, f] of phases) {
      report(`  ${phase}. ${f.name.padEnd(26)} ${f.writeGapMs.toFixed(0).padStart(6)} ${f.leaderless.totalMs.toFixed(0).padStart(6)} ${f.leaderless.longestMs.toFixed(0).padStart(6)}`);
    }
    assert.equal(result.verify.lostCount, 0, `lost writes:\n${result.verify.lost.join('\n')}`);
    assert.deepEqual(result.agreement, [], 'the live members do not agree on the configuration');
    assert.ok(result.acked > 500, `too little load: ${result.acked} writes acknowledged`);
    failed = false;
  } finally {
    if (failed) {
      const file = scenario.cluster.writeLogNextToRoot();
      console.log(`membership test failed: the whole log (every node's output, harness events) is in ${file}\n${scenario.cluster.describeOutput(15)}`);
    }
    await scenario.stop();
  }
});
