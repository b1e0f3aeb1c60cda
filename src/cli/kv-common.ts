/**
 * What the KV client commands (get, put, del, append, cas) share: the --endpoints and --timeout
 * options, building a KvClient, and turning client errors into exit codes and messages.
 */
import type { Command } from 'commander';
import { KvClient, KvClientError } from '../kv/client.js';
import { CliError, DEFAULT_ENDPOINTS, EXIT, UsageError, errorMessage, parseEndpoints, parseIntOption } from './common.js';

export interface ClientOptions {
  endpoints: string;
  timeout: string;
}

/** Adds --endpoints and --timeout to a client command. */
export function withClientOptions(command: Command): Command {
  return command
    .option(
      '--endpoints <urls>',
      'comma-separated HTTP base URLs of the cluster\'s nodes (env TSRAFT_ENDPOINTS)',
      process.env['TSRAFT_ENDPOINTS'] || DEFAULT_ENDPOINTS,
    )
    .option('--timeout <ms>', 'give up (exit 3) if the cluster cannot serve the request within this time', '5000')
    .addHelpText('after', '\nExit codes: 0 ok, 1 not found / not swapped, 2 usage error, 3 cluster unavailable.');
}

export function makeClient(options: ClientOptions): KvClient {
  const endpoints = parseEndpoints(options.endpoints);
  const timeoutMs = parseIntOption(options.timeout, '--timeout', 1, 3_600_000);
  return new KvClient({ endpoints, timeoutMs });
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
  if (cause instanceof Error) {
    const inner = (cause as { cause?: unknown }).cause;
    const code = (inner as { code?: unknown } | undefined)?.code;
    if (typeof code === 'string') return code === 'ECONNREFUSED' ? 'connection refused (is the cluster running? see `tsraft start`)' : code;
    if (inner instanceof Error) return `${cause.message}: ${inner.message}`;
    return cause.message;
  }
  return String(cause);
}

export function printLine(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}
