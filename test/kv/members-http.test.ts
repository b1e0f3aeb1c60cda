/**
 * Membership changes through the HTTP API (src/kv/http-member-routes.ts) on in-process KvServers:
 * a node joins a running 3-node cluster as a learner (a follower redirects the request, the leader
 * adds it), catches up, is promoted; a change while another is pending is refused with 409; bad
 * requests are refused with 400 before anything is proposed; a follower and then the leader itself
 * are removed, and a new leader takes writes; every member's GET /v1/members agrees; the joined
 * node restarts from its data directory without peers and comes back with the membership its log
 * holds. Every wait is bounded.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NodeId } from '../../src/core/messages.js';
import type { MembersView, MemberView } from '../../src/kv/api-types.js';
import type { KvPeer } from '../../src/kv/server.js';
import { freeLoopbackPorts } from '../../src/testing/ports.js';
import { KvCluster, raw, waitFor, type Raw } from './kv-cluster-fixture.js';

function errorCode(r: Raw): unknown {
  return (r.json['error'] as { code?: unknown } | undefined)?.code;
}

function ids(list: unknown): number[] {
  return (list as MemberView[]).map((m) => m.id);
}

/** POST /v1/members's body for `peer`. */
function addBody(peer: KvPeer, role?: 'learner' | 'voter'): string {
  return JSON.stringify({ id: peer.id, raft: `${peer.raftHost}:${peer.raftPort}`, http: peer.httpUrl, ...(role === undefined ? {} : { role }) });
}

function post(url: string, body?: string): Promise<Raw> {
  return raw(url, { method: 'POST', ...(body === undefined ? {} : { body, headers: { 'Content-Type': 'application/json' } }) });
}

describe('membership changes over HTTP', { timeout: 120_000 }, () => {
  let cluster: KvCluster;
  /** The member that joins (node 3). */
  let joiner: NodeId;
  /** Members removed so far: stopped, out of every check. */
  const removed = new Set<NodeId>();

  before(async () => {
    cluster = await KvCluster.start({ size: 3 });
    await cluster.leader();
  });

  after(async () => {
    await cluster?.stop();
  });

  /** The running members that are still in the cluster. */
  function running(): NodeId[] {
    return cluster.members.filter((id) => cluster.servers[id] !== null && !removed.has(id));
  }

  async function members(id: NodeId): Promise<MembersView & Record<string, unknown>> {
    const r = await raw(`${cluster.url(id)}/v1/members`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json as unknown as MembersView & Record<string, unknown>;
  }

  /** Waits until every running member reports the same committed configuration, with these voters and learners; returns it. */
  async function agreed(voters: number[], learners: number[]): Promise<MembersView> {
    let last = '';
    return waitFor(
      `every member to report voters ${voters} and learners ${learners}`,
      10_000,
      async () => {
        const views = await Promise.all(running().map((id) => members(id)));
        last = JSON.stringify(views);
        const first = views[0]!;
        const same = views.every(
          (v) =>
            v.committed &&
            !v.joint &&
            v.membershipIndex === first.membershipIndex &&
            ids(v.voters).join() === voters.join() &&
            ids(v.learners).join() === learners.join() &&
            JSON.stringify(v.voters.map(({ id, raft, http }) => ({ id, raft, http }))) === JSON.stringify(first.voters.map(({ id, raft, http }) => ({ id, raft, http }))),
        );
        return same ? first : undefined;
      },
      () => `${last}\n${cluster.describe()}`,
    );
  }

  /** A write through the current leader (found afresh), answered 200; returns its index. */
  async function write(key: string, value: string): Promise<number> {
    const leader = await cluster.leader();
    const r = await raw(`${cluster.url(leader)}/v1/kv/${key}`, { method: 'PUT', body: value });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json['index'] as number;
  }

  it('GET /v1/members: every node reports the starting configuration; only the leader has match', async () => {
    const leader = await cluster.leader();
    for (const id of cluster.members) {
      const view = await members(id);
      assert.equal(view.leader, leader);
      assert.equal(view.membershipIndex, 0);
      assert.equal(view.committed, true);
      assert.equal(view.joint, false);
      assert.deepEqual(view.outgoing, []);
      assert.deepEqual(view.learners, []);
      assert.deepEqual(
        view.voters.map(({ id: voter, raft, http }) => ({ id: voter, raft, http })),
        cluster.founders.map((p) => ({ id: p.id, raft: `127.0.0.1:${p.raftPort}`, http: p.httpUrl })),
      );
      for (const v of view.voters) {
        if (id === leader) assert.equal(typeof v.match, 'number', `the leader's view has match: ${JSON.stringify(view)}`);
        else assert.equal(v.match, undefined, `a follower's view has no match: ${JSON.stringify(view)}`);
      }
      const status = await raw(`${cluster.url(id)}/v1/status`);
      assert.deepEqual(status.json['membership'], { voters: [0, 1, 2], outgoing: [], learners: [], index: 0 });
    }
  });

  it('bad requests are refused with 400 invalid-membership-change (or 404 / 405 / unknown-parameter), nothing proposed', async () => {
    const leader = await cluster.leader();
    const base = `${cluster.url(leader)}/v1/members`;
    const before = (await members(leader)).membershipIndex;
    const [freeRaft, freeHttp] = await freeLoopbackPorts(2);
    const good = { id: 7, raft: `127.0.0.1:${freeRaft}`, http: `http://127.0.0.1:${freeHttp}` };
    const bad: [string, string, RegExp][] = [
      ['not JSON', '{"id": 7,', /not UTF-8 JSON/],
      ['empty', '', /the body is empty/],
      ['an array', '[1]', /must be a JSON object/],
      ['a negative id', JSON.stringify({ ...good, id: -1 }), /"id" must be a non-negative integer/],
      ['a fractional id', JSON.stringify({ ...good, id: 1.5 }), /"id" must be a non-negative integer/],
      ['an id as text', JSON.stringify({ ...good, id: '7' }), /"id" must be a non-negative integer/],
      ['an unsafe id', '{"id": 9007199254740993, "raft": "127.0.0.1:1", "http": "http://127.0.0.1:2"}', /"id" must be a non-negative integer/],
      ['no raft address', JSON.stringify({ id: 7, http: good.http }), /"raft" must be/],
      ['a raft address without a port', JSON.stringify({ ...good, raft: '127.0.0.1' }), /expected HOST:PORT/],
      ['a raft port out of range', JSON.stringify({ ...good, raft: '127.0.0.1:70000' }), /out of range/],
      ['a bad raft host', JSON.stringify({ ...good, raft: 'bad_host!:7000' }), /invalid host/],
      ['an ftp URL', JSON.stringify({ ...good, http: 'ftp://127.0.0.1:8443' }), /only http:\/\/ and https:\/\/ URLs/],
      ['a URL with a path', JSON.stringify({ ...good, http: 'http://127.0.0.1:8000/x' }), /must have no path/],
      ['a URL without a port', JSON.stringify({ ...good, http: 'http://127.0.0.1' }), /explicit port/],
      ['an unknown role', JSON.stringify({ ...good, role: 'observer' }), /"role" must be "learner" or "voter"/],
      ['an unknown field', JSON.stringify({ ...good, weight: 2 }), /unknown field "weight"/],
      ['a voter\'s raft address', JSON.stringify({ ...good, raft: `127.0.0.1:${cluster.raftPort(1)}` }), /the raft address 127\.0\.0\.1:\d+ is member 1's/],
      ['a voter\'s HTTP URL', JSON.stringify({ ...good, http: cluster.url(2) }), /the HTTP URL http:\/\/127\.0\.0\.1:\d+ is member 2's/],
      ['an id already a voter', JSON.stringify({ ...good, id: 1 }), /node 1 is already a voter/],
    ];
    for (const [what, body, message] of bad) {
      const r = await post(base, body);
      assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.json)}`);
      assert.equal(errorCode(r), 'invalid-membership-change', what);
      assert.match((r.json['error'] as { message: string }).message, message, what);
    }
    const paths: [string, string, number, string, RegExp][] = [
      ['POST', '/v1/members/9/promote', 400, 'invalid-membership-change', /node 9 is not a learner/],
      ['POST', '/v1/members/1/promote', 400, 'invalid-membership-change', /node 1 is already a voter/],
      ['DELETE', '/v1/members/9', 400, 'invalid-membership-change', /node 9 is not a member/],
      ['DELETE', '/v1/members/x', 400, 'invalid-membership-change', /a member id is a non-negative integer/],
      ['DELETE', '/v1/members/99999999999999999', 400, 'invalid-membership-change', /a member id is a non-negative integer/],
      ['DELETE', '/v1/members', 405, 'method-not-allowed', /use GET, POST/],
      ['GET', '/v1/members/1', 405, 'method-not-allowed', /use DELETE/],
      ['DELETE', '/v1/members/1/promote', 405, 'method-not-allowed', /use POST/],
      ['POST', '/v1/members/1/demote', 404, 'no-route', /no such endpoint/],
      ['GET', '/v1/members?x=1', 400, 'unknown-parameter', /unknown query parameter "x"/],
    ];
    for (const [method, path, status, code, message] of paths) {
      const r = await raw(`${cluster.url(leader)}${path}`, { method });
      assert.equal(r.status, status, `${method} ${path}: ${JSON.stringify(r.json)}`);
      assert.equal(errorCode(r), code, `${method} ${path}`);
      assert.match((r.json['error'] as { message: string }).message, message, `${method} ${path}`);
    }
    assert.equal((await members(leader)).membershipIndex, before, 'a refused request proposed a change');
  });

  it('a joining node: a follower redirects (307) the POST, the leader adds it as a learner (200), and writes reach it', async () => {
    const joined = await cluster.join();
    joiner = joined.id;
    assert.equal(joiner, 3);
    // Before it is added, it knows the founders as voters and itself as a learner.
    const own = await members(joiner);
    assert.deepEqual(ids(own.voters), [0, 1, 2]);
    assert.deepEqual(ids(own.learners), [3]);

    const leader = await cluster.leader();
    const follower = [0, 1, 2].find((id) => id !== leader)!;
    const redirected = await post(`${cluster.url(follower)}/v1/members`, addBody(joined.peer));
    assert.equal(redirected.status, 307, JSON.stringify(redirected.json));
    assert.equal(redirected.headers.get('location'), `${cluster.url(leader)}/v1/members`);
    assert.equal(errorCode(redirected), 'not-leader');

    const added = await post(`${cluster.url(leader)}/v1/members`, addBody(joined.peer));
    assert.equal(added.status, 200, JSON.stringify(added.json));
    assert.equal(added.json['leader'], leader);
    assert.deepEqual(ids(added.json['voters']), [0, 1, 2]);
    assert.deepEqual(added.json['learners'], [{ id: 3, raft: `127.0.0.1:${joined.peer.raftPort}`, http: joined.peer.httpUrl, match: (added.json['learners'] as MemberView[])[0]!.match }]);
    assert.equal(typeof added.json['index'], 'number');
    assert.ok((added.json['index'] as number) > 0);
    assert.equal(added.json['committed'], true);

    // The same again: it is a learner already.
    const again = await post(`${cluster.url(leader)}/v1/members`, addBody(joined.peer));
    assert.equal(again.status, 400);
    assert.match((again.json['error'] as { message: string }).message, /node 3 is already a learner/);

    const index = await write('joined', 'yes');
    await waitFor('the learner to apply the write', 10_000, async () => {
      const r = await raw(`${cluster.url(joiner)}/v1/kv/joined?stale=true`);
      return r.status === 200 && r.json['value'] === 'yes' && (r.json['index'] as number) >= index;
    });
    await agreed([0, 1, 2], [3]);
    // A learner takes no writes: it redirects them to the leader like a follower.
    const put = await raw(`${cluster.url(joiner)}/v1/kv/k`, { method: 'PUT', body: 'v' });
    assert.equal(put.status, 307);
  });

  it('promote: the learner becomes a voter (200, through a joint configuration); metrics count voters and learners', async () => {
    const leader = await cluster.leader();
    const redirected = await post(`${cluster.url([0, 1, 2].find((id) => id !== leader)!)}/v1/members/3/promote`);
    assert.equal(redirected.status, 307);
    assert.equal(redirected.headers.get('location'), `${cluster.url(leader)}/v1/members/3/promote`);
    const promoted = await post(`${cluster.url(leader)}/v1/members/3/promote`);
    assert.equal(promoted.status, 200, JSON.stringify(promoted.json));
    assert.deepEqual(ids(promoted.json['voters']), [0, 1, 2, 3]);
    assert.deepEqual(promoted.json['learners'], []);
    assert.equal(promoted.json['joint'], false);
    assert.equal(promoted.json['index'], promoted.json['membershipIndex'], 'the index that completed it is the configuration in effect');
    const view = await agreed([0, 1, 2, 3], []);
    assert.equal(view.membershipIndex, promoted.json['index']);
    const metrics = await (await fetch(`${cluster.url(leader)}/metrics`)).text();
    assert.match(metrics, /^tsraft_voters 4$/m);
    assert.match(metrics, /^tsraft_learners 0$/m);
    // Added as a learner, then joint, then the final configuration: three changes since it started.
    assert.match(metrics, /^tsraft_membership_changes_total 3$/m);
    const status = await raw(`${cluster.url(3)}/v1/status`);
    assert.deepEqual(status.json['membership'], { voters: [0, 1, 2, 3], outgoing: [], learners: [], index: promoted.json['index'] });
  });

  it('a change while another is pending: 409 membership-change-pending; the first may still complete (503/504 outcome-unknown)', async () => {
    const leader = await cluster.leader();
    // Two of the four voters down: nothing can commit, so the first change stays pending.
    const down = cluster.members.filter((id) => id !== leader && !removed.has(id)).slice(0, 2);
    for (const id of down) await cluster.stopServer(id);
    const [raftPort, httpPort] = await freeLoopbackPorts(2);
    const phantom: KvPeer = { id: 5, raftHost: '127.0.0.1', raftPort: raftPort!, httpUrl: `http://127.0.0.1:${httpPort!}` };
    const first = post(`${cluster.url(leader)}/v1/members`, addBody(phantom));
    // The first change is appended at once; the second arrives while it is uncommitted.
    await waitFor('the first change to be appended', 2_000, async () => (await members(leader)).learners.some((m) => m.id === 5));
    const second = await raw(`${cluster.url(leader)}/v1/members/1`, { method: 'DELETE' });
    assert.equal(second.status, 409, JSON.stringify(second.json));
    assert.equal(errorCode(second), 'membership-change-pending');
    assert.equal(second.headers.get('retry-after'), '1');
    const outcome = await first;
    // Check-quorum makes the leader step down (503) unless the 2 s request timeout comes first (504).
    assert.ok(outcome.status === 503 || outcome.status === 504, JSON.stringify(outcome.json));
    assert.equal(errorCode(outcome), 'outcome-unknown');
    assert.match((outcome.json['error'] as { message: string }).message, /GET \/v1\/members/);
    for (const id of down) await cluster.startServer(id);
    await cluster.leader();
    // The change committed or was dropped with its leader's term: either way, no trace of it once settled.
    const now = await waitFor('a committed configuration', 10_000, async () => {
      const view = await members(await cluster.leader());
      return view.committed && !view.joint ? view : undefined;
    });
    if (now.learners.some((m) => m.id === 5)) {
      const gone = await raw(`${cluster.url(await cluster.leader())}/v1/members/5`, { method: 'DELETE' });
      assert.equal(gone.status, 200, JSON.stringify(gone.json));
    }
    await agreed([0, 1, 2, 3], []);
  });

  it('DELETE a follower: voters back to three; the removed server stops; writes go on', async () => {
    const leader = await cluster.leader();
    const victim = [0, 1, 2].find((id) => id !== leader)!;
    const r = await raw(`${cluster.url(leader)}/v1/members/${victim}`, { method: 'DELETE' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const voters = [0, 1, 2, 3].filter((id) => id !== victim);
    assert.deepEqual(ids(r.json['voters']), voters);
    assert.deepEqual(r.json['outgoing'], []);
    removed.add(victim);
    await cluster.stopServer(victim);
    await agreed(voters, []);
    await write('after-follower-removal', 'ok');
  });

  it('DELETE the leader itself: it answers 200 and steps down; a new leader among the rest takes writes', async () => {
    let leader = await cluster.leader();
    if (leader === joiner) {
      // The joined node must stay, for the restart below: hand leadership to another voter first.
      const to = running().find((id) => id !== joiner)!;
      const moved = await raw(`${cluster.url(leader)}/v1/leader/transfer?to=${to}`, { method: 'POST' });
      assert.equal(moved.status, 200, JSON.stringify(moved.json));
      // Not cluster.leader(): a new leader commits its predecessor's last entries only with an entry of its own term.
      leader = await waitFor('the transfer', 10_000, () => (cluster.server(to).status().role === 'leader' ? to : undefined));
    }
    const r = await raw(`${cluster.url(leader)}/v1/members/${leader}`, { method: 'DELETE' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const rest = running().filter((id) => id !== leader);
    assert.deepEqual(ids(r.json['voters']), rest);
    removed.add(leader);
    const next = await waitFor('a new leader among the rest', 10_000, async () => {
      const id = await cluster.leader();
      return rest.includes(id) ? id : undefined;
    });
    await cluster.stopServer(leader);
    const index = await write('after-leader-removal', 'ok');
    assert.ok(index > (r.json['index'] as number));
    const view = await agreed(rest, []);
    assert.equal(view.leader, next);
  });

  it('the joined node restarts from its data directory without peers and comes back with the membership of its log', async () => {
    const voters = running();
    assert.ok(voters.includes(joiner), `node ${joiner} should still be a voter: ${voters}`);
    const index = await write('before-restart', 'ok');
    await cluster.restart(joiner, { fromIdentity: true });
    const view = await agreed(voters, []);
    assert.ok(view.membershipIndex > 0);
    await waitFor('the restarted node to apply what it had', 10_000, () => cluster.server(joiner).status().appliedIndex >= index);
    await write('after-restart', 'ok');
    const status = await raw(`${cluster.url(joiner)}/v1/status`);
    assert.deepEqual((status.json['membership'] as { voters: number[] }).voters, voters);
  });
});
