/**
 * `tsraft node --log-format json`: every line the process writes, on stdout and stderr, is one JSON
 * record with time, level, node and msg; an unknown format or level is a usage error.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freeLoopbackPorts } from '../../src/testing/ports.js';
import { assertNoStackTrace, MAIN, tsraft, TsraftProcess } from './cli-fixture.js';

test('tsraft node --log-format json: every output line is a JSON record', { timeout: 20_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsraft-logs-cli-'));
  const [raft, http] = await freeLoopbackPorts(2);
  const args = ['node', '--id', '0', '--peers', `0=127.0.0.1:${raft!}/http://127.0.0.1:${http!}`, '--data-dir', join(dir, 'node-0'), '--no-fsync', '--election-timeout-ms', '300-600', '--log-format', 'json', '--log-level', 'debug'];
  const node = new TsraftProcess(spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  try {
    await node.waitFor('the election', /"msg":"election won: this node leads"/, 15_000);
    assert.equal(await node.stopWith('SIGTERM'), 0, node.output);
    const lines = node.output.split('\n').filter((line) => line !== '');
    assert.ok(lines.length >= 4, node.output);
    for (const line of lines) {
      const record = JSON.parse(line) as Record<string, unknown>;
      assert.match(String(record['time']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, line);
      assert.ok(['debug', 'info', 'warn', 'error'].includes(String(record['level'])), line);
      assert.equal(record['node'], 0, line);
      assert.equal(typeof record['msg'], 'string', line);
    }
    const messages = lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
    assert.ok(messages.some((m) => m.startsWith('node 0 up:')), node.output);
    assert.ok(messages.includes('campaign started'), node.output);
    assert.ok(messages.includes('node 0 stopped'), node.output);
  } finally {
    await node.stopWith('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tsraft node: an unknown --log-format or --log-level is a usage error (exit 2)', async () => {
  const common = ['node', '--id', '0', '--peers', '0=127.0.0.1:1/http://127.0.0.1:2', '--data-dir', join(tmpdir(), 'tsraft-logs-never-created')];
  const format = await tsraft([...common, '--log-format', 'xml']);
  assert.equal(format.code, 2, format.stderr);
  assert.match(format.stderr, /--log-format must be one of pretty, json, got "xml"/);
  assertNoStackTrace(format.stderr);
  const level = await tsraft([...common, '--log-level', 'chatty']);
  assert.equal(level.code, 2, level.stderr);
  assert.match(level.stderr, /--log-level must be one of debug, info, warn, error, got "chatty"/);
  const start = await tsraft(['start', '--log-format', 'yaml']);
  assert.equal(start.code, 2, start.stderr);
  assert.match(start.stderr, /--log-format must be one of pretty, json, got "yaml"/);
});
