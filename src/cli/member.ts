/**
 * `tsraft member list|add|promote|remove`: the cluster's membership, through the HTTP API's
 * /v1/members (found through --endpoints like every client command: redirects to the leader
 * followed, unreachable nodes skipped).
 *
 *     tsraft member list [--json]                               voters, learners, the leader, match indexes
 *     tsraft member add 3 --raft 127.0.0.1:7003 --http http://127.0.0.1:8003 [--voter]
 *     tsraft member promote 3                                   learner -> voter, once it has caught up
 *     tsraft member remove 2
 *
 * A new node is added as a learner (it receives the log but counts in no majority) and promoted
 * once it has caught up; `tsraft node --join` does both for the node it starts. A change waits
 * while another is under way (409 membership-change-pending) or while the learner to promote is
 * still catching up (409 learner-behind), within --timeout.
 *
 * Exit codes: 0 done, 1 not done (still catching up, another change in the way, outcome unknown),
 * 2 usage error (also a change the cluster refuses: an unknown member, a taken id or address),
 * 3 no leader reachable.
 */
import { Command } from 'commander';
import { KvClient, KvClientError, type KvMember, type KvMembers, type KvMembershipChange } from '../kv/client.js';
import {
  CliError,
  DEFAULT_ENDPOINTS,
  EXIT,
  UsageError,
  errorMessage,
  formatTable,
  parseEndpoints,
  parseHostPort,
  parseHttpUrl,
  parseIntOption,
  parseNodeId,
} from './common.js';
import { clientRememberingLeader } from './leader-hint.js';
import { readClientSecurity, securityRefusal, withClientSecurityOptions, type ClientSecurityOptions } from './client-security.js';
import { printLine } from './kv-common.js';
import { printJson, wantsJson, withOutputOption, type OutputOptions } from './values.js';

interface EndpointOptions extends ClientSecurityOptions, OutputOptions {
  endpoints: string;
  timeout: string;
}

type ListOptions = EndpointOptions;

interface AddOptions extends EndpointOptions {
  raft?: string;
  http?: string;
  voter?: boolean;
}

/** Default --timeout of a change: a learner to promote may need a while to catch up. */
export const DEFAULT_CHANGE_TIMEOUT_MS = 30_000;
const DEFAULT_LIST_TIMEOUT_MS = 5_000;

/** The server's own message, without the client's "<status> <code>: " prefix. */
function serverMessage(error: KvClientError): string {
  return error.message.replace(/^\d{3}(?: [a-z-]+)?: /, '');
}

/** What a 'timeout' rejection last heard from the server (its message), if it heard anything. */
function lastServerMessage(error: KvClientError): string {
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof Error && /^\d{3}/.test(cause.message)) return cause.message.replace(/^\d{3}(?: [a-z-]+)?: /, '');
  return error.message;
}

/** `tsraft member <verb>` as typed, for advice in messages. */
export interface MemberCommandLine {
  /** 'promote 4', 'remove 2', 'add 3 ...', 'list'. */
  readonly verb: string;
  /** The member the change is about, if any. */
  readonly id?: number;
}

/** The message (and exit code) for a failed `tsraft member ...`. */
export function memberFailure(command: MemberCommandLine, error: unknown, timeoutMs: number): CliError {
  const what = `member ${command.verb.split(' ')[0]}`;
  const retry = `\`tsraft member ${command.verb}\``;
  const refused = securityRefusal(what, error);
  if (refused !== undefined) return refused;
  if (!(error instanceof KvClientError)) return new CliError(`${what}: ${errorMessage(error)}`, EXIT.failed);
  switch (error.code) {
    case 'timeout':
      if (error.serverCode === 'learner-behind') {
        return new CliError(
          `${what}: node ${command.id ?? '?'} is still catching up (${lastServerMessage(error)}): retry ${retry} in a moment; ` +
            '`tsraft member list` shows how far it has come (match). Is the node running?',
          EXIT.failed,
        );
      }
      if (error.serverCode === 'membership-change-pending') {
        return new CliError(
          `${what}: another membership change is still under way (${lastServerMessage(error)}): retry ${retry} once it completes; ` +
            '`tsraft member list` shows the configuration',
          EXIT.failed,
        );
      }
      if (error.serverCode === 'timeout' || error.serverCode === 'outcome-unknown') {
        return new CliError(
          `${what}: the change did not complete within ${timeoutMs} ms (${lastServerMessage(error)}); it may still complete: ` +
            '`tsraft member list` shows whether it did',
          EXIT.failed,
        );
      }
      return new CliError(
        `${what}: no leader could be reached within ${timeoutMs} ms (${error.message}). ` +
          'Is the cluster running (`tsraft start`) and does it have a leader? `tsraft status` shows every node.',
        EXIT.unavailable,
      );
    case 'outcome-unknown':
      return new CliError(`${what}: ${error.message}. Whether the change took effect is unknown: \`tsraft member list\` shows the configuration.`, EXIT.failed);
    case 'bad-request':
      if (error.status === 404 || error.status === 405) {
        return new CliError(`${what}: the node does not serve /v1/members (${serverMessage(error)}): is it a tsraft with membership changes?`, EXIT.failed);
      }
      return new CliError(`${what}: refused: ${serverMessage(error)}; \`tsraft member list\` shows the members`, EXIT.usage);
    default:
      if (error.serverCode === 'timeout' || error.serverCode === 'outcome-unknown') {
        return new CliError(`${what}: ${serverMessage(error)}; \`tsraft member list\` shows whether the change took effect`, EXIT.failed);
      }
      return new CliError(`${what}: ${error.message}`, EXIT.failed);
  }
}

function client(options: EndpointOptions, defaultTimeoutMs: number): { client: KvClient; timeoutMs: number } {
  const endpoints = parseEndpoints(options.endpoints);
  const timeoutMs = options.timeout === undefined ? defaultTimeoutMs : parseIntOption(options.timeout, '--timeout', 1, 3_600_000);
  return { client: clientRememberingLeader({ endpoints, timeoutMs, ...readClientSecurity(options) }), timeoutMs };
}

export type MemberRoleText = 'voter' | 'learner' | 'outgoing';

/** Every member once, with its role: voters (in a joint configuration also the outgoing-only ones), learners. */
export function memberRows(members: KvMembers): { member: KvMember; role: MemberRoleText; joining: boolean }[] {
  const rows: { member: KvMember; role: MemberRoleText; joining: boolean }[] = [];
  const outgoing = new Set(members.outgoing.map((m) => m.id));
  const voters = new Set(members.voters.map((m) => m.id));
  for (const m of members.voters) rows.push({ member: m, role: 'voter', joining: members.joint && !outgoing.has(m.id) });
  for (const m of members.outgoing) if (!voters.has(m.id)) rows.push({ member: m, role: 'outgoing', joining: false });
  for (const m of members.learners) rows.push({ member: m, role: 'learner', joining: false });
  return rows.sort((a, b) => a.member.id - b.member.id);
}

/** The `member list` table: header, then one row per member (the leader's role says so). */
export function membersTable(members: KvMembers): string[][] {
  const rows = [['id', 'role', 'raft', 'http', 'match']];
  for (const { member, role, joining } of memberRows(members)) {
    let roleText: string = role;
    if (joining) roleText += ' (joining)';
    if (role === 'outgoing') roleText = 'outgoing (leaving)';
    if (member.id === members.leader) roleText += ', leader';
    rows.push([String(member.id), roleText, member.raft ?? '-', member.http ?? '-', member.match === undefined ? '-' : String(member.match)]);
  }
  return rows;
}

const ids = (list: readonly KvMember[]): string => (list.length === 0 ? 'none' : list.map((m) => m.id).join(', '));

/** One line: the leader, the configuration's index and state. */
export function membersSummary(members: KvMembers): string {
  const leader = members.leader === null ? 'no leader known' : `leader: node ${members.leader}`;
  const index = members.membershipIndex > 0 ? `configuration set at index ${members.membershipIndex}` : 'the starting configuration';
  const state = members.committed ? '' : ' (not committed yet)';
  const joint = members.joint ? `; joint consensus under way: voters changing from ${ids(members.outgoing)} to ${ids(members.voters)}` : '';
  return `${leader}; ${index}${state}${joint}`;
}

/** `voters: 0, 1, 2; learners: 3`. */
export function describeVoters(members: KvMembers): string {
  const joint = members.joint ? ` (joint, leaving ${ids(members.outgoing)})` : '';
  return `voters: ${ids(members.voters)}${joint}; learners: ${ids(members.learners)}`;
}

async function runList(options: ListOptions): Promise<void> {
  const { client: c, timeoutMs } = client(options, DEFAULT_LIST_TIMEOUT_MS);
  let members: KvMembers;
  try {
    members = await c.members();
  } catch (error) {
    throw memberFailure({ verb: 'list' }, error, timeoutMs);
  }
  if (wantsJson(options)) {
    printJson(members);
    return;
  }
  printLine(formatTable(membersTable(members), new Set([0, 4])));
  printLine(membersSummary(members));
}

/** `HOST:PORT`, with an IPv6 host in brackets. */
function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

async function runAdd(idText: string, options: AddOptions): Promise<void> {
  const id = parseNodeId(idText, 'member id');
  if (options.raft === undefined) throw new UsageError(`missing --raft <host:port>: where node ${id} accepts raft connections (its tsraft node --listen)`);
  if (options.http === undefined) throw new UsageError(`missing --http <url>: node ${id}'s HTTP API, e.g. http://127.0.0.1:8003`);
  const raft = parseHostPort(options.raft, '--raft');
  const http = parseHttpUrl(options.http, '--http');
  const role = options.voter === true ? 'voter' : 'learner';
  const { client: c, timeoutMs } = client(options, DEFAULT_CHANGE_TIMEOUT_MS);
  let changed: KvMembershipChange;
  try {
    changed = await c.addMember({ id, raft: hostPort(raft.host, raft.port), http, role });
  } catch (error) {
    throw memberFailure({ verb: `add ${id} --raft ${options.raft} --http ${options.http}${role === 'voter' ? ' --voter' : ''}`, id }, error, timeoutMs);
  }
  if (wantsJson(options)) return printJson(changed);
  printLine(`node ${id} added as a ${role} at index ${changed.index} (raft ${hostPort(raft.host, raft.port)}, http ${http}); ${describeVoters(changed)}`);
  if (role === 'learner') {
    printLine(`once it has caught up (\`tsraft member list\` shows its match), make it a voter: tsraft member promote ${id}`);
  }
}

async function runPromote(idText: string, options: EndpointOptions): Promise<void> {
  const id = parseNodeId(idText, 'member id');
  const { client: c, timeoutMs } = client(options, DEFAULT_CHANGE_TIMEOUT_MS);
  let changed: KvMembershipChange;
  try {
    changed = await c.promoteMember(id);
  } catch (error) {
    throw memberFailure({ verb: `promote ${id}`, id }, error, timeoutMs);
  }
  if (wantsJson(options)) return printJson(changed);
  printLine(`node ${id} promoted to voter at index ${changed.index}; ${describeVoters(changed)}`);
}

async function runRemove(idText: string, options: EndpointOptions): Promise<void> {
  const id = parseNodeId(idText, 'member id');
  const { client: c, timeoutMs } = client(options, DEFAULT_CHANGE_TIMEOUT_MS);
  let changed: KvMembershipChange;
  try {
    changed = await c.removeMember(id);
  } catch (error) {
    throw memberFailure({ verb: `remove ${id}`, id }, error, timeoutMs);
  }
  if (wantsJson(options)) return printJson(changed);
  printLine(`node ${id} removed at index ${changed.index}; ${describeVoters(changed)}`);
  printLine(`node ${id} no longer takes part: stop its process; to bring it back, start it with a new --data-dir and --join (with a new id)`);
}

function withEndpoints(command: Command, defaultTimeoutMs: number, timeoutHelp: string): Command {
  return withOutputOption(withClientSecurityOptions(command))
    .option('--endpoints <urls>', "comma-separated HTTP base URLs of the cluster's nodes (env TSRAFT_ENDPOINTS)", process.env['TSRAFT_ENDPOINTS'] || DEFAULT_ENDPOINTS)
    .option('--timeout <ms>', timeoutHelp, String(defaultTimeoutMs));
}

const CHANGE_EXIT_CODES = `
Exit codes: 0 done, 1 not done (still catching up, another change under way, outcome unknown:
the message says what to do), 2 usage error or a change the cluster refuses (an unknown member,
an id or address already taken), 3 no leader reachable.`;

export function memberCommand(): Command {
  const list = withEndpoints(
    new Command('list').description('list the members: id, role (voter, learner, outgoing), raft address, HTTP URL, match index; the leader marked'),
    DEFAULT_LIST_TIMEOUT_MS,
    'give up (exit 3) if no node answers within this time',
  )
    .option('--json', 'the same as -o json: the configuration as JSON')
    .addHelpText(
      'after',
      `
match: the highest log index the leader knows to be on that member (shown when the leader answers).
A joint configuration (a change of voters under way) lists the voters it is leaving as outgoing.
Exit codes: 0 ok, 3 no node answered.`,
    )
    .action(async (options: ListOptions) => runList(options));

  const add = withEndpoints(
    new Command('add')
      .description('add a member (default: as a learner, which catches up without counting in any majority; promote it afterwards)')
      .argument('<id>', 'the new member\'s id (not used by any member)'),
    DEFAULT_CHANGE_TIMEOUT_MS,
    'give up if the change is not complete within this time',
  )
    .option('--raft <host:port>', "the new member's raft address (its tsraft node --listen)")
    .option('--http <url>', "the new member's HTTP API base URL, e.g. http://127.0.0.1:8003")
    .option('--voter', 'add it as a voter at once (it counts in the majority before it has caught up: prefer a learner, then promote)')
    .addHelpText(
      'after',
      `
The node itself is started with \`tsraft node --id ID --join URL ...\` (which adds itself and
promotes itself once caught up, so \`member add\` is not needed for it), or, after \`member add\`,
with the same command: it finds itself already a member.
${CHANGE_EXIT_CODES}

Example: tsraft member add 3 --raft 127.0.0.1:7003 --http http://127.0.0.1:8003`,
    )
    .action(async (id: string, options: AddOptions) => runAdd(id, options));

  const promote = withEndpoints(
    new Command('promote').description('make a learner a voter, once it has caught up with the leader').argument('<id>', 'the learner\'s id'),
    DEFAULT_CHANGE_TIMEOUT_MS,
    'how long to wait for the learner to catch up and the change to complete',
  )
    .addHelpText('after', `${CHANGE_EXIT_CODES}\n\nExample: tsraft member promote 3`)
    .action(async (id: string, options: EndpointOptions) => runPromote(id, options));

  const remove = withEndpoints(
    new Command('remove').description('remove a member (a voter, the leader included, or a learner)').argument('<id>', 'the member\'s id'),
    DEFAULT_CHANGE_TIMEOUT_MS,
    'give up if the change is not complete within this time',
  )
    .addHelpText(
      'after',
      `
Removing a voter goes through joint consensus; removing the leader makes another member lead.
A removed node keeps no role: stop its process. To replace a dead node, remove it, then start a
new one with \`tsraft node --id NEW-ID --join URL ...\`.
${CHANGE_EXIT_CODES}

Example: tsraft member remove 2`,
    )
    .action(async (id: string, options: EndpointOptions) => runRemove(id, options));

  const member = new Command('member').description('membership: `tsraft member list|add|promote|remove` (see `tsraft member <command> --help`)');
  for (const command of [list, add, promote, remove]) {
    command.exitOverride().showHelpAfterError('(add --help for usage)');
    member.addCommand(command);
  }
  return member;
}
