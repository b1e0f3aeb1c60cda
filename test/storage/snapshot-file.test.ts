/**
 * Snapshot bodies on disk (src/storage/snapshot-file.ts): FileSnapshotBody reads ranges of an open
 * file (and keeps reading after the file is unlinked), FileSnapshotAssembly receives a transfer into
 * an unnamed file, writeSnapshotBody / checksumFileRange stream a body a piece at a time.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { crc32c } from '../../src/core/crc32c.js';
import { ChunkedSnapshotBody, SNAPSHOT_PIECE_BYTES, snapshotBodyBytes } from '../../src/core/snapshot-body.js';
import { checksumFileRange, FileSnapshotAssembly, FileSnapshotBody, IncomingSnapshotBody, isIncomingSnapshotName, writeSnapshotBody } from '../../src/storage/snapshot-file.js';
import { tempDirs } from './file-storage-fixture.js';
import { patternBytes } from '../unit/pattern-bytes.js';

const { tempDir } = tempDirs('tsraft-snapshot-file-');


const plain = (bytes: Uint8Array): number[] => Array.from(bytes);

/** The file descriptors of this process open on `path` (Linux: /proc/self/fd), or null where that cannot be seen. */
function fdsOn(path: string): number | null {
  if (!existsSync('/proc/self/fd')) return null;
  let count = 0;
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(join('/proc/self/fd', name));
      if (target === path || target === `${path} (deleted)`) count++;
    } catch {
      // The descriptor readdir itself used, closed since.
    }
  }
  return count;
}

// ===================================================================================== FileSnapshotBody

/** V8's gc(), exposed at run time, or undefined where it cannot be. */
function exposedGc(): (() => void) | undefined {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as unknown;
  return typeof gc === 'function' ? (gc as () => void) : undefined;
}

describe('FileSnapshotBody', () => {
  test('reads any range of the data after the header; out-of-range arguments are clamped', async () => {
    const dir = await tempDir();
    const path = join(dir, 'body');
    const header = patternBytes(40, 1);
    const data = patternBytes(1000, 2);
    await writeFile(path, Buffer.concat([header, data]));
    const body = FileSnapshotBody.open(path, 40, 1000);
    assert.equal(body.byteLength, 1000);
    for (const [start, end] of [[0, 1000], [0, 1], [999, 1000], [123, 456], [500, 500]] as const) {
      assert.deepEqual(plain(body.subarray(start, end)), plain(data.subarray(start, end)), `[${start}, ${end})`);
    }
    assert.deepEqual(plain(body.subarray(-10, 5)), plain(data.subarray(0, 5)), 'negative start clamps to 0');
    assert.deepEqual(plain(body.subarray(990, 5000)), plain(data.subarray(990)), 'end clamps to byteLength');
    assert.equal(body.subarray(1000, 2000).byteLength, 0, 'start at the end');
    assert.equal(body.subarray(1500, 2000).byteLength, 0, 'start past the end');
    assert.equal(body.subarray(600, 300).byteLength, 0, 'start after end');
    assert.deepEqual(plain(snapshotBodyBytes(body)), plain(data));
  });

  test('a body shorter than its file reads only its own bytes, never what follows', async () => {
    const dir = await tempDir();
    const path = join(dir, 'body');
    const data = patternBytes(100, 3);
    await writeFile(path, data);
    const body = FileSnapshotBody.open(path, 10, 50);
    assert.deepEqual(plain(body.subarray(0, 1000)), plain(data.subarray(10, 60)));
  });

  test('stays readable after its file is unlinked (and after another file takes the name)', async () => {
    const dir = await tempDir();
    const path = join(dir, 'snap');
    const data = patternBytes(3 * 4096 + 7, 4);
    await writeFile(path, data);
    const body = FileSnapshotBody.open(path, 0, data.length);
    unlinkSync(path);
    assert.deepEqual(await readdir(dir), []);
    assert.deepEqual(plain(body.subarray(0, data.length)), plain(data));
    writeFileSync(path, patternBytes(data.length, 5));
    assert.deepEqual(plain(body.subarray(4000, 9000)), plain(data.subarray(4000, 9000)), 'the old bytes, not the new file’s');
  });

  test('open() refuses a file shorter than header + byteLength, with the path and both sizes in the message', async () => {
    const dir = await tempDir();
    const path = join(dir, 'short');
    await writeFile(path, patternBytes(99, 6));
    const before = fdsOn(path);
    assert.throws(() => FileSnapshotBody.open(path, 40, 60), (error: Error) => {
      assert.ok(error.message.includes(path), error.message);
      assert.match(error.message, /99 bytes, 100 expected/);
      return true;
    });
    if (before !== null) assert.equal(fdsOn(path), before, 'the descriptor opened for the check was closed');
    assert.throws(() => FileSnapshotBody.open(join(dir, 'missing'), 0, 1), /ENOENT/);
    assert.equal(FileSnapshotBody.open(path, 40, 59).byteLength, 59, 'exactly long enough');
  });

  test('reading past the end of a file truncated after open throws a clear error, not short or zero-filled bytes', async () => {
    const dir = await tempDir();
    const path = join(dir, 'truncated');
    const data = patternBytes(5000, 7);
    await writeFile(path, data);
    const body = FileSnapshotBody.open(path, 0, 5000);
    truncateSync(path, 3000);
    assert.deepEqual(plain(body.subarray(0, 3000)), plain(data.subarray(0, 3000)), 'what is still there reads fine');
    assert.throws(() => body.subarray(2000, 4000), (error: Error) => {
      assert.match(error.message, /snapshot file ended 1000 bytes early/);
      assert.match(error.message, /2000\.\.4000 of 5000/);
      return true;
    });
    assert.throws(() => body.subarray(4000, 5000), /ended 1000 bytes early/);
  });

  test('the descriptor is closed once the body is garbage collected (Linux, with gc available)', async (t) => {
    if (fdsOn('/') === null) {
      t.skip('no /proc/self/fd');
      return;
    }
    const gc = exposedGc();
    if (gc === undefined) {
      t.skip('gc cannot be exposed');
      return;
    }
    const dir = await tempDir();
    const path = join(dir, 'collected');
    await writeFile(path, patternBytes(100, 8));
    const read = (): number => {
      // The body lives only in this frame.
      const body = FileSnapshotBody.open(path, 0, 100);
      return body.subarray(0, 100).length;
    };
    assert.equal(read(), 100);
    assert.equal(fdsOn(path), 1, 'the body holds its descriptor');
    for (let i = 0; i < 100 && fdsOn(path) !== 0; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(fdsOn(path), 0, 'the descriptor was closed after collection');
  });
});

// ===================================================================================== FileSnapshotAssembly

describe('FileSnapshotAssembly', () => {
  const HEADER = 36;
  const incoming = async (dir: string): Promise<string[]> => (await readdir(dir)).filter(isIncomingSnapshotName);

  test('writes after the header gap into one incoming file, reads back what was appended, and knows its CRC', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'other'), 'x');
    const assembly = new FileSnapshotAssembly(dir, 42, HEADER);
    const names = await incoming(dir);
    assert.equal(names.length, 1, 'one incoming-*.partial file while the transfer runs');
    const data = patternBytes(200_000, 9);
    const cuts = [0, 1, 1, 65_536, 65_537, 131_000, 200_000];
    for (let i = 1; i < cuts.length; i++) assembly.append(data.subarray(cuts[i - 1]!, cuts[i]!));
    const body = assembly.finish();
    assert.ok(body instanceof IncomingSnapshotBody, 'a body backed by the file, not a buffer');
    assert.equal(body.byteLength, data.length);
    assert.equal(body.checksum, crc32c(data));
    assert.deepEqual(plain(body.subarray(0, data.length)), plain(data));
    assert.deepEqual(plain(body.subarray(65_530, 65_540)), plain(data.subarray(65_530, 65_540)));
    const file = await readFile(join(dir, names[0]!));
    assert.equal(file.length, HEADER + data.length);
    assert.deepEqual(plain(file.subarray(HEADER)), plain(data), 'the data sits after the gap');
  });

  test('the bytes are copied to the file at append: changing the caller’s buffer afterwards changes nothing', async () => {
    const dir = await tempDir();
    const assembly = new FileSnapshotAssembly(dir, 1, HEADER);
    const buffer = patternBytes(64, 10);
    const expected = plain(buffer);
    assembly.append(buffer);
    buffer.fill(0);
    assert.deepEqual(plain(assembly.finish().subarray(0, 64)), expected);
  });

  test('an empty transfer finishes as an empty body', async () => {
    const dir = await tempDir();
    const body = new FileSnapshotAssembly(dir, 3, HEADER).finish();
    assert.equal(body.byteLength, 0);
    assert.equal(body.subarray(0, 10).byteLength, 0);
  });

  test('discard removes the file at once; after it append and finish throw; discard again is harmless', async () => {
    const dir = await tempDir();
    const assembly = new FileSnapshotAssembly(dir, 5, HEADER);
    assembly.append(patternBytes(10, 11));
    assembly.discard();
    assert.throws(() => assembly.append(new Uint8Array(1)), /already finished or discarded/);
    assert.throws(() => assembly.finish(), /already finished or discarded/);
    assembly.discard();
    assert.deepEqual(await readdir(dir), []);
  });

  test('after finish, append and finish throw; the body stays readable; adopt hands the file over once', async () => {
    const dir = await tempDir();
    const assembly = new FileSnapshotAssembly(dir, 6, HEADER);
    const data = patternBytes(10, 12);
    assembly.append(data);
    const body = assembly.finish() as IncomingSnapshotBody;
    assert.throws(() => assembly.append(new Uint8Array(1)), /already finished or discarded/);
    assert.throws(() => assembly.finish(), /already finished or discarded/);
    assembly.discard(); // the body owns the descriptor now: this must not close it or remove the file
    assert.deepEqual(plain(body.subarray(0, 10)), plain(data));
    assert.equal((await incoming(dir)).length, 1);
    const file = body.adopt();
    assert.ok(file !== null && isIncomingSnapshotName(file.path.slice(dir.length + 1)));
    assert.equal(body.adopt(), null, 'a second adopt gets nothing');
    assert.equal(body.dir, dir);
  });

  test('several assemblies of the same index at once are independent', async () => {
    const dir = await tempDir();
    const a = new FileSnapshotAssembly(dir, 7, HEADER);
    const b = new FileSnapshotAssembly(dir, 7, HEADER);
    const x = patternBytes(100, 13);
    const y = patternBytes(50, 14);
    a.append(x.subarray(0, 60));
    b.append(y);
    a.append(x.subarray(60));
    assert.deepEqual(plain(a.finish().subarray(0, 100)), plain(x));
    assert.deepEqual(plain(b.finish().subarray(0, 100)), plain(y));
    assert.equal((await incoming(dir)).length, 2);
  });

  test('a completed body that is never adopted (a snapshot that failed validation) has its file removed once collected', async (t) => {
    const gc = exposedGc();
    if (gc === undefined) {
      t.skip('gc cannot be exposed');
      return;
    }
    const dir = await tempDir();
    (() => {
      const assembly = new FileSnapshotAssembly(dir, 8, HEADER);
      assembly.append(patternBytes(100, 15));
      assembly.finish();
    })();
    for (let i = 0; i < 50 && (await incoming(dir)).length > 0; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(await incoming(dir), []);
  });

  test('a directory that does not exist fails at creation', async () => {
    const dir = await tempDir();
    assert.throws(() => new FileSnapshotAssembly(join(dir, 'nope'), 1, HEADER), /ENOENT/);
  });
});

// ===================================================================================== streaming helpers

describe('writeSnapshotBody / checksumFileRange', () => {
  test('writes a multi-piece body at a position and returns crc32c of its bytes; checksumFileRange agrees', async () => {
    const dir = await tempDir();
    const path = join(dir, 'written');
    const whole = patternBytes(2 * SNAPSHOT_PIECE_BYTES + 12_345, 15);
    const body = new ChunkedSnapshotBody([whole.subarray(0, 3), whole.subarray(3, SNAPSHOT_PIECE_BYTES + 100), new Uint8Array(0), whole.subarray(SNAPSHOT_PIECE_BYTES + 100)]);
    const fh = await open(path, 'w+');
    try {
      const crc = await writeSnapshotBody(fh, body, 40);
      assert.equal(crc, crc32c(whole));
      assert.equal(await checksumFileRange(fh, 40, whole.length), crc32c(whole));
      assert.equal(await checksumFileRange(fh, 40 + 10, 1000), crc32c(whole.subarray(10, 1010)));
      assert.equal(await checksumFileRange(fh, 40, 0), crc32c(new Uint8Array(0)));
      await assert.rejects(checksumFileRange(fh, 40, whole.length + 1), /file ended 1 bytes early/);
    } finally {
      await fh.close();
    }
    const onDisk = await readFile(path);
    assert.equal(onDisk.length, 40 + whole.length);
    assert.ok(Buffer.from(whole).equals(onDisk.subarray(40)));
  });
});

// ===================================================================================== end to end

describe('RaftNode + FileStorage: a follower that needs the snapshot receives it through files', () => {
  test('the follower assembles the transfer through FileStorage.snapshotAssembly and ends with the leader’s state; the leader consulted storedSnapshot', { timeout: 60_000 }, async () => {
    const { RaftNode } = await import('../../src/runtime/node.js');
    const { FileStorage } = await import('../../src/storage/file-storage.js');
    const { MemoryTransportHub } = await import('../../src/transport/memory.js');
    const { snapshotBodiesEqual } = await import('../../src/core/snapshot-body.js');
    type Node = Awaited<ReturnType<typeof RaftNode.start>>;
    type Storage = InstanceType<typeof FileStorage>;

    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    const PADDING = 300_000; // a snapshot of about 10 chunks of 32 KiB
    /** The snapshot format: u32 length of the JSON list of commands, the JSON, then padding. */
    const encodeState = (commands: readonly string[], seed: number): ChunkedSnapshotBody => {
      const json = encoder.encode(JSON.stringify(commands));
      const length = new Uint8Array(4);
      new DataView(length.buffer).setUint32(0, json.length);
      return new ChunkedSnapshotBody([length, json, patternBytes(PADDING, seed)]);
    };
    const decodeState = (data: { byteLength: number; subarray(s: number, e: number): Uint8Array }): string[] => {
      const length = new DataView(data.subarray(0, 4).slice().buffer).getUint32(0);
      return JSON.parse(decoder.decode(data.subarray(4, 4 + length))) as string[];
    };

    interface Member {
      readonly id: number;
      readonly dir: string;
      readonly storage: Storage;
      node: Node | null;
      commands: string[];
      restored: Array<{ index: number; fileBacked: boolean; bytes: Uint8Array }>;
      assemblies: number;
      appendedBytes: number;
      finished: number;
      storedHits: Array<{ index: number; found: boolean }>;
      storedReads: number;
    }
    const hub = new MemoryTransportHub();
    const ids = [0, 1, 2];
    const members: Member[] = [];
    for (const id of ids) {
      const dir = await tempDir();
      const storage = new FileStorage({ dir, fsync: false, log: () => {} });
      const member: Member = { id, dir, storage, node: null, commands: [], restored: [], assemblies: 0, appendedBytes: 0, finished: 0, storedHits: [], storedReads: 0 };
      // Count what goes through the storage's assembly factory and storedSnapshot().
      const baseFactory = storage.snapshotAssembly;
      Object.defineProperty(storage, 'snapshotAssembly', {
        value: (transfer: { index: number; term: number; byteLength: number }) => {
          member.assemblies++;
          const inner = baseFactory(transfer);
          return {
            append: (bytes: Uint8Array) => {
              member.appendedBytes += bytes.length;
              inner.append(bytes);
            },
            finish: () => {
              member.finished++;
              return inner.finish();
            },
            discard: () => inner.discard(),
          };
        },
      });
      const baseStored = storage.storedSnapshot.bind(storage);
      Object.defineProperty(storage, 'storedSnapshot', {
        value: (index: number) => {
          const found = baseStored(index);
          member.storedHits.push({ index, found: found !== null });
          if (found === null) return null;
          // The body handed to the core, wrapped to see whether chunks are read from it.
          const body = found.body;
          const counted = { byteLength: body.byteLength, subarray: (s: number, e: number) => (member.storedReads++, body.subarray(s, e)) };
          return { body: counted, checksum: found.checksum };
        },
      });
      members.push(member);
    }
    const start = async (m: Member): Promise<void> => {
      m.node = await RaftNode.start({
        id: m.id,
        peers: ids,
        storage: m.storage,
        transport: hub.create(m.id),
        timing: { tickMs: 5, heartbeatMs: 20, electionTimeoutMinMs: 150, electionTimeoutMaxMs: 300 },
        snapshotChunkBytes: 32 * 1024,
        transferLeadershipOnStop: false,
        stateMachine: {
          apply: (entry) => {
            if (entry.command.length > 0) m.commands.push(decoder.decode(entry.command));
          },
          restore: (snapshot) => {
            m.restored.push({ index: snapshot.index, fileBacked: !(snapshot.data instanceof Uint8Array), bytes: snapshotBodyBytes(snapshot.data).slice() });
            m.commands = decodeState(snapshot.data);
          },
        },
      });
    };
    const waitFor = async (what: string, done: () => boolean, timeoutMs = 15_000): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      while (!done()) {
        for (const m of members) if (m.node?.fatalError) assert.fail(`node ${m.id} stopped: ${m.node.fatalError.stack ?? m.node.fatalError.message}`);
        if (Date.now() > deadline) assert.fail(`not within ${timeoutMs} ms: ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    const setLinks = (id: number, up: boolean): void => {
      for (const other of ids) {
        if (other === id) continue;
        hub.setLinkUp(id, other, up);
        hub.setLinkUp(other, id, up);
      }
    };

    try {
      for (const m of members) await start(m);
      let leader: Member | undefined;
      await waitFor('a leader', () => (leader = members.find((m) => m.node!.status().role === 'leader')) !== undefined);
      const L = leader!;
      const [F, other] = members.filter((m) => m !== L) as [Member, Member];
      // The first entry of the term commits everywhere, then F is cut off.
      await L.node!.propose(encoder.encode('c0'));
      await waitFor('F applies c0', () => F.commands.length === 1);
      setLinks(F.id, false);
      for (let i = 1; i <= 20; i++) await L.node!.propose(encoder.encode(`c${i}`));
      const target = L.node!.status().appliedIndex;
      await waitFor('the other follower applies everything', () => other.node!.status().appliedIndex >= target);

      // The leader and the other follower snapshot; the leader's log no longer holds what F needs.
      const data = encodeState(L.commands, 1);
      L.node!.snapshot(target, data);
      other.node!.snapshot(target, encodeState(other.commands, 1));
      await waitFor('the leader compacted', () => L.node!.status().snapshotIndex === target);
      await waitFor('the leader stored its snapshot', () => L.storedHits.some((h) => h.index === target && h.found));
      for (let i = 21; i <= 25; i++) await L.node!.propose(encoder.encode(`c${i}`));
      assert.ok(F.node!.status().lastIndex < target, 'F lacks what the snapshot covers');
      assert.equal(F.assemblies, 0);

      setLinks(F.id, true);
      const end = L.node!.status().commitIndex;
      await waitFor('F catches up through the snapshot', () => F.node!.status().appliedIndex >= end);

      assert.equal(F.node!.fatalError, null);
      assert.ok(F.assemblies >= 1, 'the transfer went through FileStorage.snapshotAssembly');
      assert.equal(F.finished, 1, 'one transfer completed');
      assert.ok(F.appendedBytes >= data.byteLength, `${F.appendedBytes} bytes appended`);
      assert.equal(F.restored.length, 1);
      assert.equal(F.restored[0]!.index, target);
      assert.ok(F.restored[0]!.fileBacked, 'the follower restored from a file-backed body, not a buffer');
      assert.ok(snapshotBodiesEqual(F.restored[0]!.bytes, data), 'the leader’s snapshot bytes arrived');
      assert.deepEqual(F.commands, L.commands);
      assert.deepEqual(F.commands, Array.from({ length: 26 }, (_, i) => `c${i}`));
      assert.ok(L.storedHits.some((h) => h.index === target && h.found), 'the leader’s storage.storedSnapshot was consulted');
      assert.ok(L.storedReads > 0, 'the chunks the leader sent were read from the body its storage handed back');
      assert.ok(F.storedHits.some((h) => h.index === target && h.found), 'the follower stored the installed snapshot too');
      assert.ok(readdirSync(F.dir).includes(`snap-${String(target).padStart(16, '0')}.snap`));
      assert.deepEqual(readdirSync(F.dir).filter((n) => n.includes('incoming')), [], 'no assembly file left behind');
    } finally {
      for (const m of members) await m.node?.stop().catch(() => undefined);
    }

    // F's data directory holds the snapshot: reopened, it reads back the leader's bytes.
    const F = members.find((m) => m.restored.length > 0);
    if (F !== undefined) {
      const reopened = new FileStorage({ dir: F.dir, fsync: false, log: () => {} });
      const state = await reopened.open();
      assert.ok(state.snapshot !== null && snapshotBodiesEqual(state.snapshot.data, F.restored[0]!.bytes));
      await reopened.close();
    }
  });
});
