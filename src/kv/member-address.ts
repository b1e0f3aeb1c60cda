/**
 * A member's address, as configurations (RaftNode's `Membership.addresses`, the cluster identity
 * file) carry it: `HOST:PORT/HTTP-URL`, the Raft transport's address then the base URL of the
 * member's HTTP API, e.g. `127.0.0.1:7003/http://127.0.0.1:8003` or `[::1]:7003/http://[::1]:8003`.
 * It is exactly a `--peers` entry of the CLI without its `ID=`, and the CLI's parsers
 * (cli/common.ts) are these, so an address a node accepts is one the CLI accepts, and back.
 *
 * Parsing is strict: a host is an IPv4 address, a hostname or a bracketed IPv6 address; a port is
 * 1..65535 and explicit; the URL is a plain `http://host:port` base URL (no path, query,
 * credentials or fragment), `https://host:port` for a member that serves HTTPS. The address travels in the log and every member reads it back, so a
 * sloppy one would be a problem on every member at once.
 */
import { isIPv6 } from 'node:net';

/** An address that does not parse; the message names `what` and says what was expected. */
export class MemberAddressError extends Error {
  override readonly name = 'MemberAddressError';
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** A parsed member address: where its Raft transport listens and where its HTTP API answers. */
export interface ParsedMemberAddress {
  readonly raftHost: string;
  readonly raftPort: number;
  /** `http://host:port` (or `https://`), without a trailing slash. */
  readonly httpUrl: string;
}

/** The member address syntax, for error messages. */
export const MEMBER_ADDRESS_SYNTAX = 'HOST:PORT/http://HOST:PORT (e.g. 127.0.0.1:7003/http://127.0.0.1:8003)';

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function validHost(host: string): boolean {
  const v4 = IPV4.exec(host);
  if (v4 !== null) return v4.slice(1).every((part) => Number(part) <= 255);
  if (/^\d+(\.\d+)*$/.test(host)) return false; // looks numeric but is not a valid IPv4 address
  return HOSTNAME.test(host);
}

/** A TCP port: an integer 1..65535 (0 too when `allowZero`, meaning "any free port"). */
export function parsePort(text: string, what: string, allowZero = false): number {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) throw new MemberAddressError(`${what}: port must be a number, got ${JSON.stringify(text)}`);
  const port = Number(trimmed);
  const min = allowZero ? 0 : 1;
  if (port < min || port > 65535) throw new MemberAddressError(`${what}: port ${trimmed} is out of range (${min}..65535)`);
  return port;
}

/** `host:port` (IPv4 address or hostname; `[v6]:port` for IPv6). */
export function parseHostPort(text: string, what: string, allowZeroPort = false): HostPort {
  const trimmed = text.trim();
  let host: string;
  let portText: string;
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:(.*)$/.exec(trimmed);
  if (v6 !== null) {
    host = v6[1]!;
    portText = v6[2]!;
    if (!isIPv6(host)) throw new MemberAddressError(`${what}: invalid IPv6 address ${JSON.stringify(host)} in ${JSON.stringify(text)}`);
  } else {
    const colon = trimmed.lastIndexOf(':');
    if (colon <= 0) throw new MemberAddressError(`${what}: expected HOST:PORT, got ${JSON.stringify(text)}`);
    host = trimmed.slice(0, colon);
    portText = trimmed.slice(colon + 1);
    if (!validHost(host)) throw new MemberAddressError(`${what}: invalid host ${JSON.stringify(host)} in ${JSON.stringify(text)}`);
  }
  return { host, port: parsePort(portText, `${what} (${JSON.stringify(text)})`, allowZeroPort) };
}

/** An http:// or https:// base URL with host and an explicit port, returned without a trailing slash. */
export function parseHttpUrl(text: string, what: string): string {
  // Checked first, so an out-of-range port is reported as such rather than as an invalid URL.
  const explicitPort = /^https?:\/\/(?:\[[^\]]*\]|[^/:]*):(\d+)\/?$/i.exec(text.trim());
  if (explicitPort !== null) parsePort(explicitPort[1]!, `${what} (${JSON.stringify(text)})`);
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new MemberAddressError(`${what}: invalid URL ${JSON.stringify(text)} (expected e.g. http://127.0.0.1:8000)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new MemberAddressError(`${what}: only http:// and https:// URLs are supported, got ${JSON.stringify(text)}`);
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new MemberAddressError(`${what}: URL must be a plain base URL like http://127.0.0.1:8000, got ${JSON.stringify(text)}`);
  }
  if (url.pathname !== '/' && url.pathname !== '') {
    throw new MemberAddressError(`${what}: URL must have no path (got ${JSON.stringify(url.pathname)} in ${JSON.stringify(text)})`);
  }
  // new URL() drops a default port (80): insist on an explicit one.
  if (explicitPort === null) throw new MemberAddressError(`${what}: URL needs an explicit port, e.g. http://127.0.0.1:8000, got ${JSON.stringify(text)}`);
  return `${url.protocol}//${url.host}`;
}

/** `host:port`, an IPv6 host in brackets (or its colons would be read as the port's). */
export function formatHostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The address string for a member: `HOST:PORT/HTTP-URL`. */
export function formatMemberAddress(member: ParsedMemberAddress): string {
  return `${formatHostPort(member.raftHost, member.raftPort)}/${member.httpUrl.replace(/\/+$/, '')}`;
}

/** Parses `HOST:PORT/HTTP-URL`; throws MemberAddressError naming `what`. */
export function parseMemberAddress(text: string, what = 'member address'): ParsedMemberAddress {
  if (typeof text !== 'string') throw new MemberAddressError(`${what}: expected a string ${MEMBER_ADDRESS_SYNTAX}`);
  // The Raft address holds no '/', so the first one starts the URL.
  const slash = text.indexOf('/');
  if (slash < 0) throw new MemberAddressError(`${what}: ${JSON.stringify(text)} has no HTTP URL; expected ${MEMBER_ADDRESS_SYNTAX}`);
  const raft = parseHostPort(text.slice(0, slash), `${what} (raft address)`);
  const httpUrl = parseHttpUrl(text.slice(slash + 1), `${what} (HTTP URL)`);
  return { raftHost: raft.host, raftPort: raft.port, httpUrl };
}
