/**
 * Membership changes from the command line, end to end: a `tsraft start` cluster of three child
 * processes; a 4th `tsraft node --join` process that adds itself as a learner and promotes itself
 * to voter; `tsraft member list|add|promote|remove` (and their refusals, with exit codes and
 * messages that say what to do); `tsraft status` showing voters and learners; a joined node that
 * restarts from its data directory (without --peers, and with --join ignored). Plus the messages
 * and tables without a cluster. Every process and directory is cleaned up even when an assertion
 * fails; every wait is bounded; 127.0.0.1 only.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { memberFailure, membersSummary, membersTable } from '../../src/cli/member.js';
import { parseNodeOptions, type NodeOptions } from '../../src/cli/node.js';
import { membershipLines, roleText } from '../../src/cli/status.js';
import { KvClient, KvClientError, type KvMembers } from '../../src/kv/client.js';
import type { StoredClusterIdentity } from '../../src/storage/cluster-identity.js';
import { freeLoopbackPortRange, freeLoopbackPorts } from '../../src/testing/ports.js';
import { MAIN, assertNoStackTrace, startPorts, tsraft, TsraftProcess, TsraftStart } from './cli-fixture.js';

/** A `tsraft node` child process: its output as it comes, its exit, a stop that leaves nothing behind. */
class NodeProcess extends TsraftProcess {
  constructor(args: readonly string[]) {
    super(spawn(process.execPath, [MAIN, 'node', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  /** SIGTERM, then SIGKILL if it has not exited within 15 s. Its exit code. */
  stop(): Promise<number | null> {
    return this.stopWith('SIGTERM');
  }
}

describe('tsraft member and tsraft node --join against tsraft start', { timeout: 180_000 }, () => {
  let dir: string | undefined;
  let start: TsraftStart | undefined;
  let endpoints = '';
  let urls: string[] = [];
  let raftBase = 0;
  const nodes: NodeProcess[] = [];
  /** Node 3's raft and HTTP ports. */
  let raft3 = 0;
  let http3 = 0;

  const list = async (): Promise<KvMembers> => {
    const run = await tsraft(['member', 'list', '--json', '--endpoints', endpoints]);
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
    return JSON.parse(run.stdout) as KvMembers;
  };
  const ids = (members: readonly { id: number }[]): number[] => members.map((m) => m.id);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsraft-member-'));
    const ports = await startPorts();
    raftBase = ports.base;
    urls = ports.endpoints;
    endpoints = urls.join(',');
    start = TsraftStart.spawn(['--nodes', '3', '--data-dir', join(dir, 'data'), ...ports.args, '--no-fsync']);
    await start.waitFor('the leader line', /\[start\] leader: node \d+ \(/);
    const [r, h] = await freeLoopbackPorts(2);
    raft3 = r!;
    http3 = h!;
  });

  after(async () => {
    for (const node of nodes) await node.stop();
    await start?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('tsraft node --join adds a 4th node as a learner, which promotes itself to voter once caught up', async () => {
    // Some data for it to catch up with.
    const client = new KvClient({ endpoints: urls });
    for (let i = 0; i < 20; i++) await client.put(`before-join-${i}`, `v${i}`);
    const node3 = new NodeProcess([
      '--id', '3', '--join', urls[1]!, '--listen', `127.0.0.1:${raft3}`, '--http', `127.0.0.1:${http3}`, '--data-dir', join(dir!, 'd3'), '--no-fsync',
    ]);
    nodes.push(node3);
    await node3.waitFor('the join line', /joined as learner at index \d+: voters 0, 1, 2; learners 3\n/);
    await node3.waitFor('the promotion line', /caught up, promoted: voters 0, 1, 2, 3; learners none \(index \d+, after [\d.]+ s\)\n/);
    assert.match(node3.output, /node 3 up: raft 127\.0\.0\.1:\d+, http http:\/\/127\.0\.0\.1:\d+, .*voters 0, 1, 2, learners 3/);

    const members = await list();
    assert.deepEqual(ids(members.voters), [0, 1, 2, 3]);
    assert.deepEqual(ids(members.learners), []);
    assert.equal(members.joint, false);
    assert.deepEqual(members.voters.find((m) => m.id === 3), { id: 3, raft: `127.0.0.1:${raft3}`, http: `http://127.0.0.1:${http3}`, match: members.voters.find((m) => m.id === 3)!.match });
    assert.ok(typeof members.leader === 'number');

    // The table: one row per member, the leader marked, match known (the leader answers).
    const table = await tsraft(['member', 'list', '--endpoints', endpoints]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^id\s+role\s+raft\s+http\s+match\n/);
    assert.match(table.stdout, new RegExp(`^ *${members.leader}\\s+voter, leader\\s+127\\.0\\.0\\.1:\\d+\\s+http://127\\.0\\.0\\.1:\\d+\\s+\\d+$`, 'm'));
    assert.match(table.stdout, new RegExp(`^ *3\\s+voter\\s+127\\.0\\.0\\.1:${raft3}\\s+http://127\\.0\\.0\\.1:${http3}\\s+\\d+$`, 'm'));
    assert.match(table.stdout, new RegExp(`\\nleader: node ${members.leader}; configuration set at index \\d+\\n$`));

    // The new node serves: a linearizable read through it finds what was written before it joined.
    const through3 = new KvClient({ endpoints: [`http://127.0.0.1:${http3}`] });
    assert.equal(await through3.get('before-join-19'), 'v19');
    await through3.put('after-join', 'yes');
    assert.equal(await client.get('after-join'), 'yes');
  });

  it('tsraft status shows the voters and learners', async () => {
    const run = await tsraft(['status', '--endpoints', `${endpoints},http://127.0.0.1:${http3}`]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^members \(the leader's view, configuration at index \d+\): voters 0, 1, 2, 3; learners none$/m);
    assert.match(run.stdout, /^3\s+(follower|leader)\s/m);
    assert.match(run.stdout, /4 of 4 nodes up; leader: node \d\n$/);
    // A member that is not among --endpoints is named.
    const partial = await tsraft(['status', '--endpoints', endpoints]);
    assert.match(partial.stdout, /^not shown: node 3 \(not among --endpoints, or down; `tsraft member list` shows every member's URL\)$/m);
  });

  it('member add / promote / remove: refusals exit 2 and say what to do; a learner is added and removed', async () => {
    const refused: [string[], RegExp][] = [
      [['member', 'promote', '9'], /^tsraft: member promote: refused: node 9 is not a learner of this cluster.*; `tsraft member list` shows the members$/m],
      [['member', 'remove', '9'], /^tsraft: member remove: refused: node 9 is not a member of this cluster.*`tsraft member list` shows the members$/m],
      [['member', 'promote', '3'], /member promote: refused: node 3 is already a voter/],
      [['member', 'add', '3', '--raft', '127.0.0.1:1', '--http', 'http://127.0.0.1:2'], /member add: refused: node 3 is already a voter/],
      [['member', 'add', '5', '--raft', `127.0.0.1:${raftBase}`, '--http', 'http://127.0.0.1:2'], new RegExp(`member add: refused: the raft address 127\\.0\\.0\\.1:${raftBase} is member 0's`)],
      [['member', 'add', 'x', '--raft', '127.0.0.1:1', '--http', 'http://127.0.0.1:2'], /member id: node id must be a non-negative integer, got "x"/],
      [['member', 'add', '5', '--raft', '127.0.0.1:1'], /missing --http <url>/],
      [['member', 'add', '5', '--http', 'http://127.0.0.1:2'], /missing --raft <host:port>/],
      [['member', 'add', '5', '--raft', '127.0.0.1', '--http', 'http://127.0.0.1:2'], /--raft: expected HOST:PORT/],
      [['member', 'promote', '-1'], /unknown option '-1'|node id must be a non-negative integer/],
    ];
    for (const [args, message] of refused) {
      const run = await tsraft([...args, '--endpoints', endpoints]);
      assert.equal(run.code, 2, `${args.join(' ')}: exit ${run.code}\n${run.stdout}${run.stderr}`);
      assert.match(run.stderr, message, args.join(' '));
      assertNoStackTrace(run.stderr);
    }

    const [raft5, http5] = await freeLoopbackPorts(2);
    const add = await tsraft(['member', 'add', '5', '--raft', `127.0.0.1:${raft5}`, '--http', `http://127.0.0.1:${http5}`, '--endpoints', endpoints]);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, new RegExp(`^node 5 added as a learner at index \\d+ \\(raft 127\\.0\\.0\\.1:${raft5}, http http://127\\.0\\.0\\.1:${http5}\\); voters: 0, 1, 2, 3; learners: 5\\n`));
    assert.match(add.stdout, /make it a voter: tsraft member promote 5\n$/);
    assert.deepEqual(ids((await list()).learners), [5]);
    const table = await tsraft(['member', 'list', '--endpoints', endpoints]);
    assert.match(table.stdout, new RegExp(`^ *5\\s+learner\\s+127\\.0\\.0\\.1:${raft5}\\s`, 'm'));
    // Adding it again: it is a member already.
    const again = await tsraft(['member', 'add', '5', '--raft', `127.0.0.1:${raft5}`, '--http', `http://127.0.0.1:${http5}`, '--endpoints', endpoints]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already a learner/);

    const remove = await tsraft(['member', 'remove', '5', '--endpoints', endpoints]);
    assert.equal(remove.code, 0, remove.stderr);
    assert.match(remove.stdout, /^node 5 removed at index \d+; voters: 0, 1, 2, 3; learners: none\n/);
    assert.deepEqual(ids((await list()).learners), []);
  });

  it('member remove takes a follower out; the cluster keeps serving; status shows it removed', async () => {
    const before = await list();
    const follower = [0, 1, 2].find((id) => id !== before.leader)!;
    const run = await tsraft(['member', 'remove', String(follower), '--endpoints', endpoints]);
    assert.equal(run.code, 0, run.stderr);
    const rest = [0, 1, 2, 3].filter((id) => id !== follower);
    assert.match(run.stdout, new RegExp(`^node ${follower} removed at index \\d+; voters: ${rest.join(', ')}; learners: none\\n`));
    assert.match(run.stdout, /stop its process/);
    const after = await list();
    assert.deepEqual(ids(after.voters), rest);
    assert.equal(after.joint, false);
    // Asked first, the removed node (which may be left with an old configuration and no leader) does not hide the leader's view.
    const removedFirst = await tsraft(['member', 'list', '--json', '--endpoints', [urls[follower], ...urls.filter((_, i) => i !== follower)].join(',')]);
    assert.equal(removedFirst.code, 0, removedFirst.stderr);
    assert.deepEqual(ids((JSON.parse(removedFirst.stdout) as KvMembers).voters), rest);
    const put = await tsraft(['put', 'after-remove', 'yes', '--endpoints', endpoints]);
    assert.equal(put.code, 0, put.stderr);
    // The removed node still runs (tsraft start keeps it); status shows it removed (it is not in the
    // leader's configuration, whether or not it heard of its removal itself).
    const status = await tsraft(['status', '--endpoints', `${endpoints},http://127.0.0.1:${http3}`]);
    assert.match(status.stdout, new RegExp(`^${follower}\\s+\\S+ \\(removed\\)\\s`, 'm'), status.stdout);
    assert.match(status.stdout, new RegExp(`^members \\(the leader's view, configuration at index \\d+\\): voters ${rest.join(', ')}; learners none$`, 'm'), status.stdout);
  });

  it('a joined node restarts from its data directory: without --peers, and with --join ignored', async () => {
    const node3 = nodes[0]!;
    assert.equal(await node3.stop(), 0, node3.output);
    const restarted = new NodeProcess(['--data-dir', join(dir!, 'd3'), '--no-fsync']);
    nodes.push(restarted);
    await restarted.waitFor('the restart', /no --peers: .*d3 already belongs to cluster "tsraft" as node 3; restarting from it\n(.|\n)*node 3 up: raft 127\.0\.0\.1:\d+, http http:\/\/127\.0\.0\.1:\d+/);
    assert.equal(await restarted.stop(), 0, restarted.output);

    const rejoined = new NodeProcess(['--id', '3', '--join', urls[0]!, '--data-dir', join(dir!, 'd3'), '--no-fsync']);
    nodes.push(rejoined);
    await rejoined.waitFor('--join ignored', /--join ignored: .*d3 already belongs to cluster "tsraft" as node 3; restarting from it\n(.|\n)*node 3 up: /);
    assert.doesNotMatch(rejoined.output, /joining the cluster/);
    const through3 = new KvClient({ endpoints: [`http://127.0.0.1:${http3}`], timeoutMs: 10_000 });
    assert.equal(await through3.get('after-remove'), 'yes');
    assert.deepEqual(ids((await list()).voters).includes(3), true);
  });

  it('--learner keeps a joined node a learner; restarted with --join (no --learner), it promotes itself', async () => {
    // urls[0] is node 0: the node removed above unless it led; a removed node knows no leader, and the join asks the members it names.
    const [raft6, http6] = await freeLoopbackPorts(2);
    const args = ['--id', '6', '--join', urls[0]!, '--join-timeout', '15000', '--listen', `127.0.0.1:${raft6}`, '--http', `127.0.0.1:${http6}`, '--data-dir', join(dir!, 'd6'), '--no-fsync'];
    const learner = new NodeProcess([...args, '--learner']);
    nodes.push(learner);
    await learner.waitFor('the learner line', /node 6 is a learner \(--learner\): it receives the log but does not vote; make it a voter with `tsraft member promote 6`/);
    assert.deepEqual(ids((await list()).learners), [6]);
    const status = await tsraft(['status', '--endpoints', `http://127.0.0.1:${http6}`]);
    assert.match(status.stdout, /^6\s+learner\s/m);
    assert.match(status.stdout, /; learners 6$/m);
    assert.equal(await learner.stop(), 0, learner.output);

    const resumed = new NodeProcess(args);
    nodes.push(resumed);
    await resumed.waitFor('the promotion', /--join ignored: (.|\n)*caught up, promoted: voters [\d, ]*6; learners none/);
    assert.ok(ids((await list()).voters).includes(6));
    const remove = await tsraft(['member', 'remove', '6', '--endpoints', endpoints]);
    assert.equal(remove.code, 0, remove.stderr);
  });

  it('tsraft node --join refusals: an id taken, an unreachable member, no --peers nor --join', async () => {
    const [raft6, http6] = await freeLoopbackPorts(2);
    const fresh = join(dir!, 'd-fresh');
    const taken = await tsraft(['node', '--id', '3', '--join', urls[0]!, '--join-timeout', '15000', '--listen', `127.0.0.1:${raft6}`, '--http', `127.0.0.1:${http6}`, '--data-dir', join(dir!, 'd-taken')]);
    assert.equal(taken.code, 2, `${taken.stdout}${taken.stderr}`);
    assert.match(taken.stderr, /node 3 cannot join through http:\/\/127\.0\.0\.1:\d+: node 3 is already a member, at raft 127\.0\.0\.1:\d+, http http:\/\/127\.0\.0\.1:\d+: choose another --id/);
    assertNoStackTrace(taken.stderr);

    const port = await freeLoopbackPortRange(1);
    const unreachable = await tsraft([
      'node', '--id', '7', '--join', `http://127.0.0.1:${port}`, '--join-timeout', '500', '--listen', `127.0.0.1:${raft6}`, '--http', `127.0.0.1:${http6}`, '--data-dir', fresh,
    ]);
    assert.equal(unreachable.code, 3, `${unreachable.stdout}${unreachable.stderr}`);
    assert.match(unreachable.stderr, new RegExp(`node 7 cannot join through http://127\\.0\\.0\\.1:${port}: no answer within 500 ms .*ECONNREFUSED.*Is it a running member of the cluster`));
    assertNoStackTrace(unreachable.stderr);

    const neither = await tsraft(['node', '--id', '7', '--data-dir', join(dir!, 'd-neither')]);
    assert.equal(neither.code, 2);
    assert.match(neither.stderr, /missing --peers <list> or --join <url>: .*d-neither holds no cluster identity to restart from/);

    const noAddress = await tsraft(['node', '--id', '7', '--join', urls[0]!, '--data-dir', fresh]);
    assert.equal(noAddress.code, 2);
    assert.match(noAddress.stderr, /--join needs this node's own addresses: --listen HOST:PORT \(raft\) and --http HOST:PORT/);
  });

  it('no cluster at the endpoints: member list and member promote exit 3 with what to do', async () => {
    const port = await freeLoopbackPortRange(1);
    for (const args of [['member', 'list'], ['member', 'promote', '4']]) {
      const run = await tsraft([...args, '--endpoints', `http://127.0.0.1:${port}`, '--timeout', '300']);
      assert.equal(run.code, 3, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, /no leader could be reached within 300 ms .*Is the cluster running \(`tsraft start`\)/);
      assertNoStackTrace(run.stderr);
    }
  });
});

describe('tsraft member: messages, tables and options without a cluster', () => {
  it('maps every failure to an exit code and a message that says what to do', () => {
    const cause = (message: string): { cause: Error } => ({ cause: new Error(message) });
    const behind = memberFailure(
      { verb: 'promote 4', id: 4 },
      new KvClientError('timeout', 'x', 409, 'learner-behind', cause('409 learner-behind: learner 4 has 10 of 5000 committed entries')),
      30_000,
    );
    assert.equal(behind.code, 1);
    assert.match(behind.message, /^member promote: node 4 is still catching up \(learner 4 has 10 of 5000 committed entries\): retry `tsraft member promote 4` in a moment/);
    const pending = memberFailure({ verb: 'remove 2', id: 2 }, new KvClientError('timeout', 'x', 409, 'membership-change-pending', cause('409 membership-change-pending: one at a time')), 30_000);
    assert.equal(pending.code, 1);
    assert.match(pending.message, /another membership change is still under way \(one at a time\): retry `tsraft member remove 2` once it completes/);
    const unknown = memberFailure({ verb: 'remove 2', id: 2 }, new KvClientError('timeout', 'x', 504, 'outcome-unknown', cause('504 outcome-unknown: timed out')), 30_000);
    assert.equal(unknown.code, 1);
    assert.match(unknown.message, /it may still complete: `tsraft member list` shows whether it did/);
    assert.equal(memberFailure({ verb: 'list' }, new KvClientError('timeout', 'no answer'), 5_000).code, 3);
    const refused = memberFailure({ verb: 'promote 9', id: 9 }, new KvClientError('bad-request', '400 invalid-membership-change: node 9 is not a learner', 400, 'invalid-membership-change'), 5_000);
    assert.equal(refused.code, 2);
    assert.equal(refused.message, 'member promote: refused: node 9 is not a learner; `tsraft member list` shows the members');
    assert.equal(memberFailure({ verb: 'list' }, new KvClientError('bad-request', '404 no-route: no such endpoint', 404, 'no-route'), 5_000).code, 1);
  });

  it('the member table marks the leader, and a joint configuration shows who joins and who leaves', () => {
    const m = (id: number, match?: number): { id: number; raft: string; http: string; match?: number } => ({
      id,
      raft: `127.0.0.1:${7000 + id}`,
      http: `http://127.0.0.1:${8000 + id}`,
      ...(match === undefined ? {} : { match }),
    });
    const joint: KvMembers = { leader: 0, membershipIndex: 9, committed: false, joint: true, voters: [m(0, 9), m(1, 9), m(3, 7)], outgoing: [m(0, 9), m(1, 9), m(2, 9)], learners: [m(4)] };
    const rows = membersTable(joint);
    assert.deepEqual(rows[0], ['id', 'role', 'raft', 'http', 'match']);
    assert.deepEqual(rows.slice(1).map((r) => [r[0], r[1], r[4]]), [
      ['0', 'voter, leader', '9'],
      ['1', 'voter', '9'],
      ['2', 'outgoing (leaving)', '9'],
      ['3', 'voter (joining)', '7'],
      ['4', 'learner', '-'],
    ]);
    assert.equal(membersSummary(joint), 'leader: node 0; configuration set at index 9 (not committed yet); joint consensus under way: voters changing from 0, 1, 2 to 0, 1, 3');
    assert.equal(membersSummary({ ...joint, leader: null, membershipIndex: 0, committed: true, joint: false, outgoing: [] }), 'no leader known; the starting configuration');
  });

  it('tsraft status: learners, removed nodes and the configuration lines', () => {
    const membership = { voters: [0, 1, 3], outgoing: [0, 1, 2], learners: [4], index: 12 };
    assert.equal(roleText({ id: 4, role: 'follower', membership }), 'learner');
    assert.equal(roleText({ id: 5, role: 'follower', membership }), 'follower (removed)');
    assert.equal(roleText({ id: 2, role: 'follower', membership }), 'follower');
    // A removed node that never heard of its removal: the leader's configuration says it.
    assert.equal(roleText({ id: 2, role: 'precandidate', membership }, { voters: [0, 1, 3], outgoing: [], learners: [], index: 13 }), 'precandidate (removed)');
    const lines = membershipLines([
      { endpoint: 'http://a', status: { id: 0, role: 'leader', term: 2, membership } },
      { endpoint: 'http://b', status: { id: 1, role: 'follower', term: 2, membership: { voters: [0, 1, 2], outgoing: [], learners: [], index: 3 } } },
      { endpoint: 'http://c', error: 'ECONNREFUSED' },
    ]);
    assert.deepEqual(lines, [
      "members (the leader's view, configuration at index 12): voters 0, 1, 3 (joint consensus: changing from voters 0, 1, 2); learners 4",
      'not shown: nodes 2, 3, 4 (not among --endpoints, or down; `tsraft member list` shows every member\'s URL)',
    ]);
    assert.deepEqual(membershipLines([{ endpoint: 'http://a', status: { id: 0, role: 'leader' } }]), []);
  });

  it('tsraft node options: --join needs own addresses, excludes --peers; a restart takes what the data directory recorded', () => {
    const base: NodeOptions = { dataDir: '/tmp/none', clusterId: 'tsraft', fsync: true };
    const join = parseNodeOptions({ ...base, id: '3', join: 'http://127.0.0.1:8000', listen: '127.0.0.1:7003', http: '127.0.0.1:8003' });
    assert.deepEqual(join.join?.self, { id: 3, raftHost: '127.0.0.1', raftPort: 7003, httpUrl: 'http://127.0.0.1:8003' });
    assert.equal(join.join?.url, 'http://127.0.0.1:8000');
    assert.equal(join.promote, true);
    assert.deepEqual(join.peers, []);
    const advertised = parseNodeOptions({ ...base, id: '3', join: 'http://127.0.0.1:8000', advertise: '10.0.0.3:7003/http://10.0.0.3:8003', listen: '0.0.0.0:7003', http: '0.0.0.0:8003', learner: true });
    assert.deepEqual(advertised.join?.self, { id: 3, raftHost: '10.0.0.3', raftPort: 7003, httpUrl: 'http://10.0.0.3:8003' });
    assert.deepEqual(advertised.listen, { host: '0.0.0.0', port: 7003 });
    assert.equal(advertised.promote, false);
    const usage: [NodeOptions, RegExp][] = [
      [{ ...base, id: '3', join: 'http://127.0.0.1:8000' }, /--join needs this node's own addresses/],
      [{ ...base, id: '3', join: 'http://127.0.0.1:8000', listen: '0.0.0.0:7003', http: '127.0.0.1:8003' }, /--listen 0\.0\.0\.0:7003 listens on every interface; .*--advertise/],
      [{ ...base, id: '3', join: 'http://127.0.0.1:8000', peers: '0=127.0.0.1:7000/http://127.0.0.1:8000' }, /--peers and --join exclude each other/],
      [{ ...base, join: 'http://127.0.0.1:8000', listen: '127.0.0.1:7003', http: '127.0.0.1:8003' }, /missing --id <n> \(this node's id: one no member of the cluster uses\)/],
      [{ ...base, id: '3', join: 'http://127.0.0.1:8003', listen: '127.0.0.1:7003', http: '127.0.0.1:8003' }, /is this node's own HTTP URL/],
      [{ ...base, id: '3', join: 'ftp://x:1', listen: '127.0.0.1:7003', http: '127.0.0.1:8003' }, /--join: only http/],
      [{ ...base, id: '3' }, /missing --peers <list> or --join <url>/],
    ];
    for (const [options, message] of usage) assert.throws(() => parseNodeOptions(options), message);
    assert.throws(() => parseNodeOptions({ ...base, id: '3', join: 'http://127.0.0.1:8000', listen: '127.0.0.1:7003', http: '127.0.0.1:8003' }, { identity: null, holdsData: true }), /holds Raft data but no cluster identity/);

    const identity: StoredClusterIdentity = {
      version: 2,
      createdAt: '2026-01-01T00:00:00.000Z',
      clusterId: 'prod',
      nodeId: 3,
      members: [{ id: 0, address: '127.0.0.1:7000/http://127.0.0.1:8000' }],
      learners: [{ id: 3, address: '127.0.0.1:7003/http://127.0.0.1:8003' }],
    };
    const restart = parseNodeOptions(base, { identity, holdsData: true }, false);
    assert.equal(restart.id, 3);
    assert.equal(restart.clusterId, 'prod');
    assert.deepEqual(restart.peers, []);
    assert.deepEqual(restart.listen, { host: '127.0.0.1', port: 7003 });
    assert.deepEqual(restart.http, { host: '127.0.0.1', port: 8003 });
    assert.match(restart.notice ?? '', /^no --peers: \/tmp\/none already belongs to cluster "prod" as node 3; restarting from it$/);
    const ignored = parseNodeOptions({ ...base, id: '3', join: 'http://127.0.0.1:8000' }, { identity, holdsData: true }, false);
    assert.equal(ignored.join, undefined);
    assert.equal(ignored.rejoinUrl, 'http://127.0.0.1:8000');
    assert.match(ignored.notice ?? '', /^--join ignored: /);
  });
});
