/**
 * The backup file's format (see backup.ts for what a backup is): encoding, and the checks that need
 * no state machine (header, length, SHA-256), so that a client can check a download without any
 * server code. backup.ts adds the check that the data restores.
 *
 * Backups: a consistent copy of the KV state machine taken on the leader (GET /v1/snapshot,
 * `tsraft snapshot save`), in one self-describing, checksummed file that seeds the data
 * directories of a new cluster (`tsraft snapshot restore`).
 *
 * The file is a header line, then the state machine's snapshot bytes (KvStateMachine.snapshot(),
 * canonical, with its own format version inside):
 *
 *     {"format":"tsraft-backup","version":1,"clusterId":"tsraft","takenFrom":0,"index":1234,
 *      "term":7,"voters":[0,1,2],"learners":[],"createdAt":"2026-12-02T01:00:00.000Z",
 *      "dataBytes":56789,"sha256":"<64 hex digits>"}\n
 *     <dataBytes bytes>
 *
 * `index` is the log index the data reflects (every write committed before the backup was asked
 * for is in it: the leader confirms its leadership with a ReadIndex round and waits until it has
 * applied that far); `term` is the leader's term then (at least the term of the entry at `index`).
 * `voters`/`learners` are the configuration then, for information: a restore names the new
 * cluster's members itself. `sha256` covers the data bytes; the header is checked field by field,
 * the file's length must be exactly header + dataBytes, and the data must restore into a state
 * machine. Anything else is refused with BackupError, never half-used.
 */
import { createHash } from 'node:crypto';

export const BACKUP_FORMAT = 'tsraft-backup';
export const BACKUP_VERSION = 1;
/** A header line longer than this is not a backup's. */
const HEADER_BYTES_MAX = 64 * 1024;

/** What the leader hands out for a backup. */
export interface BackupSource {
  readonly clusterId: string;
  /** The member that served it (the leader then). */
  readonly takenFrom: number;
  readonly index: number;
  readonly term: number;
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  readonly data: Uint8Array;
}

/** A backup file's header line: the source without its data, and what describes the data. */
export interface BackupHeader extends Omit<BackupSource, 'data'> {
  readonly format: typeof BACKUP_FORMAT;
  readonly version: typeof BACKUP_VERSION;
  readonly createdAt: string;
  readonly dataBytes: number;
  readonly sha256: string;
}

/** A file that is not a usable backup: the reason names what is wrong. */
export class BackupError extends Error {
  override readonly name = 'BackupError';
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The header line (with its newline) for `source`, taken at `createdAt`. */
export function backupHeaderLine(source: BackupSource, createdAt: Date = new Date()): Uint8Array {
  const header: BackupHeader = {
    format: BACKUP_FORMAT,
    version: BACKUP_VERSION,
    clusterId: source.clusterId,
    takenFrom: source.takenFrom,
    index: source.index,
    term: source.term,
    voters: [...source.voters],
    learners: [...source.learners],
    createdAt: createdAt.toISOString(),
    dataBytes: source.data.length,
    sha256: sha256Hex(source.data),
  };
  return new TextEncoder().encode(`${JSON.stringify(header)}\n`);
}

/** A whole backup file's bytes. */
export function encodeBackup(source: BackupSource, createdAt: Date = new Date()): Uint8Array {
  const head = backupHeaderLine(source, createdAt);
  const out = new Uint8Array(head.length + source.data.length);
  out.set(head, 0);
  out.set(source.data, head.length);
  return out;
}

function isIdList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((id) => Number.isSafeInteger(id) && (id as number) >= 0);
}

function parseHeader(text: string): BackupHeader {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BackupError('the header line is not JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new BackupError('the header line is not a JSON object');
  const h = parsed as Record<string, unknown>;
  if (h['format'] !== BACKUP_FORMAT) throw new BackupError(`format is ${JSON.stringify(h['format'])}, not "${BACKUP_FORMAT}"`);
  if (h['version'] !== BACKUP_VERSION) throw new BackupError(`version ${JSON.stringify(h['version'])} is not supported (this tsraft reads version ${BACKUP_VERSION})`);
  const positive = (name: string): number => {
    const v = h[name];
    if (!Number.isSafeInteger(v) || (v as number) < 1) throw new BackupError(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const index = positive('index');
  const term = positive('term');
  const dataBytes = h['dataBytes'];
  if (!Number.isSafeInteger(dataBytes) || (dataBytes as number) < 0) throw new BackupError(`dataBytes must be a non-negative integer, got ${JSON.stringify(dataBytes)}`);
  const takenFrom = h['takenFrom'];
  if (!Number.isSafeInteger(takenFrom) || (takenFrom as number) < 0) throw new BackupError(`takenFrom must be a node id, got ${JSON.stringify(takenFrom)}`);
  if (typeof h['clusterId'] !== 'string' || h['clusterId'] === '') throw new BackupError('clusterId must be a non-empty string');
  if (!isIdList(h['voters']) || h['voters'].length === 0) throw new BackupError('voters must be a non-empty list of node ids');
  if (!isIdList(h['learners'])) throw new BackupError('learners must be a list of node ids');
  if (typeof h['createdAt'] !== 'string' || Number.isNaN(Date.parse(h['createdAt']))) throw new BackupError('createdAt must be a date');
  if (typeof h['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(h['sha256'])) throw new BackupError('sha256 must be 64 lowercase hex digits');
  return {
    format: BACKUP_FORMAT,
    version: BACKUP_VERSION,
    clusterId: h['clusterId'],
    takenFrom: takenFrom as number,
    index,
    term,
    voters: h['voters'],
    learners: h['learners'],
    createdAt: h['createdAt'],
    dataBytes: dataBytes as number,
    sha256: h['sha256'],
  };
}

/**
 * Reads and checks a backup file's header, length and checksum (not yet that the data restores:
 * backup.ts decodeBackup does that too). Throws BackupError naming the first problem.
 */
export function parseBackupFile(bytes: Uint8Array): { header: BackupHeader; data: Uint8Array } {
  const limit = Math.min(bytes.length, HEADER_BYTES_MAX);
  let newline = -1;
  for (let i = 0; i < limit; i++) {
    if (bytes[i] === 0x0a) {
      newline = i;
      break;
    }
  }
  if (newline < 0) throw new BackupError(bytes.length === 0 ? 'the file is empty' : 'no header line: this is not a tsraft backup');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, newline));
  } catch {
    throw new BackupError('the header line is not UTF-8: this is not a tsraft backup');
  }
  const header = parseHeader(text);
  const data = bytes.subarray(newline + 1);
  if (data.length !== header.dataBytes) {
    throw new BackupError(`the header announces ${header.dataBytes} data bytes but the file holds ${data.length} (${data.length < header.dataBytes ? 'truncated' : 'trailing bytes'})`);
  }
  const digest = sha256Hex(data);
  if (digest !== header.sha256) throw new BackupError(`checksum mismatch: the data's SHA-256 is ${digest}, the header says ${header.sha256} (the file is damaged)`);
  return { header, data };
}
