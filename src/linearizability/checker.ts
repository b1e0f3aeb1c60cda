/**
 * A linearizability checker for key-value histories recorded by `HistoryRecorder`.
 *
 * The method is the one Porcupine (and the 6.824 tests) use: the Wing & Gong search as improved
 * by Lowe, "Testing for linearizability" (2016).
 *
 * - P-compositionality: a history is linearizable iff its restriction to each key is, so the
 *   history is split by key and each key is checked on its own, in sorted key order.
 * - Per key, each operation becomes a call event and a return event, sorted by time with calls
 *   before returns on ties. A depth-first search walks a doubly linked list of the events not yet
 *   linearized: at a call, it tries to linearize that operation (if its step is legal in the current
 *   model state, the call and its return are unlinked and the search restarts from the front); at a
 *   return, the operation it belongs to was not linearized in time, so (once the candidates of
 *   unknown outcome are tried too, see below) the search backtracks to the last linearization and
 *   tries the next candidate.
 * - Memoisation: every (set of linearized operations, model state) reached is stored in a hash set
 *   (the set as a bitset, hashed incrementally with per-operation random words); reaching one again
 *   is pruned, since the rest of the search depends on nothing else.
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
  /** The longest linearizable prefix the search found, in linearization order. */
  readonly prefix: readonly Operation[];
  /** The key's state after that prefix. */
  readonly stateAfterPrefix: string | null;
  /**
   * The operations that could come next after the prefix (not linearized, called before the
   * earliest return of a remaining operation); none of them led to a full linearization.
   */
  readonly candidates: readonly Operation[];
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

class StateTable {
  private readonly ids = new Map<string | null, number>([[null, ABSENT]]);
  readonly values: (string | null)[] = [null];

  intern(value: string | null): number {
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.length;
      this.ids.set(value, id);
      this.values.push(value);
    }
    return id;
  }
}

/** One key's operations, compiled. Index i refers to ops[i]. */
class KeyModel {
  readonly states = new StateTable();
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
  readonly appendValue: string[];
  /** append transitions, keyed by state id * n + op. */
  private readonly appendCache = new Map<number, number>();

  constructor(readonly ops: readonly Operation[]) {
    const n = ops.length;
    this.kind = new Uint8Array(n);
    this.known = new Uint8Array(n);
    this.valueId = new Int32Array(n);
    this.expectedId = new Int32Array(n);
    this.outputId = new Int32Array(n).fill(-1);
    this.swapped = new Uint8Array(n);
    this.appendValue = new Array<string>(n).fill('');
    for (let i = 0; i < n; i++) {
      const op = ops[i]!;
      const input = op.input;
      this.known[i] = op.outcome === 'ok' ? 1 : 0;
      switch (input.kind) {
        case 'get':
          this.kind[i] = K_GET;
          if (op.outcome === 'ok') this.outputId[i] = this.states.intern((op.output as GetOutput).value);
          break;
        case 'put':
          this.kind[i] = K_PUT;
          this.valueId[i] = this.states.intern(input.value);
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
          this.valueId[i] = this.states.intern(input.value);
          this.expectedId[i] = this.states.intern(input.expected);
          if (op.outcome === 'ok') {
            const out = op.output as CasOutput;
            this.swapped[i] = out.swapped ? 1 : 0;
            if (!out.swapped && out.value !== undefined) this.outputId[i] = this.states.intern(out.value);
          }
          break;
        }
      }
    }
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
        const cacheKey = state * this.ops.length + i;
        let next = this.appendCache.get(cacheKey);
        if (next === undefined) {
          next = this.states.intern((this.states.values[state] ?? '') + this.appendValue[i]!);
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
}

class Memo {
  private readonly buckets = new Map<number, MemoEntry | MemoEntry[]>();
  size = 0;

  /** Adds (bits, state) under `hash`; false if it was already there. `bits` is copied. */
  add(hash: number, bits: Uint32Array, state: number): boolean {
    const h = (hash ^ mix32(state + 0x9e3779b9)) >>> 0;
    const slot = this.buckets.get(h);
    const entry = (): MemoEntry => ({ bits: bits.slice(), state });
    if (slot === undefined) {
      this.buckets.set(h, entry());
    } else if (Array.isArray(slot)) {
      for (const e of slot) if (e.state === state && sameBits(e.bits, bits)) return false;
      slot.push(entry());
    } else {
      if (slot.state === state && sameBits(slot.bits, bits)) return false;
      this.buckets.set(h, [slot, entry()]);
    }
    this.size++;
    return true;
  }
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// The search for one key.
//
// Known operations (outcome learned) contribute a call and a return event to one linked list;
// operations of unknown outcome contribute only a call, kept in a second list sorted by call
// time. At each search node the candidates are, as in Lowe's algorithm, the calls that precede
// the first remaining return event R: first the known calls before R (in time order), then the
// unknown calls whose time is <= R's (calls sort before returns on ties). Trying known operations
// first is only an ordering heuristic (the candidate set is the same): it lets the search skip
// unknown operations that never took effect without ever trying them.

type KeyOutcome = { kind: 'ok' } | { kind: 'timeout' } | { kind: 'illegal'; partial: PartialOrder };

/** How many search steps between clock reads. */
const CLOCK_EVERY = 512;

function checkKey(key: string, all: readonly Operation[], deadline: number): KeyOutcome {
  if (performance.now() >= deadline) return { kind: 'timeout' };

  // Unknown gets constrain nothing (any output, no effect): drop them. Unknown operations called
  // after every known operation has returned can always be left out: drop them too.
  let lastKnownReturn = -Infinity;
  for (const op of all) if (op.outcome === 'ok' && op.return > lastKnownReturn) lastKnownReturn = op.return;
  const ops = all.filter((op) => op.outcome === 'ok' || (op.input.kind !== 'get' && op.call <= lastKnownReturn));
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
  const evMatch = new Int32Array(size); // call event -> its return event, 0 if none
  const next = new Int32Array(size);
  const prev = new Int32Array(size);
  const returnOf = new Int32Array(n);
  const place = (list: Ev[], head: number): void => {
    for (let j = 0; j < list.length; j++) {
      const e = head + 1 + j;
      const ev = list[j]!;
      evOp[e] = ev.op;
      evTime[e] = ev.time;
      evIsCall[e] = ev.isReturn === 0 ? 1 : 0;
      if (ev.isReturn === 1) returnOf[ev.op] = e;
    }
    for (let e = head; e <= head + list.length; e++) {
      next[e] = e < head + list.length ? e + 1 : -1;
      prev[e] = e === head ? -1 : e - 1;
    }
  };
  place(knownEvs, KNOWN_HEAD);
  place(unknownEvs, UNKNOWN_HEAD);
  for (let e = 1; e < UNKNOWN_HEAD; e++) if (evIsCall[e] === 1) evMatch[e] = returnOf[evOp[e]!]!;

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
  for (let i = 0; i < n; i++) zobrist[i] = mix32(mix32(i + 0x2545f491) ^ 0x6a09e667);
  const bits = new Uint32Array((n + 31) >>> 5);
  let hash = 0;
  const memo = new Memo();

  const stackEv = new Int32Array(n);
  const stackState = new Int32Array(n);
  const stackBound = new Float64Array(n);
  let sp = 0;
  let state = ABSENT;

  // The longest prefix seen: captured when the search turns back from a new maximum depth.
  let best: number[] = [];
  let bestState = ABSENT;
  let grewSinceBacktrack = false;

  let steps = 0;
  let scanningUnknown = false;
  let bound = 0; // while scanning unknown calls: the time of the first remaining return
  let entry = next[KNOWN_HEAD]!;
  while (knownRemaining > 0) {
    if (++steps % CLOCK_EVERY === 0 && performance.now() >= deadline) return { kind: 'timeout' };
    let candidate = false;
    if (!scanningUnknown) {
      if (entry !== -1 && evIsCall[entry] === 1) candidate = true;
      else if (entry !== -1) {
        // The first remaining return: now the unknown calls that precede it.
        scanningUnknown = true;
        bound = evTime[entry]!;
        entry = next[UNKNOWN_HEAD]!;
        continue;
      }
      // entry === -1 cannot happen while a known operation remains (its return is in the list);
      // treat it as a dead end all the same.
    } else if (entry !== -1 && evTime[entry]! <= bound) {
      candidate = true;
    }

    if (candidate) {
      const i = evOp[entry]!;
      const after = model.step(state, i);
      if (after !== -1) {
        const w = i >>> 5;
        const m = 1 << (i & 31);
        bits[w] = bits[w]! | m;
        hash = (hash ^ zobrist[i]!) >>> 0;
        if (memo.add(hash, bits, after)) {
          stackEv[sp] = entry;
          stackState[sp] = state;
          stackBound[sp] = bound;
          sp++;
          state = after;
          if (model.known[i] === 1) knownRemaining--;
          unlink(entry);
          const ret = evMatch[entry]!;
          if (ret !== 0) unlink(ret);
          grewSinceBacktrack = true;
          scanningUnknown = false;
          entry = next[KNOWN_HEAD]!;
          continue;
        }
        bits[w] = bits[w]! & ~m;
        hash = (hash ^ zobrist[i]!) >>> 0;
      }
      entry = next[entry]!;
      continue;
    }

    // No candidate left at this node: backtrack.
    if (grewSinceBacktrack && sp > best.length) {
      best = Array.from(stackEv.subarray(0, sp), (e) => evOp[e]!);
      bestState = state;
    }
    grewSinceBacktrack = false;
    if (sp === 0) {
      return { kind: 'illegal', partial: partialOrder(key, ops, model, best, bestState) };
    }
    sp--;
    const e = stackEv[sp]!;
    const i = evOp[e]!;
    state = stackState[sp]!;
    bound = stackBound[sp]!;
    bits[i >>> 5] = bits[i >>> 5]! & ~(1 << (i & 31));
    hash = (hash ^ zobrist[i]!) >>> 0;
    const known = model.known[i] === 1;
    if (known) knownRemaining++;
    const ret = evMatch[e]!;
    if (ret !== 0) relink(ret);
    relink(e);
    scanningUnknown = !known;
    entry = next[e]!;
  }
  return { kind: 'ok' };
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
  return {
    key,
    prefix: best.map((i) => ops[i]!),
    stateAfterPrefix: model.states.values[bestState] ?? null,
    candidates,
  };
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
  lines.push(`Longest linearizable prefix found: ${p.length} operations${p.length === 0 ? '' : ', in order'}:`);
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
  return lines.join('\n');
}
