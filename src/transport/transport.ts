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
}

export interface PeerAddress {
  readonly id: NodeId;
  readonly host: string;
  readonly port: number;
}
