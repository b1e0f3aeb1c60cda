/**
 * `tsraft leader transfer [--to ID]`: asks the cluster's leader (found through --endpoints, like
 * the KV commands: redirects followed, unreachable nodes skipped) to hand leadership over, with
 * POST /v1/leader/transfer, and prints where it went once the new leader is known:
 *
 *     leadership moved from node 0 to node 2 (term 3)
 *
 * Exit codes: 0 moved (or the --to node already leads), 1 it did not move (no new leader in time:
 * the old leader leads again; a single-member cluster; an unknown outcome), 2 usage error (also a
 * --to that is not another member: the message names the members), 3 no leader reachable.
 */
import { Command } from 'commander';
import { KvClientError } from '../kv/client.js';
import { CliError, DEFAULT_ENDPOINTS, EXIT, errorMessage, parseEndpoints, parseIntOption, parseNodeId } from './common.js';
import { clientRememberingLeader } from './leader-hint.js';
import { readClientSecurity, securityRefusal, withClientSecurityOptions, type ClientSecurityOptions } from './client-security.js';
import { printLine } from './kv-common.js';
import { printJson, wantsJson, withOutputOption, type OutputOptions } from './values.js';

interface TransferOptions extends ClientSecurityOptions, OutputOptions {
  to?: string;
  endpoints: string;
  timeout: string;
}

/** Default --timeout: the server gives a transfer up to two maximum election timeouts (4 s by default). */
const DEFAULT_TRANSFER_TIMEOUT_MS = 10_000;

/** The message (and exit code) for a failed transfer. */
export function transferFailure(error: unknown, timeoutMs: number): CliError {
  const what = 'leader transfer';
  const refused = securityRefusal(what, error);
  if (refused !== undefined) return refused;
  if (!(error instanceof KvClientError)) return new CliError(`${what}: ${errorMessage(error)}`, EXIT.failed);
  switch (error.code) {
    case 'timeout':
      return new CliError(
        `${what}: no leader could be reached within ${timeoutMs} ms (${error.message}). ` +
          'Is the cluster running (`tsraft start`) and does it have a leader? `tsraft status` shows every node. ' +
          'If the request did reach the leader, leadership may have moved: `tsraft status` says who leads.',
        EXIT.unavailable,
      );
    case 'outcome-unknown':
      return new CliError(`${what}: ${error.message}. Whether leadership moved is unknown: \`tsraft status\` says who leads now.`, EXIT.failed);
    case 'bad-request':
      if (error.serverCode === 'no-transfer-target') return new CliError(`${what}: ${serverMessage(error)}`, EXIT.failed);
      if (error.serverCode === 'transfer-target-unavailable') {
        return new CliError(`${what}: leadership did not move: ${serverMessage(error)}; pick another --to, or leave it out`, EXIT.failed);
      }
      return new CliError(`${what}: ${serverMessage(error)}; pick --to from the members, or leave it out to let the leader choose`, EXIT.usage);
    default:
      if (error.serverCode === 'transfer-timeout') {
        return new CliError(
          `${what}: leadership did not move: ${serverMessage(error)}. Is the target up and caught up (\`tsraft status\`)? Retry, or pick another --to.`,
          EXIT.failed,
        );
      }
      return new CliError(`${what}: ${error.message}`, EXIT.failed);
  }
}

/** The server's own message, without the client's "<status> <code>: " prefix. */
function serverMessage(error: KvClientError): string {
  return error.message.replace(/^\d{3}(?: [a-z-]+)?: /, '');
}

export async function runLeaderTransfer(options: TransferOptions): Promise<void> {
  const to = options.to === undefined ? undefined : parseNodeId(options.to, '--to');
  const endpoints = parseEndpoints(options.endpoints);
  const timeoutMs = parseIntOption(options.timeout, '--timeout', 1, 3_600_000);
  const client = clientRememberingLeader({ endpoints, timeoutMs, ...readClientSecurity(options) });
  let moved;
  try {
    moved = await client.transferLeadership(to);
  } catch (error) {
    throw transferFailure(error, timeoutMs);
  }
  if (wantsJson(options)) {
    printJson({ moved: moved.leaderId !== moved.previousLeaderId, ...moved });
    return;
  }
  const at = moved.leaderUrl === null ? '' : ` at ${moved.leaderUrl}`;
  if (moved.leaderId === moved.previousLeaderId) {
    printLine(`node ${moved.leaderId} already leads${at} (term ${moved.term}); nothing to do`);
  } else {
    printLine(`leadership moved from node ${moved.previousLeaderId} to node ${moved.leaderId}${at} (term ${moved.term})`);
  }
}

export function leaderCommand(): Command {
  const transfer = withOutputOption(withClientSecurityOptions(new Command('transfer')))
    .description("hand the leader's role to another node (default: the most up-to-date follower) and wait for it to take over")
    .option('--to <id>', 'the node that should lead (a member other than the current leader)')
    .option('--endpoints <urls>', "comma-separated HTTP base URLs of the cluster's nodes (env TSRAFT_ENDPOINTS)", process.env['TSRAFT_ENDPOINTS'] || DEFAULT_ENDPOINTS)
    .option('--timeout <ms>', 'give up (exit 3) if no leader answers within this time', String(DEFAULT_TRANSFER_TIMEOUT_MS))
    .addHelpText(
      'after',
      `
The leader stops taking writes (clients get 503 leader-transfer and retry), brings the target's
log up to date and tells it to campaign at once: the cluster is without a leader for about a round
trip. If no new leader is heard of within two election timeouts, the transfer is abandoned and the
old leader takes writes again (exit 1).

Exit codes: 0 moved (or --to already leads), 1 did not move / outcome unknown, 2 usage error
(--to is not another member), 3 no leader reachable.

Example: tsraft leader transfer --to 2`,
    )
    .action(async (options: TransferOptions) => {
      await runLeaderTransfer(options);
    });
  transfer.exitOverride().showHelpAfterError('(add --help for usage)');
  return new Command('leader').description('leadership: `tsraft leader transfer [--to ID]` hands it to another node').addCommand(transfer);
}
