/**
 * KvClient.watch(): the changes to a key range (GET /v1/watch, http-watch-routes.ts) as an async
 * iterator of revisions, that survives the loss of the node it watches on.
 *
 * It watches on one node at a time. When the stream breaks (the node died, was stopped, cut the
 * watcher off as slow, or the connection dropped), it resumes on the next endpoint from the
 * revision after the last one it has seen — `progress` messages move that point on while nothing
 * matches — so no revision is lost or repeated, and revisions come in order. A node that has not
 * yet applied that far simply has nothing to send until it has. It gives up only when no endpoint
 * accepts the watch within the client's timeout (code 'timeout'), when the start is older than the
 * history of the node asked (code 'compacted', with `compactRevision`: read the range again and
 * watch from the revision it reflects), on a refused request (400/401/403), or when `signal` aborts
 * (the iterator then just ends). Breaking out of a `for await` closes the stream.
 */
import type { ClusterFetch } from './client-http.js';
import type { ClientEndpoints } from './client-endpoints.js';

export interface KvWatchEvent {
  readonly type: 'put' | 'delete';
  /** The key as text (invalid UTF-8 replaced), and its bytes. */
  readonly key: string;
  readonly keyBytes: Uint8Array;
  /** put: the value as text (invalid UTF-8 replaced) and its bytes; delete: null. */
  readonly value: string | null;
  readonly valueBytes: Uint8Array | null;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

/** The matching changes of one revision. */
export interface KvWatchBatch {
  readonly revision: number;
  readonly events: readonly KvWatchEvent[];
}

export type KvWatchFilter = { readonly key: string | Uint8Array } | { readonly prefix: string | Uint8Array } | { readonly start: string | Uint8Array; readonly end?: string | Uint8Array };

export interface KvWatchOptions {
  /** The first revision wanted (default: from now on). */
  readonly fromRevision?: number;
  /**
   * A stream that brings nothing for this long (not even the node's `progress`, sent every 5 s) is
   * taken for a hung node and resumed elsewhere (default 15 s).
   */
  readonly idleTimeoutMs?: number;
  /** Ends the watch (the iterator returns). */
  readonly signal?: AbortSignal;
}

/** What a watch needs from its KvClient. */
export interface WatchContext {
  readonly fetch: ClusterFetch;
  readonly endpoints: ClientEndpoints;
  readonly timeoutMs: number;
  readonly retryDelayMs: number;
  readonly maxRetryDelayMs: number;
  /** Builds the client's error (KvClientError) for a watch that cannot go on. */
  fail(code: 'timeout' | 'bad-request' | 'compacted' | 'server-error', message: string, status?: number, serverCode?: string, compactRevision?: number): Error;
}

const DEFAULT_IDLE_TIMEOUT_MS = 15_000;
const utf8 = new TextEncoder();
const lenient = new TextDecoder();

function bytesOf(value: string | Uint8Array): Uint8Array {
  return typeof value === 'string' ? utf8.encode(value) : value;
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function query(filter: KvWatchFilter, from: number | undefined): string {
  const params = new URLSearchParams({ encoding: 'base64' });
  if ('key' in filter) params.set('key', base64(bytesOf(filter.key)));
  else if ('prefix' in filter) params.set('prefix', base64(bytesOf(filter.prefix)));
  else {
    params.set('start', base64(bytesOf(filter.start)));
    if (filter.end !== undefined) params.set('end', base64(bytesOf(filter.end)));
  }
  if (from !== undefined) params.set('from-revision', String(from));
  return params.toString();
}

function decodeEvent(raw: Record<string, unknown>): KvWatchEvent {
  const keyBytes = new Uint8Array(Buffer.from(String(raw['key'] ?? ''), 'base64'));
  const valueBytes = raw['type'] === 'put' ? new Uint8Array(Buffer.from(String(raw['value'] ?? ''), 'base64')) : null;
  return {
    type: raw['type'] === 'delete' ? 'delete' : 'put',
    key: lenient.decode(keyBytes),
    keyBytes,
    value: valueBytes === null ? null : lenient.decode(valueBytes),
    valueBytes,
    createRevision: Number(raw['createRevision'] ?? 0),
    modRevision: Number(raw['modRevision'] ?? 0),
    version: Number(raw['version'] ?? 0),
  };
}

interface SseMessage {
  readonly event: string;
  readonly data: string;
}

/** Splits an SSE byte stream into messages. */
async function* sseMessages(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event = 'message';
  let data: string[] = [];
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, '');
        buffer = buffer.slice(newline + 1);
        if (line === '') {
          if (data.length > 0) yield { event, data: data.join('\n') };
          event = 'message';
          data = [];
        } else if (line.startsWith(':')) {
          // a comment
        } else {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event = text;
          else if (field === 'data') data.push(text);
        }
      }
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => undefined);
  }
}

/** Why one stream ended: resume elsewhere, or stop. */
type StreamEnd = { readonly resume: true; readonly why: string } | { readonly resume: false; readonly error: Error };

export async function* watchChanges(context: WatchContext, filter: KvWatchFilter, options: KvWatchOptions = {}): AsyncGenerator<KvWatchBatch> {
  let next = options.fromRevision !== undefined && options.fromRevision > 0 ? options.fromRevision : undefined;
  let base = context.endpoints.current;
  let failures = 0;
  /** When the last stream was accepted (or the watch began): the timeout counts from there. */
  let lastAccepted = Date.now();
  let lastWhy = 'no endpoint tried yet';
  const aborted = (): boolean => options.signal?.aborted === true;
  while (!aborted()) {
    if (Date.now() - lastAccepted > context.timeoutMs) {
      throw context.fail('timeout', `watch: no member accepted the watch within ${context.timeoutMs} ms; last error: ${lastWhy}`);
    }
    const abort = new AbortController();
    const onAbort = (): void => abort.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    // One timer: the answer must start within the idle bound, and then something must come at least that often.
    const idleMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    let idle = setTimeout(() => abort.abort(), idleMs);
    const heard = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => abort.abort(), idleMs);
    };
    let end: StreamEnd;
    try {
      const response = await context.fetch(`${base}/v1/watch?${query(filter, next)}`, {
        method: 'GET',
        headers: { Accept: 'text/event-stream' },
        redirect: 'manual',
        signal: abort.signal,
      });
      heard();
      if (response.status !== 200 || response.body === null) {
        const text = await response.text().catch(() => '');
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // not JSON
        }
        const error = (body['error'] ?? {}) as Record<string, unknown>;
        const code = typeof error['code'] === 'string' ? error['code'] : undefined;
        const message = `${response.status}${code === undefined ? '' : ` ${code}`}: ${typeof error['message'] === 'string' ? error['message'] : text.slice(0, 200)}`;
        if (response.status === 410) {
          throw context.fail('compacted', `watch: ${message}`, 410, code, Number(error['compactRevision'] ?? 0));
        }
        if (response.status === 400 || response.status === 401 || response.status === 403 || response.status === 404 || response.status === 405) {
          throw context.fail('bad-request', `watch: ${message}`, response.status, code);
        }
        end = { resume: true, why: message };
      } else {
        // The connection is open; from here the stream's own events say how it goes.
        const reader = sseMessages(response.body);
        end = { resume: true, why: 'the stream ended' };
        let accepted = false;
        try {
          for await (const message of reader) {
            heard();
            let data: Record<string, unknown>;
            try {
              data = JSON.parse(message.data) as Record<string, unknown>;
            } catch {
              continue;
            }
            if (message.event === 'ready') {
              accepted = true;
              lastAccepted = Date.now();
              failures = 0;
              context.endpoints.answered(base);
            } else if (message.event === 'events') {
              const revision = Number(data['revision']);
              if (!Number.isSafeInteger(revision) || (next !== undefined && revision < next)) continue; // never repeat a revision
              const events = Array.isArray(data['events']) ? (data['events'] as Record<string, unknown>[]).map(decodeEvent) : [];
              next = revision + 1;
              yield { revision, events };
            } else if (message.event === 'progress') {
              const revision = Number(data['revision']);
              if (Number.isSafeInteger(revision) && (next === undefined || revision + 1 > next)) next = revision + 1;
            } else if (message.event === 'error') {
              const code = typeof data['code'] === 'string' ? data['code'] : 'error';
              if (code === 'compacted') {
                end = { resume: false, error: context.fail('compacted', `watch: ${String(data['message'] ?? 'compacted')}`, undefined, code, Number(data['compactRevision'] ?? 0)) };
              } else {
                end = { resume: true, why: `${code}: ${String(data['message'] ?? '')}` };
              }
              break;
            }
            if (accepted) lastAccepted = Date.now();
          }
        } finally {
          abort.abort();
        }
      }
    } catch (error) {
      if (aborted()) return;
      if (error instanceof Error && error.name === 'KvClientError') throw error;
      const why = abort.signal.aborted ? `nothing heard for ${idleMs} ms` : error instanceof Error ? error.message : String(error);
      end = { resume: true, why };
    } finally {
      clearTimeout(idle);
      options.signal?.removeEventListener('abort', onAbort);
    }
    if (aborted()) return;
    if (!end.resume) throw end.error;
    lastWhy = `${base}: ${end.why}`;
    // A watch that ran for a while and ended resumes at once elsewhere; repeated failures back off.
    base = context.endpoints.next(base);
    const delay = Math.min(context.maxRetryDelayMs, context.retryDelayMs * 2 ** Math.min(failures, 20));
    failures++;
    await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random() / 2)));
  }
}
