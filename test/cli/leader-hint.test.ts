/**
 * The CLI remembers, per --endpoints list, the endpoint that answered last: the hint file's rules
 * (fresh, one of the endpoints, malformed files ignored, off switch, bounded size), and end to end,
 * a second `tsraft get` no longer spends an attempt on a hung first endpoint.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LEADER_HINT_TTL_MS, leaderHintFile, readLeaderHint, saveLeaderHint } from '../../src/cli/leader-hint.js';
import { tsraft } from './cli-fixture.js';

describe('leader hints: the file', () => {
  let dir: string;
  let file: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsraft-hints-'));
    file = join(dir, 'tsraft', 'leader-hints.json');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const endpoints = ['http://127.0.0.1:1', 'http://127.0.0.1:2/', 'http://127.0.0.1:3'];

  it('a saved hint is read back for the same endpoints list, normalized, until it is too old', () => {
    saveLeaderHint(endpoints, 'http://127.0.0.1:2', file, 1_000_000);
    assert.equal(readLeaderHint(endpoints, file, 1_000_001), 'http://127.0.0.1:2');
    assert.equal(readLeaderHint(endpoints, file, 1_000_000 + LEADER_HINT_TTL_MS + 1), undefined);
    assert.equal(readLeaderHint(endpoints.slice(0, 2), file, 1_000_001), undefined, 'another list is another cluster');
  });

  it('a hint that is not one of the endpoints is ignored (a tampered file cannot redirect requests)', () => {
    saveLeaderHint(endpoints, 'http://evil.example:80', file, 2_000_000);
    assert.equal(readLeaderHint(endpoints, file, 2_000_001), undefined);
  });

  it('a malformed file is ignored and replaced on the next save', () => {
    writeFileSync(file, '{not json');
    assert.equal(readLeaderHint(endpoints, file), undefined);
    saveLeaderHint(endpoints, 'http://127.0.0.1:3', file);
    assert.equal(readLeaderHint(endpoints, file), 'http://127.0.0.1:3');
    writeFileSync(file, JSON.stringify({ [endpoints.join(',')]: { url: 7, at: 'x' } }));
    assert.equal(readLeaderHint(endpoints, file), undefined);
  });

  it('keeps at most 32 clusters, the newest', () => {
    for (let i = 0; i < 40; i++) saveLeaderHint([`http://127.0.0.1:${1000 + i}`], `http://127.0.0.1:${1000 + i}`, file, 3_000_000 + i);
    const kept = Object.keys(JSON.parse(readFileSync(file, 'utf8')) as object);
    assert.equal(kept.length, 32);
    assert.ok(kept.includes('http://127.0.0.1:1039') && !kept.includes('http://127.0.0.1:1000'));
  });

  it('TSRAFT_LEADER_CACHE=off turns hints off; XDG_CACHE_HOME places the file', () => {
    assert.equal(leaderHintFile({ TSRAFT_LEADER_CACHE: 'off', XDG_CACHE_HOME: dir }), undefined);
    assert.equal(leaderHintFile({ XDG_CACHE_HOME: dir }), join(dir, 'tsraft', 'leader-hints.json'));
  });

  it('an unwritable place is not an error', () => {
    writeFileSync(join(dir, 'plain-file'), '');
    assert.doesNotThrow(() => saveLeaderHint(endpoints, 'http://127.0.0.1:1', join(dir, 'plain-file', 'sub', 'hints.json')));
  });
});

describe('leader hints: the CLI', { timeout: 60_000 }, () => {
  let cache: string;
  let hung: Server;
  let hungRequests = 0;
  const sockets = new Set<Socket>();
  let healthy: HttpServer;
  let endpoints: string;

  before(async () => {
    cache = mkdtempSync(join(tmpdir(), 'tsraft-hints-cli-'));
    // Accepts connections and never answers: a paused node.
    hung = createServer((socket) => {
      sockets.add(socket);
      socket.on('data', (chunk: Buffer) => (hungRequests += (chunk.toString('latin1').match(/ HTTP\/1\.1\r\n/g) ?? []).length));
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    healthy = createHttpServer((request, response) => {
      request.resume();
      response.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ key: 'k', value: 'v' }));
    });
    await new Promise<void>((resolve) => healthy.listen(0, '127.0.0.1', resolve));
    endpoints = [hung, healthy].map((s) => `http://127.0.0.1:${(s.address() as { port: number }).port}`).join(',');
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => hung.close(() => resolve()));
    await new Promise<void>((resolve) => healthy.close(() => resolve()));
    rmSync(cache, { recursive: true, force: true });
  });

  it('the second command starts at the endpoint that answered the first: the hung one is not asked again', async () => {
    const env = { XDG_CACHE_HOME: cache, TSRAFT_LEADER_CACHE: '' };
    const args = ['get', 'k', '--endpoints', endpoints, '--attempt-timeout', '300'];
    const first = await tsraft(args, { env });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'v\n');
    assert.equal(hungRequests, 1, 'the first command tried the hung endpoint first');
    const second = await tsraft(args, { env });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(hungRequests, 1, 'the second command went straight to the endpoint that answered');
    const off = await tsraft(args, { env: { ...env, TSRAFT_LEADER_CACHE: 'off' } });
    assert.equal(off.code, 0, off.stderr);
    assert.equal(hungRequests, 2, 'with hints off, the first endpoint is tried first again');
  });
});
