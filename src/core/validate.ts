import { checkMembership } from './membership.js';
import { isRequest, type AppendEntries, type InstallSnapshot, type Message, type NodeId, type Term } from './messages.js';

/**
 * The largest term a node accepts or enters. Far beyond any real cluster's life (a new term every
 * millisecond for 8,900 years), and far below where term + 1 or the codec's integers lose
 * precision, so a forged "term 2^53 − 1" is dropped instead of making every node stop on its next
 * election.
 */
export const TERM_MAX: Term = 2 ** 48;

/** Why a peer message was dropped before it reached the state machine. */
export type DropReason =
  | 'unknown-sender'
  | 'term-out-of-range'
  | 'malformed'
  | 'second-leader'
  | 'impossible-ack'
  | 'conflicts-with-committed'
  | 'snapshot-too-large'
  | 'snapshot-checksum-mismatch'
  | 'snapshot-not-kept'
  | 'invalid-snapshot';

export const DROP_REASONS: readonly DropReason[] = [
  'unknown-sender',
  'term-out-of-range',
  'malformed',
  'second-leader',
  'impossible-ack',
  'conflicts-with-committed',
  'snapshot-too-large',
  'snapshot-checksum-mismatch',
  'snapshot-not-kept',
  'invalid-snapshot',
];

/**
 * Checks what can be checked of a peer message without the node's state: a sender other than
 * ourselves (for a reply, one a configuration we know names), a term in range, and for
 * AppendEntries a well-formed batch (consecutive indices after prevLogIndex, terms that never
 * decrease, none before prevLogTerm nor after the sender's term, configurations that are well
 * formed). Returns why it cannot be true, or null. Raft assumes honest peers; this only keeps one
 * impossible message (a bug in a peer, a stray client on the peer port) from stopping a node.
 */
export function checkPeerMessage(message: Message, self: NodeId, members: ReadonlySet<NodeId>): DropReason | null {
  // A request may come from a member added after the end of our log (a new leader, a candidate):
  // only the log can tell us about it, and only by listening to it. A reply answers a request we
  // sent, and we send only to members we know.
  if (message.from === self || (!isRequest(message) && !members.has(message.from))) return 'unknown-sender';
  if (!(message.term >= 0 && message.term <= TERM_MAX)) return 'term-out-of-range';
  if (message.type === 'AppendEntries' && !wellFormedBatch(message)) return 'malformed';
  if (message.type === 'InstallSnapshot' && !wellFormedChunk(message)) return 'malformed';
  return null;
}

function wellFormedChunk(chunk: InstallSnapshot): boolean {
  if (chunk.lastIncludedIndex < 1 || chunk.lastIncludedTerm > chunk.term) return false;
  if (checkMembership(chunk.membership) !== null) return false;
  const end = chunk.offset + chunk.data.length;
  return end <= chunk.snapshotBytes && chunk.done === (end === chunk.snapshotBytes) && (chunk.data.length > 0 || chunk.done);
}

function wellFormedBatch(request: AppendEntries): boolean {
  if (request.prevLogTerm > request.term || (request.prevLogIndex === 0 && request.prevLogTerm !== 0)) return false;
  let previousTerm = request.prevLogTerm;
  for (let i = 0; i < request.entries.length; i++) {
    const entry = request.entries[i]!;
    if (entry.index !== request.prevLogIndex + 1 + i) return false;
    if (entry.term < previousTerm || entry.term > request.term) return false;
    if (entry.membership !== undefined && (entry.command.length > 0 || checkMembership(entry.membership) !== null)) return false;
    previousTerm = entry.term;
  }
  return true;
}
