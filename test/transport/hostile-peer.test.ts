/**
 * Hostile peers on the peer port of a live cluster (the hardening issue's done criterion): a
 * 3-node KV cluster in this process (KvServers with FileStorage in a temporary directory,
 * TcpTransport and HTTP on 127.0.0.1) takes writes from a client through the HTTP API while a
 * raw TCP connection (src/testing/hostile-peer.ts) sends it messages that cannot be true: absurd
 * terms, a second leader, strangers, acknowledgements of entries that do not exist, replacements
 * of committed entries, garbage snapshots, transport garbage, and a few hundred seeded mutations
 * of valid messages of every type.
 *
 * How a forged sender gets in: TcpTransport knows a peer only by the hello that opens the
 * connection (magic, cluster id, sender id, receiver id, optionally the sender's address) and
 * delivers a message only if its `from` is the hello's sender and its `to` is the node. A hello
 * from a non-member is accepted too (a member added after the end of a node's log must be able to
 * reach it), within a small shared budget of non-member connections, and Raft drops what a
 * non-member cannot send (any reply). Nothing is authenticated, so the attacker says hello as a
 * member to be taken for one, or as a stranger (7, 99, a flood of ids) to be a budgeted non-member.
 *
 * After every attack: every node still runs (NodeStatus.stopped false, /healthz 200), a leader
 * exists within a bounded wait, every acknowledged write reads back with its value, and
 * `tsraft_peer_messages_dropped_total{reason=...}` on /metrics counted the rejects; at the end,
 * every node holds every acknowledged write.
 *
 * The second suite (its own cluster) holds two forged answers to the leader that this suite found
 * getting through (a read echo from the future, a rejection beyond the log), kept as regressions.
 *
 * Every wait and loop is bounded; the file takes 15-25 s on two shared cores.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CodecError, decodeMessage, encodeMessage } from '../../src/codec/codec.js';
import { crc32c } from '../../src/core/crc32c.js';
import type { Membership } from '../../src/core/membership.js';
import type { Message, NodeId } from '../../src/core/messages.js';
import { checkPeerMessage, DROP_REASONS, TERM_MAX, type DropReason } from '../../src/core/validate.js';
import { KvClient } from '../../src/kv/client.js';
import { Prng } from '../../src/sim/prng.js';
import { freeLoopbackPorts } from '../../src/testing/ports.js';
import { HostilePeer, MESSAGE_TYPES, mutateBytes, mutateMessage, seededBytes, validMessage, type ClusterView } from '../../src/testing/hostile-peer.js';
import { KvCluster, sleep, waitFor, type KvClusterOptions } from '../kv/kv-cluster-fixture.js';
import { DEFAULT_SNAPSHOT_BYTES_MAX } from '../../src/core/config.js';

const CLUSTER_ID = 'hostile';
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** The fuzz seed: TSRAFT_HOSTILE_SEED=<n> replays another one. */
const FUZZ_SEED = Number(process.env['TSRAFT_HOSTILE_SEED'] ?? 20240611);

/** The configuration of the 3-member cluster, carried by forged snapshot chunks. */
const MEMBERSHIP: Membership = { voters: [0, 1, 2], outgoing: [], learners: [], addresses: [] };

type Drops = Record<DropReason, number>;

function dropsDelta(after: Drops, before: Drops): Partial<Drops> {
  const out: Partial<Drops> = {};
  for (const reason of DROP_REASONS) if (after[reason] !== before[reason]) out[reason] = after[reason] - before[reason];
  return out;
}

/** Three members of cluster CLUSTER_ID; stopping them after an attack goes on past one whose stop() fails. */
const CLUSTER: KvClusterOptions = { size: 3, prefix: 'tsraft-hostile-', server: { clusterId: CLUSTER_ID }, ignoreStopErrors: true };

/** Three KvServers in this process, restartable on their directories and ports (the shared KV fixture), with what the attacks here measure. */
class Cluster extends KvCluster {
  /**
   * The leader and its two followers, both following it in its term: the state a forged message
   * is measured against. Waits (bounded) for the cluster to settle into it.
   */
  stable(timeoutMs = 10_000): Promise<{ leader: NodeId; followers: [NodeId, NodeId]; term: number }> {
    return waitFor(
      'a leader followed by both followers',
      timeoutMs,
      () => {
        const statuses = this.servers.map((s) => s?.status()).map((s) => (s?.stopped === true ? undefined : s));
        const leader = statuses.find((s) => s !== undefined && s.role === 'leader' && s.appliedIndex >= s.lastIndex);
        if (leader === undefined) return undefined;
        const followers = statuses.filter((s) => s !== undefined && s.id !== leader.id);
        if (followers.length !== 2 || !followers.every((f) => f!.role === 'follower' && f!.term === leader.term && f!.leaderId === leader.id)) return undefined;
        return { leader: leader.id, followers: [followers[0]!.id, followers[1]!.id] as [NodeId, NodeId], term: leader.term };
      },
      () => this.describe(),
    );
  }

  /** The dropped-message counters of node `id`, as /metrics shows them. */
  async drops(id: NodeId): Promise<Drops> {
    const response = await fetch(`${this.url(id)}/metrics`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(response.status, 200, `GET /metrics on node ${id}`);
    const text = await response.text();
    const out = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Drops;
    for (const match of text.matchAll(/^tsraft_peer_messages_dropped_total\{reason="([a-z-]+)"\} (\d+)$/gm)) {
      out[match[1] as DropReason] = Number(match[2]);
    }
    return out;
  }

  /** Inbound peer connections node `id` closed as malformed (tsraft_transport_connections_closed_total). */
  async malformedConnections(id: NodeId): Promise<number> {
    const response = await fetch(`${this.url(id)}/metrics`, { signal: AbortSignal.timeout(5_000) });
    const match = /^tsraft_transport_connections_closed_total\{reason="malformed"\} (\d+)$/m.exec(await response.text());
    assert.ok(match !== null, `node ${id}: no tsraft_transport_connections_closed_total{reason="malformed"} on /metrics`);
    return Number(match[1]);
  }

  /** Waits until node `id` counted at least `count` more drops of `reason` than in `before`. */
  async expectDrops(id: NodeId, reason: DropReason, before: Drops, count: number, what: string): Promise<Drops> {
    let last = before;
    try {
      await waitFor(`${what}: node ${id} counting ${count} more '${reason}'`, 3_000, async () => {
        last = await this.drops(id);
        return last[reason] - before[reason] >= count;
      });
    } catch {
      assert.fail(`${what}: node ${id} counted ${last[reason] - before[reason]} '${reason}' drops, expected at least ${count}; changes: ${JSON.stringify(dropsDelta(last, before))}\n${this.describe()}`);
    }
    return last;
  }
}

/**
 * A client writing fresh keys through the HTTP API, one at a time (about 50 a second), recording
 * each write the API acknowledged. A write that failed (timeout, no leader) was not acknowledged
 * and is not checked.
 */
class Writer {
  readonly acked = new Map<string, string>();
  failed = 0;
  private readonly client: KvClient;
  private stopped = false;
  private paused = false;
  private idle = true;
  private loop: Promise<void> | null = null;

  constructor(cluster: Cluster, private readonly prefix: string) {
    this.client = new KvClient({ endpoints: cluster.members.map((id) => cluster.url(id)), timeoutMs: 4_000 });
  }

  start(): void {
    this.loop = (async () => {
      for (let n = 0; !this.stopped && n < 20_000; n++) {
        if (this.paused) {
          this.idle = true;
          await sleep(10);
          n--;
          continue;
        }
        this.idle = false;
        const key = `${this.prefix}-${n}`;
        const value = `value-${n}-${Date.now()}`;
        try {
          await this.client.put(key, value);
          this.acked.set(key, value);
        } catch {
          this.failed++;
        }
        await sleep(15);
      }
      this.idle = true;
    })();
  }

  /** Stops issuing writes and waits (bounded by the client's timeout) for the one in flight. */
  async pause(): Promise<void> {
    this.paused = true;
    await waitFor('the writer to go idle', 10_000, () => this.idle);
  }

  resume(): void {
    this.paused = false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/** Sends `messages` to node `to` on a fresh connection that says hello as `from`, then closes it. */
async function forge(cluster: Cluster, to: NodeId, from: NodeId, messages: readonly Message[]): Promise<void> {
  const peer = await HostilePeer.connect({ port: cluster.raftPort(to), hello: { clusterId: CLUSTER_ID, from, to } });
  for (const message of messages) peer.send(message);
  await peer.flushed();
  await peer.close();
}

/** Everything the issue asks to hold after an attack. */
async function assertClusterHealthy(cluster: Cluster, writer: Writer, what: string): Promise<void> {
  for (const id of cluster.members) {
    const server = cluster.servers[id];
    assert.ok(server !== null && server !== undefined, `${what}: node ${id} is not running`);
    assert.equal(server.status().stopped, false, `${what}: node ${id} stopped\n${cluster.describe()}`);
    const health = await fetch(`${cluster.url(id)}/healthz`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(health.status, 200, `${what}: /healthz of node ${id}`);
    await health.body?.cancel();
    const term = server.status().term;
    assert.ok(term < TERM_MAX, `${what}: node ${id} is in term ${term}`);
  }
  await cluster.leader();
  await assertAckedReadable(cluster, writer, what);
}

/** Every acknowledged write reads back with its value (linearizable reads, 16 at a time). */
async function assertAckedReadable(cluster: Cluster, writer: Writer, what: string): Promise<void> {
  const reader = new KvClient({ endpoints: cluster.members.filter((id) => cluster.servers[id] !== null).map((id) => cluster.url(id)), timeoutMs: 8_000 });
  const entries = [...writer.acked];
  assert.ok(entries.length > 0, `${what}: no write was acknowledged at all`);
  for (let i = 0; i < entries.length; i += 16) {
    await Promise.all(
      entries.slice(i, i + 16).map(async ([key, value]) => {
        const got = await reader.get(key);
        assert.equal(got, value, `${what}: acknowledged write ${key}=${value} reads back as ${String(got)}\n${cluster.describe()}`);
      }),
    );
  }
}

/** Waits until node `id` has applied everything the leader had committed when called. */
async function caughtUp(cluster: Cluster, id: NodeId): Promise<void> {
  const leader = await cluster.leader();
  const target = cluster.server(leader).status().commitIndex;
  await waitFor(`node ${id} to apply up to ${target}`, 10_000, () => (cluster.servers[id]?.status().appliedIndex ?? -1) >= target, () => cluster.describe());
}

/** Runs `attack` until node `id` counted `count` more `reason` drops (a genuine election in between can make a forged message merely stale). */
async function attackUntilCounted(cluster: Cluster, id: NodeId, reason: DropReason, count: number, what: string, attack: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const before = await cluster.drops(id);
    await attack();
    try {
      await cluster.expectDrops(id, reason, before, count, what);
      return;
    } catch (error) {
      if (attempt >= 3 || cluster.servers[id]?.status().stopped !== false) throw error;
      await cluster.stable();
    }
  }
}

describe('hostile peers on the peer port of a live 3-node KV cluster', { timeout: 120_000 }, () => {
  let cluster: Cluster;
  let writer: Writer;

  before(async () => {
    cluster = await Cluster.start(CLUSTER);
    await cluster.stable();
    writer = new Writer(cluster, 'w');
    writer.start();
    await waitFor('the first acknowledged writes', 10_000, () => writer.acked.size >= 20);
  });

  after(async () => {
    try {
      if (writer !== undefined) {
        await writer.stop();
        // The last word: every node holds every acknowledged write (stale reads on each node once
        // it applied what the leader committed), not just the leader.
        const leader = await cluster.leader();
        const reader = (id: NodeId): KvClient => new KvClient({ endpoints: [cluster.url(id)], timeoutMs: 5_000 });
        for (const id of cluster.members) {
          await caughtUp(cluster, id);
          const client = reader(id);
          for (const [key, value] of writer.acked) assert.equal(await client.get(key, { stale: true }), value, `node ${id} (leader ${leader}) lacks ${key}`);
        }
      }
    } finally {
      await cluster?.stop();
    }
  });

  it('RequestVote and PreVote with term 2^53-1 and TERM_MAX+1 are dropped: no term moves, no node stops, also after a restart', async () => {
    const { followers } = await cluster.stable();
    const termsBefore = cluster.members.map((id) => cluster.server(id).status().term);
    const absurd = (from: NodeId, to: NodeId): Message[] =>
      [MAX_SAFE, TERM_MAX + 1].flatMap((term): Message[] => [
        // A log that would win any vote: only the term check stands between it and every node.
        { type: 'RequestVote', from, to, term, lastLogIndex: MAX_SAFE, lastLogTerm: term },
        { type: 'PreVote', from, to, term, lastLogIndex: MAX_SAFE, lastLogTerm: term },
      ]);
    const before = await Promise.all(cluster.members.map((id) => cluster.drops(id)));
    for (const id of cluster.members) await forge(cluster, id, (id + 1) % 3, absurd((id + 1) % 3, id));
    for (const id of cluster.members) await cluster.expectDrops(id, 'term-out-of-range', before[id]!, 4, 'absurd terms');
    for (const id of cluster.members) {
      const term = cluster.server(id).status().term;
      // A genuine election could add a term or two on a loaded machine; the forged term is 2^48 away.
      assert.ok(term <= termsBefore[id]! + 2, `node ${id} moved from term ${termsBefore[id]} to ${term}`);
    }
    await assertClusterHealthy(cluster, writer, 'absurd terms');

    // The same after a restart: the counters start again from zero, and the term read back from
    // disk is still the real one.
    const restarted = followers[0];
    await cluster.restart(restarted);
    await caughtUp(cluster, restarted);
    const fresh = await cluster.drops(restarted);
    await forge(cluster, restarted, followers[1], absurd(followers[1], restarted));
    await cluster.expectDrops(restarted, 'term-out-of-range', fresh, 4, 'absurd terms after a restart');
    assert.ok(cluster.server(restarted).status().term <= termsBefore[restarted]! + 2, 'restarted node kept its term');
    await assertClusterHealthy(cluster, writer, 'absurd terms after a restart');
  });

  it("a second leader in the leader's own term is dropped by the followers and by the leader; leadership does not move", async () => {
    const victim = (await cluster.stable()).followers[0];
    await attackUntilCounted(cluster, victim, 'second-leader', 2, 'second leader at a follower', async () => {
      const { leader, term } = await cluster.stable();
      const impostor = cluster.members.find((id) => id !== victim && id !== leader)!;
      // The other follower claims to lead the current term: an empty AppendEntries and a snapshot chunk.
      await forge(cluster, victim, impostor, [
        { type: 'AppendEntries', from: impostor, to: victim, term, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0, readContext: 0 },
        { type: 'InstallSnapshot', from: impostor, to: victim, term, lastIncludedIndex: 1_000_000, lastIncludedTerm: term, snapshotBytes: 4, checksum: crc32c(new Uint8Array(4)), offset: 0, data: new Uint8Array(4), done: true, membership: MEMBERSHIP },
      ]);
    });
    const { leader, followers, term } = await cluster.stable();
    await attackUntilCounted(cluster, leader, 'second-leader', 1, 'second leader at the leader', async () => {
      const s = await cluster.stable();
      await forge(cluster, s.leader, s.followers[0], [{ type: 'AppendEntries', from: s.followers[0], to: s.leader, term: s.term, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0, readContext: 0 }]);
    });
    const now = await cluster.stable();
    assert.deepEqual([now.leader, now.term], [leader, term], `leadership moved\n${cluster.describe()}`);
    for (const id of followers) assert.equal(cluster.server(id).status().leaderId, leader, `node ${id} follows the impostor`);
    await assertClusterHealthy(cluster, writer, 'second leader');
  });

  it("non-members (ids 7 and 99) are heard within the non-member budget but their acknowledgements are dropped by Raft, their messages on a member's connection are dropped by the transport, and a flood of non-member hellos never displaces a member: nothing changes", async () => {
    const { leader, followers, term } = await cluster.stable();
    const last = cluster.server(leader).status().lastIndex;
    const before = await Promise.all(cluster.members.map((id) => cluster.drops(id)));
    const [nowhere] = (await freeLoopbackPorts(1)) as [number];
    const strangers: HostilePeer[] = [];
    try {
      for (const stranger of [7, 99]) {
        const ack: Message = { type: 'AppendEntriesReply', from: stranger, to: leader, term, success: true, prevLogIndex: 0, matchIndex: last, conflictTerm: 0, conflictIndex: 0, lastLogIndex: last, readContext: MAX_SAFE };
        // Saying who it is, and where to answer it (where nothing listens): the transport accepts
        // it as a non-member; Raft drops a reply from a node no configuration names.
        const peer = await HostilePeer.connect({
          port: cluster.raftPort(leader),
          hello: { clusterId: CLUSTER_ID, from: stranger, to: leader, address: { host: '127.0.0.1', port: nowhere } },
        });
        strangers.push(peer);
        peer.send(ack);
        await peer.flushed();
        // Pretending to be a member in the hello, then naming itself in the messages: dropped as
        // misaddressed by the transport. A stranger asking for votes in a newer term would depose the
        // leader if it were listened to.
        await forge(cluster, leader, followers[0]!, [ack, { type: 'InstallSnapshotReply', from: stranger, to: leader, term, lastIncludedIndex: last, nextOffset: 0, installed: true }]);
        for (const f of followers) {
          await forge(cluster, f, leader, [{ type: 'RequestVote', from: stranger, to: f, term: term + 1, lastLogIndex: MAX_SAFE, lastLogTerm: term + 1 }]);
        }
      }
      await cluster.expectDrops(leader, 'unknown-sender', before[leader]!, 2, "strangers' acknowledgements");
      await sleep(200);
      for (const id of cluster.members) {
        assert.deepEqual(dropsDelta(await cluster.drops(id), before[id]!), id === leader ? { 'unknown-sender': 2 } : {}, `node ${id}: a stranger's message reached Raft's state`);
      }
      for (const peer of strangers) assert.equal(peer.closed, false, 'a non-member connection within the budget stays open');

      // A flood of non-member hellos with distinct ids, several times the budget (8), at the leader
      // and a follower: the oldest non-member connections are closed, the members' never are.
      const ackedBefore = writer.acked.size;
      const flood: HostilePeer[] = [];
      for (const target of [leader, followers[0]]) {
        for (let i = 0; i < 24; i++) {
          const peer = await HostilePeer.connect({ port: cluster.raftPort(target), hello: { clusterId: CLUSTER_ID, from: 1_000 + i, to: target, version: i % 2 === 0 ? 1 : 2 } });
          flood.push(peer);
          strangers.push(peer);
        }
      }
      for (const peer of strangers.slice(0, 2)) assert.ok(await peer.waitClosed(3_000), 'the oldest non-member connections were closed');
      await waitFor('the budget to hold', 3_000, () => flood.filter((p) => !p.closed).length <= 16);
      await waitFor('writes during the flood', 10_000, () => writer.acked.size >= ackedBefore + 20);
    } finally {
      await Promise.all(strangers.map((p) => p.close()));
    }
    const now = await cluster.stable();
    assert.deepEqual([now.leader, now.term], [leader, term], `a stranger moved the term or the leadership\n${cluster.describe()}`);
    await assertClusterHealthy(cluster, writer, 'strangers');
  });

  it('an AppendEntries that would replace a committed entry is dropped; the follower keeps the committed entries', async () => {
    const victim = (await cluster.stable()).followers[0];
    await attackUntilCounted(cluster, victim, 'conflicts-with-committed', 2, 'replacing committed entries', async () => {
      const { leader, term } = await cluster.stable();
      assert.notEqual(leader, victim, 'the victim became the leader');
      const commit = cluster.server(victim).status().commitIndex;
      assert.ok(commit >= 2, 'the victim has committed entries');
      // In the real leader's name and term, so it passes every check but the one under test:
      // entries 1 and 2 are committed (with a term >= 1); these claim term 0 for them.
      const forged = new TextEncoder().encode('forged');
      await forge(cluster, victim, leader, [
        { type: 'AppendEntries', from: leader, to: victim, term, prevLogIndex: 0, prevLogTerm: 0, entries: [{ index: 1, term: 0, command: forged }], leaderCommit: commit, readContext: 0 },
        { type: 'AppendEntries', from: leader, to: victim, term, prevLogIndex: 0, prevLogTerm: 0, entries: [{ index: 1, term: 0, command: forged }, { index: 2, term: 0, command: forged }], leaderCommit: commit, readContext: 0 },
      ]);
    });
    // The oldest acknowledged writes (the committed entries the forgery aimed at) are still on the
    // victim itself (stale reads there), not only on the leader.
    await caughtUp(cluster, victim);
    const local = new KvClient({ endpoints: [cluster.url(victim)], timeoutMs: 5_000 });
    for (const [key, value] of [...writer.acked].slice(0, 50)) assert.equal(await local.get(key, { stale: true }), value, `node ${victim} lost ${key}`);
    await assertClusterHealthy(cluster, writer, 'replacing committed entries');
  });

  it('forged acknowledgements beyond the log (huge matchIndex) commit nothing: with both followers down no write is acknowledged, and every write acknowledged during the barrage survives the loss of the leader', async () => {
    /** Acks no follower can have sent: beyond the leader's log, or below the request they answer. readContext 0 keeps read rounds out of it. */
    const forgedAcks = (from: NodeId, to: NodeId, term: number, last: number): Message[] => [
      { type: 'AppendEntriesReply', from, to, term, success: true, prevLogIndex: last, matchIndex: last + 1_000, conflictTerm: 0, conflictIndex: 0, lastLogIndex: last + 1_000, readContext: 0 },
      { type: 'AppendEntriesReply', from, to, term, success: true, prevLogIndex: 0, matchIndex: MAX_SAFE, conflictTerm: 0, conflictIndex: 0, lastLogIndex: MAX_SAFE, readContext: 0 },
      { type: 'AppendEntriesReply', from, to, term, success: true, prevLogIndex: last, matchIndex: last - 1, conflictTerm: 0, conflictIndex: 0, lastLogIndex: last, readContext: 0 },
      { type: 'InstallSnapshotReply', from, to, term, lastIncludedIndex: last + 1_000, nextOffset: 0, installed: true },
    ];
    const { leader, followers, term } = await cluster.stable();
    const leaderServer = cluster.server(leader);

    // Phase 1: no follower can hold anything new. A write proposed now may only be acknowledged by
    // counting forged acks; it must time out instead, and the commit index must not move.
    await writer.pause();
    const before = await cluster.drops(leader);
    try {
      for (const f of followers) await cluster.stopServer(f);
      const commitBefore = leaderServer.status().commitIndex;
      const lastBefore = leaderServer.status().lastIndex;
      const probe = fetch(`${cluster.url(leader)}/v1/kv/forged-ack-probe`, { method: 'PUT', body: 'must-not-be-acknowledged', redirect: 'manual', signal: AbortSignal.timeout(10_000) });
      await waitFor('the probe write to be appended', 5_000, () => leaderServer.status().lastIndex > lastBefore);
      const last = leaderServer.status().lastIndex;
      for (const f of followers) await forge(cluster, leader, f, forgedAcks(f, leader, term, last));
      await cluster.expectDrops(leader, 'impossible-ack', before, 8, 'forged acks, followers down');
      const answer = await probe;
      await answer.body?.cancel();
      assert.notEqual(answer.status, 200, 'a write was acknowledged while no follower was up');
      assert.equal(leaderServer.status().commitIndex, commitBefore, `the leader committed on forged acks\n${cluster.describe()}`);
    } finally {
      for (const f of followers) if (cluster.servers[f] === null) await cluster.startServer(f);
      writer.resume();
    }

    // Phase 2: forged acks interleaved with real writes for a second, then the leader goes away.
    // The acknowledged writes must all be on the followers: the new leader serves every one.
    // (The restarted followers may well have elected another leader meanwhile.)
    const now = await cluster.stable();
    const ackedBefore = writer.acked.size;
    const barrageBefore = await cluster.drops(now.leader);
    const peers = await Promise.all(now.followers.map((f) => HostilePeer.connect({ port: cluster.raftPort(now.leader), hello: { clusterId: CLUSTER_ID, from: f, to: now.leader } })));
    for (let round = 0; round < 20; round++) {
      const last = cluster.server(now.leader).status().lastIndex;
      now.followers.forEach((f, i) => forgedAcks(f, now.leader, now.term, last).forEach((m) => peers[i]!.send(m)));
      await sleep(50);
    }
    await Promise.all(peers.map((p) => p.close()));
    await cluster.expectDrops(now.leader, 'impossible-ack', barrageBefore, 100, 'forged acks during writes');
    assert.ok(writer.acked.size > ackedBefore, 'writes were acknowledged during the barrage');
    await cluster.stopServer(now.leader);
    try {
      await waitFor('a new leader among the followers', 10_000, () => now.followers.some((f) => cluster.servers[f]?.status().role === 'leader'), () => cluster.describe());
      await assertAckedReadable(cluster, writer, 'forged acks, then the leader stopped');
    } finally {
      await cluster.startServer(now.leader);
    }
    await caughtUp(cluster, now.leader);
    await assertClusterHealthy(cluster, writer, 'forged acks');
  });

  it("garbage InstallSnapshot in the leader's name (random bytes with a correct CRC32C, a wrong checksum, a total above snapshotBytesMax, a self-contradicting chunk) is dropped before anything is persisted; the follower keeps serving and restarts", async () => {
    const prng = new Prng(FUZZ_SEED + 1);
    const victim = (await cluster.stable()).followers[0];
    /** Sends `build`'s chunks to the victim in the current leader's name and term until it counts one `reason`. */
    const snapshotAttack = (reason: DropReason, build: (s: { leader: NodeId; term: number; index: number }) => Message[]): Promise<void> =>
      attackUntilCounted(cluster, victim, reason, 1, reason, async () => {
        const { leader, term } = await cluster.stable();
        assert.notEqual(leader, victim, 'the victim became the leader');
        // Beyond the victim's commit index, so the chunk is not waved through as already covered.
        const index = cluster.server(victim).status().commitIndex + 1_000;
        await forge(cluster, victim, leader, build({ leader, term, index }));
      });

    const whole = seededBytes(prng, 2_000);
    whole[0] = 0; // not even a KV snapshot version

    // Random bytes whose checksum holds: only the state machine can tell they are no snapshot.
    // Relies on KvReplica giving RaftNode a StateMachine.validateSnapshot (src/kv/replica.ts);
    // without it the victim persists the bytes, stops when restore() throws, and cannot restart.
    try {
      await snapshotAttack('invalid-snapshot', ({ leader, term, index }) => [
        { type: 'InstallSnapshot', from: leader, to: victim, term, lastIncludedIndex: index, lastIncludedTerm: term, snapshotBytes: whole.length, checksum: crc32c(whole), offset: 0, data: whole, done: true, membership: MEMBERSHIP },
      ]);
    } catch (error) {
      if (!cluster.server(victim).status().stopped) throw error;
      const describe = cluster.describe();
      const restart = await cluster.restart(victim).then(() => 'it restarts', (e: unknown) => `its restart fails: ${String(e).split('\n')[0]}`);
      // Heal for the tests after this one: the victim starts again from an empty directory (a test
      // shortcut; it forgets its vote) and catches up from the leader.
      if (cluster.servers[victim] === null) {
        rmSync(join(cluster.root, `node-${victim}`), { recursive: true, force: true });
        await cluster.startServer(victim);
      }
      assert.fail(`node ${victim} persisted random bytes with a correct checksum as a snapshot and stopped; ${restart}\n${describe}`);
    }
    await snapshotAttack('snapshot-checksum-mismatch', ({ leader, term, index }) => {
      const chunk = { type: 'InstallSnapshot', from: leader, to: victim, term, lastIncludedIndex: index, lastIncludedTerm: term, snapshotBytes: whole.length, checksum: (crc32c(whole) ^ 0x5a5a5a5a) >>> 0, membership: MEMBERSHIP } as const;
      return [
        { ...chunk, offset: 0, data: whole.subarray(0, 1_000), done: false },
        { ...chunk, offset: 1_000, data: whole.subarray(1_000), done: true },
      ];
    });
    await snapshotAttack('snapshot-too-large', ({ leader, term, index }) => [
      { type: 'InstallSnapshot', from: leader, to: victim, term, lastIncludedIndex: index, lastIncludedTerm: term, snapshotBytes: DEFAULT_SNAPSHOT_BYTES_MAX + 1, checksum: 0, offset: 0, data: whole.subarray(0, 1_000), done: false, membership: MEMBERSHIP },
    ]);
    await snapshotAttack('malformed', ({ leader, term, index }) => [
      // "done", yet 1,000 of 2,000 announced bytes; and a snapshot of index 0.
      { type: 'InstallSnapshot', from: leader, to: victim, term, lastIncludedIndex: index, lastIncludedTerm: term, snapshotBytes: 2_000, checksum: crc32c(whole), offset: 0, data: whole.subarray(0, 1_000), done: true, membership: MEMBERSHIP },
      { type: 'InstallSnapshot', from: leader, to: victim, term, lastIncludedIndex: 0, lastIncludedTerm: 0, snapshotBytes: 0, checksum: 0, offset: 0, data: new Uint8Array(0), done: true, membership: MEMBERSHIP },
    ]);
    const s = cluster.server(victim).status();
    assert.equal(s.stopped, false);
    assert.equal(s.snapshotIndex, 0, 'no forged snapshot was installed');
    await assertClusterHealthy(cluster, writer, 'garbage snapshots');
    await cluster.restart(victim);
    await caughtUp(cluster, victim);
    await assertClusterHealthy(cluster, writer, 'garbage snapshots, then a restart');
  });

  it('transport garbage (random bytes, a huge length then silence, unknown message tags) closes that connection only; nothing reaches Raft and the node keeps serving', async () => {
    const { leader, followers } = await cluster.stable();
    const prng = new Prng(FUZZ_SEED + 2);
    const header = (length: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(length >>> 0, 0);
      return b;
    };
    const before = await Promise.all(cluster.members.map((id) => cluster.drops(id)));
    const ackedBefore = writer.acked.size;
    const stalled: HostilePeer[] = [];
    for (const target of [leader, followers[0]]) {
      const port = cluster.raftPort(target);
      const closedBefore = await cluster.malformedConnections(target);
      const hello = { clusterId: CLUSTER_ID, from: target === leader ? followers[0] : leader, to: target };
      const cases: [string, Uint8Array[], boolean][] = [
        ['random bytes instead of a hello', [seededBytes(prng, 4_096)], false],
        ['a 4 GiB length before the hello', [header(0xffffffff), seededBytes(prng, 16)], false],
        ['a frame with random bytes instead of a hello', [header(64), seededBytes(prng, 64)], false],
        ['a 4 GiB length after the hello', [header(0xffffffff)], true],
        ['unknown message tag 10', [header(4), Uint8Array.of(10, hello.from, target, 1)], true],
        ['message tag 0', [header(4), Uint8Array.of(0, hello.from, target, 1)], true],
        ['message tag 255', [header(4), Uint8Array.of(255, hello.from, target, 1)], true],
        ['random bytes after the hello', [seededBytes(prng, 4_096)], true],
      ];
      for (const [what, chunks, withHello] of cases) {
        const peer = await HostilePeer.connect({ port, ...(withHello ? { hello } : {}) });
        for (const chunk of chunks) peer.sendRaw(chunk);
        assert.ok(await peer.waitClosed(3_000), `node ${target} left the connection open after ${what}`);
      }
      assert.equal(await cluster.malformedConnections(target) - closedBefore, cases.length, `node ${target}: every closed connection counted on /metrics`);
      // A frame announcing 8 MiB (the limit, so it is legal) and then silence: the node must wait
      // for it without blocking anything else (it is closed after frameStallMs, 10 s, not waited for here).
      const silent = await HostilePeer.connect({ port, hello });
      silent.sendRaw(header(8 * 1024 * 1024));
      silent.sendRaw(seededBytes(prng, 100));
      stalled.push(silent);
    }
    await waitFor('writes while a huge frame is pending', 10_000, () => writer.acked.size >= ackedBefore + 20);
    for (const peer of stalled) assert.equal(peer.closed, false, 'a slow frame within the limit is waited for');
    await Promise.all(stalled.map((p) => p.close()));
    // Nothing of it was a message: the Raft drop counters did not move.
    for (const id of cluster.members) assert.deepEqual(dropsDelta(await cluster.drops(id), before[id]!), {}, `node ${id}: transport garbage reached Raft`);
    await assertClusterHealthy(cluster, writer, 'transport garbage');
  });

  // About 1200 frames: a valid message of a random type for a random node, with one to three field
  // mutations (and, one time in four, byte damage on top), sent in 60 batches among the writes.
  // The seed fixes every random choice; values are taken relative to the live cluster's term and
  // indices, so a replay makes the same choices against whatever state the cluster is in then.
  it(`seeded mutations of valid messages of every type (seed ${FUZZ_SEED}; TSRAFT_HOSTILE_SEED replays one) are dropped and counted by reason`, async () => {
    try {
      await fuzz();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (message.includes(`seed ${FUZZ_SEED}`)) throw error;
      throw new Error(`seed ${FUZZ_SEED} (replay: TSRAFT_HOSTILE_SEED=${FUZZ_SEED}): ${message}`, { cause: error });
    }
  });

  async function fuzz(): Promise<void> {
    const prng = new Prng(FUZZ_SEED);
    const members = new Set(cluster.members);
    const expected = cluster.members.map(() => Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Drops);
    const before = await Promise.all(cluster.members.map((id) => cluster.drops(id)));
    const pool = new Map<string, HostilePeer>();
    const connection = async (target: NodeId, from: NodeId): Promise<HostilePeer> => {
      const key = `${target}:${from}`;
      let peer = pool.get(key);
      if (peer === undefined || peer.closed) {
        peer = await HostilePeer.connect({ port: cluster.raftPort(target), hello: { clusterId: CLUSTER_ID, from, to: target } });
        pool.set(key, peer);
      }
      return peer;
    };
    let sent = 0;
    let undecodable = 0;
    let skipped = 0;
    const deadline = Date.now() + 15_000;
    try {
      for (let batch = 0; batch < 60 && Date.now() < deadline; batch++) {
        for (let i = 0; i < 20; i++) {
          const target = prng.pick(cluster.members);
          const s = cluster.server(target).status();
          const view: ClusterView = { target, members: cluster.members, term: s.term, lastIndex: s.lastIndex, commitIndex: s.commitIndex };
          const valid = validMessage(prng, prng.pick(MESSAGE_TYPES), view);
          let message = mutateMessage(prng, valid, view);
          let payload = encodeMessage(message);
          if (prng.chance(1, 4)) {
            // Byte-level damage: what a broken peer or a corrupted stream sends.
            payload = mutateBytes(prng, payload);
            try {
              message = decodeMessage(payload);
            } catch (error) {
              assert.ok(error instanceof CodecError);
              const peer = await HostilePeer.connect({ port: cluster.raftPort(target), hello: { clusterId: CLUSTER_ID, from: valid.from, to: target } });
              peer.sendFrame(payload);
              assert.ok(await peer.waitClosed(3_000), `seed ${FUZZ_SEED}: node ${target} kept a connection open after an undecodable frame`);
              undecodable++;
              continue;
            }
          }
          if (message.to !== target || message.from === target) {
            // The transport drops a misaddressed message, and refuses a hello from the node itself,
            // before Raft sees anything (tcp.test.ts). A stranger's message (ids 3, 7, 99, 2^31,
            // 2^53 - 1) goes on a connection that says hello as that stranger: the transport
            // accepts it as a non-member (the pool holds at most 5 per node, within the budget of
            // 8), and Raft drops any reply from it.
            skipped++;
            continue;
          }
          const reason = checkPeerMessage(message, target, members);
          // Without peer authentication a well-formed message of a member in the current or a newer
          // term cannot be told from the real thing (README, "What is trusted"): sending those would
          // test Raft against a forger, not the hardening. Stale ones are harmless and still sent.
          if (reason === null && message.term >= s.term && message.type !== 'PreVote') {
            skipped++;
            continue;
          }
          if (reason !== null) expected[target]![reason]++;
          (await connection(target, message.from)).sendFrame(payload);
          sent++;
        }
        await sleep(20);
      }
      await Promise.all([...pool.values()].map((p) => p.flushed()));
    } finally {
      await Promise.all([...pool.values()].map((p) => p.close()));
    }
    const context = `seed ${FUZZ_SEED} (replay: TSRAFT_HOSTILE_SEED=${FUZZ_SEED}): ${sent} frames sent, ${undecodable} undecodable, ${skipped} skipped`;
    assert.ok(sent >= 200, `${context}: too few frames`);
    // Reasons a message earns from its content alone: each impossible frame counted once, by the
    // node it was sent to, under the reason checkPeerMessage gives it (real peers earn none of these).
    for (const id of cluster.members) {
      for (const reason of ['unknown-sender', 'term-out-of-range', 'malformed'] as const) {
        if (expected[id]![reason] > 0) await cluster.expectDrops(id, reason, before[id]!, expected[id]![reason], `${context}; node ${id}`);
      }
      await sleep(50);
      const delta = dropsDelta(await cluster.drops(id), before[id]!);
      for (const reason of ['unknown-sender', 'term-out-of-range', 'malformed'] as const) {
        assert.equal(delta[reason] ?? 0, expected[id]![reason], `${context}; node ${id} counted ${JSON.stringify(delta)}`);
      }
    }
    const total = expected.reduce((sum, e) => sum + e['unknown-sender'] + e['term-out-of-range'] + e['malformed'], 0);
    assert.ok(total >= 100, `${context}: only ${total} frames were impossible`);
    process.stderr.write(`hostile fuzz: ${context}; drops by node: ${JSON.stringify(expected.map((e) => ({ 'unknown-sender': e['unknown-sender'], 'term-out-of-range': e['term-out-of-range'], malformed: e.malformed })))}\n`);
    await assertClusterHealthy(cluster, writer, context);
  }
});

/**
 * Forged answers that reached the leader's read and replication state before the fix: found by
 * this suite, fixed in the core (raft.ts checks every AppendEntriesReply with
 * Replicator.isPossibleReply and refuses an echo of a read round the leader has not reached), and
 * kept as regressions. A cluster of their own, since a failure can leave a node stuck for good.
 */
describe('hostile peers: forged answers to the leader (regressions)', { timeout: 120_000 }, () => {
  let cluster: Cluster;
  let writer: Writer;

  before(async () => {
    cluster = await Cluster.start(CLUSTER);
    await cluster.stable();
    writer = new Writer(cluster, 'b');
    writer.start();
    await waitFor('the first acknowledged writes', 10_000, () => writer.acked.size >= 20);
  });

  after(async () => {
    await writer?.stop();
    await cluster?.stop();
  });

  it('a forged echo of a read round the leader never started does not confirm linearizable reads', async () => {
    const { leader, followers, term } = await cluster.stable();
    await writer.pause();
    const read = async (): Promise<number> => {
      const answer = await fetch(`${cluster.url(leader)}/v1/kv/b-0`, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
      await answer.body?.cancel();
      return answer.status;
    };
    try {
      for (const f of followers) await cluster.stopServer(f);
      // Control: with both followers down, ReadIndex cannot hear from a majority.
      assert.notEqual(await read(), 200, 'a linearizable read was served with no follower up (before any forgery)');
      // One rejection, in a member's name, echoing a round far beyond any the leader started: it
      // cannot be true, yet echo() records it, and that member then "confirms" every later round.
      await forge(cluster, leader, followers[0], [
        { type: 'AppendEntriesReply', from: followers[0], to: leader, term, success: false, prevLogIndex: 0, matchIndex: 0, conflictTerm: 0, conflictIndex: 0, lastLogIndex: 0, readContext: MAX_SAFE },
      ]);
      await sleep(100);
      assert.notEqual(await read(), 200, 'a linearizable read was confirmed by a forged echo while no follower was up');
    } finally {
      for (const f of followers) if (cluster.servers[f] === null) await cluster.startServer(f);
      writer.resume();
    }
    await assertClusterHealthy(cluster, writer, 'forged read echo');
  });

  it('a forged rejection naming an index beyond the leader\'s log does not cut a follower off ', async () => {
    const { leader, followers, term } = await cluster.stable();
    const before = await Promise.all(cluster.members.map((id) => cluster.drops(id)));
    // Rejections of requests the leader never sent (its log ends far below 2^50). Taken at face
    // value they set next = 2^50; the leader holds no entry at 2^50 - 1, falls back to a snapshot it
    // does not have (index 0, empty), and the follower drops that as malformed, before it resets
    // its election timer: it goes precandidate, its pre-votes are refused (the other follower hears
    // the leader), and nothing ever brings it back while this leader leads.
    for (const f of followers) {
      await forge(cluster, leader, f, [
        { type: 'AppendEntriesReply', from: f, to: leader, term, success: false, prevLogIndex: 2 ** 50, matchIndex: 0, conflictTerm: 0, conflictIndex: 0, lastLogIndex: 2 ** 50, readContext: 0 },
      ]);
    }
    try {
      await sleep(500);
      const target = cluster.server(leader).status().commitIndex;
      for (const f of followers) {
        try {
          await waitFor(`node ${f} to apply ${target}`, 3_000, () => cluster.server(f).status().appliedIndex >= target);
        } catch {
          const after = await Promise.all(cluster.members.map((id) => cluster.drops(id)));
          assert.fail(
            `node ${f} no longer receives its leader's entries after one forged rejection (${target} committed, it applied ${cluster.server(f).status().appliedIndex})\n` +
              `${cluster.describe()}\ndrops since: ${JSON.stringify(cluster.members.map((id) => dropsDelta(after[id]!, before[id]!)))}`,
          );
        }
      }
      const now = cluster.server(leader).status();
      assert.deepEqual([now.role, now.term], ['leader', term], `two forged frames deposed the leader\n${cluster.describe()}`);
      for (const p of now.peers) assert.ok(p.next <= now.lastIndex + 1, `the leader's next index for node ${p.id} is ${p.next}, beyond its log (${now.lastIndex})\n${cluster.describe()}`);
    } finally {
      // Heal for the next test: a new leader (a new term) starts every follower's progress afresh.
      if (!(await cluster.stable(3_000).then(() => true, () => false))) {
        await cluster.restart(leader);
        await cluster.stable();
      }
    }
    await assertClusterHealthy(cluster, writer, 'forged rejections beyond the log');
  });
});
