/**
 * An operator at work, in one world in three: during the faults it hands leadership from the
 * current leader to a random member (RaftNode.transferLeadership) or stops the leader gracefully
 * (RaftNode.stop(), which hands over first, as on SIGTERM) and starts it again shortly after.
 * Transfers race with every other fault, so an election started by TimeoutNow must keep every
 * safety property, and the clients' history stays linearizable.
 */
import type { NodeId } from '../../core/messages.js';
import type { Prng } from '../prng.js';
import type { Timer } from '../scheduler.js';
import type { ExplorerNode } from './explorer-node.js';

/** What the operator needs of its world (the World satisfies it). */
export interface OperatorHost {
  readonly nodes: readonly ExplorerNode[];
  readonly isHealed: boolean;
  readonly scheduler: { schedule(delayMs: number, callback: () => void): Timer };
  leaderId(): NodeId;
  restart(id: NodeId): void;
  noteTopologyChanged(disruptive: boolean): void;
  trace(line: string): void;
}

export class Operator {
  constructor(
    private readonly host: OperatorHost,
    private readonly prng: Prng,
  ) {}

  start(): void {
    this.host.scheduler.schedule(200 + this.prng.nextInt(3000), () => {
      if (this.host.isHealed) return;
      this.act();
      this.start();
    });
  }

  private act(): void {
    const leader = this.host.leaderId();
    if (leader === -1) return;
    const node = this.host.nodes[leader]!;
    const n = this.host.nodes.length;
    if (this.prng.chance(2, 3)) {
      const target = (leader + 1 + this.prng.nextInt(n - 1)) % n;
      this.host.trace(`operator: n${leader} hands leadership to n${target}`);
      node.node?.transferLeadership(target).then(
        (id) => this.host.trace(`operator: n${leader} sees n${id} lead`),
        (error: Error) => this.host.trace(`operator: transfer from n${leader} failed: ${error.message}`),
      );
      return;
    }
    const downMs = 10 + this.prng.nextInt(500);
    this.host.trace(`operator: stops leader n${leader} gracefully, back in ${downMs} ms`);
    void node.stopGracefully().then(() => {
      this.host.trace(`operator: n${leader} stopped`);
      this.host.noteTopologyChanged(true);
      this.host.scheduler.schedule(downMs, () => this.host.restart(leader));
    });
  }
}
