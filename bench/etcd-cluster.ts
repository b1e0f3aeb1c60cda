/**
 * A 3-member etcd cluster on 127.0.0.1 for bench/vs-etcd.ts: finds the `etcd` binary (Debian's
 * etcd-server package installs /usr/bin/etcd), starts the members in one temporary directory with
 * etcd's defaults (so the WAL is fsynced), waits until every member answers GET /health, finds the
 * leader with POST /v3/maintenance/status (etcd 3.4's JSON gateway), and stops everything.
 *
 * Each member is `etcd --name eN --data-dir DIR --listen-client-urls http://127.0.0.1:P ...
 * --initial-cluster e0=...,e1=...,e2=... --initial-cluster-state new`; clients speak to the same
 * port over gRPC or over the JSON gateway (HTTP/1.1), which is what the benchmark uses.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { freeLoopbackPorts } from '../src/testing/ports.js';
import { terminate } from '../src/testing/process-cluster.js';

const HOST = '127.0.0.1';
const OUTPUT_LINES_KEPT = 100;

/** Where etcd is looked for after PATH. */
export const ETCD_FALLBACK_PATHS: readonly string[] = ['/usr/bin/etcd'];

/** What to tell someone who has no etcd. */
export const ETCD_INSTALL_HINT =
  "Install Debian's etcd-server package (etcd 3.4) and run again:\n" +
  '  sudo apt-get install etcd-server\n' +
  '(or give the binary with --etcd PATH). Nothing was started.';

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable `etcd` on `pathEnv` (a PATH value), else in `fallbacks`; undefined when none. */
export function findEtcd(pathEnv: string | undefined = process.env.PATH, fallbacks: readonly string[] = ETCD_FALLBACK_PATHS): string | undefined {
  for (const dir of (pathEnv ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'etcd');
    if (isExecutableFile(candidate)) return candidate;
  }
  return fallbacks.find(isExecutableFile);
}

/** Every etcd process started here and not yet exited: SIGKILLed when this process exits. */
const liveChildren = new Set<ChildProcess>();
const liveRoots = new Set<string>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** For a signal handler: SIGKILLs every etcd member started here and removes their data directories. */
export function abortAllEtcdClusters(): void {
  for (const child of liveChildren) child.kill('SIGKILL');
  liveChildren.clear();
  for (const root of liveRoots) rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  liveRoots.clear();
}

/** One member of an EtcdCluster. */
export class EtcdMember {
  child: ChildProcess | null = null;
  readonly output: string[] = [];
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    readonly clientUrl: string,
    readonly peerUrl: string,
    readonly dir: string,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(binary: string, initialCluster: string, token: string): void {
    const args = [
      '--name', this.name,
      '--data-dir', this.dir,
      '--listen-client-urls', this.clientUrl,
      '--advertise-client-urls', this.clientUrl,
      '--listen-peer-urls', this.peerUrl,
      '--initial-advertise-peer-urls', this.peerUrl,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', token,
      // Quiet logs, so that logging takes no CPU from the measurement; everything else is etcd's default.
      '--logger', 'zap',
      '--log-outputs', 'stderr',
      '--log-level', 'warn',
    ];
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    liveChildren.add(child);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        this.output.push(line);
        if (this.output.length > OUTPUT_LINES_KEPT) this.output.shift();
      });
    }
    child.on('error', (error) => this.output.push(`<spawn error: ${error.message}>`));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        liveChildren.delete(child);
        if (this.child === child) this.child = null;
        this.output.push(`<exited: ${signal ?? `code ${code ?? '?'}`}>`);
        resolve();
      }),
    );
  }

  /**
   * SIGTERM, then SIGKILL after `graceMs`: a member whose peers are already gone can take seconds
   * to stop (the leader tries to hand over leadership), and the data is thrown away anyway.
   */
  async stop(graceMs = 1000): Promise<void> {
    const child = this.child;
    if (child === null) return;
    await terminate(child, this.exited, graceMs);
  }

  /** True when GET /health answers {"health":"true"}. */
  async healthy(timeoutMs = 1000): Promise<boolean> {
    try {
      const response = await fetch(`${this.clientUrl}/health`, { signal: AbortSignal.timeout(timeoutMs) });
      const body = (await response.json()) as { health?: string };
      return response.ok && body.health === 'true';
    } catch {
      return false;
    }
  }

  /** POST /v3/maintenance/status: this member's id and the leader's id (decimal strings), or undefined. */
  async status(timeoutMs = 1000): Promise<{ memberId: string; leader: string; version: string } | undefined> {
    try {
      const response = await fetch(`${this.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' }, signal: AbortSignal.timeout(timeoutMs) });
      if (!response.ok) {
        await response.body?.cancel();
        return undefined;
      }
      const body = (await response.json()) as { header?: { member_id?: string }; leader?: string; version?: string };
      if (body.header?.member_id === undefined || body.leader === undefined) return undefined;
      return { memberId: body.header.member_id, leader: body.leader, version: body.version ?? '?' };
    } catch {
      return undefined;
    }
  }
}

/** `size` etcd members on free loopback ports, in one temporary directory. */
export class EtcdCluster {
  private constructor(
    readonly members: readonly EtcdMember[],
    readonly root: string,
  ) {}

  /** Starts the members and waits (up to `readyTimeoutMs`) until every one is healthy and there is a leader. */
  static async start(binary: string, options: { size?: number; tmpPrefix?: string; readyTimeoutMs?: number } = {}): Promise<EtcdCluster> {
    const size = options.size ?? 3;
    const root = mkdtempSync(join(tmpdir(), options.tmpPrefix ?? 'tsraft-bench-etcd-'));
    liveRoots.add(root);
    const ports = await freeLoopbackPorts(size * 2);
    const members = Array.from({ length: size }, (_, i) => new EtcdMember(`e${i}`, `http://${HOST}:${ports[i]!}`, `http://${HOST}:${ports[size + i]!}`, join(root, `e${i}`)));
    const cluster = new EtcdCluster(members, root);
    const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    try {
      for (const m of members) m.start(binary, initialCluster, `tsraft-bench-${process.pid}-${ports[0]!}`);
      const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
      for (;;) {
        const health = await Promise.all(members.map((m) => m.healthy()));
        if (health.every((h) => h) && (await cluster.leader()) !== undefined) break;
        if (members.some((m) => m.child === null)) throw new Error(`an etcd member exited while starting\n${cluster.describeOutput()}`);
        if (Date.now() > deadline) throw new Error(`etcd was not healthy within ${options.readyTimeoutMs ?? 30_000} ms\n${cluster.describeOutput()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  get pids(): number[] {
    return this.members.flatMap((m) => (m.pid === undefined ? [] : [m.pid]));
  }

  /** The member that every answering member names as leader (the first answer wins on disagreement). */
  async leader(): Promise<EtcdMember | undefined> {
    const statuses = await Promise.all(this.members.map((m) => m.status()));
    const leaderId = statuses.find((s) => s !== undefined && s.leader !== '0')?.leader;
    if (leaderId === undefined) return undefined;
    const index = statuses.findIndex((s) => s?.memberId === leaderId);
    return index < 0 ? undefined : this.members[index];
  }

  async waitForLeader(timeoutMs: number): Promise<EtcdMember> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const leader = await this.leader();
      if (leader !== undefined) return leader;
      if (Date.now() > deadline) throw new Error(`etcd: no leader within ${timeoutMs} ms\n${this.describeOutput()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The version an etcd member reports (e.g. "3.4.23"). */
  async version(): Promise<string> {
    for (const m of this.members) {
      const s = await m.status();
      if (s !== undefined) return s.version;
    }
    return '?';
  }

  describeOutput(lines = 20): string {
    return this.members.map((m) => `--- etcd ${m.name} (last ${lines} lines)\n${m.output.slice(-lines).join('\n')}`).join('\n');
  }

  /** Stops every member and removes the data directory. */
  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop()));
    liveRoots.delete(this.root);
    rmSync(this.root, { recursive: true, force: true, maxRetries: 3 });
  }
}
