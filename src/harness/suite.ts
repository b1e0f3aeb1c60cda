import { RealScheduler, VirtualScheduler, type Scheduler } from '../sim/scheduler.js';
import type { SimTiming } from '../sim/sim-node.js';
import { Cluster, type ClusterRecorder, type TestFigures } from './cluster.js';

export type Clock = 'virtual' | 'real';

/**
 * Every byte figure (the Passed lines' and the table's bytes, LogSize, SnapshotSize) is the size
 * of this project's encoding of the message or state (the tsraft codec, src/codec), not of Go's
 * gob, and the byte bounds the ported tests check (RPCBytes, MAXLOGSIZE, 8 × maxraftstate, the
 * 500-byte snapshot) are Go's numbers applied to those sizes. Said under the suite table and in
 * the failure messages of those bounds.
 */
export const BYTES_NOTE = "bytes measured in this project's encoding, the tsraft codec, not Go's gob";

/** Everything a suite test needs: a way to make its cluster, which the runner then cleans up. */
export interface SuiteContext {
  /** A cluster of n servers; `snapshot` selects the 2D snapshot applier. */
  makeCluster(n: number, unreliable: boolean, snapshot?: boolean): Cluster;
}

/** One test of the 6.824 suite, written once for both clocks. */
export interface SuiteTest {
  /** The lab part, e.g. "2A". */
  readonly part: string;
  /** The Go test's name without the part suffix, e.g. "InitialElection". */
  readonly name: string;
  run(context: SuiteContext): Promise<void>;
}

export interface RunOptions {
  readonly seed: number;
  readonly clock: Clock;
  /** Which driver runs the servers; real time defaults to the runtime's RaftNode. */
  readonly driver?: 'sim' | 'runtime';
  readonly timing?: SimTiming;
  /** Output lines (begin/end, warnings); silent when omitted. */
  readonly log?: (line: string) => void;
  /** A line per message and per state change of every node (very verbose; for replaying one seed). */
  readonly trace?: (line: string) => void;
  /** Sees every cluster's run (src/sim/replay/record-suite.ts); it does not change the run. */
  readonly recorder?: ClusterRecorder;
}

export interface RunResult {
  readonly test: SuiteTest;
  readonly seed: number;
  readonly figures: TestFigures[];
  /** Simulated (or, in real time, elapsed) milliseconds the test took. */
  readonly clockMs: number;
  readonly wallMs: number;
  readonly cpuMs: number;
  /** The failure, if the test failed. */
  readonly error: Error | undefined;
}

/** Runs one suite test on one seed and reports its figures or its failure; never throws. */
export async function runSuiteTest(test: SuiteTest, options: RunOptions): Promise<RunResult> {
  // A virtual run that takes more than two minutes of wall time is livelocked, not slow.
  const scheduler: Scheduler =
    options.clock === 'virtual' ? new VirtualScheduler({ wallBudgetMs: 120_000 }) : new RealScheduler();
  const figures: TestFigures[] = [];
  const clusters: Cluster[] = [];
  const log = options.log ?? (() => undefined);
  const context: SuiteContext = {
    makeCluster(n, unreliable, snapshot = false) {
      const cluster = new Cluster({
        n,
        unreliable,
        snapshot,
        scheduler,
        driver: options.driver ?? (options.clock === 'real' ? 'runtime' : 'sim'),
        seed: options.seed,
        log,
        onFigures: (f) => figures.push(f),
        trace: options.trace,
        recorder: options.recorder,
        ...(options.timing === undefined ? {} : { timing: options.timing }),
      });
      clusters.push(cluster);
      return cluster;
    },
  };
  const wallStart = performance.now();
  const cpuStart = cpuUsage();
  let error: Error | undefined;
  try {
    await scheduler.run(async () => {
      try {
        await test.run(context);
      } finally {
        for (const cluster of clusters) cluster.cleanup();
      }
    });
  } catch (caught) {
    error = caught instanceof Error ? caught : new Error(String(caught));
  } finally {
    scheduler.dispose();
  }
  const cpu = cpuUsage(cpuStart);
  return {
    test,
    seed: options.seed,
    figures,
    clockMs: scheduler.now(),
    wallMs: performance.now() - wallStart,
    cpuMs: (cpu.user + cpu.system) / 1000,
    error,
  };
}

/** The command that replays one failing run exactly. */
export function replayCommand(result: Pick<RunResult, 'test' | 'seed'>, clock: Clock): string {
  const realtime = clock === 'real' ? ' --realtime' : '';
  return `npm run suite -- --part ${result.test.part} --run ${result.test.name} --seed ${result.seed}${realtime}`;
}

/** process.cpuUsage where there is one; zeros in a browser (the replay page runs suite tests there). */
function cpuUsage(since?: { user: number; system: number }): { user: number; system: number } {
  const proc = (globalThis as { process?: { cpuUsage?(since?: { user: number; system: number }): { user: number; system: number } } }).process;
  return proc?.cpuUsage?.(since) ?? { user: 0, system: 0 };
}
