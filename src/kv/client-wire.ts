/**
 * KvClient's wire helpers: keys and values to bytes and URLs, transaction bodies and answers,
 * membership answers, error bodies and `{value, encoding}` pairs. Pure functions of what the
 * server sent; a malformed answer is a KvClientError 'server-error'.
 */
import { KvClientError, type KvKeyRevisions, type KvMember, type KvMembers, type KvTxnOpResult, type KvTxnRequest, type KvTxnRequestOp, type KvTxnResponse, type KvValue } from './client-types.js';

export const encoder = new TextEncoder();
export const lenientDecoder = new TextDecoder('utf-8', { ignoreBOM: true });

export function toBytes(v: KvValue): Uint8Array {
  return typeof v === 'string' ? encoder.encode(v) : v;
}

/** Percent-encodes every byte but the URL-unreserved characters. */
export function percentEncodeBytes(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    const unreserved = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
    out += unreserved ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** A key or value for a txn body: base64 of its bytes; anything else as given (the server names what is wrong). */
export function txnBytes(v: unknown): unknown {
  return typeof v === 'string' || v instanceof Uint8Array ? Buffer.from(toBytes(v)).toString('base64') : v;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A KvTxnRequest as the JSON body of POST /v1/txn, with "encoding":"base64". */
export function txnBody(request: KvTxnRequest): Record<string, unknown> {
  const ops = (list: readonly KvTxnRequestOp[] | undefined): unknown =>
    !Array.isArray(list) ? list : list.map((op: unknown) => {
      if (!isRecord(op)) return op;
      const out: Record<string, unknown> = {};
      for (const [kind, args] of Object.entries(op)) {
        out[kind] = isRecord(args) ? { ...args, key: txnBytes(args['key']), ...('value' in args ? { value: txnBytes(args['value']) } : {}) } : args;
      }
      return out;
    });
  return {
    compare: !Array.isArray(request.compare)
      ? (request.compare ?? [])
      : request.compare.map((c: unknown) => (isRecord(c) ? { ...c, key: txnBytes(c['key']), ...(c['target'] === 'value' ? { value: txnBytes(c['value']) } : {}) } : c)),
    then: ops(request.then) ?? [],
    else: ops(request.else) ?? [],
    encoding: 'base64',
  };
}

export function parseTxnAnswer(j: Record<string, unknown>): KvTxnResponse {
  const malformed = (what: string): KvClientError => new KvClientError('server-error', `malformed answer to POST /v1/txn: ${what}`);
  const bytesOf = (v: unknown, what: string): Uint8Array | null => {
    if (v === null) return null;
    if (typeof v !== 'string') throw malformed(`${what} is not a string`);
    return new Uint8Array(Buffer.from(v, 'base64'));
  };
  const revisionsOf = (o: Record<string, unknown>): KvKeyRevisions | undefined =>
    typeof o['modRevision'] === 'number' ? { createRevision: Number(o['createRevision']), modRevision: o['modRevision'], version: Number(o['version']) } : undefined;
  if (typeof j['succeeded'] !== 'boolean' || typeof j['revision'] !== 'number' || typeof j['index'] !== 'number' || !Array.isArray(j['results'])) {
    throw malformed('needs succeeded, revision, index and results');
  }
  const results = (j['results'] as unknown[]).map((r, i): KvTxnOpResult => {
    if (!isRecord(r)) throw malformed(`results[${i}] is not an object`);
    if (isRecord(r['put'])) {
      const revisions = revisionsOf(r['put']);
      if (revisions === undefined) throw malformed(`results[${i}].put has no revisions`);
      return { type: 'put', previous: bytesOf(r['put']['previous'], `results[${i}].put.previous`), revisions };
    }
    if (isRecord(r['delete'])) {
      return { type: 'delete', deleted: r['delete']['deleted'] === true, previous: bytesOf(r['delete']['previous'], `results[${i}].delete.previous`) };
    }
    if ('get' in r) {
      const g = r['get'];
      if (g === null) return { type: 'get', value: null };
      if (!isRecord(g)) throw malformed(`results[${i}].get is not an object`);
      const revisions = revisionsOf(g);
      return { type: 'get', value: bytesOf(g['value'], `results[${i}].get.value`), ...(revisions === undefined ? {} : { revisions }) };
    }
    throw malformed(`results[${i}] is no put, delete or get`);
  });
  return { succeeded: j['succeeded'], revision: j['revision'], index: j['index'], results };
}

function memberOf(value: unknown): KvMember {
  if (typeof value !== 'object' || value === null) throw new KvClientError('server-error', `malformed member in GET /v1/members: ${JSON.stringify(value)}`);
  const m = value as Record<string, unknown>;
  const address = (v: unknown): v is string | null | undefined => v === undefined || v === null || typeof v === 'string';
  if (typeof m['id'] !== 'number' || !address(m['raft']) || !address(m['http'])) {
    throw new KvClientError('server-error', `malformed member in GET /v1/members: ${JSON.stringify(value).slice(0, 200)}`);
  }
  return { id: m['id'], raft: m['raft'] ?? null, http: m['http'] ?? null, ...(typeof m['match'] === 'number' ? { match: m['match'] } : {}) };
}

/** Reads a GET /v1/members (or membership change) answer; throws 'server-error' on a malformed one. */
export function parseMembers(json: Record<string, unknown>): KvMembers {
  const list = (name: string): KvMember[] => {
    const v = json[name];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new KvClientError('server-error', `malformed membership answer: ${name} is not a list`);
    return v.map(memberOf).sort((a, b) => a.id - b.id);
  };
  const leader = json['leader'];
  return {
    leader: typeof leader === 'number' ? leader : null,
    membershipIndex: typeof json['membershipIndex'] === 'number' ? json['membershipIndex'] : -1,
    committed: json['committed'] === true,
    joint: json['joint'] === true,
    voters: list('voters'),
    outgoing: list('outgoing'),
    learners: list('learners'),
  };
}

export function errorOf(json: Record<string, unknown>): { code: string | undefined; message: string | undefined } {
  const e = json['error'];
  if (typeof e !== 'object' || e === null) return { code: undefined, message: undefined };
  const { code, message } = e as { code?: unknown; message?: unknown };
  return { code: typeof code === 'string' ? code : undefined, message: typeof message === 'string' ? message : undefined };
}

/** A `{value, encoding}` pair from the server as bytes. */
export function valueBytes(value: unknown, encoding: unknown): Uint8Array | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'string') throw new KvClientError('server-error', 'malformed answer: value is not a string');
  if (encoding === 'base64') return new Uint8Array(Buffer.from(value, 'base64'));
  return encoder.encode(value);
}

export function valueText(value: unknown, encoding: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' && encoding !== 'base64') return value;
  const bytes = valueBytes(value, encoding);
  return bytes === null ? null : lenientDecoder.decode(bytes);
}
