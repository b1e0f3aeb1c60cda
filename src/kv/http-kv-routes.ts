/**
 * The HTTP API's /v1/kv/{key} routes (see the API reference in http-api.ts, which routes to them):
 * decoding and checking the key, the query and the session headers, then a read, a write or a cas
 * through the KvApiBackend, and its outcome as a response.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CLIENT_ID_BYTES_MAX, encodeKvCommand, KEY_BYTES_MAX, VALUE_BYTES_MAX, type KvCommand, type KvResult } from './commands.js';
import type { Principal } from '../security/auth-file.js';
import type { KvApiBackend } from './http-api.js';
import { HttpError, type HttpStats, jsonValue, parseQuery, percentDecode, readBody, sendError, sendJson, textParam } from './http-io.js';
import { answeredNotLeader, answerRaftError } from './http-raft-errors.js';

/** The largest X-Request-Seq. */
export const REQUEST_SEQ_MAX = Number.MAX_SAFE_INTEGER;

export const KV_PREFIX = '/v1/kv/';

/** The query parameters each method accepts on /v1/kv/{key}; a method missing here is 405. */
const ALLOWED_PARAMS: Record<string, ReadonlySet<string>> = {
  GET: new Set(['stale', 'encoding']),
  PUT: new Set(['encoding']),
  POST: new Set(['op', 'cas', 'cas-absent', 'encoding']),
  DELETE: new Set(['encoding']),
};

/** A /v1/kv/{key} request once its key, query and session headers are decoded and checked. */
interface KvRequest {
  readonly method: string;
  readonly rawPath: string;
  readonly rawQuery: string;
  readonly key: Uint8Array;
  readonly params: Map<string, Uint8Array>;
  readonly session: { clientId: string; seq: number } | null;
  readonly base64: boolean;
}

export class KvRoutes {
  constructor(
    private readonly backend: KvApiBackend,
    private readonly stats: HttpStats,
  ) {}

  /**
   * Serves a request to /v1/kv or under /v1/kv/. `principal`: who sends it when authorization is
   * on (its sessions are bound to it), else null.
   */
  async serve(req: IncomingMessage, res: ServerResponse, method: string, rawPath: string, rawQuery: string, principal: Principal | null = null): Promise<void> {
    const allowed = ALLOWED_PARAMS[method];
    if (allowed === undefined) {
      throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on /v1/kv/{key}; use GET, PUT, POST or DELETE`, {
        Allow: 'GET, PUT, POST, DELETE',
      });
    }
    const key = percentDecode(rawPath.slice(KV_PREFIX.length), 'key', false);
    if (key.length === 0) throw new HttpError(400, 'invalid-key', 'the key is empty: use /v1/kv/{key}');
    if (key.length > KEY_BYTES_MAX) throw new HttpError(400, 'invalid-key', `the key is ${key.length} bytes; keys are 1..${KEY_BYTES_MAX} bytes`);
    const params = parseQuery(rawQuery);
    for (const name of params.keys()) {
      if (!allowed.has(name)) throw new HttpError(400, 'unknown-parameter', `unknown query parameter "${name}" for ${method}`);
    }
    const encoding = textParam(params, 'encoding');
    if (encoding !== undefined && encoding !== 'base64' && encoding !== 'utf8' && encoding !== 'auto') {
      throw new HttpError(400, 'bad-parameter', `encoding must be base64, utf8 or auto, got "${encoding}"`);
    }
    const request: KvRequest = { method, rawPath, rawQuery, key, params, session: this.session(req, principal), base64: encoding === 'base64' };

    switch (method) {
      case 'GET':
        await this.serveGet(res, request);
        return;
      case 'DELETE':
        await this.write(res, request, { op: 'delete', key });
        return;
      case 'PUT': {
        if (answeredNotLeader(this.backend, res, request)) return;
        const value = await readBody(req, res, this.stats);
        if (value !== null) await this.write(res, request, { op: 'put', key, value });
        return;
      }
      default: {
        // POST
        const op = textParam(params, 'op');
        const cas = params.get('cas');
        const casAbsent = textParam(params, 'cas-absent');
        if (casAbsent !== undefined && casAbsent !== 'true') throw new HttpError(400, 'bad-parameter', `cas-absent must be "true", got "${casAbsent}"`);
        if (cas !== undefined && casAbsent !== undefined) throw new HttpError(400, 'bad-parameter', 'give either cas or cas-absent, not both');
        let expected: Uint8Array | null | undefined;
        if (cas !== undefined || casAbsent !== undefined) {
          if (op !== undefined && op !== 'cas') throw new HttpError(400, 'unknown-op', `op "${op}" cannot be combined with cas`);
          if (cas !== undefined && cas.length > VALUE_BYTES_MAX) {
            throw new HttpError(413, 'value-too-large', `the expected value is ${cas.length} bytes; values are 0..${VALUE_BYTES_MAX} bytes`);
          }
          expected = cas ?? null;
        } else if (op === undefined) {
          throw new HttpError(400, 'unknown-op', 'POST needs ?op=append, ?op=put, ?cas=<expected> or ?cas-absent=true');
        } else if (op === 'cas') {
          throw new HttpError(400, 'bad-parameter', 'op=cas needs ?cas=<expected> or ?cas-absent=true');
        } else if (op !== 'append' && op !== 'put') {
          throw new HttpError(400, 'unknown-op', `unknown op "${op}": POST supports op=append, op=put and cas`);
        }
        if (answeredNotLeader(this.backend, res, request)) return;
        const value = await readBody(req, res, this.stats);
        if (value === null) return;
        if (expected !== undefined) await this.write(res, request, { op: 'cas', key, value, expected });
        else await this.write(res, request, { op: op === 'put' ? 'put' : 'append', key, value });
        return;
      }
    }
  }

  /**
   * The X-Client-Id / X-Request-Seq session, or null for a session-less request. With a principal
   * the session is `<name>/<X-Client-Id>` (names never hold a "/"), so that nobody can act in, or
   * be answered from, another principal's sessions by sending its client id.
   */
  private session(req: IncomingMessage, principal: Principal | null): { clientId: string; seq: number } | null {
    const rawId = req.headers['x-client-id'];
    const rawSeq = req.headers['x-request-seq'];
    if (rawId === undefined && rawSeq === undefined) return null;
    if (typeof rawId !== 'string' || typeof rawSeq !== 'string') {
      throw new HttpError(400, 'bad-header', 'X-Client-Id and X-Request-Seq must be sent together, once each');
    }
    const prefix = principal === null ? '' : `${principal.name}/`;
    const idMax = CLIENT_ID_BYTES_MAX - prefix.length;
    if (rawId.length === 0 || rawId.length > idMax || !/^[\x21-\x7e]+$/.test(rawId)) {
      const why = principal === null ? '' : ` (${CLIENT_ID_BYTES_MAX} less the ${prefix.length} bytes of "${prefix}" that bind the session to principal "${principal.name}")`;
      throw new HttpError(400, 'bad-header', `X-Client-Id must be 1..${idMax} printable ASCII characters${why}`);
    }
    const seq = /^[1-9][0-9]{0,15}$/.test(rawSeq) ? Number(rawSeq) : NaN;
    if (!Number.isSafeInteger(seq) || seq > REQUEST_SEQ_MAX) {
      throw new HttpError(400, 'bad-header', `X-Request-Seq must be a positive integer up to ${REQUEST_SEQ_MAX}, got "${rawSeq.slice(0, 40)}"`);
    }
    return { clientId: prefix + rawId, seq };
  }

  private async serveGet(res: ServerResponse, request: KvRequest): Promise<void> {
    const stale = textParam(request.params, 'stale');
    if (stale !== undefined && stale !== 'true' && stale !== 'false') throw new HttpError(400, 'bad-parameter', `stale must be true or false, got "${stale}"`);
    let value: Uint8Array | null;
    let index: number;
    if (stale === 'true') {
      ({ value, index } = this.backend.readLocal(request.key));
    } else if (this.backend.readMode === 'read-index') {
      try {
        await this.backend.confirmRead();
      } catch (error) {
        answerRaftError(this.backend, res, request, error);
        return;
      }
      ({ value, index } = this.backend.readLocal(request.key));
    } else {
      const outcome = await this.propose(res, request, { op: 'get', clientId: '', seq: 0, key: request.key });
      if (outcome === null) return;
      if (!outcome.result.ok) {
        this.resultError(res, outcome.result);
        return;
      }
      value = outcome.result.value ?? null;
      index = outcome.index;
    }
    if (value === null) {
      sendError(res, 404, 'not-found', `key ${JSON.stringify(keyText(request.key))} does not exist`, { index });
      return;
    }
    const v = jsonValue(value, request.base64);
    const key = jsonValue(request.key, false);
    sendJson(res, 200, { key: key.value, ...(key.encoding === 'base64' ? { keyEncoding: 'base64' } : {}), value: v.value, encoding: v.encoding, index });
  }

  private async write(
    res: ServerResponse,
    request: KvRequest,
    command: { op: 'put' | 'append' | 'cas' | 'delete'; key: Uint8Array; value?: Uint8Array; expected?: Uint8Array | null },
  ): Promise<void> {
    const session = request.session ?? { clientId: '', seq: 0 };
    const cmd: KvCommand = { ...command, clientId: session.clientId, seq: session.seq };
    const outcome = await this.propose(res, request, cmd);
    if (outcome === null) return;
    const result = outcome.result;
    if (!result.ok) {
      this.resultError(res, result);
      return;
    }
    const previous = jsonValue(result.value ?? null, request.base64);
    if (command.op === 'cas') {
      if (result.swapped === true) {
        sendJson(res, 200, { swapped: true, index: outcome.index, previous: previous.value, encoding: previous.encoding });
      } else {
        sendJson(res, 409, { swapped: false, index: outcome.index, value: previous.value, encoding: previous.encoding });
      }
      return;
    }
    sendJson(res, 200, { index: outcome.index, previous: previous.value, encoding: previous.encoding });
  }

  /** Proposes a command and returns its result; answers the error itself and returns null on failure. */
  private async propose(res: ServerResponse, request: KvRequest, cmd: KvCommand): Promise<{ index: number; result: KvResult } | null> {
    let bytes: Uint8Array;
    try {
      bytes = encodeKvCommand(cmd);
    } catch (error) {
      throw new HttpError(400, 'invalid-command', error instanceof Error ? error.message : String(error));
    }
    try {
      return await this.backend.commit(bytes);
    } catch (error) {
      answerRaftError(this.backend, res, request, error);
      return null;
    }
  }

  private resultError(res: ServerResponse, result: KvResult & { ok: false }): void {
    if (result.error === 'stale-request') sendError(res, 409, 'stale-request', result.message);
    else sendError(res, 400, 'invalid-command', result.message);
  }
}

/** A key for an error message: its text when it is UTF-8, else `base64:...`. */
function keyText(key: Uint8Array): string {
  const k = jsonValue(key, false);
  return k.encoding === 'utf8' ? k.value! : `base64:${k.value!}`;
}
