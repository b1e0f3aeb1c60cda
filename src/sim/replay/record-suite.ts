/**
 * Records one 6.824 suite test on one seed for the replay page: runs `runSuiteTest` in virtual time
 * exactly as `npm run suite -- --part P --run Name --seed S` does, with a recorder on its clusters
 * that only reads: every server's state after each Ready (frames), every Raft RPC's request and
 * reply (spans; labrpc has no per-link queues, so a span is one call's trip), connects and
 * disconnects (a server's links all go down or up together) and the tester's own lines. The
 * kvraft clerks' RPCs are not recorded as messages (a clerk is no node on the ring).
 *
 * The tests live in test/suite/ and are passed in (nothing in src/ imports test/).
 */
import { messageSize } from '../../codec/index.js';
import type { Message } from '../../core/messages.js';
import type { RaftStatus } from '../../core/raft.js';
import type { Cluster, ClusterRecorder } from '../../harness/cluster.js';
import type { HarnessServer } from '../../harness/runtime-server.js';
import { runSuiteTest, type SuiteTest } from '../../harness/suite.js';
import type { CallWatch, NetworkObserver } from '../network.js';
import { SimNode } from '../sim-node.js';
import type { RecordHooks } from './record-explore.js';
import { LinkLog, violationNodeOf } from './record-explore.js';
import { TAIL_ENTRIES, type LinkChange, type MessageSpan, type NodeFrame, type Recording, type ReplaySource, type RunOutcome, type TraceLine } from './recording.js';

export type SuiteSource = ReplaySource & { readonly kind: 'suite' };

/** At most this many trace lines are kept (then `traceTruncated`). */
const TRACE_LINES_MAX = 20_000;

/** The test a suite source names, from the suite passed in (test/suite/index.ts SUITE), or an error message. */
export function suiteTestFor(suite: Readonly<Record<string, readonly SuiteTest[]>>, source: SuiteSource): SuiteTest | string {
  const tests = suite[source.part.toUpperCase()];
  if (tests === undefined) return `unknown part "${source.part}"; known parts: ${Object.keys(suite).join(', ')}`;
  const test = tests.find((t) => t.name === source.name);
  return test ?? `unknown test "${source.name}" in part ${source.part}; known: ${tests.map((t) => t.name).join(', ')}`;
}

/** A message span still being filled in. */
type Span = { -readonly [K in keyof MessageSpan]: MessageSpan[K] };

function isRaftMessage(m: unknown): m is Message {
  const x = m as { type?: unknown; from?: unknown; to?: unknown };
  return typeof x.type === 'string' && typeof x.from === 'number' && typeof x.to === 'number';
}

class SuiteRecorder implements ClusterRecorder, NetworkObserver<Message, Message> {
  readonly network: NetworkObserver<Message, Message> = this;
  private cluster: Cluster | null = null;
  private n = 0;
  readonly frames: NodeFrame[] = [];
  private readonly lastFrame: (NodeFrame | undefined)[] = [];
  readonly spans: Span[] = [];
  private linkLog = new LinkLog(0);
  readonly trace: TraceLine[] = [];
  traceTruncated = false;
  title: string | undefined;
  private progressAt = 0;
  private readonly earlierLinks: LinkChange[] = [];

  constructor(private readonly hooks: RecordHooks) {}

  get now(): number {
    return this.cluster?.scheduler.now() ?? 0;
  }

  get nodeCount(): number {
    return this.n;
  }

  log(line: string): void {
    if (this.title === undefined && line.endsWith(' ...')) this.title = line.slice(0, -4);
    this.traceLine(line.trim());
  }

  traceLine(line: string): void {
    if (this.trace.length < TRACE_LINES_MAX) this.trace.push({ t: this.now, line });
    else this.traceTruncated = true;
  }

  // ------------------------------------------------------------------ ClusterRecorder

  attach(cluster: Cluster): void {
    this.cluster = cluster;
    // A test's second cluster starts afresh (it reuses the ids): its links are all up, as at time 0.
    this.linkLog.update(this.now, () => true);
    if (cluster.n > this.n) {
      const before = this.linkLog;
      this.linkLog = new LinkLog(cluster.n);
      this.earlierLinks.push(...before.changes());
      this.n = cluster.n;
    }
  }

  started(i: number, server: HarnessServer): void {
    this.traceLine(`start ${i}`);
    if (server instanceof SimNode) this.frame(server, server.core.status(false), true);
  }

  crashed(i: number): void {
    this.traceLine(`crash ${i}`);
    const last = this.lastFrame[i];
    if (last !== undefined && last.alive) this.push({ ...last, t: this.now, alive: false });
  }

  connectionChanged(i: number): void {
    const cluster = this.cluster!;
    this.traceLine(`${cluster.connected[i] ? 'connect' : 'disconnect'} ${i}`);
    this.linkLog.update(this.now, (from, to) => from >= cluster.n || to >= cluster.n || (cluster.connected[from]! && cluster.connected[to]!));
  }

  observed(node: SimNode): void {
    if (this.cluster?.rafts[node.id] !== node) return;
    const now = this.now;
    if (this.hooks.onProgress !== undefined && now - this.progressAt >= 1000) {
      this.progressAt = now;
      this.hooks.onProgress(now);
    }
    const status = node.core.status(false);
    const last = this.lastFrame[node.id];
    if (
      last !== undefined &&
      last.alive &&
      last.role === status.role &&
      last.term === status.term &&
      last.commit === status.commitIndex &&
      last.applied === status.appliedIndex &&
      last.lastIndex === status.lastIndex &&
      last.snapshotIndex === status.snapshotIndex &&
      (status.lastIndex <= status.snapshotIndex || last.tail[last.tail.length - 1] === status.lastTerm)
    ) {
      return;
    }
    if (last === undefined || last.role !== status.role || last.term !== status.term) this.traceLine(`n${node.id} ${status.role} t${status.term}`);
    this.frame(node, status, true);
  }

  private frame(node: SimNode, status: RaftStatus, alive: boolean): void {
    const tail: number[] = [];
    for (let i = Math.max(status.snapshotIndex + 1, status.lastIndex - TAIL_ENTRIES + 1); i <= status.lastIndex; i++) {
      const entry = node.core.entryAt(i);
      if (entry !== undefined) tail.push(entry.term);
    }
    this.push({
      t: this.now,
      node: node.id,
      alive,
      role: status.role,
      term: status.term,
      commit: status.commitIndex,
      applied: status.appliedIndex,
      lastIndex: status.lastIndex,
      snapshotIndex: status.snapshotIndex,
      tail,
    });
  }

  private push(frame: NodeFrame): void {
    this.frames.push(frame);
    this.lastFrame[frame.node] = frame;
  }

  // ------------------------------------------------------------------ NetworkObserver

  call(request: Message): CallWatch<Message> | undefined {
    if (!isRaftMessage(request)) return undefined;
    const sentAt = this.now;
    const span: Span = { from: request.from, to: request.to, type: request.type, term: request.term, bytes: messageSize(request), sentAt, endAt: -1, outcome: 'in-flight' };
    this.spans.push(span);
    let reply: Span | null = null;
    const end = (s: Span, outcome: 'delivered' | 'dropped', why: string | undefined): void => {
      s.endAt = this.now;
      s.outcome = outcome;
      if (why !== undefined) s.why = why;
    };
    return {
      request: (outcome, why) => end(span, outcome, why),
      reply: (message) => {
        if (!isRaftMessage(message)) return;
        reply = { from: message.from, to: message.to, type: message.type, term: message.term, bytes: messageSize(message), sentAt: this.now, endAt: -1, outcome: 'in-flight' };
        this.spans.push(reply);
      },
      replyEnd: (outcome, why) => {
        if (reply !== null) end(reply, outcome, why);
      },
    };
  }

  // ------------------------------------------------------------------ the recording

  get links(): LinkChange[] {
    return [...this.earlierLinks, ...this.linkLog.changes()];
  }

  finalNodes(end: number): NodeFrame[] {
    return Array.from({ length: this.n }, (_, node) => {
      const last = this.lastFrame[node];
      return last === undefined
        ? { t: end, node, alive: false, role: 'follower', term: 0, commit: 0, applied: 0, lastIndex: 0, snapshotIndex: 0, tail: [] }
        : { ...last, t: end };
    });
  }
}

/** FNV-1a over a string, continuing from `h`. */
function fnv(h: number, text: string): number {
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A digest of a recording's events (frames, messages, links, trace) and end: equal for two runs of one test and seed. */
export function recordingDigest(recording: Omit<Recording, 'outcome'>, end: { virtualMs: number; invariant?: string | undefined; message?: string | undefined }): number {
  let h = 0x811c9dc5;
  for (const f of recording.frames) h = fnv(h, `f${f.t}|${f.node}|${f.alive ? 1 : 0}|${f.role}|${f.term}|${f.commit}|${f.applied}|${f.lastIndex}|${f.snapshotIndex}|${f.tail.join(',')};`);
  for (const m of recording.messages) h = fnv(h, `m${m.from}|${m.to}|${m.type}|${m.term}|${m.bytes}|${m.sentAt}|${m.endAt}|${m.outcome}|${m.why ?? ''};`);
  for (const l of recording.links) h = fnv(h, `l${l.t}|${l.from}|${l.to}|${l.up ? 1 : 0};`);
  for (const t of recording.trace) h = fnv(h, `t${t.t}|${t.line};`);
  return fnv(h, `e${end.virtualMs}|${end.invariant ?? ''}|${end.message ?? ''}`);
}

export interface SuiteRecordHooks extends RecordHooks {
  /** The suite runner's `--trace` lines (every message, every change of role, term or commit), for tests. */
  trace?(line: string): void;
}

/**
 * Runs one suite test on one seed in virtual time, as the suite runner does, and records it.
 * A failing test is a recording with `outcome.invariant` 'test'; this never rejects for one.
 */
export async function recordSuite(test: SuiteTest, seed: number, hooks: SuiteRecordHooks = {}): Promise<Recording> {
  const recorder = new SuiteRecorder(hooks);
  const result = await runSuiteTest(test, {
    seed,
    clock: 'virtual',
    log: (line) => recorder.log(line),
    recorder,
    ...(hooks.trace === undefined ? {} : { trace: hooks.trace }),
  });
  const end = result.clockMs;
  hooks.onProgress?.(end);
  if (result.error !== undefined) recorder.traceLine(`FAIL: ${result.error.message}`);
  const source: SuiteSource = { kind: 'suite', part: test.part, name: test.name, seed };
  const events = {
    source,
    title: `${recorder.title ?? `${test.name}${test.part}`} (seed ${seed})`,
    nodeIds: Array.from({ length: recorder.nodeCount }, (_, i) => i),
    frames: recorder.frames,
    messages: recorder.spans.map((s) => (s.outcome === 'in-flight' ? { ...s, endAt: end } : s)),
    links: recorder.links,
    trace: recorder.trace,
    traceTruncated: recorder.traceTruncated,
  };
  const invariant = result.error === undefined ? undefined : 'test';
  const message = result.error?.message;
  const violationNode = violationNodeOf(message);
  const outcome: RunOutcome = {
    ...(invariant === undefined ? {} : { invariant, violationAt: end }),
    ...(message === undefined ? {} : { message }),
    ...(violationNode === undefined ? {} : { violationNode }),
    virtualMs: end,
    digest: recordingDigest(events, { virtualMs: end, invariant, message }),
    finalNodes: recorder.finalNodes(end),
  };
  return { ...events, outcome };
}
