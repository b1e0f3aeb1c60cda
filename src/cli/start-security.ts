/**
 * What `tsraft start --tls` and `--auth` set up inside the data directory for a development
 * cluster: a CA and one certificate per node (tls/), an auth file with one admin token
 * (auth.json, admin.token). Everything is reused on a restart and remade only when unusable.
 * Secrets are written with mode 0600; nothing here is meant for production, where the operator
 * makes certificates with `tsraft certs` and tokens with `tsraft tokens` (README "Running securely").
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, createNodeCertificate, peerIdentity, type CertificateAndKey } from '../security/certs.js';
import { parseAuthFile } from '../security/auth-file.js';
import { ConfigError } from '../runtime/errors.js';
import { readClusterIdentity } from '../storage/cluster-identity.js';
import { errorCode } from '../storage/fs-util.js';
import { CliError, EXIT, errorMessage, type PeerSpec } from './common.js';
import { addToken } from './tokens.js';

/** The hosts a dev node certificate names: where `tsraft start` runs its nodes. */
const DEV_HOSTS = ['127.0.0.1', 'localhost'];

/** Where `tsraft start --tls` keeps its dev CA and node certificates, inside the data directory. */
export const TLS_DIR = 'tls';

/** The files of node `id`'s peer TLS in `dir` (see ensureDevCertificates). */
export function devCertificateFiles(dir: string, id: number): { ca: string; cert: string; key: string } {
  return { ca: join(dir, 'ca.crt'), cert: join(dir, `node-${id}.crt`), key: join(dir, `node-${id}.key`) };
}

/** Writes a file atomically (temp file, rename); `secret`: mode 0600. */
function writeAtomic(path: string, text: string, secret: boolean): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: secret ? 0o600 : 0o644 });
  if (secret) chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

/** Whether `cert` is a valid certificate (now) signed by `ca` and naming node `id` of `clusterId`. */
function usableNodeCert(ca: X509Certificate, certPem: string, clusterId: string, id: number): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const now = Date.now();
    if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo) - 86_400_000) return false;
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false;
    const identity = peerIdentity(cert);
    return identity !== null && identity.clusterId === clusterId && identity.nodeId === id;
  } catch {
    return false;
  }
}

/**
 * `tsraft start --tls`: a development CA (ca.crt, ca.key) and one certificate per node
 * (node-<i>.crt, node-<i>.key) in `dir`, named as `tsraft certs` names them, made with security/certs.ts. Existing files are
 * reused (a restart); a node certificate that does not name that node of this cluster, is not
 * signed by the CA or expires within a day is made again. Keys are written with mode 0600.
 * Answers what was made, for the start line.
 */
export async function ensureDevCertificates(dir: string, clusterId: string, ids: readonly number[]): Promise<{ made: number; reused: number; caMade: boolean }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caPath = join(dir, 'ca.crt');
  const caKeyPath = join(dir, 'ca.key');
  let caPem = readIfExists(caPath);
  let caKeyPem = readIfExists(caKeyPath);
  let caMade = false;
  let caCert: X509Certificate | undefined;
  try {
    if (caPem !== undefined && caKeyPem !== undefined) caCert = new X509Certificate(caPem);
  } catch {
    caCert = undefined;
  }
  if (caCert === undefined || caKeyPem === undefined || caPem === undefined) {
    const ca = await createCa({ commonName: `tsraft dev CA (${clusterId})` });
    caPem = ca.cert;
    caKeyPem = ca.key;
    writeAtomic(caKeyPath, caKeyPem, true);
    writeAtomic(caPath, caPem, false);
    caCert = new X509Certificate(caPem);
    caMade = true;
  }
  const ca: CertificateAndKey = { cert: caPem, key: caKeyPem };
  let made = 0;
  let reused = 0;
  for (const id of ids) {
    const files = devCertificateFiles(dir, id);
    const cert = readIfExists(files.cert);
    if (!caMade && cert !== undefined && existsSync(files.key) && usableNodeCert(caCert, cert, clusterId, id)) {
      chmodSync(files.key, 0o600);
      reused++;
      continue;
    }
    const node = await createNodeCertificate(ca, { clusterId, nodeId: id, hosts: DEV_HOSTS });
    writeAtomic(files.key, node.key, true);
    writeAtomic(files.cert, node.cert, false);
    made++;
  }
  return { made, reused, caMade };
}

/**
 * Refuses node data first started with the other HTTP scheme (`--tls` or not): the configurations
 * in its log name the members' old URLs, which the nodes hand to clients in redirects, so clients
 * would be sent to a scheme the port does not speak. Data without an identity is left alone.
 */
export async function checkHttpScheme(dataDir: string, tls: boolean, peers: readonly PeerSpec[]): Promise<void> {
  const wanted = tls ? 'https://' : 'http://';
  for (const p of peers) {
    const identity = await readClusterIdentity(join(dataDir, `node-${p.id}`)).catch(() => null);
    const recorded = identity?.members.find((m) => m.id === p.id)?.address;
    if (recorded === undefined || recorded.includes(`/${wanted}`)) continue;
    throw new CliError(
      `cannot start${tls ? ' with --tls' : ' without --tls'}: the data in ${dataDir} was first started ${tls ? 'without' : 'with'} it ` +
        `(node ${p.id} is recorded as ${recorded}), and the cluster's configuration keeps those URLs for redirects. ` +
        `Start it ${tls ? 'without' : 'with'} --tls, or with --fresh to begin anew.`,
      EXIT.usage,
    );
  }
}

/** Where `tsraft start --auth` keeps the auth file its nodes read, and the admin token it made. */
export const AUTH_FILE = 'auth.json';
export const ADMIN_TOKEN_FILE = 'admin.token';
/** The principal of the token `tsraft start --auth` makes. */
const DEV_ADMIN = 'admin';

/**
 * `tsraft start --auth`: the auth file `<dataDir>/auth.json` (made on the first start, with one
 * token for principal "admin" with the admin role) and that token in `<dataDir>/admin.token`
 * (mode 0600), which this process uses itself and tells the user to export. On a restart both are
 * reused, and tokens added with `tsraft tokens add --file <dataDir>/auth.json` stay. Answers the
 * token and whether it was made now. CliError when the auth file is damaged or its admin token is
 * gone (only the token's hash is in the auth file, so it cannot be recovered).
 */
export function ensureDevAuth(dataDir: string): { token: string; made: boolean } {
  const authPath = join(dataDir, AUTH_FILE);
  const tokenPath = join(dataDir, ADMIN_TOKEN_FILE);
  if (!existsSync(authPath)) {
    const token = addToken(authPath, DEV_ADMIN, ['admin']);
    writeAtomic(tokenPath, `${token}\n`, true);
    return { token, made: true };
  }
  try {
    parseAuthFile(readFileSync(authPath, 'utf8'), authPath);
  } catch (error) {
    const why = error instanceof ConfigError ? error.problems.join('; ') : errorMessage(error);
    throw new CliError(`cannot start with --auth: ${why} (fix it, or remove it to make a new one)`, EXIT.usage);
  }
  const token = readIfExists(tokenPath)?.trim();
  if (token === undefined || token === '') {
    throw new CliError(
      `cannot start with --auth: ${authPath} exists but ${tokenPath}, the admin token this command uses, is missing or empty. ` +
        `Add a token and keep it there: tsraft tokens add --file ${authPath} --name admin2 --role admin --quiet > ${tokenPath}`,
      EXIT.usage,
    );
  }
  chmodSync(tokenPath, 0o600);
  return { token, made: false };
}
