/**
 * A linearizability checker for key-value histories recorded by `HistoryRecorder`.
 *
 * The method is the one Porcupine (and the 6.824 tests) use: the Wing & Gong search as improved
 * by Lowe, "Testing for linearizability" (2016).
 *
 * - P-compositionality: a history is linearizable iff its restriction to each key is, so the
 *   history is split by key and each key is checked on its own, in sorted key order.
 * - Per key, each operation becomes a call event and a return event, sorted by time with calls
 *   before returns on ties, kept in a doubly linked list of the events not yet linearized. A
 *   depth-first search linearizes, one at a time, an operation whose call precedes the first
 *   remaining return and whose step is legal in the current model state (unlinking its call and
 *   return); when no such operation leads anywhere, it backtracks and tries the next one.
 * - Memoisation: every (set of linearized operations, model state) reached is stored in a hash set
 *   (the set as a bitset, hashed incrementally with per-operation random words); reaching one again
 *   is pruned, since the rest of the search depends on nothing else. (Extended to subsumption
 *   for operations of unknown outcome: see `Memo`.)
 *
 * On top of Lowe's algorithm, all described where they are implemented (`checkKey`), and none
 * changing the verdict:
 * - a read-only reduction: a completed read that is legal now is linearized at once, with no
 *   alternatives;
 * - a candidate order: writes that produce a value a pending read wants first, then the operation
 *   whose return is next ("just in time"), then the rest, then operations of unknown outcome;
 * - dead-end tests: a prefix is abandoned as soon as some remaining operation needs a state that
 *   no remaining operation can produce (in time, for the next few such operations, reasoning about
 *   chains of appends);
 * - unknown-outcome operations that no remaining operation could observe are not tried.
 *
 * Operations of unknown outcome have no return event (their return is +Infinity, so they never
 * force an order) and accept any output. The search succeeds as soon as every operation with a
 * known outcome is linearized; unknown operations not linearized by then are taken to have never
 * happened. So an unknown operation either takes effect at some point after its call, or not at
 * all, which is the treatment Knossos/Jepsen use for indeterminate operations.
 *
 * The model state of one key is `string | null` (null = absent), starting absent.
 *
 * A time budget bounds the whole check: when it runs out the result is `unknown`, never `ok`.
 */
import { describeOperation, validateInput, validateOutput, type CasOutput, type GetOutput, type Operation } from './history.js';

export type CheckVerdict = 'ok' | 'illegal' | 'unknown';

export interface CheckOptions {
  /** Wall-clock budget for the whole check, in milliseconds (Infinity for none). */
  readonly timeBudgetMs: number;
}

/** Where the search for one key got furthest, reported with an `illegal` verdict. */
export interface PartialOrder {
  readonly key: string;
  /**
   * The longest linearizable prefix the search reached, in linearization order. (The search
   * prunes prefixes that provably cannot be extended, so this is a useful witness, not
   * necessarily the longest one that exists.)
   */
  readonly prefix: readonly Operation[];
  /** The key's state after that prefix. */
  readonly stateAfterPrefix: string | null;
  /**
   * The operations that could come next after the prefix (not linearized, called before the
   * earliest return of a remaining operation); none of them led to a full linearization.
   */
  readonly candidates: readonly Operation[];
  /**
   * Operations not in the prefix that need a state (a get's value, a cas's expected or reported
   * value) which differs from the state after the prefix and which no operation outside the
   * prefix can produce: often the direct cause (e.g. a read of a value nobody wrote).
   */
  readonly unsatisfiable: readonly Operation[];
}

export interface CheckResult {
  readonly result: CheckVerdict;
  /** The number of keys (partitions) in the history. */
  readonly keys: number;
  /** How many keys were fully checked before the verdict. */
  readonly keysChecked: number;
  /** Wall-clock time the check took, in milliseconds. */
  readonly elapsedMs: number;
  /** For `illegal`: the key that is not linearizable and the longest linearizable prefix. */
  readonly partialOrder?: PartialOrder;
  /** For `illegal` and `unknown`: a human-readable account. */
  readonly explanation?: string;
}

/** Checks that `operations` (any order) form a linearizable history of a key-value store. */
export function checkLinearizable(operations: readonly Operation[], options: CheckOptions): CheckResult {
  const start = performance.now();
  const budget = options.timeBudgetMs;
  if (typeof budget !== 'number' || Number.isNaN(budget) || budget < 0) {
    throw new RangeError(`checkLinearizable: timeBudgetMs must be a non-negative number, got ${String(budget)}`);
  }
  const deadline = start + budget;

  const byKey = new Map<string, Operation[]>();
  for (const op of operations) {
    validateOperation(op);
    let list = byKey.get(op.input.key);
    if (list === undefined) {
      list = [];
      byKey.set(op.input.key, list);
    }
    list.push(op);
  }
  const keys = [...byKey.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

  let keysChecked = 0;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const outcome = checkKey(key, byKey.get(key)!, deadline);
    if (outcome.kind === 'timeout') {
      const elapsedMs = performance.now() - start;
      return {
        result: 'unknown',
        keys: keys.length,
        keysChecked,
        elapsedMs,
        explanation:
          `time budget of ${budget} ms ran out after ${elapsedMs.toFixed(1)} ms while checking key ${JSON.stringify(key)} ` +
          `(${byKey.get(key)!.length} operations); ${keysChecked} of ${keys.length} keys were linearizable, ` +
          `${keys.length - keysChecked - 1} not checked`,
      };
    }
    if (outcome.kind === 'illegal') {
      return {
        result: 'illegal',
        keys: keys.length,
        keysChecked: keysChecked + 1,
        elapsedMs: performance.now() - start,
        partialOrder: outcome.partial,
        explanation: explainIllegal(outcome.partial, byKey.get(key)!),
      };
    }
    keysChecked++;
  }
  return { result: 'ok', keys: keys.length, keysChecked, elapsedMs: performance.now() - start };
}

function validateOperation(op: Operation): void {
  validateInput(op.input);
  if (typeof op.call !== 'number' || !Number.isFinite(op.call)) {
    throw new RangeError(`operation #${op.id}: call time must be a finite number, got ${String(op.call)}`);
  }
  if (op.outcome === 'ok') {
    if (typeof op.return !== 'number' || Number.isNaN(op.return) || !Number.isFinite(op.return)) {
      throw new RangeError(`operation #${op.id}: return time must be a finite number, got ${String(op.return)}`);
    }
    if (op.return < op.call) {
      throw new RangeError(`operation #${op.id}: returns (${op.return}) before its call (${op.call})`);
    }
    validateOutput(op.input, op.output);
  } else if (op.outcome !== 'unknown') {
    throw new TypeError(`operation #${(op as Operation).id}: outcome must be 'ok' or 'unknown'`);
  }
}

// ---------------------------------------------------------------------------------------------
// The per-key model, compiled to small integers: states are interned strings.

const K_GET = 0;
const K_PUT = 1;
const K_APPEND = 2;
const K_DELETE = 3;
const K_CAS = 4;

/** The initial state (absent) always has id 0. */
const ABSENT = 0;
/** All dead states (see StateTable) have id 1. */
const DEAD = 1;

/**
 * Interned states. A state no later operation can tell apart from any other such state is
 * "dead" and shares the id DEAD: a string that is not a prefix of any observed string (a value a
 * get returned, a cas expected or reported). From a dead state, every later state until the
 * next put, delete or successful cas is dead too, and every operation behaves the same (gets,
 * successful cas and failed cas that report a value are illegal; failed cas that report nothing
 * are legal; unknown cas do nothing), so merging them loses nothing and lets the memo recognise,
 * e.g., all orders of appends nobody ever read as one.
 */
class StateTable {
  private readonly ids = new Map<string | null, number>([[null, ABSENT]]);
  /** The values; DEAD's entry is a placeholder. */
  readonly values: (string | null)[] = [null, '\u0000(dead)'];
  private readonly observed: string[];

  constructor(observed: Iterable<string>) {
    this.observed = [...new Set(observed)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  intern(value: string | null): number {
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.length;
      this.ids.set(value, id);
      this.values.push(value);
    }
    return id;
  }

  /** The id of `value` as the result of a write: DEAD unless some observed string starts with it. */
  result(value: string | null): number {
    if (value === null) return ABSENT;
    const known = this.ids.get(value);
    if (known !== undefined) return known;
    const o = this.observed;
    let lo = 0;
    let hi = o.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (o[mid]! < value) lo = mid + 1;
      else hi = mid;
    }
    return lo < o.length && o[lo]!.startsWith(value) ? this.intern(value) : DEAD;
  }
}

const CHAIN_NONE = 0;
const CHAIN_ROOT = 1;
const CHAIN_AMBIGUOUS = 2;
const CHAIN_LINK = 3;

/** See KeyModel.buildChains. Arrays are indexed by state id (states interned after: CHAIN_NONE). */
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

/** One key's operations, compiled. Index i refers to ops[i]. */
class KeyModel {
  readonly states: StateTable;
  readonly kind: Uint8Array;
  readonly known: Uint8Array;
  /** put/append/cas: the value's state id (append: unused). */
  readonly valueId: Int32Array;
  /** cas: the expected state's id. */
  readonly expectedId: Int32Array;
  /** known get: the output state id; known failed cas: the reported state id or -1 if none. */
  readonly outputId: Int32Array;
  /** known cas: 1 if swapped. */
  readonly swapped: Uint8Array;
  /** 1 for a completed operation that never changes the state: a get, or a cas that failed. */
  readonly readOnly: Uint8Array;
  /** The state a completed operation must see when it takes effect, or -1 if any will do. */
  readonly wants: Int32Array;
  /**
   * The wanted states (see `wants`) each operation may leave behind, as a compressed list: op i's
   * are producesList[producesStart[i] .. producesStart[i+1]). A put or cas may leave its value, a
   * delete the absent state, an append any wanted state ending with its value.
   */
  readonly producesStart: Int32Array;
  readonly producesList: Int32Array;
  readonly appendValue: string[];
  /** append transitions, keyed by state id * n + op. */
  private readonly appendCache = new Map<number, number>();

  constructor(readonly ops: readonly Operation[]) {
    const n = ops.length;
    const observed: string[] = [];
    for (const op of ops) {
      const input = op.input;
      if (input.kind === 'cas' && input.expected !== null) observed.push(input.expected);
      if (op.outcome !== 'ok') continue;
      if (input.kind === 'get' && (op.output as GetOutput).value !== null) observed.push((op.output as GetOutput).value!);
      if (input.kind === 'cas') {
        const reported = (op.output as CasOutput).value;
        if (reported !== undefined && reported !== null) observed.push(reported);
      }
    }
    this.states = new StateTable(observed);
    this.kind = new Uint8Array(n);
    this.known = new Uint8Array(n);
    this.valueId = new Int32Array(n);
    this.expectedId = new Int32Array(n);
    this.outputId = new Int32Array(n).fill(-1);
    this.swapped = new Uint8Array(n);
    this.readOnly = new Uint8Array(n);
    this.appendValue = new Array<string>(n).fill('');
    for (let i = 0; i < n; i++) {
      const op = ops[i]!;
      const input = op.input;
      this.known[i] = op.outcome === 'ok' ? 1 : 0;
      switch (input.kind) {
        case 'get':
          this.kind[i] = K_GET;
          if (op.outcome === 'ok') {
            this.outputId[i] = this.states.intern((op.output as GetOutput).value);
            this.readOnly[i] = 1;
          }
          break;
        case 'put':
          this.kind[i] = K_PUT;
          this.valueId[i] = this.states.result(input.value);
          break;
        case 'append':
          this.kind[i] = K_APPEND;
          this.appendValue[i] = input.value;
          break;
        case 'delete':
          this.kind[i] = K_DELETE;
          break;
        case 'cas': {
          this.kind[i] = K_CAS;
          this.valueId[i] = this.states.result(input.value);
          this.expectedId[i] = this.states.intern(input.expected);
          if (op.outcome === 'ok') {
            const out = op.output as CasOutput;
            this.swapped[i] = out.swapped ? 1 : 0;
            this.readOnly[i] = out.swapped ? 0 : 1;
            if (!out.swapped && out.value !== undefined) this.outputId[i] = this.states.intern(out.value);
          }
          break;
        }
      }
    }
    this.wants = new Int32Array(n).fill(-1);
    const produces: number[][] = Array.from({ length: n }, () => []);
    const appendsByValue = new Map<string, number[]>();
    for (let i = 0; i < n; i++) {
      const known = this.known[i] === 1;
      switch (this.kind[i]!) {
        case K_GET:
          if (known) this.wants[i] = this.outputId[i]!;
          break;
        case K_PUT:
          produces[i]!.push(this.valueId[i]!);
          break;
        case K_APPEND: {
          const list = appendsByValue.get(this.appendValue[i]!);
          if (list === undefined) appendsByValue.set(this.appendValue[i]!, [i]);
          else list.push(i);
          break;
        }
        case K_DELETE:
          produces[i]!.push(ABSENT);
          break;
        default: // K_CAS
          if (known && this.swapped[i] === 1) this.wants[i] = this.expectedId[i]!;
          else if (known) this.wants[i] = this.outputId[i]!; // -1 when no value was reported
          if (!known || this.swapped[i] === 1) produces[i]!.push(this.valueId[i]!);
      }
    }
    if (appendsByValue.size > 0) {
      const lengths = [...new Set([...appendsByValue.keys()].map((v) => v.length))];
      const wanted = new Set<number>();
      for (let i = 0; i < n; i++) if (this.wants[i]! >= 0) wanted.add(this.wants[i]!);
      for (const v of wanted) {
        const value = this.states.values[v];
        if (value === null || value === undefined) continue;
        for (const len of lengths) {
          if (len > value.length) continue;
          for (const i of appendsByValue.get(value.slice(value.length - len)) ?? []) produces[i]!.push(v);
        }
      }
    }
    this.producesStart = new Int32Array(n + 1);
    for (let i = 0; i < n; i++) this.producesStart[i + 1] = this.producesStart[i]! + produces[i]!.length;
    this.producesList = new Int32Array(this.producesStart[n]!);
    for (let i = 0; i < n; i++) this.producesList.set(produces[i]!, this.producesStart[i]!);
  }

  /**
   * Decomposes every wanted state into "a start state followed by appends", for the reachability
   * test in `checkKey`. Working back from a wanted string r: if exactly one append value (among
   * this key's appends) is a suffix of r, r's chain link is that append and its parent is r without
   * it; if none is, r is a chain root (no append can have produced it); if several are, the
   * decomposition is ambiguous and r gets no link (the test gives up on it). Returns undefined if
   * some append's value is "" (every string would be ambiguous).
   */
  buildChains(): AppendChains | undefined {
    const n = this.ops.length;
    const appendIndex = new Map<string, number>();
    const appendOf = new Int32Array(n).fill(-1);
    for (let i = 0; i < n; i++) {
      if (this.kind[i] !== K_APPEND) continue;
      const v = this.appendValue[i]!;
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
    for (let i = 0; i < n; i++) if (this.wants[i]! >= 0) todo.push(this.wants[i]!);
    while (todo.length > 0) {
      const id = todo.pop()!;
      if ((kind[id] ?? CHAIN_NONE) !== CHAIN_NONE) continue;
      const r = this.states.values[id];
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
        const p = this.states.intern(r.slice(0, r.length - matchLen));
        kind[id] = CHAIN_LINK;
        parent[id] = p;
        link[id] = match;
        todo.push(p);
      }
    }
    const size = this.states.values.length;
    const chains: AppendChains = {
      appendCount: appendIndex.size,
      appendOf,
      kind: new Int8Array(size),
      parent: new Int32Array(size).fill(-1),
      link: new Int32Array(size).fill(-1),
      emptyId: this.states.intern(''),
    };
    for (let id = 0; id < size; id++) {
      chains.kind[id] = kind[id] ?? CHAIN_NONE;
      chains.parent[id] = parent[id] ?? -1;
      chains.link[id] = link[id] ?? -1;
    }
    return chains;
  }

  /** The state after applying op i in `state`, or -1 if that step is illegal. */
  step(state: number, i: number): number {
    switch (this.kind[i]!) {
      case K_GET:
        if (this.known[i] === 0) return state;
        return this.outputId[i] === state ? state : -1;
      case K_PUT:
        return this.valueId[i]!;
      case K_APPEND: {
        if (state === DEAD) return DEAD;
        const cacheKey = state * this.ops.length + i;
        let next = this.appendCache.get(cacheKey);
        if (next === undefined) {
          next = this.states.result((this.states.values[state] ?? '') + this.appendValue[i]!);
          this.appendCache.set(cacheKey, next);
        }
        return next;
      }
      case K_DELETE:
        return ABSENT;
      default: {
        // K_CAS
        const matches = this.expectedId[i] === state;
        if (this.known[i] === 0) return matches ? this.valueId[i]! : state;
        if (this.swapped[i] === 1) return matches ? this.valueId[i]! : -1;
        if (matches) return -1;
        const reported = this.outputId[i]!;
        return reported === -1 || reported === state ? state : -1;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The memo: a hash set of (bitset of linearized ops, state).

function mix32(value: number): number {
  let z = value >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

interface MemoEntry {
  readonly bits: Uint32Array;
  readonly state: number;
  /** Set once the search has backtracked out of this node: no linearization extends it. */
  finished: boolean;
}

/**
 * The visited search nodes, as (set of linearized operations, state). A node is pruned if it was
 * visited before, or if a finished (failed) node had the same state, the same completed
 * operations linearized and a subset of its unknown operations linearized: an unknown operation
 * may be left out, so every way to finish the new node also finishes the old one. (Only finished
 * nodes subsume: an unfinished one is an ancestor still being searched.) The hash covers the
 * completed operations and the state only, so such nodes share a bucket.
 */
class Memo {
  private readonly buckets = new Map<number, MemoEntry | MemoEntry[]>();

  /** @param knownMask the bits of completed operations (the others are of unknown outcome). */
  constructor(private readonly knownMask: Uint32Array) {}

  /** Adds (bits, state) under `hash` and returns its entry; undefined if it is pruned. */
  add(hash: number, bits: Uint32Array, state: number): MemoEntry | undefined {
    const h = (hash ^ mix32(state + 0x9e3779b9)) >>> 0;
    const slot = this.buckets.get(h);
    if (slot !== undefined) {
      if (Array.isArray(slot)) {
        for (const e of slot) if (this.subsumes(e, bits, state)) return undefined;
      } else if (this.subsumes(slot, bits, state)) return undefined;
    }
    const entry: MemoEntry = { bits: bits.slice(), state, finished: false };
    if (slot === undefined) this.buckets.set(h, entry);
    else if (Array.isArray(slot)) slot.push(entry);
    else this.buckets.set(h, [slot, entry]);
    return entry;
  }

  private subsumes(e: MemoEntry, bits: Uint32Array, state: number): boolean {
    if (e.state !== state) return false;
    const a = e.bits;
    const km = this.knownMask;
    let same = true;
    for (let w = 0; w < a.length; w++) {
      const x = a[w]!;
      const y = bits[w]!;
      if (x === y) continue;
      same = false;
      const k = km[w]!;
      // Completed operations must match; the entry's unknown ones must be among ours.
      if (((x ^ y) & k) !== 0 || (x & ~y & ~k) !== 0) return false;
    }
    return same || e.finished;
  }
}

// ---------------------------------------------------------------------------------------------
// The search for one key.
//
// Known operations (outcome learned) contribute a call and a return event to one linked list;
// operations of unknown outcome contribute only a call, to a second list sorted by call time.
// At each search node the candidates are, as in Lowe's algorithm, the operations whose call
// precedes the first remaining return event R (calls sort before returns on ties) and whose step
// is legal in the current state. The search tries them one by one, each leading to a child node
// unless the memo has seen (linearized set, state) before; when none is left it backtracks.
//
// What keeps the search small without changing its verdict:
//
// - Read-only reduction. If a candidate is a completed read (a get, or a cas that reported
//   failure) that is legal in the current state, it is linearized at once and is the node's only
//   candidate. This loses nothing: given any linearization extending the current prefix, moving
//   that read to right after the prefix keeps every step legal (it reads the state the prefix
//   leaves and changes nothing) and respects real time (every operation that returned before the
//   read was called is already in the prefix, or the read would not be a candidate).
// - Candidate order (a heuristic only; every candidate is still tried). First the writes whose
//   resulting state is exactly, then a prefix of, the value some pending read wants; then the
//   operation whose return R is next, which must be linearized before anything called after R
//   (linearizing "just in time"); then the other completed operations in call order; then the
//   operations of unknown outcome, which most often never need to be tried at all.
// - Dead-end tests (`hopeless`): a child is abandoned at once if some remaining operation needs a
//   state that can no longer come about (counting producers for all of them; reasoning about
//   time and chains of appends for the next few).
// - Unknown operations are not tried when they would change nothing, or when no remaining
//   operation could observe them (`unknownObservers`, `blindNear`).
// - Dead states are merged (`StateTable`), and the memo lets a failed node subsume nodes that
//   differ only by more unknown operations (`Memo`).

type KeyOutcome = { kind: 'ok' } | { kind: 'timeout' } | { kind: 'illegal'; partial: PartialOrder };

/** How many of the next operations that need a state the reachability test looks at. */
const CHAIN_LOOKAHEAD = 8;

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

function checkKey(key: string, all: readonly Operation[], deadline: number): KeyOutcome {
  if (performance.now() >= deadline) return { kind: 'timeout' };

  // Unknown gets constrain nothing (any output, no effect): drop them. Unknown operations called
  // after every known operation has returned can always be left out: drop them too.
  let lastKnownReturn = -Infinity;
  for (const op of all) if (op.outcome === 'ok' && op.return > lastKnownReturn) lastKnownReturn = op.return;
  let ops = all.filter((op) => op.outcome === 'ok' || (op.input.kind !== 'get' && op.call <= lastKnownReturn));
  // Unknown operations no completed operation could observe can be left out (see `unknownObservers`).
  if (!ops.some(isBlindFailedCas)) {
    const observers = unknownObservers(ops);
    ops = ops.filter((_, i) => {
      const list = observers[i];
      return list === undefined || list === null || list.length > 0;
    });
  }
  const n = ops.length;
  let knownRemaining = 0;
  for (const op of ops) if (op.outcome === 'ok') knownRemaining++;
  if (knownRemaining === 0) return { kind: 'ok' };

  const model = new KeyModel(ops);

  // Event nodes: 0 heads the known list, its events follow (sorted by time, calls before returns
  // on ties, then by operation order for determinism); then the unknown list's head and its calls.
  interface Ev {
    time: number;
    isReturn: number;
    op: number;
  }
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
  const KNOWN_HEAD = 0;
  const UNKNOWN_HEAD = knownEvs.length + 1;
  const size = UNKNOWN_HEAD + 1 + unknownEvs.length;
  const evOp = new Int32Array(size).fill(-1);
  const evTime = new Float64Array(size);
  const evIsCall = new Uint8Array(size);
  const next = new Int32Array(size);
  const prev = new Int32Array(size);
  const callOf = new Int32Array(n);
  const returnOf = new Int32Array(n); // 0 for unknown operations
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
  place(unknownEvs, UNKNOWN_HEAD);

  const unlink = (e: number): void => {
    const p = prev[e]!;
    const nx = next[e]!;
    next[p] = nx;
    if (nx !== -1) prev[nx] = p;
  };
  const relink = (e: number): void => {
    const p = prev[e]!;
    const nx = next[e]!;
    next[p] = e;
    if (nx !== -1) prev[nx] = e;
  };

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

  // Dead-end detection. A remaining completed operation that must see state v (a get that
  // returned v, a cas that swapped from v or reported v) can only succeed if the state is v now or
  // some remaining operation can still produce v. `deadWants` counts the states wanted by some
  // remaining operation that no remaining operation can produce.
  const chains = model.buildChains(); // (interns more states: before stateCount)
  const stateCount = model.states.values.length;
  const wantCount = new Int32Array(stateCount);
  const producerCount = new Int32Array(stateCount);
  const { producesStart, producesList } = model;
  let deadWants = 0;
  for (let i = 0; i < n; i++) {
    const w = model.wants[i]!;
    if (w >= 0) wantCount[w]!++;
    for (let k = producesStart[i]!; k < producesStart[i + 1]!; k++) producerCount[producesList[k]!]!++;
  }
  for (let v = 0; v < stateCount; v++) if (wantCount[v]! > 0 && producerCount[v] === 0) deadWants++;

  // A finer test for the operations that will need a state soonest. Say a remaining operation r
  // needs state v (r is not linearized yet). Look at the last put, delete or successful cas
  // before r in a linearization extending the current prefix (or at the current state if there
  // is none): v = (the state it leaves, or the current state) + (values of remaining appends), and
  // each of those operations precedes r, so was called no later than r returned. When v's
  // decomposition into a start and appends is unique (see buildChains), this means: walking from
  // v towards its chain's root through appends that remain and were called by r's return, we
  // meet the current state, or a state that a remaining put/cas called by then leaves (or "" when
  // the state is absent or such a delete remains).
  //
  // For "remains and was called by T" each producer list (the put/cas/delete operations leaving a
  // given state; the appends of a given value) is sorted by call time with a pointer to its first
  // remaining operation, maintained by apply/undo.
  const appendLists = chains?.appendCount ?? 0;
  const listOf = new Int32Array(n).fill(-1);
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
  const listStart = new Int32Array(members.length + 1);
  for (let l = 0; l < members.length; l++) listStart[l + 1] = listStart[l]! + members[l]!.length;
  const listOps = new Int32Array(listStart[members.length]!);
  const listFirst = new Int32Array(members.length); // index into listOps of the first remaining
  const posInList = new Int32Array(n);
  for (let l = 0; l < members.length; l++) {
    const sorted = members[l]!.sort((a, b) => ops[a]!.call - ops[b]!.call || a - b);
    listFirst[l] = listStart[l]!;
    for (let k = 0; k < sorted.length; k++) {
      listOps[listStart[l]! + k] = sorted[k]!;
      posInList[sorted[k]!] = listStart[l]! + k;
    }
  }
  const isLinearized = (i: number): boolean => (bits[i >>> 5]! & (1 << (i & 31))) !== 0;
  /** The call time of the first remaining operation of list l (Infinity if none). */
  const firstCall = (l: number): number => {
    const k = listFirst[l]!;
    return k < listStart[l + 1]! ? ops[listOps[k]!]!.call : Infinity;
  };
  const listApplied = (i: number): void => {
    const l = listOf[i]!;
    if (l < 0 || posInList[i] !== listFirst[l]) return;
    let k = listFirst[l]!;
    while (k < listStart[l + 1]! && isLinearized(listOps[k]!)) k++;
    listFirst[l] = k;
  };
  const listUndone = (i: number): void => {
    const l = listOf[i]!;
    if (l >= 0 && posInList[i]! < listFirst[l]!) listFirst[l] = posInList[i]!;
  };
  /** Whether state `wanted` can still be reached by an operation that returned at `by`. */
  const reachable = (wanted: number, by: number): boolean => {
    if (chains === undefined) return true;
    for (let v = wanted; ; ) {
      if (v === state || firstCall(v) <= by) return true;
      if (v === chains.emptyId && (state === ABSENT || firstCall(ABSENT) <= by)) return true;
      const kind = chains.kind[v] ?? CHAIN_NONE;
      if (kind === CHAIN_ROOT) return false;
      if (kind !== CHAIN_LINK) return true;
      if (firstCall(stateCount + chains.link[v]!) > by) return false;
      v = chains.parent[v]!;
    }
  };
  /** Whether one of the next few operations that need a state can no longer get it. */
  const unreachableSoon = (): boolean => {
    if (chains === undefined) return false;
    let seen = 0;
    for (let e = next[KNOWN_HEAD]!; e !== -1 && seen < CHAIN_LOOKAHEAD; e = next[e]!) {
      if (evIsCall[e] !== 1) continue;
      const i = evOp[e]!;
      const w = model.wants[i]!;
      if (w < 0) continue;
      seen++;
      if (w !== state && !reachable(w, ops[i]!.return)) return true;
    }
    return false;
  };

  /** Whether the current node provably has no completion (see above). */
  const hopeless = (): boolean =>
    deadWants > 1 || (deadWants === 1 && !((wantCount[state] ?? 0) > 0 && producerCount[state] === 0)) || unreachableSoon();

  // Relevance of unknown operations (see `unknownObservers`): an unknown operation U is tried as
  // the next step only while some remaining operation could observe its effect, or while a
  // completed cas B that failed without reporting the value it saw (it observes "the state is not
  // e") could be in U's stretch and need U (see blindNear).
  const observers = unknownObservers(ops);
  const alwaysRelevant = new Uint8Array(n);
  const relevantCount = new Int32Array(n);
  const blind = new Uint8Array(n);
  let blindRemaining = 0;
  const observes: number[][] = Array.from({ length: n }, () => []);
  for (let i = 0; i < n; i++) {
    if (isBlindFailedCas(ops[i]!)) {
      blind[i] = 1;
      blindRemaining++;
    }
    const list = observers[i];
    if (list === null) alwaysRelevant[i] = 1;
    else if (list !== undefined) {
      relevantCount[i] = list.length;
      for (const j of list) observes[j]!.push(i);
    }
  }
  const resets = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const kind = model.kind[i]!;
    if (model.known[i] === 1 && (kind === K_PUT || kind === K_DELETE || (kind === K_CAS && model.swapped[i] === 1))) resets[i] = 1;
  }
  /**
   * Whether a remaining blind failed cas B, expecting e, could be in the stretch of an unknown
   * operation U taken as the next step, and could need U: B is called before the first return of
   * a remaining reset, and without U the stretch's states would be the current state s followed by
   * appends, so B could see e only if e starts with s (any e if s is absent).
   */
  const blindNear = (): boolean => {
    if (blindRemaining === 0) return false;
    if (state === DEAD) return false; // the stretch's states are all dead: never e
    const s = stateValues[state] ?? null;
    for (let e = next[KNOWN_HEAD]!; e !== -1; e = next[e]!) {
      const i = evOp[e]!;
      if (evIsCall[e] === 1) {
        if (blind[i] === 1) {
          const expected = stateValues[model.expectedId[i]!] ?? null;
          if (s === null || (expected !== null && expected.startsWith(s))) return true;
        }
      } else if (resets[i] === 1) return false;
    }
    return false;
  };
  const observesStart = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) observesStart[i + 1] = observesStart[i]! + observes[i]!.length;
  const observesList = new Int32Array(observesStart[n]!);
  for (let i = 0; i < n; i++) observesList.set(observes[i]!, observesStart[i]!);

  const apply = (i: number, after: number): void => {
    bits[i >>> 5] = bits[i >>> 5]! | (1 << (i & 31));
    hash = (hash ^ zobrist[i]!) >>> 0;
    state = after;
    if (model.known[i] === 1) knownRemaining--;
    unlink(callOf[i]!);
    const ret = returnOf[i]!;
    if (ret !== 0) unlink(ret);
    const w = model.wants[i]!;
    if (w >= 0 && --wantCount[w]! === 0 && producerCount[w] === 0) deadWants--;
    listApplied(i);
    blindRemaining -= blind[i]!;
    for (let k = observesStart[i]!; k < observesStart[i + 1]!; k++) relevantCount[observesList[k]!]!--;
    for (let k = producesStart[i]!; k < producesStart[i + 1]!; k++) {
      const p = producesList[k]!;
      if (--producerCount[p]! === 0 && wantCount[p]! > 0) deadWants++;
    }
  };
  const undo = (i: number, before: number): void => {
    blindRemaining += blind[i]!;
    for (let k = observesStart[i]!; k < observesStart[i + 1]!; k++) relevantCount[observesList[k]!]!++;
    for (let k = producesStart[i]!; k < producesStart[i + 1]!; k++) {
      const p = producesList[k]!;
      if (producerCount[p]!++ === 0 && wantCount[p]! > 0) deadWants--;
    }
    const w = model.wants[i]!;
    if (w >= 0 && wantCount[w]!++ === 0 && producerCount[w] === 0) deadWants++;
    bits[i >>> 5] = bits[i >>> 5]! & ~(1 << (i & 31));
    hash = (hash ^ zobrist[i]!) >>> 0;
    state = before;
    if (model.known[i] === 1) knownRemaining++;
    const ret = returnOf[i]!;
    if (ret !== 0) relink(ret);
    relink(callOf[i]!);
    listUndone(i);
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
      if (alwaysRelevant[i] === 0 && relevantCount[i] === 0 && !(blindIsNear ??= blindNear())) continue;
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
      if (hopeless()) {
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
        return { kind: 'illegal', partial: partialOrder(key, ops, model, best, bestState) };
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

/** A completed cas that failed without reporting the value it saw: it observes "the state is not e". */
function isBlindFailedCas(op: Operation): boolean {
  return op.outcome === 'ok' && op.input.kind === 'cas' && !(op.output as CasOutput).swapped && (op.output as CasOutput).value === undefined;
}

/**
 * Which operations could observe the effect of each unknown operation: for ops[i] of unknown
 * outcome, the indices of the other operations whose required state could derive from it, or null
 * if it must always be considered; undefined for operations of known outcome.
 *
 * An operation "requires" a state: a completed get the value it returned, a completed cas that
 * swapped its expected value, a completed cas that failed the value it reported; an unknown cas
 * its expected value (for its effect to happen). The states deriving from an unknown put or cas
 * of v are v followed by appends, so they start with v; those deriving from an unknown append of
 * x contain x; those deriving from an unknown delete are absent, or start with an append's value.
 * (An unknown append of "" is always considered.)
 *
 * Why an unobserved unknown operation U can be left out: take a linearization that includes U and
 * remove U. Only the states in U's stretch, between U and the next put, delete or successful cas,
 * change, from states deriving from U to others. Every operation in that stretch still has a
 * legal step: none requires a state (it would derive from U, and none does); puts, appends and
 * deletes accept any state; an unknown cas that now matches its expected value may be left out
 * too. The exception is a completed cas that failed without reporting what it saw: it requires
 * "not e", which may no longer hold, so the callers only drop U when no such cas can be in U's
 * stretch.
 */
function unknownObservers(ops: readonly Operation[]): (number[] | null | undefined)[] {
  // The state each operation requires, undefined if none (null: absent).
  const required: (string | null | undefined)[] = ops.map((op) => {
    const input = op.input;
    if (op.outcome === 'ok') {
      if (input.kind === 'get') return (op.output as GetOutput).value;
      if (input.kind === 'cas') {
        const out = op.output as CasOutput;
        return out.swapped ? input.expected : out.value;
      }
      return undefined;
    }
    return input.kind === 'cas' ? input.expected : undefined;
  });
  const appendValues = new Set<string>();
  for (const op of ops) if (op.input.kind === 'append') appendValues.add(op.input.value);
  const appendLengths = [...new Set([...appendValues].map((v) => v.length))];
  /** Whether s could be built by appends alone, starting from absent. */
  const startsWithAnAppend = (s: string): boolean => appendLengths.some((len) => appendValues.has(s.slice(0, len)));
  return ops.map((op, u) => {
    if (op.outcome === 'ok') return undefined;
    const input = op.input;
    let derives: (s: string | null) => boolean;
    switch (input.kind) {
      case 'get':
        return [];
      case 'delete':
        // Absent, then appends.
        derives = (s) => s === null || startsWithAnAppend(s);
        break;
      case 'append': {
        const x = input.value;
        if (x === '') return null;
        derives = (s) => s !== null && s.includes(x);
        break;
      }
      default: {
        const v = input.value;
        derives = (s) => s !== null && s.startsWith(v);
      }
    }
    const list: number[] = [];
    for (let j = 0; j < ops.length; j++) {
      const r = required[j];
      if (j !== u && r !== undefined && derives(r)) list.push(j);
    }
    return list;
  });
}

function partialOrder(key: string, ops: readonly Operation[], model: KeyModel, best: readonly number[], bestState: number): PartialOrder {
  const done = new Uint8Array(ops.length);
  for (const i of best) done[i] = 1;
  let earliestReturn = Infinity;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (done[i] === 0 && op.outcome === 'ok' && op.return < earliestReturn) earliestReturn = op.return;
  }
  const candidates: Operation[] = [];
  for (let i = 0; i < ops.length; i++) if (done[i] === 0 && ops[i]!.call <= earliestReturn) candidates.push(ops[i]!);
  candidates.sort((a, b) => a.call - b.call || a.id - b.id);
  // Remaining operations needing a state that no remaining operation can leave behind.
  const producers = new Int32Array(model.states.values.length);
  for (let i = 0; i < ops.length; i++) {
    if (done[i] === 1) continue;
    for (let k = model.producesStart[i]!; k < model.producesStart[i + 1]!; k++) producers[model.producesList[k]!]!++;
  }
  const unsatisfiable: Operation[] = [];
  for (let i = 0; i < ops.length; i++) {
    const w = model.wants[i]!;
    if (done[i] === 0 && w >= 0 && w !== bestState && producers[w] === 0) unsatisfiable.push(ops[i]!);
  }
  unsatisfiable.sort((a, b) => a.call - b.call || a.id - b.id);
  return {
    key,
    prefix: best.map((i) => ops[i]!),
    stateAfterPrefix: bestState === DEAD ? replay(best.map((i) => ops[i]!)) : (model.states.values[bestState] ?? null),
    candidates,
    unsatisfiable,
  };
}

/** The state after applying `ops` in order from absent (outputs are not checked). */
function replay(ops: readonly Operation[]): string | null {
  let state: string | null = null;
  for (const { input } of ops) {
    if (input.kind === 'put') state = input.value;
    else if (input.kind === 'append') state = (state ?? '') + input.value;
    else if (input.kind === 'delete') state = null;
    else if (input.kind === 'cas' && state === input.expected) state = input.value;
  }
  return state;
}

const MAX_LISTED = 30;

function explainIllegal(partial: PartialOrder, all: readonly Operation[]): string {
  const fmt = (s: string | null): string => (s === null ? 'absent' : JSON.stringify(s));
  const unknown = all.filter((op) => op.outcome === 'unknown').length;
  const lines: string[] = [];
  lines.push(
    `key ${JSON.stringify(partial.key)} is not linearizable: ${all.length} operations ` +
      `(${all.length - unknown} completed, ${unknown} of unknown outcome).`,
  );
  const p = partial.prefix;
  lines.push(`Longest linearizable prefix the search reached: ${p.length} operations${p.length === 0 ? '' : ', in order'}:`);
  const skip = Math.max(0, p.length - MAX_LISTED);
  if (skip > 0) lines.push(`  … ${skip} earlier operations`);
  for (let j = skip; j < p.length; j++) lines.push(`  ${j + 1}. ${describeOperation(p[j]!)}`);
  lines.push(`State after the prefix: ${fmt(partial.stateAfterPrefix)}.`);
  lines.push('It cannot be extended to a linearization; the operations that could come next:');
  const model = new KeyModel(partial.candidates);
  const stateId = model.states.intern(partial.stateAfterPrefix);
  partial.candidates.slice(0, MAX_LISTED).forEach((op, i) => {
    const legal = model.step(stateId, i) !== -1;
    lines.push(`  ${describeOperation(op)}${legal ? '' : `   ← illegal in state ${fmt(partial.stateAfterPrefix)}`}`);
  });
  if (partial.candidates.length > MAX_LISTED) lines.push(`  … ${partial.candidates.length - MAX_LISTED} more`);
  if (partial.unsatisfiable.length > 0) {
    lines.push('After the prefix, no remaining operation can produce the state these need:');
    for (const op of partial.unsatisfiable.slice(0, MAX_LISTED)) lines.push(`  ${describeOperation(op)}`);
    if (partial.unsatisfiable.length > MAX_LISTED) lines.push(`  … ${partial.unsatisfiable.length - MAX_LISTED} more`);
  }
  return lines.join('\n');
}
