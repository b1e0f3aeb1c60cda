import type { InjectedBug } from '../../core/bugs.js';
import type { DriverBug } from '../../driver/ready-driver.js';
import { isViolation, LivenessViolation, World, type NodeFinal, type WorldRecorder, type WorldShape } from './world.js';
import { SafetyViolation } from './invariants.js';

export interface ExploreOptions {
  readonly nodeCounts?: readonly number[];
  /** Simulated seconds of load and faults per seed (default 20). */
  readonly faultSeconds?: number;
  /** Simulated seconds allowed for recovery after the faults heal (default 15). */
  readonly healSeconds?: number;
  readonly bugs?: ReadonlySet<InjectedBug>;
  readonly driverBugs?: ReadonlySet<DriverBug>;
  /** Trace lines kept for a failure report (default 300; 0 keeps none, which is faster). */
  readonly traceLines?: number;
  /**
   * Whether a membership change accepted while another is under way fails the run at its end
   * ('one change at a time'; default true). Off, only the safety checks can notice what it broke.
   */
  readonly changeRefusals?: boolean;
  /** Sees the run as it happens (src/sim/replay/record-explore.ts); it does not change the run. */
  readonly recorder?: WorldRecorder;
}

/** How many trailing entries' terms `ExploreResult.finalNodes` carries (the replay page's TAIL_ENTRIES). */
export const FINAL_TAIL_ENTRIES = 16;

export interface ExploreResult {
  readonly seed: number;
  readonly shape: WorldShape;
  /** The broken property's name ('liveness' for a cluster that did not recover), or undefined. */
  readonly invariant: string | undefined;
  readonly message: string | undefined;
  readonly trace: string[];
  /** A digest of the run's full event trace: two runs of one seed must agree. */
  readonly digest: number;
  readonly virtualMs: number;
  readonly recoveryMs: number;
  readonly stats: World['stats'];
  /** Every node's state at the end (see `finalStateLine` in src/sim/replay/recording.ts). */
  readonly finalNodes: readonly NodeFinal[];
}

/** Runs one seed's world to the end and reports the first violation, if any. Never throws for one. */
export async function exploreSeed(seed: number, options: ExploreOptions = {}): Promise<ExploreResult> {
  const world = new World({
    seed,
    nodeCounts: options.nodeCounts ?? [3, 5, 7],
    faultSeconds: options.faultSeconds ?? 20,
    healSeconds: options.healSeconds ?? 15,
    bugs: options.bugs ?? new Set(),
    driverBugs: options.driverBugs ?? new Set(),
    traceLines: options.traceLines ?? 300,
    changeRefusals: options.changeRefusals ?? true,
    recorder: options.recorder,
  });
  let invariant: string | undefined;
  let message: string | undefined;
  try {
    await world.run();
  } catch (error) {
    if (!isViolation(error)) throw error;
    if (error instanceof SafetyViolation) invariant = error.invariant;
    else if (error instanceof LivenessViolation) invariant = 'liveness';
    else invariant = 'assertion';
    message = error.message;
    world.trace(`VIOLATION ${message}`);
  }
  return {
    seed,
    shape: world.shape,
    invariant,
    message,
    trace: invariant === undefined ? [] : world.recentTrace(),
    digest: world.runDigest,
    virtualMs: world.now,
    recoveryMs: invariant === undefined ? world.recoveryMs : -1,
    stats: world.stats,
    finalNodes: world.finalNodes(FINAL_TAIL_ENTRIES),
  };
}

/** The command that replays one seed exactly. */
export function exploreReplayCommand(seed: number, options: ExploreOptions): string {
  const parts = [`npm run explore -- --seed ${seed}`];
  if (options.nodeCounts !== undefined) parts.push(`--nodes ${options.nodeCounts.join(',')}`);
  if (options.faultSeconds !== undefined) parts.push(`--seconds ${options.faultSeconds}`);
  const bugs = [...(options.bugs ?? []), ...(options.driverBugs ?? [])];
  if (bugs.length > 0) parts.push(`--bug ${bugs.join(',')}`);
  if (options.changeRefusals === false) parts.push('--no-refusal-check');
  return parts.join(' ');
}
