/**
 * A TCP transport for Raft messages.
 *
 * Connections. Each node dials one outbound connection to every peer and only writes to it; it
 * only reads from the connections it accepts. A pair of nodes therefore uses two connections, one
 * per direction, and neither side ever has to decide which of two simultaneous dials wins.
 *
 * Frames. Every frame is `u32 length (little endian) | payload`, where `length` counts the payload
 * only and may not exceed `maxFrameBytes`. The first frame on a connection is the hello (below);
 * every later payload is one message encoded with the project codec (`encodeMessage`).
 *
 * Hello. Two versions parse; this transport sends version 2.
 *   version 1: `"TSRAFT1"` (7 ASCII bytes) | cluster id | sender node id | receiver node id
 *   version 2: `"TSRAFT2"` (7 ASCII bytes) | cluster id | sender node id | receiver node id |
 *              advertised host | [advertised port]
 * where the cluster id is a varint length + UTF-8 bytes (at most MAX_CLUSTER_ID_BYTES), the node
 * ids are varints (the receiver id is the node the sender believes it is calling), the advertised
 * host is a varint length + ASCII bytes (at most MAX_ADVERTISED_HOST_BYTES; a hostname, an IPv4
 * or an IPv6 literal without brackets, not an unspecified address such as 0.0.0.0; length 0 means
 * "no address") and the advertised port, a varint in 1..65535, is present only after a non-empty
 * host. The advertised address is where the sender accepts Raft connections (the `advertise`
 * option, by default the listen address; none when listening on a wildcard address). A hello that
 * does not parse, has trailing bytes or is longer than MAX_HELLO_BYTES is a malformed frame. The
 * acceptor refuses (logs one line and closes) a hello for another cluster, for another node, or
 * claiming to come from this node. No message is delivered before a valid hello, and a message
 * whose `from` is not the hello's sender or whose `to` is not this node is dropped and counted.
 *
 * Members and non-members. A hello from a peer (a member: an id in the peer set) is accepted as
 * before: at most INBOUND_PER_PEER_MAX connections per member, a newer one closing the oldest. A
 * hello from any other id of the same cluster is accepted too, as a non-member connection, so that
 * a member this node does not know yet (one added to the cluster after the end of this node's
 * log, possibly the leader) can reach it. Non-member connections share one budget,
 * `nonMemberConnectionsMax` (default 8) across all non-member ids: a new one beyond it closes the
 * oldest non-member connection (members' connections are never closed for it), so strangers
 * cannot crowd out members. They are counted in `stats.nonMembers`; a new non-member id is logged
 * once (rate-limited). If a non-member's hello carried an address, it becomes the id's learned
 * address (an LRU of `learnedAddressesMax` ids, default 16, refreshed by its hellos, its messages
 * and sends to it; a message on a connection whose hello carried an address learns it again after
 * an eviction; a newer hello with another address moves it), and `send()` to that id dials it
 * exactly like a peer: one outbound connection, the same queue bounds and backoff. A learned address never overrides a peer's configured address; an id
 * that becomes a peer through `setPeers()` takes its configured address and its learned entry is
 * dropped (its queue is kept). An id evicted from the LRU loses its outbound connection and queue.
 *
 * Sending. `send()` encodes the message at once (so an oversized one is dropped and counted right
 * away) and queues the frame for its peer. A peer's queue holds at most `sendQueueMax` frames in
 * two classes: InstallSnapshot chunks are bulk, everything else is urgent and is written before any
 * queued bulk frame. Bulk frames are only written while the socket is not backed up, so at most a
 * socket buffer of snapshot data can sit in front of a heartbeat. When the queue is full the oldest
 * bulk frame is dropped (the oldest urgent one if there is no bulk frame): Raft tolerates loss, and
 * a newer message is worth more than an older one. Frames queued together are written together in
 * one corked batch.
 *
 * Peers. The set of peers is given at construction and can be replaced at run time with
 * `setPeers()` (membership changes): a new peer is dialled on its first send and accepted as a
 * member; a removed peer loses its outbound connection, its queue and its inbound connections, and
 * from then on is a non-member like any other id (its hellos fall under the non-member budget); a
 * peer at a new address is redialled there, keeping its queue. Unchanged peers keep their
 * connections.
 *
 * Reconnecting. A peer is dialled on the first send and redialled, with jittered exponential
 * backoff between `reconnectMinMs` and `reconnectMaxMs`, for as long as frames are queued for it.
 * The backoff resets once a connection has stayed up for `reconnectMaxMs` (a connection that the
 * acceptor refuses right after the hello therefore keeps backing off). A peer that is down costs at
 * most one dial per backoff period and `sendQueueMax` queued frames.
 *
 * Nothing that arrives from the network throws out of the transport: malformed frames, bad hellos
 * and oversized lengths close that one connection and are counted in `stats`. Inbound memory is
 * bounded: at most `inboundConnectionsMax` accepted connections (more are refused and counted), each
 * buffering at most one frame, and a connection whose partial frame makes no progress for
 * `frameStallMs` is closed, releasing it. What strangers can make this node remember is bounded
 * too: `nonMemberConnectionsMax` connections, `learnedAddressesMax` learned addresses (each with
 * one outbound connection and `sendQueueMax` frames), and a bounded set of ids remembered for
 * logging once.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { DEFAULT_MAX_FRAME_BYTES, DEFAULT_SEND_QUEUE_MAX } from './limits.js';
import { peerIdentity } from '../security/certs.js';
import { ByteWriter, CodecError, decodeMessage, messageSize, writeMessage } from '../codec/codec.js';
import type { Message, NodeId } from '../core/messages.js';
import type { PeerAddress, Transport } from './transport.js';
import { RateLimitedLog } from '../runtime/rate-limited-log.js';
import { loggerFromLines, type Logger } from '../runtime/logger.js';
import { decodeHello, encodeHello, isAdvertisableHost, isWildcardHost, MAX_ADVERTISED_HOST_BYTES, MAX_CLUSTER_ID_BYTES, type AdvertisedAddress, type Hello } from './hello.js';

export { DEFAULT_MAX_FRAME_BYTES, DEFAULT_SEND_QUEUE_MAX } from './limits.js';
export {
  decodeHello,
  encodeHello,
  HELLO_MAGIC,
  HELLO_MAGIC_V1,
  isAdvertisableHost,
  MAX_ADVERTISED_HOST_BYTES,
  MAX_CLUSTER_ID_BYTES,
  type AdvertisedAddress,
  type Hello,
} from './hello.js';

export interface TcpTransportOptions {
  /** Connections between nodes of different clusters are refused. */
  readonly clusterId: string;
  readonly nodeId: NodeId;
  /** Where to accept connections; port 0 picks a free port (see `TcpTransport.port`). */
  readonly listen: { readonly host: string; readonly port: number };
  /**
   * The address sent in every hello: where other nodes can dial this one (a non-member that this
   * node calls learns it). Default: the listen host and the bound port, or no address when the
   * listen host is a wildcard (0.0.0.0, ::, empty). `port` defaults to the bound port. `null`:
   * never send an address. The host must be a hostname or an IP literal of at most
   * MAX_ADVERTISED_HOST_BYTES, not an unspecified address.
   */
  readonly advertise?: { readonly host: string; readonly port?: number } | null;
  /** Every other node; an entry for `nodeId` itself is ignored. `setPeers()` replaces the set later. */
  readonly peers: readonly PeerAddress[];
  /** The largest frame payload sent or accepted, in bytes. Default 8 MiB. */
  readonly maxFrameBytes?: number;
  /** The most frames queued for one peer. Default 1024. */
  readonly sendQueueMax?: number;
  /**
   * A connection that has sent part of a frame and then nothing for this long is closed, releasing
   * what it buffered (up to maxFrameBytes). Default 10 s.
   */
  readonly frameStallMs?: number;
  /** Accepted connections open at once; more are refused and counted. Default 64. */
  readonly inboundConnectionsMax?: number;
  /**
   * Connections from ids outside the peer set (non-members) open at once, across all such ids; a
   * new one beyond it closes the oldest non-member connection. 0 refuses non-members at the hello.
   * Default 8.
   */
  readonly nonMemberConnectionsMax?: number;
  /**
   * Non-member ids whose advertised address is remembered (least recently used first out), so
   * that send() can answer them. 0: never learn an address. Default 16.
   */
  readonly learnedAddressesMax?: number;
  /** The first reconnect delay. Default 50 ms. */
  readonly reconnectMinMs?: number;
  /** The largest reconnect delay. Default 2000 ms. */
  readonly reconnectMaxMs?: number;
  /** Receives one line per notable event (refused handshakes, malformed frames, lost peers). */
  readonly log?: (line: string) => void;
  /**
   * Structured logs instead of `log` (which is then unused): refusals and lost peers at warn,
   * reconnections at info, each connection made at debug.
   */
  readonly logger?: Logger;
  /** Uniform in [0, 1), for the reconnect jitter. Default Math.random. */
  readonly random?: () => number;
  /**
   * Mutual TLS (1.3) on every connection, over the same framing; absent: plaintext. The listener
   * requires a client certificate signed by `ca`; a dialler verifies the server against `ca` and
   * requires the server's node identity (see `src/security/certs.ts`) to be the id it dialled; an
   * acceptor requires the client certificate's node identity to be of this cluster and to equal the
   * hello's sender. `cert` must carry this node's identity (the constructor checks).
   */
  readonly tls?: TcpTlsOptions;
  /**
   * Enables the development fault switch (cutFrom): only `tsraft start`'s nodes (--dev-faults) set
   * it, so that its dashboard can cut the network between two nodes. Off by default: cutFrom throws.
   */
  readonly devFaults?: boolean;
}

/** PEM material for mutual TLS (see `TcpTransportOptions.tls`). */
export interface TcpTlsOptions {
  /** The cluster CA certificate(s): the only trusted issuer(s) of peers' certificates. */
  readonly ca: string;
  /** This node's certificate, with the SAN URI `tsraft://<clusterId>/node/<nodeId>`. */
  readonly cert: string;
  /** Its private key. */
  readonly key: string;
}

export interface TcpTransportStats {
  /** Message frames handed to a socket (the hello is not counted). */
  readonly sent: number;
  /** Messages delivered to the `onMessage` callback. */
  readonly received: number;
  readonly dropped: {
    /** Evicted from a full send queue. */
    readonly queueFull: number;
    /** Encoded larger than `maxFrameBytes`, never sent. */
    readonly tooLarge: number;
    /**
     * Addressed to a node that is neither a peer nor has a learned address, or sent after close();
     * also frames still queued at close(), when their peer was removed by setPeers() or when their
     * learned address was evicted.
     */
    readonly noConnection: number;
    /** Received with a `from` other than the hello's sender or a `to` other than this node. */
    readonly misaddressed: number;
  };
  /** Connections closed for an undecodable message, a bad hello or an oversized length. */
  readonly malformedFrames: number;
  /**
   * Connections refused for a foreign cluster id, a hello addressed to another node or claiming
   * to come from this node, or a non-member while nonMemberConnectionsMax is 0.
   */
  readonly refusedHandshakes: number;
  /** Connections refused because inboundConnectionsMax were already open. */
  readonly refusedConnections: number;
  /** Connections from ids outside the peer set (see `nonMemberConnectionsMax`). */
  readonly nonMembers: {
    /** Hellos accepted from non-member ids so far. */
    readonly accepted: number;
    /** Non-member connections closed because nonMemberConnectionsMax were open (oldest first). */
    readonly evicted: number;
    /** Non-member connections open now. */
    readonly open: number;
    /** Non-member ids with a learned address now. */
    readonly learnedAddresses: number;
    /** Learned addresses forgotten because learnedAddressesMax ids had one. */
    readonly learnedEvicted: number;
  };
  /**
   * Inbound connections refused by TLS (always 0 without the `tls` option):
   * `tls.handshakeFailures + tls.identityMismatches`.
   */
  readonly tlsRefused: number;
  readonly tls: {
    /**
     * Inbound TLS handshakes that failed: no client certificate, one not signed by the CA or
     * expired, a plaintext or otherwise non-TLS peer, a handshake not finished in time.
     */
    readonly handshakeFailures: number;
    /**
     * Inbound connections with a verified certificate refused for its identity: no node identity
     * (e.g. a client certificate), another cluster's, or a hello from another node than it names.
     */
    readonly identityMismatches: number;
    /**
     * Outbound dials whose TLS handshake failed: the server's certificate is not signed by the CA,
     * or does not name the node dialled.
     */
    readonly dialFailures: number;
  };
  /** Open connections right now: connected outbound plus accepted inbound past the hello. */
  readonly connections: number;
  /** Outbound dials started so far. */
  readonly connectAttempts: number;
}

/** An upper bound on a hello payload; a longer hello frame is malformed. */
export const MAX_HELLO_BYTES = 1024;
export const FRAME_HEADER_BYTES = 4;
const MAX_FRAME_LIMIT = 0xffffffff;

const DEFAULT_FRAME_STALL_MS = 10_000;
const DEFAULT_INBOUND_CONNECTIONS_MAX = 64;
/** The default budget of non-member connections (`nonMemberConnectionsMax`). */
export const DEFAULT_NON_MEMBER_CONNECTIONS_MAX = 8;
/** The default number of learned addresses (`learnedAddressesMax`). */
export const DEFAULT_LEARNED_ADDRESSES_MAX = 16;
/** Non-member log lines (new ids, dial errors of learned addresses): at most this many per window. */
const NON_MEMBER_LOG_BURST = 10;
const NON_MEMBER_LOG_WINDOW_MS = 60_000;
/** TLS refusal log lines: at most this many per window (further ones are counted in the next line). */
const TLS_LOG_BURST = 10;
const TLS_LOG_WINDOW_MS = 60_000;
/** Refused handshakes (a stranger's hello): at most this many lines per window. */
const REFUSAL_LOG_BURST = 10;
const REFUSAL_LOG_WINDOW_MS = 60_000;
/** Ids remembered as already logged (non-members, unknown send targets); older ones are forgotten. */
const LOGGED_IDS_MAX = 256;
const DEFAULT_RECONNECT_MIN_MS = 50;
const DEFAULT_RECONNECT_MAX_MS = 2000;
/** A dial that has not connected by then is abandoned (and retried after the backoff). */
const CONNECT_TIMEOUT_MS = 5000;
/** Established connections kept per member; a newer one closes the oldest beyond this. */
const INBOUND_PER_PEER_MAX = 4;

/** An accepted connection must send its hello within this time. */
const HELLO_TIMEOUT_MS = 5000;
/** Stop adding frames to one corked batch after this many bytes. */
const BATCH_BYTES = 64 * 1024;

/** `payload` with its u32 LE length prefix. */
export function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** A FIFO of frames with O(1) push and shift. */
class FrameQueue {
  private items: (Buffer | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: Buffer): void {
    this.items.push(item);
  }

  shift(): Buffer | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

/** The outbound side of one peer. */
interface Peer {
  readonly id: NodeId;
  /** Where the peer listens; setPeers() (or a non-member's newer hello) may move it. */
  host: string;
  port: number;
  /** A non-member's learned address rather than a configured peer (its log lines are rate-limited). */
  learned: boolean;
  readonly urgent: FrameQueue;
  readonly bulk: FrameQueue;
  socket: net.Socket | null;
  /** `socket` has connected and carries our hello. */
  connected: boolean;
  connectedAt: number;
  /** The last write returned false; wait for 'drain'. */
  blocked: boolean;
  flushScheduled: boolean;
  /** Consecutive failed dials, for the backoff. */
  failures: number;
  reconnectTimer: NodeJS.Timeout | null;
  connectTimer: NodeJS.Timeout | null;
  /** The last dial error logged, to log a down peer once rather than on every retry. */
  lastError: string | null;
}

/** The inbound side of one accepted connection. */
interface Inbound {
  readonly socket: net.Socket;
  readonly label: string;
  /** The hello's sender once the hello was accepted. */
  peer: NodeId | null;
  /** Accepted from an id outside the peer set: counted against nonMemberConnectionsMax. */
  nonMember: boolean;
  /** The address the hello advertised, if any. */
  address: AdvertisedAddress | null;
  /** With TLS: the node its verified client certificate names (the hello must come from it). */
  certNode: NodeId | null;
  chunks: Buffer[];
  buffered: number;
  /** The payload length of the frame being read, or -1 while reading a header. */
  need: number;
  helloTimer: NodeJS.Timeout | null;
  /** Armed while part of a frame is buffered; re-armed whenever more bytes arrive. */
  stallTimer: NodeJS.Timeout | null;
  dead: boolean;
}

export class TcpTransport implements Transport {
  private readonly clusterId: string;
  private readonly nodeId: NodeId;
  private readonly listenHost: string;
  private readonly listenPort: number;
  private readonly maxFrameBytes: number;
  private readonly sendQueueMax: number;
  private readonly frameStallMs: number;
  private readonly inboundConnectionsMax: number;
  private readonly nonMemberConnectionsMax: number;
  private readonly learnedAddressesMax: number;
  /** The advertise option as given: undefined for the default, null for none. */
  private readonly advertiseOption: { readonly host: string; readonly port?: number } | null | undefined;
  private loggedConnectionLimit = false;
  private loggedNonMemberEviction = false;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private readonly log: (line: string) => void;
  private readonly logger: Logger;
  private readonly refusalLog: RateLimitedLog;
  private readonly random: () => number;
  private readonly peers = new Map<NodeId, Peer>();
  /** Non-members' learned addresses, least recently used first; disjoint from `peers`. */
  private readonly learned = new Map<NodeId, Peer>();
  private readonly inbound = new Set<Inbound>();
  /** The open non-member connections, oldest first. */
  private readonly nonMemberConns = new Set<Inbound>();
  /** Non-member ids already logged, least recently seen first (at most LOGGED_IDS_MAX). */
  private readonly loggedNonMembers = new Map<NodeId, true>();
  /** Lines caused by non-members (a new id, a learned address's dial errors): a stranger sets their pace. */
  private readonly nonMemberLog: RateLimitedLog;
  /** The TLS options and their secure context, or null for plaintext. */
  private readonly tlsOptions: TcpTlsOptions | null;
  private readonly secureContext: tls.SecureContext | null;
  /** TLS refusals: a stranger sets their pace too. */
  private readonly tlsLog: RateLimitedLog;

  private server: net.Server | null = null;
  private boundPort = -1;
  private onMessage: ((message: Message) => void) | null = null;
  private started = false;
  private closed = false;
  private closing: Promise<void> | null = null;
  private loggedTooLarge = false;
  /** Send targets already logged as unknown (at most LOGGED_IDS_MAX; then drops are only counted). */
  private readonly loggedUnknown = new Set<NodeId>();
  /** TcpTransportOptions.devFaults: whether cutFrom may be used. */
  private readonly devFaults: boolean;
  /** The dev fault switch: peers whose messages are dropped both ways, connections kept (see cutFrom). */
  private cut: ReadonlySet<NodeId> = new Set();
  /** Messages the fault switch dropped, both ways. */
  private cutDrops = 0;

  private counters = {
    sent: 0,
    received: 0,
    queueFull: 0,
    tooLarge: 0,
    noConnection: 0,
    misaddressed: 0,
    malformedFrames: 0,
    refusedHandshakes: 0,
    refusedConnections: 0,
    connectAttempts: 0,
    nonMembersAccepted: 0,
    nonMembersEvicted: 0,
    learnedEvicted: 0,
    tlsHandshakeFailures: 0,
    tlsIdentityMismatches: 0,
    tlsDialFailures: 0,
  };

  constructor(options: TcpTransportOptions) {
    this.clusterId = options.clusterId;
    if (new TextEncoder().encode(this.clusterId).length > MAX_CLUSTER_ID_BYTES) {
      throw new Error(`clusterId must be at most ${MAX_CLUSTER_ID_BYTES} UTF-8 bytes`);
    }
    this.nodeId = checkInt(options.nodeId, 'nodeId', 0, Number.MAX_SAFE_INTEGER);
    this.devFaults = options.devFaults === true;
    this.listenHost = options.listen.host;
    this.listenPort = checkInt(options.listen.port, 'listen.port', 0, 65535);
    this.maxFrameBytes = checkInt(options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES, 'maxFrameBytes', 1, MAX_FRAME_LIMIT);
    this.sendQueueMax = checkInt(options.sendQueueMax ?? DEFAULT_SEND_QUEUE_MAX, 'sendQueueMax', 1, Number.MAX_SAFE_INTEGER);
    this.frameStallMs = checkInt(options.frameStallMs ?? DEFAULT_FRAME_STALL_MS, 'frameStallMs', 1, 2 ** 31 - 1);
    this.inboundConnectionsMax = checkInt(options.inboundConnectionsMax ?? DEFAULT_INBOUND_CONNECTIONS_MAX, 'inboundConnectionsMax', 1, 1_000_000);
    this.nonMemberConnectionsMax = checkInt(options.nonMemberConnectionsMax ?? DEFAULT_NON_MEMBER_CONNECTIONS_MAX, 'nonMemberConnectionsMax', 0, 1_000_000);
    this.learnedAddressesMax = checkInt(options.learnedAddressesMax ?? DEFAULT_LEARNED_ADDRESSES_MAX, 'learnedAddressesMax', 0, 1_000_000);
    const advertise = options.advertise;
    if (advertise !== undefined && advertise !== null) {
      if (!isAdvertisableHost(advertise.host)) {
        throw new Error(`advertise.host must be a hostname or IP address of at most ${MAX_ADVERTISED_HOST_BYTES} bytes, not a wildcard; got ${JSON.stringify(advertise.host)}`);
      }
      if (advertise.port !== undefined) checkInt(advertise.port, 'advertise.port', 1, 65535);
    }
    this.advertiseOption = advertise === undefined || advertise === null ? advertise : { ...advertise };
    this.reconnectMinMs = checkInt(options.reconnectMinMs ?? DEFAULT_RECONNECT_MIN_MS, 'reconnectMinMs', 1, 2 ** 31 - 1);
    this.reconnectMaxMs = checkInt(options.reconnectMaxMs ?? DEFAULT_RECONNECT_MAX_MS, 'reconnectMaxMs', 1, 2 ** 31 - 1);
    if (this.reconnectMaxMs < this.reconnectMinMs) throw new Error('reconnectMaxMs must be >= reconnectMinMs');
    const id = this.nodeId;
    const logger = options.logger ?? loggerFromLines(options.log ?? ((line) => process.stderr.write(`tsraft tcp transport (node ${id}): ${line}\n`)));
    this.logger = logger;
    this.log = (line) => logger.info(line);
    const warn = (line: string): void => logger.warn(line);
    this.nonMemberLog = new RateLimitedLog(this.log, NON_MEMBER_LOG_BURST, NON_MEMBER_LOG_WINDOW_MS, 'non-member lines');
    this.tlsLog = new RateLimitedLog(warn, TLS_LOG_BURST, TLS_LOG_WINDOW_MS, 'TLS refusals');
    this.refusalLog = new RateLimitedLog(warn, REFUSAL_LOG_BURST, REFUSAL_LOG_WINDOW_MS, 'refused handshakes');
    this.random = options.random ?? Math.random;
    if (options.tls === undefined) {
      this.tlsOptions = null;
      this.secureContext = null;
    } else {
      const { ca, cert, key } = options.tls;
      this.tlsOptions = { ca, cert, key };
      // Throws now on unreadable PEM or a key that does not match the certificate.
      this.secureContext = tls.createSecureContext({ ca, cert, key, minVersion: 'TLSv1.3' });
      const own = peerIdentity(cert);
      if (own === null || own.clusterId !== this.clusterId || own.nodeId !== this.nodeId) {
        throw new Error(
          `tls.cert must name node ${this.nodeId} of cluster ${JSON.stringify(this.clusterId)}` +
            ` (SAN URI tsraft://<clusterId>/node/<id>); it names ${own === null ? 'no node' : `node ${own.nodeId} of cluster ${JSON.stringify(own.clusterId)}`}`,
        );
      }
    }
    for (const p of this.checkPeers(options.peers).values()) this.peers.set(p.id, newPeer(p));
  }

  private logTls(line: string): void {
    this.tlsLog.log(line);
  }


  /** A dialler's check of the server certificate (instead of hostname verification): it must name node `expected`. */
  private checkServerIdentity(expected: NodeId, cert: tls.PeerCertificate): Error | undefined {
    const id = peerIdentity(cert);
    if (id !== null && id.clusterId === this.clusterId && id.nodeId === expected) return undefined;
    const names = id === null ? 'no node' : `node ${id.nodeId} of cluster ${JSON.stringify(id.clusterId)}`;
    const err: NodeJS.ErrnoException = new Error(`the server's certificate names ${names}, not node ${expected} of cluster ${JSON.stringify(this.clusterId)}`);
    err.code = 'ERR_TSRAFT_PEER_IDENTITY';
    return err;
  }

  /** An inbound TLS handshake failed (the listener's 'tlsClientError'). */
  private tlsHandshakeFailed(err: Error, socket: tls.TLSSocket): void {
    if (this.closed) return;
    this.counters.tlsHandshakeFailures++;
    const why = socket.authorizationError !== undefined && socket.authorizationError !== null ? `client certificate refused: ${String(socket.authorizationError)}` : err.message;
    this.logTls(`refusing TLS connection from ${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}: ${why}`);
  }

  /**
   * Replaces the set of peers (see `Transport.setPeers`): adds the new ones, forgets the ones no
   * longer listed (closing their outbound and inbound connections and dropping their queues, which
   * counts as `dropped.noConnection`; from then on they are non-members), and redials a peer whose
   * address changed, keeping its queue. Peers listed unchanged keep their connections. A new peer
   * that was a non-member keeps its connections (they become a member's) and its queue, and its
   * learned address is replaced by the configured one. An entry for this node is ignored; a
   * repeated id or an invalid entry throws before anything changes. A no-op after close().
   */
  setPeers(peers: readonly PeerAddress[]): void {
    const next = this.checkPeers(peers);
    if (this.closed) return;
    for (const peer of [...this.peers.values()]) {
      if (!next.has(peer.id)) this.removePeer(peer);
    }
    for (const p of next.values()) {
      const peer = this.peers.get(p.id);
      if (peer === undefined) {
        this.loggedUnknown.delete(p.id);
        this.log(`added peer node ${p.id} at ${p.host}:${p.port}`);
        const learned = this.learned.get(p.id);
        if (learned === undefined) {
          this.peers.set(p.id, newPeer(p));
        } else {
          // It was a non-member we could answer: the configured address wins, the queue stays.
          this.learned.delete(p.id);
          learned.learned = false;
          this.peers.set(p.id, learned);
          if (learned.host !== p.host || learned.port !== p.port) {
            this.log(`node ${p.id}: dropping its learned address ${learned.host}:${learned.port} for the configured one`);
            this.moveTo(learned, p.host, p.port);
          }
        }
        for (const conn of this.nonMemberConns) {
          if (conn.peer === p.id) {
            conn.nonMember = false;
            this.nonMemberConns.delete(conn);
          }
        }
      } else if (peer.host !== p.host || peer.port !== p.port) {
        this.log(`peer node ${p.id} moved from ${peer.host}:${peer.port} to ${p.host}:${p.port}`);
        this.moveTo(peer, p.host, p.port);
      }
    }
  }

  /** Points `peer` at a new address: closes its connection and redials there if frames are queued. */
  private moveTo(peer: Peer, host: string, port: number): void {
    this.detach(peer);
    peer.host = host;
    peer.port = port;
    peer.failures = 0;
    peer.lastError = null;
    if (peer.urgent.length + peer.bulk.length > 0) this.dial(peer);
  }

  /** Validates a peer list: the peers other than this node, by id. */
  private checkPeers(peers: readonly PeerAddress[]): Map<NodeId, PeerAddress> {
    const out = new Map<NodeId, PeerAddress>();
    for (const p of peers) {
      checkInt(p.id, 'peer id', 0, Number.MAX_SAFE_INTEGER);
      if (p.id === this.nodeId) continue;
      if (out.has(p.id)) throw new Error(`duplicate peer id ${p.id}`);
      checkInt(p.port, `port of peer ${p.id}`, 1, 65535);
      out.set(p.id, { id: p.id, host: p.host, port: p.port });
    }
    return out;
  }

  /** Forgets `peer`: its queue, its outbound connection and every connection it opened to us. */
  private removePeer(peer: Peer): void {
    this.peers.delete(peer.id);
    const queued = peer.urgent.length + peer.bulk.length;
    this.counters.noConnection += queued;
    peer.urgent.clear();
    peer.bulk.clear();
    this.detach(peer);
    let inbound = 0;
    for (const conn of this.inbound) {
      if (conn.peer === peer.id && !conn.dead) {
        this.kill(conn);
        inbound++;
      }
    }
    this.log(`removed peer node ${peer.id} (dropped ${queued} queued frames, closed ${inbound} inbound connections; it is a non-member from now on)`);
  }

  /**
   * Remembers (or refreshes) non-member `id`'s advertised address, so that send() can answer it.
   * Never for a peer: the configured address wins. Beyond learnedAddressesMax ids the least
   * recently used one is forgotten.
   */
  private learn(id: NodeId, address: AdvertisedAddress): void {
    if (this.learnedAddressesMax === 0 || this.peers.has(id) || id === this.nodeId) return;
    const known = this.learned.get(id);
    if (known !== undefined) {
      this.learned.delete(id);
      this.learned.set(id, known); // most recently used
      if (known.host !== address.host || known.port !== address.port) {
        this.logNonMember(`non-member node ${id} now advertises ${address.host}:${address.port} (was ${known.host}:${known.port})`);
        this.moveTo(known, address.host, address.port);
      }
      return;
    }
    this.learned.set(id, newPeer({ id, host: address.host, port: address.port }, true));
    this.loggedUnknown.delete(id);
    for (const [oldest, peer] of this.learned) {
      if (this.learned.size <= this.learnedAddressesMax) break;
      this.forgetLearned(oldest, peer);
    }
  }

  /**
   * A message arrived from non-member `id` on a connection whose hello advertised `address`: marks
   * its learned address used, or learns it again if it was evicted. A learned address that a newer
   * hello changed is left alone (the newest hello wins).
   */
  private refreshLearned(id: NodeId, address: AdvertisedAddress): void {
    const known = this.learned.get(id);
    if (known === undefined) {
      this.learn(id, address);
    } else if (this.learned.size > 1) {
      this.learned.delete(id);
      this.learned.set(id, known);
    }
  }

  /** Drops a learned address: its outbound connection and what was queued for it. */
  private forgetLearned(id: NodeId, peer: Peer): void {
    this.learned.delete(id);
    this.counters.learnedEvicted++;
    this.counters.noConnection += peer.urgent.length + peer.bulk.length;
    peer.urgent.clear();
    peer.bulk.clear();
    this.detach(peer);
  }

  private logNonMember(line: string): void {
    this.nonMemberLog.log(line);
  }


  /** Logs a line about `peer`: rate-limited for a learned address, which a stranger controls. */
  private logPeer(peer: Peer, line: string, level: 'info' | 'warn' = 'info'): void {
    if (peer.learned) this.logNonMember(line);
    else this.logger[level](line);
  }

  /** Closes `peer`'s outbound connection, if any, and cancels its dial and redial; the queue stays. */
  private detach(peer: Peer): void {
    clearPeerTimers(peer);
    const socket = peer.socket;
    peer.socket = null;
    peer.connected = false;
    peer.blocked = false;
    // Its handlers see that it is no longer peer.socket and leave the peer alone.
    if (socket !== null) socket.destroy();
  }

  /** The port the listener is bound to; valid after start() resolved. */
  /** A message is one frame: its encoded size may not exceed `maxFrameBytes`. */
  get maxMessageBytes(): number {
    return this.maxFrameBytes;
  }

  get port(): number {
    if (this.boundPort < 0) throw new Error('TcpTransport.port is only known after start()');
    return this.boundPort;
  }

  get stats(): TcpTransportStats {
    const c = this.counters;
    let connections = 0;
    for (const p of this.peers.values()) if (p.connected) connections++;
    for (const p of this.learned.values()) if (p.connected) connections++;
    for (const conn of this.inbound) if (conn.peer !== null && !conn.dead) connections++;
    return {
      sent: c.sent,
      received: c.received,
      dropped: { queueFull: c.queueFull, tooLarge: c.tooLarge, noConnection: c.noConnection, misaddressed: c.misaddressed },
      malformedFrames: c.malformedFrames,
      refusedHandshakes: c.refusedHandshakes,
      refusedConnections: c.refusedConnections,
      tlsRefused: c.tlsHandshakeFailures + c.tlsIdentityMismatches,
      tls: { handshakeFailures: c.tlsHandshakeFailures, identityMismatches: c.tlsIdentityMismatches, dialFailures: c.tlsDialFailures },
      nonMembers: {
        accepted: c.nonMembersAccepted,
        evicted: c.nonMembersEvicted,
        open: this.nonMemberConns.size,
        learnedAddresses: this.learned.size,
        learnedEvicted: c.learnedEvicted,
      },
      connections,
      connectAttempts: c.connectAttempts,
    };
  }

  /**
   * The development fault switch (devFaults only, else it throws): from now on every message to or
   * from these peers is dropped, as if the network between them and this node were cut, while the
   * connections stay up; an empty list heals. Replaces the previous set.
   */
  cutFrom(peers: readonly NodeId[]): void {
    if (!this.devFaults) throw new Error('the fault switch is off: the transport was not created with devFaults');
    this.cut = new Set(peers);
    this.log(peers.length === 0 ? 'dev faults: network healed' : `dev faults: messages to and from node${peers.length === 1 ? '' : 's'} ${peers.join(', ')} are dropped`);
  }

  /** The peers the fault switch cuts off now, and how many messages it dropped. */
  get faults(): { readonly cut: readonly NodeId[]; readonly dropped: number } {
    return { cut: [...this.cut].sort((a, b) => a - b), dropped: this.cutDrops };
  }

  /** How many frames are queued for `peer` (0 for an unknown peer). */
  queued(peer: NodeId): number {
    const p = this.peers.get(peer) ?? this.learned.get(peer);
    return p === undefined ? 0 : p.urgent.length + p.bulk.length;
  }

  start(onMessage: (message: Message) => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error('TcpTransport is closed'));
    if (this.started) return Promise.reject(new Error('TcpTransport already started'));
    this.started = true;
    this.onMessage = onMessage;
    let server: net.Server;
    if (this.tlsOptions === null) {
      server = net.createServer((socket) => this.accept(socket));
    } else {
      const tlsServer = tls.createServer(
        {
          ...this.tlsOptions,
          minVersion: 'TLSv1.3',
          requestCert: true,
          rejectUnauthorized: true,
          handshakeTimeout: HELLO_TIMEOUT_MS,
        },
        (socket) => this.accept(socket),
      );
      tlsServer.on('tlsClientError', (err, socket) => this.tlsHandshakeFailed(err, socket));
      // Connections still in their handshake count too: inboundConnectionsMax bounds them all.
      tlsServer.maxConnections = this.inboundConnectionsMax;
      tlsServer.on('drop', (data?: net.DropArgument) => {
        this.counters.refusedConnections++;
        if (!this.loggedConnectionLimit) {
          this.loggedConnectionLimit = true;
          this.logger.warn(`refusing connection from ${data?.remoteAddress ?? '?'}:${data?.remotePort ?? '?'}: ${this.inboundConnectionsMax} connections are open (further refusals are only counted)`);
        }
      });
      server = tlsServer;
    }
    this.server = server;
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        this.server = null;
        reject(err);
      };
      server.once('error', onError);
      server.listen({ host: this.listenHost, port: this.listenPort }, () => {
        server.off('error', onError);
        server.on('error', (err) => this.log(`listener error: ${err.message}`));
        const address = server.address();
        this.boundPort = typeof address === 'object' && address !== null ? address.port : this.listenPort;
        if (this.closed) {
          // close() ran while listening was in progress; it already closed the server.
          reject(new Error('TcpTransport closed during start()'));
          return;
        }
        resolve();
      });
    });
  }

  send(message: Message): void {
    if (this.closed) {
      this.counters.noConnection++;
      return;
    }
    if (this.cut.has(message.to)) {
      this.cutDrops++;
      return;
    }
    if (message.from !== this.nodeId) {
      throw new Error(`TcpTransport of node ${this.nodeId} asked to send a message from node ${message.from}`);
    }
    let peer = this.peers.get(message.to);
    if (peer === undefined) {
      peer = this.learned.get(message.to);
      if (peer !== undefined) {
        // Used: the most recently used learned address.
        this.learned.delete(message.to);
        this.learned.set(message.to, peer);
      }
    }
    if (peer === undefined) {
      this.counters.noConnection++;
      if (!this.loggedUnknown.has(message.to) && this.loggedUnknown.size < LOGGED_IDS_MAX) {
        this.loggedUnknown.add(message.to);
        this.log(
          `dropping ${message.type} to node ${message.to}: not a known peer and no learned address` +
            (this.loggedUnknown.size === LOGGED_IDS_MAX ? ' (drops to further unknown nodes are only counted)' : ''),
        );
      }
      return;
    }
    const size = messageSize(message); // validates every field; throws on a caller's bug
    if (size > this.maxFrameBytes) {
      this.counters.tooLarge++;
      if (!this.loggedTooLarge) {
        this.loggedTooLarge = true;
        this.log(
          `dropping ${message.type} to node ${message.to}: ${size} bytes exceeds maxFrameBytes ${this.maxFrameBytes}` +
            ' (further drops are only counted)',
        );
      }
      return;
    }
    const w = new ByteWriter(FRAME_HEADER_BYTES + size);
    w.writeByte(size & 0xff);
    w.writeByte((size >>> 8) & 0xff);
    w.writeByte((size >>> 16) & 0xff);
    w.writeByte((size >>> 24) & 0xff);
    writeMessage(w, message);
    const bytes = w.finish();
    if (bytes.length !== FRAME_HEADER_BYTES + size) throw new Error('codec size pass and write pass disagree');
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

    if (peer.urgent.length + peer.bulk.length >= this.sendQueueMax) {
      if (peer.bulk.length > 0) peer.bulk.shift();
      else peer.urgent.shift();
      this.counters.queueFull++;
    }
    if (message.type === 'InstallSnapshot') peer.bulk.push(buf);
    else peer.urgent.push(buf);

    if (peer.connected) this.scheduleFlush(peer);
    else if (peer.socket === null && peer.reconnectTimer === null) {
      // Dial at once unless the last connection failed; then wait out the backoff first.
      if (peer.failures === 0) this.dial(peer);
      else this.scheduleReconnect(peer);
    }
  }

  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    const waits: Promise<void>[] = [];
    for (const peer of [...this.peers.values(), ...this.learned.values()]) {
      this.counters.noConnection += peer.urgent.length + peer.bulk.length;
      peer.urgent.clear();
      peer.bulk.clear();
      clearPeerTimers(peer);
      if (peer.socket !== null) {
        waits.push(destroyed(peer.socket));
        peer.socket.destroy();
      }
    }
    for (const conn of this.inbound) {
      if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
      conn.helloTimer = null;
      conn.dead = true;
      waits.push(destroyed(conn.socket));
      conn.socket.destroy();
    }
    this.nonMemberConns.clear();
    const server = this.server;
    if (server !== null) {
      waits.push(
        new Promise<void>((resolve) => {
          if (server.listening) server.close(() => resolve());
          else {
            // start() is still binding: close as soon as it is bound, or give up if binding fails.
            server.once('listening', () => server.close(() => resolve()));
            server.once('error', () => resolve());
          }
        }),
      );
    }
    this.closing = Promise.all(waits).then(() => undefined);
    return this.closing;
  }

  // ---- outbound ----

  private dial(peer: Peer): void {
    if (this.closed || peer.socket !== null) return;
    this.counters.connectAttempts++;
    const secureContext = this.secureContext;
    const socket =
      secureContext === null
        ? net.connect({ host: peer.host, port: peer.port })
        : tls.connect({
            host: peer.host,
            port: peer.port,
            secureContext,
            minVersion: 'TLSv1.3',
            rejectUnauthorized: true,
            checkServerIdentity: (_host, cert) => this.checkServerIdentity(peer.id, cert),
          });
    /** TCP connected, TLS (if any) not yet. */
    let handshaking = false;
    socket.setNoDelay(true);
    peer.socket = socket;
    peer.connected = false;
    peer.blocked = false;
    peer.connectTimer = setTimeout(() => {
      peer.connectTimer = null;
      socket.destroy(new Error(`connect timeout after ${CONNECT_TIMEOUT_MS} ms`));
    }, CONNECT_TIMEOUT_MS);

    socket.on('connect', () => {
      if (peer.socket !== socket) return; // replaced by setPeers(); detach() cleared its timer
      if (secureContext !== null && !this.closed) {
        // Unless it connected to itself (below), 'secureConnect' follows; the connect timer keeps
        // running until then, bounding the handshake.
        handshaking = true;
      } else {
        if (peer.connectTimer !== null) clearTimeout(peer.connectTimer);
        peer.connectTimer = null;
      }
      if (this.closed) return;
      if (socket.localPort === socket.remotePort && socket.localAddress === socket.remoteAddress) {
        // TCP simultaneous open: dialling a free local port can connect the socket to itself.
        handshaking = false;
        socket.destroy(new Error('connected to itself (the peer is down)'));
        return;
      }
      if (secureContext === null) established();
    });
    socket.on('secureConnect', () => {
      handshaking = false;
      if (peer.socket !== socket) return;
      if (peer.connectTimer !== null) clearTimeout(peer.connectTimer);
      peer.connectTimer = null;
      if (this.closed) return;
      established();
    });
    /** The TLS handshake of this dial failed (counted once, on its 'error' or else its 'close'). */
    const handshakeFailed = (): void => {
      if (!handshaking) return;
      handshaking = false;
      if (!this.closed && peer.socket === socket) this.counters.tlsDialFailures++;
    };
    const established = (): void => {
      socket.setKeepAlive(true, 10_000);
      peer.connected = true;
      peer.connectedAt = Date.now();
      if (peer.lastError !== null) this.logPeer(peer, `connected to node ${peer.id} at ${peer.host}:${peer.port}`);
      else if (!peer.learned) this.logger.debug(`connected to node ${peer.id} at ${peer.host}:${peer.port}`);
      peer.lastError = null;
      socket.write(this.helloFor(peer.id));
      this.flush(peer);
    };
    socket.on('drain', () => {
      if (peer.socket !== socket) return;
      peer.blocked = false;
      this.flush(peer);
    });
    // The acceptor never writes; reading keeps the socket flowing so that its close is noticed.
    socket.on('data', () => {});
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.closed || peer.socket !== socket) return;
      handshakeFailed();
      const what = err.code ?? err.message;
      if (peer.lastError !== what) {
        peer.lastError = what;
        this.logPeer(peer, `node ${peer.id} at ${peer.host}:${peer.port}: ${err.message}; retrying while messages are queued`, 'warn');
      }
    });
    socket.on('close', () => {
      handshakeFailed();
      if (peer.socket !== socket) return;
      if (peer.connectTimer !== null) clearTimeout(peer.connectTimer);
      peer.connectTimer = null;
      const wasConnected = peer.connected;
      peer.socket = null;
      peer.connected = false;
      peer.blocked = false;
      if (this.closed) return;
      if (wasConnected && Date.now() - peer.connectedAt >= this.reconnectMaxMs) peer.failures = 0;
      else peer.failures++;
      if (wasConnected && peer.lastError === null) {
        peer.lastError = 'closed';
        this.logPeer(peer, `lost connection to node ${peer.id} at ${peer.host}:${peer.port}`, 'warn');
      }
      if (peer.urgent.length + peer.bulk.length > 0) this.scheduleReconnect(peer);
    });
  }

  /** The hello frame for a connection to node `to`, with our advertised address if we have one. */
  private helloFor(to: NodeId): Buffer {
    const address = this.advertisedAddress();
    return frame(encodeHello({ clusterId: this.clusterId, from: this.nodeId, to, ...(address === null ? {} : { address }) }));
  }

  /** Where other nodes can dial us (see the `advertise` option), or null if we cannot tell. */
  advertisedAddress(): AdvertisedAddress | null {
    const option = this.advertiseOption;
    if (option === null) return null;
    const port = option?.port ?? (this.boundPort > 0 ? this.boundPort : this.listenPort);
    if (port < 1) return null; // listening on port 0 and not bound yet
    if (option !== undefined) return { host: option.host, port };
    if (isWildcardHost(this.listenHost) || !isAdvertisableHost(this.listenHost)) return null;
    return { host: this.listenHost, port };
  }

  private scheduleReconnect(peer: Peer): void {
    if (this.closed || peer.reconnectTimer !== null || peer.socket !== null) return;
    const delay = peer.failures === 0 ? 0 : this.backoff(peer.failures);
    peer.reconnectTimer = setTimeout(() => {
      peer.reconnectTimer = null;
      if (peer.urgent.length + peer.bulk.length > 0) this.dial(peer);
    }, delay);
  }

  /** Jittered exponential backoff: uniform in [base/2, base], base = min * 2^(failures-1), within [min, max]. */
  private backoff(failures: number): number {
    const base = Math.min(this.reconnectMaxMs, this.reconnectMinMs * 2 ** Math.min(failures - 1, 30));
    const jittered = base / 2 + (base / 2) * this.random();
    return Math.round(Math.min(this.reconnectMaxMs, Math.max(this.reconnectMinMs, jittered)));
  }

  private scheduleFlush(peer: Peer): void {
    if (peer.flushScheduled) return;
    peer.flushScheduled = true;
    // Sends made in the same turn of the event loop are written as one batch.
    queueMicrotask(() => {
      peer.flushScheduled = false;
      this.flush(peer);
    });
  }

  /** Writes queued frames, urgent first, until the queues are empty or the socket pushes back. */
  private flush(peer: Peer): void {
    const socket = peer.socket;
    if (this.closed || socket === null || !peer.connected || socket.destroyed) return;
    while (!peer.blocked && peer.urgent.length + peer.bulk.length > 0) {
      let bytes = 0;
      let ok = true;
      socket.cork();
      while (ok && bytes < BATCH_BYTES) {
        const next = peer.urgent.length > 0 ? peer.urgent.shift() : peer.bulk.shift();
        if (next === undefined) break;
        ok = socket.write(next);
        bytes += next.length;
        this.counters.sent++;
      }
      socket.uncork();
      if (!ok) peer.blocked = true;
    }
  }

  // ---- inbound ----

  private accept(socket: net.Socket): void {
    const label = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    if (this.closed) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    if (this.inbound.size >= this.inboundConnectionsMax) {
      // A flood of connections must not hold unbounded frame buffers or file descriptors.
      this.counters.refusedConnections++;
      if (!this.loggedConnectionLimit) {
        this.loggedConnectionLimit = true;
        this.logger.warn(`refusing connection from ${label}: ${this.inboundConnectionsMax} connections are open (further refusals are only counted)`);
      }
      socket.destroy();
      return;
    }
    let certNode: NodeId | null = null;
    if (this.tlsOptions !== null) {
      // The handshake verified the certificate against the CA; now it must name a node of this cluster.
      const cert = (socket as tls.TLSSocket).getPeerX509Certificate();
      const id = cert === undefined ? null : peerIdentity(cert);
      if (id === null || id.clusterId !== this.clusterId) {
        this.counters.tlsIdentityMismatches++;
        const names = id === null ? 'no node' : `node ${id.nodeId} of cluster ${JSON.stringify(id.clusterId)}`;
        this.logTls(`refusing TLS connection from ${label}: its certificate names ${names}, not a node of cluster ${JSON.stringify(this.clusterId)}`);
        socket.destroy();
        return;
      }
      certNode = id.nodeId;
    }
    const conn: Inbound = { socket, label, peer: null, nonMember: false, address: null, certNode, chunks: [], buffered: 0, need: -1, helloTimer: null, stallTimer: null, dead: false };
    this.inbound.add(conn);
    conn.helloTimer = setTimeout(() => {
      conn.helloTimer = null;
      this.malformed(conn, `no hello within ${HELLO_TIMEOUT_MS} ms`);
    }, HELLO_TIMEOUT_MS);
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', () => {
      // 'close' follows; a reset from a dialler that went away is routine.
    });
    socket.on('close', () => {
      if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
      conn.helloTimer = null;
      if (conn.stallTimer !== null) clearTimeout(conn.stallTimer);
      conn.stallTimer = null;
      conn.dead = true;
      conn.chunks = [];
      this.inbound.delete(conn);
      this.nonMemberConns.delete(conn);
    });
  }

  private onData(conn: Inbound, chunk: Buffer): void {
    if (conn.dead) return;
    conn.chunks.push(chunk);
    conn.buffered += chunk.length;
    while (!conn.dead) {
      if (conn.need < 0) {
        if (conn.buffered < FRAME_HEADER_BYTES) {
          this.armStallTimer(conn);
          return;
        }
        const length = take(conn, FRAME_HEADER_BYTES).readUInt32LE(0);
        const limit = conn.peer === null ? Math.min(MAX_HELLO_BYTES, this.maxFrameBytes) : this.maxFrameBytes;
        if (length > limit) {
          this.malformed(conn, `frame length ${length} exceeds ${conn.peer === null ? 'the hello limit' : 'maxFrameBytes'} ${limit}`);
          return;
        }
        conn.need = length;
      }
      if (conn.buffered < conn.need) {
        this.armStallTimer(conn);
        return;
      }
      const payload = take(conn, conn.need);
      conn.need = -1;
      if (conn.peer === null) this.onHello(conn, payload);
      else this.onFrame(conn, conn.peer, payload);
    }
  }

  private onHello(conn: Inbound, payload: Buffer): void {
    let hello: Hello;
    try {
      hello = decodeHello(plain(payload));
    } catch (err) {
      this.malformed(conn, `bad hello: ${errorMessage(err)}`);
      return;
    }
    if (this.tlsOptions !== null && hello.from !== conn.certNode) {
      this.counters.tlsIdentityMismatches++;
      this.logTls(`refusing TLS connection from ${conn.label}: its hello comes from node ${hello.from} but its certificate names node ${String(conn.certNode)}`);
      this.kill(conn);
      return;
    }
    const member = this.peers.has(hello.from);
    let refusal: string | null = null;
    if (hello.clusterId !== this.clusterId) {
      refusal = `cluster ${JSON.stringify(hello.clusterId)} is not ${JSON.stringify(this.clusterId)}`;
    } else if (hello.to !== this.nodeId) {
      refusal = `node ${hello.from} is calling node ${hello.to}, but this is node ${this.nodeId}`;
    } else if (hello.from === this.nodeId) {
      refusal = `the hello claims to come from this node (${this.nodeId})`;
    } else if (!member && this.nonMemberConnectionsMax === 0) {
      refusal = `node ${hello.from} is not a member (nonMemberConnectionsMax is 0)`;
    }
    if (refusal !== null) {
      this.counters.refusedHandshakes++;
      this.refusalLog.log(`refusing connection from ${conn.label}: ${refusal}`);
      this.kill(conn);
      return;
    }
    if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
    conn.helloTimer = null;
    conn.peer = hello.from;
    conn.address = hello.address ?? null;
    // A few connections per id (a restarted peer's old one may linger half-open); past that, the
    // oldest goes. So members' established connections stay below INBOUND_PER_PEER_MAX × members,
    // and non-members share nonMemberConnectionsMax: strangers and impostors cannot fill
    // inboundConnectionsMax. (An impostor can still displace a member's connection: only peer
    // authentication prevents that.)
    const fromPeer = [...this.inbound].filter((other) => other.peer === hello.from && !other.dead);
    for (const oldest of fromPeer.slice(0, Math.max(0, fromPeer.length - INBOUND_PER_PEER_MAX))) {
      if (member) this.log(`closing the oldest of ${fromPeer.length} connections from node ${hello.from} (${oldest.label})`);
      this.kill(oldest);
    }
    if (!member) this.acceptNonMember(conn, hello);
    else this.logger.debug(`accepted a connection from node ${hello.from} at ${conn.label}`);
  }

  /**
   * `conn` said hello from an id outside the peer set: it joins the non-member connections (the
   * oldest beyond nonMemberConnectionsMax is closed), and its advertised address is learned.
   */
  private acceptNonMember(conn: Inbound, hello: Hello): void {
    conn.nonMember = true;
    this.nonMemberConns.add(conn);
    this.counters.nonMembersAccepted++;
    const id = hello.from;
    if (this.loggedNonMembers.has(id)) {
      this.loggedNonMembers.delete(id);
    } else {
      const address = hello.address === undefined ? 'no address' : `advertises ${hello.address.host}:${hello.address.port}`;
      this.logNonMember(`accepted a connection from non-member node ${id} at ${conn.label} (${address})`);
    }
    this.loggedNonMembers.set(id, true); // most recently seen
    for (const old of this.loggedNonMembers.keys()) {
      if (this.loggedNonMembers.size <= LOGGED_IDS_MAX) break;
      this.loggedNonMembers.delete(old);
    }
    for (const oldest of this.nonMemberConns) {
      if (this.nonMemberConns.size <= this.nonMemberConnectionsMax) break;
      this.counters.nonMembersEvicted++;
      if (!this.loggedNonMemberEviction) {
        this.loggedNonMemberEviction = true;
        this.log(
          `closing the oldest non-member connection (node ${oldest.peer} at ${oldest.label}): ${this.nonMemberConnectionsMax} are open` +
            ' (further evictions are only counted)',
        );
      }
      this.kill(oldest);
    }
    if (hello.address !== undefined) this.learn(id, hello.address);
  }

  private onFrame(conn: Inbound, peer: NodeId, payload: Buffer): void {
    let message: Message;
    try {
      message = decodeMessage(plain(payload));
    } catch (err) {
      if (!(err instanceof CodecError)) this.log(`unexpected decoder error: ${errorMessage(err)}`);
      this.malformed(conn, `undecodable message from node ${peer}: ${errorMessage(err)}`);
      return;
    }
    if (message.from !== peer || message.to !== this.nodeId) {
      this.counters.misaddressed++;
      return;
    }
    if (this.closed || this.onMessage === null) return;
    if (this.cut.has(peer)) {
      this.cutDrops++;
      return;
    }
    this.counters.received++;
    // A non-member that keeps talking keeps its learned address (re-learned if a flood of other
    // hellos evicted it), so the answer to this message can reach it.
    if (conn.nonMember && conn.address !== null) this.refreshLearned(peer, conn.address);
    try {
      this.onMessage(message);
    } catch (err) {
      this.log(`onMessage threw on ${message.type} from node ${peer}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  /** Part of a frame is buffered: it must be completed, or make progress, within frameStallMs. */
  private armStallTimer(conn: Inbound): void {
    if (conn.stallTimer !== null) clearTimeout(conn.stallTimer);
    conn.stallTimer = null;
    if (conn.buffered === 0 && conn.need < 0) return;
    conn.stallTimer = setTimeout(() => {
      conn.stallTimer = null;
      this.malformed(conn, `a partial frame (${conn.buffered} bytes buffered) stalled for ${this.frameStallMs} ms`);
    }, this.frameStallMs);
  }

  private malformed(conn: Inbound, why: string): void {
    this.counters.malformedFrames++;
    this.logger.warn(`closing connection from ${conn.label}${conn.peer === null ? '' : ` (node ${conn.peer})`}: ${why}`);
    this.kill(conn);
  }

  private kill(conn: Inbound): void {
    this.nonMemberConns.delete(conn);
    if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
    conn.helloTimer = null;
    if (conn.stallTimer !== null) clearTimeout(conn.stallTimer);
    conn.stallTimer = null;
    conn.dead = true;
    conn.chunks = [];
    conn.buffered = 0;
    conn.socket.destroy();
  }
}

/** Removes the first `n` buffered bytes of `conn` (n <= conn.buffered), copying only across chunks. */
function take(conn: Inbound, n: number): Buffer {
  conn.buffered -= n;
  const first = conn.chunks[0];
  if (first !== undefined && first.length >= n) {
    if (first.length === n) conn.chunks.shift();
    else conn.chunks[0] = first.subarray(n);
    return first.subarray(0, n);
  }
  const out = Buffer.allocUnsafe(n);
  let filled = 0;
  while (filled < n) {
    const chunk = conn.chunks[0]!;
    const k = Math.min(chunk.length, n - filled);
    chunk.copy(out, filled, 0, k);
    filled += k;
    if (k === chunk.length) conn.chunks.shift();
    else conn.chunks[0] = chunk.subarray(k);
  }
  return out;
}

/**
 * A plain Uint8Array view of `buf`. The decoder copies byte strings out with `slice()`, which on a
 * Buffer would return a view instead: decoded messages would then alias (and keep alive) the socket's
 * read buffers, and carry Buffers rather than Uint8Arrays.
 */
function plain(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

function newPeer(p: PeerAddress, learned = false): Peer {
  return {
    id: p.id,
    host: p.host,
    port: p.port,
    learned,
    urgent: new FrameQueue(),
    bulk: new FrameQueue(),
    socket: null,
    connected: false,
    connectedAt: 0,
    blocked: false,
    flushScheduled: false,
    failures: 0,
    reconnectTimer: null,
    connectTimer: null,
    lastError: null,
  };
}

function clearPeerTimers(peer: Peer): void {
  if (peer.reconnectTimer !== null) clearTimeout(peer.reconnectTimer);
  if (peer.connectTimer !== null) clearTimeout(peer.connectTimer);
  peer.reconnectTimer = null;
  peer.connectTimer = null;
}

/** Resolves once `socket` has emitted 'close' (at once if it already has). */
function destroyed(socket: net.Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

function checkInt(value: number, name: string, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
