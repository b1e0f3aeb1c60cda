/**
 * `tsraft txn [FILE]`: sends a transaction (the JSON body of POST /v1/txn, see the README's
 * "Transactions") read from FILE, or from standard input when FILE is `-` (never just because no
 * FILE was given: a script whose stdin is an open pipe would hang), and prints
 * which branch ran and the results of its ops. Exit 0 when `then` ran, 1 when `else` ran, 2 for a
 * request the server refuses (or JSON that does not parse), 3 when the cluster is unavailable.
 */
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import type { KvTxnRequest, KvTxnResponse } from '../kv/client.js';
import { decodeBase64Strict } from '../kv/http-kv-routes.js';
import { EXIT, UsageError } from './common.js';
import { callCluster, makeClient, printLine, withClientOptions, type ClientOptions } from './kv-common.js';
import { jsonValue, printJson, wantsJson, withOutputOption, type OutputOptions } from './values.js';

/** A transaction file is a request body: at most the server's 1 MiB, with room to spare for JSON. */
const TXN_FILE_BYTES_MAX = 4 * 1024 * 1024;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function readInput(file: string): Promise<string> {
  let bytes: Buffer;
  if (file === '-') {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of process.stdin) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      total += b.length;
      if (total > TXN_FILE_BYTES_MAX) throw new UsageError(`standard input holds more than ${TXN_FILE_BYTES_MAX} bytes`);
      chunks.push(b);
    }
    bytes = Buffer.concat(chunks);
  } else {
    try {
      bytes = await readFile(file);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new UsageError(`cannot read ${JSON.stringify(file)} (${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : String((error as Error).message)})`);
    }
    if (bytes.length > TXN_FILE_BYTES_MAX) throw new UsageError(`${file} holds more than ${TXN_FILE_BYTES_MAX} bytes`);
  }
  return bytes.toString('utf8');
}

/**
 * The request in a file: with "encoding":"base64", keys and values are decoded to bytes here (the
 * client sends every key and value as base64 anyway); anything malformed is passed on as it is, for
 * the server to name the field at fault.
 */
function toRequest(json: Record<string, unknown>): KvTxnRequest {
  const base64 = json['encoding'] === 'base64';
  const bytes = (v: unknown, field: string): unknown => {
    if (!base64 || typeof v !== 'string') return v;
    const decoded = decodeBase64Strict(v);
    if (decoded === null) throw new UsageError(`${field}: is not base64 ("encoding":"base64" takes keys and values in base64)`);
    return decoded;
  };
  const rest = Object.keys(json).filter((k) => !['compare', 'then', 'else', 'encoding'].includes(k));
  if (rest.length > 0) throw new UsageError(`${rest[0]}: unknown field (allowed: compare, then, else, encoding)`);
  const ops = (name: string): unknown => {
    const list = json[name];
    if (!Array.isArray(list)) return list;
    return list.map((op: unknown, i) => {
      if (!isRecord(op)) return op;
      const out: Record<string, unknown> = {};
      for (const [kind, args] of Object.entries(op)) {
        out[kind] = isRecord(args)
          ? { ...args, key: bytes(args['key'], `${name}[${i}].${kind}.key`), ...('value' in args ? { value: bytes(args['value'], `${name}[${i}].${kind}.value`) } : {}) }
          : args;
      }
      return out;
    });
  };
  const compare = Array.isArray(json['compare'])
    ? json['compare'].map((c: unknown, i) =>
        isRecord(c) ? { ...c, key: bytes(c['key'], `compare[${i}].key`), ...(c['target'] === 'value' ? { value: bytes(c['value'], `compare[${i}].value`) } : {}) } : c,
      )
    : json['compare'];
  return { ...(compare === undefined ? {} : { compare }), ...(json['then'] === undefined ? {} : { then: ops('then') }), ...(json['else'] === undefined ? {} : { else: ops('else') }) } as KvTxnRequest;
}

/** The key each op of the branch that ran names (for the printout), as text. */
function opKeys(json: Record<string, unknown>, branch: 'then' | 'else'): string[] {
  const list = json[branch];
  if (!Array.isArray(list)) return [];
  return list.map((op: unknown) => {
    if (!isRecord(op)) return '?';
    const args = Object.values(op)[0];
    const key = isRecord(args) ? args['key'] : undefined;
    return typeof key === 'string' ? (json['encoding'] === 'base64' ? `base64:${key}` : key) : '?';
  });
}

function text(bytes: Uint8Array | null): string {
  const v = jsonValue(bytes);
  return v.value === null ? 'absent' : v.encoding === 'utf8' ? JSON.stringify(v.value) : `base64:${v.value}`;
}

function printText(result: KvTxnResponse, keys: string[]): void {
  printLine(`${result.succeeded ? 'then' : 'else'} ran (revision ${result.revision}, index ${result.index})`);
  result.results.forEach((r, i) => {
    const key = JSON.stringify(keys[i] ?? '?');
    switch (r.type) {
      case 'put':
        printLine(`put ${key}: previous ${text(r.previous)}, mod revision ${r.revisions.modRevision}`);
        break;
      case 'delete':
        printLine(`delete ${key}: ${r.deleted ? `deleted ${text(r.previous)}` : 'absent'}`);
        break;
      case 'get':
        printLine(`get ${key}: ${r.value === null ? 'absent' : `${text(r.value)}, mod revision ${r.revisions?.modRevision ?? '?'}`}`);
        break;
    }
  });
}

function resultJson(result: KvTxnResponse, keys: string[]): unknown {
  return {
    succeeded: result.succeeded,
    branch: result.succeeded ? 'then' : 'else',
    revision: result.revision,
    index: result.index,
    results: result.results.map((r, i) => {
      const key = keys[i] ?? null;
      switch (r.type) {
        case 'put':
          return { op: 'put', key, previous: jsonValue(r.previous).value, previousEncoding: jsonValue(r.previous).encoding, ...r.revisions };
        case 'delete':
          return { op: 'delete', key, deleted: r.deleted, previous: jsonValue(r.previous).value, previousEncoding: jsonValue(r.previous).encoding };
        case 'get': {
          const v = jsonValue(r.value);
          return { op: 'get', key, value: v.value, encoding: v.encoding, ...(r.revisions ?? {}) };
        }
      }
    }),
  };
}

export function txnCommand(): Command {
  return withOutputOption(
    withClientOptions(
      new Command('txn')
        .description('run a transaction (compares, then / else branches of put, delete, get) from a JSON file or stdin; exit 1 if else ran')
        .argument('<file>', 'the JSON request (the body of POST /v1/txn); - reads standard input')
        .addHelpText(
          'after',
          `
The JSON: {"compare":[{"key":"lock","target":"create","op":"=","value":0}],
           "then":[{"put":{"key":"lock","value":"me"}}], "else":[{"get":{"key":"lock"}}]}
Exit 0 when then ran, 1 when else ran.

Examples:
  tsraft txn acquire.json
  echo '{"then":[{"get":{"key":"a"}},{"get":{"key":"b"}}]}' | tsraft txn -`,
        ),
    ),
  ).action(async (file: string, options: ClientOptions & OutputOptions) => {
    const input = await readInput(file);
    let json: unknown;
    try {
      json = JSON.parse(input);
    } catch (error) {
      throw new UsageError(`the transaction is not JSON: ${(error as Error).message}`);
    }
    if (!isRecord(json)) throw new UsageError('the transaction must be a JSON object {"compare","then","else"}');
    const request = toRequest(json);
    const client = makeClient(options);
    const result = await callCluster('txn', () => client.txn(request));
    const keys = opKeys(json, result.succeeded ? 'then' : 'else');
    if (wantsJson(options)) printJson(resultJson(result, keys));
    else printText(result, keys);
    if (!result.succeeded) process.exitCode = EXIT.failed;
  });
}
