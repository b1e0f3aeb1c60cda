/**
 * The replicated half of leases: which leases exist, with the TTL each was granted, and which keys
 * are attached to each. Part of the KV state machine (state-machine.ts) and of its snapshot; pure
 * and deterministic like it. Time is not here: a lease's clock runs on the leader alone
 * (lease-keeper.ts), which proposes a revoke through the log once the lease expires, so every
 * replica deletes its keys at the same revision.
 *
 * Ids are granted in order: the last id granted plus one (ids are never reused, even after a
 * revoke), so every replica picks the same id for the same grant.
 *
 * Snapshot section (after the sessions; varints): lastId, lease count, then per lease in ascending
 * id order: id, ttlSeconds. Every id is in 1..lastId; the attached keys are not written (each key
 * records its lease) and are rebuilt by attach() as the keys are restored.
 */
import type { ByteSource, ByteWriter } from '../codec/codec.js';
import { CodecError } from '../codec/codec.js';
import { leaseTtlProblem, LEASES_MAX } from './lease-commands.js';

export interface LeaseInfo {
  readonly id: number;
  readonly ttlSeconds: number;
  /** Keys attached to it now. */
  readonly keyCount: number;
}

interface Lease {
  readonly ttlSeconds: number;
  /** Attached keys, in their latin1 form (state-machine.ts). */
  readonly keys: Set<string>;
}

export class LeaseTable {
  private readonly leases = new Map<number, Lease>();
  private lastId = 0;

  get size(): number {
    return this.leases.size;
  }

  has(id: number): boolean {
    return this.leases.has(id);
  }

  info(id: number): LeaseInfo | null {
    const lease = this.leases.get(id);
    return lease === undefined ? null : { id, ttlSeconds: lease.ttlSeconds, keyCount: lease.keys.size };
  }

  /** Every lease, in ascending id order. */
  list(): LeaseInfo[] {
    return [...this.leases.keys()].sort((a, b) => a - b).map((id) => this.info(id)!);
  }

  /** The keys attached to a lease, in ascending byte order (latin1 strings compare so). */
  keysOf(id: number): string[] {
    const lease = this.leases.get(id);
    return lease === undefined ? [] : [...lease.keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Grants a new lease; null when LEASES_MAX are held already. */
  grant(ttlSeconds: number): number | null {
    if (this.leases.size >= LEASES_MAX) return null;
    const id = ++this.lastId;
    this.leases.set(id, { ttlSeconds, keys: new Set() });
    return id;
  }

  /** Removes a lease; returns its attached keys in ascending byte order (the caller deletes them), or null if it does not exist. */
  revoke(id: number): { ttlSeconds: number; keys: string[] } | null {
    const lease = this.leases.get(id);
    if (lease === undefined) return null;
    const keys = this.keysOf(id);
    this.leases.delete(id);
    return { ttlSeconds: lease.ttlSeconds, keys };
  }

  /** Attaches a key to an existing lease (an invariant: the caller checked it exists). */
  attach(id: number, k: string): void {
    const lease = this.leases.get(id);
    if (lease === undefined) throw new Error(`invariant: key attached to lease ${id}, which does not exist`);
    lease.keys.add(k);
  }

  detach(id: number, k: string): void {
    this.leases.get(id)?.keys.delete(k);
  }

  write(w: ByteWriter): void {
    w.writeVarint(this.lastId, 'last lease id');
    w.writeVarint(this.leases.size, 'lease count');
    for (const { id, ttlSeconds } of this.list()) {
      w.writeVarint(id, 'lease id');
      w.writeVarint(ttlSeconds, 'ttlSeconds');
    }
  }

  /** Reads a snapshot's lease section into a new table (keys attach later). Throws CodecError. */
  static read(r: ByteSource): LeaseTable {
    const table = new LeaseTable();
    table.lastId = r.readVarint();
    const countAt = r.offset;
    const count = r.readVarint();
    if (count > LEASES_MAX || count * 2 > r.remaining) throw new CodecError(`KV snapshot: ${count} leases at offset ${countAt} cannot fit in ${r.remaining} bytes`);
    let previous = 0;
    for (let i = 0; i < count; i++) {
      const at = r.offset;
      const id = r.readVarint();
      if (id <= previous || id > table.lastId) throw new CodecError(`KV snapshot: lease id ${id} at offset ${at} is not in ${previous + 1}..${table.lastId}`);
      previous = id;
      const ttlSeconds = r.readVarint();
      const problem = leaseTtlProblem(ttlSeconds);
      if (problem !== null) throw new CodecError(`KV snapshot: lease ${id} at offset ${at}: ${problem}`);
      table.leases.set(id, { ttlSeconds, keys: new Set() });
    }
    return table;
  }
}
