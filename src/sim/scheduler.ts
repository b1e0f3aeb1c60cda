/**
 * One scheduling interface with two implementations, so the same async test code runs either in
 * virtual time (deterministic discrete-event simulation) or in real time.
 */

export interface Timer {
  cancel(): void;
}

export interface Scheduler {
  readonly kind: 'virtual' | 'real';
  /** Milliseconds since this scheduler was created (virtual: the simulated clock; real: performance.now based). */
  now(): number;
  /** Run callback after delayMs (>= 0). Never runs it synchronously, even for 0. Same-time callbacks run in scheduling order. */
  schedule(delayMs: number, callback: () => void): Timer;
  /** Resolves after ms. */
  sleep(ms: number): Promise<void>;
  /**
   * Drive `main` to completion. Virtual: runs the event loop until main's promise settles. Real:
   * awaits it. If any scheduled callback throws, run() rejects with that error (and stops running
   * callbacks).
   */
  run<T>(main: () => Promise<T>): Promise<T>;
  /** Drop every pending callback; later schedule() calls are ignored (return inert timers). */
  dispose(): void;
}

const INERT_TIMER: Timer = Object.freeze({ cancel(): void {} });

function checkDelay(delayMs: number): void {
  if (!(delayMs >= 0) || !Number.isFinite(delayMs)) {
    throw new RangeError(`schedule: delay must be a finite number >= 0, got ${delayMs}`);
  }
}

/**
 * The platform hooks the virtual scheduler uses, looked up at run time rather than imported, so
 * the simulator also runs in a browser (the replay page bundles it): V8's promise hooks from
 * node:v8 through `process.getBuiltinModule` (Node ≥ 20.16), and `setImmediate` for a macrotask.
 * In a browser there are no promise hooks (the run loop then yields after every event, which gives
 * the same order of events, only more slowly) and a MessageChannel makes the macrotask (not
 * setTimeout, which browsers clamp to 4 ms).
 */
interface PromiseHooksApi {
  onSettled(callback: (promise: Promise<unknown>) => void): () => void;
}

function lookupPromiseHooks(): PromiseHooksApi | undefined {
  try {
    const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
    const v8 = proc?.getBuiltinModule?.('node:v8') as { promiseHooks?: PromiseHooksApi } | undefined;
    return v8?.promiseHooks;
  } catch {
    return undefined;
  }
}

let browserMode = false;

/**
 * For tests and measurements: true makes every VirtualScheduler.run() started afterwards behave as
 * it does in a browser (no promise hook, so a yield after every event; MessageChannel macrotasks).
 * A run's events and their order must not change; only its speed does.
 */
export function simulateBrowserScheduler(on: boolean): void {
  browserMode = on;
}

/** Whether runs use the promise hook now (false in a browser, or under simulateBrowserScheduler). */
export function settleHookAvailable(): boolean {
  return !browserMode && hookAvailable && lookupPromiseHooks() !== undefined;
}

type Macrotask = (callback: () => void) => void;

let channelMacrotask: Macrotask | null = null;

/** A macrotask through a MessageChannel: one channel, a FIFO of callbacks, one message each. */
function makeChannelMacrotask(): Macrotask {
  const channel = new MessageChannel();
  const pending: (() => void)[] = [];
  let head = 0;
  // Node's ports keep the process alive while referenced: only while a message is outstanding.
  const port = channel.port1 as unknown as { onmessage: (() => void) | null; ref?(): void; unref?(): void };
  port.onmessage = () => {
    const callback = pending[head]!;
    pending[head++] = undefined as unknown as () => void;
    if (head === pending.length) {
      pending.length = head = 0;
      port.unref?.();
    }
    callback();
  };
  port.unref?.();
  return (callback) => {
    if (pending.length === head) port.ref?.();
    pending.push(callback);
    channel.port2.postMessage(null);
  };
}

/** Node's setImmediate, when there is one (looked up once: a browser has none). */
const nodeSetImmediate = (globalThis as { setImmediate?: (callback: () => void) => unknown }).setImmediate;

function macrotask(callback: () => void): void {
  if (!browserMode && nodeSetImmediate !== undefined) {
    nodeSetImmediate(callback);
    return;
  }
  (channelMacrotask ??= makeChannelMacrotask())(callback);
}

/** Resolves on the next macrotask, after every pending microtask (and nextTick) has run. */
function macrotaskBoundary(): Promise<void> {
  return new Promise<void>((resolve) => macrotask(resolve));
}

// ---------------------------------------------------------------------------------------------
// Virtual time
// ---------------------------------------------------------------------------------------------

const EVENT_PENDING = 0;
const EVENT_DONE = 1; // ran, was cancelled, or was dropped by dispose()

class VirtualEvent implements Timer {
  state: number = EVENT_PENDING;
  constructor(
    readonly owner: VirtualScheduler,
    readonly time: number,
    readonly seq: number,
    public callback: (() => void) | null,
  ) {}

  cancel(): void {
    if (this.state !== EVENT_PENDING) return;
    this.state = EVENT_DONE;
    this.callback = null;
    this.owner.noteCancelled();
  }
}

function before(a: VirtualEvent, b: VirtualEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

/**
 * "Did the callback that is running now wake async code?" A callback may resolve a promise that
 * some async function is awaiting (a sleep, or a promise wrapped around an RPC callback). Its
 * continuation runs as a microtask, which only happens once the event loop yields. To keep virtual
 * time exact, the run loop yields (a macrotask boundary, which drains all microtasks) after such an
 * event and before the next one. Settled promises are detected with V8's promise hook, which is
 * installed only while some VirtualScheduler.run() is active. If the hook is unavailable, the loop
 * conservatively yields after every event.
 */
let executingScheduler: VirtualScheduler | null = null;
let hookUsers = 0;
let stopHook: (() => void) | null = null;
let hookAvailable = true;

function acquireSettleHook(): boolean {
  if (!hookAvailable || browserMode) return false;
  if (hookUsers === 0) {
    try {
      const promiseHooks = lookupPromiseHooks();
      if (promiseHooks === undefined) return false;
      const stop = promiseHooks.onSettled(() => {
        if (executingScheduler !== null) executingScheduler.markWoke();
      });
      stopHook = () => {
        stop();
      };
    } catch {
      hookAvailable = false;
      return false;
    }
  }
  hookUsers++;
  return true;
}

function releaseSettleHook(): void {
  hookUsers--;
  if (hookUsers === 0 && stopHook !== null) {
    stopHook();
    stopHook = null;
  }
}

export interface VirtualSchedulerOptions {
  /**
   * Wall-clock milliseconds run() may take before it gives up with an error (checked every few
   * thousand events), so a livelocked simulation fails instead of hanging. Default: no limit.
   */
  wallBudgetMs?: number;
  /** run() rejects when the simulated clock would pass this many ms. Default: 10 minutes. */
  maxVirtualMs?: number;
}

export class VirtualScheduler implements Scheduler {
  readonly kind = 'virtual' as const;
  private readonly maxVirtualMs: number;
  private readonly wallBudgetMs: number;
  private readonly heap: VirtualEvent[] = [];
  private clock = 0;
  private nextSeq = 0;
  private executed = 0;
  private cancelledInHeap = 0;
  private woke = false;
  private running = false;
  private disposed = false;

  constructor(options?: VirtualSchedulerOptions) {
    const max = options?.maxVirtualMs ?? 10 * 60 * 1000;
    if (!(max >= 0)) throw new RangeError(`maxVirtualMs must be >= 0, got ${max}`);
    this.maxVirtualMs = max;
    this.wallBudgetMs = options?.wallBudgetMs ?? Number.POSITIVE_INFINITY;
  }

  now(): number {
    return this.clock;
  }

  /** Number of callbacks run so far (cancelled events are not counted). */
  eventsRun(): number {
    return this.executed;
  }

  /** Number of live (not cancelled) pending events. */
  pendingEvents(): number {
    return this.heap.length - this.cancelledInHeap;
  }

  schedule(delayMs: number, callback: () => void): Timer {
    checkDelay(delayMs);
    if (this.disposed) return INERT_TIMER;
    const event = new VirtualEvent(this, this.clock + delayMs, this.nextSeq++, callback);
    this.push(event);
    return event;
  }

  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.schedule(ms, () => {
        this.woke = true;
        resolve();
      });
    });
  }

  dispose(): void {
    this.disposed = true;
    for (const event of this.heap) {
      event.state = EVENT_DONE;
      event.callback = null;
    }
    this.heap.length = 0;
    this.cancelledInHeap = 0;
  }

  /** @internal called by the settle hook. */
  markWoke(): void {
    this.woke = true;
  }

  /** @internal called by VirtualEvent.cancel(). */
  noteCancelled(): void {
    this.cancelledInHeap++;
    // Lazy deletion, with compaction when cancelled events dominate (e.g. reset timers).
    if (this.cancelledInHeap > 1024 && this.cancelledInHeap * 2 > this.heap.length) this.compact();
  }

  async run<T>(main: () => Promise<T>): Promise<T> {
    if (this.running) throw new Error('VirtualScheduler.run: already running');
    this.running = true;
    let settled = false;
    let failed = false;
    let value: T | undefined;
    let error: unknown;
    let mainPromise: Promise<T>;
    try {
      mainPromise = main();
    } catch (e) {
      mainPromise = Promise.reject(e);
    }
    mainPromise.then(
      (v) => {
        settled = true;
        value = v;
      },
      (e: unknown) => {
        settled = true;
        failed = true;
        error = e;
      },
    );
    const precise = acquireSettleHook();
    const wallDeadline = performance.now() + this.wallBudgetMs;
    try {
      await macrotaskBoundary();
      const heap = this.heap;
      for (;;) {
        if (settled) break;
        const event = this.popLive();
        if (event === undefined) {
          // Microtasks may still be pending (e.g. from code that woke without settling a promise
          // we could see); give them a chance before declaring a stall.
          await macrotaskBoundary();
          if (settled) break;
          if (heap.length - this.cancelledInHeap > 0) continue;
          throw new Error(`simulation stalled: no events pending at t=${this.clock}ms`);
        }
        if (event.time > this.maxVirtualMs) {
          // Leave the event in the queue; the simulation is over.
          this.push(event);
          throw new Error(
            `simulation exceeded maxVirtualMs=${this.maxVirtualMs}ms (next event at t=${event.time}ms)`,
          );
        }
        this.clock = event.time;
        const callback = event.callback as () => void;
        event.state = EVENT_DONE;
        event.callback = null;
        this.woke = !precise;
        executingScheduler = this;
        try {
          callback();
        } finally {
          executingScheduler = null;
        }
        this.executed++;
        if ((this.executed & 4095) === 0 && performance.now() > wallDeadline) {
          throw new Error(`simulation exceeded its wall-clock budget of ${this.wallBudgetMs} ms at t=${this.clock}ms (livelock?)`);
        }
        if (this.woke) await macrotaskBoundary();
      }
    } finally {
      if (precise) releaseSettleHook();
      this.running = false;
    }
    if (failed) throw error;
    return value as T;
  }

  /**
   * Runs every event up to and including `timeMs` synchronously, then sets the clock to `timeMs`.
   * For purely event-driven simulations (the explorer) that have no async code to wake: it skips
   * the macrotask draining that `run()` needs. `afterEach` runs after every event (invariant checks).
   */
  runUntil(timeMs: number, afterEach?: () => void): void {
    if (this.running) throw new Error('VirtualScheduler.runUntil: run() is active');
    for (;;) {
      const event = this.popLive();
      if (event === undefined) break;
      if (event.time > timeMs) {
        this.push(event);
        break;
      }
      this.clock = event.time;
      const callback = event.callback as () => void;
      event.state = EVENT_DONE;
      event.callback = null;
      callback();
      this.executed++;
      afterEach?.();
    }
    if (timeMs > this.clock) this.clock = timeMs;
  }

  // --- binary min-heap on (time, seq) -------------------------------------------------------

  private push(event: VirtualEvent): void {
    const heap = this.heap;
    let i = heap.length;
    heap.push(event);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as VirtualEvent;
      if (!before(event, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = event;
  }

  private pop(): VirtualEvent | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop() as VirtualEvent;
    if (heap.length > 0) this.siftDown(last, 0);
    return top;
  }

  private siftDown(event: VirtualEvent, start: number): void {
    const heap = this.heap;
    const n = heap.length;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      let c = heap[left] as VirtualEvent;
      if (right < n) {
        const r = heap[right] as VirtualEvent;
        if (before(r, c)) {
          child = right;
          c = r;
        }
      }
      if (!before(c, event)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = event;
  }

  private popLive(): VirtualEvent | undefined {
    for (;;) {
      const event = this.pop();
      if (event === undefined) return undefined;
      if (event.state === EVENT_PENDING) return event;
      this.cancelledInHeap--;
    }
  }

  private compact(): void {
    const live = this.heap.filter((e) => e.state === EVENT_PENDING);
    this.heap.length = 0;
    for (const e of live) this.heap.push(e);
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(this.heap[i] as VirtualEvent, i);
    this.cancelledInHeap = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Real time
// ---------------------------------------------------------------------------------------------

type Handle = { kind: 'timeout'; id: ReturnType<typeof setTimeout> } | { kind: 'immediate'; id: ReturnType<typeof setImmediate> };

export class RealScheduler implements Scheduler {
  readonly kind = 'real' as const;
  private readonly start = performance.now();
  private readonly pending = new Set<Handle>();
  private disposed = false;
  private failed = false;
  private failure: unknown;
  private failureListeners: ((error: unknown) => void)[] = [];

  now(): number {
    return performance.now() - this.start;
  }

  schedule(delayMs: number, callback: () => void): Timer {
    checkDelay(delayMs);
    if (this.disposed || this.failed) return INERT_TIMER;
    let done = false;
    const fire = (): void => {
      if (done) return;
      done = true;
      this.pending.delete(handle);
      if (this.failed || this.disposed) return;
      try {
        callback();
      } catch (e) {
        this.fail(e);
      }
    };
    const handle: Handle =
      delayMs === 0 ? { kind: 'immediate', id: setImmediate(fire) } : { kind: 'timeout', id: setTimeout(fire, delayMs) };
    this.pending.add(handle);
    return {
      cancel: (): void => {
        if (done) return;
        done = true;
        this.pending.delete(handle);
        clearHandle(handle);
      },
    };
  }

  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.schedule(ms, resolve);
    });
  }

  async run<T>(main: () => Promise<T>): Promise<T> {
    if (this.failed) throw this.failure;
    let removeListener = (): void => {};
    const failure = new Promise<never>((_, reject) => {
      const listener = (e: unknown): void => reject(e);
      this.failureListeners.push(listener);
      removeListener = () => {
        this.failureListeners = this.failureListeners.filter((l) => l !== listener);
      };
    });
    // Avoid an unhandled rejection if main wins the race and a callback fails later.
    failure.catch(() => {});
    try {
      return await Promise.race([main(), failure]);
    } finally {
      removeListener();
    }
  }

  dispose(): void {
    this.disposed = true;
    for (const handle of this.pending) clearHandle(handle);
    this.pending.clear();
  }

  private fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.failure = error;
    // Stop running callbacks.
    for (const handle of this.pending) clearHandle(handle);
    this.pending.clear();
    for (const listener of this.failureListeners) listener(error);
  }
}

function clearHandle(handle: Handle): void {
  if (handle.kind === 'timeout') clearTimeout(handle.id);
  else clearImmediate(handle.id);
}
