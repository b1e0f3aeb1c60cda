/**
 * Chaos run against real `tsraft node` processes: kill -9 / restart and SIGSTOP / SIGCONT faults
 * under concurrent clients, then the checks that every acknowledged write survived and that the
 * history is linearizable (see test/chaos/chaos-run.ts).
 *
 *   npm run chaos -- --seconds 60 [--clients 8] [--seed N] [--check-budget 120] [--verbose]
 *
 * --stale-reads is a negative control: clients read from any node without confirmation, which is
 * not linearizable, so that run is expected to FAIL (it shows the checks can catch a violation).
 *
 * Exits 1 on any violation, 2 on bad arguments.
 */
import { parseArgs } from 'node:util';
import { abortAllClusters } from '../src/testing/process-cluster.js';
import { formatChaosReport, runChaos } from '../test/chaos/chaos-run.js';

function usage(message: string): never {
  console.error(`chaos: ${message}\nusage: npm run chaos -- [--seconds 60] [--clients 8] [--seed N] [--check-budget SECONDS] [--verbose] [--stale-reads]`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '60' },
      clients: { type: 'string', default: '8' },
      seed: { type: 'string' },
      'check-budget': { type: 'string', default: '120' },
      verbose: { type: 'boolean', default: false },
      'stale-reads': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (error) {
  usage((error as Error).message);
}
if (values.help) usage('help');
const int = (name: string, text: string | undefined, min: number, max: number): number => {
  const n = Number(text);
  if (text === undefined || !/^\d+$/.test(text) || n < min || n > max) usage(`--${name} must be an integer in ${min}..${max}, got ${String(text)}`);
  return n;
};
const seconds = int('seconds', values.seconds, 1, 3600);
const clients = int('clients', values.clients, 1, 256);
const checkBudget = int('check-budget', values['check-budget'], 1, 3600);
const seed = values.seed === undefined ? undefined : int('seed', values.seed, 0, 2 ** 31 - 1);

// Ctrl-C: no node may be left behind, paused ones included.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`chaos: ${signal}: killing the nodes`);
    abortAllClusters();
    process.exit(130);
  });
}

const t0 = Date.now();
const report = await runChaos({
  seconds,
  clients,
  checkBudgetMs: checkBudget * 1000,
  staleReads: values['stale-reads'],
  ...(seed === undefined ? {} : { seed }),
  log: (line) => console.log(`[chaos ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}`),
  ...(values.verbose ? { nodeOutput: (id: number, line: string) => console.log(`[node ${id}] ${line}`) } : {}),
});
console.log(formatChaosReport(report));
process.exitCode = report.problems.length === 0 ? 0 : 1;
