/**
 * Shared pieces of the `tsraft` CLI: exit codes, the usage error, option parsers (addresses, ports,
 * peer lists, integers) and a small text-table printer.
 *
 * Every parser throws UsageError with a message meant for a person; main.ts prints it as
 * `tsraft: error: ...` and exits with EXIT.usage (2). No parser ever lets a stack trace through.
 */

import {
  formatMemberAddress,
  MemberAddressError,
  parseHostPort as parseHostPortStrict,
  parseHttpUrl as parseHttpUrlStrict,
  parsePort as parsePortStrict,
  type HostPort,
} from '../kv/member-address.js';

/** Process exit codes of every tsraft command. */
export const EXIT = {
  ok: 0,
  /** get: key not found; cas: not swapped; start/node: a runtime failure. */
  failed: 1,
  /** Bad arguments or options. */
  usage: 2,
  /** No node answered (or none could serve the request in time). */
  unavailable: 3,
  /**
   * node: the data directory is damaged (a corrupt write-ahead log or snapshot, a damaged cluster
   * identity file). Restarting cannot help: an operator must look, so `tsraft start` does not.
   */
  damaged: 4,
} as const;

/** A mistake in the command line: printed without a stack trace, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A failure to print and exit with `code` (no stack trace). */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

export type { HostPort };

export interface PeerSpec {
  readonly id: number;
  readonly raftHost: string;
  readonly raftPort: number;
  readonly httpUrl: string;
}

/** The peer-list syntax, for help texts and error messages. */
export const PEERS_SYNTAX = 'ID=HOST:PORT/HTTP-URL,... (e.g. 0=127.0.0.1:7000/http://127.0.0.1:8000,1=127.0.0.1:7001/http://127.0.0.1:8001)';

/**
 * Runs one of the member-address parsers (kv/member-address.ts, shared with the KV server so that
 * what the CLI accepts is what a node accepts) and turns its error into a UsageError.
 */
function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof MemberAddressError) throw new UsageError(error.message);
    throw error;
  }
}

/** A TCP port: an integer 1..65535 (0 too when `allowZero`, meaning "any free port"). */
export function parsePort(text: string, what: string, allowZero = false): number {
  return usage(() => parsePortStrict(text, what, allowZero));
}

/** `host:port` (IPv4 address or hostname; `[v6]:port` for IPv6). */
export function parseHostPort(text: string, what: string, allowZeroPort = false): HostPort {
  return usage(() => parseHostPortStrict(text, what, allowZeroPort));
}

/** An http:// base URL with host and port, returned without a trailing slash. */
export function parseHttpUrl(text: string, what: string): string {
  return usage(() => parseHttpUrlStrict(text, what));
}

/** A comma-separated list of HTTP base URLs. */
export function parseEndpoints(text: string, what = '--endpoints'): string[] {
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (parts.length === 0) throw new UsageError(`${what}: expected at least one URL, e.g. http://127.0.0.1:8000`);
  const urls = parts.map((p) => parseHttpUrl(p, what));
  return [...new Set(urls)];
}

/** A non-negative integer node id. */
export function parseNodeId(text: string, what: string): number {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(Number(trimmed))) {
    throw new UsageError(`${what}: node id must be a non-negative integer, got ${JSON.stringify(text)}`);
  }
  return Number(trimmed);
}

/** An integer in [min, max]. */
export function parseIntOption(text: string, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const trimmed = text.trim();
  if (!/^-?\d+$/.test(trimmed)) throw new UsageError(`${what}: expected an integer, got ${JSON.stringify(text)}`);
  const n = Number(trimmed);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${what}: ${trimmed} is out of range (${min}..${max === Number.MAX_SAFE_INTEGER ? '∞' : max})`);
  }
  return n;
}

/** A byte count: an integer with an optional k/m/g suffix (powers of 1024). */
export function parseBytes(text: string, what: string): number {
  const m = /^\s*(\d+)\s*([kmg]i?b?|b)?\s*$/i.exec(text);
  if (m === null) throw new UsageError(`${what}: expected a byte count like 1048576 or 64m, got ${JSON.stringify(text)}`);
  const unit = (m[2] ?? '').toLowerCase()[0];
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  const n = Number(m[1]) * mult;
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${what}: must be at least 1 byte, got ${JSON.stringify(text)}`);
  return n;
}

/**
 * Parses a peer list: `ID=HOST:PORT/HTTP-URL` entries separated by commas, e.g.
 * `0=127.0.0.1:7000/http://127.0.0.1:8000,1=127.0.0.1:7001/http://127.0.0.1:8001`.
 * Checks ids (non-negative integers, no duplicates), addresses, ports and that no two members
 * share a raft address or an HTTP URL. Sorted by id.
 */
export function parsePeers(text: string, what = '--peers'): PeerSpec[] {
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (entries.length === 0) throw new UsageError(`${what}: empty peer list; expected ${PEERS_SYNTAX}`);
  const peers: PeerSpec[] = [];
  const ids = new Set<number>();
  const raftAddresses = new Map<string, number>();
  const httpUrls = new Map<string, number>();
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq < 0) throw new UsageError(`${what}: entry ${JSON.stringify(entry)} has no "="; expected ${PEERS_SYNTAX}`);
    const id = parseNodeId(entry.slice(0, eq), `${what} entry ${JSON.stringify(entry)}`);
    const rest = entry.slice(eq + 1);
    const slash = rest.indexOf('/');
    if (slash < 0) {
      throw new UsageError(`${what}: entry ${JSON.stringify(entry)} has no HTTP URL; expected ID=HOST:PORT/http://HOST:PORT`);
    }
    const raft = parseHostPort(rest.slice(0, slash), `${what} entry for node ${id} (raft address)`);
    const httpUrl = parseHttpUrl(rest.slice(slash + 1), `${what} entry for node ${id} (HTTP URL)`);
    if (ids.has(id)) throw new UsageError(`${what}: duplicate node id ${id}`);
    ids.add(id);
    const raftKey = `${raft.host}:${raft.port}`;
    const otherRaft = raftAddresses.get(raftKey);
    if (otherRaft !== undefined) throw new UsageError(`${what}: nodes ${otherRaft} and ${id} have the same raft address ${raftKey}`);
    raftAddresses.set(raftKey, id);
    const otherHttp = httpUrls.get(httpUrl);
    if (otherHttp !== undefined) throw new UsageError(`${what}: nodes ${otherHttp} and ${id} have the same HTTP URL ${httpUrl}`);
    httpUrls.set(httpUrl, id);
    peers.push({ id, raftHost: raft.host, raftPort: raft.port, httpUrl });
  }
  return peers.sort((a, b) => a.id - b.id);
}

/** Formats a peer list in the syntax parsePeers reads. */
export function formatPeers(peers: readonly PeerSpec[]): string {
  // An IPv6 host goes in brackets, or its colons would be read as the port's.
  return peers.map((p) => `${p.id}=${formatMemberAddress(p)}`).join(',');
}

/** The endpoints of the default local cluster (`tsraft start` with default options). */
export const DEFAULT_ENDPOINTS = 'http://127.0.0.1:8000,http://127.0.0.1:8001,http://127.0.0.1:8002';

/** Renders rows as an aligned text table (first row = header), numbers right-aligned. */
export function formatTable(rows: readonly (readonly string[])[], rightAlign: ReadonlySet<number> = new Set()): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  const line = (row: readonly string[]): string =>
    row
      .map((cell, i) => (rightAlign.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out: string[] = [];
  rows.forEach((row, i) => {
    out.push(line(row));
    if (i === 0) out.push(widths.map((w) => '-'.repeat(w)).join('  '));
  });
  return out.join('\n');
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
