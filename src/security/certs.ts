/**
 * Certificates for mutual TLS between the nodes of a cluster (and for clients): a private CA, node
 * certificates and client certificates, all ECDSA P-256 with SHA-256, as PEM.
 *
 * Identity. A node certificate names its node in a subject alternative name URI
 *
 *   tsraft://<clusterId>/node/<nodeId>
 *
 * where `<clusterId>` is the cluster id percent-encoded with `encodeURIComponent` (so any UTF-8
 * cluster id fits; "prod" stays "prod") and `<nodeId>` is the decimal node id without leading
 * zeros. A certificate carries at most one such URI; `peerIdentity()` reads it back (and answers
 * null for a certificate with none, with several, or with one that does not parse). Its other SAN
 * entries are the DNS names and IP addresses given in `hosts`, for tools that verify hostnames; the
 * TCP transport itself checks the identity URI instead. Node certificates may authenticate both a
 * server and a client (extended key usage serverAuth + clientAuth): a node both accepts and dials.
 *
 * A client certificate (clientAuth only) has no node identity: its subject is `CN=<name>` with one
 * `O=<role>` attribute per role (read back with `clientIdentity()`); it can never speak as a node.
 *
 * The CA is self-signed (basic constraints CA, path length 0: it signs only leaves). Nothing here
 * verifies a chain: TLS does that against the CA (see `TcpTransportOptions.tls`), and `peerIdentity`
 * only reads a certificate that was already verified.
 *
 * Generating keys and certificates loads @peculiar/x509 on first use (it is slow to load);
 * `peerIdentity` and `clientIdentity` need only node:crypto.
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import type * as X509 from '@peculiar/x509';

/** A certificate and its private key, PEM encoded (the key as unencrypted PKCS #8). */
export interface CertificateAndKey {
  readonly cert: string;
  readonly key: string;
}

/** What a node certificate says about its holder. */
export interface PeerIdentity {
  readonly clusterId: string;
  readonly nodeId: number;
}

/** What a client certificate says about its holder. */
export interface ClientIdentity {
  readonly name: string;
  readonly roles: readonly string[];
}

/** Anything a certificate can be read from: node:crypto's X509Certificate, a TLS peer certificate (its `raw` DER), DER bytes or PEM. */
export type CertificateInput = crypto.X509Certificate | { readonly raw: Uint8Array } | Uint8Array | string;

export interface CreateCaOptions {
  readonly commonName: string;
  /** Validity in days from now. Default 3650. */
  readonly days?: number;
}

export interface CreateNodeCertificateOptions {
  readonly clusterId: string;
  readonly nodeId: number;
  /** DNS names and IP addresses (IPv4 or IPv6 literals) for the subject alternative names; may be empty. */
  readonly hosts: readonly string[];
  /** Validity in days from now. Default 365. */
  readonly days?: number;
}

export interface CreateClientCertificateOptions {
  readonly name: string;
  /** One `O=` attribute each, in this order. Each 1..64 characters of [A-Za-z0-9_.:-]. */
  readonly roles?: readonly string[];
  /** Validity in days from now. Default 365. */
  readonly days?: number;
}

const NODE_URI = /^tsraft:\/\/([^/?#]*)\/node\/(0|[1-9][0-9]{0,15})$/;
const ROLE = /^[A-Za-z0-9_.:-]{1,64}$/;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** notBefore is set this far in the past, for clocks that lag a little. */
const CLOCK_SKEW_MS = 5 * 60_000;

/** The SAN URI that names node `nodeId` of cluster `clusterId` (see the module comment). */
export function nodeIdentityUri(clusterId: string, nodeId: number): string {
  checkNodeId(nodeId);
  return `tsraft://${encodeURIComponent(clusterId)}/node/${nodeId}`;
}

/** Parses a node identity URI; null if `uri` is not one. */
export function parseNodeIdentityUri(uri: string): PeerIdentity | null {
  const m = NODE_URI.exec(uri);
  if (m === null) return null;
  let clusterId: string;
  try {
    clusterId = decodeURIComponent(m[1]!);
  } catch {
    return null;
  }
  const nodeId = Number(m[2]);
  if (!Number.isSafeInteger(nodeId)) return null;
  return { clusterId, nodeId };
}

/**
 * The node identity of a certificate: its one `tsraft://<clusterId>/node/<id>` SAN URI. Null for a
 * certificate without one (a client certificate, a foreign certificate), with more than one, or
 * that does not parse. Does not verify the certificate: use it on one that TLS verified.
 */
export function peerIdentity(cert: CertificateInput): PeerIdentity | null {
  const x = toX509(cert);
  if (x === null) return null;
  let found: PeerIdentity | null = null;
  let uris = 0;
  for (const entry of subjectAltNames(x.subjectAltName)) {
    if (entry.type !== 'URI' || !entry.value.startsWith('tsraft://')) continue;
    const id = parseNodeIdentityUri(entry.value);
    if (id === null) continue;
    uris++;
    found = id;
  }
  return uris === 1 ? found : null;
}

/**
 * The client identity of a certificate: its subject's single CN as the name and its O attributes
 * as roles. Null if it has no single CN, or if it is a node certificate (a node is not a client).
 */
export function clientIdentity(cert: CertificateInput): ClientIdentity | null {
  const x = toX509(cert);
  if (x === null || peerIdentity(x) !== null) return null;
  const names: string[] = [];
  const roles: string[] = [];
  // node:crypto prints the subject one attribute per line, with special characters escaped.
  for (const line of x.subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'CN') names.push(value);
    else if (key === 'O') roles.push(value);
  }
  if (names.length !== 1) return null;
  return { name: names[0]!, roles };
}

/** A new self-signed CA (P-256). Its `key` signs node and client certificates: keep it secret. */
export async function createCa(options: CreateCaOptions): Promise<CertificateAndKey> {
  const x509 = await lib();
  checkName(options.commonName, 'commonName');
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [options.commonName] }],
    ...validity(options.days ?? 3650),
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await exportKey(keys.privateKey) };
}

/**
 * A certificate for node `nodeId` of cluster `clusterId`, signed by `ca`: its identity URI plus
 * `hosts` as SANs, usable as a TLS server and client.
 */
export async function createNodeCertificate(ca: CertificateAndKey, options: CreateNodeCertificateOptions): Promise<CertificateAndKey> {
  const x509 = await lib();
  const uri = nodeIdentityUri(options.clusterId, options.nodeId);
  const sans: X509.JsonGeneralName[] = [{ type: 'url', value: uri }];
  for (const host of options.hosts) {
    const kind = net.isIP(host);
    if (kind !== 0) sans.push({ type: 'ip', value: host });
    else if (/^(?=.{1,253}$)[A-Za-z0-9*](?:[A-Za-z0-9_.*-]*[A-Za-z0-9])?$/.test(host)) sans.push({ type: 'dns', value: host });
    else throw new Error(`hosts: ${JSON.stringify(host)} is neither a DNS name nor an IP address`);
  }
  return issue(x509, ca, {
    subject: [{ CN: [`tsraft node ${options.nodeId}`] }, { OU: [`cluster ${options.clusterId}`] }],
    days: options.days ?? 365,
    usages: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    sans,
  });
}

/** A client certificate signed by `ca`: `CN=<name>`, one `O=<role>` per role, clientAuth only, no node identity. */
export async function createClientCertificate(ca: CertificateAndKey, options: CreateClientCertificateOptions): Promise<CertificateAndKey> {
  const x509 = await lib();
  checkName(options.name, 'name');
  const roles = options.roles ?? [];
  for (const role of roles) {
    if (!ROLE.test(role)) throw new Error(`role ${JSON.stringify(role)} must be 1..64 characters of [A-Za-z0-9_.:-]`);
  }
  return issue(x509, ca, {
    subject: [{ CN: [options.name] }, ...roles.map((role) => ({ O: [role] }))],
    days: options.days ?? 365,
    usages: [x509.ExtendedKeyUsage.clientAuth],
    sans: [],
  });
}

async function issue(
  x509: typeof X509,
  ca: CertificateAndKey,
  leaf: { subject: X509.JsonName; days: number; usages: string[]; sans: X509.JsonGeneralName[] },
): Promise<CertificateAndKey> {
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await importKey(ca.key);
  const keys = await generateKeys();
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(leaf.usages),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert),
  ];
  if (leaf.sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(leaf.sans));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: leaf.subject,
    issuer: caCert.subject,
    ...validity(leaf.days),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: SIGNING,
    extensions,
  });
  return { cert: cert.toString('pem') + '\n', key: await exportKey(keys.privateKey) };
}

let loaded: Promise<typeof X509> | null = null;

/** @peculiar/x509, loaded once (it needs reflect-metadata first) and set to use node's WebCrypto. */
function lib(): Promise<typeof X509> {
  loaded ??= (async () => {
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(crypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    return x509;
  })();
  return loaded;
}

async function generateKeys(): Promise<crypto.webcrypto.CryptoKeyPair> {
  return crypto.webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']) as Promise<crypto.webcrypto.CryptoKeyPair>;
}

async function exportKey(key: crypto.webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await crypto.webcrypto.subtle.exportKey('pkcs8', key));
  return crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
}

async function importKey(pem: string): Promise<crypto.webcrypto.CryptoKey> {
  const der = crypto.createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return crypto.webcrypto.subtle.importKey('pkcs8', der, EC, false, ['sign']);
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  if (!Number.isFinite(days) || days <= 0 || days > 100 * 366) throw new Error(`days must be in (0, 36600], got ${String(days)}`);
  const now = Date.now();
  // Whole seconds: X.509 times have no fractions.
  const notBefore = new Date(Math.floor((now - CLOCK_SKEW_MS) / 1000) * 1000);
  const notAfter = new Date(Math.floor((now + days * DAY_MS) / 1000) * 1000);
  return { notBefore, notAfter };
}

/** 16 random bytes as hex, positive (top bit clear) and not starting with a zero byte. */
function serial(): string {
  const bytes = crypto.randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function checkNodeId(nodeId: number): void {
  if (!Number.isSafeInteger(nodeId) || nodeId < 0) throw new Error(`nodeId must be a non-negative safe integer, got ${String(nodeId)}`);
}

function checkName(name: string, what: string): void {
  if (name.length === 0 || name.length > 64 || /[\x00-\x1f\x7f]/.test(name)) throw new Error(`${what} must be 1..64 printable characters`);
}

function toX509(cert: CertificateInput): crypto.X509Certificate | null {
  if (cert instanceof crypto.X509Certificate) return cert;
  try {
    if (typeof cert === 'string') return new crypto.X509Certificate(cert);
    if (cert instanceof Uint8Array) return new crypto.X509Certificate(cert);
    if (cert.raw instanceof Uint8Array) return new crypto.X509Certificate(cert.raw);
  } catch {
    return null;
  }
  return null;
}

/**
 * Splits node:crypto's `subjectAltName` text: entries `TYPE:value` separated by ", ", where a
 * value with special characters is printed as a JSON string.
 */
function subjectAltNames(text: string | undefined): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = [];
  if (text === undefined) return out;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      end = j + 1;
      try {
        value = JSON.parse(text.slice(colon + 1, end)) as string;
      } catch {
        break;
      }
    } else {
      const comma = text.indexOf(', ', colon + 1);
      end = comma < 0 ? text.length : comma;
      value = text.slice(colon + 1, end);
    }
    out.push({ type, value });
    if (text.slice(end, end + 2) !== ', ') break;
    i = end + 2;
  }
  return out;
}
