/**
 * `tsraft node`: one cluster member in this process (a KvServer: Raft over TCP, the KV state
 * machine, the HTTP API), until SIGTERM or SIGINT. `tsraft start` runs its nodes with this command.
 *
 * How it finds its cluster:
 * - `--peers`: every member of the cluster it creates (or was created with, on a restart).
 * - `--join <url of any member>` (a data directory without a cluster identity): it asks that member
 *   (redirected to the leader) to add it as a learner, starts with the configuration the answer
 *   gives (voters as peers, learners, itself included), and, unless `--learner`, promotes itself to
 *   voter once it has caught up. Its own addresses come from --listen/--http (or --advertise).
 * - neither, on a data directory with a cluster identity: it restarts from what the identity file
 *   recorded; its membership comes from its log. A data directory with an identity also ignores
 *   --join (it restarts; a learner that has not been promoted yet still promotes itself).
 */
import { Command } from 'commander';
import * as net from 'node:net';
import { VALUE_BYTES_MAX } from '../kv/commands.js';
import { DEFAULT_HTTP_HEADERS_TIMEOUT_MS, DEFAULT_HTTP_MAX_CONNECTIONS, DEFAULT_HTTP_RECEIVE_TIMEOUT_MS, validateHttpLimits, type HttpLimits } from '../kv/http-api.js';
import { KvServer, type HttpTlsOptions, type KvPeer, type PeerTlsOptions } from '../kv/server.js';
import {
  ClusterIdentityError,
  describeClusterIdentity,
  holdsRaftData,
  learnerIds,
  memberIds,
  readClusterIdentity,
  type StoredClusterIdentity,
} from '../storage/cluster-identity.js';
import { FailingStorage, fsyncFailpointFor } from '../storage/failpoint.js';
import { StorageError, type Storage } from '../storage/storage.js';
import {
  CliError,
  EXIT,
  PEERS_SYNTAX,
  UsageError,
  errorMessage,
  parseBytes,
  parseHostPort,
  parseHttpUrl,
  parseIntOption,
  parseNodeId,
  parsePeers,
  type HostPort,
  type PeerSpec,
} from './common.js';
import { readNodeAuthFile, reloadAuthOnSighup } from './node-auth.js';
import { readClientSecurity, readPemFile, withClientSecurityOptions, type ClientSecurityOptions } from './client-security.js';
import { describeStatusMembership, joinCluster, promoteSelf, statusMembership } from './join.js';
import { nodeLoggers, parseLogFormat, parseLogLevel } from './node-logging.js';
import type { LogFormat, LogLevel } from '../runtime/logger.js';

export interface NodeOptions extends ClientSecurityOptions {
  id?: string;
  peers?: string;
  join?: string;
  learner?: boolean;
  advertise?: string;
  joinTimeout?: string;
  promoteTimeout?: string;
  dataDir?: string;
  listen?: string;
  http?: string;
  clusterId: string;
  maxRaftState?: string;
  fsync: boolean;
  heartbeatMs?: string;
  electionTimeoutMs?: string;
  readMode?: string;
  httpMaxConnections?: string;
  httpBodyBudget?: string;
  httpHeadersTimeoutMs?: string;
  httpReceiveTimeoutMs?: string;
  peerCa?: string;
  peerCert?: string;
  peerKey?: string;
  insecurePeers?: boolean;
  httpCert?: string;
  httpKey?: string;
  httpClientCa?: string;
  authFile?: string;
  devControlsUrl?: string;
  devFaults?: boolean;
  quiet?: boolean;
  logFormat?: string;
  logLevel?: string;
}

/** The files of --http-cert, --http-key and --http-client-ca (PEM). */
export interface HttpTlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly clientCa?: string;
}

/** The files of --peer-ca, --peer-cert and --peer-key (PEM). */
export interface PeerTlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** `tsraft node --join`: how this node joins a running cluster. */
export interface JoinConfig {
  /** The member asked to add this node (any member: a follower redirects to the leader). */
  readonly url: string;
  /** This node as the other members will reach it. */
  readonly self: PeerSpec;
  /** How long to keep trying to be added (the cluster unreachable, no leader, another change under way). */
  readonly timeoutMs: number;
  /** Whether --cluster-id was given (else the cluster's own id is used, when its API tells it). */
  readonly clusterIdGiven: boolean;
}

export interface NodeConfig {
  readonly id: number;
  /**
   * The starting configuration's voters (--peers). Empty on a restart from the data directory's
   * cluster identity (no --peers) and before a join (the answer to it gives them).
   */
  readonly peers: readonly PeerSpec[];
  /** Set: join the cluster through this member first (the data directory has no identity). */
  readonly join?: JoinConfig;
  /**
   * Whether a learner promotes itself to voter once it has caught up (after --join, or on a
   * restart with --join of a node that was not promoted yet): true unless --learner.
   */
  readonly promote: boolean;
  /** How long that promotion may take before the node gives up on it (and stays a learner). */
  readonly promoteTimeoutMs: number;
  /** A line to log at start (e.g. that --join was ignored). */
  readonly notice?: string;
  /** --join given on a data directory with an identity: a member to ask if this node still has to promote itself. */
  readonly rejoinUrl?: string;
  readonly dataDir: string;
  readonly listen: HostPort;
  readonly http: HostPort;
  /** --dev-controls-url: where `tsraft start` serves the dashboard's controls (a loopback URL). */
  readonly devControlsUrl?: string;
  /** --dev-faults: the transport's fault switch and /v1/dev/faults are on (`tsraft start` only). */
  readonly devFaults?: boolean;
  readonly clusterId: string;
  readonly maxRaftStateBytes?: number;
  readonly fsync: boolean;
  readonly timing?: { heartbeatMs?: number; electionTimeoutMinMs?: number; electionTimeoutMaxMs?: number };
  readonly readMode?: string;
  /** HTTP resource bounds; unset fields keep the KvServer defaults. */
  readonly httpLimits: HttpLimits;
  /** Mutual TLS between members: the PEM files to read (--peer-ca, --peer-cert, --peer-key); absent: plaintext. */
  readonly peerTls?: PeerTlsFiles;
  /** --insecure-peers: plaintext peer connections on a non-loopback raft address are accepted knowingly. */
  readonly insecurePeers: boolean;
  /** HTTPS for the HTTP API: the PEM files to read (--http-cert, --http-key, --http-client-ca); absent: plain HTTP. */
  readonly httpTls?: HttpTlsFiles;
  /** How this node reaches other members' HTTP APIs (--join, its own promotion): --ca, --cert, --key, --token. */
  readonly client: ClientSecurityOptions;
  /** --auth-file: who may use the HTTP API (read at start and on SIGHUP); absent: everyone may do everything. */
  readonly authFile?: string;
  readonly quiet: boolean;
  /** --log-format (pretty or json) and --log-level (debug, info, warn, error). */
  readonly logFormat: LogFormat;
  readonly logLevel: LogLevel;
}

/** How to make peer certificates (`tsraft certs`), for the refusal and warning messages. */
const CERTS_HOWTO =
  'make a CA once with `tsraft certs init --dir ./certs` and a certificate per node with `tsraft certs node --dir ./certs --id <n> --host <its address>`, ' +
  'then start each node with --peer-ca ./certs/ca.crt --peer-cert ./certs/node-<n>.crt --peer-key ./certs/node-<n>.key';

/** Whether a listen host is a loopback address (127.0.0.0/8, ::1, localhost): only this machine can connect. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h === 'localhost.') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) {
    const loopback = new net.BlockList();
    loopback.addAddress('::1', 'ipv6');
    loopback.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');
    return loopback.check(h, 'ipv6');
  }
  return false;
}

/**
 * Whether this node may speak plaintext to its peers: on a loopback raft address, or with peer
 * TLS, yes; on any other address only with --insecure-peers (then the answer is a warning line to
 * print); otherwise a UsageError that says how to make certificates.
 */
export function checkPeerSecurity(config: Pick<NodeConfig, 'listen' | 'peerTls' | 'insecurePeers'>): string | undefined {
  if (config.peerTls !== undefined || isLoopbackHost(config.listen.host)) return undefined;
  const where = `${config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host}:${config.listen.port}`;
  if (config.insecurePeers) {
    return `warning: --insecure-peers: raft listens on ${where} without TLS: anyone who can reach it can take part in the cluster (vote, replicate, overwrite data)`;
  }
  throw new UsageError(
    `refusing to listen for raft peers on ${where} (not a loopback address) without TLS: anyone who can reach it could join the cluster's consensus. ` +
      `Either use mutual TLS between the nodes: ${CERTS_HOWTO}; ` +
      'or, on a network you trust completely, pass --insecure-peers (plaintext, unauthenticated peer connections).',
  );
}

/** Reads the PEM files of --peer-ca, --peer-cert and --peer-key; a missing or unreadable one is a CliError (exit 2). */
export async function readPeerTls(files: PeerTlsFiles): Promise<PeerTlsOptions> {
  return { ca: readPemFile('--peer-ca', files.ca), cert: readPemFile('--peer-cert', files.cert), key: readPemFile('--peer-key', files.key) };
}

/** Reads the PEM files of --http-cert, --http-key and --http-client-ca; a missing or unreadable one is a CliError (exit 2). */
export function readHttpTls(files: HttpTlsFiles): HttpTlsOptions {
  return {
    cert: readPemFile('--http-cert', files.cert),
    key: readPemFile('--http-key', files.key),
    ...(files.clientCa === undefined ? {} : { clientCa: readPemFile('--http-client-ca', files.clientCa) }),
  };
}

/** The warning for an HTTP API on a non-loopback address without HTTPS (undefined: none needed). */
export function httpSecurityWarning(config: Pick<NodeConfig, 'http' | 'httpTls'>): string | undefined {
  if (config.httpTls !== undefined || isLoopbackHost(config.http.host)) return undefined;
  return (
    `warning: the HTTP API listens on ${config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${config.http.port} without HTTPS: ` +
    'requests, values and tokens cross the network in clear text (give --http-cert and --http-key)'
  );
}

/** Default --join-timeout: how long a joining node keeps trying to be added. */
export const DEFAULT_JOIN_TIMEOUT_MS = 30_000;
/** Default --promote-timeout: how long a joined learner tries to become a voter (catching up included). */
export const DEFAULT_PROMOTE_TIMEOUT_MS = 600_000;

/** `host:port` of an http:// base URL. */
function urlHostPort(httpUrl: string): HostPort {
  const url = new URL(httpUrl);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port) };
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);

/** A recorded member address `HOST:PORT/HTTP-URL` as a PeerSpec, or undefined if it does not parse. */
function recordedAddress(id: number, address: string | undefined): PeerSpec | undefined {
  if (address === undefined) return undefined;
  try {
    const [peer] = parsePeers(`${id}=${address}`, 'recorded address');
    return peer;
  } catch {
    return undefined;
  }
}

/** What the data directory holds: its cluster identity (null: none), and whether it holds Raft data. */
export interface DataDirState {
  readonly identity: StoredClusterIdentity | null;
  readonly holdsData: boolean;
}

/** Reads a data directory's cluster identity; a damaged identity file is a CliError (exit 4). */
export async function inspectDataDir(dataDir: string): Promise<DataDirState> {
  try {
    const identity = await readClusterIdentity(dataDir);
    return { identity, holdsData: identity === null ? await holdsRaftData(dataDir) : true };
  } catch (error) {
    if (error instanceof ClusterIdentityError) throw new CliError(`node failed to start: ${error.message}`, EXIT.damaged);
    throw new CliError(`cannot read the data directory ${dataDir}: ${errorMessage(error)}`, EXIT.failed);
  }
}

/**
 * Validates the options of `tsraft node` against what the data directory holds (`inspectDataDir`);
 * throws UsageError. `clusterIdGiven`: whether --cluster-id was on the command line.
 */
export function parseNodeOptions(options: NodeOptions, dir: DataDirState = { identity: null, holdsData: false }, clusterIdGiven = true): NodeConfig {
  if (options.dataDir === undefined || options.dataDir.trim() === '') throw new UsageError('missing --data-dir <dir> (where this node keeps its log and snapshots)');
  if (options.peers !== undefined && options.join !== undefined) {
    throw new UsageError(
      '--peers and --join exclude each other: --peers lists the members of the cluster this node creates (or was created with), ' +
        '--join <url> adds this node to a running cluster through any of its members',
    );
  }
  const identity = dir.identity;
  if (options.id === undefined && identity === null) {
    throw new UsageError(options.join !== undefined ? "missing --id <n> (this node's id: one no member of the cluster uses)" : "missing --id <n> (this node's id, one of the ids in --peers)");
  }
  const id = options.id === undefined ? identity!.nodeId : parseNodeId(options.id, '--id');
  const promote = options.learner !== true;
  const promoteTimeoutMs = options.promoteTimeout === undefined ? DEFAULT_PROMOTE_TIMEOUT_MS : parseIntOption(options.promoteTimeout, '--promote-timeout', 1, 86_400_000);
  let peers: PeerSpec[] = [];
  let self: PeerSpec | undefined;
  let join: JoinConfig | undefined;
  let notice: string | undefined;
  let rejoin: string | undefined;
  let advertise: PeerSpec | undefined;
  if (options.advertise !== undefined) {
    if (options.peers !== undefined) throw new UsageError("--advertise is for --join: with --peers, this node's addresses are its entry in --peers");
    [advertise] = parsePeers(`${id}=${options.advertise}`, '--advertise');
  }
  if (options.peers !== undefined) {
    peers = parsePeers(options.peers);
    self = peers.find((p) => p.id === id);
    if (self === undefined) throw new UsageError(`--peers: this node's id ${id} is not in the peer list (ids: ${peers.map((p) => p.id).join(', ')})`);
  } else if (identity !== null) {
    // A restart from the data directory's identity (--join, if given, no longer applies).
    self = advertise ?? recordedAddress(id, [...identity.members, ...identity.learners].find((m) => m.id === id)?.address);
    const recorded = `${options.dataDir} already belongs to cluster ${JSON.stringify(identity.clusterId)} as node ${identity.nodeId}`;
    notice = options.join !== undefined ? `--join ignored: ${recorded}; restarting from it` : `no --peers: ${recorded}; restarting from it`;
    if (options.join !== undefined) rejoin = parseHttpUrl(options.join, '--join');
  } else if (options.join !== undefined) {
    if (dir.holdsData) {
      throw new UsageError(
        `--join: ${options.dataDir} holds Raft data but no cluster identity (written by an older tsraft): a joining node starts empty. ` +
          'Use a new --data-dir, or start this data with the --peers it was created with.',
      );
    }
    const url = parseHttpUrl(options.join, '--join');
    const listen = options.listen === undefined ? undefined : parseHostPort(options.listen, '--listen');
    const http = options.http === undefined ? undefined : parseHostPort(options.http, '--http');
    if (advertise === undefined) {
      if (listen === undefined || http === undefined) {
        throw new UsageError(
          `--join needs this node's own addresses: --listen HOST:PORT (raft) and --http HOST:PORT (HTTP API), e.g. --listen 127.0.0.1:7003 --http 127.0.0.1:8003 ` +
            '(or --advertise HOST:PORT/HTTP-URL, the addresses the other members reach it at)',
        );
      }
      for (const [flag, address] of [['--listen', listen], ['--http', http]] as const) {
        if (WILDCARD_HOSTS.has(address.host)) {
          throw new UsageError(`--join: ${flag} ${address.host}:${address.port} listens on every interface; say where the other members reach this node with --advertise HOST:PORT/HTTP-URL`);
        }
      }
      const hostText = http.host.includes(':') ? `[${http.host}]` : http.host;
      const scheme = options.httpCert !== undefined ? 'https' : 'http';
      advertise = { id, raftHost: listen.host, raftPort: listen.port, httpUrl: `${scheme}://${hostText}:${http.port}` };
    }
    self = advertise;
    if (url === advertise.httpUrl) throw new UsageError(`--join ${url} is this node's own HTTP URL: give the URL of a member of the running cluster`);
    const timeoutMs = options.joinTimeout === undefined ? DEFAULT_JOIN_TIMEOUT_MS : parseIntOption(options.joinTimeout, '--join-timeout', 1, 3_600_000);
    join = { url, self: advertise, timeoutMs, clusterIdGiven };
  } else {
    throw new UsageError(
      `missing --peers <list> or --join <url>: ${options.dataDir} holds no cluster identity to restart from. ` +
        `--peers lists the members of a new cluster (${PEERS_SYNTAX}); --join <url of any member> adds this node to a running cluster.`,
    );
  }
  let listen: HostPort;
  if (options.listen !== undefined) listen = parseHostPort(options.listen, '--listen');
  else if (self !== undefined) listen = { host: self.raftHost, port: self.raftPort };
  else throw new UsageError(`missing --listen <host:port>: ${options.dataDir} records no raft address for node ${id}`);
  let http: HostPort;
  if (options.http !== undefined) http = parseHostPort(options.http, '--http', join === undefined);
  else if (self !== undefined) http = urlHostPort(self.httpUrl);
  else throw new UsageError(`missing --http <host:port>: ${options.dataDir} records no HTTP address for node ${id}`);
  if (listen.port === http.port && (listen.host === http.host || listen.host === '0.0.0.0' || http.host === '0.0.0.0')) {
    throw new UsageError(`--listen and --http use the same port ${http.port}`);
  }
  // A restart from the identity (no --peers) runs the recorded cluster unless --cluster-id says otherwise.
  const clusterId = options.peers === undefined && identity !== null && !clusterIdGiven ? identity.clusterId : options.clusterId.trim();
  if (clusterId === '' || Buffer.byteLength(clusterId) > 255) throw new UsageError('--cluster-id must be 1..255 bytes');
  const timing: { heartbeatMs?: number; electionTimeoutMinMs?: number; electionTimeoutMaxMs?: number } = {};
  if (options.heartbeatMs !== undefined) timing.heartbeatMs = parseIntOption(options.heartbeatMs, '--heartbeat-ms', 1, 60_000);
  if (options.electionTimeoutMs !== undefined) {
    const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(options.electionTimeoutMs);
    if (m === null) throw new UsageError(`--election-timeout-ms: expected MIN-MAX in milliseconds (e.g. 300-600), got ${JSON.stringify(options.electionTimeoutMs)}`);
    const min = parseIntOption(m[1]!, '--election-timeout-ms (min)', 1, 600_000);
    const max = parseIntOption(m[2]!, '--election-timeout-ms (max)', 1, 600_000);
    if (max <= min) throw new UsageError(`--election-timeout-ms: max (${max}) must be greater than min (${min})`);
    timing.electionTimeoutMinMs = min;
    timing.electionTimeoutMaxMs = max;
  }
  const hb = timing.heartbeatMs ?? 100;
  if (timing.electionTimeoutMinMs !== undefined && timing.electionTimeoutMinMs <= hb) {
    throw new UsageError(`--election-timeout-ms: the minimum (${timing.electionTimeoutMinMs}) must exceed the heartbeat interval (${hb} ms)`);
  }
  let readMode: string | undefined;
  if (options.readMode !== undefined) {
    if (!['read-index', 'log'].includes(options.readMode)) throw new UsageError(`--read-mode must be read-index or log, got ${JSON.stringify(options.readMode)}`);
    readMode = options.readMode;
  }
  const httpLimits: { -readonly [K in keyof HttpLimits]: HttpLimits[K] } = {};
  if (options.httpMaxConnections !== undefined) httpLimits.maxConnections = parseIntOption(options.httpMaxConnections, '--http-max-connections', 1, 1_000_000);
  if (options.httpBodyBudget !== undefined) {
    httpLimits.bodyBudgetBytes = parseBytes(options.httpBodyBudget, '--http-body-budget');
    if (httpLimits.bodyBudgetBytes < VALUE_BYTES_MAX) throw new UsageError(`--http-body-budget must be at least ${VALUE_BYTES_MAX} bytes (1m, the largest value), got ${options.httpBodyBudget}`);
  }
  if (options.httpHeadersTimeoutMs !== undefined) httpLimits.headersTimeoutMs = parseIntOption(options.httpHeadersTimeoutMs, '--http-headers-timeout-ms', 1, 2 ** 31 - 1);
  if (options.httpReceiveTimeoutMs !== undefined) httpLimits.receiveTimeoutMs = parseIntOption(options.httpReceiveTimeoutMs, '--http-receive-timeout-ms', 1, 2 ** 31 - 1);
  const [httpProblem] = validateHttpLimits(httpLimits);
  if (httpProblem !== undefined) {
    throw new UsageError(httpProblem.replace('http.headersTimeoutMs', '--http-headers-timeout-ms').replace('http.receiveTimeoutMs', '--http-receive-timeout-ms'));
  }
  const tlsFlags = [
    ['--peer-ca', options.peerCa],
    ['--peer-cert', options.peerCert],
    ['--peer-key', options.peerKey],
  ] as const;
  const given = tlsFlags.filter(([, v]) => v !== undefined);
  if (given.length > 0 && given.length < 3) {
    throw new UsageError(
      `${given.map(([f]) => f).join(' and ')} given without ${tlsFlags.filter(([, v]) => v === undefined).map(([f]) => f).join(' and ')}: ` +
        'peer TLS needs all three (the CA that signed every node certificate, this node\'s certificate and its key)',
    );
  }
  for (const [flag, value] of given) if (value!.trim() === '') throw new UsageError(`${flag} must name a file`);
  if (given.length === 3 && options.insecurePeers === true) throw new UsageError('--insecure-peers and --peer-ca/--peer-cert/--peer-key exclude each other');
  const peerTls = given.length === 3 ? { ca: options.peerCa!, cert: options.peerCert!, key: options.peerKey! } : undefined;
  const httpTls = parseHttpTlsFlags(options);
  if (self !== undefined) checkOwnUrlScheme(self.httpUrl, httpTls !== undefined, options.peers !== undefined ? '--peers' : join !== undefined ? '--advertise' : `the address recorded in ${options.dataDir}`);
  return {
    id,
    peers,
    ...(join === undefined ? {} : { join }),
    promote,
    promoteTimeoutMs,
    ...(notice === undefined ? {} : { notice }),
    ...(rejoin === undefined ? {} : { rejoinUrl: rejoin }),
    dataDir: options.dataDir,
    listen,
    http,
    clusterId,
    ...(options.maxRaftState === undefined ? {} : { maxRaftStateBytes: parseBytes(options.maxRaftState, '--max-raft-state') }),
    fsync: options.fsync,
    ...(Object.keys(timing).length === 0 ? {} : { timing }),
    ...(readMode === undefined ? {} : { readMode }),
    httpLimits,
    ...(peerTls === undefined ? {} : { peerTls }),
    insecurePeers: options.insecurePeers === true,
    ...(httpTls === undefined ? {} : { httpTls }),
    client: { ...pick(options, 'ca'), ...pick(options, 'cert'), ...pick(options, 'key'), ...pick(options, 'token') },
    ...(options.authFile === undefined ? {} : { authFile: parseAuthFileFlag(options.authFile) }),
    ...(options.devControlsUrl === undefined ? {} : { devControlsUrl: parseDevControlsUrl(options.devControlsUrl) }),
    ...(options.devFaults === true ? { devFaults: true } : {}),
    quiet: options.quiet === true,
    logFormat: parseLogFormat(options.logFormat),
    logLevel: parseLogLevel(options.logLevel),
  };
}

/** --dev-controls-url: an http:// URL on the loopback interface (the controls are a local development aid only). */
function parseDevControlsUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--dev-controls-url must be a URL, got "${text.slice(0, 100)}"`);
  }
  if (url.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) || url.pathname !== '/' || url.search !== '') {
    throw new UsageError(`--dev-controls-url must be http://127.0.0.1:PORT (loopback only), got "${text.slice(0, 100)}"`);
  }
  return url.origin;
}

/** --auth-file: a file name (read when the node starts). */
function parseAuthFileFlag(text: string): string {
  if (text.trim() === '') throw new UsageError('--auth-file must name a file');
  return text;
}

function pick<K extends keyof ClientSecurityOptions>(options: ClientSecurityOptions, key: K): ClientSecurityOptions {
  return options[key] === undefined ? {} : { [key]: options[key] };
}

/** --http-cert and --http-key (both or neither), --http-client-ca (only with them). */
function parseHttpTlsFlags(options: NodeOptions): HttpTlsFiles | undefined {
  const { httpCert: cert, httpKey: key, httpClientCa: clientCa } = options;
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError(`${cert === undefined ? '--http-key' : '--http-cert'} given without ${cert === undefined ? '--http-cert' : '--http-key'}: HTTPS needs this node's certificate and its key`);
  }
  if (clientCa !== undefined && cert === undefined) throw new UsageError('--http-client-ca needs --http-cert and --http-key: client certificates are only asked for over HTTPS');
  if (cert === undefined || key === undefined) return undefined;
  for (const [flag, value] of [['--http-cert', cert], ['--http-key', key], ['--http-client-ca', clientCa]] as const) {
    if (value !== undefined && value.trim() === '') throw new UsageError(`${flag} must name a file`);
  }
  return { cert, key, ...(clientCa === undefined ? {} : { clientCa }) };
}

/** This node's own HTTP URL must say the scheme it serves: https:// with --http-cert, http:// without. */
function checkOwnUrlScheme(url: string, https: boolean, where: string): void {
  if (url.startsWith('https://') === https) return;
  throw new UsageError(
    https
      ? `--http-cert makes this node serve HTTPS, but its own HTTP URL in ${where} is ${url}: give it as https://... so that clients and the other members reach it over TLS`
      : `this node's own HTTP URL in ${where} is ${url}, but it serves plain HTTP: give --http-cert and --http-key, or an http:// URL`,
  );
}

/**
 * The refusal of a data directory whose cluster identity does not match the flags (exit code 2:
 * the command line is what must change, so `tsraft start` does not restart it), or whose identity
 * file is damaged (exit code 4, like a corrupt write-ahead log: an operator must look).
 */
function identityRefusal(config: NodeConfig, error: ClusterIdentityError): CliError {
  if (error.code !== 'TSRAFT_IDENTITY_MISMATCH' || error.onDisk === null || error.requested === null) {
    return new CliError(`node ${config.id} failed to start: ${error.message}`, EXIT.damaged);
  }
  const disk = error.onDisk;
  const flags: string[] = [];
  if (disk.clusterId !== error.requested.clusterId) flags.push(`--cluster-id ${disk.clusterId}`);
  if (disk.nodeId !== error.requested.nodeId) flags.push(`--id ${disk.nodeId}`);
  const diskIds = memberIds(disk);
  const askedIds = memberIds(error.requested);
  const diskLearners = learnerIds(disk);
  if (diskIds.join(',') !== askedIds.join(',') || diskLearners.join(',') !== learnerIds(error.requested).join(',')) {
    const all = [...disk.members, ...disk.learners];
    const recorded = all.every((m) => m.address !== undefined) ? ` (as recorded: ${disk.members.map((m) => `${m.id}=${m.address}`).join(',')})` : '';
    flags.push(
      diskLearners.length > 0
        ? `no --peers (it joined as a learner: it restarts from the recorded identity, voters ${diskIds.join(', ')}, learners ${diskLearners.join(', ')})`
        : `--peers listing exactly members ${diskIds.join(', ')}${recorded} (or no --peers at all: the node then restarts from the recorded identity)`,
    );
  }
  return new CliError(
    `node ${config.id} refused to start: its data directory ${config.dataDir} belongs to another cluster configuration.\n` +
      `  on disk (${error.file}): ${describeClusterIdentity(disk)}\n` +
      `  the flags (--cluster-id, --id, --peers): ${describeClusterIdentity(error.requested)}\n` +
      `  differs: ${error.differences.join('; ')}\n` +
      `Start it with ${flags.join(' and ')} to run the cluster this data belongs to, or use a new --data-dir for a new cluster. ` +
      'Membership changes go through `tsraft member ...` and `tsraft node --join`, not through --peers. Nothing was changed on disk.',
    EXIT.usage,
  );
}

/** Runs a node until SIGTERM/SIGINT (or, when forked by `tsraft start`, until its parent goes away). */
export async function runNode(config: NodeConfig): Promise<number> {
  const loggers = nodeLoggers(config);
  const log = (line: string): void => loggers.main.info(line);
  // A parent that goes away closes our pipes: never die of EPIPE on a log line.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);

  let server: KvServer;
  let failAfter: number | null;
  try {
    failAfter = fsyncFailpointFor(process.env['TSRAFT_FAILPOINT'], config.id);
  } catch (error) {
    throw new CliError(errorMessage(error), EXIT.usage);
  }
  const peerWarning = checkPeerSecurity(config);
  const peerTls = config.peerTls === undefined ? undefined : await readPeerTls(config.peerTls);
  const httpTls = config.httpTls === undefined ? undefined : readHttpTls(config.httpTls);
  // Only a node that joins (or promotes itself) is a client of the others: the files are read then,
  // so that a stray TSRAFT_CA in the environment of `tsraft start` cannot stop an ordinary node.
  const clientSecurity = config.join !== undefined || config.rejoinUrl !== undefined ? readClientSecurity(config.client) : {};
  const auth = config.authFile === undefined ? undefined : await readNodeAuthFile(config.authFile);
  if (peerWarning !== undefined) loggers.alert.warn(peerWarning);
  const httpWarning = httpSecurityWarning(config);
  if (httpWarning !== undefined) loggers.alert.warn(httpWarning);
  if (config.notice !== undefined) log(config.notice);
  let peers: readonly PeerSpec[] = config.peers;
  let learners: readonly PeerSpec[] = [];
  let clusterId = config.clusterId;
  if (config.join !== undefined) ({ voters: peers, learners, clusterId } = await joinCluster(config, config.join, log, clientSecurity));
  const toKvPeer = (p: PeerSpec): KvPeer => ({ id: p.id, raftHost: p.raftHost, raftPort: p.raftPort, httpUrl: p.httpUrl });
  // Set once the node is up; a fatal error before that is kept and handled then.
  let fatal: ((error: Error) => void) | null = null;
  let earlyFatal: Error | null = null;
  try {
    server = await KvServer.start({
      onFatal: (error) => {
        if (fatal === null) earlyFatal = error;
        else fatal(error);
      },
      ...(failAfter === null ? {} : { wrapStorage: (storage: Storage) => new FailingStorage(storage, failAfter) }),
      id: config.id,
      // No peers: a restart from the data directory's cluster identity.
      ...(peers.length === 0 ? {} : { peers: peers.map(toKvPeer) }),
      ...(learners.length === 0 ? {} : { learners: learners.map(toKvPeer) }),
      dataDir: config.dataDir,
      clusterId,
      httpListen: config.http,
      raftListen: config.listen,
      fsync: config.fsync,
      ...(config.maxRaftStateBytes === undefined ? {} : { maxRaftStateBytes: config.maxRaftStateBytes }),
      ...(config.timing === undefined ? {} : { timing: config.timing }),
      ...(config.readMode === undefined ? {} : { readMode: config.readMode as 'read-index' }),
      http: config.httpLimits,
      ...(peerTls === undefined ? {} : { peerTls }),
      ...(httpTls === undefined ? {} : { httpTls }),
      ...(auth === undefined ? {} : { auth }),
      ...(config.devControlsUrl === undefined ? {} : { devControlsUrl: config.devControlsUrl }),
      ...(config.devFaults === true ? { devFaults: true } : {}),
      logger: loggers.main,
    });
  } catch (error) {
    const joined =
      config.join === undefined
        ? ''
        : ` (it is a learner of the cluster now: fix the problem and run the same command again, which restarts it from ${config.dataDir} or joins again; ` +
          `or take it out with \`tsraft member remove ${config.id} --endpoints ${config.join.url}\`)`;
    if (error instanceof ClusterIdentityError) throw identityRefusal(config, error);
    // A damaged data directory fails the same way on every restart: say so, and let a supervisor
    // that understands exit codes (tsraft start) leave it to an operator.
    if (error instanceof StorageError && error.code === 'TSRAFT_STORAGE_CORRUPT') {
      throw new CliError(`node ${config.id} failed to start: its data directory is damaged: ${errorMessage(error)}`, EXIT.damaged);
    }
    throw new CliError(`node ${config.id} failed to start: ${errorMessage(error)}${joined}`, EXIT.failed);
  }
  const scheme = httpTls === undefined ? 'http' : 'https';
  const membership = statusMembership(server.status());
  const members = membership === undefined ? `${peers.length + learners.length} members` : describeStatusMembership(membership);
  log(
    `node ${config.id} up: raft ${config.listen.host}:${config.listen.port}, http ${scheme}://${config.http.host}:${server.httpPort}, ` +
      `data ${config.dataDir}, ${members}, fsync ${config.fsync ? 'on' : 'off'}, pid ${process.pid}`,
  );
  // A learner that joined (now, or before a restart with --join) makes itself a voter once caught up.
  const promotion = new AbortController();
  const isLearner = membership !== undefined ? membership.learners.includes(config.id) : learners.some((l) => l.id === config.id);
  if (config.promote && isLearner && (config.join !== undefined || config.rejoinUrl !== undefined)) {
    const ownUrl = `${scheme}://${WILDCARD_HOSTS.has(config.http.host) ? '127.0.0.1' : config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${server.httpPort}`;
    const endpoints = [...new Set([config.join?.url ?? config.rejoinUrl!, ...peers.map((p) => p.httpUrl), ...(membership?.urls ?? []), ownUrl])];
    void promoteSelf(config, endpoints, log, promotion.signal, clientSecurity);
  } else if (isLearner && !config.promote) {
    log(`node ${config.id} is a learner (--learner): it receives the log but does not vote; make it a voter with \`tsraft member promote ${config.id}\``);
  }

  const supervised = typeof process.send === 'function';
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string, handOver = true): void => {
      if (stopping) return;
      stopping = true;
      promotion.abort();
      log(`node ${config.id} stopping (${why})`);
      const force = setTimeout(() => {
        log(`node ${config.id}: stop took over 10 s, exiting anyway`);
        resolve(EXIT.failed);
      }, 10_000);
      force.unref();
      server.stop({ handOver }).then(
        () => {
          clearTimeout(force);
          log(`node ${config.id} stopped`);
          resolve(EXIT.ok);
        },
        (error: unknown) => {
          clearTimeout(force);
          log(`node ${config.id}: error while stopping: ${errorMessage(error)}`);
          resolve(EXIT.failed);
        },
      );
    };
    // Fail fast, never a zombie: a node whose Raft stopped exits non-zero, so that `tsraft start`
    // (or systemd) restarts it from its data directory.
    fatal = (error) => {
      log(`node ${config.id}: raft stopped on a fatal error (${errorMessage(error)}); exiting so that it is restarted`);
      if (stopping) return;
      stopping = true;
      promotion.abort();
      const force = setTimeout(() => resolve(EXIT.failed), 5_000);
      force.unref();
      server.stop().finally(() => {
        clearTimeout(force);
        resolve(EXIT.failed);
      });
    };
    if (earlyFatal !== null) fatal(earlyFatal);
    process.on('SIGTERM', () => stop('SIGTERM'));
    if (config.authFile !== undefined) reloadAuthOnSighup(server, config.authFile, log);
    // Under `tsraft start` a Ctrl-C reaches the whole process group: the parent stops us with
    // SIGTERM in its own time, so the terminal's SIGINT is ignored here.
    process.on('SIGINT', () => (supervised ? undefined : stop('SIGINT')));
    if (supervised) process.on('disconnect', () => stop('parent went away'));
    // `tsraft start` stopping the whole cluster: every member goes, so handing leadership to one of
    // them would only wait for a successor that never comes.
    if (supervised) {
      process.on('message', (message: unknown) => {
        if (typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'stop-cluster') stop('the cluster is stopping', false);
      });
    }
  });
}

export function nodeCommand(): Command {
  return withClientSecurityOptions(new Command('node'))
    .description('run one cluster member (Raft over TCP + the KV HTTP API) in this process until SIGTERM or SIGINT')
    .option('--id <n>', "this node's id (one of the ids in --peers; with --join, one no member uses; on a restart, default: the recorded one)")
    .option('--peers <list>', 'every member of a new cluster, this one included: ID=HOST:PORT/HTTP-URL entries separated by commas')
    .option('--join <url>', 'join a running cluster through any of its members (its HTTP URL): added as a learner, promoted to voter once caught up')
    .option('--learner', 'with --join: stay a learner (receives the log, never votes) until `tsraft member promote ID`')
    .option('--advertise <address>', "with --join: this node's addresses as the other members reach it, HOST:PORT/HTTP-URL (default: --listen and --http)")
    .option('--join-timeout <ms>', `with --join: how long to keep trying to be added (default ${DEFAULT_JOIN_TIMEOUT_MS})`)
    .option('--promote-timeout <ms>', `with --join: how long to keep trying to become a voter, catching up included, before staying a learner (default ${DEFAULT_PROMOTE_TIMEOUT_MS})`)
    .option('--data-dir <dir>', "this node's data directory (created if missing; locked while the node runs; its first start records the cluster id, --id and the starting members, and later starts must match)")
    .option('--listen <host:port>', "where to accept raft connections (default: this node's raft address in --peers, --advertise or the data directory's identity)")
    .option('--http <host:port>', "where to serve the HTTP API (default: this node's HTTP URL in --peers, --advertise or the data directory's identity)")
    .option('--cluster-id <id>', 'cluster name; nodes of different clusters refuse each other (a restart without --peers: the recorded one)', 'tsraft')
    .option('--max-raft-state <bytes>', 'snapshot once the raft log since the last snapshot exceeds this many bytes, or a quarter of that snapshot if more (e.g. 1048576 or 64m)')
    .option('--no-fsync', 'do not fsync writes (faster; a machine crash can lose acknowledged writes)')
    .option('--heartbeat-ms <ms>', 'leader heartbeat interval (default 100)')
    .option('--election-timeout-ms <min-max>', 'election timeout range in milliseconds (default 1000-2000)')
    .option('--read-mode <mode>', 'how linearizable reads are served: read-index or log')
    .option('--http-max-connections <n>', `HTTP connections open at once (default ${DEFAULT_HTTP_MAX_CONNECTIONS}; at most half of the open-file limit)`)
    .option('--http-body-budget <bytes>', 'bytes buffered for unfinished request bodies across all requests, past it 503 (default 64m)')
    .option('--http-headers-timeout-ms <ms>', `request line and headers must arrive within this, else 408 (default ${DEFAULT_HTTP_HEADERS_TIMEOUT_MS})`)
    .option('--http-receive-timeout-ms <ms>', `the whole request must arrive within this, else 408 (default ${DEFAULT_HTTP_RECEIVE_TIMEOUT_MS})`)
    .option('--peer-ca <file>', 'mutual TLS between members: the CA (PEM) that signed every node certificate (with --peer-cert and --peer-key)')
    .option('--peer-cert <file>', "mutual TLS between members: this node's certificate (PEM), naming this node of this cluster (`tsraft certs node`)")
    .option('--peer-key <file>', "mutual TLS between members: this node's private key (PEM)")
    .option('--insecure-peers', 'allow plaintext, unauthenticated raft connections on a non-loopback --listen address (a network you trust completely)')
    .option('--http-cert <file>', "serve the HTTP API over HTTPS with this certificate (PEM, with --http-key); this node's HTTP URL is then https://")
    .option('--http-key <file>', "the HTTPS certificate's private key (PEM)")
    .option('--http-client-ca <file>', 'over HTTPS, ask clients for a certificate signed by this CA (PEM); what it allows is for authorization to decide')
    .option('--auth-file <file>', 'who may use the HTTP API: bearer tokens and their roles (`tsraft tokens add`); re-read on SIGHUP')
    .option('--dev-controls-url <url>', 'set by `tsraft start`: where its dashboard controls are served (loopback only); the dashboard at /ui shows them')
    .option('--dev-faults', 'set by `tsraft start`: enable the transport\'s fault switch (POST /v1/dev/faults drops messages to and from given peers); never for a real deployment')
    .option('-q, --quiet', 'print no log lines')
    .option('--log-format <format>', 'log lines as pretty (one readable line each, the default) or json (one object per line)')
    .option('--log-level <level>', 'the least level logged: debug, info (default), warn or error')
    .addHelpText(
      'after',
      `
Peer list format (--peers): ${PEERS_SYNTAX}
  Each entry is the node id, "=", its raft address HOST:PORT, "/", and its HTTP base URL.
  Ids are non-negative integers, unique; this node's --id must be one of them.

Joining a running cluster (--join, for an empty data directory): the node asks the member at
--join (redirected to the leader) to add it as a learner with its --listen and --http addresses
(or --advertise, when it listens on 0.0.0.0), starts with the configuration it gets back, and
promotes itself to voter once it has caught up (unless --learner). --cluster-id defaults to the
cluster's own when its API reports it. A node added earlier with \`tsraft member add\` joins the same way.

Peer security: raft connections between members are plaintext unless --peer-ca, --peer-cert and
--peer-key are given (mutual TLS 1.3: each member proves it is the node it claims to be with a
certificate signed by the CA). Make them with \`tsraft certs init\` (the CA) and \`tsraft certs node\`
(one per node). Plaintext is allowed on a loopback --listen address (127.0.0.1, ::1, localhost);
on any other address the node refuses to start without TLS unless --insecure-peers is given.
The HTTP API is not affected by these flags.

HTTPS: --http-cert and --http-key serve the HTTP API over TLS (1.2 or later); this node's HTTP URL
(in --peers, --advertise, or derived from --http with --join) must then be https://. A node
certificate from \`tsraft certs node\` serves (it names 127.0.0.1 and localhost unless --host says
otherwise). --http-client-ca asks clients for a certificate of that CA (\`tsraft certs client\`);
an HTTP API on a non-loopback address without HTTPS gets a warning. --ca, --cert, --key and
--token (env TSRAFT_CA, TSRAFT_CERT, TSRAFT_KEY, TSRAFT_TOKEN) are how this node reaches the
others' HTTP APIs for --join and its own promotion, as for the client commands.

Authentication: with --auth-file (bearer tokens and their roles, made with \`tsraft tokens add\`)
or --http-client-ca (a verified client certificate's CN and roles), every request but /healthz
and /readyz needs a principal with the role its endpoint needs (read, write, admin): 401 or 403
otherwise. SIGHUP re-reads --auth-file (a bad file is logged and the old one stays in force).

Restarting: a data directory that has a cluster identity restarts without --peers (its members
come from its log); --join is then ignored (a learner not yet promoted still promotes itself).

Cluster identity: the first start records the cluster id, --id and the starting members in
<data-dir>/cluster-identity.json. A later start with another cluster id, id or set of members
(--peers) is refused (exit code 2) and changes nothing; addresses may change freely.

Examples:
  node 1 of a 3-node cluster on this machine:
    tsraft node --id 1 --data-dir ./data/node-1 \\
      --peers 0=127.0.0.1:7000/http://127.0.0.1:8000,1=127.0.0.1:7001/http://127.0.0.1:8001,2=127.0.0.1:7002/http://127.0.0.1:8002
  a 4th node joining it:
    tsraft node --id 3 --join http://127.0.0.1:8000 --listen 127.0.0.1:7003 --http 127.0.0.1:8003 --data-dir ./data-3
  restarting it later: tsraft node --data-dir ./data-3

Exit codes: 0 stopped, 1 failure, 2 usage error or refused (a data directory of another cluster
configuration; --join refused: an id taken), 3 --join: the cluster unreachable or without a leader,
4 damaged data directory.`,
    )
    .action(async (options: NodeOptions, command: Command) => {
      // With --peers the server checks the data directory itself; without, what it holds decides how the node starts.
      const dir = options.peers !== undefined || options.dataDir === undefined || options.dataDir.trim() === '' ? undefined : await inspectDataDir(options.dataDir);
      const config = parseNodeOptions(options, dir, command.getOptionValueSource('clusterId') === 'cli');
      process.exitCode = await runNode(config);
      // The node is done: whatever handle a failed component left open must not keep a zombie alive.
      setTimeout(() => process.exit(), 2_000).unref();
    });
}
