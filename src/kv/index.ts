/** The replicated KV service's deterministic core: commands, results and the state machine. */
export * from './commands.js';
export * from './state-machine.js';
