/**
 * The TCP transport over loopback: round trips, reconnects, refused handshakes, hostile input,
 * queue bounds, priorities, frame limits, a clean shutdown, membership changes and nodes outside
 * the peer set (the hello's advertised address, the non-member budget, learned addresses). Every
 * wait is a bounded poll.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { spawn } from 'node:child_process';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { AppendEntries, Message, NodeId } from '../../src/core/messages.js';
import { ByteWriter, CodecError, encodeMessage } from '../../src/codec/codec.js';
import { decodeHello, encodeHello, frame, isAdvertisableHost, TcpTransport, type TcpTransportOptions } from '../../src/transport/tcp.js';
import { freeLoopbackPorts } from '../../src/testing/ports.js';

import { ae, chunk, closeAll, CLUSTER, everyType, HOST, peer, sleep, startNode, waitFor, type Node } from './tcp-fixture.js';

/** A deterministic byte generator for the garbage test. */
function garbage(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Connects a raw socket, writes `chunks` and resolves once the server has closed it (or after `ms`). */
async function rawExchange(port: number, chunks: Uint8Array[], ms = 2000): Promise<'closed' | 'open'> {
  const socket = net.connect({ host: HOST, port });
  socket.on('error', () => {});
  socket.on('data', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  for (const c of chunks) socket.write(c);
  const result = await new Promise<'closed' | 'open'>((resolve) => {
    const timer = setTimeout(() => resolve('open'), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
  });
  socket.destroy();
  return result;
}

/** A version 2 hello payload with any host and port (or none), bypassing encodeHello's checks. */
function helloWithAddress(from: NodeId, to: NodeId, host: string, port: number | null): Buffer {
  const w = new ByteWriter();
  for (const b of Buffer.from('TSRAFT2')) w.writeByte(b);
  w.writeBytes(Buffer.from(CLUSTER), 'cluster');
  w.writeVarint(from, 'from');
  w.writeVarint(to, 'to');
  w.writeBytes(Buffer.from(host, 'latin1'), 'host');
  if (port !== null) w.writeVarint(port, 'port');
  return Buffer.from(w.finish());
}

const lengthPrefix = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
};

describe('TcpTransport', () => {
  test('round trip of every message type, both ways, on ports chosen with port 0', { timeout: 5000 }, async () => {
    const all: Node[] = [];
    try {
      const [pa, pb] = (await freeLoopbackPorts(2)) as [number, number];
      const a = await startNode({ nodeId: 0, port: pa, peers: [peer(0, pa), peer(1, pb)] }, all);
      const b = await startNode({ nodeId: 1, port: pb, peers: [peer(0, pa), peer(1, pb)] }, all);
      assert.equal(a.t.port, pa);

      const solo = await startNode({ nodeId: 5, peers: [] }, all); // listen.port 0
      assert.ok(solo.t.port > 0 && solo.t.port < 65536);

      const ab = everyType(0, 1);
      const ba = everyType(1, 0);
      for (const m of ab) a.t.send(m);
      for (const m of ba) b.t.send(m);
      await waitFor(() => b.got.length === ab.length && a.got.length === ba.length, 'both directions');
      // Urgent messages may overtake snapshot chunks; within each class the order is kept.
      const bulk = (m: Message): boolean => m.type === 'InstallSnapshot';
      for (const [got, sent] of [[b.got, ab], [a.got, ba]] as const) {
        assert.deepEqual(got.filter((m) => !bulk(m)), sent.filter((m) => !bulk(m)));
        assert.deepEqual(got.filter(bulk), sent.filter(bulk));
      }
      assert.equal(a.t.stats.sent, ab.length);
      assert.equal(b.t.stats.received, ab.length);
      assert.equal(a.t.stats.connections, 2, 'one outbound and one inbound connection');
      assert.equal(a.t.stats.malformedFrames, 0);
      assert.deepEqual(a.logs, []);
    } finally {
      await closeAll(all);
    }
  });

  test('three nodes all-to-all, in order per sender', { timeout: 5000 }, async () => {
    const all: Node[] = [];
    try {
      const ports = await freeLoopbackPorts(3);
      const peers = ports.map((p, i) => peer(i, p));
      const nodes = await Promise.all(ports.map((p, i) => startNode({ nodeId: i, port: p, peers }, all)));
      const PER_PAIR = 50;
      for (let k = 0; k < PER_PAIR; k++) {
        for (let from = 0; from < 3; from++) {
          for (let to = 0; to < 3; to++) if (from !== to) nodes[from]!.t.send(ae(from, to, k));
        }
      }
      await waitFor(() => nodes.every((n) => n.got.length === 2 * PER_PAIR), 'all messages');
      for (let to = 0; to < 3; to++) {
        for (let from = 0; from < 3; from++) {
          if (from === to) continue;
          const seen = nodes[to]!.got.filter((m) => m.from === from).map((m) => (m as AppendEntries).leaderCommit);
          assert.deepEqual(seen, Array.from({ length: PER_PAIR }, (_, k) => k), `node ${to} from node ${from}`);
        }
        assert.ok(nodes[to]!.got.every((m) => m.to === to));
      }
    } finally {
      await closeAll(all);
    }
  });

  test('a peer that starts later is connected to and receives new messages within 1 s', { timeout: 5000 }, async () => {
    const all: Node[] = [];
    try {
      const [pa, pb] = (await freeLoopbackPorts(2)) as [number, number];
      const a = await startNode({ nodeId: 0, port: pa, peers: [peer(1, pb)] }, all); // default backoff 50..2000 ms
      a.t.send(ae(0, 1, 0)); // B is down: may be dropped
      await sleep(300);
      assert.ok(a.t.stats.connectAttempts >= 2, 'kept dialling while a message was queued');
      const b = await startNode({ nodeId: 1, port: pb, peers: [peer(0, pa)] }, all);
      const upAt = Date.now();
      // Like a leader's heartbeats: keep sending until one arrives (bounded).
      for (let i = 1; i <= 40 && !b.got.some((m) => m.type === 'AppendEntries' && m.leaderCommit > 0); i++) {
        a.t.send(ae(0, 1, i));
        await sleep(25);
      }
      const delay = Date.now() - upAt;
      assert.ok(b.got.some((m) => m.type === 'AppendEntries' && m.leaderCommit > 0), 'a new message arrived');
      assert.ok(delay < 1000, `delivered ${delay} ms after the peer came up`);
      assert.ok(a.logs.some((l) => l.includes('ECONNREFUSED')), 'the down peer was logged');
      assert.ok(a.logs.filter((l) => l.includes('ECONNREFUSED')).length === 1, 'and only once');
    } finally {
      await closeAll(all);
    }
  });

  test('a peer that restarts on the same port is reconnected to', { timeout: 5000 }, async () => {
    const all: Node[] = [];
    try {
      const [pa, pb] = (await freeLoopbackPorts(2)) as [number, number];
      const a = await startNode({ nodeId: 0, port: pa, peers: [peer(1, pb)], reconnectMaxMs: 200 }, all);
      const b1 = await startNode({ nodeId: 1, port: pb, peers: [peer(0, pa)] }, all);
      a.t.send(ae(0, 1, 1));
      await waitFor(() => b1.got.length === 1, 'first delivery');
      await b1.t.close();
      const b2 = await startNode({ nodeId: 1, port: pb, peers: [peer(0, pa)] }, all);
      for (let i = 2; i <= 60 && b2.got.length === 0; i++) {
        a.t.send(ae(0, 1, i));
        await sleep(25);
      }
      assert.ok(b2.got.length > 0, 'the restarted peer receives messages');
      await waitFor(() => a.t.stats.connections === 1, 'one outbound connection again');
      // And the restarted node can talk back.
      b2.t.send(ae(1, 0, 99));
      await waitFor(() => a.got.length === 1, 'reply from the restarted node');
    } finally {
      await closeAll(all);
    }
  });

  test('a wrong cluster id or a wrong target node is refused and logged; nothing is delivered', { timeout: 5000 }, async () => {
    const all: Node[] = [];
    try {
      const [pb] = (await freeLoopbackPorts(1)) as [number];
      const b = await startNode({ nodeId: 1, port: pb, peers: [] }, all);
      const other = await startNode({ nodeId: 0, clusterId: 'other', peers: [peer(1, pb)] }, all);
      const wrongTarget = await startNode({ nodeId: 2, peers: [peer(3, pb)] }, all); // believes node 3 is there
      other.t.send(ae(0, 1, 1));
      wrongTarget.t.send(ae(2, 3, 1));
      await waitFor(() => b.t.stats.refusedHandshakes >= 2, 'two refusals');
      await sleep(50);
      assert.deepEqual(b.got, []);
      assert.equal(b.t.stats.received, 0);
      assert.ok(
        b.logs.some((l) => /^refusing connection from 127\.0\.0\.1:\d+: cluster "other" is not "prod"$/.test(l)),
        b.logs.join('\n'),
      );
      assert.ok(
        b.logs.some((l) => /^refusing connection from 127\.0\.0\.1:\d+: node 2 is calling node 3, but this is node 1$/.test(l)),
        b.logs.join('\n'),
      );
      assert.equal(b.t.stats.malformedFrames, 0);
      // A hello claiming to come from the node itself is refused too.
      assert.equal(await rawExchange(pb, [frame(encodeHello({ clusterId: CLUSTER, from: 1, to: 1 }))]), 'closed');
      assert.equal(b.t.stats.refusedHandshakes, 3);
      assert.ok(b.logs.some((l) => /the hello claims to come from this node \(1\)$/.test(l)), b.logs.join('\n'));
    } finally {
      await closeAll(all);
    }
  });

  test('garbage on the listening port is counted as malformed and good peers keep working', { timeout: 8000 }, async () => {
    const all: Node[] = [];
    try {
      const [pa, pb] = (await freeLoopbackPorts(2)) as [number, number];
      const a = await startNode({ nodeId: 0, port: pa, peers: [peer(1, pb)] }, all);
      const b = await startNode({ nodeId: 1, port: pb, peers: [peer(0, pa)] }, all);
      a.t.send(ae(0, 1, 1));
      await waitFor(() => b.got.length === 1, 'a good message before the garbage');

      const hello = frame(encodeHello({ clusterId: CLUSTER, from: 0, to: 1 }));
      const cases: [string, Uint8Array[]][] = [
        ['random bytes', [garbage(4096, 7)]],
        ['a huge length prefix', [lengthPrefix(0xffffffff), garbage(64, 3)]],
        ['a valid-length hello frame with a garbage payload', [frame(garbage(40, 11))]],
        ['an empty hello frame', [lengthPrefix(0)]],
        ['a hello with trailing bytes', [frame(Buffer.concat([encodeHello({ clusterId: CLUSTER, from: 0, to: 1 }), Buffer.of(1)]))]],
        ['a valid hello, then a garbage message', [hello, frame(garbage(40, 5))]],
        ['a valid hello, then an unknown message tag', [hello, frame(Buffer.of(0, 0, 1, 1))]],
        ['a valid hello, then a truncated message', [hello, frame(encodeMessage(ae(0, 1, 2)).subarray(0, 6))]],
        ['a valid hello, then a huge length prefix', [hello, lengthPrefix(0xfffffff0)]],
        ['a valid hello split byte by byte, then garbage', [...[...hello].map((x) => Buffer.of(x)), frame(garbage(9, 9))]],
        ['a version 2 hello with a bad host', [frame(helloWithAddress(0, 1, 'bad host!', 4000))]],
        ['a version 2 hello advertising 0.0.0.0', [frame(helloWithAddress(0, 1, '0.0.0.0', 4000))]],
        ['a version 2 hello with a 256-byte host', [frame(helloWithAddress(0, 1, 'a'.repeat(256), 4000))]],
        ['a version 2 hello with port 0', [frame(helloWithAddress(0, 1, 'node-0.example', 0))]],
        ['a version 2 hello with port 65536', [frame(helloWithAddress(0, 1, 'node-0.example', 65536))]],
        ['a version 2 hello with a host but no port', [frame(helloWithAddress(0, 1, 'node-0.example', null))]],
        ['a version 1 hello with an address', [frame(Buffer.concat([encodeHello({ clusterId: CLUSTER, from: 0, to: 1 }, 1), Buffer.of(0)]))]],
      ];
      let expected = 0;
      for (const [what, chunks] of cases) {
        assert.equal(await rawExchange(pb, chunks), 'closed', `${what}: the connection is closed`);
        expected++;
        await waitFor(() => b.t.stats.malformedFrames === expected, `${what}: counted`, 1000);
      }
      assert.equal(b.got.length, 1, 'no garbage was delivered');

      // A message forged with someone else's `from` is dropped and counted, and the connection stays.
      const forged = await rawExchange(pb, [hello, frame(encodeMessage(ae(2, 1, 3))), frame(encodeMessage(ae(0, 2, 3)))], 200);
      assert.equal(forged, 'open');
      assert.equal(b.t.stats.dropped.misaddressed, 2);
      assert.equal(b.got.length, 1);

      a.t.send(ae(0, 1, 4));
      b.t.send(ae(1, 0, 5));
      await waitFor(() => b.got.length === 2 && a.got.length === 1, 'good traffic after the garbage');
      assert.equal(a.t.stats.malformedFrames, 0);
    } finally {
      await closeAll(all);
    }
  });

  test('a partial frame that stalls is closed after frameStallMs, releasing its buffer; a slow but steady frame is not', { timeout: 8000 }, async () => {
    const all: Node[] = [];
    try {
      const [pb] = (await freeLoopbackPorts(1)) as [number];
      const b = await startNode({ nodeId: 1, port: pb, peers: [peer(0, 1)], frameStallMs: 300 }, all);
      const hello = frame(encodeHello({ clusterId: CLUSTER, from: 0, to: 1 }));
      // A header announcing 1 MiB, then 10 bytes, then nothing.
      assert.equal(await rawExchange(pb, [hello, lengthPrefix(1 << 20), Buffer.alloc(10)], 3000), 'closed');
      await waitFor(() => b.logs.some((l) => /a partial frame \(\d+ bytes buffered\) stalled for 300 ms/.test(l)), 'the stall logged');
      assert.equal(b.t.stats.malformedFrames, 1);
      // A frame that arrives in pieces, each within the stall time, is delivered.
      const whole = frame(encodeMessage(ae(0, 1, 7)));
      const socket = net.connect({ host: HOST, port: pb });
      socket.on('error', () => {});
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(hello);
      for (let i = 0; i < whole.length; i += 4) {
        socket.write(whole.subarray(i, i + 4));
        await new Promise((r) => setTimeout(r, 100));
      }
      await waitFor(() => b.got.length === 1, 'the slow frame delivered');
      socket.destroy();
    } finally {
      await closeAll(all);
    }
  });

  test('connections beyond inboundConnectionsMax are refused and counted', { timeout: 8000 }, async () => {
    const all: Node[] = [];
    const sockets: net.Socket[] = [];
    try {
      const [pb] = (await freeLoopbackPorts(1)) as [number];
      const b = await startNode({ nodeId: 1, port: pb, peers: [], inboundConnectionsMax: 3 }, all);
      for (let i = 0; i < 5; i++) {
        const socket = net.connect({ host: HOST, port: pb });
        socket.on('error', () => {});
        sockets.push(socket);
        await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      }
      await waitFor(() => b.t.stats.refusedConnections === 2, 'two refused');
      assert.equal(b.logs.filter((l) => /connections are open/.test(l)).length, 1, 'logged once');
    } finally {
      for (const socket of sockets) socket.destroy();
      await closeAll(all);
    }
  });

  test('members may hold four connections each; non-members share a budget of 8, the oldest going first, and never displace members', { timeout: 10000 }, async () => {
    const all: Node[] = [];
    const sockets: net.Socket[] = [];
    try {
      const [pb] = (await freeLoopbackPorts(1)) as [number];
      const b = await startNode({ nodeId: 1, port: pb, peers: [peer(0, 1), peer(2, 1)], inboundConnectionsMax: 40 }, all);
      const open = (list: net.Socket[]): number => list.filter((s) => !s.destroyed && s.readyState === 'open').length;
      const connect = async (from: NodeId): Promise<net.Socket> => {
        const socket = net.connect({ host: HOST, port: pb });
        socket.on('error', () => {});
        socket.on('data', () => {});
        socket.on('close', () => socket.destroy());
        sockets.push(socket);
        await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
        socket.write(frame(encodeHello({ clusterId: CLUSTER, from, to: 1 })));
        return socket;
      };
      // Member 0 connects six times (a restarted peer, or an impostor): only the newest four stay.
      const member0: net.Socket[] = [];
      for (let i = 0; i < 6; i++) {
        member0.push(await connect(0));
        await waitFor(() => b.t.stats.connections === Math.min(i + 1, 4) && open(member0) === Math.min(i + 1, 4), `connection ${i + 1}`);
      }
      assert.ok(member0[0]!.destroyed && member0[1]!.destroyed && !member0[5]!.destroyed, 'the oldest went, the newest stayed');
      const member2 = await connect(2);
      await waitFor(() => b.t.stats.connections === 5, 'member 2 connected');

      // Eight non-members with distinct ids get in...
      const strangers: net.Socket[] = [];
      for (let i = 0; i < 8; i++) strangers.push(await connect(100 + i));
      await waitFor(() => b.t.stats.nonMembers.accepted === 8 && b.t.stats.connections === 13, 'eight non-members connected');
      assert.equal(b.t.stats.nonMembers.open, 8);
      // ...and a ninth closes the oldest non-member connection, not a member's.
      strangers.push(await connect(108));
      await waitFor(() => b.t.stats.nonMembers.accepted === 9 && strangers[0]!.destroyed, 'the oldest non-member closed');
      assert.equal(b.t.stats.nonMembers.evicted, 1);
      assert.equal(open(strangers), 8);
      assert.equal(open(member0), 4);
      assert.ok(!member2.destroyed);

      // A flood of hellos with distinct ids: the budget holds, members keep their connections, and
      // the log gets a bounded number of lines.
      for (let i = 0; i < 30; i++) strangers.push(await connect(1000 + i));
      await waitFor(() => b.t.stats.nonMembers.accepted === 39, 'the flood accepted');
      await waitFor(() => open(strangers) === 8, 'the newest eight non-members stay');
      assert.ok(strangers.slice(-8).every((s) => !s.destroyed), 'the newest stayed');
      assert.equal(b.t.stats.nonMembers.evicted, 31);
      assert.equal(b.t.stats.nonMembers.open, 8);
      assert.equal(b.t.stats.connections, 4 + 1 + 8);
      assert.equal(open(member0), 4);
      assert.ok(!member2.destroyed);
      assert.equal(b.t.stats.refusedConnections, 0, 'inboundConnectionsMax was never reached');
      assert.equal(b.t.stats.refusedHandshakes, 0);
      const nonMemberLines = b.logs.filter((l) => /non-member/.test(l));
      assert.ok(nonMemberLines.length <= 11, `${nonMemberLines.length} non-member log lines:\n${nonMemberLines.join('\n')}`);
      assert.equal(b.logs.filter((l) => /closing the oldest non-member connection/.test(l)).length, 1, 'evictions logged once');
      // Members' messages still arrive.
      member2.write(frame(encodeMessage(ae(2, 1, 9))));
      member0[5]!.write(frame(encodeMessage(ae(0, 1, 8))));
      await waitFor(() => b.got.length === 2, "members' messages");
    } finally {
      for (const socket of sockets) socket.destroy();
      await closeAll(all);
    }
  });

  test('nonMemberConnectionsMax 0 refuses non-members at the hello, as before', { timeout: 5000 }, async () => {
    const all: Node[] = [];
    try {
      const [pb] = (await freeLoopbackPorts(1)) as [number];
      const b = await startNode({ nodeId: 1, port: pb, peers: [peer(0, 1)], nonMemberConnectionsMax: 0 }, all);
      for (const from of [7, 99]) {
        assert.equal(await rawExchange(pb, [frame(encodeHello({ clusterId: CLUSTER, from, to: 1 })), frame(encodeMessage(ae(from, 1, 1)))]), 'closed', `stranger ${from}`);
      }
      assert.equal(b.t.stats.refusedHandshakes, 2);
      assert.ok(b.logs.some((l) => /node 7 is not a member \(nonMemberConnectionsMax is 0\)/.test(l)), b.logs.join('\n'));
      assert.equal(b.got.length, 0);
      assert.equal(await rawExchange(pb, [frame(encodeHello({ clusterId: CLUSTER, from: 0, to: 1 }))], 200), 'open', 'a member still gets in');
    } finally {
      await closeAll(all);
    }
  });

  test('with the peer down the queue stays bounded, drops the oldest and dials at a bounded rate', { timeout: 5000 }, async () => {
    const all: Node[] = [];
    try {
      const [pb] = (await freeLoopbackPorts(1)) as [number];
      const QMAX = 16;
      const a = await startNode({ nodeId: 0, peers: [peer(1, pb)], sendQueueMax: QMAX, reconnectMinMs: 20, reconnectMaxMs: 100 }, all);
      for (let i = 0; i < 10 * QMAX; i++) {
        a.t.send(ae(0, 1, i));
        assert.ok(a.t.queued(1) <= QMAX);
      }
      assert.equal(a.t.queued(1), QMAX);
      assert.equal(a.t.stats.dropped.queueFull, 9 * QMAX);
      const attemptsBefore = a.t.stats.connectAttempts;
      await sleep(400);
      const attempts = a.t.stats.connectAttempts - attemptsBefore;
      assert.ok(attempts >= 2 && attempts <= 12, `${attempts} dials in 400 ms`);

      // When the peer appears it receives exactly the newest QMAX messages, in order.
      const b = await startNode({ nodeId: 1, port: pb, peers: [peer(0, 1)] }, all);
      await waitFor(() => b.got.length === QMAX, 'the queued messages', 1500);
      assert.deepEqual(
        b.got.map((m) => (m as AppendEntries).leaderCommit),
        Array.from({ length: QMAX }, (_, k) => 9 * QMAX + k),
      );
      assert.equal(a.t.queued(1), 0);
    } finally {
      await closeAll(all);
    }
  });

  test('a full queue evicts bulk snapshot chunks before urgent messages', { timeout: 5000 }, async () => {
    const all: Node[] = [];
    try {
      const [pb] = (await freeLoopbackPorts(1)) as [number];
      const a = await startNode({ nodeId: 0, peers: [peer(1, pb)], sendQueueMax: 4, reconnectMinMs: 20, reconnectMaxMs: 50 }, all);
      a.t.send(chunk(0, 1, 0, 100));
      a.t.send(chunk(0, 1, 100, 100));
      for (let i = 0; i < 4; i++) a.t.send(ae(0, 1, i));
      assert.equal(a.t.queued(1), 4);
      assert.equal(a.t.stats.dropped.queueFull, 2);
      const b = await startNode({ nodeId: 1, port: pb, peers: [peer(0, 1)] }, all);
      await waitFor(() => b.got.length === 4, 'the surviving messages', 1500);
      assert.deepEqual(
        b.got.map((m) => m.type),
        ['AppendEntries', 'AppendEntries', 'AppendEntries', 'AppendEntries'],
      );
    } finally {
      await closeAll(all);
    }
  });

  test('an AppendEntries overtakes a queued InstallSnapshot backlog', { timeout: 8000 }, async () => {
    const all: Node[] = [];
    try {
      const [pa, pb] = (await freeLoopbackPorts(2)) as [number, number];
      const a = await startNode({ nodeId: 0, port: pa, peers: [peer(1, pb)] }, all);
      const b = await startNode({ nodeId: 1, port: pb, peers: [peer(0, pa)] }, all);
      a.t.send(ae(0, 1, 0));
      await waitFor(() => b.got.length === 1, 'warm-up');
      b.got.length = 0;

      const CHUNKS = 200;
      const SIZE = 64 * 1024;
      for (let i = 0; i < CHUNKS; i++) a.t.send(chunk(0, 1, i * SIZE, SIZE, i === CHUNKS - 1));
      await yieldToLoop(); // the first chunks go out and the socket pushes back
      const stillQueued = a.t.queued(1);
      assert.ok(stillQueued > 0 && stillQueued < CHUNKS, `${stillQueued} chunks still queued`);
      a.t.send(ae(0, 1, 1));
      await waitFor(() => b.got.length === CHUNKS + 1, 'everything', 6000);
      const at = b.got.findIndex((m) => m.type === 'AppendEntries');
      // Strict priority: it is written at the first opportunity, ahead of every chunk still queued.
      assert.equal(at, CHUNKS - stillQueued, `AppendEntries arrived after ${at} chunks; ${stillQueued} were queued behind it`);
      const offsets = b.got.filter((m) => m.type === 'InstallSnapshot').map((m) => m.offset);
      assert.deepEqual(offsets, Array.from({ length: CHUNKS }, (_, i) => i * SIZE), 'chunks stay in order');
    } finally {
      await closeAll(all);
    }
  });

  test('frames over maxFrameBytes are never sent, and an oversized incoming length closes the connection', { timeout: 5000 }, async () => {
    const all: Node[] = [];
    try {
      const [pa, pb, pc] = (await freeLoopbackPorts(3)) as [number, number, number];
      const peers = [peer(0, pa), peer(1, pb), peer(2, pc)];
      const a = await startNode({ nodeId: 0, port: pa, peers, maxFrameBytes: 1024 }, all);
      const b = await startNode({ nodeId: 1, port: pb, peers, maxFrameBytes: 1024 }, all);
      const c = await startNode({ nodeId: 2, port: pc, peers, reconnectMaxMs: 100 }, all); // default 8 MiB limit

      a.t.send(ae(0, 1, 1, 2000));
      assert.equal(a.t.stats.dropped.tooLarge, 1);
      assert.equal(a.t.queued(1), 0);
      a.t.send(ae(0, 1, 2, 900)); // fits: 900 bytes of command plus a few header bytes
      await waitFor(() => b.got.length === 1, 'the small message');
      assert.equal((b.got[0] as AppendEntries).leaderCommit, 2);
      assert.equal(a.logs.filter((l) => l.includes('exceeds maxFrameBytes')).length, 1);

      // C does not know B's limit; B refuses the frame by closing the connection.
      c.t.send(ae(2, 1, 3, 2000));
      await waitFor(() => b.t.stats.malformedFrames === 1, 'the oversized frame counted');
      for (let i = 4; i <= 40 && !b.got.some((m) => m.from === 2); i++) {
        c.t.send(ae(2, 1, i, 10));
        await sleep(25);
      }
      assert.ok(b.got.some((m) => m.from === 2), 'C reconnects and small messages get through');
      assert.ok(!b.got.some((m) => m.type === 'AppendEntries' && m.leaderCommit === 3));
    } finally {
      await closeAll(all);
    }
  });

  test('close() is idempotent, drops later sends and clears queues', { timeout: 5000 }, async () => {
    const all: Node[] = [];
    try {
      const [pb] = (await freeLoopbackPorts(1)) as [number];
      const a = await startNode({ nodeId: 0, peers: [peer(1, pb)] }, all);
      a.t.send(ae(0, 1, 1)); // B is down: stays queued, a reconnect timer is pending
      await sleep(60);
      const first = a.t.close();
      assert.equal(a.t.close(), first);
      await first;
      a.t.send(ae(0, 1, 2));
      assert.equal(a.t.queued(1), 0);
      assert.equal(a.t.stats.dropped.noConnection, 2, 'the queued message and the late one');
      await assert.rejects(a.t.start(() => {}));
    } finally {
      await closeAll(all);
    }
  });

  test('after close() the process has no open handles and exits promptly', { timeout: 8000 }, async () => {
    const tcpModule = new URL('../../src/transport/tcp.js', import.meta.url).href;
    const script = `
      import { TcpTransport } from ${JSON.stringify(tcpModule)};
      const got = [];
      const mk = (id, port, peers) => new TcpTransport({ clusterId: 'c', nodeId: id, listen: { host: '127.0.0.1', port }, peers, log: () => {} });
      const a = mk(0, 0, [{ id: 1, host: '127.0.0.1', port: 1 }]);
      await a.start((m) => got.push(m));
      const b = mk(1, 0, [{ id: 0, host: '127.0.0.1', port: a.port }, { id: 2, host: '127.0.0.1', port: 1 }]);
      await b.start((m) => got.push(m));
      b.send({ type: 'RequestVote', from: 1, to: 0, term: 1, lastLogIndex: 0, lastLogTerm: 0 });
      b.send({ type: 'RequestVote', from: 1, to: 2, term: 1, lastLogIndex: 0, lastLogTerm: 0 }); // never up
      for (let i = 0; i < 200 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      if (got.length !== 1) { console.log('not delivered'); process.exit(3); }
      await new Promise((r) => setTimeout(r, 100)); // let the dead peer's reconnect timer get armed
      await Promise.all([a.close(), b.close()]);
      console.log('closed');
    `;
    const started = Date.now();
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let closedAt = 0;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (closedAt === 0 && out.includes('closed')) closedAt = Date.now();
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | string>((resolve) => {
      const killer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('killed: still running after 5 s');
      }, 5000);
      child.once('exit', (c, signal) => {
        clearTimeout(killer);
        resolve(c ?? String(signal));
      });
    });
    assert.equal(code, 0, out);
    assert.equal(out.trim(), 'closed');
    const lingered = Date.now() - closedAt;
    assert.ok(lingered < 1000, `the process lingered ${lingered} ms after close()`);
    assert.ok(Date.now() - started < 5000);
  });
});

describe('TcpTransport.setPeers (membership changes)', () => {
  /** Sends from `from` until `to` holds a message matching `pred` (bounded: 60 tries, 25 ms apart). */
  async function sendUntil(from: Node, to: Node, make: (i: number) => Message, pred: (m: Message) => boolean): Promise<void> {
    for (let i = 1; i <= 60 && !to.got.some(pred); i++) {
      from.t.send(make(i));
      await sleep(25);
    }
    assert.ok(to.got.some(pred), `not delivered; sender logs:\n${from.logs.join('\n')}\nreceiver logs:\n${to.logs.join('\n')}`);
  }

  test('a node outside the peer set is heard and answered at its advertised address; added later, it is a member', { timeout: 8000 }, async () => {
    const all: Node[] = [];
    try {
      const [pa, pc] = (await freeLoopbackPorts(2)) as [number, number];
      const a = await startNode({ nodeId: 0, port: pa, peers: [] }, all);
      const c = await startNode({ nodeId: 3, port: pc, peers: [peer(0, pa)], reconnectMaxMs: 200 }, all);
      // Not a member of A's peer set: its hello is accepted as a non-member's, and carries its address.
      await sendUntil(c, a, (i) => ae(3, 0, i), (m) => m.from === 3);
      assert.equal(a.t.stats.nonMembers.accepted, 1);
      assert.equal(a.t.stats.nonMembers.open, 1);
      assert.equal(a.t.stats.nonMembers.learnedAddresses, 1);
      assert.ok(a.logs.some((l) => new RegExp(`accepted a connection from non-member node 3 at .* \\(advertises ${HOST}:${pc}\\)`).test(l)), a.logs.join('\n'));
      // A answers it there.
      await sendUntil(a, c, (i) => ae(0, 3, i), (m) => m.from === 0);
      assert.equal(a.t.stats.dropped.noConnection, 0);

      a.t.setPeers([peer(0, pa), peer(3, pc)]); // its own entry is ignored
      assert.ok(a.logs.includes(`added peer node 3 at ${HOST}:${pc}`), a.logs.join('\n'));
      assert.equal(a.t.stats.nonMembers.open, 0, 'its connection is now a member connection');
      assert.equal(a.t.stats.nonMembers.learnedAddresses, 0, 'its learned address is dropped');
      const attempts = a.t.stats.connectAttempts;
      await sendUntil(c, a, (i) => ae(3, 0, 100 + i), (m) => (m as AppendEntries).leaderCommit > 100);
      await sendUntil(a, c, (i) => ae(0, 3, 100 + i), (m) => (m as AppendEntries).leaderCommit > 100);
      assert.equal(a.t.stats.connectAttempts, attempts, 'the connection to the same address is kept');
      assert.ok(a.got.every((m) => m.from === 3 && m.to === 0));
      await waitFor(() => a.t.stats.connections === 2, 'one connection each way');
    } finally {
      await closeAll(all);
    }
  });

  test('a removed peer loses its connections and queue, then is a budgeted non-member: heard, and answered at its advertised address', { timeout: 8000 }, async () => {
    const all: Node[] = [];
    try {
      const [pa, pb, pDown] = (await freeLoopbackPorts(3)) as [number, number, number];
      const a = await startNode({ nodeId: 0, port: pa, peers: [peer(1, pb), peer(2, pDown)] }, all);
      const b = await startNode({ nodeId: 1, port: pb, peers: [peer(0, pa)], reconnectMaxMs: 200 }, all);
      a.t.send(ae(0, 1, 1));
      b.t.send(ae(1, 0, 1));
      await waitFor(() => a.got.length === 1 && b.got.length === 1, 'both directions');
      await waitFor(() => a.t.stats.connections === 2 && b.t.stats.connections === 2, 'connected both ways');
      // Node 2 is down: what is sent to it stays queued while A redials.
      for (let i = 0; i < 3; i++) a.t.send(ae(0, 2, i));
      assert.equal(a.t.queued(2), 3);
      const dropped = a.t.stats.dropped.noConnection;

      a.t.setPeers([]);
      assert.equal(a.t.queued(2), 0, "the removed peer's queue is dropped");
      assert.equal(a.t.stats.dropped.noConnection, dropped + 3);
      await waitFor(() => a.t.stats.connections === 0, "A's outbound and B's inbound connection closed");
      assert.equal(a.t.stats.nonMembers.learnedAddresses, 0);
      a.t.send(ae(0, 1, 2)); // no address for node 1 any more
      assert.equal(a.t.stats.dropped.noConnection, dropped + 4);

      // B keeps talking: its new hello is a non-member's (within the budget), and carries its
      // address, so A can answer it again.
      await sendUntil(b, a, (i) => ae(1, 0, 10 + i), (m) => (m as AppendEntries).leaderCommit > 10);
      assert.equal(a.t.stats.nonMembers.open, 1);
      assert.equal(a.t.stats.nonMembers.learnedAddresses, 1);
      await sendUntil(a, b, (i) => ae(0, 1, 10 + i), (m) => (m as AppendEntries).leaderCommit > 10);
      assert.equal(a.t.stats.refusedHandshakes, 0);
      assert.ok(!b.got.some((m) => (m as AppendEntries).leaderCommit === 2), 'nothing sent while it had no address');

      // Added back, it is a member again.
      a.t.setPeers([peer(1, pb)]);
      assert.equal(a.t.stats.nonMembers.open, 0);
      assert.equal(a.t.stats.nonMembers.learnedAddresses, 0);
      await sendUntil(b, a, (i) => ae(1, 0, 100 + i), (m) => (m as AppendEntries).leaderCommit > 100);
      await sendUntil(a, b, (i) => ae(0, 1, 100 + i), (m) => (m as AppendEntries).leaderCommit > 100);
    } finally {
      await closeAll(all);
    }
  });

  test('an address change reconnects to the new address, keeping the queue; unchanged peers keep their connections', { timeout: 8000 }, async () => {
    const all: Node[] = [];
    try {
      const [pa, pb1, pb2, pc, pDown] = (await freeLoopbackPorts(5)) as [number, number, number, number, number];
      const a = await startNode({ nodeId: 0, port: pa, peers: [peer(1, pb1), peer(2, pc)] }, all);
      const b1 = await startNode({ nodeId: 1, port: pb1, peers: [peer(0, pa)] }, all);
      const b2 = await startNode({ nodeId: 1, port: pb2, peers: [peer(0, pa)] }, all); // node 1's new home
      const c = await startNode({ nodeId: 2, port: pc, peers: [peer(0, pa)] }, all);
      a.t.send(ae(0, 1, 1));
      a.t.send(ae(0, 2, 1));
      await waitFor(() => b1.got.length === 1 && c.got.length === 1, 'first deliveries');
      const attempts = a.t.stats.connectAttempts;
      assert.equal(attempts, 2);

      // The same list again changes nothing.
      const logs = a.logs.length;
      a.t.setPeers([peer(1, pb1), peer(2, pc)]);
      assert.equal(a.logs.length, logs);
      assert.equal(a.t.stats.connections, 2);

      a.t.setPeers([peer(2, pc), peer(1, pb2)]);
      assert.ok(a.logs.includes(`peer node 1 moved from ${HOST}:${pb1} to ${HOST}:${pb2}`), a.logs.join('\n'));
      await waitFor(() => b1.t.stats.connections === 0, 'the connection to the old address closed');
      a.t.send(ae(0, 1, 2));
      a.t.send(ae(0, 2, 2));
      await waitFor(() => b2.got.length === 1 && c.got.length === 2, 'deliveries after the move');
      assert.equal(b2.got[0]!.from, 0);
      assert.equal(b1.got.length, 1, 'nothing more at the old address');
      assert.equal(a.t.stats.connectAttempts, attempts + 1, 'only the moved peer was redialled');
      assert.equal(c.t.stats.connections, 1, "node 2's connection was left alone");

      // Frames queued for an unreachable address are kept and go to the new one.
      a.t.setPeers([peer(1, pDown), peer(2, pc)]);
      for (let i = 3; i <= 5; i++) a.t.send(ae(0, 1, i));
      await waitFor(() => a.logs.some((l) => l.includes(`${HOST}:${pDown}`) && l.includes('ECONNREFUSED')), 'a failed dial');
      assert.equal(a.t.queued(1), 3, 'queued while the address is down');
      a.t.setPeers([peer(1, pb2), peer(2, pc)]);
      await waitFor(() => b2.got.length === 4, 'the queued frames at the new address');
      assert.deepEqual(b2.got.map((m) => (m as AppendEntries).leaderCommit), [2, 3, 4, 5]);
      assert.equal(a.t.queued(1), 0);
    } finally {
      await closeAll(all);
    }
  });

  test('setPeers works before start(), rejects a bad list without changing anything and is a no-op after close()', { timeout: 5000 }, async () => {
    const all: Node[] = [];
    try {
      const [pa, pb] = (await freeLoopbackPorts(2)) as [number, number];
      const got: Message[] = [];
      const logs: string[] = [];
      const t = new TcpTransport({ clusterId: CLUSTER, nodeId: 0, listen: { host: HOST, port: pa }, peers: [], log: (l) => logs.push(l) });
      all.push({ t, got, logs });
      t.setPeers([peer(1, pb)]);
      assert.throws(() => t.setPeers([peer(1, pb), peer(1, pb)]), /duplicate peer id 1/);
      assert.throws(() => t.setPeers([peer(2, 0)]), /port of peer 2/);
      assert.throws(() => t.setPeers([{ id: -1, host: HOST, port: pb }]), /peer id/);
      await t.start((m) => got.push(m));
      const b = await startNode({ nodeId: 1, port: pb, peers: [peer(0, pa)] }, all);
      t.send(ae(0, 1, 1));
      b.t.send(ae(1, 0, 1));
      await waitFor(() => got.length === 1 && b.got.length === 1, 'both directions after the failed calls');

      await t.close();
      t.setPeers([]);
      t.setPeers([peer(1, pb), peer(2, pb)]);
      assert.equal(t.stats.connections, 0);
    } finally {
      await closeAll(all);
    }
  });
});

describe('TcpTransport: nodes outside the peer set', () => {
  /** Sends from `from` until `to` holds a message matching `pred` (bounded: 60 tries, 25 ms apart). */
  async function sendUntil(from: Node, to: Node, make: (i: number) => Message, pred: (m: Message) => boolean): Promise<void> {
    for (let i = 1; i <= 60 && !to.got.some(pred); i++) {
      from.t.send(make(i));
      await sleep(25);
    }
    assert.ok(to.got.some(pred), `not delivered; sender logs:\n${from.logs.join('\n')}\nreceiver logs:\n${to.logs.join('\n')}`);
  }

  /** A raw connection that said `hello` (a payload) and stays open until the test destroys it. */
  async function rawHello(port: number, hello: Uint8Array, sockets: net.Socket[]): Promise<net.Socket> {
    const socket = net.connect({ host: HOST, port });
    socket.on('error', () => {});
    socket.on('data', () => {});
    sockets.push(socket);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(frame(hello));
    return socket;
  }

  test('the hello: version 2 carries an optional address, version 1 still parses, bounds are enforced', () => {
    const base = { clusterId: CLUSTER, from: 3, to: 1 };
    const v2 = encodeHello({ ...base, address: { host: 'node-3.example', port: 7003 } });
    assert.equal(Buffer.from(v2.subarray(0, 7)).toString('latin1'), 'TSRAFT2');
    assert.deepEqual(decodeHello(v2), { ...base, address: { host: 'node-3.example', port: 7003 } });
    assert.deepEqual(decodeHello(encodeHello({ ...base, address: { host: '::1', port: 1 } })), { ...base, address: { host: '::1', port: 1 } });
    assert.deepEqual(decodeHello(encodeHello(base)), base, 'version 2 without an address');
    const v1 = encodeHello(base, 1);
    assert.equal(Buffer.from(v1.subarray(0, 7)).toString('latin1'), 'TSRAFT1');
    assert.deepEqual(decodeHello(v1), base);
    assert.throws(() => encodeHello({ ...base, address: { host: 'h', port: 1 } }, 1), /version 1/);
    assert.throws(() => encodeHello({ ...base, address: { host: '0.0.0.0', port: 1 } }), /cannot advertise/);
    assert.throws(() => encodeHello({ ...base, address: { host: 'h', port: 0 } }), /advertised port/);
    for (const [host, port] of [['a b', 1], ['-x', 1], ['x'.repeat(256), 1], ['::', 1], ['h', 0], ['h', 65536], ['h\u00e9', 1]] as const) {
      assert.throws(() => decodeHello(helloWithAddress(3, 1, host, port)), CodecError, `${host}:${port}`);
    }
    assert.throws(() => decodeHello(helloWithAddress(3, 1, 'h', null)), CodecError, 'a host without a port');
    assert.throws(() => decodeHello(Buffer.concat([helloWithAddress(3, 1, 'h', 1), Buffer.of(0)])), CodecError, 'trailing bytes');
    assert.throws(() => decodeHello(Buffer.from('TSRAFT3\x00\x00\x00')), /bad hello magic/);
    for (const good of ['localhost', 'node-1', 'node_1.svc.cluster.local', '10.0.0.7', 'fe80::1', 'a'.repeat(63) + '.b']) {
      assert.ok(isAdvertisableHost(good), good);
    }
    for (const bad of ['', ' ', '0.0.0.0', '::', '0:0::0', '[::1]', 'a..b', 'a'.repeat(64), 'x'.repeat(256), 'h:1', 'h/x']) {
      assert.ok(!isAdvertisableHost(bad), bad);
    }
  });

  test('the advertised address: the listen address by default, none on a wildcard, or the advertise option', { timeout: 5000 }, async () => {
    const all: Node[] = [];
    try {
      const mk = (listenHost: string, advertise?: TcpTransportOptions['advertise'], port = 0): TcpTransport => {
        const t = new TcpTransport({ clusterId: CLUSTER, nodeId: 0, listen: { host: listenHost, port }, peers: [], log: () => {}, ...(advertise === undefined ? {} : { advertise }) });
        all.push({ t, got: [], logs: [] });
        return t;
      };
      const loop = mk(HOST);
      assert.equal(loop.advertisedAddress(), null, 'port 0 before start(): not known yet');
      await loop.start(() => {});
      assert.deepEqual(loop.advertisedAddress(), { host: HOST, port: loop.port });
      const wild = mk('0.0.0.0');
      await wild.start(() => {});
      assert.equal(wild.advertisedAddress(), null);
      assert.equal(mk('::', undefined, 7000).advertisedAddress(), null);
      assert.deepEqual(mk('node-0.example', undefined, 7000).advertisedAddress(), { host: 'node-0.example', port: 7000 }, 'a fixed port is known before start()');
      const named = mk('0.0.0.0', { host: 'node-0.example' });
      await named.start(() => {});
      assert.deepEqual(named.advertisedAddress(), { host: 'node-0.example', port: named.port });
      assert.deepEqual(mk('0.0.0.0', { host: '10.1.2.3', port: 7000 }).advertisedAddress(), { host: '10.1.2.3', port: 7000 });
      assert.equal(mk(HOST, null).advertisedAddress(), null);
      assert.throws(() => mk(HOST, { host: '0.0.0.0' }), /advertise.host/);
      assert.throws(() => mk(HOST, { host: 'a b' }), /advertise.host/);
      assert.throws(() => mk(HOST, { host: 'h', port: 0 }), /advertise.port/);
    } finally {
      await closeAll(all);
    }
  });

  test('a node listening on a wildcard address is answered at its advertise option', { timeout: 8000 }, async () => {
    const all: Node[] = [];
    try {
      const [pa] = (await freeLoopbackPorts(1)) as [number];
      const a = await startNode({ nodeId: 0, port: pa, peers: [] }, all);
      const got: Message[] = [];
      const logs: string[] = [];
      const t = new TcpTransport({ clusterId: CLUSTER, nodeId: 4, listen: { host: '0.0.0.0', port: 0 }, advertise: { host: HOST }, peers: [peer(0, pa)], log: (l) => logs.push(l) });
      const b: Node = { t, got, logs };
      all.push(b);
      await t.start((m) => got.push(m));
      await sendUntil(b, a, (i) => ae(4, 0, i), (m) => m.from === 4);
      await sendUntil(a, b, (i) => ae(0, 4, i), (m) => m.from === 0);
      assert.ok(a.logs.some((l) => l.includes(`(advertises ${HOST}:${t.port})`)), a.logs.join('\n'));
    } finally {
      await closeAll(all);
    }
  });

  test('an old TSRAFT1 hello is still accepted, from a member and from a non-member (which cannot be answered)', { timeout: 5000 }, async () => {
    const all: Node[] = [];
    const sockets: net.Socket[] = [];
    try {
      const [pb] = (await freeLoopbackPorts(1)) as [number];
      const b = await startNode({ nodeId: 1, port: pb, peers: [peer(0, 1)] }, all);
      const member = await rawHello(pb, encodeHello({ clusterId: CLUSTER, from: 0, to: 1 }, 1), sockets);
      member.write(frame(encodeMessage(ae(0, 1, 1))));
      const stranger = await rawHello(pb, encodeHello({ clusterId: CLUSTER, from: 9, to: 1 }, 1), sockets);
      stranger.write(frame(encodeMessage(ae(9, 1, 2))));
      await waitFor(() => b.got.length === 2, 'both delivered');
      assert.deepEqual(b.got.map((m) => m.from).sort(), [0, 9]);
      assert.equal(b.t.stats.malformedFrames, 0);
      assert.equal(b.t.stats.nonMembers.open, 1);
      assert.ok(b.logs.some((l) => /non-member node 9 at .* \(no address\)/.test(l)), b.logs.join('\n'));
      b.t.send(ae(1, 9, 3));
      assert.equal(b.t.stats.dropped.noConnection, 1, 'no learned address for node 9');
      assert.equal(b.t.stats.nonMembers.learnedAddresses, 0);
    } finally {
      for (const socket of sockets) socket.destroy();
      await closeAll(all);
    }
  });

  test("a learned address never overrides a configured one; setPeers replaces a learned one", { timeout: 8000 }, async () => {
    const all: Node[] = [];
    try {
      const [pa, pb1, pb2] = (await freeLoopbackPorts(3)) as [number, number, number];
      // Two transports claiming to be node 1: b1 at pb1, b2 at pb2.
      const a = await startNode({ nodeId: 0, port: pa, peers: [] }, all);
      const b1 = await startNode({ nodeId: 1, port: pb1, peers: [peer(0, pa)] }, all);
      const b2 = await startNode({ nodeId: 1, port: pb2, peers: [peer(0, pa)] }, all);

      // b1 talks first: A learns pb1 and answers there.
      await sendUntil(b1, a, (i) => ae(1, 0, i), (m) => m.from === 1);
      await sendUntil(a, b1, (i) => ae(0, 1, i), (m) => m.from === 0);
      assert.equal(a.t.stats.nonMembers.learnedAddresses, 1);

      // Configured at pb2: the configured address wins, and the learned entry is dropped.
      a.t.setPeers([peer(1, pb2)]);
      assert.equal(a.t.stats.nonMembers.learnedAddresses, 0);
      assert.ok(a.logs.some((l) => l.includes(`dropping its learned address ${HOST}:${pb1}`)), a.logs.join('\n'));
      const b1Count = b1.got.length;
      await sendUntil(a, b2, (i) => ae(0, 1, 100 + i), (m) => m.from === 0);

      // b1 keeps saying hello with its own address (now as a member's hello): A still sends to pb2.
      await sendUntil(b1, a, (i) => ae(1, 0, 200 + i), (m) => (m as AppendEntries).leaderCommit > 200);
      await b1.t.close(); // and a fresh connection from it, too
      const b1again = await startNode({ nodeId: 1, port: pb1, peers: [peer(0, pa)] }, all);
      await sendUntil(b1again, a, (i) => ae(1, 0, 300 + i), (m) => (m as AppendEntries).leaderCommit > 300);
      const b2Count = b2.got.length;
      for (let i = 0; i < 5; i++) a.t.send(ae(0, 1, 400 + i));
      await waitFor(() => b2.got.length === b2Count + 5, 'the configured address gets everything');
      await sleep(50);
      assert.equal(b1.got.length, b1Count, 'nothing more at the learned address');
      assert.equal(b1again.got.length, 0);
      assert.equal(a.t.stats.nonMembers.learnedAddresses, 0);
      assert.equal(a.t.stats.nonMembers.accepted, 1, 'only the first hello was a non-member one');
    } finally {
      await closeAll(all);
    }
  });

  test('learned addresses: a newer hello moves one, the least recently used beyond learnedAddressesMax is forgotten with its queue, a message re-learns it', { timeout: 8000 }, async () => {
    const all: Node[] = [];
    const sockets: net.Socket[] = [];
    try {
      const [pa, pc1, pc2] = (await freeLoopbackPorts(3)) as [number, number, number];
      const a = await startNode({ nodeId: 0, port: pa, peers: [], learnedAddressesMax: 2 }, all);
      const c1 = await startNode({ nodeId: 5, port: pc1, peers: [] }, all);
      const c2 = await startNode({ nodeId: 5, port: pc2, peers: [] }, all);
      const hello = (from: NodeId, port: number): Uint8Array => encodeHello({ clusterId: CLUSTER, from, to: 0, address: { host: HOST, port } });

      await rawHello(pa, hello(5, pc1), sockets);
      await waitFor(() => a.t.stats.nonMembers.learnedAddresses === 1, 'node 5 learned');
      a.t.send(ae(0, 5, 1));
      await waitFor(() => c1.got.length === 1, 'answered at its first address');
      // A newer hello from node 5 names another address: A follows it.
      await rawHello(pa, hello(5, pc2), sockets);
      await waitFor(() => a.logs.some((l) => l.includes(`non-member node 5 now advertises ${HOST}:${pc2}`)), 'the move logged');
      a.t.send(ae(0, 5, 2));
      await waitFor(() => c2.got.length === 1, 'answered at its new address');
      assert.equal(c1.got.length, 1);

      // Node 6 (down: its frames stay queued) and node 7 are learned; node 5, least recently used, goes.
      const [pDown] = (await freeLoopbackPorts(1)) as [number];
      const six = await rawHello(pa, hello(6, pDown), sockets);
      await waitFor(() => a.t.stats.nonMembers.learnedAddresses === 2, 'node 6 learned');
      a.t.send(ae(0, 6, 1));
      a.t.send(ae(0, 6, 2));
      assert.equal(a.t.queued(6), 2);
      a.t.send(ae(0, 5, 3)); // node 5 is used again: node 6 is now the least recently used
      await waitFor(() => c2.got.length === 2, 'node 5 still answered');
      const dropped = a.t.stats.dropped.noConnection;
      await rawHello(pa, hello(7, pDown), sockets);
      await waitFor(() => a.t.stats.nonMembers.learnedEvicted === 1, 'one forgotten');
      assert.equal(a.t.stats.nonMembers.learnedAddresses, 2);
      assert.equal(a.t.queued(6), 0, "the forgotten id's queue is dropped");
      assert.equal(a.t.stats.dropped.noConnection, dropped + 2);
      a.t.send(ae(0, 6, 3));
      assert.equal(a.t.stats.dropped.noConnection, dropped + 3, 'node 6 cannot be answered any more');
      a.t.send(ae(0, 5, 4));
      await waitFor(() => c2.got.length === 3, 'node 5 kept');
      assert.equal(a.t.stats.nonMembers.open, 4, 'the non-member connections themselves stay (within the budget)');
      // Node 6 speaks again on its connection: its address is learned again (node 7, now least
      // recently used, goes), so the answer can reach it.
      six.write(frame(encodeMessage(ae(6, 0, 1))));
      await waitFor(() => a.got.some((m) => m.from === 6), "node 6's message");
      assert.equal(a.t.stats.nonMembers.learnedEvicted, 2);
      a.t.send(ae(0, 6, 4));
      assert.equal(a.t.queued(6), 1, 'node 6 can be answered again');
      a.t.send(ae(0, 7, 1));
      assert.equal(a.t.stats.dropped.noConnection, dropped + 4, 'node 7 was forgotten');
    } finally {
      for (const socket of sockets) socket.destroy();
      await closeAll(all);
    }
  });
});
