/**
 * `tsraft start`: a local cluster of `tsraft node` child processes on 127.0.0.1.
 *
 * - Node i listens for raft on base-port + i and for HTTP on http-base-port + i, and keeps its data
 *   in <data-dir>/node-<i>. The table of addresses (and each child's pid) is printed at start.
 * - Each child's output is copied line by line, prefixed `[node i]`.
 * - The leader is found by polling every node's /v1/status; its election (and every later change)
 *   is printed.
 * - SIGINT (Ctrl-C), SIGTERM and SIGHUP stop every child: a stop-cluster message over the IPC channel
 *   (the node stops without handing leadership to a member that is stopping too; SIGTERM if the
 *   channel is gone), then SIGKILL for any child
 *   still alive 5 s later (or at once on a second signal). The process exits 0 once all of them are
 *   gone. Each child also stops by itself if this process dies (its IPC channel closes).
 * - A child that dies on its own is restarted, at most 5 times within a minute per node; one that
 *   exits with code 2 (it refused its command line, e.g. a cluster-identity mismatch) or 4 (its
 *   data directory is damaged: restarting cannot help) is not.
 * - The watchdog (watchdog.ts) polls each child's /healthz (every --health-interval-ms, default
 *   1 s). A child that has answered once and then gives no 200 for --unhealthy-after-ms (default
 *   10 s), with at least one failed probe in that time, is killed with SIGKILL and restarted like
 *   one that died (same restart limit and backoff). A child that has not answered yet is given
 *   --health-grace-ms (default 20 s) on top, so a slow start is not mistaken for a hang. What the
 *   watchdog sees is printed: the first failure, a recovery, the kill. If this process itself
 *   was paused (its own timers late), the health clocks restart rather than kill every child.
 *   /healthz is liveness only: a node that merely has no leader (a partition, an election) is
 *   healthy and left alone (/readyz, which needs a leader, is not used here).
 * - Stopping a child (SIGTERM) that leads makes it hand leadership over first (KvServer.stop).
 * - Refuses to start if the data directory is in use by another running cluster or node, if a
 *   port is taken, or if a node directory's cluster identity (storage/cluster-identity.ts) does not
 *   match this command line (another --nodes or --cluster-id) or is damaged, or if directories of
 *   nodes beyond --nodes hold data (a larger cluster's): one message, nothing started
 *   (identity-check.ts).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve as resolvePath } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { clusterHttp, type ClusterHttp } from '../kv/client-http.js';
import { errorCode, LOCK_FILE, processAlive } from '../storage/fs-util.js';
import { CliError, DEFAULT_ENDPOINTS, EXIT, UsageError, errorMessage, formatPeers, formatTable, parseBytes, parseIntOption, parsePort, sleep, type PeerSpec } from './common.js';
import { checkIdentities } from './identity-check.js';
import { type SupervisedMember, SupervisorControls } from './start-cluster-controls.js';
import { type DevControls, startDevControls } from './start-controls.js';
import { cliInvocation, shellQuote } from './invocation.js';
import { ADMIN_TOKEN_FILE, AUTH_FILE, checkHttpScheme, devCertificateFiles, ensureDevAuth, ensureDevCertificates, TLS_DIR } from './start-security.js';
import { DEFAULT_HEALTH_GRACE_MS, DEFAULT_HEALTH_INTERVAL_MS, DEFAULT_UNHEALTHY_AFTER_MS, Watchdog, type WatchdogConfig, type WatchedChild } from './watchdog.js';
import { parseLogFormat } from './node-logging.js';
import { formatJson, type LogFormat } from '../runtime/logger.js';

export { DEFAULT_HEALTH_GRACE_MS, DEFAULT_HEALTH_INTERVAL_MS, DEFAULT_UNHEALTHY_AFTER_MS, type WatchdogConfig } from './watchdog.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const HOST = '127.0.0.1';

export { devCertificateFiles, ensureDevCertificates, TLS_DIR } from './start-security.js';
/** The cluster lock in the data directory: the pid of the `tsraft start` that owns it. */
export const CLUSTER_LOCK = 'tsraft-start.pid';
const STOP_GRACE_MS = 5000;
const RESTART_LIMIT = 5;
const RESTART_WINDOW_MS = 60_000;

interface StartOptions {
  nodes: string;
  dataDir: string;
  basePort: string;
  httpBasePort: string;
  fresh?: boolean;
  fsync: boolean;
  clusterId: string;
  maxRaftState?: string;
  watchdog: boolean;
  healthIntervalMs: string;
  unhealthyAfterMs: string;
  healthGraceMs: string;
  tls?: boolean;
  auth?: boolean;
  logFormat?: string;
}

export interface StartConfig {
  readonly nodes: number;
  readonly dataDir: string;
  readonly basePort: number;
  readonly httpBasePort: number;
  readonly fresh: boolean;
  readonly fsync: boolean;
  readonly clusterId: string;
  readonly maxRaftState?: string;
  /** How the watchdog judges a child (watchdog.ts); null when it is off. */
  readonly watchdog: WatchdogConfig | null;
  /** --tls: mutual TLS between the nodes and HTTPS for their HTTP APIs, with a dev CA and node certificates in <data-dir>/tls. */
  readonly tls?: boolean;
  /** --auth: the nodes require a token or client certificate (auth file and admin token in <data-dir>). */
  readonly auth?: boolean;
  /** --log-format, passed to every node (default pretty); json also makes start's own lines JSON. */
  readonly logFormat?: LogFormat;
}

export function parseStartOptions(options: StartOptions): StartConfig {
  const nodes = parseIntOption(options.nodes, '--nodes', 1, 99);
  const basePort = parsePort(options.basePort, '--base-port');
  const httpBasePort = parsePort(options.httpBasePort, '--http-base-port');
  if (basePort + nodes - 1 > 65535) throw new UsageError(`--base-port ${basePort} leaves no room for ${nodes} nodes (ports up to ${basePort + nodes - 1})`);
  if (httpBasePort + nodes - 1 > 65535) throw new UsageError(`--http-base-port ${httpBasePort} leaves no room for ${nodes} nodes`);
  if (basePort < httpBasePort + nodes && httpBasePort < basePort + nodes) {
    throw new UsageError(
      `raft ports ${basePort}-${basePort + nodes - 1} and HTTP ports ${httpBasePort}-${httpBasePort + nodes - 1} overlap; pick other --base-port / --http-base-port`,
    );
  }
  if (options.dataDir.trim() === '') throw new UsageError('--data-dir must not be empty');
  if (options.maxRaftState !== undefined) parseBytes(options.maxRaftState, '--max-raft-state');
  if (options.clusterId.trim() === '' || Buffer.byteLength(options.clusterId) > 255) throw new UsageError('--cluster-id must be 1..255 bytes');
  const intervalMs = parseIntOption(options.healthIntervalMs, '--health-interval-ms', 50, 60_000);
  const unhealthyAfterMs = parseIntOption(options.unhealthyAfterMs, '--unhealthy-after-ms', 100, 3_600_000);
  const graceMs = parseIntOption(options.healthGraceMs, '--health-grace-ms', 0, 3_600_000);
  if (unhealthyAfterMs < 2 * intervalMs) {
    throw new UsageError(`--unhealthy-after-ms (${unhealthyAfterMs}) must be at least twice --health-interval-ms (${intervalMs}), so that a child is probed more than once before it is judged`);
  }
  return {
    nodes,
    dataDir: options.dataDir,
    basePort,
    httpBasePort,
    fresh: options.fresh === true,
    fsync: options.fsync,
    clusterId: options.clusterId,
    ...(options.maxRaftState === undefined ? {} : { maxRaftState: options.maxRaftState }),
    watchdog: options.watchdog ? { intervalMs, unhealthyAfterMs, graceMs } : null,
    ...(options.tls === true ? { tls: true } : {}),
    ...(options.auth === true ? { auth: true } : {}),
    ...(options.logFormat === undefined ? {} : { logFormat: parseLogFormat(options.logFormat) }),
  };
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes <dataDir>/tsraft-start.pid, refusing if a live process holds it or a node dir's LOCK (the
 * FileStorage lock of src/storage/fs-util.ts, checked here without taking it).
 */
function lockDataDir(dataDir: string, nodes: number): string {
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (error) {
    throw new CliError(`cannot create the data directory ${dataDir}: ${errorMessage(error)}`, EXIT.failed);
  }
  const path = join(dataDir, CLUSTER_LOCK);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
    } catch (error) {
      if (errorCode(error) !== 'EEXIST') throw new CliError(`cannot lock the data directory ${dataDir}: ${errorMessage(error)}`, EXIT.failed);
      const owner = readPid(path);
      if (owner !== undefined && owner !== process.pid && processAlive(owner)) {
        throw new CliError(
          `the data directory ${dataDir} is locked by another running cluster (tsraft start, pid ${owner}). ` +
            'Stop it first (Ctrl-C in its terminal), or use another --data-dir.',
          EXIT.failed,
        );
      }
      try {
        unlinkSync(path); // stale: its owner is gone
      } catch {
        // someone else took it over meanwhile; try again
      }
      continue;
    }
    // Node directories locked by live processes (e.g. a `tsraft node` started by hand).
    for (let i = 0; i < nodes; i++) {
      const owner = readPid(join(dataDir, `node-${i}`, LOCK_FILE));
      if (owner !== undefined && processAlive(owner)) {
        unlinkSync(path);
        throw new CliError(
          `${join(dataDir, `node-${i}`)} is in use by process ${owner} (a running tsraft node). Stop it first, or use another --data-dir.`,
          EXIT.failed,
        );
      }
    }
    return path;
  }
  throw new CliError(`cannot lock the data directory ${dataDir}: other processes keep taking ${path}`, EXIT.failed);
}

function unlockDataDir(path: string): void {
  if (readPid(path) === process.pid) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
}

/** Resolves to null if `port` can be bound on 127.0.0.1, else to the error code (EADDRINUSE...). */
function probePort(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error) => resolve(errorCode(error) ?? errorMessage(error)));
    server.listen({ host: HOST, port, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

interface Member extends SupervisedMember {
  readonly dir: string;
  child: ChildProcess | null;
  pid: number | undefined;
  /** Times (ms) of the automatic restarts in the last minute. */
  restarts: number[];
  gaveUp: boolean;
  /** It exited with code 2 (refused its command line) or 4 (damaged data): not restarted. */
  refused: boolean;
  exited: Promise<void>;
  watched: WatchedChild | null;
}

class Supervisor {
  private readonly members: Member[];
  private readonly startedAt = performance.now();
  private shuttingDown = false;
  private leaderId: number | undefined;
  private leaderTerm = -1;
  private finish: ((code: number) => void) | null = null;
  /** Kills and restarts children that stop answering /healthz (null: --no-watchdog). */
  private readonly watchdog: Watchdog | null;
  /** How this process reaches the nodes' HTTP APIs (--tls: trusting the dev CA). */
  private readonly http: ClusterHttp;
  /** The dashboard's controls (start-controls.ts), passed to every node as --dev-controls-url. */
  devControls: DevControls | null = null;
  /** What the dashboard's controls do (start-cluster-controls.ts). */
  readonly controls: SupervisorControls;
  readonly done: Promise<number>;

  constructor(
    private readonly config: StartConfig,
    private readonly peerList: string,
    peers: readonly PeerSpec[],
    /** --auth: the admin token this process polls /v1/status with. */
    adminToken?: string,
  ) {
    this.members = peers.map((spec) => ({
      spec,
      dir: join(config.dataDir, `node-${spec.id}`),
      child: null,
      pid: undefined,
      restarts: [],
      gaveUp: false,
      refused: false,
      exited: Promise.resolve(),
      held: false,
      paused: false,
      watched: null,
    }));
    this.http = clusterHttp({
      ...(config.tls === true ? { tls: { ca: readFileSync(devCertificateFiles(join(config.dataDir, TLS_DIR), 0).ca) } } : {}),
      ...(adminToken === undefined ? {} : { token: adminToken }),
    });
    this.watchdog = config.watchdog === null ? null : new Watchdog(config.watchdog, (line) => this.say(line), this.http.fetch);
    this.done = new Promise((resolve) => (this.finish = resolve));
    this.controls = new SupervisorControls({
      members: this.members,
      watchdog: this.watchdog,
      http: this.http,
      leaderId: () => this.leaderId,
      stopping: () => this.shuttingDown,
      // The controls only ever hand back members of this.members.
      spawn: (member) => this.spawn(member as Member),
      say: (line) => this.say(line),
    });
  }

  say(line: string): void {
    if (this.config.logFormat === 'json') {
      process.stdout.write(`${formatJson({ time: new Date().toISOString(), level: 'info', node: null, msg: line, fields: { component: 'start' } })}\n`);
    } else {
      process.stdout.write(`[start] ${line}\n`);
    }
  }

  spawnAll(): void {
    for (const member of this.members) this.spawn(member);
  }

  private spawn(member: Member): void {
    const { spec } = member;
    const args = [
      'node',
      '--id',
      String(spec.id),
      '--peers',
      this.peerList,
      '--data-dir',
      member.dir,
      '--listen',
      `${spec.raftHost}:${spec.raftPort}`,
      '--http',
      `${HOST}:${this.config.httpBasePort + spec.id}`,
      '--cluster-id',
      this.config.clusterId,
      ...(this.config.fsync ? [] : ['--no-fsync']),
      ...(this.config.maxRaftState === undefined ? [] : ['--max-raft-state', this.config.maxRaftState]),
      ...this.tlsArgs(spec.id),
      ...(this.config.auth === true ? ['--auth-file', join(this.config.dataDir, AUTH_FILE)] : []),
      ...(this.devControls === null ? [] : ['--dev-controls-url', this.devControls.url, '--dev-faults']),
      ...(this.config.logFormat === undefined ? [] : ['--log-format', this.config.logFormat]),
    ];
    const child = fork(MAIN, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    member.child = child;
    member.pid = child.pid;
    const watched: WatchedChild = { id: spec.id, pid: child.pid, httpUrl: spec.httpUrl, kill: () => child.kill('SIGKILL') };
    member.watched = watched;
    member.paused = false;
    this.watchdog?.watch(watched);
    // JSON lines pass through as they are (each names its node), so that they stay parseable.
    const prefix = this.config.logFormat === 'json' ? '' : `[node ${spec.id}] `;
    for (const stream of [child.stdout, child.stderr]) {
      if (stream === null) continue;
      const out = stream === child.stderr ? process.stderr : process.stdout;
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => out.write(`${prefix}${line}\n`));
    }
    // The IPC channel exists only so the child notices when we go away (even by SIGKILL).
    child.on('error', (error) => this.say(`node ${spec.id}: ${errorMessage(error)}`));
    member.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        if (member.child === child) member.child = null;
        resolve();
        this.onExit(member, code, signal, this.watchdog?.release(spec.id, watched) ?? null);
      });
    });
  }

  /** --tls: the peer TLS flags of node `id` (its files in <data-dir>/tls). */
  private tlsArgs(id: number): string[] {
    if (this.config.tls !== true) return [];
    const files = devCertificateFiles(join(this.config.dataDir, TLS_DIR), id);
    // The node certificate names 127.0.0.1 and localhost and may serve: it serves the HTTP API too.
    return ['--peer-ca', files.ca, '--peer-cert', files.cert, '--peer-key', files.key, '--http-cert', files.cert, '--http-key', files.key];
  }

  /** A child exited (`killedFor`: why the watchdog killed it, if it did): restart it, within limits. */
  private onExit(member: Member, code: number | null, signal: NodeJS.Signals | null, killedFor: string | null): void {
    if (this.shuttingDown) return;
    if (member.held) {
      this.say(`node ${member.spec.id} (pid ${member.pid ?? '?'}) ${signal !== null ? `killed by ${signal}` : `exited with code ${code ?? '?'}`}; stopped from the dashboard, so not restarted until started from there`);
      return;
    }
    const how =
      killedFor !== null ? `was killed by the watchdog (${killedFor})` : signal !== null ? `killed by ${signal}` : `exited with code ${code ?? '?'}`;
    const now = Date.now();
    member.restarts = member.restarts.filter((t) => now - t < RESTART_WINDOW_MS);
    const refused = killedFor === null && signal === null && (code === EXIT.usage || code === EXIT.damaged);
    if (refused || member.restarts.length >= RESTART_LIMIT) {
      member.gaveUp = true;
      member.refused = refused;
      this.say(
        refused
          ? `node ${member.spec.id} (pid ${member.pid ?? '?'}) ${how}: ${code === EXIT.damaged ? 'its data directory is damaged' : 'it refused its command line'} (its message is above); not restarting it`
          : `node ${member.spec.id} (pid ${member.pid ?? '?'}) ${how}; it was restarted ${RESTART_LIMIT} times in the last minute, giving up on it`,
      );
      if (this.members.every((m) => m.gaveUp)) {
        const allRefused = this.members.every((m) => m.refused);
        this.say(allRefused ? 'every node refused to start; stopping' : 'every node has failed repeatedly; stopping');
        void this.shutdown(allRefused ? EXIT.usage : EXIT.failed);
      }
      return;
    }
    member.restarts.push(now);
    const delay = 250 * member.restarts.length;
    this.say(
      `node ${member.spec.id} (pid ${member.pid ?? '?'}) ${how}${killedFor === null ? ' unexpectedly' : ''}; ` +
        `restarting it in ${delay} ms (restart ${member.restarts.length} of ${RESTART_LIMIT} per minute)`,
    );
    setTimeout(() => {
      if (this.shuttingDown || member.child !== null) return;
      this.spawn(member);
      this.say(`node ${member.spec.id} restarted (pid ${member.pid ?? '?'})`);
    }, delay);
  }

  /** Starts the watchdog, when configured (watchdog.ts). */
  startWatchdog(): void {
    this.watchdog?.start();
  }

  printTable(): void {
    const rows = [['node', 'raft address', 'HTTP URL', 'pid', 'data']];
    for (const m of this.members) rows.push([String(m.spec.id), `${m.spec.raftHost}:${m.spec.raftPort}`, m.spec.httpUrl, String(m.pid ?? '-'), m.dir]);
    process.stdout.write(`${formatTable(rows)}\n`);
  }

  /** Polls /v1/status until shutdown; prints the first leader and every change of leader. */
  async watchLeader(): Promise<void> {
    while (!this.shuttingDown) {
      let found: { id: number; term: number; url: string } | undefined;
      await Promise.all(
        this.members.map(async (m) => {
          try {
            const response = await this.http.fetch(`${m.spec.httpUrl}/v1/status`, { signal: AbortSignal.timeout(1000) });
            if (!response.ok) {
              await response.body?.cancel();
              return;
            }
            const status = (await response.json()) as { role?: unknown; term?: unknown; leaderId?: unknown; leaderUrl?: unknown };
            if (typeof status.term !== 'number' || (found !== undefined && status.term <= found.term)) return;
            if (status.role === 'leader') {
              found = { id: m.spec.id, term: status.term, url: m.spec.httpUrl };
            } else if (typeof status.leaderId === 'number' && typeof status.leaderUrl === 'string') {
              // A leader this command did not start (a node that joined): its followers name it.
              found = { id: status.leaderId, term: status.term, url: status.leaderUrl };
            }
          } catch {
            // down or starting: ignore
          }
        }),
      );
      if (this.shuttingDown) return;
      if (found !== undefined && (found.id !== this.leaderId || found.term > this.leaderTerm)) {
        const first = this.leaderId === undefined;
        const changed = found.id !== this.leaderId;
        this.leaderId = found.id;
        this.leaderTerm = found.term;
        if (first) {
          const seconds = ((performance.now() - this.startedAt) / 1000).toFixed(1);
          this.say(`leader: node ${found.id} (${found.url}), elected ${seconds} s after start (term ${found.term})`);
          for (const line of this.clientHowTo()) this.say(line);
        } else if (changed) {
          this.say(`leader: node ${found.id} (${found.url}), term ${found.term}`);
        }
      }
      await sleep(this.leaderId === undefined ? 100 : 500);
    }
  }

  /**
   * How to point the CLI at this cluster, printed once it has a leader: with the default ports and
   * no TLS the CLI's defaults already fit; otherwise the environment to export first.
   */
  private clientHowTo(): string[] {
    const endpoints = this.members.map((m) => m.spec.httpUrl).join(',');
    const environment: string[] = [];
    if (endpoints !== DEFAULT_ENDPOINTS) environment.push(`TSRAFT_ENDPOINTS=${endpoints}`);
    if (this.config.tls === true) environment.push(`TSRAFT_CA=${resolvePath(devCertificateFiles(join(this.config.dataDir, TLS_DIR), 0).ca)}`);
    // The token's file, not the token: the terminal's scrollback is not a place for a secret.
    if (this.config.auth === true) environment.push(`TSRAFT_TOKEN=$(cat ${resolvePath(join(this.config.dataDir, ADMIN_TOKEN_FILE))})`);
    const lines = environment.length === 0 ? [] : [`point the CLI at it: export ${environment.join(' ')}`];
    // The commands as this CLI can be run again from the user's shell (not always a bare `tsraft`).
    const { command: cli, directory } = cliInvocation(MAIN);
    const where = directory === undefined ? '' : ` (in ${shellQuote(directory)})`;
    lines.push(`try${where}: ${cli} put hello world && ${cli} get hello && ${cli} status`);
    lines.push('Ctrl-C stops the cluster');
    return lines;
  }

  get stopping(): boolean {
    return this.shuttingDown;
  }

  killAll(): void {
    for (const m of this.members) m.child?.kill('SIGKILL');
  }

  async shutdown(code: number): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.watchdog?.stop();
    const alive = this.members.filter((m) => m.child !== null);
    this.say(`stopping ${alive.length} node${alive.length === 1 ? '' : 's'}...`);
    // The whole cluster goes: tell each node so (it then skips the leadership handover, which
    // would wait for a successor that is stopping too); a node without the IPC channel gets SIGTERM.
    for (const m of alive) {
      const child = m.child;
      if (child === null) continue;
      // Paused from the dashboard: it could not act on the stop until the 5 s SIGKILL.
      if (m.paused) child.kill('SIGCONT');
      if (child.connected) child.send({ type: 'stop-cluster' }, (error) => error && child.kill('SIGTERM'));
      else child.kill('SIGTERM');
    }
    const all = Promise.all(alive.map((m) => m.exited));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([all.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), STOP_GRACE_MS)))]);
    clearTimeout(timer);
    if (timedOut) {
      for (const m of alive) {
        if (m.child !== null) {
          this.say(`node ${m.spec.id} (pid ${m.pid ?? '?'}) did not stop within ${STOP_GRACE_MS / 1000} s; sending SIGKILL`);
          m.child.kill('SIGKILL');
        }
      }
      await all;
    }
    await this.http.close();
    await this.devControls?.close();
    this.say('all nodes stopped');
    this.finish?.(code);
  }
}

export async function runStart(config: StartConfig): Promise<number> {
  const dataDir = resolvePath(config.dataDir);
  const lockPath = lockDataDir(dataDir, config.nodes);
  try {
    // Ports: refuse before anything starts.
    const busy: string[] = [];
    for (let i = 0; i < config.nodes; i++) {
      for (const [what, port] of [
        ['raft', config.basePort + i],
        ['HTTP', config.httpBasePort + i],
      ] as const) {
        const problem = await probePort(port);
        if (problem !== null) busy.push(`${HOST}:${port} (${what} port of node ${i}): ${problem === 'EADDRINUSE' ? 'already in use' : problem}`);
      }
    }
    if (busy.length > 0) {
      throw new CliError(
        `cannot start: ${busy.length === 1 ? 'a port is' : 'ports are'} not available:\n  ${busy.join('\n  ')}\n` +
          'Is another cluster running? Stop it, or choose other ports with --base-port / --http-base-port.',
        EXIT.failed,
      );
    }
    if (config.fresh) {
      for (const name of readdirSync(dataDir)) {
        if (/^node-\d+$/.test(name)) rmSync(join(dataDir, name), { recursive: true, force: true });
      }
    }
    const peers: PeerSpec[] = Array.from({ length: config.nodes }, (_, i) => ({
      id: i,
      raftHost: HOST,
      raftPort: config.basePort + i,
      httpUrl: `${config.tls === true ? 'https' : 'http'}://${HOST}:${config.httpBasePort + i}`,
    }));
    await checkIdentities(dataDir, config, peers);
    await checkHttpScheme(dataDir, config.tls === true, peers);
    let tlsLine: string | undefined;
    if (config.tls === true) {
      const tlsDir = join(config.dataDir, TLS_DIR);
      let made: Awaited<ReturnType<typeof ensureDevCertificates>>;
      try {
        made = await ensureDevCertificates(tlsDir, config.clusterId, peers.map((p) => p.id));
      } catch (error) {
        throw new CliError(`cannot make the peer certificates in ${tlsDir}: ${errorMessage(error)}`, EXIT.failed);
      }
      const what = made.made === 0 ? 'reused' : made.reused === 0 ? (made.caMade ? 'new dev CA and certificates' : 'new certificates') : `${made.made} new, ${made.reused} reused`;
      tlsLine = `peers use mutual TLS and the HTTP API serves HTTPS: dev CA and node certificates in ${tlsDir} (${what}; keys mode 0600)`;
    }
    let authLine: string | undefined;
    let adminToken: string | undefined;
    if (config.auth === true) {
      const auth = ensureDevAuth(dataDir);
      adminToken = auth.token;
      authLine =
        `the HTTP API requires a token (or client certificate): auth file ${join(dataDir, AUTH_FILE)}${auth.made ? ' (new)' : ''}, ` +
        `admin token in ${join(dataDir, ADMIN_TOKEN_FILE)} (mode 0600); more: tsraft tokens add --file ${join(dataDir, AUTH_FILE)} --name <name> --role read`;
    }
    const existing = peers.filter((p) => existsSync(join(dataDir, `node-${p.id}`))).length;
    const supervisor = new Supervisor({ ...config, dataDir: config.dataDir }, formatPeers(peers), peers, adminToken);
    let firstSignalAt = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      // One Ctrl-C can arrive twice (from the terminal and forwarded by npm): repeats within 1 s
      // are the same request.
      if (supervisor.stopping && Date.now() - firstSignalAt < 1000) return;
      process.stdout.write('\n');
      if (supervisor.stopping) {
        supervisor.say(`${signal} received again: killing every node now`);
        supervisor.killAll();
        return;
      }
      firstSignalAt = Date.now();
      supervisor.say(`${signal} received`);
      void supervisor.shutdown(EXIT.ok);
    };
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    for (const signal of signals) process.on(signal, onSignal);
    process.stdout.on('error', () => undefined);
    try {
      supervisor.say(
        `${config.nodes}-node cluster on ${HOST}, data in ${config.dataDir}` +
          (config.fresh ? ' (fresh)' : existing > 0 ? ` (reusing the data of ${existing} node${existing === 1 ? '' : 's'}; --fresh to wipe)` : '') +
          `, fsync ${config.fsync ? 'on' : 'off'}, pid ${process.pid}` +
          (config.watchdog === null
            ? ', watchdog off'
            : `, watchdog: /healthz every ${config.watchdog.intervalMs} ms, a node silent for ${config.watchdog.unhealthyAfterMs} ms is killed and restarted`),
      );
      if (tlsLine !== undefined) supervisor.say(tlsLine);
      if (authLine !== undefined) supervisor.say(authLine);
      supervisor.devControls = await startDevControls(
        supervisor.controls,
        peers.map((p) => new URL(p.httpUrl).origin),
        (line) => supervisor.say(line),
      );
      supervisor.spawnAll();
      supervisor.printTable();
      supervisor.say(`dashboard: ${peers[0]!.httpUrl}/ui (any node's /ui; its controls are served on ${supervisor.devControls.url}, loopback only)`);
      void supervisor.watchLeader();
      supervisor.startWatchdog();
      return await supervisor.done;
    } finally {
      for (const signal of signals) process.off(signal, onSignal);
    }
  } finally {
    unlockDataDir(lockPath);
  }
}

export function startCommand(): Command {
  return new Command('start')
    .description('run a local cluster of `tsraft node` processes on 127.0.0.1 until Ctrl-C')
    .option('--nodes <n>', 'number of nodes', '3')
    .option('--data-dir <dir>', 'data directory; node i keeps its data in <dir>/node-<i>', './data')
    .option('--base-port <port>', 'raft port of node 0; node i uses base-port + i', '7000')
    .option('--http-base-port <port>', 'HTTP port of node 0; node i uses http-base-port + i', '8000')
    .option('--fresh', 'delete the nodes\' data (<data-dir>/node-*) before starting')
    .option('--no-fsync', 'run the nodes without fsync (faster, not crash-safe)')
    .option('--cluster-id <id>', 'cluster name passed to every node', 'tsraft')
    .option('--max-raft-state <bytes>', 'snapshot threshold passed to every node (e.g. 64m)')
    .option('--health-interval-ms <ms>', 'watchdog: how often each node\'s /healthz is polled', String(DEFAULT_HEALTH_INTERVAL_MS))
    .option('--unhealthy-after-ms <ms>', 'watchdog: a node that gives no 200 from /healthz for this long is killed (SIGKILL) and restarted', String(DEFAULT_UNHEALTHY_AFTER_MS))
    .option('--health-grace-ms <ms>', 'watchdog: extra time a starting node gets before its first answer', String(DEFAULT_HEALTH_GRACE_MS))
    .option('--no-watchdog', 'restart nodes only when they exit, never for a /healthz that does not answer')
    .option('--auth', 'the HTTP API requires a bearer token: <data-dir>/auth.json is made with one admin token, kept in <data-dir>/admin.token (reused on a restart)')
    .option('--log-format <format>', "the nodes' log lines: pretty (default, prefixed [node i]) or json (one object per line, unprefixed, with its node)")
    .option('--tls', 'mutual TLS between the nodes and HTTPS for the HTTP API: a dev CA and node certificates are made in <data-dir>/tls (reused on a restart)')
    .addHelpText(
      'after',
      `
Each node is a child process running \`tsraft node\`; its output is prefixed [node i].
Ctrl-C (or SIGTERM) stops every node (at once, without leadership handovers; SIGKILL after 5 s) and exits.
A node that dies on its own is restarted (at most ${RESTART_LIMIT} times a minute); one that refuses
its command line (exit code 2, e.g. a data directory of another cluster) is not.
Each node directory records its cluster identity on the first start (cluster id, node id, member
ids); a start with another --nodes or --cluster-id on that data is refused before anything runs.
The watchdog polls every node's /healthz; a node that stops answering (hung, SIGSTOPped, a
blocked event loop) for --unhealthy-after-ms is killed with SIGKILL and restarted the same way.
--tls: the nodes speak mutual TLS 1.3 to each other, with a development CA (its key kept beside it,
in <data-dir>/tls/ca.key) and one certificate per node, which also serves each node's HTTP API over
HTTPS (https:// URLs). Once a leader is up it prints the TSRAFT_ENDPOINTS and TSRAFT_CA to export
for the CLI.
--auth: every node reads <data-dir>/auth.json (tsraft node --auth-file); the first start makes it
with one token for principal "admin" (role admin), kept in <data-dir>/admin.token, and prints the
TSRAFT_TOKEN to export. Add tokens with \`tsraft tokens add --file <data-dir>/auth.json\`; they count
for a node from its next start (or \`kill -HUP\` of that node's pid).

Example: tsraft start --nodes 5 --data-dir /tmp/raft --base-port 9000 --http-base-port 9100 --fresh`,
    )
    .action(async (options: StartOptions) => {
      const config = parseStartOptions(options);
      process.exitCode = await runStart(config);
    });
}
