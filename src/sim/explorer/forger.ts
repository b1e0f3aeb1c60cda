/**
 * A stray or buggy peer, in one world in three: during the fault phase it hands members peer
 * messages that cannot be true, straight into their transport (so the explorer's own message
 * checks never see them): any message from a node that is not a member, any message with a term
 * beyond TERM_MAX, acknowledgements of entries the leader does not have, AppendEntries with gaps,
 * snapshot chunks that contradict their own transfer. Each is well formed on the wire and
 * otherwise arbitrary. Raft cannot defend against a forger who sends plausible messages in a
 * member's name (that needs authentication), so these are exactly the ones a node can recognise;
 * the world then demands that the safety checks hold, that every forgery was dropped and counted,
 * and that honest traffic made no node drop anything.
 */
import type { Membership } from '../../core/membership.js';
import { isRequest, type Entry, type Message, type NodeId } from '../../core/messages.js';
import { TERM_MAX } from '../../core/validate.js';
import type { Prng } from '../prng.js';
import type { Timer } from '../scheduler.js';
import type { ExplorerNode } from './explorer-node.js';

/** What the forger needs of its world (the World satisfies it). */
export interface ForgerHost {
  readonly nodes: readonly ExplorerNode[];
  readonly isHealed: boolean;
  readonly scheduler: { schedule(delayMs: number, callback: () => void): Timer };
  trace(line: string): void;
}

const TYPES = ['RequestVote', 'PreVote', 'RequestVoteReply', 'PreVoteReply', 'AppendEntries', 'AppendEntriesReply', 'InstallSnapshot', 'InstallSnapshotReply'] as const;

export class Forger {
  constructor(
    private readonly host: ForgerHost,
    private readonly prng: Prng,
  ) {}

  /** Forges a message every 1-300 ms until the world heals. */
  start(): void {
    this.host.scheduler.schedule(1 + this.prng.nextInt(300), () => {
      if (this.host.isHealed) return;
      this.forgeOne();
      this.start();
    });
  }

  private forgeOne(): void {
    const nodes = this.host.nodes;
    const n = nodes.length;
    const target = nodes[this.prng.nextInt(n)]!;
    const status = target.status();
    if (status === null) return;
    const member = (target.id + 1 + this.prng.nextInt(n - 1)) % n;
    const roll = this.prng.nextInt(5);
    let message: Message;
    let mayGoUncounted = false;
    if (roll === 0) {
      // From a node no configuration names: a reply (a request may be a member added after the end
      // of the target's log, so only peer authentication can refuse a stranger's request).
      do message = this.arbitrary(n + 100 + this.prng.nextInt(100), target.id, this.prng.nextInt(status.term + 3));
      while (isRequest(message));
    } else if (roll === 1) {
      const term = this.prng.chance(1, 2) ? Number.MAX_SAFE_INTEGER : TERM_MAX + 1 + this.prng.nextInt(2 ** 32);
      message = this.arbitrary(member, target.id, term);
    } else if (roll === 2 && status.role === 'leader') {
      // An acknowledgement far beyond the leader's log. If the leader steps down before it is fed,
      // the role check drops it without a count: the one forgery that may go uncounted.
      message = {
        type: 'AppendEntriesReply', from: member, to: target.id, term: status.term, success: true,
        prevLogIndex: status.lastIndex, matchIndex: status.lastIndex + 1_000_000 + this.prng.nextInt(1000),
        conflictTerm: 0, conflictIndex: 0, lastLogIndex: status.lastIndex + 1_000_000, readContext: 0,
      };
      mayGoUncounted = true;
    } else if (roll === 3) {
      // Entries with a gap: index prev+1, then prev+3.
      const prev = this.prng.nextInt(status.lastIndex + 2);
      const entry = (index: number): Entry => ({ index, term: Math.max(1, status.term), command: Uint8Array.of(0x66) });
      message = {
        type: 'AppendEntries', from: member, to: target.id, term: status.term, prevLogIndex: prev, prevLogTerm: prev === 0 ? 0 : 1,
        entries: [entry(prev + 1), entry(prev + 3)], leaderCommit: 0, readContext: 0,
      };
    } else {
      // A chunk past the end its transfer announces.
      const data = this.bytes(1 + this.prng.nextInt(64));
      message = {
        type: 'InstallSnapshot', from: member, to: target.id, term: status.term, lastIncludedIndex: status.commitIndex + 1 + this.prng.nextInt(10),
        lastIncludedTerm: Math.max(0, status.term - this.prng.nextInt(2)), snapshotBytes: data.length - 1, checksum: this.prng.nextInt(2 ** 32),
        offset: 0, data, done: true, membership: this.membership(),
      };
    }
    this.host.trace(`forged ${message.type} from ${message.from} to n${target.id} t${message.term}`);
    target.injectForged(message, mayGoUncounted);
  }

  /** A configuration, well formed or not (unsorted, overlapping, empty). */
  private membership(): Membership {
    const ids = (): NodeId[] => Array.from({ length: this.prng.nextInt(4) }, () => this.prng.nextInt(8));
    return { voters: ids(), outgoing: this.prng.chance(1, 4) ? ids() : [], learners: this.prng.chance(1, 4) ? ids() : [], addresses: [] };
  }

  private bytes(length: number): Uint8Array {
    return Uint8Array.from({ length }, () => this.prng.nextInt(256));
  }

  /** A message of any type from `from` with arbitrary (but encodable) fields. */
  private arbitrary(from: NodeId, to: NodeId, term: number): Message {
    const p = this.prng;
    const index = (): number => p.nextInt(1000);
    const termUpTo = (max: number): number => p.nextInt(Math.min(max, 2 ** 32 - 1) + 1);
    const base = { from, to, term };
    switch (p.pick(TYPES)) {
      case 'RequestVote':
        return { type: 'RequestVote', ...base, lastLogIndex: index(), lastLogTerm: termUpTo(term) };
      case 'PreVote':
        return { type: 'PreVote', ...base, lastLogIndex: index(), lastLogTerm: termUpTo(term) };
      case 'RequestVoteReply':
        return { type: 'RequestVoteReply', ...base, voteGranted: p.chance(1, 2) };
      case 'PreVoteReply':
        return { type: 'PreVoteReply', ...base, voteGranted: p.chance(1, 2) };
      case 'AppendEntries': {
        const prevLogIndex = index();
        const entries: Entry[] = Array.from({ length: p.nextInt(3) }, (_, i) => ({ index: prevLogIndex + 1 + i, term, command: this.bytes(p.nextInt(16)) }));
        return { type: 'AppendEntries', ...base, prevLogIndex, prevLogTerm: prevLogIndex === 0 ? 0 : termUpTo(term), entries, leaderCommit: index(), readContext: index() };
      }
      case 'AppendEntriesReply':
        return {
          type: 'AppendEntriesReply', ...base, success: p.chance(1, 2), prevLogIndex: index(), matchIndex: index(),
          conflictTerm: termUpTo(term), conflictIndex: index(), lastLogIndex: index(), readContext: index(),
        };
      case 'InstallSnapshot': {
        const data = this.bytes(p.nextInt(64));
        return {
          type: 'InstallSnapshot', ...base, lastIncludedIndex: 1 + index(), lastIncludedTerm: termUpTo(term),
          snapshotBytes: data.length, checksum: p.nextInt(2 ** 32), offset: 0, data, done: true, membership: this.membership(),
        };
      }
      case 'InstallSnapshotReply':
        return { type: 'InstallSnapshotReply', ...base, lastIncludedIndex: index(), nextOffset: p.nextInt(1 << 20), installed: p.chance(1, 2) };
    }
  }
}
