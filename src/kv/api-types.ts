/**
 * Types of the KV service's HTTP API shared by the server side (server.ts, http-api.ts) and the
 * client (client.ts), so that the client needs none of the server's code.
 */
import type { NodeStatus } from '../runtime/node.js';

/** A member's Raft and KV status, as served at GET /v1/status. */
export interface KvServerStatus {
  readonly id: number;
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
  readonly snapshotsTaken: number;
  readonly stopped: boolean;
  /** A leader handing leadership over: to whom (writes answer 503 leader-transfer meanwhile); else null. */
  readonly transferTarget: number | null;
  /** Times this node stepped down as leader because it had not heard from a majority (check-quorum). */
  readonly quorumLost: number;
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
