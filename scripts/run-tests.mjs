#!/usr/bin/env node
// Runs every compiled *.test.js under dist/test with node's built-in runner. Files are listed
// explicitly because Node 20 treats --test arguments as paths, not globs, and would otherwise also
// run helper modules that live beside the tests.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

const only = process.argv.slice(2);
const files = findTests('dist/test').filter((file) => only.length === 0 || only.some((o) => file.includes(o)));
if (files.length === 0) {
  console.error('no test files found under dist/test (run `npm run build` first)');
  process.exit(1);
}
// The CLI remembers leaders in the user's cache directory (src/cli/leader-hint.ts): tests that run
// it get a cache of their own, so neither the user's hints nor an earlier run's steer them.
const cache = mkdtempSync(join(tmpdir(), 'tsraft-test-cache-'));
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit', env: { ...process.env, XDG_CACHE_HOME: cache } });
rmSync(cache, { recursive: true, force: true });
process.exit(result.status ?? 1);
