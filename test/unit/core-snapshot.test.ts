/**
 * Unit tests for log compaction and InstallSnapshot in RaftCore (src/core/raft.ts): no simulator,
 * no timers. Every node is run by the real ReadyDriver through the test kit's DrivenCore: the
 * driver persists hardState / snapshotWrite / logWrite to a per-node fake disk (which checks that
 * no reply leaves before what it acknowledges is durable), sends the messages, applies
 * snapshotToApply and then committed entries to a per-node state-machine record, and calls
 * advance(). Section numbers refer to the extended Raft paper (§7: log compaction, Figure 13).
 */
import { FIXED, ET_MIN, ET_MAX, HB, bytes, range, ent, log, ae, allMessages, DrivenCore, FakeDisk } from './core-fixtures.js';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '../../src/core/crc32c.js';
import { InvariantError } from '../../src/core/assert.js';
import { INJECTED_BUGS, type InjectedBug } from '../../src/core/bugs.js';
import { DEFAULT_TIMING, type RaftConfig } from '../../src/core/config.js';
import {
  NO_VOTE,
  type Entry,
  type InstallSnapshot,
  type InstallSnapshotReply,
  type LogIndex,
  type Message,
  type NodeId,
  type PersistentState,
  type Term,
} from '../../src/core/messages.js';
import type { Membership } from '../../src/core/membership.js';
import { RaftCore } from '../../src/core/raft.js';
import type { Ready } from '../../src/core/ready.js';
import { snapshotBodyBytes } from '../../src/core/snapshot-body.js';
import { patternBytes } from './pattern-bytes.js';

// ===================================================================================== helpers

const decoder = new TextDecoder();


function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** The snapshot format of the in-test state machine: the JSON list of commands 1..index. */
function encodeState(commands: readonly string[]): Uint8Array {
  return bytes(JSON.stringify(commands));
}

function isSnap(m: Message): m is InstallSnapshot {
  return m.type === 'InstallSnapshot';
}
function isSnapReply(m: Message): m is InstallSnapshotReply {
  return m.type === 'InstallSnapshotReply';
}

function only<T>(items: readonly T[]): T {
  assert.equal(items.length, 1, `expected exactly one item, got ${items.length}`);
  return items[0]!;
}

/** The configuration of the 3-node clusters these tests use. */
const THREE_VOTERS: Membership = { voters: [0, 1, 2], outgoing: [], learners: [], addresses: [] };
/** The configuration of a single-node cluster (node 0), as its own snapshots record it. */
const ONE_VOTER: Membership = { voters: [0], outgoing: [], learners: [], addresses: [] };

function installSnapshot(
  from: NodeId,
  to: NodeId,
  term: Term,
  lastIncludedIndex: LogIndex,
  lastIncludedTerm: Term,
  data: Uint8Array,
  offset = 0,
  done = true,
  whole?: Uint8Array,
  membership: Membership = THREE_VOTERS,
): InstallSnapshot {
  // Without the whole snapshot, a chunk announces a total that fits it and its own checksum.
  const snapshotBytes = whole?.length ?? (done ? offset + data.length : offset + data.length + 1);
  return { type: 'InstallSnapshot', from, to, term, lastIncludedIndex, lastIncludedTerm, snapshotBytes, checksum: crc32c(whole ?? data), offset, data, done, membership };
}

function makeConfig(id: NodeId, n: number, chunkBytes: number | undefined): RaftConfig {
  const config: RaftConfig = { id, peers: range(n), ...DEFAULT_TIMING, random: FIXED };
  return chunkBytes === undefined ? config : { ...config, snapshotChunkBytes: chunkBytes };
}

// ----------------------------------------------------------------- state machine

type Applied =
  | { readonly kind: 'entry'; readonly index: LogIndex; readonly term: Term; readonly command: string }
  /** snapshotToApply from a Ready. */
  | { readonly kind: 'snapshot'; readonly index: LogIndex; readonly term: Term; readonly data: Uint8Array }
  /** The driver loading the durable snapshot at a restart. */
  | { readonly kind: 'restore'; readonly index: LogIndex; readonly term: Term; readonly data: Uint8Array };

interface StateMachine {
  lastIndex: LogIndex;
  readonly events: Applied[];
}

/** A compact label per applied event: an entry's index, or `S<index>` for a snapshot, `R<index>` for a restore. */
function labels(sm: StateMachine): Array<number | string> {
  return sm.events.map((e) => (e.kind === 'entry' ? e.index : e.kind === 'snapshot' ? `S${e.index}` : `R${e.index}`));
}

/** The commands 1..lastIndex the state machine holds (snapshots in the JSON format). */
function stateOf(sm: StateMachine): string[] {
  let commands: string[] = [];
  for (const e of sm.events) {
    if (e.kind === 'entry') {
      assert.equal(e.index, commands.length + 1, 'state machine gap');
      commands.push(e.command);
    } else {
      commands = JSON.parse(decoder.decode(e.data)) as string[];
      assert.equal(commands.length, e.index, 'snapshot does not hold exactly its prefix');
    }
  }
  return commands;
}

/** After a full ready/advance cycle the durable log is exactly the in-memory one. */
function checkMirror(id: NodeId, disk: FakeDisk, core: RaftCore): void {
  const status = core.status();
  assert.equal(disk.snapshotIndex, status.snapshotIndex, `node ${id}: durable snapshot differs from the core's`);
  assert.equal(disk.entries.length, status.lastIndex - status.snapshotIndex, `node ${id}: durable log length differs`);
  disk.entries.forEach((e, i) => {
    assert.equal(e.index, status.firstIndex + i, `node ${id}: durable log is not consecutive`);
    assert.equal(e.term, core.entryAt(e.index)?.term, `node ${id}: durable entry ${e.index} differs from memory`);
  });
}

/**
 * One core run by the real ReadyDriver (a DrivenCore: its fake disk checks that no reply promises
 * what is not durable yet, and that nothing is applied before it is durable), plus the state
 * machine the driver applies to.
 */
class Node {
  readonly driven: DrivenCore;
  sm: StateMachine;
  /** Where the messages the driver sends go (the cluster routes them; a lone node drops them). */
  onSend: (message: Message) => void = () => {};

  constructor(
    readonly id: NodeId,
    readonly n: number,
    readonly chunkBytes?: number,
    restored?: PersistentState,
    readonly bugs?: ReadonlySet<InjectedBug>,
  ) {
    this.driven = new DrivenCore({
      config: this.config(),
      ...(restored === undefined ? {} : { restored }),
      onSend: (message) => this.onSend(message),
      onRestore: (snap) => {
        assert.ok(snap.index > this.sm.lastIndex, `node ${id}: snapshot ${snap.index} would move the state machine back from ${this.sm.lastIndex}`);
        this.sm.events.push({ kind: 'snapshot', index: snap.index, term: snap.term, data: snapshotBodyBytes(snap.data).slice() });
        this.sm.lastIndex = snap.index;
      },
      onApply: (entry) => {
        assert.equal(entry.index, this.sm.lastIndex + 1, `node ${id}: applies ${entry.index} after ${this.sm.lastIndex} (gap or repeat)`);
        this.sm.events.push({ kind: 'entry', index: entry.index, term: entry.term, command: decoder.decode(entry.command) });
        this.sm.lastIndex = entry.index;
      },
    });
    this.sm = Node.smFromDisk(this.disk);
  }

  private config(): RaftConfig {
    const config = makeConfig(this.id, this.n, this.chunkBytes);
    return this.bugs === undefined ? config : { ...config, [INJECTED_BUGS]: this.bugs };
  }

  get core(): RaftCore {
    return this.driven.core;
  }

  get disk(): FakeDisk {
    return this.driven.disk;
  }

  private static smFromDisk(disk: FakeDisk): StateMachine {
    const s = disk.snapshot;
    if (s === null) return { lastIndex: 0, events: [] };
    return { lastIndex: s.index, events: [{ kind: 'restore', index: s.index, term: s.term, data: snapshotBodyBytes(s.data).slice() }] };
  }

  /** Crash and restart from the fake disk: the state machine reloads the durable snapshot. */
  restart(): void {
    this.driven.restart(this.config());
    this.sm = Node.smFromDisk(this.disk);
  }

  /** Runs the driver (persist, send, apply, advance) until the core is quiet; returns the Readys handled. */
  run(): Ready[] {
    const readys = this.driven.run();
    checkMirror(this.id, this.disk, this.core);
    return readys;
  }

  /** Runs the driver, which must handle at most one Ready; returns it (null: nothing to do). */
  process(): Ready | null {
    const readys = this.run();
    assert.ok(readys.length <= 1, `node ${this.id}: expected at most one Ready, the driver handled ${readys.length}`);
    return readys[0] ?? null;
  }

  /** step() then process(); the Ready (which must exist) is returned for inspection. */
  feed(message: Message): Ready {
    this.core.step(message);
    const ready = this.process();
    assert.ok(ready !== null, `node ${this.id}: no Ready after ${message.type}`);
    return ready;
  }

  /** Runs the driver until quiet; returns all messages it sent. */
  drain(): Message[] {
    return this.run().flatMap(allMessages);
  }
}

// ----------------------------------------------------------------- the in-test cluster

/**
 * n nodes wired by a synchronous FIFO network. Every message handed out is recorded in `sent`
 * (lost or not); `isolated` and `drop` lose messages at send time; `delay` holds a message back
 * for some ticks; `onQueue` may inject extra messages (duplicates, stale copies) into the queue.
 */
class Cluster {
  readonly nodes: Node[] = [];
  queue: Message[] = [];
  readonly sent: Message[] = [];
  readonly delivered: Message[] = [];
  readonly isolated = new Set<NodeId>();
  drop: (message: Message) => boolean = () => false;
  /** Ticks a message spends on the wire before it is queued for delivery (0: none). */
  delay: (message: Message) => number = () => 0;
  onQueue: (message: Message) => void = () => {};
  /** Messages on the wire, with the tick at which they arrive. */
  private readonly wire: Array<{ at: number; message: Message }> = [];
  now = 0;

  constructor(
    n: number,
    options: { chunkBytes?: number; restored?: ReadonlyArray<PersistentState | undefined>; bugs?: ReadonlySet<InjectedBug> } = {},
  ) {
    for (const id of range(n)) {
      const node = new Node(id, n, options.chunkBytes, options.restored?.[id], options.bugs);
      node.onSend = (message) => this.route(message);
      this.nodes.push(node);
    }
  }

  node(id: NodeId): Node {
    return this.nodes[id]!;
  }
  core(id: NodeId): RaftCore {
    return this.node(id).core;
  }

  collect(id: NodeId): void {
    this.node(id).run();
  }

  /** The driver sends: record the message, and queue it unless the network loses or delays it. */
  private route(message: Message): void {
    this.sent.push(message);
    if (this.isolated.has(message.from) || this.isolated.has(message.to)) return;
    if (this.drop(message)) return;
    const ticks = this.delay(message);
    if (ticks > 0) {
      this.wire.push({ at: this.now + ticks, message });
      return;
    }
    this.queue.push(message);
    this.onQueue(message);
  }

  /** Queues the delayed messages that have arrived. */
  private arrive(): void {
    for (let i = 0; i < this.wire.length; ) {
      const { at, message } = this.wire[i]!;
      if (at > this.now) {
        i++;
        continue;
      }
      this.wire.splice(i, 1);
      this.queue.push(message);
      this.onQueue(message);
    }
  }

  collectAll(): void {
    for (const node of this.nodes) this.collect(node.id);
  }

  deliverOne(): boolean {
    const message = this.queue.shift();
    if (message === undefined) return false;
    this.delivered.push(message);
    this.node(message.to).driven.step(message);
    this.collect(message.to);
    return true;
  }

  /** Delivers until nothing is in flight, or until `stop` holds (checked after every delivery). */
  deliverAll(stop: () => boolean = () => false): boolean {
    this.collectAll();
    for (let steps = 0; ; steps++) {
      assert.ok(steps < 20_000, 'message storm: the network never went quiet');
      if (stop()) return true;
      if (!this.deliverOne()) return false;
    }
  }

  tick(ids: readonly NodeId[] = range(this.nodes.length)): void {
    this.now++;
    this.arrive();
    for (const id of ids) this.node(id).driven.tick();
    this.collectAll();
  }

  run(ticks: number): void {
    for (let i = 0; i < ticks; i++) {
      this.tick();
      this.deliverAll();
    }
  }

  /** Ticks everyone and delivers until `done` holds (checked after every delivery too). */
  runUntil(done: () => boolean, maxTicks: number, what: string): void {
    if (this.deliverAll(done)) return;
    for (let i = 0; i < maxTicks; i++) {
      this.tick();
      if (this.deliverAll(done)) return;
    }
    assert.fail(`not within ${maxTicks} ticks: ${what}`);
  }

  /** Ticks only the leaders, delivering after each tick, so that commit indices propagate. */
  settle(ticks = 5): void {
    for (let i = 0; i < ticks; i++) {
      this.tick(this.nodes.filter((n) => n.core.isLeader).map((n) => n.id));
      this.deliverAll();
    }
  }

  /** Ticks only `id` (delivering after every tick) until it leads. */
  elect(id: NodeId): void {
    for (let i = 0; i < 3 * ET_MAX && !this.core(id).isLeader; i++) {
      this.tick([id]);
      this.deliverAll();
    }
    assert.ok(this.core(id).isLeader, `node ${id} could not win an election`);
  }

  propose(id: NodeId, command: string): LogIndex {
    const result = this.core(id).propose(bytes(command));
    assert.ok(result !== null, `node ${id} is not leader`);
    return result.index;
  }

  /** The application on `id` snapshots at `index` (default data: its commands 1..index as JSON). */
  snapshot(id: NodeId, index: LogIndex, data?: Uint8Array): Uint8Array {
    const payload = data ?? encodeState(stateOf(this.node(id).sm).slice(0, index));
    this.core(id).snapshot(index, payload);
    this.collect(id);
    return payload;
  }

  chunksTo(to: NodeId, since = 0): InstallSnapshot[] {
    return this.sent.slice(since).filter(isSnap).filter((m) => m.to === to);
  }
  snapshotRepliesFrom(from: NodeId, since = 0): InstallSnapshotReply[] {
    return this.sent.slice(since).filter(isSnapReply).filter((m) => m.from === from);
  }
}

/**
 * A 3-node cluster led by node 0 in term 1. Node 2 applies entries 1..3 and is then cut off while
 * the others commit and apply 4..total; nodes 0 and 1 then snapshot at `snapshotAt`. Node 2 is
 * still isolated on return.
 */
function laggingFollower(opts: {
  total: number;
  snapshotAt: number;
  chunkBytes?: number;
  data?: Uint8Array;
  bugs?: ReadonlySet<InjectedBug>;
}): {
  c: Cluster;
  data: Uint8Array;
} {
  const c = new Cluster(3, {
    ...(opts.chunkBytes === undefined ? {} : { chunkBytes: opts.chunkBytes }),
    ...(opts.bugs === undefined ? {} : { bugs: opts.bugs }),
  });
  c.elect(0);
  assert.equal(c.core(0).term, 1);
  for (let i = 1; i <= 3; i++) c.propose(0, `c${i}`);
  c.settle();
  assert.deepEqual(labels(c.node(2).sm), [1, 2, 3]);
  c.isolated.add(2);
  for (let i = 4; i <= opts.total; i++) c.propose(0, `c${i}`);
  c.settle();
  for (const id of [0, 1]) {
    assert.equal(c.core(id).status().appliedIndex, opts.total, `node ${id} applied everything`);
  }
  assert.equal(c.core(2).status().lastIndex, 3);
  const data = c.snapshot(0, opts.snapshotAt, opts.data);
  c.snapshot(1, opts.snapshotAt, opts.data);
  assert.equal(c.core(0).status().snapshotIndex, opts.snapshotAt);
  return { c, data };
}

const heal = (c: Cluster, id: NodeId): void => void c.isolated.delete(id);
const appliedTo = (c: Cluster, id: NodeId, index: LogIndex) => (): boolean => c.core(id).status().appliedIndex >= index;

// ===================================================================================== snapshot()

describe('snapshot(index, data): log compaction (§7)', () => {
  /** A single-node leader of term 1 that has committed and applied entries 1..n. */
  function soloLeader(n: number): Node {
    const node = new Node(0, 1);
    for (let i = 0; i < ET_MIN && !node.core.isLeader; i++) node.core.tick();
    assert.equal(node.core.isLeader, true);
    node.drain();
    for (let i = 1; i <= n; i++) node.core.propose(bytes(`c${i}`));
    node.drain();
    assert.equal(node.core.status().appliedIndex, n);
    return node;
  }

  test('compacts the prefix and emits snapshotWrite with the right term in the next Ready, once', () => {
    const node = soloLeader(10);
    const data = bytes('state@6');
    node.core.snapshot(6, data);
    const status = node.core.status();
    assert.equal(status.snapshotIndex, 6);
    assert.equal(status.firstIndex, 7);
    assert.equal(status.lastIndex, 10);
    assert.equal(status.commitIndex, 10);
    assert.equal(status.appliedIndex, 10);
    assert.equal(node.core.entryAt(6), undefined, 'entry 6 is compacted');
    assert.equal(node.core.entryAt(7)?.term, 1);
    assert.equal(node.core.hasReady(), true, 'the snapshot must be persisted');

    const ready = node.process()!;
    assert.deepEqual(ready.snapshotWrite, { index: 6, term: 1, data, membership: ONE_VOTER });
    assert.equal(ready.logWrite, null);
    assert.equal(ready.snapshotToApply, null, 'the application made this snapshot itself');
    assert.deepEqual(ready.committed, []);
    assert.deepEqual(node.disk.entries.map((e) => e.index), [7, 8, 9, 10]);
    assert.equal(node.core.hasReady(), false, 'snapshotWrite is emitted once');
  });

  test('snapshotWrite carries the term of the entry at index, not the current term', () => {
    // Restored log in terms 1,1,2,2,3; re-elected in term 4, which commits everything with entry 6.
    const restored: PersistentState = { hardState: { term: 3, votedFor: NO_VOTE }, snapshot: null, entries: log(1, 1, 2, 2, 3) };
    const node = new Node(0, 1, undefined, restored);
    for (let i = 0; i < ET_MIN && !node.core.isLeader; i++) node.core.tick();
    assert.equal(node.core.term, 4);
    node.drain();
    node.core.propose(bytes('x'));
    node.drain();
    assert.equal(node.core.status().appliedIndex, 6);

    node.core.snapshot(4, bytes('s4'));
    assert.deepEqual(node.process()?.snapshotWrite, { index: 4, term: 2, data: bytes('s4'), membership: ONE_VOTER });
    node.core.snapshot(5, bytes('s5'));
    assert.deepEqual(node.process()?.snapshotWrite, { index: 5, term: 3, data: bytes('s5'), membership: ONE_VOTER });
    assert.deepEqual(node.disk.snapshot, { index: 5, term: 3, data: bytes('s5'), membership: ONE_VOTER });
    assert.deepEqual(node.disk.entries.map((e) => [e.index, e.term]), [[6, 4]]);
    assert.equal(node.core.status().lastTerm, 4);
  });

  test('an index at or below the current snapshot is ignored', () => {
    const node = soloLeader(10);
    node.core.snapshot(6, bytes('s6'));
    node.process();
    const before = node.core.status();
    node.core.snapshot(6, bytes('again'));
    node.core.snapshot(3, bytes('older'));
    assert.equal(node.core.hasReady(), false, 'nothing to persist');
    const after = node.core.status();
    assert.equal(after.snapshotIndex, 6);
    assert.equal(after.firstIndex, before.firstIndex);
    assert.equal(after.lastIndex, before.lastIndex);
    assert.deepEqual(node.disk.snapshot?.data, bytes('s6'));
  });

  test('throws for an index beyond the applied index (also when merely committed), changing nothing', () => {
    const node = soloLeader(10);
    assert.throws(() => node.core.snapshot(11, bytes('x')), InvariantError);
    // Commit 11 without applying it yet: the Ready that applies it has not been taken.
    node.core.propose(bytes('c11'));
    const write = node.core.ready(); // logWrite of 11
    node.disk.write(write.hardState, write.snapshotWrite, write.logWrite); // the test plays the driver for this one Ready
    node.core.advance(write);
    assert.equal(node.core.status().commitIndex, 11);
    assert.equal(node.core.status().appliedIndex, 10);
    assert.throws(() => node.core.snapshot(11, bytes('x')), InvariantError);
    const status = node.core.status();
    assert.equal(status.snapshotIndex, 0);
    assert.equal(status.firstIndex, 1);
    node.drain();
    assert.equal(node.core.status().appliedIndex, 11);
    node.core.snapshot(11, bytes('ok'));
    assert.equal(node.core.status().snapshotIndex, 11);
  });

  test('a leader that compacted still replicates normally to up-to-date followers', () => {
    const c = new Cluster(3);
    c.elect(0);
    for (let i = 1; i <= 5; i++) c.propose(0, `c${i}`);
    c.settle();
    c.snapshot(0, 5);
    const mark = c.sent.length;
    c.propose(0, 'c6');
    c.settle();
    assert.deepEqual(c.chunksTo(1, mark), [], 'no InstallSnapshot to a follower that has the entries');
    assert.deepEqual(c.chunksTo(2, mark), []);
    for (const id of [1, 2]) assert.deepEqual(labels(c.node(id).sm), [1, 2, 3, 4, 5, 6]);
  });
});

// ===================================================================================== catch-up

describe('InstallSnapshot: a follower behind the leader’s compacted log catches up (§7)', () => {
  test('receives the snapshot, applies it before later entries without gaps or repeats, and its log continues after it', () => {
    const { c, data } = laggingFollower({ total: 25, snapshotAt: 20 });
    const mark = c.sent.length;
    heal(c, 2);
    c.runUntil(appliedTo(c, 2, 25), 2 * HB, 'node 2 catches up');
    c.deliverAll(); // its acknowledgement reaches the leader

    const chunks = c.chunksTo(2, mark);
    const chunk = only(chunks);
    assert.equal(chunk.lastIncludedIndex, 20);
    assert.equal(chunk.lastIncludedTerm, 1);
    assert.equal(chunk.offset, 0);
    assert.equal(chunk.done, true);
    assert.deepEqual(chunk.data, data);

    const f = c.node(2);
    assert.deepEqual(labels(f.sm), [1, 2, 3, 'S20', 21, 22, 23, 24, 25], 'snapshot first, then the entries after it');
    assert.deepEqual(stateOf(f.sm), stateOf(c.node(0).sm), 'same state as the leader');
    assert.deepEqual(stateOf(f.sm), range(25).map((i) => `c${i + 1}`));

    const status = f.core.status();
    assert.equal(status.snapshotIndex, 20);
    assert.equal(status.firstIndex, 21);
    assert.equal(status.lastIndex, 25);
    assert.equal(status.commitIndex, 25);
    assert.equal(status.appliedIndex, 25);
    assert.equal(f.core.entryAt(20), undefined);
    assert.equal(decoder.decode(f.core.entryAt(21)!.command), 'c21');
    assert.deepEqual(f.disk.snapshot, { index: 20, term: 1, data, membership: THREE_VOTERS });
    assert.deepEqual(f.disk.entries.map((e) => e.index), [21, 22, 23, 24, 25]);

    const pr = c.core(0).status().progress.get(2)!;
    assert.equal(pr.match, 25);
    assert.equal(pr.state, 'replicate');

    // The log simply continues.
    c.propose(0, 'c26');
    c.settle();
    assert.deepEqual(labels(f.sm).slice(-2), [25, 26]);
    assert.equal(f.core.entryAt(26)?.index, 26);
    assert.equal(c.chunksTo(2, mark).length, 1, 'no further snapshot was needed');
  });
});

// ===================================================================================== chunking

describe('InstallSnapshot chunking', () => {
  const SIZE = 10_000;
  const CHUNK = 1_000;
  const offsets = range(10).map((i) => i * CHUNK);

  test('a 10,000-byte snapshot in 1,000-byte chunks: exactly 10 messages, offsets 0..9000, done only on the last, exact bytes', () => {
    const original = patternBytes(SIZE, 1);
    const { c } = laggingFollower({ total: 25, snapshotAt: 20, chunkBytes: CHUNK, data: original });
    const mark = c.sent.length;
    heal(c, 2);
    c.runUntil(appliedTo(c, 2, 25), 2 * HB, 'node 2 catches up');

    const chunks = c.chunksTo(2, mark);
    // Chunks go out in a window of four; after the loss the follower refuses what follows the gap
    // until a retry fills it (go-back-N). Whatever the timing: every offset is sent, none more
    // than twice, and the first chunk only once.
    const offsets = chunks.map((m) => m.offset);
    for (let offset = 0; offset < SIZE; offset += CHUNK) assert.ok(offsets.includes(offset), `chunk ${offset} sent`);
    assert.ok(offsets.length <= 2 * (SIZE / CHUNK), `at most two sends per chunk, got ${offsets.join(',')}`);
    assert.equal(chunks.filter((m) => m.offset === 0).length, 1, 'the transfer did not restart from offset 0');
    assert.deepEqual(chunks.filter((m) => m.done).length, 1);
    assert.deepEqual(c.node(2).disk.snapshot?.data, original);
    assert.deepEqual(labels(c.node(2).sm), [1, 2, 3, 'S20', 21, 22, 23, 24, 25]);
  });

  test("a lost reply: the leader's retry of an older chunk is answered with the follower's nextOffset and it resumes there", () => {
    const original = patternBytes(SIZE, 3);
    const { c } = laggingFollower({ total: 25, snapshotAt: 20, chunkBytes: CHUNK, data: original });
    let dropped = false;
    c.drop = (m) => {
      if (!dropped && isSnapReply(m) && m.nextOffset === 4 * CHUNK) return (dropped = true);
      return false;
    };
    const mark = c.sent.length;
    heal(c, 2);
    c.runUntil(appliedTo(c, 2, 25), 3 * HB, 'node 2 catches up despite the lost reply');
    assert.equal(dropped, true);

    // The follower already holds 4000 bytes; the retry of chunk 3000 must not be appended twice.
    const offsets = c.chunksTo(2, mark).map((m) => m.offset);
    assert.equal(offsets.filter((offset) => offset === 0).length, 1, 'no restart from offset 0');
    assert.ok(offsets.length <= 2 * (SIZE / CHUNK), `at most two sends per chunk, got ${offsets.join(',')}`);
    // The follower's offsets only grow, whatever was lost or retried: nothing was appended twice.
    const replied = c.snapshotRepliesFrom(2, mark).map((r) => r.nextOffset);
    for (let i = 1; i < replied.length; i++) assert.ok(replied[i]! >= replied[i - 1]!, `follower offsets ${replied.join(',')}`);
    assert.equal(c.snapshotRepliesFrom(2, mark).filter((r) => r.installed).length, 1);
    assert.deepEqual(c.node(2).disk.snapshot?.data, original);
  });

  test('a stale chunk delivered again out of order does not corrupt the reassembly nor lose bytes', () => {
    const original = patternBytes(SIZE, 4);
    const { c } = laggingFollower({ total: 25, snapshotAt: 20, chunkBytes: CHUNK, data: original });
    let stale: InstallSnapshot | null = null;
    let injected = false;
    c.onQueue = (m) => {
      if (!isSnap(m)) return;
      if (m.offset === 2 * CHUNK && stale === null) stale = m;
      if (m.offset === 5 * CHUNK && stale !== null && !injected) {
        injected = true;
        c.queue.splice(c.queue.length - 1, 0, stale); // the old chunk 2000 arrives just before chunk 5000
      }
    };
    const mark = c.sent.length;
    heal(c, 2);
    c.runUntil(appliedTo(c, 2, 25), 3 * HB, 'node 2 catches up');
    assert.equal(injected, true);

    const f = c.node(2);
    assert.deepEqual(f.disk.snapshot?.data, original);
    assert.equal(f.sm.events.filter((e) => e.kind === 'snapshot').length, 1, 'installed exactly once');
    assert.deepEqual(labels(f.sm), [1, 2, 3, 'S20', 21, 22, 23, 24, 25]);
    const replies = c.snapshotRepliesFrom(2, mark);
    const held = replies.filter((r) => !r.installed).map((r) => r.nextOffset);
    assert.ok(held.includes(5000), 'the stale chunk is answered with what the follower holds');
    for (let i = 1; i < held.length; i++) {
      assert.ok(held[i]! >= held[i - 1]!, `the follower's nextOffset went back: ${held.join(',')}`);
    }
  });

  test('a duplicated first chunk mid-transfer and a duplicated last chunk after the install do not corrupt the snapshot', () => {
    const original = patternBytes(SIZE, 5);
    const { c } = laggingFollower({ total: 25, snapshotAt: 20, chunkBytes: CHUNK, data: original });
    let first: InstallSnapshot | null = null;
    let last: InstallSnapshot | null = null;
    let injectedFirst = false;
    c.onQueue = (m) => {
      if (!isSnap(m)) return;
      if (m.offset === 0 && first === null) first = m;
      if (m.offset === 6 * CHUNK && first !== null && !injectedFirst) {
        injectedFirst = true;
        c.queue.push(first);
      }
      if (m.done && last === null) last = m;
    };
    heal(c, 2);
    c.runUntil(appliedTo(c, 2, 25), 3 * HB, 'node 2 catches up');
    assert.equal(injectedFirst, true);
    assert.ok(last !== null);

    // The last chunk arrives once more after the install and after entries 21..25 were applied.
    const f = c.node(2);
    const ready = f.feed(last);
    const reply = only(ready.messages.filter(isSnapReply));
    assert.equal(reply.installed, true);
    assert.equal(ready.snapshotToApply, null);
    assert.equal(ready.snapshotWrite, null);

    assert.deepEqual(f.disk.snapshot?.data, original);
    assert.equal(f.sm.events.filter((e) => e.kind === 'snapshot').length, 1, 'installed exactly once');
    assert.deepEqual(labels(f.sm), [1, 2, 3, 'S20', 21, 22, 23, 24, 25]);
    assert.equal(f.core.status().lastIndex, 25);
  });

  /**
   * Node 2 is sent S1 (snapshot at 20, 10 chunks); when chunk 3000 has arrived, the leader
   * compacts again (S2 at 30, 6 chunks). Returns the chunks sent to node 2 from then on.
   */
  function compactDuringTransfer(bugs?: ReadonlySet<InjectedBug>): { c: Cluster; chunks: InstallSnapshot[]; s1: Uint8Array; s2: Uint8Array } {
    const s1 = patternBytes(SIZE, 6);
    const s2 = patternBytes(5_500, 7);
    const { c } = laggingFollower({ total: 30, snapshotAt: 20, chunkBytes: CHUNK, data: s1, ...(bugs === undefined ? {} : { bugs }) });
    heal(c, 2);
    const chunkDelivered = (offset: number) => (): boolean => {
      const m = c.delivered[c.delivered.length - 1];
      return m !== undefined && isSnap(m) && m.to === 2 && m.offset === offset;
    };
    c.runUntil(chunkDelivered(3 * CHUNK), 2 * HB, 'the transfer of S1 reaches chunk 3000');
    assert.equal(c.core(0).status().progress.get(2)?.state, 'snapshot');

    const mark = c.sent.length;
    c.snapshot(0, 30, s2);
    c.runUntil(appliedTo(c, 2, 30), 3 * HB, 'node 2 catches up to 30');
    return { c, chunks: c.chunksTo(2, mark), s1, s2 };
  }

  test('a transfer in progress keeps its snapshot when the leader compacts again: the follower installs it, then gets the newer one', () => {
    const { c, chunks, s1, s2 } = compactDuringTransfer();
    assert.deepEqual(
      chunks.map((m) => [m.lastIncludedIndex, m.offset, m.done]),
      [
        [20, 4000, false], [20, 5000, false], [20, 6000, false], [20, 7000, false], [20, 8000, false], [20, 9000, true],
        [30, 0, false], [30, 1000, false], [30, 2000, false], [30, 3000, false], [30, 4000, false], [30, 5000, true],
      ],
      'S1 continues where it was; S2 follows once S1 is installed, since the entries after 20 are compacted too',
    );
    assert.deepEqual(concat(chunks.filter((m) => m.lastIncludedIndex === 30).map((m) => m.data)), s2);

    const f = c.node(2);
    const installed = f.sm.events.filter((e) => e.kind === 'snapshot');
    assert.deepEqual(labels(f.sm), [1, 2, 3, 'S20', 'S30']);
    assert.deepEqual(installed[0]!.kind === 'snapshot' ? installed[0]!.data : null, s1, 'S1 arrived whole, across the compaction');
    assert.deepEqual(f.disk.snapshot, { index: 30, term: 1, data: s2, membership: THREE_VOTERS });
    const status = f.core.status();
    assert.equal(status.snapshotIndex, 30);
    assert.equal(status.firstIndex, 31);
    assert.equal(status.lastIndex, 30);

    c.propose(0, 'c31');
    c.settle();
    assert.deepEqual(labels(f.sm), [1, 2, 3, 'S20', 'S30', 31]);
  });

  test('snapshot-restart-on-compaction: the transfer starts over at offset 0 with the newer snapshot', () => {
    const { c, chunks, s2 } = compactDuringTransfer(new Set(['snapshot-restart-on-compaction']));
    assert.deepEqual(
      chunks.map((m) => [m.lastIncludedIndex, m.offset]),
      [[30, 0], [30, 1000], [30, 2000], [30, 3000], [30, 4000], [30, 5000]],
      'the 4000 bytes of S1 node 2 holds are thrown away',
    );
    assert.deepEqual(concat(chunks.map((m) => m.data)), s2);
    assert.deepEqual(labels(c.node(2).sm), [1, 2, 3, 'S30'], 'S1 was never installed');
  });

  test('a round trip longer than the heartbeat interval: each chunk is sent at most about twice, not quadratically often', () => {
    const CHUNKS = 20;
    const original = patternBytes(CHUNKS * CHUNK, 11);
    const { c } = laggingFollower({ total: 25, snapshotAt: 20, chunkBytes: CHUNK, data: original });
    // Node 2's answers take longer than a heartbeat interval: the leader retries every chunk
    // before its answer arrives, and both the original and the retry get answered.
    const RTT = HB + 5;
    c.delay = (m) => (isSnapReply(m) && m.from === 2 ? RTT : 0);
    const mark = c.sent.length;
    heal(c, 2);
    c.runUntil(appliedTo(c, 2, 25), (CHUNKS + 5) * 2 * RTT, 'node 2 catches up');

    const chunks = c.chunksTo(2, mark);
    const perOffset = new Map<number, number>();
    for (const m of chunks) perOffset.set(m.offset, (perOffset.get(m.offset) ?? 0) + 1);
    assert.deepEqual([...perOffset.keys()].sort((a, b) => a - b), range(CHUNKS).map((i) => i * CHUNK), 'every chunk was sent');
    assert.ok(
      chunks.length <= 2 * CHUNKS,
      `${chunks.length} chunks sent for a ${CHUNKS}-chunk snapshot; per offset: ${[...perOffset.values()].join(',')}`,
    );
    assert.ok(Math.max(...perOffset.values()) <= 2, 'no chunk is sent more than twice (once, and once retried)');
    assert.deepEqual(c.node(2).disk.snapshot?.data, original);
    assert.deepEqual(labels(c.node(2).sm), [1, 2, 3, 'S20', 21, 22, 23, 24, 25]);
  });

  test('proposals during a transfer do not send extra chunks (one chunk in flight, progress.ts)', () => {
    const original = patternBytes(SIZE, 8);
    const { c } = laggingFollower({ total: 25, snapshotAt: 20, chunkBytes: CHUNK, data: original });
    const mark = c.sent.length;
    heal(c, 2);
    const chunkDelivered = (offset: number) => (): boolean => {
      const m = c.delivered[c.delivered.length - 1];
      return m !== undefined && isSnap(m) && m.to === 2 && m.offset === offset;
    };
    c.runUntil(chunkDelivered(3 * CHUNK), 2 * HB, 'the transfer reaches chunk 3000');
    // Three separate batches of proposals while chunk 4000 is being requested.
    for (let i = 26; i <= 28; i++) {
      c.propose(0, `c${i}`);
      c.collect(0);
    }
    c.runUntil(appliedTo(c, 2, 28), 3 * HB, 'node 2 catches up');
    assert.deepEqual(c.node(2).disk.snapshot?.data, original);
    assert.deepEqual(
      c.chunksTo(2, mark).map((m) => m.offset),
      offsets,
      'each chunk is sent once: proposals must not add chunks to a transfer in flight',
    );
  });
});

// ===================================================================================== follower log

describe('InstallSnapshot: the follower’s log (§7, Figure 13 steps 6–7)', () => {
  const restored = (term: Term, entries: Entry[]): PersistentState => ({
    hardState: { term, votedFor: NO_VOTE },
    snapshot: null,
    entries,
  });

  test('a log containing the snapshot’s last entry (same index and term) keeps the entries after it', () => {
    const f = new Node(1, 3, undefined, restored(2, log(1, 1, 1, 2, 2, 2, 2, 2)));
    const data = bytes('s5');
    const ready = f.feed(installSnapshot(0, 1, 2, 5, 2, data));
    assert.deepEqual(ready.snapshotWrite, { index: 5, term: 2, data, membership: THREE_VOTERS });
    assert.deepEqual(ready.snapshotToApply, { index: 5, term: 2, data, membership: THREE_VOTERS });
    assert.equal(ready.logWrite, null, 'the kept entries were already durable');
    assert.deepEqual(ready.committed, []);
    const reply = only(ready.messages.filter(isSnapReply));
    assert.deepEqual(reply, {
      type: 'InstallSnapshotReply',
      from: 1,
      to: 0,
      term: 2,
      lastIncludedIndex: 5,
      nextOffset: data.length,
      installed: true,
    });

    const status = f.core.status();
    assert.equal(status.snapshotIndex, 5);
    assert.equal(status.firstIndex, 6);
    assert.equal(status.lastIndex, 8);
    assert.equal(status.lastTerm, 2);
    assert.equal(status.commitIndex, 5);
    assert.equal(status.appliedIndex, 5);
    assert.deepEqual([6, 7, 8].map((i) => decoder.decode(f.core.entryAt(i)!.command)), ['6@2', '7@2', '8@2']);
    assert.deepEqual(f.disk.entries.map((e) => e.index), [6, 7, 8]);

    // Survives a restart, and the kept entries commit normally afterwards.
    f.restart();
    assert.equal(f.core.status().firstIndex, 6);
    assert.equal(f.core.status().lastIndex, 8);
    assert.equal(f.core.status().commitIndex, 5);
    f.feed(ae(0, 1, 2, 8, 2, [], 8));
    assert.deepEqual(labels(f.sm), ['R5', 6, 7, 8]);
  });

  test('a log that conflicts at the snapshot’s last index is discarded entirely', () => {
    const f = new Node(1, 3, undefined, restored(2, log(1, 1, 1, 2, 2, 2, 2, 2)));
    const data = bytes('s5@3');
    const ready = f.feed(installSnapshot(0, 1, 3, 5, 3, data));
    assert.deepEqual(ready.hardState, { term: 3, votedFor: NO_VOTE });
    assert.deepEqual(ready.snapshotWrite, { index: 5, term: 3, data, membership: THREE_VOTERS });
    assert.deepEqual(ready.logWrite, { fromIndex: 6, entries: [] }, 'the durable entries after the snapshot are dropped too');
    assert.equal(only(ready.messages.filter(isSnapReply)).installed, true);

    const status = f.core.status();
    assert.equal(status.snapshotIndex, 5);
    assert.equal(status.firstIndex, 6);
    assert.equal(status.lastIndex, 5);
    assert.equal(status.lastTerm, 3);
    assert.equal(status.commitIndex, 5);
    assert.equal(f.core.entryAt(6), undefined);
    assert.deepEqual(f.disk.entries, []);
    assert.deepEqual(labels(f.sm), ['S5']);

    f.restart();
    assert.equal(f.core.status().lastIndex, 5);
    assert.equal(f.core.status().lastTerm, 3);
  });

  test('a log shorter than the snapshot is replaced by it', () => {
    const f = new Node(1, 3, undefined, restored(1, log(1, 1, 1)));
    const ready = f.feed(installSnapshot(0, 1, 1, 10, 1, bytes('s10')));
    assert.deepEqual(ready.snapshotWrite, { index: 10, term: 1, data: bytes('s10'), membership: THREE_VOTERS });
    const status = f.core.status();
    assert.equal(status.snapshotIndex, 10);
    assert.equal(status.firstIndex, 11);
    assert.equal(status.lastIndex, 10);
    assert.deepEqual(f.disk.entries, []);
    // The next AppendEntries anchored at the snapshot is accepted.
    const next = f.feed(ae(0, 1, 1, 10, 1, [ent(11, 1)], 11));
    const reply = only(next.messages.filter((m) => m.type === 'AppendEntriesReply'));
    assert.equal(reply.type === 'AppendEntriesReply' && reply.success, true);
    assert.deepEqual(labels(f.sm), ['S10', 11]);
  });
});

// ===================================================================================== stale snapshots

describe('InstallSnapshot that tells the follower nothing new', () => {
  /** Follower 1 in term 2 with entries 1..8 (terms 1,1,1,2,...), commit 6, applied 6. */
  function committedFollower(): Node {
    const f = new Node(1, 3, undefined, { hardState: { term: 2, votedFor: NO_VOTE }, snapshot: null, entries: log(1, 1, 1, 2, 2, 2, 2, 2) });
    f.feed(ae(0, 1, 2, 8, 2, [], 6));
    assert.equal(f.core.status().commitIndex, 6);
    assert.equal(f.core.status().appliedIndex, 6);
    return f;
  }

  for (const index of [5, 6]) {
    test(`a snapshot at ${index}, at or below the commit index 6, is acknowledged (installed=true) and changes nothing`, () => {
      const f = committedFollower();
      const before = f.core.status();
      const data = bytes(`s${index}`);
      const ready = f.feed(installSnapshot(0, 1, 2, index, index <= 3 ? 1 : 2, data));
      assert.deepEqual(only(ready.messages.filter(isSnapReply)), {
        type: 'InstallSnapshotReply',
        from: 1,
        to: 0,
        term: 2,
        lastIncludedIndex: index,
        nextOffset: data.length,
        installed: true,
      });
      assert.equal(ready.hardState, null);
      assert.equal(ready.snapshotWrite, null);
      assert.equal(ready.snapshotToApply, null);
      assert.equal(ready.logWrite, null);
      assert.deepEqual(ready.committed, []);
      const after = f.core.status();
      for (const key of ['snapshotIndex', 'firstIndex', 'lastIndex', 'commitIndex', 'appliedIndex', 'term'] as const) {
        assert.equal(after[key], before[key], key);
      }
      assert.equal(f.disk.snapshot, null);
      assert.equal(f.disk.entries.length, 8);
      assert.deepEqual(labels(f.sm), [1, 2, 3, 4, 5, 6]);
    });
  }

  test('a middle chunk of a snapshot at or below the commit index is acknowledged with offset + length', () => {
    const f = committedFollower();
    const ready = f.feed(installSnapshot(0, 1, 2, 4, 2, new Uint8Array(1000), 2000, false));
    const reply = only(ready.messages.filter(isSnapReply));
    assert.equal(reply.installed, true);
    assert.equal(reply.nextOffset, 3000);
    assert.equal(f.core.status().snapshotIndex, 0);
  });

  test('a stale snapshot (at or below commit) does not disturb the transfer of a newer one in progress', () => {
    const f = committedFollower();
    const s10 = patternBytes(3000, 9);
    const r1 = f.feed(installSnapshot(0, 1, 2, 10, 2, s10.subarray(0, 1000), 0, false, s10));
    assert.equal(only(r1.messages.filter(isSnapReply)).nextOffset, 1000);
    // A delayed chunk of an old snapshot (index 5 <= commit 6) turns up.
    f.feed(installSnapshot(0, 1, 2, 5, 2, bytes('old'), 0, true));
    // The transfer of snapshot 10 continues where it was.
    const r2 = f.feed(installSnapshot(0, 1, 2, 10, 2, s10.subarray(1000, 2000), 1000, false, s10));
    assert.deepEqual(
      [only(r2.messages.filter(isSnapReply)).nextOffset, only(r2.messages.filter(isSnapReply)).installed],
      [2000, false],
      'the follower threw away the 1000 bytes of snapshot 10 it held',
    );
    const r3 = f.feed(installSnapshot(0, 1, 2, 10, 2, s10.subarray(2000), 2000, true, s10));
    assert.equal(only(r3.messages.filter(isSnapReply)).installed, true);
    assert.deepEqual(f.disk.snapshot?.data, s10);
  });

  test('InstallSnapshot from an older term is refused with the current term and changes nothing', () => {
    const f = new Node(1, 3, undefined, { hardState: { term: 3, votedFor: 2 }, snapshot: null, entries: log(1, 1, 3) });
    const before = f.core.status();
    const ready = f.feed(installSnapshot(0, 1, 2, 10, 2, bytes('0123456789'), 0, false));
    assert.deepEqual(only(allMessages(ready)), {
      type: 'InstallSnapshotReply',
      from: 1,
      to: 0,
      term: 3,
      lastIncludedIndex: 10,
      nextOffset: 0,
      installed: false,
    });
    assert.equal(ready.hardState, null);
    assert.equal(ready.snapshotWrite, null);
    assert.equal(ready.snapshotToApply, null);
    assert.equal(ready.logWrite, null);
    const after = f.core.status();
    for (const key of ['term', 'votedFor', 'leaderId', 'role', 'snapshotIndex', 'firstIndex', 'lastIndex', 'commitIndex'] as const) {
      assert.equal(after[key], before[key], key);
    }
    // Nothing of the stale chunk was kept: a current-term chunk continuing at offset 10 is refused.
    const next = f.feed(installSnapshot(2, 1, 3, 10, 2, bytes('abcdefghij'), 10, true));
    const reply = only(next.messages.filter(isSnapReply));
    assert.deepEqual([reply.installed, reply.nextOffset], [false, 0]);
    assert.equal(f.core.status().snapshotIndex, 0);
    // A complete older-term snapshot (done) is refused too.
    const done = f.feed(installSnapshot(0, 1, 2, 10, 2, bytes('x'), 0, true));
    assert.deepEqual([only(done.messages.filter(isSnapReply)).installed, only(done.messages.filter(isSnapReply)).term], [false, 3]);
    assert.equal(done.snapshotToApply, null);
    assert.equal(f.core.status().snapshotIndex, 0);
    assert.equal(f.disk.snapshot, null);
  });
});

// ===================================================================================== restart

describe('restart from PersistentState with a snapshot', () => {
  test('commitIndex = appliedIndex = snapshot.index, firstIndex = snapshot.index + 1, nothing to do', () => {
    const data = encodeState(range(30).map((i) => `c${i + 1}`));
    const state: PersistentState = {
      hardState: { term: 2, votedFor: 0 },
      snapshot: { index: 30, term: 2, data },
      entries: [ent(31, 2), ent(32, 2), ent(33, 2)],
    };
    const core = new RaftCore(makeConfig(1, 3, undefined), state);
    const status = core.status();
    assert.equal(status.snapshotIndex, 30);
    assert.equal(status.firstIndex, 31);
    assert.equal(status.lastIndex, 33);
    assert.equal(status.lastTerm, 2);
    assert.equal(status.commitIndex, 30);
    assert.equal(status.appliedIndex, 30);
    assert.equal(status.term, 2);
    assert.equal(status.votedFor, 0);
    assert.equal(core.entryAt(30), undefined);
    assert.equal(core.entryAt(31)?.term, 2);
    assert.equal(core.hasReady(), false, 'the driver restores the state machine itself; nothing to apply or persist');

    const empty = new RaftCore(makeConfig(1, 3, undefined), { ...state, entries: [] });
    assert.equal(empty.status().firstIndex, 31);
    assert.equal(empty.status().lastIndex, 30);
    assert.equal(empty.status().lastTerm, 2);
  });

  test('a leader restarted from its disk (snapshot + later entries) brings a far-behind follower up to date via InstallSnapshot', () => {
    const { c, data } = laggingFollower({ total: 30, snapshotAt: 25 });
    c.node(0).restart();
    c.node(1).restart();
    const s0 = c.core(0).status();
    assert.equal(s0.role, 'follower');
    assert.equal(s0.commitIndex, 25);
    assert.equal(s0.appliedIndex, 25);
    assert.equal(s0.snapshotIndex, 25);
    assert.equal(s0.firstIndex, 26);
    assert.equal(s0.lastIndex, 30);
    assert.deepEqual(labels(c.node(0).sm), ['R25']);

    c.elect(0);
    assert.equal(c.core(0).term, 2);
    c.propose(0, 'c31'); // commits 26..30 with it (§5.4.2)
    c.settle();
    assert.equal(c.core(1).status().commitIndex, 31);

    const mark = c.sent.length;
    heal(c, 2);
    c.runUntil(appliedTo(c, 2, 31), 3 * HB, 'node 2 catches up from the restarted leader');
    const chunk = only(c.chunksTo(2, mark));
    assert.deepEqual(
      [chunk.term, chunk.lastIncludedIndex, chunk.lastIncludedTerm, chunk.offset, chunk.done],
      [2, 25, 1, 0, true],
    );
    assert.deepEqual(chunk.data, data, 'the restored snapshot bytes are sent');
    const f = c.node(2);
    assert.deepEqual(labels(f.sm), [1, 2, 3, 'S25', 26, 27, 28, 29, 30, 31]);
    assert.deepEqual(stateOf(f.sm), stateOf(c.node(0).sm));
    assert.deepEqual(stateOf(f.sm), range(31).map((i) => `c${i + 1}`));
    assert.equal(f.core.status().firstIndex, 26);
  });
});

describe('snapshot transfer overtaken by the log', () => {
  test('a success reply that shows the follower already beyond the snapshot ends the transfer (liveness)', () => {
    // Found with three real KvServers: a late AppendEntries success raised match above the
    // snapshot while the peer stayed in `snapshot` state, and the installed=true answer to the
    // snapshot (at an index <= match) was ignored, so the follower never got new entries again.
    const { c } = laggingFollower({ total: 20, snapshotAt: 15, chunkBytes: 4 });
    const progress = (): { state: string; match: number; next: number } => {
      const pr = c.core(0).status().progress.get(2)!;
      return { state: pr.state, match: pr.match, next: pr.next };
    };
    // Node 2 (still cut off) says its log ends at 3: the leader must send the snapshot.
    c.node(0).feed({ type: 'AppendEntriesReply', from: 2, to: 0, term: 1, success: false, prevLogIndex: progress().next - 1, matchIndex: 0, conflictTerm: 0, conflictIndex: 0, lastLogIndex: 3, readContext: 0 });
    assert.equal(progress().state, 'snapshot');
    // A late success reply (to an AppendEntries sent before node 2 fell behind in this story)
    // says node 2 matches the leader up to 18, past the snapshot at 15.
    c.node(0).feed({ type: 'AppendEntriesReply', from: 2, to: 0, term: 1, success: true, prevLogIndex: 15, matchIndex: 18, conflictTerm: 0, conflictIndex: 0, lastLogIndex: 18, readContext: 0 });
    assert.equal(progress().state, 'replicate');
    assert.equal(progress().match, 18);
    assert.equal(progress().next, 21, 'entries 19..20 were sent');
    // Back to snapshot state once more: an installed=true answer at or below match ends it too.
    c.node(0).feed({ type: 'AppendEntriesReply', from: 2, to: 0, term: 1, success: false, prevLogIndex: 20, matchIndex: 0, conflictTerm: 0, conflictIndex: 0, lastLogIndex: 3, readContext: 0 });
    assert.equal(progress().state, 'probe', 'a rejection with match 18 known probes from 19, which is not compacted');
    c.core(0).step({ type: 'InstallSnapshotReply', from: 2, to: 0, term: 1, lastIncludedIndex: 15, nextOffset: 0, installed: true });
    c.node(0).drain();
    assert.equal(progress().state, 'probe', 'a stale installed answer does not disturb a probe');
  });
});

// ===================================================================================== snapshotStored

describe('snapshotStored(index, body, checksum): the durable copy replaces the one handed in', () => {
  /** A body over a private copy of `data` that records every range read from it. */
  function recordingBody(data: Uint8Array): { body: { byteLength: number; subarray(start: number, end: number): Uint8Array }; calls: Array<[number, number]>; copy: Uint8Array } {
    const copy = data.slice();
    const calls: Array<[number, number]> = [];
    return {
      copy,
      calls,
      body: {
        byteLength: copy.byteLength,
        subarray(start: number, end: number): Uint8Array {
          calls.push([start, end]);
          return copy.subarray(start, end);
        },
      },
    };
  }

  const SIZE = 1_000;
  const CHUNK = 100;

  test('the chunks a leader sends to a lagging follower come from the stored body, with the checksum given', () => {
    const original = patternBytes(SIZE, 41);
    const { c } = laggingFollower({ total: 25, snapshotAt: 20, chunkBytes: CHUNK, data: original });
    const stored = recordingBody(original);
    c.core(0).snapshotStored(20, stored.body, crc32c(original));
    assert.equal(c.core(0).hasReady(), false, 'nothing to do: only the body changed');
    const mark = c.sent.length;
    heal(c, 2);
    c.runUntil(appliedTo(c, 2, 25), 3 * HB, 'node 2 catches up');
    const chunks = c.chunksTo(2, mark);
    assert.ok(chunks.length >= SIZE / CHUNK);
    for (const chunk of chunks) {
      assert.equal(chunk.data.buffer, stored.copy.buffer, `chunk at ${chunk.offset} was read from the stored body`);
      assert.equal(chunk.checksum, crc32c(original));
      assert.ok(
        stored.calls.some(([s, e]) => s === chunk.offset && e === chunk.offset + chunk.data.length),
        `subarray(${chunk.offset}, ${chunk.offset + chunk.data.length}) was called`,
      );
    }
    assert.deepEqual(
      stored.calls.filter(([s, e]) => e - s !== CHUNK),
      [],
      'with the checksum given, no whole-body checksum pass reads the body',
    );
    assert.deepEqual(snapshotBodyBytes(c.node(2).disk.snapshot!.data), original);
    assert.deepEqual(labels(c.node(2).sm), [1, 2, 3, 'S20', 21, 22, 23, 24, 25]);
  });

  test('without a checksum, the checksum the leader sends is computed from the stored body', () => {
    const original = patternBytes(SIZE, 42);
    const { c } = laggingFollower({ total: 25, snapshotAt: 20, chunkBytes: CHUNK, data: original });
    const stored = recordingBody(original);
    c.core(0).snapshotStored(20, stored.body);
    heal(c, 2);
    c.runUntil(appliedTo(c, 2, 25), 3 * HB, 'node 2 catches up');
    assert.ok(stored.calls.some(([s, e]) => s === 0 && e === SIZE), 'a whole-body pass over the stored body for the checksum');
    assert.deepEqual(snapshotBodyBytes(c.node(2).disk.snapshot!.data), original);
  });

  test('a body of another length trips the invariant and changes nothing', () => {
    const original = patternBytes(SIZE, 43);
    const { c } = laggingFollower({ total: 25, snapshotAt: 20, chunkBytes: CHUNK, data: original });
    const shorter = recordingBody(original.subarray(0, SIZE - 1));
    assert.throws(() => c.core(0).snapshotStored(20, shorter.body), (error: unknown) => {
      assert.ok(error instanceof InvariantError, String(error));
      assert.match(error.message, /stored snapshot at 20 has 999 bytes, 1000 were written/);
      return true;
    });
    assert.throws(() => c.core(0).snapshotStored(20, new Uint8Array(SIZE + 1)), InvariantError);
    const mark = c.sent.length;
    heal(c, 2);
    c.runUntil(appliedTo(c, 2, 25), 3 * HB, 'node 2 catches up');
    assert.deepEqual(shorter.calls, [], 'the refused body is never read');
    assert.ok(c.chunksTo(2, mark).every((m) => m.data.buffer !== shorter.copy.buffer));
    assert.deepEqual(snapshotBodyBytes(c.node(2).disk.snapshot!.data), original);
  });

  test('a stale (or not yet taken) index is ignored, whatever the body’s length', () => {
    const original = patternBytes(SIZE, 44);
    const { c } = laggingFollower({ total: 25, snapshotAt: 20, chunkBytes: CHUNK, data: original });
    const stale = recordingBody(patternBytes(SIZE, 45));
    c.core(0).snapshotStored(19, stale.body, 123);
    c.core(0).snapshotStored(21, stale.body, 123);
    c.core(0).snapshotStored(19, new Uint8Array(5)); // no length check either
    // A newer snapshot replaces the one at 20: storing 20 afterwards is stale too.
    c.snapshot(0, 22);
    c.core(0).snapshotStored(20, stale.body, 123);
    const mark = c.sent.length;
    heal(c, 2);
    c.runUntil(appliedTo(c, 2, 25), 3 * HB, 'node 2 catches up');
    assert.deepEqual(stale.calls, []);
    const chunks = c.chunksTo(2, mark);
    assert.ok(chunks.length > 0 && chunks.every((m) => m.lastIncludedIndex === 22 && m.checksum !== 123));
    assert.deepEqual(labels(c.node(2).sm), [1, 2, 3, 'S22', 23, 24, 25]);
    assert.deepEqual(stateOf(c.node(2).sm), stateOf(c.node(0).sm));
  });

  test('a transfer already under way keeps the body it started with', () => {
    const original = patternBytes(SIZE, 46);
    const { c } = laggingFollower({ total: 25, snapshotAt: 20, chunkBytes: CHUNK, data: original });
    const mark = c.sent.length;
    heal(c, 2);
    // Deliver until node 2 holds some of the snapshot, then store a new body.
    c.runUntil(() => c.delivered.filter((m) => isSnap(m) && m.to === 2).length >= 3, 3 * HB, 'the transfer starts');
    const stored = recordingBody(original);
    c.core(0).snapshotStored(20, stored.body, crc32c(original));
    c.runUntil(appliedTo(c, 2, 25), 3 * HB, 'node 2 catches up');
    const chunks = c.chunksTo(2, mark);
    assert.ok(chunks.some((m) => m.done));
    assert.ok(chunks.every((m) => m.data.buffer !== stored.copy.buffer), 'no chunk of the transfer under way came from the new body');
    assert.deepEqual(snapshotBodyBytes(c.node(2).disk.snapshot!.data), original);
  });
});
