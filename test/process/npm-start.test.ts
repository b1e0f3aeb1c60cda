/**
 * `npm start` as docker, systemd and a user run it: a SIGTERM to the npm process must stop every
 * node (npm forwards it to its script's process, which must therefore be `tsraft start` itself, not
 * a shell that would die alone and orphan the cluster), and the commands the start banner suggests
 * must work when pasted into a shell as printed.
 *
 * The real `npm start` path is run with `--ignore-scripts`, which skips only `prestart` (the build,
 * already done by `npm test`'s pretest) and still runs the `start` script with the arguments after
 * `--`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MAIN, TsraftProcess, alive, signal, sleep, startPorts } from '../cli/cli-fixture.js';
import { REPO_ROOT, assertBannerCommandsWork, bannerCommands, nodePids, npmCommand, runShell, userShellEnv, waitUntilGone } from './npm-fixture.js';

describe('npm start', () => {
  it('prints commands that work as printed, and a SIGTERM to npm stops every node', { timeout: 90_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tsraft-npm-start-'));
    const ports = await startPorts();
    const [npm, npmArgs] = npmCommand();
    const proc = spawn(npm, [...npmArgs, 'start', '--ignore-scripts', '--', ...ports.args, '--data-dir', dataDir, '--no-fsync'], {
      cwd: REPO_ROOT,
      env: userShellEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const npmStart = new TsraftProcess(proc);
    const pids: number[] = [];
    try {
      await npmStart.waitFor('the banner', /^\[start\] try.*$/m, 30_000);
      const startPid = Number((await npmStart.waitFor('start pid', /, pid (\d+)/)).at(1));
      pids.push(startPid, ...nodePids(npmStart.output));
      assert.equal(pids.length, 4, `start and three nodes expected:\n${npmStart.output}`);
      assert.ok(!pids.includes(proc.pid!), 'npm itself is not one of the cluster processes');

      // Custom ports: the banner must point the CLI at them; launched through npm: `npx tsraft`, from where npm ran.
      const banner = bannerCommands(npmStart.output);
      assert.equal(banner.cli, 'npx tsraft');
      assert.equal(banner.directory, REPO_ROOT.replace(/\/$/, ''));
      assert.match(banner.script, new RegExp(`TSRAFT_ENDPOINTS=${ports.endpoints.join(',')}`));
      assertBannerCommandsWork(await runShell(banner.script, banner.directory!), banner.script);

      const signalledAt = Date.now();
      proc.kill('SIGTERM');
      const npmExit = await Promise.race([npmStart.exit, sleep(15_000).then(() => 'timeout' as const)]);
      assert.notEqual(npmExit, 'timeout', `npm did not exit within 15 s of SIGTERM:\n${npmStart.output}`);
      const left = await waitUntilGone(pids, 5_000);
      assert.deepEqual(left, [], `processes left running after SIGTERM to npm (pids ${left.join(', ')}):\n${npmStart.output}`);
      assert.match(npmStart.output, /all nodes stopped/);
      assert.equal(npmExit, 0, `npm's exit code:\n${npmStart.output}`);
      assert.ok(Date.now() - signalledAt < 15_000);
    } finally {
      proc.kill('SIGKILL');
      for (const pid of pids) if (alive(pid)) signal(pid, 'SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('started without npm, prints a `node <entry point>` command that works from any directory', { timeout: 90_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tsraft-start-banner-'));
    const elsewhere = mkdtempSync(join(tmpdir(), 'tsraft-elsewhere-'));
    const ports = await startPorts();
    const proc = spawn(process.execPath, [MAIN, 'start', ...ports.args, '--data-dir', dataDir, '--no-fsync'], {
      cwd: elsewhere,
      env: userShellEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const start = new TsraftProcess(proc);
    try {
      await start.waitFor('the banner', /^\[start\] try.*$/m, 30_000);
      const banner = bannerCommands(start.output);
      assert.equal(banner.directory, undefined, 'no directory needed');
      assert.match(banner.cli, /^node \/.*main\.js$/);
      assertBannerCommandsWork(await runShell(banner.script, elsewhere), banner.script);
    } finally {
      await start.stopWith('SIGINT');
      for (const pid of nodePids(start.output)) if (alive(pid)) signal(pid, 'SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
