/**
 * The HTTP API's membership routes (see the API reference in http-api.ts, which routes to them):
 *
 *     GET    /v1/members                 the configuration in effect on this node (any node, its own view)
 *     POST   /v1/members                 add a member: {"id", "raft", "http", "role"?: "learner" | "voter"}
 *     POST   /v1/members/{id}/promote    make a learner a voter
 *     DELETE /v1/members/{id}            remove a member
 *
 * A change is one RaftNode.changeMembership step on the leader, answered once it is complete (a
 * change of voters passes through joint consensus, which the leader leaves by itself). A follower
 * redirects a change to the leader before reading its body, like a write. Everything the request
 * says is checked before anything is proposed: the id, the addresses (strictly, as the CLI's
 * --peers entries: member-address.ts; they travel in the log to every member), that no other
 * member has either address; the configuration itself (an id already a member, an unknown member,
 * no voters left) is checked by the leader's RaftNode, which proposes nothing it refuses.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MembershipStep } from '../core/membership.js';
import type { MembershipChangeResult, MembersView } from './api-types.js';
import type { KvApiBackend } from './http-api.js';
import { HttpError, type HttpStats, parseQuery, readBody, sendJson } from './http-io.js';
import { answeredNotLeader, answerMembershipError, type RequestTarget } from './http-raft-errors.js';
import { formatHostPort, formatMemberAddress, MemberAddressError, parseHostPort, parseHttpUrl } from './member-address.js';

export const MEMBERS_PATH = '/v1/members';

/** The fields of POST /v1/members' body. */
const NEW_MEMBER_FIELDS = new Set(['id', 'raft', 'http', 'role']);
const NEW_MEMBER_SYNTAX = '{"id": 3, "raft": "HOST:PORT", "http": "http://HOST:PORT", "role": "learner" | "voter"}';

function invalid(message: string): HttpError {
  return new HttpError(400, 'invalid-membership-change', message);
}

export class MemberRoutes {
  constructor(
    private readonly backend: KvApiBackend,
    private readonly stats: HttpStats,
  ) {}

  /** Serves a request to /v1/members or under /v1/members/. */
  async serve(req: IncomingMessage, res: ServerResponse, method: string, rawPath: string, rawQuery: string): Promise<void> {
    const rest = rawPath.slice(MEMBERS_PATH.length);
    const match = /^\/([^/]+)(\/promote)?$/.exec(rest);
    if (rest !== '' && match === null) throw new HttpError(404, 'no-route', `no such endpoint: ${rawPath} (see /v1/members, /v1/members/{id}, /v1/members/{id}/promote)`);
    const allowed = rest === '' ? 'GET, POST' : match![2] !== undefined ? 'POST' : 'DELETE';
    if (!allowed.split(', ').includes(method)) {
      throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${rest === '' ? MEMBERS_PATH : rawPath}; use ${allowed}`, { Allow: allowed });
    }
    const [param] = parseQuery(rawQuery).keys();
    if (param !== undefined) throw new HttpError(400, 'unknown-parameter', `unknown query parameter "${param}" for ${method} ${rawPath}; it takes none`);
    const members = this.backend.members;
    if (members === undefined) throw new HttpError(501, 'not-supported', 'this server has no membership API');
    if (method === 'GET') {
      sendJson(res, 200, members.call(this.backend));
      return;
    }
    const id = match === null ? undefined : memberId(match[1]!);
    if (this.backend.isNodeStopped()) {
      throw new HttpError(503, 'node-stopped', 'this node stopped on a fatal error and is exiting; ask another member', { 'Retry-After': '1' });
    }
    const request: RequestTarget = { rawPath, rawQuery };
    if (answeredNotLeader(this.backend, res, request)) return;
    let step: MembershipStep;
    if (id === undefined) {
      const body = await readBody(req, res, this.stats);
      if (body === null) return;
      step = newMemberStep(body, members.call(this.backend));
    } else {
      step = match![2] !== undefined ? { type: 'promote', id } : { type: 'remove', id };
    }
    await this.change(res, request, step);
  }

  /** Proposes the change on this leader; answers with the configuration once it is complete. */
  private async change(res: ServerResponse, request: RequestTarget, step: MembershipStep): Promise<void> {
    const change = this.backend.changeMembership;
    if (change === undefined) throw new HttpError(501, 'not-supported', 'this server cannot change its membership');
    let index: number;
    try {
      ({ index } = await change.call(this.backend, step));
    } catch (error) {
      answerMembershipError(this.backend, res, request, error);
      return;
    }
    const answer: MembershipChangeResult = { ...this.backend.members!(), index };
    sendJson(res, 200, answer);
  }
}

/** A member id from the path: a non-negative safe integer in decimal. */
function memberId(text: string): number {
  const id = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(id)) throw invalid(`a member id is a non-negative integer, got ${JSON.stringify(text.slice(0, 40))}`);
  return id;
}

/**
 * The step POST /v1/members asks for, from its JSON body, checked strictly: only the known fields,
 * an id, both addresses (neither another member's in `current`), a role.
 */
function newMemberStep(body: Uint8Array, current: MembersView): MembershipStep {
  if (body.length === 0) throw invalid(`the body is empty; expected ${NEW_MEMBER_SYNTAX}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch (error) {
    throw invalid(`the body is not UTF-8 JSON (${error instanceof Error ? error.message : String(error)}); expected ${NEW_MEMBER_SYNTAX}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid(`the body must be a JSON object ${NEW_MEMBER_SYNTAX}`);
  const fields = parsed as Record<string, unknown>;
  for (const name of Object.keys(fields)) {
    if (!NEW_MEMBER_FIELDS.has(name)) throw invalid(`unknown field ${JSON.stringify(name.slice(0, 40))}; expected ${NEW_MEMBER_SYNTAX}`);
  }
  const id = fields['id'];
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) throw invalid(`"id" must be a non-negative integer, got ${JSON.stringify(id)?.slice(0, 40) ?? 'nothing'}`);
  const role = fields['role'] ?? 'learner';
  if (role !== 'learner' && role !== 'voter') throw invalid(`"role" must be "learner" or "voter", got ${JSON.stringify(role).slice(0, 40)}`);
  const raftText = fields['raft'];
  const httpText = fields['http'];
  if (typeof raftText !== 'string') throw invalid(`"raft" must be the member's raft address HOST:PORT, got ${JSON.stringify(raftText)?.slice(0, 40) ?? 'nothing'}`);
  if (typeof httpText !== 'string') throw invalid(`"http" must be the member's HTTP base URL http://HOST:PORT, got ${JSON.stringify(httpText)?.slice(0, 40) ?? 'nothing'}`);
  let raft: { host: string; port: number };
  let httpUrl: string;
  try {
    raft = parseHostPort(raftText, '"raft"');
    httpUrl = parseHttpUrl(httpText, '"http"');
  } catch (error) {
    if (error instanceof MemberAddressError) throw invalid(error.message);
    throw error;
  }
  // Two members at one address would each take the other's messages (or redirects).
  const raftAddress = formatHostPort(raft.host, raft.port);
  for (const m of [...current.voters, ...current.outgoing, ...current.learners]) {
    if (m.id === id) continue; // already a member: the RaftNode says so
    if (m.raft !== null && m.raft.toLowerCase() === raftAddress.toLowerCase()) throw invalid(`the raft address ${raftAddress} is member ${m.id}'s`);
    if (m.http !== null && m.http.toLowerCase() === httpUrl.toLowerCase()) throw invalid(`the HTTP URL ${httpUrl} is member ${m.id}'s`);
  }
  const address = formatMemberAddress({ raftHost: raft.host, raftPort: raft.port, httpUrl });
  return role === 'voter' ? { type: 'add-voter', id, address } : { type: 'add-learner', id, address };
}
