/**
 * Where KvClient sends an attempt, and how long one attempt may take.
 *
 * - ClientEndpoints: the endpoints a client was given, the members it learned from redirects, and
 *   the one to try first (the leader as far as the client knows: the last endpoint that answered
 *   well, or where a redirect pointed).
 * - attemptBudgetMs: an attempt's own deadline. One hung member (SIGSTOPped, its event loop
 *   blocked) accepts connections but never answers; an attempt bounded only by the operation's
 *   timeout would spend all of it there although a healthy leader answers elsewhere. With a
 *   deadline of its own, a hung member costs one attempt, and the next attempt goes elsewhere.
 */

/**
 * Default deadline of one attempt. A healthy member answers a read or write in milliseconds (a
 * write waits for one fsync on a majority); a member without a leader answers 503 at once. A
 * second gives a loaded or slow-disk cluster a wide margin while keeping a hung member's cost
 * below the default election timeout range's upper end (2 s), so a paused leader costs about one
 * attempt plus an election.
 */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 1_000;

/**
 * Leadership transfers and membership changes wait on the server (a transfer up to two election
 * timeouts; a change up to the request timeout per step, two steps for joint consensus), so their
 * attempts get at least this long; cutting them short would only turn them into unknown outcomes.
 */
export const SLOW_OPERATION_ATTEMPT_MS = 12_000;

/** How many members learned from redirects a client keeps as extra endpoints. */
const LEARNED_ENDPOINTS_MAX = 16;

/**
 * One attempt's time limit: its own deadline, never more than what is left of the operation's.
 * `cutShort` says whether the attempt's own deadline (not the operation's) is what bounds it.
 */
export function attemptBudgetMs(remainingMs: number, attemptTimeoutMs: number): { budgetMs: number; cutShort: boolean } {
  return attemptTimeoutMs < remainingMs ? { budgetMs: attemptTimeoutMs, cutShort: true } : { budgetMs: remainingMs, cutShort: false };
}

/** Checks an `attemptTimeoutMs` option. */
export function checkAttemptTimeout(ms: number): number {
  if (!(Number.isSafeInteger(ms) && ms >= 1)) throw new RangeError(`attemptTimeoutMs must be a positive integer, got ${ms}`);
  return ms;
}

export class ClientEndpoints {
  /** The endpoints given, then the members learned from redirects (see learn). */
  private readonly list: string[];
  private readonly given: number;
  /** The base URL to try first: the last one that answered well (or a redirect's target). */
  current: string;

  /** `preferred`: the endpoint to try first (a leader an earlier client found), if it is one of `endpoints`. */
  constructor(endpoints: readonly string[], preferred?: string) {
    if (endpoints.length === 0) throw new RangeError('KvClient needs at least one endpoint');
    this.list = endpoints.map((e) => {
      const url = new URL(e); // throws on a malformed URL
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RangeError(`endpoint must be http(s): ${e}`);
      return e.replace(/\/+$/, '');
    });
    this.given = this.list.length;
    const hint = preferred?.replace(/\/+$/, '');
    this.current = hint !== undefined && this.list.includes(hint) ? hint : this.list[0]!;
  }

  /** Every endpoint, given ones first. */
  all(): readonly string[] {
    return this.list;
  }

  /** `url` answered well: it is tried first from now on (and kept as an endpoint if it was learned). */
  answered(url: string): void {
    this.current = url;
    this.learn(url);
  }

  /**
   * A member that answered after a redirect becomes an endpoint too (the newest 16 are kept):
   * once every member the client was given has been replaced, the ones it learned still lead it to
   * the cluster.
   */
  private learn(url: string): void {
    if (this.list.includes(url)) return;
    this.list.push(url);
    if (this.list.length > this.given + LEARNED_ENDPOINTS_MAX) this.list.splice(this.given, 1);
  }

  /**
   * The endpoint after `after` (the first one if `after` is a redirect target not among them),
   * passing over those `avoid` names unless every one is avoided.
   */
  next(after: string, avoid?: SilentEndpoints): string {
    const plain = (from: string): string => this.list[(this.list.indexOf(from) + 1) % this.list.length]!;
    let candidate = plain(after);
    for (let i = 0; i < this.list.length && avoid?.avoided(candidate) === true; i++) candidate = plain(candidate);
    return avoid?.avoided(candidate) === true ? plain(after) : candidate;
  }
}

/**
 * The endpoints that let an attempt run out its deadline in one operation, each avoided for a
 * while: a paused leader's followers keep redirecting to it until they elect another leader (an
 * election timeout and more), and following them there would cost a whole attempt each time. The
 * avoidance ends (twice the attempt deadline), so a leader that was only briefly stalled (a long
 * fsync, a GC pause) is asked again within the same operation.
 */
export class SilentEndpoints {
  private readonly until = new Map<string, number>();

  constructor(private readonly avoidMs: number) {}

  silent(url: string): void {
    this.until.set(url, Date.now() + this.avoidMs);
  }

  avoided(url: string): boolean {
    const until = this.until.get(url);
    return until !== undefined && Date.now() < until;
  }
}
