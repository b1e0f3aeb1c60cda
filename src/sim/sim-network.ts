/**
 * A simulated network whose endpoints implement `Transport`, so the random fault explorer can run
 * real RaftNodes in virtual time: one seed, one byte-identical trace.
 *
 * Why. The explorer must exercise both the faults real networks have (loss, duplication,
 * reordering, partitions, one-way cuts, a node that hears nothing) and the limits the TCP transport
 * imposes (frame size, bounded per-peer queues, snapshot chunks sharing a connection with
 * heartbeats). A network that just delivers after a random delay hides the second kind of bug: a
 * leader that floods a follower with chunks, or a proposal too big to ever travel.
 *
 * The model: every directed link behaves like one TcpTransport connection.
 * - send() drops a message over `maxFrameBytes` and encodes the rest with the codec; every delivery
 *   decodes its own copy, so a receiver never shares objects with the sender or another copy.
 * - A link moves `bytesPerMs` bytes per virtual ms. A message goes on the wire while less than
 *   WIRE_BUFFER_BYTES are untransmitted (the socket buffer); otherwise it waits in the link's queue,
 *   urgent messages ahead of InstallSnapshot chunks (bulk), as TcpTransport writes them. When
 *   `sendQueueMax` wait, the oldest bulk one is evicted, else the oldest urgent one.
 * - Once transmitted, a message propagates 1..delayMsMax ms; a link delivers in transmission order
 *   (one TCP stream), except messages picked for a long delay: held 100..3100 ms more outside that
 *   order, they are overtaken. Duplicates are independent copies; loss is decided at send().
 * - Partitions, cuts and deafness are checked at send() and again at delivery, so a fault that
 *   arises while a message is in flight still stops it.
 * - Delivery goes to whichever endpoint of `to` is started and open then: replies to a crashed
 *   node's old incarnation reach the restarted one, as they would reach a process restarted on the
 *   same address. Closing an endpoint loses what it still had queued, not what is on the wire.
 *
 * Determinism: every random draw happens in send(), from the given Prng, in a fixed order
 * (duplicate, then per copy: loss, delay, long delay); state lives in arrays indexed by node id;
 * time comes only from the given scheduler.
 *
 * Membership: the set of nodes is not fixed. Any id (0..65535) can get an endpoint at any time, and
 * its links, cuts and deafness are created on first use, so nodes added at run time (membership
 * changes) join like the first ones. A partition assigns groups by node id; an id it gives no group
 * (past the end of the array, or a hole in it) is alone on its side until the next partition() or
 * healLinks(). Cuts and deafness name ids and apply to any id, known yet or not.
 */
import { ByteWriter, MESSAGE_TAGS, decodeMessage, messageSize, writeMessage } from '../codec/codec.js';
import type { Message, MessageType, NodeId } from '../core/messages.js';
import { DEFAULT_MAX_FRAME_BYTES, DEFAULT_SEND_QUEUE_MAX } from '../transport/limits.js';
import type { Transport } from '../transport/transport.js';
import type { Prng } from './prng.js';

/** 100 MB/s: a stream of 1 MiB snapshot chunks costs about 10 ms of virtual time per chunk. */
export const DEFAULT_BYTES_PER_MS = 100_000;
/** Untransmitted bytes a link accepts before messages wait in its queue (a socket buffer). */
export const WIRE_BUFFER_BYTES = 64 * 1024;
const LONG_DELAY_MIN_MS = 100;
const LONG_DELAY_SPAN_MS = 3000;

export interface SimNetworkOptions {
  readonly scheduler: { now(): number; schedule(delayMs: number, cb: () => void): { cancel(): void } };
  readonly prng: Prng;
  /** Base one-way delay, drawn uniformly from 1..delayMsMax ms. */
  readonly delayMsMax: number;
  readonly lossPerMille: number;
  readonly duplicatePerMille: number;
  /** Messages held 100..3100 ms longer, outside their link's order. */
  readonly longDelayPerMille: number;
  /** Link bandwidth. Default DEFAULT_BYTES_PER_MS. */
  readonly bytesPerMs?: number;
  /** The largest encoded message carried. Default DEFAULT_MAX_FRAME_BYTES, as TcpTransport. */
  readonly maxFrameBytes?: number;
  /** The most messages waiting on one directed link. Default DEFAULT_SEND_QUEUE_MAX, as TcpTransport. */
  readonly sendQueueMax?: number;
  /** Receives one line per send, drop and delivery (no time prefix). */
  readonly trace?: (line: string) => void;
  /** Sees every message's fate and every change of the links (recordings for the replay page). */
  readonly observer?: SimNetworkObserver;
}

/**
 * What a recording needs to know of the network. A copy on its way is named by its encoded bytes
 * (a duplicate shares its original's, so two copies of one message share them too): `queued` when
 * it was accepted on a link, then exactly one of `delivered` or `dropped` with the same bytes.
 * A message refused or lost at send() is only `dropped`, with `bytes` null. Never called without
 * an observer, and calling it must not change the run.
 */
export interface SimNetworkObserver {
  queued(message: Message, size: number, bytes: Uint8Array): void;
  delivered(bytes: Uint8Array): void;
  dropped(message: Message | null, bytes: Uint8Array | null, size: number, why: DropReason): void;
  /** A partition, cut, deafness or heal changed which links are up (read them with isLinkUp). */
  linksChanged(): void;
}

/**
 * `sent` counts send() calls, `duplicated` the extra copies, `bytes` what was committed to the wire
 * (every copy), `inFlight` the copies queued or on the wire; sent + duplicated = delivered +
 * inFlight + every drop. Drops: `linkDown` at send() or delivery, `noReceiver` at delivery (no
 * started, open endpoint), `closed` sent from a closed endpoint or still queued when it closed.
 */
export interface SimNetworkStats {
  readonly sent: number;
  readonly delivered: number;
  readonly duplicated: number;
  readonly bytes: number;
  readonly inFlight: number;
  readonly dropped: Readonly<Record<DropReason, number>>;
}
export type DropReason = 'loss' | 'linkDown' | 'noReceiver' | 'queueFull' | 'tooLarge' | 'closed';

const TAG_NAMES: string[] = [];
for (const [type, tag] of Object.entries(MESSAGE_TAGS) as [MessageType, number][]) TAG_NAMES[tag] = type;

/** A FIFO of encoded messages with their drawn delays (negative: a long delay outside the order). */
class Fifo {
  bytes: (Uint8Array | undefined)[] = [];
  delays: number[] = [];
  head = 0;

  get length(): number {
    return this.bytes.length - this.head;
  }
  push(bytes: Uint8Array, delay: number): void {
    this.bytes.push(bytes);
    this.delays.push(delay);
  }

  /** Removes the oldest entry; read `delays[head]` first if it matters. */
  shift(): Uint8Array {
    const bytes = this.bytes[this.head] as Uint8Array;
    this.bytes[this.head++] = undefined;
    if (this.head === this.bytes.length) this.bytes.length = this.delays.length = this.head = 0;
    else if (this.head >= 1024 && this.head * 2 >= this.bytes.length) {
      // Amortized compaction keeps a link that is never idle from growing without bound.
      this.bytes.splice(0, this.head);
      this.delays.splice(0, this.head);
      this.head = 0;
    }
    return bytes;
  }
}

interface Link {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly urgent: Fifo;
  readonly bulk: Fifo;
  /** Committed, in-order messages still propagating; each arrival callback takes the oldest. */
  readonly wire: Fifo;
  /** When the last committed byte has been transmitted. */
  freeAt: number;
  /** The latest in-order arrival time, so none arrives before a message committed earlier. */
  lastArrival: number;
  pumping: boolean;
  readonly pump: () => void;
  readonly arrive: () => void;
}

function checkInt(value: number, name: string, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`SimNetwork: ${name} must be an integer in ${min}..${max}, got ${value}`);
  }
  return value;
}

export class SimNetwork {
  private readonly scheduler: SimNetworkOptions['scheduler'];
  private readonly o: SimNetworkOptions;
  private readonly bytesPerMs: number;
  /** WIRE_BUFFER_BYTES in ms of transmission. */
  private readonly bufferMs: number;
  private readonly maxFrameBytes: number;
  private readonly sendQueueMax: number;
  private readonly traceLine: ((line: string) => void) | undefined;
  private readonly observer: SimNetworkObserver | undefined;
  private readonly endpoints: (SimTransport | undefined)[] = [];
  private readonly links: (Link | undefined)[][] = [];
  private groups: readonly number[] | null = null;
  private cuts: (boolean[] | undefined)[] = [];
  private deaf: boolean[] = [];
  /** Some partition, cut or deafness is in force; false keeps isLinkUp to one test. */
  private faulty = false;
  private chaos = true;
  private readonly c = { sent: 0, delivered: 0, duplicated: 0, bytes: 0, inFlight: 0 };
  private readonly d: Record<DropReason, number> = { loss: 0, linkDown: 0, noReceiver: 0, queueFull: 0, tooLarge: 0, closed: 0 };

  constructor(options: SimNetworkOptions) {
    this.scheduler = options.scheduler;
    this.o = options;
    checkInt(options.delayMsMax, 'delayMsMax', 1, 2 ** 32);
    for (const k of ['lossPerMille', 'duplicatePerMille', 'longDelayPerMille'] as const) checkInt(options[k], k, 0, 1000);
    this.bytesPerMs = options.bytesPerMs ?? DEFAULT_BYTES_PER_MS;
    if (!(this.bytesPerMs > 0)) throw new RangeError(`SimNetwork: bytesPerMs must be > 0, got ${this.bytesPerMs}`);
    this.bufferMs = WIRE_BUFFER_BYTES / this.bytesPerMs;
    this.maxFrameBytes = checkInt(options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES, 'maxFrameBytes', 1, 0xffffffff);
    this.sendQueueMax = checkInt(options.sendQueueMax ?? DEFAULT_SEND_QUEUE_MAX, 'sendQueueMax', 1, Number.MAX_SAFE_INTEGER);
    this.traceLine = options.trace;
    this.observer = options.observer;
  }

  /**
   * A new transport for node `id` (any id in 0..65535, known to the network or not: its state is
   * created on first use); the previous one for `id` must have been closed.
   */
  endpoint(id: NodeId): SimTransport {
    checkInt(id, 'node id', 0, 0xffff);
    const previous = this.endpoints[id];
    if (previous !== undefined && !previous.isClosed) throw new Error(`SimNetwork: node ${id} already has an open endpoint`);
    const endpoint = new SimTransport(this, id, this.maxFrameBytes);
    this.endpoints[id] = endpoint;
    return endpoint;
  }

  /**
   * Nodes with equal `groups[id]` reach each other. A node given no group (`groups[id]` undefined,
   * e.g. one added after the array was made) reaches nobody and nobody reaches it. Replaces an
   * earlier partition; cuts and deafness stay.
   */
  partition(groups: readonly number[]): void {
    this.groups = groups.slice();
    this.faulty = true;
    this.observer?.linksChanged();
  }
  /** Stops messages from `from` to `to`; the other direction is unaffected. */
  cut(from: NodeId, to: NodeId): void {
    (this.cuts[from] ??= [])[to] = true;
    this.faulty = true;
    this.observer?.linksChanged();
  }
  /** `id` can still send but receives nothing. */
  deafen(id: NodeId): void {
    this.deaf[id] = true;
    this.faulty = true;
    this.observer?.linksChanged();
  }

  /** Lifts every partition, cut and deafness. */
  healLinks(): void {
    this.groups = null;
    this.cuts = [];
    this.deaf = [];
    this.faulty = false;
    this.observer?.linksChanged();
  }

  /** Off: no loss, duplication or long delays (the explorer's healed phase). Bandwidth and queues stay. */
  setChaos(on: boolean): void {
    this.chaos = on;
  }

  isLinkUp(from: NodeId, to: NodeId): boolean {
    if (!this.faulty) return true;
    if (this.deaf[to] === true || this.cuts[from]?.[to] === true) return false;
    if (this.groups === null) return true;
    const group = this.groups[from];
    return group !== undefined && group === this.groups[to];
  }

  get stats(): SimNetworkStats {
    return { ...this.c, dropped: { ...this.d } };
  }

  /** @internal SimTransport.send: every check and random draw for one message. */
  route(endpoint: SimTransport, message: Message): void {
    if (message.from !== endpoint.id) {
      throw new Error(`SimTransport of node ${endpoint.id} asked to send a message from node ${message.from}`);
    }
    const size = messageSize(message); // validates every field; throws on a caller's bug
    const { from, to } = message;
    this.c.sent++;
    const why = endpoint.isClosed ? 'closed' : size > this.maxFrameBytes ? 'tooLarge' : !this.isLinkUp(from, to) ? 'linkDown' : null;
    if (why !== null) {
      this.d[why]++;
      if (this.traceLine !== undefined) this.traceLine(`drop ${from}->${to} ${message.type} t${message.term} ${size}B ${why}`);
      if (this.observer !== undefined) this.observer.dropped(message, null, size, why);
      return;
    }
    const w = new ByteWriter(size);
    writeMessage(w, message);
    const bytes = w.finish();
    const { prng, duplicatePerMille, lossPerMille, delayMsMax, longDelayPerMille } = this.o;
    const chaos = this.chaos;
    let copies = 1;
    if (chaos && duplicatePerMille > 0 && prng.nextInt(1000) < duplicatePerMille) {
      copies = 2;
      this.c.duplicated++;
    }
    const link = this.link(from, to);
    const bulk = message.type === 'InstallSnapshot';
    for (let copy = 0; copy < copies; copy++) {
      if (chaos && lossPerMille > 0 && prng.nextInt(1000) < lossPerMille) {
        this.d.loss++;
        if (this.traceLine !== undefined) this.traceLine(`drop ${from}->${to} ${message.type} t${message.term} ${size}B loss`);
        if (this.observer !== undefined) this.observer.dropped(message, null, size, 'loss');
        continue;
      }
      let delay = delayMsMax > 1 ? 1 + prng.nextInt(delayMsMax) : 1;
      if (chaos && longDelayPerMille > 0 && prng.nextInt(1000) < longDelayPerMille) {
        delay = -(delay + LONG_DELAY_MIN_MS + prng.nextInt(LONG_DELAY_SPAN_MS + 1));
      }
      if (this.traceLine !== undefined) {
        const held = delay < 0 ? `+${-delay}ms held` : `+${delay}ms`;
        this.traceLine(`send ${from}->${to} ${message.type} t${message.term} ${size}B ${held}${copy > 0 ? ' dup' : ''}`);
      }
      if (this.observer !== undefined) this.observer.queued(message, size, bytes);
      this.enqueue(link, bytes, delay, bulk);
    }
  }

  /** @internal SimTransport.close: what the endpoint had not yet committed to the wire is lost. */
  closeEndpoint(endpoint: SimTransport): void {
    const row = this.links[endpoint.id];
    if (row === undefined) return;
    for (const link of row) {
      while (link !== undefined && link.urgent.length > 0) this.dropQueued(link, link.urgent.shift(), 'closed');
      while (link !== undefined && link.bulk.length > 0) this.dropQueued(link, link.bulk.shift(), 'closed');
    }
  }

  private link(from: NodeId, to: NodeId): Link {
    const row = (this.links[from] ??= []);
    let link = row[to];
    if (link === undefined) {
      const [urgent, bulk, wire] = [new Fifo(), new Fifo(), new Fifo()];
      const fresh: Link = { from, to, urgent, bulk, wire, freeAt: 0, lastArrival: 0, pumping: false, pump: () => this.pump(fresh),
        arrive: () => this.deliver(fresh, wire.shift()) };
      link = row[to] = fresh;
    }
    return link;
  }

  private enqueue(link: Link, bytes: Uint8Array, delay: number, bulk: boolean): void {
    this.c.inFlight++;
    const waiting = link.urgent.length + link.bulk.length;
    if (waiting === 0 && link.freeAt - this.scheduler.now() < this.bufferMs) {
      this.commit(link, bytes, delay);
      return;
    }
    if (waiting >= this.sendQueueMax) {
      // TcpTransport's rule: a newer message is worth more than an older one, a heartbeat more than a chunk.
      this.dropQueued(link, (link.bulk.length > 0 ? link.bulk : link.urgent).shift(), 'queueFull');
    }
    (bulk ? link.bulk : link.urgent).push(bytes, delay);
    this.schedulePump(link);
  }

  private schedulePump(link: Link): void {
    if (link.pumping) return;
    link.pumping = true;
    // Wake when the untransmitted backlog falls to the buffer size, so the link never idles.
    this.scheduler.schedule(Math.max(0, link.freeAt - this.bufferMs - this.scheduler.now()), link.pump);
  }

  private pump(link: Link): void {
    link.pumping = false;
    const now = this.scheduler.now();
    // At least one message per wake-up, so rounding in the wake-up time can never stall the link.
    do {
      const queue = link.urgent.length > 0 ? link.urgent : link.bulk.length > 0 ? link.bulk : null;
      if (queue === null) return;
      const delay = queue.delays[queue.head] as number;
      this.commit(link, queue.shift(), delay);
    } while (link.freeAt - now < this.bufferMs);
    if (link.urgent.length + link.bulk.length > 0) this.schedulePump(link);
  }

  private commit(link: Link, bytes: Uint8Array, delay: number): void {
    const now = this.scheduler.now();
    const finish = Math.max(now, link.freeAt) + bytes.length / this.bytesPerMs;
    link.freeAt = finish;
    this.c.bytes += bytes.length;
    if (delay < 0) {
      this.scheduler.schedule(finish - delay - now, () => this.deliver(link, bytes));
      return;
    }
    const arrival = Math.max(finish + delay, link.lastArrival);
    link.lastArrival = arrival;
    link.wire.push(bytes, 0);
    this.scheduler.schedule(arrival - now, link.arrive);
  }

  private dropQueued(link: Link, bytes: Uint8Array, why: DropReason): void {
    this.c.inFlight--;
    this.d[why]++;
    if (this.traceLine !== undefined) this.traceLine(`drop ${link.from}->${link.to} ${TAG_NAMES[bytes[0]!]} ${bytes.length}B ${why}`);
    if (this.observer !== undefined) this.observer.dropped(null, bytes, bytes.length, why);
  }

  private deliver(link: Link, bytes: Uint8Array): void {
    this.c.inFlight--;
    const { from, to } = link;
    const endpoint = this.endpoints[to];
    const why = !this.isLinkUp(from, to) ? 'linkDown' : endpoint === undefined || endpoint.receiver === null ? 'noReceiver' : null;
    if (why !== null) {
      this.d[why]++;
      if (this.traceLine !== undefined) this.traceLine(`drop ${from}->${to} ${TAG_NAMES[bytes[0]!]} ${bytes.length}B ${why}`);
      if (this.observer !== undefined) this.observer.dropped(null, bytes, bytes.length, why);
      return;
    }
    const message = decodeMessage(bytes);
    this.c.delivered++;
    if (this.observer !== undefined) this.observer.delivered(bytes);
    if (this.traceLine !== undefined) this.traceLine(`deliver ${from}->${to} ${message.type} t${message.term} ${bytes.length}B`);
    (endpoint!.receiver as (message: Message) => void)(message);
  }
}

/** One node's incarnation on a SimNetwork. */
export class SimTransport implements Transport {
  /** @internal The started, open endpoint's callback; null before start() and after close(). */
  receiver: ((message: Message) => void) | null = null;
  private started = false;
  private closed = false;

  /** Use SimNetwork.endpoint. */
  constructor(private readonly network: SimNetwork, readonly id: NodeId, readonly maxMessageBytes: number) {}

  get isClosed(): boolean {
    return this.closed;
  }

  start(onMessage: (message: Message) => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error('SimTransport is closed'));
    if (this.started) return Promise.reject(new Error('SimTransport already started'));
    this.started = true;
    this.receiver = onMessage;
    return Promise.resolve();
  }

  send(message: Message): void {
    this.network.route(this, message);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.receiver = null;
      this.network.closeEndpoint(this);
    }
    return Promise.resolve();
  }
}
