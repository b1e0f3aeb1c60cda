/** `tsraft append KEY VALUE`: appends VALUE to the key's value (an absent key counts as empty). */
import { Command } from 'commander';
import { callCluster, checkKey, makeClient, printLine, withClientOptions, type ClientOptions } from './kv-common.js';

export function appendCommand(): Command {
  return withClientOptions(
    new Command('append').description("append VALUE to KEY's value (an absent key counts as empty)").argument('<key>', 'the key').argument('<value>', 'the bytes to add'),
  ).action(async (key: string, value: string, options: ClientOptions) => {
    checkKey(key);
    const client = makeClient(options);
    await callCluster(`append ${JSON.stringify(key)}`, () => client.append(key, value));
    printLine('OK');
  });
}
