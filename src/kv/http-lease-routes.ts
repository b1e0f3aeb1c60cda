/**
 * The HTTP API's lease routes (see the API reference in http-api.ts, which routes to them):
 *
 *     POST   /v1/leases                  grant: body {"ttl": seconds}
 *     GET    /v1/leases                  every lease the store holds
 *     GET    /v1/leases/{id}             one lease with its time left (?keys=true: its keys)
 *     DELETE /v1/leases/{id}             revoke: delete its keys, at one revision
 *     POST   /v1/leases/{id}/keepalive   restart its clock at its full TTL
 *
 * Every one of them is the leader's. A grant and a revoke are commands through the log, writes
 * like any other: a follower redirects them before reading a body, and the session headers make
 * them exactly-once (a retried grant answers the id it granted the first time). The others answer
 * from the leader's lease clocks (lease-keeper.ts), once it confirmed its leadership (ReadIndex):
 * only the leader's clock counts, so a follower's view of the time left would be a guess.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '../security/auth-file.js';
import type { KvResult } from './commands.js';
import type { KvApiBackend } from './http-api.js';
import { HttpError, type HttpStats, jsonValue, parseQuery, readBody, sendError, sendJson, textParam } from './http-io.js';
import { answerResultError, proposeCommand, REVISION_HEADER, requestSession } from './http-kv-routes.js';
import { answeredNotLeader, answerRaftError, type RequestTarget } from './http-raft-errors.js';
import type { LeaseInfo } from './lease-table.js';
import type { KvLeaseView } from './replica.js';
import { LEASE_TTL_SECONDS_MAX, LEASE_TTL_SECONDS_MIN, leaseTtlProblem, type KvLeaseOutcome } from './lease-commands.js';

export const LEASES_PATH = '/v1/leases';

const GRANT_SYNTAX = `{"ttl": <seconds, ${LEASE_TTL_SECONDS_MIN}..${LEASE_TTL_SECONDS_MAX}>}`;

/** The query parameters of GET /v1/leases/{id}; no other lease route takes any. */
const INFO_PARAMS: ReadonlySet<string> = new Set(['keys', 'encoding']);

export class LeaseRoutes {
  constructor(
    private readonly backend: KvApiBackend,
    private readonly stats: HttpStats,
  ) {}

  /**
   * Serves a request to /v1/leases or under /v1/leases/. `principal`: who sends it when
   * authorization is on (grant and revoke sessions are bound to it), else null.
   */
  async serve(req: IncomingMessage, res: ServerResponse, method: string, rawPath: string, rawQuery: string, principal: Principal | null = null): Promise<void> {
    const rest = rawPath.slice(LEASES_PATH.length);
    const match = /^\/([^/]+)(\/keepalive)?$/.exec(rest);
    if (rest !== '' && match === null) {
      throw new HttpError(404, 'no-route', `no such endpoint: ${rawPath} (see /v1/leases, /v1/leases/{id}, /v1/leases/{id}/keepalive)`);
    }
    const keepAlive = match?.[2] !== undefined;
    const allowed = rest === '' ? 'GET, POST' : keepAlive ? 'POST' : 'GET, DELETE';
    if (!allowed.split(', ').includes(method)) {
      throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${rest === '' ? LEASES_PATH : rawPath}; use ${allowed}`, { Allow: allowed });
    }
    const params = parseQuery(rawQuery);
    for (const name of params.keys()) {
      if (!(method === 'GET' && match !== null && INFO_PARAMS.has(name))) {
        throw new HttpError(400, 'unknown-parameter', `unknown query parameter "${name.slice(0, 40)}" for ${method} ${rawPath}`);
      }
    }
    const id = match === null ? undefined : leaseIdOf(match[1]!);
    const target: RequestTarget = { rawPath, rawQuery };
    if (method === 'GET') {
      if (id === undefined) await this.list(res, target);
      else await this.info(res, target, id, params);
      return;
    }
    // A session is checked before the redirect, like on the KV writes: a bad header is the client's
    // error wherever it is sent.
    const session = requestSession(req, principal) ?? { clientId: '', seq: 0 };
    if (answeredNotLeader(this.backend, res, target)) return;
    if (id === undefined) {
      const body = await readBody(req, res, this.stats);
      if (body === null) return;
      await this.grant(res, target, { op: 'lease-grant', ...session, ttlSeconds: grantTtl(body) });
    } else if (keepAlive) {
      await this.keepAlive(res, target, id);
    } else {
      await this.revoke(res, target, id, session);
    }
  }

  private async grant(res: ServerResponse, target: RequestTarget, cmd: { op: 'lease-grant'; clientId: string; seq: number; ttlSeconds: number }): Promise<void> {
    const outcome = await proposeCommand(this.backend, res, target, cmd);
    if (outcome === null) return;
    const applied = leaseApplied(res, outcome.result);
    if (applied === null) return;
    const { lease, revision } = applied;
    sendJson(res, 200, { id: lease.id, ttl: lease.ttlSeconds, revision, index: outcome.index }, { [REVISION_HEADER]: String(revision) });
  }

  private async revoke(res: ServerResponse, target: RequestTarget, id: number, session: { clientId: string; seq: number }): Promise<void> {
    const outcome = await proposeCommand(this.backend, res, target, { op: 'lease-revoke', ...session, id });
    if (outcome === null) return;
    const applied = leaseApplied(res, outcome.result);
    if (applied === null) return;
    const { lease, revision } = applied;
    sendJson(res, 200, { id: lease.id, ttl: lease.ttlSeconds, deleted: lease.deletedKeys, revision, index: outcome.index }, { [REVISION_HEADER]: String(revision) });
  }

  private async keepAlive(res: ServerResponse, target: RequestTarget, id: number): Promise<void> {
    const keepAlive = this.backend.leaseKeepAlive;
    if (keepAlive === undefined) throw new HttpError(501, 'not-supported', 'this server keeps no lease clocks');
    let renewed: { ttlSeconds: number; revision: number } | null;
    try {
      renewed = await keepAlive.call(this.backend, id);
    } catch (error) {
      answerRaftError(this.backend, res, target, error);
      return;
    }
    if (renewed === null) {
      notFound(res, id);
      return;
    }
    sendJson(res, 200, { id, ttl: renewed.ttlSeconds, revision: renewed.revision }, { [REVISION_HEADER]: String(renewed.revision) });
  }

  private async info(res: ServerResponse, target: RequestTarget, id: number, params: Map<string, Uint8Array>): Promise<void> {
    const keysText = textParam(params, 'keys');
    if (keysText !== undefined && keysText !== 'true' && keysText !== 'false') throw new HttpError(400, 'bad-parameter', `keys must be true or false, got "${keysText.slice(0, 40)}"`);
    const encoding = textParam(params, 'encoding');
    if (encoding !== undefined && encoding !== 'base64' && encoding !== 'utf8' && encoding !== 'auto') {
      throw new HttpError(400, 'bad-parameter', `encoding must be base64, utf8 or auto, got "${encoding.slice(0, 40)}"`);
    }
    const withKeys = keysText === 'true';
    const leaseInfo = this.backend.leaseInfo;
    if (leaseInfo === undefined) throw new HttpError(501, 'not-supported', 'this server keeps no lease clocks');
    let view: KvLeaseView | null;
    try {
      view = await leaseInfo.call(this.backend, id, withKeys);
    } catch (error) {
      answerRaftError(this.backend, res, target, error);
      return;
    }
    if (view === null) {
      notFound(res, id);
      return;
    }
    const answer: Record<string, unknown> = { id, ttl: view.ttlSeconds, remaining: Math.round(view.remainingMs) / 1000, keyCount: view.keyCount };
    if (withKeys) Object.assign(answer, keyList(view.keys ?? [], encoding === 'base64'));
    sendJson(res, 200, { ...answer, revision: view.revision, index: view.index }, { [REVISION_HEADER]: String(view.revision) });
  }

  private async list(res: ServerResponse, target: RequestTarget): Promise<void> {
    const leaseList = this.backend.leaseList;
    if (leaseList === undefined) throw new HttpError(501, 'not-supported', 'this server keeps no leases');
    let listed: { leases: LeaseInfo[]; revision: number; index: number };
    try {
      listed = await leaseList.call(this.backend);
    } catch (error) {
      answerRaftError(this.backend, res, target, error);
      return;
    }
    const leases = listed.leases.map((l) => ({ id: l.id, ttl: l.ttlSeconds, keyCount: l.keyCount }));
    sendJson(res, 200, { leases, revision: listed.revision, index: listed.index }, { [REVISION_HEADER]: String(listed.revision) });
  }
}

/** A lease id from the path: a positive safe integer in decimal. */
function leaseIdOf(text: string): number {
  const id = /^[1-9][0-9]{0,15}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(id)) throw new HttpError(400, 'bad-lease-id', `a lease id is a positive integer, got ${JSON.stringify(text.slice(0, 40))}`);
  return id;
}

/** The TTL a grant's body asks for, checked strictly: a JSON object with `ttl` alone. */
function grantTtl(body: Uint8Array): number {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch (error) {
    throw new HttpError(400, 'bad-json', `the body is not UTF-8 JSON (${error instanceof Error ? error.message.slice(0, 200) : String(error)}); expected ${GRANT_SYNTAX}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new HttpError(400, 'bad-json', `the body must be a JSON object ${GRANT_SYNTAX}`);
  for (const name of Object.keys(parsed)) {
    if (name !== 'ttl') throw new HttpError(400, 'bad-json', `unknown field ${JSON.stringify(name.slice(0, 40))}; expected ${GRANT_SYNTAX}`);
  }
  const ttl = (parsed as Record<string, unknown>)['ttl'];
  const problem = leaseTtlProblem(ttl);
  if (problem !== null) throw new HttpError(400, 'bad-ttl', ttl === undefined ? `the body has no "ttl"; expected ${GRANT_SYNTAX}` : problem);
  return ttl as number;
}

/**
 * The lease a grant or revoke acted on, and the revision after it; null when the state machine
 * refused it (404 lease-not-found, 400 invalid-command for too many leases, 409 stale-request),
 * which is answered here.
 */
function leaseApplied(res: ServerResponse, result: KvResult): { lease: KvLeaseOutcome; revision: number } | null {
  if (!result.ok) {
    answerResultError(res, result);
    return null;
  }
  if (result.lease === undefined || result.revision === undefined) throw new Error('a lease command applied without a lease result');
  return { lease: result.lease, revision: result.revision };
}

function notFound(res: ServerResponse, id: number): void {
  sendError(res, 404, 'lease-not-found', `lease ${id} does not exist (never granted, revoked or expired, or expiring now)`);
}

/**
 * A lease's keys as JSON: UTF-8 text when every key is, else (or with encoding=base64) base64,
 * said once by `encoding` for the whole list, so that a client decodes every key alike.
 */
function keyList(keys: readonly Uint8Array[], forceBase64: boolean): { keys: string[]; encoding: 'utf8' | 'base64' } {
  const texts = keys.map((key) => jsonValue(key, forceBase64));
  const base64 = forceBase64 || texts.some((t) => t.encoding === 'base64');
  return base64 ? { keys: keys.map((key) => jsonValue(key, true).value!), encoding: 'base64' } : { keys: texts.map((t) => t.value!), encoding: 'utf8' };
}
