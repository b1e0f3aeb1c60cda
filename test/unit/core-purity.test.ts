/**
 * The core must stay a pure, synchronous, deterministic state machine: no Node modules, no clock,
 * no timers, no randomness of its own, no async code. This test reads the core's source files and
 * fails on any import from outside src/core and on any use of the banned globals.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const CORE_DIR = join(process.cwd(), 'src', 'core');

const BANNED: ReadonlyArray<[RegExp, string]> = [
  [/\bDate\b/, 'Date (a clock)'],
  [/\bperformance\b/, 'performance (a clock)'],
  [/\bprocess\b/, 'process (Node runtime)'],
  [/\bMath\.random\b/, 'Math.random (unseeded randomness)'],
  [/\bcrypto\b/, 'crypto (randomness)'],
  [/\bset(Timeout|Interval|Immediate)\b/, 'timers'],
  [/\bqueueMicrotask\b/, 'queueMicrotask'],
  [/\basync\b/, 'async functions'],
  [/\bawait\b/, 'await'],
  [/\bPromise\b/, 'promises'],
  [/\brequire\s*\(/, 'require()'],
  [/\bWeakRef\b|\bFinalizationRegistry\b/, 'GC-dependent behaviour'],
];

/** Strips comments so that prose about, say, "a clock" in a comment does not trip the check. */
function codeOnly(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

/** Every problem in one file's source; exported shape kept small so the test can check itself. */
export function purityProblems(file: string, source: string): string[] {
  const problems: string[] = [];
  const code = codeOnly(source);
  for (const match of code.matchAll(/\bfrom\s+['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]/g)) {
    const specifier = match[1] ?? match[2] ?? '';
    if (!specifier.startsWith('./')) problems.push(`${file}: imports "${specifier}" from outside src/core`);
  }
  code.split('\n').forEach((line, i) => {
    for (const [pattern, what] of BANNED) {
      if (pattern.test(line)) problems.push(`${file}:${i + 1}: uses ${what}: ${line.trim()}`);
    }
  });
  return problems;
}

test('src/core imports nothing outside itself and uses no clock, timer, randomness or async code', () => {
  const files = readdirSync(CORE_DIR).filter((name) => name.endsWith('.ts'));
  assert.ok(files.includes('raft.ts'), `expected to find the core in ${CORE_DIR}`);
  const problems = files.flatMap((name) => purityProblems(name, readFileSync(join(CORE_DIR, name), 'utf8')));
  assert.deepEqual(problems, []);
});

test('the purity check catches what it is meant to catch', () => {
  assert.equal(purityProblems('x.ts', "import { readFileSync } from 'node:fs';").length, 1);
  assert.equal(purityProblems('x.ts', "import { Network } from '../sim/network.js';").length, 1);
  assert.equal(purityProblems('x.ts', 'const t = Date.now();').length, 1);
  assert.equal(purityProblems('x.ts', 'const r = Math.random();').length, 1);
  assert.equal(purityProblems('x.ts', 'setTimeout(() => 1, 5);').length, 1);
  assert.equal(purityProblems('x.ts', 'async function f() { await g(); }').length, 2);
  assert.equal(purityProblems('x.ts', '// a comment about Date.now() is fine').length, 0);
  assert.equal(purityProblems('x.ts', "import { assert } from './assert.js';").length, 0);
});
