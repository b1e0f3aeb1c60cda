/** `tsraft del KEY`: deletes the key (OK whether or not it existed). */
import { Command } from 'commander';
import { callCluster, checkKey, makeClient, printLine, withClientOptions, type ClientOptions } from './kv-common.js';

export function delCommand(): Command {
  return withClientOptions(
    new Command('del').alias('delete').description('delete KEY (prints OK, also if it was absent)').argument('<key>', 'the key'),
  ).action(async (key: string, options: ClientOptions) => {
    checkKey(key);
    const client = makeClient(options);
    await callCluster(`del ${JSON.stringify(key)}`, () => client.delete(key));
    printLine('OK');
  });
}
