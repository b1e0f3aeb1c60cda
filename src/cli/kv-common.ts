/**
 * What the KV client commands (get, put, del, append, cas) share: the --endpoints and --timeout
 * options (and, from client-security.ts, --ca/--cert/--key/--token), building a KvClient, and
 * turning client errors into exit codes and messages.
 */
import type { Command } from 'commander';
import { KvClient, KvClientError } from '../kv/client.js';
import { DEFAULT_ATTEMPT_TIMEOUT_MS } from '../kv/client-endpoints.js';
import { certificateFailure } from '../kv/client-http.js';
import { clientRememberingLeader } from './leader-hint.js';
import { readClientSecurity, securityRefusal, withClientSecurityOptions, type ClientSecurityOptions } from './client-security.js';
import { CliError, DEFAULT_ENDPOINTS, EXIT, UsageError, errorMessage, parseEndpoints, parseIntOption } from './common.js';

export interface ClientOptions extends ClientSecurityOptions {
  endpoints: string;
  timeout: string;
  attemptTimeout: string;
}

/** Adds --endpoints, --timeout and the TLS/token options to a client command. */
export function withClientOptions(command: Command): Command {
  return withClientSecurityOptions(command)
    .option(
      '--endpoints <urls>',
      'comma-separated HTTP base URLs of the cluster\'s nodes (env TSRAFT_ENDPOINTS)',
      process.env['TSRAFT_ENDPOINTS'] || DEFAULT_ENDPOINTS,
    )
    .option('--timeout <ms>', 'give up (exit 3) if the cluster cannot serve the request within this time', '5000')
    .option(
      '--attempt-timeout <ms>',
      'move on to the next endpoint when one has not answered within this time (a hung node costs one attempt)',
      String(DEFAULT_ATTEMPT_TIMEOUT_MS),
    )
    .addHelpText('after', '\nExit codes: 0 ok, 1 not found / not swapped, 2 usage error, 3 cluster unavailable.');
}

export function makeClient(options: ClientOptions): KvClient {
  const endpoints = parseEndpoints(options.endpoints);
  const timeoutMs = parseIntOption(options.timeout, '--timeout', 1, 3_600_000);
  const attemptTimeoutMs = parseIntOption(options.attemptTimeout, '--attempt-timeout', 1, 3_600_000);
  return clientRememberingLeader({ endpoints, timeoutMs, attemptTimeoutMs, ...readClientSecurity(options) });
}

/** Checks a key given on the command line. */
export function checkKey(key: string): string {
  if (key === '') throw new UsageError('the key must not be empty');
  if (Buffer.byteLength(key) > 1024) throw new UsageError(`the key is ${Buffer.byteLength(key)} bytes; keys are 1..1024 bytes`);
  if (key === '.' || key === '..') throw new UsageError(`the key "${key}" cannot be used (it is a URL dot segment)`);
  return key;
}

/** Runs one client call, mapping KvClient errors to CliError (exit 3 unavailable, 2 bad request, 1 other). */
export async function callCluster<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const refused = securityRefusal(what, error);
    if (refused !== undefined) throw refused;
    if (error instanceof KvClientError) {
      switch (error.code) {
        case 'timeout': {
          const cause = (error as { cause?: unknown }).cause;
          const why = cause === undefined ? '' : `; last error: ${describeCause(cause)}`;
          throw new CliError(`${what}: the cluster is unavailable (no answer within the timeout${why})`, EXIT.unavailable);
        }
        case 'bad-request':
          throw new CliError(`${what}: rejected by the server: ${error.message}`, EXIT.usage);
        default:
          throw new CliError(`${what}: ${error.message}`, EXIT.failed);
      }
    }
    throw new CliError(`${what}: ${errorMessage(error)}`, EXIT.failed);
  }
}

function describeCause(cause: unknown): string {
  const tls = certificateFailure(cause);
  if (tls !== undefined) return `TLS failed: ${tls.reason} (${tls.code})`;
  if (cause instanceof Error) {
    const inner = (cause as { cause?: unknown }).cause;
    const code = (inner as { code?: unknown } | undefined)?.code;
    if (code === 'ECONNREFUSED') return 'connection refused (is the cluster running? see `tsraft start`)';
    // What an HTTPS node does to plain HTTP: it closes the connection at once, without an answer.
    if (code === 'UND_ERR_SOCKET') return `${code}: the node closed the connection without answering (if it serves HTTPS, give https:// endpoints)`;
    if (typeof code === 'string') return code;
    if (inner instanceof Error) return `${cause.message}: ${inner.message}`;
    return cause.message;
  }
  return String(cause);
}

export function printLine(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}
