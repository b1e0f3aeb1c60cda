/**
 * What the TCP and TLS transport tests share: transports on loopback that record what they
 * receive and log, bounded polls, and a message of every type. Not a test file itself.
 */
import assert from 'node:assert/strict';
import type { AppendEntries, Message, NodeId } from '../../src/core/messages.js';
import { TcpTransport, type TcpTransportOptions } from '../../src/transport/tcp.js';
import type { PeerAddress } from '../../src/transport/transport.js';

export const HOST = '127.0.0.1';
export const CLUSTER = 'prod';

export interface Node {
  readonly t: TcpTransport;
  readonly got: Message[];
  readonly logs: string[];
}

export type NodeOptions = Omit<TcpTransportOptions, 'clusterId' | 'listen' | 'log'> & { clusterId?: string; port?: number };

/** Starts a transport that records what it receives and logs. */
export async function startNode(opts: NodeOptions, all: Node[]): Promise<Node> {
  const got: Message[] = [];
  const logs: string[] = [];
  const { port, clusterId, ...rest } = opts;
  const t = new TcpTransport({
    ...rest,
    clusterId: clusterId ?? CLUSTER,
    listen: { host: HOST, port: port ?? 0 },
    log: (line) => logs.push(line),
  });
  const node = { t, got, logs };
  all.push(node);
  await t.start((m) => got.push(m));
  return node;
}

export async function closeAll(all: Node[]): Promise<void> {
  await Promise.all(all.map((n) => n.t.close()));
}

export const peer = (id: NodeId, port: number): PeerAddress => ({ id, host: HOST, port });
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `cond` every 5 ms for at most `ms`; fails with `what` if it never holds. */
export async function waitFor(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

export function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

export function ae(from: NodeId, to: NodeId, leaderCommit: number, commandBytes = 3): AppendEntries {
  return {
    type: 'AppendEntries',
    from,
    to,
    term: 7,
    prevLogIndex: 4,
    prevLogTerm: 6,
    entries: [{ index: 5, term: 7, command: bytes(commandBytes, leaderCommit) }],
    leaderCommit,
    readContext: 0,
  };
}

export function chunk(from: NodeId, to: NodeId, offset: number, size: number, done = false): Message {
  return { type: 'InstallSnapshot', from, to, term: 7, lastIncludedIndex: 90, lastIncludedTerm: 6, snapshotBytes: done ? offset + size : offset + size + 1, checksum: 42, offset, data: bytes(size, offset), done, membership: { voters: [0, 1, 2], outgoing: [], learners: [], addresses: [] } };
}

/** One message of every type from `from` to `to`. */
export function everyType(from: NodeId, to: NodeId): Message[] {
  return [
    { type: 'RequestVote', from, to, term: 3, lastLogIndex: 10, lastLogTerm: 2 },
    { type: 'RequestVoteReply', from, to, term: 3, voteGranted: true },
    { type: 'PreVote', from, to, term: 4, lastLogIndex: 2 ** 40, lastLogTerm: 3 },
    { type: 'PreVoteReply', from, to, term: 4, voteGranted: false },
    {
      type: 'AppendEntries',
      from,
      to,
      term: 5,
      prevLogIndex: 9,
      prevLogTerm: 4,
      entries: [
        { index: 10, term: 5, command: bytes(10, 1) },
        { index: 11, term: 5, command: new Uint8Array(0) },
        { index: 12, term: 5, command: bytes(70_000, 2) },
      ],
      leaderCommit: 9,
      readContext: 3,
    },
    { type: 'AppendEntries', from, to, term: 5, prevLogIndex: 12, prevLogTerm: 5, entries: [], leaderCommit: 12, readContext: 0 },
    {
      type: 'AppendEntriesReply',
      from,
      to,
      term: 5,
      success: false,
      prevLogIndex: 9,
      matchIndex: 0,
      conflictTerm: 3,
      conflictIndex: 6,
      lastLogIndex: 8,
      readContext: 3,
    },
    chunk(from, to, 0, 1000),
    chunk(from, to, 1000, 17, true),
    { type: 'InstallSnapshotReply', from, to, term: 5, lastIncludedIndex: 90, nextOffset: 1017, installed: true },
  ];
}
