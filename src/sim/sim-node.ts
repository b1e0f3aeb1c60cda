import { assert } from '../core/assert.js';
import type { RaftConfig } from '../core/config.js';
import { isRequest, type Entry, type Message, type NodeId, type Snapshot } from '../core/messages.js';
import { RaftCore } from '../core/raft.js';
import { ReadyDriver } from '../driver/ready-driver.js';
import type { RandomSource } from '../core/rng.js';
import type { ClientEnd, RpcServer } from './network.js';
import type { Persister } from './persister.js';
import type { Scheduler, Timer } from './scheduler.js';

export interface SimTiming {
  /** Wall or virtual milliseconds per core tick. */
  readonly tickMs: number;
  readonly electionTimeoutTicksMin: number;
  readonly electionTimeoutTicksMax: number;
  readonly heartbeatIntervalTicks: number;
  readonly appendBytesMax: number;
}

export interface SimNodeOptions {
  readonly id: NodeId;
  readonly peers: readonly NodeId[];
  readonly scheduler: Scheduler;
  readonly persister: Persister;
  /** ends[j] is this server's endpoint to server j. */
  readonly ends: readonly ClientEnd<Message, Message>[];
  readonly random: RandomSource;
  readonly timing: SimTiming;
  /** Receives committed entries in order; may throw to fail the run. */
  readonly apply: (entry: Entry) => void;
  /** Receives a snapshot from the leader that replaces the application's state. */
  readonly applySnapshot?: ((snapshot: Snapshot) => void) | undefined;
  /** Bytes per InstallSnapshot chunk (core default when omitted). */
  readonly snapshotChunkBytes?: number | undefined;
  /** Receives one line per message and per change of role, term or commit index, for debugging. */
  readonly trace?: ((line: string) => void) | undefined;
  /** Called after every Ready was handled (recordings for the replay page); must not change the run. */
  readonly observe?: ((node: SimNode) => void) | undefined;
}

/**
 * Drives one RaftCore inside the simulator: ticks it on the scheduler's clock, serves incoming RPCs
 * as a labrpc server, and hands every Ready to the one ReadyDriver (src/driver/ready-driver.ts)
 * with a disk that is durable at once, so a request's reply is ready when dispatch() returns.
 * This is the 6.824 `Raft` object as the tests see it: `start()`, `getState()`, `kill()`. (The
 * real-time suite and the explorer run RaftNode itself; labrpc's call-and-reply model is why this
 * adapter exists.)
 */
export class SimNode implements RpcServer<Message, Message> {
  readonly id: NodeId;
  readonly core: RaftCore;
  private readonly options: SimNodeOptions;
  private killed = false;
  private tickTimer: Timer | null = null;
  private readonly driver: ReadyDriver;
  private readyScheduled = false;
  private processing = false;
  private snapshotRequests: { index: number; data: Uint8Array }[] = [];
  /** The request being dispatched, whose reply is captured from the Ready that follows it. */
  private request: Message | null = null;
  private pendingReply: Message | null = null;

  constructor(options: SimNodeOptions) {
    this.options = options;
    this.id = options.id;
    const { timing } = options;
    const config: RaftConfig = {
      id: options.id,
      peers: options.peers,
      electionTimeoutTicksMin: timing.electionTimeoutTicksMin,
      electionTimeoutTicksMax: timing.electionTimeoutTicksMax,
      heartbeatIntervalTicks: timing.heartbeatIntervalTicks,
      appendBytesMax: timing.appendBytesMax,
      random: options.random,
      ...(options.snapshotChunkBytes === undefined ? {} : { snapshotChunkBytes: options.snapshotChunkBytes }),
    };
    this.core = new RaftCore(config, options.persister.read());
    const persister = options.persister;
    this.driver = new ReadyDriver(
      this.core,
      (hardState, snapshot, logWrite, done) => {
        persister.save(hardState, snapshot, logWrite);
        persister.sync();
        done(null);
      },
      {
        feed: () => {
          for (const { index, data } of this.snapshotRequests.splice(0)) this.core.snapshot(index, data);
        },
        send: (message) => this.send(message),
        restore: (snapshot) => {
          assert(options.applySnapshot !== undefined, () => `node ${this.id} received a snapshot but has no snapshot applier`);
          options.applySnapshot(snapshot);
        },
        apply: (entry) => options.apply(entry),
        confirmReads: () => undefined,
        // A failed check in the application or the core fails the test run at once.
        fail: (error) => {
          throw error;
        },
      },
    );
    this.scheduleTick();
  }

  /** 6.824 Start(): returns at once; the entry is sent with the next Ready, batched with its neighbours. */
  start(command: Uint8Array): { index: number; term: number; isLeader: boolean } {
    if (this.killed) return { index: -1, term: this.core.term, isLeader: false };
    const result = this.core.propose(command);
    if (result === null) return { index: -1, term: this.core.term, isLeader: false };
    this.scheduleReady();
    return { index: result.index, term: result.term, isLeader: true };
  }

  /**
   * 6.824 Snapshot(index, data). The application may call it from inside its apply callback; the
   * core takes it once the Ready being applied is finished.
   */
  snapshot(index: number, data: Uint8Array): void {
    if (this.killed) return;
    if (this.processing) {
      this.snapshotRequests.push({ index, data });
      return;
    }
    this.core.snapshot(index, data);
    this.processReady(null);
  }

  getState(): { term: number; isLeader: boolean } {
    return { term: this.core.term, isLeader: this.core.isLeader };
  }

  /** Stops ticking and ignores every later input. Durable state stays in the persister. */
  kill(): void {
    this.killed = true;
    this.tickTimer?.cancel();
    this.tickTimer = null;
  }

  dispatch(request: Message): Message | null {
    if (this.killed) return null;
    assert(isRequest(request), () => `dispatch of a non-request ${request.type}`);
    this.core.step(request);
    this.pendingReply = null;
    this.processReady(request);
    const reply = this.pendingReply;
    this.pendingReply = null;
    assert(reply !== null, () => `node ${this.id} produced no reply to ${request.type} from ${request.from}`);
    return reply;
  }

  private scheduleTick(): void {
    this.tickTimer = this.options.scheduler.schedule(this.options.timing.tickMs, () => {
      if (this.killed) return;
      this.core.tick();
      this.processReady(null);
      this.scheduleTick();
    });
  }

  private scheduleReady(): void {
    if (this.readyScheduled) return;
    this.readyScheduled = true;
    this.options.scheduler.schedule(0, () => {
      this.readyScheduled = false;
      if (!this.killed) this.processReady(null);
    });
  }

  private receiveReply(reply: Message | null): void {
    if (reply === null || this.killed) return;
    this.core.step(reply);
    this.processReady(null);
  }

  private lastTraced = '';

  private traceState(): void {
    const status = this.core.status();
    const state = `${status.role} term=${status.term} log=${status.lastIndex}@${status.lastTerm} commit=${status.commitIndex}`;
    if (state !== this.lastTraced) {
      this.lastTraced = state;
      this.options.trace!(`${this.options.scheduler.now().toFixed(0).padStart(7)} ms  node ${this.id}: ${state}`);
    }
  }

  private traceMessage(message: Message): void {
    const { type, from, to, term, ...rest } = message;
    const fields = Object.entries(rest)
      .map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v.length}]` : String(v)}`)
      .join(' ');
    this.options.trace!(`${this.options.scheduler.now().toFixed(0).padStart(7)} ms    ${from}->${to} ${type} t${term} ${fields}`);
  }

  private processReady(request: Message | null): void {
    if (this.options.trace !== undefined) this.traceState();
    this.processing = true;
    this.request = request;
    try {
      this.driver.run();
    } finally {
      this.processing = false;
      this.request = null;
    }
    if (this.options.trace !== undefined) this.traceState();
    if (this.options.observe !== undefined) this.options.observe(this);
  }

  private send(message: Message): void {
    if (this.options.trace !== undefined) this.traceMessage(message);
    const request = this.request;
    if (request !== null && !isRequest(message) && message.to === request.from) {
      assert(this.pendingReply === null, () => `node ${this.id} produced two replies to one request`);
      this.pendingReply = message;
      return;
    }
    assert(isRequest(message), () => `node ${this.id} sent an unsolicited ${message.type}`);
    const end = this.options.ends[message.to];
    assert(end !== undefined, () => `node ${this.id} has no endpoint to ${message.to}`);
    end.call(message, (reply) => this.receiveReply(reply));
  }
}
