/**
 * KvServer: one member of the replicated KV service. It wires a RaftNode (FileStorage in
 * `dataDir`, TcpTransport between members) to a KvReplica (the KV state machine, its snapshots,
 * writes and reads; replica.ts, which the explorer runs too) and serves the HTTP/JSON API
 * described in http-api.ts; its metrics are in metrics.ts.
 *
 * This module owns the member's lifecycle: options validation, start, stop. A leader that stops
 * hands leadership to the most up-to-date follower first, while its HTTP API still answers (writes
 * meanwhile get 503 leader-transfer, then redirects to the new leader), so clients see neither
 * connection errors nor an election timeout's gap.
 *
 * Limits (exported here, defined beside the code that enforces them): KEY_BYTES_MAX,
 * VALUE_BYTES_MAX and CLIENT_ID_BYTES_MAX (commands.ts), HTTP_HEADER_BYTES_MAX and REQUEST_SEQ_MAX
 * (http-api.ts), DRAIN_BYTES_MAX and DRAIN_MS (http-io.ts), PROPOSALS_IN_FLIGHT_MAX (below);
 * the HTTP resource bounds (connections, buffered bodies, timeouts) are HttpLimits (http-api.ts),
 * given as `options.http`.
 *
 * Cluster identity (storage/cluster-identity.ts): before storage is opened, `dataDir` is checked
 * against the cluster id, this member's id and the starting configuration's voter and learner ids
 * (recorded on the first start); a mismatch or a damaged identity file rejects start() with
 * ClusterIdentityError, changing nothing. Without `peers`, the starting configuration is read
 * from the identity instead (a restart: see KvServerOptions.peers).
 *
 * Membership (RaftNode.changeMembership; the HTTP API's /v1/members, http-member-routes.ts): the
 * starting configuration only seeds Raft; once the log holds a configuration, that one counts.
 * Whenever the configuration in effect changes, the TCP transport's peers become every member any
 * configuration this node knows names (not just the latest voters: a node catching up from an old
 * log must keep hearing the current leader), and so does the id → HTTP URL map behind redirects.
 * Member addresses travel in the configurations as `HOST:PORT/HTTP-URL` (member-address.ts).
 *
 * Snapshots (replica.ts): once `maxRaftStateBytes` of log was applied since the last snapshot.
 * On restart the RaftNode restores the state machine from its latest snapshot and replays the log
 * after it.
 */
import type { BackupSource } from './backup-format.js';
import { WatchHub } from './watch-hub.js';
import { addressOf, describeMembership, type Membership, type MembershipStep } from '../core/membership.js';
import type { Entry, NodeId } from '../core/messages.js';
import { ConfigError, RaftError } from '../runtime/errors.js';
import { RaftNode, type RaftNodeTiming } from '../runtime/node.js';
import { ensureClusterIdentity } from '../storage/cluster-identity.js';
import { FileStorage } from '../storage/file-storage.js';
import type { Storage } from '../storage/storage.js';
import { TcpTransport, type TcpTransportOptions } from '../transport/tcp.js';
import type { PeerAddress } from '../transport/transport.js';
import type { KvServerStatus, MembersView, MemberView } from './api-types.js';
import type { KvResult } from './commands.js';
import { describeError } from './describe-error.js';
import { authFileProblems, authPolicy, validateAuthFile, type AuthFile } from '../security/auth-file.js';
import { HttpAuthGuard } from './http-auth.js';
import { startHttpApi, validateHttpLimits, type HttpLimits, type HttpTlsOptions, type KvHttpServer } from './http-api.js';
import { checkOwnHttpScheme, httpTlsProblems } from './http-tls-config.js';
import type { HttpStats } from './http-io.js';
import { formatHostPort, formatMemberAddress, MemberAddressError, parseMemberAddress } from './member-address.js';
import { memberProblems, startingConfiguration, type StartingConfiguration } from './starting-configuration.js';
import { CountingTransport, KvMetrics, TimedStorage } from './metrics.js';
import { KvReplica } from './replica.js';
import { DashboardFeed, LOG_TAIL_MAX } from './dashboard-feed.js';
import { entryView } from './log-entry-view.js';
import { clusterHttp, type ClusterHttp } from './client-http.js';
import type { StateMachine } from '../runtime/node.js';
import { createLogger, loggerFromLines, type Logger } from '../runtime/logger.js';

export { CLIENT_ID_BYTES_MAX, KEY_BYTES_MAX, VALUE_BYTES_MAX } from './commands.js';
export { HTTP_HEADER_BYTES_MAX, REQUEST_SEQ_MAX, type HttpLimits, type HttpTlsOptions } from './http-api.js';
export { DRAIN_BYTES_MAX, DRAIN_MS } from './http-io.js';

// ---- limits and defaults ----

/** Default `maxRaftStateBytes`: snapshot once 8 MiB of log was applied since the last snapshot. */
export const DEFAULT_MAX_RAFT_STATE_BYTES = 8 * 1024 * 1024;
export { ENTRY_OVERHEAD_BYTES } from './replica.js';
/** Default time a write or linearizable read may wait for commit or confirmation. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
/** How long stop() lets the HTTP requests already in be answered before it closes their connections. */
export const HTTP_DRAIN_GRACE_MS = 1_000;
/** Proposals waiting for commit at once on this node before writes answer 503 busy. */
export const PROPOSALS_IN_FLIGHT_MAX = 10_000;

// ---- options ----

/** One member of the cluster: where its Raft transport and its HTTP API are reached. */
export interface KvPeer {
  readonly id: number;
  readonly raftHost: string;
  readonly raftPort: number;
  /** Base URL of the member's HTTP API, e.g. `http://10.0.0.1:8080`. */
  readonly httpUrl: string;
}

/** How to start a KvServer; checked by KvServer.start (ConfigError lists every problem). */
export interface KvServerOptions {
  readonly id: number;
  /**
   * The voters of the configuration this member starts with (this one included, unless it is in
   * `learners`): every member of a new cluster or, for a member joining a running cluster, that
   * cluster's voters. Recorded in `dataDir` on the first start (cluster-identity.json) and
   * compared on every later one, so a member is always restarted with the peers it first started
   * with, whatever the membership has become since: the configuration in effect comes from the
   * log (membership changes: POST/DELETE /v1/members), never from here.
   *
   * May be omitted (or empty) when `dataDir` already records an identity: the starting
   * configuration (voters, learners and their addresses) is then read from it, as recorded. That
   * is how a member that joined a running cluster restarts without repeating its join options
   * (`tsraft node --id N --data-dir D`). On a first start it is required.
   */
  readonly peers?: readonly KvPeer[];
  /**
   * The learners of the starting configuration (default none): a member joining a running cluster
   * lists itself here, with that cluster's voters as `peers`, then is added (POST /v1/members) and
   * promoted by the leader. Recorded and compared with `peers`; read from the identity with them.
   */
  readonly learners?: readonly KvPeer[];
  readonly dataDir: string;
  /** Members of different clusters refuse each other's connections (default 'tsraft'). */
  readonly clusterId?: string;
  /** Where the Raft transport listens (default: this member's raftHost/raftPort). */
  readonly raftListen?: { readonly host: string; readonly port: number };
  /** Where the HTTP API listens; port 0 picks a free port (see `httpPort`). Default: the host and port of this member's httpUrl. */
  readonly httpListen?: { readonly host: string; readonly port: number };
  /** Snapshot once the log applied since the last snapshot passes this many bytes (default 8 MiB; -1 never). */
  readonly maxRaftStateBytes?: number;
  /** Changes kept for watches that start in the past (GET /v1/watch; default 100,000 events). */
  readonly watchHistoryEvents?: number;
  /** fsync the write-ahead log (default true; false is unsafe outside tests). */
  readonly fsync?: boolean;
  readonly timing?: RaftNodeTiming;
  /** How linearizable reads are served (default 'read-index'). */
  readonly readMode?: 'read-index' | 'log';
  /** How long a write or linearizable read may wait before 504 (default 5 s). */
  readonly requestTimeoutMs?: number;
  /** One line per notable event (default: stderr). Unused when `logger` is given. */
  readonly log?: (line: string) => void;
  /**
   * Structured logs (runtime/logger.ts): records with a level and fields, elections and role
   * changes included. Without it, the same records reach `log` as plain lines (debug left out).
   */
  readonly logger?: Logger;
  /**
   * Called once if Raft stops on a fatal error (a failed fsync, a broken invariant). The node then
   * answers every KV request with 503 `node-stopped`; the owner should stop it and exit, so that
   * a supervisor restarts the process (`tsraft node` does).
   */
  readonly onFatal?: (error: Error) => void;
  /** Wraps the node's storage (the CLI's failpoint uses it to inject an fsync failure). */
  readonly wrapStorage?: (storage: Storage) => Storage;
  /** Bounds on HTTP connections, buffered bodies and slow clients (see HttpLimits in http-api.ts for the defaults). */
  readonly http?: HttpLimits;
  /**
   * Mutual TLS (1.3) between members (PEM strings; see TcpTransportOptions.tls): `ca` verifies the
   * other members' certificates, `cert`/`key` are this member's. `cert` must name this member of
   * this cluster (SAN URI `tsraft://<clusterId>/node/<id>`; `tsraft certs node` makes one), else
   * start() rejects with ConfigError. Absent: members speak plaintext TCP. The HTTP API is not
   * affected. Refusals are counted in /metrics (tsraft_transport_tls_refused_total).
   */
  readonly peerTls?: PeerTlsOptions;
  /**
   * Serve the HTTP API over HTTPS (TLS 1.2 or later) with this certificate and key (PEM); with
   * `clientCa`, clients are asked for a certificate signed by it (never required in the handshake:
   * see HttpTlsOptions). This member's own HTTP URL (its entry in `peers`/`learners`, or the one
   * its data directory recorded) must then be https://, and http:// without it; a contradiction, or
   * a certificate or key that TLS cannot load, rejects start() with ConfigError before the data
   * directory is touched. Handshake failures are counted in /metrics (tsraft_http_tls_refused_total).
   */
  readonly httpTls?: HttpTlsOptions;
  /**
   * Who may use the HTTP API (security/auth-file.ts: bearer tokens by their SHA-256, with roles;
   * `tsraft tokens` writes such a file). With it, or with `httpTls.clientCa` (a verified client
   * certificate is then a principal), every request but /healthz and /readyz needs a principal
   * with the role its endpoint needs (http-auth.ts), and sessions are bound to their principal.
   * Neither: everything is open, as before. Replace it while running with setAuth().
   */
  readonly auth?: AuthFile;
  /**
   * Where `tsraft start` serves its dev controls (stop, kill, pause a node...): the dashboard (/ui)
   * shows them when set. Absent: the dashboard is a view only.
   */
  readonly devControlsUrl?: string;
  /**
   * Enables the transport's development fault switch and its route, /v1/dev/faults (drop messages
   * to and from given peers); `tsraft start` only. Absent: no switch, and the route answers 404.
   */
  readonly devFaults?: boolean;
}

/** PEM material for mutual TLS between members (KvServerOptions.peerTls). */
export interface PeerTlsOptions {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

// ---- the server ----

/** One running member of the replicated KV service: start with KvServer.start, end with stop(). */
export class KvServer {
  readonly id: number;
  private readonly options: KvServerOptions;
  /** The starting configuration: from the options, or from the data directory's identity. */
  private readonly starting: StartingConfiguration;
  private readonly log: (line: string) => void;
  private readonly logger: Logger;
  private readonly replica: KvReplica;
  /**
   * Member id → HTTP base URL, for redirects and NotLeaderError (the RaftNode holds this map):
   * every member a known configuration names. Updated in place on each membership change.
   */
  private readonly urls = new Map<number, string>();
  /** Member id → parsed address, of the same members as `urls`. */
  private readonly addresses = new Map<number, { raft: string; http: string }>();
  /** onMembershipChange has been called once (at start): later calls are changes. */
  private membershipReported = false;
  /** The configuration last logged, as described. */
  private membershipDescribed = '';
  private readonly maxRaftStateBytes: number;
  private readonly requestTimeoutMs: number;
  private readonly readMode: 'read-index' | 'log';

  private node: RaftNode<KvResult> | null = null;
  private storage: TimedStorage | null = null;
  private transport: CountingTransport | null = null;
  private http: KvHttpServer | null = null;
  private boundHttpPort = -1;
  private stopping: Promise<void> | null = null;
  /** stop() has handed leadership over and is closing the HTTP listener: requests answer 503 stopped. */
  private closing = false;

  private readonly metrics = new KvMetrics();
  private readonly authGuard: HttpAuthGuard;
  /** The dashboard's live feed (GET /v1/events); set with the HTTP API. */
  private feed: DashboardFeed | null = null;
  /** The changes this node applies, for watches (GET /v1/watch); fed by the replica. */
  private readonly watchHub: WatchHub;
  /** Over HTTPS with peer TLS, how the feed reaches the peers' APIs: trusting the peer CA (`tsraft start --tls` signs both with it). */
  private peerApi: ClusterHttp | null = null;
  /** Reads served (every readLocal) and the time linearizable ones waited for confirmation, for the dashboard. */
  private readsServed = 0;
  private readSeconds = 0;
  /** The last applied entries, newest last, at most LOG_TAIL_MAX (the dashboard's log tail). */
  /**
   * The last LOG_TAIL_MAX applied entries, as they are: the dashboard's view of them is decoded only
   * when a dashboard asks (decoding every applied command cost about 5 % of a write's CPU).
   */
  private readonly entryTail: Entry[] = [];

  private constructor(options: KvServerOptions, starting: StartingConfiguration, logger: Logger) {
    this.options = options;
    this.starting = starting;
    this.id = options.id;
    this.logger = logger;
    this.log = (line) => logger.info(line);
    for (const p of [...starting.peers, ...starting.learners]) this.rememberAddress(p.id, p);
    this.maxRaftStateBytes = options.maxRaftStateBytes ?? DEFAULT_MAX_RAFT_STATE_BYTES;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.readMode = options.readMode ?? 'read-index';
    this.watchHub = new WatchHub(options.watchHistoryEvents === undefined ? {} : { historyEvents: options.watchHistoryEvents });
    this.replica = new KvReplica({
      maxRaftStateBytes: this.maxRaftStateBytes,
      defer: queueMicrotask,
      log: this.log,
      watchHub: this.watchHub,
      revokeTimeoutMs: this.requestTimeoutMs,
      // Encoded straight into a file in the data directory, which FileStorage adopts as the snapshot file.
      snapshotFile: (index) => this.storage?.inner.snapshotAssembly({ index, term: 0, byteLength: 0 }) ?? null,
    });
    this.authGuard = new HttpAuthGuard(options.auth === undefined ? null : authPolicy(options.auth), options.httpTls?.clientCa !== undefined, this.log);
  }

  /**
   * Puts another auth file in force for the requests that arrive from now on (`tsraft node` on
   * SIGHUP). Throws ConfigError naming `source` and the field, with the old file kept, when `file`
   * is not valid.
   */
  setAuth(file: AuthFile, source = 'auth'): void {
    this.authGuard.setPolicy(authPolicy(validateAuthFile(file, source)));
    // Open streams were authorized under the old policy: end them; their clients reconnect and are
    // checked against the new one (a watch resumes where it was).
    this.feed?.endStreams();
    this.watchHub.endAll({ code: 'closed', message: 'the authorization changed; reconnect (and resume) to be checked anew' });
  }

  /**
   * Checks the data directory's cluster identity, opens it, starts Raft and the HTTP listener.
   * Rejects with ConfigError on bad options, ClusterIdentityError if the data directory belongs to
   * another cluster id, member id or member-id set (or its identity file is damaged).
   */
  static async start(options: KvServerOptions): Promise<KvServer> {
    KvServer.validate(options);
    const id = options.id;
    const logger = options.logger ?? (options.log === undefined ? createLogger({ node: id }) : loggerFromLines(options.log));
    const starting = await startingConfiguration(options, (line) => logger.info(line));
    checkOwnHttpScheme(options.id, [...starting.peers, ...starting.learners], options.httpTls !== undefined);
    const server = new KvServer(options, starting, logger);
    await server.startRaft();
    try {
      await server.startHttp();
    } catch (error) {
      server.feed?.close();
      await server.node?.stop().catch(() => undefined);
      throw error;
    }
    return server;
  }

  private static validate(options: KvServerOptions): void {
    const problems: string[] = [];
    const isInt = (v: unknown, min: number, max: number): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
    if (!isInt(options.id, 0, Number.MAX_SAFE_INTEGER)) problems.push(`id must be a non-negative integer, got ${String(options.id)}`);
    const peers = options.peers ?? [];
    const learners = options.learners ?? [];
    if (!Array.isArray(peers)) problems.push('peers must be an array');
    if (!Array.isArray(learners)) problems.push('learners must be an array');
    if (Array.isArray(peers) && Array.isArray(learners)) {
      problems.push(...memberProblems(peers, learners));
      if (peers.length === 0 && learners.length > 0) problems.push('learners were given without peers: give the voters of the starting configuration as peers');
      if (peers.length > 0 && ![...peers, ...learners].some((p) => p.id === options.id)) {
        problems.push(`peers or learners must include this member (id ${String(options.id)})`);
      }
    }
    if (typeof options.dataDir !== 'string' || options.dataDir === '') problems.push('dataDir must be a non-empty string');
    if (options.httpListen !== undefined && !isInt(options.httpListen.port, 0, 65535)) {
      problems.push(`httpListen.port must be 0..65535, got ${String(options.httpListen.port)}`);
    }
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
    problems.push(...validateHttpLimits(options.http));
    if (options.auth !== undefined) problems.push(...authFileProblems(options.auth).map((p) => `auth: ${p}`));
    if (options.peerTls !== undefined) {
      const t = options.peerTls as unknown as Partial<Record<string, unknown>> | null;
      if (t === null || typeof t !== 'object') problems.push('peerTls must be an object { ca, cert, key } of PEM strings');
      else {
        for (const field of ['ca', 'cert', 'key']) {
          const v = t[field];
          if (typeof v !== 'string' || !v.includes('-----BEGIN ')) problems.push(`peerTls.${field} must be a PEM string`);
        }
      }
    }
    problems.push(...httpTlsProblems(options.httpTls));
    if (problems.length > 0) throw new ConfigError(problems);
  }

  private async startRaft(): Promise<void> {
    const options = this.options;
    const { peers, learners } = this.starting;
    const self = [...peers, ...learners].find((p) => p.id === options.id)!;
    // First: a peer certificate for another node or cluster (or PEM that does not parse, a key
    // that does not match) is a configuration error, found before the data directory is touched.
    const tcp = KvServer.createTransport(() => ({
      clusterId: options.clusterId ?? 'tsraft',
      nodeId: options.id,
      listen: options.raftListen ?? { host: self.raftHost, port: self.raftPort },
      // Told in every hello, so a member that does not know us yet (its log ends before we
      // joined) can still answer us; the listen address may be a wildcard.
      advertise: { host: self.raftHost, port: self.raftPort },
      // The starting configuration's members; onMembershipChange sets the peers the log names.
      peers: [...peers, ...learners].filter((p) => p.id !== options.id).map((p) => ({ id: p.id, host: p.raftHost, port: p.raftPort })),
      logger: this.logger.child({ component: 'transport' }),
      ...(options.peerTls === undefined ? {} : { tls: { ca: options.peerTls.ca, cert: options.peerTls.cert, key: options.peerTls.key } }),
      ...(options.devFaults === true ? { devFaults: true } : {}),
    }));
    await ensureClusterIdentity(
      options.dataDir,
      {
        clusterId: options.clusterId ?? 'tsraft',
        nodeId: options.id,
        members: peers.map((p) => ({ id: p.id, address: formatMemberAddress(p) })),
        learners: learners.map((p) => ({ id: p.id, address: formatMemberAddress(p) })),
      },
      { fsync: options.fsync ?? true, log: (line) => this.log(`storage: ${line}`) },
    );
    const storage = new TimedStorage(new FileStorage({ dir: options.dataDir, fsync: options.fsync ?? true, log: (line) => this.log(`storage: ${line}`) }), this.metrics.fsyncDuration);
    const transport = new CountingTransport(tcp);
    try {
      this.node = await RaftNode.start({
        id: options.id,
        peers: peers.map((p) => p.id),
        learners: learners.map((p) => p.id),
        memberAddresses: [...peers, ...learners].map((p) => ({ id: p.id, address: formatMemberAddress(p) })),
        onMembershipChange: (membership, addresses) => this.membershipChanged(transport, membership, addresses),
        storage: options.wrapStorage === undefined ? storage : options.wrapStorage(storage),
        transport,
        stateMachine: this.withEntryTail(this.replica.stateMachine),
        addresses: this.urls,
        proposeTimeoutMs: this.requestTimeoutMs,
        proposalsInFlightMax: PROPOSALS_IN_FLIGHT_MAX,
        // stop() hands leadership over itself, before it closes the HTTP API (see handOver).
        transferLeadershipOnStop: false,
        logger: this.logger.child({ component: 'raft' }),
        ...(options.timing === undefined ? {} : { timing: options.timing }),
        onFatal: (error) => {
          this.logger.error(`raft node stopped on a fatal error: ${describeError(error)}`);
          options.onFatal?.(error);
        },
      });
      this.replica.attach(this.node);
    } catch (error) {
      // RaftNode.start does not release what it opened when a later step (e.g. listen) fails.
      await transport.close().catch(() => undefined);
      await storage.close().catch(() => undefined);
      throw error;
    }
    this.storage = storage;
    this.transport = transport;
  }

  /** Creates the TCP transport; with peer TLS, a problem with its certificates becomes a ConfigError. */
  private static createTransport(transportOptions: () => TcpTransportOptions): TcpTransport {
    const withTls = transportOptions();
    if (withTls.tls === undefined) return new TcpTransport(withTls);
    try {
      return new TcpTransport(withTls);
    } catch (error) {
      // The same options without TLS: if they fail too, the problem is not the certificates.
      const { tls: _tls, ...plain } = withTls;
      new TcpTransport(plain);
      const why = error instanceof Error ? error.message : String(error);
      // The identity check says what it wants; OpenSSL's errors (bad PEM, a key of another certificate) need a hint.
      const hint = why.startsWith('tls.cert must name') ? '' : ' (ca, cert and key must be PEM, and key the private key of cert)';
      throw new ConfigError([`peerTls: ${why}${hint}`]);
    }
  }

  /**
   * RaftNode's onMembershipChange (at start, then on every change of the configuration in effect,
   * synchronously from its loop): the transport's peers and the URL map become every member a
   * known configuration names. An address that does not parse is logged and that member left out
   * (the HTTP API refuses such addresses, so only a hand-made configuration can hold one).
   */
  private membershipChanged(transport: CountingTransport, membership: Membership, addresses: ReadonlyMap<NodeId, string>): void {
    try {
      if (this.membershipReported) this.metrics.countMembershipChange();
      this.membershipReported = true;
      this.urls.clear();
      this.addresses.clear();
      const peers: PeerAddress[] = [];
      for (const [id, address] of addresses) {
        let parsed;
        try {
          parsed = parseMemberAddress(address, `the address of member ${id}`);
        } catch (error) {
          if (!(error instanceof MemberAddressError)) throw error;
          this.log(`membership: member ${id} cannot be reached: ${error.message}`);
          continue;
        }
        this.rememberAddress(id, parsed);
        if (id !== this.id) peers.push({ id, host: parsed.raftHost, port: parsed.raftPort });
      }
      transport.setPeers(peers);
      // The same voters and learners again (the starting configuration, then the log's first
      // entry saying the same) are not news to the operator.
      const described = describeMembership(membership);
      if (described !== this.membershipDescribed) this.log(`membership: ${described}`);
      this.membershipDescribed = described;
    } catch (error) {
      // Never into the RaftNode's loop: the node keeps its old peers, which the log line says.
      this.log(`membership: could not apply the configuration ${describeMembership(membership)}: ${describeError(error)}`);
    }
  }

  private rememberAddress(id: NodeId, member: { raftHost: string; raftPort: number; httpUrl: string }): void {
    const http = member.httpUrl.replace(/\/+$/, '');
    this.urls.set(id, http);
    this.addresses.set(id, { raft: formatHostPort(member.raftHost, member.raftPort), http });
  }

  /** The state machine, with each applied entry also kept in the dashboard's bounded log tail. */
  private withEntryTail(inner: StateMachine<KvResult>): StateMachine<KvResult> {
    return {
      ...inner,
      apply: (entry) => {
        this.entryTail.push(entry);
        if (this.entryTail.length > LOG_TAIL_MAX) this.entryTail.shift();
        return inner.apply(entry);
      },
    };
  }

  /** Starts the HTTP API, after Raft: every request it serves may use the RaftNode. */
  private async startHttp(): Promise<void> {
    if (this.options.httpTls !== undefined && this.options.peerTls !== undefined) this.peerApi = clusterHttp({ tls: { ca: this.options.peerTls.ca } });
    const feed = new DashboardFeed({
      ...(this.peerApi === null ? {} : { fetch: this.peerApi.fetch }),
      nodeId: this.id,
      devControlsUrl: this.options.devControlsUrl ?? null,
      status: () => this.status(),
      memberUrls: () => this.urls,
      traffic: () => {
        const writes = this.metrics.proposalDuration.totals();
        return { writes: writes.count, writeSeconds: writes.sum, reads: this.readsServed, readSeconds: this.readSeconds };
      },
      recentEntries: () => this.entryTail.map(entryView),
    });
    this.feed = feed;
    const http = await startHttpApi(
      {
        readMode: this.readMode,
        readLocal: (key) => {
          this.readsServed++;
          return this.replica.readLocal(key);
        },
        rangeLocal: (query) => {
          this.readsServed++;
          return this.replica.rangeLocal(query);
        },
        countLocal: (bounds) => {
          this.readsServed++;
          return this.replica.countLocal(bounds);
        },
        // The RaftNode's promise itself, no async wrapper: the state machine is read in the tick the
        // confirmation arrives (the timing hangs off the same promise, after the caller's handler).
        confirmRead: () => {
          const started = performance.now();
          const confirmed = this.replica.confirmRead(this.requestTimeoutMs);
          confirmed.then(
            () => (this.readSeconds += (performance.now() - started) / 1000),
            () => undefined,
          );
          return confirmed;
        },
        commit: (command) => this.commit(command),
        leaseKeepAlive: (id) => this.replica.leaseKeepAlive(id, this.requestTimeoutMs),
        leaseInfo: (id, withKeys) => this.replica.leaseInfo(id, withKeys, this.requestTimeoutMs),
        leaseList: () => this.replica.leaseList(this.requestTimeoutMs),
        leaderUrl: (id) => this.urls.get(id),
        leadership: () => {
          const s = this.node!.raftStatus(false);
          return { isLeader: s.role === 'leader', leaderId: s.leaderId >= 0 && s.leaderId !== this.id ? s.leaderId : undefined };
        },
        nodeId: this.id,
        // The voters now: the only possible targets of a leadership transfer.
        voterIds: () => this.node!.membership().voters,
        transferLeadership: (to) => this.transferLeadership(to),
        members: () => this.members(),
        backup: () => this.backup(),
        changeMembership: (step) => this.changeMembership(step),
        authorize: (req, method, rawPath) => this.authGuard.authorize(req, method, rawPath),
        isStopping: () => this.closing,
        isNodeStopped: () => this.node!.isStopped,
        status: () => this.status(),
        metricsText: () => this.metricsText(),
        countResponse: (status) => this.metrics.countResponse(status),
        openEvents: (res, authorization) => feed.open(res, authorization),
        watchHub: this.watchHub,
        ...(this.options.devFaults === true ? { devFaults: this.transport!.inner } : {}),
        log: (line) => this.log(line),
      },
      this.options.httpListen ?? this.ownHttpListen(),
      this.options.http,
      this.options.httpTls,
    );
    this.boundHttpPort = (http.address() as { port: number }).port;
    this.http = http;
  }

  /** Where the HTTP API listens by default: the host and port of this member's own HTTP URL (as it started). */
  private ownHttpListen(): { host: string; port: number } {
    const self = [...this.starting.peers, ...this.starting.learners].find((p) => p.id === this.id)!;
    const url = new URL(self.httpUrl);
    // URL.hostname keeps an IPv6 address's brackets; listen() wants it bare.
    return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port) };
  }

  /** The HTTP API's connections, buffered body bytes and refusals (also in /metrics). */
  get httpStats(): HttpStats | undefined {
    return this.http?.httpStats;
  }

  /** The port the HTTP API listens on. */
  get httpPort(): number {
    return this.boundHttpPort;
  }

  /**
   * Stops the member. Idempotent. A leader first hands leadership over (at most a maximum election
   * timeout) while the HTTP API still answers: writes that arrive meanwhile are refused with 503
   * leader-transfer (never proposed, safe to retry), and once the new leader is known they are
   * redirected to it. Then the HTTP listener closes: requests already in (headers read, a body still
   * arriving) are answered for up to HTTP_DRAIN_GRACE_MS (a write is refused or redirected, since
   * this node no longer leads), new ones on open connections get 503 stopped, then every connection
   * closes, then the RaftNode.
   * `handOver: false` skips the handover, when every member is stopping at once.
   */
  stop(options: { readonly handOver?: boolean } = {}): Promise<void> {
    this.stopping ??= (async () => {
      if (options.handOver ?? true) await this.handOver();
      this.closing = true;
      // Event streams never finish by themselves: ended here, so they do not hold the drain.
      this.feed?.close();
      this.watchHub.close();
      await this.peerApi?.close().catch(() => undefined);
      const http = this.http;
      if (http !== null) await http.drain(HTTP_DRAIN_GRACE_MS);
      await this.node?.stop();
    })();
    return this.stopping;
  }

  /** Hands leadership over before stopping, if this node leads; bounded, and never throws. */
  private async handOver(): Promise<void> {
    const node = this.node;
    if (node === null || !node.membership().voters.some((id) => id !== this.id)) return;
    const s = node.status();
    if (s.stopped || s.role !== 'leader') return;
    const timeoutMs = this.options.timing?.electionTimeoutMaxMs ?? 2_000;
    try {
      const moved = await this.transferLeadership(undefined, timeoutMs);
      this.log(`stopping: handed leadership to node ${moved.leaderId} (term ${moved.term})`);
    } catch (error) {
      // An expected outcome (no follower reachable, leadership lost meanwhile): its message, not a stack.
      this.log(`stopping: could not hand leadership over within ${timeoutMs} ms (${error instanceof RaftError ? error.message : describeError(error)}); stopping anyway`);
    }
  }

  /**
   * Hands leadership to `to` (default: the most up-to-date follower); resolves once the new leader
   * is known (at once when `to` is this node and it leads). See RaftNode.transferLeadership.
   */
  private async transferLeadership(to: number | undefined, timeoutMs?: number): Promise<{ leaderId: number; previousLeaderId: number; term: number }> {
    const node = this.node!;
    const before = node.status();
    if (to === this.id && before.role === 'leader' && !before.stopped) return { leaderId: this.id, previousLeaderId: this.id, term: before.term };
    const started = node.transferLeadership(to, timeoutMs === undefined ? {} : { timeoutMs });
    // Rejected at once (not the leader, a bad target): nothing was attempted, nothing to count.
    const attempted = before.role === 'leader' && !before.stopped && (to === undefined || (to !== this.id && this.urls.has(to)));
    try {
      const leaderId = await started;
      this.metrics.countTransfer('moved');
      const term = node.status().term;
      this.log(`leadership handed from node ${this.id} to node ${leaderId} (term ${term})`);
      return { leaderId, previousLeaderId: this.id, term };
    } catch (error) {
      if (attempted) this.metrics.countTransfer(error instanceof RaftError && error.code === 'TSRAFT_TRANSFER_TIMEOUT' ? 'timeout' : 'failed');
      throw error;
    }
  }

  /** This member's Raft and KV status (GET /v1/status). */
  status(): KvServerStatus {
    const node = this.node!;
    const s = node.status();
    const stats = this.replica.sm.stats;
    return {
      id: s.id,
      clusterId: this.options.clusterId ?? 'tsraft',
      role: s.role,
      term: s.term,
      leaderId: s.leaderId ?? null,
      leaderUrl: s.leaderId === undefined ? null : (this.urls.get(s.leaderId) ?? null),
      commitIndex: s.commitIndex,
      // The KV state machine's, which is what reads serve: Raft counts an incoming snapshot as
      // applied as soon as it accepts it, a little before the state machine is restored from it.
      appliedIndex: this.replica.appliedIndex,
      lastIndex: s.lastIndex,
      snapshotIndex: s.snapshotIndex,
      peers: s.peers.map((p) => ({ id: p.id, url: this.urls.get(p.id) ?? null, match: p.match, next: p.next, state: p.state })),
      keys: stats.keys,
      bytes: stats.bytes,
      sessions: stats.sessions,
      leases: stats.leases,
      revision: this.replica.sm.revision,
      snapshotsTaken: this.replica.snapshotsTaken,
      stopped: s.stopped || this.closing,
      transferTarget: s.transferTarget ?? null,
      quorumLost: s.quorumLost,
      membership: { voters: s.membership.voters, outgoing: s.membership.outgoing, learners: s.membership.learners, index: s.membershipIndex },
    };
  }

  // ------------------------------------------------------------------ membership

  /** The configuration in effect on this node (GET /v1/members); on the leader with every member's match. */
  /** A backup of the whole store (GET /v1/snapshot; backup.ts says what it holds). */
  private async backup(): Promise<BackupSource> {
    await this.replica.confirmRead(this.requestTimeoutMs);
    // Synchronously after the confirmation: the state as of at least the confirmed index.
    const status = this.node!.raftStatus(false);
    return {
      clusterId: this.options.clusterId ?? 'tsraft',
      takenFrom: this.id,
      index: this.replica.appliedIndex,
      term: status.term,
      voters: status.membership.voters,
      learners: status.membership.learners,
      data: this.replica.sm.snapshot(),
    };
  }

  private members(): MembersView {
    const s = this.node!.status();
    const m = s.membership;
    const isLeader = s.role === 'leader' && !s.stopped;
    const match = new Map(s.peers.map((p) => [p.id, p.match]));
    const view = (id: NodeId): MemberView => {
      // The configuration's own address first; a member it names without one may be known from an older one.
      const address = addressOf(m, id);
      let known = this.addresses.get(id) ?? null;
      if (address !== undefined) {
        try {
          const parsed = parseMemberAddress(address);
          known = { raft: formatHostPort(parsed.raftHost, parsed.raftPort), http: parsed.httpUrl };
        } catch {
          // Logged when the configuration took effect; the entry then shows what else is known.
        }
      }
      const entry = { id, raft: known?.raft ?? null, http: known?.http ?? null };
      return isLeader ? { ...entry, match: id === this.id ? s.lastIndex : (match.get(id) ?? 0) } : entry;
    };
    return {
      leader: isLeader ? this.id : (s.leaderId ?? null),
      membershipIndex: s.membershipIndex,
      committed: s.membershipIndex <= s.commitIndex,
      joint: m.outgoing.length > 0,
      voters: m.voters.map(view),
      outgoing: m.outgoing.map(view),
      learners: m.learners.map(view),
    };
  }

  /**
   * Makes one membership change on this leader and resolves once it is complete, with the index
   * of the entry that completed it; rejects with RaftNode.changeMembership's errors.
   */
  private async changeMembership(step: MembershipStep): Promise<{ index: number }> {
    const what = step.type === 'remove' ? `remove node ${step.id}` : step.type === 'promote' ? `promote node ${step.id}` : `${step.type} node ${step.id}`;
    const changed = await this.node!.changeMembership([step], { timeoutMs: this.requestTimeoutMs });
    this.log(`membership change done (${what}) at index ${changed.completedAt}: ${describeMembership(changed.membership)}`);
    return { index: changed.completedAt };
  }

  // ------------------------------------------------------------------ state machine glue

  /** Proposes an encoded command; resolves once it is applied here, with its result. */
  private async commit(command: Uint8Array): Promise<{ index: number; result: KvResult }> {
    const started = performance.now();
    const committed = await this.replica.commit(command, this.requestTimeoutMs);
    this.metrics.proposalDuration.observe((performance.now() - started) / 1000);
    return committed;
  }

  private metricsText(): string {
    return this.metrics.render({
      raft: this.node!.status(),
      appliedIndex: this.replica.appliedIndex,
      kv: this.replica.sm.stats,
      snapshotsTaken: this.replica.snapshotsTaken,
      leasesExpired: this.replica.leases.expiredRevokes,
      transport: this.transport!,
      storage: this.storage!,
    }) + this.authGuard.renderMetrics();
  }
}
