import type { NodeId } from '../core/messages.js';

/** Every error tsraft's runtime reports to callers, with a stable code to branch on. */
export class RaftError extends Error {
  override readonly name: string = 'RaftError';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** This node is not the leader. `leaderId`/`leaderAddress` say where to go, when known. */
export class NotLeaderError extends RaftError {
  override readonly name = 'NotLeaderError';
  constructor(
    readonly leaderId: NodeId | undefined,
    readonly leaderAddress: string | undefined,
    reason = 'this node is not the leader',
  ) {
    const hint = leaderId === undefined ? 'no leader is known' : `the leader is node ${leaderId}${leaderAddress === undefined ? '' : ` at ${leaderAddress}`}`;
    super(`${reason}; ${hint}`, 'TSRAFT_NOT_LEADER');
  }
}

/**
 * The proposal was appended, but this node lost leadership (or had its log replaced by a
 * snapshot) before the entry was seen to commit: it may still take effect, or may not. Retry
 * only if the command is idempotent or carries a session (the KV service's X-Client-Id and
 * X-Request-Seq make a retry exactly-once). `leaderId` names the new leader when known.
 */
export class OutcomeUnknownError extends RaftError {
  override readonly name = 'OutcomeUnknownError';
  constructor(
    readonly index: number,
    readonly leaderId: NodeId | undefined,
    reason = 'leadership was lost before the proposal was seen to commit',
  ) {
    super(`${reason}; the entry at index ${index} may still take effect`, 'TSRAFT_OUTCOME_UNKNOWN');
  }
}

/** The proposal did not commit in time. It may still commit later: retry idempotently. */
export class ProposalTimeoutError extends RaftError {
  override readonly name = 'ProposalTimeoutError';
  constructor(timeoutMs: number) {
    super(`proposal not committed within ${timeoutMs} ms; it may still commit`, 'TSRAFT_PROPOSAL_TIMEOUT');
  }
}

/** A different entry was committed where the proposal stood: it will never commit. */
export class ProposalDroppedError extends RaftError {
  override readonly name = 'ProposalDroppedError';
  constructor(index: number) {
    super(`another entry was committed at index ${index}; the proposal was dropped`, 'TSRAFT_PROPOSAL_DROPPED');
  }
}

/** The command could never reach a follower: one message cannot carry it. */
export class ProposalTooLargeError extends RaftError {
  override readonly name = 'ProposalTooLargeError';
  constructor(
    readonly bytes: number,
    readonly limitBytes: number,
  ) {
    super(
      `a command of ${bytes} bytes is larger than the ${limitBytes} bytes one message can carry (the transport's frame limit, less the message envelope)`,
      'TSRAFT_PROPOSAL_TOO_LARGE',
    );
  }
}

/** Too many proposals are waiting; try again later. */
export class BusyError extends RaftError {
  override readonly name = 'BusyError';
  constructor(limit: number) {
    super(`too many proposals in flight (limit ${limit}); retry later`, 'TSRAFT_BUSY');
  }
}

/**
 * This leader is handing leadership to another member and takes no proposals meanwhile (at most a
 * maximum election timeout). The command was not proposed: retrying it is safe.
 */
export class LeadershipTransferError extends RaftError {
  override readonly name = 'LeadershipTransferError';
  constructor(readonly target: NodeId) {
    super(`leadership is being handed to node ${target}; the command was not proposed: retry in a moment`, 'TSRAFT_TRANSFERRING');
  }
}

/**
 * A membership change was not proposed: another is still under way (TSRAFT_MEMBERSHIP_PENDING:
 * retry once it completes), the change does not fit the current configuration
 * (TSRAFT_MEMBERSHIP_INVALID), or a learner to promote has not caught up with the leader yet
 * (TSRAFT_LEARNER_BEHIND: retry once it has). Nothing was appended.
 */
export class MembershipChangeError extends RaftError {
  override readonly name = 'MembershipChangeError';
  constructor(message: string, code: 'TSRAFT_MEMBERSHIP_PENDING' | 'TSRAFT_MEMBERSHIP_INVALID' | 'TSRAFT_LEARNER_BEHIND') {
    super(message, code);
  }
}

export class NodeStoppedError extends RaftError {
  override readonly name = 'NodeStoppedError';
  constructor(reason = 'the node is stopped') {
    super(reason, 'TSRAFT_STOPPED');
  }
}

/** The node's configuration cannot work; the message lists every problem. */
export class ConfigError extends RaftError {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration: ${problems.join('; ')}`, 'TSRAFT_CONFIG');
  }
}
