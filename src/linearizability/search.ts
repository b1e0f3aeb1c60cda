/**
 * The search for one key: Wing & Gong's depth-first search for a linearization, as improved by
 * Lowe ("Testing for linearizability", 2016). Decides whether one key's operations are
 * linearizable and, if not, how far the search got.
 *
 * At each search node the candidates are, as in Lowe's algorithm, the operations whose call
 * precedes the first remaining return event R (calls sort before returns on ties: `EventList`) and
 * whose step is legal in the current state (`KeyModel.step`). The search tries them one by one,
 * each leading to a child node unless the memo has seen (linearized set, state) before (`Memo`);
 * when none is left it backtracks. It succeeds as soon as every operation with a known outcome is
 * linearized; unknown operations not linearized by then are taken to have never happened.
 *
 * What keeps the search small without changing its verdict:
 *
 * - Read-only reduction. If a candidate is a completed read (a get, or a cas that reported
 *   failure) that is legal in the current state, it is linearized at once and is the node's only
 *   candidate. This loses nothing: given any linearization extending the current prefix, moving
 *   that read to right after the prefix keeps every step legal (it reads the state the prefix
 *   leaves and changes nothing) and respects real time (every operation that returned before the
 *   read was called is already in the prefix, or the read would not be a candidate).
 * - Candidate order (a heuristic only; every candidate is still tried). First the writes whose
 *   resulting state is exactly, then a prefix of, the value some pending read wants; then the
 *   operation whose return R is next, which must be linearized before anything called after R
 *   (linearizing "just in time"); then the other completed operations in call order; then the
 *   operations of unknown outcome, which most often never need to be tried at all.
 * - Dead-end tests (`DeadEnds`): a child is abandoned at once if some remaining operation needs a
 *   state that can no longer come about (counting producers for all of them; reasoning about
 *   time and chains of appends for the next few).
 * - Unknown operations are not tried when they would change nothing, or when no remaining
 *   operation could observe them (`dropIrrelevantUnknowns`, `UnknownRelevance`).
 * - Dead states are merged (`StateTable`), and the memo lets a failed node subsume nodes that
 *   differ only by more unknown operations (`Memo`).
 *
 * The search checks the clock every `CLOCK_EVERY` steps and gives up (`timeout`) at the deadline.
 */
import { DeadEnds } from './dead-ends.js';
import { EventList, KNOWN_HEAD } from './events.js';
import type { Operation } from './history.js';
import { Memo, mix32, type MemoEntry } from './memo.js';
import { ABSENT, DEAD, KeyModel } from './model.js';
import { dropIrrelevantUnknowns, UnknownRelevance } from './unknown-ops.js';

/**
 * The verdict for one key. For `illegal`: the operations searched (the unknown ones that can be
 * left out already dropped), their model, and the longest linearizable prefix the search reached,
 * as indices into `ops` in linearization order, with the state id after it.
 */
export type KeyOutcome =
  | { kind: 'ok' }
  | { kind: 'timeout' }
  | { kind: 'illegal'; ops: readonly Operation[]; model: KeyModel; prefix: readonly number[]; stateAfterPrefix: number };

/** How many search steps between clock reads. */
const CLOCK_EVERY = 256;

/** One search node on the stack: its candidates, which one is taken, the state before it. */
interface Frame {
  readonly ops: number[];
  readonly after: number[];
  index: number;
  readonly state: number;
  readonly forced: boolean;
  /** The memo entry of the child being searched. */
  child: MemoEntry | undefined;
}

/** Searches for a linearization of one key's operations (any order), until `deadline` (a `performance.now()` time). */
export function checkKey(all: readonly Operation[], deadline: number): KeyOutcome {
  if (performance.now() >= deadline) return { kind: 'timeout' };

  const ops = dropIrrelevantUnknowns(all);
  const n = ops.length;
  let knownRemaining = 0;
  for (const op of ops) if (op.outcome === 'ok') knownRemaining++;
  if (knownRemaining === 0) return { kind: 'ok' };

  const model = new KeyModel(ops);
  const events = new EventList(ops);
  const { next, op: evOp, time: evTime, isCall: evIsCall, unknownHead: UNKNOWN_HEAD } = events;

  // Per-operation random words for the incremental bitset hash.
  const zobrist = new Uint32Array(n);
  // (Zero for unknown operations: see Memo.)
  for (let i = 0; i < n; i++) if (model.known[i] === 1) zobrist[i] = mix32(mix32(i + 0x2545f491) ^ 0x6a09e667);
  const bits = new Uint32Array((n + 31) >>> 5);
  let hash = 0;
  const knownMask = new Uint32Array(bits.length);
  for (let i = 0; i < n; i++) if (model.known[i] === 1) knownMask[i >>> 5] = knownMask[i >>> 5]! | (1 << (i & 31));
  const memo = new Memo(knownMask);
  const stateValues = model.states.values;

  let state = ABSENT;
  const stack: Frame[] = [];

  const deadEnds = new DeadEnds(ops, model, events, bits); // (interns more states)
  const relevance = new UnknownRelevance(model, events, ops);

  const apply = (i: number, after: number): void => {
    bits[i >>> 5] = bits[i >>> 5]! | (1 << (i & 31));
    hash = (hash ^ zobrist[i]!) >>> 0;
    state = after;
    if (model.known[i] === 1) knownRemaining--;
    events.remove(i);
    deadEnds.applied(i);
    relevance.applied(i);
  };
  const undo = (i: number, before: number): void => {
    relevance.undone(i);
    deadEnds.undone(i);
    bits[i >>> 5] = bits[i >>> 5]! & ~(1 << (i & 31));
    hash = (hash ^ zobrist[i]!) >>> 0;
    state = before;
    if (model.known[i] === 1) knownRemaining++;
    events.restore(i);
  };
  /** Whether (linearized set + i, after) is new; records it if so. */
  const fresh = (i: number, after: number): MemoEntry | undefined => {
    bits[i >>> 5] = bits[i >>> 5]! | (1 << (i & 31));
    const entry = memo.add((hash ^ zobrist[i]!) >>> 0, bits, after);
    bits[i >>> 5] = bits[i >>> 5]! & ~(1 << (i & 31));
    return entry;
  };

  // Scratch space for building a node's candidates.
  const rank: number[] = [];
  const wanted: number[] = [];

  /** The current node's candidates, best first (see above), with their resulting states. */
  const candidates = (): Frame => {
    const ops: number[] = [];
    const after: number[] = [];
    wanted.length = 0;
    let deadlineOp = -1;
    let e = next[KNOWN_HEAD]!;
    for (; e !== -1 && evIsCall[e] === 1; e = next[e]!) {
      const i = evOp[e]!;
      const a = model.step(state, i);
      if (a === -1) {
        const w = model.wants[i]!;
        if (w >= 0) wanted.push(w);
        continue;
      }
      if (model.readOnly[i] === 1) return { ops: [i], after: [a], index: 0, state, forced: true, child: undefined };
      ops.push(i);
      after.push(a);
    }
    // e is now the first remaining return (it exists: some known operation remains).
    const bound = e === -1 ? Infinity : evTime[e]!;
    if (e !== -1) deadlineOp = evOp[e]!;
    const knownCount = ops.length;
    let blindIsNear: boolean | undefined;
    for (let u = next[UNKNOWN_HEAD]!; u !== -1 && evTime[u]! <= bound; u = next[u]!) {
      const i = evOp[u]!;
      // An unknown operation that would leave the state as it is (a cas whose expected value
      // does not match, say) is never worth taking now: whatever follows it could follow
      // without it, the operation being left out.
      const a = model.step(state, i);
      if (a === state) continue;
      if (!relevance.observed(i) && !(blindIsNear ??= relevance.blindNear(state))) continue;
      ops.push(i);
      after.push(a);
    }
    if (ops.length > 1) {
      rank.length = 0;
      for (let j = 0; j < ops.length; j++) {
        const i = ops[j]!;
        let r = j < knownCount ? 3 : 4;
        if (i === deadlineOp) r = 2;
        if (wanted.length > 0 && after[j] !== DEAD) {
          const a = after[j]!;
          const s = stateValues[a] ?? null;
          for (const w of wanted) {
            if (w === a) {
              r = 0;
              break;
            }
            const ws = stateValues[w] ?? null;
            if (ws !== null && s !== null && ws.startsWith(s)) r = Math.min(r, 1);
          }
        }
        rank.push(r * 0x10000 + j);
      }
      const perm = rank.map((_, j) => j).sort((x, y) => rank[x]! - rank[y]!);
      return { ops: perm.map((j) => ops[j]!), after: perm.map((j) => after[j]!), index: -1, state, forced: false, child: undefined };
    }
    return { ops, after, index: -1, state, forced: false, child: undefined };
  };

  // The longest prefix seen: captured when the search turns back from a new maximum depth (or
  // finds a child hopeless).
  let best: number[] = [];
  let bestState = ABSENT;
  let grewSinceBacktrack = false;

  /** Descends into the first untried candidate of `frame` from `from` on; false if none. */
  const descend = (frame: Frame, from: number): boolean => {
    for (let j = from; j < frame.ops.length; j++) {
      const i = frame.ops[j]!;
      const a = frame.after[j]!;
      const entry = fresh(i, a);
      if (entry === undefined) continue;
      apply(i, a);
      if (deadEnds.hopeless(state)) {
        entry.finished = true;
        if (stack.length + 1 > best.length) {
          best = [...stack.map((f) => f.ops[f.index]!), i];
          bestState = a;
        }
        undo(i, frame.state);
        continue;
      }
      frame.index = j;
      frame.child = entry;
      stack.push(frame);
      return true;
    }
    return false;
  };

  let steps = 0;
  while (knownRemaining > 0) {
    if (++steps % CLOCK_EVERY === 0 && performance.now() >= deadline) return { kind: 'timeout' };
    // (A forced read-only step is the node's only candidate; the memo may still have seen the
    // child through another path, in which case it already failed and so does this node.)
    if (descend(candidates(), 0)) {
      grewSinceBacktrack = true;
      continue;
    }

    // Dead end: backtrack to the nearest node with an untried candidate.
    if (grewSinceBacktrack && stack.length > best.length) {
      best = stack.map((f) => f.ops[f.index]!);
      bestState = state;
    }
    grewSinceBacktrack = false;
    let resumed = false;
    while (!resumed) {
      const top = stack.pop();
      if (top === undefined) {
        return { kind: 'illegal', ops, model, prefix: best, stateAfterPrefix: bestState };
      }
      top.child!.finished = true;
      undo(top.ops[top.index]!, top.state);
      if (top.forced) continue;
      if (++steps % CLOCK_EVERY === 0 && performance.now() >= deadline) return { kind: 'timeout' };
      resumed = descend(top, top.index + 1);
    }
    grewSinceBacktrack = true;
  }
  return { kind: 'ok' };
}
