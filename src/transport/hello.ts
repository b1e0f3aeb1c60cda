/**
 * The hello: the first frame on every peer connection, naming the cluster, the dialling node, the
 * node it believes it calls and (version 2) where the dialler accepts Raft connections, so that a
 * node that does not know the dialler yet can answer it. The format is in tcp.ts's header.
 */
import * as net from 'node:net';
import { ByteReader, ByteWriter, CodecError } from '../codec/codec.js';
import type { NodeId } from '../core/messages.js';

/** The hello frame's payload. */
export interface Hello {
  readonly clusterId: string;
  /** The dialling node. */
  readonly from: NodeId;
  /** The node the dialler believes it is calling. */
  readonly to: NodeId;
  /** Where the dialling node accepts Raft connections, if it said (version 2 only). */
  readonly address?: AdvertisedAddress;
}

export interface AdvertisedAddress {
  readonly host: string;
  readonly port: number;
}

/** The magic of the hello this transport sends (version 2, with the advertised address). */
export const HELLO_MAGIC = 'TSRAFT2';
/** The magic of the version 1 hello (no address), still accepted. */
export const HELLO_MAGIC_V1 = 'TSRAFT1';
export const MAX_CLUSTER_ID_BYTES = 255;
/** The longest advertised host in a hello, in bytes. */
export const MAX_ADVERTISED_HOST_BYTES = 255;
const MAGIC_V1 = new TextEncoder().encode(HELLO_MAGIC_V1);
const MAGIC_V2 = new TextEncoder().encode(HELLO_MAGIC);
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** A DNS name: dot-separated labels of letters, digits, '-' and '_' (not at a label's ends), at most 63 each. */
const HOSTNAME = /^(?:[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$/;

/**
 * Whether `host` may be advertised in a hello: a hostname or an IPv4/IPv6 literal (no brackets) of
 * 1..MAX_ADVERTISED_HOST_BYTES ASCII bytes, and not an unspecified address (0.0.0.0, ::), which
 * names no one to dial.
 */
export function isAdvertisableHost(host: string): boolean {
  if (host.length === 0 || host.length > MAX_ADVERTISED_HOST_BYTES || !/^[\x21-\x7e]+$/.test(host)) return false;
  const ip = net.isIP(host);
  if (ip === 4) return host !== '0.0.0.0';
  if (ip === 6) return !/^[0:]*$/.test(host.split('%')[0]!);
  return HOSTNAME.test(host);
}

/** Whether `host` is a wildcard listen address, which cannot be advertised. */
export function isWildcardHost(host: string): boolean {
  if (host === '' || host === '0.0.0.0') return true;
  return net.isIPv6(host) && /^[0:]*$/.test(host.split('%')[0]!);
}

/**
 * The payload of a hello frame (without the length prefix): version 2 by default, version 1 (which
 * cannot carry an address) on request. Throws on a hello that could not be parsed back.
 */
export function encodeHello(hello: Hello, version: 1 | 2 = 2): Uint8Array {
  const id = new TextEncoder().encode(hello.clusterId);
  if (id.length > MAX_CLUSTER_ID_BYTES) throw new Error(`cluster id longer than ${MAX_CLUSTER_ID_BYTES} bytes`);
  const address = hello.address;
  if (address !== undefined) {
    if (version === 1) throw new Error('a version 1 hello carries no address');
    if (!isAdvertisableHost(address.host)) throw new Error(`cannot advertise host ${JSON.stringify(address.host)}`);
    if (!Number.isInteger(address.port) || address.port < 1 || address.port > 65535) throw new RangeError(`advertised port must be 1..65535, got ${address.port}`);
  }
  const magic = version === 1 ? MAGIC_V1 : MAGIC_V2;
  const w = new ByteWriter(magic.length + 2 + id.length + 16 + (address === undefined ? 1 : 2 + address.host.length + 3));
  for (const b of magic) w.writeByte(b);
  w.writeBytes(id, 'hello.clusterId');
  w.writeVarint(hello.from, 'hello.from');
  w.writeVarint(hello.to, 'hello.to');
  if (version === 2) {
    w.writeBytes(address === undefined ? new Uint8Array(0) : new TextEncoder().encode(address.host), 'hello.address.host');
    if (address !== undefined) w.writeVarint(address.port, 'hello.address.port');
  }
  return w.finish();
}

/** Parses a hello payload (version 1 or 2); throws CodecError if it is not one. */
export function decodeHello(payload: Uint8Array): Hello {
  const r = new ByteReader(payload);
  let version: 1 | 2 = 2;
  for (let i = 0; i < MAGIC_V2.length; i++) {
    const b = r.readByte('hello magic');
    if (i === MAGIC_V2.length - 1 && b === MAGIC_V1[i]) version = 1;
    else if (b !== MAGIC_V2[i]) throw new CodecError(`bad hello magic (expected "${HELLO_MAGIC}" or "${HELLO_MAGIC_V1}")`);
  }
  const idBytes = r.readBytes();
  if (idBytes.length > MAX_CLUSTER_ID_BYTES) throw new CodecError(`hello cluster id longer than ${MAX_CLUSTER_ID_BYTES} bytes`);
  let clusterId: string;
  try {
    clusterId = utf8Decoder.decode(idBytes);
  } catch {
    throw new CodecError('hello cluster id is not valid UTF-8');
  }
  const from = r.readVarint();
  const to = r.readVarint();
  if (version === 1) {
    r.expectEnd('hello');
    return { clusterId, from, to };
  }
  const hostBytes = r.readBytes();
  if (hostBytes.length === 0) {
    r.expectEnd('hello');
    return { clusterId, from, to };
  }
  if (hostBytes.length > MAX_ADVERTISED_HOST_BYTES) throw new CodecError(`hello address host longer than ${MAX_ADVERTISED_HOST_BYTES} bytes`);
  let host = '';
  for (const b of hostBytes) host += String.fromCharCode(b);
  if (!isAdvertisableHost(host)) throw new CodecError(`hello address host ${JSON.stringify(host)} is not a hostname or IP address`);
  const port = r.readVarint();
  if (port < 1 || port > 65535) throw new CodecError(`hello address port ${port} is not in 1..65535`);
  r.expectEnd('hello');
  return { clusterId, from, to, address: { host, port } };
}

