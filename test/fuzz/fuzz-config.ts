/**
 * What the fuzz suites (test/fuzz/*.test.ts) share: a fixed seed and bounded run counts, so that
 * `npm test` is deterministic, and a way to replay or widen a run.
 *
 *     TSRAFT_FUZZ_SEED=<int>   replay with this seed (default: FUZZ_DEFAULT_SEED)
 *     TSRAFT_FUZZ_RUNS=<x>     multiply every suite's run count (e.g. 10 for a longer soak)
 *
 * A failing property throws an error whose message starts with the seed (and fast-check's own
 * counterexample, path and shrunk input), so the failure can be replayed exactly.
 */
import * as fc from 'fast-check';

export const FUZZ_DEFAULT_SEED = 0x7a5f7;

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${JSON.stringify(raw)}`);
  return n;
}

export const FUZZ_SEED = Math.trunc(envNumber('TSRAFT_FUZZ_SEED', FUZZ_DEFAULT_SEED));
const RUNS_FACTOR = envNumber('TSRAFT_FUZZ_RUNS', 1);

/** `base` runs, scaled by TSRAFT_FUZZ_RUNS, at least 1. */
export const runs = (base: number): number => Math.max(1, Math.round(base * RUNS_FACTOR));

function replayHint(name: string, error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  const wrapped = new Error(`fuzz "${name}" failed with seed ${FUZZ_SEED} (replay: TSRAFT_FUZZ_SEED=${FUZZ_SEED})\n${message}`);
  if (error instanceof Error && error.stack !== undefined) wrapped.stack = `${wrapped.message}\n--- original ---\n${error.stack}`;
  return wrapped;
}

/** Checks a synchronous property with the suite's seed and `numRuns` runs. */
export function check<Ts>(name: string, property: fc.IProperty<Ts>, numRuns: number): void {
  try {
    fc.assert(property, { seed: FUZZ_SEED, numRuns: runs(numRuns)});
  } catch (error) {
    throw replayHint(name, error);
  }
}

/** Checks an asynchronous property with the suite's seed and `numRuns` runs. */
export async function checkAsync<Ts>(name: string, property: fc.IAsyncProperty<Ts>, numRuns: number): Promise<void> {
  try {
    await fc.assert(property, { seed: FUZZ_SEED, numRuns: runs(numRuns), includeErrorInReport: true });
  } catch (error) {
    throw replayHint(name, error);
  }
}

/** One edit of a byte string. Positions are taken modulo the length when applied. */
export type Mutation =
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'set'; readonly at: number; readonly value: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'delete'; readonly at: number; readonly count: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(0, 1, 0x7f, 0x80, 0xff), fc.integer({ min: 0, max: 255 })) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 9 }) }),
);

export const mutationsArb = fc.array(mutationArb, { minLength: 1, maxLength: 4 });

/** `bytes` with the mutations applied in order (a fresh array; the input is untouched). */
export function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out = Uint8Array.from(bytes);
  for (const m of mutations) {
    const len = out.length;
    switch (m.kind) {
      case 'flip':
        if (len > 0) out[m.at % len] = out[m.at % len]! ^ (1 << m.bit);
        break;
      case 'set':
        if (len > 0) out[m.at % len] = m.value;
        break;
      case 'truncate':
        out = out.slice(0, m.at % (len + 1));
        break;
      case 'insert': {
        const at = m.at % (len + 1);
        const next = new Uint8Array(len + m.bytes.length);
        next.set(out.subarray(0, at));
        next.set(m.bytes, at);
        next.set(out.subarray(at), at + m.bytes.length);
        out = next;
        break;
      }
      case 'delete': {
        if (len === 0) break;
        const at = m.at % len;
        const next = new Uint8Array(len - Math.min(m.count, len - at));
        next.set(out.subarray(0, at));
        next.set(out.subarray(Math.min(len, at + m.count)), at);
        out = next;
        break;
      }
    }
  }
  return out;
}

/** Runs `decode`; returns its value, or undefined if it threw an instance of `allowed` (anything else is rethrown). */
export function decodesOrRefuses<T>(decode: () => T, allowed: abstract new (...args: never[]) => Error, what: string): T | undefined {
  try {
    return decode();
  } catch (error) {
    if (error instanceof allowed) return undefined;
    const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new Error(`${what} threw something other than ${allowed.name}: ${detail}`, { cause: error });
  }
}

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
