/**
 * Unit tests for RaftLog (src/core/log.ts): the in-memory log, its commit cursor and its
 * durable/unstable bookkeeping.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvariantError } from '../../src/core/assert.js';
import { ENTRY_ENVELOPE_BYTES, RaftLog } from '../../src/core/log.js';
import type { Entry, LogIndex, Term } from '../../src/core/messages.js';

/** An entry whose command is `size` bytes, each byte = index (so entries are distinguishable). */
function e(index: LogIndex, term: Term, size = 1): Entry {
  return { index, term, command: new Uint8Array(size).fill(index & 0xff) };
}

/** Entries 1..terms.length with the given terms. */
function withTerms(terms: readonly Term[], size = 1): Entry[] {
  return terms.map((term, i) => e(i + 1, term, size));
}

/** The log's (index, term) pairs from first to last index. */
function shape(log: RaftLog): Array<[LogIndex, Term]> {
  const out: Array<[LogIndex, Term]> = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push([i, log.entry(i).term]);
  return out;
}

describe('RaftLog basics', () => {
  test('an empty log: lastIndex 0, lastTerm 0, term(0) = 0, nothing unstable', () => {
    const log = new RaftLog();
    assert.equal(log.firstIndex(), 1);
    assert.equal(log.lastIndex(), 0);
    assert.equal(log.lastTerm(), 0);
    assert.equal(log.term(0), 0);
    assert.equal(log.term(1), undefined);
    assert.equal(log.commitIndex, 0);
    assert.equal(log.appliedIndex, 0);
    assert.equal(log.stableIndex, 0);
    assert.equal(log.hasUnstable(), false);
    assert.equal(log.unstable(), null);
  });

  test('append extends the log; term() and entry() read it back', () => {
    const log = new RaftLog();
    log.append(e(1, 1));
    log.append(e(2, 1));
    log.append(e(3, 4));
    assert.equal(log.lastIndex(), 3);
    assert.equal(log.lastTerm(), 4);
    assert.equal(log.term(2), 1);
    assert.equal(log.term(3), 4);
    assert.equal(log.term(4), undefined);
    assert.equal(log.entry(3).term, 4);
    assert.deepEqual(log.entry(2).command, new Uint8Array([2]));
  });

  test('append rejects a gap, a repeated index and a decreasing term', () => {
    const log = new RaftLog(withTerms([1, 2]));
    assert.throws(() => log.append(e(4, 2)), InvariantError);
    assert.throws(() => log.append(e(2, 2)), InvariantError);
    assert.throws(() => log.append(e(3, 1)), InvariantError);
    assert.equal(log.lastIndex(), 2);
  });

  test('entry() of an absent index throws', () => {
    const log = new RaftLog(withTerms([1]));
    assert.throws(() => log.entry(2), InvariantError);
    assert.throws(() => log.entry(0), InvariantError);
  });

  test('a log built from entries counts them as stable (restored from disk)', () => {
    const log = new RaftLog(withTerms([1, 1, 2]));
    assert.equal(log.lastIndex(), 3);
    assert.equal(log.stableIndex, 3);
    assert.equal(log.hasUnstable(), false);
    assert.equal(log.unstable(), null);
  });
});

describe('RaftLog.slice', () => {
  test('returns the inclusive range', () => {
    const log = new RaftLog(withTerms([1, 1, 2, 3, 3]));
    const s = log.slice(2, 4);
    assert.deepEqual(
      s.map((x) => [x.index, x.term]),
      [
        [2, 1],
        [3, 2],
        [4, 3],
      ],
    );
    assert.deepEqual(log.slice(5, 5).map((x) => x.index), [5]);
  });

  test('stops once bytesMax would be exceeded', () => {
    const log = new RaftLog(withTerms([1, 1, 1, 1, 1], 10));
    // Each entry counts its command and ENTRY_ENVELOPE_BYTES (index, term, length on the wire).
    const each = 10 + ENTRY_ENVELOPE_BYTES;
    // Two entries fit in 2.5 entries' worth, the third would exceed it.
    assert.deepEqual(log.slice(1, 5, 2.5 * each).map((x) => x.index), [1, 2]);
    // Exactly at the limit is still allowed.
    assert.deepEqual(log.slice(1, 5, 3 * each).map((x) => x.index), [1, 2, 3]);
    assert.deepEqual(log.slice(1, 5, 3 * each - 1).map((x) => x.index), [1, 2]);
    assert.deepEqual(log.slice(2, 5, 1_000).map((x) => x.index), [2, 3, 4, 5]);
  });

  test('many tiny commands are bounded by their envelopes: empty commands still count', () => {
    const log = new RaftLog(withTerms(Array<number>(100).fill(1), 0));
    assert.deepEqual(log.slice(1, 100, 10 * ENTRY_ENVELOPE_BYTES).map((x) => x.index), Array.from({ length: 10 }, (_, i) => i + 1));
  });

  test('always returns at least one entry even if it alone exceeds bytesMax', () => {
    const log = new RaftLog([e(1, 1, 100), e(2, 1, 1)]);
    assert.deepEqual(log.slice(1, 2, 10).map((x) => x.index), [1]);
    assert.deepEqual(log.slice(1, 2, 0).map((x) => x.index), [1]);
  });

  test('rejects a range beyond the last index', () => {
    const log = new RaftLog(withTerms([1, 1]));
    assert.throws(() => log.slice(1, 3), InvariantError);
    assert.throws(() => log.slice(0, 1), InvariantError);
  });
});

describe('RaftLog.isUpToDate (§5.4.1 election restriction)', () => {
  // Our log: last index 3, last term 2.
  const log = new RaftLog(withTerms([1, 2, 2]));

  test('a higher last term wins regardless of length', () => {
    assert.equal(log.isUpToDate(1, 3), true);
  });
  test('a lower last term loses regardless of length', () => {
    assert.equal(log.isUpToDate(100, 1), false);
  });
  test('same last term: longer or equal wins, shorter loses', () => {
    assert.equal(log.isUpToDate(4, 2), true);
    assert.equal(log.isUpToDate(3, 2), true);
    assert.equal(log.isUpToDate(2, 2), false);
  });
  test('an empty log accepts anyone, and an empty candidate only an empty log', () => {
    const empty = new RaftLog();
    assert.equal(empty.isUpToDate(0, 0), true);
    assert.equal(empty.isUpToDate(5, 1), true);
    assert.equal(log.isUpToDate(0, 0), false);
  });
});

describe('RaftLog.merge (§5.3 step 3/4)', () => {
  test('appends new entries after the matching prefix', () => {
    const log = new RaftLog(withTerms([1, 1]));
    log.merge([e(3, 1), e(4, 2)]);
    assert.deepEqual(shape(log), [
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 2],
    ]);
  });

  test('a stale, shorter AppendEntries after a longer one never truncates matching entries', () => {
    const log = new RaftLog();
    // The longer request arrives first...
    log.merge([e(1, 1), e(2, 1), e(3, 1), e(4, 1)]);
    // ...then a delayed or duplicated shorter request with the same (matching) entries.
    log.merge([e(1, 1), e(2, 1)]);
    assert.equal(log.lastIndex(), 4);
    assert.deepEqual(shape(log), [
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 1],
    ]);
    // An empty merge (heartbeat) changes nothing either.
    log.merge([]);
    assert.equal(log.lastIndex(), 4);
  });

  test('a fully duplicated request is a no-op, including for the unstable cursor', () => {
    const log = new RaftLog(withTerms([1, 1, 1]));
    log.merge([e(2, 1), e(3, 1)]);
    assert.equal(log.hasUnstable(), false);
    assert.equal(log.unstable(), null);
  });

  test('truncates from the first conflicting entry only and appends the rest', () => {
    const log = new RaftLog(withTerms([1, 1, 2, 2, 2]));
    // Index 2 matches (term 1), index 3 conflicts (2 vs 3).
    log.merge([e(2, 1), e(3, 3), e(4, 3)]);
    assert.deepEqual(shape(log), [
      [1, 1],
      [2, 1],
      [3, 3],
      [4, 3],
    ]);
    // Entry 5 of the old term is gone: the conflicting suffix is dropped in full.
    assert.equal(log.term(5), undefined);
  });

  test('a conflict in the middle of the request truncates there, not at the request start', () => {
    const log = new RaftLog(withTerms([1, 1, 1, 1]));
    const before = log.entry(2);
    log.merge([e(2, 1), e(3, 1), e(4, 5)]);
    assert.deepEqual(shape(log), [
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 5],
    ]);
    // The matching entry object was not replaced.
    assert.equal(log.entry(2), before);
  });

  test('truncating a committed entry throws InvariantError and leaves the log unchanged', () => {
    const log = new RaftLog(withTerms([1, 1, 1]));
    log.commitTo(2);
    assert.throws(() => log.merge([e(2, 2)]), InvariantError);
    assert.deepEqual(shape(log), [
      [1, 1],
      [2, 1],
      [3, 1],
    ]);
    assert.equal(log.commitIndex, 2);
    // Truncating just above the commit index is fine.
    log.merge([e(3, 2)]);
    assert.deepEqual(shape(log), [
      [1, 1],
      [2, 1],
      [3, 2],
    ]);
  });
});

describe('RaftLog commit and apply cursors', () => {
  test('commitTo is monotonic: lower or equal indices are ignored', () => {
    const log = new RaftLog(withTerms([1, 1, 1, 1]));
    assert.equal(log.commitTo(3), true);
    assert.equal(log.commitIndex, 3);
    assert.equal(log.commitTo(2), false);
    assert.equal(log.commitIndex, 3);
    assert.equal(log.commitTo(3), false);
    assert.equal(log.commitTo(4), true);
    assert.equal(log.commitIndex, 4);
  });

  test('commitTo beyond the last index throws', () => {
    const log = new RaftLog(withTerms([1, 1]));
    assert.throws(() => log.commitTo(3), InvariantError);
    assert.equal(log.commitIndex, 0);
  });

  test('unapplied() returns committed, unapplied entries; appliedTo moves forward only', () => {
    const log = new RaftLog(withTerms([1, 1, 1, 1]));
    assert.deepEqual(log.unapplied(), []);
    log.commitTo(3);
    assert.deepEqual(log.unapplied().map((x) => x.index), [1, 2, 3]);
    log.appliedTo(2);
    assert.deepEqual(log.unapplied().map((x) => x.index), [3]);
    assert.throws(() => log.appliedTo(1), InvariantError);
    assert.throws(() => log.appliedTo(4), InvariantError);
    log.appliedTo(3);
    assert.deepEqual(log.unapplied(), []);
  });
});

describe('RaftLog term search', () => {
  // index: 1 2 3 4 5 6 7
  // term:  1 1 3 3 3 5 5
  const log = new RaftLog(withTerms([1, 1, 3, 3, 3, 5, 5]));

  test('firstIndexOfTerm finds the start of the run containing index', () => {
    assert.equal(log.firstIndexOfTerm(5), 3);
    assert.equal(log.firstIndexOfTerm(3), 3);
    assert.equal(log.firstIndexOfTerm(4), 3);
    assert.equal(log.firstIndexOfTerm(2), 1);
    assert.equal(log.firstIndexOfTerm(7), 6);
    assert.throws(() => log.firstIndexOfTerm(8), InvariantError);
  });

  test('lastIndexOfTerm finds the last entry of a term at or below a bound', () => {
    assert.equal(log.lastIndexOfTerm(3, 7), 5);
    assert.equal(log.lastIndexOfTerm(3, 4), 4);
    assert.equal(log.lastIndexOfTerm(1, 100), 2);
    assert.equal(log.lastIndexOfTerm(5, 100), 7);
    // Terms the log does not hold.
    assert.equal(log.lastIndexOfTerm(2, 7), 0);
    assert.equal(log.lastIndexOfTerm(4, 7), 0);
    assert.equal(log.lastIndexOfTerm(6, 7), 0);
    // A term that only exists above the bound.
    assert.equal(log.lastIndexOfTerm(5, 5), 0);
  });
});

describe('RaftLog unstable()/stableTo bookkeeping', () => {
  test('appends are unstable until stableTo', () => {
    const log = new RaftLog(withTerms([1, 1]));
    log.append(e(3, 1));
    log.append(e(4, 2));
    assert.equal(log.hasUnstable(), true);
    const u = log.unstable();
    assert.ok(u !== null);
    assert.equal(u.fromIndex, 3);
    assert.deepEqual(u.entries.map((x) => x.index), [3, 4]);
    assert.equal(log.stableIndex, 2);
    log.stableTo(4);
    assert.equal(log.stableIndex, 4);
    assert.equal(log.hasUnstable(), false);
    assert.equal(log.unstable(), null);
  });

  test('partial stableTo leaves the rest unstable', () => {
    const log = new RaftLog();
    log.append(e(1, 1));
    log.append(e(2, 1));
    log.append(e(3, 1));
    log.stableTo(1);
    const u = log.unstable();
    assert.ok(u !== null);
    assert.equal(u.fromIndex, 2);
    assert.deepEqual(u.entries.map((x) => x.index), [2, 3]);
  });

  test('stableTo beyond the last index throws', () => {
    const log = new RaftLog(withTerms([1]));
    assert.throws(() => log.stableTo(2), InvariantError);
  });

  test('a truncation of stable entries rewinds the unstable cursor to the truncation point', () => {
    const log = new RaftLog(withTerms([1, 1, 1, 1, 1]));
    log.merge([e(3, 2), e(4, 2)]);
    const u = log.unstable();
    assert.ok(u !== null);
    assert.equal(u.fromIndex, 3);
    assert.deepEqual(
      u.entries.map((x) => [x.index, x.term]),
      [
        [3, 2],
        [4, 2],
      ],
    );
    assert.equal(log.stableIndex, 2);
    log.stableTo(4);
    assert.equal(log.hasUnstable(), false);
  });

  test('a truncation inside the unstable tail keeps the earlier unstable start', () => {
    const log = new RaftLog(withTerms([1, 1]));
    log.append(e(3, 1));
    log.append(e(4, 1));
    log.append(e(5, 1));
    log.merge([e(4, 3)]);
    const u = log.unstable();
    assert.ok(u !== null);
    assert.equal(u.fromIndex, 3);
    assert.deepEqual(
      u.entries.map((x) => [x.index, x.term]),
      [
        [3, 1],
        [4, 3],
      ],
    );
  });

  test('a truncation that shortens the log is still reported (drop from fromIndex)', () => {
    const log = new RaftLog(withTerms([1, 1, 1, 1, 1]));
    // Replace 3..5 (term 1) with a single entry 3 of term 2: the log gets shorter.
    log.merge([e(3, 2)]);
    assert.equal(log.lastIndex(), 3);
    const u = log.unstable();
    assert.ok(u !== null);
    assert.equal(u.fromIndex, 3);
    assert.deepEqual(u.entries.map((x) => [x.index, x.term]), [[3, 2]]);
    log.stableTo(3);
    assert.equal(log.stableIndex, 3);
    assert.equal(log.unstable(), null);
  });
});
