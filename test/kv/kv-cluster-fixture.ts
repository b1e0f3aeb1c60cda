/**
 * A KV cluster in this process, for tests: KvServers with FileStorage in a temporary directory,
 * TcpTransport and HTTP on 127.0.0.1 (ports from freeLoopbackPorts), restartable on their
 * directories and ports, with bounded waits. Shared by the KV HTTP tests and the hostile-peer test;
 * what differs between them (size, members started, KvServer options) is a parameter. Members can
 * join later (join(): a new KvServer that starts as a learner of the founding voters, for the
 * membership tests); every member restarts with the configuration it first started with, or,
 * with `fromIdentity`, without peers (read from its data directory).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeId } from '../../src/core/messages.js';
import { KvServer, type KvPeer, type KvServerOptions } from '../../src/kv/server.js';
import { freeLoopbackPorts } from '../../src/testing/ports.js';

/** Fast elections, still steady on two loaded cores. */
export const TIMING = { heartbeatMs: 50, electionTimeoutMinMs: 300, electionTimeoutMaxMs: 600 };

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` every 20 ms until it gives a value (not undefined, null or false); throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  context: () => string = () => '',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${context()}`);
    await sleep(20);
  }
}

/** An HTTP answer with its JSON body. */
export interface Raw {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

/** One request, redirects not followed, bounded at 10 s; the answer must be JSON. */
export async function raw(url: string, init: RequestInit = {}): Promise<Raw> {
  const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(10_000), ...init });
  const text = await response.text();
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/, `${url}: ${text}`);
  return { status: response.status, headers: response.headers, json: JSON.parse(text) as Record<string, unknown> };
}

/**
 * Opens a raw connection to 127.0.0.1:port and sends `head` once connected; `response(until)`
 * resolves with everything received once it matches `until` (at most 5 s, or the socket closing).
 * For requests a fetch cannot make: a body sent later, or never.
 */
export function rawExchange(port: number, head: string): { socket: Socket; response: (until: RegExp) => Promise<string> } {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.on('error', () => undefined);
  socket.on('data', (data: Buffer) => (received += data.toString('latin1')));
  socket.on('connect', () => socket.write(head));
  return {
    socket,
    response: async (until) => {
      const deadline = Date.now() + 5_000;
      while (!until.test(received)) {
        if (Date.now() > deadline || socket.destroyed) throw new Error(`no response matching ${until} (destroyed: ${socket.destroyed}); got ${JSON.stringify(received.slice(0, 300))}`);
        await sleep(5);
      }
      return received;
    },
  };
}

export interface KvClusterOptions {
  /** Members (default 3). */
  readonly size?: number;
  /** How many of them start with the cluster, from node 0 on (default all). */
  readonly running?: number;
  /** The temporary directory's name prefix (default 'tsraft-kv-'). */
  readonly prefix?: string;
  /** KvServer options over the defaults below (for every member, each time it starts). */
  readonly server?: Partial<KvServerOptions>;
  /** stop() goes on past a member whose stop() fails, and does not report it (default false: it reports the first). */
  readonly ignoreStopErrors?: boolean;
}

/** What a subclass's constructor must take, so that start() builds one of its kind. */
export type KvClusterClass<C extends KvCluster> = new (root: string, peers: KvPeer[], options: KvClusterOptions) => C;

export class KvCluster {
  readonly servers: (KvServer | null)[];
  /** The fatal error each node logged, if one stopped on one. */
  readonly fatal = new Map<NodeId, string>();
  /** The members the cluster was started with: every founding member's `peers`. */
  readonly founders: readonly KvPeer[];
  /** Members that joined later (join()): each starts as a learner of the founders. */
  private readonly joiners = new Set<NodeId>();

  /** Use KvCluster.start (or Subclass.start). */
  constructor(
    readonly root: string,
    readonly peers: KvPeer[],
    private readonly options: KvClusterOptions,
  ) {
    this.servers = peers.map(() => null);
    this.founders = [...peers];
  }

  /** Picks free ports, makes the temporary directory and starts the members; cleans up if one fails to start. */
  static async start<C extends KvCluster>(this: KvClusterClass<C>, options: KvClusterOptions = {}): Promise<C> {
    const size = options.size ?? 3;
    const ports = await freeLoopbackPorts(2 * size);
    const peers = Array.from({ length: size }, (_, id) => ({ id, raftHost: '127.0.0.1', raftPort: ports[id]!, httpUrl: `http://127.0.0.1:${ports[size + id]!}` }));
    const cluster = new this(mkdtempSync(join(tmpdir(), options.prefix ?? 'tsraft-kv-')), peers, options);
    try {
      for (let id = 0; id < (options.running ?? size); id++) await cluster.startServer(id);
    } catch (error) {
      await cluster.stop().catch(() => undefined);
      throw error;
    }
    return cluster;
  }

  get members(): NodeId[] {
    return this.peers.map((p) => p.id);
  }

  url(id: NodeId): string {
    return this.peers[id]!.httpUrl;
  }

  raftPort(id: NodeId): number {
    return this.peers[id]!.raftPort;
  }

  /**
   * Starts a new member (the next id, on free ports) the way a node joins a running cluster: a
   * learner of the founding voters (its `peers`), with itself as its one learner. It is not part of
   * the configuration until the leader adds it (POST /v1/members).
   */
  async join(): Promise<{ id: NodeId; peer: KvPeer; server: KvServer }> {
    const [raftPort, httpPort] = await freeLoopbackPorts(2);
    const id = this.peers.length;
    const peer: KvPeer = { id, raftHost: '127.0.0.1', raftPort: raftPort!, httpUrl: `http://127.0.0.1:${httpPort!}` };
    this.peers.push(peer);
    this.servers.push(null);
    this.joiners.add(id);
    return { id, peer, server: await this.startServer(id) };
  }

  /**
   * Starts member `id` with the configuration it first started with (a founder: every founder; a
   * joiner: the founders, itself a learner), or with `fromIdentity` without peers at all.
   */
  async startServer(id: NodeId, options: { readonly fromIdentity?: boolean } = {}): Promise<KvServer> {
    const starting = options.fromIdentity === true ? {} : this.joiners.has(id) ? { peers: this.founders, learners: [this.peers[id]!] } : { peers: this.founders };
    const server = await KvServer.start({
      id,
      ...starting,
      dataDir: join(this.root, `node-${id}`),
      httpListen: { host: '127.0.0.1', port: Number(new URL(this.url(id)).port) },
      timing: TIMING,
      // Real files, no fsync: the disk is not under test here, and the tests stay fast and steady on
      // a loaded machine (restarts still read back everything: the process, not the machine, stops).
      fsync: false,
      requestTimeoutMs: 2_000,
      // Transport chatter (peers going away, connections closed) is expected; anything else is worth seeing.
      log: (line) => {
        if (line.startsWith('transport: ') || line.startsWith('raft: ')) return; // elections and role changes too
        if (line.startsWith('raft node stopped on a fatal error')) this.fatal.set(id, line.split('\n')[0]!);
        process.stderr.write(`kv node ${id}: ${line}\n`);
      },
      ...this.options.server,
    });
    this.servers[id] = server;
    return server;
  }

  async stopServer(id: NodeId): Promise<void> {
    const server = this.servers[id];
    this.servers[id] = null;
    await server?.stop();
  }

  async restart(id: NodeId, options: { readonly fromIdentity?: boolean } = {}): Promise<void> {
    await this.stopServer(id);
    await this.startServer(id, options);
  }

  /** The running server of node `id` (an assertion if it is not running). */
  server(id: NodeId): KvServer {
    const server = this.servers[id];
    assert.ok(server !== null && server !== undefined, `node ${id} is not running`);
    return server;
  }

  /** The leader's id once one is up and has applied its log (so it has committed in its term). */
  leader(timeoutMs = 10_000): Promise<NodeId> {
    return waitFor(
      'a leader',
      timeoutMs,
      () => {
        for (const server of this.servers) {
          const s = server?.status();
          if (s !== undefined && !s.stopped && s.role === 'leader' && s.appliedIndex >= s.lastIndex) return s.id;
        }
        return undefined;
      },
      () => this.describe(),
    );
  }

  /** Every member's status, for failure messages. */
  describe(): string {
    return this.servers
      .map((server, id) => {
        if (server === null) return `node ${id}: not running`;
        const s = server.status();
        const fatal = this.fatal.has(id) ? ` (${this.fatal.get(id)})` : '';
        const peers = s.peers.map((p) => `${p.id}:${p.match}/${p.next}/${p.state}`).join(' ');
        return `node ${id}: ${s.role} term ${s.term} leader ${s.leaderId} commit ${s.commitIndex} applied ${s.appliedIndex} last ${s.lastIndex} snapshot ${s.snapshotIndex} transfer ${s.transferTarget} stopped ${s.stopped}${fatal} [${peers}]`;
      })
      .join('\n');
  }

  /** Stops every member and removes the directory. */
  async stop(): Promise<void> {
    let failure: { error: unknown } | undefined;
    for (let id = 0; id < this.servers.length; id++) {
      await this.stopServer(id).catch((error: unknown) => {
        failure ??= { error };
      });
    }
    rmSync(this.root, { recursive: true, force: true });
    if (failure !== undefined && this.options.ignoreStopErrors !== true) throw failure.error;
  }
}

/**
 * Reads Server-Sent Events from `url` (a watch) until `until` says stop, at most 10 s; a non-200
 * answer comes back with its body instead.
 */
export async function readSse(url: string, until: (messages: { event: string; data: Record<string, unknown> }[]) => boolean): Promise<{ status: number; messages: { event: string; data: Record<string, unknown> }[]; body: string }> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 10_000);
  const response = await fetch(url, { signal: abort.signal });
  const messages: { event: string; data: Record<string, unknown> }[] = [];
  if (response.status !== 200) {
    clearTimeout(timer);
    return { status: response.status, messages, body: await response.text() };
  }
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (data !== undefined) messages.push({ event, data: JSON.parse(data) as Record<string, unknown> });
      }
      if (until(messages)) break;
    }
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return { status: 200, messages, body: '' };
}
