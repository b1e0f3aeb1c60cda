/**
 * The register model of one key, compiled to small integers for the search.
 *
 * Decides whether an operation's step is legal in a state and which state it leaves (`step`),
 * and records the static facts the pruning rules reason with: the state each completed operation
 * must see when it takes effect (`wants`) and the wanted states each operation may leave behind
 * (`produces`). States are interned strings (`StateTable`); every state no later operation can
 * tell apart from another is merged into one id, DEAD, so the memo recognises equivalent search
 * nodes.
 *
 * The model state of one key is `string | null` (null = absent), starting absent.
 */
import type { CasOutput, GetOutput, Operation } from './history.js';

export const K_GET = 0;
export const K_PUT = 1;
export const K_APPEND = 2;
export const K_DELETE = 3;
export const K_CAS = 4;

/** The initial state (absent) always has id 0. */
export const ABSENT = 0;
/** All dead states (see StateTable) have id 1. */
export const DEAD = 1;

/**
 * Interned states. A state no later operation can tell apart from any other such state is
 * "dead" and shares the id DEAD: a string that is not a prefix of any observed string (a value a
 * get returned, a cas expected or reported). From a dead state, every later state until the
 * next put, delete or successful cas is dead too, and every operation behaves the same (gets,
 * successful cas and failed cas that report a value are illegal; failed cas that report nothing
 * are legal; unknown cas do nothing), so merging them loses nothing and lets the memo recognise,
 * e.g., all orders of appends nobody ever read as one.
 */
export class StateTable {
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

/** One key's operations, compiled. Index i refers to ops[i]. */
export class KeyModel {
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
