/**
 * The search's memory of visited nodes, (set of linearized operations, model state).
 *
 * Decides whether a search node can be pruned because an equivalent or weaker one was already
 * explored: the rest of the search depends on nothing but the linearized set and the state (Lowe's
 * memoisation), and a failed node also rules out nodes that differ only by having linearized more
 * operations of unknown outcome (`Memo`). The caller hashes the linearized set incrementally with
 * per-operation random words (`mix32`); the memo mixes in the state.
 */

/** Scrambles a 32-bit integer (the MurmurHash3 finaliser): for hash words. */
export function mix32(value: number): number {
  let z = value >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export interface MemoEntry {
  readonly bits: Uint32Array;
  readonly state: number;
  /** Set once the search has backtracked out of this node: no linearization extends it. */
  finished: boolean;
}

/**
 * The visited search nodes, as (set of linearized operations, state). A node is pruned if it was
 * visited before, or if a finished (failed) node had the same state, the same completed
 * operations linearized and a subset of its unknown operations linearized: an unknown operation
 * may be left out, so every way to finish the new node also finishes the old one. (Only finished
 * nodes subsume: an unfinished one is an ancestor still being searched.) The hash covers the
 * completed operations and the state only, so such nodes share a bucket.
 */
export class Memo {
  private readonly buckets = new Map<number, MemoEntry | MemoEntry[]>();

  /** @param knownMask the bits of completed operations (the others are of unknown outcome). */
  constructor(private readonly knownMask: Uint32Array) {}

  /** Adds (bits, state) under `hash` and returns its entry; undefined if it is pruned. */
  add(hash: number, bits: Uint32Array, state: number): MemoEntry | undefined {
    const h = (hash ^ mix32(state + 0x9e3779b9)) >>> 0;
    const slot = this.buckets.get(h);
    if (slot !== undefined) {
      if (Array.isArray(slot)) {
        for (const e of slot) if (this.subsumes(e, bits, state)) return undefined;
      } else if (this.subsumes(slot, bits, state)) return undefined;
    }
    const entry: MemoEntry = { bits: bits.slice(), state, finished: false };
    if (slot === undefined) this.buckets.set(h, entry);
    else if (Array.isArray(slot)) slot.push(entry);
    else this.buckets.set(h, [slot, entry]);
    return entry;
  }

  private subsumes(e: MemoEntry, bits: Uint32Array, state: number): boolean {
    if (e.state !== state) return false;
    const a = e.bits;
    const km = this.knownMask;
    let same = true;
    for (let w = 0; w < a.length; w++) {
      const x = a[w]!;
      const y = bits[w]!;
      if (x === y) continue;
      same = false;
      const k = km[w]!;
      // Completed operations must match; the entry's unknown ones must be among ours.
      if (((x ^ y) & k) !== 0 || (x & ~y & ~k) !== 0) return false;
    }
    return same || e.finished;
  }
}
