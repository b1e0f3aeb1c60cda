/**
 * What `tsraft start`'s dashboard controls do to the cluster (served by start-controls.ts): the
 * supervisor (start.ts) owns the node processes and hands this class the access it needs. A node
 * stopped or killed from here is held down (the supervisor does not restart it) until started from
 * here; a paused one is not watched (the watchdog would kill it) until resumed.
 */
import type { ChildProcess } from 'node:child_process';
import type { ClusterHttp } from '../kv/client-http.js';
import type { PeerSpec } from './common.js';
import { ControlError, type ControlledCluster, type ControlledNode, type NodeAction } from './start-controls.js';
import type { Watchdog, WatchedChild } from './watchdog.js';

/** The part of a supervised node the controls read and change. */
export interface SupervisedMember {
  readonly spec: PeerSpec;
  readonly child: ChildProcess | null;
  readonly pid: number | undefined;
  restarts: number[];
  gaveUp: boolean;
  /** Stopped or killed from the dashboard: not restarted until started from there. */
  held: boolean;
  /** SIGSTOPped from the dashboard (and not watched meanwhile). */
  paused: boolean;
  /** What the watchdog watches for the current child. */
  readonly watched: WatchedChild | null;
}

/** What the supervisor lets the controls use. */
export interface SupervisorAccess {
  readonly members: readonly SupervisedMember[];
  readonly watchdog: Watchdog | null;
  /** How the supervisor reaches the nodes' HTTP APIs (its CA and admin token). */
  readonly http: ClusterHttp;
  /** The leader the supervisor last saw. */
  leaderId(): number | undefined;
  stopping(): boolean;
  spawn(member: SupervisedMember): void;
  say(line: string): void;
}

export class SupervisorControls implements ControlledCluster {
  /** Network cuts made from the dashboard, as "low-high" node id pairs. */
  private readonly networkCuts = new Set<string>();

  constructor(private readonly s: SupervisorAccess) {}

  /** The nodes as the dashboard's controls list them. */
  nodes(): readonly ControlledNode[] {
    return this.s.members.map((m) => ({
      id: m.spec.id,
      pid: m.child === null ? null : (m.pid ?? null),
      state: m.child !== null ? (m.paused ? 'paused' : 'running') : m.held ? 'held' : 'down',
    }));
  }

  cuts(): readonly (readonly [number, number])[] {
    return [...this.networkCuts].map((pair) => pair.split('-').map(Number) as [number, number]);
  }

  /**
   * Cuts or heals the network between a and b through both nodes' fault switches (each drops the
   * other's messages both ways, so one side that answers is enough; a node restarted later starts
   * healed, and the other side keeps the cut).
   */
  async setCut(a: number, b: number, cut: boolean): Promise<string> {
    const [low, high] = a < b ? [a, b] : [b, a];
    if (!this.s.members.some((m) => m.spec.id === low) || !this.s.members.some((m) => m.spec.id === high)) throw new ControlError(404, `no node ${low} or ${high} in this cluster`);
    const key = `${low}-${high}`;
    if (cut) this.networkCuts.add(key);
    else this.networkCuts.delete(key);
    const applied: number[] = [];
    for (const id of [low, high]) {
      const member = this.s.members.find((m) => m.spec.id === id)!;
      const others = this.cuts().flatMap(([x, y]) => (x === id ? [y] : y === id ? [x] : []));
      try {
        const response = await this.s.http.fetch(`${member.spec.httpUrl}/v1/dev/faults?cut=${others.join(',')}`, { method: 'POST', signal: AbortSignal.timeout(2000) });
        await response.body?.cancel();
        if (response.ok) applied.push(id);
      } catch {
        // down or paused: the other side's switch is enough
      }
    }
    if (applied.length === 0) {
      if (cut) this.networkCuts.delete(key);
      else this.networkCuts.add(key);
      throw new ControlError(409, `neither node ${low} nor node ${high} answered: nothing changed`);
    }
    return `network between node ${low} and node ${high} ${cut ? 'cut' : 'healed'} (switch set on node ${applied.join(' and node ')})`;
  }

  /** One control from the dashboard on node `id` (start-controls.ts). */
  async act(id: number, action: NodeAction): Promise<string> {
    const member = this.s.members.find((m) => m.spec.id === id);
    if (member === undefined) throw new ControlError(404, `no node ${id} in this cluster`);
    if (this.s.stopping()) throw new ControlError(409, 'the cluster is stopping');
    const child = member.child;
    if (action === 'start') {
      if (child !== null) throw new ControlError(409, `node ${id} is running`);
      member.held = false;
      member.gaveUp = false;
      member.restarts = [];
      this.s.spawn(member);
      return `node ${id} started (pid ${member.pid ?? '?'})`;
    }
    if (child === null) throw new ControlError(409, `node ${id} is not running`);
    if (action === 'pause' || action === 'resume') {
      if ((action === 'pause') === member.paused) throw new ControlError(409, `node ${id} is ${member.paused ? 'already paused' : 'not paused'}`);
      child.kill(action === 'pause' ? 'SIGSTOP' : 'SIGCONT');
      member.paused = action === 'pause';
      // A paused node answers no /healthz: the watchdog would kill it; it is watched again (with a fresh grace) once resumed.
      if (member.watched !== null) {
        if (member.paused) this.s.watchdog?.release(id, member.watched);
        else this.s.watchdog?.watch(member.watched);
      }
      return `node ${id} (pid ${member.pid ?? '?'}) ${member.paused ? 'paused (SIGSTOP)' : 'resumed (SIGCONT)'}`;
    }
    member.held = true;
    // A paused process cannot handle SIGTERM until it runs again.
    if (member.paused) child.kill('SIGCONT');
    child.kill(action === 'kill' ? 'SIGKILL' : 'SIGTERM');
    return `node ${id} (pid ${member.pid ?? '?'}) ${action === 'kill' ? 'killed (SIGKILL)' : 'asked to stop (SIGTERM)'}`;
  }

  /**
   * Removes node `id` from the configuration (its process keeps running, a non-member), or adds it
   * back as a voter with its addresses, through the leader (a follower redirects; a change takes
   * up to the nodes' request timeout).
   */
  async changeMember(id: number, change: 'add' | 'remove'): Promise<string> {
    const member = this.s.members.find((m) => m.spec.id === id);
    if (member === undefined) throw new ControlError(404, `no node ${id} in this cluster (a new node joins with \`tsraft node --join\`)`);
    const via = this.s.members.find((m) => m.spec.id === this.s.leaderId() && m.child !== null && !m.paused) ?? this.s.members.find((m) => m.child !== null && !m.paused);
    if (via === undefined) throw new ControlError(409, 'no node is running');
    const { spec } = member;
    const response =
      change === 'remove'
        ? await this.s.http.fetch(`${via.spec.httpUrl}/v1/members/${id}`, { method: 'DELETE', signal: AbortSignal.timeout(10_000) })
        : await this.s.http.fetch(`${via.spec.httpUrl}/v1/members`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ id, raft: `${spec.raftHost}:${spec.raftPort}`, http: spec.httpUrl, role: 'voter' }),
            signal: AbortSignal.timeout(10_000),
          });
    const body = (await response.json().catch(() => ({}))) as { error?: { message?: unknown } };
    if (!response.ok) throw new ControlError(response.status >= 500 ? 502 : 409, `${change} node ${id} refused: ${String(body.error?.message ?? `HTTP ${response.status}`)}`);
    return change === 'remove' ? `node ${id} removed from the configuration (its process keeps running)` : `node ${id} added back as a voter`;
  }

  /** Asks the leader (as last seen, else any running node: a follower redirects) to hand over. */
  async transferLeadership(to: number | undefined): Promise<string> {
    const leader = this.s.members.find((m) => m.spec.id === this.s.leaderId() && m.child !== null && !m.paused) ?? this.s.members.find((m) => m.child !== null && !m.paused);
    if (leader === undefined) throw new ControlError(409, 'no node is running');
    const response = await this.s.http.fetch(`${leader.spec.httpUrl}/v1/leader/transfer${to === undefined ? '' : `?to=${to}`}`, { method: 'POST', signal: AbortSignal.timeout(5000) });
    const body = (await response.json().catch(() => ({}))) as { leaderId?: unknown; error?: { message?: unknown } };
    if (!response.ok) throw new ControlError(response.status === 400 || response.status === 409 ? 409 : 502, `transfer refused: ${String(body.error?.message ?? `HTTP ${response.status}`)}`);
    return `leadership transferred to node ${String(body.leaderId)}`;
  }

}
