/**
 * Types of the KV service's HTTP API shared by the server side (server.ts, http-api.ts) and the
 * client (client.ts), so that the client needs none of the server's code.
 */
import type { NodeStatus } from '../runtime/node.js';

/** A member's Raft and KV status, as served at GET /v1/status. */
export interface KvServerStatus {
  readonly id: number;
  /** The cluster this member belongs to (a joining node adopts it, or refuses a different --cluster-id). */
  readonly clusterId: string;
  readonly role: NodeStatus['role'];
  readonly term: number;
  readonly leaderId: number | null;
  readonly leaderUrl: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly peers: readonly { id: number; url: string | null; match: number; next: number; state: string }[];
  readonly keys: number;
  readonly bytes: number;
  readonly sessions: number;
  /** Leases the store holds. */
  readonly leases: number;
  /** The KV store's revision on this node (the writes it has applied that changed the store; see state-machine.ts). */
  readonly revision: number;
  readonly snapshotsTaken: number;
  readonly stopped: boolean;
  /** A leader handing leadership over: to whom (writes answer 503 leader-transfer meanwhile); else null. */
  readonly transferTarget: number | null;
  /** Times this node stepped down as leader because it had not heard from a majority (check-quorum). */
  readonly quorumLost: number;
  /** The configuration in effect on this node (member ids), and the index of the entry that set it (0: the starting one). */
  readonly membership: {
    readonly voters: readonly number[];
    /** The previous voters while a change of voters is under way (joint consensus); else empty. */
    readonly outgoing: readonly number[];
    readonly learners: readonly number[];
    readonly index: number;
  };
}

/** One member in GET /v1/members. `raft` and `http` are null when no address is known for it. */
export interface MemberView {
  readonly id: number;
  /** Where its Raft transport listens: `HOST:PORT` (an IPv6 host in brackets). */
  readonly raft: string | null;
  /** Its HTTP API's base URL, `http://HOST:PORT`. */
  readonly http: string | null;
  /** Only in the leader's answer: the highest log index known to be replicated on it (the leader's own: its last index). */
  readonly match?: number;
}

/** GET /v1/members: the configuration in effect on the answering node (the latest in its log, committed or not). */
export interface MembersView {
  /** The leader this node knows of (itself when it leads), or null. */
  readonly leader: number | null;
  /** The index of the entry that set this configuration (0: the starting configuration). */
  readonly membershipIndex: number;
  /** Whether this node knows that entry to be committed. */
  readonly committed: boolean;
  /** A change of voters is under way: decisions need a majority of `voters` and one of `outgoing`. */
  readonly joint: boolean;
  readonly voters: readonly MemberView[];
  readonly outgoing: readonly MemberView[];
  readonly learners: readonly MemberView[];
}

/** The answer to a completed membership change: the leader's view once it completed, and where. */
export interface MembershipChangeResult extends MembersView {
  /** The log index of the entry that completed the change (the final configuration's, after a joint one). */
  readonly index: number;
}

/** The answer to POST /v1/leader/transfer. */
export interface LeaderTransferResult {
  /** The member that leads now. Equal to previousLeaderId when the target already led. */
  readonly leaderId: number;
  readonly leaderUrl: string | null;
  /** The member that answered the request, the leader when it arrived. */
  readonly previousLeaderId: number;
  /** The term the new leader leads in (as known to the previous leader when it heard of it). */
  readonly term: number;
}
