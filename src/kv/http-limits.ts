/**
 * The HTTP server's resource bounds (see "Resource bounds" in http-api.ts): what clients may hold
 * of connections, buffered bodies and time, with their defaults and validation.
 */
import { VALUE_BYTES_MAX } from './commands.js';

/** Default HttpLimits.maxConnections (then lowered by the file-descriptor rule if needed). */
export const DEFAULT_HTTP_MAX_CONNECTIONS = 1024;
/** Default HttpLimits.bodyBudgetBytes: 64 MiB of unfinished request bodies across all requests. */
export const DEFAULT_HTTP_BODY_BUDGET_BYTES = 64 * 1024 * 1024;
/** Default HttpLimits.headersTimeoutMs. */
export const DEFAULT_HTTP_HEADERS_TIMEOUT_MS = 10_000;
/** Default HttpLimits.receiveTimeoutMs. */
export const DEFAULT_HTTP_RECEIVE_TIMEOUT_MS = 30_000;
/** Default HttpLimits.keepAliveTimeoutMs. */
export const DEFAULT_HTTP_KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Default HttpLimits.timeoutCheckIntervalMs. */
export const DEFAULT_HTTP_TIMEOUT_CHECK_MS = 1_000;

/** Bounds on what clients may hold of the HTTP server's resources; every field is optional. */
export interface HttpLimits {
  /**
   * Connections open at once (default 1024); more are closed as soon as they are accepted. Lowered
   * to keep descriptor headroom: at most half of the process's open-file limit, never its last
   * 256 descriptors (connectionCap in http-io.ts).
   */
  readonly maxConnections?: number;
  /**
   * Bytes buffered for request bodies that have not finished arriving, across all requests
   * (default 64 MiB; at least VALUE_BYTES_MAX). A request that would pass it is answered 503
   * body-budget-exceeded and its connection closed.
   */
  readonly bodyBudgetBytes?: number;
  /** The request line and headers must arrive within this (default 10 s), else 408 and close. */
  readonly headersTimeoutMs?: number;
  /** The whole request, body included, must arrive within this (default 30 s), else 408 and close. */
  readonly receiveTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this (default 5 s). */
  readonly keepAliveTimeoutMs?: number;
  /** How often the two timeouts above are checked (default 1 s). */
  readonly timeoutCheckIntervalMs?: number;
  /** The process's open-file limit (default: read from the system); for tests. */
  readonly openFileLimit?: number;
}

/** Every problem with `limits`, as text (empty when they are fine). */
export function validateHttpLimits(limits: HttpLimits | undefined): string[] {
  if (limits === undefined) return [];
  const problems: string[] = [];
  const check = (name: keyof HttpLimits, min: number, max: number): void => {
    const v = limits[name];
    if (v !== undefined && !(typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max)) {
      problems.push(`http.${name} must be an integer in ${min}..${max}, got ${String(v)}`);
    }
  };
  check('maxConnections', 1, 1_000_000);
  check('bodyBudgetBytes', VALUE_BYTES_MAX, Number.MAX_SAFE_INTEGER);
  check('headersTimeoutMs', 1, 2 ** 31 - 1);
  check('receiveTimeoutMs', 1, 2 ** 31 - 1);
  check('keepAliveTimeoutMs', 1, 2 ** 31 - 1);
  check('timeoutCheckIntervalMs', 1, 60_000);
  if (limits.openFileLimit !== undefined && !(limits.openFileLimit === Infinity || (Number.isSafeInteger(limits.openFileLimit) && limits.openFileLimit > 0))) {
    problems.push(`http.openFileLimit must be a positive integer or Infinity, got ${String(limits.openFileLimit)}`);
  }
  const headers = limits.headersTimeoutMs ?? DEFAULT_HTTP_HEADERS_TIMEOUT_MS;
  const receive = limits.receiveTimeoutMs ?? DEFAULT_HTTP_RECEIVE_TIMEOUT_MS;
  if (headers > receive) problems.push(`http.headersTimeoutMs (${headers}) must not exceed http.receiveTimeoutMs (${receive})`);
  return problems;
}
