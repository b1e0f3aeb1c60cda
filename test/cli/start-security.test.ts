/**
 * `tsraft start --auth`'s auth file and admin token (src/cli/start-security.ts): made once with
 * mode 0600 and reused as they are on a restart; a damaged auth file or a lost admin token is one
 * clear refusal (exit 2) that says what to do, never a new token behind the operator's back.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN_FILE, AUTH_FILE, ensureDevAuth } from '../../src/cli/start-security.js';
import { CliError, EXIT } from '../../src/cli/common.js';
import { hashToken, parseAuthFile } from '../../src/security/auth-file.js';

function withDir(run: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'tsraft-start-auth-'));
  try {
    run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('tsraft start --auth: ensureDevAuth', () => {
  it('makes an auth file with one admin token, keeps the token (0600) beside it, and reuses both', () => {
    withDir((dir) => {
      const first = ensureDevAuth(dir);
      assert.equal(first.made, true);
      assert.match(first.token, /^tsr_/);
      const file = parseAuthFile(readFileSync(join(dir, AUTH_FILE), 'utf8'), AUTH_FILE);
      assert.deepEqual(file.tokens.map((t) => [t.name, t.roles, t.sha256]), [['admin', ['admin'], hashToken(first.token)]]);
      assert.equal(readFileSync(join(dir, ADMIN_TOKEN_FILE), 'utf8'), `${first.token}\n`);
      for (const f of [AUTH_FILE, ADMIN_TOKEN_FILE]) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
      const again = ensureDevAuth(dir);
      assert.deepEqual(again, { token: first.token, made: false });
    });
  });

  it('refuses a lost admin token and a damaged auth file with exit 2, changing nothing', () => {
    withDir((dir) => {
      ensureDevAuth(dir);
      const before = readFileSync(join(dir, AUTH_FILE), 'utf8');
      unlinkSync(join(dir, ADMIN_TOKEN_FILE));
      assert.throws(() => ensureDevAuth(dir), (e: unknown) => e instanceof CliError && e.code === EXIT.usage && /admin\.token.*missing.*tsraft tokens add --file/.test(e.message));
      assert.equal(readFileSync(join(dir, AUTH_FILE), 'utf8'), before);
      writeFileSync(join(dir, AUTH_FILE), '{"version": 1, "tokens": [{"name": "admin"}]}');
      assert.throws(() => ensureDevAuth(dir), (e: unknown) => e instanceof CliError && e.code === EXIT.usage && /cannot start with --auth: .*auth\.json.*fix it, or remove it/.test(e.message));
    });
  });
});
