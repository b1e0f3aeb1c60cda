/** `tsraft put KEY VALUE`: prints OK once the write is committed and applied (VALUE: text, `-` stdin, @FILE). */
import { Command } from 'commander';
import { callCluster, checkKey, makeClient, printLine, withClientOptions, type ClientOptions } from './kv-common.js';
import { printJson, readValues, wantsJson, withOutputOption, withValueOptions, type OutputOptions, type ValueOptions } from './values.js';

export function putCommand(): Command {
  return withOutputOption(
    withValueOptions(
      withClientOptions(
        new Command('put')
          .description('set KEY to VALUE (prints OK once committed)')
          .argument('<key>', 'the key')
          .argument('<value>', 'the value: text, `-` for standard input, @FILE for a file (use -- before a value that starts with -)'),
      ),
    ),
  ).action(async (key: string, valueArg: string, options: ClientOptions & ValueOptions & OutputOptions) => {
    checkKey(key);
    const [value] = await readValues([valueArg], ['VALUE'], options);
    const client = makeClient(options);
    const result = await callCluster(`put ${JSON.stringify(key)}`, () => client.put(key, value!));
    if (wantsJson(options)) printJson({ ok: true, key, index: result.index });
    else printLine('OK');
  });
}
