/**
 * Unit tests for the one Ready loop (src/driver/ready-driver.ts): the order in which it sends,
 * writes, applies and advances, the assertions it keeps on (nothing of `messages` leaves while its
 * write is outstanding; the applied index only grows), and how it behaves around writes that
 * complete synchronously, later, with an error, or after stop(). Some tests run a real RaftCore,
 * others a scripted fake core that hands out prepared Readys.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvariantError } from '../../src/core/assert.js';
import { DEFAULT_TIMING, type RaftConfig } from '../../src/core/config.js';
import type { Entry, HardState, LogIndex, Message, Snapshot } from '../../src/core/messages.js';
import { RaftCore } from '../../src/core/raft.js';
import type { LogWrite, Ready, ReadState } from '../../src/core/ready.js';
import { ReadyDriver, type DriverBug, type DurableWrite, type ReadyHandlers } from '../../src/driver/ready-driver.js';
import { ET_MIN, FIXED, bytes, ent, range, readyOf, rv, rvr } from './core-fixtures.js';

// ===================================================================================== helpers

const ready = readyOf;

/** Hands out prepared Readys, one at a time, and records what the driver does with them. */
class ScriptedCore {
  readonly id = 7;
  readonly script: Ready[];
  readyCalls = 0;
  readonly advanced: Ready[] = [];
  private out: Ready | null = null;

  constructor(
    script: Ready[],
    private readonly appliedIndex: LogIndex = 0,
  ) {
    this.script = [...script];
  }

  status(): { appliedIndex: LogIndex } {
    return { appliedIndex: this.appliedIndex };
  }

  hasReady(): boolean {
    return this.script.length > 0;
  }

  ready(): Ready {
    assert.equal(this.out, null, 'ready() called again before advance()');
    this.readyCalls++;
    this.out = this.script.shift()!;
    return this.out;
  }

  advance(r: Ready): void {
    assert.equal(r, this.out, 'advance() of another Ready');
    this.out = null;
    this.advanced.push(r);
  }

  asCore(): RaftCore {
    return this as unknown as RaftCore;
  }
}

/** A write the test completes by hand (or at once, with `sync`). */
interface Disk {
  readonly write: DurableWrite;
  /** Writes started and not completed, oldest first. */
  readonly pending: Array<{ hardState: HardState | null; snapshot: Snapshot | null; logWrite: LogWrite | null; done: (error: Error | null) => void }>;
  writes: number;
  complete(error?: Error): void;
}

function disk(mode: 'sync' | 'deferred', log: string[]): Disk {
  const d: Disk = {
    pending: [],
    writes: 0,
    write: (hardState, snapshot, logWrite, done) => {
      d.writes++;
      log.push('write');
      if (mode === 'sync') {
        log.push('synced');
        done(null);
      } else {
        d.pending.push({ hardState, snapshot, logWrite, done });
      }
    },
    complete: (error) => {
      const write = d.pending.shift();
      assert.ok(write !== undefined, 'no write outstanding');
      log.push(error === undefined ? 'synced' : 'write failed');
      write.done(error ?? null);
    },
  };
  return d;
}

/** Handlers that record everything in `log` (in order) and keep the errors passed to fail. */
function recorder(log: string[], extra: Partial<ReadyHandlers> = {}): ReadyHandlers & { failures: Error[]; applied: Entry[] } {
  const failures: Error[] = [];
  const applied: Entry[] = [];
  return {
    failures,
    applied,
    feed: () => undefined,
    send: (message: Message) => log.push(`send ${message.type}>${message.to}`),
    restore: (snapshot: Snapshot) => log.push(`restore ${snapshot.index}`),
    apply: (entry: Entry) => {
      applied.push(entry);
      log.push(`apply ${entry.index}`);
    },
    confirmReads: (states: readonly ReadState[]) => log.push(`reads ${states.map((s) => s.id).join(',')}`),
    fail: (error: Error) => {
      failures.push(error);
      log.push('fail');
    },
    advanced: () => log.push('advanced'),
    ...extra,
  };
}

function config(id: number, n: number): RaftConfig {
  return { id, peers: range(n), ...DEFAULT_TIMING, random: FIXED, preVote: false };
}

const hs = (term: number, votedFor: number): HardState => ({ term, votedFor });
const append = (to: number): Message => ({ type: 'AppendEntries', from: 7, to, term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [], leaderCommit: 0, readContext: 0 });
const voteReply = (to: number): Message => rvr(7, to, 1, true);

// ===================================================================================== order

describe('ReadyDriver: the order of a Ready', () => {
  test('sends messagesBeforePersist, writes, then (once durable) sends messages, restores, applies, serves reads and advances', () => {
    const log: string[] = [];
    const snapshot: Snapshot = { index: 3, term: 1, data: bytes('s3') };
    const core = new ScriptedCore([
      ready({
        hardState: hs(1, 2),
        snapshotWrite: snapshot,
        logWrite: { fromIndex: 4, entries: [ent(4, 1), ent(5, 1)] },
        messagesBeforePersist: [append(1)],
        messages: [voteReply(2)],
        snapshotToApply: snapshot,
        committed: [ent(4, 1), ent(5, 1)],
        readStates: [{ id: 9, index: 5 }],
      }),
    ]);
    const d = disk('deferred', log);
    const handlers = recorder(log);
    const driver = new ReadyDriver(core.asCore(), d.write, handlers);
    driver.run();
    assert.deepEqual(log, ['send AppendEntries>1', 'write']);
    assert.equal(driver.writePending, true);
    assert.deepEqual(d.pending[0]?.hardState, hs(1, 2));
    d.complete();
    assert.deepEqual(log, ['send AppendEntries>1', 'write', 'synced', 'send RequestVoteReply>2', 'restore 3', 'apply 4', 'apply 5', 'reads 9', 'advanced']);
    assert.equal(driver.appliedIndex, 5);
    assert.equal(core.advanced.length, 1);
    assert.deepEqual(handlers.failures, []);
  });

  test('a synchronous write and a deferred write both carry a real core through an election and a commit', () => {
    for (const mode of ['sync', 'deferred'] as const) {
      const log: string[] = [];
      const core = new RaftCore(config(0, 1));
      const d = disk(mode, log);
      const handlers = recorder(log);
      const driver = new ReadyDriver(core, d.write, handlers);
      const settle = (): void => {
        driver.run();
        while (d.pending.length > 0) d.complete();
      };
      for (let i = 0; i < ET_MIN; i++) {
        core.tick();
        settle();
      }
      assert.equal(core.isLeader, true, mode);
      core.propose(bytes('a'));
      driver.run();
      if (mode === 'deferred') {
        assert.equal(driver.writePending, true);
        assert.deepEqual(handlers.applied, [], 'nothing is applied before the write completes');
        driver.run(); // nothing happens while the write is outstanding
        assert.equal(d.pending.length, 1, 'one write in flight at a time');
      }
      settle();
      core.propose(bytes('b'));
      settle();
      assert.deepEqual(handlers.applied.map((e) => e.index), [1, 2], mode);
      assert.equal(driver.appliedIndex, 2, mode);
      assert.equal(driver.writePending, false, mode);
      assert.deepEqual(handlers.failures, [], mode);
      assert.equal(core.hasReady(), false, mode);
    }
  });

  test('inputs that arrive while a write is outstanding are fed together before the next Ready (one write covers them)', () => {
    const log: string[] = [];
    const core = new RaftCore(config(1, 3));
    const inbox: Message[] = [];
    const d = disk('deferred', log);
    const driver = new ReadyDriver(core, d.write, recorder(log, { feed: () => inbox.splice(0).forEach((m) => core.step(m)) }));
    inbox.push(rv(0, 1, 1, 0, 0));
    driver.run();
    assert.equal(d.writes, 1);
    inbox.push(rv(2, 1, 2, 0, 0), rv(0, 1, 3, 0, 0));
    driver.run();
    assert.equal(d.writes, 1, 'no Ready while the write is outstanding');
    d.complete();
    assert.equal(d.writes, 2, 'both later requests share the next write');
    assert.deepEqual(d.pending[0]?.hardState, hs(3, 0));
    d.complete();
    assert.deepEqual(
      log.filter((l) => l.startsWith('send')),
      ['send RequestVoteReply>0', 'send RequestVoteReply>2', 'send RequestVoteReply>0'],
    );
  });
});

// ===================================================================================== assertions

describe('ReadyDriver: its own assertions', () => {
  test('send-before-sync: the driver bug sends a vote before it is durable, and the assertion stops the node via fail', () => {
    for (const bugs of [new Set<DriverBug>(), new Set<DriverBug>(['send-before-sync'])]) {
      const log: string[] = [];
      const core = new RaftCore(config(1, 3));
      const d = disk('deferred', log);
      const handlers = recorder(log);
      const driver = new ReadyDriver(core, d.write, handlers, bugs);
      core.step(rv(0, 1, 1, 0, 0));
      driver.run();
      if (bugs.size === 0) {
        assert.deepEqual(log, ['write']);
        d.complete();
        assert.deepEqual(log, ['write', 'synced', 'send RequestVoteReply>0', 'advanced']);
        assert.deepEqual(handlers.failures, []);
        continue;
      }
      assert.equal(handlers.failures.length, 1);
      assert.ok(handlers.failures[0] instanceof InvariantError);
      assert.match(handlers.failures[0].message, /node 1 would send RequestVoteReply to 0 before the write it depends on is durable/);
      assert.deepEqual(log, ['fail'], 'caught before anything was sent or written');
      assert.equal(driver.isStopped, true);
    }
  });

  test('the applied index only grows: an entry at or below it fails the node', () => {
    const log: string[] = [];
    const core = new ScriptedCore([
      ready({ committed: range(7).map((i) => ent(i + 1, 1)) }),
      ready({ committed: [ent(5, 1)] }),
      ready({ committed: [ent(8, 1)] }),
    ]);
    const handlers = recorder(log);
    const driver = new ReadyDriver(core.asCore(), disk('sync', log).write, handlers);
    driver.run();
    assert.equal(handlers.failures.length, 1);
    assert.ok(handlers.failures[0] instanceof InvariantError);
    assert.match(handlers.failures[0].message, /entry 5 applied after 7/);
    assert.deepEqual(handlers.applied.map((e) => e.index), [1, 2, 3, 4, 5, 6, 7], 'entry 5 is not applied again');
    assert.equal(driver.appliedIndex, 7);
    assert.equal(core.readyCalls, 2, 'the node stopped: the third Ready is never taken');
  });

  test('an entry that skips one fails the node too, and so does a snapshot that would move the applied index back', () => {
    const gap = new ScriptedCore([ready({ committed: [ent(1, 1), ent(3, 1)] })]);
    const gapHandlers = recorder([]);
    new ReadyDriver(gap.asCore(), disk('sync', []).write, gapHandlers).run();
    assert.match(gapHandlers.failures[0]?.message ?? '', /entry 3 applied after 1/);

    const back = new ScriptedCore([ready({ snapshotToApply: { index: 4, term: 1, data: bytes('s4') } })], 6);
    const backHandlers = recorder([]);
    new ReadyDriver(back.asCore(), disk('sync', []).write, backHandlers).run();
    assert.ok(backHandlers.failures[0] instanceof InvariantError);
    assert.match(backHandlers.failures[0].message, /snapshot at 4 would move the applied index back from 6/);
  });
});

// ===================================================================================== lifecycle

describe('ReadyDriver: re-entrancy, failed writes, stop()', () => {
  test('run() re-entered from a handler returns at once; the running loop picks the work up', () => {
    const log: string[] = [];
    const core = new ScriptedCore([
      ready({ messagesBeforePersist: [append(1)], logWrite: { fromIndex: 1, entries: [ent(1, 1)] }, messages: [voteReply(2)], committed: [ent(1, 1)] }),
      ready({ committed: [ent(2, 1)], messages: [voteReply(1)] }),
    ]);
    const d = disk('sync', log);
    let driver: ReadyDriver | null = null;
    let reentered = 0;
    const again = (): void => {
      reentered++;
      driver!.run();
    };
    const handlers = recorder(log, {
      send: (message) => {
        log.push(`send ${message.type}>${message.to}`);
        again();
      },
      apply: (entry) => {
        log.push(`apply ${entry.index}`);
        again();
      },
      advanced: () => {
        log.push('advanced');
        again();
      },
    });
    driver = new ReadyDriver(core.asCore(), d.write, handlers);
    driver.run();
    assert.ok(reentered >= 6);
    assert.deepEqual(handlers.failures, []);
    assert.deepEqual(log, [
      'send AppendEntries>1',
      'write',
      'synced',
      'send RequestVoteReply>2',
      'apply 1',
      'advanced',
      'send RequestVoteReply>1',
      'apply 2',
      'advanced',
    ]);
    assert.equal(core.advanced.length, 2);
    assert.equal(driver.appliedIndex, 2);
  });

  test('a write that completes from inside the write call (synchronously) is not taken for a second Ready in flight', () => {
    const log: string[] = [];
    const core = new ScriptedCore(range(5).map((i) => ready({ logWrite: { fromIndex: i + 1, entries: [ent(i + 1, 1)] }, committed: [ent(i + 1, 1)] })));
    const handlers = recorder(log);
    const driver = new ReadyDriver(core.asCore(), disk('sync', log).write, handlers);
    driver.run();
    assert.deepEqual(handlers.failures, []);
    assert.equal(core.advanced.length, 5);
    assert.equal(driver.appliedIndex, 5);
  });

  test('a failed write calls fail once, sends none of its messages, and no later Ready is taken', () => {
    const log: string[] = [];
    const core = new ScriptedCore([
      ready({ hardState: hs(1, 2), messagesBeforePersist: [append(1)], messages: [voteReply(2)], committed: [] }),
      ready({ messages: [voteReply(1)] }),
    ]);
    const d = disk('deferred', log);
    const handlers = recorder(log);
    const driver = new ReadyDriver(core.asCore(), d.write, handlers);
    driver.run();
    d.complete(new Error('disk full'));
    assert.equal(handlers.failures.length, 1);
    assert.equal(handlers.failures[0]!.message, 'disk full');
    assert.equal(driver.isStopped, true);
    driver.run();
    driver.run();
    assert.equal(core.readyCalls, 1, 'no later Ready is taken');
    assert.deepEqual(core.advanced, [], 'the failed Ready is not advanced');
    assert.deepEqual(log, ['send AppendEntries>1', 'write', 'write failed', 'fail'], 'the vote reply never leaves');
    assert.equal(handlers.failures.length, 1, 'fail is called once');
  });

  test('a handler that throws fails the node once', () => {
    const core = new ScriptedCore([ready({ committed: [ent(1, 1)] }), ready({ committed: [ent(2, 1)] })]);
    const handlers = recorder([], {
      apply: () => {
        throw new Error('state machine broke');
      },
    });
    const driver = new ReadyDriver(core.asCore(), disk('sync', []).write, handlers);
    driver.run();
    driver.run();
    assert.deepEqual(handlers.failures.map((e) => e.message), ['state machine broke']);
    assert.equal(core.readyCalls, 1);
  });

  test('stop() ignores the completion of an outstanding write: nothing more is sent, applied or advanced', () => {
    const log: string[] = [];
    const core = new ScriptedCore([
      ready({ logWrite: { fromIndex: 1, entries: [ent(1, 1)] }, messagesBeforePersist: [append(1)], messages: [voteReply(2)], committed: [ent(1, 1)] }),
      ready({ messages: [voteReply(1)] }),
    ]);
    const d = disk('deferred', log);
    const handlers = recorder(log);
    const driver = new ReadyDriver(core.asCore(), d.write, handlers);
    driver.run();
    driver.stop();
    assert.equal(driver.isStopped, true);
    d.complete();
    driver.run();
    assert.deepEqual(log, ['send AppendEntries>1', 'write', 'synced']);
    assert.deepEqual(core.advanced, []);
    assert.equal(core.readyCalls, 1);
    assert.deepEqual(handlers.failures, [], 'stopping is not a failure');
  });

  test('held() keeps the next Ready from starting until it returns false', () => {
    const log: string[] = [];
    const core = new ScriptedCore([ready({ committed: [ent(1, 1)] }), ready({ committed: [ent(2, 1)] })]);
    let hold = false;
    const handlers = recorder(log, {
      held: () => hold,
      advanced: () => {
        log.push('advanced');
        hold = true;
      },
    });
    const driver = new ReadyDriver(core.asCore(), disk('sync', log).write, handlers);
    driver.run();
    assert.deepEqual(handlers.applied.map((e) => e.index), [1]);
    hold = false;
    driver.run();
    assert.deepEqual(handlers.applied.map((e) => e.index), [1, 2]);
  });
});
