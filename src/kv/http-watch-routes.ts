/**
 * GET /v1/watch: the changes to a key range as Server-Sent Events (watch-hub.ts), served by any
 * node from what it has applied.
 *
 *     ?key=K | ?prefix=P | ?start=A[&end=B]   which keys (percent-decoded bytes; with
 *                                             encoding=base64 the values are base64); one is required
 *     ?from-revision=N                        events with revision ≥ N (default: from now on);
 *                                             a `Last-Event-ID: R` header (an EventSource
 *                                             reconnecting) means from R + 1
 *     ?encoding=base64                        keys and values out always base64 (default: UTF-8
 *                                             text when valid, else base64, per field)
 *
 * The stream: `ready` first ({"revision","compactRevision"}: what this node has applied, and the
 * newest revision no longer available), then one `events` message per revision with matching
 * changes (`id:` is the revision, so a reconnecting EventSource resumes by itself):
 *
 *     id: 42
 *     event: events
 *     data: {"revision":42,"events":[{"type":"put","key":"a","value":"1","encoding":"utf8",
 *            "createRevision":40,"modRevision":42,"version":3}, {"type":"delete","key":"b",...}]}
 *
 * and every PROGRESS_MS a `progress` message ({"revision"}) so a quiet watcher still learns how far
 * this node has applied, and resumes from there rather than from an old revision. It ends with an
 * `error` message ({"code","message","compactRevision"?}: `compacted`, `slow-watcher`, `closed`)
 * when the hub ends it. Before the stream starts: 400 for bad parameters, 410 `compacted` (with
 * `compactRevision`) for a revision no longer available, 503 `too-many-watchers`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, jsonValue, parseQuery, sendError, textParam } from './http-io.js';
import { Watcher, type WatchEnd, type WatchEvent, type WatchFilter, type WatchHub, type WatchSink } from './watch-hub.js';

export const WATCH_PATH = '/v1/watch';
/** How often a quiet stream gets a `progress` message (also keeps idle proxies from closing it). */
export const PROGRESS_MS = 5_000;
const PARAMETERS = new Set(['key', 'prefix', 'start', 'end', 'from-revision', 'encoding']);

function keyParam(params: Map<string, Uint8Array>, name: string, base64: boolean): Uint8Array | undefined {
  const raw = params.get(name);
  if (raw === undefined || !base64) return raw;
  const text = new TextDecoder().decode(raw);
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) throw new HttpError(400, 'bad-parameter', `${name} is not base64`);
  return new Uint8Array(Buffer.from(text, 'base64'));
}

/** The filter and start revision a request names; HttpError 400 for anything malformed. */
export function parseWatchRequest(rawQuery: string, lastEventId: string | undefined): { filter: WatchFilter; from: number | undefined; base64: boolean } {
  const params = parseQuery(rawQuery);
  for (const name of params.keys()) {
    if (!PARAMETERS.has(name)) throw new HttpError(400, 'unknown-parameter', `unknown query parameter "${name}" for GET ${WATCH_PATH}; it takes ${[...PARAMETERS].join(', ')}`);
  }
  const encoding = textParam(params, 'encoding');
  if (encoding !== undefined && encoding !== 'base64') throw new HttpError(400, 'bad-parameter', `encoding must be "base64", got "${encoding.slice(0, 40)}"`);
  const base64 = encoding === 'base64';
  const key = keyParam(params, 'key', base64);
  const prefix = keyParam(params, 'prefix', base64);
  const start = keyParam(params, 'start', base64);
  const end = keyParam(params, 'end', base64);
  const given = [key, prefix, start].filter((p) => p !== undefined).length;
  if (given !== 1) throw new HttpError(400, 'bad-parameter', 'give exactly one of key, prefix or start (with an optional end)');
  if (end !== undefined && start === undefined) throw new HttpError(400, 'bad-parameter', 'end needs start');
  if (key !== undefined && key.length === 0) throw new HttpError(400, 'bad-parameter', 'key must not be empty');
  const filter: WatchFilter = key !== undefined ? { key } : prefix !== undefined ? { prefix } : { start: start!, ...(end === undefined ? {} : { end }) };
  const fromText = textParam(params, 'from-revision');
  let from: number | undefined;
  if (fromText !== undefined) {
    if (!/^\d{1,15}$/.test(fromText)) throw new HttpError(400, 'bad-parameter', `from-revision must be a revision (a whole number), got "${fromText.slice(0, 40)}"`);
    from = Number(fromText);
  } else if (lastEventId !== undefined && lastEventId !== '') {
    if (!/^\d{1,15}$/.test(lastEventId)) throw new HttpError(400, 'bad-parameter', `Last-Event-ID must be a revision, got "${lastEventId.slice(0, 40)}"`);
    from = Number(lastEventId) + 1;
  }
  return { filter, from, base64 };
}

function eventJson(revision: number, event: WatchEvent, base64: boolean): Record<string, unknown> {
  const key = jsonValue(event.key, base64);
  const out: Record<string, unknown> = { type: event.type, key: key.value, keyEncoding: key.encoding };
  if (event.type === 'put') {
    const value = jsonValue(event.value ?? new Uint8Array(0), base64);
    out['value'] = value.value;
    out['encoding'] = value.encoding;
  }
  out['createRevision'] = event.createRevision;
  out['modRevision'] = revision;
  out['version'] = event.version;
  return out;
}

/** A revision's `events` message, by its events array, as text and as base64 (see SseSink.send). */
const TEXT_FRAMES = new WeakMap<readonly WatchEvent[], string>();
const BASE64_FRAMES = new WeakMap<readonly WatchEvent[], string>();

/** An SSE stream as a WatchSink. */
class SseSink implements WatchSink {
  private timer: NodeJS.Timeout | undefined;
  /** Set once the watch started: progress reports what it has been through. */
  watcher: Watcher | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly base64: boolean,
  ) {
    this.timer = setInterval(() => this.progress(), PROGRESS_MS);
    this.timer.unref();
  }

  send(revision: number, events: readonly WatchEvent[]): void {
    // Watchers that match a whole revision share its events array: encoded once for all of them.
    const frames = this.base64 ? BASE64_FRAMES : TEXT_FRAMES;
    let frame = frames.get(events);
    if (frame === undefined) {
      const data = JSON.stringify({ revision, events: events.map((e) => eventJson(revision, e, this.base64)) });
      frame = `id: ${revision}\nevent: events\ndata: ${data}\n\n`;
      frames.set(events, frame);
    }
    this.res.write(frame);
  }

  pending(): number {
    return this.res.writableLength;
  }

  drained(): Promise<void> {
    if (this.res.destroyed || !this.res.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.once('drain', done);
      this.res.once('close', done);
    });
  }

  end(reason: WatchEnd): void {
    this.stopTimer();
    if (!this.res.destroyed) {
      const body = { code: reason.code, message: reason.message, ...(reason.compactRevision === undefined ? {} : { compactRevision: reason.compactRevision }) };
      this.res.end(`event: error\ndata: ${JSON.stringify(body)}\n\n`);
    }
  }

  stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private progress(): void {
    if (this.res.destroyed || this.watcher === undefined) return;
    // What the watcher has been through (delivered, or passed over as not matching): a watcher
    // still catching up must not be told a revision it has not reached.
    this.res.write(`event: progress\ndata: ${JSON.stringify({ revision: this.watcher.next - 1 })}\n\n`);
  }
}

export function serveWatch(hub: WatchHub | undefined, req: IncomingMessage, res: ServerResponse, method: string, rawQuery: string): void {
  if (method !== 'GET') throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${WATCH_PATH}; use GET`, { Allow: 'GET' });
  if (hub === undefined) throw new HttpError(501, 'not-supported', 'this server has no watch');
  const lastEventId = req.headers['last-event-id'];
  const { filter, from, base64 } = parseWatchRequest(rawQuery, typeof lastEventId === 'string' ? lastEventId : undefined);
  const refusal = hub.refusal(from);
  if (refusal !== null) {
    if (refusal.refused === 'compacted') sendError(res, 410, 'compacted', refusal.message, { compactRevision: refusal.compactRevision ?? 0, revision: hub.revision });
    else sendError(res, 503, refusal.refused, refusal.message, {}, { 'Retry-After': '1' });
    return;
  }
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-store',
    'X-Tsraft-Revision': String(hub.revision),
  });
  const sink = new SseSink(res, base64);
  // Before the watch starts, so that `ready` precedes any catch-up event; same tick as the check.
  res.write(`event: ready\ndata: ${JSON.stringify({ revision: hub.revision, compactRevision: hub.compactRevision })}\n\n`);
  const watcher = hub.watch(filter, from, sink);
  if (!(watcher instanceof Watcher)) {
    // Not reachable after refusal() in the same tick; answered in the stream all the same.
    sink.end({ code: 'closed', message: watcher.message });
    return;
  }
  sink.watcher = watcher;
  res.on('close', () => {
    sink.stopTimer();
    watcher.cancel();
  });
}
