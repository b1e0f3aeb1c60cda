/**
 * How `tsraft node --join` enters a running cluster: it asks a member (redirected to the leader) to
 * add it as a learner, starts with the configuration the answer gives, and, unless `--learner`,
 * promotes itself to voter once it has caught up (see node.ts for the command itself).
 */
import { KvClient, KvClientError, type KvMember, type KvMembers } from '../kv/client.js';
import { securityRefusal, type ClientSecurity } from './client-security.js';
import { CliError, EXIT, errorMessage, parseHostPort, parseHttpUrl, sleep, type PeerSpec } from './common.js';
import type { JoinConfig, NodeConfig } from './node.js';

/** A promotion attempt's own timeout (learner-behind and pending are retried within it). */
const PROMOTE_ATTEMPT_MS = 5_000;
/** At most one "still catching up" line per this many ms. */
const PROGRESS_EVERY_MS = 5_000;

/** A member from a /v1/members answer as a PeerSpec. */
function peerOf(member: KvMember, from: string): PeerSpec {
  if (member.raft === null || member.http === null) {
    throw new CliError(`${from} knows no address for member ${member.id}, so this node could not reach it: ask another member (--join), or check \`tsraft member list\``, EXIT.failed);
  }
  try {
    const raft = parseHostPort(member.raft, `node ${member.id}'s raft address`);
    return { id: member.id, raftHost: raft.host, raftPort: raft.port, httpUrl: parseHttpUrl(member.http, `node ${member.id}'s HTTP URL`) };
  } catch (error) {
    throw new CliError(`${from} answered with an unusable member address: ${errorMessage(error)}`, EXIT.failed);
  }
}

const idList = (list: readonly { id: number }[]): string => (list.length === 0 ? 'none' : list.map((m) => m.id).join(', '));

/** The membership in a KvServer status (GET /v1/status `membership`), ids and HTTP URLs, if the server reports it. */
interface StatusMembership {
  readonly voters: number[];
  readonly outgoing: number[];
  readonly learners: number[];
  readonly urls: string[];
}

export function statusMembership(status: unknown): StatusMembership | undefined {
  const m = (status as { membership?: unknown }).membership;
  if (typeof m !== 'object' || m === null) return undefined;
  const urls: string[] = [];
  const ids = (list: unknown): number[] =>
    Array.isArray(list)
      ? list.flatMap((x: unknown) => {
          if (typeof x === 'number') return [x];
          if (typeof x === 'object' && x !== null && typeof (x as { id?: unknown }).id === 'number') {
            const http = (x as { http?: unknown }).http;
            if (typeof http === 'string') urls.push(http.replace(/\/+$/, ''));
            return [(x as { id: number }).id];
          }
          return [];
        })
      : [];
  const r = m as Record<string, unknown>;
  return { voters: ids(r['voters']), outgoing: ids(r['outgoing']), learners: ids(r['learners']), urls };
}

export function describeStatusMembership(m: StatusMembership): string {
  const list = (ids: number[]): string => (ids.length === 0 ? 'none' : ids.join(', '));
  return `voters ${list(m.voters)}${m.outgoing.length > 0 ? ` (joint, leaving ${list(m.outgoing)})` : ''}, learners ${list(m.learners)}`;
}

/** The configuration a join starts the node with. */
export interface Joined {
  readonly voters: readonly PeerSpec[];
  readonly learners: readonly PeerSpec[];
  readonly clusterId: string;
}

/**
 * `--join`: asks the member at `join.url` (redirected to the leader) to add this node as a
 * learner, and returns the configuration to start with. Run again after a failed start, it finds
 * itself a learner already and carries on. Refusals and an unreachable cluster are CliErrors.
 */
export async function joinCluster(config: NodeConfig, join: JoinConfig, log: (line: string) => void, security: ClientSecurity = {}): Promise<Joined> {
  const { url, self } = join;
  const first = new KvClient({ endpoints: [url], timeoutMs: join.timeoutMs, maxRetryDelayMs: 1_000, ...security });
  const cannot = `node ${config.id} cannot join through ${url}`;
  const unreachable = (error: KvClientError): CliError =>
    new CliError(
      `${cannot}: no answer within ${join.timeoutMs} ms (${error.message}). Is it a running member of the cluster, and does the cluster have a leader? ` +
        '--join takes the HTTP URL of any member, e.g. http://127.0.0.1:8000.',
      EXIT.unavailable,
    );
  // The cluster id: the cluster's own when its API says it (a node of another id would be refused by every member).
  let clusterId = config.clusterId;
  try {
    const status = (await first.status(url)) as unknown as { clusterId?: unknown };
    if (typeof status.clusterId === 'string') {
      if (join.clusterIdGiven && status.clusterId !== config.clusterId) {
        throw new CliError(`${cannot}: that cluster's id is ${JSON.stringify(status.clusterId)}, not ${JSON.stringify(config.clusterId)} (--cluster-id): fix --cluster-id, or leave it out`, EXIT.usage);
      }
      clusterId = status.clusterId;
    }
  } catch (error) {
    if (error instanceof CliError) throw error;
    const refused = securityRefusal(cannot, error);
    if (refused !== undefined) throw refused;
    if (error instanceof KvClientError && error.code === 'timeout') throw unreachable(error);
    throw new CliError(`${cannot}: GET ${url}/v1/status failed: ${errorMessage(error)}`, EXIT.failed);
  }
  // The other members it knows of, for when it cannot reach the leader itself (e.g. it was removed).
  const known = await first.members().catch(() => undefined);
  const others = known === undefined ? [] : [...known.voters, ...known.outgoing, ...known.learners].flatMap((m) => (m.http === null ? [] : [m.http.replace(/\/+$/, '')]));
  const client = new KvClient({ endpoints: [...new Set([url, ...others])], timeoutMs: join.timeoutMs, maxRetryDelayMs: 1_000, ...security });
  log(`joining the cluster through ${url}: asking to add node ${config.id} (raft ${self.raftHost}:${self.raftPort}, http ${self.httpUrl}) as a learner`);
  let members: KvMembers;
  let index: number;
  try {
    const changed = await client.addMember({ id: config.id, raft: formatRaft(self), http: self.httpUrl, role: 'learner' });
    members = changed;
    index = changed.index;
  } catch (error) {
    if (!(error instanceof KvClientError)) throw new CliError(`${cannot}: ${errorMessage(error)}`, EXIT.failed);
    if (error.code === 'bad-request' && error.serverCode === 'invalid-membership-change') {
      members = await alreadyMember(config, join, client, error, log);
      index = members.membershipIndex;
    } else if (error.code === 'timeout') {
      if (error.serverCode === 'membership-change-pending') {
        throw new CliError(`${cannot}: another membership change kept the cluster busy for ${join.timeoutMs} ms (${error.message}); run this command again in a moment`, EXIT.failed);
      }
      if (error.serverCode === 'timeout' || error.serverCode === 'outcome-unknown') {
        throw new CliError(
          `${cannot}: adding it did not complete within ${join.timeoutMs} ms (${error.message}); it may still complete. Run this command again: ` +
            'if node ' + config.id + ' was added, it carries on from there',
          EXIT.failed,
        );
      }
      throw unreachable(error);
    } else if (error.code === 'bad-request') {
      throw new CliError(`${cannot}: refused: ${error.message}`, error.status === 404 || error.status === 405 ? EXIT.failed : EXIT.usage);
    } else {
      throw new CliError(`${cannot}: ${error.message}; \`tsraft member list --endpoints ${url}\` shows whether it was added`, EXIT.failed);
    }
  }
  const voters = [...members.voters].map((m) => peerOf(m, url));
  const learners = members.learners.map((m) => peerOf(m, url));
  if (!learners.some((l) => l.id === config.id)) learners.push(self);
  log(`joined as learner at index ${index}: voters ${idList(voters)}; learners ${idList(learners)}${members.joint ? ` (joint, leaving ${idList(members.outgoing)})` : ''}`);
  return { voters, learners, clusterId };
}

/**
 * The cluster refused to add this node: fine if it is a learner with these addresses already
 * (an earlier --join or `tsraft member add`); else a CliError saying what to do.
 */
async function alreadyMember(config: NodeConfig, join: JoinConfig, client: KvClient, refusal: KvClientError, log: (line: string) => void): Promise<KvMembers> {
  const cannot = `node ${config.id} cannot join through ${join.url}`;
  let members: KvMembers;
  try {
    members = await client.members();
  } catch {
    throw new CliError(`${cannot}: refused: ${refusal.message}`, EXIT.usage);
  }
  const list = `\`tsraft member list --endpoints ${join.url}\` shows the members`;
  const asVoter = [...members.voters, ...members.outgoing].find((m) => m.id === config.id);
  const asLearner = members.learners.find((m) => m.id === config.id);
  const found = asVoter ?? asLearner;
  if (found === undefined) throw new CliError(`${cannot}: refused: ${refusal.message.replace(/^\d{3}(?: [a-z-]+)?: /, '')}; ${list}`, EXIT.usage);
  const same = found.raft === formatRaft(join.self) && found.http?.replace(/\/+$/, '') === join.self.httpUrl;
  if (!same) {
    throw new CliError(
      `${cannot}: node ${config.id} is already a member, at raft ${found.raft ?? '?'}, http ${found.http ?? '?'}: choose another --id (${list}), ` +
        `or, if that member is gone for good, remove it first: tsraft member remove ${config.id} --endpoints ${join.url}`,
      EXIT.usage,
    );
  }
  if (asVoter !== undefined) {
    throw new CliError(
      `${cannot}: node ${config.id} is already a voter, but ${config.dataDir} is empty: a voter that lost its data must not come back under its id ` +
        `(its vote could elect a leader that lacks acknowledged writes). Remove it (tsraft member remove ${config.id} --endpoints ${join.url}) and join with a new --id.`,
      EXIT.usage,
    );
  }
  log(`node ${config.id} is a learner of the cluster already (added earlier with these addresses): starting with its configuration`);
  return members;
}

function formatRaft(p: PeerSpec): string {
  return `${p.raftHost.includes(':') ? `[${p.raftHost}]` : p.raftHost}:${p.raftPort}`;
}

/**
 * A learner that joined: asks the leader (through `endpoints`) to promote it, retrying while it
 * catches up (409 learner-behind) or another change is under way, for at most
 * config.promoteTimeoutMs; logs its progress. Gives up (the node stays a learner) with a line
 * saying how to promote it by hand. Never throws.
 */
export async function promoteSelf(
  config: NodeConfig,
  endpoints: readonly string[],
  log: (line: string) => void,
  signal: AbortSignal,
  security: ClientSecurity = {},
): Promise<void> {
  const id = config.id;
  const started = Date.now();
  const deadline = started + config.promoteTimeoutMs;
  let lastProgress = 0;
  const byHand = `promote it with \`tsraft member promote ${id} --endpoints ${endpoints[0]}\``;
  log(`node ${id}: catching up with the leader; it becomes a voter once it has (--learner would keep it a learner)`);
  while (!signal.aborted) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      log(`node ${id}: not promoted within ${config.promoteTimeoutMs} ms, it stays a learner: ${byHand} once it has caught up`);
      return;
    }
    const client = new KvClient({ endpoints, timeoutMs: Math.min(PROMOTE_ATTEMPT_MS, remaining), maxRetryDelayMs: 1_000, ...security });
    // One client per attempt (its timeout is what is left); its connections go with it.
    try {
      try {
        const changed = await client.promoteMember(id);
        if (signal.aborted) return;
        log(`caught up, promoted: voters ${idList(changed.voters)}; learners ${idList(changed.learners)} (index ${changed.index}, after ${((Date.now() - started) / 1000).toFixed(1)} s)`);
        return;
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof KvClientError && error.code === 'bad-request' && error.status !== 404 && error.status !== 405) {
          const members = await client.members().catch(() => undefined);
          if (members?.voters.some((m) => m.id === id) === true) {
            log(`node ${id} is a voter already: voters ${idList(members.voters)}; learners ${idList(members.learners)}`);
          } else if (members !== undefined && !members.learners.some((m) => m.id === id)) {
            log(`node ${id} is no longer a member of the cluster (removed?): not promoting it`);
          } else {
            log(`node ${id}: promotion refused (${error.message}); it stays a learner: ${byHand}`);
          }
          return;
        }
        if (error instanceof KvClientError && error.code === 'bad-request') {
          log(`node ${id}: the cluster cannot promote it (${error.message}); it stays a learner`);
          return;
        }
        if (Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
          lastProgress = Date.now();
          const why = error instanceof Error ? ((error as { cause?: unknown }).cause instanceof Error ? ((error as { cause: Error }).cause.message) : error.message) : String(error);
          const what =
            error instanceof KvClientError && error.serverCode === 'learner-behind'
              ? 'still catching up'
              : error instanceof KvClientError && error.serverCode === 'membership-change-pending'
                ? 'waiting for another membership change to complete'
                : 'promotion not done yet';
          log(`node ${id}: ${what} (${why}); retrying`);
        }
        await sleep(Math.min(500, Math.max(0, deadline - Date.now())));
      }
    } finally {
      void client.close();
    }
  }
}

