/**
 * What the explorer's clients (workload.ts, lease-clients.ts) share: a client-side timeout, since a
 * crashed member never answers and its own timers died with it, and one line per operation for
 * the trace.
 */
import type { KvInput } from '../../linearizability/history.js';

export const TIMED_OUT = Symbol('timed out');

/** `promise`, or TIMED_OUT once `ms` of the world's time passed first. */
export function withTimeout<T>(host: { schedule(delayMs: number, callback: () => void): { cancel(): void } }, promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  return new Promise((resolve, reject) => {
    const timer = host.schedule(ms, () => resolve(TIMED_OUT));
    promise.then(
      (value) => {
        timer.cancel();
        resolve(value);
      },
      (error: unknown) => {
        timer.cancel();
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

export function describe(input: KvInput): string {
  const short = (value: string): string => (value.length > 24 ? `${value.slice(0, 16)}…(${value.length} B)` : value);
  switch (input.kind) {
    case 'get':
    case 'delete':
      return `${input.kind} ${input.key}`;
    case 'put':
    case 'append':
      return `${input.kind} ${input.key}=${short(input.value)}`;
    case 'cas':
      return `cas ${input.key} ${input.expected ?? '∅'}→${short(input.value)}`;
  }
}
