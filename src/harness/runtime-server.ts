import { isRequest, type Entry, type Message, type NodeId, type PersistentState, type Snapshot } from '../core/messages.js';
import { NO_VOTE } from '../core/messages.js';
import type { LogWrite } from '../core/ready.js';
import type { HardState } from '../core/messages.js';
import { RaftNode } from '../runtime/node.js';
import type { ClientEnd, RpcServer } from '../sim/network.js';
import type { Persister } from '../sim/persister.js';
import { Prng } from '../sim/prng.js';
import type { SimTiming } from '../sim/sim-node.js';
import type { Storage } from '../storage/storage.js';
import type { Transport } from '../transport/transport.js';

/** What the 6.824 harness needs from one server, whichever driver runs it. */
export interface HarnessServer extends RpcServer<Message, Message> {
  start(command: Uint8Array): { index: number; term: number; isLeader: boolean };
  getState(): { term: number; isLeader: boolean };
  snapshot(index: number, data: Uint8Array): void;
  kill(): void;
}

/** Storage over the harness's Persister: durable at once, so it never delays a reply. */
class PersisterStorage implements Storage {
  constructor(private readonly persister: Persister) {}

  open(): Promise<PersistentState> {
    return Promise.resolve(this.persister.read() ?? { hardState: { term: 0, votedFor: NO_VOTE }, snapshot: null, entries: [] });
  }

  save(hardState: HardState | null, snapshot: Snapshot | null, logWrite: LogWrite | null): Promise<void> {
    this.persister.save(hardState, snapshot, logWrite);
    this.persister.sync();
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Carries RaftNode's one-way messages over the labrpc network's request/reply calls: a request
 * becomes a call whose reply is fed back to this node; a reply answers the oldest call from that
 * peer still waiting (RaftNode answers each peer's requests in the order they arrived).
 */
class LabrpcTransport implements Transport {
  private onMessage: ((message: Message) => void) | null = null;
  private readonly waiting = new Map<NodeId, ((reply: Message | null) => void)[]>();
  closed = false;

  constructor(private readonly ends: readonly ClientEnd<Message, Message>[]) {}

  start(onMessage: (message: Message) => void): Promise<void> {
    this.onMessage = onMessage;
    return Promise.resolve();
  }

  send(message: Message): void {
    if (this.closed) return;
    if (isRequest(message)) {
      this.ends[message.to]?.call(message, (reply) => {
        if (reply !== null && !this.closed) this.onMessage?.(reply);
      });
      return;
    }
    this.waiting.get(message.to)?.shift()?.(message);
  }

  /** A request from the network: hand it to the node and wait for its reply. */
  request(request: Message): Promise<Message | null> {
    if (this.closed || this.onMessage === null) return Promise.resolve(null);
    return new Promise((resolve) => {
      const queue = this.waiting.get(request.from) ?? [];
      queue.push(resolve);
      this.waiting.set(request.from, queue);
      this.onMessage!(request);
    });
  }

  close(): Promise<void> {
    this.closed = true;
    for (const queue of this.waiting.values()) for (const resolve of queue.splice(0)) resolve(null);
    return Promise.resolve();
  }
}

export interface RuntimeServerOptions {
  readonly id: NodeId;
  readonly peers: readonly NodeId[];
  readonly persister: Persister;
  readonly ends: readonly ClientEnd<Message, Message>[];
  readonly timing: SimTiming;
  readonly seed: number;
  readonly apply: (entry: Entry) => void;
  readonly applySnapshot: (snapshot: Snapshot) => void;
}

/**
 * A 6.824 server backed by the real runtime: a RaftNode with its own timers, answering labrpc
 * calls. The real-time suite uses it so that the runtime driver passes the same tests.
 */
export class RuntimeServer implements HarnessServer {
  private node: RaftNode | null = null;
  private killed = false;
  private readonly transport: LabrpcTransport;

  constructor(options: RuntimeServerOptions) {
    this.transport = new LabrpcTransport(options.ends);
    const { timing } = options;
    void RaftNode.start({
      id: options.id,
      peers: options.peers,
      storage: new PersisterStorage(options.persister),
      transport: this.transport,
      stateMachine: { apply: options.apply, restore: options.applySnapshot },
      timing: {
        tickMs: timing.tickMs,
        heartbeatMs: timing.heartbeatIntervalTicks * timing.tickMs,
        electionTimeoutMinMs: timing.electionTimeoutTicksMin * timing.tickMs,
        electionTimeoutMaxMs: timing.electionTimeoutTicksMax * timing.tickMs,
      },
      appendBytesMax: timing.appendBytesMax,
      inboxMax: Number.MAX_SAFE_INTEGER,
      random: new Prng(options.seed),
    }).then((node) => {
      if (this.killed) void node.stop();
      else this.node = node;
    });
  }

  start(command: Uint8Array): { index: number; term: number; isLeader: boolean } {
    const node = this.node;
    if (node === null || this.killed) return { index: -1, term: 0, isLeader: false };
    const result = node.start(command);
    return result === null ? { index: -1, term: node.status().term, isLeader: false } : { ...result, isLeader: true };
  }

  getState(): { term: number; isLeader: boolean } {
    const status = this.node?.status();
    return { term: status?.term ?? 0, isLeader: !this.killed && status?.role === 'leader' };
  }

  snapshot(index: number, data: Uint8Array): void {
    if (!this.killed) this.node?.snapshot(index, data);
  }

  dispatch(request: Message): Promise<Message | null> | null {
    if (this.killed || this.node === null) return null;
    return this.transport.request(request);
  }

  kill(): void {
    this.killed = true;
    void this.node?.stop();
  }
}
