/**
 * Lease commands (what goes into the Raft log to grant and revoke a lease) and the lease part of
 * a result, with their binary encodings (commands.ts dispatches to them by tag). The leases
 * themselves live in the state machine (lease-table.ts); their clocks run only on the leader
 * (lease-keeper.ts), which proposes a revoke once one expires.
 *
 * Command formats (varints and length-prefixed byte strings as in src/codec/codec.ts):
 *
 *     grant  (tag 8, KV_LEASE_GRANT_TAG):   clientId  seq  ttlSeconds
 *     revoke (tag 9, KV_LEASE_REVOKE_TAG):  clientId  seq  id  expired (1 byte: 0 = a client
 *            asked, 1 = the leader found it expired)
 *
 * The lease part of a result (result tag 5, after the revision): id  ttlSeconds  deletedKeys.
 */
import { ByteReader, ByteWriter, CodecError, type ByteSource } from '../codec/codec.js';

/** Shortest and longest lease TTL, in seconds (etcd's longest, too). */
export const LEASE_TTL_SECONDS_MIN = 1;
export const LEASE_TTL_SECONDS_MAX = 9_000_000_000;
/** Most leases the store holds at once: a grant beyond it is refused (`invalid-command`). */
export const LEASES_MAX = 1_000_000;

export const KV_LEASE_GRANT_TAG = 8;
export const KV_LEASE_REVOKE_TAG = 9;

/** Grants a lease of `ttlSeconds`; the store picks its id (the last id it granted, plus one). */
export interface KvLeaseGrantCommand {
  readonly op: 'lease-grant';
  readonly clientId: string;
  readonly seq: number;
  readonly ttlSeconds: number;
}

/** Revokes a lease: it is gone, and every key attached to it is deleted, all at one revision. */
export interface KvLeaseRevokeCommand {
  readonly op: 'lease-revoke';
  readonly clientId: string;
  readonly seq: number;
  readonly id: number;
  /** The leader's lease keeper proposed it because the lease expired (not a client's revoke). */
  readonly expired?: boolean;
}

export type KvLeaseCommand = KvLeaseGrantCommand | KvLeaseRevokeCommand;

/** The lease a grant or revoke acted on (KvResult.lease). */
export interface KvLeaseOutcome {
  readonly id: number;
  /** The TTL it was granted with. */
  readonly ttlSeconds: number;
  /** revoke: the keys deleted with it (0 for a grant). */
  readonly deletedKeys: number;
}

const isPositive = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 1;

/** What is wrong with a lease id (a positive safe integer), or null. */
export function leaseIdProblem(id: unknown): string | null {
  return isPositive(id) ? null : `a lease id must be a positive integer, got ${String(id)}`;
}

/** What is wrong with a lease TTL, or null. */
export function leaseTtlProblem(ttlSeconds: unknown): string | null {
  if (typeof ttlSeconds !== 'number' || !Number.isSafeInteger(ttlSeconds) || ttlSeconds < LEASE_TTL_SECONDS_MIN || ttlSeconds > LEASE_TTL_SECONDS_MAX) {
    return `a lease TTL must be an integer number of seconds in ${LEASE_TTL_SECONDS_MIN}..${LEASE_TTL_SECONDS_MAX}, got ${String(ttlSeconds)}`;
  }
  return null;
}

/** What is wrong with a lease command's own fields (not clientId and seq), or null. */
export function leaseCommandProblem(cmd: KvLeaseCommand): string | null {
  if (cmd.op === 'lease-grant') return leaseTtlProblem(cmd.ttlSeconds);
  const expired = cmd.expired as unknown;
  if (expired !== undefined && typeof expired !== 'boolean') return `expired must be a boolean or absent, got ${typeof expired}`;
  return leaseIdProblem(cmd.id);
}

/** Writes a lease command after its tag, clientId and seq. */
export function writeLeaseCommand(w: ByteWriter, cmd: KvLeaseCommand): void {
  if (cmd.op === 'lease-grant') {
    w.writeVarint(cmd.ttlSeconds, 'ttlSeconds');
  } else {
    w.writeVarint(cmd.id, 'lease id');
    w.writeByte(cmd.expired === true ? 1 : 0);
  }
}

/** Reads the rest of a lease command whose tag, clientId and seq were read. */
export function readLeaseCommand(r: ByteReader, tag: number, clientId: string, seq: number): KvLeaseCommand {
  if (tag === KV_LEASE_GRANT_TAG) return { op: 'lease-grant', clientId, seq, ttlSeconds: r.readVarint() };
  const id = r.readVarint();
  const at = r.offset;
  const expired = r.readByte('expired');
  if (expired > 1) throw new CodecError(`invalid expired byte ${expired} at offset ${at}`);
  return { op: 'lease-revoke', clientId, seq, id, ...(expired === 1 ? { expired: true } : {}) };
}

/** What is wrong with a result's lease part, or null. */
export function leaseOutcomeProblem(lease: KvLeaseOutcome): string | null {
  if (typeof lease !== 'object' || lease === null) return 'not an object';
  const idProblem = leaseIdProblem(lease.id);
  if (idProblem !== null) return idProblem;
  const ttl = leaseTtlProblem(lease.ttlSeconds);
  if (ttl !== null) return ttl;
  const deleted = lease.deletedKeys as unknown;
  if (typeof deleted !== 'number' || !Number.isSafeInteger(deleted) || deleted < 0) return `deletedKeys must be a non-negative integer, got ${String(deleted)}`;
  return null;
}

export function writeLeaseOutcome(w: ByteWriter, lease: KvLeaseOutcome): void {
  w.writeVarint(lease.id, 'lease id');
  w.writeVarint(lease.ttlSeconds, 'ttlSeconds');
  w.writeVarint(lease.deletedKeys, 'deletedKeys');
}

export function readLeaseOutcome(r: ByteSource): KvLeaseOutcome {
  const at = r.offset;
  const lease = { id: r.readVarint(), ttlSeconds: r.readVarint(), deletedKeys: r.readVarint() };
  const problem = leaseOutcomeProblem(lease);
  if (problem !== null) throw new CodecError(`lease result at offset ${at}: ${problem}`);
  return lease;
}
