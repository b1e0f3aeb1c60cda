/**
 * The cluster identity of a data directory: which cluster its Raft data belongs to, which member
 * of it this directory is, and the configuration (voter and learner ids) this node STARTED with.
 *
 * Raft's safety rests on every member agreeing on the membership: a node restarted with fewer
 * peers than its data was written with counts a smaller majority, may elect itself and commit
 * alone, and its log diverges from what the real cluster acknowledged. Nothing in the WAL says how
 * many members a node started with (its log holds only the configurations changed since), so the
 * first start writes this file and every later start compares (`ensureClusterIdentity`, which
 * KvServer runs before it opens storage; `tsraft start` checks every node directory with
 * `inspectClusterIdentity` before it spawns anything). Membership changes made on the running
 * cluster (`tsraft member ...`, RaftNode.changeMembership) go through the log and never touch this
 * file: a node is restarted with its original configuration (or with none, KvServer then reads it
 * from here), and the log then says what the membership is now.
 *
 * The file, `cluster-identity.json` in the data directory, is JSON (pretty-printed, UTF-8):
 *
 *     { "format": "tsraft-cluster-identity", "version": 2,
 *       "clusterId": "tsraft", "nodeId": 3,
 *       "members": [ { "id": 0, "address": "127.0.0.1:7000/http://127.0.0.1:8000" }, ... ],
 *       "learners": [ { "id": 3, "address": "127.0.0.1:7003/http://127.0.0.1:8003" } ],
 *       "createdAt": "2025-01-01T00:00:00.000Z",
 *       "checksum": "crc32c:0a1b2c3d" }
 *
 * `members` are the voters of the starting configuration, `learners` its learners (a node that
 * joins a running cluster starts as a learner: it lists itself there and the cluster's voters as
 * members); version 1, written before learners existed, has no `learners` and is still read (as
 * none). A rewrite (an address change) writes version 2.
 *
 * `checksum` is the CRC32C of the UTF-8 bytes of `JSON.stringify` of the object without its
 * `checksum` field (keys in file order), so whitespace does not matter but any changed value does.
 * Members and learners are sorted by id. Addresses (a member address, kv/member-address.ts) are
 * informational: they may legitimately change (a new IP, other ports) and are never a reason to
 * refuse; a changed address is logged and the file is rewritten with the new ones. A different
 * cluster id, own node id, voter-id set or learner-id set is refused (TSRAFT_IDENTITY_MISMATCH); a
 * file that does not parse or verify is refused (TSRAFT_IDENTITY_DAMAGED), as is one of a newer
 * format version (TSRAFT_IDENTITY_UNSUPPORTED). A refusal changes nothing on disk.
 *
 * Writing is durable and atomic: the file is written to `cluster-identity.json.tmp`, fsynced,
 * renamed over `cluster-identity.json`, and the directory is fsynced; a crash leaves the old file
 * (or none) and at most a leftover `.tmp`, which the next start removes.
 *
 * Without the file: an empty (or missing) directory is a first start; a directory holding Raft
 * data (WAL segments or snapshots) was written by a tsraft that did not record identities, and
 * adopts the identity it is started with (logged).
 */
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { ConfigError } from '../runtime/errors.js';
import { crc32c } from './crc32c.js';
import { acquireLock, errorCode, releaseLock, writeAll } from './fs-util.js';
import { parseSegmentName, parseSnapshotName } from './wal-format.js';

/** The identity file's name in a data directory. */
export const CLUSTER_IDENTITY_FILE = 'cluster-identity.json';
/** The `format` field every identity file carries. */
export const CLUSTER_IDENTITY_FORMAT = 'tsraft-cluster-identity';
/** The format version this code writes; it reads this one and every earlier one (1: no learners). */
export const CLUSTER_IDENTITY_VERSION = 2;
const TEMP_SUFFIX = '.tmp';
/** An identity file is small; anything larger is not one. */
const FILE_BYTES_MAX = 1024 * 1024;
const CLUSTER_ID_BYTES_MAX = 255;

/** One member of the starting configuration. */
export interface ClusterMember {
  readonly id: number;
  /** Where it was reached when recorded; for information only (never compared). */
  readonly address?: string;
}

/**
 * What a node is started as: its cluster, its own id, and the starting configuration: `members`,
 * its voters, and `learners` (absent: none). The node itself is one of them.
 */
export interface ClusterIdentity {
  readonly clusterId: string;
  readonly nodeId: number;
  /** The voters of the starting configuration (non-empty). */
  readonly members: readonly ClusterMember[];
  /** The learners of the starting configuration (a node joining a running cluster is one). */
  readonly learners?: readonly ClusterMember[];
}

/** An identity as read from a data directory (`learners` always present, [] for a version 1 file). */
export interface StoredClusterIdentity extends ClusterIdentity {
  readonly learners: readonly ClusterMember[];
  /** The format version the file was written in. */
  readonly version: number;
  /** When it was first recorded (ISO 8601). */
  readonly createdAt: string;
}

export type ClusterIdentityErrorCode = 'TSRAFT_IDENTITY_MISMATCH' | 'TSRAFT_IDENTITY_DAMAGED' | 'TSRAFT_IDENTITY_UNSUPPORTED';

/**
 * A data directory refused for its identity. MISMATCH: `onDisk` and `requested` differ in what
 * `differences` lists. DAMAGED / UNSUPPORTED: the file named by `file` cannot be trusted or read
 * (`reason` says why). Nothing was changed on disk.
 */
export class ClusterIdentityError extends Error {
  override readonly name = 'ClusterIdentityError';
  constructor(
    message: string,
    readonly code: ClusterIdentityErrorCode,
    /** The identity file (absolute path). */
    readonly file: string,
    readonly onDisk: StoredClusterIdentity | null,
    readonly requested: ClusterIdentity | null,
    /** MISMATCH: each difference, e.g. `members 0, 1, 2 on disk, 0 requested (1, 2 missing)`. */
    readonly differences: readonly string[],
    /** DAMAGED / UNSUPPORTED: what is wrong with the file. */
    readonly reason: string | null = null,
  ) {
    super(message);
  }
}

/** What `inspectClusterIdentity` found (without changing anything). */
export type IdentityInspection =
  /** No identity file and no Raft data: a first start. */
  | { readonly kind: 'new' }
  /** Raft data without an identity file (an older tsraft): the requested identity will be adopted. */
  | { readonly kind: 'legacy' }
  /** The identity file agrees; `addressChanges` lists members whose recorded address differs. */
  | { readonly kind: 'match'; readonly stored: StoredClusterIdentity; readonly addressChanges: readonly string[] };

/** What `ensureClusterIdentity` did. */
export interface EnsuredIdentity {
  /** created: first start; adopted: legacy data; matched: the file agreed (addresses maybe updated). */
  readonly outcome: 'created' | 'adopted' | 'matched';
  readonly identity: StoredClusterIdentity;
  /** The identity file (absolute path). */
  readonly file: string;
}

export interface EnsureClusterIdentityOptions {
  /** One line per change made on disk (file written, identity adopted, addresses updated). Default: stderr. */
  readonly log?: (line: string) => void;
  /** fsync the file and the directory (default true; false only for tests). */
  readonly fsync?: boolean;
  /**
   * Called before each step of a write: `write <tmp>`, `fsync <tmp>`, `rename <tmp> <file>`,
   * `fsync-dir <dir>`. For tests: a throw here stops the write at that step, like a crash.
   */
  readonly onWriteStep?: (step: string) => void;
}

// ------------------------------------------------------------------ describing

/** `0, 1, 2` */
function idList(ids: readonly number[]): string {
  return ids.length === 0 ? '(none)' : ids.join(', ');
}

/** The member (voter) ids of an identity, ascending. */
export function memberIds(identity: ClusterIdentity): number[] {
  return identity.members.map((m) => m.id).sort((a, b) => a - b);
}

/** The learner ids of an identity, ascending. */
export function learnerIds(identity: ClusterIdentity): number[] {
  return (identity.learners ?? []).map((m) => m.id).sort((a, b) => a - b);
}

/** `cluster "tsraft", node 0, members 0, 1, 2` (`, learners 3` when it has some) */
export function describeClusterIdentity(identity: ClusterIdentity): string {
  const learners = learnerIds(identity);
  return `cluster ${JSON.stringify(identity.clusterId)}, node ${identity.nodeId}, members ${idList(memberIds(identity))}${learners.length > 0 ? `, learners ${idList(learners)}` : ''}`;
}

/** What differs between the identity on disk and the requested one (empty: they agree). */
export function identityDifferences(onDisk: ClusterIdentity, requested: ClusterIdentity): string[] {
  const out: string[] = [];
  if (onDisk.clusterId !== requested.clusterId) {
    out.push(`cluster id ${JSON.stringify(onDisk.clusterId)} on disk, ${JSON.stringify(requested.clusterId)} requested`);
  }
  if (onDisk.nodeId !== requested.nodeId) out.push(`node id ${onDisk.nodeId} on disk, ${requested.nodeId} requested`);
  const compare = (what: string, disk: number[], asked: number[]): void => {
    const missing = disk.filter((id) => !asked.includes(id));
    const added = asked.filter((id) => !disk.includes(id));
    if (missing.length === 0 && added.length === 0) return;
    const detail = [missing.length > 0 ? `${idList(missing)} missing` : '', added.length > 0 ? `${idList(added)} not recorded` : ''].filter((s) => s !== '');
    out.push(`${what} ${idList(disk)} on disk, ${idList(asked)} requested (${detail.join('; ')})`);
  };
  compare('members', memberIds(onDisk), memberIds(requested));
  compare('learners', learnerIds(onDisk), learnerIds(requested));
  return out;
}

/** Members whose address differs between the two (ids present in both), as `node 1: a -> b`. */
function addressChanges(onDisk: ClusterIdentity, requested: ClusterIdentity): string[] {
  const out: string[] = [];
  const recorded = [...onDisk.members, ...(onDisk.learners ?? [])];
  for (const m of [...requested.members, ...(requested.learners ?? [])]) {
    const old = recorded.find((o) => o.id === m.id);
    if (old === undefined || old.address === m.address) continue;
    out.push(`node ${m.id}: ${old.address ?? '(none)'} -> ${m.address ?? '(none)'}`);
  }
  return out;
}

// ------------------------------------------------------------------ validation and encoding

function identityProblems(identity: ClusterIdentity): string[] {
  const problems: string[] = [];
  const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (typeof identity?.clusterId !== 'string' || identity.clusterId === '' || Buffer.byteLength(identity.clusterId) > CLUSTER_ID_BYTES_MAX) {
    problems.push(`clusterId must be a string of 1..${CLUSTER_ID_BYTES_MAX} bytes, got ${JSON.stringify(identity?.clusterId)}`);
  }
  if (!isId(identity?.nodeId)) problems.push(`nodeId must be a non-negative integer, got ${String(identity?.nodeId)}`);
  if (!Array.isArray(identity?.members) || identity.members.length === 0) {
    problems.push('members must be a non-empty array');
    return problems;
  }
  if (identity.learners !== undefined && !Array.isArray(identity.learners)) {
    problems.push('learners must be an array');
    return problems;
  }
  const seen = new Set<number>();
  for (const [what, list] of [['member', identity.members], ['learner', identity.learners ?? []]] as const) {
    for (const m of list) {
      if (!isId(m?.id)) {
        problems.push(`${what} id must be a non-negative integer, got ${String(m?.id)}`);
        continue;
      }
      // A learner is not also a voter: one id, one role.
      if (seen.has(m.id)) problems.push(`duplicate member id ${m.id}`);
      seen.add(m.id);
      if (m.address !== undefined && typeof m.address !== 'string') problems.push(`${what} ${m.id}: address must be a string`);
    }
  }
  if (isId(identity.nodeId) && !seen.has(identity.nodeId)) problems.push(`members must include this node (id ${identity.nodeId}), as a voter or a learner`);
  return problems;
}

/** A copy with members and learners sorted by id and nothing but the identity's fields. */
function normalize(identity: ClusterIdentity): ClusterIdentity & { readonly learners: readonly ClusterMember[] } {
  const list = (members: readonly ClusterMember[]): ClusterMember[] =>
    [...members].sort((a, b) => a.id - b.id).map((m) => (m.address === undefined ? { id: m.id } : { id: m.id, address: m.address }));
  return { clusterId: identity.clusterId, nodeId: identity.nodeId, members: list(identity.members), learners: list(identity.learners ?? []) };
}

function checksumOf(body: unknown): string {
  return `crc32c:${crc32c(new TextEncoder().encode(JSON.stringify(body))).toString(16).padStart(8, '0')}`;
}

/** The file's bytes for `identity`, recorded at `createdAt`. */
export function encodeClusterIdentity(identity: ClusterIdentity, createdAt: string): Uint8Array {
  const n = normalize(identity);
  const body = {
    format: CLUSTER_IDENTITY_FORMAT,
    version: CLUSTER_IDENTITY_VERSION,
    clusterId: n.clusterId,
    nodeId: n.nodeId,
    members: n.members,
    learners: n.learners,
    createdAt,
  };
  return new TextEncoder().encode(`${JSON.stringify({ ...body, checksum: checksumOf(body) }, null, 2)}\n`);
}

/**
 * Decodes and verifies an identity file's bytes; throws ClusterIdentityError (DAMAGED or
 * UNSUPPORTED) naming `file` if they are not a valid identity.
 */
export function decodeClusterIdentity(bytes: Uint8Array, file: string): StoredClusterIdentity {
  const damaged = (reason: string): ClusterIdentityError =>
    new ClusterIdentityError(
      `the cluster identity file ${file} is damaged (${reason}); it records which cluster the data in ${dirname(file)} belongs to, ` +
        'so the node refuses to start without it. Restore it from a backup, or, if you are sure how this data directory was started, ' +
        'move the file aside: the next start then adopts the identity it is given, as for data written before identities were recorded.',
      'TSRAFT_IDENTITY_DAMAGED',
      file,
      null,
      null,
      [],
      reason,
    );
  if (bytes.length === 0) throw damaged('the file is empty');
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw damaged(`not valid UTF-8 JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw damaged('not a JSON object');
  const { checksum, ...body } = parsed as Record<string, unknown>;
  if (body['format'] === CLUSTER_IDENTITY_FORMAT && typeof body['version'] === 'number' && body['version'] > CLUSTER_IDENTITY_VERSION) {
    const reason = `format version ${body['version']}, this tsraft reads version ${CLUSTER_IDENTITY_VERSION}`;
    throw new ClusterIdentityError(
      `the cluster identity file ${file} was written by a newer tsraft (${reason}); start this data directory with that version`,
      'TSRAFT_IDENTITY_UNSUPPORTED',
      file,
      null,
      null,
      [],
      reason,
    );
  }
  if (typeof checksum !== 'string') throw damaged('no checksum');
  const computed = checksumOf(body);
  if (checksum !== computed) throw damaged(`checksum mismatch: the file says ${checksum}, its content gives ${computed}`);
  if (body['format'] !== CLUSTER_IDENTITY_FORMAT) throw damaged(`format is ${JSON.stringify(body['format'])}, expected ${JSON.stringify(CLUSTER_IDENTITY_FORMAT)}`);
  const version = body['version'];
  if (version !== 1 && version !== 2) throw damaged(`unknown format version ${JSON.stringify(version)}`);
  if (typeof body['createdAt'] !== 'string') throw damaged('createdAt is not a string');
  // Version 1 had no learners; in version 2 the field is always there.
  if (version === 1 && 'learners' in body) throw damaged('a version 1 file has no learners field');
  if (version === 2 && !Array.isArray(body['learners'])) throw damaged('learners is not an array');
  const identity = { clusterId: body['clusterId'], nodeId: body['nodeId'], members: body['members'], learners: body['learners'] ?? [] } as ClusterIdentity;
  const problems = identityProblems(identity);
  if (problems.length > 0) throw damaged(problems.join('; '));
  return { ...normalize(identity), version, createdAt: body['createdAt'] };
}

// ------------------------------------------------------------------ reading and checking

/** The identity recorded in `dir`, or null if it has none. Throws ClusterIdentityError if the file is damaged. */
export async function readClusterIdentity(dir: string): Promise<StoredClusterIdentity | null> {
  const file = resolvePath(dir, CLUSTER_IDENTITY_FILE);
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (error) {
    if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return null;
    throw error;
  }
  let bytes: Uint8Array;
  try {
    const size = (await fh.stat()).size;
    if (size > FILE_BYTES_MAX) {
      throw new ClusterIdentityError(
        `the cluster identity file ${file} is damaged (${size} bytes, an identity file has at most ${FILE_BYTES_MAX})`,
        'TSRAFT_IDENTITY_DAMAGED',
        file,
        null,
        null,
        [],
        `${size} bytes, more than ${FILE_BYTES_MAX}`,
      );
    }
    bytes = await fh.readFile();
  } finally {
    await fh.close();
  }
  return decodeClusterIdentity(bytes, file);
}

/** Whether `dir` holds Raft data: a write-ahead log segment or a snapshot file. */
export async function holdsRaftData(dir: string): Promise<boolean> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return false;
    throw error;
  }
  return names.some((name) => parseSegmentName(name) !== null || parseSnapshotName(name) !== null);
}

function validate(identity: ClusterIdentity): ClusterIdentity {
  const problems = identityProblems(identity);
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `cluster identity: ${p}`));
  return normalize(identity);
}

function mismatch(dir: string, file: string, onDisk: StoredClusterIdentity, requested: ClusterIdentity, differences: string[]): ClusterIdentityError {
  return new ClusterIdentityError(
    `the data directory ${dir} belongs to another cluster configuration: ${file} records ${describeClusterIdentity(onDisk)}, ` +
      `but this start asks for ${describeClusterIdentity(requested)} (${differences.join('; ')}). Refusing to start: running this data ` +
      'as another configuration could lose acknowledged writes. A node always restarts with the configuration it first started with ' +
      '(its original flags), or with none given, to use the recorded one; use a new data directory for a new cluster. The membership ' +
      'of a running cluster is changed with `tsraft member ...`, through the log, never by restarting a node with other peers.',
    'TSRAFT_IDENTITY_MISMATCH',
    file,
    onDisk,
    requested,
    differences,
  );
}

/**
 * Compares `identity` with what `dir` records, changing nothing. Resolves with what a start would
 * do (see IdentityInspection); rejects with ClusterIdentityError (mismatch, damaged or unsupported
 * file) when a start must be refused, or ConfigError when `identity` itself is invalid.
 */
export async function inspectClusterIdentity(dir: string, identity: ClusterIdentity): Promise<IdentityInspection> {
  const requested = validate(identity);
  const stored = await readClusterIdentity(dir);
  if (stored === null) return (await holdsRaftData(dir)) ? { kind: 'legacy' } : { kind: 'new' };
  const differences = identityDifferences(stored, requested);
  if (differences.length > 0) throw mismatch(resolvePath(dir), resolvePath(dir, CLUSTER_IDENTITY_FILE), stored, requested, differences);
  return { kind: 'match', stored, addressChanges: addressChanges(stored, requested) };
}

/**
 * Checks `dir` against `identity` before a node opens its storage there, and records the identity
 * on a first start: run it before `FileStorage.open()` (KvServer does). An empty or missing
 * directory gets the identity (created); one with Raft data but no identity file adopts it
 * (logged); one whose file agrees is accepted (a changed address is logged and recorded). Rejects
 * with ClusterIdentityError, changing nothing, if the file records another cluster id, node id or
 * member-id set, or is damaged; with StorageError TSRAFT_STORAGE_LOCKED if a live process holds
 * the directory. The directory's LOCK is held while checking and writing, then released.
 */
export async function ensureClusterIdentity(dir: string, identity: ClusterIdentity, options: EnsureClusterIdentityOptions = {}): Promise<EnsuredIdentity> {
  const requested = validate(identity);
  const log = options.log ?? ((line: string) => process.stderr.write(`tsraft storage: ${line}\n`));
  const fsync = options.fsync ?? true;
  const absDir = resolvePath(dir);
  const file = join(absDir, CLUSTER_IDENTITY_FILE);
  const created = await mkdir(absDir, { recursive: true });
  if (created !== undefined && fsync) await syncDir(dirname(absDir));
  await acquireLock(absDir);
  try {
    const inspection = await inspectClusterIdentity(absDir, requested);
    await removeLeftover(absDir, file, log);
    const write = async (createdAt: string): Promise<StoredClusterIdentity> => {
      await writeIdentityFile(absDir, file, encodeClusterIdentity(requested, createdAt), fsync, options.onWriteStep);
      return { ...normalize(requested), version: CLUSTER_IDENTITY_VERSION, createdAt };
    };
    switch (inspection.kind) {
      case 'new': {
        const stored = await write(new Date().toISOString());
        log(`first start in ${absDir}: recorded the cluster identity (${describeClusterIdentity(stored)}) in ${file}`);
        return { outcome: 'created', identity: stored, file };
      }
      case 'legacy': {
        const stored = await write(new Date().toISOString());
        log(
          `${absDir} holds Raft data but no cluster identity (written by an older tsraft): adopting the identity it was started with ` +
            `(${describeClusterIdentity(stored)}) and recording it in ${file}`,
        );
        return { outcome: 'adopted', identity: stored, file };
      }
      case 'match': {
        if (inspection.addressChanges.length === 0) return { outcome: 'matched', identity: inspection.stored, file };
        const stored = await write(inspection.stored.createdAt);
        const upgraded = inspection.stored.version < CLUSTER_IDENTITY_VERSION ? ` (format version ${inspection.stored.version} -> ${CLUSTER_IDENTITY_VERSION})` : '';
        log(`member addresses changed since they were recorded (${inspection.addressChanges.join('; ')}); recorded the new ones in ${file}${upgraded}`);
        return { outcome: 'matched', identity: stored, file };
      }
    }
  } finally {
    await releaseLock(absDir);
  }
}

// ------------------------------------------------------------------ writing

/** Removes a `.tmp` a crashed write left behind (the real file is whole or absent). */
async function removeLeftover(dir: string, file: string, log: (line: string) => void): Promise<void> {
  try {
    await unlink(file + TEMP_SUFFIX);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return;
    throw error;
  }
  log(`removed ${file + TEMP_SUFFIX} in ${dir}, an identity write that never completed`);
}

/** Temp file, fsync, rename over `file`, fsync the directory. */
async function writeIdentityFile(dir: string, file: string, bytes: Uint8Array, fsync: boolean, onStep?: (step: string) => void): Promise<void> {
  const temp = file + TEMP_SUFFIX;
  onStep?.(`write ${temp}`);
  const fh = await open(temp, 'w');
  try {
    await writeAll(fh, bytes, 0);
    onStep?.(`fsync ${temp}`);
    if (fsync) await fh.sync();
  } finally {
    await fh.close();
  }
  onStep?.(`rename ${temp} ${file}`);
  await rename(temp, file);
  onStep?.(`fsync-dir ${dir}`);
  if (fsync) await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (error) {
    // Some platforms cannot fsync a directory; there is nothing more to do there.
    if (!['EISDIR', 'EINVAL', 'EPERM', 'EBADF'].includes(errorCode(error) ?? '')) throw error;
  } finally {
    await fh.close();
  }
}
