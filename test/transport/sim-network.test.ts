import { test } from 'node:test';
import assert from 'node:assert/strict';
import { messageSize } from '../../src/codec/codec.js';
import type { Membership } from '../../src/core/membership.js';
import type { Message } from '../../src/core/messages.js';
import { SimNetwork, type SimNetworkOptions, type SimTransport } from '../../src/sim/sim-network.js';
import { Prng } from '../../src/sim/prng.js';
import { VirtualScheduler } from '../../src/sim/scheduler.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../../src/transport/tcp.js';
import type { Transport } from '../../src/transport/transport.js';

type Faults = Omit<SimNetworkOptions, 'scheduler' | 'prng'>;
interface Arrival {
  readonly at: number;
  readonly m: Message;
}

/** The configuration InstallSnapshot chunks carry (it only has to encode). */
const MEMBERSHIP: Membership = { voters: [0, 1, 2], outgoing: [], learners: [], addresses: [] };

const QUIET: Faults = { delayMsMax: 1, lossPerMille: 0, duplicatePerMille: 0, longDelayPerMille: 0 };

/** A network of `n` started endpoints; got[id] collects what node id receives, with the time. */
function setup(n: number, faults: Partial<Faults> = {}, seed = 1) {
  const s = new VirtualScheduler();
  const lines: string[] = [];
  const net = new SimNetwork({ scheduler: s, prng: new Prng(seed), ...QUIET, trace: (l) => lines.push(`${s.now()} ${l}`), ...faults });
  const got: Arrival[][] = [];
  const ends: SimTransport[] = [];
  for (let id = 0; id < n; id++) {
    got.push([]);
    ends.push(net.endpoint(id));
    void ends[id]!.start((m) => got[id]!.push({ at: s.now(), m }));
  }
  return { s, net, got, ends, lines };
}

const rv = (from: number, to: number, term: number): Message => ({ type: 'RequestVote', from, to, term, lastLogIndex: 0, lastLogTerm: 0 });
const snap = (from: number, to: number, term: number, bytes: number): Message => ({
  type: 'InstallSnapshot', from, to, term, lastIncludedIndex: 9, lastIncludedTerm: 1, snapshotBytes: 2 * bytes, checksum: 7, offset: 0, data: new Uint8Array(bytes), done: false, membership: MEMBERSHIP,
});
const terms = (arrivals: readonly Arrival[]): number[] => arrivals.map((a) => a.m.term);

/** One message of every type from 0 to 1, with byte payloads where the type has them. */
const ALL_TYPES: Message[] = [
  rv(0, 1, 3),
  { type: 'RequestVoteReply', from: 0, to: 1, term: 3, voteGranted: true },
  { type: 'PreVote', from: 0, to: 1, term: 4, lastLogIndex: 7, lastLogTerm: 2 },
  { type: 'PreVoteReply', from: 0, to: 1, term: 4, voteGranted: false },
  {
    type: 'AppendEntries', from: 0, to: 1, term: 5, prevLogIndex: 6, prevLogTerm: 2, leaderCommit: 6, readContext: 12,
    entries: [{ index: 7, term: 5, command: Uint8Array.of(1, 2, 3) }, { index: 8, term: 5, command: new Uint8Array(0) }],
  },
  {
    type: 'AppendEntriesReply', from: 0, to: 1, term: 5, success: false, prevLogIndex: 6, matchIndex: 0,
    conflictTerm: 2, conflictIndex: 4, lastLogIndex: 6, readContext: 12,
  },
  { type: 'InstallSnapshot', from: 0, to: 1, term: 6, lastIncludedIndex: 9, lastIncludedTerm: 5, snapshotBytes: 19, checksum: 0xfedcba98, offset: 16, data: Uint8Array.of(9, 8, 7), done: true, membership: MEMBERSHIP },
  { type: 'InstallSnapshotReply', from: 0, to: 1, term: 6, lastIncludedIndex: 9, nextOffset: 19, installed: true },
];

/** The generic contract every Transport meets: each message type arrives intact, as a copy. */
function checkRoundTrip(sender: Transport, received: readonly Message[], flush: () => void): void {
  for (const m of ALL_TYPES) sender.send(m);
  assert.equal(received.length, 0, 'nothing is delivered synchronously');
  flush();
  assert.deepEqual(received, ALL_TYPES);
  for (let i = 0; i < ALL_TYPES.length; i++) {
    const [sent, got] = [ALL_TYPES[i]!, received[i]!];
    assert.notEqual(got, sent, 'the receiver gets its own object');
    if (sent.type === 'AppendEntries' && got.type === 'AppendEntries') assert.notEqual(got.entries[0]!.command, sent.entries[0]!.command);
    if (sent.type === 'InstallSnapshot' && got.type === 'InstallSnapshot') assert.notEqual(got.data, sent.data);
  }
}

test('every message type arrives decoded and intact, never the sent object', () => {
  const { s, net, ends } = setup(1);
  const received: Message[] = [];
  void net.endpoint(1).start((m) => received.push(m));
  assert.equal(ends[0]!.maxMessageBytes, DEFAULT_MAX_FRAME_BYTES);
  checkRoundTrip(ends[0]!, received, () => s.runUntil(10));
  assert.deepEqual(net.stats, {
    sent: 8, delivered: 8, duplicated: 0, bytes: ALL_TYPES.reduce((sum, m) => sum + messageSize(m), 0), inFlight: 0,
    dropped: { loss: 0, linkDown: 0, noReceiver: 0, queueFull: 0, tooLarge: 0, closed: 0 },
  });
});

test('a one-way delay is 1..delayMsMax ms on an idle link', () => {
  const { s, got, ends } = setup(2, { delayMsMax: 20 });
  for (let i = 0; i < 400; i++) s.schedule(i * 50, () => ends[0]!.send(rv(0, 1, i)));
  s.runUntil(400 * 50);
  assert.equal(got[1]!.length, 400);
  const delays = got[1]!.map((a) => a.at - a.m.term * 50);
  assert.ok(delays.every((d) => d >= 1 && d < 20.001), `delays out of range: ${Math.min(...delays)}..${Math.max(...delays)}`);
  assert.equal(new Set(delays.map(Math.floor)).size, 20, 'every delay in 1..20 occurs');
});

test('loss and duplication happen at roughly the configured rates; the counters balance', () => {
  const { s, net, got, ends } = setup(2, { delayMsMax: 5, lossPerMille: 100, duplicatePerMille: 50 });
  const N = 10_000;
  for (let i = 0; i < N; i++) s.schedule(i, () => ends[0]!.send(rv(0, 1, i)));
  s.runUntil(N + 100);
  const st = net.stats;
  assert.equal(st.sent, N);
  assert.ok(st.duplicated > N * 0.04 && st.duplicated < N * 0.06, `duplicated ${st.duplicated}`);
  const copies = N + st.duplicated;
  assert.ok(st.dropped.loss > copies * 0.09 && st.dropped.loss < copies * 0.11, `lost ${st.dropped.loss}`);
  assert.equal(st.delivered, copies - st.dropped.loss);
  assert.equal(got[1]!.length, st.delivered);
  assert.equal(st.inFlight, 0);
});

test('a long-delayed message is overtaken; with chaos off nothing is held', () => {
  const { s, net, got, ends } = setup(2, { delayMsMax: 3, longDelayPerMille: 1000 });
  ends[0]!.send(rv(0, 1, 1));
  net.setChaos(false);
  ends[0]!.send(rv(0, 1, 2));
  ends[0]!.send(rv(0, 1, 3));
  s.runUntil(50);
  assert.deepEqual(terms(got[1]!), [2, 3]);
  s.runUntil(3200);
  assert.deepEqual(terms(got[1]!), [2, 3, 1]);
  const held = got[1]![2]!.at;
  assert.ok(held >= 101 && held < 3104, `held until ${held}`);
});

test('messages on one link arrive in the order sent, whatever their drawn delays', () => {
  const { s, got, ends } = setup(3, { delayMsMax: 50, duplicatePerMille: 0 });
  for (let i = 0; i < 300; i++) s.schedule(Math.floor(i / 7), () => ends[0]!.send(rv(0, 1, i)));
  for (let i = 0; i < 300; i++) s.schedule(Math.floor(i / 5), () => ends[2]!.send(rv(2, 1, i)));
  s.runUntil(200);
  const from = (id: number) => terms(got[1]!.filter((a) => (a.m.from === id)));
  assert.deepEqual(from(0), [...Array(300).keys()]);
  assert.deepEqual(from(2), [...Array(300).keys()]);
  assert.notDeepEqual(got[1]!.map((a) => a.m.from), [...Array(300).fill(0), ...Array(300).fill(2)], 'the two links interleave');
});

test('bandwidth: a big message takes size/bytesPerMs longer, and urgent messages pass queued chunks', () => {
  const { s, got, ends } = setup(2, { bytesPerMs: 100_000 });
  const big = snap(0, 1, 1, 999_978);
  assert.equal(messageSize(big), 1_000_000);
  ends[0]!.send(big); // 10 ms on the wire
  ends[0]!.send(snap(0, 1, 2, 999_978)); // waits: the wire is backed up
  ends[0]!.send(rv(0, 1, 3)); // urgent: written before the queued chunk
  s.runUntil(100);
  assert.deepEqual(terms(got[1]!), [1, 3, 2]);
  assert.equal(got[1]![0]!.at, 11);
  assert.ok(got[1]![1]!.at > 11 && got[1]![1]!.at < 11.01, `heartbeat at ${got[1]![1]!.at}`);
  assert.ok(Math.abs(got[1]![2]!.at - 21) < 0.01, `second chunk at ${got[1]![2]!.at}`);
  const small = rv(0, 1, 4);
  ends[0]!.send(small);
  s.runUntil(200);
  assert.ok(Math.abs(got[1]![3]!.at - (101 + messageSize(small) / 100_000)) < 1e-9);
});

test('a full link queue evicts the oldest InstallSnapshot first, then the oldest urgent message', () => {
  const { s, net, got, ends, lines } = setup(2, { sendQueueMax: 4 });
  ends[0]!.send(snap(0, 1, 0, 1_000_000)); // on the wire; the rest queue behind it
  ends[0]!.send(snap(0, 1, 1, 10));
  ends[0]!.send(rv(0, 1, 2));
  ends[0]!.send(snap(0, 1, 3, 10));
  ends[0]!.send(rv(0, 1, 4));
  ends[0]!.send(rv(0, 1, 5)); // evicts chunk 1
  ends[0]!.send(rv(0, 1, 6)); // evicts chunk 3
  ends[0]!.send(rv(0, 1, 7)); // no chunk left: evicts 2
  s.runUntil(100);
  assert.deepEqual(terms(got[1]!), [0, 4, 5, 6, 7]);
  assert.equal(net.stats.dropped.queueFull, 3);
  assert.equal(lines.filter((l) => l.endsWith('queueFull')).length, 3);
});

test('an oversized message is dropped and counted at send(), not thrown', () => {
  const { s, net, got, ends } = setup(2, { maxFrameBytes: 100 });
  assert.equal(ends[0]!.maxMessageBytes, 100);
  ends[0]!.send(snap(0, 1, 1, 200));
  ends[0]!.send(snap(0, 1, 2, 80));
  s.runUntil(10);
  assert.deepEqual(terms(got[1]!), [2]);
  assert.equal(net.stats.dropped.tooLarge, 1);
  assert.throws(() => ends[0]!.send(rv(1, 0, 1)), /from node 1/, 'a wrong sender is a programmer error');
});

test('partitions, one-way cuts and deafness stop messages until healed', () => {
  const { s, net, got, ends } = setup(3);
  const all = () => {
    for (const from of [0, 1, 2]) for (const to of [0, 1, 2]) if (from !== to) ends[from]!.send(rv(from, to, 10 * from + to));
    s.runUntil(s.now() + 5);
    const seen = got.map((g) => terms(g).sort((a, b) => a - b));
    for (const g of got) g.length = 0;
    return seen;
  };
  net.partition([0, 0, 1]);
  assert.equal(net.isLinkUp(0, 2), false);
  assert.deepEqual(all(), [[10], [1], []]);
  net.cut(0, 1); // the partition stays
  assert.deepEqual(all(), [[10], [], []]);
  net.healLinks();
  net.cut(0, 1);
  assert.equal(net.isLinkUp(1, 0), true);
  assert.deepEqual(all(), [[10, 20], [21], [2, 12]]);
  net.healLinks();
  net.deafen(2);
  assert.deepEqual(all(), [[10, 20], [1, 21], []]);
  net.healLinks();
  assert.deepEqual(all(), [[10, 20], [1, 21], [2, 12]]);
  assert.equal(net.stats.dropped.linkDown, 4 + 5 + 1 + 2);
});

test('a partition that arises while a message is in flight stops it at delivery', () => {
  const { s, net, got, ends } = setup(2, { delayMsMax: 1 });
  ends[0]!.send(rv(0, 1, 1));
  net.partition([0, 1]);
  s.runUntil(5);
  net.healLinks();
  ends[0]!.send(rv(0, 1, 2));
  net.deafen(1);
  net.healLinks(); // healed before delivery: it arrives
  s.runUntil(10);
  assert.deepEqual(terms(got[1]!), [2]);
  assert.equal(net.stats.dropped.linkDown, 1);
});

test('a message sent before a restart reaches the restarted node; replies reach a restarted sender', () => {
  const { s, net, got, ends } = setup(2, { delayMsMax: 1 });
  ends[0]!.send(rv(0, 1, 1)); // arrives at 1 ms, its reply at 2 ms
  assert.throws(() => net.endpoint(1), /already has an open endpoint/);
  void ends[1]!.close();
  const reborn: Message[] = [];
  const one = net.endpoint(1);
  void one.start((m) => {
    reborn.push(m);
    one.send(rv(1, 0, m.term + 1)); // reply to node 0's old incarnation...
  });
  s.runUntil(1.5);
  void ends[0]!.close(); // ...which restarts before the reply arrives
  const zero: Message[] = [];
  void net.endpoint(0).start((m) => zero.push(m));
  s.runUntil(20);
  assert.equal(got[1]!.length, 0);
  assert.deepEqual(reborn.map((m) => m.term), [1]);
  assert.deepEqual(zero.map((m) => m.term), [2]);
  assert.equal(got[0]!.length, 0);
});

test('a closed endpoint neither sends nor receives, and drops what it had queued', async () => {
  const { s, net, got, ends } = setup(3);
  ends[0]!.send(snap(0, 2, 1, 1_000_000)); // on the wire: still arrives
  ends[0]!.send(rv(0, 2, 2)); // queued behind it: lost with the endpoint
  await ends[0]!.close();
  await ends[0]!.close();
  ends[0]!.send(rv(0, 1, 3));
  await ends[1]!.close();
  ends[2]!.send(rv(2, 1, 4));
  s.runUntil(100);
  await assert.rejects(ends[1]!.start(() => {}), /closed/);
  assert.deepEqual(terms(got[2]!), [1]);
  assert.equal(got[1]!.length, 0);
  assert.deepEqual(net.stats.dropped, { loss: 0, linkDown: 0, noReceiver: 1, queueFull: 0, tooLarge: 0, closed: 2 });
  // An endpoint that is not started yet receives nothing either.
  net.endpoint(1);
  ends[2]!.send(rv(2, 1, 5));
  s.runUntil(110);
  assert.equal(net.stats.dropped.noReceiver, 2);
});

/** Random traffic from all nodes with every fault on; returns the delivery trace. */
function chaoticRun(seed: number): { deliveries: string[]; trace: string[] } {
  const faults = { delayMsMax: 30, lossPerMille: 100, duplicatePerMille: 50, longDelayPerMille: 30, bytesPerMs: 50, sendQueueMax: 16 };
  const { s, net, got, ends, lines } = setup(5, faults, seed);
  const traffic = new Prng(seed + 1000);
  for (let i = 0; i < 2000; i++) {
    s.schedule(traffic.nextInt(3000), () => {
      const from = traffic.nextInt(5);
      const to = (from + 1 + traffic.nextInt(4)) % 5;
      ends[from]!.send(traffic.chance(1, 5) ? snap(from, to, i, traffic.nextInt(2000)) : rv(from, to, i));
      if (traffic.chance(1, 200)) net.partition([0, 1, 2, 3, 4].map(() => traffic.nextInt(2)));
      if (traffic.chance(1, 300)) net.healLinks();
    });
  }
  s.runUntil(10_000);
  const deliveries: string[] = [];
  for (const [id, g] of got.entries()) for (const a of g) deliveries.push(`${a.at} ${id} ${a.m.type} ${a.m.term}`);
  return { deliveries, trace: lines };
}

test('one seed gives one delivery sequence', () => {
  const a = chaoticRun(7);
  const b = chaoticRun(7);
  assert.ok(a.deliveries.length > 1000);
  assert.deepEqual(b.deliveries, a.deliveries);
  assert.deepEqual(b.trace, a.trace);
  assert.notDeepEqual(chaoticRun(8).deliveries, a.deliveries);
});

test('nodes added at run time (ids unknown at creation, not contiguous) get endpoints and links; faults apply to them', async () => {
  const { s, net, got, ends } = setup(3);
  s.runUntil(50);
  // Membership changes add nodes 3 and 7 long after the network was made.
  const late = new Map<number, Arrival[]>([[3, []], [7, []]]);
  const lateEnds = new Map<number, SimTransport>();
  for (const [id, arrivals] of late) {
    const end = net.endpoint(id);
    lateEnds.set(id, end);
    void end.start((m) => arrivals.push({ at: s.now(), m }));
  }
  const clear = (): void => {
    for (const g of got) g.length = 0;
    for (const g of late.values()) g.length = 0;
  };
  /** Every ordered pair among 0, 1, 3, 7 sends one RequestVote with term 10*from+to; what each receives. */
  const exchange = (): Record<number, number[]> => {
    clear();
    const ids = [0, 1, 3, 7];
    const endOf = (id: number): SimTransport => (id < 3 ? ends[id]! : lateEnds.get(id)!);
    for (const from of ids) for (const to of ids) if (from !== to) endOf(from).send(rv(from, to, 10 * from + to));
    s.runUntil(s.now() + 5);
    const seen: Record<number, number[]> = {};
    for (const id of ids) seen[id] = terms(id < 3 ? got[id]! : late.get(id)!).sort((a, b) => a - b);
    return seen;
  };

  assert.deepEqual(exchange(), { 0: [10, 30, 70], 1: [1, 31, 71], 3: [3, 13, 73], 7: [7, 17, 37] });
  assert.equal(net.isLinkUp(7, 3), true);

  // A partition made for the first three nodes: a node it gives no group is alone.
  net.partition([0, 0, 1]);
  assert.equal(net.isLinkUp(3, 7), false);
  assert.equal(net.isLinkUp(0, 3), false);
  assert.deepEqual(exchange(), { 0: [10], 1: [1], 3: [], 7: [] });
  // Ids past the old array get groups like any other; holes stay alone.
  const groups: number[] = [0, 0, 1, 1];
  groups[7] = 0;
  net.partition(groups);
  assert.deepEqual(exchange(), { 0: [10, 70], 1: [1, 71], 3: [], 7: [7, 17] });
  net.healLinks();

  // Cuts and deafness name new ids like old ones (a deaf node still sends).
  net.cut(3, 0);
  net.deafen(7);
  assert.deepEqual(exchange(), { 0: [10, 70], 1: [1, 31, 71], 3: [3, 13, 73], 7: [] });
  net.healLinks();

  // A new node restarts like an old one: a fresh endpoint once the old one is closed.
  assert.throws(() => net.endpoint(3), /already has an open endpoint/);
  await lateEnds.get(3)!.close();
  const reborn = net.endpoint(3);
  lateEnds.set(3, reborn);
  void reborn.start((m) => late.get(3)!.push({ at: s.now(), m }));
  assert.deepEqual(exchange(), { 0: [10, 30, 70], 1: [1, 31, 71], 3: [3, 13, 73], 7: [7, 17, 37] });

  const st = net.stats;
  assert.equal(st.inFlight, 0);
  const drops = Object.values(st.dropped).reduce((a, b) => a + b, 0);
  assert.equal(st.sent + st.duplicated, st.delivered + drops);
  assert.equal(st.dropped.linkDown, 10 + 6 + 4);
  assert.throws(() => net.endpoint(65_536), /node id/);
});
