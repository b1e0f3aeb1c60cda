/**
 * Backups: the whole check of a backup file (backup-format.ts: header, length, SHA-256), plus that
 * its data restores into a state machine at the header's index. The CLI and the server use this;
 * the client, which must not depend on server code, checks the format only.
 */
import { CodecError } from '../codec/codec.js';
import type { Snapshot } from '../core/messages.js';
import { BackupError, parseBackupFile, type BackupHeader } from './backup-format.js';
import { KvStateMachine } from './state-machine.js';

export * from './backup-format.js';

/**
 * Reads and checks a whole backup: header, length, checksum, and that the data restores into a
 * state machine at the header's index. Throws BackupError naming the first problem.
 */
export function decodeBackup(bytes: Uint8Array): { header: BackupHeader; data: Uint8Array; keys: number } {
  const { header, data } = parseBackupFile(bytes);
  const snapshot: Snapshot = { index: header.index, term: header.term, data };
  // The replicas use the default session bound too, so what restores here restores there.
  const machine = new KvStateMachine();
  try {
    machine.restore(snapshot);
  } catch (error) {
    if (error instanceof CodecError) throw new BackupError(`the data is not a usable state machine snapshot: ${error.message}`);
    throw error;
  }
  return { header, data, keys: machine.stats.keys };
}
