import type { MemberAddress } from './membership.js';
import type { NodeId, Snapshot } from './messages.js';
import type { RandomSource } from './rng.js';
import type { SnapshotAssemblyFactory } from './snapshot-body.js';
import { INJECTED_BUGS, type InjectedBug } from './bugs.js';

/**
 * How a core instance behaves. Times are in ticks: the driver decides how long a tick is (the
 * simulator and the runtime both use 10 ms by default), so the core never sees a clock.
 */
export interface RaftConfig {
  /** This node's id; must appear in `peers`. */
  readonly id: NodeId;
  /**
   * The voters of the configuration the node starts with, when its log and snapshot hold none: the
   * cluster's initial members on a new cluster, or the configuration a joining node was given.
   * After that the configuration comes only from the log (see membership.ts).
   */
  readonly peers: readonly NodeId[];
  /** The learners of that starting configuration (default none); a joining node is one of them. */
  readonly learners?: readonly NodeId[];
  /** Addresses of the starting configuration's members, carried for the application (default none). */
  readonly addresses?: readonly MemberAddress[];
  /** Election timeouts are drawn uniformly from [min, max) ticks, afresh for every wait. */
  readonly electionTimeoutTicksMin: number;
  readonly electionTimeoutTicksMax: number;
  /** A leader contacts every follower at least this often (and not much more often when idle). */
  readonly heartbeatIntervalTicks: number;
  /**
   * Upper bound on the command bytes carried by one AppendEntries. One entry is always sent even if
   * it alone is larger, so a big command cannot stall replication.
   */
  readonly appendBytesMax: number;
  /** Size of one InstallSnapshot chunk in bytes (default 64 KiB). */
  readonly snapshotChunkBytes?: number;
  /**
   * The largest snapshot a follower accepts from a leader (default 64 GiB): a transfer announcing
   * more is refused before any of it is kept. Set it alike on every node, above the largest state
   * the application will hold, or a follower that needs a snapshot can never catch up.
   */
  readonly snapshotBytesMax?: number;
  /**
   * Where a follower keeps an incoming snapshot transfer as its chunks arrive (default: in memory).
   * A runtime writes them to a file, so receiving a large state costs no memory.
   */
  readonly snapshotAssembly?: SnapshotAssemblyFactory;
  /**
   * Checks a snapshot received from a leader before the follower persists it, e.g. by restoring it
   * into a scratch state machine; returns why it is unusable, or null. Must be pure and
   * deterministic. A rejected snapshot is dropped (and counted), never persisted, so one bad
   * transfer cannot leave a node that fails on every restart. Default: accept (the checksum still
   * guards against damage in transit and spliced transfers).
   */
  readonly validateSnapshot?: (snapshot: Snapshot) => string | null;
  /**
   * Run a pre-vote round before each election (thesis §9.6), so that a node which cannot win does
   * not raise terms and depose a working leader when it rejoins. On by default.
   */
  readonly preVote?: boolean;
  /**
   * Check-quorum: a leader that has not heard from a majority (itself included) within each
   * window of electionTimeoutTicksMin ticks steps down, so a leader cut off from its followers (or
   * one that can send but not receive) stops claiming to lead and stops holding reads, and the
   * others, no longer hearing it, can elect a leader. Off by default in the core; RaftNode turns
   * it on.
   */
  readonly checkQuorum?: boolean;
  /**
   * A new leader whose log holds entries it cannot yet call committed (earlier terms' entries above
   * its commit index) appends an empty entry of its own term at once, so that those entries commit
   * and apply everywhere without waiting for the next client write (a write acknowledged by the old
   * leader would otherwise stay unapplied on the followers of a quiet cluster). The application
   * must ignore entries with empty commands. Off by default in the core, where the 6.824 tests
   * count entries by index; RaftNode turns it on.
   */
  readonly commitOnElection?: boolean;
  /**
   * Known Raft bugs to switch on, for proving that the simulator's checkers catch them (see
   * bugs.ts). Keyed by a symbol that only `tsraft/testing` exports: every one of them loses data.
   */
  readonly [INJECTED_BUGS]?: ReadonlySet<InjectedBug>;
  /** Seeded randomness for election jitter. */
  readonly random: RandomSource;
}

export const DEFAULT_SNAPSHOT_CHUNK_BYTES = 64 * 1024;
export const DEFAULT_SNAPSHOT_BYTES_MAX = 64 * 1024 * 1024 * 1024;

/** Defaults for a 10 ms tick: heartbeats every 200 ms, elections after 800–1600 ms of silence. */
export const DEFAULT_TIMING = {
  electionTimeoutTicksMin: 80,
  electionTimeoutTicksMax: 160,
  heartbeatIntervalTicks: 20,
  appendBytesMax: 64 * 1024,
} as const;

/** Returns a list of everything wrong with `config`; empty when it is usable. */
export function validateConfig(config: RaftConfig): string[] {
  const problems: string[] = [];
  const isCount = (value: number): boolean => Number.isSafeInteger(value) && value > 0;
  if (!Number.isSafeInteger(config.id) || config.id < 0) {
    problems.push(`id must be a non-negative integer, got ${config.id}`);
  }
  if (config.peers.length === 0) problems.push('peers must not be empty');
  if (new Set(config.peers).size !== config.peers.length) {
    problems.push(`peers contains duplicates: [${config.peers.join(', ')}]`);
  }
  for (const peer of config.peers) {
    if (!Number.isSafeInteger(peer) || peer < 0) {
      problems.push(`peer ids must be non-negative integers, got ${peer}`);
    }
  }
  const learners = config.learners ?? [];
  for (const learner of learners) {
    if (!Number.isSafeInteger(learner) || learner < 0) problems.push(`learner ids must be non-negative integers, got ${learner}`);
    if (config.peers.includes(learner)) problems.push(`node ${learner} is both a peer (voter) and a learner`);
  }
  if (!config.peers.includes(config.id) && !learners.includes(config.id)) {
    problems.push(`id ${config.id} is not among peers [${config.peers.join(', ')}]${learners.length > 0 ? ` or learners [${learners.join(', ')}]` : ''}`);
  }
  if (!isCount(config.heartbeatIntervalTicks)) {
    problems.push(`heartbeatIntervalTicks must be a positive integer, got ${config.heartbeatIntervalTicks}`);
  }
  if (!isCount(config.electionTimeoutTicksMin)) {
    problems.push(`electionTimeoutTicksMin must be a positive integer, got ${config.electionTimeoutTicksMin}`);
  }
  if (!isCount(config.electionTimeoutTicksMax) || config.electionTimeoutTicksMax <= config.electionTimeoutTicksMin) {
    problems.push(
      `electionTimeoutTicksMax must be an integer above electionTimeoutTicksMin (${config.electionTimeoutTicksMin}), got ${config.electionTimeoutTicksMax}`,
    );
  }
  if (config.electionTimeoutTicksMin < 2 * config.heartbeatIntervalTicks) {
    problems.push(
      `electionTimeoutTicksMin (${config.electionTimeoutTicksMin}) must be at least twice heartbeatIntervalTicks (${config.heartbeatIntervalTicks}), or one lost heartbeat starts an election`,
    );
  }
  if (config.snapshotChunkBytes !== undefined && !isCount(config.snapshotChunkBytes)) {
    problems.push(`snapshotChunkBytes must be a positive integer, got ${config.snapshotChunkBytes}`);
  }
  if (config.snapshotBytesMax !== undefined && !isCount(config.snapshotBytesMax)) {
    problems.push(`snapshotBytesMax must be a positive integer, got ${config.snapshotBytesMax}`);
  }
  if (!isCount(config.appendBytesMax)) {
    problems.push(`appendBytesMax must be a positive integer, got ${config.appendBytesMax}`);
  }
  return problems;
}
