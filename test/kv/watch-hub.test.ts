/**
 * The watch hub on its own: live and catch-up delivery (every matching event once, in revision
 * order, from the start revision on, across the switch from history to live), filters, compaction,
 * reset after a snapshot, slow watchers cut off, close.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HttpError } from '../../src/kv/http-io.js';
import { parseWatchRequest } from '../../src/kv/http-watch-routes.js';
import { WatchHub, Watcher, type WatchEnd, type WatchEvent, type WatchFilter, type WatchSink } from '../../src/kv/watch-hub.js';

const utf8 = new TextEncoder();
const text = new TextDecoder();

function put(key: string, value = 'v', createRevision = 1, version = 1): WatchEvent {
  return { type: 'put', key: utf8.encode(key), value: utf8.encode(value), createRevision, version };
}

/** A sink that records what it got; `stalled` keeps drained() pending and reports `pendingBytes`. */
class Recorder implements WatchSink {
  readonly got: { revision: number; keys: string[] }[] = [];
  ended: WatchEnd | undefined;
  pendingBytes = 0;
  private release: (() => void) | undefined;
  stalled = false;

  send(revision: number, events: readonly WatchEvent[]): void {
    this.got.push({ revision, keys: events.map((e) => text.decode(e.key)) });
  }
  pending(): number {
    return this.pendingBytes;
  }
  drained(): Promise<void> {
    if (!this.stalled) return new Promise((resolve) => setImmediate(resolve));
    return new Promise((resolve) => (this.release = resolve));
  }
  unstall(): void {
    this.stalled = false;
    this.release?.();
  }
  end(reason: WatchEnd): void {
    assert.equal(this.ended, undefined, 'end is called once');
    this.ended = reason;
  }
}

function started(result: ReturnType<WatchHub['watch']>): Watcher {
  assert.ok(result instanceof Watcher, `watch refused: ${JSON.stringify(result)}`);
  return result;
}

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5));

describe('WatchHub', () => {
  it('live: a prefix watcher gets the matching events of each later revision, nothing else', () => {
    const hub = new WatchHub();
    hub.publish(1, [put('app/a')]);
    const sink = new Recorder();
    started(hub.watch({ prefix: utf8.encode('app/') }, undefined, sink));
    hub.publish(2, [put('other')]);
    hub.publish(3, [put('app/b'), put('zzz'), { type: 'delete', key: utf8.encode('app/a'), createRevision: 0, version: 0 }]);
    assert.deepEqual(sink.got, [{ revision: 3, keys: ['app/b', 'app/a'] }]);
  });

  it('filters: one key, [start, end), and a prefix ending in 0xff bytes', () => {
    const hub = new WatchHub();
    const cases: [WatchFilter, string[]][] = [
      [{ key: utf8.encode('b') }, ['b', 'b']],
      [{ start: utf8.encode('b'), end: utf8.encode('d') }, ['b', 'ba', 'c', 'b']],
      [{ start: utf8.encode('c') }, ['c', 'd']],
    ];
    const sinks = cases.map(([filter]) => {
      const sink = new Recorder();
      started(hub.watch(filter, undefined, sink));
      return sink;
    });
    const high = new Recorder();
    started(hub.watch({ prefix: new Uint8Array([0x61, 0xff]) }, undefined, high));
    let revision = 0;
    for (const key of ['a', 'b', 'ba', 'c', 'd']) hub.publish(++revision, [put(key)]);
    hub.publish(++revision, [{ type: 'put', key: new Uint8Array([0x61, 0xff, 0x01]), value: new Uint8Array(0), createRevision: 1, version: 1 }]);
    hub.publish(++revision, [{ type: 'put', key: new Uint8Array([0x62]), value: new Uint8Array(0), createRevision: 1, version: 1 }]);
    cases.forEach(([, keys], i) => assert.deepEqual(sinks[i]!.got.flatMap((g) => g.keys), keys));
    assert.deepEqual(high.got.map((g) => g.revision), [6]);
  });

  it('from a past revision: history first, then live, with nothing lost or repeated across the switch', async () => {
    const hub = new WatchHub();
    for (let r = 1; r <= 1000; r++) hub.publish(r, [put(`k${r % 7}`)]);
    const sink = new Recorder();
    started(hub.watch({ prefix: utf8.encode('k') }, 500, sink));
    // Published while the watcher is still catching up (it pulls 256 revisions at a time).
    for (let r = 1001; r <= 1100; r++) hub.publish(r, [put(`k${r % 7}`)]);
    await settle();
    await settle();
    assert.deepEqual(
      sink.got.map((g) => g.revision),
      Array.from({ length: 601 }, (_, i) => 500 + i),
    );
  });

  it('property: every watcher gets exactly the matching events with revision ≥ its start, in order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.constantFrom('a', 'ab', 'b', 'c'), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.record({ at: fc.nat(60), from: fc.nat(70), prefix: fc.constantFrom('a', 'b', '') }), { maxLength: 5 }),
        async (revisions, watchers) => {
          const hub = new WatchHub({ historyEvents: 1_000 });
          const sinks: { sink: Recorder; from: number; prefix: string }[] = [];
          for (let r = 1; r <= revisions.length; r++) {
            for (const w of watchers.filter((x) => x.at === r - 1)) {
              const sink = new Recorder();
              const from = w.from === 0 ? hub.revision + 1 : w.from;
              started(hub.watch({ prefix: utf8.encode(w.prefix) }, from, sink));
              sinks.push({ sink, from, prefix: w.prefix });
            }
            hub.publish(r, revisions[r - 1]!.map((k) => put(k)));
            if (r % 5 === 0) await settle();
          }
          await settle();
          await settle();
          for (const { sink, from, prefix } of sinks) {
            const want: { revision: number; keys: string[] }[] = [];
            revisions.forEach((keys, i) => {
              const matched = keys.filter((k) => k.startsWith(prefix));
              if (i + 1 >= from && matched.length > 0) want.push({ revision: i + 1, keys: matched });
            });
            assert.deepEqual(sink.got, want);
          }
        },
      ),
      { numRuns: 150, seed: 42 },
    );
  });

  it('compaction: a start older than the history is refused with the revision to start over from; a slow catch-up is ended', async () => {
    const hub = new WatchHub({ historyEvents: 1000 });
    for (let r = 1; r <= 1300; r++) hub.publish(r, [put('k')]);
    assert.equal(hub.compactRevision, 300);
    const refused = hub.watch({ key: utf8.encode('k') }, 150, new Recorder());
    assert.ok(!(refused instanceof Watcher));
    assert.equal(refused.refused, 'compacted');
    assert.equal(refused.compactRevision, 300);
    assert.deepEqual(hub.refusal(301), null);
    const slow = new Recorder();
    slow.stalled = true;
    started(hub.watch({ key: utf8.encode('k') }, 301, slow));
    assert.equal(slow.got.length, 256, 'the first batch went out; the sink is stalled');
    for (let r = 1301; r <= 2400; r++) hub.publish(r, [put('k')]);
    slow.unstall();
    await settle();
    assert.equal(slow.ended?.code, 'compacted');
  });

  it('reset (a snapshot installed): history is gone, watchers that still needed earlier revisions end with compacted', () => {
    const hub = new WatchHub();
    hub.publish(1, [put('k')]);
    const live = new Recorder();
    started(hub.watch({ key: utf8.encode('k') }, undefined, live));
    hub.reset(10);
    assert.equal(live.ended?.code, 'compacted');
    assert.equal(hub.compactRevision, 10);
    const after = new Recorder();
    started(hub.watch({ key: utf8.encode('k') }, 11, after));
    hub.publish(11, [put('k')]);
    assert.deepEqual(after.got, [{ revision: 11, keys: ['k'] }]);
  });

  it('a live watcher whose reader does not keep up is cut off; cancel and close end the rest; too many are refused', () => {
    const hub = new WatchHub({ watcherBufferBytes: 1000, watchersMax: 2 });
    const slow = new Recorder();
    started(hub.watch({ prefix: new Uint8Array(0) }, undefined, slow));
    const fine = new Recorder();
    const fineWatcher = started(hub.watch({ prefix: new Uint8Array(0) }, undefined, fine));
    const third = hub.watch({ prefix: new Uint8Array(0) }, undefined, new Recorder());
    assert.ok(!(third instanceof Watcher) && third.refused === 'too-many-watchers');
    slow.pendingBytes = 5000;
    hub.publish(1, [put('x')]);
    assert.equal(slow.ended?.code, 'slow-watcher');
    assert.match(slow.ended!.message, /resume from revision 2/);
    assert.equal(hub.slowCutoffs, 1);
    assert.equal(hub.watcherCount, 1);
    fineWatcher.cancel();
    assert.equal(hub.watcherCount, 0);
    assert.equal(fine.ended, undefined, 'a cancelled watch is not told');
    const last = new Recorder();
    started(hub.watch({ prefix: new Uint8Array(0) }, undefined, last));
    hub.close();
    assert.equal(last.ended?.code, 'closed');
    assert.equal(hub.refusal(undefined)?.refused, 'closed');
  });

  it('refuses a revision that does not move forward', () => {
    const hub = new WatchHub();
    hub.publish(5, [put('k')]);
    assert.throws(() => hub.publish(5, [put('k')]), /revision 5 published after 5/);
  });

  it('GET /v1/watch parameters: any query string is a filter and a start, or an HttpError 4xx, never another throw', () => {
    const name = fc.constantFrom('key', 'prefix', 'start', 'end', 'from-revision', 'encoding', 'limit', '', 'x');
    const value = fc.oneof(fc.constantFrom('', 'a', 'YQ==', '%FF', '%zz', '-1', '0', '12', '9999999999999999', 'base64', 'utf8', '1e3'), fc.string({ maxLength: 12 }));
    fc.assert(
      fc.property(fc.array(fc.tuple(name, fc.option(value)), { maxLength: 5 }), fc.option(fc.string({ maxLength: 20 })), (params, lastEventId) => {
        const query = params.map(([k, v]) => (v === null ? k : `${k}=${v}`)).join('&');
        try {
          const parsed = parseWatchRequest(query, lastEventId ?? undefined);
          assert.ok(parsed.from === undefined || (Number.isSafeInteger(parsed.from) && parsed.from >= 0));
        } catch (error) {
          assert.ok(error instanceof HttpError && error.status >= 400 && error.status < 500, `${query}: ${String(error)}`);
        }
      }),
      { numRuns: 2000, seed: 7 },
    );
    assert.deepEqual(parseWatchRequest('prefix=a&from-revision=5', undefined).from, 5);
    assert.deepEqual(parseWatchRequest('key=a', '41').from, 42);
    assert.throws(() => parseWatchRequest('prefix=a&key=b', undefined), /exactly one of key, prefix or start/);
  });
});
