/**
 * A hostile peer for tests: a raw TCP connection to a node's peer port that speaks the wire format
 * of src/transport/tcp.ts (`u32 LE length | payload` frames, a hello first) and can send anything
 * on it: valid messages in any sender's name, mutated messages, raw bytes. Plus a seeded mutator
 * that turns valid messages into the kind of input a buggy or hostile peer would send.
 *
 * The transport identifies a sender only by the hello (`from`), and delivers a message only if its
 * `from` is the hello's sender and its `to` is the node; nothing is authenticated. So a HostilePeer
 * that says hello as member 0 is member 0 as far as the node can tell, and one that says hello as
 * 99 is accepted as a non-member (within the transport's non-member budget: a newer non-member
 * connection closes the oldest) and reaches the core as one. A hello may carry an advertised
 * address (version 2), which the node then dials to answer a non-member, or be an old version 1
 * hello (no address).
 */
import * as net from 'node:net';
import { encodeMessage } from '../codec/codec.js';
import type { Entry, Message, NodeId } from '../core/messages.js';
import { crc32c } from '../core/crc32c.js';
import { TERM_MAX } from '../core/validate.js';
import { Prng } from '../sim/prng.js';
import { encodeHello, frame } from '../transport/tcp.js';

export interface HostilePeerOptions {
  readonly host?: string;
  readonly port: number;
  /**
   * The hello; omit it to send raw bytes on a connection that never said hello. `address` is the
   * advertised host:port (version 2 only); `version` 1 sends the old hello without an address.
   */
  readonly hello?: {
    readonly clusterId: string;
    readonly from: NodeId;
    readonly to: NodeId;
    readonly address?: { readonly host: string; readonly port: number };
    readonly version?: 1 | 2;
  };
  /** How long to wait for the TCP connect (default 2000 ms). */
  readonly connectTimeoutMs?: number;
}

/** One raw connection to a node's peer port. The node never writes on it; it may close it. */
export class HostilePeer {
  private closedByRemote = false;
  private readonly closedPromise: Promise<void>;

  private constructor(private readonly socket: net.Socket) {
    this.closedPromise = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('close', () => {
      this.closedByRemote = true;
    });
    socket.on('error', () => undefined); // a reset from a node that closed us is expected
    socket.on('data', () => undefined);
  }

  static async connect(options: HostilePeerOptions): Promise<HostilePeer> {
    const socket = net.connect({ host: options.host ?? '127.0.0.1', port: options.port });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`HostilePeer: no connection to port ${options.port} within ${options.connectTimeoutMs ?? 2000} ms`));
      }, options.connectTimeoutMs ?? 2000);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    const peer = new HostilePeer(socket);
    if (options.hello !== undefined) {
      const { version, ...hello } = options.hello;
      peer.sendRaw(frame(encodeHello(hello, version ?? 2)));
    }
    return peer;
  }

  /** The connection was closed (by the node, or by close()). */
  get closed(): boolean {
    return this.closedByRemote;
  }

  /** Sends one message as a frame (the codec's encoding; the transport's framing). */
  send(message: Message): void {
    this.sendRaw(frame(encodeMessage(message)));
  }

  /** Sends `payload` as one frame. */
  sendFrame(payload: Uint8Array): void {
    this.sendRaw(frame(payload));
  }

  /** Sends bytes as they are. */
  sendRaw(bytes: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Resolves once everything written so far was handed to the kernel. */
  flushed(): Promise<void> {
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.socket.write(new Uint8Array(0), () => resolve()));
  }

  /** True if the node closed the connection within `ms`. */
  async waitClosed(ms: number): Promise<boolean> {
    if (this.closedByRemote) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    const result = await Promise.race([this.closedPromise.then(() => true as const), timeout]);
    clearTimeout(timer);
    return result;
  }

  /** Ends the connection after what was written (FIN), waiting at most 1 s, then destroys it. */
  async close(): Promise<void> {
    if (this.socket.destroyed) return;
    this.socket.end();
    await this.waitClosed(1000);
    this.socket.destroy();
  }
}

// ------------------------------------------------------------------ seeded mutations

/** What the mutator knows about the cluster, to start from messages a node would believe. */
export interface ClusterView {
  /** The node the message is for. */
  readonly target: NodeId;
  readonly members: readonly NodeId[];
  /** The target's current term, last index and commit index. */
  readonly term: number;
  readonly lastIndex: number;
  readonly commitIndex: number;
}

export const MESSAGE_TYPES: readonly Message['type'][] = [
  'RequestVote',
  'RequestVoteReply',
  'PreVote',
  'PreVoteReply',
  'AppendEntries',
  'AppendEntriesReply',
  'InstallSnapshot',
  'InstallSnapshotReply',
];

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function randomBytes(prng: Prng, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = prng.nextInt(256);
  return out;
}

/** Another member than the target (the sender of a plausible message). */
function otherMember(prng: Prng, view: ClusterView): NodeId {
  const others = view.members.filter((m) => m !== view.target);
  return prng.pick(others.length > 0 ? others : view.members);
}

/** A plausible message of `type` from another member to the target, in the target's term. */
export function validMessage(prng: Prng, type: Message['type'], view: ClusterView): Message {
  const from = otherMember(prng, view);
  const to = view.target;
  const term = Math.max(1, view.term);
  const last = view.lastIndex;
  switch (type) {
    case 'RequestVote':
    case 'PreVote':
      return { type, from, to, term, lastLogIndex: last, lastLogTerm: term };
    case 'RequestVoteReply':
    case 'PreVoteReply':
      return { type, from, to, term, voteGranted: prng.chance(1, 2) };
    case 'AppendEntries': {
      const count = prng.nextInt(4);
      const entries: Entry[] = [];
      for (let i = 0; i < count; i++) entries.push({ index: last + 1 + i, term, command: randomBytes(prng, prng.nextInt(24)) });
      return { type, from, to, term, prevLogIndex: last, prevLogTerm: last === 0 ? 0 : term, entries, leaderCommit: view.commitIndex, readContext: prng.nextInt(100) };
    }
    case 'AppendEntriesReply': {
      const success = prng.chance(1, 2);
      const prev = prng.nextInt(last + 1);
      return {
        type, from, to, term, success, prevLogIndex: prev, matchIndex: success ? prev : 0,
        conflictTerm: 0, conflictIndex: 0, lastLogIndex: prev, readContext: prng.nextInt(100),
      };
    }
    case 'InstallSnapshot': {
      const whole = randomBytes(prng, 1 + prng.nextInt(300));
      const length = 1 + prng.nextInt(whole.length);
      return {
        type, from, to, term, lastIncludedIndex: Math.max(1, view.commitIndex + 1 + prng.nextInt(50)), lastIncludedTerm: term,
        snapshotBytes: whole.length, checksum: crc32c(whole), offset: 0, data: whole.slice(0, length), done: length === whole.length,
        membership: { voters: [0, 1, 2].slice(0, 1 + prng.nextInt(3)), outgoing: [], learners: prng.chance(1, 3) ? [7] : [], addresses: [] },
      };
    }
    case 'InstallSnapshotReply':
      return { type, from, to, term, lastIncludedIndex: prng.nextInt(last + 1), nextOffset: prng.nextInt(1000), installed: prng.chance(1, 2) };
    case 'TimeoutNow':
      return { type, from, to, term };
  }
}

/** A term a hostile peer would pick: stale, current, a little ahead, far ahead, or out of range. */
function mutatedTerm(prng: Prng, view: ClusterView): number {
  return prng.pick([
    0,
    Math.max(0, view.term - 1),
    view.term,
    view.term + 1,
    view.term + 1 + prng.nextInt(1000),
    TERM_MAX,
    TERM_MAX + 1,
    TERM_MAX + 1 + prng.nextInt(2 ** 30),
    MAX_SAFE,
    prng.nextUint32() * 2 ** 21 + prng.nextInt(2 ** 21), // anywhere up to 2^53
  ]);
}

/** An index a hostile peer would pick: 0, around the log's end, or absurd. */
function mutatedIndex(prng: Prng, view: ClusterView): number {
  return prng.pick([
    0,
    1,
    Math.max(0, view.commitIndex - 1),
    view.commitIndex,
    view.lastIndex,
    view.lastIndex + 1,
    view.lastIndex + 1 + prng.nextInt(1_000_000),
    2 ** 32,
    MAX_SAFE,
    prng.nextUint32(),
  ]);
}

/** A sender a hostile peer would claim: a member, the target itself, or a stranger. */
function mutatedSender(prng: Prng, view: ClusterView): NodeId {
  return prng.pick([otherMember(prng, view), view.target, view.members.length, 7, 99, 2 ** 31, MAX_SAFE]);
}

/**
 * One to three field mutations of `message`: terms, indices, senders, flags, lengths, offsets,
 * checksums, data and entry lists (gaps, decreasing terms, terms after the message's). The result
 * always encodes (every field stays a non-negative safe integer, a boolean or bytes); whether it
 * could be true is for the receiver to decide. `to` is left alone: a misaddressed message never
 * gets past the transport.
 */
export function mutateMessage(prng: Prng, message: Message, view: ClusterView): Message {
  const m: Record<string, unknown> = { ...message };
  const rounds = 1 + prng.nextInt(3);
  for (let round = 0; round < rounds; round++) {
    const fields = Object.keys(m).filter((k) => k !== 'type' && k !== 'to');
    const field = prng.pick(fields);
    const value = m[field];
    if (field === 'term' || field === 'lastLogTerm' || field === 'prevLogTerm' || field === 'lastIncludedTerm' || field === 'conflictTerm') {
      m[field] = mutatedTerm(prng, view);
    } else if (field === 'from') {
      m[field] = mutatedSender(prng, view);
    } else if (typeof value === 'boolean') {
      m[field] = !value;
    } else if (field === 'checksum') {
      m[field] = prng.nextUint32();
    } else if (field === 'snapshotBytes' || field === 'offset' || field === 'nextOffset') {
      m[field] = prng.pick([0, 1, prng.nextInt(400), 8 * 2 ** 30, MAX_SAFE]);
    } else if (typeof value === 'number') {
      m[field] = mutatedIndex(prng, view);
    } else if (value instanceof Uint8Array) {
      m[field] = prng.pick([new Uint8Array(0), randomBytes(prng, 1 + prng.nextInt(300)), value.subarray(0, prng.nextInt(value.length + 1))]);
    } else if (Array.isArray(value)) {
      m[field] = mutatedEntries(prng, value as Entry[], view);
    }
  }
  return m as unknown as Message;
}

function mutatedEntries(prng: Prng, entries: readonly Entry[], view: ClusterView): Entry[] {
  const out = entries.map((e) => ({ ...e }));
  const base = out[0]?.index ?? view.lastIndex + 1;
  switch (prng.nextInt(5)) {
    case 0: // a gap
      if (out.length >= 2) out.splice(prng.nextInt(out.length - 1) + 1, 1);
      else out.push({ index: base + 2, term: view.term, command: new Uint8Array(0) });
      break;
    case 1: // decreasing terms
      out.push({ index: base + out.length, term: 0, command: new Uint8Array(1) }, { index: base + out.length + 1, term: 0, command: new Uint8Array(1) });
      if (out[0] !== undefined) out[0] = { ...out[0], term: Math.max(1, view.term) };
      break;
    case 2: // a term after the message's
      out.push({ index: base + out.length, term: mutatedTerm(prng, view), command: randomBytes(prng, 8) });
      break;
    case 3: // an index that does not follow
      out.push({ index: mutatedIndex(prng, view), term: view.term, command: randomBytes(prng, 4) });
      break;
    default: // empty
      out.length = 0;
  }
  return out;
}

/** Flips, overwrites, truncates or extends the bytes of an encoded message (never its length prefix). */
export function mutateBytes(prng: Prng, payload: Uint8Array): Uint8Array {
  let out = payload.slice();
  const rounds = 1 + prng.nextInt(3);
  for (let round = 0; round < rounds; round++) {
    switch (prng.nextInt(4)) {
      case 0:
        if (out.length > 0) {
          const at = prng.nextInt(out.length);
          out[at] = out[at]! ^ (1 << prng.nextInt(8));
        }
        break;
      case 1:
        if (out.length > 0) out[prng.nextInt(out.length)] = prng.nextInt(256);
        break;
      case 2:
        out = out.subarray(0, prng.nextInt(out.length + 1)).slice();
        break;
      default: {
        const extra = randomBytes(prng, 1 + prng.nextInt(8));
        const grown = new Uint8Array(out.length + extra.length);
        grown.set(out);
        grown.set(extra, out.length);
        out = grown;
      }
    }
  }
  return out;
}

export { randomBytes as seededBytes };
