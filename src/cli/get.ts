/** `tsraft get KEY`: prints the value; exit 1 if the key is absent. */
import { Command } from 'commander';
import { CliError, EXIT } from './common.js';
import { callCluster, checkKey, makeClient, printLine, withClientOptions, type ClientOptions } from './kv-common.js';

export function getCommand(): Command {
  return withClientOptions(
    new Command('get')
      .description('print the value of KEY (linearizable read through the leader; exit 1 if absent)')
      .argument('<key>', 'the key')
      .option('--stale', 'read from the first node that answers, without confirming it is up to date'),
  ).action(async (key: string, options: ClientOptions & { stale?: boolean }) => {
    checkKey(key);
    const client = makeClient(options);
    const value = await callCluster(`get ${JSON.stringify(key)}`, () => client.get(key, { stale: options.stale === true }));
    if (value === null) throw new CliError(`key ${JSON.stringify(key)} not found`, EXIT.failed);
    printLine(value);
  });
}
