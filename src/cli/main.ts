#!/usr/bin/env node
/**
 * The `tsraft` command line: a local cluster (`start`), one cluster member (`node`), the KV client
 * commands (`get`, `put`, `del`, `append`, `cas`, `txn`, `watch`, `lease grant|revoke|keepalive|timetolive|list`), `status`, `leader transfer`, `member list|add|promote|remove` `certs init|node|client` and `tokens add|list|remove`. One file per command beside this
 * one; `tsraft <command> --help` describes each.
 *
 * Exit codes (every command): 0 ok, 1 not found / cas not swapped / runtime failure, 2 usage error,
 * 3 cluster unavailable; `tsraft node` also 4, a damaged data directory (never restarted by start). Bad input never prints a stack trace (set TSRAFT_DEBUG=1 to see one for an
 * unexpected error).
 */
import { Command, CommanderError } from 'commander';
import { appendCommand } from './append.js';
import { casCommand } from './cas.js';
import { certsCommand } from './certs.js';
import { CliError, EXIT, UsageError, errorMessage } from './common.js';
import { delCommand } from './del.js';
import { getCommand } from './get.js';
import { leaderCommand } from './leader.js';
import { leaseCommand } from './lease.js';
import { memberCommand } from './member.js';
import { nodeCommand } from './node.js';
import { putCommand } from './put.js';
import { snapshotCommand } from './snapshot.js';
import { startCommand } from './start.js';
import { watchCommand } from './watch.js';
import { statusCommand } from './status.js';
import { tokensCommand } from './tokens.js';
import { txnCommand } from './txn.js';

export function buildProgram(): Command {
  const program = new Command('tsraft');
  program
    .description('Raft and a replicated key-value store, in TypeScript')
    .version('0.1.0', '-V, --version')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 not found / cas not swapped / failure, 2 usage error (also: a data directory that belongs to another cluster configuration), 3 cluster unavailable, 4 (node) a damaged data directory.

Examples:
  tsraft start                         a 3-node cluster on 127.0.0.1 (raft 7000-7002, HTTP 8000-8002)
  tsraft put greeting hello            write through the cluster
  tsraft get greeting                  read it back (linearizable; --stale for a local read)
  tsraft txn acquire.json              a transaction from a JSON file (exit 1 when its else branch ran)
  tsraft watch --prefix app/           print every change under app/ as it is applied
  tsraft lease grant 30                a lease of 30 s (prints its id); tsraft put KEY VALUE --lease ID attaches a key
  tsraft lease keepalive 7             keep lease 7 alive until Ctrl-C (its keys are deleted once it expires)
  tsraft status                        role, term, commit and lag of every node
  tsraft leader transfer --to 2        hand leadership to node 2 (without --to: the most up-to-date follower)
  tsraft member list                   the members: voters, learners, the leader
  tsraft node --id 3 --join http://127.0.0.1:8000 --listen 127.0.0.1:7003 --http 127.0.0.1:8003 --data-dir ./data-3
                                       a 4th node joins (as a learner, promoted to voter once caught up)
  tsraft member remove 2               take node 2 out of the cluster
  tsraft snapshot save backup.tsraft   a consistent backup of the whole store (snapshot restore seeds a new cluster)
  tsraft certs init --dir ./certs      a private CA for mutual TLS (then certs node / certs client)
  tsraft tokens add --file auth.json --name app --role write
                                       a bearer token for the HTTP API (tsraft node --auth-file auth.json)`,
    );
  // Commands are added after exitOverride() so they inherit it.
  for (const command of [startCommand(), nodeCommand(), getCommand(), putCommand(), delCommand(), appendCommand(), casCommand(), txnCommand(), watchCommand(), leaseCommand(), statusCommand(), leaderCommand(), memberCommand(), snapshotCommand(), certsCommand(), tokensCommand()]) {
    command.exitOverride().showHelpAfterError('(add --help for usage)');
    program.addCommand(command);
  }
  refuseExcessArguments(program);
  return program;
}

/**
 * Commander 12 ignores arguments beyond those a command declares, so `tsraft put k hello world`
 * would store "hello" and report OK: every command, subcommands included, refuses them (exit 2).
 */
function refuseExcessArguments(command: Command): void {
  command.allowExcessArguments(false);
  for (const sub of command.commands) refuseExcessArguments(sub);
}

/** Runs the CLI on `argv` (process.argv layout) and returns the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed its message (or the help / version text).
      if (error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT.ok;
      if (error.code === 'commander.excessArguments') process.stderr.write("(a value with spaces needs quotes: tsraft put KEY 'hello world')\n");
      return EXIT.usage;
    }
    if (error instanceof UsageError) {
      process.stderr.write(`tsraft: error: ${error.message}\n(add --help for usage)\n`);
      return EXIT.usage;
    }
    if (error instanceof CliError) {
      process.stderr.write(`tsraft: ${error.message}\n`);
      return error.code;
    }
    process.stderr.write(`tsraft: error: ${errorMessage(error)}\n`);
    if (process.env['TSRAFT_DEBUG'] !== undefined && error instanceof Error && error.stack !== undefined) process.stderr.write(`${error.stack}\n`);
    return EXIT.failed;
  }
}

// A reader that stops early (`tsraft start --help | head`) closes the pipe: that is its answer, not
// an error of ours, so exit quietly instead of dying on an unhandled EPIPE. A command that must
// outlive its output (`tsraft start` keeps its cluster running) handles the stream's errors itself.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (stream.listenerCount('error') > 1) return;
    if (error.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok);
    throw error;
  });
}
const code = await runCli(process.argv);
process.exitCode = code;
// Leave time for output to drain, but do not let a stray handle (a keep-alive socket) hold the process.
setTimeout(() => process.exit(code), 200).unref();
