/**
 * KvServer: one member of the replicated KV service. It wires a RaftNode (FileStorage in
 * `dataDir`, TcpTransport between members) to a KvStateMachine and serves an HTTP/JSON API.
 *
 * HTTP API (node:http, HTTP/1.1 keep-alive; every response is JSON with
 * `Content-Type: application/json`, except /metrics):
 *
 *     GET    /v1/kv/{key}                     read; 200 {"key","value","encoding","index"} or 404 not-found
 *              ?stale=true                      served from this node's state machine, on any node, unconfirmed
 *              ?encoding=base64                 always base64 (default: UTF-8 text when the value is valid UTF-8)
 *     PUT    /v1/kv/{key}        body = value  put;    200 {"index","previous","encoding"}
 *     POST   /v1/kv/{key}?op=append  body      append; 200 {"index","previous","encoding"}
 *     POST   /v1/kv/{key}?op=put     body      put (same as PUT)
 *     POST   /v1/kv/{key}?cas=<expected> body  compare-and-swap: 200 {"swapped":true,"index","previous"}
 *     POST   /v1/kv/{key}?cas-absent=true body   or 409 {"swapped":false,"value","encoding","index"}
 *     DELETE /v1/kv/{key}                     delete; 200 {"index","previous","encoding"}
 *     GET    /v1/status                        this node's Raft and KV status
 *     GET    /healthz                          200 {"ok":true} (503 once the node stopped)
 *     GET    /metrics                          Prometheus text format
 *
 * Keys are the rest of the path after `/v1/kv/`, percent-decoded to bytes (so a key may hold any
 * byte, `/` included, when encoded). `previous`/`value` are null when the key was absent; their
 * `encoding` says whether the string is UTF-8 text or base64. `?encoding=base64` works on writes too
 * (for `previous`). The cas expected value is the percent-decoded query value, taken as raw bytes.
 *
 * Reads are linearizable by default: the leader confirms its leadership (ReadIndex) and answers from
 * its state machine; with `readMode: 'log'` a read is a `get` command through the log instead.
 *
 * Exactly-once: `X-Client-Id` (1..CLIENT_ID_BYTES_MAX bytes of printable ASCII) and `X-Request-Seq`
 * (a positive integer) make a write part of that client's session: resending the same (id, seq)
 * returns the first answer and applies nothing again. A client must send its requests one at a time
 * per id, with increasing seqs; an older seq than the last applied one answers 409 stale-request.
 * Without the headers a write is session-less (never deduplicated).
 *
 * Errors are `{"error":{"code","message",...}}`:
 *
 *     307 not-leader      writes and linearizable reads on a follower; `Location` is the leader's URL
 *                         with the same path and query; the body names the leader (leaderId, leaderUrl)
 *     503 no-leader       no leader known (Retry-After: 1); also busy, dropped, stopped
 *     504 timeout         the proposal or read did not complete in requestTimeoutMs (a write may still apply)
 *     400 invalid-key, malformed-percent-encoding, unknown-op, unknown-parameter, bad-parameter,
 *         bad-header, invalid-command, bad-request
 *     404 not-found (absent key), no-route
 *     405 method-not-allowed (with Allow)
 *     409 stale-request, or a cas that did not swap (not an error object: {"swapped":false,...})
 *     413 value-too-large  as soon as the body passes VALUE_BYTES_MAX (or Content-Length says it will);
 *                         the rest of the body is discarded unread, up to DRAIN_BYTES_MAX / DRAIN_MS,
 *                         after which the connection is closed
 *     431 / 400 from the HTTP parser (request line or headers too large or malformed), as JSON
 *     500 internal        a bug; logged
 *
 * Limits (exported below): KEY_BYTES_MAX (1024) bytes per key, VALUE_BYTES_MAX (1 MiB) per value
 * (and per append result), CLIENT_ID_BYTES_MAX (128) per client id, HTTP_HEADER_BYTES_MAX (64 KiB)
 * for the request line plus headers (which bounds keys and cas expected values once encoded),
 * REQUEST_SEQ_MAX (2^53 - 1), PROPOSALS_IN_FLIGHT_MAX proposals waiting for commit at once (then 503
 * busy).
 *
 * Snapshots: the server counts the command bytes (+ ENTRY_OVERHEAD_BYTES per entry) applied since
 * the last snapshot; once that passes `maxRaftStateBytes` it hands the state machine's snapshot to
 * the RaftNode, which compacts its log. On restart the RaftNode restores the state machine from its
 * latest snapshot and replays the log after it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { FRAME_HEADER_BYTES, TcpTransport } from '../transport/tcp.js';
import { messageSize } from '../codec/codec.js';
import type { Entry, HardState, Message, PersistentState, Snapshot } from '../core/messages.js';
import type { LogWrite } from '../core/ready.js';
import { BusyError, ConfigError, NodeStoppedError, NotLeaderError, ProposalDroppedError, ProposalTimeoutError } from '../runtime/errors.js';
import { RaftNode, type NodeStatus, type RaftNodeTiming, type StateMachine } from '../runtime/node.js';
import { FileStorage } from '../storage/file-storage.js';
import type { Storage } from '../storage/storage.js';
import type { Transport } from '../transport/transport.js';
import { CLIENT_ID_BYTES_MAX, encodeKvCommand, KEY_BYTES_MAX, VALUE_BYTES_MAX, type KvCommand, type KvResult } from './commands.js';
import { KvStateMachine } from './state-machine.js';

export { CLIENT_ID_BYTES_MAX, KEY_BYTES_MAX, VALUE_BYTES_MAX } from './commands.js';

// ---- limits and defaults ----

/** Default `maxRaftStateBytes`: snapshot once 8 MiB of log was applied since the last snapshot. */
export const DEFAULT_MAX_RAFT_STATE_BYTES = 8 * 1024 * 1024;
/** Bytes counted per applied entry on top of its command, for `maxRaftStateBytes`. */
export const ENTRY_OVERHEAD_BYTES = 16;
/** The largest X-Request-Seq. */
export const REQUEST_SEQ_MAX = Number.MAX_SAFE_INTEGER;
/** Request line plus headers, in bytes (node:http's maxHeaderSize). */
export const HTTP_HEADER_BYTES_MAX = 64 * 1024;
/** Default time a write or linearizable read may wait for commit or confirmation. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
/** Proposals waiting for commit at once on this node before writes answer 503 busy. */
export const PROPOSALS_IN_FLIGHT_MAX = 10_000;
/** After a 413, the rest of the body is read and discarded up to this many bytes... */
export const DRAIN_BYTES_MAX = 4 * 1024 * 1024;
/** ...or for this long, then the connection is closed. */
export const DRAIN_MS = 2_000;

// ---- options ----

export interface KvPeer {
  readonly id: number;
  readonly raftHost: string;
  readonly raftPort: number;
  /** Base URL of the member's HTTP API, e.g. `http://10.0.0.1:8080`. */
  readonly httpUrl: string;
}

export interface KvServerOptions {
  readonly id: number;
  /** Every member, this one included. */
  readonly peers: readonly KvPeer[];
  readonly dataDir: string;
  /** Members of different clusters refuse each other's connections (default 'tsraft'). */
  readonly clusterId?: string;
  /** Where the Raft transport listens (default: this member's raftHost/raftPort). */
  readonly raftListen?: { readonly host: string; readonly port: number };
  /** Where the HTTP API listens; port 0 picks a free port (see `httpPort`). */
  readonly httpListen: { readonly host: string; readonly port: number };
  /** Snapshot once the log applied since the last snapshot passes this many bytes (default 8 MiB; -1 never). */
  readonly maxRaftStateBytes?: number;
  /** fsync the write-ahead log (default true; false is unsafe outside tests). */
  readonly fsync?: boolean;
  readonly timing?: RaftNodeTiming;
  /** How linearizable reads are served (default 'read-index'). */
  readonly readMode?: 'read-index' | 'log';
  /** How long a write or linearizable read may wait before 504 (default 5 s). */
  readonly requestTimeoutMs?: number;
  /** One line per notable event (default: stderr). */
  readonly log?: (line: string) => void;
}

export interface KvServerStatus {
  readonly id: number;
  readonly role: NodeStatus['role'];
  readonly term: number;
  readonly leaderId: number | null;
  readonly leaderUrl: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly peers: readonly { id: number; url: string | null; match: number; next: number; state: string }[];
  readonly keys: number;
  readonly bytes: number;
  readonly sessions: number;
  readonly snapshotsTaken: number;
  readonly stopped: boolean;
}

// ---- metrics ----

const PROPOSAL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const FSYNC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(private readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (seconds <= this.buckets[i]!) {
        this.counts[i]!++;
        break;
      }
    }
  }

  render(name: string, help: string): string {
    let out = `# HELP ${name} ${help}\n# TYPE ${name} histogram\n`;
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += this.counts[i]!;
      out += `${name}_bucket{le="${this.buckets[i]}"} ${cumulative}\n`;
    }
    out += `${name}_bucket{le="+Inf"} ${this.count}\n${name}_sum ${this.sum}\n${name}_count ${this.count}\n`;
    return out;
  }
}

function metric(name: string, type: 'gauge' | 'counter', help: string, value: number): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${value}\n`;
}

/** Times every durable save: one WAL append (and snapshot file, when there is one) plus its fdatasync. */
class TimedStorage implements Storage {
  constructor(
    readonly inner: FileStorage,
    private readonly histogram: Histogram,
  ) {}

  open(): Promise<PersistentState> {
    return this.inner.open();
  }

  async save(hardState: HardState | null, snapshot: Snapshot | null, logWrite: LogWrite | null): Promise<void> {
    const started = performance.now();
    await this.inner.save(hardState, snapshot, logWrite);
    this.histogram.observe((performance.now() - started) / 1000);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Counts the bytes of the Raft message frames going through the TCP transport. */
class CountingTransport implements Transport {
  bytesSent = 0;
  bytesReceived = 0;

  constructor(readonly inner: TcpTransport) {}

  start(onMessage: (message: Message) => void): Promise<void> {
    return this.inner.start((message) => {
      this.bytesReceived += frameSize(message);
      onMessage(message);
    });
  }

  send(message: Message): void {
    this.bytesSent += frameSize(message);
    this.inner.send(message);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

function frameSize(message: Message): number {
  try {
    return FRAME_HEADER_BYTES + messageSize(message);
  } catch {
    return 0; // a message the codec rejects is dropped by the transport and counted there
  }
}

// ---- HTTP helpers ----

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const textEncoder = new TextEncoder();

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** Strict percent-decoding to bytes; `plusIsSpace` for query components. Throws HttpError 400. */
function percentDecode(s: string, what: string, plusIsSpace: boolean): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      const hi = i + 2 < s.length ? hexValue(s.charCodeAt(i + 1)) : -1;
      const lo = i + 2 < s.length ? hexValue(s.charCodeAt(i + 2)) : -1;
      if (hi < 0 || lo < 0) {
        throw new HttpError(400, 'malformed-percent-encoding', `${what}: "%" at position ${i} is not followed by two hex digits`);
      }
      out.push(hi * 16 + lo);
      i += 2;
    } else if (c === 0x2b && plusIsSpace) {
      out.push(0x20);
    } else if (c < 0x80) {
      out.push(c);
    } else {
      // node:http refuses raw non-ASCII bytes in the request target; be safe anyway.
      for (const b of textEncoder.encode(s[i]!)) out.push(b);
    }
  }
  return Uint8Array.from(out);
}

function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    throw new HttpError(400, 'bad-parameter', `${what} is not valid UTF-8`);
  }
}

/** Query parameters, decoded strictly; a name may appear once. */
function parseQuery(raw: string): Map<string, Uint8Array> {
  const params = new Map<string, Uint8Array>();
  if (raw === '') return params;
  for (const part of raw.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawName = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? '' : part.slice(eq + 1);
    const name = decodeUtf8(percentDecode(rawName, 'query parameter name', true), 'query parameter name');
    if (params.has(name)) throw new HttpError(400, 'bad-parameter', `query parameter "${name}" appears more than once`);
    params.set(name, percentDecode(rawValue, `query parameter "${name}"`, true));
  }
  return params;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A value as JSON: UTF-8 text when it is valid UTF-8 (and base64 is not forced), else base64. */
function jsonValue(bytes: Uint8Array | null, forceBase64: boolean): { value: string | null; encoding: 'utf8' | 'base64' } {
  if (bytes === null) return { value: null, encoding: forceBase64 ? 'base64' : 'utf8' };
  if (!forceBase64) {
    try {
      return { value: utf8Strict.decode(bytes), encoding: 'utf8' };
    } catch {
      // not UTF-8: fall through to base64
    }
  }
  return { value: toBuffer(bytes).toString('base64'), encoding: 'base64' };
}

function describeError(error: unknown): string {
  return error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
}

const ROLES: readonly NodeStatus['role'][] = ['follower', 'precandidate', 'candidate', 'leader'];

const KV_PREFIX = '/v1/kv/';

const ALLOWED_PARAMS: Record<string, ReadonlySet<string>> = {
  GET: new Set(['stale', 'encoding']),
  PUT: new Set(['encoding']),
  POST: new Set(['op', 'cas', 'cas-absent', 'encoding']),
  DELETE: new Set(['encoding']),
};

interface KvRequest {
  readonly method: string;
  readonly rawPath: string;
  readonly rawQuery: string;
  readonly key: Uint8Array;
  readonly params: Map<string, Uint8Array>;
  readonly session: { clientId: string; seq: number } | null;
  readonly base64: boolean;
}

// ---- the server ----

export class KvServer {
  readonly id: number;
  private readonly options: KvServerOptions;
  private readonly log: (line: string) => void;
  private readonly sm = new KvStateMachine();
  private readonly urls = new Map<number, string>();
  private readonly maxRaftStateBytes: number;
  private readonly requestTimeoutMs: number;
  private readonly readMode: 'read-index' | 'log';

  private node: RaftNode | null = null;
  private storage: TimedStorage | null = null;
  private transport: CountingTransport | null = null;
  private http: Server | null = null;
  private boundHttpPort = -1;
  private stopping: Promise<void> | null = null;

  /** Proposals this server is waiting for: while none are, results are dropped as they are applied. */
  private inflight = 0;
  private bytesSinceSnapshot = 0;
  private snapshotScheduled = false;
  private snapshotsTaken = 0;
  private readonly proposalHistogram = new Histogram(PROPOSAL_BUCKETS);
  private readonly fsyncHistogram = new Histogram(FSYNC_BUCKETS);
  private readonly responses = new Map<number, number>();

  private constructor(options: KvServerOptions) {
    this.options = options;
    this.id = options.id;
    const id = options.id;
    this.log = options.log ?? ((line) => process.stderr.write(`tsraft kv (node ${id}): ${line}\n`));
    for (const p of options.peers) this.urls.set(p.id, p.httpUrl.replace(/\/+$/, ''));
    this.maxRaftStateBytes = options.maxRaftStateBytes ?? DEFAULT_MAX_RAFT_STATE_BYTES;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.readMode = options.readMode ?? 'read-index';
  }

  /** Opens the data directory, starts Raft and the HTTP listener. Rejects with ConfigError on bad options. */
  static async start(options: KvServerOptions): Promise<KvServer> {
    KvServer.validate(options);
    const server = new KvServer(options);
    await server.startRaft();
    try {
      await server.startHttp();
    } catch (error) {
      await server.node?.stop().catch(() => undefined);
      throw error;
    }
    return server;
  }

  private static validate(options: KvServerOptions): void {
    const problems: string[] = [];
    const isInt = (v: unknown, min: number, max: number): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
    if (!isInt(options.id, 0, Number.MAX_SAFE_INTEGER)) problems.push(`id must be a non-negative integer, got ${String(options.id)}`);
    const ids = new Set<number>();
    for (const p of options.peers ?? []) {
      if (!isInt(p.id, 0, Number.MAX_SAFE_INTEGER)) problems.push(`peer id must be a non-negative integer, got ${String(p.id)}`);
      if (ids.has(p.id)) problems.push(`duplicate peer id ${p.id}`);
      ids.add(p.id);
      if (!isInt(p.raftPort, 1, 65535)) problems.push(`peer ${p.id}: raftPort must be 1..65535, got ${String(p.raftPort)}`);
      if (typeof p.raftHost !== 'string' || p.raftHost === '') problems.push(`peer ${p.id}: raftHost must be a non-empty string`);
      try {
        const url = new URL(p.httpUrl);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') problems.push(`peer ${p.id}: httpUrl must be http(s), got ${p.httpUrl}`);
      } catch {
        problems.push(`peer ${p.id}: httpUrl is not a URL: ${String(p.httpUrl)}`);
      }
    }
    if (!ids.has(options.id)) problems.push(`peers must include this member (id ${String(options.id)})`);
    if (typeof options.dataDir !== 'string' || options.dataDir === '') problems.push('dataDir must be a non-empty string');
    if (!isInt(options.httpListen?.port, 0, 65535)) problems.push(`httpListen.port must be 0..65535, got ${String(options.httpListen?.port)}`);
    if (options.raftListen !== undefined && !isInt(options.raftListen.port, 0, 65535)) {
      problems.push(`raftListen.port must be 0..65535, got ${String(options.raftListen.port)}`);
    }
    const max = options.maxRaftStateBytes;
    if (max !== undefined && max !== -1 && !isInt(max, 0, Number.MAX_SAFE_INTEGER)) {
      problems.push(`maxRaftStateBytes must be -1 or a non-negative integer, got ${String(max)}`);
    }
    const timeout = options.requestTimeoutMs;
    if (timeout !== undefined && !isInt(timeout, 1, 2 ** 31 - 1)) problems.push(`requestTimeoutMs must be a positive integer, got ${String(timeout)}`);
    if (options.readMode !== undefined && options.readMode !== 'read-index' && options.readMode !== 'log') {
      problems.push(`readMode must be 'read-index' or 'log', got ${String(options.readMode)}`);
    }
    if (problems.length > 0) throw new ConfigError(problems);
  }

  private async startRaft(): Promise<void> {
    const options = this.options;
    const self = options.peers.find((p) => p.id === options.id)!;
    const storage = new TimedStorage(new FileStorage({ dir: options.dataDir, fsync: options.fsync ?? true }), this.fsyncHistogram);
    const transport = new CountingTransport(
      new TcpTransport({
        clusterId: options.clusterId ?? 'tsraft',
        nodeId: options.id,
        listen: options.raftListen ?? { host: self.raftHost, port: self.raftPort },
        peers: options.peers.filter((p) => p.id !== options.id).map((p) => ({ id: p.id, host: p.raftHost, port: p.raftPort })),
        log: (line) => this.log(`transport: ${line}`),
      }),
    );
    const stateMachine: StateMachine = {
      apply: (entry) => this.apply(entry),
      restore: (snapshot) => {
        this.sm.restore(snapshot);
        this.bytesSinceSnapshot = 0;
      },
    };
    try {
      this.node = await RaftNode.start({
        id: options.id,
        peers: options.peers.map((p) => p.id),
        storage,
        transport,
        stateMachine,
        addresses: this.urls,
        proposeTimeoutMs: this.requestTimeoutMs,
        proposalsInFlightMax: PROPOSALS_IN_FLIGHT_MAX,
        ...(options.timing === undefined ? {} : { timing: options.timing }),
        onFatal: (error) => this.log(`raft node stopped on a fatal error: ${describeError(error)}`),
      });
    } catch (error) {
      // RaftNode.start does not release what it opened when a later step (e.g. listen) fails.
      await transport.close().catch(() => undefined);
      await storage.close().catch(() => undefined);
      throw error;
    }
    this.storage = storage;
    this.transport = transport;
  }

  private async startHttp(): Promise<void> {
    const http = createServer({ keepAlive: true, maxHeaderSize: HTTP_HEADER_BYTES_MAX }, (req, res) => this.handle(req, res));
    http.on('clientError', (error: Error & { code?: string }, socket: Socket) => {
      if (!socket.writable || (error.code !== undefined && ['ECONNRESET', 'EPIPE'].includes(error.code))) {
        socket.destroy();
        return;
      }
      const [status, text] =
        error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout'] : [400, 'Bad Request'];
      const body = JSON.stringify({
        error: { code: status === 431 ? 'headers-too-large' : status === 408 ? 'request-timeout' : 'bad-request', message: `malformed HTTP request (${error.code ?? error.message})` },
      });
      socket.end(
        `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen({ host: this.options.httpListen.host, port: this.options.httpListen.port }, () => {
        http.off('error', reject);
        resolve();
      });
    });
    http.on('error', (error) => this.log(`http server error: ${describeError(error)}`));
    this.boundHttpPort = (http.address() as { port: number }).port;
    this.http = http;
  }

  /** The port the HTTP API listens on. */
  get httpPort(): number {
    return this.boundHttpPort;
  }

  /** Stops the HTTP listener (closing every connection), then the RaftNode. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const http = this.http;
      if (http !== null) {
        const closed = new Promise<void>((resolve) => http.close(() => resolve()));
        http.closeAllConnections();
        await closed;
      }
      await this.node?.stop();
    })();
    return this.stopping;
  }

  status(): KvServerStatus {
    const node = this.node!;
    const s = node.status();
    const stats = this.sm.stats;
    return {
      id: s.id,
      role: s.role,
      term: s.term,
      leaderId: s.leaderId ?? null,
      leaderUrl: s.leaderId === undefined ? null : (this.urls.get(s.leaderId) ?? null),
      commitIndex: s.commitIndex,
      // The KV state machine's, which is what reads serve: Raft counts an incoming snapshot as
      // applied as soon as it accepts it, a little before the state machine is restored from it.
      appliedIndex: this.sm.appliedIndex,
      lastIndex: s.lastIndex,
      snapshotIndex: s.snapshotIndex,
      peers: s.peers.map((p) => ({ id: p.id, url: this.urls.get(p.id) ?? null, match: p.match, next: p.next, state: p.state })),
      keys: stats.keys,
      bytes: stats.bytes,
      sessions: stats.sessions,
      snapshotsTaken: this.snapshotsTaken,
      stopped: s.stopped || this.stopping !== null,
    };
  }

  // ------------------------------------------------------------------ state machine glue

  private apply(entry: Entry): void {
    this.sm.apply(entry);
    // Empty commands are the leader's no-ops (e.g. for ReadIndex): the state machine records them as
    // invalid-command no-ops; nobody waits for their result. Results nobody can be waiting for are
    // dropped at once, so a follower keeps none.
    if (entry.command.length === 0 || this.inflight === 0) this.sm.takeResult(entry.index);
    if (this.maxRaftStateBytes < 0) return;
    this.bytesSinceSnapshot += entry.command.length + ENTRY_OVERHEAD_BYTES;
    if (this.bytesSinceSnapshot > this.maxRaftStateBytes && !this.snapshotScheduled) {
      // After the Ready being applied: one snapshot covers every entry it commits.
      this.snapshotScheduled = true;
      queueMicrotask(() => this.takeSnapshot());
    }
  }

  private takeSnapshot(): void {
    this.snapshotScheduled = false;
    const node = this.node;
    if (node === null || this.bytesSinceSnapshot <= this.maxRaftStateBytes) return;
    try {
      node.snapshot(this.sm.appliedIndex, this.sm.snapshot());
      this.bytesSinceSnapshot = 0;
      this.snapshotsTaken++;
    } catch (error) {
      this.log(`snapshot at ${this.sm.appliedIndex} failed: ${describeError(error)}`);
    }
  }

  // ------------------------------------------------------------------ HTTP

  private handle(req: IncomingMessage, res: ServerResponse): void {
    res.on('finish', () => this.responses.set(res.statusCode, (this.responses.get(res.statusCode) ?? 0) + 1));
    this.route(req, res).catch((error: unknown) => {
      if (error instanceof HttpError) {
        this.sendError(res, error.status, error.code, error.message, {}, error.headers);
        return;
      }
      this.log(`internal error serving ${req.method} ${req.url}: ${describeError(error)}`);
      this.sendError(res, 500, 'internal', 'internal server error');
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    const rawQuery = q < 0 ? '' : url.slice(q + 1);
    const method = req.method ?? 'GET';
    if (this.stopping !== null) throw new HttpError(503, 'stopped', 'the server is stopping', { 'Retry-After': '1' });

    if (rawPath === '/healthz' || rawPath === '/v1/status' || rawPath === '/metrics') {
      if (method !== 'GET') throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${rawPath}; use GET`, { Allow: 'GET' });
      if (rawPath === '/healthz') {
        const stopped = this.node!.status().stopped;
        this.send(res, stopped ? 503 : 200, stopped ? { ok: false } : { ok: true });
      } else if (rawPath === '/v1/status') {
        this.send(res, 200, this.status());
      } else {
        const body = this.metrics();
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
        res.end(body);
      }
      return;
    }
    if (rawPath === '/v1/kv' || rawPath.startsWith(KV_PREFIX)) {
      await this.serveKv(req, res, method, rawPath, rawQuery);
      return;
    }
    throw new HttpError(404, 'no-route', `no such endpoint: ${rawPath}`);
  }

  private async serveKv(req: IncomingMessage, res: ServerResponse, method: string, rawPath: string, rawQuery: string): Promise<void> {
    const allowed = ALLOWED_PARAMS[method];
    if (allowed === undefined) {
      throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on /v1/kv/{key}; use GET, PUT, POST or DELETE`, {
        Allow: 'GET, PUT, POST, DELETE',
      });
    }
    const key = percentDecode(rawPath.slice(KV_PREFIX.length), 'key', false);
    if (key.length === 0) throw new HttpError(400, 'invalid-key', 'the key is empty: use /v1/kv/{key}');
    if (key.length > KEY_BYTES_MAX) throw new HttpError(400, 'invalid-key', `the key is ${key.length} bytes; keys are 1..${KEY_BYTES_MAX} bytes`);
    const params = parseQuery(rawQuery);
    for (const name of params.keys()) {
      if (!allowed.has(name)) throw new HttpError(400, 'unknown-parameter', `unknown query parameter "${name}" for ${method}`);
    }
    const encoding = this.textParam(params, 'encoding');
    if (encoding !== undefined && encoding !== 'base64' && encoding !== 'utf8' && encoding !== 'auto') {
      throw new HttpError(400, 'bad-parameter', `encoding must be base64, utf8 or auto, got "${encoding}"`);
    }
    const request: KvRequest = { method, rawPath, rawQuery, key, params, session: this.session(req), base64: encoding === 'base64' };

    switch (method) {
      case 'GET':
        await this.serveGet(res, request);
        return;
      case 'DELETE':
        await this.write(res, request, { op: 'delete', key });
        return;
      case 'PUT': {
        const value = await this.readBody(req, res);
        if (value !== null) await this.write(res, request, { op: 'put', key, value });
        return;
      }
      default: {
        // POST
        const op = this.textParam(params, 'op');
        const cas = params.get('cas');
        const casAbsent = this.textParam(params, 'cas-absent');
        if (casAbsent !== undefined && casAbsent !== 'true') throw new HttpError(400, 'bad-parameter', `cas-absent must be "true", got "${casAbsent}"`);
        if (cas !== undefined && casAbsent !== undefined) throw new HttpError(400, 'bad-parameter', 'give either cas or cas-absent, not both');
        let expected: Uint8Array | null | undefined;
        if (cas !== undefined || casAbsent !== undefined) {
          if (op !== undefined && op !== 'cas') throw new HttpError(400, 'unknown-op', `op "${op}" cannot be combined with cas`);
          if (cas !== undefined && cas.length > VALUE_BYTES_MAX) {
            throw new HttpError(413, 'value-too-large', `the expected value is ${cas.length} bytes; values are 0..${VALUE_BYTES_MAX} bytes`);
          }
          expected = cas ?? null;
        } else if (op === undefined) {
          throw new HttpError(400, 'unknown-op', 'POST needs ?op=append, ?op=put, ?cas=<expected> or ?cas-absent=true');
        } else if (op === 'cas') {
          throw new HttpError(400, 'bad-parameter', 'op=cas needs ?cas=<expected> or ?cas-absent=true');
        } else if (op !== 'append' && op !== 'put') {
          throw new HttpError(400, 'unknown-op', `unknown op "${op}": POST supports op=append, op=put and cas`);
        }
        const value = await this.readBody(req, res);
        if (value === null) return;
        if (expected !== undefined) await this.write(res, request, { op: 'cas', key, value, expected });
        else await this.write(res, request, { op: op === 'put' ? 'put' : 'append', key, value });
        return;
      }
    }
  }

  private textParam(params: Map<string, Uint8Array>, name: string): string | undefined {
    const bytes = params.get(name);
    return bytes === undefined ? undefined : decodeUtf8(bytes, `query parameter "${name}"`);
  }

  /** The X-Client-Id / X-Request-Seq session, or null for a session-less request. */
  private session(req: IncomingMessage): { clientId: string; seq: number } | null {
    const rawId = req.headers['x-client-id'];
    const rawSeq = req.headers['x-request-seq'];
    if (rawId === undefined && rawSeq === undefined) return null;
    if (typeof rawId !== 'string' || typeof rawSeq !== 'string') {
      throw new HttpError(400, 'bad-header', 'X-Client-Id and X-Request-Seq must be sent together, once each');
    }
    if (rawId.length === 0 || rawId.length > CLIENT_ID_BYTES_MAX || !/^[\x21-\x7e]+$/.test(rawId)) {
      throw new HttpError(400, 'bad-header', `X-Client-Id must be 1..${CLIENT_ID_BYTES_MAX} printable ASCII characters`);
    }
    const seq = /^[1-9][0-9]{0,15}$/.test(rawSeq) ? Number(rawSeq) : NaN;
    if (!Number.isSafeInteger(seq) || seq > REQUEST_SEQ_MAX) {
      throw new HttpError(400, 'bad-header', `X-Request-Seq must be a positive integer up to ${REQUEST_SEQ_MAX}, got "${rawSeq.slice(0, 40)}"`);
    }
    return { clientId: rawId, seq };
  }

  /**
   * Reads the body up to VALUE_BYTES_MAX. Past the limit it answers 413 at once and returns null;
   * also null (with no answer possible) if the client went away.
   */
  private readBody(req: IncomingMessage, res: ServerResponse): Promise<Uint8Array | null> {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > VALUE_BYTES_MAX) {
      this.tooLarge(req, res, `the body is ${declared} bytes; values are 0..${VALUE_BYTES_MAX} bytes`);
      return Promise.resolve(null);
    }
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let total = 0;
      let done = false;
      const finish = (value: Uint8Array | null): void => {
        done = true;
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('close', onClose);
        resolve(value);
      };
      const onData = (chunk: Buffer): void => {
        if (done) return;
        total += chunk.length;
        if (total > VALUE_BYTES_MAX) {
          chunks.length = 0;
          finish(null);
          this.tooLarge(req, res, `the body passed ${VALUE_BYTES_MAX} bytes; values are 0..${VALUE_BYTES_MAX} bytes`);
          return;
        }
        chunks.push(chunk);
      };
      const onEnd = (): void => {
        if (done) return;
        const body = new Uint8Array(total);
        let at = 0;
        for (const chunk of chunks) {
          body.set(chunk, at);
          at += chunk.length;
        }
        finish(body);
      };
      const onClose = (): void => {
        if (!done && !req.complete) finish(null);
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('close', onClose);
    });
  }

  /** Answers 413, then discards the rest of the body (bounded), closing the connection past the bounds. */
  private tooLarge(req: IncomingMessage, res: ServerResponse, message: string): void {
    if (!req.complete) {
      // Flowing before the answer goes out, so node:http leaves the draining to us (it would
      // otherwise dump the body without a byte bound).
      const socket = req.socket;
      let drained = 0;
      const timer = setTimeout(() => socket.destroy(), DRAIN_MS);
      timer.unref();
      req.on('data', (chunk: Buffer) => {
        drained += chunk.length;
        if (drained > DRAIN_BYTES_MAX) {
          clearTimeout(timer);
          socket.destroy();
        }
      });
      req.on('end', () => clearTimeout(timer));
      req.on('close', () => clearTimeout(timer));
      req.resume();
    }
    this.sendError(res, 413, 'value-too-large', message);
  }

  private async serveGet(res: ServerResponse, request: KvRequest): Promise<void> {
    const stale = this.textParam(request.params, 'stale');
    if (stale !== undefined && stale !== 'true' && stale !== 'false') throw new HttpError(400, 'bad-parameter', `stale must be true or false, got "${stale}"`);
    const node = this.node!;
    let value: Uint8Array | null;
    let index: number;
    if (stale === 'true') {
      value = this.sm.get(request.key);
      index = this.sm.appliedIndex;
    } else if (this.readMode === 'read-index') {
      try {
        await node.read({ timeoutMs: this.requestTimeoutMs });
      } catch (error) {
        this.raftError(res, request, error);
        return;
      }
      value = this.sm.get(request.key);
      index = this.sm.appliedIndex;
    } else {
      const outcome = await this.propose(res, request, { op: 'get', clientId: '', seq: 0, key: request.key });
      if (outcome === null) return;
      if (!outcome.result.ok) {
        this.resultError(res, outcome.result);
        return;
      }
      value = outcome.result.value ?? null;
      index = outcome.index;
    }
    if (value === null) {
      this.sendError(res, 404, 'not-found', `key ${JSON.stringify(this.keyText(request.key))} does not exist`, { index });
      return;
    }
    const v = jsonValue(value, request.base64);
    const key = jsonValue(request.key, false);
    this.send(res, 200, { key: key.value, ...(key.encoding === 'base64' ? { keyEncoding: 'base64' } : {}), value: v.value, encoding: v.encoding, index });
  }

  private keyText(key: Uint8Array): string {
    const k = jsonValue(key, false);
    return k.encoding === 'utf8' ? k.value! : `base64:${k.value!}`;
  }

  private async write(
    res: ServerResponse,
    request: KvRequest,
    command: { op: 'put' | 'append' | 'cas' | 'delete'; key: Uint8Array; value?: Uint8Array; expected?: Uint8Array | null },
  ): Promise<void> {
    const session = request.session ?? { clientId: '', seq: 0 };
    const cmd: KvCommand = { ...command, clientId: session.clientId, seq: session.seq };
    const outcome = await this.propose(res, request, cmd);
    if (outcome === null) return;
    const result = outcome.result;
    if (!result.ok) {
      this.resultError(res, result);
      return;
    }
    const previous = jsonValue(result.value ?? null, request.base64);
    if (command.op === 'cas') {
      if (result.swapped === true) {
        this.send(res, 200, { swapped: true, index: outcome.index, previous: previous.value, encoding: previous.encoding });
      } else {
        this.send(res, 409, { swapped: false, index: outcome.index, value: previous.value, encoding: previous.encoding });
      }
      return;
    }
    this.send(res, 200, { index: outcome.index, previous: previous.value, encoding: previous.encoding });
  }

  /** Proposes a command and takes its result; answers the error itself and returns null on failure. */
  private async propose(res: ServerResponse, request: KvRequest, cmd: KvCommand): Promise<{ index: number; result: KvResult } | null> {
    let bytes: Uint8Array;
    try {
      bytes = encodeKvCommand(cmd);
    } catch (error) {
      throw new HttpError(400, 'invalid-command', error instanceof Error ? error.message : String(error));
    }
    const node = this.node!;
    const started = performance.now();
    this.inflight++;
    let index: number;
    try {
      index = (await node.propose(bytes, { timeoutMs: this.requestTimeoutMs })).index;
    } catch (error) {
      this.raftError(res, request, error);
      return null;
    } finally {
      this.inflight--;
    }
    this.proposalHistogram.observe((performance.now() - started) / 1000);
    const result = this.sm.takeResult(index);
    if (result === undefined) {
      // Only if more than the state machine's result window was applied before we got here.
      this.log(`the result of entry ${index} was no longer available`);
      this.sendError(res, 500, 'result-unavailable', `the command was applied at index ${index} but its result is no longer available`, { index });
      return null;
    }
    return { index, result };
  }

  private resultError(res: ServerResponse, result: KvResult & { ok: false }): void {
    if (result.error === 'stale-request') this.sendError(res, 409, 'stale-request', result.message);
    else this.sendError(res, 400, 'invalid-command', result.message);
  }

  /** Answers a RaftNode rejection. */
  private raftError(res: ServerResponse, request: KvRequest, error: unknown): void {
    if (error instanceof NotLeaderError) {
      const leaderUrl = error.leaderId === undefined ? undefined : (error.leaderAddress ?? this.urls.get(error.leaderId));
      if (error.leaderId === undefined || leaderUrl === undefined) {
        this.sendError(res, 503, 'no-leader', error.message, {}, { 'Retry-After': '1' });
        return;
      }
      const location = `${leaderUrl}${request.rawPath}${request.rawQuery === '' ? '' : `?${request.rawQuery}`}`;
      this.sendError(res, 307, 'not-leader', error.message, { leaderId: error.leaderId, leaderUrl }, { Location: location });
    } else if (error instanceof ProposalTimeoutError) {
      this.sendError(res, 504, 'timeout', error.message);
    } else if (error instanceof BusyError) {
      this.sendError(res, 503, 'busy', error.message, {}, { 'Retry-After': '1' });
    } else if (error instanceof ProposalDroppedError) {
      this.sendError(res, 503, 'dropped', error.message, {}, { 'Retry-After': '1' });
    } else if (error instanceof NodeStoppedError) {
      this.sendError(res, 503, 'stopped', error.message, {}, { 'Retry-After': '1' });
    } else {
      throw error;
    }
  }

  private sendError(res: ServerResponse, status: number, code: string, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): void {
    this.send(res, status, { error: { code, message, ...extra } }, headers);
  }

  private send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed || res.writableEnded) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private metrics(): string {
    const s = this.node!.status();
    const stats = this.sm.stats;
    const tcp = this.transport!.inner.stats;
    const wal = this.storage!.inner.stats;
    let out = '';
    out += metric('tsraft_term', 'gauge', 'Current Raft term.', s.term);
    out += '# HELP tsraft_role 1 for the role this node has now, 0 for the others.\n# TYPE tsraft_role gauge\n';
    for (const role of ROLES) out += `tsraft_role{role="${role}"} ${s.role === role ? 1 : 0}\n`;
    out += metric('tsraft_commit_index', 'gauge', 'Highest log index known to be committed.', s.commitIndex);
    out += metric('tsraft_applied_index', 'gauge', 'Highest log index applied to the KV state machine.', this.sm.appliedIndex);
    out += metric('tsraft_last_index', 'gauge', 'Index of the last entry in the log.', s.lastIndex);
    out += metric('tsraft_snapshot_index', 'gauge', 'Last log index covered by the latest snapshot.', s.snapshotIndex);
    out += metric('tsraft_snapshots_taken_total', 'counter', 'Snapshots this server handed to Raft for log compaction.', this.snapshotsTaken);
    out += this.proposalHistogram.render(
      'tsraft_proposal_duration_seconds',
      'Time from proposing a KV command to its commit and apply on this node, for proposals that committed.',
    );
    out += metric(
      'tsraft_transport_bytes_sent_total',
      'counter',
      'Bytes of Raft message frames (4-byte length header plus encoded message) handed to the TCP transport to send; frames it later drops are included, connection hellos are not.',
      this.transport!.bytesSent,
    );
    out += metric(
      'tsraft_transport_bytes_received_total',
      'counter',
      'Bytes of Raft message frames (4-byte length header plus encoded message) the TCP transport delivered; connection hellos are not counted.',
      this.transport!.bytesReceived,
    );
    out += metric('tsraft_transport_messages_sent_total', 'counter', 'Raft messages written to a socket.', tcp.sent);
    out += metric('tsraft_transport_messages_received_total', 'counter', 'Raft messages received and delivered.', tcp.received);
    out += metric(
      'tsraft_transport_messages_dropped_total',
      'counter',
      'Raft messages the transport dropped (full queue, too large, no connection, misaddressed).',
      tcp.dropped.queueFull + tcp.dropped.tooLarge + tcp.dropped.noConnection + tcp.dropped.misaddressed,
    );
    out += metric('tsraft_transport_connections', 'gauge', 'Open Raft connections (outbound connected plus accepted inbound).', tcp.connections);
    out += this.fsyncHistogram.render(
      'tsraft_wal_fsync_duration_seconds',
      'Time of one durable save of the Raft state: a group-committed WAL append (plus snapshot file when one is written) and its fdatasync; write time only when fsync is off.',
    );
    out += metric('tsraft_wal_syncs_total', 'counter', 'fdatasync/fsync calls on WAL, snapshot files and the data directory.', wal.syncs);
    out += metric('tsraft_wal_writes_total', 'counter', 'Write calls to the write-ahead log.', wal.writes);
    out += metric('tsraft_wal_bytes_written_total', 'counter', 'Bytes written to the write-ahead log.', wal.bytes);
    out += metric('tsraft_kv_keys', 'gauge', 'Keys in the KV state machine.', stats.keys);
    out += metric('tsraft_kv_bytes', 'gauge', 'Sum of key and value sizes in the KV state machine, in bytes.', stats.bytes);
    out += metric('tsraft_kv_sessions', 'gauge', 'Client sessions kept for exactly-once.', stats.sessions);
    out += '# HELP tsraft_http_responses_total HTTP responses sent, by status code.\n# TYPE tsraft_http_responses_total counter\n';
    for (const [code, count] of [...this.responses].sort((a, b) => a[0] - b[0])) out += `tsraft_http_responses_total{code="${code}"} ${count}\n`;
    return out;
  }
}
