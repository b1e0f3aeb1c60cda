/**
 * Watch: every change the state machine applies, by revision, to whoever watches a key range.
 *
 * The KV service publishes each applied write's events here (`publish(revision, events)`, in
 * revision order, one call per revision; a transaction or a lease expiry may change several keys
 * in one revision). The hub keeps a bounded history of the latest revisions (HISTORY_EVENTS events
 * or HISTORY_BYTES of keys and values, whichever binds first) so that a watcher can start at a past
 * revision, or resume after a disconnect from the revision after the last one it saw, on any node
 * that has applied that far. A revision older than the history is gone: the watch fails with
 * `compacted` and the revision to start over from (read the range, then watch from the revision the
 * read reflects). `reset(revision)` says the state jumped (a snapshot was installed or restored):
 * the history before it is unknown, so it is dropped, and watchers that had not seen everything up
 * to it are ended with `compacted`.
 *
 * Delivery is paced by the watcher: a watcher catching up from history pulls one batch at a time,
 * waiting for its sink to drain; a live watcher gets each revision as it is published, and one
 * whose sink holds more than its bound unsent (a slow or stalled reader) is cut off with
 * `slow-watcher` rather than let memory grow. Everything runs on the event loop's thread; the hub
 * never blocks the apply path for a watcher.
 */
import { bytesToKeyString, type KvChange } from './state-machine.js';

/** One change to one key (the state machine's KvChange). */
export type WatchEvent = KvChange;

/** The keys a watcher wants: one key, a prefix, or [start, end) (end undefined: to the end of the keyspace). */
export type WatchFilter =
  | { readonly key: Uint8Array }
  | { readonly prefix: Uint8Array }
  | { readonly start: Uint8Array; readonly end?: Uint8Array };

/** Why a watch ended. */
export interface WatchEnd {
  readonly code: 'compacted' | 'slow-watcher' | 'closed';
  readonly message: string;
  /** compacted: the oldest revision still available is compactRevision + 1. */
  readonly compactRevision?: number;
}

/** Where a watcher's events go (an SSE stream, a test). */
export interface WatchSink {
  /** Events of one revision (only those the filter matches; never empty). */
  send(revision: number, events: readonly WatchEvent[]): void;
  /** Bytes sent but not yet taken by the reader: the hub waits (catching up) or cuts off (live) on it. */
  pending(): number;
  /** Resolves once pending() is low again (or the sink closed). */
  drained(): Promise<void>;
  /** The watch is over (the sink should end the stream); called once. */
  end(reason: WatchEnd): void;
}

export interface WatchHubOptions {
  /** Events kept for watchers that start in the past (default 100,000). */
  readonly historyEvents?: number;
  /** Bytes of keys and values kept (default 64 MiB). */
  readonly historyBytes?: number;
  /** A live watcher with more than this unsent is cut off (default 8 MiB). */
  readonly watcherBufferBytes?: number;
  /** Watchers at once (default 10,000); more are refused. */
  readonly watchersMax?: number;
}

interface Revision {
  readonly revision: number;
  readonly events: readonly WatchEvent[];
  readonly bytes: number;
}

/** Revisions a catching-up watcher takes from history between two waits for its sink. */
const CATCH_UP_BATCH = 256;

class Matcher {
  private readonly low: string;
  /** Exclusive upper bound; undefined: none. */
  private readonly high: string | undefined;
  private readonly exact: boolean;

  constructor(filter: WatchFilter) {
    if ('key' in filter) {
      this.low = bytesToKeyString(filter.key);
      this.high = undefined;
      this.exact = true;
    } else if ('prefix' in filter) {
      this.low = bytesToKeyString(filter.prefix);
      this.high = prefixEnd(this.low);
      this.exact = false;
    } else {
      this.low = bytesToKeyString(filter.start);
      this.high = filter.end === undefined || filter.end.length === 0 ? undefined : bytesToKeyString(filter.end);
      this.exact = false;
    }
  }

  matches(key: string): boolean {
    if (this.exact) return key === this.low;
    return key >= this.low && (this.high === undefined || key < this.high);
  }
}

/** The first key after every key that starts with `prefix` (latin1 strings), or undefined if none. */
function prefixEnd(prefix: string): string | undefined {
  let end = prefix;
  while (end.length > 0) {
    const last = end.charCodeAt(end.length - 1);
    if (last < 0xff) return end.slice(0, -1) + String.fromCharCode(last + 1);
    end = end.slice(0, -1);
  }
  return undefined;
}

/** Each event's key as a latin1 string, made once however many watchers look at it. */
const keyStrings = new WeakMap<WatchEvent, string>();

function keyStringOf(event: WatchEvent): string {
  let key = keyStrings.get(event);
  if (key === undefined) {
    key = bytesToKeyString(event.key);
    keyStrings.set(event, key);
  }
  return key;
}

function eventBytes(event: WatchEvent): number {
  return event.key.length + (event.value?.length ?? 0) + 32;
}

export class Watcher {
  /** The next revision this watcher needs. */
  next: number;
  /** Delivered live (true) or pulling from history. */
  live = false;
  ended = false;

  constructor(
    readonly hub: WatchHub,
    readonly matcher: Matcher,
    readonly sink: WatchSink,
    from: number,
  ) {
    this.next = from;
  }

  /** Stops this watch (the client went away); the sink is not told. */
  cancel(): void {
    this.hub.remove(this);
  }
}

export class WatchHub {
  private readonly history: Revision[] = [];
  private historyHead = 0;
  private historyEventCount = 0;
  private historyByteCount = 0;
  private readonly watchers = new Set<Watcher>();
  private readonly options: Required<WatchHubOptions>;
  private current = 0;
  private compacted = 0;
  private closed = false;
  /** Watchers cut off for being slow, since the start. */
  slowCutoffs = 0;

  constructor(options: WatchHubOptions = {}) {
    this.options = {
      historyEvents: options.historyEvents ?? 100_000,
      historyBytes: options.historyBytes ?? 64 * 1024 * 1024,
      watcherBufferBytes: options.watcherBufferBytes ?? 8 * 1024 * 1024,
      watchersMax: options.watchersMax ?? 10_000,
    };
  }

  /** The latest revision published (or reset to). */
  get revision(): number {
    return this.current;
  }

  /** Revisions up to this one are no longer available to start from. */
  get compactRevision(): number {
    return this.compacted;
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  /**
   * The state jumped to `revision` (a snapshot restored): history is dropped, and every watcher
   * that still needed an earlier revision is ended with `compacted`.
   */
  reset(revision: number): void {
    this.history.length = 0;
    this.historyHead = 0;
    this.historyEventCount = 0;
    this.historyByteCount = 0;
    this.current = revision;
    this.compacted = revision;
    for (const watcher of [...this.watchers]) {
      if (watcher.next <= revision) this.endWatcher(watcher, this.compactedEnd(watcher.next));
      else watcher.live = true;
    }
  }

  /**
   * Events of one applied revision, in revision order. A revision that changed nothing a watcher
   * could see (a failed cas, a read) is not published; revisions may therefore skip numbers.
   */
  publish(revision: number, events: readonly WatchEvent[]): void {
    if (!(revision > this.current)) throw new Error(`watch: revision ${revision} published after ${this.current}`);
    this.current = revision;
    let bytes = 0;
    for (const event of events) bytes += eventBytes(event);
    this.history.push({ revision, events, bytes });
    this.historyEventCount += events.length;
    this.historyByteCount += bytes;
    this.trimHistory();
    for (const watcher of this.watchers) {
      // A watcher that starts in the future waits for its first revision.
      if (!watcher.live || revision < watcher.next) continue;
      this.deliver(watcher, revision, events);
      if (!watcher.ended && watcher.sink.pending() > this.options.watcherBufferBytes) {
        this.slowCutoffs++;
        this.endWatcher(watcher, {
          code: 'slow-watcher',
          message: `the watcher did not keep up: more than ${this.options.watcherBufferBytes} bytes of events were waiting for it; resume from revision ${watcher.next}`,
        });
      }
    }
  }

  /** Why a watch from `from` would be refused now, or null if it would start. */
  refusal(from: number | undefined): { refused: 'compacted' | 'too-many-watchers' | 'closed'; message: string; compactRevision?: number } | null {
    if (this.closed) return { refused: 'closed', message: 'the server is stopping; watch on another node' };
    if (this.watchers.size >= this.options.watchersMax) {
      return { refused: 'too-many-watchers', message: `this node serves at most ${this.options.watchersMax} watchers at once; use another node` };
    }
    const start = from === undefined || from <= 0 ? this.current + 1 : from;
    if (start <= this.compacted) return { refused: 'compacted', message: this.compactedEnd(start).message, compactRevision: this.compacted };
    return null;
  }

  /**
   * Starts a watch at revision `from` (events with revision ≥ from; 0 or undefined: only what is
   * published from now on). Returns the watcher, or why it cannot start: `compacted` (from is
   * older than the history) or `too-many-watchers`.
   */
  watch(filter: WatchFilter, from: number | undefined, sink: WatchSink): Watcher | { refused: 'compacted' | 'too-many-watchers' | 'closed'; message: string; compactRevision?: number } {
    const refused = this.refusal(from);
    if (refused !== null) return refused;
    const start = from === undefined || from <= 0 ? this.current + 1 : from;
    const watcher = new Watcher(this, new Matcher(filter), sink, start);
    this.watchers.add(watcher);
    if (start > this.current) watcher.live = true;
    else void this.catchUp(watcher);
    return watcher;
  }

  /** @internal Watcher.cancel. */
  remove(watcher: Watcher): void {
    watcher.ended = true;
    this.watchers.delete(watcher);
  }

  /**
   * Ends every watch with `reason` and keeps serving new ones: the authorization changed, and a
   * watcher whose token is gone must not keep a stream it could not open now (KvClient.watch
   * resumes by itself, checked anew).
   */
  endAll(reason: WatchEnd): void {
    for (const watcher of [...this.watchers]) this.endWatcher(watcher, reason);
  }

  /** Ends every watch (the server is stopping); later watches are refused. */
  close(): void {
    this.closed = true;
    for (const watcher of [...this.watchers]) this.endWatcher(watcher, { code: 'closed', message: 'the server is stopping; resume on another node' });
  }

  private compactedEnd(start: number): WatchEnd {
    return {
      code: 'compacted',
      message: `revision ${start} is no longer available on this node (its history starts after revision ${this.compacted}); read the range again and watch from the revision the read reflects`,
      compactRevision: this.compacted,
    };
  }

  private endWatcher(watcher: Watcher, reason: WatchEnd): void {
    if (watcher.ended) return;
    this.remove(watcher);
    watcher.sink.end(reason);
  }

  private deliver(watcher: Watcher, revision: number, events: readonly WatchEvent[]): void {
    let matched: WatchEvent[] | undefined;
    let all = true;
    for (const event of events) {
      if (watcher.matcher.matches(keyStringOf(event))) (matched ??= []).push(event);
      else all = false;
    }
    watcher.next = revision + 1;
    // Every watcher that matches the whole revision gets the very same array, so a sink can
    // encode it once for all of them (http-watch-routes.ts does).
    if (matched !== undefined) watcher.sink.send(revision, all ? events : matched);
  }

  /** Sends `watcher` what history holds from its next revision on, paced by its sink; then it goes live. */
  private async catchUp(watcher: Watcher): Promise<void> {
    while (!watcher.ended) {
      if (watcher.next <= this.compacted) {
        this.endWatcher(watcher, this.compactedEnd(watcher.next));
        return;
      }
      let at = this.indexOf(watcher.next);
      let sent = 0;
      while (at < this.history.length && sent < CATCH_UP_BATCH) {
        const entry = this.history[at]!;
        this.deliver(watcher, entry.revision, entry.events);
        at++;
        sent++;
      }
      if (at >= this.history.length) {
        // Nothing more in history: what is published from now on comes live.
        watcher.next = this.current + 1;
        watcher.live = true;
        return;
      }
      await watcher.sink.drained();
    }
  }

  /** The position in history of the first revision ≥ `revision`. */
  private indexOf(revision: number): number {
    let low = this.historyHead;
    let high = this.history.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.history[mid]!.revision < revision) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  private trimHistory(): void {
    while (
      this.history.length - this.historyHead > 1 &&
      (this.historyEventCount > this.options.historyEvents || this.historyByteCount > this.options.historyBytes)
    ) {
      const dropped = this.history[this.historyHead]!;
      this.historyHead++;
      this.historyEventCount -= dropped.events.length;
      this.historyByteCount -= dropped.bytes;
      this.compacted = dropped.revision;
    }
    // Compact the array now and then, so the dropped prefix does not pin memory.
    if (this.historyHead > 1024 && this.historyHead * 2 > this.history.length) {
      this.history.splice(0, this.historyHead);
      this.historyHead = 0;
    }
  }
}
