/**
 * npm run bench:raft — a 3-node cluster in this process on loopback TCP with FileStorage (fsync
 * on). Clients propose 100-byte commands to the leader at concurrency 1, 16 and 256; each run
 * measures committed entries per second and the latency from propose() to its resolution
 * (committed and applied on the leader). Three runs per concurrency; the median run is reported.
 * For reference it also measures one fdatasync of 4 KiB and one loopback TCP round trip.
 *
 *   npm run bench:raft [-- --seconds 5 --runs 3 --concurrency 1,16,256]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LocalCluster } from '../src/testing/local-cluster.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '1,16,256' },
  },
});
const seconds = Number(values.seconds);
const runs = Number(values.runs);
const levels = values.concurrency.split(',').map(Number);
if (!(seconds > 0) || !Number.isSafeInteger(runs) || runs < 1 || levels.some((c) => !Number.isSafeInteger(c) || c < 1)) {
  console.error('usage: npm run bench:raft -- [--seconds S] [--runs N] [--concurrency 1,16,256]');
  process.exit(2);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function fsyncMs(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'tsraft-fsync-'));
  const file = await open(join(dir, 'probe'), 'w');
  const block = Buffer.alloc(4096, 1);
  const samples: number[] = [];
  for (let i = 0; i < 200; i++) {
    const start = performance.now();
    await file.write(block);
    await file.datasync();
    samples.push(performance.now() - start);
  }
  await file.close();
  rmSync(dir, { recursive: true, force: true });
  return median(samples);
}

async function loopbackRoundTripMs(): Promise<number> {
  const server = createServer((socket) => socket.on('data', (data) => socket.write(data)));
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, () => resolve()));
  const port = (server.address() as { port: number }).port;
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const samples: number[] = [];
  for (let i = 0; i < 500; i++) {
    const start = performance.now();
    await new Promise<void>((resolve) => {
      socket.once('data', () => resolve());
      socket.write(Buffer.alloc(100));
    });
    samples.push(performance.now() - start);
  }
  socket.destroy();
  await new Promise((resolve) => server.close(resolve));
  return median(samples);
}

interface RunResult {
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
}

async function runOnce(concurrency: number): Promise<RunResult> {
  const cluster = await LocalCluster.start({ size: 3, timing: { heartbeatMs: 100, electionTimeoutMinMs: 1000, electionTimeoutMaxMs: 2000 } });
  try {
    const leader = cluster.nodes[await cluster.waitForLeader()]!;
    const payload = new Uint8Array(100).fill(42);
    const latencies: number[] = [];
    let measuring = false;
    let stop = false;
    let committed = 0;
    const client = async (): Promise<void> => {
      while (!stop) {
        const start = performance.now();
        await leader.propose(payload);
        if (measuring) {
          latencies.push(performance.now() - start);
          committed++;
        }
      }
    };
    const clients = Array.from({ length: concurrency }, () => client());
    await new Promise((resolve) => setTimeout(resolve, 1000)); // warm up
    measuring = true;
    const start = performance.now();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    measuring = false;
    const elapsed = (performance.now() - start) / 1000;
    stop = true;
    await Promise.all(clients);
    latencies.sort((a, b) => a - b);
    return { perSecond: committed / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
  } finally {
    await cluster.stop();
  }
}

const fsync = await fsyncMs();
const rtt = await loopbackRoundTripMs();
console.log(`machine: fdatasync of 4 KiB ${fsync.toFixed(3)} ms (median), loopback TCP round trip ${rtt.toFixed(3)} ms (median)`);
console.log(`bar for p50 at concurrency 1: 2 x (one fsync + two round trips) = ${(2 * (fsync + 2 * rtt)).toFixed(3)} ms\n`);
console.log(`${'concurrency'.padStart(11)} ${'entries/s'.padStart(10)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)}   runs (entries/s)`);
for (const concurrency of levels) {
  const results: RunResult[] = [];
  for (let run = 0; run < runs; run++) results.push(await runOnce(concurrency));
  const byThroughput = [...results].sort((a, b) => a.perSecond - b.perSecond);
  const mid = byThroughput[Math.floor(byThroughput.length / 2)]!;
  console.log(
    `${String(concurrency).padStart(11)} ${mid.perSecond.toFixed(0).padStart(10)} ${mid.p50.toFixed(3).padStart(8)} ${mid.p99.toFixed(3).padStart(8)}   ${results.map((r) => r.perSecond.toFixed(0)).join(', ')}`,
  );
}
