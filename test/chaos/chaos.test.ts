/**
 * A short chaos run (about 15 s of faults under 6 clients) against real `tsraft node` processes:
 * no acknowledged write may be lost and the history must be linearizable. `npm run chaos` runs
 * the same code for longer.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { formatChaosReport, runChaos } from './chaos-run.js';

it('chaos: kill -9, restarts and SIGSTOP pauses lose no acknowledged write; the history is linearizable', { timeout: 180_000 }, async () => {
  const report = await runChaos({ seconds: 15, clients: 6, checkBudgetMs: 60_000 });
  console.log(formatChaosReport(report));
  assert.deepEqual(report.problems, [], formatChaosReport(report));
  assert.ok(report.okOps > 100, `too few operations completed: ${report.okOps}`);
  assert.ok(report.kills + report.pauses >= 2, 'the fault loop did not run');
  assert.notEqual(report.check.result, 'illegal');
});
