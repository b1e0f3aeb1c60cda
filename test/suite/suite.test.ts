/**
 * The ported 6.824 suite inside `npm test`: every 2A and 2B test on a fixed list of seeds, in
 * virtual time. A failure names its seed and the command that replays it; `npm run suite` runs
 * the same tests over as many seeds as you like.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { replayCommand, runSuiteTest } from '../../src/harness/suite.js';
import { SUITE } from './index.js';

/** Fixed so that `npm test` is reproducible; widen with `npm run suite -- --seeds N`. */
const SEEDS = Array.from({ length: 32 }, (_, i) => 1000 + i);
/**
 * The kvraft parts cost about ten times the Raft parts per seed (three minutes of `npm test` at 32
 * seeds); `npm test` runs them on fewer seeds to stay well inside its time limit, and
 * `npm run suite -- --part 3A,3B --seeds 500` is the deep run.
 */
const KV_SEEDS = SEEDS.slice(0, 12);

for (const [part, tests] of Object.entries(SUITE)) {
  const seeds = part.startsWith('3') ? KV_SEEDS : SEEDS;
  describe(`6.824 part ${part} (virtual time, seeds ${seeds[0]}..${seeds[seeds.length - 1]})`, () => {
    for (const suiteTest of tests) {
      test(`${suiteTest.name}${part}`, async () => {
        const failures: string[] = [];
        for (const seed of seeds) {
          const result = await runSuiteTest(suiteTest, { seed, clock: 'virtual' });
          if (result.error !== undefined) {
            failures.push(`seed ${seed}: ${result.error.message}\n  replay: ${replayCommand(result, 'virtual')}`);
          } else {
            assert.ok(result.figures.length > 0, `seed ${seed}: the test never reached end()`);
          }
        }
        assert.deepEqual(failures, []);
      });
    }
  });
}

describe('kvraft service', () => {
  test('servers serve clerks in parallel: 5 clients make several times the operations of one', async () => {
    const ops = async (name: string): Promise<number> => {
      const result = await runSuiteTest(SUITE['3A']!.find((t) => t.name === name)!, { seed: 5, clock: 'virtual' });
      assert.equal(result.error, undefined);
      return result.figures[0]!.commands;
    };
    const one = await ops('Basic'); // "one client": ~880 operations in 3 × 5 s
    const many = await ops('Concurrent'); // "many clients": 5 clients
    assert.ok(one > 600, `one client made only ${one} operations`);
    assert.ok(many > 4 * one, `5 clients made ${many} operations, one client ${one}: requests queue behind each other`);
  });
});

describe('replay', () => {
  for (const [part, name] of [['2B', 'Backup'], ['2C', 'Figure8Unreliable'], ['2D', 'SnapshotInstallUnCrash']] as const) {
    test(`${name}${part}: one seed gives a byte-identical run`, async () => {
      const suiteTest = SUITE[part]!.find((t) => t.name === name)!;
      const runOnce = async (): Promise<{ figures: unknown; trace: string[] }> => {
        const trace: string[] = [];
        const result = await runSuiteTest(suiteTest, { seed: 77, clock: 'virtual', trace: (line) => trace.push(line) });
        assert.equal(result.error, undefined);
        return { figures: result.figures, trace };
      };
      const first = await runOnce();
      const second = await runOnce();
      assert.ok(first.trace.length > 1000, 'the trace should record every message');
      assert.deepEqual(second.figures, first.figures);
      assert.deepEqual(second.trace, first.trace);
    });
  }
});
