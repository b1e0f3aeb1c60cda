/**
 * `tsraft start`'s up-front cluster-identity check: before anything is spawned, every node
 * directory's `cluster-identity.json` (storage/cluster-identity.ts) is compared, read-only, with
 * the command line, and a mismatch is refused with one message saying what is on disk and which
 * flags match it. The nodes check again themselves when they start.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { formatMemberAddress } from '../kv/member-address.js';
import {
  CLUSTER_IDENTITY_FILE,
  ClusterIdentityError,
  holdsRaftData,
  inspectClusterIdentity,
  learnerIds,
  memberIds,
  readClusterIdentity,
  type StoredClusterIdentity,
} from '../storage/cluster-identity.js';
import { CliError, EXIT, errorMessage, type PeerSpec } from './common.js';

/** What the check needs of the `tsraft start` command line. */
export interface IdentityCheckConfig {
  /** --nodes */
  readonly nodes: number;
  /** --cluster-id */
  readonly clusterId: string;
}

/** The advice every refusal ends with: how membership is changed, and how a node restarts. */
const MEMBERSHIP_ADVICE =
  'The membership of a running cluster is changed with `tsraft member ...`; every node keeps being started with the flags it was first started with.';

/**
 * Checks every node directory's cluster identity against this command line before anything is
 * spawned (the nodes check again themselves), and refuses with one message: a directory recorded
 * with another cluster id, node id or member set, a damaged identity file, or (when nothing else
 * is wrong) directories of nodes beyond --nodes that hold data, i.e. a larger cluster's. A
 * directory beyond --nodes of a node that joined this cluster (`tsraft member`: its identity
 * records this command line's cluster id and members, and itself as a learner) is not refused:
 * this command does not run it, and its id is returned so the caller can say so.
 */
export async function checkIdentities(dataDir: string, config: IdentityCheckConfig, peers: readonly PeerSpec[]): Promise<readonly number[]> {
  const clusterId = config.clusterId.trim();
  const members = peers.map((p) => ({ id: p.id, address: formatMemberAddress(p) }));
  const asked = `cluster ${JSON.stringify(clusterId)}, members ${peers.map((p) => p.id).join(', ')}`;
  const mismatched: { id: number; disk: StoredClusterIdentity; file: string }[] = [];
  const damaged: { line: string; newer: boolean }[] = [];
  for (const p of peers) {
    const dir = join(dataDir, `node-${p.id}`);
    try {
      await inspectClusterIdentity(dir, { clusterId, nodeId: p.id, members });
    } catch (error) {
      if (!(error instanceof ClusterIdentityError)) throw new CliError(`cannot check ${join(dir, CLUSTER_IDENTITY_FILE)}: ${errorMessage(error)}`, EXIT.failed);
      if (error.onDisk !== null) {
        mismatched.push({ id: p.id, disk: error.onDisk, file: error.file });
      } else {
        const newer = error.code === 'TSRAFT_IDENTITY_UNSUPPORTED';
        damaged.push({ line: `  node ${p.id}: ${error.file}: ${error.reason ?? error.message} (${newer ? 'written by a newer tsraft' : 'damaged identity file'})`, newer });
      }
    }
  }
  const lines: string[] = [];
  let hint = '';
  if (mismatched.length > 0) {
    for (const m of mismatched) {
      const own = m.disk.nodeId !== m.id ? `, node ${m.disk.nodeId} (not ${m.id})` : '';
      lines.push(`  node ${m.id}: ${m.file} records cluster ${JSON.stringify(m.disk.clusterId)}${own}, members ${memberIds(m.disk).join(', ')}`);
    }
    // One recorded configuration of nodes 0..k-1: say which flags run it again.
    const first = mismatched[0]!.disk;
    const ids = memberIds(first);
    const same = mismatched.every((m) => m.disk.clusterId === first.clusterId && memberIds(m.disk).join(',') === ids.join(',') && m.disk.nodeId === m.id);
    const flags: string[] = [];
    if (same && ids.every((id, i) => id === i)) {
      if (ids.length !== config.nodes) flags.push(`--nodes ${ids.length}`);
      if (first.clusterId !== clusterId) flags.push(`--cluster-id ${first.clusterId}`);
    }
    hint =
      (flags.length > 0
        ? `To run the cluster this data belongs to, start it with ${flags.join(' ')}; for a new cluster`
        : 'Start it with the --nodes and --cluster-id this data was created with; for a new cluster') +
      ` use another --data-dir (or --fresh, which deletes this data). ${MEMBERSHIP_ADVICE}`;
  }
  if (damaged.length > 0) {
    lines.push(...damaged.map((d) => d.line));
    hint +=
      (hint === '' ? '' : '\n') +
      'A damaged identity file: restore it from a backup, or, if you are sure this data was created by this command line, move it aside ' +
      "(the node then adopts this command line's identity)." +
      (damaged.some((d) => d.newer) ? ' One written by a newer tsraft: run that version.' : '');
  }
  if (lines.length > 0) {
    const what = mismatched.length > 0 ? 'does not match this command line' : 'cannot be checked against this command line';
    throw new CliError(
      `cannot start: the data in ${dataDir} ${what} (${config.nodes}-node cluster: ${asked}):\n${lines.join('\n')}\n` +
        `${hint}\nNothing was started; the data is untouched.`,
      damaged.length > 0 ? EXIT.failed : EXIT.usage,
    );
  }
  // Data of nodes this start would not run: a larger cluster (identities catch this for data they
  // cover; this catches data written before identities were recorded).
  const beyond: number[] = [];
  const joined: number[] = [];
  const ids = peers.map((p) => p.id).sort((a, b) => a - b);
  for (const name of readdirSync(dataDir)) {
    const m = /^node-(\d+)$/.exec(name);
    if (m === null || Number(m[1]) < config.nodes) continue;
    const dir = join(dataDir, name);
    if (!(await holdsRaftData(dir)) && !existsSync(join(dir, CLUSTER_IDENTITY_FILE))) continue;
    if (joinedThisCluster(await readClusterIdentity(dir).catch(() => null), Number(m[1]), clusterId, ids)) joined.push(Number(m[1]));
    else beyond.push(Number(m[1]));
  }
  if (beyond.length > 0) {
    beyond.sort((a, b) => a - b);
    throw new CliError(
      `cannot start: ${dataDir} also holds the data of node${beyond.length === 1 ? '' : 's'} ${beyond.join(', ')}, which this ${config.nodes}-node cluster ` +
        `would not run: it belongs to a larger cluster. Start it with --nodes ${beyond[beyond.length - 1]! + 1} to run that cluster, or use another --data-dir ` +
        `(or --fresh, which deletes this data). ${MEMBERSHIP_ADVICE} Nothing was started; the data is untouched.`,
      EXIT.usage,
    );
  }
  return joined.sort((a, b) => a - b);
}

/** Whether `identity` is that of node `id` having joined, as a learner, the cluster of `clusterId` started with voters `ids`. */
function joinedThisCluster(identity: StoredClusterIdentity | null, id: number, clusterId: string, ids: readonly number[]): boolean {
  return (
    identity !== null &&
    identity.nodeId === id &&
    identity.clusterId === clusterId &&
    learnerIds(identity).includes(id) &&
    memberIds(identity).join(',') === ids.join(',')
  );
}

