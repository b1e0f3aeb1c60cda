/**
 * The HTTP API's /v1/kv/{key} routes, the range route GET /v1/kv and transactions, POST /v1/txn
 * (see the API reference in http-api.ts, which routes to them; a transaction's JSON is in
 * http-txn.ts): decoding and checking the key, the query and the session headers, then a read, a
 * write, a cas, a range or a transaction through the KvApiBackend, and its outcome as a
 * response. Every answer that read or wrote the store carries the store revision it reflects, in
 * the `X-Tsraft-Revision` header and as `revision` in its JSON.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CLIENT_ID_BYTES_MAX, encodeKvCommand, KEY_BYTES_MAX, txnProblem, VALUE_BYTES_MAX, type KvAnyCommand, type KvCommand, type KvKeyMeta, type KvResult, type KvTxnCommand } from './commands.js';
import { parseTxnBody, txnAnswer, txnError, TXN_PATH } from './http-txn.js';
import { prefixEnd, RANGE_BYTES_DEFAULT, RANGE_LIMIT_DEFAULT, RANGE_LIMIT_MAX, type KvRangeBounds } from './state-machine.js';
import type { Principal } from '../security/auth-file.js';
import type { KvApiBackend } from './http-api.js';
import { HttpError, type HttpStats, jsonValue, parseQuery, percentDecode, readBody, sendError, sendJson, textParam } from './http-io.js';
import { answeredNotLeader, answerRaftError, type RequestTarget } from './http-raft-errors.js';

/** The largest X-Request-Seq. */
export const REQUEST_SEQ_MAX = Number.MAX_SAFE_INTEGER;

export const KV_PREFIX = '/v1/kv/';
/** The range endpoint: GET /v1/kv?prefix=... or ?start=...&end=... */
export const KV_RANGE_PATH = '/v1/kv';
/** The header that carries the store revision an answer reflects. */
export const REVISION_HEADER = 'X-Tsraft-Revision';

/** The query parameters each method accepts on /v1/kv/{key}; a method missing here is 405. */
const ALLOWED_PARAMS: Record<string, ReadonlySet<string>> = {
  GET: new Set(['stale', 'encoding']),
  PUT: new Set(['encoding', 'if-mod-revision', 'lease']),
  POST: new Set(['op', 'cas', 'cas-absent', 'encoding', 'if-mod-revision', 'lease']),
  DELETE: new Set(['encoding']),
};

/** The query parameters of GET /v1/kv. */
const RANGE_PARAMS: ReadonlySet<string> = new Set(['prefix', 'start', 'end', 'limit', 'next', 'keys-only', 'count-only', 'encoding', 'stale']);

/** `{"revision"}` and the header, for an answer that reflects store revision `revision` (nothing when unknown). */
function revisionOf(revision: number | undefined): { body: { revision?: number }; headers: Record<string, string> } {
  return revision === undefined ? { body: {}, headers: {} } : { body: { revision }, headers: { [REVISION_HEADER]: String(revision) } };
}

/** A key's revisions as JSON fields (none when absent), and its lease when it has one. */
function metaFields(key: (KvKeyMeta & { lease?: number }) | undefined): Partial<KvKeyMeta> & { lease?: number } {
  if (key === undefined) return {};
  const fields = { createRevision: key.createRevision, modRevision: key.modRevision, version: key.version };
  return key.lease === undefined ? fields : { ...fields, lease: key.lease };
}

/** A boolean query parameter: true, false or absent (false). */
function booleanParam(params: Map<string, Uint8Array>, name: string): boolean {
  const v = textParam(params, name);
  if (v !== undefined && v !== 'true' && v !== 'false') throw new HttpError(400, 'bad-parameter', `${name} must be true or false, got "${v.slice(0, 40)}"`);
  return v === 'true';
}

/**
 * Strict base64 (standard or URL-safe alphabet, padding optional): bytes, or null when `text` is
 * not base64 or not canonical (stray bits in the last character).
 */
export function decodeBase64Strict(text: string): Uint8Array | null {
  const normal = text.replace(/-/g, '+').replace(/_/g, '/').replace(/={1,2}$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(normal) || normal.length % 4 === 1) return null;
  const bytes = Buffer.from(normal, 'base64');
  if (bytes.toString('base64').replace(/=+$/, '') !== normal) return null;
  return new Uint8Array(bytes);
}

/**
 * A range page's JSON items stop before passing this many bytes (a page always holds at least one
 * key, whose item is at most about 6 MiB: a 1 MiB value of control characters, each escaped as
 * \u00XX). With the 4 MiB bound on the keys and values themselves, a page's body stays bounded
 * (under 14 MiB) whatever the values hold.
 */
export const RANGE_JSON_BYTES_MAX = 8 * 1024 * 1024;

/** Answers with a JSON text already encoded (like sendJson, which encodes an object). */
function sendJsonText(res: ServerResponse, status: number, text: string, headers: Record<string, string>): void {
  if (res.headersSent || res.destroyed || res.writableEnded) return;
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** The continuation token of a page that ended at `key`: its base64url. */
export function rangeToken(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64url');
}

/**
 * A write's X-Client-Id / X-Request-Seq session, or null for a session-less request (the lease
 * routes' grants and revokes take them too). With a principal
 * the session is `<name>/<X-Client-Id>` (names never hold a "/"), so that nobody can act in, or
 * be answered from, another principal's sessions by sending its client id.
 */
export function requestSession(req: IncomingMessage, principal: Principal | null): { clientId: string; seq: number } | null {
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
    if (rawPath === KV_RANGE_PATH) {
      if (method !== 'GET') throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${KV_RANGE_PATH}; use GET (ranges), or /v1/kv/{key}`, { Allow: 'GET' });
      await this.serveRange(res, rawPath, rawQuery);
      return;
    }
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
    const request: KvRequest = { method, rawPath, rawQuery, key, params, session: requestSession(req, principal), base64: encoding === 'base64' };

    switch (method) {
      case 'GET':
        await this.serveGet(res, request);
        return;
      case 'DELETE':
        await this.write(res, request, { op: 'delete', key });
        return;
      case 'PUT': {
        const ifModRevision = modRevisionParam(params);
        const lease = leaseParam(params);
        if (answeredNotLeader(this.backend, res, request)) return;
        const value = await readBody(req, res, this.stats);
        if (value !== null) await this.write(res, request, { op: 'put', key, value, ...(ifModRevision === undefined ? {} : { ifModRevision }), ...(lease === undefined ? {} : { lease }) });
        return;
      }
      default: {
        // POST
        const op = textParam(params, 'op');
        const ifModRevision = modRevisionParam(params);
        if (ifModRevision !== undefined && op !== 'put') throw new HttpError(400, 'bad-parameter', 'if-mod-revision goes with PUT or POST ?op=put only');
        const lease = leaseParam(params);
        // An append or a cas keeps the key's lease (commands.ts): attaching one is a put's alone.
        if (lease !== undefined && op !== 'put') throw new HttpError(400, 'bad-parameter', 'lease goes with PUT or POST ?op=put only');
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
        else if (op === 'put') await this.write(res, request, { op: 'put', key, value, ...(ifModRevision === undefined ? {} : { ifModRevision }), ...(lease === undefined ? {} : { lease }) });
        else await this.write(res, request, { op: 'append', key, value });
        return;
      }
    }
  }

  /**
   * POST /v1/txn (http-txn.ts): a transaction through the log, a write like any other (a follower
   * redirects before reading the body; sessions make it exactly-once), read-only ones included.
   */
  async serveTxn(req: IncomingMessage, res: ServerResponse, method: string, rawPath: string, rawQuery: string, principal: Principal | null = null): Promise<void> {
    if (method !== 'POST') throw new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${TXN_PATH}; use POST`, { Allow: 'POST' });
    for (const name of parseQuery(rawQuery).keys()) {
      throw new HttpError(400, 'unknown-parameter', `unknown query parameter "${name}" for POST ${TXN_PATH} (the body says everything)`);
    }
    const session = requestSession(req, principal) ?? { clientId: '', seq: 0 };
    const target: RequestTarget = { rawPath, rawQuery };
    if (answeredNotLeader(this.backend, res, target)) return;
    const body = await readBody(req, res, this.stats);
    if (body === null) return;
    const txn = parseTxnBody(body);
    const cmd: KvTxnCommand = { op: 'txn', clientId: session.clientId, seq: session.seq, compare: txn.compare, then: txn.then, else: txn.else };
    const problem = txnProblem(cmd);
    if (problem !== null) {
      const status = problem.code === 'value-too-large' || problem.code === 'txn-too-large' ? 413 : 400;
      throw txnError(status, problem.code, problem.field, problem.message);
    }
    const outcome = await this.propose(res, target, cmd);
    if (outcome === null) return;
    const result = outcome.result;
    if (!result.ok) {
      answerResultError(res, result);
      return;
    }
    if (result.txn === undefined || result.revision === undefined) throw new Error('a transaction applied without a transaction result');
    sendJson(res, 200, txnAnswer(result.txn, result.revision, outcome.index, txn.base64), revisionOf(result.revision).headers);
  }

  private async serveGet(res: ServerResponse, request: KvRequest): Promise<void> {
    const stale = textParam(request.params, 'stale');
    if (stale !== undefined && stale !== 'true' && stale !== 'false') throw new HttpError(400, 'bad-parameter', `stale must be true or false, got "${stale}"`);
    let read: { value: Uint8Array | null; index: number; revision?: number; key?: KvKeyMeta & { lease?: number } };
    if (stale === 'true') {
      read = this.backend.readLocal(request.key);
    } else if (this.backend.readMode === 'read-index') {
      try {
        await this.backend.confirmRead();
      } catch (error) {
        answerRaftError(this.backend, res, request, error);
        return;
      }
      read = this.backend.readLocal(request.key);
    } else {
      const outcome = await this.propose(res, request, { op: 'get', clientId: '', seq: 0, key: request.key });
      if (outcome === null) return;
      const result = outcome.result;
      if (!result.ok) {
        answerResultError(res, result);
        return;
      }
      read = { value: result.value ?? null, index: outcome.index, ...(result.revision === undefined ? {} : { revision: result.revision }), ...(result.key === undefined ? {} : { key: result.key }) };
    }
    const { value, index } = read;
    const revision = revisionOf(read.revision);
    if (value === null) {
      sendError(res, 404, 'not-found', `key ${JSON.stringify(keyText(request.key))} does not exist`, { index, ...revision.body }, revision.headers);
      return;
    }
    const v = jsonValue(value, request.base64);
    const key = jsonValue(request.key, false);
    sendJson(
      res,
      200,
      { key: key.value, ...(key.encoding === 'base64' ? { keyEncoding: 'base64' } : {}), value: v.value, encoding: v.encoding, index, ...revision.body, ...metaFields(read.key) },
      revision.headers,
    );
  }

  /** GET /v1/kv: one page of a range (or its count), linearizable unless stale=true. */
  private async serveRange(res: ServerResponse, rawPath: string, rawQuery: string): Promise<void> {
    const params = parseQuery(rawQuery);
    for (const name of params.keys()) {
      if (!RANGE_PARAMS.has(name)) throw new HttpError(400, 'unknown-parameter', `unknown query parameter "${name}" for GET ${KV_RANGE_PATH}`);
    }
    const encoding = textParam(params, 'encoding');
    if (encoding !== undefined && encoding !== 'base64' && encoding !== 'utf8' && encoding !== 'auto') {
      throw new HttpError(400, 'bad-parameter', `encoding must be base64, utf8 or auto, got "${encoding.slice(0, 40)}"`);
    }
    const base64 = encoding === 'base64';
    /** A key-like parameter: percent-decoded bytes, or base64 with encoding=base64; at most KEY_BYTES_MAX bytes. */
    const keyParam = (name: string): Uint8Array | undefined => {
      const raw = params.get(name);
      if (raw === undefined) return undefined;
      let bytes: Uint8Array | null = raw;
      if (base64) {
        const text = textParam(params, name)!;
        bytes = decodeBase64Strict(text);
        if (bytes === null) throw new HttpError(400, 'bad-parameter', `${name} is not base64 (encoding=base64 takes keys in base64)`);
      }
      if (bytes.length > KEY_BYTES_MAX) throw new HttpError(400, 'invalid-key', `${name} is ${bytes.length} bytes; keys are 1..${KEY_BYTES_MAX} bytes`);
      return bytes;
    };
    const prefix = keyParam('prefix');
    const start = keyParam('start');
    const end = keyParam('end');
    if (prefix !== undefined && (start !== undefined || end !== undefined)) throw new HttpError(400, 'bad-range', 'give either prefix, or start (and end), not both');
    if (prefix === undefined && start === undefined) {
      throw new HttpError(400, 'bad-range', `a range needs ?prefix=P or ?start=A (end=B optional, exclusive); an empty prefix means every key`);
    }
    if (end !== undefined && end.length === 0) throw new HttpError(400, 'bad-range', 'end is empty: leave it out to read to the end of the keyspace');
    let bounds: KvRangeBounds = prefix !== undefined ? { start: prefix, end: prefixEnd(prefix) } : { start: start!, end: end ?? null };
    if (bounds.end !== null && Buffer.compare(bounds.end, bounds.start) <= 0) throw new HttpError(400, 'bad-range', 'end must be after start');
    const token = textParam(params, 'next');
    if (token !== undefined) {
      const after = decodeBase64Strict(token);
      if (after === null || after.length === 0 || after.length > KEY_BYTES_MAX || /[+/=]/.test(token)) {
        throw new HttpError(400, 'bad-token', 'next is not a continuation token (the "next" of a previous page)');
      }
      bounds = { ...bounds, after };
    }
    const limitText = textParam(params, 'limit');
    let limit = RANGE_LIMIT_DEFAULT;
    if (limitText !== undefined) {
      limit = /^[1-9][0-9]{0,5}$/.test(limitText) ? Number(limitText) : NaN;
      if (!(limit <= RANGE_LIMIT_MAX)) throw new HttpError(400, 'bad-parameter', `limit must be an integer 1..${RANGE_LIMIT_MAX}, got "${limitText.slice(0, 40)}"`);
    }
    const keysOnly = booleanParam(params, 'keys-only');
    const countOnly = booleanParam(params, 'count-only');
    const stale = booleanParam(params, 'stale');
    if (this.backend.rangeLocal === undefined || this.backend.countLocal === undefined) throw new HttpError(501, 'not-supported', 'this server serves no ranges');
    if (!stale) {
      // Ranges are always served by ReadIndex (also with readMode 'log': a range is no log command).
      try {
        await this.backend.confirmRead();
      } catch (error) {
        answerRaftError(this.backend, res, { rawPath, rawQuery }, error);
        return;
      }
    }
    if (countOnly) {
      const { count, revision, index } = this.backend.countLocal(bounds);
      sendJson(res, 200, { count, revision, index }, revisionOf(revision).headers);
      return;
    }
    const page = this.backend.rangeLocal({ ...bounds, limit, keysOnly, bytesMax: RANGE_BYTES_DEFAULT });
    // Each item is encoded on its own, so the body can be cut at RANGE_JSON_BYTES_MAX: JSON can be
    // several times the bytes it encodes (base64, escaped control characters).
    const items: string[] = [];
    let jsonBytes = 0;
    let more = page.more;
    let last: Uint8Array | undefined;
    for (const kv of page.kvs) {
      const key = jsonValue(kv.key, base64);
      const item: Record<string, unknown> = { key: key.value };
      if (key.encoding === 'base64' && !base64) item['keyEncoding'] = 'base64';
      if (kv.value !== undefined) {
        const value = jsonValue(kv.value, base64);
        item['value'] = value.value;
        item['encoding'] = value.encoding;
      }
      item['createRevision'] = kv.createRevision;
      item['modRevision'] = kv.modRevision;
      item['version'] = kv.version;
      if (kv.lease !== undefined) item['lease'] = kv.lease;
      const text = JSON.stringify(item);
      const size = Buffer.byteLength(text) + 1;
      if (items.length > 0 && jsonBytes + size > RANGE_JSON_BYTES_MAX) {
        more = true;
        break;
      }
      items.push(text);
      jsonBytes += size;
      last = kv.key;
    }
    const rest = JSON.stringify({
      count: items.length,
      more,
      next: more && last !== undefined ? rangeToken(last) : null,
      revision: page.revision,
      index: page.index,
      ...(base64 ? { encoding: 'base64' } : {}),
    });
    sendJsonText(res, 200, `{"kvs":[${items.join(',')}],${rest.slice(1)}`, revisionOf(page.revision).headers);
  }

  private async write(
    res: ServerResponse,
    request: KvRequest,
    command: { op: 'put' | 'append' | 'cas' | 'delete'; key: Uint8Array; value?: Uint8Array; expected?: Uint8Array | null; ifModRevision?: number; lease?: number },
  ): Promise<void> {
    const session = request.session ?? { clientId: '', seq: 0 };
    const cmd: KvCommand = { ...command, clientId: session.clientId, seq: session.seq };
    const outcome = await this.propose(res, request, cmd);
    if (outcome === null) return;
    const result = outcome.result;
    if (!result.ok) {
      answerResultError(res, result);
      return;
    }
    const previous = jsonValue(result.value ?? null, request.base64);
    const revision = revisionOf(result.revision);
    const meta = metaFields(result.key);
    if (command.op === 'cas') {
      if (result.swapped === true) {
        sendJson(res, 200, { swapped: true, index: outcome.index, previous: previous.value, encoding: previous.encoding, ...revision.body, ...meta }, revision.headers);
      } else {
        sendJson(res, 409, { swapped: false, index: outcome.index, value: previous.value, encoding: previous.encoding, ...revision.body, ...meta }, revision.headers);
      }
      return;
    }
    if (command.ifModRevision !== undefined && result.swapped === false) {
      const current = result.key?.modRevision ?? 0;
      sendError(
        res,
        412,
        'revision-mismatch',
        `key ${JSON.stringify(keyText(command.key))} is at mod revision ${current}${current === 0 ? ' (absent)' : ''}, not ${command.ifModRevision}: nothing was written`,
        { modRevision: current, index: outcome.index, ...revision.body },
        revision.headers,
      );
      return;
    }
    sendJson(res, 200, { index: outcome.index, previous: previous.value, encoding: previous.encoding, ...revision.body, ...meta }, revision.headers);
  }

  private propose(res: ServerResponse, request: RequestTarget, cmd: KvAnyCommand): Promise<{ index: number; result: KvResult } | null> {
    return proposeCommand(this.backend, res, request, cmd);
  }
}

/**
 * Proposes a command (a KV write, a transaction, a lease grant or revoke) and returns its result;
 * answers the error itself and returns null on failure.
 */
export async function proposeCommand(
  backend: Pick<KvApiBackend, 'commit' | 'leaderUrl'>,
  res: ServerResponse,
  request: RequestTarget,
  cmd: KvAnyCommand,
): Promise<{ index: number; result: KvResult } | null> {
  let bytes: Uint8Array;
  try {
    bytes = encodeKvCommand(cmd);
  } catch (error) {
    throw new HttpError(400, 'invalid-command', error instanceof Error ? error.message : String(error));
  }
  try {
    return await backend.commit(bytes);
  } catch (error) {
    answerRaftError(backend, res, request, error);
    return null;
  }
}

/** Answers a command the state machine refused (nothing was written), for the KV and the lease routes alike. */
export function answerResultError(res: ServerResponse, result: KvResult & { ok: false }): void {
  if (result.error === 'stale-request') sendError(res, 409, 'stale-request', result.message);
  else if (result.error === 'lease-not-found') sendError(res, 404, 'lease-not-found', result.message);
  else sendError(res, 400, 'invalid-command', result.message);
}

/** `if-mod-revision=N`: a non-negative integer (0: only if the key is absent), or undefined. */
function modRevisionParam(params: Map<string, Uint8Array>): number | undefined {
  const text = textParam(params, 'if-mod-revision');
  if (text === undefined) return undefined;
  const n = /^(0|[1-9][0-9]{0,15})$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) throw new HttpError(400, 'bad-parameter', `if-mod-revision must be a non-negative integer, got "${text.slice(0, 40)}"`);
  return n;
}

/** `lease=ID`: the lease a put attaches the key to (a positive integer), or undefined. */
function leaseParam(params: Map<string, Uint8Array>): number | undefined {
  const text = textParam(params, 'lease');
  if (text === undefined) return undefined;
  const id = /^[1-9][0-9]{0,15}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(id)) throw new HttpError(400, 'bad-parameter', `lease must be a lease id (a positive integer), got "${text.slice(0, 40)}"`);
  return id;
}

/** A key for an error message: its text when it is UTF-8, else `base64:...`. */
function keyText(key: Uint8Array): string {
  const k = jsonValue(key, false);
  return k.encoding === 'utf8' ? k.value! : `base64:${k.value!}`;
}
