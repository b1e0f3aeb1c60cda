/**
 * `tsraft certs init|node|client`: a private CA and the certificates signed by it, as PEM files in
 * one directory (security/certs.ts makes them):
 *
 *     tsraft certs init   --dir ./certs                     ca.crt, ca.key
 *     tsraft certs node   --dir ./certs --id 0              node-0.crt, node-0.key
 *     tsraft certs client --dir ./certs --name ops --role admin   client-ops.crt, client-ops.key
 *
 * Private keys are written with mode 0600, certificates 0644. Existing files are never
 * overwritten without --force (and nothing is written when any of the pair exists). Every error is
 * one line: exit 2 for a bad option, a missing CA or files in the way (fix the command line), 1 for
 * an I/O failure or a CA that cannot be read.
 */
import * as crypto from 'node:crypto';
import { closeSync, existsSync, fchmodSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import * as net from 'node:net';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import {
  createCa,
  createClientCertificate,
  createNodeCertificate,
  nodeIdentityUri,
  type CertificateAndKey,
} from '../security/certs.js';
import { isPrincipalName, PRINCIPAL_NAME_RULE, ROLES } from '../security/auth-file.js';
import { CliError, EXIT, UsageError, errorMessage, parseIntOption, parseNodeId } from './common.js';
import { printLine } from './kv-common.js';

export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';
export const DEFAULT_CLUSTER_ID = 'tsraft';
export const DEFAULT_HOSTS: readonly string[] = ['127.0.0.1', 'localhost'];
export const CLIENT_ROLES: readonly string[] = ROLES;
const DEFAULT_CA_DAYS = 3650;
const DEFAULT_LEAF_DAYS = 365;
const MAX_DAYS = 36600;

const DNS_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
/** A DNS name (optionally with a leading `*.` wildcard), 1..253 characters. */
const DNS_NAME = new RegExp(`^(?=.{1,253}$)(?:\\*\\.)?${DNS_LABEL}(?:\\.${DNS_LABEL})*\\.?$`);

interface CommonOptions {
  dir: string;
  days?: string;
  force?: boolean;
}

interface InitOptions extends CommonOptions {
  name: string;
}

interface NodeCertOptions extends CommonOptions {
  id: string;
  clusterId: string;
  host?: string[];
}

interface ClientCertOptions extends CommonOptions {
  name: string;
  role?: string[];
}

/** The --dir, resolved; rejects an empty one. */
function parseDir(text: string): string {
  if (text.trim() === '') throw new UsageError('--dir: expected a directory');
  return resolve(text);
}

function parseDays(text: string | undefined, fallback: number): number {
  return text === undefined ? fallback : parseIntOption(text, '--days', 1, MAX_DAYS);
}

/** A client name usable in `client-<name>.crt`: a principal's name (the API's rule, security/auth-file.ts), safe in file names. */
export function parseClientName(text: string): string {
  if (!isPrincipalName(text)) {
    throw new UsageError(`--name: ${JSON.stringify(text)} is not a safe name; use ${PRINCIPAL_NAME_RULE}`);
  }
  return text;
}

/** A CA common name: 1..64 printable characters. */
export function parseCaName(text: string): string {
  if (text.length === 0 || text.length > 64 || /[\x00-\x1f\x7f]/.test(text)) throw new UsageError(`--name: the CA name must be 1..64 printable characters, got ${JSON.stringify(text)}`);
  return text;
}

/** A cluster id: 1..255 bytes, no control characters. */
export function parseClusterId(text: string): string {
  if (text === '' || Buffer.byteLength(text) > 255 || /[\x00-\x1f\x7f]/.test(text)) {
    throw new UsageError(`--cluster-id: must be 1..255 bytes without control characters, got ${JSON.stringify(text)}`);
  }
  return text;
}

/** A host for a node certificate's SANs: an IPv4/IPv6 literal or a DNS name. */
export function parseCertHost(text: string): string {
  const host = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (net.isIP(host) !== 0) return host;
  // A name whose last label is all digits is a mistyped IP address (no top-level domain is numeric).
  if (DNS_NAME.test(host) && !/(?:^|\.)\d+\.?$/.test(host)) return host.replace(/\.$/, '').toLowerCase();
  throw new UsageError(`--host: ${JSON.stringify(text)} is neither an IP address nor a DNS name`);
}

/** The hosts (comma-separated values allowed), deduplicated; the defaults when none are given. */
export function parseCertHosts(values: readonly string[] | undefined): string[] {
  const parts = (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
  if (parts.length === 0) return [...DEFAULT_HOSTS];
  return [...new Set(parts.map(parseCertHost))];
}

/** The roles (comma-separated values allowed), each one of CLIENT_ROLES, deduplicated, in order. */
export function parseRoles(values: readonly string[] | undefined): string[] {
  const parts = (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
  for (const role of parts) {
    if (!CLIENT_ROLES.includes(role)) throw new UsageError(`--role: ${JSON.stringify(role)} is not a role; expected one of ${CLIENT_ROLES.join(', ')}`);
  }
  return [...new Set(parts)];
}

/** Quotes a path for a shell command line, only when it needs it. */
export function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

export function ioError(what: string, path: string, error: unknown): CliError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    code === 'EACCES' || code === 'EPERM'
      ? 'permission denied'
      : code === 'ENOENT'
        ? 'no such directory'
        : code === 'ENOTDIR'
          ? 'a part of the path is not a directory'
          : code === 'EROFS'
            ? 'read-only file system'
            : code === 'ENOSPC'
              ? 'no space left on device'
              : errorMessage(error);
  return new CliError(`${what} ${path}: ${reason}`, EXIT.failed);
}

/** Makes sure `dir` is a directory (creating it, mode 0700, when `create`). */
function ensureDir(dir: string, create: boolean): void {
  if (create) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('cannot create directory', dir, error);
    }
  }
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new CliError(`${dir} does not exist; run \`tsraft certs init --dir ${shellQuote(dir)}\` first`, EXIT.usage);
    throw ioError('cannot read', dir, error);
  }
  if (!isDir) throw new CliError(`${dir} is not a directory`, EXIT.usage);
}

/** Refuses (before anything is written) when any of `paths` exists and --force was not given. */
function checkOverwrite(paths: readonly string[], force: boolean): void {
  if (force) return;
  const existing = paths.filter((p) => existsSync(p));
  if (existing.length > 0) {
    throw new CliError(`refusing to overwrite ${existing.join(' and ')} (${existing.length === 1 ? 'it already exists' : 'they already exist'}); pass --force to replace ${existing.length === 1 ? 'it' : 'them'}`, EXIT.usage);
  }
}

/** Writes `text` to `path` with `mode` (also when replacing a file with another mode). */
function writeFile(path: string, text: string, mode: number, force: boolean): void {
  let fd: number;
  try {
    fd = openSync(path, force ? 'w' : 'wx', mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new CliError(`refusing to overwrite ${path} (it already exists); pass --force to replace it`, EXIT.usage);
    throw ioError('cannot write', path, error);
  }
  try {
    fchmodSync(fd, mode);
    writeSync(fd, text);
  } catch (error) {
    throw ioError('cannot write', path, error);
  } finally {
    closeSync(fd);
  }
}

/** Writes a certificate (0644) and its key (0600): key first, so a cert never exists without its key. */
function writePair(certPath: string, keyPath: string, pair: CertificateAndKey, force: boolean): void {
  writeFile(keyPath, pair.key, 0o600, force);
  writeFile(certPath, pair.cert, 0o644, force);
}

/** Reads and checks the CA of `dir`: a CA certificate and the private key that matches it. */
export function readCa(dir: string): CertificateAndKey {
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  const missing = [certPath, keyPath].filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new CliError(`no CA in ${dir}: ${missing.join(' and ')} not found; run \`tsraft certs init --dir ${shellQuote(dir)}\` first`, EXIT.usage);
  }
  let cert: string;
  let key: string;
  try {
    cert = readFileSync(certPath, 'utf8');
  } catch (error) {
    throw ioError('cannot read', certPath, error);
  }
  try {
    key = readFileSync(keyPath, 'utf8');
  } catch (error) {
    throw ioError('cannot read', keyPath, error);
  }
  let x: crypto.X509Certificate;
  try {
    x = new crypto.X509Certificate(cert);
  } catch {
    throw new CliError(`${certPath} is not a PEM certificate`, EXIT.failed);
  }
  if (!x.ca) throw new CliError(`${certPath} is not a CA certificate`, EXIT.failed);
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey(key);
  } catch {
    throw new CliError(`${keyPath} is not an unencrypted PEM private key`, EXIT.failed);
  }
  if (!x.checkPrivateKey(privateKey)) throw new CliError(`${keyPath} is not the key of ${certPath}`, EXIT.failed);
  if (Date.parse(x.validTo) <= Date.now()) throw new CliError(`the CA certificate ${certPath} expired on ${x.validTo}; make a new CA with \`tsraft certs init --force\``, EXIT.failed);
  return { cert, key };
}

function validUntil(pem: string): string {
  return new Date(new crypto.X509Certificate(pem).validTo).toISOString().slice(0, 10);
}

/** Runs a library generator; a (not expected) error becomes one line. */
async function generate(what: string, make: () => Promise<CertificateAndKey>): Promise<CertificateAndKey> {
  try {
    return await make();
  } catch (error) {
    throw new CliError(`cannot create the ${what}: ${errorMessage(error)}`, EXIT.failed);
  }
}

export async function runCertsInit(options: InitOptions): Promise<void> {
  const dir = parseDir(options.dir);
  const name = parseCaName(options.name);
  const days = parseDays(options.days, DEFAULT_CA_DAYS);
  const force = options.force === true;
  ensureDir(dir, true);
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  checkOverwrite([certPath, keyPath], force);
  const ca = await generate('CA', () => createCa({ commonName: name, days }));
  writePair(certPath, keyPath, ca, force);
  printLine(`wrote ${certPath} (CA certificate "${name}", valid until ${validUntil(ca.cert)})`);
  printLine(`wrote ${keyPath} (CA private key, mode 0600: it signs every node and client certificate, keep it secret)`);
  printLine(`next: tsraft certs node --dir ${shellQuote(dir)} --id 0   (one per node), then tsraft certs client --dir ${shellQuote(dir)} --name <name> --role <role>`);
}

export async function runCertsNode(options: NodeCertOptions): Promise<void> {
  const dir = parseDir(options.dir);
  const nodeId = parseNodeId(options.id, '--id');
  const clusterId = parseClusterId(options.clusterId);
  const hosts = parseCertHosts(options.host);
  const days = parseDays(options.days, DEFAULT_LEAF_DAYS);
  const force = options.force === true;
  ensureDir(dir, false);
  const ca = readCa(dir);
  const certPath = join(dir, `node-${nodeId}.crt`);
  const keyPath = join(dir, `node-${nodeId}.key`);
  checkOverwrite([certPath, keyPath], force);
  const pair = await generate('node certificate', () => createNodeCertificate(ca, { clusterId, nodeId, hosts, days }));
  writePair(certPath, keyPath, pair, force);
  printLine(`wrote ${certPath} (node ${nodeId} of cluster ${JSON.stringify(clusterId)}: ${nodeIdentityUri(clusterId, nodeId)}, hosts ${hosts.join(', ')}; valid until ${validUntil(pair.cert)})`);
  printLine(`wrote ${keyPath} (its private key, mode 0600: copy it only to node ${nodeId})`);
  printLine(`next: tsraft certs node --dir ${shellQuote(dir)} --id ${nodeId + 1}${clusterId === DEFAULT_CLUSTER_ID ? '' : ` --cluster-id ${shellQuote(clusterId)}`}   (for the next node), or tsraft certs client --dir ${shellQuote(dir)} --name <name> --role <role>`);
}

export async function runCertsClient(options: ClientCertOptions): Promise<void> {
  const dir = parseDir(options.dir);
  const name = parseClientName(options.name);
  const roles = parseRoles(options.role);
  const days = parseDays(options.days, DEFAULT_LEAF_DAYS);
  const force = options.force === true;
  ensureDir(dir, false);
  const ca = readCa(dir);
  const certPath = join(dir, `client-${name}.crt`);
  const keyPath = join(dir, `client-${name}.key`);
  checkOverwrite([certPath, keyPath], force);
  const pair = await generate('client certificate', () => createClientCertificate(ca, { name, roles, days }));
  writePair(certPath, keyPath, pair, force);
  printLine(`wrote ${certPath} (client ${JSON.stringify(name)}, roles ${roles.length === 0 ? '(none)' : roles.join(', ')}; valid until ${validUntil(pair.cert)})`);
  printLine(`wrote ${keyPath} (its private key, mode 0600: give it only to that client)`);
  printLine(`next: give ${shellQuote(certPath)}, ${shellQuote(keyPath)} and ${shellQuote(join(dir, CA_CERT_FILE))} to the client; more clients: tsraft certs client --dir ${shellQuote(dir)} --name <name>`);
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

const EXIT_HELP = `
Exit codes: 0 written, 1 an I/O failure or a CA that cannot be used, 2 a bad option, no CA in
--dir, or files in the way (without --force).`;

export function certsCommand(): Command {
  const init = new Command('init')
    .description('create a private CA: <dir>/ca.crt and <dir>/ca.key (mode 0600)')
    .requiredOption('--dir <dir>', 'directory for the CA (created, mode 0700, if missing)')
    .option('--name <name>', 'the CA common name', 'tsraft CA')
    .option('--days <n>', `validity in days (default ${DEFAULT_CA_DAYS})`)
    .option('--force', 'replace an existing CA (every certificate it signed stops verifying against the new one)')
    .addHelpText('after', `${EXIT_HELP}\n\nExample: tsraft certs init --dir ./certs`)
    .action(async (options: InitOptions) => runCertsInit(options));
  const node = new Command('node')
    .description("a node certificate signed by <dir>'s CA: <dir>/node-<id>.crt and .key (mode 0600)")
    .requiredOption('--dir <dir>', 'directory holding the CA (from `tsraft certs init`)')
    .requiredOption('--id <n>', 'the node id (a non-negative integer)')
    .option('--cluster-id <id>', 'the cluster the node belongs to (as `tsraft node --cluster-id`)', DEFAULT_CLUSTER_ID)
    .option('--host <host>', `a DNS name or IP address the node is reached at (repeatable; default ${DEFAULT_HOSTS.join(' and ')})`, collect)
    .option('--days <n>', `validity in days (default ${DEFAULT_LEAF_DAYS})`)
    .option('--force', 'replace existing files')
    .addHelpText('after', `
The certificate names the node as the SAN URI tsraft://<cluster-id>/node/<id>; peers check that
identity, not the host names.
${EXIT_HELP}

Example: tsraft certs node --dir ./certs --id 0 --host 10.0.0.5 --host node0.example`)
    .action(async (options: NodeCertOptions) => runCertsNode(options));
  const client = new Command('client')
    .description("a client certificate signed by <dir>'s CA: <dir>/client-<name>.crt and .key (mode 0600)")
    .requiredOption('--dir <dir>', 'directory holding the CA (from `tsraft certs init`)')
    .requiredOption('--name <name>', 'the client name (1..64 of letters, digits, "_", "." and "-")')
    .option('--role <role>', `a role: ${CLIENT_ROLES.join(', ')} (repeatable; default none)`, collect)
    .option('--days <n>', `validity in days (default ${DEFAULT_LEAF_DAYS})`)
    .option('--force', 'replace existing files')
    .addHelpText('after', `${EXIT_HELP}\n\nExample: tsraft certs client --dir ./certs --name ops --role read --role write`)
    .action(async (options: ClientCertOptions) => runCertsClient(options));
  const certs = new Command('certs').description('certificates for mutual TLS: `tsraft certs init|node|client`');
  for (const sub of [init, node, client]) {
    sub.exitOverride().showHelpAfterError('(add --help for usage)');
    certs.addCommand(sub);
  }
  return certs;
}
