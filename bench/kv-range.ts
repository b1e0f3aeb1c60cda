/**
 * Ranges over the KV state machine's ordered index, without Raft or HTTP: loads N keys (default
 * 1,000,000: `user/<6-digit group>/<4-digit id>`, 100 keys per group, 32-byte values) into a
 * KvStateMachine through applyCommand (as replicas apply them), then times
 *
 * - prefix reads of one 100-key group (`user/<group>/`), at random groups;
 * - [start, end) reads of 100 keys at random starts (limit 100);
 * - keys-only reads and count-only counts of the same groups;
 * - point reads (get) for comparison;
 * - snapshot() (size and time) and restore() of it.
 *
 * Usage: node <compiled>/bench/kv-range.js [keys]
 */
import { performance } from 'node:perf_hooks';
import { encodeKvCommand } from '../src/kv/commands.js';
import { KvStateMachine, prefixEnd } from '../src/kv/state-machine.js';

const total = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 1_000_000);
const GROUP = 100;
const groups = Math.ceil(total / GROUP);
const enc = new TextEncoder();
const keyOf = (i: number): string => `user/${String(Math.floor(i / GROUP)).padStart(6, '0')}/${String(i % GROUP).padStart(4, '0')}`;

/** A small deterministic PRNG (xorshift32), so runs are comparable. */
let seed = 0x9e3779b9;
function random(n: number): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function time(name: string, runs: number, op: () => number): void {
  // Warm up, then measure each op.
  for (let i = 0; i < Math.min(1000, runs); i++) op();
  const latencies: number[] = [];
  let items = 0;
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) {
    const s = performance.now();
    items += op();
    latencies.push(performance.now() - s);
  }
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  console.log(
    `${name.padEnd(34)} ${(runs / elapsed).toFixed(0).padStart(9)} ops/s   p50 ${(percentile(latencies, 50) * 1000).toFixed(1).padStart(7)} µs   p99 ${(percentile(latencies, 99) * 1000).toFixed(1).padStart(7)} µs   ${(items / runs).toFixed(0)} keys/op`,
  );
}

const sm = new KvStateMachine();
const value = new Uint8Array(32).fill(0x61);
const loadStart = performance.now();
for (let i = 0; i < total; i++) {
  sm.applyCommand(i + 1, encodeKvCommand({ op: 'put', clientId: '', seq: 0, key: enc.encode(keyOf(i)), value }));
}
const loadSeconds = (performance.now() - loadStart) / 1000;
console.log(`loaded ${total} keys in ${loadSeconds.toFixed(1)} s (${(total / loadSeconds).toFixed(0)} puts/s through applyCommand); revision ${sm.revision}; heap ${mib(process.memoryUsage().heapUsed)}`);

const groupPrefix = (): Uint8Array => enc.encode(`user/${String(random(groups)).padStart(6, '0')}/`);
const RUNS = 20_000;
time('prefix read, 100 keys', RUNS, () => {
  const p = groupPrefix();
  return sm.range({ start: p, end: prefixEnd(p) }).kvs.length;
});
time('[start, end) read, limit 100', RUNS, () => sm.range({ start: enc.encode(keyOf(random(total))), end: null, limit: 100 }).kvs.length);
time('prefix read, 100 keys, keys-only', RUNS, () => {
  const p = groupPrefix();
  return sm.range({ start: p, end: prefixEnd(p), keysOnly: true }).kvs.length;
});
time('prefix count, 100 keys', RUNS, () => {
  const p = groupPrefix();
  return sm.count({ start: p, end: prefixEnd(p) });
});
time('get (one key)', RUNS * 5, () => (sm.get(enc.encode(keyOf(random(total)))) === null ? 0 : 1));

const snapStart = performance.now();
const data = sm.snapshot();
const snapMs = performance.now() - snapStart;
console.log(`snapshot(): ${mib(data.length)} in ${snapMs.toFixed(0)} ms`);
const restoreStart = performance.now();
const restored = new KvStateMachine();
restored.restore({ index: sm.appliedIndex, term: 1, data });
console.log(`restore(): ${(performance.now() - restoreStart).toFixed(0)} ms (${restored.stats.keys} keys)`);
const countStart = performance.now();
const all = sm.count({ start: new Uint8Array(0), end: null });
console.log(`count of every key: ${all} in ${(performance.now() - countStart).toFixed(0)} ms`);
