/**
 * Indexes over a Recording, built once per run, so that the page finds what is true at any virtual
 * time by binary search instead of scanning: each node's frame, each link's state, the messages in
 * flight (by time buckets), the trace line, and the sorted times of every event (for stepping).
 */
import type { LinkChange, MessageSpan, NodeFrame, Recording } from '../../src/sim/replay/recording.js';

/** How long (virtual ms) a dropped message's mark may linger after its end, at most. */
export const DROP_LINGER_MAX_MS = 200;
/** Width of a message bucket (virtual ms). */
const BUCKET_MS = 50;
/** Messages spanning more buckets than this are kept in one list that is always scanned. */
const LONG_SPAN_BUCKETS = 40;

/** The index of the last element with key(element) ≤ t, or -1. */
export function lastAtOrBefore<T>(items: readonly T[], t: number, key: (item: T) => number): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (key(items[mid]!) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** The index of the first number > t in a sorted array, or the array's length. */
function firstAfter(sorted: Float64Array, t: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export interface Pair {
  readonly a: number;
  readonly b: number;
  /** Changes of a → b and of b → a, each sorted by time. */
  readonly ab: readonly LinkChange[];
  readonly ba: readonly LinkChange[];
}

export interface LinkState {
  readonly a: number;
  readonly b: number;
  readonly abUp: boolean;
  readonly baUp: boolean;
}

export class RecordingIndex {
  readonly end: number;
  /** Each node's frames (in nodeIds order), sorted by time. */
  private readonly framesByNode: readonly (readonly NodeFrame[])[];
  private readonly pairs: readonly Pair[];
  /** Every distinct event time, sorted. */
  readonly eventTimes: Float64Array;
  private readonly buckets: number[][];
  private readonly longSpans: number[];
  /** Message types in order of first appearance, with counts. */
  readonly messageTypes: readonly { readonly type: string; readonly count: number }[];

  constructor(readonly recording: Recording) {
    const { nodeIds, frames, messages, links, trace, outcome } = recording;
    this.end = Math.max(outcome.virtualMs, 0);
    const position = new Map(nodeIds.map((id, i) => [id, i]));
    const byNode: NodeFrame[][] = nodeIds.map(() => []);
    for (const frame of frames) byNode[position.get(frame.node) ?? -1]?.push(frame);
    this.framesByNode = byNode;

    const pairs = new Map<string, { a: number; b: number; ab: LinkChange[]; ba: LinkChange[] }>();
    for (const change of links) {
      const a = Math.min(change.from, change.to);
      const b = Math.max(change.from, change.to);
      const key = `${a}-${b}`;
      let pair = pairs.get(key);
      if (pair === undefined) pairs.set(key, (pair = { a, b, ab: [], ba: [] }));
      (change.from === a ? pair.ab : pair.ba).push(change);
    }
    for (const pair of pairs.values()) {
      pair.ab.sort((x, y) => x.t - y.t);
      pair.ba.sort((x, y) => x.t - y.t);
    }
    this.pairs = [...pairs.values()];

    const times: number[] = [0, this.end];
    for (const f of frames) times.push(f.t);
    for (const m of messages) times.push(m.sentAt, m.endAt);
    for (const l of links) times.push(l.t);
    for (const line of trace) times.push(line.t);
    if (outcome.violationAt !== undefined) times.push(outcome.violationAt);
    const sorted = Float64Array.from(times.filter((t) => Number.isFinite(t))).sort();
    let unique = 0;
    for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[unique - 1]) sorted[unique++] = sorted[i]!;
    this.eventTimes = sorted.slice(0, unique);

    const bucketCount = Math.floor(this.end / BUCKET_MS) + 2;
    this.buckets = Array.from({ length: bucketCount }, () => []);
    this.longSpans = [];
    const counts = new Map<string, number>();
    messages.forEach((m, i) => {
      counts.set(m.type, (counts.get(m.type) ?? 0) + 1);
      const first = Math.max(0, Math.floor(m.sentAt / BUCKET_MS));
      const last = Math.min(bucketCount - 1, Math.floor((m.endAt + (m.outcome === 'dropped' ? DROP_LINGER_MAX_MS : 0)) / BUCKET_MS));
      if (last - first > LONG_SPAN_BUCKETS) this.longSpans.push(i);
      else for (let b = first; b <= last; b++) this.buckets[b]!.push(i);
    });
    this.messageTypes = [...counts].map(([type, count]) => ({ type, count }));
  }

  /** Each node's frame at time t (null before its first frame), in nodeIds order. */
  nodesAt(t: number): (NodeFrame | null)[] {
    return this.framesByNode.map((frames) => {
      const i = lastAtOrBefore(frames, t, (f) => f.t);
      return i < 0 ? null : frames[i]!;
    });
  }

  /** A key that changes exactly when some node's frame at t changes (for memoizing). */
  frameKey(t: number): string {
    return this.framesByNode.map((frames) => lastAtOrBefore(frames, t, (f) => f.t)).join(',');
  }

  /** A key that changes exactly when some link's state at t changes (for memoizing). */
  linkKey(t: number): string {
    return this.pairs.map((pair) => `${lastAtOrBefore(pair.ab, t, (c) => c.t)}/${lastAtOrBefore(pair.ba, t, (c) => c.t)}`).join(',');
  }

  /** The links with at least one direction down at t. */
  linksDownAt(t: number): LinkState[] {
    const down: LinkState[] = [];
    for (const pair of this.pairs) {
      const ab = lastAtOrBefore(pair.ab, t, (c) => c.t);
      const ba = lastAtOrBefore(pair.ba, t, (c) => c.t);
      const abUp = ab < 0 ? true : pair.ab[ab]!.up;
      const baUp = ba < 0 ? true : pair.ba[ba]!.up;
      if (!abUp || !baUp) down.push({ a: pair.a, b: pair.b, abUp, baUp });
    }
    return down;
  }

  /** The messages on their way at t, and the dropped ones whose mark still lingers (endAt ≤ t < endAt + linger). */
  messagesAt(t: number, lingerMs: number): MessageSpan[] {
    const { messages } = this.recording;
    const bucket = Math.min(this.buckets.length - 1, Math.max(0, Math.floor(t / BUCKET_MS)));
    const shown: MessageSpan[] = [];
    const consider = (i: number): void => {
      const m = messages[i]!;
      if (m.sentAt > t) return;
      if (t < m.endAt || (m.outcome === 'dropped' && t < m.endAt + lingerMs) || (m.outcome === 'in-flight' && t <= m.endAt)) shown.push(m);
    };
    for (const i of this.buckets[bucket]!) consider(i);
    for (const i of this.longSpans) consider(i);
    return shown;
  }

  /** The next event time after t (or the end). */
  nextEvent(t: number): number {
    const i = firstAfter(this.eventTimes, t);
    return i < this.eventTimes.length ? this.eventTimes[i]! : this.end;
  }

  /** The last event time before t (or 0). */
  previousEvent(t: number): number {
    const i = firstAfter(this.eventTimes, t) - 1;
    // eventTimes[i] ≤ t: step to the one before it when it is t itself.
    let j = i;
    while (j >= 0 && this.eventTimes[j]! >= t) j--;
    return j >= 0 ? this.eventTimes[j]! : 0;
  }

  /** The index of the last trace line at or before t (-1 before the first). */
  traceIndexAt(t: number): number {
    return lastAtOrBefore(this.recording.trace, t, (line) => line.t);
  }
}

/** Milliseconds as the page shows them: "1234.5 ms" below 10 s, "12.35 s" above. */
export function formatMs(ms: number): string {
  if (ms < 10_000) return `${ms.toFixed(ms < 100 ? 2 : 1)} ms`;
  return `${(ms / 1000).toFixed(3)} s`;
}
