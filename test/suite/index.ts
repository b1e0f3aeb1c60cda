import type { SuiteTest } from '../../src/harness/suite.js';
import { tests2A } from './raft-2a.js';
import { tests2B } from './raft-2b.js';
import { tests2C } from './raft-2c.js';
import { tests2D } from './raft-2d.js';
import { testsKV3A } from './kv-3a.js';
import { testsKV3B } from './kv-3b.js';

/** Every ported 6.824 test, by part, in the order the Go suite runs them. */
export const SUITE: Record<string, SuiteTest[]> = {
  '2A': tests2A,
  '2B': tests2B,
  '2C': tests2C,
  '2D': tests2D,
  // kvraft (spec §6). Their Passed lines have kvraft's four fields, and the figures' `commands`
  // (the runner's "cmds" column) count clerk operations, not committed entries.
  '3A': testsKV3A,
  '3B': testsKV3B,
};

export const PARTS = Object.keys(SUITE);
