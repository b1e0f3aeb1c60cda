/**
 * Backups end to end: `tsraft snapshot save` against a 3-node cluster (asked through a follower:
 * it redirects to the leader) holds every acknowledged write; `snapshot status` checks it; three
 * `snapshot restore`s seed a new cluster on other ports that answers every key with its value; a
 * damaged file (truncated, a flipped byte, trailing bytes, another format) is refused with its
 * reason, and a restore never writes into a non-empty directory.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BackupError, decodeBackup, encodeBackup } from '../../src/kv/backup.js';
import { KvClient } from '../../src/kv/client.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { encodeKvCommand } from '../../src/kv/commands.js';
import { assertNoStackTrace, tsraft } from '../cli/cli-fixture.js';
import { KvCluster, waitFor } from './kv-cluster-fixture.js';

const utf8 = new TextEncoder();

function peersOf(cluster: KvCluster): string {
  return cluster.peers.map((p) => `${p.id}=${p.raftHost}:${p.raftPort}/${p.httpUrl}`).join(',');
}

describe('backup files: decoding refuses what is not a whole, intact backup', () => {
  const machine = new KvStateMachine();
  machine.apply({ index: 1, term: 1, command: encodeKvCommand({ op: 'put', clientId: 'c', seq: 1, key: utf8.encode('a'), value: utf8.encode('1') }) });
  const good = encodeBackup({ clusterId: 'tsraft', takenFrom: 0, index: 1, term: 1, voters: [0, 1, 2], learners: [], data: machine.snapshot() });

  it('a good file decodes with its key count', () => {
    const { header, keys } = decodeBackup(good);
    assert.equal(header.index, 1);
    assert.equal(keys, 1);
  });

  const cases: [string, Uint8Array, RegExp][] = [
    ['empty', new Uint8Array(0), /empty/],
    ['not a backup', utf8.encode('hello world\n'), /not JSON/],
    ['truncated', good.subarray(0, good.length - 1), /truncated/],
    ['trailing bytes', new Uint8Array([...good, 0]), /trailing/],
    ['a flipped data byte', (() => { const b = good.slice(); b[b.length - 1]! ^= 0xff; return b; })(), /checksum mismatch/],
    ['another version', utf8.encode(new TextDecoder().decode(good).replace('"version":1', '"version":9')), /version 9 is not supported/],
    ['no newline in the first 64 KiB', new Uint8Array(70_000).fill(0x41), /no header line/],
  ];
  for (const [name, bytes, reason] of cases) {
    it(`${name}: BackupError`, () => {
      assert.throws(() => decodeBackup(bytes), (error: unknown) => error instanceof BackupError && reason.test(error.message));
    });
  }
});

describe('tsraft snapshot save / status / restore against real clusters', { timeout: 120_000 }, () => {
  let source: KvCluster;
  let restored: KvCluster | undefined;
  let dir: string;

  before(async () => {
    source = await KvCluster.start({ prefix: 'tsraft-backup-' });
    dir = join(source.root, 'backups');
    mkdirSync(dir);
  });
  after(async () => {
    await restored?.stop();
    await source.stop();
  });

  it('save holds every acknowledged write; status checks the file; restore seeds a new cluster that answers every key', async () => {
    const client = new KvClient({ endpoints: source.members.map((id) => source.url(id)), timeoutMs: 10_000 });
    for (let i = 0; i < 50; i++) await client.put(`key-${i}`, `value-${i}`);
    await client.put('greeting', 'hello');
    const leader = await waitFor('a leader', 10_000, () => source.members.find((id) => source.servers[id]?.status().role === 'leader'));
    const follower = source.members.find((id) => id !== leader)!;
    const file = join(dir, 'one.backup');

    // Asked through a follower: it redirects to the leader.
    const save = await tsraft(['snapshot', 'save', file, '--endpoints', source.url(follower)]);
    assert.equal(save.code, 0, save.stderr);
    assert.match(save.stdout, /^saved .*one\.backup: index \d+, term \d+, 51 keys/);
    const again = await tsraft(['snapshot', 'save', file, '--endpoints', source.url(follower)]);
    assert.equal(again.code, 2, 'an existing file is not replaced without --force');
    assert.match(again.stderr, /exists; give --force/);

    const status = await tsraft(['snapshot', 'status', file, '-o', 'json']);
    assert.equal(status.code, 0, status.stderr);
    const header = JSON.parse(status.stdout) as { keys: number; index: number; takenFrom: number; format: string };
    assert.equal(header.format, 'tsraft-backup');
    assert.equal(header.keys, 51);
    assert.equal(header.takenFrom, leader);

    // A new cluster on other ports, seeded from the file, one restore per member.
    restored = new KvCluster(join(source.root, 'restored'), await freePeers(), {});
    mkdirSync(restored.root);
    const peers = peersOf(restored);
    for (const id of restored.members) {
      const run = await tsraft(['snapshot', 'restore', file, '--data-dir', join(restored.root, `node-${id}`), '--id', String(id), '--peers', peers, '--no-fsync']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /restored .* \(index \d+, 51 keys\) into .* as node \d of cluster "tsraft" with members 0, 1, 2\nstart it with: tsraft node --data-dir /);
    }
    const refused = await tsraft(['snapshot', 'restore', file, '--data-dir', join(restored.root, 'node-0'), '--id', '0', '--peers', peers]);
    assert.equal(refused.code, 2, 'a non-empty directory is refused');
    assert.match(refused.stderr, /is not empty: a restore never overwrites data/);
    for (const id of restored.members) await restored.startServer(id, { fromIdentity: true });
    const reader = new KvClient({ endpoints: restored.members.map((id) => restored!.url(id)), timeoutMs: 15_000 });
    for (let i = 0; i < 50; i++) assert.equal(await reader.get(`key-${i}`), `value-${i}`);
    // The restored cluster takes writes, and the source cluster is untouched by it.
    await reader.put('after-restore', 'yes');
    assert.equal(await client.get('after-restore'), null);
  });

  it('a damaged file is refused by status and restore, naming the reason; a non-backup too', async () => {
    const file = join(dir, 'damaged.backup');
    const good = readFileSync(join(dir, 'one.backup'));
    writeFileSync(file, good.subarray(0, good.length - 10));
    const status = await tsraft(['snapshot', 'status', file]);
    assert.equal(status.code, 1);
    assert.match(status.stderr, /is not a usable backup: the header announces \d+ data bytes but the file holds \d+ \(truncated\)/);
    assertNoStackTrace(status.stderr);
    const target = join(dir, 'never');
    const restore = await tsraft(['snapshot', 'restore', file, '--data-dir', target, '--id', '0', '--peers', '0=127.0.0.1:1/http://127.0.0.1:2']);
    assert.equal(restore.code, 1);
    rmSync(target, { recursive: true, force: true });
    const missing = await tsraft(['snapshot', 'status', join(dir, 'nope')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read/);
    const wrongId = await tsraft(['snapshot', 'restore', join(dir, 'one.backup'), '--data-dir', target, '--id', '5', '--peers', '0=127.0.0.1:1/http://127.0.0.1:2']);
    assert.equal(wrongId.code, 2);
    assert.match(wrongId.stderr, /--id 5 is not one of --peers/);
  });
});

async function freePeers(): Promise<{ id: number; raftHost: string; raftPort: number; httpUrl: string }[]> {
  const { freeLoopbackPorts } = await import('../../src/testing/ports.js');
  const ports = await freeLoopbackPorts(6);
  return [0, 1, 2].map((id) => ({ id, raftHost: '127.0.0.1', raftPort: ports[id]!, httpUrl: `http://127.0.0.1:${ports[3 + id]!}` }));
}
