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
 */
import type { Operation } from './history.js';

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
