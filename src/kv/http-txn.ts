/**
 * POST /v1/txn (served by KvRoutes.serveTxn in http-kv-routes.ts): the JSON body of a transaction,
 * decoded strictly into the compares and branches of a KvTxnCommand, and its result as JSON.
 *
 *     {"compare":[{"key","target":"value"|"version"|"create"|"mod"|"exists","op":"="|"!="|"<"|">",
 *                  "value": string (value) | integer (version, create, mod) | boolean (exists)}],
 *      "then":[{"put":{"key","value","lease"?}} | {"delete":{"key"}} | {"get":{"key"}}],
 *      "else":[...], "encoding":"base64"?}
 *
 * Every field is optional but `compare[i]`'s four; no other field is allowed. Keys and values are
 * UTF-8 text, or with "encoding":"base64" base64 (and so are the answer's values). A refusal names
 * the field at fault as a path (`then[2].put.key`) in the message and as `field` in the error. A
 * put's `lease` (a lease id) attaches the key to that lease; a transaction naming a lease the
 * store does not hold applies nothing and answers 404 lease-not-found.
 *
 * The answer: {"succeeded","revision","index","results":[{"put":{"previous","encoding",
 * "createRevision","modRevision","version"}} | {"delete":{"deleted","previous","encoding"}} |
 * {"get":{"value","encoding","createRevision","modRevision","version"}} | {"get":null}]}, one
 * result per op of the branch that ran ("encoding":"base64" too, when the request asked for it).
 */
import {
  isWellFormedString,
  TXN_COMPARES_MAX,
  TXN_OPS_MAX,
  utf8Encode,
  type KvCompare,
  type KvCompareOp,
  type KvKeyMeta,
  type KvTxnOp,
  type KvTxnResult,
} from './commands.js';
import { HttpError, jsonValue } from './http-io.js';
import { leaseIdProblem } from './lease-commands.js';
import { decodeBase64Strict } from './http-kv-routes.js';

export const TXN_PATH = '/v1/txn';

/** A transaction's body, decoded. */
export interface TxnBody {
  readonly compare: KvCompare[];
  readonly then: KvTxnOp[];
  readonly else: KvTxnOp[];
  readonly base64: boolean;
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** 400 (or another status) naming the field at fault. */
export function txnError(status: number, code: string, field: string, message: string): HttpError {
  return new HttpError(status, code, field === '' ? message : `${field}: ${message}`, {}, field === '' ? {} : { field });
}

function bad(field: string, message: string): HttpError {
  return txnError(400, 'bad-txn', field, message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v;
}

function onlyFields(o: Record<string, unknown>, allowed: readonly string[], field: string): void {
  for (const name of Object.keys(o)) {
    if (!allowed.includes(name)) throw bad(field === '' ? name : `${field}.${name}`, `unknown field (allowed: ${allowed.join(', ')})`);
  }
}

/** Decodes and checks a transaction's JSON body (limits on keys, values and duplicates are left to txnProblem). */
export function parseTxnBody(body: Uint8Array): TxnBody {
  let text: string;
  try {
    text = utf8Strict.decode(body);
  } catch {
    throw new HttpError(400, 'bad-json', 'the body is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, 'bad-json', `the body is not JSON: ${error instanceof Error ? error.message.slice(0, 200) : 'parse error'}`);
  }
  if (!isObject(json)) throw new HttpError(400, 'bad-json', `the body must be a JSON object, got ${typeName(json)}`);
  onlyFields(json, ['compare', 'then', 'else', 'encoding'], '');
  const encoding = json['encoding'];
  if (encoding !== undefined && encoding !== 'base64' && encoding !== 'utf8') throw bad('encoding', 'must be "base64" or "utf8"');
  const base64 = encoding === 'base64';
  const bytes = (v: unknown, field: string): Uint8Array => {
    if (typeof v !== 'string') throw bad(field, `must be a string, got ${typeName(v)}`);
    if (!base64) {
      if (!isWellFormedString(v)) throw bad(field, 'is not well-formed Unicode (a lone surrogate): send such bytes with "encoding":"base64"');
      return utf8Encode(v);
    }
    const decoded = decodeBase64Strict(v);
    if (decoded === null) throw bad(field, 'is not base64 ("encoding":"base64" takes keys and values in base64)');
    return decoded;
  };
  const list = (name: string, max: number): unknown[] => {
    const v = json[name];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw bad(name, `must be a list, got ${typeName(v)}`);
    if (v.length > max) throw txnError(400, 'too-many-operations', name, `at most ${max} entries, got ${v.length}`);
    return v;
  };

  const compare: KvCompare[] = list('compare', TXN_COMPARES_MAX).map((c, i) => {
    const field = `compare[${i}]`;
    if (!isObject(c)) throw bad(field, `must be an object, got ${typeName(c)}`);
    onlyFields(c, ['key', 'target', 'op', 'value'], field);
    const key = bytes(c['key'], `${field}.key`);
    const op = c['op'];
    if (op !== '=' && op !== '!=' && op !== '<' && op !== '>') throw bad(`${field}.op`, 'must be one of "=", "!=", "<", ">"');
    const value = c['value'];
    switch (c['target']) {
      case 'value':
        return { key, target: 'value', op: op as KvCompareOp, value: bytes(value, `${field}.value`) };
      case 'version':
      case 'create':
      case 'mod': {
        if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
          throw bad(`${field}.value`, `a ${String(c['target'])} compare takes a non-negative integer, got ${typeName(value) === 'number' ? String(value) : typeName(value)}`);
        }
        return { key, target: c['target'], op: op as KvCompareOp, value };
      }
      case 'exists':
        if (typeof value !== 'boolean') throw bad(`${field}.value`, `an exists compare takes true or false, got ${typeName(value)}`);
        if (op !== '=' && op !== '!=') throw bad(`${field}.op`, 'an exists compare takes "=" or "!=" only');
        return { key, target: 'exists', op: op as KvCompareOp, value };
      default:
        throw bad(`${field}.target`, 'must be one of "value", "version", "create", "mod", "exists"');
    }
  });
  const branch = (name: 'then' | 'else'): KvTxnOp[] =>
    list(name, TXN_OPS_MAX).map((o, i) => {
      const field = `${name}[${i}]`;
      if (!isObject(o)) throw bad(field, `must be an object, got ${typeName(o)}`);
      const kinds = Object.keys(o);
      if (kinds.length !== 1) throw bad(field, 'must hold exactly one of put, delete, get');
      const kind = kinds[0]!;
      if (kind !== 'put' && kind !== 'delete' && kind !== 'get') throw bad(`${field}.${kind}`, 'unknown op (put, delete or get)');
      const args = o[kind];
      const at = `${field}.${kind}`;
      if (!isObject(args)) throw bad(at, `must be an object, got ${typeName(args)}`);
      onlyFields(args, kind === 'put' ? ['key', 'value', 'lease'] : ['key'], at);
      const key = bytes(args['key'], `${at}.key`);
      if (kind === 'put') {
        const value = bytes(args['value'], `${at}.value`);
        const lease = args['lease'];
        if (lease === undefined) return { type: 'put', key, value };
        const problem = leaseIdProblem(lease);
        if (problem !== null) throw bad(`${at}.lease`, problem);
        return { type: 'put', key, value, lease: lease as number };
      }
      return { type: kind, key };
    });
  return { compare, then: branch('then'), else: branch('else'), base64 };
}

function meta(key: KvKeyMeta | undefined): Partial<KvKeyMeta> {
  return key === undefined ? {} : { createRevision: key.createRevision, modRevision: key.modRevision, version: key.version };
}

/** The answer to a transaction that applied. */
export function txnAnswer(txn: KvTxnResult, revision: number, index: number, base64: boolean): Record<string, unknown> {
  const results = txn.results.map((op) => {
    const v = jsonValue(op.value, base64);
    switch (op.type) {
      case 'put':
        return { put: { previous: v.value, encoding: v.encoding, ...meta(op.key) } };
      case 'delete':
        return { delete: { deleted: op.value !== null, previous: v.value, encoding: v.encoding } };
      case 'get':
        return { get: op.value === null ? null : { value: v.value, encoding: v.encoding, ...meta(op.key) } };
    }
  });
  return { succeeded: txn.succeeded, revision, index, results, ...(base64 ? { encoding: 'base64' } : {}) };
}
