/**
 * Checks of KvServerOptions.httpTls, made before the data directory is touched: that TLS can load
 * the certificate, key and client CA, and that this member's own HTTP URL says what it serves
 * (https:// with httpTls, http:// without). A member announcing http:// while serving HTTPS (or
 * the reverse) would send every redirected client and every joining node to a scheme the port
 * does not speak, which fails far from its cause.
 */
import { createSecureContext } from 'node:tls';
import { ConfigError } from '../runtime/errors.js';
import type { HttpTlsOptions } from './http-server.js';

const isPem = (v: unknown): boolean =>
  (typeof v === 'string' && v.includes('-----BEGIN ')) || (Buffer.isBuffer(v) && v.includes('-----BEGIN '));

/** What is wrong with `httpTls` (empty: nothing, or absent). */
export function httpTlsProblems(httpTls: HttpTlsOptions | undefined): string[] {
  if (httpTls === undefined) return [];
  const t = httpTls as unknown as Partial<Record<string, unknown>> | null;
  if (t === null || typeof t !== 'object') return ['httpTls must be an object { cert, key, clientCa? } of PEM strings or Buffers'];
  const problems: string[] = [];
  for (const field of ['cert', 'key', 'clientCa']) {
    const v = t[field];
    if (field === 'clientCa' && v === undefined) continue;
    if (!isPem(v)) problems.push(`httpTls.${field} must be PEM (a string or Buffer with a "-----BEGIN" line)`);
  }
  if (problems.length > 0) return problems;
  try {
    // Loads them as the HTTPS server will: a malformed PEM, or a key that is not the certificate's, fails here.
    createSecureContext({ cert: httpTls.cert, key: httpTls.key, ...(httpTls.clientCa === undefined ? {} : { ca: httpTls.clientCa }) });
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    problems.push(`httpTls: ${why} (cert, key and clientCa must be PEM, and key the private key of cert)`);
  }
  return problems;
}

/**
 * Throws ConfigError unless member `id`'s HTTP URL among `members` is https:// exactly when
 * `serveHttps`. A member not among them is left to the other checks.
 */
export function checkOwnHttpScheme(id: number, members: readonly { readonly id: number; readonly httpUrl: string }[], serveHttps: boolean): void {
  const self = members.find((m) => m.id === id);
  if (self === undefined) return;
  const https = self.httpUrl.toLowerCase().startsWith('https:');
  if (https === serveHttps) return;
  throw new ConfigError([
    serveHttps
      ? `this member serves HTTPS (httpTls) but its HTTP URL is ${self.httpUrl}: give it as https://... in peers (or learners), so that clients and other members reach it over TLS`
      : `this member's HTTP URL is ${self.httpUrl} but it serves plain HTTP: give httpTls (a certificate and key), or an http:// URL`,
  ]);
}
