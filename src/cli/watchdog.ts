/**
 * `tsraft start`'s watchdog: it polls each child's /healthz (liveness: the process answers and its
 * Raft has not stopped; a node that merely has no leader, as in a partition, is healthy) and
 * kills a child that gives no 200 for too long, so that the supervisor restarts it.
 *
 * - Every `intervalMs` each watched child is judged, then probed (one probe at a time per child,
 *   waiting max(intervalMs, 2 s) for its answer, at most half of unhealthyAfterMs).
 * - A child that has given no 200 for `unhealthyAfterMs`, with at least one failed probe in that
 *   time, is killed (the supervisor's `kill`, SIGKILL). One that has not answered yet gets
 *   `graceMs` on top, from when it was spawned, so a slow start is not mistaken for a hang.
 * - What it sees is said through `say`: the first failed probe, a recovery, the kill.
 * - If this process itself was paused (its own timer late by more than half of
 *   unhealthyAfterMs), the health clocks restart rather than kill every child.
 *
 * The supervisor tells it when a child starts (`watch`) and ends (`release`, which says whether
 * the watchdog killed it, and why); it knows nothing else of processes or restarts.
 */
import type { ClusterFetch } from '../kv/client-http.js';
import { errorMessage } from './common.js';

/** Watchdog defaults: /healthz every second; a child silent for 10 s is hung; 20 s more to start. */
export const DEFAULT_HEALTH_INTERVAL_MS = 1_000;
export const DEFAULT_UNHEALTHY_AFTER_MS = 10_000;
export const DEFAULT_HEALTH_GRACE_MS = 20_000;

/** How the watchdog judges a child (see the module comment). */
export interface WatchdogConfig {
  /** Time between two /healthz probes of a child (a probe waits for its answer max(this, 2 s), at most half of unhealthyAfterMs). */
  readonly intervalMs: number;
  /** A child that answered before and has given no 200 for this long is killed. */
  readonly unhealthyAfterMs: number;
  /** Extra time a child that has not answered yet gets after it was spawned. */
  readonly graceMs: number;
}

/** One running child, as the watchdog sees it. */
export interface WatchedChild {
  /** The node id (for messages). */
  readonly id: number;
  readonly pid: number | undefined;
  /** Base URL of its HTTP API; /healthz is probed there. */
  readonly httpUrl: string;
  /** Kills it for good (SIGKILL); the supervisor then sees it exit. */
  kill(): void;
}

/** What the watchdog knows of one child process. */
interface Health {
  readonly child: WatchedChild;
  /** performance.now() when it was spawned. */
  readonly spawnedAt: number;
  /** The last 200 from /healthz; before the first one, the end of the grace period. */
  lastOk: number;
  answered: boolean;
  probing: boolean;
  /** The latest failed probe since the last success (null: none). */
  failure: string | null;
  /** Set once the watchdog killed it: why. */
  killedFor: string | null;
}

/** A failed probe's cause, short: the connect error's code when there is one. */
function probeError(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return errorMessage(error);
}

export class Watchdog {
  /** Node id → the current child's health. */
  private readonly health = new Map<number, Health>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private stopped = false;
  /** Bumped when the health clocks restart: probes started before are ignored. */
  private epoch = 0;

  constructor(
    private readonly config: WatchdogConfig,
    private readonly say: (line: string) => void,
    /** How /healthz is fetched (`tsraft start --tls`: with the dev CA). */
    private readonly fetchHealth: ClusterFetch = (url, init) => fetch(url, init),
  ) {}

  /** A child was spawned: watch it from now (its grace period starts now). Replaces the node's previous child. */
  watch(child: WatchedChild): void {
    const now = performance.now();
    this.health.set(child.id, { child, spawnedAt: now, lastOk: now + this.config.graceMs, answered: false, probing: false, failure: null, killedFor: null });
  }

  /** The child of node `id` exited: stop watching it; returns why the watchdog killed it, or null if it did not. */
  release(id: number, child: WatchedChild): string | null {
    const h = this.health.get(id);
    if (h === undefined || h.child !== child) return null;
    this.health.delete(id);
    return h.killedFor;
  }

  /** Starts the ticks: every interval, each child is judged and probed. */
  start(): void {
    const { intervalMs, unhealthyAfterMs } = this.config;
    let lastTick = performance.now();
    this.timer = setInterval(() => {
      const now = performance.now();
      const late = now - lastTick - intervalMs;
      lastTick = now;
      if (late > unhealthyAfterMs / 2) {
        // This process was paused (a stopped terminal, a laptop asleep): silence is ours, not theirs.
        this.say(`the watchdog itself was paused for ${(late / 1000).toFixed(1)} s; restarting the health clocks`);
        this.epoch++;
        for (const h of this.health.values()) {
          h.lastOk = Math.max(h.lastOk, now);
          h.failure = null;
          h.probing = false;
        }
        return;
      }
      for (const h of this.health.values()) this.judge(h, now);
    }, intervalMs);
  }

  /** Stops for good (the supervisor is shutting down): no more probes, no more kills. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private current(h: Health): boolean {
    return !this.stopped && this.health.get(h.child.id) === h && h.killedFor === null;
  }

  private judge(h: Health, now: number): void {
    if (!this.current(h)) return;
    const silentMs = now - h.lastOk;
    const c = h.child;
    if (silentMs >= this.config.unhealthyAfterMs && h.failure !== null) {
      const since = h.answered ? `for ${(silentMs / 1000).toFixed(1)} s` : `since it started ${((now - h.spawnedAt) / 1000).toFixed(1)} s ago`;
      h.killedFor = `no answer from /healthz ${since}; last probe: ${h.failure}`;
      this.say(`node ${c.id} (pid ${c.pid ?? '?'}) has not answered /healthz ${since} (last probe: ${h.failure}); killing it with SIGKILL`);
      c.kill();
      return;
    }
    if (!h.probing) void this.probe(h);
  }

  private async probe(h: Health): Promise<void> {
    h.probing = true;
    const epoch = this.epoch;
    const { intervalMs, unhealthyAfterMs } = this.config;
    const timeoutMs = Math.min(Math.floor(unhealthyAfterMs / 2), Math.max(intervalMs, 2_000));
    let failure: string | null = null;
    try {
      const response = await this.fetchHealth(`${h.child.httpUrl}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
      await response.arrayBuffer().catch(() => undefined);
      if (response.status !== 200) failure = `HTTP ${response.status}`;
    } catch (error) {
      const name = (error as { name?: unknown }).name;
      failure = name === 'TimeoutError' || name === 'AbortError' ? `no answer within ${timeoutMs} ms` : probeError(error);
    }
    if (epoch !== this.epoch) return;
    h.probing = false;
    if (!this.current(h)) return;
    const now = performance.now();
    const c = h.child;
    if (failure === null) {
      if (h.failure !== null) this.say(`node ${c.id} (pid ${c.pid ?? '?'}) answers /healthz again`);
      h.answered = true;
      h.failure = null;
      h.lastOk = now;
    } else if (h.answered || now >= h.lastOk) {
      // Failures during the grace period of a child that never answered are its start-up.
      if (h.failure === null) {
        const left = Math.max(0, unhealthyAfterMs - (now - h.lastOk));
        this.say(`node ${c.id} (pid ${c.pid ?? '?'}): /healthz failed (${failure}); it is killed if it does not answer within ${(left / 1000).toFixed(1)} s`);
      }
      h.failure = failure;
    }
  }
}
