/**
 * Membership changes of `tsraft node` OS processes under client load, measured. Shared by the
 * process test (test/process/membership.test.ts) and `npm run bench:membership`
 * (bench/membership.ts).
 *
 * - MembershipCluster: `tsraft node` processes (KvNodeProcess, forked `main.js node ...`, FileStorage,
 *   TCP on 127.0.0.1, free ports, one temporary directory) whose membership changes: started with
 *   --peers, grown by `tsraft node --join <url>` processes (each joins as a learner and promotes
 *   itself), shrunk through DELETE /v1/members/{id} (KvClient.removeMember); kill -9 and stop.
 *   Every output line of every node is kept (with the harness's own event lines, same clock format)
 *   so that a failure can be written out whole (`writeLog`).
 * - WriteLoad: concurrent KvClient writers, each putting unique keys one after the other; every
 *   acknowledged key is recorded with its value and the time of the acknowledgement.
 * - LeaderMonitor: polls GET /v1/status of every running node process every 20 ms.
 * - MembershipScenario: the three together, and the measured operations (join + promote, remove
 *   the leader, remove a follower, replace a killed follower, kill -9 of the leader), each returning
 *   the figures of its window (OpFigures).
 *
 * Definitions (all times from performance.now() in this process):
 * - An operation's window runs from the moment its first action is issued to `settleMs` (default
 *   1 s) after the cluster made progress again once its last action completed: a leader among the
 *   expected voters seen by the monitor in a round started after the completion, and `minAcks`
 *   writes acknowledged after it. Progress must come within `progressTimeoutMs` (default 15 s) or
 *   the operation throws: the only bound on timing that is ever enforced.
 * - Write gap of a window: the longest interval between two consecutive acknowledged writes (all
 *   writers together) that overlaps the window, measured in full.
 * - Leaderless time: the monitor runs polling rounds, one every 20 ms (or as soon as the previous
 *   one finished, when it took longer); a round asks every running `tsraft node` process (started
 *   and not yet stopped or killed: a removed member counts until its process is stopped) for
 *   GET /v1/status, all at once, each with a 1 s timeout. A round is leaderless when no process
 *   that answered reports role "leader". A leaderless period runs from the start of its first
 *   leaderless round to the start of the next round that is not leaderless. Per window: the sum of
 *   the periods (clipped to the window) and the longest one. Resolution: about one round (20 ms
 *   plus the slowest answer).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatPeers, type PeerSpec } from '../cli/common.js';
import { KvClient, parseMembers, type KvMembers } from '../kv/client.js';
import { KvNodeProcess } from './process-cluster.js';
import { freeLoopbackPorts } from './ports.js';

const HOST = '127.0.0.1';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** HH:MM:SS.mmm (UTC), the clock format of `tsraft node` log lines. */
function clock(): string {
  return new Date().toISOString().slice(11, 23);
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}

// ---------------------------------------------------------------------------- the cluster

export interface MembershipClusterOptions {
  /** Voters started with --peers (ids 0..size-1). */
  readonly size: number;
  /** fsync the write-ahead log (default true). */
  readonly fsync?: boolean;
  /** Extra arguments for every `tsraft node` (e.g. --max-raft-state). */
  readonly nodeArgs?: readonly string[];
  readonly tmpPrefix?: string;
  /** Called with each harness event line (progress). */
  readonly onEvent?: (line: string) => void;
}

/** A cluster of `tsraft node` processes whose membership changes. */
export class MembershipCluster {
  /** Every node process ever started here, by id (stopped and killed ones included). */
  readonly nodes = new Map<number, KvNodeProcess>();
  /** The voters the harness expects (updated by the operations once a change completed). */
  readonly voters = new Set<number>();
  /** Every node output line and harness event, in arrival order. */
  readonly lines: string[] = [];
  readonly root: string;
  private nextId: number;

  private constructor(private readonly options: MembershipClusterOptions) {
    this.root = mkdtempSync(join(tmpdir(), options.tmpPrefix ?? 'tsraft-membership-'));
    this.nextId = options.size;
  }

  static async start(options: MembershipClusterOptions, leaderTimeoutMs = 20_000): Promise<MembershipCluster> {
    const cluster = new MembershipCluster(options);
    try {
      const ports = await freeLoopbackPorts(options.size * 2);
      const peers: PeerSpec[] = Array.from({ length: options.size }, (_, i) => ({
        id: i,
        raftHost: HOST,
        raftPort: ports[i]!,
        httpUrl: `http://${HOST}:${ports[options.size + i]!}`,
      }));
      const peerList = formatPeers(peers);
      for (const spec of peers) {
        const dir = join(cluster.root, `node-${spec.id}`);
        cluster.spawn(spec, dir, ['node', '--id', String(spec.id), '--peers', peerList, '--data-dir', dir, ...cluster.commonArgs()]);
        cluster.voters.add(spec.id);
      }
      await cluster.waitForLeader(cluster.voters, leaderTimeoutMs);
    } catch (error) {
      cluster.writeLogNextToRoot();
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** A harness event line: kept with the node output, and passed to onEvent. */
  event(line: string): void {
    this.lines.push(`${clock()} [harness] ${line}`);
    this.options.onEvent?.(line);
  }

  private commonArgs(): string[] {
    return [...(this.options.fsync === false ? ['--no-fsync'] : []), ...(this.options.nodeArgs ?? [])];
  }

  private spawn(spec: PeerSpec, dir: string, args: string[]): KvNodeProcess {
    const node = new KvNodeProcess(spec, dir, args, (id, line) => this.lines.push(`n${id} ${line}`));
    this.nodes.set(spec.id, node);
    this.event(`start node ${spec.id}: tsraft ${args.join(' ')}`);
    node.start();
    return node;
  }

  /** A fresh id for a joining node. */
  newId(): number {
    return this.nextId++;
  }

  node(id: number): KvNodeProcess {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** Node processes running now. */
  running(): KvNodeProcess[] {
    return [...this.nodes.values()].filter((n) => n.alive);
  }

  /** HTTP URLs of the expected voters whose process runs (what clients are given). */
  endpoints(): string[] {
    return [...this.voters].sort((a, b) => a - b).flatMap((id) => (this.nodes.get(id)?.alive === true ? [this.nodes.get(id)!.url] : []));
  }

  /**
   * Starts `tsraft node --id ID --join VIA --listen ... --http ...` on free ports with a fresh data
   * directory. It adds itself as a learner and promotes itself; `waitForVoter` waits for that.
   */
  async join(id: number, via: string): Promise<KvNodeProcess> {
    const [raftPort, httpPort] = await freeLoopbackPorts(2);
    const spec: PeerSpec = { id, raftHost: HOST, raftPort: raftPort!, httpUrl: `http://${HOST}:${httpPort!}` };
    const dir = join(this.root, `node-${id}`);
    return this.spawn(spec, dir, [
      'node', '--id', String(id), '--join', via, '--join-timeout', '20000',
      '--listen', `${HOST}:${raftPort}`, '--http', `${HOST}:${httpPort}`, '--data-dir', dir, ...this.commonArgs(),
    ]);
  }

  /** A client of the expected voters (and any other running process, as a fallback). */
  client(timeoutMs: number): KvClient {
    const endpoints = [...new Set([...this.endpoints(), ...this.running().map((n) => n.url)])];
    return new KvClient({ endpoints, timeoutMs, maxRetryDelayMs: 250 });
  }

  /** The leader's view of the configuration (GET /v1/members through the running members). */
  async members(timeoutMs = 5_000): Promise<KvMembers> {
    return this.client(timeoutMs).members();
  }

  /** Waits until `id` is a voter in the leader's view and no change is under way. Throws after `timeoutMs`. */
  async waitForVoter(id: number, timeoutMs: number): Promise<KvMembers> {
    const deadline = performance.now() + timeoutMs;
    let last = 'no answer yet';
    while (performance.now() < deadline) {
      const node = this.node(id);
      if (!node.alive) throw new Error(`node ${id} exited while joining; its output:\n${node.output.join('\n')}`);
      try {
        const view = await this.members(2_000);
        last = describeMembers(view);
        if (!view.joint && view.voters.some((m) => m.id === id)) return view;
      } catch (error) {
        last = describeError(error);
      }
      await sleep(50);
    }
    throw new Error(`node ${id} did not become a voter within ${timeoutMs} ms (last view: ${last}); its output:\n${this.node(id).output.slice(-30).join('\n')}`);
  }

  /** The running process reporting itself leader with the highest term, if any. */
  async leader(): Promise<KvNodeProcess | undefined> {
    const running = this.running();
    const statuses = await Promise.all(running.map((n) => n.status(1_000)));
    let best: { node: KvNodeProcess; term: number } | undefined;
    statuses.forEach((s, i) => {
      if (s?.role === 'leader' && typeof s.term === 'number' && (best === undefined || s.term > best.term)) best = { node: running[i]!, term: s.term };
    });
    return best?.node;
  }

  /** Waits for a leader among `among`. Throws after `timeoutMs`. */
  async waitForLeader(among: ReadonlySet<number>, timeoutMs: number): Promise<KvNodeProcess> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const leader = await this.leader();
      if (leader !== undefined && among.has(leader.id)) return leader;
      await sleep(20);
    }
    throw new Error(`no leader among ${[...among].join(', ')} within ${timeoutMs} ms`);
  }

  /**
   * Waits until every running process answers GET /v1/members with the same voters, equal to the
   * expected ones, no learners and no joint configuration. Returns the problem (empty: agreed).
   */
  async waitForAgreement(timeoutMs: number): Promise<string[]> {
    const deadline = performance.now() + timeoutMs;
    const expected = [...this.voters].sort((a, b) => a - b).join(',');
    let problems: string[] = [];
    for (;;) {
      problems = [];
      const running = this.running();
      const runningIds = running.map((n) => n.id).sort((a, b) => a - b).join(',');
      if (runningIds !== expected) problems.push(`running processes ${runningIds}, expected voters ${expected}`);
      const views = await Promise.all(
        running.map(async (n) => {
          try {
            const response = await fetch(`${n.url}/v1/members`, { signal: AbortSignal.timeout(2_000) });
            return parseMembers((await response.json()) as Record<string, unknown>);
          } catch (error) {
            return describeError(error);
          }
        }),
      );
      views.forEach((view, i) => {
        const id = running[i]!.id;
        if (typeof view === 'string') problems.push(`node ${id}: GET /v1/members failed: ${view}`);
        else if (view.joint || view.learners.length > 0 || view.voters.map((m) => m.id).join(',') !== expected) problems.push(`node ${id}'s view: ${describeMembers(view)}`);
      });
      if (problems.length === 0 || performance.now() > deadline) return problems;
      await sleep(100);
    }
  }

  /**
   * Waits until every running process has applied the commit index of the leader (read first).
   * Throws after `timeoutMs`.
   */
  async waitForCaughtUp(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let last = '';
    while (performance.now() < deadline) {
      const running = this.running();
      const statuses = await Promise.all(running.map((n) => n.status(1_000)));
      const leader = statuses.find((s) => s?.role === 'leader');
      if (leader?.commitIndex !== undefined && statuses.every((s) => s?.appliedIndex !== undefined && s.appliedIndex >= leader.commitIndex!)) return;
      last = statuses.map((s, i) => (s === undefined ? `${running[i]!.id}:-` : `${running[i]!.id}:${s.role} c${s.commitIndex} a${s.appliedIndex}`)).join(' ');
      await sleep(100);
    }
    throw new Error(`the running nodes did not catch up within ${timeoutMs} ms (last: ${last})`);
  }

  /** The last `lines` output lines of every node. */
  describeOutput(lines = 25): string {
    return [...this.nodes.values()].map((n) => `--- node ${n.id} (last ${lines} lines)\n${n.output.slice(-lines).join('\n')}`).join('\n');
  }

  /** Writes every line (node output and harness events) to `file`. */
  writeLog(file: string): void {
    writeFileSync(file, `${this.lines.join('\n')}\n`);
  }

  /** Writes the log beside (not inside) the data directory, which stop() removes; returns its path. */
  writeLogNextToRoot(): string {
    const file = `${this.root}.log`;
    this.writeLog(file);
    return file;
  }

  /** Stops every node still running (SIGTERM, SIGKILL after 5 s) and removes the data directory. */
  async stop(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => n.stop()));
    rmSync(this.root, { recursive: true, force: true });
  }
}

export function describeMembers(m: KvMembers): string {
  const ids = (list: readonly { id: number }[]): string => (list.length === 0 ? 'none' : list.map((x) => x.id).join(','));
  return `leader ${m.leader ?? 'none'}, voters ${ids(m.voters)}${m.joint ? ` (joint, outgoing ${ids(m.outgoing)})` : ''}, learners ${ids(m.learners)}, index ${m.membershipIndex}${m.committed ? '' : ' (uncommitted)'}`;
}

// ---------------------------------------------------------------------------- the load

export interface VerifyReport {
  readonly checked: number;
  /** Keys acknowledged with a value that a linearizable get did not return (at most 20 listed). */
  readonly lost: string[];
  readonly lostCount: number;
}

/** Concurrent writers putting unique keys; every acknowledged key and its value is recorded. */
export class WriteLoad {
  readonly acked = new Map<string, string>();
  /** performance.now() of every acknowledgement, in order (non-decreasing). */
  readonly ackTimes: number[] = [];
  failures = 0;
  /** The first few failure messages (a put that timed out: its outcome is unknown, its key is not checked). */
  readonly failureMessages: string[] = [];
  private endpoints: string[];
  private generation = 0;
  private running = true;
  private readonly writers: Promise<void>[];

  constructor(endpoints: readonly string[], writers: number, private readonly opTimeoutMs = 15_000) {
    this.endpoints = [...endpoints];
    const run = Date.now().toString(36);
    this.writers = Array.from({ length: writers }, (_, w) => this.writer(`${run}-w${w}`));
  }

  /** Endpoints for the writers' next puts (a put under way finishes with its client's). */
  setEndpoints(endpoints: readonly string[]): void {
    if (endpoints.join(' ') === this.endpoints.join(' ') || endpoints.length === 0) return;
    this.endpoints = [...endpoints];
    this.generation++;
  }

  private async writer(prefix: string): Promise<void> {
    let generation = -1;
    let client: KvClient | undefined;
    for (let i = 0; this.running; i++) {
      if (generation !== this.generation || client === undefined) {
        generation = this.generation;
        client = new KvClient({ endpoints: this.endpoints, timeoutMs: this.opTimeoutMs, maxRetryDelayMs: 250 });
      }
      const key = `${prefix}-${i}`;
      const value = `${i}:${Date.now()}`;
      try {
        await client.put(key, value);
        this.acked.set(key, value);
        this.ackTimes.push(performance.now());
      } catch (error) {
        this.failures++;
        if (this.failureMessages.length < 5) this.failureMessages.push(`${key}: ${describeError(error)}`);
        await sleep(20);
      }
    }
  }

  /** How many writes were acknowledged after `t`. */
  acksSince(t: number): number {
    let lo = 0;
    let hi = this.ackTimes.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ackTimes[mid]! <= t) lo = mid + 1;
      else hi = mid;
    }
    return this.ackTimes.length - lo;
  }

  /** The longest interval between consecutive acknowledgements that overlaps [from, to], in full. */
  longestGap(from: number, to: number): number {
    const times = this.ackTimes;
    let gap = 0;
    for (let i = 1; i < times.length; i++) {
      const a = times[i - 1]!;
      const b = times[i]!;
      if (b > from && a < to) gap = Math.max(gap, b - a);
    }
    // Nothing acknowledged since: the open interval counts up to `to`.
    const last = times[times.length - 1];
    if (last === undefined) gap = Math.max(gap, to - from);
    else if (last < to) gap = Math.max(gap, to - Math.max(last, from));
    return gap;
  }

  /** Stops the writers (each finishes its put under way). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.allSettled(this.writers);
  }

  /** Reads every acknowledged key with a linearizable get through `endpoints` (`concurrency` at once). */
  async verify(endpoints: readonly string[], concurrency = 16): Promise<VerifyReport> {
    const reader = new KvClient({ endpoints, timeoutMs: 15_000 });
    const entries = [...this.acked];
    const lost: string[] = [];
    let lostCount = 0;
    let next = 0;
    const work = async (): Promise<void> => {
      while (next < entries.length) {
        const [key, value] = entries[next++]!;
        let got: string | null;
        try {
          got = await reader.get(key);
        } catch (error) {
          got = `<read failed: ${describeError(error)}>`;
        }
        if (got !== value) {
          lostCount++;
          if (lost.length < 20) lost.push(`${key}: acknowledged ${JSON.stringify(value)}, read ${JSON.stringify(got)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, () => work()));
    return { checked: entries.length, lost, lostCount };
  }
}

// ---------------------------------------------------------------------------- the leader monitor

export interface LeaderlessFigures {
  /** Leaderless time within the window (periods clipped to it), ms. */
  readonly totalMs: number;
  /** The longest leaderless period (clipped to the window), ms. */
  readonly longestMs: number;
  readonly periods: number;
}

interface Round {
  readonly t: number;
  readonly leaders: readonly number[];
}

/** Polls every running node process's /v1/status every `intervalMs` (see the module comment). */
export class LeaderMonitor {
  readonly rounds: Round[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly targets: () => KvNodeProcess[],
    private readonly intervalMs = 20,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const t = performance.now();
      const nodes = this.targets();
      const statuses = await Promise.all(nodes.map((n) => n.status(1_000)));
      const leaders = statuses.flatMap((s, i) => (s?.role === 'leader' ? [nodes[i]!.id] : []));
      this.rounds.push({ t, leaders });
      await sleep(Math.max(0, t + this.intervalMs - performance.now()));
    }
  }

  /** Whether a round started at or after `t` saw a leader among `among`. */
  leaderSince(t: number, among: ReadonlySet<number>): boolean {
    for (let i = this.rounds.length - 1; i >= 0 && this.rounds[i]!.t >= t; i--) {
      if (this.rounds[i]!.leaders.some((id) => among.has(id))) return true;
    }
    return false;
  }

  leaderless(from: number, to: number): LeaderlessFigures {
    let total = 0;
    let longest = 0;
    let periods = 0;
    let start: number | undefined;
    const close = (end: number): void => {
      if (start === undefined) return;
      const s = Math.max(start, from);
      const e = Math.min(end, to);
      if (e > s) {
        total += e - s;
        longest = Math.max(longest, e - s);
        periods++;
      }
      start = undefined;
    };
    for (const round of this.rounds) {
      if (round.t > to) {
        close(round.t);
        break;
      }
      if (round.leaders.length === 0) start ??= round.t;
      else close(round.t);
    }
    close(to);
    return { totalMs: total, longestMs: longest, periods };
  }

  /** The leaders seen in [from, to], in order, without repeats of the one before. */
  leadersSeen(from: number, to: number): number[] {
    const seen: number[] = [];
    for (const round of this.rounds) {
      if (round.t < from || round.t > to) continue;
      for (const id of round.leaders) if (seen[seen.length - 1] !== id) seen.push(id);
    }
    return seen;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

// ---------------------------------------------------------------------------- the scenario

export interface OpFigures {
  readonly name: string;
  /** What was done, e.g. "node 3 joined (learner -> voter)". */
  readonly detail: string;
  /** From the first action to the completion of the last, ms. */
  readonly actionMs: number;
  /** From the first action to the end of the window (progress again + settle), ms. */
  readonly windowMs: number;
  readonly writeGapMs: number;
  readonly leaderless: LeaderlessFigures;
  readonly leaders: number[];
  readonly acks: number;
  /** The expected voters after the operation. */
  readonly voters: number[];
}

export interface ScenarioOptions extends MembershipClusterOptions {
  /** Concurrent writers (default 8). */
  readonly writers?: number;
  /** The progress bound after each operation (default 15 s). */
  readonly progressTimeoutMs?: number;
  /** Writes that must be acknowledged after an operation to count as progress (default 10). */
  readonly minAcks?: number;
  /** Steady load after each operation, inside its window (default 1 s). */
  readonly settleMs?: number;
}

export function formatOp(op: OpFigures): string {
  const l = op.leaderless;
  return (
    `${op.name}: ${op.detail}; action ${op.actionMs.toFixed(0)} ms, window ${op.windowMs.toFixed(0)} ms; ` +
    `write gap ${op.writeGapMs.toFixed(0)} ms; leaderless ${l.totalMs.toFixed(0)} ms in ${l.periods} period(s), longest ${l.longestMs.toFixed(0)} ms; ` +
    `leaders ${op.leaders.join(' -> ') || 'none'}; ${op.acks} writes acknowledged; voters ${op.voters.join(',')}`
  );
}

/** A MembershipCluster under a WriteLoad, watched by a LeaderMonitor; the measured operations. */
export class MembershipScenario {
  readonly load: WriteLoad;
  readonly monitor: LeaderMonitor;
  readonly startedAt = performance.now();
  private readonly progressTimeoutMs: number;
  private readonly minAcks: number;
  private readonly settleMs: number;

  private constructor(
    readonly cluster: MembershipCluster,
    options: ScenarioOptions,
  ) {
    this.progressTimeoutMs = options.progressTimeoutMs ?? 15_000;
    this.minAcks = options.minAcks ?? 10;
    this.settleMs = options.settleMs ?? 1_000;
    this.monitor = new LeaderMonitor(() => cluster.running());
    this.load = new WriteLoad(cluster.endpoints(), options.writers ?? 8);
  }

  static async start(options: ScenarioOptions): Promise<MembershipScenario> {
    const cluster = await MembershipCluster.start(options);
    return new MembershipScenario(cluster, options);
  }

  private event(line: string): void {
    this.cluster.event(line);
  }

  /**
   * Runs `action` (which returns its detail line) and measures its window: see the module comment.
   * `leaderAmong`: the ids a leader must be among for progress (default: the expected voters after the action).
   */
  async measure(name: string, action: () => Promise<string>, leaderAmong?: () => ReadonlySet<number>): Promise<OpFigures> {
    this.event(`${name}: begins`);
    const from = performance.now();
    const detail = await action();
    const done = performance.now();
    this.load.setEndpoints(this.cluster.endpoints());
    const among = leaderAmong?.() ?? new Set(this.cluster.voters);
    const deadline = done + this.progressTimeoutMs;
    while (!(this.monitor.leaderSince(done, among) && this.load.acksSince(done) >= this.minAcks)) {
      if (performance.now() > deadline) {
        throw new Error(
          `${name} (${detail}): no progress within ${this.progressTimeoutMs} ms of its completion ` +
            `(a leader among ${[...among].join(',')}: ${this.monitor.leaderSince(done, among)}; writes acknowledged since: ${this.load.acksSince(done)}; ` +
            `client failures so far ${this.load.failures}: ${this.load.failureMessages.join(' | ')})`,
        );
      }
      await sleep(20);
    }
    await sleep(this.settleMs);
    const to = performance.now();
    const figures: OpFigures = {
      name,
      detail,
      actionMs: done - from,
      windowMs: to - from,
      writeGapMs: this.load.longestGap(from, to),
      leaderless: this.monitor.leaderless(from, to),
      leaders: this.monitor.leadersSeen(from, to),
      acks: this.load.acksSince(from) - this.load.acksSince(to),
      voters: [...this.cluster.voters].sort((a, b) => a - b),
    };
    this.event(formatOp(figures));
    return figures;
  }

  /** Steady load for `ms`, measured like an operation (a baseline). */
  baseline(ms: number): Promise<OpFigures> {
    return this.measure('baseline', async () => {
      await sleep(ms);
      return `${ms} ms of load, no change`;
    });
  }

  /** A running voter to join through: the first follower (a redirect to the leader on the way), else any. */
  private async joinUrl(): Promise<string> {
    const leader = await this.cluster.leader();
    const candidates = this.cluster.running().filter((n) => this.cluster.voters.has(n.id));
    return (candidates.find((n) => n.id !== leader?.id) ?? candidates[0]!).url;
  }

  private async joinAndPromote(ids: readonly number[], timeoutMs: number): Promise<void> {
    const via = await this.joinUrl();
    for (const id of ids) await this.cluster.join(id, via);
    await Promise.all(
      ids.map(async (id) => {
        await this.cluster.waitForVoter(id, timeoutMs);
        this.event(`node ${id} is a voter`);
      }),
    );
    for (const id of ids) this.cluster.voters.add(id);
  }

  /** `tsraft node --join` processes for `count` new ids, started together; each becomes a voter. */
  add(count = 1, timeoutMs = 30_000): Promise<OpFigures> {
    const ids = Array.from({ length: count }, () => this.cluster.newId());
    return this.measure(count === 1 ? 'add learner + promote' : `add ${count} learners + promote`, async () => {
      await this.joinAndPromote(ids, timeoutMs);
      return `node${ids.length > 1 ? 's' : ''} ${ids.join(', ')} joined with --join and became voter${ids.length > 1 ? 's' : ''}`;
    });
  }

  private async remove(id: number, timeoutMs: number): Promise<void> {
    const change = await this.cluster.client(timeoutMs).removeMember(id);
    this.event(`node ${id} removed at index ${change.index}: ${describeMembers(change)}`);
    this.cluster.voters.delete(id);
  }

  /**
   * DELETE /v1/members/{leader}: waits for a leader among the others, then stops the removed
   * process (SIGTERM), all inside the window.
   */
  removeLeader(timeoutMs = 15_000): Promise<OpFigures> {
    return this.measure('remove leader', async () => {
      const leader = await this.cluster.waitForLeader(this.cluster.voters, timeoutMs);
      await this.remove(leader.id, timeoutMs);
      const next = await this.cluster.waitForLeader(this.cluster.voters, timeoutMs);
      this.event(`new leader: node ${next.id}`);
      this.load.setEndpoints(this.cluster.endpoints());
      await leader.stop();
      this.event(`removed node ${leader.id}'s process stopped`);
      return `leader ${leader.id} removed, node ${next.id} leads; its process stopped`;
    });
  }

  /** A running voter that is not the leader (the lowest id). */
  private async follower(): Promise<KvNodeProcess> {
    const leader = await this.cluster.waitForLeader(this.cluster.voters, this.progressTimeoutMs);
    const followers = this.cluster.running().filter((n) => this.cluster.voters.has(n.id) && n.id !== leader.id);
    const follower = followers.sort((a, b) => a.id - b.id)[0];
    if (follower === undefined) throw new Error(`no follower among voters ${[...this.cluster.voters].join(',')}`);
    return follower;
  }

  /** DELETE /v1/members/{follower}, then stops its process. */
  removeFollower(timeoutMs = 15_000): Promise<OpFigures> {
    return this.measure('remove follower', async () => {
      const follower = await this.follower();
      await this.remove(follower.id, timeoutMs);
      this.load.setEndpoints(this.cluster.endpoints());
      await follower.stop();
      return `follower ${follower.id} removed; its process stopped`;
    });
  }

  /** kill -9 of a follower, DELETE /v1/members/{it}, a new node (new id) joins and becomes a voter. */
  replaceKilled(timeoutMs = 30_000): Promise<OpFigures> {
    const newId = this.cluster.newId();
    return this.measure('replace killed node', async () => {
      const victim = await this.follower();
      await victim.kill9();
      this.event(`node ${victim.id} killed (SIGKILL)`);
      await this.remove(victim.id, timeoutMs);
      this.load.setEndpoints(this.cluster.endpoints());
      await this.joinAndPromote([newId], timeoutMs);
      return `follower ${victim.id} killed (SIGKILL) and removed; node ${newId} joined and became a voter`;
    });
  }

  /** kill -9 of the leader, no membership change; the node is restarted (from its data) after the window. */
  async kill9Leader(timeoutMs = 15_000): Promise<OpFigures> {
    let victim: KvNodeProcess | undefined;
    const figures = await this.measure(
      'kill -9 leader (no change)',
      async () => {
        victim = await this.cluster.waitForLeader(this.cluster.voters, timeoutMs);
        await victim.kill9();
        this.event(`node ${victim.id} killed (SIGKILL)`);
        return `leader ${victim.id} killed (SIGKILL), restarted after the window`;
      },
      () => new Set([...this.cluster.voters].filter((id) => id !== victim?.id)),
    );
    victim!.start();
    await this.cluster.waitForCaughtUp(timeoutMs * 2);
    this.event(`node ${victim!.id} restarted and caught up`);
    return figures;
  }

  /** Stops the load and the monitor; every acknowledged write read back; every member's view compared. */
  async finish(): Promise<{ verify: VerifyReport; agreement: string[]; acked: number; failures: number }> {
    await this.load.stop();
    await this.monitor.stop();
    this.event(`load stopped: ${this.load.acked.size} writes acknowledged, ${this.load.failures} failed (${this.load.failureMessages.join(' | ')})`);
    const agreement = await this.cluster.waitForAgreement(10_000);
    const verify = await this.load.verify(this.cluster.endpoints());
    this.event(`verified: ${verify.checked} keys read back, ${verify.lostCount} lost${verify.lost.length > 0 ? `: ${verify.lost.join('; ')}` : ''}`);
    return { verify, agreement, acked: this.load.acked.size, failures: this.load.failures };
  }

  /** Stops the load, the monitor (if still running) and every node; removes the data directory. */
  async stop(): Promise<void> {
    await this.load.stop();
    await this.monitor.stop();
    await this.cluster.stop();
  }
}
