/**
 * bench:vs-etcd without a load run: the CPU accounting from /proc text, the table of medians and its
 * marks, the interleaving order, finding etcd, and the exit 2 (with the install hint, nothing
 * started) when etcd is missing. When etcd is installed, a 3-member cluster is started, found
 * healthy with a leader, written and read through the JSON gateway paths the bench uses, and stopped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EtcdCluster, findEtcd } from '../../bench/etcd-cluster.js';
import { RawConnection, rawRequest } from '../../bench/raw-http.js';
import {
  cpuBetween,
  formatVsTable,
  middle,
  parseProcPidStat,
  parseProcStatBusy,
  roundOrder,
  summarize,
  takeCpuSnapshot,
  type CpuSnapshot,
  type RunResult,
} from '../../bench/vs-etcd.js';

const SCRIPT = fileURLToPath(new URL('../../bench/vs-etcd.js', import.meta.url));

test('vs-etcd: utime + stime from /proc/<pid>/stat, whatever the process name holds', () => {
  // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
  const line = '4242 (odd) name (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 89 10 20 0 12 0 999 1000 200';
  assert.equal(parseProcPidStat(line), 1234 + 567);
  assert.equal(parseProcPidStat('1 (etcd) R 0 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 0 0\n'), 10);
  assert.throws(() => parseProcPidStat('garbage'));
});

test('vs-etcd: the machine busy time from /proc/stat counts user, nice, system, irq, softirq and steal, not idle or iowait', () => {
  const stat = 'cpu  100 20 30 5000 400 6 7 8 90 9\ncpu0 50 10 15 2500 200 3 3 4 45 4\nintr 1 2 3\n';
  assert.equal(parseProcStatBusy(stat), 100 + 20 + 30 + 6 + 7 + 8);
  assert.throws(() => parseProcStatBusy('intr 1\n'));
});

test('vs-etcd: a snapshot reads every pid and /proc/stat; an unreadable pid is missing, not zero', () => {
  const files: Record<string, string> = {
    '/proc/10/stat': '10 (etcd) S 1 1 1 0 -1 0 0 0 0 0 100 50 0 0 20 0 9 0 1 0 0',
    '/proc/stat': 'cpu  1000 0 500 9000 0 0 0 0 0 0\n',
  };
  const snap = takeCpuSnapshot([10, 11], (path) => {
    const text = files[path];
    if (text === undefined) throw new Error('ENOENT');
    return text;
  });
  assert.equal(snap.pidTicks.get(10), 150);
  assert.ok(snap.pidTicks.has(11));
  assert.equal(snap.pidTicks.get(11), undefined);
  assert.equal(snap.machineTicks, 1500);
  assert.ok(snap.selfUs > 0);
});

test('vs-etcd: other load = machine − both systems − the load generator, in µs at 100 ticks per second', () => {
  const snap = (atMs: number, machineTicks: number, ticks: Record<number, number | undefined>, selfUs: number): CpuSnapshot => ({
    atMs,
    machineTicks,
    pidTicks: new Map(Object.entries(ticks).map(([pid, t]) => [Number(pid), t])),
    selfUs,
  });
  const pids = { etcd: [1, 2, 3], tsraft: [4, 5, 6] };
  const before = snap(1000, 10_000, { 1: 10, 2: 10, 3: 10, 4: 0, 5: 0, 6: 0 }, 5_000_000);
  // 2 s: etcd 60+20+20 ticks, tsraft 5 ticks, machine 180 ticks, generator 0.3 s.
  const after = snap(3000, 10_180, { 1: 70, 2: 30, 3: 30, 4: 5, 5: 0, 6: 0 }, 5_300_000);
  const w = cpuBetween(before, after, pids, 100);
  assert.equal(w.wallUs, 2_000_000);
  assert.equal(w.machineUs, 1_800_000);
  assert.equal(w.bySystem.etcd, 1_000_000);
  assert.equal(w.bySystem.tsraft, 50_000);
  assert.equal(w.selfUs, 300_000);
  assert.equal(w.otherUs, 1_800_000 - 1_000_000 - 50_000 - 300_000);
  assert.deepEqual(w.missing, []);
  // A process gone at the end: reported, left out of its system's sum; other load never below 0.
  const gone = cpuBetween(before, snap(3000, 10_001, { 1: 70, 2: 30, 3: undefined, 4: 5, 5: 0, 6: 0 }, 5_300_000), pids, 100);
  assert.deepEqual(gone.missing, [3]);
  assert.equal(gone.bySystem.etcd, 800_000);
  assert.equal(gone.otherUs, 0);
});

test('vs-etcd: rounds alternate etcd, tsraft, tsraft, etcd, ...', () => {
  assert.deepEqual([0, 1, 2, 3].flatMap((r) => roundOrder(r)), ['etcd', 'tsraft', 'tsraft', 'etcd', 'etcd', 'tsraft', 'tsraft', 'etcd']);
});

test('vs-etcd: medians, the ratio tsraft/etcd, disturbed runs and error marks in the table', () => {
  assert.equal(middle([3, 1, 2]), 2);
  assert.equal(middle([4, 1, 2, 3]), 2.5);
  assert.ok(Number.isNaN(middle([])));
  const run = (system: 'etcd' | 'tsraft', round: number, opsPerSecond: number, extra: Partial<RunResult> = {}): RunResult => ({
    system,
    kind: 'writes',
    concurrency: 64,
    round,
    ops: opsPerSecond * 5,
    errors: 0,
    opsPerSecond,
    p50Ms: 10,
    p99Ms: 40,
    cpuUsPerOp: system === 'etcd' ? 300 : 450,
    otherCores: 0.05,
    generatorCores: 0.2,
    firstError: undefined,
    ...extra,
  });
  const runs = [
    run('etcd', 0, 1000),
    run('tsraft', 0, 1500),
    run('tsraft', 1, 1700, { otherCores: 0.6 }),
    run('etcd', 1, 1200),
    run('etcd', 2, 1100),
    run('tsraft', 2, 1600, { errors: 100 }),
    { ...run('etcd', 0, 900), kind: 'reads' as const, concurrency: 1 },
    { ...run('tsraft', 0, 1800), kind: 'reads' as const, concurrency: 1 },
  ];
  const cells = summarize(runs);
  assert.equal(cells.length, 2);
  const w = cells[0]!;
  assert.equal(w.kind, 'writes');
  assert.equal(w.etcd.opsPerSecond, 1100);
  assert.equal(w.tsraft.opsPerSecond, 1600);
  assert.equal(w.disturbedRuns, 1);
  assert.equal(w.runs, 6);
  assert.equal(w.tsraft.errors, 100);
  assert.equal(w.tsraft.erroredRuns, 1, '100 errors in 8100 requests is over 1%');
  assert.equal(w.etcd.erroredRuns, 0);
  const table = formatVsTable(cells);
  const lines = table.split('\n');
  assert.match(lines[0]!, /^op\s+conc\s+etcd ops\/s\s+p50\/p99 ms\s+tsraft ops\/s\s+p50\/p99 ms\s+tsraft\/etcd\s+etcd µs\/op\s+tsraft µs\/op\s+other load\s+disturbed\s+errors e\/t$/);
  const writeRow = lines.find((l) => l.startsWith('write'))!;
  assert.match(writeRow, /^write\s+64\s+1100\s+10\.00\/40\.0\s+1600\s+10\.00\/40\.0\s+1\.45\s+300\s+450\s+5%\s+1\/6 \*\s+0\/100 !$/);
  const readRow = lines.find((l) => l.startsWith('read'))!;
  assert.match(readRow, /^read \(lin\.\)\s+1\s+900\s.*\s2\.00\s+300\s+450\s+5%\s+0\/2\s+0\/0$/);
  assert.match(table, /disturbed runs \(other load > 25% of one core on average\): 1 of 8 runs/);
  assert.match(table, /more than 1% of its requests: 1 run\(s\)/);
});

test('vs-etcd: etcd is found on PATH, else at a fallback path, and only as an executable file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsraft-vs-etcd-test-'));
  try {
    const bin = join(dir, 'bin');
    const other = join(dir, 'other');
    mkdirSync(bin);
    mkdirSync(other);
    writeFileSync(join(other, 'etcd'), '#!/bin/sh\n');
    chmodSync(join(other, 'etcd'), 0o644);
    assert.equal(findEtcd(`${other}`, []), undefined, 'not executable');
    writeFileSync(join(bin, 'etcd'), '#!/bin/sh\n');
    chmodSync(join(bin, 'etcd'), 0o755);
    assert.equal(findEtcd(`${other}:${bin}`, []), join(bin, 'etcd'));
    assert.equal(findEtcd('', [join(dir, 'nope'), join(bin, 'etcd')]), join(bin, 'etcd'));
    assert.equal(findEtcd(undefined, []), findEtcd(process.env.PATH, []));
    assert.equal(findEtcd(dir, [bin]), undefined, 'a directory is not the binary');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('vs-etcd: without etcd the script exits 2 at once with the install hint and starts nothing', () => {
  const runs: string[][] = [['--etcd', '/nonexistent/etcd']];
  // With PATH stripped, etcd is found only at /usr/bin/etcd: when it is not installed there, the plain run must stop too.
  if (!existsSync('/usr/bin/etcd')) runs.push([]);
  for (const args of runs) {
    const started = Date.now();
    const result = spawnSync(process.execPath, [SCRIPT, '--seconds', '1', ...args], { env: { PATH: '' }, encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /apt-get install etcd-server/);
    assert.match(result.stderr, /Nothing was started/);
    assert.equal(result.stdout, '', 'nothing printed about clusters');
    assert.ok(Date.now() - started < 20_000, 'quickly');
  }
});

test('vs-etcd: a 3-member etcd cluster starts, has a leader, takes a put and a linearizable range through the JSON gateway, and stops', async (t) => {
  const binary = findEtcd();
  if (binary === undefined) {
    t.skip('etcd is not installed (apt-get install etcd-server)');
    return;
  }
  const cluster = await EtcdCluster.start(binary);
  try {
    assert.equal(cluster.pids.length, 3);
    const leader = await cluster.waitForLeader(10_000);
    const conn = new RawConnection('127.0.0.1', Number(new URL(leader.clientUrl).port));
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    const header = 'Content-Type: application/json\r\n';
    const put = await conn.exchange(rawRequest('127.0.0.1', 'POST', '/v3/kv/put', header, Buffer.from(JSON.stringify({ key: b64('k1'), value: b64('hello') }))));
    assert.equal(put.status, 200, put.body?.toString());
    const range = await conn.exchange(rawRequest('127.0.0.1', 'POST', '/v3/kv/range', header, Buffer.from(JSON.stringify({ key: b64('k1') }))));
    assert.equal(range.status, 200);
    const body = JSON.parse(range.body!.toString()) as { kvs?: { value: string }[] };
    assert.equal(Buffer.from(body.kvs![0]!.value, 'base64').toString(), 'hello');
    conn.close();
  } finally {
    await cluster.stop();
  }
  assert.equal(existsSync(cluster.root), false);
  assert.deepEqual(cluster.pids, []);
});
