/**
 * What the tests of the npm entry points share (npm-start.test.ts, test/pack/pack.test.ts): the
 * environment of a user's shell, how to run npm, the pids `tsraft start` prints, and the commands
 * its banner suggests, run the way a user would paste them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alive, sleep } from '../cli/cli-fixture.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * The environment of a user's shell: without what an enclosing `npm test` adds (npm_* variables,
 * INIT_CWD, node_modules/.bin on PATH), so the banner is judged by what a person would have.
 */
export function userShellEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.toLowerCase().startsWith('npm_') || key === 'INIT_CWD' || key.startsWith('TSRAFT_')) continue;
    env[key] = value;
  }
  env['PATH'] = (process.env['PATH'] ?? '')
    .split(delimiter)
    .filter((dir) => !dir.includes('node_modules/.bin') && !dir.includes('node-gyp-bin'))
    .join(delimiter);
  return env;
}

/** How to run npm: the npm that runs this test when there is one, else the one on PATH. */
export function npmCommand(): [string, string[]] {
  const npmCli = process.env['npm_execpath'];
  return npmCli !== undefined && /npm-cli\.[cm]?js$/.test(npmCli) ? [process.execPath, [npmCli]] : ['npm', []];
}

/** How to run npx: beside the npm that runs this test when there is one, else the one on PATH. */
export function npxCommand(): [string, string[]] {
  const [npm, npmArgs] = npmCommand();
  return npmArgs.length === 1 ? [npm, [npmArgs[0]!.replace(/npm-cli\.([cm]?js)$/, 'npx-cli.$1')]] : ['npx', []];
}

/** The node pids in start's table (pid column) and in its restart lines. */
export function nodePids(output: string): number[] {
  return [
    ...[...output.matchAll(/^\d+\s+127\.0\.0\.1:\d+\s+http:\/\/127\.0\.0\.1:\d+\s+(\d+)\s/gm)].map((m) => Number(m[1])),
    ...[...output.matchAll(/node \d+ restarted \(pid (\d+)\)/g)].map((m) => Number(m[1])),
  ];
}

/** The banner's shell commands: the optional `export ...` line, and the `try ...:` line with the directory it names. */
export function bannerCommands(output: string): { script: string; directory: string | undefined; cli: string } {
  const exportLine = /point the CLI at it: (export .+)$/m.exec(output)?.[1];
  const tryLine = /\btry(?: \(in (.+?)\))?: (.+)$/m.exec(output);
  assert.ok(tryLine !== null, `no "try:" line in:\n${output}`);
  const directory = tryLine[1]?.replace(/^'(.*)'$/, '$1');
  const cli = /^(.+?) put /.exec(tryLine[2]!)?.[1];
  assert.ok(cli !== undefined, `no put command in: ${tryLine[2]}`);
  return { script: [exportLine, tryLine[2]].filter((line) => line !== undefined).join('\n'), directory, cli };
}

export function runShell(script: string, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', script], { cwd, env: userShellEnv(), timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function waitUntilGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = pids.filter(alive);
    if (left.length === 0 || Date.now() > deadline) return left;
    await sleep(50);
  }
}

export function assertBannerCommandsWork(run: { code: number | null; stdout: string; stderr: string }, script: string): void {
  assert.equal(run.code, 0, `the banner's commands failed:\n${script}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  assert.match(run.stdout, /^OK$/m, run.stdout);
  assert.match(run.stdout, /^world$/m, run.stdout);
  assert.match(run.stdout, /leader/, run.stdout);
}

