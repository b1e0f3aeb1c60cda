/**
 * `tsraft certs init|node|client` through the built CLI: the files, their modes, what the
 * certificates say (peerIdentity / clientIdentity) and that they verify against the CA; and the
 * refusals: one clear line, the right exit code, no stack trace, nothing written.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseCertHost, parseCertHosts, parseClientName, parseRoles } from '../../src/cli/certs.js';
import { UsageError } from '../../src/cli/common.js';
import { clientIdentity, peerIdentity } from '../../src/security/certs.js';
import { assertNoStackTrace, tsraft as runTsraft, type Run } from './cli-fixture.js';

const tsraft = (args: readonly string[]): Promise<Run> => runTsraft(args, { timeoutMs: 30_000 });

const mode = (path: string): number => statSync(path).mode & 0o777;

function assertRefused(run: Run, code: number, message: RegExp): void {
  assert.equal(run.code, code, `exit code; stderr:\n${run.stderr}`);
  assert.match(run.stderr, message);
  assertNoStackTrace(run.stderr);
  assert.equal(run.stdout, '');
}

describe('tsraft certs', { timeout: 120_000 }, () => {
  let root: string;
  let dir: string;

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'tsraft-certs-'));
    dir = join(root, 'certs');
  });

  after(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('init writes the CA (key 0600) and says what to run next', async () => {
    const run = await tsraft(['certs', 'init', '--dir', dir, '--name', 'test CA', '--days', '30']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /wrote .*ca\.crt/);
    assert.match(run.stdout, /wrote .*ca\.key/);
    assert.match(run.stdout, /next: tsraft certs node --dir .* --id 0/);
    assert.equal(mode(join(dir, 'ca.key')), 0o600);
    const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
    assert.equal(ca.ca, true);
    assert.match(ca.subject, /CN=test CA/);
    assert.ok(ca.checkPrivateKey(createPrivateKey(readFileSync(join(dir, 'ca.key')))));
    assert.ok(ca.verify(ca.publicKey), 'self-signed');
  });

  it('init refuses to overwrite without --force, and replaces with it', async () => {
    const before = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const refused = await tsraft(['certs', 'init', '--dir', dir]);
    assertRefused(refused, 2, /^tsraft: refusing to overwrite .*ca\.crt and .*ca\.key \(they already exist\); pass --force/);
    assert.equal(readFileSync(join(dir, 'ca.crt'), 'utf8'), before);

    // --force in a scratch dir (the shared CA stays): the key ends up 0600 even if it was not.
    const other = join(root, 'other');
    assert.equal((await tsraft(['certs', 'init', '--dir', other])).code, 0);
    chmodSync(join(other, 'ca.key'), 0o644);
    const oldCa = readFileSync(join(other, 'ca.crt'), 'utf8');
    const forced = await tsraft(['certs', 'init', '--dir', other, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(readFileSync(join(other, 'ca.crt'), 'utf8'), oldCa);
    assert.equal(mode(join(other, 'ca.key')), 0o600);
  });

  it('node writes a certificate whose identity reads back and that verifies against the CA', async () => {
    const run = await tsraft(['certs', 'node', '--dir', dir, '--id', '3', '--cluster-id', 'prod', '--host', '10.0.0.7', '--host', 'node3.example']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /wrote .*node-3\.crt .*tsraft:\/\/prod\/node\/3/);
    assert.match(run.stdout, /next: tsraft certs node --dir .* --id 4 --cluster-id prod/);
    assert.equal(mode(join(dir, 'node-3.key')), 0o600);

    const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
    const cert = new X509Certificate(readFileSync(join(dir, 'node-3.crt')));
    assert.deepEqual(peerIdentity(cert), { clusterId: 'prod', nodeId: 3 });
    assert.equal(clientIdentity(cert), null);
    assert.ok(cert.checkIssued(ca));
    assert.ok(cert.verify(ca.publicKey));
    assert.ok(cert.checkPrivateKey(createPrivateKey(readFileSync(join(dir, 'node-3.key')))));
    assert.equal(cert.checkIP('10.0.0.7'), '10.0.0.7');
    assert.equal(cert.checkHost('node3.example'), 'node3.example');
    assert.equal(cert.checkHost('localhost'), undefined, '--host replaces the defaults');
  });

  it('node defaults: cluster tsraft, hosts 127.0.0.1 and localhost', async () => {
    const run = await tsraft(['certs', 'node', '--dir', dir, '--id', '0']);
    assert.equal(run.code, 0, run.stderr);
    const cert = new X509Certificate(readFileSync(join(dir, 'node-0.crt')));
    assert.deepEqual(peerIdentity(cert), { clusterId: 'tsraft', nodeId: 0 });
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(cert.checkHost('localhost'), 'localhost');

    const again = await tsraft(['certs', 'node', '--dir', dir, '--id', '0']);
    assertRefused(again, 2, /^tsraft: refusing to overwrite .*node-0\.crt and .*node-0\.key/);
  });

  it('client writes a certificate with its name and roles, no node identity, verifying against the CA', async () => {
    const run = await tsraft(['certs', 'client', '--dir', dir, '--name', 'ops-1', '--role', 'read', '--role', 'admin']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /wrote .*client-ops-1\.crt/);
    assert.match(run.stdout, /next: /);
    assert.equal(mode(join(dir, 'client-ops-1.key')), 0o600);
    const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
    const cert = new X509Certificate(readFileSync(join(dir, 'client-ops-1.crt')));
    assert.deepEqual(clientIdentity(cert), { name: 'ops-1', roles: ['read', 'admin'] });
    assert.equal(peerIdentity(cert), null);
    assert.ok(cert.checkIssued(ca));
    assert.ok(cert.verify(ca.publicKey));
  });

  it('refuses without a CA, naming the command that makes one', async () => {
    const empty = mkdtempSync(join(root, 'empty-'));
    assertRefused(await tsraft(['certs', 'node', '--dir', empty, '--id', '1']), 2, /^tsraft: no CA in .*: .*ca\.crt and .*ca\.key not found; run `tsraft certs init --dir .*` first/);
    assertRefused(await tsraft(['certs', 'client', '--dir', empty, '--name', 'x']), 2, /^tsraft: no CA in /);
    assertRefused(await tsraft(['certs', 'node', '--dir', join(root, 'missing'), '--id', '1']), 2, /does not exist; run `tsraft certs init/);
    assert.deepEqual(readdirSync(empty), []);
  });

  it('refuses a CA whose key does not match', async () => {
    const mixed = mkdtempSync(join(root, 'mixed-'));
    assert.equal((await tsraft(['certs', 'init', '--dir', mixed])).code, 0);
    writeFileSync(join(mixed, 'ca.key'), readFileSync(join(dir, 'ca.key')));
    assertRefused(await tsraft(['certs', 'node', '--dir', mixed, '--id', '1']), 1, /^tsraft: .*ca\.key is not the key of .*ca\.crt/);
  });

  it('refuses bad options with exit 2 and one clear message, writing nothing', async () => {
    const cases: [string[], RegExp][] = [
      [['certs', 'node', '--dir', dir, '--id', 'x'], /--id: node id must be a non-negative integer, got "x"/],
      [['certs', 'node', '--dir', dir, '--id', '-1'], /--id: node id must be a non-negative integer/],
      [['certs', 'node', '--dir', dir, '--id', '5', '--host', 'bad host'], /--host: "bad host" is neither an IP address nor a DNS name/],
      [['certs', 'node', '--dir', dir, '--id', '5', '--days', '0'], /--days: 0 is out of range/],
      [['certs', 'client', '--dir', dir, '--name', '../evil'], /--name: "\.\.\/evil" is not a safe name/],
      [['certs', 'client', '--dir', dir, '--name', 'ok', '--role', 'root'], /--role: "root" is not a role; expected one of read, write, admin/],
    ];
    for (const [args, message] of cases) {
      const run = await tsraft(args);
      assertRefused(run, 2, message);
    }
    assert.equal(existsSync(join(dir, 'node-5.crt')), false);
    assert.equal(existsSync(join(root, 'evil.crt')), false);
    assert.equal(existsSync(join(dir, 'client-ok.crt')), false);
    // A missing required option is commander's usage error.
    const noId = await tsraft(['certs', 'node', '--dir', dir]);
    assert.equal(noId.code, 2);
    assert.match(noId.stderr, /required option '--id <n>' not specified/);
  });

  it('an unwritable --dir is one line, exit 1', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    assertRefused(await tsraft(['certs', 'init', '--dir', join(file, 'sub')]), 1, /^tsraft: cannot create directory .*: a part of the path is not a directory\n$/);
    assertRefused(await tsraft(['certs', 'node', '--dir', file, '--id', '1']), 2, /is not a directory/);
  });
});

describe('certs option parsers', () => {
  it('hosts: IPs, DNS names, brackets, commas, dedup, defaults', () => {
    assert.deepEqual(parseCertHosts(undefined), ['127.0.0.1', 'localhost']);
    assert.deepEqual(parseCertHosts(['10.0.0.1,Node.Example.', '[::1]', '10.0.0.1']), ['10.0.0.1', 'node.example', '::1']);
    assert.equal(parseCertHost('*.svc.local'), '*.svc.local');
    for (const bad of ['', 'a b', '-x.example', 'x..y', 'a/b', '999.1.1.1', '10.0.0', '10.0.0.1.', 'a'.repeat(64)]) {
      assert.throws(() => parseCertHost(bad), UsageError, bad);
    }
  });

  it('client names are safe file names; roles are read, write, admin', () => {
    assert.equal(parseClientName('ops_1.x-y'), 'ops_1.x-y');
    for (const bad of ['', '.hidden', '../x', 'a/b', 'a b', 'x'.repeat(65)]) assert.throws(() => parseClientName(bad), UsageError, bad);
    assert.deepEqual(parseRoles(['write,read', 'write']), ['write', 'read']);
    assert.deepEqual(parseRoles(undefined), []);
    assert.throws(() => parseRoles(['superuser']), UsageError);
  });
});
