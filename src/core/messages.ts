/**
 * Raft's vocabulary: log entries, the four RPC messages of the paper (Figure 2) and the durable
 * state. Everything here is plain data so that the codec can encode it and the simulator can copy it.
 */

import type { Membership } from './membership.js';

/** A node's identity: a non-negative integer, unique within its cluster and never reused. */
export type NodeId = number;
/** A Raft term; 0 before the first election. */
export type Term = number;
/** A log position; the first entry has index 1, index 0 is the empty prefix. */
export type LogIndex = number;

export interface Entry {
  readonly index: LogIndex;
  readonly term: Term;
  /** Opaque command bytes, interpreted only by the application (empty for a configuration entry). */
  readonly command: Uint8Array;
  /**
   * Set only on a configuration entry: the cluster configuration from this index on (thesis ch. 4).
   * It takes effect as soon as it is in a node's log, committed or not.
   */
  readonly membership?: Membership;
}

export interface RequestVote {
  readonly type: 'RequestVote';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
  readonly lastLogIndex: LogIndex;
  readonly lastLogTerm: Term;
}

export interface RequestVoteReply {
  readonly type: 'RequestVoteReply';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
  readonly voteGranted: boolean;
}

/**
 * Pre-vote (Raft thesis §9.6): before starting an election, a node asks whether it could win one,
 * without raising its own term. `term` is the term the election would use (current + 1). A node
 * that cannot reach a majority, or whose log is behind, therefore never disturbs the cluster with
 * ever higher terms when it comes back.
 */
export interface PreVote {
  readonly type: 'PreVote';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
  readonly lastLogIndex: LogIndex;
  readonly lastLogTerm: Term;
}

/** A granted pre-vote carries the term it was asked for; a refusal carries the responder's term. */
export interface PreVoteReply {
  readonly type: 'PreVoteReply';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
  readonly voteGranted: boolean;
}

export interface AppendEntries {
  readonly type: 'AppendEntries';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
  readonly prevLogIndex: LogIndex;
  readonly prevLogTerm: Term;
  readonly entries: readonly Entry[];
  readonly leaderCommit: LogIndex;
  /**
   * The leader's read round when it sent this (ReadIndex, thesis §6.4); the follower echoes it, so
   * a reply proves the leader still led after every read registered up to that round.
   */
  readonly readContext: number;
}

/**
 * The answer to an AppendEntries. It names the request it answers (`prevLogIndex`, `entryCount`) so
 * that the leader never has to guess from its current, possibly newer, state what was acknowledged.
 */
export interface AppendEntriesReply {
  readonly type: 'AppendEntriesReply';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
  readonly success: boolean;
  /** The request's prevLogIndex: lets the leader discard rejections of requests it has moved past. */
  readonly prevLogIndex: LogIndex;
  /** On success: the last index known to match the leader (prevLogIndex + entries.length). */
  readonly matchIndex: LogIndex;
  /** On rejection: the term of the follower's entry at prevLogIndex, or 0 if its log is too short. */
  readonly conflictTerm: Term;
  /** On rejection: the first index of conflictTerm in the follower's log (0 if conflictTerm is 0). */
  readonly conflictIndex: LogIndex;
  /** On rejection: the follower's last log index. */
  readonly lastLogIndex: LogIndex;
  /** The request's readContext, echoed. */
  readonly readContext: number;
}

/**
 * One chunk of the leader's snapshot, for a follower that needs entries the leader has compacted.
 * Chunks are sent in order, a few ahead of the answers; a lost chunk is resent from the offset the
 * follower reports, so a large state never travels as one giant message. Every chunk names its
 * whole transfer (index, term, total length and checksum): two snapshots of the same index sent
 * by two leaders can differ, and a chunk of one must never be spliced into the other.
 */
export interface InstallSnapshot {
  readonly type: 'InstallSnapshot';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
  readonly lastIncludedIndex: LogIndex;
  readonly lastIncludedTerm: Term;
  /** Length of the whole snapshot in bytes. */
  readonly snapshotBytes: number;
  /** CRC32C of the whole snapshot, checked by the follower before it installs anything. */
  readonly checksum: number;
  /** Byte offset of `data` within the whole snapshot. */
  readonly offset: number;
  readonly data: Uint8Array;
  /** This is the last chunk: offset + data.length === snapshotBytes. */
  readonly done: boolean;
  /** The configuration in effect at lastIncludedIndex (the snapshot replaces the entries that said it). */
  readonly membership: Membership;
}

export interface InstallSnapshotReply {
  readonly type: 'InstallSnapshotReply';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
  /** The snapshot this answers. */
  readonly lastIncludedIndex: LogIndex;
  /** How many bytes of it the follower holds: where the next chunk must start. */
  readonly nextOffset: number;
  /** The follower's log now covers lastIncludedIndex (installed now or already committed). */
  readonly installed: boolean;
}

/**
 * Leadership transfer (thesis §3.10): the leader tells a follower whose log it has brought up to
 * date to start an election at once, without waiting for its timeout or a pre-vote round.
 */
export interface TimeoutNow {
  readonly type: 'TimeoutNow';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
}

export type Request = RequestVote | AppendEntries | PreVote | InstallSnapshot | TimeoutNow;
export type Reply = RequestVoteReply | AppendEntriesReply | PreVoteReply | InstallSnapshotReply;
export type Message = Request | Reply;
export type MessageType = Message['type'];

export function isRequest(message: Message): message is Request {
  return (
    message.type === 'RequestVote' ||
    message.type === 'AppendEntries' ||
    message.type === 'PreVote' ||
    message.type === 'InstallSnapshot' ||
    message.type === 'TimeoutNow'
  );
}

/** What must survive a crash besides the log: the paper's currentTerm and votedFor. */
export interface HardState {
  readonly term: Term;
  /** The candidate this node voted for in `term`, or -1 for none. */
  readonly votedFor: NodeId;
}

export const NO_VOTE: NodeId = -1;
export const NO_LEADER: NodeId = -1;

/**
 * The bytes of a snapshot, which need not be in memory: a runtime keeps a large snapshot in a file
 * and reads it a range at a time. A Uint8Array is one.
 */
export interface SnapshotBody {
  readonly byteLength: number;
  /** The bytes [start, end), for 0 <= start <= end <= byteLength (callers never count from the end). */
  subarray(start: number, end: number): Uint8Array;
}

/** A snapshot of the application's state covering the log up to and including `index`. */
export interface Snapshot {
  readonly index: LogIndex;
  readonly term: Term;
  readonly data: SnapshotBody;
  /**
   * The configuration in effect at `index`. The core always sets it; absent only in snapshots
   * written before configurations existed, which mean the configuration the node started with.
   */
  readonly membership?: Membership;
}

/** Everything a node restarts from. */
export interface PersistentState {
  readonly hardState: HardState;
  /** The latest snapshot, or null if the log was never compacted. */
  readonly snapshot: Snapshot | null;
  /** The log after the snapshot (from index 1 without one), in index order. */
  readonly entries: readonly Entry[];
}
