import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RealScheduler, VirtualScheduler, type Scheduler } from '../../src/sim/scheduler.js';
import { Prng } from '../../src/sim/prng.js';

test('virtual: same-time callbacks run in scheduling order, times in order', async () => {
  const s = new VirtualScheduler();
  const trace: string[] = [];
  await s.run(async () => {
    s.schedule(10, () => trace.push(`a@${s.now()}`));
    s.schedule(5, () => trace.push(`b@${s.now()}`));
    s.schedule(10, () => trace.push(`c@${s.now()}`));
    s.schedule(0, () => trace.push(`d@${s.now()}`));
    s.schedule(5, () => {
      trace.push(`e@${s.now()}`);
      s.schedule(0, () => trace.push(`f@${s.now()}`));
      s.schedule(5, () => trace.push(`g@${s.now()}`));
    });
    await s.sleep(20);
  });
  assert.deepEqual(trace, ['d@0', 'b@5', 'e@5', 'f@5', 'a@10', 'c@10', 'g@10']);
  assert.equal(s.now(), 20);
  assert.equal(s.eventsRun(), 8); // 7 callbacks + the sleep
});

test('virtual: schedule never runs synchronously, even for 0', async () => {
  const s = new VirtualScheduler();
  let ran = false;
  await s.run(async () => {
    s.schedule(0, () => {
      ran = true;
    });
    assert.equal(ran, false);
    await s.sleep(0);
    assert.equal(ran, true);
  });
});

test('virtual: sleep advances the clock exactly', async () => {
  const s = new VirtualScheduler();
  const times: number[] = [];
  const result = await s.run(async () => {
    times.push(s.now());
    await s.sleep(100);
    times.push(s.now());
    await s.sleep(0);
    times.push(s.now());
    await s.sleep(2.5);
    times.push(s.now());
    return 'done';
  });
  assert.equal(result, 'done');
  assert.deepEqual(times, [0, 100, 100, 102.5]);
});

test('virtual: cancel prevents a callback; many cancellations are compacted', async () => {
  const s = new VirtualScheduler();
  let fired = 0;
  await s.run(async () => {
    const t = s.schedule(5, () => fired++);
    t.cancel();
    t.cancel();
    const timers = [];
    for (let i = 0; i < 5000; i++) timers.push(s.schedule(1 + (i % 50), () => fired++));
    for (let i = 0; i < 5000; i++) if (i % 10 !== 0) timers[i]?.cancel();
    assert.equal(s.pendingEvents(), 500);
    await s.sleep(100);
  });
  assert.equal(fired, 500);
});

async function concurrentLoops(seed: number): Promise<string> {
  const s = new VirtualScheduler();
  const prng = new Prng(seed);
  const trace: string[] = [];
  let shared = 0;
  await s.run(async () => {
    const loop = async (id: number): Promise<void> => {
      for (let i = 0; i < 30; i++) {
        await s.sleep(prng.nextInt(5));
        shared++;
        trace.push(`${id}:${i}@${s.now()}#${shared}`);
        if (prng.chance(1, 3)) {
          // A nested async step that itself sleeps and schedules.
          await Promise.resolve();
          s.schedule(prng.nextInt(3), () => trace.push(`cb${id}@${s.now()}`));
          await s.sleep(1);
        }
      }
    };
    await Promise.all([loop(0), loop(1), loop(2), loop(3)]);
  });
  return trace.join('\n');
}

test('virtual: concurrent async loops interleave deterministically', async () => {
  const a = await concurrentLoops(7);
  const b = await concurrentLoops(7);
  assert.equal(a, b);
  assert.ok(a.split('\n').length >= 120);
  const c = await concurrentLoops(8);
  assert.notEqual(a, c);
  // Interleaving actually happened: loop 0 does not run all of its steps first.
  const lines = a.split('\n').filter((l) => !l.startsWith('cb'));
  const firstThirty = lines.slice(0, 30).map((l) => l.split(':')[0]);
  assert.ok(new Set(firstThirty).size > 1);
});

test('virtual: awaiting a promise resolved by a plain callback resumes at that virtual time', async () => {
  const s = new VirtualScheduler();
  const seen: number[] = [];
  await s.run(async () => {
    // A far-away event that would be run next if the continuation were not drained first.
    s.schedule(1000, () => {});
    const wait = (ms: number): Promise<number> =>
      new Promise((resolve) => {
        s.schedule(ms, () => resolve(s.now()));
      });
    for (let i = 0; i < 3; i++) {
      await wait(10);
      seen.push(s.now());
      s.schedule(1, () => seen.push(-s.now()));
    }
  });
  assert.deepEqual(seen, [10, -11, 20, -21, 30]);
});

test('virtual: stall is detected', async () => {
  const s = new VirtualScheduler();
  await assert.rejects(
    s.run(async () => {
      await s.sleep(50);
      await new Promise<void>(() => {});
    }),
    (e: unknown) => e instanceof Error && /simulation stalled: no events pending at t=50ms/.test(e.message),
  );
});

test('virtual: a throwing callback rejects run() and stops callbacks', async () => {
  const s = new VirtualScheduler();
  let after = false;
  const boom = new Error('boom');
  await assert.rejects(
    s.run(async () => {
      s.schedule(5, () => {
        throw boom;
      });
      s.schedule(6, () => {
        after = true;
      });
      await s.sleep(100);
    }),
    (e: unknown) => e === boom,
  );
  assert.equal(after, false);
  assert.equal(s.now(), 5);
});

test('virtual: main rejecting rejects run()', async () => {
  const s = new VirtualScheduler();
  await assert.rejects(
    s.run(async () => {
      await s.sleep(3);
      throw new Error('main failed');
    }),
    /main failed/,
  );
});

test('virtual: maxVirtualMs bounds the simulation', async () => {
  const s = new VirtualScheduler({ maxVirtualMs: 1000 });
  let ticks = 0;
  await assert.rejects(
    s.run(async () => {
      for (;;) {
        await s.sleep(100);
        ticks++;
      }
    }),
    /maxVirtualMs=1000/,
  );
  assert.equal(ticks, 10);
  assert.ok(s.now() <= 1000);
});

test('virtual: dispose drops pending callbacks and ignores later schedules', async () => {
  const s = new VirtualScheduler();
  let fired = 0;
  s.schedule(1, () => fired++);
  s.dispose();
  const t = s.schedule(1, () => fired++);
  t.cancel();
  assert.equal(s.pendingEvents(), 0);
  await assert.rejects(s.run(async () => s.sleep(5)), /stalled/);
  assert.equal(fired, 0);
});

test('virtual: rejects negative delays', () => {
  const s = new VirtualScheduler();
  assert.throws(() => s.schedule(-1, () => {}), RangeError);
  assert.throws(() => s.schedule(Number.NaN, () => {}), RangeError);
});

test('virtual: an hour of simulated timers runs quickly', async () => {
  const s = new VirtualScheduler({ maxVirtualMs: 3_600_001 });
  let count = 0;
  const start = performance.now();
  await s.run(async () => {
    const tick = (): void => {
      count++;
      s.schedule(10, tick);
    };
    s.schedule(10, tick);
    await s.sleep(3_600_000);
  });
  // The tick due at exactly 1 h was scheduled after the sleep, so it runs after main finished.
  assert.equal(count, 359_999);
  assert.ok(performance.now() - start < 5000);
});

async function genericWorkload(s: Scheduler): Promise<string[]> {
  const trace: string[] = [];
  await s.run(async () => {
    s.schedule(0, () => trace.push('zero'));
    s.schedule(30, () => trace.push('thirty'));
    const t = s.schedule(10, () => trace.push('cancelled'));
    t.cancel();
    await s.sleep(15);
    trace.push('slept');
    await s.sleep(30);
  });
  return trace;
}

test('real: sleep, ordering, cancel, now()', async () => {
  const s = new RealScheduler();
  const t0 = s.now();
  const trace = await genericWorkload(s);
  assert.deepEqual(trace, ['zero', 'slept', 'thirty']);
  const elapsed = s.now() - t0;
  assert.ok(elapsed >= 44, `elapsed ${elapsed}`);
  assert.ok(elapsed < 1000, `elapsed ${elapsed}`);
  // The same workload in virtual time gives the same trace.
  assert.deepEqual(await genericWorkload(new VirtualScheduler()), trace);
  s.dispose();
});

test('real: schedule(0) is not synchronous; a throwing callback rejects run()', async () => {
  const s = new RealScheduler();
  let ran = false;
  s.schedule(0, () => {
    ran = true;
  });
  assert.equal(ran, false);
  let after = false;
  await assert.rejects(
    s.run(async () => {
      s.schedule(10, () => {
        throw new Error('real boom');
      });
      s.schedule(40, () => {
        after = true;
      });
      await s.sleep(80);
    }),
    /real boom/,
  );
  assert.equal(ran, true);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(after, false);
  s.dispose();
});

test('real: dispose clears pending timers', async () => {
  const s = new RealScheduler();
  let fired = 0;
  s.schedule(5, () => fired++);
  s.schedule(0, () => fired++);
  s.dispose();
  s.schedule(0, () => fired++);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(fired, 0);
});
