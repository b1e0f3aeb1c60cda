/**
 * The random shape of one explorer world (cluster size, clocks, network, disks, faults, clients,
 * spare nodes), drawn from its seed and printed with every failure; world.ts runs it.
 */
import { VALUE_BYTES_MAX } from '../../kv/commands.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../../transport/limits.js';
import { Prng } from '../prng.js';

/** The random shape of one world, drawn from its seed (printed with every failure). */
export interface WorldShape {
  readonly nodes: number;
  /** Per node: the length of its tick; its timeouts are counted in ticks, so clocks run unevenly. */
  readonly tickMs: readonly number[];
  readonly delayMaxMs: number;
  readonly lossPerMille: number;
  readonly duplicatePerMille: number;
  readonly longDelayPerMille: number;
  /** Link bandwidth: a 64 KiB snapshot chunk takes 64 KiB / bytesPerMs on the wire. */
  readonly bytesPerMs: number;
  /** The transport's frame limit (the TCP default, or a small one so that large values reach it). */
  readonly maxFrameBytes: number;
  readonly syncLatencyMsMax: number;
  readonly tearPerMille: number;
  readonly faultGapMaxMs: number;
  readonly clients: number;
  readonly keys: number;
  readonly opGapMaxMs: number;
  readonly readMode: 'read-index' | 'log';
  /** Snapshot after this much log was applied since the last one (-1: never). */
  readonly maxRaftStateBytes: number;
  /** Bytes of state written before the load starts (so snapshots are of a realistic size). */
  readonly preloadBytes: number;
  /** Values near and over the frame limit are written now and then. */
  readonly largeValues: boolean;
  /**
   * `mixed`: partitions of every kind, crashes and restarts, failing disks. `leader-churn`: the
   * scenario of the paper's Figure 8, leaders dying right after appending locally, restarting while
   * their previous incarnation's messages are still in flight.
   */
  readonly faultMix: 'mixed' | 'leader-churn';
  /** Pre-vote on (the default) or off: without it, elections go straight to RequestVote. */
  readonly preVote: boolean;
  /** After healing, clients go quiet (the cluster must converge by itself) or keep writing. */
  readonly healLoad: 'quiet' | 'steady';
  /** A stray peer hands members messages that cannot be true during the faults (forger.ts). */
  readonly forger: boolean;
  /** Leadership transfers and graceful leader stops during the faults (operator.ts). */
  readonly operator: boolean;
  /**
   * Node ids beyond the `nodes` starting voters that run from the start as would-be joiners
   * (`peers` the starting voters, `learners` themselves): the operator adds them as learners,
   * promotes them, removes voters and learners (membership worlds, operator.ts). 0: none.
   */
  readonly spares: number;
  /**
   * Clients that use leases (workload.ts), 0 in most worlds. Drawn from a stream of its own
   * (leasePrngFor), so that every world without them is exactly as it was before leases.
   */
  readonly leaseClients: number;
}

/** Tells the lease stream apart from the world's root stream. */
const LEASE_STREAM = 0x1ea5e;

/**
 * The random stream that decides a world's leases (whether it has lease clients, and all they
 * do): derived from the seed, independent of the root stream that draws everything else.
 */
export function leasePrngFor(seed: number): Prng {
  const words = new Prng(seed);
  // Two words of the seed's stream, mixed with a constant, seed a new generator (< 2^52: safe).
  return new Prng(((words.nextUint32() ^ LEASE_STREAM) >>> 0) * 0x10_0000 + (words.nextUint32() & 0xf_ffff));
}

/** How many lease clients a world has: none in two worlds of three, else one or two. */
export function drawLeaseClients(leasePrng: Prng): number {
  return leasePrng.chance(1, 3) ? 1 + leasePrng.nextInt(2) : 0;
}

export function drawShape(prng: Prng, nodeCounts: readonly number[], leasePrng?: Prng): WorldShape {
  const shape = drawFixedShape(prng, nodeCounts);
  const leaseClients = leasePrng === undefined ? 0 : drawLeaseClients(leasePrng);
  // Drawn after everything else, so that every world without spares is as it was before them.
  const spares = shape.nodes <= 5 && prng.chance(2, 3) ? 1 + prng.nextInt(3) : 0;
  const spareTicks = Array.from({ length: spares }, () => 7 + prng.nextInt(8));
  return { ...shape, tickMs: [...shape.tickMs, ...spareTicks], spares, leaseClients };
}

function drawFixedShape(prng: Prng, nodeCounts: readonly number[]): Omit<WorldShape, 'spares' | 'leaseClients'> {
  const nodes = prng.pick(nodeCounts);
  const bigState = prng.chance(1, 5);
  // A small frame limit, so that values near and over it fit the KV value limit (1 MiB).
  const maxFrameBytes = prng.pick([DEFAULT_MAX_FRAME_BYTES, 256 * 1024]);
  const largeValues = maxFrameBytes < VALUE_BYTES_MAX && prng.chance(1, 2);
  return {
    nodes,
    tickMs: Array.from({ length: nodes }, () => 7 + prng.nextInt(8)),
    delayMaxMs: prng.pick([1, 5, 20, 50, 300]),
    lossPerMille: prng.pick([0, 10, 50, 200]),
    duplicatePerMille: prng.pick([0, 10, 50]),
    longDelayPerMille: prng.pick([0, 10, 50]),
    // A 1 MB/s link cannot carry 256 KiB values to six followers and recover within healSeconds.
    bytesPerMs: largeValues ? prng.pick([10_000, 100_000]) : prng.pick([1_000, 10_000, 100_000]),
    maxFrameBytes,
    syncLatencyMsMax: prng.pick([1, 5, 30]),
    tearPerMille: prng.pick([0, 500]),
    faultGapMaxMs: prng.pick([300, 1000, 3000]),
    clients: 2 + prng.nextInt(4),
    keys: 2 + prng.nextInt(4),
    opGapMaxMs: prng.pick([5, 30, 200, 1000]),
    readMode: prng.pick(['read-index', 'read-index', 'log'] as const),
    // With a big state, a snapshot costs a copy of all of it: compact often, but not every few writes.
    maxRaftStateBytes: bigState ? prng.pick([4 * 1024, 16 * 1024, 256 * 1024]) : prng.pick([-1, 2048, 16 * 1024, 256 * 1024]),
    preloadBytes: bigState ? 1280 * 1024 : 0,
    largeValues,
    faultMix: prng.pick(['mixed', 'mixed', 'leader-churn'] as const),
    preVote: prng.chance(3, 4),
    healLoad: prng.pick(['quiet', 'steady'] as const),
    // Drawn last, so that every earlier draw (and so every world without it) is as before.
    forger: prng.chance(1, 3),
    operator: prng.chance(1, 3),
  };
}

