/**
 * Recovery speed of FileStorage: writes a log of 1,000,000 entries with 100-byte commands, in saves
 * of 1000 entries each (fsynced, as a node would), then times open() three times. Writing and each
 * recovery run in their own process, as a restarted node would.
 *
 * Usage: node <compiled>/bench/storage-recovery.js [entries] [--no-fsync] [--keep]
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Entry } from '../src/core/messages.js';
import { RaftNode } from '../src/runtime/node.js';
import { FileStorage } from '../src/storage/file-storage.js';
import { MemoryTransportHub } from '../src/transport/memory.js';

const args = process.argv.slice(2);
const total = Number(args.find((a) => /^\d+$/.test(a)) ?? 1_000_000);
const fsync = !args.includes('--no-fsync');
const BATCH = 1000;
const COMMAND_BYTES = 100;

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** Child process: writes the log into `dir`. */
async function write(dir: string): Promise<void> {
  const writer = new FileStorage({ dir, fsync });
  await writer.open();
  const command = new Uint8Array(COMMAND_BYTES);
  const t0 = performance.now();
  await writer.save({ term: 1, votedFor: 0 }, null, null);
  for (let from = 1; from <= total; from += BATCH) {
    const batch: Entry[] = [];
    for (let i = from; i < from + BATCH && i <= total; i++) {
      command[0] = i & 0xff;
      batch.push({ index: i, term: 1, command: command.slice() });
    }
    await writer.save(null, null, { fromIndex: from, entries: batch });
  }
  const writeMs = performance.now() - t0;
  const { writes, syncs, bytes } = writer.stats;
  await writer.close();
  console.log(`wrote ${total} entries (${mib(bytes)} of log, ${writes} writes, ${syncs} syncs, fsync ${fsync}) in ${writeMs.toFixed(0)} ms`);
}

/**
 * Child process: one restart of a node on `dir`, timed twice over: FileStorage.open() alone, and
 * the whole RaftNode.start() (open, rebuild the core's log, start timers), which is what a
 * restarted node needs before it can take part again.
 */
async function recover(dir: string): Promise<void> {
  const storage = new FileStorage({ dir });
  const t0 = performance.now();
  const state = await storage.open();
  const openMs = performance.now() - t0;
  const last = state.entries[state.entries.length - 1];
  if (state.entries.length !== total || last?.index !== total || last.command.length !== COMMAND_BYTES) {
    throw new Error(`recovered ${state.entries.length} entries, last ${last?.index}`);
  }
  await storage.close();
  const t1 = performance.now();
  const node = await RaftNode.start({
    id: 0,
    peers: [0, 1, 2],
    storage: new FileStorage({ dir }),
    transport: new MemoryTransportHub().create(0),
  });
  const startMs = performance.now() - t1;
  const status = node.status();
  if (status.lastIndex !== total) throw new Error(`restarted node holds ${status.lastIndex} entries`);
  const { heapUsed, rss } = process.memoryUsage();
  console.log(
    `recovered ${state.entries.length} entries: FileStorage.open() ${openMs.toFixed(0)} ms, ` +
      `whole RaftNode.start() ${startMs.toFixed(0)} ms (heap ${mib(heapUsed)}, rss ${mib(rss)})`,
  );
  await node.stop();
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tsraft-recovery-bench-'));
  const child = (...childArgs: string[]): void => {
    const flags = [String(total), ...(fsync ? [] : ['--no-fsync']), ...childArgs];
    process.stdout.write(execFileSync(process.execPath, [fileURLToPath(import.meta.url), ...flags], { encoding: 'utf8' }));
  };
  try {
    child('--write', dir);
    for (let run = 0; run < 3; run++) child('--recover', dir);
  } finally {
    if (args.includes('--keep')) console.log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

const mode = args.findIndex((a) => a === '--write' || a === '--recover');
if (mode < 0) await main();
else if (args[mode] === '--write') await write(args[mode + 1]!);
else await recover(args[mode + 1]!);
