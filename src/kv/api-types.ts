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
}
