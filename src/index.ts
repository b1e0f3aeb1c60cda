/** tsraft: the Raft consensus algorithm as a pure, deterministic state machine. */
export * from './core/index.js';
export * as codec from './codec/index.js';
