/**
 * Fuzz: who gets past TcpTransport's mutual TLS and its hello. Seeded and bounded (see
 * fuzz-config.ts); certificates are made once, up front, because making them is slow.
 *
 * Accepting side. One TLS transport (node 1 of cluster "prod", members 1, 2, 3) takes connections
 * from random callers: plaintext TCP, TLS without a certificate, a certificate from another CA,
 * this CA's client certificate (no node identity), this CA's node certificate for a random id of
 * this cluster or of another one. Each says a random hello (its sender: often the id its
 * certificate names, else another; a random cluster id; a random receiver) followed by one message
 * from that sender, and then maybe random garbage, or the bytes are cut short, or are garbage from
 * the start. The property: the message is delivered if and only if the certificate is this CA's,
 * names this cluster, and names exactly the hello's sender, and the hello is one the transport
 * takes from anyone (this cluster, addressed to node 1, not claiming to be node 1: a non-member
 * is admitted as such). Everything else is refused and counted under exactly one counter
 * (`tls.handshakeFailures`, `tls.identityMismatches`, `refusedHandshakes`, `malformedFrames`),
 * the one the model below predicts, and nothing else moves.
 *
 * Dialling side. A transport of node 1 dials a random node id at a TLS server presenting a random
 * certificate: it writes its hello and message if and only if the server's certificate is this
 * CA's and names exactly the node dialled in this cluster; otherwise it counts a dial failure and
 * writes nothing, keeping the message queued.
 *
 * Nothing throws out of either transport (an uncaught exception fails the file), and afterwards
 * the listener still accepts a legitimate peer and delivers its message.
 *
 * TSRAFT_FUZZ_SEED=<n> replays another seed; TSRAFT_FUZZ_RUNS=<x> scales the runs.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import * as fc from 'fast-check';
import { decodeMessage, encodeMessage } from '../../src/codec/codec.js';
import type { Message, NodeId } from '../../src/core/messages.js';
import { createCa, createClientCertificate, createNodeCertificate, type CertificateAndKey } from '../../src/security/certs.js';
import { decodeHello, encodeHello, frame, MAX_HELLO_BYTES, TcpTransport, type TcpTransportStats } from '../../src/transport/tcp.js';
import { checkAsync } from './fuzz-config.js';

const HOST = '127.0.0.1';
const CLUSTER = 'prod';
const OTHER_CLUSTER = 'staging';
const SELF: NodeId = 1;
const MEMBERS: readonly NodeId[] = [1, 2, 3];
/** Ids this CA has node certificates for in this cluster: members and two non-members. */
const THIS_CA_IDS: readonly NodeId[] = [1, 2, 3, 7, 12];
/** Ids with a certificate of this CA for the other cluster, and of another CA for this cluster. */
const OTHER_CLUSTER_IDS: readonly NodeId[] = [1, 2];
const OTHER_CA_IDS: readonly NodeId[] = [1, 2, 7];
/** A partial frame is closed after this long (keeps the cut-short cases quick). */
const FRAME_STALL_MS = 150;
/** Every wait for the listener to act on one connection. */
const ACT_BOUND_MS = 4_000;

/** What a caller presents. */
type Presented =
  | { readonly kind: 'plaintext' }
  | { readonly kind: 'no-certificate' }
  | { readonly kind: 'client-certificate' }
  | { readonly kind: 'other-ca'; readonly node: NodeId }
  | { readonly kind: 'this-ca'; readonly cluster: string; readonly node: NodeId };

/** What follows the handshake: the hello and one message, then garbage, or cut short, or garbage only. */
type Shape =
  | { readonly kind: 'complete' }
  | { readonly kind: 'trailing-garbage'; readonly garbage: Uint8Array }
  | { readonly kind: 'cut'; readonly at: number }
  | { readonly kind: 'garbage'; readonly garbage: Uint8Array };

interface HelloFields {
  readonly clusterId: string;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly version: 1 | 2;
}

/** The counters one connection may move on the listener. */
interface Moved {
  readonly handshakeFailures: number;
  readonly identityMismatches: number;
  readonly refusedHandshakes: number;
  readonly malformedFrames: number;
  readonly received: number;
  readonly misaddressed: number;
  readonly nonMembersAccepted: number;
}

let ca: CertificateAndKey;
const thisCaCerts = new Map<NodeId, CertificateAndKey>();
const otherClusterCerts = new Map<NodeId, CertificateAndKey>();
const otherCaCerts = new Map<NodeId, CertificateAndKey>();
let clientCert: CertificateAndKey;

function certificateOf(p: Presented): CertificateAndKey | undefined {
  switch (p.kind) {
    case 'plaintext':
    case 'no-certificate':
      return undefined;
    case 'client-certificate':
      return clientCert;
    case 'other-ca':
      return otherCaCerts.get(p.node)!;
    case 'this-ca':
      return (p.cluster === CLUSTER ? thisCaCerts : otherClusterCerts).get(p.node)!;
  }
}

const heartbeat = (from: NodeId, to: NodeId): Message => ({ type: 'AppendEntries', from, to, term: 3, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0, readContext: 0 });

function movedOf(s: TcpTransportStats): Moved {
  return {
    handshakeFailures: s.tls.handshakeFailures,
    identityMismatches: s.tls.identityMismatches,
    refusedHandshakes: s.refusedHandshakes,
    malformedFrames: s.malformedFrames,
    received: s.received,
    misaddressed: s.dropped.misaddressed,
    nonMembersAccepted: s.nonMembers.accepted,
  };
}

const NOTHING: Moved = { handshakeFailures: 0, identityMismatches: 0, refusedHandshakes: 0, malformedFrames: 0, received: 0, misaddressed: 0, nonMembersAccepted: 0 };

function plus(a: Moved, b: Moved): Moved {
  const out: Record<string, number> = {};
  for (const k of Object.keys(a) as (keyof Moved)[]) out[k] = a[k] + b[k];
  return out as unknown as Moved;
}

/**
 * The model: what the listener must do with one connection. The TLS layer first (is the
 * certificate this CA's?), then the certificate's identity (a node of this cluster?), then the
 * hello once complete (from the certificate's node? then this cluster, this node, not from this
 * node), then the message.
 */
interface Outcome {
  readonly moved: Moved;
  /** The hello was taken: the connection is open past it (until it breaks a frame or the caller leaves). */
  readonly admitted: boolean;
  readonly delivered: boolean;
}

function expectedOutcome(p: Presented, hello: HelloFields, shape: Shape, helloFrameBytes: number): Outcome {
  const only = (counter: keyof Moved): Outcome => ({ moved: { ...NOTHING, [counter]: 1 }, admitted: false, delivered: false });
  if (p.kind === 'plaintext' || p.kind === 'no-certificate' || p.kind === 'other-ca') return only('handshakeFailures');
  if (p.kind === 'client-certificate' || p.cluster !== CLUSTER) return only('identityMismatches');
  // Random bytes where the hello should be, or a hello cut short: a malformed (or stalled) first frame.
  if (shape.kind === 'garbage' || (shape.kind === 'cut' && shape.at < helloFrameBytes)) return only('malformedFrames');
  if (hello.from !== p.node) return only('identityMismatches');
  if (hello.clusterId !== CLUSTER || hello.to !== SELF || hello.from === SELF) return only('refusedHandshakes');
  const admitted: Moved = { ...NOTHING, nonMembersAccepted: MEMBERS.includes(hello.from) ? 0 : 1 };
  // Cut right after the hello: nothing partial is buffered, so the connection just waits, open.
  if (shape.kind === 'cut' && shape.at === helloFrameBytes) return { moved: admitted, admitted: true, delivered: false };
  if (shape.kind === 'cut') return { moved: { ...admitted, malformedFrames: 1 }, admitted: true, delivered: false };
  if (shape.kind === 'trailing-garbage') return { moved: { ...admitted, received: 1, malformedFrames: 1 }, admitted: true, delivered: true };
  return { moved: { ...admitted, received: 1 }, admitted: true, delivered: true };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

/**
 * One caller: connects as `p` presents, writes `bytes` once connected (for TLS, once its side of
 * the handshake is done), and keeps the connection open until the listener closes it or `done()`
 * holds (then closes it itself), at most ACT_BOUND_MS. Reports who closed it.
 */
async function call(port: number, p: Presented, bytes: Uint8Array, done: () => boolean): Promise<'closed-by-listener' | 'closed-by-caller' | 'timed-out'> {
  const cert = certificateOf(p);
  const socket: net.Socket =
    p.kind === 'plaintext'
      ? net.connect({ host: HOST, port })
      : tls.connect({ host: HOST, port, minVersion: 'TLSv1.3', rejectUnauthorized: false, ...(cert === undefined ? {} : { cert: cert.cert, key: cert.key }) });
  let closed = false;
  socket.on('error', () => undefined);
  socket.on('data', () => undefined);
  socket.once('close', () => {
    closed = true;
  });
  socket.once(p.kind === 'plaintext' ? 'connect' : 'secureConnect', () => socket.write(bytes));
  const finished = await waitUntil(() => closed || done(), ACT_BOUND_MS);
  const result = closed ? 'closed-by-listener' : finished ? 'closed-by-caller' : 'timed-out';
  socket.destroy();
  if (!closed) await waitUntil(() => closed, ACT_BOUND_MS);
  return result;
}

// ------------------------------------------------------------------ generators

const anyId = fc.oneof(fc.constantFrom(0, 1, 2, 3, 7, 12, 99), fc.nat({ max: 2 ** 40 }));

const presentedArb: fc.Arbitrary<Presented> = fc.oneof(
  fc.constant({ kind: 'plaintext' as const }),
  fc.constant({ kind: 'no-certificate' as const }),
  fc.constant({ kind: 'client-certificate' as const }),
  fc.record({ kind: fc.constant('other-ca' as const), node: fc.constantFrom(...OTHER_CA_IDS) }),
  fc.record({ kind: fc.constant('this-ca' as const), cluster: fc.constant(OTHER_CLUSTER), node: fc.constantFrom(...OTHER_CLUSTER_IDS) }),
  // This CA, this cluster: the interesting case, drawn as often as all the others together.
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('this-ca' as const), cluster: fc.constant(CLUSTER), node: fc.constantFrom(...THIS_CA_IDS) }) },
);

const helloChoiceArb = fc.record({
  /** Say hello as the certificate's node, when it names one (most of the time), or as `other`. */
  asCertificate: fc.constantFrom(true, true, true, false),
  other: anyId,
  clusterId: fc.oneof({ weight: 6, arbitrary: fc.constant(CLUSTER) }, fc.constant(OTHER_CLUSTER), fc.string({ maxLength: 12 })),
  to: fc.oneof({ weight: 6, arbitrary: fc.constant(SELF) }, anyId),
  version: fc.constantFrom(1 as const, 2 as const),
});

const shapeArb: fc.Arbitrary<Shape> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'complete' as const }) },
  fc.record({ kind: fc.constant('trailing-garbage' as const), garbage: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('garbage' as const), garbage: fc.uint8Array({ minLength: 1, maxLength: 80 }) }),
);

// ------------------------------------------------------------------ the properties

describe('fuzz: mutual TLS and the hello on TcpTransport', { timeout: 60_000 }, () => {
  let listener: TcpTransport;
  const delivered: Message[] = [];
  const listenerLog: string[] = [];
  /** Every outcome the model predicted so far, summed: the listener's counters must equal it. */
  let predicted: Moved = NOTHING;

  before(async () => {
    ca = await createCa({ commonName: 'tsraft fuzz CA', days: 2 });
    const otherCa = await createCa({ commonName: 'a stranger CA', days: 2 });
    for (const id of THIS_CA_IDS) thisCaCerts.set(id, await createNodeCertificate(ca, { clusterId: CLUSTER, nodeId: id, hosts: [HOST], days: 2 }));
    for (const id of OTHER_CLUSTER_IDS) otherClusterCerts.set(id, await createNodeCertificate(ca, { clusterId: OTHER_CLUSTER, nodeId: id, hosts: [HOST], days: 2 }));
    for (const id of OTHER_CA_IDS) otherCaCerts.set(id, await createNodeCertificate(otherCa, { clusterId: CLUSTER, nodeId: id, hosts: [HOST], days: 2 }));
    clientCert = await createClientCertificate(ca, { name: 'operator', roles: ['admin'], days: 2 });
    listener = new TcpTransport({
      clusterId: CLUSTER,
      nodeId: SELF,
      listen: { host: HOST, port: 0 },
      // The listener never sends, so these addresses are never dialled.
      peers: MEMBERS.filter((id) => id !== SELF).map((id) => ({ id, host: HOST, port: 9 })),
      tls: { ca: ca.cert, ...thisCaCerts.get(SELF)! },
      frameStallMs: FRAME_STALL_MS,
      log: (line) => listenerLog.push(line),
    });
    await listener.start((m) => delivered.push(m));
  });

  after(async () => {
    await listener?.close();
  });

  it('the listener delivers a message only from a certificate of this CA naming this cluster and exactly the hello\'s sender; it refuses and counts everything else', async (t) => {
    /** How many runs ended each way, reported (not asserted: a seed may miss a rare one). */
    const tally = new Map<string, number>();
    await checkAsync(
      'tls-hello accepting side',
      fc.asyncProperty(presentedArb, helloChoiceArb, shapeArb, async (presented, choice, shape) => {
        const certNode = presented.kind === 'this-ca' || presented.kind === 'other-ca' ? presented.node : undefined;
        const hello: HelloFields = {
          clusterId: choice.clusterId,
          from: certNode !== undefined && choice.asCertificate ? certNode : choice.other,
          to: choice.to,
          version: choice.version,
        };
        const helloFrame = frame(encodeHello({ clusterId: hello.clusterId, from: hello.from, to: hello.to }, hello.version));
        const message = heartbeat(hello.from, SELF);
        const whole = Buffer.concat([helloFrame, frame(encodeMessage(message))]);
        // Plaintext callers always send a whole hello and message: a TLS listener would wait out its
        // handshake timeout on fewer bytes than a TLS record header.
        const effective: Shape = presented.kind === 'plaintext' ? { kind: 'complete' } : shape.kind === 'cut' ? { kind: 'cut', at: 1 + (shape.at % (whole.length - 1)) } : shape;
        let bytes: Uint8Array;
        if (effective.kind === 'complete') bytes = whole;
        else if (effective.kind === 'trailing-garbage') bytes = Buffer.concat([whole, effective.garbage]);
        else if (effective.kind === 'cut') bytes = whole.subarray(0, effective.at);
        else {
          bytes = effective.garbage;
          // Garbage that happens to be a well-formed hello frame would be a hello, not garbage.
          const length = bytes.length >= 4 ? Buffer.from(bytes).readUInt32LE(0) : -1;
          fc.pre(!(length >= 0 && length <= MAX_HELLO_BYTES && bytes.length >= 4 + length && decodes(() => decodeHello(bytes.subarray(4, 4 + length)))));
        }
        const want = expectedOutcome(presented, hello, effective, helloFrame.length);
        // The previous caller's connection is gone on the listener's side too, so that an admitted
        // one shows as a new open connection.
        assert.ok(await waitUntil(() => listener.stats.connections === 0, ACT_BOUND_MS), `${listener.stats.connections} connections still open on the listener`);
        const before = movedOf(listener.stats);
        const deliveredBefore = delivered.length;
        const target = plus(before, want.moved);
        const reached = (): boolean => {
          const now = movedOf(listener.stats);
          return (Object.keys(target) as (keyof Moved)[]).every((k) => now[k] >= target[k]);
        };
        let sawOpen = false;
        const done = (): boolean => {
          if (listener.stats.connections > 0) sawOpen = true;
          // A refused caller waits for the listener to close it; an admitted one leaves once it is
          // seen through: its message delivered, or (cut short) its connection seen open past the hello.
          return want.admitted && (want.delivered || sawOpen) && reached();
        };
        const how = await call(listener.port, presented, bytes, done);
        const ok = await waitUntil(reached, ACT_BOUND_MS);
        const context = `presented ${JSON.stringify(presented)}, hello ${JSON.stringify(hello)}, shape ${JSON.stringify(effective)}, connection ${how}`;
        assert.ok(ok, `the listener never reached ${JSON.stringify(want.moved)} for ${context}: moved ${JSON.stringify(minus(movedOf(listener.stats), before))}\n${listenerLog.slice(-5).join('\n')}`);
        assert.deepEqual(minus(movedOf(listener.stats), before), want.moved, `what moved for ${context}\n${listenerLog.slice(-5).join('\n')}`);
        const got = delivered.slice(deliveredBefore);
        assert.deepEqual(got, want.delivered ? [message] : [], `delivered for ${context}`);
        // A refused caller is closed by the listener; an admitted one stays open past its hello.
        if (!want.admitted) assert.equal(how, 'closed-by-listener', `a refused connection stays open: ${context}`);
        else if (!want.delivered) assert.ok(sawOpen, `an admitted connection was never open past its hello: ${context}`);
        if (want.admitted && want.moved.malformedFrames === 0) assert.equal(how, 'closed-by-caller', `an admitted connection was closed: ${context}`);
        predicted = plus(predicted, want.moved);
        const outcome = want.delivered ? 'delivered' : want.admitted ? 'admitted, cut short' : (Object.keys(want.moved) as (keyof Moved)[]).find((k) => want.moved[k] > 0)!;
        tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
      }),
      80,
    );
    t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries([...tally].sort()))}`);
    assert.deepEqual(movedOf(listener.stats), predicted, 'the listener counted exactly what the model predicted, nothing late');
    assert.equal(listener.stats.tlsRefused, predicted.handshakeFailures + predicted.identityMismatches);
  });

  it('a dialler writes its hello only to a server whose certificate is this CA\'s and names the node dialled; it counts every other one', async () => {
    await checkAsync(
      'tls-hello dialling side',
      fc.asyncProperty(fc.constantFrom(2, 3, 7), presentedArb.filter((p) => p.kind !== 'plaintext' && p.kind !== 'no-certificate'), async (dialled, presented) => {
        const serverCert = certificateOf(presented)!;
        const received: Buffer[] = [];
        const sockets = new Set<tls.TLSSocket>();
        const server = tls.createServer({ ca: ca.cert, cert: serverCert.cert, key: serverCert.key, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: true }, (socket) => {
          sockets.add(socket);
          socket.on('data', (d: Buffer) => received.push(d));
          socket.on('error', () => undefined);
        });
        server.on('tlsClientError', () => undefined);
        await new Promise<void>((resolve) => server.listen({ host: HOST, port: 0 }, () => resolve()));
        const dialler = new TcpTransport({
          clusterId: CLUSTER,
          nodeId: SELF,
          listen: { host: HOST, port: 0 },
          peers: [{ id: dialled, host: HOST, port: (server.address() as net.AddressInfo).port }],
          tls: { ca: ca.cert, ...thisCaCerts.get(SELF)! },
          reconnectMinMs: 20,
          reconnectMaxMs: 50,
          log: () => undefined,
        });
        try {
          await dialler.start(() => undefined);
          const message = heartbeat(SELF, dialled);
          dialler.send(message);
          const accepted = presented.kind === 'this-ca' && presented.cluster === CLUSTER && presented.node === dialled;
          const context = `dialled ${dialled}, server presents ${JSON.stringify(presented)}`;
          if (accepted) {
            // Two frames: the hello, then the message.
            const frames = (): Buffer[] | undefined => {
              const all = Buffer.concat(received);
              const out: Buffer[] = [];
              let at = 0;
              while (out.length < 2) {
                if (all.length < at + 4) return undefined;
                const length = all.readUInt32LE(at);
                if (all.length < at + 4 + length) return undefined;
                out.push(all.subarray(at + 4, at + 4 + length));
                at += 4 + length;
              }
              return at === all.length ? out : undefined;
            };
            assert.ok(await waitUntil(() => frames() !== undefined, ACT_BOUND_MS), `no hello and message written for ${context} (${Buffer.concat(received).length} bytes)`);
            const [hello, body] = frames()!;
            assert.deepEqual(decodeHello(hello!), { clusterId: CLUSTER, from: SELF, to: dialled, address: { host: HOST, port: dialler.port } }, context);
            assert.deepEqual(decodeMessage(body!), message, context);
            assert.equal(dialler.stats.tls.dialFailures, 0, context);
            assert.equal(dialler.stats.sent, 1, context);
          } else {
            assert.ok(await waitUntil(() => dialler.stats.tls.dialFailures >= 1, ACT_BOUND_MS), `no dial failure counted for ${context}`);
            assert.equal(Buffer.concat(received).length, 0, `bytes written to a server refused: ${context}`);
            assert.equal(dialler.stats.sent, 0, context);
            assert.equal(dialler.queued(dialled), 1, `the message stays queued: ${context}`);
          }
        } finally {
          await dialler.close();
          for (const socket of sockets) socket.destroy();
          await new Promise<void>((resolve) => server.close(() => resolve()));
        }
      }),
      16,
    );
  });

  it('afterwards the listener still accepts a legitimate peer and delivers its message', { timeout: 10_000 }, async () => {
    const peer = new TcpTransport({
      clusterId: CLUSTER,
      nodeId: 2,
      listen: { host: HOST, port: 0 },
      peers: [{ id: SELF, host: HOST, port: listener.port }],
      tls: { ca: ca.cert, ...thisCaCerts.get(2)! },
      log: () => undefined,
    });
    try {
      await peer.start(() => undefined);
      const before = delivered.length;
      const message = heartbeat(2, SELF);
      peer.send(message);
      assert.ok(await waitUntil(() => delivered.length > before, ACT_BOUND_MS), 'the legitimate message was not delivered');
      assert.deepEqual(delivered.slice(before), [message]);
      assert.equal(peer.stats.tls.dialFailures, 0);
    } finally {
      await peer.close();
    }
  });
});

function minus(a: Moved, b: Moved): Moved {
  const out: Record<string, number> = {};
  for (const k of Object.keys(a) as (keyof Moved)[]) out[k] = a[k] - b[k];
  return out as unknown as Moved;
}

function decodes(f: () => unknown): boolean {
  try {
    f();
    return true;
  } catch {
    return false;
  }
}
