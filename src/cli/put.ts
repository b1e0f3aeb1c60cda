/** `tsraft put KEY VALUE`: prints OK once the write is committed and applied. */
import { Command } from 'commander';
import { callCluster, checkKey, makeClient, printLine, withClientOptions, type ClientOptions } from './kv-common.js';

export function putCommand(): Command {
  return withClientOptions(
    new Command('put').description('set KEY to VALUE (prints OK once committed)').argument('<key>', 'the key').argument('<value>', 'the value (use -- before a value that starts with -)'),
  ).action(async (key: string, value: string, options: ClientOptions) => {
    checkKey(key);
    const client = makeClient(options);
    await callCluster(`put ${JSON.stringify(key)}`, () => client.put(key, value));
    printLine('OK');
  });
}
