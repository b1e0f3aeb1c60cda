/**
 * A log whose pace is bounded, for lines a stranger can cause (a peer-port visitor, an HTTP client
 * without credentials): a flood of them must not flood the log too.
 */

/**
 * At most `burst` lines per `windowMs`; the next line logged after a quiet spell says how many
 * were left out.
 */
export class RateLimitedLog {
  private windowStart = 0;
  private lines = 0;
  private suppressed = 0;

  constructor(
    private readonly sink: (line: string) => void,
    private readonly burst: number,
    private readonly windowMs: number,
    private readonly what: string,
  ) {}

  log(line: string): void {
    const now = Date.now();
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.lines = 0;
    }
    if (this.lines >= this.burst) {
      this.suppressed++;
      return;
    }
    this.lines++;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    this.sink(suppressed === 0 ? line : `${line} (${suppressed} earlier ${this.what} not logged)`);
  }
}
