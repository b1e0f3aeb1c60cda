/**
 * Who may use a node's HTTP API: principals, their roles, and the auth file that lists the bearer
 * tokens (`tsraft node --auth-file`, `KvServerOptions.auth`; `tsraft tokens` writes it).
 *
 *     { "version": 1,
 *       "tokens": [ { "name": "app", "roles": ["read", "write"], "sha256": "<hex SHA-256 of the token>" } ],
 *       "public": ["/metrics", "/v1/status"] }
 *
 * Only the tokens' SHA-256 hashes are stored: a copy of the file does not let anyone in. A token is
 * looked up by hashing what a client presents and finding that hash, so no secret is ever compared
 * byte by byte (an early-exit comparison would tell an attacker how much of a guess was right).
 * Tokens are long random strings (TOKEN_RANDOM_BYTES), so an unsalted hash is enough.
 *
 * The file is checked strictly: an unknown field, a bad name or role, a duplicate name or hash, or
 * another version is a ConfigError naming the file and the field, never a crash.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../runtime/errors.js';

/** What a principal may do: `read` keys and members, `write` keys, `admin` change membership and leadership (and read and write). */
export type Role = 'read' | 'write' | 'admin';
export const ROLES: readonly Role[] = ['read', 'write', 'admin'];

/**
 * A principal's name (and a `tsraft certs client` name, which becomes one): 1..64 of letters,
 * digits, "_", "." and "-", starting with a letter or digit. Never a "/", which separates the name
 * from the client id in a session bound to its principal; also safe in file names.
 */
const PRINCIPAL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const PRINCIPAL_NAME_RULE = '1..64 of letters, digits, "_", "." and "-", starting with a letter or digit';

export function isPrincipalName(text: string): boolean {
  return PRINCIPAL_NAME.test(text);
}

/** The endpoints an auth file may open to anyone (the others stay closed, /healthz and /readyz are always open). */
export const PUBLIC_CAPABLE_PATHS: readonly string[] = ['/metrics', '/v1/status'];

export const AUTH_FILE_VERSION = 1;

/** One token of an auth file. */
export interface AuthFileToken {
  readonly name: string;
  readonly roles: readonly Role[];
  /** Lowercase hex SHA-256 of the token's UTF-8 bytes. */
  readonly sha256: string;
}

/** An auth file's contents (its JSON, once validated). */
export interface AuthFile {
  readonly version: 1;
  readonly tokens: readonly AuthFileToken[];
  /** Endpoints open without credentials: a subset of PUBLIC_CAPABLE_PATHS (default none). */
  readonly public?: readonly string[];
}

/** Someone the API knows: a token's or a client certificate's holder. */
export interface Principal {
  readonly name: string;
  readonly roles: ReadonlySet<Role>;
}

/** An auth file made ready for lookups. */
export interface AuthPolicy {
  /** Token hash (lowercase hex) → its principal. */
  readonly tokensByHash: ReadonlyMap<string, Principal>;
  readonly publicPaths: ReadonlySet<string>;
}

/** Random bytes in a token: 256 bits, beyond guessing and beyond a brute force of the stored hash. */
export const TOKEN_RANDOM_BYTES = 32;
/** Every token starts with this, so a leaked one is recognizable (secret scanners, logs). */
export const TOKEN_PREFIX = 'tsr_';

/** A new token: TOKEN_PREFIX and TOKEN_RANDOM_BYTES random bytes, base64url. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(TOKEN_RANDOM_BYTES).toString('base64url');
}

/** The lowercase hex SHA-256 of a token, as stored in an auth file. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Whether `role` is enough for `required`: admin implies read and write. */
export function hasRole(principal: Principal, required: Role): boolean {
  return principal.roles.has(required) || principal.roles.has('admin');
}

/** The known roles among `values` (a certificate may carry others: they grant nothing). */
export function knownRoles(values: readonly string[]): Set<Role> {
  return new Set(values.filter((v): v is Role => (ROLES as readonly string[]).includes(v)));
}

const TOP_LEVEL_FIELDS = ['version', 'tokens', 'public'];
const TOKEN_FIELDS = ['name', 'roles', 'sha256'];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `value` quoted for a message, cut short: a stray megabyte must not end up in a log line. */
function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * Every problem of an auth file's parsed JSON, each naming its field (`tokens[1].roles[0]`); empty
 * when it is valid. Never throws, whatever `value` is.
 */
export function authFileProblems(value: unknown): string[] {
  if (!isRecord(value)) return [`expected a JSON object {"version": ${AUTH_FILE_VERSION}, "tokens": [...], "public": [...]}, got ${shown(value)}`];
  const problems: string[] = [];
  for (const field of Object.keys(value)) {
    if (!TOP_LEVEL_FIELDS.includes(field)) problems.push(`${shown(field)}: unknown field (expected ${TOP_LEVEL_FIELDS.join(', ')})`);
  }
  if (value['version'] !== AUTH_FILE_VERSION) problems.push(`version: must be ${AUTH_FILE_VERSION}, got ${shown(value['version'])}`);
  const tokens = value['tokens'];
  if (!Array.isArray(tokens)) problems.push(`tokens: must be an array of {"name", "roles", "sha256"}, got ${shown(tokens)}`);
  else problems.push(...tokensProblems(tokens));
  const publicPaths = value['public'];
  if (publicPaths !== undefined) {
    if (!Array.isArray(publicPaths)) problems.push(`public: must be an array of paths (${PUBLIC_CAPABLE_PATHS.join(', ')}), got ${shown(publicPaths)}`);
    else {
      const seen = new Set<unknown>();
      publicPaths.forEach((path: unknown, i) => {
        if (typeof path !== 'string' || !PUBLIC_CAPABLE_PATHS.includes(path)) {
          problems.push(`public[${i}]: ${shown(path)} cannot be made public; only ${PUBLIC_CAPABLE_PATHS.join(' and ')} can (/healthz and /readyz always are)`);
        } else if (seen.has(path)) problems.push(`public[${i}]: ${path} is listed twice`);
        seen.add(path);
      });
    }
  }
  return problems;
}

function tokensProblems(tokens: readonly unknown[]): string[] {
  const problems: string[] = [];
  const names = new Map<string, number>();
  const hashes = new Map<string, number>();
  tokens.forEach((token, i) => {
    const at = `tokens[${i}]`;
    if (!isRecord(token)) {
      problems.push(`${at}: must be an object {"name", "roles", "sha256"}, got ${shown(token)}`);
      return;
    }
    for (const field of Object.keys(token)) {
      if (!TOKEN_FIELDS.includes(field)) problems.push(`${at}.${field}: unknown field (expected ${TOKEN_FIELDS.join(', ')})`);
    }
    const name = token['name'];
    if (typeof name !== 'string' || !isPrincipalName(name)) problems.push(`${at}.name: ${shown(name)} is not a valid name; use ${PRINCIPAL_NAME_RULE}`);
    else if (names.has(name)) problems.push(`${at}.name: ${shown(name)} is also the name of tokens[${names.get(name)!}]`);
    else names.set(name, i);
    const roles = token['roles'];
    if (!Array.isArray(roles)) problems.push(`${at}.roles: must be an array of ${ROLES.join(', ')}, got ${shown(roles)}`);
    else {
      const seen = new Set<unknown>();
      roles.forEach((role: unknown, j) => {
        if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) problems.push(`${at}.roles[${j}]: ${shown(role)} is not a role; expected ${ROLES.join(', ')}`);
        else if (seen.has(role)) problems.push(`${at}.roles[${j}]: ${role} is listed twice`);
        seen.add(role);
      });
    }
    const hash = token['sha256'];
    if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) problems.push(`${at}.sha256: must be 64 lowercase hex digits (the SHA-256 of the token), got ${shown(hash)}`);
    else if (hashes.has(hash)) problems.push(`${at}.sha256: the same hash as tokens[${hashes.get(hash)!}] (one token cannot be two principals)`);
    else hashes.set(hash, i);
  });
  return problems;
}

/** Throws ConfigError, each problem prefixed with `source` (the file, or "options.auth"), unless `value` is a valid auth file. */
export function validateAuthFile(value: unknown, source: string): AuthFile {
  const problems = authFileProblems(value);
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `${source}: ${p}`));
  return value as AuthFile;
}

/** Parses an auth file's text; ConfigError naming `source` and the field if it is not valid. */
export function parseAuthFile(text: string, source: string): AuthFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError([`${source}: not valid JSON (${error instanceof Error ? error.message : String(error)})`]);
  }
  return validateAuthFile(value, source);
}

/** Reads and parses an auth file; ConfigError naming the file if it cannot be read or is not valid. */
export async function readAuthFile(path: string): Promise<AuthFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : String(code ?? error);
    throw new ConfigError([`auth file ${path}: cannot read it (${why})`]);
  }
  return parseAuthFile(text, `auth file ${path}`);
}

/** A validated auth file, ready for lookups. */
export function authPolicy(file: AuthFile): AuthPolicy {
  const tokensByHash = new Map<string, Principal>();
  for (const token of file.tokens) tokensByHash.set(token.sha256, { name: token.name, roles: new Set(token.roles) });
  return { tokensByHash, publicPaths: new Set(file.public ?? []) };
}
