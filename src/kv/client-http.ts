/**
 * How KvClient (and the CLI's own status probes) speak HTTP to the cluster: plain fetch, or, for a
 * client given TLS material, undici's fetch over an Agent of its own that verifies servers against
 * the given CA and presents the given client certificate. A bearer token, when given, goes on
 * every request as `Authorization: Bearer <token>`.
 *
 * The global fetch is kept for clients without TLS material (it already speaks https:// to servers
 * with publicly trusted certificates); a client with TLS material uses undici's own fetch with its
 * own Agent throughout, since handing an Agent of the installed undici to the global fetch (another
 * copy of undici, bundled with Node) is not guaranteed to work across versions. Both fail alike: a
 * TypeError whose `cause` carries the system or OpenSSL error code, which certificateFailure() reads.
 * An http:// URL is plaintext either way: the TLS material only applies to https:// ones.
 */
import { Agent, fetch as undiciFetch } from 'undici';

/** TLS material for a client (PEM): `ca` verifies the servers; `cert`/`key` are the client's certificate, if any. */
export interface KvClientTls {
  readonly ca?: string | Buffer;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
}

export type ClusterFetch = (url: string, init: RequestInit) => Promise<Response>;

/** A fetch bound to one client's TLS material and token; close() releases its connections. */
export interface ClusterHttp {
  readonly fetch: ClusterFetch;
  /** Whether a CA was given (for the wording of certificate failures). */
  readonly hasCa: boolean;
  close(): Promise<void>;
}

/** A token fits in a header and is not split by spaces: printable ASCII (RFC 6750's b64token is narrower). */
const TOKEN = /^[\x21-\x7e]{1,4096}$/;

/**
 * A fetch for `options`. Throws RangeError for a malformed token (without quoting it) or a
 * cert without its key (or the reverse).
 */
export function clusterHttp(options: { readonly tls?: KvClientTls | undefined; readonly token?: string | undefined } = {}): ClusterHttp {
  const { tls, token } = options;
  if (token !== undefined && !TOKEN.test(token)) throw new RangeError('token must be 1..4096 printable ASCII characters without spaces');
  if (tls !== undefined && (tls.cert === undefined) !== (tls.key === undefined)) {
    throw new RangeError('tls.cert and tls.key go together: a client certificate needs its private key');
  }
  const withToken = (init: RequestInit): RequestInit => {
    if (token === undefined) return init;
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${token}`);
    return { ...init, headers };
  };
  if (tls === undefined || (tls.ca === undefined && tls.cert === undefined)) {
    return { fetch: (url, init) => fetch(url, withToken(init)), hasCa: false, close: async () => undefined };
  }
  const agent = new Agent({
    connect: {
      ...(tls.ca === undefined ? {} : { ca: tls.ca }),
      ...(tls.cert === undefined ? {} : { cert: tls.cert }),
      ...(tls.key === undefined ? {} : { key: tls.key }),
    },
  });
  let closed: Promise<void> | null = null;
  return {
    // undici's Response and RequestInit are the same classes as the global ones, typed apart.
    fetch: (url, init) => undiciFetch(url, { ...(withToken(init) as object), dispatcher: agent }) as unknown as Promise<Response>,
    hasCa: tls.ca !== undefined,
    close: () => (closed ??= agent.close().catch(() => undefined)),
  };
}

/** OpenSSL's verdicts on a server certificate, as a person would say them. */
const CERTIFICATE_CODES: Readonly<Record<string, string>> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT: 'its certificate is not signed by a trusted CA',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chain ends in a CA that is not trusted',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed and not trusted',
  CERT_SIGNATURE_FAILURE: 'its certificate signature does not verify',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet (check the clocks)',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate does not name the host in the URL',
  CERT_REVOKED: 'its certificate was revoked',
};

/**
 * Why a fetch failed, if the reason is the TLS handshake with the server: a certificate that does
 * not verify, or a server that does not speak TLS at all. Such a failure is the same on every
 * retry, unlike a refused connection.
 */
export function certificateFailure(error: unknown): { code: string; reason: string } | undefined {
  const cause = (error as { cause?: unknown } | undefined)?.cause ?? error;
  const code = (cause as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return undefined;
  const reason = CERTIFICATE_CODES[code];
  if (reason !== undefined) return { code, reason };
  const message = cause instanceof Error ? cause.message : '';
  if (code === 'EPROTO' && /wrong version number|packet length too long|unknown protocol/i.test(message)) {
    return { code, reason: 'it does not speak TLS (is it an http:// endpoint?)' };
  }
  return undefined;
}

/** A certificate failure (certificateFailure) in one line for `url`, saying what to give when no CA was. */
export function describeCertificateFailure(url: string, failure: { code: string; reason: string }, hasCa: boolean): string {
  const untrusted = failure.reason.includes('not trusted') || failure.reason.includes('trusted CA');
  const hint = untrusted ? (hasCa ? ': it is not signed by the CA given' : ': an https endpoint, but no CA was given to verify it') : '';
  return `TLS with ${url} failed: ${failure.reason} (${failure.code})${hint}`;
}
