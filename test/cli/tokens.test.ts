/**
 * `tsraft tokens add|list|remove` through the built CLI (the file, its mode, what is stored, the
 * refusals: one line, the right exit code, nothing changed), and `tsraft node --auth-file` as a
 * process: a bad file refused before the data directory is made, tokens enforced, a token added
 * and taken on SIGHUP, a bad file on SIGHUP logged with the old one kept.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addToken } from '../../src/cli/tokens.js';
import { hashToken, parseAuthFile } from '../../src/security/auth-file.js';
import { freeLoopbackPorts } from '../../src/testing/ports.js';
import { MAIN, TsraftProcess, assertNoStackTrace, tsraft as runTsraft, type Run } from './cli-fixture.js';

const tsraft = (args: readonly string[]): Promise<Run> => runTsraft(args, { timeoutMs: 30_000 });

function assertRefused(run: Run, code: number, message: RegExp): void {
  assert.equal(run.code, code, `exit code; stderr:\n${run.stderr}`);
  assert.match(run.stderr, message);
  assertNoStackTrace(run.stderr);
}

/** The token `tokens add` printed (its own line). */
function printedToken(run: Run): string {
  const token = /^(tsr_[A-Za-z0-9_-]{43})$/m.exec(run.stdout)?.[1];
  assert.ok(token !== undefined, run.stdout);
  return token;
}

describe('tsraft tokens', { timeout: 60_000 }, () => {
  let root: string;
  let file: string;

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'tsraft-tokens-'));
    file = join(root, 'auth.json');
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('add creates the file (mode 0600, "public": []), stores only the hash and prints the token once', async () => {
    const run = await tsraft(['tokens', 'add', '--file', file, '--name', 'app', '--role', 'read', '--role', 'write']);
    assert.equal(run.code, 0, run.stderr);
    const token = printedToken(run);
    assert.match(run.stdout, /TSRAFT_TOKEN=tsr_/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const text = readFileSync(file, 'utf8');
    assert.ok(!text.includes(token), 'the token itself is never stored');
    assert.deepEqual(parseAuthFile(text, file), { version: 1, tokens: [{ name: 'app', roles: ['read', 'write'], sha256: hashToken(token) }], public: [] });
    const quiet = await tsraft(['tokens', 'add', '--file', file, '--name', 'ops', '--role', 'admin', '--quiet']);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.match(quiet.stdout, /^tsr_[A-Za-z0-9_-]{43}\n$/);
  });

  it('list shows names and roles, never hashes', async () => {
    const run = await tsraft(['tokens', 'list', '--file', file]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^app\s+read, write$/m);
    assert.match(run.stdout, /^ops\s+admin$/m);
    assert.doesNotMatch(run.stdout, /[0-9a-f]{64}/);
  });

  it('refuses a duplicate name, a bad name or role (exit 2), leaving the file as it was', async () => {
    const before = readFileSync(file, 'utf8');
    assertRefused(await tsraft(['tokens', 'add', '--file', file, '--name', 'app', '--role', 'read']), 2, /already has a token named "app"/);
    assertRefused(await tsraft(['tokens', 'add', '--file', file, '--name', 'a/b']), 2, /--name: "a\/b" is not a safe name/);
    assertRefused(await tsraft(['tokens', 'add', '--file', file, '--name', 'x', '--role', 'root']), 2, /--role: "root" is not a role/);
    assertRefused(await tsraft(['tokens', 'list', '--file', join(root, 'missing.json')]), 2, /does not exist/);
    assert.equal(readFileSync(file, 'utf8'), before);
  });

  it('remove takes a token out; an unknown name is exit 1; an invalid file is exit 1 naming the field', async () => {
    const removed = await tsraft(['tokens', 'remove', '--file', file, '--name', 'ops']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual(parseAuthFile(readFileSync(file, 'utf8'), file).tokens.map((t) => t.name), ['app']);
    assertRefused(await tsraft(['tokens', 'remove', '--file', file, '--name', 'ops']), 1, /has no token named "ops" \(it has app\)/);
    const bad = join(root, 'bad.json');
    writeFileSync(bad, '{"version":1,"tokens":[{"name":"x","roles":["read"],"sha256":"nothex"}]}');
    assertRefused(await tsraft(['tokens', 'list', '--file', bad]), 1, /tokens\[0\]\.sha256/);
  });

  it('addToken (the library call) creates a file and refuses a name twice', () => {
    const path = join(root, 'lib.json');
    const token = addToken(path, 'admin', ['admin']);
    assert.equal(parseAuthFile(readFileSync(path, 'utf8'), path).tokens[0]!.sha256, hashToken(token));
    assert.throws(() => addToken(path, 'admin', ['read']), /already has a token named "admin"/);
  });
});

describe('tsraft node --auth-file', { timeout: 60_000 }, () => {
  let root: string;
  let node: TsraftProcess | null = null;

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'tsraft-node-auth-'));
  });
  after(async () => {
    await node?.stopWith('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  it('refuses a bad auth file (exit 2, naming the field) before the data directory is made', async () => {
    const bad = join(root, 'bad.json');
    writeFileSync(bad, '{"version":1,"tokens":[{"name":"x","roles":["superuser"],"sha256":"00"}],"colour":"red"}');
    const dataDir = join(root, 'refused');
    const run = await tsraft(['node', '--id', '0', '--peers', '0=127.0.0.1:1/http://127.0.0.1:2', '--data-dir', dataDir, '--auth-file', bad]);
    assertRefused(run, 2, /--auth-file: .*bad\.json: "colour": unknown field.*tokens\[0\]\.roles\[0\]: "superuser" is not a role/);
    assert.equal(existsSync(dataDir), false);
  });

  it('enforces the tokens, takes a new token on SIGHUP, and keeps the old file when the new one is bad', async () => {
    const file = join(root, 'auth.json');
    const writer = addToken(file, 'writer', ['write']);
    const [raftPort, httpPort] = await freeLoopbackPorts(2);
    const url = `http://127.0.0.1:${httpPort!}`;
    node = new TsraftProcess(
      spawn(process.execPath, [MAIN, 'node', '--id', '0', '--peers', `0=127.0.0.1:${raftPort!}/${url}`, '--data-dir', join(root, 'data'), '--no-fsync', '--auth-file', file], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    await node.waitFor('node up', /node 0 up/);
    const put = async (token: string | null, value: string): Promise<number> => {
      const r = await fetch(`${url}/v1/kv/k`, { method: 'PUT', body: value, headers: token === null ? {} : { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
      await r.text();
      return r.status;
    };
    // A single node elects itself within an election timeout; writes get 503 until then.
    const deadline = Date.now() + 15_000;
    while ((await put(writer, 'v1')) !== 200) {
      assert.ok(Date.now() < deadline, node.output);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(await put(null, 'v'), 401);
    const later = addToken(file, 'later', ['write']);
    assert.equal(await put(later, 'v2'), 401);
    node.proc.kill('SIGHUP');
    await node.waitFor('reload', /auth file .* reloaded: 2 tokens/);
    assert.equal(await put(later, 'v2'), 200);
    writeFileSync(file, '{"version":1,"tokens":"none"}');
    node.proc.kill('SIGHUP');
    await node.waitFor('refused reload', /not reloaded, the previous one stays in force: .*tokens: must be an array/);
    assert.equal(await put(later, 'v3'), 200);
    assert.equal(await node.stopWith('SIGTERM'), 0, node.output);
    assert.doesNotMatch(node.output, new RegExp(`${writer}|${later}`), 'tokens are never logged');
  });
});
