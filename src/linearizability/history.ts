/**
 * Recording the history of a key-value store's client operations, for the linearizability
 * checker in `checker.ts`.
 *
 * Every operation has a call time and, if the client learned the outcome, a return time and an
 * output. If the client never learned the outcome (a timeout, a crashed connection, the test
 * ending while the call was in flight) the operation is recorded as `unknown`: its return time is
 * +Infinity and its output is unconstrained, so the checker may place it anywhere after its call,
 * or leave it out entirely (it never took effect).
 *
 * Times come from an injected clock so simulated time works; the clock must never go backwards.
 * Equal times are allowed, and common on a virtual clock (a client's next call at the very time
 * its previous operation returned). The recorder therefore also numbers every call and return
 * event in the order it recorded them (`callSeq`, `returnSeq`), and the checker orders events by
 * (time, recording order): an operation whose return was recorded before another's call precedes
 * it even at equal times, as it does in real time. Operations built by hand without these numbers
 * keep the plain rule: equal times overlap (calls sort before returns).
 */

export type ClientId = number | string;

export interface GetInput {
  readonly kind: 'get';
  readonly key: string;
}
export interface PutInput {
  readonly kind: 'put';
  readonly key: string;
  readonly value: string;
}
export interface AppendInput {
  readonly kind: 'append';
  readonly key: string;
  readonly value: string;
}
export interface DeleteInput {
  readonly kind: 'delete';
  readonly key: string;
}
/** Compare-and-swap: sets `value` if the current value equals `expected` (null = absent). */
export interface CasInput {
  readonly kind: 'cas';
  readonly key: string;
  readonly expected: string | null;
  readonly value: string;
}
export type KvInput = GetInput | PutInput | AppendInput | DeleteInput | CasInput;

/** A get's output: the value read, null when the key was absent. */
export interface GetOutput {
  readonly value: string | null;
}
/** The output of put, append and delete: nothing. */
export type EmptyOutput = Readonly<Record<string, never>>;
/**
 * A cas's output. On failure `value` may carry the current value the server saw (null = absent);
 * when present the checker requires it to match the state, when absent it is unconstrained.
 */
export interface CasOutput {
  readonly swapped: boolean;
  readonly value?: string | null;
}
export type KvOutput = GetOutput | EmptyOutput | CasOutput;

/** The output type that goes with an input type. */
export type OutputFor<I extends KvInput> = I extends GetInput ? GetOutput : I extends CasInput ? CasOutput : EmptyOutput;

interface OperationBase {
  /** Unique within one recorder, in invocation order. */
  readonly id: number;
  readonly clientId: ClientId;
  readonly input: KvInput;
  /** Call time, from the recorder's clock. */
  readonly call: number;
  /**
   * The call event's position in the order the recorder recorded call and return events (0, 1,
   * 2, … over all operations of one recorder). Breaks ties between equal times; optional (see
   * the module comment). Numbers from different recorders must not be mixed in one history.
   */
  readonly callSeq?: number;
}
/** An operation whose outcome the client learned. */
export interface CompletedOperation extends OperationBase {
  readonly outcome: 'ok';
  readonly output: KvOutput;
  /** Return time; >= call. */
  readonly return: number;
  /** The return event's position in the recording order (> callSeq); see `callSeq`. */
  readonly returnSeq?: number;
}
/** An operation whose outcome the client never learned: it may or may not have taken effect. */
export interface UnknownOperation extends OperationBase {
  readonly outcome: 'unknown';
  /** Always +Infinity: the operation may take effect at any time after its call. */
  readonly return: number;
}
export type Operation = CompletedOperation | UnknownOperation;

/** The handle `invoke` returns: settle it exactly once with `ok` or `unknown`. */
export interface PendingOperation<O extends KvOutput = KvOutput> {
  readonly id: number;
  /** Records the return time and the output. */
  ok(output: O): void;
  /** The client never learned the outcome (e.g. a timeout). */
  unknown(): void;
}

export interface OperationsOptions {
  /**
   * Include operations that were invoked but never settled, as `unknown` (they may have taken
   * effect). Default false: only settled operations. Leaving out an operation that did take
   * effect can make the checker report a false violation, so settle every operation or pass true.
   */
  readonly pendingAsUnknown?: boolean;
}

interface Slot {
  readonly id: number;
  readonly clientId: ClientId;
  readonly input: KvInput;
  readonly call: number;
  readonly callSeq: number;
  settled: Operation | undefined;
}

export class HistoryRecorder {
  private readonly clock: () => number;
  private readonly slots: Slot[] = [];
  private lastTime = -Infinity;
  /** The next event's position in the recording order (see `callSeq`). */
  private nextSeq = 0;

  constructor(clock: () => number = () => performance.now()) {
    this.clock = clock;
  }

  private now(): number {
    const t = this.clock();
    if (typeof t !== 'number' || Number.isNaN(t) || !Number.isFinite(t)) {
      throw new RangeError(`HistoryRecorder: clock returned ${String(t)}`);
    }
    if (t < this.lastTime) {
      throw new RangeError(`HistoryRecorder: clock went backwards (${t} < ${this.lastTime})`);
    }
    this.lastTime = t;
    return t;
  }

  /** Records the call of an operation now and returns the handle that records its outcome. */
  invoke<I extends KvInput>(clientId: ClientId, input: I): PendingOperation<OutputFor<I>> {
    validateInput(input);
    const call = this.now();
    const slot: Slot = { id: this.slots.length, clientId, input: { ...input }, call, callSeq: this.nextSeq++, settled: undefined };
    this.slots.push(slot);
    const settle = (op: Operation): void => {
      if (slot.settled !== undefined) {
        throw new Error(`HistoryRecorder: operation ${slot.id} (${describeInput(slot.input)}) settled twice`);
      }
      slot.settled = op;
    };
    return {
      id: slot.id,
      ok: (output: OutputFor<I>): void => {
        validateOutput(slot.input, output);
        const ret = this.now();
        settle({
          id: slot.id,
          clientId,
          input: slot.input,
          call: slot.call,
          callSeq: slot.callSeq,
          outcome: 'ok',
          output: copyOutput(output),
          return: ret,
          returnSeq: this.nextSeq++,
        });
      },
      unknown: (): void => {
        settle({ id: slot.id, clientId, input: slot.input, call: slot.call, callSeq: slot.callSeq, outcome: 'unknown', return: Infinity });
      },
    };
  }

  /** The recorded operations in invocation order (settled ones; see `pendingAsUnknown`). */
  operations(options: OperationsOptions = {}): Operation[] {
    const out: Operation[] = [];
    for (const slot of this.slots) {
      if (slot.settled !== undefined) out.push(slot.settled);
      else if (options.pendingAsUnknown === true) {
        out.push({ id: slot.id, clientId: slot.clientId, input: slot.input, call: slot.call, callSeq: slot.callSeq, outcome: 'unknown', return: Infinity });
      }
    }
    return out;
  }

  /** How many invoked operations have not been settled yet. */
  pendingCount(): number {
    let n = 0;
    for (const slot of this.slots) if (slot.settled === undefined) n++;
    return n;
  }
}

function copyOutput(output: KvOutput): KvOutput {
  return { ...output } as KvOutput;
}

/** Throws a TypeError unless `input` is a well-formed KvInput. */
export function validateInput(input: KvInput): void {
  const bad = (why: string): never => {
    throw new TypeError(`invalid KV input ${safeJson(input)}: ${why}`);
  };
  if (typeof input !== 'object' || input === null) bad('not an object');
  if (typeof input.key !== 'string') bad('key must be a string');
  switch (input.kind) {
    case 'get':
    case 'delete':
      return;
    case 'put':
    case 'append':
      if (typeof input.value !== 'string') bad('value must be a string');
      return;
    case 'cas':
      if (typeof input.value !== 'string') bad('value must be a string');
      if (input.expected !== null && typeof input.expected !== 'string') bad('expected must be a string or null');
      return;
    default:
      bad('unknown kind');
  }
}

/** Throws a TypeError unless `output` is a well-formed output for `input`. */
export function validateOutput(input: KvInput, output: KvOutput): void {
  const bad = (why: string): never => {
    throw new TypeError(`invalid output ${safeJson(output)} for ${describeInput(input)}: ${why}`);
  };
  if (typeof output !== 'object' || output === null) bad('not an object');
  if (input.kind === 'get') {
    const v = (output as GetOutput).value;
    if (v !== null && typeof v !== 'string') bad('a get output needs value: string | null');
  } else if (input.kind === 'cas') {
    const o = output as CasOutput;
    if (typeof o.swapped !== 'boolean') bad('a cas output needs swapped: boolean');
    if (o.value !== undefined && o.value !== null && typeof o.value !== 'string') bad('cas value must be string | null');
  }
}

function safeJson(x: unknown): string {
  try {
    return JSON.stringify(x) ?? String(x);
  } catch {
    return String(x);
  }
}

function q(s: string | null | undefined): string {
  return s === null || s === undefined ? 'null' : JSON.stringify(s.length > 40 ? `${s.slice(0, 18)}…${s.slice(-18)}` : s);
}

/** e.g. `put("k","v")`, `cas("k",null→"x")`. */
export function describeInput(input: KvInput): string {
  switch (input.kind) {
    case 'get':
      return `get(${q(input.key)})`;
    case 'delete':
      return `delete(${q(input.key)})`;
    case 'put':
      return `put(${q(input.key)},${q(input.value)})`;
    case 'append':
      return `append(${q(input.key)},${q(input.value)})`;
    case 'cas':
      return `cas(${q(input.key)},${q(input.expected)}→${q(input.value)})`;
  }
}

/** e.g. `#12 c3 get("k") → "ab" [10, 14]` or `#13 c4 put("k","x") → ? [11, ∞)`. */
export function describeOperation(op: Operation): string {
  let out: string;
  if (op.outcome === 'unknown') out = '?';
  else if (op.input.kind === 'get') out = q((op.output as GetOutput).value);
  else if (op.input.kind === 'cas') {
    const o = op.output as CasOutput;
    out = o.swapped ? 'swapped' : o.value === undefined ? 'not swapped' : `not swapped (was ${q(o.value)})`;
  } else out = 'ok';
  const span = op.outcome === 'unknown' ? `[${op.call}, ∞)` : `[${op.call}, ${op.return}]`;
  return `#${op.id} c${String(op.clientId)} ${describeInput(op.input)} → ${out} ${span}`;
}
