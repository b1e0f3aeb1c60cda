/**
 * The README's library example (under "### The runtime: `RaftNode`") is extracted from README.md
 * and run as written, so that it cannot drift from the code: only its ports are swapped for free
 * ones, and its temporary data directory is kept inside one this test removes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freeLoopbackPorts } from '../../src/testing/ports.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const HEADING = '### The runtime: `RaftNode`';
const PORTS_LINE = 'const ports = [7000, 7001, 7002];';

function readmeSnippet(): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const headingAt = readme.indexOf(HEADING);
  assert.ok(headingAt >= 0, `README.md has no "${HEADING}" section`);
  const block = /```js\n([\s\S]*?)\n```/.exec(readme.slice(headingAt));
  assert.ok(block !== null, `no \`\`\`js block after "${HEADING}"`);
  return block[1]!;
}

test("the README's three-node RaftNode example runs as written", { timeout: 60_000 }, async () => {
  const snippet = readmeSnippet();
  assert.equal(snippet.split(PORTS_LINE).length, 2, `the example should declare its ports once as: ${PORTS_LINE}`);
  const ports = await freeLoopbackPorts(3);
  const dir = mkdtempSync(join(tmpdir(), 'tsraft-readme-'));
  try {
    // A project of its own that has tsraft installed (a link to this repository, built by pretest);
    // its package.json also keeps module resolution from wandering into parent directories.
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'tsraft-readme-example', private: true, type: 'module' }));
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(REPO_ROOT, join(dir, 'node_modules', 'tsraft'), 'dir');
    writeFileSync(join(dir, 'demo.mjs'), snippet.replace(PORTS_LINE, `const ports = [${ports.join(', ')}];`));
    const scratch = join(dir, 'tmp');
    mkdirSync(scratch);
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['demo.mjs'], { cwd: dir, timeout: 45_000, env: { ...process.env, TMPDIR: scratch } }, (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : null;
        resolve({ code, stdout, stderr });
      });
    });
    assert.equal(run.code, 0, `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
    assert.match(run.stdout, /^x=1 committed at index \d+ by node [0-2], apply returned 3$/m);
    assert.match(run.stdout, /role: 'leader'/);
    assert.match(run.stdout, /^leadership moved to node [0-2]$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
