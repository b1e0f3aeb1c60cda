import type { RandomSource } from '../core/rng.js';

/**
 * A seeded, deterministic pseudo-random number generator (xoshiro128**), written with 32-bit
 * integer operations only (Math.imul, shifts, `>>> 0`), so that a seed yields the same stream on
 * every JavaScript engine. It never touches Math.random or transcendental Math functions.
 */

const TWO_POW_32 = 0x1_0000_0000;
const GOLDEN_GAMMA = 0x9e3779b9;

/** The murmur3 / splitmix32 finalizer: a bijective avalanche mix of one 32-bit word. */
function mix32(value: number): number {
  let z = value >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** URL-safe base64 alphabet: A-Z a-z 0-9 - _ */
export const URL_SAFE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export class Prng implements RandomSource {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /** @param seed any safe integer (negative allowed); nearby seeds give unrelated streams. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(`Prng seed must be a safe integer, got ${seed}`);
    }
    // Split the seed into two 32-bit halves without floating-point surprises.
    const lo = seed >>> 0; // low 32 bits (two's complement for negatives)
    const hi = Math.floor(seed / TWO_POW_32) >>> 0;
    // Two splitmix32 streams, one per half, combined word by word.
    let a = mix32(lo ^ 0x5bd1e995);
    let b = mix32(hi ^ 0x27d4eb2f);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      a = (a + GOLDEN_GAMMA) >>> 0;
      b = (b + 0x7f4a7c15) >>> 0;
      words.push(mix32(mix32(a) ^ rotl(mix32(b), 11)));
    }
    this.setState(words[0] ?? 0, words[1] ?? 0, words[2] ?? 0, words[3] ?? 0);
    // Discard a few outputs so the first values are well mixed.
    for (let i = 0; i < 4; i++) this.nextUint32();
  }

  private setState(w0: number, w1: number, w2: number, w3: number): void {
    this.s0 = w0 >>> 0;
    this.s1 = w1 >>> 0;
    this.s2 = w2 >>> 0;
    this.s3 = w3 >>> 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) {
      // xoshiro must never have an all-zero state.
      this.s0 = GOLDEN_GAMMA;
    }
  }

  /** A uniformly distributed integer in [0, 2^32). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniformly distributed integer in [0, maxExclusive); maxExclusive is an integer in 1..2^32. */
  nextInt(maxExclusive: number): number {
    if (!Number.isInteger(maxExclusive) || maxExclusive <= 0 || maxExclusive > TWO_POW_32) {
      throw new RangeError(`nextInt: maxExclusive must be an integer in 1..2^32, got ${maxExclusive}`);
    }
    if (maxExclusive === TWO_POW_32) return this.nextUint32();
    // Reject the top partial block so every residue is equally likely.
    const limit = TWO_POW_32 - (TWO_POW_32 % maxExclusive);
    for (;;) {
      const r = this.nextUint32();
      if (r < limit) return r % maxExclusive;
    }
  }

  /** True with probability numerator/denominator (= nextInt(denominator) < numerator). */
  chance(numerator: number, denominator: number): boolean {
    return this.nextInt(denominator) < numerator;
  }

  /** A uniformly chosen element; throws on an empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick: empty array');
    return items[this.nextInt(items.length)] as T;
  }

  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = items[i] as T;
      items[i] = items[j] as T;
      items[j] = tmp;
    }
    return items;
  }

  /**
   * A child generator whose stream is derived deterministically from (and independent in
   * practice of) this one. Advances this generator by four outputs.
   */
  fork(): Prng {
    const child = new Prng(0);
    const w0 = this.nextUint32();
    const w1 = this.nextUint32();
    const w2 = this.nextUint32();
    const w3 = this.nextUint32();
    // Re-mix so the child's state is not a plain window of the parent's output sequence.
    child.setState(
      mix32(w0 ^ 0x243f6a88),
      mix32(w1 ^ 0x85a308d3),
      mix32(w2 ^ 0x13198a2e),
      mix32(w3 ^ 0x03707344),
    );
    for (let i = 0; i < 4; i++) child.nextUint32();
    return child;
  }

  /** A string of `length` characters drawn uniformly from `alphabet` (default: URL-safe base64). */
  randomString(length: number, alphabet: string = URL_SAFE_ALPHABET): string {
    if (!Number.isInteger(length) || length < 0) {
      throw new RangeError(`randomString: length must be a non-negative integer, got ${length}`);
    }
    if (alphabet.length === 0) throw new RangeError('randomString: empty alphabet');
    let out = '';
    for (let i = 0; i < length; i++) out += alphabet.charAt(this.nextInt(alphabet.length));
    return out;
  }
}
