/**
 * How the HTTP API answers a RaftNode's refusals (the 307 / 503 / 504 rows of the error table in
 * http-api.ts), shared by the /v1/kv routes (http-kv-routes.ts), the leadership transfer
 * (http-cluster-routes.ts) and the membership changes (http-member-routes.ts), so that a follower,
 * a busy or a stopping leader answers the same on all of them.
 */
import type { ServerResponse } from 'node:http';
import {
  BusyError,
  LeadershipTransferError,
  MembershipChangeError,
  NodeStoppedError,
  NotLeaderError,
  OutcomeUnknownError,
  ProposalDroppedError,
  ProposalTimeoutError,
} from '../runtime/errors.js';
import type { KvApiBackend } from './http-api.js';
import { sendError } from './http-io.js';

/** What a client should do with a write whose outcome is unknown. */
const RETRY_ADVICE = 'retry with the same X-Client-Id and X-Request-Seq to apply it exactly once (a retry without them may apply it twice)';

/** The path and query of the request being answered: a redirect keeps both. */
export interface RequestTarget {
  readonly rawPath: string;
  readonly rawQuery: string;
}

/** Answers a RaftNode rejection; anything else is rethrown (and answered 500 internal). */
export function answerRaftError(backend: Pick<KvApiBackend, 'leaderUrl'>, res: ServerResponse, request: RequestTarget, error: unknown): void {
  if (error instanceof NotLeaderError) {
    const leaderUrl = error.leaderId === undefined ? undefined : (error.leaderAddress ?? backend.leaderUrl(error.leaderId));
    if (error.leaderId === undefined || leaderUrl === undefined) {
      sendError(res, 503, 'no-leader', error.message, {}, { 'Retry-After': '1' });
      return;
    }
    const location = `${leaderUrl}${request.rawPath}${request.rawQuery === '' ? '' : `?${request.rawQuery}`}`;
    sendError(res, 307, 'not-leader', error.message, { leaderId: error.leaderId, leaderUrl }, { Location: location });
  } else if (error instanceof OutcomeUnknownError) {
    // Never a redirect: the write was proposed here and may still take effect, so re-sending it
    // elsewhere could apply it twice. Say so, and how to retry safely.
    sendError(res, 503, 'outcome-unknown', `${error.message}; ${RETRY_ADVICE}`, error.leaderId === undefined ? {} : { leaderId: error.leaderId }, { 'Retry-After': '1' });
  } else if (error instanceof ProposalTimeoutError) {
    sendError(res, 504, 'outcome-unknown', `${error.message}; ${RETRY_ADVICE}`);
  } else if (error instanceof BusyError) {
    sendError(res, 503, 'busy', error.message, {}, { 'Retry-After': '1' });
  } else if (error instanceof LeadershipTransferError) {
    // Not proposed: safe to retry, and in a moment the new leader answers (or redirects).
    sendError(res, 503, 'leader-transfer', error.message, { transferTarget: error.target }, { 'Retry-After': '1' });
  } else if (error instanceof ProposalDroppedError) {
    sendError(res, 503, 'dropped', error.message, {}, { 'Retry-After': '1' });
  } else if (error instanceof NodeStoppedError) {
    sendError(res, 503, 'stopped', error.message, {}, { 'Retry-After': '1' });
  } else {
    throw error;
  }
}

/** What a client should do with a membership change whose outcome is unknown. */
const MEMBERSHIP_ADVICE = 'the change may still complete: GET /v1/members shows whether it did, before it is retried';

/**
 * Answers a refused membership change: MembershipChangeError (400 invalid-membership-change;
 * 409 membership-change-pending or learner-behind, both with Retry-After: 1; nothing was
 * proposed), a change that may still complete (503 / 504 outcome-unknown, with advice to look
 * before retrying, as no session makes a change exactly-once), and the rest like any proposal.
 */
export function answerMembershipError(backend: Pick<KvApiBackend, 'leaderUrl'>, res: ServerResponse, request: RequestTarget, error: unknown): void {
  if (error instanceof MembershipChangeError) {
    if (error.code === 'TSRAFT_MEMBERSHIP_PENDING') sendError(res, 409, 'membership-change-pending', error.message, {}, { 'Retry-After': '1' });
    else if (error.code === 'TSRAFT_LEARNER_BEHIND') sendError(res, 409, 'learner-behind', error.message, {}, { 'Retry-After': '1' });
    else sendError(res, 400, 'invalid-membership-change', error.message);
  } else if (error instanceof OutcomeUnknownError) {
    sendError(res, 503, 'outcome-unknown', `${error.message}; ${MEMBERSHIP_ADVICE}`, error.leaderId === undefined ? {} : { leaderId: error.leaderId }, { 'Retry-After': '1' });
  } else if (error instanceof ProposalTimeoutError) {
    sendError(res, 504, 'outcome-unknown', `the membership change did not complete in time (${error.message}); ${MEMBERSHIP_ADVICE}`);
  } else {
    answerRaftError(backend, res, request, error);
  }
}

/**
 * On a follower, answers a request only the leader can serve (a write, a leadership transfer, a
 * membership change) with its redirect (or 503 no-leader) before its body is read, and returns
 * true. The proposal would be refused anyway; reading the body first would let clients make a
 * follower buffer bodies it has no use for. Without `backend.leadership` it returns false, and the
 * RaftNode's NotLeaderError answers.
 */
export function answeredNotLeader(backend: Pick<KvApiBackend, 'leadership' | 'leaderUrl'>, res: ServerResponse, request: RequestTarget): boolean {
  const leadership = backend.leadership?.();
  if (leadership === undefined || leadership.isLeader) return false;
  const { leaderId } = leadership;
  answerRaftError(backend, res, request, new NotLeaderError(leaderId, leaderId === undefined ? undefined : backend.leaderUrl(leaderId)));
  return true;
}
