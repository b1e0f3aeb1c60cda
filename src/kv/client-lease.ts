/**
 * KvClient's leases: the answers of /v1/leases read into typed results, and keepLeaseAlive(), the
 * loop that keeps one lease alive in the background.
 *
 * Only the leader times leases, so every lease request goes to the leader like a write (KvClient
 * routes them: redirects, retries on no-leader, attempt deadlines); a grant and a revoke also carry
 * a session, so a resent one applies once. Keep-alives, time-to-live and lists change nothing in the
 * log and are simply resent.
 *
 * The keeper sends a keep-alive every TTL/3, so two in a row may fail before the lease is in danger.
 * It gives up (its `done` rejects) when the leader says the lease is gone (404 lease-not-found), or
 * when no keep-alive has been confirmed for one whole TTL since the last one was sent: the lease may
 * then have expired (a new leader restarts the full TTL, so it may also still live; a holder of a
 * lock must assume the worse). Each keep-alive's own time limit is what is left of that TTL, so a
 * keeper never waits on a request after it could no longer matter.
 */
import { KvClientError, type KvLeaseGrant, type KvLeaseKeepAlive, type KvLeaseKeeper, type KvLeaseKeeperOptions, type KvLeaseList, type KvLeaseRevoke, type KvLeaseSummary, type KvLeaseTimeToLive } from './client-types.js';
import { isRecord, valueBytes } from './client-wire.js';

/** The least time a keep-alive is given, even with almost nothing left of the TTL: a round trip and a redirect. */
const KEEP_ALIVE_BUDGET_MIN_MS = 250;
/** The pause before a keep-alive is resent after one failed (the client's own backoff runs inside each). */
const KEEP_ALIVE_RETRY_MS = 100;
/** The longest setTimeout Node honours (a longer one fires at once): a TTL of years still pauses. */
const TIMER_MS_MAX = 2 ** 31 - 1;

function malformed(route: string, json: Record<string, unknown>, what: string): KvClientError {
  return new KvClientError('server-error', `malformed answer to ${route}: ${what}: ${JSON.stringify(json).slice(0, 200)}`);
}

/** Reads the numeric fields `names` of an answer; a missing or non-numeric one is a 'server-error'. */
function numbers<N extends string>(route: string, json: Record<string, unknown>, names: readonly N[]): Record<N, number> {
  const out = {} as Record<N, number>;
  for (const name of names) {
    const v = json[name];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw malformed(route, json, `no number "${name}"`);
    out[name] = v;
  }
  return out;
}

export function parseLeaseGrant(json: Record<string, unknown>): KvLeaseGrant {
  return numbers('POST /v1/leases', json, ['id', 'ttl', 'revision', 'index']);
}

export function parseLeaseRevoke(json: Record<string, unknown>): KvLeaseRevoke {
  return numbers('DELETE /v1/leases/{id}', json, ['id', 'ttl', 'deleted', 'revision', 'index']);
}

export function parseLeaseKeepAlive(json: Record<string, unknown>): KvLeaseKeepAlive {
  return numbers('POST /v1/leases/{id}/keepalive', json, ['id', 'ttl', 'revision']);
}

/**
 * GET /v1/leases/{id}: `keys` (asked for with encoding=base64) is a list of base64 strings; a
 * key given as an object ({key, encoding}) is read too, so that either shape of item decodes.
 */
export function parseLeaseTimeToLive(json: Record<string, unknown>): KvLeaseTimeToLive {
  const route = 'GET /v1/leases/{id}';
  const fields = numbers(route, json, ['id', 'ttl', 'remaining', 'keyCount', 'revision']);
  if (json['keys'] === undefined) return fields;
  if (!Array.isArray(json['keys'])) throw malformed(route, json, '"keys" is not a list');
  const keys = (json['keys'] as unknown[]).map((item) => {
    const [key, encoding] = isRecord(item) ? [item['key'], item['keyEncoding'] ?? item['encoding'] ?? json['encoding']] : [item, json['encoding']];
    const bytes = typeof key === 'string' ? valueBytes(key, encoding) : null;
    if (bytes === null) throw malformed(route, json, 'a key is not a string');
    return bytes;
  });
  return { ...fields, keys };
}

export function parseLeaseList(json: Record<string, unknown>): KvLeaseList {
  const route = 'GET /v1/leases';
  const { revision } = numbers(route, json, ['revision']);
  if (!Array.isArray(json['leases'])) throw malformed(route, json, '"leases" is not a list');
  const leases = (json['leases'] as unknown[]).map((item): KvLeaseSummary => {
    if (!isRecord(item)) throw malformed(route, json, 'a lease is not an object');
    return numbers(route, item, ['id', 'ttl', 'keyCount']);
  });
  return { leases, revision };
}

/** A lease id as a path segment, or a 'bad-request' rejection (before anything is sent). */
export function leaseIdSegment(id: number): string {
  if (!(Number.isSafeInteger(id) && id >= 1)) throw new KvClientError('bad-request', `a lease id is a positive integer, got ${id}`);
  return String(id);
}

/**
 * Keeps lease `id` alive with `keepAlive` (one keep-alive, resent by the client within the time
 * limit it is given) until stop() or until the lease is lost (see the module comment).
 */
export function keepLeaseAlive(
  id: number,
  keepAlive: (timeoutMs: number) => Promise<KvLeaseKeepAlive>,
  clientTimeoutMs: number,
  options: KvLeaseKeeperOptions = {},
): KvLeaseKeeper {
  if (options.intervalMs !== undefined && !(Number.isFinite(options.intervalMs) && options.intervalMs > 0)) {
    throw new RangeError(`intervalMs must be a positive number of milliseconds, got ${options.intervalMs}`);
  }
  let stopped = false;
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopKeeper: () => void = () => undefined;
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, Math.min(ms, TIMER_MS_MAX));
    });

  const run = async (): Promise<void> => {
    /** The TTL the leader reported, in ms; unknown until the first keep-alive is answered. */
    let ttlMs: number | undefined;
    /** When the last confirmed keep-alive was sent: the leader restarted the clock after that. */
    let renewedAt = 0;
    while (!stopped) {
      const sentAt = Date.now();
      const left = ttlMs === undefined ? clientTimeoutMs : renewedAt + ttlMs - sentAt;
      let renewal: KvLeaseKeepAlive;
      try {
        renewal = await keepAlive(Math.max(KEEP_ALIVE_BUDGET_MIN_MS, Math.min(clientTimeoutMs, left)));
      } catch (error) {
        if (stopped) return;
        if (error instanceof KvClientError && error.code === 'lease-not-found') {
          throw new KvClientError('lease-not-found', `lease ${id} is gone: it expired or was revoked (${error.message})`, error.status, error.serverCode, { cause: error });
        }
        // The first keep-alive says whether the lease exists at all; a refusal (a token, a role) or
        // a certificate does not get better by waiting.
        const hopeless = ttlMs === undefined || (error instanceof KvClientError && (error.code === 'bad-request' || error.code === 'tls'));
        if (hopeless) throw error;
        if (Date.now() - renewedAt >= ttlMs!) {
          const why = error instanceof Error ? error.message : String(error);
          throw new KvClientError('timeout', `lease ${id}: no keep-alive was confirmed within its TTL of ${ttlMs! / 1000} s, so it may have expired; last error: ${why}`, undefined, undefined, { cause: error });
        }
        await pause(KEEP_ALIVE_RETRY_MS);
        continue;
      }
      if (stopped) return;
      ttlMs = renewal.ttl * 1000;
      renewedAt = sentAt;
      options.onRenewal?.(renewal);
      await pause(options.intervalMs ?? ttlMs / 3);
    }
  };

  const done = new Promise<void>((resolve, reject) => {
    stopKeeper = resolve;
    run().then(resolve, reject);
  });
  return {
    stop: () => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      wake?.();
      // A keep-alive still in flight is left to finish on its own (bounded by the TTL); its answer is ignored.
      stopKeeper();
    },
    done,
  };
}
