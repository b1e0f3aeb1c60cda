/**
 * Fuzz: the auth file parser (src/security/auth-file.ts). Seeded and bounded (see fuzz-config.ts).
 *
 * - valid files (random principals, roles, hashes, public paths) parse to themselves, and the
 *   policy built from them finds every token's principal by its hash;
 * - any JSON value, any mutation of a valid file's text, and any text at all make parseAuthFile
 *   either succeed or throw ConfigError naming the source — never anything else — and whatever
 *   parses passes the validator again (so nothing invalid slips through half-checked).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fc from 'fast-check';
import { ConfigError } from '../../src/runtime/errors.js';
import { authFileProblems, authPolicy, hashToken, parseAuthFile, PUBLIC_CAPABLE_PATHS, ROLES, type AuthFile } from '../../src/security/auth-file.js';
import { check, mutate, mutationsArb } from './fuzz-config.js';

const SOURCE = 'auth file fuzz.json';

const nameArb = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
const tokenArb = fc.string({ minLength: 1, maxLength: 40 });
const validFileArb: fc.Arbitrary<{ file: AuthFile; secrets: string[] }> = fc
  .uniqueArray(fc.record({ name: nameArb, secret: tokenArb, roles: fc.subarray([...ROLES]) }), {
    maxLength: 6,
    selector: (t) => t.name,
  })
  .filter((tokens) => new Set(tokens.map((t) => t.secret)).size === tokens.length)
  .chain((tokens) =>
    fc.subarray([...PUBLIC_CAPABLE_PATHS]).map((publicPaths) => ({
      file: { version: 1 as const, tokens: tokens.map((t) => ({ name: t.name, roles: t.roles, sha256: hashToken(t.secret) })), public: publicPaths },
      secrets: tokens.map((t) => t.secret),
    })),
  );

/** parseAuthFile either returns a file that validates or throws ConfigError naming the source. */
function parsesOrRefuses(text: string): void {
  let parsed: AuthFile;
  try {
    parsed = parseAuthFile(text, SOURCE);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${String(error)}`);
    assert.ok(error.problems.length > 0 && error.problems.every((p) => p.startsWith(`${SOURCE}: `)), error.message);
    return;
  }
  assert.deepEqual(authFileProblems(parsed), []);
}

test('valid auth files parse to themselves; every token finds its principal by hash', () => {
  check(
    'auth-file-valid',
    fc.property(validFileArb, ({ file, secrets }) => {
      assert.deepEqual(parseAuthFile(JSON.stringify(file), SOURCE), file);
      const policy = authPolicy(file);
      file.tokens.forEach((token, i) => {
        const principal = policy.tokensByHash.get(hashToken(secrets[i]!));
        assert.equal(principal?.name, token.name);
        assert.deepEqual([...principal!.roles], token.roles);
      });
    }),
    300,
  );
});

test('any JSON value parses or is refused with a ConfigError naming the source', () => {
  check('auth-file-any-json', fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => parsesOrRefuses(JSON.stringify(value))), 500);
});

test('mutated valid files and arbitrary text parse or are refused, never anything else', () => {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  check(
    'auth-file-mutated',
    fc.property(validFileArb, mutationsArb, ({ file }, mutations) => parsesOrRefuses(decoder.decode(mutate(encoder.encode(JSON.stringify(file)), mutations)))),
    500,
  );
  check('auth-file-text', fc.property(fc.string({ maxLength: 200 }), (text) => parsesOrRefuses(text)), 300);
});
