/**
 * Authentication and authorization of the HTTP API: who sends a request (a bearer token from the
 * auth file, or a verified client certificate when the API serves HTTPS with a client CA) and
 * whether that principal's roles allow it. KvHttpApi asks before it does anything else — before a
 * follower redirects, before a body is read (a refused request never gets its `100 Continue`, and
 * whatever body arrives anyway is discarded within the drain bounds of http-io.ts) — so a stranger
 * learns nothing and costs nothing beyond the headers.
 *
 *     /healthz, /readyz                         open
 *     /metrics, /v1/status                      any principal (open when the auth file lists them as public)
 *     /ui, /ui/...                              open (a static bundle, no data; the page then asks for a token)
 *     GET /v1/kv/..., GET /v1/members           read
 *     /v1/events                                read (the dashboard's feed shows keys of recent log entries)
 *     /v1/watch                                 read (it streams keys and values)
 *     PUT, POST, DELETE /v1/kv/...              write
 *     /v1/txn (transactions, read-only ones too) write
 *     GET /v1/leases, GET /v1/leases/{id}       read
 *     POST, DELETE /v1/leases/...               write (grants, keep-alives, revokes)
 *     /v1/members changes, /v1/leader/transfer  admin (admin implies read and write)
 *     /v1/dev/faults (--dev-faults only)        admin
 *     /v1/snapshot (a backup of the whole store) admin
 *     anything else                             any principal (then 404 / 405)
 *
 * Authorization is on when the node has an auth file or a client CA; otherwise every request is
 * anonymous and allowed (authorize answers null), exactly as before authentication existed.
 *
 * A bearer token wins over a client certificate sent on the same connection: the token is the
 * explicit, per-request credential (a proxy holding a certificate may forward a client's token),
 * and a certificate is then neither checked nor used.
 *
 * Refusals: 401 `unauthenticated` with `WWW-Authenticate: Bearer realm="tsraft"` (no credentials,
 * an unknown or malformed token, a certificate that was not verified or names no client), 403
 * `forbidden` naming the principal and the role it lacks. Counted by reason in /metrics
 * (tsraft_http_auth_refused_total) and logged at a bounded pace; tokens are never logged.
 */
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import { type AuthPolicy, hashToken, hasRole, isPrincipalName, knownRoles, type Principal, type Role } from '../security/auth-file.js';
import { clientIdentity, peerIdentity } from '../security/certs.js';
import { RateLimitedLog } from '../runtime/rate-limited-log.js';
import { SNAPSHOT_PATH } from './http-backup-routes.js';
import { WATCH_PATH } from './http-watch-routes.js';
import { TRANSFER_PATH } from './http-cluster-routes.js';
import { HttpError } from './http-io.js';
import { KV_PREFIX } from './http-kv-routes.js';
import { TXN_PATH } from './http-txn.js';
import { MEMBERS_PATH } from './http-member-routes.js';
import { LEASES_PATH } from './http-lease-routes.js';
import { EVENTS_PATH, isUiPath } from './http-ui-routes.js';
import { DEV_FAULTS_PATH } from './http-dev-routes.js';

/** Why a request was refused, as counted in tsraft_http_auth_refused_total{reason}. */
export type AuthRefusalReason = 'missing' | 'invalid' | 'forbidden' | 'certificate';
const REFUSAL_REASONS: readonly AuthRefusalReason[] = ['missing', 'invalid', 'forbidden', 'certificate'];

/** What a request needs: nothing, any principal, or a principal with a role. */
export type Access = 'open' | 'authenticated' | Role;

/** Refusal log lines: a client without credentials controls their pace. */
const REFUSAL_LOG_BURST = 10;
const REFUSAL_LOG_WINDOW_MS = 60_000;

const CHALLENGE = 'Bearer realm="tsraft"';
const NO_PUBLIC_PATHS: ReadonlySet<string> = new Set();

/** What `method` on `rawPath` needs (see the table in the module comment). */
export function requiredAccess(method: string, rawPath: string, publicPaths: ReadonlySet<string>): Access {
  const reading = method === 'GET' || method === 'HEAD';
  if (rawPath === '/healthz' || rawPath === '/readyz') return 'open';
  if (rawPath === '/metrics' || rawPath === '/v1/status') return publicPaths.has(rawPath) ? 'open' : 'authenticated';
  if (rawPath === TRANSFER_PATH || rawPath === DEV_FAULTS_PATH || rawPath === SNAPSHOT_PATH) return 'admin';
  if (isUiPath(rawPath)) return 'open';
  if (rawPath === EVENTS_PATH || rawPath === WATCH_PATH) return 'read';
  if (rawPath === MEMBERS_PATH || rawPath.startsWith(`${MEMBERS_PATH}/`)) return reading ? 'read' : 'admin';
  if (rawPath === '/v1/kv' || rawPath.startsWith(KV_PREFIX)) return reading ? 'read' : 'write';
  if (rawPath === TXN_PATH) return 'write';
  if (rawPath === LEASES_PATH || rawPath.startsWith(`${LEASES_PATH}/`)) return reading ? 'read' : 'write';
  return 'authenticated';
}

/** Decides who sends each request and whether it may; one per HTTP API, its policy replaceable (SIGHUP). */
export class HttpAuthGuard {
  private policy: AuthPolicy | null;
  private readonly refusals = new Map<AuthRefusalReason, number>(REFUSAL_REASONS.map((reason) => [reason, 0]));
  private readonly refusalLog: RateLimitedLog;

  /**
   * `policy`: the auth file in force (null: none, so no token is accepted). `clientCertificates`:
   * the API verifies client certificates against a client CA, so a verified one is a principal.
   */
  constructor(policy: AuthPolicy | null, private readonly clientCertificates: boolean, log: (line: string) => void) {
    this.policy = policy;
    this.refusalLog = new RateLimitedLog(log, REFUSAL_LOG_BURST, REFUSAL_LOG_WINDOW_MS, 'auth refusals');
  }

  /** Whether requests are checked at all. */
  get enabled(): boolean {
    return this.policy !== null || this.clientCertificates;
  }

  /** Puts another auth file in force, for the requests that arrive from now on. */
  setPolicy(policy: AuthPolicy): void {
    this.policy = policy;
  }

  /**
   * The principal sending `req`, once it is allowed `method` on `rawPath`; null when authorization
   * is off or the endpoint is open. Throws HttpError 401 or 403 otherwise (counted and logged).
   */
  authorize(req: IncomingMessage, method: string, rawPath: string): Principal | null {
    if (!this.enabled) return null;
    const access = requiredAccess(method, rawPath, this.policy?.publicPaths ?? NO_PUBLIC_PATHS);
    if (access === 'open') return null;
    const principal = this.authenticate(req, method, rawPath);
    if (access !== 'authenticated' && !hasRole(principal, access)) {
      const has = principal.roles.size === 0 ? 'no roles' : `roles ${[...principal.roles].join(', ')}`;
      throw this.refuse(req, 'forbidden', 403, 'forbidden', `principal "${principal.name}" (${has}) lacks the ${access} role needed for ${method} ${rawPath}`);
    }
    return principal;
  }

  /** tsraft_http_auth_refused_total in Prometheus text format. */
  renderMetrics(): string {
    let out = '# HELP tsraft_http_auth_refused_total HTTP requests refused for want of credentials, for bad ones, or for want of a role.\n';
    out += '# TYPE tsraft_http_auth_refused_total counter\n';
    for (const [reason, count] of this.refusals) out += `tsraft_http_auth_refused_total{reason="${reason}"} ${count}\n`;
    return out;
  }

  private authenticate(req: IncomingMessage, method: string, rawPath: string): Principal {
    const authorization = req.headers.authorization;
    if (authorization !== undefined) return this.tokenPrincipal(req, authorization);
    const certified = this.certificatePrincipal(req);
    if (certified !== null) return certified;
    const how = this.clientCertificates ? (this.policy === null ? 'a client certificate' : 'a bearer token or a client certificate') : 'a bearer token';
    throw this.refuse(req, 'missing', 401, 'unauthenticated', `${method} ${rawPath} needs credentials: send ${how} (Authorization: Bearer <token>)`);
  }

  private tokenPrincipal(req: IncomingMessage, authorization: string): Principal {
    const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(authorization);
    if (match === null) throw this.refuse(req, 'invalid', 401, 'unauthenticated', 'the Authorization header must be "Bearer <token>"', true);
    if (this.policy === null) throw this.refuse(req, 'invalid', 401, 'unauthenticated', 'this node accepts no bearer tokens (it has no auth file): use a client certificate', true);
    // Looked up by its hash: no comparison of secrets that could leak through its timing.
    const principal = this.policy.tokensByHash.get(hashToken(match[1]!));
    if (principal === undefined) throw this.refuse(req, 'invalid', 401, 'unauthenticated', 'unknown bearer token', true);
    return principal;
  }

  /** The verified client certificate's principal; null when there is none (or certificates are not principals here). */
  private certificatePrincipal(req: IncomingMessage): Principal | null {
    const socket = req.socket;
    if (!this.clientCertificates || !(socket instanceof TLSSocket)) return null;
    const cert = socket.getPeerCertificate();
    if (cert === null || cert === undefined || cert.raw === undefined) return null;
    if (!socket.authorized) {
      throw this.refuse(req, 'certificate', 401, 'unauthenticated', `the client certificate was not verified against the client CA (${String(socket.authorizationError ?? 'unknown reason')})`);
    }
    if (peerIdentity(cert) !== null) throw this.refuse(req, 'certificate', 401, 'unauthenticated', 'a node certificate is not a client certificate (make one with `tsraft certs client`)');
    const identity = clientIdentity(cert);
    if (identity === null || !isPrincipalName(identity.name)) {
      throw this.refuse(req, 'certificate', 401, 'unauthenticated', 'the client certificate names no valid client (its subject needs one CN, as `tsraft certs client` makes)');
    }
    return { name: identity.name, roles: knownRoles(identity.roles) };
  }

  private refuse(req: IncomingMessage, reason: AuthRefusalReason, status: 401 | 403, code: string, message: string, invalidToken = false): HttpError {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
    const from = req.socket.remoteAddress ?? 'unknown';
    this.refusalLog.log(`auth: refused ${req.method ?? '?'} ${(req.url ?? '/').slice(0, 200)} from ${from} (${reason}): ${message}`);
    const headers: Record<string, string> = status === 401 ? { 'WWW-Authenticate': invalidToken ? `${CHALLENGE}, error="invalid_token"` : CHALLENGE } : {};
    return new HttpError(status, code, message, headers);
  }
}
