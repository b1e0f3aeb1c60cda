import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry, NodeId } from '../core/messages.js';
import { RaftNode, type RaftNodeTiming } from '../runtime/node.js';
import { FileStorage } from '../storage/file-storage.js';
import { TcpTransport } from '../transport/tcp.js';
import { freeLoopbackPorts } from './ports.js';

export interface LocalClusterOptions {
  readonly size: number;
  readonly timing?: RaftNodeTiming;
  /** fsync every durable write (default true). */
  readonly fsync?: boolean;
  /** Called for every entry applied on node `id`. */
  readonly onApply?: (id: NodeId, entry: Entry) => void;
}

/**
 * A cluster of RaftNodes in this process, each with its own FileStorage in a temporary directory
 * and a TcpTransport on 127.0.0.1: real disks and real sockets, one event loop. For tests and
 * benchmarks; nodes can be stopped and restarted on the same directory and port.
 */
export class LocalCluster {
  readonly nodes: (RaftNode | null)[];
  readonly root: string;
  private readonly ports: number[];
  private readonly options: LocalClusterOptions;

  private constructor(options: LocalClusterOptions, ports: number[]) {
    this.options = options;
    this.ports = ports;
    this.root = mkdtempSync(join(tmpdir(), 'tsraft-cluster-'));
    this.nodes = new Array<RaftNode | null>(options.size).fill(null);
  }

  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const cluster = new LocalCluster(options, await freeLoopbackPorts(options.size));
    for (let id = 0; id < options.size; id++) await cluster.startNode(id);
    return cluster;
  }

  dir(id: NodeId): string {
    return join(this.root, `node-${id}`);
  }

  async startNode(id: NodeId): Promise<RaftNode> {
    const peers = this.ports.map((port, i) => ({ id: i, host: '127.0.0.1', port }));
    const onApply = this.options.onApply;
    const node = await RaftNode.start({
      id,
      peers: peers.map((p) => p.id),
      storage: new FileStorage({ dir: this.dir(id), fsync: this.options.fsync ?? true }),
      transport: new TcpTransport({
        clusterId: 'local',
        nodeId: id,
        listen: { host: '127.0.0.1', port: this.ports[id]! },
        peers: peers.filter((p) => p.id !== id),
      }),
      ...(onApply === undefined ? {} : { stateMachine: { apply: (entry: Entry) => onApply(id, entry), restore: () => undefined } }),
      ...(this.options.timing === undefined ? {} : { timing: this.options.timing }),
    });
    this.nodes[id] = node;
    return node;
  }

  async stopNode(id: NodeId): Promise<void> {
    const node = this.nodes[id];
    this.nodes[id] = null;
    await node?.stop();
  }

  /** The current leader's id, waiting up to `timeoutMs` for one to appear. */
  async waitForLeader(timeoutMs = 10_000): Promise<NodeId> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const node of this.nodes) if (node !== null && node.status().role === 'leader') return node.id;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    throw new Error(`no leader within ${timeoutMs} ms`);
  }

  async stop(): Promise<void> {
    for (let id = 0; id < this.nodes.length; id++) await this.stopNode(id);
    rmSync(this.root, { recursive: true, force: true });
  }
}
