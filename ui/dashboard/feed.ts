/**
 * The dashboard's connection to its node's event feed (GET /v1/events, Server-Sent Events). Read
 * with fetch rather than EventSource, so that a bearer token goes in the Authorization header and
 * never in a URL. Reconnects after RETRY_MS whenever the stream ends (the node restarts, stops).
 */
import type { DashboardSnapshot, LeaderChange } from '../../src/kv/dashboard-feed.js';

const RETRY_MS = 1000;
/** An event larger than this is not one the node sends: the stream is dropped and reopened. */
const EVENT_CHARS_MAX = 4 * 1024 * 1024;

export type FeedState =
  | { readonly kind: 'connecting' }
  | { readonly kind: 'live' }
  | { readonly kind: 'lost'; readonly reason: string }
  | { readonly kind: 'unauthorized'; readonly reason: string };

export interface FeedHandlers {
  snapshot(snapshot: DashboardSnapshot): void;
  leader(change: LeaderChange): void;
  state(state: FeedState): void;
}

/** Follows the feed until the returned function is called. */
export function followFeed(token: string, handlers: FeedHandlers): () => void {
  const abort = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const connect = async (): Promise<void> => {
    handlers.state({ kind: 'connecting' });
    try {
      const headers: Record<string, string> = token === '' ? {} : { Authorization: `Bearer ${token}` };
      const response = await fetch('/v1/events', { headers, signal: abort.signal, cache: 'no-store' });
      if (response.status === 401 || response.status === 403) {
        const body = (await response.json().catch(() => ({}))) as { error?: { message?: string } };
        handlers.state({ kind: 'unauthorized', reason: body.error?.message ?? `HTTP ${response.status}` });
        return; // a new token is needed: the page reconnects when one is given
      }
      if (!response.ok || response.body === null) throw new Error(`HTTP ${response.status}`);
      handlers.state({ kind: 'live' });
      await readEvents(response.body, (event, data) => {
        if (event === 'snapshot') handlers.snapshot(data as DashboardSnapshot);
        else if (event === 'leader') handlers.leader(data as LeaderChange);
      });
      throw new Error('the node ended the stream');
    } catch (error) {
      if (abort.signal.aborted) return;
      handlers.state({ kind: 'lost', reason: error instanceof Error ? error.message : String(error) });
      timer = setTimeout(() => void connect(), RETRY_MS);
    }
  };
  void connect();
  return () => {
    abort.abort();
    clearTimeout(timer);
  };
}

/** Parses a text/event-stream body: `event:` and `data:` lines, an empty line ends an event. */
async function readEvents(body: ReadableStream<Uint8Array>, onEvent: (event: string, data: unknown) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    if (buffer.length > EVENT_CHARS_MAX) throw new Error('an event too large');
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      let data = '';
      for (const line of frame.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data === '') continue;
      try {
        onEvent(event, JSON.parse(data));
      } catch {
        // one event the page cannot read: skip it, the next snapshot replaces it
      }
    }
  }
}
