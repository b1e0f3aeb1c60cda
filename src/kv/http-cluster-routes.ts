/**
 * The HTTP API's routes about the member and its cluster rather than about keys (see the API
 * reference in http-api.ts, which routes to them): GET /healthz, /readyz, /v1/status, /metrics and
 * POST /v1/leader/transfer.
 */
import type { ServerResponse } from 'node:http';
import { ConfigError, RaftError } from '../runtime/errors.js';
import type { LeaderTransferResult } from './api-types.js';
import type { KvApiBackend } from './http-api.js';
import { HttpError, type HttpStats, parseQuery, sendError, sendJson, textParam } from './http-io.js';
import { answeredNotLeader, answerRaftError } from './http-raft-errors.js';

export const TRANSFER_PATH = '/v1/leader/transfer';

export class ClusterRoutes {
  constructor(
    private readonly backend: KvApiBackend,
    private readonly stats: HttpStats,
  ) {}

  /** GET /healthz. */
  serveHealth(res: ServerResponse): void {
    // Liveness only: a node without a leader (an election, a partition) is alive and must not
    // be restarted for it (tsraft start's watchdog polls this). Readiness is /readyz.
    const stopped = this.backend.isNodeStopped();
    sendJson(res, stopped ? 503 : 200, stopped ? { ok: false } : { ok: true });
  }

  /** GET /readyz: 200 when this node knows a leader (itself or another), else 503. */
  serveReady(res: ServerResponse): void {
    if (this.backend.isNodeStopped()) {
      sendError(res, 503, 'node-stopped', 'this node stopped on a fatal error and is exiting', {}, { 'Retry-After': '1' });
      return;
    }
    const { isLeader, leaderId } = this.knownLeader();
    if (!isLeader && leaderId === undefined) {
      sendError(res, 503, 'no-leader', 'this node knows of no leader: an election is under way, or it cannot reach a majority', {}, { 'Retry-After': '1' });
      return;
    }
    sendJson(res, 200, { ok: true, leaderId: leaderId ?? null, isLeader });
  }

  /** GET /v1/status. */
  serveStatus(res: ServerResponse): void {
    sendJson(res, 200, this.backend.status());
  }

  /** GET /metrics: the backend's page, then the HTTP server's own figures. */
  serveMetrics(res: ServerResponse): void {
    const body = this.backend.metricsText() + this.stats.render();
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  /**
   * POST /v1/leader/transfer[?to=<id>]. The target is checked first, against the voters this node
   * knows of, then a follower redirects like a write, before any body is read; the leader hands
   * over and answers once it hears of the new leader (or refuses a target that is no voter for it).
   */
  async serveTransfer(res: ServerResponse, rawPath: string, rawQuery: string): Promise<void> {
    if (this.backend.isNodeStopped()) {
      throw new HttpError(503, 'node-stopped', 'this node stopped on a fatal error and is exiting; ask another member', { 'Retry-After': '1' });
    }
    const params = parseQuery(rawQuery);
    for (const name of params.keys()) {
      if (name !== 'to') throw new HttpError(400, 'unknown-parameter', `unknown query parameter "${name}" for POST ${TRANSFER_PATH}; it takes ?to=<member id>`);
    }
    // The voters: a learner cannot lead, so the members a transfer may name are the voters.
    const members = this.backend.voterIds?.();
    const self = this.backend.nodeId;
    const others = members?.filter((id) => id !== self);
    const naming = members === undefined ? '' : ` (the members are ${members.join(', ')}${self === undefined ? '' : `; this is node ${self}`})`;
    const toText = textParam(params, 'to');
    let to: number | undefined;
    if (toText !== undefined) {
      to = /^\d{1,15}$/.test(toText) ? Number(toText) : NaN;
      if (!Number.isSafeInteger(to)) throw new HttpError(400, 'bad-parameter', `to must be a member id, got "${toText.slice(0, 40)}"${naming}`);
      if (members !== undefined && !members.includes(to)) throw new HttpError(400, 'bad-parameter', `node ${to} is not a member of this cluster${naming}`);
    }
    if (others !== undefined && others.length === 0) {
      throw new HttpError(409, 'no-transfer-target', `this cluster has a single member${naming}: there is no other member to hand leadership to`);
    }
    const transfer = this.backend.transferLeadership;
    if (transfer === undefined) throw new HttpError(501, 'not-supported', 'this server cannot transfer leadership');
    const request = { rawPath, rawQuery };
    if (answeredNotLeader(this.backend, res, request)) return;
    let moved: { leaderId: number; previousLeaderId: number; term: number };
    try {
      moved = await transfer.call(this.backend, to);
    } catch (error) {
      if (error instanceof ConfigError) throw new HttpError(400, 'bad-parameter', `${error.problems.join('; ')}${naming}`);
      if (error instanceof RaftError && error.code === 'TSRAFT_TRANSFER_TIMEOUT') {
        const now = this.knownLeader();
        const after = now.isLeader
          ? `the transfer was abandoned: node ${self ?? now.leaderId ?? '?'} still leads and takes writes again`
          : now.leaderId !== undefined
            ? `node ${now.leaderId} leads now`
            : 'this node no longer leads and no leader is known yet (an election is under way): check GET /v1/status on the members';
        sendError(res, 504, 'transfer-timeout', `${error.message}; ${after}`, { leaderId: now.isLeader ? (self ?? null) : (now.leaderId ?? null) });
        return;
      }
      if (error instanceof RaftError && error.code === 'TSRAFT_TRANSFER_REFUSED') {
        sendError(res, 409, 'transfer-target-unavailable', `${error.message}; it may be down, paused or cut off: check GET /v1/status`, {});
        return;
      }
      answerRaftError(this.backend, res, request, error);
      return;
    }
    const answer: LeaderTransferResult = {
      leaderId: moved.leaderId,
      leaderUrl: this.backend.leaderUrl(moved.leaderId) ?? null,
      previousLeaderId: moved.previousLeaderId,
      term: moved.term,
    };
    sendJson(res, 200, answer);
  }

  /** The leader this node knows of: itself, another member, or none. */
  private knownLeader(): { isLeader: boolean; leaderId: number | undefined } {
    const leadership = this.backend.leadership?.();
    if (leadership !== undefined) return leadership.isLeader ? { isLeader: true, leaderId: this.backend.nodeId } : leadership;
    const s = this.backend.status();
    return { isLeader: s.role === 'leader', leaderId: s.leaderId ?? undefined };
  }
}
