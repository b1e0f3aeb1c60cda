import type { Prng } from './prng.js';
import type { Scheduler } from './scheduler.js';

/**
 * An equivalent of MIT 6.824's labrpc network for a discrete-event simulator (see
 * specs/6824-raft-tests.md §2). Endpoints ("ClientEnds") are one-directional and named; each is
 * connected to one server name and can be enabled or disabled. Every call completes exactly once,
 * asynchronously, with a reply or with null (failure). All randomness comes from the injected
 * Prng and all timing from the injected Scheduler, so one seed gives one run.
 */

/**
 * A request handler; returning null means "no reply" (the caller sees a failure). A handler may
 * answer later through a promise (a driver that persists before it replies): while it runs, the
 * network checks every 100 ms whether the server is dead, as labrpc does.
 */
export interface RpcServer<Req, Rep> {
  dispatch(request: Req): Rep | null | Promise<Rep | null>;
}

export interface NetworkOptions<Req, Rep> {
  scheduler: Scheduler;
  prng: Prng;
  /** Encoded size of a request, counted on every call. */
  requestSize(request: Req): number;
  /** Encoded size of a reply, counted when the reply is delivered. */
  replySize(reply: Rep): number;
  /** Sees every call's request and reply (recordings for the replay page); must not change the run. */
  observer?: NetworkObserver<Req, Rep> | undefined;
}

/** Watches one call, from the moment it was made (see NetworkObserver). */
export interface CallWatch<Rep> {
  /** The request reached the server (just before it is dispatched), or never will. */
  request(outcome: 'delivered' | 'dropped', why?: string): void;
  /** The server answered: the reply leaves now; `replyEnd` follows, now or later. */
  reply(reply: Rep): void;
  replyEnd(outcome: 'delivered' | 'dropped', why?: string): void;
}

export interface NetworkObserver<Req, Rep> {
  /** A counted call was made now; the watch (if any) hears what becomes of it. */
  call(request: Req, endName: string): CallWatch<Rep> | undefined;
  /** An endpoint was enabled or disabled. */
  enabled?(endName: string, enabled: boolean): void;
}

export interface ClientEnd<Req, Rep> {
  readonly name: string;
  /** Send a request. onResult runs exactly once, never synchronously, with the reply or null. */
  call(request: Req, onResult: (reply: Rep | null) => void): void;
}

interface EndState {
  enabled: boolean;
  serverName: string | undefined;
}

/** One registered server object; a re-added server gets a new entry (count 0). */
interface ServerEntry<Req, Rep> {
  readonly server: RpcServer<Req, Rep>;
  count: number;
}

/** Short delay before an unreliable delivery: 0..26 ms. */
const UNRELIABLE_DELAY_MODULUS = 27;
/** Request and reply loss on an unreliable network: 100/1000 each. */
const LOSS_PER_MILLE = 100;
/** Long reordering: 600/900 of replies are held back 200 + U(0..U(0..1999)) ms. */
const REORDER_NUMERATOR = 600;
const REORDER_DENOMINATOR = 900;
const REORDER_BASE_MS = 200;
const REORDER_SPREAD = 2000;
/** Failure delay on a dead link: 0..6999 ms with long delays, else 0..99 ms. */
const LONG_FAILURE_MODULUS = 7000;
const SHORT_FAILURE_MODULUS = 100;
/** How often a call waiting on an asynchronous handler checks whether the server died. */
const DEAD_POLL_MS = 100;

export class Network<Req, Rep> {
  private readonly scheduler: Scheduler;
  private readonly prng: Prng;
  private readonly requestSize: (request: Req) => number;
  private readonly replySize: (reply: Rep) => number;
  private readonly observer: NetworkObserver<Req, Rep> | undefined;

  private readonly ends = new Map<string, EndState>();
  private readonly servers = new Map<string, ServerEntry<Req, Rep>>();
  private reliable = true;
  private longReordering = false;
  private longDelays = false;
  private closed = false;
  private rpcTotal = 0;
  private byteTotal = 0;

  constructor(options: NetworkOptions<Req, Rep>) {
    this.scheduler = options.scheduler;
    this.prng = options.prng;
    this.requestSize = options.requestSize;
    this.replySize = options.replySize;
    this.observer = options.observer;
  }

  /** A new endpoint: disabled and unconnected. Names must be unique. */
  makeEnd(endName: string): ClientEnd<Req, Rep> {
    if (this.ends.has(endName)) throw new Error(`Network.makeEnd: ${endName} already exists`);
    const state: EndState = { enabled: false, serverName: undefined };
    this.ends.set(endName, state);
    const network = this;
    return {
      name: endName,
      call(request: Req, onResult: (reply: Rep | null) => void): void {
        network.call(state, request, onResult, endName);
      },
    };
  }

  connect(endName: string, serverName: string): void {
    this.endState(endName, 'connect').serverName = serverName;
  }

  enable(endName: string, enabled: boolean): void {
    this.endState(endName, 'enable').enabled = enabled;
    this.observer?.enabled?.(endName, enabled);
  }

  /** Registers `server` under `serverName`, replacing any previous server (new count 0). */
  addServer(serverName: string, server: RpcServer<Req, Rep>): void {
    this.servers.set(serverName, { server, count: 0 });
  }

  deleteServer(serverName: string): void {
    this.servers.delete(serverName);
  }

  setReliable(reliable: boolean): void {
    this.reliable = reliable;
  }

  isReliable(): boolean {
    return this.reliable;
  }

  setLongReordering(on: boolean): void {
    this.longReordering = on;
  }

  setLongDelays(on: boolean): void {
    this.longDelays = on;
  }

  /** Requests dispatched to the server object currently registered under the name (0 if none). */
  serverRpcCount(serverName: string): number {
    return this.servers.get(serverName)?.count ?? 0;
  }

  totalRpcCount(): number {
    return this.rpcTotal;
  }

  totalBytes(): number {
    return this.byteTotal;
  }

  /**
   * Shuts the network down. Later calls fail at once (null on a 0 ms delay) and are not counted;
   * calls in flight are not delivered to servers and complete with null at their scheduled time.
   */
  cleanup(): void {
    this.closed = true;
  }

  private endState(endName: string, what: string): EndState {
    const state = this.ends.get(endName);
    if (state === undefined) throw new Error(`Network.${what}: unknown endpoint ${endName}`);
    return state;
  }

  private call(end: EndState, request: Req, onResult: (reply: Rep | null) => void, endName: string): void {
    let completed = false;
    const finish = (reply: Rep | null): void => {
      if (completed) return;
      completed = true;
      onResult(reply);
    };
    const scheduler = this.scheduler;

    if (this.closed) {
      scheduler.schedule(0, () => finish(null));
      return;
    }

    this.rpcTotal++;
    this.byteTotal += this.requestSize(request);
    const watch = this.observer === undefined ? undefined : this.observer.call(request, endName);

    // Everything the request's fate depends on is read now, at call time.
    const enabled = end.enabled;
    const serverName = end.serverName;
    const entry = serverName === undefined ? undefined : this.servers.get(serverName);
    const reliable = this.reliable;
    const longReordering = this.longReordering;
    const prng = this.prng;

    if (!enabled || serverName === undefined || entry === undefined) {
      // Dead link: nothing reaches a server; fail after a random delay.
      watch?.request('dropped', enabled ? 'noServer' : 'disconnected');
      const delay = prng.nextInt(this.longDelays ? LONG_FAILURE_MODULUS : SHORT_FAILURE_MODULUS);
      scheduler.schedule(delay, () => finish(null));
      return;
    }

    const deliver = (reply: Rep): void => {
      if (this.closed) {
        watch?.replyEnd('dropped', 'closed');
        finish(null);
        return;
      }
      watch?.replyEnd('delivered');
      this.byteTotal += this.replySize(reply);
      finish(reply);
    };

    const process = (): void => {
      if (this.closed) {
        watch?.request('dropped', 'closed');
        finish(null);
        return;
      }
      if (!reliable && prng.nextInt(1000) < LOSS_PER_MILLE) {
        watch?.request('dropped', 'loss');
        finish(null); // request lost; the server never sees it
        return;
      }
      watch?.request('delivered');
      entry.count++;
      const answer = entry.server.dispatch(request);
      if (answer instanceof Promise) {
        let settled = false;
        const poll = (): void => {
          if (settled) return;
          if (isDead()) {
            settled = true;
            finish(null);
            return;
          }
          scheduler.schedule(DEAD_POLL_MS, poll);
        };
        scheduler.schedule(DEAD_POLL_MS, poll);
        answer.then(
          (reply) => {
            if (settled) return;
            settled = true;
            afterHandler(reply);
          },
          () => {
            if (settled) return;
            settled = true;
            finish(null);
          },
        );
        return;
      }
      afterHandler(answer);
    };

    // "Dead": the endpoint was disabled, or the name now maps to another server or none.
    const isDead = (): boolean => !end.enabled || this.servers.get(serverName) !== entry;

    const afterHandler = (reply: Rep | null): void => {
      if (this.closed || isDead()) {
        if (watch !== undefined && reply !== null) {
          watch.reply(reply);
          watch.replyEnd('dropped', this.closed ? 'closed' : 'disconnected');
        }
        finish(null);
        return;
      }
      if (reply === null) {
        finish(null);
        return;
      }
      watch?.reply(reply);
      if (!reliable && prng.nextInt(1000) < LOSS_PER_MILLE) {
        watch?.replyEnd('dropped', 'loss');
        finish(null); // reply lost
        return;
      }
      if (longReordering && prng.nextInt(REORDER_DENOMINATOR) < REORDER_NUMERATOR) {
        const delay = REORDER_BASE_MS + prng.nextInt(1 + prng.nextInt(REORDER_SPREAD));
        scheduler.schedule(delay, () => deliver(reply));
        return;
      }
      scheduler.schedule(0, () => deliver(reply));
    };

    scheduler.schedule(reliable ? 0 : prng.nextInt(UNRELIABLE_DELAY_MODULUS), process);
  }
}
