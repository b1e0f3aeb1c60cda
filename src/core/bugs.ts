/**
 * The bug zoo: classic Raft mistakes the core can be told to make, so that the explorer proves
 * its checkers catch each class (`npm test` asserts each is caught within a stated number of
 * seeds). The switch is a symbol-keyed field of RaftConfig (and of RaftNodeOptions) that only
 * `tsraft/testing` exports, so nothing on the public `tsraft` entry point can turn one on. Mistakes
 * of the loop around the core are injected in the driver instead (DRIVER_BUGS in ready-driver.ts).
 *
 * - `commit-old-term`: commit an entry of an earlier term by counting replicas (Figure 8);
 * - `vote-without-log-check`: grant votes without the up-to-date check (§5.4.1);
 * - `forget-vote`: keep the vote in memory only, so a restart forgets it (Figure 2);
 * - `truncate-on-stale-append`: drop everything after prevLogIndex even when entries match, so a
 *   stale, reordered AppendEntries deletes newer entries;
 * - `apply-before-commit`: a follower treats everything it receives as committed;
 * - `stuck-snapshot-transfer`: a follower shown (by a late reply) to be past the snapshot being
 *   sent stays in snapshot state, so it gets no new entries until the leader compacts again (a
 *   liveness bug this project once had);
 * - `stale-read-echo`: a follower's rejection of an AppendEntries from an older term echoes that
 *   request's ReadIndex round. A restarted leader's rounds start again at 0, so a reply to its
 *   previous incarnation's message confirms a read it registered after the restart, and it serves
 *   a stale read after a newer leader committed a write (found by review; the explorer missed it);
 * - `ack-before-sync`: a follower's AppendEntriesReply is marked as safe to send before the entries
 *   it acknowledges are durable;
 * - `snapshot-restart-on-compaction`: a snapshot transfer in progress starts over from offset 0 with
 *   the newer snapshot every time the leader compacts, so a follower whose transfer takes longer
 *   than the compaction interval never catches up;
 * - `two-changes-in-flight`: a membership change is accepted while the previous one is still
 *   uncommitted (or its joint configuration not yet left), so a node that has seen neither and one
 *   that has seen both can each form a quorum without the other (thesis §4.1);
 * - `learner-in-quorum`: learners count towards commit, election, read and check-quorum majorities
 *   as if they voted;
 * - `committed-config`: a node uses the latest *committed* configuration for quorums instead of the
 *   latest in its log, so the old configuration can still decide after the new one took effect.
 */
export const INJECTABLE_BUGS = [
  'commit-old-term',
  'vote-without-log-check',
  'forget-vote',
  'truncate-on-stale-append',
  'apply-before-commit',
  'stuck-snapshot-transfer',
  'stale-read-echo',
  'ack-before-sync',
  'snapshot-restart-on-compaction',
  'two-changes-in-flight',
  'learner-in-quorum',
  'committed-config',
] as const;
export type InjectedBug = (typeof INJECTABLE_BUGS)[number];

/** The RaftConfig and RaftNodeOptions key under which injected bugs are switched on. */
export const INJECTED_BUGS: unique symbol = Symbol('tsraft.injectedBugs');
