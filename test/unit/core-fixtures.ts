/**
 * Shared fixtures for the tests that drive RaftCore by hand: timing constants, log entries and
 * message builders. Not a test file itself (it does not end in .test.ts).
 */
import { DEFAULT_TIMING } from '../../src/core/config.js';
import type {
  AppendEntries,
  AppendEntriesReply,
  Entry,
  LogIndex,
  NodeId,
  RequestVote,
  RequestVoteReply,
  Term,
} from '../../src/core/messages.js';
import type { RandomSource } from '../../src/core/rng.js';

/** Always draws the minimum election timeout (DEFAULT_TIMING.electionTimeoutTicksMin ticks). */
export const FIXED: RandomSource = { nextInt: () => 0 };
export const ET_MIN = DEFAULT_TIMING.electionTimeoutTicksMin;
export const ET_MAX = DEFAULT_TIMING.electionTimeoutTicksMax;
export const HB = DEFAULT_TIMING.heartbeatIntervalTicks;

const encoder = new TextEncoder();
export const bytes = (s: string): Uint8Array => encoder.encode(s);
export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

export function ent(index: LogIndex, term: Term, command = `${index}@${term}`): Entry {
  return { index, term, command: bytes(command) };
}

/** A log whose entry i+1 has term terms[i]. */
export function log(...terms: Term[]): Entry[] {
  return terms.map((term, i) => ent(i + 1, term));
}

export function rv(from: NodeId, to: NodeId, term: Term, lastLogIndex: LogIndex, lastLogTerm: Term): RequestVote {
  return { type: 'RequestVote', from, to, term, lastLogIndex, lastLogTerm };
}

export function rvr(from: NodeId, to: NodeId, term: Term, voteGranted: boolean): RequestVoteReply {
  return { type: 'RequestVoteReply', from, to, term, voteGranted };
}

export function ae(
  from: NodeId,
  to: NodeId,
  term: Term,
  prevLogIndex: LogIndex,
  prevLogTerm: Term,
  entries: Entry[],
  leaderCommit: LogIndex,
): AppendEntries {
  return { type: 'AppendEntries', from, to, term, prevLogIndex, prevLogTerm, entries, leaderCommit, readContext: 0 };
}

export function aer(
  from: NodeId,
  to: NodeId,
  term: Term,
  success: boolean,
  prevLogIndex: LogIndex,
  matchIndex: LogIndex,
  lastLogIndex = matchIndex,
): AppendEntriesReply {
  return {
    type: 'AppendEntriesReply',
    from,
    to,
    term,
    success,
    prevLogIndex,
    matchIndex: success ? matchIndex : 0,
    conflictTerm: 0,
    conflictIndex: 0,
    lastLogIndex,
    readContext: 0,
  };
}
