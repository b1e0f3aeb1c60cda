/**
 * Invariant checks that stay on in production. A broken Raft invariant means the node can no longer
 * be trusted to keep data safe, so it stops loudly with enough context to debug.
 */
export class InvariantError extends Error {
  override readonly name = 'InvariantError';
}

export function assert(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new InvariantError(typeof message === 'string' ? message : message());
  }
}

export function unreachable(value: never, what: string): never {
  throw new InvariantError(`unreachable: unexpected ${what}: ${JSON.stringify(value)}`);
}
