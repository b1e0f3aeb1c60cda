/**
 * POST /v1/txn end to end on one in-process 3-node cluster: both branches, exactly-once, a
 * follower's redirect, bad bodies (400 naming the field), the README's lock recipe through KvClient,
 * a watch seeing a transaction as one revision, and `tsraft txn` from a file and from stdin.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvClient } from '../../src/kv/client.js';
import { KvCluster, readSse, waitFor } from './kv-cluster-fixture.js';
import { MAIN, tsraft } from '../cli/cli-fixture.js';

type Json = Record<string, unknown>;

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Json; headers: Headers }> {
  const response = await fetch(`${url}/v1/txn`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    redirect: 'manual',
  });
  return { status: response.status, json: (await response.json()) as Json, headers: response.headers };
}


/** Runs `tsraft ARGS` with `input` on its standard input. */
function tsraftWithInput(args: readonly string[], input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env['TSRAFT_ENDPOINTS'];
    const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

describe('POST /v1/txn on a real cluster', { timeout: 120_000 }, () => {
  let cluster: KvCluster;
  let client: KvClient;
  let leaderUrl: string;
  let dir: string;

  before(async () => {
    cluster = await KvCluster.start({ prefix: 'tsraft-txn-' });
    const leader = await cluster.leader();
    leaderUrl = cluster.url(leader);
    client = new KvClient({ endpoints: cluster.members.map((id) => cluster.url(id)), timeoutMs: 15_000 });
    dir = mkdtempSync(join(tmpdir(), 'tsraft-txn-cli-'));
  });
  after(async () => {
    await client.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('then and else branches, results, revision header, exactly-once', async () => {
    await client.put('t/a', '1');
    const ok = await post(leaderUrl, {
      compare: [{ key: 't/a', target: 'value', op: '=', value: '1' }],
      then: [{ put: { key: 't/a', value: '2' } }, { put: { key: 't/b', value: 'B' } }, { get: { key: 't/a' } }, { delete: { key: 't/none' } }],
      else: [{ get: { key: 't/a' } }],
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal(ok.json['succeeded'], true);
    const revision = ok.json['revision'] as number;
    assert.equal(ok.headers.get('x-tsraft-revision'), String(revision));
    const results = ok.json['results'] as Json[];
    assert.deepEqual(results[0], { put: { previous: '1', encoding: 'utf8', createRevision: (results[0]!['put'] as Json)['createRevision'], modRevision: revision, version: 2 } });
    assert.equal(((results[1]!['put'] as Json)['previous'] as unknown), null);
    assert.equal((results[1]!['put'] as Json)['modRevision'], revision);
    assert.deepEqual(results[2], { get: { value: '2', encoding: 'utf8', createRevision: (results[0]!['put'] as Json)['createRevision'], modRevision: revision, version: 2 } });
    assert.deepEqual(results[3], { delete: { deleted: false, previous: null, encoding: 'utf8' } });

    const b64 = (t: string): string => Buffer.from(t).toString('base64');
    const failed = await post(leaderUrl, {
      compare: [{ key: b64('t/a'), target: 'version', op: '>', value: 5 }],
      then: [{ delete: { key: b64('t/a') } }],
      else: [{ get: { key: b64('t/a') } }, { get: { key: b64('t/missing') } }],
      encoding: 'base64',
    });
    assert.equal(failed.status, 200, JSON.stringify(failed.json));
    assert.equal(failed.json['succeeded'], false);
    assert.equal(failed.json['revision'], revision, 'a read-only branch does not advance the revision');
    assert.equal(failed.json['encoding'], 'base64');
    assert.deepEqual((failed.json['results'] as Json[]).map((r) => r['get'] === null ? null : (r['get'] as Json)['value']), [Buffer.from('2').toString('base64'), null]);

    // A retry with the same session answers the first result, at the first index.
    const headers = { 'X-Client-Id': 'txn-http-test', 'X-Request-Seq': '1' };
    const body = { then: [{ put: { key: 't/once', value: 'x' } }] };
    const first = await post(leaderUrl, body, headers);
    const second = await post(leaderUrl, body, headers);
    assert.equal(second.status, 200);
    assert.deepEqual(second.json, first.json);
    assert.equal((await client.getWithRevisions('t/once'))?.version, 1);
  });

  test('a follower redirects to the leader before reading the body', async () => {
    const leader = await cluster.leader();
    const follower = await waitFor('a follower that knows the leader', 10_000, () =>
      cluster.members.find((id) => id !== leader && cluster.servers[id]?.status().leaderId === leader),
    );
    const answer = await post(cluster.url(follower), '{"then":[]}');
    assert.equal(answer.status, 307);
    assert.equal(answer.headers.get('location'), `${cluster.url(leader)}/v1/txn`);
  });

  test('bad bodies answer 400 naming the field', async () => {
    const cases: [unknown, number, string, string | undefined][] = [
      ['{not json', 400, 'bad-json', undefined],
      ['[]', 400, 'bad-json', undefined],
      [{ then: [{ put: { key: 1, value: 'v' } }] }, 400, 'bad-txn', 'then[0].put.key'],
      [{ then: [{ get: { key: 'k' } }, { put: { key: 'k' } }] }, 400, 'bad-txn', 'then[1].put.value'],
      [{ else: [{ put: { key: 'k', value: 'v' }, get: { key: 'k' } }] }, 400, 'bad-txn', 'else[0]'],
      [{ then: [{ patch: { key: 'k' } }] }, 400, 'bad-txn', 'then[0].patch'],
      [{ compare: [{ key: 'k', target: 'exists', op: '<', value: true }] }, 400, 'bad-txn', 'compare[0].op'],
      [{ compare: [{ key: 'k', target: 'mod', op: '=', value: -1 }] }, 400, 'bad-txn', 'compare[0].value'],
      [{ compare: [{ key: 'k', target: 'value', op: '=', value: 'v', extra: 1 }] }, 400, 'bad-txn', 'compare[0].extra'],
      [{ compare: [{ key: '', target: 'value', op: '=', value: 'v' }] }, 400, 'invalid-key', 'compare[0].key'],
      [{ thenn: [] }, 400, 'bad-txn', 'thenn'],
      [{ then: [{ put: { key: 'd', value: '1' } }, { delete: { key: 'd' } }] }, 400, 'duplicate-key', 'then[1].delete.key'],
      [{ then: Array.from({ length: 129 }, () => ({ get: { key: 'k' } })) }, 400, 'too-many-operations', 'then'],
      [{ then: [{ put: { key: '!!', value: 'v' } }], encoding: 'base64' }, 400, 'bad-txn', 'then[0].put.key'],
      ['{"then":[{"put":{"key":"\\ud800","value":"v"}}]}', 400, 'bad-txn', 'then[0].put.key'],
      [{ compare: [{ key: 'k', target: 'value', op: '=', value: 'v' }], then: 'all' }, 400, 'bad-txn', 'then'],
    ];
    for (const [body, status, code, field] of cases) {
      const answer = await post(leaderUrl, body);
      const error = answer.json['error'] as Json;
      assert.equal(answer.status, status, JSON.stringify({ body, answer: answer.json }));
      assert.equal(error['code'], code, JSON.stringify(body));
      assert.equal(error['field'], field, JSON.stringify(body));
      if (field !== undefined) assert.ok(String(error['message']).startsWith(field), String(error['message']));
    }
    const get = await fetch(`${leaderUrl}/v1/txn`);
    assert.equal(get.status, 405);
    await get.text();
  });

  test('the lock recipe: acquire, contend, release', async () => {
    const acquire = (id: string) =>
      client.txn({ compare: [{ key: 'locks/a', target: 'create', op: '=', value: 0 }], then: [{ put: { key: 'locks/a', value: id } }], else: [{ get: { key: 'locks/a' } }] });
    const release = (id: string) => client.txn({ compare: [{ key: 'locks/a', target: 'value', op: '=', value: id }], then: [{ delete: { key: 'locks/a' } }] });
    const first = await acquire('alice');
    assert.equal(first.succeeded, true);
    assert.equal(first.results[0]!.type, 'put');
    const contended = await acquire('bob');
    assert.equal(contended.succeeded, false);
    const holder = contended.results[0]!;
    assert.ok(holder.type === 'get' && Buffer.from(holder.value!).toString() === 'alice');
    assert.equal((await release('bob')).succeeded, false, 'only the holder releases');
    const released = await release('alice');
    assert.equal(released.succeeded, true);
    assert.ok(released.results[0]!.type === 'delete' && released.results[0]!.deleted);
    assert.equal((await acquire('bob')).succeeded, true);
    await assert.rejects(client.txn({ then: [{ put: { key: 'x', value: '1' } }, { put: { key: 'x', value: '2' } }] }), (e: Error & { code?: string }) => e.code === 'bad-request' && /then\[1\]\.put\.key/.test(e.message));
  });

  test('a watch sees a transaction as one revision', async () => {
    const start = await client.put('w/c', 'c');
    const live = readSse(`${leaderUrl}/v1/watch?prefix=w/&from-revision=${start.revision! + 1}`, (m) => m.some((x) => x.event === 'events')).then((r) => r.messages);
    const t = await client.txn({ then: [{ put: { key: 'w/a', value: 'A' } }, { put: { key: 'w/b', value: 'B' } }, { delete: { key: 'w/c' } }, { put: { key: 'other', value: 'o' } }] });
    const events = (await live).filter((m) => m.event === 'events');
    assert.equal(events.length, 1);
    assert.equal(events[0]!.data['revision'], t.revision);
    assert.deepEqual((events[0]!.data['events'] as Json[]).map((e) => [e['type'], e['key']]), [
      ['put', 'w/a'],
      ['put', 'w/b'],
      ['delete', 'w/c'],
    ]);
  });

  test('tsraft txn from a file and from stdin', async () => {
    const endpoints = cluster.members.map((id) => cluster.url(id)).join(',');
    const file = join(dir, 'acquire.json');
    writeFileSync(file, JSON.stringify({ compare: [{ key: 'cli/lock', target: 'create', op: '=', value: 0 }], then: [{ put: { key: 'cli/lock', value: 'me' } }], else: [{ get: { key: 'cli/lock' } }] }));
    const [won, lost] = [await tsraft(['txn', file, '--endpoints', endpoints]), await tsraft(['txn', file, '--endpoints', endpoints, '-o', 'json'])];
    assert.equal(won.code, 0, won.stderr);
    assert.match(won.stdout, /^then ran \(revision \d+, index \d+\)\nput "cli\/lock": previous absent/);
    assert.equal(lost.code, 1, lost.stderr);
    const json = JSON.parse(lost.stdout) as Json;
    assert.equal(json['branch'], 'else');
    assert.deepEqual((json['results'] as Json[]).map((r) => [r['op'], r['key'], r['value']]), [['get', 'cli/lock', 'me']]);

    const piped = await tsraftWithInput(['txn', '-', '--endpoints', endpoints], '{"then":[{"get":{"key":"cli/lock"}}]}');
    assert.equal(piped.code, 0, piped.stderr);
    assert.match(piped.stdout, /get "cli\/lock": "me", mod revision \d+/);
    const bad = await tsraftWithInput(['txn', '-', '--endpoints', endpoints], '{"then":[{"put":{"key":"k"}}]}');
    assert.equal(bad.code, 2, bad.stdout);
    assert.match(bad.stderr, /then\[0\]\.put\.value/);
    const notJson = await tsraft(['txn', join(dir, 'missing.json'), '--endpoints', endpoints]);
    assert.equal(notJson.code, 2, notJson.stderr);
  });
});
