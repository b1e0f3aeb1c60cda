/**
 * `tsraft node`: one cluster member in this process (a KvServer: Raft over TCP, the KV state
 * machine, the HTTP API), until SIGTERM or SIGINT. `tsraft start` runs its nodes with this command.
 */
import { Command } from 'commander';
import { VALUE_BYTES_MAX } from '../kv/commands.js';
import { DEFAULT_HTTP_HEADERS_TIMEOUT_MS, DEFAULT_HTTP_MAX_CONNECTIONS, DEFAULT_HTTP_RECEIVE_TIMEOUT_MS, validateHttpLimits, type HttpLimits } from '../kv/http-api.js';
import { KvServer } from '../kv/server.js';
import { ClusterIdentityError, describeClusterIdentity, memberIds } from '../storage/cluster-identity.js';
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
  parseIntOption,
  parseNodeId,
  parsePeers,
  type HostPort,
  type PeerSpec,
} from './common.js';

interface NodeOptions {
  id?: string;
  peers?: string;
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
  quiet?: boolean;
}

export interface NodeConfig {
  readonly id: number;
  readonly peers: readonly PeerSpec[];
  readonly dataDir: string;
  readonly listen: HostPort;
  readonly http: HostPort;
  readonly clusterId: string;
  readonly maxRaftStateBytes?: number;
  readonly fsync: boolean;
  readonly timing?: { heartbeatMs?: number; electionTimeoutMinMs?: number; electionTimeoutMaxMs?: number };
  readonly readMode?: string;
  /** HTTP resource bounds; unset fields keep the KvServer defaults. */
  readonly httpLimits: HttpLimits;
  readonly quiet: boolean;
}

/** Validates the options of `tsraft node`; throws UsageError. */
export function parseNodeOptions(options: NodeOptions): NodeConfig {
  if (options.id === undefined) throw new UsageError('missing --id <n> (this node\'s id, one of the ids in --peers)');
  if (options.peers === undefined) throw new UsageError(`missing --peers <list>: ${PEERS_SYNTAX}`);
  if (options.dataDir === undefined || options.dataDir.trim() === '') throw new UsageError('missing --data-dir <dir> (where this node keeps its log and snapshots)');
  const id = parseNodeId(options.id, '--id');
  const peers = parsePeers(options.peers);
  const self = peers.find((p) => p.id === id);
  if (self === undefined) throw new UsageError(`--peers: this node's id ${id} is not in the peer list (ids: ${peers.map((p) => p.id).join(', ')})`);
  const listen = options.listen === undefined ? { host: self.raftHost, port: self.raftPort } : parseHostPort(options.listen, '--listen');
  let http: HostPort;
  if (options.http === undefined) {
    const url = new URL(self.httpUrl);
    http = { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port) };
  } else {
    http = parseHostPort(options.http, '--http', true);
  }
  if (listen.port === http.port && (listen.host === http.host || listen.host === '0.0.0.0' || http.host === '0.0.0.0')) {
    throw new UsageError(`--listen and --http use the same port ${http.port}`);
  }
  const clusterId = options.clusterId.trim();
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
  return {
    id,
    peers,
    dataDir: options.dataDir,
    listen,
    http,
    clusterId,
    ...(options.maxRaftState === undefined ? {} : { maxRaftStateBytes: parseBytes(options.maxRaftState, '--max-raft-state') }),
    fsync: options.fsync,
    ...(Object.keys(timing).length === 0 ? {} : { timing }),
    ...(readMode === undefined ? {} : { readMode }),
    httpLimits,
    quiet: options.quiet === true,
  };
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
  if (diskIds.join(',') !== askedIds.join(',')) {
    const recorded = disk.members.every((m) => m.address !== undefined) ? ` (as recorded: ${disk.members.map((m) => `${m.id}=${m.address}`).join(',')})` : '';
    flags.push(`--peers listing exactly members ${diskIds.join(', ')}${recorded}`);
  }
  return new CliError(
    `node ${config.id} refused to start: its data directory ${config.dataDir} belongs to another cluster configuration.\n` +
      `  on disk (${error.file}): ${describeClusterIdentity(disk)}\n` +
      `  the flags (--cluster-id, --id, --peers): ${describeClusterIdentity(error.requested)}\n` +
      `  differs: ${error.differences.join('; ')}\n` +
      `Start it with ${flags.join(' and ')} to run the cluster this data belongs to, or use a new --data-dir for a new cluster. ` +
      'Membership changes will come through `tsraft member ...` (not available yet). Nothing was changed on disk.',
    EXIT.usage,
  );
}

function timestamp(): string {
  return new Date().toISOString().slice(11, 23);
}

/** Runs a node until SIGTERM/SIGINT (or, when forked by `tsraft start`, until its parent goes away). */
export async function runNode(config: NodeConfig): Promise<number> {
  const log = (line: string): void => {
    if (!config.quiet) process.stdout.write(`${timestamp()} ${line}\n`);
  };
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
      peers: config.peers.map((p) => ({ id: p.id, raftHost: p.raftHost, raftPort: p.raftPort, httpUrl: p.httpUrl })),
      dataDir: config.dataDir,
      clusterId: config.clusterId,
      httpListen: config.http,
      raftListen: config.listen,
      fsync: config.fsync,
      ...(config.maxRaftStateBytes === undefined ? {} : { maxRaftStateBytes: config.maxRaftStateBytes }),
      ...(config.timing === undefined ? {} : { timing: config.timing }),
      ...(config.readMode === undefined ? {} : { readMode: config.readMode as 'read-index' }),
      http: config.httpLimits,
      log,
    });
  } catch (error) {
    if (error instanceof ClusterIdentityError) throw identityRefusal(config, error);
    // A damaged data directory fails the same way on every restart: say so, and let a supervisor
    // that understands exit codes (tsraft start) leave it to an operator.
    if (error instanceof StorageError && error.code === 'TSRAFT_STORAGE_CORRUPT') {
      throw new CliError(`node ${config.id} failed to start: its data directory is damaged: ${errorMessage(error)}`, EXIT.damaged);
    }
    throw new CliError(`node ${config.id} failed to start: ${errorMessage(error)}`, EXIT.failed);
  }
  log(
    `node ${config.id} up: raft ${config.listen.host}:${config.listen.port}, http http://${config.http.host}:${server.httpPort}, ` +
      `data ${config.dataDir}, ${config.peers.length} members, fsync ${config.fsync ? 'on' : 'off'}, pid ${process.pid}`,
  );

  const supervised = typeof process.send === 'function';
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string, handOver = true): void => {
      if (stopping) return;
      stopping = true;
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
      const force = setTimeout(() => resolve(EXIT.failed), 5_000);
      force.unref();
      server.stop().finally(() => {
        clearTimeout(force);
        resolve(EXIT.failed);
      });
    };
    if (earlyFatal !== null) fatal(earlyFatal);
    process.on('SIGTERM', () => stop('SIGTERM'));
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
  return new Command('node')
    .description('run one cluster member (Raft over TCP + the KV HTTP API) in this process until SIGTERM or SIGINT')
    .option('--id <n>', "this node's id (one of the ids in --peers)")
    .option('--peers <list>', 'every member, this one included: ID=HOST:PORT/HTTP-URL entries separated by commas')
    .option('--data-dir <dir>', "this node's data directory (created if missing; locked while the node runs; its first start records --cluster-id, --id and the member ids, and later starts must match)")
    .option('--listen <host:port>', "where to accept raft connections (default: this node's raft address in --peers)")
    .option('--http <host:port>', "where to serve the HTTP API (default: this node's HTTP URL in --peers)")
    .option('--cluster-id <id>', 'cluster name; nodes of different clusters refuse each other', 'tsraft')
    .option('--max-raft-state <bytes>', 'snapshot once the raft log exceeds this many bytes (e.g. 1048576 or 64m)')
    .option('--no-fsync', 'do not fsync writes (faster; a machine crash can lose acknowledged writes)')
    .option('--heartbeat-ms <ms>', 'leader heartbeat interval (default 100)')
    .option('--election-timeout-ms <min-max>', 'election timeout range in milliseconds (default 1000-2000)')
    .option('--read-mode <mode>', 'how linearizable reads are served: read-index or log')
    .option('--http-max-connections <n>', `HTTP connections open at once (default ${DEFAULT_HTTP_MAX_CONNECTIONS}; at most half of the open-file limit)`)
    .option('--http-body-budget <bytes>', 'bytes buffered for unfinished request bodies across all requests, past it 503 (default 64m)')
    .option('--http-headers-timeout-ms <ms>', `request line and headers must arrive within this, else 408 (default ${DEFAULT_HTTP_HEADERS_TIMEOUT_MS})`)
    .option('--http-receive-timeout-ms <ms>', `the whole request must arrive within this, else 408 (default ${DEFAULT_HTTP_RECEIVE_TIMEOUT_MS})`)
    .option('-q, --quiet', 'print no log lines')
    .addHelpText(
      'after',
      `
Peer list format (--peers): ${PEERS_SYNTAX}
  Each entry is the node id, "=", its raft address HOST:PORT, "/", and its HTTP base URL.
  Ids are non-negative integers, unique; this node's --id must be one of them.

Cluster identity: the first start records --cluster-id, --id and the member ids of --peers in
<data-dir>/cluster-identity.json. A later start with another cluster id, id or set of member ids
is refused (exit code 2) and changes nothing; addresses may change freely.

Example (node 1 of a 3-node cluster on this machine):
  tsraft node --id 1 --data-dir ./data/node-1 \\
    --peers 0=127.0.0.1:7000/http://127.0.0.1:8000,1=127.0.0.1:7001/http://127.0.0.1:8001,2=127.0.0.1:7002/http://127.0.0.1:8002`,
    )
    .action(async (options: NodeOptions) => {
      const config = parseNodeOptions(options);
      process.exitCode = await runNode(config);
      // The node is done: whatever handle a failed component left open must not keep a zombie alive.
      setTimeout(() => process.exit(), 2_000).unref();
    });
}
