/**
 * npm run bench:membership — the write gap and the time without a leader during membership changes.
 *
 * `tsraft node` processes (fsync on, default timing: heartbeats every 100 ms, elections after 1–2 s
 * of silence; --max-raft-state 256 KiB, so that a joining node catches up from a snapshot) take
 * writes from concurrent KvClient writers (unique keys, no pause). After 2 s of steady load (the
 * baseline) and, for comparison, a kill -9 of the leader without any membership change (the node
 * is restarted from its data afterwards), each round runs on the same cluster:
 *
 *   add learner + promote (3 -> 4 voters)    a `tsraft node --join` process joins as a learner and promotes itself
 *   remove leader (4 -> 3)                   DELETE /v1/members/{leader}; a new leader; the removed process stopped
 *   add learner + promote (3 -> 4)
 *   remove follower (4 -> 3)                 DELETE /v1/members/{follower}; its process stopped
 *   replace killed node (3 -> 2 -> 3)        SIGKILL a follower, remove it, a new node (new id) joins and becomes a voter
 *
 * Per operation: the write gap (the longest interval between two consecutive acknowledged writes
 * that overlaps the operation's window) and the leaderless time (every running node process polled
 * at GET /v1/status every 20 ms; the time from the first round in which no process reports itself
 * leader to the next round in which one does, summed over the window; the longest period too). The
 * window runs from the first action to 1 s after the cluster made progress again. Exact
 * definitions: src/testing/membership-cluster.ts. At the end every acknowledged write is read back
 * with a linearizable get (lost must be 0) and every member's view of the configuration compared.
 *
 *   npm run bench:membership [-- --rounds 3 --clients 8 --kill-rounds 1]
 */
import { parseArgs } from 'node:util';
import { formatOp, MembershipScenario, type OpFigures } from '../src/testing/membership-cluster.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    clients: { type: 'string', default: '8' },
    'kill-rounds': { type: 'string', default: '1' },
  },
});
const rounds = Number(values.rounds);
const clients = Number(values.clients);
const killRounds = Number(values['kill-rounds']);
if (![rounds, clients, killRounds].every(Number.isSafeInteger) || rounds < 1 || clients < 1 || killRounds < 0) {
  console.error('usage: npm run bench:membership -- [--rounds N (>= 1)] [--clients C (>= 1)] [--kill-rounds K (>= 0)]');
  process.exit(2);
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const began = performance.now();
const elapsed = (): string => `${((performance.now() - began) / 1000).toFixed(1).padStart(6)} s`;
const progress = (line: string): void => console.log(`[${elapsed()}] ${line}`);

progress(`starting 3 tsraft node processes (fsync on), ${clients} writers; ${rounds} round(s) of membership changes, ${killRounds} kill -9 round(s)`);
const scenario = await MembershipScenario.start({
  size: 3,
  fsync: true,
  writers: clients,
  nodeArgs: ['--max-raft-state', '262144'],
  tmpPrefix: 'tsraft-bench-membership-',
  onEvent: (line) => {
    // Per-operation figures are printed below; the other events show progress.
    if (!/; action \d+ ms, window/.test(line)) progress(`  ${line}`);
  },
});

const ops: OpFigures[] = [];
const record = (op: OpFigures): void => {
  ops.push(op);
  progress(formatOp(op));
};

let exitCode = 0;
try {
  record(await scenario.baseline(2_000));
  for (let k = 0; k < killRounds; k++) {
    progress(`kill -9 round ${k + 1}/${killRounds}`);
    record(await scenario.kill9Leader());
  }
  for (let round = 0; round < rounds; round++) {
    progress(`round ${round + 1}/${rounds}`);
    record(await scenario.add());
    record(await scenario.removeLeader());
    record(await scenario.add());
    record(await scenario.removeFollower());
    record(await scenario.replaceKilled());
  }
  progress('stopping the load; reading back every acknowledged write');
  const result = await scenario.finish();

  const kinds = ['baseline', 'add learner + promote', 'remove follower', 'remove leader', 'replace killed node', 'kill -9 leader (no change)'];
  const rows: string[][] = [['operation', 'n', 'write gap ms', 'leaderless ms', 'longest leaderless ms', 'action ms', 'write gaps (each)', 'leaderless (each)']];
  for (const kind of kinds) {
    const of = ops.filter((o) => o.name === kind);
    if (of.length === 0) continue;
    const each = (f: (o: OpFigures) => number): string => of.map((o) => f(o).toFixed(0)).join(', ');
    rows.push([
      kind,
      String(of.length),
      median(of.map((o) => o.writeGapMs)).toFixed(0),
      median(of.map((o) => o.leaderless.totalMs)).toFixed(0),
      median(of.map((o) => o.leaderless.longestMs)).toFixed(0),
      median(of.map((o) => o.actionMs)).toFixed(0),
      each((o) => o.writeGapMs),
      each((o) => o.leaderless.totalMs),
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  console.log('');
  console.log(`membership changes under load: medians (${clients} writers, fsync on, default timing, 3-4 voters; leaderless polled every 20 ms)`);
  for (const [i, row] of rows.entries()) {
    console.log(row.map((cell, c) => (c === 0 || c >= 6 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd());
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  console.log('');
  console.log(
    `${result.acked} writes acknowledged, ${result.verify.checked} read back, ${result.verify.lostCount} lost; ` +
      `${result.failures} client calls timed out (outcome unknown, not checked)`,
  );
  console.log(result.agreement.length === 0 ? `members agree: voters ${[...scenario.cluster.voters].sort((a, b) => a - b).join(', ')}, no learners, no joint configuration` : `members DISAGREE: ${result.agreement.join('; ')}`);
  if (result.verify.lostCount > 0) {
    console.log(`LOST WRITES:\n${result.verify.lost.join('\n')}`);
    exitCode = 1;
  }
  if (result.agreement.length > 0) exitCode = 1;
} catch (error) {
  progress(`FAILED: ${error instanceof Error ? error.message : String(error)}`);
  exitCode = 1;
} finally {
  if (exitCode !== 0) progress(`the whole log (every node's output, harness events) is in ${scenario.cluster.writeLogNextToRoot()}`);
  await scenario.stop();
}
process.exitCode = exitCode;
