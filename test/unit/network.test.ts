import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Network, type ClientEnd, type RpcServer } from '../../src/sim/network.js';
import { Prng } from '../../src/sim/prng.js';
import { VirtualScheduler } from '../../src/sim/scheduler.js';

/** A labrpc-test-like server: "handler2" replies "handler2-<arg>", "echo:x" echoes x, etc. */
class JunkServer implements RpcServer<string, string> {
  readonly log: string[] = [];
  onDispatch: ((request: string) => void) | undefined;

  dispatch(request: string): string | null {
    this.log.push(request);
    this.onDispatch?.(request);
    if (request.startsWith('noreply')) return null;
    if (request.startsWith('big:')) return 'y'.repeat(Number(request.slice(4)));
    if (request.startsWith('x')) return ''; // the Bytes test's long requests get an empty reply
    return `reply-${request}`;
  }
}

function setup(seed = 1): { s: VirtualScheduler; net: Network<string, string> } {
  const s = new VirtualScheduler();
  const net = new Network<string, string>({
    scheduler: s,
    prng: new Prng(seed),
    requestSize: (r) => r.length,
    replySize: (r) => r.length,
  });
  return { s, net };
}

/** Wraps call() in a promise and checks the exactly-once and never-synchronous rules. */
function call(end: ClientEnd<string, string>, request: string): Promise<string | null> {
  return new Promise((resolve, reject) => {
    let inside = true;
    let calls = 0;
    end.call(request, (reply) => {
      calls++;
      if (inside) reject(new Error('onResult ran synchronously'));
      if (calls > 1) reject(new Error('onResult ran twice'));
      resolve(reply);
    });
    inside = false;
  });
}

test('labrpc Basic: a round trip works', async () => {
  const { s, net } = setup();
  await s.run(async () => {
    const end = net.makeEnd('end1-99');
    const server = new JunkServer();
    net.addServer('server99', server);
    net.connect('end1-99', 'server99');
    net.enable('end1-99', true);
    assert.equal(await call(end, '111'), 'reply-111');
    assert.equal(s.now(), 0, 'reliable delivery takes no virtual time');
    assert.equal(await call(end, 'abc'), 'reply-abc');
    assert.deepEqual(server.log, ['111', 'abc']);
  });
});

test('labrpc Disconnect: no reply while disabled; works once enabled', async () => {
  const { s, net } = setup();
  await s.run(async () => {
    const end = net.makeEnd('end1-99');
    const server = new JunkServer();
    net.addServer('server99', server);
    net.connect('end1-99', 'server99');
    const t0 = s.now();
    assert.equal(await call(end, '111'), null);
    assert.ok(s.now() - t0 < 100, 'short failure delay is 0..99 ms');
    assert.equal(server.log.length, 0, 'nothing reached the server');
    net.enable('end1-99', true);
    assert.equal(await call(end, '111'), 'reply-111');
    assert.equal(net.serverRpcCount('server99'), 1);
    assert.equal(net.totalRpcCount(), 2, 'both calls counted');
  });
});

test('labrpc Disconnect: unconnected endpoint and missing server fail', async () => {
  const { s, net } = setup();
  await s.run(async () => {
    const a = net.makeEnd('a');
    net.enable('a', true);
    assert.equal(await call(a, 'q'), null, 'unconnected');
    net.connect('a', 'nobody');
    assert.equal(await call(a, 'q'), null, 'no such server');
    assert.equal(net.totalRpcCount(), 2);
    assert.equal(net.serverRpcCount('nobody'), 0);
  });
});

test('labrpc Counts: 17 calls give a per-server count of exactly 17', async () => {
  const { s, net } = setup();
  await s.run(async () => {
    const end = net.makeEnd('end1-99');
    net.addServer('server99', new JunkServer());
    net.connect('end1-99', 'server99');
    net.enable('end1-99', true);
    for (let i = 0; i < 17; i++) {
      assert.equal(await call(end, `${i}`), `reply-${i}`);
    }
    assert.equal(net.serverRpcCount('server99'), 17);
    assert.equal(net.totalRpcCount(), 17);
  });
});

test('labrpc Bytes: request bytes on send, reply bytes on delivery, exact totals', async () => {
  const { s, net } = setup();
  await s.run(async () => {
    const end = net.makeEnd('end1-99');
    net.addServer('server99', new JunkServer());
    net.connect('end1-99', 'server99');
    net.enable('end1-99', true);
    const args = 'x'.repeat(284);
    for (let i = 0; i < 17; i++) assert.equal(await call(end, args), '');
    assert.equal(net.totalBytes(), 17 * 284); // 4828, labrpc's lower bound
    for (let i = 0; i < 17; i++) assert.equal(await call(end, 'big:107'), 'y'.repeat(107));
    assert.equal(net.totalBytes(), 17 * 284 + 17 * ('big:107'.length + 107));
  });
});

test('Bytes: request bytes are counted even for dropped and disconnected calls; lost replies are not', async () => {
  const { s, net } = setup(3);
  await s.run(async () => {
    const end = net.makeEnd('e');
    net.addServer('srv', new JunkServer());
    net.connect('e', 'srv');
    // Disabled: request bytes still counted, no reply bytes.
    assert.equal(await call(end, 'abcd'), null);
    assert.equal(net.totalBytes(), 4);
    net.enable('e', true);
    net.setReliable(false);
    const replies = await Promise.all(Array.from({ length: 100 }, () => call(end, 'big:10')));
    const delivered = replies.filter((r) => r !== null).length;
    assert.ok(delivered > 0 && delivered < 100);
    assert.equal(net.totalBytes(), 4 + 100 * 'big:10'.length + delivered * 10);
  });
});

test('labrpc ConcurrentMany: 20 clients x 10 RPCs all succeed, count 200', async () => {
  const { s, net } = setup();
  await s.run(async () => {
    net.addServer('1000', new JunkServer());
    const clients = Array.from({ length: 20 }, async (_, ii) => {
      const name = `end${ii}`;
      const end = net.makeEnd(name);
      net.connect(name, '1000');
      net.enable(name, true);
      let ok = 0;
      for (let j = 0; j < 10; j++) {
        const arg = `${100 * ii + j}`;
        if ((await call(end, arg)) === `reply-${arg}`) ok++;
      }
      return ok;
    });
    const oks = await Promise.all(clients);
    assert.equal(oks.reduce((a, b) => a + b, 0), 200);
    assert.equal(net.serverRpcCount('1000'), 200);
  });
});

test('labrpc Unreliable: of 300 calls, not all and not none succeed', async () => {
  const { s, net } = setup(11);
  await s.run(async () => {
    net.setReliable(false);
    assert.equal(net.isReliable(), false);
    net.addServer('1000', new JunkServer());
    const results = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const name = `end${i}`;
        const end = net.makeEnd(name);
        net.connect(name, '1000');
        net.enable(name, true);
        const t0 = s.now();
        const r = await call(end, `${i}`);
        const dt = s.now() - t0;
        assert.ok(dt >= 0 && dt <= 26, `unreliable delay ${dt}`);
        if (r !== null) assert.equal(r, `reply-${i}`);
        return r !== null;
      }),
    );
    const ok = results.filter(Boolean).length;
    assert.ok(ok > 0 && ok < 300, `ok ${ok}`);
    // ~81 % expected (0.9 * 0.9), sd ~7 over 300.
    assert.ok(ok > 200 && ok < 280, `ok ${ok}`);
    // The server saw ~90 %: every delivered request, plus those whose reply was lost.
    const seen = net.serverRpcCount('1000');
    assert.ok(seen >= ok && seen > 240 && seen < 295, `seen ${seen}`);
  });
});

test('labrpc ConcurrentOne: 20 concurrent calls on one endpoint are all delivered', async () => {
  const { s, net } = setup();
  await s.run(async () => {
    net.addServer('1000', new JunkServer());
    const end = net.makeEnd('c');
    net.connect('c', '1000');
    net.enable('c', true);
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => call(end, `${100 + i}`)));
    assert.deepEqual(
      replies,
      Array.from({ length: 20 }, (_, i) => `reply-${100 + i}`),
    );
    assert.equal(net.serverRpcCount('1000'), 20);
  });
});

test('labrpc Regression1: calls stuck while disabled do not delay a later call', async () => {
  const { s, net } = setup(5);
  await s.run(async () => {
    net.setLongDelays(true); // the stuck calls stay pending for up to 7 s
    const server = new JunkServer();
    net.addServer('1000', server);
    const end = net.makeEnd('c');
    net.connect('c', '1000');
    const stuck = Array.from({ length: 20 }, (_, i) => call(end, `${100 + i}`));
    await s.sleep(50);
    net.enable('c', true);
    const t0 = s.now();
    const reply = await call(end, '99');
    assert.equal(reply, 'reply-99');
    assert.ok(s.now() - t0 <= 30, `took ${s.now() - t0} ms`);
    assert.equal(net.serverRpcCount('1000'), 1, 'only the later call was delivered');
    const stuckReplies = await Promise.all(stuck);
    assert.deepEqual(stuckReplies, new Array(20).fill(null));
    assert.deepEqual(server.log, ['99']);
    assert.equal(net.totalRpcCount(), 21);
  });
});

test('labrpc Killed: deleting the server while a call is in flight fails the call', async () => {
  const { s, net } = setup();
  await s.run(async () => {
    const server = new JunkServer();
    net.addServer('1000', server);
    const end = net.makeEnd('c');
    net.connect('c', '1000');
    net.enable('c', true);

    // Deleted while the handler runs: the server did the work, the caller sees a failure.
    server.onDispatch = () => net.deleteServer('1000');
    assert.equal(await call(end, 'a'), null);
    assert.deepEqual(server.log, ['a']);

    // Deleted after the call was made but before it was processed.
    const server2 = new JunkServer();
    net.addServer('1000', server2);
    const pending = call(end, 'b');
    net.deleteServer('1000');
    assert.equal(await pending, null);

    // Replaced by a new server object while in flight: also dead; the new object has count 0.
    const server3 = new JunkServer();
    net.addServer('1000', server3);
    const pending3 = call(end, 'c');
    const server4 = new JunkServer();
    net.addServer('1000', server4);
    assert.equal(await pending3, null);
    assert.deepEqual(server3.log, ['c'], 'the captured server object handled it');
    assert.equal(net.serverRpcCount('1000'), 0);

    // Disabled while in flight: dead as well.
    const pending4 = call(end, 'd');
    net.enable('c', false);
    assert.equal(await pending4, null);
    assert.deepEqual(server4.log, ['d']);
    assert.equal(net.serverRpcCount('1000'), 1);

    // After deletion, new calls take the disabled path and never reach a server.
    net.enable('c', true);
    net.deleteServer('1000');
    assert.equal(await call(end, 'e'), null);
    assert.equal(net.serverRpcCount('1000'), 0);
  });
});

test('a handler returning null fails the call', async () => {
  const { s, net } = setup();
  await s.run(async () => {
    net.addServer('srv', new JunkServer());
    const end = net.makeEnd('e');
    net.connect('e', 'srv');
    net.enable('e', true);
    assert.equal(await call(end, 'noreply'), null);
    assert.equal(net.serverRpcCount('srv'), 1);
    assert.equal(net.totalBytes(), 'noreply'.length);
  });
});

test('addServer replaces the server and resets its count', async () => {
  const { s, net } = setup();
  await s.run(async () => {
    net.addServer('srv', new JunkServer());
    const end = net.makeEnd('e');
    net.connect('e', 'srv');
    net.enable('e', true);
    await call(end, '1');
    await call(end, '2');
    assert.equal(net.serverRpcCount('srv'), 2);
    const fresh = new JunkServer();
    net.addServer('srv', fresh);
    assert.equal(net.serverRpcCount('srv'), 0);
    assert.equal(await call(end, '3'), 'reply-3');
    assert.equal(net.serverRpcCount('srv'), 1);
    assert.deepEqual(fresh.log, ['3']);
  });
});

test('long reordering: ~2/3 of replies are delayed 200..2199 ms, the rest arrive at once', async () => {
  const { s, net } = setup(21);
  await s.run(async () => {
    net.setLongReordering(true);
    net.addServer('srv', new JunkServer());
    const end = net.makeEnd('e');
    net.connect('e', 'srv');
    net.enable('e', true);
    const n = 900;
    const delays = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const t0 = s.now();
        const r = await call(end, `${i}`);
        assert.equal(r, `reply-${i}`, 'reliable: all delivered');
        return s.now() - t0;
      }),
    );
    const delayed = delays.filter((d) => d !== 0);
    for (const d of delayed) assert.ok(d >= 200 && d <= 2199, `delay ${d}`);
    assert.ok(delayed.length > 540 && delayed.length < 660, `delayed ${delayed.length}`);
    // Skewed toward short delays: the median is well below the midpoint.
    const sorted = [...delayed].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] as number;
    assert.ok(median < 800, `median ${median}`);
    assert.ok((sorted.at(-1) as number) > 1500, 'long tail exists');
    // Reordered: replies did not arrive in call order.
    assert.notDeepEqual(sorted, delays.filter((d) => d !== 0));
  });
});

test('long delays: a dead link fails after 0..6999 ms; short delays 0..99 ms', async () => {
  const { s, net } = setup(17);
  await s.run(async () => {
    const end = net.makeEnd('e');
    net.addServer('srv', new JunkServer());
    net.connect('e', 'srv');
    net.setLongDelays(true);
    const longDelays = await Promise.all(
      Array.from({ length: 500 }, async () => {
        const t0 = s.now();
        assert.equal(await call(end, 'q'), null);
        return s.now() - t0;
      }),
    );
    for (const d of longDelays) assert.ok(Number.isInteger(d) && d >= 0 && d <= 6999, `delay ${d}`);
    assert.ok(Math.max(...longDelays) > 6000, 'some failures take long');
    assert.ok(Math.min(...longDelays) < 500, 'some failures are quick');

    net.setLongDelays(false);
    const shortDelays = await Promise.all(
      Array.from({ length: 300 }, async () => {
        const t0 = s.now();
        assert.equal(await call(end, 'q'), null);
        return s.now() - t0;
      }),
    );
    for (const d of shortDelays) assert.ok(d >= 0 && d <= 99, `delay ${d}`);
    assert.ok(Math.max(...shortDelays) > 80);
    assert.equal(net.serverRpcCount('srv'), 0);
  });
});

async function chaoticRun(seed: number): Promise<string> {
  const s = new VirtualScheduler();
  const prng = new Prng(seed);
  const net = new Network<string, string>({
    scheduler: s,
    prng: prng.fork(),
    requestSize: (r) => r.length,
    replySize: (r) => r.length,
  });
  const trace: string[] = [];
  await s.run(async () => {
    net.setReliable(false);
    net.setLongReordering(true);
    net.setLongDelays(true);
    for (let i = 0; i < 3; i++) net.addServer(`s${i}`, new JunkServer());
    const ends: ClientEnd<string, string>[] = [];
    for (let i = 0; i < 6; i++) {
      const name = `e${i}`;
      ends.push(net.makeEnd(name));
      net.connect(name, `s${i % 3}`);
      net.enable(name, true);
    }
    const workers = ends.map(async (end, w) => {
      for (let k = 0; k < 15; k++) {
        const r = await call(end, `${w}.${k}`);
        trace.push(`${s.now()} ${end.name} ${w}.${k} -> ${r}`);
        if (prng.chance(1, 4)) net.enable(`e${prng.nextInt(6)}`, prng.chance(1, 2));
        if (prng.chance(1, 20)) net.addServer(`s${prng.nextInt(3)}`, new JunkServer());
        await s.sleep(prng.nextInt(50));
      }
    });
    await Promise.all(workers);
    trace.push(`total=${net.totalRpcCount()} bytes=${net.totalBytes()} t=${s.now()}`);
  });
  return trace.join('\n');
}

test('determinism: the same seed gives the same results and timestamps', async () => {
  const a = await chaoticRun(1234);
  const b = await chaoticRun(1234);
  assert.equal(a, b);
  assert.ok(a.includes('-> null') && a.includes('-> reply-'), 'mix of failures and successes');
  const c = await chaoticRun(4321);
  assert.notEqual(a, c);
});

test('every onResult fires exactly once, never synchronously, across all paths', async () => {
  const { s, net } = setup(99);
  const counts = new Map<number, number>();
  let id = 0;
  let inCall = false;
  const fire = (end: ClientEnd<string, string>, request: string): void => {
    const myId = id++;
    counts.set(myId, 0);
    inCall = true;
    end.call(request, () => {
      assert.equal(inCall, false, 'synchronous onResult');
      counts.set(myId, (counts.get(myId) ?? 0) + 1);
    });
    inCall = false;
  };
  await s.run(async () => {
    net.addServer('srv', new JunkServer());
    const end = net.makeEnd('e');
    net.connect('e', 'srv');
    const modes: [boolean, boolean, boolean, boolean][] = [];
    for (const enabled of [false, true])
      for (const reliable of [false, true])
        for (const reorder of [false, true])
          for (const longDelays of [false, true]) modes.push([enabled, reliable, reorder, longDelays]);
    for (const [enabled, reliable, reorder, longDelays] of modes) {
      net.enable('e', enabled);
      net.setReliable(reliable);
      net.setLongReordering(reorder);
      net.setLongDelays(longDelays);
      for (let i = 0; i < 40; i++) fire(end, i % 5 === 0 ? 'noreply' : `${i}`);
      await s.sleep(10);
    }
    // Flip things while calls are in flight, then shut down with some still pending.
    net.enable('e', true);
    net.setReliable(false);
    net.setLongReordering(true);
    for (let i = 0; i < 40; i++) fire(end, `late${i}`);
    await s.sleep(5);
    net.cleanup();
    const countedBefore = net.totalRpcCount();
    for (let i = 0; i < 10; i++) fire(end, `after${i}`);
    assert.equal(net.totalRpcCount(), countedBefore, 'calls after cleanup are not counted');
    await s.sleep(10_000);
  });
  assert.equal(counts.size, 16 * 40 + 40 + 10);
  for (const [k, c] of counts) assert.equal(c, 1, `call ${k} completed ${c} times`);
});

test('cleanup: later calls fail at once; in-flight calls are not delivered', async () => {
  const { s, net } = setup();
  await s.run(async () => {
    const server = new JunkServer();
    net.addServer('srv', server);
    const end = net.makeEnd('e');
    net.connect('e', 'srv');
    net.enable('e', true);
    net.setLongReordering(true);
    const inflight = Array.from({ length: 30 }, (_, i) => call(end, `${i}`));
    await s.sleep(0);
    const bytesBefore = net.totalBytes();
    const dispatched = server.log.length;
    net.cleanup();
    const results = await Promise.all(inflight);
    // All 30 reached the server at t=0, but no reply was delivered after cleanup().
    assert.equal(dispatched, 30);
    assert.deepEqual(results, new Array(30).fill(null));
    assert.equal(net.totalBytes(), bytesBefore, 'no reply bytes counted');
    const t0 = s.now();
    assert.equal(await call(end, 'x1'), null);
    assert.equal(s.now(), t0, 'fails after a 0 ms delay');
    assert.equal(server.log.length, dispatched);
  });
});

test('endpoint names are unique; unknown endpoints are rejected', () => {
  const { net } = setup();
  net.makeEnd('a');
  assert.throws(() => net.makeEnd('a'));
  assert.throws(() => net.connect('zz', 'srv'));
  assert.throws(() => net.enable('zz', true));
});
