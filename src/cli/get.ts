/**
 * `tsraft get KEY`: prints the value's bytes as stored (never re-encoded: invalid UTF-8 is not
 * turned into U+FFFD) and a newline; `--raw` without the newline, `--base64` as base64,
 * `-o json` as JSON. Exit 1 if the key is absent.
 */
import { Command } from 'commander';
import { CliError, EXIT, UsageError } from './common.js';
import { callCluster, checkKey, makeClient, withClientOptions, type ClientOptions } from './kv-common.js';
import { jsonValue, printJson, wantsJson, withOutputOption, type OutputOptions } from './values.js';

interface GetOptions extends ClientOptions, OutputOptions {
  stale?: boolean;
  raw?: boolean;
  base64?: boolean;
}

export function getCommand(): Command {
  return withOutputOption(
    withClientOptions(
      new Command('get')
        .description('print the value of KEY (linearizable read through the leader; exit 1 if absent)')
        .argument('<key>', 'the key')
        .option('--stale', 'read from the first node that answers, without confirming it is up to date')
        .option('--raw', 'print the bytes exactly as stored, without a trailing newline (for binary values: tsraft get --raw k > file)')
        .option('--base64', 'print the value base64-encoded'),
    ),
  ).action(async (key: string, options: GetOptions) => {
    checkKey(key);
    const json = wantsJson(options);
    if ([options.raw === true, options.base64 === true, json].filter(Boolean).length > 1) throw new UsageError('choose one of --raw, --base64 and -o json');
    const client = makeClient(options);
    const value = await callCluster(`get ${JSON.stringify(key)}`, () => client.getBytes(key, { stale: options.stale === true }));
    if (json) {
      printJson({ key, found: value !== null, ...jsonValue(value) });
      if (value === null) process.exitCode = EXIT.failed;
      return;
    }
    if (value === null) throw new CliError(`key ${JSON.stringify(key)} not found`, EXIT.failed);
    if (options.base64 === true) process.stdout.write(`${Buffer.from(value).toString('base64')}\n`);
    else if (options.raw === true) process.stdout.write(value);
    else process.stdout.write(Buffer.concat([value, Buffer.from('\n')]));
  });
}
