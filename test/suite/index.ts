import type { SuiteTest } from '../../src/harness/suite.js';
import { tests2A } from './raft-2a.js';
import { tests2B } from './raft-2b.js';
import { tests2C } from './raft-2c.js';
import { tests2D } from './raft-2d.js';

/** Every ported 6.824 test, by part, in the order the Go suite runs them. */
export const SUITE: Record<string, SuiteTest[]> = {
  '2A': tests2A,
  '2B': tests2B,
  '2C': tests2C,
  '2D': tests2D,
};

export const PARTS = Object.keys(SUITE);
