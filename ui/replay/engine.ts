/**
 * What the page runs: the recording engine (src/sim/replay), which runs the simulator here in the
 * browser, the 6.824 suite's tests (test/suite) and the names of the bugs that can be injected.
 */
import { INJECTABLE_BUGS } from '../../src/core/bugs.js';
import { DRIVER_BUGS } from '../../src/driver/ready-driver.js';
import { recordExplore } from '../../src/sim/replay/record-explore.js';
import { recordSuite } from '../../src/sim/replay/record-suite.js';
import type { Recording, ReplaySource } from '../../src/sim/replay/recording.js';
import { SUITE } from '../../test/suite/index.js';

export interface SuiteEntry {
  readonly part: string;
  readonly name: string;
}

/** Every suite test, by part, in the suite's order. */
export const SUITE_TESTS: readonly SuiteEntry[] = Object.values(SUITE).flatMap((tests) => tests.map((test) => ({ part: test.part, name: test.name })));

/** Every bug the explorer can inject (core ones, then driver ones). */
export const BUG_NAMES: readonly string[] = [...INJECTABLE_BUGS, ...DRIVER_BUGS];

/** Runs the source's simulation and records it; onProgress gets the simulated milliseconds done. */
export async function record(source: ReplaySource, onProgress: (virtualMs: number) => void): Promise<Recording> {
  if (source.kind === 'explore') {
    const unknown = (source.bugs ?? []).filter((bug) => !BUG_NAMES.includes(bug));
    if (unknown.length > 0) throw new Error(`unknown bug ${unknown.map((b) => `"${b}"`).join(', ')}; known: ${BUG_NAMES.join(', ')}`);
    return recordExplore(source, { onProgress });
  }
  const test = SUITE[source.part]?.find((t) => t.name === source.name);
  if (test === undefined) {
    const part = SUITE[source.part];
    throw new Error(part === undefined ? `no suite part "${source.part}"; parts: ${Object.keys(SUITE).join(', ')}` : `no test "${source.name}" in part ${source.part}; its tests: ${part.map((t) => t.name).join(', ')}`);
  }
  return recordSuite(test, source.seed, { onProgress });
}
