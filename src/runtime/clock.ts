/**
 * Where a RaftNode's time comes from. The runtime uses real timers; the simulator passes its
 * virtual clock, so the very same node code runs in production and in the explorer.
 */
export interface ClockTimer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds on this clock's own scale. */
  now(): number;
  /** Runs `callback` once after `delayMs`. */
  schedule(delayMs: number, callback: () => void): ClockTimer;
  /** Runs `callback` every `intervalMs` until cancelled. */
  repeat(intervalMs: number, callback: () => void): ClockTimer;
  /**
   * Runs `callback` soon, after the current call stack, so that inputs arriving together are
   * handled together (a microtask in real time, a zero-delay event in virtual time).
   */
  defer(callback: () => void): void;
}

/** Real time: node's timers. */
export const realClock: Clock = {
  now: () => performance.now(),
  schedule(delayMs, callback) {
    const timer = setTimeout(callback, delayMs);
    return { cancel: () => clearTimeout(timer) };
  },
  repeat(intervalMs, callback) {
    const timer = setInterval(callback, intervalMs);
    return { cancel: () => clearInterval(timer) };
  },
  defer: (callback) => queueMicrotask(callback),
};

/** A clock on any scheduler with `now` and `schedule` (the simulator's VirtualScheduler). */
export function clockFromScheduler(scheduler: { now(): number; schedule(delayMs: number, callback: () => void): ClockTimer }): Clock {
  return {
    now: () => scheduler.now(),
    schedule: (delayMs, callback) => scheduler.schedule(delayMs, callback),
    repeat(intervalMs, callback) {
      let current: ClockTimer | null = null;
      let cancelled = false;
      const next = (): void => {
        current = scheduler.schedule(intervalMs, () => {
          if (cancelled) return;
          next();
          callback();
        });
      };
      next();
      return {
        cancel: () => {
          cancelled = true;
          current?.cancel();
        },
      };
    },
    defer: (callback) => {
      scheduler.schedule(0, callback);
    },
  };
}
