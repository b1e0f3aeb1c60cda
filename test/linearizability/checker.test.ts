/**
 * The linearizability checker: hand-written histories with known verdicts, histories generated
 * from a simulated linearizable store (must pass) and mutated (must fail), cross-checks against an
 * independent brute-force checker on random (often perturbed) histories, the time budget, and
 * performance.
 */
import { Prng } from '../../src/sim/prng.js';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkLinearizable, type CheckResult } from '../../src/linearizability/checker.js';
import {
  HistoryRecorder,
  type CasOutput,
  type CompletedOperation,
  type GetOutput,
  type KvInput,
  type KvOutput,
  type Operation,
  type UnknownOperation,
} from '../../src/linearizability/history.js';

const BUDGET = { timeBudgetMs: 10_000 };

// ---------------------------------------------------------------------------------------------
// Building histories by hand.

let nextId = 0;
function done(client: number, input: KvInput, call: number, ret: number, output: KvOutput = {}): CompletedOperation {
  return { id: nextId++, clientId: client, input, call, return: ret, outcome: 'ok', output };
}
function lost(client: number, input: KvInput, call: number): UnknownOperation {
  return { id: nextId++, clientId: client, input, call, return: Infinity, outcome: 'unknown' };
}
const put = (key: string, value: string): KvInput => ({ kind: 'put', key, value });
const append = (key: string, value: string): KvInput => ({ kind: 'append', key, value });
const get = (key: string): KvInput => ({ kind: 'get', key });
const del = (key: string): KvInput => ({ kind: 'delete', key });
const cas = (key: string, expected: string | null, value: string): KvInput => ({ kind: 'cas', key, expected, value });
const read = (value: string | null): GetOutput => ({ value });

function verdict(ops: readonly Operation[]): CheckResult['result'] {
  return checkLinearizable(ops, BUDGET).result;
}

// ---------------------------------------------------------------------------------------------
// Every generated history is reproducible from its seed.

/** The test's view of the project's seeded Prng: ranges, probabilities and fractions. */
class Rng {
  private readonly prng: Prng;
  constructor(seed: number) {
    this.prng = new Prng(seed);
  }
  /** Uniform in [0, 1). */
  float(): number {
    return this.prng.nextUint32() / 0x1_0000_0000;
  }
  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + this.prng.nextInt(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.float() < p;
  }
  pick<T>(items: readonly T[]): T {
    return this.prng.pick(items);
  }
}

// ---------------------------------------------------------------------------------------------
// A simulated linearizable store: every operation takes effect at a random instant inside its
// [call, return] interval, and outputs are computed by applying the operations in that order.

interface SimOptions {
  readonly keys: number;
  readonly clients: number;
  readonly ops: number;
  /** Upper bound of an operation's duration (time units). */
  readonly maxDuration: number;
  /** Upper bound of the think time between a client's operations. */
  readonly maxGap: number;
  /** Probability that a client never learns an operation's outcome. */
  readonly unknownRate: number;
  /** Relative weights of get, put, append, delete, cas. */
  readonly mix: readonly [number, number, number, number, number];
}

function simulate(rng: Rng, o: SimOptions): Operation[] {
  const keys = Array.from({ length: o.keys }, (_, i) => `k${i}`);
  const written = new Map<string, string[]>(keys.map((k) => [k, []]));
  const clientTime = Array.from({ length: o.clients }, () => rng.int(0, o.maxGap));
  interface Pending {
    op: Operation;
    at: number; // linearization point, or NaN if it never takes effect
  }
  const pending: Pending[] = [];
  const totalWeight = o.mix.reduce((a, b) => a + b, 0);
  let valueCounter = 0;
  for (let n = 0; n < o.ops; n++) {
    const client = rng.int(0, o.clients - 1);
    const call = clientTime[client]! + rng.int(0, o.maxGap);
    const ret = call + rng.int(0, o.maxDuration);
    clientTime[client] = ret;
    const key = rng.pick(keys);
    let r = rng.float() * totalWeight;
    let kind = 0;
    while (kind < 4 && r >= o.mix[kind]!) r -= o.mix[kind++]!;
    const value = `<${valueCounter++}>`;
    let input: KvInput;
    switch (kind) {
      case 0:
        input = get(key);
        break;
      case 1:
        input = put(key, value);
        break;
      case 2:
        input = append(key, value);
        break;
      case 3:
        input = del(key);
        break;
      default: {
        const seen = written.get(key)!;
        const expected = seen.length === 0 || rng.chance(0.2) ? null : rng.pick(seen.slice(-4));
        input = cas(key, expected, value);
      }
    }
    if (input.kind === 'put' || input.kind === 'cas') written.get(key)!.push(input.value);
    const at = call + rng.float() * (ret - call);
    if (rng.chance(o.unknownRate)) {
      const op: UnknownOperation = { id: n, clientId: client, input, call, return: Infinity, outcome: 'unknown' };
      pending.push({ op, at: rng.chance(0.5) ? at : NaN });
    } else {
      pending.push({ op: { id: n, clientId: client, input, call, return: ret, outcome: 'ok', output: {} }, at });
    }
  }
  // Apply the operations that took effect in linearization order to compute the outputs.
  const store = new Map<string, string>();
  const effective = pending.filter((p) => !Number.isNaN(p.at)).sort((a, b) => a.at - b.at);
  const outputs = new Map<number, KvOutput>();
  for (const { op } of effective) {
    const { key } = op.input;
    const current = store.get(key) ?? null;
    const input = op.input;
    switch (input.kind) {
      case 'get':
        outputs.set(op.id, read(current));
        break;
      case 'put':
        store.set(key, input.value);
        outputs.set(op.id, {});
        break;
      case 'append':
        store.set(key, (current ?? '') + input.value);
        outputs.set(op.id, {});
        break;
      case 'delete':
        store.delete(key);
        outputs.set(op.id, {});
        break;
      case 'cas':
        if (current === input.expected) {
          store.set(key, input.value);
          outputs.set(op.id, { swapped: true });
        } else {
          // Servers may or may not report the current value on failure.
          outputs.set(op.id, op.id % 2 === 0 ? { swapped: false, value: current } : { swapped: false });
        }
        break;
    }
  }
  return pending.map(({ op }) => (op.outcome === 'ok' ? { ...op, output: outputs.get(op.id)! } : op));
}

/** Replaces the output of one completed get (chosen by `rng`) with a value nobody ever wrote. */
function corruptOneRead(rng: Rng, ops: readonly Operation[]): { ops: Operation[]; victim: Operation } | undefined {
  const reads = ops.filter((op) => op.outcome === 'ok' && op.input.kind === 'get');
  if (reads.length === 0) return undefined;
  const victim = rng.pick(reads);
  return { ops: ops.map((op) => (op === victim ? { ...op, output: read('never-written') } : op)), victim };
}

// ---------------------------------------------------------------------------------------------
// An independent brute-force checker for small histories: tries every order of the operations
// that respects real time (an operation may go next unless some remaining completed operation
// returned strictly before it was called, or at the same time but recorded before the call), over
// the whole multi-key store at once (no partitioning), memoised on (done set, store). Operations
// of unknown outcome may be left out.

function bruteForce(ops: readonly Operation[]): boolean {
  const n = ops.length;
  const seen = new Set<string>();
  const bit = (i: number): bigint => 1n << BigInt(i);
  const allKnown = ops.reduce((mask, op, i) => (op.outcome === 'ok' ? mask | bit(i) : mask), 0n);
  const search = (doneMask: bigint, store: ReadonlyMap<string, string>): boolean => {
    if ((doneMask & allKnown) === allKnown) return true;
    const memoKey = `${doneMask}|${JSON.stringify([...store].sort())}`;
    if (seen.has(memoKey)) return false;
    seen.add(memoKey);
    for (let i = 0; i < n; i++) {
      if (doneMask & bit(i)) continue;
      const op = ops[i]!;
      let blocked = false;
      for (let j = 0; j < n && !blocked; j++) {
        const other = ops[j]!;
        if (j !== i && !(doneMask & bit(j)) && other.outcome === 'ok' && precedes(other, op)) blocked = true;
      }
      if (blocked) continue;
      const after = applyOp(store, op);
      if (after !== undefined && search(doneMask | bit(i), after)) return true;
    }
    return false;
  };
  return search(0n, new Map());
}

/** Whether completed operation a returned before b was called (ties: by recording order, when both have one). */
function precedes(a: CompletedOperation, b: Operation): boolean {
  if (a.return !== b.call) return a.return < b.call;
  return a.returnSeq !== undefined && b.callSeq !== undefined && a.returnSeq < b.callSeq;
}

/**
 * The history with every call and return numbered in one recording order consistent with the
 * times (`callSeq`, `returnSeq`), as HistoryRecorder numbers them; events at equal times in a
 * random order, an operation's call always before its return.
 */
function recordingOrder(rng: Rng, ops: readonly Operation[]): Operation[] {
  const events: { time: number; tie: number; op: number; isReturn: boolean }[] = [];
  ops.forEach((op, i) => {
    events.push({ time: op.call, tie: rng.float(), op: i, isReturn: false });
    if (op.outcome === 'ok') events.push({ time: op.return, tie: rng.float(), op: i, isReturn: true });
  });
  events.sort((a, b) => a.time - b.time || a.tie - b.tie);
  const callSeq = new Array<number>(ops.length);
  const returnSeq = new Array<number>(ops.length);
  events.forEach((e, seq) => ((e.isReturn ? returnSeq : callSeq)[e.op] = seq));
  return ops.map((op, i) => {
    if (op.outcome !== 'ok') return { ...op, callSeq: callSeq[i]! };
    // A zero-length operation whose two events drew the wrong way round: swap them.
    const [c, r] = callSeq[i]! < returnSeq[i]! ? [callSeq[i]!, returnSeq[i]!] : [returnSeq[i]!, callSeq[i]!];
    return { ...op, callSeq: c, returnSeq: r };
  });
}

/** The store after `op`, or undefined if `op`'s recorded output is impossible in `store`. */
function applyOp(store: ReadonlyMap<string, string>, op: Operation): Map<string, string> | undefined {
  const input = op.input;
  const current = store.get(input.key) ?? null;
  const out = new Map(store);
  switch (input.kind) {
    case 'get':
      if (op.outcome === 'ok' && (op.output as GetOutput).value !== current) return undefined;
      return out;
    case 'put':
      out.set(input.key, input.value);
      return out;
    case 'append':
      out.set(input.key, (current ?? '') + input.value);
      return out;
    case 'delete':
      out.delete(input.key);
      return out;
    case 'cas': {
      const matches = current === input.expected;
      if (op.outcome === 'ok') {
        const o = op.output as CasOutput;
        if (o.swapped !== matches) return undefined;
        if (!o.swapped && o.value !== undefined && o.value !== current) return undefined;
      }
      if (matches) out.set(input.key, input.value);
      return out;
    }
  }
}

/**
 * Randomly perturbs operations of a generated history (each with probability 1/2) so that it is
 * often, but not always, non-linearizable.
 */
function perturb(rng: Rng, ops: readonly Operation[]): Operation[] {
  const written = ops.flatMap((op) => ('value' in op.input ? [op.input.value] : []));
  const values = [null, ...written, ...written.map((v) => v + rng.pick(written))];
  return ops.map((op) => {
    if (!rng.chance(0.5)) return op;
    if (op.outcome === 'unknown') return rng.chance(0.5) ? op : { ...op, call: op.call + rng.int(-5, 5) };
    const choice = rng.int(0, 2);
    if (choice === 0 && op.input.kind === 'get') return { ...op, output: read(rng.pick(values)) };
    if (choice === 0 && op.input.kind === 'cas') {
      const o = op.output as CasOutput;
      return { ...op, output: o.swapped ? { swapped: false } : { swapped: true } };
    }
    if (choice === 1) {
      // Shift the interval (keeping call <= return).
      const shift = rng.int(-6, 6);
      return { ...op, call: op.call + shift, return: op.return + shift };
    }
    return { ...op, return: op.call + rng.int(0, Math.max(0, op.return - op.call)) };
  });
}

/** Perturbs exactly one operation of a generated history, most often a read's output. */
function perturbOne(rng: Rng, ops: readonly Operation[]): Operation[] {
  const reads = ops.flatMap((op, i) => (op.outcome === 'ok' && (op.input.kind === 'get' || op.input.kind === 'cas') ? [i] : []));
  const target = reads.length > 0 && rng.chance(0.8) ? rng.pick(reads) : rng.int(0, ops.length - 1);
  const op = ops[target]!;
  const written = ops.flatMap((o) => ('value' in o.input ? [o.input.value] : []));
  let replacement: Operation;
  if (op.outcome === 'ok' && op.input.kind === 'get') {
    const v = written.length === 0 || rng.chance(0.5) ? rng.pick([null, ...written]) : rng.pick(written) + rng.pick(written);
    replacement = { ...op, output: read(v) };
  } else if (op.outcome === 'ok' && op.input.kind === 'cas') {
    const o = op.output as CasOutput;
    replacement = { ...op, output: o.swapped ? { swapped: false, value: rng.pick([null, ...written]) } : { swapped: true } };
  } else {
    const shift = rng.int(-8, 8);
    replacement = { ...op, call: op.call + shift, return: op.return + shift };
  }
  return ops.map((o, i) => (i === target ? replacement : o));
}

// ---------------------------------------------------------------------------------------------

describe('HistoryRecorder', () => {
  test('records call and return times from the injected clock, and unknown outcomes', () => {
    let now = 100;
    const recorder = new HistoryRecorder(() => now);
    const a = recorder.invoke(1, put('x', 'a'));
    now = 105;
    const b = recorder.invoke(2, get('x'));
    now = 110;
    a.ok({});
    const c = recorder.invoke(3, cas('x', 'a', 'c'));
    now = 120;
    b.ok({ value: 'a' });
    c.unknown();
    const d = recorder.invoke(1, append('x', 'z'));

    const ops = recorder.operations();
    assert.equal(ops.length, 3, 'the still-pending append is not listed');
    assert.deepEqual(
      ops.map((op) => [op.id, op.clientId, op.input.kind, op.call, op.return, op.outcome]),
      [
        [0, 1, 'put', 100, 110, 'ok'],
        [1, 2, 'get', 105, 120, 'ok'],
        [2, 3, 'cas', 110, Infinity, 'unknown'],
      ],
    );
    const getOp = ops[1]!;
    assert.ok(getOp.outcome === 'ok');
    assert.deepEqual(getOp.output, { value: 'a' });

    const withPending = recorder.operations({ pendingAsUnknown: true });
    assert.equal(withPending.length, 4);
    assert.equal(withPending[3]!.outcome, 'unknown');
    assert.equal(withPending[3]!.return, Infinity);
    assert.equal(recorder.pendingCount(), 1);

    assert.throws(() => a.ok({}), /settled twice/);
    assert.throws(() => c.ok({ swapped: true }), /settled twice/);
    d.ok({});
    assert.equal(recorder.pendingCount(), 0);
    assert.equal(checkLinearizable(recorder.operations(), BUDGET).result, 'ok');
  });

  test('rejects a clock that goes backwards and malformed inputs/outputs', () => {
    let now = 10;
    const recorder = new HistoryRecorder(() => now);
    const op = recorder.invoke(1, get('x'));
    now = 5;
    assert.throws(() => op.ok({ value: null }), /backwards/);
    now = 20;
    assert.throws(() => recorder.invoke(1, { kind: 'put', key: 'x' } as unknown as KvInput), /value must be a string/);
    const g = recorder.invoke(1, get('x'));
    assert.throws(() => g.ok({} as GetOutput), /value: string \| null/);
  });
});

describe('checkLinearizable: registers (put/get/delete)', () => {
  test('an empty history is linearizable and has no keys', () => {
    const r = checkLinearizable([], BUDGET);
    assert.equal(r.result, 'ok');
    assert.equal(r.keys, 0);
  });

  test('sequential histories are linearizable', () => {
    const ops = [
      done(1, get('x'), 0, 1, read(null)),
      done(1, put('x', 'a'), 2, 3),
      done(2, get('x'), 4, 5, read('a')),
      done(2, put('x', 'b'), 6, 7),
      done(1, get('x'), 8, 9, read('b')),
      done(1, del('x'), 10, 11),
      done(2, get('x'), 12, 13, read(null)),
    ];
    const r = checkLinearizable(ops, BUDGET);
    assert.equal(r.result, 'ok');
    assert.equal(r.keys, 1);
    assert.equal(r.partialOrder, undefined);
  });

  test('a stale read after a completed write is illegal, with an explanation', () => {
    const ops = [
      done(1, put('x', 'a'), 0, 1),
      done(1, put('x', 'b'), 2, 3),
      done(2, get('x'), 4, 5, read('a')),
    ];
    const r = checkLinearizable(ops, BUDGET);
    assert.equal(r.result, 'illegal');
    assert.ok(r.partialOrder !== undefined);
    assert.equal(r.partialOrder.key, 'x');
    assert.deepEqual(
      r.partialOrder.prefix.map((op) => op.id),
      [ops[0]!.id, ops[1]!.id],
    );
    assert.equal(r.partialOrder.stateAfterPrefix, 'b');
    assert.deepEqual(
      r.partialOrder.candidates.map((op) => op.id),
      [ops[2]!.id],
    );
    assert.deepEqual(
      r.partialOrder.unsatisfiable.map((op) => op.id),
      [ops[2]!.id],
    );
    assert.ok(r.explanation !== undefined);
    assert.match(r.explanation, /key "x" is not linearizable/);
    assert.match(r.explanation, /put\("x","b"\)/);
    assert.match(r.explanation, /get\("x"\) → "a".*illegal in state "b"/);
  });

  test('a read of the initial value after a completed write is illegal', () => {
    assert.equal(verdict([done(1, put('x', 'a'), 0, 1), done(2, get('x'), 2, 3, read(null))]), 'illegal');
  });

  test('a concurrent write and read may be ordered either way', () => {
    const base = [done(1, put('x', 'a'), 0, 1)];
    const w = done(1, put('x', 'b'), 10, 20);
    assert.equal(verdict([...base, w, done(2, get('x'), 12, 15, read('a'))]), 'ok');
    assert.equal(verdict([...base, w, done(2, get('x'), 12, 15, read('b'))]), 'ok');
    // A read that starts exactly when the write returns still overlaps it (calls sort first).
    assert.equal(verdict([...base, w, done(2, get('x'), 20, 25, read('a'))]), 'ok');
    // ...but one that starts later does not.
    assert.equal(verdict([...base, w, done(2, get('x'), 21, 25, read('a'))]), 'illegal');
    // A read may not observe a value before the write of it was called.
    assert.equal(verdict([...base, w, done(2, get('x'), 2, 9, read('b'))]), 'illegal');
  });

  test('two readers observing concurrent writes in contradictory orders is illegal', () => {
    const writes = [done(1, put('x', 'a'), 0, 100), done(2, put('x', 'b'), 0, 100)];
    const r1 = [done(3, get('x'), 10, 11, read('a')), done(3, get('x'), 20, 21, read('b'))];
    const r2Same = [done(4, get('x'), 10, 11, read('a')), done(4, get('x'), 20, 21, read('b'))];
    const r2Opposite = [done(4, get('x'), 10, 11, read('b')), done(4, get('x'), 20, 21, read('a'))];
    assert.equal(verdict([...writes, ...r1, ...r2Same]), 'ok');
    assert.equal(verdict([...writes, ...r1]), 'ok');
    assert.equal(verdict([...writes, ...r2Opposite]), 'ok');
    assert.equal(verdict([...writes, ...r1, ...r2Opposite]), 'illegal');
  });

  test('delete makes the key absent', () => {
    const ops = [done(1, put('x', 'a'), 0, 1), done(1, del('x'), 2, 3), done(2, get('x'), 4, 5, read(null))];
    assert.equal(verdict(ops), 'ok');
    const stale = [done(1, put('x', 'a'), 0, 1), done(1, del('x'), 2, 3), done(2, get('x'), 4, 5, read('a'))];
    assert.equal(verdict(stale), 'illegal');
  });
});

describe('checkLinearizable: append', () => {
  test('appends concatenate, starting from absent', () => {
    const ops = [
      done(1, append('x', 'a'), 0, 1),
      done(2, append('x', 'b'), 2, 3),
      done(1, get('x'), 4, 5, read('ab')),
      done(1, put('x', 'p'), 6, 7),
      done(2, append('x', 'q'), 8, 9),
      done(2, get('x'), 10, 11, read('pq')),
    ];
    assert.equal(verdict(ops), 'ok');
  });

  test('concurrent appends may land in either order, but readers must agree', () => {
    const appends = [done(1, append('x', 'a'), 0, 10), done(2, append('x', 'b'), 0, 10)];
    assert.equal(verdict([...appends, done(3, get('x'), 11, 12, read('ab'))]), 'ok');
    assert.equal(verdict([...appends, done(3, get('x'), 11, 12, read('ba'))]), 'ok');
    assert.equal(verdict([...appends, done(3, get('x'), 11, 12, read('ab')), done(4, get('x'), 13, 14, read('ba'))]), 'illegal');
  });

  test('a read missing an earlier completed append is illegal', () => {
    const ops = [
      done(1, append('x', 'a'), 0, 1),
      done(1, append('x', 'b'), 2, 3),
      done(2, get('x'), 4, 5, read('a')),
    ];
    assert.equal(verdict(ops), 'illegal');
  });

  test('append values that are suffixes of one another', () => {
    const appends = [done(1, append('x', 'a'), 0, 10), done(2, append('x', 'ab'), 0, 10), done(3, append('x', 'b'), 0, 10)];
    assert.equal(verdict([...appends, done(4, get('x'), 11, 12, read('aabb'))]), 'ok'); // a, ab, b
    assert.equal(verdict([...appends, done(4, get('x'), 11, 12, read('abba'))]), 'ok'); // ab, b, a
    assert.equal(verdict([...appends, done(4, get('x'), 11, 12, read('baab'))]), 'ok'); // b, a, ab
    assert.equal(verdict([...appends, done(4, get('x'), 11, 12, read('bbaa'))]), 'illegal');
    assert.equal(verdict([...appends, done(4, get('x'), 11, 12, read('aab'))]), 'illegal');
  });

  test('applying an append twice is illegal', () => {
    const ops = [done(1, append('x', 'a'), 0, 1), done(2, get('x'), 2, 3, read('aa'))];
    assert.equal(verdict(ops), 'illegal');
  });
});

describe('checkLinearizable: cas', () => {
  test('success and failure must agree with the state', () => {
    assert.equal(verdict([done(1, cas('x', null, 'a'), 0, 1, { swapped: true }), done(2, get('x'), 2, 3, read('a'))]), 'ok');
    assert.equal(verdict([done(1, cas('x', null, 'a'), 0, 1, { swapped: false })]), 'illegal');
    assert.equal(verdict([done(1, put('x', 'a'), 0, 1), done(1, cas('x', 'z', 'b'), 2, 3, { swapped: true })]), 'illegal');
    assert.equal(verdict([done(1, put('x', 'a'), 0, 1), done(1, cas('x', 'z', 'b'), 2, 3, { swapped: false })]), 'ok');
    // A failed cas leaves the state alone.
    assert.equal(
      verdict([done(1, put('x', 'a'), 0, 1), done(1, cas('x', 'z', 'b'), 2, 3, { swapped: false }), done(1, get('x'), 4, 5, read('b'))]),
      'illegal',
    );
    // The current value reported on failure, when present, must be right.
    assert.equal(verdict([done(1, put('x', 'a'), 0, 1), done(1, cas('x', 'z', 'b'), 2, 3, { swapped: false, value: 'a' })]), 'ok');
    assert.equal(verdict([done(1, put('x', 'a'), 0, 1), done(1, cas('x', 'z', 'b'), 2, 3, { swapped: false, value: 'q' })]), 'illegal');
    assert.equal(verdict([done(1, cas('x', 'z', 'b'), 2, 3, { swapped: false, value: null })]), 'ok');
  });

  test('two successful cas from the same expected value is illegal', () => {
    const base = done(1, put('x', 'a'), 0, 1);
    const first = done(2, cas('x', 'a', 'b'), 2, 10, { swapped: true });
    assert.equal(verdict([base, first, done(3, cas('x', 'a', 'c'), 3, 11, { swapped: true })]), 'illegal');
    assert.equal(verdict([base, first, done(3, cas('x', 'a', 'c'), 3, 11, { swapped: false })]), 'ok');
    // A chain a → b → c is fine.
    assert.equal(verdict([base, first, done(3, cas('x', 'b', 'c'), 3, 11, { swapped: true }), done(1, get('x'), 12, 13, read('c'))]), 'ok');
  });
});

describe('checkLinearizable: equal times, ordered by recording order', () => {
  test("a client's next operation, called when its previous one returned, comes after it", () => {
    // put x=a returns at t=10; the same client then calls get at t=10, which reads the initial
    // value. Only if the two overlapped could the get go first: recorded in this order, they did not.
    let now = 0;
    const recorder = new HistoryRecorder(() => now);
    const p = recorder.invoke(1, put('x', 'a'));
    now = 10;
    p.ok({});
    const g = recorder.invoke(1, get('x'));
    now = 12;
    g.ok({ value: null });
    const ops = recorder.operations();
    assert.deepEqual(
      ops.map((op) => [op.call, op.return, op.callSeq, op.outcome === 'ok' ? op.returnSeq : undefined]),
      [
        [0, 10, 0, 1],
        [10, 12, 2, 3],
      ],
    );
    const r = checkLinearizable(ops, BUDGET);
    assert.equal(r.result, 'illegal');
    assert.deepEqual(
      r.partialOrder?.prefix.map((op) => op.id),
      [ops[0]!.id],
    );
    assert.equal(r.partialOrder?.prefix[0], ops[0], 'the witness shows the recorded operations');
    assert.match(r.explanation ?? '', /get\("x"\) → null \[10, 12\].*illegal in state "a"/);
    assert.match(r.explanation ?? '', /ordered as they were recorded/);
    // The same times without the recording order: the operations touch, so they overlap, and the
    // get may go first (Porcupine's rule: calls before returns on ties).
    const unnumbered = ops.map(({ callSeq: _c, ...rest }) => {
      if (rest.outcome !== 'ok') return rest;
      const { returnSeq: _r, ...plain } = rest;
      return plain;
    });
    assert.equal(verdict(unnumbered), 'ok');
  });

  test('across clients too: a call recorded after a return at the same time follows it', () => {
    let now = 0;
    const recorder = new HistoryRecorder(() => now);
    const p = recorder.invoke(1, put('x', 'a'));
    now = 10;
    p.ok({});
    const g = recorder.invoke(2, get('x')); // client 2 calls at t=10, after put's return was recorded
    g.ok({ value: null }); // and returns at t=10 too: a zero-length operation
    assert.equal(verdict(recorder.operations()), 'illegal');
  });

  test('operations at the same time recorded as overlapping stay concurrent', () => {
    let now = 0;
    const recorder = new HistoryRecorder(() => now);
    const p = recorder.invoke(1, put('x', 'a'));
    now = 10;
    const g = recorder.invoke(2, get('x')); // called at t=10 before put's return is recorded
    p.ok({});
    now = 12;
    g.ok({ value: null }); // so it may precede the put
    assert.equal(verdict(recorder.operations()), 'ok');

    // Everything at one instant, interleaved: put and get both called, then both returned.
    let t = 5;
    const at = new HistoryRecorder(() => t);
    const w = at.invoke(1, append('y', 'b'));
    const r1 = at.invoke(2, get('y'));
    const r2 = at.invoke(3, get('y'));
    r1.ok({ value: null }); // before the append
    w.ok({});
    r2.ok({ value: 'b' }); // after it
    t = 6;
    const r3 = at.invoke(2, get('y')); // later: must see it
    r3.ok({ value: 'b' });
    assert.equal(verdict(at.operations()), 'ok');
    // ...but a read that started after the append's return was recorded may not miss it.
    const r4 = at.invoke(3, get('y'));
    r4.ok({ value: null });
    assert.equal(verdict(at.operations()), 'illegal');
  });

  test('hand-built operations keep the overlapping rule; a group with a missing number falls back to it', () => {
    const a = { ...done(1, put('x', 'a'), 0, 10), callSeq: 0, returnSeq: 1 };
    const b = { ...done(2, get('x'), 10, 12, read(null)), callSeq: 2, returnSeq: 3 };
    assert.equal(verdict([a, b]), 'illegal');
    const { callSeq: _c, ...bWithout } = b;
    assert.equal(verdict([a, bWithout]), 'ok', 'without its call number the get overlaps the put');
    const bSameNumber = { ...b, callSeq: 1, returnSeq: 3 };
    assert.equal(verdict([a, bSameNumber]), 'ok', 'equal numbers tell nothing: overlap');
  });

  test('rejects recording numbers that are malformed or put a return before its call', () => {
    const a = done(1, put('x', 'a'), 0, 10);
    assert.throws(() => checkLinearizable([{ ...a, callSeq: 3, returnSeq: 3 }], BUDGET), /recorded before its call/);
    assert.throws(() => checkLinearizable([{ ...a, callSeq: -1 }], BUDGET), /callSeq must be a non-negative integer/);
    assert.throws(() => checkLinearizable([{ ...a, returnSeq: 1.5 }], BUDGET), /returnSeq must be a non-negative integer/);
  });

  test('agrees with the brute-force checker on 3000 histories full of equal times', () => {
    let ok = 0;
    let illegal = 0;
    let stricter = 0; // illegal only because of the recording order
    for (let seed = 1; seed <= 3000; seed++) {
      const rng = new Rng(3_000_000 + seed);
      const ops = simulate(rng, {
        keys: rng.int(1, 2),
        clients: rng.int(2, 5),
        ops: rng.int(2, 12),
        maxDuration: 2,
        maxGap: 1,
        unknownRate: rng.pick([0, 0.15]),
        mix: rng.pick<SimOptions['mix']>([
          [4, 2, 2, 1, 2],
          [4, 1, 4, 0, 0],
        ]),
      });
      const history = recordingOrder(rng, rng.chance(0.7) ? perturb(rng, ops) : ops);
      const expected = bruteForce(history);
      const r = checkLinearizable(history, BUDGET);
      assert.equal(r.result, expected ? 'ok' : 'illegal', `seed ${seed}: ${JSON.stringify(history)}`);
      if (expected) ok++;
      else {
        illegal++;
        const plain = history.map(({ callSeq: _c, ...rest }) => rest as Operation);
        if (verdict(plain) === 'ok') stricter++;
      }
    }
    console.log(`  equal-times cross-check: ${ok} ok, ${illegal} illegal (${stricter} only by recording order)`);
    assert.ok(ok > 500 && illegal > 500 && stricter > 100, `ok ${ok}, illegal ${illegal}, stricter ${stricter}`);
  });
});

describe('checkLinearizable: unknown outcomes', () => {
  test('a later read may or may not see an unknown write, but never an unwritten value', () => {
    const base = [done(1, put('x', 'a'), 0, 1), lost(2, put('x', 'b'), 2)];
    assert.equal(verdict([...base, done(3, get('x'), 10, 11, read('a'))]), 'ok');
    assert.equal(verdict([...base, done(3, get('x'), 10, 11, read('b'))]), 'ok');
    assert.equal(verdict([...base, done(3, get('x'), 10, 11, read('c'))]), 'illegal');
  });

  test('once seen, an unknown write stays in effect', () => {
    const ops = [
      done(1, put('x', 'a'), 0, 1),
      lost(2, put('x', 'b'), 2),
      done(3, get('x'), 10, 11, read('b')),
      done(3, get('x'), 12, 13, read('a')),
    ];
    assert.equal(verdict(ops), 'illegal');
  });

  test('an unknown write cannot take effect before its call', () => {
    const ops = [done(1, put('x', 'a'), 0, 1), done(3, get('x'), 2, 3, read('b')), lost(2, put('x', 'b'), 5)];
    assert.equal(verdict(ops), 'illegal');
  });

  test('an unknown append takes effect at most once, after its call', () => {
    const base = [done(1, append('x', 'x'), 0, 1), lost(2, append('x', 'y'), 2)];
    assert.equal(verdict([...base, done(3, get('x'), 10, 11, read('x'))]), 'ok');
    assert.equal(verdict([...base, done(3, get('x'), 10, 11, read('xy'))]), 'ok');
    assert.equal(verdict([...base, done(3, get('x'), 10, 11, read('yx'))]), 'illegal');
    assert.equal(verdict([...base, done(3, get('x'), 10, 11, read('xyy'))]), 'illegal');
    // Unknown effect observed late, after other completed appends.
    assert.equal(verdict([...base, done(1, append('x', 'z'), 5, 6), done(3, get('x'), 10, 11, read('xzy'))]), 'ok');
    assert.equal(verdict([...base, done(1, append('x', 'z'), 5, 6), done(3, get('x'), 10, 11, read('xyz'))]), 'ok');
  });

  test('an unknown cas succeeds only if its expected value held; unknown gets are ignored', () => {
    const base = [done(1, put('x', 'a'), 0, 1), lost(2, cas('x', 'a', 'b'), 2), lost(4, get('x'), 2)];
    assert.equal(verdict([...base, done(3, get('x'), 10, 11, read('b'))]), 'ok');
    assert.equal(verdict([...base, done(3, get('x'), 10, 11, read('a'))]), 'ok');
    const notMatching = [done(1, put('x', 'q'), 0, 1), lost(2, cas('x', 'a', 'b'), 2)];
    assert.equal(verdict([...notMatching, done(3, get('x'), 10, 11, read('b'))]), 'illegal');
  });

  test('a key with only unknown operations is linearizable', () => {
    assert.equal(verdict([lost(1, put('x', 'a'), 0), lost(2, get('x'), 1)]), 'ok');
  });
});

describe('checkLinearizable: keys', () => {
  test('keys are checked independently', () => {
    // As one register this would be illegal (the get of x returns 1 after y was set to 2).
    const ops = [done(1, put('x', '1'), 0, 1), done(1, put('y', '2'), 2, 3), done(2, get('x'), 4, 5, read('1'))];
    const r = checkLinearizable(ops, BUDGET);
    assert.equal(r.result, 'ok');
    assert.equal(r.keys, 2);
    assert.equal(r.keysChecked, 2);
  });

  test('an illegal key is named even when every other key is fine', () => {
    const ops: Operation[] = [];
    for (let k = 0; k < 50; k++) {
      const key = `k${k}`;
      ops.push(done(1, put(key, `v${k}`), k * 10, k * 10 + 1));
      ops.push(done(2, get(key), k * 10 + 2, k * 10 + 3, read(k === 37 ? 'stale' : `v${k}`)));
    }
    const r = checkLinearizable(ops, BUDGET);
    assert.equal(r.result, 'illegal');
    assert.equal(r.keys, 50);
    assert.equal(r.partialOrder?.key, 'k37');
    assert.match(r.explanation ?? '', /key "k37"/);
  });
});

describe('checkLinearizable: generated histories', () => {
  const SMALL: SimOptions = { keys: 2, clients: 5, ops: 40, maxDuration: 12, maxGap: 6, unknownRate: 0.08, mix: [4, 2, 2, 1, 2] };

  test('500 histories from a simulated linearizable store are ok; with one read corrupted, illegal', () => {
    let corrupted = 0;
    for (let seed = 1; seed <= 500; seed++) {
      const rng = new Rng(seed);
      const options: SimOptions = { ...SMALL, keys: rng.int(1, 3), clients: rng.int(2, 8), ops: rng.int(5, 60) };
      const ops = simulate(rng, options);
      const r = checkLinearizable(ops, BUDGET);
      assert.equal(r.result, 'ok', `seed ${seed}: ${r.explanation ?? ''}`);
      const bad = corruptOneRead(rng, ops);
      if (bad === undefined) continue;
      corrupted++;
      const rb = checkLinearizable(bad.ops, BUDGET);
      assert.equal(rb.result, 'illegal', `seed ${seed}: corrupted history judged ${rb.result}`);
      assert.equal(rb.partialOrder?.key, bad.victim.input.key);
      assert.ok(
        rb.partialOrder.unsatisfiable.some((op) => op.id === bad.victim.id),
        `seed ${seed}: the corrupted read is not reported as unsatisfiable`,
      );
      assert.match(rb.explanation ?? '', /never-written/);
    }
    assert.ok(corrupted > 400, `only ${corrupted} histories had a read to corrupt`);
  });

  test('agrees with a brute-force checker on 4000 small random histories', () => {
    const mixes: SimOptions['mix'][] = [
      [4, 2, 2, 1, 2],
      [4, 1, 4, 0, 0],
      [3, 0, 3, 1, 3],
      [2, 2, 0, 2, 4],
    ];
    let ok = 0;
    let illegal = 0;
    for (let seed = 1; seed <= 4000; seed++) {
      const rng = new Rng(1_000_000 + seed);
      const ops = simulate(rng, {
        keys: rng.int(1, 2),
        clients: rng.int(2, 5),
        ops: rng.int(2, 12),
        maxDuration: 8,
        maxGap: 3,
        unknownRate: rng.pick([0, 0.15, 0.3]),
        mix: rng.pick(mixes),
      });
      const history = rng.chance(0.85) ? perturb(rng, ops) : ops;
      const expected = bruteForce(history);
      const r = checkLinearizable(history, BUDGET);
      assert.equal(r.result, expected ? 'ok' : 'illegal', `seed ${seed}: ${JSON.stringify(history)}`);
      if (expected) ok++;
      else illegal++;
    }
    // Both verdicts must be well represented, or the comparison proves little.
    console.log(`  brute-force cross-check: ${ok} ok, ${illegal} illegal`);
    assert.ok(ok > 1000 && illegal > 1000, `ok ${ok}, illegal ${illegal}`);
  });

  test('agrees with the brute-force checker on 600 longer one-key histories', () => {
    // Long enough for the checker's pruning (chains of appends, dead states, unknown-operation
    // relevance, subsumption) to matter, with little enough concurrency for brute force.
    let ok = 0;
    let illegal = 0;
    for (let seed = 1; seed <= 600; seed++) {
      const rng = new Rng(2_000_000 + seed);
      const ops = simulate(rng, {
        keys: 1,
        clients: rng.int(2, 4),
        ops: rng.int(16, 32),
        maxDuration: 10,
        maxGap: 4,
        unknownRate: rng.pick([0, 0.05, 0.1]),
        mix: rng.pick<SimOptions['mix']>([
          [4, 2, 2, 1, 2],
          [4, 1, 4, 0, 0],
          [3, 0, 3, 1, 3],
        ]),
      });
      const history = rng.chance(0.6) ? perturbOne(rng, ops) : ops;
      const expected = bruteForce(history);
      const r = checkLinearizable(history, BUDGET);
      assert.equal(r.result, expected ? 'ok' : 'illegal', `seed ${seed}: ${JSON.stringify(history)}`);
      if (expected) ok++;
      else illegal++;
    }
    console.log(`  longer cross-check: ${ok} ok, ${illegal} illegal`);
    assert.ok(ok > 150 && illegal > 150, `ok ${ok}, illegal ${illegal}`);
  });
});

describe('checkLinearizable: time budget', () => {
  /**
   * n appends racing, of "x", "xx", "xxx", … (so a state only tells how many x there are, and the
   * search must try every subset), then a read of one x more than they all make.
   */
  function racingAppends(n: number): Operation[] {
    const ops: Operation[] = [];
    for (let i = 0; i < n; i++) ops.push(done(i, append('x', 'x'.repeat(i + 1)), 0, 100));
    ops.push(done(n, get('x'), 200, 201, read('x'.repeat((n * (n + 1)) / 2 + 1))));
    return ops;
  }

  test('a history too hard for the budget is unknown, not ok', () => {
    const started = performance.now();
    const r = checkLinearizable(racingAppends(24), { timeBudgetMs: 20 });
    const took = performance.now() - started;
    assert.equal(r.result, 'unknown');
    assert.equal(r.partialOrder, undefined);
    assert.match(r.explanation ?? '', /time budget of 20 ms ran out.*key "x"/);
    assert.ok(took < 1000, `the budget was not respected: ${took.toFixed(0)} ms`);
    // The same shape, small enough to finish, really is illegal.
    assert.equal(checkLinearizable(racingAppends(6), BUDGET).result, 'illegal');
  });

  test('a zero budget never yields ok', () => {
    const ops = simulate(new Rng(7), { keys: 3, clients: 4, ops: 200, maxDuration: 10, maxGap: 5, unknownRate: 0, mix: [4, 2, 2, 1, 2] });
    assert.equal(checkLinearizable(ops, { timeBudgetMs: 0 }).result, 'unknown');
    assert.equal(checkLinearizable(ops, BUDGET).result, 'ok');
  });
});

describe('checkLinearizable: performance', () => {
  test('10,000 operations over 50 keys from 20 clients check in under 2 s', () => {
    const rng = new Rng(20240601);
    const ops = simulate(rng, { keys: 50, clients: 20, ops: 10_000, maxDuration: 60, maxGap: 10, unknownRate: 0.01, mix: [5, 2, 2, 1, 2] });
    const started = performance.now();
    const r = checkLinearizable(ops, { timeBudgetMs: 5_000 });
    const took = performance.now() - started;
    console.log(`  10,000 ops / 50 keys / 20 clients: ${r.result} in ${took.toFixed(1)} ms`);
    assert.equal(r.result, 'ok', r.explanation);
    assert.equal(r.keys, 50);
    assert.ok(took < 2_000, `took ${took.toFixed(0)} ms`);

    const bad = corruptOneRead(rng, ops)!;
    const startedBad = performance.now();
    const rb = checkLinearizable(bad.ops, { timeBudgetMs: 5_000 });
    const tookBad = performance.now() - startedBad;
    console.log(`  same history with one corrupted read: ${rb.result} in ${tookBad.toFixed(1)} ms`);
    assert.equal(rb.result, 'illegal');
    assert.ok(tookBad < 2_000, `took ${tookBad.toFixed(0)} ms`);
  });

  test('one hot key: 2,000 operations from 20 clients, two workloads', () => {
    const workloads: [string, SimOptions['mix']][] = [
      ['6.824-style 45% get / 5% put / 50% append', [45, 5, 50, 0, 0]],
      ['every kind of operation', [5, 2, 2, 1, 2]],
    ];
    for (const [name, mix] of workloads) {
      const rng = new Rng(99);
      const ops = simulate(rng, { keys: 1, clients: 20, ops: 2_000, maxDuration: 60, maxGap: 10, unknownRate: 0.01, mix });
      const started = performance.now();
      const r = checkLinearizable(ops, { timeBudgetMs: 5_000 });
      const took = performance.now() - started;
      console.log(`  2,000 ops / 1 key / 20 clients, ${name}: ${r.result} in ${took.toFixed(1)} ms`);
      assert.equal(r.result, 'ok', r.explanation);
      assert.ok(took < 2_000, `took ${took.toFixed(0)} ms`);
    }
  });
});
