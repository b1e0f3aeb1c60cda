/** `tsraft append KEY VALUE`: appends VALUE to the key's value (an absent key counts as empty). */
import { Command } from 'commander';
import { callCluster, checkKey, makeClient, printLine, withClientOptions, type ClientOptions } from './kv-common.js';
import { printJson, readValues, wantsJson, withOutputOption, withValueOptions, type OutputOptions, type ValueOptions } from './values.js';

export function appendCommand(): Command {
  return withOutputOption(
    withValueOptions(
      withClientOptions(
        new Command('append')
          .description("append VALUE to KEY's value (an absent key counts as empty)")
          .argument('<key>', 'the key')
          .argument('<value>', 'the bytes to add: text, `-` for standard input, @FILE for a file'),
      ),
    ),
  ).action(async (key: string, valueArg: string, options: ClientOptions & ValueOptions & OutputOptions) => {
    checkKey(key);
    const [value] = await readValues([valueArg], ['VALUE'], options);
    const client = makeClient(options);
    const result = await callCluster(`append ${JSON.stringify(key)}`, () => client.append(key, value!));
    if (wantsJson(options)) printJson({ ok: true, key, index: result.index });
    else printLine('OK');
  });
}
