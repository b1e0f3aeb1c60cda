/**
 * An in-process transport for tests: every node of a hub can reach every other, asynchronously
 * (each message is delivered in its own setImmediate), with links that can be cut one direction at
 * a time to simulate partitions. Messages go through the codec on the way, so a receiver never
 * shares objects with the sender and a message the codec cannot carry fails at send(), as it would
 * over TCP.
 */
import { decodeMessage, encodeMessage } from '../codec/codec.js';
import type { Message, NodeId } from '../core/messages.js';
import type { Transport } from './transport.js';

export interface MemoryHubStats {
  readonly sent: number;
  readonly delivered: number;
  /** The link was down, or the receiver was missing, not started or closed at delivery time. */
  readonly dropped: number;
}

export class MemoryTransportHub {
  private readonly nodes = new Map<NodeId, MemoryTransport>();
  private readonly down = new Set<string>();
  private counters = { sent: 0, delivered: 0, dropped: 0 };

  /** A transport for `nodeId`; replaces a closed one (a restarted node), refuses a live duplicate. */
  create(nodeId: NodeId): MemoryTransport {
    const existing = this.nodes.get(nodeId);
    if (existing !== undefined && !existing.isClosed) throw new Error(`node ${nodeId} already has an open transport`);
    const transport = new MemoryTransport(this, nodeId);
    this.nodes.set(nodeId, transport);
    return transport;
  }

  /** Cuts (false) or restores (true) delivery from `from` to `to`; the other direction is unaffected. */
  setLinkUp(from: NodeId, to: NodeId, up: boolean): void {
    const key = `${from}>${to}`;
    if (up) this.down.delete(key);
    else this.down.add(key);
  }

  isLinkUp(from: NodeId, to: NodeId): boolean {
    return !this.down.has(`${from}>${to}`);
  }

  get stats(): MemoryHubStats {
    return { ...this.counters };
  }

  /** @internal */
  route(message: Message): void {
    const bytes = encodeMessage(message);
    this.counters.sent++;
    setImmediate(() => {
      const target = this.nodes.get(message.to);
      if (target === undefined || !this.isLinkUp(message.from, message.to) || !target.deliver(decodeMessage(bytes))) {
        this.counters.dropped++;
        return;
      }
      this.counters.delivered++;
    });
  }
}

export class MemoryTransport implements Transport {
  private onMessage: ((message: Message) => void) | null = null;
  private closed = false;

  /** Use MemoryTransportHub.create. */
  constructor(
    private readonly hub: MemoryTransportHub,
    readonly nodeId: NodeId,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  start(onMessage: (message: Message) => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error('MemoryTransport is closed'));
    if (this.onMessage !== null) return Promise.reject(new Error('MemoryTransport already started'));
    this.onMessage = onMessage;
    return Promise.resolve();
  }

  send(message: Message): void {
    if (this.closed) return;
    if (message.from !== this.nodeId) {
      throw new Error(`MemoryTransport of node ${this.nodeId} asked to send a message from node ${message.from}`);
    }
    this.hub.route(message);
  }

  close(): Promise<void> {
    this.closed = true;
    this.onMessage = null;
    return Promise.resolve();
  }

  /** @internal Returns false if this transport cannot take the message. */
  deliver(message: Message): boolean {
    if (this.closed || this.onMessage === null) return false;
    this.onMessage(message);
    return true;
  }
}
