/**
 * Peer messages are input: the core drops and counts what cannot be true and never throws on it.
 * Each test names one impossible message (a forged or buggy peer, a stray client on the peer port);
 * the last one feeds random, well-formed but arbitrary messages from a seeded PRNG to cores in
 * every role and checks that nothing throws and the cores' own invariants hold.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32c } from '../../src/core/crc32c.js';
import { DEFAULT_TIMING, type RaftConfig } from '../../src/core/config.js';
import type { Membership } from '../../src/core/membership.js';
import type { Entry, Message, NodeId, SnapshotBody } from '../../src/core/messages.js';
import { RaftCore } from '../../src/core/raft.js';
import { TERM_MAX } from '../../src/core/validate.js';
import { Prng } from '../../src/sim/prng.js';
import { ae, aer, bytes, DrivenCore, ET_MAX, FIXED, range, rv } from './core-fixtures.js';

/** The configuration of the default 3-node cluster, carried by snapshot chunks. */
const MEMBERSHIP: Membership = { voters: [0, 1, 2], outgoing: [], learners: [], addresses: [] };

function config(id: NodeId, n = 3): RaftConfig {
  return { id, peers: range(n), ...DEFAULT_TIMING, random: FIXED, preVote: false };
}

/** A 3-node cluster's leader (node 0) in term 1 that has committed `count` entries. */
function leaderWithEntries(count: number): DrivenCore {
  const node = new DrivenCore({ config: config(0) });
  for (let i = 0; i < ET_MAX && !node.core.isLeader; i++) {
    node.tick(1);
    if (node.core.status().role === 'candidate') node.step({ type: 'RequestVoteReply', from: 1, to: 0, term: node.core.term, voteGranted: true });
  }
  assert.equal(node.core.isLeader, true);
  for (let i = 1; i <= count; i++) node.propose(bytes(`c${i}`));
  node.step(aer(1, 0, node.core.term, true, 0, count));
  return node;
}

/** One chunk of `whole` (index 5, term 1) as a leader sends it: with the transfer's length and checksum. */
function snapshotChunk(from: NodeId, term: number, whole: Uint8Array, offset: number, length: number, index = 5): Message {
  const end = Math.min(offset + length, whole.length);
  return {
    type: 'InstallSnapshot', from, to: 1, term, lastIncludedIndex: index, lastIncludedTerm: 1,
    snapshotBytes: whole.length, checksum: crc32c(whole), offset, data: whole.slice(offset, end), done: end === whole.length,
    membership: MEMBERSHIP,
  };
}

function lastSnapshotReply(node: DrivenCore): { nextOffset: number; installed: boolean } {
  const replies = node.sent.filter((m) => m.type === 'InstallSnapshotReply');
  const last = replies[replies.length - 1];
  assert.ok(last !== undefined && last.type === 'InstallSnapshotReply');
  return { nextOffset: last.nextOffset, installed: last.installed };
}

const pattern = (length: number, seed: number): Uint8Array => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);

describe('snapshot transfers have an identity and are checked before they are persisted (hardening)', () => {
  test('a chunk of another leader\'s snapshot with the same (index, term) never joins the transfer in progress', () => {
    const follower = new DrivenCore({ config: config(1) });
    const a = pattern(3000, 1);
    const b = pattern(3000, 2); // same index and term, other bytes: a second leader's snapshot
    follower.step(snapshotChunk(0, 1, a, 0, 1000));
    assert.equal(lastSnapshotReply(follower).nextOffset, 1000);
    // Leader 2 of term 2 continues "the same" snapshot at offset 1000 with its own bytes.
    follower.step(snapshotChunk(2, 2, b, 1000, 1000));
    assert.deepEqual(lastSnapshotReply(follower), { nextOffset: 0, installed: false }, 'spliced: b joined a');
    follower.step(snapshotChunk(2, 2, b, 0, 1000));
    follower.step(snapshotChunk(2, 2, b, 1000, 1000));
    follower.step(snapshotChunk(2, 2, b, 2000, 1000));
    assert.deepEqual(lastSnapshotReply(follower), { nextOffset: 3000, installed: true });
    assert.deepEqual(follower.disk.snapshot?.data, b, 'the installed snapshot is b, whole');
  });

  test('a transfer whose bytes do not match its checksum is dropped and counted, never persisted', () => {
    const follower = new DrivenCore({ config: config(1) });
    const whole = pattern(2000, 3);
    const first = snapshotChunk(0, 1, whole, 0, 1000);
    const last = snapshotChunk(0, 1, whole, 1000, 1000);
    assert.ok(last.type === 'InstallSnapshot');
    const damaged = last.data.slice();
    damaged[10] = damaged[10]! ^ 0x40;
    follower.step(first);
    follower.step({ ...last, data: damaged });
    assert.equal(follower.core.droppedMessages().get('snapshot-checksum-mismatch'), 1);
    assert.deepEqual(lastSnapshotReply(follower), { nextOffset: 0, installed: false });
    assert.equal(follower.disk.snapshot, null);
    assert.equal(follower.core.status().snapshotIndex, 0);
  });

  test('a transfer announcing more than snapshotBytesMax is refused before anything is buffered', () => {
    const follower = new DrivenCore({ config: { ...config(1), snapshotBytesMax: 4096 } });
    const huge: Message = {
      type: 'InstallSnapshot', from: 0, to: 1, term: 1, lastIncludedIndex: 5, lastIncludedTerm: 1,
      snapshotBytes: 8 * 1024 ** 3, checksum: 0, offset: 0, data: new Uint8Array(1000), done: false, membership: MEMBERSHIP,
    };
    follower.step(huge);
    assert.equal(follower.core.droppedMessages().get('snapshot-too-large'), 1);
    assert.deepEqual(lastSnapshotReply(follower), { nextOffset: 0, installed: false });
    const fits = pattern(4096, 4);
    for (let offset = 0; offset < fits.length; offset += 1024) follower.step(snapshotChunk(0, 1, fits, offset, 1024));
    assert.deepEqual(lastSnapshotReply(follower), { nextOffset: 4096, installed: true }, 'a snapshot of exactly the bound is taken');
  });

  test('a chunk that contradicts its own transfer (past the announced end, or done too early) is malformed', () => {
    const follower = new DrivenCore({ config: config(1) });
    const whole = pattern(1000, 5);
    const chunk = snapshotChunk(0, 1, whole, 0, 1000);
    assert.ok(chunk.type === 'InstallSnapshot');
    follower.step({ ...chunk, snapshotBytes: 999, done: true });
    follower.step({ ...chunk, snapshotBytes: 2000, done: true });
    follower.step({ ...chunk, data: new Uint8Array(0), snapshotBytes: 1000, done: false });
    assert.equal(follower.core.droppedMessages().get('malformed'), 3);
    assert.equal(follower.disk.snapshot, null);
  });

  test('a snapshot the application cannot restore is dropped before it is persisted (validateSnapshot)', () => {
    const seen: number[] = [];
    const validateSnapshot = ({ data }: { data: SnapshotBody }): string | null => {
      seen.push(data.byteLength);
      return data.subarray(0, 1)[0] === 0x7b ? null : 'not a JSON object';
    };
    const follower = new DrivenCore({ config: { ...config(1), validateSnapshot } });
    const garbage = pattern(500, 6);
    follower.step(snapshotChunk(0, 1, garbage, 0, 500));
    assert.equal(follower.core.droppedMessages().get('invalid-snapshot'), 1);
    assert.deepEqual(lastSnapshotReply(follower), { nextOffset: 0, installed: false });
    assert.equal(follower.disk.snapshot, null, 'a snapshot that fails on restore must never reach the disk');
    const good = new TextEncoder().encode('{"ok":true}');
    follower.step(snapshotChunk(0, 1, good, 0, 500));
    assert.deepEqual(lastSnapshotReply(follower), { nextOffset: good.length, installed: true });
    const installed = follower.disk.snapshot as { data: Uint8Array } | null;
    assert.deepEqual(installed?.data, good);
    assert.deepEqual(seen, [500, good.length]);
  });
});

describe('impossible peer messages are dropped and counted (hardening)', () => {
  test('a term beyond TERM_MAX (e.g. 2^53 - 1) is dropped: the term does not move and no election can overflow', () => {
    const node = new DrivenCore({ config: config(1) });
    node.step(rv(2, 1, Number.MAX_SAFE_INTEGER, 0, 0));
    node.step(rv(2, 1, TERM_MAX + 1, 0, 0));
    assert.equal(node.core.term, 0);
    assert.equal(node.core.droppedMessages().get('term-out-of-range'), 2);
    node.step(rv(2, 1, TERM_MAX, 0, 0));
    assert.equal(node.core.term, TERM_MAX, 'TERM_MAX itself is a valid term');
    node.tick(2 * ET_MAX);
    assert.equal(node.core.term, TERM_MAX, 'no campaign beyond it');
  });

  test('a message from a node that is not a member, or from ourselves, is dropped', () => {
    const leader = leaderWithEntries(1);
    const before = leader.core.status().commitIndex;
    for (const from of [7, 99, 0]) leader.step(aer(from, 0, leader.core.term, true, 0, 1));
    assert.equal(leader.core.droppedMessages().get('unknown-sender'), 3);
    assert.equal(leader.core.status().commitIndex, before);
  });

  test('an acknowledgement of entries that do not exist is dropped and commits nothing', () => {
    const leader = leaderWithEntries(2);
    const commit = leader.core.status().commitIndex;
    leader.propose(bytes('c3'));
    leader.step(aer(2, 0, leader.core.term, true, 0, 1_000_000));
    assert.equal(leader.core.droppedMessages().get('impossible-ack'), 1);
    assert.equal(leader.core.status().commitIndex, commit, 'the forged match did not commit c3');
  });

  test('an echo of a read round the leader has not reached is dropped and confirms no read', () => {
    const leader = leaderWithEntries(1);
    leader.input((core) => core.requestRead(42));
    assert.equal(leader.readStates.length, 0, 'no follower confirmed the read yet');
    // One forged rejection "from follower 1" echoing a round far ahead (found over TCP by the
    // hostile-peer suite: it confirmed every later read of the term).
    leader.step({ ...aer(1, 0, leader.core.term, false, 0, 0, 0), readContext: Number.MAX_SAFE_INTEGER });
    leader.step({ ...aer(2, 0, leader.core.term, true, 0, 1), readContext: 1_000 });
    assert.equal(leader.core.droppedMessages().get('impossible-ack'), 2);
    assert.equal(leader.readStates.length, 0, 'a forged echo confirmed a read');
    leader.step({ ...aer(1, 0, leader.core.term, true, 0, 1), readContext: leader.core.status().readRound });
    assert.deepEqual(leader.readStates.map((r) => r.id), [42], 'a true echo still confirms it');
  });

  test('a rejection naming a request beyond the leader\'s log is dropped: the follower\'s next index stays in the log', () => {
    const leader = leaderWithEntries(2);
    const before = leader.sent.length;
    const far = 2 ** 50;
    leader.step({ ...aer(1, 0, leader.core.term, false, far, 0, far), conflictTerm: 0 });
    assert.equal(leader.core.droppedMessages().get('impossible-ack'), 1);
    leader.tick(3 * 20);
    const snapshots = leader.sent.slice(before).filter((m) => m.type === 'InstallSnapshot');
    assert.deepEqual(snapshots, [], 'the leader sent a snapshot it does not have');
    const progress = leader.core.status(true).progress?.get(1);
    assert.ok(progress !== undefined && progress.next <= leader.core.status().lastIndex + 1, `next ${progress?.next}`);
  });

  test('an AppendEntries that would replace a committed entry is dropped; the committed entry stays', () => {
    const follower = new DrivenCore({ config: config(1) });
    follower.step(ae(0, 1, 1, 0, 0, [{ index: 1, term: 1, command: bytes('committed') }], 1));
    assert.equal(follower.core.status().commitIndex, 1);
    follower.step(ae(0, 1, 1, 0, 0, [{ index: 1, term: 1, command: bytes('committed') }], 1));
    // Same leader, same term, another entry at index 1 of a later term than the follower holds.
    const forged: Message = { ...ae(0, 1, 2, 0, 0, [{ index: 1, term: 2, command: bytes('evil') }], 1) };
    follower.step(forged);
    assert.equal(follower.core.droppedMessages().get('conflicts-with-committed'), 1);
    assert.deepEqual(follower.core.entryAt(1)?.command, bytes('committed'));
  });

  test('a second leader in a term this node already follows is dropped', () => {
    const follower = new DrivenCore({ config: config(1) });
    follower.step(ae(0, 1, 1, 0, 0, [], 0));
    follower.step(ae(2, 1, 1, 0, 0, [], 0));
    assert.equal(follower.core.droppedMessages().get('second-leader'), 1);
    assert.equal(follower.core.status().leaderId, 0);
  });

  test("a malformed batch (gaps, decreasing terms, terms after the sender's) is dropped", () => {
    const follower = new DrivenCore({ config: config(1) });
    const e = (index: number, term: number): Entry => ({ index, term, command: bytes(`${index}`) });
    follower.step(ae(0, 1, 2, 0, 0, [e(1, 1), e(3, 1)], 0));
    follower.step(ae(0, 1, 2, 0, 0, [e(1, 2), e(2, 1)], 0));
    follower.step(ae(0, 1, 2, 0, 0, [e(1, 3)], 0));
    assert.equal(follower.core.droppedMessages().get('malformed'), 3);
    assert.equal(follower.core.status().lastIndex, 0);
  });

  test('an unfinished snapshot transfer whose sender went silent is released after two election timeouts', () => {
    const follower = new DrivenCore({ config: config(1) });
    const chunk = (offset: number): Message => ({
      type: 'InstallSnapshot', from: 0, to: 1, term: 1, lastIncludedIndex: 5, lastIncludedTerm: 1, snapshotBytes: 10_000, checksum: 0, offset, data: new Uint8Array(1000), done: false, membership: MEMBERSHIP,
    });
    const lastReply = (): number => {
      const replies = follower.sent.filter((m) => m.type === 'InstallSnapshotReply');
      const last = replies[replies.length - 1];
      assert.ok(last !== undefined && last.type === 'InstallSnapshotReply');
      return last.nextOffset;
    };
    // The leader's heartbeats keep the follower following while no chunk comes.
    const idle = (ticks: number): void => {
      for (let done = 0; done < ticks; done += 40) {
        follower.tick(Math.min(40, ticks - done));
        follower.step(ae(0, 1, 1, 0, 0, [], 0));
      }
    };
    follower.step(chunk(0));
    follower.step(chunk(1000));
    assert.equal(lastReply(), 2000, 'the transfer holds 2000 bytes');
    idle(2 * ET_MAX - 1);
    follower.step(chunk(2000));
    assert.equal(lastReply(), 3000, 'still held just before the limit (the chunk resets the idle clock)');
    idle(2 * ET_MAX);
    follower.step(chunk(3000));
    assert.equal(lastReply(), 0, 'released: the sender is told to start again');
  });

  test('random well-formed but arbitrary messages never make a core throw (2000 seeds)', () => {
    const types = ['RequestVote', 'PreVote', 'RequestVoteReply', 'PreVoteReply', 'AppendEntries', 'AppendEntriesReply', 'InstallSnapshot', 'InstallSnapshotReply'] as const;
    for (let seed = 1; seed <= 2000; seed++) {
      const prng = new Prng(seed);
      const n = prng.pick([1, 3, 5]);
      const self = prng.nextInt(n);
      const node = new DrivenCore({ config: { ...config(self, n), random: prng.fork() } });
      const int = (max: number): number => (prng.chance(1, 20) ? prng.pick([0, TERM_MAX, TERM_MAX + 1, Number.MAX_SAFE_INTEGER]) : prng.nextInt(max));
      for (let step = 0; step < 60; step++) {
        if (prng.chance(1, 4)) {
          const ticks = 1 + prng.nextInt(ET_MAX);
          try {
            node.tick(ticks);
          } catch (error) {
            assert.fail(`seed ${seed}, step ${step}, ${ticks} ticks: ${(error as Error).message}`);
          }
          continue;
        }
        if (prng.chance(1, 8) && node.core.isLeader) {
          node.propose(bytes(`p${step}`));
          continue;
        }
        const from = prng.chance(1, 10) ? 7 : prng.nextInt(n);
        const term = int(8);
        const type = prng.pick(types);
        const prevLogIndex = int(10);
        const count = prng.nextInt(4);
        const entries: Entry[] = Array.from({ length: count }, (_, i) => ({ index: prevLogIndex + 1 + i, term: Math.min(term, 1 + prng.nextInt(8)), command: bytes(`x${i}`) }));
        const base = { from, to: self, term };
        const message: Message =
          type === 'RequestVote' || type === 'PreVote'
            ? { type, ...base, lastLogIndex: int(10), lastLogTerm: int(8) }
            : type === 'RequestVoteReply' || type === 'PreVoteReply'
              ? { type, ...base, voteGranted: prng.chance(1, 2) }
              : type === 'AppendEntries'
                ? { type, ...base, prevLogIndex, prevLogTerm: int(8), entries, leaderCommit: int(12), readContext: int(5) }
                : type === 'AppendEntriesReply'
                  ? { type, ...base, success: prng.chance(1, 2), prevLogIndex, matchIndex: int(12), conflictTerm: int(8), conflictIndex: int(10), lastLogIndex: int(10), readContext: int(5) }
                  : type === 'InstallSnapshot'
                    ? { type, ...base, lastIncludedIndex: 1 + prng.nextInt(10), lastIncludedTerm: int(8), snapshotBytes: int(30), checksum: prng.chance(1, 2) ? crc32c(bytes('snap')) : prng.nextInt(2 ** 32), offset: prng.chance(1, 2) ? 0 : int(20), data: bytes('snap'), done: prng.chance(1, 2), membership: { voters: range(n), outgoing: [], learners: [], addresses: [] } }
                    : { type, ...base, lastIncludedIndex: int(10), nextOffset: int(20), installed: prng.chance(1, 2) };
        try {
          if (message.from !== self) node.step(message);
        } catch (error) {
          assert.fail(`seed ${seed}, step ${step}: ${(error as Error).message} on ${JSON.stringify(message, (_, v: unknown) => (v instanceof Uint8Array ? `<${v.length} B>` : v))}`);
        }
      }
    }
    // A smoke check that the generator reaches the interesting cases at all.
    assert.ok(new RaftCore(config(0)).droppedMessages().size > 0);
  });
});
