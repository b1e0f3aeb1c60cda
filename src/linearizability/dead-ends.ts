/**
 * Dead-end tests: whether a search node provably has no completion, so the search abandons it at
 * once instead of exploring every order of the remaining operations before backtracking.
 *
 * A remaining completed operation that must see state v (a get that returned v, a cas that swapped
 * from v or reported v: `KeyModel.wants`) can only succeed if the state is v now or some remaining
 * operation can still produce v (`KeyModel.produces`). Two tests follow from that, neither
 * changing the verdict:
 *
 * - Counting, for all remaining operations: `deadWants` counts the states wanted by some remaining
 *   operation that no remaining operation can produce. One such state is survivable only if it is
 *   the current state (the operations wanting it can still be linearized now); two never are.
 * - Reachability in time, for the next few operations that need a state (`CHAIN_LOOKAHEAD`). Say a
 *   remaining operation r needs state v (r is not linearized yet). Look at the last put, delete or
 *   successful cas before r in a linearization extending the current prefix (or at the current
 *   state if there is none): v = (the state it leaves, or the current state) + (values of remaining
 *   appends), and each of those operations precedes r, so was called no later than r returned.
 *   When v's decomposition into a start and appends is unique (`buildAppendChains`), this means:
 *   walking from v towards its chain's root through appends that remain and were called by r's
 *   return, we meet the current state, or a state that a remaining put/cas called by then leaves
 *   (or "" when the state is absent or such a delete remains).
 *
 * The search reports every step it takes and undoes (`applied`, `undone`) so that both tests are
 * maintained incrementally.
 */
import { KNOWN_HEAD, type EventList } from './events.js';
import type { Operation } from './history.js';
import { ABSENT, K_APPEND, K_CAS, K_DELETE, K_PUT, type KeyModel } from './model.js';

/** How many of the next operations that need a state the reachability test looks at. */
const CHAIN_LOOKAHEAD = 8;

const CHAIN_NONE = 0;
const CHAIN_ROOT = 1;
const CHAIN_AMBIGUOUS = 2;
const CHAIN_LINK = 3;

/** See buildAppendChains. Arrays are indexed by state id (states interned after: CHAIN_NONE). */
interface AppendChains {
  /** The number of distinct append values. */
  readonly appendCount: number;
  /** Per operation: the index of its append value, or -1 if it is not an append. */
  readonly appendOf: Int32Array;
  readonly kind: Int8Array;
  readonly parent: Int32Array;
  /** The append value (index) that leads from parent to this state. */
  readonly link: Int32Array;
  /** The id of "" (a chain of appends may start from it or from absent). */
  readonly emptyId: number;
}

/**
 * Decomposes every wanted state into "a start state followed by appends", for the reachability
 * test in `DeadEnds`. Working back from a wanted string r: if exactly one append value (among
 * this key's appends) is a suffix of r, r's chain link is that append and its parent is r without
 * it; if none is, r is a chain root (no append can have produced it); if several are, the
 * decomposition is ambiguous and r gets no link (the test gives up on it). Returns undefined if
 * some append's value is "" (every string would be ambiguous).
 */
function buildAppendChains(model: KeyModel): AppendChains | undefined {
  const n = model.ops.length;
  const appendIndex = new Map<string, number>();
  const appendOf = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    if (model.kind[i] !== K_APPEND) continue;
    const v = model.appendValue[i]!;
    if (v === '') return undefined;
    let idx = appendIndex.get(v);
    if (idx === undefined) {
      idx = appendIndex.size;
      appendIndex.set(v, idx);
    }
    appendOf[i] = idx;
  }
  const lengths = [...new Set([...appendIndex.keys()].map((v) => v.length))].sort((a, b) => a - b);
  const kind: number[] = [];
  const parent: number[] = [];
  const link: number[] = [];
  const todo: number[] = [];
  for (let i = 0; i < n; i++) if (model.wants[i]! >= 0) todo.push(model.wants[i]!);
  while (todo.length > 0) {
    const id = todo.pop()!;
    if ((kind[id] ?? CHAIN_NONE) !== CHAIN_NONE) continue;
    const r = model.states.values[id];
    if (r === null || r === undefined) {
      kind[id] = CHAIN_ROOT; // absent: no append leaves it
      continue;
    }
    let match = -1;
    let matchLen = 0;
    let matches = 0;
    for (const len of lengths) {
      if (len > r.length) break;
      const idx = appendIndex.get(r.slice(r.length - len));
      if (idx !== undefined) {
        matches++;
        match = idx;
        matchLen = len;
      }
    }
    if (matches === 0) kind[id] = CHAIN_ROOT;
    else if (matches > 1) kind[id] = CHAIN_AMBIGUOUS;
    else {
      const p = model.states.intern(r.slice(0, r.length - matchLen));
      kind[id] = CHAIN_LINK;
      parent[id] = p;
      link[id] = match;
      todo.push(p);
    }
  }
  const size = model.states.values.length;
  const chains: AppendChains = {
    appendCount: appendIndex.size,
    appendOf,
    kind: new Int8Array(size),
    parent: new Int32Array(size).fill(-1),
    link: new Int32Array(size).fill(-1),
    emptyId: model.states.intern(''),
  };
  for (let id = 0; id < size; id++) {
    chains.kind[id] = kind[id] ?? CHAIN_NONE;
    chains.parent[id] = parent[id] ?? -1;
    chains.link[id] = link[id] ?? -1;
  }
  return chains;
}

/** The dead-end tests for one key's search (see the module comment). */
export class DeadEnds {
  private readonly chains: AppendChains | undefined;
  /** The number of states known when the counters were sized (later states are never wanted). */
  private readonly stateCount: number;
  /** Per state: how many remaining operations want it. */
  private readonly wantCount: Int32Array;
  /** Per state: how many remaining operations may produce it. */
  private readonly producerCount: Int32Array;
  /** How many states are wanted by a remaining operation and produced by none. */
  private deadWants = 0;
  // For "remains and was called by T" each producer list (the put/cas/delete operations leaving a
  // given state: list v; the appends of a given value: list stateCount + append index) is sorted
  // by call time with a pointer to its first remaining operation, maintained by applied/undone.
  /** Per operation: its producer list, or -1. */
  private readonly listOf: Int32Array;
  /** List l is listOps[listStart[l] .. listStart[l+1]). */
  private readonly listStart: Int32Array;
  private readonly listOps: Int32Array;
  /** Per list: the index into listOps of its first remaining operation. */
  private readonly listFirst: Int32Array;
  /** Per operation: its index into listOps. */
  private readonly posInList: Int32Array;

  /**
   * @param linearized the search's bitset of linearized operations, which it keeps up to date
   *   (read, never written, here). Builds the append chains, which interns more states.
   */
  constructor(
    private readonly ops: readonly Operation[],
    private readonly model: KeyModel,
    private readonly events: EventList,
    private readonly linearized: Uint32Array,
  ) {
    const n = ops.length;
    const chains = (this.chains = buildAppendChains(model)); // (interns more states: before stateCount)
    const stateCount = (this.stateCount = model.states.values.length);
    const wantCount = (this.wantCount = new Int32Array(stateCount));
    const producerCount = (this.producerCount = new Int32Array(stateCount));
    const { producesStart, producesList } = model;
    for (let i = 0; i < n; i++) {
      const w = model.wants[i]!;
      if (w >= 0) wantCount[w]!++;
      for (let k = producesStart[i]!; k < producesStart[i + 1]!; k++) producerCount[producesList[k]!]!++;
    }
    for (let v = 0; v < stateCount; v++) if (wantCount[v]! > 0 && producerCount[v] === 0) this.deadWants++;

    const appendLists = chains?.appendCount ?? 0;
    const listOf = (this.listOf = new Int32Array(n).fill(-1));
    const members: number[][] = Array.from({ length: stateCount + appendLists }, () => []);
    for (let i = 0; i < n; i++) {
      const kind = model.kind[i]!;
      let list = -1;
      if (kind === K_PUT || (kind === K_CAS && (model.known[i] === 0 || model.swapped[i] === 1))) list = model.valueId[i]!;
      else if (kind === K_DELETE) list = ABSENT;
      else if (kind === K_APPEND && chains !== undefined) list = stateCount + chains.appendOf[i]!;
      if (list >= 0) {
        listOf[i] = list;
        members[list]!.push(i);
      }
    }
    const listStart = (this.listStart = new Int32Array(members.length + 1));
    for (let l = 0; l < members.length; l++) listStart[l + 1] = listStart[l]! + members[l]!.length;
    const listOps = (this.listOps = new Int32Array(listStart[members.length]!));
    const listFirst = (this.listFirst = new Int32Array(members.length));
    const posInList = (this.posInList = new Int32Array(n));
    for (let l = 0; l < members.length; l++) {
      const sorted = members[l]!.sort((a, b) => ops[a]!.call - ops[b]!.call || a - b);
      listFirst[l] = listStart[l]!;
      for (let k = 0; k < sorted.length; k++) {
        listOps[listStart[l]! + k] = sorted[k]!;
        posInList[sorted[k]!] = listStart[l]! + k;
      }
    }
  }

  /** Operation i has just been linearized (and marked in the bitset). */
  applied(i: number): void {
    const { model, wantCount, producerCount } = this;
    const w = model.wants[i]!;
    if (w >= 0 && --wantCount[w]! === 0 && producerCount[w] === 0) this.deadWants--;
    this.listApplied(i);
    for (let k = model.producesStart[i]!; k < model.producesStart[i + 1]!; k++) {
      const p = model.producesList[k]!;
      if (--producerCount[p]! === 0 && wantCount[p]! > 0) this.deadWants++;
    }
  }

  /** Operation i, the latest linearized, has just been taken back. */
  undone(i: number): void {
    const { model, wantCount, producerCount } = this;
    for (let k = model.producesStart[i]!; k < model.producesStart[i + 1]!; k++) {
      const p = model.producesList[k]!;
      if (producerCount[p]!++ === 0 && wantCount[p]! > 0) this.deadWants--;
    }
    const w = model.wants[i]!;
    if (w >= 0 && wantCount[w]!++ === 0 && producerCount[w] === 0) this.deadWants++;
    this.listUndone(i);
  }

  /** Whether the current node, in `state`, provably has no completion. */
  hopeless(state: number): boolean {
    const deadWants = this.deadWants;
    return (
      deadWants > 1 ||
      (deadWants === 1 && !((this.wantCount[state] ?? 0) > 0 && this.producerCount[state] === 0)) ||
      this.unreachableSoon(state)
    );
  }

  private isLinearized(i: number): boolean {
    return (this.linearized[i >>> 5]! & (1 << (i & 31))) !== 0;
  }

  /** The call time of the first remaining operation of list l (Infinity if none). */
  private firstCall(l: number): number {
    const k = this.listFirst[l]!;
    return k < this.listStart[l + 1]! ? this.ops[this.listOps[k]!]!.call : Infinity;
  }

  private listApplied(i: number): void {
    const l = this.listOf[i]!;
    if (l < 0 || this.posInList[i] !== this.listFirst[l]) return;
    let k = this.listFirst[l]!;
    while (k < this.listStart[l + 1]! && this.isLinearized(this.listOps[k]!)) k++;
    this.listFirst[l] = k;
  }

  private listUndone(i: number): void {
    const l = this.listOf[i]!;
    if (l >= 0 && this.posInList[i]! < this.listFirst[l]!) this.listFirst[l] = this.posInList[i]!;
  }

  /** Whether state `wanted` can still be reached, from `state`, by an operation that returned at `by`. */
  private reachable(wanted: number, by: number, state: number): boolean {
    const chains = this.chains;
    if (chains === undefined) return true;
    for (let v = wanted; ; ) {
      if (v === state || this.firstCall(v) <= by) return true;
      if (v === chains.emptyId && (state === ABSENT || this.firstCall(ABSENT) <= by)) return true;
      const kind = chains.kind[v] ?? CHAIN_NONE;
      if (kind === CHAIN_ROOT) return false;
      if (kind !== CHAIN_LINK) return true;
      if (this.firstCall(this.stateCount + chains.link[v]!) > by) return false;
      v = chains.parent[v]!;
    }
  }

  /** Whether one of the next few operations that need a state can no longer get it. */
  private unreachableSoon(state: number): boolean {
    if (this.chains === undefined) return false;
    const { next, isCall, op } = this.events;
    const wants = this.model.wants;
    let seen = 0;
    for (let e = next[KNOWN_HEAD]!; e !== -1 && seen < CHAIN_LOOKAHEAD; e = next[e]!) {
      if (isCall[e] !== 1) continue;
      const i = op[e]!;
      const w = wants[i]!;
      if (w < 0) continue;
      seen++;
      if (w !== state && !this.reachable(w, this.ops[i]!.return, state)) return true;
    }
    return false;
  }
}
