/**
 * The cluster identity from the command line, reproducing the finding: a 3-node cluster's data
 * restarted with `--nodes 1` elected a 1-node cluster that committed alone and lost the
 * acknowledged key. Now `tsraft start --nodes 1` (and `--cluster-id other`) on that data is refused
 * with one clear message before anything runs, the data is left as it was, and starting it again
 * with 3 nodes finds the key. `tsraft node` refuses the same way (exit code 2), and `tsraft start`
 * does not restart a child that refuses its command line. The up-front check leaves alone the
 * directory of a node that joined the cluster (`tsraft member`), which `tsraft start` does not run.
 * Every process and directory is cleaned up even when an assertion fails.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CliError } from '../../src/cli/common.js';
import { checkIdentities } from '../../src/cli/identity-check.js';
import { ensureClusterIdentity } from '../../src/storage/cluster-identity.js';
import { assertNoStackTrace, startPorts, tsraft, TsraftStart } from './cli-fixture.js';

/** Every file under `dir` (recursively) with its bytes: to show a refusal changed nothing. */
function contents(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.set(path, readFileSync(path).toString('base64'));
    }
  };
  walk(dir);
  return out;
}

describe('tsraft start: a data directory keeps its cluster identity', { timeout: 180_000 }, () => {
  let root: string;
  let dataDir: string;
  let ports: string[];
  let endpoints: string;
  const clusters: TsraftStart[] = [];

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'tsraft-cli-identity-'));
    dataDir = join(root, 'data');
    const free = await startPorts();
    ports = free.args;
    endpoints = free.endpoints.join(',');
  });

  after(async () => {
    for (const cluster of clusters) await cluster.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const startCluster = async (): Promise<TsraftStart> => {
    const cluster = TsraftStart.spawn(['--nodes', '3', '--data-dir', dataDir, ...ports, '--no-watchdog']);
    clusters.push(cluster);
    await cluster.waitFor('the leader line', /\[start\] leader: node \d+ /);
    return cluster;
  };

  it('a 3-node cluster commits a key; --nodes 1 and --cluster-id other are refused, changing nothing; 3 nodes find the key', async () => {
    const first = await startCluster();
    assert.match(first.output, /storage: first start in .*node-0: recorded the cluster identity \(cluster "tsraft", node 0, members 0, 1, 2\)/);
    const put = await tsraft(['put', 'acked', 'yes', '--endpoints', endpoints]);
    assert.equal(put.code, 0, put.stderr);
    assert.equal(await first.stop(), 0, first.output);
    const before = contents(dataDir);

    // The finding: the same data with --nodes 1. Refused up front, one message, nothing started.
    const one = await tsraft(['start', '--nodes', '1', '--data-dir', dataDir, ...ports, '--no-watchdog']);
    assert.equal(one.code, 2, `${one.stdout}\n${one.stderr}`);
    assert.match(one.stderr, /^tsraft: cannot start: the data in .* does not match this command line \(1-node cluster: cluster "tsraft", members 0\):$/m);
    assert.match(one.stderr, /^ {2}node 0: .*node-0\/cluster-identity\.json records cluster "tsraft", members 0, 1, 2$/m);
    assert.match(one.stderr, /To run the cluster this data belongs to, start it with --nodes 3; for a new cluster use another --data-dir/);
    assert.match(one.stderr, /tsraft member \.\.\./);
    assert.match(one.stderr, /Nothing was started; the data is untouched\./);
    assert.doesNotMatch(one.stdout, /\[node 0\]/, 'a node was started');
    assertNoStackTrace(one.stderr);
    assert.deepEqual(contents(dataDir), before, '--nodes 1 changed the data');

    const other = await tsraft(['start', '--cluster-id', 'other', '--data-dir', dataDir, ...ports, '--no-watchdog']);
    assert.equal(other.code, 2, `${other.stdout}\n${other.stderr}`);
    assert.match(other.stderr, /does not match this command line \(3-node cluster: cluster "other", members 0, 1, 2\)/);
    for (const id of [0, 1, 2]) assert.match(other.stderr, new RegExp(`node ${id}: .*node-${id}/cluster-identity\\.json records cluster "tsraft", members 0, 1, 2`));
    assert.match(other.stderr, /start it with --cluster-id tsraft;/);
    assertNoStackTrace(other.stderr);
    assert.deepEqual(contents(dataDir), before, '--cluster-id other changed the data');

    // One node by hand with a 1-member --peers: refused by the node itself, exit 2.
    const peers = endpoints.split(',').map((url, i) => `${i}=127.0.0.1:${Number(ports[1]) + i}/${url}`);
    const node = await tsraft(['node', '--id', '0', '--data-dir', join(dataDir, 'node-0'), '--peers', peers[0]!]);
    assert.equal(node.code, 2, `${node.stdout}\n${node.stderr}`);
    assert.match(node.stderr, /^tsraft: node 0 refused to start: its data directory .*node-0 belongs to another cluster configuration\.$/m);
    assert.match(node.stderr, /^ {2}on disk \(.*node-0\/cluster-identity\.json\): cluster "tsraft", node 0, members 0, 1, 2$/m);
    assert.match(node.stderr, /^ {2}the flags \(--cluster-id, --id, --peers\): cluster "tsraft", node 0, members 0$/m);
    assert.match(node.stderr, /^ {2}differs: members 0, 1, 2 on disk, 0 requested \(1, 2 missing\)$/m);
    assert.match(node.stderr, new RegExp(`Start it with --peers listing exactly members 0, 1, 2 \\(as recorded: ${peers.join(',').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)`));
    assertNoStackTrace(node.stderr);
    assert.deepEqual(contents(dataDir), before, 'tsraft node changed the data');

    // The cluster it belongs to: the acknowledged key is there.
    const again = await startCluster();
    const get = await tsraft(['get', 'acked', '--endpoints', endpoints]);
    assert.equal(get.code, 0, `${get.stderr}\n${again.output}`);
    assert.equal(get.stdout, 'yes\n');
    assert.doesNotMatch(again.output, /first start|adopting/, 'the restart did not find its identity');
    assert.equal(await again.stop(), 0, again.output);
  });

  it('data written before identities were recorded: --nodes 1 is refused (it holds nodes 1 and 2), --nodes 3 adopts', async () => {
    for (const id of [0, 1, 2]) unlinkSync(join(dataDir, `node-${id}`, 'cluster-identity.json'));
    const before = contents(dataDir);
    const one = await tsraft(['start', '--nodes', '1', '--data-dir', dataDir, ...ports, '--no-watchdog']);
    assert.equal(one.code, 2, `${one.stdout}\n${one.stderr}`);
    assert.match(one.stderr, /cannot start: .* also holds the data of nodes 1, 2, which this 1-node cluster would not run: it belongs to a larger cluster\. Start it with --nodes 3/);
    assertNoStackTrace(one.stderr);
    assert.deepEqual(contents(dataDir), before);

    const three = await startCluster();
    assert.match(three.output, /node-0 holds Raft data but no cluster identity \(written by an older tsraft\): adopting the identity it was started with \(cluster "tsraft", node 0, members 0, 1, 2\)/);
    const get = await tsraft(['get', 'acked', '--endpoints', endpoints]);
    assert.equal(get.stdout, 'yes\n', get.stderr);
    assert.equal(await three.stop(), 0, three.output);
  });
});

describe('tsraft start does not restart a child that refuses its command line (exit code 2)', { timeout: 60_000 }, () => {
  let root: string | undefined;
  let cluster: TsraftStart | undefined;
  after(async () => {
    await cluster?.stop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('every node exits 2 at once: start gives up on each without a restart, and exits 2', async () => {
    root = mkdtempSync(join(tmpdir(), 'tsraft-cli-refuse-'));
    const { args: ports } = await startPorts();
    // A malformed failpoint makes every `tsraft node` refuse its environment with exit code 2.
    cluster = TsraftStart.spawn(['--nodes', '3', '--data-dir', join(root, 'data'), ...ports], {
      TSRAFT_FAILPOINT: 'bogus',
    });
    const timer = setTimeout(() => cluster?.proc.kill('SIGKILL'), 30_000);
    const code = await cluster.exit;
    clearTimeout(timer);
    assert.equal(code, 2, cluster.output);
    for (const id of [0, 1, 2]) {
      assert.match(cluster.output, new RegExp(`node ${id} \\(pid \\d+\\) exited with code 2: it refused its command line \\(its message is above\\); not restarting it`));
    }
    assert.match(cluster.output, /every node refused to start; stopping/);
    assert.doesNotMatch(cluster.output, /restarting it in/);
  });
});

describe('tsraft start: a node whose data directory is damaged', { timeout: 120_000 }, () => {
  let root: string | undefined;
  const clusters: TsraftStart[] = [];

  after(async () => {
    for (const cluster of clusters) await cluster.stop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  it('exits 4 with the file and offset, is not restarted, and the other two keep serving (and Ctrl-C stops all at once)', async () => {
    root = mkdtempSync(join(tmpdir(), 'tsraft-cli-damaged-'));
    const dataDir = join(root, 'data');
    const { args: ports, endpoints } = await startPorts();
    const first = TsraftStart.spawn(['--nodes', '3', '--data-dir', dataDir, ...ports, '--no-watchdog']);
    clusters.push(first);
    await first.waitFor('the leader line', /\[start\] leader: node \d+ /);
    for (let i = 0; i < 20; i++) {
      const put = await tsraft(['put', `k${i}`, `v${i}`, '--endpoints', endpoints.join(',')]);
      assert.equal(put.code, 0, put.stderr);
    }
    assert.equal(await first.stop(), 0);
    // Ctrl-C stops the whole cluster: no member waits to hand leadership to another that is going too.
    assert.equal((first.output.match(/stopping \(the cluster is stopping\)/g) ?? []).length, 3, first.output);
    assert.doesNotMatch(first.output, /could not hand leadership over/);
    // A bit flipped in the middle of node 1's log: a complete record fails its CRC and valid ones
    // follow, which no torn write can produce.
    const nodeDir = join(dataDir, 'node-1');
    const wal = readdirSync(nodeDir).filter((name) => name.startsWith('wal-')).sort().pop();
    assert.ok(wal !== undefined, `no WAL in ${nodeDir}: ${readdirSync(nodeDir).join(', ')}`);
    const path = join(nodeDir, wal);
    const bytes = readFileSync(path);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0x5a;
    writeFileSync(path, bytes);

    const second = TsraftStart.spawn(['--nodes', '3', '--data-dir', dataDir, ...ports, '--no-watchdog']);
    clusters.push(second);
    await second.waitFor('node 1 given up', /node 1 \(pid \d+\) exited with code 4: its data directory is damaged \(its message is above\); not restarting it/);
    assert.match(second.output, /node 1 failed to start: its data directory is damaged: .*wal-\d+\.log at byte offset \d+/);
    assert.doesNotMatch(second.output, /node 1 restarted/);
    assertNoStackTrace(second.output);
    const get = await tsraft(['get', 'k19', '--endpoints', endpoints.join(',')]);
    assert.deepEqual([get.code, get.stdout.trim()], [0, 'v19'], get.stderr);
  });
});

describe('the up-front identity check and nodes that joined', () => {
  const peers = [0, 1, 2].map((id) => ({ id, raftHost: '127.0.0.1', raftPort: 7000 + id, httpUrl: `http://127.0.0.1:${8000 + id}` }));
  const address = (id: number): string => `127.0.0.1:${7000 + id}/http://127.0.0.1:${8000 + id}`;
  const members = peers.map((p) => ({ id: p.id, address: address(p.id) }));
  const roots: string[] = [];
  after(() => {
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });

  async function dataDirWith(node3: { members: { id: number; address: string }[]; learners: { id: number; address: string }[] }): Promise<string> {
    const dataDir = mkdtempSync(join(tmpdir(), 'tsraft-cli-joined-'));
    roots.push(dataDir);
    const quiet = { fsync: false, log: () => undefined };
    for (const p of peers) await ensureClusterIdentity(join(dataDir, `node-${p.id}`), { clusterId: 'tsraft', nodeId: p.id, members }, quiet);
    await ensureClusterIdentity(join(dataDir, 'node-3'), { clusterId: 'tsraft', nodeId: 3, ...node3 }, quiet);
    return dataDir;
  }

  it('a node that joined as a learner of this cluster is not refused; its id is returned', async () => {
    const dataDir = await dataDirWith({ members, learners: [{ id: 3, address: address(3) }] });
    assert.deepEqual(await checkIdentities(dataDir, { nodes: 3, clusterId: 'tsraft' }, peers), [3]);
  });

  it('a node of a larger cluster (recorded as a voter of four) is still refused, with the advice on membership changes', async () => {
    const dataDir = await dataDirWith({ members: [...members, { id: 3, address: address(3) }], learners: [] });
    await assert.rejects(checkIdentities(dataDir, { nodes: 3, clusterId: 'tsraft' }, peers), (error: unknown) => {
      assert.ok(error instanceof CliError);
      assert.match(error.message, /also holds the data of node 3, which this 3-node cluster would not run/);
      assert.match(error.message, /changed with `tsraft member \.\.\.`; every node keeps being started with the flags it was first started with/);
      return true;
    });
  });
});
