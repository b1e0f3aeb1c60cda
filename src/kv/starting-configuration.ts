/**
 * The configuration a KvServer starts with: the peers and learners its options give (checked
 * strictly, since they become member addresses every member parses back), or, on a restart
 * without peers, the ones its data directory's cluster identity recorded. After the start,
 * membership comes from the Raft log.
 */
import { ConfigError } from '../runtime/errors.js';
import { readClusterIdentity, type ClusterMember } from '../storage/cluster-identity.js';
import { formatHostPort, formatMemberAddress, MemberAddressError, parseMemberAddress } from './member-address.js';
import type { KvPeer, KvServerOptions } from './server.js';

/** The configuration a KvServer starts with (see KvServerOptions.peers). */
export interface StartingConfiguration {
  readonly peers: readonly KvPeer[];
  readonly learners: readonly KvPeer[];
}

/**
 * What is wrong with the peers and learners given: ids (non-negative integers, each once, a
 * learner not also a voter) and addresses (strict: they become member addresses that every member
 * parses back, member-address.ts), no two members at one Raft address or one HTTP URL.
 */
export function memberProblems(peers: readonly KvPeer[], learners: readonly KvPeer[]): string[] {
  const problems: string[] = [];
  const ids = new Set<number>();
  const raft = new Map<string, number>();
  const http = new Map<string, number>();
  for (const [what, list] of [['peer', peers], ['learner', learners]] as const) {
    for (const p of list) {
      if (typeof p?.id !== 'number' || !Number.isSafeInteger(p.id) || p.id < 0) {
        problems.push(`${what} id must be a non-negative integer, got ${String(p?.id)}`);
        continue;
      }
      if (ids.has(p.id)) problems.push(what === 'learner' && peers.some((v) => v.id === p.id) ? `node ${p.id} is both a peer and a learner` : `duplicate ${what} id ${p.id}`);
      ids.add(p.id);
      if (typeof p.raftPort !== 'number' || !Number.isSafeInteger(p.raftPort) || p.raftPort < 1 || p.raftPort > 65535) {
        problems.push(`${what} ${p.id}: raftPort must be 1..65535, got ${String(p.raftPort)}`);
        continue;
      }
      if (typeof p.raftHost !== 'string' || p.raftHost === '' || typeof p.httpUrl !== 'string') {
        problems.push(`${what} ${p.id}: raftHost must be a non-empty string and httpUrl a string`);
        continue;
      }
      let parsed;
      try {
        parsed = parseMemberAddress(formatMemberAddress(p), `${what} ${p.id}`);
      } catch (error) {
        if (!(error instanceof MemberAddressError)) throw error;
        problems.push(error.message);
        continue;
      }
      const raftKey = formatHostPort(parsed.raftHost, parsed.raftPort).toLowerCase();
      const httpKey = parsed.httpUrl.toLowerCase();
      if (raft.has(raftKey)) problems.push(`nodes ${raft.get(raftKey)} and ${p.id} have the same raft address ${raftKey}`);
      if (http.has(httpKey)) problems.push(`nodes ${http.get(httpKey)} and ${p.id} have the same HTTP URL ${httpKey}`);
      raft.set(raftKey, p.id);
      http.set(httpKey, p.id);
    }
  }
  return problems;
}

/**
 * The configuration this member starts with: the options' peers and learners, or, without
 * peers, the ones recorded in the data directory's identity (a restart). Rejects with
 * ConfigError when there are none to read, or a recorded address cannot be used.
 */
export async function startingConfiguration(options: KvServerOptions, log: (line: string) => void): Promise<StartingConfiguration> {
  const peers = options.peers ?? [];
  if (peers.length > 0) return { peers, learners: options.learners ?? [] };
  const identity = await readClusterIdentity(options.dataDir);
  if (identity === null) {
    throw new ConfigError([
      `peers must be given: ${options.dataDir} records no cluster identity to read the starting configuration from (a first start needs every voter of the cluster, this member included or, for a member joining a running cluster, in learners)`,
    ]);
  }
  const problems: string[] = [];
  const toPeer = (m: ClusterMember): KvPeer | null => {
    if (m.address === undefined) {
      problems.push(`the cluster identity records no address for member ${m.id}: give peers (and learners) as the member was first started with`);
      return null;
    }
    try {
      return { id: m.id, ...parseMemberAddress(m.address, `the recorded address of member ${m.id}`) };
    } catch (error) {
      if (!(error instanceof MemberAddressError)) throw error;
      problems.push(`${error.message}; give peers (and learners) as the member was first started with`);
      return null;
    }
  };
  const starting = {
    peers: identity.members.map(toPeer).filter((p): p is KvPeer => p !== null),
    learners: identity.learners.map(toPeer).filter((p): p is KvPeer => p !== null),
  };
  if (identity.nodeId !== options.id) problems.push(`${options.dataDir} is the data directory of node ${identity.nodeId}, not of node ${options.id}`);
  if (problems.length > 0) throw new ConfigError(problems);
  const learners = starting.learners.length > 0 ? `, learners ${starting.learners.map((p) => p.id).join(',')}` : '';
  log(`no peers given: starting with the configuration recorded in ${options.dataDir} (voters ${starting.peers.map((p) => p.id).join(',')}${learners}); the membership in effect comes from the log`);
  return starting;
}
