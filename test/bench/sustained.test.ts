/**
 * bench:sustained without a load run: the verdict (throughput kept, RSS growth, disk use bounded,
 * p99 per interval) on hand-made interval samples, the latency figures of an interval, the /proc,
 * /metrics and data-directory readers, and the option checks (exit 2, nothing started).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  directoryUsage,
  formatErrorKinds,
  formatVerdict,
  latencyStats,
  metricValue,
  parseOptions,
  parseVmRss,
  throughputOf,
  verdict,
  type IntervalSample,
  type NodeSample,
} from '../../bench/sustained.js';

const SCRIPT = fileURLToPath(new URL('../../bench/sustained.js', import.meta.url));
const MIB = 1024 * 1024;

function node(rssMiB: number, diskMiB: number): NodeSample {
  return { rssBytes: rssMiB * MIB, diskBytes: diskMiB * MIB, snapshots: 1, cpuCores: 0.5 };
}

function sample(index: number, writesPerSecond: number, p99Ms: number, nodes: NodeSample[], seconds = 60): IntervalSample {
  return {
    index,
    startSeconds: (index - 1) * seconds,
    seconds,
    scheduled: writesPerSecond * seconds,
    completed: writesPerSecond * seconds,
    p50Ms: 2,
    p99Ms,
    maxMs: p99Ms * 2,
    timeouts: index === 3 ? 2 : 0,
    errors: index === 2 ? 5 : 0,
    nodes,
    leaderLogEntries: 1000,
    otherCores: 0.1,
  };
}

test('sustained: throughput is kept when every interval after the first reaches 95% of the target', () => {
  const samples = [
    sample(1, 500, 40, [node(100, 10)]), // the first interval is warm-up: slow is fine
    sample(2, 960, 20, [node(120, 12)]),
    sample(3, 950, 25, [node(121, 11)]),
  ];
  const v = verdict(samples, 1000);
  assert.equal(v.throughputKept, true);
  assert.deepEqual(v.slowIntervals, []);
  assert.deepEqual(v.p99Ms, [40, 20, 25]);
  assert.equal(v.timeouts, 2);
  assert.equal(v.errors, 5);
  assert.equal(throughputOf(samples[1]!), 960);
  const lines = formatVerdict(v, 60).join('\n');
  assert.match(lines, /throughput kept: yes/);
  assert.match(lines, /p99 per interval of 60 s .*: 40\.0, 20\.0, 25\.0/);
  assert.match(lines, /timed out: 2; .*: 5/);
});

test('sustained: an interval after the first below 95% of the target is named', () => {
  const v = verdict([sample(1, 1000, 10, [node(100, 10)]), sample(2, 949, 10, [node(100, 10)]), sample(3, 1000, 10, [node(100, 10)])], 1000);
  assert.equal(v.throughputKept, false);
  assert.deepEqual(v.slowIntervals, [{ index: 2, writesPerSecond: 949 }]);
  assert.match(formatVerdict(v, 60).join('\n'), /throughput kept: NO, .* in 1 interval\(s\) after the first: #2 949\/s/);
});

test('sustained: RSS growth compares the end of the 2nd interval with the last, per node, in MiB and %', () => {
  const samples = [
    sample(1, 1000, 10, [node(50, 5), node(60, 5)]),
    sample(2, 1000, 10, [node(100, 5), node(200, 5)]),
    sample(3, 1000, 10, [node(300, 5), node(100, 5)]),
    sample(4, 1000, 10, [node(110, 5), node(150, 5)]),
  ];
  const v = verdict(samples, 1000);
  assert.deepEqual(
    v.rssGrowth?.map((g) => [g.node, g.from! / MIB, g.to! / MIB, g.deltaBytes! / MIB, g.percent]),
    [
      [0, 100, 110, 10, 10],
      [1, 200, 150, -50, -25],
    ],
  );
  const text = formatVerdict(v, 60).join('\n');
  assert.match(text, /node 0 100 → 110 MiB \(\+10\.0 MiB, \+10\.0%\)/);
  assert.match(text, /node 1 200 → 150 MiB \(-50\.0 MiB, -25\.0%\)/);
  // One interval: nothing to compare.
  const one = verdict([sample(1, 1000, 10, [node(50, 5)])], 1000);
  assert.equal(one.rssGrowth, undefined);
  assert.match(formatVerdict(one, 60).join('\n'), /needs at least 2 intervals/);
  assert.match(formatVerdict(one, 60).join('\n'), /only one interval/);
});

test('sustained: disk use reports the largest interval against the last, and growth in every interval', () => {
  const sawtooth = verdict([sample(1, 1000, 10, [node(100, 8)]), sample(2, 1000, 10, [node(100, 14)]), sample(3, 1000, 10, [node(100, 9)]), sample(4, 1000, 10, [node(100, 12)])], 1000);
  assert.deepEqual(sawtooth.disk, [{ node: 0, maxBytes: 14 * MIB, maxInterval: 2, lastBytes: 12 * MIB, alwaysGrowing: false }]);
  assert.match(formatVerdict(sawtooth, 60).join('\n'), /disk use .* bounded: node 0 max 14\.0 MiB \(interval 2\), last 12\.0 MiB/);
  const growing = verdict([sample(1, 1000, 10, [node(100, 8)]), sample(2, 1000, 10, [node(100, 9)]), sample(3, 1000, 10, [node(100, 10)])], 1000);
  assert.equal(growing.disk[0]!.alwaysGrowing, true);
  assert.match(formatVerdict(growing, 60).join('\n'), /NOT shown bounded.*grew > 1% in every interval/);
  // Growth of 1% or less between two intervals is not growth.
  assert.equal(verdict([sample(1, 1000, 10, [node(100, 8)]), sample(2, 1000, 10, [node(100, 10)]), sample(3, 1000, 10, [node(100, 10.05)])], 1000).disk[0]!.alwaysGrowing, false);
  // Two intervals are too few to call it growing.
  assert.equal(verdict([sample(1, 1000, 10, [node(100, 8)]), sample(2, 1000, 10, [node(100, 9)])], 1000).disk[0]!.alwaysGrowing, false);
});

test('sustained: a node that could not be read is "?", not zero', () => {
  const missing: NodeSample = { rssBytes: undefined, diskBytes: undefined, snapshots: undefined, cpuCores: undefined };
  const v = verdict([sample(1, 1000, 10, [node(100, 8)]), sample(2, 1000, 10, [missing]), sample(3, 1000, 10, [node(120, 9)])], 1000);
  assert.equal(v.rssGrowth![0]!.deltaBytes, undefined);
  assert.equal(v.disk[0]!.maxBytes, 9 * MIB);
  assert.match(formatVerdict(v, 60).join('\n'), /node 0 \? → 120 MiB \(\? MiB, \?\)/);
});

test('sustained: latency figures of an interval, and empty intervals', () => {
  const latencies = Array.from({ length: 1000 }, (_, i) => 1000 - i); // 1..1000, unsorted
  assert.deepEqual(latencyStats(latencies), { p50Ms: 501, p99Ms: 991, maxMs: 1000 });
  const empty = latencyStats([]);
  assert.ok(Number.isNaN(empty.p50Ms) && Number.isNaN(empty.p99Ms) && Number.isNaN(empty.maxMs));
});

test('sustained: VmRSS from /proc/<pid>/status, a metric from /metrics, error kinds', () => {
  assert.equal(parseVmRss('Name:\tnode\nVmPeak:\t  999 kB\nVmRSS:\t  204800 kB\nRssAnon:\t 1 kB\n'), 204800 * 1024);
  assert.equal(parseVmRss('Name:\tzombie\nState:\tZ\n'), undefined);
  const metrics = '# HELP tsraft_snapshots_taken_total Snapshots.\n# TYPE tsraft_snapshots_taken_total counter\ntsraft_snapshots_taken_total_other 9\ntsraft_snapshots_taken_total 7\n';
  assert.equal(metricValue(metrics, 'tsraft_snapshots_taken_total'), 7);
  assert.equal(metricValue(metrics, 'tsraft_missing'), undefined);
  assert.equal(formatErrorKinds(new Map([['connection closed', 2], ['HTTP 503', 5]])), 'HTTP 503 ×5, connection closed ×2');
  assert.equal(formatErrorKinds(undefined), '');
});

test('sustained: the data directory size sums every file, snapshot files apart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsraft-sustained-test-'));
  try {
    writeFileSync(join(dir, 'wal-0001.log'), Buffer.alloc(1000));
    writeFileSync(join(dir, 'snap-42.snap'), Buffer.alloc(300));
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'snap-43.snap.tmp'), Buffer.alloc(20));
    writeFileSync(join(dir, 'sub', 'identity.json'), Buffer.alloc(5));
    assert.deepEqual(directoryUsage(dir), { bytes: 1325, snapshotBytes: 320 });
    assert.deepEqual(directoryUsage(join(dir, 'absent')), { bytes: 0, snapshotBytes: 0 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sustained: options, and bad ones exit 2 before anything starts', () => {
  const o = parseOptions(['--minutes', '1', '--interval-seconds', '15', '--calibrate-seconds', '3', '--max-raft-state', '2m']);
  assert.equal(o.minutes, 1);
  assert.equal(o.intervalSeconds, 15);
  assert.equal(o.calibrateSeconds, 3);
  assert.equal(o.maxRaftState, '2m');
  assert.equal(o.load, 0.7);
  assert.equal(o.rate, undefined);
  assert.equal(o.keys, 100_000);
  for (const bad of [['--load', 'x'], ['--max-raft-state', 'lots'], ['--minutes', '0'], ['--bogus']]) {
    const run = spawnSync(process.execPath, [SCRIPT, ...bad], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 2, `${bad.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, /usage: npm run bench:sustained/);
  }
});
