/**
 * npm run bench:failover — the write gap when a leader goes away, graceful stop against kill -9.
 *
 * A 3-node cluster of `tsraft node` processes (fsync on, default timing: elections after 1–2 s of
 * silence) takes writes from concurrent clients (KvClient, one session each). Each round stops the
 * current leader, alternately with SIGTERM (a graceful stop: the leader hands leadership to the
 * most up-to-date follower first) and with SIGKILL, restarts it, and waits for the cluster to
 * converge. The gap of a round is the longest time between two consecutive acknowledged writes
 * from one second before the stop to ten seconds after it. Rounds of the two kinds interleave, so
 * that both see the same machine; medians are reported. Every acknowledged write is read back at
 * the end: none may be lost.
 *
 *   npm run bench:failover [-- --rounds 6 --clients 8]
 */
import { parseArgs } from 'node:util';
import { KvClient } from '../src/kv/client.js';
import { KvProcessCluster } from '../src/testing/process-cluster.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '6' },
    clients: { type: 'string', default: '8' },
  },
});
const rounds = Number(values.rounds);
const clients = Number(values.clients);
if (!Number.isSafeInteger(rounds) || rounds < 2 || !Number.isSafeInteger(clients) || clients < 1) {
  console.error('usage: npm run bench:failover -- [--rounds N (>= 2)] [--clients C]');
  process.exit(2);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

const cluster = await KvProcessCluster.start({ size: 3, tmpPrefix: 'tsraft-failover-' });
const acked = new Map<string, string>();
const completions: number[] = [];
let running = true;
let failures = 0;

async function writer(c: number): Promise<void> {
  const client = new KvClient({ endpoints: cluster.endpoints, timeoutMs: 15_000 });
  for (let i = 0; running; i++) {
    const key = `w${c}-${i}`;
    const value = `v${i}`;
    try {
      await client.put(key, value);
      acked.set(key, value);
      completions.push(performance.now());
    } catch {
      failures++;
      await sleep(20);
    }
  }
}

/** The longest pause between two consecutive acknowledged writes within [from, to]. */
function longestGap(from: number, to: number): number {
  const times = completions.filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
  return gap;
}

const writers = Array.from({ length: clients }, (_, c) => writer(c));
const gaps: Record<'graceful' | 'kill9', number[]> = { graceful: [], kill9: [] };
try {
  await sleep(2000);
  for (let round = 0; round < rounds; round++) {
    const kind = round % 2 === 0 ? 'graceful' : 'kill9';
    const leader = await cluster.waitForLeader(20_000);
    await sleep(1000);
    const stoppedAt = performance.now();
    if (kind === 'graceful') await leader.stop();
    else await leader.kill9();
    await sleep(10_000);
    const gap = longestGap(stoppedAt - 1000, stoppedAt + 10_000);
    gaps[kind].push(gap);
    console.log(`round ${round + 1}/${rounds}: ${kind === 'graceful' ? 'SIGTERM (handover)' : 'kill -9'} of leader n${leader.id}: longest write gap ${gap.toFixed(0)} ms`);
    leader.start();
    await cluster.waitForConvergence(30_000);
  }
} finally {
  running = false;
  await Promise.allSettled(writers);
}
const reader = new KvClient({ endpoints: cluster.endpoints, timeoutMs: 15_000 });
let lost = 0;
for (const [key, value] of acked) if ((await reader.get(key)) !== value) lost++;
await cluster.stop();

console.log('');
console.log(`write gap when the leader stops (median of ${gaps.graceful.length} rounds each, ${clients} clients, fsync on):`);
console.log(`  graceful stop (SIGTERM, leadership handed over): ${median(gaps.graceful).toFixed(0)} ms   [${gaps.graceful.map((g) => g.toFixed(0)).join(', ')}]`);
console.log(`  kill -9 (an election after 1-2 s of silence):    ${median(gaps.kill9).toFixed(0)} ms   [${gaps.kill9.map((g) => g.toFixed(0)).join(', ')}]`);
console.log(`${acked.size} writes acknowledged, ${lost} lost; ${failures} client calls failed and were retried`);
if (lost > 0) process.exitCode = 1;
