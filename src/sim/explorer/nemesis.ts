/**
 * The explorer's fault injector: at random moments (the world's fault pace) it partitions the
 * network, cuts links one way, makes a member deaf (it sends but hears nothing), crashes members
 * (also right after a write became durable, before acting on it), fails an fsync, and restarts
 * members, sometimes a leader so quickly that messages of its previous incarnation are still in
 * flight. Every draw comes from its own PRNG stream, so a seed replays exactly.
 */
import type { NodeId } from '../../core/messages.js';
import { encodeKvCommand } from '../../kv/commands.js';
import type { Prng } from '../prng.js';
import type { Timer } from '../scheduler.js';
import type { World } from './world.js';

/** The key the nemesis writes to (never read, so never part of the checked history). */
const ALONE_KEY = new TextEncoder().encode('nemesis');

export class Nemesis {
  private timer: Timer | null = null;

  constructor(
    private readonly world: World,
    private readonly prng: Prng,
  ) {}

  start(): void {
    this.schedule();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  private schedule(): void {
    this.timer = this.world.scheduler.schedule(1 + this.prng.nextInt(this.world.shape.faultGapMaxMs), () => {
      if (this.world.isHealed) return;
      if (this.world.shape.faultMix === 'leader-churn') this.leaderChurn();
      else this.mixed();
      this.world.noteTopologyChanged();
      this.schedule();
    });
  }

  private mixed(): void {
    const world = this.world;
    // Every node of the world, spares included (a spare is a would-be joiner, a learner, or a voter).
    const n = world.nodes.length;
    const roll = this.prng.nextInt(100);
    if (roll < 12) {
      this.partition(world.peerIds.map(() => this.prng.nextInt(2)));
    } else if (roll < 20) {
      // A leader stranded with a minority: it keeps believing it leads while the rest move on.
      const leader = world.leaderId();
      if (leader === -1) return;
      const group = new Set([leader]);
      while (group.size < Math.floor((n - 1) / 2)) group.add(this.prng.nextInt(n));
      this.partition(world.peerIds.map((id) => (group.has(id) ? 0 : 1)));
    } else if (roll < 28) {
      const from = this.prng.nextInt(n);
      const to = this.prng.nextInt(n);
      if (from === to) return;
      world.network.cut(from, to);
      world.trace(`link ${from}->${to} cut (one way)`);
    } else if (roll < 32) {
      // Usually the leader: it can still send heartbeats, but hears no answers and no votes.
      const victim = this.leaderOr(this.prng.nextInt(n));
      world.network.deafen(victim);
      world.trace(`n${victim} deaf: it sends but receives nothing`);
    } else if (roll < 46) {
      world.network.healLinks();
      world.trace('all links up');
    } else if (roll < 54) {
      world.crash(this.prng.nextInt(n));
    } else if (roll < 64) {
      // Figure 8 of the paper: leaders dying right after they replicated part of their log.
      const leader = world.leaderId();
      if (leader !== -1) world.crash(leader);
    } else if (roll < 67) {
      this.crashAfterNextSync(this.leaderOr(this.prng.nextInt(n)));
    } else if (roll < 70) {
      this.appendAloneThenDie();
    } else if (roll < 74) {
      this.failNextSync(this.prng.nextInt(n));
    } else if (roll < 80) {
      this.quickRestart();
    } else {
      world.restart(this.prng.nextInt(n));
    }
  }

  private leaderChurn(): void {
    const world = this.world;
    const roll = this.prng.nextInt(100);
    const leader = world.leaderId();
    if (roll < 30) {
      if (leader !== -1) world.crash(leader);
    } else if (roll < 40) {
      // The leader makes its next write durable (usually a client's entry) and dies soon after.
      if (leader !== -1) this.crashAfterNextSync(leader);
    } else if (roll < 55) {
      this.appendAloneThenDie();
    } else if (roll < 70) {
      this.quickRestart();
    } else {
      world.restart(this.prng.nextInt(world.nodes.length));
    }
  }

  /**
   * Figure 8 of the paper: the leader appends entries that nobody else hears (its links out are
   * cut), makes them durable and dies. They must never count as committed, however the later
   * elections go. The writes are session-less puts to a key nobody reads, so they need no history.
   */
  private appendAloneThenDie(): void {
    const world = this.world;
    const leader = world.leaderId();
    const replica = leader === -1 ? null : world.nodes[leader]!.replica;
    if (replica === null) return;
    // Usually nobody hears them; sometimes one follower does (Figure 8's partial replication).
    const hearer = this.prng.chance(1, 2) ? this.prng.nextInt(world.nodes.length) : leader;
    for (const peer of world.peerIds) if (peer !== leader && peer !== hearer) world.network.cut(leader, peer);
    const count = 1 + this.prng.nextInt(3);
    for (let i = 0; i < count; i++) {
      const value = new TextEncoder().encode(`alone-${world.now.toFixed(0)}-${i}`);
      replica.commit(encodeKvCommand({ op: 'put', clientId: '', seq: 0, key: ALONE_KEY, value }), 1000).catch(() => undefined);
    }
    this.crashAfterNextSync(leader);
    world.trace(`n${leader} appends ${count} entries nobody hears, and dies once they are durable`);
    // Its links come back a little later, as after a real outage.
    world.scheduler.schedule(200 + this.prng.nextInt(1000), () => {
      if (!world.isHealed) {
        world.network.healLinks();
        world.noteTopologyChanged();
      }
    });
  }

  /** The leader dies and is back within a few hundred ms, while its old messages are still in flight. */
  private quickRestart(): void {
    const leader = this.world.leaderId();
    if (leader === -1) return;
    this.world.crash(leader);
    const delay = 10 + this.prng.nextInt(300);
    this.world.trace(`n${leader} will restart in ${delay} ms`);
    this.world.scheduler.schedule(delay, () => {
      if (!this.world.isHealed) this.world.restart(leader);
    });
  }

  private crashAfterNextSync(id: NodeId): void {
    const node = this.world.nodes[id]!;
    if (!node.alive) return;
    node.crashAfterNextSync = true;
    this.world.trace(`n${id} will crash right after its next durable write`);
  }

  private failNextSync(id: NodeId): void {
    const node = this.world.nodes[id]!;
    if (!node.alive) return;
    node.disk.failNextSync();
    this.world.stats.failedSyncs++;
    this.world.trace(`n${id}'s next fsync will fail`);
  }

  private leaderOr(fallback: NodeId): NodeId {
    const leader = this.world.leaderId();
    return leader !== -1 && this.prng.chance(2, 3) ? leader : fallback;
  }

  private partition(groups: readonly number[]): void {
    this.world.network.healLinks();
    this.world.network.partition(groups);
    this.world.trace(`partition ${groups.map((g, id) => `n${id}:${g}`).join(' ')}`);
  }
}
