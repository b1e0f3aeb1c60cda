/**
 * The transport's default limits, in a module of their own so that the simulator (which models
 * TcpTransport's frame limit and queues) can use them without pulling in node:net and node:tls:
 * the replay page bundles the simulator for the browser. `tcp.ts` re-exports them.
 */

/** The default frame payload limit (`maxFrameBytes`); the simulated transport uses it too. */
export const DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024;
/** The default bound on frames queued for one peer (`sendQueueMax`). */
export const DEFAULT_SEND_QUEUE_MAX = 1024;
