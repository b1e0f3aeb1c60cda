/**
 * `tsraft status`: one row per endpoint from its GET /v1/status: node, role, term, commit index,
 * applied index, lag (the leader's commit index minus this node's applied index) and the leader it
 * knows. A node that does not answer is shown as `down`. A leader handing leadership over (POST
 * /v1/leader/transfer, `tsraft leader transfer`, or stopping) is shown as `leader (handing over to N)`.
 */
import { Command } from 'commander';
import { DEFAULT_ENDPOINTS, EXIT, errorMessage, formatTable, parseEndpoints, parseIntOption } from './common.js';

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
}

/** The role as shown: a leader that is handing leadership over says to whom. */
export function roleText(status: NodeStatusJson): string {
  const role = status.role ?? '?';
  return role === 'leader' && typeof status.transferTarget === 'number' ? `leader (handing over to ${status.transferTarget})` : role;
}

export interface EndpointStatus {
  readonly endpoint: string;
  readonly status?: NodeStatusJson;
  readonly error?: string;
}

/** Fetches /v1/status from every endpoint in parallel; never throws. */
export async function fetchStatuses(endpoints: readonly string[], timeoutMs: number): Promise<EndpointStatus[]> {
  return Promise.all(
    endpoints.map(async (endpoint): Promise<EndpointStatus> => {
      try {
        const response = await fetch(`${endpoint}/v1/status`, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
        if (!response.ok) {
          await response.body?.cancel();
          return { endpoint, error: `HTTP ${response.status}` };
        }
        return { endpoint, status: (await response.json()) as NodeStatusJson };
      } catch (error) {
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
  for (const { endpoint, status, error } of statuses) {
    if (status === undefined) {
      rows.push(['?', 'down', '-', '-', '-', '-', '-', `${endpoint} (${error ?? 'no answer'})`]);
      continue;
    }
    const lag = leader?.commitIndex !== undefined && status.appliedIndex !== undefined ? String(Math.max(0, leader.commitIndex - status.appliedIndex)) : '-';
    const leaderText = status.leaderId === undefined || status.leaderId === null ? 'none' : status.role === 'leader' ? `${status.leaderId} (self)` : String(status.leaderId);
    rows.push([num(status.id), roleText(status), num(status.term), num(status.commitIndex), num(status.appliedIndex), lag, leaderText, endpoint]);
  }
  return rows;
}

/** `node 0`, or `node 0 (handing leadership to node 2)`. */
export function leaderSummary(status: NodeStatusJson): string {
  const to = typeof status.transferTarget === 'number' ? ` (handing leadership to node ${status.transferTarget})` : '';
  return `node ${num(status.id)}${to}`;
}

export function statusCommand(): Command {
  return new Command('status')
    .description("show every node's role, term, commit and applied index, lag and leader (from GET /v1/status)")
    .option('--endpoints <urls>', 'comma-separated HTTP base URLs of the nodes (env TSRAFT_ENDPOINTS)', process.env['TSRAFT_ENDPOINTS'] || DEFAULT_ENDPOINTS)
    .option('--timeout <ms>', 'how long to wait for each node', '2000')
    .option('--json', 'print the raw status documents as JSON')
    .addHelpText('after', '\nlag = the leader\'s commit index - this node\'s applied index. Exit code 3 if no node answers.')
    .action(async (options: { endpoints: string; timeout: string; json?: boolean }) => {
      const endpoints = parseEndpoints(options.endpoints);
      const timeoutMs = parseIntOption(options.timeout, '--timeout', 1, 600_000);
      const statuses = await fetchStatuses(endpoints, timeoutMs);
      if (options.json === true) {
        process.stdout.write(`${JSON.stringify(statuses, null, 2)}\n`);
      } else {
        process.stdout.write(`${formatTable(statusTable(statuses), new Set([2, 3, 4, 5]))}\n`);
        const leaders = statuses.filter((s) => s.status?.role === 'leader');
        const up = statuses.filter((s) => s.status !== undefined).length;
        process.stdout.write(
          `${up} of ${statuses.length} nodes up; ${leaders.length === 0 ? 'no leader' : `leader: ${leaders.map((s) => leaderSummary(s.status!)).join(', ')}`}\n`,
        );
      }
      process.exitCode = statuses.some((s) => s.status !== undefined) ? EXIT.ok : EXIT.unavailable;
    });
}
