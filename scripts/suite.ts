/**
 * The suite runner: runs the ported 6.824 tests over many seeds, in virtual time (default) or
 * real time, prints the Go-style lines and a table of medians and maxima with the staff figures
 * beside them, and for every failure the seed and the one command that replays it.
 *
 *   npm run suite -- --part 2A,2B --seeds 500
 *   npm run suite -- --part 2B --run Backup --seed 17
 *   npm run suite:realtime -- --part 2A,2B
 */
import { isUsageError, median, seedList, UsageError } from './args.js';
import { parseArgs } from 'node:util';
import type { TestFigures } from '../src/harness/cluster.js';
import { staffFigures } from '../src/harness/reference.js';
import { replayCommand, runSuiteTest, type Clock, type RunResult } from '../src/harness/suite.js';
import { PARTS, SUITE } from '../test/suite/index.js';
import { replayFragment } from '../src/sim/replay/recording.js';

/** The replay page (built to dist/ui/replay/index.html; this script runs as dist/scripts/suite.js). */
const REPLAY_PAGE = new URL('../ui/replay/index.html', import.meta.url).href;

/** The link that replays a failing virtual-time run in a browser. */
function replayLink(result: Pick<RunResult, 'test' | 'seed'>): string {
  return `${REPLAY_PAGE}${replayFragment({ kind: 'suite', part: result.test.part, name: result.test.name, seed: result.seed })}`;
}

const USAGE = `usage: npm run suite -- [--part 2A,2B] [--seeds N | --seed S] [--first-seed S] [--run Name,...] [--realtime [--driver sim|runtime]] [--verbose]

  --part       parts to run, comma-separated (default: all of ${PARTS.join(',')})
  --seeds      how many seeds to run, starting at --first-seed (default 1)
  --seed       run exactly this one seed (prints every Go-style line)
  --first-seed the first seed of a --seeds range (default 1)
  --run        only these tests, by Go name without the part suffix (e.g. Backup,Count)
  --realtime   real timers instead of virtual time (as slow as the Go tester); servers run on the
               runtime's RaftNode unless --driver sim
  --driver     sim (SimNode) or runtime (RaftNode, real time only)
  --verbose    print every Go-style line even with many seeds
  --trace      print every message and every change of role, term or commit (use with --seed)`;

interface Options {
  parts: string[];
  seeds: number[];
  names: string[] | undefined;
  clock: Clock;
  driver: 'sim' | 'runtime' | undefined;
  verbose: boolean;
  trace: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      part: { type: 'string' },
      seeds: { type: 'string' },
      seed: { type: 'string' },
      'first-seed': { type: 'string' },
      run: { type: 'string' },
      realtime: { type: 'boolean', default: false },
      driver: { type: 'string' },
      verbose: { type: 'boolean', default: false },
      trace: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const parts = (values.part ?? PARTS.join(',')).split(',').map((p) => p.trim().toUpperCase());
  for (const part of parts) {
    if (!(part in SUITE)) throw new UsageError(`unknown part "${part}"; known parts: ${PARTS.join(', ')}`);
  }
  const seeds = seedList(values, 1);
  const names = values.run?.split(',').map((n) => n.trim());
  if (names !== undefined) {
    const known = parts.flatMap((part) => SUITE[part]!.map((t) => t.name));
    for (const name of names) {
      if (!known.includes(name)) throw new UsageError(`unknown test "${name}" in parts ${parts.join(',')}; known: ${known.join(', ')}`);
    }
  }
  const driver = values.driver;
  if (driver !== undefined && driver !== 'sim' && driver !== 'runtime') throw new UsageError(`--driver must be sim or runtime, got "${driver}"`);
  if (driver === 'runtime' && !values.realtime) throw new UsageError('--driver runtime needs --realtime (RaftNode runs on real timers)');
  return { parts, seeds, names, clock: values.realtime ? 'real' : 'virtual', driver, verbose: values.verbose || seeds.length === 1, trace: values.trace };
}



function printTable(figuresByTitle: Map<string, TestFigures[]>, clock: Clock): void {
  const unit = clock === 'virtual' ? 'virtual s' : 's';
  const header =
    `${'test'.padEnd(62)} ${'runs'.padStart(5)} ${`${unit} med/max`.padStart(17)} ${'peers'.padStart(5)} ` +
    `${'RPCs med/max'.padStart(13)} ${'staff'.padStart(5)} ${'bytes med/max'.padStart(19)} ${'staff'.padStart(8)} ${'cmds med/max'.padStart(12)}`;
  console.log(`\n${header}`);
  console.log('-'.repeat(header.length));
  for (const [title, list] of figuresByTitle) {
    const column = (pick: (f: TestFigures) => number, digits = 0): string => {
      const values = list.map(pick);
      return `${median(values).toFixed(digits)}/${Math.max(...values).toFixed(digits)}`;
    };
    const staff = staffFigures(title);
    console.log(
      `${title.padEnd(62)} ${String(list.length).padStart(5)} ${column((f) => f.seconds, 1).padStart(17)} ${String(list[0]!.peers).padStart(5)} ` +
        `${column((f) => f.rpcs).padStart(13)} ${String(staff?.rpcs ?? '-').padStart(5)} ${column((f) => f.bytes).padStart(19)} ` +
        `${String(staff?.bytes ?? '-').padStart(8)} ${column((f) => f.commands).padStart(12)}`,
    );
  }
  console.log(
    "\nbytes, and the byte bounds the tests check (RPC byte count, MAXLOGSIZE, 8 × maxraftstate, the 500-byte snapshot),\n" +
      "are measured in this project's encoding (the tsraft codec), not Go's gob. The bounds are Go's numbers and the\n" +
      'staff bytes are gob bytes: compare magnitudes, not exact values.\n' +
      "cmds: committed entries (Raft tests); clerk operations (kvraft tests, Go's ops).",
  );
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    if (isUsageError(error)) {
      console.error(`error: ${(error as Error).message}\n\n${USAGE}`);
      return 2;
    }
    throw error;
  }
  const tests = options.parts.flatMap((part) => SUITE[part]!).filter((t) => options.names?.includes(t.name) ?? true);
  console.log(
    `running ${tests.length} tests of part ${options.parts.join(',')} on ${options.seeds.length} seed(s) ` +
      `(${options.seeds[0]}..${options.seeds[options.seeds.length - 1]}) in ${options.clock} time`,
  );
  const figuresByTitle = new Map<string, TestFigures[]>();
  const failures: RunResult[] = [];
  const wallStart = performance.now();
  const cpuStart = process.cpuUsage();
  let clockMs = 0;
  let lastProgress = performance.now();
  for (const [seedNumber, seed] of options.seeds.entries()) {
    for (const test of tests) {
      const result = await runSuiteTest(test, {
        seed,
        clock: options.clock,
        ...(options.driver === undefined ? {} : { driver: options.driver }),
        ...(options.verbose ? { log: (line: string) => console.log(line) } : {}),
        ...(options.trace ? { trace: (line: string) => console.log(line) } : {}),
      });
      clockMs += result.clockMs;
      for (const f of result.figures) figuresByTitle.set(f.title, [...(figuresByTitle.get(f.title) ?? []), f]);
      if (result.error !== undefined) {
        failures.push(result);
        console.log(`--- FAIL: ${test.name}${test.part} seed ${seed}: ${result.error.message}`);
        console.log(`    replay: ${replayCommand(result, options.clock)}`);
        if (options.clock === 'virtual') {
          console.log(`    replay in a browser: ${replayLink(result)}`);
          console.log('      (a running node serves the same page at /ui/replay/, followed by the same #fragment)');
        }
        if (options.verbose && !(result.error.name === 'TestFailure')) console.log(result.error.stack);
      }
    }
    if (!options.verbose && (performance.now() - lastProgress > 2000 || seedNumber === options.seeds.length - 1)) {
      lastProgress = performance.now();
      const wall = (performance.now() - wallStart) / 1000;
      console.log(`  ${seedNumber + 1}/${options.seeds.length} seeds, ${failures.length} failures, ${wall.toFixed(1)} s wall`);
    }
  }
  const cpu = process.cpuUsage(cpuStart);
  printTable(figuresByTitle, options.clock);
  const runs = tests.length * options.seeds.length;
  console.log(
    `\n${runs - failures.length} passed, ${failures.length} failed` +
      ` -- wall ${((performance.now() - wallStart) / 1000).toFixed(2)} s, cpu ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s` +
      (options.clock === 'virtual' ? `, virtual ${(clockMs / 1000).toFixed(1)} s` : ''),
  );
  if (failures.length > 0) {
    console.log('\nfailures:');
    for (const failure of failures) {
      console.log(`  ${failure.test.name}${failure.test.part} seed ${failure.seed}: ${failure.error!.message}`);
      console.log(`    ${replayCommand(failure, options.clock)}`);
      if (options.clock === 'virtual') console.log(`    ${replayLink(failure)}`);
    }
  }
  return failures.length === 0 ? 0 : 1;
}

process.exitCode = await main();
