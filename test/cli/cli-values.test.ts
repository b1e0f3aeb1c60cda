/**
 * The CLI's arguments and output against a real `tsraft start` cluster: excess arguments are usage
 * errors (exit 2) for every command; values come from the command line, standard input (`-`) or a
 * file (@FILE, @@ for a literal @), byte for byte; `get --raw` / `--base64`; `-o json` on every
 * command that prints, with the documented shapes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertNoStackTrace, MAIN, startPorts, TsraftStart } from './cli-fixture.js';

interface BinaryRun {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** `tsraft ARGS` with `input` on its stdin (empty if none), its stdout as bytes; killed after 20 s. */
function tsraft(args: readonly string[], input?: Uint8Array): Promise<BinaryRun> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env['TSRAFT_ENDPOINTS'];
    const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? new Uint8Array());
  });
}

/** Every byte value, and invalid UTF-8 among them. */
const BINARY = new Uint8Array(Array.from({ length: 256 }, (_, i) => i));

describe('tsraft arguments, values and output', { timeout: 120_000 }, () => {
  let dir: string;
  let start: TsraftStart;
  let at: string[];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsraft-cli-values-'));
    const ports = await startPorts();
    at = ['--endpoints', ports.endpoints.join(',')];
    start = TsraftStart.spawn(['--nodes', '3', '--data-dir', join(dir, 'data'), ...ports.args]);
    await start.waitFor('the leader line', /\[start\] leader: node \d+ /);
  });

  after(async () => {
    await start?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('excess arguments are a usage error (exit 2) for every command, and nothing is written', async () => {
    const excess: string[][] = [
      ['put', 'greeting', 'hello', 'world'],
      ['append', 'greeting', 'hello', 'world'],
      ['cas', 'greeting', 'a', 'b', 'c'],
      ['get', 'greeting', 'extra'],
      ['del', 'greeting', 'extra'],
      ['status', 'extra'],
      ['leader', 'transfer', 'extra'],
      ['member', 'list', 'extra'],
      ['member', 'add', '3', 'extra', '--raft', '127.0.0.1:7003', '--http', 'http://127.0.0.1:8003'],
      ['member', 'promote', '3', '4'],
      ['member', 'remove', '3', '4'],
      ['start', 'extra'],
      ['node', 'extra'],
      ['certs', 'init', 'extra', '--dir', join(dir, 'never-made')],
      ['tokens', 'list', 'extra', '--file', join(dir, 'never-made.json')],
    ];
    for (const args of excess) {
      const run = await tsraft([...args, ...(['start', 'node', 'certs', 'tokens'].includes(args[0]!) ? [] : at)]);
      assert.equal(run.code, 2, `${args.join(' ')}: exit ${run.code}\n${run.stderr}`);
      assert.match(run.stderr, /too many arguments/, args.join(' '));
      assertNoStackTrace(run.stderr);
    }
    assert.equal(existsSync(join(dir, 'never-made')), false);
    const get = await tsraft(['get', 'greeting', ...at]);
    assert.equal(get.code, 1, 'the refused put wrote nothing');
    assert.match(get.stderr, /not found/);
  });

  it('put from @FILE and from stdin, byte for byte; get prints the bytes (no U+FFFD), --raw without the newline, --base64', async () => {
    const file = join(dir, 'photo.bin');
    writeFileSync(file, BINARY);
    assert.equal((await tsraft(['put', 'bin-file', `@${file}`, ...at])).code, 0);
    const raw = await tsraft(['get', '--raw', 'bin-file', ...at]);
    assert.equal(raw.code, 0, raw.stderr);
    assert.deepEqual(new Uint8Array(raw.stdout), BINARY);
    const plain = await tsraft(['get', 'bin-file', ...at]);
    assert.deepEqual(new Uint8Array(plain.stdout), new Uint8Array([...BINARY, 0x0a]));
    const b64 = await tsraft(['get', '--base64', 'bin-file', ...at]);
    assert.equal(b64.stdout.toString('utf8'), `${Buffer.from(BINARY).toString('base64')}\n`);

    const piped = await tsraft(['put', 'bin-stdin', '-', ...at], BINARY.slice(100));
    assert.equal(piped.code, 0, piped.stderr);
    assert.deepEqual(new Uint8Array((await tsraft(['get', '--raw', 'bin-stdin', ...at])).stdout), BINARY.slice(100));

    assert.equal((await tsraft(['append', 'bin-stdin', `@${file}`, ...at])).code, 0);
    assert.deepEqual(new Uint8Array((await tsraft(['get', '--raw', 'bin-stdin', ...at])).stdout), new Uint8Array([...BINARY.slice(100), ...BINARY]));
  });

  it('@@ is a literal @, --literal takes values as given, and a missing @FILE or two stdins are usage errors', async () => {
    assert.equal((await tsraft(['put', 'at', '@@home', ...at])).code, 0);
    assert.equal((await tsraft(['get', 'at', ...at])).stdout.toString(), '@home\n');
    assert.equal((await tsraft(['put', 'dash', '--literal', ...at, '--', '-'])).code, 0);
    assert.equal((await tsraft(['get', 'dash', ...at])).stdout.toString(), '-\n');

    const missing = await tsraft(['put', 'x', '@/no/such/file', ...at]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read "\/no\/such\/file" \(no such file\); for a value that starts with @, write @@/);
    assertNoStackTrace(missing.stderr);
    const twice = await tsraft(['cas', 'x', '-', '-', ...at], new Uint8Array([1]));
    assert.equal(twice.code, 2);
    assert.match(twice.stderr, /only one value can come from standard input/);
  });

  it('cas with values from a file and stdin', async () => {
    const file = join(dir, 'expected.bin');
    writeFileSync(file, BINARY.slice(0, 10));
    assert.equal((await tsraft(['put', 'cas-bin', `@${file}`, ...at])).code, 0);
    const swapped = await tsraft(['cas', 'cas-bin', `@${file}`, '-', ...at], BINARY.slice(200));
    assert.equal(swapped.code, 0, swapped.stderr);
    assert.deepEqual(new Uint8Array((await tsraft(['get', '--raw', 'cas-bin', ...at])).stdout), BINARY.slice(200));
  });

  it('-o json on get, put, append, del, cas, status, member list and leader transfer', async () => {
    const json = async (args: string[], code = 0): Promise<Record<string, unknown>> => {
      const run = await tsraft([...args, ...at]);
      assert.equal(run.code, code, `${args.join(' ')}: ${run.stderr}`);
      return JSON.parse(run.stdout.toString('utf8')) as Record<string, unknown>;
    };
    const put = await json(['put', 'j', 'v1', '-o', 'json']);
    assert.equal(put['ok'], true);
    assert.equal(put['key'], 'j');
    assert.equal(typeof put['index'], 'number');
    assert.equal(typeof (await json(['append', 'j', '2', '--output', 'json']))['index'], 'number');
    /** The JSON without the revisions, which depend on what the other tests wrote. */
    const withoutRevisions = (doc: Record<string, unknown>): Record<string, unknown> => {
      for (const field of ['revision', 'createRevision', 'modRevision', 'version']) assert.equal(typeof doc[field], 'number', field);
      const { revision: _r, createRevision: _c, modRevision: _m, version: _v, ...rest } = doc;
      return rest;
    };
    const j = await json(['get', 'j', '-o', 'json']);
    assert.deepEqual(withoutRevisions(j), { key: 'j', found: true, value: 'v12', encoding: 'utf8' });
    assert.equal(j['version'], 2, 'a put and an append');
    assert.equal(j['modRevision'], j['createRevision'] as number + 1);
    assert.deepEqual(withoutRevisions(await json(['get', 'bin-file', '-o', 'json'])), { key: 'bin-file', found: true, value: Buffer.from(BINARY).toString('base64'), encoding: 'base64' });
    const cas = await json(['cas', 'j', 'nope', 'v3', '-o', 'json'], 1);
    assert.equal(cas['swapped'], false);
    assert.equal(cas['current'], 'v12');
    assert.equal((await json(['cas', 'j', 'v12', 'v3', '-o', 'json']))['swapped'], true);
    assert.equal((await json(['del', 'j', '-o', 'json']))['ok'], true);
    assert.deepEqual(await json(['get', 'j', '-o', 'json'], 1), { key: 'j', found: false, value: null, encoding: 'utf8' });

    const status = (await json(['status', '-o', 'json'])) as unknown as { endpoint: string; status?: { role?: string } }[];
    assert.equal(status.length, 3);
    assert.equal(status.filter((s) => s.status?.role === 'leader').length, 1);
    const members = await json(['member', 'list', '-o', 'json']);
    assert.equal((members['voters'] as unknown[]).length, 3);
    assert.equal(typeof members['leader'], 'number');
    const moved = await json(['leader', 'transfer', '-o', 'json']);
    assert.equal(moved['moved'], true);
    assert.equal(moved['previousLeaderId'], members['leader']);
    assert.equal(typeof moved['leaderId'], 'number');
    assert.equal(typeof moved['term'], 'number');

    const bad = await tsraft(['get', 'j', '-o', 'yaml', ...at]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /argument 'yaml' is invalid/);
  });
});
