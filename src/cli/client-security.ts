/**
 * The options every command that talks to a cluster's HTTP API shares for HTTPS and tokens:
 * --ca (verify https:// nodes against this CA), --cert/--key (a client certificate, for nodes run
 * with --http-client-ca), --token (a bearer token). Each falls back to an environment variable
 * (TSRAFT_CA, TSRAFT_CERT, TSRAFT_KEY, TSRAFT_TOKEN); the environment is the better place for a
 * token, since a command line is visible to every user of the machine (ps).
 *
 * Files are read when the client is made, synchronously (one small file each, once per command);
 * an unreadable or non-PEM file is a CliError with exit code 2 naming the flag and the file.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { KvClientError } from '../kv/client.js';
import type { KvClientTls } from '../kv/client-http.js';
import { CliError, EXIT, UsageError, errorMessage } from './common.js';

export interface ClientSecurityOptions {
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
}

/** What a KvClient (or clusterHttp) gets from the options. */
export interface ClientSecurity {
  readonly tls?: KvClientTls;
  readonly token?: string;
}

/** An environment variable, or undefined when unset or empty. */
function env(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** Adds --ca, --cert, --key and --token (defaults from TSRAFT_CA, TSRAFT_CERT, TSRAFT_KEY, TSRAFT_TOKEN). */
export function withClientSecurityOptions(command: Command): Command {
  return command
    .option('--ca <file>', 'verify https:// nodes against this CA certificate (PEM; env TSRAFT_CA)', env('TSRAFT_CA'))
    .option('--cert <file>', 'a client certificate (PEM) to present to nodes run with --http-client-ca (with --key; env TSRAFT_CERT)', env('TSRAFT_CERT'))
    .option('--key <file>', "the client certificate's private key (PEM; env TSRAFT_KEY)", env('TSRAFT_KEY'))
    .option('--token <token>', 'a bearer token sent with every request (prefer env TSRAFT_TOKEN: a command line is visible in ps)', env('TSRAFT_TOKEN'));
}

/** Reads one PEM file named by `flag`; CliError (exit 2) naming both when it cannot be read or is not PEM. */
export function readPemFile(flag: string, path: string): string {
  if (path.trim() === '') throw new UsageError(`${flag} must name a file`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : errorMessage(error);
    throw new CliError(`${flag} ${path}: cannot read it (${why})`, EXIT.usage);
  }
  if (!text.includes('-----BEGIN ')) throw new CliError(`${flag} ${path}: not a PEM file (no "-----BEGIN" line)`, EXIT.usage);
  return text;
}

/** The TLS material and token the options name (files read now). */
export function readClientSecurity(options: ClientSecurityOptions): ClientSecurity {
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new UsageError(`${options.cert === undefined ? '--key' : '--cert'} given without ${options.cert === undefined ? '--cert' : '--key'}: a client certificate needs both (or neither)`);
  }
  if (options.token !== undefined && !/^[\x21-\x7e]{1,4096}$/.test(options.token)) {
    throw new UsageError('--token (or TSRAFT_TOKEN) must be 1..4096 printable ASCII characters without spaces');
  }
  const tls: { -readonly [K in keyof KvClientTls]: KvClientTls[K] } = {};
  if (options.ca !== undefined) tls.ca = readPemFile('--ca', options.ca);
  if (options.cert !== undefined) tls.cert = readPemFile('--cert', options.cert);
  if (options.key !== undefined) tls.key = readPemFile('--key', options.key);
  return {
    ...(Object.keys(tls).length === 0 ? {} : { tls }),
    ...(options.token === undefined ? {} : { token: options.token }),
  };
}

/**
 * The CliError for a KvClient rejection of security: code 'tls' (no node's certificate could be
 * verified, or a node does not speak TLS) exits 3 with what to give; 401 (no or an unknown token)
 * and 403 (a role missing) exit 2 with the server's reason. Undefined for any other error.
 */
export function securityRefusal(what: string, error: unknown): CliError | undefined {
  if (!(error instanceof KvClientError)) return undefined;
  if (error.code === 'tls') {
    const hint = error.message.includes('no CA was given') ? ' (give --ca <file>, or set TSRAFT_CA, with the CA that signed the nodes\' certificates)' : '';
    return new CliError(`${what}: ${error.message}${hint}`, EXIT.unavailable);
  }
  // The server's message says what was missing (a token, a role); the hint says where a token goes.
  if (error.status === 401) return new CliError(`${what}: not authenticated: ${error.message} (set TSRAFT_TOKEN or give --token, or --cert/--key)`, EXIT.usage);
  if (error.status === 403) return new CliError(`${what}: not allowed: ${error.message}`, EXIT.usage);
  return undefined;
}
