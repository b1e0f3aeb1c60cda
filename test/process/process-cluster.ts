/**
 * A cluster of tsraft nodes as separate OS processes (test/process/raft-process.ts), with a load
 * generator and the check that every acknowledged entry is on every node in the same order. Used
 * by the short process test in `npm test` and by the longer `npm run soak:process`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeLoopbackPorts } from '../../src/testing/local-cluster.js';

const ENTRY = fileURLToPath(new URL('./raft-process.js', import.meta.url));

type Reply = { op: string; id?: number; [key: string]: unknown };

class NodeProcess {
  child: ChildProcess | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: Reply) => void>();
  private readonly waitingOp = new Map<string, ((reply: Reply) => void)[]>();

  constructor(
    readonly id: number,
    private readonly ports: number[],
    readonly dir: string,
  ) {}

  async start(): Promise<void> {
    const child = fork(ENTRY, [String(this.id), this.ports.join(','), this.dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child = child;
    child.on('message', (reply: Reply) => {
      if (reply.op === 'proposed' && reply.id !== undefined) {
        this.waiting.get(reply.id)?.(reply);
        this.waiting.delete(reply.id);
        return;
      }
      this.waitingOp.get(reply.op)?.shift()?.(reply);
    });
    child.on('exit', () => {
      if (this.child === child) this.child = null;
      for (const resolve of this.waiting.values()) resolve({ op: 'proposed', error: 'ProcessDied' });
      this.waiting.clear();
      for (const queue of this.waitingOp.values()) for (const resolve of queue.splice(0)) resolve({ op: 'dead' });
    });
    await this.ask({ op: 'ready-wait' }, 'ready');
  }

  get alive(): boolean {
    return this.child !== null;
  }

  /** Sends a request and waits for the reply of `op` (the IPC channel keeps order per op). */
  ask(request: Record<string, unknown>, op: string): Promise<Reply> {
    return new Promise((resolve) => {
      if (this.child === null) {
        resolve({ op: 'dead' });
        return;
      }
      const queue = this.waitingOp.get(op) ?? [];
      queue.push(resolve);
      this.waitingOp.set(op, queue);
      if (request.op !== 'ready-wait') this.child.send(request);
    });
  }

  propose(command: string): Promise<Reply> {
    return new Promise((resolve) => {
      if (this.child === null) {
        resolve({ op: 'proposed', error: 'ProcessDied' });
        return;
      }
      const id = this.nextId++;
      this.waiting.set(id, resolve);
      this.child.send({ op: 'propose', id, command });
    });
  }

  kill9(): void {
    this.child?.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
}

export interface LoadReport {
  readonly acknowledged: number;
  readonly kills: number;
  readonly maxIndex: number;
  readonly problems: string[];
}

export class ProcessCluster {
  readonly nodes: NodeProcess[];
  private readonly root: string;

  private constructor(ports: number[], root: string) {
    this.root = root;
    this.nodes = ports.map((_, i) => new NodeProcess(i, ports, join(root, `node-${i}`)));
  }

  static async start(size: number): Promise<ProcessCluster> {
    const cluster = new ProcessCluster(await freeLoopbackPorts(size), mkdtempSync(join(tmpdir(), 'tsraft-process-')));
    await Promise.all(cluster.nodes.map((n) => n.start()));
    return cluster;
  }

  async leader(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const node of this.nodes) {
        const reply = await node.ask({ op: 'status' }, 'status');
        const status = reply.status as { role?: string } | undefined;
        if (status?.role === 'leader') return node.id;
      }
      await sleep(50);
    }
    throw new Error(`no leader within ${timeoutMs} ms`);
  }

  /**
   * Proposes from `concurrency` clients for `seconds`, kill -9-ing a node (the leader every other
   * time) every `killEveryMs` and restarting it `downMs` later, then waits for every node to apply
   * everything acknowledged and checks the logs.
   */
  async runLoad(options: { seconds: number; concurrency: number; killEveryMs: number; downMs: number }): Promise<LoadReport> {
    const acknowledged = new Map<number, string>();
    const problems: string[] = [];
    let believedLeader = await this.leader();
    let counter = 0;
    const end = Date.now() + options.seconds * 1000;
    const client = async (): Promise<void> => {
      while (Date.now() < end) {
        const command = `cmd-${counter++}`;
        const target = this.nodes[believedLeader]!;
        const reply = await target.propose(command);
        if (typeof reply.index === 'number') {
          const existing = acknowledged.get(reply.index);
          if (existing !== undefined) problems.push(`index ${reply.index} acknowledged twice: ${existing} and ${command}`);
          acknowledged.set(reply.index, command);
        } else if (typeof reply.leaderId === 'number') {
          believedLeader = reply.leaderId;
        } else {
          await sleep(20);
          believedLeader = (believedLeader + 1) % this.nodes.length;
        }
      }
    };
    let kills = 0;
    const chaos = async (): Promise<void> => {
      while (Date.now() + options.killEveryMs < end) {
        await sleep(options.killEveryMs);
        const victim = kills % 2 === 0 ? believedLeader : (believedLeader + 1 + (kills % (this.nodes.length - 1))) % this.nodes.length;
        this.nodes[victim]!.kill9();
        kills++;
        await sleep(options.downMs);
        await this.nodes[victim]!.start();
      }
    };
    await Promise.all([chaos(), ...Array.from({ length: options.concurrency }, () => client())]);
    const maxIndex = Math.max(0, ...acknowledged.keys());
    problems.push(...(await this.verify(acknowledged, maxIndex)));
    return { acknowledged: acknowledged.size, kills, maxIndex, problems };
  }

  /** Every acknowledged entry is applied on every node at its index; all logs agree. */
  private async verify(acknowledged: Map<number, string>, maxIndex: number): Promise<string[]> {
    const deadline = Date.now() + 20_000;
    let logs: Map<number, string>[] = [];
    for (;;) {
      logs = [];
      for (const node of this.nodes) {
        const reply = await node.ask({ op: 'log', from: 1 }, 'log');
        logs.push(new Map((reply.entries as [number, string][] | undefined) ?? []));
      }
      if (logs.every((log) => log.size >= maxIndex) || Date.now() > deadline) break;
      await sleep(100);
    }
    const problems: string[] = [];
    logs.forEach((log, node) => {
      if (log.size < maxIndex) problems.push(`node ${node} applied only ${log.size} of ${maxIndex} entries`);
      for (let index = 1; index <= log.size; index++) {
        if (!log.has(index)) problems.push(`node ${node} has a gap at index ${index}`);
      }
    });
    for (const [index, command] of acknowledged) {
      logs.forEach((log, node) => {
        if (log.get(index) !== command) problems.push(`node ${node} has ${log.get(index) ?? 'nothing'} at index ${index}, acknowledged ${command}`);
      });
    }
    const first = logs[0]!;
    logs.forEach((log, node) => {
      for (const [index, command] of log) {
        if (first.has(index) && first.get(index) !== command) problems.push(`nodes 0 and ${node} disagree at index ${index}`);
      }
    });
    return problems.slice(0, 20);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
    rmSync(this.root, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
