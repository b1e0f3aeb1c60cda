/**
 * The random fault explorer: for each seed, a random world (cluster size, load, partitions,
 * crashes, loss, duplication, reordering, uneven clocks), with Raft's safety properties checked
 * after every event and liveness checked after the faults heal. A violation prints the seed, the
 * invariant, the last few hundred events and the one command that replays it, and the run exits 1.
 *
 *   npm run explore -- --seeds 10000 --seconds 30
 *   npm run explore -- --seed 4711 --nodes 5
 *   npm run explore -- --bug commit-old-term --seeds 200
 */
import { integerOption, isUsageError, median, seedList, UsageError } from './args.js';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { INJECTABLE_BUGS, type InjectedBug } from '../src/core/bugs.js';
import { DRIVER_BUGS, type DriverBug } from '../src/driver/ready-driver.js';
import { exploreReplayCommand, exploreSeed, type ExploreOptions, type ExploreResult } from '../src/sim/explorer/explorer.js';
import { exploreOutcome, exploreSourceFor } from '../src/sim/replay/record-explore.js';
import { finalStateLine, replayFragment } from '../src/sim/replay/recording.js';

/** The replay page (built to dist/ui/replay/index.html; this script runs as dist/scripts/explore.js). */
const REPLAY_PAGE = new URL('../ui/replay/index.html', import.meta.url).href;

function replayLink(seed: number, options: ExploreOptions): string {
  return `${REPLAY_PAGE}${replayFragment(exploreSourceFor(seed, options))}`;
}

const USAGE = `usage: npm run explore -- [--seeds N | --seed S] [--first-seed S] [--seconds S] [--nodes 3,5,7]
                           [--bug NAME[,NAME]] [--jobs J] [--check-determinism] [--keep-going]
                           [--no-refusal-check]

  --seeds        how many seeds (default 100), from --first-seed (default 1)
  --seed         one seed only, with its full failure trace
  --seconds      simulated seconds of load and faults per seed (default 20); recovery gets 15 more
  --nodes        cluster sizes to draw from (default 3,5,7)
  --bug          inject known bugs: ${[...INJECTABLE_BUGS, ...DRIVER_BUGS].join(', ')}
  --jobs         worker threads (default: number of CPUs, at most 8)
  --check-determinism  run each seed twice and fail if the two event traces differ
  --keep-going   do not stop at the first violation
  --no-refusal-check  a membership change accepted while another is under way does not fail the run
                 by itself (see two-changes-in-flight): only the safety checks can notice it`;

interface Plan {
  seeds: number[];
  options: ExploreOptions;
  jobs: number;
  checkDeterminism: boolean;
  keepGoing: boolean;
}


function parsePlan(argv: string[]): Plan {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      seeds: { type: 'string' },
      seed: { type: 'string' },
      'first-seed': { type: 'string' },
      seconds: { type: 'string' },
      nodes: { type: 'string' },
      bug: { type: 'string' },
      jobs: { type: 'string' },
      'check-determinism': { type: 'boolean', default: false },
      'keep-going': { type: 'boolean', default: false },
      'no-refusal-check': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const integer = integerOption;
  const seeds = seedList(values, 100);
  const nodeCounts = values.nodes?.split(',').map((n) => integer('nodes', n.trim(), 1));
  const bugs = new Set<InjectedBug>();
  const driverBugs = new Set<DriverBug>();
  for (const name of values.bug?.split(',').map((b) => b.trim()) ?? []) {
    if ((INJECTABLE_BUGS as readonly string[]).includes(name)) bugs.add(name as InjectedBug);
    else if ((DRIVER_BUGS as readonly string[]).includes(name)) driverBugs.add(name as DriverBug);
    else throw new UsageError(`unknown bug "${name}"; known: ${[...INJECTABLE_BUGS, ...DRIVER_BUGS].join(', ')}`);
  }
  const jobs = values.jobs === undefined ? Math.min(8, availableParallelism()) : integer('jobs', values.jobs, 1);
  return {
    seeds,
    options: {
      ...(nodeCounts === undefined ? {} : { nodeCounts }),
      ...(values.seconds === undefined ? {} : { faultSeconds: integer('seconds', values.seconds, 1) }),
      bugs,
      driverBugs,
      ...(values['no-refusal-check'] ? { changeRefusals: false } : {}),
    },
    jobs: Math.min(jobs, seeds.length),
    checkDeterminism: values['check-determinism'],
    keepGoing: values['keep-going'],
  };
}

/** Runs one seed (twice with --check-determinism) and returns what the parent needs to know. */
async function runOne(seed: number, plan: Pick<Plan, 'options' | 'checkDeterminism'>): Promise<ExploreResult> {
  const result = await exploreSeed(seed, plan.options);
  if (plan.checkDeterminism) {
    const again = await exploreSeed(seed, plan.options);
    if (again.digest !== result.digest) {
      return { ...result, invariant: 'determinism', message: `two runs of seed ${seed} produced different event traces (${result.digest} vs ${again.digest})` };
    }
  }
  return result;
}

function report(result: ExploreResult, plan: Plan): void {
  console.log(`\nVIOLATION of ${result.invariant} with seed ${result.seed}`);
  console.log(`  ${result.message}`);
  console.log(`  world: ${JSON.stringify(result.shape)}`);
  console.log(`  last ${result.trace.length} events:`);
  for (const line of result.trace) console.log(`    ${line}`);
  console.log(`  replay: ${exploreReplayCommand(result.seed, plan.options)}`);
  console.log(`  replay in a browser: ${replayLink(result.seed, plan.options)}`);
  console.log('    (a running node serves the same page at /ui/replay/, followed by the same #fragment)');
}


async function main(): Promise<number> {
  let plan: Plan;
  try {
    plan = parsePlan(process.argv.slice(2));
  } catch (error) {
    if (isUsageError(error)) {
      console.error(`error: ${(error as Error).message}\n\n${USAGE}`);
      return 2;
    }
    throw error;
  }
  const bugNames = [...(plan.options.bugs ?? []), ...(plan.options.driverBugs ?? [])];
  console.log(
    `exploring ${plan.seeds.length} seed(s) from ${plan.seeds[0]}, ${plan.options.faultSeconds ?? 20} simulated s of faults each, ` +
      `${plan.jobs} worker(s)${bugNames.length > 0 ? `, injected bugs: ${bugNames.join(', ')}` : ''}`,
  );
  const started = performance.now();
  const violations: ExploreResult[] = [];
  const recoveries: number[] = [];
  let done = 0;
  let virtualMs = 0;
  let opsChecked = 0;
  let checksIncomplete = 0;
  let lastProgress = started;
  let stop = false;
  const onResult = (result: ExploreResult): void => {
    done++;
    virtualMs += result.virtualMs;
    opsChecked += result.stats.opsChecked;
    if (result.stats.checkVerdict === 'unknown') checksIncomplete++;
    if (plan.seeds.length === 1) {
      console.log(`  seed ${result.seed}: ${JSON.stringify(result.stats)}\n  world: ${JSON.stringify(result.shape)}`);
      console.log(`  final state: ${finalStateLine(exploreOutcome(result))}`);
    }
    if (result.invariant === undefined) recoveries.push(result.recoveryMs);
    else {
      violations.push(result);
      report(result, plan);
      if (!plan.keepGoing) stop = true;
    }
    if (performance.now() - lastProgress > 5000) {
      lastProgress = performance.now();
      const seconds = (lastProgress - started) / 1000;
      console.log(`  ${done}/${plan.seeds.length} seeds, ${violations.length} violations, ${(done / seconds).toFixed(1)} seeds/s`);
    }
  };
  if (plan.jobs <= 1) {
    for (const seed of plan.seeds) {
      if (stop) break;
      onResult(await runOne(seed, plan));
    }
  } else {
    await runInWorkers(plan, onResult, () => stop);
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `\n${done} seeds explored, ${violations.length} violations, ${seconds.toFixed(1)} s wall, ${(done / seconds).toFixed(1)} seeds/s, ` +
      `${(virtualMs / 1000 / 3600).toFixed(1)} simulated hours; median recovery after healing ${(median(recoveries) / 1000).toFixed(2)} s, ` +
      `max ${(Math.max(0, ...recoveries) / 1000).toFixed(2)} s`,
  );
  console.log(
    `${opsChecked} client operations checked for linearizability (${(opsChecked / Math.max(1, done)).toFixed(0)} per seed)` +
      (checksIncomplete > 0 ? `; ${checksIncomplete} seed(s) hit the checker's time budget (verdict unknown, not counted as passed or failed)` : ''),
  );
  if (violations.length > 0) {
    console.log(`first violating seed: ${violations[0]!.seed} (${violations[0]!.invariant})`);
    console.log(`replay: ${exploreReplayCommand(violations[0]!.seed, plan.options)}`);
    console.log(`replay in a browser: ${replayLink(violations[0]!.seed, plan.options)}`);
  }
  return violations.length === 0 ? 0 : 1;
}

async function runInWorkers(plan: Plan, onResult: (r: ExploreResult) => void, shouldStop: () => boolean): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: plan.jobs }, () => new Worker(new URL(import.meta.url), {
    workerData: {
      options: { ...plan.options, bugs: [...(plan.options.bugs ?? [])], driverBugs: [...(plan.options.driverBugs ?? [])] },
      checkDeterminism: plan.checkDeterminism,
    },
  }));
  await Promise.all(
    workers.map(
      (worker) =>
        new Promise<void>((resolve, reject) => {
          const feed = (): void => {
            if (shouldStop() || next >= plan.seeds.length) {
              void worker.terminate().then(() => resolve());
              return;
            }
            worker.postMessage(plan.seeds[next++]);
          };
          worker.on('message', (result: ExploreResult) => {
            onResult(result);
            feed();
          });
          worker.on('error', reject);
          feed();
        }),
    ),
  );
}

if (isMainThread) {
  process.exitCode = await main();
} else {
  const data = workerData as { options: ExploreOptions & { bugs: InjectedBug[]; driverBugs: DriverBug[] }; checkDeterminism: boolean };
  const options: ExploreOptions = { ...data.options, bugs: new Set(data.options.bugs), driverBugs: new Set(data.options.driverBugs) };
  parentPort!.on('message', (seed: number) => {
    void runOne(seed, { options, checkDeterminism: data.checkDeterminism }).then((result) => parentPort!.postMessage(result));
  });
}
