/**
 * Unit tests for RaftCore (src/core/raft.ts): no simulator, no timers. Every core is run by the
 * real ReadyDriver (src/driver/ready-driver.ts) through the test kit's DrivenCore, whose fake disk
 * checks that nothing leaves before what it vouches for is durable; tests that look at one Ready
 * in detail get it back from the driver (cycle) or take it by hand. Section numbers refer to the
 * extended Raft paper (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm"),
 * Figure 2 unless stated otherwise.
 */
import { FIXED, ET_MIN, ET_MAX, HB, bytes, range, ent, log, rv, rvr, ae, aer, allMessages, DrivenCore, readyOf } from './core-fixtures.js';
import { Prng } from '../../src/sim/prng.js';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvariantError } from '../../src/core/assert.js';
import { INJECTED_BUGS, type InjectedBug } from '../../src/core/bugs.js';
import { DEFAULT_TIMING, type RaftConfig } from '../../src/core/config.js';
import {
  NO_LEADER,
  NO_VOTE,
  type AppendEntriesReply,
  type Entry,
  type LogIndex,
  type Message,
  type NodeId,
  type PersistentState,
  type Term,
} from '../../src/core/messages.js';
import { RaftCore } from '../../src/core/raft.js';
import type { Ready } from '../../src/core/ready.js';
import type { DriverBug } from '../../src/driver/ready-driver.js';
import type { RandomSource } from '../../src/core/rng.js';

// ===================================================================================== helpers

const decoder = new TextDecoder();
const text = (entry: Entry): string => decoder.decode(entry.command);

function restoredState(term: Term, votedFor: NodeId, entries: Entry[]): PersistentState {
  return { hardState: { term, votedFor }, snapshot: null, entries };
}

/** A config with DEFAULT_TIMING; `preVote` undefined means the library's default. */
function makeConfig(id: NodeId, n: number, random: RandomSource, preVote: boolean | undefined): RaftConfig {
  const config: RaftConfig = { id, peers: range(n), ...DEFAULT_TIMING, random };
  return preVote === undefined ? config : { ...config, preVote };
}

/** The driver of each core made by makeCore (cycle() runs it). */
const drivers = new WeakMap<RaftCore, DrivenCore>();

/**
 * One core, run by the real ReadyDriver with a synchronous fake disk (see cycle). Pre-vote is OFF
 * unless asked for: these tests check the paper's (Figure 2) election rules; the pre-vote
 * extension (thesis §9.6) has its own tests below.
 */
function makeCore(
  id: NodeId,
  n: number,
  opts: { random?: RandomSource; restored?: PersistentState; preVote?: boolean; bugs?: ReadonlySet<InjectedBug> } = {},
): RaftCore {
  const base = makeConfig(id, n, opts.random ?? new Prng(id + 1), opts.preVote ?? false);
  const config: RaftConfig = opts.bugs === undefined ? base : { ...base, [INJECTED_BUGS]: opts.bugs };
  const core = new RaftCore(config, opts.restored);
  drivers.set(core, new DrivenCore({ config, core, ...(opts.restored === undefined ? {} : { restored: opts.restored }) }));
  return core;
}

/**
 * Runs the core's driver (persist to its fake disk, send, apply, advance) and returns the one Ready
 * it handled, or an empty Ready if there was nothing to do. For tests that feed one core by hand
 * and look at what came out.
 */
function cycle(core: RaftCore): Ready {
  const driven = drivers.get(core);
  assert.ok(driven !== undefined, 'cycle() needs a core made by makeCore()');
  const readys = driven.run();
  assert.ok(readys.length <= 1, `expected at most one Ready, the driver handled ${readys.length}`);
  return readys[0] ?? readyOf({});
}

/** For a test that takes a Ready by hand: make its writes durable on the core's fake disk, as the driver would. */
function persistByHand(core: RaftCore, ready: Ready): void {
  const driven = drivers.get(core);
  assert.ok(driven !== undefined, 'persistByHand() needs a core made by makeCore()');
  driven.disk.write(ready.hardState, ready.snapshotWrite, ready.logWrite);
}


function only<T>(items: readonly T[]): T {
  assert.equal(items.length, 1, `expected exactly one item, got ${items.length}`);
  return items[0]!;
}

function ofType<K extends Message['type']>(messages: readonly Message[], type: K): Array<Extract<Message, { type: K }>> {
  return messages.filter((m): m is Extract<Message, { type: K }> => m.type === type);
}

function tickN(core: RaftCore, n: number): void {
  for (let i = 0; i < n; i++) core.tick();
}

/**
 * Node 0 of an n-node cluster (FIXED timeouts), made leader by hand: it times out, and a bare
 * majority of peers grant their votes. Its outputs are consumed.
 */
function makeLeader(n: number, restored?: PersistentState, bugs?: ReadonlySet<InjectedBug>): RaftCore {
  const core = makeCore(0, n, { random: FIXED, ...(restored === undefined ? {} : { restored }), ...(bugs === undefined ? {} : { bugs }) });
  tickN(core, ET_MIN);
  assert.equal(core.status().role, 'candidate');
  cycle(core);
  for (let peer = 1; peer <= Math.floor(n / 2); peer++) core.step(rvr(peer, 0, core.term, true));
  assert.equal(core.isLeader, true);
  cycle(core);
  return core;
}

// ----------------------------------------------------------------- the in-test cluster

interface ClusterOptions {
  seed?: number;
  restored?: ReadonlyArray<PersistentState | undefined>;
  /** Undefined: the library default (pre-vote on). Scenarios that steer elections by hand turn it off. */
  preVote?: boolean;
  /** Injected core bugs, on every node. */
  bugs?: ReadonlySet<InjectedBug>;
  /** Injected driver bugs, on every node. */
  driverBugs?: ReadonlySet<DriverBug>;
  /** Disk writes: 'sync' (default) or 'deferred' (durable only when the test calls sync, or see autoSyncPerMille). */
  writes?: 'sync' | 'deferred';
}

/**
 * n cores, each run by the real ReadyDriver (a DrivenCore: persist to a fake disk, send, apply,
 * advance, in the order the driver asserts; the fake disk checks that nothing leaves before what
 * it vouches for is durable), wired by a synchronous network. After every delivery the cluster
 * checks election safety, leader completeness, state machine safety and commit monotonicity.
 */
class Cluster {
  readonly n: number;
  readonly nodes: DrivenCore[] = [];
  readonly applied: Entry[][] = [];
  private readonly randoms: RandomSource[] = [];
  /** Messages to or from these nodes are lost. */
  readonly isolated = new Set<NodeId>();
  /** Extra fault injection, asked once per message when it is sent: true drops it. */
  drop: (message: Message) => boolean = () => false;
  /** When set, the next message to deliver is picked at random (reordering). */
  shuffle: Prng | null = null;
  /** Per mille of delivered messages that are also queued again. */
  duplicatePerMille = 0;
  /**
   * Deferred disks only: when set, after every delivery and at every tick each outstanding write
   * completes with this chance (else it stays outstanding, and a restart loses it). Unset: writes
   * complete only when the test calls sync.
   */
  autoSyncPerMille: number | null = null;
  private readonly syncRandom: Prng;
  queue: Message[] = [];
  readonly sent: Array<{ tick: number; message: Message }> = [];
  readonly delivered: Message[] = [];
  readonly leaderOfTerm = new Map<Term, NodeId>();
  /** Every entry any node has applied, by index (state machine safety). */
  readonly committed = new Map<LogIndex, Entry>();
  private readonly commitSeen: LogIndex[] = [];
  private readonly options: ClusterOptions;
  now = 0;

  constructor(n: number, options: ClusterOptions = {}) {
    this.n = n;
    this.options = options;
    const seed = options.seed ?? 1;
    this.syncRandom = new Prng(seed * 31 + 7);
    for (const id of range(n)) {
      this.randoms.push(new Prng(seed * 1000 + id));
      const restored = options.restored?.[id];
      this.nodes.push(
        new DrivenCore({
          config: this.config(id),
          ...(restored === undefined ? {} : { restored }),
          ...(options.writes === undefined ? {} : { writes: options.writes }),
          ...(options.driverBugs === undefined ? {} : { driverBugs: options.driverBugs }),
          onSend: (message) => this.route(message),
          onApply: (entry) => this.record(id, entry),
        }),
      );
      this.applied.push([]);
      this.commitSeen.push(0);
    }
  }

  config(id: NodeId): RaftConfig {
    const config = makeConfig(id, this.n, this.randoms[id]!, this.options.preVote);
    return this.options.bugs === undefined ? config : { ...config, [INJECTED_BUGS]: this.options.bugs };
  }

  node(id: NodeId): DrivenCore {
    return this.nodes[id]!;
  }

  get cores(): RaftCore[] {
    return this.nodes.map((node) => node.core);
  }

  core(id: NodeId): RaftCore {
    return this.node(id).core;
  }

  /** Crash and restart from the fake disk: volatile state (commit, applied, role) and an unfinished write are lost. */
  restart(id: NodeId): void {
    this.node(id).restart(this.config(id));
    this.applied[id] = [];
    this.commitSeen[id] = 0;
  }

  /** Runs one node's driver; returns the Readys it handled. */
  collect(id: NodeId): Ready[] {
    const readys = this.node(id).run();
    // Nothing here compacts the log, so no snapshot may appear.
    for (const ready of readys) assert.ok(ready.snapshotWrite === null && ready.snapshotToApply === null, `node ${id}: unexpected snapshot`);
    return readys;
  }

  /** The driver sends: record the message, and queue it unless the network loses it. */
  private route(message: Message): void {
    this.sent.push({ tick: this.now, message });
    if (this.isolated.has(message.from) || this.isolated.has(message.to) || this.drop(message)) return;
    this.queue.push(message);
  }

  /** The driver applies: state machine safety across all nodes. */
  private record(id: NodeId, entry: Entry): void {
    const applied = this.applied[id]!;
    assert.equal(entry.index, applied.length + 1, `node ${id} applies out of order`);
    const known = this.committed.get(entry.index);
    if (known === undefined) this.committed.set(entry.index, entry);
    else {
      assert.equal(entry.term, known.term, `state machine safety: index ${entry.index} applied with two terms`);
      assert.equal(text(entry), text(known), `state machine safety: index ${entry.index} applied with two commands`);
    }
    applied.push(entry);
  }

  collectAll(): void {
    for (const id of range(this.n)) this.collect(id);
    this.checkSafety();
  }

  /** Election safety (§5.2), leader completeness (§5.4.3) and commit monotonicity. */
  checkSafety(): void {
    for (const core of this.cores) {
      const status = core.status();
      if (status.commitIndex < this.commitSeen[core.id]!) {
        assert.fail(`node ${core.id}: commitIndex went back from ${this.commitSeen[core.id]} to ${status.commitIndex}`);
      }
      this.commitSeen[core.id] = status.commitIndex;
      if (status.role !== 'leader') continue;
      const previous = this.leaderOfTerm.get(status.term);
      if (previous !== undefined && previous !== core.id) {
        assert.fail(`election safety: nodes ${previous} and ${core.id} both lead term ${status.term}`);
      }
      if (previous === undefined) {
        this.leaderOfTerm.set(status.term, core.id);
        for (const [index, entry] of this.committed) {
          assert.equal(
            core.entryAt(index)?.term,
            entry.term,
            `leader completeness: new leader ${core.id} of term ${status.term} lacks committed entry ${index}`,
          );
        }
      }
    }
  }

  /** Delivers one queued message (FIFO, or random with `shuffle`); false when the queue is empty. */
  deliverOne(): boolean {
    if (this.queue.length === 0) return false;
    const at = this.shuffle === null ? 0 : this.shuffle.nextInt(this.queue.length);
    const message = this.queue.splice(at, 1)[0]!;
    if (this.shuffle !== null && this.shuffle.chance(this.duplicatePerMille, 1000)) this.queue.push(message);
    this.delivered.push(message);
    this.node(message.to).step(message);
    this.checkSafety();
    this.autoSync();
    return true;
  }

  /** Completes outstanding deferred writes at random (see autoSyncPerMille). */
  private autoSync(): void {
    const perMille = this.autoSyncPerMille;
    if (perMille === null) return;
    for (const node of this.nodes) {
      if (node.writePending && this.syncRandom.chance(perMille, 1000)) node.sync();
    }
    this.checkSafety();
  }

  /** Delivers until nothing is in flight, or until `stop` holds (checked after every delivery). */
  deliverAll(stop: () => boolean = () => false): void {
    this.collectAll();
    for (let steps = 0; !stop(); steps++) {
      assert.ok(steps < 100_000, 'message storm: the network never went quiet');
      if (!this.deliverOne()) return;
    }
  }

  tick(ids: readonly NodeId[] = range(this.n)): void {
    this.now++;
    this.autoSync();
    for (const id of ids) this.node(id).tick();
    this.checkSafety();
  }

  /** `ticks` rounds of: tick everyone, deliver everything. */
  run(ticks: number): void {
    for (let i = 0; i < ticks; i++) {
      this.tick();
      this.deliverAll();
    }
  }

  /**
   * Ticks only the leaders a few times, delivering after each tick: a leader may defer telling
   * idle followers a new commit index by a tick or two (to piggyback it on new entries).
   */
  settle(ticks = 5): void {
    for (let i = 0; i < ticks; i++) {
      this.tick(this.leaders());
      this.deliverAll();
    }
  }

  /** Ticks only `id` until it starts a new election, then delivers everything. */
  campaign(id: NodeId): void {
    const core = this.core(id);
    assert.ok(!core.isLeader, `node ${id} is a leader and cannot campaign`);
    const before = core.term;
    for (let i = 0; i <= ET_MAX && core.term === before; i++) this.tick([id]);
    assert.ok(core.term > before, `node ${id} did not time out`);
    this.deliverAll();
  }

  /** Campaigns with `id` until it wins (a few attempts: it may first need to learn a higher term). */
  elect(id: NodeId): void {
    for (let attempt = 0; attempt < 5 && !this.core(id).isLeader; attempt++) this.campaign(id);
    assert.ok(this.core(id).isLeader, `node ${id} could not win an election`);
  }

  leaders(): NodeId[] {
    return this.cores.filter((core) => core.isLeader).map((core) => core.id);
  }

  propose(id: NodeId, command: string): LogIndex {
    const result = this.core(id).propose(bytes(command));
    assert.ok(result !== null, `node ${id} is not leader`);
    return result.index;
  }

  /** The (index, term) shape of a node's log. */
  shape(id: NodeId): string {
    const status = this.core(id).status();
    const parts: string[] = [];
    for (let i = status.firstIndex; i <= status.lastIndex; i++) parts.push(`${this.core(id).entryAt(i)!.term}`);
    return parts.join(',');
  }
}

// ===================================================================================== votes

describe('RequestVote (§5.2, §5.4.1)', () => {
  test('grants at most one vote per term (§5.2: first-come-first-served)', () => {
    const f = makeCore(1, 3);
    f.step(rv(0, 1, 1, 0, 0));
    const first = cycle(f);
    const reply1 = only(ofType(first.messages, 'RequestVoteReply'));
    assert.deepEqual(reply1, rvr(1, 0, 1, true));

    f.step(rv(2, 1, 1, 0, 0));
    const second = cycle(f);
    const reply2 = only(ofType(second.messages, 'RequestVoteReply'));
    assert.deepEqual(reply2, rvr(1, 2, 1, false));
    assert.equal(second.hardState, null, 'a refusal changes no durable state');
    assert.equal(f.status().votedFor, 0);
  });

  test('refuses a candidate whose last log term is lower, even if its log is longer (§5.4.1)', () => {
    const f = makeCore(1, 3, { restored: restoredState(2, NO_VOTE, log(1, 2)) });
    f.step(rv(0, 1, 3, 10, 1));
    const ready = cycle(f);
    assert.deepEqual(only(ofType(ready.messages, 'RequestVoteReply')), rvr(1, 0, 3, false));
    assert.deepEqual(ready.hardState, { term: 3, votedFor: NO_VOTE }, 'adopts the term but keeps its vote');
  });

  test('refuses a candidate with the same last term but a shorter log (§5.4.1)', () => {
    const f = makeCore(1, 3, { restored: restoredState(2, NO_VOTE, log(1, 2, 2)) });
    f.step(rv(0, 1, 3, 2, 2));
    assert.deepEqual(only(ofType(cycle(f).messages, 'RequestVoteReply')), rvr(1, 0, 3, false));
    // The refusal did not burn the vote: an up-to-date candidate of the same term still gets it.
    f.step(rv(2, 1, 3, 3, 2));
    const ready = cycle(f);
    assert.deepEqual(only(ofType(ready.messages, 'RequestVoteReply')), rvr(1, 2, 3, true));
    assert.deepEqual(ready.hardState, { term: 3, votedFor: 2 });
  });

  test('grants to a candidate whose log is at least as up to date (§5.4.1)', () => {
    const f = makeCore(1, 3, { restored: restoredState(2, NO_VOTE, log(1, 2, 2)) });
    f.step(rv(0, 1, 3, 1, 3)); // higher last term, shorter log
    assert.equal(only(ofType(cycle(f).messages, 'RequestVoteReply')).voteGranted, true);
  });

  test('re-grants the vote to the same candidate on a duplicated request (§5.2)', () => {
    const f = makeCore(1, 3);
    f.step(rv(0, 1, 1, 0, 0));
    assert.equal(only(ofType(cycle(f).messages, 'RequestVoteReply')).voteGranted, true);
    f.step(rv(0, 1, 1, 0, 0));
    const again = cycle(f);
    assert.deepEqual(only(ofType(again.messages, 'RequestVoteReply')), rvr(1, 0, 1, true));
    assert.equal(again.hardState, null, 'the vote is already durable');
    assert.equal(f.status().votedFor, 0);
  });

  test('a vote refused in the current term does not reset the election timer (§5.2, timer rule)', () => {
    const f = makeCore(1, 3, { random: FIXED, restored: restoredState(2, NO_VOTE, log(1, 2)) });
    tickN(f, ET_MIN - 1);
    assert.equal(f.status().role, 'follower');
    f.step(rv(0, 1, 2, 9, 1)); // stale log: refused
    assert.equal(only(ofType(cycle(f).messages, 'RequestVoteReply')).voteGranted, false);
    f.tick();
    assert.equal(f.status().role, 'candidate', 'the timer kept running through the refusal');
    assert.equal(f.term, 3);
  });

  test('a granted vote does reset the election timer (§5.2)', () => {
    const f = makeCore(1, 3, { random: FIXED, restored: restoredState(2, NO_VOTE, log(1, 2)) });
    tickN(f, ET_MIN - 1);
    f.step(rv(0, 1, 2, 2, 2));
    assert.equal(only(ofType(cycle(f).messages, 'RequestVoteReply')).voteGranted, true);
    tickN(f, ET_MIN - 1);
    assert.equal(f.status().role, 'follower');
    f.tick();
    assert.equal(f.status().role, 'candidate');
  });

  test('a vote refused to a higher-term candidate with a stale log does not reset the election timer either (§5.2)', () => {
    // Figure 2 / the 6.824 guide: only a leader's AppendEntries, a granted vote or starting an
    // election restart the timer. The stale-log candidate typically returns from a partition with a
    // *higher* term; if merely adopting that term restarted the timer, each of its hopeless
    // campaigns would push back the elections of the nodes that can win.
    const f = makeCore(1, 3, { random: FIXED, restored: restoredState(2, NO_VOTE, log(1, 2)) });
    tickN(f, ET_MIN - 1);
    f.step(rv(0, 1, 7, 1, 1)); // higher term, stale log: refused, term adopted
    const ready = cycle(f);
    assert.equal(only(ofType(ready.messages, 'RequestVoteReply')).voteGranted, false);
    assert.equal(f.term, 7);
    f.tick();
    assert.equal(f.status().role, 'candidate', 'the refused vote restarted the election timer');
    assert.equal(f.term, 8);
  });

  test("a granted vote's HardState is in the same Ready as the reply (persist before send)", () => {
    const f = makeCore(1, 3);
    f.step(rv(2, 1, 4, 0, 0));
    const ready = f.ready();
    assert.deepEqual(ready.hardState, { term: 4, votedFor: 2 });
    assert.deepEqual(only(ofType(ready.messages, 'RequestVoteReply')), rvr(1, 2, 4, true));
    f.advance(ready);
    assert.equal(f.hasReady(), false);
  });

  test("a candidate's own vote is in the same Ready as its RequestVotes (§5.2)", () => {
    const c = makeCore(0, 3, { random: FIXED, restored: restoredState(1, NO_VOTE, log(1)) });
    tickN(c, ET_MIN);
    const ready = c.ready();
    assert.deepEqual(ready.hardState, { term: 2, votedFor: 0 });
    const requests = ofType(ready.messages, 'RequestVote');
    assert.deepEqual(
      requests.map((m) => [m.to, m.term, m.lastLogIndex, m.lastLogTerm]),
      [
        [1, 2, 1, 1],
        [2, 2, 1, 1],
      ],
    );
  });
});

// ============================================================================ term handling

describe('higher terms (§5.1: "If RPC request or response contains term T > currentTerm: set currentTerm = T, convert to follower")', () => {
  test('a leader steps down on a RequestVote of a higher term', () => {
    const leader = makeLeader(3);
    assert.equal(leader.term, 1);
    leader.step(rv(2, 0, 5, 0, 0));
    const ready = cycle(leader);
    assert.equal(leader.status().role, 'follower');
    assert.equal(leader.term, 5);
    assert.equal(leader.status().leaderId, NO_LEADER);
    assert.deepEqual(ready.hardState, { term: 5, votedFor: 2 }, 'steps down and, its log being no newer, votes');
  });

  test('a leader steps down on an AppendEntries of a higher term and follows its sender', () => {
    const leader = makeLeader(3);
    leader.step(ae(2, 0, 4, 0, 0, [], 0));
    const ready = cycle(leader);
    assert.equal(leader.status().role, 'follower');
    assert.equal(leader.status().leaderId, 2);
    assert.deepEqual(ready.hardState, { term: 4, votedFor: NO_VOTE });
    const reply = only(ofType(ready.messages, 'AppendEntriesReply'));
    assert.equal(reply.success, true);
    assert.equal(reply.term, 4);
  });

  test('a candidate steps down on a RequestVoteReply carrying a higher term', () => {
    const c = makeCore(0, 3, { random: FIXED });
    tickN(c, ET_MIN);
    cycle(c);
    assert.equal(c.status().role, 'candidate');
    c.step(rvr(1, 0, 6, false));
    const ready = cycle(c);
    assert.equal(c.status().role, 'follower');
    assert.equal(c.term, 6);
    assert.deepEqual(ready.hardState, { term: 6, votedFor: NO_VOTE });
    assert.deepEqual(allMessages(ready), []);
    // And a late grant from the old term no longer elects it.
    c.step(rvr(2, 0, 1, true));
    assert.equal(c.isLeader, false);
  });

  test('a leader steps down on an AppendEntriesReply carrying a higher term', () => {
    const leader = makeLeader(3);
    leader.propose(bytes('x'));
    cycle(leader);
    leader.step({ ...aer(1, 0, 3, false, 0, 0), lastLogIndex: 0 });
    const ready = cycle(leader);
    assert.equal(leader.status().role, 'follower');
    assert.equal(leader.term, 3);
    assert.equal(leader.status().progress.size, 0);
    assert.deepEqual(ready.hardState, { term: 3, votedFor: NO_VOTE });
    assert.equal(leader.propose(bytes('y')), null);
  });

  test('a request of an older term is refused with the current term so that its sender steps down', () => {
    const f = makeCore(1, 3, { restored: restoredState(5, NO_VOTE, log(1, 2)) });
    f.step(ae(0, 1, 3, 2, 2, [ent(3, 3)], 2));
    f.step(rv(2, 1, 4, 9, 4));
    const ready = cycle(f);
    const appendReply = only(ofType(ready.messages, 'AppendEntriesReply'));
    assert.equal(appendReply.success, false);
    assert.equal(appendReply.term, 5);
    assert.deepEqual(only(ofType(ready.messages, 'RequestVoteReply')), rvr(1, 2, 5, false));
    assert.equal(f.status().lastIndex, 2, 'the stale leader appended nothing');
    assert.equal(f.status().commitIndex, 0, 'the stale leader committed nothing');
    assert.equal(f.status().votedFor, NO_VOTE);
  });
});

// ============================================================================== stale replies

describe('stale replies are dropped', () => {
  test('a RequestVoteReply of an older term does not count as a vote (§5.1)', () => {
    const c = makeCore(0, 3, { random: FIXED, restored: restoredState(1, NO_VOTE, []) });
    tickN(c, ET_MIN);
    cycle(c);
    assert.equal(c.term, 2);
    c.step(rvr(1, 0, 1, true));
    c.step(rvr(2, 0, 1, true));
    assert.equal(c.status().role, 'candidate');
    assert.equal(c.hasReady(), false);
    // The same grant in the current term does elect it.
    c.step(rvr(1, 0, 2, true));
    assert.equal(c.isLeader, true);
  });

  test('late vote grants reaching an ex-candidate that already follows the winner of the same term are ignored (§5.2)', () => {
    const c = makeCore(0, 3, { random: FIXED });
    tickN(c, ET_MIN);
    cycle(c);
    assert.equal(c.status().role, 'candidate');
    c.step(ae(2, 0, 1, 0, 0, [], 0)); // node 2 won term 1
    cycle(c);
    c.step(rvr(1, 0, 1, true));
    c.step(rvr(2, 0, 1, true));
    const status = c.status();
    assert.equal(status.role, 'follower');
    assert.equal(status.leaderId, 2);
    assert.equal(c.hasReady(), false);
  });

  test('an AppendEntriesReply of an older term changes nothing at a leader (§5.1)', () => {
    const leader = makeLeader(3, restoredState(2, NO_VOTE, log(1, 2)));
    assert.equal(leader.term, 3);
    const before = leader.status();
    leader.step(aer(1, 0, 2, true, 2, 2));
    leader.step(aer(2, 0, 2, true, 2, 2));
    leader.step({ ...aer(1, 0, 2, false, 2, 0, 0), conflictTerm: 0 });
    const after = leader.status();
    assert.deepEqual(after.progress, before.progress);
    assert.equal(after.commitIndex, 0);
    assert.equal(leader.hasReady(), false, 'nothing to send in answer');
  });

  test('an AppendEntriesReply reaching a restarted ex-leader (same term, now follower) changes nothing', () => {
    // It led term 3 before the crash; after restart it is a follower of term 3.
    const node = makeCore(0, 3, { restored: restoredState(3, 0, log(1, 3, 3)) });
    node.step(aer(1, 0, 3, true, 0, 3));
    node.step(aer(2, 0, 3, true, 0, 3));
    node.step(aer(2, 0, 3, false, 3, 0, 1));
    const status = node.status();
    assert.equal(status.role, 'follower');
    assert.equal(status.commitIndex, 0);
    assert.equal(status.progress.size, 0);
    assert.equal(node.hasReady(), false);
  });

  test('THE classic bug: a leader of term T, now follower in T+1, ignores delayed term-T success replies (§5.1, §5.4.2)', () => {
    const c = new Cluster(3, { seed: 7, preVote: false });
    c.elect(0);
    assert.equal(c.core(0).term, 1);
    // Hold back every AppendEntriesReply to node 0: the followers get the entries, node 0 does not hear.
    const held: AppendEntriesReply[] = [];
    c.drop = (m) => {
      if (m.type === 'AppendEntriesReply' && m.to === 0) {
        held.push(m);
        return true;
      }
      return false;
    };
    for (const cmd of ['a', 'b', 'c']) c.propose(0, cmd);
    c.deliverAll();
    assert.equal(c.core(0).status().commitIndex, 0);
    assert.deepEqual(
      held.filter((m) => m.success).map((m) => [m.from, m.term, m.matchIndex]),
      [
        [1, 1, 3],
        [2, 1, 3],
      ],
    );
    // Node 1 takes over in term 2; node 0 becomes its follower.
    c.drop = () => false;
    c.elect(1);
    assert.equal(c.core(0).status().role, 'follower');
    assert.equal(c.core(0).term, 2);
    const sentBefore = c.sent.length;
    // The delayed term-1 acknowledgements arrive, plus one with an absurd matchIndex.
    for (const reply of held) c.core(0).step(reply);
    c.core(0).step(aer(2, 0, 1, true, 3, 1_000));
    c.collectAll();
    const status = c.core(0).status();
    assert.equal(status.role, 'follower');
    assert.equal(status.term, 2);
    assert.equal(status.commitIndex, 0, 'must not commit from replies to a leadership it lost');
    assert.equal(status.progress.size, 0);
    assert.deepEqual(c.applied[0], []);
    assert.deepEqual(
      c.sent.slice(sentBefore).filter((s) => s.message.from === 0),
      [],
      'must not send anything as leader',
    );
  });

  test('a leader of term T+2 does not count a term-T success reply (§5.1, §5.4.2)', () => {
    // Index 1 (term 1) is on every node; node 0 leads term 3 and appends index 2 (term 3).
    const leader = makeLeader(3, restoredState(2, NO_VOTE, log(1)));
    assert.equal(leader.term, 3);
    assert.deepEqual(leader.propose(bytes('new')), { index: 2, term: 3 });
    cycle(leader);
    // Term-1 "acknowledgements" of index 2 from both followers must not commit the term-3 entry.
    leader.step(aer(1, 0, 1, true, 1, 2));
    leader.step(aer(2, 0, 1, true, 1, 2));
    const status = leader.status();
    assert.equal(status.commitIndex, 0);
    assert.equal(status.progress.get(1)?.match, 0);
    assert.equal(status.progress.get(2)?.match, 0);
    assert.equal(leader.hasReady(), false);
    // Control: one current-term acknowledgement commits it.
    leader.step(aer(1, 0, 3, true, 1, 2));
    assert.equal(leader.status().commitIndex, 2);
  });
});

// ===================================================================== AppendEntries receiver

describe('AppendEntries consistency check (§5.3)', () => {
  // Follower log: index 1 2 3 4 5, terms 1 1 2 2 2; current term 3.
  const follower = (): RaftCore => makeCore(1, 3, { restored: restoredState(3, NO_VOTE, log(1, 1, 2, 2, 2)) });

  test('rejects when prevLogIndex is beyond the log: conflictTerm 0, lastLogIndex set', () => {
    const f = follower();
    f.step(ae(0, 1, 3, 9, 3, [ent(10, 3)], 0));
    const ready = cycle(f);
    assert.deepEqual(only(ofType(ready.messages, 'AppendEntriesReply')), {
      type: 'AppendEntriesReply',
      from: 1,
      to: 0,
      term: 3,
      success: false,
      prevLogIndex: 9,
      matchIndex: 0,
      conflictTerm: 0,
      conflictIndex: 0,
      lastLogIndex: 5,
      readContext: 0,
    });
    assert.equal(ready.logWrite, null);
    assert.equal(f.status().leaderId, 0, 'the rejection still recognises the leader');
  });

  test('rejects on a term mismatch at prevLogIndex: conflictTerm and its first index', () => {
    const f = follower();
    f.step(ae(0, 1, 3, 4, 3, [ent(5, 3)], 0));
    const ready = cycle(f);
    const reply = only(ofType(ready.messages, 'AppendEntriesReply'));
    assert.equal(reply.success, false);
    assert.equal(reply.prevLogIndex, 4);
    assert.equal(reply.conflictTerm, 2);
    assert.equal(reply.conflictIndex, 3);
    assert.equal(reply.lastLogIndex, 5);
    assert.equal(ready.logWrite, null, 'a rejected request changes nothing');
    assert.equal(f.status().lastIndex, 5);
  });

  test('accepts on a match, truncates the conflicting suffix and replies with matchIndex', () => {
    const f = follower();
    f.step(ae(0, 1, 3, 2, 1, [ent(3, 3), ent(4, 3)], 0));
    const ready = cycle(f);
    const reply = only(ofType(ready.messages, 'AppendEntriesReply'));
    assert.equal(reply.success, true);
    assert.equal(reply.matchIndex, 4);
    assert.deepEqual(
      ready.logWrite?.entries.map((e) => [e.index, e.term]),
      [
        [3, 3],
        [4, 3],
      ],
    );
    assert.equal(ready.logWrite?.fromIndex, 3);
    assert.equal(f.status().lastIndex, 4);
    assert.equal(f.entryAt(5), undefined);
  });

  test('a delayed shorter AppendEntries of the same term does not truncate what a longer one added', () => {
    const f = makeCore(1, 3, { restored: restoredState(1, NO_VOTE, []) });
    f.step(ae(0, 1, 1, 0, 0, log(1, 1, 1), 0));
    cycle(f);
    f.step(ae(0, 1, 1, 0, 0, log(1), 0));
    const ready = cycle(f);
    assert.equal(f.status().lastIndex, 3);
    assert.equal(ready.logWrite, null);
    assert.equal(only(ofType(ready.messages, 'AppendEntriesReply')).matchIndex, 1);
  });

  test('a candidate receiving AppendEntries of its own term becomes a follower (§5.2)', () => {
    const c = makeCore(0, 3, { random: FIXED });
    tickN(c, ET_MIN);
    cycle(c);
    c.step(ae(2, 0, 1, 0, 0, [], 0));
    const ready = cycle(c);
    assert.equal(c.status().role, 'follower');
    assert.equal(c.status().leaderId, 2);
    assert.equal(c.term, 1);
    assert.equal(c.status().votedFor, 0, 'it keeps its own vote of this term');
    assert.equal(only(ofType(ready.messages, 'AppendEntriesReply')).success, true);
  });

  test('an AppendEntries from a second leader of our term is dropped and counted, never obeyed', () => {
    const leader = makeLeader(3);
    const term = leader.term;
    leader.step(ae(2, 0, term, 0, 0, [], 0));
    assert.equal(leader.isLeader, true, 'still the leader');
    assert.equal(leader.droppedMessages().get('second-leader'), 1);
    assert.equal(leader.hasReady(), false, 'no answer to it');
  });
});

// ===================================================================== fast backtracking

describe('log repair (§5.3, fast backtracking)', () => {
  test('a follower diverging across T terms is repaired in at most T+2 AppendEntries', () => {
    const T = 4;
    const PER_TERM = 3;
    const F = 2;
    const c = new Cluster(3, { seed: 3, preVote: false });
    // Common, committed prefix.
    c.elect(0);
    c.propose(0, 'base1');
    c.propose(0, 'base2');
    c.deliverAll();
    c.settle();
    assert.deepEqual(c.applied.map((a) => a.length), [2, 2, 2]);

    // T times: F wins an election, appends PER_TERM entries nobody else receives, and loses the
    // leadership to node 0 (which appends nothing, so that F can win again next round).
    c.drop = (m) => m.type === 'AppendEntries' && (m.from === F || m.to === F);
    for (let k = 0; k < T; k++) {
      c.elect(F);
      for (let i = 0; i < PER_TERM; i++) c.propose(F, `stale-${k}-${i}`);
      c.deliverAll();
      c.elect(0);
    }
    const fTerms = new Set(range(T * PER_TERM).map((i) => c.core(F).entryAt(3 + i)!.term));
    assert.equal(fTerms.size, T, `F's divergent tail spans ${T} terms: ${c.shape(F)}`);

    // Node 0 appends a longer run of its own term, replicated to node 1 only; then node 1 takes
    // over so that it starts probing F from the end of its (long) log.
    const N = T * PER_TERM + 3;
    for (let i = 0; i < N; i++) c.propose(0, `good-${i}`);
    c.deliverAll();
    c.elect(1);
    const L = c.core(1);
    const lastIndex = L.status().lastIndex;
    assert.equal(lastIndex, 2 + N);
    assert.equal(c.core(F).status().lastIndex, 2 + T * PER_TERM);

    // Heal and let the leader's heartbeat start the repair; count its AppendEntries to F.
    c.drop = () => false;
    const mark = c.delivered.length;
    for (let i = 0; i < HB && c.queue.length === 0; i++) c.tick([1]);
    c.deliverAll(() => L.status().progress.get(F)?.match === lastIndex);
    assert.equal(L.status().progress.get(F)?.match, lastIndex, 'F caught up');
    const appends = c.delivered.slice(mark).filter((m) => m.type === 'AppendEntries' && m.from === 1 && m.to === F);
    assert.ok(appends.length <= T + 2, `repair took ${appends.length} AppendEntries, more than T+2 = ${T + 2}`);
    // One-entry-at-a-time backtracking would need T*PER_TERM+ round trips.
    assert.ok(appends.length >= 2);

    c.deliverAll();
    assert.equal(c.shape(F), c.shape(1));
    c.settle();
    assert.equal(c.core(F).status().commitIndex, L.status().commitIndex);
    assert.deepEqual(c.applied[F]!.map(text), c.applied[1]!.map(text));
  });

  test('a follower that is merely behind is caught up in one round trip after the probe', () => {
    const c = new Cluster(3, { seed: 5, preVote: false });
    c.elect(0);
    c.isolated.add(2);
    for (let i = 0; i < 20; i++) c.propose(0, `x${i}`);
    c.deliverAll();
    assert.equal(c.core(2).status().lastIndex, 0);
    c.isolated.clear();
    const mark = c.delivered.length;
    for (let i = 0; i < HB && c.queue.length === 0; i++) c.tick([0]);
    c.deliverAll(() => c.core(0).status().progress.get(2)?.match === 20);
    const appends = c.delivered.slice(mark).filter((m) => m.type === 'AppendEntries' && m.to === 2);
    // Node 2 acknowledged nothing in this term, so the leader probes from index 0 already after
    // the first lost attempt, or from after its log end (one rejection) — at most two either way.
    assert.ok(appends.length <= 2, `took ${appends.length}`);
  });
});

// ============================================================================ commit rules

describe('commit (§5.3, §5.4.2)', () => {
  test('a leader does not commit an older-term entry by counting replicas, only with a current-term entry (§5.4.2)', () => {
    // Node 0 holds 2@2 that the others lack; it becomes leader of term 3 and replicates it everywhere.
    const c = new Cluster(3, {
      seed: 11,
      preVote: false,
      restored: [
        restoredState(2, NO_VOTE, log(1, 2)),
        restoredState(2, NO_VOTE, log(1)),
        restoredState(2, NO_VOTE, log(1)),
      ],
    });
    c.elect(0);
    assert.equal(c.core(0).term, 3);
    c.deliverAll();
    for (const id of [0, 1, 2]) {
      assert.equal(c.shape(id), '1,2', `node ${id} holds the old-term entry`);
      assert.equal(c.core(id).status().commitIndex, 0, `node ${id} must not commit by counting replicas`);
    }
    assert.equal(c.core(0).status().progress.get(1)?.match, 2);
    assert.equal(c.core(0).status().progress.get(2)?.match, 2);
    // A current-term entry commits it together with everything before it.
    c.propose(0, 'now');
    c.deliverAll();
    c.settle();
    for (const id of [0, 1, 2]) {
      assert.equal(c.core(id).status().commitIndex, 3);
      assert.deepEqual(c.applied[id]!.map((e) => e.term), [1, 2, 3]);
    }
  });

  test('Figure 8: an old-term entry on a majority is not committed and can be overwritten safely (§5.4.2)', () => {
    // S1..S5 = nodes 0..4. Any InvariantError (truncating a committed entry) or a harness safety
    // failure (two different entries applied at one index) would fail the test.
    const c = new Cluster(5, { seed: 8, preVote: false });
    c.elect(0);
    c.propose(0, 'first');
    c.deliverAll();
    c.settle();
    assert.deepEqual(c.applied.map((a) => a.length), [1, 1, 1, 1, 1]);
    // (a) S1 leads and gets index 2 onto S2 only.
    for (const id of [2, 3, 4]) c.isolated.add(id);
    c.propose(0, 'S1-term1');
    c.deliverAll();
    assert.equal(c.shape(1), '1,1');
    // (b) S1 crashes; S5 is elected (S3, S4, S5) and appends index 2 of its term, then crashes.
    c.isolated.clear();
    c.isolated.add(0);
    c.elect(4);
    const s5term = c.core(4).term;
    c.isolated.add(4);
    c.propose(4, 'S5-only');
    c.deliverAll();
    assert.equal(c.shape(4), `1,${s5term}`);
    // (c) S1 restarts, is elected (S1, S2, S3) and replicates its index 2 onto S3: a majority.
    c.isolated.clear();
    for (const id of [3, 4]) c.isolated.add(id);
    c.restart(0);
    c.elect(0);
    c.deliverAll();
    assert.equal(c.shape(2), '1,1', 'S3 now holds the old-term entry');
    assert.equal(c.core(0).status().progress.get(2)?.match, 2);
    // commitIndex is volatile: the restarted S1 may not even re-commit index 1 (term 1) until it
    // has an entry of its own term — and index 2, though on a majority, must stay uncommitted.
    assert.equal(c.core(0).status().commitIndex, 0, 'an old-term entry on a majority is not committed');
    assert.deepEqual(c.applied[0], []);
    // (d) S1 crashes; S5 restarts, is elected (S2, S3, S4, S5) and overwrites index 2 everywhere.
    c.isolated.clear();
    c.isolated.add(0);
    c.restart(4);
    c.elect(4);
    c.propose(4, 'S5-new');
    c.deliverAll();
    c.isolated.clear();
    c.run(2 * HB);
    for (const id of range(5)) {
      assert.equal(c.core(id).entryAt(2)?.term, s5term, `node ${id} index 2`);
      assert.equal(text(c.core(id).entryAt(2)!), 'S5-only');
      assert.equal(c.core(id).status().commitIndex, 3);
    }
  });

  test('a follower commits min(leaderCommit, index of last new entry) (§5.3, AppendEntries rule 5)', () => {
    const f = makeCore(1, 3);
    f.step(ae(0, 1, 1, 0, 0, log(1, 1), 5));
    const ready = cycle(f);
    assert.equal(f.status().commitIndex, 2);
    assert.deepEqual(ready.committed.map((e) => e.index), [1, 2]);
    assert.ok(ready.logWrite !== null, 'the entries are persisted in the same Ready as they are applied');
  });

  test('a follower does not commit entries beyond what the request proved to match', () => {
    // Indices 2 and 3 are leftovers of an old term the leader may not have.
    const f = makeCore(1, 3, { restored: restoredState(2, NO_VOTE, log(1, 1, 1)) });
    f.step(ae(0, 1, 3, 1, 1, [], 3)); // heartbeat anchored at index 1, leaderCommit 3
    cycle(f);
    assert.equal(f.status().commitIndex, 1);
  });

  test('commitIndex never decreases on a follower (stale leaderCommit)', () => {
    const f = makeCore(1, 3);
    f.step(ae(0, 1, 1, 0, 0, log(1, 1, 1), 3));
    cycle(f);
    assert.equal(f.status().commitIndex, 3);
    f.step(ae(0, 1, 1, 1, 1, [], 1));
    f.step(ae(0, 1, 1, 0, 0, log(1), 0));
    const ready = cycle(f);
    assert.equal(f.status().commitIndex, 3);
    assert.equal(f.status().appliedIndex, 3);
    assert.deepEqual(ready.committed, []);
  });

  test('a 5-node leader commits with 3 acknowledgements, not 2 (§5.3 majority)', () => {
    const leader = makeLeader(5);
    leader.propose(bytes('x'));
    cycle(leader);
    leader.step(aer(1, 0, 1, true, 0, 1));
    assert.equal(leader.status().commitIndex, 0);
    leader.step(aer(2, 0, 1, true, 0, 1));
    assert.equal(leader.status().commitIndex, 1);
  });

  test("a leader does not count itself before its own write is durable (advance)", () => {
    const leader = makeLeader(3);
    leader.propose(bytes('x'));
    const ready = leader.ready();
    assert.ok(ready.logWrite !== null);
    leader.advance(ready);
    // Durable on the leader; one follower acknowledgement makes a majority of 3.
    leader.step(aer(1, 0, 1, true, 0, 1));
    assert.equal(leader.status().commitIndex, 1);
  });
});

// ================================================================================= elections

describe('elections (§5.2)', () => {
  for (const [n, preVote] of [
    [3, true],
    [5, true],
    [3, false],
    [5, false],
  ] as const) {
    test(`one leader emerges in a ${n}-node cluster within 3 * electionTimeoutTicksMax ticks (preVote ${preVote})`, () => {
      for (let seed = 1; seed <= 30; seed++) {
        const c = new Cluster(n, { seed, preVote });
        let electedAt = -1;
        for (let t = 1; t <= 3 * ET_MAX && electedAt < 0; t++) {
          c.tick();
          c.deliverAll();
          if (c.leaders().length > 0) electedAt = t;
        }
        assert.ok(electedAt > 0, `seed ${seed}: no leader after ${3 * ET_MAX} ticks`);
        const leaders = c.leaders();
        assert.equal(leaders.length, 1, `seed ${seed}: leaders ${leaders.join(',')}`);
        const leader = leaders[0]!;
        for (const core of c.cores) {
          assert.equal(core.term, c.core(leader).term, `seed ${seed}: node ${core.id} term`);
          assert.equal(core.status().leaderId, leader, `seed ${seed}: node ${core.id} knows the leader`);
        }
        // And it stays leader without failures.
        c.run(3 * ET_MAX);
        assert.deepEqual(c.leaders(), [leader], `seed ${seed}: leadership changed without failures`);
      }
    });
  }

  test('no two leaders in one term over 200 seeds with drops, reordering, duplication, partitions, restarts and late disk writes; convergence after healing', () => {
    let elections = 0;
    let commits = 0;
    let lostWrites = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const faults = new Prng(seed * 7919);
      const n = seed % 2 === 0 ? 3 : 5;
      // Half the seeds with the library default (pre-vote on), half with the paper's elections.
      // A third of them with disks that finish writes late, so that a restart may lose one.
      const deferred = seed % 3 === 0;
      const c = new Cluster(n, {
        seed,
        ...(seed % 4 < 2 ? {} : { preVote: false }),
        ...(deferred ? { writes: 'deferred' as const } : {}),
      });
      if (deferred) c.autoSyncPerMille = 300;
      const dropPerMille = 50 + (seed % 4) * 100;
      c.drop = () => faults.chance(dropPerMille, 1000);
      c.shuffle = faults;
      c.duplicatePerMille = 50;
      let proposals = 0;
      for (let t = 0; t < 400; t++) {
        if (faults.chance(20, 1000)) {
          c.isolated.clear();
          if (faults.chance(7, 10)) c.isolated.add(faults.nextInt(n));
        }
        if (faults.chance(5, 1000)) {
          const victim = faults.nextInt(n);
          if (c.node(victim).writePending) lostWrites++;
          c.restart(victim);
        }
        c.tick();
        if (faults.chance(2, 10)) {
          for (const id of c.leaders()) c.core(id).propose(bytes(`s${seed}-p${proposals++}`));
        }
        // Safety is checked by the harness after every single delivery.
        c.deliverAll();
      }
      // Heal everything: the cluster must converge — one leader, and every node applies everything.
      c.isolated.clear();
      c.drop = () => false;
      c.duplicatePerMille = 0;
      if (deferred) c.autoSyncPerMille = 1000;
      c.run(4 * ET_MAX);
      const leader = only(c.leaders());
      c.propose(leader, `s${seed}-final`);
      c.run(2 * HB);
      const lastIndex = c.core(leader).status().lastIndex;
      for (const id of range(n)) {
        assert.equal(c.core(id).status().lastIndex, lastIndex, `seed ${seed}: node ${id} log converged`);
        assert.equal(c.applied[id]!.length, lastIndex, `seed ${seed}: node ${id} applied everything`);
      }
      elections += c.leaderOfTerm.size;
      commits += c.committed.size;
      // Log matching on what was applied: every node's applied sequence is a prefix of the committed one.
      for (const id of range(n)) {
        c.applied[id]!.forEach((entry, i) => {
          const committed = c.committed.get(i + 1);
          assert.equal(entry.term, committed?.term, `seed ${seed} node ${id} index ${i + 1}`);
          assert.equal(text(entry), committed && text(committed), `seed ${seed} node ${id} index ${i + 1}`);
        });
      }
    }
    // The run must actually have exercised something.
    assert.ok(elections > 250, `only ${elections} leaderships`);
    assert.ok(commits > 1000, `only ${commits} commits`);
    assert.ok(lostWrites > 0, 'no restart ever lost an outstanding write');
  });
});

// ================================================================================== pre-vote

describe('pre-vote (Raft thesis §9.6; on by default)', () => {
  test('a timed-out follower past term 0 becomes a precandidate: asks about term+1 without raising or persisting its term', () => {
    const f = makeCore(0, 3, { random: FIXED, preVote: true, restored: restoredState(4, 2, log(1, 4)) });
    tickN(f, ET_MIN);
    assert.equal(f.status().role, 'precandidate');
    assert.equal(f.term, 4);
    const ready = cycle(f);
    assert.equal(ready.hardState, null, 'a pre-vote round changes no durable state');
    assert.deepEqual(
      ofType(ready.messages, 'PreVote').map((m) => [m.to, m.term, m.lastLogIndex, m.lastLogTerm]),
      [
        [1, 5, 2, 4],
        [2, 5, 2, 4],
      ],
    );
    assert.equal(ofType(ready.messages, 'RequestVote').length, 0);
  });

  test('a majority of granted pre-votes starts the real election; stale or refused ones do not', () => {
    const f = makeCore(0, 3, { random: FIXED, preVote: true, restored: restoredState(4, NO_VOTE, log(1, 4)) });
    tickN(f, ET_MIN);
    cycle(f);
    f.step({ type: 'PreVoteReply', from: 1, to: 0, term: 4, voteGranted: true }); // about the wrong term
    f.step({ type: 'PreVoteReply', from: 2, to: 0, term: 4, voteGranted: false });
    assert.equal(f.status().role, 'precandidate');
    assert.equal(f.term, 4);
    f.step({ type: 'PreVoteReply', from: 1, to: 0, term: 5, voteGranted: true });
    assert.equal(f.status().role, 'candidate');
    assert.equal(f.term, 5);
    const ready = cycle(f);
    assert.deepEqual(ready.hardState, { term: 5, votedFor: 0 });
    assert.equal(ofType(ready.messages, 'RequestVote').length, 2);
  });

  test('a follower that heard from its leader within the minimum election timeout refuses a pre-vote', () => {
    const f = makeCore(1, 3, { random: FIXED, preVote: true });
    f.step(ae(0, 1, 3, 0, 0, [], 0));
    cycle(f);
    tickN(f, ET_MIN - 1);
    f.step({ type: 'PreVote', from: 2, to: 1, term: 4, lastLogIndex: 5, lastLogTerm: 3 });
    const ready = cycle(f);
    assert.deepEqual(only(ofType(ready.messages, 'PreVoteReply')), {
      type: 'PreVoteReply',
      from: 1,
      to: 2,
      term: 3,
      voteGranted: false,
    });
    assert.equal(ready.hardState, null);
    assert.equal(f.term, 3, 'a pre-vote request does not move the term');
  });

  test('a follower without a live leader grants a pre-vote, echoing the asked term, without changing its own state', () => {
    const f = makeCore(1, 3, { random: FIXED, preVote: true, restored: restoredState(3, 0, log(1, 3)) });
    f.step({ type: 'PreVote', from: 2, to: 1, term: 4, lastLogIndex: 2, lastLogTerm: 3 });
    f.step({ type: 'PreVote', from: 0, to: 1, term: 4, lastLogIndex: 5, lastLogTerm: 1 }); // stale log
    const ready = cycle(f);
    assert.deepEqual(
      ofType(ready.messages, 'PreVoteReply').map((m) => [m.to, m.term, m.voteGranted]),
      [
        [2, 4, true],
        [0, 3, false],
      ],
    );
    assert.equal(ready.hardState, null);
    assert.equal(f.term, 3);
    assert.equal(f.status().votedFor, 0);
  });

  test('a partitioned follower rejoins without raising terms or deposing the leader', () => {
    const c = new Cluster(3, { seed: 13 });
    c.run(3 * ET_MAX);
    const leader = only(c.leaders());
    const term = c.core(leader).term;
    const loner = (leader + 1) % 3;
    c.isolated.add(loner);
    c.run(10 * ET_MAX);
    assert.equal(c.core(loner).term, term, 'an isolated node never wins a pre-vote, so its term stays');
    assert.equal(c.core(loner).status().role, 'precandidate');
    c.isolated.clear();
    c.run(2 * HB);
    assert.deepEqual(c.leaders(), [leader]);
    for (const core of c.cores) assert.equal(core.term, term, `node ${core.id}`);
    assert.equal(c.core(loner).status().leaderId, leader);
  });
});

// ================================================================================= proposals

describe('propose (§5.3)', () => {
  test('propose on a follower or candidate returns null and appends nothing', () => {
    const f = makeCore(1, 3, { random: FIXED });
    assert.equal(f.propose(bytes('x')), null);
    tickN(f, ET_MIN);
    assert.equal(f.status().role, 'candidate');
    assert.equal(f.propose(bytes('x')), null);
    assert.equal(f.status().lastIndex, 0);
  });

  test('propose on a leader returns consecutive indices in its term', () => {
    const leader = makeLeader(3, restoredState(4, NO_VOTE, log(1, 2, 4)));
    assert.equal(leader.term, 5);
    assert.deepEqual(leader.propose(bytes('a')), { index: 4, term: 5 });
    assert.deepEqual(leader.propose(bytes('b')), { index: 5, term: 5 });
    cycle(leader);
    assert.deepEqual(leader.propose(bytes('c')), { index: 6, term: 5 });
    assert.equal(text(leader.entryAt(5)!), 'b');
  });

  test('proposals made before one ready() travel in ONE AppendEntries per follower (batching)', () => {
    const c = new Cluster(3, { seed: 2, preVote: false });
    c.elect(0);
    for (const id of [1, 2]) assert.equal(c.core(0).status().progress.get(id)?.state, 'replicate');
    for (const cmd of ['a', 'b', 'c']) c.propose(0, cmd);
    const ready = only(c.collect(0));
    const appends = ofType(allMessages(ready), 'AppendEntries');
    assert.deepEqual(
      appends.map((m) => [m.to, m.prevLogIndex, m.entries.map(text)]),
      [
        [1, 0, ['a', 'b', 'c']],
        [2, 0, ['a', 'b', 'c']],
      ],
    );
    assert.deepEqual(ready.logWrite?.entries.map(text), ['a', 'b', 'c']);
    c.deliverAll();
    c.settle();
    assert.deepEqual(c.applied.map((a) => a.map(text).join('')), ['abc', 'abc', 'abc']);
  });

  test('a large batch is split by appendBytesMax but every entry gets through', () => {
    const c = new Cluster(3, { seed: 4, preVote: false });
    c.elect(0);
    const big = 'x'.repeat(DEFAULT_TIMING.appendBytesMax / 2 + 1);
    for (let i = 0; i < 4; i++) c.propose(0, big + i);
    const ready = only(c.collect(0));
    const appends = ofType(allMessages(ready), 'AppendEntries');
    assert.equal(appends.length, 2, 'one AppendEntries per follower');
    for (const m of appends) assert.equal(m.entries.length, 1);
    c.deliverAll();
    c.settle();
    assert.deepEqual(c.applied.map((a) => a.length), [4, 4, 4]);
  });
});

// ================================================================================ heartbeats

describe('heartbeats (§5.2)', () => {
  test('an idle leader sends each follower at most one message per heartbeatIntervalTicks', () => {
    const c = new Cluster(3, { seed: 9 });
    c.run(3 * ET_MAX);
    const leader = only(c.leaders());
    c.propose(leader, 'x');
    c.deliverAll();
    c.run(HB);
    const mark = c.sent.length;
    const startTick = c.now;
    c.run(10 * HB);
    assert.deepEqual(c.leaders(), [leader]);
    const fromLeader = c.sent.slice(mark).filter((s) => s.message.from === leader);
    for (const follower of range(3).filter((id) => id !== leader)) {
      const ticks = fromLeader.filter((s) => s.message.to === follower).map((s) => s.tick - startTick);
      assert.equal(ticks.length, 10, `follower ${follower}: messages at ticks ${ticks.join(',')}`);
      for (let i = 1; i < ticks.length; i++) {
        assert.ok(ticks[i]! - ticks[i - 1]! >= HB, `follower ${follower}: two messages within ${HB} ticks`);
      }
    }
    // Nobody else talks, and the followers learnt the commit index from heartbeats.
    assert.equal(c.sent.slice(mark).filter((s) => s.message.type === 'RequestVote').length, 0);
    for (const core of c.cores) assert.equal(core.status().commitIndex, 1);
  });

  test('a leader probes a follower it never reached once per heartbeat, not once per proposal', () => {
    const c = new Cluster(3, { seed: 10, preVote: false });
    c.isolated.add(2);
    c.elect(0);
    assert.equal(c.core(0).status().progress.get(2)?.state, 'probe');
    const mark = c.sent.length;
    for (let t = 0; t < 5 * HB; t++) {
      c.propose(0, `p${t}`);
      c.tick();
      c.deliverAll();
    }
    const toIsolated = c.sent.slice(mark).filter((s) => s.message.from === 0 && s.message.to === 2);
    assert.ok(toIsolated.length <= 6, `${toIsolated.length} messages to an unreachable follower`);
    assert.ok(toIsolated.length >= 4, 'it must keep trying');
    // Once reachable, it catches up.
    c.isolated.clear();
    c.run(HB);
    assert.equal(c.core(2).status().lastIndex, 5 * HB);
  });

  test('one AppendEntries lost in the middle of a stream is repaired by the next rejection, not a timeout (§5.3)', () => {
    const c = new Cluster(3, { seed: 14, preVote: false });
    c.elect(0);
    assert.equal(c.core(0).status().progress.get(2)?.state, 'replicate');
    c.propose(0, 'a');
    c.deliverAll();
    let lost = 0;
    c.drop = (m) => {
      if (lost > 0 || m.type !== 'AppendEntries' || m.to !== 2 || m.entries.length === 0) return false;
      lost++;
      return true;
    };
    c.propose(0, 'b'); // lost
    c.deliverAll();
    assert.equal(lost, 1);
    const mark = c.delivered.length;
    c.propose(0, 'c'); // rejected: node 2 lacks 'b'
    c.deliverAll();
    const rejections = c.delivered.slice(mark).filter((m) => m.type === 'AppendEntriesReply' && m.from === 2 && !m.success);
    assert.equal(rejections.length, 1);
    assert.equal(c.core(2).status().lastIndex, 3, 'repaired without a single tick');
    assert.equal(text(c.core(2).entryAt(2)!), 'b');
    c.settle();
    assert.deepEqual(c.applied[2]!.map(text), ['a', 'b', 'c']);
  });
});

// ============================================================================= ready/advance

describe('ready/advance contract', () => {
  test('ready() twice without advance() throws', () => {
    const f = makeCore(1, 3);
    f.step(rv(0, 1, 1, 0, 0));
    f.ready();
    assert.throws(() => f.ready(), InvariantError);
  });

  test('step() and tick() between ready() and advance() throw; propose() is allowed and stays unstable', () => {
    const leader = makeLeader(3);
    leader.propose(bytes('x'));
    const ready = leader.ready();
    assert.throws(() => leader.step(aer(1, 0, 1, true, 0, 1)), InvariantError);
    assert.throws(() => leader.tick(), InvariantError);
    assert.deepEqual(leader.propose(bytes('y')), { index: 2, term: leader.term });
    leader.advance(ready);
    leader.step(aer(1, 0, 1, true, 0, 1));
    assert.equal(leader.status().commitIndex, 1);
    // The entry proposed mid-Ready is written by the next Ready, not counted as durable before.
    const next = leader.ready();
    assert.equal(next.logWrite?.fromIndex, 2);
    assert.deepEqual(next.logWrite?.entries.map((e) => e.index), [2]);
    leader.advance(next);
  });

  test('advance() with a Ready other than the last one throws', () => {
    const f = makeCore(1, 3);
    f.step(rv(0, 1, 1, 0, 0));
    const first = f.ready();
    f.advance(first);
    f.step(rv(0, 1, 1, 0, 0));
    f.ready();
    assert.throws(() => f.advance(first), InvariantError);
  });

  test('a single-node cluster elects itself and commits its proposals after advance', () => {
    const solo = makeCore(0, 1, { random: FIXED });
    tickN(solo, ET_MIN);
    assert.equal(solo.isLeader, true);
    assert.equal(solo.term, 1);
    const election = cycle(solo);
    assert.deepEqual(election.hardState, { term: 1, votedFor: 0 });
    assert.deepEqual(allMessages(election), []);
    assert.deepEqual(solo.propose(bytes('a')), { index: 1, term: 1 });
    assert.deepEqual(solo.propose(bytes('b')), { index: 2, term: 1 });
    const write = solo.ready();
    assert.deepEqual(write.committed, [], 'nothing commits before the leader\'s own write is durable');
    assert.deepEqual(write.logWrite?.entries.map(text), ['a', 'b']);
    persistByHand(solo, write);
    solo.advance(write);
    assert.equal(solo.status().commitIndex, 2);
    const apply = cycle(solo);
    assert.deepEqual(apply.committed.map(text), ['a', 'b']);
    assert.equal(solo.status().appliedIndex, 2);
    assert.equal(solo.hasReady(), false);
  });
});

// ========================================================================= persistence order

describe('persistence order: what may leave before the write (thesis §10.2.1)', () => {
  const types = (messages: readonly Message[]): string[] => [...new Set(messages.map((m) => m.type))].sort();

  test("messages are classified: a leader's AppendEntries and InstallSnapshot may leave before the write, votes and replies only after", () => {
    // Candidate: RequestVote waits for its own vote to be durable.
    const candidate = makeCore(0, 3, { random: FIXED });
    tickN(candidate, ET_MIN);
    const campaign = cycle(candidate);
    assert.deepEqual([types(campaign.messagesBeforePersist), types(campaign.messages)], [[], ['RequestVote']]);

    // Voter: the vote (granted or not) waits for the hardState.
    const voter = makeCore(1, 3);
    voter.step(rv(0, 1, 1, 0, 0));
    const vote = cycle(voter);
    assert.deepEqual([types(vote.messagesBeforePersist), types(vote.messages)], [[], ['RequestVoteReply']]);

    // Leader: its AppendEntries (heartbeats and entries) may leave at once.
    const leader = makeLeader(3);
    for (const peer of [1, 2]) leader.step(aer(peer, 0, 1, true, 0, 0)); // both answer the first heartbeat
    cycle(leader);
    leader.propose(bytes('a'));
    const append = cycle(leader);
    assert.ok(append.logWrite !== null);
    assert.deepEqual([types(append.messagesBeforePersist), types(append.messages)], [['AppendEntries'], []]);
    assert.equal(ofType(append.messagesBeforePersist, 'AppendEntries').length, 2);

    // Follower: the acknowledgement waits for the entries it acknowledges.
    const follower = makeCore(1, 3);
    follower.step(ae(0, 1, 1, 0, 0, [ent(1, 1)], 0));
    const ack = cycle(follower);
    assert.deepEqual([types(ack.messagesBeforePersist), types(ack.messages)], [[], ['AppendEntriesReply']]);

    // Leader with a compacted log: the snapshot chunk may leave at once; the follower's answer waits.
    leader.step(aer(1, 0, 1, true, 0, 1));
    cycle(leader); // applies entry 1
    leader.snapshot(1, bytes('s1'));
    cycle(leader);
    leader.step({ ...aer(2, 0, 1, false, 0, 0), lastLogIndex: 0 });
    const chunk = cycle(leader);
    assert.deepEqual([types(chunk.messagesBeforePersist), types(chunk.messages)], [['InstallSnapshot'], []]);
    const receiver = makeCore(2, 3);
    receiver.step(only(ofType(chunk.messagesBeforePersist, 'InstallSnapshot')));
    const installed = cycle(receiver);
    assert.ok(installed.snapshotWrite !== null);
    assert.deepEqual([types(installed.messagesBeforePersist), types(installed.messages)], [[], ['InstallSnapshotReply']]);

    // Pre-vote: request and answer both wait (they change no durable state, so nothing is held up).
    const pre = makeCore(0, 3, { random: FIXED, preVote: true, restored: restoredState(2, NO_VOTE, log(1, 2)) });
    tickN(pre, ET_MIN);
    const preVote = cycle(pre);
    assert.deepEqual([types(preVote.messagesBeforePersist), types(preVote.messages)], [[], ['PreVote']]);
    const preVoter = makeCore(1, 3, { preVote: true, restored: restoredState(2, NO_VOTE, log(1, 2)) });
    preVoter.step({ type: 'PreVote', from: 0, to: 1, term: 3, lastLogIndex: 2, lastLogTerm: 2 });
    const preVoteReply = cycle(preVoter);
    assert.deepEqual([types(preVoteReply.messagesBeforePersist), types(preVoteReply.messages)], [[], ['PreVoteReply']]);
  });

  test('ack-before-sync: the AppendEntriesReply is classified as safe to send early, and the fake disk catches the promise', () => {
    const inTerm1 = restoredState(1, NO_VOTE, []);
    const follower = makeCore(1, 3, { bugs: new Set(['ack-before-sync']), restored: inTerm1 });
    follower.step(ae(0, 1, 1, 0, 0, [ent(1, 1), ent(2, 1)], 0));
    const ready = follower.ready();
    assert.ok(ready.logWrite !== null);
    assert.deepEqual([types(ready.messagesBeforePersist), types(ready.messages)], [['AppendEntriesReply'], []]);
    // Run through the driver, the reply leaves before its entries are on the disk.
    const driven = makeCore(1, 3, { bugs: new Set(['ack-before-sync']), restored: inTerm1 });
    driven.step(ae(0, 1, 1, 0, 0, [ent(1, 1), ent(2, 1)], 0));
    assert.throws(() => cycle(driven), /node 1 acknowledges index 2 before persisting it/);
    // In a new term the reply would even carry a term the disk does not hold yet.
    const newTerm = makeCore(1, 3, { bugs: new Set(['ack-before-sync']) });
    newTerm.step(ae(0, 1, 1, 0, 0, [ent(1, 1)], 0));
    assert.throws(() => cycle(newTerm), /node 1 sends AppendEntriesReply in term 1 before persisting it/);
  });

  test('the driver sends messagesBeforePersist before the write completes and messages only after it', () => {
    const node = new DrivenCore({ config: makeConfig(0, 3, FIXED, false), writes: 'deferred' });
    const kinds = (from: number): string[] =>
      node.events.slice(from).map((e) => (e.kind === 'send' ? `send ${e.message.type}>${e.message.to}` : e.kind));

    // The campaign: the RequestVotes wait for the candidate's own vote.
    node.tick(ET_MIN);
    assert.deepEqual(kinds(0), ['write']);
    assert.equal(node.writePending, true);
    node.sync();
    assert.deepEqual(kinds(0), ['write', 'synced', 'send RequestVote>1', 'send RequestVote>2', 'advanced']);

    // Elected: a Ready without writes finishes at once.
    let mark = node.events.length;
    node.step(rvr(1, 0, 1, true));
    assert.equal(node.core.isLeader, true);
    assert.deepEqual(kinds(mark), ['send AppendEntries>1', 'send AppendEntries>2', 'advanced']);
    for (const peer of [1, 2]) node.step(aer(peer, 0, 1, true, 0, 0)); // both answer: entries will stream

    // One Ready with both kinds: entries to replicate, and a refusal of a stale candidate's vote.
    mark = node.events.length;
    node.core.propose(bytes('a'));
    node.step(rv(2, 0, 0, 0, 0));
    assert.deepEqual(kinds(mark), ['send AppendEntries>1', 'send AppendEntries>2', 'write'], 'the refusal waits for the write');
    // Inputs that arrive meanwhile wait too (the core takes no input while its Ready is outstanding).
    node.step(aer(1, 0, 1, true, 0, 1));
    assert.deepEqual(kinds(mark), ['send AppendEntries>1', 'send AppendEntries>2', 'write']);
    assert.equal(node.core.status().commitIndex, 0);
    node.sync();
    assert.deepEqual(kinds(mark), [
      'send AppendEntries>1',
      'send AppendEntries>2',
      'write',
      'synced',
      'send RequestVoteReply>2',
      'advanced',
      // The acknowledgement, fed after the write: entry 1 commits and is applied.
      'apply',
      'advanced',
    ]);
    assert.equal(node.core.status().commitIndex, 1);
  });

  /** A single-node leader with deferred writes, elected and with its vote durable. */
  function soloLeader(bugs?: ReadonlySet<InjectedBug>): DrivenCore {
    const base = makeConfig(0, 1, FIXED, false);
    const node = new DrivenCore({ config: bugs === undefined ? base : { ...base, [INJECTED_BUGS]: bugs }, writes: 'deferred' });
    node.tick(ET_MIN);
    node.syncAll();
    assert.equal(node.core.isLeader, true);
    return node;
  }

  test('a single-node leader commits its entry only once its own copy is durable', () => {
    const node = soloLeader();
    node.propose(bytes('a'));
    assert.equal(node.writePending, true);
    assert.equal(node.disk.lastIndex, 0);
    assert.equal(node.core.status().commitIndex, 0, 'the commit index must not pass the durable index');
    node.sync();
    assert.equal(node.disk.lastIndex, 1);
    assert.equal(node.core.status().commitIndex, 1);
    assert.deepEqual(node.events.filter((e) => e.kind === 'apply').map((e) => e.kind === 'apply' && text(e.entry)), ['a']);
  });

  for (const driverBugs of [undefined, new Set<DriverBug>(['leader-counts-unsynced'])]) {
    const title = driverBugs === undefined
      ? "a 3-node leader whose follower acknowledges before the leader's own write completes does not commit until it does"
      : 'driver bug leader-counts-unsynced: the leader commits and applies with one follower and its own unsynced copy';
    test(title, () => {
      const c = new Cluster(3, { seed: 21, preVote: false, writes: 'deferred', ...(driverBugs === undefined ? {} : { driverBugs }) });
      // Elect node 0 with every disk completing at once.
      const syncEveryone = (): void => {
        for (let i = 0; i < 100 && c.nodes.some((node) => node.writePending); i++) {
          for (const node of c.nodes) node.syncAll();
          c.deliverAll();
        }
      };
      for (let i = 0; i <= ET_MAX && !c.core(0).isLeader; i++) {
        c.tick([0]);
        syncEveryone();
      }
      assert.equal(c.core(0).isLeader, true);
      syncEveryone();

      c.propose(0, 'a');
      c.collect(0);
      assert.equal(c.node(0).writePending || driverBugs !== undefined, true, "the leader's write is outstanding");
      // The AppendEntries left before it; node 1 stores the entry and acknowledges it.
      c.isolated.add(2);
      if (driverBugs !== undefined) {
        // The bug: one follower and the leader's unsynced copy count as a majority, and the entry
        // is applied while the leader's copy is on no disk. The fake disk's check catches it.
        assert.throws(() => {
          c.deliverAll();
          c.node(1).syncAll();
          c.deliverAll();
        }, /applies entry 1 before it is durable/);
        return;
      }
      c.deliverAll();
      c.node(1).syncAll();
      c.deliverAll();
      assert.ok(c.delivered.some((m) => m.type === 'AppendEntriesReply' && m.from === 1 && m.matchIndex === 1), 'node 1 acknowledged');
      assert.equal(c.node(0).disk.lastIndex, 0);
      assert.equal(c.core(0).status().commitIndex, 0, 'one follower and an unsynced leader are not a majority');
      c.node(0).syncAll();
      assert.equal(c.core(0).status().commitIndex, 1, 'durable on the leader too: committed');
      assert.deepEqual(c.applied[0]!.map(text), ['a']);
    });
  }
});

// ================================================================================== restart

describe('restart from PersistentState (§5.2: currentTerm and votedFor are persistent)', () => {
  test('keeps term and vote, and does not vote twice in the same term', () => {
    const node = makeCore(1, 3, { restored: restoredState(5, 2, log(1, 3, 5)) });
    const status = node.status();
    assert.equal(status.term, 5);
    assert.equal(status.votedFor, 2);
    assert.equal(status.role, 'follower');
    assert.equal(status.lastIndex, 3);
    assert.equal(status.lastTerm, 5);
    assert.equal(status.commitIndex, 0, 'commitIndex is volatile');
    assert.equal(node.hasReady(), false, 'nothing to persist after a restart');
    node.step(rv(0, 1, 5, 10, 5));
    assert.deepEqual(only(ofType(cycle(node).messages, 'RequestVoteReply')), rvr(1, 0, 5, false));
    node.step(rv(2, 1, 5, 3, 5));
    assert.deepEqual(only(ofType(cycle(node).messages, 'RequestVoteReply')), rvr(1, 2, 5, true));
  });

  test('a vote persisted through the driver survives a crash', () => {
    const c = new Cluster(3, { seed: 6, preVote: false });
    c.isolated.add(2);
    c.campaign(0);
    assert.equal(c.core(0).isLeader, true);
    assert.deepEqual(c.node(1).disk.hardState, { term: 1, votedFor: 0 });
    c.restart(1);
    c.isolated.clear();
    // Node 2 asks node 1 for a vote in the same term: refused, because of the durable vote.
    c.core(1).step(rv(2, 1, 1, 0, 0));
    const ready = only(c.collect(1));
    assert.deepEqual(only(ofType(ready.messages, 'RequestVoteReply')), rvr(1, 2, 1, false));
  });

  test('a restarted follower recovers its log and the leader brings its commit index back', () => {
    const c = new Cluster(3, { seed: 12, preVote: false });
    c.elect(0);
    for (const cmd of ['a', 'b', 'c']) c.propose(0, cmd);
    c.deliverAll();
    c.restart(2);
    assert.equal(c.core(2).status().lastIndex, 3);
    assert.equal(c.core(2).status().commitIndex, 0);
    c.run(HB);
    assert.equal(c.core(2).status().commitIndex, 3);
    assert.deepEqual(c.applied[2]!.map(text), ['a', 'b', 'c']);
  });
});
