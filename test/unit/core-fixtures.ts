/**
 * Shared fixtures for the tests that drive RaftCore: timing constants, log entries, message
 * builders, and the test kit that runs a core through the real ReadyDriver (DrivenCore, with a
 * FakeDisk behind it). Not a test file itself (it does not end in .test.ts).
 */
import assert from 'node:assert/strict';
import { INJECTED_BUGS, type InjectedBug } from '../../src/core/bugs.js';
import { DEFAULT_TIMING, type RaftConfig } from '../../src/core/config.js';
import {
  NO_VOTE,
  type AppendEntries,
  type AppendEntriesReply,
  type Entry,
  type HardState,
  type LogIndex,
  type Message,
  type NodeId,
  type PersistentState,
  type RequestVote,
  type RequestVoteReply,
  type Snapshot,
  type Term,
} from '../../src/core/messages.js';
import { RaftCore, type ProposeResult } from '../../src/core/raft.js';
import type { LogWrite, Ready, ReadState } from '../../src/core/ready.js';
import type { RandomSource } from '../../src/core/rng.js';
import { ReadyDriver, type DriverBug, type DurableWrite } from '../../src/driver/ready-driver.js';
import { snapshotBodyBytes } from '../../src/core/snapshot-body.js';

/** Always draws the minimum election timeout (DEFAULT_TIMING.electionTimeoutTicksMin ticks). */
export const FIXED: RandomSource = { nextInt: () => 0 };
export const ET_MIN = DEFAULT_TIMING.electionTimeoutTicksMin;
export const ET_MAX = DEFAULT_TIMING.electionTimeoutTicksMax;
export const HB = DEFAULT_TIMING.heartbeatIntervalTicks;

const encoder = new TextEncoder();
export const bytes = (s: string): Uint8Array => encoder.encode(s);
export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

export function ent(index: LogIndex, term: Term, command = `${index}@${term}`): Entry {
  return { index, term, command: bytes(command) };
}

/** A log whose entry i+1 has term terms[i]. */
export function log(...terms: Term[]): Entry[] {
  return terms.map((term, i) => ent(i + 1, term));
}

export function rv(from: NodeId, to: NodeId, term: Term, lastLogIndex: LogIndex, lastLogTerm: Term): RequestVote {
  return { type: 'RequestVote', from, to, term, lastLogIndex, lastLogTerm };
}

export function rvr(from: NodeId, to: NodeId, term: Term, voteGranted: boolean): RequestVoteReply {
  return { type: 'RequestVoteReply', from, to, term, voteGranted };
}

export function ae(
  from: NodeId,
  to: NodeId,
  term: Term,
  prevLogIndex: LogIndex,
  prevLogTerm: Term,
  entries: Entry[],
  leaderCommit: LogIndex,
): AppendEntries {
  return { type: 'AppendEntries', from, to, term, prevLogIndex, prevLogTerm, entries, leaderCommit, readContext: 0 };
}

export function aer(
  from: NodeId,
  to: NodeId,
  term: Term,
  success: boolean,
  prevLogIndex: LogIndex,
  matchIndex: LogIndex,
  lastLogIndex = matchIndex,
): AppendEntriesReply {
  return {
    type: 'AppendEntriesReply',
    from,
    to,
    term,
    success,
    prevLogIndex,
    matchIndex: success ? matchIndex : 0,
    conflictTerm: 0,
    conflictIndex: 0,
    lastLogIndex,
    readContext: 0,
  };
}

// ================================================================= the driven core (test kit)

/**
 * Everything a Ready vouches for and everything it does not, in the order the driver must handle
 * them: the leader's replication first, then the rest. Tests that inspect one Ready by hand look
 * for AppendEntries and InstallSnapshot here, since they may be in either list.
 */
export function allMessages(ready: Ready): Message[] {
  return [...ready.messagesBeforePersist, ...ready.messages];
}

/**
 * A node's durable state: what a crash leaves behind. Writes are checked on the way in (a snapshot
 * only moves forward, a log write leaves no gap and never overwrites the snapshot), and `check`
 * tells whether a message promises only what is already here.
 */
export class FakeDisk {
  hardState: HardState;
  snapshot: Snapshot | null;
  /** The durable log after the snapshot, consecutive from snapshot.index + 1. */
  entries: Entry[];
  /** How many writes were made durable. */
  writes = 0;

  constructor(
    readonly id: NodeId,
    restored?: PersistentState,
  ) {
    this.hardState = restored?.hardState ?? { term: 0, votedFor: NO_VOTE };
    this.snapshot = restored?.snapshot ?? null;
    this.entries = [...(restored?.entries ?? [])];
  }

  /** What a restart reads back. */
  persistentState(): PersistentState {
    return { hardState: this.hardState, snapshot: this.snapshot, entries: [...this.entries] };
  }

  get snapshotIndex(): LogIndex {
    return this.snapshot?.index ?? 0;
  }

  get lastIndex(): LogIndex {
    return this.snapshotIndex + this.entries.length;
  }

  /** The durable term at `index`: the snapshot's at or below it (-1 when compacted away), undefined if absent. */
  term(index: LogIndex): Term | undefined {
    if (index === this.snapshotIndex) return this.snapshot?.term ?? 0;
    if (index < this.snapshotIndex) return -1;
    return this.entries[index - this.snapshotIndex - 1]?.term;
  }

  /** The disk holds index (in its log, or covered by its snapshot). */
  holds(index: LogIndex): boolean {
    return index <= this.lastIndex;
  }

  /** Makes one Ready's writes durable: hardState, then the snapshot, then the log write. */
  write(hardState: HardState | null, snapshot: Snapshot | null, logWrite: LogWrite | null): void {
    const id = this.id;
    if (hardState !== null) {
      assert.ok(hardState.term >= this.hardState.term, `node ${id}: durable term would go back from ${this.hardState.term} to ${hardState.term}`);
      this.hardState = hardState;
    }
    if (snapshot !== null) {
      const previous = this.snapshotIndex;
      assert.ok(snapshot.index > previous, `node ${id}: snapshotWrite at ${snapshot.index} does not move past the durable one at ${previous}`);
      this.snapshot = { ...snapshot, data: snapshotBodyBytes(snapshot.data).slice() };
      this.entries = this.entries.filter((e) => e.index > snapshot.index);
      const first = this.entries[0];
      if (first !== undefined) assert.equal(first.index, snapshot.index + 1, `node ${id}: durable log does not follow the snapshot`);
    }
    if (logWrite !== null) {
      const { fromIndex, entries } = logWrite;
      const base = this.snapshotIndex;
      const last = this.lastIndex;
      assert.ok(fromIndex > base, `node ${id}: logWrite from ${fromIndex} overwrites the snapshot at ${base}`);
      assert.ok(fromIndex <= last + 1, `node ${id}: logWrite from ${fromIndex} leaves a gap after ${last}`);
      entries.forEach((entry, i) => assert.equal(entry.index, fromIndex + i, `node ${id}: logWrite entries must be consecutive`));
      this.entries.length = fromIndex - base - 1;
      this.entries.push(...entries);
    }
    this.writes++;
  }

  /**
   * Persist-before-send, checked against what is durable right now: a message must not carry a
   * term, grant a vote or acknowledge entries or a snapshot that a crash would take back. `memory`
   * is the sender's core, for the term of an acknowledged entry.
   */
  check(message: Message, memory: RaftCore): void {
    const id = this.id;
    // Pre-vote traffic speaks of the next term hypothetically; everything else carries the durable term.
    if (message.type !== 'PreVote' && message.type !== 'PreVoteReply') {
      // At most the durable term: a Ready may still carry a message of a term the node has since
      // left (two elections fed in one go), never one of a term it has not made durable.
      assert.ok(message.term <= this.hardState.term, `node ${id} sends ${message.type} in term ${message.term} before persisting it`);
    }
    if (message.type === 'RequestVoteReply' && message.voteGranted) {
      assert.equal(this.hardState.votedFor, message.to, `node ${id} grants a vote before persisting it`);
    }
    if (message.type === 'AppendEntriesReply' && message.success && message.matchIndex > 0) {
      const durable = this.term(message.matchIndex);
      const ok = durable === -1 || (durable !== undefined && durable === (memory.entryAt(message.matchIndex)?.term ?? durable));
      assert.ok(ok, `node ${id} acknowledges index ${message.matchIndex} before persisting it`);
    }
    if (message.type === 'InstallSnapshotReply' && message.installed) {
      assert.ok(this.holds(message.lastIncludedIndex), `node ${id} acknowledges snapshot ${message.lastIncludedIndex} before persisting it`);
    }
  }
}

/** What a DrivenCore did, in order. */
export type DriverEvent =
  | { readonly kind: 'send'; readonly message: Message }
  /** The driver handed a Ready's writes to the disk (not yet durable). */
  | { readonly kind: 'write'; readonly hardState: HardState | null; readonly snapshot: Snapshot | null; readonly logWrite: LogWrite | null }
  /** That write is durable. */
  | { readonly kind: 'synced' }
  | { readonly kind: 'restore'; readonly snapshot: Snapshot }
  | { readonly kind: 'apply'; readonly entry: Entry }
  | { readonly kind: 'reads'; readonly states: readonly ReadState[] }
  | { readonly kind: 'advanced'; readonly ready: Ready };

export interface DrivenCoreOptions {
  readonly config: RaftConfig;
  /** The durable state the core starts from (and the disk holds). */
  readonly restored?: PersistentState;
  /** Drive this core (built from `config` and `restored`) instead of building one. */
  readonly core?: RaftCore;
  /** 'sync' (default): a write is durable before the driver's write call returns; 'deferred': it waits for sync(). */
  readonly writes?: 'sync' | 'deferred';
  readonly driverBugs?: ReadonlySet<DriverBug>;
  /** Check every sent message against the disk (FakeDisk.check); on by default. */
  readonly checkDurable?: boolean;
  /** Each message the driver sends, after it passed the durability check. */
  readonly onSend?: (message: Message) => void;
  /** Each committed entry handed to the application, after the checks. */
  readonly onApply?: (entry: Entry) => void;
  /** A snapshot from the leader replaces the application's state. */
  readonly onRestore?: (snapshot: Snapshot) => void;
}

/**
 * One RaftCore run by the real ReadyDriver (src/driver/ready-driver.ts), with a FakeDisk behind a
 * synchronous or deferred DurableWrite. Inputs (messages, ticks, reads, compactions) wait in an
 * inbox that the driver's `feed` hands to the core, exactly as in RaftNode, so they are safe to
 * give while a deferred write is outstanding; `propose` goes to the core at once (allowed
 * mid-Ready). Everything the driver does is recorded in `events`, the Readys it finished in
 * `readys`, what it sent in `sent`. A failure of the driver (an InvariantError of its own or of
 * the core, a failed check here) is kept in `failure` and thrown to the caller.
 */
export class DrivenCore {
  core: RaftCore;
  readonly disk: FakeDisk;
  driver: ReadyDriver;
  readonly events: DriverEvent[] = [];
  readonly readys: Ready[] = [];
  readonly sent: Message[] = [];
  readonly readStates: ReadState[] = [];
  failure: Error | null = null;
  private readonly options: DrivenCoreOptions;
  private inbox: Array<(core: RaftCore) => void> = [];
  private pendingWrite: {
    readonly hardState: HardState | null;
    readonly snapshot: Snapshot | null;
    readonly logWrite: LogWrite | null;
    readonly done: (error: Error | null) => void;
  } | null = null;

  constructor(options: DrivenCoreOptions) {
    this.options = options;
    this.disk = new FakeDisk(options.config.id, options.restored);
    this.core = options.core ?? new RaftCore(options.config, options.restored);
    this.driver = this.newDriver();
  }

  get id(): NodeId {
    return this.core.id;
  }

  /** A deferred write is waiting for sync(). */
  get writePending(): boolean {
    return this.pendingWrite !== null;
  }

  /** Queues a message for the core and runs the driver. */
  step(message: Message): Ready[] {
    return this.input((core) => core.step(message));
  }

  /** Queues n ticks and runs the driver. */
  tick(n = 1): Ready[] {
    return this.input((core) => {
      for (let i = 0; i < n; i++) core.tick();
    });
  }

  /** Queues any input (requestRead, snapshot, ...) and runs the driver. */
  input(give: (core: RaftCore) => void): Ready[] {
    this.inbox.push(give);
    return this.run();
  }

  /** Proposes at once (the core allows it mid-Ready) and runs the driver. */
  propose(command: Uint8Array): ProposeResult | null {
    const result = this.core.propose(command);
    this.run();
    return result;
  }

  /** Runs the driver; returns the Readys it finished during this call. */
  run(): Ready[] {
    const before = this.readys.length;
    this.driver.run();
    this.rethrow();
    return this.readys.slice(before);
  }

  /** Completes the outstanding deferred write (the driver goes on); false if there was none. */
  sync(): boolean {
    const write = this.pendingWrite;
    if (write === null) return false;
    this.pendingWrite = null;
    this.disk.write(write.hardState, write.snapshot, write.logWrite);
    this.events.push({ kind: 'synced' });
    write.done(null);
    this.rethrow();
    return true;
  }

  /** Completes deferred writes until none is outstanding; returns the Readys finished meanwhile. */
  syncAll(): Ready[] {
    const before = this.readys.length;
    for (let i = 0; this.sync(); i++) assert.ok(i < 10_000, `node ${this.id}: the driver never stops writing`);
    return this.readys.slice(before);
  }

  /** The outstanding deferred write fails: the driver must stop. */
  failWrite(error: Error): void {
    const write = this.pendingWrite;
    assert.ok(write !== null, `node ${this.id}: no write outstanding`);
    this.pendingWrite = null;
    write.done(error);
  }

  /** Crash and restart from the disk: an outstanding write is lost, and so is everything volatile. */
  restart(config: RaftConfig = this.options.config): void {
    this.driver.stop();
    this.pendingWrite = null;
    this.inbox = [];
    this.failure = null;
    this.core = new RaftCore(config, this.disk.persistentState());
    this.driver = this.newDriver();
  }

  private rethrow(): void {
    if (this.failure !== null) throw this.failure;
  }

  private newDriver(): ReadyDriver {
    const { writes = 'sync', checkDurable = true } = this.options;
    const core = this.core;
    const write: DurableWrite = (hardState, snapshot, logWrite, done) => {
      this.events.push({ kind: 'write', hardState, snapshot, logWrite });
      if (writes === 'deferred') {
        this.pendingWrite = { hardState, snapshot, logWrite, done };
        return;
      }
      this.disk.write(hardState, snapshot, logWrite);
      this.events.push({ kind: 'synced' });
      done(null);
    };
    return new ReadyDriver(
      core,
      write,
      {
        feed: () => {
          for (const give of this.inbox.splice(0)) give(core);
        },
        send: (message) => {
          if (checkDurable) this.disk.check(message, core);
          this.events.push({ kind: 'send', message });
          this.sent.push(message);
          this.options.onSend?.(message);
        },
        restore: (snapshot) => {
          assert.equal(this.disk.snapshot?.index, snapshot.index, `node ${this.id}: restores snapshot ${snapshot.index} before it is durable`);
          this.events.push({ kind: 'restore', snapshot });
          this.options.onRestore?.(snapshot);
        },
        apply: (entry) => {
          const durable = this.disk.term(entry.index);
          assert.ok(durable === entry.term, `node ${this.id}: applies entry ${entry.index} before it is durable`);
          this.events.push({ kind: 'apply', entry });
          this.options.onApply?.(entry);
        },
        confirmReads: (states) => {
          this.events.push({ kind: 'reads', states });
          this.readStates.push(...states);
        },
        fail: (error) => {
          this.failure ??= error;
        },
        advanced: (ready) => {
          this.events.push({ kind: 'advanced', ready });
          this.readys.push(ready);
        },
      },
      this.options.driverBugs,
    );
  }
}

/** A Ready with nothing in it but `fields` (for tests that hand Readys around by hand). */
export function readyOf(fields: Partial<Ready>): Ready {
  return {
    hardState: null,
    snapshotWrite: null,
    logWrite: null,
    messagesBeforePersist: [],
    messages: [],
    snapshotToApply: null,
    committed: [],
    readStates: [],
    ...fields,
  };
}

// ---------------------------------------------------------------- a small network of driven cores

/** Deterministic but different per node, or two nodes would time out in lockstep forever. */
export const counterRandom = (seed: number): { nextInt(max: number): number } => {
  let n = seed * 17;
  return { nextInt: (max: number) => n++ % max };
};

export interface Net {
  nodes: DrivenCore[];
  /** Sent and not yet delivered. */
  inflight: Message[];
}

export function makeNet(size: number, options: { preVote?: boolean; bugs?: ReadonlySet<InjectedBug>; config?: Partial<RaftConfig> } = {}): Net {
  const peers = Array.from({ length: size }, (_, i) => i);
  const net: Net = { nodes: [], inflight: [] };
  for (const id of peers) {
    let config: RaftConfig = { id, peers, ...DEFAULT_TIMING, random: counterRandom(id) };
    if (options.preVote !== undefined) config = { ...config, preVote: options.preVote };
    if (options.bugs !== undefined) config = { ...config, [INJECTED_BUGS]: options.bugs };
    if (options.config !== undefined) config = { ...config, ...options.config };
    net.nodes.push(new DrivenCore({ config, onSend: (message) => net.inflight.push(message) }));
  }
  return net;
}

export const core = (net: Net, id: NodeId): RaftCore => net.nodes[id]!.core;

/** The reads node `id` has confirmed so far (undefined: none). */
export function reads(net: Net, id: NodeId): ReadState[] | undefined {
  const states = net.nodes[id]!.readStates;
  return states.length === 0 ? undefined : [...states];
}

/** Runs every node's driver (inputs given to a core directly are handled; messages go in flight). */
export function flush(net: Net): void {
  for (const node of net.nodes) node.run();
}

/** Delivers messages (optionally filtered) until none are left. */
export function deliver(net: Net, allow: (m: Message) => boolean = () => true): void {
  flush(net);
  for (let round = 0; round < 100 && net.inflight.length > 0; round++) {
    const batch = net.inflight.splice(0);
    for (const message of batch) if (allow(message)) net.nodes[message.to]!.step(message);
  }
}

export function elect(net: Net, id: NodeId, allow: (m: Message) => boolean = () => true): void {
  const node = net.nodes[id]!;
  for (let i = 0; i < ET_MAX && !node.core.isLeader; i++) {
    node.tick();
    deliver(net, allow);
  }
  assert.ok(node.core.isLeader, `node ${id} should have won the election`);
}

