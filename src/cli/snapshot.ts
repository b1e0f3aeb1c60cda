/**
 * Backups (src/kv/backup.ts):
 *
 *     tsraft snapshot save FILE       a consistent backup from the leader, checked, written atomically
 *     tsraft snapshot status FILE     what a backup holds, after checking it
 *     tsraft snapshot restore FILE --data-dir DIR --id N --peers LIST
 *                                     seeds one member's data directory of a NEW cluster from a backup
 *
 * A restore is run once per member of the new cluster, each with the same FILE and --peers: every
 * directory then starts from the same snapshot (the backup's index and term) with the new members
 * as its configuration, and `tsraft node --data-dir DIR` starts the member (its identity is recorded
 * there). A directory that already holds anything is refused: a restore never overwrites data.
 *
 * Exit codes: 0 done, 1 a damaged or unusable backup, 2 usage error (an existing FILE without
 * --force, a non-empty --data-dir, an --id not in --peers), 3 cluster unavailable (save).
 */
import { Command } from 'commander';
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { initialMembership } from '../core/membership.js';
import { BackupError, decodeBackup, type BackupHeader } from '../kv/backup.js';
import { formatMemberAddress } from '../kv/member-address.js';
import { ensureClusterIdentity } from '../storage/cluster-identity.js';
import { FileStorage } from '../storage/file-storage.js';
import { CliError, EXIT, UsageError, errorMessage, parseNodeId, parsePeers, PEERS_SYNTAX } from './common.js';
import { callCluster, makeClient, printLine, withClientOptions, type ClientOptions } from './kv-common.js';
import { printJson, wantsJson, withOutputOption, type OutputOptions } from './values.js';

interface SaveOptions extends ClientOptions, OutputOptions {
  force?: boolean;
}

interface StatusOptions extends OutputOptions {}

interface RestoreOptions extends OutputOptions {
  dataDir?: string;
  id?: string;
  peers?: string;
  clusterId?: string;
  fsync: boolean;
}

function describeHeader(header: BackupHeader, keys: number, bytes: number): string {
  return (
    `index ${header.index}, term ${header.term}, ${keys} key${keys === 1 ? '' : 's'}, ${bytes} bytes, cluster "${header.clusterId}", ` +
    `taken from node ${header.takenFrom} at ${header.createdAt} (voters ${header.voters.join(',')}${header.learners.length > 0 ? `, learners ${header.learners.join(',')}` : ''}), sha256 ${header.sha256}`
  );
}

/** Reads and checks a backup file; a missing or damaged one is a CliError naming the problem. */
function readBackup(file: string): { header: BackupHeader; data: Uint8Array; keys: number; bytes: number } {
  let bytes: Uint8Array;
  try {
    if (statSync(file).isDirectory()) throw new CliError(`${file} is a directory, not a backup file`, EXIT.usage);
    bytes = readFileSync(file);
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`cannot read ${file}: ${errorMessage(error)}`, EXIT.usage);
  }
  try {
    return { ...decodeBackup(bytes), bytes: bytes.length };
  } catch (error) {
    if (error instanceof BackupError) throw new CliError(`${file} is not a usable backup: ${error.message}`, EXIT.failed);
    throw error;
  }
}

/** Writes `bytes` to `file` durably and atomically: a temporary file, fsync, rename, fsync of the directory. */
function writeAtomically(file: string, bytes: Uint8Array): void {
  const temporary = `${file}.part`;
  const fd = openSync(temporary, 'w', 0o600);
  try {
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, Math.min(bytes.length - at, 1 << 20));
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(temporary, { force: true });
    throw error;
  }
  closeSync(fd);
  renameSync(temporary, file);
  try {
    const dir = openSync(dirname(resolve(file)), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  } catch {
    // Some filesystems cannot fsync a directory; the file itself is durable.
  }
}

export async function runSnapshotSave(file: string, options: SaveOptions): Promise<void> {
  if (existsSync(file) && options.force !== true) throw new UsageError(`${file} exists; give --force to replace it`);
  const client = makeClient(options);
  const downloaded = await callCluster('snapshot save', () => client.backup());
  let backup: { bytes: Uint8Array; header: BackupHeader; keys: number };
  try {
    backup = { bytes: downloaded.bytes, ...decodeBackup(downloaded.bytes) };
  } catch (error) {
    if (error instanceof BackupError) throw new CliError(`snapshot save: the backup received is not usable: ${error.message}`, EXIT.failed);
    throw error;
  }
  try {
    writeAtomically(file, backup.bytes);
  } catch (error) {
    throw new CliError(`snapshot save: cannot write ${file}: ${errorMessage(error)}`, EXIT.failed);
  }
  if (wantsJson(options)) {
    printJson({ file, bytes: backup.bytes.length, keys: backup.keys, ...backup.header });
    return;
  }
  printLine(`saved ${file}: ${describeHeader(backup.header, backup.keys, backup.bytes.length)}`);
}

export function runSnapshotStatus(file: string, options: StatusOptions): void {
  const backup = readBackup(file);
  if (wantsJson(options)) {
    printJson({ file, bytes: backup.bytes, keys: backup.keys, ...backup.header });
    return;
  }
  printLine(`${file}: ${describeHeader(backup.header, backup.keys, backup.bytes)}`);
}

export async function runSnapshotRestore(file: string, options: RestoreOptions): Promise<void> {
  if (options.dataDir === undefined) throw new UsageError('--data-dir is required: the new member\'s data directory (it must not exist or be empty)');
  if (options.id === undefined) throw new UsageError('--id is required: which member of --peers this directory is for');
  if (options.peers === undefined) throw new UsageError(`--peers is required: every member of the new cluster, ${PEERS_SYNTAX}`);
  const id = parseNodeId(options.id, '--id');
  const peers = parsePeers(options.peers);
  if (!peers.some((p) => p.id === id)) throw new UsageError(`--id ${id} is not one of --peers (${peers.map((p) => p.id).join(', ')})`);
  const dir = resolve(options.dataDir);
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new UsageError(`--data-dir ${dir} exists and is not a directory`);
    if (readdirSync(dir).length > 0) throw new UsageError(`--data-dir ${dir} is not empty: a restore never overwrites data (give a new directory)`);
  }
  const backup = readBackup(file);
  const clusterId = options.clusterId ?? backup.header.clusterId;
  const members = peers.map((p) => ({ id: p.id, address: formatMemberAddress(p) }));
  try {
    await ensureClusterIdentity(dir, { clusterId, nodeId: id, members }, { fsync: options.fsync, log: () => undefined });
    const storage = new FileStorage({ dir, fsync: options.fsync, log: () => undefined });
    await storage.open();
    try {
      await storage.save(
        { term: backup.header.term, votedFor: -1 },
        { index: backup.header.index, term: backup.header.term, data: backup.data, membership: initialMembership(peers.map((p) => p.id), [], members) },
        null,
      );
    } finally {
      await storage.close();
    }
  } catch (error) {
    throw new CliError(`snapshot restore: cannot write ${dir}: ${errorMessage(error)}`, EXIT.failed);
  }
  if (wantsJson(options)) {
    printJson({ dataDir: dir, id, clusterId, members: peers.map((p) => p.id), index: backup.header.index, term: backup.header.term, keys: backup.keys });
    return;
  }
  printLine(
    `restored ${file} (index ${backup.header.index}, ${backup.keys} keys) into ${dir} as node ${id} of cluster "${clusterId}" with members ${peers.map((p) => p.id).join(', ')}\n` +
      `start it with: tsraft node --data-dir ${dir}`,
  );
}

export function snapshotCommand(): Command {
  const save = withOutputOption(withClientOptions(new Command('save')))
    .description('save a consistent backup of the whole store, from the leader, to FILE (checked, then written atomically)')
    .argument('<file>', 'where to write the backup')
    .option('--force', 'replace FILE if it exists')
    .addHelpText('after', '\nThe leader confirms its leadership first, so the backup holds every write acknowledged before it. A large store takes a while to send: raise --timeout. Needs the admin role when the cluster checks tokens.')
    .action(async (file: string, options: SaveOptions) => runSnapshotSave(file, options));
  const status = withOutputOption(new Command('status'))
    .description("check a backup file and print what it holds (index, term, keys, cluster, checksum)")
    .argument('<file>', 'a backup made by `tsraft snapshot save`')
    .action((file: string, options: StatusOptions) => runSnapshotStatus(file, options));
  const restore = withOutputOption(new Command('restore'))
    .description("seed one member's data directory of a NEW cluster from a backup (run it once per member, with the same --peers)")
    .argument('<file>', 'a backup made by `tsraft snapshot save`')
    .option('--data-dir <dir>', "the new member's data directory (must not exist, or be empty)")
    .option('--id <n>', 'which member of --peers this directory is for')
    .option('--peers <list>', `every member of the new cluster: ${PEERS_SYNTAX}`)
    .option('--cluster-id <id>', "the new cluster's name (default: the backed-up cluster's)")
    .option('--no-fsync', 'do not fsync what is written (tests)')
    .addHelpText(
      'after',
      `
Every member of the new cluster starts from the backup's state (same keys, values and index) with
--peers as its configuration; then start each with \`tsraft node --data-dir DIR\`.

Example (three members):
  for i in 0 1 2; do
    tsraft snapshot restore backup.tsraft --id $i --data-dir ./restored-$i \\
      --peers 0=127.0.0.1:7100/http://127.0.0.1:8100,1=127.0.0.1:7101/http://127.0.0.1:8101,2=127.0.0.1:7102/http://127.0.0.1:8102
  done`,
    )
    .action(async (file: string, options: RestoreOptions) => runSnapshotRestore(file, options));
  return new Command('snapshot').description('back up the store and restore a new cluster from a backup').addCommand(save).addCommand(status).addCommand(restore);
}
