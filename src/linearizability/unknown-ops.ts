/**
 * Operations of unknown outcome: which of them the search need consider, and when.
 *
 * An unknown operation either takes effect at some point after its call, or not at all (the
 * treatment Knossos/Jepsen use for indeterminate operations), so the search may always leave one
 * out. That makes many of them irrelevant, and trying them anyway multiplies the search by the
 * orders they could take. None of these rules changes the verdict:
 *
 * - Before the search (`dropIrrelevantUnknowns`): unknown gets constrain nothing (any output, no
 *   effect); unknown operations called after every completed operation returned can always be left
 *   out; and so can unknown operations no completed operation could observe (`unknownObservers`).
 * - During the search (`UnknownRelevance`): an unknown operation U is tried as the next step only
 *   while some remaining operation could observe its effect, or while a completed cas B that
 *   failed without reporting the value it saw (it observes "the state is not e") could be in U's
 *   stretch and need U (`blindNear`).
 */
import { KNOWN_HEAD, type EventList } from './events.js';
import type { CasOutput, GetOutput, Operation } from './history.js';
import { DEAD, K_CAS, K_DELETE, K_PUT, type KeyModel } from './model.js';

/**
 * One key's operations without the unknown ones that can be left out before the search starts
 * (see the module comment); the order of the rest is kept.
 */
export function dropIrrelevantUnknowns(all: readonly Operation[]): readonly Operation[] {
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
  return ops;
}

/**
 * Which unknown operations are worth trying as the search's next step, tracked as operations are
 * linearized and taken back (`applied`, `undone`).
 */
export class UnknownRelevance {
  /** Per operation: 1 for an unknown operation that must always be considered. */
  private readonly alwaysRelevant: Uint8Array;
  /** Per unknown operation: how many remaining operations could observe it. */
  private readonly relevantCount: Int32Array;
  /** Per operation: 1 for a completed cas that failed without reporting a value. */
  private readonly blind: Uint8Array;
  private blindRemaining = 0;
  /** Per completed operation: the unknown operations it could observe, as a compressed list. */
  private readonly observesStart: Int32Array;
  private readonly observesList: Int32Array;
  /** Per operation: 1 for a completed put, delete or successful cas (it ends any stretch). */
  private readonly resets: Uint8Array;

  constructor(
    private readonly model: KeyModel,
    private readonly events: EventList,
    ops: readonly Operation[],
  ) {
    const n = ops.length;
    const observers = unknownObservers(ops);
    this.alwaysRelevant = new Uint8Array(n);
    this.relevantCount = new Int32Array(n);
    this.blind = new Uint8Array(n);
    const observes: number[][] = Array.from({ length: n }, () => []);
    for (let i = 0; i < n; i++) {
      if (isBlindFailedCas(ops[i]!)) {
        this.blind[i] = 1;
        this.blindRemaining++;
      }
      const list = observers[i];
      if (list === null) this.alwaysRelevant[i] = 1;
      else if (list !== undefined) {
        this.relevantCount[i] = list.length;
        for (const j of list) observes[j]!.push(i);
      }
    }
    this.resets = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const kind = model.kind[i]!;
      if (model.known[i] === 1 && (kind === K_PUT || kind === K_DELETE || (kind === K_CAS && model.swapped[i] === 1))) this.resets[i] = 1;
    }
    this.observesStart = new Int32Array(n + 1);
    for (let i = 0; i < n; i++) this.observesStart[i + 1] = this.observesStart[i]! + observes[i]!.length;
    this.observesList = new Int32Array(this.observesStart[n]!);
    for (let i = 0; i < n; i++) this.observesList.set(observes[i]!, this.observesStart[i]!);
  }

  /** Operation i has just been linearized. */
  applied(i: number): void {
    this.blindRemaining -= this.blind[i]!;
    for (let k = this.observesStart[i]!; k < this.observesStart[i + 1]!; k++) this.relevantCount[this.observesList[k]!]!--;
  }

  /** Operation i, the latest linearized, has just been taken back. */
  undone(i: number): void {
    this.blindRemaining += this.blind[i]!;
    for (let k = this.observesStart[i]!; k < this.observesStart[i + 1]!; k++) this.relevantCount[this.observesList[k]!]!++;
  }

  /** Whether some remaining operation could observe unknown operation i (or it is always considered). */
  observed(i: number): boolean {
    return this.alwaysRelevant[i] !== 0 || this.relevantCount[i] !== 0;
  }

  /**
   * Whether a remaining blind failed cas B, expecting e, could be in the stretch of an unknown
   * operation U taken as the next step from `state`, and could need U: B is called before the
   * first return of a remaining reset, and without U the stretch's states would be the current
   * state s followed by appends, so B could see e only if e starts with s (any e if s is absent).
   */
  blindNear(state: number): boolean {
    if (this.blindRemaining === 0) return false;
    if (state === DEAD) return false; // the stretch's states are all dead: never e
    const stateValues = this.model.states.values;
    const { next, isCall, op } = this.events;
    const s = stateValues[state] ?? null;
    for (let e = next[KNOWN_HEAD]!; e !== -1; e = next[e]!) {
      const i = op[e]!;
      if (isCall[e] === 1) {
        if (this.blind[i] === 1) {
          const expected = stateValues[this.model.expectedId[i]!] ?? null;
          if (s === null || (expected !== null && expected.startsWith(s))) return true;
        }
      } else if (this.resets[i] === 1) return false;
    }
    return false;
  }
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
