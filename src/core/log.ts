import { assert } from './assert.js';
import type { Membership, MembershipAt } from './membership.js';
import type { Entry, LogIndex, Term } from './messages.js';

/** An upper bound on what the codec adds to an entry's command (index, term, kind, length prefix). */
export const ENTRY_ENVELOPE_BYTES = 24;

/** A bound on an entry's encoded size, for batching: its command, or its configuration, plus the envelope. */
export function entryBytes(entry: Entry): number {
  const m = entry.membership;
  if (m === undefined) return entry.command.length + ENTRY_ENVELOPE_BYTES;
  let bytes = ENTRY_ENVELOPE_BYTES + 10 * (m.voters.length + m.outgoing.length + m.learners.length + 4);
  for (const a of m.addresses) bytes += 10 + 3 * a.address.length;
  return bytes;
}

/**
 * The in-memory replicated log plus the cursors that say how much of it is committed, applied and
 * durable. Entries before `firstIndex()` have been compacted away (their position and term survive
 * as `compactedIndex` / `compactedTerm`, the snapshot boundary).
 *
 * Invariants, asserted where they change:
 *   compactedIndex <= appliedIndex <= commitIndex <= lastIndex()
 *   commitIndex never decreases; committed entries are never truncated.
 *   entries[i].index === compactedIndex + 1 + i, and terms never decrease along the log.
 */
export class RaftLog {
  private entries: Entry[] = [];
  private compactedIndex: LogIndex = 0;
  private compactedTerm: Term = 0;
  private committed: LogIndex = 0;
  private applied: LogIndex = 0;
  /** Lowest index changed since the last durable write; lastIndex()+1 when nothing is pending. */
  private unstableFrom: LogIndex = 1;
  /** A truncation not yet made durable (normally followed by an append, but not necessarily). */
  private truncatedSinceStable = false;
  /** The configuration in effect at the snapshot boundary (or the initial one). */
  private baseMembership: Membership;
  /** Indices of the configuration entries after the boundary, ascending. */
  private membershipIndices: LogIndex[] = [];
  /** Bumped whenever the latest configuration may have changed. */
  private membershipVersionCounter = 0;

  /**
   * A log restored from durable state: the snapshot boundary (if any) and the entries after it.
   * `membership` is the configuration in effect at the boundary (the snapshot's, or the initial one).
   */
  constructor(entries: readonly Entry[] = [], boundary?: { readonly index: LogIndex; readonly term: Term }, membership: Membership = EMPTY_MEMBERSHIP) {
    this.baseMembership = membership;
    if (boundary !== undefined) {
      this.compactedIndex = boundary.index;
      this.compactedTerm = boundary.term;
      // A snapshot only ever covers applied, hence committed, entries.
      this.committed = boundary.index;
      this.applied = boundary.index;
    }
    for (const entry of entries) this.appendOne(entry);
    this.unstableFrom = this.lastIndex() + 1;
  }

  /** The snapshot boundary: the last compacted index and its term (0, 0 before any snapshot). */
  get snapshotIndex(): LogIndex {
    return this.compactedIndex;
  }

  get snapshotTerm(): Term {
    return this.compactedTerm;
  }

  /**
   * Discards entries up to and including `index`, which the application has captured in a
   * snapshot. Only applied (so committed and durable) entries may be compacted.
   */
  compactTo(index: LogIndex): void {
    assert(index <= this.applied, () => `compacting to ${index} beyond applied index ${this.applied}`);
    assert(index <= this.stableIndex, () => `compacting to ${index} beyond durable index ${this.stableIndex}`);
    if (index <= this.compactedIndex) return;
    const term = this.term(index)!;
    this.baseMembership = this.membershipAt(index);
    this.membershipIndices = this.membershipIndices.filter((i) => i > index);
    this.membershipVersionCounter++;
    this.entries = this.entries.slice(index - this.compactedIndex);
    this.compactedIndex = index;
    this.compactedTerm = term;
  }

  // ---------------------------------------------------------------- configurations

  /** The latest configuration in the log, committed or not (thesis §4.1: it takes effect at once). */
  membership(): Membership {
    const last = this.membershipIndices[this.membershipIndices.length - 1];
    return last === undefined ? this.baseMembership : this.entry(last).membership!;
  }

  /** The index of the latest configuration entry (the boundary's index if none follows it). */
  membershipIndex(): LogIndex {
    return this.membershipIndices[this.membershipIndices.length - 1] ?? this.compactedIndex;
  }

  /** The configuration in effect at `index` (the latest configuration entry at or below it). */
  membershipAt(index: LogIndex): Membership {
    for (let i = this.membershipIndices.length - 1; i >= 0; i--) {
      const at = this.membershipIndices[i]!;
      if (at <= index) return this.entry(at).membership!;
    }
    return this.baseMembership;
  }

  /** Every configuration the log holds: the boundary's, then each configuration entry's. */
  memberships(): MembershipAt[] {
    return [
      { index: this.compactedIndex, membership: this.baseMembership },
      ...this.membershipIndices.map((index) => ({ index, membership: this.entry(index).membership! })),
    ];
  }

  /** Changes whenever the latest configuration may have changed (cheap change detection). */
  get membershipVersion(): number {
    return this.membershipVersionCounter;
  }

  /**
   * Moves the log onto a snapshot received from the leader. Entries after it survive if the log
   * agrees with the snapshot at its last index (§7: they may be newer and valid); otherwise the
   * whole log is replaced. The caller has checked that the snapshot is ahead of our commit index.
   */
  installSnapshot(index: LogIndex, term: Term, membership: Membership): void {
    assert(index > this.committed, () => `installing snapshot ${index} at or below commit ${this.committed}`);
    this.baseMembership = membership;
    this.membershipVersionCounter++;
    if (this.term(index) === term) {
      this.entries = this.entries.slice(index - this.compactedIndex);
      this.membershipIndices = this.membershipIndices.filter((i) => i > index);
    } else {
      this.entries = [];
      this.membershipIndices = [];
      this.truncatedSinceStable = true;
      this.unstableFrom = index + 1;
    }
    this.compactedIndex = index;
    this.compactedTerm = term;
    this.committed = index;
    this.applied = index;
    if (this.unstableFrom <= index) this.unstableFrom = index + 1;
  }

  firstIndex(): LogIndex {
    return this.compactedIndex + 1;
  }

  lastIndex(): LogIndex {
    return this.compactedIndex + this.entries.length;
  }

  lastTerm(): Term {
    const last = this.entries[this.entries.length - 1];
    return last === undefined ? this.compactedTerm : last.term;
  }

  get commitIndex(): LogIndex {
    return this.committed;
  }

  get appliedIndex(): LogIndex {
    return this.applied;
  }

  /** The last index that is durable (everything before `unstableFrom`). */
  get stableIndex(): LogIndex {
    return this.unstableFrom - 1;
  }

  /** The term of the entry at `index`, or undefined if it is compacted (below the boundary) or absent. */
  term(index: LogIndex): Term | undefined {
    if (index === this.compactedIndex) return this.compactedTerm;
    if (index < this.compactedIndex || index > this.lastIndex()) return undefined;
    return this.entry(index).term;
  }

  entry(index: LogIndex): Entry {
    const entry = this.entries[index - this.compactedIndex - 1];
    assert(entry !== undefined, () => `no entry at index ${index} (log holds ${this.firstIndex()}..${this.lastIndex()})`);
    return entry;
  }

  /**
   * Entries [from, to] inclusive, stopping early once `bytesMax` is reached (at least one entry).
   * Each entry counts its command plus ENTRY_ENVELOPE_BYTES, so that a batch of many tiny commands
   * is bounded on the wire too.
   */
  slice(from: LogIndex, to: LogIndex, bytesMax = Number.POSITIVE_INFINITY): Entry[] {
    assert(from >= this.firstIndex(), () => `slice from ${from} is compacted (first ${this.firstIndex()})`);
    assert(to <= this.lastIndex(), () => `slice to ${to} is beyond last index ${this.lastIndex()}`);
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = from; index <= to; index++) {
      const entry = this.entry(index);
      bytes += entryBytes(entry);
      if (result.length > 0 && bytes > bytesMax) break;
      result.push(entry);
    }
    return result;
  }

  /** The §5.4.1 election restriction: is a log ending at (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: LogIndex, lastTerm: Term): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** The first index of the run of entries with the same term as `index` (bounded by the compaction boundary). */
  firstIndexOfTerm(index: LogIndex): LogIndex {
    const term = this.term(index);
    assert(term !== undefined, () => `firstIndexOfTerm(${index}) outside the log`);
    let first = index;
    while (first - 1 >= this.firstIndex() && this.entry(first - 1).term === term) first--;
    return first;
  }

  /** The last index holding `term` at or below `atOrBelow`, or 0 if there is none. */
  lastIndexOfTerm(term: Term, atOrBelow: LogIndex): LogIndex {
    for (let index = Math.min(atOrBelow, this.lastIndex()); index >= this.firstIndex(); index--) {
      const entryTerm = this.entry(index).term;
      if (entryTerm === term) return index;
      if (entryTerm < term) return 0;
    }
    return 0;
  }

  append(entry: Entry): void {
    this.appendOne(entry);
  }

  /**
   * Merges entries that follow `prevIndex` (already checked to match), truncating only at the first
   * entry whose term differs. Matching entries are never touched, so a stale, reordered
   * AppendEntries cannot delete entries a newer one added.
   */
  merge(entries: readonly Entry[]): void {
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (entry.index <= this.compactedIndex) continue;
      if (entry.index <= this.lastIndex()) {
        if (this.entry(entry.index).term === entry.term) continue;
        this.truncateFrom(entry.index);
      }
      for (let j = i; j < entries.length; j++) this.appendOne(entries[j]!);
      return;
    }
  }

  /**
   * Injected bug only (`truncate-on-stale-append`): drops every entry after `index` that is not
   * committed, whether or not it matches the leader. Correct code never calls this.
   */
  truncateAfterUnchecked(index: LogIndex): void {
    const from = Math.max(index + 1, this.committed + 1, this.firstIndex());
    if (from <= this.lastIndex()) this.truncateFrom(from);
  }

  commitTo(index: LogIndex): boolean {
    if (index <= this.committed) return false;
    assert(index <= this.lastIndex(), () => `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  /** Committed entries not yet handed to the application. */
  unapplied(): Entry[] {
    return this.committed > this.applied ? this.slice(this.applied + 1, this.committed) : [];
  }

  appliedTo(index: LogIndex): void {
    assert(index >= this.applied, () => `applied index would go back from ${this.applied} to ${index}`);
    assert(index <= this.committed, () => `applied ${index} beyond commit ${this.committed}`);
    this.applied = index;
  }

  hasUnstable(): boolean {
    return this.unstableFrom <= this.lastIndex() || this.truncatedSinceStable;
  }

  /** Entries changed since the last durable write, as a LogWrite-shaped pair, or null. */
  unstable(): { fromIndex: LogIndex; entries: Entry[] } | null {
    if (!this.hasUnstable()) return null;
    const fromIndex = this.unstableFrom;
    const entries = fromIndex <= this.lastIndex() ? this.slice(fromIndex, this.lastIndex()) : [];
    return { fromIndex, entries };
  }

  stableTo(index: LogIndex): void {
    assert(index <= this.lastIndex(), () => `stableTo(${index}) beyond last index ${this.lastIndex()}`);
    assert(index >= this.compactedIndex, () => `stableTo(${index}) below the snapshot ${this.compactedIndex}`);
    this.unstableFrom = index + 1;
    this.truncatedSinceStable = false;
  }

  private truncateFrom(index: LogIndex): void {
    assert(
      index > this.committed,
      () => `refusing to truncate committed entries: truncate from ${index}, commit ${this.committed}`,
    );
    this.entries.length = index - this.compactedIndex - 1;
    while (this.membershipIndices.length > 0 && this.membershipIndices[this.membershipIndices.length - 1]! >= index) {
      this.membershipIndices.pop();
      this.membershipVersionCounter++;
    }
    if (index < this.unstableFrom) this.unstableFrom = index;
    this.truncatedSinceStable = true;
  }

  private appendOne(entry: Entry): void {
    const expected = this.lastIndex() + 1;
    assert(entry.index === expected, () => `appending index ${entry.index}, expected ${expected}`);
    assert(
      entry.term >= this.lastTerm(),
      () => `log terms must not decrease: appending term ${entry.term} after ${this.lastTerm()}`,
    );
    this.entries.push(entry);
    if (entry.membership !== undefined) {
      this.membershipIndices.push(entry.index);
      this.membershipVersionCounter++;
    }
  }
}

const EMPTY_MEMBERSHIP: Membership = { voters: [], outgoing: [], learners: [], addresses: [] };
