/**
 * The package as a user gets it: `npm pack`, then `npm install ./tsraft-*.tgz` into a project of
 * its own outside the repository (its dependencies come from the npm registry, or npm's cache).
 * There the CLI runs through npx, `tsraft start`'s banner commands work as printed, and the
 * library's entry points import from the package root. The tarball holds the build (dist/src,
 * dist/ui) and none of the tests or sources.
 *
 * Also `npm run test:pack` alone.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TsraftProcess, alive, signal, startPorts } from '../cli/cli-fixture.js';
import { REPO_ROOT, assertBannerCommandsWork, bannerCommands, nodePids, npmCommand, npxCommand, runShell, userShellEnv } from '../process/npm-fixture.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: [string, string[]], args: readonly string[], cwd: string, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command[0], [...command[1], ...args], { cwd, env: userShellEnv(), timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

function assertRan(result: Run, what: string): void {
  assert.equal(result.code, 0, `${what} failed (exit ${result.code})\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
}

describe('the packed tarball, installed outside the repository', { timeout: 240_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsraft-pack-'));
  const app = join(dir, 'app');
  let tarball = '';
  let contents: string[] = [];

  before(async () => {
    // --ignore-scripts: `prepare` would rebuild, and the build is there already (npm test's pretest).
    const packed = await run(npmCommand(), ['pack', '--ignore-scripts', '--pack-destination', dir], REPO_ROOT);
    assertRan(packed, 'npm pack');
    tarball = join(dir, packed.stdout.trim().split('\n').at(-1)!);
    const listed = await run(['tar', []], ['-tzf', tarball], dir);
    assertRan(listed, 'tar -tzf');
    contents = listed.stdout.split('\n').filter((line) => line !== '');
    // A project of its own: its package.json also stops npm and node from looking further up.
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'tsraft-pack-check', private: true, type: 'module' }));
    assertRan(await run(npmCommand(), ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], app), 'npm install <tarball>');
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('holds the build and the README, not the tests, sources or data', () => {
    for (const file of ['package/package.json', 'package/README.md', 'package/dist/src/index.js', 'package/dist/src/index.d.ts', 'package/dist/src/cli/main.js', 'package/dist/ui/dashboard/index.html']) {
      assert.ok(contents.includes(file), `${file} missing from the tarball`);
    }
    const unwanted = contents.filter((file) => /^package\/(src|test|scripts|bench|data|docs|node_modules|ui)\/|^package\/dist\/(test|scripts|bench)\//.test(file));
    assert.deepEqual(unwanted, []);
  });

  it('runs the CLI through npx: tsraft --help, tsraft start --help', async () => {
    assert.ok((statSync(join(app, 'node_modules', 'tsraft', 'dist', 'src', 'cli', 'main.js')).mode & 0o111) !== 0, 'the bin is executable');
    const help = await run(npxCommand(), ['tsraft', '--help'], app);
    assertRan(help, 'npx tsraft --help');
    assert.match(help.stdout, /^Usage: tsraft /m);
    const startHelp = await run(npxCommand(), ['tsraft', 'start', '--help'], app);
    assertRan(startHelp, 'npx tsraft start --help');
    assert.match(startHelp.stdout, /^Usage: tsraft start /m);
  });

  it('exports KvClient, KvServer and RaftNode from the package root', async () => {
    const script = [
      "import { KvClient, KvClientError, KvServer, RaftNode, FileStorage, TcpTransport } from 'tsraft';",
      "const client = new KvClient({ endpoints: ['http://127.0.0.1:8000'] });",
      "console.log([KvClient, KvClientError, KvServer, RaftNode, FileStorage, TcpTransport].map((f) => typeof f).join(' '), typeof client.put);",
      'client.close?.();',
    ].join('\n');
    writeFileSync(join(app, 'check.mjs'), script);
    const imported = await run([process.execPath, []], ['check.mjs'], app);
    assertRan(imported, 'import from tsraft');
    assert.equal(imported.stdout.trim(), 'function function function function function function function');
  });

  it('npx tsraft start: its banner commands work as printed', { timeout: 90_000 }, async () => {
    const ports = await startPorts();
    const [npx, npxArgs] = npxCommand();
    const proc = spawn(npx, [...npxArgs, 'tsraft', 'start', ...ports.args, '--data-dir', join(dir, 'data'), '--no-fsync'], {
      cwd: app,
      env: userShellEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const start = new TsraftProcess(proc);
    let startPid: number | undefined;
    try {
      await start.waitFor('the banner', /^\[start\] try.*$/m, 30_000);
      startPid = Number((await start.waitFor('start pid', /, pid (\d+)/)).at(1));
      const banner = bannerCommands(start.output);
      assert.equal(banner.cli, 'npx tsraft');
      assert.equal(banner.directory, app);
      assertBannerCommandsWork(await runShell(banner.script, banner.directory!), banner.script);
    } finally {
      // Stopped through start itself: npx runs the bin through a shell of its own.
      if (startPid !== undefined) signal(startPid, 'SIGINT');
      await start.stopWith('SIGINT');
      for (const pid of nodePids(start.output)) if (alive(pid)) signal(pid, 'SIGKILL');
    }
  });
});
