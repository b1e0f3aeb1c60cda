/** `tsraft del KEY`: deletes the key (OK whether or not it existed). */
import { Command } from 'commander';
import { callCluster, checkKey, makeClient, printLine, withClientOptions, type ClientOptions } from './kv-common.js';
import { printJson, wantsJson, withOutputOption, type OutputOptions } from './values.js';

export function delCommand(): Command {
  return withOutputOption(
    withClientOptions(new Command('del').alias('delete').description('delete KEY (prints OK, also if it was absent)').argument('<key>', 'the key')),
  ).action(async (key: string, options: ClientOptions & OutputOptions) => {
    checkKey(key);
    const client = makeClient(options);
    const result = await callCluster(`del ${JSON.stringify(key)}`, () => client.delete(key));
    if (wantsJson(options)) printJson({ ok: true, key, index: result.index });
    else printLine('OK');
  });
}
