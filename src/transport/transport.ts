import type { Message, NodeId } from '../core/messages.js';

/**
 * Carries Raft messages between nodes. Raft tolerates loss, duplication and reordering, so a
 * transport may drop messages (a full send queue, a peer that is down) but must never corrupt one
 * or deliver one to the wrong node.
 */
export interface Transport {
  /** Starts listening; `onMessage` receives every message addressed to this node. */
  start(onMessage: (message: Message) => void): Promise<void>;
  /** Queues a message for `message.to`; never blocks, never throws for an unreachable peer. */
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
   * exactly the listed nodes and only they are accepted as senders. A node new to the list is added;
   * a node no longer listed is forgotten (its connections are closed, what was queued for it is
   * dropped, and its messages are refused from then on, like any stranger's); a node listed at a
   * new address is reconnected there (what was queued for it is kept). Unchanged peers and their
   * connections are left alone. An entry for this node itself is ignored; a list with a repeated
   * id or an invalid entry throws before anything changes. Idempotent; allowed before start() and
   * a no-op after close(). Absent: the transport's peers are fixed when it is made.
   */
  setPeers?(peers: readonly PeerAddress[]): void;
}

export interface PeerAddress {
  readonly id: NodeId;
  readonly host: string;
  readonly port: number;
}
