/**
 * `tsraft status`: one row per endpoint from its GET /v1/status: node, role, term, commit index,
 * applied index, lag (the leader's commit index minus this node's applied index) and the leader it
 * knows. A node that does not answer is shown as `down`. A leader handing leadership over (POST
 * /v1/leader/transfer, `tsraft leader transfer`, or stopping) is shown as `leader (handing over to N)`;
 * a learner (a member that receives the log but does not vote) as `learner`, a node that is no
 * longer in its own configuration as `follower (removed)`. Below the table: the configuration
 * (voters, learners; a change of voters under way shows the voters it leaves), as the leader (else
 * the node with the latest configuration) sees it, and the members --endpoints does not reach.
 */
import { Command } from 'commander';
import { certificateFailure, clusterHttp, type ClusterHttp } from '../kv/client-http.js';
import { readClientSecurity, withClientSecurityOptions, type ClientSecurityOptions } from './client-security.js';
import { DEFAULT_ENDPOINTS, EXIT, errorMessage, formatTable, parseEndpoints, parseIntOption } from './common.js';
import { wantsJson, withOutputOption, type OutputOptions } from './values.js';

export interface NodeStatusJson {
  readonly id?: number;
  readonly role?: string;
  readonly term?: number;
  readonly leaderId?: number | null;
  readonly leaderUrl?: string | null;
  readonly commitIndex?: number;
  readonly appliedIndex?: number;
  readonly lastIndex?: number;
  readonly snapshotIndex?: number;
  readonly keys?: number;
  readonly sessions?: number;
  /** A leader handing leadership over: to whom (null or absent: none). */
  readonly transferTarget?: number | null;
  readonly quorumLost?: number;
  /** The configuration in effect on this node: member ids, and the index of the entry that set it. */
  readonly membership?: {
    readonly voters?: readonly number[];
    readonly outgoing?: readonly number[];
    readonly learners?: readonly number[];
    readonly index?: number;
  };
}

/**
 * The role as shown: a leader that is handing leadership over says to whom; a learner is shown as
 * such; a node that is in neither its own configuration nor, when given, the leader's (a removed
 * node may never hear of its removal: its log can stop at the joint configuration) as removed.
 */
export function roleText(status: NodeStatusJson, leaderMembership?: NodeStatusJson['membership']): string {
  const role = status.role ?? '?';
  if (role === 'leader' && typeof status.transferTarget === 'number') return `leader (handing over to ${status.transferTarget})`;
  if (typeof status.id !== 'number') return role;
  const id = status.id;
  const member = (m: NodeStatusJson['membership']): boolean | undefined =>
    m === undefined || (m.voters?.length ?? 0) === 0 ? undefined : [...(m.voters ?? []), ...(m.outgoing ?? []), ...(m.learners ?? [])].includes(id);
  if (role !== 'leader' && (member(status.membership) === false || member(leaderMembership) === false)) return `${role} (removed)`;
  if (status.membership?.learners?.includes(id) === true) return role === 'follower' ? 'learner' : `${role} (learner)`;
  return role;
}

const idList = (ids: readonly number[] | undefined): string => (ids === undefined || ids.length === 0 ? 'none' : ids.join(', '));

/**
 * The configuration lines below the table: the leader's view of the membership (else the latest
 * any node reports), and the members none of the endpoints answered as. Empty if no node reports one.
 */
export function membershipLines(statuses: readonly EndpointStatus[]): string[] {
  let best: NodeStatusJson | undefined;
  for (const { status } of statuses) {
    if (status?.membership === undefined) continue;
    const better =
      best === undefined ||
      (status.role === 'leader' && (best.role !== 'leader' || (status.term ?? -1) > (best.term ?? -1))) ||
      (best.role !== 'leader' && (status.membership.index ?? -1) > (best.membership!.index ?? -1));
    if (better) best = status;
  }
  if (best === undefined) return [];
  const m = best.membership!;
  const view = best.role === 'leader' ? `the leader's view` : `node ${num(best.id)}'s view, no leader answered`;
  const joint = (m.outgoing?.length ?? 0) > 0 ? ` (joint consensus: changing from voters ${idList(m.outgoing)})` : '';
  const lines = [`members (${view}, configuration at index ${num(m.index)}): voters ${idList(m.voters)}${joint}; learners ${idList(m.learners)}`];
  const seen = new Set(statuses.map((s) => s.status?.id).filter((id): id is number => typeof id === 'number'));
  const unseen = [...new Set([...(m.voters ?? []), ...(m.outgoing ?? []), ...(m.learners ?? [])])].filter((id) => !seen.has(id)).sort((a, b) => a - b);
  if (unseen.length > 0) {
    lines.push(`not shown: node${unseen.length === 1 ? '' : 's'} ${unseen.join(', ')} (not among --endpoints, or down; \`tsraft member list\` shows every member's URL)`);
  }
  return lines;
}

export interface EndpointStatus {
  readonly endpoint: string;
  readonly status?: NodeStatusJson;
  readonly error?: string;
  /** The node answered, but refused the credentials (401) or the role (403). */
  readonly refused?: boolean;
}

/** Fetches /v1/status from every endpoint in parallel (through `http`: TLS material, token); never throws. */
export async function fetchStatuses(endpoints: readonly string[], timeoutMs: number, http: ClusterHttp = clusterHttp()): Promise<EndpointStatus[]> {
  return Promise.all(
    endpoints.map(async (endpoint): Promise<EndpointStatus> => {
      try {
        const response = await http.fetch(`${endpoint}/v1/status`, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
        if (!response.ok) {
          if (response.status === 401 || response.status === 403) {
            const json = (await response.json().catch(() => null)) as { error?: { message?: unknown } } | null;
            const message = typeof json?.error?.message === 'string' ? json.error.message.slice(0, 200) : 'refused';
            const hint = response.status === 401 ? '; set TSRAFT_TOKEN or give --token' : '';
            return { endpoint, error: `HTTP ${response.status}: ${message}${hint}`, refused: true };
          }
          await response.body?.cancel();
          return { endpoint, error: `HTTP ${response.status}` };
        }
        return { endpoint, status: (await response.json()) as NodeStatusJson };
      } catch (error) {
        const tls = certificateFailure(error);
        if (tls !== undefined) return { endpoint, error: `TLS: ${tls.reason}, ${tls.code}${http.hasCa ? '' : '; no --ca given'}` };
        const cause = (error as { cause?: { code?: string } }).cause?.code;
        return { endpoint, error: cause ?? errorMessage(error) };
      }
    }),
  );
}

function num(n: number | undefined): string {
  return typeof n === 'number' ? String(n) : '-';
}

/** The status table: header + one row per endpoint. */
export function statusTable(statuses: readonly EndpointStatus[]): string[][] {
  let leader: NodeStatusJson | undefined;
  for (const { status } of statuses) {
    if (status?.role === 'leader' && (leader === undefined || (status.term ?? -1) > (leader.term ?? -1))) leader = status;
  }
  const rows = [['node', 'role', 'term', 'commit', 'applied', 'lag', 'leader', 'http']];
  for (const { endpoint, status, error, refused } of statuses) {
    if (status === undefined) {
      rows.push(['?', refused === true ? 'refused' : 'down', '-', '-', '-', '-', '-', `${endpoint} (${error ?? 'no answer'})`]);
      continue;
    }
    const lag = leader?.commitIndex !== undefined && status.appliedIndex !== undefined ? String(Math.max(0, leader.commitIndex - status.appliedIndex)) : '-';
    const leaderText = status.leaderId === undefined || status.leaderId === null ? 'none' : status.role === 'leader' ? `${status.leaderId} (self)` : String(status.leaderId);
    rows.push([num(status.id), roleText(status, leader?.membership), num(status.term), num(status.commitIndex), num(status.appliedIndex), lag, leaderText, endpoint]);
  }
  return rows;
}

/** `node 0`, or `node 0 (handing leadership to node 2)`. */
export function leaderSummary(status: NodeStatusJson): string {
  const to = typeof status.transferTarget === 'number' ? ` (handing leadership to node ${status.transferTarget})` : '';
  return `node ${num(status.id)}${to}`;
}

export function statusCommand(): Command {
  return withOutputOption(withClientSecurityOptions(new Command('status')))
    .description("show every node's role, term, commit and applied index, lag and leader, and the cluster's voters and learners (from GET /v1/status)")
    .option('--endpoints <urls>', 'comma-separated HTTP base URLs of the nodes (env TSRAFT_ENDPOINTS)', process.env['TSRAFT_ENDPOINTS'] || DEFAULT_ENDPOINTS)
    .option('--timeout <ms>', 'how long to wait for each node', '2000')
    .option('--json', 'the same as -o json: the status documents as JSON')
    .addHelpText('after', '\nlag = the leader\'s commit index - this node\'s applied index. Exit code 3 if no node answers.')
    .action(async (options: ClientSecurityOptions & OutputOptions & { endpoints: string; timeout: string }) => {
      const endpoints = parseEndpoints(options.endpoints);
      const timeoutMs = parseIntOption(options.timeout, '--timeout', 1, 600_000);
      const http = clusterHttp(readClientSecurity(options));
      const statuses = await fetchStatuses(endpoints, timeoutMs, http).finally(() => http.close());
      if (wantsJson(options)) {
        process.stdout.write(`${JSON.stringify(statuses, null, 2)}\n`);
      } else {
        process.stdout.write(`${formatTable(statusTable(statuses), new Set([2, 3, 4, 5]))}\n`);
        // Before the summary line, which stays last (scripts read the leader from it).
        for (const line of membershipLines(statuses)) process.stdout.write(`${line}\n`);
        const leaders = statuses.filter((s) => s.status?.role === 'leader');
        const up = statuses.filter((s) => s.status !== undefined).length;
        const refused = statuses.filter((s) => s.refused === true).length;
        process.stdout.write(
          `${up + refused} of ${statuses.length} nodes up${refused === 0 ? '' : ` (${refused} refused the credentials)`}; ` +
            `${leaders.length === 0 ? 'no leader' : `leader: ${leaders.map((s) => leaderSummary(s.status!)).join(', ')}`}\n`,
        );
      }
      // Refused everywhere: the nodes are up, the command line lacks credentials (a usage problem).
      const allRefused = statuses.length > 0 && statuses.every((s) => s.refused === true);
      process.exitCode = statuses.some((s) => s.status !== undefined) ? EXIT.ok : allRefused ? EXIT.usage : EXIT.unavailable;
    });
}
