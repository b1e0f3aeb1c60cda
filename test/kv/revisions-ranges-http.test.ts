/**
 * Revisions, conditional puts and ranges end to end, against one in-process 3-node cluster: the
 * X-Tsraft-Revision header and `revision` in every KV answer, the key's revisions on GET,
 * `if-mod-revision` (200 and 412), GET /v1/kv?prefix / start / end with paging, keys-only,
 * count-only, base64 keys, hostile parameters (400), a range asked of a follower (307 to the
 * leader, or served with stale=true), KvClient's range() and its page iterator, and the CLI's
 * `tsraft get --prefix` / `--from --to`, `get -o json` and `put --if-mod-revision`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { KvClient } from '../../src/kv/client.js';
import { MAIN } from '../cli/cli-fixture.js';
import { KvCluster, raw } from './kv-cluster-fixture.js';

const dec = new TextDecoder();

function errorCode(r: { json: Record<string, unknown> }): unknown {
  return (r.json['error'] as { code?: unknown } | undefined)?.code;
}

/** `tsraft ARGS`: exit code, stdout and stderr (killed after 20 s). */
function tsraft(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, TSRAFT_LEADER_CACHE: 'off' };
    delete env['TSRAFT_ENDPOINTS'];
    const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('revisions and ranges over HTTP, KvClient and the CLI', { timeout: 90_000 }, () => {
  let cluster: KvCluster;
  let client: KvClient;
  let base: string;
  let leader: number;

  before(async () => {
    cluster = await KvCluster.start({ size: 3, prefix: 'tsraft-kv-ranges-' });
    leader = await cluster.leader();
    base = cluster.url(leader);
    client = new KvClient({ endpoints: cluster.members.map((id) => cluster.url(id)), timeoutMs: 10_000 });
    for (const k of ['r/a', 'r/b', 'r/c', 'r/d', 'r/e', 's/x']) await client.put(k, `v-${k}`);
  });

  after(async () => {
    await client?.close();
    await cluster?.stop();
  });

  it('writes and reads carry the store revision (header and JSON) and the key revisions', async () => {
    const first = await raw(`${base}/v1/kv/rev-k`, { method: 'PUT', body: 'one' });
    assert.equal(first.status, 200);
    const r1 = first.json['revision'] as number;
    assert.ok(r1 > 0);
    assert.equal(first.headers.get('x-tsraft-revision'), String(r1));
    assert.deepEqual([first.json['createRevision'], first.json['modRevision'], first.json['version']], [r1, r1, 1]);
    const second = await raw(`${base}/v1/kv/rev-k?op=append`, { method: 'POST', body: '+' });
    assert.equal(second.json['revision'], r1 + 1);
    const got = await raw(`${base}/v1/kv/rev-k`);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('x-tsraft-revision'), String(r1 + 1));
    assert.deepEqual([got.json['revision'], got.json['createRevision'], got.json['modRevision'], got.json['version']], [r1 + 1, r1, r1 + 1, 2]);
    // A delete of an absent key and a failed cas do not advance it; a 404 says where the store is.
    const missing = await raw(`${base}/v1/kv/rev-none`, { method: 'DELETE' });
    assert.equal(missing.json['revision'], r1 + 1);
    const failedCas = await raw(`${base}/v1/kv/rev-k?cas=nope`, { method: 'POST', body: 'x' });
    assert.equal(failedCas.status, 409);
    assert.equal(failedCas.json['revision'], r1 + 1);
    const absent = await raw(`${base}/v1/kv/rev-none`);
    assert.equal(absent.status, 404);
    assert.equal(absent.headers.get('x-tsraft-revision'), String(r1 + 1));
    // A retried write (same session) answers with the original revision.
    const headers = { 'X-Client-Id': 'rev-client', 'X-Request-Seq': '1' };
    const once = await raw(`${base}/v1/kv/rev-once`, { method: 'PUT', body: 'a', headers });
    await client.put('rev-other', 'x');
    const retry = await raw(`${base}/v1/kv/rev-once`, { method: 'PUT', body: 'a', headers });
    assert.equal(retry.json['revision'], once.json['revision']);
    assert.equal(retry.json['index'], once.json['index']);
    // The leader's status shows the revision it has applied.
    const status = await client.status(base);
    assert.ok(status.revision >= (once.json['revision'] as number) + 1);
  });

  it('if-mod-revision: writes when it holds, 412 revision-mismatch when not (no write)', async () => {
    const created = await raw(`${base}/v1/kv/cond?if-mod-revision=0`, { method: 'PUT', body: 'v1' });
    assert.equal(created.status, 200);
    const mod = created.json['modRevision'] as number;
    const again = await raw(`${base}/v1/kv/cond?if-mod-revision=0`, { method: 'PUT', body: 'v2' });
    assert.equal(again.status, 412);
    assert.equal(errorCode(again), 'revision-mismatch');
    assert.equal((again.json['error'] as Record<string, unknown>)['modRevision'], mod);
    assert.equal(again.headers.get('x-tsraft-revision'), String(created.json['revision']));
    const ok = await raw(`${base}/v1/kv/cond?if-mod-revision=${mod}`, { method: 'PUT', body: 'v2' });
    assert.equal(ok.status, 200);
    assert.equal(ok.json['modRevision'], mod + 1);
    for (const bad of ['-1', 'x', '01', '1.5', '99999999999999999']) {
      const r = await raw(`${base}/v1/kv/cond?if-mod-revision=${bad}`, { method: 'PUT', body: 'v3' });
      assert.equal(r.status, 400, bad);
      assert.equal(errorCode(r), 'bad-parameter');
    }
    assert.equal((await raw(`${base}/v1/kv/cond?op=append&if-mod-revision=1`, { method: 'POST', body: 'z' })).status, 400);
    // KvClient
    const current = await client.getWithRevisions('cond');
    assert.equal(current?.modRevision, mod + 1);
    const refused = await client.put('cond', 'v3', { ifModRevision: mod });
    assert.equal(refused.written, false);
    assert.equal(refused.modRevision, mod + 1);
    const written = await client.put('cond', 'v3', { ifModRevision: mod + 1 });
    assert.equal(written.written, true);
    assert.equal(written.modRevision, written.revision);
    assert.equal(await client.get('cond'), 'v3');
  });

  it('GET /v1/kv: prefix, start/end, paging with next, keys-only, count-only, base64', async () => {
    const page1 = await raw(`${base}/v1/kv?prefix=r/&limit=2`);
    assert.equal(page1.status, 200);
    const keys = (r: { json: Record<string, unknown> }): unknown[] => (r.json['kvs'] as Record<string, unknown>[]).map((kv) => kv['key']);
    assert.deepEqual(keys(page1), ['r/a', 'r/b']);
    assert.equal(page1.json['more'], true);
    assert.equal(page1.json['count'], 2);
    assert.equal(page1.headers.get('x-tsraft-revision'), String(page1.json['revision']));
    const kv0 = (page1.json['kvs'] as Record<string, unknown>[])[0]!;
    assert.equal(kv0['value'], 'v-r/a');
    assert.equal(kv0['version'], 1);
    const page2 = await raw(`${base}/v1/kv?prefix=r/&limit=2&next=${page1.json['next'] as string}`);
    assert.deepEqual(keys(page2), ['r/c', 'r/d']);
    const page3 = await raw(`${base}/v1/kv?prefix=r/&limit=2&next=${page2.json['next'] as string}`);
    assert.deepEqual(keys(page3), ['r/e']);
    assert.equal(page3.json['more'], false);
    assert.equal(page3.json['next'], null);
    assert.deepEqual(keys(await raw(`${base}/v1/kv?start=r/b&end=r/d`)), ['r/b', 'r/c']);
    assert.deepEqual(keys(await raw(`${base}/v1/kv?start=r/e`)).slice(0, 2), ['r/e', 'rev-k']);
    const keysOnly = await raw(`${base}/v1/kv?prefix=s/&keys-only=true`);
    assert.deepEqual(keysOnly.json['kvs'], [{ key: 's/x', createRevision: 6, modRevision: 6, version: 1 }]);
    const count = await raw(`${base}/v1/kv?prefix=r/&count-only=true`);
    assert.equal(count.json['count'], 5);
    assert.equal(count.headers.get('x-tsraft-revision'), String(count.json['revision']));
    const empty = await raw(`${base}/v1/kv?prefix=nothing-here`);
    assert.deepEqual([empty.json['kvs'], empty.json['more'], empty.json['next']], [[], false, null]);
    // Binary keys, with encoding=base64 in and out.
    await client.put(new Uint8Array([0xfe, 0x00, 0x01]), new Uint8Array([0xff]));
    await client.put(new Uint8Array([0xfe, 0xff]), 'x');
    const bin = await raw(`${base}/v1/kv?prefix=${encodeURIComponent(Buffer.from([0xfe]).toString('base64'))}&encoding=base64`);
    const binKvs = bin.json['kvs'] as Record<string, unknown>[];
    assert.deepEqual(binKvs.map((kv) => kv['key']), [Buffer.from([0xfe, 0x00, 0x01]).toString('base64'), Buffer.from([0xfe, 0xff]).toString('base64')]);
    assert.equal(binKvs[0]!['value'], Buffer.from([0xff]).toString('base64'));
    // Without base64 a key that is not UTF-8 is still given, as base64 with keyEncoding.
    const pct = await raw(`${base}/v1/kv?prefix=%FE`);
    assert.equal((pct.json['kvs'] as Record<string, unknown>[])[0]!['keyEncoding'], 'base64');
  });

  it('KvClient.range and its iterators page through everything', async () => {
    const page = await client.range({ prefix: 'r/' }, { limit: 3 });
    assert.deepEqual(page.kvs.map((kv) => dec.decode(kv.key)), ['r/a', 'r/b', 'r/c']);
    assert.equal(page.more, true);
    assert.ok(page.next !== null && page.revision > 0);
    const rest = await client.range({ prefix: 'r/' }, { limit: 3, after: page.next! });
    assert.deepEqual(rest.kvs.map((kv) => dec.decode(kv.key)), ['r/d', 'r/e']);
    assert.equal(rest.more, false);
    const all: string[] = [];
    for await (const kv of client.rangeAll({ start: 'r/', end: 'r0' }, { limit: 2 })) all.push(`${dec.decode(kv.key)}=${dec.decode(kv.value)}`);
    assert.deepEqual(all, ['r/a=v-r/a', 'r/b=v-r/b', 'r/c=v-r/c', 'r/d=v-r/d', 'r/e=v-r/e']);
    let pages = 0;
    for await (const p of client.rangePages({ prefix: 'r/' }, { limit: 2, keysOnly: true })) {
      pages++;
      assert.ok(p.kvs.every((kv) => kv.value === undefined));
    }
    assert.equal(pages, 3);
    assert.deepEqual(await client.count({ prefix: 'r/' }).then((c) => c.count), 5);
  });

  it('a follower redirects a linearizable range to the leader, and serves stale=true itself', async () => {
    leader = await cluster.leader();
    const follower = (leader + 1) % 3;
    const redirected = await raw(`${cluster.url(follower)}/v1/kv?prefix=r/&limit=2`);
    assert.equal(redirected.status, 307);
    assert.equal(redirected.headers.get('location'), `${cluster.url(leader)}/v1/kv?prefix=r/&limit=2`);
    const followerClient = new KvClient({ endpoints: [cluster.url(follower)] });
    try {
      const page = await followerClient.range({ prefix: 'r/' });
      assert.equal(page.kvs.length, 5);
    } finally {
      await followerClient.close();
    }
    // A stale range is served by the follower (once it has applied the writes above).
    const deadline = Date.now() + 5_000;
    for (;;) {
      const stale = await raw(`${cluster.url(follower)}/v1/kv?prefix=r/&stale=true`);
      assert.equal(stale.status, 200);
      if ((stale.json['kvs'] as unknown[]).length === 5 || Date.now() > deadline) {
        assert.equal((stale.json['kvs'] as unknown[]).length, 5);
        break;
      }
    }
  });

  it('hostile range parameters answer 400 with a code, never a crash', async () => {
    const cases: [string, string][] = [
      ['', 'bad-range'],
      ['?prefix=a&start=b', 'bad-range'],
      ['?end=b', 'bad-range'],
      ['?start=b&end=a', 'bad-range'],
      ['?start=a&end=a', 'bad-range'],
      ['?start=a&end=', 'bad-range'],
      ['?prefix=a&limit=0', 'bad-parameter'],
      ['?prefix=a&limit=10001', 'bad-parameter'],
      ['?prefix=a&limit=-1', 'bad-parameter'],
      ['?prefix=a&limit=abc', 'bad-parameter'],
      ['?prefix=a&next=!!', 'bad-token'],
      ['?prefix=a&next=', 'bad-token'],
      ['?prefix=a&next=YQ==', 'bad-token'],
      ['?prefix=a&encoding=base64x', 'bad-parameter'],
      ['?prefix=***&encoding=base64', 'bad-parameter'],
      [`?prefix=${'a'.repeat(1025)}`, 'invalid-key'],
      ['?prefix=a&keys-only=yes', 'bad-parameter'],
      ['?prefix=a&count-only=1', 'bad-parameter'],
      ['?prefix=a&stale=maybe', 'bad-parameter'],
      ['?prefix=a&bogus=1', 'unknown-parameter'],
      ['?prefix=a&prefix=b', 'bad-parameter'],
      ['?prefix=%ZZ', 'malformed-percent-encoding'],
    ];
    for (const [query, code] of cases) {
      const r = await raw(`${base}/v1/kv${query}`);
      assert.equal(r.status, 400, query);
      assert.equal(errorCode(r), code, query);
    }
    const post = await raw(`${base}/v1/kv?prefix=a`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
  });

  it('the CLI: get --prefix / --from --to / --keys-only / --limit, get -o json, put --if-mod-revision', async () => {
    const at = ['--endpoints', cluster.members.map((id) => cluster.url(id)).join(',')];
    const prefix = await tsraft(['get', '--prefix', 'r/', ...at]);
    assert.equal(prefix.code, 0, prefix.stderr);
    assert.equal(prefix.stdout, 'r/a\nv-r/a\nr/b\nv-r/b\nr/c\nv-r/c\nr/d\nv-r/d\nr/e\nv-r/e\n');
    const keysOnly = await tsraft(['get', '--from', 'r/b', '--to', 'r/e', '--keys-only', ...at]);
    assert.equal(keysOnly.stdout, 'r/b\nr/c\nr/d\n');
    const limited = await tsraft(['get', '--prefix', 'r/', '--limit', '2', '-o', 'json', ...at]);
    assert.equal(limited.code, 0, limited.stderr);
    const doc = JSON.parse(limited.stdout) as { kvs: Record<string, unknown>[]; count: number; revision: number };
    assert.deepEqual(doc.kvs.map((kv) => kv['key']), ['r/a', 'r/b']);
    assert.equal(doc.count, 2);
    assert.ok(doc.revision > 0);
    assert.deepEqual(Object.keys(doc.kvs[0]!), ['key', 'value', 'encoding', 'createRevision', 'modRevision', 'version']);
    const none = await tsraft(['get', '--prefix', 'zzz', '-o', 'json', ...at]);
    const noneDoc = JSON.parse(none.stdout) as Record<string, unknown>;
    assert.deepEqual([noneDoc['kvs'], noneDoc['count']], [[], 0]);
    assert.equal(none.code, 0);
    const one = await tsraft(['get', 'r/a', '-o', 'json', ...at]);
    const oneDoc = JSON.parse(one.stdout) as Record<string, unknown>;
    assert.equal(oneDoc['value'], 'v-r/a');
    assert.equal(oneDoc['version'], 1);
    assert.equal(typeof oneDoc['modRevision'], 'number');
    const mod = oneDoc['modRevision'] as number;
    const refused = await tsraft(['put', 'r/a', 'new', '--if-mod-revision', String(mod + 1000), ...at]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`mod revision is ${mod}`));
    const put = await tsraft(['put', 'r/a', 'new', '--if-mod-revision', String(mod), '-o', 'json', ...at]);
    assert.equal(put.code, 0, put.stderr);
    assert.equal((JSON.parse(put.stdout) as Record<string, unknown>)['ok'], true);
    const usage = await tsraft(['get', 'r/a', '--prefix', 'r/', ...at]);
    assert.equal(usage.code, 2);
  });
});
