/**
 * The cluster identity of a data directory (src/storage/cluster-identity.ts): the first start
 * records it, later starts compare (a different cluster id, own id, member-id or learner-id set is
 * refused, an address change is not), a damaged file is refused naming the file, a version 1 file
 * (before learners) is still read, Raft data written before identities existed adopts the identity
 * it is started with, the write is temp + fsync + rename + directory fsync, and KvServer runs the
 * check before it opens storage (and, started without peers, reads its starting configuration
 * from it).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KvServer, type KvPeer } from '../../src/kv/server.js';
import { ConfigError } from '../../src/runtime/errors.js';
import {
  CLUSTER_IDENTITY_FILE,
  ClusterIdentityError,
  decodeClusterIdentity,
  encodeClusterIdentity,
  ensureClusterIdentity,
  inspectClusterIdentity,
  readClusterIdentity,
  type ClusterIdentity,
} from '../../src/storage/cluster-identity.js';
import { crc32c } from '../../src/storage/crc32c.js';
import { FileStorage } from '../../src/storage/file-storage.js';
import { StorageError } from '../../src/storage/storage.js';
import { freeLoopbackPorts } from '../../src/testing/ports.js';

const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsraft-identity-'));
  roots.push(dir);
  return dir;
}

const member = (id: number, port = 7000 + id): { id: number; address: string } => ({ id, address: `127.0.0.1:${port}/http://127.0.0.1:${port + 1000}` });
const THREE: ClusterIdentity = { clusterId: 'tsraft', nodeId: 0, members: [member(0), member(1), member(2)] };
/** Node 3 joining THREE's cluster: it starts as a learner of THREE's voters. */
const JOINER: ClusterIdentity = { clusterId: 'tsraft', nodeId: 3, members: [member(0), member(1), member(2)], learners: [member(3)] };

/** The bytes of a version 1 file (before learners), as the tsraft of that time wrote them. */
function versionOneFile(identity: ClusterIdentity, createdAt: string): Buffer {
  const body = { format: 'tsraft-cluster-identity', version: 1, clusterId: identity.clusterId, nodeId: identity.nodeId, members: identity.members, createdAt };
  const checksum = `crc32c:${crc32c(new TextEncoder().encode(JSON.stringify(body))).toString(16).padStart(8, '0')}`;
  return Buffer.from(`${JSON.stringify({ ...body, checksum }, null, 2)}\n`);
}

/** Runs ensureClusterIdentity (with fsync), collecting its log lines. */
async function ensure(dir: string, identity: ClusterIdentity, extra: { onWriteStep?: (step: string) => void; fsync?: boolean } = {}) {
  const lines: string[] = [];
  const result = await ensureClusterIdentity(dir, identity, { log: (line) => lines.push(line), fsync: extra.fsync ?? true, ...(extra.onWriteStep ? { onWriteStep: extra.onWriteStep } : {}) });
  return { result, lines };
}

function isIdentityError(code: ClusterIdentityError['code'], ...patterns: RegExp[]) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof ClusterIdentityError, `expected a ClusterIdentityError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    for (const p of patterns) assert.match(error.message, p);
    return true;
  };
}

/** Every file of `dir` with its bytes, to show a refusal changed nothing. */
function snapshotDir(dir: string): Map<string, string> {
  return new Map(readdirSync(dir).sort().map((name) => [name, readFileSync(join(dir, name)).toString('base64')]));
}

/** Writes a little Raft data (a hard state and two entries) with FileStorage, then closes it. */
async function writeRaftData(dir: string): Promise<void> {
  const storage = new FileStorage({ dir, fsync: false, log: () => undefined });
  await storage.open();
  await storage.save({ term: 1, votedFor: 0 }, null, {
    fromIndex: 1,
    entries: [
      { index: 1, term: 1, command: new Uint8Array([1]) },
      { index: 2, term: 1, command: new Uint8Array([2]) },
    ],
  });
  await storage.close();
}

describe('cluster identity: first start and later starts', () => {
  it('an empty directory is a first start: the identity is written, nothing else is left behind', async () => {
    const dir = tempDir();
    const { result, lines } = await ensure(dir, THREE);
    assert.equal(result.outcome, 'created');
    assert.equal(result.file, join(dir, CLUSTER_IDENTITY_FILE));
    assert.deepEqual(readdirSync(dir), [CLUSTER_IDENTITY_FILE], 'no LOCK, no .tmp');
    const stored = await readClusterIdentity(dir);
    assert.ok(stored !== null);
    assert.equal(stored.clusterId, 'tsraft');
    assert.equal(stored.nodeId, 0);
    assert.deepEqual(stored.members, THREE.members);
    assert.deepEqual(stored.learners, []);
    assert.equal(stored.version, 2);
    assert.match(lines.join('\n'), /first start in .*: recorded the cluster identity \(cluster "tsraft", node 0, members 0, 1, 2\)/);
    // The file is readable JSON with the documented fields.
    const json = JSON.parse(readFileSync(result.file, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json), ['format', 'version', 'clusterId', 'nodeId', 'members', 'learners', 'createdAt', 'checksum']);
    assert.equal(json['format'], 'tsraft-cluster-identity');
    assert.match(String(json['checksum']), /^crc32c:[0-9a-f]{8}$/);
  });

  it('a missing directory is created (a first start)', async () => {
    const dir = join(tempDir(), 'a', 'b');
    const { result } = await ensure(dir, THREE);
    assert.equal(result.outcome, 'created');
    assert.ok(existsSync(join(dir, CLUSTER_IDENTITY_FILE)));
  });

  it('the same identity matches (members in any order) and the file is not rewritten', async () => {
    const dir = tempDir();
    await ensure(dir, THREE);
    const before = readFileSync(join(dir, CLUSTER_IDENTITY_FILE));
    const steps: string[] = [];
    const { result, lines } = await ensure(dir, { ...THREE, members: [member(2), member(0), member(1)] }, { onWriteStep: (s) => steps.push(s) });
    assert.equal(result.outcome, 'matched');
    assert.deepEqual(steps, [], 'nothing written');
    assert.deepEqual(lines, []);
    assert.deepEqual(readFileSync(join(dir, CLUSTER_IDENTITY_FILE)), before);
  });

  const mismatches: [string, ClusterIdentity, RegExp][] = [
    ['a different cluster id', { ...THREE, clusterId: 'other' }, /cluster id "tsraft" on disk, "other" requested/],
    ['a different own node id', { ...THREE, nodeId: 1 }, /node id 0 on disk, 1 requested/],
    ['fewer members (the --nodes 1 finding)', { ...THREE, members: [member(0)] }, /members 0, 1, 2 on disk, 0 requested \(1, 2 missing\)/],
    ['more members', { ...THREE, members: [...THREE.members, member(3)] }, /members 0, 1, 2 on disk, 0, 1, 2, 3 requested \(3 not recorded\)/],
    ['the same count, other ids', { ...THREE, members: [member(0), member(1), member(5)] }, /\(2 missing; 5 not recorded\)/],
  ];
  for (const [name, requested, difference] of mismatches) {
    it(`${name} is refused with what is on disk and what was asked, changing nothing`, async () => {
      const dir = tempDir();
      await writeRaftData(dir);
      await ensure(dir, THREE);
      const before = snapshotDir(dir);
      await assert.rejects(
        ensure(dir, requested),
        isIdentityError(
          'TSRAFT_IDENTITY_MISMATCH',
          new RegExp(`${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/${CLUSTER_IDENTITY_FILE} records cluster "tsraft", node 0, members 0, 1, 2`),
          /but this start asks for cluster/,
          difference,
          /use a\s+new data directory/,
          /tsraft member/,
          /original flags/,
        ),
      );
      await assert.rejects(inspectClusterIdentity(dir, requested), isIdentityError('TSRAFT_IDENTITY_MISMATCH', difference));
      assert.deepEqual(snapshotDir(dir), before, 'the refusal changed the directory');
      try {
        await ensure(dir, requested);
      } catch (error) {
        const e = error as ClusterIdentityError;
        assert.equal(e.onDisk?.clusterId, 'tsraft');
        assert.equal(e.requested?.clusterId, requested.clusterId);
        assert.equal(e.differences.length, 1);
      }
    });
  }

  it('a changed address is not refused: it is logged and recorded, createdAt kept', async () => {
    const dir = tempDir();
    const first = (await ensure(dir, THREE)).result;
    const moved: ClusterIdentity = { ...THREE, members: [member(0), member(1, 9001), member(2)] };
    const { result, lines } = await ensure(dir, moved);
    assert.equal(result.outcome, 'matched');
    assert.match(lines.join('\n'), /member addresses changed .*node 1: 127\.0\.0\.1:7001\/http:\/\/127\.0\.0\.1:8001 -> 127\.0\.0\.1:9001\/http:\/\/127\.0\.0\.1:10001/);
    const stored = await readClusterIdentity(dir);
    assert.equal(stored?.members[1]?.address, '127.0.0.1:9001/http://127.0.0.1:10001');
    assert.equal(stored?.createdAt, first.identity.createdAt);
    assert.equal((await inspectClusterIdentity(dir, moved)).kind, 'match');
  });

  it('an invalid identity is a ConfigError, and nothing is written', async () => {
    const dir = tempDir();
    await assert.rejects(ensureClusterIdentity(dir, { clusterId: '', nodeId: 4, members: [{ id: 0 }, { id: 0 }] }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /clusterId must be/);
      assert.match(error.message, /duplicate member id 0/);
      assert.match(error.message, /members must include this node \(id 4\)/);
      return true;
    });
    assert.equal(existsSync(join(dir, CLUSTER_IDENTITY_FILE)), false);
  });

  it('a directory held by a live process is refused (its LOCK) and nothing is written', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'LOCK'), `${process.pid}\n`);
    await assert.rejects(ensure(dir, THREE), (error: unknown) => error instanceof StorageError && error.code === 'TSRAFT_STORAGE_LOCKED');
    assert.equal(existsSync(join(dir, CLUSTER_IDENTITY_FILE)), false);
  });
});

describe('cluster identity: learners (version 2) and version 1 files', () => {
  it('a joining node records the voters as members and itself as a learner; both sets are compared', async () => {
    const dir = tempDir();
    const { result, lines } = await ensure(dir, JOINER);
    assert.equal(result.outcome, 'created');
    assert.match(lines.join('\n'), /recorded the cluster identity \(cluster "tsraft", node 3, members 0, 1, 2, learners 3\)/);
    const stored = await readClusterIdentity(dir);
    assert.deepEqual(stored?.members, JOINER.members);
    assert.deepEqual(stored?.learners, [member(3)]);
    assert.equal(stored?.version, 2);
    // The same start matches; the learner as a voter, or no learners at all, does not.
    assert.equal((await inspectClusterIdentity(dir, JOINER)).kind, 'match');
    await assert.rejects(
      inspectClusterIdentity(dir, { ...JOINER, members: [...THREE.members, member(3)], learners: [] }),
      isIdentityError('TSRAFT_IDENTITY_MISMATCH', /members 0, 1, 2 on disk, 0, 1, 2, 3 requested \(3 not recorded\)/, /learners 3 on disk, \(none\) requested \(3 missing\)/),
    );
    // A learner's changed address is recorded like a voter's.
    const moved = (await ensure(dir, { ...JOINER, learners: [member(3, 9003)] })).lines;
    assert.match(moved.join('\n'), /node 3: 127\.0\.0\.1:7003\/http:\/\/127\.0\.0\.1:8003 -> 127\.0\.0\.1:9003/);
    assert.equal((await readClusterIdentity(dir))?.learners[0]?.address, member(3, 9003).address);
  });

  it('an invalid set of learners is a ConfigError: a learner that is also a member, a bad id', async () => {
    const dir = tempDir();
    await assert.rejects(ensureClusterIdentity(dir, { ...THREE, learners: [member(2), { id: -1 }] }, { log: () => undefined }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /duplicate member id 2/);
      assert.match(error.message, /learner id must be a non-negative integer, got -1/);
      return true;
    });
    assert.equal(existsSync(join(dir, CLUSTER_IDENTITY_FILE)), false);
  });

  it('a version 1 file (no learners) is read as having none, matches, and is rewritten as version 2 only when an address changes', async () => {
    const dir = tempDir();
    const file = join(dir, CLUSTER_IDENTITY_FILE);
    writeFileSync(file, versionOneFile(THREE, '2020-01-01T00:00:00.000Z'));
    const stored = await readClusterIdentity(dir);
    assert.equal(stored?.version, 1);
    assert.deepEqual(stored?.learners, []);
    assert.deepEqual(stored?.members, THREE.members);
    const before = readFileSync(file);
    assert.equal((await ensure(dir, THREE)).result.outcome, 'matched');
    assert.deepEqual(readFileSync(file), before, 'a matching version 1 file is left as it is');
    await assert.rejects(ensure(dir, { ...THREE, learners: [member(3)] }), isIdentityError('TSRAFT_IDENTITY_MISMATCH', /learners \(none\) on disk, 3 requested \(3 not recorded\)/));
    const { lines } = await ensure(dir, { ...THREE, members: [member(0), member(1, 9001), member(2)] });
    assert.match(lines.join('\n'), /recorded the new ones in .* \(format version 1 -> 2\)/);
    const upgraded = await readClusterIdentity(dir);
    assert.equal(upgraded?.version, 2);
    assert.equal(upgraded?.createdAt, '2020-01-01T00:00:00.000Z');
    assert.deepEqual(upgraded?.learners, []);
  });

  it('a version 1 file with a learners field, or a version 2 file without one, is damaged', () => {
    const withLearners = JSON.parse(versionOneFile(THREE, '2020-01-01T00:00:00.000Z').toString('utf8')) as Record<string, unknown>;
    delete withLearners['checksum'];
    withLearners['learners'] = [];
    const v1 = Buffer.from(JSON.stringify({ ...withLearners, checksum: `crc32c:${crc32c(new TextEncoder().encode(JSON.stringify(withLearners))).toString(16).padStart(8, '0')}` }));
    assert.throws(() => decodeClusterIdentity(v1, '/x/cluster-identity.json'), isIdentityError('TSRAFT_IDENTITY_DAMAGED', /a version 1 file has no learners field/));
    const v2 = JSON.parse(Buffer.from(encodeClusterIdentity(THREE, '2020-01-01T00:00:00.000Z')).toString('utf8')) as Record<string, unknown>;
    delete v2['checksum'];
    delete v2['learners'];
    const bytes = Buffer.from(JSON.stringify({ ...v2, checksum: `crc32c:${crc32c(new TextEncoder().encode(JSON.stringify(v2))).toString(16).padStart(8, '0')}` }));
    assert.throws(() => decodeClusterIdentity(bytes, '/x/cluster-identity.json'), isIdentityError('TSRAFT_IDENTITY_DAMAGED', /learners is not an array/));
  });
});

describe('cluster identity: data written before identities were recorded', () => {
  it('a directory with Raft data but no identity file adopts the one it is started with (logged); later mismatches are refused', async () => {
    const dir = tempDir();
    await writeRaftData(dir);
    assert.deepEqual(await inspectClusterIdentity(dir, THREE), { kind: 'legacy' });
    const { result, lines } = await ensure(dir, THREE);
    assert.equal(result.outcome, 'adopted');
    assert.match(lines.join('\n'), /holds Raft data but no cluster identity \(written by an older tsraft\): adopting the identity it was started with \(cluster "tsraft", node 0, members 0, 1, 2\)/);
    await assert.rejects(ensure(dir, { ...THREE, members: [member(0)] }), isIdentityError('TSRAFT_IDENTITY_MISMATCH'));
    // The Raft data is still there and reads back.
    const storage = new FileStorage({ dir, fsync: false, log: () => undefined });
    const state = await storage.open();
    assert.equal(state.entries.length, 2);
    await storage.close();
  });

  it('files that are not Raft data do not make a directory legacy', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'notes.txt'), 'hello');
    assert.deepEqual(await inspectClusterIdentity(dir, THREE), { kind: 'new' });
    assert.equal((await ensure(dir, THREE)).result.outcome, 'created');
  });
});

describe('cluster identity: a damaged file is refused, naming it', () => {
  const damage: [string, (bytes: Buffer) => Buffer, RegExp][] = [
    ['a changed value (same length)', (b) => Buffer.from(b.toString('utf8').replace('"nodeId": 0', '"nodeId": 1')), /checksum mismatch/],
    ['a flipped bit in the checksum', (b) => Buffer.from(b.toString('utf8').replace(/crc32c:([0-9a-f])/, (_m, c: string) => `crc32c:${c === '0' ? '1' : '0'}`)), /checksum mismatch/],
    ['a truncated file', (b) => b.subarray(0, b.length >> 1), /not valid UTF-8 JSON/],
    ['an empty file', () => Buffer.alloc(0), /the file is empty/],
    ['zeros (a lost write)', (b) => Buffer.alloc(b.length), /not valid UTF-8 JSON/],
    ['no checksum', (b) => Buffer.from(JSON.stringify({ ...JSON.parse(b.toString('utf8')), checksum: undefined })), /no checksum/],
    ['a JSON array', () => Buffer.from('[1,2,3]'), /not a JSON object/],
  ];
  for (const [name, mutate, reason] of damage) {
    it(`${name}: TSRAFT_IDENTITY_DAMAGED, the file untouched`, async () => {
      const dir = tempDir();
      await ensure(dir, THREE);
      const file = join(dir, CLUSTER_IDENTITY_FILE);
      writeFileSync(file, mutate(readFileSync(file)));
      const before = snapshotDir(dir);
      const escaped = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      await assert.rejects(ensure(dir, THREE), isIdentityError('TSRAFT_IDENTITY_DAMAGED', new RegExp(`cluster identity file ${escaped} is damaged`), reason, /move the file aside/));
      await assert.rejects(inspectClusterIdentity(dir, THREE), isIdentityError('TSRAFT_IDENTITY_DAMAGED', reason));
      assert.deepEqual(snapshotDir(dir), before);
    });
  }

  it('a file of a newer format version: TSRAFT_IDENTITY_UNSUPPORTED', () => {
    const text = Buffer.from(encodeClusterIdentity(THREE, '2020-01-01T00:00:00.000Z')).toString('utf8').replace('"version": 2', '"version": 3');
    assert.throws(() => decodeClusterIdentity(Buffer.from(text), '/x/cluster-identity.json'), isIdentityError('TSRAFT_IDENTITY_UNSUPPORTED', /written by a newer tsraft \(format version 3/));
  });

  it('whitespace does not matter (the checksum covers the values)', () => {
    const bytes = encodeClusterIdentity(THREE, '2020-01-01T00:00:00.000Z');
    const compact = Buffer.from(JSON.stringify(JSON.parse(Buffer.from(bytes).toString('utf8'))));
    assert.equal(decodeClusterIdentity(compact, '/x/cluster-identity.json').nodeId, 0);
  });
});

describe('cluster identity: the write is temp file, fsync, rename, directory fsync', () => {
  it('steps in that order, and the temp file is complete before the rename', async () => {
    const dir = tempDir();
    const steps: string[] = [];
    const file = join(dir, CLUSTER_IDENTITY_FILE);
    const temp = `${file}.tmp`;
    await ensure(dir, THREE, {
      onWriteStep: (step) => {
        steps.push(step);
        if (step.startsWith('rename ')) {
          // Complete and valid before it takes the real file's name.
          assert.equal(decodeClusterIdentity(readFileSync(temp), temp).nodeId, 0);
          assert.equal(existsSync(file), false);
        }
      },
    });
    assert.deepEqual(steps, [`write ${temp}`, `fsync ${temp}`, `rename ${temp} ${file}`, `fsync-dir ${dir}`]);
  });

  it('a crash before the rename leaves no identity (or the old one whole); the next start removes the leftover', async () => {
    const dir = tempDir();
    const file = join(dir, CLUSTER_IDENTITY_FILE);
    const crashAtRename = (step: string): void => {
      if (step.startsWith('rename ')) throw new Error('crash');
    };
    await assert.rejects(ensure(dir, THREE, { onWriteStep: crashAtRename }), /crash/);
    assert.equal(existsSync(file), false, 'no identity file before the rename');
    assert.ok(existsSync(`${file}.tmp`));
    const { result, lines } = await ensure(dir, THREE);
    assert.equal(result.outcome, 'created');
    assert.match(lines.join('\n'), /removed .*cluster-identity\.json\.tmp .*never completed/);
    assert.deepEqual(readdirSync(dir), [CLUSTER_IDENTITY_FILE]);

    // An address update that crashes before its rename: the old file still governs, whole.
    const before = readFileSync(file);
    await assert.rejects(ensure(dir, { ...THREE, members: [member(0, 9000), member(1), member(2)] }, { onWriteStep: crashAtRename }), /crash/);
    assert.deepEqual(readFileSync(file), before);
    assert.equal((await readClusterIdentity(dir))?.members[0]?.address, member(0).address);
  });
});

describe('KvServer checks the identity before it opens storage', { timeout: 60_000 }, () => {
  it('refuses a restart with another member set or cluster id, leaving the data; the original restart finds its key', async () => {
    const root = tempDir();
    const dataDir = join(root, 'node-0');
    const [raftPort, httpPort, otherRaft, otherHttp] = await freeLoopbackPorts(4);
    const self: KvPeer = { id: 0, raftHost: '127.0.0.1', raftPort: raftPort!, httpUrl: `http://127.0.0.1:${httpPort}` };
    const other: KvPeer = { id: 1, raftHost: '127.0.0.1', raftPort: otherRaft!, httpUrl: `http://127.0.0.1:${otherHttp}` };
    const start = (peers: KvPeer[] | undefined, clusterId = 'tsraft') =>
      KvServer.start({
        id: 0,
        ...(peers === undefined ? {} : { peers }),
        dataDir,
        clusterId,
        // Without peers, without httpListen too: it listens where its recorded HTTP URL says.
        ...(peers === undefined ? {} : { httpListen: { host: '127.0.0.1', port: httpPort! } }),
        timing: { heartbeatMs: 20, electionTimeoutMinMs: 100, electionTimeoutMaxMs: 200 },
        fsync: false,
        log: () => undefined,
      });
    // A single-node cluster: it elects itself and commits alone.
    let server = await start([self]);
    try {
      const deadline = Date.now() + 10_000;
      let put: Response | undefined;
      while (Date.now() < deadline) {
        put = await fetch(`${self.httpUrl}/v1/kv/k`, { method: 'PUT', body: 'v', redirect: 'manual' }).catch(() => undefined);
        if (put?.status === 200) break;
        await put?.arrayBuffer();
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(put?.status, 200);
    } finally {
      await server.stop();
    }
    const before = snapshotDir(dataDir);
    /** Expects a refusal; a server that starts anyway is stopped before the test fails. */
    const refused = async (starting: Promise<KvServer>, check: (error: unknown) => boolean): Promise<void> => {
      let started: KvServer;
      try {
        started = await starting;
      } catch (error) {
        assert.ok(check(error));
        return;
      }
      await started.stop();
      assert.fail('KvServer started on the data directory of another configuration');
    };
    await refused(start([self, other]), isIdentityError('TSRAFT_IDENTITY_MISMATCH', /members 0 on disk, 0, 1 requested \(1 not recorded\)/));
    await refused(start([self], 'other'), isIdentityError('TSRAFT_IDENTITY_MISMATCH', /cluster id "tsraft" on disk, "other" requested/));
    assert.deepEqual(snapshotDir(dataDir), before, 'a refused start changed the data directory');
    const readBack = async (): Promise<void> => {
      const deadline = Date.now() + 10_000;
      let value = '';
      while (Date.now() < deadline && value !== 'v') {
        const get = await fetch(`${self.httpUrl}/v1/kv/k`).catch(() => undefined);
        value = get?.status === 200 ? ((await get.json()) as { value: string }).value : ((await get?.arrayBuffer()), '');
        if (value !== 'v') await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(value, 'v');
    };
    server = await start([self]);
    try {
      await readBack();
    } finally {
      await server.stop();
    }
    // Without peers, the starting configuration (and the HTTP address) comes from the identity.
    server = await start(undefined);
    try {
      await readBack();
      assert.deepEqual(server.status().membership, { voters: [0], outgoing: [], learners: [], index: 0 });
    } finally {
      await server.stop();
    }
    assert.equal(snapshotDir(dataDir).get(CLUSTER_IDENTITY_FILE), before.get(CLUSTER_IDENTITY_FILE), 'a restart without peers rewrote the identity');
  });

  it('without peers and without an identity to read them from, start() is a ConfigError that says so, and nothing is written', async () => {
    const dataDir = join(tempDir(), 'node-0');
    await assert.rejects(
      KvServer.start({ id: 0, dataDir, httpListen: { host: '127.0.0.1', port: 0 }, fsync: false, log: () => undefined }),
      (error: unknown) => error instanceof ConfigError && /peers must be given: .*records no cluster identity/.test(error.message),
    );
    assert.equal(existsSync(dataDir), false);
  });
});
