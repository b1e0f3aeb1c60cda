import { assert } from '../../core/assert.js';
import type { InjectedBug } from '../../core/config.js';
import { DEFAULT_TIMING } from '../../core/config.js';
import type { Entry, Message, NodeId, Snapshot } from '../../core/messages.js';
import { RaftCore } from '../../core/raft.js';
import { Persister } from '../persister.js';
import { Prng } from '../prng.js';
import { VirtualScheduler, type Timer } from '../scheduler.js';
import { SafetyChecker, SafetyViolation } from './invariants.js';

/** After healing, a new marker command is proposed only if none was accepted for this long. */
const MARKER_RETRY_MS = 3000;

/** Mistakes a driver (not the core) can be told to make, to show the strict disk catches them. */
export const DRIVER_BUGS = ['send-before-sync'] as const;
export type DriverBug = (typeof DRIVER_BUGS)[number];

/** Liveness failed: the cluster did not recover after the faults stopped. */
export class LivenessViolation extends Error {
  override readonly name = 'LivenessViolation';
}

export interface WorldOptions {
  readonly seed: number;
  /** Cluster sizes to choose from. */
  readonly nodeCounts: readonly number[];
  /** Simulated seconds of load and faults before everything heals. */
  readonly faultSeconds: number;
  /** Simulated seconds after healing within which a new command must commit on every node. */
  readonly healSeconds: number;
  readonly bugs: ReadonlySet<InjectedBug>;
  readonly driverBug?: DriverBug | undefined;
  /** How many trace lines to keep for a failure report. */
  readonly traceLines: number;
}

/** The random shape of one world, drawn from its seed (printed with every failure). */
export interface WorldShape {
  readonly nodes: number;
  readonly tickMs: readonly number[];
  readonly delayMaxMs: number;
  readonly lossPerMille: number;
  readonly duplicatePerMille: number;
  readonly longDelayPerMille: number;
  readonly faultGapMaxMs: number;
  readonly proposalGapMaxMs: number;
  /** The state machine snapshots after this many applied entries (0: never). */
  readonly snapshotEvery: number;
  /**
   * `mixed`: partitions of every kind, crashes and restarts. `leader-churn`: the scenario of the
   * paper's Figure 8, leaders dying right after appending locally or after re-replicating old entries.
   */
  readonly faultMix: 'mixed' | 'leader-churn';
}

/** The explorer's state machine: a running digest of every command applied, snapshot as bytes. */
function digestStep(digest: number, command: Uint8Array): number {
  let h = digest ^ 0x9e3779b9;
  for (let i = 0; i < command.length; i++) h = Math.imul(h ^ command[i]!, 0x01000193);
  return h >>> 0;
}

function encodeAppState(index: number, digest: number): Uint8Array {
  return new TextEncoder().encode(`${index}:${digest}`);
}

function decodeAppState(data: Uint8Array): { index: number; digest: number } {
  const [index, digest] = new TextDecoder().decode(data).split(':').map(Number);
  assert(Number.isSafeInteger(index) && Number.isSafeInteger(digest), 'malformed explorer snapshot');
  return { index: index!, digest: digest! };
}

/** One server: a core, its disk, its state machine, driven on its own (uneven) tick. */
class ExplorerNode {
  core: RaftCore;
  alive = true;
  applied = 0;
  digest = 0;
  /** Injected fault: the next Ready is made durable, then the node dies before sending it. */
  crashBeforeNextSend = false;
  private tickTimer: Timer | null = null;
  private unsyncedSince = false;

  constructor(
    readonly id: NodeId,
    private readonly world: World,
    public persister: Persister,
    random: Prng,
  ) {
    this.core = this.makeCore(random);
  }

  makeCore(random: Prng): RaftCore {
    const restored = this.persister.read();
    const core = new RaftCore(
      {
        id: this.id,
        peers: this.world.peerIds,
        ...DEFAULT_TIMING,
        snapshotChunkBytes: 8,
        injectedBugs: this.world.options.bugs,
        random,
      },
      restored,
    );
    const snapshot = restored?.snapshot ?? null;
    const state = snapshot === null ? { index: 0, digest: 0 } : decodeAppState(snapshot.data);
    this.applied = state.index;
    this.digest = state.digest;
    return core;
  }

  start(): void {
    this.scheduleTick();
  }

  stop(): void {
    this.alive = false;
    this.tickTimer?.cancel();
    this.tickTimer = null;
  }

  deliver(message: Message): void {
    if (!this.alive) return;
    this.core.step(message);
    this.processReady();
  }

  propose(command: Uint8Array): boolean {
    if (!this.alive) return false;
    const accepted = this.core.propose(command) !== null;
    if (accepted) this.processReady();
    return accepted;
  }

  private scheduleTick(): void {
    const tickMs = this.world.shape.tickMs[this.id]!;
    this.tickTimer = this.world.scheduler.schedule(tickMs, () => {
      if (!this.alive) return;
      if (this.unsyncedSince) {
        // Injected driver bug: the writes of the last Ready are only synced now, after sending.
        this.persister.sync();
        this.unsyncedSince = false;
      }
      this.core.tick();
      this.processReady();
      this.scheduleTick();
    });
  }

  processReady(): void {
    const world = this.world;
    while (this.alive && this.core.hasReady()) {
      const ready = this.core.ready();
      this.persister.save(ready.hardState, ready.snapshotWrite, ready.logWrite);
      const sendBeforeSync = world.options.driverBug === 'send-before-sync';
      if (sendBeforeSync) this.unsyncedSince = true;
      else this.persister.sync();
      if (this.crashBeforeNextSend && ready.messages.length > 0) {
        world.trace(`n${this.id} crashes after persisting, before sending ${ready.messages.length} messages`);
        world.crash(this.id);
        return;
      }
      for (const message of ready.messages) world.send(message);
      if (ready.logWrite !== null) world.checker.logWritten(this.id, this.core, ready.logWrite.fromIndex);
      if (ready.snapshotToApply !== null) this.installSnapshot(ready.snapshotToApply);
      const commitIndex = ready.committed.length > 0 ? this.core.status().commitIndex : 0;
      for (const entry of ready.committed) this.apply(entry, commitIndex);
      this.core.advance(ready);
      this.maybeSnapshot();
    }
    if (this.alive) world.observe(this.id, this.core);
  }

  private apply(entry: Entry, commitIndex: number): void {
    const world = this.world;
    world.checker.apply(this.id, commitIndex, entry);
    this.applied = entry.index;
    this.digest = digestStep(this.digest, entry.command);
    world.checkDigest(this.id, entry.index, this.digest);
    world.noteApplied(this.id, entry);
  }

  private installSnapshot(snapshot: Snapshot): void {
    const state = decodeAppState(snapshot.data);
    assert(state.index === snapshot.index, () => `snapshot data for ${state.index} labelled ${snapshot.index}`);
    this.world.checker.applySnapshot(this.id, snapshot);
    this.world.checkDigest(this.id, state.index, state.digest);
    this.world.trace(`n${this.id} installs snapshot at ${snapshot.index}`);
    this.applied = state.index;
    this.digest = state.digest;
    this.world.checkRecovered();
  }

  private maybeSnapshot(): void {
    const every = this.world.shape.snapshotEvery;
    if (every === 0 || this.applied - this.core.status().snapshotIndex < every) return;
    this.core.snapshot(this.applied, encodeAppState(this.applied, this.digest));
  }
}

/**
 * A random world for one seed: a cluster of 3–7 nodes on a message network that drops,
 * duplicates, delays and reorders; partitions (symmetric, one-way, and ones that strand a leader
 * in a minority), crashes at random points (including between a persist and its send) and
 * restarts; uneven tick rates; and clients proposing at random times to random nodes. Every
 * safety property is checked after every event; after `faultSeconds` all faults heal and a new
 * command must commit everywhere within `healSeconds`.
 */
export class World {
  readonly scheduler = new VirtualScheduler({ maxVirtualMs: Number.MAX_SAFE_INTEGER });
  readonly checker = new SafetyChecker();
  readonly shape: WorldShape;
  readonly peerIds: readonly NodeId[];
  private readonly nodes: ExplorerNode[] = [];
  private readonly prng: Prng;
  private readonly netPrng: Prng;
  private readonly nodePrng: Prng;
  /** linkUp[from][to]: messages from `from` reach `to`. */
  private readonly linkUp: boolean[][];
  private readonly traceRing: string[] = [];
  private traceNext = 0;
  private traceHash = 0x811c9dc5;
  private healed = false;
  private nextCommand = 1;
  private readonly digestAt = new Map<number, number>();
  /** Commands proposed after the heal, and the first index at which one of them was applied. */
  private readonly markers = new Set<string>();
  private markerIndex = -1;
  private lastMarkerAt = Number.NEGATIVE_INFINITY;
  private recoveredAt = -1;
  readonly options: WorldOptions;
  /** Counters for the summary. */
  readonly stats = { messages: 0, dropped: 0, crashes: 0, partitions: 0, proposals: 0, commits: 0 };

  constructor(options: WorldOptions) {
    this.options = options;
    const root = new Prng(options.seed);
    const shapePrng = root.fork();
    this.prng = root.fork();
    this.netPrng = root.fork();
    this.nodePrng = root.fork();
    const nodes = shapePrng.pick(options.nodeCounts);
    this.shape = {
      nodes,
      tickMs: Array.from({ length: nodes }, () => 7 + shapePrng.nextInt(8)),
      delayMaxMs: shapePrng.pick([1, 5, 20, 50]),
      lossPerMille: shapePrng.pick([0, 10, 50, 200]),
      duplicatePerMille: shapePrng.pick([0, 10, 50]),
      longDelayPerMille: shapePrng.pick([0, 10, 50]),
      faultGapMaxMs: shapePrng.pick([300, 1000, 3000]),
      proposalGapMaxMs: shapePrng.pick([5, 30, 200, 2000]),
      snapshotEvery: shapePrng.pick([0, 3, 10, 50]),
      faultMix: shapePrng.pick(['mixed', 'mixed', 'leader-churn'] as const),
    };
    this.peerIds = Array.from({ length: nodes }, (_, i) => i);
    this.linkUp = Array.from({ length: nodes }, () => new Array<boolean>(nodes).fill(true));
    for (const id of this.peerIds) {
      this.nodes.push(new ExplorerNode(id, this, new Persister('on-sync'), this.nodePrng.fork()));
      this.checker.restarted(id, this.nodes[id]!.core, 0);
    }
  }

  /** Runs the world to the end. Throws SafetyViolation, LivenessViolation or InvariantError. */
  run(): void {
    for (const node of this.nodes) node.start();
    this.scheduleFault();
    this.scheduleProposal();
    const faultEnd = this.options.faultSeconds * 1000;
    this.scheduler.runUntil(faultEnd);
    this.heal();
    const deadline = faultEnd + this.options.healSeconds * 1000;
    while (this.recoveredAt < 0 && this.scheduler.now() < deadline) {
      this.scheduler.runUntil(Math.min(deadline, this.scheduler.now() + 100));
    }
    if (this.recoveredAt < 0) {
      const roles = this.nodes.map((n) => `n${n.id}:${n.core.status().role}@${n.core.term}`).join(' ');
      throw new LivenessViolation(
        `no command proposed after healing at ${faultEnd} ms was applied on all ${this.shape.nodes} nodes within ${this.options.healSeconds} s (${roles})`,
      );
    }
  }

  get now(): number {
    return this.scheduler.now();
  }

  /** A digest of the whole trace: equal for two runs of one seed if the simulation is deterministic. */
  get runDigest(): number {
    return this.traceHash;
  }

  get recoveryMs(): number {
    return this.recoveredAt - this.options.faultSeconds * 1000;
  }

  trace(line: string): void {
    const text = `${this.now.toFixed(0).padStart(8)} ms  ${line}`;
    for (let i = 0; i < text.length; i++) this.traceHash = Math.imul(this.traceHash ^ text.charCodeAt(i), 0x01000193) >>> 0;
    if (this.options.traceLines === 0) return;
    if (this.traceRing.length < this.options.traceLines) this.traceRing.push(text);
    else this.traceRing[this.traceNext] = text;
    this.traceNext = (this.traceNext + 1) % this.options.traceLines;
  }

  /** The last trace lines, oldest first. */
  recentTrace(): string[] {
    if (this.traceRing.length < this.options.traceLines) return [...this.traceRing];
    return [...this.traceRing.slice(this.traceNext), ...this.traceRing.slice(0, this.traceNext)];
  }

  // ------------------------------------------------------------------ network

  send(message: Message): void {
    // The persistence contract: nothing leaves a node while it holds writes that are not durable.
    const unsynced = this.nodes[message.from]!.persister.unsyncedWrites;
    if (unsynced > 0) {
      throw new SafetyViolation(
        'persist before send',
        `node ${message.from} sent ${message.type} to ${message.to} with ${unsynced} write(s) not yet synced`,
      );
    }
    this.checker.sent(message);
    this.stats.messages++;
    const copies = !this.healed && this.netPrng.nextInt(1000) < this.shape.duplicatePerMille ? 2 : 1;
    for (let copy = 0; copy < copies; copy++) this.transmit(message);
  }

  private transmit(message: Message): void {
    const { from, to } = message;
    const lossy = !this.healed && this.netPrng.nextInt(1000) < this.shape.lossPerMille;
    if (!this.linkUp[from]![to] || lossy) {
      this.stats.dropped++;
      this.trace(`${from}->${to} ${describe(message)} DROPPED`);
      return;
    }
    let delay = 1 + this.netPrng.nextInt(this.shape.delayMaxMs);
    if (!this.healed && this.netPrng.nextInt(1000) < this.shape.longDelayPerMille) delay += 100 + this.netPrng.nextInt(3000);
    this.trace(`${from}->${to} ${describe(message)} (+${delay} ms)`);
    this.scheduler.schedule(delay, () => {
      // A partition that arose while the message was in flight still stops it.
      if (!this.linkUp[from]![to]) return;
      this.nodes[to]!.deliver(message);
    });
  }

  // ------------------------------------------------------------------ checks

  observe(id: NodeId, core: RaftCore): void {
    const status = core.status();
    this.checker.observe(id, core, status);
    const line = `${status.role} t${status.term} last=${status.lastIndex} commit=${status.commitIndex} snap=${status.snapshotIndex}`;
    if (this.lastObserved[id] !== line) {
      this.lastObserved[id] = line;
      this.trace(`n${id} ${line}`);
    }
  }

  private readonly lastObserved: string[] = [];

  /** Every node's state machine must be identical after applying the same prefix of the log. */
  checkDigest(id: NodeId, index: number, digest: number): void {
    const known = this.digestAt.get(index);
    if (known === undefined) this.digestAt.set(index, digest);
    else if (known !== digest) {
      throw new SafetyViolation('state machine safety', `node ${id}'s state after index ${index} differs from another node's`);
    }
  }

  noteApplied(_id: NodeId, entry: Entry): void {
    this.stats.commits = Math.max(this.stats.commits, entry.index);
    if (this.markerIndex < 0 && this.markers.has(decodeCommandKey(entry.command))) this.markerIndex = entry.index;
    this.checkRecovered();
  }

  /** Recovered once every node's state machine covers a command proposed after the heal. */
  checkRecovered(): void {
    if (this.markerIndex < 0 || this.recoveredAt >= 0) return;
    for (const node of this.nodes) if (node.applied < this.markerIndex) return;
    this.recoveredAt = this.now;
    this.trace(`recovered: the command at index ${this.markerIndex}, proposed after healing, is applied on every node`);
  }

  // ------------------------------------------------------------------ load

  private scheduleProposal(): void {
    this.scheduler.schedule(1 + this.prng.nextInt(this.shape.proposalGapMaxMs), () => {
      const target = this.healed ? this.leaderId() : this.prng.nextInt(this.shape.nodes);
      // After healing the cluster must converge on its own: one marker, and another only if none
      // was accepted for a while (a new leader may have dropped it). A steady stream of writes would
      // keep leaders compacting and could hide a follower that is stuck without them.
      const quiet = this.healed && this.now - this.lastMarkerAt < MARKER_RETRY_MS;
      if (target !== -1 && !quiet) {
        const key = `${this.healed ? 'm' : 'c'}${this.nextCommand++}`;
        const command = new TextEncoder().encode(key);
        if (this.nodes[target]!.propose(command)) {
          this.stats.proposals++;
          if (this.healed) {
            this.markers.add(key);
            this.lastMarkerAt = this.now;
          }
          this.trace(`client proposes ${key} to n${target}`);
        }
      }
      if (this.recoveredAt < 0) this.scheduleProposal();
    });
  }

  private leaderId(): NodeId {
    for (const node of this.nodes) if (node.alive && node.core.isLeader) return node.id;
    return -1;
  }

  // ------------------------------------------------------------------ faults

  private scheduleFault(): void {
    this.scheduler.schedule(1 + this.prng.nextInt(this.shape.faultGapMaxMs), () => {
      if (this.healed) return;
      this.injectFault();
      this.scheduleFault();
    });
  }

  private injectFault(): void {
    if (this.shape.faultMix === 'leader-churn') {
      this.injectLeaderChurn();
      return;
    }
    const n = this.shape.nodes;
    const roll = this.prng.nextInt(100);
    if (roll < 15) {
      this.partition(this.randomGroups());
    } else if (roll < 25) {
      // A leader stranded with a minority: it keeps believing it leads while the rest move on.
      const leader = this.leaderId();
      if (leader === -1) return;
      const group = new Set([leader]);
      while (group.size < Math.floor((n - 1) / 2)) group.add(this.prng.nextInt(n));
      this.partition(this.peerIds.map((id) => (group.has(id) ? 0 : 1)));
    } else if (roll < 35) {
      const from = this.prng.nextInt(n);
      const to = this.prng.nextInt(n);
      if (from === to) return;
      this.linkUp[from]![to] = false;
      this.stats.partitions++;
      this.trace(`link ${from}->${to} cut (one way)`);
    } else if (roll < 50) {
      this.healLinks();
    } else if (roll < 60) {
      this.crash(this.prng.nextInt(n));
    } else if (roll < 75) {
      // Figure 8 of the paper: leaders dying right after they replicated part of their log.
      const leader = this.leaderId();
      if (leader !== -1) this.crash(leader);
    } else if (roll < 80) {
      // Usually the leader: it appends a proposal locally and dies before anyone hears of it.
      const leader = this.leaderId();
      const victim = this.nodes[leader !== -1 && this.prng.chance(2, 3) ? leader : this.prng.nextInt(n)]!;
      if (victim.alive) {
        victim.crashBeforeNextSend = true;
        this.trace(`n${victim.id} will crash between its next persist and send`);
      }
    } else {
      this.restart(this.prng.nextInt(n));
    }
  }

  private injectLeaderChurn(): void {
    const roll = this.prng.nextInt(100);
    const leader = this.leaderId();
    if (roll < 35) {
      if (leader !== -1) this.crash(leader);
    } else if (roll < 60) {
      if (leader === -1) return;
      // The leader appends a command to its own log only, then dies.
      const node = this.nodes[leader]!;
      node.crashBeforeNextSend = true;
      const key = `c${this.nextCommand++}`;
      this.trace(`client proposes ${key} to n${leader}, which dies before replicating it`);
      node.propose(new TextEncoder().encode(key));
    } else {
      this.restart(this.prng.nextInt(this.shape.nodes));
    }
  }

  private randomGroups(): number[] {
    return this.peerIds.map(() => this.prng.nextInt(2));
  }

  private partition(groups: number[]): void {
    for (const from of this.peerIds) {
      for (const to of this.peerIds) this.linkUp[from]![to] = groups[from] === groups[to];
    }
    this.stats.partitions++;
    this.trace(`partition ${groups.map((g, id) => `n${id}:${g}`).join(' ')}`);
  }

  private healLinks(): void {
    for (const row of this.linkUp) row.fill(true);
    this.trace('all links up');
  }

  crash(id: NodeId): void {
    const node = this.nodes[id]!;
    if (!node.alive) return;
    node.stop();
    node.crashBeforeNextSend = false;
    // Whatever was not synced is lost; the successor starts from a copy of what was durable.
    node.persister = node.persister.copy();
    this.stats.crashes++;
    this.trace(`n${id} crashes`);
  }

  private restart(id: NodeId): void {
    const node = this.nodes[id]!;
    if (node.alive) return;
    node.core = node.makeCore(this.nodePrng.fork());
    node.alive = true;
    this.checker.restarted(id, node.core, node.applied);
    this.trace(`n${id} restarts at term ${node.core.term}, log ${node.core.status().lastIndex}, applied ${node.applied}`);
    node.start();
  }

  private heal(): void {
    this.healed = true;
    this.healLinks();
    for (const node of this.nodes) node.crashBeforeNextSend = false;
    for (const id of this.peerIds) this.restart(id);
    this.trace('faults healed');
  }
}

function describe(message: Message): string {
  switch (message.type) {
    case 'AppendEntries':
      return `AppendEntries t${message.term} prev=${message.prevLogIndex}/${message.prevLogTerm} n=${message.entries.length} commit=${message.leaderCommit}`;
    case 'AppendEntriesReply':
      return `AppendEntriesReply t${message.term} ${message.success ? `ok match=${message.matchIndex}` : `reject prev=${message.prevLogIndex} hint=${message.conflictTerm}/${message.conflictIndex}/${message.lastLogIndex}`}`;
    case 'RequestVote':
    case 'PreVote':
      return `${message.type} t${message.term} last=${message.lastLogIndex}/${message.lastLogTerm}`;
    case 'RequestVoteReply':
    case 'PreVoteReply':
      return `${message.type} t${message.term} ${message.voteGranted ? 'granted' : 'refused'}`;
    case 'InstallSnapshot':
      return `InstallSnapshot t${message.term} at=${message.lastIncludedIndex} off=${message.offset} len=${message.data.length}${message.done ? ' done' : ''}`;
    case 'InstallSnapshotReply':
      return `InstallSnapshotReply t${message.term} at=${message.lastIncludedIndex} next=${message.nextOffset}${message.installed ? ' installed' : ''}`;
  }
}

function decodeCommandKey(command: Uint8Array): string {
  return new TextDecoder().decode(command);
}
