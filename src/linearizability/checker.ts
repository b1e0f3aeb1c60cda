/**
 * A linearizability checker for key-value histories recorded by `HistoryRecorder`: the public
 * entry point. Decides the verdict for a whole history from the per-key verdicts, enforces the
 * time budget, and turns a failed search into a witness (`PartialOrder`) and a readable account.
 *
 * The method is the one Porcupine (and the 6.824 tests) use: the Wing & Gong search as improved
 * by Lowe, "Testing for linearizability" (2016).
 *
 * - P-compositionality: a history is linearizable iff its restriction to each key is, so the
 *   history is split by key and each key is checked on its own, in sorted key order (here).
 * - Per key, each operation becomes a call event and a return event, sorted by time, kept in a
 *   doubly linked list of the events not yet linearized
 *   (`events.ts`). A depth-first search linearizes, one at a time, an operation whose call
 *   precedes the first remaining return and whose step is legal in the current model state
 *   (`model.ts`), unlinking its call and return; when no such operation leads anywhere, it
 *   backtracks and tries the next one (`search.ts`).
 * - Memoisation: every (set of linearized operations, model state) reached is stored in a hash set
 *   (the set as a bitset, hashed incrementally with per-operation random words); reaching one again
 *   is pruned, since the rest of the search depends on nothing else. (Extended to subsumption
 *   for operations of unknown outcome: `memo.ts`.)
 *
 * On top of Lowe's algorithm, all described where they are implemented, and none changing the
 * verdict:
 * - a read-only reduction: a completed read that is legal now is linearized at once, with no
 *   alternatives (`search.ts`);
 * - a candidate order: writes that produce a value a pending read wants first, then the operation
 *   whose return is next ("just in time"), then the rest, then operations of unknown outcome
 *   (`search.ts`);
 * - dead-end tests: a prefix is abandoned as soon as some remaining operation needs a state that
 *   no remaining operation can produce (in time, for the next few such operations, reasoning about
 *   chains of appends) (`dead-ends.ts`);
 * - unknown-outcome operations that no remaining operation could observe are not tried
 *   (`unknown-ops.ts`);
 * - states no later operation can tell apart are merged into one (`model.ts`).
 *
 * Operations of unknown outcome have no return event (their return is +Infinity, so they never
 * force an order) and accept any output. The search succeeds as soon as every operation with a
 * known outcome is linearized; unknown operations not linearized by then are taken to have never
 * happened. So an unknown operation either takes effect at some point after its call, or not at
 * all, which is the treatment Knossos/Jepsen use for indeterminate operations.
 *
 * The model state of one key is `string | null` (null = absent), starting absent.
 *
 * Ties. Porcupine sorts events by time with calls before returns on ties, so operations whose
 * times touch overlap; with nanosecond clocks ties are rare. On a virtual clock they are the rule
 * (a client calls again at the very time its previous operation returned), and treating them as
 * overlapping would let the search reorder a client's own consecutive operations. So events at
 * equal times are ordered by the recording order HistoryRecorder keeps (`callSeq`, `returnSeq`):
 * an operation whose return was recorded before another's call precedes it. Only operations
 * without those numbers (histories built by hand) fall back to Porcupine's rule
 * (`rankEventTimes` in `events.ts`).
 *
 * A time budget bounds the whole check: when it runs out the result is `unknown`, never `ok`.
 */
import { rankEventTimes } from './events.js';
import { describeOperation, validateInput, validateOutput, type Operation } from './history.js';
import { DEAD, KeyModel } from './model.js';
import { checkKey } from './search.js';

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

  for (const op of operations) validateOperation(op);
  // The search sees ranks instead of times (ties settled by recording order); the results show
  // the recorded operations.
  const ranked = rankEventTimes(operations);
  let recorded: Map<Operation, Operation> | undefined; // ranked → recorded, built only for a witness
  const original = (ops: readonly Operation[]): Operation[] => {
    if (recorded === undefined) {
      recorded = new Map();
      for (let i = 0; i < ranked.length; i++) recorded.set(ranked[i]!, operations[i]!);
    }
    return ops.map((op) => recorded!.get(op)!);
  };

  const byKey = new Map<string, Operation[]>();
  for (const op of ranked) {
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
    const outcome = checkKey(byKey.get(key)!, deadline);
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
      const rankedPartial = partialOrder(key, outcome.ops, outcome.model, outcome.prefix, outcome.stateAfterPrefix);
      const partial: PartialOrder = {
        ...rankedPartial,
        prefix: original(rankedPartial.prefix),
        candidates: original(rankedPartial.candidates),
        unsatisfiable: original(rankedPartial.unsatisfiable),
      };
      return {
        result: 'illegal',
        keys: keys.length,
        keysChecked: keysChecked + 1,
        elapsedMs: performance.now() - start,
        partialOrder: partial,
        explanation: explainIllegal(partial, original(byKey.get(key)!)),
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
  const badSeq = (seq: number | undefined): boolean => seq !== undefined && !(Number.isSafeInteger(seq) && seq >= 0);
  if (badSeq(op.callSeq)) throw new RangeError(`operation #${op.id}: callSeq must be a non-negative integer, got ${String(op.callSeq)}`);
  if (op.outcome === 'ok') {
    if (badSeq(op.returnSeq)) throw new RangeError(`operation #${op.id}: returnSeq must be a non-negative integer, got ${String(op.returnSeq)}`);
    if (op.callSeq !== undefined && op.returnSeq !== undefined && op.returnSeq <= op.callSeq) {
      throw new RangeError(`operation #${op.id}: its return (event ${op.returnSeq}) was recorded before its call (event ${op.callSeq})`);
    }
  }
}

/**
 * The witness for an illegal key: the search's longest prefix (indices into `ops`, the operations
 * it searched) with the state after it, the operations that could come next, and the remaining
 * operations needing a state no remaining operation can leave behind.
 */
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
  if (all.some((op) => op.callSeq !== undefined)) {
    lines.push('(Events at equal times are ordered as they were recorded: an operation that returned before another was called precedes it.)');
  }
  if (partial.unsatisfiable.length > 0) {
    lines.push('After the prefix, no remaining operation can produce the state these need:');
    for (const op of partial.unsatisfiable.slice(0, MAX_LISTED)) lines.push(`  ${describeOperation(op)}`);
    if (partial.unsatisfiable.length > MAX_LISTED) lines.push(`  … ${partial.unsatisfiable.length - MAX_LISTED} more`);
  }
  return lines.join('\n');
}
