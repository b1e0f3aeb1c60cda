/**
 * The call and return events of one key's operations not yet linearized, as the search sees them.
 *
 * Decides which operations are candidates next: in Lowe's algorithm, those whose call precedes the
 * first remaining return event. Completed operations contribute a call and a return event to one
 * doubly linked list, sorted by time with calls before returns on ties (then by operation index,
 * for determinism); operations of unknown outcome contribute only a call, to a second list sorted
 * the same way (their return is +Infinity, so they never force an order). Linearizing an
 * operation unlinks its events (`remove`); backtracking relinks them in reverse (`restore`),
 * in the manner of dancing links.
 *
 * Event nodes are array indices: `KNOWN_HEAD` (0) heads the known list, its events follow; then
 * `unknownHead` and the unknown operations' calls. The arrays are public for the search's and the
 * pruning rules' inner loops, which walk `next` from a head.
 *
 * The search sees times only through comparisons, so the checker first replaces them with ranks
 * (`rankEventTimes`) that settle ties between equal times by recording order where it is known.
 */
import type { Operation } from './history.js';

/**
 * The operations with their call and return times replaced by ranks in the order of events, for
 * the search (other fields unchanged; unknown operations keep return +Infinity). Events are
 * ordered by time; among events at one time:
 * - if every one of them carries its recording position (`callSeq` / `returnSeq`, as
 *   HistoryRecorder records them) and no two positions are equal, by that position, each event
 *   getting a rank of its own: so an operation whose return was recorded before another's call
 *   precedes it, and one recorded after it overlaps it;
 * - otherwise all of them overlap: their calls share one rank and their returns the next one
 *   (calls before returns, the rule for hand-built histories without positions).
 * An operation precedes another in the result iff its return rank is below the other's call rank.
 */
export function rankEventTimes(ops: readonly Operation[]): Operation[] {
  const n = ops.length;
  // Event 2i is operation i's call, 2i+1 its return (completed operations only).
  let m = 0;
  for (const op of ops) m += op.outcome === 'ok' ? 2 : 1;
  const evTime = new Float64Array(m);
  const evSeq = new Float64Array(m); // NaN: not recorded
  const evId = new Int32Array(m);
  for (let i = 0, k = 0; i < n; i++) {
    const op = ops[i]!;
    evTime[k] = op.call;
    evSeq[k] = op.callSeq ?? NaN;
    evId[k++] = 2 * i;
    if (op.outcome === 'ok') {
      evTime[k] = op.return;
      evSeq[k] = op.returnSeq ?? NaN;
      evId[k++] = 2 * i + 1;
    }
  }
  const order = new Int32Array(m);
  for (let k = 0; k < m; k++) order[k] = k;
  order.sort((a, b) => evTime[a]! - evTime[b]! || evId[a]! - evId[b]!);
  const rankOf = new Float64Array(2 * n);
  let rank = 0;
  for (let start = 0; start < m; ) {
    const time = evTime[order[start]!]!;
    let end = start + 1;
    while (end < m && evTime[order[end]!] === time) end++;
    if (end - start === 1) {
      rankOf[evId[order[start]!]!] = rank++;
      start = end;
      continue;
    }
    const group = order.subarray(start, end);
    let recorded = true;
    for (let j = 0; j < group.length && recorded; j++) if (Number.isNaN(evSeq[group[j]!])) recorded = false;
    if (recorded) {
      group.sort((a, b) => evSeq[a]! - evSeq[b]!);
      for (let j = 1; j < group.length && recorded; j++) if (evSeq[group[j]!] === evSeq[group[j - 1]!]) recorded = false;
    }
    if (recorded) {
      for (let j = 0; j < group.length; j++) rankOf[evId[group[j]!]!] = rank++;
    } else {
      for (let j = 0; j < group.length; j++) {
        const e = evId[group[j]!]!;
        rankOf[e] = e % 2 === 0 ? rank : rank + 1;
      }
      rank += 2;
    }
    start = end;
  }
  return ops.map((op, i) => ({ ...op, call: rankOf[2 * i]!, return: op.outcome === 'ok' ? rankOf[2 * i + 1]! : Infinity }) as Operation);
}

/** The head node of the list of completed operations' events. */
export const KNOWN_HEAD = 0;

interface Ev {
  time: number;
  isReturn: number;
  op: number;
}

export class EventList {
  /** The head node of the list of unknown operations' calls. */
  readonly unknownHead: number;
  /** Per event node: the operation's index (-1 for the heads). */
  readonly op: Int32Array;
  readonly time: Float64Array;
  /** Per event node: 1 for a call, 0 for a return (or a head). */
  readonly isCall: Uint8Array;
  /** Per event node: the next remaining node in its list, or -1. */
  readonly next: Int32Array;
  readonly prev: Int32Array;
  private readonly callOf: Int32Array;
  /** Per operation: its return node, 0 for unknown operations. */
  private readonly returnOf: Int32Array;

  constructor(ops: readonly Operation[]) {
    const n = ops.length;
    const knownEvs: Ev[] = [];
    const unknownEvs: Ev[] = [];
    for (let i = 0; i < n; i++) {
      const op = ops[i]!;
      if (op.outcome === 'ok') {
        knownEvs.push({ time: op.call, isReturn: 0, op: i }, { time: op.return, isReturn: 1, op: i });
      } else {
        unknownEvs.push({ time: op.call, isReturn: 0, op: i });
      }
    }
    const order = (a: Ev, b: Ev): number => a.time - b.time || a.isReturn - b.isReturn || a.op - b.op;
    knownEvs.sort(order);
    unknownEvs.sort(order);
    this.unknownHead = knownEvs.length + 1;
    const size = this.unknownHead + 1 + unknownEvs.length;
    const evOp = (this.op = new Int32Array(size).fill(-1));
    const evTime = (this.time = new Float64Array(size));
    const evIsCall = (this.isCall = new Uint8Array(size));
    const next = (this.next = new Int32Array(size));
    const prev = (this.prev = new Int32Array(size));
    const callOf = (this.callOf = new Int32Array(n));
    const returnOf = (this.returnOf = new Int32Array(n)); // 0 for unknown operations
    const place = (list: Ev[], head: number): void => {
      for (let j = 0; j < list.length; j++) {
        const e = head + 1 + j;
        const ev = list[j]!;
        evOp[e] = ev.op;
        evTime[e] = ev.time;
        evIsCall[e] = ev.isReturn === 0 ? 1 : 0;
        if (ev.isReturn === 1) returnOf[ev.op] = e;
        else callOf[ev.op] = e;
      }
      for (let e = head; e <= head + list.length; e++) {
        next[e] = e < head + list.length ? e + 1 : -1;
        prev[e] = e === head ? -1 : e - 1;
      }
    };
    place(knownEvs, KNOWN_HEAD);
    place(unknownEvs, this.unknownHead);
  }

  /** Unlinks operation i's call and return events (it has been linearized). */
  remove(i: number): void {
    this.unlink(this.callOf[i]!);
    const ret = this.returnOf[i]!;
    if (ret !== 0) this.unlink(ret);
  }

  /** Relinks operation i's events, undoing `remove(i)` (the latest removal not yet restored). */
  restore(i: number): void {
    const ret = this.returnOf[i]!;
    if (ret !== 0) this.relink(ret);
    this.relink(this.callOf[i]!);
  }

  private unlink(e: number): void {
    const p = this.prev[e]!;
    const nx = this.next[e]!;
    this.next[p] = nx;
    if (nx !== -1) this.prev[nx] = p;
  }

  private relink(e: number): void {
    const p = this.prev[e]!;
    const nx = this.next[e]!;
    this.next[p] = e;
    if (nx !== -1) this.prev[nx] = e;
  }
}
