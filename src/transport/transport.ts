import type { Message, NodeId } from '../core/messages.js';

/**
 * Carries Raft messages between nodes. Raft tolerates loss, duplication and reordering, so a
 * transport may drop messages (a full send queue, a peer that is down) but must never corrupt one
 * or deliver one to the wrong node.
 */
export interface Transport {
  /** Starts listening; `onMessage` receives every message addressed to this node. */
  start(onMessage: (message: Message) => void): Promise<void>;
  /**
   * Queues a message for `message.to` (a peer, or a node outside the peer set whose address the
   * transport learned); never blocks, never throws for an unreachable or unknown node.
   */
  send(message: Message): void;
  /** Closes every connection and the listener. Idempotent. */
  close(): Promise<void>;
  /**
   * The largest encoded message (codec bytes, `messageSize`) this transport can carry; larger ones
   * are dropped at send(). RaftNode refuses proposals that could not travel. Absent: no limit.
   */
  readonly maxMessageBytes?: number;
  /**
   * Replaces the set of peers this node talks to, for membership changes: after it, send() reaches
   * the listed nodes at the listed addresses, and they are the members whose connections the
   * transport keeps. A node new to the list is added; a node no longer listed is forgotten (its
   * connections are closed and what was queued for it is dropped; from then on it is treated like
   * any node outside the list); a node listed at a new address is reconnected there (what was
   * queued for it is kept). Unchanged peers and their connections are left alone. An entry for this
   * node itself is ignored; a list with a repeated id or an invalid entry throws before anything
   * changes. Idempotent; allowed before start() and a no-op after close(). Absent: the transport's
   * peers are fixed when it is made.
   *
   * Nodes outside the list. A node that is not (yet) in the list may still be a member this node
   * does not know of (one added after the end of its log, possibly the leader), so a transport may
   * accept its messages, within a budget that cannot crowd out the listed peers, and may answer it
   * at an address it announced itself; a listed address always wins over an announced one
   * (TcpTransport: `nonMemberConnectionsMax`, `learnedAddressesMax`). Whether such a message is
   * acted upon is for the Raft core to decide.
   */
  setPeers?(peers: readonly PeerAddress[]): void;
}

export interface PeerAddress {
  readonly id: NodeId;
  readonly host: string;
  readonly port: number;
}
