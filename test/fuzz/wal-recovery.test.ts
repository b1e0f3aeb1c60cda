/**
 * Fuzz: FileStorage recovery (src/storage/recovery.ts) against damaged segment files. Seeded and
 * bounded (see fuzz-config.ts).
 *
 * Each run writes a random sequence of saves (hard states, log writes that append and overwrite,
 * command and configuration entries, at most one snapshot, with and without a configuration) into
 * small segments, one awaited save at a time, and records the state after every save (MemoryStorage
 * is the model). Then it damages random bytes of the segment files (bit flips, overwritten bytes,
 * zero-filled runs, truncations) and reopens. Recovery must either hand back exactly the state after
 * some prefix of the saves (never an entry that was not written, never a changed one), or refuse
 * with StorageError TSRAFT_STORAGE_CORRUPT naming a segment file and a byte offset; never anything
 * else. A directory it recovered reopens to the same state again.
 */
import assert from 'node:assert/strict';
import { open, readFile, readdir, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import * as fc from 'fast-check';
import type { Membership } from '../../src/core/membership.js';
import type { Entry, HardState, PersistentState, Snapshot } from '../../src/core/messages.js';
import type { LogWrite } from '../../src/core/ready.js';
import { FileStorage } from '../../src/storage/file-storage.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { StorageError } from '../../src/storage/storage.js';
import { tempDirs } from '../storage/file-storage-fixture.js';
import { checkAsync, hex } from './fuzz-config.js';
import { snapshotBodyBytes } from '../../src/core/snapshot-body.js';

const { tempDir } = tempDirs('tsraft-fuzz-wal-');

/** The state in a comparable form: every byte of commands and snapshot data, configurations as JSON. */
function describe(state: PersistentState): string {
  const snap = state.snapshot;
  return JSON.stringify({
    hardState: state.hardState,
    snapshot: snap === null ? null : { index: snap.index, term: snap.term, data: hex(snapshotBodyBytes(snap.data)), membership: snap.membership ?? 'none' },
    entries: state.entries.map((e) => ({ index: e.index, term: e.term, command: hex(e.command), membership: e.membership ?? 'none' })),
  });
}

// ---------------------------------------------------------------- the plan of saves

interface SaveStep {
  readonly hardState: boolean;
  readonly termBump: number;
  readonly vote: number;
  /** How far back before lastIndex + 1 the log write starts (clamped to just after the snapshot). */
  readonly back: number;
  /** Per entry: a command (bytes) or a configuration. */
  readonly entries: readonly (Uint8Array | Membership)[];
}

interface Plan {
  readonly steps: readonly SaveStep[];
  /** Before which step the snapshot is saved (modulo the step count), if any. */
  readonly snapshotAt: number | null;
  readonly snapshotBack: number;
  readonly snapshotData: Uint8Array;
  readonly snapshotMembership: Membership | null;
  readonly segmentBytes: number;
}

const id = fc.nat({ max: 9 });
const membershipArb: fc.Arbitrary<Membership> = fc
  .record(
    {
      voters: fc.uniqueArray(id, { minLength: 1, maxLength: 4 }),
      learners: fc.uniqueArray(id, { maxLength: 2 }),
      address: fc.string({ maxLength: 12 }),
    },
    { noNullPrototype: true },
  )
  .map(({ voters, learners, address }) => {
    const v = [...voters].sort((a, b) => a - b);
    const l = learners.filter((x) => !v.includes(x)).sort((a, b) => a - b);
    return { voters: v, outgoing: [], learners: l, addresses: v.map((x) => ({ id: x, address: `${address}:${x}` })) };
  });

const stepArb: fc.Arbitrary<SaveStep> = fc.record(
  {
    hardState: fc.boolean(),
    termBump: fc.nat({ max: 2 }),
    vote: fc.integer({ min: -1, max: 5 }),
    back: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 4 }) }),
    entries: fc.array(fc.oneof({ weight: 4, arbitrary: fc.uint8Array({ maxLength: 90 }) }, { weight: 1, arbitrary: membershipArb }), { maxLength: 4 }),
  },
  { noNullPrototype: true },
);

const planArb: fc.Arbitrary<Plan> = fc.record(
  {
    steps: fc.array(stepArb, { minLength: 1, maxLength: 14 }),
    snapshotAt: fc.option(fc.nat(), { freq: 2 }),
    snapshotBack: fc.nat({ max: 3 }),
    snapshotData: fc.uint8Array({ maxLength: 200 }),
    snapshotMembership: fc.option(membershipArb),
    segmentBytes: fc.constantFrom(128, 300, 700, 64 * 1024),
  },
  { noNullPrototype: true },
);

/** A save as FileStorage.save takes it. */
type Save = readonly [HardState | null, Snapshot | null, LogWrite | null];

/** Turns the plan into valid saves (terms never go back, no gaps, nothing written into the snapshot). */
function buildSaves(plan: Plan): Save[] {
  const saves: Save[] = [];
  let term = 0;
  let snapshotIndex = 0;
  let lastIndex = 0;
  const snapAt = plan.snapshotAt === null ? -1 : plan.snapshotAt % plan.steps.length;
  plan.steps.forEach((step, i) => {
    if (i === snapAt && lastIndex > snapshotIndex) {
      const index = Math.max(snapshotIndex + 1, lastIndex - plan.snapshotBack);
      const snap: Snapshot = plan.snapshotMembership === null
        ? { index, term, data: plan.snapshotData }
        : { index, term, data: plan.snapshotData, membership: plan.snapshotMembership };
      saves.push([null, snap, null]);
      snapshotIndex = index;
    }
    let hardState: HardState | null = null;
    if (step.hardState || step.termBump > 0) {
      term += step.termBump;
      hardState = { term, votedFor: step.vote };
    }
    const fromIndex = Math.max(snapshotIndex + 1, lastIndex + 1 - step.back);
    const entries: Entry[] = step.entries.map((e, k) =>
      e instanceof Uint8Array
        ? { index: fromIndex + k, term, command: e }
        : { index: fromIndex + k, term, command: new Uint8Array(0), membership: e },
    );
    const logWrite: LogWrite | null = entries.length === 0 && step.back === 0 ? null : { fromIndex, entries };
    if (hardState === null && logWrite === null) return;
    saves.push([hardState, null, logWrite]);
    if (logWrite !== null) lastIndex = fromIndex - 1 + entries.length;
  });
  return saves;
}

// ---------------------------------------------------------------- damage

type Damage =
  | { readonly kind: 'flip'; readonly file: number; readonly at: number; readonly bit: number }
  | { readonly kind: 'set'; readonly file: number; readonly at: number; readonly value: number }
  | { readonly kind: 'zeros'; readonly file: number; readonly at: number; readonly length: number }
  | { readonly kind: 'truncate'; readonly file: number; readonly at: number };

const damageArb: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), file: fc.nat(), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }, { noNullPrototype: true }),
  fc.record({ kind: fc.constant('set' as const), file: fc.nat(), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }, { noNullPrototype: true }),
  fc.record({ kind: fc.constant('zeros' as const), file: fc.nat(), at: fc.nat(), length: fc.integer({ min: 1, max: 700 }) }, { noNullPrototype: true }),
  fc.record({ kind: fc.constant('truncate' as const), file: fc.nat(), at: fc.nat() }, { noNullPrototype: true }),
);

const walNames = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((n) => n.startsWith('wal-')).sort();

/** Applies the damage; returns whether any byte actually changed. */
async function applyDamage(dir: string, damage: readonly Damage[]): Promise<boolean> {
  let changed = false;
  for (const d of damage) {
    const files = await walNames(dir);
    if (files.length === 0) return changed;
    const path = join(dir, files[d.file % files.length]!);
    const size = (await stat(path)).size;
    if (d.kind === 'truncate') {
      const to = d.at % (size + 1);
      if (to < size) changed = true;
      await truncate(path, to);
      continue;
    }
    if (size === 0) continue;
    const at = d.at % size;
    const original = await readFile(path);
    let bytes: Uint8Array;
    if (d.kind === 'flip') bytes = Uint8Array.of(original[at]! ^ (1 << d.bit));
    else if (d.kind === 'set') bytes = Uint8Array.of(d.value);
    else bytes = new Uint8Array(Math.min(d.length, size - at));
    if (!Buffer.from(bytes).equals(original.subarray(at, at + bytes.length))) changed = true;
    const fh = await open(path, 'r+');
    try {
      await fh.write(bytes, 0, bytes.length, at);
    } finally {
      await fh.close();
    }
  }
  return changed;
}

// ---------------------------------------------------------------- the property

async function reopen(dir: string): Promise<string> {
  const s = new FileStorage({ dir, fsync: false, log: () => undefined });
  try {
    return describe(await s.open());
  } finally {
    await s.close();
  }
}

let recovered = 0;
let refused = 0;
let undamaged = 0;

test('fuzz WAL: damaged segments recover to a prefix of the saves or are refused with TSRAFT_STORAGE_CORRUPT at a file and offset', async (t) => {
  await checkAsync(
    'WAL recovery',
    fc.asyncProperty(planArb, fc.array(damageArb, { minLength: 1, maxLength: 3 }), async (plan, damage) => {
      const dir = await tempDir();
      const saves = buildSaves(plan);
      const storage = new FileStorage({ dir, fsync: false, segmentBytes: plan.segmentBytes, log: () => undefined });
      const model = new MemoryStorage();
      await storage.open();
      await model.open();
      const states = [describe(model.state())];
      for (const [h, s, l] of saves) {
        await storage.save(h, s, l);
        await model.save(h, s, l);
        states.push(describe(model.state()));
      }
      await storage.close();
      assert.equal(await reopen(dir), states[states.length - 1], 'an undamaged directory recovers the last state');

      const changed = await applyDamage(dir, damage);
      let state: string;
      try {
        state = await reopen(dir);
      } catch (error) {
        if (!(error instanceof StorageError)) throw new Error(`recovery threw ${String(error)}, not a StorageError`, { cause: error });
        assert.equal(error.code, 'TSRAFT_STORAGE_CORRUPT', error.message);
        assert.match(error.message, new RegExp(`${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/wal-[0-9a-f]+\\.log at byte offset \\d+`), error.message);
        assert.ok(changed, `an undamaged directory was refused: ${error.message}`);
        refused++;
        return;
      }
      const k = states.indexOf(state);
      assert.ok(k >= 0, `recovered a state that no prefix of the saves produced:\n${state}\nsaved states:\n${states.join('\n')}`);
      if (!changed) {
        assert.equal(k, states.length - 1, 'nothing was damaged, so nothing may be lost');
        undamaged++;
      } else {
        recovered++;
      }
      assert.equal(await reopen(dir), state, 'a recovered directory reopens to the same state');
    }),
    150,
  );
  t.diagnostic(`recovered ${recovered}, refused ${refused}, undamaged ${undamaged}`);
  // The fuzz must exercise both outcomes, or it checks less than it claims.
  assert.ok(recovered > 0 && refused > 0, `recovered ${recovered}, refused ${refused}, undamaged ${undamaged}`);
});
