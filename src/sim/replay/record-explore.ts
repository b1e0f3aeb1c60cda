/**
 * Records one explorer seed for the replay page: runs exactly what `exploreSeed` runs for the same
 * options (it *is* `exploreSeed`, given a recorder), and collects node frames, message spans, link
 * changes and the world's trace as they happen. The recorder only reads, so the run's digest is
 * the one `npm run explore -- --seed S` reports. Runs in Node and in a browser alike.
 */
import { INJECTABLE_BUGS, type InjectedBug } from '../../core/bugs.js';
import type { Message, NodeId } from '../../core/messages.js';
import type { RaftStatus } from '../../core/raft.js';
import { DRIVER_BUGS, type DriverBug } from '../../driver/ready-driver.js';
import { exploreSeed, type ExploreOptions, type ExploreResult } from '../explorer/explorer.js';
import type { ExplorerNode } from '../explorer/explorer-node.js';
import { liveNodeState, type NodeFinal, type World, type WorldRecorder, type WorldShape } from '../explorer/world.js';
import type { DropReason, SimNetworkObserver } from '../sim-network.js';
import { TAIL_ENTRIES, type LinkChange, type MessageSpan, type NodeFrame, type Recording, type ReplaySource, type RunOutcome, type TraceLine } from './recording.js';

export type ExploreSource = ReplaySource & { readonly kind: 'explore' };

export interface RecordHooks {
  /** Called now and then with the run's virtual time (for a progress bar). */
  onProgress?(virtualMs: number): void;
}

/** At most this many trace lines are kept (then `traceTruncated`). */
export const TRACE_LINES_MAX = 20_000;

/** The explorer options a replay source stands for (bug names split into core and driver bugs). */
export function exploreOptionsFor(source: ExploreSource): ExploreOptions {
  const bugs = new Set<InjectedBug>();
  const driverBugs = new Set<DriverBug>();
  for (const name of source.bugs ?? []) {
    if ((INJECTABLE_BUGS as readonly string[]).includes(name)) bugs.add(name as InjectedBug);
    else if ((DRIVER_BUGS as readonly string[]).includes(name)) driverBugs.add(name as DriverBug);
    else throw new Error(`unknown bug "${name}"; known: ${[...INJECTABLE_BUGS, ...DRIVER_BUGS].join(', ')}`);
  }
  return {
    ...(source.nodeCounts === undefined ? {} : { nodeCounts: source.nodeCounts }),
    ...(source.faultSeconds === undefined ? {} : { faultSeconds: source.faultSeconds }),
    bugs,
    driverBugs,
    ...(source.changeRefusals === false ? { changeRefusals: false } : {}),
  };
}

/** The replay source of one explorer seed run with `options` (what `npm run explore` links to). */
export function exploreSourceFor(seed: number, options: ExploreOptions): ExploreSource {
  const bugs = [...(options.bugs ?? []), ...(options.driverBugs ?? [])];
  return {
    kind: 'explore',
    seed,
    ...(options.nodeCounts === undefined ? {} : { nodeCounts: [...options.nodeCounts] }),
    ...(options.faultSeconds === undefined ? {} : { faultSeconds: options.faultSeconds }),
    ...(bugs.length === 0 ? {} : { bugs }),
    ...(options.changeRefusals === false ? { changeRefusals: false } : {}),
  };
}

/** The outcome `finalStateLine` needs, of an explorer result (the line `npm run explore -- --seed S` prints). */
export function exploreOutcome(result: ExploreResult): RunOutcome {
  return {
    ...(result.invariant === undefined ? {} : { invariant: result.invariant }),
    ...(result.message === undefined ? {} : { message: result.message }),
    virtualMs: result.virtualMs,
    digest: result.digest,
    finalNodes: result.finalNodes.map((f) => ({ t: result.virtualMs, ...f })),
  };
}

/** A one-line description of a world's shape. */
export function describeShape(seed: number, shape: WorldShape): string {
  const parts = [
    `explorer seed ${seed}: ${shape.nodes} nodes${shape.spares > 0 ? ` + ${shape.spares} spare${shape.spares > 1 ? 's' : ''}` : ''}`,
    shape.faultMix,
    `loss ${shape.lossPerMille}‰`,
    `dup ${shape.duplicatePerMille}‰`,
    `delay ≤${shape.delayMaxMs} ms`,
    `${shape.clients} clients`,
    shape.readMode,
    shape.preVote ? 'pre-vote' : 'no pre-vote',
  ];
  if (shape.forger) parts.push('forger');
  if (shape.operator) parts.push('operator');
  return parts.join(', ');
}

/** The node a violation's message names first (`n3`, `node 3`, `server 3`), if any. */
export function violationNodeOf(message: string | undefined): NodeId | undefined {
  if (message === undefined) return undefined;
  const match = /\bn(\d+)\b|\bnodes? (\d+)\b|\bserver[= ](\d+)\b|\b(?:leader|follower|candidate) (\d+)\b/.exec(message);
  if (match === null) return undefined;
  return Number(match[1] ?? match[2] ?? match[3] ?? match[4]);
}

/**
 * The state of every directed link among nodes 0..n-1 (all up at first) and its changes. A change
 * undone at the same instant (a heal right before a new partition) is no change.
 */
export class LinkLog {
  private readonly up: boolean[][];
  private readonly latest: number[][];
  private readonly log: (LinkChange | null)[] = [];

  constructor(readonly n: number) {
    this.up = Array.from({ length: n }, () => new Array<boolean>(n).fill(true));
    this.latest = Array.from({ length: n }, () => new Array<number>(n).fill(-1));
  }

  /** Reads every link's state now and notes what changed. */
  update(t: number, isUp: (from: NodeId, to: NodeId) => boolean): void {
    for (let from = 0; from < this.n; from++) {
      for (let to = 0; to < this.n; to++) {
        if (from === to) continue;
        const up = isUp(from, to);
        if (up === this.up[from]![to]) continue;
        this.up[from]![to] = up;
        const last = this.latest[from]![to]!;
        if (last >= 0 && this.log[last]?.t === t) {
          this.log[last] = null;
          this.latest[from]![to] = -1;
          continue;
        }
        this.latest[from]![to] = this.log.length;
        this.log.push({ t, from, to, up });
      }
    }
  }

  changes(): LinkChange[] {
    return this.log.filter((change): change is LinkChange => change !== null);
  }
}

/** A message span still being filled in. */
type Span = { -readonly [K in keyof MessageSpan]: MessageSpan[K] };

/** The recorder a World calls; collects everything a Recording holds. */
export class ExploreRecorder implements SimNetworkObserver {
  readonly network: SimNetworkObserver = this;
  private world: World | null = null;
  readonly frames: NodeFrame[] = [];
  private readonly lastFrame: (NodeFrame | undefined)[] = [];
  readonly spans: Span[] = [];
  /** Copies on their way, by their encoded bytes (shared by duplicates). */
  private readonly onTheWay = new Map<Uint8Array, Span | Span[]>();
  private linkLog = new LinkLog(0);
  readonly trace: TraceLine[] = [];
  traceTruncated = false;
  violationAt: number | undefined;
  private progressAt = 0;

  constructor(private readonly hooks: RecordHooks = {}) {}

  private get now(): number {
    return this.world!.now;
  }

  attach(world: World): void {
    this.world = world;
    const n = world.peerIds.length;
    this.linkLog = new LinkLog(n);
  }

  // ------------------------------------------------------------------ WorldRecorder

  traceLine(line: string): void {
    if (this.violationAt === undefined && (line.startsWith('FAILURE ') || line.startsWith('VIOLATION '))) this.violationAt = this.now;
    if (this.trace.length < TRACE_LINES_MAX) this.trace.push({ t: this.now, line });
    else this.traceTruncated = true;
  }

  observed(node: ExplorerNode, status: RaftStatus): void {
    const now = this.now;
    if (this.hooks.onProgress !== undefined && now - this.progressAt >= 1000) {
      this.progressAt = now;
      this.hooks.onProgress(now);
    }
    const last = this.lastFrame[node.id];
    const applied = node.appliedIndex;
    if (
      last !== undefined &&
      last.alive &&
      last.role === status.role &&
      last.term === status.term &&
      last.commit === status.commitIndex &&
      last.applied === applied &&
      last.lastIndex === status.lastIndex &&
      last.snapshotIndex === status.snapshotIndex &&
      (status.lastIndex <= status.snapshotIndex || last.tail[last.tail.length - 1] === status.lastTerm)
    ) {
      return;
    }
    this.frame(node, status, now);
  }

  started(node: ExplorerNode): void {
    const status = node.status();
    if (status !== null) this.frame(node, status, this.now);
  }

  stopped(node: ExplorerNode): void {
    const last = this.lastFrame[node.id];
    if (last === undefined || !last.alive) return;
    this.push({ ...last, t: this.now, alive: false });
  }

  private frame(node: ExplorerNode, status: RaftStatus, t: number): void {
    this.push({ t, ...liveNodeState(node, status, TAIL_ENTRIES) });
  }

  private push(frame: NodeFrame): void {
    this.frames.push(frame);
    this.lastFrame[frame.node] = frame;
  }

  // ------------------------------------------------------------------ SimNetworkObserver

  queued(message: Message, size: number, bytes: Uint8Array): void {
    const span: Span = { from: message.from, to: message.to, type: message.type, term: message.term, bytes: size, sentAt: this.now, endAt: -1, outcome: 'in-flight' };
    this.spans.push(span);
    const other = this.onTheWay.get(bytes);
    if (other === undefined) this.onTheWay.set(bytes, span);
    else if (Array.isArray(other)) other.push(span);
    else this.onTheWay.set(bytes, [other, span]);
  }

  delivered(bytes: Uint8Array): void {
    const span = this.take(bytes);
    if (span === undefined) return;
    span.endAt = this.now;
    span.outcome = 'delivered';
  }

  dropped(message: Message | null, bytes: Uint8Array | null, size: number, why: DropReason): void {
    if (bytes === null) {
      if (message === null) return;
      const now = this.now;
      this.spans.push({ from: message.from, to: message.to, type: message.type, term: message.term, bytes: size, sentAt: now, endAt: now, outcome: 'dropped', why });
      return;
    }
    const span = this.take(bytes);
    if (span === undefined) return;
    span.endAt = this.now;
    span.outcome = 'dropped';
    span.why = why;
  }

  linksChanged(): void {
    const world = this.world!;
    this.linkLog.update(world.now, (from, to) => world.network.isLinkUp(from, to));
  }

  private take(bytes: Uint8Array): Span | undefined {
    const entry = this.onTheWay.get(bytes);
    if (entry === undefined) return undefined;
    if (!Array.isArray(entry)) {
      this.onTheWay.delete(bytes);
      return entry;
    }
    const span = entry.shift();
    if (entry.length === 1) this.onTheWay.set(bytes, entry[0]!);
    return span;
  }

  // ------------------------------------------------------------------ the recording

  get links(): LinkChange[] {
    return this.linkLog.changes();
  }

  /** The recording of the run whose result is `result`. */
  finish(source: ExploreSource, result: ExploreResult): Recording {
    const end = result.virtualMs;
    const messages: MessageSpan[] = this.spans.map((s) => (s.outcome === 'in-flight' ? { ...s, endAt: end } : s));
    const finalNodes: NodeFrame[] = result.finalNodes.map((f: NodeFinal) => {
      // A node that is down keeps its last tail on the page.
      const tail = f.alive ? f.tail : (this.lastFrame[f.node]?.tail ?? []);
      return { t: end, ...f, tail };
    });
    const violationNode = violationNodeOf(result.message);
    const outcome: RunOutcome = {
      ...(result.invariant === undefined ? {} : { invariant: result.invariant, violationAt: this.violationAt ?? end }),
      ...(result.message === undefined ? {} : { message: result.message }),
      ...(violationNode === undefined ? {} : { violationNode }),
      virtualMs: end,
      digest: result.digest,
      finalNodes,
    };
    return {
      source,
      title: describeShape(result.seed, result.shape),
      nodeIds: [...this.world!.peerIds],
      frames: this.frames,
      messages,
      links: this.links,
      trace: this.trace,
      traceTruncated: this.traceTruncated,
      outcome,
    };
  }
}

/**
 * Runs one explorer seed as `exploreSeed` does (same world, same bugs, same digest) and records it.
 * Rejects only for a source it cannot run (an unknown bug) or an error that is no violation.
 */
export async function recordExplore(source: ExploreSource, hooks?: RecordHooks): Promise<Recording> {
  const options = exploreOptionsFor(source);
  const recorder = new ExploreRecorder(hooks);
  const result = await exploreSeed(source.seed, { ...options, traceLines: 0, recorder: adapt(recorder) });
  hooks?.onProgress?.(result.virtualMs);
  return recorder.finish(source, result);
}

/** The WorldRecorder face of an ExploreRecorder (its trace method has another name: `trace` is the data). */
function adapt(recorder: ExploreRecorder): WorldRecorder {
  return {
    network: recorder,
    attach: (world) => recorder.attach(world),
    trace: (line) => recorder.traceLine(line),
    observed: (node, status) => recorder.observed(node, status),
    started: (node) => recorder.started(node),
    stopped: (node) => recorder.stopped(node),
  };
}
