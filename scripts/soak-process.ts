/**
 * A longer run of the process test: three node processes, continuous proposals, kill -9 of a node
 * (the leader every other time) at a fixed pace, then the check that every acknowledged entry is
 * on every node in the same order.   npm run soak:process -- --seconds 60 [--concurrency 32]
 */
import { parseArgs } from 'node:util';
import { RaftProcessCluster } from '../src/testing/process-cluster.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '60' }, concurrency: { type: 'string', default: '32' }, 'kill-every-ms': { type: 'string', default: '3000' } },
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const killEveryMs = Number(values['kill-every-ms']);
for (const [name, value] of [['seconds', seconds], ['concurrency', concurrency], ['kill-every-ms', killEveryMs]] as const) {
  if (!Number.isSafeInteger(value) || value < 1) {
    console.error(`--${name} must be a positive integer`);
    process.exit(2);
  }
}
console.log(`soak: 3 node processes, ${concurrency} clients, ${seconds} s, kill -9 every ${killEveryMs} ms`);
const cluster = await RaftProcessCluster.start(3);
try {
  const report = await cluster.runLoad({ seconds, concurrency, killEveryMs, downMs: 500 });
  console.log(`acknowledged ${report.acknowledged} entries (max index ${report.maxIndex}), ${report.kills} kills`);
  if (report.problems.length > 0) {
    console.log('PROBLEMS:');
    for (const problem of report.problems) console.log(`  ${problem}`);
    process.exitCode = 1;
  } else {
    console.log('every acknowledged entry is on every node, in the same order');
  }
} finally {
  await cluster.stop();
}
