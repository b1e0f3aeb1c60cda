import { INJECTED_BUGS, type InjectedBug } from '../core/bugs.js';
import { validateConfig, type RaftConfig } from '../core/config.js';
import { ENTRY_ENVELOPE_BYTES } from '../core/log.js';
import type { MemberAddress, Membership } from '../core/membership.js';
import type { Entry, NodeId, Snapshot } from '../core/messages.js';
import type { RandomSource } from '../core/rng.js';
import type { DriverBug } from '../driver/ready-driver.js';
import type { Storage } from '../storage/storage.js';
import type { Transport } from '../transport/transport.js';
import type { Clock } from './clock.js';
import { ConfigError } from './errors.js';
import type { Logger } from './logger.js';

/** RaftNodeOptions.snapshotChunkBytes's default. */
export const RUNTIME_SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

// What a RaftNode is configured with, and how its options become the core's RaftConfig, validated
// up front (ConfigError lists every problem). runtime/node.ts re-exports the public names.

/** The RaftNodeOptions key under which driver bugs are switched on (exported by tsraft/testing). */
export const INJECTED_DRIVER_BUGS: unique symbol = Symbol('tsraft.injectedDriverBugs');

/**
 * What an AppendEntries adds around its entries (type, ids, term, indices, commit, read round), at
 * most; each entry adds ENTRY_ENVELOPE_BYTES more. A snapshot chunk's envelope is smaller.
 */
export const MESSAGE_ENVELOPE_BYTES = 128;

/**
 * The application's state machine, called synchronously in log order. `apply` returns the
 * command's result, which `propose()` resolves with on the node that proposed it (the leader).
 * Entries with an empty command are the leader's no-ops; apply them like any other.
 */
export interface StateMachine<Result = unknown> {
  apply(entry: Entry): Result;
  /** Replace the whole state with a snapshot received from the leader. */
  restore(snapshot: Snapshot): void;
  /**
   * Says why a snapshot received from a leader could not be restored (e.g. by decoding it into a
   * scratch state), or null if it can. Called before the snapshot is persisted: one that fails
   * here is dropped, so it cannot leave a node that fails to restore it on every restart.
   */
  validateSnapshot?(snapshot: Snapshot): string | null;
}

export interface RaftNodeTiming {
  /** Length of one core tick (default 10 ms). */
  readonly tickMs?: number;
  /** Heartbeat interval (default 100 ms). */
  readonly heartbeatMs?: number;
  /** Election timeouts are drawn from [min, max) (default 1000–2000 ms). */
  readonly electionTimeoutMinMs?: number;
  readonly electionTimeoutMaxMs?: number;
}

export interface RaftNodeOptions<Result = unknown> {
  readonly id: NodeId;
  /**
   * The voters of the configuration this node starts with when its storage holds none: the
   * initial members of a new cluster (this node included), or, for a node joining a running
   * cluster, that cluster's voters. Once the log or a snapshot holds a configuration, that one
   * counts (see changeMembership()).
   */
  readonly peers: readonly NodeId[];
  /** The learners of that starting configuration (a joining node lists itself here). Default none. */
  readonly learners?: readonly NodeId[];
  /** Addresses of the starting configuration's members, an opaque string each (see Membership.addresses). */
  readonly memberAddresses?: readonly MemberAddress[];
  /**
   * Called at start and whenever the configuration in effect changes (an entry appended or
   * truncated, a snapshot installed), with it and the address of every member any known
   * configuration names: the transport's peer set. Called synchronously from the node's loop.
   */
  readonly onMembershipChange?: (membership: Membership, addresses: ReadonlyMap<NodeId, string>) => void;
  /**
   * A learner is promoted only once its log is within this many entries of the leader's commit
   * index (default 1000), so that promoting it cannot leave the cluster without a working majority
   * while it catches up.
   */
  readonly learnerCatchUpEntries?: number;
  readonly storage: Storage;
  readonly transport: Transport;
  readonly stateMachine?: StateMachine<Result>;
  readonly timing?: RaftNodeTiming;
  /** How long propose() and read() wait before rejecting (default 10 s). */
  readonly proposeTimeoutMs?: number;
  /** Proposals (and, separately, reads) waiting at once before new ones reject with BusyError (default 65536). */
  readonly proposalsInFlightMax?: number;
  /** Peer messages queued for the core before new ones are dropped (default 65536). */
  readonly inboxMax?: number;
  /** Addresses reported in NotLeaderError, e.g. an HTTP URL per node. */
  readonly addresses?: ReadonlyMap<NodeId, string>;
  /** Election jitter; a cryptographically seeded generator by default. */
  readonly random?: RandomSource;
  /** Bytes of commands per AppendEntries (default 1 MiB, and never more than one transport message holds). */
  readonly appendBytesMax?: number;
  /**
   * Bytes per snapshot chunk (default 1 MiB, and never more than one transport message holds).
   * Larger than the core's 64 KiB: a chunk costs a step and a message on each side whatever its
   * size, and four in flight are what keeps a transfer moving, so on a real network a large state
   * is sent several times faster in large chunks.
   */
  readonly snapshotChunkBytes?: number;
  /** The largest snapshot accepted from a leader (default 64 GiB); set it alike on every node. */
  readonly snapshotBytesMax?: number;
  /**
   * Run a pre-vote round before each election (thesis §9.6), so a node that cannot win does not
   * raise terms and depose a working leader when it rejoins (default true).
   */
  readonly preVote?: boolean;
  /**
   * Check-quorum (default true): a leader that has not heard from a majority within an election
   * timeout steps down, so waiting reads and proposals fail at once and it stops claiming to lead.
   */
  readonly checkQuorum?: boolean;
  /** stop() on a leader hands leadership to the most up-to-date follower first (default true). */
  readonly transferLeadershipOnStop?: boolean;
  /** Timers and time (default: real time). The simulator passes its virtual clock. */
  readonly clock?: Clock;
  /** Called once if the node stops because of a fatal error (storage failure, broken invariant). */
  readonly onFatal?: (error: Error) => void;
  /**
   * Where elections, role, term and leader changes, snapshots and applied configurations are
   * logged (see runtime/logger.ts). Default: nowhere.
   */
  readonly logger?: Logger;
  /** Test only: Raft bugs to inject (see tsraft/testing). */
  readonly [INJECTED_BUGS]?: ReadonlySet<InjectedBug>;
  /** Test only: driver bugs to inject (see tsraft/testing). */
  readonly [INJECTED_DRIVER_BUGS]?: ReadonlySet<DriverBug>;
}

const DEFAULT_APPEND_BYTES_MAX = 1024 * 1024;

/** The core configuration for `options`, and the largest command one message can carry; throws ConfigError. */
export function coreConfig(options: RaftNodeOptions<unknown>): { config: RaftConfig; commandBytesMax: number } {
  const timing = options.timing ?? {};
  const stateMachine = options.stateMachine;
  const tickMs = timing.tickMs ?? 10;
  const problems: string[] = [];
  const positive = (name: string, value: number | undefined): void => {
    if (value !== undefined && !(Number.isFinite(value) && value > 0)) problems.push(`${name} must be a positive number, got ${value}`);
  };
  positive('timing.tickMs', timing.tickMs);
  positive('timing.heartbeatMs', timing.heartbeatMs);
  positive('timing.electionTimeoutMinMs', timing.electionTimeoutMinMs);
  positive('timing.electionTimeoutMaxMs', timing.electionTimeoutMaxMs);
  positive('proposeTimeoutMs', options.proposeTimeoutMs);
  if (options.learnerCatchUpEntries !== undefined && !(Number.isSafeInteger(options.learnerCatchUpEntries) && options.learnerCatchUpEntries >= 0)) {
    problems.push(`learnerCatchUpEntries must be a non-negative integer, got ${options.learnerCatchUpEntries}`);
  }
  // Whatever the limits say, one message must be able to carry one entry and one snapshot chunk.
  const messageMax = options.transport.maxMessageBytes ?? Number.POSITIVE_INFINITY;
  const commandBytesMax = messageMax - MESSAGE_ENVELOPE_BYTES - ENTRY_ENVELOPE_BYTES;
  if (commandBytesMax < 1024) {
    problems.push(`the transport carries messages of at most ${messageMax} bytes; at least ${1024 + MESSAGE_ENVELOPE_BYTES + ENTRY_ENVELOPE_BYTES} are needed`);
  }
  const withinMessage = (bytes: number): number => Math.min(bytes, messageMax - MESSAGE_ENVELOPE_BYTES);
  const ticks = (ms: number): number => Math.max(1, Math.round(ms / tickMs));
  const config: RaftConfig = {
    id: options.id,
    peers: options.peers,
    ...(options.learners === undefined ? {} : { learners: options.learners }),
    ...(options.memberAddresses === undefined ? {} : { addresses: options.memberAddresses }),
    heartbeatIntervalTicks: ticks(timing.heartbeatMs ?? 100),
    electionTimeoutTicksMin: ticks(timing.electionTimeoutMinMs ?? 1000),
    electionTimeoutTicksMax: ticks(timing.electionTimeoutMaxMs ?? 2000),
    appendBytesMax: withinMessage(options.appendBytesMax ?? DEFAULT_APPEND_BYTES_MAX),
    snapshotChunkBytes: withinMessage(options.snapshotChunkBytes ?? RUNTIME_SNAPSHOT_CHUNK_BYTES),
    random: options.random ?? { nextInt: (max) => cryptoRandomInt(max) },
    ...(options.preVote === undefined ? {} : { preVote: options.preVote }),
    checkQuorum: options.checkQuorum ?? true,
    // Entries of earlier terms must not wait for the next write to commit (see RaftConfig).
    commitOnElection: true,
    ...(options.snapshotBytesMax === undefined ? {} : { snapshotBytesMax: options.snapshotBytesMax }),
    ...(options.storage.snapshotAssembly === undefined ? {} : { snapshotAssembly: options.storage.snapshotAssembly }),
    ...(stateMachine?.validateSnapshot === undefined ? {} : { validateSnapshot: (snapshot: Snapshot) => stateMachine.validateSnapshot!(snapshot) }),
    ...(options[INJECTED_BUGS] === undefined ? {} : { [INJECTED_BUGS]: options[INJECTED_BUGS] }),
  };
  const names: Record<string, string> = {
    heartbeatIntervalTicks: 'timing.heartbeatMs (in ticks)',
    electionTimeoutTicksMin: 'timing.electionTimeoutMinMs (in ticks)',
    electionTimeoutTicksMax: 'timing.electionTimeoutMaxMs (in ticks)',
  };
  problems.push(...validateConfig(config).map((p) => p.replace(/\b(heartbeatIntervalTicks|electionTimeoutTicksMin|electionTimeoutTicksMax)\b/g, (n) => names[n] ?? n)));
  if (problems.length > 0) throw new ConfigError(problems);
  return { config, commandBytesMax };
}

/**
 * Random words from the platform's CSPRNG, drawn 256 at a time: a follower draws a new election
 * timeout on every message from its leader, and one getRandomValues call per draw cost it several
 * per cent of its CPU.
 */
const RANDOM_POOL_WORDS = 256;
const randomPool = new Uint32Array(RANDOM_POOL_WORDS);
let randomPoolNext = RANDOM_POOL_WORDS;

function randomWord(): number {
  if (randomPoolNext === RANDOM_POOL_WORDS) {
    globalThis.crypto.getRandomValues(randomPool);
    randomPoolNext = 0;
  }
  return randomPool[randomPoolNext++]!;
}

/**
 * A uniform integer in [0, max) from the platform's CSPRNG (`globalThis.crypto`, in Node 20 and in
 * browsers alike, so the runtime needs no node:crypto import), by rejection sampling: no modulo bias.
 */
export function cryptoRandomInt(max: number): number {
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`cryptoRandomInt: max must be a safe integer >= 1, got ${max}`);
  if (max <= 0x1_0000_0000) {
    const limit = 0x1_0000_0000 - (0x1_0000_0000 % max);
    for (;;) {
      const value = randomWord();
      if (value < limit) return value % max;
    }
  }
  // 53 random bits: 21 from one word, 32 from the other.
  const range = 2 ** 53;
  const limit = range - (range % max);
  for (;;) {
    const value = (randomWord() & 0x1f_ffff) * 0x1_0000_0000 + randomWord();
    if (value < limit) return value % max;
  }
}
